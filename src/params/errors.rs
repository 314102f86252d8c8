//! Validation errors: every bad key is reported (not only the first), each as `key: message`, with a
//! "did you mean" for close names (optimal string alignment distance, as rustc and clap suggest names).

use std::fmt;

/// What kind of problem a [`ParamError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file cannot be read or is not YAML in the ROS 2 params-file layout.
    Syntax,
    /// A key the schema does not know.
    UnknownKey,
    /// A value of the wrong type (`precision: 16`).
    WrongType,
    /// A value of the right type that is not allowed (unknown name, out of range, inconsistent).
    BadValue,
    /// A required key is absent.
    MissingKey,
    /// A checkpoint or labels file / directory does not exist.
    MissingFile,
    /// A checkpoint exists but its metadata is unreadable or of the wrong kind.
    BadCheckpoint,
    /// A checkpoint and another key disagree (class count, channels).
    Mismatch,
    /// Keys that contradict each other (a head source without its model, two EoMT heads, no heads).
    Conflict,
}

/// One bad key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The key as the file spells it, e.g. `dinoseg.ros__parameters.heads.semantic.checkpoint`.
    pub key: String,
    pub message: String,
    pub kind: ErrorKind,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found in one parameter set; displays one `key: message` per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamErrors(pub Vec<ParamError>);

impl ParamErrors {
    pub fn errors(&self) -> &[ParamError] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The errors about keys ending in `suffix` (e.g. `heads.semantic.checkpoint`).
    pub fn for_key(&self, suffix: &str) -> Vec<&ParamError> {
        self.0.iter().filter(|e| e.key == suffix || e.key.ends_with(&format!(".{suffix}"))).collect()
    }
}

impl fmt::Display for ParamErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParamErrors {}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions), on chars.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

/// The closest candidate within a distance that grows with the word's length, if any.
pub(crate) fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_l = word.to_ascii_lowercase();
    let limit = match word.chars().count() {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .map(|c| (distance(&word_l, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `a`, `a or b`, `a, b or c` (names in backticks).
pub(crate) fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

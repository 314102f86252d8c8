//! Typed reads off the flat parameter map, remembering which keys were read and collecting every error.

use super::checks::{self, Located};
use super::errors::{one_of, suggest, ErrorKind, ParamError};
use super::table::{self, Fallback, Range};
use super::value::{Flat, ParamValue};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Reads typed values off the flat map, remembering which keys were read and every error.
pub(crate) struct Reader<'a> {
    pub flat: &'a Flat,
    pub used: BTreeSet<String>,
    pub errors: Vec<ParamError>,
}

impl<'a> Reader<'a> {
    pub fn display(&self, key: &str) -> String {
        self.flat.entries.get(key).map(|e| e.display.clone()).unwrap_or_else(|| format!("{}{key}", self.flat.prefix))
    }

    pub fn err(&mut self, key: &str, kind: ErrorKind, message: impl Into<String>) {
        let key = self.display(key);
        self.errors.push(ParamError { key, message: message.into(), kind });
    }

    pub fn raw(&mut self, key: &str) -> Option<ParamValue> {
        self.used.insert(key.to_string());
        self.flat.entries.get(key).map(|e| e.value.clone()).filter(|v| *v != ParamValue::NotSet)
    }

    pub fn given(&self, key: &str) -> bool {
        self.flat.entries.get(key).is_some_and(|e| e.value != ParamValue::NotSet)
    }

    pub fn wrong(&mut self, key: &str, expected: &str, got: &ParamValue) {
        self.err(key, ErrorKind::WrongType, format!("expected {expected}, got {}", got.describe()));
    }

    pub fn string(&mut self, key: &str, expected: &str) -> Option<String> {
        match self.raw(key)? {
            ParamValue::String(s) => Some(s),
            other => {
                self.wrong(key, expected, &other);
                None
            }
        }
    }

    /// A string that must be one of `names` (case-insensitive); `parse` maps it (with aliases) to a value.
    pub fn choice<T>(&mut self, key: &str, names: &[&str], parse: impl Fn(&str) -> Option<T>) -> Option<T> {
        let s = self.string(key, &format!("one of {}", one_of(names)))?;
        if let Some(v) = parse(&s) {
            return Some(v);
        }
        let hint =
            suggest(s.trim(), names.iter().copied()).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default();
        self.err(key, ErrorKind::BadValue, format!("unknown value `{s}`: expected {}{hint}", one_of(names)));
        None
    }

    pub fn bool(&mut self, key: &str) -> Option<bool> {
        match self.raw(key)? {
            ParamValue::Bool(b) => Some(b),
            // rcl reads these as booleans (YAML 1.1); serde_yaml (YAML 1.2) leaves them strings.
            ParamValue::String(s) if matches!(s.to_ascii_lowercase().as_str(), "yes" | "on" | "y" | "true") => {
                Some(true)
            }
            ParamValue::String(s) if matches!(s.to_ascii_lowercase().as_str(), "no" | "off" | "n" | "false") => {
                Some(false)
            }
            other => {
                self.wrong(key, "a boolean (true or false)", &other);
                None
            }
        }
    }

    pub fn double(&mut self, key: &str, expected: &str) -> Option<f64> {
        match self.raw(key)? {
            ParamValue::Double(d) => Some(d),
            ParamValue::Int(i) => Some(i as f64),
            other => {
                self.wrong(key, expected, &other);
                None
            }
        }
    }

    /// A number in `[lo, hi]` (open at the ends where `open`).
    pub fn unit(&mut self, key: &str, lo: f64, hi: f64, open: bool) -> Option<f64> {
        let range = if open { format!("({lo}, {hi})") } else { format!("[{lo}, {hi}]") };
        let v = self.double(key, &format!("a number in {range}"))?;
        let inside = if open { v > lo && v < hi } else { v >= lo && v <= hi };
        if !inside || !v.is_finite() {
            self.err(key, ErrorKind::BadValue, format!("must be in {range}, got {v}"));
            return None;
        }
        Some(v)
    }

    /// A number in the range the key table gives `key` ([`table::range`]); any number if it gives none.
    pub fn ranged_double(&mut self, key: &str) -> Option<f64> {
        match table::range(key) {
            Some(Range::Double { from, to, exclusive, .. }) => self.unit(key, from, to, exclusive),
            Some(Range::Int { from, to, .. }) => self.unit(key, from as f64, to as f64, false),
            None => self.double(key, "a number"),
        }
    }

    /// An integer in the range the key table gives `key` ([`table::range`]); any integer if it gives none.
    pub fn ranged_int(&mut self, key: &str) -> Option<i64> {
        match table::range(key) {
            Some(Range::Int { from, to, .. }) => self.int(key, from, to),
            _ => self.int(key, i64::MIN, i64::MAX),
        }
    }

    /// [`Reader::choice`], or the table's default for `key` through the same `parse` ([`T::default`] if the
    /// table has none, which a test rules out).
    pub(crate) fn choice_or_default<T: Default>(
        &mut self,
        key: &str,
        names: &[&str],
        parse: impl Fn(&str) -> Option<T>,
    ) -> T {
        self.choice_or(key, names, parse, T::default)
    }

    /// [`Reader::choice_or_default`] for a type without a [`Default`]: `fallback` if the table has none.
    pub(crate) fn choice_or<T>(
        &mut self,
        key: &str,
        names: &[&str],
        parse: impl Fn(&str) -> Option<T>,
        fallback: impl FnOnce() -> T,
    ) -> T {
        if let Some(v) = self.choice(key, names, &parse) {
            return v;
        }
        match table::default_of(key) {
            Fallback::Str(s) => parse(s).unwrap_or_else(fallback),
            _ => fallback(),
        }
    }

    /// [`Reader::ranged_double`], or the table's default for `key`.
    pub(crate) fn double_or_default(&mut self, key: &str) -> f64 {
        self.ranged_double(key).unwrap_or_else(|| table::default_double(key))
    }

    /// [`Reader::ranged_int`], or the table's default for `key`.
    pub(crate) fn int_or_default(&mut self, key: &str) -> i64 {
        self.ranged_int(key).unwrap_or(match table::default_of(key) {
            Fallback::Int(i) => i,
            _ => 0,
        })
    }

    pub fn int(&mut self, key: &str, lo: i64, hi: i64) -> Option<i64> {
        let v = match self.raw(key)? {
            ParamValue::Int(i) => i,
            other => {
                self.wrong(key, &format!("an integer in {lo}..={hi}"), &other);
                return None;
            }
        };
        if v < lo || v > hi {
            self.err(key, ErrorKind::BadValue, format!("must be in {lo}..={hi}, got {v}"));
            return None;
        }
        Some(v)
    }

    /// A list of integers, each in `lo..=hi`.
    pub fn ints(&mut self, key: &str, lo: i64, hi: i64) -> Option<Vec<i64>> {
        let v = match self.raw(key)? {
            ParamValue::IntArray(v) => v,
            ParamValue::Int(i) => vec![i],
            other => {
                self.wrong(key, &format!("a list of integers in {lo}..={hi}"), &other);
                return None;
            }
        };
        if let Some(bad) = v.iter().find(|i| !(lo..=hi).contains(*i)) {
            self.err(key, ErrorKind::BadValue, format!("each must be in {lo}..={hi}, got {bad}"));
            return None;
        }
        Some(v)
    }

    pub fn strings(&mut self, key: &str) -> Option<Vec<String>> {
        match self.raw(key)? {
            ParamValue::StringArray(v) => Some(v),
            ParamValue::String(s) => Some(vec![s]),
            ParamValue::IntArray(v) if v.is_empty() => Some(Vec::new()),
            other => {
                self.wrong(key, "a list of strings", &other);
                None
            }
        }
    }

    /// A path that must exist (file or directory as `want_dir` says).
    pub fn local_path(&mut self, key: &str, written: &str, base: &Path, want_dir: bool) -> Option<PathBuf> {
        match checks::locate(written, base, false) {
            Located::Local(p) if p.is_dir() == want_dir => Some(p),
            Located::Local(p) => {
                let what = if want_dir { "a directory" } else { "a file" };
                self.err(key, ErrorKind::BadValue, format!("{} is not {what}", p.display()));
                None
            }
            _ => {
                let msg = missing(written, base, if want_dir { "directory" } else { "file" });
                self.err(key, ErrorKind::MissingFile, msg);
                None
            }
        }
    }
}

pub(crate) fn missing(written: &str, base: &Path, what: &str) -> String {
    let resolved = checks::resolve_path(written, base);
    if Path::new(written).is_absolute() {
        format!("no such {what} {written}")
    } else {
        format!("no such {what} {written} (resolved to {})", resolved.display())
    }
}

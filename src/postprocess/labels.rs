//! Class names and the thing / stuff split, from a transformers `config.json` (`id2label`) or a labels file.
//!
//! Labels file format (UTF-8 text, one class per line):
//!
//! ```text
//! # COCO panoptic: comments start with '#' (whole lines only); blank lines are skipped
//! person
//! bicycle
//! 80: banner [stuff]
//! sky-other-merged [stuff]
//! ```
//!
//! - A line is `[<id>:] <name> [<marker>]`. Without an id, a line gets the previous line's id + 1 (the first 0).
//! - The optional marker at the end is `[thing]` or `[stuff]`; classes are things unless marked `[stuff]` (as in
//!   transformers, where no class is fused unless `label_ids_to_fuse` / `stuff_classes` says so).
//! - Ids that no line names are called `class_<id>`; so are the ids of a model with more classes than the file.
//!
//! Errors name the file and line: an empty name, a duplicate id, an unknown marker, an id above 65534.

use super::PostprocessError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Class names by id, and which classes are things (countable objects) rather than stuff (amorphous regions,
/// merged into one panoptic segment per class).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels {
    names: Vec<String>,
    thing: Vec<bool>,
}

/// The largest class id a label map can hold (65535 is "unlabelled").
pub const MAX_CLASS_ID: usize = 65534;

impl Labels {
    /// `count` classes named `class_0`, `class_1`, ..., all things.
    pub fn generic(count: usize) -> Self {
        Labels { names: (0..count).map(|i| format!("class_{i}")).collect(), thing: vec![true; count] }
    }

    /// From names in id order; all things.
    pub fn from_names(names: Vec<String>) -> Self {
        let thing = vec![true; names.len()];
        Labels { names, thing }
    }

    /// From a transformers `id2label` map (`{"0": "person", ...}`, keys are integer strings). Missing ids in
    /// between are named `class_<id>`. `source` names the file in errors.
    pub fn from_id2label(id2label: &serde_json::Value, source: &Path) -> Result<Self, PostprocessError> {
        let bad = |message: String| PostprocessError::Labels { path: source.to_path_buf(), message };
        let map = id2label.as_object().ok_or_else(|| bad("`id2label` is not a JSON object".into()))?;
        let mut by_id = BTreeMap::new();
        for (key, value) in map {
            let id: usize = key.trim().parse().map_err(|_| bad(format!("`id2label` key `{key}` is not an integer")))?;
            if id > MAX_CLASS_ID {
                return Err(bad(format!("`id2label` id {id} is above {MAX_CLASS_ID}")));
            }
            let name = value.as_str().ok_or_else(|| bad(format!("`id2label[\"{key}\"]` is not a string")))?;
            by_id.insert(id, name.to_string());
        }
        let count = by_id.keys().next_back().map_or(0, |&m| m + 1);
        let mut labels = Labels::generic(count);
        for (id, name) in by_id {
            labels.names[id] = name;
        }
        Ok(labels)
    }

    /// From a parsed `id2label` map (e.g. `EomtConfig::id2label`); `source` names the file in errors.
    pub fn from_id2label_map(map: &BTreeMap<String, String>, source: &Path) -> Result<Self, PostprocessError> {
        let value = serde_json::Value::Object(map.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect());
        Self::from_id2label(&value, source)
    }

    /// Reads `id2label` from a transformers `config.json` (or a directory holding one).
    pub fn from_config_json(path: &Path) -> Result<Self, PostprocessError> {
        let path = if path.is_dir() { path.join("config.json") } else { path.to_path_buf() };
        let text = read(&path, crate::files::caps::JSON, "config file")?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| PostprocessError::Labels { path: path.clone(), message: format!("invalid JSON: {e}") })?;
        let id2label = value.get("id2label").ok_or_else(|| PostprocessError::Labels {
            path: path.clone(),
            message: "no `id2label` in the config".into(),
        })?;
        Self::from_id2label(id2label, &path)
    }

    /// Reads a labels file (format in the module docs).
    pub fn from_file(path: &Path) -> Result<Self, PostprocessError> {
        Self::parse(&read(path, crate::files::caps::LABELS, "labels file")?, path)
    }

    /// Parses labels-file text; `source` names the file in errors.
    pub fn parse(text: &str, source: &Path) -> Result<Self, PostprocessError> {
        let mut by_id: BTreeMap<usize, (String, bool, usize)> = BTreeMap::new();
        let mut next = 0usize;
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let err =
                |message: String| PostprocessError::LabelsLine { path: source.to_path_buf(), line: line_no, message };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, rest) = match line.split_once(':') {
                Some((head, tail)) if !head.trim().is_empty() && head.trim().bytes().all(|b| b.is_ascii_digit()) => {
                    let id = head.trim().parse::<usize>().map_err(|e| err(format!("bad id `{}`: {e}", head.trim())))?;
                    (id, tail.trim())
                }
                _ => (next, line),
            };
            if id > MAX_CLASS_ID {
                return Err(err(format!("class id {id} is above {MAX_CLASS_ID}")));
            }
            let (name, thing) = split_marker(rest).map_err(err)?;
            if name.is_empty() {
                return Err(err("empty class name".into()));
            }
            if let Some((_, _, first)) = by_id.get(&id) {
                return Err(err(format!("duplicate class id {id} (first defined on line {first})")));
            }
            by_id.insert(id, (name.to_string(), thing, line_no));
            next = id + 1;
        }
        let count = by_id.keys().next_back().map_or(0, |&m| m + 1);
        let mut labels = Labels::generic(count);
        for (id, (name, thing, _)) in by_id {
            labels.names[id] = name;
            labels.thing[id] = thing;
        }
        Ok(labels)
    }

    /// Marks these class ids as stuff (all others keep their flag). Ids beyond the names are added as `class_<id>`.
    pub fn with_stuff(mut self, ids: impl IntoIterator<Item = usize>) -> Self {
        for id in ids {
            if id <= MAX_CLASS_ID {
                self.extend_to(id + 1);
                self.thing[id] = false;
            }
        }
        self
    }

    /// Grows (never shrinks) the list to `count` classes, naming new ones `class_<id>` (things).
    pub fn extend_to(&mut self, count: usize) {
        for i in self.names.len()..count {
            self.names.push(format!("class_{i}"));
            self.thing.push(true);
        }
    }

    /// Number of named classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of class `id` (`class_<id>` when unnamed).
    pub fn name(&self, id: usize) -> String {
        self.names.get(id).cloned().unwrap_or_else(|| format!("class_{id}"))
    }

    /// Whether class `id` is a thing (true when unknown).
    pub fn is_thing(&self, id: usize) -> bool {
        self.thing.get(id).copied().unwrap_or(true)
    }

    /// The names of classes `0..count` (padded with `class_<id>`).
    pub fn names_for(&self, count: usize) -> Vec<String> {
        (0..count).map(|i| self.name(i)).collect()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The stuff class ids (transformers' `label_ids_to_fuse` / `stuff_classes`).
    pub fn stuff_ids(&self) -> Vec<usize> {
        self.thing.iter().enumerate().filter(|(_, &t)| !t).map(|(i, _)| i).collect()
    }
}

/// Splits a trailing `[thing]` / `[stuff]` marker off a name.
fn split_marker(rest: &str) -> Result<(&str, bool), String> {
    let Some(body) = rest.strip_suffix(']') else { return Ok((rest, true)) };
    let Some(open) = body.rfind('[') else { return Ok((rest, true)) };
    let name = body[..open].trim_end();
    match body[open + 1..].trim() {
        "thing" => Ok((name, true)),
        "stuff" => Ok((name, false)),
        other => Err(format!("unknown marker `[{other}]` (expected `[thing]` or `[stuff]`)")),
    }
}

/// Reads a labels or config file: a regular file (FIFOs, devices and folders refused by type, never opened) of at
/// most `cap` bytes of UTF-8.
fn read(path: &Path, cap: u64, what: &str) -> Result<String, PostprocessError> {
    crate::files::read_text_capped(path, cap, what).map_err(|e| match e {
        crate::Error::Io { source, .. } => PostprocessError::Io { path: PathBuf::from(path), source },
        crate::Error::File { message, .. } => PostprocessError::Labels { path: path.to_path_buf(), message },
        other => PostprocessError::Labels { path: path.to_path_buf(), message: other.to_string() },
    })
}

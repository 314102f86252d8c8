//! Parameter values as ROS 2 types them, and a YAML params file flattened to dotted keys exactly as rcl hands a
//! `--params-file` to a node (r2r's `node.params`): nested maps join their keys with `.`, lists of scalars
//! become arrays of one type. This is what lets the node and the offline runner share one validation.

use super::errors::{ErrorKind, ParamError};
use super::yaml::YamlError;
use std::collections::BTreeMap;

/// A parameter value, mirroring ROS 2's `rcl_interfaces/ParameterValue` (r2r's `ParameterValue`; a ROS byte
/// array maps to [`ParamValue::IntArray`]).
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// No value (`key:` with nothing after it): the key's default applies.
    NotSet,
    Bool(bool),
    Int(i64),
    Double(f64),
    String(String),
    BoolArray(Vec<bool>),
    IntArray(Vec<i64>),
    DoubleArray(Vec<f64>),
    StringArray(Vec<String>),
}

impl ParamValue {
    /// Describes the value for error messages: `the integer 16`, `a list of 2 strings`.
    pub fn describe(&self) -> String {
        let list = |n: usize, what: &str| format!("a list of {n} {what}");
        match self {
            ParamValue::NotSet => "no value".into(),
            ParamValue::Bool(b) => format!("the boolean {b}"),
            ParamValue::Int(i) => format!("the integer {i}"),
            ParamValue::Double(d) => format!("the number {d}"),
            ParamValue::String(s) => format!("the string \"{s}\""),
            ParamValue::BoolArray(v) => list(v.len(), "booleans"),
            ParamValue::IntArray(v) => list(v.len(), "integers"),
            ParamValue::DoubleArray(v) => list(v.len(), "numbers"),
            ParamValue::StringArray(v) => list(v.len(), "strings"),
        }
    }
}

/// One flattened key: its value and how the file spells the key (for error messages).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub value: ParamValue,
    pub display: String,
}

/// A flattened parameter set: dotted keys relative to `ros__parameters`, and the prefix error keys carry
/// (`dinoseg.ros__parameters.` for a file, empty for parameters that came from the node).
#[derive(Debug, Clone, Default)]
pub(crate) struct Flat {
    pub entries: BTreeMap<String, Entry>,
    pub prefix: String,
}

impl Flat {
    pub fn from_map(map: &BTreeMap<String, ParamValue>) -> Self {
        let entries = map.iter().map(|(k, v)| (k.clone(), Entry { value: v.clone(), display: k.clone() })).collect();
        Flat { entries, prefix: String::new() }
    }
}

/// The node's name in launch files and the CLI.
pub(crate) const DEFAULT_NODE_NAME: &str = "dinoseg";

/// Flattens a ROS 2 params file: one top-level key (the node name, e.g. `dinoseg`, `/ns/dinoseg` or `/**`)
/// holding `ros__parameters`, or several of which those for `dinoseg` and `/**` are read. `source` names the
/// file in errors about the file as a whole.
pub(crate) fn flatten_yaml(text: &str, source: &str) -> Result<Flat, Vec<ParamError>> {
    let syntax = |key: &str, message: String| vec![ParamError { key: key.into(), message, kind: ErrorKind::Syntax }];
    let doc = super::yaml::parse_bounded(text).map_err(|e| match e {
        YamlError::Syntax(m) => syntax(source, format!("invalid YAML: {m}")),
        YamlError::Limit(m) => syntax(source, format!("refused: {m}")),
    })?;
    let layout =
        "expected the ROS 2 params-file layout `<node name or /**>:` / `  ros__parameters:` / `    key: value`";
    let top = match doc {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => return Err(syntax(source, format!("the file is empty; {layout}"))),
        _ => return Err(syntax(source, format!("not a map; {layout}"))),
    };
    let names: Vec<String> = top.keys().map(|k| key_text(k).unwrap_or_else(|| "?".into())).collect();
    // One key: whatever the node is called. Several (a robot-wide file): the ones for this node, `/**` or a
    // name ending in `dinoseg`, merged in file order (later keys override earlier ones, as rcl does).
    let ours = |n: &str| n == "/**" || n.rsplit('/').next() == Some(DEFAULT_NODE_NAME);
    if names.len() > 1 && !names.iter().any(|n| ours(n)) {
        return Err(syntax(
            source,
            format!(
                "{} top-level keys ({}) and none for this node: expected `{DEFAULT_NODE_NAME}` (any namespace) or `/**`",
                names.len(),
                names.join(", ")
            ),
        ));
    }
    let single = names.len() == 1;
    let mut errors = Vec::new();
    let mut flat = Flat::default();
    for (node_key, node_value) in top {
        let node = key_text(&node_key).unwrap_or_default();
        if !single && !ours(&node) {
            continue;
        }
        let node_map = match node_value {
            serde_yaml::Value::Mapping(m) => m,
            _ => return Err(syntax(&node, format!("expected a map holding `ros__parameters`; {layout}"))),
        };
        let mut found = false;
        for (k, v) in node_map {
            let k = key_text(&k).unwrap_or_default();
            if k != "ros__parameters" {
                errors.push(ParamError {
                    key: format!("{node}.{k}"),
                    message: format!("unknown key: a node's parameters go under `{node}.ros__parameters`"),
                    kind: ErrorKind::UnknownKey,
                });
                continue;
            }
            found = true;
            let mut part = Flat { entries: BTreeMap::new(), prefix: format!("{node}.ros__parameters.") };
            match v {
                serde_yaml::Value::Mapping(m) => {
                    walk_map(m, "", &format!("{node}.ros__parameters"), &mut part, &mut errors);
                }
                serde_yaml::Value::Null => {}
                _ => errors.push(ParamError {
                    key: format!("{node}.ros__parameters"),
                    message: "expected a map of parameters".into(),
                    kind: ErrorKind::Syntax,
                }),
            }
            flat.prefix = part.prefix;
            flat.entries.extend(part.entries);
        }
        if !found {
            errors.push(ParamError {
                key: node,
                message: format!("no `ros__parameters`; {layout}"),
                kind: ErrorKind::Syntax,
            });
        }
    }
    if errors.is_empty() {
        Ok(flat)
    } else {
        Err(errors)
    }
}

fn key_text(k: &serde_yaml::Value) -> Option<String> {
    match k {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}.{b}")
    }
}

/// Walks the map at `key` (relative, dotted), spelled `display` in the file.
fn walk_map(m: serde_yaml::Mapping, key: &str, display: &str, flat: &mut Flat, errors: &mut Vec<ParamError>) {
    for (k, v) in m {
        let Some(k) = key_text(&k) else {
            errors.push(ParamError {
                key: display.to_string(),
                message: "a map key must be a string or a number".into(),
                kind: ErrorKind::Syntax,
            });
            continue;
        };
        walk(v, &join(key, &k), &format!("{display}.{k}"), flat, errors);
    }
}

fn walk(v: serde_yaml::Value, key: &str, display: &str, flat: &mut Flat, errors: &mut Vec<ParamError>) {
    let err = |errors: &mut Vec<ParamError>, message: String| {
        errors.push(ParamError { key: display.to_string(), message, kind: ErrorKind::WrongType })
    };
    let value = match v {
        serde_yaml::Value::Mapping(m) => return walk_map(m, key, display, flat, errors),
        serde_yaml::Value::Sequence(items) if items.iter().any(|i| matches!(i, serde_yaml::Value::Mapping(_))) => {
            if key == "heads" {
                return walk_head_list(items, display, flat, errors);
            }
            return err(errors, "a list of maps is not a ROS 2 parameter (only `heads` may be one)".into());
        }
        serde_yaml::Value::Sequence(items) => match array(items) {
            Ok(v) => v,
            Err(m) => return err(errors, m),
        },
        serde_yaml::Value::Tagged(_) => return err(errors, "YAML tags are not supported".into()),
        scalar => match scalar_value(scalar) {
            Ok(v) => v,
            Err(m) => return err(errors, m),
        },
    };
    insert(flat, key, display, value, errors);
}

fn insert(flat: &mut Flat, key: &str, display: &str, value: ParamValue, errors: &mut Vec<ParamError>) {
    if flat.entries.contains_key(key) {
        errors.push(ParamError {
            key: display.to_string(),
            message: "given twice (nested and dotted spellings of one key)".into(),
            kind: ErrorKind::Syntax,
        });
        return;
    }
    flat.entries.insert(key.to_string(), Entry { value, display: display.to_string() });
}

/// `heads:` as a list of maps (offline runner only: ROS 2 parameters cannot hold one): item `i` becomes
/// `heads.<name>.*`, `<name>` being its `name` key or `i`.
fn walk_head_list(items: Vec<serde_yaml::Value>, display: &str, flat: &mut Flat, errors: &mut Vec<ParamError>) {
    for (i, item) in items.into_iter().enumerate() {
        let disp = format!("{display}[{i}]");
        let serde_yaml::Value::Mapping(mut m) = item else {
            errors.push(ParamError {
                key: disp,
                message: "expected a map (type, checkpoint, ...)".into(),
                kind: ErrorKind::WrongType,
            });
            continue;
        };
        let name = match m.remove("name") {
            Some(serde_yaml::Value::String(s)) if valid_head_name(&s) => s,
            Some(other) => {
                errors.push(ParamError {
                    key: format!("{disp}.name"),
                    message: format!(
                        "expected a head name of letters, digits and `_`, got {}",
                        scalar_value(other).map(|v| v.describe()).unwrap_or_else(|_| "a list or map".into())
                    ),
                    kind: ErrorKind::BadValue,
                });
                continue;
            }
            None => i.to_string(),
        };
        let key = format!("heads.{name}");
        if flat.entries.keys().any(|k| k.starts_with(&format!("{key}."))) {
            errors.push(ParamError {
                key: format!("{disp}.name"),
                message: format!("a second head named `{name}`"),
                kind: ErrorKind::BadValue,
            });
            continue;
        }
        for (k, v) in m {
            let Some(k) = key_text(&k) else { continue };
            walk(v, &format!("{key}.{k}"), &format!("{disp}.{k}"), flat, errors);
        }
    }
}

pub(crate) fn valid_head_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn scalar_value(v: serde_yaml::Value) -> Result<ParamValue, String> {
    Ok(match v {
        serde_yaml::Value::Null => ParamValue::NotSet,
        serde_yaml::Value::Bool(b) => ParamValue::Bool(b),
        serde_yaml::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => ParamValue::Int(i),
            (None, Some(_)) if n.is_u64() => return Err(format!("the integer {n} does not fit in 64 bits")),
            (None, Some(f)) => ParamValue::Double(f),
            (None, None) => return Err(format!("unreadable number {n}")),
        },
        serde_yaml::Value::String(s) => ParamValue::String(s),
        _ => return Err("expected a single value".into()),
    })
}

/// A list of scalars as one ROS array type: integers mixed with numbers become numbers; other mixtures are an
/// error (rcl refuses them too).
fn array(items: Vec<serde_yaml::Value>) -> Result<ParamValue, String> {
    let values = items.into_iter().map(scalar_value).collect::<Result<Vec<_>, _>>()?;
    if values.is_empty() {
        return Ok(ParamValue::StringArray(Vec::new()));
    }
    let all = |f: fn(&ParamValue) -> bool| values.iter().all(f);
    if all(|v| matches!(v, ParamValue::Bool(_))) {
        return Ok(ParamValue::BoolArray(
            values.iter().filter_map(|v| if let ParamValue::Bool(b) = v { Some(*b) } else { None }).collect(),
        ));
    }
    if all(|v| matches!(v, ParamValue::Int(_))) {
        return Ok(ParamValue::IntArray(
            values.iter().filter_map(|v| if let ParamValue::Int(i) = v { Some(*i) } else { None }).collect(),
        ));
    }
    if all(|v| matches!(v, ParamValue::Int(_) | ParamValue::Double(_))) {
        return Ok(ParamValue::DoubleArray(
            values
                .iter()
                .filter_map(|v| match v {
                    ParamValue::Int(i) => Some(*i as f64),
                    ParamValue::Double(d) => Some(*d),
                    _ => None,
                })
                .collect(),
        ));
    }
    if all(|v| matches!(v, ParamValue::String(_))) {
        return Ok(ParamValue::StringArray(
            values.into_iter().filter_map(|v| if let ParamValue::String(s) = v { Some(s) } else { None }).collect(),
        ));
    }
    Err("a list must hold values of one type (all strings, all integers, all numbers or all booleans)".into())
}

/// What a params file holds that ROS 2 parameters cannot: lists of maps or of lists (the runner's `heads` list
/// included), which rcl does not refuse but flattens into other keys (`heads: [{type: eomt}]` becomes
/// `heads.type: ["eomt"]`). One line per place, naming the dotted key; empty for a file the node can take.
pub(crate) fn ros_layout_problems(text: &str) -> Vec<String> {
    fn visit(v: &serde_yaml::Value, key: &str, out: &mut Vec<String>, depth: usize) {
        if depth > 64 {
            out.push(format!("{key}: nested more than 64 levels"));
            return;
        }
        match v {
            serde_yaml::Value::Mapping(m) => {
                for (k, v) in m {
                    visit(v, &join(key, &key_text(k).unwrap_or_else(|| "?".into())), out, depth + 1);
                }
            }
            serde_yaml::Value::Sequence(items)
                if items
                    .iter()
                    .any(|i| matches!(i, serde_yaml::Value::Mapping(_) | serde_yaml::Value::Sequence(_))) =>
            {
                let hint = if key.ends_with("heads") {
                    ": write the heads as named maps (`heads: {scene: {type: eomt, ...}}`)"
                } else {
                    ""
                };
                out.push(format!(
                    "{key}: a list of maps or lists is not a ROS 2 parameter (rcl would turn it into other keys){hint}"
                ));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    match super::yaml::parse_bounded(text) {
        Ok(doc) => visit(&doc, "", &mut out, 0),
        // rcl reports syntax errors in its own words; the bounds are ours.
        Err(YamlError::Limit(m)) => out.push(format!("refused: {m}")),
        Err(YamlError::Syntax(_)) => {}
    }
    out
}

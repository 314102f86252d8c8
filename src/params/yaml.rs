//! Params YAML parsed with bounds: whatever a hand-edited (or hostile) file holds, parsing takes bounded time and
//! memory. The text is capped ([`MAX_TEXT`]), and the document is built node by node through a counting
//! deserializer that stops at the first bound exceeded, naming the key path and the line:
//!
//! - nesting deeper than [`MAX_DEPTH`] maps or lists,
//! - more than [`MAX_NODES`] values in all, *counting every alias expansion* (a "billion laughs" file, where
//!   each anchor repeats the previous one ten times, stops after [`MAX_NODES`] values instead of exhausting
//!   memory),
//! - a list of more than [`MAX_LIST`] items,
//! - a string (key or value) longer than [`MAX_STRING`] bytes.
//!
//! A params file needs a few hundred values, nesting 6 deep and strings of a path's length: the bounds are far
//! above any real file.

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde_yaml::value::{Tag, TaggedValue};
use serde_yaml::{Mapping, Value};
use std::cell::{Cell, RefCell};
use std::fmt;

/// Longest params text parsed (bytes): [`crate::files::caps::PARAMS`].
pub const MAX_TEXT: usize = crate::files::caps::PARAMS as usize;
/// Deepest nesting of maps and lists.
pub const MAX_DEPTH: usize = 32;
/// Most values (scalars, maps, lists; alias expansions included) in one document.
pub const MAX_NODES: usize = 100_000;
/// Most items in one list.
pub const MAX_LIST: usize = 10_000;
/// Longest string (a key or a value), bytes.
pub const MAX_STRING: usize = 16 << 10;

/// Why a params text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum YamlError {
    /// Not YAML (or not one document): the parser's message with its line and column.
    Syntax(String),
    /// A bound of this module exceeded: what, where (key path) and the line.
    Limit(String),
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            YamlError::Syntax(m) | YamlError::Limit(m) => f.write_str(m),
        }
    }
}

/// Parses one YAML document within the bounds of this module.
pub(crate) fn parse_bounded(text: &str) -> Result<Value, YamlError> {
    if text.len() > MAX_TEXT {
        return Err(YamlError::Limit(format!("{} bytes of YAML, more than the {MAX_TEXT}-byte limit", text.len())));
    }
    let budget = Budget { nodes: Cell::new(0), limit: RefCell::new(None) };
    let de = serde_yaml::Deserializer::from_str(text);
    let result = Node { budget: &budget, depth: 0, path: "" }.deserialize(de);
    // The bound that stopped the walk wins over the error serde_yaml wraps it in (which adds the line).
    match (result, budget.limit.into_inner()) {
        (Ok(v), None) => Ok(v),
        (Err(e), Some(what)) => {
            let at = e.location().map(|l| format!(" (line {}, column {})", l.line(), l.column())).unwrap_or_default();
            Err(YamlError::Limit(format!("{what}{at}")))
        }
        (Ok(_), Some(what)) => Err(YamlError::Limit(what)),
        (Err(e), None) => Err(YamlError::Syntax(e.to_string())),
    }
}

struct Budget {
    nodes: Cell<usize>,
    /// The first bound exceeded, in words.
    limit: RefCell<Option<String>>,
}

/// One value at `path` (dotted keys, `[i]` for list items), `depth` maps/lists deep.
#[derive(Clone, Copy)]
struct Node<'b> {
    budget: &'b Budget,
    depth: usize,
    path: &'b str,
}

fn shown(path: &str) -> &str {
    if path.is_empty() {
        "the document"
    } else {
        path
    }
}

impl Node<'_> {
    fn fail<E: de::Error>(&self, what: String) -> E {
        let message = format!("{}: {what}", shown(self.path));
        let mut slot = self.budget.limit.borrow_mut();
        if slot.is_none() {
            *slot = Some(message.clone());
        }
        E::custom(message)
    }

    fn count<E: de::Error>(&self) -> Result<(), E> {
        let n = self.budget.nodes.get() + 1;
        self.budget.nodes.set(n);
        if n > MAX_NODES {
            return Err(self.fail(format!(
                "more than {MAX_NODES} values in the document (aliases count each time they are used)"
            )));
        }
        Ok(())
    }

    fn nested<E: de::Error>(&self) -> Result<usize, E> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(self.fail(format!("nested more than {MAX_DEPTH} levels deep")));
        }
        Ok(depth)
    }

    fn string<E: de::Error>(&self, s: &str) -> Result<(), E> {
        if s.len() > MAX_STRING {
            let start: String = s.chars().take(40).collect();
            return Err(self.fail(format!(
                "a string of {} bytes (\"{start}...\"), more than the {MAX_STRING}-byte limit",
                s.len()
            )));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// A map key: a scalar (any value serde_yaml takes as a key), counted and bounded like values.
struct Key<'b>(Node<'b>);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self.0)
    }
}

fn key_words(k: &Value) -> String {
    match k {
        Value::String(s) => s.chars().take(60).collect(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "~".into(),
        _ => "?".into(),
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Number(i.into()))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Number(u.into()))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Number(f.into()))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        self.count()?;
        self.string(s)?;
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        self.count()?;
        self.string(&s)?;
        Ok(Value::String(s))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.count()?;
        let depth = self.nested()?;
        let mut items = Vec::new();
        loop {
            if items.len() >= MAX_LIST {
                return Err(self.fail(format!("a list of more than {MAX_LIST} items")));
            }
            let path = format!("{}[{}]", self.path, items.len());
            match seq.next_element_seed(Node { budget: self.budget, depth, path: &path })? {
                Some(v) => items.push(v),
                None => break,
            }
        }
        Ok(Value::Sequence(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.count()?;
        let depth = self.nested()?;
        let mut mapping = Mapping::new();
        while let Some(key) = map.next_key_seed(Key(Node { budget: self.budget, depth, path: self.path }))? {
            let words = key_words(&key);
            let path = if self.path.is_empty() { words } else { format!("{}.{words}", self.path) };
            if mapping.contains_key(&key) {
                return Err(de::Error::custom(format!("{path}: given twice in one map")));
            }
            let value = map.next_value_seed(Node { budget: self.budget, depth, path: &path })?;
            mapping.insert(key, value);
        }
        Ok(Value::Mapping(mapping))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        self.count()?;
        let (tag, contents): (String, _) = data.variant()?;
        self.string(&tag)?;
        let value = contents.newtype_variant_seed(self)?;
        Ok(Value::Tagged(Box::new(TaggedValue { tag: Tag::new(tag), value })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn limit(text: &str) -> String {
        match parse_bounded(text) {
            Err(YamlError::Limit(m)) => m,
            other => panic!("expected a limit error, got {other:?}"),
        }
    }

    #[test]
    fn ordinary_documents_parse_as_serde_yaml_does() {
        let text = "a:\n  b: [1, 2.5, x, -3]\n  c: {d: true, e: ~}\n  f: !tag 3\ng: &x [1]\nh: *x\n";
        let ours = parse_bounded(text).unwrap();
        let theirs: Value = serde_yaml::from_str(text).unwrap();
        assert_eq!(ours, theirs);
        assert!(matches!(parse_bounded("a: [1,\n"), Err(YamlError::Syntax(_))));
        assert!(matches!(parse_bounded("a: 1\na: 2\n"), Err(YamlError::Syntax(m)) if m.contains("twice")));
    }

    #[test]
    fn billion_laughs_stops_at_the_node_limit_fast() {
        let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let t = Instant::now();
        let m = limit(&text);
        assert!(t.elapsed().as_secs_f64() < 2.0, "{:?}", t.elapsed());
        assert!(m.contains("more than 100000 values") && m.contains("line"), "{m}");
    }

    #[test]
    fn depth_list_and_string_limits_name_the_key() {
        let deep = format!("{}1{}", "[".repeat(1000), "]".repeat(1000));
        assert!(limit(&deep).contains("nested more than 32"), "{}", limit(&deep));
        let nested: String = (0..40).map(|i| format!("{}k{i}:\n", "  ".repeat(i))).collect();
        let m = limit(&nested);
        assert!(m.contains("k0.k1.k2") && m.contains("nested more than 32"), "{m}");
        let long = format!("a:\n  b: [{}]\n", vec!["1"; MAX_LIST + 1].join(","));
        let m = limit(&long);
        assert!(m.starts_with("a.b: a list of more than 10000"), "{m}");
        let s = format!("a:\n  path: {}\n", "x".repeat(MAX_STRING + 1));
        let m = limit(&s);
        assert!(m.starts_with("a.path: a string of 16385 bytes (\"xxx") && m.len() < 200, "{m}");
        let m = limit(&" ".repeat(MAX_TEXT + 1));
        assert!(m.contains("1048577 bytes"), "{m}");
    }
}

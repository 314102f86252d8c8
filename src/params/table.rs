//! The node's parameter keys as one table, data rather than code: for each key (a name, or a pattern such as
//! `heads.<name>.checkpoint` where `<...>` stands for one dotted part) its value type, a one-line description
//! (what `ros2 param describe` shows), its numeric range where it has one, and whether it can change while the
//! node runs (`ros2 param set`) or, if not, why.
//!
//! The validation reads its numeric bounds from here ([`super::build`]), so the ranges the ROS view declares are
//! the ones a params file is checked against. [`Params::set_live`](super::Params::set_live) refuses keys that
//! are not live with the reason given here. [`KEYS`] is in the order of the parameters' documentation, for a
//! README table.

use ValueType::{Bool, Color, Double, Int, String as Str, StringList};

/// The type of a key's value, as ROS 2 parameters are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Bool,
    /// A ROS integer (`int64`).
    Int,
    /// A ROS double; integers are accepted too (ROS clients send `1` for `1.0`).
    Double,
    String,
    StringList,
    /// A colour: an integer list `[r, g, b]` (0..=255) or a string `"#rrggbb"`.
    Color,
}

impl ValueType {
    /// The name shown in tables and messages.
    pub fn name(&self) -> &'static str {
        match self {
            ValueType::Bool => "bool",
            ValueType::Int => "int",
            ValueType::Double => "double",
            ValueType::String => "string",
            ValueType::StringList => "string list",
            ValueType::Color => "int list [r, g, b] or \"#rrggbb\"",
        }
    }
}

/// A numeric range. Inclusive, as ROS 2's `IntegerRange` / `FloatingPointRange` (step 0: any value in it),
/// except a [`Range::Double`] with `exclusive`, whose ends are refused: the ROS view can only declare
/// `[from, to]` and the validation refuses the ends itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Range {
    Int { from: i64, to: i64, step: u64 },
    Double { from: f64, to: f64, step: f64, exclusive: bool },
}

impl Range {
    /// `[0, 1]`, `(0, 1)`, `1..=64`.
    pub fn text(&self) -> String {
        match *self {
            Range::Int { from, to, .. } => format!("{from}..={to}"),
            Range::Double { from, to, exclusive: false, .. } => format!("[{from}, {to}]"),
            Range::Double { from, to, exclusive: true, .. } => format!("({from}, {to})"),
        }
    }

    /// Whether `v` is in the range (integers are compared as doubles against a double range).
    pub fn contains(&self, v: f64) -> bool {
        match *self {
            Range::Int { from, to, .. } => v >= from as f64 && v <= to as f64,
            Range::Double { from, to, exclusive: false, .. } => v >= from && v <= to,
            Range::Double { from, to, exclusive: true, .. } => v > from && v < to,
        }
    }
}

/// Whether a key can change while the node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// Takes effect on the next frame.
    Yes,
    /// Read at start-up only; the text says why (`checkpoints are loaded at start-up`).
    Restart(&'static str),
}

/// One key (or key pattern) of the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyInfo {
    /// The key, or a pattern whose `<...>` parts stand for one dotted part (`colors.overrides.<id>`).
    pub key: &'static str,
    pub value_type: ValueType,
    /// One line: what the key does.
    pub description: &'static str,
    pub range: Option<Range>,
    pub live: Live,
}

impl KeyInfo {
    pub fn is_live(&self) -> bool {
        self.live == Live::Yes
    }

    /// Whether `key` is this entry's key, or fits its pattern.
    pub fn matches(&self, key: &str) -> bool {
        let mut want = self.key.split('.');
        let mut got = key.split('.');
        loop {
            match (want.next(), got.next()) {
                (None, None) => return true,
                (Some(w), Some(g)) if w.starts_with('<') && w.ends_with('>') && !g.is_empty() => {}
                (Some(w), Some(g)) if w == g => {}
                _ => return false,
            }
        }
    }

    /// Why `key` (one this entry matches) cannot change while the node runs; None if it can.
    pub fn restart_reason(&self, key: &str) -> Option<String> {
        match self.live {
            Live::Yes => None,
            Live::Restart(why) => Some(format!("{why}; restart the node to change {key}")),
        }
    }
}

const fn entry(
    key: &'static str,
    value_type: ValueType,
    description: &'static str,
    range: Option<Range>,
    live: Live,
) -> KeyInfo {
    KeyInfo { key, value_type, description, range, live }
}

const UNIT: Option<Range> = Some(Range::Double { from: 0.0, to: 1.0, step: 0.0, exclusive: false });
const SIDE: Option<Range> = Some(Range::Int { from: 1, to: 16384, step: 1 });
const SECONDS: Option<Range> = Some(Range::Double { from: 0.05, to: 3600.0, step: 0.0, exclusive: false });

const LOADED: Live = Live::Restart("the model is loaded at start-up");
const CHECKPOINTS: Live = Live::Restart("checkpoints are loaded at start-up");
const LABELS: Live = Live::Restart("labels are read at start-up and published once per camera");
const SUBSCRIPTIONS: Live = Live::Restart("subscriptions and publishers are created at start-up");
const RESIZE: Live = Live::Restart("the model input size is set at start-up (warm-up, batching by input size)");

/// Every key of the node, in documentation order.
pub const KEYS: &[KeyInfo] = &[
    entry("device", Str, "cpu, cuda or cuda:N: where the model runs", None, LOADED),
    entry("precision", Str, "fp32, fp16 or bf16: the model's weights and activations", None, LOADED),
    entry(
        "base_dir",
        Str,
        "directory relative paths resolve against (default: the params file's)",
        None,
        Live::Restart("relative paths are resolved at start-up"),
    ),
    entry(
        "backbone.checkpoint",
        Str,
        "DINOv3 backbone of linear heads with source backbone: directory, file or hub id",
        None,
        CHECKPOINTS,
    ),
    entry(
        "backbone.variant",
        Str,
        "catalog variant of a bare .safetensors backbone in transformers names",
        None,
        LOADED,
    ),
    entry("heads.<name>.type", Str, "linear or eomt", None, LOADED),
    entry(
        "heads.<name>.checkpoint",
        Str,
        "linear: a .safetensors head; eomt: an eomt_dinov3 directory or hub id",
        None,
        CHECKPOINTS,
    ),
    entry("heads.<name>.source", Str, "linear heads: the features they read, backbone or eomt", None, LOADED),
    entry("heads.<name>.outputs", Str, "eomt heads: panoptic, semantic or instances", None, LOADED),
    entry("heads.<name>.labels", Str, "labels file replacing the checkpoint's class names", None, LABELS),
    entry(
        "input.topics",
        StringList,
        "camera topics (a name ending in /compressed: CompressedImage)",
        None,
        SUBSCRIPTIONS,
    ),
    entry("input.reliability", Str, "QoS of the camera subscriptions: best_effort or reliable", None, SUBSCRIPTIONS),
    entry("resize.mode", Str, "keep, short_side or fixed: the model input size", None, RESIZE),
    entry("resize.short_side", Int, "short side of the model input (mode short_side)", SIDE, RESIZE),
    entry(
        "resize.max_long_side",
        Int,
        "cap on the long side of the model input (modes keep, short_side; default 2048, 0 = no cap)",
        Some(Range::Int { from: 0, to: 16384, step: 1 }),
        RESIZE,
    ),
    entry("resize.height", Int, "model input height (mode fixed)", SIDE, RESIZE),
    entry("resize.width", Int, "model input width (mode fixed)", SIDE, RESIZE),
    entry("resize.pad", Str, "bottom_right (pad to the patch multiple) or stretch", None, RESIZE),
    entry("thresholds.score", Double, "instances: keep those scoring at least this", UNIT, Live::Yes),
    entry("thresholds.query", Double, "panoptic: keep queries whose class probability exceeds this", UNIT, Live::Yes),
    entry(
        "thresholds.mask",
        Double,
        "mask probability threshold",
        Some(Range::Double { from: 0.0, to: 1.0, step: 0.0, exclusive: true }),
        Live::Yes,
    ),
    entry("thresholds.overlap", Double, "panoptic: a segment keeps at least this part of its mask", UNIT, Live::Yes),
    entry(
        "thresholds.top_k",
        Int,
        "instances: (query, class) pairs considered per image",
        Some(Range::Int { from: 1, to: 100_000, step: 1 }),
        Live::Yes,
    ),
    entry("outputs.semantic", Bool, "publish the label image (mono8/mono16)", None, Live::Yes),
    entry("outputs.semantic_color", Bool, "publish the label image in colour", None, Live::Yes),
    entry("outputs.instances", Bool, "publish the instance masks", None, Live::Yes),
    entry("outputs.instance_ids", Bool, "publish the instance-id image", None, Live::Yes),
    entry("outputs.detections", Bool, "publish the instances' boxes", None, Live::Yes),
    entry("outputs.label_info", Bool, "publish the class names (once per camera, latched)", None, Live::Yes),
    entry("outputs.overlay", Bool, "publish the camera image with the segmentation blended in", None, Live::Yes),
    entry("colors.palette", Str, "class colours: default or pascal", None, Live::Yes),
    entry("colors.overlay_alpha", Double, "weight of the class colour in the overlay", UNIT, Live::Yes),
    entry("colors.overrides.<id>", Color, "colour of class <id>", None, Live::Yes),
    entry(
        "node.max_batch",
        Int,
        "most frames (one per camera) in one forward pass",
        Some(Range::Int { from: 1, to: 64, step: 1 }),
        Live::Yes,
    ),
    entry("node.diagnostics_period", Double, "seconds between two /diagnostics messages", SECONDS, Live::Yes),
    entry("node.warn_interval", Double, "seconds between two warnings of one kind for one camera", SECONDS, Live::Yes),
    entry(
        "node.threads",
        Int,
        "libtorch CPU threads (0: its default)",
        Some(Range::Int { from: 0, to: 1024, step: 1 }),
        Live::Restart("libtorch's thread pool is sized once, at start-up"),
    ),
];

/// The table's entry for `key` (an exact name first, then the patterns); None for a key the node does not
/// know.
pub fn describe(key: &str) -> Option<KeyInfo> {
    KEYS.iter().find(|k| k.key == key).or_else(|| KEYS.iter().find(|k| k.matches(key))).copied()
}

/// The range of `key`, if it has one.
pub fn range(key: &str) -> Option<Range> {
    describe(key).and_then(|k| k.range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_one_part() {
        assert_eq!(describe("heads.scene.checkpoint").map(|k| k.key), Some("heads.<name>.checkpoint"));
        assert_eq!(describe("colors.overrides.7").map(|k| k.key), Some("colors.overrides.<id>"));
        assert!(describe("heads.a.b.checkpoint").is_none());
        assert!(describe("heads..checkpoint").is_none());
        assert!(describe("colors.overrides").is_none());
        assert!(describe("thresholds.scor").is_none());
        let reason = describe("heads.scene.checkpoint").and_then(|k| k.restart_reason("heads.scene.checkpoint"));
        assert_eq!(
            reason.as_deref(),
            Some("checkpoints are loaded at start-up; restart the node to change heads.scene.checkpoint")
        );
    }

    /// The table and the validation's list of keys name the same keys.
    #[test]
    fn the_table_has_every_key_the_validation_knows() {
        let mut known: Vec<String> = super::super::build::TOP.iter().map(|k| k.to_string()).collect();
        for (section, fields) in super::super::build::SECTIONS {
            for f in *fields {
                known.push(if *f == "overrides" { format!("{section}.{f}.<id>") } else { format!("{section}.{f}") });
            }
        }
        known.extend(super::super::models::HEAD_FIELDS.iter().map(|f| format!("heads.<name>.{f}")));
        let table: Vec<String> = KEYS.iter().map(|k| k.key.to_string()).collect();
        let (mut a, mut b) = (known.clone(), table.clone());
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert_eq!(table.len(), known.len(), "a key listed twice");
    }
}

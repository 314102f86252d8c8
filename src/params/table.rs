//! The node's parameter keys as one table, data rather than code: each key is declared here once (a name, or a
//! pattern such as `heads.<name>.checkpoint` where `<...>` stands for one dotted part) with its value type, its
//! default, a one-line description (what `ros2 param describe` shows) and more for the README, its numeric range
//! where it has one, and whether it can change while the node runs (`ros2 param set`) or, if not, why.
//!
//! What it drives: the validation ([`super::build`]) takes its defaults, numeric bounds, known keys (for the
//! unknown-key suggestions), sections and head fields from here, so the ranges the ROS view declares are the ones
//! a params file is checked against; [`Params::set_live`](super::Params::set_live) refuses keys that are not live
//! with the reason given here; the node's `ros2 param describe` ([`KeyInfo::constraints`]) and the parameter
//! tables of the README and the module doc ([`super::doc::markdown`]) are rendered from it. Tests check the rest
//! against it: `to_flat` gives every key, each key is read as its type, the `outputs.<name>` switches are
//! [`crate::topics::Output::ALL`]. [`KEYS`] is in the order of the parameters' documentation.
//!
//! A new key: one entry here, its reader in [`super::build`] (or `models`), its value in `Params::to_flat`; then
//! `DINOSEG_BLESS=1 cargo test --release --locked --test params_table` rewrites the README's table.

use ValueType::{Bool, Color, Double, Int, IntList, String as Str, StringList};

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
    /// A list of ROS integers.
    IntList,
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
            ValueType::IntList => "int list",
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

/// A key's value when the parameters do not give one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fallback {
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(&'static str),
    StrList(&'static [&'static str]),
    /// No constant: required, absent, or worked out from other keys; the text says which (`the number of
    /// cameras`).
    Derived(&'static str),
}

impl Fallback {
    /// As the README shows it: `0.8`, `` `cuda` ``, `["camera/image_raw"]`, or the text of a derived one.
    pub fn text(&self) -> String {
        match self {
            Fallback::Bool(b) => b.to_string(),
            Fallback::Int(i) => i.to_string(),
            Fallback::Double(d) => format!("{d:?}"),
            Fallback::Str(s) => format!("`{s}`"),
            Fallback::StrList(l) => {
                let items: Vec<String> = l.iter().map(|s| format!("\"{s}\"")).collect();
                format!("`[{}]`", items.join(", "))
            }
            Fallback::Derived(t) => t.to_string(),
        }
    }
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
    /// The value when the file does not give one.
    pub default: Fallback,
    /// More for the README's table (after the description); may be empty.
    pub details: &'static str,
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
    KeyInfo { key, value_type, description, range, live, default: Fallback::Derived("none"), details: "" }
}

impl KeyInfo {
    /// The entry with its default.
    const fn or(self, default: Fallback) -> KeyInfo {
        KeyInfo { default, ..self }
    }

    /// The entry with more text for the README.
    const fn more(self, details: &'static str) -> KeyInfo {
        KeyInfo { details, ..self }
    }
}

const UNIT: Option<Range> = Some(Range::Double { from: 0.0, to: 1.0, step: 0.0, exclusive: false });
const SIDE: Option<Range> = Some(Range::Int { from: 1, to: 16384, step: 1 });
const SECONDS: Option<Range> = Some(Range::Double { from: 0.05, to: 3600.0, step: 0.0, exclusive: false });

const SEMANTIC: Fallback = Fallback::Derived("true if a head gives a semantic map");
const INSTANCES: Fallback = Fallback::Derived("true if a mask model (EoMT, Mask2Former) gives instances");

const fn text(s: &'static str) -> Fallback {
    Fallback::Str(s)
}
const fn derived(why: &'static str) -> Fallback {
    Fallback::Derived(why)
}
const fn double(v: f64) -> Fallback {
    Fallback::Double(v)
}
const fn boolean(v: bool) -> Fallback {
    Fallback::Bool(v)
}

const LOADED: Live = Live::Restart("the model is loaded at start-up");
const CHECKPOINTS: Live = Live::Restart("checkpoints are loaded at start-up");
const LABELS: Live = Live::Restart("labels are read at start-up and published once per camera");
const SUBSCRIPTIONS: Live = Live::Restart("subscriptions and publishers are created at start-up");
const RESIZE: Live = Live::Restart("the model input size is set at start-up (warm-up, batching by input size)");

/// Every key of the node, in documentation order.
pub const KEYS: &[KeyInfo] = &[
    entry("device", Str, "cpu, cuda or cuda:N: where the model runs", None, LOADED).or(text("cuda")).more(
        "`cuda` is `cuda:0` (also `gpu`). Not checked against the machine by `check-params` (the file may be for \
         the robot): the node and `dinoseg run` fail at start-up if the GPU is absent",
    ),
    entry("precision", Str, "fp32, fp16 or bf16: the model's weights and activations", None, LOADED).or(text("fp32")),
    entry(
        "base_dir",
        Str,
        "directory relative paths resolve against (default: the params file's)",
        None,
        Live::Restart("relative paths are resolved at start-up"),
    )
    .or(derived("the params file's directory")),
    entry(
        "backbone.checkpoint",
        Str,
        "DINOv3 backbone of linear heads with source backbone: directory, file or hub id",
        None,
        CHECKPOINTS,
    )
    .more(
        "a transformers directory, `.safetensors` (official names, or transformers names with `backbone.variant`), \
         official `.pth`, or hub id `org/name[@rev]`",
    ),
    entry(
        "backbone.variant",
        Str,
        "catalog variant of a bare .safetensors backbone in transformers names",
        None,
        LOADED,
    )
    .more("`vits16` ... `vit7b16`, `convnext_*` (`dinoseg backbones`)"),
    entry("heads.<name>.type", Str, "linear, eomt or mask2former", None, LOADED).or(derived("required")),
    entry(
        "heads.<name>.checkpoint",
        Str,
        "linear: a .safetensors head; eomt: an eomt_dinov3 directory or hub id; mask2former: a mask2former directory",
        None,
        CHECKPOINTS,
    )
    .or(derived("required"))
    .more(
        "a linear head may also be an official `.pth` with its sidecar; a mask2former directory has a dinov3_convnext \
         or dinov3_vit `backbone_config`, or is in the DINOv3-Mask2former adapter layout",
    ),
    entry(
        "heads.<name>.source",
        Str,
        "linear heads: the features they read, backbone, eomt or mask2former",
        None,
        LOADED,
    )
    .or(text("backbone"))
    .more("`eomt` / `mask2former` read the mask model's encoder in its own pass (no second backbone)"),
    entry("heads.<name>.outputs", Str, "eomt and mask2former heads: panoptic, semantic or instances", None, LOADED)
        .or(text("panoptic"))
        .more(
            "`panoptic`: panoptic map, semantic map and thing instances from it; `semantic`: class scores; \
             `instances`: top-k",
        ),
    entry("heads.<name>.labels", Str, "labels file replacing the checkpoint's class names", None, LABELS)
        .or(derived("the checkpoint's names"))
        .more("format: `src/postprocess/labels.rs`; its class count must match the checkpoint's"),
    entry(
        "heads.<name>.layers",
        IntList,
        "mask2former adapter layout: the DINOv3 blocks (0-based) the adapter taps",
        None,
        LOADED,
    )
    .or(derived("the variant file named in dinov3_backbone_config.json"))
    .more("known: `mask2former_dinov3_vitsmallplus*` [2, 5, 8, 11], `mask2former_dinov3_vitlarge*` [5, 11, 17, 23]"),
    entry(
        "heads.<name>.num_heads",
        Int,
        "mask2former adapter layout: the DINOv3 ViT's attention heads",
        Some(Range::Int { from: 1, to: 1024, step: 1 }),
        LOADED,
    )
    .or(derived("the catalog variant of the ViT's size")),
    entry(
        "input.topics",
        StringList,
        "camera topics (a name ending in /compressed: CompressedImage)",
        None,
        SUBSCRIPTIONS,
    )
    .or(Fallback::StrList(&["camera/image_raw"]))
    .more(
        "cameras share one model; other names are `sensor_msgs/Image`. Relative names (no leading `/`) follow the \
         node's namespace and remapping (`-r __ns:=/robot1` gives `/robot1/camera/image_raw`); the runner reads \
         them in the root namespace",
    ),
    entry("input.reliability", Str, "QoS of the camera subscriptions: best_effort or reliable", None, SUBSCRIPTIONS)
        .or(text("best_effort"))
        .more("`best_effort` is the sensor-data QoS"),
    entry("resize.mode", Str, "keep, short_side or fixed: the model input size", None, RESIZE).or(text("keep")),
    entry("resize.short_side", Int, "short side of the model input (mode short_side)", SIDE, RESIZE)
        .or(derived("required with `short_side`")),
    entry(
        "resize.max_long_side",
        Int,
        "cap on the long side of the model input (modes keep, short_side; default 2048, 0 = no cap)",
        Some(Range::Int { from: 0, to: 16384, step: 1 }),
        RESIZE,
    )
    .or(derived("2048 (`keep`; `short_side` below 2048)"))
    .more(
        "greater than `short_side`. A planned input over 2^26 pixels is refused whatever the cap \
         (`MAX_MODEL_PIXELS`)",
    ),
    entry("resize.height", Int, "model input height (mode fixed)", SIDE, RESIZE).or(derived("required with `fixed`")),
    entry("resize.width", Int, "model input width (mode fixed)", SIDE, RESIZE).or(derived("required with `fixed`")),
    entry("resize.pad", Str, "bottom_right (pad to the patch multiple) or stretch", None, RESIZE)
        .or(text("bottom_right"))
        .more("`stretch` rounds the size to the patch multiple"),
    entry("thresholds.score", Double, "instances: keep those scoring at least this", UNIT, Live::Yes).or(double(0.8)),
    entry("thresholds.query", Double, "panoptic: keep queries whose class probability exceeds this", UNIT, Live::Yes)
        .or(double(0.8)),
    entry(
        "thresholds.mask",
        Double,
        "mask probability threshold",
        Some(Range::Double { from: 0.0, to: 1.0, step: 0.0, exclusive: true }),
        Live::Yes,
    )
    .or(double(0.5)),
    entry("thresholds.overlap", Double, "panoptic: a segment keeps at least this part of its mask", UNIT, Live::Yes)
        .or(double(0.8)),
    entry(
        "thresholds.top_k",
        Int,
        "instances: (query, class) pairs considered per image",
        Some(Range::Int { from: 1, to: 100_000, step: 1 }),
        Live::Yes,
    )
    .or(Fallback::Int(100)),
    entry("outputs.semantic", Bool, "publish the label image (mono8/mono16)", None, Live::Yes).or(SEMANTIC),
    entry("outputs.semantic_color", Bool, "publish the label image in colour", None, Live::Yes).or(SEMANTIC),
    entry("outputs.instances", Bool, "publish the instance masks", None, Live::Yes).or(INSTANCES),
    entry("outputs.instance_ids", Bool, "publish the instance-id image", None, Live::Yes).or(INSTANCES),
    entry("outputs.detections", Bool, "publish the instances' boxes", None, Live::Yes).or(boolean(false)),
    entry("outputs.label_info", Bool, "publish the class names (once per camera, latched)", None, Live::Yes)
        .or(boolean(true)),
    entry("outputs.overlay", Bool, "publish the camera image with the segmentation blended in", None, Live::Yes)
        .or(boolean(false)),
    entry(
        "outputs.semantic_from",
        Str,
        "the head whose semantic map is the frame's semantic and semantic_color (empty: automatic)",
        None,
        Live::Restart("the head plan is built at start-up"),
    )
    .or(derived("empty: automatic"))
    .more("a linear head, or an EoMT head with `outputs: panoptic` or `semantic`"),
    entry("colors.palette", Str, "class colours: default or pascal", None, Live::Yes)
        .or(text("default"))
        .more("`default`: 256 distinct colours; `pascal`: the VOC colour map"),
    entry("colors.overlay_alpha", Double, "weight of the class colour in the overlay", UNIT, Live::Yes).or(double(0.5)),
    entry("colors.overrides.<id>", Color, "colour of class <id>", None, Live::Yes),
    entry(
        "node.max_batch",
        Int,
        "most frames (one per camera) in one forward pass",
        Some(Range::Int { from: 1, to: 64, step: 1 }),
        Live::Yes,
    )
    .or(derived("the number of cameras")),
    entry("node.diagnostics_period", Double, "seconds between two /diagnostics messages", SECONDS, Live::Yes)
        .or(double(1.0)),
    entry("node.warn_interval", Double, "seconds between two warnings of one kind for one camera", SECONDS, Live::Yes)
        .or(double(5.0))
        .more("the others are counted"),
    entry(
        "node.threads",
        Int,
        "libtorch CPU threads (0: its default)",
        Some(Range::Int { from: 0, to: 1024, step: 1 }),
        Live::Restart("libtorch's thread pool is sized once, at start-up"),
    )
    .or(Fallback::Int(0))
    .more("node and `dinoseg run`; 1 avoids OpenMP stalls on a busy CPU"),
];

/// The table's entry for `key` (an exact name first, then the patterns); None for a key the node does not
/// know.
pub fn describe(key: &str) -> Option<KeyInfo> {
    KEYS.iter().find(|k| k.key == key).or_else(|| KEYS.iter().find(|k| k.matches(key))).copied()
}

/// The parts that follow `prefix` in the table's keys, in table order: `fields("colors")` gives `palette`,
/// `overlay_alpha`, `overrides`; `fields("heads.<name>")` the fields of a head.
pub(crate) fn fields(prefix: &str) -> impl Iterator<Item = &'static str> + '_ {
    KEYS.iter()
        .filter_map(move |k| k.key.strip_prefix(prefix)?.strip_prefix('.'))
        .map(|rest| rest.split('.').next().unwrap_or(rest))
}

/// The sections (first parts of dotted keys), in table order, each once.
pub(crate) fn sections() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for k in KEYS {
        if let Some((section, _)) = k.key.split_once('.') {
            if !out.contains(&section) {
                out.push(section);
            }
        }
    }
    out
}

/// The default of `key` (`Derived` for a key the table does not know).
pub(crate) fn default_of(key: &str) -> Fallback {
    describe(key).map_or(Fallback::Derived("not in the table"), |k| k.default)
}

/// The constant default of a number `key` (0 where the table gives it none, which a test rules out for the
/// keys read so).
pub(crate) fn default_double(key: &str) -> f64 {
    match default_of(key) {
        Fallback::Double(d) => d,
        Fallback::Int(i) => i as f64,
        _ => 0.0,
    }
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

    /// The `outputs.<name>` switches are the outputs of [`crate::topics::Output::ALL`], in its order.
    #[test]
    fn the_output_switches_are_the_outputs() {
        let switches: Vec<&str> =
            KEYS.iter().filter(|k| k.value_type == Bool).filter_map(|k| k.key.strip_prefix("outputs.")).collect();
        let outputs: Vec<&str> = crate::topics::Output::ALL.iter().map(|o| o.name()).collect();
        assert_eq!(switches, outputs);
    }

    /// Each constant default has the key's type and is inside its range; each key is listed once.
    #[test]
    fn defaults_fit_their_keys() {
        for k in KEYS {
            let fits = match (k.default, k.value_type) {
                (Fallback::Bool(_), Bool) | (Fallback::Str(_), Str) | (Fallback::StrList(_), StringList) => true,
                (Fallback::Int(i), Int) => k.range.is_none_or(|r| r.contains(i as f64)),
                (Fallback::Double(d), Double) => k.range.is_none_or(|r| r.contains(d)),
                (Fallback::Derived(why), _) => !why.is_empty(),
                _ => false,
            };
            assert!(fits, "{}: default {:?} for a {}", k.key, k.default, k.value_type.name());
            assert_eq!(KEYS.iter().filter(|o| o.key == k.key).count(), 1, "{} listed twice", k.key);
        }
        assert_eq!(fields("colors").collect::<Vec<_>>(), ["palette", "overlay_alpha", "overrides"]);
        assert_eq!(
            fields("heads.<name>").collect::<Vec<_>>(),
            ["type", "checkpoint", "source", "outputs", "labels", "layers", "num_heads"]
        );
        let want = ["backbone", "heads", "input", "resize", "thresholds", "outputs", "colors", "node"];
        assert_eq!(sections(), want);
    }
}

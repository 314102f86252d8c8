//! YAML parameters (ROS 2 params-file layout) shared by the node and the offline runner, and their validation.
//!
//! One file serves both: the node gets it through `--ros-args --params-file`, where rcl hands the values to r2r
//! as dotted keys (`heads.semantic.type`); the runner reads the file itself and flattens it the same way
//! ([`flatten_yaml`]). Both paths end in one validation ([`Params::from_flat_in`]), which reports every bad key
//! (not just the first) as `key: message`.
//!
//! ```yaml
//! dinoseg:                      # the node name (any single top-level key, also `/**`)
//!   ros__parameters:
//!     device: cuda
//!     precision: fp16
//!     backbone: {checkpoint: facebook/dinov3-vitl16-pretrain-lvd1689m}
//!     heads:
//!       semantic: {type: linear, checkpoint: heads/ade20k_linear.safetensors}
//!     input: {topics: ["/camera/image_raw"]}
//! ```
//!
//! # Keys (relative to `ros__parameters`)
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `device` | string | `cuda` | `cpu`, `cuda` (= `cuda:0`, also `gpu`) or `cuda:N`. Not checked against the machine here (the file may be for the robot): [`Params::segmenter_config`] fails if the GPU is absent |
//! | `precision` | string | `fp32` | `fp32`, `fp16` or `bf16` |
//! | `base_dir` | string | the file's directory | directory relative paths are resolved against (see below) |
//! | `backbone.checkpoint` | string | none | DINOv3 backbone for linear heads with `source: backbone`: transformers directory, `.safetensors` (official names, or transformers names with `variant`), official `.pth`, or hub id `org/name[@rev]` |
//! | `backbone.variant` | string | none | catalog variant (`vits16` ... `vit7b16`, `convnext_*`) of a bare `.safetensors` in transformers names |
//! | `heads.<name>.type` | string | required | `linear` or `eomt` |
//! | `heads.<name>.checkpoint` | string | required | linear: a `.safetensors` head (or official `.pth` with sidecar); eomt: a transformers `eomt_dinov3` directory or hub id |
//! | `heads.<name>.source` | string | `backbone` | linear only: `backbone` or `eomt` (read the EoMT encoder's pass) |
//! | `heads.<name>.outputs` | string | `panoptic` | eomt only: `panoptic` (panoptic map, semantic map and thing instances from it), `semantic` (class scores), `instances` (top-k) |
//! | `heads.<name>.labels` | string | checkpoint's names | labels file (format: [`crate::postprocess::labels`]); its class count must match the checkpoint's |
//! | `input.topics` | string list | `["camera/image_raw"]` | camera topics, sharing one model; a name ending in `/compressed` is a `sensor_msgs/CompressedImage`, others `sensor_msgs/Image`. Relative names (no leading `/`) follow the node's namespace and remapping (`-r __ns:=/robot1` gives `/robot1/camera/image_raw`); the runner reads them in the root namespace |
//! | `input.reliability` | string | `best_effort` | `best_effort` (the sensor-data QoS) or `reliable` |
//! | `resize.mode` | string | `keep` | `keep`, `short_side` or `fixed` ([`crate::pipeline::preprocess::Resize`]) |
//! | `resize.short_side` | int | required for `short_side` | target short side |
//! | `resize.max_long_side` | int | 2048 (`keep`; `short_side` below 2048) | cap on the long side of the model input (`keep`, `short_side`; greater than `short_side`); 0: no cap. A planned input over 2^26 pixels is refused whatever the cap ([`crate::pipeline::preprocess::MAX_MODEL_PIXELS`]) |
//! | `resize.height`, `resize.width` | int | required for `fixed` | output size |
//! | `resize.pad` | string | `bottom_right` | `bottom_right` (pad to the patch multiple) or `stretch` (round the size to it) |
//! | `thresholds.score` | double in [0, 1] | 0.8 | instance score threshold |
//! | `thresholds.query` | double in [0, 1] | 0.8 | panoptic query threshold |
//! | `thresholds.mask` | double in (0, 1) | 0.5 | mask probability threshold |
//! | `thresholds.overlap` | double in [0, 1] | 0.8 | panoptic overlap threshold |
//! | `thresholds.top_k` | int >= 1 | 100 | instances considered per image |
//! | `outputs.semantic`, `outputs.semantic_color` | bool | true if a head gives a semantic map | label image (mono8/mono16), its colour picture |
//! | `outputs.instances`, `outputs.instance_ids` | bool | true if an EoMT head gives instances | instance masks, instance-id image |
//! | `outputs.detections` | bool | false | boxes of the instances |
//! | `outputs.label_info` | bool | true | class names |
//! | `outputs.overlay` | bool | false | camera image with the segmentation blended in |
//! | `colors.palette` | string | `default` | `default` (256 distinct colours) or `pascal` (VOC colour map) |
//! | `colors.overlay_alpha` | double in [0, 1] | 0.5 | colour weight in the overlay |
//! | `colors.overrides.<class id>` | int list `[r, g, b]` or `"#rrggbb"` | none | colour of one class |
//!
//! | `node.max_batch` | int in [1, 64] | the number of cameras | node: most frames (one per camera) in one forward pass |
//! | `node.diagnostics_period` | double, s | 1.0 | node: period of the `/diagnostics` status |
//! | `node.warn_interval` | double, s | 5.0 | node: a warning of one kind per camera at most this often (the rest counted) |
//! | `node.threads` | int >= 0 | 0 | CPU threads of libtorch (0: its default), node and `dinoseg run`; 1 avoids OpenMP stalls on a busy CPU |
//!
//! The thresholds, `outputs.*`, `colors.*` and `node.*` but `node.threads` can change while the node runs
//! ([`Params::set_live`]: the next frame uses them); the other keys are read at start-up. [`table`] holds every
//! key's type, one-line description, range and whether it is live.
//!
//! `heads` may also be a YAML list of maps with an optional `name` (default: the index) — for the offline runner
//! only: ROS 2 parameters cannot hold a list of maps, so a file for the node uses named sub-maps. Heads run in
//! name order (numeric names numerically); the first linear head gives the frame's semantic map. Integers are
//! accepted where a double is expected; `yes`/`no`/`on`/`off` where a boolean is (rcl reads them so); a single
//! string where a string list is. ROS's own `use_sim_time`, `start_type_description_service` and
//! `qos_overrides.*` are ignored.
//!
//! # Paths
//!
//! Relative paths (checkpoints, labels) are resolved against `base_dir`, which defaults to the directory of the
//! YAML file ([`Params::from_file`]) or the directory given to [`Params::from_yaml_str_in`] /
//! [`Params::from_flat_in`] (the current directory for [`Params::from_yaml_str`] / [`Params::from_flat`]: the
//! node does not know where its params file was). `~/` is the home directory. A spec that does not exist is
//! taken for a hub id when it has the form `org/name[@revision]`, does not look like a path and its `org` is not
//! a directory next to the file: write `./models/eomt` for a local directory so that a missing one is reported
//! rather than taken for a hub id. Hub ids are not checked unless a snapshot is in the Hugging Face cache (then
//! its `config.json` is), as they may be downloaded on first use.
//!
//! # Node names
//!
//! A file with one top-level key is read whatever the key (the node may be renamed in a launch file). A
//! robot-wide file with several is read for the keys `/**` and any ending in `dinoseg` (`/robot/dinoseg`),
//! merged in file order, later ones overriding; the other nodes' sections are skipped.
//!
//! # What validation reads
//!
//! `config.json` of directories and cached hub snapshots, the header (names, shapes, metadata) of `.safetensors`
//! files, labels files; never weights. Checked: every key's name, type and value; files exist; a backbone is a
//! backbone and an EoMT directory an EoMT model; class counts of labels files against the checkpoint (EoMT
//! `id2label`, a linear head's `conv.weight`); a linear head's input channels against its backbone or the EoMT
//! encoder where both are known; head sources against the models present; at most one EoMT head; at least one
//! head; output switches against what the heads produce.

mod build;
mod checks;
mod errors;
mod live;
mod models;
mod palette;
mod reader;
pub mod table;
mod value;
pub mod yaml;

pub use errors::{ErrorKind, ParamError, ParamErrors};
pub use palette::{Palette, PaletteName};
pub use table::{describe, KeyInfo, Live, Range, ValueType};
pub use value::ParamValue;

use crate::device::parse_device;
use crate::error::{Error, Result};
use crate::pipeline::preprocess::{PadMode, Resize, ResizePolicy};
use crate::postprocess::{InstanceSource, Labels, MaskOutputs, PostprocessConfig, SemanticSource};
use crate::segmenter::{EomtSpec, LinearHeadSource, LinearHeadSpec, SegmenterConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::Kind;

/// Model precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Fp32,
    Fp16,
    Bf16,
}

impl Precision {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "float32" | "float" => Some(Self::Fp32),
            "fp16" | "float16" | "half" => Some(Self::Fp16),
            "bf16" | "bfloat16" => Some(Self::Bf16),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Fp16 => "fp16",
            Self::Bf16 => "bf16",
        }
    }
    pub fn kind(&self) -> Kind {
        match self {
            Self::Fp32 => Kind::Float,
            Self::Fp16 => Kind::Half,
            Self::Bf16 => Kind::BFloat16,
        }
    }
}

/// A model spec after path resolution.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelRef {
    /// A local file or directory (relative paths already joined to the base directory).
    Path(PathBuf),
    /// A hub id, `org/name[@revision]`.
    Hub(String),
}

impl ModelRef {
    /// The spec string `checkpoint::load_model` takes.
    pub fn spec(&self) -> Result<String> {
        match self {
            ModelRef::Hub(id) => Ok(id.clone()),
            ModelRef::Path(p) => {
                p.to_str().map(String::from).ok_or_else(|| Error::Input(format!("path {} is not UTF-8", p.display())))
            }
        }
    }
}

/// The backbone linear heads with `source: backbone` read.
#[derive(Debug, Clone, PartialEq)]
pub struct BackboneParams {
    pub checkpoint: ModelRef,
    pub variant: Option<String>,
}

/// One head.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadParams {
    /// The key under `heads` (or the list index).
    pub name: String,
    pub kind: HeadKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HeadKind {
    Linear { checkpoint: PathBuf, source: LinearHeadSource, labels: Option<PathBuf> },
    Eomt { model: ModelRef, outputs: MaskOutputs, labels: Option<PathBuf> },
}

/// QoS reliability of the camera subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reliability {
    /// The sensor-data profile (best effort, depth 5): `r2r::QosProfile::sensor_data()`.
    #[default]
    BestEffort,
    /// Reliable, for cameras that publish reliably only (or bags replayed with reliable QoS).
    Reliable,
}

/// A camera topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputTopic {
    pub name: String,
    /// `sensor_msgs/CompressedImage` (the name ends in `/compressed`, as image_transport names them), else
    /// `sensor_msgs/Image`.
    pub compressed: bool,
}

/// Camera inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputParams {
    pub topics: Vec<InputTopic>,
    pub reliability: Reliability,
}

/// Which outputs are published / written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputSwitches {
    pub semantic: bool,
    pub semantic_color: bool,
    pub instances: bool,
    pub instance_ids: bool,
    pub detections: bool,
    pub label_info: bool,
    pub overlay: bool,
}

impl OutputSwitches {
    /// The outputs switched on.
    pub fn enabled(&self) -> Vec<crate::topics::Output> {
        use crate::topics::Output;
        let on = [
            (Output::Semantic, self.semantic),
            (Output::SemanticColor, self.semantic_color),
            (Output::Instances, self.instances),
            (Output::InstanceIds, self.instance_ids),
            (Output::Detections, self.detections),
            (Output::LabelInfo, self.label_info),
            (Output::Overlay, self.overlay),
        ];
        on.into_iter().filter(|(_, b)| *b).map(|(o, _)| o).collect()
    }
}

/// How the node schedules frames and reports (`node.*`; the offline runner uses `threads` only).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeParams {
    /// Most frames (one per camera) in one forward pass.
    pub max_batch: usize,
    /// Seconds between two `/diagnostics` messages.
    pub diagnostics_period: f64,
    /// Seconds between two warnings of one kind for one camera.
    pub warn_interval: f64,
    /// libtorch CPU threads; 0 leaves libtorch's default.
    pub threads: usize,
}

impl Default for NodeParams {
    fn default() -> Self {
        NodeParams { max_batch: 1, diagnostics_period: 1.0, warn_interval: 5.0, threads: 0 }
    }
}

/// Validated parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Where relative paths were resolved.
    pub base_dir: PathBuf,
    /// `cpu`, `cuda` or `cuda:N` (not yet checked against the machine).
    pub device: String,
    pub precision: Precision,
    pub backbone: Option<BackboneParams>,
    /// In name order.
    pub heads: Vec<HeadParams>,
    pub input: InputParams,
    pub resize: ResizePolicy,
    pub thresholds: PostprocessConfig,
    pub outputs: OutputSwitches,
    pub colors: Palette,
    pub node: NodeParams,
}

/// Reads and validates a params file: what `dinoseg check-params FILE` runs.
pub fn check_file(path: impl AsRef<Path>) -> std::result::Result<Params, ParamErrors> {
    Params::from_file(path)
}

/// What in a params file's text ROS 2 parameters cannot hold although rcl parses it (lists of maps or lists,
/// which rcl turns into other keys): one line per place, naming the key. The node refuses such a file before
/// `rcl_init`; the offline runner accepts a list of heads.
pub fn ros_layout_problems(text: &str) -> Vec<String> {
    value::ros_layout_problems(text)
}

/// A params file's text flattened to the dotted keys r2r would deliver (lists of heads included, which ROS
/// itself would refuse).
pub fn flatten_yaml(text: &str) -> std::result::Result<BTreeMap<String, ParamValue>, ParamErrors> {
    value::flatten_yaml(text, "<yaml>")
        .map(|f| f.entries.into_iter().map(|(k, e)| (k, e.value)).collect())
        .map_err(ParamErrors)
}

fn current_dir() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

fn absolute(p: &Path) -> PathBuf {
    let p = if p.as_os_str().is_empty() { Path::new(".") } else { p };
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl Params {
    /// Parses YAML text; relative paths are resolved against the current directory.
    pub fn from_yaml_str(text: &str) -> std::result::Result<Self, ParamErrors> {
        Self::from_yaml_str_in(text, &current_dir())
    }

    /// Parses YAML text; relative paths are resolved against `base_dir`.
    pub fn from_yaml_str_in(text: &str, base_dir: &Path) -> std::result::Result<Self, ParamErrors> {
        Self::parse_yaml(text, base_dir, "<yaml>")
    }

    /// Reads a params file; relative paths are resolved against its directory.
    pub fn from_file(path: impl AsRef<Path>) -> std::result::Result<Self, ParamErrors> {
        let path = path.as_ref();
        let text = crate::files::read_text_capped(path, crate::files::caps::PARAMS, "params file").map_err(|e| {
            let key = path.display().to_string();
            let message = match e {
                Error::Io { source, .. } => format!("cannot read: {source}"),
                Error::File { message, .. } => message,
                Error::Input(m) => m.strip_prefix(&format!("{key}: ")).unwrap_or(&m).to_string(),
                other => other.to_string(),
            };
            ParamErrors(vec![ParamError { key, message, kind: ErrorKind::Syntax }])
        })?;
        Self::parse_yaml(&text, path.parent().unwrap_or(Path::new(".")), &path.display().to_string())
    }

    fn parse_yaml(text: &str, base_dir: &Path, source: &str) -> std::result::Result<Self, ParamErrors> {
        let flat = value::flatten_yaml(text, source).map_err(ParamErrors)?;
        build::build(&flat, &absolute(base_dir))
    }

    /// Builds from dotted keys as r2r delivers them (`node.params`); relative paths against the current
    /// directory.
    pub fn from_flat(params: &BTreeMap<String, ParamValue>) -> std::result::Result<Self, ParamErrors> {
        Self::from_flat_in(params, &current_dir())
    }

    /// Builds from dotted keys; relative paths against `base_dir`.
    pub fn from_flat_in(
        params: &BTreeMap<String, ParamValue>,
        base_dir: &Path,
    ) -> std::result::Result<Self, ParamErrors> {
        build::build(&value::Flat::from_map(params), &absolute(base_dir))
    }

    /// The camera topics.
    pub fn input_topics(&self) -> &[InputTopic] {
        &self.input.topics
    }

    /// QoS reliability of the camera subscriptions.
    pub fn reliability(&self) -> Reliability {
        self.input.reliability
    }

    /// The output switches.
    pub fn outputs(&self) -> &OutputSwitches {
        &self.outputs
    }

    /// Class colours.
    pub fn palette(&self) -> &Palette {
        &self.colors
    }

    /// The colour of a class (palette with overrides).
    pub fn color(&self, class_id: u16) -> [u8; 3] {
        self.colors.color(class_id)
    }

    /// The segmenter configuration. Fails if the device is absent (e.g. `cuda` on a machine without a GPU) or a
    /// labels file became unreadable since validation.
    pub fn segmenter_config(&self) -> Result<SegmenterConfig> {
        let device = parse_device(&self.device).map_err(|e| Error::Input(format!("device: {e}")))?;
        let mut linear_heads = Vec::new();
        let mut eomt = None;
        for h in &self.heads {
            match &h.kind {
                HeadKind::Linear { checkpoint, source, labels } => {
                    let labels = read_labels(labels.as_deref(), &h.name)?;
                    linear_heads.push(LinearHeadSpec { checkpoint: checkpoint.clone(), source: source.clone(), labels })
                }
                HeadKind::Eomt { model, outputs, labels } => {
                    let labels = read_labels(labels.as_deref(), &h.name)?;
                    eomt = Some(EomtSpec { model: model.spec()?, outputs: *outputs, labels });
                }
            }
        }
        let (backbone, variant) = match &self.backbone {
            Some(b) => (Some(b.checkpoint.spec()?), b.variant.clone()),
            None => (None, None),
        };
        Ok(SegmenterConfig {
            device,
            kind: self.precision.kind(),
            resize: self.resize,
            postprocess: self.thresholds,
            backbone,
            variant,
            linear_heads,
            eomt,
        })
    }

    /// The effective parameters (defaults filled in, paths resolved) as dotted keys: what the node can log, and
    /// what [`Params::from_flat_in`] turns back into these parameters.
    pub fn to_flat(&self) -> BTreeMap<String, ParamValue> {
        let mut m = BTreeMap::new();
        let s = |v: &str| ParamValue::String(v.to_string());
        let path = |p: &Path| ParamValue::String(p.display().to_string());
        let model = |r: &ModelRef| match r {
            ModelRef::Path(p) => path(p),
            ModelRef::Hub(id) => s(id),
        };
        m.insert("base_dir".into(), path(&self.base_dir));
        m.insert("device".into(), s(&self.device));
        m.insert("precision".into(), s(self.precision.as_str()));
        if let Some(b) = &self.backbone {
            m.insert("backbone.checkpoint".into(), model(&b.checkpoint));
            if let Some(v) = &b.variant {
                m.insert("backbone.variant".into(), s(v));
            }
        }
        for h in &self.heads {
            let k = |f: &str| format!("heads.{}.{f}", h.name);
            let labels = match &h.kind {
                HeadKind::Linear { checkpoint, source, labels } => {
                    m.insert(k("type"), s("linear"));
                    m.insert(k("checkpoint"), path(checkpoint));
                    let source = if *source == LinearHeadSource::Eomt { "eomt" } else { "backbone" };
                    m.insert(k("source"), s(source));
                    labels
                }
                HeadKind::Eomt { model: r, outputs, labels } => {
                    m.insert(k("type"), s("eomt"));
                    m.insert(k("checkpoint"), model(r));
                    m.insert(k("outputs"), s(outputs_name(outputs)));
                    labels
                }
            };
            if let Some(l) = labels {
                m.insert(k("labels"), path(l));
            }
        }
        m.insert(
            "input.topics".into(),
            ParamValue::StringArray(self.input.topics.iter().map(|t| t.name.clone()).collect()),
        );
        let rel = if self.input.reliability == Reliability::Reliable { "reliable" } else { "best_effort" };
        m.insert("input.reliability".into(), s(rel));
        let int = |v: u32| ParamValue::Int(i64::from(v));
        match self.resize.resize {
            Resize::Keep => {
                m.insert("resize.mode".into(), s("keep"));
            }
            Resize::ShortSide(n) => {
                m.insert("resize.mode".into(), s("short_side"));
                m.insert("resize.short_side".into(), int(n));
            }
            Resize::Fixed { height, width } => {
                m.insert("resize.mode".into(), s("fixed"));
                m.insert("resize.height".into(), int(height));
                m.insert("resize.width".into(), int(width));
            }
        }
        if self.resize.max_long_side != self.resize.resize.default_max_long_side() {
            // 0: no cap where absent would mean the default cap.
            m.insert("resize.max_long_side".into(), int(self.resize.max_long_side.unwrap_or(0)));
        }
        let pad = if self.resize.pad == PadMode::Stretch { "stretch" } else { "bottom_right" };
        m.insert("resize.pad".into(), s(pad));
        let t = &self.thresholds;
        m.insert("thresholds.score".into(), ParamValue::Double(t.score_threshold));
        m.insert("thresholds.query".into(), ParamValue::Double(t.query_threshold));
        m.insert("thresholds.mask".into(), ParamValue::Double(t.mask_threshold));
        m.insert("thresholds.overlap".into(), ParamValue::Double(t.overlap_threshold));
        m.insert("thresholds.top_k".into(), ParamValue::Int(t.top_k as i64));
        let o = &self.outputs;
        for (k, v) in [
            ("semantic", o.semantic),
            ("semantic_color", o.semantic_color),
            ("instances", o.instances),
            ("instance_ids", o.instance_ids),
            ("detections", o.detections),
            ("label_info", o.label_info),
            ("overlay", o.overlay),
        ] {
            m.insert(format!("outputs.{k}"), ParamValue::Bool(v));
        }
        m.insert("colors.palette".into(), s(self.colors.name.as_str()));
        m.insert("colors.overlay_alpha".into(), ParamValue::Double(self.colors.overlay_alpha));
        for (id, c) in &self.colors.overrides {
            m.insert(format!("colors.overrides.{id}"), ParamValue::IntArray(c.iter().map(|&v| i64::from(v)).collect()));
        }
        m.insert("node.max_batch".into(), ParamValue::Int(self.node.max_batch as i64));
        m.insert("node.diagnostics_period".into(), ParamValue::Double(self.node.diagnostics_period));
        m.insert("node.warn_interval".into(), ParamValue::Double(self.node.warn_interval));
        m.insert("node.threads".into(), ParamValue::Int(self.node.threads as i64));
        m
    }
}

/// The `outputs` name of an EoMT head's [`MaskOutputs`].
fn outputs_name(o: &MaskOutputs) -> &'static str {
    match (o.semantic, o.instances, o.panoptic) {
        (SemanticSource::Scores, InstanceSource::Off, false) => "semantic",
        (SemanticSource::Off, InstanceSource::TopK, false) => "instances",
        _ => "panoptic",
    }
}

/// A head's labels file, read (it was validated; it may have changed since).
fn read_labels(path: Option<&std::path::Path>, head: &str) -> Result<Option<Labels>> {
    path.map(|p| Labels::from_file(p).map_err(|e| Error::Input(format!("heads.{head}.labels: {e}")))).transpose()
}

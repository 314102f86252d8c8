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
//! <!-- params-table:begin (generated from src/params/table.rs; to rewrite: DINOSEG_BLESS=1 cargo test --release --locked --test params_table) -->
//! | key | type | default | live | meaning |
//! |---|---|---|---|---|
//! | `device` | string | `cuda` | no | cpu, cuda or cuda:N: where the model runs; `cuda` is `cuda:0` (also `gpu`). Not checked against the machine by `check-params` (the file may be for the robot): the node and `dinoseg run` fail at start-up if the GPU is absent |
//! | `precision` | string | `fp32` | no | fp32, fp16 or bf16: the model's weights and activations |
//! | `base_dir` | string | the params file's directory | no | directory relative paths resolve against (default: the params file's) |
//! | `backbone.checkpoint` | string | none | no | DINOv3 backbone of linear heads with source backbone: directory, file or hub id; a transformers directory, `.safetensors` (official names, or transformers names with `backbone.variant`), official `.pth`, or hub id `org/name[@rev]` |
//! | `backbone.variant` | string | none | no | catalog variant of a bare .safetensors backbone in transformers names; `vits16` ... `vit7b16`, `convnext_*` (`dinoseg backbones`) |
//! | `heads.<name>.type` | string | required | no | linear, eomt or mask2former |
//! | `heads.<name>.checkpoint` | string | required | no | linear: a .safetensors head; eomt: an eomt_dinov3 directory or hub id; mask2former: a mask2former directory; a linear head may also be an official `.pth` with its sidecar; a mask2former directory has a dinov3_convnext or dinov3_vit `backbone_config`, or is in the DINOv3-Mask2former adapter layout |
//! | `heads.<name>.source` | string | `backbone` | no | linear heads: the features they read, backbone, eomt or mask2former; `eomt` / `mask2former` read the mask model's encoder in its own pass (no second backbone) |
//! | `heads.<name>.outputs` | string | `panoptic` | no | eomt and mask2former heads: panoptic, semantic or instances; `panoptic`: panoptic map, semantic map and thing instances from it; `semantic`: class scores; `instances`: top-k |
//! | `heads.<name>.labels` | string | the checkpoint's names | no | labels file replacing the checkpoint's class names; format: `src/postprocess/labels.rs`; its class count must match the checkpoint's |
//! | `heads.<name>.layers` | int list | the variant file named in dinov3_backbone_config.json | no | mask2former adapter layout: the DINOv3 blocks (0-based) the adapter taps; known: `mask2former_dinov3_vitsmallplus*` [2, 5, 8, 11], `mask2former_dinov3_vitlarge*` [5, 11, 17, 23] |
//! | `heads.<name>.num_heads` | int in 1..=1024 | the catalog variant of the ViT's size | no | mask2former adapter layout: the DINOv3 ViT's attention heads |
//! | `input.topics` | string list | `["camera/image_raw"]` | no | camera topics (a name ending in /compressed: CompressedImage); cameras share one model; other names are `sensor_msgs/Image`. Relative names (no leading `/`) follow the node's namespace and remapping (`-r __ns:=/robot1` gives `/robot1/camera/image_raw`); the runner reads them in the root namespace |
//! | `input.reliability` | string | `best_effort` | no | QoS of the camera subscriptions: best_effort or reliable; `best_effort` is the sensor-data QoS |
//! | `resize.mode` | string | `keep` | no | keep, short_side or fixed: the model input size |
//! | `resize.short_side` | int in 1..=16384 | required with `short_side` | no | short side of the model input (mode short_side) |
//! | `resize.max_long_side` | int in 0..=16384 | 2048 (`keep`; `short_side` below 2048) | no | cap on the long side of the model input (modes keep, short_side; default 2048, 0 = no cap); greater than `short_side`. A planned input over 2^26 pixels is refused whatever the cap (`MAX_MODEL_PIXELS`) |
//! | `resize.height` | int in 1..=16384 | required with `fixed` | no | model input height (mode fixed) |
//! | `resize.width` | int in 1..=16384 | required with `fixed` | no | model input width (mode fixed) |
//! | `resize.pad` | string | `bottom_right` | no | bottom_right (pad to the patch multiple) or stretch; `stretch` rounds the size to the patch multiple |
//! | `thresholds.score` | double in [0, 1] | 0.8 | yes | instances: keep those scoring at least this |
//! | `thresholds.query` | double in [0, 1] | 0.8 | yes | panoptic: keep queries whose class probability exceeds this |
//! | `thresholds.mask` | double in (0, 1) | 0.5 | yes | mask probability threshold |
//! | `thresholds.overlap` | double in [0, 1] | 0.8 | yes | panoptic: a segment keeps at least this part of its mask |
//! | `thresholds.top_k` | int in 1..=100000 | 100 | yes | instances: (query, class) pairs considered per image |
//! | `outputs.semantic` | bool | true if a head gives a semantic map | yes | publish the label image (mono8/mono16) |
//! | `outputs.semantic_color` | bool | true if a head gives a semantic map | yes | publish the label image in colour |
//! | `outputs.instances` | bool | true if a mask model (EoMT, Mask2Former) gives instances | yes | publish the instance masks |
//! | `outputs.instance_ids` | bool | true if a mask model (EoMT, Mask2Former) gives instances | yes | publish the instance-id image |
//! | `outputs.detections` | bool | false | yes | publish the instances' boxes |
//! | `outputs.label_info` | bool | true | yes | publish the class names (once per camera, latched) |
//! | `outputs.overlay` | bool | false | yes | publish the camera image with the segmentation blended in |
//! | `outputs.semantic_from` | string | empty: automatic | no | the head whose semantic map is the frame's semantic and semantic_color (empty: automatic); a linear head, or an EoMT head with `outputs: panoptic` or `semantic` |
//! | `colors.palette` | string | `default` | yes | class colours: default or pascal; `default`: 256 distinct colours; `pascal`: the VOC colour map |
//! | `colors.overlay_alpha` | double in [0, 1] | 0.5 | yes | weight of the class colour in the overlay |
//! | `colors.overrides.<id>` | int list [r, g, b] or "#rrggbb" | none | yes | colour of class &lt;id&gt; |
//! | `node.max_batch` | int in 1..=64 | the number of cameras | yes | most frames (one per camera) in one forward pass |
//! | `node.diagnostics_period` | double in [0.05, 3600] | 1.0 | yes | seconds between two /diagnostics messages |
//! | `node.warn_interval` | double in [0.05, 3600] | 5.0 | yes | seconds between two warnings of one kind for one camera; the others are counted |
//! | `node.threads` | int in 0..=1024 | 0 | no | libtorch CPU threads (0: its default); node and `dinoseg run`; 1 avoids OpenMP stalls on a busy CPU |
//! <!-- params-table:end -->
//!
//! The table is generated from [`table::KEYS`] ([`doc::markdown`]; `tests/params_table.rs` checks this copy and
//! the README's). The thresholds, `outputs.*` but `outputs.semantic_from`, `colors.*` and `node.*` but
//! `node.threads` can change while the node runs ([`Params::set_live`]: the next frame uses them); the other keys
//! are read at start-up.
//!
//! `heads` may also be a YAML list of maps with an optional `name` (default: the index) — for the offline runner
//! only: ROS 2 parameters cannot hold a list of maps, so a file for the node uses named sub-maps. Heads run in
//! name order (numeric names numerically); the head plan ([`crate::plan`]) routes their results. Integers are
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
pub mod doc;
mod errors;
mod flat;
mod live;
mod mask_model;
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

use crate::checkpoint::Mask2FormerOptions;
use crate::device::parse_device;
use crate::error::{Error, Result};
use crate::pipeline::preprocess::ResizePolicy;
use crate::plan::{HeadDesc, HeadPlan, HeadType, PlanError};
use crate::postprocess::{Labels, MaskOutputs, PostprocessConfig};
use crate::segmenter::{
    EomtSpec, HeadSpec, HeadSpecKind, LinearHeadSource, LinearHeadSpec, Mask2FormerSpec, SegmenterConfig,
};
pub use crate::topics::OutputSet;
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
    /// The name's precision ([`crate::device::precision_kind`]: one parser of the names).
    pub fn parse(s: &str) -> Option<Self> {
        match crate::device::precision_kind(s)? {
            Kind::Float => Some(Self::Fp32),
            Kind::Half => Some(Self::Fp16),
            Kind::BFloat16 => Some(Self::Bf16),
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

impl HeadParams {
    /// What the head plan needs to know of this head.
    pub fn describe(&self) -> HeadDesc {
        match &self.kind {
            HeadKind::Linear { source, .. } => HeadDesc::linear(&self.name, *source),
            HeadKind::Eomt { outputs, .. } => HeadDesc::mask_model(&self.name, HeadType::Eomt, outputs),
            HeadKind::Mask2Former { outputs, .. } => HeadDesc::mask_model(&self.name, HeadType::Mask2Former, outputs),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum HeadKind {
    Linear {
        checkpoint: PathBuf,
        source: LinearHeadSource,
        labels: Option<PathBuf>,
    },
    Eomt {
        model: ModelRef,
        outputs: MaskOutputs,
        labels: Option<PathBuf>,
    },
    /// `layers` and `num_heads`: for the DINOv3-Mask2former adapter layout (see [`Mask2FormerOptions`]).
    Mask2Former {
        model: ModelRef,
        outputs: MaskOutputs,
        labels: Option<PathBuf>,
        layers: Option<Vec<i64>>,
        num_heads: Option<i64>,
    },
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

impl Reliability {
    /// Every value's name (`input.reliability`).
    pub const NAMES: [&'static str; 2] = ["best_effort", "reliable"];

    /// The name the parameters write.
    pub fn name(self) -> &'static str {
        match self {
            Reliability::BestEffort => Self::NAMES[0],
            Reliability::Reliable => Self::NAMES[1],
        }
    }

    /// A name (any case); None for any other text.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        [Reliability::BestEffort, Reliability::Reliable].into_iter().find(|r| r.name().eq_ignore_ascii_case(s))
    }
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
    /// The outputs published / written.
    pub outputs: OutputSet,
    /// `outputs.semantic_from`: the head whose semantic map is the frame's `semantic` / `semantic_color`, a
    /// configured head that gives one; None: the segmenter chooses.
    pub semantic_from: Option<String>,
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

    /// The outputs switched on.
    pub fn outputs(&self) -> OutputSet {
        self.outputs
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
        let device = parse_device(&self.device).map_err(|e| Error::parameter("device", e.to_string()))?;
        let mut heads = Vec::new();
        for h in &self.heads {
            let kind = match &h.kind {
                HeadKind::Linear { checkpoint, source, labels } => {
                    let labels = read_labels(labels.as_deref(), &h.name)?;
                    HeadSpecKind::Linear(LinearHeadSpec { checkpoint: checkpoint.clone(), source: *source, labels })
                }
                HeadKind::Eomt { model, outputs, labels } => {
                    let labels = read_labels(labels.as_deref(), &h.name)?;
                    HeadSpecKind::Eomt(EomtSpec { model: model.spec()?, outputs: *outputs, labels })
                }
                HeadKind::Mask2Former { model, outputs, labels, layers, num_heads } => {
                    let labels = read_labels(labels.as_deref(), &h.name)?;
                    let options = Mask2FormerOptions { layers: layers.clone(), num_heads: *num_heads };
                    HeadSpecKind::Mask2Former(Mask2FormerSpec {
                        model: model.spec()?,
                        outputs: *outputs,
                        labels,
                        options,
                    })
                }
            };
            heads.push(HeadSpec { name: h.name.clone(), kind });
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
            heads,
            semantic_from: self.semantic_from.clone(),
            outputs: self.outputs,
        })
    }

    /// The head plan of these parameters ([`crate::plan`]): what start-up builds, without loading weights.
    pub fn head_plan(&self) -> std::result::Result<HeadPlan, PlanError> {
        plan_of(self.heads.iter(), self.backbone.is_some(), self.semantic_from.as_deref(), self.outputs)
    }
}

/// The head plan of `heads` (a backbone configured or not), the main semantic head and the outputs on.
pub(crate) fn plan_of<'a>(
    heads: impl Iterator<Item = &'a HeadParams>,
    backbone: bool,
    semantic_from: Option<&str>,
    outputs: OutputSet,
) -> std::result::Result<HeadPlan, PlanError> {
    HeadPlan::new(heads.map(HeadParams::describe).collect(), backbone, semantic_from, outputs)
}

/// A head's labels file, read (it was validated; it may have changed since).
fn read_labels(path: Option<&std::path::Path>, head: &str) -> Result<Option<Labels>> {
    path.map(|p| Labels::from_file(p).map_err(|e| Error::parameter(format!("heads.{head}.labels"), e.to_string())))
        .transpose()
}

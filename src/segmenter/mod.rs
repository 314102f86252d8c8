//! Frames in, typed results out: preprocessing, each encoder pass of the head plan ([`crate::plan`]) run once per
//! batch for every head that reads it, post-processing at the camera's resolution, and the heads' results routed
//! into frames as the plan says. The offline runner and the ROS node both call this.
//!
//! Sharing: all linear heads on one backbone run on a single forward that returns the union of their dense
//! layers; linear heads declared on the mask model's encoder (`LinearHeadSource::Masks`: `source: eomt` or
//! `mask2former`) read their features from the mask model's pass itself. So a linear head beside an EoMT or
//! Mask2Former head costs one 1x1 conv, not a second backbone.

mod mask_model;

use crate::catalog::Normalization;
use crate::checkpoint::{self, Mask2FormerOptions};
use crate::error::{Error, Result};
use crate::model::heads::linear::LinearHead;
use crate::model::{BackboneOutput, FeatureMap, ForwardOptions, LoadedBackbone};
use crate::pipeline::preprocess::{preprocess_batch, Letterbox, ResizePolicy};
use crate::pipeline::RgbImage;
use crate::plan::{HeadDesc, HeadPlan, HeadType, Pass};
use crate::postprocess::{self, FrameSegmentation, HeadSemantic, Labels, MaskOutputs, PostprocessConfig};
use crate::topics::OutputSet;
use mask_model::{mask_frames, MaskModel};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tch::{nn, Device, Kind, Tensor};

/// Which encoder pass a linear head reads: the segmenter's backbone ([`Pass::Backbone`]) or the mask model's
/// encoder ([`Pass::Masks`], no extra backbone pass).
pub type LinearHeadSource = Pass;

/// A linear semantic head to run.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHeadSpec {
    pub checkpoint: PathBuf,
    pub source: LinearHeadSource,
    /// Class names (and thing/stuff split) overriding the checkpoint's metadata.
    pub labels: Option<Labels>,
}

/// An EoMT head to run.
#[derive(Debug, Clone, PartialEq)]
pub struct EomtSpec {
    /// A transformers `eomt_dinov3` directory or hub id.
    pub model: String,
    pub outputs: MaskOutputs,
    /// Class names and thing/stuff split; default: the checkpoint's `id2label`, every class a thing.
    pub labels: Option<Labels>,
}

/// A Mask2Former head to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask2FormerSpec {
    /// A transformers `mask2former` directory (any of the three forms, see `checkpoint::mask2former`).
    pub model: String,
    pub outputs: MaskOutputs,
    /// Class names and thing/stuff split; default: the checkpoint's `id2label`, every class a thing.
    pub labels: Option<Labels>,
    /// The adapter layout's tapped blocks and ViT head count, where the checkpoint does not say.
    pub options: Mask2FormerOptions,
}

/// What one head is, by kind (the parameters' `heads.<name>.type`).
#[derive(Debug, Clone, PartialEq)]
pub enum HeadSpecKind {
    Linear(LinearHeadSpec),
    Eomt(EomtSpec),
    Mask2Former(Mask2FormerSpec),
}

/// One configured head.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadSpec {
    /// The key under `heads`: names its own topics.
    pub name: String,
    pub kind: HeadSpecKind,
}

impl HeadSpec {
    pub fn linear(name: impl Into<String>, spec: LinearHeadSpec) -> Self {
        HeadSpec { name: name.into(), kind: HeadSpecKind::Linear(spec) }
    }
    pub fn eomt(name: impl Into<String>, spec: EomtSpec) -> Self {
        HeadSpec { name: name.into(), kind: HeadSpecKind::Eomt(spec) }
    }
    pub fn mask2former(name: impl Into<String>, spec: Mask2FormerSpec) -> Self {
        HeadSpec { name: name.into(), kind: HeadSpecKind::Mask2Former(spec) }
    }

    /// What the head plan needs to know of it.
    pub fn describe(&self) -> HeadDesc {
        match &self.kind {
            HeadSpecKind::Linear(l) => HeadDesc::linear(&self.name, l.source),
            HeadSpecKind::Eomt(e) => HeadDesc::mask_model(&self.name, HeadType::Eomt, &e.outputs),
            HeadSpecKind::Mask2Former(m) => HeadDesc::mask_model(&self.name, HeadType::Mask2Former, &m.outputs),
        }
    }
}

/// What the segmenter loads and how it runs.
#[derive(Debug, Clone)]
pub struct SegmenterConfig {
    pub device: Device,
    pub kind: Kind,
    pub resize: ResizePolicy,
    pub postprocess: PostprocessConfig,
    /// Backbone spec (directory, file, hub id) for linear heads with `LinearHeadSource::Backbone`.
    pub backbone: Option<String>,
    /// Catalog variant for a bare `.safetensors` backbone.
    pub variant: Option<String>,
    /// The heads, in name order.
    pub heads: Vec<HeadSpec>,
    /// The head giving the frame's main semantic map (`outputs.semantic_from`); None: the plan's default.
    pub semantic_from: Option<String>,
    /// The outputs switched on at start-up: a head whose results reach none of them is refused.
    pub outputs: OutputSet,
}

struct Linear {
    head: LinearHead,
    _vs: nn::VarStore,
    /// Dense layers (ViT blocks or ConvNeXt stages) this head reads.
    layers: Vec<i64>,
    labels: Labels,
}

/// Time spent per stage on one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    pub preprocess: Duration,
    pub model: Duration,
    pub postprocess: Duration,
}

/// A loaded head.
enum Loaded {
    Linear(Box<Linear>),
    /// A mask head (EoMT or Mask2Former); its model is the mask pass's.
    Masks {
        outputs: MaskOutputs,
        labels: Labels,
    },
}

/// Loaded models, ready for frames.
pub struct Segmenter {
    cfg: SegmenterConfig,
    plan: HeadPlan,
    norm: Normalization,
    backbone: Option<LoadedBackbone>,
    /// The mask model (EoMT or Mask2Former), if a head is one.
    masks: Option<MaskModel>,
    /// In the plan's head order.
    heads: Vec<Loaded>,
    /// Forward passes run so far, per [`Pass`] (index: [`pass_index`]).
    passes: [AtomicU64; 2],
    /// The dense layers each pass computes: the union of those its linear heads read (index: [`pass_index`]).
    dense_layers: [Vec<i64>; 2],
}

/// The part of a shared backbone output that one head reads (shallow copies, no tensor data copied).
fn view(out: &BackboneOutput, layers: &[i64]) -> Result<BackboneOutput> {
    let features = layers
        .iter()
        .map(|&i| {
            usize::try_from(i)
                .ok()
                .and_then(|i| out.feature(i))
                .map(|f| FeatureMap { index: f.index, stride: f.stride, tensor: f.tensor.shallow_clone() })
                .ok_or_else(|| Error::Internal(format!("the feature map of level {i} was not computed")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(BackboneOutput {
        last_hidden_state: out.last_hidden_state.shallow_clone(),
        hidden_states: Vec::new(),
        cls_token: out.cls_token.shallow_clone(),
        features,
    })
}

fn pass_index(p: Pass) -> usize {
    match p {
        Pass::Masks => 0,
        Pass::Backbone => 1,
    }
}

fn same_normalization(a: &Normalization, b: &Normalization) -> bool {
    a.mean.iter().chain(&a.std).zip(b.mean.iter().chain(&b.std)).all(|(x, y)| (x - y).abs() <= 1e-6)
}

impl Segmenter {
    /// Builds the head plan, loads every model and checks that the heads fit their backbones.
    pub fn new(cfg: SegmenterConfig) -> Result<Self> {
        cfg.postprocess.validate().map_err(Error::from)?;
        let descs: Vec<HeadDesc> = cfg.heads.iter().map(HeadSpec::describe).collect();
        let plan = HeadPlan::new(descs, cfg.backbone.is_some(), cfg.semantic_from.as_deref(), cfg.outputs)
            .map_err(|e| Error::parameter(e.key, e.message))?;
        let backbone = match &cfg.backbone {
            Some(spec) => Some(checkpoint::load_backbone(spec, cfg.variant.as_deref(), cfg.device, cfg.kind)?),
            None => None,
        };
        let mut masks: Option<(MaskModel, Normalization)> = None;
        for h in &cfg.heads {
            if let Some(m) = MaskModel::load(h, cfg.device, cfg.kind)? {
                masks = Some(m);
            }
        }
        // One preprocessing feeds every pass: the models must normalise pixels alike.
        if let (Some((_, nb)), Some((m, ne))) = (&backbone, &masks) {
            if !same_normalization(nb, ne) {
                return Err(Error::parameter(
                    "backbone.checkpoint",
                    format!(
                        "the backbone normalises pixels with mean {:?} std {:?} and the mask model ({}) with mean \
                         {:?} std {:?}; they share one preprocessing: use weights trained with the same normalisation",
                        nb.mean,
                        nb.std,
                        m.encoder_name(),
                        ne.mean,
                        ne.std
                    ),
                ));
            }
        }
        let mut heads = Vec::new();
        for h in &cfg.heads {
            let loaded = match &h.kind {
                HeadSpecKind::Eomt(EomtSpec { outputs, labels, .. })
                | HeadSpecKind::Mask2Former(Mask2FormerSpec { outputs, labels, .. }) => {
                    let labels = match (labels, &masks) {
                        (Some(l), _) => l.clone(),
                        (None, Some((m, _))) => Labels::from_names(m.class_names()),
                        (None, None) => Labels::from_names(Vec::new()),
                    };
                    Loaded::Masks { outputs: *outputs, labels }
                }
                HeadSpecKind::Linear(spec) => {
                    let model = masks.as_ref().map(|(m, _)| m);
                    Loaded::Linear(Box::new(load_linear(spec, backbone.as_ref().map(|(b, _)| b), model, cfg.device)?))
                }
            };
            heads.push(loaded);
        }
        if let (Some((b, _)), Some((m, _))) = (&backbone, &masks) {
            if b.backbone.size_multiple() != m.size_multiple() {
                return Err(Error::parameter(
                    "backbone.checkpoint",
                    format!(
                        "the backbone and the mask model need different input multiples ({} and {})",
                        b.backbone.size_multiple(),
                        m.size_multiple()
                    ),
                ));
            }
        }
        let norm = match (&backbone, &masks) {
            (Some((_, n)), _) | (None, Some((_, n))) => *n,
            (None, None) => Normalization::IMAGENET,
        };
        let mut dense_layers: [Vec<i64>; 2] = Default::default();
        for (pass, on) in plan.passes() {
            let layers = &mut dense_layers[pass_index(*pass)];
            for &i in on {
                if let Some(Loaded::Linear(l)) = heads.get(i) {
                    layers.extend(&l.layers);
                }
            }
            layers.sort_unstable();
            layers.dedup();
        }
        Ok(Segmenter {
            cfg,
            plan,
            norm,
            backbone: backbone.map(|(b, _)| b),
            masks: masks.map(|(m, _)| m),
            heads,
            passes: [AtomicU64::new(0), AtomicU64::new(0)],
            dense_layers,
        })
    }

    /// The head plan: passes, heads and the routing of their results.
    pub fn plan(&self) -> &HeadPlan {
        &self.plan
    }

    /// Whether frames carry instances (a mask head whose outputs include them).
    pub fn produces_instances(&self) -> bool {
        self.plan.instances().is_some()
    }

    /// The classes (names, thing / stuff) of the head giving instances and the panoptic map, if any.
    pub fn instance_labels(&self) -> Option<&Labels> {
        match self.heads.get(self.plan.instances()?)? {
            Loaded::Masks { labels, .. } => Some(labels),
            Loaded::Linear(_) => None,
        }
    }

    /// The post-processing thresholds frames are segmented with.
    pub fn postprocess(&self) -> &PostprocessConfig {
        &self.cfg.postprocess
    }

    /// Replaces the post-processing thresholds for the next frames (live parameters); an invalid configuration
    /// is refused and the current one kept.
    pub fn set_postprocess(&mut self, cfg: PostprocessConfig) -> Result<()> {
        cfg.validate().map_err(Error::from)?;
        self.cfg.postprocess = cfg;
        Ok(())
    }

    /// Pixel normalisation of the loaded weights.
    pub fn normalization(&self) -> Normalization {
        self.norm
    }

    /// Forward passes run so far, all passes together; one per pass and batch, however many heads read it.
    pub fn backbone_passes(&self) -> u64 {
        Pass::ALL.into_iter().map(|p| self.passes(p)).sum()
    }

    /// Forward passes of one encoder run so far.
    pub fn passes(&self, pass: Pass) -> u64 {
        self.passes[pass_index(pass)].load(Ordering::Relaxed)
    }

    /// Input side multiple the models need.
    pub fn size_multiple(&self) -> u32 {
        match (&self.backbone, &self.masks) {
            (Some(b), _) => b.backbone.size_multiple() as u32,
            (None, Some(m)) => m.size_multiple() as u32,
            (None, None) => 16,
        }
    }

    /// The padded model-input size of a `height` x `width` frame: frames with equal sizes can share a batch.
    /// None where the resize policy refuses the size.
    pub fn input_size(&self, height: u32, width: u32) -> Option<(u32, u32)> {
        let policy = self.cfg.resize.with_multiple(self.size_multiple().max(self.cfg.resize.multiple));
        policy.plan(height, width).ok().map(|lb| (lb.padded_h, lb.padded_w))
    }

    /// Segments camera images (one batch: they must preprocess to one size, e.g. frames of one camera).
    pub fn segment(&self, images: &[&RgbImage]) -> Result<Vec<FrameSegmentation>> {
        self.segment_timed(images).map(|(frames, _)| frames)
    }

    /// [`Self::segment`], with the time of each stage.
    pub fn segment_timed(&self, images: &[&RgbImage]) -> Result<(Vec<FrameSegmentation>, StageTimes)> {
        let t0 = Instant::now();
        let policy = self.cfg.resize.with_multiple(self.size_multiple().max(self.cfg.resize.multiple));
        let (pixels, boxes) = preprocess_batch(images, &policy, &self.norm, self.cfg.device, self.cfg.kind)?;
        self.sync();
        let preprocess = t0.elapsed();
        let (frames, mut times) = self.segment_pixels_timed(&pixels, &boxes)?;
        times.preprocess = preprocess;
        Ok((frames, times))
    }

    /// Waits for the device, so that stage times are real.
    fn sync(&self) {
        if let Device::Cuda(i) = self.cfg.device {
            tch::Cuda::synchronize(i as i64);
        }
    }

    /// Segments preprocessed pixels [B, 3, H, W] whose geometry `boxes` describe.
    pub fn segment_pixels(&self, pixels: &Tensor, boxes: &[Letterbox]) -> Result<Vec<FrameSegmentation>> {
        self.segment_pixels_timed(pixels, boxes).map(|(frames, _)| frames)
    }

    /// Runs every pass of the plan once, each head on its pass, then routes the heads' results into frames.
    fn segment_pixels_timed(
        &self,
        pixels: &Tensor,
        boxes: &[Letterbox],
    ) -> Result<(Vec<FrameSegmentation>, StageTimes)> {
        let mut times = StageTimes::default();
        let mut results: Vec<Option<Vec<FrameSegmentation>>> = vec![None; self.heads.len()];
        for (pass, on) in self.plan.passes() {
            let want = &self.dense_layers[pass_index(*pass)];
            let t = Instant::now();
            let (shared, masks) = match pass {
                Pass::Masks => {
                    let m = self
                        .masks
                        .as_ref()
                        .ok_or_else(|| Error::Internal("the plan runs a mask pass without a mask model".into()))?;
                    let (out, features) = m.forward_with_features(pixels, want)?;
                    (features, Some(out))
                }
                Pass::Backbone => {
                    let b = self
                        .backbone
                        .as_ref()
                        .ok_or_else(|| Error::Internal("the plan runs a backbone pass without a backbone".into()))?;
                    let opts = ForwardOptions { hidden_states: false, dense_layers: Some(want.clone()) };
                    let (out, _) = b.backbone.forward(pixels, &opts)?;
                    (out.features, None)
                }
            };
            self.sync();
            times.model += t.elapsed();
            self.passes[pass_index(*pass)].fetch_add(1, Ordering::Relaxed);
            let shared = BackboneOutput {
                last_hidden_state: Tensor::new(),
                hidden_states: Vec::new(),
                cls_token: Tensor::new(),
                features: shared,
            };
            for &i in on {
                results[i] = Some(match &self.heads[i] {
                    Loaded::Linear(l) => self.run_linear(l, &shared, boxes, &mut times)?,
                    Loaded::Masks { outputs, labels } => {
                        let out =
                            masks.as_ref().ok_or_else(|| Error::Internal("the mask head has no mask pass".into()))?;
                        let t = Instant::now();
                        let frames = mask_frames(out, boxes, labels, &self.cfg.postprocess, *outputs)?;
                        times.postprocess += t.elapsed();
                        frames
                    }
                });
            }
        }
        Ok((self.route(results, boxes.len()), times))
    }

    /// The frames from the heads' results: instances from the instance head, the main semantic map from the
    /// main head, the other semantic maps as the frame's `heads`.
    fn route(&self, mut results: Vec<Option<Vec<FrameSegmentation>>>, n: usize) -> Vec<FrameSegmentation> {
        let mut extras: Vec<Vec<HeadSemantic>> = vec![Vec::new(); n];
        for &h in self.plan.extra_semantic() {
            let name = &self.plan.heads()[h].name;
            for (k, f) in results[h].iter_mut().flatten().enumerate() {
                if let (Some(sem), Some(e)) = (f.semantic.take(), extras.get_mut(k)) {
                    e.push(HeadSemantic { head: name.clone(), semantic: sem, class_names: f.class_names.clone() });
                }
            }
        }
        let main = self.plan.main_semantic();
        let mut frames = match self.plan.instances() {
            Some(i) if main != Some(i) => {
                let mut frames = results[i].take().unwrap_or_default();
                // The main head's class names describe the semantic map; instances carry their own.
                for f in &mut frames {
                    f.semantic = None;
                }
                frames
            }
            Some(i) => results[i].take().unwrap_or_default(),
            None => Vec::new(),
        };
        frames.resize_with(n, FrameSegmentation::default);
        if let Some(m) = main.filter(|&m| Some(m) != self.plan.instances()) {
            for (f, g) in frames.iter_mut().zip(results[m].take().unwrap_or_default()) {
                f.semantic = g.semantic;
                f.class_names = g.class_names;
            }
        }
        for (f, e) in frames.iter_mut().zip(extras) {
            f.heads = e;
        }
        frames
    }

    /// One linear head on a shared pass output: its semantic maps.
    fn run_linear(
        &self,
        l: &Linear,
        out: &BackboneOutput,
        boxes: &[Letterbox],
        times: &mut StageTimes,
    ) -> Result<Vec<FrameSegmentation>> {
        let t = Instant::now();
        let logits = l.head.forward(&view(out, &l.layers)?)?;
        self.sync();
        times.model += t.elapsed();
        let t = Instant::now();
        let maps = postprocess::postprocess_semantic_logits(&logits, boxes, &l.labels, &self.cfg.postprocess)
            .map_err(Error::from)?;
        times.postprocess += t.elapsed();
        Ok(maps)
    }
}

/// Loads a linear head and checks it against the pass it reads.
fn load_linear(
    spec: &LinearHeadSpec,
    backbone: Option<&LoadedBackbone>,
    masks: Option<&MaskModel>,
    device: Device,
) -> Result<Linear> {
    let (head, vs) = LinearHead::load(&spec.checkpoint, device)?;
    let (info, what) = match (&spec.source, backbone, masks) {
        (LinearHeadSource::Backbone, Some(b), _) => (b.backbone.feature_info(), "the backbone"),
        (LinearHeadSource::Masks, _, Some(m)) => (m.feature_info(), m.encoder_name()),
        // The plan refused these before anything was loaded.
        (source, _, _) => {
            return Err(Error::Internal(format!(
                "linear head {} reads {}, which is not loaded",
                spec.checkpoint.display(),
                source.describe()
            )))
        }
    };
    let picked = head.config.select(&info, what).map_err(|m| Error::checkpoint(&spec.checkpoint, m))?;
    let layers = picked.iter().map(|f| f.index as i64).collect();
    let labels = spec.labels.clone().unwrap_or_else(|| Labels::from_names(head.config.class_names.clone()));
    Ok(Linear { head, _vs: vs, layers, labels })
}

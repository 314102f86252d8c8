//! Frames in, typed results out: preprocessing, one backbone pass per frame shared by every head that reads
//! the same backbone, and post-processing at the camera's resolution. The offline runner and the ROS node both
//! call this.
//!
//! Sharing: all linear heads on one backbone run on a single forward that returns the union of their dense
//! layers; linear heads declared on the EoMT model's encoder (`LinearHeadSource::Eomt`) read their features from
//! the EoMT pass itself. So a linear head beside an EoMT head costs one 1x1 conv, not a second backbone.

use crate::catalog::Normalization;
use crate::checkpoint::{self, LoadedEomt, LoadedModel};
use crate::error::{Error, Result};
use crate::model::heads::linear::LinearHead;
use crate::model::{BackboneOutput, FeatureMap, ForwardOptions, LoadedBackbone};
use crate::pipeline::preprocess::{preprocess_batch, Letterbox, ResizePolicy};
use crate::pipeline::RgbImage;
use crate::postprocess::{self, FrameSegmentation, Labels, MaskOutputs, PostprocessConfig};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tch::{nn, Device, Kind, Tensor};

/// Which backbone a linear head reads.
#[derive(Debug, Clone, PartialEq)]
pub enum LinearHeadSource {
    /// The segmenter's backbone (`SegmenterConfig::backbone`).
    Backbone,
    /// The encoder of the EoMT model (no extra backbone pass).
    Eomt,
}

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
    pub linear_heads: Vec<LinearHeadSpec>,
    pub eomt: Option<EomtSpec>,
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

/// The results of a batch while its heads run.
struct BatchState {
    frames: Vec<FrameSegmentation>,
    /// Whether a linear head has set the semantic maps already.
    linear_done: bool,
    times: StageTimes,
}

/// Loaded models, ready for frames.
pub struct Segmenter {
    cfg: SegmenterConfig,
    norm: Normalization,
    backbone: Option<LoadedBackbone>,
    eomt: Option<(LoadedEomt, MaskOutputs, Labels)>,
    linear: Vec<(Linear, LinearHeadSource)>,
    backbone_passes: AtomicU64,
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
                .ok_or_else(|| Error::Input(format!("the feature map of level {i} was not computed")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(BackboneOutput {
        last_hidden_state: out.last_hidden_state.shallow_clone(),
        hidden_states: Vec::new(),
        cls_token: out.cls_token.shallow_clone(),
        features,
    })
}

impl Segmenter {
    /// Loads every model and checks that the heads fit their backbones.
    pub fn new(cfg: SegmenterConfig) -> Result<Self> {
        cfg.postprocess.validate().map_err(|e| Error::Input(e.to_string()))?;
        let mut norm = None;
        let backbone = match &cfg.backbone {
            Some(spec) => {
                let (b, n) = checkpoint::load_backbone(spec, cfg.variant.as_deref(), cfg.device, cfg.kind)?;
                norm = Some(n);
                Some(b)
            }
            None => None,
        };
        let eomt = match &cfg.eomt {
            Some(spec) => match checkpoint::load_model(&spec.model, None, cfg.device, cfg.kind)? {
                (LoadedModel::Eomt(m), n) => {
                    norm.get_or_insert(n);
                    let labels =
                        spec.labels.clone().unwrap_or_else(|| Labels::from_names(m.model.config.class_names()));
                    Some((*m, spec.outputs, labels))
                }
                _ => return Err(Error::Input(format!("`{}` is not an EoMT (eomt_dinov3) model", spec.model))),
            },
            None => None,
        };
        let mut linear = Vec::new();
        for spec in &cfg.linear_heads {
            let (head, vs) = LinearHead::load(&spec.checkpoint, cfg.device)?;
            let (info, what) = match (&spec.source, &backbone, &eomt) {
                (LinearHeadSource::Backbone, Some(b), _) => (b.backbone.feature_info(), "the backbone"),
                (LinearHeadSource::Eomt, _, Some((m, _, _))) => (m.model.config.feature_info(), "the EoMT encoder"),
                (LinearHeadSource::Backbone, None, _) => {
                    return Err(Error::Input(format!(
                        "linear head {} reads the backbone, but no backbone is configured",
                        spec.checkpoint.display()
                    )))
                }
                (LinearHeadSource::Eomt, _, None) => {
                    return Err(Error::Input(format!(
                        "linear head {} reads the EoMT encoder, but no EoMT model is configured",
                        spec.checkpoint.display()
                    )))
                }
            };
            let picked = head
                .config
                .select(&info, what)
                .map_err(|m| Error::Input(format!("{}: {m}", spec.checkpoint.display())))?;
            let layers = picked.iter().map(|f| f.index as i64).collect();
            let labels = spec.labels.clone().unwrap_or_else(|| Labels::from_names(head.config.class_names.clone()));
            linear.push((Linear { head, _vs: vs, layers, labels }, spec.source.clone()));
        }
        if eomt.is_none() && linear.is_empty() {
            return Err(Error::Input("no head configured: add a linear head or an EoMT model".into()));
        }
        if let (Some(b), Some((m, _, _))) = (&backbone, &eomt) {
            if b.backbone.size_multiple() != m.model.config.vit.patch_size {
                return Err(Error::Input("the backbone and the EoMT model need different input multiples".into()));
            }
        }
        let norm = norm.unwrap_or(Normalization::IMAGENET);
        Ok(Segmenter { cfg, norm, backbone, eomt, linear, backbone_passes: AtomicU64::new(0) })
    }

    /// Whether frames carry instances (an EoMT head whose outputs include them).
    pub fn produces_instances(&self) -> bool {
        self.eomt.as_ref().is_some_and(|(_, o, _)| o.instances != postprocess::InstanceSource::Off)
    }

    /// The post-processing thresholds frames are segmented with.
    pub fn postprocess(&self) -> &PostprocessConfig {
        &self.cfg.postprocess
    }

    /// Replaces the post-processing thresholds for the next frames (live parameters); an invalid configuration
    /// is refused and the current one kept.
    pub fn set_postprocess(&mut self, cfg: PostprocessConfig) -> Result<()> {
        cfg.validate().map_err(|e| Error::Input(e.to_string()))?;
        self.cfg.postprocess = cfg;
        Ok(())
    }

    /// Pixel normalisation of the loaded weights.
    pub fn normalization(&self) -> Normalization {
        self.norm
    }

    /// Backbone passes run so far (EoMT passes included); one per batch when heads share.
    pub fn backbone_passes(&self) -> u64 {
        self.backbone_passes.load(Ordering::Relaxed)
    }

    /// Input side multiple the models need.
    pub fn size_multiple(&self) -> u32 {
        match (&self.backbone, &self.eomt) {
            (Some(b), _) => b.backbone.size_multiple() as u32,
            (None, Some((m, _, _))) => m.model.config.vit.patch_size as u32,
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

    fn segment_pixels_timed(
        &self,
        pixels: &Tensor,
        boxes: &[Letterbox],
    ) -> Result<(Vec<FrameSegmentation>, StageTimes)> {
        let mut state = BatchState {
            frames: vec![FrameSegmentation::default(); boxes.len()],
            linear_done: false,
            times: StageTimes::default(),
        };
        let pp = |e: postprocess::PostprocessError| Error::Input(format!("post-processing: {e}"));

        // EoMT, with the features of the linear heads that read its encoder.
        if let Some((m, outputs, labels)) = &self.eomt {
            let mut want: Vec<i64> = self
                .linear
                .iter()
                .filter(|(_, s)| *s == LinearHeadSource::Eomt)
                .flat_map(|(l, _)| l.layers.clone())
                .collect();
            want.sort_unstable();
            want.dedup();
            let t = Instant::now();
            let (out, features, _) = m.model.forward_with_features(pixels, &want)?;
            self.sync();
            state.times.model += t.elapsed();
            self.backbone_passes.fetch_add(1, Ordering::Relaxed);
            let t = Instant::now();
            let masks = postprocess::postprocess_masks(
                &out.class_queries_logits,
                &out.masks_queries_logits,
                boxes,
                labels,
                &self.cfg.postprocess,
                *outputs,
            )
            .map_err(pp)?;
            let mut masks = masks;
            for f in &mut masks {
                // Instances are objects: stuff classes (marked in the labels) are regions, not instances.
                if f.instances.iter().any(|i| !i.is_thing) {
                    f.instances.retain(|i| i.is_thing);
                    for (k, i) in f.instances.iter_mut().enumerate() {
                        i.id = k as u32 + 1;
                    }
                }
            }
            state.times.postprocess += t.elapsed();
            let shared = BackboneOutput {
                last_hidden_state: Tensor::new(),
                hidden_states: Vec::new(),
                cls_token: Tensor::new(),
                features,
            };
            state.frames = masks;
            self.run_linear(&shared, LinearHeadSource::Eomt, boxes, &mut state)?;
        }
        if let Some(b) = &self.backbone {
            let mut want: Vec<i64> = self
                .linear
                .iter()
                .filter(|(_, s)| *s == LinearHeadSource::Backbone)
                .flat_map(|(l, _)| l.layers.clone())
                .collect();
            want.sort_unstable();
            want.dedup();
            if !want.is_empty() {
                let opts = ForwardOptions { hidden_states: false, dense_layers: Some(want) };
                let t = Instant::now();
                let (out, _) = b.backbone.forward(pixels, &opts)?;
                self.sync();
                state.times.model += t.elapsed();
                self.backbone_passes.fetch_add(1, Ordering::Relaxed);
                self.run_linear(&out, LinearHeadSource::Backbone, boxes, &mut state)?;
            }
        }
        Ok((state.frames, state.times))
    }

    /// Runs the linear heads of `source` on a shared output. The first linear head's label map becomes the
    /// frame's semantic map (and its class names the frame's): it takes precedence over EoMT's, whose instances
    /// carry their own class names.
    fn run_linear(
        &self,
        out: &BackboneOutput,
        source: LinearHeadSource,
        boxes: &[Letterbox],
        state: &mut BatchState,
    ) -> Result<()> {
        let BatchState { frames, linear_done, times } = state;
        for (l, s) in &self.linear {
            if *s != source {
                continue;
            }
            let t = Instant::now();
            let logits = l.head.forward(&view(out, &l.layers)?)?;
            self.sync();
            times.model += t.elapsed();
            let t = Instant::now();
            let maps = postprocess::postprocess_semantic_logits(&logits, boxes, &l.labels, &self.cfg.postprocess)
                .map_err(|e| Error::Input(format!("post-processing: {e}")))?;
            times.postprocess += t.elapsed();
            if !*linear_done {
                for (f, m) in frames.iter_mut().zip(maps) {
                    f.semantic = m.semantic;
                    f.class_names = m.class_names;
                }
                *linear_done = true;
            }
        }
        Ok(())
    }
}

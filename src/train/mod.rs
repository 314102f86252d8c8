//! `dinoseg train-head`: trains a DINOv3 linear head (the node's head format, [`LinearHead`]) on a frozen
//! encoder, following the DINOv3 linear segmentation protocol (facebookresearch/dinov3,
//! `dinov3/eval/segmentation/`: `config.py`, `configs/config-ade20k-linear-training.yaml`, `schedulers.py`):
//! AdamW, lr 1e-3, betas (0.9, 0.999), weight decay 1e-3, no gradient clipping, batch 16 (2 per GPU x 8),
//! warm-up then cosine decay to 0 ([`schedule`]), cross-entropy ignoring 255 on logits bilinearly up-sampled to
//! the labels, horizontal flips (`flip_prob` 0.5: here `--flip` caches both views). The official protocol's
//! random resize is `--scale-jitter` ([`jitter`]: computed on the fly, one encoder pass per image per epoch; no
//! crops); its `LAST` layer is the default.
//!
//! [`data`] reads the image / label pairs, [`features`] the encoder and the cache, [`jitter`] the on-the-fly
//! items, [`coco`] COCO panoptic sets as labels, [`fit`] the loop, [`schedule`] the arithmetic and the file
//! writer. Output: a `.safetensors` head that [`LinearHead::load`], `dinoseg run` and the node load unchanged,
//! class names in its `dinoseg.classes` metadata.

pub mod coco;
pub mod data;
pub mod features;
pub mod fit;
pub mod jitter;
pub mod schedule;

use crate::error::{Error, Result};
use crate::model::heads::linear::{LayerSelection, LinearHead, LinearHeadConfig};
use crate::pipeline::preprocess::ResizePolicy;
use crate::postprocess::Labels;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind};

pub use fit::{EpochLog, FitOptions, FitReport};

/// Everything `train-head` is told.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Any checkpoint spec the node loads (backbone, EoMT or Mask2Former model).
    pub backbone: String,
    pub variant: Option<String>,
    pub images: PathBuf,
    /// A folder of label PNGs, or a COCO panoptic JSON ([`coco`]).
    pub labels: PathBuf,
    /// The id PNG folder of a panoptic `labels` JSON (None: [`coco::default_png_dir`]).
    pub panoptic_dir: Option<PathBuf>,
    /// A labels file (the node's format); None: K = max label + 1, or the panoptic JSON's categories.
    pub classes: Option<PathBuf>,
    pub layers: LayerSelection,
    /// Validation images and labels (a folder or a panoptic JSON, as `labels`).
    pub val: Option<(PathBuf, PathBuf)>,
    /// The id PNG folder of a panoptic validation JSON.
    pub val_panoptic_dir: Option<PathBuf>,
    pub out: PathBuf,
    pub fit: FitOptions,
    pub device: Device,
    /// The cache dtype: Float, BFloat16 or Half.
    pub cache_kind: Kind,
    pub flip: bool,
    /// Scale jitter (features computed on the fly each epoch, see [`jitter`]); None: the cached path.
    pub scale_jitter: Option<jitter::ScaleJitter>,
    pub class_balanced: bool,
    pub resume: Option<PathBuf>,
    /// The preprocessing resize rule (`dinoseg run`'s default: keep the size, long side capped at 2048).
    pub resize: ResizePolicy,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub class_names: Vec<String>,
    pub train_items: usize,
    pub val_items: usize,
    /// Bytes of the cached features (training and validation).
    pub cache_feature_bytes: u64,
    pub cache_label_bytes: u64,
    pub cache_seconds: f64,
    pub fit: FitReport,
}

/// Messages as they happen (cache size, epochs).
pub trait Progress {
    fn note(&mut self, line: &str);
    fn epoch(&mut self, log: &EpochLog);
}

/// Trains and writes the head; see the module docs.
pub fn train_head(opts: &TrainOptions, progress: &mut dyn Progress) -> Result<TrainReport> {
    check_outputs(opts)?;
    let (train, train_names) = read_set(&opts.images, &opts.labels, opts.panoptic_dir.as_deref(), "--panoptic-dir")?;
    let (val, val_names) = match &opts.val {
        Some((i, l)) => read_set(i, l, opts.val_panoptic_dir.as_deref(), "--val-panoptic-dir")?,
        None => (Vec::new(), None),
    };
    let (names, source) = match (&opts.classes, train_names) {
        (Some(p), Some(_)) => {
            return Err(Error::file(
                p,
                format!(
                    "--classes: the COCO panoptic labels {} name the classes (their categories)",
                    opts.labels.display()
                ),
            ))
        }
        (None, Some(names)) => {
            let source = format!("{} lists {} categories", opts.labels.display(), names.len());
            (names, source)
        }
        (Some(p), None) => {
            let labels = Labels::from_file(p).map_err(Error::from)?;
            (labels.names().to_vec(), format!("{} names {}", p.display(), labels.len()))
        }
        (None, None) => {
            let k = data::classes_from_labels(&train);
            (Labels::generic(k).names().to_vec(), "the largest training label + 1".to_string())
        }
    };
    if let (Some(v), Some((_, path))) = (&val_names, &opts.val) {
        if *v != names {
            return Err(Error::file(
                path,
                format!("the validation categories {v:?} differ from the training classes {names:?} ({source})"),
            ));
        }
    }
    let k = names.len();
    if k == 0 {
        return Err(Error::Input("no classes: the classes file names none".into()));
    }
    data::check_classes(&train, k, &source)?;
    data::check_classes(&val, k, &source)?;

    let encoder = features::Encoder::load(&opts.backbone, opts.variant.as_deref(), opts.device)?;
    let info = encoder.feature_info();
    let mut config = LinearHeadConfig {
        num_classes: k as i64,
        in_channels: 0,
        layers: opts.layers,
        backbone: "custom".into(),
        class_names: names.clone(),
        bn_eps: 1e-5,
    };
    // The channels the official selection gives; `select` then checks the selection itself (its message names
    // the levels when the encoder is too shallow for four dense layers).
    config.in_channels = match opts.layers {
        LayerSelection::Last => info.last().map_or(0, |f| f.channels),
        LayerSelection::Dense4 => crate::catalog::dense_layers(info.len() as i64)
            .iter()
            .filter_map(|&i| usize::try_from(i).ok().and_then(|i| info.get(i)))
            .map(|f| f.channels)
            .sum(),
    };
    config.select(&info, encoder.what).map_err(Error::Input)?;
    let multiple = encoder.size_multiple().max(1) as u32;
    let policy = opts.resize.with_multiple(multiple.max(opts.resize.multiple));
    let spec =
        features::CacheSpec { config: &config, policy, device: opts.device, kind: opts.cache_kind, flip: opts.flip };
    let t = std::time::Instant::now();
    // With scale jitter the training features are computed each epoch (the encoder stays loaded); else cached.
    let mut train_cache = if opts.scale_jitter.is_none() {
        let mut tick = Ticker { set: "training", shown: 0, start: t };
        Some(features::build_cache_with(&encoder, &train, &spec, &mut |d, n| tick.tick(d, n, progress))?)
    } else {
        None
    };
    let val_cache = if val.is_empty() {
        None
    } else {
        let mut tick = Ticker { set: "validation", shown: 0, start: t };
        let spec = features::CacheSpec { flip: false, ..spec };
        Some(features::build_cache_with(&encoder, &val, &spec, &mut |d, n| tick.tick(d, n, progress))?)
    };
    let cache_seconds = t.elapsed().as_secs_f64();
    let encoder = opts.scale_jitter.is_some().then_some(encoder);
    let caches = train_cache.iter().chain(val_cache.iter());
    let feature_bytes: u64 = caches.clone().map(|c| c.feature_bytes).sum();
    let label_bytes: u64 = caches.map(|c| c.label_bytes).sum();
    let train_items = train_cache.as_ref().map_or(train.len(), |c| c.items.len());
    let what = match (&train_cache, opts.scale_jitter) {
        (Some(c), _) => format!("{} training items", c.items.len()),
        (None, Some(j)) => format!(
            "no training items (scale jitter {}-{}: the {} training images go through the encoder every epoch{})",
            j.min,
            j.max,
            train.len(),
            if opts.flip { ", mirrored with probability 0.5" } else { "" }
        ),
        (None, None) => String::new(),
    };
    progress.note(&format!(
        "feature cache: {what}{}, {:.1} MB of features ({:?}) + {:.1} MB of labels on {:?}, built in \
         {cache_seconds:.1} s",
        val_cache.as_ref().map_or(String::new(), |c| format!(" + {} validation items", c.items.len())),
        feature_bytes as f64 / 1e6,
        opts.cache_kind,
        label_bytes as f64 / 1e6,
        opts.device
    ));

    let mut vs = nn::VarStore::new(opts.device);
    let head = LinearHead::new(&vs.root(), config.clone())?;
    fit::init_head(&vs, opts.fit.seed)?;
    if let Some(path) = &opts.resume {
        resume_from(&mut vs, &config, path)?;
    }
    let mut fit_opts = opts.fit.clone();
    if opts.class_balanced {
        let counts = match &train_cache {
            Some(c) => class_counts(c, k)?,
            None => sample_class_counts(&train, k),
        };
        fit_opts.class_weights = Some(schedule::balanced_weights(&counts));
    }
    let mut on_epoch = |l: &EpochLog| progress.epoch(l);
    let report = match (&mut train_cache, &encoder, opts.scale_jitter) {
        (Some(c), _, _) => fit::fit(&head, &mut vs, c, val_cache.as_ref(), &fit_opts, &mut on_epoch)?,
        (None, Some(enc), Some(range)) => {
            let spec = jitter::JitterSpec { policy, device: opts.device, flip: opts.flip, range, seed: opts.fit.seed };
            let mut items = jitter::Jittered::new(enc, &train, &config, spec)?;
            fit::fit(&head, &mut vs, &mut items, val_cache.as_ref(), &fit_opts, &mut on_epoch)?
        }
        _ => return Err(Error::Internal("no training items: neither a cache nor scale jitter".into())),
    };
    save_head(&opts.out, &head, &vs)?;
    Ok(TrainReport {
        class_names: names,
        train_items,
        val_items: val_cache.as_ref().map_or(0, |c| c.items.len()),
        cache_feature_bytes: feature_bytes,
        cache_label_bytes: label_bytes,
        cache_seconds,
        fit: report,
    })
}

/// Cache progress: a line every 10 % of a set of 20 images or more (an encoder pass over a big set takes minutes).
struct Ticker {
    set: &'static str,
    shown: usize,
    start: std::time::Instant,
}

impl Ticker {
    fn tick(&mut self, done: usize, n: usize, progress: &mut dyn Progress) {
        if n >= 20 && done * 10 / n > self.shown {
            self.shown = done * 10 / n;
            let s = self.start.elapsed().as_secs_f64();
            progress.note(&format!("feature cache: {} {done}/{n} images, {s:.1} s", self.set));
        }
    }
}

/// A labelled set: label PNGs paired with `images`, or a COCO panoptic JSON (then with its class names).
fn read_set(
    images: &Path,
    labels: &Path,
    panoptic_dir: Option<&Path>,
    dir_flag: &str,
) -> Result<(Vec<data::Sample>, Option<Vec<String>>)> {
    let json = labels.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) || labels.is_file();
    if json {
        let dir = panoptic_dir.map_or_else(|| coco::default_png_dir(labels), Path::to_path_buf);
        let (samples, names) = coco::read_panoptic(images, labels, &dir)?;
        return Ok((samples, Some(names)));
    }
    if let Some(d) = panoptic_dir {
        return Err(Error::file(d, format!("{dir_flag} is for a COCO panoptic JSON, but the labels are a folder")));
    }
    Ok((data::read_samples(&data::pair_files(images, labels)?)?, None))
}

/// The output must not be one of the inputs.
fn check_outputs(opts: &TrainOptions) -> Result<()> {
    let backbone = PathBuf::from(&opts.backbone);
    let mut inputs: Vec<&Path> = vec![backbone.as_path(), opts.labels.as_path()];
    inputs.extend(opts.val.as_ref().map(|(_, l)| l.as_path()));
    inputs.extend(opts.classes.as_deref());
    inputs.extend(opts.resume.as_deref());
    crate::files::refuse_overwrite(&opts.out, &inputs, "--out")?;
    if backbone.is_dir() {
        for f in ["model.safetensors", "config.json"] {
            crate::files::refuse_overwrite(&opts.out, &[backbone.join(f).as_path()], "--out")?;
        }
    }
    Ok(())
}

/// Copies the weights of an existing head after checking it has our classes, channels and layers.
fn resume_from(vs: &mut nn::VarStore, config: &LinearHeadConfig, path: &Path) -> Result<()> {
    let (old, old_vs) = LinearHead::load(path, vs.device())?;
    let c = &old.config;
    if c.class_names != config.class_names {
        return Err(Error::checkpoint(
            path,
            format!(
                "--resume: its classes {:?} differ from this training's classes {:?}",
                c.class_names, config.class_names
            ),
        ));
    }
    if c.in_channels != config.in_channels || c.layers != config.layers {
        return Err(Error::checkpoint(
            path,
            format!(
                "--resume: it reads {} channels (layers {}) but this encoder gives {} (layers {})",
                c.in_channels,
                c.layers.as_str(),
                config.in_channels,
                config.layers.as_str()
            ),
        ));
    }
    vs.copy(&old_vs).map_err(|e| Error::checkpoint(path, format!("--resume: {e}")))
}

/// Labelled pixels per class over a cache.
fn class_counts(cache: &features::Cache, k: usize) -> Result<Vec<u64>> {
    let mut counts = vec![0u64; k];
    for it in &cache.items {
        let c = crate::model::guarded(|| {
            let t = it.labels.to_kind(Kind::Int64).flatten(0, -1);
            let valid = t.ne(i64::from(data::IGNORE));
            Vec::<i64>::try_from(t.masked_select(&valid).to_device(Device::Cpu).bincount::<tch::Tensor>(None, k as i64))
        })?
        .map_err(|e| Error::Runtime(format!("class counts: {e}")))?;
        for (a, b) in counts.iter_mut().zip(c) {
            *a += b.max(0) as u64;
        }
    }
    Ok(counts)
}

/// Labelled pixels per class over the label maps of `samples`.
fn sample_class_counts(samples: &[data::Sample], k: usize) -> Vec<u64> {
    let mut counts = vec![0u64; k];
    for s in samples {
        for &v in &s.labels.ids {
            if let Some(c) = counts.get_mut(usize::from(v)).filter(|_| v != data::IGNORE) {
                *c += 1;
            }
        }
    }
    counts
}

/// Writes the head in the node's format (see [`crate::model::heads::linear_format`]).
pub fn save_head(path: &Path, head: &LinearHead, vs: &nn::VarStore) -> Result<()> {
    let c = &head.config;
    let tensors: Vec<(String, tch::Tensor)> =
        vs.variables().into_iter().filter(|(n, _)| !n.ends_with("num_batches_tracked")).collect();
    let classes = serde_json::to_string(&c.class_names).map_err(|e| Error::Internal(e.to_string()))?;
    let meta = vec![
        ("dinoseg.head".to_string(), "linear".to_string()),
        ("dinoseg.layers".to_string(), c.layers.as_str().to_string()),
        ("dinoseg.backbone".to_string(), c.backbone.clone()),
        ("dinoseg.classes".to_string(), classes),
        ("dinoseg.bn_eps".to_string(), format!("{:e}", c.bn_eps)),
    ];
    schedule::write_head_file(path, &tensors, &meta)
}

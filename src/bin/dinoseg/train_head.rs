//! `dinoseg train-head`: the command line of [`dinoseg::train`] (the training itself lives in the library).

use clap::Args;
use dinoseg::device::parse_device;
use dinoseg::model::heads::linear::LayerSelection;
use dinoseg::pipeline::preprocess::ResizePolicy;
use dinoseg::train::jitter::ScaleJitter;
use dinoseg::train::{EpochLog, FitOptions, Progress, TrainOptions};
use std::path::PathBuf;
use tch::Kind;

use crate::flags;

/// The flags of `dinoseg train-head` (its help text is the doc of `Command::TrainHead` in main.rs).
#[derive(Args, Debug)]
pub struct TrainHeadArgs {
    /// The frozen encoder: any checkpoint the node loads (backbone directory, .safetensors with --variant,
    /// official .pth, hub id, or an EoMT / Mask2Former model: the head then reads its encoder).
    #[arg(long)]
    backbone: String,
    /// Catalog variant for a bare .safetensors backbone in transformers names.
    #[arg(long)]
    variant: Option<String>,
    /// Folder of training images.
    #[arg(long)]
    images: PathBuf,
    /// Folder of label PNGs (same file stems as the images), or a COCO panoptic JSON (file_name stems pair with
    /// the images; its id PNGs in --panoptic-dir).
    #[arg(long)]
    labels: PathBuf,
    /// The id PNG folder of a panoptic --labels JSON; default: the JSON's path without .json
    /// (annotations/panoptic_train2017.json -> annotations/panoptic_train2017/), as panopticapi.
    #[arg(long)]
    panoptic_dir: Option<PathBuf>,
    /// Class names, the node's labels-file format (one per line, `[id:] name`); default: K = largest label + 1,
    /// named class_<i> (a panoptic JSON names its classes: not with --classes).
    #[arg(long)]
    classes: Option<PathBuf>,
    /// Dense layers the head reads: `last` (the official linear protocol) or `4` (the four official layers).
    #[arg(long, default_value = "last", value_parser = parse_layers)]
    layers: LayerSelection,
    /// Validation images (with --val-labels): mIoU per epoch, early stopping, the best head kept.
    #[arg(long, requires = "val_labels")]
    val_images: Option<PathBuf>,
    /// Validation labels: a folder of label PNGs or a COCO panoptic JSON (the same categories), as --labels.
    #[arg(long, requires = "val_images")]
    val_labels: Option<PathBuf>,
    /// The id PNG folder of a panoptic --val-labels JSON (default as --panoptic-dir).
    #[arg(long, requires = "val_labels")]
    val_panoptic_dir: Option<PathBuf>,
    /// The head file to write (.safetensors), atomically.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 100, value_parser = flags::count(1, 1_000_000))]
    epochs: usize,
    /// Peak learning rate (official 1e-3).
    #[arg(long, default_value_t = 1e-3, value_parser = rate)]
    lr: f64,
    /// AdamW weight decay (official 1e-3).
    #[arg(long, default_value_t = 1e-3, value_parser = decay)]
    weight_decay: f64,
    /// Images per step (official 16: 2 per GPU x 8 GPUs).
    #[arg(long, default_value_t = 16, value_parser = flags::count(1, 65_536))]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Feature cache dtype: fp32, bf16 or fp16 (halves the cache of big backbones).
    #[arg(long, default_value = "fp32", value_parser = parse_cache)]
    cache_dtype: Kind,
    /// Also train on every image mirrored left to right (cached once, with mirrored labels; with --scale-jitter
    /// each image is mirrored with probability 0.5 per epoch instead).
    #[arg(long)]
    flip: bool,
    /// Scale jitter, e.g. 0.5,2 (the DINOv3 protocol's range): each epoch, each training image goes through the
    /// encoder at its inference size times a factor drawn uniformly in [MIN, MAX] (seeded). Not cached: it costs
    /// one encoder pass per training image per epoch (the validation set is still cached once).
    #[arg(long, value_name = "MIN,MAX", value_parser = ScaleJitter::parse)]
    scale_jitter: Option<ScaleJitter>,
    /// Weight the loss of class c by N / (P * n_c) (n_c its labelled training pixels, N their sum, P the classes
    /// present).
    #[arg(long)]
    class_balanced: bool,
    /// Stop when the validation mIoU has not improved for this many epochs (0: never).
    #[arg(long, default_value_t = 10, value_parser = flags::count(0, 1_000_000))]
    patience: usize,
    /// Start from this head (same classes, layers and channels, else refused).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Resize the short side to this before the encoder (as params `resize.short_side`); default: keep the size
    /// (long side capped at 2048), as `dinoseg run` does by default.
    #[arg(long, value_parser = flags::count_u32(1, u64::from(flags::MAX_SIDE)))]
    short_side: Option<u32>,
    /// CPU threads for libtorch (default: libtorch's choice).
    #[arg(long, value_parser = flags::count(1, 1024))]
    threads: Option<usize>,
}

fn parse_layers(s: &str) -> Result<LayerSelection, String> {
    LayerSelection::parse(s).ok_or_else(|| format!("`{s}` is not `last` or `4`"))
}

fn parse_cache(s: &str) -> Result<Kind, String> {
    match s {
        "fp32" | "float32" => Ok(Kind::Float),
        "bf16" | "bfloat16" => Ok(Kind::BFloat16),
        "fp16" | "float16" => Ok(Kind::Half),
        _ => Err(format!("`{s}` is not fp32, bf16 or fp16")),
    }
}

fn number(s: &str, lo: f64, lo_open: bool, hi: f64) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number"))?;
    let low_ok = if lo_open { v > lo } else { v >= lo };
    if !v.is_finite() || !low_ok || v > hi {
        let open = if lo_open { "(" } else { "[" };
        return Err(format!("{v} is not in {open}{lo}, {hi}]"));
    }
    Ok(v)
}

fn rate(s: &str) -> Result<f64, String> {
    number(s, 0.0, true, 10.0)
}

fn decay(s: &str) -> Result<f64, String> {
    number(s, 0.0, false, 10.0)
}

/// Progress on stderr: the cache notes, and one line per epoch: loss, validation mIoU (and the best so far),
/// seconds, and the time left at the mean epoch time (an upper bound when early stopping may end the run).
struct Stderr {
    epochs: usize,
    spent: f64,
    best: Option<(f64, usize)>,
}

impl Progress for Stderr {
    fn note(&mut self, line: &str) {
        eprintln!("{line}");
    }
    fn epoch(&mut self, l: &EpochLog) {
        self.spent += l.seconds;
        if let Some(m) = l.val_miou.filter(|&m| self.best.is_none_or(|(b, _)| m > b)) {
            self.best = Some((m, l.epoch));
        }
        let miou = match (l.val_miou, self.best) {
            (Some(m), Some((b, e))) => format!("  val mIoU {m:.4} (best {b:.4}, epoch {e})"),
            (Some(m), None) => format!("  val mIoU {m:.4}"),
            (None, _) => String::new(),
        };
        let left = self.spent / l.epoch.max(1) as f64 * self.epochs.saturating_sub(l.epoch) as f64;
        eprintln!(
            "epoch {:>4}/{}  loss {:.4}{miou}  {:.2} s  ETA {}",
            l.epoch,
            self.epochs,
            l.loss,
            l.seconds,
            duration(left)
        );
    }
}

/// `42 s`, `3 min 05 s`, `2 h 07 min`.
fn duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..=89 => format!("{s} s"),
        90..=5399 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

pub fn run(a: &TrainHeadArgs) -> dinoseg::Result<()> {
    if let Some(t) = a.threads {
        tch::set_num_threads(t as i32);
    }
    let resize = match a.short_side {
        Some(s) => ResizePolicy::short_side(s),
        None => ResizePolicy::default(),
    };
    let opts = TrainOptions {
        backbone: a.backbone.clone(),
        variant: a.variant.clone(),
        images: a.images.clone(),
        labels: a.labels.clone(),
        panoptic_dir: a.panoptic_dir.clone(),
        classes: a.classes.clone(),
        layers: a.layers,
        val: a.val_images.clone().zip(a.val_labels.clone()),
        val_panoptic_dir: a.val_panoptic_dir.clone(),
        out: a.out.clone(),
        fit: FitOptions {
            epochs: a.epochs,
            lr: a.lr,
            weight_decay: a.weight_decay,
            batch: a.batch,
            seed: a.seed,
            patience: a.patience,
            class_weights: None,
        },
        device: parse_device(&a.device)?,
        cache_kind: a.cache_dtype,
        flip: a.flip,
        scale_jitter: a.scale_jitter,
        class_balanced: a.class_balanced,
        resume: a.resume.clone(),
        resize,
    };
    let r = dinoseg::train::train_head(&opts, &mut Stderr { epochs: a.epochs, spent: 0.0, best: None })?;
    let best = r.fit.best_val_miou.map_or(String::new(), |m| format!(", validation mIoU {m:.4}"));
    let stop = if r.fit.stopped_early { " (stopped early)" } else { "" };
    println!(
        "wrote {} ({} classes: {}) from epoch {}{best}{stop}",
        a.out.display(),
        r.class_names.len(),
        r.class_names.join(", "),
        r.fit.kept_epoch
    );
    Ok(())
}

//! The training loop of `dinoseg train-head` over a feature cache: the DINOv3 linear protocol's head
//! (BatchNorm2d with batch statistics while training + 1x1 conv; the official head's dropout 0.1 is left out, as
//! inference skips it), logits mapped back to the label size as inference maps them
//! ([`Letterbox::crop_and_resize_back`]: bilinear, align_corners = false), cross-entropy with ignore index 255
//! averaged over the labelled pixels of the batch, AdamW (tch `nn::AdamW`) on the schedule of
//! [`super::schedule::lr_at`].
//!
//! A batch of images of different sizes is one BatchNorm batch: the feature cells of all its images are laid
//! side by side ([1, C, 1, sum h*w]) so the statistics are those of every cell of the batch, as for equal sizes.

use super::features::{Cache, Item};
use super::schedule::{lr_at, Confusion, Rng};
use crate::error::{Error, Result};
use crate::model::guarded;
use crate::model::heads::linear::LinearHead;
use crate::pipeline::preprocess::Letterbox;
use tch::{nn, nn::OptimizerConfig, Kind, Reduction, Tensor};

/// The optimisation settings.
#[derive(Debug, Clone)]
pub struct FitOptions {
    pub epochs: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub batch: usize,
    pub seed: u64,
    /// Stop when the validation mIoU has not improved for this many epochs (0: never).
    pub patience: usize,
    /// Per-class loss weights (None: plain cross-entropy).
    pub class_weights: Option<Vec<f64>>,
}

/// One epoch's record.
#[derive(Debug, Clone)]
pub struct EpochLog {
    pub epoch: usize,
    pub loss: f64,
    pub val_miou: Option<f64>,
    pub seconds: f64,
}

/// What a fit did.
#[derive(Debug, Clone)]
pub struct FitReport {
    pub epochs: Vec<EpochLog>,
    /// The epoch (1-based) whose head is kept: the best validation mIoU, or the last epoch without validation.
    pub kept_epoch: usize,
    pub best_val_miou: Option<f64>,
    pub stopped_early: bool,
}

/// The head logits [1, K, H, W] at the label size of one cached item (no gradients, running statistics).
pub fn predict(head: &LinearHead, item: &Item) -> Result<Tensor> {
    let logits = guarded(|| {
        let _g = tch::no_grad_guard();
        head.forward_concat_t(&item.features.to_kind(Kind::Float), false)
    })?;
    back_to_labels(&item.letterbox, &logits)
}

fn back_to_labels(lb: &Letterbox, logits: &Tensor) -> Result<Tensor> {
    lb.crop_and_resize_back(logits).map_err(|e| Error::Runtime(format!("mapping logits to the label size: {e}")))
}

/// Where each step's training items come from: a [`Cache`] (features computed once), or a source that computes
/// them when asked ([`super::jitter::Jittered`]: scale jitter).
pub trait TrainItems {
    /// How many items an epoch goes through.
    fn count(&self) -> usize;
    /// The items `indices` (below [`TrainItems::count`]) of `epoch` (1-based).
    fn take(&mut self, epoch: usize, indices: &[usize]) -> Result<Vec<Item>>;
}

impl TrainItems for Cache {
    fn count(&self) -> usize {
        self.items.len()
    }
    fn take(&mut self, _epoch: usize, indices: &[usize]) -> Result<Vec<Item>> {
        indices
            .iter()
            .map(|&i| self.items.get(i).map(Item::share).ok_or_else(|| Error::Internal(format!("no cached item {i}"))))
            .collect()
    }
}

/// Trains `head` (its variables in `vs`) on `train`, validating on `val` each epoch; `progress` gets each
/// epoch's record as it ends. On return `vs` holds the kept head.
pub fn fit(
    head: &LinearHead,
    vs: &mut nn::VarStore,
    train: &mut dyn TrainItems,
    val: Option<&Cache>,
    opts: &FitOptions,
    progress: &mut dyn FnMut(&EpochLog),
) -> Result<FitReport> {
    let n = train.count();
    if n == 0 || opts.batch == 0 || opts.epochs == 0 {
        return Err(Error::Input("training needs at least one item, a batch of at least 1 and 1 epoch".into()));
    }
    let k = head.config.num_classes;
    let device = vs.device();
    let weights = match &opts.class_weights {
        Some(w) => Some(guarded(|| Tensor::from_slice(w).to_kind(Kind::Float).to_device(device))?),
        None => None,
    };
    let mut opt = guarded(|| {
        nn::AdamW { beta1: 0.9, beta2: 0.999, wd: opts.weight_decay, eps: 1e-8, amsgrad: false }.build(vs, opts.lr)
    })?
    .map_err(|e| Error::Runtime(format!("AdamW: {e}")))?;
    let steps_per_epoch = n.div_ceil(opts.batch) as u64;
    let total = steps_per_epoch * opts.epochs as u64;
    let mut rng = Rng::new(opts.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut report = FitReport { epochs: Vec::new(), kept_epoch: 0, best_val_miou: None, stopped_early: false };
    let mut best: Option<Vec<(String, Tensor)>> = None;
    let mut since_best = 0usize;
    let mut step = 0u64;
    for epoch in 1..=opts.epochs {
        let start = std::time::Instant::now();
        rng.shuffle(&mut order);
        let (mut loss_sum, mut loss_n) = (0.0, 0usize);
        for chunk in order.chunks(opts.batch) {
            opt.set_lr(lr_at(opts.lr, step, total));
            step += 1;
            let owned = train.take(epoch, chunk)?;
            let items: Vec<&Item> = owned.iter().collect();
            if let Some(l) = train_step(head, &mut opt, &items, weights.as_ref(), k)? {
                loss_sum += l;
                loss_n += 1;
            }
        }
        let val_miou = match val {
            Some(v) => evaluate(head, v)?,
            None => None,
        };
        let log = EpochLog {
            epoch,
            loss: if loss_n > 0 { loss_sum / loss_n as f64 } else { f64::NAN },
            val_miou,
            seconds: start.elapsed().as_secs_f64(),
        };
        progress(&log);
        report.epochs.push(log);
        match (val, val_miou) {
            (Some(_), Some(m)) if report.best_val_miou.is_none_or(|b| m > b) => {
                report.best_val_miou = Some(m);
                report.kept_epoch = epoch;
                best = Some(snapshot(vs)?);
                since_best = 0;
            }
            (Some(_), _) => since_best += 1,
            (None, _) => report.kept_epoch = epoch,
        }
        if val.is_some() && opts.patience > 0 && since_best >= opts.patience {
            report.stopped_early = epoch < opts.epochs;
            break;
        }
    }
    if let Some(saved) = best {
        restore(vs, &saved)?;
    }
    Ok(report)
}

/// One optimisation step on `items`; the batch loss (None when no pixel of the batch is labelled).
fn train_step(
    head: &LinearHead,
    opt: &mut nn::Optimizer,
    items: &[&Item],
    weights: Option<&Tensor>,
    k: i64,
) -> Result<Option<f64>> {
    let mut sizes = Vec::with_capacity(items.len());
    let flat: Vec<Tensor> = guarded(|| {
        items
            .iter()
            .map(|it| {
                let f = it.features.to_kind(Kind::Float);
                let s = f.size();
                sizes.push((s[2], s[3]));
                f.view([s[1], s[2] * s[3]])
            })
            .collect()
    })?;
    let c = head.config.in_channels;
    let (loss, denom) = {
        let x = guarded(|| Tensor::cat(&flat, 1).view([1, c, 1, -1]))?;
        let y = guarded(|| head.forward_concat_t(&x, true))?;
        let mut offset = 0;
        let mut total: Option<Tensor> = None;
        let mut denom = 0.0;
        for (it, &(h, w)) in items.iter().zip(&sizes) {
            let yi = guarded(|| y.narrow(3, offset, h * w).view([1, k, h, w]))?;
            offset += h * w;
            let full = back_to_labels(&it.letterbox, &yi)?;
            let (l, d) = guarded(|| {
                let target = it.labels.to_kind(Kind::Int64).unsqueeze(0);
                let valid = target.ne(i64::from(super::data::IGNORE));
                let d = match weights {
                    Some(w) => {
                        (w.take(&target.where_scalarother(&valid, 0)) * valid.to_kind(Kind::Float)).sum(Kind::Double)
                    }
                    None => valid.sum(Kind::Double),
                };
                let l = full.cross_entropy_loss(&target, weights, Reduction::Sum, i64::from(super::data::IGNORE), 0.0);
                (l, d.double_value(&[]))
            })?;
            denom += d;
            total = Some(match total {
                Some(t) => t + l,
                None => l,
            });
        }
        (total, denom)
    };
    let Some(loss) = loss.filter(|_| denom > 0.0) else { return Ok(None) };
    let value = guarded(|| {
        let mean = loss / denom;
        opt.backward_step(&mean);
        mean.double_value(&[])
    })?;
    Ok(Some(value))
}

/// The mIoU of `head` on a cache (argmax of the logits at the label size; ignore pixels left out).
pub fn evaluate(head: &LinearHead, cache: &Cache) -> Result<Option<f64>> {
    let k = head.config.num_classes;
    let mut conf = Confusion::new(k as usize);
    for it in &cache.items {
        let logits = predict(head, it)?;
        let counts = guarded(|| {
            let _g = tch::no_grad_guard();
            let pred = logits.argmax(1, false).squeeze_dim(0);
            let target = it.labels.to_kind(Kind::Int64);
            let valid = target.ne(i64::from(super::data::IGNORE));
            let idx = (target.masked_select(&valid) * k + pred.masked_select(&valid)).to_device(tch::Device::Cpu);
            Vec::<i64>::try_from(idx.bincount::<Tensor>(None, k * k))
        })?
        .map_err(|e| Error::Runtime(format!("mIoU counts: {e}")))?;
        for (acc, c) in conf.counts.iter_mut().zip(counts) {
            *acc += c.max(0) as u64;
        }
    }
    Ok(conf.miou())
}

fn snapshot(vs: &nn::VarStore) -> Result<Vec<(String, Tensor)>> {
    guarded(|| {
        let _g = tch::no_grad_guard();
        let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    })
}

fn restore(vs: &nn::VarStore, saved: &[(String, Tensor)]) -> Result<()> {
    let vars = vs.variables();
    guarded(|| {
        let _g = tch::no_grad_guard();
        for (name, t) in saved {
            if let Some(var) = vars.get(name) {
                let mut var = var.shallow_clone();
                var.copy_(t);
            }
        }
    })
}

/// Starts the head from `seed` alone, not from libtorch's process-wide generator (another thread drawing from or
/// seeding that one, e.g. a second training in the same process, would change the head): the 1x1 convolution's
/// weight uniform in +-sqrt(6 / fan_in) (tch's default distribution, Kaiming uniform with the ReLU gain) drawn by our
/// own RNG in f64 and rounded to f32; the BatchNorm weight 1 (PyTorch's `nn.BatchNorm2d`, as the DINOv3 head is
/// built; tch would draw it uniform in [0, 1)); the biases 0.
pub fn init_head(vs: &nn::VarStore, seed: u64) -> Result<()> {
    let vars = vs.variables();
    let var = |name: &str| {
        vars.get(name).map(Tensor::shallow_clone).ok_or_else(|| Error::Internal(format!("linear head without {name}")))
    };
    let (weight, bn_weight) = (var("conv.weight")?, var("bn.weight")?);
    let dims = weight.size();
    let fan_in: i64 = dims.iter().skip(1).product();
    let bound = (6.0 / fan_in.max(1) as f64).sqrt();
    let mut rng = Rng::new(seed ^ 0x6865_6164); // "head": a stream apart from the shuffles' `Rng::new(seed)`
    let values: Vec<f32> =
        (0..dims.iter().product::<i64>()).map(|_| ((rng.unit() * 2.0 - 1.0) * bound) as f32).collect();
    guarded(|| {
        let _g = tch::no_grad_guard();
        let drawn = Tensor::from_slice(&values).reshape(&dims).to_device(weight.device()).to_kind(weight.kind());
        let (mut w, mut g) = (weight.shallow_clone(), bn_weight.shallow_clone());
        w.copy_(&drawn);
        let _ = g.fill_(1.0);
    })
}

//! The pieces of `dinoseg train-head` that are plain arithmetic: the learning-rate schedule of the DINOv3 linear
//! segmentation protocol, the shuffling RNG, class weights, mIoU, and the head file writer.
//!
//! Schedule: the official `config-ade20k-linear-training.yaml` (facebookresearch/dinov3,
//! `dinov3/eval/segmentation/configs/`) uses `WarmupOneCycleLR` (`dinov3/eval/segmentation/schedulers.py`) with
//! 40000 iterations, `warmup_iters` 1500, `warmup_ratio` 1e-6, `final_div_factor` inf (so the final rate is 0),
//! cosine annealing. For step s of T with W warm-up steps: s < W gives
//! `lr * (1 - (1 - s/W)(1 - 1e-6)) * (1 - s/T)`, otherwise `lr * (1 + cos(pi (s+1)/T)) / 2`. We keep its shape
//! over our step count T = epochs x steps per epoch, with W = round(T x 1500 / 40000).

use crate::error::{Error, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// The official warm-up share of the schedule: 1500 of 40000 iterations.
pub const WARMUP_SHARE: f64 = 1500.0 / 40000.0;
/// The official warm-up start ratio.
pub const WARMUP_RATIO: f64 = 1e-6;

/// The learning rate at step `s` (0-based) of `total`, for the peak rate `lr` (see the module docs).
pub fn lr_at(lr: f64, s: u64, total: u64) -> f64 {
    let total = total.max(1);
    let warmup = (total as f64 * WARMUP_SHARE).round() as u64;
    let (s_f, t_f) = (s as f64, total as f64);
    if s < warmup {
        let k = (1.0 - s_f / warmup as f64) * (1.0 - WARMUP_RATIO);
        lr * (1.0 - k) * (1.0 - s_f / t_f)
    } else {
        let pct = ((s_f + 1.0) / t_f).min(1.0);
        lr * (1.0 + (std::f64::consts::PI * pct).cos()) / 2.0
    }
}

/// SplitMix64: our shuffling RNG (small, fixed, the same on every platform).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A uniform number in [0, 1) (53 random bits).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A uniform index below `n` (n >= 1; the modulo bias is below 2^-40 for any realistic n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// Class-balanced weights: `w_c = N / (P * n_c)` for the P classes present (n_c > 0 labelled pixels, N their
/// sum), 1 for absent classes (which never occur as targets). A balanced set gets all ones; the weighted loss is
/// normalised by the weights of the pixels (as PyTorch's weighted mean cross-entropy), so only ratios matter.
pub fn balanced_weights(counts: &[u64]) -> Vec<f64> {
    let present = counts.iter().filter(|&&c| c > 0).count().max(1) as f64;
    let total: u64 = counts.iter().sum();
    counts.iter().map(|&c| if c > 0 { total as f64 / (present * c as f64) } else { 1.0 }).collect()
}

/// Accumulated confusion counts of K classes: `[gt * K + pred]`, labelled pixels only.
#[derive(Debug, Clone)]
pub struct Confusion {
    pub k: usize,
    pub counts: Vec<u64>,
}

impl Confusion {
    pub fn new(k: usize) -> Self {
        Confusion { k, counts: vec![0; k * k] }
    }
    /// The mean IoU over the classes present in the ground truth or the predictions (union > 0; the others are
    /// left out, as mmseg and the DINOv3 evaluation do); None when no pixel was labelled.
    pub fn miou(&self) -> Option<f64> {
        let k = self.k;
        let mut sum = 0.0;
        let mut n = 0usize;
        for c in 0..k {
            let tp = self.counts[c * k + c];
            let gt: u64 = self.counts[c * k..(c + 1) * k].iter().sum();
            let pred: u64 = (0..k).map(|g| self.counts[g * k + c]).sum();
            let union = gt + pred - tp;
            if union > 0 {
                sum += tp as f64 / union as f64;
                n += 1;
            }
        }
        (n > 0).then(|| sum / n as f64)
    }
}

/// Writes named float tensors as a `.safetensors` file with string metadata, atomically: F32 little-endian,
/// tensors and metadata in name order, header padded with spaces to 8 bytes. Byte-identical for equal inputs.
pub fn write_head_file(path: &Path, tensors: &[(String, Tensor)], metadata: &[(String, String)]) -> Result<()> {
    let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = serde_json::Map::new();
    let meta: serde_json::Map<String, serde_json::Value> =
        metadata.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    header.insert("__metadata__".into(), serde_json::Value::Object(meta));
    let mut data: Vec<u8> = Vec::new();
    for (name, t) in sorted {
        let values = crate::model::guarded(|| {
            Vec::<f32>::try_from(t.to_kind(Kind::Float).to_device(tch::Device::Cpu).contiguous().flatten(0, -1))
        })?
        .map_err(|e| Error::checkpoint(path, format!("tensor `{name}`: {e}")))?;
        let begin = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        let entry = serde_json::json!({"dtype": "F32", "shape": t.size(), "data_offsets": [begin, data.len()]});
        header.insert(name.clone(), entry);
    }
    let mut text = serde_json::Value::Object(header).to_string().into_bytes();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut bytes = Vec::with_capacity(8 + text.len() + data.len());
    bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&text);
    bytes.extend_from_slice(&data);
    crate::files::write_atomic(path, &bytes)
}

//! Axial rotary position embedding of DINOv3 (RoPE, base `rope_theta` = 100): patch-centre coordinates
//! normalised to [-1, 1] per axis, so any grid size works without interpolation. Follows transformers'
//! `DINOv3ViTRopePositionEmbedding` (inference path: no coordinate augmentation).

use tch::{Device, Kind, Tensor};

/// `(cos, sin)` of shape [hp * wp, head_dim] in `kind`, computed in fp32.
pub fn rope_tables(hp: i64, wp: i64, head_dim: i64, base: f64, device: Device, kind: Kind) -> (Tensor, Tensor) {
    let opts = (Kind::Float, device);
    let axis = |n: i64| (Tensor::arange_start_step(0.5, n as f64, 1.0, opts) / n as f64) * 2.0 - 1.0;
    let ys = axis(hp);
    let xs = axis(wp);
    // (hp*wp, 2) with (y, x) per row, in row-major patch order.
    let grid = Tensor::stack(&Tensor::meshgrid_indexing(&[&ys, &xs], "ij"), -1).reshape([hp * wp, 2]);
    // inv_freq = 1 / base ** arange(0, 1, 4 / head_dim): head_dim / 4 frequencies.
    let n_freq = head_dim / 4;
    let exps = Tensor::arange(n_freq, opts) * (4.0 / head_dim as f64);
    let inv_freq = (exps * base.ln()).exp().reciprocal();
    let angles = grid.unsqueeze(-1) * inv_freq.view([1, 1, n_freq]) * (2.0 * std::f64::consts::PI);
    let angles = angles.flatten(1, 2).tile([1, 2]);
    (angles.cos().to_kind(kind), angles.sin().to_kind(kind))
}

/// RoPE tables over a whole token sequence: the first `prefix` tokens (class, registers, EoMT queries) are not
/// rotated (cos 1, sin 0), and the sign of `rotate_half` is folded into `sin`, so applying it is three kernels:
/// `x * cos + roll(x, head_dim / 2) * sin` (`rotate_half(x) = [-x2, x1]` and `roll(x) = [x2, x1]`).
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    /// From the patch tables of [`rope_tables`] and the number of leading tokens to leave as they are.
    pub fn new(patch_cos: &Tensor, patch_sin: &Tensor, prefix: i64) -> Self {
        let hd = patch_cos.size().get(1).copied().unwrap_or(0);
        let half = hd / 2;
        let opts = (patch_cos.kind(), patch_cos.device());
        let signed = Tensor::cat(&[patch_sin.narrow(1, 0, half).neg(), patch_sin.narrow(1, half, hd - half)], 1);
        let cos = Tensor::cat(&[Tensor::ones([prefix, hd], opts), patch_cos.shallow_clone()], 0);
        let sin = Tensor::cat(&[Tensor::zeros([prefix, hd], opts), signed], 0);
        Rope { cos, sin }
    }

    /// Rotates `x` [B, heads, T, head_dim].
    pub fn apply(&self, x: &Tensor) -> Tensor {
        let half = x.size().last().copied().unwrap_or(0) / 2;
        (x * &self.cos).addcmul(&x.roll([half], [-1]), &self.sin)
    }
}

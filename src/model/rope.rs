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

/// Rotates the patch tokens of `x` [B, heads, T, head_dim]; the first `prefix` tokens (class and registers)
/// are left as they are.
pub fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor, prefix: i64) -> Tensor {
    let t = x.size()[2];
    let head = x.narrow(2, 0, prefix);
    let patches = x.narrow(2, prefix, t - prefix);
    let half = patches.size()[3] / 2;
    let x1 = patches.narrow(3, 0, half);
    let x2 = patches.narrow(3, half, half);
    let rotated = Tensor::cat(&[x2.neg(), x1], 3);
    let patches = &patches * cos + rotated * sin;
    Tensor::cat(&[head, patches], 2)
}

//! The backbone side of each Mask2Former form: the maps the head reads, and dense features for linear heads from
//! the same pass. Follows transformers' `DINOv3ConvNextBackbone` and `DINOv3ViTBackbone`
//! (`modeling_dinov3_{convnext,vit}.py`) and the DINOv3-Mask2former adapter (github Carti-97/DINOv3-Mask2former,
//! `models/dinov3_mask2former_base.py`: `Adapter`, `PyramidAdapter`, `DinoV3WithAdapterBackbone`), parameter for
//! parameter under `model.pixel_level_module.encoder.*` as `save_pretrained` writes them.

use crate::model::convnext::ConvNext;
use crate::model::heads::mask2former::config::{AdapterConfig, Form, Mask2FormerConfig};
use crate::model::rope::Rope;
use crate::model::vit::{Tokens, Vit};
use crate::model::FeatureMap;
use tch::nn::{self, Module};
use tch::Tensor;

/// The ViTDet simple pyramid's learned resamplers (stages 2 and 3 are identity and max-pool).
struct Pyramid {
    /// Stage 0: ConvTranspose(2, 2) -> GroupNorm(32) -> GELU -> ConvTranspose(2, 2) (stride patch / 4).
    up4: (nn::ConvTranspose2D, nn::GroupNorm, nn::ConvTranspose2D),
    /// Stage 1: ConvTranspose(2, 2) (stride patch / 2).
    up2: nn::ConvTranspose2D,
}

enum Net {
    ConvNext { net: Box<ConvNext>, out: Vec<i64> },
    Vit { net: Box<Vit>, out: Vec<i64>, apply_layernorm: bool },
    Adapter { net: Box<Vit>, layers: Vec<i64>, projections: Vec<nn::Conv2D>, pyramid: Option<Pyramid> },
}

/// The backbone (and adapter) of a Mask2Former checkpoint.
pub struct Encoder {
    net: Net,
}

fn bad(e: String) -> String {
    format!("`backbone`: {e}")
}

impl Encoder {
    /// Declares the backbone's parameters under `p` = the model's root (`model.pixel_level_module.encoder.*`).
    pub fn new(p: &nn::Path, config: &Mask2FormerConfig) -> Result<Self, String> {
        let enc = p / "model" / "pixel_level_module" / "encoder";
        let net = match &config.form {
            Form::ConvNext { backbone, out_indices } => Net::ConvNext {
                net: Box::new(ConvNext::with_final_norm(&enc, backbone, false).map_err(bad)?),
                out: out_indices.clone(),
            },
            Form::Vit { backbone, out_indices, apply_layernorm } => Net::Vit {
                net: Box::new(Vit::new(&enc, backbone).map_err(bad)?),
                out: out_indices.clone(),
                apply_layernorm: *apply_layernorm,
            },
            Form::Adapter(a) => adapter(&enc, a)?,
        };
        Ok(Encoder { net })
    }

    /// Fuses the ViT's q/k/v projections (call again after a precision change); nothing for ConvNeXt.
    pub fn fuse_qkv(&mut self) {
        match &mut self.net {
            Net::Vit { net, .. } | Net::Adapter { net, .. } => net.fuse_qkv(),
            Net::ConvNext { .. } => {}
        }
    }

    /// The weights' kind.
    pub fn kind(&self) -> tch::Kind {
        match &self.net {
            Net::ConvNext { net, .. } => net.kind(),
            Net::Vit { net, .. } | Net::Adapter { net, .. } => net.kind(),
        }
    }

    /// Runs the backbone on normalised pixels already padded to the config's size multiple. Returns the maps
    /// the head reads (shallow to deep, as transformers' backbone `feature_maps`) and the dense features of the
    /// levels `dense` (see [`Mask2FormerConfig::feature_info`]; levels it cannot give are skipped).
    pub fn forward(&self, pixels: &Tensor, dense: &[i64]) -> (Vec<Tensor>, Vec<FeatureMap>) {
        match &self.net {
            Net::ConvNext { net, out } => {
                let mut x = pixels.to_kind(net.kind());
                let mut maps = Vec::new();
                let mut features = Vec::new();
                if out.contains(&0) {
                    maps.push(x.shallow_clone());
                }
                let last = out.iter().copied().chain(dense.iter().map(|d| d + 1)).max().unwrap_or(0);
                let last = usize::try_from(last).unwrap_or(0).min(net.num_stages());
                for i in 0..last {
                    x = net.stage(i, &x);
                    if out.contains(&(i as i64 + 1)) {
                        maps.push(x.shallow_clone());
                    }
                    // Stages 0-2 raw, as the plain backbone's dense features; no final norm for stage 3.
                    if i < 3 && dense.contains(&(i as i64)) {
                        features.push(FeatureMap { index: i, stride: 4 << i, tensor: x.shallow_clone() });
                    }
                }
                (maps, features)
            }
            Net::Vit { net, out, apply_layernorm } => {
                let depth = net.num_layers() as i64;
                let t = net.embed(pixels);
                let mut maps = Vec::new();
                let pick = |x: &Tensor, idx: i64, maps: &mut Vec<Tensor>| {
                    if out.contains(&idx) {
                        let x = if *apply_layernorm || idx == depth { net.final_norm(x) } else { x.shallow_clone() };
                        maps.push(patch_map(net, &x, &t));
                    }
                };
                pick(&t.x, 0, &mut maps);
                let features = run_blocks(net, &t, out.iter().map(|o| o - 1), dense, |i, x| pick(x, i + 1, &mut maps));
                (maps, features)
            }
            Net::Adapter { net, layers, projections, pyramid } => {
                let t = net.embed(pixels);
                let mut taps: Vec<(i64, Tensor)> = Vec::new();
                let features = run_blocks(net, &t, layers.iter().copied(), dense, |i, x| {
                    if layers.contains(&i) {
                        taps.push((i, patch_map(net, x, &t)));
                    }
                });
                let mut maps = Vec::new();
                for (k, (&l, proj)) in layers.iter().zip(projections).enumerate() {
                    let Some((_, f)) = taps.iter().find(|(i, _)| *i == l) else { continue };
                    let f = match (pyramid, k) {
                        (Some(py), 0) => {
                            let (a, g, b) = &py.up4;
                            b.forward(&g.forward(&a.forward(f)).gelu("none"))
                        }
                        (Some(py), 1) => py.up2.forward(f),
                        (Some(_), 3) => f.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false),
                        _ => f.shallow_clone(),
                    };
                    maps.push(proj.forward(&f));
                }
                (maps, features)
            }
        }
    }
}

/// Runs the ViT's blocks up to the last one `taps` or `dense` needs; `on_block(i, x)` sees block i's raw output,
/// Returns the dense features of `dense` (block outputs after the final norm).
fn run_blocks(
    net: &Vit,
    t: &Tokens,
    taps: impl Iterator<Item = i64>,
    dense: &[i64],
    mut on_block: impl FnMut(i64, &Tensor),
) -> Vec<FeatureMap> {
    let depth = net.num_layers() as i64;
    let last = taps.chain(dense.iter().copied()).max().unwrap_or(-1).min(depth - 1);
    let prefix = net.num_prefix_tokens();
    let rope = Rope::new(&t.cos, &t.sin, prefix);
    let mut x = t.x.shallow_clone();
    let mut features = Vec::new();
    for i in 0..=last {
        x = net.block(i as usize, &x, &rope, None);
        on_block(i, &x);
        if dense.contains(&i) {
            features.push(net.feature_map(&x, t, prefix, i as usize));
        }
    }
    features
}

/// Patch tokens of `x` [B, prefix + hp * wp, D] as [B, D, hp, wp].
fn patch_map(net: &Vit, x: &Tensor, t: &Tokens) -> Tensor {
    let (b, _, d) = x.size3().unwrap_or((0, 0, 0));
    x.narrow(1, net.num_prefix_tokens(), t.hp * t.wp).transpose(1, 2).reshape([b, d, t.hp, t.wp])
}

fn adapter(enc: &nn::Path, a: &AdapterConfig) -> Result<Net, String> {
    let net = Box::new(Vit::new(&(enc / "model"), &a.vit).map_err(bad)?);
    let ad = enc / "adapter";
    let d = a.vit.hidden_size;
    let t2 = nn::ConvTransposeConfig { stride: 2, ..Default::default() };
    let pyramid = a.pyramid.then(|| {
        let r = &ad / "resamplers";
        let s0 = &r / 0;
        Pyramid {
            up4: (
                nn::conv_transpose2d(&s0 / 0, d, d / 2, 2, t2),
                nn::group_norm(&s0 / 1, 32, d / 2, Default::default()),
                nn::conv_transpose2d(&s0 / 3, d / 2, d / 4, 2, t2),
            ),
            up2: nn::conv_transpose2d(&r / 1, d, d / 2, 2, t2),
        }
    });
    let dims: Vec<i64> = if a.pyramid { vec![d / 4, d / 2, d, d] } else { vec![d; a.out_channels.len()] };
    let projections = a
        .out_channels
        .iter()
        .zip(dims)
        .enumerate()
        .map(|(i, (&c, din))| nn::conv2d(&ad / "projections" / i, din, c, 1, Default::default()))
        .collect();
    Ok(Net::Adapter { net, layers: a.layers.clone(), projections, pyramid })
}

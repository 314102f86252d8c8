//! Official DINOv3 state dicts (the `.pth` files of github.com/facebookresearch/dinov3, whose layout is
//! `dinov3/models/vision_transformer.py` and `dinov3/models/convnext.py`) to transformers' names
//! (`DINOv3ViTModel`, `DINOv3ConvNextModel`), with the architecture inferred from the tensors. transformers'
//! own `convert_dinov3_{vit,convnext}_to_hf.py` scripts do the same with hard-coded configs.
//!
//! Accepted input: a flat state dict, possibly with `module.` (DDP) and/or `backbone.` (training wrapper)
//! prefixes, which are stripped. Dropped on purpose: `rope_embed.periods` (recomputed from `rope_theta`; checked
//! and used to infer the head count), `blocks.N.attn.qkv.bias_mask` (applied to the bias first),
//! `norms.3.*` of ConvNeXt (the same module as `norm`; checked equal) and the training-only
//! [`TRAINING_ONLY`] prefixes. Any other key that is not understood is an error that lists it.
//!
//! Not inferable from the weights, hence fixed: LayerNorm eps (1e-5 ViT, 1e-6 ConvNeXt, as released), RoPE
//! base 100 (checked against `rope_embed.periods` when present). A missing `mask_token` becomes zeros (it is only
//! used in masked pre-training); missing LayerScale (`ls1`/`ls2` in no block) becomes ones, which is exact.

use crate::catalog::{self, Arch};
use crate::checkpoint::{load_weights, pickle, read_safetensors, write_transformers_dir};
use crate::error::{Error, Result};
use crate::model::config::{BackboneConfig, ConvNextConfig, VitConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tch::{Kind, Tensor};

/// Key prefixes of training-only modules, dropped without complaint.
pub const TRAINING_ONLY: &[&str] = &["dino_head.", "ibot_head.", "local_cls_norm."];

type R<T> = std::result::Result<T, String>;
type Map = BTreeMap<String, Tensor>;

/// Renames an official DINOv3 state dict to transformers' names and infers its config. `num_heads` is needed
/// only for a ViT whose checkpoint has no `rope_embed.periods` and whose size is not in the catalog.
/// `source` names the checkpoint in errors.
pub fn official_to_transformers(
    state: Vec<(String, Tensor)>,
    num_heads: Option<i64>,
    source: &Path,
) -> Result<(BackboneConfig, Vec<(String, Tensor)>)> {
    let err = |m: String| Error::checkpoint(source, m);
    let map = normalize(state).map_err(err)?;
    let vit = map.contains_key("cls_token") || map.keys().any(|k| k.starts_with("blocks."));
    let convnext = map.keys().any(|k| k.starts_with("downsample_layers.") || k.starts_with("stages."));
    let (config, tensors) = match (vit, convnext) {
        (true, false) => convert_vit(map, num_heads),
        (false, true) => convert_convnext(map),
        _ if map.keys().any(|k| k.starts_with("network.q.") || k.starts_with("network.encoder.backbone.")) => {
            Err("this is an EoMT authors' checkpoint (`network.*` keys) whose backbone is stored as differences to a \
             DINOv3 base: convert it with `--base BASE` (a DINOv3 transformers directory or hub id)"
                .into())
        }
        _ if map.keys().any(|k| k.starts_with("embeddings.") || k.starts_with("model.")) => Err(
            "this state dict already uses transformers' names (`embeddings.*`, `model.*`): it needs no conversion; \
             save it as model.safetensors next to its config.json"
                .into(),
        ),
        _ => Err(format!(
            "not an official DINOv3 ViT or ConvNeXt state dict (found {}): expected `cls_token`/`blocks.N.*` or \
             `downsample_layers.N.*`/`stages.N.*`",
            list(map.keys())
        )),
    }
    .map_err(err)?;
    config.validate().map_err(|m| {
        let hint = if matches!(config, BackboneConfig::Vit(_)) { " (pass the right --num-heads)" } else { "" };
        Error::checkpoint(source, format!("inferred config is invalid: {m}{hint}"))
    })?;
    Ok((config, tensors))
}

/// Converts the official checkpoint `src` (`.pth`/`.pt`/`.bin` pickles, or `.safetensors`) into a transformers
/// directory `out_dir` (`config.json` + `model.safetensors`), after proving that our model loads it strictly.
pub fn convert_official_file(src: &Path, out_dir: &Path, num_heads: Option<i64>) -> Result<BackboneConfig> {
    crate::checkpoint::refuse_overwriting_inputs(out_dir, &[src])?;
    let ext = src.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let state = if ext == "safetensors" { read_safetensors(src)? } else { pickle::read_torch_state_dict(src)? };
    let (config, tensors) = official_to_transformers(state, num_heads, src)?;
    {
        let model = crate::model::LoadedBackbone::build(&config, tch::Device::Cpu)?;
        let shared = tensors.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
        load_weights(&model.vs, shared, src, &[])?;
    }
    write_transformers_dir(out_dir, &config, &tensors)?;
    Ok(config)
}

/// Strips `module.`/`backbone.` prefixes, drops training-only tensors, refuses duplicates.
fn normalize(state: Vec<(String, Tensor)>) -> R<Map> {
    let mut map = Map::new();
    for (name, t) in state {
        let mut k = name.as_str();
        k = k.strip_prefix("module.").unwrap_or(k);
        k = k.strip_prefix("backbone.").unwrap_or(k);
        if TRAINING_ONLY.iter().any(|p| k.starts_with(p)) {
            continue;
        }
        if map.insert(k.to_string(), t).is_some() {
            return Err(format!("two tensors map to `{k}` (after stripping module./backbone. prefixes)"));
        }
    }
    if map.is_empty() {
        return Err("no tensors".into());
    }
    Ok(map)
}

fn list<'a>(keys: impl IntoIterator<Item = &'a String>) -> String {
    let keys: Vec<&String> = keys.into_iter().collect();
    let shown: Vec<String> = keys.iter().take(20).map(|k| format!("`{k}`")).collect();
    let more = if keys.len() > shown.len() { format!(", ... ({} in all)", keys.len()) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

fn take(map: &mut Map, key: &str) -> R<Tensor> {
    map.remove(key).ok_or_else(|| format!("missing tensor `{key}`"))
}

fn shape(t: &Tensor, key: &str, want: &[Option<i64>]) -> R<Vec<i64>> {
    let s = t.size();
    let ok = s.len() == want.len() && s.iter().zip(want).all(|(a, b)| b.is_none_or(|b| *a == b));
    if ok {
        Ok(s)
    } else {
        let want: Vec<String> = want.iter().map(|w| w.map_or("_".into(), |v| v.to_string())).collect();
        Err(format!("`{key}` has shape {s:?}, expected [{}]", want.join(", ")))
    }
}

/// Indices N of the keys `{prefix}N.*`, which must be exactly 0..count.
fn indices(map: &Map, prefix: &str) -> R<usize> {
    let found: BTreeSet<usize> =
        map.keys().filter_map(|k| k.strip_prefix(prefix)?.split('.').next()?.parse().ok()).collect();
    let count = found.last().map_or(0, |l| l + 1);
    if let Some(gap) = (0..count).find(|i| !found.contains(i)) {
        return Err(format!("`{prefix}{gap}.*` is missing (found indices up to {})", count - 1));
    }
    Ok(count)
}

fn err_of(e: tch::TchError) -> String {
    e.to_string()
}

fn convert_vit(mut map: Map, num_heads: Option<i64>) -> R<(BackboneConfig, Vec<(String, Tensor)>)> {
    let mut out: Vec<(String, Tensor)> = Vec::new();
    let cls = take(&mut map, "cls_token")?;
    let d = shape(&cls, "cls_token", &[Some(1), Some(1), None])?[2];
    let fill = (cls.kind(), tch::Device::Cpu);
    out.push(("embeddings.cls_token".into(), cls));
    let registers = match map.remove("storage_tokens") {
        Some(t) => t,
        None => Tensor::f_zeros([1, 0, d], fill).map_err(err_of)?,
    };
    let num_registers = shape(&registers, "storage_tokens", &[Some(1), None, Some(d)])?[1];
    out.push(("embeddings.register_tokens".into(), registers));
    let mask = match map.remove("mask_token") {
        Some(t) if t.numel() == d as usize && (t.dim() == 2 || t.dim() == 3) => {
            t.f_reshape([1, 1, d]).map_err(err_of)?
        }
        Some(t) => return Err(format!("`mask_token` has shape {:?}, expected [1, {d}]", t.size())),
        None => Tensor::f_zeros([1, 1, d], fill).map_err(err_of)?,
    };
    out.push(("embeddings.mask_token".into(), mask));
    let pw = take(&mut map, "patch_embed.proj.weight")?;
    let s = shape(&pw, "patch_embed.proj.weight", &[Some(d), None, None, None])?;
    if s[2] != s[3] {
        return Err(format!("non-square patches {}x{} are not supported", s[2], s[3]));
    }
    let (channels, patch) = (s[1], s[2]);
    out.push(("embeddings.patch_embeddings.weight".into(), pw));
    out.push(("embeddings.patch_embeddings.bias".into(), take(&mut map, "patch_embed.proj.bias")?));
    out.push(("norm.weight".into(), take(&mut map, "norm.weight")?));
    out.push(("norm.bias".into(), take(&mut map, "norm.bias")?));
    let periods = map.remove("rope_embed.periods");

    let depth = indices(&map, "blocks.")?;
    if depth == 0 {
        return Err("no transformer blocks (`blocks.N.*`)".into());
    }
    let gated = map.contains_key("blocks.0.mlp.w1.weight");
    let (fc_in, fc_out) = if gated { ("w1", "w3") } else { ("fc1", "fc2") };
    let intermediate = match map.get(&format!("blocks.0.mlp.{fc_in}.weight")) {
        Some(t) => shape(t, &format!("blocks.0.mlp.{fc_in}.weight"), &[None, Some(d)])?[0],
        None => return Err("missing tensor `blocks.0.mlp.fc1.weight` (or SwiGLU `blocks.0.mlp.w1.weight`)".into()),
    };
    let has = |k: &str| map.contains_key(k);
    let qv_bias = has("blocks.0.attn.qkv.bias");
    let proj_bias = has("blocks.0.attn.proj.bias");
    let mlp_bias = has(&format!("blocks.0.mlp.{fc_in}.bias"));
    let layer_scale = (0..depth).any(|i| has(&format!("blocks.{i}.ls1.gamma")));
    let mut ffn = vec![(fc_in, "up_proj"), (fc_out, "down_proj")];
    if gated {
        ffn = vec![("w1", "gate_proj"), ("w2", "up_proj"), ("w3", "down_proj")];
    }

    for i in 0..depth {
        let (src, dst) = (format!("blocks.{i}."), format!("model.layer.{i}."));
        // (official suffix, transformers suffix, required)
        let mut renames = vec![
            ("norm1.weight".to_string(), "norm1.weight".to_string(), true),
            ("norm1.bias".into(), "norm1.bias".into(), true),
            ("norm2.weight".into(), "norm2.weight".into(), true),
            ("norm2.bias".into(), "norm2.bias".into(), true),
            ("attn.proj.weight".into(), "attention.o_proj.weight".into(), true),
            ("attn.proj.bias".into(), "attention.o_proj.bias".into(), false),
        ];
        for (from, to) in &ffn {
            renames.push((format!("mlp.{from}.weight"), format!("mlp.{to}.weight"), true));
            renames.push((format!("mlp.{from}.bias"), format!("mlp.{to}.bias"), false));
        }
        if layer_scale {
            renames.push(("ls1.gamma".into(), "layer_scale1.lambda1".into(), true));
            renames.push(("ls2.gamma".into(), "layer_scale2.lambda1".into(), true));
        }
        for (from, to, required) in renames {
            match map.remove(&format!("{src}{from}")) {
                Some(t) => out.push((format!("{dst}{to}"), t)),
                None if required => return Err(format!("missing tensor `{src}{from}`")),
                None => {}
            }
        }
        if !layer_scale {
            for n in 1..=2 {
                let ones = Tensor::f_ones([d], fill).map_err(err_of)?;
                out.push((format!("{dst}layer_scale{n}.lambda1"), ones));
            }
        }
        let key = format!("{src}attn.qkv.weight");
        let qkv = take(&mut map, &key)?;
        shape(&qkv, &key, &[Some(3 * d), Some(d)])?;
        for (t, n) in qkv.f_chunk(3, 0).map_err(err_of)?.into_iter().zip(["q", "k", "v"]) {
            out.push((format!("{dst}attention.{n}_proj.weight"), t));
        }
        let mask = map.remove(&format!("{src}attn.qkv.bias_mask"));
        if let Some(bias) = map.remove(&format!("{src}attn.qkv.bias")) {
            for (q, v) in split_qkv_bias(bias, mask, &src, d)? {
                out.push((format!("{dst}attention.{q}_proj.bias"), v));
            }
        }
    }
    if !map.is_empty() {
        return Err(format!("unrecognised tensors for a DINOv3 ViT: {}", list(map.keys())));
    }
    let heads = infer_heads(d, depth as i64, intermediate, gated, qv_bias, periods.as_ref(), num_heads)?;
    let config = VitConfig {
        patch_size: patch,
        hidden_size: d,
        intermediate_size: intermediate,
        num_hidden_layers: depth as i64,
        num_attention_heads: heads,
        hidden_act: if gated { "silu" } else { "gelu" }.into(),
        layer_norm_eps: 1e-5,
        rope_theta: 100.0,
        image_size: 224,
        num_channels: channels,
        query_bias: qv_bias,
        key_bias: false,
        value_bias: qv_bias,
        proj_bias,
        mlp_bias,
        layerscale_value: 1.0,
        use_gated_mlp: gated,
        num_register_tokens: num_registers,
    };
    Ok((BackboneConfig::Vit(config), out))
}

/// The effective fused bias (`bias * bias_mask`, as the official `LinearKMaskedBias` computes it) split into
/// the query and value biases. A non-zero effective key bias cannot be represented (transformers has
/// `key_bias=False`) and is an error.
fn split_qkv_bias(bias: Tensor, mask: Option<Tensor>, src: &str, d: i64) -> R<Vec<(&'static str, Tensor)>> {
    shape(&bias, &format!("{src}attn.qkv.bias"), &[Some(3 * d)])?;
    let bias = match mask {
        Some(m) => {
            shape(&m, &format!("{src}attn.qkv.bias_mask"), &[Some(3 * d)])?;
            let m = m.f_to_kind(bias.kind()).map_err(err_of)?;
            if !bool::try_from(m.f_isfinite().and_then(|f| f.f_all()).map_err(err_of)?).map_err(err_of)? {
                return Err(format!("`{src}attn.qkv.bias_mask` is not finite (an uninitialised mask)"));
            }
            bias.f_mul(&m).map_err(err_of)?
        }
        None => bias,
    };
    let parts = bias.f_chunk(3, 0).map_err(err_of)?;
    let k_max = f64::try_from(parts[1].f_abs().and_then(|a| a.f_max()).map_err(err_of)?).map_err(err_of)?;
    if k_max != 0.0 {
        return Err(format!(
            "`{src}attn.qkv.bias` has a non-zero key bias (max |b| = {k_max:e}) and no `bias_mask` zeroes it: \
             transformers' DINOv3 ViT has no key bias, so this checkpoint cannot be converted exactly"
        ));
    }
    let mut it = parts.into_iter();
    let (q, _k, v) = (it.next(), it.next(), it.next());
    match (q, v) {
        (Some(q), Some(v)) => Ok(vec![("q", q), ("v", v)]),
        _ => Err(format!("`{src}attn.qkv.bias` could not be split")),
    }
}

/// The head count: `explicit`, else from `rope_embed.periods` (head_dim / 4 entries), else the catalog entry
/// with the same hidden size, depth, FFN and biases.
pub fn infer_heads(
    hidden: i64,
    depth: i64,
    intermediate: i64,
    gated: bool,
    qv_bias: bool,
    periods: Option<&Tensor>,
    explicit: Option<i64>,
) -> R<i64> {
    if let Some(h) = explicit {
        if h <= 0 || hidden % h != 0 {
            return Err(format!("--num-heads {h} does not divide the hidden size {hidden}"));
        }
    }
    let from_periods = match periods {
        Some(p) => Some(heads_from_periods(p, hidden)?),
        None => None,
    };
    match (explicit, from_periods) {
        (Some(h), Some(p)) if h != p => Err(format!(
            "--num-heads {h} contradicts `rope_embed.periods`, which has {} entries (head dim {}, {p} heads)",
            hidden / p / 4,
            hidden / p
        )),
        (Some(h), _) | (None, Some(h)) => Ok(h),
        (None, None) => {
            let mut heads: Vec<i64> = catalog::VARIANTS
                .iter()
                .filter_map(|v| match v.arch {
                    Arch::Vit { hidden: h, depth: n, heads, intermediate: f, swiglu, qv_bias: b }
                        if (h, n, f, swiglu, b) == (hidden, depth, intermediate, gated, qv_bias) =>
                    {
                        Some(heads)
                    }
                    _ => None,
                })
                .collect();
            heads.dedup();
            match heads.as_slice() {
                [h] => Ok(*h),
                [] => Err(format!(
                    "cannot infer the number of attention heads: no `rope_embed.periods` and no catalog variant has \
                     hidden size {hidden}, depth {depth}, FFN {intermediate} ({}); pass --num-heads",
                    if gated { "SwiGLU" } else { "MLP" }
                )),
                _ => Err(format!("ambiguous number of attention heads {heads:?}: pass --num-heads")),
            }
        }
    }
}

/// `rope_embed.periods` holds `base ** (4 i / head_dim)` for i < head_dim / 4 (official `RopePositionEmbedding`).
fn heads_from_periods(p: &Tensor, hidden: i64) -> R<i64> {
    let n = p.numel() as i64;
    if n == 0 || hidden % (4 * n) != 0 {
        return Err(format!("`rope_embed.periods` has {n} entries, which does not fit hidden size {hidden}"));
    }
    let head_dim = 4 * n;
    let values = p.f_to_kind(Kind::Double).and_then(|t| t.f_flatten(0, -1)).map_err(err_of)?;
    let values = Vec::<f64>::try_from(&values).map_err(err_of)?;
    for (i, v) in values.iter().enumerate() {
        let want = 100f64.powf(4.0 * i as f64 / head_dim as f64);
        if v.is_nan() || (v - want).abs() > 1e-2 * want {
            return Err(format!(
                "`rope_embed.periods`[{i}] = {v} but RoPE base 100 gives {want}: unsupported RoPE settings \
                 (min/max period)"
            ));
        }
    }
    Ok(hidden / head_dim)
}

/// Official ConvNeXt name to transformers' name (None if not understood). `norms.3` is handled by the caller.
fn convnext_name(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('.').collect();
    let num = |s: &str| s.parse::<usize>().ok();
    let wb = |p: &str| p == "weight" || p == "bias";
    match parts.as_slice() {
        ["downsample_layers", i, j, p] if wb(p) => {
            let (i, j) = (num(i)?, num(j)?);
            (j < 2).then(|| format!("model.stages.{i}.downsample_layers.{j}.{p}"))
        }
        ["stages", i, j, "gamma"] => Some(format!("model.stages.{}.layers.{}.gamma", num(i)?, num(j)?)),
        ["stages", i, j, m, p] if wb(p) => {
            let m = match *m {
                "dwconv" => "depthwise_conv",
                "norm" => "layer_norm",
                "pwconv1" => "pointwise_conv1",
                "pwconv2" => "pointwise_conv2",
                _ => return None,
            };
            Some(format!("model.stages.{}.layers.{}.{m}.{p}", num(i)?, num(j)?))
        }
        ["norm", p] if wb(p) => Some(format!("layer_norm.{p}")),
        _ => None,
    }
}

fn convert_convnext(mut map: Map) -> R<(BackboneConfig, Vec<(String, Tensor)>)> {
    // `norms.3` is the final `norm` module registered twice; transformers keeps one.
    for p in ["weight", "bias"] {
        let (dup, main) = (format!("norms.3.{p}"), format!("norm.{p}"));
        if let Some(t) = map.remove(&dup) {
            match map.get(&main) {
                Some(m) if m.size() == t.size() && m.equal(&t) => {}
                Some(_) => return Err(format!("`{dup}` differs from `{main}`: transformers has one final norm")),
                None => {
                    map.insert(main, t);
                }
            }
        }
    }
    let stages = indices(&map, "stages.")?;
    if stages != 4 || indices(&map, "downsample_layers.")? != 4 {
        return Err(format!("expected 4 stages and 4 downsample layers, found {stages} stages"));
    }
    let mut hidden_sizes = Vec::new();
    let mut depths = Vec::new();
    for i in 0..4 {
        let key = format!("downsample_layers.{i}.{}.weight", if i == 0 { 0 } else { 1 });
        let t = map.get(&key).ok_or_else(|| format!("missing tensor `{key}`"))?;
        hidden_sizes.push(shape(t, &key, &[None, None, None, None])?[0]);
        depths.push(indices(&map, &format!("stages.{i}."))? as i64);
    }
    let key = "downsample_layers.0.0.weight";
    let num_channels = map.get(key).map_or(3, |t| t.size()[1]);
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for (k, t) in map {
        match convnext_name(&k) {
            Some(n) => out.push((n, t)),
            None => unknown.push(k),
        }
    }
    if !unknown.is_empty() {
        return Err(format!("unrecognised tensors for a DINOv3 ConvNeXt: {}", list(&unknown)));
    }
    let config = ConvNextConfig {
        num_channels,
        hidden_sizes,
        depths,
        hidden_act: "gelu".into(),
        layer_norm_eps: 1e-6,
        layer_scale_init_value: 1e-6,
        image_size: 224,
    };
    Ok((BackboneConfig::ConvNext(config), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_from_catalog_and_periods() {
        assert_eq!(infer_heads(384, 12, 1536, false, true, None, None), Ok(6));
        assert_eq!(infer_heads(4096, 40, 8192, true, false, None, None), Ok(32));
        assert!(infer_heads(64, 2, 128, false, true, None, None).unwrap_err().contains("--num-heads"));
        let periods = Tensor::from_slice(&[1.0f32, 100f32.powf(0.25), 100f32.powf(0.5), 100f32.powf(0.75)]);
        assert_eq!(infer_heads(64, 2, 128, false, true, Some(&periods), None), Ok(4));
        assert!(infer_heads(64, 2, 128, false, true, Some(&periods), Some(2)).is_err());
    }

    #[test]
    fn convnext_names() {
        assert_eq!(
            convnext_name("stages.2.10.pwconv1.bias").as_deref(),
            Some("model.stages.2.layers.10.pointwise_conv1.bias")
        );
        assert_eq!(
            convnext_name("downsample_layers.1.0.weight").as_deref(),
            Some("model.stages.1.downsample_layers.0.weight")
        );
        assert_eq!(convnext_name("norms.2.weight"), None);
    }
}

//! The DINOv3 linear semantic head: the linear segmentation protocol of the DINOv3 paper (Siméoni et al., 2025,
//! ADE20K linear mIoU), following the official code (github.com/facebookresearch/dinov3,
//! `dinov3/eval/segmentation/models/heads/linear_head.py`, `LinearHead.predict`, and `models/__init__.py`).
//!
//! Forward pass at inference: the backbone's dense feature maps (taken after its final norm) — either the last one
//! ([`LayerSelection::Last`]) or the four official dense layers ([`LayerSelection::Dense4`]) — are bilinearly
//! resized (align_corners = false) to the size of the *first* selected map, as the official `_transform_inputs`
//! does, and concatenated on channels -> BatchNorm2d (running statistics) -> 1x1 Conv2d to the classes. Dropout
//! (training only) is skipped. [`LinearHead::forward`] returns the logits at the feature stride (ViT 16; ConvNeXt
//! 4 with `Dense4`, 32 with `Last`); [`LinearHead::forward_full`] up-samples them bilinearly to the padded input
//! and crops the padding off, so logits line up with the input pixels. For a ViT the four maps share stride 16;
//! for a ConvNeXt `Dense4` means stages 0-3 (strides 4-32) resized to stride 4 (sum of the stage widths as
//! channels; the official code has no ConvNeXt linear head with four layers: its builder assumes one width).
//!
//! Checkpoint format: a `.safetensors` file holding `bn.weight`, `bn.bias`, `bn.running_mean`, `bn.running_var`
//! [C], `conv.weight` [K, C, 1, 1] and `conv.bias` [K], with string metadata `dinoseg.head` = `linear`,
//! `dinoseg.layers` = `4` | `last`, and optionally `dinoseg.backbone` (a catalog variant or `custom`, the default),
//! `dinoseg.classes` (a JSON list of K names; default `class0..`) and `dinoseg.bn_eps` (default 1e-5). The same
//! keys without the `dinoseg.` prefix may come from a sidecar `<file>.json` (`classes` as a JSON list); a key in
//! both must agree. Also accepted, mapped on load: the official module's names (`batchnorm_layer.*`, `conv.*`,
//! with `module.` / `segmentation_model.1.` prefixes), an `nn.Sequential(BatchNorm2d, Conv2d)` (`0.*`, `1.*`), and
//! official `.pth` training outputs (`{"model": {...}}`, metadata then from the sidecar). `num_batches_tracked` is
//! ignored. Loading is strict: any missing, extra or misshapen tensor or bad metadata is an error naming the file.

use crate::checkpoint::header::{read_header, Header};
use crate::checkpoint::{load_weights, pickle::read_torch_state_dict, read_safetensors};
use crate::error::{Error, Result};
use crate::model::{guarded, Backbone, BackboneOutput, FeatureMap, ForwardOptions, Padding};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::nn::{self, Module, ModuleT};
use tch::{Device, Tensor};

/// Which dense feature maps the head reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerSelection {
    /// The deepest dense map: the last ViT block / last ConvNeXt stage, after the final norm (official `LAST`).
    Last,
    /// The four official dense layers concatenated (official `FOUR_EVEN_INTERVALS`, the paper's setting).
    Dense4,
}

impl LayerSelection {
    /// `last` or `4` (also `1` / `dense4`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "last" | "1" => Some(Self::Last),
            "4" | "dense4" => Some(Self::Dense4),
            _ => None,
        }
    }
    /// The metadata spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Last => "last",
            Self::Dense4 => "4",
        }
    }
    /// Number of feature maps read.
    pub fn count(&self) -> usize {
        match self {
            Self::Last => 1,
            Self::Dense4 => 4,
        }
    }
}

/// The head's shape and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHeadConfig {
    pub num_classes: i64,
    /// Channels of the concatenated features (C of `conv.weight` [K, C, 1, 1]).
    pub in_channels: i64,
    pub layers: LayerSelection,
    /// Catalog variant the head was trained on, or `custom`.
    pub backbone: String,
    pub class_names: Vec<String>,
    pub bn_eps: f64,
}

impl LinearHeadConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.num_classes < 1 || self.in_channels < 1 {
            return Err(format!(
                "needs num_classes >= 1 and in_channels >= 1, got {} and {}",
                self.num_classes, self.in_channels
            ));
        }
        if self.class_names.len() as i64 != self.num_classes {
            return Err(format!("{} class names for {} classes", self.class_names.len(), self.num_classes));
        }
        if !(self.bn_eps.is_finite() && self.bn_eps > 0.0) {
            return Err(format!("bn_eps must be a positive number, got {}", self.bn_eps));
        }
        if self.backbone != "custom" && crate::catalog::find(&self.backbone).is_none() {
            return Err(format!("backbone `{}` is neither a catalog variant nor `custom`", self.backbone));
        }
        Ok(())
    }
}

/// The linear head. Parameters (relative to the path given to [`LinearHead::new`]): `bn.weight`, `bn.bias`,
/// `bn.running_mean`, `bn.running_var`, `conv.weight`, `conv.bias`.
#[derive(Debug)]
pub struct LinearHead {
    pub config: LinearHeadConfig,
    bn: nn::BatchNorm,
    conv: nn::Conv2D,
}

impl LinearHead {
    /// Declares the parameters on `p` (BatchNorm 1/0, running stats 0/1; load weights separately).
    pub fn new(p: &nn::Path, config: LinearHeadConfig) -> Result<Self> {
        config.validate().map_err(|m| Error::Input(format!("invalid linear head config: {m}")))?;
        let bn_cfg = nn::BatchNormConfig { eps: config.bn_eps, ..Default::default() };
        let bn = nn::batch_norm2d(p / "bn", config.in_channels, bn_cfg);
        let conv = nn::conv2d(p / "conv", config.in_channels, config.num_classes, 1, Default::default());
        Ok(LinearHead { config, bn, conv })
    }

    /// Input channels `backbone` gives for this head's layer selection, and the options that make it give them.
    fn backbone_plan(&self, backbone: &Backbone) -> Result<(i64, ForwardOptions)> {
        let dense4 = self.config.layers == LayerSelection::Dense4;
        Ok(match backbone {
            Backbone::Vit(m) => {
                let (depth, official) = (m.config.num_hidden_layers, &m.dense_layers);
                if dense4 && official.len() != 4 {
                    return Err(Error::Input(format!(
                        "linear head (layers: 4) needs 4 dense layers but the official rule gives {official:?} for \
                         a ViT of depth {depth}"
                    )));
                }
                // `Last` reads the deepest dense map: ask for the last block only when the official set lacks it.
                let opts = if dense4 || official.last() == Some(&(depth - 1)) {
                    ForwardOptions::default()
                } else {
                    ForwardOptions { dense_layers: Some(vec![depth - 1]), ..Default::default() }
                };
                (m.config.hidden_size * self.config.layers.count() as i64, opts)
            }
            Backbone::ConvNext(m) => {
                let dims = &m.config.hidden_sizes;
                let c = if dense4 { dims.iter().sum() } else { dims.last().copied().unwrap_or(0) };
                (c, ForwardOptions::default())
            }
        })
    }

    /// Checks the head fits `backbone` and returns the forward options it needs. `dense_layers: None` means the
    /// backbone's official dense layers, so heads that all return defaults can share one backbone pass.
    pub fn required_layers(&self, backbone: &Backbone) -> Result<ForwardOptions> {
        let (channels, opts) = self.backbone_plan(backbone)?;
        if channels != self.config.in_channels {
            return Err(Error::Input(format!(
                "linear head expects {} input channels but the backbone gives {channels} (layers: {})",
                self.config.in_channels,
                self.config.layers.as_str()
            )));
        }
        Ok(opts)
    }

    /// Logits [B, K, h, w] at the stride of the first selected feature map (over the padded input).
    pub fn forward(&self, out: &BackboneOutput) -> Result<Tensor> {
        let maps: Vec<&FeatureMap> = match self.config.layers {
            LayerSelection::Last => out.features.last().into_iter().collect(),
            LayerSelection::Dense4 => out.features.iter().collect(),
        };
        let names: Vec<&str> = out.features.iter().map(|m| m.name.as_str()).collect();
        if maps.len() != self.config.layers.count() {
            return Err(Error::Input(format!(
                "linear head (layers: {}) needs {} dense feature maps, the backbone returned {names:?}: run it with \
                 `LinearHead::required_layers`",
                self.config.layers.as_str(),
                self.config.layers.count()
            )));
        }
        let mut channels = 0;
        for m in &maps {
            match m.tensor.size().as_slice() {
                [_, c, _, _] => channels += c,
                s => return Err(Error::Input(format!("feature map `{}` is not NCHW: {s:?}", m.name))),
            }
        }
        if channels != self.config.in_channels {
            return Err(Error::Input(format!(
                "linear head expects {} input channels but the feature maps {names:?} have {channels}",
                self.config.in_channels
            )));
        }
        let kind = self.conv.ws.kind();
        guarded(|| {
            let _g = tch::no_grad_guard();
            let size = maps[0].tensor.size();
            let (h, w) = (size[2], size[3]);
            let resized: Vec<Tensor> = maps
                .iter()
                .map(|m| {
                    let t = m.tensor.to_kind(kind);
                    if t.size()[2..] == [h, w] {
                        t
                    } else {
                        t.upsample_bilinear2d([h, w], false, None, None)
                    }
                })
                .collect();
            let x = if resized.len() == 1 { resized[0].shallow_clone() } else { Tensor::cat(&resized, 1) };
            self.conv.forward(&self.bn.forward_t(&x, false))
        })
    }

    /// Logits [B, K, H, W] at the input resolution (see [`upsample_logits`]).
    pub fn forward_full(&self, out: &BackboneOutput, padding: &Padding) -> Result<Tensor> {
        upsample_logits(&self.forward(out)?, padding)
    }

    /// Reads a head checkpoint (see the module docs) onto `device`, strictly.
    pub fn load(path: &Path, device: Device) -> Result<(LinearHead, nn::VarStore)> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        let (raw, meta) = if matches!(ext.as_str(), "pth" | "pt" | "bin") {
            (read_torch_state_dict(path)?, read_metadata(path, None)?)
        } else {
            let header = read_header(path)?;
            let meta = read_metadata(path, Some(&header))?;
            (read_safetensors(path)?, meta)
        };
        let tensors: Vec<(String, Tensor)> =
            raw.into_iter().filter_map(|(n, t)| canonical(&n).map(|n| (n, t))).collect();
        let bad = |m: String| Error::checkpoint(path, m);
        let head = meta.get("head").ok_or_else(|| {
            bad("no `dinoseg.head` metadata (nor a sidecar `.json` with `head`): not a dinoseg head checkpoint".into())
        })?;
        if head != "linear" {
            return Err(bad(format!("metadata `dinoseg.head` is `{head}`, expected `linear`")));
        }
        let layers_s = meta.get("layers").ok_or_else(|| bad("no `dinoseg.layers` metadata (`4` or `last`)".into()))?;
        let layers = LayerSelection::parse(layers_s)
            .ok_or_else(|| bad(format!("metadata `dinoseg.layers` is `{layers_s}`, expected `4` or `last`")))?;
        let weight = tensors
            .iter()
            .find(|(n, _)| n == "conv.weight")
            .map(|(_, t)| t.size())
            .ok_or_else(|| Error::checkpoint_missing(path, "conv.weight"))?;
        let (k, c) = match weight.as_slice() {
            [k, c, 1, 1] => (*k, *c),
            s => return Err(bad(format!("tensor `conv.weight` has shape {s:?}, expected [K, C, 1, 1]"))),
        };
        let class_names = match meta.get("classes") {
            None => (0..k).map(|i| format!("class{i}")).collect(),
            Some(s) => serde_json::from_str::<Vec<String>>(s)
                .map_err(|e| bad(format!("metadata `dinoseg.classes` is not a JSON list of names: {e}")))?,
        };
        if class_names.len() as i64 != k {
            return Err(bad(format!(
                "metadata `dinoseg.classes` names {} classes but `conv.weight` has {k} output channels",
                class_names.len()
            )));
        }
        let bn_eps = match meta.get("bn_eps") {
            None => 1e-5,
            Some(s) => s.trim().parse::<f64>().map_err(|e| bad(format!("metadata `dinoseg.bn_eps` `{s}`: {e}")))?,
        };
        let backbone = meta.get("backbone").cloned().unwrap_or_else(|| "custom".into());
        let config = LinearHeadConfig { num_classes: k, in_channels: c, layers, backbone, class_names, bn_eps };
        config.validate().map_err(|m| bad(format!("bad metadata: {m}")))?;
        let vs = nn::VarStore::new(device);
        let head = LinearHead::new(&vs.root(), config)?;
        load_weights(&vs, tensors, path, &[])?;
        check_statistics(&vs, path)?;
        Ok((head, vs))
    }
}

/// Up-samples logits [B, K, h, w] bilinearly (align_corners = false) to the padded input size and crops the
/// padding off: [B, K, H, W] for the input that went into the backbone.
pub fn upsample_logits(logits: &Tensor, padding: &Padding) -> Result<Tensor> {
    let ((h, w), (ph, pw)) = (padding.input_hw, padding.padded_hw);
    if logits.dim() != 4 || h < 1 || w < 1 || h > ph || w > pw {
        return Err(Error::Input(format!("cannot up-sample logits {:?} with {padding:?}", logits.size())));
    }
    guarded(|| {
        let _g = tch::no_grad_guard();
        logits.upsample_bilinear2d([ph, pw], false, None, None).narrow(2, 0, h).narrow(3, 0, w)
    })
}

/// Our name for a state-dict name of any accepted layout; None for tensors to ignore.
fn canonical(name: &str) -> Option<String> {
    if name.ends_with("num_batches_tracked") {
        return None;
    }
    let mut n = name.strip_prefix("module.").unwrap_or(name);
    n = n.strip_prefix("segmentation_model.1.").unwrap_or(n);
    let mapped = [("batchnorm_layer.", "bn."), ("0.", "bn."), ("1.", "conv.")]
        .iter()
        .find_map(|(from, to)| n.strip_prefix(from).map(|rest| format!("{to}{rest}")));
    Some(mapped.unwrap_or_else(|| n.to_string()))
}

const KEYS: [&str; 5] = ["head", "backbone", "layers", "classes", "bn_eps"];

/// Every weight finite and the BatchNorm's `running_var` >= 0: anything else can only be wrong (it would turn
/// every pixel's logits into NaN). The error names the file, the tensor, the element and its value.
fn check_statistics(vs: &nn::VarStore, path: &Path) -> Result<()> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in vars {
        let values = guarded(|| Vec::<f64>::try_from(t.to_kind(tch::Kind::Double).flatten(0, -1)))?
            .map_err(|e| Error::checkpoint(path, format!("tensor `{name}`: {e}")))?;
        let bad = values.iter().enumerate().find(|(_, v)| !v.is_finite() || (name == "bn.running_var" && **v < 0.0));
        if let Some((i, v)) = bad {
            let want = if name == "bn.running_var" { "a finite variance >= 0" } else { "finite values" };
            return Err(Error::checkpoint(path, format!("tensor `{name}` element {i} is {v}, expected {want}")));
        }
    }
    Ok(())
}

/// The head metadata of `path` without the `dinoseg.` prefix: the keys embedded in its safetensors `header`
/// (None for `.pth` files), then those of the sidecar `<file>.json` if there is one (read capped, refused if a
/// special file); keys in both must agree. The loader and `check-params` both read metadata through this.
pub fn read_metadata(path: &Path, header: Option<&Header>) -> Result<BTreeMap<String, String>> {
    let mut embedded = BTreeMap::new();
    for (k, v) in header.map(|h| &h.metadata).into_iter().flatten() {
        if let Some(key) = k.strip_prefix("dinoseg.") {
            if !KEYS.contains(&key) {
                return Err(Error::checkpoint(path, format!("unknown metadata key `{k}` (known: dinoseg.{KEYS:?})")));
            }
            embedded.insert(key.to_string(), v.clone());
        }
    }
    merge_sidecar(path, embedded)
}

/// Adds the keys of the sidecar `<file>.json`, if there is one; keys in both must agree.
fn merge_sidecar(path: &Path, meta: BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    let mut os = path.as_os_str().to_owned();
    os.push(".json");
    let side = PathBuf::from(os);
    if std::fs::symlink_metadata(&side).is_err() {
        return Ok(meta);
    }
    let text = crate::files::read_text_capped(&side, crate::files::caps::JSON, "linear head sidecar")?;
    parse_sidecar(&text, &side, path, meta)
}

/// Merges the text of a sidecar `side` of the head checkpoint `path` into its embedded metadata `meta` (keys
/// without the `dinoseg.` prefix); unknown keys and keys that disagree with `meta` are errors naming `side`.
pub fn parse_sidecar(
    text: &str,
    side: &Path,
    path: &Path,
    mut meta: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    let side = side.to_path_buf();
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::checkpoint(&side, format!("invalid JSON: {e}")))?;
    let obj = value.as_object().ok_or_else(|| Error::checkpoint(&side, "expected a JSON object"))?;
    for (k, v) in obj {
        if !KEYS.contains(&k.as_str()) {
            let k: String = k.chars().take(80).collect();
            return Err(Error::checkpoint(&side, format!("unknown key `{k}` (known: {KEYS:?})")));
        }
        let s = match v {
            serde_json::Value::String(s) if k != "classes" => s.clone(),
            other => other.to_string(),
        };
        match meta.get(k) {
            Some(old) if !same_value(k, old, &s) => {
                return Err(Error::checkpoint(
                    &side,
                    format!(
                        "`{k}` = {} disagrees with the metadata `dinoseg.{k}` = {} of {}",
                        short(&s),
                        short(old),
                        path.display()
                    ),
                ))
            }
            Some(_) => {}
            None => {
                meta.insert(k.clone(), s);
            }
        }
    }
    Ok(meta)
}

/// A value echoed in an error, at most 80 characters.
fn short(s: &str) -> String {
    crate::error::shorten(s, 80)
}

/// Compares metadata values by meaning (JSON lists and numbers may be spelled differently).
fn same_value(key: &str, a: &str, b: &str) -> bool {
    match key {
        "classes" => serde_json::from_str::<serde_json::Value>(a).ok() == serde_json::from_str(b).ok(),
        "bn_eps" => a.trim().parse::<f64>().ok() == b.trim().parse::<f64>().ok(),
        "layers" => LayerSelection::parse(a) == LayerSelection::parse(b),
        _ => a == b,
    }
}

//! The linear-head checkpoint format, read in one place: [`LinearHeadFile::read`] is what `check-params`
//! validates and what [`crate::model::heads::linear::LinearHead::load`] builds the head from, so the two cannot
//! disagree about a file (the loader only adds the weights' values: finite, `running_var` >= 0).
//!
//! A `.safetensors` file holds `bn.weight`, `bn.bias`, `bn.running_mean`, `bn.running_var` [C], `conv.weight`
//! [K, C, 1, 1] and `conv.bias` [K], with string metadata `dinoseg.head` = `linear`, `dinoseg.layers` = `4` |
//! `last`, and optionally `dinoseg.backbone` (a catalog variant or `custom`, the default), `dinoseg.classes` (a
//! JSON list of K names; default `class0..`) and `dinoseg.bn_eps` (default 1e-5). The same keys without the
//! `dinoseg.` prefix may come from a sidecar `<file>.json` (`classes` as a JSON list); a key in both must agree,
//! and an unknown key in either is an error. Also accepted, mapped to those names: the official module's names
//! (`batchnorm_layer.*`, `conv.*`, with `module.` / `segmentation_model.1.` prefixes), an
//! `nn.Sequential(BatchNorm2d, Conv2d)` (`0.*`, `1.*`), and official `.pth` training outputs (`{"model": {...}}`,
//! metadata then from the sidecar). `num_batches_tracked` is ignored.
//!
//! Only the safetensors header is read (never the weights); a `.pth` has no header, so its pickle is read whole
//! (a head is K x C numbers) and its tensors handed to the loader.

use crate::checkpoint::header::{read_header, Header};
use crate::checkpoint::pickle::read_torch_state_dict;
use crate::error::{Error, Result};
use crate::model::FeatureInfo;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

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

    /// The one rule for the channels a head gets from an encoder: the feature levels of `info` (an encoder's
    /// `feature_info`, shallow to deep) that this head reads, checked against `in_channels`. `Last` reads the
    /// deepest level; `Dense4` the official four evenly spaced ones ([`crate::catalog::dense_layers`] over the
    /// levels: ViT blocks, or the four ConvNeXt stages). `source` names the encoder in the message
    /// (`the backbone`, `the EoMT encoder`). Checked at start-up, by `check-params` and by the loader alike.
    pub fn select(&self, info: &[FeatureInfo], source: &str) -> std::result::Result<Vec<FeatureInfo>, String> {
        let picked: Vec<FeatureInfo> = match self.layers {
            LayerSelection::Last => info.last().copied().into_iter().collect(),
            LayerSelection::Dense4 => {
                let official = crate::catalog::dense_layers(info.len() as i64);
                official.iter().filter_map(|&i| usize::try_from(i).ok().and_then(|i| info.get(i)).copied()).collect()
            }
        };
        if picked.len() != self.layers.count() {
            let found: Vec<usize> = picked.iter().map(|f| f.index).collect();
            return Err(format!(
                "the linear head (layers: {}) needs {} dense layers but the official rule gives {found:?} for {source} \
                 of depth {}",
                self.layers.as_str(),
                self.layers.count(),
                info.len()
            ));
        }
        let given = picked.iter().fold(0i64, |sum, f| sum.saturating_add(f.channels));
        if given != self.in_channels {
            return Err(format!(
                "the linear head takes {} input channels but {source} gives {given} (layers: {})",
                self.in_channels,
                self.layers.as_str()
            ));
        }
        Ok(picked)
    }
}

/// Tensors with their names, as the checkpoint readers return them.
pub(crate) type NamedTensors = Vec<(String, Tensor)>;

/// One tensor of a head checkpoint, under our name (`bn.*`, `conv.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct HeadTensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub is_float: bool,
}

/// A linear-head checkpoint as its header, metadata and sidecar declare it, fully checked except for the
/// weights' values (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHeadFile {
    pub path: PathBuf,
    pub config: LinearHeadConfig,
    /// The tensors, in file order, under our names.
    pub tensors: Vec<HeadTensor>,
}

impl LinearHeadFile {
    /// Reads and checks a head checkpoint's header and metadata (embedded `dinoseg.*` keys, then the sidecar
    /// `<file>.json`); every refusal is an error naming the file (or its sidecar).
    pub fn read(path: &Path) -> Result<Self> {
        Self::open(path).map(|(file, _)| file)
    }

    /// [`Self::read`], and the tensors of a `.pth` (read whole to learn their shapes); None for `.safetensors`.
    pub(crate) fn open(path: &Path) -> Result<(Self, Option<NamedTensors>)> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        let (raw, meta, loaded) = match ext.as_str() {
            "pth" | "pt" | "bin" => {
                let tensors = read_torch_state_dict(path)?;
                let raw: Vec<HeadTensor> = tensors
                    .iter()
                    .map(|(n, t)| HeadTensor { name: n.clone(), shape: t.size(), is_float: t.is_floating_point() })
                    .collect();
                (raw, read_metadata(path, None)?, Some(tensors))
            }
            "safetensors" => {
                let header = read_header(path)?;
                let raw: Vec<HeadTensor> = header
                    .tensors
                    .iter()
                    .map(|t| HeadTensor { name: t.name.clone(), shape: t.shape.clone(), is_float: t.dtype.is_float() })
                    .collect();
                (raw, read_metadata(path, Some(&header))?, None)
            }
            _ => {
                return Err(Error::checkpoint(
                    path,
                    "unrecognised linear head file: expected .safetensors (or an official .pth, .pt or .bin)",
                ))
            }
        };
        let tensors: Vec<HeadTensor> =
            raw.into_iter().filter_map(|t| canonical(&t.name).map(|name| HeadTensor { name, ..t })).collect();
        let config = config_from(path, &meta, &tensors)?;
        check_tensors(path, &config, &tensors)?;
        let loaded = loaded.map(canonical_tensors);
        Ok((LinearHeadFile { path: path.to_path_buf(), config, tensors }, loaded))
    }
}

/// The config the metadata and `conv.weight` declare.
fn config_from(path: &Path, meta: &BTreeMap<String, String>, tensors: &[HeadTensor]) -> Result<LinearHeadConfig> {
    let bad = |m: String| Error::checkpoint(path, m);
    let head = meta.get("head").ok_or_else(|| {
        bad("no `dinoseg.head` metadata (nor a sidecar `.json` with `head`): not a dinoseg head checkpoint".into())
    })?;
    if head != "linear" {
        return Err(bad(format!("metadata `dinoseg.head` is `{}`, expected `linear`", short(head))));
    }
    let layers_s = meta.get("layers").ok_or_else(|| bad("no `dinoseg.layers` metadata (`4` or `last`)".into()))?;
    let layers = LayerSelection::parse(layers_s)
        .ok_or_else(|| bad(format!("metadata `dinoseg.layers` is `{}`, expected `4` or `last`", short(layers_s))))?;
    let weight = tensors
        .iter()
        .find(|t| t.name == "conv.weight")
        .map(|t| t.shape.as_slice())
        .ok_or_else(|| Error::checkpoint_missing(path, "conv.weight"))?;
    let (k, c) = match weight {
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
        Some(s) => {
            s.trim().parse::<f64>().map_err(|e| bad(format!("metadata `dinoseg.bn_eps` `{}`: {e}", short(s))))?
        }
    };
    let backbone = meta.get("backbone").cloned().unwrap_or_else(|| "custom".into());
    let config = LinearHeadConfig { num_classes: k, in_channels: c, layers, backbone, class_names, bn_eps };
    config.validate().map_err(|m| bad(format!("bad metadata: {}", short(&m))))?;
    Ok(config)
}

/// The tensor set, strictly, with the report of `checkpoint::load_weights` (so the loader, which checks again
/// while copying, never finds more): duplicates, non-float dtypes, extra tensors, misshapen and missing ones.
fn check_tensors(path: &Path, config: &LinearHeadConfig, tensors: &[HeadTensor]) -> Result<()> {
    let (k, c) = (config.num_classes, config.in_channels);
    let mut want: BTreeMap<&str, Vec<i64>> = BTreeMap::from([
        ("bn.bias", vec![c]),
        ("bn.running_mean", vec![c]),
        ("bn.running_var", vec![c]),
        ("bn.weight", vec![c]),
        ("conv.bias", vec![k]),
        ("conv.weight", vec![k, c, 1, 1]),
    ]);
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for t in tensors {
        let name = short(&t.name);
        if !seen.insert(t.name.as_str()) {
            problems.push(format!("  duplicate tensor `{name}`"));
            continue;
        }
        match want.remove(t.name.as_str()) {
            Some(_) if !t.is_float => {
                problems.push(format!("  tensor `{name}` is not floating point; model weights must be"))
            }
            Some(shape) if shape != t.shape => {
                problems.push(format!("  shape mismatch `{name}`: checkpoint {:?}, model {shape:?}", t.shape))
            }
            Some(_) => {}
            None => problems.push(format!("  unexpected tensor `{name}` {:?}", t.shape)),
        }
    }
    for (name, shape) in want {
        problems.push(format!("  missing tensor `{name}` {shape:?}"));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::WeightMismatch { path: path.to_path_buf(), report: problems.join("\n") })
}

/// The tensors of a head checkpoint under our names (see [`canonical`]), ignored ones dropped.
pub(crate) fn canonical_tensors(tensors: NamedTensors) -> NamedTensors {
    tensors.into_iter().filter_map(|(n, t)| canonical(&n).map(|n| (n, t))).collect()
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

/// The head metadata of `path` without the `dinoseg.` prefix: the keys embedded in its safetensors `header`
/// (None for `.pth` files), then those of the sidecar `<file>.json` if there is one (read capped, refused if a
/// special file); keys in both must agree.
fn read_metadata(path: &Path, header: Option<&Header>) -> Result<BTreeMap<String, String>> {
    let mut embedded = BTreeMap::new();
    for (k, v) in header.map(|h| &h.metadata).into_iter().flatten() {
        if let Some(key) = k.strip_prefix("dinoseg.") {
            if !KEYS.contains(&key) {
                let k = short(k);
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
fn parse_sidecar(
    text: &str,
    side: &Path,
    path: &Path,
    mut meta: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::checkpoint(side, format!("invalid JSON: {e}")))?;
    let obj = value.as_object().ok_or_else(|| Error::checkpoint(side, "expected a JSON object"))?;
    for (k, v) in obj {
        if !KEYS.contains(&k.as_str()) {
            return Err(Error::checkpoint(side, format!("unknown key `{}` (known: {KEYS:?})", short(k))));
        }
        let s = match v {
            serde_json::Value::String(s) if k != "classes" => s.clone(),
            other => other.to_string(),
        };
        match meta.get(k) {
            Some(old) if !same_value(k, old, &s) => {
                return Err(Error::checkpoint(
                    side,
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

//! The models: the backbone, the heads, and the checks between them (sources, class counts, channels), reading
//! only `config.json` files and safetensors headers.

use super::checks::{self, Located};
use super::errors::{one_of, suggest, ErrorKind};
use super::mask_model::{mask2former_only, read_mask_model, MaskConfig};
use super::reader::{missing, Reader};
use super::table;
use super::value::valid_head_name;
use super::{BackboneParams, HeadKind, HeadParams, ModelRef};
use crate::catalog;
use crate::checkpoint::source::official_names;
use crate::checkpoint::Mask2FormerOptions;
use crate::checkpoint::ModelConfig;
use crate::model::config::BackboneConfig;
use crate::model::heads::linear::{LinearHeadConfig, LinearHeadFile};
use crate::postprocess::{Labels, MaskOutputs};
use crate::segmenter::LinearHeadSource;
use std::collections::BTreeSet;
use std::path::Path;

/// What an EoMT head computes for one `outputs` name.
pub(crate) type MasksOf = fn() -> MaskOutputs;

/// `heads.<name>.outputs` of an EoMT head: each name and what it computes.
pub(crate) const EOMT_OUTPUTS: [(&str, MasksOf); 3] =
    [("panoptic", MaskOutputs::panoptic), ("semantic", MaskOutputs::semantic), ("instances", MaskOutputs::instances)];

pub(crate) use crate::plan::HeadType;

/// What validation learnt about a head (for the cross-checks).
pub(crate) struct HeadInfo {
    pub params: HeadParams,
    /// Linear heads: the config their file declares ([`LinearHeadFile::read`]).
    pub linear: Option<LinearHeadConfig>,
    /// Mask models: their architecture, when it could be read.
    pub mask_config: Option<MaskConfig>,
    /// Linear heads reading the mask model's pass: the kind their `source` names (`eomt` or `mask2former`).
    pub source_type: Option<HeadType>,
}

/// `backbone.*`: the spec, its variant, and its architecture where it can be known cheaply.
pub(crate) fn read_backbone(r: &mut Reader, base: &Path) -> (Option<BackboneParams>, Option<BackboneConfig>) {
    let names: Vec<&str> = catalog::VARIANTS.iter().map(|v| v.name).collect();
    let variant = r.string("backbone.variant", "a catalog variant name").and_then(|v| {
        if let Some(found) = catalog::find(&v) {
            return Some(found);
        }
        let hint = suggest(&v, names.iter().copied()).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default();
        r.err(
            "backbone.variant",
            ErrorKind::BadValue,
            format!("unknown variant `{v}` (see `dinoseg backbones`){hint}"),
        );
        None
    });
    let Some(written) = r.string("backbone.checkpoint", "a checkpoint path or hub id") else {
        if r.given("backbone.variant") {
            r.err("backbone.variant", ErrorKind::Conflict, "a variant without `backbone.checkpoint`");
        }
        return (None, None);
    };
    let key = "backbone.checkpoint";
    let mut from_checkpoint = None;
    let mut from_variant = false;
    let model = match checks::locate(&written, base, true) {
        Located::Local(p) if p.is_dir() => {
            from_checkpoint = dir_config(r, key, &p, false).and_then(|c| match c {
                ModelConfig::Backbone(b) => Some(b),
                ModelConfig::Eomt(_) => {
                    r.err(
                        key,
                        ErrorKind::BadCheckpoint,
                        "an EoMT model (eomt_dinov3): declare it as a head with `type: eomt`",
                    );
                    None
                }
                ModelConfig::Mask2Former(_) => {
                    r.err(key, ErrorKind::BadCheckpoint, "a Mask2Former model (mask2former): declare it as a head");
                    None
                }
            });
            ModelRef::Path(p)
        }
        Located::Local(p) => {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            match ext.as_str() {
                "safetensors" => match checks::read_header(&p) {
                    Ok(h) if official_names(h.tensors.iter().map(|t| t.name.as_str())) => {}
                    Ok(_) => match variant {
                        Some(v) => {
                            from_checkpoint = Some(v.config());
                            from_variant = true;
                        }
                        None if !r.given("backbone.variant") => r.err(
                            "backbone.variant",
                            ErrorKind::MissingKey,
                            format!(
                                "required: {written} is a bare .safetensors in transformers names; name its \
                                 architecture (one of {})",
                                names.join(", ")
                            ),
                        ),
                        None => {}
                    },
                    Err(m) => r.err(key, ErrorKind::BadCheckpoint, format!("{}: {m}", p.display())),
                },
                "pth" | "pt" | "bin" => {}
                _ => r.err(
                    key,
                    ErrorKind::BadCheckpoint,
                    format!(
                        "{}: unrecognised checkpoint: expected a transformers directory, .safetensors or .pth",
                        p.display()
                    ),
                ),
            }
            ModelRef::Path(p)
        }
        Located::Hub { id, cached } => {
            from_checkpoint = checks::catalog_config(&id).or_else(|| {
                cached.and_then(|snap| match dir_config(r, key, &snap, true)? {
                    ModelConfig::Backbone(b) => Some(b),
                    ModelConfig::Eomt(_) => {
                        r.err(
                            key,
                            ErrorKind::BadCheckpoint,
                            format!("{id} is an EoMT model: declare it as a head with `type: eomt`"),
                        );
                        None
                    }
                    ModelConfig::Mask2Former(_) => {
                        r.err(
                            key,
                            ErrorKind::BadCheckpoint,
                            format!("{id} is a Mask2Former model: declare it as a head"),
                        );
                        None
                    }
                })
            });
            ModelRef::Hub(id)
        }
        Located::Missing(p) => {
            r.err(key, ErrorKind::MissingFile, missing(&written, base, "file or directory"));
            ModelRef::Path(p)
        }
    };
    if let (Some(v), Some(cfg), false) = (variant, &from_checkpoint, from_variant) {
        if !same_architecture(&v.config(), cfg) {
            r.err(
                "backbone.variant",
                ErrorKind::Mismatch,
                format!("`{}` does not match the architecture of {written}", v.name),
            );
        }
    }
    let variant = variant.map(|v| v.name.to_string());
    (Some(BackboneParams { checkpoint: model, variant }), from_checkpoint)
}

fn same_architecture(a: &BackboneConfig, b: &BackboneConfig) -> bool {
    match (a, b) {
        (BackboneConfig::Vit(x), BackboneConfig::Vit(y)) => {
            (x.hidden_size, x.num_hidden_layers, x.use_gated_mlp)
                == (y.hidden_size, y.num_hidden_layers, y.use_gated_mlp)
        }
        (BackboneConfig::ConvNext(x), BackboneConfig::ConvNext(y)) => {
            (&x.hidden_sizes, &x.depths) == (&y.hidden_sizes, &y.depths)
        }
        _ => false,
    }
}

/// `config.json` of a directory (and that it has weights); errors are reported on `key`.
pub(super) fn dir_config(r: &mut Reader, key: &str, dir: &Path, hub: bool) -> Option<ModelConfig> {
    if !hub && !checks::has_weights(dir) && dir.join("config.json").is_file() {
        r.err(
            key,
            ErrorKind::MissingFile,
            format!("{} has no model.safetensors (nor model.safetensors.index.json)", dir.display()),
        );
    }
    match checks::model_config(dir) {
        Ok(c) => Some(c),
        Err(m) => {
            r.err(key, ErrorKind::BadCheckpoint, m);
            None
        }
    }
}

/// Head names in order: numeric names (list items) numerically, then the others by name.
fn head_names(r: &mut Reader) -> Vec<String> {
    let mut names = BTreeSet::new();
    let keys: Vec<String> = r.flat.entries.keys().cloned().collect();
    for key in keys {
        if key == "heads" {
            if let Some(v) = r.raw("heads") {
                r.wrong("heads", "a map of named heads (heads.<name>.type, ...)", &v);
            }
            continue;
        }
        let Some(rest) = key.strip_prefix("heads.") else { continue };
        match rest.split_once('.') {
            Some((name, _)) => {
                names.insert(name.to_string());
            }
            None => {
                if let Some(v) = r.raw(&key) {
                    let fields: Vec<&str> = table::fields("heads.<name>").collect();
                    r.wrong(&key, &format!("a map ({})", fields.join(", ")), &v);
                }
            }
        }
    }
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort_by(|a, b| match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        _ => a.cmp(b),
    });
    names
}

/// Every head whose type is known (also those with a bad checkpoint, for the cross-checks), and whether every
/// head's type, source and outputs are known (else the checks that depend on all of them are skipped).
pub(crate) fn read_heads(r: &mut Reader, base: &Path) -> (Vec<HeadInfo>, bool) {
    let names = head_names(r);
    let mut complete = true;
    let mut heads = Vec::new();
    for name in names {
        let k = |f: &str| format!("heads.{name}.{f}");
        if !valid_head_name(&name) {
            r.err(&k("type"), ErrorKind::BadValue, format!("head name `{name}`: use letters, digits and `_`"));
            for f in table::fields("heads.<name>") {
                r.raw(&k(f));
            }
            complete = false;
            continue;
        }
        let ty = r.choice(&k("type"), &HeadType::NAMES, HeadType::parse);
        if !r.given(&k("type")) {
            r.err(&k("type"), ErrorKind::MissingKey, format!("required: {}", one_of(&HeadType::NAMES)));
        }
        let checkpoint = r.string(&k("checkpoint"), "a checkpoint path or hub id");
        if !r.given(&k("checkpoint")) {
            r.err(&k("checkpoint"), ErrorKind::MissingKey, "required: the head's checkpoint");
        }
        let labels = r.string(&k("labels"), "a labels file path").and_then(|s| {
            let p = r.local_path(&k("labels"), &s, base, false)?;
            match Labels::from_file(&p) {
                Ok(l) => Some((p, l, s)),
                Err(e) => {
                    r.err(&k("labels"), ErrorKind::BadValue, e.to_string());
                    None
                }
            }
        });
        match ty {
            Some(HeadType::Linear) => {
                if r.given(&k("outputs")) {
                    r.err(
                        &k("outputs"),
                        ErrorKind::BadValue,
                        "only `type: eomt` heads have outputs (a linear head gives a semantic map)",
                    );
                }
                r.raw(&k("outputs"));
                mask2former_only(r, &k("layers"), &k("num_heads"));
                let (source, source_type) = r
                    .choice(&k("source"), &["backbone", "eomt", "mask2former"], |s| {
                        match s.trim().to_ascii_lowercase().as_str() {
                            "backbone" => Some((LinearHeadSource::Backbone, None)),
                            other => HeadType::parse(other)
                                .filter(|t| t.is_mask_model())
                                .map(|t| (LinearHeadSource::Masks, Some(t))),
                        }
                    })
                    .unwrap_or_else(|| {
                        complete &= !r.given(&k("source"));
                        (LinearHeadSource::Backbone, None)
                    });
                let written = checkpoint.unwrap_or_default();
                let path =
                    if written.is_empty() { None } else { r.local_path(&k("checkpoint"), &written, base, false) };
                // The loader's own reader: what it refuses is refused here, with the same message.
                let info = path.as_ref().and_then(|path| match LinearHeadFile::read(path) {
                    Ok(f) => Some(f.config),
                    Err(e) => {
                        r.err(&k("checkpoint"), ErrorKind::BadCheckpoint, e.to_string());
                        None
                    }
                });
                if let (Some((_, l, s)), Some(n)) = (&labels, info.as_ref().map(|c| c.num_classes)) {
                    if l.len() as i64 != n {
                        r.err(
                            &k("labels"),
                            ErrorKind::Mismatch,
                            format!(
                                "{s} names {} classes but the linear head {written} has {n} (conv.weight)",
                                l.len()
                            ),
                        );
                    }
                }
                let labels = labels.map(|(p, _, _)| p);
                let checkpoint = path.unwrap_or_default();
                let params = HeadParams { name: name.clone(), kind: HeadKind::Linear { checkpoint, source, labels } };
                heads.push(HeadInfo { params, linear: info, mask_config: None, source_type });
            }
            Some(ty @ (HeadType::Eomt | HeadType::Mask2Former)) => {
                if r.given(&k("source")) {
                    r.err(&k("source"), ErrorKind::BadValue, "only `type: linear` heads have a source");
                }
                r.raw(&k("source"));
                let m2f = ty == HeadType::Mask2Former;
                let options = Mask2FormerOptions {
                    layers: if m2f { r.ints(&k("layers"), 0, 1023) } else { None },
                    num_heads: if m2f { r.ranged_int(&k("num_heads")) } else { None },
                };
                if !m2f {
                    mask2former_only(r, &k("layers"), &k("num_heads"));
                }
                let outputs = r
                    .choice(&k("outputs"), &EOMT_OUTPUTS.map(|(n, _)| n), |s| {
                        let s = if s.trim().eq_ignore_ascii_case("instance") { "instances" } else { s.trim() };
                        EOMT_OUTPUTS.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)).map(|(_, o)| o())
                    })
                    .unwrap_or_else(|| {
                        complete &= !r.given(&k("outputs"));
                        MaskOutputs::panoptic()
                    });
                let written = checkpoint.unwrap_or_default();
                let (model, config) = read_mask_model(r, &k("checkpoint"), &written, base, ty, &options);
                if let (Some((_, l, s)), Some(c)) = (&labels, &config) {
                    if l.len() as i64 != c.num_labels() {
                        r.err(
                            &k("labels"),
                            ErrorKind::Mismatch,
                            format!(
                                "{s} names {} classes but the {} model {written} has {} (config.json id2label)",
                                l.len(),
                                c.what(),
                                c.num_labels()
                            ),
                        );
                    }
                }
                let labels = labels.map(|(p, _, _)| p);
                let kind = if m2f {
                    HeadKind::Mask2Former {
                        model,
                        outputs,
                        labels,
                        layers: options.layers,
                        num_heads: options.num_heads,
                    }
                } else {
                    HeadKind::Eomt { model, outputs, labels }
                };
                let params = HeadParams { name: name.clone(), kind };
                heads.push(HeadInfo { params, linear: None, mask_config: config, source_type: None });
            }
            None => {
                complete = false;
                for f in ["source", "outputs", "layers", "num_heads"] {
                    r.raw(&k(f));
                }
            }
        }
    }
    (heads, complete)
}

/// Checks between keys: head sources against the models present, one EoMT head at most, channels.
pub(crate) fn cross_check(
    r: &mut Reader,
    backbone: &Option<BackboneParams>,
    backbone_cfg: Option<&BackboneConfig>,
    heads: &[HeadInfo],
    heads_ok: bool,
) {
    let has_heads = heads.len() + r.flat.entries.keys().filter(|k| k.starts_with("heads.")).count() > 0;
    if !has_heads {
        r.err("heads", ErrorKind::Conflict, "no heads: add one (`heads.<name>.type: linear`, `eomt` or `mask2former`)");
    }
    let models: Vec<&HeadInfo> = heads.iter().filter(|h| h.params.describe().kind.is_mask_model()).collect();
    for extra in models.iter().skip(1) {
        r.err(
            &format!("heads.{}.type", extra.params.name),
            ErrorKind::Conflict,
            format!(
                "a second mask model (`{}` is the first): one EoMT or Mask2Former model per configuration",
                models[0].params.name
            ),
        );
    }
    let model_kind = models.first().map(|h| h.params.describe().kind);
    let model_cfg = models.first().and_then(|h| h.mask_config.as_ref());
    let mut backbone_read = false;
    for h in heads {
        let HeadKind::Linear { source, .. } = &h.params.kind else { continue };
        let key = format!("heads.{}.source", h.params.name);
        let info = match source {
            LinearHeadSource::Backbone => {
                backbone_read = true;
                if backbone.is_none() {
                    r.err(
                        &key,
                        ErrorKind::Conflict,
                        "the head reads the backbone (`source: backbone`, the default) but `backbone.checkpoint` is \
                         not set: set it, or `source: eomt` / `mask2former` to read the mask model's encoder",
                    );
                }
                backbone_cfg.map(|c| (c.feature_info(), "the backbone"))
            }
            LinearHeadSource::Masks => {
                let named = h.source_type.map_or("eomt", HeadType::name);
                match model_kind {
                    None => r.err(
                        &key,
                        ErrorKind::Conflict,
                        format!("the head reads the mask model's encoder (`source: {named}`) but no head has `type: {named}`"),
                    ),
                    Some(kind) if h.source_type.is_some_and(|t| t != kind) => r.err(
                        &key,
                        ErrorKind::Conflict,
                        format!(
                            "`source: {named}` but the mask model is `type: {}`: write `source: {}`",
                            kind.name(),
                            kind.name()
                        ),
                    ),
                    Some(_) => {}
                }
                model_cfg.map(|c| {
                    (
                        c.feature_info(),
                        if c.kind() == HeadType::Eomt { "the EoMT encoder" } else { "the Mask2Former backbone" },
                    )
                })
            }
        };
        // The loader's own rule (`LinearHeadConfig::select`), on the encoder's config.
        if let (Some((info, what)), Some(head)) = (info, &h.linear) {
            if let Err(m) = head.select(&info, what) {
                r.err(&format!("heads.{}.checkpoint", h.params.name), ErrorKind::Mismatch, m);
            }
        }
    }
    if backbone.is_some() && !backbone_read && heads_ok && !heads.is_empty() {
        r.err(
            "backbone.checkpoint",
            ErrorKind::Conflict,
            "no head reads the backbone (a linear head with `source: backbone`): remove it",
        );
    }
    if let (Some(b), Some(e)) = (backbone_cfg, model_cfg) {
        let multiple = match b {
            BackboneConfig::Vit(v) => v.patch_size,
            BackboneConfig::ConvNext(_) => 32,
        };
        if multiple != e.size_multiple() {
            r.err(
                "backbone.checkpoint",
                ErrorKind::Conflict,
                format!(
                    "the backbone needs input sides that are multiples of {multiple}, the {} model of {}",
                    e.what(),
                    e.size_multiple()
                ),
            );
        }
    }
}

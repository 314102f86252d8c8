//! The mask model of a configuration (`type: eomt` or `mask2former`): its checkpoint located and its architecture
//! read, as validation needs them, with the loader's own readers.

use super::checks::{self, Located};
use super::errors::ErrorKind;
use super::models::dir_config;
use super::reader::{missing, Reader};
use super::{HeadType, ModelRef};
use crate::checkpoint::{Mask2FormerOptions, ModelConfig};
use crate::model::heads::eomt::EomtConfig;
use crate::model::heads::mask2former::config::Mask2FormerConfig;
use crate::model::FeatureInfo;
use std::path::{Path, PathBuf};

/// `layers` and `num_heads` on a head of another type: read as their type (a wrong one is named as such), then
/// refused.
pub(super) fn mask2former_only(r: &mut Reader, layers: &str, num_heads: &str) {
    let given = [r.ints(layers, 0, 1023).is_some(), r.ranged_int(num_heads).is_some()];
    for (key, given) in [layers, num_heads].into_iter().zip(given) {
        if given {
            r.err(key, ErrorKind::BadValue, "only `type: mask2former` heads have it");
        }
    }
}

/// A mask model's checkpoint (`type: eomt` or `mask2former`): where it is and its architecture, read by the
/// loader's own readers (config.json and the weights' headers).
pub(super) fn read_mask_model(
    r: &mut Reader,
    key: &str,
    written: &str,
    base: &Path,
    ty: HeadType,
    options: &Mask2FormerOptions,
) -> (ModelRef, Option<MaskConfig>) {
    let located =
        if written.is_empty() { Located::Missing(PathBuf::new()) } else { checks::locate(written, base, true) };
    let read = |r: &mut Reader, dir: &Path, hub: bool| -> Option<MaskConfig> {
        if ty == HeadType::Mask2Former {
            return match crate::checkpoint::inspect_mask2former(dir, options) {
                Ok(c) => Some(MaskConfig::Mask2Former(Box::new(c))),
                Err(e) => {
                    r.err(key, ErrorKind::BadCheckpoint, e.to_string());
                    None
                }
            };
        }
        match dir_config(r, key, dir, hub)? {
            ModelConfig::Eomt(c) => Some(MaskConfig::Eomt(c)),
            other => {
                let hint = match other {
                    ModelConfig::Mask2Former(_) => "a Mask2Former model: declare it with `type: mask2former`",
                    _ => "a DINOv3 backbone: use it as `backbone.checkpoint` with a linear head",
                };
                r.err(key, ErrorKind::BadCheckpoint, format!("{} ({}), not an EoMT model", hint, other.model_type()));
                None
            }
        }
    };
    match located {
        Located::Local(p) if p.is_dir() => {
            let c = read(r, &p, false);
            (ModelRef::Path(p), c)
        }
        Located::Local(p) => {
            let fix = if ty == HeadType::Eomt {
                "; convert the authors' checkpoints with `dinoseg convert DELTA.bin OUT_DIR --base BASE`"
            } else {
                ""
            };
            r.err(
                key,
                ErrorKind::BadCheckpoint,
                format!(
                    "{written} is a file: a {} checkpoint is a transformers directory (config.json + weights) or a \
                     hub id{fix}",
                    ty.name()
                ),
            );
            (ModelRef::Path(p), None)
        }
        Located::Hub { id, cached } => {
            let c = cached.and_then(|dir| read(r, &dir, true));
            (ModelRef::Hub(id), c)
        }
        Located::Missing(p) => {
            if !written.is_empty() {
                r.err(key, ErrorKind::MissingFile, missing(written, base, "directory"));
            }
            (ModelRef::Path(p), None)
        }
    }
}

/// A mask model's architecture, as validation reads it.
pub(crate) enum MaskConfig {
    Eomt(EomtConfig),
    Mask2Former(Box<Mask2FormerConfig>),
}

impl MaskConfig {
    pub(super) fn num_labels(&self) -> i64 {
        match self {
            MaskConfig::Eomt(c) => c.num_labels(),
            MaskConfig::Mask2Former(c) => c.num_labels(),
        }
    }

    pub(super) fn what(&self) -> &'static str {
        match self {
            MaskConfig::Eomt(_) => "EoMT",
            MaskConfig::Mask2Former(_) => "Mask2Former",
        }
    }

    pub(super) fn kind(&self) -> HeadType {
        match self {
            MaskConfig::Eomt(_) => HeadType::Eomt,
            MaskConfig::Mask2Former(_) => HeadType::Mask2Former,
        }
    }

    pub(super) fn feature_info(&self) -> Vec<FeatureInfo> {
        match self {
            MaskConfig::Eomt(c) => c.feature_info(),
            MaskConfig::Mask2Former(c) => c.feature_info(),
        }
    }

    pub(super) fn size_multiple(&self) -> i64 {
        match self {
            MaskConfig::Eomt(c) => c.vit.patch_size,
            MaskConfig::Mask2Former(c) => c.size_multiple(),
        }
    }
}

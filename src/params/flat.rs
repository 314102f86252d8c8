//! The effective parameters written back as dotted keys ([`Params::to_flat`]): what the node logs and declares,
//! and what [`Params::from_flat_in`] reads back.

use super::{models, HeadKind, HeadParams, HeadType, ModelRef, ParamValue, Params};
use crate::pipeline::preprocess::{PadMode, Resize};
use crate::postprocess::MaskOutputs;
use crate::segmenter::LinearHeadSource;
use crate::topics::Output;
use std::collections::BTreeMap;
use std::path::Path;

impl Params {
    /// The effective parameters (defaults filled in, paths resolved) as dotted keys: what the node can log, and
    /// what [`Params::from_flat_in`] turns back into these parameters.
    pub fn to_flat(&self) -> BTreeMap<String, ParamValue> {
        let mut m = BTreeMap::new();
        let s = |v: &str| ParamValue::String(v.to_string());
        let path = |p: &Path| ParamValue::String(p.display().to_string());
        let model = |r: &ModelRef| match r {
            ModelRef::Path(p) => path(p),
            ModelRef::Hub(id) => s(id),
        };
        m.insert("base_dir".into(), path(&self.base_dir));
        m.insert("device".into(), s(&self.device));
        m.insert("precision".into(), s(self.precision.as_str()));
        if let Some(b) = &self.backbone {
            m.insert("backbone.checkpoint".into(), model(&b.checkpoint));
            if let Some(v) = &b.variant {
                m.insert("backbone.variant".into(), s(v));
            }
        }
        let model_kind = self.heads.iter().map(HeadParams::describe).find(|d| d.kind.is_mask_model()).map(|d| d.kind);
        for h in &self.heads {
            let k = |f: &str| format!("heads.{}.{f}", h.name);
            let labels = match &h.kind {
                HeadKind::Linear { checkpoint, source, labels } => {
                    m.insert(k("type"), s(HeadType::Linear.name()));
                    m.insert(k("checkpoint"), path(checkpoint));
                    let source = match source {
                        LinearHeadSource::Masks => model_kind.unwrap_or(HeadType::Eomt).name(),
                        LinearHeadSource::Backbone => "backbone",
                    };
                    m.insert(k("source"), s(source));
                    labels
                }
                HeadKind::Eomt { model: r, outputs, labels } => {
                    m.insert(k("type"), s(HeadType::Eomt.name()));
                    m.insert(k("checkpoint"), model(r));
                    m.insert(k("outputs"), s(outputs_name(outputs)));
                    labels
                }
                HeadKind::Mask2Former { model: r, outputs, labels, layers, num_heads } => {
                    m.insert(k("type"), s(HeadType::Mask2Former.name()));
                    m.insert(k("checkpoint"), model(r));
                    m.insert(k("outputs"), s(outputs_name(outputs)));
                    if let Some(l) = layers {
                        m.insert(k("layers"), ParamValue::IntArray(l.clone()));
                    }
                    if let Some(n) = num_heads {
                        m.insert(k("num_heads"), ParamValue::Int(*n));
                    }
                    labels
                }
            };
            if let Some(l) = labels {
                m.insert(k("labels"), path(l));
            }
        }
        m.insert(
            "input.topics".into(),
            ParamValue::StringArray(self.input.topics.iter().map(|t| t.name.clone()).collect()),
        );
        m.insert("input.reliability".into(), s(self.input.reliability.name()));
        let int = |v: u32| ParamValue::Int(i64::from(v));
        match self.resize.resize {
            Resize::Keep => {
                m.insert("resize.mode".into(), s("keep"));
            }
            Resize::ShortSide(n) => {
                m.insert("resize.mode".into(), s("short_side"));
                m.insert("resize.short_side".into(), int(n));
            }
            Resize::Fixed { height, width } => {
                m.insert("resize.mode".into(), s("fixed"));
                m.insert("resize.height".into(), int(height));
                m.insert("resize.width".into(), int(width));
            }
        }
        if self.resize.max_long_side != self.resize.resize.default_max_long_side() {
            // 0: no cap where absent would mean the default cap.
            m.insert("resize.max_long_side".into(), int(self.resize.max_long_side.unwrap_or(0)));
        }
        let pad = if self.resize.pad == PadMode::Stretch { "stretch" } else { "bottom_right" };
        m.insert("resize.pad".into(), s(pad));
        let t = &self.thresholds;
        m.insert("thresholds.score".into(), ParamValue::Double(t.score_threshold));
        m.insert("thresholds.query".into(), ParamValue::Double(t.query_threshold));
        m.insert("thresholds.mask".into(), ParamValue::Double(t.mask_threshold));
        m.insert("thresholds.overlap".into(), ParamValue::Double(t.overlap_threshold));
        m.insert("thresholds.top_k".into(), ParamValue::Int(t.top_k as i64));
        for o in Output::ALL {
            m.insert(format!("outputs.{}", o.name()), ParamValue::Bool(self.outputs.contains(o)));
        }
        m.insert("outputs.semantic_from".into(), s(self.semantic_from.as_deref().unwrap_or("")));
        m.insert("colors.palette".into(), s(self.colors.name.as_str()));
        m.insert("colors.overlay_alpha".into(), ParamValue::Double(self.colors.overlay_alpha));
        for (id, c) in &self.colors.overrides {
            m.insert(format!("colors.overrides.{id}"), ParamValue::IntArray(c.iter().map(|&v| i64::from(v)).collect()));
        }
        m.insert("node.max_batch".into(), ParamValue::Int(self.node.max_batch as i64));
        m.insert("node.diagnostics_period".into(), ParamValue::Double(self.node.diagnostics_period));
        m.insert("node.warn_interval".into(), ParamValue::Double(self.node.warn_interval));
        m.insert("node.threads".into(), ParamValue::Int(self.node.threads as i64));
        m
    }
}

/// The `outputs` name of an EoMT head's [`MaskOutputs`].
fn outputs_name(o: &MaskOutputs) -> &'static str {
    models::EOMT_OUTPUTS.iter().find(|(_, f)| f() == *o).map_or("panoptic", |(name, _)| name)
}

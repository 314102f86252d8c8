//! The head plan: which encoder passes run, which heads read each pass, and which head gives each output. It is
//! built once, from what the configuration says about the heads (no weights needed), by
//! [`crate::segmenter::Segmenter::new`] at start-up and by the parameters' validation (so `check-params`
//! refuses what start-up would), and the node sizes its publishers from it.
//!
//! Routing: the frame's main semantic map (`semantic`, `semantic_color`, `label_info`, the overlay) comes from
//! one head: `outputs.semantic_from` when set, else the first linear head in name order, else the mask model's
//! semantic map. Instances (and the panoptic map) come from the one head that gives them (EoMT or Mask2Former:
//! the mask model, one per configuration). Every other
//! head with a semantic map publishes it on its own topics, `<ns>/dinoseg/<head>/semantic`,
//! `.../semantic_color` and `.../label_info`, and in bags and folders the same way. A head none of whose results
//! reaches an enabled output is refused, as is a configuration without heads or with a pass no head reads.

use crate::topics::{Output, OutputSet};

/// An encoder forward: one per batch, shared by every head that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pass {
    /// The mask model (an EoMT or a Mask2Former head, with its encoder); linear heads with `source: eomt` or
    /// `source: mask2former` read its encoder's dense layers.
    Masks,
    /// The configured DINOv3 backbone (`backbone.checkpoint`).
    Backbone,
}

impl Pass {
    pub const ALL: [Pass; 2] = [Pass::Masks, Pass::Backbone];

    /// What messages call it.
    pub fn describe(self) -> &'static str {
        match self {
            Pass::Masks => "the mask model's encoder",
            Pass::Backbone => "the backbone",
        }
    }
}

/// The kind of a head: the parameters' `heads.<name>.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeadType {
    /// A 1x1 convolution over dense features (the DINOv3 linear protocol): a semantic map.
    Linear,
    /// EoMT: queries in the last encoder blocks, masks and classes: panoptic, semantic or instances.
    Eomt,
    /// Mask2Former: a pixel decoder and a masked-attention decoder on the backbone's maps, masks and classes as
    /// EoMT's.
    Mask2Former,
}

impl HeadType {
    /// Every kind (a new kind of head: one variant here and in `ALL`).
    pub const ALL: [HeadType; 3] = [HeadType::Linear, HeadType::Eomt, HeadType::Mask2Former];
    /// Their names, as the parameters write them.
    pub const NAMES: [&'static str; 3] = [HeadType::ALL[0].name(), HeadType::ALL[1].name(), HeadType::ALL[2].name()];

    /// The `type` value.
    pub const fn name(self) -> &'static str {
        match self {
            HeadType::Linear => "linear",
            HeadType::Eomt => "eomt",
            HeadType::Mask2Former => "mask2former",
        }
    }

    /// A mask model: queries giving masks and classes (semantic, instances, panoptic), read by [`Pass::Masks`].
    pub const fn is_mask_model(self) -> bool {
        matches!(self, HeadType::Eomt | HeadType::Mask2Former)
    }

    /// Parses a `type` value (any case); None for any other text.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(s))
    }
}

/// What the plan needs to know of one configured head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadDesc {
    /// The key under `heads`.
    pub name: String,
    pub kind: HeadType,
    /// The pass whose features it reads.
    pub pass: Pass,
    /// It gives a semantic map (a linear head; a mask model with `outputs: panoptic` or `semantic`).
    pub semantic: bool,
    /// It gives instances (a mask model with `outputs: panoptic` or `instances`).
    pub instances: bool,
}

impl HeadDesc {
    /// A linear head reading `pass`: a semantic map.
    pub fn linear(name: impl Into<String>, pass: Pass) -> Self {
        HeadDesc { name: name.into(), kind: HeadType::Linear, pass, semantic: true, instances: false }
    }

    /// A mask model head (`kind`: EoMT or Mask2Former) with its `outputs`.
    pub fn mask_model(name: impl Into<String>, kind: HeadType, outputs: &crate::postprocess::MaskOutputs) -> Self {
        use crate::postprocess::{InstanceSource, SemanticSource};
        HeadDesc {
            name: name.into(),
            kind,
            pass: Pass::Masks,
            semantic: outputs.semantic != SemanticSource::Off,
            instances: outputs.instances != InstanceSource::Off,
        }
    }
}

/// Why a configuration cannot run: the parameter key it is about and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct PlanError {
    pub key: String,
    pub message: String,
}

fn refuse(key: impl Into<String>, message: impl Into<String>) -> PlanError {
    PlanError { key: key.into(), message: message.into() }
}

/// The plan: heads in configuration order, the passes to run, and the routing of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadPlan {
    heads: Vec<HeadDesc>,
    passes: Vec<(Pass, Vec<usize>)>,
    main_semantic: Option<usize>,
    instances: Option<usize>,
    extra_semantic: Vec<usize>,
}

/// The outputs that show a main semantic map, an extra head's semantic map, and instances.
const MAIN_SEMANTIC_OUTPUTS: [Output; 3] = [Output::Semantic, Output::SemanticColor, Output::Overlay];
/// The outputs a head other than the main one publishes on its own topics (the label info goes with them).
pub const HEAD_OUTPUTS: [Output; 3] = [Output::Semantic, Output::SemanticColor, Output::LabelInfo];
const INSTANCE_OUTPUTS: [Output; 4] = [Output::Instances, Output::InstanceIds, Output::Detections, Output::Overlay];

impl HeadPlan {
    /// Builds the plan. `backbone`: whether a backbone is configured (the EoMT pass exists when an EoMT head
    /// does); `semantic_from`: the head named by `outputs.semantic_from`; `enabled`: the outputs switched on at
    /// start-up. Refuses, naming the key: no head; a head reading a pass that is not configured; a configured
    /// pass no head reads; two heads giving instances; a `semantic_from` that names no head with a semantic map;
    /// a head whose every result would go nowhere.
    pub fn new(
        heads: Vec<HeadDesc>,
        backbone: bool,
        semantic_from: Option<&str>,
        enabled: OutputSet,
    ) -> Result<Self, PlanError> {
        if heads.is_empty() {
            return Err(refuse("heads", "no head configured: add a linear head or a mask model (EoMT, Mask2Former)"));
        }
        let models: Vec<&HeadDesc> = heads.iter().filter(|h| h.kind.is_mask_model()).collect();
        if let [first, second, ..] = models[..] {
            return Err(refuse(
                format!("heads.{}.type", second.name),
                format!(
                    "a second mask model (`{}` is the first): one EoMT or Mask2Former model per configuration",
                    first.name
                ),
            ));
        }
        let mut available = Vec::new();
        if !models.is_empty() {
            available.push(Pass::Masks);
        }
        if backbone {
            available.push(Pass::Backbone);
        }
        for h in &heads {
            if !available.contains(&h.pass) {
                let fix = match h.pass {
                    Pass::Backbone => {
                        "set `backbone.checkpoint`, or `source: eomt` / `mask2former` to read the mask model's encoder"
                    }
                    Pass::Masks => {
                        "add a head with `type: eomt` or `mask2former`, or read the backbone (`source: backbone`)"
                    }
                };
                let model = if h.pass == Pass::Backbone { "backbone" } else { "mask model" };
                return Err(refuse(
                    format!("heads.{}", h.name),
                    format!("reads {}, but no {model} is configured: {fix}", h.pass.describe()),
                ));
            }
        }
        for p in &available {
            if !heads.iter().any(|h| h.pass == *p) {
                let key = if *p == Pass::Backbone { "backbone.checkpoint" } else { "heads" };
                return Err(refuse(key, format!("no head reads {}: remove it", p.describe())));
            }
        }
        let with_instances: Vec<usize> = (0..heads.len()).filter(|&i| heads[i].instances).collect();
        if let [first, second, ..] = with_instances[..] {
            return Err(refuse(
                format!("heads.{}", heads[second].name),
                format!("a second head giving instances (`{}` is the first): one per node", heads[first].name),
            ));
        }
        let main_semantic = match semantic_from.filter(|s| !s.is_empty()) {
            Some(name) => {
                let candidates: Vec<&str> = heads.iter().filter(|h| h.semantic).map(|h| h.name.as_str()).collect();
                match heads.iter().position(|h| h.name == name) {
                    Some(i) if heads[i].semantic => Some(i),
                    found => {
                        let what = if found.is_some() { "gives no semantic map" } else { "is not a configured head" };
                        return Err(refuse(
                            "outputs.semantic_from",
                            format!("`{name}` {what}; heads with a semantic map: {}", list(&candidates)),
                        ));
                    }
                }
            }
            None => heads
                .iter()
                .position(|h| h.kind == HeadType::Linear && h.semantic)
                .or_else(|| heads.iter().position(|h| h.semantic)),
        };
        let extra_semantic: Vec<usize> =
            (0..heads.len()).filter(|&i| heads[i].semantic && Some(i) != main_semantic).collect();
        for (k, &i) in extra_semantic.iter().enumerate() {
            let token = crate::topics::head_token(&heads[i].name);
            if let Some(&j) = extra_semantic[..k].iter().find(|&&j| crate::topics::head_token(&heads[j].name) == token)
            {
                return Err(refuse(
                    format!("heads.{}", heads[i].name),
                    format!("its topics (`{token}/...`) would be those of head `{}`: rename one", heads[j].name),
                ));
            }
        }
        let mut passes: Vec<(Pass, Vec<usize>)> = Vec::new();
        for p in Pass::ALL {
            let on: Vec<usize> = (0..heads.len()).filter(|&i| heads[i].pass == p).collect();
            if !on.is_empty() {
                passes.push((p, on));
            }
        }
        let plan =
            HeadPlan { heads, passes, main_semantic, instances: with_instances.first().copied(), extra_semantic };
        plan.check_used(enabled)?;
        Ok(plan)
    }

    /// Refuses a head none of whose results reaches an enabled output.
    fn check_used(&self, enabled: OutputSet) -> Result<(), PlanError> {
        let any = |outs: &[Output]| outs.iter().any(|o| enabled.contains(*o));
        for (i, h) in self.heads.iter().enumerate() {
            let main = Some(i) == self.main_semantic && any(&MAIN_SEMANTIC_OUTPUTS);
            let extra = self.extra_semantic.contains(&i) && any(&HEAD_OUTPUTS[..2]);
            let instances = Some(i) == self.instances && any(&INSTANCE_OUTPUTS);
            if main || extra || instances {
                continue;
            }
            let mut gives = Vec::new();
            if Some(i) == self.main_semantic {
                gives.push("the main semantic map (outputs.semantic, semantic_color and overlay are off)");
            } else if h.semantic {
                gives.push("its own semantic map (outputs.semantic and semantic_color are off)");
            }
            if h.instances {
                gives.push("instances (outputs.instances, instance_ids, detections and overlay are off)");
            }
            return Err(refuse(
                format!("heads.{}", h.name),
                format!(
                    "its results go nowhere: it gives {}; switch an output on or remove the head",
                    gives.join(" and ")
                ),
            ));
        }
        Ok(())
    }

    /// The heads, in configuration order (indices are the plan's head indices).
    pub fn heads(&self) -> &[HeadDesc] {
        &self.heads
    }

    /// The passes to run, each with the heads that read it.
    pub fn passes(&self) -> &[(Pass, Vec<usize>)] {
        &self.passes
    }

    /// The head giving the frame's main semantic map.
    pub fn main_semantic(&self) -> Option<usize> {
        self.main_semantic
    }

    /// The head giving instances (and the panoptic map).
    pub fn instances(&self) -> Option<usize> {
        self.instances
    }

    /// The heads publishing their semantic map on their own topics, in configuration order.
    pub fn extra_semantic(&self) -> &[usize] {
        &self.extra_semantic
    }

    /// The names of [`Self::extra_semantic`].
    pub fn extra_semantic_names(&self) -> Vec<&str> {
        self.extra_semantic.iter().map(|&i| self.heads[i].name.as_str()).collect()
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linear(name: &str, pass: Pass) -> HeadDesc {
        HeadDesc { name: name.into(), kind: HeadType::Linear, pass, semantic: true, instances: false }
    }
    fn eomt(name: &str, semantic: bool, instances: bool) -> HeadDesc {
        HeadDesc { name: name.into(), kind: HeadType::Eomt, pass: Pass::Masks, semantic, instances }
    }
    fn all() -> OutputSet {
        Output::ALL.into_iter().collect()
    }
    fn set(o: &[Output]) -> OutputSet {
        o.iter().copied().collect()
    }

    #[test]
    fn routing_follows_names_not_passes() {
        let heads = vec![linear("a", Pass::Backbone), linear("b", Pass::Masks), eomt("m", true, true)];
        let p = HeadPlan::new(heads.clone(), true, None, all()).expect("plan");
        assert_eq!(p.main_semantic(), Some(0), "the first linear head in name order");
        assert_eq!(p.instances(), Some(2));
        assert_eq!(p.extra_semantic_names(), vec!["b", "m"]);
        assert_eq!(p.passes(), &[(Pass::Masks, vec![1, 2]), (Pass::Backbone, vec![0])]);
        let p = HeadPlan::new(heads.clone(), true, Some("m"), all()).expect("plan");
        assert_eq!((p.main_semantic(), p.extra_semantic_names()), (Some(2), vec!["a", "b"]));
        let e = HeadPlan::new(heads, true, Some("x"), all()).expect_err("unknown");
        assert_eq!(e.key, "outputs.semantic_from");
        assert!(e.message.contains("a, b, m"), "{e}");
    }

    #[test]
    fn refusals_name_the_key_and_reason() {
        let e = HeadPlan::new(vec![linear("a", Pass::Backbone)], false, None, all()).expect_err("x");
        assert_eq!(e.key, "heads.a");
        let e = HeadPlan::new(vec![eomt("m", true, true)], true, None, all()).expect_err("unread");
        assert_eq!(e.key, "backbone.checkpoint");
        // An extra semantic head with its outputs off goes nowhere; the main one still has the overlay.
        let heads = vec![linear("a", Pass::Backbone), linear("b", Pass::Backbone)];
        let e = HeadPlan::new(heads.clone(), true, None, set(&[Output::Overlay])).expect_err("unused");
        assert_eq!(e.key, "heads.b");
        assert!(e.message.contains("go nowhere"), "{e}");
        assert!(HeadPlan::new(heads, true, None, set(&[Output::SemanticColor])).is_ok());
        let e = HeadPlan::new(vec![eomt("m", false, true)], false, None, set(&[Output::Semantic])).expect_err("x");
        assert!(e.message.contains("instances"), "{e}");
        let e = HeadPlan::new(vec![eomt("m", false, true)], false, Some("m"), all()).expect_err("x");
        assert!(e.message.contains("gives no semantic map"), "{e}");
        assert_eq!(HeadPlan::new(vec![], false, None, all()).expect_err("none").key, "heads");
        let mut m2f = eomt("n", true, false);
        m2f.kind = HeadType::Mask2Former;
        let e = HeadPlan::new(vec![eomt("m", false, true), m2f.clone()], false, None, all()).expect_err("two");
        assert_eq!(e.key, "heads.n.type");
        assert!(e.message.contains("a second mask model (`m` is the first)"), "{e}");
        let p = HeadPlan::new(vec![linear("a", Pass::Masks), m2f], false, None, all()).expect("mask2former pass");
        assert_eq!(p.passes(), &[(Pass::Masks, vec![0, 1])]);
    }
}

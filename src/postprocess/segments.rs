//! The segment selection shared by the CPU kernels ([`super::panoptic`], [`super::instances`]) and the device
//! kernels ([`super::device_kernels`]): the mask threshold as a logit, the kept queries, the overlap rule and stuff
//! merging that turn per-query areas into segments, and a query's thresholded mask.
//!
//! Import graph of the mask post-processing (an arrow: `use`s; no cycle, checked by the test below):
//! `device` -> `panoptic`, `instances` -> `device_kernels` -> `segments`; `panoptic`, `instances` -> `segments`.

use super::labels::Labels;
use super::types::{BBox, BinaryMask, PanopticMap, SegmentInfo};

/// `ln(t / (1 - t))`: `sigmoid(u) >= t` exactly when `u >= threshold_logit(t)` (0 for 0.5).
pub(crate) fn threshold_logit(t: f64) -> f64 {
    (t / (1.0 - t)).ln()
}

/// One image's kept queries (in query order) and what steps 3 and 4 need to know about them.
pub(crate) struct Queries<'a> {
    pub classes: &'a [i64],
    pub scores: &'a [f32],
    pub labels: &'a Labels,
    pub overlap: f64,
}

/// Step 3's test: whether a query with these won, own-mask and final areas keeps its segment. For fixed `won`,
/// `fin` it is monotone in `own` (non-increasing), which lets bounds on `own` decide it.
pub(crate) fn keeps(won: u64, own: u64, fin: u64, overlap: f64) -> bool {
    let ratio = won as f32 / own.max(1) as f32;
    won > 0 && own > 0 && fin > 0 && f64::from(ratio) > overlap
}

/// Steps 3 and 4 on the per-query areas: each kept query's segment id (0: none) and the segments (areas 0).
pub(crate) fn select_segments(won: &[u64], own: &[u64], fin: &[u64], q: &Queries) -> (Vec<u16>, Vec<SegmentInfo>) {
    let mut seg_of = vec![0u16; won.len()];
    let mut segments: Vec<SegmentInfo> = Vec::new();
    let mut stuff_segment = std::collections::HashMap::new();
    for j in 0..won.len() {
        if !keeps(won[j], own[j], fin[j], q.overlap) {
            continue;
        }
        let class = q.classes.get(j).copied().unwrap_or(0).max(0) as usize;
        let is_thing = q.labels.is_thing(class);
        if !is_thing {
            if let Some(&id) = stuff_segment.get(&class) {
                seg_of[j] = id;
                continue;
            }
        }
        let id = segments.len() as u16 + 1;
        if !is_thing {
            stuff_segment.insert(class, id);
        }
        seg_of[j] = id;
        let score = q.scores.get(j).copied().unwrap_or(0.0);
        segments.push(SegmentInfo { id: u32::from(id), class_id: class as u32, is_thing, score, area: 0 });
    }
    (seg_of, segments)
}

/// The map from its ids, with the segments' areas counted.
pub(crate) fn finish(ids: Vec<u16>, mut segments: Vec<SegmentInfo>, out_h: usize, out_w: usize) -> PanopticMap {
    let mut area = vec![0u32; segments.len() + 1];
    for &id in &ids {
        if let Some(a) = area.get_mut(id as usize) {
            *a += 1;
        }
    }
    for s in &mut segments {
        s.area = area.get(s.id as usize).copied().unwrap_or(0);
    }
    PanopticMap { height: out_h as u32, width: out_w as u32, ids, segments }
}

/// One query's mask at the output resolution, cropped to its box, with the sum of its probabilities.
pub(crate) struct QueryMask {
    pub bbox: BBox,
    pub mask: BinaryMask,
    pub area: u64,
    pub prob_sum: f64,
}

impl QueryMask {
    pub fn empty() -> Self {
        QueryMask { bbox: BBox::default(), mask: BinaryMask::default(), area: 0, prob_sum: 0.0 }
    }
}

#[cfg(test)]
mod tests {
    /// The `super::<module>` references of each mask post-processing module's code (comments left out).
    fn imports(src: &str) -> Vec<&'static str> {
        let code: String = src.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
        let names = |m: &str| {
            code.match_indices(&format!("super::{m}"))
                .any(|(at, hit)| !code[at + hit.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_'))
        };
        MODULES.iter().map(|(m, _)| *m).filter(|m| names(m)).collect()
    }

    const MODULES: [(&str, &str); 5] = [
        ("device", include_str!("device.rs")),
        ("device_kernels", include_str!("device_kernels.rs")),
        ("instances", include_str!("instances.rs")),
        ("panoptic", include_str!("panoptic.rs")),
        ("segments", include_str!("segments.rs")),
    ];

    /// No module imports one that (directly or not) imports it: shared selection lives here, not in a sibling.
    #[test]
    fn mask_postprocess_modules_import_without_cycles() {
        let graph: Vec<(&str, Vec<&str>)> = MODULES.iter().map(|(m, src)| (*m, imports(src))).collect();
        let deps = |m: &str| graph.iter().find(|(n, _)| *n == m).map(|(_, d)| d.clone()).unwrap_or_default();
        for (start, _) in MODULES {
            let mut stack = deps(start);
            let mut seen = Vec::new();
            while let Some(m) = stack.pop() {
                assert_ne!(m, start, "import cycle through `{start}`: {graph:?}");
                if !seen.contains(&m) {
                    seen.push(m);
                    stack.extend(deps(m));
                }
            }
        }
        assert_eq!(deps("segments"), Vec::<&str>::new(), "segments is a leaf: {graph:?}");
        assert_eq!(deps("device"), vec!["device_kernels", "instances", "panoptic"], "{graph:?}");
    }
}

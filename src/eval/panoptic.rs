//! Panoptic quality (PQ, SQ, RQ) as panopticapi's `pq_compute` (Kirillov et al., "Panoptic Segmentation",
//! CVPR 2019) computes it, over COCO panoptic sets (JSON + RGB id PNGs: [`super::panoptic_json`]).
//!
//! Per image: pixel areas and (ground-truth id, predicted id) intersections from the two PNGs (id 0 = VOID). A
//! ground-truth and a predicted segment of the same category match when the ground truth is not crowd and
//! IoU > 0.5, with IoU = inter / (pred area + GT area - inter - pred pixels on VOID ground truth). Unmatched
//! non-crowd ground truth is a false negative; an unmatched prediction is ignored when more than half of it lies
//! on VOID or on the crowd region of its category (one per category and image, the last crowd segment listed,
//! as panopticapi's `crowd_labels_dict`), else it is a false positive. Per category PQ = sum IoU / (TP + FP/2 +
//! FN/2), SQ = sum IoU / TP (0 without TP), RQ = TP / (TP + FP/2 + FN/2); averaged over the categories with any
//! TP, FP or FN, for all, things and stuff (`isthing`). Values are fractions (panopticapi prints them x 100).
//!
//! Errors as panopticapi raises them, naming the file, image and segment: a PNG id missing from `segments_info`,
//! a `segments_info` id missing from the PNG, an unknown category, a ground-truth image without prediction.
//! Stricter than panopticapi (which trusts them silently): the same checks on the ground truth, a ground-truth
//! `area` that differs from its PNG's pixel count, a prediction for an image not in the ground truth, maps of
//! different sizes. On every input accepted the numbers are panopticapi's.

use super::label_png::{read_id_png, LabelMap};
use super::panoptic_json::{
    parse_ground_truth, parse_predictions, Annotation, Category, ImageId, ANNOTATIONS_JSON_CAP,
};
use crate::error::{Error, Result};
use crate::files::read_text_capped;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Sums of one category.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Stat {
    iou: f64,
    tp: u64,
    fp: u64,
    fn_: u64,
}

/// PQ, SQ and RQ averaged over `n` categories (null when n is 0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PqSummary {
    #[serde(rename = "PQ")]
    pub pq: Option<f64>,
    #[serde(rename = "SQ")]
    pub sq: Option<f64>,
    #[serde(rename = "RQ")]
    pub rq: Option<f64>,
    pub n: usize,
}

/// One category's result (0 where it has no TP, FP or FN, as panopticapi).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PqClass {
    pub name: String,
    pub isthing: bool,
    #[serde(rename = "PQ")]
    pub pq: f64,
    #[serde(rename = "SQ")]
    pub sq: f64,
    #[serde(rename = "RQ")]
    pub rq: f64,
    #[serde(rename = "TP")]
    pub tp: u64,
    #[serde(rename = "FP")]
    pub fp: u64,
    #[serde(rename = "FN")]
    pub fn_: u64,
}

/// The metrics of a set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PanopticResult {
    pub all: PqSummary,
    pub things: PqSummary,
    pub stuff: PqSummary,
    /// By category id.
    pub per_class: BTreeMap<i64, PqClass>,
    pub images: usize,
}

/// Per-category sums over the images added so far.
#[derive(Debug, Clone)]
pub struct PanopticEval {
    categories: BTreeMap<i64, Category>,
    stats: BTreeMap<i64, Stat>,
    images: usize,
}

/// How many times each value occurs, sorted by value (counted in runs: neighbouring pixels mostly share ids).
fn counts<K: Copy + Eq + Ord + std::hash::Hash>(values: impl Iterator<Item = K>) -> BTreeMap<K, u64> {
    let mut counts: HashMap<K, u64> = HashMap::new();
    let mut run: Option<(K, u64)> = None;
    for v in values {
        match &mut run {
            Some((k, n)) if *k == v => *n += 1,
            _ => {
                if let Some((k, n)) = run.replace((v, 1)) {
                    *counts.entry(k).or_default() += n;
                }
            }
        }
    }
    if let Some((k, n)) = run {
        *counts.entry(k).or_default() += n;
    }
    counts.into_iter().collect()
}

/// Pixel count per id of a map.
fn areas(map: &LabelMap) -> BTreeMap<u32, u64> {
    counts(map.values.iter().copied())
}

/// Checks that the PNG's ids and `segments_info` agree (and, for the ground truth, the areas and categories).
fn check_segments(
    ann: &Annotation,
    map: &LabelMap,
    areas: &BTreeMap<u32, u64>,
    categories: &BTreeMap<i64, Category>,
    side: &str,
) -> Result<()> {
    let at = format!("{side} image_id {}", ann.image_id);
    let info: BTreeMap<u32, _> = ann.segments_info.iter().map(|s| (s.id, s)).collect();
    for (&id, &count) in areas {
        if id == 0 {
            continue;
        }
        let Some(seg) = info.get(&id) else {
            return Err(Error::Input(format!(
                "{at}: segment id {id} is in the PNG {} and not in segments_info",
                map.name
            )));
        };
        if !categories.contains_key(&seg.category_id) {
            return Err(Error::Input(format!("{at}: segment id {id} has unknown category_id {}", seg.category_id)));
        }
        if let Some(a) = seg.area.filter(|&a| a != count as f64) {
            return Err(Error::Input(format!(
                "{at}: segment id {id} has area {a} in the JSON but {count} pixels in the PNG {}",
                map.name
            )));
        }
    }
    let absent: Vec<String> = info.keys().filter(|id| !areas.contains_key(id)).map(u32::to_string).collect();
    if !absent.is_empty() {
        return Err(Error::Input(format!(
            "{at}: segment id(s) {} are in segments_info and not in the PNG {}",
            absent.join(", "),
            map.name
        )));
    }
    Ok(())
}

impl PanopticEval {
    /// An empty evaluation over the ground truth's categories.
    pub fn new(categories: BTreeMap<i64, Category>) -> Self {
        PanopticEval { categories, stats: BTreeMap::new(), images: 0 }
    }

    /// Adds one image pair (the caller pairs them by image_id). Refused, leaving the sums unchanged, on the errors
    /// of the module doc.
    pub fn add(&mut self, gt: &Annotation, gt_png: &LabelMap, pred: &Annotation, pred_png: &LabelMap) -> Result<()> {
        if (gt_png.width, gt_png.height) != (pred_png.width, pred_png.height) {
            return Err(Error::Input(format!(
                "image_id {}: prediction {} is {}x{} but ground truth {} is {}x{}",
                gt.image_id, pred_png.name, pred_png.width, pred_png.height, gt_png.name, gt_png.width, gt_png.height
            )));
        }
        let gt_areas = areas(gt_png);
        let pred_areas = areas(pred_png);
        check_segments(pred, pred_png, &pred_areas, &self.categories, "prediction")?;
        check_segments(gt, gt_png, &gt_areas, &self.categories, "ground truth")?;

        let inter = counts(gt_png.values.iter().copied().zip(pred_png.values.iter().copied()));
        let gt_segs: BTreeMap<u32, _> = gt.segments_info.iter().map(|s| (s.id, s)).collect();
        let pred_segs: BTreeMap<u32, _> = pred.segments_info.iter().map(|s| (s.id, s)).collect();
        let area = |areas: &BTreeMap<u32, u64>, id: u32| areas.get(&id).copied().unwrap_or(0);

        let mut delta: BTreeMap<i64, Stat> = BTreeMap::new();
        let mut gt_matched = std::collections::BTreeSet::new();
        let mut pred_matched = std::collections::BTreeSet::new();
        for (&(g, p), &i) in &inter {
            let (Some(gs), Some(ps)) = (gt_segs.get(&g), pred_segs.get(&p)) else { continue };
            if gs.iscrowd == 1 || gs.category_id != ps.category_id {
                continue;
            }
            let void = inter.get(&(0, p)).copied().unwrap_or(0);
            let union = area(&pred_areas, p) + area(&gt_areas, g) - i - void;
            let iou = i as f64 / union as f64;
            if iou > 0.5 {
                let s = delta.entry(gs.category_id).or_default();
                s.tp += 1;
                s.iou += iou;
                gt_matched.insert(g);
                pred_matched.insert(p);
            }
        }
        let mut crowd: BTreeMap<i64, u32> = BTreeMap::new();
        for s in &gt.segments_info {
            if gt_matched.contains(&s.id) {
                continue;
            }
            if s.iscrowd == 1 {
                crowd.insert(s.category_id, s.id);
                continue;
            }
            delta.entry(s.category_id).or_default().fn_ += 1;
        }
        for s in &pred.segments_info {
            if pred_matched.contains(&s.id) {
                continue;
            }
            let mut covered = inter.get(&(0, s.id)).copied().unwrap_or(0);
            if let Some(&c) = crowd.get(&s.category_id) {
                covered += inter.get(&(c, s.id)).copied().unwrap_or(0);
            }
            if covered as f64 / area(&pred_areas, s.id) as f64 > 0.5 {
                continue;
            }
            delta.entry(s.category_id).or_default().fp += 1;
        }
        for (cat, d) in delta {
            let s = self.stats.entry(cat).or_default();
            s.iou += d.iou;
            s.tp += d.tp;
            s.fp += d.fp;
            s.fn_ += d.fn_;
        }
        self.images += 1;
        Ok(())
    }

    /// The metrics of the images added so far.
    pub fn result(&self) -> PanopticResult {
        let mut per_class = BTreeMap::new();
        let mut sums = [(0.0, 0.0, 0.0, 0usize); 3]; // all, things, stuff
        for (&id, cat) in &self.categories {
            let s = self.stats.get(&id).copied().unwrap_or_default();
            let (tp, fp, fn_) = (s.tp as f64, s.fp as f64, s.fn_ as f64);
            let (mut pq, mut sq, mut rq) = (0.0, 0.0, 0.0);
            if s.tp + s.fp + s.fn_ > 0 {
                let denom = tp + 0.5 * fp + 0.5 * fn_;
                pq = s.iou / denom;
                sq = if s.tp > 0 { s.iou / tp } else { 0.0 };
                rq = tp / denom;
                for k in [0, if cat.isthing == 1 { 1 } else { 2 }] {
                    sums[k].0 += pq;
                    sums[k].1 += sq;
                    sums[k].2 += rq;
                    sums[k].3 += 1;
                }
            }
            let class = PqClass {
                name: cat.name.clone(),
                isthing: cat.isthing == 1,
                pq,
                sq,
                rq,
                tp: s.tp,
                fp: s.fp,
                fn_: s.fn_,
            };
            per_class.insert(id, class);
        }
        let summary = |(pq, sq, rq, n): (f64, f64, f64, usize)| {
            let avg = |v: f64| (n > 0).then(|| v / n as f64);
            PqSummary { pq: avg(pq), sq: avg(sq), rq: avg(rq), n }
        };
        PanopticResult {
            all: summary(sums[0]),
            things: summary(sums[1]),
            stuff: summary(sums[2]),
            per_class,
            images: self.images,
        }
    }
}

/// The file stem of a `file_name` (the name itself when it has none).
fn stem(name: &str) -> &str {
    Path::new(name).file_stem().and_then(|s| s.to_str()).unwrap_or(name)
}

/// Evaluates a prediction set (JSON + PNG folder) against a ground-truth set, pairing images by image_id; a
/// prediction whose image_id the ground truth lacks is paired by file stem with the ground-truth image of the same
/// stem (`dinoseg run` names its PNGs by frame: `frame_7.png` pairs with `frame_7.png` or `frame_7.jpg`'s
/// annotation) when that image has no prediction yet. Every ground-truth image needs a prediction; a prediction
/// for an image not in the ground truth (by id, or by stem to an image not yet predicted) is an error.
///
/// With `by_name`, the predictions' categories are matched to the ground truth's by name
/// ([`super::panoptic_json::Predictions::categories_by_name`]); the count of segments left out (of categories the
/// ground truth has no name for) is returned beside the metrics (0 without `by_name`).
pub fn evaluate_files(
    gt_json: &Path,
    gt_dir: &Path,
    pred_json: &Path,
    pred_dir: &Path,
    by_name: bool,
) -> Result<(PanopticResult, usize)> {
    let gt_text = read_text_capped(gt_json, ANNOTATIONS_JSON_CAP, "panoptic ground-truth JSON")?;
    let gt = parse_ground_truth(&gt_text, &gt_json.display().to_string())?;
    drop(gt_text);
    let pred_text = read_text_capped(pred_json, ANNOTATIONS_JSON_CAP, "panoptic prediction JSON")?;
    let mut preds = parse_predictions(&pred_text, &pred_json.display().to_string())?;
    drop(pred_text);
    let by = match by_name {
        true => preds.categories_by_name(&gt, &pred_json.display().to_string())?,
        false => Default::default(),
    };
    let preds = preds.annotations;
    let gt_ids: std::collections::HashSet<_> = gt.annotations.iter().map(|a| &a.image_id).collect();
    // Stem -> the ground-truth image of that stem (None: several).
    let mut stems: HashMap<&str, Option<&ImageId>> = HashMap::new();
    for g in &gt.annotations {
        stems.entry(stem(&g.file_name)).and_modify(|v| *v = None).or_insert(Some(&g.image_id));
    }
    // By image_id first; then the others by file stem, to a ground-truth image not yet predicted.
    let mut by_id: HashMap<&ImageId, usize> =
        preds.iter().enumerate().filter(|(_, p)| gt_ids.contains(&p.image_id)).map(|(i, p)| (&p.image_id, i)).collect();
    let mut extra = Vec::new();
    for (i, p) in preds.iter().enumerate().filter(|(_, p)| !gt_ids.contains(&p.image_id)) {
        match stems.get(stem(&p.file_name)) {
            Some(Some(id)) if !by_id.contains_key(id) => {
                by_id.insert(id, i);
            }
            _ => extra.push(format!("{} ({})", p.image_id, p.file_name)),
        }
    }
    if !extra.is_empty() {
        let n = extra.len();
        extra.truncate(10);
        return Err(Error::file(
            pred_json,
            format!(
                "{n} prediction(s) for images not in the ground truth (by image_id or file stem): image_id {}",
                extra.join(", ")
            ),
        ));
    }
    let mut eval = PanopticEval::new(gt.categories.clone());
    for g in &gt.annotations {
        let &i = by_id.get(&g.image_id).ok_or_else(|| {
            Error::file(pred_json, format!("no prediction for the image with id {} ({})", g.image_id, g.file_name))
        })?;
        let p = &preds[i];
        let gt_png = read_id_png(&gt_dir.join(&g.file_name))?;
        let mut pred_png = read_id_png(&pred_dir.join(&p.file_name))?;
        if let Some(voided) = by.voided.get(&i) {
            pred_png.values.iter_mut().filter(|v| voided.contains(v)).for_each(|v| *v = 0);
        }
        eval.add(g, &gt_png, p, &pred_png)?;
    }
    Ok((eval.result(), by.left_out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::panoptic_json::parse_ground_truth;

    #[test]
    fn void_leaves_the_union_and_a_prediction_on_void_is_ignored() {
        let gt = r#"{"annotations": [{"image_id": 1, "file_name": "a.png", "segments_info":
            [{"id": 1, "category_id": 3, "area": 2}]}], "categories": [{"id": 3, "isthing": 1}, {"id": 4, "isthing": 0}]}"#;
        let gt = parse_ground_truth(gt, "gt.json").unwrap();
        let pred = r#"{"annotations": [{"image_id": 1, "file_name": "a.png", "segments_info":
            [{"id": 5, "category_id": 3}, {"id": 6, "category_id": 4}]}]}"#;
        let pred = crate::eval::panoptic_json::parse_predictions(pred, "pred.json").unwrap();
        let g = LabelMap::new("g.png", 4, 1, vec![1, 1, 0, 0]).unwrap();
        let p = LabelMap::new("p.png", 4, 1, vec![5, 5, 5, 6]).unwrap();
        let mut eval = PanopticEval::new(gt.categories.clone());
        eval.add(&gt.annotations[0], &g, &pred.annotations[0], &p).unwrap();
        let r = eval.result();
        // seg 5: inter 2, union 3 + 2 - 2 - 1 (on void) = 2: IoU 1; seg 6 lies on void: ignored
        assert_eq!((r.all.pq, r.all.n, r.stuff.n), (Some(1.0), 1, 0));
        let bad = LabelMap::new("p.png", 4, 1, vec![5, 5, 7, 6]).unwrap();
        let e = eval.add(&gt.annotations[0], &g, &pred.annotations[0], &bad).unwrap_err().to_string();
        assert!(e.contains("image_id 1") && e.contains("segment id 7 is in the PNG p.png"), "{e}");
        assert_eq!(eval.result(), r);
    }
}

//! COCO instance-mask evaluation, the numbers of pycocotools 2.0.11's `COCOeval(gt, dt, "segm")` (evaluate,
//! accumulate, summarize: stats 0-5): [`CocoGt::from_json`] reads a ground-truth file as `COCO()` does,
//! [`read_results`] a results file as `COCO.loadRes` does, [`evaluate`] scores them.
//!
//! As pycocotools: every category of `categories` and every image of `images` is evaluated (annotations and
//! results of other categories are left out); a ground truth is ignored when it is a crowd region (`iscrowd`,
//! whose masks absorb detections: IoU = intersection / detection area) or its `area` key is outside the area
//! range (pycocotools overwrites any `ignore` key with `iscrowd`, so `ignore` has no effect here either); per
//! image and category the detections are sorted by score (stable, as `np.argsort(-score, kind="mergesort")`) and
//! cut to 100, then matched greedily at each IoU threshold of `np.linspace(0.5, 0.95, 10)`; precision at the 101
//! recall points after the monotone envelope; AP = the mean of the entries that are not -1 (-1 when none: no
//! ground truth in that range). A result's area is its mask's, or, as `loadRes` does when the first result has a
//! non-empty `bbox`, the box's `w * h` for every result.
//!
//! Stricter than pycocotools where it would silently mis-score or crash: duplicate image or annotation ids, an
//! annotation of an unknown image, a mask whose size is not its image's, and an empty polygon list are errors
//! naming the file, the annotation id (or result index) and the key. Also accepted beyond pycocotools: results
//! with uncompressed (`counts` list) or polygon masks, a missing `iscrowd` (0), and a result's `file_name` (as
//! `dinoseg run` writes it): a result whose `image_id` the ground truth lacks is paired with the ground-truth
//! image of the same file stem ([`names`]); results without `file_name` are read exactly as pycocotools reads them.

use super::rle::{iou, polygon_points, Rle, RleError, MAX_POLYGON_POINTS};
use crate::error::{Error, Result};
use crate::files;
use json::{Flag, RawCounts, RawGt, RawResult, RawSegm};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Largest GT or results JSON file read (COCO's train2017 instances file is 448 MiB).
pub const MAX_JSON_BYTES: u64 = 1 << 30;
/// Detections kept per image and category (pycocotools' `maxDets[-1]`).
pub const MAX_DETS: usize = 100;
/// Area ranges `all`, `small`, `medium`, `large` (pycocotools' `areaRng`, bounds inclusive).
pub const AREA_RANGES: [(f64, f64); 4] = [(0.0, 1e10), (0.0, 1024.0), (1024.0, 9216.0), (9216.0, 1e10)];
const RECALL_POINTS: usize = 101;

mod json;
mod names;

/// The six summary numbers of `COCOeval.summarize()` (stats 0-5); -1 where a range has no ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CocoMetrics {
    /// AP over IoU 0.50:0.95, all areas, 100 detections per image.
    #[serde(rename = "AP")]
    pub ap: f64,
    /// AP at IoU 0.50.
    #[serde(rename = "AP50")]
    pub ap50: f64,
    /// AP at IoU 0.75.
    #[serde(rename = "AP75")]
    pub ap75: f64,
    /// AP of small objects (area < 32^2).
    #[serde(rename = "APs")]
    pub ap_small: f64,
    /// AP of medium objects (32^2 .. 96^2).
    #[serde(rename = "APm")]
    pub ap_medium: f64,
    /// AP of large objects (> 96^2).
    #[serde(rename = "APl")]
    pub ap_large: f64,
}

/// One ground-truth annotation, its mask decoded to an RLE of its image's size.
#[derive(Debug, Clone)]
pub struct GtAnnotation {
    pub id: i64,
    pub image_id: i64,
    pub category_id: i64,
    /// The `area` key (pycocotools uses it, not the mask's area, for the area ranges).
    pub area: f64,
    pub iscrowd: bool,
    pub mask: Rle,
}

/// One result (detection).
#[derive(Debug, Clone)]
pub struct Detection {
    pub image_id: i64,
    pub category_id: i64,
    /// `category_name`, which `dinoseg run` adds (not COCO's format; see [`categories_by_name`]).
    pub category_name: Option<String>,
    pub score: f64,
    /// The mask's area (or the box's, see the module doc).
    pub area: f64,
    pub mask: Rle,
}

/// A COCO ground-truth set: images (id -> height, width), category ids, annotations in file order.
#[derive(Debug, Clone, Default)]
pub struct CocoGt {
    images: BTreeMap<i64, (u32, u32)>,
    categories: Vec<i64>,
    /// Category ids by `name` (the categories that have one).
    category_names: BTreeMap<String, Vec<i64>>,
    annotations: Vec<GtAnnotation>,
    /// Image ids by the stem of their `file_name`.
    stems: names::Stems,
}

/// Boundary points all polygons of one file may walk: [`MAX_POLYGON_POINTS`] plus 4096 per byte of the file
/// (COCO's own polygons walk about 40 per byte), so that the time spent rasterising stays proportional to the
/// file's size whatever its coordinates.
fn polygon_budget(file_bytes: usize) -> u64 {
    MAX_POLYGON_POINTS.saturating_add((file_bytes as u64).saturating_mul(4096))
}

/// A mask of an image of `h x w` from its JSON form; polygons spend their boundary points from `budget`. A
/// polygon list whose first polygon has at most 4 numbers is refused, as pycocotools does (it takes such lists for
/// boxes and fails).
fn to_rle(segm: &RawSegm, h: u32, w: u32, budget: &mut u64) -> std::result::Result<Rle, String> {
    let e = |e: RleError| e.to_string();
    match segm {
        RawSegm::Polygons(polygons) => {
            let points = polygons.iter().fold(0u64, |n, p| n.saturating_add(polygon_points(p)));
            if points > *budget {
                return Err(format!(
                    "polygons with {points} boundary points after up-sampling exceed what is left of the file's \
                     budget ({budget}: {MAX_POLYGON_POINTS} + 4096 per byte of the file)"
                ));
            }
            *budget -= points;
            match polygons.first() {
                None => return Err("empty polygon list".into()),
                Some(p) if p.len() <= 4 => {
                    return Err(format!("first polygon has {} numbers, pycocotools needs more than 4", p.len()))
                }
                _ => {}
            }
            Rle::from_polygons(polygons, u64::from(h), u64::from(w)).map_err(e)
        }
        RawSegm::Rle(raw) => {
            let size = raw.size.as_ref().ok_or("RLE: missing key `size`")?;
            let &[rh, rw] = size.as_slice() else {
                return Err(format!("RLE: `size` must be [height, width], has {} numbers", size.len()));
            };
            if (rh, rw) != (u64::from(h), u64::from(w)) {
                return Err(format!("RLE `size` {rh}x{rw} is not the image's {h}x{w}"));
            }
            match raw.counts.as_ref().ok_or("RLE: missing key `counts`")? {
                RawCounts::Text(s) => Rle::from_compressed(rh, rw, s.as_bytes()).map_err(|err| format!("RLE: {err}")),
                RawCounts::List(c) => Rle::from_counts(rh, rw, c).map_err(|err| format!("RLE: {err}")),
            }
        }
    }
}

fn bad(path: &Path, message: String) -> Error {
    Error::File { path: path.to_path_buf(), message }
}

fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8], path: &Path) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| bad(path, format!("not a COCO JSON file as expected: {e}")))
}

impl CocoGt {
    /// Reads a COCO ground-truth JSON file (at most [`MAX_JSON_BYTES`]).
    pub fn from_file(path: &Path) -> Result<CocoGt> {
        let bytes = files::read_capped(path, MAX_JSON_BYTES, "COCO ground-truth file")?;
        Self::from_json(&bytes, path)
    }

    /// Parses COCO ground-truth JSON; `path` names it in errors.
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<CocoGt> {
        let raw: RawGt = parse_json(bytes, path)?;
        let mut images = BTreeMap::new();
        let mut stems = names::Stems::default();
        for (index, img) in raw.images.iter().enumerate() {
            let missing = |key: &str| bad(path, format!("images[{index}]: missing key `{key}`"));
            let id = img.id.ok_or_else(|| missing("id"))?;
            let h = img.height.ok_or_else(|| missing("height"))?;
            let w = img.width.ok_or_else(|| missing("width"))?;
            let too_big = h.checked_mul(w).is_none_or(|n| n > super::rle::MAX_PIXELS);
            if h == 0 || w == 0 || too_big {
                return Err(bad(path, format!("image id {id}: size {h}x{w} is empty or too large")));
            }
            if images.insert(id, (h as u32, w as u32)).is_some() {
                return Err(bad(path, format!("image id {id} appears twice in `images`")));
            }
            if let Some(name) = &img.file_name {
                stems.add(name, id);
            }
        }
        let mut categories = Vec::with_capacity(raw.categories.len());
        let mut category_names: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (index, c) in raw.categories.iter().enumerate() {
            let id = c.id.ok_or_else(|| bad(path, format!("categories[{index}]: missing key `id`")))?;
            categories.push(id);
            if let Some(name) = &c.name {
                category_names.entry(name.clone()).or_default().push(id);
            }
        }
        categories.sort_unstable();
        categories.dedup();
        let mut budget = polygon_budget(bytes.len());
        let mut annotations = Vec::with_capacity(raw.annotations.len());
        let mut ids = HashSet::new();
        for (index, ann) in raw.annotations.into_iter().enumerate() {
            let id = ann.id.ok_or_else(|| bad(path, format!("annotations[{index}]: missing key `id`")))?;
            let missing = |key: &str| bad(path, format!("annotation id {id}: missing key `{key}`"));
            let image_id = ann.image_id.ok_or_else(|| missing("image_id"))?;
            let category_id = ann.category_id.ok_or_else(|| missing("category_id"))?;
            let segm = ann.segmentation.as_ref().ok_or_else(|| missing("segmentation"))?;
            let area = ann.area.ok_or_else(|| missing("area"))?;
            if !ids.insert(id) {
                return Err(bad(path, format!("annotation id {id} appears twice")));
            }
            let &(h, w) = images
                .get(&image_id)
                .ok_or_else(|| bad(path, format!("annotation id {id}: image_id {image_id} is not in `images`")))?;
            let mask = to_rle(segm, h, w, &mut budget)
                .map_err(|m| bad(path, format!("annotation id {id}: segmentation: {m}")))?;
            let iscrowd = ann.iscrowd.as_ref().is_some_and(Flag::is_set);
            annotations.push(GtAnnotation { id, image_id, category_id, area, iscrowd, mask });
        }
        Ok(CocoGt { images, categories, category_names, annotations, stems })
    }

    /// Image ids (sorted) with their (height, width).
    pub fn images(&self) -> &BTreeMap<i64, (u32, u32)> {
        &self.images
    }

    /// Category ids, sorted, without duplicates.
    pub fn categories(&self) -> &[i64] {
        &self.categories
    }

    /// Annotations in file order.
    pub fn annotations(&self) -> &[GtAnnotation] {
        &self.annotations
    }
}

/// Reads a COCO results JSON file (at most [`MAX_JSON_BYTES`]) for `gt`.
pub fn read_results(path: &Path, gt: &CocoGt) -> Result<Vec<Detection>> {
    let bytes = files::read_capped(path, MAX_JSON_BYTES, "COCO results file")?;
    parse_results(&bytes, path, gt)
}

/// Parses a COCO results JSON list (`[{image_id, category_id, segmentation, score}, ...]`) as `loadRes`: a
/// result for an image not in `gt` is an error (unless its `file_name` names one: [`names`]), a mask must have
/// its image's size.
pub fn parse_results(bytes: &[u8], path: &Path, gt: &CocoGt) -> Result<Vec<Detection>> {
    let raw: Vec<RawResult> = parse_json(bytes, path)?;
    // loadRes takes the area from the box for every result when the first one has a non-empty `bbox`.
    let box_area = raw.first().and_then(|r| r.bbox.as_ref()).is_some_and(|b| !b.is_empty());
    let mut budget = polygon_budget(bytes.len());
    let mut out = Vec::with_capacity(raw.len());
    for (index, r) in raw.iter().enumerate() {
        let missing = |key: &str| bad(path, format!("result {index}: missing key `{key}`"));
        let image_id = r.image_id.ok_or_else(|| missing("image_id"))?;
        let category_id = r.category_id.ok_or_else(|| missing("category_id"))?;
        let score = r.score.ok_or_else(|| missing("score"))?;
        let segm = r.segmentation.as_ref().ok_or_else(|| missing("segmentation"))?;
        let image_id = gt
            .stems
            .resolve(image_id, r.file_name.as_deref(), gt.images.contains_key(&image_id))
            .map_err(|m| bad(path, format!("result {index}: {m}")))?;
        let &(h, w) = gt.images.get(&image_id).ok_or_else(|| {
            bad(path, format!("result {index}: image_id {image_id} is not in the ground truth's `images`"))
        })?;
        let mask = to_rle(segm, h, w, &mut budget)
            .map_err(|m| bad(path, format!("result {index} (image_id {image_id}): segmentation: {m}")))?;
        let area = if box_area {
            match r.bbox.as_deref() {
                Some(&[_, _, bw, bh, ..]) => bw * bh,
                _ => {
                    return Err(bad(
                        path,
                        format!("result {index}: `bbox` must have 4 numbers (the first result has one)"),
                    ))
                }
            }
        } else {
            mask.area() as f64
        };
        let category_name = r.category_name.clone();
        out.push(Detection { image_id, category_id, category_name, score, area, mask });
    }
    Ok(out)
}

/// Gives each result the ground-truth category of its `category_name` (for results whose class ids are not the
/// ground truth's category ids, e.g. a model's contiguous 0-based ids against COCO's 1-90): a result without the
/// key, or whose name two ground-truth categories share, is an error naming the result (by its index in
/// `results`); a result whose name no category has is left out (as pycocotools ignores results of categories the
/// ground truth lacks). Returns how many were left out.
pub fn categories_by_name(gt: &CocoGt, results: &mut Vec<Detection>, path: &Path) -> Result<usize> {
    let mut keep = Vec::with_capacity(results.len());
    for (index, r) in results.iter_mut().enumerate() {
        let name = r.category_name.as_deref().ok_or_else(|| {
            bad(path, format!("result {index}: missing key `category_name` (needed to match categories by name)"))
        })?;
        match gt.category_names.get(name).map(Vec::as_slice) {
            Some([id]) => {
                r.category_id = *id;
                keep.push(true);
            }
            Some(ids) => {
                return Err(bad(
                    path,
                    format!("result {index}: category_name {name:?} is the name of ground-truth categories {ids:?}"),
                ))
            }
            None => keep.push(false),
        }
    }
    let before = results.len();
    let mut flags = keep.into_iter();
    results.retain(|_| flags.next().unwrap_or(false));
    Ok(before - results.len())
}

/// Reads both files and evaluates (see [`evaluate`]).
pub fn evaluate_files(gt_json: &Path, results_json: &Path) -> Result<CocoMetrics> {
    let gt = CocoGt::from_file(gt_json)?;
    let results = read_results(results_json, &gt)?;
    Ok(evaluate(&gt, &results))
}

/// Sorts indices by descending score, ties in their given order (`np.argsort(-score, kind="mergesort")`).
fn sort_by_score(indices: &mut [usize], score: impl Fn(usize) -> f64) {
    indices.sort_by(|&a, &b| score(b).partial_cmp(&score(a)).unwrap_or(std::cmp::Ordering::Equal));
}

/// `np.linspace(start, stop, num)`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// One image's evaluation for one category and area range (`evaluateImg`), detections in score order.
struct ImageEval {
    scores: Vec<f64>,
    /// Per threshold, per detection: the matched ground truth's id (0: none, as pycocotools' `dtMatches`).
    matched: Vec<Vec<i64>>,
    /// Per threshold, per detection: ignored (`dtIgnore`).
    ignored: Vec<Vec<bool>>,
    /// Ground truths not ignored.
    valid_gt: usize,
}

fn evaluate_image(
    gts: &[&GtAnnotation],
    dts: &[&Detection],
    ious: &[f64],
    range: (f64, f64),
    thr: &[f64],
) -> ImageEval {
    let out_of = |a: f64| a < range.0 || a > range.1;
    let gt_ignore: Vec<bool> = gts.iter().map(|g| g.iscrowd || out_of(g.area)).collect();
    // Not-ignored ground truths first, stable.
    let mut order: Vec<usize> = (0..gts.len()).collect();
    order.sort_by_key(|&g| gt_ignore[g]);
    let ng = gts.len();
    let mut matched = vec![vec![0i64; dts.len()]; thr.len()];
    let mut ignored = vec![vec![false; dts.len()]; thr.len()];
    for (t, &threshold) in thr.iter().enumerate() {
        let mut gt_taken = vec![false; ng];
        for d in 0..dts.len() {
            let mut best = threshold.min(1.0 - 1e-10);
            let mut m: Option<usize> = None;
            for (gi, &g) in order.iter().enumerate() {
                if gt_taken[gi] && !gts[g].iscrowd {
                    continue;
                }
                if let Some(mi) = m {
                    if !gt_ignore[order[mi]] && gt_ignore[g] {
                        break;
                    }
                }
                let v = ious[d * ng + g];
                if v < best {
                    continue;
                }
                best = v;
                m = Some(gi);
            }
            if let Some(mi) = m {
                let g = order[mi];
                ignored[t][d] = gt_ignore[g];
                matched[t][d] = gts[g].id;
                gt_taken[mi] = true;
            }
        }
        for (d, det) in dts.iter().enumerate() {
            if matched[t][d] == 0 && out_of(det.area) {
                ignored[t][d] = true;
            }
        }
    }
    let valid_gt = gt_ignore.iter().filter(|&&i| !i).count();
    ImageEval { scores: dts.iter().map(|d| d.score).collect(), matched, ignored, valid_gt }
}

/// Precision at the recall points for one category and area range over its images (`accumulate`), per IoU
/// threshold; `None` where there is no ground truth that counts (pycocotools' -1).
fn precision(evals: &[ImageEval], rec_thr: &[f64], thresholds: usize) -> Option<Vec<Vec<f64>>> {
    let npig: usize = evals.iter().map(|e| e.valid_gt).sum();
    if evals.is_empty() || npig == 0 {
        return None;
    }
    // (image, detection) pairs, all images concatenated, then stably sorted by score.
    let pairs: Vec<(usize, usize)> =
        evals.iter().enumerate().flat_map(|(i, e)| (0..e.scores.len()).map(move |d| (i, d))).collect();
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    sort_by_score(&mut order, |k| evals[pairs[k].0].scores[pairs[k].1]);
    let mut out = Vec::with_capacity(thresholds);
    for t in 0..thresholds {
        let (mut tp, mut fp) = (0u64, 0u64);
        let mut rc = Vec::with_capacity(order.len());
        let mut pr = Vec::with_capacity(order.len());
        for &k in &order {
            let (i, d) = pairs[k];
            if !evals[i].ignored[t][d] {
                if evals[i].matched[t][d] != 0 {
                    tp += 1;
                } else {
                    fp += 1;
                }
            }
            let (tpf, fpf) = (tp as f64, fp as f64);
            rc.push(tpf / npig as f64);
            pr.push(tpf / (fpf + tpf + f64::EPSILON));
        }
        for i in (1..pr.len()).rev() {
            if pr[i] > pr[i - 1] {
                pr[i - 1] = pr[i];
            }
        }
        let q: Vec<f64> = rec_thr
            .iter()
            .map(|&r| {
                let at = rc.partition_point(|&v| v < r);
                pr.get(at).copied().unwrap_or(0.0)
            })
            .collect();
        out.push(q);
    }
    Some(out)
}

/// Running mean of the precision entries that are not -1.
#[derive(Default, Clone, Copy)]
struct Mean {
    sum: f64,
    n: u64,
}

impl Mean {
    fn add(&mut self, values: &[f64]) {
        self.sum += values.iter().sum::<f64>();
        self.n += values.len() as u64;
    }

    fn value(self) -> f64 {
        if self.n == 0 {
            -1.0
        } else {
            self.sum / self.n as f64
        }
    }
}

/// Scores `results` against `gt` exactly as pycocotools' `COCOeval(gt, dt, "segm")` with its default parameters
/// (see the module doc). Memory: one category's per-image matches at a time.
pub fn evaluate(gt: &CocoGt, results: &[Detection]) -> CocoMetrics {
    let iou_thr = linspace(0.5, 0.95, 10);
    let rec_thr = linspace(0.0, 1.0, RECALL_POINTS);
    let cat_index: HashMap<i64, usize> = gt.categories.iter().enumerate().map(|(i, &c)| (c, i)).collect();
    let img_index: HashMap<i64, usize> = gt.images.keys().enumerate().map(|(i, &id)| (id, i)).collect();
    // (category, image) -> ground truths and detections, in file order.
    type Group<'a> = (Vec<&'a GtAnnotation>, Vec<&'a Detection>);
    let mut groups: BTreeMap<(usize, usize), Group> = BTreeMap::new();
    for g in &gt.annotations {
        if let (Some(&c), Some(&i)) = (cat_index.get(&g.category_id), img_index.get(&g.image_id)) {
            groups.entry((c, i)).or_default().0.push(g);
        }
    }
    for d in results {
        if let (Some(&c), Some(&i)) = (cat_index.get(&d.category_id), img_index.get(&d.image_id)) {
            groups.entry((c, i)).or_default().1.push(d);
        }
    }
    let t50 = iou_thr.iter().position(|&t| t == 0.5);
    let t75 = iou_thr.iter().position(|&t| t == 0.75);
    let (mut all, mut at50, mut at75) = (Mean::default(), Mean::default(), Mean::default());
    let mut by_area = [Mean::default(); 3];
    let mut per_area: [Vec<ImageEval>; 4] = Default::default();
    let mut entries = groups.into_iter().peekable();
    while let Some(((cat, _), (gts, mut dts))) = entries.next() {
        let mut order: Vec<usize> = (0..dts.len()).collect();
        sort_by_score(&mut order, |k| dts[k].score);
        order.truncate(MAX_DETS);
        dts = order.iter().map(|&k| dts[k]).collect();
        let ious: Vec<f64> =
            dts.iter().flat_map(|d| gts.iter().map(|g| iou(&d.mask, &g.mask, g.iscrowd))).collect::<Vec<_>>();
        for (a, &range) in AREA_RANGES.iter().enumerate() {
            per_area[a].push(evaluate_image(&gts, &dts, &ious, range, &iou_thr));
        }
        if entries.peek().is_some_and(|((c, _), _)| *c == cat) {
            continue;
        }
        // The category's last image: accumulate its precision into the summary means.
        for (a, evals) in per_area.iter_mut().enumerate() {
            if let Some(p) = precision(evals, &rec_thr, iou_thr.len()) {
                if a == 0 {
                    p.iter().for_each(|q| all.add(q));
                    if let Some(t) = t50 {
                        at50.add(&p[t]);
                    }
                    if let Some(t) = t75 {
                        at75.add(&p[t]);
                    }
                } else {
                    p.iter().for_each(|q| by_area[a - 1].add(q));
                }
            }
            evals.clear();
        }
    }
    CocoMetrics {
        ap: all.value(),
        ap50: at50.value(),
        ap75: at75.value(),
        ap_small: by_area[0].value(),
        ap_medium: by_area[1].value(),
        ap_large: by_area[2].value(),
    }
}

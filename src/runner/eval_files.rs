//! The run's results in the formats `dinoseg eval`, pycocotools and panopticapi read, beside the per-frame files
//! of [`super::folder`]:
//!
//! - `coco_results.json` (when the instance files are on): COCO instance-segmentation results for the whole run,
//!   a list of `{"image_id", "file_name", "category_id", "category_name", "score", "segmentation": {"size":
//!   [h, w], "counts": compressed RLE}, "bbox": [x, y, w, h]}`, one per instance. `category_id` is the model's
//!   class id (0-based, `NAME_instances.json`'s `class_id`), `category_name` its name (for a ground truth whose
//!   category ids differ: `dinoseg eval --categories-by-name`); the RLE is [`crate::eval::rle`]'s (bit-exact with pycocotools) and
//!   `bbox` the mask's box as pycocotools' `toBbox` gives it.
//! - COCO panoptic (when the semantic or instance files are on and the frame has a panoptic map, i.e. a head
//!   with `outputs: panoptic`): `panoptic/NAME.png` per frame (RGB ids, id = R + 256 G + 256^2 B, 0 = void) and
//!   `panoptic.json` for the run: `{"annotations": [{"image_id", "file_name": "NAME.png", "segments_info":
//!   [{"id", "category_id", "area", "bbox", "iscrowd": 0}]}], "categories": [{"id", "name", "isthing"}]}`,
//!   `isthing` from the model's labels (`[stuff]` markers; classes are things unless marked).
//!
//! `image_id` ([`image_id`]): a frame named only by digits (COCO's `000000397133.jpg`, a bag frame's stamp in
//! nanoseconds) gets that number, any other frame its 1-based position in the run's input. `file_name` is the
//! frame's file name (a bag frame's NAME): `dinoseg eval` pairs a result whose `image_id` the ground truth lacks
//! with the ground-truth image of the same file stem. A frame name seen twice (two files of one stem, two messages
//! of one stamp) keeps its last results, as its per-frame files do; two names with one `image_id` (`7.png` and the
//! seventh frame `x.png`) keep both, with a warning.
//!
//! Bounded memory: per frame only compressed RLE strings and segment lists are kept, no masks. The JSON files
//! are written atomically by [`EvalFiles::finish`], which the runner calls on every exit path once the folder is
//! made (the end, `--max-frames`, an error of the run, SIGINT / SIGTERM), so the frames done are never lost.

use crate::error::{Error, Result};
use crate::eval::rle::{Rle, RleError};
use crate::files::AtomicFile;
use crate::postprocess::{FrameSegmentation, Instance, Labels, PanopticMap};
use image::{ImageBuffer, Rgb};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The COCO results file's name in the folder.
pub const COCO_RESULTS: &str = "coco_results.json";
/// The panoptic annotations file's name in the folder.
pub const PANOPTIC_JSON: &str = "panoptic.json";
/// The folder of panoptic id PNGs.
pub const PANOPTIC_DIR: &str = "panoptic";

/// Where a frame came from.
#[derive(Debug, Clone, Copy)]
pub struct FrameId<'a> {
    /// The name its files get (an image's file stem, a bag message's stamp in nanoseconds).
    pub name: &'a str,
    /// The image's file name (a bag frame: its name).
    pub file_name: &'a str,
    /// 1-based position in the run's input.
    pub index: u64,
}

/// A frame's COCO image id: the name's number when the name is made only of digits (and fits), else `index`.
pub fn image_id(name: &str, index: u64) -> i64 {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = name.parse::<i64>() {
            return v;
        }
    }
    i64::try_from(index).unwrap_or(i64::MAX)
}

/// Run lengths being built in column-major order: runs of set pixels are added in increasing position.
struct Runs {
    counts: Vec<i64>,
    /// Just past the last run of set pixels.
    end: u64,
}

impl Runs {
    fn ones(&mut self, start: u64, len: u64) {
        match self.counts.last_mut() {
            // Continues the previous run (a column of the box that ends on the frame's last row).
            Some(last) if start == self.end => *last += len as i64,
            _ => {
                self.counts.push((start - self.end) as i64);
                self.counts.push(len as i64);
            }
        }
        self.end = start + len;
    }
}

/// The RLE of an instance's mask (cropped to its box) placed in its `height x width` frame, without making the
/// full mask; pixels outside the frame are dropped. Equal to [`Rle::from_row_major`] of the full mask.
pub fn instance_rle(inst: &Instance, height: u32, width: u32) -> std::result::Result<Rle, RleError> {
    let (h, w) = (u64::from(height), u64::from(width));
    let m = &inst.mask;
    let (mw, mh) = (u64::from(m.width), u64::from(m.height));
    let (bx, by) = (u64::from(inst.bbox.x), u64::from(inst.bbox.y));
    let mut runs = Runs { counts: Vec::new(), end: 0 };
    for x in 0..mw {
        let fx = bx + x;
        if fx >= w {
            break;
        }
        let mut start = None;
        for y in 0..mh.min(h.saturating_sub(by)) {
            let on = m.data.get((y * mw + x) as usize).is_some_and(|&v| v != 0);
            let pos = fx * h + by + y;
            match (on, start) {
                (true, None) => start = Some(pos),
                (false, Some(s)) => {
                    runs.ones(s, pos - s);
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            runs.ones(s, fx * h + (by + mh).min(h) - s);
        }
    }
    if runs.end < h * w || runs.counts.is_empty() {
        runs.counts.push((h * w - runs.end) as i64);
    }
    Rle::from_counts(h, w, &runs.counts)
}

/// One instance as kept until the end of the run.
struct Kept {
    category_id: u32,
    score: f32,
    counts: String,
    bbox: [f64; 4],
}

struct CocoFrame {
    image_id: i64,
    file_name: String,
    size: [u32; 2],
    instances: Vec<Kept>,
}

#[derive(Serialize)]
struct Segmentation<'a> {
    size: [u32; 2],
    counts: &'a str,
}

#[derive(Serialize)]
struct CocoResult<'a> {
    image_id: i64,
    file_name: &'a str,
    category_id: u32,
    /// Not in COCO's format: the class name, for `dinoseg eval --categories-by-name`.
    category_name: &'a str,
    score: f32,
    segmentation: Segmentation<'a>,
    bbox: [f64; 4],
}

#[derive(Serialize)]
struct PanopticSegment {
    id: u32,
    category_id: u32,
    area: u64,
    bbox: [u32; 4],
    iscrowd: u8,
}

#[derive(Serialize)]
struct PanopticAnnotation {
    image_id: i64,
    file_name: String,
    segments_info: Vec<PanopticSegment>,
}

#[derive(Serialize)]
struct PanopticFile<'a> {
    annotations: &'a [PanopticAnnotation],
    categories: Vec<Category<'a>>,
}

#[derive(Serialize)]
struct Category<'a> {
    id: u32,
    name: &'a str,
    isthing: u8,
}

/// Frames in first-seen order, a later frame of the same name (whose files replaced the earlier one's) replacing
/// the earlier one.
struct Frames<T> {
    items: Vec<T>,
    by_name: HashMap<String, usize>,
}

impl<T> Default for Frames<T> {
    fn default() -> Self {
        Frames { items: Vec::new(), by_name: HashMap::new() }
    }
}

impl<T> Frames<T> {
    fn put(&mut self, name: &str, item: T) {
        match self.by_name.get(name) {
            Some(&i) => self.items[i] = item,
            None => {
                self.by_name.insert(name.to_string(), self.items.len());
                self.items.push(item);
            }
        }
    }
}

/// The evaluation files of one output folder (see the module doc).
pub struct EvalFiles {
    dir: PathBuf,
    /// Some when the instance files are on.
    coco: Option<Frames<CocoFrame>>,
    /// Some when the semantic or instance files are on.
    panoptic: Option<Frames<PanopticAnnotation>>,
    /// The classes of the head giving instances and the panoptic map, when known.
    labels: Option<Labels>,
    /// Classes seen: name (from instances) and whether a thing (from panoptic segments).
    seen: BTreeMap<u32, (Option<String>, Option<bool>)>,
    /// The frame name of each image id given (to warn once when two frames share one).
    ids: HashMap<i64, String>,
    warned: bool,
}

/// Segment areas and boxes (`[x0, y0, x1, y1]`, exclusive ends) per id of a panoptic map.
fn segment_extents(map: &PanopticMap) -> Vec<(u64, [u32; 4])> {
    let mut out = vec![(0u64, [u32::MAX, u32::MAX, 0, 0]); map.segments.len() + 1];
    let w = map.width.max(1) as usize;
    for (i, &id) in map.ids.iter().enumerate() {
        if let Some((area, b)) = out.get_mut(id as usize) {
            let (y, x) = ((i / w) as u32, (i % w) as u32);
            *area += 1;
            b[0] = b[0].min(x);
            b[1] = b[1].min(y);
            b[2] = b[2].max(x + 1);
            b[3] = b[3].max(y + 1);
        }
    }
    out
}

impl EvalFiles {
    /// The files of the folder `dir`: COCO results when `instances`, panoptic when `panoptic` (see the module
    /// doc); `labels` names the classes in `panoptic.json`.
    pub fn new(dir: &Path, instances: bool, panoptic: bool, labels: Option<Labels>) -> Self {
        EvalFiles {
            dir: dir.to_path_buf(),
            coco: instances.then(Frames::default),
            panoptic: panoptic.then(Frames::default),
            labels,
            seen: BTreeMap::new(),
            ids: HashMap::new(),
            warned: false,
        }
    }

    /// Keeps one frame's results; writes its panoptic PNG.
    pub fn add(&mut self, id: &FrameId<'_>, seg: &FrameSegmentation, height: u32, width: u32) -> Result<()> {
        let image_id = image_id(id.name, id.index);
        let first = self.ids.entry(image_id).or_insert_with(|| id.name.to_string());
        if first != id.name && !self.warned {
            self.warned = true;
            eprintln!(
                "warning: {}: frames {first} and {} both get image_id {image_id} (a name of digits and a position); \
                 evaluation pairs their results by image_id (name frames all by digits or none)",
                self.dir.display(),
                id.name
            );
        }
        for inst in &seg.instances {
            let entry = self.seen.entry(inst.class_id).or_default();
            entry.0.get_or_insert_with(|| inst.class_name.clone());
        }
        if let Some(coco) = &mut self.coco {
            let mut instances = Vec::with_capacity(seg.instances.len());
            for inst in &seg.instances {
                let rle = instance_rle(inst, height, width).map_err(|e| {
                    Error::Input(format!("frame {}: instance {}: cannot encode its mask: {e}", id.name, inst.id))
                })?;
                instances.push(Kept {
                    category_id: inst.class_id,
                    score: inst.score,
                    counts: rle.to_compressed(),
                    bbox: rle.bbox(),
                });
            }
            let frame = CocoFrame { image_id, file_name: id.file_name.to_string(), size: [height, width], instances };
            coco.put(id.name, frame);
        }
        if let (Some(map), true) = (&seg.panoptic, self.panoptic.is_some()) {
            let ann = self.panoptic_png(id, image_id, map)?;
            if let Some(p) = &mut self.panoptic {
                p.put(id.name, ann);
            }
        }
        Ok(())
    }

    /// Writes `panoptic/NAME.png` and returns the frame's annotation.
    fn panoptic_png(&mut self, id: &FrameId<'_>, image_id: i64, map: &PanopticMap) -> Result<PanopticAnnotation> {
        let (h, w) = (map.height, map.width);
        if map.ids.len() as u64 != u64::from(h) * u64::from(w) {
            return Err(Error::Input(format!("frame {}: the panoptic map does not match its {w}x{h} size", id.name)));
        }
        let extents = segment_extents(map);
        let mut segments = Vec::with_capacity(map.segments.len());
        let mut known = vec![false; extents.len()];
        for s in &map.segments {
            let Some(&(area, b)) = extents.get(s.id as usize).filter(|e| e.0 > 0) else { continue };
            known[s.id as usize] = true;
            self.seen.entry(s.class_id).or_default().1.get_or_insert(s.is_thing);
            let bbox = [b[0], b[1], b[2] - b[0], b[3] - b[1]];
            segments.push(PanopticSegment { id: s.id, category_id: s.class_id, area, bbox, iscrowd: 0 });
        }
        // Ids without a segment (none from post-processing) would be refused by evaluation: void.
        let mut rgb = Vec::with_capacity(map.ids.len() * 3);
        for &v in &map.ids {
            let v = if known.get(v as usize).copied().unwrap_or(false) { v } else { 0 };
            rgb.extend_from_slice(&[(v & 0xff) as u8, (v >> 8) as u8, 0]);
        }
        let dir = self.dir.join(PANOPTIC_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let file_name = format!("{}.png", id.name);
        let img = ImageBuffer::<Rgb<u8>, _>::from_raw(w, h, rgb)
            .ok_or_else(|| Error::Input(format!("frame {}: the panoptic map does not match its size", id.name)))?;
        super::folder::save(&img, &dir.join(&file_name))?;
        Ok(PanopticAnnotation { image_id, file_name, segments_info: segments })
    }

    /// The categories of `panoptic.json`: every class of the labels and every class seen.
    fn categories(&self) -> Vec<(u32, String, bool)> {
        let mut ids: Vec<u32> = self.seen.keys().copied().collect();
        if let Some(l) = &self.labels {
            ids.extend(0..l.names().len() as u32);
        }
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .map(|id| {
                let seen = self.seen.get(&id);
                let name = match (&self.labels, seen.and_then(|s| s.0.clone())) {
                    (Some(l), _) => l.name(id as usize),
                    (None, Some(n)) => n,
                    (None, None) => format!("class_{id}"),
                };
                let thing = match (seen.and_then(|s| s.1), &self.labels) {
                    (Some(t), _) => t,
                    (None, Some(l)) => l.is_thing(id as usize),
                    (None, None) => true,
                };
                (id, name, thing)
            })
            .collect()
    }

    /// Writes `coco_results.json` and `panoptic.json` (the latter when any frame had a panoptic map), each
    /// atomically, with every frame added so far.
    pub fn finish(&self) -> Result<()> {
        if let Some(coco) = &self.coco {
            let name = |id: u32| self.seen.get(&id).and_then(|(n, _)| n.as_deref()).unwrap_or("");
            let results = coco.items.iter().flat_map(|f| {
                f.instances.iter().map(move |k| CocoResult {
                    image_id: f.image_id,
                    file_name: &f.file_name,
                    category_id: k.category_id,
                    category_name: name(k.category_id),
                    score: k.score,
                    segmentation: Segmentation { size: f.size, counts: &k.counts },
                    bbox: k.bbox,
                })
            });
            write_json_list(&self.dir.join(COCO_RESULTS), results)?;
        }
        if let Some(p) = self.panoptic.as_ref().filter(|p| !p.items.is_empty()) {
            let categories = self.categories();
            let categories: Vec<Category> = categories
                .iter()
                .map(|(id, name, thing)| Category { id: *id, name, isthing: u8::from(*thing) })
                .collect();
            let doc = PanopticFile { annotations: &p.items, categories };
            let path = self.dir.join(PANOPTIC_JSON);
            let text = serde_json::to_vec(&doc).map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
            crate::files::write_atomic(&path, &text)?;
        }
        Ok(())
    }
}

/// Writes a JSON list item by item (one per line) through an [`AtomicFile`].
fn write_json_list<T: Serialize>(path: &Path, items: impl Iterator<Item = T>) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    let temp = file.temp_path().to_path_buf();
    let io = |e: std::io::Error| Error::io(&temp, e);
    {
        let mut w = std::io::BufWriter::new(file.file());
        w.write_all(b"[").map_err(io)?;
        for (i, item) in items.enumerate() {
            w.write_all(if i == 0 { b"\n" } else { b",\n" }).map_err(io)?;
            serde_json::to_writer(&mut w, &item).map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
        }
        w.write_all(b"\n]\n").map_err(io)?;
        w.flush().map_err(io)?;
    }
    file.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postprocess::{BBox, BinaryMask};

    fn instance(bbox: BBox, data: Vec<u8>) -> Instance {
        Instance {
            id: 1,
            class_id: 2,
            class_name: "c".into(),
            score: 0.5,
            bbox,
            mask: BinaryMask { width: bbox.width, height: bbox.height, data },
            area: 0,
            is_thing: true,
        }
    }

    #[test]
    fn image_ids_follow_coco_names_else_the_position() {
        assert_eq!(image_id("000000397133", 7), 397133);
        assert_eq!(image_id("1700000000123456789", 1), 1_700_000_000_123_456_789);
        assert_eq!(image_id("frame_a", 3), 3);
        assert_eq!(image_id("", 4), 4);
        assert_eq!(image_id("99999999999999999999", 5), 5);
    }

    #[test]
    fn frames_are_kept_by_name_and_one_image_id_of_two_names_keeps_both() {
        let dir = std::env::temp_dir().join(format!("dinoseg-eval-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut files = EvalFiles::new(&dir, true, true, None);
        let seg = FrameSegmentation {
            instances: vec![instance(BBox { x: 1, y: 0, width: 1, height: 2 }, vec![255, 255])],
            ..Default::default()
        };
        for (name, index) in [("7", 1), ("x", 7), ("7", 3)] {
            let id = FrameId { name, file_name: &format!("{name}.png"), index };
            files.add(&id, &seg, 3, 2).unwrap();
        }
        files.finish().unwrap();
        let text = std::fs::read_to_string(dir.join(COCO_RESULTS)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let got: Vec<(i64, &str)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["image_id"].as_i64().unwrap(), r["file_name"].as_str().unwrap()))
            .collect();
        assert_eq!(got, [(7, "7.png"), (7, "x.png")]);
        assert_eq!(v[0]["segmentation"]["counts"], "321"); // 3 off, 2 on, 1 off, column-major
        assert_eq!(v[0]["bbox"], serde_json::json!([1.0, 0.0, 1.0, 2.0]));
        // No frame had a panoptic map: no panoptic.json.
        assert!(!dir.join(PANOPTIC_JSON).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn instance_rles_equal_the_full_masks() {
        let (h, w) = (7u32, 9u32);
        let mut seed = 12345u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        for case in 0..400 {
            let bw = 1 + next() % (w + 2);
            let bh = 1 + next() % (h + 2);
            let bbox = BBox { x: next() % w, y: next() % h, width: bw, height: bh };
            let dense = case % 3 == 0;
            let data: Vec<u8> = (0..bw * bh).map(|_| if dense || next() % 3 != 0 { 255 } else { 0 }).collect();
            let inst = instance(bbox, data.clone());
            let mut full = vec![0u8; (h * w) as usize];
            for y in 0..bh {
                for x in 0..bw {
                    let (fx, fy) = (bbox.x + x, bbox.y + y);
                    if fx < w && fy < h && data[(y * bw + x) as usize] != 0 {
                        full[(fy * w + fx) as usize] = 1;
                    }
                }
            }
            let want = Rle::from_row_major(u64::from(h), u64::from(w), &full).unwrap();
            let got = instance_rle(&inst, h, w).unwrap();
            assert_eq!(got, want, "case {case}: {bbox:?}");
        }
        let empty = instance(BBox { x: 0, y: 0, width: 2, height: 2 }, vec![0; 4]);
        assert_eq!(instance_rle(&empty, 3, 3).unwrap().counts(), &[9]);
    }
}

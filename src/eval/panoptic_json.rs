//! The COCO panoptic annotation format (as panopticapi and the COCO panoptic challenge define it), read for
//! evaluation (and as `dinoseg train-head` labels, [`crate::train::coco`]): `annotations` [{`image_id`,
//! `file_name`, `segments_info` [{`id`, `category_id`, `area`, `iscrowd`, ...}]}] and, in the ground truth,
//! `categories` [{`id`, `name`, `isthing`}]. Other keys are ignored.
//!
//! Besides JSON syntax (serde's line and column), the reader refuses what would make the metric ambiguous, naming
//! the file, image and segment: two annotations of one image, two segments of one id in an image, segment id 0
//! (VOID in the PNGs), ids that do not fit 24 bits, `iscrowd` / `isthing` other than 0 or 1, two categories of
//! one id, a ground-truth segment of an unknown category, and file names that leave their folder.
//!
//! A prediction's `categories` are not read unless its categories are matched to the ground truth's by name
//! ([`Predictions::categories_by_name`], `dinoseg eval --categories-by-name`), as for a model whose class ids are
//! not the ground truth's category ids (`dinoseg run` writes its classes' names there).

use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Largest annotation JSON read (COCO's panoptic train2017 JSON is about 0.5 GiB of text).
pub const ANNOTATIONS_JSON_CAP: u64 = 1 << 30;
/// Largest segment id an RGB PNG holds (R + 256 G + 256^2 B).
pub const MAX_SEGMENT_ID: u32 = (1 << 24) - 1;

/// An image id: COCO's integers, or the strings other sets (Cityscapes panoptic) use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(untagged)]
pub enum ImageId {
    Int(i64),
    Text(String),
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageId::Int(i) => write!(f, "{i}"),
            ImageId::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// One segment of an image's `segments_info`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SegmentInfo {
    pub id: u32,
    pub category_id: i64,
    /// Pixel count; checked against the PNG when given.
    #[serde(default)]
    pub area: Option<f64>,
    #[serde(default)]
    pub iscrowd: u8,
}

/// One image's annotation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Annotation {
    pub image_id: ImageId,
    pub file_name: String,
    pub segments_info: Vec<SegmentInfo>,
}

/// A category of the ground truth.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Category {
    pub id: i64,
    #[serde(default)]
    pub name: String,
    pub isthing: u8,
}

#[derive(Deserialize)]
struct GtFile {
    annotations: Vec<Annotation>,
    categories: Vec<Category>,
}

#[derive(Deserialize)]
struct PredFile {
    annotations: Vec<Annotation>,
    #[serde(default)]
    categories: serde_json::Value,
}

/// A parsed prediction file: annotations in file order; its `categories` kept unread (see the module doc).
#[derive(Debug, Clone)]
pub struct Predictions {
    pub annotations: Vec<Annotation>,
    categories: serde_json::Value,
}

/// What matching categories by name did: the segments it left out, their pixels to be read as VOID.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ByName {
    /// Per annotation (index into [`Predictions::annotations`]), the segment ids left out.
    pub voided: BTreeMap<usize, BTreeSet<u32>>,
    /// How many segments were left out.
    pub left_out: usize,
}

/// A parsed ground-truth file: annotations in file order, categories by id.
#[derive(Debug, Clone)]
pub struct GroundTruth {
    pub annotations: Vec<Annotation>,
    pub categories: BTreeMap<i64, Category>,
    /// The category ids in the file's order (training maps them to class indices in this order).
    pub category_order: Vec<i64>,
}

fn bad(name: &str, message: String) -> Error {
    Error::Input(format!("{name}: {message}"))
}

/// Checks one file's annotations (see the module doc); `categories` given for the ground truth.
fn check_annotations(name: &str, anns: &[Annotation], categories: Option<&BTreeMap<i64, Category>>) -> Result<()> {
    let mut images = BTreeSet::new();
    for (i, ann) in anns.iter().enumerate() {
        let at = format!("annotations[{i}] (image_id {})", ann.image_id);
        if !images.insert(&ann.image_id) {
            return Err(bad(name, format!("{at}: a second annotation of this image")));
        }
        let f = std::path::Path::new(&ann.file_name);
        let plain = f.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if ann.file_name.is_empty() || !plain {
            return Err(bad(
                name,
                format!("{at}: file_name {:?} must be a relative path inside the folder", ann.file_name),
            ));
        }
        let mut ids = BTreeSet::new();
        for (j, s) in ann.segments_info.iter().enumerate() {
            let seg = format!("{at}: segments_info[{j}] (id {})", s.id);
            if s.id == 0 || s.id > MAX_SEGMENT_ID {
                return Err(bad(name, format!("{seg}: ids are 1 to {MAX_SEGMENT_ID} (0 is VOID in the PNG)")));
            }
            if !ids.insert(s.id) {
                return Err(bad(name, format!("{seg}: a second segment with this id")));
            }
            if s.iscrowd > 1 {
                return Err(bad(name, format!("{seg}: iscrowd {} is not 0 or 1", s.iscrowd)));
            }
            if s.area.is_some_and(|a| !(a >= 0.0 && a.fract() == 0.0)) {
                return Err(bad(name, format!("{seg}: area {:?} is not a pixel count", s.area)));
            }
            if let Some(cats) = categories {
                if !cats.contains_key(&s.category_id) {
                    return Err(bad(name, format!("{seg}: unknown category_id {}", s.category_id)));
                }
            }
        }
    }
    Ok(())
}

fn json_error(name: &str, e: serde_json::Error) -> Error {
    bad(name, format!("not a COCO panoptic JSON file: {e}"))
}

/// Parses a ground-truth panoptic JSON's text; `name` names the file in errors.
pub fn parse_ground_truth(text: &str, name: &str) -> Result<GroundTruth> {
    let file: GtFile = serde_json::from_str(text).map_err(|e| json_error(name, e))?;
    let mut categories = BTreeMap::new();
    let category_order: Vec<i64> = file.categories.iter().map(|c| c.id).collect();
    for (i, c) in file.categories.into_iter().enumerate() {
        if c.isthing > 1 {
            return Err(bad(name, format!("categories[{i}] (id {}): isthing {} is not 0 or 1", c.id, c.isthing)));
        }
        let id = c.id;
        if categories.insert(id, c).is_some() {
            return Err(bad(name, format!("categories[{i}]: a second category with id {id}")));
        }
    }
    check_annotations(name, &file.annotations, Some(&categories))?;
    Ok(GroundTruth { annotations: file.annotations, categories, category_order })
}

/// Parses a prediction panoptic JSON's text (its categories, if any, are not used unless matched by name).
pub fn parse_predictions(text: &str, name: &str) -> Result<Predictions> {
    let file: PredFile = serde_json::from_str(text).map_err(|e| json_error(name, e))?;
    check_annotations(name, &file.annotations, None)?;
    Ok(Predictions { annotations: file.annotations, categories: file.categories })
}

impl Predictions {
    /// The file's categories, id -> name; `name` names the file in errors (a missing list, an entry without an
    /// integer `id` or a string `name`, two entries of one id).
    pub fn category_names(&self, name: &str) -> Result<BTreeMap<i64, String>> {
        let list = self
            .categories
            .as_array()
            .ok_or_else(|| bad(name, "no `categories` list (needed to match categories by name)".to_string()))?;
        let mut names = BTreeMap::new();
        for (i, c) in list.iter().enumerate() {
            let id = c.get("id").and_then(serde_json::Value::as_i64);
            let label = c.get("name").and_then(serde_json::Value::as_str);
            let (Some(id), Some(label)) = (id, label) else {
                return Err(bad(name, format!("categories[{i}]: needs an integer `id` and a string `name`")));
            };
            if names.insert(id, label.to_string()).is_some() {
                return Err(bad(name, format!("categories[{i}]: a second category with id {id}")));
            }
        }
        Ok(names)
    }

    /// Gives each segment the ground-truth category of its category's name: a segment whose category the file
    /// does not list, or whose name two ground-truth categories share, is an error naming it; a segment whose name
    /// no ground-truth category has is left out of `segments_info` and returned in [`ByName::voided`] (its pixels
    /// are then VOID: neither matched nor a false positive, as a result of an unknown category is ignored in COCO
    /// evaluation by name).
    pub fn categories_by_name(&mut self, gt: &GroundTruth, name: &str) -> Result<ByName> {
        let names = self.category_names(name)?;
        let mut gt_ids: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for c in gt.categories.values() {
            gt_ids.entry(c.name.as_str()).or_default().push(c.id);
        }
        let mut out = ByName::default();
        for (i, ann) in self.annotations.iter_mut().enumerate() {
            let mut keep = Vec::with_capacity(ann.segments_info.len());
            let image_id = &ann.image_id;
            for (j, mut s) in std::mem::take(&mut ann.segments_info).into_iter().enumerate() {
                // Formatted only for an error.
                let at = |id: u32| format!("annotations[{i}] (image_id {image_id}): segments_info[{j}] (id {id})");
                let Some(label) = names.get(&s.category_id) else {
                    return Err(bad(
                        name,
                        format!("{}: category_id {} is not in the file's categories", at(s.id), s.category_id),
                    ));
                };
                match gt_ids.get(label.as_str()).map(Vec::as_slice) {
                    Some([id]) => {
                        s.category_id = *id;
                        keep.push(s);
                    }
                    Some(ids) => {
                        return Err(bad(
                            name,
                            format!(
                                "{}: category name {label:?} is the name of ground-truth categories {ids:?}",
                                at(s.id)
                            ),
                        ))
                    }
                    None => {
                        out.voided.entry(i).or_default().insert(s.id);
                        out.left_out += 1;
                    }
                }
            }
            ann.segments_info = keep;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_what_is_wrong() {
        let cats = r#""categories": [{"id": 1, "name": "person", "isthing": 1}, {"id": 7, "isthing": 0}]"#;
        let ann = |segs: &str| {
            format!(
                r#"{{"annotations": [{{"image_id": 3, "file_name": "a.png", "segments_info": [{segs}]}}], {cats}}}"#
            )
        };
        let gt =
            parse_ground_truth(&ann(r#"{"id": 5, "category_id": 7, "area": 4, "iscrowd": 0}"#), "gt.json").unwrap();
        assert_eq!(gt.categories.len(), 2);
        assert_eq!(gt.category_order, [1, 7]);
        assert_eq!(gt.annotations[0].segments_info[0].area, Some(4.0));
        let e = parse_ground_truth(&ann(r#"{"id": 5, "category_id": 8}"#), "gt.json").unwrap_err().to_string();
        assert!(
            e.contains("gt.json")
                && e.contains("image_id 3")
                && e.contains("id 5")
                && e.contains("unknown category_id 8"),
            "{e}"
        );
        let e = parse_ground_truth(&ann(r#"{"id": 0, "category_id": 7}"#), "gt.json").unwrap_err().to_string();
        assert!(e.contains("VOID"), "{e}");
        let e =
            parse_ground_truth(&ann(r#"{"id": 2, "category_id": 7}, {"id": 2, "category_id": 1}"#), "g").unwrap_err();
        assert!(e.to_string().contains("second segment"), "{e}");
        let e = parse_predictions(
            r#"{"annotations": [{"image_id": "x", "file_name": "../a.png", "segments_info": []}]}"#,
            "p",
        );
        assert!(e.unwrap_err().to_string().contains("inside the folder"));
        let e = parse_predictions(r#"{"annotations": [{"image_id": 1}]}"#, "p.json").unwrap_err().to_string();
        assert!(e.contains("p.json") && e.contains("file_name") && e.contains("column"), "{e}");
    }

    #[test]
    fn prediction_categories_match_the_ground_truth_by_name() {
        let gt = r#"{"annotations": [], "categories": [{"id": 11, "name": "floor", "isthing": 0},
            {"id": 12, "name": "person", "isthing": 1}, {"id": 13, "name": "cart", "isthing": 1},
            {"id": 14, "name": "cart", "isthing": 1}]}"#;
        let gt = parse_ground_truth(gt, "gt.json").unwrap();
        let pred = |segs: &str, cats: &str| {
            format!(r#"{{"annotations": [{{"image_id": 3, "file_name": "a.png", "segments_info": [{segs}]}}]{cats}}}"#)
        };
        let cats = r#", "categories": [{"id": 0, "name": "floor"}, {"id": 1, "name": "person"},
            {"id": 2, "name": "sky"}, {"id": 3, "name": "cart"}]"#;
        let segs = r#"{"id": 1, "category_id": 0}, {"id": 2, "category_id": 2}, {"id": 3, "category_id": 1}"#;
        let mut p = parse_predictions(&pred(segs, cats), "p.json").unwrap();
        let by = p.categories_by_name(&gt, "p.json").unwrap();
        let kept: Vec<(u32, i64)> = p.annotations[0].segments_info.iter().map(|s| (s.id, s.category_id)).collect();
        assert_eq!(kept, [(1, 11), (3, 12)]);
        assert_eq!((by.left_out, by.voided.get(&0).cloned()), (1, Some(BTreeSet::from([2]))));
        // A name two ground-truth categories share, an id the file does not list, no list at all: named errors.
        let mut p = parse_predictions(&pred(r#"{"id": 4, "category_id": 3}"#, cats), "p.json").unwrap();
        let e = p.categories_by_name(&gt, "p.json").unwrap_err().to_string();
        assert!(e.contains("p.json") && e.contains("(id 4)") && e.contains("[13, 14]"), "{e}");
        let mut p = parse_predictions(&pred(r#"{"id": 4, "category_id": 9}"#, cats), "p.json").unwrap();
        let e = p.categories_by_name(&gt, "p.json").unwrap_err().to_string();
        assert!(e.contains("category_id 9 is not in the file's categories"), "{e}");
        let mut p = parse_predictions(&pred(segs, ""), "p.json").unwrap();
        let e = p.categories_by_name(&gt, "p.json").unwrap_err().to_string();
        assert!(e.contains("no `categories` list"), "{e}");
        let mut p = parse_predictions(&pred(segs, r#", "categories": [{"id": "0", "name": "x"}]"#), "p.json").unwrap();
        let e = p.categories_by_name(&gt, "p.json").unwrap_err().to_string();
        assert!(e.contains("categories[0]"), "{e}");
    }
}

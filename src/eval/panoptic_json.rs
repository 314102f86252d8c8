//! The COCO panoptic annotation format (as panopticapi and the COCO panoptic challenge define it), read for
//! evaluation (and as `dinoseg train-head` labels, [`crate::train::coco`]): `annotations` [{`image_id`,
//! `file_name`, `segments_info` [{`id`, `category_id`, `area`, `iscrowd`, ...}]}] and, in the ground truth,
//! `categories` [{`id`, `name`, `isthing`}]. Other keys are ignored.
//!
//! Besides JSON syntax (serde's line and column), the reader refuses what would make the metric ambiguous, naming
//! the file, image and segment: two annotations of one image, two segments of one id in an image, segment id 0
//! (VOID in the PNGs), ids that do not fit 24 bits, `iscrowd` / `isthing` other than 0 or 1, two categories of
//! one id, a ground-truth segment of an unknown category, and file names that leave their folder.

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

/// Parses a prediction panoptic JSON's text (its categories, if any, are not used: the ground truth's are).
pub fn parse_predictions(text: &str, name: &str) -> Result<Vec<Annotation>> {
    let file: PredFile = serde_json::from_str(text).map_err(|e| json_error(name, e))?;
    check_annotations(name, &file.annotations, None)?;
    Ok(file.annotations)
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
}

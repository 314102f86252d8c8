//! COCO panoptic annotation sets as `dinoseg train-head` labels: `--labels GT.json` (the panoptic JSON:
//! `annotations` with `file_name` and `segments_info`, and `categories`) with its folder of RGB id PNGs
//! (id = R + 256 G + 256^2 B, 0 = VOID), read by `dinoseg eval`'s readers ([`crate::eval::panoptic_json`],
//! [`crate::eval::label_png::read_id_png`]).
//!
//! Each image's id PNG becomes a class-id label map: a segment's pixels get the class index of its category, the
//! categories numbered 0, 1, ... in the order the JSON lists them (as detectron2's contiguous ids), class names
//! the categories' names (`category_<id>` when a name is empty); VOID (id 0) and crowd segments (`iscrowd` 1)
//! become 255, ignored. Semantic training needs no instances: segments of one category simply share its class.
//! Images pair with annotations by file stem (`file_name` `000000000139.png` with `000000000139.jpg` in
//! `--images`). Errors name the JSON, the image (image_id and file), the segment or the pixel: an annotation
//! without an image or the reverse, a PNG id missing from `segments_info`, a PNG of another size than its image,
//! more than 255 categories (255 is the ignore value).

use super::data::{self, LabelMap, Sample, IGNORE};
use crate::error::{Error, Result};
use crate::eval::label_png::{read_id_png, LabelMap as IdMap};
use crate::eval::panoptic_json::{parse_ground_truth, Annotation, GroundTruth, ANNOTATIONS_JSON_CAP};
use crate::runner::inputs::IMAGE_EXTENSIONS;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The PNG folder of a panoptic JSON when none is given: the JSON's path without `.json`
/// (`annotations/panoptic_train2017.json` -> `annotations/panoptic_train2017/`), as panopticapi's `pq_compute`.
pub fn default_png_dir(json: &Path) -> PathBuf {
    json.with_extension("")
}

/// The class names of a panoptic set and each category's class index (see the module docs).
pub fn classes(gt: &GroundTruth, json: &Path) -> Result<(Vec<String>, BTreeMap<i64, u16>)> {
    if gt.category_order.len() > usize::from(IGNORE) {
        return Err(Error::file(
            json,
            format!(
                "{} categories: at most {IGNORE} can be trained ({IGNORE} is the ignore value)",
                gt.category_order.len()
            ),
        ));
    }
    let mut names = Vec::with_capacity(gt.category_order.len());
    let mut index = BTreeMap::new();
    for (i, id) in gt.category_order.iter().enumerate() {
        let name = gt.categories.get(id).map(|c| c.name.trim()).filter(|n| !n.is_empty());
        names.push(name.map_or_else(|| format!("category_{id}"), str::to_string));
        index.insert(*id, i as u16);
    }
    Ok((names, index))
}

/// One image's label map from its id PNG and `segments_info`; `at` names the JSON and the image in errors.
pub fn label_map(ann: &Annotation, ids: &IdMap, classes: &BTreeMap<i64, u16>, at: &str) -> Result<LabelMap> {
    let mut of_segment: HashMap<u32, u16> = HashMap::with_capacity(ann.segments_info.len() + 1);
    of_segment.insert(0, IGNORE);
    for s in &ann.segments_info {
        let class = match classes.get(&s.category_id) {
            _ if s.iscrowd == 1 => IGNORE,
            Some(&c) => c,
            None => {
                return Err(Error::Input(format!(
                    "{at}: segment id {} has unknown category_id {}",
                    s.id, s.category_id
                )))
            }
        };
        of_segment.insert(s.id, class);
    }
    let mut out = Vec::with_capacity(ids.values.len());
    let mut last: Option<(u32, u16)> = None;
    for (i, &v) in ids.values.iter().enumerate() {
        let class = match last {
            Some((id, c)) if id == v => c,
            _ => {
                let c = of_segment.get(&v).copied().ok_or_else(|| {
                    let (x, y) = ids.xy(i);
                    Error::Input(format!(
                        "{at}: pixel (x {x}, y {y}) of {} has segment id {v}, which segments_info does not list",
                        ids.name
                    ))
                })?;
                last = Some((v, c));
                c
            }
        };
        out.push(class);
    }
    Ok(LabelMap { height: ids.height, width: ids.width, ids: out })
}

/// The samples of a panoptic set: the images of `images` paired by stem with the annotations of `json`, whose id
/// PNGs lie in `png_dir`; and the class names.
pub fn read_panoptic(images: &Path, json: &Path, png_dir: &Path) -> Result<(Vec<Sample>, Vec<String>)> {
    let text = crate::files::read_text_capped(json, ANNOTATIONS_JSON_CAP, "COCO panoptic JSON")?;
    let gt = parse_ground_truth(&text, &json.display().to_string())?;
    drop(text);
    let (names, index) = classes(&gt, json)?;
    let mut imgs = data::by_stem(images, IMAGE_EXTENSIONS)?;
    let mut pairs = Vec::with_capacity(gt.annotations.len());
    for ann in &gt.annotations {
        let stem = Path::new(&ann.file_name).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let img = imgs.remove(&stem).ok_or_else(|| {
            Error::file(
                json,
                format!(
                    "image_id {} (file_name {:?}): no image of stem `{stem}` in {} (images pair with annotations by \
                     file stem)",
                    ann.image_id,
                    ann.file_name,
                    images.display()
                ),
            )
        })?;
        pairs.push((img, png_dir.join(&ann.file_name)));
    }
    if let Some((stem, img)) = imgs.iter().next() {
        return Err(Error::file(img, format!("no annotation of stem `{stem}` in {}", json.display())));
    }
    if pairs.is_empty() {
        return Err(Error::file(json, "no annotations"));
    }
    let samples = data::read_samples_with(&pairs, |i, png| {
        let ann = &gt.annotations[i];
        let at = format!("{} image_id {} ({})", json.display(), ann.image_id, ann.file_name);
        label_map(ann, &read_id_png(png)?, &index, &at)
    })?;
    Ok((samples, names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::panoptic_json::parse_ground_truth;

    #[test]
    fn segments_become_classes_void_and_crowd_ignored() {
        let gt = parse_ground_truth(
            r#"{"annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": [
                {"id": 300, "category_id": 9}, {"id": 5, "category_id": 2},
                {"id": 6, "category_id": 2, "iscrowd": 1}]}],
                "categories": [{"id": 9, "name": "road", "isthing": 0}, {"id": 2, "name": " ", "isthing": 1}]}"#,
            "gt.json",
        )
        .unwrap();
        let (names, index) = classes(&gt, Path::new("gt.json")).unwrap();
        assert_eq!(names, ["road", "category_2"]);
        let ids = IdMap::new("a.png", 3, 2, vec![300, 300, 5, 0, 6, 5]).unwrap();
        let m = label_map(&gt.annotations[0], &ids, &index, "gt.json image_id 1").unwrap();
        assert_eq!(m.ids, [0, 0, 1, IGNORE, IGNORE, 1]);
        let ids = IdMap::new("a.png", 3, 2, vec![300, 300, 5, 0, 7, 5]).unwrap();
        let e = label_map(&gt.annotations[0], &ids, &index, "gt.json image_id 1").unwrap_err().to_string();
        assert!(e.contains("gt.json image_id 1") && e.contains("x 1, y 1") && e.contains("segment id 7"), "{e}");
    }
}

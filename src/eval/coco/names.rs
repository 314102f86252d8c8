//! Pairing results with ground-truth images by file name, for results whose `image_id` the ground truth does not
//! know (a `dinoseg run` over frames that are not named by their COCO id): a result's `file_name` is matched by
//! its file stem (the last path component without its extension, so `frame_7` matches `val/frame_7.jpg`) to the
//! ground-truth image of that stem. Results without `file_name`, and results whose `image_id` is a ground-truth
//! image, are paired by `image_id` as pycocotools does; the latter are refused when their `file_name` names
//! another ground-truth image (a mix-up that would score one image's masks against another's).

use std::collections::HashMap;
use std::path::Path;

/// A name's file stem (the name itself when it has none).
fn stem(name: &str) -> &str {
    Path::new(name).file_stem().and_then(|s| s.to_str()).unwrap_or(name)
}

/// Ground-truth image ids by the stem of their `file_name`: `Err` with the ids when two images share a stem.
#[derive(Debug, Clone, Default)]
pub(super) struct Stems(HashMap<String, Result<i64, Vec<i64>>>);

impl Stems {
    /// Records image `id`'s `file_name`.
    pub(super) fn add(&mut self, file_name: &str, id: i64) {
        let entry = self.0.entry(stem(file_name).to_string()).or_insert(Ok(id));
        match entry {
            Ok(other) if *other == id => {}
            Ok(other) => *entry = Err(vec![*other, id]),
            Err(ids) => ids.push(id),
        }
    }

    /// The image a result with `image_id` and `file_name` belongs to; `known` says whether the ground truth has
    /// `image_id`. The error says why none (without the result's index, which the caller adds).
    pub(super) fn resolve(&self, image_id: i64, file_name: Option<&str>, known: bool) -> Result<i64, String> {
        let by_name = file_name.map(|f| (f, self.0.get(stem(f))));
        match (known, by_name) {
            (true, Some((f, Some(Ok(other))))) if *other != image_id => Err(format!(
                "image_id {image_id} is a ground-truth image, but its file_name {f:?} is the ground truth's image \
                 {other}"
            )),
            (true, _) => Ok(image_id),
            (false, Some((_, Some(Ok(id))))) => Ok(*id),
            (false, Some((f, Some(Err(ids))))) => Err(format!(
                "image_id {image_id} is not in the ground truth's `images`, and its file_name {f:?} has the stem of \
                 several ground-truth images (ids {ids:?})"
            )),
            (false, Some((f, None))) => Err(format!(
                "image_id {image_id} is not in the ground truth's `images`, nor is an image of its file_name {f:?} \
                 (compared by file stem)"
            )),
            (false, None) => Err(format!("image_id {image_id} is not in the ground truth's `images`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_pair_by_file_stem_when_their_id_is_unknown() {
        let mut s = Stems::default();
        s.add("val/000000397133.jpg", 397133);
        s.add("frame_a.jpg", 1);
        s.add("twin.png", 5);
        s.add("other/twin.jpg", 6);
        assert_eq!(s.resolve(397133, None, true), Ok(397133));
        assert_eq!(s.resolve(2, Some("frame_a.png"), false), Ok(1));
        assert_eq!(s.resolve(2, Some("frame_a"), false), Ok(1));
        assert_eq!(s.resolve(397133, Some("000000397133.png"), true), Ok(397133));
        let e = s.resolve(1, Some("000000397133.png"), true).unwrap_err();
        assert!(e.contains("image_id 1 is a ground-truth image") && e.contains("397133"), "{e}");
        assert!(s.resolve(9, Some("twin.png"), false).unwrap_err().contains("[5, 6]"));
        assert!(s.resolve(9, Some("nope.png"), false).unwrap_err().contains("nope.png"));
        assert!(s.resolve(9, None, false).unwrap_err().contains("image_id 9 is not in"));
        // A name shared by one image twice (same id) is not ambiguous; an ambiguous stem does not stop a known id.
        s.add("frame_a.png", 1);
        assert_eq!(s.resolve(2, Some("frame_a.png"), false), Ok(1));
        assert_eq!(s.resolve(5, Some("twin.png"), true), Ok(5));
    }
}

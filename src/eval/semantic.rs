//! Semantic segmentation metrics (mIoU, pixel accuracy) over a set of label maps, as mmseg's `IoUMetric`
//! (`intersect_and_union`, `total_area_to_metrics`) and DINOv3's linear evaluation compute them: intersections,
//! prediction areas and ground-truth areas summed per class over the whole set, then per class
//! IoU = intersection / (pred area + GT area - intersection).
//!
//! Ground-truth pixels equal to the ignore index are left out (their predictions too). A prediction value >= K is
//! wrong and adds to no class's prediction area (mmseg's `histc` over 0..K-1 drops it); the ground-truth pixel
//! still counts. Classes with a union of 0 (absent from both sides) have IoU null and are left out of the mean.
//! pixel_acc = correct / non-ignored ground-truth pixels. A ground-truth value >= K that is not the ignore index
//! is an error naming the file, the pixel and the value.

use super::label_png::{read_label_png, LabelMap};
use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;

/// Most classes evaluated (16-bit labels).
pub const MAX_CLASSES: u32 = 65_536;

/// Per-class sums over the images added so far.
#[derive(Debug, Clone)]
pub struct SemanticEval {
    num_classes: u32,
    ignore_index: u32,
    intersect: Vec<u64>,
    pred_area: Vec<u64>,
    gt_area: Vec<u64>,
    images: usize,
}

/// One class's IoU (null when the class is in neither the ground truth nor the predictions).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassIou {
    pub id: u32,
    #[serde(rename = "IoU")]
    pub iou: Option<f64>,
}

/// The metrics of a set, as fractions in [0, 1] (null where undefined: no class present, no labelled pixel).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SemanticResult {
    #[serde(rename = "mIoU")]
    pub miou: Option<f64>,
    pub pixel_acc: Option<f64>,
    pub per_class: Vec<ClassIou>,
    pub images: usize,
}

impl SemanticEval {
    /// An empty evaluation of `num_classes` classes (ids 0..K-1), 1 to [`MAX_CLASSES`].
    pub fn new(num_classes: u32, ignore_index: u32) -> Result<Self> {
        if num_classes == 0 || num_classes > MAX_CLASSES {
            return Err(Error::parameter("--num-classes", format!("{num_classes} is not within 1..={MAX_CLASSES}")));
        }
        let k = num_classes as usize;
        Ok(SemanticEval {
            num_classes,
            ignore_index,
            intersect: vec![0; k],
            pred_area: vec![0; k],
            gt_area: vec![0; k],
            images: 0,
        })
    }

    /// Adds one image. Refused, leaving the sums unchanged: maps of different sizes (both named), a ground-truth
    /// value >= K that is not the ignore index (file, pixel (x, y) and value named).
    pub fn add(&mut self, pred: &LabelMap, gt: &LabelMap) -> Result<()> {
        if (pred.width, pred.height) != (gt.width, gt.height) {
            return Err(Error::Input(format!(
                "prediction {} is {}x{} but ground truth {} is {}x{}",
                pred.name, pred.width, pred.height, gt.name, gt.width, gt.height
            )));
        }
        let k = self.num_classes;
        if let Some(i) = gt.values.iter().position(|&v| v >= k && v != self.ignore_index) {
            let (x, y) = gt.xy(i);
            return Err(Error::Input(format!(
                "{}: pixel (x {x}, y {y}) has value {}, not a class id below --num-classes {k} nor the ignore index {}",
                gt.name, gt.values[i], self.ignore_index
            )));
        }
        for (&p, &g) in pred.values.iter().zip(&gt.values) {
            if g == self.ignore_index {
                continue;
            }
            self.gt_area[g as usize] += 1;
            if p < k {
                self.pred_area[p as usize] += 1;
                if p == g {
                    self.intersect[g as usize] += 1;
                }
            }
        }
        self.images += 1;
        Ok(())
    }

    /// The metrics of the images added so far.
    pub fn result(&self) -> SemanticResult {
        let mut per_class = Vec::with_capacity(self.intersect.len());
        let (mut sum, mut present) = (0.0, 0usize);
        for (id, ((&i, &p), &g)) in self.intersect.iter().zip(&self.pred_area).zip(&self.gt_area).enumerate() {
            let union = p + g - i;
            let iou = (union > 0).then(|| i as f64 / union as f64);
            if let Some(v) = iou {
                sum += v;
                present += 1;
            }
            per_class.push(ClassIou { id: id as u32, iou });
        }
        let labelled: u64 = self.gt_area.iter().sum();
        let correct: u64 = self.intersect.iter().sum();
        SemanticResult {
            miou: (present > 0).then(|| sum / present as f64),
            pixel_acc: (labelled > 0).then(|| correct as f64 / labelled as f64),
            per_class,
            images: self.images,
        }
    }
}

/// The outcome of [`evaluate_dirs`]: the metrics and the prediction files that had no ground truth (ignored).
#[derive(Debug, Clone)]
pub struct SemanticReport {
    pub result: SemanticResult,
    pub predictions_without_gt: usize,
}

/// The `.png` file names (any case) of a folder, sorted.
pub(crate) fn png_names(dir: &Path, what: &str) -> Result<Vec<OsString>> {
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if !meta.is_dir() {
        return Err(Error::file(dir, format!("{what} must be a folder, this is {}", crate::files::kind_of(&meta))));
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let name = entry.map_err(|e| Error::io(dir, e))?.file_name();
        let is_png = Path::new(&name).extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if is_png {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// A list of names for an error, the first 10 and a count of the rest.
pub(crate) fn name_list<'a>(names: impl Iterator<Item = &'a OsString>) -> String {
    let all: Vec<String> = names.map(|n| n.to_string_lossy().into_owned()).collect();
    let mut shown = all.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
    if all.len() > 10 {
        shown.push_str(&format!(" and {} more", all.len() - 10));
    }
    shown
}

/// How ground-truth and prediction files pair. Only the ground-truth files ending in `gt_suffix` count (default
/// `.png`: all), the part before it naming the image; the prediction of image `KEY` is `KEY + pred_suffix` when
/// one is given, else the file of the ground truth's own name or, failing that, `KEY_semantic.png` (what
/// `dinoseg run --files` writes for the frame `KEY`, so a run folder is a prediction folder as it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairing {
    pub gt_suffix: String,
    pub pred_suffix: Option<String>,
}

impl Default for Pairing {
    fn default() -> Self {
        Pairing { gt_suffix: ".png".to_string(), pred_suffix: None }
    }
}

impl Pairing {
    /// Refuses a suffix that does not end in `.png` (the files are PNGs) or holds a path separator.
    pub fn check(&self) -> Result<()> {
        let given = [("--gt-suffix", Some(&self.gt_suffix)), ("--pred-suffix", self.pred_suffix.as_ref())];
        for (flag, s) in given.into_iter().filter_map(|(f, s)| s.map(|s| (f, s))) {
            if !s.to_ascii_lowercase().ends_with(".png") || s.contains(['/', '\\']) {
                return Err(Error::parameter(
                    flag,
                    format!("{s:?}: a file name ending, ending in .png, without a folder"),
                ));
            }
        }
        Ok(())
    }

    /// The prediction file names that may pair with the ground-truth file `name` of image `key`, in order.
    fn candidates(&self, key: &str, name: &OsString) -> Vec<OsString> {
        match &self.pred_suffix {
            Some(s) => vec![OsString::from(format!("{key}{s}"))],
            None => vec![name.clone(), OsString::from(format!("{key}{RUN_SEMANTIC}"))],
        }
    }
}

/// The name ending of `dinoseg run`'s semantic maps.
const RUN_SEMANTIC: &str = "_semantic.png";

/// Files `dinoseg run` writes beside its `NAME_semantic.png` that are not label maps: never counted as
/// predictions without ground truth.
const RUN_OTHER_FILES: [&str; 3] = ["_semantic_color.png", "_overlay.png", "_instance_ids.png"];

/// The key of a file name with `suffix` (compared ignoring ASCII case), or None.
fn key_of(name: &OsString, suffix: &str) -> Option<String> {
    let name = name.to_str()?;
    let cut = name.len().checked_sub(suffix.len())?;
    (name.is_char_boundary(cut) && name[cut..].eq_ignore_ascii_case(suffix)).then(|| name[..cut].to_string())
}

/// Evaluates the label PNGs of `pred_dir` against those of `gt_dir`, paired as [`Pairing`] says. Every
/// ground-truth file needs a prediction (the missing ones are listed); predictions without ground truth are
/// counted and ignored (`dinoseg run`'s colour, overlay and instance-id PNGs, and with a `pred_suffix` the files
/// without it, are not counted).
pub fn evaluate_dirs(
    pred_dir: &Path,
    gt_dir: &Path,
    num_classes: u32,
    ignore_index: u32,
    pairing: &Pairing,
) -> Result<SemanticReport> {
    pairing.check()?;
    let mut eval = SemanticEval::new(num_classes, ignore_index)?;
    let gt_names = png_names(gt_dir, "--gt-dir")?;
    let gt: Vec<(String, &OsString)> =
        gt_names.iter().filter_map(|n| key_of(n, &pairing.gt_suffix).map(|k| (k, n))).collect();
    let pred: BTreeSet<OsString> = png_names(pred_dir, "--pred-dir")?.into_iter().collect();
    if gt.is_empty() {
        return Err(Error::file(
            gt_dir,
            format!("no label files ending in {:?} in the ground-truth folder", pairing.gt_suffix),
        ));
    }
    let mut pairs = Vec::with_capacity(gt.len());
    let mut missing = Vec::new();
    for (key, name) in &gt {
        let options = pairing.candidates(key, name);
        match options.iter().find(|c| pred.contains(*c)) {
            Some(p) => pairs.push((*name, p.clone())),
            None => missing.push((*name).clone()),
        }
    }
    if !missing.is_empty() {
        let looked_for = match &pairing.pred_suffix {
            Some(s) => format!("IMAGE{s}"),
            None => format!("the same name or IMAGE{RUN_SEMANTIC}"),
        };
        return Err(Error::file(
            pred_dir,
            format!(
                "{} ground-truth file(s) have no prediction (looked for {looked_for}): {}",
                missing.len(),
                name_list(missing.iter())
            ),
        ));
    }
    let used: BTreeSet<&OsString> = pairs.iter().map(|(_, p)| p).collect();
    let counted = |n: &OsString| {
        let text = n.to_string_lossy();
        match &pairing.pred_suffix {
            Some(s) => key_of(n, s).is_some(),
            None => !RUN_OTHER_FILES.iter().any(|o| text.ends_with(o)),
        }
    };
    let predictions_without_gt = pred.iter().filter(|n| !used.contains(n) && counted(n)).count();
    for (name, p) in &pairs {
        let g = read_label_png(&gt_dir.join(name))?;
        let p = read_label_png(&pred_dir.join(p))?;
        eval.add(&p, &g)?;
    }
    Ok(SemanticReport { result: eval.result(), predictions_without_gt })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(name: &str, w: u32, v: &[u32]) -> LabelMap {
        LabelMap::new(name, w, v.len() as u32 / w, v.to_vec()).unwrap()
    }

    #[test]
    fn sums_over_images_and_skips_absent_classes() {
        let mut e = SemanticEval::new(4, 255).unwrap();
        // class 0: inter 1, union 2; class 1: inter 2, union 4 (pred 9 >= K is wrong, adds to no class);
        // class 2: only predicted on an ignored pixel (left out); class 3 absent.
        e.add(&map("p", 3, &[0, 1, 9, 2, 1, 0]), &map("g", 3, &[0, 1, 1, 255, 1, 1])).unwrap();
        e.add(&map("p2", 1, &[5]), &map("g2", 1, &[255])).unwrap();
        let r = e.result();
        assert_eq!(r.images, 2);
        let ious: Vec<Option<f64>> = r.per_class.iter().map(|c| c.iou).collect();
        assert_eq!(ious, vec![Some(0.5), Some(0.5), None, None]);
        assert_eq!(r.miou, Some(0.5));
        assert_eq!(r.pixel_acc, Some(3.0 / 5.0));
        let err = e.add(&map("p", 2, &[0, 0]), &map("g.png", 2, &[0, 4])).unwrap_err().to_string();
        assert!(err.contains("g.png") && err.contains("x 1, y 0") && err.contains("value 4"), "{err}");
        let err = e.add(&map("p.png", 2, &[0, 0]), &map("g.png", 1, &[0, 0])).unwrap_err().to_string();
        assert!(err.contains("p.png is 2x1") && err.contains("g.png is 1x2"), "{err}");
        assert_eq!(e.result(), r);
    }
}

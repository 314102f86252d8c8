//! `dinoseg eval`: segmentation metrics from standard files ([`dinoseg::eval`]). One subcommand, the mode chosen
//! by which flags are given (each mode is one entry of [`MODES`] and one arm of [`run`]):
//! semantic (label PNG folders: mIoU, pixel accuracy), panoptic (COCO panoptic sets: PQ, SQ, RQ) and COCO instance
//! masks (ground-truth and results JSON: pycocotools' segm AP).
//! Flags of two modes, or a mode's flags missing, are refused naming them. Prints a table and writes the
//! metrics as JSON (atomically; never over an input).

use crate::flags;
use dinoseg::eval::{coco, panoptic, semantic};
use dinoseg::files::{refuse_overwrite, write_atomic};
use dinoseg::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Semantic: folder of predicted label PNGs (8- or 16-bit grey, one class id per pixel), named as the
    /// ground truth's (`NAME.png`), or `NAME_semantic.png` as `dinoseg run` writes them.
    #[arg(long, help_heading = "Semantic")]
    pred_dir: Option<PathBuf>,
    /// Semantic: folder of ground-truth label PNGs.
    #[arg(long, help_heading = "Semantic")]
    gt_dir: Option<PathBuf>,
    /// Semantic: number of classes K (ids 0..K-1), 1 to 65536.
    #[arg(long, help_heading = "Semantic", value_parser = flags::count_u32(1, 65_536))]
    num_classes: Option<u32>,
    /// Semantic: ground-truth value left out of the metrics [default: 255].
    #[arg(long, help_heading = "Semantic", value_parser = flags::count_u32(0, 65_535))]
    ignore_index: Option<u32>,
    /// Semantic: only ground-truth files ending in this count; the part before it names the image [default: .png].
    #[arg(long, help_heading = "Semantic", value_name = "SUFFIX")]
    gt_suffix: Option<String>,
    /// Semantic: the prediction of ground truth `IMAGE<gt-suffix>` is `IMAGE<pred-suffix>` [default: the ground
    /// truth's own file name, else `IMAGE_semantic.png` as `dinoseg run --files` writes it].
    #[arg(long, help_heading = "Semantic", value_name = "SUFFIX")]
    pred_suffix: Option<String>,
    /// Panoptic: ground-truth COCO panoptic JSON (annotations, segments_info, categories with isthing).
    #[arg(long, help_heading = "Panoptic", value_name = "GT.json")]
    panoptic_gt: Option<PathBuf>,
    /// Panoptic: folder of the ground truth's RGB id PNGs.
    #[arg(long, help_heading = "Panoptic")]
    panoptic_gt_dir: Option<PathBuf>,
    /// Panoptic: predicted COCO panoptic JSON (annotations with segments_info, paired by image_id, else by the
    /// file_name's stem).
    #[arg(long, help_heading = "Panoptic", value_name = "PRED.json")]
    panoptic_pred: Option<PathBuf>,
    /// Panoptic: folder of the predictions' RGB id PNGs.
    #[arg(long, help_heading = "Panoptic")]
    panoptic_pred_dir: Option<PathBuf>,
    /// COCO: ground-truth instances JSON (images, categories, annotations with polygon or RLE segmentations).
    #[arg(long, help_heading = "COCO instance masks", value_name = "GT.json")]
    coco_gt: Option<PathBuf>,
    /// COCO: results JSON (a list of {image_id, category_id, score, segmentation}), as `dinoseg run` or
    /// detectron2 / mmdet write them; a result whose image_id the ground truth lacks pairs by its `file_name`'s
    /// stem.
    #[arg(long, help_heading = "COCO instance masks", value_name = "RES.json")]
    coco_results: Option<PathBuf>,
    /// COCO and panoptic: match predicted categories to the ground truth's by name, not by id (COCO: the
    /// results' `category_name`; panoptic: the names in the prediction JSON's `categories`; `dinoseg run` writes
    /// both): for a model whose class ids are not the ground truth's category ids. Predictions of a name the
    /// ground truth lacks are left out (panoptic: their pixels count as VOID), with a warning.
    #[arg(long)]
    categories_by_name: bool,
    /// Write the metrics to this JSON file (fractions in [0, 1]; null where undefined).
    #[arg(long, value_name = "OUT.json")]
    json: PathBuf,
}

/// A mode: its name, the flags it needs and the flags it may take.
struct Mode {
    name: &'static str,
    required: &'static [&'static str],
    optional: &'static [&'static str],
}

/// Every mode, in the order shown in errors.
const MODES: &[Mode] = &[
    Mode {
        name: "semantic",
        required: &["--pred-dir", "--gt-dir", "--num-classes"],
        optional: &["--ignore-index", "--gt-suffix", "--pred-suffix"],
    },
    Mode {
        name: "panoptic",
        required: &["--panoptic-gt", "--panoptic-gt-dir", "--panoptic-pred", "--panoptic-pred-dir"],
        optional: &["--categories-by-name"],
    },
    Mode { name: "coco", required: &["--coco-gt", "--coco-results"], optional: &["--categories-by-name"] },
];

impl EvalArgs {
    /// The mode flags given, by name.
    fn given(&self) -> Vec<&'static str> {
        let flags: [(&'static str, bool); 13] = [
            ("--pred-dir", self.pred_dir.is_some()),
            ("--gt-dir", self.gt_dir.is_some()),
            ("--num-classes", self.num_classes.is_some()),
            ("--ignore-index", self.ignore_index.is_some()),
            ("--gt-suffix", self.gt_suffix.is_some()),
            ("--pred-suffix", self.pred_suffix.is_some()),
            ("--panoptic-gt", self.panoptic_gt.is_some()),
            ("--panoptic-gt-dir", self.panoptic_gt_dir.is_some()),
            ("--panoptic-pred", self.panoptic_pred.is_some()),
            ("--panoptic-pred-dir", self.panoptic_pred_dir.is_some()),
            ("--coco-gt", self.coco_gt.is_some()),
            ("--coco-results", self.coco_results.is_some()),
            ("--categories-by-name", self.categories_by_name),
        ];
        flags.into_iter().filter(|(_, on)| *on).map(|(name, _)| name).collect()
    }
}

/// The one mode the given flags select: refused when they belong to two modes, or a mode's flags are missing.
fn select_mode(given: &[&str]) -> Result<&'static str> {
    let usage = || MODES.iter().map(|m| format!("{}: {}", m.name, m.required.join(" "))).collect::<Vec<_>>().join("; ");
    let takes = |m: &Mode, g: &str| m.required.contains(&g) || m.optional.contains(&g);
    // A flag several modes take (--categories-by-name) selects none: the others choose, and it must be theirs.
    let own = |g: &str| MODES.iter().filter(|m| takes(m, g)).count() == 1;
    let touched: Vec<&Mode> = MODES.iter().filter(|m| given.iter().any(|g| own(g) && takes(m, g))).collect();
    let mode = match touched.as_slice() {
        [] => return Err(Error::parameter("dinoseg eval", format!("give the flags of one mode ({})", usage()))),
        [mode] => mode,
        [a, b, ..] => {
            let of = |m: &Mode| {
                let flags: Vec<&str> = given.iter().copied().filter(|g| own(g) && takes(m, g)).collect();
                format!("{} ({})", m.name, flags.join(" "))
            };
            return Err(Error::parameter("dinoseg eval", format!("flags of two modes: {} and {}", of(a), of(b))));
        }
    };
    if let Some(g) = given.iter().find(|g| !takes(mode, g)) {
        return Err(Error::parameter("dinoseg eval", format!("{g} is not a flag of {} evaluation", mode.name)));
    }
    let missing: Vec<&str> = mode.required.iter().copied().filter(|r| !given.contains(r)).collect();
    if !missing.is_empty() {
        return Err(Error::parameter(
            "dinoseg eval",
            format!("{} evaluation also needs {}", mode.name, missing.join(", ")),
        ));
    }
    Ok(mode.name)
}

/// Refuses a `--json` that is an input, or a PNG inside an input folder (it would be read as an input).
fn refuse_json_target(json: &Path, inputs: &[&Path], dirs: &[&Path]) -> Result<()> {
    refuse_overwrite(json, inputs, "--json")?;
    let is_png = json.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
    let parent = json.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if is_png && dirs.iter().any(|d| dinoseg::files::same_file(parent, d)) {
        return Err(Error::file(json, "--json is a PNG inside an input folder: refusing to write there"));
    }
    Ok(())
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| Error::Internal(format!("metrics JSON: {e}")))?;
    text.push('\n');
    write_atomic(path, text.as_bytes())?;
    println!("wrote {}", path.display());
    Ok(())
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{:.2}", 100.0 * v))
}

pub fn run(a: &EvalArgs) -> Result<()> {
    let missing = || Error::Internal("eval mode without its flags".to_string());
    match select_mode(&a.given())? {
        "semantic" => {
            let (pred, gt, k) = match (&a.pred_dir, &a.gt_dir, a.num_classes) {
                (Some(p), Some(g), Some(k)) => (p, g, k),
                _ => return Err(missing()),
            };
            refuse_json_target(&a.json, &[pred, gt], &[pred, gt])?;
            let defaults = semantic::Pairing::default();
            let pairing = semantic::Pairing {
                gt_suffix: a.gt_suffix.clone().unwrap_or(defaults.gt_suffix),
                pred_suffix: a.pred_suffix.clone(),
            };
            let report = semantic::evaluate_dirs(pred, gt, k, a.ignore_index.unwrap_or(255), &pairing)?;
            if report.predictions_without_gt > 0 {
                eprintln!(
                    "warning: {} prediction file(s) in {} have no ground truth (ignored)",
                    report.predictions_without_gt,
                    pred.display()
                );
            }
            let r = &report.result;
            println!("{:>6}  {:>7}", "class", "IoU %");
            for c in r.per_class.iter().filter(|c| c.iou.is_some()) {
                println!("{:>6}  {:>7}", c.id, pct(c.iou));
            }
            let present = r.per_class.iter().filter(|c| c.iou.is_some()).count();
            println!(
                "mIoU {} % over {present} classes, pixel accuracy {} %, {} images",
                pct(r.miou),
                pct(r.pixel_acc),
                r.images
            );
            write_json(&a.json, r)
        }
        "panoptic" => {
            let (gj, gd, pj, pd) = match (&a.panoptic_gt, &a.panoptic_gt_dir, &a.panoptic_pred, &a.panoptic_pred_dir) {
                (Some(gj), Some(gd), Some(pj), Some(pd)) => (gj, gd, pj, pd),
                _ => return Err(missing()),
            };
            refuse_json_target(&a.json, &[gj, gd, pj, pd], &[gd, pd])?;
            let (r, left_out) = panoptic::evaluate_files(gj, gd, pj, pd, a.categories_by_name)?;
            if left_out > 0 {
                eprintln!(
                    "warning: {left_out} predicted segment(s) in {} are of a category name the ground truth lacks \
                     (left out: their pixels count as VOID)",
                    pj.display()
                );
            }
            println!(
                "{:>24}  {:>6}  {:>6}  {:>6}  {:>4} {:>4} {:>4}",
                "category", "PQ %", "SQ %", "RQ %", "TP", "FP", "FN"
            );
            for (id, c) in r.per_class.iter().filter(|(_, c)| c.tp + c.fp + c.fn_ > 0) {
                let name: String = format!("{id} {}", c.name).chars().take(24).collect();
                println!(
                    "{name:>24}  {:>6.2}  {:>6.2}  {:>6.2}  {:>4} {:>4} {:>4}",
                    100.0 * c.pq,
                    100.0 * c.sq,
                    100.0 * c.rq,
                    c.tp,
                    c.fp,
                    c.fn_
                );
            }
            println!("{:>24}  {:>6}  {:>6}  {:>6}  {:>4}", "", "PQ %", "SQ %", "RQ %", "n");
            for (name, s) in [("All", &r.all), ("Things", &r.things), ("Stuff", &r.stuff)] {
                println!("{name:>24}  {:>6}  {:>6}  {:>6}  {:>4}", pct(s.pq), pct(s.sq), pct(s.rq), s.n);
            }
            println!("{} images", r.images);
            write_json(&a.json, &r)
        }
        "coco" => {
            let (gt, res) = match (&a.coco_gt, &a.coco_results) {
                (Some(g), Some(r)) => (g, r),
                _ => return Err(missing()),
            };
            refuse_json_target(&a.json, &[gt, res], &[])?;
            let gt = coco::CocoGt::from_file(gt)?;
            let mut results = coco::read_results(res, &gt)?;
            if a.categories_by_name {
                let left_out = coco::categories_by_name(&gt, &mut results, res)?;
                if left_out > 0 {
                    eprintln!(
                        "warning: {left_out} result(s) in {} name a category the ground truth lacks (left out)",
                        res.display()
                    );
                }
            } else {
                let known: std::collections::BTreeSet<i64> = gt.categories().iter().copied().collect();
                let other = results.iter().filter(|r| !known.contains(&r.category_id)).count();
                if other > 0 {
                    eprintln!(
                        "warning: {other} result(s) in {} have a category_id the ground truth lacks (ignored, as \
                         pycocotools does; --categories-by-name matches `dinoseg run`'s results by class name)",
                        res.display()
                    );
                }
            }
            let m = coco::evaluate(&gt, &results);
            let ap = |v: f64| if v < 0.0 { "-".to_string() } else { format!("{:.2}", 100.0 * v) };
            println!("{:>6}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}", "AP %", "AP50", "AP75", "APs", "APm", "APl");
            println!(
                "{:>6}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}",
                ap(m.ap),
                ap(m.ap50),
                ap(m.ap75),
                ap(m.ap_small),
                ap(m.ap_medium),
                ap(m.ap_large)
            );
            println!(
                "{} images, {} ground-truth masks, {} results (segm, IoU 0.50:0.95, {} per image; - where a range has \
                 no ground truth)",
                gt.images().len(),
                gt.annotations().len(),
                results.len(),
                coco::MAX_DETS
            );
            write_json(&a.json, &m)
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::select_mode;

    #[test]
    fn modes_are_chosen_by_flags_and_refused_when_mixed_or_incomplete() {
        assert_eq!(select_mode(&["--pred-dir", "--gt-dir", "--num-classes"]).unwrap(), "semantic");
        let e = select_mode(&["--pred-dir", "--num-classes"]).unwrap_err().to_string();
        assert!(e.contains("semantic evaluation also needs --gt-dir"), "{e}");
        let e = select_mode(&["--pred-dir", "--panoptic-gt"]).unwrap_err().to_string();
        assert!(e.contains("semantic (--pred-dir) and panoptic (--panoptic-gt)"), "{e}");
        let e = select_mode(&[]).unwrap_err().to_string();
        assert!(e.contains("panoptic: --panoptic-gt"), "{e}");
        assert!(select_mode(&["--ignore-index"]).is_err());
        assert_eq!(select_mode(&["--coco-gt", "--coco-results"]).unwrap(), "coco");
        let e = select_mode(&["--coco-gt"]).unwrap_err().to_string();
        assert!(e.contains("coco evaluation also needs --coco-results"), "{e}");
        let e = select_mode(&["--coco-results", "--panoptic-gt"]).unwrap_err().to_string();
        assert!(e.contains("panoptic (--panoptic-gt) and coco (--coco-results)"), "{e}");
        let by_name = "--categories-by-name";
        assert_eq!(select_mode(&["--coco-gt", "--coco-results", by_name]).unwrap(), "coco");
        let panoptic = ["--panoptic-gt", "--panoptic-gt-dir", "--panoptic-pred", "--panoptic-pred-dir", by_name];
        assert_eq!(select_mode(&panoptic).unwrap(), "panoptic");
        let e = select_mode(&["--pred-dir", "--gt-dir", "--num-classes", by_name]).unwrap_err().to_string();
        assert!(e.contains("--categories-by-name is not a flag of semantic evaluation"), "{e}");
        assert!(select_mode(&[by_name]).unwrap_err().to_string().contains("give the flags of one mode"));
    }
}

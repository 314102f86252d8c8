//! COCO instance-mask evaluation (`dinoseg::eval::coco`, `dinoseg::eval::rle`) against pycocotools 2.0.11: the
//! cases of tools/make_coco_cases.py (generated on first use into target/coco_cases) give each summary stat within
//! 1e-6, every ground-truth mask bit for bit (and its RLE, area and box exactly), and every IoU matrix; then the
//! errors for malformed inputs name the file, the annotation or result and the key.

use dinoseg::eval::coco::{evaluate, evaluate_files, parse_results, read_results, CocoGt, CocoMetrics, Detection};
use dinoseg::eval::rle::{iou, Rle, RleError};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs tools/make_coco_cases.py (with `args` before the folder) into target/NAME unless a complete set (DONE)
/// newer than the generator is there (they take a second or two).
fn generated(name: &str, args: &[&str]) -> PathBuf {
    let dir = root().join("target").join(name);
    let script = root().join("tools").join("make_coco_cases.py");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = match (modified(&dir.join("DONE")), modified(&script)) {
        (Some(done), Some(made)) => made > done,
        _ => true,
    };
    if stale {
        let status = Command::new(root().join(".venv").join("bin").join("python"))
            .arg(&script)
            .args(args)
            .arg(&dir)
            .status()
            .expect("run tools/make_coco_cases.py with .venv/bin/python (run `make test` to set up)");
        assert!(status.success(), "tools/make_coco_cases.py failed");
    }
    dir
}

/// The cases of tools/make_coco_cases.py, in target/coco_cases.
fn cases() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| generated("coco_cases", &[]))
}

fn case_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cases())
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 9, "expected the 9 cases of tools/make_coco_cases.py, found {names:?}");
    names
}

fn expected(case: &str) -> Value {
    serde_json::from_slice(&std::fs::read(cases().join(case).join("expected.json")).unwrap()).unwrap()
}

fn stats(m: &CocoMetrics) -> [f64; 6] {
    [m.ap, m.ap50, m.ap75, m.ap_small, m.ap_medium, m.ap_large]
}

#[test]
fn stats_equal_pycocotools() {
    for case in case_names() {
        let dir = cases().join(&case);
        let got = evaluate_files(&dir.join("gt.json"), &dir.join("results.json")).unwrap();
        let want: Vec<f64> = expected(&case)["stats"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        for (i, (g, w)) in stats(&got).iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-6, "{case}: stat {i}: ours {g}, pycocotools {w} (all: {got:?})");
        }
    }
}

#[test]
fn ground_truth_masks_are_bit_exact() {
    let mut checked = 0;
    for case in case_names() {
        let gt = CocoGt::from_file(&cases().join(&case).join("gt.json")).unwrap();
        let by_id: BTreeMap<i64, _> = gt.annotations().iter().map(|a| (a.id, a)).collect();
        for m in expected(&case)["gt_masks"].as_array().unwrap() {
            let id = m["id"].as_i64().unwrap();
            let ann = by_id[&id];
            assert_eq!(ann.mask.to_compressed(), m["counts"].as_str().unwrap(), "{case}: annotation {id}: RLE");
            assert_eq!(ann.mask.area(), m["area"].as_u64().unwrap(), "{case}: annotation {id}: area");
            let bbox: Vec<f64> = m["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(ann.mask.bbox().to_vec(), bbox, "{case}: annotation {id}: toBbox");
            let bits = ann.mask.decode();
            assert_eq!(bits.len() as u64, m["pixels"].as_u64().unwrap());
            let packed: String = bits
                .chunks(8)
                .map(|c| c.iter().enumerate().fold(0u8, |b, (i, &v)| b | (v << (7 - i))))
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(packed, m["bits"].as_str().unwrap(), "{case}: annotation {id}: decoded mask");
            // The compressed string reads back to the same RLE.
            let back = Rle::from_compressed(
                ann.mask.height().into(),
                ann.mask.width().into(),
                ann.mask.to_compressed().as_bytes(),
            )
            .unwrap();
            assert_eq!(&back, &ann.mask);
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} masks checked");
}

#[test]
fn iou_matrices_equal_pycocotools() {
    for case in case_names() {
        let dir = cases().join(&case);
        let gt = CocoGt::from_file(&dir.join("gt.json")).unwrap();
        let dets = read_results(&dir.join("results.json"), &gt).unwrap();
        for entry in expected(&case)["ious"].as_array().unwrap() {
            let (img, cat) = (entry["image_id"].as_i64().unwrap(), entry["category_id"].as_i64().unwrap());
            let gts: Vec<_> = gt.annotations().iter().filter(|a| a.image_id == img && a.category_id == cat).collect();
            let mut ds: Vec<&Detection> = dets.iter().filter(|d| d.image_id == img && d.category_id == cat).collect();
            ds.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap());
            ds.truncate(100);
            let want = entry["ious"].as_array().unwrap();
            assert_eq!(want.len(), ds.len(), "{case} ({img}, {cat}): detections");
            for (d, row) in ds.iter().zip(want) {
                let row = row.as_array().unwrap();
                assert_eq!(row.len(), gts.len());
                for (g, w) in gts.iter().zip(row) {
                    // serde_json's float parsing may be 1 ulp off Python's repr: compare to 1e-15.
                    let (ours, theirs) = (iou(&d.mask, &g.mask, g.iscrowd), w.as_f64().unwrap());
                    assert!((ours - theirs).abs() <= 1e-15, "{case} ({img}, {cat}): gt {}: {ours} {theirs}", g.id);
                }
            }
        }
    }
}

#[test]
fn metrics_serialise_with_coco_names() {
    let m = CocoMetrics { ap: 0.5, ap50: 0.75, ap75: 0.25, ap_small: -1.0, ap_medium: 0.125, ap_large: 1.0 };
    let v = serde_json::to_value(m).unwrap();
    assert_eq!(v, json!({"AP": 0.5, "AP50": 0.75, "AP75": 0.25, "APs": -1.0, "APm": 0.125, "APl": 1.0}));
}

fn small_gt() -> Value {
    json!({
        "images": [{"id": 1, "height": 4, "width": 5}, {"id": 2, "height": 3, "width": 3}],
        "categories": [{"id": 7, "name": "thing"}],
        "annotations": [
            {"id": 11, "image_id": 1, "category_id": 7, "area": 4.0, "iscrowd": 0,
             "segmentation": {"size": [4, 5], "counts": [5, 2, 2, 2, 9]}},
            {"id": 12, "image_id": 2, "category_id": 7, "area": 9.0, "iscrowd": 0,
             "segmentation": [[0.0, 0.0, 2.6, 0.0, 2.6, 2.6, 0.0, 2.6]]}
        ]
    })
}

fn gt_from(v: &Value) -> dinoseg::Result<CocoGt> {
    CocoGt::from_json(&serde_json::to_vec(v).unwrap(), Path::new("gt.json"))
}

fn results_from(v: &Value, gt: &CocoGt) -> dinoseg::Result<Vec<Detection>> {
    parse_results(&serde_json::to_vec(v).unwrap(), Path::new("res.json"), gt)
}

fn err_text<T: std::fmt::Debug>(r: dinoseg::Result<T>) -> String {
    r.expect_err("should fail").to_string()
}

#[test]
fn perfect_and_empty_results() {
    let gt = gt_from(&small_gt()).unwrap();
    let perfect = json!([
        {"image_id": 1, "category_id": 7, "score": 0.9, "segmentation": {"size": [4, 5], "counts": [5, 2, 2, 2, 9]}},
        {"image_id": 2, "category_id": 7, "score": 0.8,
         "segmentation": {"size": [3, 3], "counts": gt.annotations()[1].mask.to_compressed()}}
    ]);
    let m = evaluate(&gt, &results_from(&perfect, &gt).unwrap());
    assert_eq!(stats(&m), [1.0, 1.0, 1.0, 1.0, -1.0, -1.0]);
    let m = evaluate(&gt, &results_from(&json!([]), &gt).unwrap());
    assert_eq!(stats(&m), [0.0, 0.0, 0.0, 0.0, -1.0, -1.0]);
}

#[test]
fn malformed_rle_strings_are_named() {
    let mut v = small_gt();
    v["annotations"][0]["segmentation"] = json!({"size": [4, 5], "counts": "5 2"});
    let e = err_text(gt_from(&v));
    assert!(e.contains("gt.json") && e.contains("annotation id 11") && e.contains("byte 1"), "{e}");
    v["annotations"][0]["segmentation"] = json!({"size": [4, 5], "counts": "52P"});
    let e = err_text(gt_from(&v));
    assert!(e.contains("annotation id 11") && e.contains("does not end"), "{e}");
    assert_eq!(Rle::from_compressed(2, 2, b"ooooooo"), Err(RleError::TooLong { offset: 0 }));
}

#[test]
fn counts_must_sum_to_the_image() {
    let mut v = small_gt();
    v["annotations"][0]["segmentation"] = json!({"size": [4, 5], "counts": [5, 2, 2]});
    let e = err_text(gt_from(&v));
    assert!(e.contains("annotation id 11") && e.contains("sum to 9, not height x width = 20"), "{e}");
    v["annotations"][0]["segmentation"] = json!({"size": [4, 5], "counts": [5, -2, 17]});
    let e = err_text(gt_from(&v));
    assert!(e.contains("count 1 is negative"), "{e}");
    v["annotations"][0]["segmentation"] = json!({"size": [5, 4], "counts": [20]});
    let e = err_text(gt_from(&v));
    assert!(e.contains("5x4 is not the image's 4x5"), "{e}");
    v["annotations"][0]["segmentation"] = json!([[1.0, 2.0, 3.0, 4.0, 5.0]]);
    let e = err_text(gt_from(&v));
    assert!(e.contains("odd number of coordinates (5)"), "{e}");
    v["images"][0]["height"] = json!(1u64 << 20);
    v["images"][0]["width"] = json!(1u64 << 20);
    let e = err_text(gt_from(&v));
    assert!(e.contains("image id 1") && e.contains("too large"), "{e}");
}

#[test]
fn unknown_image_in_results_is_an_error() {
    let gt = gt_from(&small_gt()).unwrap();
    let res = json!([{"image_id": 3, "category_id": 7, "score": 0.5, "segmentation": {"size": [3, 3], "counts": "9"}}]);
    let e = err_text(results_from(&res, &gt));
    assert!(e.contains("res.json") && e.contains("result 0") && e.contains("image_id 3"), "{e}");
}

#[test]
fn missing_keys_are_named() {
    let mut v = small_gt();
    v["annotations"][1].as_object_mut().unwrap().remove("area");
    let e = err_text(gt_from(&v));
    assert!(e.contains("annotation id 12: missing key `area`"), "{e}");
    let mut v = small_gt();
    v.as_object_mut().unwrap().remove("categories");
    let e = err_text(gt_from(&v));
    assert!(e.contains("gt.json") && e.contains("categories"), "{e}");
    let gt = gt_from(&small_gt()).unwrap();
    let res = json!([{"image_id": 1, "category_id": 7, "segmentation": {"size": [4, 5], "counts": [20]}}]);
    let e = err_text(results_from(&res, &gt));
    assert!(e.contains("result 0: missing key `score`"), "{e}");
    let mut v = small_gt();
    v["annotations"][1]["id"] = json!(11);
    let e = err_text(gt_from(&v));
    assert!(e.contains("annotation id 11 appears twice"), "{e}");
}

#[test]
fn hostile_polygons_are_bounded() {
    let started = std::time::Instant::now();
    let mut v = small_gt();
    v["annotations"][1]["segmentation"] = json!([[0.0, 0.0, 1e7, 0.0, 1e7, 1e7, 0.0, 1e7]]);
    let e = err_text(gt_from(&v));
    assert!(e.contains("annotation id 12") && e.contains("boundary points"), "{e}");
    v["annotations"][1]["segmentation"] = json!([[0.0, 0.0, 2e8, 0.0, 1.0, 1.0]]);
    let e = err_text(gt_from(&v));
    assert!(e.contains("coordinate 2 (200000000)"), "{e}");
    // Many polygons each under the per-polygon cap still share the file's budget.
    let poly = json!([0.0, 0.0, 5e5, 0.0, 5e5, 5e5, 0.0, 5e5]);
    v["annotations"][1]["segmentation"] = Value::Array(vec![poly; 50]);
    let e = err_text(gt_from(&v));
    assert!(e.contains("budget"), "{e}");
    assert!(started.elapsed().as_secs_f64() < 1.0, "took {:?}", started.elapsed());
}

/// The larger set (300 images of 480x640, about 2,400 objects, 7,600 results): the same stats and RLEs as
/// pycocotools. Its timing against pycocotools is `bench/eval_coco.py`.
#[test]
fn larger_set_equals_pycocotools() {
    let dir = generated("coco_large", &["--large"]).join("large");
    let want = serde_json::from_slice::<Value>(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let gt = CocoGt::from_file(&dir.join("gt.json")).unwrap();
    let results = read_results(&dir.join("results.json"), &gt).unwrap();
    let got = evaluate(&gt, &results);
    for (i, (g, w)) in stats(&got).iter().zip(want["stats"].as_array().unwrap()).enumerate() {
        assert!((g - w.as_f64().unwrap()).abs() <= 1e-6, "stat {i}: ours {g}, pycocotools {w}");
    }
    let by_id: BTreeMap<i64, _> = gt.annotations().iter().map(|a| (a.id, a)).collect();
    let masks = want["gt_masks"].as_array().unwrap();
    assert!(masks.len() > 2000, "{} ground-truth masks", masks.len());
    for m in masks {
        let id = m["id"].as_i64().unwrap();
        assert_eq!(by_id[&id].mask.to_compressed(), m["counts"].as_str().unwrap(), "annotation {id}");
    }
}

/// `dinoseg eval --coco-gt --coco-results`: the JSON it writes holds the six stats of pycocotools, a `--json`
/// naming an input is refused and the input left as it was, and a half-given mode names the flag missing.
#[test]
fn cli_coco_mode_writes_pycocotools_stats() {
    let eval = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_dinoseg")).arg("eval").args(args).output().unwrap()
    };
    let out_dir = root().join("target").join(format!("coco_cli-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    for case in case_names() {
        let dir = cases().join(&case);
        let (gt, res, out) = (dir.join("gt.json"), dir.join("results.json"), out_dir.join(format!("{case}.json")));
        let o = eval(&[
            "--coco-gt".as_ref(),
            gt.as_os_str(),
            "--coco-results".as_ref(),
            res.as_os_str(),
            "--json".as_ref(),
            out.as_os_str(),
        ]);
        assert!(o.status.success(), "{case}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("AP50"), "{case}: no table");
        let got: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let want = expected(&case)["stats"].clone();
        for (i, key) in ["AP", "AP50", "AP75", "APs", "APm", "APl"].iter().enumerate() {
            let (g, w) = (got[key].as_f64().unwrap(), want[i].as_f64().unwrap());
            assert!((g - w).abs() <= 1e-6, "{case}: {key}: ours {g}, pycocotools {w}");
        }
    }
    let dir = cases().join(&case_names()[0]);
    let (gt, res) = (dir.join("gt.json"), dir.join("results.json"));
    let before = std::fs::read(&res).unwrap();
    let o = eval(&[
        "--coco-gt".as_ref(),
        gt.as_os_str(),
        "--coco-results".as_ref(),
        res.as_os_str(),
        "--json".as_ref(),
        res.as_os_str(),
    ]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read(&res).unwrap(), before, "an input was overwritten");
    let o = eval(&["--coco-gt".as_ref(), gt.as_os_str(), "--json".as_ref(), out_dir.join("x.json").as_os_str()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--coco-results"), "{err}");
}

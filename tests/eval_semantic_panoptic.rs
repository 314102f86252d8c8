//! `dinoseg eval` (semantic and panoptic) against the expected metrics of tools/make_eval_cases.py (brute-force
//! numpy mIoU / pixel accuracy, and a re-implementation of panopticapi's pq_compute), every number within 1e-6;
//! the error cases name what they should; the CLI writes the same JSON and refuses mixed or incomplete modes.

use dinoseg::eval::{panoptic, semantic};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cases, generated on first use into `target/eval_cases` (or read from `DINOSEG_EVAL_CASES`).
fn cases_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("DINOSEG_EVAL_CASES")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target").join("eval_cases"));
        if !dir.join("EVAL_DONE").is_file() {
            let status = Command::new(root().join(".venv").join("bin").join("python"))
                .arg(root().join("tools").join("make_eval_cases.py"))
                .arg(&dir)
                .status()
                .expect("run tools/make_eval_cases.py with .venv/bin/python (run `make test` to set up)");
            assert!(status.success(), "tools/make_eval_cases.py failed");
        }
        dir
    })
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(cases_dir().join("cases.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap().as_array().unwrap().clone()
}

fn path(case: &Value, key: &str) -> PathBuf {
    cases_dir().join(case[key].as_str().unwrap())
}

/// Runs a case through the library: the metrics as JSON, or the error's text.
fn evaluate(case: &Value) -> Result<Value, String> {
    let result = match case["mode"].as_str().unwrap() {
        "semantic" => semantic::evaluate_dirs(
            &path(case, "pred_dir"),
            &path(case, "gt_dir"),
            case["num_classes"].as_u64().unwrap() as u32,
            case["ignore_index"].as_u64().unwrap() as u32,
            &semantic::Pairing::default(),
        )
        .map(|r| serde_json::to_value(r.result).unwrap()),
        "panoptic" => panoptic::evaluate_files(
            &path(case, "panoptic_gt"),
            &path(case, "panoptic_gt_dir"),
            &path(case, "panoptic_pred"),
            &path(case, "panoptic_pred_dir"),
            false,
        )
        .map(|(r, _)| serde_json::to_value(r).unwrap()),
        other => panic!("mode {other}"),
    };
    result.map_err(|e| e.to_string())
}

/// Differences between `got` and `want` (numbers within 1e-6, the rest equal, the same keys).
fn diff(got: &Value, want: &Value, at: &str, out: &mut Vec<String>) {
    match (got, want) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            if (a - b).abs() > 1e-6 {
                out.push(format!("{at}: {a} != {b}"));
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff(x, y, &format!("{at}.{k}"), out),
                    _ => out.push(format!("{at}.{k}: only on one side")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(x, y, &format!("{at}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{at}: {a} != {b}")),
    }
}

#[test]
fn metrics_equal_the_references() {
    let mut checked = 0;
    for case in cases().iter().filter(|c| c.get("expected").is_some()) {
        let name = case["name"].as_str().unwrap();
        let got = evaluate(case).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut out = Vec::new();
        diff(&got, &case["expected"], name, &mut out);
        assert!(out.is_empty(), "{name}: {out:#?}");
        checked += 1;
    }
    assert_eq!(checked, 5);
}

#[test]
fn errors_name_the_file_pixel_image_and_segment() {
    let mut checked = 0;
    for case in cases().iter().filter(|c| c.get("error").is_some()) {
        let name = case["name"].as_str().unwrap();
        let e = match evaluate(case) {
            Ok(v) => panic!("{name}: accepted: {v}"),
            Err(e) => e,
        };
        for want in case["error"].as_array().unwrap() {
            assert!(e.contains(want.as_str().unwrap()), "{name}: `{e}` does not say `{want}`");
        }
        checked += 1;
    }
    assert_eq!(checked, 11);
}

fn dinoseg(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dinoseg")).arg("eval").args(args).output().unwrap()
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

fn case(name: &str) -> Value {
    cases().into_iter().find(|c| c["name"] == name).unwrap()
}

#[test]
fn cli_writes_the_json_and_refuses_bad_flag_sets() {
    let out_dir = root().join("target").join(format!("eval_cli_{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();

    let c = case("grey8");
    let json = out_dir.join("semantic.json");
    let (pred, gt) = (path(&c, "pred_dir"), path(&c, "gt_dir"));
    let o = dinoseg(&[
        os("--pred-dir"),
        pred.as_os_str(),
        os("--gt-dir"),
        gt.as_os_str(),
        os("--num-classes"),
        os("6"),
        os("--json"),
        json.as_os_str(),
    ]);
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("mIoU") && stdout.contains("4 images"), "{stdout}");
    assert!(stderr.contains("2 prediction file(s)") && stderr.contains("no ground truth"), "{stderr}");
    let got: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let mut d = Vec::new();
    diff(&got, &c["expected"], "cli semantic", &mut d);
    assert!(d.is_empty(), "{d:#?}");

    let c = case("coco_ids");
    let json = out_dir.join("panoptic.json");
    let keys = ["panoptic_gt", "panoptic_gt_dir", "panoptic_pred", "panoptic_pred_dir"];
    let paths: Vec<PathBuf> = keys.iter().map(|k| path(&c, k)).collect();
    let flags: Vec<String> = keys.iter().map(|k| format!("--{}", k.replace('_', "-"))).collect();
    let mut args: Vec<&std::ffi::OsStr> = Vec::new();
    for (f, p) in flags.iter().zip(&paths) {
        args.push(os(f));
        args.push(p.as_os_str());
    }
    let mut with_json = args.clone();
    with_json.extend([os("--json"), json.as_os_str()]);
    let o = dinoseg(&with_json);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("Things") && stdout.contains("PQ %"), "{stdout}");
    let got: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let mut d = Vec::new();
    diff(&got, &c["expected"], "cli panoptic", &mut d);
    assert!(d.is_empty(), "{d:#?}");

    // --json over an input is refused, and the input is left as it was
    let before = std::fs::read(&paths[0]).unwrap();
    let mut over_input = args.clone();
    over_input.extend([os("--json"), paths[0].as_os_str()]);
    let o = dinoseg(&over_input);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refusing to overwrite an input"), "{stderr}");
    assert_eq!(std::fs::read(&paths[0]).unwrap(), before);

    // mixed modes and incomplete modes are refused naming the flags
    let mut mixed = with_json.clone();
    mixed.extend([os("--num-classes"), os("3")]);
    let o = dinoseg(&mixed);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("flags of two modes: semantic (--num-classes) and panoptic"), "{stderr}");
    let o = dinoseg(&[os("--pred-dir"), pred.as_os_str(), os("--json"), json.as_os_str()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("semantic evaluation also needs --gt-dir, --num-classes"), "{stderr}");
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// `--gt-suffix` / `--pred-suffix` pair a `dinoseg run --files` folder (NAME_semantic.png beside colour overlays)
/// with a ground truth that holds other PNGs too (16-bit instance maps): only the suffixed files are read.
#[test]
fn suffixes_pair_run_folders_and_skip_other_pngs() {
    use dinoseg::eval::semantic::{evaluate_dirs, Pairing};
    let dir = root().join("target").join(format!("eval_suffix_{}", std::process::id()));
    let (gt, pred) = (dir.join("gt"), dir.join("pred"));
    for d in [&gt, &pred] {
        std::fs::create_dir_all(d).unwrap();
    }
    let grey = |v: &[u8]| image::GrayImage::from_raw(2, 2, v.to_vec()).unwrap();
    grey(&[0, 1, 1, 2]).save(gt.join("f1_semantic.png")).unwrap();
    image::ImageBuffer::<image::Luma<u16>, _>::from_raw(2, 2, vec![1000u16; 4])
        .unwrap()
        .save(gt.join("f1_instances.png"))
        .unwrap();
    grey(&[0, 1, 2, 2]).save(pred.join("f1_semantic.png")).unwrap();
    image::RgbImage::new(2, 2).save(pred.join("f1_overlay.png")).unwrap();
    grey(&[0, 0, 0, 0]).save(pred.join("f2_semantic.png")).unwrap();
    let pairing = Pairing { gt_suffix: "_semantic.png".into(), pred_suffix: Some("_semantic.png".into()) };
    let r = evaluate_dirs(&pred, &gt, 3, 255, &pairing).unwrap();
    assert_eq!((r.result.images, r.predictions_without_gt), (1, 1));
    // class 0: 1/1, class 1: 1/2, class 2: 1/2
    assert!((r.result.miou.unwrap() - 2.0 / 3.0).abs() < 1e-12, "{:?}", r.result);
    // the default pairing reads every PNG: the 16-bit instance map is a ground truth with values >= K
    let e = evaluate_dirs(&pred, &gt, 3, 255, &Pairing::default()).unwrap_err().to_string();
    assert!(e.contains("f1_instances"), "{e}");
    // a ground truth whose prediction is missing is named with the prediction's suffix
    std::fs::copy(gt.join("f1_semantic.png"), gt.join("f3_semantic.png")).unwrap();
    let e = evaluate_dirs(&pred, &gt, 3, 255, &pairing).unwrap_err().to_string();
    assert!(e.contains("f3_semantic.png"), "{e}");
    let bad = Pairing { gt_suffix: "_semantic".into(), pred_suffix: None };
    let e = evaluate_dirs(&pred, &gt, 3, 255, &bad).unwrap_err().to_string();
    assert!(e.contains("--gt-suffix"), "{e}");
}

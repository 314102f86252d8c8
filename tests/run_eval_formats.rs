//! `dinoseg run`, then `dinoseg eval` on its output (issue 13). A run of the shipped panoptic config
//! (`config/eomt_panoptic.yaml`: the demo EoMT, held-out demo scenes) writes its predictions in the formats
//! evaluation reads, and each is checked independently and against itself:
//! - `coco_results.json` decoded by pycocotools equals each instance's mask in `NAME_instance_ids.png` (areas,
//!   boxes, classes, scores as in `NAME_instances.json`); against a COCO ground truth made from the run's own
//!   instances under other image ids (paired by file name) `dinoseg eval` gives AP 1, and less when the ground
//!   truth is perturbed, equal to pycocotools' COCOeval both times;
//! - `panoptic/NAME.png` ids and areas equal `panoptic.json`'s segments, the semantic map is the panoptic map's
//!   classes, categories carry the labels' thing / stuff split, and PQ of the run against itself is 1 (by
//!   image_id, and by file name under other ids);
//! - the semantic maps pair with ground truth named by frame (`NAME.png` <- `NAME_semantic.png`): mIoU 1.
//!
//! A run that ends early (a write error, `--max-frames`, SIGINT) still writes the run-wide files, with exactly
//! the frames done.

mod common;

use dinoseg::pipeline::RgbImage;
use dinoseg::postprocess::{FrameSegmentation, Labels, PanopticMap, SegmentInfo};
use dinoseg::runner::{run_with_model, RunModel, RunOptions};
use dinoseg::segmenter::StageTimes;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The frames of the shared run: a COCO-style numeric name and two others (ids by position).
const FRAMES: [&str; 3] = ["000000000042", "frame_a", "frame_b"];

const SCENES_PY: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
from demo_scenes import render_scene, TEST_SEED_BASE
from PIL import Image
out, h, w = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for i, name in enumerate(sys.argv[5:]):
    Image.fromarray(render_scene(TEST_SEED_BASE + i, h, w).image).save(out + "/" + name + ".png")
"#;

/// Held-out demo scenes (tools/demo_scenes.py) of `h` x `w` as `dir/NAME.png`.
fn scenes(dir: &Path, names: &[String], h: u32, w: u32) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let tools = common::root().join("tools");
    let mut args = vec![tools.display().to_string(), dir.display().to_string(), h.to_string(), w.to_string()];
    args.extend(names.iter().cloned());
    python(SCENES_PY, &args);
}

/// Runs a Python script (the repo's venv: numpy, pillow, pycocotools) and returns its stdout.
fn python(script: &str, args: &[String]) -> String {
    let o = Command::new(common::python()).arg("-c").arg(script).args(args).output().expect("run python");
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "python failed:\n{out}\n{err}");
    out.into_owned()
}

/// `config/eomt_panoptic.yaml` with absolute paths, in `dir`.
fn params(dir: &Path) -> PathBuf {
    let config = common::root().join("config");
    let text = std::fs::read_to_string(config.join("eomt_panoptic.yaml")).expect("read the shipped config");
    let patched = text
        .replace("./demo/eomt", &config.join("demo").join("eomt").display().to_string())
        .replace("labels: demo/labels.txt", &format!("labels: {}", config.join("demo").join("labels.txt").display()));
    assert!(patched.contains("config/demo/eomt") && patched.contains("config/demo/labels.txt"), "{patched}");
    let p = dir.join("params.yaml");
    std::fs::write(&p, patched).expect("write params");
    p
}

fn dinoseg<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dinoseg")).args(args).output().expect("run dinoseg")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `dinoseg eval` with `args` plus `--json`: the metrics (and stderr).
fn eval(dir: &Path, name: &str, args: &[&Path]) -> (Value, String) {
    let (json, o) = eval_output(dir, name, args);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "dinoseg eval {args:?}:\n{out}\n{err}");
    (read_json(&json), err.into_owned())
}

/// Runs `dinoseg eval` with `--json DIR/NAME.json`: that path and the process's output.
fn eval_output(dir: &Path, name: &str, args: &[&Path]) -> (PathBuf, std::process::Output) {
    let json = dir.join(format!("{name}.json"));
    let mut all: Vec<&std::ffi::OsStr> = vec!["eval".as_ref()];
    all.extend(args.iter().map(|a| a.as_os_str()));
    all.extend(["--json".as_ref(), json.as_os_str()]);
    let o = dinoseg(&all);
    (json, o)
}

/// Runs `dinoseg eval` expecting it may fail: whether it succeeded, and its stderr.
fn eval_status(dir: &Path, name: &str, args: &[&Path]) -> (bool, String) {
    let (_, o) = eval_output(dir, name, args);
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// The shared run over [`FRAMES`]: its temp folder (the images in `images/`, the output in `out/`).
fn panoptic_run() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = common::temp_dir("eval-formats");
        let names: Vec<String> = FRAMES.iter().map(|s| s.to_string()).collect();
        scenes(&dir.join("images"), &names, 160, 224);
        let p = params(&dir);
        let o = dinoseg(&[
            "run".as_ref(),
            "--params".as_ref(),
            p.as_os_str(),
            "--input".as_ref(),
            dir.join("images").as_os_str(),
            "--output".as_ref(),
            dir.join("out").as_os_str(),
        ]);
        let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "dinoseg run:\n{out}\n{err}");
        assert!(out.contains("| image files | 3 | 3 | 0 |"), "{out}");
        dir
    })
}

const COCO_PY: &str = r#"
import copy, json, os, sys
import numpy as np
from PIL import Image
from pycocotools import mask as M
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
out, work, frames = sys.argv[1], sys.argv[2], sys.argv[3:]
res = json.load(open(os.path.join(out, "coco_results.json")))
# Every result, in frame order, is the mask of the instance of that position in NAME_instance_ids.png.
by_file, n = {}, 0
for r in res:
    by_file.setdefault(r["file_name"], []).append(r)
image_ids, sizes = {}, {}
for name in frames:
    doc = json.load(open(os.path.join(out, name + "_instances.json")))
    ids = np.array(Image.open(os.path.join(out, name + "_instance_ids.png")))
    sizes[name] = (doc["height"], doc["width"])
    rs = by_file.get(name + ".png", [])
    assert len(rs) == len(doc["instances"]), (name, len(rs), len(doc["instances"]))
    for r, inst in zip(rs, doc["instances"]):
        image_ids.setdefault(name, r["image_id"])
        assert r["image_id"] == image_ids[name], r
        m = M.decode(r["segmentation"])
        want = (ids == inst["id"]).astype(np.uint8)
        assert m.shape == ids.shape and (m == want).all(), (name, inst["id"])
        assert int(M.area(r["segmentation"])) == inst["area"] == int(want.sum()), (name, inst)
        assert list(M.toBbox(r["segmentation"])) == r["bbox"] == [float(v) for v in inst["bbox"]], (name, r, inst)
        assert r["category_id"] == inst["class_id"] and abs(r["score"] - inst["score"]) < 1e-6, (r, inst)
        assert r["category_name"] == inst["class_name"], (r, inst)
        n += 1
assert n == len(res)
# A ground truth of the run's own instances, under other image ids and .jpg names (pairing by file stem).
gt_id = {name: 1000 + i for i, name in enumerate(frames)}
gt = {"images": [{"id": gt_id[f], "file_name": "val/" + f + ".jpg", "height": sizes[f][0], "width": sizes[f][1]}
                 for f in frames],
      "categories": [{"id": c, "name": "c%d" % c} for c in range(6)],
      "annotations": [{"id": k + 1, "image_id": gt_id[os.path.splitext(r["file_name"])[0]],
                       "category_id": r["category_id"], "segmentation": r["segmentation"],
                       "area": float(M.area(r["segmentation"])), "bbox": r["bbox"], "iscrowd": 0}
                      for k, r in enumerate(res)]}
# The same under other category ids (as COCO's 1-90 against a model's 0-based ids), named as the model's classes.
names = {r["category_id"]: r["category_name"] for r in res}
renamed = copy.deepcopy(gt)
renamed["categories"] = [{"id": 100 + c, "name": names.get(c, "unused%d" % c)} for c in range(6)]
for a in renamed["annotations"]:
    a["category_id"] += 100
json.dump(renamed, open(os.path.join(work, "renamed.json"), "w"))
bad = copy.deepcopy(gt)
top = max(range(len(res)), key=lambda k: res[k]["score"])
bad["annotations"][top]["category_id"] = 1 + bad["annotations"][top]["category_id"] % 5
stats = {}
for key, doc in [("gt", gt), ("perturbed", bad)]:
    path = os.path.join(work, key + ".json")
    json.dump(doc, open(path, "w"))
    coco = COCO(path)
    dt = coco.loadRes([dict(r, image_id=gt_id[os.path.splitext(r["file_name"])[0]]) for r in res])
    e = COCOeval(coco, dt, "segm")
    e.evaluate(); e.accumulate(); e.summarize()
    stats[key] = [float(v) for v in e.stats[:6]]
print("RESULT " + json.dumps({"results": n, "image_ids": image_ids, "stats": stats}))
"#;

fn result_line(stdout: &str) -> Value {
    let line = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")).unwrap_or_else(|| panic!("{stdout}"));
    serde_json::from_str(line).expect("result json")
}

fn coco_stats(m: &Value) -> Vec<f64> {
    ["AP", "AP50", "AP75", "APs", "APm", "APl"].iter().map(|k| m[k].as_f64().expect("a number")).collect()
}

#[test]
fn coco_results_decode_with_pycocotools_and_score_ap_1_against_the_runs_own_instances() {
    let dir = panoptic_run();
    let out = dir.join("out");
    let work = common::temp_dir("eval-formats-coco");
    let mut args = vec![out.display().to_string(), work.display().to_string()];
    args.extend(FRAMES.iter().map(|s| s.to_string()));
    let r = result_line(&python(COCO_PY, &args));
    let n = r["results"].as_u64().expect("results");
    assert!(n >= 3, "the demo model finds objects in the demo scenes: {r}");
    // image_id: the digits of a COCO-style name, else the frame's position in the run.
    for (name, id) in [("000000000042", 42), ("frame_a", 2), ("frame_b", 3)] {
        assert!(r["image_ids"][name].is_null() || r["image_ids"][name] == id, "{name}: {r}");
    }
    let (m, _) = eval(
        &work,
        "ap",
        &[Path::new("--coco-gt"), &work.join("gt.json"), Path::new("--coco-results"), &out.join("coco_results.json")],
    );
    let got = coco_stats(&m);
    assert_eq!(&got[..3], &[1.0, 1.0, 1.0], "{m}");
    assert!(got[3..].iter().all(|&v| v == 1.0 || v == -1.0), "{m}");
    let want_gt: Vec<f64> = serde_json::from_value(r["stats"]["gt"].clone()).expect("stats");
    assert_eq!(got, want_gt, "dinoseg eval vs pycocotools");
    let (m, _) = eval(
        &work,
        "ap_perturbed",
        &[
            Path::new("--coco-gt"),
            &work.join("perturbed.json"),
            Path::new("--coco-results"),
            &out.join("coco_results.json"),
        ],
    );
    let got = coco_stats(&m);
    assert!(got[0] < 1.0, "{m}");
    // Other category ids: matched by the results' category_name, the same AP 1; by id, nothing matches.
    let renamed = [
        Path::new("--coco-gt"),
        &work.join("renamed.json"),
        Path::new("--coco-results"),
        &out.join("coco_results.json"),
    ];
    let mut by_name = renamed.to_vec();
    by_name.push(Path::new("--categories-by-name"));
    let (m, err) = eval(&work, "ap_by_name", &by_name);
    assert_eq!(coco_stats(&m), want_gt, "{m} {err}");
    let (m, err) = eval(&work, "ap_by_id", &renamed);
    assert_eq!(coco_stats(&m)[0], 0.0, "{m}");
    assert!(err.contains("category_id the ground truth lacks") && err.contains("--categories-by-name"), "{err}");
    let want: Vec<f64> = serde_json::from_value(r["stats"]["perturbed"].clone()).expect("stats");
    assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-12), "dinoseg eval {got:?} vs pycocotools {want:?}");
}

const PANOPTIC_PY: &str = r#"
import json, os, sys
import numpy as np
from PIL import Image
out, work, frames = sys.argv[1], sys.argv[2], sys.argv[3:]
pan = json.load(open(os.path.join(out, "panoptic.json")))
cats = {c["id"]: c for c in pan["categories"]}
names = ["background", "disk", "square", "triangle", "star", "ring"]
assert sorted(cats) == list(range(6)), cats
for i, name in enumerate(names):
    assert cats[i]["name"] == name and cats[i]["isthing"] == (0 if i == 0 else 1), cats[i]
anns = {a["file_name"]: a for a in pan["annotations"]}
assert sorted(anns) == sorted(f + ".png" for f in frames), sorted(anns)
segments = 0
for name in frames:
    a = anns[name + ".png"]
    rgb = np.array(Image.open(os.path.join(out, "panoptic", name + ".png")).convert("RGB")).astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    segs = {s["id"]: s for s in a["segments_info"]}
    assert set(np.unique(ids).tolist()) - {0} == set(segs), (name, np.unique(ids), sorted(segs))
    sem_want = np.full(ids.shape, 255, np.int64)
    for sid, s in segs.items():
        m = ids == sid
        ys, xs = np.nonzero(m)
        assert int(m.sum()) == s["area"] and s["iscrowd"] == 0, (name, s)
        box = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
        assert box == s["bbox"], (name, s, box)
        sem_want[m] = s["category_id"]
        segments += 1
    sem = np.array(Image.open(os.path.join(out, name + "_semantic.png"))).astype(np.int64)
    assert (sem == sem_want).all(), name
# The same annotations under other image ids: paired with the predictions by file name.
moved = dict(pan, annotations=[dict(a, image_id=5000 + i) for i, a in enumerate(pan["annotations"])])
json.dump(moved, open(os.path.join(work, "moved.json"), "w"))
# The same under other category ids, named as the run's classes; and one where "square" is unknown.
renamed = dict(moved, categories=[dict(c, id=100 + c["id"]) for c in pan["categories"]],
               annotations=[dict(a, segments_info=[dict(s, category_id=100 + s["category_id"])
                                                   for s in a["segments_info"]]) for a in moved["annotations"]])
json.dump(renamed, open(os.path.join(work, "renamed.json"), "w"))
unknown = dict(renamed, categories=[dict(c, name="crate" if c["name"] == "square" else c["name"])
                                    for c in renamed["categories"]])
json.dump(unknown, open(os.path.join(work, "unknown.json"), "w"))
squares = sum(s["category_id"] == 2 for a in pan["annotations"] for s in a["segments_info"])
print("RESULT " + json.dumps({"segments": segments, "squares": squares, "image_ids": {a["file_name"]: a["image_id"] for a in pan["annotations"]}}))
"#;

#[test]
fn panoptic_pngs_agree_with_their_json_and_score_pq_1_against_themselves() {
    let dir = panoptic_run();
    let out = dir.join("out");
    let work = common::temp_dir("eval-formats-panoptic");
    let mut args = vec![out.display().to_string(), work.display().to_string()];
    args.extend(FRAMES.iter().map(|s| s.to_string()));
    let r = result_line(&python(PANOPTIC_PY, &args));
    assert!(r["segments"].as_u64().is_some_and(|n| n >= 6), "{r}");
    assert_eq!(r["image_ids"]["000000000042.png"], 42);
    assert_eq!(r["image_ids"]["frame_b.png"], 3);
    let (json, dir_png) = (out.join("panoptic.json"), out.join("panoptic"));
    let mut n_all = None;
    for (name, gt) in [("pq", json.clone()), ("pq_moved", work.join("moved.json"))] {
        let flags = ["--panoptic-gt", "--panoptic-gt-dir", "--panoptic-pred", "--panoptic-pred-dir"].map(Path::new);
        let (m, _) = eval(&work, name, &[flags[0], &gt, flags[1], &dir_png, flags[2], &json, flags[3], &dir_png]);
        for part in ["all", "things", "stuff"] {
            assert_eq!((m[part]["PQ"].as_f64(), m[part]["SQ"].as_f64()), (Some(1.0), Some(1.0)), "{name} {part}: {m}");
        }
        assert_eq!(m["images"], 3, "{m}");
        n_all = m["all"]["n"].as_u64();
    }
    // Other category ids: matched by the prediction's category names, PQ 1; by id, refused as panopticapi does.
    let flags = ["--panoptic-gt", "--panoptic-gt-dir", "--panoptic-pred", "--panoptic-pred-dir"].map(Path::new);
    let renamed = work.join("renamed.json");
    let args = [flags[0], &renamed, flags[1], &dir_png, flags[2], &json, flags[3], &dir_png];
    let mut by_name = args.to_vec();
    by_name.push(Path::new("--categories-by-name"));
    let (m, _) = eval(&work, "pq_by_name", &by_name);
    assert_eq!((m["all"]["PQ"].as_f64(), m["all"]["n"].as_u64()), (Some(1.0), n_all), "{m}");
    let (ok, err) = eval_status(&work, "pq_by_id", &args);
    assert!(!ok && err.contains("unknown category_id"), "{err}");
    // A class the ground truth names otherwise: its segments are left out (VOID), the ground truth's are missed.
    let unknown = work.join("unknown.json");
    let mut args = [flags[0], &unknown, flags[1], &dir_png, flags[2], &json, flags[3], &dir_png].to_vec();
    args.push(Path::new("--categories-by-name"));
    let (m, err) = eval(&work, "pq_unknown", &args);
    let squares = r["squares"].as_u64().expect("squares");
    assert!(squares > 0 && err.contains(&format!("warning: {squares} predicted segment(s)")), "{err}");
    assert_eq!(m["per_class"]["102"]["FN"].as_u64(), Some(squares), "{m}");
    assert_eq!(m["per_class"]["102"]["FP"].as_u64(), Some(0), "{m}");
    assert_eq!(m["per_class"]["101"]["PQ"].as_f64(), Some(1.0), "{m}");
}

#[test]
fn semantic_maps_pair_with_ground_truth_named_by_frame() {
    let dir = panoptic_run();
    let out = dir.join("out");
    let gt = common::temp_dir("eval-formats-semantic");
    for name in FRAMES {
        std::fs::copy(out.join(format!("{name}_semantic.png")), gt.join(format!("{name}.png"))).expect("copy");
    }
    let work = common::temp_dir("eval-formats-semantic-out");
    let flags = ["--pred-dir", "--gt-dir", "--num-classes"].map(Path::new);
    let (m, err) = eval(&work, "miou", &[flags[0], &out, flags[1], &gt, flags[2], Path::new("6")]);
    assert_eq!((m["mIoU"].as_f64(), m["pixel_acc"].as_f64(), m["images"].as_u64()), (Some(1.0), Some(1.0), Some(3)));
    assert!(!err.contains("no ground truth"), "the run's other PNGs are not predictions: {err}");
    // A ground truth the predictions do not match is not 1.
    let img = image::open(gt.join("frame_a.png")).expect("open").to_luma8();
    let flipped = image::imageops::flip_horizontal(&img);
    flipped.save(gt.join("frame_a.png")).expect("save");
    let (m, _) = eval(&work, "miou_flipped", &[flags[0], &out, flags[1], &gt, flags[2], Path::new("6")]);
    assert!(m["mIoU"].as_f64().is_some_and(|v| v < 1.0), "{m}");
}

/// A stand-in model: per frame a panoptic map (class 0 stuff around, two things), its semantic map and instances.
struct Shapes(Labels);

impl RunModel for Shapes {
    fn segment_timed(&self, images: &[&RgbImage]) -> dinoseg::Result<(Vec<FrameSegmentation>, StageTimes)> {
        let mut frames = Vec::new();
        for img in images {
            let (w, h) = img.dimensions();
            let mut ids = vec![1u16; (w * h) as usize];
            for (i, id) in ids.iter_mut().enumerate() {
                let (x, y) = (i as u32 % w, i as u32 / w);
                if (2..6).contains(&x) && (2..6).contains(&y) {
                    *id = 2;
                } else if (8..11).contains(&x) && (1..4).contains(&y) {
                    *id = 3;
                }
            }
            let area = |s: u16| ids.iter().filter(|&&v| v == s).count() as u32;
            let seg = |id: u16, class_id: u32| SegmentInfo {
                id: u32::from(id),
                class_id,
                is_thing: class_id != 0,
                score: 0.5 + 0.1 * f32::from(id),
                area: area(id),
            };
            let segments = vec![seg(1, 0), seg(2, 1), seg(3, 2)];
            let map = PanopticMap { height: h, width: w, ids: ids.clone(), segments };
            frames.push(FrameSegmentation {
                semantic: Some(map.to_semantic(3)),
                instances: map.to_instances(&self.0),
                class_names: self.0.names().to_vec(),
                panoptic: Some(map),
                ..Default::default()
            });
        }
        Ok((frames, StageTimes::default()))
    }
    fn produces_instances(&self) -> bool {
        true
    }
    fn instance_labels(&self) -> Option<Labels> {
        Some(self.0.clone())
    }
}

fn shapes() -> Box<dyn RunModel> {
    Box::new(Shapes(Labels::from_names(vec!["ground".into(), "box".into(), "bar".into()]).with_stuff([0])))
}

#[test]
fn a_run_that_ends_early_writes_the_files_with_the_frames_done() {
    let dir = common::temp_dir("eval-formats-early");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).expect("mkdir");
    for name in ["a", "b", "c", "d"] {
        image::RgbImage::from_pixel(16, 12, image::Rgb([9, 9, 9]))
            .save(images.join(format!("{name}.png")))
            .expect("save");
    }
    let out = dir.join("out");
    // Frame c's semantic map cannot be written (a folder has its name): the run ends with that error.
    std::fs::create_dir_all(out.join("c_semantic.png")).expect("mkdir");
    let opts = |max_frames: Option<u64>, output: &Path| RunOptions {
        params: params(&dir),
        input: images.display().to_string(),
        output: output.to_path_buf(),
        all_topics: false,
        max_frames,
        files: None,
        stats_json: None,
    };
    let s = run_with_model(&opts(None, &out), |_| Ok(shapes()));
    let e = s.error.as_deref().unwrap_or_default();
    assert!(e.contains("c_semantic.png"), "{e:?}");
    assert_eq!(s.exit_code(), 1);
    let check = |out: &Path| {
        let res = read_json(&out.join("coco_results.json"));
        let res = res.as_array().expect("a list");
        let seen: Vec<(i64, &str, i64)> = res
            .iter()
            .map(|r| {
                (
                    r["image_id"].as_i64().unwrap_or(-1),
                    r["file_name"].as_str().unwrap_or(""),
                    r["category_id"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        assert_eq!(seen, [(1, "a.png", 1), (1, "a.png", 2), (2, "b.png", 1), (2, "b.png", 2)]);
        assert_eq!(res[0]["bbox"], serde_json::json!([2.0, 2.0, 4.0, 4.0]));
        assert_eq!(res[0]["segmentation"]["size"], serde_json::json!([12, 16]));
        let pan = read_json(&out.join("panoptic.json"));
        let files: Vec<&str> = pan["annotations"]
            .as_array()
            .expect("annotations")
            .iter()
            .filter_map(|a| a["file_name"].as_str())
            .collect();
        assert_eq!(files, ["a.png", "b.png"]);
        let cats = serde_json::json!([
            {"id": 0, "name": "ground", "isthing": 0}, {"id": 1, "name": "box", "isthing": 1}, {"id": 2, "name": "bar", "isthing": 1}
        ]);
        assert_eq!(pan["categories"], cats);
        assert_eq!(
            pan["annotations"][0]["segments_info"][1],
            serde_json::json!({"id": 2, "category_id": 1, "area": 16, "bbox": [2, 2, 4, 4], "iscrowd": 0})
        );
    };
    check(&out);
    // Stopped by --max-frames: the same two frames.
    let out2 = dir.join("out2");
    let s = run_with_model(&opts(Some(2), &out2), |_| Ok(shapes()));
    assert!(s.error.is_none(), "{:?}", s.error);
    check(&out2);
    assert!(!out2.join("c_semantic.png").exists());
}

#[test]
fn sigint_leaves_the_run_wide_files_with_exactly_the_frames_done() {
    let dir = common::temp_dir("eval-formats-sigint");
    let images = dir.join("images");
    // More frames than any machine runs in the moments before the signal; names not digits: ids by position.
    let names: Vec<String> = (0..150).map(|i| format!("s{i:03}")).collect();
    scenes(&images, &names, 96, 128);
    let (out, stats) = (dir.join("out"), dir.join("stats.json"));
    let p = params(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_dinoseg"))
        .arg("run")
        .args(["--params".as_ref(), p.as_os_str(), "--input".as_ref(), images.as_os_str()])
        .args(["--output".as_ref(), out.as_os_str(), "--stats-json".as_ref(), stats.as_os_str()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn dinoseg");
    let done_frames = |out: &Path| {
        std::fs::read_dir(out)
            .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().ends_with("_instances.json")).count())
            .unwrap_or(0)
    };
    let start = Instant::now();
    while done_frames(&out) < 2 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130), "{status:?}");
    let s = read_json(&stats);
    let n = s["topics"]["image files"]["frames_out"].as_u64().expect("frames_out") as usize;
    assert!(n >= 2 && n < names.len(), "{s}");
    assert_eq!(done_frames(&out), n);
    let pan = read_json(&out.join("panoptic.json"));
    let ids: Vec<i64> =
        pan["annotations"].as_array().expect("annotations").iter().filter_map(|a| a["image_id"].as_i64()).collect();
    assert_eq!(ids, (1..=n as i64).collect::<Vec<_>>());
    let instances: usize = names[..n]
        .iter()
        .map(|name| {
            read_json(&out.join(format!("{name}_instances.json")))["instances"].as_array().map_or(0, |a| a.len())
        })
        .sum();
    let res = read_json(&out.join("coco_results.json"));
    let res = res.as_array().expect("a list");
    assert_eq!(res.len(), instances);
    assert!(res.iter().all(|r| r["image_id"].as_i64().is_some_and(|i| (1..=n as i64).contains(&i))));
}

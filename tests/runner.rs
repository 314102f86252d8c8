//! The offline runner end to end: a bag written by an independent implementation (Python `mcap_ros2`: several
//! encodings, row padding, odd sizes, a compressed topic, malformed frames) goes through `dinoseg run` without
//! a crash, with exactly the good frames in the output; the output bag is decoded by an independent decoder
//! using only the schemas inside it: headers and sizes equal the inputs', step and data lengths agree,
//! `instance_ids` values index the instance array.

mod common;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn params_file(dir: &Path, outputs: &str) -> PathBuf {
    let fx = common::eomt_fixtures();
    let text = format!(
        "dinoseg:\n  ros__parameters:\n    device: cpu\n    precision: fp32\n    heads:\n      scene:\n        type: eomt\n        checkpoint: {}\n        outputs: panoptic\n      semantic:\n        type: linear\n        checkpoint: {}\n        source: eomt\n    input:\n      topics: [/camera/image_raw]\n    thresholds: {{score: 0.3, query: 0.3}}\n    outputs: {outputs}\n",
        fx.join("eomt_p0").display(),
        fx.join("eomt_linear_dense4.safetensors").display(),
    );
    let p = dir.join("params.yaml");
    std::fs::write(&p, text).expect("write params");
    p
}

fn interop(args: &[&str]) {
    let o = Command::new(common::python())
        .arg(common::root().join("tools").join("ros2_interop.py"))
        .args(args)
        .output()
        .expect("python");
    assert!(o.status.success(), "ros2_interop.py {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn dinoseg(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dinoseg")).args(args).output().expect("run dinoseg")
}

fn stamp(msg: &Value) -> (i64, i64) {
    let s = &msg["header"]["stamp"];
    (s["sec"].as_i64().unwrap_or(-1), s["nanosec"].as_i64().unwrap_or(-1))
}

fn hex_len(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.len() / 2)
}

fn u16_values(hex: &str) -> Vec<u16> {
    (0..hex.len() / 4)
        .map(|i| {
            let b = |j: usize| u8::from_str_radix(&hex[i * 4 + j * 2..i * 4 + j * 2 + 2], 16).unwrap_or(0);
            u16::from_le_bytes([b(0), b(1)])
        })
        .collect()
}

#[test]
fn a_bag_from_an_independent_writer_runs_and_its_output_decodes_independently() {
    let dir = common::temp_dir("runner-bag");
    let input = dir.join("input.mcap");
    let input_json = dir.join("input.json");
    interop(&["bag-write", input.to_str().expect("utf-8"), input_json.to_str().expect("utf-8")]);
    let all = "{semantic: true, semantic_color: true, instances: true, instance_ids: true, detections: true, label_info: true, overlay: true}";
    let params = params_file(&dir, all);
    let output = dir.join("out.mcap");
    let o = dinoseg(&[
        "run",
        "--params",
        params.to_str().expect("utf-8"),
        "--input",
        input.to_str().expect("utf-8"),
        "--output",
        output.to_str().expect("utf-8"),
        "--all-topics",
        "--files",
        dir.join("files").to_str().expect("utf-8"),
    ]);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "dinoseg run failed:\n{out}\n{err}");
    // The malformed frames are named with their topic and problem, counted, and the run went on.
    assert!(err.contains("/camera/image_raw: skipping") && err.contains("data"), "{err}");
    assert!(err.contains("/camera/image_raw/compressed: skipping"), "{err}");
    assert!(out.contains("| /camera/image_raw | 8 | 7 | 1 |"), "{out}");
    assert!(out.contains("| /camera/image_raw/compressed | 2 | 1 | 1 |"), "{out}");
    for stage in ["decode", "preprocess", "model", "postprocess", "encode"] {
        assert!(out.contains(&format!("| {stage} |")), "{out}");
    }

    let decoded = dir.join("out.json");
    interop(&["bag-read", output.to_str().expect("utf-8"), decoded.to_str().expect("utf-8")]);
    let rows: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&decoded).expect("read")).expect("json");
    let inputs: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&input_json).expect("read")).expect("json");
    // Good input frames: those whose stamps appear on the outputs; exactly 7 + 1.
    let mut per_topic: BTreeMap<String, BTreeMap<(i64, i64), Vec<&Value>>> = BTreeMap::new();
    for r in &rows {
        assert_eq!(r["profile"], "ros2");
        assert_eq!(r["encoding"], "ros2msg");
        assert_eq!(r["message_encoding"], "cdr");
        let topic = r["topic"].as_str().expect("topic").to_string();
        per_topic.entry(topic).or_default().entry(stamp(&r["message"])).or_default().push(&r["message"]);
    }
    let expected_outputs =
        ["semantic", "semantic_color", "instances", "instance_ids", "detections", "label_info", "overlay"];
    for (in_topic, good) in [("/camera/image_raw", 7usize), ("/camera/image_raw/compressed", 1usize)] {
        let ns = "/camera/dinoseg";
        let semantic = per_topic.get(&format!("{ns}/semantic")).expect("semantic topic");
        let in_frames: Vec<&Value> = inputs.iter().filter(|r| r["topic"] == in_topic).map(|r| &r["message"]).collect();
        let good_frames: Vec<&&Value> = in_frames.iter().filter(|m| semantic.contains_key(&stamp(m))).collect();
        assert_eq!(good_frames.len(), good, "{in_topic}: good frames with outputs");
        for m in good_frames {
            let key = stamp(m);
            let (h, w) = (m["height"].as_u64().unwrap_or(0), m["width"].as_u64().unwrap_or(0));
            for name in expected_outputs {
                let msgs = per_topic.get(&format!("{ns}/{name}")).and_then(|t| t.get(&key));
                let msgs = msgs.unwrap_or_else(|| panic!("{in_topic}: no {name} for stamp {key:?}"));
                for msg in msgs {
                    assert_eq!(msg["header"]["frame_id"], m["header"]["frame_id"], "{name}");
                }
            }
            // The EoMT head `scene` is not the main semantic head (the linear one is): its own map is on its
            // own topics, decoded the same way.
            for name in ["scene/semantic", "scene/semantic_color", "scene/label_info"] {
                let msgs = per_topic.get(&format!("{ns}/{name}")).and_then(|t| t.get(&key));
                let msg = msgs.and_then(|m| m.first()).unwrap_or_else(|| panic!("{in_topic}: no {name} for {key:?}"));
                assert_eq!(msg["header"]["frame_id"], m["header"]["frame_id"], "{name}");
            }
            let scene_info = per_topic[&format!("{ns}/scene/label_info")][&key][0];
            let main_info = per_topic[&format!("{ns}/label_info")][&key][0];
            assert_ne!(scene_info["class_map"], main_info["class_map"], "each head's own class names");
            if in_topic == "/camera/image_raw" {
                for name in
                    ["semantic", "semantic_color", "instance_ids", "overlay", "scene/semantic", "scene/semantic_color"]
                {
                    let img = per_topic[&format!("{ns}/{name}")][&key][0];
                    assert_eq!((img["height"].as_u64(), img["width"].as_u64()), (Some(h), Some(w)), "{name} size");
                    let step = img["step"].as_u64().unwrap_or(0) as usize;
                    assert_eq!(step * h as usize, hex_len(&img["data"]), "{name}: step x height == data length");
                }
            }
            let ids = per_topic[&format!("{ns}/instance_ids")][&key][0];
            let array = per_topic[&format!("{ns}/instances")][&key][0];
            let n = array["instances"].as_array().map_or(0, |a| a.len());
            let values: BTreeSet<u16> = u16_values(ids["data"].as_str().unwrap_or("")).into_iter().collect();
            assert!(values.iter().all(|&v| (v as usize) <= n), "instance_ids {values:?} index an array of {n}");
            for (i, inst) in array["instances"].as_array().into_iter().flatten().enumerate() {
                assert_eq!(inst["id"].as_u64(), Some(i as u64 + 1));
                let mask = &inst["mask"];
                assert_eq!(mask["encoding"], "mono8");
                assert_eq!(mask["width"], inst["roi"]["width"]);
                assert_eq!(
                    hex_len(&mask["data"]),
                    (mask["step"].as_u64().unwrap_or(0) * mask["height"].as_u64().unwrap_or(0)) as usize
                );
            }
        }
    }
    // The same pass wrote files: one folder per topic, one set per good frame.
    let count = |sub: &str| {
        std::fs::read_dir(dir.join("files").join(sub))
            .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().ends_with("_semantic.png")).count())
            .unwrap_or(0)
    };
    assert_eq!((count("camera__image_raw"), count("camera__image_raw__compressed")), (7, 1));
    // Each topic's folder has its own run-wide evaluation files: a panoptic annotation per good frame, image ids
    // the frames' stamps (their names), COCO results of those frames only.
    for (sub, n) in [("camera__image_raw", 7), ("camera__image_raw__compressed", 1)] {
        let folder = dir.join("files").join(sub);
        let read = |name: &str| -> Value {
            let text = std::fs::read_to_string(folder.join(name)).unwrap_or_else(|e| panic!("{sub}/{name}: {e}"));
            serde_json::from_str(&text).expect("json")
        };
        let pan = read("panoptic.json");
        let anns = pan["annotations"].as_array().expect("annotations");
        assert_eq!(anns.len(), n, "{sub}");
        let ids: BTreeSet<i64> = anns.iter().filter_map(|a| a["image_id"].as_i64()).collect();
        for a in anns {
            let file = a["file_name"].as_str().expect("file_name");
            assert_eq!(file.trim_end_matches(".png").parse::<i64>().ok(), a["image_id"].as_i64(), "{a}");
            assert!(folder.join("panoptic").join(file).is_file(), "{sub}/panoptic/{file}");
        }
        for r in read("coco_results.json").as_array().expect("a list") {
            assert!(r["image_id"].as_i64().is_some_and(|i| ids.contains(&i)), "{r}");
        }
    }
    // No output for the malformed frames' stamps.
    let malformed =
        inputs.iter().filter(|r| r["topic"] == "/camera/image_raw").map(|r| stamp(&r["message"])).next_back();
    let semantic = &per_topic["/camera/dinoseg/semantic"];
    assert!(!semantic.contains_key(&malformed.expect("frames")), "the malformed frame must not be in the output");
}

#[test]
fn folders_and_image_files_run_to_files() {
    let dir = common::temp_dir("runner-folder");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).expect("mkdir");
    for (i, (w, h)) in [(50u32, 37u32), (64, 48)].into_iter().enumerate() {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 5) as u8, (y * 7) as u8, (i * 90) as u8]));
        img.save(images.join(format!("frame{i}.png"))).expect("save");
    }
    std::fs::write(images.join("broken.png"), b"not a png").expect("write");
    let params = params_file(&dir, "{semantic: true, semantic_color: true, instances: true, overlay: true}");
    let out = dir.join("out");
    let o = dinoseg(&[
        "run",
        "--params",
        params.to_str().expect("utf-8"),
        "--input",
        images.to_str().expect("utf-8"),
        "--output",
        out.to_str().expect("utf-8"),
    ]);
    let (stdout, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{stdout}\n{err}");
    assert!(err.contains("broken.png: unreadable image"), "{err}");
    assert!(stdout.contains("| image files | 3 | 2 | 1 |"), "{stdout}");
    for i in 0..2 {
        for suffix in ["semantic.png", "semantic_color.png", "overlay.png", "instance_ids.png", "instances.json"] {
            assert!(out.join(format!("frame{i}_{suffix}")).is_file(), "frame{i}_{suffix}");
        }
    }
    let sem = image::open(out.join("frame0_semantic.png")).expect("open").to_luma8();
    assert_eq!(sem.dimensions(), (50, 37));
    // The EoMT head's own semantic map, in its own folder as on its own topics.
    let scene = image::open(out.join("scene").join("frame0_semantic.png")).expect("open").to_luma8();
    assert_eq!(scene.dimensions(), (50, 37));
    assert_ne!(scene.as_raw(), sem.as_raw(), "the EoMT head's map is not the linear head's");
    assert!(out.join("scene").join("frame1_semantic_color.png").is_file());
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("frame0_instances.json")).expect("read")).expect("json");
    assert_eq!(json["width"], 50);
    // A glob over the same folder gives the same frames.
    let out2 = dir.join("out2");
    let pattern = images.join("frame*.png");
    let o = dinoseg(&[
        "run",
        "--params",
        params.to_str().expect("utf-8"),
        "--input",
        pattern.to_str().expect("utf-8"),
        "--output",
        out2.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out2.join("frame1_overlay.png").is_file());
}

#[test]
fn bad_parameters_and_inputs_are_clear_errors() {
    let dir = common::temp_dir("runner-errors");
    let params = dir.join("bad.yaml");
    std::fs::write(&params, "dinoseg:\n  ros__parameters:\n    precision: 16\n    heads: {}\n").expect("write");
    let o = dinoseg(&["run", "--params", params.to_str().expect("utf-8"), "--input", "x.png", "--output", "out"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("precision"), "{err}");
    let good = params_file(&dir, "{semantic: true}");
    let o =
        dinoseg(&["run", "--params", good.to_str().expect("utf-8"), "--input", "/no/such/thing", "--output", "out"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no such file, folder or pattern"), "{err}");
}

//! Post-processing: against tools/postprocess_reference.py (the same rules, dense float64: every label equal) and
//! transformers' EoMT image processor where the rules coincide (Mask2Former's: tests/postprocess_mask2former.rs);
//! the libtorch device paths against the CPU kernels; hand-made cases; labels; geometry.

mod common;

use common::postprocess_cases::{cases, differing, to_u16};
use dinoseg::pipeline::preprocess::{Letterbox, ResizePolicy};
use dinoseg::postprocess::resample::resample_to_input;
use dinoseg::postprocess::*;
use tch::{Kind, Tensor};

#[test]
fn semantic_matches_reference() {
    for case in cases() {
        let (cl, ml) = (case.get("class_logits"), case.get("mask_logits"));
        let maps = semantic_from_masks(&cl, &ml, &case.boxes(), &case.config()).expect("semantic");
        for (b, map) in maps.iter().enumerate() {
            let expected = case.get(&format!("semantic.{b}"));
            assert_eq!([map.height as i64, map.width as i64], expected.size().as_slice(), "{}: size", case.name);
            assert_eq!(differing(&map.to_u16_vec(), &to_u16(&expected)), 0, "{}[{b}]: semantic", case.name);
            assert_eq!(map.encoding(), if case.classes() > 255 { "mono16" } else { "mono8" });
        }
        if case.has("linear_logits") {
            let maps = semantic_from_logits(&case.get("linear_logits"), &case.boxes(), &case.config()).expect("linear");
            for (b, map) in maps.iter().enumerate() {
                let expected = to_u16(&case.get(&format!("linear.{b}")));
                assert_eq!(differing(&map.to_u16_vec(), &expected), 0, "{}[{b}]: linear semantic", case.name);
            }
        }
    }
}

#[test]
fn panoptic_matches_reference() {
    let mut segments_seen = 0;
    for case in cases() {
        let (cl, ml) = (case.get("class_logits"), case.get("mask_logits"));
        let maps = panoptic_from_masks(&cl, &ml, &case.boxes(), &case.labels(), &case.config()).expect("panoptic");
        for (b, map) in maps.iter().enumerate() {
            let expected = to_u16(&case.get(&format!("panoptic.{b}")));
            assert_eq!(differing(&map.ids, &expected), 0, "{}[{b}]: panoptic ids", case.name);
            let want = case.image(b)["segments"].as_array().expect("segments");
            assert_eq!(map.segments.len(), want.len(), "{}[{b}]: segment count", case.name);
            for (s, w) in map.segments.iter().zip(want) {
                assert_eq!(s.id, w["id"].as_u64().expect("id") as u32);
                assert_eq!(s.class_id, w["class_id"].as_u64().expect("class") as u32);
                assert_eq!(s.is_thing, w["is_thing"].as_bool().expect("is_thing"));
                assert_eq!(s.area, w["area"].as_u64().expect("area") as u32);
                assert!((f64::from(s.score) - w["score"].as_f64().expect("score")).abs() < 1e-6);
            }
            segments_seen += map.segments.len();
        }
    }
    assert!(segments_seen >= 10, "the fixtures should exercise panoptic segments, saw {segments_seen}");
}

#[test]
fn instances_match_reference() {
    for case in cases() {
        let (cl, ml) = (case.get("class_logits"), case.get("mask_logits"));
        let all = instances_from_masks(&cl, &ml, &case.boxes(), &case.labels(), &case.config()).expect("instances");
        for (b, found) in all.iter().enumerate() {
            let want = case.image(b)["instances"].as_array().expect("instances");
            assert_eq!(found.len(), want.len(), "{}[{b}]: instance count", case.name);
            for (j, (i, w)) in found.iter().zip(want).enumerate() {
                assert_eq!(i.id as usize, j + 1);
                assert_eq!(i.class_id, w["class_id"].as_u64().expect("class") as u32, "{}[{b}] #{j}", case.name);
                assert!((f64::from(i.score) - w["score"].as_f64().expect("score")).abs() < 1e-5);
                let bb = w["bbox"].as_array().expect("bbox").iter().map(|v| v.as_u64().expect("px") as u32);
                assert_eq!([i.bbox.x, i.bbox.y, i.bbox.width, i.bbox.height].to_vec(), bb.collect::<Vec<_>>());
                assert_eq!(i.area, w["area"].as_u64().expect("area") as u32);
                assert_eq!(i.is_thing, w["is_thing"].as_bool().expect("is_thing"));
                assert_eq!(i.class_name, format!("class_{}", i.class_id));
                let mask = Vec::<u8>::try_from(case.get(&format!("inst.{b}.{j}")).reshape([-1])).expect("mask");
                assert_eq!(i.mask.data, mask, "{}[{b}] #{j}: mask", case.name);
                assert_eq!(i.mask.data.iter().filter(|&&v| v == 255).count() as u32, i.area);
            }
        }
    }
}

#[test]
fn panoptic_and_instances_match_transformers() {
    for case in cases().into_iter().filter(|c| c.name.starts_with("hf")) {
        let (cl, ml, boxes, labels) = (case.get("class_logits"), case.get("mask_logits"), case.boxes(), case.labels());
        let cfg = case.config();
        let pan = panoptic_from_masks(&cl, &ml, &boxes, &labels, &cfg).expect("panoptic");
        let inst = instances_from_masks(&cl, &ml, &boxes, &labels, &cfg).expect("instances");
        for b in 0..boxes.len() {
            let hf = to_u16(&case.get(&format!("hf_panoptic.{b}")));
            assert_eq!(differing(&pan[b].ids, &hf), 0, "{}[{b}]: panoptic vs transformers", case.name);
            let hf_segments = case.image(b)["hf_segments"].as_array().expect("hf segments");
            let ours: Vec<(u32, u32)> = pan[b].segments.iter().map(|s| (s.id, s.class_id)).collect();
            let theirs: Vec<(u32, u32)> = hf_segments
                .iter()
                .map(|s| (s["id"].as_u64().expect("id") as u32, s["class_id"].as_u64().expect("c") as u32))
                .collect();
            assert_eq!(ours, theirs);
            let hf_inst = case.image(b)["hf_instances"].as_array().expect("hf instances");
            assert_eq!(inst[b].len(), hf_inst.len(), "{}[{b}]: instance count vs transformers", case.name);
            for (i, h) in inst[b].iter().zip(hf_inst) {
                assert_eq!(i.class_id as u64, h[0].as_u64().expect("class"));
                assert!((f64::from(i.score) - h[1].as_f64().expect("score")).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn semantic_matches_transformers_at_stride_1() {
    let case = cases().into_iter().find(|c| c.name == "hf_stride1").expect("hf_stride1 case");
    let maps = semantic_from_masks(&case.get("class_logits"), &case.get("mask_logits"), &case.boxes(), &case.config())
        .expect("semantic");
    let hf = to_u16(&case.get("hf_semantic.0"));
    // Same rule; only the class x query product's float32 rounding differs (near-ties).
    let n = differing(&maps[0].to_u16_vec(), &hf);
    eprintln!("stride 1: {n} of {} pixels differ from transformers", hf.len());
    assert!(n * 1000 <= hf.len(), "{n} of {} pixels differ from transformers", hf.len());
}

#[test]
fn device_resize_agrees_with_cpu_kernel() {
    let case = cases().into_iter().find(|c| c.name == "pad").expect("pad case");
    let (cl, ml, boxes) = (case.get("class_logits"), case.get("mask_logits"), case.boxes());
    let cpu = semantic_from_masks(&cl, &ml, &boxes, &case.config()).expect("cpu");
    let cfg = PostprocessConfig { dense_resize: DenseResize::Device, ..case.config() };
    let dev = semantic_from_masks(&cl, &ml, &boxes, &cfg).expect("device");
    for (a, b) in cpu.iter().zip(&dev) {
        let n = differing(&a.to_u16_vec(), &b.to_u16_vec());
        eprintln!("device path: {n} of {} pixels differ from the CPU kernel", a.to_u16_vec().len());
        assert!(n * 1000 <= a.to_u16_vec().len(), "{n} pixels differ between the device and CPU paths");
    }
}

/// The device path (libtorch float32, here on the CPU with `DenseResize::Device`) against the exact CPU kernel on
/// every reference case: ids equal on >= 99.9 % of the pixels, the same segments; one query per chunk (the running
/// max / argmax) gives the same result as one chunk.
#[test]
fn device_panoptic_agrees_with_cpu_kernel() {
    let (mut pixels, mut differ, mut segments) = (0, 0, 0);
    for case in cases() {
        let (cl, ml, boxes, labels) = (case.get("class_logits"), case.get("mask_logits"), case.boxes(), case.labels());
        let cpu = panoptic_from_masks(&cl, &ml, &boxes, &labels, &case.config()).expect("cpu");
        let cfg = PostprocessConfig { dense_resize: DenseResize::Device, ..case.config() };
        let dev = panoptic_from_masks(&cl, &ml, &boxes, &labels, &cfg).expect("device");
        let chunked = device::panoptic_on_device(&cl, &ml, &boxes, &labels, &case.config(), 1).expect("chunked");
        assert_eq!(dev, chunked, "{}: one query per chunk differs from one chunk", case.name);
        for (b, (c, d)) in cpu.iter().zip(&dev).enumerate() {
            let n = differing(&c.ids, &d.ids);
            assert!(n * 1000 <= c.ids.len(), "{}[{b}]: {n} of {} ids differ", case.name, c.ids.len());
            let key = |m: &PanopticMap| m.segments.iter().map(|s| (s.id, s.class_id, s.is_thing)).collect::<Vec<_>>();
            assert_eq!(key(c), key(d), "{}[{b}]: segments", case.name);
            for (s, t) in c.segments.iter().zip(&d.segments) {
                assert!(s.area.abs_diff(t.area) as usize <= n, "{}[{b}]: areas {} vs {}", case.name, s.area, t.area);
                assert_eq!(s.score, t.score);
            }
            (pixels, differ, segments) = (pixels + c.ids.len(), differ + n, segments + c.segments.len());
        }
    }
    eprintln!("device panoptic: {differ} of {pixels} ids differ from the CPU kernel; {segments} segments agree");
}

/// As above for instances: the same classes and boxes, scores within 1e-4, masks equal but for near-ties.
#[test]
fn device_instances_agree_with_cpu_kernel() {
    let (mut found, mut mask_px, mut differ, mut worst) = (0, 0, 0, 0f32);
    for case in cases() {
        let (cl, ml, boxes, labels) = (case.get("class_logits"), case.get("mask_logits"), case.boxes(), case.labels());
        let cpu = instances_from_masks(&cl, &ml, &boxes, &labels, &case.config()).expect("cpu");
        let cfg = PostprocessConfig { dense_resize: DenseResize::Device, ..case.config() };
        let dev = instances_from_masks(&cl, &ml, &boxes, &labels, &cfg).expect("device");
        let chunked = device::instances_on_device(&cl, &ml, &boxes, &labels, &case.config(), 1).expect("chunked");
        assert_eq!(dev, chunked, "{}: one query per chunk differs from one chunk", case.name);
        for (b, (c, d)) in cpu.iter().zip(&dev).enumerate() {
            assert_eq!(c.len(), d.len(), "{}[{b}]: instance count", case.name);
            for (i, j) in c.iter().zip(d) {
                assert_eq!(
                    (i.id, i.class_id, i.bbox, i.is_thing),
                    (j.id, j.class_id, j.bbox, j.is_thing),
                    "{}[{b}]",
                    case.name
                );
                assert!((i.score - j.score).abs() < 1e-4, "{}[{b}]: scores {} vs {}", case.name, i.score, j.score);
                let n = i.mask.data.iter().zip(&j.mask.data).filter(|(x, y)| x != y).count();
                assert!(n * 1000 <= i.mask.data.len().max(1000), "{}[{b}]: {n} mask pixels differ", case.name);
                assert_eq!(j.mask.data.iter().filter(|&&v| v == 255).count() as u32, j.area);
                (mask_px, differ, worst) =
                    (mask_px + i.mask.data.len(), differ + n, worst.max((i.score - j.score).abs()));
            }
            found += c.len();
        }
    }
    eprintln!("device instances: {found} agree; {differ} of {mask_px} mask pixels differ; max score diff {worst:e}");
}

#[test]
fn panoptic_outputs_give_semantic_and_instances() {
    let case = cases().into_iter().find(|c| c.name == "pad").expect("pad case");
    let (cl, ml, boxes, labels) = (case.get("class_logits"), case.get("mask_logits"), case.boxes(), case.labels());
    let frames = postprocess_masks(&cl, &ml, &boxes, &labels, &case.config(), MaskOutputs::panoptic()).expect("run");
    for f in &frames {
        let (pan, sem) = (f.panoptic.as_ref().expect("panoptic"), f.semantic.as_ref().expect("semantic"));
        assert_eq!(f.class_names.len(), case.classes());
        for (i, &id) in pan.ids.iter().enumerate() {
            let (y, x) = ((i / pan.width as usize) as u32, (i % pan.width as usize) as u32);
            let want = if id == 0 { 255 } else { pan.segments[id as usize - 1].class_id as u16 };
            assert_eq!(sem.get(y, x), want);
        }
        let things: Vec<_> = pan.segments.iter().filter(|s| s.is_thing).collect();
        assert_eq!(f.instances.len(), things.len());
        for (inst, seg) in f.instances.iter().zip(things) {
            assert_eq!((inst.class_id, inst.area, inst.score), (seg.class_id, seg.area, seg.score));
            let b = inst.bbox;
            for y in 0..b.height {
                for x in 0..b.width {
                    let id = pan.ids[((b.y + y) * pan.width + b.x + x) as usize];
                    assert_eq!(inst.mask.get(y, x), u32::from(id) == seg.id);
                }
            }
        }
    }
}

// ---- hand-made cases ----

/// Class logits [1, Q, K + 1] with query q predicting class `c` with logit `v` (others 0).
fn class_logits(k: i64, rows: &[(i64, f64)]) -> Tensor {
    let t = Tensor::zeros([1, rows.len() as i64, k + 1], (Kind::Float, tch::Device::Cpu));
    for (q, &(c, v)) in rows.iter().enumerate() {
        let _ = t.get(0).get(q as i64).get(c).fill_(v);
    }
    t
}

fn keep(h: u32, w: u32) -> Letterbox {
    ResizePolicy::keep().plan(h, w).expect("plan")
}

#[test]
fn no_object_gives_nothing() {
    let (k, q) = (5, 4);
    let cl = class_logits(k, &vec![(k, 10.0); q]);
    let ml = Tensor::full([1, q as i64, 8, 8], 5.0, (Kind::Float, tch::Device::Cpu));
    let (labels, cfg) = (Labels::generic(5), PostprocessConfig::default());
    let f = postprocess_masks(&cl, &ml, &[keep(32, 32)], &labels, &cfg, MaskOutputs::panoptic()).expect("run");
    let pan = f[0].panoptic.as_ref().expect("panoptic");
    assert!(pan.segments.is_empty() && pan.ids.iter().all(|&v| v == 0));
    assert!(f[0].instances.is_empty());
    assert!(f[0].semantic.as_ref().expect("semantic").to_u16_vec().iter().all(|&v| v == 255));
    let inst = instances_from_masks(&cl, &ml, &[keep(32, 32)], &labels, &cfg).expect("instances");
    assert!(inst[0].is_empty());
}

#[test]
fn overlapping_masks_follow_the_overlap_rule() {
    // Query 0 (class 1, p ~ 0.99) covers the left half; query 1 (class 2, p ~ 0.97) the whole image.
    let cl = class_logits(3, &[(1, 12.0), (2, 10.0)]);
    let ml = Tensor::full([1, 2, 8, 8], 10.0, (Kind::Float, tch::Device::Cpu));
    let _ = ml.get(0).get(0).narrow(1, 4, 4).fill_(-10.0);
    let labels = Labels::generic(3);
    let lb = [keep(32, 32)];
    let pan = panoptic_from_masks(&cl, &ml, &lb, &labels, &PostprocessConfig::default()).expect("panoptic");
    // Query 1 wins only ~half of its own mask: 0.5 <= 0.8, so it is dropped; its pixels become void.
    assert_eq!(pan[0].segments.iter().map(|s| s.class_id).collect::<Vec<_>>(), vec![1]);
    assert!(pan[0].ids.iter().filter(|&&v| v == 0).count() > 400);
    let lenient = PostprocessConfig { overlap_threshold: 0.4, ..Default::default() };
    let pan = panoptic_from_masks(&cl, &ml, &lb, &labels, &lenient).expect("panoptic");
    assert_eq!(pan[0].segments.iter().map(|s| s.class_id).collect::<Vec<_>>(), vec![1, 2]);
    assert!(pan[0].ids.iter().all(|&v| v != 0), "every pixel belongs to a segment");
    // Instances may overlap: both are kept, the whole-image one with the full 32x32 box.
    let inst = instances_from_masks(&cl, &ml, &lb, &labels, &PostprocessConfig::default()).expect("instances");
    let mut classes: Vec<_> = inst[0].iter().map(|i| (i.class_id, i.bbox.width, i.bbox.height)).collect();
    classes.sort();
    assert_eq!(classes[1], (2, 32, 32));
    assert_eq!(classes[0].0, 1);
}

#[test]
fn stuff_queries_merge_and_empty_classes_vanish() {
    // Two stuff queries of class 0 on the top and bottom halves; class 1 (a thing) predicted with an empty mask.
    let cl = class_logits(2, &[(0, 12.0), (0, 12.0), (1, 12.0)]);
    let ml = Tensor::full([1, 3, 8, 8], -10.0, (Kind::Float, tch::Device::Cpu));
    let _ = ml.get(0).get(0).narrow(0, 0, 4).fill_(10.0);
    let _ = ml.get(0).get(1).narrow(0, 4, 4).fill_(10.0);
    let labels = Labels::generic(2).with_stuff([0]);
    let pan = panoptic_from_masks(&cl, &ml, &[keep(32, 32)], &labels, &Default::default()).expect("panoptic");
    assert_eq!(pan[0].segments.len(), 1);
    assert_eq!((pan[0].segments[0].class_id, pan[0].segments[0].is_thing, pan[0].segments[0].area), (0, false, 1024));
    let sem = semantic_from_masks(&cl, &ml, &[keep(32, 32)], &Default::default()).expect("semantic");
    assert!(sem[0].to_u16_vec().iter().all(|&v| v == 0), "class 1 has no pixels");
    let inst = instances_from_masks(&cl, &ml, &[keep(32, 32)], &labels, &Default::default()).expect("instances");
    assert!(inst[0].iter().all(|i| i.class_id == 0), "the empty mask gives no instance");
}

#[test]
fn padding_never_leaks_and_sizes_follow_the_camera() {
    // 37 x 53 pads to 48 x 64: masks 12 x 16, of which rows >= 10 and columns >= 14 are padding only.
    let lb = keep(37, 53);
    assert_eq!((lb.padded_h, lb.padded_w), (48, 64));
    let cl = class_logits(2, &[(0, 12.0), (1, 12.0)]);
    let ml = Tensor::full([1, 2, 12, 16], -20.0, (Kind::Float, tch::Device::Cpu));
    let _ = ml.get(0).get(0).fill_(0.5);
    let _ = ml.get(0).get(1).narrow(0, 10, 2).fill_(20.0);
    let _ = ml.get(0).get(1).narrow(1, 14, 2).fill_(20.0);
    let cfg = PostprocessConfig { query_threshold: 0.5, score_threshold: 0.5, ..Default::default() };
    let labels = Labels::generic(2);
    let f = postprocess_masks(&cl, &ml, &[lb], &labels, &cfg, MaskOutputs::panoptic()).expect("run");
    let sem = semantic_from_masks(&cl, &ml, &[lb], &cfg).expect("semantic");
    assert_eq!((sem[0].height, sem[0].width), (37, 53));
    assert!(sem[0].to_u16_vec().iter().all(|&v| v == 0), "the padding-only class leaked");
    let pan = f[0].panoptic.as_ref().expect("panoptic");
    assert_eq!((pan.height, pan.width, pan.ids.len()), (37, 53, 37 * 53));
    assert_eq!(pan.segments.iter().map(|s| s.class_id).collect::<Vec<_>>(), vec![0]);
    let inst = instances_from_masks(&cl, &ml, &[lb], &labels, &cfg).expect("instances");
    assert!(inst[0].iter().all(|i| i.class_id == 0 && i.bbox.x + i.bbox.width <= 53 && i.bbox.y + i.bbox.height <= 37));
}

#[test]
fn label_maps_are_mono8_up_to_255_classes() {
    for (k, enc, void) in
        [(150i64, "mono8", 255u16), (255, "mono8", 255), (256, "mono16", 65535), (300, "mono16", 65535)]
    {
        let cl = class_logits(k, &[(k - 1, 12.0)]);
        let ml = Tensor::full([1, 1, 4, 4], 5.0, (Kind::Float, tch::Device::Cpu));
        let sem = semantic_from_masks(&cl, &ml, &[keep(16, 16)], &Default::default()).expect("semantic");
        assert_eq!((sem[0].encoding(), sem[0].get(3, 3), sem[0].unlabelled()), (enc, (k - 1) as u16, void));
        assert_eq!(LabelMap::unlabelled_for(k as usize), void);
    }
}

#[test]
fn bad_inputs_are_errors() {
    let cl = class_logits(3, &[(0, 1.0)]);
    let ml = Tensor::zeros([1, 1, 4, 4], (Kind::Float, tch::Device::Cpu));
    let cfg = PostprocessConfig::default();
    let e = semantic_from_masks(&cl, &ml, &[], &cfg).expect_err("no letterbox");
    assert!(e.to_string().contains("1 images in the batch but 0 letterboxes"), "{e}");
    let bad = Tensor::zeros([1, 2, 4, 4], (Kind::Float, tch::Device::Cpu));
    assert!(semantic_from_masks(&cl, &bad, &[keep(16, 16)], &cfg).is_err());
    assert!(semantic_from_logits(&bad.get(0), &[keep(16, 16)], &cfg).is_err());
    let bad_cfg = PostprocessConfig { mask_threshold: 1.0, ..cfg };
    assert!(panoptic_from_masks(&cl, &ml, &[keep(16, 16)], &Labels::generic(3), &bad_cfg).is_err());
    let e: dinoseg::Error = semantic_from_masks(&cl, &ml, &[], &cfg).expect_err("err").into();
    assert!(e.to_string().contains("letterboxes"));
}

// ---- labels ----

#[test]
fn labels_from_id2label() {
    let dir = common::temp_dir("postprocess-labels-json");
    let path = dir.join("config.json");
    std::fs::write(&path, r#"{"model_type": "eomt_dinov3", "id2label": {"0": "person", "2": "car"}}"#).expect("write");
    let labels = Labels::from_config_json(&dir).expect("labels");
    assert_eq!(labels.names(), ["person", "class_1", "car"]);
    assert_eq!((labels.name(7), labels.is_thing(2)), ("class_7".to_string(), true));
    std::fs::write(&path, r#"{"id2label": {"x": "person"}}"#).expect("write");
    let e = Labels::from_config_json(&path).expect_err("bad key").to_string();
    assert!(e.contains("config.json") && e.contains("`x`"), "{e}");
}

#[test]
fn labels_file_parsing_and_errors() {
    let dir = common::temp_dir("postprocess-labels-file");
    let path = dir.join("labels.txt");
    std::fs::write(&path, "# COCO-ish\nperson\n\ntraffic light [thing]\n5: sky [stuff]\nwall: brick [stuff]\n")
        .expect("w");
    let labels = Labels::from_file(&path).expect("labels");
    assert_eq!(labels.names(), ["person", "traffic light", "class_2", "class_3", "class_4", "sky", "wall: brick"]);
    assert_eq!(labels.stuff_ids(), vec![5, 6]);
    for (text, needle) in [
        ("a\nb\n1: c\n", "labels.txt:3: duplicate class id 1 (first defined on line 2)"),
        ("a\n  \nb [animal]\n", "labels.txt:3: unknown marker `[animal]`"),
        ("a\n4: [stuff]\n", "labels.txt:2: empty class name"),
        ("70000: far\n", "labels.txt:1: class id 70000 is above 65534"),
    ] {
        std::fs::write(&path, text).expect("write");
        let e = Labels::from_file(&path).expect_err(text).to_string();
        assert!(e.contains(needle), "{e}");
    }
    let e = Labels::from_file(&dir.join("missing.txt")).expect_err("missing").to_string();
    assert!(e.contains("missing.txt"), "{e}");
}

// ---- geometry ----

/// transformers' two steps: up-sample to the padded input, crop the resized image, resize to the input.
fn two_steps(map: &Tensor, lb: &Letterbox) -> Tensor {
    let up = map.unsqueeze(0).upsample_bilinear2d([lb.padded_h as i64, lb.padded_w as i64], false, None, None);
    let crop = up.narrow(2, 0, lb.resized_h as i64).narrow(3, 0, lb.resized_w as i64);
    crop.upsample_bilinear2d([lb.input_h as i64, lb.input_w as i64], false, None, None).squeeze_dim(0)
}

#[test]
fn single_step_matches_two_steps() {
    tch::manual_seed(7);
    // 37 rows end inside a stride-4 cell: no padded cell is ever read, both agree everywhere. 36 rows end on a
    // cell border: transformers blends the first padded cell into the last 2 rows (columns likewise).
    for ((h, w), edge) in [((37u32, 53u32), 0i64), ((36, 52), 2)] {
        let lb = keep(h, w);
        let map = Tensor::randn([3, lb.padded_h as i64 / 4, lb.padded_w as i64 / 4], (Kind::Float, tch::Device::Cpu));
        let ours = resample_to_input(&map, &lb).expect("resample");
        let theirs = two_steps(&map, &lb).to_kind(Kind::Double);
        let (ih, iw) = (h as i64 - edge, w as i64 - edge);
        let inner = |t: &Tensor| t.narrow(1, 0, ih).narrow(2, 0, iw);
        assert!(common::max_abs_diff(&inner(&ours), &inner(&theirs)) < 1e-5, "{h}x{w}");
        if edge > 0 {
            assert!(common::max_abs_diff(&ours, &theirs) > 1e-3, "{h}x{w}: the padded cell should show in two steps");
        }
    }
    // With a resize, two steps interpolate an interpolation: close on smooth maps (logits are), not equal.
    let lb = ResizePolicy::short_side(64).plan(45, 70).expect("plan");
    let (h, w) = (lb.padded_h as i64 / 4, lb.padded_w as i64 / 4);
    let noise = Tensor::randn([1, 3, 4, 7], (Kind::Float, tch::Device::Cpu)) * 10.0;
    let map = noise.upsample_bilinear2d([h, w], false, None, None).squeeze_dim(0);
    let (ours, theirs) = (resample_to_input(&map, &lb).expect("resample"), two_steps(&map, &lb));
    // The last column reads the first padded cell in two steps (99 of 112 columns: 24.75 cells valid).
    let inner = |t: &Tensor| t.narrow(2, 0, 69);
    let diff = common::max_abs_diff(&inner(&ours), &inner(&theirs));
    eprintln!("resize 45x70 <- 64x99: max |single - two steps| = {diff:.3} (smooth map, std 10)");
    assert!(diff < 0.6, "{diff}");
}

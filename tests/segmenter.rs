//! Several heads, one backbone pass: linear heads on one backbone share a single forward; a linear head on the
//! EoMT encoder reads its features from the EoMT pass. Results equal those of each head run on its own.

mod common;

use dinoseg::pipeline::preprocess::ResizePolicy;
use dinoseg::pipeline::RgbImage;
use dinoseg::plan::Pass;
use dinoseg::postprocess::{MaskOutputs, PostprocessConfig};
use dinoseg::segmenter::{
    EomtSpec, HeadSpec, LinearHeadSource, LinearHeadSpec, Mask2FormerSpec, Segmenter, SegmenterConfig,
};
use dinoseg::topics::Output;
use tch::{Device, Kind};

fn frame(h: u32, w: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = (x * 7 + y * 13 + seed * 31) % 255;
        image::Rgb([v as u8, ((x * 3 + seed) % 255) as u8, ((y * 5) % 255) as u8])
    })
}

fn config() -> SegmenterConfig {
    SegmenterConfig {
        device: Device::Cpu,
        kind: Kind::Float,
        resize: ResizePolicy::default(),
        postprocess: PostprocessConfig::default(),
        backbone: None,
        variant: None,
        heads: Vec::new(),
        semantic_from: None,
        outputs: Output::ALL.into_iter().collect(),
    }
}

fn head(name: &str, source: LinearHeadSource) -> HeadSpec {
    let checkpoint = common::eomt_fixtures().join(format!("{name}.safetensors"));
    HeadSpec::linear(name, LinearHeadSpec { checkpoint, source, labels: None })
}

fn eomt_head(spec: EomtSpec) -> HeadSpec {
    HeadSpec::eomt("eomt", spec)
}

#[test]
fn linear_heads_on_one_backbone_share_one_pass() {
    let backbone = common::fixtures().join("vit_mlp").to_str().expect("utf-8").to_string();
    let both = Segmenter::new(SegmenterConfig {
        backbone: Some(backbone.clone()),
        heads: vec![head("vit_linear_a", LinearHeadSource::Backbone), head("vit_linear_b", LinearHeadSource::Backbone)],
        ..config()
    })
    .expect("segmenter");
    let alone = Segmenter::new(SegmenterConfig {
        backbone: Some(backbone),
        heads: vec![head("vit_linear_a", LinearHeadSource::Backbone)],
        ..config()
    })
    .expect("segmenter");
    let img = frame(50, 70, 1);
    let a = both.segment(&[&img]).expect("segment");
    assert_eq!(both.backbone_passes(), 1, "two heads, one frame: one backbone pass");
    let b = alone.segment(&[&img]).expect("segment");
    let (sa, sb) = (a[0].semantic.as_ref().expect("semantic"), b[0].semantic.as_ref().expect("semantic"));
    assert_eq!((sa.width, sa.height), (70, 50));
    assert_eq!(sa.to_u16_vec(), sb.to_u16_vec());
    assert_eq!(a[0].class_names, vec!["c0", "c1", "c2"]);
}

#[test]
fn a_linear_head_beside_eomt_reads_the_eomt_pass() {
    let eomt = common::eomt_fixtures().join("eomt_p0").to_str().expect("utf-8").to_string();
    let spec = EomtSpec { model: eomt, outputs: MaskOutputs::panoptic(), labels: None };
    let seg = Segmenter::new(SegmenterConfig {
        heads: vec![eomt_head(spec.clone()), head("eomt_linear_dense4", LinearHeadSource::Masks)],
        ..config()
    })
    .expect("segmenter");
    let only_eomt = Segmenter::new(SegmenterConfig { heads: vec![eomt_head(spec)], ..config() }).expect("segmenter");
    let imgs = [frame(48, 80, 2), frame(48, 80, 3)];
    let refs: Vec<&RgbImage> = imgs.iter().collect();
    let out = seg.segment(&refs).expect("segment");
    assert_eq!(seg.backbone_passes(), 1, "EoMT and the linear head: one pass for the batch");
    let alone = only_eomt.segment(&refs).expect("segment");
    for (f, g) in out.iter().zip(&alone) {
        // Instances come from EoMT unchanged; the semantic map from the linear head (3 classes).
        assert_eq!(f.instances.len(), g.instances.len());
        for (i, j) in f.instances.iter().zip(&g.instances) {
            assert_eq!((i.class_id, i.bbox, i.score), (j.class_id, j.bbox, j.score));
        }
        let s = f.semantic.as_ref().expect("semantic");
        assert_eq!((s.width, s.height), (80, 48));
        assert!(s.to_u16_vec().iter().all(|&v| v < 3), "labels of the linear head's 3 classes");
        assert_eq!(f.class_names, vec!["c0", "c1", "c2"]);
    }
}

/// A Mask2Former head runs as EoMT does: its raw outputs through the shared post-processing (the frames equal
/// `postprocess_masks` on the model's own forward), and a linear head with `source: mask2former` reads the same
/// pass (one forward per batch).
#[test]
fn a_mask2former_head_runs_like_eomt_and_shares_its_pass() {
    use dinoseg::pipeline::preprocess::preprocess_batch;
    use dinoseg::postprocess::{postprocess_masks, Labels};
    let dir = common::m2f_fixtures().join("m2f_vit");
    let spec = Mask2FormerSpec {
        model: dir.to_str().expect("utf-8").to_string(),
        outputs: MaskOutputs::panoptic(),
        labels: None,
        options: Default::default(),
    };
    let m2f = HeadSpec::mask2former("objects", spec.clone());
    let seg = Segmenter::new(SegmenterConfig {
        heads: vec![m2f.clone(), head("vit_linear_a", LinearHeadSource::Masks)],
        semantic_from: Some("objects".into()),
        ..config()
    })
    .expect("segmenter");
    assert_eq!(seg.plan().passes(), &[(Pass::Masks, vec![0, 1])]);
    let imgs = [frame(90, 150, 4), frame(90, 150, 5)];
    let refs: Vec<&RgbImage> = imgs.iter().collect();
    let out = seg.segment(&refs).expect("segment");
    assert_eq!(seg.passes(Pass::Masks), 1, "Mask2Former and the linear head: one pass for the batch");
    // The same frames from the model's forward and the post-processing directly.
    let (model, norm) =
        dinoseg::checkpoint::load_mask2former(&spec.model, &spec.options, Device::Cpu, Kind::Float).expect("load");
    let policy = ResizePolicy::default().with_multiple(16);
    let (pixels, boxes) = preprocess_batch(&refs, &policy, &norm, Device::Cpu, Kind::Float).expect("preprocess");
    let (raw, _) = model.model.forward(&pixels).expect("forward");
    let labels = Labels::from_names(model.model.class_names());
    let direct = postprocess_masks(
        &raw.class_queries_logits,
        &raw.masks_queries_logits,
        &boxes,
        &labels,
        &PostprocessConfig::default(),
        MaskOutputs::panoptic(),
    )
    .expect("postprocess");
    for (f, g) in out.iter().zip(&direct) {
        assert_eq!(f.panoptic, g.panoptic);
        assert_eq!(f.semantic.as_ref().map(|s| s.to_u16_vec()), g.semantic.as_ref().map(|s| s.to_u16_vec()));
        assert_eq!(f.instances.len(), g.instances.len());
        for (i, j) in f.instances.iter().zip(&g.instances) {
            assert_eq!((i.class_id, i.bbox, i.score), (j.class_id, j.bbox, j.score));
        }
        assert_eq!(f.class_names, vec!["person", "car", "road", "sky", "tree"]);
        assert_eq!(f.heads.len(), 1, "the linear head's map on its own topics");
        let s = &f.heads[0].semantic;
        assert_eq!((s.width, s.height), (150, 90));
    }
    // The kind is checked: `type: eomt` on a Mask2Former directory is refused with the fix.
    let wrong = EomtSpec { model: spec.model.clone(), outputs: MaskOutputs::panoptic(), labels: None };
    let e = Segmenter::new(SegmenterConfig { heads: vec![eomt_head(wrong)], ..config() }).err().expect("refused");
    assert!(e.to_string().contains("declare it with `type: mask2former`"), "{e}");
}

#[test]
fn heads_that_do_not_fit_are_refused() {
    let eomt = common::eomt_fixtures().join("eomt_p0").to_str().expect("utf-8").to_string();
    // A head of 64 channels declared as reading 4 layers of a width-64 encoder (256 channels).
    let r = Segmenter::new(SegmenterConfig {
        heads: vec![
            eomt_head(EomtSpec { model: eomt, outputs: MaskOutputs::panoptic(), labels: None }),
            head("vit_linear_a", LinearHeadSource::Masks),
        ],
        ..config()
    });
    assert!(r.is_ok(), "a `last` head of 64 channels fits a width-64 encoder");
    let r = Segmenter::new(SegmenterConfig { heads: vec![head("vit_linear_a", LinearHeadSource::Masks)], ..config() });
    let e = r.err().expect("no EoMT model").to_string();
    assert!(e.contains("no mask model is configured"), "{e}");
    let r = Segmenter::new(SegmenterConfig {
        backbone: Some(common::fixtures().join("vit_mlp").to_str().expect("utf-8").to_string()),
        heads: vec![head("eomt_linear_dense4", LinearHeadSource::Backbone)],
        ..config()
    });
    let e = r.err().expect("channel mismatch").to_string();
    assert!(e.contains("needs 4 dense layers"), "{e}");
    let e = Segmenter::new(config()).err().expect("nothing configured").to_string();
    assert!(e.contains("no head configured"), "{e}");
}

#[test]
fn stuff_classes_are_not_instances() {
    use dinoseg::postprocess::Labels;
    let eomt = common::eomt_fixtures().join("eomt_p0").to_str().expect("utf-8").to_string();
    let names: Vec<String> = ["person", "car", "road", "sky", "tree"].iter().map(|s| s.to_string()).collect();
    let low = PostprocessConfig { score_threshold: 0.0, query_threshold: 0.0, ..PostprocessConfig::default() };
    let seg = |labels: Labels| {
        let spec = EomtSpec { model: eomt.clone(), outputs: MaskOutputs::instances(), labels: Some(labels) };
        let s = Segmenter::new(SegmenterConfig { heads: vec![eomt_head(spec)], postprocess: low, ..config() })
            .expect("segmenter");
        s.segment(&[&frame(48, 80, 5)]).expect("segment").remove(0)
    };
    let all_things = seg(Labels::from_names(names.clone()));
    assert!(!all_things.instances.is_empty(), "with thresholds at 0 every query gives an instance");
    let stuff = seg(Labels::from_names(names).with_stuff([2, 3, 4]));
    assert!(stuff.instances.iter().all(|i| i.class_id < 2 && i.is_thing));
    for (k, i) in stuff.instances.iter().enumerate() {
        assert_eq!(i.id, k as u32 + 1, "ids stay the 1-based index into the list");
    }
    let things = all_things.instances.iter().filter(|i| i.class_id < 2).count();
    assert_eq!(stuff.instances.len(), things);
}

fn vit_backbone() -> String {
    common::fixtures().join("vit_mlp").to_str().expect("utf-8").to_string()
}

fn eomt_spec() -> EomtSpec {
    let model = common::eomt_fixtures().join("eomt_p0").to_str().expect("utf-8").to_string();
    EomtSpec { model, outputs: MaskOutputs::panoptic(), labels: None }
}

fn labels_of(f: &dinoseg::postprocess::FrameSegmentation) -> Vec<u16> {
    f.semantic.as_ref().expect("semantic").to_u16_vec()
}

/// Two linear heads (one on the backbone, one on the EoMT encoder) and EoMT: each head's result is in the frame,
/// the main map is the named head's, and each encoder runs once per batch.
#[test]
fn every_head_gives_its_own_result_and_each_encoder_runs_once() {
    let imgs = [frame(48, 80, 7), frame(48, 80, 8)];
    let refs: Vec<&RgbImage> = imgs.iter().collect();
    let all = |semantic_from: Option<&str>| {
        Segmenter::new(SegmenterConfig {
            backbone: Some(vit_backbone()),
            heads: vec![
                eomt_head(eomt_spec()),
                head("eomt_linear_dense4", LinearHeadSource::Masks),
                head("vit_linear_a", LinearHeadSource::Backbone),
            ],
            semantic_from: semantic_from.map(String::from),
            ..config()
        })
        .expect("segmenter")
    };
    // Each head alone.
    let alone_backbone = Segmenter::new(SegmenterConfig {
        backbone: Some(vit_backbone()),
        heads: vec![head("vit_linear_a", LinearHeadSource::Backbone)],
        ..config()
    })
    .expect("segmenter")
    .segment(&refs)
    .expect("segment");
    let alone_eomt_linear = Segmenter::new(SegmenterConfig {
        heads: vec![eomt_head(eomt_spec()), head("eomt_linear_dense4", LinearHeadSource::Masks)],
        ..config()
    })
    .expect("segmenter")
    .segment(&refs)
    .expect("segment");
    let alone_eomt =
        Segmenter::new(SegmenterConfig { heads: vec![eomt_head(eomt_spec())], ..config() }).expect("segmenter");
    let alone_eomt = alone_eomt.segment(&refs).expect("segment");

    let seg = all(Some("vit_linear_a"));
    let out = seg.segment(&refs).expect("segment");
    assert_eq!((seg.passes(Pass::Backbone), seg.passes(Pass::Masks)), (1, 1), "one pass of each encoder per batch");
    seg.segment(&refs).expect("segment");
    assert_eq!((seg.passes(Pass::Backbone), seg.passes(Pass::Masks)), (2, 2));
    for (k, f) in out.iter().enumerate() {
        assert_eq!(labels_of(f), labels_of(&alone_backbone[k]), "the main map is the named head's");
        assert_eq!(f.class_names, alone_backbone[k].class_names);
        let names: Vec<&str> = f.heads.iter().map(|h| h.head.as_str()).collect();
        assert_eq!(names, vec!["eomt", "eomt_linear_dense4"], "every other head's map, in configuration order");
        assert_eq!(f.heads[0].semantic.to_u16_vec(), labels_of(&alone_eomt[k]));
        assert_eq!(f.heads[0].class_names, alone_eomt[k].class_names);
        assert_eq!(f.heads[1].semantic.to_u16_vec(), labels_of(&alone_eomt_linear[k]));
        assert_eq!(f.instances.len(), alone_eomt[k].instances.len(), "instances from EoMT");
        assert_eq!(f.panoptic, alone_eomt[k].panoptic);
    }
    // Each head's result is published on its own streams: what the node and the bag writer send for the frame.
    let encoder = dinoseg::publish::Encoder {
        enabled: Output::ALL.into_iter().collect(),
        color: &|c: u16| [c as u8, 0, 0],
        threshold: 0.5,
        overlay_alpha: 0.5,
        instances_available: seg.produces_instances(),
    };
    let header = dinoseg::messages::Header::default();
    let streams: Vec<String> =
        encoder.encode(&header, imgs[0].as_raw(), 48, 80, &out[0]).iter().map(|(s, _)| s.name()).collect();
    for want in [
        "semantic",
        "instances",
        "label_info",
        "eomt/semantic",
        "eomt/semantic_color",
        "eomt/label_info",
        "eomt_linear_dense4/semantic",
        "eomt_linear_dense4/semantic_color",
        "eomt_linear_dense4/label_info",
    ] {
        assert!(streams.iter().any(|s| s == want), "no {want} in {streams:?}");
    }
    assert!(!streams.iter().any(|s| s.starts_with("vit_linear_a/")), "the main head has no streams of its own");
    // The default main head is the first linear head in configuration (name) order, whatever pass it reads.
    let seg = all(None);
    let out = seg.segment(&refs).expect("segment");
    assert_eq!(labels_of(&out[0]), labels_of(&alone_eomt_linear[0]));
    let names: Vec<&str> = out[0].heads.iter().map(|h| h.head.as_str()).collect();
    assert_eq!(names, vec!["eomt", "vit_linear_a"]);
    // EoMT named: its own panoptic semantic map is the main one.
    let seg = all(Some("eomt"));
    let out = seg.segment(&refs).expect("segment");
    assert_eq!(labels_of(&out[1]), labels_of(&alone_eomt[1]));
    assert_eq!(out[1].heads.len(), 2);
}

#[test]
fn unused_heads_and_mixed_normalisation_are_refused() {
    // A second semantic head while its own outputs are off: computed for nothing.
    let e = Segmenter::new(SegmenterConfig {
        backbone: Some(vit_backbone()),
        heads: vec![head("vit_linear_a", LinearHeadSource::Backbone), head("vit_linear_b", LinearHeadSource::Backbone)],
        outputs: [Output::Overlay, Output::LabelInfo].into_iter().collect(),
        ..config()
    })
    .err()
    .expect("unused head")
    .to_string();
    assert!(e.contains("heads.vit_linear_b: its results go nowhere"), "{e}");
    let e = Segmenter::new(SegmenterConfig {
        heads: vec![eomt_head(eomt_spec())],
        semantic_from: Some("nope".into()),
        ..config()
    })
    .err()
    .expect("unknown semantic_from")
    .to_string();
    assert!(
        e.contains("outputs.semantic_from: `nope` is not a configured head; heads with a semantic map: eomt"),
        "{e}"
    );
    // A backbone normalising with other statistics than the EoMT model: one preprocessing cannot serve both.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("segmenter_norm_backbone");
    std::fs::create_dir_all(&dir).expect("dir");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(common::fixtures().join("vit_mlp").join(f), dir.join(f)).expect("copy");
    }
    std::fs::write(
        dir.join("preprocessor_config.json"),
        r#"{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}"#,
    )
    .expect("write");
    let e = Segmenter::new(SegmenterConfig {
        backbone: Some(dir.to_str().expect("utf-8").to_string()),
        heads: vec![eomt_head(eomt_spec()), head("vit_linear_a", LinearHeadSource::Backbone)],
        ..config()
    })
    .err()
    .expect("normalisation")
    .to_string();
    assert!(e.contains("normalises pixels with mean [0.5, 0.5, 0.5]") && e.contains("share one preprocessing"), "{e}");
}

/// On the GPU machine (`bench/gpu.sh tests`): the three-head plan on CUDA gives the CPU's maps (label agreement,
/// argmax ties aside) and runs each encoder once per batch.
#[test]
fn the_head_plan_on_the_gpu_when_one_exists() {
    if !tch::Cuda::is_available() {
        eprintln!("no CUDA device: skipped");
        return;
    }
    let imgs = [frame(48, 80, 7), frame(48, 80, 8)];
    let refs: Vec<&RgbImage> = imgs.iter().collect();
    let on = |device| {
        Segmenter::new(SegmenterConfig {
            device,
            backbone: Some(vit_backbone()),
            heads: vec![
                eomt_head(eomt_spec()),
                head("eomt_linear_dense4", LinearHeadSource::Masks),
                head("vit_linear_a", LinearHeadSource::Backbone),
            ],
            ..config()
        })
        .expect("segmenter")
    };
    let (cpu, gpu) = (on(tch::Device::Cpu), on(tch::Device::Cuda(0)));
    let (a, b) = (cpu.segment(&refs).expect("cpu"), gpu.segment(&refs).expect("gpu"));
    assert_eq!((gpu.passes(Pass::Backbone), gpu.passes(Pass::Masks)), (1, 1));
    let agree = |x: &[u16], y: &[u16]| x.iter().zip(y).filter(|(p, q)| p == q).count() as f64 / x.len() as f64;
    for (f, g) in a.iter().zip(&b) {
        let main = agree(&labels_of(f), &labels_of(g));
        println!("cuda head plan: main map agreement {main:.4}");
        assert!(main > 0.99, "main map agreement {main}");
        for (h, k) in f.heads.iter().zip(&g.heads) {
            assert_eq!(h.head, k.head);
            let r = agree(&h.semantic.to_u16_vec(), &k.semantic.to_u16_vec());
            println!("cuda head plan: {} agreement {r:.4}", h.head);
            assert!(r > 0.99, "{}: agreement {r}", h.head);
        }
    }
}

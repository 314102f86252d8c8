//! Several heads, one backbone pass: linear heads on one backbone share a single forward; a linear head on the
//! EoMT encoder reads its features from the EoMT pass. Results equal those of each head run on its own.

mod common;

use dinoseg::pipeline::preprocess::ResizePolicy;
use dinoseg::pipeline::RgbImage;
use dinoseg::postprocess::{MaskOutputs, PostprocessConfig};
use dinoseg::segmenter::{EomtSpec, LinearHeadSource, LinearHeadSpec, Segmenter, SegmenterConfig};
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
        linear_heads: Vec::new(),
        eomt: None,
    }
}

fn head(name: &str, source: LinearHeadSource) -> LinearHeadSpec {
    LinearHeadSpec { checkpoint: common::eomt_fixtures().join(format!("{name}.safetensors")), source, labels: None }
}

#[test]
fn linear_heads_on_one_backbone_share_one_pass() {
    let backbone = common::fixtures().join("vit_mlp").to_str().expect("utf-8").to_string();
    let both = Segmenter::new(SegmenterConfig {
        backbone: Some(backbone.clone()),
        linear_heads: vec![
            head("vit_linear_a", LinearHeadSource::Backbone),
            head("vit_linear_b", LinearHeadSource::Backbone),
        ],
        ..config()
    })
    .expect("segmenter");
    let alone = Segmenter::new(SegmenterConfig {
        backbone: Some(backbone),
        linear_heads: vec![head("vit_linear_a", LinearHeadSource::Backbone)],
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
        eomt: Some(spec.clone()),
        linear_heads: vec![head("eomt_linear_dense4", LinearHeadSource::Eomt)],
        ..config()
    })
    .expect("segmenter");
    let only_eomt = Segmenter::new(SegmenterConfig { eomt: Some(spec), ..config() }).expect("segmenter");
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

#[test]
fn heads_that_do_not_fit_are_refused() {
    let eomt = common::eomt_fixtures().join("eomt_p0").to_str().expect("utf-8").to_string();
    // A head of 64 channels declared as reading 4 layers of a width-64 encoder (256 channels).
    let r = Segmenter::new(SegmenterConfig {
        eomt: Some(EomtSpec { model: eomt, outputs: MaskOutputs::panoptic(), labels: None }),
        linear_heads: vec![head("vit_linear_a", LinearHeadSource::Eomt)],
        ..config()
    });
    assert!(r.is_ok(), "a `last` head of 64 channels fits a width-64 encoder");
    let r = Segmenter::new(SegmenterConfig {
        linear_heads: vec![head("vit_linear_a", LinearHeadSource::Eomt)],
        ..config()
    });
    let e = r.err().expect("no EoMT model").to_string();
    assert!(e.contains("no EoMT model is configured"), "{e}");
    let r = Segmenter::new(SegmenterConfig {
        backbone: Some(common::fixtures().join("vit_mlp").to_str().expect("utf-8").to_string()),
        linear_heads: vec![head("eomt_linear_dense4", LinearHeadSource::Backbone)],
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
        let s = Segmenter::new(SegmenterConfig { eomt: Some(spec), postprocess: low, ..config() }).expect("segmenter");
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

//! Parameters: one YAML file (ROS 2 params-file layout) for the node and the runner. Every bad key is named, the
//! dotted-key path (what r2r delivers) equals the YAML path, and the shipped examples parse.

mod common;

use common::params_fixtures::*;
use dinoseg::params::{check_file, flatten_yaml, ErrorKind, HeadKind, ModelRef, PaletteName, ParamValue, Params};
use dinoseg::pipeline::preprocess::Resize;
use dinoseg::segmenter::LinearHeadSource;
use dinoseg::topics::Output;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

// ---- one test per bad-key case ----

#[test]
fn a_valid_file_parses() {
    let dir = valid_dir("valid");
    let p = parse_in(&dir, VALID).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.heads.len(), 2);
    assert_eq!(p.heads[0].name, "scene", "heads run in name order");
    assert!(matches!(&p.heads[1].kind, HeadKind::Linear { source: LinearHeadSource::Masks, .. }));
    assert_eq!(format!("{:?}", p.outputs), "{semantic, semantic_color, instances, instance_ids, label_info}");
    assert_eq!(p.input_topics()[0].name, "camera/image_raw");
}

#[test]
fn missing_checkpoint_file_is_named() {
    let dir = common::temp_dir("missing");
    let e = errors_in(
        &dir,
        "backbone: {checkpoint: facebook/dinov3-vits16-pretrain-lvd1689m}\n\
         heads:\n  semantic: {type: linear, checkpoint: config/x.safetensors}",
    );
    let line = the_error(&e, "heads.semantic.checkpoint", ErrorKind::MissingFile);
    assert!(
        line.starts_with("dinoseg.ros__parameters.heads.semantic.checkpoint: no such file config/x.safetensors"),
        "{line}"
    );
    assert_eq!(e.len(), 1, "the hub id backbone is not an error:\n{e}");
}

#[test]
fn wrong_type_is_named() {
    let dir = valid_dir("wrongtype");
    let e = errors_in(&dir, &VALID.replace("precision: fp32", "precision: 16"));
    let line = the_error(&e, "precision", ErrorKind::WrongType);
    assert!(line.contains("got the integer 16"), "{line}");
    assert_eq!(e.len(), 1, "{e}");
}

#[test]
fn unknown_head_type_is_named() {
    let dir = valid_dir("headtype");
    let e = errors_in(&dir, &VALID.replace("type: eomt", "type: maskformer"));
    let line = the_error(&e, "heads.scene.type", ErrorKind::BadValue);
    assert!(line.contains("unknown value `maskformer`"), "{line}");
    let e = errors_in(&dir, &VALID.replace("type: eomt", "type: eomtt"));
    assert!(the_error(&e, "heads.scene.type", ErrorKind::BadValue).contains("did you mean `eomt`?"));
}

#[test]
fn unknown_keys_get_a_suggestion() {
    let dir = valid_dir("unknown");
    let body = format!("{VALID}thresholds: {{scroe: 0.5}}\ncheckpoint: x\nfoo_bar: 1\n");
    let body = body.replace("checkpoint: models/eomt", "chekpoint: models/eomt");
    let e = errors_in(&dir, &body);
    assert!(the_error(&e, "thresholds.scroe", ErrorKind::UnknownKey).ends_with("did you mean `thresholds.score`?"));
    assert!(the_error(&e, "heads.scene.chekpoint", ErrorKind::UnknownKey)
        .ends_with("did you mean `heads.scene.checkpoint`?"));
    assert!(the_error(&e, "checkpoint", ErrorKind::UnknownKey).ends_with("did you mean `backbone.checkpoint`?"));
    assert!(the_error(&e, "foo_bar", ErrorKind::UnknownKey).ends_with("unknown key"));
    // The misspelt checkpoint leaves the head without one.
    the_error(&e, "heads.scene.checkpoint", ErrorKind::MissingKey);
}

#[test]
fn eomt_class_count_must_match_the_labels_file() {
    let dir = valid_dir("eomtclasses");
    labels(&dir.join("labels3.txt"), 3);
    let e = errors_in(&dir, &VALID.replace("labels5.txt", "labels3.txt"));
    let line = the_error(&e, "heads.scene.labels", ErrorKind::Mismatch);
    assert!(line.contains("names 3 classes but the EoMT model models/eomt has 5"), "{line}");
}

#[test]
fn linear_class_count_must_match_the_labels_file() {
    let dir = valid_dir("linclasses");
    labels(&dir.join("labels3.txt"), 3);
    let body = VALID.replace("source: eomt}", "source: eomt, labels: labels3.txt}");
    let e = errors_in(&dir, &body);
    let line = the_error(&e, "heads.semantic.labels", ErrorKind::Mismatch);
    assert!(line.contains("names 3 classes but the linear head heads/lin.safetensors has 5"), "{line}");
}

#[test]
fn thresholds_out_of_range() {
    let dir = valid_dir("thresholds");
    let e = errors_in(&dir, &format!("{VALID}thresholds: {{mask: 1.0, score: -0.1, overlap: 0.5, top_k: 0}}"));
    assert!(the_error(&e, "thresholds.mask", ErrorKind::BadValue).contains("must be in (0, 1), got 1"));
    assert!(the_error(&e, "thresholds.score", ErrorKind::BadValue).contains("must be in [0, 1], got -0.1"));
    the_error(&e, "thresholds.top_k", ErrorKind::BadValue);
    assert_eq!(e.len(), 3, "{e}");
}

#[test]
fn every_error_is_reported_one_per_line() {
    let dir = valid_dir("several");
    let body = VALID.replace("precision: fp32", "precision: fp61").replace("device: cpu", "device: tpu")
        + "input: {reliability: reliabel}\n";
    let body = body.replace("heads/lin.safetensors", "heads/gone.safetensors");
    let e = errors_in(&dir, &body);
    assert!(the_error(&e, "precision", ErrorKind::BadValue).contains("did you mean `fp16`?"));
    the_error(&e, "device", ErrorKind::BadValue);
    assert!(the_error(&e, "input.reliability", ErrorKind::BadValue).contains("did you mean `reliable`?"));
    the_error(&e, "heads.semantic.checkpoint", ErrorKind::MissingFile);
    assert_eq!(e.len(), 4, "{e}");
    let text = e.to_string();
    assert_eq!(text.lines().count(), 4);
    assert!(text.lines().all(|l| l.starts_with("dinoseg.ros__parameters.")), "{text}");
}

#[test]
fn head_sources_need_their_models() {
    let dir = valid_dir("sources");
    // source: backbone (the default) without a backbone; source: eomt without an EoMT head.
    let e = errors_in(
        &dir,
        "device: cpu\nheads:\n  a: {type: linear, checkpoint: heads/lin.safetensors}\n  \
         b: {type: linear, checkpoint: heads/lin.safetensors, source: eomt}",
    );
    assert!(the_error(&e, "heads.a.source", ErrorKind::Conflict).contains("`backbone.checkpoint` is not set"));
    assert!(the_error(&e, "heads.b.source", ErrorKind::Conflict).contains("no head has `type: eomt`"));
}

#[test]
fn two_eomt_heads_and_no_heads_are_errors() {
    let dir = valid_dir("eomtcount");
    let e = errors_in(
        &dir,
        "device: cpu\nheads:\n  a: {type: eomt, checkpoint: models/eomt}\n  b: {type: eomt, checkpoint: models/eomt}",
    );
    assert!(the_error(&e, "heads.b.type", ErrorKind::Conflict).contains("a second mask model (`a` is the first)"));
    let e = errors_in(&dir, "device: cpu");
    the_error(&e, "heads", ErrorKind::Conflict);
}

#[test]
fn a_linear_head_must_fit_its_encoder() {
    let dir = valid_dir("channels");
    linear_head(&dir.join("heads/small.safetensors"), 5, 100, "4", None);
    let e = errors_in(&dir, &VALID.replace("heads/lin.safetensors", "heads/small.safetensors"));
    let line = the_error(&e, "heads.semantic.checkpoint", ErrorKind::Mismatch);
    assert!(line.contains("takes 100 input channels but the EoMT encoder gives 1536"), "{line}");
}

#[test]
fn a_backbone_must_fit_its_heads_and_be_read() {
    let dir = valid_dir("backbone");
    // ViT-S/16 from the catalog (not looked up on disk): 4 x 384 channels, not the 4 x 1024 of a ViT-L head.
    linear_head(&dir.join("heads/vitl.safetensors"), 5, 4 * 1024, "4", None);
    let body = "device: cpu\nbackbone: {checkpoint: facebook/dinov3-vits16-pretrain-lvd1689m, variant: vitl16}\n\
                heads:\n  s: {type: linear, checkpoint: heads/vitl.safetensors}";
    let e = errors_in(&dir, body);
    let line = the_error(&e, "heads.s.checkpoint", ErrorKind::Mismatch);
    assert!(line.contains("takes 4096 input channels but the backbone gives 1536"), "{line}");
    the_error(&e, "backbone.variant", ErrorKind::Mismatch);
    // A backbone no head reads; a bare .safetensors in transformers names without its variant.
    linear_head(&dir.join("bare.safetensors"), 2, 2, "last", None);
    std::fs::rename(dir.join("bare.safetensors"), dir.join("backbone.safetensors")).expect("rename");
    let e = errors_in(&dir, &format!("{VALID}backbone: {{checkpoint: backbone.safetensors}}"));
    the_error(&e, "backbone.checkpoint", ErrorKind::Conflict);
    assert!(the_error(&e, "backbone.variant", ErrorKind::MissingKey).contains("transformers names"));
}

#[test]
fn resize_must_be_consistent() {
    let dir = valid_dir("resize");
    let e = errors_in(&dir, &format!("{VALID}resize: {{mode: fixed, height: 480, short_side: 512}}"));
    the_error(&e, "resize.width", ErrorKind::MissingKey);
    the_error(&e, "resize.short_side", ErrorKind::Conflict);
    let e = errors_in(&dir, &format!("{VALID}resize: {{mode: short_side, short_side: 512, max_long_side: 500}}"));
    the_error(&e, "resize.max_long_side", ErrorKind::BadValue);
    let p = parse_in(&dir, &format!("{VALID}resize: {{mode: short_side, short_side: 512, max_long_side: 1024}}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.resize.resize, Resize::ShortSide(512));
    assert_eq!(p.resize.max_long_side, Some(1024));
}

#[test]
fn outputs_must_be_producible() {
    let dir = valid_dir("outputs");
    let body = "device: cpu\nheads:\n  s: {type: eomt, checkpoint: models/eomt, outputs: semantic}\n\
                outputs: {instances: true, overlay: true}";
    let e = errors_in(&dir, body);
    assert!(the_error(&e, "outputs.instances", ErrorKind::Conflict).contains("no head produces it"));
    assert_eq!(e.len(), 1, "{e}");
    // By default only what the heads give is on.
    let p = parse_in(&dir, "device: cpu\nheads:\n  s: {type: eomt, checkpoint: models/eomt, outputs: semantic}")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(p.outputs.contains(Output::Semantic) && !p.outputs.contains(Output::Instances));
    assert!(!p.outputs.contains(Output::InstanceIds));
}

#[test]
fn a_missing_local_directory_is_not_taken_for_a_hub_id() {
    let dir = valid_dir("nothub");
    std::fs::create_dir_all(dir.join("demo")).expect("mkdir");
    let e = errors_in(&dir, "device: cpu\nheads:\n  s: {type: eomt, checkpoint: demo/eomt}");
    the_error(&e, "heads.s.checkpoint", ErrorKind::MissingFile);
    // Not a directory here and of the org/name form: a hub id, not checked (may be downloaded).
    parse_in(&dir, "device: cpu\nheads:\n  s: {type: eomt, checkpoint: some-org/some-eomt-model}")
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn cuda_validates_without_a_gpu_and_fails_only_in_segmenter_config() {
    let dir = valid_dir("cuda");
    let p = parse_in(&dir, &VALID.replace("device: cpu", "device: cuda")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.device, "cuda");
    if tch::Cuda::device_count() == 0 {
        let err = p.segmenter_config().expect_err("no GPU: segmenter_config fails");
        assert!(err.to_string().contains("device"), "{err}");
    }
}

// ---- the two paths agree ----

#[test]
fn dotted_keys_equal_the_yaml_file() {
    let dir = valid_dir("flat");
    let body = format!(
        "{VALID}input:\n  topics: [/a/image_raw, /b/image_raw/compressed]\n  reliability: reliable\n\
         thresholds: {{score: 1, top_k: 10}}\ncolors:\n  palette: pascal\n  overrides:\n    3: [255, 0, 0]\n\
         outputs: {{overlay: yes}}"
    );
    let s = |v: &str| ParamValue::String(v.into());
    let flat: BTreeMap<String, ParamValue> = [
        ("device", s("cpu")),
        ("precision", s("fp32")),
        ("heads.scene.type", s("eomt")),
        ("heads.scene.checkpoint", s("models/eomt")),
        ("heads.scene.outputs", s("panoptic")),
        ("heads.scene.labels", s("labels5.txt")),
        ("heads.semantic.type", s("linear")),
        ("heads.semantic.checkpoint", s("heads/lin.safetensors")),
        ("heads.semantic.source", s("eomt")),
        ("input.topics", ParamValue::StringArray(vec!["/a/image_raw".into(), "/b/image_raw/compressed".into()])),
        ("input.reliability", s("reliable")),
        ("thresholds.score", ParamValue::Int(1)),
        ("thresholds.top_k", ParamValue::Int(10)),
        ("colors.palette", s("pascal")),
        ("colors.overrides.3", ParamValue::IntArray(vec![255, 0, 0])),
        ("outputs.overlay", s("yes")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(flatten_yaml(&node(&body)).unwrap_or_else(|e| panic!("{e}")), flat);
    let from_yaml = parse_in(&dir, &body).unwrap_or_else(|e| panic!("{e}"));
    let mut ros = flat.clone();
    ros.insert("use_sim_time".into(), ParamValue::Bool(false)); // r2r adds it to every node
    ros.insert("outputs.overlay".into(), ParamValue::Bool(true)); // rcl reads `yes` as a boolean
    let from_flat = Params::from_flat_in(&ros, &dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from_yaml, from_flat);
    assert!(from_yaml.input.topics[1].compressed && !from_yaml.input.topics[0].compressed);
    assert_eq!(from_yaml.color(3), [255, 0, 0]);
    assert_eq!(from_yaml.colors.name, PaletteName::Pascal);
    // The effective values turn back into the same parameters.
    assert_eq!(Params::from_flat_in(&from_yaml.to_flat(), Path::new("/")).unwrap_or_else(|e| panic!("{e}")), from_yaml);
    // Errors name the dotted keys on the flat path.
    let mut bad = flat;
    bad.insert("precision".into(), ParamValue::Int(16));
    let e = Params::from_flat_in(&bad, &dir).expect_err("error");
    assert!(e.to_string().starts_with("precision: expected one of"), "{e}");
}

#[test]
fn heads_as_a_list_equal_named_heads() {
    let dir = valid_dir("list");
    let list = "device: cpu\nprecision: fp32\nheads:\n  - {name: scene, type: eomt, checkpoint: models/eomt, \
                labels: labels5.txt}\n  - {name: semantic, type: linear, checkpoint: heads/lin.safetensors, \
                source: eomt}";
    let a = parse_in(&dir, list).unwrap_or_else(|e| panic!("{e}"));
    let b = parse_in(&dir, VALID).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a, b);
    let e = errors_in(&dir, "device: cpu\nheads:\n  - {type: eomt, chekpoint: models/eomt}");
    assert!(e.to_string().contains("dinoseg.ros__parameters.heads[0].chekpoint: unknown key"), "{e}");
}

// ---- paths ----

#[test]
fn relative_paths_resolve_against_the_files_directory() {
    let dir = valid_dir("relative");
    let file = dir.join("params.yaml");
    std::fs::write(&file, node(VALID)).expect("write yaml");
    // The current directory is the crate root, not `dir`: the file's directory is what counts.
    let p = check_file(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.base_dir, dir);
    match &p.heads[0].kind {
        HeadKind::Eomt { model: ModelRef::Path(m), labels, .. } => {
            assert_eq!(m, &dir.join("models/eomt"));
            assert_eq!(labels.as_deref(), Some(dir.join("labels5.txt").as_path()));
        }
        other => panic!("{other:?}"),
    }
    // `base_dir` moves the base; relative to the file.
    let sub = dir.join("conf");
    std::fs::create_dir_all(&sub).expect("mkdir");
    std::fs::write(sub.join("p.yaml"), node(&format!("base_dir: ..\n{VALID}"))).expect("write yaml");
    let q = check_file(sub.join("p.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(q.heads, p.heads);
    // Without it, the same text next to nothing fails and says where it looked.
    std::fs::write(sub.join("q.yaml"), node(VALID)).expect("write yaml");
    let e = check_file(sub.join("q.yaml")).expect_err("errors");
    let line = the_error(&e, "heads.semantic.checkpoint", ErrorKind::MissingFile);
    assert!(line.contains(&sub.join("heads/lin.safetensors").display().to_string()), "{line}");
}

/// Every shipped params file validates completely (its models ship in config/demo/).
#[test]
fn shipped_examples_parse() {
    let config = common::root().join("config");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&config)
        .expect("config/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    for path in names {
        match check_file(&path) {
            Ok(p) => assert!(!p.heads.is_empty()),
            Err(e) => panic!("{}:\n{e}", path.display()),
        }
    }
    let two = check_file(config.join("two_cameras.yaml")).expect("two_cameras.yaml");
    assert_eq!((two.input.topics.len(), two.node.max_batch), (2, 2));
}

#[test]
fn node_keys_are_checked() {
    let dir = valid_dir("node-keys");
    let p = parse_in(&dir, &format!("{VALID}input: {{topics: [/a/image, /b/image/compressed]}}")).expect("valid");
    assert_eq!(p.node, dinoseg::params::NodeParams { max_batch: 2, ..Default::default() });
    let p = parse_in(
        &dir,
        &format!("{VALID}node: {{max_batch: 1, diagnostics_period: 2, warn_interval: 0.5, threads: 1}}"),
    )
    .expect("valid");
    assert_eq!((p.node.max_batch, p.node.diagnostics_period, p.node.warn_interval, p.node.threads), (1, 2.0, 0.5, 1));
    let e = errors_in(
        &dir,
        &format!(
            "{VALID}node: {{max_batch: 0, diagnostics_period: 0.001, warn_interval: fast, threads: -1, max_bach: 2}}"
        ),
    );
    assert!(the_error(&e, "node.max_batch", ErrorKind::BadValue).contains("must be in 1..=64, got 0"));
    assert!(the_error(&e, "node.diagnostics_period", ErrorKind::BadValue).contains("outside [0.05, 3600] s"));
    the_error(&e, "node.warn_interval", ErrorKind::WrongType);
    the_error(&e, "node.threads", ErrorKind::BadValue);
    assert!(the_error(&e, "node.max_bach", ErrorKind::UnknownKey).contains("did you mean `node.max_batch`?"));
    assert_eq!(e.len(), 5, "{e}");
}

#[test]
fn yaml_builds_a_working_segmenter() {
    let fx = common::eomt_fixtures();
    let dir = common::temp_dir("segmenter");
    let body = format!(
        "device: cpu\nprecision: fp32\nheads:\n  scene: {{type: eomt, checkpoint: {}, outputs: panoptic}}\n  \
         semantic: {{type: linear, checkpoint: {}, source: eomt}}",
        fx.join("eomt_p0").display(),
        fx.join("eomt_linear_dense4.safetensors").display()
    );
    let p = parse_in(&dir, &body).unwrap_or_else(|e| panic!("{e}"));
    let cfg = p.segmenter_config().expect("segmenter config");
    let names: Vec<&str> = cfg.heads.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, vec!["scene", "semantic"], "every head, in name order");
    let seg = dinoseg::segmenter::Segmenter::new(cfg).expect("segmenter");
    let img = dinoseg::pipeline::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 5, y as u8 * 7, 90]));
    let out = seg.segment(&[&img]).expect("segment");
    let sem = out[0].semantic.as_ref().expect("semantic map");
    assert_eq!((sem.width, sem.height), (40, 30));
    assert_eq!(out[0].heads.iter().map(|h| h.head.as_str()).collect::<Vec<_>>(), vec!["scene"]);
    assert_eq!(p.head_plan().expect("plan").extra_semantic_names(), vec!["scene"]);
}

// ---- colours ----

#[test]
fn the_default_palette_has_256_distinct_colours() {
    let p = dinoseg::params::Palette::default();
    let colours: std::collections::BTreeSet<[u8; 3]> = (0..256u16).map(|i| p.color(i)).collect();
    assert_eq!(colours.len(), 256);
    assert!(colours.iter().all(|c| c.iter().map(|&v| u32::from(v)).sum::<u32>() > 100), "no near-black colour");
    assert_eq!(p.color(300), p.color(44), "ids wrap around");
    let pascal = dinoseg::params::Palette { name: PaletteName::Pascal, ..Default::default() };
    assert_eq!((pascal.color(0), pascal.color(1), pascal.color(15)), ([0, 0, 0], [128, 0, 0], [192, 128, 128]));
    let dir = valid_dir("colours");
    let e = errors_in(&dir, &format!("{VALID}colors:\n  overrides:\n    x: [1, 2, 3]\n    2: [1, 2, 300]"));
    the_error(&e, "colors.overrides.x", ErrorKind::BadValue);
    the_error(&e, "colors.overrides.2", ErrorKind::BadValue);
    let p =
        parse_in(&dir, &format!("{VALID}colors:\n  overrides:\n    7: \"#00ff10\"")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.color(7), [0, 255, 16]);
}

#[test]
fn the_file_layout_is_checked() {
    for (text, what) in [
        ("", "empty"),
        ("device: cpu\n", "ros__parameters"),
        ("a:\n  ros__parameters: {}\nb:\n  ros__parameters: {}\n", "none for this node"),
        ("dinoseg:\n  ros__parameters:\n    device: [cpu\n", "invalid YAML"),
    ] {
        let e = Params::from_yaml_str(text).expect_err("error");
        assert!(e.to_string().contains(what), "{text:?}: {e}");
    }
    let e = Params::from_yaml_str(&node("backbone: vitl16\nheads: {semantic: linear}\ninput: {topics: []}"))
        .expect_err("errors");
    let text = e.to_string();
    assert!(
        text.contains("backbone: expected a map (backbone.checkpoint, backbone.variant), got the string"),
        "{text}"
    );
    assert!(text.contains("heads.semantic: expected a map (type, checkpoint"), "{text}");
    assert!(text.contains("input.topics: no topics"), "{text}");
    // A robot-wide file: the camera driver's parameters are skipped, `/**` and ours merged (ours later).
    let dir = valid_dir("robotfile");
    let robot = format!(
        "camera:\n  ros__parameters:\n    fps: 30\n/**:\n  ros__parameters:\n    device: cuda\n    use_sim_time: true\n{}",
        node(VALID).replace("dinoseg:", "/robot/dinoseg:")
    );
    let p = Params::from_yaml_str_in(&robot, &dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.device, "cpu");
    let e = Params::from_yaml_str("/**:\n  ros__parameters:\n    device: cpu\n").expect_err("no heads");
    assert!(e.to_string().starts_with("/**.ros__parameters.heads: no heads"), "{e}");
}

/// The head plan start-up builds is checked with the file: the main semantic head named by
/// `outputs.semantic_from`, and a head whose results would go nowhere refused with the reason.
#[test]
fn the_head_plan_is_part_of_the_validation() {
    let fx = common::eomt_fixtures();
    let dir = common::temp_dir("head-plan");
    let heads = |scene_outputs: &str| {
        format!(
            "device: cpu\nheads:\n  scene: {{type: eomt, checkpoint: {}, outputs: {scene_outputs}}}\n  \
             semantic: {{type: linear, checkpoint: {}, source: eomt}}\n",
            fx.join("eomt_p0").display(),
            fx.join("eomt_linear_dense4.safetensors").display()
        )
    };
    let p = parse_in(&dir, &heads("panoptic")).unwrap_or_else(|e| panic!("{e}"));
    let plan = p.head_plan().expect("plan");
    assert_eq!(plan.extra_semantic_names(), vec!["scene"], "default: the linear head is the main one");
    let p = parse_in(&dir, &format!("{}outputs: {{semantic_from: scene}}", heads("panoptic")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.head_plan().expect("plan").extra_semantic_names(), vec!["semantic"]);
    assert_eq!(p.segmenter_config().expect("config").semantic_from.as_deref(), Some("scene"));
    // EoMT gives a semantic map only, the linear head is the main one, and its own topics are off.
    let body = format!("{}outputs: {{semantic: false, semantic_color: false, overlay: true}}", heads("semantic"));
    let e = errors_in(&dir, &body);
    let msg = the_error(&e, "heads.scene", ErrorKind::Conflict);
    assert!(msg.contains("its results go nowhere") && msg.contains("semantic_color are off"), "{msg}");
    assert_eq!(e.len(), 1, "{e}");
}

//! The key table (`src/params/table.rs`) as the one declaration of the parameters: the defaults a file gets,
//! the README's and the module doc's parameter tables, `ros2 param describe`'s constraints; and the keys it
//! added: `outputs.semantic_from`, head types as an enum.

mod common;

use common::params_fixtures::*;
use dinoseg::params::table::{Fallback, KEYS};
use dinoseg::params::{doc, ErrorKind, ParamValue, Params};
use dinoseg::topics::{Output, OutputSet};

/// Every key with a constant default in the table gets that value when a file leaves it out (what the readers
/// take is the table's, not a copy).
#[test]
fn a_file_without_a_key_gets_the_table_default() {
    let dir = valid_dir("table-defaults");
    let p = parse_in(&dir, "heads:\n  scene: {type: eomt, checkpoint: models/eomt}").unwrap_or_else(|e| panic!("{e}"));
    let flat = p.to_flat();
    let mut checked = 0;
    for k in KEYS {
        let key = k.key.replace("<name>", "scene");
        let want = match k.default {
            Fallback::Bool(b) => ParamValue::Bool(b),
            Fallback::Int(i) => ParamValue::Int(i),
            Fallback::Double(d) => ParamValue::Double(d),
            Fallback::Str(s) => ParamValue::String(s.to_string()),
            Fallback::StrList(l) => ParamValue::StringArray(l.iter().map(|s| s.to_string()).collect()),
            Fallback::Derived(_) => continue,
        };
        if key == "heads.scene.source" {
            continue; // linear heads only
        }
        assert_eq!(flat.get(&key), Some(&want), "{key}");
        checked += 1;
    }
    assert!(checked >= 20, "{checked}");
    // The library defaults the node's scheduling starts from agree with the table.
    let d = dinoseg::params::NodeParams::default();
    assert_eq!(
        (p.node.diagnostics_period, p.node.warn_interval, p.node.threads),
        (d.diagnostics_period, d.warn_interval, d.threads)
    );
    assert_eq!(p.thresholds, dinoseg::postprocess::PostprocessConfig::default());
    // Derived defaults: outputs from what the heads give, one batch slot per camera, semantic_from automatic.
    let on: OutputSet =
        [Output::Semantic, Output::SemanticColor, Output::Instances, Output::InstanceIds, Output::LabelInfo]
            .into_iter()
            .collect();
    assert_eq!(p.outputs, on);
    assert_eq!((p.node.max_batch, p.semantic_from.as_deref()), (1, None));
    assert_eq!(flat.get("outputs.semantic_from"), Some(&ParamValue::String(String::new())));
}

/// The README's parameter table and the module doc's are the table rendered; `DINOSEG_BLESS=1` rewrites them.
#[test]
fn readme_and_module_doc_hold_the_generated_key_table() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let table = doc::markdown();
    assert_eq!(table.lines().count(), KEYS.len() + 2);
    for k in KEYS {
        assert!(table.contains(&format!("| `{}` |", k.key)), "{} not in the table", k.key);
        assert!(table.contains(k.description.replace('<', "&lt;").replace('>', "&gt;").as_str()), "{}", k.key);
    }
    let bless = std::env::var_os("DINOSEG_BLESS").is_some_and(|v| v == "1");
    for (file, prefix) in [("README.md", ""), ("src/params/mod.rs", "//! ")] {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let want = doc::with_table(&text, prefix, &table).unwrap_or_else(|| panic!("{file}: no params-table markers"));
        if bless && want != text {
            std::fs::write(&path, &want).unwrap_or_else(|e| panic!("{file}: {e}"));
            continue;
        }
        assert!(
            want == text,
            "{file}: the parameter table differs from src/params/table.rs; rewrite it with `DINOSEG_BLESS=1 cargo test \
             --release --locked --test params_table`"
        );
    }
    // A drifted copy is noticed: the check above compares the whole block.
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
    let drifted = readme.replacen(
        "| `thresholds.score` | double in [0, 1] | 0.8 |",
        "| `thresholds.score` | double in [0, 1] | 0.7 |",
        1,
    );
    assert_ne!(drifted, readme, "the README has the thresholds.score row");
    assert_ne!(doc::with_table(&drifted, "", &table).as_deref(), Some(drifted.as_str()));
}

/// `ros2 param describe`'s constraints come from the table: live or why not, excluded ends, the default.
#[test]
fn describe_constraints_come_from_the_table() {
    let info = dinoseg::params::describe("thresholds.mask").expect("in the table");
    assert_eq!(
        info.constraints("thresholds.mask"),
        "in (0, 1) (ends excluded); live: takes effect on the next frame; default: 0.5"
    );
    let info = dinoseg::params::describe("heads.a.checkpoint").expect("in the table");
    assert_eq!(
        info.constraints("heads.a.checkpoint"),
        "checkpoints are loaded at start-up; restart the node to change heads.a.checkpoint; default: required"
    );
    let info = dinoseg::params::describe("outputs.semantic_from").expect("in the table");
    assert!(
        !info.is_live() && info.constraints("outputs.semantic_from").contains("the head plan is built at start-up")
    );
}

#[test]
fn semantic_from_names_a_head_that_gives_a_semantic_map() {
    let dir = valid_dir("semantic-from");
    for head in ["semantic", "scene"] {
        let p = parse_in(&dir, &format!("{VALID}outputs: {{semantic_from: {head}}}")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.semantic_from.as_deref(), Some(head));
        assert_eq!(p.to_flat().get("outputs.semantic_from"), Some(&ParamValue::String(head.into())));
        let back = Params::from_flat_in(&p.to_flat(), &dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, p, "to_flat round trip");
        let e = p.set_live("outputs.semantic_from", &ParamValue::String("scene".into())).expect_err("start-up only");
        assert!(e.starts_with("the head plan is built at start-up"), "{e}");
    }
    let p = parse_in(&dir, &format!("{VALID}outputs: {{semantic_from: ''}}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.semantic_from, None, "empty: automatic");
    // A head that is not there: the heads that could, with a suggestion.
    let e = errors_in(&dir, &format!("{VALID}outputs: {{semantic_from: semantik}}"));
    let line = the_error(&e, "outputs.semantic_from", ErrorKind::BadValue);
    assert!(
        line.ends_with("no head `semantik`: did you mean `semantic`? heads that give one: `scene` or `semantic`"),
        "{line}"
    );
    assert_eq!(e.len(), 1, "{e}");
    // An EoMT head with `outputs: instances` gives no semantic map.
    let body = "device: cpu\nheads:\n  inst: {type: eomt, checkpoint: models/eomt, outputs: instances}\n\
                outputs: {semantic_from: inst}";
    let line = the_error(&errors_in(&dir, body), "outputs.semantic_from", ErrorKind::Conflict);
    assert!(
        line.ends_with(
            "head `inst` gives no semantic map (an EoMT head with `outputs: instances`); no configured head gives one"
        ),
        "{line}"
    );
    // Not a string.
    let e = errors_in(&dir, &format!("{VALID}outputs: {{semantic_from: 3}}"));
    assert!(the_error(&e, "outputs.semantic_from", ErrorKind::WrongType).contains("expected a head name"), "{e}");
}

#[test]
fn head_types_are_an_enum_and_an_unknown_one_lists_them() {
    let dir = valid_dir("head-type-enum");
    let e = errors_in(&dir, &VALID.replace("type: eomt", "type: maskformer"));
    let line = the_error(&e, "heads.scene.type", ErrorKind::BadValue);
    assert!(line.contains("unknown value `maskformer`: expected `linear`, `eomt` or `mask2former`"), "{line}");
    // Case and spaces do not matter, as for every other name.
    let p = parse_in(&dir, &VALID.replace("type: eomt", "type: ' EoMT'")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p, parse_in(&dir, VALID).unwrap_or_else(|e| panic!("{e}")));
    let e = errors_in(&dir, "device: cpu\nheads:\n  x: {checkpoint: models/eomt}");
    let line = the_error(&e, "heads.x.type", ErrorKind::MissingKey);
    assert!(line.ends_with("required: `linear`, `eomt` or `mask2former`"), "{e}");
}

/// The outputs map of a file's text: what `OutputSet` holds, in `Output::ALL` order.
#[test]
fn outputs_are_a_set_in_output_order() {
    let dir = valid_dir("output-set");
    let p = parse_in(&dir, &format!("{VALID}outputs: {{overlay: true, detections: true, semantic_color: false}}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(format!("{:?}", p.outputs()), "{semantic, instances, instance_ids, detections, label_info, overlay}");
    let flat = p.to_flat();
    for o in Output::ALL {
        assert_eq!(flat.get(&format!("outputs.{}", o.name())), Some(&ParamValue::Bool(p.outputs().contains(o))));
    }
}

/// Each key is read as the type the table gives it: a value of another type is refused on that key as the
/// wrong type (a colour override: as not a colour), for a params file and for `set_live`.
#[test]
fn every_key_is_read_as_its_table_type() {
    use dinoseg::params::ValueType;
    let dir = valid_dir("table-types");
    let p = parse_in(&dir, VALID).unwrap_or_else(|e| panic!("{e}"));
    let m2f = parse_in(&dir, &mask2former_set()).unwrap_or_else(|e| panic!("{e}"));
    for k in KEYS {
        // `scene` is the EoMT head, `semantic` the linear one, `objects` the Mask2Former one.
        let m2f_key = k.key.ends_with(".layers") || k.key.ends_with(".num_heads");
        let (p, head) = match () {
            _ if m2f_key => (&m2f, "objects"),
            _ if k.key.ends_with(".source") => (&p, "semantic"),
            _ => (&p, "scene"),
        };
        let key = k.key.replace("<name>", head).replace("<id>", "3");
        let wrong = match k.value_type {
            ValueType::Bool => ParamValue::Int(1),
            _ => ParamValue::Bool(true),
        };
        let mut flat = p.to_flat();
        flat.insert(key.clone(), wrong.clone());
        let e = match Params::from_flat_in(&flat, &dir) {
            Ok(_) => panic!("{key} = {wrong:?} accepted"),
            Err(e) => e,
        };
        let want = if k.value_type == ValueType::Color { ErrorKind::BadValue } else { ErrorKind::WrongType };
        assert!(e.for_key(&key).iter().any(|x| x.kind == want), "{key}: {e}");
        if k.is_live() {
            let e = p.set_live(&key, &wrong).expect_err(&key);
            assert!(e.starts_with(&format!("{key}: expected")), "{key}: {e}");
        }
    }
}

/// `to_flat` gives every key of the table (each `<name>` for a head, `<id>` for an override) for parameter sets
/// that use them all: a key added to the table but not to the flat view (so not to `ros2 param get`) fails.
#[test]
fn to_flat_gives_every_key_of_the_table() {
    let dir = valid_dir("table-flat");
    let fixed = format!("{VALID}resize: {{mode: fixed, height: 64, width: 64}}\noutputs: {{semantic_from: semantic}}");
    let backbone = "device: cpu\nbackbone: {checkpoint: facebook/dinov3-vits16-pretrain-lvd1689m, variant: vits16}\n\
                    heads:\n  lin: {type: linear, checkpoint: heads/lin.safetensors, labels: labels5.txt}\n\
                    resize: {mode: short_side, short_side: 256, max_long_side: 512}\n\
                    colors: {overrides: {3: [1, 2, 3]}}";
    let mut keys = std::collections::BTreeSet::new();
    for body in [fixed.as_str(), backbone, mask2former_set().as_str()] {
        let p = parse_in(&dir, body).unwrap_or_else(|e| panic!("{e}"));
        keys.extend(p.to_flat().into_keys());
    }
    for k in KEYS {
        assert!(
            keys.iter().any(|key| k.matches(key)),
            "{} is in the table but no parameter set's to_flat gives it",
            k.key
        );
    }
}

/// The names of `heads.<name>.outputs` and `input.reliability` are read and written by one list each: what a
/// file says is what `to_flat` gives back (an alias in its proper name).
#[test]
fn choice_names_round_trip_through_to_flat() {
    let dir = valid_dir("choice-names");
    for (written, flat) in
        [("panoptic", "panoptic"), ("Semantic", "semantic"), ("instances", "instances"), ("instance", "instances")]
    {
        let body = format!("device: cpu\nheads:\n  s: {{type: eomt, checkpoint: models/eomt, outputs: {written}}}");
        let p = parse_in(&dir, &body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.to_flat().get("heads.s.outputs"), Some(&ParamValue::String(flat.into())), "{written}");
    }
    for (written, flat) in [("reliable", "reliable"), (" BEST_effort", "best_effort")] {
        let p =
            parse_in(&dir, &format!("{VALID}input: {{reliability: '{written}'}}")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.to_flat().get("input.reliability"), Some(&ParamValue::String(flat.into())), "{written}");
    }
}

/// Device and precision names have one parser each (`dinoseg::device`), which the params validation, the
/// segmenter configuration and the command-line tools share.
#[test]
fn device_and_precision_names_have_one_parser() {
    use dinoseg::device::{device_name, parse_device, parse_precision, precision_kind};
    use dinoseg::params::Precision;
    use tch::{Device, Kind};
    assert_eq!(device_name(" GPU "), Some((Device::Cuda(0), "cuda".to_string())));
    assert_eq!(device_name("Cuda:2"), Some((Device::Cuda(2), "cuda:2".to_string())));
    assert_eq!(device_name("cpu").map(|(d, _)| d), Some(Device::Cpu));
    for bad in ["cuda:", "cuda:x", "cuda:-1", "tpu", ""] {
        assert_eq!(device_name(bad), None, "{bad}");
    }
    assert_eq!(parse_device(" CPU").ok(), Some(Device::Cpu));
    assert!(parse_device("tpu").is_err());
    assert_eq!(
        (precision_kind("half"), precision_kind("BF16"), precision_kind("fp8")),
        (Some(Kind::Half), Some(Kind::BFloat16), None)
    );
    assert_eq!(Precision::parse("float16"), Some(Precision::Fp16));
    assert_eq!(parse_precision("float").ok(), Some(Kind::Float));
    let e = parse_precision("fp8").map_err(|e| e.to_string()).expect_err("unknown");
    assert!(e.ends_with("unknown precision `fp8`: expected fp32, fp16 or bf16"), "{e}");
    let dir = valid_dir("device-names");
    for (written, want) in [("' GPU'", "cuda"), ("CUDA:1", "cuda:1"), ("Cpu", "cpu")] {
        let p = parse_in(&dir, &VALID.replace("device: cpu", &format!("device: {written}")))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.device, want, "{written}");
    }
    let e = errors_in(&dir, &VALID.replace("device: cpu", "device: cuda:x"));
    assert!(the_error(&e, "device", ErrorKind::BadValue).contains("unknown value `cuda:x`"), "{e}");
}

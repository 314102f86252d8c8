//! Live parameters (`ros2 param set`): `Params::set_live` and the key table against the validation.

mod common;

use common::params_fixtures::*;
use dinoseg::params::{ParamValue, Params};

// ---- live parameters (`ros2 param set`) and the key table ----

/// The keys whose value differs between two flat parameter sets.
fn changed_keys(a: &Params, b: &Params) -> Vec<String> {
    let (fa, fb) = (a.to_flat(), b.to_flat());
    let mut keys: Vec<String> = fa.keys().chain(fb.keys()).filter(|k| fa.get(*k) != fb.get(*k)).cloned().collect();
    keys.dedup();
    keys
}

#[test]
fn set_live_accepts_every_live_key() {
    use ParamValue::{Bool, Double, Int, IntArray, String as Str};
    let dir = valid_dir("live-accept");
    let p = parse_in(&dir, VALID).unwrap_or_else(|e| panic!("{e}"));
    let mut cases: Vec<(String, ParamValue)> = vec![
        ("thresholds.score".into(), Double(0.3)),
        ("thresholds.query".into(), Int(1)), // an integer for a double, as ROS clients send it
        ("thresholds.mask".into(), Double(0.4)),
        ("thresholds.overlap".into(), Double(0.25)),
        ("thresholds.top_k".into(), Int(7)),
        ("colors.palette".into(), Str("pascal".into())),
        ("colors.overlay_alpha".into(), Int(1)),
        ("colors.overrides.3".into(), Str("#010203".into())),
        ("node.max_batch".into(), Int(4)),
        ("node.diagnostics_period".into(), Int(2)),
        ("node.warn_interval".into(), Double(0.5)),
    ];
    for (k, v) in p.to_flat() {
        if let (true, Bool(b)) = (k.starts_with("outputs."), v) {
            cases.push((k, Bool(!b)));
        }
    }
    for (key, value) in &cases {
        let q = p.set_live(key, value).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(changed_keys(&p, &q), vec![key.clone()], "{key} alone changes");
    }
    // Every live key of the table is tried above.
    for info in dinoseg::params::table::KEYS.iter().filter(|k| k.is_live()) {
        assert!(cases.iter().any(|(k, _)| info.matches(k)), "{} is not tried", info.key);
    }
    let q = p.set_live("thresholds.query", &Int(1)).expect("valid");
    assert_eq!(q.thresholds.query_threshold, 1.0);
    let q = p.set_live("colors.overrides.3", &IntArray(vec![4, 5, 6])).expect("valid");
    assert_eq!(q.color(3), [4, 5, 6]);
    let q = q.set_live("colors.overrides.3", &ParamValue::NotSet).expect("valid");
    assert_eq!(q.color(3), p.color(3), "no value removes the override");
    // What the core takes from them.
    let q = p.set_live("outputs.overlay", &Bool(true)).and_then(|q| q.set_live("thresholds.score", &Double(0.25)));
    let live = dinoseg::node::LiveConfig::from_params(&q.expect("valid"));
    assert!(live.outputs.contains(dinoseg::topics::Output::Overlay));
    assert_eq!((live.score_threshold, live.postprocess.map(|t| t.score_threshold)), (0.25, Some(0.25)));
}

#[test]
fn set_live_refuses_keys_read_at_start_up_with_the_reason() {
    let dir = valid_dir("live-refuse");
    let p = parse_in(&dir, VALID).unwrap_or_else(|e| panic!("{e}"));
    let e = p.set_live("heads.scene.checkpoint", &ParamValue::String("models/other".into())).expect_err("refused");
    assert_eq!(e, "checkpoints are loaded at start-up; restart the node to change heads.scene.checkpoint");
    let mut refused = 0;
    for (key, value) in p.to_flat() {
        let info = dinoseg::params::describe(&key).unwrap_or_else(|| panic!("{key} is not in the table"));
        if info.is_live() {
            continue;
        }
        // Even the value it has: the key is read at start-up only.
        let e = p.set_live(&key, &value).expect_err(&key);
        assert!(e.ends_with(&format!("; restart the node to change {key}")), "{key}: {e}");
        refused += 1;
    }
    assert!(refused >= 12, "{refused}");
    for (key, want) in [
        ("node.threads", "libtorch's thread pool"),
        ("resize.mode", "model input size"),
        ("input.topics", "subscriptions"),
        ("device", "model is loaded"),
    ] {
        let e = p.set_live(key, &ParamValue::Int(1)).expect_err(key);
        assert!(e.contains(want), "{key}: {e}");
    }
    let e = p.set_live("thresholds.scor", &ParamValue::Double(0.5)).expect_err("unknown");
    assert_eq!(e, "thresholds.scor: unknown key; did you mean `thresholds.score`?");
    assert_eq!(p.set_live("zzz", &ParamValue::Int(1)).expect_err("unknown"), "zzz: unknown key");
}

#[test]
fn set_live_checks_types_ranges_and_what_the_heads_produce() {
    use ParamValue::{Bool, Double, Int, IntArray, String as Str};
    let dir = valid_dir("live-check");
    let p = parse_in(&dir, VALID).unwrap_or_else(|e| panic!("{e}"));
    for (key, value, want) in [
        ("thresholds.score", Str("high".into()), "thresholds.score: expected a number in [0, 1], got the string"),
        ("thresholds.score", Double(1.5), "thresholds.score: must be in [0, 1], got 1.5"),
        ("thresholds.mask", Double(1.0), "thresholds.mask: must be in (0, 1), got 1"),
        ("thresholds.top_k", Double(2.0), "thresholds.top_k: expected an integer"),
        ("outputs.semantic", Int(3), "outputs.semantic: expected a boolean"),
        ("colors.palette", Str("viridis".into()), "colors.palette: unknown value `viridis`"),
        ("colors.overrides.x", IntArray(vec![1, 2, 3]), "`x` is not a class id"),
        ("colors.overrides.2", IntArray(vec![1, 2, 300]), "colour components are 0..=255"),
        ("node.max_batch", Int(65), "node.max_batch: must be in 1..=64, got 65"),
        ("node.warn_interval", Double(0.0), "node.warn_interval: 0 s is outside [0.05, 3600] s"),
    ] {
        let e = p.set_live(key, &value).expect_err(key);
        assert!(e.contains(want), "{key} = {value:?}: {e}");
    }
    // An output no head produces.
    let sem = parse_in(&dir, "device: cpu\nheads:\n  s: {type: eomt, checkpoint: models/eomt, outputs: semantic}")
        .unwrap_or_else(|e| panic!("{e}"));
    let e = sem.set_live("outputs.instances", &Bool(true)).expect_err("no instances");
    assert!(e.starts_with("outputs.instances: no head produces it"), "{e}");
    assert!(sem.set_live("outputs.instances", &Bool(false)).is_ok());
    assert!(sem.set_live("outputs.overlay", &Bool(true)).is_ok());
}

/// Every key of a parameter set is in the table with a description and the type its value has; every range of
/// the table is the one the validation enforces, for a params file and for `set_live`: its ends are accepted
/// (refused where it excludes them) and a value just outside is refused.
#[test]
fn the_key_table_agrees_with_the_validation() {
    use dinoseg::params::{describe, table::KEYS, Range, ValueType};
    let dir = valid_dir("table");
    let p =
        parse_in(&dir, &format!("{VALID}colors: {{overrides: {{1: [1, 2, 3]}}}}")).unwrap_or_else(|e| panic!("{e}"));
    for (key, value) in p.to_flat() {
        let info = describe(&key).unwrap_or_else(|| panic!("{key} is not in the table"));
        assert!(!info.description.is_empty(), "{key}");
        let fits = matches!(
            (info.value_type, &value),
            (ValueType::Bool, ParamValue::Bool(_))
                | (ValueType::Int, ParamValue::Int(_))
                | (ValueType::Double, ParamValue::Double(_))
                | (ValueType::String, ParamValue::String(_))
                | (ValueType::StringList, ParamValue::StringArray(_))
                | (ValueType::Color, ParamValue::IntArray(_))
        );
        assert!(fits, "{key}: table type {} for {value:?}", info.value_type.name());
    }
    let base = p.to_flat();
    let mut ranged = 0;
    for info in KEYS.iter().filter(|k| k.range.is_some()) {
        // A head's key is tried on the head that reads it: `num_heads` on a Mask2Former head in the adapter layout.
        let (key, mut flat) = if info.key.contains("<name>") {
            let m2f = parse_in(&dir, &mask2former_set()).unwrap_or_else(|e| panic!("{e}"));
            (info.key.replace("<name>", "objects"), m2f.to_flat())
        } else {
            (info.key.to_string(), base.clone())
        };
        let key = key.as_str();
        // The other keys a value of this one needs.
        let mode = match key {
            "resize.short_side" => "short_side",
            "resize.height" | "resize.width" => "fixed",
            _ => "keep",
        };
        flat.insert("resize.mode".into(), ParamValue::String(mode.into()));
        if mode == "fixed" {
            flat.insert("resize.height".into(), ParamValue::Int(100));
            flat.insert("resize.width".into(), ParamValue::Int(100));
        }
        let values: Vec<(ParamValue, bool)> = match info.range {
            Some(Range::Int { from, to, .. }) => vec![
                (ParamValue::Int(from), true),
                (ParamValue::Int(to), true),
                (ParamValue::Int(from - 1), false),
                (ParamValue::Int(to + 1), false),
            ],
            Some(Range::Double { from, to, exclusive, .. }) => {
                let d = |x: f64| 1e-9 * x.abs().max(1.0);
                vec![
                    (ParamValue::Double(from), !exclusive),
                    (ParamValue::Double(to), !exclusive),
                    (ParamValue::Double(from + d(from)), true),
                    (ParamValue::Double(to - d(to)), true),
                    (ParamValue::Double(from - d(from)), false),
                    (ParamValue::Double(to + d(to)), false),
                ]
            }
            None => unreachable!(),
        };
        for (value, ok) in values {
            flat.insert(key.into(), value.clone());
            let file = Params::from_flat_in(&flat, &dir);
            match (&file, ok) {
                (Ok(_), true) => {}
                // (A refused head key also leaves its checkpoint unread: `num_heads` refused, the checkpoint
                // cannot be read without it.)
                (Err(e), false) => assert!(
                    !e.for_key(key).is_empty() && (e.len() == 1 || info.key.contains("<name>")),
                    "{key} = {value:?}: {e}"
                ),
                (Ok(_), false) => {
                    panic!("{key} = {value:?} outside {} accepted", info.range.map(|r| r.text()).unwrap_or_default())
                }
                // The range's ends may not fit the fixture's checkpoint (1024 heads for a width of 64): the
                // range check passes when the key itself has no error.
                (Err(e), true) if info.key.contains("<name>") && e.for_key(key).is_empty() => {}
                (Err(e), true) => panic!("{key} = {value:?} refused: {e}"),
            }
            if info.is_live() {
                assert_eq!(p.set_live(key, &value).is_ok(), ok, "set_live {key} = {value:?}");
            }
        }
        ranged += 1;
    }
    assert!(ranged >= 14, "{ranged} ranged keys");
}

#[test]
fn ros_layout_problems_name_lists_rcl_would_mangle() {
    let ok =
        "dinoseg:\n  ros__parameters:\n    input: {topics: [a, b]}\n    colors: {overrides: {\"1\": [255, 0, 0]}}\n";
    assert!(dinoseg::params::ros_layout_problems(ok).is_empty());
    let heads = "dinoseg:\n  ros__parameters:\n    heads: [{type: eomt}]\n";
    let p = dinoseg::params::ros_layout_problems(heads);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("dinoseg.ros__parameters.heads: a list of maps") && p[0].contains("named maps"), "{p:?}");
    let nested = "dinoseg:\n  ros__parameters:\n    input: {topics: [[a], b]}\n    x: [{a: 1}]\n";
    let p = dinoseg::params::ros_layout_problems(nested);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p.iter().any(|l| l.starts_with("dinoseg.ros__parameters.input.topics:")), "{p:?}");
}

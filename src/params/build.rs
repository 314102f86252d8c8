//! The one validation both paths go through: dotted keys in, [`Params`] or every error out.

use super::errors::{one_of, suggest, ErrorKind, ParamErrors};
use super::models::{cross_check, read_backbone, read_heads, HeadInfo};
use super::palette::{Palette, PaletteName};
use super::reader::Reader;
use super::table;
use super::value::{Flat, ParamValue};
use super::{InputParams, InputTopic, NodeParams, Params, Precision, Reliability};
use crate::pipeline::preprocess::{PadMode, Resize, ResizePolicy};
use crate::plan::HeadDesc;
use crate::postprocess::PostprocessConfig;
use crate::topics::{Output, OutputSet};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Parameters ROS adds to every node, or that configure rclcpp rather than us.
const ROS_KEYS: &[&str] = &["use_sim_time", "start_type_description_service"];

/// Validates a flat parameter set; `default_base` (absolute) resolves relative paths unless `base_dir` is set.
pub(crate) fn build(flat: &Flat, default_base: &Path) -> Result<Params, ParamErrors> {
    let mut r = Reader { flat, used: BTreeSet::new(), errors: Vec::new() };
    let base = match r.string("base_dir", "a directory path") {
        Some(s) => r.local_path("base_dir", &s, default_base, true).map_or_else(
            || default_base.to_path_buf(),
            |p| {
                let tidy = lexical(&p);
                if tidy.is_dir() {
                    tidy
                } else {
                    p
                }
            },
        ),
        None => default_base.to_path_buf(),
    };
    let device = r.choice_or_default("device", &["cpu", "cuda", "cuda:N"], |s| {
        crate::device::device_name(s).map(|(_, name)| name)
    });
    let precision = r.choice_or_default("precision", &["fp32", "fp16", "bf16"], Precision::parse);
    let (backbone, backbone_cfg) = read_backbone(&mut r, &base);
    let (heads, heads_complete) = read_heads(&mut r, &base);
    cross_check(&mut r, &backbone, backbone_cfg.as_ref(), &heads, heads_complete);
    let input = read_input(&mut r);
    let resize = read_resize(&mut r);
    let thresholds = read_thresholds(&mut r);
    let descs: Vec<HeadDesc> = heads.iter().map(|h| h.params.describe()).collect();
    let outputs = read_outputs(&mut r, &descs, heads_complete);
    let semantic_from = read_semantic_from(&mut r, &heads, heads_complete);
    let colors = read_colors(&mut r);
    let node = read_node(&mut r, input.topics.len());
    unknown_keys(&mut r);
    if heads_complete && r.errors.is_empty() {
        check_plan(&mut r, &heads, backbone.is_some(), semantic_from.as_deref(), outputs);
    }
    if !r.errors.is_empty() {
        return Err(ParamErrors(r.errors));
    }
    Ok(Params {
        base_dir: base,
        device,
        precision,
        backbone,
        heads: heads.into_iter().map(|h| h.params).collect(),
        input,
        resize,
        thresholds,
        outputs,
        semantic_from,
        colors,
        node,
    })
}

/// The live sections (`thresholds`, `outputs`, `colors`, `node`) read again from `flat`, the other sections kept
/// from `base` (whose values `flat` holds): no file is read. `key`, the one that changed, must be one these
/// sections read (else the table calls live a key that is read at start-up only).
pub(crate) fn rebuild_live(flat: &Flat, base: &Params, key: &str) -> Result<Params, ParamErrors> {
    let mut r = Reader { flat, used: BTreeSet::new(), errors: Vec::new() };
    let thresholds = read_thresholds(&mut r);
    let descs: Vec<HeadDesc> = base.heads.iter().map(|h| h.describe()).collect();
    let outputs = read_outputs(&mut r, &descs, true);
    let colors = read_colors(&mut r);
    let node = read_node(&mut r, base.input.topics.len());
    if !r.used.contains(key) {
        r.err(key, ErrorKind::Conflict, "read at start-up only; restart the node to change it");
    }
    if !r.errors.is_empty() {
        return Err(ParamErrors(r.errors));
    }
    Ok(Params {
        thresholds: PostprocessConfig { dense_resize: base.thresholds.dense_resize, ..thresholds },
        outputs,
        colors,
        node: NodeParams { threads: base.node.threads, ..node },
        ..base.clone()
    })
}

/// `node.*`: how the node schedules frames and reports.
/// The head plan start-up would build ([`crate::plan::HeadPlan`]): its refusals (a head whose results go
/// nowhere, ...) are the file's errors, so `check-params` refuses what the node would.
fn check_plan(r: &mut Reader, heads: &[HeadInfo], backbone: bool, semantic_from: Option<&str>, outputs: OutputSet) {
    if let Err(e) = super::plan_of(heads.iter().map(|h| &h.params), backbone, semantic_from, outputs) {
        r.err(&e.key, ErrorKind::Conflict, e.message);
    }
}

fn read_node(r: &mut Reader, cameras: usize) -> NodeParams {
    let max_batch = r.ranged_int("node.max_batch").map_or(cameras.max(1), |v| v as usize);
    let period = |r: &mut Reader, key: &str| {
        let default = table::default_double(key);
        let v = r.double(key, "a number of seconds").unwrap_or(default);
        if let Some(range) = table::range(key).filter(|range| !range.contains(v) || !v.is_finite()) {
            r.err(key, ErrorKind::BadValue, format!("{v} s is outside {} s", range.text()));
            return default;
        }
        v
    };
    let diagnostics_period = period(r, "node.diagnostics_period");
    let warn_interval = period(r, "node.warn_interval");
    let threads = r.int_or_default("node.threads") as usize;
    NodeParams { max_batch, diagnostics_period, warn_interval, threads }
}

/// `a/b/../c` to `a/c` (the base directory exists, so this only tidies the paths shown and compared).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn read_input(r: &mut Reader) -> InputParams {
    let names = r.strings("input.topics").unwrap_or_else(|| match table::default_of("input.topics") {
        table::Fallback::StrList(l) => l.iter().map(|s| s.to_string()).collect(),
        _ => Vec::new(),
    });
    if names.is_empty() {
        r.err("input.topics", ErrorKind::BadValue, "no topics: give at least one camera topic");
    }
    let mut seen = BTreeSet::new();
    for n in &names {
        if let Err(m) = topic_name(n) {
            r.err("input.topics", ErrorKind::BadValue, format!("`{n}`: {m}"));
        } else if !seen.insert(n.clone()) {
            r.err("input.topics", ErrorKind::BadValue, format!("`{n}` is listed twice"));
        }
    }
    let topics = names.into_iter().map(|name| InputTopic { compressed: name.ends_with("/compressed"), name }).collect();
    let reliability = r.choice_or_default("input.reliability", &Reliability::NAMES, Reliability::parse);
    InputParams { topics, reliability }
}

/// The ROS 2 topic name rules, simplified: letters, digits, `_`, `/` and a leading `~`; no empty token, no
/// token starting with a digit, no trailing `/`.
fn topic_name(n: &str) -> Result<(), String> {
    let body = n.strip_prefix('~').unwrap_or(n);
    let body = body.strip_prefix('/').unwrap_or(body);
    if body.is_empty() {
        return Err("not a topic name".into());
    }
    if let Some(c) = n.chars().skip(1).find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '/')) {
        return Err(format!("`{c}` is not allowed in a topic name (letters, digits, `_` and `/`)"));
    }
    if n.starts_with(|c: char| !(c.is_ascii_alphanumeric() || "_/~".contains(c))) {
        return Err("a topic name starts with a letter, `_`, `/` or `~`".into());
    }
    for token in body.split('/') {
        if token.is_empty() {
            return Err("empty name part (`//` or a trailing `/`)".into());
        }
        if token.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("name part `{token}` starts with a digit"));
        }
    }
    Ok(())
}

fn read_resize(r: &mut Reader) -> ResizePolicy {
    let mode = r.choice_or_default("resize.mode", &["keep", "short_side", "fixed"], |s| {
        match s.trim().to_ascii_lowercase().as_str() {
            m @ ("keep" | "short_side" | "fixed") => Some(m.to_string()),
            _ => None,
        }
    });
    let side = |r: &mut Reader, k: &str| r.ranged_int(k).map(|v| v as u32);
    let short = side(r, "resize.short_side");
    let max_long = side(r, "resize.max_long_side");
    let (height, width) = (side(r, "resize.height"), side(r, "resize.width"));
    let pad = r.choice_or(
        "resize.pad",
        &["bottom_right", "stretch"],
        |s| match s.trim().to_ascii_lowercase().as_str() {
            "bottom_right" => Some(PadMode::BottomRight),
            "stretch" => Some(PadMode::Stretch),
            _ => None,
        },
        || ResizePolicy::default().pad,
    );
    let only = |r: &mut Reader, key: &str, for_mode: &str| {
        if r.given(key) {
            r.err(key, ErrorKind::Conflict, format!("only used with `resize.mode: {for_mode}` (mode is `{mode}`)"));
        }
    };
    let resize = match mode.as_str() {
        "short_side" => {
            only(r, "resize.height", "fixed");
            only(r, "resize.width", "fixed");
            if !r.given("resize.short_side") {
                r.err("resize.short_side", ErrorKind::MissingKey, "required with `resize.mode: short_side`");
            }
            if let (Some(s), Some(m)) = (short, max_long) {
                if m != 0 && m <= s {
                    r.err(
                        "resize.max_long_side",
                        ErrorKind::BadValue,
                        format!("must be greater than `resize.short_side` ({s}), or 0 for no cap, got {m}"),
                    );
                }
            }
            Resize::ShortSide(short.unwrap_or(1))
        }
        "fixed" => {
            only(r, "resize.short_side", "short_side");
            if r.given("resize.max_long_side") {
                r.err("resize.max_long_side", ErrorKind::Conflict, "not used with `resize.mode: fixed`");
            }
            for k in ["resize.height", "resize.width"] {
                if !r.given(k) {
                    r.err(k, ErrorKind::MissingKey, "required with `resize.mode: fixed`");
                }
            }
            Resize::Fixed { height: height.unwrap_or(1), width: width.unwrap_or(1) }
        }
        _ => {
            only(r, "resize.short_side", "short_side");
            only(r, "resize.height", "fixed");
            only(r, "resize.width", "fixed");
            Resize::Keep
        }
    };
    // Absent: the mode's default cap; 0: no cap.
    let max_long_side = match (resize, max_long) {
        (Resize::Fixed { .. }, _) | (_, Some(0)) => None,
        (_, Some(m)) => Some(m),
        (_, None) if r.given("resize.max_long_side") => None, // out of range: reported
        (_, None) => resize.default_max_long_side(),
    };
    ResizePolicy { resize, max_long_side, ..ResizePolicy::default() }.with_pad(pad)
}

fn read_thresholds(r: &mut Reader) -> PostprocessConfig {
    PostprocessConfig {
        score_threshold: r.double_or_default("thresholds.score"),
        query_threshold: r.double_or_default("thresholds.query"),
        mask_threshold: r.double_or_default("thresholds.mask"),
        overlap_threshold: r.double_or_default("thresholds.overlap"),
        top_k: r.int_or_default("thresholds.top_k") as usize,
        dense_resize: PostprocessConfig::default().dense_resize,
    }
}

fn read_outputs(r: &mut Reader, heads: &[HeadDesc], heads_complete: bool) -> OutputSet {
    let semantic_avail = heads.iter().any(|h| h.semantic);
    let instances_avail = heads.iter().any(|h| h.instances);
    let known = heads_complete && !heads.is_empty();
    let sem_why = "needs a linear head or an EoMT head with `outputs: semantic` or `panoptic`";
    let inst_why = "needs an EoMT head with `outputs: instances` or `panoptic`";
    let mut set = OutputSet::EMPTY;
    for o in Output::ALL {
        // Whether a head gives the output, and what it needs else.
        let (possible, why) = match o {
            Output::Semantic | Output::SemanticColor => (semantic_avail, sem_why),
            Output::Instances | Output::InstanceIds | Output::Detections => (instances_avail, inst_why),
            Output::LabelInfo => (true, ""),
            Output::Overlay => (semantic_avail || instances_avail, "needs a semantic map or instances"),
        };
        let key = format!("outputs.{}", o.name());
        // The table's default; where it has none (derived), on when a head gives it.
        let default = match table::default_of(&key) {
            table::Fallback::Bool(b) => b,
            _ => possible,
        };
        let v = r.bool(&key).unwrap_or(default);
        if v && !possible && known && r.given(&key) {
            r.err(&key, ErrorKind::Conflict, format!("no head produces it: {why}"));
        }
        set = set.with(o, v && (possible || !known));
    }
    set
}

/// `outputs.semantic_from`: a configured head that gives a semantic map (a linear head; an EoMT head whose
/// `outputs` is `panoptic` or `semantic`). Empty or absent: None, the segmenter chooses.
fn read_semantic_from(r: &mut Reader, heads: &[HeadInfo], heads_complete: bool) -> Option<String> {
    let key = "outputs.semantic_from";
    let written = r.string(key, "a head name")?;
    let name = written.trim();
    if name.is_empty() {
        return None;
    }
    let gives = |h: &HeadInfo| h.params.describe().semantic;
    let could: Vec<&str> = heads.iter().filter(|h| gives(h)).map(|h| h.params.name.as_str()).collect();
    let could_text = match could.as_slice() {
        [] => "no configured head gives one".to_string(),
        list => format!("heads that give one: {}", one_of(list)),
    };
    match heads.iter().find(|h| h.params.name == name) {
        Some(h) if gives(h) => return Some(name.to_string()),
        Some(_) => r.err(
            key,
            ErrorKind::Conflict,
            format!("head `{name}` gives no semantic map (an EoMT head with `outputs: instances`); {could_text}"),
        ),
        // A head whose type is unreadable: its error is reported already.
        None if !heads_complete && r.flat.entries.keys().any(|k| k.starts_with(&format!("heads.{name}."))) => {}
        None => {
            let shown = crate::error::shorten(name, 64);
            let hint =
                suggest(name, could.iter().copied()).map(|c| format!("did you mean `{c}`? ")).unwrap_or_default();
            r.err(key, ErrorKind::BadValue, format!("no head `{shown}`: {hint}{could_text}"));
        }
    }
    None
}

fn read_colors(r: &mut Reader) -> Palette {
    let name = r.choice_or_default("colors.palette", &PaletteName::NAMES, PaletteName::parse);
    let overlay_alpha = r.double_or_default("colors.overlay_alpha");
    let mut overrides = std::collections::BTreeMap::new();
    let keys: Vec<String> = r.flat.entries.keys().filter(|k| k.starts_with("colors.overrides")).cloned().collect();
    for key in keys {
        let Some(id) = key.strip_prefix("colors.overrides.") else {
            if let Some(v) = r.raw(&key) {
                r.wrong(&key, "a map of class id to colour (`colors.overrides.<id>: [r, g, b]`)", &v);
            }
            continue;
        };
        let Some(value) = r.raw(&key) else { continue };
        let Ok(id) = id.parse::<u16>().map_err(|_| ()).and_then(|i| if i == u16::MAX { Err(()) } else { Ok(i) }) else {
            r.err(&key, ErrorKind::BadValue, format!("`{id}` is not a class id (an integer in 0..=65534)"));
            continue;
        };
        match color(&value) {
            Ok(c) => {
                overrides.insert(id, c);
            }
            Err(m) => r.err(&key, ErrorKind::BadValue, m),
        }
    }
    Palette { name, overrides, overlay_alpha }
}

fn color(v: &ParamValue) -> Result<[u8; 3], String> {
    match v {
        ParamValue::IntArray(c) if c.len() == 3 => {
            let mut out = [0u8; 3];
            for (o, &x) in out.iter_mut().zip(c) {
                *o = u8::try_from(x).map_err(|_| format!("colour components are 0..=255, got {x}"))?;
            }
            Ok(out)
        }
        ParamValue::String(s) if s.len() == 7 && s.starts_with('#') => {
            let byte = |i: usize| {
                u8::from_str_radix(s.get(i..i + 2).unwrap_or("?"), 16)
                    .map_err(|_| format!("`{s}` is not a #rrggbb colour"))
            };
            Ok([byte(1)?, byte(3)?, byte(5)?])
        }
        other => Err(format!("expected [r, g, b] (integers 0..=255) or \"#rrggbb\", got {}", other.describe())),
    }
}

/// Every key nobody read: an unknown key, with the closest known key as a suggestion.
fn unknown_keys(r: &mut Reader) {
    let head_names: BTreeSet<String> = r
        .flat
        .entries
        .keys()
        .filter_map(|k| k.strip_prefix("heads.").and_then(|k| k.split('.').next()).map(String::from))
        .collect();
    // The table's keys (a pattern's fixed start for the others), then each head's.
    let mut known: Vec<String> = Vec::new();
    for k in table::KEYS.iter().map(|k| k.key).filter(|k| !k.starts_with("heads.")) {
        let fixed = k.split_once(".<").map_or(k, |(fixed, _)| fixed);
        known.push(fixed.to_string());
    }
    for name in &head_names {
        known.extend(table::fields("heads.<name>").map(|f| format!("heads.{name}.{f}")));
    }
    let sections = table::sections();
    let keys: Vec<String> = r.flat.entries.keys().filter(|k| !r.used.contains(*k)).cloned().collect();
    for key in keys {
        if ROS_KEYS.contains(&key.as_str()) || key.starts_with("qos_overrides.") {
            continue;
        }
        if key != "heads" && sections.contains(&key.as_str()) {
            let got = r.flat.entries.get(&key).map(|e| e.value.describe()).unwrap_or_default();
            let list: Vec<String> = table::fields(&key).map(|f| format!("{key}.{f}")).collect();
            r.err(&key, ErrorKind::WrongType, format!("expected a map ({}), got {got}", list.join(", ")));
            continue;
        }
        let mut hint = suggest(&key, known.iter().map(String::as_str)).map(String::from);
        if hint.is_none() {
            // The right name in the wrong place: `checkpoint` for `backbone.checkpoint`.
            let last = key.rsplit('.').next().unwrap_or(&key);
            hint = known
                .iter()
                .filter(|k| !k.starts_with("heads."))
                .find(|k| {
                    let kl = k.rsplit('.').next().unwrap_or(k);
                    kl == last || (last.len() > 4 && suggest(last, [kl]).is_some())
                })
                .cloned();
        }
        let msg = match hint {
            Some(h) => format!("unknown key; did you mean `{h}`?"),
            None => "unknown key".to_string(),
        };
        r.err(&key, ErrorKind::UnknownKey, msg);
    }
}

//! `ros2msg` schema texts of every message we read or publish, as rosbag2 stores them in MCAP files.
//!
//! The .msg definitions live in one place: `src/messages/defs/<package>/<Type>.msg` (copies of the Humble/Jazzy
//! `builtin_interfaces`, `std_msgs`, `geometry_msgs`, `sensor_msgs`, `diagnostic_msgs` and `vision_msgs` 4.x files) and, for our own
//! package `dinoseg_interfaces`, the `msg/` folder that the ament package builds from. Only the field lines matter
//! to decoders; comments follow the upstream files.
//!
//! The full text follows rosbag2's `LocalMessageDefinitionSource::get_full_text`
//! (`rosbag2_cpp/src/rosbag2_cpp/message_definitions/local_message_definition_source.cpp`, and
//! `docs/message_definition_encoding.md`): the root type's .msg text, then for each dependency not yet written a
//! newline, a line of 80 `=`, `MSG: <package>/<Type>` and that type's text, depth first, each type's dependencies
//! in sorted order (a `std::set`). Dependencies are the non-primitive field types, with types named without a
//! package resolved in the package of the file that names them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

/// MCAP schema encoding of ROS 2 .msg definitions.
pub const SCHEMA_ENCODING: &str = "ros2msg";

/// (`package/Type`, .msg text) for every type we know.
const DEFINITIONS: &[(&str, &str)] = &[
    ("builtin_interfaces/Time", include_str!("defs/builtin_interfaces/Time.msg")),
    ("std_msgs/Header", include_str!("defs/std_msgs/Header.msg")),
    ("geometry_msgs/Point", include_str!("defs/geometry_msgs/Point.msg")),
    ("geometry_msgs/Quaternion", include_str!("defs/geometry_msgs/Quaternion.msg")),
    ("geometry_msgs/Pose", include_str!("defs/geometry_msgs/Pose.msg")),
    ("geometry_msgs/PoseWithCovariance", include_str!("defs/geometry_msgs/PoseWithCovariance.msg")),
    ("sensor_msgs/Image", include_str!("defs/sensor_msgs/Image.msg")),
    ("sensor_msgs/CompressedImage", include_str!("defs/sensor_msgs/CompressedImage.msg")),
    ("sensor_msgs/RegionOfInterest", include_str!("defs/sensor_msgs/RegionOfInterest.msg")),
    ("diagnostic_msgs/KeyValue", include_str!("defs/diagnostic_msgs/KeyValue.msg")),
    ("diagnostic_msgs/DiagnosticStatus", include_str!("defs/diagnostic_msgs/DiagnosticStatus.msg")),
    ("diagnostic_msgs/DiagnosticArray", include_str!("defs/diagnostic_msgs/DiagnosticArray.msg")),
    ("vision_msgs/Point2D", include_str!("defs/vision_msgs/Point2D.msg")),
    ("vision_msgs/Pose2D", include_str!("defs/vision_msgs/Pose2D.msg")),
    ("vision_msgs/BoundingBox2D", include_str!("defs/vision_msgs/BoundingBox2D.msg")),
    ("vision_msgs/ObjectHypothesis", include_str!("defs/vision_msgs/ObjectHypothesis.msg")),
    ("vision_msgs/ObjectHypothesisWithPose", include_str!("defs/vision_msgs/ObjectHypothesisWithPose.msg")),
    ("vision_msgs/Detection2D", include_str!("defs/vision_msgs/Detection2D.msg")),
    ("vision_msgs/Detection2DArray", include_str!("defs/vision_msgs/Detection2DArray.msg")),
    ("vision_msgs/VisionClass", include_str!("defs/vision_msgs/VisionClass.msg")),
    ("vision_msgs/LabelInfo", include_str!("defs/vision_msgs/LabelInfo.msg")),
    ("dinoseg_interfaces/InstanceMask", include_str!("../../msg/InstanceMask.msg")),
    ("dinoseg_interfaces/InstanceMaskArray", include_str!("../../msg/InstanceMaskArray.msg")),
];

const PRIMITIVES: &[&str] = &[
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
    "uint64", "string",
];

/// `sensor_msgs/msg/Image` or `sensor_msgs/Image` -> `sensor_msgs/Image`.
fn short_name(type_name: &str) -> String {
    match type_name.split('/').collect::<Vec<_>>().as_slice() {
        [package, "msg", name] => format!("{package}/{name}"),
        _ => type_name.to_string(),
    }
}

/// The .msg text of one type (without its dependencies), by `pkg/msg/Type` or `pkg/Type`.
pub fn definition(type_name: &str) -> Option<&'static str> {
    let name = short_name(type_name);
    DEFINITIONS.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}

/// Every type with a schema, as `pkg/msg/Type`.
pub fn type_names() -> impl Iterator<Item = String> {
    DEFINITIONS.iter().map(|(name, _)| {
        let (package, ty) = name.split_once('/').unwrap_or(("", name));
        format!("{package}/msg/{ty}")
    })
}

/// The complex field types a .msg text names, as rosbag2 finds them (`MSG_FIELD_TYPE_REGEX`): the first word of
/// each field line, array suffix removed, primitives skipped, `Type` resolved to `package/Type`.
pub fn dependencies(text: &str, package: &str) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim_start();
        let end = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '/')).unwrap_or(line.len());
        let (ty, mut rest) = line.split_at(end);
        if ty.is_empty() || PRIMITIVES.contains(&ty) {
            continue;
        }
        if let Some(after) = rest.strip_prefix('[') {
            match after.find(']') {
                Some(close) => rest = &after[close + 1..],
                None => continue,
            }
        }
        if !rest.starts_with(char::is_whitespace) {
            continue;
        }
        deps.insert(if ty.contains('/') { ty.to_string() } else { format!("{package}/{ty}") });
    }
    deps
}

fn full_text(root: &str) -> Option<String> {
    fn append(name: &str, out: &mut String, seen: &mut HashSet<String>, depth: u32) -> Option<()> {
        let text = definition(name)?;
        if depth == 0 {
            return None;
        }
        out.push_str(text);
        let package = name.split('/').next().unwrap_or_default();
        for dep in dependencies(text, package) {
            if seen.insert(dep.clone()) {
                out.push('\n');
                out.push_str(&"=".repeat(80));
                out.push_str("\nMSG: ");
                out.push_str(&dep);
                out.push('\n');
                append(&dep, out, seen, depth - 1)?;
            }
        }
        Some(())
    }
    let mut out = String::new();
    append(&short_name(root), &mut out, &mut HashSet::new(), 32)?;
    Some(out)
}

/// The `ros2msg` schema of a type, by `pkg/msg/Type` (or `pkg/Type`): its .msg text followed by every nested
/// type's, as rosbag2 writes it. `None` for a type we have no definition for.
pub fn schema_text(type_name: &str) -> Option<&'static str> {
    static TEXTS: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    let texts = TEXTS
        .get_or_init(|| DEFINITIONS.iter().filter_map(|(name, _)| full_text(name).map(|text| (*name, text))).collect());
    texts.get(short_name(type_name).as_str()).map(String::as_str)
}

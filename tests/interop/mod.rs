//! Shared by tests/messages.rs and tests/bag.rs: sample messages, their JSON form (the field names and values an
//! independent decoder must find), and running `tools/ros2_interop.py` (rosbags, mcap-ros2-support).
#![allow(dead_code)]

use dinoseg::messages::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `tools/ros2_interop.py` with the repo's `.venv` Python (`make test` installs rosbags and mcap-ros2-support).
pub fn interop(args: &[&str]) {
    let python = root().join(".venv").join("bin").join("python");
    let out = Command::new(&python)
        .arg(root().join("tools").join("ros2_interop.py"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (run `make test` to set up .venv): {e}", python.display()));
    assert!(out.status.success(), "ros2_interop.py {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// A fresh directory under the system temp dir, unique per call.
pub fn temp_dir(name: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join("dinoseg-tests").join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Structural equality; numbers compare as f64 (Python writes `1.0` where Rust has `1`).
pub fn assert_json_eq(actual: &Value, expected: &Value, path: &str) {
    match (actual, expected) {
        (Value::Number(a), Value::Number(b)) => {
            assert_eq!(a.as_f64(), b.as_f64(), "{path}: {a} != {b}")
        }
        (Value::Object(a), Value::Object(b)) => {
            let mut ka: Vec<_> = a.keys().collect();
            let mut kb: Vec<_> = b.keys().collect();
            ka.sort();
            kb.sort();
            assert_eq!(ka, kb, "{path}: fields differ");
            for (k, v) in a {
                assert_json_eq(v, &b[k], &format!("{path}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: lengths differ");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_json_eq(x, y, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(actual, expected, "{path}"),
    }
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn time_json(t: &Time) -> Value {
    json!({"sec": t.sec, "nanosec": t.nanosec})
}
pub fn header_json(h: &Header) -> Value {
    json!({"stamp": time_json(&h.stamp), "frame_id": h.frame_id})
}
pub fn image_json(i: &Image) -> Value {
    json!({"header": header_json(&i.header), "height": i.height, "width": i.width, "encoding": i.encoding,
           "is_bigendian": i.is_bigendian, "step": i.step, "data": hex(&i.data)})
}
pub fn compressed_json(c: &CompressedImage) -> Value {
    json!({"header": header_json(&c.header), "format": c.format, "data": hex(&c.data)})
}
pub fn roi_json(r: &RegionOfInterest) -> Value {
    json!({"x_offset": r.x_offset, "y_offset": r.y_offset, "height": r.height, "width": r.width,
           "do_rectify": r.do_rectify})
}
pub fn instances_json(a: &InstanceMaskArray) -> Value {
    let instances: Vec<Value> = a
        .instances
        .iter()
        .map(|m| {
            json!({"id": m.id, "class_id": m.class_id, "class_name": m.class_name, "score": m.score, "area": m.area,
                   "roi": roi_json(&m.roi), "mask": image_json(&m.mask)})
        })
        .collect();
    json!({"header": header_json(&a.header), "instances": instances})
}
fn pose_json(p: &PoseWithCovariance) -> Value {
    let (pos, q) = (&p.pose.position, &p.pose.orientation);
    json!({"pose": {"position": {"x": pos.x, "y": pos.y, "z": pos.z},
                    "orientation": {"x": q.x, "y": q.y, "z": q.z, "w": q.w}},
           "covariance": p.covariance.to_vec()})
}
pub fn detections_json(a: &Detection2DArray) -> Value {
    let detections: Vec<Value> = a
        .detections
        .iter()
        .map(|d| {
            let results: Vec<Value> = d
                .results
                .iter()
                .map(|r| {
                    json!({"hypothesis": {"class_id": r.hypothesis.class_id, "score": r.hypothesis.score},
                           "pose": pose_json(&r.pose)})
                })
                .collect();
            let c = &d.bbox.center;
            json!({"header": header_json(&d.header), "results": results, "id": d.id,
                   "bbox": {"center": {"position": {"x": c.position.x, "y": c.position.y}, "theta": c.theta},
                            "size_x": d.bbox.size_x, "size_y": d.bbox.size_y}})
        })
        .collect();
    json!({"header": header_json(&a.header), "detections": detections})
}
pub fn label_info_json(l: &LabelInfo) -> Value {
    let map: Vec<Value> =
        l.class_map.iter().map(|c| json!({"class_id": c.class_id, "class_name": c.class_name})).collect();
    json!({"header": header_json(&l.header), "class_map": map, "threshold": l.threshold})
}

pub fn diagnostics_json(d: &DiagnosticArray) -> Value {
    let status: Vec<Value> = d
        .status
        .iter()
        .map(|s| {
            let values: Vec<Value> = s.values.iter().map(|kv| json!({"key": kv.key, "value": kv.value})).collect();
            json!({"level": s.level, "name": s.name, "message": s.message, "hardware_id": s.hardware_id,
                   "values": values})
        })
        .collect();
    json!({"header": header_json(&d.header), "status": status})
}

pub fn sample_diagnostics() -> DiagnosticArray {
    let status = |level: u8, name: &str, values: Vec<KeyValue>| DiagnosticStatus {
        level,
        name: name.into(),
        message: "ok — ü".into(),
        hardware_id: "cuda:0".into(),
        values,
    };
    DiagnosticArray {
        header: header(),
        status: vec![
            status(DiagnosticStatus::OK, "dinoseg: /front/image_raw", vec![KeyValue::new("input_rate_hz", "30.00")]),
            status(DiagnosticStatus::WARN, "dinoseg: /rear/image_raw", vec![]),
        ],
    }
}

pub fn header() -> Header {
    Header::new(Time { sec: 1_700_000_123, nanosec: 999_999_999 }, "camera_color_optical_frame")
}

/// An odd-sized rgb8 image with 3 bytes of row padding (step 18 for width 5).
pub fn sample_image() -> Image {
    let data = (0..18 * 3).map(|i| (i * 7 % 251) as u8).collect();
    Image { header: header(), height: 3, width: 5, encoding: "rgb8".into(), is_bigendian: 0, step: 18, data }
}

pub fn sample_instances() -> InstanceMaskArray {
    let h = header();
    let mask = |id: u32, class_id: u32, name: &str, score: f32, roi: RegionOfInterest| {
        let data: Vec<u8> =
            (0..roi.width * roi.height).map(|i| if (i + id).is_multiple_of(3) { 0 } else { 255 }).collect();
        let area = data.iter().filter(|&&v| v == 255).count() as u32;
        let mask = InstanceMask::mask_image(&h, &roi, data);
        InstanceMask { id, class_id, class_name: name.into(), score, area, roi, mask }
    };
    let r1 = RegionOfInterest { x_offset: 3, y_offset: 1, height: 3, width: 5, do_rectify: false };
    let r2 = RegionOfInterest { x_offset: 0, y_offset: 4, height: 1, width: 2, do_rectify: false };
    InstanceMaskArray {
        header: h.clone(),
        instances: vec![mask(1, 0, "person", 0.875, r1), mask(2, 59, "pôt", 0.5, r2)],
    }
}

pub fn sample_detections() -> Detection2DArray {
    let h = header();
    let det = |id: &str, class: &str, score: f64, bbox: BoundingBox2D| {
        let mut pose = PoseWithCovariance::default();
        pose.covariance[0] = 0.25;
        pose.covariance[35] = -1.5;
        pose.pose.position = Point { x: 1.0, y: 2.5, z: -3.0 };
        let hypothesis = ObjectHypothesis { class_id: class.into(), score };
        Detection2D {
            header: h.clone(),
            results: vec![ObjectHypothesisWithPose { hypothesis, pose }],
            bbox,
            id: id.into(),
        }
    };
    let empty = Detection2D { header: h.clone(), ..Default::default() };
    Detection2DArray {
        header: h.clone(),
        detections: vec![
            det("1", "person", 0.875, BoundingBox2D::from_pixel_rect(3, 1, 5, 3)),
            det("2", "potted plant", 0.5, BoundingBox2D::from_pixel_rect(0, 4, 2, 1)),
            empty,
        ],
    }
}

pub fn sample_label_info() -> LabelInfo {
    let names = ["wall", "building", "sky", "floor", "tree"];
    let mut class_map: Vec<VisionClass> =
        names.iter().enumerate().map(|(i, n)| VisionClass { class_id: i as u16, class_name: n.to_string() }).collect();
    class_map.push(VisionClass { class_id: 255, class_name: "UNLABELED".into() });
    LabelInfo { header: header(), class_map, threshold: 0.25 }
}

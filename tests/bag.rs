//! ROS 2 bags (MCAP): written in Rust and read back in Rust and by Python `mcap_ros2` (with only the schemas in the
//! bag); written by Python `mcap_ros2` (zstd chunks, out-of-order log times, every camera encoding, a malformed
//! frame) and read in Rust; rosbag2 directories; corrupt and truncated files.

mod interop;

use dinoseg::bag::{BagCompression, BagError, BagMessage, BagReader, BagWriter};
use dinoseg::messages::*;
use interop::*;
use serde_json::Value;
use std::path::Path;

const IMAGE: &str = "/camera/image_raw";
const COMPRESSED: &str = "/camera/image_raw/compressed";
const INSTANCES: &str = "/dinoseg/instances";
const DETECTIONS: &str = "/dinoseg/detections";
const LABELS: &str = "/dinoseg/label_info";

/// (topic, type, log time, CDR bytes, JSON of the values), in log-time order.
fn published() -> Vec<(&'static str, &'static str, u64, Vec<u8>, Value)> {
    let image = sample_image();
    let mut second = sample_image();
    second.header.stamp.nanosec = 5;
    second.data.reverse();
    let compressed = CompressedImage { header: header(), format: "png".into(), data: vec![137, 80, 78, 71] };
    let (instances, detections, labels) = (sample_instances(), sample_detections(), sample_label_info());
    vec![
        (LABELS, LabelInfo::TYPE_NAME, 1_000, labels.to_cdr(), label_info_json(&labels)),
        (IMAGE, Image::TYPE_NAME, 2_000, image.to_cdr(), image_json(&image)),
        (COMPRESSED, CompressedImage::TYPE_NAME, 2_500, compressed.to_cdr(), compressed_json(&compressed)),
        (INSTANCES, InstanceMaskArray::TYPE_NAME, 3_000, instances.to_cdr(), instances_json(&instances)),
        (DETECTIONS, Detection2DArray::TYPE_NAME, 3_000, detections.to_cdr(), detections_json(&detections)),
        (IMAGE, Image::TYPE_NAME, 4_000, second.to_cdr(), image_json(&second)),
    ]
}

/// Writes `published()` with the last image first (out of log-time order) and tiny chunks (several chunks).
fn write_bag(path: &Path, compression: BagCompression) {
    let mut writer = BagWriter::create_with(path, compression).unwrap();
    let mut channels = std::collections::HashMap::new();
    let mut messages = published();
    messages.rotate_right(1);
    for (topic, ty, t, bytes, _) in &messages {
        if !channels.contains_key(topic) {
            channels.insert(*topic, writer.add_topic(topic, ty).unwrap());
        }
        writer.write(channels[topic], *t, *t + 1, bytes).unwrap();
    }
    writer.finish().unwrap();
}

fn read_all(path: &Path) -> Vec<BagMessage> {
    let bag = BagReader::open(path).unwrap();
    bag.messages(&[]).unwrap().collect::<Result<Vec<_>, _>>().unwrap()
}

#[test]
fn rust_bag_reads_back_in_rust_and_in_mcap_ros2() {
    let dir = temp_dir("bag-rust");
    for compression in [BagCompression::Zstd, BagCompression::None, BagCompression::Lz4] {
        let path = dir.join(format!("{compression:?}.mcap"));
        write_bag(&path, compression);
        let bag = BagReader::open(&path).unwrap();
        let topics: Vec<_> =
            bag.topics().iter().map(|t| (t.topic.as_str(), t.type_name.as_str(), t.message_count)).collect();
        assert_eq!(
            topics,
            [
                (IMAGE, "sensor_msgs/msg/Image", 2),
                (COMPRESSED, "sensor_msgs/msg/CompressedImage", 1),
                (DETECTIONS, "vision_msgs/msg/Detection2DArray", 1),
                (INSTANCES, "dinoseg_interfaces/msg/InstanceMaskArray", 1),
                (LABELS, "vision_msgs/msg/LabelInfo", 1),
            ]
        );
        assert!(bag.topics().iter().all(|t| t.message_encoding == "cdr"));
        let read = read_all(&path);
        let expected = published();
        assert_eq!(read.len(), expected.len());
        // Log-time order; the two messages at 3000 keep their write order.
        for (m, (topic, ty, t, bytes, _)) in read.iter().zip(&expected) {
            assert_eq!((m.topic.as_str(), m.type_name.as_str(), m.log_time, m.publish_time), (*topic, *ty, *t, t + 1));
            assert_eq!(&m.data, bytes, "{topic} at {t}");
        }
        assert_eq!(InstanceMaskArray::from_cdr(&read[3].data).unwrap(), sample_instances());
        assert_eq!(Detection2DArray::from_cdr(&read[4].data).unwrap(), sample_detections());
        // Topic selection.
        let images: Vec<_> = bag.messages(&[IMAGE]).unwrap().map(|m| m.unwrap().log_time).collect();
        assert_eq!(images, [2_000, 4_000]);
        match bag.messages(&["/camera/imag_raw"]) {
            Err(BagError::UnknownTopic { topic, available, .. }) => {
                assert_eq!(topic, "/camera/imag_raw");
                assert!(available.contains(IMAGE));
            }
            other => panic!("expected UnknownTopic, got {:?}", other.map(|_| ())),
        }
    }
    // mcap_ros2 decodes every message with only the schemas stored in the bag.
    let path = dir.join("Zstd.mcap");
    let out = dir.join("mcap_ros2.json");
    interop(&["bag-read", path.to_str().unwrap(), out.to_str().unwrap()]);
    let rows = read_json(&out);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), published().len());
    for (row, (topic, ty, t, _, json)) in rows.iter().zip(published()) {
        assert_eq!(
            (row["topic"].as_str(), row["type"].as_str(), row["log_time"].as_u64()),
            (Some(topic), Some(ty), Some(t))
        );
        assert_eq!((row["profile"].as_str(), row["encoding"].as_str()), (Some("ros2"), Some("ros2msg")));
        assert_eq!(row["message_encoding"], "cdr");
        assert_json_eq(&row["message"], &json, &format!("{topic}@{t}"));
    }
}

#[test]
fn mcap_ros2_bag_reads_in_rust() {
    let dir = temp_dir("bag-python");
    let (path, out) = (dir.join("camera.mcap"), dir.join("expected.json"));
    interop(&["bag-write", path.to_str().unwrap(), out.to_str().unwrap()]);
    let expected = read_json(&out);
    let expected = expected.as_array().unwrap();
    let bag = BagReader::open(&path).unwrap();
    assert_eq!(bag.topic(IMAGE).map(|t| (t.type_name.as_str(), t.message_count)), Some(("sensor_msgs/msg/Image", 8)));
    assert_eq!(bag.topic(COMPRESSED).map(|t| t.message_count), Some(2));
    let read = read_all(&path);
    assert_eq!(read.len(), expected.len());
    let mut pixel_errors = 0;
    for (m, e) in read.iter().zip(expected) {
        let at = format!("{}@{}", m.topic, m.log_time);
        assert_eq!((Some(m.topic.as_str()), Some(m.log_time)), (e["topic"].as_str(), e["log_time"].as_u64()));
        assert_eq!(Some(m.publish_time), e["publish_time"].as_u64(), "{at}");
        assert_eq!(Some(m.type_name.as_str()), e["type"].as_str(), "{at}");
        if m.type_name == Image::TYPE_NAME {
            assert_json_eq(&image_json(&Image::from_cdr(&m.data).unwrap()), &e["message"], &at);
            // The CDR is valid for every frame; the malformed one (data shorter than step * height) fails in the
            // pixel decoder, which the runner reports.
            let view = ImageRef::from_cdr(&m.data).unwrap();
            if dinoseg::pipeline::decode_image(&view.frame()).is_err() {
                pixel_errors += 1;
                assert!(view.data.len() < (view.step * view.height) as usize, "{at}: a valid frame failed to decode");
            }
        } else {
            let c = CompressedImage::from_cdr(&m.data).unwrap();
            assert_json_eq(&compressed_json(&c), &e["message"], &at);
            if c.format == "png" {
                let rgb = dinoseg::pipeline::decode_compressed(&c.frame()).unwrap();
                assert_eq!(rgb.dimensions(), (6, 4));
            }
        }
    }
    assert_eq!(pixel_errors, 1);
}

#[test]
fn rosbag2_directories_read_in_split_order() {
    let dir = temp_dir("bag-dir");
    std::fs::write(dir.join("metadata.yaml"), "rosbag2_bagfile_information:\n  storage_identifier: mcap\n").unwrap();
    for (i, n) in [1, 10, 2].iter().enumerate() {
        let mut writer = BagWriter::create(dir.join(format!("run_{n}.mcap"))).unwrap();
        let channel = writer.add_topic(IMAGE, "sensor_msgs/msg/Image").unwrap();
        let mut image = sample_image();
        image.header.stamp.sec = *n;
        writer.write(channel, *n as u64 * 100, 0, &image.to_cdr()).unwrap();
        if i == 0 {
            let labels = writer.add_topic(LABELS, "vision_msgs/msg/LabelInfo").unwrap();
            writer.write(labels, 50, 50, &sample_label_info().to_cdr()).unwrap();
        }
        writer.finish().unwrap();
    }
    let bag = BagReader::open(&dir).unwrap();
    let names: Vec<_> = bag.files().iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
    assert_eq!(names, ["run_1.mcap", "run_2.mcap", "run_10.mcap"]);
    assert_eq!(bag.topic(IMAGE).unwrap().message_count, 3);
    let stamps: Vec<i32> =
        bag.messages(&[IMAGE]).unwrap().map(|m| Image::from_cdr(&m.unwrap().data).unwrap().header.stamp.sec).collect();
    assert_eq!(stamps, [1, 2, 10]);
    assert_eq!(bag.messages(&[]).unwrap().count(), 4);
}

#[test]
fn corrupt_and_truncated_bags_are_errors_naming_the_file() {
    let dir = temp_dir("bag-bad");
    let junk = dir.join("junk.mcap");
    std::fs::write(&junk, b"this is not an mcap file at all").unwrap();
    let err = BagReader::open(&junk).unwrap_err();
    assert!(matches!(err, BagError::NotMcap { .. }) && err.to_string().contains("junk.mcap"), "{err}");
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(BagReader::open(&empty), Err(BagError::NoMcapFiles { .. })));
    assert!(matches!(BagReader::open(dir.join("missing.mcap")), Err(BagError::Io { .. })));

    let good = dir.join("good.mcap");
    write_bag(&good, BagCompression::Zstd);
    let bytes = std::fs::read(&good).unwrap();
    let total = published().len();
    // Truncated anywhere past the header: the messages before the cut, then an error naming the file.
    for cut in [bytes.len() - 1, bytes.len() * 2 / 3, bytes.len() / 2, 40] {
        let path = dir.join(format!("cut{cut}.mcap"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let bag = BagReader::open(&path).unwrap();
        let results: Vec<_> = bag.messages(&[]).unwrap().collect();
        let err = results.last().unwrap().as_ref().unwrap_err();
        assert!(err.to_string().contains(&format!("cut{cut}.mcap")), "{err}");
        assert!(results.len() <= total + 1, "cut at {cut}");
        assert!(results[..results.len() - 1].iter().all(|r| r.is_ok()));
    }
    // Corruption anywhere (8 bytes every 61): errors or other bytes, never a panic or a hang.
    let mut errors = 0;
    for at in (8..bytes.len() - 8).step_by(61) {
        let mut corrupt = bytes.clone();
        corrupt[at..at + 8].iter_mut().for_each(|b| *b ^= 0xa5);
        let path = dir.join("corrupt.mcap");
        std::fs::write(&path, &corrupt).unwrap();
        match BagReader::open(&path) {
            Ok(bag) => {
                let results: Vec<_> = bag.messages(&[]).unwrap().take(total + 1).collect();
                if let Some(Err(e)) = results.last() {
                    errors += 1;
                    assert!(e.to_string().contains("corrupt.mcap"), "{e}");
                }
            }
            Err(e) => {
                errors += 1;
                assert!(e.to_string().contains("corrupt.mcap"), "{e}");
            }
        }
    }
    assert!(errors > 0);
    // A type without a definition cannot be written.
    let mut writer = BagWriter::create(dir.join("w.mcap")).unwrap();
    assert!(matches!(writer.add_topic("/points", "sensor_msgs/msg/PointCloud2"), Err(BagError::UnknownType { .. })));
}

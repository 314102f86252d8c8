//! Bags for the runner's integrity and hostile-input tests: small rgb8 camera frames written with the `mcap`
//! crate directly (chunk size, compression and CRCs chosen per test), the chunk offsets of a file, and the
//! parameters file of the tiny EoMT fixture.

#![allow(dead_code)]

use dinoseg::messages::{schema_text, Header, Image, RosMessage, Time, SCHEMA_ENCODING};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const TOPIC: &str = "/camera/image_raw";

/// An rgb8 frame `i` of `width` x `height`, stamped i * 0.1 s.
pub fn frame(i: u64, width: u32, height: u32) -> Vec<u8> {
    Image {
        header: Header::new(Time::from_nanos(1_000_000_000 + i * 100_000_000), "camera".to_string()),
        height,
        width,
        encoding: "rgb8".into(),
        is_bigendian: 0,
        step: width * 3,
        data: (0..width * height * 3).map(|p| (p as u64 * 7 + i * 13) as u8).collect(),
    }
    .to_cdr()
}

/// How a test bag is written.
#[derive(Clone, Copy)]
pub struct BagSpec {
    pub frames: u64,
    pub width: u32,
    pub height: u32,
    pub compression: Option<mcap::Compression>,
    /// Bytes per chunk (1: one message per chunk).
    pub chunk_size: u64,
    pub chunk_crcs: bool,
}

impl Default for BagSpec {
    fn default() -> Self {
        BagSpec {
            frames: 6,
            width: 32,
            height: 24,
            compression: Some(mcap::Compression::Zstd),
            chunk_size: 1,
            chunk_crcs: true,
        }
    }
}

/// Writes a bag of camera frames on [`TOPIC`]; returns its bytes.
pub fn write_bag(path: &Path, spec: BagSpec) -> Vec<u8> {
    let ty = "sensor_msgs/msg/Image";
    {
        let file = std::io::BufWriter::new(std::fs::File::create(path).expect("create bag"));
        let mut w = mcap::WriteOptions::new()
            .profile("ros2")
            .compression(spec.compression)
            .chunk_size(Some(spec.chunk_size))
            .calculate_chunk_crcs(spec.chunk_crcs)
            .create(file)
            .expect("mcap writer");
        let schema = w.add_schema(ty, SCHEMA_ENCODING, schema_text(ty).expect("schema").as_bytes()).expect("schema");
        let meta = BTreeMap::from([("offered_qos_profiles".to_string(), String::new())]);
        let channel = w.add_channel(schema, TOPIC, "cdr", &meta).expect("channel");
        for i in 0..spec.frames {
            let t = 1_000_000_000 + i * 100_000_000;
            let header =
                mcap::records::MessageHeader { channel_id: channel, sequence: i as u32, log_time: t, publish_time: t };
            w.write_to_known_channel(&header, &frame(i, spec.width, spec.height)).expect("write");
        }
        w.finish().expect("finish");
    }
    std::fs::read(path).expect("read bag")
}

/// (offset, record length) of every top-level chunk record, in file order.
pub fn chunks(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 8;
    while pos + 9 <= bytes.len() {
        let len = u64::from_le_bytes(bytes[pos + 1..pos + 9].try_into().expect("8 bytes")) as usize;
        if bytes[pos] == 0x06 {
            out.push((pos, len));
        }
        if bytes[pos] == 0x0f {
            break;
        }
        pos += 9 + len;
    }
    out
}

/// Where the compressed bytes of the chunk at `offset` start (after its header) and how many there are.
pub fn chunk_payload(bytes: &[u8], offset: usize) -> (usize, usize) {
    let body = offset + 9;
    let name_len = u32::from_le_bytes(bytes[body + 28..body + 32].try_into().expect("4 bytes")) as usize;
    let size_at = body + 32 + name_len;
    let size = u64::from_le_bytes(bytes[size_at..size_at + 8].try_into().expect("8 bytes")) as usize;
    (size_at + 8, size)
}

/// A parameters file running the tiny EoMT fixture on [`TOPIC`], semantic output only.
pub fn params(dir: &Path) -> PathBuf {
    let fx = crate::common::eomt_fixtures();
    let text = format!(
        "dinoseg:\n  ros__parameters:\n    device: cpu\n    precision: fp32\n    heads:\n      scene:\n        type: eomt\n        checkpoint: {}\n        outputs: panoptic\n    input:\n      topics: [{TOPIC}]\n    outputs: {{semantic: true}}\n",
        fx.join("eomt_p0").display(),
    );
    let p = dir.join("params.yaml");
    std::fs::write(&p, text).expect("write params");
    p
}

/// `dinoseg run` with these flags and values.
pub fn dinoseg_run(args: &[(&str, &Path)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dinoseg"));
    cmd.arg("run");
    for (flag, value) in args {
        cmd.arg(flag).arg(value);
    }
    cmd.output().expect("run dinoseg")
}

/// The statistics JSON of a run.
pub fn stats(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("stats json")
}

/// Messages per topic in a bag written by the runner.
pub fn topic_counts(path: &Path) -> BTreeMap<String, u64> {
    let bag = dinoseg::bag::BagReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut counts = BTreeMap::new();
    for m in bag.messages(&[]).expect("messages") {
        *counts.entry(m.unwrap_or_else(|e| panic!("{e}")).topic).or_insert(0) += 1;
    }
    counts
}

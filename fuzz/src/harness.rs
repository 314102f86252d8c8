//! What each fuzz target does with its input bytes: every parser of dinoseg that reads outside data, called
//! through the crate's public API exactly as the node, the runner and `dinoseg check-params` call it.
//!
//! A target asserts nothing about Ok or Err (it returns whether the input was accepted, for the seed checks of
//! tests/mutation.rs): an input passes when the call returns. A panic, an abort (a C++
//! exception escaping libtorch), a hang or an allocation past libFuzzer's `-rss_limit_mb` is the finding. The one
//! property checked besides is that a decoded CDR message re-encodes to bytes that decode to the same bytes again
//! (our writer and reader agree).
//!
//! Parsers that only take a path get the bytes through a file in a fresh [`Scratch`] directory (under
//! `/dev/shm` when it exists, unique per process and call, removed afterwards).
//!
//! This file is also compiled into the main crate's `tests/mutation.rs` (`#[path]` include): keep it free of
//! anything but `dinoseg`, `tch`, `image` and `std`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use dinoseg::messages::*;
use dinoseg::pipeline::{decode_compressed, decode_image, decode_message, CompressedFrame, ImageFrame};

/// A fuzz target body. It returns whether the input was accepted (the seeds must be: tests/mutation.rs checks),
/// which the fuzz targets ignore.
pub type Target = fn(&[u8]) -> bool;

/// Every target by name: the names of fuzz/fuzz_targets/*.rs and fuzz/corpus/*.
pub const TARGETS: &[(&str, Target)] = &[
    ("cdr_messages", cdr_messages),
    ("image_decode", image_decode),
    ("compressed", compressed),
    ("mcap", mcap),
    ("params_yaml", params_yaml),
    ("safetensors_header", safetensors_header),
    ("index_json", index_json),
    ("model_config", model_config),
    ("pth_pickle", pth_pickle),
    ("linear_head_meta", linear_head_meta),
    ("labels", labels),
    ("coco_json", coco_json),
    ("coco_rle", coco_rle),
    ("eval_panoptic_json", eval_panoptic_json),
    ("label_png", label_png),
];

/// The message types of [`cdr_messages`], selected by the input's first byte (modulo the length). The seed
/// generator (tools/fuzz_seeds.py) writes its seeds with this order.
pub const CDR_TYPES: &[&str] = &[
    Image::TYPE_NAME,
    CompressedImage::TYPE_NAME,
    RegionOfInterest::TYPE_NAME,
    Header::TYPE_NAME,
    Time::TYPE_NAME,
    KeyValue::TYPE_NAME,
    DiagnosticStatus::TYPE_NAME,
    DiagnosticArray::TYPE_NAME,
    Point::TYPE_NAME,
    Quaternion::TYPE_NAME,
    Pose::TYPE_NAME,
    PoseWithCovariance::TYPE_NAME,
    Point2D::TYPE_NAME,
    Pose2D::TYPE_NAME,
    BoundingBox2D::TYPE_NAME,
    ObjectHypothesis::TYPE_NAME,
    ObjectHypothesisWithPose::TYPE_NAME,
    Detection2D::TYPE_NAME,
    Detection2DArray::TYPE_NAME,
    VisionClass::TYPE_NAME,
    LabelInfo::TYPE_NAME,
    InstanceMask::TYPE_NAME,
    InstanceMaskArray::TYPE_NAME,
];

/// A directory for one call's files, removed on drop.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// A new empty directory, unique per process and call.
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let shm = Path::new("/dev/shm");
        let root = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = root.join(format!("dinoseg-fuzz-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            // The harness's own setup, not the input: failing loudly is right.
            panic!("fuzz harness: cannot create {}: {e}", dir.display());
        }
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `bytes` to `name` in the directory and returns the path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        if let Err(e) = std::fs::write(&path, bytes) {
            panic!("fuzz harness: cannot write {}: {e}", path.display());
        }
        path
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Splits the first byte off (0 for an empty input).
fn split_first(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&b, rest)) => (b, rest),
        None => (0, data),
    }
}

/// Decodes `buf` as `T`; a decoded message must re-encode to bytes that decode and re-encode identically.
fn decode_as<T: RosMessage>(buf: &[u8]) -> bool {
    let Ok(message) = T::from_cdr(buf) else { return false };
    let once = message.to_cdr();
    match T::from_cdr(&once) {
        Ok(again) => assert!(again.to_cdr() == once, "{}: re-encoding changed the message", T::TYPE_NAME),
        Err(e) => panic!("{}: our own encoding does not decode: {e}", T::TYPE_NAME),
    }
    true
}

/// CDR messages of every type we decode or publish: the first byte selects the type ([`CDR_TYPES`]), the rest
/// is the CDR buffer with its encapsulation header. Camera messages also go through the borrowed views and the
/// node's decode path ([`decode_message`]).
pub fn cdr_messages(data: &[u8]) -> bool {
    let (selector, buf) = split_first(data);
    match usize::from(selector) % CDR_TYPES.len() {
        0 => {
            if let Ok(view) = ImageRef::from_cdr(buf) {
                let _ = view.into_owned();
            }
            let _ = decode_message(buf, false);
            decode_as::<Image>(buf)
        }
        1 => {
            if let Ok(view) = CompressedImageRef::from_cdr(buf) {
                let _ = view.into_owned();
            }
            let _ = decode_message(buf, true);
            decode_as::<CompressedImage>(buf)
        }
        2 => decode_as::<RegionOfInterest>(buf),
        3 => decode_as::<Header>(buf),
        4 => decode_as::<Time>(buf),
        5 => decode_as::<KeyValue>(buf),
        6 => decode_as::<DiagnosticStatus>(buf),
        7 => decode_as::<DiagnosticArray>(buf),
        8 => decode_as::<Point>(buf),
        9 => decode_as::<Quaternion>(buf),
        10 => decode_as::<Pose>(buf),
        11 => decode_as::<PoseWithCovariance>(buf),
        12 => decode_as::<Point2D>(buf),
        13 => decode_as::<Pose2D>(buf),
        14 => decode_as::<BoundingBox2D>(buf),
        15 => decode_as::<ObjectHypothesis>(buf),
        16 => decode_as::<ObjectHypothesisWithPose>(buf),
        17 => decode_as::<Detection2D>(buf),
        18 => decode_as::<Detection2DArray>(buf),
        19 => decode_as::<VisionClass>(buf),
        20 => decode_as::<LabelInfo>(buf),
        21 => decode_as::<InstanceMask>(buf),
        _ => decode_as::<InstanceMaskArray>(buf),
    }
}

/// Encoding names [`image_decode`] tries beside the library's own ([`Encoding::NAMES`]): a spaced upper-case
/// spelling and one it does not decode.
const EXTRA_ENCODINGS: [&str; 2] = [" RGB8 ", "32FC1"];

/// The encoding name byte `selector` picks: the library's names in order, then [`EXTRA_ENCODINGS`].
fn encoding_name(selector: u8) -> &'static str {
    let names = &dinoseg::pipeline::decode::Encoding::NAMES;
    let i = usize::from(selector) % (names.len() + EXTRA_ENCODINGS.len());
    names.get(i).map_or_else(|| EXTRA_ENCODINGS[i - names.len()], |(n, _)| n)
}

/// Splits up to `n` bytes off.
fn take(b: &[u8], n: usize) -> (&[u8], &[u8]) {
    b.split_at(n.min(b.len()))
}

/// A little-endian u32 from up to 4 bytes (missing bytes are 0).
fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    for (d, s) in a.iter_mut().zip(b) {
        *d = *s;
    }
    u32::from_le_bytes(a)
}

/// Raw `sensor_msgs/Image` frames to RGB8 ([`decode_image`]). Byte 0 picks the encoding ([`encoding_name`]); byte
/// 1 holds flags: bit 0 big-endian, bit 1 a raw 32-bit step (else width x bytes per pixel + a padding byte),
/// bit 2 raw 32-bit width and height (else one byte each), bit 7 the whole rest is a CDR `Image` message
/// through the node's path ([`decode_message`]). The pixels follow the header fields.
pub fn image_decode(data: &[u8]) -> bool {
    let (selector, rest) = split_first(data);
    let (flags, rest) = split_first(rest);
    if flags & 0x80 != 0 {
        return decode_message(rest, false).is_ok();
    }
    let encoding = encoding_name(selector);
    let (width, height, rest) = if flags & 4 != 0 {
        let (w, rest) = take(rest, 4);
        let (h, rest) = take(rest, 4);
        (le_u32(w), le_u32(h), rest)
    } else {
        let (w, rest) = split_first(rest);
        let (h, rest) = split_first(rest);
        (u32::from(w), u32::from(h), rest)
    };
    let bpp = match dinoseg::pipeline::Encoding::parse(encoding) {
        Ok(e) => e.bytes_per_pixel(),
        Err(_) => 1,
    };
    let (step, pixels) = if flags & 2 != 0 {
        let (s, rest) = take(rest, 4);
        (le_u32(s), rest)
    } else {
        let (pad, rest) = split_first(rest);
        (width.saturating_mul(bpp).saturating_add(u32::from(pad % 8)), rest)
    };
    let frame = ImageFrame { height, width, encoding, is_bigendian: flags & 1 != 0, step, data: pixels };
    decode_image(&frame).is_ok()
}

/// Format strings of [`compressed`] (selected by the first byte).
pub const FORMATS: &[&str] =
    &["jpeg", "png", "bgr8; jpeg compressed bgr8", "rgb8; compressed png", "", "16UC1; compressedDepth png", "bmp"];

/// Compressed frames and image files. First byte: below 0x40, `sensor_msgs/CompressedImage` data with the
/// format it selects ([`FORMATS`]) through [`decode_compressed`]; 0x40..0x80, an image file's bytes decoded by
/// content with the formats the runner enables (the `image` crate's default limits, as the runner's reader);
/// from 0x80, a CDR `CompressedImage` message through the node's path ([`decode_message`]).
pub fn compressed(data: &[u8]) -> bool {
    let (selector, rest) = split_first(data);
    match selector {
        0..=0x3f => {
            let format = FORMATS[usize::from(selector) % FORMATS.len()];
            decode_compressed(&CompressedFrame { format, data: rest }).is_ok()
        }
        0x40..=0x7f => image::load_from_memory(rest).map(|img| img.into_rgb8()).is_ok(),
        _ => decode_message(rest, true).is_ok(),
    }
}

/// Most messages one bag input is read for (bounds the time of one execution).
const MCAP_MESSAGES: usize = 10_000;

/// A `.mcap` file: [`dinoseg::bag::BagReader::open`] (magic, summary or linear scan), its topics, every
/// message (chunks decompressed, up to [`MCAP_MESSAGES`]), and each camera message through the node's decode
/// path, as `dinoseg run` reads a bag.
pub fn mcap(data: &[u8]) -> bool {
    let scratch = Scratch::new();
    let path = scratch.write("input.mcap", data);
    let Ok(reader) = dinoseg::bag::BagReader::open(&path) else { return false };
    let _ = reader.topics().iter().map(|t| t.message_count).sum::<u64>();
    let Ok(messages) = reader.messages(&[]) else { return false };
    let mut read = 0;
    for message in messages.take(MCAP_MESSAGES) {
        let Ok(message) = message else { break };
        read += 1;
        match message.type_name.as_str() {
            "sensor_msgs/msg/Image" => drop(decode_message(&message.data, false)),
            "sensor_msgs/msg/CompressedImage" => drop(decode_message(&message.data, true)),
            _ => {}
        }
    }
    read > 0
}

/// A params file: what `dinoseg check-params FILE` runs ([`dinoseg::params::check_file`]; relative paths in
/// it resolve inside the scratch directory), and the ROS layout check and flattening the node does on the text.
/// Accepted: the text flattens (the checkpoints a real file names are not there).
pub fn params_yaml(data: &[u8]) -> bool {
    let scratch = Scratch::new();
    let path = scratch.write("params.yaml", data);
    let _ = dinoseg::params::check_file(&path);
    let text = String::from_utf8_lossy(data);
    let _ = dinoseg::params::ros_layout_problems(&text);
    dinoseg::params::flatten_yaml(&text).is_ok()
}

/// A `.safetensors` file read as a checkpoint ([`dinoseg::checkpoint::read_safetensors`]: header, offsets,
/// dtypes, tensors).
pub fn safetensors_header(data: &[u8]) -> bool {
    let scratch = Scratch::new();
    let path = scratch.write("model.safetensors", data);
    dinoseg::checkpoint::read_safetensors(&path).is_ok()
}

/// A one-tensor safetensors shard (`x`: F32 [2] = 1, 2) for [`index_json`], as safetensors 0.6 writes it.
pub fn tiny_shard() -> Vec<u8> {
    let header = br#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(&1f32.to_le_bytes());
    out.extend_from_slice(&2f32.to_le_bytes());
    out
}

/// A sharded transformers directory: the input is `model.safetensors.index.json`, next to two valid shards
/// (`model-00001-of-00002.safetensors`, `model-00002-of-00002.safetensors`, each with one tensor `x`), read with
/// [`dinoseg::checkpoint::read_transformers_weights`].
pub fn index_json(data: &[u8]) -> bool {
    let scratch = Scratch::new();
    let shard = tiny_shard();
    scratch.write("model-00001-of-00002.safetensors", &shard);
    scratch.write("model-00002-of-00002.safetensors", &shard);
    scratch.write("model.safetensors.index.json", data);
    dinoseg::checkpoint::read_transformers_weights(scratch.dir()).is_ok()
}

/// A transformers `config.json` ([`dinoseg::checkpoint::read_model_config`]: model type, sizes, validation;
/// Mask2Former's through [`dinoseg::checkpoint::parse_model_config`], its weights being absent here). The same
/// bytes are also read as the adapter layout's `dinov3_backbone_config.json`.
pub fn model_config(data: &[u8]) -> bool {
    let scratch = Scratch::new();
    let path = scratch.write("config.json", data);
    scratch.write("dinov3_backbone_config.json", data);
    let _ = dinoseg::checkpoint::mask2former::read_model_file(scratch.dir());
    // A Mask2Former directory is read with its weights' headers; the config text alone goes to the text parser.
    let read = if dinoseg::checkpoint::mask2former::is_mask2former_dir(scratch.dir()) {
        let text = String::from_utf8_lossy(data);
        dinoseg::checkpoint::parse_model_config(&text, &path)
    } else {
        dinoseg::checkpoint::read_model_config(scratch.dir())
    };
    match read {
        Ok(dinoseg::checkpoint::ModelConfig::Backbone(config)) => {
            let _ = config.to_json();
            config.validate().is_ok()
        }
        Ok(_) => true,
        Err(_) => false,
    }
}

/// A `torch.save` zip checkpoint ([`dinoseg::checkpoint::pickle::read_torch_state_dict`]: zip entries, pickle
/// machine, storages).
pub fn pth_pickle(data: &[u8]) -> bool {
    let scratch = Scratch::new();
    let path = scratch.write("model.pth", data);
    dinoseg::checkpoint::pickle::read_torch_state_dict(&path).is_ok()
}

/// Params naming a linear head `head.<ext>` (its metadata is checked by `check-params` without the weights).
const LINEAR_PARAMS: &str = "dinoseg:\n  ros__parameters:\n    heads:\n      semantic:\n        type: linear\n        \
                             checkpoint: ./HEAD\n        source: backbone\n    backbone:\n      checkpoint: \
                             ./backbone\n";

/// A linear head checkpoint and its sidecar: byte 0 holds flags (bit 0: write the sidecar `<head>.json`, bit
/// 1: the head is a `.pth`, else `.safetensors`), bytes 1-2 the sidecar's length n (little-endian), then n
/// sidecar bytes, then the checkpoint. Read by [`dinoseg::model::heads::linear::LinearHead::load`] and by
/// `check-params` on params naming it.
pub fn linear_head_meta(data: &[u8]) -> bool {
    let (flags, rest) = split_first(data);
    let n = rest.get(..2).map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    let rest = rest.get(2..).unwrap_or_default();
    let (sidecar, head) = rest.split_at(n.min(rest.len()));
    let scratch = Scratch::new();
    let name = if flags & 2 != 0 { "head.pth" } else { "head.safetensors" };
    let path = scratch.write(name, head);
    if flags & 1 != 0 {
        scratch.write(&format!("{name}.json"), sidecar);
    }
    let read = dinoseg::model::heads::linear::LinearHeadFile::read(&path);
    let loaded = dinoseg::model::heads::linear::LinearHead::load(&path, tch::Device::Cpu).is_ok();
    let params = scratch.write("params.yaml", LINEAR_PARAMS.replace("HEAD", name).as_bytes());
    // check-params reads the head with the loader's reader: they refuse the same files, with the same words.
    let refusal = match dinoseg::params::check_file(&params) {
        Ok(_) => None,
        Err(e) => e.errors().iter().find(|x| x.key.ends_with("heads.semantic.checkpoint")).map(|x| x.message.clone()),
    };
    match (&read, &refusal) {
        (Ok(_), None) => {}
        (Err(e), Some(m)) => assert!(e.to_string().contains(m.as_str()), "check-params said `{m}`, the loader `{e}`"),
        (Ok(_), Some(m)) => panic!("check-params refused a head file the loader reads: {m}"),
        (Err(e), None) => panic!("check-params passed a head file the loader refuses: {e}"),
    }
    loaded
}

/// A class-names file: the first byte picks a labels file (even; [`dinoseg::postprocess::Labels::from_file`]:
/// `[<id>:] <name> [<marker>]` lines) or a transformers `config.json` with `id2label` (odd;
/// [`dinoseg::postprocess::Labels::from_config_json`]); the rest is the file.
pub fn labels(data: &[u8]) -> bool {
    let (selector, body) = split_first(data);
    let scratch = Scratch::new();
    let parsed = if selector % 2 == 0 {
        dinoseg::postprocess::Labels::from_file(&scratch.write("labels.txt", body))
    } else {
        dinoseg::postprocess::Labels::from_config_json(&scratch.write("config.json", body))
    };
    parsed.is_ok_and(|l| l.len() <= 65_535)
}

/// A COCO ground-truth file and a results file: bytes 0-1 (LE) the ground truth's length, then the ground truth
/// ([`dinoseg::eval::coco::CocoGt::from_json`]), then the results ([`dinoseg::eval::coco::parse_results`]); both
/// parsed, they are evaluated ([`dinoseg::eval::coco::evaluate`]), also with categories matched by name
/// ([`dinoseg::eval::coco::categories_by_name`]). Accepted: both parsed.
pub fn coco_json(data: &[u8]) -> bool {
    use dinoseg::eval::coco;
    let (len, rest) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => return false,
    };
    let (gt_bytes, results_bytes) = rest.split_at(len.min(rest.len()));
    let Ok(gt) = coco::CocoGt::from_json(gt_bytes, Path::new("gt.json")) else { return false };
    let Ok(results) = coco::parse_results(results_bytes, Path::new("results.json"), &gt) else { return false };
    let mut renamed = results.clone();
    if let Ok(left_out) = coco::categories_by_name(&gt, &mut renamed, Path::new("results.json")) {
        assert_eq!(renamed.len() + left_out, results.len());
        let _ = coco::evaluate(&gt, &renamed);
    }
    let m = coco::evaluate(&gt, &results);
    for v in [m.ap, m.ap50, m.ap75, m.ap_small, m.ap_medium, m.ap_large] {
        assert!(v == -1.0 || (0.0..=1.0).contains(&v), "a COCO metric out of range: {m:?}");
    }
    true
}

/// One COCO mask ([`dinoseg::eval::rle`]): byte 0 the form (0 a compressed `counts` string, 1 a polygon of
/// 16-bit LE coordinates in quarter pixels, 2 uncompressed counts as 16-bit LE numbers), bytes 1-4 the height and
/// width (16-bit LE each), the rest the counts or coordinates. A mask read is re-encoded (it must read back the
/// same), measured (area, box) and compared with itself (IoU 1 unless empty).
pub fn coco_rle(data: &[u8]) -> bool {
    use dinoseg::eval::rle::{iou, Rle};
    let (form, rest) = split_first(data);
    let (h, w, body) = match rest {
        [a, b, c, d, body @ ..] => {
            (u64::from(u16::from_le_bytes([*a, *b])), u64::from(u16::from_le_bytes([*c, *d])), body)
        }
        _ => return false,
    };
    let words: Vec<u16> = body.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    let read = match form % 3 {
        0 => Rle::from_compressed(h, w, body),
        1 => {
            let xy: Vec<f64> = words.iter().map(|&v| f64::from(v as i16) / 4.0).collect();
            Rle::from_polygon(&xy, h, w)
        }
        _ => Rle::from_counts(h, w, &words.iter().map(|&v| i64::from(v)).collect::<Vec<_>>()),
    };
    let Ok(rle) = read else { return false };
    let text = rle.to_compressed();
    assert_eq!(Rle::from_compressed(h, w, text.as_bytes()).as_ref(), Ok(&rle), "compressed RLE does not read back");
    let _ = rle.bbox();
    // pycocotools' IoU loop stops early on empty runs inside the counts (kept, as the reference): only counts
    // without them must give a mask IoU 1 with itself.
    let same = iou(&rle, &rle, false);
    let canonical = rle.counts().iter().skip(1).all(|&c| c > 0);
    assert!((0.0..=1.0).contains(&same), "IoU of a mask with itself is {same}");
    assert!(!canonical || rle.area() == 0 || same == 1.0, "IoU of a mask with itself is {same}");
    if h * w <= 1 << 20 {
        assert_eq!(rle.decode().len() as u64, h * w);
    }
    true
}

/// `dinoseg eval`'s readers of outside data, by byte 0 mod 4: 0 a COCO panoptic ground-truth JSON, 1 a panoptic
/// prediction JSON (`eval::panoptic_json`); 2 a label-map PNG (`eval::label_png::decode_label_png`); 3 a
/// ground-truth JSON (length in the next 2 bytes, little-endian) and an RGB id PNG, its first annotation scored
/// against itself (`eval::label_png::decode_id_png`, `eval::panoptic::PanopticEval::add`: the PNG/segments_info
/// checks and the matching).
pub fn eval_panoptic_json(data: &[u8]) -> bool {
    use dinoseg::eval::{label_png, panoptic, panoptic_json};
    let (selector, body) = split_first(data);
    let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_string);
    match selector % 4 {
        0 => text(body).is_some_and(|t| panoptic_json::parse_ground_truth(&t, "gt.json").is_ok()),
        1 => text(body).is_some_and(|t| {
            let Ok(mut pred) = panoptic_json::parse_predictions(&t, "pred.json") else { return false };
            // Matched by name to a ground truth with a shared name, as `dinoseg eval --categories-by-name` does.
            static GT: std::sync::OnceLock<Option<panoptic_json::GroundTruth>> = std::sync::OnceLock::new();
            let gt = GT.get_or_init(|| {
                let text = r#"{"annotations": [], "categories": [{"id": 1, "name": "floor", "isthing": 0},
                    {"id": 2, "name": "person", "isthing": 1}, {"id": 3, "name": "cart", "isthing": 1},
                    {"id": 4, "name": "cart", "isthing": 1}]}"#;
                panoptic_json::parse_ground_truth(text, "gt.json").ok()
            });
            let Some(gt) = gt else { return false };
            let segments = pred.annotations.iter().map(|a| a.segments_info.len()).sum::<usize>();
            match pred.categories_by_name(gt, "pred.json") {
                Ok(by) => {
                    let kept = pred.annotations.iter().map(|a| a.segments_info.len()).sum::<usize>();
                    kept + by.left_out == segments
                }
                Err(_) => true,
            }
        }),
        2 => label_png::decode_label_png(body, "labels.png").is_ok(),
        _ => {
            let len = body.get(..2).map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
            let rest = body.get(2..).unwrap_or_default();
            let (json, png) = rest.split_at(len.min(rest.len()));
            let Some(gt) = text(json).and_then(|t| panoptic_json::parse_ground_truth(&t, "gt.json").ok()) else {
                return false;
            };
            let (Some(ann), Ok(ids)) = (gt.annotations.first(), label_png::decode_id_png(png, "ids.png")) else {
                return false;
            };
            let mut eval = panoptic::PanopticEval::new(gt.categories.clone());
            eval.add(ann, &ids, ann, &ids).is_ok() && eval.result().all.pq.is_none_or(|pq| (pq - 1.0).abs() < 1e-9)
        }
    }
}

/// A label PNG of `dinoseg train-head` (8/16-bit grey class ids or palette indices; `eval::label_png`'s reader):
/// decoded, then the checks and the flip the trainer runs on it.
pub fn label_png(data: &[u8]) -> bool {
    match dinoseg::train::data::parse_label_png(data, "fuzz.png") {
        Ok(m) => {
            let _ = m.first_out_of_range(3);
            let _ = m.max_class();
            let f = m.flipped();
            f.ids.len() as u64 == u64::from(m.width) * u64::from(m.height)
        }
        Err(_) => false,
    }
}

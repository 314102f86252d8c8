//! `dinoseg run`: the pipeline over recordings. Each frame is decoded, preprocessed, segmented, post-processed
//! and encoded exactly as the node does it; a malformed frame is skipped with a warning naming the topic (or
//! file) and the problem, counted, and the run goes on. A frame the model fails on (an error, a panic inside
//! libtorch, out of memory) is dropped and counted as `failed`, as in the node. A corrupt chunk of the bag is
//! skipped and counted, with its offset; a truncated bag is processed up to the damage.
//!
//! Nothing is lost: outputs that are inputs are refused before the model loads ([`super::guard`]); the output
//! bag is written under a temporary name and finished (summary, rename) on every exit path: done, damaged input,
//! failed frames, an error of the run, SIGINT/SIGTERM ([`super::signals`]). The statistics (and `--stats-json`)
//! are written on every exit path too; [`RunStats::exit_code`] says how the run ended. So are the folders'
//! run-wide files (`coco_results.json`, `panoptic.json`: [`super::eval_files`]), with the frames done.

use super::eval_files::FrameId;
use super::folder::FolderWriter;
use super::guard;
use super::inputs::{classify, Input};
use super::signals::interrupted;
use super::stats::RunStats;
use crate::bag::{BagError, BagReader, BagWriter};
use crate::error::{catch_quiet, Error, ErrorKind, Result};
use crate::messages::{Header, Time};
use crate::params::Params;
use crate::pipeline::{decode_message, RgbImage};
use crate::postprocess::{FrameSegmentation, Labels};
use crate::publish::Encoder;
use crate::segmenter::{Segmenter, StageTimes};
use crate::topics::{stream_topic, Stream};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const IMAGE: &str = "sensor_msgs/msg/Image";
const COMPRESSED: &str = "sensor_msgs/msg/CompressedImage";
/// Warnings printed per topic before they are only counted.
const WARNINGS_PER_TOPIC: u64 = 20;
/// Damage reports kept in the statistics (the rest are counted).
const DAMAGE_LISTED: usize = 50;

/// What the runner needs of a model: the [`Segmenter`], or a stand-in (tests).
pub trait RunModel {
    /// Segments one batch of frames, with the time of each stage.
    fn segment_timed(&self, images: &[&RgbImage]) -> Result<(Vec<FrameSegmentation>, StageTimes)>;
    /// Whether the outputs include instances.
    fn produces_instances(&self) -> bool;
    /// The classes (names, thing / stuff) of the head giving instances and the panoptic map, when known.
    fn instance_labels(&self) -> Option<Labels> {
        None
    }
}

impl RunModel for Segmenter {
    fn segment_timed(&self, images: &[&RgbImage]) -> Result<(Vec<FrameSegmentation>, StageTimes)> {
        Segmenter::segment_timed(self, images)
    }
    fn produces_instances(&self) -> bool {
        Segmenter::produces_instances(self)
    }
    fn instance_labels(&self) -> Option<Labels> {
        Segmenter::instance_labels(self).cloned()
    }
}

/// What `dinoseg run` was asked.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub params: PathBuf,
    pub input: String,
    /// A folder, or a file ending in `.mcap` for a bag.
    pub output: PathBuf,
    /// Every Image / CompressedImage topic of the bag instead of the parameters' `input.topics`.
    pub all_topics: bool,
    /// Stop after this many frames (all topics together).
    pub max_frames: Option<u64>,
    /// Also write the results as files into this folder (with a bag `output`: both from one pass).
    pub files: Option<PathBuf>,
    /// Also write the statistics as JSON to this file (on every exit path).
    pub stats_json: Option<PathBuf>,
}

enum Sink {
    /// A folder of files; with several topics, a writer per topic's subfolder (key: the subfolder's name; "" is
    /// the folder itself).
    Folder {
        writers: BTreeMap<String, FolderWriter>,
        root: PathBuf,
        per_topic: bool,
    },
    Bag {
        writer: Box<BagWriter>,
        channels: BTreeMap<(String, Stream), u16>,
        inputs: BTreeMap<String, u16>,
    },
}

struct Runner<'a> {
    params: &'a Params,
    model: Box<dyn RunModel>,
    /// The model's [`RunModel::instance_labels`], for the folders made during the run.
    labels: Option<Labels>,
    sinks: Vec<Sink>,
    stats: &'a mut RunStats,
}

/// A decoded frame with where it came from.
struct Frame<'a> {
    topic: &'a str,
    /// Where the frame is counted in the report (the topic, or the image file).
    counted_as: &'a str,
    header: Header,
    name: String,
    /// The image's file name (a bag frame: `name`).
    file_name: String,
    /// 1-based position in the input.
    index: u64,
    log_time: u64,
    raw: Option<(&'a str, &'a [u8])>,
}

impl Runner<'_> {
    fn warn(&mut self, topic: &str, what: &str) {
        let c = self.stats.counts(topic);
        c.skipped += 1;
        if c.skipped <= WARNINGS_PER_TOPIC {
            eprintln!("warning: {topic}: skipping {what}");
        }
        if c.skipped == WARNINGS_PER_TOPIC {
            eprintln!("warning: {topic}: further skipped frames are only counted");
        }
    }

    /// Damage in the input bag: counted, listed (the first few), warned about; reading goes on.
    fn damage(&mut self, e: &BagError) {
        if let BagError::CorruptChunk { skipped, .. } = e {
            self.stats.corrupt_chunks += 1;
            for (topic, n) in skipped {
                self.stats.counts(topic).damaged += n;
            }
        }
        if self.stats.damage.len() < DAMAGE_LISTED {
            eprintln!("warning: {e}");
            self.stats.damage.push(e.to_string());
        }
    }

    /// Segments one decoded frame and writes its outputs. A frame the model fails on is dropped and counted;
    /// errors returned are the run's (disk), not the frame's.
    fn process(&mut self, f: &Frame<'_>, rgb: RgbImage, decode: Duration) -> Result<()> {
        self.stats.record(0, decode);
        let model = &self.model;
        let result = match catch_quiet(|| model.segment_timed(&[&rgb])) {
            Ok(r) => r,
            Err(p) => Err(Error::model_panic(&p)),
        };
        let (frames, times) = match result {
            Ok(v) => v,
            Err(e) => {
                let c = self.stats.counts(f.counted_as);
                c.failed += 1;
                if c.failed <= WARNINGS_PER_TOPIC {
                    let oom = e.kind() == ErrorKind::OutOfMemory;
                    let hint = if oom { " (out of memory: lower resize.max_long_side)" } else { "" };
                    // libtorch errors carry a C++ backtrace: the first line says what failed.
                    let e = crate::error::first_line(&e.to_string());
                    eprintln!("warning: {}: frame {} dropped: the model failed: {e}{hint}", f.counted_as, f.name);
                }
                return Ok(());
            }
        };
        self.stats.record(1, times.preprocess);
        self.stats.record(2, times.model);
        self.stats.record(3, times.postprocess);
        let Some(seg) = frames.into_iter().next() else { return Ok(()) };
        let t = Instant::now();
        let (h, w) = (rgb.height(), rgb.width());
        let color = |c: u16| self.params.color(c);
        let id = FrameId { name: &f.name, file_name: &f.file_name, index: f.index };
        for sink in &mut self.sinks {
            match sink {
                Sink::Folder { writers, root, per_topic } => {
                    let key = if *per_topic { f.topic.trim_matches('/').replace('/', "__") } else { String::new() };
                    let writer = match writers.entry(key) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => {
                            let dir = root.join(e.key());
                            e.insert(FolderWriter::create(&dir, self.params.outputs(), self.labels.clone())?)
                        }
                    };
                    writer.write(&id, rgb.as_raw(), h, w, &seg, &color)?;
                }
                Sink::Bag { writer, channels, inputs } => {
                    let encoder = Encoder {
                        enabled: self.params.outputs(),
                        color: &color,
                        threshold: self.params.thresholds.score_threshold as f32,
                        overlay_alpha: self.params.colors.overlay_alpha as f32,
                        instances_available: self.model.produces_instances(),
                    };
                    if let Some((ty, bytes)) = f.raw {
                        let ch = match inputs.get(f.topic) {
                            Some(&c) => c,
                            None => {
                                let c = writer.add_topic(f.topic, ty)?;
                                inputs.insert(f.topic.to_string(), c);
                                c
                            }
                        };
                        writer.write(ch, f.log_time, f.log_time, bytes)?;
                    }
                    for (stream, cdr) in encoder.encode(&f.header, rgb.as_raw(), h, w, &seg) {
                        let key = (f.topic.to_string(), stream);
                        let ch = match channels.get(&key) {
                            Some(&c) => c,
                            None => {
                                let c = writer.add_topic(&stream_topic(f.topic, &key.1), key.1.output.ros_type())?;
                                channels.insert(key, c);
                                c
                            }
                        };
                        writer.write(ch, f.log_time, f.log_time, &cdr)?;
                    }
                }
            }
        }
        self.stats.record(4, t.elapsed());
        self.stats.counts(f.counted_as).frames_out += 1;
        Ok(())
    }
}

/// Runs the pipeline over `opts.input` with the parameters' models. Returns the statistics on every path (an
/// error that ended the run is in [`RunStats::error`]); `--stats-json` is written unless it is an input.
pub fn run(opts: &RunOptions) -> RunStats {
    run_with_model(opts, |params| Ok(Box::new(Segmenter::new(params.segmenter_config()?)?)))
}

/// [`run`] with the model made by `load` (called after the inputs and outputs are checked).
pub fn run_with_model(opts: &RunOptions, load: impl FnOnce(&Params) -> Result<Box<dyn RunModel>>) -> RunStats {
    let mut stats = RunStats::default();
    let mut input = None;
    if let Err(e) = run_inner(opts, load, &mut stats, &mut input) {
        stats.error = Some(e.to_string());
    }
    if let Some(path) = opts.stats_json.as_deref().filter(|_| guard::stats_json_allowed(opts, input.as_ref())) {
        let text = serde_json::to_string_pretty(&stats.to_json()).unwrap_or_default();
        if let Err(e) = crate::files::write_atomic(path, text.as_bytes()) {
            stats.error.get_or_insert(e.to_string());
        }
    }
    stats
}

fn run_inner(
    opts: &RunOptions,
    load: impl FnOnce(&Params) -> Result<Box<dyn RunModel>>,
    stats: &mut RunStats,
    classified: &mut Option<Input>,
) -> Result<()> {
    let params = Params::from_file(&opts.params)
        .map_err(|e| Error::Input(format!("{}: invalid parameters:\n{e}", opts.params.display())))?;
    let input = classify(&opts.input)?;
    *classified = Some(input.clone());
    guard::refuse_outputs(opts, &input)?;
    let bag = match &input {
        Input::Bag(path) => {
            let bag = BagReader::open(path)?;
            let topics = select_topics(&bag, path, &params, opts.all_topics)?;
            Some((bag, topics))
        }
        Input::Images(_) => None,
    };
    if params.node.threads > 0 {
        tch::set_num_threads(params.node.threads as i32);
    }
    let model = load(&params)?;
    let is_bag_out = opts.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("mcap"));
    let per_topic = bag.as_ref().is_some_and(|(_, t)| t.len() > 1);
    let labels = model.instance_labels();
    let folder = |dir: &Path| -> Result<Sink> {
        let mut writers = BTreeMap::new();
        if !per_topic {
            writers.insert(String::new(), FolderWriter::create(dir, params.outputs(), labels.clone())?);
        } else {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        Ok(Sink::Folder { writers, root: dir.to_path_buf(), per_topic })
    };
    let mut sinks = vec![if is_bag_out {
        if let Some(parent) = opts.output.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let writer = BagWriter::create(&opts.output)?;
        Sink::Bag { writer: Box::new(writer), channels: BTreeMap::new(), inputs: BTreeMap::new() }
    } else {
        folder(&opts.output)?
    }];
    if let Some(dir) = &opts.files {
        sinks.push(folder(dir)?);
    }
    let mut runner = Runner { params: &params, model, labels, sinks, stats };
    let result = match (&input, &bag) {
        (Input::Images(files), _) => run_images(&mut runner, files, &params, opts.max_frames),
        (Input::Bag(_), Some((bag, topics))) => run_bag(&mut runner, bag, topics, opts.max_frames),
        (Input::Bag(_), None) => Ok(()),
    };
    // The bag and the folders' run-wide files are finished on every path: what was done stays readable.
    let mut finished = Ok(());
    for sink in runner.sinks {
        let done = match sink {
            Sink::Bag { writer, .. } => writer.finish().map_err(Error::from),
            Sink::Folder { writers, .. } => {
                // Every folder's files, even after one failed.
                let results: Vec<Result<()>> = writers.values().map(FolderWriter::finish).collect();
                results.into_iter().collect::<Result<()>>()
            }
        };
        finished = finished.and(done);
    }
    result.and(finished)
}

/// The bag topics to process: the parameters' `input.topics` found in the bag, or every image topic.
fn select_topics(reader: &BagReader, path: &Path, params: &Params, all: bool) -> Result<Vec<(String, String)>> {
    let damage = match reader.damage().first() {
        Some(d) => format!("; the bag is damaged, nothing of it could be read past: {d}"),
        None => String::new(),
    };
    let image_topics: Vec<(String, String)> = reader
        .topics()
        .iter()
        .filter(|t| t.type_name == IMAGE || t.type_name == COMPRESSED)
        .map(|t| (t.topic.clone(), t.type_name.clone()))
        .collect();
    if all {
        if image_topics.is_empty() {
            return Err(Error::Input(format!(
                "{}: no sensor_msgs/Image or CompressedImage topic{damage}",
                path.display()
            )));
        }
        return Ok(image_topics);
    }
    let mut chosen = Vec::new();
    for t in params.input_topics() {
        let name = crate::topics::Resolver::root().resolve(&t.name);
        match image_topics.iter().find(|(n, _)| *n == name) {
            Some(found) => chosen.push(found.clone()),
            None => {
                eprintln!("warning: {}: topic {} is not an image topic of this bag{damage}", path.display(), t.name)
            }
        }
    }
    if chosen.is_empty() {
        let have: Vec<&str> = image_topics.iter().map(|(n, _)| n.as_str()).collect();
        return Err(Error::Input(format!(
            "{}: none of the parameters' input.topics is in the bag (image topics here: {}); use --all-topics{damage}",
            path.display(),
            if have.is_empty() { "none".to_string() } else { have.join(", ") }
        )));
    }
    Ok(chosen)
}

fn run_images(r: &mut Runner<'_>, files: &[PathBuf], params: &Params, max: Option<u64>) -> Result<()> {
    let topic = params
        .input_topics()
        .first()
        .map(|t| crate::topics::Resolver::root().resolve(&t.name))
        .unwrap_or_else(|| "/camera/image_raw".into());
    for (i, file) in files.iter().enumerate() {
        if max.is_some_and(|m| i as u64 >= m) {
            break;
        }
        if let Some(signal) = interrupted() {
            r.stats.interrupted = Some(signal);
            break;
        }
        let label = "image files";
        r.stats.counts(label).frames_in += 1;
        let t = Instant::now();
        let rgb = match super::inputs::read_image(file) {
            Ok(img) => img,
            Err(e) => {
                r.warn(label, &format!("{}: unreadable image: {e}", file.display()));
                continue;
            }
        };
        let decode = t.elapsed();
        let stamp = Time::from_nanos(i as u64 * 100_000_000);
        let name = file.file_stem().and_then(|s| s.to_str()).unwrap_or("frame").to_string();
        let file_name = file.file_name().map_or_else(|| name.clone(), |n| n.to_string_lossy().into_owned());
        let frame = Frame {
            topic: &topic,
            counted_as: label,
            header: Header { stamp, frame_id: "camera".into() },
            name,
            file_name,
            index: i as u64 + 1,
            log_time: stamp.to_nanos(),
            raw: None,
        };
        r.process(&frame, rgb, decode)?;
    }
    Ok(())
}

fn run_bag(r: &mut Runner<'_>, bag: &BagReader, topics: &[(String, String)], max: Option<u64>) -> Result<()> {
    let names: Vec<&str> = topics.iter().map(|(n, _)| n.as_str()).collect();
    for d in bag.summary_damage() {
        eprintln!("warning: {d}");
        r.stats.damage.push(d.to_string());
    }
    let mut done = 0u64;
    for item in bag.messages(&names)? {
        if let Some(signal) = interrupted() {
            r.stats.interrupted = Some(signal);
            break;
        }
        let msg = match item {
            Ok(m) => m,
            Err(e) if e.is_damage() => {
                r.damage(&e);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if max.is_some_and(|m| done >= m) {
            break;
        }
        done += 1;
        r.stats.counts(&msg.topic).frames_in += 1;
        let t = Instant::now();
        let decoded = decode_message(&msg.data, msg.type_name == COMPRESSED);
        let (header, rgb) = match decoded {
            Ok(v) => v,
            Err(e) => {
                r.warn(&msg.topic, &format!("frame at log time {} ns: {e}", msg.log_time));
                continue;
            }
        };
        let decode = t.elapsed();
        let name = header.stamp.to_nanos().to_string();
        let frame = Frame {
            topic: &msg.topic,
            counted_as: &msg.topic,
            file_name: name.clone(),
            name,
            index: done,
            header,
            log_time: msg.log_time,
            raw: Some((msg.type_name.as_str(), msg.data.as_slice())),
        };
        r.process(&frame, rgb, decode)?;
    }
    Ok(())
}

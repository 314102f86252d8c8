//! The node's core without ROS (`dinoseg::node`), through the in-memory transport: bounded latency under load
//! (simulated time, 10,000 frames), batching across cameras, header propagation, bad input, model failures,
//! diagnostics, live parameters, and the threaded worker in real time.

use dinoseg::messages::RosMessage;
use dinoseg::messages::{CompressedImage, DiagnosticArray, DiagnosticStatus, Header, Image, ImageRef, LabelInfo, Time};
use dinoseg::node::stats::LATENCY_SAMPLES;
use dinoseg::node::{
    Camera, Clock, Core, CoreConfig, FrameModel, LiveConfig, ManualClock, MemoryTransport, SystemClock, Worker,
};
use dinoseg::params::Palette;
use dinoseg::pipeline::RgbImage;
use dinoseg::postprocess::{FrameSegmentation, LabelData, LabelMap, PostprocessConfig};
use dinoseg::topics::Output;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MS: u64 = 1_000_000;

fn config(cameras: usize, max_batch: usize, outputs: &[Output]) -> CoreConfig {
    CoreConfig {
        name: "dinoseg".into(),
        cameras: (0..cameras).map(|i| Camera { topic: format!("/cam{i}/image_raw"), compressed: false }).collect(),
        max_batch,
        outputs: outputs.to_vec(),
        device: "cpu".into(),
        palette: Palette::default(),
        score_threshold: 0.5,
        diagnostics_period_ns: 1000 * MS,
        warn_interval_ns: 5000 * MS,
    }
}

/// An rgb8 frame whose pixels encode the camera and stamp, so results can be traced back.
fn frame(camera: usize, stamp_ns: u64, height: u32, width: u32) -> Vec<u8> {
    let data: Vec<u8> = (0..height * width * 3).map(|i| (i as u64 + stamp_ns / MS + camera as u64) as u8).collect();
    Image {
        header: Header::new(Time::from_nanos(stamp_ns), format!("cam{camera}_optical_frame")),
        height,
        width,
        encoding: "rgb8".into(),
        is_bigendian: 0,
        step: width * 3,
        data,
    }
    .to_cdr()
}

/// What the fake model should do on a call.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Ok,
    OutOfMemory,
    Panic,
}

/// A model that takes `pass_ns` per forward pass (advancing a manual clock, or sleeping on the system clock)
/// and labels every pixel with its frame's first byte modulo 4. It records the thresholds it is given and the
/// score threshold in effect at each pass (None: never given any), and refuses a mask threshold of 0.123.
struct FakeModel {
    clock: Option<Arc<ManualClock>>,
    pass_ns: u64,
    batches: Arc<Mutex<Vec<usize>>>,
    plan: Arc<Mutex<Vec<Behaviour>>>,
    postprocess: Option<PostprocessConfig>,
    given: Arc<Mutex<Vec<PostprocessConfig>>>,
    seen: Arc<Mutex<Vec<Option<f64>>>>,
}

impl FakeModel {
    fn new(clock: Option<Arc<ManualClock>>, pass_ns: u64) -> Self {
        FakeModel {
            clock,
            pass_ns,
            batches: Arc::default(),
            plan: Arc::default(),
            postprocess: None,
            given: Arc::default(),
            seen: Arc::default(),
        }
    }
}

impl FrameModel for FakeModel {
    fn segment(&mut self, frames: &[&RgbImage]) -> dinoseg::Result<Vec<FrameSegmentation>> {
        match &self.clock {
            Some(c) => c.advance(self.pass_ns),
            None => std::thread::sleep(Duration::from_nanos(self.pass_ns)),
        }
        self.batches.lock().unwrap().push(frames.len());
        self.seen.lock().unwrap().push(self.postprocess.map(|p| p.score_threshold));
        let behaviour = {
            let mut plan = self.plan.lock().unwrap();
            if plan.is_empty() {
                Behaviour::Ok
            } else {
                plan.remove(0)
            }
        };
        match behaviour {
            Behaviour::OutOfMemory => {
                return Err(dinoseg::Error::Runtime(
                    "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)".into(),
                ))
            }
            Behaviour::Panic => panic!("fake model panicked"),
            Behaviour::Ok => {}
        }
        Ok(frames
            .iter()
            .map(|f| FrameSegmentation {
                semantic: Some(LabelMap {
                    height: f.height(),
                    width: f.width(),
                    data: LabelData::U8(vec![f.as_raw()[0] % 4; (f.width() * f.height()) as usize]),
                }),
                class_names: vec!["a".into(), "b".into(), "c".into(), "d".into()],
                ..Default::default()
            })
            .collect())
    }
    fn produces_instances(&self) -> bool {
        false
    }
    fn set_postprocess(&mut self, cfg: PostprocessConfig) -> dinoseg::Result<()> {
        self.given.lock().unwrap().push(cfg);
        if cfg.mask_threshold == 0.123 {
            return Err(dinoseg::Error::Input("mask threshold refused".into()));
        }
        self.postprocess = Some(cfg);
        Ok(())
    }
}

/// Two cameras at 30 Hz into a model that takes 100 ms per forward pass, 10,000 frames in simulated time: the
/// newest frames are processed, stamp-to-publish latency stays under two model periods, every frame is
/// accounted for (published, dropped or still waiting), and nothing the core holds grows.
#[test]
fn two_cameras_at_30_hz_into_a_100_ms_model_stay_bounded() {
    let clock = Arc::new(ManualClock::new(1_000_000_000_000));
    let start = clock.now_ns();
    let outputs = [Output::Semantic, Output::SemanticColor, Output::LabelInfo];
    let core = Core::new(config(2, 2, &outputs), clock.clone());
    let model = FakeModel::new(Some(clock.clone()), 100 * MS);
    let batches = model.batches.clone();
    let mut worker = Worker::new(core.clone(), model, MemoryTransport::new(clock.clone()));

    let period = 1_000_000_000 / 30;
    // Camera 1 runs 11 ms behind camera 0 (unsynchronised cameras).
    let mut next = [start, start + 11 * MS];
    let mut newest = [0u64; 2];
    let mut submitted = 0u64;
    // Discrete events in time order: a message arrives, or the worker (free again) takes what is waiting.
    let mut busy_until = start;
    let mut last_event = start;
    let mut published = [0u64; 2];
    let mut latencies = Vec::new();
    let mut label_infos = 0;
    let mut max_pending = 0;
    let mut max_samples = 0;
    while submitted < 10_000 {
        let cam = if next[0] <= next[1] { 0 } else { 1 };
        let arrival = next[cam];
        let worker_start = busy_until.max(last_event);
        if core.retained().pending > 0 && worker_start <= arrival {
            clock.set(worker_start);
            last_event = worker_start;
            let before = [core.totals(0).published, core.totals(1).published];
            worker.poll(); // the model advances the clock by one pass
            busy_until = clock.now_ns();
            for m in worker.transport().drain() {
                let header = match m.output {
                    Output::LabelInfo => {
                        label_infos += 1;
                        LabelInfo::from_cdr(&m.cdr).unwrap().header
                    }
                    _ => {
                        let img = ImageRef::from_cdr(&m.cdr).unwrap();
                        assert_eq!((img.height, img.width), (6, 8));
                        img.header.into_owned()
                    }
                };
                // Results carry the input's header: the newest frame of that camera when the worker took it.
                assert_eq!(header.stamp.to_nanos(), newest[m.camera], "camera {} got an old frame", m.camera);
                assert_eq!(header.frame_id, format!("cam{}_optical_frame", m.camera));
                if m.output == Output::Semantic {
                    latencies.push(m.at_ns - header.stamp.to_nanos());
                    published[m.camera] += 1;
                }
            }
            for (c, b) in before.iter().enumerate() {
                assert!(core.totals(c).published - b <= 1);
            }
            worker.diagnostics_if_due();
            continue;
        }
        // Messages that arrive while the model runs are submitted at their own time: the receiving side never
        // waits for the worker.
        clock.set(arrival);
        last_event = arrival;
        core.submit(cam, frame(cam, arrival, 6, 8));
        newest[cam] = arrival;
        submitted += 1;
        next[cam] += period;
        let r = core.retained();
        max_pending = max_pending.max(r.pending);
        max_samples = max_samples.max(r.samples);
    }

    let pass = 100 * MS;
    let worst = *latencies.iter().max().unwrap();
    assert!(worst < 2 * pass, "stamp-to-publish latency {worst} ns is not under two model periods");
    let totals = [core.totals(0), core.totals(1)];
    for (c, t) in totals.iter().enumerate() {
        assert_eq!(t.published, published[c]);
        assert_eq!(t.malformed + t.failed, 0);
        // Every message is published, dropped (replaced by a newer one) or still waiting in its slot.
        assert!(t.received - t.published - t.dropped <= 1, "camera {c}: {t:?}");
        assert!(t.dropped > t.received / 2, "camera {c}: 30 Hz into 10 Hz must drop about 2 of 3 frames");
    }
    assert_eq!(totals[0].received + totals[1].received, 10_000);
    // About 10 passes per second over ~167 s; both cameras in one pass almost always.
    let b = batches.lock().unwrap();
    let mean = b.iter().sum::<usize>() as f64 / b.len() as f64;
    assert!(mean > 1.9, "mean batch {mean}");
    assert!(b.len() > 1500 && b.len() < 1700, "{} passes", b.len());
    assert_eq!(label_infos, 2, "label_info once per camera");
    assert!(max_pending <= 2);
    assert!(max_samples <= 2 * 2 * LATENCY_SAMPLES);
    // Diagnostics were published about every second and reset their samples.
    assert!(worker.transport().diagnostics.len() > 150);
    assert!(max_samples < 100, "latency samples are per period: {max_samples}");
}

fn diagnostics(t: &MemoryTransport) -> DiagnosticArray {
    DiagnosticArray::from_cdr(t.diagnostics.last().expect("no diagnostics")).unwrap()
}

fn values(s: &DiagnosticStatus) -> BTreeMap<String, String> {
    s.values.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect()
}

/// Malformed messages of every kind are dropped, counted and warned about (throttled); good frames still go
/// through; nothing panics.
#[test]
fn malformed_messages_are_counted_with_throttled_warnings() {
    let clock = Arc::new(ManualClock::new(5_000 * MS));
    let mut cfg = config(2, 2, &[Output::Semantic]);
    cfg.cameras[1] = Camera { topic: "/cam1/image_raw/compressed".into(), compressed: true };
    let core = Core::new(cfg, clock.clone());
    let mut worker =
        Worker::new(core.clone(), FakeModel::new(Some(clock.clone()), 10 * MS), MemoryTransport::new(clock.clone()));
    let good = frame(0, 5_000 * MS, 4, 6);
    let bad_encoding = {
        let mut img = Image::from_cdr(&good).unwrap();
        img.encoding = "yuv999".into();
        img.to_cdr()
    };
    let short_data = {
        let mut img = Image::from_cdr(&good).unwrap();
        img.data.truncate(10);
        img.to_cdr()
    };
    let huge_claim = {
        let mut img = Image::from_cdr(&good).unwrap();
        img.height = 1 << 30;
        img.to_cdr()
    };
    let bad_jpeg = CompressedImage {
        header: Header::new(Time::from_nanos(1), "c"),
        format: "jpeg".into(),
        data: vec![0xff, 0xd8, 0xff, 0, 1, 2],
    }
    .to_cdr();
    let bad: Vec<(usize, Vec<u8>)> = vec![
        (0, vec![]),
        (0, vec![0, 1, 0, 0, 1, 2]),
        (0, good[..good.len() / 2].to_vec()),
        (0, bad_encoding),
        (0, short_data),
        (0, huge_claim),
        (0, (0..500u32).map(|i| (i * 37 % 256) as u8).collect()),
        (1, bad_jpeg),
        (1, good.clone()), // an Image on a CompressedImage topic
    ];
    let n_bad = bad.len();
    for (cam, bytes) in bad {
        core.submit(cam, bytes);
        worker.poll();
        clock.advance(MS);
    }
    core.submit(0, good.clone());
    assert_eq!(worker.poll(), 1, "a good frame after bad ones is published");
    let t0 = core.totals(0);
    let t1 = core.totals(1);
    assert_eq!(t0.malformed + t1.malformed, n_bad as u64);
    assert_eq!((t0.published, t1.published), (1, 0));
    let w = &worker.transport().warnings;
    // One warning per camera and kind within the interval; each names the topic and the problem.
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].starts_with("/cam0/image_raw: dropping a malformed message: "), "{}", w[0]);
    assert!(w[1].starts_with("/cam1/image_raw/compressed: dropping a malformed message: "), "{}", w[1]);
    // After the interval the next warning says how many were suppressed.
    clock.advance(6_000 * MS);
    core.submit(0, vec![1, 2, 3]);
    worker.poll();
    let last = worker.transport().warnings.last().unwrap().clone();
    assert!(last.contains("(6 more like this since the last warning)"), "{last}");
    worker.publish_diagnostics();
    let d = diagnostics(worker.transport());
    assert_eq!(d.status[0].level, DiagnosticStatus::WARN);
    assert!(d.status[0].message.contains("malformed"), "{}", d.status[0].message);
    assert_eq!(values(&d.status[0])["frames_malformed"], "8");
}

/// A CUDA out-of-memory error (or a panic) in the model drops that batch's frames, counted and warned, and
/// the next frames are processed.
#[test]
fn model_failures_drop_the_frame_and_the_node_goes_on() {
    let clock = Arc::new(ManualClock::new(1_000 * MS));
    let core = Core::new(config(1, 1, &[Output::Semantic]), clock.clone());
    let model = FakeModel::new(Some(clock.clone()), 50 * MS);
    let plan = model.plan.clone();
    *plan.lock().unwrap() = vec![Behaviour::Ok, Behaviour::OutOfMemory, Behaviour::Panic, Behaviour::Ok];
    let mut worker = Worker::new(core.clone(), model, MemoryTransport::new(clock.clone()));
    let mut out = Vec::new();
    for i in 0..4u64 {
        core.submit(0, frame(0, clock.now_ns(), 4, 4));
        out.push(worker.poll());
        clock.advance(10 * MS + i);
    }
    assert_eq!(out, vec![1, 0, 0, 1]);
    let t = core.totals(0);
    assert_eq!((t.published, t.failed), (2, 2));
    let w = &worker.transport().warnings;
    assert_eq!(w.len(), 1, "throttled: {w:?}");
    assert!(w[0].contains("/cam0/image_raw: frame ") && w[0].contains("CUDA out of memory"), "{}", w[0]);
    assert!(w[0].contains("lower resize or node.max_batch"), "{}", w[0]);
    worker.publish_diagnostics();
    let d = diagnostics(worker.transport());
    assert_eq!(d.status[0].level, DiagnosticStatus::WARN);
    assert!(d.status[0].message.contains("model failed on 2 frames"), "{}", d.status[0].message);
    // Every frame failing in a period is an error.
    *plan.lock().unwrap() = vec![Behaviour::OutOfMemory];
    core.submit(0, frame(0, clock.now_ns(), 4, 4));
    worker.poll();
    clock.advance(1000 * MS);
    worker.publish_diagnostics();
    assert_eq!(diagnostics(worker.transport()).status[0].level, DiagnosticStatus::ERROR);
}

/// Diagnostics: one status per camera with rates, counts, latency and device; a silent camera is a warning.
#[test]
fn diagnostics_report_each_camera() {
    let clock = Arc::new(ManualClock::new(10_000 * MS));
    let core = Core::new(config(2, 2, &[Output::Semantic]), clock.clone());
    let mut worker =
        Worker::new(core.clone(), FakeModel::new(Some(clock.clone()), 20 * MS), MemoryTransport::new(clock.clone()));
    for _ in 0..10 {
        // Camera 0 at 10 Hz, camera 1 silent; two messages per poll on camera 0 (one replaced).
        core.submit(0, frame(0, clock.now_ns(), 4, 4));
        clock.advance(50 * MS);
        core.submit(0, frame(0, clock.now_ns(), 4, 4));
        worker.poll();
        clock.advance(30 * MS);
    }
    clock.set(11_000 * MS);
    worker.publish_diagnostics();
    let d = diagnostics(worker.transport());
    assert_eq!(d.header.stamp.to_nanos(), 11_000 * MS);
    assert_eq!(d.status.len(), 2);
    let (a, b) = (&d.status[0], &d.status[1]);
    assert_eq!(
        (a.name.as_str(), a.level, a.hardware_id.as_str()),
        ("dinoseg: /cam0/image_raw", DiagnosticStatus::OK, "cpu")
    );
    let v = values(a);
    assert_eq!(v["input_rate_hz"], "20.00");
    assert_eq!(v["output_rate_hz"], "10.00");
    assert_eq!(v["frames_dropped"], "10");
    assert_eq!(v["latency_p50_ms"], "20.0"); // stamp of the newer frame to publish: one 20 ms pass
    assert_eq!(v["latency_p95_ms"], "20.0");
    assert_eq!(v["device"], "cpu");
    assert_eq!((b.level, b.message.as_str()), (DiagnosticStatus::WARN, "no frames received"));
    assert_eq!(values(b)["latency_p50_ms"], "n/a");
    // A new period starts empty.
    clock.advance(1000 * MS);
    worker.publish_diagnostics();
    assert_eq!(values(&diagnostics(worker.transport()).status[0])["input_rate_hz"], "0.00");
}

/// Frames of different sizes go into separate forward passes; one camera per pass with max_batch 1, served in
/// turn; publish errors are counted.
#[test]
fn batching_fairness_and_publish_errors() {
    let clock = Arc::new(ManualClock::new(MS));
    let core = Core::new(config(3, 3, &[Output::Semantic]), clock.clone());
    let model = FakeModel::new(Some(clock.clone()), MS);
    let batches = model.batches.clone();
    let mut worker = Worker::new(core.clone(), model, MemoryTransport::new(clock.clone()));
    core.submit(0, frame(0, 1, 4, 4));
    core.submit(1, frame(1, 2, 4, 6));
    core.submit(2, frame(2, 3, 4, 4));
    assert_eq!(worker.poll(), 3);
    assert_eq!(*batches.lock().unwrap(), vec![2, 1]);

    let core = Core::new(config(2, 1, &[Output::Semantic]), clock.clone());
    let mut worker =
        Worker::new(core.clone(), FakeModel::new(Some(clock.clone()), MS), MemoryTransport::new(clock.clone()));
    let mut served = Vec::new();
    for _ in 0..4 {
        core.submit(0, frame(0, 1, 4, 4));
        core.submit(1, frame(1, 1, 4, 4));
        worker.poll();
        served.extend(worker.transport().drain().iter().map(|m| m.camera));
    }
    assert_eq!(served, vec![0, 1, 0, 1], "cameras take turns");
    worker.transport().fail_publish = true;
    core.submit(0, frame(0, 1, 4, 4));
    worker.poll();
    assert_eq!(core.totals(0).publish_errors, 1);
    assert!(worker.transport().warnings[0].contains("cannot publish semantic"));
}

/// The threaded worker in real time: two producer threads at 30 Hz, a 100 ms model, diagnostics every
/// 0.5 s; latency stays under two model periods plus up to 100 ms of scheduling slack on a busy CI machine (the
/// exact bound is checked in simulated time above), and closing the core stops the worker promptly.
#[test]
fn threaded_worker_in_real_time() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut cfg = config(2, 2, &[Output::Semantic]);
    cfg.diagnostics_period_ns = 500 * MS;
    let core = Core::new(cfg, clock.clone());
    let worker_core = core.clone();
    let worker_clock = clock.clone();
    let handle = std::thread::spawn(move || {
        let mut w = Worker::new(worker_core, FakeModel::new(None, 100 * MS), MemoryTransport::new(worker_clock));
        w.run();
        w.into_parts().1
    });
    let producers: Vec<_> = (0..2)
        .map(|cam| {
            let core = core.clone();
            let clock = clock.clone();
            std::thread::spawn(move || {
                for _ in 0..60 {
                    core.submit(cam, frame(cam, clock.now_ns(), 48, 64));
                    std::thread::sleep(Duration::from_micros(33_333));
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(250));
    let t = Instant::now();
    core.close();
    let transport = handle.join().unwrap();
    assert!(t.elapsed() < Duration::from_millis(300), "worker took {:?} to stop", t.elapsed());
    let lat: Vec<u64> = transport
        .messages
        .iter()
        .map(|m| m.at_ns - ImageRef::from_cdr(&m.cdr).unwrap().header.stamp.to_nanos())
        .collect();
    assert!(lat.len() >= 20, "{} frames published", lat.len());
    let worst = *lat.iter().max().unwrap();
    assert!(worst < 200 * MS + 100 * MS, "worst latency {} ms", worst / MS);
    for c in 0..2 {
        let t = core.totals(c);
        assert_eq!(t.received, 60);
        assert_eq!(t.received, t.published + t.dropped, "camera {c}: {t:?}");
    }
    assert!(transport.diagnostics.len() >= 3, "{} diagnostics", transport.diagnostics.len());
    assert_eq!(core.retained().pending, 0);
}

/// (camera, output) of what was published since the last drain, sorted (cameras take turns in a batch).
fn published(worker: &mut Worker<FakeModel, MemoryTransport>) -> Vec<(usize, Output)> {
    let mut out: Vec<(usize, Output)> = worker.transport().drain().iter().map(|m| (m.camera, m.output)).collect();
    out.sort_by_key(|(c, o)| (*c, o.name()));
    out
}

/// Output switches and colours changed while running: the next frame follows them; `label_info` switched on
/// later is still published once per camera.
#[test]
fn live_outputs_and_colours_take_effect_on_the_next_frame() {
    let clock = Arc::new(ManualClock::new(MS));
    let core = Core::new(config(2, 2, &[Output::Semantic]), clock.clone());
    let mut worker =
        Worker::new(core.clone(), FakeModel::new(Some(clock.clone()), MS), MemoryTransport::new(clock.clone()));
    let both = |core: &Core| {
        core.submit(0, frame(0, clock.now_ns(), 4, 4));
        core.submit(1, frame(1, clock.now_ns(), 4, 4));
    };
    both(&core);
    worker.poll();
    assert_eq!(published(&mut worker), vec![(0, Output::Semantic), (1, Output::Semantic)]);

    let mut live = core.live().as_ref().clone();
    live.outputs = vec![Output::SemanticColor, Output::LabelInfo];
    for class in 0..4 {
        live.palette.overrides.insert(class, [1, 2, 3]);
    }
    core.set_live(live.clone());
    both(&core);
    worker.poll();
    let first = published(&mut worker);
    assert_eq!(
        first,
        vec![(0, Output::LabelInfo), (0, Output::SemanticColor), (1, Output::LabelInfo), (1, Output::SemanticColor)]
    );
    both(&core);
    worker.poll();
    let msgs = worker.transport().drain();
    assert!(msgs.len() == 2 && msgs.iter().all(|m| m.output == Output::SemanticColor), "label_info once per camera");
    let img = Image::from_cdr(&msgs[0].cdr).unwrap();
    assert!(img.data.chunks(3).all(|p| p == [1, 2, 3]), "the colour overrides are used: {:?}", &img.data[..6]);

    // Off and on again: label_info was sent to both cameras already.
    live.outputs = vec![Output::Semantic, Output::LabelInfo];
    core.set_live(live);
    both(&core);
    worker.poll();
    assert_eq!(published(&mut worker), vec![(0, Output::Semantic), (1, Output::Semantic)]);
}

/// New thresholds reach the model before its next pass (once, not every pass) and the score threshold the
/// published `LabelInfo` reports; a model that refuses them keeps its own, with a warning.
#[test]
fn live_thresholds_reach_the_model_on_the_next_frame() {
    let clock = Arc::new(ManualClock::new(MS));
    let core = Core::new(config(1, 1, &[Output::Semantic]), clock.clone());
    let model = FakeModel::new(Some(clock.clone()), MS);
    let (given, seen) = (model.given.clone(), model.seen.clone());
    let mut worker = Worker::new(core.clone(), model, MemoryTransport::new(clock.clone()));
    core.submit(0, frame(0, 1, 4, 4));
    worker.poll();
    assert!(given.lock().unwrap().is_empty(), "the start-up config leaves the model's thresholds");

    let pp = PostprocessConfig { score_threshold: 0.3, top_k: 7, ..Default::default() };
    let live = LiveConfig {
        outputs: vec![Output::Semantic, Output::LabelInfo],
        score_threshold: 0.3,
        postprocess: Some(pp),
        ..core.live().as_ref().clone()
    };
    core.set_live(live.clone());
    for _ in 0..3 {
        core.submit(0, frame(0, 1, 4, 4));
        worker.poll();
    }
    assert_eq!(*given.lock().unwrap(), vec![pp], "given once");
    assert_eq!(*seen.lock().unwrap(), vec![None, Some(0.3), Some(0.3), Some(0.3)]);
    let info = worker.transport().drain().into_iter().find(|m| m.output == Output::LabelInfo).expect("label_info");
    assert_eq!(LabelInfo::from_cdr(&info.cdr).unwrap().threshold, 0.3);

    let refused = PostprocessConfig { mask_threshold: 0.123, ..pp };
    core.set_live(LiveConfig { postprocess: Some(refused), ..live });
    core.submit(0, frame(0, 1, 4, 4));
    assert_eq!(worker.poll(), 1, "frames go on with the previous thresholds");
    assert_eq!(seen.lock().unwrap().last(), Some(&Some(0.3)));
    let w = &worker.transport().warnings;
    assert!(w.len() == 1 && w[0].contains("mask threshold refused"), "{w:?}");
}

/// `max_batch`, the diagnostics period and the warning interval changed while running.
#[test]
fn live_batch_size_and_periods() {
    let clock = Arc::new(ManualClock::new(MS));
    let core = Core::new(config(3, 3, &[Output::Semantic]), clock.clone());
    let model = FakeModel::new(Some(clock.clone()), MS);
    let batches = model.batches.clone();
    let mut worker = Worker::new(core.clone(), model, MemoryTransport::new(clock.clone()));
    let all = |core: &Core| (0..3).for_each(|c| core.submit(c, frame(c, 1, 4, 4)));
    all(&core);
    assert_eq!(worker.poll(), 3);
    core.set_live(LiveConfig { max_batch: 1, ..core.live().as_ref().clone() });
    all(&core);
    assert_eq!(worker.poll(), 1);
    assert_eq!(*batches.lock().unwrap(), vec![3, 1]);
    core.set_live(LiveConfig { max_batch: 0, ..core.live().as_ref().clone() });
    assert_eq!(core.live().max_batch, 1, "at least one frame per pass");

    // Diagnostics every second; after 500 ms none is due until the period becomes 200 ms.
    worker.publish_diagnostics();
    clock.advance(500 * MS);
    assert!(!worker.diagnostics_if_due());
    core.set_live(LiveConfig { diagnostics_period_ns: 200 * MS, ..core.live().as_ref().clone() });
    assert!(worker.diagnostics_if_due());

    // Warnings of one kind every 5 s; with a 10 ms interval the next one 20 ms later is not held back.
    core.submit(0, vec![1]);
    worker.poll();
    clock.advance(20 * MS);
    core.submit(0, vec![2]);
    worker.poll();
    assert_eq!(worker.transport().warnings.len(), 1);
    core.set_live(LiveConfig { warn_interval_ns: 10 * MS, ..core.live().as_ref().clone() });
    clock.advance(20 * MS);
    core.submit(0, vec![3]);
    worker.poll();
    assert_eq!(worker.transport().warnings.len(), 2, "{:?}", worker.transport().warnings);
}

/// The ROS thread changes the outputs while the threaded worker runs: frames published after the change carry
/// the new output, none before it.
#[test]
fn live_update_from_another_thread_while_the_worker_runs() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let core = Core::new(config(1, 1, &[Output::Semantic]), clock.clone());
    let (worker_core, worker_clock) = (core.clone(), clock.clone());
    let handle = std::thread::spawn(move || {
        let mut w = Worker::new(worker_core, FakeModel::new(None, 5 * MS), MemoryTransport::new(worker_clock));
        w.run();
        w.into_parts().1
    });
    let producer = {
        let (core, clock) = (core.clone(), clock.clone());
        std::thread::spawn(move || {
            for _ in 0..40 {
                core.submit(0, frame(0, clock.now_ns(), 8, 8));
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(150));
    let switched_ns = clock.now_ns();
    core.set_live(LiveConfig { outputs: vec![Output::Semantic, Output::Overlay], ..core.live().as_ref().clone() });
    producer.join().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    core.close();
    let transport = handle.join().unwrap();
    let overlays: Vec<u64> =
        transport.messages.iter().filter(|m| m.output == Output::Overlay).map(|m| m.at_ns).collect();
    assert!(overlays.len() >= 10, "{} overlays", overlays.len());
    assert!(overlays.iter().all(|&t| t >= switched_ns), "an overlay before the switch");
    let semantic = transport.messages.iter().filter(|m| m.output == Output::Semantic).count();
    assert!(semantic > overlays.len(), "frames before the switch had no overlay");
}

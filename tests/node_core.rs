//! The node's core without ROS (`dinoseg::node`), through the in-memory transport: bounded latency under load
//! (simulated time, 10,000 frames), batching across cameras, header propagation, bad input, model failures,
//! diagnostics, live parameters, and the threaded worker in real time.

mod common;

use dinoseg::messages::RosMessage;
use dinoseg::messages::{CompressedImage, DiagnosticArray, DiagnosticStatus, Header, Image, ImageRef, LabelInfo, Time};
use dinoseg::node::stats::LATENCY_SAMPLES;
use dinoseg::node::{Camera, Clock, Core, ManualClock, MemoryTransport, SystemClock, Worker};
use dinoseg::topics::Output;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::node_fixtures::*;

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

//! `dinoseg bench-core`: end-to-end latency of the node's core (message in, messages out) with the in-memory
//! transport, on the models of a params file — what the node adds around the model, without ROS.
//!
//! `sequential`: one camera, one message at a time (the next is sent when the previous frame's messages are
//! out): per-frame latency from `submit` to the last output, next to the model's own time. `stream`: every
//! camera of the parameters (or `--cameras N`) publishing at `--rate` Hz for `--seconds` on its own thread, as
//! cameras do: stamp-to-publish latency, frames in / out / dropped, batch sizes.

use crate::flags;
use dinoseg::messages::{Header, Image, RosMessage, Time};
use dinoseg::node::{stats::quantile, Camera, Clock, Core, CoreConfig, FrameModel, SystemClock, Transport, Worker};
use dinoseg::params::Params;
use dinoseg::pipeline::RgbImage;
use dinoseg::postprocess::FrameSegmentation;
use dinoseg::segmenter::Segmenter;
use dinoseg::topics::Stream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct BenchCoreArgs {
    /// Params file (models, outputs, device).
    #[arg(long)]
    params: PathBuf,
    /// `sequential` or `stream`.
    #[arg(long, default_value = "sequential", value_parser = ["sequential", "stream"])]
    mode: String,
    /// Frame size `HxW` (rgb8 messages), each side 1 to 8192.
    #[arg(long, default_value = "480x640", value_name = "HxW", value_parser = flags::size_hw)]
    size: flags::Size,
    /// sequential: frames measured (after 3 warm-up frames), 1 to 100000.
    #[arg(long, default_value_t = 20, value_parser = flags::count(1, 100_000))]
    frames: usize,
    /// stream: cameras (default: the parameters' input topics), 1 to 64.
    #[arg(long, value_parser = flags::count(1, 64))]
    cameras: Option<usize>,
    /// stream: frames per second per camera, above 0 and at most 1000.
    #[arg(long, default_value_t = 30.0, value_parser = flags::rate_hz)]
    rate: f64,
    /// stream: duration in seconds, above 0 and at most 86400.
    #[arg(long, default_value_t = 10.0, value_parser = flags::seconds)]
    seconds: f64,
    /// libtorch CPU threads, 0 to 1024 (0: the parameters' node.threads, else libtorch's default).
    #[arg(long, default_value_t = 0, value_parser = flags::int_i32(0, 1024))]
    threads: i32,
    /// Write the results as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The segmenter, with the time of each forward call recorded.
struct Timed {
    seg: Segmenter,
    model_ms: Arc<Mutex<Vec<f64>>>,
    batches: Arc<Mutex<Vec<usize>>>,
}

impl FrameModel for Timed {
    fn segment(&mut self, frames: &[&RgbImage]) -> dinoseg::Result<Vec<FrameSegmentation>> {
        let t = Instant::now();
        let r = self.seg.segment(frames);
        if let Ok(mut v) = self.model_ms.lock() {
            v.push(t.elapsed().as_secs_f64() * 1e3);
        }
        if let Ok(mut b) = self.batches.lock() {
            b.push(frames.len());
        }
        r
    }
    fn input_size(&self, height: u32, width: u32) -> (u32, u32) {
        FrameModel::input_size(&self.seg, height, width)
    }
    fn produces_instances(&self) -> bool {
        self.seg.produces_instances()
    }
}

/// Counts outputs and remembers when each frame's last output went out.
struct Counting {
    clock: Arc<dyn Clock>,
    messages: u64,
    bytes: u64,
    last_publish_ns: Arc<Mutex<u64>>,
}

impl Transport for Counting {
    fn publish(&mut self, _camera: usize, _stream: &Stream, cdr: Vec<u8>) -> Result<(), String> {
        self.messages += 1;
        self.bytes += cdr.len() as u64;
        if let Ok(mut t) = self.last_publish_ns.lock() {
            *t = self.clock.now_ns();
        }
        Ok(())
    }
    fn publish_diagnostics(&mut self, _cdr: Vec<u8>) -> Result<(), String> {
        Ok(())
    }
    fn warn(&mut self, message: &str) {
        eprintln!("warning: {message}");
    }
}

/// A 640x480-style synthetic frame: gradients and a few discs, different per index.
fn frame_cdr(i: usize, camera: usize, h: u32, w: u32, stamp_ns: u64) -> Vec<u8> {
    // h, w <= flags::MAX_SIDE: h * w * 3 fits in u32.
    let mut data = vec![0u8; (h * w * 3) as usize];
    let discs: Vec<(i64, i64, i64)> = (0..4)
        .map(|k| {
            let s = (i * 7 + k * 13 + camera * 29) as i64;
            ((s * 37) % i64::from(h), (s * 53) % i64::from(w), 20 + (s * 11) % 40)
        })
        .collect();
    for y in 0..h {
        for x in 0..w {
            let o = ((y * w + x) * 3) as usize;
            let inside = discs.iter().any(|&(cy, cx, r)| {
                let (dy, dx) = (i64::from(y) - cy, i64::from(x) - cx);
                dy * dy + dx * dx < r * r
            });
            data[o] = if inside { 230 } else { (x * 255 / w) as u8 };
            data[o + 1] = if inside { 40 } else { (y * 255 / h) as u8 };
            data[o + 2] = 90;
        }
    }
    Image {
        header: Header::new(Time::from_nanos(stamp_ns), format!("camera{camera}")),
        height: h,
        width: w,
        encoding: "rgb8".into(),
        is_bigendian: 0,
        step: w * 3,
        data,
    }
    .to_cdr()
}

fn stats(v: &[f64]) -> serde_json::Value {
    let q = |p: f64| quantile(v.iter().copied(), p).unwrap_or(f64::NAN);
    serde_json::json!({"p50": q(0.5), "p95": q(0.95), "max": q(1.0), "n": v.len()})
}

pub fn run(a: &BenchCoreArgs) -> dinoseg::Result<()> {
    let params = Params::from_file(&a.params)
        .map_err(|e| dinoseg::Error::Input(format!("{}: invalid parameters:\n{e}", a.params.display())))?;
    let threads = if a.threads > 0 { a.threads as usize } else { params.node.threads };
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
    let (h, w) = (a.size.height, a.size.width);
    let mut cfg = CoreConfig::from_params(&params, "dinoseg");
    cfg.diagnostics_period_ns = u64::MAX / 4; // keep every latency sample (up to the per-camera cap)
    if let Some(n) = a.cameras {
        cfg.cameras = (0..n).map(|i| Camera { topic: format!("/camera{i}/image_raw"), compressed: false }).collect();
        cfg.max_batch = params.node.max_batch.max(n);
    }
    for c in &mut cfg.cameras {
        c.compressed = false; // the bench sends raw rgb8 Images
    }
    let model_ms = Arc::new(Mutex::new(Vec::new()));
    let batches = Arc::new(Mutex::new(Vec::new()));
    let seg = Segmenter::new(params.segmenter_config()?)?;
    seg.segment(&[&RgbImage::new(w, h)])?; // warm-up
    let model = Timed { seg, model_ms: model_ms.clone(), batches: batches.clone() };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let last = Arc::new(Mutex::new(0u64));
    let transport = Counting { clock: clock.clone(), messages: 0, bytes: 0, last_publish_ns: last.clone() };
    let outputs: Vec<&str> = cfg.outputs.iter().map(|o| o.name()).collect();
    println!(
        "core end to end: {} ({}), {h}x{w} rgb8, device {}, {} libtorch threads, outputs {}",
        a.params.display(),
        a.mode,
        params.device,
        tch::get_num_threads(),
        outputs.join(", ")
    );
    let result = match a.mode.as_str() {
        "sequential" => {
            let core = Core::new(cfg, clock.clone());
            let mut worker = Worker::new(core.clone(), model, transport);
            let mut e2e = Vec::new();
            for i in 0..a.frames + 3 {
                let cdr = frame_cdr(i, 0, h, w, clock.now_ns());
                let t = clock.now_ns();
                core.submit(0, cdr);
                worker.poll();
                let done = last.lock().map(|v| *v).unwrap_or(t);
                if i >= 3 {
                    e2e.push(done.saturating_sub(t) as f64 / 1e6);
                }
            }
            let model: Vec<f64> = model_ms.lock().map(|v| v.get(3..).unwrap_or_default().to_vec()).unwrap_or_default();
            let p50 = |v: &[f64]| quantile(v.iter().copied(), 0.5).unwrap_or(f64::NAN);
            let (e, m) = (p50(&e2e), p50(&model));
            println!("| frames | message in -> last message out p50 ms | p95 ms | model p50 ms | core share |");
            println!("|---|---|---|---|---|");
            let p95 = quantile(e2e.iter().copied(), 0.95).unwrap_or(f64::NAN);
            println!("| {} | {e:.1} | {p95:.1} | {m:.1} | {:.1}% |", e2e.len(), 100.0 * (e - m) / e);
            serde_json::json!({"mode": "sequential", "size": [h, w], "threads": tch::get_num_threads(),
                "e2e_ms": stats(&e2e), "model_ms": stats(&model), "core_share": (e - m) / e})
        }
        "stream" => {
            let n = cfg.cameras.len();
            let core = Core::new(cfg, clock.clone());
            let worker_core = core.clone();
            let handle = std::thread::spawn(move || {
                let mut worker = Worker::new(worker_core, model, transport);
                worker.run();
                worker.into_parts().1
            });
            // Frames are made before the clock starts; cameras start staggered.
            let period = Duration::from_secs_f64(1.0 / a.rate);
            let count = (a.seconds * a.rate).round() as usize;
            let producers: Vec<_> = (0..n)
                .map(|cam| {
                    let core = core.clone();
                    let clock = clock.clone();
                    let frames: Vec<Vec<u8>> = (0..8).map(|i| frame_cdr(i, cam, h, w, 0)).collect();
                    std::thread::spawn(move || {
                        std::thread::sleep(period.mul_f64(cam as f64 / n as f64));
                        let start = Instant::now();
                        for i in 0..count {
                            let due = start + period.mul_f64(i as f64);
                            if let Some(d) = due.checked_duration_since(Instant::now()) {
                                std::thread::sleep(d);
                            }
                            // Restamp a prepared frame: stamp = capture time, now.
                            let mut cdr = frames[i % frames.len()].clone();
                            let t = Time::from_nanos(clock.now_ns());
                            cdr[4..8].copy_from_slice(&t.sec.to_le_bytes());
                            cdr[8..12].copy_from_slice(&t.nanosec.to_le_bytes());
                            core.submit(cam, cdr);
                        }
                    })
                })
                .collect();
            for p in producers {
                let _ = p.join();
            }
            std::thread::sleep(Duration::from_millis(500));
            let (lat, totals): (Vec<_>, Vec<_>) = (0..n)
                .map(|c| {
                    let q = |p| core.latency_ms(c, p).unwrap_or(f64::NAN);
                    ((q(0.5), q(0.95), q(1.0)), core.totals(c))
                })
                .unzip();
            core.close();
            let transport = handle.join().map_err(|_| dinoseg::Error::Runtime("worker panicked".into()))?;
            let b = batches.lock().map(|v| v.clone()).unwrap_or_default();
            let model = model_ms.lock().map(|v| v.clone()).unwrap_or_default();
            let mean_batch = b.iter().sum::<usize>() as f64 / b.len().max(1) as f64;
            let model_p50 = quantile(model.iter().copied(), 0.5).unwrap_or(f64::NAN);
            println!(
                "{n} camera(s) at {} Hz for {} s; model pass p50 {model_p50:.1} ms, mean batch {mean_batch:.2}, {} messages out",
                a.rate, a.seconds, transport.messages
            );
            println!("| camera | in | out | dropped | stamp -> publish p50 ms | p95 ms | max ms |");
            println!("|---|---|---|---|---|---|---|");
            let mut cams = Vec::new();
            for (c, ((p50, p95, max), t)) in lat.iter().zip(&totals).enumerate() {
                println!("| {c} | {} | {} | {} | {p50:.1} | {p95:.1} | {max:.1} |", t.received, t.published, t.dropped);
                cams.push(serde_json::json!({"received": t.received, "published": t.published, "dropped": t.dropped,
                    "latency_ms": {"p50": p50, "p95": p95, "max": max}}));
            }
            serde_json::json!({"mode": "stream", "size": [h, w], "rate": a.rate, "seconds": a.seconds,
                "threads": tch::get_num_threads(), "model_ms": stats(&model), "mean_batch": mean_batch,
                "cameras": cams})
        }
        other => return Err(dinoseg::Error::Input(format!("--mode must be sequential or stream, got `{other}`"))),
    };
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&result).unwrap_or_default())
            .map_err(|e| dinoseg::Error::Input(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

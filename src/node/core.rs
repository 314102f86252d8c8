//! The node's core without ROS: camera messages in, output messages out.
//!
//! The receiving side calls [`Core::submit`] with each message's CDR bytes (cheap: no decoding, the message goes
//! into its camera's latest-frame slot). A [`Worker`] owns the model and the transport: it takes the waiting
//! messages (one per camera, up to `max_batch`), decodes them, runs frames of equal model-input size as one batch,
//! encodes every output with the input's header and publishes it, then reports per-camera diagnostics
//! periodically. A malformed message, a model error (CUDA out of memory) or a panic inside the model drops the
//! frames concerned, counted, with a throttled warning; the worker goes on.
//!
//! Live parameters: [`Core::update_live`] (from any thread, e.g. the ROS parameter callback) replaces the
//! [`LiveConfig`]: outputs, colours, thresholds, `max_batch`, the diagnostics period and the warning interval.
//! The worker reads it at the start of each batch, so the next frame follows it.

use super::clock::Clock;
use super::slots::{Incoming, Slots};
use super::stats::{diagnostic_array, CameraStats, Throttle, Totals};
use crate::error::{catch_quiet, panic_text, Error, ErrorKind};
use crate::messages::{Header, RosMessage};
use crate::params::{Palette, Params};
use crate::pipeline::{decode_message, RgbImage};
use crate::postprocess::{FrameSegmentation, PostprocessConfig};
use crate::publish::Encoder;
use crate::segmenter::Segmenter;
use crate::topics::{Output, OutputSet, Stream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A segmentation model as the core sees it.
pub trait FrameModel {
    /// Segments a batch of frames that share one model-input size ([`FrameModel::input_size`]).
    fn segment(&mut self, frames: &[&RgbImage]) -> crate::Result<Vec<FrameSegmentation>>;
    /// The model-input size of a frame: frames with equal sizes go into one forward pass.
    fn input_size(&self, height: u32, width: u32) -> (u32, u32) {
        (height, width)
    }
    /// Whether results carry instances (else the instance outputs are not published).
    fn produces_instances(&self) -> bool;
    /// Post-processing thresholds for the next frames (live parameters). The default ignores them.
    fn set_postprocess(&mut self, cfg: PostprocessConfig) -> crate::Result<()> {
        let _ = cfg;
        Ok(())
    }
}

impl FrameModel for Segmenter {
    fn segment(&mut self, frames: &[&RgbImage]) -> crate::Result<Vec<FrameSegmentation>> {
        Segmenter::segment(self, frames)
    }
    fn input_size(&self, height: u32, width: u32) -> (u32, u32) {
        Segmenter::input_size(self, height, width).unwrap_or((height, width))
    }
    fn produces_instances(&self) -> bool {
        Segmenter::produces_instances(self)
    }
    fn set_postprocess(&mut self, cfg: PostprocessConfig) -> crate::Result<()> {
        Segmenter::set_postprocess(self, cfg)
    }
}

/// Where output messages go: rcl publishers in the node, memory in tests and benchmarks.
pub trait Transport {
    /// Publishes `stream` of camera `camera` (CDR with its encapsulation header).
    fn publish(&mut self, camera: usize, stream: &Stream, cdr: Vec<u8>) -> Result<(), String>;
    /// Publishes a `diagnostic_msgs/DiagnosticArray` on `/diagnostics`.
    fn publish_diagnostics(&mut self, cdr: Vec<u8>) -> Result<(), String>;
    /// Logs a warning (already throttled).
    fn warn(&mut self, message: &str);
}

/// One camera input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Camera {
    pub topic: String,
    /// `sensor_msgs/CompressedImage` (else `sensor_msgs/Image`).
    pub compressed: bool,
}

/// What the core needs from the parameters. `max_batch`, `outputs`, `palette`, `score_threshold`,
/// `diagnostics_period_ns` and `warn_interval_ns` are the start-up values of the [`LiveConfig`].
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Name in the diagnostics (`<name>: <topic>`), the node's name.
    pub name: String,
    pub cameras: Vec<Camera>,
    /// Most frames in one forward pass.
    pub max_batch: usize,
    /// Outputs to publish. `LabelInfo` is published once per camera (transient local), with its first frame.
    pub outputs: OutputSet,
    /// Reported as the diagnostics' hardware id.
    pub device: String,
    pub palette: Palette,
    pub score_threshold: f32,
    pub diagnostics_period_ns: u64,
    pub warn_interval_ns: u64,
}

impl CoreConfig {
    pub fn from_params(p: &Params, name: &str) -> Self {
        let live = LiveConfig::from_params(p);
        CoreConfig {
            name: name.to_string(),
            cameras: p
                .input_topics()
                .iter()
                .map(|t| Camera { topic: t.name.clone(), compressed: t.compressed })
                .collect(),
            max_batch: live.max_batch,
            outputs: live.outputs,
            device: p.device.clone(),
            palette: live.palette,
            score_threshold: live.score_threshold,
            diagnostics_period_ns: live.diagnostics_period_ns,
            warn_interval_ns: live.warn_interval_ns,
        }
    }

    /// The live part at start-up (the model keeps the thresholds it was built with: `postprocess` is None).
    pub fn live(&self) -> LiveConfig {
        LiveConfig {
            max_batch: self.max_batch.max(1),
            outputs: self.outputs,
            palette: self.palette.clone(),
            score_threshold: self.score_threshold,
            diagnostics_period_ns: self.diagnostics_period_ns,
            warn_interval_ns: self.warn_interval_ns,
            postprocess: None,
        }
    }
}

/// What can change while the node runs (`ros2 param set`, see [`Params::set_live`]): the worker reads it at the
/// start of each batch.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveConfig {
    /// Most frames in one forward pass.
    pub max_batch: usize,
    /// Outputs to publish. `LabelInfo` is published once per camera, with the first frame after it is on.
    pub outputs: OutputSet,
    pub palette: Palette,
    /// Instance score threshold the encoder filters with and `LabelInfo` reports.
    pub score_threshold: f32,
    pub diagnostics_period_ns: u64,
    pub warn_interval_ns: u64,
    /// Thresholds handed to the model ([`FrameModel::set_postprocess`]) before its next batch when they differ
    /// from the ones it was last given; None leaves the model's own.
    pub postprocess: Option<PostprocessConfig>,
}

impl LiveConfig {
    pub fn from_params(p: &Params) -> Self {
        let ns = |s: f64| (s * 1e9) as u64;
        LiveConfig {
            max_batch: p.node.max_batch.max(1),
            outputs: p.outputs(),
            palette: p.colors.clone(),
            score_threshold: p.thresholds.score_threshold as f32,
            diagnostics_period_ns: ns(p.node.diagnostics_period),
            warn_interval_ns: ns(p.node.warn_interval),
            postprocess: Some(p.thresholds),
        }
    }
}

/// What the core holds at a moment (to show that nothing grows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retained {
    /// Messages waiting in slots (at most one per camera).
    pub pending: usize,
    /// Latency samples held for the current diagnostics period (bounded per camera).
    pub samples: usize,
}

/// The state shared by the receiving side and the worker.
pub struct Core {
    cfg: CoreConfig,
    live: Mutex<Arc<LiveConfig>>,
    slots: Slots,
    clock: Arc<dyn Clock>,
    stats: Mutex<Vec<CameraStats>>,
}

impl Core {
    pub fn new(cfg: CoreConfig, clock: Arc<dyn Clock>) -> Arc<Self> {
        let n = cfg.cameras.len();
        let live = Mutex::new(Arc::new(cfg.live()));
        Arc::new(Core { slots: Slots::new(n), stats: Mutex::new(vec![CameraStats::default(); n]), cfg, live, clock })
    }

    /// The configuration at start-up; the live part may have changed since ([`Core::live`]).
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// The live configuration now.
    pub fn live(&self) -> Arc<LiveConfig> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes the live part of `params` (after [`Params::set_live`]): the worker's next batch follows it. The
    /// rest of `params` (cameras, device, models) is not looked at.
    pub fn update_live(&self, params: &Params) {
        self.set_live(LiveConfig::from_params(params));
    }

    /// Replaces the live configuration: the worker's next batch follows it.
    pub fn set_live(&self, live: LiveConfig) {
        let live = LiveConfig { max_batch: live.max_batch.max(1), ..live };
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(live);
    }

    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    fn stats(&self) -> MutexGuard<'_, Vec<CameraStats>> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A message arrived on camera `camera`: it replaces any the worker has not taken yet.
    pub fn submit(&self, camera: usize, cdr: Vec<u8>) {
        if camera >= self.cfg.cameras.len() {
            return;
        }
        let replaced = self.slots.put(camera, Incoming { cdr, received_ns: self.clock.now_ns() });
        if let Some(s) = self.stats().get_mut(camera) {
            s.received(replaced);
        }
    }

    /// Stops the worker (after the batch it is running).
    pub fn close(&self) {
        self.slots.close();
    }

    pub fn is_closed(&self) -> bool {
        self.slots.is_closed()
    }

    /// Totals of camera `camera` since start-up.
    pub fn totals(&self, camera: usize) -> Totals {
        self.stats().get(camera).map(|s| s.totals).unwrap_or_default()
    }

    pub fn retained(&self) -> Retained {
        Retained { pending: self.slots.pending(), samples: self.stats().iter().map(CameraStats::retained).sum() }
    }

    /// Stamp-to-publish latency quantile of camera `camera` in the current diagnostics period, ms.
    pub fn latency_ms(&self, camera: usize, q: f64) -> Option<f64> {
        self.stats().get(camera).and_then(|s| s.latency_ms(q))
    }
}

/// A decoded frame waiting for the model.
struct Frame {
    camera: usize,
    header: Header,
    rgb: RgbImage,
    received_ns: u64,
}

/// Owns the model and the transport and does the work.
pub struct Worker<M: FrameModel, T: Transport> {
    core: Arc<Core>,
    model: M,
    transport: T,
    throttle: Throttle,
    label_info_sent: Vec<bool>,
    last_diagnostics_ns: u64,
    /// The live configuration of the current batch.
    live: Arc<LiveConfig>,
    /// The thresholds last handed to the model.
    postprocess: Option<PostprocessConfig>,
}

impl<M: FrameModel, T: Transport> Worker<M, T> {
    pub fn new(core: Arc<Core>, model: M, transport: T) -> Self {
        let n = core.cfg.cameras.len();
        let now = core.now_ns();
        let live = core.live();
        Worker {
            live,
            core,
            model,
            transport,
            throttle: Throttle::default(),
            label_info_sent: vec![false; n],
            last_diagnostics_ns: now,
            postprocess: None,
        }
    }

    /// The live configuration for the next batch; new thresholds go to the model.
    fn refresh_live(&mut self) {
        let live = self.core.live();
        if !Arc::ptr_eq(&live, &self.live) {
            self.live = live;
        }
        if let Some(pp) = self.live.postprocess.filter(|pp| self.postprocess != Some(*pp)) {
            self.postprocess = Some(pp);
            let model = &mut self.model;
            let result = match catch_quiet(|| model.set_postprocess(pp)) {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(p) => Err(Error::model_panic(&p).to_string()),
            };
            if let Err(e) = result {
                self.transport.warn(&format!("new thresholds not applied, the previous ones stay: {e}"));
            }
        }
    }

    pub fn transport(&mut self) -> &mut T {
        &mut self.transport
    }

    pub fn into_parts(self) -> (M, T) {
        (self.model, self.transport)
    }

    fn warn(&mut self, camera: usize, kind: &'static str, msg: String) {
        let now = self.core.now_ns();
        if let Some(m) = self.throttle.check(camera, kind, now, self.live.warn_interval_ns, msg) {
            self.transport.warn(&m);
        }
    }

    /// Runs until [`Core::close`]: waits for messages, processes them, and publishes diagnostics on time (also
    /// while no message comes, so a silent camera shows up in the diagnostics).
    pub fn run(&mut self) {
        loop {
            let live = self.core.live();
            let now = self.core.now_ns();
            let due = self.last_diagnostics_ns.saturating_add(live.diagnostics_period_ns);
            if now >= due {
                self.publish_diagnostics();
                continue;
            }
            // Wakes up at least every second: a diagnostics period shortened meanwhile is followed within one.
            let wait = Duration::from_nanos((due - now).min(1_000_000_000));
            match self.core.slots.wait_take(live.max_batch, wait) {
                None => break,
                Some(taken) if taken.is_empty() => {}
                Some(taken) => {
                    self.process_guarded(taken);
                }
            }
        }
    }

    /// [`Self::process`], and a panic anywhere in it (a bug, not input: the model's own panics are handled per
    /// batch) drops the taken frames with a warning instead of ending the worker.
    fn process_guarded(&mut self, taken: Vec<(usize, Incoming)>) -> usize {
        let cameras: Vec<usize> = taken.iter().map(|(c, _)| *c).collect();
        match catch_unwind(AssertUnwindSafe(|| self.process(taken))) {
            Ok(published) => published,
            Err(p) => {
                let msg = panic_text(p.as_ref());
                for c in cameras {
                    let topic = self.core.cfg.cameras[c].topic.clone();
                    self.warn(c, "internal", format!("{topic}: frame dropped after an internal error: {msg}"));
                }
                0
            }
        }
    }

    /// Processes what is waiting now, without blocking; the number of frames published.
    pub fn poll(&mut self) -> usize {
        let taken = self.core.slots.take(self.core.live().max_batch);
        self.process_guarded(taken)
    }

    /// Publishes diagnostics if a period has passed since the last ones; true if it did.
    pub fn diagnostics_if_due(&mut self) -> bool {
        let now = self.core.now_ns();
        if now >= self.last_diagnostics_ns.saturating_add(self.core.live().diagnostics_period_ns) {
            self.publish_diagnostics();
            return true;
        }
        false
    }

    /// Publishes one `DiagnosticArray` (a status per camera) for the period that ends now.
    pub fn publish_diagnostics(&mut self) {
        let now = self.core.now_ns();
        let period_s = now.saturating_sub(self.last_diagnostics_ns) as f64 / 1e9;
        self.last_diagnostics_ns = now;
        let cfg = &self.core.cfg;
        let status = {
            let mut stats = self.core.stats();
            cfg.cameras
                .iter()
                .zip(stats.iter_mut())
                .map(|(c, s)| s.report(&format!("{}: {}", cfg.name, c.topic), &cfg.device, period_s))
                .collect()
        };
        let cdr = diagnostic_array(now, status).to_cdr();
        if let Err(e) = self.transport.publish_diagnostics(cdr) {
            self.transport.warn(&format!("/diagnostics: cannot publish: {e}"));
        }
    }

    /// Decodes, segments and publishes taken messages; the number of frames published.
    pub fn process(&mut self, taken: Vec<(usize, Incoming)>) -> usize {
        self.refresh_live();
        let mut frames = Vec::with_capacity(taken.len());
        for (camera, inc) in taken {
            let cam = &self.core.cfg.cameras[camera];
            match decode_message(&inc.cdr, cam.compressed) {
                Ok((header, rgb)) => frames.push(Frame { camera, header, rgb, received_ns: inc.received_ns }),
                Err(e) => {
                    let topic = cam.topic.clone();
                    if let Some(s) = self.core.stats().get_mut(camera) {
                        s.malformed();
                    }
                    self.warn(camera, "malformed", format!("{topic}: dropping a malformed message: {e}"));
                }
            }
        }
        // Frames of equal model-input size share a forward pass.
        let mut groups: Vec<((u32, u32), Vec<Frame>)> = Vec::new();
        for f in frames {
            let key = self.model.input_size(f.rgb.height(), f.rgb.width());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, g)) => g.push(f),
                None => groups.push((key, vec![f])),
            }
        }
        groups.into_iter().map(|(_, group)| self.run_batch(group)).sum()
    }

    /// Segments one group of frames and publishes the results; the number of frames published.
    fn run_batch(&mut self, group: Vec<Frame>) -> usize {
        let images: Vec<&RgbImage> = group.iter().map(|f| &f.rgb).collect();
        let model = &mut self.model;
        let result = match catch_quiet(|| model.segment(&images)) {
            Ok(Ok(segs)) if segs.len() == group.len() => Ok(segs),
            Ok(Ok(segs)) => {
                Err(Error::Internal(format!("the model returned {} results for {} frames", segs.len(), group.len())))
            }
            Ok(Err(e)) => Err(e),
            Err(p) => Err(Error::model_panic(&p)),
        };
        match result {
            Ok(segs) => {
                let n = group.len();
                for (f, seg) in group.into_iter().zip(segs) {
                    self.publish_frame(f, &seg, n);
                }
                n
            }
            Err(e) => {
                let hint = match e.kind() {
                    ErrorKind::OutOfMemory => " (GPU out of memory: lower resize or node.max_batch)",
                    _ => "",
                };
                let e = e.to_string();
                for f in group {
                    let topic = self.core.cfg.cameras[f.camera].topic.clone();
                    if let Some(s) = self.core.stats().get_mut(f.camera) {
                        s.failed(&e);
                    }
                    let stamp = f.header.stamp.to_nanos();
                    self.warn(f.camera, "model", format!("{topic}: frame {stamp} dropped: {e}{hint}"));
                }
                0
            }
        }
    }

    fn publish_frame(&mut self, f: Frame, seg: &FrameSegmentation, batch: usize) {
        let live = &self.live;
        let palette = &live.palette;
        let color = |c: u16| palette.color(c);
        let mut encoder = Encoder {
            // `LabelInfo` goes out once per camera, below.
            enabled: live.outputs.with(Output::LabelInfo, false),
            color: &color,
            threshold: live.score_threshold,
            overlay_alpha: palette.overlay_alpha as f32,
            instances_available: self.model.produces_instances(),
        };
        let (h, w) = (f.rgb.height(), f.rgb.width());
        let mut messages = encoder.encode(&f.header, f.rgb.as_raw(), h, w, seg);
        if live.outputs.contains(Output::LabelInfo) && !self.label_info_sent[f.camera] {
            encoder.enabled = [Output::LabelInfo].into_iter().collect();
            messages.extend(encoder.encode(&f.header, f.rgb.as_raw(), h, w, seg));
            self.label_info_sent[f.camera] = true;
        }
        for (stream, cdr) in messages {
            if let Err(e) = self.transport.publish(f.camera, &stream, cdr) {
                if let Some(s) = self.core.stats().get_mut(f.camera) {
                    s.publish_error();
                }
                let topic = &self.core.cfg.cameras[f.camera].topic;
                let msg = format!("{topic}: cannot publish {}: {e}", stream.name());
                self.warn(f.camera, "publish", msg);
            }
        }
        let now = self.core.now_ns();
        let latency = i128::from(now) - i128::from(f.header.stamp.to_nanos());
        if let Some(s) = self.core.stats().get_mut(f.camera) {
            s.published(latency, now.saturating_sub(f.received_ns), batch);
        }
    }
}

//! The node core's test fixtures shared by tests/node_core.rs and tests/node_live.rs: a core configuration, camera
//! messages, and a fake model that records what it is given.

use dinoseg::messages::{DiagnosticArray, Header, Image, RosMessage, Time};
use dinoseg::node::{Camera, CoreConfig, FrameModel, ManualClock, MemoryTransport};
use dinoseg::params::Palette;
use dinoseg::pipeline::RgbImage;
use dinoseg::postprocess::{FrameSegmentation, LabelData, LabelMap, PostprocessConfig};
use dinoseg::topics::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const MS: u64 = 1_000_000;

pub fn config(cameras: usize, max_batch: usize, outputs: &[Output]) -> CoreConfig {
    CoreConfig {
        name: "dinoseg".into(),
        cameras: (0..cameras).map(|i| Camera { topic: format!("/cam{i}/image_raw"), compressed: false }).collect(),
        max_batch,
        outputs: outputs.iter().copied().collect(),
        device: "cpu".into(),
        palette: Palette::default(),
        score_threshold: 0.5,
        diagnostics_period_ns: 1000 * MS,
        warn_interval_ns: 5000 * MS,
    }
}

/// An rgb8 frame whose pixels encode the camera and stamp, so results can be traced back.
pub fn frame(camera: usize, stamp_ns: u64, height: u32, width: u32) -> Vec<u8> {
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
pub enum Behaviour {
    Ok,
    OutOfMemory,
    Panic,
}

/// A model that takes `pass_ns` per forward pass (advancing a manual clock, or sleeping on the system clock)
/// and labels every pixel with its frame's first byte modulo 4. It records the thresholds it is given and the
/// score threshold in effect at each pass (None: never given any), and refuses a mask threshold of 0.123.
pub struct FakeModel {
    pub clock: Option<Arc<ManualClock>>,
    pub pass_ns: u64,
    pub batches: Arc<Mutex<Vec<usize>>>,
    pub plan: Arc<Mutex<Vec<Behaviour>>>,
    pub postprocess: Option<PostprocessConfig>,
    pub given: Arc<Mutex<Vec<PostprocessConfig>>>,
    pub seen: Arc<Mutex<Vec<Option<f64>>>>,
}

impl FakeModel {
    pub fn new(clock: Option<Arc<ManualClock>>, pass_ns: u64) -> Self {
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
                return Err(dinoseg::Error::OutOfMemory {
                    device: "cuda:0".into(),
                    message: "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)".into(),
                })
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

pub fn diagnostics(t: &MemoryTransport) -> DiagnosticArray {
    DiagnosticArray::from_cdr(t.diagnostics.last().expect("no diagnostics")).unwrap()
}

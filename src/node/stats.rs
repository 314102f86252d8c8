//! Per-camera counters and the `/diagnostics` status built from them.

use crate::messages::{DiagnosticArray, DiagnosticStatus, Header, KeyValue, Time};
use std::collections::VecDeque;

/// Latency samples kept per camera and period (the newest); bounds memory whatever the frame rate.
pub const LATENCY_SAMPLES: usize = 2048;

/// Totals since start-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Messages received.
    pub received: u64,
    /// Frames whose results were published.
    pub published: u64,
    /// Messages replaced in the latest-frame slot by a newer one before the worker took them.
    pub dropped: u64,
    /// Messages that could not be decoded (bad CDR, unknown encoding, size mismatch, bad JPEG).
    pub malformed: u64,
    /// Frames dropped because the model failed on them (CUDA out of memory, ...).
    pub failed: u64,
    /// Output messages the transport refused.
    pub publish_errors: u64,
}

/// What happened to one camera since start-up and during the current diagnostics period.
#[derive(Debug, Clone, Default)]
pub struct CameraStats {
    pub totals: Totals,
    period: Totals,
    /// Stamp-to-publish latency (ms) of the period's frames, newest last.
    latency_ms: VecDeque<f64>,
    /// Receive-to-publish latency (ms) of the period's frames.
    processing_ms: VecDeque<f64>,
    /// Frames per forward pass, summed over the period's batches, and batches.
    batch_frames: u64,
    batches: u64,
    last_error: Option<String>,
}

fn push_bounded(q: &mut VecDeque<f64>, v: f64) {
    if q.len() == LATENCY_SAMPLES {
        q.pop_front();
    }
    q.push_back(v);
}

/// The `q` quantile (nearest rank) of unsorted samples; None without samples.
pub fn quantile(samples: impl IntoIterator<Item = f64>, q: f64) -> Option<f64> {
    let mut v: Vec<f64> = samples.into_iter().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[((v.len() - 1) as f64 * q).round() as usize])
}

impl CameraStats {
    pub fn received(&mut self, replaced: bool) {
        self.totals.received += 1;
        self.period.received += 1;
        if replaced {
            self.totals.dropped += 1;
            self.period.dropped += 1;
        }
    }

    pub fn malformed(&mut self) {
        self.totals.malformed += 1;
        self.period.malformed += 1;
    }

    pub fn failed(&mut self, error: &str) {
        self.totals.failed += 1;
        self.period.failed += 1;
        self.last_error = Some(error.to_string());
    }

    pub fn publish_error(&mut self) {
        self.totals.publish_errors += 1;
        self.period.publish_errors += 1;
    }

    /// A frame published `latency_ns` after its stamp and `processing_ns` after it arrived, in a batch of
    /// `batch` frames.
    pub fn published(&mut self, latency_ns: i128, processing_ns: u64, batch: usize) {
        self.totals.published += 1;
        self.period.published += 1;
        push_bounded(&mut self.latency_ms, latency_ns as f64 / 1e6);
        push_bounded(&mut self.processing_ms, processing_ns as f64 / 1e6);
        self.batch_frames += batch as u64;
        self.batches += 1;
    }

    /// Samples and counters held for the current period (what memory the stats use).
    pub fn retained(&self) -> usize {
        self.latency_ms.len() + self.processing_ms.len()
    }

    /// Stamp-to-publish latency quantile of the current period, in ms.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        quantile(self.latency_ms.iter().copied(), q)
    }

    /// The diagnostic status of the period that ends now (`period_s` long), and a fresh period.
    pub fn report(&mut self, name: &str, device: &str, period_s: f64) -> DiagnosticStatus {
        let p = self.period;
        let rate = |n: u64| if period_s > 0.0 { n as f64 / period_s } else { 0.0 };
        let ms = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |x| format!("{x:.1}"));
        let lat = |q: &VecDeque<f64>, p: f64| ms(quantile(q.iter().copied(), p));
        let (level, message) = if p.received == 0 {
            (DiagnosticStatus::WARN, "no frames received".to_string())
        } else if p.failed > 0 && p.published == 0 {
            let e = self.last_error.as_deref().unwrap_or("unknown error");
            (DiagnosticStatus::ERROR, format!("model failed on every frame ({} frames): {e}", p.failed))
        } else if p.failed > 0 {
            let e = self.last_error.as_deref().unwrap_or("unknown error");
            (DiagnosticStatus::WARN, format!("model failed on {} frames: {e}", p.failed))
        } else if p.malformed > 0 {
            (DiagnosticStatus::WARN, format!("{} malformed frames dropped", p.malformed))
        } else if p.published == 0 {
            (DiagnosticStatus::WARN, "frames received but none published yet".to_string())
        } else {
            (DiagnosticStatus::OK, "ok".to_string())
        };
        let t = self.totals;
        let values = vec![
            KeyValue::new("input_rate_hz", format!("{:.2}", rate(p.received))),
            KeyValue::new("output_rate_hz", format!("{:.2}", rate(p.published))),
            KeyValue::new("latency_p50_ms", lat(&self.latency_ms, 0.5)),
            KeyValue::new("latency_p95_ms", lat(&self.latency_ms, 0.95)),
            KeyValue::new("processing_p50_ms", lat(&self.processing_ms, 0.5)),
            KeyValue::new("processing_p95_ms", lat(&self.processing_ms, 0.95)),
            KeyValue::new(
                "batch_size_mean",
                if self.batches > 0 {
                    format!("{:.2}", self.batch_frames as f64 / self.batches as f64)
                } else {
                    "n/a".into()
                },
            ),
            KeyValue::new("frames_dropped_period", p.dropped),
            KeyValue::new("frames_malformed_period", p.malformed),
            KeyValue::new("frames_failed_period", p.failed),
            KeyValue::new("frames_received", t.received),
            KeyValue::new("frames_published", t.published),
            KeyValue::new("frames_dropped", t.dropped),
            KeyValue::new("frames_malformed", t.malformed),
            KeyValue::new("frames_failed", t.failed),
            KeyValue::new("publish_errors", t.publish_errors),
            KeyValue::new("device", device),
        ];
        self.period = Totals::default();
        self.latency_ms.clear();
        self.processing_ms.clear();
        self.batch_frames = 0;
        self.batches = 0;
        if p.failed == 0 {
            self.last_error = None;
        }
        DiagnosticStatus { level, name: name.to_string(), message, hardware_id: device.to_string(), values }
    }
}

/// A `DiagnosticArray` stamped `now_ns`.
pub fn diagnostic_array(now_ns: u64, status: Vec<DiagnosticStatus>) -> DiagnosticArray {
    DiagnosticArray { header: Header { stamp: Time::from_nanos(now_ns), frame_id: String::new() }, status }
}

/// Rate-limits warnings per (camera, kind): the first one passes, later ones within `interval_ns` are counted
/// and their number is added to the next one that passes.
#[derive(Debug, Default)]
pub struct Throttle {
    last: std::collections::HashMap<(usize, &'static str), (u64, u64)>,
}

impl Throttle {
    /// The message to log now, if any.
    pub fn check(
        &mut self,
        camera: usize,
        kind: &'static str,
        now_ns: u64,
        interval_ns: u64,
        msg: String,
    ) -> Option<String> {
        match self.last.get_mut(&(camera, kind)) {
            Some((at, suppressed)) if now_ns.saturating_sub(*at) < interval_ns => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                let n = std::mem::take(suppressed);
                *at = now_ns;
                Some(if n > 0 { format!("{msg} ({n} more like this since the last warning)") } else { msg })
            }
            None => {
                self.last.insert((camera, kind), (now_ns, 0));
                Some(msg)
            }
        }
    }
}

//! Run statistics of the offline runner: frames in / out / skipped / failed / lost to damage per topic, the
//! damage found in the input, how the run ended, and per-stage latency percentiles (decode, preprocess, model,
//! post-process, encode).

use std::collections::BTreeMap;
use std::time::Duration;

/// The stages of one frame, in order.
pub const STAGES: [&str; 5] = ["decode", "preprocess", "model", "postprocess", "encode"];

/// Frame counts of one input topic (or of the image files).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicCounts {
    pub frames_in: u64,
    pub frames_out: u64,
    /// Malformed frames (bad message, undecodable pixels).
    pub skipped: u64,
    /// Frames the model failed on (an error, a panic inside libtorch, out of memory): dropped, as in the node.
    pub failed: u64,
    /// Frames lost in corrupt chunks of the bag (counted from the bag's message indexes where it has them).
    pub damaged: u64,
}

/// Everything the runner counts and times.
#[derive(Debug, Default)]
pub struct RunStats {
    pub topics: BTreeMap<String, TopicCounts>,
    /// Corrupt chunks skipped in the input bag.
    pub corrupt_chunks: u64,
    /// Every damage found in the input (each naming the file and byte offset).
    pub damage: Vec<String>,
    /// The signal that interrupted the run.
    pub interrupted: Option<i32>,
    /// The error that ended the run early.
    pub error: Option<String>,
    samples: [Vec<f64>; 5],
}

impl RunStats {
    pub fn counts(&mut self, topic: &str) -> &mut TopicCounts {
        self.topics.entry(topic.to_string()).or_default()
    }

    /// Records the time of `stage` (an index into [`STAGES`]) for one frame.
    pub fn record(&mut self, stage: usize, d: Duration) {
        if let Some(s) = self.samples.get_mut(stage) {
            s.push(d.as_secs_f64() * 1e3);
        }
    }

    /// (p50, p90, max) in milliseconds of a stage; None without samples.
    pub fn percentiles(&self, stage: usize) -> Option<(f64, f64, f64)> {
        let mut v = self.samples.get(stage)?.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Some((at(0.5), at(0.9), v[v.len() - 1]))
    }

    /// Total frames skipped over all topics.
    pub fn skipped(&self) -> u64 {
        self.topics.values().map(|c| c.skipped).sum()
    }

    /// Total frames the model failed on.
    pub fn failed(&self) -> u64 {
        self.topics.values().map(|c| c.failed).sum()
    }

    /// The exit status of `dinoseg run`: 1 when an error ended the run, 128 + the signal when interrupted, 2 when
    /// the input was damaged or the model failed on frames (the rest was processed), else 0.
    pub fn exit_code(&self) -> u8 {
        if self.error.is_some() {
            1
        } else if let Some(signal) = self.interrupted {
            128u8.saturating_add(u8::try_from(signal).unwrap_or(0))
        } else if !self.damage.is_empty() || self.corrupt_chunks > 0 || self.failed() > 0 {
            2
        } else {
            0
        }
    }

    /// The statistics as JSON (`--stats-json`).
    pub fn to_json(&self) -> serde_json::Value {
        let topics: serde_json::Map<String, serde_json::Value> = self
            .topics
            .iter()
            .map(|(t, c)| {
                let v = serde_json::json!({"frames_in": c.frames_in, "frames_out": c.frames_out,
                    "skipped": c.skipped, "failed": c.failed, "damaged": c.damaged});
                (t.clone(), v)
            })
            .collect();
        serde_json::json!({
            "topics": topics, "stage_p50_ms": self.medians(), "corrupt_chunks": self.corrupt_chunks,
            "damage": self.damage, "interrupted_by_signal": self.interrupted, "error": self.error,
            "exit_code": self.exit_code(),
        })
    }

    /// The end-of-run report: a table per topic and one per stage, then damage and how the run ended.
    pub fn report(&self) -> String {
        let mut out = String::from(
            "| topic | frames in | frames out | skipped | failed | damaged |\n|---|---|---|---|---|---|\n",
        );
        for (topic, c) in &self.topics {
            out.push_str(&format!(
                "| {topic} | {} | {} | {} | {} | {} |\n",
                c.frames_in, c.frames_out, c.skipped, c.failed, c.damaged
            ));
        }
        out.push_str("\n| stage | p50 ms | p90 ms | max ms |\n|---|---|---|---|\n");
        for (i, name) in STAGES.iter().enumerate() {
            if let Some((p50, p90, max)) = self.percentiles(i) {
                out.push_str(&format!("| {name} | {p50:.2} | {p90:.2} | {max:.2} |\n"));
            }
        }
        if self.corrupt_chunks > 0 || !self.damage.is_empty() {
            out.push_str(&format!("\ninput damaged: {} corrupt chunk(s)\n", self.corrupt_chunks));
            for d in &self.damage {
                out.push_str(&format!("- {d}\n"));
            }
        }
        if let Some(signal) = self.interrupted {
            out.push_str(&format!("\ninterrupted by signal {signal}: the outputs hold the frames done\n"));
        }
        out
    }

    /// Median per-stage times in milliseconds by stage name (for metrics files).
    pub fn medians(&self) -> BTreeMap<&'static str, f64> {
        STAGES.iter().enumerate().filter_map(|(i, n)| self.percentiles(i).map(|(p50, _, _)| (*n, p50))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_counts() {
        let mut s = RunStats::default();
        for ms in [5u64, 1, 3, 2, 4, 10, 6, 7, 8, 9] {
            s.record(2, Duration::from_millis(ms));
        }
        let (p50, p90, max) = s.percentiles(2).expect("samples");
        assert_eq!((p50.round(), p90.round(), max.round()), (6.0, 9.0, 10.0));
        assert!(s.percentiles(0).is_none());
        s.counts("/cam").frames_in += 3;
        s.counts("/cam").skipped += 1;
        assert_eq!(s.skipped(), 1);
        let r = s.report();
        assert!(r.contains("| /cam | 3 | 0 | 1 | 0 | 0 |") && r.contains("| model | 6.00 | 9.00 | 10.00 |"), "{r}");
    }
}

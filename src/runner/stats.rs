//! Run statistics of the offline runner: frames in / out / skipped per topic and per-stage latency
//! percentiles (decode, preprocess, model, post-process, encode).

use std::collections::BTreeMap;
use std::time::Duration;

/// The stages of one frame, in order.
pub const STAGES: [&str; 5] = ["decode", "preprocess", "model", "postprocess", "encode"];

/// Frame counts of one input topic (or of the image files).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicCounts {
    pub frames_in: u64,
    pub frames_out: u64,
    pub skipped: u64,
}

/// Everything the runner counts and times.
#[derive(Debug, Default)]
pub struct RunStats {
    pub topics: BTreeMap<String, TopicCounts>,
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

    /// The end-of-run report: a table per topic and one per stage.
    pub fn report(&self) -> String {
        let mut out = String::from("| topic | frames in | frames out | skipped |\n|---|---|---|---|\n");
        for (topic, c) in &self.topics {
            out.push_str(&format!("| {topic} | {} | {} | {} |\n", c.frames_in, c.frames_out, c.skipped));
        }
        out.push_str("\n| stage | p50 ms | p90 ms | max ms |\n|---|---|---|---|\n");
        for (i, name) in STAGES.iter().enumerate() {
            if let Some((p50, p90, max)) = self.percentiles(i) {
                out.push_str(&format!("| {name} | {p50:.2} | {p90:.2} | {max:.2} |\n"));
            }
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
        assert!(r.contains("| /cam | 3 | 0 | 1 |") && r.contains("| model | 6.00 | 9.00 | 10.00 |"), "{r}");
    }
}

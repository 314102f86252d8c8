//! Why a camera publisher cannot reach the node, from what the ROS graph says about it: DDS matches a
//! subscription only with publishers of the same type whose QoS offers at least what it requests, and says
//! nothing when they don't. The node checks its camera topics' publishers periodically and warns once per
//! publisher, naming the topic, the publishing node and the fix.

use crate::params::Reliability;
use std::collections::{HashMap, HashSet};

/// The name rmw gives a publisher's node while the graph has its endpoint but not yet its node's name (the two
/// are discovered separately).
pub const UNKNOWN_NODE_NAME: &str = "_NODE_NAME_UNKNOWN_";

/// Checks a mismatching publisher whose node is still unnamed is waited for before it is warned about as such.
pub const NAME_WAIT_CHECKS: u32 = 3;

/// Which mismatching publishers were warned about (each once, by topic and endpoint id), and how long the ones
/// whose node the graph has not named yet have been waited for: a warning names the publishing node, so it
/// waits for the name, but not for ever (a DDS application that is not a ROS node has none).
#[derive(Debug, Default)]
pub struct Warnings {
    done: HashSet<(String, Vec<u8>)>,
    waiting: HashMap<(String, Vec<u8>), u32>,
}

impl Warnings {
    /// Whether to warn now about the mismatching publisher `gid` on `topic`, whose node is `named` or not yet.
    pub fn should_warn(&mut self, topic: &str, gid: &[u8], named: bool) -> bool {
        let key = (topic.to_string(), gid.to_vec());
        if self.done.contains(&key) {
            return false;
        }
        if !named {
            let waited = self.waiting.entry(key.clone()).or_insert(0);
            *waited += 1;
            if *waited <= NAME_WAIT_CHECKS {
                return false;
            }
        }
        self.waiting.remove(&key);
        self.done.insert(key)
    }
}

/// What the graph tells about one publisher of a camera topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherInfo {
    /// `/ns/name` of the publishing node.
    pub node: String,
    /// ROS type, `sensor_msgs/msg/Image`.
    pub type_name: String,
    /// The publisher offers best effort only.
    pub best_effort: bool,
}

/// The warning for a publisher on `topic` that the node's subscription (type `expected`, reliability `ours`)
/// will never receive from; None when they match.
pub fn mismatch(topic: &str, expected: &str, ours: Reliability, p: &PublisherInfo) -> Option<String> {
    if p.type_name != expected {
        let hint = if p.type_name.ends_with("/CompressedImage") {
            format!(" (list it as `{}/compressed` in input.topics)", topic.trim_end_matches('/'))
        } else if expected.ends_with("/CompressedImage") {
            " (an Image topic: drop `/compressed` from its name in input.topics)".to_string()
        } else {
            String::new()
        };
        return Some(format!(
            "{topic}: {} publishes {}, the node subscribes to {expected}: no frames from it{hint}",
            p.node, p.type_name
        ));
    }
    if ours == Reliability::Reliable && p.best_effort {
        return Some(format!(
            "{topic}: {} publishes best effort and input.reliability is reliable: DDS never matches them, no \
             frames from it (set input.reliability: best_effort)",
            p.node
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(type_name: &str, best_effort: bool) -> PublisherInfo {
        PublisherInfo { node: "/usb_cam".into(), type_name: type_name.into(), best_effort }
    }

    #[test]
    fn warned_once_and_unnamed_nodes_waited_for() {
        let mut w = Warnings::default();
        assert!(w.should_warn("/cam", &[1], true));
        assert!(!w.should_warn("/cam", &[1], true));
        assert!(w.should_warn("/other", &[1], true));
        // unnamed: waited NAME_WAIT_CHECKS checks, then named late -> warned with the name
        for _ in 0..NAME_WAIT_CHECKS - 1 {
            assert!(!w.should_warn("/cam", &[2], false));
        }
        assert!(w.should_warn("/cam", &[2], true));
        // never named: warned after the wait, once
        let warned: Vec<bool> = (0..NAME_WAIT_CHECKS + 3).map(|_| w.should_warn("/cam", &[3], false)).collect();
        assert_eq!(warned.iter().filter(|&&b| b).count(), 1);
        assert!(warned[NAME_WAIT_CHECKS as usize]);
    }

    #[test]
    fn mismatches_are_named() {
        let img = "sensor_msgs/msg/Image";
        let jpg = "sensor_msgs/msg/CompressedImage";
        assert_eq!(mismatch("/cam/image", img, Reliability::BestEffort, &p(img, true)), None);
        assert_eq!(mismatch("/cam/image", img, Reliability::BestEffort, &p(img, false)), None);
        assert_eq!(mismatch("/cam/image", img, Reliability::Reliable, &p(img, false)), None);
        let w = mismatch("/cam/image", img, Reliability::Reliable, &p(img, true)).unwrap_or_default();
        assert!(w.starts_with("/cam/image: /usb_cam publishes best effort") && w.contains("best_effort"), "{w}");
        let w = mismatch("/cam/image", img, Reliability::BestEffort, &p(jpg, true)).unwrap_or_default();
        assert!(w.contains("/cam/image/compressed"), "{w}");
        let w = mismatch("/cam/image/compressed", jpg, Reliability::BestEffort, &p(img, true)).unwrap_or_default();
        assert!(w.contains("drop `/compressed`"), "{w}");
    }
}

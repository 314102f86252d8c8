//! The latest-frame slot of every camera: a received message waits here, undecoded, until the worker takes it.
//! A newer message from the same camera replaces it (counted as dropped), so nothing queues while inference is
//! busy and memory stays one message per camera.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// A received message, not decoded yet.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The CDR bytes as received.
    pub cdr: Vec<u8>,
    /// When it arrived (clock nanoseconds).
    pub received_ns: u64,
}

#[derive(Debug, Default)]
struct State {
    frames: Vec<Option<Incoming>>,
    /// Where the next round-robin take starts (fairness when `max` < cameras).
    next: usize,
    closed: bool,
}

/// One slot per camera, shared by the receiving side (`put`) and the worker (`take`).
#[derive(Debug)]
pub struct Slots {
    state: Mutex<State>,
    ready: Condvar,
}

impl Slots {
    pub fn new(cameras: usize) -> Self {
        Slots { state: Mutex::new(State { frames: vec![None; cameras], ..State::default() }), ready: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep going with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores the newest message of `camera`. Returns true when it replaced one the worker had not taken (a drop).
    /// An unknown camera index is ignored (false).
    pub fn put(&self, camera: usize, frame: Incoming) -> bool {
        let mut s = self.lock();
        let Some(slot) = s.frames.get_mut(camera) else { return false };
        let replaced = slot.replace(frame).is_some();
        drop(s);
        self.ready.notify_one();
        replaced
    }

    /// Takes up to `max` waiting messages, one per camera, starting after the camera served first last time.
    pub fn take(&self, max: usize) -> Vec<(usize, Incoming)> {
        let mut s = self.lock();
        Self::take_locked(&mut s, max)
    }

    fn take_locked(s: &mut State, max: usize) -> Vec<(usize, Incoming)> {
        let n = s.frames.len();
        let mut out = Vec::new();
        for k in 0..n {
            if out.len() >= max {
                break;
            }
            let i = (s.next + k) % n;
            if let Some(f) = s.frames[i].take() {
                out.push((i, f));
            }
        }
        if let Some((first, _)) = out.first() {
            s.next = (first + 1) % n.max(1);
        }
        out
    }

    /// Waits up to `timeout` for at least one message and takes up to `max`; empty on timeout. None once closed.
    pub fn wait_take(&self, max: usize, timeout: Duration) -> Option<Vec<(usize, Incoming)>> {
        let s = self.lock();
        let (mut s, _) = self
            .ready
            .wait_timeout_while(s, timeout, |s| !s.closed && s.frames.iter().all(Option::is_none))
            .unwrap_or_else(|p| p.into_inner());
        if s.closed {
            return None;
        }
        Some(Self::take_locked(&mut s, max))
    }

    /// Messages waiting (at most one per camera).
    pub fn pending(&self) -> usize {
        self.lock().frames.iter().filter(|f| f.is_some()).count()
    }

    /// Wakes the worker and makes every later `wait_take` return None (shutdown).
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

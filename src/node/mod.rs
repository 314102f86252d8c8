//! The node's core, without ROS: latest-frame slots per camera, batching across cameras, decoding, the model,
//! encoding with the input's header, error counting and diagnostics. `dinoseg_node` (feature `ros`) feeds it
//! from rcl subscriptions and hands it rcl publishers; the tests and `dinoseg bench-core` use the in-memory
//! transport ([`memory`]).
//!
//! ```text
//! subscription ──submit(cdr)──▶ Slots (one message per camera; a newer one replaces it: "dropped")
//!                                  │ Worker: take ≤ max_batch, decode (malformed → counted, warned)
//!                                  ▼
//!                      FrameModel::segment (frames of one input size per pass; error/panic → frame dropped)
//!                                  ▼
//!                  Encoder (CDR, input header) ──▶ Transport::publish, and /diagnostics every period
//! ```
//! Latency is bounded by construction: a frame waits at most for the batch that is running, so the time from
//! its stamp to its results stays under two batch periods (plus transport delay), whatever the input rate.

pub mod clock;
pub mod core;
pub mod memory;
pub mod publishers;
pub mod slots;
pub mod stats;

pub use self::core::{Camera, Core, CoreConfig, FrameModel, LiveConfig, Retained, Transport, Worker};
pub use clock::{Clock, ManualClock, SystemClock};
pub use memory::{MemoryTransport, Published};
pub use slots::{Incoming, Slots};
pub use stats::{CameraStats, Totals};

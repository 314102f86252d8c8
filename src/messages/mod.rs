//! Plain Rust mirrors of the published ROS 2 messages and their CDR encoding.
//!
//! Every message dinoseg reads or publishes, without a ROS installation: the core encodes each output message to CDR
//! once; the bag writer ([`crate::bag`]) stores those bytes and the node hands the same bytes to rcl
//! (`r2r` `publish_raw`). Incoming camera frames are decoded from CDR in place ([`ImageRef`], [`CompressedImageRef`]),
//! so [`crate::pipeline::decode::ImageFrame`] points into the received buffer.
//!
//! References:
//! * Message definitions: `builtin_interfaces`, `std_msgs`, `geometry_msgs`, `sensor_msgs`, `diagnostic_msgs` (ros2/common_interfaces,
//!   Humble/Jazzy), `vision_msgs` 4.x (ros-perception/vision_msgs, `ros2` branch, the version in Humble and Jazzy),
//!   and our own `dinoseg_interfaces` (`msg/InstanceMask.msg`, `msg/InstanceMaskArray.msg`). See [`schema`].
//! * Serialization: OMG CDR (DDS-XTypes 1.3 §7.4.3, encoding version 1) as ROS 2's rmw implementations use it
//!   (`rosidl_typesupport_fastrtps`, Fast-CDR): see [`cdr`].
//! * Checked against independent implementations in the tests: Python `rosbags` (typesys + CDR serializer) and
//!   `mcap-ros2-support` (dynamic decoder from the schema text), via `tools/ros2_interop.py`.
//!
//! The CDR code is hand-written rather than serde-based (`cdr`, `cdr-encoding`): ROS `uint8[]` must be one
//! `memcpy` both ways (images), decoding must borrow strings and pixel data from the buffer, and every length must be
//! checked against the buffer before allocation; a 200-line reader/writer does all three.

pub mod cdr;
pub mod diagnostic_msgs;
pub mod geometry_msgs;
pub mod instances;
pub mod schema;
pub mod sensor_msgs;
pub mod std_msgs;
pub mod vision_msgs;

pub use cdr::{CdrReader, CdrWriter};
pub use diagnostic_msgs::{DiagnosticArray, DiagnosticStatus, KeyValue};
pub use geometry_msgs::{Point, Pose, PoseWithCovariance, Quaternion};
pub use instances::{InstanceMask, InstanceMaskArray};
pub use schema::{schema_text, SCHEMA_ENCODING};
pub use sensor_msgs::{CompressedImage, CompressedImageRef, Image, ImageRef, RegionOfInterest};
pub use std_msgs::{Header, HeaderRef, Time};
pub use vision_msgs::{
    BoundingBox2D, Detection2D, Detection2DArray, LabelInfo, ObjectHypothesis, ObjectHypothesisWithPose, Point2D,
    Pose2D, VisionClass,
};

/// A CDR buffer that is not a valid message of the expected type. Never a panic: every malformed, truncated or
/// hostile buffer ends up here, with the field and byte offset where decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("CDR buffer of {len} bytes is shorter than its 4-byte encapsulation header")]
    TooShort { len: usize },
    #[error(
        "unsupported CDR encapsulation header {found:02x?}: expected 00 01 00 00 (CDR little-endian) or 00 00 00 00 \
         (big-endian)"
    )]
    Encapsulation { found: [u8; 4] },
    #[error("CDR buffer truncated at `{field}` (byte {offset}): needs {needed} more bytes, {available} left")]
    Truncated { field: &'static str, offset: usize, needed: usize, available: usize },
    #[error("`{field}` claims {length} elements but only {available} bytes are left")]
    LengthTooLarge { field: &'static str, length: u64, available: usize },
    #[error("`{field}` (byte {offset}) is not valid UTF-8")]
    Utf8 { field: &'static str, offset: usize },
}

/// A ROS 2 message type with its CDR layout.
///
/// Implementors write and read their fields in declaration order; [`RosMessage::to_cdr`] and
/// [`RosMessage::from_cdr`] add the encapsulation header. Trailing bytes after the last field are ignored when
/// decoding (rmw implementations may pad the payload to a multiple of 4).
pub trait RosMessage: Sized {
    /// The ROS 2 type name as topics and bags spell it, e.g. `sensor_msgs/msg/Image`.
    const TYPE_NAME: &'static str;

    /// Appends the fields (no encapsulation header).
    fn write_fields(&self, w: &mut CdrWriter);

    /// Reads the fields (after the encapsulation header).
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError>;

    /// Estimated encoded size in bytes, so that [`RosMessage::to_cdr`] allocates once.
    fn cdr_size_hint(&self) -> usize {
        64
    }

    /// The message as a CDR little-endian buffer with its encapsulation header, ready for `publish_raw` or a bag.
    fn to_cdr(&self) -> Vec<u8> {
        let mut w = CdrWriter::with_capacity(self.cdr_size_hint());
        self.write_fields(&mut w);
        w.finish()
    }

    /// Decodes a CDR buffer (little- or big-endian) with its encapsulation header.
    fn from_cdr(buf: &[u8]) -> Result<Self, MessageError> {
        let mut r = CdrReader::new(buf)?;
        Self::read_fields(&mut r)
    }
}

/// Writes an unbounded sequence of messages: the count, then each element.
pub(crate) fn write_seq<T: RosMessage>(w: &mut CdrWriter, items: &[T]) {
    w.seq_len(items.len());
    for item in items {
        item.write_fields(w);
    }
}

/// Reads an unbounded sequence of messages. The count is checked against the bytes left (every element takes at
/// least one byte) and the vector grows with what is actually decoded, so a hostile count allocates nothing.
pub(crate) fn read_seq<T: RosMessage>(r: &mut CdrReader<'_>, field: &'static str) -> Result<Vec<T>, MessageError> {
    let n = r.seq_len(field, 1)?;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(T::read_fields(r)?);
    }
    Ok(out)
}

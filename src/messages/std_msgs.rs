//! `builtin_interfaces/msg/Time` and `std_msgs/msg/Header` (ros2/rcl_interfaces and ros2/common_interfaces).

use super::{CdrReader, CdrWriter, MessageError, RosMessage};

/// `builtin_interfaces/msg/Time`: `int32 sec`, `uint32 nanosec` (nanoseconds in `[0, 1e9)`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time {
    pub sec: i32,
    pub nanosec: u32,
}

impl Time {
    /// From nanoseconds since the epoch (bag log times); seconds past `i32::MAX` saturate.
    pub fn from_nanos(ns: u64) -> Self {
        let sec = i32::try_from(ns / 1_000_000_000).unwrap_or(i32::MAX);
        Self { sec, nanosec: (ns % 1_000_000_000) as u32 }
    }

    /// Nanoseconds since the epoch; negative times clamp to 0.
    pub fn to_nanos(self) -> u64 {
        if self.sec < 0 {
            return 0;
        }
        self.sec as u64 * 1_000_000_000 + u64::from(self.nanosec)
    }
}

impl RosMessage for Time {
    const TYPE_NAME: &'static str = "builtin_interfaces/msg/Time";
    fn write_fields(&self, w: &mut CdrWriter) {
        w.i32(self.sec);
        w.u32(self.nanosec);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self { sec: r.i32("Time.sec")?, nanosec: r.u32("Time.nanosec")? })
    }
    fn cdr_size_hint(&self) -> usize {
        8
    }
}

/// `std_msgs/msg/Header`: `builtin_interfaces/Time stamp`, `string frame_id`. Outputs copy the input's header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Header {
    pub stamp: Time,
    pub frame_id: String,
}

impl Header {
    pub fn new(stamp: Time, frame_id: impl Into<String>) -> Self {
        Self { stamp, frame_id: frame_id.into() }
    }

    pub fn as_ref(&self) -> HeaderRef<'_> {
        HeaderRef { stamp: self.stamp, frame_id: &self.frame_id }
    }
}

impl RosMessage for Header {
    const TYPE_NAME: &'static str = "std_msgs/msg/Header";
    fn write_fields(&self, w: &mut CdrWriter) {
        self.as_ref().write_fields(w);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(HeaderRef::read_fields(r)?.into_owned())
    }
    fn cdr_size_hint(&self) -> usize {
        16 + self.frame_id.len()
    }
}

/// A `std_msgs/msg/Header` whose `frame_id` borrows from a CDR buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct HeaderRef<'a> {
    pub stamp: Time,
    pub frame_id: &'a str,
}

impl<'a> HeaderRef<'a> {
    pub fn write_fields(&self, w: &mut CdrWriter) {
        self.stamp.write_fields(w);
        w.string(self.frame_id);
    }

    pub fn read_fields(r: &mut CdrReader<'a>) -> Result<Self, MessageError> {
        Ok(Self { stamp: Time::read_fields(r)?, frame_id: r.string("Header.frame_id")? })
    }

    pub fn into_owned(self) -> Header {
        Header { stamp: self.stamp, frame_id: self.frame_id.to_string() }
    }
}

//! A minimal CDR (OMG Common Data Representation, version 1 / "XCDR1") writer and reader for ROS 2 messages.
//!
//! What ROS 2's rmw layers (Fast DDS, Cyclone DDS) put on the wire and what rosbag2 stores, per the OMG DDS-XTypes
//! spec §7.4.3 (CDR) and `rosidl_typesupport_fastrtps` / Fast-CDR:
//!
//! * A 4-byte encapsulation header: `00 01` = CDR little-endian (`00 00` = big-endian), then two option bytes
//!   (written as `00 00`, ignored when reading: newer rmw put the count of trailing padding bytes there).
//! * Every primitive is aligned to its own size (1, 2, 4 or 8 bytes) **relative to the end of the encapsulation
//!   header**, with zero padding. Structs add no alignment of their own: nested fields are laid out in order.
//! * `string` = `u32` length *including* the terminating NUL, the bytes, the NUL.
//! * Unbounded sequences `T[]` = `u32` element count, then the elements; fixed arrays `T[N]` have no count.
//!   `uint8[]` is copied as one block (`memcpy`), never byte by byte.
//!
//! The reader never panics and never allocates from a length field: every length is checked against the bytes
//! that are left before anything is sliced or reserved.

use super::MessageError;

/// Appends CDR little-endian fields to a buffer that starts with the encapsulation header.
#[derive(Debug, Clone)]
pub struct CdrWriter {
    buf: Vec<u8>,
}

impl Default for CdrWriter {
    fn default() -> Self {
        Self::with_capacity(64)
    }
}

impl CdrWriter {
    /// The CDR little-endian encapsulation header (`CDR_LE`).
    pub const ENCAPSULATION_LE: [u8; 4] = [0x00, 0x01, 0x00, 0x00];

    /// A writer with room for `capacity` payload bytes (one allocation when the estimate is right).
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + 4);
        buf.extend_from_slice(&Self::ENCAPSULATION_LE);
        Self { buf }
    }

    /// Pads with zeros until the payload offset (after the 4-byte header) is a multiple of `n`.
    #[inline]
    pub fn align(&mut self, n: usize) {
        let offset = self.buf.len() - 4;
        let pad = (n - offset % n) % n;
        self.buf.resize(self.buf.len() + pad, 0);
    }

    #[inline]
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    #[inline]
    pub fn bool(&mut self, v: bool) {
        self.buf.push(v as u8);
    }
    #[inline]
    pub fn u16(&mut self, v: u16) {
        self.align(2);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn i32(&mut self, v: i32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn f32(&mut self, v: f32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn f64(&mut self, v: f64) {
        self.align(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// The element count of a sequence. Panics only for more than `u32::MAX` elements, which CDR cannot express
    /// (a 4 GiB image: no camera output reaches it).
    #[inline]
    pub fn seq_len(&mut self, n: usize) {
        self.u32(u32::try_from(n).expect("CDR sequences and strings hold at most u32::MAX elements"));
    }

    /// A ROS `string`: length including the NUL, bytes, NUL.
    pub fn string(&mut self, s: &str) {
        self.seq_len(s.len() + 1);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    /// A `uint8[]` / `byte[]` sequence: the count, then the bytes in one copy.
    pub fn bytes(&mut self, data: &[u8]) {
        self.seq_len(data.len());
        self.buf.extend_from_slice(data);
    }

    /// Bytes written so far, header included.
    pub fn written(&self) -> usize {
        self.buf.len()
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads CDR fields out of a borrowed buffer; strings and byte sequences are returned as slices of it.
#[derive(Debug, Clone)]
pub struct CdrReader<'a> {
    /// The payload, after the encapsulation header.
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
}

macro_rules! read_primitive {
    ($name:ident, $t:ty, $n:expr) => {
        #[inline]
        pub fn $name(&mut self, field: &'static str) -> Result<$t, MessageError> {
            self.align($n, field)?;
            let b = self.take($n, field)?;
            let mut a = [0u8; $n];
            a.copy_from_slice(b);
            Ok(if self.big_endian { <$t>::from_be_bytes(a) } else { <$t>::from_le_bytes(a) })
        }
    };
}

impl<'a> CdrReader<'a> {
    /// Checks the encapsulation header: CDR little- or big-endian (`00 01` / `00 00`); XCDR2 and parameter lists
    /// (`00 02`, `00 03`, `00 06`..) are not what ROS 2 messages use and are rejected.
    pub fn new(buf: &'a [u8]) -> Result<Self, MessageError> {
        let Some((header, payload)) = buf.split_first_chunk::<4>() else {
            return Err(MessageError::TooShort { len: buf.len() });
        };
        let big_endian = match (header[0], header[1]) {
            (0x00, 0x01) => false,
            (0x00, 0x00) => true,
            _ => return Err(MessageError::Encapsulation { found: *header }),
        };
        Ok(Self { buf: payload, pos: 0, big_endian })
    }

    /// Payload bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn truncated(&self, field: &'static str, needed: usize) -> MessageError {
        MessageError::Truncated { field, offset: self.pos + 4, needed, available: self.remaining() }
    }

    #[inline]
    fn align(&mut self, n: usize, field: &'static str) -> Result<(), MessageError> {
        let pad = (n - self.pos % n) % n;
        if pad > self.remaining() {
            return Err(self.truncated(field, pad));
        }
        self.pos += pad;
        Ok(())
    }

    #[inline]
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], MessageError> {
        if n > self.remaining() {
            return Err(self.truncated(field, n));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline]
    pub fn u8(&mut self, field: &'static str) -> Result<u8, MessageError> {
        Ok(self.take(1, field)?[0])
    }
    #[inline]
    pub fn bool(&mut self, field: &'static str) -> Result<bool, MessageError> {
        Ok(self.u8(field)? != 0)
    }
    read_primitive!(u16, u16, 2);
    read_primitive!(u32, u32, 4);
    read_primitive!(i32, i32, 4);
    read_primitive!(f32, f32, 4);
    read_primitive!(f64, f64, 8);

    /// A sequence count whose elements take at least `min_element_size` bytes each: a count that cannot fit in the
    /// bytes left is an error, so callers may reserve `count` elements safely.
    pub fn seq_len(&mut self, field: &'static str, min_element_size: usize) -> Result<usize, MessageError> {
        let n = self.u32(field)? as usize;
        if n.saturating_mul(min_element_size.max(1)) > self.remaining() {
            return Err(MessageError::LengthTooLarge { field, length: n as u64, available: self.remaining() });
        }
        Ok(n)
    }

    /// A ROS `string`, borrowed. The terminating NUL is stripped; a zero length (written by some DDS vendors for
    /// the empty string) reads as "".
    pub fn string(&mut self, field: &'static str) -> Result<&'a str, MessageError> {
        let n = self.seq_len(field, 1)?;
        let offset = self.pos + 4;
        let raw = self.take(n, field)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        std::str::from_utf8(raw).map_err(|_| MessageError::Utf8 { field, offset })
    }

    /// A `uint8[]` sequence, borrowed from the buffer (no copy).
    pub fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], MessageError> {
        let n = self.seq_len(field, 1)?;
        self.take(n, field)
    }
}

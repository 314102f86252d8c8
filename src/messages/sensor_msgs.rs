//! `sensor_msgs/msg/Image`, `CompressedImage` and `RegionOfInterest` (ros2/common_interfaces, Humble/Jazzy).
//!
//! Owned types for what we publish, and borrowed views ([`ImageRef`], [`CompressedImageRef`]) for what we receive:
//! a view's `encoding`/`format` and `data` point into the CDR buffer, so a camera frame reaches
//! [`crate::pipeline::decode::decode_image`] without a copy. Decoding checks the CDR layout only; whether `data`
//! holds `step * height` bytes for the encoding is the pixel decoder's job.

use super::{CdrReader, CdrWriter, Header, HeaderRef, MessageError, RosMessage};
use crate::pipeline::decode::{CompressedFrame, ImageFrame};

/// `sensor_msgs/msg/Image`: an uncompressed image, `step` bytes per row (may exceed `width * bytes_per_pixel`),
/// `data` of `step * height` bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Image {
    pub header: Header,
    pub height: u32,
    pub width: u32,
    pub encoding: String,
    /// `uint8` in the message: non-zero for big-endian multi-byte samples.
    pub is_bigendian: u8,
    pub step: u32,
    pub data: Vec<u8>,
}

impl Image {
    /// A borrowed view of this image (for encoding or pixel decoding).
    pub fn as_ref(&self) -> ImageRef<'_> {
        ImageRef {
            header: self.header.as_ref(),
            height: self.height,
            width: self.width,
            encoding: &self.encoding,
            is_bigendian: self.is_bigendian,
            step: self.step,
            data: &self.data,
        }
    }

    /// The frame for [`crate::pipeline::decode::decode_image`].
    pub fn frame(&self) -> ImageFrame<'_> {
        self.as_ref().frame()
    }
}

impl RosMessage for Image {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/Image";
    fn write_fields(&self, w: &mut CdrWriter) {
        self.as_ref().write_fields(w);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(ImageRef::read_fields(r)?.into_owned())
    }
    fn cdr_size_hint(&self) -> usize {
        self.as_ref().cdr_size_hint()
    }
}

/// A `sensor_msgs/msg/Image` borrowing its strings and pixel data (from a CDR buffer, or from an [`Image`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageRef<'a> {
    pub header: HeaderRef<'a>,
    pub height: u32,
    pub width: u32,
    pub encoding: &'a str,
    pub is_bigendian: u8,
    pub step: u32,
    pub data: &'a [u8],
}

impl<'a> ImageRef<'a> {
    /// Decodes a CDR `sensor_msgs/msg/Image` without copying the pixels: `data` is a slice of `buf`.
    pub fn from_cdr(buf: &'a [u8]) -> Result<Self, MessageError> {
        Self::read_fields(&mut CdrReader::new(buf)?)
    }

    pub fn read_fields(r: &mut CdrReader<'a>) -> Result<Self, MessageError> {
        Ok(Self {
            header: HeaderRef::read_fields(r)?,
            height: r.u32("Image.height")?,
            width: r.u32("Image.width")?,
            encoding: r.string("Image.encoding")?,
            is_bigendian: r.u8("Image.is_bigendian")?,
            step: r.u32("Image.step")?,
            data: r.bytes("Image.data")?,
        })
    }

    pub fn write_fields(&self, w: &mut CdrWriter) {
        self.header.write_fields(w);
        w.u32(self.height);
        w.u32(self.width);
        w.string(self.encoding);
        w.u8(self.is_bigendian);
        w.u32(self.step);
        w.bytes(self.data);
    }

    /// Encodes straight from borrowed pixels: one allocation of the exact size and one copy of `data`.
    pub fn to_cdr(&self) -> Vec<u8> {
        let mut w = CdrWriter::with_capacity(self.cdr_size_hint());
        self.write_fields(&mut w);
        w.finish()
    }

    /// An upper bound of the encoded size (alignment padding included).
    pub fn cdr_size_hint(&self) -> usize {
        8 + 4 + self.header.frame_id.len() + 1 + 3 + 8 + 4 + self.encoding.len() + 1 + 1 + 3 + 8 + self.data.len()
    }

    /// The frame for [`crate::pipeline::decode::decode_image`] (no copy).
    pub fn frame(&self) -> ImageFrame<'a> {
        ImageFrame {
            height: self.height,
            width: self.width,
            encoding: self.encoding,
            is_bigendian: self.is_bigendian != 0,
            step: self.step,
            data: self.data,
        }
    }

    pub fn into_owned(self) -> Image {
        Image {
            header: self.header.into_owned(),
            height: self.height,
            width: self.width,
            encoding: self.encoding.to_string(),
            is_bigendian: self.is_bigendian,
            step: self.step,
            data: self.data.to_vec(),
        }
    }
}

/// `sensor_msgs/msg/CompressedImage`: `format` (`jpeg`, `png`, or image_transport's `bgr8; jpeg compressed bgr8`)
/// and the compressed bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompressedImage {
    pub header: Header,
    pub format: String,
    pub data: Vec<u8>,
}

impl CompressedImage {
    pub fn as_ref(&self) -> CompressedImageRef<'_> {
        CompressedImageRef { header: self.header.as_ref(), format: &self.format, data: &self.data }
    }

    /// The frame for [`crate::pipeline::decode::decode_compressed`].
    pub fn frame(&self) -> CompressedFrame<'_> {
        self.as_ref().frame()
    }
}

impl RosMessage for CompressedImage {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/CompressedImage";
    fn write_fields(&self, w: &mut CdrWriter) {
        self.as_ref().write_fields(w);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(CompressedImageRef::read_fields(r)?.into_owned())
    }
    fn cdr_size_hint(&self) -> usize {
        32 + self.header.frame_id.len() + self.format.len() + self.data.len()
    }
}

/// A `sensor_msgs/msg/CompressedImage` borrowing `format` and `data` from its CDR buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompressedImageRef<'a> {
    pub header: HeaderRef<'a>,
    pub format: &'a str,
    pub data: &'a [u8],
}

impl<'a> CompressedImageRef<'a> {
    pub fn from_cdr(buf: &'a [u8]) -> Result<Self, MessageError> {
        Self::read_fields(&mut CdrReader::new(buf)?)
    }

    pub fn read_fields(r: &mut CdrReader<'a>) -> Result<Self, MessageError> {
        Ok(Self {
            header: HeaderRef::read_fields(r)?,
            format: r.string("CompressedImage.format")?,
            data: r.bytes("CompressedImage.data")?,
        })
    }

    pub fn write_fields(&self, w: &mut CdrWriter) {
        self.header.write_fields(w);
        w.string(self.format);
        w.bytes(self.data);
    }

    pub fn frame(&self) -> CompressedFrame<'a> {
        CompressedFrame { format: self.format, data: self.data }
    }

    pub fn into_owned(self) -> CompressedImage {
        CompressedImage { header: self.header.into_owned(), format: self.format.to_string(), data: self.data.to_vec() }
    }
}

/// `sensor_msgs/msg/RegionOfInterest`: a sub-window of an image (pixels), `do_rectify` false for ours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RegionOfInterest {
    pub x_offset: u32,
    pub y_offset: u32,
    pub height: u32,
    pub width: u32,
    pub do_rectify: bool,
}

impl RosMessage for RegionOfInterest {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/RegionOfInterest";
    fn write_fields(&self, w: &mut CdrWriter) {
        w.u32(self.x_offset);
        w.u32(self.y_offset);
        w.u32(self.height);
        w.u32(self.width);
        w.bool(self.do_rectify);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self {
            x_offset: r.u32("RegionOfInterest.x_offset")?,
            y_offset: r.u32("RegionOfInterest.y_offset")?,
            height: r.u32("RegionOfInterest.height")?,
            width: r.u32("RegionOfInterest.width")?,
            do_rectify: r.bool("RegionOfInterest.do_rectify")?,
        })
    }
    fn cdr_size_hint(&self) -> usize {
        17
    }
}

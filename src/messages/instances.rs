//! `dinoseg_interfaces/msg/InstanceMask` and `InstanceMaskArray`: our instance segmentation output
//! (`msg/InstanceMask.msg`, `msg/InstanceMaskArray.msg`, built by the `dinoseg_interfaces` ament package).
//!
//! Standard messages cannot carry per-instance masks (`vision_msgs/Detection2D` has boxes only), so each instance
//! is one standard `sensor_msgs/Image` (`mono8`, cropped to its `RegionOfInterest`) plus its class and score:
//! consumers reuse `cv_bridge` for the mask and need only these two small definitions.

use super::{read_seq, write_seq, CdrReader, CdrWriter, Header, Image, MessageError, RegionOfInterest, RosMessage};

/// `dinoseg_interfaces/msg/InstanceMask`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceMask {
    /// 1-based index in [`InstanceMaskArray::instances`]; the pixel value in the instance-id image.
    pub id: u32,
    pub class_id: u32,
    pub class_name: String,
    pub score: f32,
    /// Pixels in the mask.
    pub area: u32,
    /// The mask's bounding box in the camera image.
    pub roi: RegionOfInterest,
    /// `mono8`, 255 inside / 0 outside, `roi.height` x `roi.width`, the camera image's header.
    pub mask: Image,
}

impl InstanceMask {
    /// A mask image for `roi` from packed rows of 0/255 bytes (`roi.width * roi.height` of them).
    pub fn mask_image(header: &Header, roi: &RegionOfInterest, data: Vec<u8>) -> Image {
        Image {
            header: header.clone(),
            height: roi.height,
            width: roi.width,
            encoding: "mono8".to_string(),
            is_bigendian: 0,
            step: roi.width,
            data,
        }
    }
}

impl RosMessage for InstanceMask {
    const TYPE_NAME: &'static str = "dinoseg_interfaces/msg/InstanceMask";
    fn write_fields(&self, w: &mut CdrWriter) {
        w.u32(self.id);
        w.u32(self.class_id);
        w.string(&self.class_name);
        w.f32(self.score);
        w.u32(self.area);
        self.roi.write_fields(w);
        self.mask.write_fields(w);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self {
            id: r.u32("InstanceMask.id")?,
            class_id: r.u32("InstanceMask.class_id")?,
            class_name: r.string("InstanceMask.class_name")?.to_string(),
            score: r.f32("InstanceMask.score")?,
            area: r.u32("InstanceMask.area")?,
            roi: RegionOfInterest::read_fields(r)?,
            mask: Image::read_fields(r)?,
        })
    }
    fn cdr_size_hint(&self) -> usize {
        48 + self.class_name.len() + self.mask.cdr_size_hint()
    }
}

/// `dinoseg_interfaces/msg/InstanceMaskArray`: the camera image's header and its instances.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceMaskArray {
    pub header: Header,
    pub instances: Vec<InstanceMask>,
}

impl RosMessage for InstanceMaskArray {
    const TYPE_NAME: &'static str = "dinoseg_interfaces/msg/InstanceMaskArray";
    fn write_fields(&self, w: &mut CdrWriter) {
        self.header.write_fields(w);
        write_seq(w, &self.instances);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self { header: Header::read_fields(r)?, instances: read_seq(r, "InstanceMaskArray.instances")? })
    }
    fn cdr_size_hint(&self) -> usize {
        16 + self.header.frame_id.len() + self.instances.iter().map(|i| i.cdr_size_hint()).sum::<usize>()
    }
}

//! `vision_msgs` 4.x (ros-perception/vision_msgs, `ros2` branch; the version shipped in Humble and Jazzy):
//! `Detection2DArray`, `Detection2D`, `ObjectHypothesisWithPose`, `ObjectHypothesis`, `BoundingBox2D`, `Pose2D`,
//! `Point2D`, `LabelInfo`, `VisionClass`.
//!
//! 4.x differs from ROS 1 / vision_msgs 2.x-3.x: `ObjectHypothesis.class_id` is a `string` (was `int64 id`),
//! `ObjectHypothesisWithPose` nests `hypothesis` instead of flat fields, `Detection2D` ends with `string id` and has no
//! `source_img`, and `BoundingBox2D.center` is `vision_msgs/Pose2D` (`Point2D position`, `float64 theta`) instead of
//! `geometry_msgs/Pose2D`. Layouts follow the generated `vision_msgs/msg/detail/*__struct.h` and the raw sources in
//! `*__description.c` of the Jazzy packages; see [`super::schema`] for the .msg texts.

use super::{read_seq, write_seq, CdrReader, CdrWriter, Header, MessageError, PoseWithCovariance, RosMessage};

/// `vision_msgs/msg/Point2D`: pixel coordinates, x right, y down.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Point2D {
    pub x: f64,
    pub y: f64,
}

impl RosMessage for Point2D {
    const TYPE_NAME: &'static str = "vision_msgs/msg/Point2D";
    fn write_fields(&self, w: &mut CdrWriter) {
        w.f64(self.x);
        w.f64(self.y);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self { x: r.f64("Point2D.x")?, y: r.f64("Point2D.y")? })
    }
}

/// `vision_msgs/msg/Pose2D`: `Point2D position`, `float64 theta` (radians, counter-clockwise).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pose2D {
    pub position: Point2D,
    pub theta: f64,
}

impl RosMessage for Pose2D {
    const TYPE_NAME: &'static str = "vision_msgs/msg/Pose2D";
    fn write_fields(&self, w: &mut CdrWriter) {
        self.position.write_fields(w);
        w.f64(self.theta);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self { position: Point2D::read_fields(r)?, theta: r.f64("Pose2D.theta")? })
    }
}

/// `vision_msgs/msg/BoundingBox2D`: centre pose and size, in pixels.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BoundingBox2D {
    pub center: Pose2D,
    pub size_x: f64,
    pub size_y: f64,
}

impl BoundingBox2D {
    /// The axis-aligned box covering pixel columns `x..x + width` and rows `y..y + height`: pixel edges as
    /// coordinates, so its centre is `(x + width / 2, y + height / 2)`.
    pub fn from_pixel_rect(x: u32, y: u32, width: u32, height: u32) -> Self {
        let (w, h) = (f64::from(width), f64::from(height));
        Self {
            center: Pose2D { position: Point2D { x: f64::from(x) + w / 2.0, y: f64::from(y) + h / 2.0 }, theta: 0.0 },
            size_x: w,
            size_y: h,
        }
    }
}

impl RosMessage for BoundingBox2D {
    const TYPE_NAME: &'static str = "vision_msgs/msg/BoundingBox2D";
    fn write_fields(&self, w: &mut CdrWriter) {
        self.center.write_fields(w);
        w.f64(self.size_x);
        w.f64(self.size_y);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self {
            center: Pose2D::read_fields(r)?,
            size_x: r.f64("BoundingBox2D.size_x")?,
            size_y: r.f64("BoundingBox2D.size_y")?,
        })
    }
}

/// `vision_msgs/msg/ObjectHypothesis`: `string class_id`, `float64 score`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectHypothesis {
    pub class_id: String,
    pub score: f64,
}

impl RosMessage for ObjectHypothesis {
    const TYPE_NAME: &'static str = "vision_msgs/msg/ObjectHypothesis";
    fn write_fields(&self, w: &mut CdrWriter) {
        w.string(&self.class_id);
        w.f64(self.score);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self {
            class_id: r.string("ObjectHypothesis.class_id")?.to_string(),
            score: r.f64("ObjectHypothesis.score")?,
        })
    }
}

/// `vision_msgs/msg/ObjectHypothesisWithPose`: `ObjectHypothesis hypothesis`, `geometry_msgs/PoseWithCovariance
/// pose`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectHypothesisWithPose {
    pub hypothesis: ObjectHypothesis,
    pub pose: PoseWithCovariance,
}

impl RosMessage for ObjectHypothesisWithPose {
    const TYPE_NAME: &'static str = "vision_msgs/msg/ObjectHypothesisWithPose";
    fn write_fields(&self, w: &mut CdrWriter) {
        self.hypothesis.write_fields(w);
        self.pose.write_fields(w);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self { hypothesis: ObjectHypothesis::read_fields(r)?, pose: PoseWithCovariance::read_fields(r)? })
    }
}

/// `vision_msgs/msg/Detection2D`: `std_msgs/Header header`, `ObjectHypothesisWithPose[] results`,
/// `BoundingBox2D bbox`, `string id`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Detection2D {
    pub header: Header,
    pub results: Vec<ObjectHypothesisWithPose>,
    pub bbox: BoundingBox2D,
    /// Tracking id, may be empty; dinoseg writes the instance id (the value in the `instance_ids` image).
    pub id: String,
}

impl RosMessage for Detection2D {
    const TYPE_NAME: &'static str = "vision_msgs/msg/Detection2D";
    fn write_fields(&self, w: &mut CdrWriter) {
        self.header.write_fields(w);
        write_seq(w, &self.results);
        self.bbox.write_fields(w);
        w.string(&self.id);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self {
            header: Header::read_fields(r)?,
            results: read_seq(r, "Detection2D.results")?,
            bbox: BoundingBox2D::read_fields(r)?,
            id: r.string("Detection2D.id")?.to_string(),
        })
    }
    fn cdr_size_hint(&self) -> usize {
        64 + self.header.frame_id.len() + self.id.len() + self.results.len() * 400
    }
}

/// `vision_msgs/msg/Detection2DArray`: `std_msgs/Header header`, `Detection2D[] detections`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Detection2DArray {
    pub header: Header,
    pub detections: Vec<Detection2D>,
}

impl RosMessage for Detection2DArray {
    const TYPE_NAME: &'static str = "vision_msgs/msg/Detection2DArray";
    fn write_fields(&self, w: &mut CdrWriter) {
        self.header.write_fields(w);
        write_seq(w, &self.detections);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self { header: Header::read_fields(r)?, detections: read_seq(r, "Detection2DArray.detections")? })
    }
    fn cdr_size_hint(&self) -> usize {
        32 + self.header.frame_id.len() + self.detections.iter().map(|d| d.cdr_size_hint()).sum::<usize>()
    }
}

/// `vision_msgs/msg/VisionClass`: `uint16 class_id`, `string class_name`. 65535 (or 255 for 8-bit label images)
/// is the "UNLABELED" class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct VisionClass {
    pub class_id: u16,
    pub class_name: String,
}

impl RosMessage for VisionClass {
    const TYPE_NAME: &'static str = "vision_msgs/msg/VisionClass";
    fn write_fields(&self, w: &mut CdrWriter) {
        w.u16(self.class_id);
        w.string(&self.class_name);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self {
            class_id: r.u16("VisionClass.class_id")?,
            class_name: r.string("VisionClass.class_name")?.to_string(),
        })
    }
}

/// `vision_msgs/msg/LabelInfo`: `std_msgs/Header header`, `VisionClass[] class_map`, `float32 threshold`. The
/// class names of a label image topic, published latched (transient local) next to it, like `CameraInfo`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelInfo {
    pub header: Header,
    pub class_map: Vec<VisionClass>,
    pub threshold: f32,
}

impl RosMessage for LabelInfo {
    const TYPE_NAME: &'static str = "vision_msgs/msg/LabelInfo";
    fn write_fields(&self, w: &mut CdrWriter) {
        self.header.write_fields(w);
        write_seq(w, &self.class_map);
        w.f32(self.threshold);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self {
            header: Header::read_fields(r)?,
            class_map: read_seq(r, "LabelInfo.class_map")?,
            threshold: r.f32("LabelInfo.threshold")?,
        })
    }
    fn cdr_size_hint(&self) -> usize {
        32 + self.header.frame_id.len() + self.class_map.iter().map(|c| 12 + c.class_name.len()).sum::<usize>()
    }
}

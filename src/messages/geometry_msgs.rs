//! The `geometry_msgs` types `vision_msgs/ObjectHypothesisWithPose` carries: `PoseWithCovariance`, `Pose`, `Point`,
//! `Quaternion` (ros2/common_interfaces, Humble/Jazzy). dinoseg fills them with the identity pose: 2D detections
//! have no 6D pose.

use super::{CdrReader, CdrWriter, MessageError, RosMessage};

/// `geometry_msgs/msg/Point`: `float64 x, y, z`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

impl RosMessage for Point {
    const TYPE_NAME: &'static str = "geometry_msgs/msg/Point";
    fn write_fields(&self, w: &mut CdrWriter) {
        w.f64(self.x);
        w.f64(self.y);
        w.f64(self.z);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self { x: r.f64("Point.x")?, y: r.f64("Point.y")?, z: r.f64("Point.z")? })
    }
}

/// `geometry_msgs/msg/Quaternion`: `float64 x, y, z, w` (the .msg default is the identity, `w = 1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quaternion {
    pub x: f64,
    pub y: f64,
    pub z: f64,
    pub w: f64,
}

impl Default for Quaternion {
    fn default() -> Self {
        Self { x: 0.0, y: 0.0, z: 0.0, w: 1.0 }
    }
}

impl RosMessage for Quaternion {
    const TYPE_NAME: &'static str = "geometry_msgs/msg/Quaternion";
    fn write_fields(&self, w: &mut CdrWriter) {
        w.f64(self.x);
        w.f64(self.y);
        w.f64(self.z);
        w.f64(self.w);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self {
            x: r.f64("Quaternion.x")?,
            y: r.f64("Quaternion.y")?,
            z: r.f64("Quaternion.z")?,
            w: r.f64("Quaternion.w")?,
        })
    }
}

/// `geometry_msgs/msg/Pose`: `Point position`, `Quaternion orientation`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pose {
    pub position: Point,
    pub orientation: Quaternion,
}

impl RosMessage for Pose {
    const TYPE_NAME: &'static str = "geometry_msgs/msg/Pose";
    fn write_fields(&self, w: &mut CdrWriter) {
        self.position.write_fields(w);
        self.orientation.write_fields(w);
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        Ok(Self { position: Point::read_fields(r)?, orientation: Quaternion::read_fields(r)? })
    }
}

/// `geometry_msgs/msg/PoseWithCovariance`: `Pose pose`, `float64[36] covariance` (row-major 6x6, a fixed array:
/// no length prefix in CDR).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoseWithCovariance {
    pub pose: Pose,
    pub covariance: [f64; 36],
}

impl Default for PoseWithCovariance {
    fn default() -> Self {
        Self { pose: Pose::default(), covariance: [0.0; 36] }
    }
}

impl RosMessage for PoseWithCovariance {
    const TYPE_NAME: &'static str = "geometry_msgs/msg/PoseWithCovariance";
    fn write_fields(&self, w: &mut CdrWriter) {
        self.pose.write_fields(w);
        for &c in &self.covariance {
            w.f64(c);
        }
    }
    fn read_fields(r: &mut CdrReader<'_>) -> Result<Self, MessageError> {
        let pose = Pose::read_fields(r)?;
        let mut covariance = [0.0; 36];
        for c in &mut covariance {
            *c = r.f64("PoseWithCovariance.covariance")?;
        }
        Ok(Self { pose, covariance })
    }
    fn cdr_size_hint(&self) -> usize {
        8 * (3 + 4 + 36)
    }
}

//! Output topic names: for a camera topic `<ns>/<name>` (a trailing `/compressed` removed first), results are
//! published under `<ns>/dinoseg/` — `/camera/image_raw` and `/camera/image_raw/compressed` both give
//! `/camera/dinoseg/semantic`, `/camera/dinoseg/instances`, ...

/// Every output, with its topic suffix and ROS type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Output {
    Semantic,
    SemanticColor,
    Instances,
    InstanceIds,
    Detections,
    LabelInfo,
    Overlay,
}

impl Output {
    pub const ALL: [Output; 7] = [
        Output::Semantic,
        Output::SemanticColor,
        Output::Instances,
        Output::InstanceIds,
        Output::Detections,
        Output::LabelInfo,
        Output::Overlay,
    ];

    /// The last topic component (and the key in the parameters' `outputs` map).
    pub fn name(self) -> &'static str {
        match self {
            Output::Semantic => "semantic",
            Output::SemanticColor => "semantic_color",
            Output::Instances => "instances",
            Output::InstanceIds => "instance_ids",
            Output::Detections => "detections",
            Output::LabelInfo => "label_info",
            Output::Overlay => "overlay",
        }
    }

    /// The ROS 2 type name as bags record it.
    pub fn ros_type(self) -> &'static str {
        match self {
            Output::Semantic | Output::SemanticColor | Output::InstanceIds | Output::Overlay => "sensor_msgs/msg/Image",
            Output::Instances => "dinoseg_interfaces/msg/InstanceMaskArray",
            Output::Detections => "vision_msgs/msg/Detection2DArray",
            Output::LabelInfo => "vision_msgs/msg/LabelInfo",
        }
    }
}

/// The namespace results of `input_topic` are published in: `<ns>/dinoseg`.
pub fn output_namespace(input_topic: &str) -> String {
    let t = input_topic.trim_end_matches('/');
    let t = t.strip_suffix("/compressed").unwrap_or(t);
    let ns = match t.rfind('/') {
        Some(i) => &t[..i],
        None => "",
    };
    format!("{ns}/dinoseg")
}

/// The topic of `output` for `input_topic`.
pub fn output_topic(input_topic: &str, output: Output) -> String {
    format!("{}/{}", output_namespace(input_topic), output.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(output_topic("/camera/image_raw", Output::Semantic), "/camera/dinoseg/semantic");
        assert_eq!(output_topic("/camera/image_raw/compressed", Output::Overlay), "/camera/dinoseg/overlay");
        assert_eq!(output_topic("/robot/front/color/image", Output::Instances), "/robot/front/color/dinoseg/instances");
        assert_eq!(output_topic("/image", Output::InstanceIds), "/dinoseg/instance_ids");
        assert_eq!(output_topic("image", Output::LabelInfo), "/dinoseg/label_info");
    }
}

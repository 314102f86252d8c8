//! Every output message of one frame, encoded to CDR once. The offline runner stores these bytes in a bag and
//! the node hands the same bytes to rcl (`publish_raw`), so what the tests decode with independent decoders is
//! exactly what a robot publishes. Each message carries the camera image's header.

use crate::messages::{
    BoundingBox2D, Detection2D, Detection2DArray, Header, Image, InstanceMask, InstanceMaskArray, LabelInfo,
    ObjectHypothesis, ObjectHypothesisWithPose, RegionOfInterest, RosMessage, VisionClass,
};
use crate::postprocess::{FrameSegmentation, LabelData, LabelMap};
use crate::render;
use crate::topics::{Output, OutputSet, Stream};

/// What to encode and how.
pub struct Encoder<'a> {
    /// Outputs switched on.
    pub enabled: OutputSet,
    /// Colour of a class id (`semantic_color`, `overlay`).
    pub color: &'a dyn Fn(u16) -> [u8; 3],
    /// `vision_msgs/LabelInfo.threshold`: the score threshold results were filtered with.
    pub threshold: f32,
    /// Overlay opacity of the class colours.
    pub overlay_alpha: f32,
    /// Whether the models give instances at all (`Segmenter::produces_instances`); without, the instance outputs
    /// are not published (an empty list would claim "nothing found").
    pub instances_available: bool,
}

fn image(header: &Header, height: u32, width: u32, encoding: &str, bytes_per_pixel: u32, data: Vec<u8>) -> Image {
    Image {
        header: header.clone(),
        height,
        width,
        encoding: encoding.to_string(),
        is_bigendian: 0,
        step: width * bytes_per_pixel,
        data,
    }
}

fn u16_bytes(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Encoder<'_> {
    fn on(&self, o: Output) -> bool {
        self.enabled.contains(o)
    }

    /// `semantic` and `semantic_color` of one semantic map (`colors`: its colour picture, when made).
    fn semantic_images(
        &self,
        header: &Header,
        sem: &LabelMap,
        colors: Option<&Vec<u8>>,
        stream: impl Fn(Output) -> Stream,
        out: &mut Vec<(Stream, Vec<u8>)>,
    ) {
        if self.on(Output::Semantic) {
            let img = match &sem.data {
                LabelData::U8(v) => image(header, sem.height, sem.width, "mono8", 1, v.clone()),
                LabelData::U16(v) => image(header, sem.height, sem.width, "mono16", 2, u16_bytes(v)),
            };
            out.push((stream(Output::Semantic), img.to_cdr()));
        }
        if let Some(rgb) = colors.filter(|_| self.on(Output::SemanticColor)) {
            let img = image(header, sem.height, sem.width, "rgb8", 3, rgb.clone());
            out.push((stream(Output::SemanticColor), img.to_cdr()));
        }
    }

    /// `vision_msgs/LabelInfo` of class names.
    fn label_info(&self, header: &Header, names: &[String]) -> Vec<u8> {
        let class_map = names
            .iter()
            .enumerate()
            .map(|(i, n)| VisionClass { class_id: i.min(u16::MAX as usize) as u16, class_name: n.clone() })
            .collect();
        LabelInfo { header: header.clone(), class_map, threshold: self.threshold }.to_cdr()
    }

    /// The CDR bytes of every enabled output that this frame has: the main results, then the semantic maps of
    /// the other heads on their own streams. `rgb` is the camera frame (rgb8, `height` x `width`), used by the
    /// overlay.
    pub fn encode(
        &self,
        header: &Header,
        rgb: &[u8],
        height: u32,
        width: u32,
        seg: &FrameSegmentation,
    ) -> Vec<(Stream, Vec<u8>)> {
        let mut out = Vec::new();
        // Made once per frame, shared by their own outputs and the overlay.
        let colors = seg
            .semantic
            .as_ref()
            .filter(|_| self.on(Output::SemanticColor) || self.on(Output::Overlay))
            .map(|sem| render::semantic_color(sem, self.color));
        let ids = (self.instances_available && (self.on(Output::InstanceIds) || self.on(Output::Overlay)))
            .then(|| render::instance_ids(seg, height, width));
        if let Some(sem) = &seg.semantic {
            self.semantic_images(header, sem, colors.as_ref(), Stream::main, &mut out);
        }
        let has_instances = self.instances_available;
        if self.on(Output::Instances) && has_instances {
            let msg = InstanceMaskArray {
                header: header.clone(),
                instances: seg
                    .instances
                    .iter()
                    .map(|i| {
                        let roi = RegionOfInterest {
                            x_offset: i.bbox.x,
                            y_offset: i.bbox.y,
                            height: i.bbox.height,
                            width: i.bbox.width,
                            do_rectify: false,
                        };
                        InstanceMask {
                            id: i.id,
                            class_id: i.class_id,
                            class_name: i.class_name.clone(),
                            score: i.score,
                            area: i.area,
                            mask: InstanceMask::mask_image(header, &roi, i.mask.data.clone()),
                            roi,
                        }
                    })
                    .collect(),
            };
            out.push((Stream::main(Output::Instances), msg.to_cdr()));
        }
        if let Some(ids) = ids.as_ref().filter(|_| self.on(Output::InstanceIds)) {
            out.push((
                Stream::main(Output::InstanceIds),
                image(header, height, width, "mono16", 2, u16_bytes(ids)).to_cdr(),
            ));
        }
        if self.on(Output::Detections) && has_instances {
            let msg = Detection2DArray {
                header: header.clone(),
                detections: seg
                    .instances
                    .iter()
                    .map(|i| Detection2D {
                        header: header.clone(),
                        results: vec![ObjectHypothesisWithPose {
                            hypothesis: ObjectHypothesis {
                                class_id: i.class_id.to_string(),
                                score: f64::from(i.score),
                            },
                            ..Default::default()
                        }],
                        bbox: BoundingBox2D::from_pixel_rect(i.bbox.x, i.bbox.y, i.bbox.width, i.bbox.height),
                        id: i.id.to_string(),
                    })
                    .collect(),
            };
            out.push((Stream::main(Output::Detections), msg.to_cdr()));
        }
        if self.on(Output::LabelInfo) {
            out.push((Stream::main(Output::LabelInfo), self.label_info(header, &seg.class_names)));
        }
        if self.on(Output::Overlay) {
            let over = render::overlay_with(
                rgb,
                height,
                width,
                seg,
                colors.as_deref(),
                ids.as_deref(),
                self.color,
                self.overlay_alpha,
            );
            out.push((Stream::main(Output::Overlay), image(header, height, width, "rgb8", 3, over).to_cdr()));
        }
        for h in &seg.heads {
            let colors = self.on(Output::SemanticColor).then(|| render::semantic_color(&h.semantic, self.color));
            self.semantic_images(header, &h.semantic, colors.as_ref(), |o| Stream::of_head(&h.head, o), &mut out);
            if self.on(Output::LabelInfo) {
                out.push((Stream::of_head(&h.head, Output::LabelInfo), self.label_info(header, &h.class_names)));
            }
        }
        out
    }
}

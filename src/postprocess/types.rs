//! The typed result of one frame: a semantic label image, an instance list and a panoptic segment map, all at the
//! input (camera) resolution with the letterbox padding removed.

use super::labels::Labels;

/// The label value of pixels no class was given to (panoptic void) in an 8-bit [`LabelMap`].
pub const UNLABELLED_U8: u16 = 255;
/// The label value of pixels no class was given to (panoptic void) in a 16-bit [`LabelMap`].
pub const UNLABELLED_U16: u16 = u16::MAX;

/// The pixels of a [`LabelMap`]: 8 bits when the class ids and the unlabelled value fit (at most 255 classes,
/// ids 0..=254, unlabelled 255: ROS `mono8`), 16 bits otherwise (ids up to 65534, unlabelled 65535: `mono16`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelData {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

/// A class id per pixel, row-major, `height` x `width`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    pub height: u32,
    pub width: u32,
    pub data: LabelData,
}

impl LabelMap {
    /// Whether `num_classes` classes need a 16-bit map (more than 255: 255 is kept for "unlabelled").
    pub fn needs_u16(num_classes: usize) -> bool {
        num_classes > 255
    }

    /// Builds the map from labels that are valid class ids (or [`LabelMap::unlabelled_for`]) for `num_classes`.
    pub(crate) fn from_u16(height: u32, width: u32, labels: Vec<u16>, num_classes: usize) -> Self {
        let data = if Self::needs_u16(num_classes) {
            LabelData::U16(labels)
        } else {
            LabelData::U8(labels.into_iter().map(|v| v.min(255) as u8).collect())
        };
        LabelMap { height, width, data }
    }

    /// The "unlabelled" value of a map for `num_classes` classes: 255 (mono8) or 65535 (mono16).
    pub fn unlabelled_for(num_classes: usize) -> u16 {
        if Self::needs_u16(num_classes) {
            UNLABELLED_U16
        } else {
            UNLABELLED_U8
        }
    }

    /// This map's "unlabelled" value.
    pub fn unlabelled(&self) -> u16 {
        match self.data {
            LabelData::U8(_) => UNLABELLED_U8,
            LabelData::U16(_) => UNLABELLED_U16,
        }
    }

    /// The label at row `y`, column `x`. Panics when out of bounds, like slice indexing.
    pub fn get(&self, y: u32, x: u32) -> u16 {
        assert!(y < self.height && x < self.width, "pixel ({y}, {x}) outside {}x{}", self.height, self.width);
        let i = y as usize * self.width as usize + x as usize;
        match &self.data {
            LabelData::U8(v) => u16::from(v[i]),
            LabelData::U16(v) => v[i],
        }
    }

    /// Every label, row-major, widened to u16.
    pub fn to_u16_vec(&self) -> Vec<u16> {
        match &self.data {
            LabelData::U8(v) => v.iter().map(|&x| u16::from(x)).collect(),
            LabelData::U16(v) => v.clone(),
        }
    }

    /// The ROS image encoding of this map: `mono8` or `mono16`.
    pub fn encoding(&self) -> &'static str {
        match self.data {
            LabelData::U8(_) => "mono8",
            LabelData::U16(_) => "mono16",
        }
    }
}

/// A pixel rectangle in the input image: columns `x..x + width`, rows `y..y + height` (inclusive-exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// A binary mask over a [`BBox`]: `width` x `height` bytes, row-major, 0 (outside) or 255 (inside), so that it
/// can be published as a ROS `mono8` image as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BinaryMask {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl BinaryMask {
    /// Whether the pixel at row `y`, column `x` of the box is inside the mask.
    pub fn get(&self, y: u32, x: u32) -> bool {
        self.data[y as usize * self.width as usize + x as usize] != 0
    }
}

/// One detected object instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// 1-based: the instance's position in the frame's list.
    pub id: u32,
    pub class_id: u32,
    pub class_name: String,
    /// Confidence in [0, 1].
    pub score: f32,
    /// The tight box around the mask, in input pixels.
    pub bbox: BBox,
    /// The mask, cropped to `bbox`.
    pub mask: BinaryMask,
    /// Mask pixels.
    pub area: u32,
    pub is_thing: bool,
}

/// One segment of a [`PanopticMap`].
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentInfo {
    /// The segment's value in [`PanopticMap::ids`] (1-based; 0 is void).
    pub id: u32,
    pub class_id: u32,
    pub is_thing: bool,
    /// The class probability of the (first) query behind the segment.
    pub score: f32,
    /// Pixels of the segment.
    pub area: u32,
}

/// A segment id per pixel (row-major, `height` x `width`, 0 = void) and the segments.
#[derive(Debug, Clone, PartialEq)]
pub struct PanopticMap {
    pub height: u32,
    pub width: u32,
    pub ids: Vec<u16>,
    /// Sorted by id; `segments[i].id == i + 1`.
    pub segments: Vec<SegmentInfo>,
}

impl PanopticMap {
    /// The class of each pixel's segment; void pixels get [`LabelMap::unlabelled_for`] `num_classes`.
    pub fn to_semantic(&self, num_classes: usize) -> LabelMap {
        let void = LabelMap::unlabelled_for(num_classes);
        let mut lut = vec![void; self.segments.len() + 1];
        for s in &self.segments {
            if let Some(slot) = lut.get_mut(s.id as usize) {
                *slot = s.class_id as u16;
            }
        }
        let labels = self.ids.iter().map(|&id| lut.get(id as usize).copied().unwrap_or(void)).collect();
        LabelMap::from_u16(self.height, self.width, labels, num_classes)
    }

    /// The thing segments as instances (in segment order, ids renumbered 1..), with their boxes and masks.
    pub fn to_instances(&self, labels: &Labels) -> Vec<Instance> {
        let mut wanted = vec![false; self.segments.len() + 1];
        for s in self.segments.iter().filter(|s| s.is_thing) {
            if let Some(w) = wanted.get_mut(s.id as usize) {
                *w = true;
            }
        }
        let masks = crop_masks(&self.ids, self.width as usize, &wanted);
        let mut out = Vec::new();
        for s in self.segments.iter().filter(|s| s.is_thing) {
            let Some(Some((bbox, mask))) = masks.get(s.id as usize) else { continue };
            out.push(Instance {
                id: out.len() as u32 + 1,
                class_id: s.class_id,
                class_name: labels.name(s.class_id as usize),
                score: s.score,
                bbox: *bbox,
                mask: mask.clone(),
                area: s.area,
                is_thing: true,
            });
        }
        out
    }
}

/// For each id with `wanted[id]`, the box and cropped mask of its pixels in a row-major id map (None when absent
/// or not wanted).
pub(crate) fn crop_masks(ids: &[u16], width: usize, wanted: &[bool]) -> Vec<Option<(BBox, BinaryMask)>> {
    // [x0, y0, x1, y1] (exclusive ends) per id.
    let mut boxes = vec![[usize::MAX, usize::MAX, 0, 0]; wanted.len()];
    for (i, &id) in ids.iter().enumerate() {
        if let Some(b) = boxes.get_mut(id as usize) {
            let (y, x) = (i / width, i % width);
            b[0] = b[0].min(x);
            b[1] = b[1].min(y);
            b[2] = b[2].max(x + 1);
            b[3] = b[3].max(y + 1);
        }
    }
    boxes
        .iter()
        .enumerate()
        .map(|(id, b)| {
            if b[0] == usize::MAX || !wanted[id] {
                return None;
            }
            let (bw, bh) = (b[2] - b[0], b[3] - b[1]);
            let mut data = vec![0u8; bw * bh];
            for (r, row) in data.chunks_exact_mut(bw).enumerate() {
                let src = &ids[(b[1] + r) * width + b[0]..][..bw];
                for (d, &s) in row.iter_mut().zip(src) {
                    *d = if s as usize == id { 255 } else { 0 };
                }
            }
            let bbox = BBox { x: b[0] as u32, y: b[1] as u32, width: bw as u32, height: bh as u32 };
            Some((bbox, BinaryMask { width: bw as u32, height: bh as u32, data }))
        })
        .collect()
}

/// Everything post-processing produced for one frame. Which parts are present depends on the head and on the
/// requested outputs ([`super::MaskOutputs`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrameSegmentation {
    pub semantic: Option<LabelMap>,
    pub instances: Vec<Instance>,
    pub panoptic: Option<PanopticMap>,
    /// The name of every class id the model predicts.
    pub class_names: Vec<String>,
    /// The semantic maps of the other heads ([`crate::plan::HeadPlan::extra_semantic`]), in configuration
    /// order: each is published on the head's own topics.
    pub heads: Vec<HeadSemantic>,
}

/// The semantic map of one named head other than the frame's main one.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadSemantic {
    /// The key under `heads`.
    pub head: String,
    pub semantic: LabelMap,
    pub class_names: Vec<String>,
}

//! Pictures people look at: the semantic map in colour, the instance-id image, and the camera frame with the
//! segmentation blended over it (the `semantic_color`, `instance_ids` and `overlay` outputs).

use crate::postprocess::{FrameSegmentation, LabelMap};

/// An rgb8 picture of a label map: each class in its colour, unlabelled pixels black.
pub fn semantic_color(map: &LabelMap, color: &dyn Fn(u16) -> [u8; 3]) -> Vec<u8> {
    let unlabelled = map.unlabelled();
    let mut lut: Vec<Option<[u8; 3]>> = Vec::new();
    let mut out = Vec::with_capacity(map.height as usize * map.width as usize * 3);
    for v in map.to_u16_vec() {
        let c = if v == unlabelled {
            [0, 0, 0]
        } else {
            let i = v as usize;
            if i >= lut.len() {
                lut.resize(i + 1, None);
            }
            *lut[i].get_or_insert_with(|| color(v))
        };
        out.extend_from_slice(&c);
    }
    out
}

/// The `instance_ids` image (mono16, row-major): 0 where no instance is, `k` where the k-th instance of
/// `frame.instances` (1-based, its `id`) is. Where instances overlap, the higher-scoring one wins (the list is
/// sorted by score, so it is drawn last).
pub fn instance_ids(frame: &FrameSegmentation, height: u32, width: u32) -> Vec<u16> {
    let mut ids = vec![0u16; height as usize * width as usize];
    let mut order: Vec<usize> = (0..frame.instances.len()).collect();
    order.sort_by(|&a, &b| frame.instances[a].score.total_cmp(&frame.instances[b].score));
    for i in order {
        let inst = &frame.instances[i];
        let Ok(id) = u16::try_from(inst.id) else { continue };
        let (bx, by) = (inst.bbox.x as usize, inst.bbox.y as usize);
        for y in 0..inst.mask.height as usize {
            let row = (by + y) * width as usize;
            if by + y >= height as usize {
                break;
            }
            for x in 0..inst.mask.width as usize {
                if bx + x < width as usize
                    && inst.mask.data.get(y * inst.mask.width as usize + x).is_some_and(|&m| m != 0)
                {
                    ids[row + bx + x] = id;
                }
            }
        }
    }
    ids
}

/// The camera frame (rgb8, `height` x `width`) with the semantic colours blended in at `alpha` and the outline
/// of every instance drawn in its class colour.
pub fn overlay(
    rgb: &[u8],
    height: u32,
    width: u32,
    frame: &FrameSegmentation,
    color: &dyn Fn(u16) -> [u8; 3],
    alpha: f32,
) -> Vec<u8> {
    overlay_with(rgb, height, width, frame, None, None, color, alpha)
}

/// [`overlay`] reusing a [`semantic_color`] picture and an [`instance_ids`] image already made for this frame
/// (None: made here), so a frame that publishes them too computes each once.
#[allow(clippy::too_many_arguments)]
pub fn overlay_with(
    rgb: &[u8],
    height: u32,
    width: u32,
    frame: &FrameSegmentation,
    colors: Option<&[u8]>,
    ids: Option<&[u16]>,
    color: &dyn Fn(u16) -> [u8; 3],
    alpha: f32,
) -> Vec<u8> {
    let (h, w) = (height as usize, width as usize);
    let mut out = rgb.to_vec();
    out.resize(h * w * 3, 0);
    if let Some(sem) = frame.semantic.as_ref().filter(|m| m.height == height && m.width == width) {
        let made;
        let colors = match colors {
            Some(c) => c,
            None => {
                made = semantic_color(sem, color);
                &made
            }
        };
        let unlabelled = sem.unlabelled();
        for (i, v) in sem.to_u16_vec().into_iter().enumerate() {
            if v == unlabelled {
                continue;
            }
            for c in 0..3 {
                let p = &mut out[i * 3 + c];
                *p = (f32::from(*p) * (1.0 - alpha) + f32::from(colors[i * 3 + c]) * alpha).round() as u8;
            }
        }
    }
    if !frame.instances.is_empty() {
        let made;
        let ids = match ids {
            Some(i) => i,
            None => {
                made = instance_ids(frame, height, width);
                &made
            }
        };
        let class_of: Vec<u16> = frame.instances.iter().map(|i| i.class_id.min(u32::from(u16::MAX)) as u16).collect();
        for y in 0..h {
            for x in 0..w {
                let id = ids[y * w + x];
                if id == 0 {
                    continue;
                }
                let edge = (x == 0 || ids[y * w + x - 1] != id)
                    || (x + 1 == w || ids[y * w + x + 1] != id)
                    || (y == 0 || ids[(y - 1) * w + x] != id)
                    || (y + 1 == h || ids[(y + 1) * w + x] != id);
                if edge {
                    let c = class_of.get(id as usize - 1).map(|&k| color(k)).unwrap_or([255, 255, 255]);
                    out[(y * w + x) * 3..][..3].copy_from_slice(&c);
                }
            }
        }
    }
    out
}

//! Scale jitter for `dinoseg train-head --scale-jitter MIN,MAX`: the DINOv3 linear protocol's random resize
//! (facebookresearch/dinov3, `dinov3/eval/segmentation/`: the training transforms draw a resize ratio per image,
//! range 0.5-2 for ADE20K, as mmseg's `RandomResize`), computed on the fly because a cache holds one scale.
//!
//! In each epoch each training image is run through the frozen encoder at its inference size (the size
//! `dinoseg run` gives it: [`ResizePolicy::plan`]) times a factor drawn uniformly in [MIN, MAX], rounded to whole
//! pixels and padded to the encoder's multiple, and, with `--flip`, mirrored with probability 0.5 (the protocol's
//! `flip_prob`). The factor and the mirror decision depend only on the seed, the epoch and the image's index, so a
//! run is reproducible whatever the batch order. The logits are mapped back to the label map's own size as
//! inference maps them ([`crate::pipeline::preprocess::Letterbox::crop_and_resize_back`]), so labels are never
//! resampled and every image weighs the same in the loss whatever its factor (the protocol resizes the labels
//! with nearest neighbour and crops 512x512; without crops, resized labels would weigh up-scaled images up to
//! MAX^2 times more). No crops: the whole image is seen at every scale. Cost: one encoder pass per training image
//! per epoch; the validation set is still cached once, at the inference size.

use super::data::Sample;
use super::features::{Encoder, Item, View};
use super::fit::TrainItems;
use super::schedule::Rng;
use crate::error::{Error, Result};
use crate::model::heads::linear::LinearHeadConfig;
use crate::pipeline::preprocess::ResizePolicy;
use tch::{Device, Kind};

/// The factor range; checked by [`ScaleJitter::new`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleJitter {
    pub min: f64,
    pub max: f64,
}

/// The largest factor accepted: 4 already makes a 2048-pixel frame a 8192-pixel model input.
pub const MAX_FACTOR: f64 = 4.0;

impl ScaleJitter {
    /// `0 < min <= max <= MAX_FACTOR`, else an error stating the rule.
    pub fn new(min: f64, max: f64) -> std::result::Result<Self, String> {
        if !(min.is_finite() && max.is_finite() && min > 0.0 && min <= max && max <= MAX_FACTOR) {
            return Err(format!("scale jitter {min},{max}: need 0 < MIN <= MAX <= {MAX_FACTOR}"));
        }
        Ok(ScaleJitter { min, max })
    }

    /// Parses `MIN,MAX` (e.g. `0.5,2`).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [a, b] = parts.as_slice() else { return Err(format!("`{s}` is not MIN,MAX (e.g. 0.5,2)")) };
        let num = |t: &str| t.parse::<f64>().map_err(|_| format!("`{t}` in `{s}` is not a number"));
        Self::new(num(a)?, num(b)?)
    }
}

/// How [`Jittered`] draws and runs its items.
#[derive(Debug, Clone, Copy)]
pub struct JitterSpec {
    /// The inference resize rule the factor multiplies.
    pub policy: ResizePolicy,
    pub device: Device,
    /// Mirror each image with probability 0.5.
    pub flip: bool,
    pub range: ScaleJitter,
    pub seed: u64,
}

/// Training items computed when a step asks for them: see the module docs.
pub struct Jittered<'a> {
    encoder: &'a Encoder,
    samples: &'a [Sample],
    config: &'a LinearHeadConfig,
    layers: Vec<i64>,
    spec: JitterSpec,
}

impl<'a> Jittered<'a> {
    pub fn new(
        encoder: &'a Encoder,
        samples: &'a [Sample],
        config: &'a LinearHeadConfig,
        spec: JitterSpec,
    ) -> Result<Self> {
        let layers = encoder.layers_for(config)?;
        Ok(Jittered { encoder, samples, config, layers, spec })
    }

    /// The factor and the mirror decision of image `index` in `epoch`: a function of the seed, the epoch and the
    /// index only.
    pub fn draw(&self, epoch: usize, index: usize) -> (f64, bool) {
        let mix =
            (epoch as u64).wrapping_mul(0xA24B_AED4_963E_E407) ^ (index as u64).wrapping_mul(0x9FB2_1C65_1E98_DF25);
        let mut rng = Rng::new(self.spec.seed ^ mix);
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let factor = self.spec.range.min + u * (self.spec.range.max - self.spec.range.min);
        let mirror = self.spec.flip && rng.next_u64() >> 63 == 1;
        (factor, mirror)
    }

    /// The encoder's input size for an image of `h` x `w` at `factor`: the inference size times the factor,
    /// rounded, at least 1 pixel.
    pub fn jittered_size(&self, h: u32, w: u32, factor: f64, source: &std::path::Path) -> Result<(u32, u32)> {
        let lb = self.spec.policy.plan(h, w).map_err(|e| Error::file(source, e.to_string()))?;
        let side = |v: u32| (f64::from(v) * factor).round().clamp(1.0, f64::from(u32::MAX)) as u32;
        Ok((side(lb.resized_h), side(lb.resized_w)))
    }

    fn item(&self, epoch: usize, index: usize) -> Result<Item> {
        let s = self.samples.get(index).ok_or_else(|| Error::Internal(format!("no training image {index}")))?;
        let (factor, mirror) = self.draw(epoch, index);
        let (h, w) = self.jittered_size(s.image.height(), s.image.width(), factor, &s.image_path)?;
        let p = &self.spec.policy;
        let policy = ResizePolicy::fixed(h, w).with_multiple(p.multiple).with_pad(p.pad);
        let (image, labels);
        let view = if mirror {
            image = image::imageops::flip_horizontal(&s.image);
            labels = s.labels.flipped();
            View { image: &image, labels: &labels, source: &s.image_path }
        } else {
            View { image: &s.image, labels: &s.labels, source: &s.image_path }
        };
        self.encoder.item(&view, &self.layers, self.config, &policy, self.spec.device, Kind::Float)
    }
}

impl TrainItems for Jittered<'_> {
    fn count(&self) -> usize {
        self.samples.len()
    }
    fn take(&mut self, epoch: usize, indices: &[usize]) -> Result<Vec<Item>> {
        indices.iter().map(|&i| self.item(epoch, i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_range() {
        assert_eq!(ScaleJitter::parse("0.5, 2").unwrap(), ScaleJitter { min: 0.5, max: 2.0 });
        assert_eq!(ScaleJitter::parse("1,1").unwrap(), ScaleJitter { min: 1.0, max: 1.0 });
        for bad in ["2,0.5", "0,1", "1", "a,2", "1,2,3", "0.5,5", "nan,1"] {
            assert!(ScaleJitter::parse(bad).is_err(), "{bad}");
        }
    }
}

//! RGB8 images to normalised NCHW model input, and the way back from model-resolution maps to the camera image.
//!
//! Follows the DINOv3 evaluation transforms (torchvision `Resize` with antialias, `ToTensor`, `Normalize`): the
//! short-side rule and the `max_size` cap are torchvision's (`new_long = floor(size * long / short)`), downscaling
//! uses libtorch's antialiased bilinear filter (`_upsample_bilinear2d_aa`, the kernel behind torchvision's
//! `antialias=True` and PIL's bilinear resize), upscaling plain bilinear, both with `align_corners = false`.
//! A ViT with patch 16 and RoPE runs at any size whose sides are multiples of 16, so instead of squashing the image
//! we pad it right and bottom to a multiple (with zeros *after* normalisation, i.e. the mean colour), and a
//! [`Letterbox`] remembers the geometry to map predictions back.
//!
//! The uint8 HWC buffer is uploaded first (3 bytes per pixel over the bus, not 12) and every further step runs on
//! the target device in fp32; the result is cast to the requested kind at the end.

use image::RgbImage;
use tch::{Device, Kind, Tensor};

/// How the input side lengths are chosen before padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// Keep the camera's size (only `max_long_side` may shrink it).
    Keep,
    /// Scale (keeping the aspect ratio) so that the short side has this length (torchvision `Resize(int)`).
    ShortSide(u32),
    /// Stretch to exactly this size, ignoring the aspect ratio and `max_long_side`.
    Fixed { height: u32, width: u32 },
}

impl Resize {
    /// The long-side cap when none is configured: [`DEFAULT_MAX_LONG_SIDE`] for `Keep`, and for `ShortSide`
    /// below it; none for a larger short side (a cap must exceed the short side) or `Fixed` (which ignores it).
    pub fn default_max_long_side(&self) -> Option<u32> {
        match *self {
            Resize::Keep => Some(DEFAULT_MAX_LONG_SIDE),
            Resize::ShortSide(s) if s < DEFAULT_MAX_LONG_SIDE => Some(DEFAULT_MAX_LONG_SIDE),
            Resize::ShortSide(_) | Resize::Fixed { .. } => None,
        }
    }
}

/// How the resized image is brought to a multiple of [`ResizePolicy::multiple`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadMode {
    /// Pad right and bottom with zeros after normalisation (the mean colour); the aspect ratio is kept.
    BottomRight,
    /// Round each resized side to the nearest multiple (at least one multiple) and resize to it: no padding,
    /// a slight aspect change.
    Stretch,
}

/// The long side the model input is capped to by default ([`ResizePolicy::default`], params `resize.max_long_side`
/// absent): a 4K frame runs at 2048x1152 rather than exhausting memory, a 1x400000 strip at 1x2048 (padded
/// 16x2048) rather than taking seconds. Larger cameras keep their size with a larger cap, or none.
pub const DEFAULT_MAX_LONG_SIDE: u32 = 2048;

/// The most pixels a planned model input (padded) may have, whatever the policy: beyond this a frame is refused
/// before any pixel is touched (an extreme aspect ratio with `short_side` and no cap, an uncapped giant frame).
pub const MAX_MODEL_PIXELS: u64 = 1 << 26;

/// The resize rule: `resize`, then the `max_long_side` cap, then `pad` to a multiple of `multiple`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizePolicy {
    pub resize: Resize,
    /// Cap for the long side after `Keep` / `ShortSide` (torchvision's `max_size`): if exceeded, the long side becomes
    /// this and the short side `floor(max * short / long)` (at least 1). [`DEFAULT_MAX_LONG_SIDE`] by default;
    /// `None` is uncapped.
    pub max_long_side: Option<u32>,
    /// Output sides are multiples of this (16 = the DINOv3 ViT patch size; 32 for ConvNeXt stride 32). 1 = no rule.
    pub multiple: u32,
    pub pad: PadMode,
}

impl Default for ResizePolicy {
    fn default() -> Self {
        Self {
            resize: Resize::Keep,
            max_long_side: Some(DEFAULT_MAX_LONG_SIDE),
            multiple: 16,
            pad: PadMode::BottomRight,
        }
    }
}

impl ResizePolicy {
    /// Keep the input size (long side capped at [`DEFAULT_MAX_LONG_SIDE`]), pad to a multiple of 16.
    pub fn keep() -> Self {
        Self::default()
    }
    /// Short side to `size` (long side capped at [`DEFAULT_MAX_LONG_SIDE`] if `size` is below it), pad to a
    /// multiple of 16.
    pub fn short_side(size: u32) -> Self {
        let resize = Resize::ShortSide(size);
        Self { resize, max_long_side: resize.default_max_long_side(), ..Self::default() }
    }
    /// Stretch to `height` x `width`, pad to a multiple of 16 if needed.
    pub fn fixed(height: u32, width: u32) -> Self {
        Self { resize: Resize::Fixed { height, width }, max_long_side: None, ..Self::default() }
    }
    pub fn with_max_long_side(mut self, max: u32) -> Self {
        self.max_long_side = Some(max);
        self
    }
    /// No cap on the long side (only [`MAX_MODEL_PIXELS`] bounds the model input).
    pub fn uncapped(mut self) -> Self {
        self.max_long_side = None;
        self
    }
    pub fn with_multiple(mut self, multiple: u32) -> Self {
        self.multiple = multiple;
        self
    }
    pub fn with_pad(mut self, pad: PadMode) -> Self {
        self.pad = pad;
        self
    }

    /// Computes the geometry for an input of `input_h` x `input_w` without touching any pixels.
    pub fn plan(&self, input_h: u32, input_w: u32) -> Result<Letterbox, PreprocessError> {
        if input_h == 0 || input_w == 0 {
            return Err(PreprocessError::ZeroSize { height: input_h, width: input_w });
        }
        let invalid = |message: String| PreprocessError::InvalidPolicy { message };
        if self.multiple == 0 {
            return Err(invalid("multiple must be at least 1, got 0".into()));
        }
        let (mut h, mut w) = (u64::from(input_h), u64::from(input_w));
        let fixed = match self.resize {
            Resize::Keep => false,
            Resize::ShortSide(0) => return Err(invalid("short side target must be at least 1, got 0".into())),
            Resize::ShortSide(s) => {
                let s = u64::from(s);
                (h, w) = if h <= w { (s, s * w / h) } else { (s * h / w, s) };
                false
            }
            Resize::Fixed { height, width } => {
                if height == 0 || width == 0 {
                    return Err(invalid(format!("fixed size must be non-zero, got {height}x{width}")));
                }
                (h, w) = (u64::from(height), u64::from(width));
                true
            }
        };
        if let (Some(max), false) = (self.max_long_side, fixed) {
            if max == 0 {
                return Err(invalid("max_long_side must be at least 1, got 0".into()));
            }
            let max = u64::from(max);
            if h.max(w) > max {
                (h, w) = if h >= w { (max, max * w / h) } else { (max * h / w, max) };
            }
        }
        let (h, w) = (h.max(1), w.max(1));
        let m = u64::from(self.multiple);
        let (rh, rw, ph, pw) = match self.pad {
            PadMode::BottomRight => (h, w, h.div_ceil(m) * m, w.div_ceil(m) * m),
            PadMode::Stretch => {
                let round = |v: u64| ((v + m / 2) / m).max(1) * m;
                (round(h), round(w), round(h), round(w))
            }
        };
        let to_u32 = |v: u64| {
            u32::try_from(v)
                .map_err(|_| invalid(format!("planned size {v} does not fit in 32 bits (input {input_h}x{input_w})")))
        };
        if ph.saturating_mul(pw) > MAX_MODEL_PIXELS {
            return Err(invalid(format!(
                "input {input_h}x{input_w} plans to a model input of {ph}x{pw} = {} pixels, more than the limit of \
                 {MAX_MODEL_PIXELS} (an extreme aspect ratio or no long-side cap: set resize.max_long_side)",
                ph.saturating_mul(pw)
            )));
        }
        let (resized_h, resized_w) = (to_u32(rh)?, to_u32(rw)?);
        Ok(Letterbox {
            input_h,
            input_w,
            resized_h,
            resized_w,
            padded_h: to_u32(ph)?,
            padded_w: to_u32(pw)?,
            scale_y: f64::from(resized_h) / f64::from(input_h),
            scale_x: f64::from(resized_w) / f64::from(input_w),
        })
    }
}

/// The geometry of one preprocessed image: the input was resized to `resized_*` (scale factors `scale_*` =
/// resized / input) and placed at the top-left of a `padded_*` canvas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub input_h: u32,
    pub input_w: u32,
    pub resized_h: u32,
    pub resized_w: u32,
    pub padded_h: u32,
    pub padded_w: u32,
    pub scale_y: f64,
    pub scale_x: f64,
}

impl Letterbox {
    /// Maps a continuous point of the model input (pixel `i` spans `[i, i+1)`, its centre is `i + 0.5`) to the camera
    /// image. Points in the padding map outside the input.
    pub fn to_input(&self, y: f64, x: f64) -> (f64, f64) {
        (y / self.scale_y, x / self.scale_x)
    }

    /// The inverse of [`Letterbox::to_input`].
    pub fn to_model(&self, y: f64, x: f64) -> (f64, f64) {
        (y * self.scale_y, x * self.scale_x)
    }

    /// Takes an `[N, C, h, w]` map that covers the whole padded canvas (at full resolution or any stride, e.g. 1/16
    /// patch logits), crops the part that covers the image and resizes it bilinearly (`align_corners = false`,
    /// antialiased when shrinking) to `[N, C, input_h, input_w]`.
    ///
    /// The valid part of a strided map may end inside a cell (e.g. 298 px at stride 16 = 18.625 cells): the crop
    /// keeps the partial cell and the resize is told the exact scale, so an output pixel samples the map at exactly
    /// the position it came from. Float kinds only; the output has the input tensor's kind and device.
    pub fn crop_and_resize_back(&self, map: &Tensor) -> Result<Tensor, PreprocessError> {
        let size = map.size();
        let (h, w) = match size.as_slice() {
            &[_, _, h, w] if h > 0 && w > 0 => (h, w),
            _ => return Err(PreprocessError::BadShape { shape: size, expected: "[N, C, h, w] with h, w > 0" }),
        };
        let valid_h = f64::from(self.resized_h) * h as f64 / f64::from(self.padded_h);
        let valid_w = f64::from(self.resized_w) * w as f64 / f64::from(self.padded_w);
        let crop_h = (valid_h.ceil() as i64).clamp(1, h);
        let crop_w = (valid_w.ceil() as i64).clamp(1, w);
        let cropped = map.f_narrow(2, 0, crop_h).and_then(|t| t.f_narrow(3, 0, crop_w)).map_err(torch("narrow"))?;
        let (out_h, out_w) = (i64::from(self.input_h), i64::from(self.input_w));
        if crop_h == out_h && crop_w == out_w && valid_h == out_h as f64 && valid_w == out_w as f64 {
            return Ok(cropped);
        }
        let (sh, sw) = (out_h as f64 / valid_h, out_w as f64 / valid_w);
        if sh < 1.0 || sw < 1.0 {
            cropped.f_internal_upsample_bilinear2d_aa([out_h, out_w], false, sh, sw)
        } else {
            cropped.f_upsample_bilinear2d([out_h, out_w], false, sh, sw)
        }
        .map_err(torch("resize back"))
    }
}

pub use crate::catalog::Normalization;

/// Why an image could not be turned into model input.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("image has zero size: {height}x{width} (height x width)")]
    ZeroSize { height: u32, width: u32 },
    #[error("invalid resize policy: {message}")]
    InvalidPolicy { message: String },
    #[error("output kind {kind:?} is not a floating-point kind (use Float, Half, BFloat16 or Double)")]
    UnsupportedKind { kind: Kind },
    #[error("tensor of shape {shape:?} where {expected} was expected")]
    BadShape { shape: Vec<i64>, expected: &'static str },
    #[error("empty batch: preprocess_batch needs at least one image")]
    EmptyBatch,
    #[error(
        "batch image {index} ({input_h}x{input_w}) preprocesses to {got_h}x{got_w}, but image 0 to \
         {expected_h}x{expected_w}; a batch needs one output size"
    )]
    BatchSizeMismatch {
        index: usize,
        input_h: u32,
        input_w: u32,
        got_h: u32,
        got_w: u32,
        expected_h: u32,
        expected_w: u32,
    },
    #[error("libtorch failed in {op}: {source}")]
    Torch {
        op: &'static str,
        #[source]
        source: tch::TchError,
    },
}

fn torch(op: &'static str) -> impl Fn(tch::TchError) -> PreprocessError {
    move |source| PreprocessError::Torch { op, source }
}

/// Turns one RGB8 image into a `[1, 3, padded_h, padded_w]` tensor of `kind` on `device`, with its [`Letterbox`].
pub fn preprocess(
    img: &RgbImage,
    policy: &ResizePolicy,
    norm: &Normalization,
    device: Device,
    kind: Kind,
) -> Result<(Tensor, Letterbox), PreprocessError> {
    if !matches!(kind, Kind::Float | Kind::Half | Kind::BFloat16 | Kind::Double) {
        return Err(PreprocessError::UnsupportedKind { kind });
    }
    let (in_h, in_w) = (img.height(), img.width());
    let lb = policy.plan(in_h, in_w)?;
    let (h, w) = (i64::from(in_h), i64::from(in_w));
    // `ImageBuffer` guarantees at least width * height * 3 bytes (both fit in u32, so the product fits in u64).
    let n = (u64::from(in_h) * u64::from(in_w) * 3) as usize;
    let bytes = img.as_raw().get(..n).ok_or(PreprocessError::BadShape {
        shape: vec![img.as_raw().len() as i64],
        expected: "an RGB8 buffer of height x width x 3 bytes",
    })?;
    let x = Tensor::f_from_slice(bytes)
        .and_then(|t| t.f_view([h, w, 3]))
        .and_then(|t| t.f_to_device(device))
        .and_then(|t| t.f_permute([2, 0, 1]))
        .and_then(|t| t.f_unsqueeze(0))
        .and_then(|t| t.f_to_kind(Kind::Float))
        .map_err(torch("upload"))?;
    let (rh, rw) = (i64::from(lb.resized_h), i64::from(lb.resized_w));
    let x = if (rh, rw) == (h, w) {
        x
    } else if rh < h || rw < w {
        x.f_internal_upsample_bilinear2d_aa([rh, rw], false, None, None).map_err(torch("antialiased resize"))?
    } else {
        x.f_upsample_bilinear2d([rh, rw], false, None, None).map_err(torch("bilinear resize"))?
    };
    let (a, b) = norm.affine();
    let to_dev =
        |v: [f32; 3]| Tensor::f_from_slice(&v).and_then(|t| t.f_view([1, 3, 1, 1])).and_then(|t| t.f_to_device(device));
    let (pad_h, pad_w) = (i64::from(lb.padded_h) - rh, i64::from(lb.padded_w) - rw);
    let x = to_dev(a)
        .and_then(|a| x.f_mul(&a))
        .and_then(|x| to_dev(b).and_then(|b| x.f_add(&b)))
        .and_then(|x| if pad_h > 0 || pad_w > 0 { x.f_constant_pad_nd([0, pad_w, 0, pad_h]) } else { Ok(x) })
        .and_then(|x| x.f_to_kind(kind))
        .and_then(|x| x.f_contiguous())
        .map_err(torch("normalise and pad"))?;
    Ok((x, lb))
}

/// Preprocesses several images into one `[N, 3, H, W]` batch. All images must plan to the same padded size (e.g.
/// frames of one camera); otherwise [`PreprocessError::BatchSizeMismatch`] names the first image that differs.
pub fn preprocess_batch(
    imgs: &[&RgbImage],
    policy: &ResizePolicy,
    norm: &Normalization,
    device: Device,
    kind: Kind,
) -> Result<(Tensor, Vec<Letterbox>), PreprocessError> {
    let first = imgs.first().ok_or(PreprocessError::EmptyBatch)?;
    let expected = policy.plan(first.height(), first.width())?;
    for (index, img) in imgs.iter().enumerate().skip(1) {
        let lb = policy.plan(img.height(), img.width())?;
        if (lb.padded_h, lb.padded_w) != (expected.padded_h, expected.padded_w) {
            return Err(PreprocessError::BatchSizeMismatch {
                index,
                input_h: lb.input_h,
                input_w: lb.input_w,
                got_h: lb.padded_h,
                got_w: lb.padded_w,
                expected_h: expected.padded_h,
                expected_w: expected.padded_w,
            });
        }
    }
    let mut tensors = Vec::with_capacity(imgs.len());
    let mut boxes = Vec::with_capacity(imgs.len());
    for img in imgs {
        let (t, lb) = preprocess(img, policy, norm, device, kind)?;
        tensors.push(t);
        boxes.push(lb);
    }
    let batch = Tensor::f_cat(&tensors, 0).map_err(torch("cat batch"))?;
    Ok((batch, boxes))
}

//! Camera frames to packed RGB8: every encoding a ROS 2 camera sends, without ROS.
//!
//! Follows the `sensor_msgs/Image` conventions (REP 104 / `sensor_msgs/image_encodings.hpp`): `step` is the number of
//! bytes per row and may exceed `width * bytes_per_pixel` (row padding), `data` holds `step * height` bytes, and
//! `is_bigendian` only matters for multi-byte samples (`mono16`). Colour conversions match what `cv_bridge` does with
//! OpenCV, so the pixels we feed the model are the pixels the rest of a ROS system sees:
//!
//! * `yuv422` is UYVY (U0 Y0 V0 Y1) and `yuv422_yuy2` is YUYV (Y0 U0 Y1 V0), as in `cv_bridge`
//!   (`COLOR_YUV2RGB_UYVY` / `COLOR_YUV2RGB_YUYV`). The conversion is OpenCV's fixed-point BT.601 *limited range*
//!   ("video range", Y in 16..235) formula from `color_yuv.simd.hpp`, bit for bit:
//!   `R = ((Y-16)*1220542 + (V-128)*1673527 + 2^19) >> 20`,
//!   `G = ((Y-16)*1220542 - (V-128)*852492 - (U-128)*409993 + 2^19) >> 20`,
//!   `B = ((Y-16)*1220542 + (U-128)*2116026 + 2^19) >> 20`, with `Y-16` floored at 0 and the result saturated,
//!   i.e. the usual 1.164 / 1.596 / 0.813 / 0.391 / 2.018 coefficients in Q20. Checked bit-exact against OpenCV 5.0
//!   `cvtColor` for all 65536 (U, V) pairs in both byte orders.
//! * `bayer_XXXX8` names the 2x2 tile at the top-left corner of the image (`bayer_rggb8`: R G / G B), as in ROS.
//!   Demosaicing is bilinear (the algorithm of OpenCV's default `COLOR_Bayer*2RGB`): the missing colours of a pixel
//!   are the rounded mean of its 2 or 4 nearest samples of that colour. At the borders, missing neighbours are
//!   *mirrored* (reflect-101: index -1 reads index 1) rather than clamped: clamping would read a sample of another
//!   colour, mirroring keeps the Bayer parity, so a constant-colour scene decodes to that colour exactly everywhere.
//!   Away from the 2-pixel border the result is bit-exact with OpenCV 5.0 under `cv_bridge`'s mapping (`bayer_rggb8`
//!   = `COLOR_BayerBG2RGB`, `bggr` = `RG`, `gbrg` = `GR`, `grbg` = `GB`); OpenCV's own border pixels differ.
//! * `mono16` becomes 8 bit by keeping the high byte (`v >> 8`, truncating), then grey is replicated to R, G and B.
//!
//! Data are borrowed (`&[u8]`, `&str`): a frame can be decoded straight out of a received CDR buffer or an r2r
//! message without copying it first; the only allocation is the output image. Nothing here panics on any input:
//! sizes are checked with checked arithmetic before any slicing.

use image::RgbImage;

/// A borrowed mirror of `sensor_msgs/Image` (without the header).
///
/// Borrowed rather than owned so that decoding reads the camera's bytes in place (from a CDR buffer, an r2r message or
/// a bag record); the caller keeps ownership and the decoder produces the one copy the pipeline needs.
#[derive(Debug, Clone, Copy)]
pub struct ImageFrame<'a> {
    pub height: u32,
    pub width: u32,
    /// The ROS encoding string, e.g. `rgb8`, `bgr8`, `mono16`, `yuv422`, `bayer_rggb8`.
    pub encoding: &'a str,
    /// Byte order of multi-byte samples (only `mono16` here).
    pub is_bigendian: bool,
    /// Bytes per row, at least `width * bytes_per_pixel`.
    pub step: u32,
    pub data: &'a [u8],
}

/// A borrowed mirror of `sensor_msgs/CompressedImage` (without the header).
#[derive(Debug, Clone, Copy)]
pub struct CompressedFrame<'a> {
    /// `jpeg`, `png`, or image_transport's long form such as `bgr8; jpeg compressed bgr8` or `rgb8; compressed png`.
    pub format: &'a str,
    pub data: &'a [u8],
}

/// The raw encodings we decode (`sensor_msgs/image_encodings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Rgb8,
    Bgr8,
    Rgba8,
    Bgra8,
    Mono8,
    Mono16,
    /// ROS `yuv422` (alias `uyvy`): U0 Y0 V0 Y1.
    Uyvy,
    /// ROS `yuv422_yuy2` (alias `yuyv`, `yuy2`): Y0 U0 Y1 V0.
    Yuyv,
    BayerRggb8,
    BayerBggr8,
    BayerGbrg8,
    BayerGrbg8,
}

impl Encoding {
    /// Every ROS encoding name decoded, with what it decodes as.
    pub const NAMES: [(&'static str, Encoding); 15] = [
        ("rgb8", Encoding::Rgb8),
        ("bgr8", Encoding::Bgr8),
        ("rgba8", Encoding::Rgba8),
        ("bgra8", Encoding::Bgra8),
        ("mono8", Encoding::Mono8),
        ("mono16", Encoding::Mono16),
        ("yuv422", Encoding::Uyvy),
        ("uyvy", Encoding::Uyvy),
        ("yuv422_yuy2", Encoding::Yuyv),
        ("yuyv", Encoding::Yuyv),
        ("yuy2", Encoding::Yuyv),
        ("bayer_rggb8", Encoding::BayerRggb8),
        ("bayer_bggr8", Encoding::BayerBggr8),
        ("bayer_gbrg8", Encoding::BayerGbrg8),
        ("bayer_grbg8", Encoding::BayerGrbg8),
    ];

    /// Parses a ROS encoding string (ASCII case and surrounding spaces are ignored).
    pub fn parse(encoding: &str) -> Result<Self, DecodeError> {
        let e = encoding.trim();
        Self::NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(e))
            .map(|&(_, enc)| enc)
            .ok_or_else(|| DecodeError::UnknownEncoding { encoding: encoding.to_string() })
    }

    /// Bytes per pixel in the message (`yuv422`: 4 bytes per 2 pixels = 2).
    pub fn bytes_per_pixel(self) -> u32 {
        match self {
            Self::Rgb8 | Self::Bgr8 => 3,
            Self::Rgba8 | Self::Bgra8 => 4,
            Self::Mono16 | Self::Uyvy | Self::Yuyv => 2,
            Self::Mono8 | Self::BayerRggb8 | Self::BayerBggr8 | Self::BayerGbrg8 | Self::BayerGrbg8 => 1,
        }
    }

    /// The canonical ROS name (`Uyvy` -> `yuv422`, `Yuyv` -> `yuv422_yuy2`).
    pub fn ros_name(self) -> &'static str {
        match self {
            Self::Rgb8 => "rgb8",
            Self::Bgr8 => "bgr8",
            Self::Rgba8 => "rgba8",
            Self::Bgra8 => "bgra8",
            Self::Mono8 => "mono8",
            Self::Mono16 => "mono16",
            Self::Uyvy => "yuv422",
            Self::Yuyv => "yuv422_yuy2",
            Self::BayerRggb8 => "bayer_rggb8",
            Self::BayerBggr8 => "bayer_bggr8",
            Self::BayerGbrg8 => "bayer_gbrg8",
            Self::BayerGrbg8 => "bayer_grbg8",
        }
    }

    /// Whether this is one of the 8-bit Bayer mosaics.
    pub fn is_bayer(self) -> bool {
        matches!(self, Self::BayerRggb8 | Self::BayerBggr8 | Self::BayerGbrg8 | Self::BayerGrbg8)
    }
}

// The colour (0 = R, 1 = G, 2 = B) of each cell of the top-left 2x2 tile, row-major.
const BAYER_RGGB: [usize; 4] = [0, 1, 1, 2];
const BAYER_BGGR: [usize; 4] = [2, 1, 1, 0];
const BAYER_GBRG: [usize; 4] = [1, 2, 0, 1];
const BAYER_GRBG: [usize; 4] = [1, 0, 2, 1];

impl std::str::FromStr for Encoding {
    type Err = DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Why a frame could not be decoded. Every message names the numbers that are wrong.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "unknown image encoding `{encoding}` (supported: rgb8, bgr8, rgba8, bgra8, mono8, mono16, yuv422/uyvy, \
         yuv422_yuy2/yuyv, bayer_rggb8, bayer_bggr8, bayer_gbrg8, bayer_grbg8)"
    )]
    UnknownEncoding { encoding: String },
    #[error("image has zero size: width {width}, height {height}")]
    ZeroSize { width: u32, height: u32 },
    #[error(
        "{encoding} image of width {width} has an odd width; yuv422 packs pixels in pairs and needs an even width"
    )]
    OddWidth { encoding: &'static str, width: u32 },
    #[error("bayer image of {width}x{height} is too small to demosaic: both sides must be at least 2")]
    TooSmallForBayer { width: u32, height: u32 },
    #[error("step {step} is smaller than one row of {encoding}: width {width} x {bpp} bytes = {min_step} bytes")]
    StepTooSmall { encoding: &'static str, width: u32, bpp: u32, step: u32, min_step: u64 },
    #[error("image data too short: {len} bytes, but step {step} x height {height} needs {needed} bytes")]
    DataTooShort { len: usize, step: u32, height: u32, needed: u64 },
    #[error("image of {width}x{height} (step {step}) is too large to address on this machine")]
    SizeOverflow { width: u32, height: u32, step: u32 },
    #[error("compressed image (format `{format}`) has no data")]
    EmptyCompressed { format: String },
    #[error(
        "unsupported compressed format `{format}` (first bytes {magic}): only jpeg and png colour or grey images \
         are decoded"
    )]
    UnsupportedCompressedFormat { format: String, magic: String },
    #[error("corrupt {codec} image (format `{format}`, {len} bytes): {message}")]
    Compressed { codec: &'static str, format: String, len: usize, message: String },
    #[error("{name}: not an image this build decodes (first bytes {magic}; decoded: {IMAGE_FORMATS})")]
    UnknownImageFormat { name: String, magic: String },
    #[error("{name}: {format} image of {len} bytes cannot be decoded: {message}")]
    ImageFile { name: String, format: &'static str, len: usize, message: String },
}

/// The image file formats decoded (by content, whatever the file's extension says).
pub const IMAGE_FORMATS: &str = "png, jpeg, bmp, tiff, webp, pnm (pbm, pgm, ppm, pam)";
/// Widest or tallest image decoded (files and compressed frames); the area is bounded by [`MAX_IMAGE_ALLOC`].
pub const MAX_IMAGE_SIDE: u32 = 1 << 20;
/// Most bytes a decoder may allocate for one image (files and compressed frames); a PNG bomb (a small file that
/// claims or inflates to a huge image) is refused before the memory is taken.
pub const MAX_IMAGE_ALLOC: u64 = 1 << 30;

/// The decoding limits of image files and compressed frames.
pub fn image_limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    limits
}

fn magic(data: &[u8]) -> String {
    data.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

fn format_name(f: image::ImageFormat) -> &'static str {
    use image::ImageFormat as F;
    match f {
        F::Jpeg => "jpeg",
        F::Png => "png",
        F::Bmp => "bmp",
        F::Tiff => "tiff",
        F::WebP => "webp",
        F::Pnm => "pnm",
        _ => "image",
    }
}

/// Decodes an image file's bytes to packed RGB8: the format is read from the bytes (a JPEG named `.png` decodes),
/// never from `name`, which only names the file in errors. Decoding is bounded by [`image_limits`]; grey, alpha
/// and 16-bit images are converted to RGB8. Never panics on any input (the fuzz entry of image files).
pub fn decode_image_bytes(bytes: &[u8], name: &str) -> Result<RgbImage, DecodeError> {
    let format = image::guess_format(bytes)
        .ok()
        .filter(|f| f.reading_enabled())
        .ok_or_else(|| DecodeError::UnknownImageFormat { name: name.to_string(), magic: magic(bytes) })?;
    decode_with_limits(bytes, format).map_err(|message| DecodeError::ImageFile {
        name: name.to_string(),
        format: format_name(format),
        len: bytes.len(),
        message,
    })
}

/// Decodes `bytes` as `format` within [`image_limits`].
fn decode_with_limits(bytes: &[u8], format: image::ImageFormat) -> Result<RgbImage, String> {
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    reader.limits(image_limits());
    let img = reader.decode().map_err(|e| e.to_string())?;
    Ok(img.into_rgb8())
}

/// Decodes a raw `sensor_msgs/Image` into packed RGB8 (`width * height * 3` bytes, no padding).
///
/// `data` may be longer than `step * height` (extra bytes are ignored) but not shorter.
pub fn decode_image(frame: &ImageFrame<'_>) -> Result<RgbImage, DecodeError> {
    let enc = Encoding::parse(frame.encoding)?;
    let (w, h, step) = (frame.width, frame.height, frame.step);
    if w == 0 || h == 0 {
        return Err(DecodeError::ZeroSize { width: w, height: h });
    }
    let enc_name = enc.ros_name();
    if matches!(enc, Encoding::Uyvy | Encoding::Yuyv) && w % 2 != 0 {
        return Err(DecodeError::OddWidth { encoding: enc_name, width: w });
    }
    if enc.is_bayer() && (w < 2 || h < 2) {
        return Err(DecodeError::TooSmallForBayer { width: w, height: h });
    }
    let bpp = enc.bytes_per_pixel();
    // u32 x u32 always fits in u64; the conversions to usize are what can fail (32-bit targets).
    let min_step = u64::from(w) * u64::from(bpp);
    if u64::from(step) < min_step {
        return Err(DecodeError::StepTooSmall { encoding: enc_name, width: w, bpp, step, min_step });
    }
    let needed = u64::from(step) * u64::from(h);
    if (frame.data.len() as u64) < needed {
        return Err(DecodeError::DataTooShort { len: frame.data.len(), step, height: h, needed });
    }
    let overflow = || DecodeError::SizeOverflow { width: w, height: h, step };
    // `needed <= data.len()`, so these fit in usize; the output is at most 3x the input's pixel count.
    let (wu, hu, stepu) = (w as usize, h as usize, step as usize);
    let row_bytes = usize::try_from(min_step).map_err(|_| overflow())?;
    let out_len = wu.checked_mul(hu).and_then(|n| n.checked_mul(3)).ok_or_else(overflow)?;
    let src = &frame.data[..needed as usize];
    let mut out = vec![0u8; out_len];
    // `chunks_exact(step)` yields exactly `h` rows because `src.len() == step * h`; each row is cut to its pixels.
    let rows = src.chunks_exact(stepu).map(|r| &r[..row_bytes]);
    let out_rows = out.chunks_exact_mut(wu * 3);
    match enc {
        Encoding::Rgb8 => {
            for (o, r) in out_rows.zip(rows) {
                o.copy_from_slice(r);
            }
        }
        Encoding::Bgr8 => convert_rows(out_rows, rows, 3, |o, p| {
            o[0] = p[2];
            o[1] = p[1];
            o[2] = p[0];
        }),
        Encoding::Rgba8 => convert_rows(out_rows, rows, 4, |o, p| o.copy_from_slice(&p[..3])),
        Encoding::Bgra8 => convert_rows(out_rows, rows, 4, |o, p| {
            o[0] = p[2];
            o[1] = p[1];
            o[2] = p[0];
        }),
        Encoding::Mono8 => convert_rows(out_rows, rows, 1, |o, p| o.fill(p[0])),
        Encoding::Mono16 => {
            let hi = usize::from(!frame.is_bigendian);
            convert_rows(out_rows, rows, 2, |o, p| o.fill(p[hi]))
        }
        Encoding::Uyvy => yuv422_rows(out_rows, rows, [1, 0, 3, 2]),
        Encoding::Yuyv => yuv422_rows(out_rows, rows, [0, 1, 2, 3]),
        Encoding::BayerRggb8 => demosaic_bilinear(src, stepu, wu, BAYER_RGGB, &mut out),
        Encoding::BayerBggr8 => demosaic_bilinear(src, stepu, wu, BAYER_BGGR, &mut out),
        Encoding::BayerGbrg8 => demosaic_bilinear(src, stepu, wu, BAYER_GBRG, &mut out),
        Encoding::BayerGrbg8 => demosaic_bilinear(src, stepu, wu, BAYER_GRBG, &mut out),
    }
    RgbImage::from_raw(w, h, out).ok_or_else(overflow)
}

/// Applies a per-pixel conversion row by row; `f` gets 3 output bytes and `bpp` input bytes.
#[inline]
fn convert_rows<'o, 'i>(
    out_rows: impl Iterator<Item = &'o mut [u8]>,
    rows: impl Iterator<Item = &'i [u8]>,
    bpp: usize,
    f: impl Fn(&mut [u8], &[u8]),
) {
    for (o, r) in out_rows.zip(rows) {
        for (op, ip) in o.chunks_exact_mut(3).zip(r.chunks_exact(bpp)) {
            f(op, ip);
        }
    }
}

// OpenCV's BT.601 limited-range YUV -> RGB in Q20 fixed point (color_yuv.simd.hpp).
const BT601_SHIFT: i32 = 20;
const BT601_CY: i32 = 1_220_542;
const BT601_CUB: i32 = 2_116_026;
const BT601_CUG: i32 = -409_993;
const BT601_CVG: i32 = -852_492;
const BT601_CVR: i32 = 1_673_527;

/// One YUV 4:2:2 sample pair to RGB exactly as OpenCV does it (BT.601, limited range, Q20).
#[inline]
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let (ruv, guv, buv) = uv_terms(u, v);
    y_to_rgb(y, ruv, guv, buv)
}

#[inline]
fn uv_terms(u: u8, v: u8) -> (i32, i32, i32) {
    let (uu, vv) = (i32::from(u) - 128, i32::from(v) - 128);
    let half = 1 << (BT601_SHIFT - 1);
    (half + BT601_CVR * vv, half + BT601_CVG * vv + BT601_CUG * uu, half + BT601_CUB * uu)
}

#[inline]
fn y_to_rgb(y: u8, ruv: i32, guv: i32, buv: i32) -> [u8; 3] {
    let yy = (i32::from(y) - 16).max(0) * BT601_CY;
    let sat = |v: i32| (v >> BT601_SHIFT).clamp(0, 255) as u8;
    [sat(yy + ruv), sat(yy + guv), sat(yy + buv)]
}

/// YUV 4:2:2 rows; `idx` gives the byte offsets of [Y0, U, Y1, V] inside each 4-byte macropixel.
fn yuv422_rows<'o, 'i>(
    out_rows: impl Iterator<Item = &'o mut [u8]>,
    rows: impl Iterator<Item = &'i [u8]>,
    idx: [usize; 4],
) {
    let [iy0, iu, iy1, iv] = idx;
    for (o, r) in out_rows.zip(rows) {
        for (op, m) in o.chunks_exact_mut(6).zip(r.chunks_exact(4)) {
            let (ruv, guv, buv) = uv_terms(m[iu], m[iv]);
            op[..3].copy_from_slice(&y_to_rgb(m[iy0], ruv, guv, buv));
            op[3..].copy_from_slice(&y_to_rgb(m[iy1], ruv, guv, buv));
        }
    }
}

/// Bilinear demosaic with mirrored (reflect-101) borders. `src` holds `height >= 2` rows of `step` bytes whose first
/// `w >= 2` bytes are pixels, `tile` the colours of the top-left 2x2 cells, `out` `w * height * 3` bytes.
fn demosaic_bilinear(src: &[u8], step: usize, w: usize, tile: [usize; 4], out: &mut [u8]) {
    let plane: Vec<&[u8]> = src.chunks_exact(step).map(|r| &r[..w]).collect();
    let h = plane.len();
    let reflect = |i: usize, n: usize, up: bool| -> usize {
        if up {
            if i == 0 {
                1
            } else {
                i - 1
            }
        } else if i + 1 == n {
            n - 2
        } else {
            i + 1
        }
    };
    let avg2 = |a: u8, b: u8| ((u16::from(a) + u16::from(b) + 1) >> 1) as u8;
    let avg4 =
        |a: u8, b: u8, c: u8, d: u8| ((u16::from(a) + u16::from(b) + u16::from(c) + u16::from(d) + 2) >> 2) as u8;
    for (y, orow) in out.chunks_exact_mut(w * 3).enumerate().take(h) {
        let (n, c, s) = (plane[reflect(y, h, true)], plane[y], plane[reflect(y, h, false)]);
        let row_tile = [tile[(y & 1) * 2], tile[(y & 1) * 2 + 1]];
        for (x, o) in orow.chunks_exact_mut(3).enumerate() {
            let (xl, xr) = (reflect(x, w, true), reflect(x, w, false));
            let colour = row_tile[x & 1];
            let centre = c[x];
            if colour == 1 {
                // Green site: the other colour of this row lies left/right, the remaining one above/below.
                let horiz = row_tile[(x & 1) ^ 1];
                o[1] = centre;
                o[horiz] = avg2(c[xl], c[xr]);
                o[2 - horiz] = avg2(n[x], s[x]);
            } else {
                // Red or blue site: green is the 4-neighbourhood, the opposite colour the diagonals.
                o[colour] = centre;
                o[1] = avg4(n[x], s[x], c[xl], c[xr]);
                o[2 - colour] = avg4(n[xl], n[xr], s[xl], s[xr]);
            }
        }
    }
}

/// Decodes a `sensor_msgs/CompressedImage` (JPEG or PNG, the codecs of image_transport) into packed RGB8,
/// within [`image_limits`].
///
/// The codec is detected from the bytes; the `format` string is only a hint used when the bytes are not
/// recognised (and for the error message). Other formats are refused: a camera topic decodes no more formats
/// than it needs. image_transport's `bgr8; jpeg compressed bgr8` means the *ROS* image was
/// bgr8 before compression: OpenCV's encoder takes BGR and writes a standard JPEG/PNG, which stores RGB, so a standard
/// decoder returns correct RGB whatever the prefix says. Grey and 16-bit PNGs are converted to RGB8 by the `image`
/// crate (16-bit scaled to 8-bit). `compressedDepth` payloads (a depth header before the PNG) are not colour images and
/// are rejected. Headers that claim huge sizes are refused by the limits before any memory is taken.
pub fn decode_compressed(frame: &CompressedFrame<'_>) -> Result<RgbImage, DecodeError> {
    let data = frame.data;
    if data.is_empty() {
        return Err(DecodeError::EmptyCompressed { format: frame.format.to_string() });
    }
    let hint = frame.format.to_ascii_lowercase();
    let unsupported =
        || DecodeError::UnsupportedCompressedFormat { format: frame.format.to_string(), magic: magic(data) };
    if hint.contains("compresseddepth") {
        return Err(unsupported());
    }
    let fmt = match image::guess_format(data).ok() {
        Some(f @ (image::ImageFormat::Jpeg | image::ImageFormat::Png)) => f,
        Some(_) => return Err(unsupported()),
        None if hint.contains("jpeg") || hint.contains("jpg") => image::ImageFormat::Jpeg,
        None if hint.contains("png") => image::ImageFormat::Png,
        None => return Err(unsupported()),
    };
    decode_with_limits(data, fmt).map_err(|message| DecodeError::Compressed {
        codec: format_name(fmt),
        format: frame.format.to_string(),
        len: data.len(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG whose header claims `w` x `h` RGB8 pixels, with almost no data (a "PNG bomb" header).
    fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        // An empty zlib stream as the only data.
        for chunk in [ihdr, b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01".to_vec(), b"IEND".to_vec()] {
            png.extend_from_slice(&(chunk.len() as u32 - 4).to_be_bytes());
            png.extend_from_slice(&chunk);
            png.extend_from_slice(&crc32(&chunk).to_be_bytes());
        }
        png
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }

    #[test]
    fn huge_claimed_sizes_are_refused_before_allocating() {
        for (w, h) in [(100_000, 100_000), (MAX_IMAGE_SIDE + 1, 1), (30_000, 30_000)] {
            let t = std::time::Instant::now();
            let e = decode_image_bytes(&png_claiming(w, h), "bomb.png").unwrap_err().to_string();
            assert!(e.starts_with("bomb.png: png image") && e.contains("limit"), "{w}x{h}: {e}");
            let frame = CompressedFrame { format: "png", data: &png_claiming(w, h) };
            let e = decode_compressed(&frame).unwrap_err().to_string();
            assert!(e.contains("limit"), "{w}x{h}: {e}");
            assert!(t.elapsed().as_secs_f64() < 1.0, "{:?}", t.elapsed());
        }
    }

    #[test]
    fn files_are_decoded_by_content_not_name() {
        let img = RgbImage::from_fn(6, 4, |x, y| image::Rgb([x as u8 * 40, y as u8 * 60, 9]));
        let mut jpeg = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
        assert_eq!(decode_image_bytes(&jpeg, "photo.png").unwrap().dimensions(), (6, 4));
        let frame = CompressedFrame { format: "png", data: &jpeg };
        assert_eq!(decode_compressed(&frame).unwrap().dimensions(), (6, 4));
        let e = decode_image_bytes(b"GIF89a....", "x.gif").unwrap_err().to_string();
        assert!(e.starts_with("x.gif: not an image") && e.contains("47 49 46 38"), "{e}");
        assert!(decode_image_bytes(&[], "empty.png").is_err());
    }
}

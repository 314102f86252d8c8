//! Reading the PNGs that evaluation compares: label maps (one class id per pixel: 8- or 16-bit grey, or the
//! palette index of an indexed PNG, as PIL's `np.array(Image.open(f))` gives them to mmseg and DINOv3's
//! evaluation) and COCO panoptic id maps (RGB, id = R + 256 G + 256^2 B, as panopticapi's `rgb2id`).
//!
//! The PNG is decoded without colour conversion (the `png` crate with no transformations), within
//! [`MAX_PIXELS`] and the decoder's allocation limit, from a file read through [`crate::files::read_capped`].
//! A colour PNG given as a label map (or a grey one as an id map) is refused naming the file and its colour type.

use crate::error::{Error, Result};
use crate::files::{caps, read_capped};
use std::io::Cursor;
use std::path::Path;

/// Most pixels of one evaluated image (134M: 16384 x 8192); the decoded map takes 4 bytes a pixel.
pub const MAX_PIXELS: u64 = 1 << 27;

/// One decoded map: a value per pixel, row-major, with the name (file) it came from for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub values: Vec<u32>,
}

impl LabelMap {
    /// A map from its values (`values.len()` must be `width * height`).
    pub fn new(name: impl Into<String>, width: u32, height: u32, values: Vec<u32>) -> Result<Self> {
        let name = name.into();
        if values.len() as u64 != u64::from(width) * u64::from(height) {
            let n = values.len();
            return Err(Error::Input(format!("{name}: {n} values for a {width}x{height} map")));
        }
        Ok(LabelMap { name, width, height, values })
    }

    /// The pixel (x, y) of a row-major index.
    pub fn xy(&self, index: usize) -> (usize, usize) {
        let w = (self.width as usize).max(1);
        (index % w, index / w)
    }
}

/// What a PNG's pixels become.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wanted {
    /// One class id per pixel: grey 8/16-bit, or indexed (palette index).
    Labels,
    /// RGB ids (alpha, if any, ignored).
    Ids,
}

fn color_name(c: png::ColorType) -> &'static str {
    match c {
        png::ColorType::Grayscale => "grey",
        png::ColorType::Rgb => "RGB",
        png::ColorType::Indexed => "indexed (palette)",
        png::ColorType::GrayscaleAlpha => "grey + alpha",
        png::ColorType::Rgba => "RGBA",
    }
}

fn decode(bytes: &[u8], name: &str, wanted: Wanted) -> Result<LabelMap> {
    let bad = |message: String| Error::Input(format!("{name}: {message}"));
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: 1 << 30 });
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(|e| bad(format!("not a readable PNG: {e}")))?;
    let (width, height, color, depth) = {
        let info = reader.info();
        (info.width, info.height, info.color_type, info.bit_depth as u8)
    };
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_PIXELS {
        return Err(bad(format!("{width}x{height} PNG is larger than the {MAX_PIXELS}-pixel limit")));
    }
    let kind = format!("{}-bit {} PNG", depth, color_name(color));
    match (wanted, color, depth) {
        (Wanted::Labels, png::ColorType::Grayscale, 8 | 16) | (Wanted::Labels, png::ColorType::Indexed, _) => {}
        (Wanted::Labels, _, _) => {
            return Err(bad(format!(
                "a {kind} is not a label map: labels are 8- or 16-bit grey (or palette-index) PNGs with one class \
                 id per pixel"
            )))
        }
        (Wanted::Ids, png::ColorType::Rgb | png::ColorType::Rgba, 8) => {}
        (Wanted::Ids, _, _) => {
            return Err(bad(format!(
                "a {kind} is not a panoptic id map: those are 8-bit RGB PNGs (id = R + 256 G + 256^2 B)"
            )))
        }
    }
    let size = reader.output_buffer_size().ok_or_else(|| bad("image too large to decode".to_string()))?;
    let mut buf = vec![0u8; size];
    let out = reader.next_frame(&mut buf).map_err(|e| bad(format!("corrupt PNG data: {e}")))?;
    let line = out.line_size;
    let (w, h) = (width as usize, height as usize);
    let mut values = Vec::with_capacity(w * h);
    for y in 0..h {
        let row = buf.get(y * line..(y + 1) * line).ok_or_else(|| bad("short PNG row".to_string()))?;
        match (color, depth) {
            (png::ColorType::Rgb, _) => values.extend(row.chunks_exact(3).take(w).map(rgb_id)),
            (png::ColorType::Rgba, _) => values.extend(row.chunks_exact(4).take(w).map(rgb_id)),
            (_, 16) => values.extend(row.chunks_exact(2).take(w).map(|p| u32::from(u16::from_be_bytes([p[0], p[1]])))),
            (_, 8) => values.extend(row.iter().take(w).map(|&v| u32::from(v))),
            (_, bits) => {
                // Indexed PNGs of 1, 2 or 4 bits: samples packed from the high bits of each byte.
                let per_byte = 8 / usize::from(bits);
                let mask = (1u32 << bits) - 1;
                values.extend((0..w).map(|x| {
                    let byte = u32::from(row.get(x / per_byte).copied().unwrap_or(0));
                    let shift = 8 - usize::from(bits) * (x % per_byte + 1);
                    (byte >> shift) & mask
                }));
            }
        }
    }
    if values.len() != w * h {
        return Err(bad("PNG rows shorter than the image width".to_string()));
    }
    LabelMap::new(name, width, height, values)
}

/// R + 256 G + 256^2 B of the first three bytes.
fn rgb_id(p: &[u8]) -> u32 {
    u32::from(p[0]) | u32::from(p[1]) << 8 | u32::from(p[2]) << 16
}

/// Decodes a label-map PNG's bytes (8- or 16-bit grey, or indexed); `name` names it in errors.
pub fn decode_label_png(bytes: &[u8], name: &str) -> Result<LabelMap> {
    decode(bytes, name, Wanted::Labels)
}

/// Decodes a COCO panoptic id PNG's bytes (8-bit RGB or RGBA) to ids R + 256 G + 256^2 B.
pub fn decode_id_png(bytes: &[u8], name: &str) -> Result<LabelMap> {
    decode(bytes, name, Wanted::Ids)
}

/// Reads and decodes a label-map PNG file (a regular file of at most [`caps::IMAGE`] bytes).
pub fn read_label_png(path: &Path) -> Result<LabelMap> {
    let bytes = read_capped(path, caps::IMAGE, "label PNG")?;
    decode_label_png(&bytes, &path.display().to_string())
}

/// Reads and decodes a COCO panoptic id PNG file.
pub fn read_id_png(path: &Path) -> Result<LabelMap> {
    let bytes = read_capped(path, caps::IMAGE, "panoptic PNG")?;
    decode_id_png(&bytes, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth, data: &[u8], palette: bool) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(color);
            enc.set_depth(depth);
            if palette {
                enc.set_palette(vec![0u8; 3 * 16]);
            }
            let mut writer = enc.write_header().unwrap();
            writer.write_image_data(data).unwrap();
        }
        out
    }

    #[test]
    fn grey_indexed_and_rgb_decode_to_ids() {
        let g8 = encode(3, 1, png::ColorType::Grayscale, png::BitDepth::Eight, &[0, 7, 255], false);
        assert_eq!(decode_label_png(&g8, "a.png").unwrap().values, vec![0, 7, 255]);
        let g16 = encode(2, 1, png::ColorType::Grayscale, png::BitDepth::Sixteen, &[1, 44, 0, 255], false);
        assert_eq!(decode_label_png(&g16, "b.png").unwrap().values, vec![300, 255]);
        // 4-bit palette indices, 3 pixels wide: 0x5a, 0x30 -> 5, 10, 3
        let p4 = encode(3, 2, png::ColorType::Indexed, png::BitDepth::Four, &[0x5a, 0x30, 0x12, 0xf0], true);
        assert_eq!(decode_label_png(&p4, "p.png").unwrap().values, vec![5, 10, 3, 1, 2, 15]);
        let rgb = encode(2, 1, png::ColorType::Rgb, png::BitDepth::Eight, &[1, 2, 3, 0, 0, 1], false);
        assert_eq!(decode_id_png(&rgb, "c.png").unwrap().values, vec![1 + 512 + 3 * 65536, 65536]);
        let e = decode_label_png(&rgb, "c.png").unwrap_err().to_string();
        assert!(e.contains("c.png") && e.contains("8-bit RGB PNG is not a label map"), "{e}");
        let e = decode_id_png(&g8, "a.png").unwrap_err().to_string();
        assert!(e.contains("a.png") && e.contains("grey"), "{e}");
        let e = decode_label_png(&g8[..g8.len() - 20], "t.png").unwrap_err().to_string();
        assert!(e.contains("t.png"), "{e}");
    }
}

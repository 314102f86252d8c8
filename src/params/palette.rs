//! Class colours for the `semantic_color` and `overlay` outputs: a palette of 256 distinct colours (ids above
//! 255 wrap around), with per-class overrides from the parameters.
//!
//! - `default`: golden-angle hues (successive ids are far apart on the colour wheel) at three saturation /
//!   value levels, never near black (black is "unlabelled" in the rendered images).
//! - `pascal`: the PASCAL VOC colour map (bit-interleaved RGB; class 0 is black), as in the VOC devkit and
//!   most segmentation toolkits, for pictures comparable with theirs.

use std::collections::BTreeMap;

/// Which built-in palette.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaletteName {
    #[default]
    Default,
    Pascal,
}

impl PaletteName {
    pub const NAMES: [&'static str; 2] = ["default", "pascal"];

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "default" => Some(Self::Default),
            "pascal" | "voc" => Some(Self::Pascal),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Pascal => "pascal",
        }
    }
}

/// Class colours, the overrides applied, and the overlay's blend factor.
#[derive(Debug, Clone, PartialEq)]
pub struct Palette {
    pub name: PaletteName,
    /// Colours that replace the palette's for these class ids.
    pub overrides: BTreeMap<u16, [u8; 3]>,
    /// Weight of the class colour where the overlay blends it over the camera image, in [0, 1].
    pub overlay_alpha: f64,
}

impl Default for Palette {
    fn default() -> Self {
        Palette { name: PaletteName::Default, overrides: BTreeMap::new(), overlay_alpha: 0.5 }
    }
}

impl Palette {
    /// The colour of class `class_id` (what `render::semantic_color` and `render::overlay` take).
    pub fn color(&self, class_id: u16) -> [u8; 3] {
        if let Some(c) = self.overrides.get(&class_id) {
            return *c;
        }
        let i = (class_id % 256) as u8;
        match self.name {
            PaletteName::Default => default_color(i),
            PaletteName::Pascal => pascal_color(i),
        }
    }
}

/// Golden-angle hue `i * 137.5°`, with saturation / value cycling over three levels so neighbours in hue that
/// are 3 ids apart still differ; value at least 0.55, so no colour is near black.
fn default_color(i: u8) -> [u8; 3] {
    let hue = (f64::from(i) * 137.507_764_050_037_85).rem_euclid(360.0);
    let (s, v) = match (i / 3) % 3 {
        0 => (0.90, 1.00),
        1 => (0.65, 0.80),
        _ => (1.00, 0.60),
    };
    hsv_to_rgb(hue, if i.is_multiple_of(3) { s } else { s * 0.85 }, v)
}

fn hsv_to_rgb(h: f64, s: f64, v: f64) -> [u8; 3] {
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0).rem_euclid(2.0) - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let q = |f: f64| ((f + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    [q(r), q(g), q(b)]
}

/// The PASCAL VOC colour map: bits of the id spread over the high bits of r, g, b.
fn pascal_color(i: u8) -> [u8; 3] {
    let (mut r, mut g, mut b) = (0u8, 0u8, 0u8);
    let mut c = i;
    for j in 0..8 {
        r |= (c & 1) << (7 - j);
        g |= ((c >> 1) & 1) << (7 - j);
        b |= ((c >> 2) & 1) << (7 - j);
        c >>= 3;
    }
    [r, g, b]
}

//! The training set of `dinoseg train-head`: images and label PNGs paired by file stem, read and checked.
//!
//! A label map is a greyscale PNG, 8- or 16-bit, one class id per pixel (or an indexed PNG whose palette index is
//! the class id, as PIL and mmseg read VOC-style labels), [`IGNORE`] (255) unlabelled (the convention of mmseg,
//! the DINOv3 evaluation and every common labelling tool's semantic export). A label must have its image's size; a
//! class id >= K other than 255 is an error naming the file, the pixel and the value; colour PNGs are refused (a
//! colour label export must be converted to ids first). The PNG reader is `dinoseg eval`'s
//! ([`crate::eval::label_png`]: no colour conversion, pixel and allocation limits); files are read through
//! [`crate::files`] caps, special files refused.

use crate::error::{Error, Result};
use crate::pipeline::RgbImage;
use crate::runner::inputs::{read_image, IMAGE_EXTENSIONS};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The label value that marks unlabelled pixels (never a class).
pub const IGNORE: u16 = 255;

/// A decoded label map: `height * width` class ids, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    pub height: u32,
    pub width: u32,
    pub ids: Vec<u16>,
}

impl LabelMap {
    /// The largest id that is not [`IGNORE`], if any.
    pub fn max_class(&self) -> Option<u16> {
        self.ids.iter().copied().filter(|&v| v != IGNORE).max()
    }

    /// The first pixel whose id is >= `k` and not [`IGNORE`]: (x, y, value).
    pub fn first_out_of_range(&self, k: usize) -> Option<(u32, u32, u16)> {
        let w = self.width.max(1) as usize;
        self.ids
            .iter()
            .position(|&v| v != IGNORE && usize::from(v) >= k)
            .map(|i| ((i % w) as u32, (i / w) as u32, self.ids[i]))
    }

    /// The map mirrored left to right.
    pub fn flipped(&self) -> LabelMap {
        let w = self.width as usize;
        let mut ids = self.ids.clone();
        if w > 0 {
            for row in ids.chunks_mut(w) {
                row.reverse();
            }
        }
        LabelMap { ids, ..*self }
    }
}

/// Decodes the bytes of a label PNG (`name` names it in errors) with `dinoseg eval`'s reader
/// ([`crate::eval::label_png::decode_label_png`]): 8- or 16-bit grey, or the palette index of an indexed PNG (as
/// PIL / mmseg read it); colour PNGs refused, naming the file and its colour type.
pub fn parse_label_png(bytes: &[u8], name: &str) -> Result<LabelMap> {
    let map = crate::eval::label_png::decode_label_png(bytes, name)?;
    // Grey PNGs hold at most 16 bits and palette indices 8: every value fits u16.
    let ids = map
        .values
        .iter()
        .map(|&v| u16::try_from(v).map_err(|_| Error::Input(format!("{name}: label value {v} exceeds 16 bits"))))
        .collect::<Result<Vec<u16>>>()?;
    Ok(LabelMap { height: map.height, width: map.width, ids })
}

/// Reads a label PNG file (capped, special files refused).
pub fn read_label(path: &Path) -> Result<LabelMap> {
    let bytes = crate::files::read_capped(path, crate::files::caps::IMAGE, "label file")?;
    parse_label_png(&bytes, &path.display().to_string())
}

/// One image and its labels.
pub struct Sample {
    pub image_path: PathBuf,
    pub label_path: PathBuf,
    pub image: RgbImage,
    pub labels: LabelMap,
}

/// The image / label file pairs of two folders, by file stem, sorted by stem. An image without a label (or a
/// label without an image) is an error naming it; two files of one stem in a folder are an error.
pub fn pair_files(images: &Path, labels: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let imgs = by_stem(images, IMAGE_EXTENSIONS)?;
    let labs = by_stem(labels, &["png"])?;
    let mut pairs = Vec::new();
    for (stem, img) in &imgs {
        match labs.get(stem) {
            Some(l) => pairs.push((img.clone(), l.clone())),
            None => {
                return Err(Error::file(
                    img,
                    format!(
                        "no label PNG of stem `{stem}` in {} (labels pair with images by file stem)",
                        labels.display()
                    ),
                ))
            }
        }
    }
    if let Some((stem, l)) = labs.iter().find(|(s, _)| !imgs.contains_key(*s)) {
        return Err(Error::file(l, format!("no image of stem `{stem}` in {}", images.display())));
    }
    if pairs.is_empty() {
        return Err(Error::file(images, "no images (png, jpg, ... files) in this folder"));
    }
    Ok(pairs)
}

/// The files of `dir` with one of `exts` (lower case) by file stem; two files of one stem are an error.
pub(crate) fn by_stem(dir: &Path, exts: &[&str]) -> Result<BTreeMap<String, PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out: BTreeMap<String, PathBuf> = BTreeMap::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        if !ext.is_some_and(|e| exts.contains(&e.as_str())) {
            continue;
        }
        let Some(stem) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else { continue };
        if let Some(old) = out.insert(stem.clone(), path.clone()) {
            return Err(Error::file(&path, format!("two files of stem `{stem}`: also {}", old.display())));
        }
    }
    Ok(out)
}

/// Reads every pair: the image, the label map, and checks that their sizes agree (an error naming both files).
pub fn read_samples(pairs: &[(PathBuf, PathBuf)]) -> Result<Vec<Sample>> {
    read_samples_with(pairs, |_, path| read_label(path))
}

/// [`read_samples`] with another label reader: `read(i, label_path)` gives pair i's label map.
pub fn read_samples_with(
    pairs: &[(PathBuf, PathBuf)],
    mut read: impl FnMut(usize, &Path) -> Result<LabelMap>,
) -> Result<Vec<Sample>> {
    let mut out = Vec::with_capacity(pairs.len());
    for (i, (img_path, lab_path)) in pairs.iter().enumerate() {
        let image = read_image(img_path).map_err(|m| Error::file(img_path, m))?;
        let labels = read(i, lab_path)?;
        if (image.width(), image.height()) != (labels.width, labels.height) {
            return Err(Error::Input(format!(
                "label {} is {}x{} but its image {} is {}x{} (width x height): they must have the same size",
                lab_path.display(),
                labels.width,
                labels.height,
                img_path.display(),
                image.width(),
                image.height()
            )));
        }
        out.push(Sample { image_path: img_path.clone(), label_path: lab_path.clone(), image, labels });
    }
    Ok(out)
}

/// Checks every label id against `k` classes: the first id >= k that is not 255 is an error naming the file,
/// the pixel (x, y) and the value.
pub fn check_classes(samples: &[Sample], k: usize, source: &str) -> Result<()> {
    for s in samples {
        if let Some((x, y, v)) = s.labels.first_out_of_range(k) {
            return Err(Error::file(
                &s.label_path,
                format!(
                    "pixel (x {x}, y {y}) has class id {v}, but there are {k} classes ({source}); ids are 0..{} and \
                     {IGNORE} is ignored",
                    k.saturating_sub(1)
                ),
            ));
        }
    }
    Ok(())
}

/// K when no class list is given: the largest label id + 1 over `samples` (at least 1).
pub fn classes_from_labels(samples: &[Sample]) -> usize {
    samples.iter().filter_map(|s| s.labels.max_class()).max().map_or(1, |m| usize::from(m) + 1)
}

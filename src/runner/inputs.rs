//! What `dinoseg run --input` names: an image file, a folder of images, a glob pattern (`*` and `?` in the file
//! name), or a ROS 2 bag (an `.mcap` file, or a rosbag2 folder holding `metadata.yaml` and `.mcap` files).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Image file extensions read from folders and globs.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "ppm", "pgm", "tif", "tiff", "webp"];

/// A classified `--input`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Image files, sorted by path.
    Images(Vec<PathBuf>),
    /// An MCAP file.
    Bag(PathBuf),
}

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// `*` matches any run of characters, `?` one character.
fn wildcard(pattern: &[char], name: &[char]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some('*'), _) => wildcard(&pattern[1..], name) || (!name.is_empty() && wildcard(pattern, &name[1..])),
        (Some('?'), Some(_)) => wildcard(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => wildcard(&pattern[1..], &name[1..]),
        _ => false,
    }
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    files.sort();
    Ok(files)
}

/// Classifies `--input`.
pub fn classify(input: &str) -> Result<Input> {
    let path = Path::new(input);
    if path.is_file() {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("mcap")) {
            return Ok(Input::Bag(path.to_path_buf()));
        }
        if is_image(path) {
            return Ok(Input::Images(vec![path.to_path_buf()]));
        }
        return Err(Error::Input(format!(
            "{input}: neither an image ({}) nor an .mcap bag",
            IMAGE_EXTENSIONS.join(", ")
        )));
    }
    if path.is_dir() {
        let files = list_dir(path)?;
        let bags: Vec<&PathBuf> = files.iter().filter(|p| p.extension().is_some_and(|e| e == "mcap")).collect();
        if path.join("metadata.yaml").is_file() || (!bags.is_empty() && !files.iter().any(|p| is_image(p))) {
            return match bags.as_slice() {
                [one] => Ok(Input::Bag((*one).clone())),
                [] => Err(Error::Input(format!(
                    "{input}: a rosbag2 folder without an .mcap file (other storage formats are not read)"
                ))),
                _ => Err(Error::Input(format!("{input}: a bag split into {} .mcap files; pass one file", bags.len()))),
            };
        }
        let images: Vec<PathBuf> = files.into_iter().filter(|p| is_image(p)).collect();
        if images.is_empty() {
            return Err(Error::Input(format!("{input}: no images ({}) in this folder", IMAGE_EXTENSIONS.join(", "))));
        }
        return Ok(Input::Images(images));
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if name.contains('*') || name.contains('?') {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let pattern: Vec<char> = name.chars().collect();
        let images: Vec<PathBuf> = list_dir(dir)?
            .into_iter()
            .filter(|p| {
                let n: Vec<char> = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().chars().collect();
                is_image(p) && wildcard(&pattern, &n)
            })
            .collect();
        if images.is_empty() {
            return Err(Error::Input(format!("{input}: no image matches this pattern")));
        }
        return Ok(Input::Images(images));
    }
    Err(Error::Input(format!("{input}: no such file, folder or pattern")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let m = |p: &str, n: &str| wildcard(&p.chars().collect::<Vec<_>>(), &n.chars().collect::<Vec<_>>());
        assert!(m("*.png", "a.png") && m("frame_??.jpg", "frame_01.jpg") && m("*", ""));
        assert!(!m("*.png", "a.jpg") && !m("frame_?.jpg", "frame_01.jpg"));
    }
}

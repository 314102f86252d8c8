//! What `dinoseg run --input` names: an image file, a folder of images, a glob pattern (`*` and `?` in the file
//! name), or a ROS 2 bag (an `.mcap` file, or a rosbag2 folder holding `metadata.yaml` and `.mcap` files).
//!
//! Folders and globs list files by extension ([`IMAGE_EXTENSIONS`], every one decoded by this build); each file
//! is then decoded by its content ([`read_image`]), so a JPEG named `.png` works.

use crate::error::{Error, Result};
use crate::pipeline::RgbImage;
use std::path::{Path, PathBuf};

/// Image file extensions read from folders and globs: each is a format [`crate::pipeline::decode`] decodes.
pub const IMAGE_EXTENSIONS: &[&str] =
    &["png", "jpg", "jpeg", "bmp", "ppm", "pgm", "pbm", "pnm", "pam", "tif", "tiff", "webp"];

/// Reads an image file (a regular file of at most [`crate::files::caps::IMAGE`] bytes, special files refused by
/// type) and decodes it by its content within [`crate::pipeline::decode::image_limits`]. The error does not
/// repeat the path (the caller names the file).
pub fn read_image(file: &Path) -> std::result::Result<RgbImage, String> {
    let shown = file.display().to_string();
    let unprefixed = |m: String| m.strip_prefix(&format!("{shown}: ")).map(str::to_string).unwrap_or(m);
    let bytes = crate::files::read_capped(file, crate::files::caps::IMAGE, "image file").map_err(|e| match e {
        Error::Input(m) => unprefixed(m),
        other => unprefixed(other.to_string()),
    })?;
    crate::pipeline::decode::decode_image_bytes(&bytes, &shown).map_err(|e| unprefixed(e.to_string()))
}

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

/// `*` matches any run of characters, `?` one character. Greedy with one backtrack point (the last `*`): at most
/// `pattern.len() * name.len()` steps, never the exponential backtracking of a recursive matcher
/// (`*a*a*a*a*b` against `aaaa...`).
fn wildcard(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None; // (pattern index after the `*`, name index it resumes at)
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                p += 1;
                star = Some((p, n));
            }
            Some(&c) if c == '?' || Some(&c) == name.get(n) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern.get(p..).is_some_and(|rest| rest.iter().all(|&c| c == '*'))
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
    if let Ok(meta) = std::fs::metadata(path) {
        let kind = crate::files::kind_of(&meta);
        return Err(Error::Input(format!("{input}: an input must be a file, a folder or a pattern, this is {kind}")));
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
        assert!(m("a*b*c", "aXbYc") && m("*?", "x") && !m("*?", "") && m("**", "") && !m("a*", "") && m("?*x", "ax"));
        assert!(m("*ab", "aab") && !m("a*b", "ab_") && m("*.tar.*", "x.tar.gz"));
    }

    #[test]
    fn wildcards_are_linear_not_exponential() {
        // A recursive matcher takes ~C(40, 20) steps here; this one at most 40 x 40.
        let pattern: Vec<char> = format!("{}b", "*a".repeat(20)).chars().collect();
        let name: Vec<char> = "a".repeat(40).chars().collect();
        let t = std::time::Instant::now();
        assert!(!wildcard(&pattern, &name));
        assert!(t.elapsed().as_secs_f64() < 0.5, "{:?}", t.elapsed());
    }

    #[test]
    fn every_listed_extension_decodes_by_content() {
        let dir = std::env::temp_dir().join(format!("dinoseg-inputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = image::RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 80, 7]));
        for ext in IMAGE_EXTENSIONS {
            let format = match *ext {
                "pgm" | "pbm" | "pnm" | "pam" | "ppm" => image::ImageFormat::Pnm,
                other => image::ImageFormat::from_extension(other).unwrap(),
            };
            let path = dir.join(format!("x.{ext}"));
            let grey = matches!(*ext, "pgm" | "pbm");
            let written = if grey {
                image::DynamicImage::ImageLuma8(image::imageops::grayscale(&img)).save_with_format(&path, format)
            } else {
                img.save_with_format(&path, format)
            };
            written.unwrap_or_else(|e| panic!("{ext}: {e}"));
            let got = read_image(&path).unwrap_or_else(|e| panic!("{ext}: {e}"));
            assert_eq!(got.dimensions(), (5, 3), "{ext}");
        }
        // By content: a JPEG named .png decodes, a text file named .png is refused naming its first bytes.
        let jpeg_as_png = dir.join("photo.png");
        img.save_with_format(&jpeg_as_png, image::ImageFormat::Jpeg).unwrap();
        assert_eq!(read_image(&jpeg_as_png).unwrap().dimensions(), (5, 3));
        std::fs::write(dir.join("text.png"), b"hello").unwrap();
        let e = read_image(&dir.join("text.png")).unwrap_err();
        assert!(e.starts_with("not an image") && e.contains("68 65 6c 6c 6f"), "{e}");
        let e = read_image(Path::new("/dev/zero")).unwrap_err();
        assert!(e.contains("character device"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

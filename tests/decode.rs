//! Decoding of every ROS image encoding against independently computed pixels, and of malformed frames.

use dinoseg::pipeline::decode::{decode_compressed, decode_image, CompressedFrame, DecodeError, Encoding, ImageFrame};

/// A small RGB test image with distinct values per pixel and channel.
fn rgb_at(x: usize, y: usize) -> [u8; 3] {
    [((x * 37 + y * 11 + 3) % 256) as u8, ((x * 13 + y * 71 + 50) % 256) as u8, ((x * 101 + y * 29 + 200) % 256) as u8]
}

fn expected_rgb(w: usize, h: usize, f: impl Fn(usize, usize) -> [u8; 3]) -> Vec<u8> {
    let f = &f;
    (0..h).flat_map(|y| (0..w).flat_map(move |x| f(x, y))).collect::<Vec<u8>>()
}

/// Packs rows of `w` pixels produced by `px` into a buffer with `step` bytes per row; padding bytes are 0xAB.
fn pack(w: usize, h: usize, step: usize, px: impl Fn(usize, usize) -> Vec<u8>) -> Vec<u8> {
    let mut data = vec![0xABu8; step * h];
    for y in 0..h {
        let row: Vec<u8> = (0..w).flat_map(|x| px(x, y)).collect();
        assert!(row.len() <= step, "test bug: row longer than step");
        data[y * step..y * step + row.len()].copy_from_slice(&row);
    }
    data
}

fn decode(w: usize, h: usize, step: usize, encoding: &str, big: bool, data: &[u8]) -> Vec<u8> {
    let frame = ImageFrame { height: h as u32, width: w as u32, encoding, is_bigendian: big, step: step as u32, data };
    let img = decode_image(&frame).unwrap_or_else(|e| panic!("{encoding} {w}x{h}: {e}"));
    assert_eq!((img.width(), img.height()), (w as u32, h as u32));
    img.into_raw()
}

/// Checks a channel-order encoding on 6x4 and 7x5 with 5 bytes of row padding.
fn check_packed(encoding: &str, bpp: usize, px: impl Fn([u8; 3]) -> Vec<u8>) {
    for (w, h) in [(6, 4), (7, 5)] {
        let step = w * bpp + 5;
        let data = pack(w, h, step, |x, y| px(rgb_at(x, y)));
        assert_eq!(decode(w, h, step, encoding, false, &data), expected_rgb(w, h, rgb_at), "{encoding} {w}x{h}");
    }
}

#[test]
fn rgb8() {
    check_packed("rgb8", 3, |p| p.to_vec());
}

#[test]
fn bgr8() {
    check_packed("bgr8", 3, |[r, g, b]| vec![b, g, r]);
}

#[test]
fn rgba8() {
    check_packed("rgba8", 4, |[r, g, b]| vec![r, g, b, 77]);
}

#[test]
fn bgra8() {
    check_packed("bgra8", 4, |[r, g, b]| vec![b, g, r, 77]);
}

#[test]
fn mono8() {
    let grey = |x: usize, y: usize| rgb_at(x, y)[1];
    for (w, h) in [(6, 4), (7, 5)] {
        let step = w + 3;
        let data = pack(w, h, step, |x, y| vec![grey(x, y)]);
        let want = expected_rgb(w, h, |x, y| [grey(x, y); 3]);
        assert_eq!(decode(w, h, step, "mono8", false, &data), want);
    }
}

#[test]
fn mono16_little_and_big_endian() {
    // 16-bit value = high byte (the expected 8-bit grey) * 256 + a low byte that must be dropped.
    let value = |x: usize, y: usize| u16::from(rgb_at(x, y)[0]) * 256 + rgb_at(x, y)[2] as u16;
    for (w, h) in [(6, 4), (7, 5)] {
        let step = w * 2 + 4;
        let want = expected_rgb(w, h, |x, y| [(value(x, y) >> 8) as u8; 3]);
        let le = pack(w, h, step, |x, y| value(x, y).to_le_bytes().to_vec());
        assert_eq!(decode(w, h, step, "mono16", false, &le), want, "little endian {w}x{h}");
        let be = pack(w, h, step, |x, y| value(x, y).to_be_bytes().to_vec());
        assert_eq!(decode(w, h, step, "mono16", true, &be), want, "big endian {w}x{h}");
    }
}

/// Independent float BT.601 limited-range reference (the textbook coefficients, not the Q20 constants).
fn yuv_reference(y: u8, u: u8, v: u8) -> [f64; 3] {
    let (c, d, e) = (f64::from(y) - 16.0, f64::from(u) - 128.0, f64::from(v) - 128.0);
    let c = c.max(0.0);
    [1.164 * c + 1.596 * e, 1.164 * c - 0.391 * d - 0.813 * e, 1.164 * c + 2.018 * d].map(|v| v.clamp(0.0, 255.0))
}

fn yuv_sample(x: usize, y: usize) -> (u8, u8, u8) {
    // Y per pixel, U and V per pair of pixels.
    let yy = (16 + (x * 29 + y * 53) % 220) as u8;
    let u = (20 + ((x / 2) * 67 + y * 31) % 216) as u8;
    let v = (20 + ((x / 2) * 43 + y * 97 + 60) % 216) as u8;
    (yy, u, v)
}

fn check_yuv(encoding: &str, order: impl Fn(u8, u8, u8, u8) -> [u8; 4]) {
    let (w, h) = (6, 4);
    let step = w * 2 + 6;
    let data = pack(w / 2, h, step, |mx, y| {
        let (y0, u, v) = yuv_sample(2 * mx, y);
        let (y1, _, _) = yuv_sample(2 * mx + 1, y);
        order(y0, u, y1, v).to_vec()
    });
    let got = decode(w, h, step, encoding, false, &data);
    for y in 0..h {
        for x in 0..w {
            let (yy, u, v) = yuv_sample(x, y);
            let want = yuv_reference(yy, u, v);
            for c in 0..3 {
                let g = f64::from(got[(y * w + x) * 3 + c]);
                assert!((g - want[c]).abs() <= 1.5, "{encoding} ({x},{y}) channel {c}: got {g}, want {:.2}", want[c]);
            }
        }
    }
    // Known values: mid grey, video black and white, and BT.601 primaries (Y, U, V) -> RGB.
    for ((yy, u, v), rgb) in [
        ((128, 128, 128), [130, 130, 130]),
        ((16, 128, 128), [0, 0, 0]),
        ((235, 128, 128), [255, 255, 255]),
        ((81, 90, 240), [255, 0, 0]),
        ((145, 54, 34), [0, 255, 0]),
        ((41, 240, 110), [0, 0, 255]),
    ] {
        let data = order(yy, u, yy, v);
        let got = decode(2, 1, 4, encoding, false, &data);
        for c in 0..3 {
            let d = (i32::from(got[c]) - rgb[c]).abs();
            assert!(d <= 2, "{encoding} YUV ({yy},{u},{v}) -> {got:?}, want {rgb:?}");
        }
        assert_eq!(got[..3], got[3..], "both pixels of a pair share U and V");
    }
}

#[test]
fn yuv422_is_uyvy() {
    check_yuv("yuv422", |y0, u, y1, v| [u, y0, v, y1]);
    check_yuv("uyvy", |y0, u, y1, v| [u, y0, v, y1]);
}

#[test]
fn yuv422_yuy2_is_yuyv() {
    check_yuv("yuv422_yuy2", |y0, u, y1, v| [y0, u, y1, v]);
    check_yuv("yuyv", |y0, u, y1, v| [y0, u, y1, v]);
}

/// Colour (0 R, 1 G, 2 B) of the mosaic at (x, y) for a ROS pattern name (top-left 2x2 tile).
fn bayer_colour(pattern: &str, x: usize, y: usize) -> usize {
    let tile: &[u8] = pattern.as_bytes();
    let ch = tile[(y % 2) * 2 + (x % 2)];
    match ch {
        b'r' => 0,
        b'g' => 1,
        _ => 2,
    }
}

fn mosaic(pattern: &str, w: usize, h: usize, step: usize, f: impl Fn(usize, usize) -> [u8; 3]) -> Vec<u8> {
    pack(w, h, step, |x, y| vec![f(x, y)[bayer_colour(pattern, x, y)]])
}

/// Independent formulation of bilinear demosaicing: a pixel keeps its own colour; every other colour is the rounded
/// mean of the samples of that colour in its 3x3 window, with reflect-101 borders.
fn demosaic_reference(pattern: &str, w: usize, h: usize, f: impl Fn(usize, usize) -> [u8; 3]) -> Vec<u8> {
    let refl = |i: isize, n: usize| -> usize {
        if i < 0 {
            (-i) as usize
        } else if i as usize >= n {
            2 * (n - 1) - i as usize
        } else {
            i as usize
        }
    };
    expected_rgb(w, h, |x, y| {
        let own = bayer_colour(pattern, x, y);
        let mut out = [0u8; 3];
        for (c, o) in out.iter_mut().enumerate() {
            if c == own {
                *o = f(x, y)[c];
                continue;
            }
            let (mut sum, mut n) = (0u32, 0u32);
            for dy in -1..=1isize {
                for dx in -1..=1isize {
                    let (sx, sy) = (refl(x as isize + dx, w), refl(y as isize + dy, h));
                    if bayer_colour(pattern, sx, sy) == c {
                        sum += u32::from(f(sx, sy)[c]);
                        n += 1;
                    }
                }
            }
            *o = ((sum + n / 2) / n) as u8;
        }
        out
    })
}

fn check_bayer(pattern: &str) {
    let encoding = format!("bayer_{pattern}8");
    for (w, h) in [(6, 4), (7, 5), (2, 2), (3, 2)] {
        let step = w + 3;
        // A constant colour must come back exactly everywhere, borders included.
        let flat = |_: usize, _: usize| [200u8, 100, 30];
        let data = mosaic(pattern, w, h, step, flat);
        assert_eq!(decode(w, h, step, &encoding, false, &data), expected_rgb(w, h, flat), "{encoding} {w}x{h} flat");
        // A varied image must match the independent bilinear reference exactly.
        let data = mosaic(pattern, w, h, step, rgb_at);
        let want = demosaic_reference(pattern, w, h, rgb_at);
        assert_eq!(decode(w, h, step, &encoding, false, &data), want, "{encoding} {w}x{h} varied");
    }
}

#[test]
fn bayer_rggb8() {
    check_bayer("rggb");
}

#[test]
fn bayer_bggr8() {
    check_bayer("bggr");
}

#[test]
fn bayer_gbrg8() {
    check_bayer("gbrg");
}

#[test]
fn bayer_grbg8() {
    check_bayer("grbg");
}

fn smooth(x: usize, y: usize) -> [u8; 3] {
    [(x * 8 + 20) as u8, (y * 10 + 40) as u8, (200 - x * 4 - y * 3) as u8]
}

#[test]
fn jpeg_decodes_to_rgb_whatever_the_format_prefix() {
    let (w, h) = (16u32, 12u32);
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(smooth(x as usize, y as usize)));
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 100).encode_image(&img).expect("encode jpeg");
    for format in ["jpeg", "bgr8; jpeg compressed bgr8", "rgb8; jpeg compressed bgr8", ""] {
        let got = decode_compressed(&CompressedFrame { format, data: &bytes }).expect("decode jpeg");
        assert_eq!(got.dimensions(), (w, h));
        let max_diff = got.as_raw().iter().zip(img.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
        assert!(max_diff <= 6, "format `{format}`: jpeg max abs diff {max_diff}");
    }
}

#[test]
fn png_decodes_exactly() {
    let (w, h) = (7u32, 5u32);
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(rgb_at(x as usize, y as usize)));
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).expect("encode png");
    // The magic bytes win over a wrong hint.
    for format in ["png", "rgb8; compressed png", "bgr8; compressed png", "jpeg"] {
        let got = decode_compressed(&CompressedFrame { format, data: &bytes }).expect("decode png");
        assert_eq!(got, img, "format `{format}`");
    }
    // A grey PNG becomes RGB with equal channels.
    let grey = image::GrayImage::from_fn(w, h, |x, y| image::Luma([rgb_at(x as usize, y as usize)[0]]));
    let mut bytes = Vec::new();
    grey.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).expect("encode grey png");
    let got =
        decode_compressed(&CompressedFrame { format: "mono8; png compressed mono8", data: &bytes }).expect("grey");
    for (p, g) in got.pixels().zip(grey.pixels()) {
        assert_eq!(p.0, [g.0[0]; 3]);
    }
}

// ---- malformed input: each names the specific problem ----

fn err(w: u32, h: u32, step: u32, encoding: &str, data: &[u8]) -> DecodeError {
    let frame = ImageFrame { height: h, width: w, encoding, is_bigendian: false, step, data };
    match decode_image(&frame) {
        Ok(_) => panic!("{encoding} {w}x{h} step {step} with {} bytes decoded but must fail", data.len()),
        Err(e) => e,
    }
}

#[test]
fn rejects_data_shorter_than_step_times_height() {
    let e = err(6, 4, 20, "rgb8", &[0u8; 79]);
    assert!(matches!(e, DecodeError::DataTooShort { len: 79, needed: 80, .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("79") && msg.contains("80") && msg.contains("too short"), "{msg}");
    // Exactly step * height is fine, and so is more.
    let frame = ImageFrame { height: 4, width: 6, encoding: "rgb8", is_bigendian: false, step: 20, data: &[0u8; 81] };
    assert!(decode_image(&frame).is_ok());
}

#[test]
fn rejects_step_smaller_than_a_row() {
    let e = err(6, 4, 17, "rgb8", &[0u8; 200]);
    assert!(matches!(e, DecodeError::StepTooSmall { step: 17, min_step: 18, .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("step 17") && msg.contains("18"), "{msg}");
}

#[test]
fn rejects_zero_width_and_zero_height() {
    let e = err(0, 4, 0, "rgb8", &[]);
    assert!(matches!(e, DecodeError::ZeroSize { width: 0, height: 4 }), "{e:?}");
    assert!(e.to_string().contains("zero size"), "{e}");
    let e = err(6, 0, 18, "mono8", &[]);
    assert!(matches!(e, DecodeError::ZeroSize { width: 6, height: 0 }), "{e:?}");
}

#[test]
fn rejects_unknown_encoding() {
    for enc in ["16UC1", "hsv8", "", "bayer_rggb16"] {
        let e = err(2, 2, 6, enc, &[0u8; 12]);
        assert!(matches!(&e, DecodeError::UnknownEncoding { encoding } if encoding == enc), "{e:?}");
        assert!(e.to_string().contains(&format!("`{enc}`")), "{e}");
    }
    assert_eq!(Encoding::parse("YUV422").ok(), Some(Encoding::Uyvy));
}

#[test]
fn rejects_odd_width_yuv422() {
    for enc in ["yuv422", "yuv422_yuy2"] {
        let e = err(7, 2, 14, enc, &[0u8; 28]);
        assert!(matches!(e, DecodeError::OddWidth { width: 7, .. }), "{e:?}");
        assert!(e.to_string().contains("odd width"), "{e}");
    }
}

#[test]
fn rejects_bayer_thinner_than_two() {
    let e = err(1, 4, 1, "bayer_rggb8", &[0u8; 4]);
    assert!(matches!(e, DecodeError::TooSmallForBayer { width: 1, height: 4 }), "{e:?}");
}

#[test]
fn huge_dimensions_fail_cleanly_without_allocating() {
    // One row of rgba8 at this width is 4 * (2^32 - 1) bytes: no u32 step can hold it.
    let e = err(u32::MAX, u32::MAX, u32::MAX, "rgba8", &[0u8; 16]);
    assert!(matches!(e, DecodeError::StepTooSmall { min_step: 17_179_869_180, .. }), "{e:?}");
    // step * height = (2^32 - 1)^2 overflows u32 (and usize on 32-bit targets); it is computed in u64.
    let e = err(u32::MAX, u32::MAX, u32::MAX, "mono8", &[0u8; 16]);
    assert!(matches!(e, DecodeError::DataTooShort { len: 16, needed: 18_446_744_065_119_617_025, .. }), "{e:?}");
    assert!(e.to_string().contains("18446744065119617025"), "{e}");
}

fn compressed_err(format: &str, data: &[u8]) -> DecodeError {
    match decode_compressed(&CompressedFrame { format, data }) {
        Ok(img) => panic!("format `{format}` with {} bytes decoded to {:?}", data.len(), img.dimensions()),
        Err(e) => e,
    }
}

#[test]
fn rejects_corrupt_jpeg() {
    let img = image::RgbImage::from_fn(32, 32, |x, y| image::Rgb(smooth(x as usize / 2, y as usize / 3)));
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&img).expect("encode");
    // Truncated inside the headers.
    let e = compressed_err("jpeg", &bytes[..40]);
    assert!(matches!(e, DecodeError::Compressed { codec: "jpeg", len: 40, .. }), "{e:?}");
    assert!(e.to_string().contains("corrupt jpeg"), "{e}");
    // JPEG magic followed by garbage.
    let mut garbage = vec![0xFF, 0xD8, 0xFF];
    garbage.extend((0..200u32).map(|i| (i * 7 + 3) as u8));
    let e = compressed_err("bgr8; jpeg compressed bgr8", &garbage);
    assert!(matches!(e, DecodeError::Compressed { codec: "jpeg", .. }), "{e:?}");
}

#[test]
fn rejects_corrupt_png() {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend([0u8, 0, 0, 13, b'I', b'H', b'D', b'R', 1, 2, 3]);
    let e = compressed_err("png", &bytes);
    assert!(matches!(e, DecodeError::Compressed { codec: "png", .. }), "{e:?}");
}

#[test]
fn rejects_empty_compressed_data() {
    let e = compressed_err("jpeg", &[]);
    assert!(matches!(&e, DecodeError::EmptyCompressed { format } if format == "jpeg"), "{e:?}");
    assert!(e.to_string().contains("no data"), "{e}");
}

#[test]
fn rejects_unknown_compressed_format() {
    let e = compressed_err("webp", b"RIFF\0\0\0\0WEBP");
    assert!(matches!(e, DecodeError::UnsupportedCompressedFormat { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("`webp`") && msg.contains("52 49 46 46"), "{msg}");
    // compressedDepth payloads are not colour images.
    let e = compressed_err("16UC1; compressedDepth png", b"\0\0\0\0\0\0\0\0\0\0\0\0\x89PNG");
    assert!(matches!(e, DecodeError::UnsupportedCompressedFormat { .. }), "{e:?}");
}

/// Every encoding over many sizes, steps and truncations: decoding either succeeds with the right size or errors.
#[test]
fn never_panics_on_arbitrary_frames() {
    let encodings = [
        "rgb8",
        "bgr8",
        "rgba8",
        "bgra8",
        "mono8",
        "mono16",
        "yuv422",
        "yuv422_yuy2",
        "bayer_rggb8",
        "bayer_bggr8",
        "bayer_gbrg8",
        "bayer_grbg8",
    ];
    let mut seed = 0x1234_5678u32;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let pool: Vec<u8> = (0..4096).map(|_| next() as u8).collect();
    for enc in encodings {
        for w in 0..6u32 {
            for h in 0..5u32 {
                for step in [0, w, 2 * w, 3 * w, 4 * w + 1, 13] {
                    for len in [0usize, 1, (step * h) as usize / 2, (step * h) as usize, 300] {
                        let frame = ImageFrame {
                            height: h,
                            width: w,
                            encoding: enc,
                            is_bigendian: next() % 2 == 0,
                            step,
                            data: &pool[..len],
                        };
                        if let Ok(img) = decode_image(&frame) {
                            assert_eq!(img.as_raw().len(), (w * h * 3) as usize);
                        }
                    }
                }
            }
        }
    }
    for len in [1, 2, 3, 8, 64, 1000] {
        for prefix in [&b"\xFF\xD8\xFF"[..], b"\x89PNG\r\n\x1a\n", b""] {
            let mut data = prefix.to_vec();
            data.extend_from_slice(&pool[..len]);
            for format in ["jpeg", "png", "x"] {
                let _ = decode_compressed(&CompressedFrame { format, data: &data });
            }
        }
    }
}

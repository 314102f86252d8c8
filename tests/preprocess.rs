//! Resize policy geometry, normalisation values, padding, the way back (Letterbox) and output kinds, on CPU.

use dinoseg::pipeline::preprocess::{
    preprocess, preprocess_batch, Letterbox, Normalization, PadMode, PreprocessError, Resize, ResizePolicy,
};
use image::RgbImage;
use tch::{Device, Kind, Tensor};

fn plan(policy: ResizePolicy, h: u32, w: u32) -> (u32, u32, u32, u32) {
    let lb = policy.plan(h, w).expect("plan");
    (lb.resized_h, lb.resized_w, lb.padded_h, lb.padded_w)
}

#[test]
fn policy_numbers() {
    // (height, width) throughout.
    assert_eq!(plan(ResizePolicy::short_side(480), 480, 640), (480, 640, 480, 640));
    assert_eq!(plan(ResizePolicy::keep(), 480, 640), (480, 640, 480, 640));
    assert_eq!(plan(ResizePolicy::keep(), 479, 641), (479, 641, 480, 656));
    // torchvision's rule: long = floor(224 * 640 / 480) = 298, padded to 304.
    assert_eq!(plan(ResizePolicy::short_side(224), 480, 640), (224, 298, 224, 304));
    assert_eq!(plan(ResizePolicy::short_side(224), 640, 480), (298, 224, 304, 224));
    // Upscaling works the same way.
    assert_eq!(plan(ResizePolicy::short_side(512), 240, 320), (512, 682, 512, 688));
    // max_long_side caps the long side, the short side follows: floor(512 * 480 / 1280) = 192.
    assert_eq!(plan(ResizePolicy::short_side(480).with_max_long_side(512), 480, 1280), (192, 512, 192, 512));
    assert_eq!(plan(ResizePolicy::keep().with_max_long_side(320), 480, 640), (240, 320, 240, 320));
    assert_eq!(plan(ResizePolicy::keep().with_max_long_side(1000), 480, 640), (480, 640, 480, 640));
    // Stretch rounds each side to the nearest multiple instead of padding.
    assert_eq!(plan(ResizePolicy::keep().with_pad(PadMode::Stretch), 479, 641), (480, 640, 480, 640));
    assert_eq!(plan(ResizePolicy::keep().with_pad(PadMode::Stretch), 5, 9), (16, 16, 16, 16));
    // Fixed stretches and ignores max_long_side; multiple 32 for ConvNeXt.
    assert_eq!(plan(ResizePolicy::fixed(100, 200).with_max_long_side(50), 480, 640), (100, 200, 112, 208));
    assert_eq!(plan(ResizePolicy::fixed(100, 200).with_multiple(32), 480, 640), (100, 200, 128, 224));
    assert_eq!(plan(ResizePolicy::keep().with_multiple(1), 7, 5), (7, 5, 7, 5));
    let lb = ResizePolicy::short_side(224).plan(480, 640).expect("plan");
    assert_eq!((lb.scale_y, lb.scale_x), (224.0 / 480.0, 298.0 / 640.0));
}

#[test]
fn policy_errors() {
    let e = ResizePolicy::keep().plan(0, 640).unwrap_err();
    assert!(matches!(e, PreprocessError::ZeroSize { height: 0, width: 640 }), "{e:?}");
    let e = ResizePolicy::keep().with_multiple(0).plan(10, 10).unwrap_err();
    assert!(matches!(e, PreprocessError::InvalidPolicy { .. }) && e.to_string().contains("multiple"), "{e}");
    let e = ResizePolicy::short_side(0).plan(10, 10).unwrap_err();
    assert!(e.to_string().contains("short side"), "{e}");
    let e = ResizePolicy { resize: Resize::Fixed { height: 0, width: 3 }, ..ResizePolicy::default() }
        .plan(10, 10)
        .unwrap_err();
    assert!(e.to_string().contains("0x3"), "{e}");
}

fn constant(h: u32, w: u32, rgb: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(w, h, image::Rgb(rgb))
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1)).expect("to vec")
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

#[test]
fn normalisation_is_exact_and_padding_is_zero() {
    let rgb = [200u8, 100, 30];
    for norm in [Normalization::IMAGENET, Normalization::SAT493M] {
        let img = constant(21, 35, rgb);
        let (x, lb) = preprocess(&img, &ResizePolicy::keep(), &norm, Device::Cpu, Kind::Float).expect("pre");
        assert_eq!(x.size(), [1, 3, 32, 48]);
        assert_eq!(x.kind(), Kind::Float);
        assert_eq!((lb.padded_h, lb.padded_w, lb.resized_h, lb.resized_w), (32, 48, 21, 35));
        for (c, &v) in rgb.iter().enumerate() {
            let want = (f64::from(v) / 255.0 - f64::from(norm.mean[c])) / f64::from(norm.std[c]);
            let valid = x.get(0).get(c as i64).narrow(0, 0, 21).narrow(1, 0, 35);
            let err = max_abs(&(valid - want));
            assert!(err < 1e-5, "channel {c}: max error {err} from {want}");
        }
        assert_eq!(max_abs(&x.narrow(2, 21, 11)), 0.0, "bottom padding must be zero");
        assert_eq!(max_abs(&x.narrow(3, 35, 13)), 0.0, "right padding must be zero");
    }
    // The published constants.
    assert_eq!(Normalization::IMAGENET.mean, [0.485, 0.456, 0.406]);
    assert_eq!(Normalization::IMAGENET.std, [0.229, 0.224, 0.225]);
    assert_eq!(Normalization::SAT493M.mean, [0.430, 0.411, 0.296]);
    assert_eq!(Normalization::SAT493M.std, [0.213, 0.156, 0.143]);
}

#[test]
fn resizing_keeps_a_constant_image_constant_both_ways() {
    let rgb = [10u8, 128, 250];
    let norm = Normalization::IMAGENET;
    for policy in [ResizePolicy::short_side(224), ResizePolicy::short_side(600)] {
        let (x, lb) = preprocess(&constant(480, 640, rgb), &policy, &norm, Device::Cpu, Kind::Float).expect("pre");
        let (rh, rw) = (i64::from(lb.resized_h), i64::from(lb.resized_w));
        assert_eq!(x.size(), [1, 3, i64::from(lb.padded_h), i64::from(lb.padded_w)]);
        for (c, &v) in rgb.iter().enumerate() {
            let want = (f64::from(v) / 255.0 - f64::from(norm.mean[c])) / f64::from(norm.std[c]);
            let valid = x.get(0).get(c as i64).narrow(0, 0, rh).narrow(1, 0, rw);
            assert!(max_abs(&(valid - want)) < 1e-4, "{policy:?} channel {c}");
        }
    }
}

#[test]
fn downscaling_is_antialiased() {
    // A one-pixel checkerboard shrunk 3x: antialiasing averages it to mid grey (41/81 or 40/81 with the triangle
    // filter); plain bilinear samples single pixels (0 or 1).
    let img = RgbImage::from_fn(48, 48, |x, y| image::Rgb([if (x + y) % 2 == 0 { 255 } else { 0 }; 3]));
    let norm = Normalization { mean: [0.0; 3], std: [1.0; 3] };
    let (x, _) = preprocess(&img, &ResizePolicy::short_side(16), &norm, Device::Cpu, Kind::Float).expect("pre");
    assert_eq!(x.size(), [1, 3, 16, 16]);
    let err = max_abs(&(x - 0.5));
    assert!(err < 0.02, "antialiased 4x downscale of a checkerboard should be ~0.5 everywhere, max error {err}");
}

#[test]
fn letterbox_round_trip_reproduces_the_input() {
    let img = RgbImage::from_fn(50, 37, |x, y| image::Rgb([(x * 5) as u8, (y * 6) as u8, ((x + y) * 3) as u8]));
    let norm = Normalization::IMAGENET;
    let (x, lb) = preprocess(&img, &ResizePolicy::keep(), &norm, Device::Cpu, Kind::Float).expect("pre");
    assert_eq!(x.size(), [1, 3, 48, 64]);
    let back = lb.crop_and_resize_back(&x).expect("back");
    assert_eq!(back.size(), [1, 3, 37, 50]);
    let (a, b) = norm.affine();
    let bytes = Tensor::from_slice(img.as_raw()).view([37, 50, 3]).permute([2, 0, 1]).to_kind(Kind::Float);
    let want = bytes * Tensor::from_slice(&a).view([3, 1, 1]) + Tensor::from_slice(&b).view([3, 1, 1]);
    let err = max_abs(&(back.get(0) - want));
    assert!(err < 1e-5, "round trip max error {err}");
}

/// A map that covers the padded canvas at stride `s` and holds, per cell, the input-image x (or y) coordinate of the
/// cell centre. Sampled back at input pixel i it must give i + 0.5 exactly (bilinear reproduces linear functions).
fn coordinate_map(lb: &Letterbox, stride: i64, axis_x: bool) -> Tensor {
    let (h, w) = (i64::from(lb.padded_h) / stride, i64::from(lb.padded_w) / stride);
    let (n, scale) = if axis_x { (w, lb.scale_x) } else { (h, lb.scale_y) };
    let coords: Vec<f32> = (0..n).map(|j| ((j as f64 + 0.5) * stride as f64 / scale) as f32).collect();
    let line = Tensor::from_slice(&coords);
    let map = if axis_x {
        line.view([1, 1, 1, w]).expand([1, 2, h, w], false)
    } else {
        line.view([1, 1, h, 1]).expand([1, 2, h, w], false)
    };
    map.contiguous()
}

#[test]
fn crop_and_resize_back_maps_strided_maps_to_the_right_pixels() {
    // 480x640 -> 224x298, padded 224x304: at stride 16 the image covers 18.625 of 19 columns.
    for (policy, h, w) in [
        (ResizePolicy::short_side(224), 480u32, 640u32),
        (ResizePolicy::keep(), 479, 641),
        (ResizePolicy::short_side(720), 240, 320),
    ] {
        let lb = policy.plan(h, w).expect("plan");
        for stride in [1i64, 4, 16] {
            for axis_x in [true, false] {
                let back = lb.crop_and_resize_back(&coordinate_map(&lb, stride, axis_x)).expect("back");
                assert_eq!(back.size(), [1, 2, i64::from(h), i64::from(w)]);
                let n = if axis_x { w } else { h };
                // Away from the borders (where bilinear clamps), the sampled coordinate is the pixel centre.
                let margin = (stride as f64 / lb.scale_x.min(lb.scale_y)).ceil() as i64 + 1;
                let got = back.get(0).get(1);
                let line = if axis_x { got.get(i64::from(h) / 2) } else { got.select(1, i64::from(w) / 2) };
                let vals = to_vec(&line);
                for i in margin..i64::from(n) - margin {
                    let g = f64::from(vals[i as usize]);
                    assert!(
                        (g - (i as f64 + 0.5)).abs() < 1e-2,
                        "{policy:?} stride {stride} x {axis_x} pixel {i}: {g}"
                    );
                }
            }
        }
    }
}

#[test]
fn letterbox_coordinates() {
    let lb = ResizePolicy::short_side(224).plan(480, 640).expect("plan");
    let (y, x) = lb.to_input(224.0, 298.0);
    assert!((y - 480.0).abs() < 1e-9 && (x - 640.0).abs() < 1e-9, "({y}, {x})");
    let (y, x) = lb.to_model(240.0, 320.0);
    assert!((y - 112.0).abs() < 1e-9 && (x - 149.0).abs() < 1e-9, "({y}, {x})");
    let e = lb.crop_and_resize_back(&Tensor::zeros([3, 14, 19], (Kind::Float, Device::Cpu))).unwrap_err();
    assert!(matches!(e, PreprocessError::BadShape { .. }) && e.to_string().contains("[3, 14, 19]"), "{e}");
}

#[test]
fn half_and_bfloat16_on_cpu() {
    let img = RgbImage::from_fn(41, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 90]));
    let policy = ResizePolicy::short_side(24);
    let norm = Normalization::IMAGENET;
    let (f, _) = preprocess(&img, &policy, &norm, Device::Cpu, Kind::Float).expect("float");
    for (kind, tol) in [(Kind::Half, 1e-2), (Kind::BFloat16, 4e-2)] {
        let (x, lb) = preprocess(&img, &policy, &norm, Device::Cpu, kind).expect("half");
        assert_eq!(x.kind(), kind);
        assert_eq!(x.size(), f.size());
        let err = max_abs(&(x.to_kind(Kind::Float) - &f));
        assert!(err < tol, "{kind:?} differs from float by {err}");
        let back = lb.crop_and_resize_back(&x).expect("back in reduced precision");
        assert_eq!(back.size(), [1, 3, 30, 41]);
    }
    let e = preprocess(&img, &policy, &norm, Device::Cpu, Kind::Uint8).unwrap_err();
    assert!(matches!(e, PreprocessError::UnsupportedKind { kind: Kind::Uint8 }), "{e:?}");
}

#[test]
fn batches() {
    let norm = Normalization::IMAGENET;
    let policy = ResizePolicy::short_side(32);
    let a = constant(48, 64, [1, 2, 3]);
    let b = constant(48, 64, [250, 200, 100]);
    let (x, boxes) = preprocess_batch(&[&a, &b], &policy, &norm, Device::Cpu, Kind::Float).expect("batch");
    assert_eq!(x.size(), [2, 3, 32, 48]);
    assert_eq!(boxes.len(), 2);
    let (xb, _) = preprocess(&b, &policy, &norm, Device::Cpu, Kind::Float).expect("single");
    assert_eq!(max_abs(&(x.get(1) - xb.get(0))), 0.0);
    let c = constant(100, 64, [0, 0, 0]);
    let e = preprocess_batch(&[&a, &b, &c], &policy, &norm, Device::Cpu, Kind::Float).unwrap_err();
    assert!(matches!(e, PreprocessError::BatchSizeMismatch { index: 2, .. }), "{e:?}");
    assert!(e.to_string().contains("batch image 2"), "{e}");
    let e = preprocess_batch(&[], &policy, &norm, Device::Cpu, Kind::Float).unwrap_err();
    assert!(matches!(e, PreprocessError::EmptyBatch), "{e:?}");
}

/// On a machine with CUDA: the same numbers on the GPU (uint8 upload, then resize/normalise/pad there) in every kind.
#[test]
fn cuda_matches_cpu_when_available() {
    if !tch::Cuda::is_available() {
        eprintln!("CUDA not available: cuda_matches_cpu_when_available checks nothing here");
        return;
    }
    let dev = Device::Cuda(0);
    let img = RgbImage::from_fn(640, 480, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x ^ y) % 256) as u8]));
    let norm = Normalization::IMAGENET;
    for policy in [ResizePolicy::keep(), ResizePolicy::short_side(224), ResizePolicy::short_side(600)] {
        let (cpu, lb) = preprocess(&img, &policy, &norm, Device::Cpu, Kind::Float).expect("cpu");
        let cpu_back = lb.crop_and_resize_back(&cpu.narrow(2, 0, cpu.size()[2])).expect("cpu back");
        for (kind, tol) in [(Kind::Float, 1e-3), (Kind::Half, 2e-2), (Kind::BFloat16, 6e-2)] {
            let (gpu, glb) = preprocess(&img, &policy, &norm, dev, kind).expect("gpu");
            assert_eq!((gpu.device(), gpu.kind()), (dev, kind));
            assert_eq!(glb, lb);
            let err = max_abs(&(gpu.to_device(Device::Cpu).to_kind(Kind::Float) - &cpu));
            assert!(err < tol, "{policy:?} {kind:?}: GPU differs from CPU by {err}");
            let back = lb.crop_and_resize_back(&gpu).expect("gpu back");
            let err = max_abs(&(back.to_device(Device::Cpu).to_kind(Kind::Float) - &cpu_back));
            assert!(err < tol, "{policy:?} {kind:?}: resized back on GPU differs by {err}");
        }
    }
}

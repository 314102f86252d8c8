//! `dinoseg demo`: a catalog backbone with random weights on a generated camera frame. It exercises the
//! whole frame path (ROS `bgr8` bytes with row padding -> decode -> preprocess -> backbone) and prints the
//! feature maps and per-stage timings. Later issues turn this into the segmentation demo.

use crate::flags;
use dinoseg::catalog;
use dinoseg::device::{parse_device, parse_precision};
use dinoseg::model::{ForwardOptions, LoadedBackbone};
use dinoseg::pipeline::{decode_image, preprocess, ImageFrame, ResizePolicy};
use std::time::Instant;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Catalog variant (see `dinoseg backbones`).
    #[arg(long, default_value = "vits16")]
    variant: String,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value = "fp32")]
    precision: String,
    /// Frame height, 1 to 8192.
    #[arg(long, default_value_t = 480, value_parser = flags::count_u32(1, flags::MAX_SIDE.into()))]
    height: u32,
    /// Frame width, 1 to 8192.
    #[arg(long, default_value_t = 640, value_parser = flags::count_u32(1, flags::MAX_SIDE.into()))]
    width: u32,
    /// Timed iterations after one warm-up, 1 to 10000.
    #[arg(long, default_value_t = 5, value_parser = flags::count(1, 10_000))]
    iters: usize,
}

/// A synthetic bgr8 camera frame with 8 bytes of row padding: a colour gradient with a few bright shapes.
fn camera_frame(h: u32, w: u32) -> (Vec<u8>, u32) {
    let step = w * 3 + 8;
    let mut data = vec![0u8; (step * h) as usize];
    for y in 0..h {
        for x in 0..w {
            let i = (y * step + x * 3) as usize;
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let in_disc = (fx - 0.3).powi(2) + (fy - 0.5).powi(2) < 0.02;
            let in_box = (0.6..0.85).contains(&fx) && (0.2..0.6).contains(&fy);
            let bgr = if in_disc {
                [30, 30, 220]
            } else if in_box {
                [200, 160, 20]
            } else {
                [(255.0 * fx) as u8, (255.0 * fy) as u8, 90]
            };
            data[i..i + 3].copy_from_slice(&bgr);
        }
    }
    (data, step)
}

fn median_ms(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

pub fn run(a: &DemoArgs) -> dinoseg::Result<()> {
    let variant = catalog::find(&a.variant).ok_or_else(|| dinoseg::Error::UnknownVariant(a.variant.clone()))?;
    let device = parse_device(&a.device)?;
    let kind = parse_precision(&a.precision)?;
    let mut model = LoadedBackbone::build(&variant.config(), device)?;
    model.randomize(0);
    model.set_kind(kind);
    let norm = variant.default_norm();
    let policy = ResizePolicy::default().with_multiple(model.backbone.size_multiple() as u32);
    let (data, step) = camera_frame(a.height, a.width);
    let frame =
        ImageFrame { height: a.height, width: a.width, encoding: "bgr8", is_bigendian: false, step, data: &data };
    println!(
        "dinoseg demo: {} ({}, {:.1}M parameters, random weights) on {:?} in {:?}, {}x{} bgr8 frame",
        variant.name,
        variant.family(),
        model.param_count() as f64 / 1e6,
        device,
        kind,
        a.width,
        a.height
    );
    let (mut t_dec, mut t_pre, mut t_fwd) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for i in 0..=a.iters {
        let t0 = Instant::now();
        let rgb = decode_image(&frame)?;
        let t1 = Instant::now();
        let (pixels, letterbox) = preprocess(&rgb, &policy, &norm, device, kind)?;
        let t2 = Instant::now();
        let (out, _) = model.backbone.forward(&pixels, &ForwardOptions::default())?;
        if let tch::Device::Cuda(index) = device {
            tch::Cuda::synchronize(index as i64);
        }
        let t3 = Instant::now();
        if i > 0 {
            t_dec.push((t1 - t0).as_secs_f64() * 1e3);
            t_pre.push((t2 - t1).as_secs_f64() * 1e3);
            t_fwd.push((t3 - t2).as_secs_f64() * 1e3);
        }
        last = Some((out, letterbox));
    }
    if let Some((out, lb)) = last {
        println!("model input {}x{} (padded from {}x{})", lb.padded_w, lb.padded_h, lb.resized_w, lb.resized_h);
        println!("class token {:?}, last_hidden_state {:?}", out.cls_token.size(), out.last_hidden_state.size());
        for f in &out.features {
            println!("  feature level {:<3} stride {:>2}  {:?}", f.index, f.stride, f.tensor.size());
        }
    }
    println!(
        "median over {} frames: decode {:.2} ms, preprocess {:.2} ms, backbone {:.1} ms",
        a.iters,
        median_ms(&mut t_dec),
        median_ms(&mut t_pre),
        median_ms(&mut t_fwd)
    );
    Ok(())
}

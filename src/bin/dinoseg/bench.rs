//! `dinoseg bench-worker`: keeps a model (backbone, EoMT or Mask2Former) loaded and times forward passes on
//! request, so a benchmark driver (bench/*.py) can interleave our forward with a reference implementation's in one
//! process tree. Reads lines `N` on stdin, runs N forwards of the fixed input and answers with one line of N times
//! in milliseconds.

use crate::flags;
use dinoseg::checkpoint::{self, LoadedModel};
use dinoseg::device::{parse_device, parse_precision};
use dinoseg::model::heads::eomt::EomtOutput;
use dinoseg::model::ForwardOptions;
use dinoseg::pipeline::preprocess::Letterbox;
use dinoseg::postprocess::{postprocess_masks, InstanceSource, Labels, MaskOutputs, PostprocessConfig, SemanticSource};
use std::io::{BufRead, Write};
use std::time::Instant;
use tch::Kind;

#[derive(clap::Args)]
pub struct BenchArgs {
    #[arg(long)]
    model: String,
    /// safetensors file holding `pixel_values`.
    #[arg(long)]
    input: std::path::PathBuf,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value = "fp32")]
    precision: String,
    /// libtorch intra-op threads, 0 to 1024 (0 = libtorch's default).
    #[arg(long, default_value_t = 0, value_parser = flags::int_i32(0, 1024))]
    threads: i32,
    /// EoMT and Mask2Former models: also post-process each frame (semantic, then panoptic) to a camera frame of
    /// this size (`HxW`, each side 1 to 8192, the model input stretched to it) and answer
    /// `forward/semantic/panoptic` milliseconds per frame.
    #[arg(long, value_name = "HxW", value_parser = flags::size_hw)]
    postprocess: Option<flags::Size>,
}

pub fn run(a: &BenchArgs) -> dinoseg::Result<()> {
    if a.threads > 0 {
        tch::set_num_threads(a.threads);
    }
    let device = parse_device(&a.device)?;
    let kind = parse_precision(&a.precision)?;
    let (model, _) = checkpoint::load_model(&a.model, None, device, kind)?;
    let pixels = checkpoint::read_safetensors(&a.input)?
        .into_iter()
        .find(|(n, _)| n == "pixel_values")
        .map(|(_, t)| t.to_device(device).to_kind(kind))
        .ok_or_else(|| dinoseg::Error::checkpoint_missing(&a.input, "pixel_values"))?;
    let opts = ForwardOptions::default();
    let target = a.postprocess.map(|s| (s.height, s.width));
    let sync = || {
        if let tch::Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    println!("ready {:?} {:?} threads={}", device, kind, tch::get_num_threads());
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let n: usize = line.trim().parse().unwrap_or(0);
        if n == 0 {
            break;
        }
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t0 = Instant::now();
            match &model {
                LoadedModel::Backbone(m) => {
                    let (out, _) = m.backbone.forward(&pixels, &opts)?;
                    let _ = out.last_hidden_state.to_kind(Kind::Float).sum(Kind::Float).double_value(&[]);
                    sync();
                    times.push(format!("{:.3}", t0.elapsed().as_secs_f64() * 1e3));
                }
                LoadedModel::Eomt(m) => {
                    let (out, _) = m.model.forward(&pixels)?;
                    times.push(frame_times(t0, &out, &pixels, target, m.model.config.class_names(), &sync)?);
                }
                LoadedModel::Mask2Former(m) => {
                    let (out, _) = m.model.forward(&pixels)?;
                    times.push(frame_times(t0, &out, &pixels, target, m.model.class_names(), &sync)?);
                }
            }
        }
        println!("{}", times.join(" "));
        let _ = std::io::stdout().flush();
    }
    Ok(())
}

/// A mask model's frame from `t0`: the forward (its outputs read back, the device synchronised) and, with a target
/// size, post-processing (semantic, then panoptic) of `out` to that camera frame (the model input stretched to it),
/// as `forward` or `forward/semantic/panoptic` milliseconds.
fn frame_times(
    t0: Instant,
    out: &EomtOutput,
    pixels: &tch::Tensor,
    target: Option<(u32, u32)>,
    class_names: Vec<String>,
    sync: &dyn Fn(),
) -> dinoseg::Result<String> {
    let _ = out.masks_queries_logits.to_kind(Kind::Float).sum(Kind::Float).double_value(&[]);
    sync();
    let forward_ms = t0.elapsed().as_secs_f64() * 1e3;
    let Some((h, w)) = target else {
        return Ok(format!("{forward_ms:.3}"));
    };
    let (sh, sw) = (pixels.size()[2] as u32, pixels.size()[3] as u32);
    let lb = Letterbox {
        input_h: h,
        input_w: w,
        resized_h: sh,
        resized_w: sw,
        padded_h: sh,
        padded_w: sw,
        scale_y: f64::from(sh) / f64::from(h),
        scale_x: f64::from(sw) / f64::from(w),
    };
    let labels = Labels::from_names(class_names);
    let cfg = PostprocessConfig::default();
    let (c, k) = (&out.class_queries_logits, &out.masks_queries_logits);
    let pp = |e: dinoseg::postprocess::PostprocessError| dinoseg::Error::Input(e.to_string());
    let t1 = Instant::now();
    postprocess_masks(c, k, &[lb], &labels, &cfg, MaskOutputs::semantic()).map_err(pp)?;
    let t2 = Instant::now();
    let panoptic = MaskOutputs { semantic: SemanticSource::Off, instances: InstanceSource::Off, panoptic: true };
    postprocess_masks(c, k, &[lb], &labels, &cfg, panoptic).map_err(pp)?;
    let t3 = Instant::now();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    Ok(format!("{forward_ms:.3}/{:.3}/{:.3}", ms(t2 - t1), ms(t3 - t2)))
}

//! `dinoseg bench-worker`: keeps a model loaded and times forward passes on request, so a benchmark driver
//! (bench/*.py) can interleave our forward with a reference implementation's in one process tree. Reads lines
//! `N` on stdin, runs N forwards of the fixed input and answers with one line of N times in milliseconds.

use dinoseg::checkpoint;
use dinoseg::device::{parse_device, parse_precision};
use dinoseg::model::ForwardOptions;
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
    /// libtorch intra-op threads (0 = libtorch's default).
    #[arg(long, default_value_t = 0)]
    threads: i32,
}

pub fn run(a: &BenchArgs) -> dinoseg::Result<()> {
    if a.threads > 0 {
        tch::set_num_threads(a.threads);
    }
    let device = parse_device(&a.device)?;
    let kind = parse_precision(&a.precision)?;
    let (model, _) = checkpoint::load_backbone(&a.model, None, device, kind)?;
    let pixels = checkpoint::read_safetensors(&a.input)?
        .into_iter()
        .find(|(n, _)| n == "pixel_values")
        .map(|(_, t)| t.to_device(device).to_kind(kind))
        .ok_or_else(|| dinoseg::Error::checkpoint_missing(&a.input, "pixel_values"))?;
    let opts = ForwardOptions::default();
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
            let (out, _) = model.backbone.forward(&pixels, &opts)?;
            let _ = out.last_hidden_state.to_kind(Kind::Float).sum(Kind::Float).double_value(&[]);
            sync();
            times.push(format!("{:.3}", t0.elapsed().as_secs_f64() * 1e3));
        }
        println!("{}", times.join(" "));
        let _ = std::io::stdout().flush();
    }
    Ok(())
}

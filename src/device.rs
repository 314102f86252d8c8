//! Device and precision choices (`--device cpu|cuda|cuda:N`, `--precision fp32|fp16|bf16`).

use crate::error::{Error, Result};
use tch::{Device, Kind};

/// Parses `cpu`, `cuda` (first GPU) or `cuda:N`; asking for CUDA where none exists is an error, not a fallback.
pub fn parse_device(s: &str) -> Result<Device> {
    let s = s.trim().to_ascii_lowercase();
    let device = match s.as_str() {
        "cpu" => Device::Cpu,
        "cuda" | "gpu" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => Device::Cuda(i),
            _ => return Err(Error::Device(s)),
        },
    };
    if let Device::Cuda(i) = device {
        let n = tch::Cuda::device_count();
        if i as i64 >= n {
            return Err(Error::Input(format!("device `{s}` requested but libtorch sees {n} CUDA device(s)")));
        }
    }
    Ok(device)
}

/// Parses a precision name into the tensor kind the model runs in.
pub fn parse_precision(s: &str) -> Result<Kind> {
    match s.trim().to_ascii_lowercase().as_str() {
        "fp32" | "float32" | "float" => Ok(Kind::Float),
        "fp16" | "float16" | "half" => Ok(Kind::Half),
        "bf16" | "bfloat16" => Ok(Kind::BFloat16),
        other => Err(Error::Input(format!("unknown precision `{other}`: expected fp32, fp16 or bf16"))),
    }
}

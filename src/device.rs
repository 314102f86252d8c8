//! Device and precision choices (`--device cpu|cuda|cuda:N`, `--precision fp32|fp16|bf16`).

use crate::error::{Error, Result};
use tch::{Device, Kind};

/// Parses `cpu`, `cuda` (first GPU) or `cuda:N`; asking for CUDA where none exists is an error, not a fallback.
pub fn parse_device(s: &str) -> Result<Device> {
    let s = s.trim().to_ascii_lowercase();
    let Some((device, _)) = device_name(&s) else { return Err(Error::Device(s)) };
    if let Device::Cuda(i) = device {
        let n = tch::Cuda::device_count();
        if i as i64 >= n {
            return Err(Error::Input(format!("device `{s}` requested but libtorch sees {n} CUDA device(s)")));
        }
    }
    Ok(device)
}

/// The one parser of device names (`cpu`, `cuda` = `cuda:0`, also `gpu`, or `cuda:N`; any case): the device and
/// its spelling in the parameters (`cpu`, `cuda`, `cuda:N`), without looking at the machine. None if `s` is not
/// a device name.
pub fn device_name(s: &str) -> Option<(Device, String)> {
    let s = s.trim().to_ascii_lowercase();
    match s.as_str() {
        "cpu" => Some((Device::Cpu, s)),
        "cuda" | "gpu" => Some((Device::Cuda(0), "cuda".into())),
        other => {
            let i = other.strip_prefix("cuda:")?.parse::<usize>().ok()?;
            Some((Device::Cuda(i), format!("cuda:{i}")))
        }
    }
}

/// The one parser of precision names (`fp32`/`float32`/`float`, `fp16`/`float16`/`half`, `bf16`/`bfloat16`;
/// any case): the tensor kind the model runs in, None if `s` is not one.
pub fn precision_kind(s: &str) -> Option<Kind> {
    match s.trim().to_ascii_lowercase().as_str() {
        "fp32" | "float32" | "float" => Some(Kind::Float),
        "fp16" | "float16" | "half" => Some(Kind::Half),
        "bf16" | "bfloat16" => Some(Kind::BFloat16),
        _ => None,
    }
}

/// Parses a precision name into the tensor kind the model runs in.
pub fn parse_precision(s: &str) -> Result<Kind> {
    precision_kind(s).ok_or_else(|| {
        let other = s.trim().to_ascii_lowercase();
        Error::Input(format!("unknown precision `{other}`: expected fp32, fp16 or bf16"))
    })
}

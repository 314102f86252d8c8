//! `dinoseg_node`: the ROS 2 node (cargo feature `ros`, r2r). A thin adapter over the dinoseg core.
//!
//! This is the start-up skeleton: it reads the backbone parameters (`model`, `variant`, `device`, `precision`)
//! from `--ros-args --params-file`, loads and warms the backbone up before the first frame, and spins until
//! SIGINT. Camera subscriptions and the published messages come with the node issue; they will go through the
//! same core as `dinoseg run`.

use dinoseg::checkpoint;
use dinoseg::device::{parse_device, parse_precision};
use dinoseg::model::ForwardOptions;
use r2r::ParameterValue;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn param_str(node: &r2r::Node, key: &str, default: Option<&str>) -> Result<String, String> {
    let params = node.params.lock().map_err(|_| "parameter table poisoned".to_string())?;
    match params.get(key).map(|p| &p.value) {
        Some(ParameterValue::String(s)) => Ok(s.clone()),
        Some(ParameterValue::NotSet) | None => {
            default.map(String::from).ok_or_else(|| format!("parameter `{key}` is required (a string)"))
        }
        Some(other) => Err(format!("parameter `{key}` must be a string, got {other:?}")),
    }
}

fn run() -> Result<(), String> {
    let ctx = r2r::Context::create().map_err(|e| e.to_string())?;
    let mut node = r2r::Node::create(ctx, "dinoseg", "").map_err(|e| e.to_string())?;
    let model = param_str(&node, "model", None)?;
    let variant = param_str(&node, "variant", Some(""))?;
    let device = parse_device(&param_str(&node, "device", Some("cuda"))?).map_err(|e| e.to_string())?;
    let kind = parse_precision(&param_str(&node, "precision", Some("fp16"))?).map_err(|e| e.to_string())?;
    let variant = (!variant.is_empty()).then_some(variant.as_str());
    let (backbone, _norm) =
        checkpoint::load_backbone(&model, variant, device, kind).map_err(|e| format!("parameter `model`: {e}"))?;
    let warmup = tch::Tensor::zeros([1, 3, 224, 224], (kind, device));
    backbone.backbone.forward(&warmup, &ForwardOptions::default()).map_err(|e| format!("warm-up: {e}"))?;
    r2r::log_info!(node.logger(), "dinoseg: {model} loaded on {device:?} ({kind:?}) and warmed up");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc_flag(flag);
    while !stop.load(Ordering::Relaxed) {
        node.spin_once(Duration::from_millis(100));
    }
    Ok(())
}

/// Sets `flag` on SIGINT/SIGTERM (rcl's own handler also shuts the context down).
fn ctrlc_flag(flag: Arc<AtomicBool>) {
    let _ = std::thread::Builder::new().name("signals".into()).spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
            rt.block_on(async {
                let _ = tokio::signal::ctrl_c().await;
            });
        }
        flag.store(true, Ordering::Relaxed);
    });
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dinoseg_node: {e}");
            ExitCode::FAILURE
        }
    }
}

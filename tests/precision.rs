//! Half precision, odd input sizes and CUDA. CUDA checks run only where libtorch sees a GPU (on machines
//! without one they return at once and say so); the same fixtures as the CPU parity tests are used.

mod common;

use dinoseg::checkpoint;
use dinoseg::model::{ForwardOptions, LoadedBackbone};
use tch::{Device, Kind, Tensor};

fn fixture_forward(name: &str, size: &str, device: Device, kind: Kind) -> (Tensor, Tensor, Vec<Tensor>) {
    let fx = common::fixtures();
    let dir = fx.join(name);
    let (model, _) = checkpoint::load_backbone(dir.to_str().expect("utf-8"), None, device, kind).expect("load");
    let input = common::get(&common::read(&fx.join(format!("{name}_input_{size}.safetensors"))), "pixel_values");
    let reference = common::get(&common::read(&fx.join(format!("{name}_ref_{size}.safetensors"))), "last_hidden_state");
    let opts = ForwardOptions { hidden_states: true, dense_layers: None };
    let (out, _) = model.backbone.forward(&input.to_device(device).to_kind(kind), &opts).expect("forward");
    let to_cpu = |t: &Tensor| t.to_kind(Kind::Float).to_device(Device::Cpu);
    (to_cpu(&out.last_hidden_state), reference, out.features.iter().map(|f| to_cpu(&f.tensor)).collect())
}

/// Relative error ||a - b|| / ||b||.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).norm().double_value(&[]);
    d / b.norm().double_value(&[])
}

#[test]
fn bfloat16_on_cpu_stays_close_to_the_reference() {
    for name in ["vit_mlp", "vit_swiglu", "convnext"] {
        let size = if name == "convnext" { "64x96" } else { "48x80" };
        let (ours, reference, _) = fixture_forward(name, size, Device::Cpu, Kind::BFloat16);
        let e = rel_err(&ours, &reference);
        println!("{name} bf16 relative error {e:.2e}");
        assert!(e < 5e-2, "{name}: bf16 relative error {e}");
    }
}

#[test]
fn sides_that_are_not_multiples_are_padded_and_reported() {
    let v = dinoseg::catalog::find("vits16").expect("listed");
    let mut model = LoadedBackbone::build(&v.config(), Device::Cpu).expect("build");
    model.randomize(3);
    let x = Tensor::randn([1, 3, 50, 70], (Kind::Float, Device::Cpu));
    let (out, padding) = model.backbone.forward(&x, &ForwardOptions::default()).expect("forward");
    assert_eq!(padding.input_hw, (50, 70));
    assert_eq!(padding.padded_hw, (64, 80));
    assert_eq!(out.features.len(), 4);
    for f in &out.features {
        assert_eq!(f.tensor.size(), vec![1, 384, 4, 5]);
        assert_eq!(f.stride, 16);
    }
    // Padding is exactly a zero (mean-colour) border on the right and bottom.
    let padded = x.constant_pad_nd([0, 10, 0, 14]);
    let (explicit, _) = model.backbone.forward(&padded, &ForwardOptions::default()).expect("forward");
    assert_eq!(common::max_abs_diff(&out.last_hidden_state, &explicit.last_hidden_state), 0.0);
    // Bad shapes are errors, not panics.
    let e = model.backbone.forward(&Tensor::zeros([3, 32, 32], (Kind::Float, Device::Cpu)), &ForwardOptions::default());
    assert!(e.is_err());
    let e =
        model.backbone.forward(&Tensor::zeros([1, 4, 32, 32], (Kind::Float, Device::Cpu)), &ForwardOptions::default());
    assert!(e.map(|_| ()).unwrap_err().to_string().contains("[B, 3, H, W]"));
}

#[test]
fn convnext_pads_to_its_total_stride() {
    let v = dinoseg::catalog::find("convnext_tiny").expect("listed");
    let model = LoadedBackbone::build(&v.config(), Device::Cpu).expect("build");
    let x = Tensor::randn([1, 3, 70, 100], (Kind::Float, Device::Cpu));
    let (out, padding) = model.backbone.forward(&x, &ForwardOptions::default()).expect("forward");
    assert_eq!(padding.padded_hw, (96, 128));
    let shapes: Vec<Vec<i64>> = out.features.iter().map(|f| f.tensor.size()).collect();
    assert_eq!(shapes, vec![vec![1, 96, 24, 32], vec![1, 192, 12, 16], vec![1, 384, 6, 8], vec![1, 768, 3, 4]]);
    let strides: Vec<i64> = out.features.iter().map(|f| f.stride).collect();
    assert_eq!(strides, vec![4, 8, 16, 32]);
}

#[test]
fn cuda_matches_the_reference_when_a_gpu_exists() {
    if !tch::Cuda::is_available() {
        println!("no CUDA device: skipped (runs on the GPU machine, see bench/gpu.sh)");
        return;
    }
    let device = Device::Cuda(0);
    for (name, size) in [("vit_mlp", "48x80"), ("vit_swiglu", "64x64"), ("vit_nobias", "48x80"), ("convnext", "64x96")]
    {
        let (ours, reference, _) = fixture_forward(name, size, device, Kind::Float);
        let d = common::max_abs_diff(&ours, &reference);
        println!("{name} {size} cuda fp32 max abs diff {d:.2e}");
        assert!(d < 1e-3, "{name}: cuda fp32 differs by {d}");
        let (half, reference, _) = fixture_forward(name, size, device, Kind::Half);
        let e = rel_err(&half, &reference);
        println!("{name} {size} cuda fp16 relative error {e:.2e}");
        assert!(e < 1e-2, "{name}: cuda fp16 relative error {e}");
    }
}

#[test]
fn eomt_on_cuda_matches_the_reference_when_a_gpu_exists() {
    if !tch::Cuda::is_available() {
        println!("no CUDA device: skipped (runs on the GPU machine, see bench/gpu.sh)");
        return;
    }
    use dinoseg::checkpoint::{load_model, LoadedModel};
    let fx = common::eomt_fixtures();
    for p in ["p0", "p1"] {
        let dir = fx.join(format!("eomt_{p}"));
        let (model, _) = load_model(dir.to_str().expect("utf-8"), None, Device::Cuda(0), Kind::Float).expect("load");
        let LoadedModel::Eomt(model) = model else { panic!("not EoMT") };
        for size in ["64x64", "48x80"] {
            let x = common::get(&common::read(&fx.join(format!("eomt_input_{size}.safetensors"))), "pixel_values");
            let r = common::read(&fx.join(format!("eomt_{p}_ref_{size}.safetensors")));
            let (out, _) = model.model.forward(&x.to_device(Device::Cuda(0))).expect("forward");
            let ours = out.masks_queries_logits.to_device(Device::Cpu);
            let reference = common::get(&r, "masks_queries_logits");
            let d = common::max_abs_diff(&ours, &reference);
            // cuDNN runs the up-scaling convolutions in TF32 (10-bit mantissa): compare relative to the logits.
            let e = rel_err(&ours, &reference);
            println!("eomt {p} {size} cuda fp32 masks max abs diff {d:.2e}, relative error {e:.2e}");
            assert!(e < 1e-3, "eomt {p} {size}: relative error {e}");
        }
    }
}

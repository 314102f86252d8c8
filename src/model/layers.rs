//! Small building blocks shared by the backbones: activations and linear/norm layers with transformers'
//! parameter names (`weight`, `bias`), created on a `tch::nn::Path` so the VarStore holds the state-dict names.

use tch::nn::{self, Module};
use tch::Tensor;

/// Feed-forward activation (`hidden_act` in config.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact (erf) GELU, transformers' `gelu`.
    Gelu,
    /// tanh-approximated GELU (`gelu_pytorch_tanh`, `gelu_new`).
    GeluTanh,
    /// SiLU / swish, used by the SwiGLU variants.
    Silu,
    Relu,
}

impl Activation {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "gelu" => Ok(Activation::Gelu),
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Ok(Activation::GeluTanh),
            "silu" | "swish" => Ok(Activation::Silu),
            "relu" => Ok(Activation::Relu),
            other => {
                Err(format!("unsupported `hidden_act` `{other}` (expected gelu, gelu_pytorch_tanh, silu or relu)"))
            }
        }
    }
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Gelu => x.gelu("none"),
            Activation::GeluTanh => x.gelu("tanh"),
            Activation::Silu => x.silu(),
            Activation::Relu => x.relu(),
        }
    }
}

/// `nn::Linear` with an optional bias.
pub fn linear(p: nn::Path, i: i64, o: i64, bias: bool) -> nn::Linear {
    nn::linear(p, i, o, nn::LinearConfig { bias, ..Default::default() })
}

/// LayerNorm over the last dimension.
pub fn layer_norm(p: nn::Path, d: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(p, vec![d], nn::LayerNormConfig { eps, ..Default::default() })
}

/// LayerNorm over the channel dimension of an NCHW tensor (ConvNeXt's `channels_first`).
pub fn layer_norm_channels_first(ln: &nn::LayerNorm, x: &Tensor) -> Tensor {
    ln.forward(&x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
}

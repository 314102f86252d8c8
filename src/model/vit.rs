//! DINOv3 Vision Transformer (Siméoni et al., 2025) on tch, following transformers' `DINOv3ViTModel`
//! (`modeling_dinov3_vit.py`) name for name: patch embedding, [cls, registers, patches] tokens, axial RoPE on
//! patch tokens, pre-norm blocks with LayerScale, GELU MLP or SwiGLU feed-forward, final LayerNorm.

use crate::model::config::VitConfig;
use crate::model::layers::{layer_norm, linear, Activation};
use crate::model::rope::{rope_tables, Rope};
use crate::model::{BackboneOutput, FeatureMap, ForwardOptions};
use tch::nn::{self, Module};
use tch::Tensor;

struct Attention {
    q: nn::Linear,
    k: nn::Linear,
    v: nn::Linear,
    o: nn::Linear,
    heads: i64,
    head_dim: i64,
    /// q, k and v as one [3D, D] weight and [3D] bias (see [`Vit::fuse_qkv`]).
    fused: Option<(Tensor, Tensor)>,
}

enum FeedForward {
    Mlp { up: nn::Linear, down: nn::Linear },
    Gated { gate: nn::Linear, up: nn::Linear, down: nn::Linear },
}

struct Block {
    norm1: nn::LayerNorm,
    attn: Attention,
    ls1: Tensor,
    norm2: nn::LayerNorm,
    ffn: FeedForward,
    ls2: Tensor,
}

/// Where the parameters live in a state dict: DINOv3's own layout, or EoMT's (which renames the blocks and the
/// final norm and has no mask token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VitNames {
    pub layers: &'static str,
    pub norm: &'static str,
    pub mask_token: bool,
}

impl VitNames {
    /// transformers `DINOv3ViTModel` on disk: `layer.N.*`, `norm.*`, `embeddings.mask_token`.
    pub const DINOV3: Self = Self { layers: "layer", norm: "norm", mask_token: true };
    /// transformers `EomtDinov3ForUniversalSegmentation`: `layers.N.*`, `layernorm.*`, no mask token.
    pub const EOMT: Self = Self { layers: "layers", norm: "layernorm", mask_token: false };
}

/// Token state after the patch embedding: the sequence and the RoPE tables of its patch grid.
pub struct Tokens {
    /// [B, prefix + hp * wp, D] with prefix = class token + registers.
    pub x: Tensor,
    pub hp: i64,
    pub wp: i64,
    pub cos: Tensor,
    pub sin: Tensor,
}

/// The ViT backbone. Build with [`Vit::new`] on a VarStore path, then load weights into the VarStore.
pub struct Vit {
    pub config: VitConfig,
    act: Activation,
    patch_embed: nn::Conv2D,
    cls_token: Tensor,
    register_tokens: Tensor,
    blocks: Vec<Block>,
    norm: nn::LayerNorm,
    /// 0-based blocks whose (normed) outputs become the dense feature maps.
    pub dense_layers: Vec<i64>,
}

impl Vit {
    /// Declares every parameter under transformers' names (`embeddings.*`, `layer.N.*`, `norm.*`: the names transformers writes to disk).
    pub fn new(p: &nn::Path, config: &VitConfig) -> Result<Self, String> {
        Self::with_names(p, config, VitNames::DINOV3)
    }

    /// Declares the parameters under `names` (see [`VitNames`]).
    pub fn with_names(p: &nn::Path, config: &VitConfig, names: VitNames) -> Result<Self, String> {
        config.validate()?;
        let c = config;
        let d = c.hidden_size;
        let emb = p / "embeddings";
        let patch_embed = nn::conv2d(
            &emb / "patch_embeddings",
            c.num_channels,
            d,
            c.patch_size,
            nn::ConvConfig { stride: c.patch_size, ..Default::default() },
        );
        let cls_token = emb.zeros("cls_token", &[1, 1, d]);
        if names.mask_token {
            // Declared so checkpoints load strictly; only used in masked pre-training.
            let _mask_token = emb.zeros("mask_token", &[1, 1, d]);
        }
        let register_tokens = emb.zeros("register_tokens", &[1, c.num_register_tokens, d]);
        let layers = p / names.layers;
        let blocks = (0..c.num_hidden_layers)
            .map(|i| {
                let b = &layers / i;
                let a = &b / "attention";
                let m = &b / "mlp";
                let ffn = if c.use_gated_mlp {
                    FeedForward::Gated {
                        gate: linear(&m / "gate_proj", d, c.intermediate_size, c.mlp_bias),
                        up: linear(&m / "up_proj", d, c.intermediate_size, c.mlp_bias),
                        down: linear(&m / "down_proj", c.intermediate_size, d, c.mlp_bias),
                    }
                } else {
                    FeedForward::Mlp {
                        up: linear(&m / "up_proj", d, c.intermediate_size, c.mlp_bias),
                        down: linear(&m / "down_proj", c.intermediate_size, d, c.mlp_bias),
                    }
                };
                Block {
                    norm1: layer_norm(&b / "norm1", d, c.layer_norm_eps),
                    attn: Attention {
                        q: linear(&a / "q_proj", d, d, c.query_bias),
                        k: linear(&a / "k_proj", d, d, c.key_bias),
                        v: linear(&a / "v_proj", d, d, c.value_bias),
                        o: linear(&a / "o_proj", d, d, c.proj_bias),
                        heads: c.num_attention_heads,
                        head_dim: c.head_dim(),
                        fused: None,
                    },
                    ls1: (&b / "layer_scale1").ones("lambda1", &[d]),
                    norm2: layer_norm(&b / "norm2", d, c.layer_norm_eps),
                    ffn,
                    ls2: (&b / "layer_scale2").ones("lambda1", &[d]),
                }
            })
            .collect();
        let norm = layer_norm(p / names.norm, d, c.layer_norm_eps);
        let act = Activation::parse(&c.hidden_act)?;
        Ok(Vit {
            config: c.clone(),
            act,
            patch_embed,
            cls_token,
            register_tokens,
            blocks,
            norm,
            dense_layers: crate::catalog::dense_layers(c.num_hidden_layers),
        })
    }

    /// Pixel sides must be multiples of this; other sizes are padded (right and bottom).
    pub fn size_multiple(&self) -> i64 {
        self.config.patch_size
    }

    /// Fuses each block's q/k/v projections into one [3D, D] weight: one matrix product instead of three. The
    /// q/k/v variables become views of the fused tensor (memory does not grow, and loading weights or filling
    /// them in place still reaches the fused copy). Call again after a precision change (`VarStore::set_kind`
    /// gives the variables new storage): it rebuilds from the current variables. A missing bias is zeros.
    pub fn fuse_qkv(&mut self) {
        let _g = tch::no_grad_guard();
        for blk in &mut self.blocks {
            let a = &mut blk.attn;
            let d = a.q.ws.size()[0];
            let w = Tensor::cat(&[&a.q.ws, &a.k.ws, &a.v.ws], 0);
            let zeros = || Tensor::zeros([d], (a.q.ws.kind(), a.q.ws.device()));
            let bias = |l: &nn::Linear| l.bs.as_ref().map_or_else(zeros, Tensor::shallow_clone);
            let b = Tensor::cat(&[bias(&a.q), bias(&a.k), bias(&a.v)], 0);
            for (i, l) in [&mut a.q, &mut a.k, &mut a.v].into_iter().enumerate() {
                l.ws.set_data(&w.narrow(0, i as i64 * d, d));
                if let Some(bs) = l.bs.as_mut() {
                    bs.set_data(&b.narrow(0, i as i64 * d, d));
                }
            }
            a.fused = Some((w, b));
        }
    }

    /// The weights' kind.
    pub fn kind(&self) -> tch::Kind {
        self.cls_token.kind()
    }

    /// Class token + registers: the tokens before the patches.
    pub fn num_prefix_tokens(&self) -> i64 {
        1 + self.config.num_register_tokens
    }

    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// Patch embedding of pixels [B, C, H, W] (sides multiples of the patch size), with [cls, registers] in front.
    pub fn embed(&self, pixels: &Tensor) -> Tokens {
        let (b, _, h, w) = pixels.size4().unwrap_or((0, 0, 0, 0));
        let p = self.config.patch_size;
        let (hp, wp) = (h / p, w / p);
        let d = self.config.hidden_size;
        let kind = self.cls_token.kind();
        let patches = self.patch_embed.forward(&pixels.to_kind(kind)).flatten(2, 3).transpose(1, 2);
        let regs = self.config.num_register_tokens;
        let x = Tensor::cat(
            &[self.cls_token.expand([b, 1, d], false), self.register_tokens.expand([b, regs, d], false), patches],
            1,
        );
        let (cos, sin) = rope_tables(hp, wp, self.config.head_dim(), self.config.rope_theta, pixels.device(), kind);
        Tokens { x, hp, wp, cos, sin }
    }

    /// Block `i` on `x`, rotated by `rope` (built for `x`'s prefix length). `mask` ([B, 1, T, T] bool, true =
    /// may attend) restricts attention, as EoMT's masked attention does.
    pub fn block(&self, i: usize, x: &Tensor, rope: &Rope, mask: Option<&Tensor>) -> Tensor {
        match self.blocks.get(i) {
            Some(blk) => self.block_forward(blk, x, rope, mask),
            None => x.shallow_clone(),
        }
    }

    /// The final LayerNorm.
    pub fn final_norm(&self, x: &Tensor) -> Tensor {
        self.norm.forward(x)
    }

    /// Runs the backbone on normalised pixels [B, C, H, W] already padded to a multiple of the patch size.
    pub fn forward(&self, pixels: &Tensor, opts: &ForwardOptions) -> BackboneOutput {
        let t = self.embed(pixels);
        let mut x = t.x.shallow_clone();
        let prefix = self.num_prefix_tokens();
        let want: Vec<i64> = opts.dense_layers.clone().unwrap_or_else(|| self.dense_layers.clone());
        let mut hidden_states = Vec::new();
        let mut features = Vec::new();
        if opts.hidden_states {
            hidden_states.push(x.shallow_clone());
        }
        let rope = Rope::new(&t.cos, &t.sin, prefix);
        for i in 0..self.blocks.len() {
            x = self.block(i, &x, &rope, None);
            if opts.hidden_states {
                hidden_states.push(x.shallow_clone());
            }
            if want.contains(&(i as i64)) {
                features.push(self.feature_map(&x, &t, prefix, i));
            }
        }
        let last = self.norm.forward(&x);
        BackboneOutput { cls_token: last.select(1, 0), last_hidden_state: last, hidden_states, features }
    }

    /// The official dense feature of block `i`'s output `x`: final norm, patch tokens as [B, D, hp, wp].
    pub fn feature_map(&self, x: &Tensor, t: &Tokens, prefix: i64, i: usize) -> FeatureMap {
        let (b, _, d) = x.size3().unwrap_or((0, 0, 0));
        let normed = self.norm.forward(x);
        let map = normed.narrow(1, prefix, t.hp * t.wp).transpose(1, 2).reshape([b, d, t.hp, t.wp]);
        FeatureMap { index: i, stride: self.config.patch_size, tensor: map }
    }

    fn block_forward(&self, blk: &Block, x: &Tensor, rope: &Rope, mask: Option<&Tensor>) -> Tensor {
        let a = &blk.attn;
        let (b, t, d) = x.size3().unwrap_or((0, 0, 0));
        let h = blk.norm1.forward(x);
        let (q, k, v) = match &a.fused {
            Some((w, bias)) => {
                let qkv = h.linear(w, Some(bias)).view([b, t, 3, a.heads, a.head_dim]).permute([2, 0, 3, 1, 4]);
                (qkv.select(0, 0), qkv.select(0, 1), qkv.select(0, 2))
            }
            None => {
                let split = |l: &nn::Linear| l.forward(&h).view([b, t, a.heads, a.head_dim]).transpose(1, 2);
                (split(&a.q), split(&a.k), split(&a.v))
            }
        };
        let (q, k) = (rope.apply(&q), rope.apply(&k));
        let attn = Tensor::scaled_dot_product_attention(&q, &k, &v, mask, 0.0, false, None, false);
        let attn = a.o.forward(&attn.transpose(1, 2).reshape([b, t, d]));
        let x = x.addcmul(&attn, &blk.ls1);
        let h = blk.norm2.forward(&x);
        let f = match &blk.ffn {
            FeedForward::Mlp { up, down } => down.forward(&self.act.apply(&up.forward(&h))),
            FeedForward::Gated { gate, up, down } => {
                down.forward(&(self.act.apply(&gate.forward(&h)) * up.forward(&h)))
            }
        };
        x.addcmul(&f, &blk.ls2)
    }
}

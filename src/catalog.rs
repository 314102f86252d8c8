//! Every released DINOv3 backbone as data (in the manner of timm's registry): architecture, pretraining data
//! sets with their hub ids and normalisation, published size and ADE20K linear mIoU, and the dense layers the
//! official segmentation protocol reads. Figures are from the DINOv3 paper (Siméoni et al., 2025) and the
//! released checkpoints' `config.json`.

use crate::model::config::{BackboneConfig, ConvNextConfig, VitConfig};

/// Pixel normalisation of a pretraining data set: per-channel mean and standard deviation of RGB in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// ImageNet statistics, used by the LVD-1689M (web image) weights.
    pub const IMAGENET: Self = Self { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    /// Statistics used by the SAT-493M (satellite) weights.
    pub const SAT493M: Self = Self { mean: [0.430, 0.411, 0.296], std: [0.213, 0.156, 0.143] };

    /// `(a, b)` with `normalised = a * byte + b`, i.e. `a = 1 / (255 std)`, `b = -mean / std`.
    pub fn affine(&self) -> ([f32; 3], [f32; 3]) {
        let a = [0, 1, 2].map(|c| 1.0 / (255.0 * self.std[c]));
        let b = [0, 1, 2].map(|c| -self.mean[c] / self.std[c]);
        (a, b)
    }
}

/// ImageNet statistics, used by the LVD-1689M (web image) weights.
pub const IMAGENET: Normalization = Normalization::IMAGENET;
/// Statistics used by the SAT-493M (satellite) weights.
pub const SAT493M: Normalization = Normalization::SAT493M;

/// A pretraining data set and the released weights trained on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// `lvd1689m` or `sat493m`.
    pub dataset: &'static str,
    /// transformers hub id.
    pub hub_id: &'static str,
    pub norm: Normalization,
}

/// Backbone family and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arch {
    Vit {
        hidden: i64,
        depth: i64,
        heads: i64,
        intermediate: i64,
        /// SwiGLU feed-forward (silu gate) instead of the GELU MLP.
        swiglu: bool,
        /// Query/value biases (the 7B model has none).
        qv_bias: bool,
    },
    ConvNext {
        dims: [i64; 4],
        depths: [i64; 4],
    },
}

/// One catalog entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Variant {
    pub name: &'static str,
    pub arch: Arch,
    pub weights: &'static [Weights],
    /// Published parameter count, millions: the DINOv3 model card's figure, except vits16 whose card says
    /// "21M" for weights that hold 21.6M (as timm's card for the same weights states). The ConvNeXt figures
    /// are the ConvNeXt paper's, which count a 1000-class classifier that the DINOv3 backbones do not have
    /// (see [`CONVNEXT_CLASSIFIER_CLASSES`]).
    pub published_params_m: f64,
    /// Published ADE20K linear-probe mIoU (None where the guide we follow does not give it).
    pub ade20k_linear_miou: Option<f64>,
}

const fn lvd(hub_id: &'static str) -> Weights {
    Weights { dataset: "lvd1689m", hub_id, norm: IMAGENET }
}
const fn sat(hub_id: &'static str) -> Weights {
    Weights { dataset: "sat493m", hub_id, norm: SAT493M }
}
const fn vit(hidden: i64, depth: i64, heads: i64, intermediate: i64, swiglu: bool, qv_bias: bool) -> Arch {
    Arch::Vit { hidden, depth, heads, intermediate, swiglu, qv_bias }
}

/// All released variants.
pub const VARIANTS: &[Variant] = &[
    Variant {
        name: "vits16",
        arch: vit(384, 12, 6, 1536, false, true),
        weights: &[lvd("facebook/dinov3-vits16-pretrain-lvd1689m")],
        published_params_m: 21.6,
        ade20k_linear_miou: Some(47.0),
    },
    Variant {
        name: "vits16plus",
        arch: vit(384, 12, 6, 1536, true, true),
        weights: &[lvd("facebook/dinov3-vits16plus-pretrain-lvd1689m")],
        published_params_m: 29.0,
        ade20k_linear_miou: Some(48.8),
    },
    Variant {
        name: "vitb16",
        arch: vit(768, 12, 12, 3072, false, true),
        weights: &[lvd("facebook/dinov3-vitb16-pretrain-lvd1689m")],
        published_params_m: 86.0,
        ade20k_linear_miou: Some(51.8),
    },
    Variant {
        name: "vitl16",
        arch: vit(1024, 24, 16, 4096, false, true),
        weights: &[lvd("facebook/dinov3-vitl16-pretrain-lvd1689m"), sat("facebook/dinov3-vitl16-pretrain-sat493m")],
        published_params_m: 300.0,
        ade20k_linear_miou: Some(54.9),
    },
    Variant {
        name: "vith16plus",
        arch: vit(1280, 32, 20, 5120, true, true),
        weights: &[lvd("facebook/dinov3-vith16plus-pretrain-lvd1689m")],
        published_params_m: 840.0,
        ade20k_linear_miou: Some(54.8),
    },
    Variant {
        name: "vit7b16",
        arch: vit(4096, 40, 32, 8192, true, false),
        weights: &[lvd("facebook/dinov3-vit7b16-pretrain-lvd1689m"), sat("facebook/dinov3-vit7b16-pretrain-sat493m")],
        published_params_m: 6716.0,
        ade20k_linear_miou: Some(55.9),
    },
    Variant {
        name: "convnext_tiny",
        arch: Arch::ConvNext { dims: [96, 192, 384, 768], depths: [3, 3, 9, 3] },
        weights: &[lvd("facebook/dinov3-convnext-tiny-pretrain-lvd1689m")],
        published_params_m: 29.0,
        ade20k_linear_miou: Some(42.7),
    },
    Variant {
        name: "convnext_small",
        arch: Arch::ConvNext { dims: [96, 192, 384, 768], depths: [3, 3, 27, 3] },
        weights: &[lvd("facebook/dinov3-convnext-small-pretrain-lvd1689m")],
        published_params_m: 50.0,
        ade20k_linear_miou: None,
    },
    Variant {
        name: "convnext_base",
        arch: Arch::ConvNext { dims: [128, 256, 512, 1024], depths: [3, 3, 27, 3] },
        weights: &[lvd("facebook/dinov3-convnext-base-pretrain-lvd1689m")],
        published_params_m: 89.0,
        ade20k_linear_miou: None,
    },
    Variant {
        name: "convnext_large",
        arch: Arch::ConvNext { dims: [192, 384, 768, 1536], depths: [3, 3, 27, 3] },
        weights: &[lvd("facebook/dinov3-convnext-large-pretrain-lvd1689m")],
        published_params_m: 198.0,
        ade20k_linear_miou: Some(47.8),
    },
];

/// The published ConvNeXt sizes include an ImageNet-1k classifier (`dim * 1000 + 1000` parameters).
pub const CONVNEXT_CLASSIFIER_CLASSES: i64 = 1000;

/// Looks a variant up by short name (`vitl16`) or by any of its hub ids.
pub fn find(name: &str) -> Option<&'static Variant> {
    let name = name.trim();
    VARIANTS.iter().find(|v| v.name.eq_ignore_ascii_case(name) || v.weights.iter().any(|w| w.hub_id == name))
}

/// The weights entry of a hub id, with its normalisation.
pub fn weights_for_hub_id(hub_id: &str) -> Option<(&'static Variant, &'static Weights)> {
    VARIANTS.iter().find_map(|v| v.weights.iter().find(|w| w.hub_id == hub_id).map(|w| (v, w)))
}

impl Variant {
    /// The transformers config of this variant.
    pub fn config(&self) -> BackboneConfig {
        match self.arch {
            Arch::Vit { hidden, depth, heads, intermediate, swiglu, qv_bias } => BackboneConfig::Vit(VitConfig {
                patch_size: 16,
                hidden_size: hidden,
                intermediate_size: intermediate,
                num_hidden_layers: depth,
                num_attention_heads: heads,
                hidden_act: if swiglu { "silu" } else { "gelu" }.into(),
                layer_norm_eps: 1e-5,
                rope_theta: 100.0,
                image_size: 224,
                num_channels: 3,
                query_bias: qv_bias,
                key_bias: false,
                value_bias: qv_bias,
                proj_bias: true,
                mlp_bias: true,
                layerscale_value: 1.0,
                use_gated_mlp: swiglu,
                num_register_tokens: 4,
            }),
            Arch::ConvNext { dims, depths } => BackboneConfig::ConvNext(ConvNextConfig {
                num_channels: 3,
                hidden_sizes: dims.to_vec(),
                depths: depths.to_vec(),
                hidden_act: "gelu".into(),
                layer_norm_eps: 1e-6,
                layer_scale_init_value: 1e-6,
                image_size: 224,
            }),
        }
    }

    /// Default normalisation (of the first released weights).
    pub fn default_norm(&self) -> Normalization {
        self.weights.first().map(|w| w.norm).unwrap_or(IMAGENET)
    }

    pub fn family(&self) -> &'static str {
        match self.arch {
            Arch::Vit { .. } => "ViT",
            Arch::ConvNext { .. } => "ConvNeXt",
        }
    }
}

/// The official dense-feature rule: 4 evenly spaced blocks; [4, 11, 17, 23] for 24 blocks, otherwise
/// `i * (depth / 4) - 1` for i = 1..4 (0-based block indices).
pub fn dense_layers(depth: i64) -> Vec<i64> {
    if depth == 24 {
        vec![4, 11, 17, 23]
    } else {
        (1..=4).map(|i| i * (depth / 4) - 1).filter(|&l| l >= 0).collect()
    }
}

/// Parameter count of an architecture (every tensor of the transformers state dict, mask token included).
pub fn param_count(config: &BackboneConfig) -> i64 {
    match config {
        BackboneConfig::Vit(c) => {
            let (d, f, p, ch) = (c.hidden_size, c.intermediate_size, c.patch_size, c.num_channels);
            let b = |on: bool, n: i64| if on { n } else { 0 };
            let embed = ch * d * p * p + d + d /* cls */ + d /* mask */ + c.num_register_tokens * d;
            let attn = 4 * d * d + b(c.query_bias, d) + b(c.key_bias, d) + b(c.value_bias, d) + b(c.proj_bias, d);
            let mlp =
                if c.use_gated_mlp { 3 * d * f + b(c.mlp_bias, 2 * f + d) } else { 2 * d * f + b(c.mlp_bias, f + d) };
            let block = 2 * 2 * d /* norms */ + 2 * d /* layer scales */ + attn + mlp;
            embed + c.num_hidden_layers * block + 2 * d
        }
        BackboneConfig::ConvNext(c) => {
            let mut total = 0;
            let mut prev = c.num_channels;
            for (i, (&dim, &depth)) in c.hidden_sizes.iter().zip(&c.depths).enumerate() {
                total += if i == 0 { prev * dim * 16 + dim + 2 * dim } else { 2 * prev + prev * dim * 4 + dim };
                let layer = dim * 49 + dim + 2 * dim + dim * 4 * dim + 4 * dim + 4 * dim * dim + dim + dim;
                total += depth * layer;
                prev = dim;
            }
            total + 2 * prev
        }
    }
}

/// The catalog as a text table (`dinoseg backbones`).
pub fn table() -> String {
    let mut out = format!(
        "{:<15} {:<9} {:>6} {:>6} {:>6} {:>9} {:>9} {:>7} {:<16} {:<10} {}\n",
        "name", "family", "width", "depth", "heads", "params", "published", "ADE20K", "dense layers", "data", "hub id"
    );
    for v in VARIANTS {
        let cfg = v.config();
        let (width, depth, heads, dense) = match v.arch {
            Arch::Vit { hidden, depth, heads, .. } => {
                (hidden.to_string(), depth.to_string(), heads.to_string(), format!("{:?}", dense_layers(depth)))
            }
            Arch::ConvNext { dims, depths } => (
                format!("{}-{}", dims[0], dims[3]),
                format!("{:?}", depths).replace(' ', ""),
                "-".into(),
                "stages 0-3".into(),
            ),
        };
        for (i, w) in v.weights.iter().enumerate() {
            let (name, fam) = if i == 0 { (v.name, v.family()) } else { ("", "") };
            let params = format!("{:.1}M", param_count(&cfg) as f64 / 1e6);
            let published = format!("{}M", v.published_params_m);
            let miou = v.ade20k_linear_miou.map_or("-".to_string(), |m| format!("{m:.1}"));
            out.push_str(&format!(
                "{:<15} {:<9} {:>6} {:>6} {:>6} {:>9} {:>9} {:>7} {:<16} {:<10} {}\n",
                name, fam, width, depth, heads, params, published, miou, dense, w.dataset, w.hub_id
            ));
        }
    }
    out
}

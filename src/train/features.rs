//! The frozen encoder of `dinoseg train-head` and its feature cache.
//!
//! The encoder is whatever model a checkpoint the node loads holds ([`crate::checkpoint::load_model`]): a DINOv3
//! backbone (a head for `source: backbone`), or the encoder of an EoMT / Mask2Former model (a head for
//! `source: eomt` / `mask2former`), run as `dinoseg run` runs it: the library's preprocessing
//! ([`crate::pipeline::preprocess`]: the resize policy, the checkpoint's normalisation, zero padding to the size
//! multiple), no gradients, the dense maps the head reads ([`LinearHeadConfig::select`]), resized to the first
//! selected map and concatenated exactly as [`crate::model::heads::linear::LinearHead::forward`] does. The
//! concatenated maps are cached once per image on the training device in the cache dtype; `--flip` adds the
//! features of each image mirrored left to right, with its mirrored labels.

use super::data::{LabelMap, Sample};
use crate::catalog::Normalization;
use crate::checkpoint::{self, LoadedModel};
use crate::error::{Error, Result};
use crate::model::heads::linear::LinearHeadConfig;
use crate::model::{guarded, FeatureInfo, FeatureMap, ForwardOptions};
use crate::pipeline::preprocess::{preprocess, Letterbox, ResizePolicy};
use tch::{Device, Kind, Tensor};

/// A loaded frozen encoder.
pub struct Encoder {
    model: LoadedModel,
    pub norm: Normalization,
    /// What the encoder is, for messages (`the backbone`, `the EoMT encoder`, ...).
    pub what: &'static str,
}

impl Encoder {
    /// Loads `spec` (any checkpoint the node loads) on `device` in fp32.
    pub fn load(spec: &str, variant: Option<&str>, device: Device) -> Result<Self> {
        let (model, norm) = checkpoint::load_model(spec, variant, device, Kind::Float)?;
        let what = match &model {
            LoadedModel::Backbone(_) => "the backbone",
            LoadedModel::Eomt(_) => "the EoMT encoder",
            LoadedModel::Mask2Former(_) => "the Mask2Former backbone",
        };
        Ok(Encoder { model, norm, what })
    }

    /// The feature levels it gives linear heads.
    pub fn feature_info(&self) -> Vec<FeatureInfo> {
        match &self.model {
            LoadedModel::Backbone(b) => b.backbone.feature_info(),
            LoadedModel::Eomt(m) => m.model.config.feature_info(),
            LoadedModel::Mask2Former(m) => m.model.feature_info(),
        }
    }

    /// Input sides are padded to a multiple of this.
    pub fn size_multiple(&self) -> i64 {
        match &self.model {
            LoadedModel::Backbone(b) => b.backbone.size_multiple(),
            LoadedModel::Eomt(m) => m.model.config.vit.patch_size,
            LoadedModel::Mask2Former(m) => m.model.size_multiple(),
        }
    }

    /// The dense maps of `layers` for normalised pixels [1, 3, H, W].
    fn maps(&self, pixels: &Tensor, layers: &[i64]) -> Result<Vec<FeatureMap>> {
        Ok(match &self.model {
            LoadedModel::Backbone(b) => {
                let opts = ForwardOptions { hidden_states: false, dense_layers: Some(layers.to_vec()) };
                b.backbone.forward(pixels, &opts)?.0.features
            }
            LoadedModel::Eomt(m) => m.model.forward_with_features(pixels, layers)?.1,
            LoadedModel::Mask2Former(m) => m.model.forward_with_features(pixels, layers)?.1,
        })
    }
}

/// One cached training or validation item.
pub struct Item {
    /// The head's input [1, C, h, w] in the cache dtype, on the training device.
    pub features: Tensor,
    /// Class ids [H, W] (uint8 when every id fits, else int32; 255 ignored) on the training device.
    pub labels: Tensor,
    /// The geometry that maps the strided logits back to the label size (as inference does).
    pub letterbox: Letterbox,
}

impl Item {
    /// The same item, its tensors shared (no copy).
    pub fn share(&self) -> Item {
        Item { features: self.features.shallow_clone(), labels: self.labels.shallow_clone(), letterbox: self.letterbox }
    }
}

/// The cache: items and their bytes.
pub struct Cache {
    pub items: Vec<Item>,
    /// Bytes of the cached features.
    pub feature_bytes: u64,
    /// Bytes of the cached labels.
    pub label_bytes: u64,
}

/// How the cache is built.
pub struct CacheSpec<'a> {
    pub config: &'a LinearHeadConfig,
    pub policy: ResizePolicy,
    pub device: Device,
    pub kind: Kind,
    /// Also cache each image mirrored left to right.
    pub flip: bool,
}

/// Runs the encoder once over `samples` (and their mirror images with `spec.flip`) and caches the head's input.
pub fn build_cache(encoder: &Encoder, samples: &[Sample], spec: &CacheSpec) -> Result<Cache> {
    build_cache_with(encoder, samples, spec, &mut |_, _| {})
}

/// [`build_cache`], calling `done(images done, images)` after each image.
pub fn build_cache_with(
    encoder: &Encoder,
    samples: &[Sample],
    spec: &CacheSpec,
    done: &mut dyn FnMut(usize, usize),
) -> Result<Cache> {
    let layers = encoder.layers_for(spec.config)?;
    let mut cache = Cache { items: Vec::new(), feature_bytes: 0, label_bytes: 0 };
    for (i, s) in samples.iter().enumerate() {
        let views: Vec<(std::borrow::Cow<'_, _>, std::borrow::Cow<'_, LabelMap>)> = if spec.flip {
            vec![
                (std::borrow::Cow::Borrowed(&s.image), std::borrow::Cow::Borrowed(&s.labels)),
                (
                    std::borrow::Cow::Owned(image::imageops::flip_horizontal(&s.image)),
                    std::borrow::Cow::Owned(s.labels.flipped()),
                ),
            ]
        } else {
            vec![(std::borrow::Cow::Borrowed(&s.image), std::borrow::Cow::Borrowed(&s.labels))]
        };
        for (img, lab) in views {
            let view = View { image: &img, labels: lab.as_ref(), source: &s.image_path };
            let item = encoder.item(&view, &layers, spec.config, &spec.policy, spec.device, spec.kind)?;
            cache.feature_bytes += (item.features.numel() * spec.kind.elt_size_in_bytes()) as u64;
            cache.label_bytes += (item.labels.numel() * item.labels.kind().elt_size_in_bytes()) as u64;
            cache.items.push(item);
        }
        done(i + 1, samples.len());
    }
    Ok(cache)
}

/// One image view (as read, mirrored, ...) and its labels; `source` names the image file in errors.
pub struct View<'a> {
    pub image: &'a image::RgbImage,
    pub labels: &'a LabelMap,
    pub source: &'a std::path::Path,
}

impl Encoder {
    /// The encoder levels `config` reads (checked against the encoder).
    pub fn layers_for(&self, config: &LinearHeadConfig) -> Result<Vec<i64>> {
        let picked = config.select(&self.feature_info(), self.what).map_err(Error::Input)?;
        Ok(picked.iter().map(|f| f.index as i64).collect())
    }

    /// The head's input for one view: preprocessed by `policy`, run through the encoder, the maps of `layers`
    /// concatenated and cast to `kind`; the labels on `device`.
    pub fn item(
        &self,
        view: &View,
        layers: &[i64],
        config: &LinearHeadConfig,
        policy: &ResizePolicy,
        device: Device,
        kind: Kind,
    ) -> Result<Item> {
        let (pixels, letterbox) = preprocess(view.image, policy, &self.norm, device, Kind::Float)
            .map_err(|e| Error::file(view.source, e.to_string()))?;
        let maps = self.maps(&pixels, layers)?;
        let features = concat_maps(&maps, config.layers.count(), view.source)?;
        let features = guarded(|| features.to_kind(kind).contiguous())?;
        let labels = label_tensor(view.labels, device)?;
        Ok(Item { features, labels, letterbox })
    }
}

/// The head's input from the maps the encoder returned: the maps resized (bilinear, align_corners = false) to
/// the first one and concatenated on channels, as the linear head's forward does.
pub fn concat_maps(maps: &[FeatureMap], want: usize, source: &std::path::Path) -> Result<Tensor> {
    if maps.len() != want || maps.is_empty() {
        let got: Vec<usize> = maps.iter().map(|m| m.index).collect();
        return Err(Error::file(source, format!("the encoder gave the levels {got:?}, the head reads {want}")));
    }
    guarded(|| {
        let _g = tch::no_grad_guard();
        let size = maps[0].tensor.size();
        let hw = [size[2], size[3]];
        let resized: Vec<Tensor> = maps
            .iter()
            .map(|m| {
                let t = m.tensor.to_kind(Kind::Float);
                if t.size()[2..] == hw {
                    t
                } else {
                    t.upsample_bilinear2d(hw, false, None, None)
                }
            })
            .collect();
        if resized.len() == 1 {
            resized[0].shallow_clone()
        } else {
            Tensor::cat(&resized, 1)
        }
    })
}

/// A label map as an [H, W] tensor on `device`: uint8 when every id is at most 255 (a quarter of int32's
/// memory), else int32.
pub fn label_tensor(labels: &LabelMap, device: Device) -> Result<Tensor> {
    let shape = [i64::from(labels.height), i64::from(labels.width)];
    if labels.ids.iter().all(|&v| v <= 255) {
        let ids: Vec<u8> = labels.ids.iter().map(|&v| v as u8).collect();
        guarded(|| Tensor::from_slice(&ids).view(shape).to_device(device))
    } else {
        let ids: Vec<i32> = labels.ids.iter().map(|&v| i32::from(v)).collect();
        guarded(|| Tensor::from_slice(&ids).view(shape).to_device(device))
    }
}

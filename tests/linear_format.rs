//! The one rule for the channels a head gets from an encoder: `feature_info` from a config alone (the catalog's
//! architectures, an EoMT config) and `LinearHeadConfig::select` on it, as `check-params`, the loader and the
//! segmenter all call it. No weights and no fixtures: these run in milliseconds.

use dinoseg::catalog;
use dinoseg::model::config::BackboneConfig;
use dinoseg::model::heads::eomt::EomtConfig;
use dinoseg::model::heads::linear::{LayerSelection, LinearHeadConfig};
use dinoseg::model::FeatureInfo;

fn head(layers: LayerSelection, in_channels: i64) -> LinearHeadConfig {
    LinearHeadConfig {
        num_classes: 2,
        in_channels,
        layers,
        backbone: "custom".into(),
        class_names: vec!["a".into(), "b".into()],
        bn_eps: 1e-5,
    }
}

fn config(variant: &str) -> BackboneConfig {
    catalog::find(variant).unwrap_or_else(|| panic!("catalog variant {variant}")).config()
}

fn indices(picked: &[FeatureInfo]) -> Vec<usize> {
    picked.iter().map(|f| f.index).collect()
}

#[test]
fn a_vit_gives_every_block_and_heads_read_the_official_ones() {
    let info = config("vitl16").feature_info();
    assert_eq!(info.len(), 24);
    assert!(info.iter().enumerate().all(|(i, f)| *f == FeatureInfo { index: i, channels: 1024, stride: 16 }));
    let picked = head(LayerSelection::Dense4, 4 * 1024).select(&info, "the backbone").expect("dense4");
    assert_eq!(indices(&picked), [4, 11, 17, 23]);
    let picked = head(LayerSelection::Last, 1024).select(&info, "the backbone").expect("last");
    assert_eq!(indices(&picked), [23]);
    let e = head(LayerSelection::Dense4, 1024).select(&info, "the backbone").expect_err("4 x 1024 channels");
    assert!(e.contains("takes 1024 input channels but the backbone gives 4096 (layers: 4)"), "{e}");
    let picked = head(LayerSelection::Dense4, 4 * 384).select(&config("vits16").feature_info(), "x").expect("vits");
    assert_eq!(indices(&picked), [2, 5, 8, 11]);
}

#[test]
fn a_convnext_gives_its_four_stages() {
    let info = config("convnext_tiny").feature_info();
    let want: Vec<(usize, i64, i64)> = vec![(0, 96, 4), (1, 192, 8), (2, 384, 16), (3, 768, 32)];
    assert_eq!(info.iter().map(|f| (f.index, f.channels, f.stride)).collect::<Vec<_>>(), want);
    let picked = head(LayerSelection::Dense4, 96 + 192 + 384 + 768).select(&info, "the backbone").expect("dense4");
    assert_eq!(indices(&picked), [0, 1, 2, 3]);
    let picked = head(LayerSelection::Last, 768).select(&info, "the backbone").expect("last");
    assert_eq!(indices(&picked), [3]);
    let e = head(LayerSelection::Last, 1440).select(&info, "the backbone").expect_err("last stage only");
    assert!(e.contains("takes 1440 input channels but the backbone gives 768 (layers: last)"), "{e}");
}

#[test]
fn a_shallow_encoder_has_no_four_dense_layers() {
    let BackboneConfig::Vit(mut vit) = config("vits16") else { panic!("vits16 is a ViT") };
    vit.num_hidden_layers = 3;
    let info = BackboneConfig::Vit(vit.clone()).feature_info();
    let e = head(LayerSelection::Dense4, 4 * 384).select(&info, "the backbone").expect_err("depth 3");
    assert!(e.contains("needs 4 dense layers") && e.contains("the backbone of depth 3"), "{e}");
    let picked = head(LayerSelection::Last, 384).select(&info, "the backbone").expect("last");
    assert_eq!(indices(&picked), [2]);
    // An unchecked config cannot make it allocate: the depth is capped.
    vit.num_hidden_layers = i64::MAX;
    assert!(vit.feature_info().len() <= dinoseg::model::config::MAX_LAYERS as usize);
    assert!(head(LayerSelection::Last, 1).select(&[], "nothing").is_err());
}

#[test]
fn the_eomt_encoder_gives_its_vits_levels() {
    let value = serde_json::json!({"model_type": "eomt_dinov3", "hidden_size": 64, "num_attention_heads": 4,
        "num_hidden_layers": 8, "id2label": {"0": "a"}});
    let eomt = EomtConfig::from_json(value).expect("eomt config");
    let info = eomt.feature_info();
    assert_eq!(info, BackboneConfig::Vit(eomt.vit.clone()).feature_info());
    let e = head(LayerSelection::Dense4, 64).select(&info, "the EoMT encoder").expect_err("4 x 64");
    assert!(e.contains("takes 64 input channels but the EoMT encoder gives 256"), "{e}");
    let picked = head(LayerSelection::Dense4, 256).select(&info, "the EoMT encoder").expect("dense4");
    assert_eq!(indices(&picked), [1, 3, 5, 7]);
}

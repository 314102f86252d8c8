//! The catalog: every released variant present, parameter counts against the published figures, models
//! built from entries holding exactly the computed count, the official dense-layer rule.

use dinoseg::catalog::{self, Arch, CONVNEXT_CLASSIFIER_CLASSES, VARIANTS};
use dinoseg::model::LoadedBackbone;
use tch::Device;

#[test]
fn every_released_variant_is_listed() {
    let names: Vec<&str> = VARIANTS.iter().map(|v| v.name).collect();
    for n in [
        "vits16",
        "vits16plus",
        "vitb16",
        "vitl16",
        "vith16plus",
        "vit7b16",
        "convnext_tiny",
        "convnext_small",
        "convnext_base",
        "convnext_large",
    ] {
        assert!(names.contains(&n), "{n} missing");
    }
    // SAT-493M weights exist for ViT-L and ViT-7B only, with their own normalisation.
    for n in ["vitl16", "vit7b16"] {
        let v = catalog::find(n).expect("listed");
        let sat = v.weights.iter().find(|w| w.dataset == "sat493m").expect("sat weights");
        assert_eq!(sat.norm, catalog::SAT493M);
        assert!(sat.hub_id.ends_with("-sat493m"));
    }
    assert_eq!(catalog::find("facebook/dinov3-vitb16-pretrain-lvd1689m").map(|v| v.name), Some("vitb16"));
    assert!(catalog::find("vitz99").is_none());
}

#[test]
fn parameter_counts_match_published_figures_within_2_percent() {
    for v in VARIANTS {
        let mut count = catalog::param_count(&v.config()) as f64;
        if let Arch::ConvNext { dims, .. } = v.arch {
            // The published ConvNeXt sizes count an ImageNet-1k classifier on the last stage.
            count += (dims[3] * CONVNEXT_CLASSIFIER_CLASSES + CONVNEXT_CLASSIFIER_CLASSES) as f64;
        }
        let published = v.published_params_m * 1e6;
        let rel = (count - published).abs() / published;
        assert!(
            rel < 0.02,
            "{}: computed {:.2}M vs published {}M ({:.1}%)",
            v.name,
            count / 1e6,
            v.published_params_m,
            rel * 100.0
        );
    }
}

#[test]
fn built_models_hold_exactly_the_computed_count() {
    for name in ["vits16", "vits16plus", "convnext_tiny"] {
        let v = catalog::find(name).expect("listed");
        let model = LoadedBackbone::build(&v.config(), Device::Cpu).expect("build");
        assert_eq!(model.param_count(), catalog::param_count(&v.config()), "{name}");
    }
}

#[test]
fn dense_layers_follow_the_official_rule() {
    assert_eq!(catalog::dense_layers(24), vec![4, 11, 17, 23]);
    assert_eq!(catalog::dense_layers(12), vec![2, 5, 8, 11]);
    assert_eq!(catalog::dense_layers(32), vec![7, 15, 23, 31]);
    assert_eq!(catalog::dense_layers(40), vec![9, 19, 29, 39]);
}

#[test]
fn seven_b_has_no_query_value_bias_and_swiglu() {
    let v = catalog::find("vit7b16").expect("listed");
    match v.config() {
        dinoseg::model::config::BackboneConfig::Vit(c) => {
            assert!(!c.query_bias && !c.value_bias && !c.key_bias && c.use_gated_mlp);
            assert_eq!(
                (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size),
                (4096, 40, 32, 8192)
            );
            assert_eq!(c.hidden_act, "silu");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn table_lists_every_hub_id() {
    let table = catalog::table();
    for v in VARIANTS {
        for w in v.weights {
            assert!(table.contains(w.hub_id), "{} missing from table", w.hub_id);
        }
    }
}

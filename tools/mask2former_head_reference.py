#!/usr/bin/env python3
"""Reference outputs of transformers' Mask2Former head (`Mask2FormerForUniversalSegmentation`,
models/mask2former/modeling_mask2former.py) for tests/mask2former_head.rs.

Usage: mask2former_head_reference.py OUT_DIR

Writes one `<case>.safetensors` per case, holding the head's state-dict entries under transformers' names
(`model.pixel_level_module.decoder.*`, `model.transformer_module.*`, `class_predictor.*`, plus the loss buffer
`criterion.empty_weight`), the backbone feature maps `features.N` (shallow to deep) and the outputs
`class_queries_logits` / `masks_queries_logits`; `<case>.json` holds the head config. Cases:

- `convnext`: a tiny random DINOv3 ConvNeXt backbone (strides 4..32), post-norm decoder, relu, on a
  2x3x96x160 input, through the full model (`output_hidden_states=True` gives the backbone maps);
- `prenorm`: the same with `pre_norm=True`, `enforce_input_projection=True`, gelu and mask_feature_size != hidden;
- `vit16`: four maps at stride 16 (as a ViT backbone gives), `feature_strides=[16]*4`, hidden_dim != feature_size,
  fed straight into the pixel decoder and transformer module.

Every parameter (norms and level embeddings included) is perturbed with a seeded normal, so nothing is an identity.
"""

import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import DINOv3ConvNextConfig, Mask2FormerConfig, Mask2FormerForUniversalSegmentation
from transformers.utils import logging

HEAD_PREFIXES = ("model.pixel_level_module.decoder.", "model.transformer_module.", "class_predictor.", "criterion.")
CONFIG_KEYS = (
    "feature_size",
    "mask_feature_size",
    "hidden_dim",
    "encoder_feedforward_dim",
    "activation_function",
    "encoder_layers",
    "decoder_layers",
    "num_attention_heads",
    "dim_feedforward",
    "pre_norm",
    "enforce_input_projection",
    "common_stride",
    "num_queries",
    "feature_strides",
    "id2label",
)


def build(seed, hidden_sizes, head):
    torch.manual_seed(seed)
    backbone = DINOv3ConvNextConfig(
        hidden_sizes=hidden_sizes, depths=[1, 1, 1, 1], out_features=["stage1", "stage2", "stage3", "stage4"]
    )
    labels = {i: f"class{i}" for i in range(5)}
    config = Mask2FormerConfig(backbone_config=backbone, id2label=labels, label2id={v: k for k, v in labels.items()}, **head)
    model = Mask2FormerForUniversalSegmentation(config).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.5 if ("norm" in name or name.endswith(".1.weight") or name.endswith(".1.bias")) else 0.1
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model, config


def head_state(model):
    return {k: v.contiguous() for k, v in model.state_dict().items() if k.startswith(HEAD_PREFIXES)}


def save(out, name, model, config, features, class_logits, mask_logits):
    tensors = head_state(model)
    for i, f in enumerate(features):
        tensors[f"features.{i}"] = f.contiguous()
    tensors["class_queries_logits"] = class_logits.contiguous()
    tensors["masks_queries_logits"] = mask_logits.contiguous()
    save_file(tensors, os.path.join(out, f"{name}.safetensors"))
    cfg = {k: getattr(config, k) for k in CONFIG_KEYS}
    cfg["id2label"] = {str(k): v for k, v in cfg["id2label"].items()}
    cfg["feature_channels"] = [int(f.shape[1]) for f in features]
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(cfg, f, indent=1)


def full_model_case(out, name, seed, head):
    model, config = build(seed, [32, 64, 128, 256], head)
    gen = torch.Generator().manual_seed(seed + 2)
    pixels = torch.randn(2, 3, 96, 160, generator=gen)
    with torch.no_grad():
        o = model(pixel_values=pixels, output_hidden_states=True)
    save(out, name, model, config, o.encoder_hidden_states, o.class_queries_logits, o.masks_queries_logits)


def stride16_case(out, name, seed, head):
    model, config = build(seed, [48, 48, 48, 48], head)
    gen = torch.Generator().manual_seed(seed + 2)
    features = [torch.randn(2, 48, 6, 10, generator=gen) for _ in range(4)]
    with torch.no_grad():
        pixel = model.model.pixel_level_module.decoder(features)
        dec = model.model.transformer_module(
            multi_scale_features=pixel.multi_scale_features, mask_features=pixel.mask_features
        )
        class_logits = model.class_predictor(dec.intermediate_hidden_states[-1].transpose(0, 1))
        mask_logits = dec.masks_queries_logits[-1]
    save(out, name, model, config, features, class_logits, mask_logits)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    logging.set_verbosity_error()
    tiny = dict(
        feature_size=64,
        mask_feature_size=64,
        hidden_dim=64,
        num_attention_heads=4,
        encoder_layers=2,
        decoder_layers=4,
        num_queries=10,
        encoder_feedforward_dim=96,
        dim_feedforward=80,
    )
    full_model_case(out, "convnext", 1, tiny)
    prenorm = dict(tiny, pre_norm=True, enforce_input_projection=True, activation_function="gelu", mask_feature_size=48)
    full_model_case(out, "prenorm", 2, prenorm)
    vit = dict(tiny, hidden_dim=32, feature_strides=[16, 16, 16, 16], decoder_layers=5)
    stride16_case(out, "vit16", 3, vit)
    open(os.path.join(out, "DONE"), "w").close()


if __name__ == "__main__":
    main()

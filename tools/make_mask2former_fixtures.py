#!/usr/bin/env python3
"""Tiny random-weight Mask2Former checkpoints on DINOv3 backbones, with transformers' reference outputs.

Usage: make_mask2former_fixtures.py OUT_DIR

Writes, for each CASE in convnext, vit, adapter_plain, adapter_pyramid:
  OUT_DIR/m2f_CASE/               the model as `save_pretrained` writes it (config.json + model.safetensors), plus
                                  preprocessor_config.json; the adapter cases also dinov3_backbone_config.json
  OUT_DIR/m2f_CASE_ref.safetensors  transformers' class_queries_logits, masks_queries_logits and the backbone
                                  feature maps the pixel decoder reads (encoder_hidden_states.N)
  OUT_DIR/m2f_convnext_bin/       the convnext case with its weights as pytorch_model.bin
  OUT_DIR/m2f_input.safetensors   pixel_values [2, 3, 96, 160]
The convnext and vit cases are transformers' Mask2FormerForUniversalSegmentation with a `dinov3_convnext` /
`dinov3_vit` backbone_config. The adapter cases follow the DINOv3-Mask2former repository
(github Carti-97/DINOv3-Mask2former, models/dinov3_mask2former_base.py): a Mask2Former built with a tiny Swin
backbone config whose channels equal the adapter outputs, its `model.pixel_level_module.encoder` replaced by
{model: DINOv3ViTModel, adapter}, features = hidden_states[layer + 1] with the prefix tokens dropped, then 1x1
projections (plain) or the ViTDet pyramid (resamplers). adapter_pyramid has 12 blocks and the small-plus variant
file, so its default layers [2, 5, 8, 11] apply; adapter_plain names an unknown variant file and taps [0, 1, 2, 3].
Every parameter is perturbed with a seeded normal (no identity norms). Seeded, deterministic, no network.
"""
import json
import os
import shutil
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file
from transformers import (DINOv3ConvNextConfig, DINOv3ViTConfig, DINOv3ViTModel, Mask2FormerConfig,
                          Mask2FormerForUniversalSegmentation, SwinConfig)
from transformers.modeling_outputs import BackboneOutput

LABELS = {0: "person", 1: "car", 2: "road", 3: "sky", 4: "tree"}
HEAD = dict(feature_size=64, mask_feature_size=64, hidden_dim=64, encoder_feedforward_dim=128, dim_feedforward=128,
            encoder_layers=2, decoder_layers=4, num_attention_heads=4, num_queries=10,
            id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
VIT = dict(hidden_size=64, num_attention_heads=4, intermediate_size=128, num_register_tokens=2, patch_size=16,
           layer_norm_eps=1e-5, rope_theta=100.0)
H, W = 96, 160


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            scale = 0.1 if p.ndim == 1 and ("norm" in name or "lambda" in name or "gamma" in name) else 0.05
            p.add_(scale * torch.randn(p.shape, generator=g))


class Adapter(nn.Module):
    def __init__(self, dim, out_channels):
        super().__init__()
        self.projections = nn.ModuleList([nn.Conv2d(dim, c, 1) for c in out_channels])

    def forward(self, feats):
        return [p(f) for p, f in zip(self.projections, feats)]


class PyramidAdapter(nn.Module):
    def __init__(self, dim, out_channels):
        super().__init__()
        self.resamplers = nn.ModuleList([
            nn.Sequential(nn.ConvTranspose2d(dim, dim // 2, 2, stride=2), nn.GroupNorm(32, dim // 2), nn.GELU(),
                          nn.ConvTranspose2d(dim // 2, dim // 4, 2, stride=2)),
            nn.ConvTranspose2d(dim, dim // 2, 2, stride=2),
            nn.Identity(),
            nn.MaxPool2d(2, 2),
        ])
        dims = [dim // 4, dim // 2, dim, dim]
        self.projections = nn.ModuleList([nn.Conv2d(d, c, 1) for d, c in zip(dims, out_channels)])

    def forward(self, feats):
        return [p(r(f)) for f, r, p in zip(feats, self.resamplers, self.projections)]


class DinoV3WithAdapter(nn.Module):
    def __init__(self, vit_config, out_channels, layers, pyramid):
        super().__init__()
        self.model = DINOv3ViTModel(vit_config)
        dim = vit_config.hidden_size
        self.adapter = PyramidAdapter(dim, out_channels) if pyramid else Adapter(dim, out_channels)
        self.channels = list(out_channels)
        self.layers = layers

    def forward(self, x):
        hs = self.model(pixel_values=x, output_hidden_states=True, return_dict=True).hidden_states
        b, _, h, w = x.shape
        p = self.model.config.patch_size
        prefix = 1 + self.model.config.num_register_tokens
        feats = [hs[i + 1][:, prefix:, :].permute(0, 2, 1).reshape(b, -1, h // p, w // p) for i in self.layers]
        return BackboneOutput(feature_maps=tuple(self.adapter(feats)))


def build(case):
    torch.manual_seed(0)
    if case == "convnext":
        bb = DINOv3ConvNextConfig(hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 2, 1],
                                  out_features=["stage1", "stage2", "stage3", "stage4"])
        return Mask2FormerForUniversalSegmentation(Mask2FormerConfig(backbone_config=bb, **HEAD)), None
    if case == "vit":
        bb = DINOv3ViTConfig(num_hidden_layers=6, out_indices=[1, 2, 4, 6], **VIT)
        return Mask2FormerForUniversalSegmentation(Mask2FormerConfig(backbone_config=bb, **HEAD)), None
    pyramid = case == "adapter_pyramid"
    depth, layers = (12, [2, 5, 8, 11]) if pyramid else (4, [0, 1, 2, 3])
    swin = SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8], window_size=4,
                      out_features=["stage1", "stage2", "stage3", "stage4"])
    m = Mask2FormerForUniversalSegmentation(Mask2FormerConfig(backbone_config=swin, **HEAD))
    vit = DINOv3ViTConfig(num_hidden_layers=depth, **VIT)
    m.model.pixel_level_module.encoder = DinoV3WithAdapter(vit, [16, 32, 64, 128], layers, pyramid)
    variant = "models/mask2former_dinov3_vitsmallplus_pyramid.py" if pyramid else "models/my_own_variant.py"
    return m, {"model_file": variant, "dinov3_model_name": "facebook/dinov3-vits16plus-pretrain-lvd1689m"}


def main():
    out = sys.argv[1]
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(2, 3, H, W, generator=g)
    save_file({"pixel_values": x}, os.path.join(tmp, "m2f_input.safetensors"))
    pre = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
    for i, case in enumerate(["convnext", "vit", "adapter_plain", "adapter_pyramid"]):
        model, extra = build(case)
        perturb(model, 100 + i)
        model.eval()
        d = os.path.join(tmp, f"m2f_{case}")
        model.save_pretrained(d)
        with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
            json.dump(pre, f)
        if extra is not None:
            with open(os.path.join(d, "dinov3_backbone_config.json"), "w") as f:
                json.dump(extra, f, indent=2)
        with torch.no_grad():
            o = model(pixel_values=x, output_hidden_states=True)
        ref = {"class_queries_logits": o.class_queries_logits.contiguous(),
               "masks_queries_logits": o.masks_queries_logits.contiguous()}
        for j, f in enumerate(o.encoder_hidden_states):
            ref[f"encoder_hidden_states.{j}"] = f.contiguous()
        save_file(ref, os.path.join(tmp, f"m2f_{case}_ref.safetensors"))
        if case == "convnext":
            b = os.path.join(tmp, "m2f_convnext_bin")
            shutil.copytree(d, b)
            os.remove(os.path.join(b, "model.safetensors"))
            torch.save(load_file(os.path.join(d, "model.safetensors")), os.path.join(b, "pytorch_model.bin"))
    open(os.path.join(tmp, "M2F_DONE"), "w").close()
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)


if __name__ == "__main__":
    main()

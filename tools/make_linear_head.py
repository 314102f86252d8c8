#!/usr/bin/env python3
"""Random-weight DINOv3 linear semantic heads and PyTorch reference logits for `tests/linear_head.rs`.

Usage: make_linear_head.py OUT_DIR

The reference is the official protocol (facebookresearch/dinov3, `dinov3/eval/segmentation/models/heads/
linear_head.py`, `LinearHead.predict`): dense features taken after the backbone's final norm, bilinearly resized
to the size of the first selected map, concatenated on channels -> BatchNorm (eval, running stats) -> 1x1 conv ->
bilinear up-sampling (align_corners=False). Inputs whose sides are not multiples of the backbone's size multiple
are zero-padded on the right and bottom first (what `dinoseg` does), and the up-sampled logits are cropped back.

Writes, for each backbone BB (vit8: hidden 64, 8 blocks, dense layers [1, 3, 5, 7]; vit3: the `vit_mlp` config of
make_fixtures.py, 3 blocks, so the official rule gives no dense layers; convnext: make_fixtures.py's ConvNeXt):
  OUT_DIR/BB/                                 transformers directory of the backbone
  OUT_DIR/BB_input_HxW.safetensors            pixel_values [B, 3, H, W]
and for each head BB_L (L = 4 or last):
  OUT_DIR/BB_L.safetensors                    dinoseg format (bn.*, conv.*) with `dinoseg.*` metadata
  OUT_DIR/BB_L_ref.safetensors                reference module's state dict (batchnorm_layer.*, conv.*) + sidecar .json
  OUT_DIR/BB_L_seq.safetensors                nn.Sequential(BatchNorm2d, Conv2d) state dict (0.*, 1.*) + sidecar .json
  OUT_DIR/BB_L_official.pth                   official training output layout {"model": {"segmentation_model.1.*"}}
  OUT_DIR/BB_L_logits_HxW.safetensors         logits_stride [B, K, h, w] and logits_full [B, K, H, W]
plus broken heads for the error tests: bad_classes (3 names for 5 classes), bad_json (classes not JSON),
bad_layers (layers = "7"), bad_missing (no conv.bias). No network is used.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from transformers import DINOv3ConvNextConfig, DINOv3ConvNextModel, DINOv3ViTConfig, DINOv3ViTModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import randomise  # noqa: E402

CLASSES = ["road", "sidewalk", "person", "car", "vegetation"]
BN_EPS = 1e-5


def dense_layers(depth):
    """The official rule, as `catalog::dense_layers` computes it."""
    if depth == 24:
        return [4, 11, 17, 23]
    return [i * (depth // 4) - 1 for i in range(1, 5) if i * (depth // 4) - 1 >= 0]


class RefLinearHead(nn.Module):
    """The official LinearHead at inference (`predict`), with its parameter names."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.batchnorm_layer = nn.BatchNorm2d(in_channels, eps=BN_EPS)
        self.conv = nn.Conv2d(in_channels, num_classes, kernel_size=1)

    def forward(self, feats):
        size = feats[0].shape[2:]
        x = torch.cat([F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats], dim=1)
        return self.conv(self.batchnorm_layer(x))


def vit_features(model, x, layers):
    """Patch tokens of the chosen blocks after the final norm, as NCHW maps."""
    o = model(pixel_values=x, output_hidden_states=True)
    b, _, h, w = x.shape
    p, prefix = model.config.patch_size, 1 + model.config.num_register_tokens
    maps = []
    for i in layers:
        t = model.norm(o.hidden_states[i + 1])[:, prefix:, :]
        maps.append(t.reshape(b, h // p, w // p, -1).permute(0, 3, 1, 2))
    return maps


def convnext_features(model, x, stages):
    """Stage outputs; the last one through the final norm (the official `norms[3]`)."""
    o = model(pixel_values=x, output_hidden_states=True)
    maps = []
    for i in stages:
        t = o.hidden_states[i + 1]
        if i == 3:
            t = model.layer_norm(t.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        maps.append(t)
    return maps


def backbones():
    vit = dict(hidden_size=64, num_attention_heads=4, intermediate_size=128, num_register_tokens=4, patch_size=16)
    v8 = DINOv3ViTModel(DINOv3ViTConfig(**vit, num_hidden_layers=8))
    dense8 = dense_layers(8)
    yield "vit8", v8, 16, [(48, 80), (40, 70)], {"4": dense8, "last": [7]}, vit_features
    v3 = DINOv3ViTModel(DINOv3ViTConfig(**vit, num_hidden_layers=3))
    yield "vit3", v3, 16, [(40, 70)], {"last": [2]}, vit_features
    cn = DINOv3ConvNextModel(DINOv3ConvNextConfig(hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 2, 1]))
    yield "convnext", cn, 32, [(64, 96), (60, 90)], {"4": [0, 1, 2, 3], "last": [3]}, convnext_features


def random_head(channels, seed):
    g = torch.Generator().manual_seed(seed)
    head = RefLinearHead(channels, len(CLASSES))
    with torch.no_grad():
        bn = head.batchnorm_layer
        bn.weight.copy_(1.0 + 0.3 * torch.randn(channels, generator=g))
        bn.bias.copy_(0.3 * torch.randn(channels, generator=g))
        bn.running_mean.copy_(0.5 * torch.randn(channels, generator=g))
        bn.running_var.copy_(0.5 + 1.5 * torch.rand(channels, generator=g))
        bn.num_batches_tracked.fill_(1234)
        head.conv.weight.copy_(0.2 * torch.randn(head.conv.weight.shape, generator=g))
        head.conv.bias.copy_(0.1 * torch.randn(len(CLASSES), generator=g))
    return head.eval()


def ours(head):
    """The dinoseg names."""
    sd = head.state_dict()
    out = {"bn." + k[len("batchnorm_layer."):]: v for k, v in sd.items() if k.startswith("batchnorm_layer.")}
    out.pop("bn.num_batches_tracked")
    out.update({k: v for k, v in sd.items() if k.startswith("conv.")})
    return {k: v.contiguous() for k, v in out.items()}


def metadata(backbone, layers, classes=CLASSES):
    return {"dinoseg.head": "linear", "dinoseg.backbone": backbone, "dinoseg.layers": layers,
            "dinoseg.classes": json.dumps(classes), "dinoseg.bn_eps": repr(BN_EPS)}


def sidecar(path, backbone, layers):
    with open(path + ".json", "w") as fh:
        json.dump({"head": "linear", "backbone": backbone, "layers": layers, "classes": CLASSES}, fh)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for seed, (name, model, multiple, sizes, heads, features) in enumerate(backbones()):
        randomise(model, 300 + seed)
        model.save_pretrained(os.path.join(out, name))
        for h, w in sizes:
            x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(seed * 7 + h + w))
            save_file({"pixel_values": x.contiguous()}, os.path.join(out, f"{name}_input_{h}x{w}.safetensors"))
        for k, (layers, idx) in enumerate(heads.items()):
            with torch.no_grad():
                probe = features(model, torch.zeros(1, 3, multiple, multiple), idx)
            channels = sum(m.shape[1] for m in probe)
            head = random_head(channels, 500 + 10 * seed + k)
            base = os.path.join(out, f"{name}_{layers}")
            save_file(ours(head), base + ".safetensors", metadata=metadata("custom", layers))
            ref_sd = {k: v.contiguous() for k, v in head.state_dict().items()}
            save_file(ref_sd, base + "_ref.safetensors")
            sidecar(base + "_ref.safetensors", "custom", layers)
            seq = nn.Sequential(head.batchnorm_layer, head.conv)
            save_file({k: v.contiguous() for k, v in seq.state_dict().items()}, base + "_seq.safetensors")
            sidecar(base + "_seq.safetensors", "custom", layers)
            official = {"segmentation_model.1." + k: v for k, v in head.state_dict().items()}
            torch.save({"model": official, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]}},
                       base + "_official.pth")
            sidecar(base + "_official.pth", "custom", layers)
            for h, w in sizes:
                x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(seed * 7 + h + w))
                ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
                with torch.no_grad():
                    xp = F.pad(x, (0, pw - w, 0, ph - h))
                    logits = head(features(model, xp, idx))
                    full = F.interpolate(logits, size=(ph, pw), mode="bilinear", align_corners=False)[:, :, :h, :w]
                save_file({"logits_stride": logits.contiguous(), "logits_full": full.contiguous()},
                          f"{base}_logits_{h}x{w}.safetensors")
            if name == "vit8" and layers == "4":
                good = ours(head)
                save_file(good, os.path.join(out, "bad_classes.safetensors"),
                          metadata=metadata("custom", "4", CLASSES[:3]))
                bad = metadata("custom", "4")
                bad["dinoseg.classes"] = '["road", "sidewalk"'
                save_file(good, os.path.join(out, "bad_json.safetensors"), metadata=bad)
                save_file(good, os.path.join(out, "bad_layers.safetensors"), metadata=metadata("custom", "7"))
                missing = {k: v for k, v in good.items() if k != "conv.bias"}
                save_file(missing, os.path.join(out, "bad_missing.safetensors"), metadata=metadata("custom", "4"))
    with open(os.path.join(out, "DONE"), "w") as fh:
        json.dump({"torch": torch.__version__}, fh)


if __name__ == "__main__":
    main()

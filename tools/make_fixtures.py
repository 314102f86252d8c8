#!/usr/bin/env python3
"""Tiny random-weight DINOv3 checkpoints and transformers reference outputs for the parity tests.

Usage: make_fixtures.py OUT_DIR

Writes, for each model NAME (vit_mlp, vit_swiglu, vit_nobias, convnext):
  OUT_DIR/NAME/                     transformers directory (config.json + model.safetensors)
  OUT_DIR/NAME_input_HxW.safetensors  pixel_values [B,3,H,W] float32
  OUT_DIR/NAME_ref_HxW.safetensors    transformers' outputs (last_hidden_state, hidden_states.{i})
plus OUT_DIR/vit_mlp_sharded/ (the same weights in shards with an index) and OUT_DIR/hub_cache/ (a Hugging Face
cache holding vit_mlp under a hub id). Every parameter is randomised (LayerScale, norms, biases too) so that a
wrong name, order or formula shows up in the outputs. No network is used.
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from transformers import DINOv3ConvNextConfig, DINOv3ConvNextModel, DINOv3ViTConfig, DINOv3ViTModel

SIZES_VIT = [(64, 64), (48, 80)]
SIZES_CONVNEXT = [(64, 64), (64, 96)]


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and ("norm" in name or "lambda" in name or "gamma" in name):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return model.eval()


def models():
    vit = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
               num_register_tokens=4, patch_size=16)
    yield "vit_mlp", DINOv3ViTModel(DINOv3ViTConfig(**vit)), SIZES_VIT
    yield "vit_swiglu", DINOv3ViTModel(DINOv3ViTConfig(**vit, use_gated_mlp=True, hidden_act="silu")), SIZES_VIT
    yield "vit_nobias", DINOv3ViTModel(DINOv3ViTConfig(
        **vit, use_gated_mlp=True, hidden_act="silu", query_bias=False, value_bias=False)), SIZES_VIT
    cfg = DINOv3ConvNextConfig(hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 2, 1])
    yield "convnext", DINOv3ConvNextModel(cfg), SIZES_CONVNEXT


def write_hub_cache(out, src_dir, repo_id):
    """A cache laid out as huggingface_hub writes it: blobs, a snapshot of symlinks, refs/main."""
    repo = os.path.join(out, "hub_cache", "models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = os.path.join(repo, "snapshots", commit)
    os.makedirs(snap, exist_ok=True)
    os.makedirs(os.path.join(repo, "blobs"), exist_ok=True)
    os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
    for i, f in enumerate(sorted(os.listdir(src_dir))):
        blob = os.path.join(repo, "blobs", f"blob{i:04d}")
        shutil.copy(os.path.join(src_dir, f), blob)
        link = os.path.join(snap, f)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.relpath(blob, snap), link)
    with open(os.path.join(repo, "refs", "main"), "w") as fh:
        fh.write(commit)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    for seed, (name, model, sizes) in enumerate(models()):
        randomise(model, 100 + seed)
        model.save_pretrained(os.path.join(out, name))
        for h, w in sizes:
            x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(seed * 10 + h + w))
            with torch.no_grad():
                o = model(pixel_values=x, output_hidden_states=True)
            ref = {"last_hidden_state": o.last_hidden_state.contiguous()}
            for i, hs in enumerate(o.hidden_states):
                ref[f"hidden_states.{i}"] = hs.contiguous()
            save_file({"pixel_values": x.contiguous()}, os.path.join(out, f"{name}_input_{h}x{w}.safetensors"))
            save_file(ref, os.path.join(out, f"{name}_ref_{h}x{w}.safetensors"))
        if name == "vit_mlp":
            model.save_pretrained(os.path.join(out, "vit_mlp_sharded"), max_shard_size="40KB")
            write_hub_cache(out, os.path.join(out, name), "dinoseg-test/tiny-vit")
    with open(os.path.join(out, "DONE"), "w") as fh:
        json.dump({"torch": torch.__version__}, fh)


if __name__ == "__main__":
    main()

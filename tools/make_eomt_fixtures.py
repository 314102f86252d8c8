#!/usr/bin/env python3
"""Tiny random-weight EoMT-DINOv3 checkpoints, transformers reference outputs, and a published-form delta.

Usage: make_eomt_fixtures.py OUT_DIR

Writes:
  OUT_DIR/eomt_p0/, OUT_DIR/eomt_p1/   transformers `eomt_dinov3` directories, identical weights, attn_mask_probs
                                       0 (no masked attention) and 1 (masked attention in every query layer)
  OUT_DIR/eomt_input_SIZE.safetensors  pixel_values [2,3,H,W] for SIZE in 64x64 (configured), 96x96, 48x80
  OUT_DIR/eomt_p{0,1}_ref_SIZE.safetensors  transformers' class_queries_logits and masks_queries_logits; for sizes
                                       other than the configured one, transformers runs with its grid set to that
                                       size (config image_size 96, or `grid_size = (3, 5)` for 48x80)
  OUT_DIR/eomt_base/                   a DINOv3ViTModel transformers directory (the "gated base weights")
  OUT_DIR/eomt_delta.bin               the EoMT authors' published form: `torch.save({"state_dict": ...})` with the
                                       original key names and the backbone stored as differences to the base
Every parameter is randomised so that wrong names, orders or formulas show. No network.
"""
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import DINOv3ViTConfig, DINOv3ViTModel, EomtDinov3Config, EomtDinov3ForUniversalSegmentation

ARCH = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
            num_register_tokens=4, patch_size=16, layer_norm_eps=1e-5)
LABELS = {0: "person", 1: "car", 2: "road", 3: "sky", 4: "tree"}


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            # Heads get a smaller scale so logits stay O(10): float32 parity is then meaningful at 1e-4.
            scale = 0.1 if name.startswith(("mask_head", "upscale_block", "class_predictor")) else 0.3
            if p.ndim == 1 and ("norm" in name or "lambda" in name):
                p.copy_(1.0 + scale * torch.randn(p.shape, generator=g))
            else:
                p.copy_(scale * torch.randn(p.shape, generator=g))


def eomt(image_size, probs):
    cfg = EomtDinov3Config(**ARCH, num_queries=6, num_blocks=2, num_upscale_blocks=2, image_size=image_size,
                           id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    m = EomtDinov3ForUniversalSegmentation(cfg).eval()
    return m


def run(model, x):
    with torch.no_grad():
        o = model(pixel_values=x)
    return {"class_queries_logits": o.class_queries_logits.contiguous(),
            "masks_queries_logits": o.masks_queries_logits.contiguous()}


def to_authors_names(key):
    """transformers eomt_dinov3 key -> the EoMT authors' key (inverse of transformers' conversion script)."""
    rules = [
        ("embeddings.cls_token", "network.encoder.backbone.patch_embed.cls_token"),
        ("embeddings.register_tokens", "network.encoder.backbone.patch_embed.register_tokens"),
        ("embeddings.patch_embeddings.", "network.encoder.backbone.patch_embed.patch_embeddings."),
        ("layers.", "network.encoder.backbone.blocks."),
        ("layernorm.", "network.encoder.backbone.norm."),
        ("query.", "network.q."),
        ("class_predictor.", "network.class_head."),
        ("mask_head.fc1.", "network.mask_head.0."),
        ("mask_head.fc2.", "network.mask_head.2."),
        ("mask_head.fc3.", "network.mask_head.4."),
        ("attn_mask_probs", "network.attn_mask_probs"),
        ("criterion.", "criterion."),
    ]
    if key.startswith("upscale_block.block."):
        rest = key[len("upscale_block.block."):]
        return "network.upscale." + rest.replace("layernorm2d.", "norm.")
    for a, b in rules:
        if key.startswith(a):
            return b + key[len(a):]
    raise KeyError(key)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = eomt(64, None)
    randomise(model, 7)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    inputs = {}
    for h, w in [(64, 64), (96, 96), (48, 80)]:
        x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h * 1000 + w))
        inputs[(h, w)] = x
        save_file({"pixel_values": x.contiguous()}, os.path.join(out, f"eomt_input_{h}x{w}.safetensors"))
    for p in (0.0, 1.0):
        tag = f"eomt_p{int(p)}"
        for (h, w), x in inputs.items():
            m = eomt(h if h == w else 64, p)
            m.load_state_dict(state)
            m.attn_mask_probs.fill_(p)
            if h != w:
                m.grid_size = (h // 16, w // 16)
            save_file(run(m, x), os.path.join(out, f"{tag}_ref_{h}x{w}.safetensors"))
            if (h, w) == (64, 64):
                m.save_pretrained(os.path.join(out, tag))

    # The published form: a DINOv3 base, and the EoMT checkpoint with its backbone stored as differences.
    base = DINOv3ViTModel(DINOv3ViTConfig(**ARCH)).eval()
    randomise(base, 11)
    base.save_pretrained(os.path.join(out, "eomt_base"))
    base_sd = base.state_dict()
    full = eomt(64, 0.0)
    full.load_state_dict(state)
    full.attn_mask_probs.fill_(0.0)  # published checkpoints are annealed to 0
    delta = {}
    for k, v in full.state_dict().items():
        if k.startswith("embeddings.") or k.startswith("layers.") or k.startswith("layernorm."):
            bk = k.replace("layers.", "model.layer.", 1).replace("layernorm.", "norm.", 1)
            delta[to_authors_names(k)] = v - base_sd[bk]
        else:
            delta[to_authors_names(k)] = v.clone()
    delta["network.encoder.pixel_mean"] = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    delta["network.encoder.pixel_std"] = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.save({"state_dict": delta}, os.path.join(out, "eomt_delta.bin"))
    # Linear heads for the sharing tests: two on the EoMT encoder (4 dense layers of width 64, and the last one),
    # two on the tiny MLP ViT of make_fixtures.py (hidden 64, 3 blocks: `last` only).
    for name, channels, layers, classes in [("eomt_linear_dense4", 256, "4", 3), ("eomt_linear_last", 64, "last", 4),
                                            ("vit_linear_a", 64, "last", 3), ("vit_linear_b", 64, "last", 6)]:
        linear_head(os.path.join(out, f"{name}.safetensors"), channels, layers, classes, seed=len(name))
    open(os.path.join(out, "EOMT_DONE"), "w").write("ok")


def linear_head(path, channels, layers, classes, seed):
    """A random linear head in dinoseg's documented format (see src/model/heads/linear.rs)."""
    import json
    g = torch.Generator().manual_seed(seed)
    t = {
        "bn.weight": 1.0 + 0.2 * torch.randn(channels, generator=g),
        "bn.bias": 0.1 * torch.randn(channels, generator=g),
        "bn.running_mean": 0.1 * torch.randn(channels, generator=g),
        "bn.running_var": 0.5 + torch.rand(channels, generator=g),
        "conv.weight": 0.3 * torch.randn(classes, channels, 1, 1, generator=g),
        "conv.bias": 0.1 * torch.randn(classes, generator=g),
    }
    meta = {"dinoseg.head": "linear", "dinoseg.layers": layers, "dinoseg.backbone": "custom",
            "dinoseg.classes": json.dumps([f"c{i}" for i in range(classes)])}
    save_file({k: v.contiguous() for k, v in t.items()}, path, metadata=meta)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Fixtures for `tests/convert.rs`: tiny random DINOv3 models saved both ways.

For each model NAME this writes, under OUT_DIR:
  NAME_hf/                  the transformers model (save_pretrained), the ground truth
  NAME.pth                  the same weights under the official DINOv3 names (github.com/facebookresearch/dinov3):
                            fused `attn.qkv` with a `bias_mask` that zeroes a non-zero raw key bias,
                            `storage_tokens`, `mask_token` [1, D], `rope_embed.periods`, `ls1.gamma`, ...
  NAME_input.safetensors    pixel_values [1, 3, H, W] (non-square)
  NAME_ref.safetensors      transformers' outputs: last_hidden_state, hidden_states.{i}

plus `vit_mlp.safetensors` (official names as safetensors), `dtypes.pth` / `dtypes_ref.safetensors` (pickle
reader checks) and the broken checkpoints of the error tests. Usage: make_official_checkpoints.py OUT_DIR
"""

import argparse
import os
import pickle
import sys
import zipfile

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    DINOv3ConvNextConfig,
    DINOv3ConvNextModel,
    DINOv3ViTConfig,
    DINOv3ViTModel,
)


def randomise(model):
    """Random weights everywhere (norms, LayerScale and gamma included) so that any misplaced tensor shows."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if p.dim() >= 2 and "token" not in name:
                p.copy_(noise / p[0].numel() ** 0.5)  # unit gain: fan-in scaling
            elif name.endswith("norm.weight") or "norm1" in name or "norm2" in name or "layer_norm.weight" in name:
                p.copy_(1.0 + 0.3 * noise)
            else:
                p.copy_(0.5 * noise)
    return model.eval()


def vit_official(model, config, with_periods=True):
    sd = model.state_dict()
    d = config.hidden_size
    g = torch.Generator().manual_seed(1)
    out = {"cls_token": sd["embeddings.cls_token"]}
    if config.num_register_tokens > 0:
        out["storage_tokens"] = sd["embeddings.register_tokens"]
    out["mask_token"] = sd["embeddings.mask_token"].reshape(1, d)
    out["patch_embed.proj.weight"] = sd["embeddings.patch_embeddings.weight"]
    out["patch_embed.proj.bias"] = sd["embeddings.patch_embeddings.bias"]
    if with_periods:
        hd = d // config.num_attention_heads
        out["rope_embed.periods"] = config.rope_theta ** (2 * torch.arange(hd // 4, dtype=torch.float32) / (hd // 2))
    for i in range(config.num_hidden_layers):
        t, o = f"model.layer.{i}.", f"blocks.{i}."
        for n in ("norm1", "norm2"):
            out[o + n + ".weight"] = sd[t + n + ".weight"]
            out[o + n + ".bias"] = sd[t + n + ".bias"]
        a = t + "attention."
        out[o + "attn.qkv.weight"] = torch.cat([sd[a + f"{x}_proj.weight"] for x in "qkv"])
        if config.query_bias:
            raw_k_bias = torch.randn(d, generator=g)  # stored, but zeroed by bias_mask at run time
            out[o + "attn.qkv.bias"] = torch.cat([sd[a + "q_proj.bias"], raw_k_bias, sd[a + "v_proj.bias"]])
            out[o + "attn.qkv.bias_mask"] = torch.cat([torch.ones(d), torch.zeros(d), torch.ones(d)])
        out[o + "attn.proj.weight"] = sd[a + "o_proj.weight"]
        out[o + "attn.proj.bias"] = sd[a + "o_proj.bias"]
        out[o + "ls1.gamma"] = sd[t + "layer_scale1.lambda1"]
        out[o + "ls2.gamma"] = sd[t + "layer_scale2.lambda1"]
        names = {"gate_proj": "w1", "up_proj": "w2", "down_proj": "w3"} if config.use_gated_mlp else {
            "up_proj": "fc1", "down_proj": "fc2"}
        for hf, off in names.items():
            out[o + f"mlp.{off}.weight"] = sd[t + f"mlp.{hf}.weight"]
            out[o + f"mlp.{off}.bias"] = sd[t + f"mlp.{hf}.bias"]
    out["norm.weight"] = sd["norm.weight"]
    out["norm.bias"] = sd["norm.bias"]
    return out


def convnext_official(model):
    out = {}
    for k, v in model.state_dict().items():
        p = k.split(".")
        if k.startswith("layer_norm."):
            out["norm." + p[1]] = v
            out["norms.3." + p[1]] = v  # the same module, registered twice in the official model
        elif p[3] == "downsample_layers":
            out[f"downsample_layers.{p[2]}.{p[4]}.{p[5]}"] = v
        else:
            sub = {"depthwise_conv": "dwconv", "layer_norm": "norm", "pointwise_conv1": "pwconv1",
                   "pointwise_conv2": "pwconv2"}
            rest = "gamma" if p[5] == "gamma" else f"{sub[p[5]]}.{p[6]}"
            out[f"stages.{p[2]}.{p[4]}.{rest}"] = v
    return out


def save_case(out_dir, name, model, official, hw, wrap=None, protocol=2):
    model.save_pretrained(os.path.join(out_dir, name + "_hf"))
    g = torch.Generator().manual_seed(2)
    pixels = torch.randn(1, 3, *hw, generator=g)
    with torch.no_grad():
        res = model(pixel_values=pixels, output_hidden_states=True)
    ref = {"last_hidden_state": res.last_hidden_state.contiguous()}
    for i, h in enumerate(res.hidden_states):
        ref[f"hidden_states.{i}"] = h.contiguous()
    save_file({"pixel_values": pixels}, os.path.join(out_dir, name + "_input.safetensors"))
    save_file(ref, os.path.join(out_dir, name + "_ref.safetensors"))
    torch.save(wrap(official) if wrap else official, os.path.join(out_dir, name + ".pth"), pickle_protocol=protocol)


def fuzz(src, out_dir, count):
    """Copies of `src` whose data.pkl is damaged (flipped bytes, cuts, repeats): the reader must fail cleanly."""
    os.makedirs(out_dir, exist_ok=True)
    g = torch.Generator().manual_seed(4)
    rnd = lambda n: int(torch.randint(0, max(n, 1), (1,), generator=g))
    with zipfile.ZipFile(src) as zi:
        entries = [(info, zi.read(info.filename)) for info in zi.infolist()]
    for i in range(count):
        with zipfile.ZipFile(os.path.join(out_dir, f"{i:03}.pth"), "w") as zo:
            for info, data in entries:
                if info.filename.endswith("data.pkl"):
                    b = bytearray(data)
                    kind = i % 3
                    if kind == 0:
                        for _ in range(1 + rnd(3)):
                            b[rnd(len(b))] = rnd(256)
                    elif kind == 1:
                        b = b[: rnd(len(b))]
                    else:
                        a = rnd(len(b))
                        b = b[:a] + b[a : a + rnd(64)] + b[a:]
                    data = bytes(b)
                zo.writestr(info, data)


def zip_without(src, dst, drop_suffix):
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w") as zo:
        for info in zi.infolist():
            if not info.filename.endswith(drop_suffix):
                zo.writestr(info, zi.read(info.filename))


class Evil:
    """Pickles as a call of os.system; the reader must refuse it by name and never run it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    base = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                num_register_tokens=4, patch_size=16, image_size=64)

    # 1. GELU MLP, flat official state dict, with rope periods (heads inferred from them).
    cfg = DINOv3ViTConfig(**base)
    mlp = randomise(DINOv3ViTModel(cfg))
    mlp_sd = vit_official(mlp, cfg)
    save_case(out_dir, "vit_mlp", mlp, mlp_sd, (48, 80))
    save_file({k: v.contiguous() for k, v in mlp_sd.items()}, os.path.join(out_dir, "vit_mlp.safetensors"))

    # 2. SwiGLU, wrapped like a training checkpoint: {"teacher": {"backbone.*", "dino_head.*", ...}}.
    cfg = DINOv3ViTConfig(**{**base, "intermediate_size": 96}, hidden_act="silu", use_gated_mlp=True)
    swiglu = randomise(DINOv3ViTModel(cfg))
    sd = vit_official(swiglu, cfg)
    sd["local_cls_norm.weight"] = torch.ones(64)
    sd["local_cls_norm.bias"] = torch.zeros(64)

    def teacher(s):
        wrapped = {"backbone." + k: torch.nn.Parameter(v.clone()) for k, v in s.items()}
        wrapped["dino_head.mlp.0.weight"] = torch.randn(8, 64)
        wrapped["ibot_head.mlp.0.weight"] = torch.randn(8, 64)
        # Training-checkpoint clutter the reader must step over without executing it.
        optimizer = {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 0.1, "params": [0]}]}
        return {"teacher": wrapped, "iteration": np.int64(7), "args": argparse.Namespace(arch="vit_small"),
                "optimizer": optimizer}

    save_case(out_dir, "vit_swiglu", swiglu, sd, (64, 32), wrap=teacher)

    # 3. 7B layout: SwiGLU, no q/v bias, no registers, no rope periods (heads given); {"model": {"module.*"}},
    #    pickle protocol 4 (FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL).
    cfg = DINOv3ViTConfig(**{**base, "num_register_tokens": 0}, hidden_act="silu", use_gated_mlp=True,
                          query_bias=False, value_bias=False)
    nobias = randomise(DINOv3ViTModel(cfg))
    sd = vit_official(nobias, cfg, with_periods=False)
    save_case(out_dir, "vit_nobias", nobias, sd, (32, 48),
              wrap=lambda s: {"model": {"module." + k: v for k, v in s.items()}}, protocol=4)

    # 4. ConvNeXt with the duplicated final norm (`norms.3`).
    cfg = DINOv3ConvNextConfig(hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 2, 1])
    conv = randomise(DINOv3ConvNextModel(cfg))
    save_case(out_dir, "convnext", conv, convnext_official(conv), (64, 96))

    # Pickle reader checks: dtypes, views with offsets and strides, shared storage, parameters, 0-d and empty.
    base_f = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    dtypes = {
        "f32_t": base_f.t(),
        "f32_slice": base_f[1:3, 2:5],
        "f32_shared": base_f.reshape(24)[5:],
        "f64": torch.linspace(-1, 1, 7, dtype=torch.float64),
        "f16": torch.linspace(-2, 2, 5).half(),
        "bf16_offset": torch.linspace(-3, 3, 9).bfloat16()[3:],
        "i64": torch.tensor([-(2 ** 40), 3, 5]),
        "i32": torch.tensor([[1, -2], [3, 4]], dtype=torch.int32),
        "i16": torch.tensor([-7, 7], dtype=torch.int16),
        "i8": torch.tensor([-8, 9], dtype=torch.int8),
        "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "param": torch.nn.Parameter(torch.ones(2, 2)),
    }
    torch.save(dtypes, os.path.join(out_dir, "dtypes.pth"))
    save_file({k: v.detach().contiguous() for k, v in dtypes.items()}, os.path.join(out_dir, "dtypes_ref.safetensors"))

    # Broken checkpoints for the error tests.
    with open(os.path.join(out_dir, "vit_mlp.pth"), "rb") as f:
        good = f.read()
    with open(os.path.join(out_dir, "truncated.pth"), "wb") as f:
        f.write(good[: len(good) // 2])
    with open(os.path.join(out_dir, "random.pth"), "wb") as f:
        f.write(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
                .numpy().tobytes())
    torch.save(mlp_sd, os.path.join(out_dir, "legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save({**mlp_sd, "blocks.0.attn.extra.weight": torch.zeros(2)}, os.path.join(out_dir, "unknown_key.pth"))
    torch.save({k: v for k, v in mlp_sd.items() if k != "blocks.1.attn.qkv.weight"},
               os.path.join(out_dir, "missing_qkv.pth"))
    torch.save({k: v for k, v in mlp_sd.items() if not k.endswith("bias_mask")},
               os.path.join(out_dir, "kbias.pth"))
    zip_without(os.path.join(out_dir, "vit_mlp.pth"), os.path.join(out_dir, "missing_storage.pth"), "/data/3")
    fuzz(os.path.join(out_dir, "vit_mlp.pth"), os.path.join(out_dir, "fuzz"), 300)
    marker = os.path.join(out_dir, "pwned")
    with zipfile.ZipFile(os.path.join(out_dir, "evil.pth"), "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"weight": Evil(marker)}, protocol=4))
        z.writestr("evil/byteorder", "little")
        z.writestr("evil/version", "3\n")
    print("fixtures written to", out_dir)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

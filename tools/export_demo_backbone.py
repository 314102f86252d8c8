#!/usr/bin/env python3
"""The demo's standalone backbone and its linear head, for the "semantic only with a linear head" example
(config/semantic_linear.yaml).

    export_demo_backbone.py DEMO_DIR [--head-steps 300] [--batch 8] [--threads 2]

Reads DEMO_DIR/eomt (tools/train_demo.py) and writes:
- DEMO_DIR/backbone/: the EoMT model's encoder as a transformers `DINOv3ViTModel` directory (`dinov3_vit`):
  patch embedding, CLS and register tokens, every block and the final norm, copied unchanged (`mask_token`,
  unused at inference, is zero). Run on its own, its blocks see no queries, so its last `num_blocks` blocks give
  other features than inside EoMT; the first ones agree exactly (checked here).
- DEMO_DIR/backbone_linear_head.safetensors: the DINOv3 linear head (dinoseg format) fitted on the standalone
  backbone's four dense layers ([1, 3, 5, 7] for 8 blocks, after the final norm) on fresh training scenes, with
  the backbone frozen in eval mode (BatchNorm statistics from the same scenes).
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_scenes as ds  # noqa: E402
import train_demo as td  # noqa: E402


def export_backbone(eomt):
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    c = eomt.config
    cfg = DINOv3ViTConfig(
        hidden_size=c.hidden_size, intermediate_size=c.intermediate_size, num_hidden_layers=c.num_hidden_layers,
        num_attention_heads=c.num_attention_heads, patch_size=c.patch_size,
        num_register_tokens=c.num_register_tokens, layer_norm_eps=c.layer_norm_eps,
        rope_theta=c.rope_parameters["rope_theta"], query_bias=c.query_bias, key_bias=c.key_bias,
        value_bias=c.value_bias, proj_bias=c.proj_bias, mlp_bias=c.mlp_bias, use_gated_mlp=c.use_gated_mlp,
        layerscale_value=c.layerscale_value, hidden_act=c.hidden_act, image_size=c.image_size,
        pos_embed_rescale=None)
    model = DINOv3ViTModel(cfg).eval()
    src = eomt.state_dict()
    target = model.state_dict()
    out = {}
    for name in target:
        if name == "embeddings.mask_token":
            out[name] = torch.zeros_like(target[name])
            continue
        if name.startswith("embeddings."):
            s = name
        elif name.startswith("norm."):
            s = "layernorm." + name[len("norm."):]
        else:  # `model.layer.N.` or `layer.N.`, depending on the transformers version
            i = name.index("layer.")
            s = "layers." + name[i + len("layer."):]
        if s not in src or src[s].shape != target[name].shape:
            raise SystemExit(f"no EoMT tensor for backbone tensor {name} (looked for {s})")
        out[name] = src[s]
    model.load_state_dict(out, strict=True)
    return model


class BackboneFeatures:
    """The dense-layer features of a standalone DINOv3ViTModel, as dinoseg's linear head reads them."""

    def __init__(self, model):
        self.model = model
        self.layers = td.dense_layers(model.config.num_hidden_layers)

    @torch.no_grad()
    def __call__(self, pixels):
        hp, wp = pixels.shape[-2:]
        h, w = hp // 16, wp // 16
        out = self.model(pixel_values=pixels, output_hidden_states=True)
        maps = []
        for i in self.layers:
            t = self.model.norm(out.hidden_states[i + 1][:, -h * w:, :])
            maps.append(t.transpose(1, 2).reshape(t.shape[0], -1, h, w))
        return torch.cat(maps, dim=1)


@torch.no_grad()
def check_agreement(eomt, backbone):
    """The blocks before the query blocks agree between EoMT and the standalone backbone."""
    tap = td.FeatureTap(eomt)
    feats = BackboneFeatures(backbone)
    sc = ds.render_scene(12345, 240, 320)
    x = td.to_pixels(sc.image)[None]
    td.set_grid(eomt, *x.shape[-2:])
    eomt(pixel_values=x)
    ours = feats(x)
    first_query_block = eomt.config.num_hidden_layers - eomt.config.num_blocks
    c = eomt.config.hidden_size
    worst = 0.0
    for k, layer in enumerate(tap.layers):
        if layer >= first_query_block:
            continue
        h, w = x.shape[-2] // 16, x.shape[-1] // 16
        t = eomt.layernorm(tap.out[layer][:, -h * w:, :]).transpose(1, 2).reshape(1, c, h, w)
        worst = max(worst, (t - ours[:, k * c:(k + 1) * c]).abs().max().item())
    if worst > 1e-4:
        raise SystemExit(f"backbone and EoMT encoder disagree before the query blocks: {worst:.2e}")
    print(f"backbone = EoMT encoder before the query blocks (max diff {worst:.1e})", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("demo_dir")
    p.add_argument("--head-steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from safetensors.torch import save_file
    from transformers import EomtDinov3ForUniversalSegmentation

    eomt = EomtDinov3ForUniversalSegmentation.from_pretrained(os.path.join(args.demo_dir, "eomt")).eval()
    backbone = export_backbone(eomt)
    check_agreement(eomt, backbone)
    out = os.path.join(args.demo_dir, "backbone")
    backbone.save_pretrained(out)
    shutil.copy(os.path.join(args.demo_dir, "eomt", "preprocessor_config.json"), out)
    head = td.LinearHead(4 * backbone.config.hidden_size, td.NUM_CLASSES)
    td.refit_head(BackboneFeatures(backbone), head, args.head_steps, args.batch, 10_000_000, torch.device("cpu"),
                  np.random.default_rng(1))
    sd = {k: v.detach().contiguous().clone() for k, v in head.state_dict().items() if k != "bn.num_batches_tracked"}
    save_file(sd, os.path.join(args.demo_dir, "backbone_linear_head.safetensors"),
              metadata={"dinoseg.head": "linear", "dinoseg.layers": "4", "dinoseg.backbone": "custom",
                        "dinoseg.classes": json.dumps(ds.CLASSES), "dinoseg.bn_eps": "1e-05"})
    print(f"wrote {out}/ and {args.demo_dir}/backbone_linear_head.safetensors", flush=True)


if __name__ == "__main__":
    main()

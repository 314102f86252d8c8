#!/usr/bin/env python3
"""Checks a directory written by `dinoseg convert` with transformers itself (used by tests/convert.rs).

Usage: convert_check.py MODEL_DIR REF.safetensors INPUT.safetensors
MODEL_DIR must load with `AutoModel.from_pretrained` with no missing, unexpected or mismatched keys, and its
outputs (last_hidden_state, hidden_states.{i}) must match REF within 1e-4. Exit status 0 on success.
"""

import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModel


def main(model_dir, ref_path, input_path):
    model, info = AutoModel.from_pretrained(model_dir, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        sys.exit(f"{model_dir}: loading problems {problems}")
    if next(model.parameters()).dtype != torch.float32:
        sys.exit(f"{model_dir}: loaded as {next(model.parameters()).dtype}, expected float32")
    model.eval()
    ref = load_file(ref_path)
    pixels = load_file(input_path)["pixel_values"]
    with torch.no_grad():
        out = model(pixel_values=pixels, output_hidden_states=True)
    got = {"last_hidden_state": out.last_hidden_state}
    got.update({f"hidden_states.{i}": h for i, h in enumerate(out.hidden_states)})
    if set(got) != set(ref):
        sys.exit(f"{model_dir}: outputs {sorted(got)} but reference has {sorted(ref)}")
    worst = 0.0
    for k, want in ref.items():
        if got[k].shape != want.shape:
            sys.exit(f"{model_dir}: `{k}` has shape {tuple(got[k].shape)}, reference {tuple(want.shape)}")
        diff = (got[k] - want).abs().max().item()
        worst = max(worst, diff)
        if not diff < 1e-4:
            sys.exit(f"{model_dir}: `{k}` differs from the reference by {diff:.3e}")
    print(f"{model_dir}: transformers loads it strictly, max abs diff {worst:.2e}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])

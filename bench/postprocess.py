#!/usr/bin/env python3
"""transformers' EoMT post-processing time on ViT-S EoMT sizes, the baseline for the Rust numbers of
`cargo test --release --test postprocess -- --ignored --nocapture bench` (same shapes and synthetic data rule:
200 queries, 133 classes + no object, mask logits 120 x 160 of a 480 x 640 input, 30 confident queries tiling the
image). Run both back to back on the same machine and compare medians.

Usage: .venv/bin/python bench/postprocess.py [runs]
"""

import statistics
import sys
import time
from types import SimpleNamespace

import torch
from transformers.models.eomt.image_processing_pil_eomt import EomtImageProcessorPil


def synthetic(q=200, k=133, h=120, w=160, objects=30, sharpness=1500.0):
    cl = torch.randn(1, q, k + 1)
    cl[..., k] += 4.0
    for i in range(objects):
        cl[0, i, (i * 7919) % k] += 6.0 + 8.0 * ((i * 37) % 100) / 100.0
    yy = ((torch.arange(h) + 0.5) / h).view(1, 1, h, 1)
    xx = ((torch.arange(w) + 0.5) / w).view(1, 1, 1, w)
    centre = torch.rand(2, 1, q, 1, 1)
    dist = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2).sqrt()
    tiles = (dist[:, :objects] - dist[:, :objects].amin(1, keepdim=True)) * -sharpness + 8.0
    blobs = dist[:, objects:] * -20.0 + 2.0
    smooth = torch.nn.functional.interpolate(torch.randn(1, q, 3, 4), size=(h, w), mode="bilinear")
    return cl, torch.cat([tiles, blobs], 1) + smooth * 1.5 + torch.randn(1, q, h, w) * 0.3


def median_ms(runs, f):
    f()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    torch.manual_seed(1)
    cl, ml = synthetic()
    out = SimpleNamespace(class_queries_logits=cl, masks_queries_logits=ml, patch_offsets=None)
    proc = EomtImageProcessorPil(size={"shortest_edge": 480, "longest_edge": 640})
    target = [(480, 640)]
    stuff = list(range(80, 133))
    print(f"torch threads: {torch.get_num_threads()}")
    with torch.no_grad():
        sem = median_ms(runs, lambda: proc.post_process_semantic_segmentation(out, target_sizes=target))
        pan = median_ms(runs, lambda: proc.post_process_panoptic_segmentation(out, target_sizes=target,
                                                                               stuff_classes=stuff))
        inst = median_ms(runs, lambda: proc.post_process_instance_segmentation(out, target_sizes=target))
    print(f"transformers semantic  {sem:8.1f} ms")
    print(f"transformers panoptic  {pan:8.1f} ms")
    print(f"transformers instance  {inst:8.1f} ms")


if __name__ == "__main__":
    main()

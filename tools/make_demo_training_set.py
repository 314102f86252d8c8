#!/usr/bin/env python3
"""Writes labelled frames of the demo's synthetic scenes (tools/demo_scenes.py) in the layout `dinoseg train-head`
and `dinoseg eval` read: OUT/images/NNNNNN.png (rgb8) and OUT/labels/NNNNNN.png (8-bit grey class ids: 0
background, 1..5 the shapes of demo_scenes.CLASSES), plus OUT/labels.txt (the class names).

Usage: make_demo_training_set.py OUT [--frames 160] [--seed 500000000] [--height 240 --width 320]

Frame i is demo_scenes.render_scene(seed + i, height, width). `make demo-train` trains on seeds 500000000+ and
validates on 900000000+; the held-out recording of `make demo` uses demo_scenes.TEST_SEED_BASE (1000000000)+, which
no training or validation frame draws.
"""
import argparse
import os
import sys

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_scenes as ds  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--frames", type=int, default=160)
    p.add_argument("--seed", type=int, default=500_000_000)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=320)
    a = p.parse_args()
    if not 0 < a.frames <= 100_000:
        p.error("--frames must be in 1..100000")
    if a.seed + a.frames > ds.TEST_SEED_BASE:
        p.error(f"seeds from {ds.TEST_SEED_BASE} on are the held-out test frames")
    images, labels = os.path.join(a.out, "images"), os.path.join(a.out, "labels")
    os.makedirs(images, exist_ok=True)
    os.makedirs(labels, exist_ok=True)
    for i in range(a.frames):
        scene = ds.render_scene(a.seed + i, a.height, a.width)
        Image.fromarray(scene.image).save(os.path.join(images, f"{i:06d}.png"))
        Image.fromarray(scene.semantic).save(os.path.join(labels, f"{i:06d}.png"))
    with open(os.path.join(a.out, "labels.txt"), "w") as f:
        f.write(ds.labels_text())
    print(f"wrote {a.frames} labelled frames (seeds {a.seed}..{a.seed + a.frames - 1}) under {a.out}")


if __name__ == "__main__":
    main()

"""Time `dinoseg train-head` on a vits16-sized random-weight backbone: cache build, seconds per epoch, cache size.

    .venv/bin/python bench/train_head.py [--frames 16] [--epochs 5] [--threads 2] [--device cpu] [--flip]
                                         [--cache-dtype fp32] [--dir target/bench_train]

Makes DIR/vits16 (`dinoseg backbones --random-weights vits16`) and DIR/frames: 640x480 frames of 3-6 random
coloured rectangles, label = the rectangle's class (4 classes, some pixels 255), plus 4 validation frames; runs
`dinoseg train-head` (its release binary, CARGO_TARGET_DIR or target/) and prints its stderr and a summary line:
median epoch seconds (epochs 2.., the first warms up) and the cache's MB as train-head prints it.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLOURS = np.array([[200, 40, 40], [40, 180, 60], [50, 60, 210], [220, 220, 60]], dtype=np.float32)


def frames(out, n, seed, h=480, w=640):
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    os.makedirs(os.path.join(out, "labels"), exist_ok=True)
    for k in range(n):
        lab = np.zeros((h, w), np.uint8)
        for _ in range(rng.integers(3, 7)):
            y0, x0 = rng.integers(0, h - 32), rng.integers(0, w - 32)
            y1, x1 = rng.integers(y0 + 32, h + 1), rng.integers(x0 + 32, w + 1)
            lab[y0:y1, x0:x1] = rng.integers(0, 4)
        img = COLOURS[lab] + rng.normal(0, 15, (h, w, 3))
        lab[::37, ::41] = 255
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(os.path.join(out, "images", f"f{k:03d}.png"))
        Image.fromarray(lab).save(os.path.join(out, "labels", f"f{k:03d}.png"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache-dtype", default="fp32")
    ap.add_argument("--flip", action="store_true")
    ap.add_argument("--dir", default=os.path.join(ROOT, "target", "bench_train"))
    a = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    exe = os.path.join(target, "release", "dinoseg")
    backbone = os.path.join(a.dir, "vits16")
    if not os.path.isfile(os.path.join(backbone, "model.safetensors")):
        subprocess.run([exe, "backbones", "--random-weights", "vits16", backbone], check=True)
    data = os.path.join(a.dir, f"frames{a.frames}")
    if not os.path.isdir(data):
        frames(os.path.join(data, "train"), a.frames, 1)
        frames(os.path.join(data, "val"), 4, 2)
    cmd = [exe, "train-head", "--backbone", backbone,
           "--images", os.path.join(data, "train", "images"), "--labels", os.path.join(data, "train", "labels"),
           "--val-images", os.path.join(data, "val", "images"), "--val-labels", os.path.join(data, "val", "labels"),
           "--epochs", str(a.epochs), "--patience", "0", "--threads", str(a.threads), "--device", a.device,
           "--cache-dtype", a.cache_dtype, "--out", os.path.join(a.dir, "head.safetensors")]
    if a.flip:
        cmd.append("--flip")
    start = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    total = time.time() - start
    sys.stderr.write(p.stderr)
    print(p.stdout, end="")
    if p.returncode != 0:
        sys.exit(p.returncode)
    secs = [float(m) for m in re.findall(r"val mIoU \S+\s+([0-9.]+) s", p.stderr)]
    cache = re.search(r"([0-9.]+) MB of features \((\w+)\) \+ ([0-9.]+) MB of labels.*built in ([0-9.]+) s", p.stderr)
    print(f"frames {a.frames} flip {a.flip} device {a.device} threads {a.threads} cache {cache.group(2)}: "
          f"cache {cache.group(1)} MB features + {cache.group(3)} MB labels, built in {cache.group(4)} s; "
          f"epoch median {statistics.median(secs[1:] or secs):.2f} s (epochs {secs}); total {total:.1f} s")


if __name__ == "__main__":
    main()

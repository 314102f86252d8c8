#!/usr/bin/env python3
"""Per-stage latency of the offline runner (`dinoseg run`) on a 640x480 recording, CPU, for vits16-sized models.

Writes a recording of synthetic 640x480 rgb8 frames (a ROS 2 bag written with mcap_ros2), random-weight models
(a vits16 backbone with a linear head of 150 classes; a vits16-sized EoMT with 200 queries, 133 classes, 40
confident, with a linear head on its encoder), runs `dinoseg run` with the node's default outputs into an MCAP
bag, and prints the per-stage p50 (decode, preprocess, model, post-process, encode) with the share of the
non-model stages. `--demo` adds the shipped demo model (config/demo.yaml) on the demo recording.

  bench/runner.py [--frames 12] [--threads 2] [--demo] [--json OUT]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DINOSEG = os.environ.get("DINOSEG_BIN", os.path.join(ROOT, "target", "release", "dinoseg"))
sys.path.insert(0, os.path.join(ROOT, "tools"))


def write_recording(path, frames, h=480, w=640):
    from mcap_ros2.writer import Writer
    from ros2_interop import IMAGE_DEF
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        writer = Writer(f)
        schema = writer.register_msgdef("sensor_msgs/msg/Image", IMAGE_DEF)
        for i in range(frames):
            yy, xx = np.mgrid[0:h, 0:w]
            img = np.stack([(xx * 255 // w), (yy * 255 // h), np.full_like(xx, 90)], -1).astype(np.uint8)
            for _ in range(4):  # a few discs and boxes
                cy, cx, r = rng.integers(50, h - 50), rng.integers(50, w - 50), rng.integers(20, 60)
                img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 256, 3, dtype=np.uint8)
            t = i * 100_000_000
            msg = {"header": {"stamp": {"sec": t // 10**9, "nanosec": t % 10**9}, "frame_id": "camera"},
                   "height": h, "width": w, "encoding": "rgb8", "is_bigendian": 0, "step": w * 3,
                   "data": img.tobytes()}
            writer.write_message("/camera/image_raw", schema, msg, log_time=t, publish_time=t)
        writer.finish()


def linear_head(path, channels, classes, layers="4"):
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(channels + classes)
    t = {"bn.weight": torch.ones(channels), "bn.bias": torch.zeros(channels),
         "bn.running_mean": torch.zeros(channels), "bn.running_var": torch.ones(channels),
         "conv.weight": 0.05 * torch.randn(classes, channels, 1, 1, generator=g), "conv.bias": torch.zeros(classes)}
    save_file(t, path, metadata={"dinoseg.head": "linear", "dinoseg.layers": layers,
                                 "dinoseg.classes": json.dumps([f"class_{i}" for i in range(classes)])})


def eomt_model(path, x):
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from eomt import make_model
    args = argparse.Namespace(hidden=384, layers=12, heads=6, queries=200, classes=133, size=640, confident=40)
    d, _ = make_model(path, args, x)
    return d


def params(path, heads, backbone=None):
    lines = ["dinoseg:", "  ros__parameters:", "    device: cpu", "    precision: fp32"]
    if backbone:
        lines += ["    backbone:", f"      checkpoint: {backbone}"]
    lines += ["    heads:"]
    for name, kv in heads.items():
        lines += [f"      {name}:"] + [f"        {k}: {v}" for k, v in kv.items()]
    lines += ["    input:", "      topics: [/camera/image_raw]"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def run(name, params_path, recording, out_dir, threads, frames):
    stats = os.path.join(out_dir, f"{name}.stats.json")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    subprocess.run([DINOSEG, "run", "--params", params_path, "--input", recording, "--output",
                    os.path.join(out_dir, f"{name}.mcap"), "--stats-json", stats, "--max-frames", str(frames)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    with open(stats) as f:
        return json.load(f)["stage_p50_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--demo", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        rec = os.path.join(tmp, "rec.mcap")
        write_recording(rec, args.frames)
        backbone = os.path.join(tmp, "vits16")
        subprocess.run([DINOSEG, "backbones", "--random-weights", "vits16", backbone], check=True)
        linear_head(os.path.join(tmp, "head.safetensors"), 4 * 384, 150)
        x = torch.randn(1, 3, 640, 640, generator=torch.Generator().manual_seed(0))
        eomt = eomt_model(tmp, x)
        configs = {
            "vits16 + linear head (150 classes)": params(
                os.path.join(tmp, "linear.yaml"),
                {"semantic": {"type": "linear", "checkpoint": os.path.join(tmp, "head.safetensors")}}, backbone),
            "vits16-sized EoMT panoptic (200 queries, 133 classes) + linear head on its encoder": params(
                os.path.join(tmp, "eomt.yaml"),
                {"scene": {"type": "eomt", "checkpoint": eomt, "outputs": "panoptic"},
                 "semantic": {"type": "linear", "checkpoint": os.path.join(tmp, "head.safetensors"),
                              "source": "eomt"}}),
        }
        if args.demo:
            demo_rec = os.path.join(ROOT, "runs", "demo", "input.mcap")
            if os.path.exists(demo_rec):
                configs["demo model (config/demo.yaml), demo recording"] = (os.path.join(ROOT, "config", "demo.yaml"),
                                                                          demo_rec)
        for i, (name, p) in enumerate(configs.items()):
            p, recording = (p if isinstance(p, tuple) else (p, rec))
            results[name] = run(f"cfg{i}", p, recording, tmp, args.threads, args.frames)
    stages = ["decode", "preprocess", "model", "postprocess", "encode"]
    print(f"\noffline runner per frame, CPU fp32, {args.threads} threads, p50 over {args.frames} frames "
          f"(first frame included), outputs: semantic, semantic_color, instances, instance_ids, label_info -> MCAP")
    print("| model | " + " | ".join(f"{s} ms" for s in stages) + " | non-model share |")
    print("|---|" + "---|" * (len(stages) + 1))
    for name, st in results.items():
        total = sum(st.get(s, 0.0) for s in stages)
        share = (total - st.get("model", 0.0)) / total if total else float("nan")
        print(f"| {name} | " + " | ".join(f"{st.get(s, 0.0):.1f}" for s in stages) + f" | {share:.1%} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

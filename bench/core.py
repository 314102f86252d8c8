#!/usr/bin/env python3
"""End-to-end latency of the node's core (message in -> messages out, in-memory transport) at 640x480 on CPU,
through `dinoseg bench-core`, for the demo model and vits16-sized models (random weights, made as in
bench/runner.py).

Two measurements per model:
- sequential: one camera, one message at a time: submit -> last output message published (decode, preprocess,
  model, post-process, encode, publish), p50 / p95, next to the model call's own p50 (preprocess + forward +
  post-process) and the share of the rest;
- stream: two cameras at 30 Hz for `--seconds` on their own threads: stamp-to-publish latency p50 / p95 / max,
  frames in / out / dropped, mean batch size.

  bench/core.py [--threads 2] [--frames 10] [--seconds 10] [--json OUT] [--device cpu]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DINOSEG = os.environ.get("DINOSEG_BIN", os.path.join(ROOT, "target", "release", "dinoseg"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import runner  # noqa: E402


def on_device(path, device, tmp, i):
    """A copy of a params file in `tmp` for `device` (fp16 on CUDA), its relative paths still resolving against
    the original file's folder (`base_dir`)."""
    text = open(path).read().replace("device: cpu", f"device: {device}")
    if device != "cpu":
        text = text.replace("precision: fp32", "precision: fp16")
    text = text.replace("ros__parameters:", f"ros__parameters:\n    base_dir: {os.path.dirname(os.path.abspath(path))}", 1)
    out = os.path.join(tmp, f"cfg{i}.{device}.yaml")
    with open(out, "w") as f:
        f.write(text)
    return out


def bench(params, mode, threads, frames, seconds, out):
    args = [DINOSEG, "bench-core", "--params", params, "--mode", mode, "--threads", str(threads), "--json", out]
    if mode == "sequential":
        args += ["--frames", str(frames)]
    else:
        args += ["--cameras", "2", "--rate", "30", "--seconds", str(seconds)]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        backbone = os.path.join(tmp, "vits16")
        subprocess.run([DINOSEG, "backbones", "--random-weights", "vits16", backbone], check=True,
                       stdout=subprocess.DEVNULL)
        head = os.path.join(tmp, "head.safetensors")
        runner.linear_head(head, 4 * 384, 150)
        x = torch.randn(1, 3, 640, 640, generator=torch.Generator().manual_seed(0))
        eomt = runner.eomt_model(tmp, x)
        configs = {
            "demo model (config/demo.yaml)": os.path.join(ROOT, "config", "demo.yaml"),
            "vits16 + linear head (150 classes)": runner.params(
                os.path.join(tmp, "linear.yaml"), {"semantic": {"type": "linear", "checkpoint": head}}, backbone),
            "vits16-sized EoMT panoptic (200 queries, 133 classes) + linear head on its encoder": runner.params(
                os.path.join(tmp, "eomt.yaml"),
                {"scene": {"type": "eomt", "checkpoint": eomt, "outputs": "panoptic"},
                 "semantic": {"type": "linear", "checkpoint": head, "source": "eomt"}}),
        }
        for i, (name, p) in enumerate(configs.items()):
            if args.device != "cpu":
                p = on_device(p, args.device, tmp, i)
            seq = bench(p, "sequential", args.threads, args.frames, args.seconds, os.path.join(tmp, f"s{i}.json"))
            stream = bench(p, "stream", args.threads, args.frames, args.seconds, os.path.join(tmp, f"t{i}.json"))
            results[name] = {"sequential": seq, "stream": stream}
    dev = "CPU fp32" if args.device == "cpu" else f"{args.device} fp16"
    print(f"\ncore end to end, 640x480 rgb8 Image messages, {dev}, {args.threads} threads, "
          f"outputs: the params' (semantic, semantic_color, label_info, + instances, instance_ids, overlay for the demo)")
    print("| model | one frame: in -> out p50 ms | p95 ms | model call p50 ms | rest of the core | "
          "2 cameras x 30 Hz: stamp -> publish p50 ms | p95 ms | max ms | frames in / out / dropped | mean batch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        s, t = r["sequential"], r["stream"]
        e, m = s["e2e_ms"]["p50"], s["model_ms"]["p50"]
        cams = t["cameras"]
        lat = lambda k: max(c["latency_ms"][k] for c in cams)  # noqa: E731
        counts = " + ".join(f"{c['received']}/{c['published']}/{c['dropped']}" for c in cams)
        print(f"| {name} | {e:.1f} | {s['e2e_ms']['p95']:.1f} | {m:.1f} | {(e - m) / e:.1%} | {lat('p50'):.0f} | "
              f"{lat('p95'):.0f} | {lat('max'):.0f} | {counts} | {t['mean_batch']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Backbone forward: dinoseg (Rust, tch) vs transformers (Python) on the same random weights and input.

Both sides run in this process tree at the same time: `dinoseg bench-worker` keeps our model loaded and times
forwards on request; this script alternates one forward of ours with one of transformers' (order swapped every
round), with the same thread count, and prints medians and their ratio. Usage:

  bench/backbone.py [--variants vits16 convnext_tiny] [--height 480 --width 640] [--threads 2] [--rounds 15]
                    [--device cpu|cuda] [--precision fp32|fp16|bf16] [--ours-only] [--json OUT]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# Both sides share the cores: OpenMP threads that spin after a parallel region would steal time from the other
# side's next forward. Passive waiting keeps the interleaved measurements independent.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DINOSEG = os.environ.get("DINOSEG_BIN", os.path.join(ROOT, "target", "release", "dinoseg"))
KINDS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def config_of(variant):
    out = subprocess.run([DINOSEG, "backbones", "--config", variant], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def make_model_dir(variant, tmp):
    """A transformers directory with random weights for a catalog variant (written by transformers if present,
    else by dinoseg itself)."""
    d = os.path.join(tmp, variant)
    subprocess.run([DINOSEG, "backbones", "--random-weights", variant, d], check=True)
    return d


def reference_model(model_dir, device, dtype):
    from transformers import AutoModel
    return AutoModel.from_pretrained(model_dir, dtype=dtype).to(device).eval()


def gpu_memory_mib(pid):
    """GPU memory held by process `pid` (nvidia-smi), or None."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30).stdout
        for line in out.splitlines():
            p, mem = [x.strip() for x in line.split(",")]
            if int(p) == pid:
                return int(mem)
    except Exception:  # noqa: BLE001 - best effort
        return None
    return None


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", nargs="+", default=["vits16", "convnext_tiny"])
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=sorted(KINDS))
    ap.add_argument("--ours-only", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = KINDS[args.precision]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            model_dir = make_model_dir(variant, tmp)
            x = torch.randn(1, 3, args.height, args.width, generator=torch.Generator().manual_seed(0))
            inp = os.path.join(tmp, f"{variant}_input.safetensors")
            from safetensors.torch import save_file
            save_file({"pixel_values": x}, inp)
            worker = subprocess.Popen(
                [DINOSEG, "bench-worker", "--model", model_dir, "--input", inp, "--device", args.device,
                 "--precision", args.precision, "--threads", str(args.threads)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            ready = worker.stdout.readline()
            if not ready.startswith("ready"):
                sys.exit(f"worker failed to start: {ready}")

            def ours(n=1):
                worker.stdin.write(f"{n}\n")
                worker.stdin.flush()
                return [float(t) for t in worker.stdout.readline().split()]

            ref = None if args.ours_only else reference_model(model_dir, args.device, dtype)
            xd = x.to(args.device, dtype)

            def theirs():
                sync(args.device)
                t0 = time.perf_counter()
                with torch.inference_mode():
                    out = ref(pixel_values=xd)
                    out.last_hidden_state.float().sum().item()
                sync(args.device)
                return (time.perf_counter() - t0) * 1e3

            ours(args.warmup)
            if ref is not None:
                for _ in range(args.warmup):
                    theirs()
            a, b = [], []
            for r in range(args.rounds):
                if ref is None:
                    a += ours()
                elif r % 2 == 0:
                    a += ours()
                    b.append(theirs())
                else:
                    b.append(theirs())
                    a += ours()
            if args.device.startswith("cuda"):
                row_mem = gpu_memory_mib(worker.pid)
            else:
                row_mem = None
            worker.stdin.write("0\n")
            worker.stdin.flush()
            worker.wait(timeout=60)
            row = {"variant": variant, "size": f"{args.width}x{args.height}", "device": args.device,
                   "precision": args.precision, "threads": args.threads, "rounds": args.rounds,
                   "dinoseg_ms": statistics.median(a)}
            if b:
                row["transformers_ms"] = statistics.median(b)
                row["ratio"] = row["dinoseg_ms"] / row["transformers_ms"]
            if args.device.startswith("cuda"):
                row["dinoseg_img_per_s"] = 1000.0 / row["dinoseg_ms"]
                row["dinoseg_gpu_mib"] = row_mem
            results.append(row)
            del ref
    print(f"\nbackbone forward, {args.device} {args.precision}, {args.threads} threads, median of {args.rounds} "
          f"interleaved rounds, torch {torch.__version__}")
    print("| variant | input | dinoseg ms | transformers ms | ratio | dinoseg img/s | dinoseg GPU MiB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        theirs = "%.2f" % r["transformers_ms"] if "transformers_ms" in r else "-"
        ratio = "%.3f" % r["ratio"] if "ratio" in r else "-"
        ips = "%.0f" % r["dinoseg_img_per_s"] if "dinoseg_img_per_s" in r else "-"
        mem = r.get("dinoseg_gpu_mib") or "-"
        print(f"| {r['variant']} | {r['size']} | {r['dinoseg_ms']:.2f} | {theirs} | {ratio} | {ips} | {mem} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()

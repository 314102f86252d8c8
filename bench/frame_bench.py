"""The frame benchmark shared by bench/eomt.py and bench/mask2former.py: our side through `dinoseg bench-worker`
(the model kept loaded; one line per frame of forward / semantic / panoptic milliseconds), transformers' side on
the same weights and input in this process, interleaved (order swapped every round), medians printed as a table.
"""
import json
import os
import statistics
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DINOSEG = os.environ.get("DINOSEG_BIN", os.path.join(ROOT, "target", "release", "dinoseg"))
KINDS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def add_common_args(ap, rounds):
    """The flags both benchmarks take."""
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=sorted(KINDS))
    ap.add_argument("--classes", type=int, default=133)
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--target", default="480x640", help="camera frame HxW the results are resized to")
    ap.add_argument("--ours-only", action="store_true")
    ap.add_argument("--json")


class Worker:
    """`dinoseg bench-worker` on `model_dir` and the pixels in `inp`; `frame()` times one frame."""

    def __init__(self, model_dir, inp, args):
        self.proc = subprocess.Popen(
            [DINOSEG, "bench-worker", "--model", model_dir, "--input", inp, "--device", args.device,
             "--precision", args.precision, "--threads", str(args.threads), "--postprocess", args.target],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        ready = self.proc.stdout.readline()
        if not ready.startswith("ready"):
            sys.exit(f"worker failed to start: {ready}")

    def frame(self):
        self.proc.stdin.write("1\n")
        self.proc.stdin.flush()
        # one "forward_ms/semantic_ms/panoptic_ms" triple per frame
        return [tuple(float(v) for v in t.split("/")) for t in self.proc.stdout.readline().split()][0]

    def close(self):
        self.proc.stdin.write("0\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def reference_frame(ref, xd, device, semantic, panoptic):
    """A function timing one frame of transformers' side: the forward of `ref` on `xd`, then `semantic(out)` and
    `panoptic(out)` (the image processor's post-processing) on float32 logits."""

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def frame():
        sync()
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = ref(pixel_values=xd)
        sync()
        t1 = time.perf_counter()
        out.class_queries_logits = out.class_queries_logits.float()
        out.masks_queries_logits = out.masks_queries_logits.float()
        semantic(out)
        t2 = time.perf_counter()
        panoptic(out)
        t3 = time.perf_counter()
        return ((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)

    return frame


def interleave(ours, theirs, args):
    """Warm-up, then `args.rounds` rounds of one frame each side, the order swapped every round. Returns the two
    lists of (forward, semantic, panoptic) ms (transformers' empty with --ours-only)."""
    for _ in range(args.warmup):
        ours()
        if not args.ours_only:
            theirs()
    a, b = [], []
    for r in range(args.rounds):
        if args.ours_only:
            a.append(ours())
        elif r % 2 == 0:
            a.append(ours())
            b.append(theirs())
        else:
            b.append(theirs())
            a.append(ours())
        print(f"round {r}: dinoseg {a[-1]}, transformers {b[-1] if b else None}", file=sys.stderr)
    return a, b


def report(title, a, b, json_path=None, notes=()):
    """Prints the title, the table of medians, `notes` and the forward ratio; writes them as JSON if asked."""
    med = lambda rows, i: statistics.median(r[i] for r in rows)  # noqa: E731
    rows = [("dinoseg", a)] + ([("transformers", b)] if b else [])
    print(f"\n{title}, torch {torch.__version__}")
    print("| side | forward ms | semantic ms | panoptic ms | post-processing / forward |")
    print("|---|---|---|---|---|")
    result = {}
    for name, data in rows:
        f, s, p = med(data, 0), med(data, 1), med(data, 2)
        result[name] = {"forward_ms": f, "semantic_ms": s, "panoptic_ms": p}
        print(f"| {name} | {f:.1f} | {s:.1f} | {p:.1f} | {(s + p) / f:.3f} |")
    for n in notes:
        print(n)
    if b:
        ratio = result["dinoseg"]["forward_ms"] / result["transformers"]["forward_ms"]
        print(f"forward ratio dinoseg / transformers: {ratio:.3f}")
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(result, fh, indent=1)

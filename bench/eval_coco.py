"""Time `dinoseg eval` (COCO segm AP) against pycocotools on the same files, end to end, interleaved.

    .venv/bin/python bench/eval_coco.py [--repeats 5] [--dir target/bench_eval_coco]

The set is tools/make_coco_cases.py's larger one (300 images of 480x640, about 2,400 ground-truth objects as
polygons, RLE and crowd regions, about 7,600 results), made once in DIR. Each repeat runs, one after the other,
two processes: `dinoseg eval --coco-gt --coco-results --json` (its release binary, CARGO_TARGET_DIR or target/)
and a Python process doing what a pycocotools user runs: COCO(gt), loadRes, COCOeval(..., "segm") evaluate,
accumulate, summarize. Both are single-threaded (OMP/MKL threads 1). Prints the median wall seconds of each, the
ratio, and checks the six stats agree within 1e-6.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PYCOCO = """
import contextlib, io, json, sys
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
gt, res, out = sys.argv[1:4]
with contextlib.redirect_stdout(io.StringIO()):
    coco = COCO(gt)
    ev = COCOeval(coco, coco.loadRes(res), "segm")
    ev.evaluate(); ev.accumulate(); ev.summarize()
json.dump([float(s) for s in ev.stats[:6]], open(out, "w"))
"""


def timed(cmd, env):
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dir", default=os.path.join(ROOT, "target", "bench_eval_coco"))
    a = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    exe = os.path.join(target, "release", "dinoseg")
    data = os.path.join(a.dir, "large")
    if not os.path.isfile(os.path.join(a.dir, "DONE")):
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_coco_cases.py"), "--large", a.dir],
                       check=True)
    gt, res = os.path.join(data, "gt.json"), os.path.join(data, "results.json")
    ours_json, ref_json = os.path.join(a.dir, "ours.json"), os.path.join(a.dir, "pycocotools.json")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    ours, ref = [], []
    for _ in range(a.repeats):
        ours.append(timed([exe, "eval", "--coco-gt", gt, "--coco-results", res, "--json", ours_json], env))
        ref.append(timed([sys.executable, "-c", PYCOCO, gt, res, ref_json], env))
    got = json.load(open(ours_json))
    got = [got[k] for k in ["AP", "AP50", "AP75", "APs", "APm", "APl"]]
    want = json.load(open(ref_json))
    worst = max(abs(g - w) for g, w in zip(got, want))
    assert worst <= 1e-6, (got, want)
    gt_doc, res_doc = json.load(open(gt)), json.load(open(res))
    print(f"{len(gt_doc['images'])} images, {len(gt_doc['annotations'])} ground-truth objects, "
          f"{len(res_doc)} results; {a.repeats} repeats, interleaved; stats agree (max diff {worst:.1e})")
    print(f"| {'command (end to end, one process)':<52} | {'median s':>8} | {'min s':>6} |")
    print(f"|{'-' * 54}|{'-' * 9}:|{'-' * 7}:|")
    for name, t in [("dinoseg eval --coco-gt --coco-results", ours),
                    ("python: COCO + loadRes + COCOeval segm", ref)]:
        print(f"| {name:<52} | {statistics.median(t):>8.3f} | {min(t):>6.3f} |")
    print(f"ratio dinoseg / pycocotools (medians): {statistics.median(ours) / statistics.median(ref):.3f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Prints `dinoseg eval` semantic metrics JSONs side by side: mIoU, pixel accuracy and per-class IoU (in %).

Usage: compare_metrics.py NAME=METRICS.json [NAME=METRICS.json ...] [--classes labels.txt]

Only prints: every number comes from the JSON `dinoseg eval --json` wrote ({"mIoU", "pixel_acc", "per_class":
[{"id", "IoU"}]}). --classes names the class ids (the node's labels-file format: `[id:] name [marker]`).
"""
import argparse
import json
import re


def class_names(path):
    names, next_id = {}, 0
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            m = re.match(r"^(\d+)\s*:\s*(.*)$", line)
            if m:
                next_id, line = int(m.group(1)), m.group(2)
            names[next_id] = re.sub(r"\s*\[\w+\]$", "", line).strip()
            next_id += 1
    return names


def pct(v):
    return "-" if v is None else f"{100.0 * v:.1f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="NAME=METRICS.json")
    p.add_argument("--classes")
    a = p.parse_args()
    runs = []
    for spec in a.runs:
        name, sep, path = spec.partition("=")
        if not sep:
            p.error(f"{spec!r}: expected NAME=METRICS.json")
        with open(path) as f:
            runs.append((name, json.load(f)))
    names = class_names(a.classes) if a.classes else {}
    width = max([12] + [len(n) for n, _ in runs])
    print(f"{'':>14}" + "".join(f"  {n:>{width}}" for n, _ in runs))
    for key, label in (("mIoU", "mIoU %"), ("pixel_acc", "pixel acc %")):
        print(f"{label:>14}" + "".join(f"  {pct(m.get(key)):>{width}}" for _, m in runs))
    ids = sorted({c["id"] for _, m in runs for c in m.get("per_class", []) if c.get("IoU") is not None})
    for cid in ids:
        label = f"{cid} {names.get(cid, '')}".strip()[:14]
        row = []
        for _, m in runs:
            iou = next((c.get("IoU") for c in m.get("per_class", []) if c["id"] == cid), None)
            row.append(pct(iou))
        print(f"{label:>14}" + "".join(f"  {v:>{width}}" for v in row))


if __name__ == "__main__":
    main()

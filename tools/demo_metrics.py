#!/usr/bin/env python3
"""Scores demo predictions against the ground truth of tools/make_demo_recording.py.

Usage:
  demo_metrics.py --gt OUT_DIR/gt --pred PRED_DIR [--out metrics.json]
  demo_metrics.py --self-test [--gt OUT_DIR/gt]      GT scored against itself: mIoU 1.0, AP50 1.0

Ground truth (written by make_demo_recording.py):
  GT/instances.json             {"classes": [names], "stuff_classes": [0], "frames": [{"stamp_ns", "height",
                                 "width", "instances": [{"id", "class_id", ...}], ...}]}
  GT/{stamp_ns}_semantic.png    8-bit grey: class id per pixel
  GT/{stamp_ns}_instances.png   16-bit grey: 0 = no instance, k = the instance with "id" k

Prediction layout (one set of files per frame; {stamp_ns} is the frame's header stamp in nanoseconds,
sec * 1000000000 + nanosec, as a decimal integer without padding):
  PRED/{stamp_ns}_semantic.png      8-bit grey PNG (mono8) at the input frame's size (width x height): class id
                                    per pixel (ids of GT "classes"; any other value counts as wrong).
  PRED/{stamp_ns}_instance_ids.png  16-bit grey PNG at the frame's size: 0 = no instance, k = the instance whose
                                    JSON entry has "id": k.
  PRED/{stamp_ns}_instances.json    JSON list (or an object whose "instances" is that list, as `dinoseg run`
                                    writes it), one object per predicted instance:
                                      {"id": k (1..65535, the value in _instance_ids.png),
                                       "class_id": int (thing class id),
                                       "score": float (confidence; ranks predictions for AP),
                                       "bbox": [x, y, w, h] (optional, not scored), "class": name (optional),
                                       "mask_png": "file.png" (optional: 8-bit PNG next to this JSON, non-zero =
                                       in the mask; overrides the id PNG for this entry, so masks may overlap)}
                                    An empty list (or a missing file) means no instances.
A frame whose semantic PNG is missing counts as predicted entirely wrong, and is listed under "missing_frames".

Metrics (JSON):
  semantic.mIoU   dataset-level IoU per class (intersection and union summed over all frames), averaged over the
                  classes that occur in the ground truth (background, class 0, included). semantic.IoU per class
                  and semantic.pixel_accuracy are given too.
  instance.AP50   COCO-style mask AP at IoU 0.5 over the thing classes (classes not in "stuff_classes"): per class,
                  all predictions of that class over all frames sorted by score (highest first; at most 100 per
                  frame), each matched greedily to the unmatched GT instance of the same class and frame with the
                  highest mask IoU if that IoU >= 0.5 (true positive), else a false positive; precision made
                  monotone and read at the 101 recall points 0, 0.01, ..., 1 (0 where the recall is not reached);
                  AP averaged over the classes that have GT instances. instance.AP50_per_class, instance.AR50 (recall
                  at the last prediction, mean over classes) and counts are given too.
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

IOU_THRESHOLD = 0.5
MAX_DETS = 100


def read_png(path):
    return np.array(Image.open(path))


def write_uint16_png(array, path):
    """A 16-bit grey PNG (PIL mode I;16)."""
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint16)).save(path)


def load_gt(gt_dir):
    meta = json.load(open(os.path.join(gt_dir, "instances.json")))
    return meta


def _pred_instances(pred_dir, stamp, shape):
    path = os.path.join(pred_dir, f"{stamp}_instances.json")
    if not os.path.exists(path):
        return []
    entries = json.load(open(path))
    if isinstance(entries, dict):  # dinoseg run's files: {"width", "height", "class_names", "instances": [...]}
        entries = entries.get("instances", [])
    if not entries:
        return []
    ids_path = os.path.join(pred_dir, f"{stamp}_instance_ids.png")
    ids = None
    if os.path.exists(ids_path):
        ids = read_png(ids_path)
        if ids.shape != shape:
            raise ValueError(f"{ids_path}: size {ids.shape[::-1]} but the frame is {shape[::-1]} (w x h)")
    out = []
    for e in entries:
        if "mask_png" in e:
            mask = read_png(os.path.join(pred_dir, e["mask_png"])) != 0
        elif ids is not None:
            mask = ids == int(e["id"])
        else:
            raise ValueError(f"{path}: entry {e.get('id')} has no mask and {ids_path} is missing")
        if mask.shape != shape:
            raise ValueError(f"{path}: mask of entry {e.get('id')} has size {mask.shape[::-1]}, frame {shape[::-1]}")
        out.append((int(e["class_id"]), float(e["score"]), mask))
    out.sort(key=lambda t: -t[1])
    return out[:MAX_DETS]


def average_precision(tp, scores, num_gt):
    """COCO 101-point interpolated AP from per-prediction TP flags (any order) and scores."""
    if num_gt == 0:
        return None, None
    if len(tp) == 0:
        return 0.0, 0.0
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    tp = np.asarray(tp, dtype=np.float64)[order]
    ctp = np.cumsum(tp)
    cfp = np.cumsum(1.0 - tp)
    recall = ctp / num_gt
    precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    for i in range(len(precision) - 2, -1, -1):  # monotone envelope
        precision[i] = max(precision[i], precision[i + 1])
    points = np.linspace(0.0, 1.0, 101)
    idx = np.searchsorted(recall, points, side="left")
    q = np.array([precision[i] if i < len(precision) else 0.0 for i in idx])
    return float(q.mean()), float(recall[-1])


def evaluate(gt_dir, pred_dir):
    meta = load_gt(gt_dir)
    classes = meta["classes"]
    stuff = set(meta.get("stuff_classes", []))
    things = [c for c in range(len(classes)) if c not in stuff]
    k = len(classes)
    conf = np.zeros((k, k + 1), dtype=np.int64)  # rows GT, columns prediction (last = invalid id)
    missing = []
    per_class = {c: {"tp": [], "scores": [], "num_gt": 0} for c in things}
    for fr in meta["frames"]:
        stamp = fr["stamp_ns"]
        h, w = fr["height"], fr["width"]
        gt_sem = read_png(os.path.join(gt_dir, f"{stamp}_semantic.png")).astype(np.int64)
        gt_ids = read_png(os.path.join(gt_dir, f"{stamp}_instances.png"))
        sem_path = os.path.join(pred_dir, f"{stamp}_semantic.png")
        if os.path.exists(sem_path):
            pred_sem = read_png(sem_path)
            if pred_sem.ndim != 2 or pred_sem.shape != (h, w):
                raise ValueError(f"{sem_path}: shape {pred_sem.shape}, expected a grey image {w}x{h}")
            pred_sem = pred_sem.astype(np.int64)
            pred_sem[(pred_sem < 0) | (pred_sem >= k)] = k
        else:
            missing.append(stamp)
            pred_sem = np.full((h, w), k, dtype=np.int64)
        conf += np.bincount(gt_sem.ravel() * (k + 1) + pred_sem.ravel(), minlength=k * (k + 1)).reshape(k, k + 1)

        gts = [(int(i["class_id"]), gt_ids == int(i["id"])) for i in fr["instances"] if i["class_id"] in per_class]
        for c, _ in gts:
            per_class[c]["num_gt"] += 1
        matched = [False] * len(gts)
        for c, score, mask in _pred_instances(pred_dir, stamp, (h, w)):
            if c not in per_class:
                continue  # stuff or unknown class ids are not instances
            best, best_iou = -1, IOU_THRESHOLD
            area = mask.sum()
            for j, (gc, gm) in enumerate(gts):
                if gc != c or matched[j]:
                    continue
                inter = np.logical_and(mask, gm).sum()
                iou = inter / max(area + gm.sum() - inter, 1)
                if iou >= best_iou:
                    best, best_iou = j, iou
            if best >= 0:
                matched[best] = True
            per_class[c]["tp"].append(best >= 0)
            per_class[c]["scores"].append(score)

    inter = np.diag(conf[:, :k]).astype(np.float64)
    gt_count = conf.sum(1).astype(np.float64)
    pred_count = conf[:, :k].sum(0).astype(np.float64)
    union = gt_count + pred_count - inter
    present = [c for c in range(k) if gt_count[c] > 0]
    iou = {classes[c]: float(inter[c] / union[c]) for c in present}
    aps, ars = {}, {}
    for c in things:
        d = per_class[c]
        ap, ar = average_precision(d["tp"], d["scores"], d["num_gt"])
        if ap is not None:
            aps[classes[c]] = ap
            ars[classes[c]] = ar
    return {
        "semantic": {"mIoU": float(np.mean(list(iou.values()))) if iou else 0.0, "IoU": iou,
                     "pixel_accuracy": float(inter.sum() / max(gt_count.sum(), 1))},
        "instance": {"AP50": float(np.mean(list(aps.values()))) if aps else 0.0, "AP50_per_class": aps,
                     "AR50": float(np.mean(list(ars.values()))) if ars else 0.0,
                     "num_gt": int(sum(per_class[c]["num_gt"] for c in things)),
                     "num_pred": int(sum(len(per_class[c]["tp"]) for c in things))},
        "frames": len(meta["frames"]),
        "missing_frames": missing,
    }


def write_gt_as_prediction(gt_dir, pred_dir):
    """The ground truth in the prediction layout (every instance with score 1)."""
    meta = load_gt(gt_dir)
    os.makedirs(pred_dir, exist_ok=True)
    for fr in meta["frames"]:
        stamp = fr["stamp_ns"]
        sem = read_png(os.path.join(gt_dir, f"{stamp}_semantic.png"))
        Image.fromarray(sem.astype(np.uint8)).save(os.path.join(pred_dir, f"{stamp}_semantic.png"))
        ids = read_png(os.path.join(gt_dir, f"{stamp}_instances.png"))
        write_uint16_png(ids, os.path.join(pred_dir, f"{stamp}_instance_ids.png"))
        entries = [{"id": i["id"], "class_id": i["class_id"], "score": 1.0, "bbox": i.get("bbox")}
                   for i in fr["instances"]]
        with open(os.path.join(pred_dir, f"{stamp}_instances.json"), "w") as f:
            json.dump(entries, f)


def self_test(gt_dir):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        if gt_dir is None:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import make_demo_recording

            gt_dir = make_demo_recording.write_gt_only(os.path.join(tmp, "rec"), 8, 1_000_000_000)
        pred = os.path.join(tmp, "pred")
        write_gt_as_prediction(gt_dir, pred)
        m = evaluate(gt_dir, pred)
        assert abs(m["semantic"]["mIoU"] - 1.0) < 1e-12 and abs(m["instance"]["AP50"] - 1.0) < 1e-12, m
        # Sanity of the scorer itself: dropping every other instance halves the recall.
        for name in os.listdir(pred):
            if name.endswith("_instances.json"):
                path = os.path.join(pred, name)
                entries = json.load(open(path))
                json.dump(entries[::2], open(path, "w"))
        m2 = evaluate(gt_dir, pred)
        assert m2["instance"]["AP50"] < 1.0 and m2["semantic"]["mIoU"] == 1.0, m2
    print(json.dumps({"self_test": "ok", "semantic": {"mIoU": m["semantic"]["mIoU"]},
                      "instance": {"AP50": m["instance"]["AP50"]}, "frames": m["frames"]}))
    return m


def main():
    p = argparse.ArgumentParser(description="mIoU and AP50 of demo predictions against the ground truth.")
    p.add_argument("--gt", help="OUT_DIR/gt of make_demo_recording.py")
    p.add_argument("--pred", help="prediction directory (layout in this file's doc comment)")
    p.add_argument("--out", help="write the metrics JSON here (also printed)")
    p.add_argument("--self-test", action="store_true", help="score the GT against itself (expects 1.0 and 1.0)")
    args = p.parse_args()
    if args.self_test:
        self_test(args.gt)
        return
    if not args.gt or not args.pred:
        p.error("--gt and --pred are required (or --self-test)")
    m = evaluate(args.gt, args.pred)
    text = json.dumps(m, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()

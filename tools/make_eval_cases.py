#!/usr/bin/env python3
"""Test cases for `dinoseg eval` (semantic and panoptic), with the expected metrics computed here.

Usage: make_eval_cases.py DIR      (writes DIR.tmp, then renames it to DIR; DIR/EVAL_DONE marks it complete)

DIR/cases.json lists every case: {"name", "mode": "semantic" | "panoptic", the paths (relative to DIR) and
options of the mode, and either "expected" (the metrics JSON dinoseg must write, within 1e-6) or "error" (strings
the error message must contain)}.

Semantic expected values are brute force over numpy arrays: per class, intersection, prediction area and
ground-truth area counted over every non-ignored ground-truth pixel of every image (mmseg's intersect_and_union
summed over the set), IoU = inter / union, mean over classes with union > 0, pixel_acc = correct / labelled.

Panoptic expected values come from `pq_compute` below: a re-implementation of panopticapi's
`pq_compute_single_core` + `PQStat.pq_average` (panopticapi is not on PyPI) written from its algorithm: np.unique
areas and (gt, pred) intersections, IoU > 0.5 matching on non-crowd GT of the same category with VOID pixels
removed from the union, FN for unmatched non-crowd GT, FP for unmatched predictions unless more than half of them
lies on VOID or the category's crowd region, PQ/SQ/RQ averaged over categories with TP+FP+FN > 0.

Deterministic: every random choice comes from numpy generators with fixed seeds.
"""
import json
import os
import shutil
import sys

import numpy as np
from PIL import Image

OFFSET = 256 * 256 * 256
VOID = 0


# ---------------------------------------------------------------------------------------------------- semantic

def semantic_expected(pairs, k, ignore):
    inter = np.zeros(k, np.int64)
    pred_area = np.zeros(k, np.int64)
    gt_area = np.zeros(k, np.int64)
    for p, g in pairs:
        valid = g != ignore
        for c in range(k):
            inter[c] += int(np.sum((g == c) & (p == c) & valid))
            pred_area[c] += int(np.sum((p == c) & valid))
            gt_area[c] += int(np.sum((g == c) & valid))
    union = pred_area + gt_area - inter
    per_class, present = [], []
    for c in range(k):
        iou = float(inter[c]) / float(union[c]) if union[c] > 0 else None
        per_class.append({"id": c, "IoU": iou})
        if iou is not None:
            present.append(iou)
    labelled = int(gt_area.sum())
    return {"mIoU": float(np.mean(present)) if present else None,
            "pixel_acc": float(inter.sum()) / labelled if labelled else None,
            "per_class": per_class, "images": len(pairs)}


def save_label(path, arr, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if mode == "L":
        Image.fromarray(arr.astype(np.uint8), mode="L").save(path)
    elif mode == "I;16":
        Image.fromarray(arr.astype(np.uint16)).save(path)
    elif mode == "P":
        im = Image.fromarray(arr.astype(np.uint8), mode="P")
        im.putpalette([(i * 37) % 256 for i in range(768)])
        im.save(path)
    elif mode == "RGB":
        Image.fromarray(np.stack([arr.astype(np.uint8)] * 3, axis=-1), mode="RGB").save(path)
    else:
        raise ValueError(mode)


def semantic_set(root, name, k, ignore, sizes, mode, seed, only_pred_class=None, never_class=None,
                 extra_preds=0):
    """Random label maps with ignore pixels; `never_class` in neither side, `only_pred_class` only predicted."""
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "semantic", name)
    pairs = []
    classes = [c for c in range(k) if c not in (only_pred_class, never_class)]
    for i, (h, w) in enumerate(sizes):
        # blocky ground truth (as real label maps) with a sprinkle of random pixels
        blocks = rng.choice(classes, size=(h // 4 + 1, w // 4 + 1))
        g = np.kron(blocks, np.ones((4, 4), np.int64))[:h, :w]
        noise = rng.random((h, w)) < 0.05
        g[noise] = rng.choice(classes, size=int(noise.sum()))
        g[rng.random((h, w)) < 0.1] = ignore
        p = g.copy()
        p[p == ignore] = rng.choice(classes, size=int(np.sum(p == ignore)))
        wrong = rng.random((h, w)) < 0.3
        pool = [c for c in range(k) if c != never_class]
        p[wrong] = rng.choice(pool, size=int(wrong.sum()))
        out_of_range = rng.random((h, w)) < 0.02
        p[out_of_range] = k + rng.integers(0, 3, size=int(out_of_range.sum()))
        if mode == "L" or mode == "P":
            p = np.minimum(p, 255)
        fname = f"img_{i:02d}.png"
        save_label(os.path.join(base, "gt", fname), g, mode)
        save_label(os.path.join(base, "pred", fname), p, mode)
        pairs.append((p, g))
    for j in range(extra_preds):
        save_label(os.path.join(base, "pred", f"extra_{j}.png"), np.zeros((4, 4), np.int64), mode)
    case = {"name": name, "mode": "semantic", "pred_dir": f"semantic/{name}/pred", "gt_dir": f"semantic/{name}/gt",
            "num_classes": k, "ignore_index": ignore, "expected": semantic_expected(pairs, k, ignore)}
    return case


def semantic_error_cases(root):
    cases = []
    ok = np.zeros((6, 8), np.int64)

    def case(name, gt_files, pred_files, error, k=6):
        base = os.path.join(root, "semantic_err", name)
        for f, (arr, mode) in gt_files.items():
            save_label(os.path.join(base, "gt", f), arr, mode)
        for f, (arr, mode) in pred_files.items():
            save_label(os.path.join(base, "pred", f), arr, mode)
        os.makedirs(os.path.join(base, "pred"), exist_ok=True)
        cases.append({"name": name, "mode": "semantic", "pred_dir": f"semantic_err/{name}/pred",
                      "gt_dir": f"semantic_err/{name}/gt", "num_classes": k, "ignore_index": 255, "error": error})

    bad = ok.copy()
    bad[2, 3] = 9
    case("bad_value", {"a.png": (bad, "L")}, {"a.png": (ok, "L")}, ["a.png", "x 3, y 2", "value 9"])
    case("size_mismatch", {"a.png": (ok, "L")}, {"a.png": (ok[:5], "L")},
         ["pred/a.png is 8x5", "gt/a.png is 8x6"])
    case("missing_prediction", {"a.png": (ok, "L"), "b.png": (ok, "L")}, {"a.png": (ok, "L")},
         ["1 ground-truth file(s) have no prediction", "b.png"])
    case("colour_png", {"a.png": (ok, "RGB")}, {"a.png": (ok, "L")}, ["gt/a.png", "RGB PNG is not a label map"])
    return cases


# ---------------------------------------------------------------------------------------------------- panoptic

def rgb2id(color):
    color = color.astype(np.int64)
    return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]


def id2rgb(ids):
    out = np.zeros(ids.shape + (3,), np.uint8)
    out[..., 0] = ids % 256
    out[..., 1] = (ids // 256) % 256
    out[..., 2] = ids // (256 * 256)
    return out


class PQStatCat:
    def __init__(self):
        self.iou, self.tp, self.fp, self.fn = 0.0, 0, 0, 0


def pq_compute(gt_json, gt_dir, pred_json, pred_dir):
    """panopticapi's pq_compute, single process, returning fractions (not x 100)."""
    categories = {c["id"]: c for c in gt_json["categories"]}
    pred_annotations = {a["image_id"]: a for a in pred_json["annotations"]}
    stat = {}

    def st(cat):
        return stat.setdefault(cat, PQStatCat())

    for gt_ann in gt_json["annotations"]:
        if gt_ann["image_id"] not in pred_annotations:
            raise Exception("no prediction for the image with id: {}".format(gt_ann["image_id"]))
        pred_ann = pred_annotations[gt_ann["image_id"]]
        pan_gt = rgb2id(np.array(Image.open(os.path.join(gt_dir, gt_ann["file_name"])), dtype=np.uint32)[..., :3])
        pan_pred = rgb2id(np.array(Image.open(os.path.join(pred_dir, pred_ann["file_name"])),
                                   dtype=np.uint32)[..., :3])
        gt_segms = {el["id"]: dict(el) for el in gt_ann["segments_info"]}
        pred_segms = {el["id"]: dict(el) for el in pred_ann["segments_info"]}

        pred_labels_set = set(el["id"] for el in pred_ann["segments_info"])
        labels, labels_cnt = np.unique(pan_pred, return_counts=True)
        for label, label_cnt in zip(labels, labels_cnt):
            if label not in pred_segms:
                if label == VOID:
                    continue
                raise KeyError("segment {} in PNG not in JSON".format(label))
            pred_segms[label]["area"] = int(label_cnt)
            pred_labels_set.remove(label)
            if pred_segms[label]["category_id"] not in categories:
                raise KeyError("unknown category")
        if len(pred_labels_set) != 0:
            raise KeyError("segments in JSON not in PNG")

        pan_gt_pred = pan_gt.astype(np.uint64) * OFFSET + pan_pred.astype(np.uint64)
        gt_pred_map = {}
        labels, labels_cnt = np.unique(pan_gt_pred, return_counts=True)
        for label, intersection in zip(labels, labels_cnt):
            gt_pred_map[(int(label // OFFSET), int(label % OFFSET))] = int(intersection)

        gt_matched, pred_matched = set(), set()
        for (gt_label, pred_label), intersection in gt_pred_map.items():
            if gt_label not in gt_segms or pred_label not in pred_segms:
                continue
            if gt_segms[gt_label]["iscrowd"] == 1:
                continue
            if gt_segms[gt_label]["category_id"] != pred_segms[pred_label]["category_id"]:
                continue
            union = (pred_segms[pred_label]["area"] + gt_segms[gt_label]["area"] - intersection
                     - gt_pred_map.get((VOID, pred_label), 0))
            iou = intersection / union
            if iou > 0.5:
                st(gt_segms[gt_label]["category_id"]).tp += 1
                st(gt_segms[gt_label]["category_id"]).iou += iou
                gt_matched.add(gt_label)
                pred_matched.add(pred_label)

        crowd_labels_dict = {}
        for gt_label, gt_info in gt_segms.items():
            if gt_label in gt_matched:
                continue
            if gt_info["iscrowd"] == 1:
                crowd_labels_dict[gt_info["category_id"]] = gt_label
                continue
            st(gt_info["category_id"]).fn += 1

        for pred_label, pred_info in pred_segms.items():
            if pred_label in pred_matched:
                continue
            intersection = gt_pred_map.get((VOID, pred_label), 0)
            if pred_info["category_id"] in crowd_labels_dict:
                intersection += gt_pred_map.get((crowd_labels_dict[pred_info["category_id"]], pred_label), 0)
            if intersection / pred_info["area"] > 0.5:
                continue
            st(pred_info["category_id"]).fp += 1

    def average(isthing):
        pq = sq = rq = 0.0
        n = 0
        per_class = {}
        for label, info in categories.items():
            if isthing is not None and (info["isthing"] == 1) != isthing:
                continue
            s = stat.get(label, PQStatCat())
            if s.tp + s.fp + s.fn == 0:
                per_class[label] = {"pq": 0.0, "sq": 0.0, "rq": 0.0, "tp": 0, "fp": 0, "fn": 0}
                continue
            n += 1
            pq_c = s.iou / (s.tp + 0.5 * s.fp + 0.5 * s.fn)
            sq_c = s.iou / s.tp if s.tp != 0 else 0
            rq_c = s.tp / (s.tp + 0.5 * s.fp + 0.5 * s.fn)
            per_class[label] = {"pq": pq_c, "sq": sq_c, "rq": rq_c, "tp": s.tp, "fp": s.fp, "fn": s.fn}
            pq += pq_c
            sq += sq_c
            rq += rq_c
        summary = {"PQ": pq / n if n else None, "SQ": sq / n if n else None, "RQ": rq / n if n else None, "n": n}
        return summary, per_class

    out = {}
    for name, isthing in [("all", None), ("things", True), ("stuff", False)]:
        out[name], per_class = average(isthing)
        if isthing is None:
            out["per_class"] = {str(k): {"name": categories[k].get("name", ""), "isthing": categories[k]["isthing"] == 1,
                                         "PQ": v["pq"], "SQ": v["sq"], "RQ": v["rq"], "TP": v["tp"], "FP": v["fp"],
                                         "FN": v["fn"]}
                                for k, v in per_class.items()}
    out["images"] = len(gt_json["annotations"])
    return out


CATEGORIES = [
    {"id": 1, "name": "person", "isthing": 1, "supercategory": "person"},
    {"id": 2, "name": "car", "isthing": 1},
    {"id": 3, "name": "dog", "isthing": 1},          # never present: not counted in n
    {"id": 17, "name": "sky", "isthing": 0},
    {"id": 21, "name": "road", "isthing": 0},
    {"id": 40, "name": "grass", "isthing": 0},
]


class Canvas:
    """An id map painted with rectangles; segments_info follows what stays visible."""

    def __init__(self, h, w, rng):
        self.ids = np.zeros((h, w), np.int64)
        self.info = {}
        self.rng = rng

    def new_id(self):
        while True:
            i = int(self.rng.integers(1, OFFSET))
            if i not in self.info:
                return i

    def paint(self, y0, y1, x0, x1, cat, iscrowd=0, sid=None):
        sid = sid if sid is not None else self.new_id()
        self.ids[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = sid
        self.info[sid] = {"id": sid, "category_id": cat, "iscrowd": iscrowd}
        return sid

    def segments(self, with_area=True):
        ids, counts = np.unique(self.ids, return_counts=True)
        area = dict(zip(ids.tolist(), counts.tolist()))
        segs = []
        for sid, s in self.info.items():
            if sid in area:
                s = dict(s)
                if with_area:
                    s["area"] = area[sid]
                s["bbox"] = [0, 0, 1, 1]
                segs.append(s)
        return segs


def random_image(rng, h, w):
    """A GT scene (stuff bands, things, crowd regions, void) and a perturbed prediction of it."""
    gt = Canvas(h, w, rng)
    pred = Canvas(h, w, rng)
    stuff = [17, 21, 40]
    band = sorted(rng.choice(np.arange(4, h - 4), size=2, replace=False).tolist())
    edges = [0] + band + [h]
    for j, cat in enumerate(rng.permutation(stuff)):
        gt.paint(edges[j], edges[j + 1], 0, w, int(cat))
        jitter = int(rng.integers(-3, 4))
        pcat = int(cat) if rng.random() < 0.85 else int(rng.choice(stuff))
        pred.paint(edges[j] + jitter, edges[j + 1] + jitter, 0, w, pcat)
    for _ in range(int(rng.integers(2, 7))):
        cat = int(rng.choice([1, 2]))
        y, x = int(rng.integers(0, h - 6)), int(rng.integers(0, w - 6))
        hh, ww = int(rng.integers(6, 16)), int(rng.integers(6, 16))
        crowd = int(rng.random() < 0.2)
        gt.paint(y, y + hh, x, x + ww, cat, iscrowd=crowd)
        r = rng.random()
        if r < 0.15:
            continue  # missed: FN (or nothing, on crowd)
        dy, dx = int(rng.integers(-2, 3)), int(rng.integers(-2, 3))
        pcat = cat if rng.random() < 0.9 else 3 - cat
        if crowd:  # crowd regions are predicted as one or two instances
            pred.paint(y + dy, y + dy + hh // 2 + 1, x + dx, x + dx + ww, pcat)
        else:
            pred.paint(y + dy, y + dy + hh, x + dx, x + dx + ww, pcat)
    for _ in range(int(rng.integers(0, 3))):  # false positives
        y, x = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4))
        pred.paint(y, y + int(rng.integers(2, 8)), x, x + int(rng.integers(2, 8)), int(rng.choice([1, 2, 17])))
    void = rng.random((h, w)) < 0.03
    y, x = int(rng.integers(0, h - 5)), int(rng.integers(0, w - 5))
    void[y:y + 5, x:x + 5] = True
    gt.ids[void] = VOID
    pred.ids[rng.random((h, w)) < 0.02] = VOID
    return gt, pred


def special_image(rng):
    """The cases a random scene may miss: a prediction mostly on void (ignored), one mostly on a crowd region of
    its category (ignored), one on a crowd region of another category (FP), an exact match, a near-miss."""
    h, w = 30, 40
    gt, pred = Canvas(h, w, rng), Canvas(h, w, rng)
    gt.paint(0, h, 0, w, 21)
    pred.paint(0, h, 0, w, 21)
    gt.ids[0:10, 0:10] = VOID
    pred.paint(1, 9, 1, 11, 2)                       # 8x10 = 80 px, 64 on void: ignored
    gt.paint(12, 22, 0, 12, 1, iscrowd=1)
    pred.paint(13, 21, 0, 11, 1)                     # all on the person crowd: ignored
    pred.paint(13, 20, 11, 13, 2)                    # car on the person crowd: FP
    gt.paint(2, 12, 20, 30, 2)
    pred.paint(2, 12, 20, 30, 2)                     # exact: TP, IoU 1
    gt.paint(15, 25, 25, 35, 1)
    pred.paint(20, 30, 25, 35, 1)                    # IoU 50/150: FP + FN
    return gt, pred


def write_png(path, ids, rgba=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rgb = id2rgb(ids)
    if rgba:
        rgb = np.concatenate([rgb, np.full(ids.shape + (1,), 255, np.uint8)], axis=-1)
        Image.fromarray(rgb, mode="RGBA").save(path)
    else:
        Image.fromarray(rgb, mode="RGB").save(path)


def panoptic_set(root, name, seed, n_images, string_ids=False, rgba_pred=False):
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "panoptic", name)
    scenes = [special_image(rng)] + [random_image(rng, int(rng.integers(24, 48)), int(rng.integers(24, 64)))
                                     for _ in range(n_images)]
    empty_gt, empty_pred = Canvas(16, 20, rng), Canvas(16, 20, rng)
    empty_pred.paint(2, 6, 2, 6, 1)                  # a prediction on an all-void image: ignored
    scenes.append((empty_gt, empty_pred))
    gt_anns, pred_anns = [], []
    for i, (g, p) in enumerate(scenes):
        image_id = f"frame_{i:03d}" if string_ids else 1000 + i
        fname = f"{i:03d}.png"
        write_png(os.path.join(base, "gt", fname), g.ids)
        write_png(os.path.join(base, "pred", fname), p.ids, rgba=rgba_pred)
        gt_anns.append({"image_id": image_id, "file_name": fname, "segments_info": g.segments()})
        pred_anns.append({"image_id": image_id, "file_name": fname, "segments_info": p.segments(with_area=False)})
    pred_anns.reverse()  # paired by image_id, not by order
    gt_json = {"info": {}, "images": [], "annotations": gt_anns, "categories": CATEGORIES}
    pred_json = {"annotations": pred_anns}
    with open(os.path.join(base, "gt.json"), "w") as f:
        json.dump(gt_json, f)
    with open(os.path.join(base, "pred.json"), "w") as f:
        json.dump(pred_json, f)
    expected = pq_compute(gt_json, os.path.join(base, "gt"), pred_json, os.path.join(base, "pred"))
    return {"name": name, "mode": "panoptic", "panoptic_gt": f"panoptic/{name}/gt.json",
            "panoptic_gt_dir": f"panoptic/{name}/gt", "panoptic_pred": f"panoptic/{name}/pred.json",
            "panoptic_pred_dir": f"panoptic/{name}/pred", "expected": expected}


def panoptic_error_cases(root):
    """Small broken sets, each with what the error must name."""
    cases = []
    rng = np.random.default_rng(99)

    def case(name, mutate, error):
        base = os.path.join(root, "panoptic_err", name)
        g, p = special_image(rng)
        gt_ann = {"image_id": 7, "file_name": "a.png", "segments_info": g.segments()}
        pred_ann = {"image_id": 7, "file_name": "a.png", "segments_info": p.segments(with_area=False)}
        gt_json = {"annotations": [gt_ann], "categories": CATEGORIES}
        pred_json = {"annotations": [pred_ann]}
        pred_ids = p.ids
        pred_ids, skip_png = mutate(gt_json, pred_json, pred_ids)
        write_png(os.path.join(base, "gt", "a.png"), g.ids)
        if not skip_png:
            write_png(os.path.join(base, "pred", "a.png"), pred_ids)
        os.makedirs(os.path.join(base, "pred"), exist_ok=True)
        for f, j in [("gt.json", gt_json), ("pred.json", pred_json)]:
            with open(os.path.join(base, f), "w") as fh:
                json.dump(j, fh)
        cases.append({"name": name, "mode": "panoptic", "panoptic_gt": f"panoptic_err/{name}/gt.json",
                      "panoptic_gt_dir": f"panoptic_err/{name}/gt", "panoptic_pred": f"panoptic_err/{name}/pred.json",
                      "panoptic_pred_dir": f"panoptic_err/{name}/pred", "error": error})

    def png_id_not_in_json(gt_json, pred_json, ids):
        ids = ids.copy()
        ids[0, 0] = 123456
        return ids, False

    def json_id_not_in_png(gt_json, pred_json, ids):
        pred_json["annotations"][0]["segments_info"].append({"id": 654321, "category_id": 1})
        return ids, False

    def unknown_category(gt_json, pred_json, ids):
        seg = pred_json["annotations"][0]["segments_info"][0]
        seg["category_id"] = 99
        return ids, False

    def extra_image(gt_json, pred_json, ids):
        pred_json["annotations"].append({"image_id": 8, "file_name": "a.png", "segments_info": []})
        return ids, False

    def no_prediction(gt_json, pred_json, ids):
        pred_json["annotations"] = []
        return ids, False

    def missing_png(gt_json, pred_json, ids):
        return ids, True

    def gt_area_wrong(gt_json, pred_json, ids):
        gt_json["annotations"][0]["segments_info"][0]["area"] += 1
        return ids, False

    case("png_id_not_in_json", png_id_not_in_json,
         ["prediction image_id 7", "segment id 123456 is in the PNG", "pred/a.png", "not in segments_info"])
    case("json_id_not_in_png", json_id_not_in_png, ["prediction image_id 7", "654321", "not in the PNG"])
    case("unknown_category", unknown_category, ["image_id 7", "unknown category_id 99"])
    case("prediction_not_in_gt", extra_image, ["pred.json", "images not in the ground truth", "image_id 8"])
    case("no_prediction", no_prediction, ["pred.json", "no prediction for the image with id 7"])
    case("missing_png", missing_png, ["pred/a.png"])
    case("gt_area_wrong", gt_area_wrong, ["ground truth image_id 7", "in the JSON but"])
    return cases


def main():
    out = sys.argv[1]
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    cases = [
        semantic_set(tmp, "grey8", 6, 255, [(23, 37), (48, 64), (5, 7), (31, 30)], "L", 1,
                     only_pred_class=4, never_class=5, extra_preds=2),
        semantic_set(tmp, "grey16_k300", 300, 65535, [(40, 50), (64, 33), (17, 91)], "I;16", 2,
                     only_pred_class=255, never_class=7),
        semantic_set(tmp, "palette_k21", 21, 255, [(30, 40), (12, 100)], "P", 3, only_pred_class=0,
                     never_class=20),
        panoptic_set(tmp, "coco_ids", 10, 8),
        panoptic_set(tmp, "string_ids_rgba", 11, 4, string_ids=True, rgba_pred=True),
    ]
    cases += semantic_error_cases(tmp)
    cases += panoptic_error_cases(tmp)
    with open(os.path.join(tmp, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
    open(os.path.join(tmp, "EVAL_DONE"), "w").close()
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)


if __name__ == "__main__":
    main()

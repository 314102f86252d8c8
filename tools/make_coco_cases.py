#!/usr/bin/env python3
"""COCO instance-segmentation cases with pycocotools' answers, for tests/eval_coco.rs (`dinoseg::eval::coco`).

Usage: make_coco_cases.py OUT_DIR
       make_coco_cases.py --large OUT_DIR   (one larger set, for tests/eval_coco.rs and bench/eval_coco.py: 300
                                             images of 480x640, about 2,400 objects and 7,600 results;
                                             expected.json then also has pycocotools' seconds for loadRes +
                                             evaluate + accumulate + summarize)

Writes OUT_DIR/CASE/{gt.json, results.json, expected.json} for each case below, then OUT_DIR/DONE (built in
OUT_DIR.tmp, renamed when complete). expected.json holds what pycocotools 2.0.11 computes from the two files:
  stats      COCOeval(COCO(gt), COCO(gt).loadRes(results), "segm") evaluate/accumulate/summarize, stats[0:6]
  gt_masks   per ground-truth annotation: id, the compressed RLE of annToRLE (polygons rasterised and merged),
             area and toBbox of it, and the decoded mask (column-major, np.packbits, hex)
  ious       per (image, category) evaluated: computeIoU's matrix (detections in score order x ground truths)
Cases: polygons (multi-part objects, vertices outside the image, repeated and closing vertices, self-crossing,
sub-pixel shapes), uncompressed and compressed RLE ground truth, crowd regions, images without objects, false
positives, detections of a class absent from the image, more than 100 detections in an image, tied scores, small,
medium and large objects, an area range without ground truth (-1), results with a `bbox` (loadRes then takes the
box's area), an annotation of a category that is not in `categories`, overlapping objects with crowd regions over
them and a ground truth of id 0. Seeded numpy, deterministic, no network.
"""
import contextlib
import copy
import io
import json
import os
import shutil
import sys
import time

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def star(rng, cx, cy, r, n=None, outside=False):
    """A random star-shaped polygon around (cx, cy) of radius about r, float coordinates."""
    n = n or int(rng.integers(3, 12))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = r * rng.uniform(0.5, 1.2, n)
    xs = cx + rad * np.cos(ang)
    ys = cy + rad * np.sin(ang)
    pts = np.stack([xs, ys], 1)
    # Mix exact grid values (x.0, x.5, x.1) with arbitrary decimals: rounding edges of the x5 + 0.5 rule.
    kind = rng.integers(0, 3)
    if kind == 0:
        pts = np.round(pts * 2) / 2
    elif kind == 1:
        pts = np.round(pts * 10) / 10
    poly = [float(v) for v in pts.reshape(-1)]
    if rng.uniform() < 0.2:  # a repeated vertex
        i = 2 * int(rng.integers(0, n))
        poly = poly[:i + 2] + poly[i:i + 2] + poly[i + 2:]
    if rng.uniform() < 0.2:  # explicitly closed
        poly = poly + poly[:2]
    return poly


def rle_of(polys, h, w):
    return mask_utils.merge(mask_utils.frPyObjects(polys, h, w))


def jitter(rng, polys, s):
    return [[float(v + rng.normal(0, s)) for v in p] for p in polys]


def text(rle):
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def uncompressed(rle):
    m = mask_utils.decode(rle)
    flat = m.reshape(-1, order="F")
    counts, cur, run = [], 0, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            run, cur = 0, v
        run += 1
    counts.append(run)
    return {"size": [int(v) for v in rle["size"]], "counts": [int(c) for c in counts]}


class Case:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.images, self.anns, self.results = [], [], []
        self.cats = [{"id": c, "name": f"c{c}"} for c in (1, 2, 5)]
        self.next_id = 1

    def image(self, h, w):
        iid = 100 + len(self.images) * 7
        self.images.append({"id": iid, "height": h, "width": w, "file_name": f"{iid}.png"})
        return iid, h, w

    def gt(self, iid, h, w, cat, polys=None, rle=None, form="poly", crowd=0, area=None, ann_id=None):
        if polys is not None:
            rle = rle_of(polys, h, w)
        segm = polys if form == "poly" else text(rle) if form == "rle" else uncompressed(rle)
        a = float(mask_utils.area(rle)) if area is None else area
        ann = {"id": self.next_id if ann_id is None else ann_id, "image_id": iid, "category_id": cat,
               "segmentation": segm, "area": a, "iscrowd": crowd, "bbox": [0, 0, 1, 1]}
        self.next_id += 1
        self.anns.append(ann)
        return rle

    def det(self, iid, cat, rle, score, bbox=None):
        r = {"image_id": iid, "category_id": cat, "segmentation": text(rle), "score": float(score)}
        if bbox is not None:
            r["bbox"] = bbox
        self.results.append(r)

    def score(self, ties=False):
        s = self.rng.uniform(0.05, 1.0)
        return round(s, 1) if ties else round(s, 6)

    def objects(self, iid, h, w, n, sizes=(4, 30), ties=False, p_det=0.8, fp=1, wrong_cat=1, multi=0.3):
        """n random objects with detections near them, plus false positives and wrong-class detections."""
        for _ in range(n):
            cat = int(self.rng.choice([c["id"] for c in self.cats]))
            r = self.rng.uniform(*sizes)
            cx, cy = self.rng.uniform(-0.1 * w, 1.1 * w), self.rng.uniform(-0.1 * h, 1.1 * h)
            polys = [star(self.rng, cx, cy, r)]
            if self.rng.uniform() < multi:
                polys.append(star(self.rng, cx + self.rng.uniform(-2, 2) * r, cy + self.rng.uniform(-2, 2) * r,
                                  r * self.rng.uniform(0.2, 0.7)))
            self.gt(iid, h, w, cat, polys)
            if self.rng.uniform() < p_det:
                for _ in range(int(self.rng.integers(1, 3))):
                    self.det(iid, cat, rle_of(jitter(self.rng, polys, r * self.rng.uniform(0.02, 0.4)), h, w),
                             self.score(ties))
        for _ in range(fp):
            cat = int(self.rng.choice([c["id"] for c in self.cats]))
            r = self.rng.uniform(*sizes)
            poly = star(self.rng, self.rng.uniform(0, w), self.rng.uniform(0, h), r)
            self.det(iid, cat, rle_of([poly], h, w), self.score(ties))
        for _ in range(wrong_cat):
            # A class with no ground truth in this image (category 5 is never given one here).
            poly = star(self.rng, self.rng.uniform(0, w), self.rng.uniform(0, h), self.rng.uniform(*sizes))
            self.det(iid, 5, rle_of([poly], h, w), self.score(ties))


def build(name, seed):
    c = Case(seed)
    if name == "polygons":
        for h, w in [(60, 80), (120, 100), (200, 150), (33, 47)]:
            iid, h, w = c.image(h, w)
            c.objects(iid, h, w, 5, sizes=(3, 70))
        # Degenerate shapes: sub-pixel, a line, a self-crossing bow tie, vertices far outside.
        iid, h, w = c.image(64, 64)
        c.gt(iid, h, w, 1, [[10.2, 10.2, 10.4, 10.3, 10.3, 10.6]])
        c.gt(iid, h, w, 2, [[5, 5, 40, 40, 5.2, 5.1]])
        bow = [[10, 30, 50, 60, 50, 30, 10, 60]]
        c.gt(iid, h, w, 1, bow)
        c.det(iid, 1, rle_of(bow, h, w), 0.9)
        far = [[-30.5, -20, 100.25, 10, 90, 130.75, -10, 70]]
        c.det(iid, 2, c.gt(iid, h, w, 2, far), 0.8)
    elif name == "rle_and_crowd":
        for k in range(4):
            iid, h, w = c.image(90 + 10 * k, 110)
            c.objects(iid, h, w, 3, sizes=(5, 40))
            # A crowd region (uncompressed RLE, as COCO stores them) with detections inside it.
            crowd = [[10, 10, 60, 12, 70, 60, 12, 70]]
            rle = rle_of(crowd, h, w)
            c.gt(iid, h, w, 1, rle=rle, form="counts", crowd=1)
            for _ in range(3):
                part = [[float(v) for v in np.array(star(c.rng, 35, 40, 8, n=6))]]
                c.det(iid, 1, rle_of(part, h, w), c.score())
            # Objects given as compressed and uncompressed RLE.
            for form in ("rle", "counts"):
                polys = [star(c.rng, c.rng.uniform(20, 90), c.rng.uniform(20, 80), c.rng.uniform(5, 25))]
                rle = rle_of(polys, h, w)
                c.gt(iid, h, w, 2, rle=rle, form=form)
                c.det(iid, 2, rle_of(jitter(c.rng, polys, 1.5), h, w), c.score())
    elif name == "empty_images":
        for k in range(5):
            iid, h, w = c.image(50, 70)
            if k % 2 == 0:
                c.objects(iid, h, w, 2, sizes=(5, 20))
            else:  # no objects, only false positives
                for _ in range(2):
                    poly = star(c.rng, c.rng.uniform(0, w), c.rng.uniform(0, h), 8)
                    c.det(iid, int(c.rng.choice([1, 2])), rle_of([poly], h, w), c.score())
        c.image(40, 40)  # nothing at all
    elif name == "many_detections":
        iid, h, w = c.image(160, 160)
        c.objects(iid, h, w, 12, sizes=(4, 25), ties=True, p_det=1.0, fp=0, wrong_cat=0)
        for _ in range(140):  # more than 100 for one class in one image, scores with ties
            poly = star(c.rng, c.rng.uniform(0, w), c.rng.uniform(0, h), c.rng.uniform(3, 20))
            c.det(iid, 1, rle_of([poly], h, w), c.score(ties=True))
        iid, h, w = c.image(100, 120)
        c.objects(iid, h, w, 6, sizes=(4, 25), ties=True)
    elif name == "no_large":
        for _ in range(3):
            iid, h, w = c.image(80, 80)
            c.objects(iid, h, w, 4, sizes=(2, 12))
    elif name == "sizes":
        for _ in range(3):
            iid, h, w = c.image(240, 260)
            c.objects(iid, h, w, 4, sizes=(3, 15))
            c.objects(iid, h, w, 3, sizes=(25, 45), fp=0, wrong_cat=0)
            c.objects(iid, h, w, 2, sizes=(70, 110), fp=0, wrong_cat=0)
        # An annotation whose `area` key disagrees with its mask (pycocotools uses the key), and one of a category
        # that is not in `categories` (left out).
        iid, h, w = c.image(100, 100)
        polys = [star(c.rng, 50, 50, 30)]
        c.det(iid, 2, c.gt(iid, h, w, 2, polys, area=500.0), 0.7)
        c.gt(iid, h, w, 9, [star(c.rng, 20, 20, 10)])
    elif name == "bbox_area":
        for _ in range(3):
            iid, h, w = c.image(120, 140)
            c.objects(iid, h, w, 5, sizes=(4, 60))
        for r in c.results:
            r["bbox"] = [float(v) for v in mask_utils.toBbox(r["segmentation"])]
            r["bbox"][3] *= float(c.rng.uniform(0.3, 3.0))  # loadRes takes the box's area, whatever the mask's
    elif name == "random":
        for _ in range(12):
            iid, h, w = c.image(int(c.rng.integers(30, 200)), int(c.rng.integers(30, 200)))
            c.objects(iid, h, w, int(c.rng.integers(0, 8)), sizes=(2, 80), ties=bool(c.rng.uniform() < 0.5),
                      fp=int(c.rng.integers(0, 4)), wrong_cat=int(c.rng.integers(0, 2)))
    elif name == "large":
        for k in range(300):
            iid, h, w = c.image(480, 640)
            c.objects(iid, h, w, int(c.rng.integers(2, 14)), sizes=(3, 120), ties=k % 3 == 0, fp=int(c.rng.integers(0, 30)),
                      wrong_cat=int(c.rng.integers(0, 3)))
            if k % 10 == 0:
                c.gt(iid, h, w, 1, [star(c.rng, 320, 240, 150, n=10)], form="counts", crowd=1)
    elif name == "crowded":
        # Overlapping objects of one class, crowd regions over them, a ground truth with id 0 (pycocotools then
        # counts its match as a false positive: dtMatches holds the id), many near-duplicate detections.
        for k in range(6):
            iid, h, w = c.image(100, 100)
            for j in range(6):
                cx, cy = c.rng.uniform(30, 70), c.rng.uniform(30, 70)
                polys = [star(c.rng, cx, cy, c.rng.uniform(6, 30))]
                c.gt(iid, h, w, 1, polys, ann_id=0 if (k, j) == (0, 0) else None)
                for _ in range(int(c.rng.integers(0, 4))):
                    c.det(iid, 1, rle_of(jitter(c.rng, polys, c.rng.uniform(0.5, 6)), h, w), c.score(ties=k % 2 == 0))
            if k % 2 == 0:
                crowd = [star(c.rng, 50, 50, 35, n=8)]
                c.gt(iid, h, w, 1, crowd, form="counts", crowd=1)
                c.gt(iid, h, w, 2, crowd, form="rle", crowd=1)
                for _ in range(3):
                    c.det(iid, 2, rle_of([star(c.rng, 50, 50, 10)], h, w), c.score())
    else:
        raise ValueError(name)
    if name != "sizes":
        c.rng.shuffle(c.results)
    gt = {"info": {"description": name}, "images": c.images, "annotations": c.anns, "categories": c.cats}
    return gt, c.results


CASES = [("polygons", 1), ("rle_and_crowd", 2), ("empty_images", 3), ("many_detections", 4), ("no_large", 5),
         ("sizes", 6), ("bbox_area", 7), ("random", 8), ("crowded", 9)]


def expected(gt_path, res_path, bits=True):
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(gt_path)
        started = time.perf_counter()
        dets = coco.loadRes(res_path)
        ev = COCOeval(coco, dets, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        seconds = time.perf_counter() - started
    masks = []
    ref = COCO.__new__(COCO)
    with contextlib.redirect_stdout(io.StringIO()):
        ref = COCO(gt_path)
    for ann in ref.dataset["annotations"]:
        if ann["image_id"] not in ref.imgs:
            continue
        rle = ref.annToRLE(copy.deepcopy(ann))
        if isinstance(rle["counts"], str):
            rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
        m = mask_utils.decode(rle).reshape(-1, order="F")
        masks.append({"id": ann["id"], "counts": rle["counts"].decode("ascii"),
                      "area": int(mask_utils.area(rle)), "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                      "bits": np.packbits(m).tobytes().hex() if bits else None, "pixels": int(m.size)})
    ious = [{"image_id": int(i), "category_id": int(k), "ious": np.asarray(v).tolist()}
            for (i, k), v in sorted(ev.ious.items()) if len(v) > 0]
    return {"stats": [float(s) for s in ev.stats[:6]], "gt_masks": masks, "ious": ious, "seconds": seconds}


def main():
    large = sys.argv[1] == "--large"
    out = sys.argv[-1]
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name, seed in [("large", 10)] if large else CASES:
        d = os.path.join(tmp, name)
        os.makedirs(d)
        gt, results = build(name, seed)
        gt_path, res_path = os.path.join(d, "gt.json"), os.path.join(d, "results.json")
        with open(gt_path, "w") as f:
            json.dump(gt, f)
        with open(res_path, "w") as f:
            json.dump(results, f)
        exp = expected(gt_path, res_path, bits=not large)
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump(exp, f)
        print(name, len(gt["annotations"]), "gt,", len(results), "results, stats", np.round(exp["stats"], 4).tolist())
    open(os.path.join(tmp, "DONE"), "w").close()
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)


if __name__ == "__main__":
    main()

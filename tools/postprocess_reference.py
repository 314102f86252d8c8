#!/usr/bin/env python3
"""Reference post-processing for tests/postprocess.rs: a straightforward numpy/torch implementation of the rules
documented in src/postprocess/*.rs, and, where the rules coincide, transformers' own EomtImageProcessor.

Usage: postprocess_reference.py OUT_DIR   (writes OUT_DIR/postprocess.safetensors and OUT_DIR/postprocess.json)

Every step the Rust code runs through libtorch (softmax, sigmoid, the class x query product, topk, the
antialiased shrink) is the same libtorch call here; every step it runs in its CPU kernels (resampling, argmax,
thresholds, areas) is written here densely in float64 with the same operation order, so label maps, panoptic ids
and masks must agree bit for bit. Unlike the Rust kernels, nothing here skips a query, a class or a cell.

The script also checks itself against transformers (EomtImageProcessor.post_process_panoptic_segmentation,
post_process_instance_segmentation, post_process_semantic_segmentation) on inputs where the rules coincide (no
padding, no resize; semantic at mask stride 1) and stores transformers' outputs for the Rust tests; likewise
against Mask2FormerImageProcessor on the "m2f_*" cases (384 x 384 frames; where and why its panoptic rules differ
from ours: the comment above M2F_CASES; tests/postprocess_mask2former.rs).
"""

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from safetensors.torch import save_file

RATIOS = []  # the won / own ratios of the last panoptic call's candidate segments
MERGED = [0]  # stuff queries merged into an earlier segment, over all cases (printed: the fixtures must have some)
DEFAULT = dict(score_threshold=0.8, query_threshold=0.8, mask_threshold=0.5, overlap_threshold=0.8, top_k=100)


class Plan:
    """src/postprocess/resample.rs Plan."""

    def __init__(self, lb, h, w):
        self.valid_h = lb["resized_h"] * h / lb["padded_h"]
        self.valid_w = lb["resized_w"] * w / lb["padded_w"]
        self.crop_h = min(max(math.ceil(self.valid_h), 1), h)
        self.crop_w = min(max(math.ceil(self.valid_w), 1), w)
        self.out_h, self.out_w = lb["input_h"], lb["input_w"]
        self.shrink = self.out_h < self.valid_h or self.out_w < self.valid_w

    def crop(self, t):
        return t[..., : self.crop_h, : self.crop_w]

    def shrink_t(self, t):
        if not self.shrink:
            return t
        oh, ow = self.out_h, self.out_w
        return torch._C._nn._upsample_bilinear2d_aa(t[None], [oh, ow], False, oh / self.valid_h, ow / self.valid_w)[0]

    def prepare(self, t):
        return self.shrink_t(self.crop(t))

    def axes(self):
        if self.shrink:
            return axis(self.out_h, float(self.out_h), self.out_h), axis(self.out_w, float(self.out_w), self.out_w)
        return axis(self.crop_h, self.valid_h, self.out_h), axis(self.crop_w, self.valid_w, self.out_w)


def axis(coarse, valid, out):
    scale = valid / out
    src = np.maximum((np.arange(out, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), coarse - 1)
    i1 = np.minimum(i0 + 1, coarse - 1)
    lam = np.clip(src - i0, 0.0, 1.0)
    return i0, i1, 1.0 - lam, lam


def resample(m, ay, ax):
    """[C, rows, cols] float64 -> [C, out_h, out_w], the Rust `lerp` order."""
    (y0, y1, wy0, wy1), (x0, x1, wx0, wx1) = ay, ax
    a, b = m[:, y0][:, :, x0], m[:, y0][:, :, x1]
    c, d = m[:, y1][:, :, x0], m[:, y1][:, :, x1]
    wy0, wy1, wx0, wx1 = wy0[None, :, None], wy1[None, :, None], wx0[None, None, :], wx1[None, None, :]
    return wy0 * (wx0 * a + wx1 * b) + wy1 * (wx0 * c + wx1 * d)


def sigmoid(u):
    with np.errstate(over="ignore"):  # exp overflows to inf for very negative logits: sigmoid 0, as in Rust
        return 1.0 / (1.0 + np.exp(-u))


def threshold_logit(t):
    return math.log(t / (1.0 - t))


def semantic_masks(cl, ml, lb):
    q, k1 = cl.shape
    k = k1 - 1
    plan = Plan(lb, ml.shape[-2], ml.shape[-1])
    probs = torch.softmax(cl, -1)[:, :k]
    sig = torch.sigmoid(plan.crop(ml)).reshape(q, -1)
    scores = sig.T @ probs
    chw = scores.T.reshape(k, plan.crop_h, plan.crop_w)
    return resample(plan.shrink_t(chw).double().numpy(), *plan.axes()).argmax(0)


def semantic_logits(logits, lb):
    plan = Plan(lb, logits.shape[-2], logits.shape[-1])
    return resample(plan.prepare(logits).double().numpy(), *plan.axes()).argmax(0)


def panoptic(cl, ml, lb, stuff, cfg):
    k = cl.shape[1] - 1
    plan = Plan(lb, ml.shape[-2], ml.shape[-1])
    scores, classes = torch.softmax(cl, -1).max(-1)
    keep = (classes != k) & (scores > cfg["query_threshold"])
    index = keep.nonzero().reshape(-1)
    ids = np.zeros((plan.out_h, plan.out_w), dtype=np.int64)
    n = index.numel()
    if n == 0:
        return ids, []
    u = resample(plan.prepare(ml[index]).double().numpy(), *plan.axes())
    s = scores[index].double().numpy()
    cls = classes[index].tolist()
    winner = (s[:, None, None] * sigmoid(u)).argmax(0)
    own_mask = u >= threshold_logit(cfg["mask_threshold"])
    on = np.take_along_axis(own_mask, winner[None], 0)[0]
    won = np.bincount(winner.ravel(), minlength=n)
    own = own_mask.reshape(n, -1).sum(1)
    fin = np.bincount(winner[on].ravel(), minlength=n)
    seg_of, segments, stuff_seg = np.zeros(n, dtype=np.int64), [], {}
    RATIOS[:] = [float(np.float32(won[j]) / np.float32(own[j])) for j in range(n) if won[j] and own[j] and fin[j]]
    for j in range(n):
        ratio = np.float32(won[j]) / np.float32(max(own[j], 1))
        if won[j] == 0 or own[j] == 0 or fin[j] == 0 or not float(ratio) > cfg["overlap_threshold"]:
            continue
        c = cls[j]
        if c in stuff and c in stuff_seg:
            seg_of[j] = stuff_seg[c]
            MERGED[0] += 1
            continue
        seg_of[j] = len(segments) + 1
        if c in stuff:
            stuff_seg[c] = seg_of[j]
        segments.append(dict(id=int(seg_of[j]), class_id=c, is_thing=c not in stuff, score=float(s[j])))
    ids = np.where(on, seg_of[winner], 0)
    for seg in segments:
        seg["area"] = int((ids == seg["id"]).sum())
    return ids, segments


def instances(cl, ml, lb, stuff, cfg):
    q, k1 = cl.shape
    k = k1 - 1
    plan = Plan(lb, ml.shape[-2], ml.shape[-1])
    probs = torch.softmax(cl, -1)[:, :k].reshape(-1)
    values, index = probs.topk(min(cfg["top_k"], probs.numel()), 0, True, True)
    u = resample(plan.prepare(ml).double().numpy(), *plan.axes())
    thr = threshold_logit(cfg["mask_threshold"])
    found = []
    for p, i in zip(values.tolist(), index.tolist()):
        query, c = i // k, i % k
        m = u[query] > thr
        area = int(m.sum())
        score = p * (sigmoid(u[query])[m].sum() / (area + 1e-6))
        if area > 0 and score >= cfg["score_threshold"]:
            found.append((score, query, c, m))
    found.sort(key=lambda f: (-f[0], f[1], f[2]))
    out = []
    for score, query, c, m in found:
        ys, xs = np.nonzero(m)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        crop = (m[y0:y1, x0:x1] * 255).astype(np.uint8)
        out.append(dict(class_id=c, score=float(score), bbox=[int(x0), int(y0), int(x1 - x0), int(y1 - y0)],
                        area=int(m.sum()), query=query, is_thing=c not in stuff, mask=crop))
    return out


def make_logits(gen, b, q, k, h, w, objects, tiles=False, flat=False):
    """Class logits with `objects` confident queries per image (probabilities from ~0.5 to ~1) and mask logits that
    are round blobs (positive inside, about +10 at the centre) with smooth and pixel noise, overlapping often; with
    `tiles`, the confident queries' masks tile the image instead (a soft Voronoi partition, like a panoptic model's),
    and queries of one class come in pairs so that stuff merges; with `flat`, every query is confident and every
    mask logit is small noise around 0 (an untrained model, bench/eomt.py's worst case: dozens of queries compete
    at every pixel, every mask edge is everywhere)."""
    cl = torch.randn(b, q, k + 1, generator=gen)
    cl[..., k] += 4.0
    for i in range(b):
        chosen = torch.randperm(q, generator=gen)[:objects]
        classes = torch.randint(0, k, (objects,), generator=gen)
        boost = 6.0 + 8.0 * torch.rand(objects, generator=gen)
        cl[i, chosen, classes] += boost
    yy = ((torch.arange(h) + 0.5) / h)[:, None]
    xx = ((torch.arange(w) + 0.5) / w)[None, :]
    centre = torch.rand(b, q, 2, 1, 1, generator=gen)
    radius = 0.12 + 0.22 * torch.rand(b, q, 1, 1, generator=gen)
    dist = ((yy - centre[:, :, 0]) ** 2 + (xx - centre[:, :, 1]) ** 2).sqrt()
    smooth = torch.nn.functional.interpolate(torch.randn(b, q, 3, 4, generator=gen), size=(h, w), mode="bilinear")
    ml = 10.0 * (radius - dist) / radius + 1.5 * smooth + 0.3 * torch.randn(b, q, h, w, generator=gen)
    if tiles:
        cl = torch.randn(b, q, k + 1, generator=gen)
        cl[..., k] += 4.0
        for j in range(objects):
            cl[:, j, (j // 2) % k] += 8.0 + 6.0 * torch.rand(b, generator=gen)
        near = dist[:, :objects].amin(1, keepdim=True)
        ml[:, :objects] = 8.0 - 1200.0 * (dist[:, :objects] - near) + 1.5 * smooth[:, :objects]
    if flat:
        cl = torch.randn(b, q, k + 1, generator=gen)
        cl[..., k] -= 4.0
        cl[torch.arange(b)[:, None], torch.arange(q)[None, :], torch.randint(0, k, (b, q), generator=gen)] += 7.0
        ml = 0.25 * smooth + 0.15 * torch.randn(b, q, h, w, generator=gen)
    return cl.contiguous(), ml.float().contiguous()


def letterbox(input_hw, resized_hw, padded_hw):
    return dict(input_h=input_hw[0], input_w=input_hw[1], resized_h=resized_hw[0], resized_w=resized_hw[1],
                padded_h=padded_hw[0], padded_w=padded_hw[1])


CASES = [
    # name, batch, queries, classes, objects, mask hw, letterbox, stuff, config overrides, linear logits hw
    ("pad", 2, 24, 9, 8, (16, 24), letterbox((58, 90), (58, 90), (64, 96)), [6, 7, 8], {}, (4, 6)),
    ("resize", 1, 20, 7, 7, (16, 28), letterbox((45, 70), (64, 99), (64, 112)), [5, 6], {}, (4, 7)),
    ("shrink", 1, 16, 5, 6, (16, 24), letterbox((10, 15), (64, 96), (64, 96)), [4], {}, (16, 24)),
    ("low", 1, 20, 6, 12, (12, 20), letterbox((44, 77), (44, 77), (48, 80)), [], dict(score_threshold=0.3,
     query_threshold=0.3, mask_threshold=0.4, overlap_threshold=0.5, top_k=7), None),
    ("hf", 2, 30, 12, 10, (16, 24), letterbox((64, 96), (64, 96), (64, 96)), [9, 10, 11], {}, None),
    ("hf_stride1", 1, 16, 10, 6, (64, 96), letterbox((64, 96), (64, 96), (64, 96)), [8, 9], {}, None),
    ("tiles", 2, 60, 20, 40, (30, 40), letterbox((117, 157), (117, 157), (128, 160)), list(range(8, 20)), {}, (8, 10)),
    # Its overlap threshold is set just below a median won / own ratio: one pixel of own area more flips it.
    ("ratio", 1, 24, 6, 12, (16, 24), letterbox((61, 93), (61, 93), (64, 96)), [4, 5], {}, None),
    ("wide", 1, 20, 300, 10, (8, 12), letterbox((30, 45), (30, 45), (32, 48)), list(range(200, 300)), {}, (2, 3)),
    # Every query confident, masks flat noise: dozens of candidates per pixel. "flat" keeps every query that wins
    # an own-mask pixel (overlap 0), so the winner map shows; "flat_ratio" sets it at a median won / own ratio.
    ("flat", 1, 48, 12, 48, (20, 24), letterbox((61, 75), (80, 96), (80, 96)), list(range(6, 12)),
     dict(overlap_threshold=0.0, score_threshold=0.3, top_k=30), None),
    ("flat_ratio", 1, 48, 12, 48, (20, 24), letterbox((61, 75), (80, 96), (80, 96)), list(range(6, 12)), {}, None),
]


def hf_outputs(name, cl, ml, stuff, cfg, tensors, entry):
    """transformers' EoMT post-processing on a case without padding or resize."""
    from transformers.models.eomt.image_processing_pil_eomt import EomtImageProcessorPil as EomtImageProcessor

    h, w = entry["letterboxes"][0]["input_h"], entry["letterboxes"][0]["input_w"]
    proc = EomtImageProcessor(size={"shortest_edge": min(h, w), "longest_edge": max(h, w)})
    out = SimpleNamespace(class_queries_logits=cl, masks_queries_logits=ml, patch_offsets=None)
    targets = [(h, w)] * cl.shape[0]
    sem = proc.post_process_semantic_segmentation(out, target_sizes=targets)
    pan = proc.post_process_panoptic_segmentation(
        out, target_sizes=targets, threshold=cfg["query_threshold"], mask_threshold=cfg["mask_threshold"],
        overlap_mask_area_threshold=cfg["overlap_threshold"], stuff_classes=stuff)
    inst = proc.post_process_instance_segmentation(out, target_sizes=targets, threshold=cfg["score_threshold"])
    for b in range(cl.shape[0]):
        tensors[f"{name}.hf_semantic.{b}"] = sem[b].to(torch.int32).contiguous()
        tensors[f"{name}.hf_panoptic.{b}"] = (pan[b]["segmentation"].to(torch.int64) + 1).to(torch.int32).contiguous()
        img = entry["images"][b]
        img["hf_segments"] = [dict(id=s["id"] + 1, class_id=s["label_id"], score=s["score"]) for s in pan[b]["segments_info"]]
        img["hf_instances"] = sorted(([s["label_id"], s["score"]] for s in inst[b]["segments_info"]), key=lambda x: -x[1])
    return sem, pan, inst


def main():
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(20250611)
    tensors, meta = {}, {"cases": []}
    for name, b, q, k, objects, (h, w), lb, stuff, over, lin in CASES:
        cfg = {**DEFAULT, **over}
        cl, ml = make_logits(gen, b, q, k, h, w, objects, tiles=name == "tiles", flat=name.startswith("flat"))
        if name in ("ratio", "flat_ratio"):
            panoptic(cl[0], ml[0], lb, stuff, {**cfg, "overlap_threshold": 0.0})
            ratios = sorted(RATIOS)
            cfg["overlap_threshold"] = ratios[len(ratios) // 2] - 1e-4
            print(f"{name}: candidate ratios {[round(r, 4) for r in ratios]}, threshold {cfg['overlap_threshold']:.5f}")
        tensors[f"{name}.class_logits"], tensors[f"{name}.mask_logits"] = cl, ml
        entry = dict(name=name, letterboxes=[lb] * b, config=cfg, stuff=stuff, classes=k, images=[])
        if lin is not None:
            lin_logits = torch.randn(b, k, *lin, generator=gen)
            tensors[f"{name}.linear_logits"] = lin_logits
        for i in range(b):
            tensors[f"{name}.semantic.{i}"] = torch.from_numpy(semantic_masks(cl[i], ml[i], lb)).to(torch.int32)
            ids, segments = panoptic(cl[i], ml[i], lb, stuff, cfg)
            tensors[f"{name}.panoptic.{i}"] = torch.from_numpy(ids).to(torch.int32)
            found = instances(cl[i], ml[i], lb, stuff, cfg)
            for j, inst in enumerate(found):
                tensors[f"{name}.inst.{i}.{j}"] = torch.from_numpy(inst.pop("mask"))
            if lin is not None:
                tensors[f"{name}.linear.{i}"] = torch.from_numpy(semantic_logits(lin_logits[i], lb)).to(torch.int32)
            entry["images"].append(dict(segments=segments, instances=found))
        if name.startswith("hf"):
            check_against_transformers(name, cl, ml, stuff, cfg, tensors, entry)
        meta["cases"].append(entry)
        counts = [(len(im["segments"]), len(im["instances"])) for im in entry["images"]]
        print(f"{name}: (segments, instances) per image {counts}")
    gen = torch.Generator().manual_seed(20251204)
    for name, b, q, k, side, stuff, over, logits in M2F_CASES:
        cfg = {**DEFAULT, **over, "top_k": q}
        cl, ml = logits(gen)
        assert tuple(cl.shape) == (b, q, k + 1) and tuple(ml.shape) == (b, q, side, side), name
        tensors[f"{name}.class_logits"], tensors[f"{name}.mask_logits"] = cl, ml
        entry = dict(name=name, letterboxes=[M2F_LB] * b, config=cfg, stuff=stuff, classes=k, images=[])
        for i in range(b):
            tensors[f"{name}.semantic.{i}"] = torch.from_numpy(semantic_masks(cl[i], ml[i], M2F_LB)).to(torch.int32)
            ids, segments = panoptic(cl[i], ml[i], M2F_LB, stuff, cfg)
            tensors[f"{name}.panoptic.{i}"] = torch.from_numpy(ids).to(torch.int32)
            found = instances(cl[i], ml[i], M2F_LB, stuff, cfg)
            for j, inst in enumerate(found):
                tensors[f"{name}.inst.{i}.{j}"] = torch.from_numpy(inst.pop("mask"))
            entry["images"].append(dict(segments=segments, instances=found))
        check_against_mask2former(name, cl, ml, stuff, cfg, tensors, entry)
        meta["cases"].append(entry)
    print(f"stuff queries merged into earlier segments: {MERGED[0]}")
    print(f"m2f_tiles*: stuff queries fused by transformers' Mask2Former processor: {M2F_FUSED[0]}")
    assert M2F_FUSED[0] > 0, "the m2f_tiles fixtures should fuse stuff"
    assert MERGED[0] > 0, "the fixtures should merge stuff"
    save_file({n: t.contiguous() for n, t in tensors.items()}, str(out_dir / "postprocess.safetensors"))
    (out_dir / "postprocess.json").write_text(json.dumps(meta, indent=1))


def check_against_transformers(name, cl, ml, stuff, cfg, tensors, entry):
    """Where the rules coincide, this reference must agree with transformers (up to float32 near-ties)."""
    hf_outputs(name, cl, ml, stuff, cfg, tensors, entry)
    for b in range(cl.shape[0]):
        img = entry["images"][b]
        pan_ours, pan_hf = tensors[f"{name}.panoptic.{b}"], tensors[f"{name}.hf_panoptic.{b}"]
        differ = int((pan_ours != pan_hf).sum())
        assert differ <= pan_ours.numel() // 1000, f"{name}[{b}]: panoptic differs from transformers at {differ} px"
        assert [(s["id"], s["class_id"]) for s in img["segments"]] == [(s["id"], s["class_id"]) for s in img["hf_segments"]]
        ours = sorted(([i["class_id"], i["score"]] for i in img["instances"]), key=lambda x: -x[1])
        assert [c for c, _ in ours] == [c for c, _ in img["hf_instances"]], f"{name}[{b}]: instance classes differ"
        assert all(abs(a[1] - b_[1]) < 1e-5 for a, b_ in zip(ours, img["hf_instances"])), "instance scores differ"
        if name == "hf_stride1":
            sem_ours, sem_hf = tensors[f"{name}.semantic.{b}"], tensors[f"{name}.hf_semantic.{b}"]
            differ = int((sem_ours != sem_hf).sum())
            assert differ <= sem_ours.numel() // 1000, f"{name}[{b}]: semantic differs from transformers at {differ} px"
        print(f"{name}[{b}]: agrees with transformers (panoptic px differing: {int((pan_ours != pan_hf).sum())})")


# ---- transformers' Mask2FormerImageProcessor ----
#
# Mask2FormerImageProcessor.post_process_{instance,panoptic,semantic}_segmentation first resize every mask logit to
# a fixed 384 x 384 (bilinear, align_corners=False) and work there; with the camera frame 384 x 384 (no padding, no
# resize) and masks at stride 4 (96 x 96) or 1, that resize is the one ours makes to the input, so the cases below
# are 384 x 384 frames. Its rules then differ from ours (= EoMT's processor, = the Mask2Former authors' code) only
# in panoptic, on purpose:
#  1. the own-mask area it compares the won area with is taken on score-weighted probabilities (`mask_probs *=
#     pred_scores` runs in place before `check_segment_validity`): `score * sigmoid >= mask_threshold`, ours
#     `sigmoid >= mask_threshold`;
#  2. a segment gets every pixel its query wins, also where its own mask is off (ours and the authors': won & own);
#  3. after a stuff query is fused into an earlier segment, the running id is set back to that segment's id, so the
#     next new segment reuses an id already given (ours: ids 1, 2, ... unique);
#  4. segments_info has one entry per fused query (same id, `was_fused`), ours one per segment (the first query's);
#  5. with no query kept the map is -1 everywhere, otherwise unassigned pixels are 0 (ours: 0, void, always).
# Instances agree once its top-k (num_queries pairs, unsorted) is our top_k = Q, and mask_threshold is 0.5 (it
# ignores the argument: `mask_pred > 0`). The "m2f_tiles*" cases are built so that rules 1 and 2 cannot bite
# (saturated mask logits, every pixel inside some kept query's mask, scores well above 0.5) and 3 cannot
# (fused stuff queries are consecutive): there labels and segments must agree. "m2f_soft" (round blobs with smooth
# logits) compares instances and semantic only; "m2f_quirks" is made by hand so that 1, 2, 3 and 4 show, and
# "m2f_none" shows 5.

M2F_FRAME = 384
M2F_LB = letterbox((M2F_FRAME, M2F_FRAME), (M2F_FRAME, M2F_FRAME), (M2F_FRAME, M2F_FRAME))
M2F_FUSED = [0]  # stuff queries fused into an earlier segment in the "m2f_tiles*" cases (the fixtures must have some)
SAT = 64.0  # mask logit magnitude of the saturated cases: bilinear x4 keeps |u| >= SAT / 16 = 4, sigmoid 0.982


def disc(h, w, cy, cx, r):
    yy = ((torch.arange(h) + 0.5) / h)[:, None]
    xx = ((torch.arange(w) + 0.5) / w)[None, :]
    return ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r


def m2f_tiles(gen, b, q, k, h, w, stuff, objects, low):
    """Two stuff queries of class stuff[0] tile the image (top and bottom halves, fused), then `objects` round
    blobs of higher probability (thing classes, and consecutive pairs of the other stuff classes, fused), `low`
    blob queries below the query threshold, the rest "no object"; every mask logit is +-SAT."""
    things = [c for c in range(k) if c not in stuff]
    cl = torch.randn(b, q, k + 1, generator=gen)
    cl[..., k] += 4.0
    ml = torch.full((b, q, h, w), -SAT)
    for i in range(b):
        cl[i, :2, stuff[0]] += 8.0 + 0.5 * torch.rand(2, generator=gen)
        ml[i, 0, : h // 2], ml[i, 1, h // 2:] = SAT, SAT
        j, unused = 2, list(stuff[1:])  # each other stuff class fused once at most (rule 3)
        while j < 2 + objects:
            pair = j + 1 < 2 + objects and unused and torch.rand(1, generator=gen).item() < 0.4
            cls = [unused.pop()] * 2 if pair else [things[int(torch.randint(0, len(things), (1,), generator=gen))]]
            for c in cls:
                cl[i, j, c] += 10.0 + 5.0 * torch.rand(1, generator=gen).item()
                cy, cx, r = torch.rand(3, generator=gen).tolist()
                ml[i, j][disc(h, w, cy, cx, 0.05 + 0.12 * r)] = SAT
                j += 1
        for j in range(2 + objects, 2 + objects + low):
            cl[i, j, int(torch.randint(0, k, (1,), generator=gen))] += 2.0 + 2.0 * torch.rand(1, generator=gen).item()
            cy, cx, r = torch.rand(3, generator=gen).tolist()
            ml[i, j][disc(h, w, cy, cx, 0.1 + 0.2 * r)] = SAT
        for j in range(2 + objects + low, q):  # "no object", masks anywhere
            cy, cx, r = torch.rand(3, generator=gen).tolist()
            ml[i, j][disc(h, w, cy, cx, 0.1 + 0.2 * r)] = SAT
    return cl.contiguous(), ml.contiguous()


def m2f_quirks():
    """One image, 4 classes (0 stuff), masks 96 x 96 over the 384 x 384 frame, by hand:
    q0 stuff 0 on rows 0-31, q1 thing 1 a disc lower left, q2 stuff 0 on rows 32-47 (fused into q0's segment),
    q3 thing 2 a disc lower right (ours id 3; transformers reuses id 2, rule 3), q4 thing 3 with p ~ 0.85 and mask
    logit +0.2 (sigmoid 0.55, x 0.85 < 0.5: transformers finds no own area and drops it, rule 1; ours keeps it)
    on rows 80-95, columns 0-47; q5 "no object". Rows 48-79 outside the discs and rows 80-95 right are in no mask:
    void for us, q1's id for transformers, which gives every pixel to its best weighted query (rule 2)."""
    h = w = 96
    k = 4
    cl = torch.zeros(1, 6, k + 1)
    for j, (c, v) in enumerate([(0, 6.0), (1, 9.0), (0, 6.2), (2, 8.0), (3, 3.2), (k, 9.0)]):
        cl[0, j, c] = v
    ml = torch.full((1, 6, h, w), -SAT)
    ml[0, 0, :32] = SAT
    ml[0, 1][disc(h, w, 0.67, 0.25, 0.12)] = SAT
    ml[0, 2, 32:48] = SAT
    ml[0, 3][disc(h, w, 0.67, 0.75, 0.12)] = SAT
    ml[0, 4, 80:, :48] = 0.2
    ml[0, 5] = SAT
    return cl, ml


M2F_CASES = [
    # name, batch, queries, classes, mask side, stuff, config overrides, logits
    ("m2f_tiles", 2, 30, 10, 96, [7, 8, 9], {}, lambda g: m2f_tiles(g, 2, 30, 10, 96, 96, [7, 8, 9], 12, 5)),
    ("m2f_tiles_stride1", 1, 20, 8, 384, [6, 7], dict(overlap_threshold=0.6),
     lambda g: m2f_tiles(g, 1, 20, 8, 384, 384, [6, 7], 8, 4)),
    ("m2f_soft", 2, 24, 9, 96, [6, 7, 8], dict(score_threshold=0.5, query_threshold=0.5),
     lambda g: make_logits(g, 2, 24, 9, 96, 96, 10)),
    ("m2f_soft_stride1", 1, 16, 6, 384, [5], dict(score_threshold=0.5),
     lambda g: make_logits(g, 1, 16, 6, 384, 384, 8)),
    ("m2f_quirks", 1, 6, 4, 96, [0], {}, lambda g: m2f_quirks()),
    ("m2f_none", 1, 10, 5, 96, [4], {}, lambda g: make_logits(g, 1, 10, 5, 96, 96, 0)),
]


def m2f_outputs(name, cl, ml, stuff, cfg, tensors, entry):
    """transformers' Mask2FormerImageProcessor on a 384 x 384 case: panoptic maps as it gives them (-1 kept), its
    segments_info as it gives them, instances (class, score, full-frame mask) sorted by score (near-equal scores in
    our order), semantic maps."""
    from transformers import Mask2FormerImageProcessorPil as Mask2FormerImageProcessor  # the same post-processing

    proc = Mask2FormerImageProcessor()
    out = SimpleNamespace(class_queries_logits=cl, masks_queries_logits=ml)
    targets = [(M2F_FRAME, M2F_FRAME)] * cl.shape[0]
    pan = proc.post_process_panoptic_segmentation(
        out, threshold=cfg["query_threshold"], mask_threshold=cfg["mask_threshold"],
        overlap_mask_area_threshold=cfg["overlap_threshold"], label_ids_to_fuse=set(stuff), target_sizes=targets)
    inst = proc.post_process_instance_segmentation(out, threshold=cfg["score_threshold"], target_sizes=targets,
                                                   return_binary_maps=True)
    sem = proc.post_process_semantic_segmentation(out, target_sizes=targets)
    for b in range(cl.shape[0]):
        tensors[f"{name}.m2f_panoptic.{b}"] = pan[b]["segmentation"].to(torch.int32).contiguous()
        tensors[f"{name}.m2f_semantic.{b}"] = sem[b].to(torch.int32).contiguous()
        img = entry["images"][b]
        img["m2f_segments"] = [dict(id=s["id"], class_id=s["label_id"], score=s["score"], was_fused=s["was_fused"])
                               for s in pan[b]["segments_info"]]
        segs = inst[b]["segments_info"]
        order = sorted(range(len(segs)), key=lambda j: -segs[j]["score"])
        ours = img["instances"]
        for n in range(min(len(order), len(ours))):  # near-equal scores (within 1e-5) in our order
            for m in range(n, len(order)):
                s = segs[order[m]]
                area = int((inst[b]["segmentation"][order[m]] > 0).sum())
                if s["label_id"] == ours[n]["class_id"] and abs(s["score"] - ours[n]["score"]) < 1e-5 and \
                        area == ours[n]["area"]:
                    order[n], order[m] = order[m], order[n]
                    break
        img["m2f_instances"] = [[segs[j]["label_id"], segs[j]["score"]] for j in order]
        for n, j in enumerate(order):
            tensors[f"{name}.m2f_inst.{b}.{n}"] = (inst[b]["segmentation"][j] > 0).to(torch.uint8).mul(255).contiguous()


def first_per_id(segments):
    seen, out = set(), []
    for s in segments:
        if s["id"] not in seen:
            seen.add(s["id"])
            out.append(s)
    return out


def check_against_mask2former(name, cl, ml, stuff, cfg, tensors, entry):
    """Instances agree on every case; panoptic on the "m2f_tiles*" cases; semantic where masks are 384 x 384."""
    m2f_outputs(name, cl, ml, stuff, cfg, tensors, entry)
    for b in range(cl.shape[0]):
        img = entry["images"][b]
        ours = [[i["class_id"], i["score"]] for i in img["instances"]]
        assert [c for c, _ in ours] == [c for c, _ in img["m2f_instances"]], f"{name}[{b}]: instance classes differ"
        assert all(abs(a[1] - t[1]) < 1e-5 for a, t in zip(ours, img["m2f_instances"])), f"{name}[{b}]: scores"
        pan_ours, pan_m2f = tensors[f"{name}.panoptic.{b}"], tensors[f"{name}.m2f_panoptic.{b}"].clamp(min=0)
        differ = int((pan_ours != pan_m2f).sum())
        if name.startswith("m2f_tiles"):
            assert differ == 0, f"{name}[{b}]: panoptic differs from transformers' Mask2Former at {differ} px"
            theirs = [(s["id"], s["class_id"]) for s in first_per_id(img["m2f_segments"])]
            assert [(s["id"], s["class_id"]) for s in img["segments"]] == theirs, f"{name}[{b}]: segments"
            M2F_FUSED[0] += len(img["m2f_segments"]) - len(theirs)
        if ml.shape[-1] == M2F_FRAME:
            sem_ours, sem_m2f = tensors[f"{name}.semantic.{b}"], tensors[f"{name}.m2f_semantic.{b}"]
            n = int((sem_ours != sem_m2f).sum())
            assert n <= sem_ours.numel() // 1000, f"{name}[{b}]: semantic differs from transformers at {n} px"
        print(f"{name}[{b}]: Mask2Former processor: {len(ours)} instances agree; panoptic px differing {differ}; "
              f"segments ours {len(img['segments'])}, theirs {len(img['m2f_segments'])}")


if __name__ == "__main__":
    main()

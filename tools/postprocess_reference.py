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
padding, no resize; semantic at mask stride 1) and stores transformers' outputs for the Rust tests.
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
    print(f"stuff queries merged into earlier segments: {MERGED[0]}")
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


if __name__ == "__main__":
    main()

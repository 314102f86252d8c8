#!/usr/bin/env python3
"""Trains the tiny demo models from scratch on synthetic shapes (tools/demo_scenes.py) and evaluates them.

Usage:
  train_demo.py OUT_DIR [--minutes 20] [--steps N] [--batch 8] [--threads 2] [--crop-fraction 0.5]
                [--device cpu|cuda] [--workers N] [--init OUT_DIR] [--save-every N]     train, then write OUT_DIR/
  train_demo.py --eval OUT_DIR --pred PRED_DIR [--frames 40] [--gt GT_DIR]       Python predictions + metrics
  train_demo.py --refit DIR [OUT_DIR] [--head-steps 100]                          phase 2 alone (see below)
  train_demo.py --bench [--hidden 128]                                             time a few training steps

Writes OUT_DIR/eomt/ (transformers `eomt_dinov3` directory, attn_mask_probs 0, id2label from demo_scenes.CLASSES,
preprocessor_config.json with ImageNet mean/std), OUT_DIR/linear_head.safetensors (dinoseg linear-head format,
dense layers of the EoMT encoder), OUT_DIR/labels.txt and OUT_DIR/training_log.json.

Training (what it does, in order):
1. EoMT-DINOv3 (hidden 128, 8 layers, 4 heads, 4 registers, 16 queries in the last 2 blocks) from random
   weights with transformers' own EoMT loss (Hungarian matching, class CE + mask BCE + dice, deep supervision on
   the query blocks), on freshly generated training scenes (seeds below demo_scenes.TEST_SEED_BASE), padded
   right/bottom with zeros after normalisation exactly as dinoseg pads. The first `--crop-fraction` of the budget
   uses cheap 160x160-192x160 crops with at most 3 objects, whose RoPE coordinates are those of a window of a
   240x320 frame (RopeWindow: the patch spacing the model sees at inference); then full frames of the test sizes
   and a few others. No other RoPE augmentation (`pos_embed_rescale` None). No masked attention:
   `attn_mask_probs` is 0 throughout (so training and inference agree). An auxiliary linear head (BatchNorm + 1x1
   conv on the four official dense layers, cross-entropy with background weight `--bg-weight`) is trained jointly
   and its gradient reaches the encoder, so that the dense features become linearly separable by class.
   AdamW (weight decay 0.05), warm-up then cosine decay over `--steps` or, by default, over `--minutes` of wall
   time (a busy shared machine then shortens the run instead of overrunning it), gradient clipping 1.0.
2. The linear head is then re-fitted on the frozen encoder in eval mode for `--head-steps` steps on full frames
   (fresh BatchNorm statistics, plain cross-entropy).
Features for the linear head are taken as dinoseg computes them when the head shares the EoMT pass: the outputs
of blocks i*(D//4)-1 (D = 8: 1, 3, 5, 7), the patch tokens (the last h*w tokens; from block D - num_blocks on the
sequence is [queries, cls, registers, patches]) after the final `layernorm`.
With `--device cuda`, use `--workers N` processes to render scenes (rendering is ~20 ms per 320x240 frame).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_scenes as ds  # noqa: E402

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
# Training frame sizes (height, width): mostly the demo's 240x320, plus the other test sizes and a few more.
TRAIN_SIZES = [(240, 320)] * 5 + [(250, 330), (200, 272), (256, 256), (224, 352), (288, 320)]
# Cheaper crops for the first part of training (objects keep their pixel size; RoPE's rescale augmentation covers
# the different patch spacing of the small grid), with at most CROP_OBJECTS objects.
CROP_SIZES = [(160, 160), (160, 192), (192, 160)]
CROP_OBJECTS = 3
NUM_CLASSES = len(ds.CLASSES)
IGNORE = 255


def arch(hidden=128, layers=8, heads=4, queries=16, blocks=2):
    return dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                intermediate_size=4 * hidden, num_register_tokens=4, patch_size=16, layer_norm_eps=1e-5,
                num_queries=queries, num_blocks=blocks, num_upscale_blocks=2, image_size=320,
                train_num_points=4096)


def make_model(**kw):
    from transformers import EomtDinov3Config, EomtDinov3ForUniversalSegmentation

    id2label = {i: n for i, n in enumerate(ds.CLASSES)}
    cfg = EomtDinov3Config(**arch(**kw), id2label=id2label, label2id={n: i for i, n in id2label.items()})
    model = EomtDinov3ForUniversalSegmentation(cfg)
    model.attn_mask_probs.fill_(0.0)
    return model


def dense_layers(depth):
    return [4, 11, 17, 23] if depth == 24 else [i * (depth // 4) - 1 for i in range(1, 5)]


def padded(n, m=16):
    return (n + m - 1) // m * m


def to_pixels(image):
    """uint8 [H, W, 3] RGB -> normalised [3, Hp, Wp], zero-padded right/bottom to multiples of 16."""
    h, w = image.shape[:2]
    x = (torch.from_numpy(image).permute(2, 0, 1).float() / 255.0 - MEAN) / STD
    return F.pad(x, (0, padded(w) - w, 0, padded(h) - h))


class LinearHead(nn.Module):
    """The DINOv3 linear protocol head: BatchNorm -> 1x1 conv (dinoseg names: bn.*, conv.*)."""

    def __init__(self, channels, classes):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=1e-5)
        self.conv = nn.Conv2d(channels, classes, 1)

    def forward(self, feats, size):
        return F.interpolate(self.conv(self.bn(feats)), size=size, mode="bilinear", align_corners=False)


class FeatureTap:
    """Captures the outputs of the dense-layer blocks during a forward of the EoMT model."""

    def __init__(self, model):
        self.model = model
        self.layers = dense_layers(model.config.num_hidden_layers)
        self.out = {}
        for i in self.layers:
            model.layers[i].register_forward_hook(self._hook(i))

    def _hook(self, i):
        def f(_module, _inputs, output):
            self.out[i] = output[0] if isinstance(output, tuple) else output
        return f

    def features(self, hp, wp):
        h, w = hp // 16, wp // 16
        maps = []
        for i in self.layers:
            t = self.model.layernorm(self.out[i][:, -h * w:, :])  # patch tokens are always last
            maps.append(t.transpose(1, 2).reshape(t.shape[0], -1, h, w))
        return torch.cat(maps, dim=1)


class RopeWindow:
    """RoPE coordinates for training crops: the crop's patches get the coordinates they would have as a window of
    a full REF_GRID frame (patch centres normalised to [-1, 1] over the full frame), so that the spacing between
    patches in RoPE space is the one the model sees at inference on 240x320 frames. With `window` None (full
    frames, evaluation) transformers' own rule applies; training uses no other RoPE augmentation
    (`pos_embed_rescale` None)."""

    def __init__(self, model):
        self.rope = model.rope_embeddings
        self.window = None
        self.plain = self.rope.forward
        self.rope.forward = self.forward

    def forward(self, pixel_values):
        if self.window is None:
            return self.plain(pixel_values)
        h, w = pixel_values.shape[-2] // 16, pixel_values.shape[-1] // 16
        rh, rw, oy, ox = self.window
        dev = pixel_values.device
        ys = (torch.arange(h, dtype=torch.float32, device=dev) + 0.5 + oy) / rh * 2 - 1
        xs = (torch.arange(w, dtype=torch.float32, device=dev) + 0.5 + ox) / rw * 2 - 1
        coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).flatten(0, 1)
        angles = 2 * math.pi * coords[:, :, None] * self.rope.inv_freq[None, None, :]
        angles = angles.flatten(1, 2).tile(2)
        return torch.cos(angles).to(pixel_values.dtype), torch.sin(angles).to(pixel_values.dtype)


REF_GRID = (15, 20)  # the patch grid of a 240x320 frame


def make_batch(seeds, size, max_objects=6):
    h, w = size
    hp, wp = padded(h), padded(w)
    pixels, masks, classes, sem = [], [], [], []
    for s in seeds:
        sc = ds.render_scene(s, h, w, max_objects)
        pixels.append(to_pixels(sc.image))
        m, c = [], []
        bg = sc.semantic == 0
        if bg.any():
            m.append(bg)
            c.append(0)
        for k, cls in sc.objects:
            m.append(sc.instances == k)
            c.append(cls)
        mt = torch.zeros(len(m), hp, wp)
        mt[:, :h, :w] = torch.from_numpy(np.stack(m)).float()
        masks.append(mt)
        classes.append(torch.tensor(c, dtype=torch.long))
        st = torch.full((hp, wp), IGNORE, dtype=torch.long)
        st[:h, :w] = torch.from_numpy(sc.semantic.astype(np.int64))
        sem.append(st)
    return torch.stack(pixels), masks, classes, torch.stack(sem)


def _worker_init():
    torch.set_num_threads(1)


def _batch_job(job):
    seeds, size, max_objects = job
    return make_batch(seeds, size, max_objects)


class Batches:
    """Training batches, generated in this process or, with `workers` > 0, by a process pool `prefetch` steps
    ahead (for a GPU, where scene rendering would otherwise be the bottleneck)."""

    def __init__(self, workers, prefetch=None):
        self.pool = None
        self.pending = []
        if workers > 0:
            import multiprocessing as mp

            self.pool = mp.get_context("spawn").Pool(workers, initializer=_worker_init)
            self.prefetch = prefetch or 2 * workers

    def get(self, next_job):
        """`next_job()` returns (seeds, size, max_objects) for the next batch to produce."""
        if self.pool is None:
            job = next_job()
            return job, _batch_job(job)
        while len(self.pending) < self.prefetch:
            job = next_job()
            self.pending.append((job, self.pool.apply_async(_batch_job, (job,))))
        job, res = self.pending.pop(0)
        return job, res.get()

    def close(self):
        if self.pool is not None:
            self.pool.terminate()


def set_grid(model, hp, wp):
    model.grid_size = (hp // 16, wp // 16)


def train(args):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if args.init:  # continue from a saved OUT_DIR (fresh optimiser, short warm-up)
        model, head = load(args.init)
        args.hidden = model.config.hidden_size
    else:
        model = make_model(hidden=args.hidden)
        head = LinearHead(4 * args.hidden, NUM_CLASSES)
    model.config.pos_embed_rescale = None  # no RoPE rescale augmentation (see RopeWindow)
    dev = torch.device(args.device)
    model.to(dev)
    head.to(dev)
    tap = FeatureTap(model)
    rope = RopeWindow(model)
    class_weight = torch.tensor([args.bg_weight] + [1.0] * (NUM_CLASSES - 1), device=dev)
    batches = Batches(args.workers)
    produced = [0]
    params = list(model.parameters()) + list(head.parameters())
    print(f"EoMT params {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M, dense layers {tap.layers}",
          flush=True)
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.999))
    total_steps = args.steps
    warmup = 30 if args.init else 100
    start = time.time()
    step = 0
    log = []
    model.train()
    head.train()
    budget = args.minutes * 60
    while True:
        # Schedule: linear warm-up over `warmup` steps, then cosine decay over the step budget (--steps) or, by
        # default, over the wall-clock budget (--minutes), so that a shared, busy machine shortens the run instead
        # of overrunning it.
        progress = step / total_steps if total_steps else (time.time() - start) / budget
        if progress >= 1.0:
            break
        lr = args.lr * (step + 1) / warmup if step < warmup else args.lr * 0.5 * (1 + math.cos(math.pi * progress))
        for g in opt.param_groups:
            g["lr"] = lr

        def next_job():
            small = progress < args.crop_fraction
            sizes = CROP_SIZES if small else TRAIN_SIZES
            size = sizes[rng.integers(len(sizes))]
            seeds = [ds.train_seed(produced[0], i, args.batch) for i in range(args.batch)]
            produced[0] += 1
            return seeds, size, CROP_OBJECTS if small else 6

        (_, size, max_objects), (pixels, masks, classes, sem) = batches.get(next_job)
        small = max_objects == CROP_OBJECTS and size in CROP_SIZES
        pixels, sem = pixels.to(dev, non_blocking=True), sem.to(dev, non_blocking=True)
        masks = [m.to(dev, non_blocking=True) for m in masks]
        classes = [c.to(dev) for c in classes]
        hp, wp = pixels.shape[-2:]
        if small:
            rh, rw = REF_GRID
            rope.window = (rh, rw, rng.uniform(0, rh - hp // 16), rng.uniform(0, rw - wp // 16))
        else:
            rope.window = None
        set_grid(model, hp, wp)
        out = model(pixel_values=pixels, mask_labels=masks, class_labels=classes)
        logits = head(tap.features(hp, wp), (hp, wp))
        loss_lin = F.cross_entropy(logits, sem, weight=class_weight, ignore_index=IGNORE)
        fg = (sem > 0) & (sem != IGNORE)
        fg_acc = (logits.argmax(1)[fg] == sem[fg]).float().mean().item() if fg.any() else 0.0
        loss = out.loss + args.aux_weight * loss_lin
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % 20 == 0 or step == 1:
            el = time.time() - start
            rec = dict(step=step, lr=round(lr, 7), size=list(size), loss=round(out.loss.item(), 4),
                       lin=round(loss_lin.item(), 4), fg_acc=round(fg_acc, 3), elapsed_s=round(el, 1))
            log.append(rec)
            print(json.dumps(rec), flush=True)
        if args.save_every and step % args.save_every == 0:
            save(model, head, os.path.join(args.out, f"ckpt_{step}"))
            model.train()
            head.train()
    train_s = time.time() - start
    batches.close()

    # Phase 2: re-fit the linear head on the frozen encoder in eval mode.
    refit_head(eomt_features(model, tap, rope), head, args.head_steps, args.batch, step, dev, rng)
    total_s = time.time() - start
    save(model.cpu(), head.cpu(), args.out)
    info = dict(steps=step, batch=args.batch, crop_fraction=args.crop_fraction, minutes=args.minutes,
                hidden=args.hidden, lr=args.lr, aux_weight=args.aux_weight, bg_weight=args.bg_weight,
                head_steps=args.head_steps, train_s=round(train_s, 1), total_s=round(total_s, 1),
                threads=torch.get_num_threads(), device=args.device, workers=args.workers, log=log)
    with open(os.path.join(args.out, "training_log.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"done: {step} steps in {train_s:.0f} s, total {total_s:.0f} s", flush=True)


def eomt_features(model, tap, rope):
    """Features of the frozen EoMT encoder as the linear head reads them: pixels -> [B, 4C, h, w]."""
    rope.window = None
    model.eval()

    @torch.no_grad()
    def features(pixels):
        hp, wp = pixels.shape[-2:]
        set_grid(model, hp, wp)
        model(pixel_values=pixels)
        return tap.features(hp, wp)
    return features


def refit_head(features, head, steps, batch, seed_step, dev, rng):
    """Fits the linear head on frozen `features` (pixels -> dense features): fresh BatchNorm statistics
    (cumulative average), then `steps` AdamW steps with cosine decay on full frames of training seeds from
    `seed_step` on."""
    head.train()
    hopt = torch.optim.AdamW(head.parameters(), lr=2e-3, weight_decay=0.0)
    with torch.no_grad():
        head.bn.reset_running_stats()
        head.bn.momentum = None
    for hs in range(steps):
        size = TRAIN_SIZES[rng.integers(len(TRAIN_SIZES))]
        seeds = [ds.train_seed(seed_step + hs, i, batch) for i in range(batch)]
        pixels, _, _, sem = make_batch(seeds, size)
        pixels, sem = pixels.to(dev), sem.to(dev)
        feats = features(pixels)
        for g in hopt.param_groups:
            g["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * hs / steps))
        loss_lin = F.cross_entropy(head(feats, pixels.shape[-2:]), sem, ignore_index=IGNORE)
        hopt.zero_grad(set_to_none=True)
        loss_lin.backward()
        hopt.step()
        if (hs + 1) % 20 == 0:
            print(json.dumps(dict(head_step=hs + 1, lin=round(loss_lin.item(), 4))), flush=True)
    head.eval()


def refit(args):
    """`--refit DIR`: phase 2 alone on a trained DIR, written to OUT_DIR (default DIR)."""
    model, head = load(args.refit)
    features = eomt_features(model, FeatureTap(model), RopeWindow(model))
    rng = np.random.default_rng(2)
    refit_head(features, head, args.head_steps, args.batch, 50_000_000, torch.device("cpu"), rng)
    save(model, head, args.out or args.refit)
    print(f"re-fitted the linear head of {args.refit} ({args.head_steps} steps) into {args.out or args.refit}")


def save(model, head, out):
    from safetensors.torch import save_file
    from transformers.models.eomt.image_processing_pil_eomt import EomtImageProcessorPil

    os.makedirs(out, exist_ok=True)
    model.attn_mask_probs.fill_(0.0)
    model.config.image_size = 320
    model.save_pretrained(os.path.join(out, "eomt"))
    EomtImageProcessorPil(do_resize=False, size={"shortest_edge": 240, "longest_edge": 320}).save_pretrained(
        os.path.join(out, "eomt"))
    sd = {k: v.detach().cpu().contiguous().clone() for k, v in head.state_dict().items()
          if k != "bn.num_batches_tracked"}
    save_file(sd, os.path.join(out, "linear_head.safetensors"),
              metadata={"dinoseg.head": "linear", "dinoseg.layers": "4", "dinoseg.backbone": "custom",
                        "dinoseg.classes": json.dumps(ds.CLASSES), "dinoseg.bn_eps": "1e-05"})
    with open(os.path.join(out, "labels.txt"), "w") as f:
        f.write(ds.labels_text())


def load(out):
    from safetensors.torch import load_file
    from transformers import EomtDinov3ForUniversalSegmentation

    model = EomtDinov3ForUniversalSegmentation.from_pretrained(os.path.join(out, "eomt")).eval()
    sd = load_file(os.path.join(out, "linear_head.safetensors"))
    head = LinearHead(sd["bn.weight"].shape[0], sd["conv.weight"].shape[0])
    head.load_state_dict(sd, strict=False)
    return model.eval(), head.eval()


@torch.no_grad()
def predict(model, head, tap, image, threshold=0.8, mask_threshold=0.5, overlap=0.8):
    """One frame -> (semantic uint8 [H, W] from the linear head, instance ids uint16 [H, W], instance list), with
    transformers' EoMT panoptic rules (EomtImageProcessor.post_process_panoptic_segmentation) on the mask logits
    up-sampled to the padded input and cropped to the frame; thing segments are the instances."""
    from transformers.models.eomt.image_processing_pil_eomt import compute_segments, remove_low_and_no_objects

    h, w = image.shape[:2]
    x = to_pixels(image)[None]
    hp, wp = x.shape[-2:]
    set_grid(model, hp, wp)
    out = model(pixel_values=x)
    sem = head(tap.features(hp, wp), (hp, wp))[0, :, :h, :w].argmax(0).numpy().astype(np.uint8)
    masks = F.interpolate(out.masks_queries_logits, size=(hp, wp), mode="bilinear", align_corners=False)[0, :, :h, :w]
    scores, labels = out.class_queries_logits[0].softmax(-1).max(-1)
    num_labels = out.class_queries_logits.shape[-1] - 1
    masks, scores, labels = remove_low_and_no_objects(masks, scores, labels, threshold, num_labels)
    ids = np.zeros((h, w), dtype=np.uint16)
    instances = []
    if masks.shape[0] > 0:
        seg, segments = compute_segments(masks, scores, labels, sorted(ds.STUFF), mask_threshold, overlap, (h, w))
        seg = seg.numpy()
        for s in segments:
            if s["label_id"] in ds.STUFF:
                continue
            m = seg == s["id"]
            k = len(instances) + 1
            ids[m] = k
            ys, xs = np.nonzero(m)
            bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
            instances.append({"id": k, "class_id": int(s["label_id"]), "class": ds.CLASSES[s["label_id"]],
                              "score": float(s["score"]), "bbox": bbox})
    return sem, ids, instances


def evaluate(args):
    import demo_metrics
    import make_demo_recording as rec

    from PIL import Image

    gt = args.gt
    if gt is None:
        root = os.path.join(args.pred, "_gt")
        rec.write_gt_only(root, args.frames, args.seed)
        gt = os.path.join(root, "gt")
    torch.set_num_threads(args.threads)
    model, head = load(args.eval)
    tap = FeatureTap(model)
    frames = json.load(open(os.path.join(gt, "instances.json")))["frames"]
    os.makedirs(args.pred, exist_ok=True)
    t = time.time()
    for fr in frames:
        sc = ds.render_scene(fr["seed"], fr["height"], fr["width"])
        sem, ids, inst = predict(model, head, tap, sc.image)
        stamp = fr["stamp_ns"]
        Image.fromarray(sem).save(os.path.join(args.pred, f"{stamp}_semantic.png"))
        demo_metrics.write_uint16_png(ids, os.path.join(args.pred, f"{stamp}_instance_ids.png"))
        with open(os.path.join(args.pred, f"{stamp}_instances.json"), "w") as f:
            json.dump(inst, f)
    print(f"predicted {len(frames)} frames in {time.time() - t:.1f} s", flush=True)
    metrics = demo_metrics.evaluate(gt, args.pred)
    print(json.dumps(metrics, indent=1))
    if args.metrics_out:
        with open(args.metrics_out, "w") as f:
            json.dump(metrics, f, indent=1)


def bench(args):
    model = make_model(hidden=args.hidden)
    tap = FeatureTap(model)
    head = LinearHead(4 * args.hidden, NUM_CLASSES)
    opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=1e-4)
    model.train()
    for i in range(6):
        t0 = time.time()
        pixels, masks, classes, sem = make_batch([i * 8 + j for j in range(args.batch)], (240, 320))
        t1 = time.time()
        set_grid(model, 240, 320)
        out = model(pixel_values=pixels, mask_labels=masks, class_labels=classes)
        loss = out.loss + F.cross_entropy(head(tap.features(240, 320), (240, 320)), sem, ignore_index=IGNORE)
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"data {t1 - t0:.2f} s, step {time.time() - t1:.2f} s, loss {loss.item():.3f}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", nargs="?")
    p.add_argument("--minutes", type=float, default=25.0)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--aux-weight", type=float, default=2.0)
    p.add_argument("--head-steps", type=int, default=100)
    p.add_argument("--bg-weight", type=float, default=0.3, help="background weight of the joint linear-head CE")
    p.add_argument("--crop-fraction", type=float, default=0.6,
                   help="fraction of the budget trained on small crops (CROP_SIZES) before full frames")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu or cuda (training only)")
    p.add_argument("--workers", type=int, default=0, help="scene-rendering processes (0: in the training process)")
    p.add_argument("--init", metavar="OUT_DIR", help="start from a trained OUT_DIR instead of random weights")
    p.add_argument("--save-every", type=int, default=0, help="also save OUT_DIR/ckpt_STEP every N steps")
    p.add_argument("--eval", metavar="OUT_DIR")
    p.add_argument("--refit", metavar="DIR", help="re-fit the linear head of a trained DIR (phase 2 alone)")
    p.add_argument("--pred")
    p.add_argument("--gt")
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--seed", type=int, default=ds.TEST_SEED_BASE)
    p.add_argument("--metrics-out")
    p.add_argument("--bench", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.bench:
        bench(args)
    elif args.eval:
        evaluate(args)
    elif args.refit:
        refit(args)
    else:
        if not args.out:
            p.error("OUT_DIR is required")
        train(args)


if __name__ == "__main__":
    main()

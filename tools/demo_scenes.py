#!/usr/bin/env python3
"""Synthetic camera scenes for `make demo`: textured shapes on textured backgrounds, with exact ground truth.

Each frame holds 1-6 objects of five shape classes (disk, square, triangle, star, ring) on a random textured
background (class 0, "background", stuff). Every object gets a random colour and a random texture drawn from the
same families as the background (flat + noise, gradient, stripes, checker, blotches), a random size and rotation,
so only its shape tells its class. Objects are drawn brighter than the background (object textures span the upper
55-100% of the intensity range, backgrounds 0-45%; `polarity=False` drops this): with random contrast polarity a
tiny ViT trained from scratch on two CPU cores did not learn silhouettes within its budget (foreground accuracy at
chance after 1000+ steps), with a fixed polarity it does within a few hundred. Objects may overlap: later objects
occlude earlier ones, and the ground truth shows what is visible (a placement that would leave an earlier object
less than half visible is redrawn). A ring's hole shows whatever lies below it.

Ground truth per frame (`Scene`):
  image      uint8 [H, W, 3] RGB
  semantic   uint8 [H, W]: 0 background, 1..5 the shape classes (CLASSES)
  instances  uint16 [H, W]: 0 background, k = the k-th object in drawing order (ids 1..n, all visible)
  objects    list of (id, class_id) for the visible objects

Deterministic by seed (numpy PCG64). Seed ranges: training uses seeds in [0, TEST_SEED_BASE); the held-out test
frames use TEST_SEED_BASE + i, which training never draws.

    from demo_scenes import render_scene, test_frame_size, TEST_SEED_BASE
    scene = render_scene(TEST_SEED_BASE + 3, *test_frame_size(3))
"""
from dataclasses import dataclass, field

import numpy as np

CLASSES = ["background", "disk", "square", "triangle", "star", "ring"]
STUFF = {0}
TEST_SEED_BASE = 1_000_000_000
# Object "radius" (circumradius) range in pixels, independent of the frame size.
RADIUS = (22, 58)
MIN_VISIBLE = 0.5


@dataclass
class Scene:
    image: np.ndarray
    semantic: np.ndarray
    instances: np.ndarray
    objects: list = field(default_factory=list)

    @property
    def height(self):
        return self.image.shape[0]

    @property
    def width(self):
        return self.image.shape[1]


def labels_text():
    """The labels file for src/postprocess/labels.rs: background is stuff, the shapes are things."""
    lines = ["# dinoseg demo: synthetic shapes (tools/demo_scenes.py)", f"{CLASSES[0]} [stuff]"]
    lines += [f"{name} [thing]" for name in CLASSES[1:]]
    return "\n".join(lines) + "\n"


def test_frame_size(index):
    """(height, width) of held-out frame `index`: mostly 240x320, with 250x330 and 200x272 frames (sides that are
    not multiples of 16, so the runner pads) mixed in."""
    if index % 5 == 3:
        return 250, 330
    if index % 10 == 6:
        return 200, 272
    return 240, 320


# --- textures ---------------------------------------------------------------------------------------------------

def _colour(rng):
    # Random colour with a spread of brightness and saturation.
    return rng.uniform(0.0, 1.0, size=3)


def _smooth_noise(rng, h, w, cell):
    gh, gw = h // cell + 2, w // cell + 2
    g = rng.uniform(0.0, 1.0, size=(gh, gw))
    ys = np.arange(h) / cell
    xs = np.arange(w) / cell
    y0 = ys.astype(int)
    x0 = xs.astype(int)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    fy = fy * fy * (3 - 2 * fy)
    fx = fx * fx * (3 - 2 * fx)
    a = g[y0][:, x0]
    b = g[y0][:, x0 + 1]
    c = g[y0 + 1][:, x0]
    d = g[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


TEXTURE_KINDS = (0, 1, 2, 3, 4)  # flat + noise, gradient, stripes, checker, blotches


def texture(rng, h, w, kinds=TEXTURE_KINDS):
    """A float [h, w, 3] texture in [0, 1]: one of the families `kinds` with random colours and parameters."""
    kind = kinds[rng.integers(0, len(kinds))]
    c1, c2 = _colour(rng), _colour(rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:  # flat with pixel noise
        t = np.broadcast_to(c1, (h, w, 3)).copy()
        t += rng.normal(0.0, rng.uniform(0.02, 0.12), size=(h, w, 1))
    elif kind == 1:  # linear gradient
        a = rng.uniform(0, 2 * np.pi)
        p = (np.cos(a) * xx + np.sin(a) * yy)
        p = (p - p.min()) / max(p.max() - p.min(), 1e-6)
        t = c1 * (1 - p[..., None]) + c2 * p[..., None]
    elif kind == 2:  # stripes
        a = rng.uniform(0, np.pi)
        period = rng.uniform(5, 22)
        p = (np.cos(a) * xx + np.sin(a) * yy) / period
        s = (np.sin(2 * np.pi * p) > rng.uniform(-0.5, 0.5)).astype(np.float32)
        t = c1 * (1 - s[..., None]) + c2 * s[..., None]
    elif kind == 3:  # rotated checker
        a = rng.uniform(0, np.pi / 2)
        period = rng.uniform(6, 20)
        u = (np.cos(a) * xx + np.sin(a) * yy) / period
        v = (-np.sin(a) * xx + np.cos(a) * yy) / period
        s = ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
        t = c1 * (1 - s[..., None]) + c2 * s[..., None]
    else:  # smooth blotches
        s = _smooth_noise(rng, h, w, int(rng.integers(6, 40))).astype(np.float32)
        t = c1 * (1 - s[..., None]) + c2 * s[..., None]
    return np.clip(t, 0.0, 1.0).astype(np.float32)


# --- shapes -----------------------------------------------------------------------------------------------------

def _polygon_mask(px, py, verts):
    """Even-odd point-in-polygon test for pixel centres (px, py) against vertices [N, 2]."""
    inside = np.zeros(px.shape, dtype=bool)
    n = len(verts)
    for i in range(n):
        x1, y1 = verts[i]
        x2, y2 = verts[(i + 1) % n]
        cond = (y1 > py) != (y2 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = (x2 - x1) * (py - y1) / (y2 - y1) + x1
        inside ^= cond & (px < xint)
    return inside


def shape_mask(cls, h, w, cx, cy, r, angle, param, x0=0, y0=0):
    """Boolean [h, w] mask of shape class `cls` (1..5) centred at (cx, cy) with circumradius r, for the pixel
    window whose top-left pixel is (x0, y0)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    px, py = xx + (x0 + 0.5), yy + (y0 + 0.5)
    dx, dy = px - cx, py - cy
    if cls == 1:  # disk
        return dx * dx + dy * dy <= r * r
    if cls == 5:  # ring
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 >= (param * r) ** 2)
    if cls == 2:  # square (circumradius r)
        k = 4
        angles = angle + np.pi / 4 + np.arange(k) * 2 * np.pi / k
        radii = np.full(k, r)
    elif cls == 3:  # equilateral triangle
        k = 3
        angles = angle + np.arange(k) * 2 * np.pi / k
        radii = np.full(k, r)
    else:  # five-pointed star, inner radius param * r
        angles = angle + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, param * r)
    verts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    return _polygon_mask(px, py, verts)


# --- scenes -----------------------------------------------------------------------------------------------------

def render_scene(seed, height=240, width=320, max_objects=6, kinds=TEXTURE_KINDS, polarity=True):
    """The scene for `seed` at `height` x `width` (deterministic). `kinds` restricts the texture families (an
    easier curriculum for training); the test frames use all of them."""
    rng = np.random.default_rng(seed)
    image = texture(rng, height, width, kinds)
    if rng.uniform() < 0.5:  # a second background layer blended through a soft mask: more clutter
        blend = _smooth_noise(rng, height, width, int(rng.integers(20, 80)))[..., None]
        image = image * (1 - blend) + texture(rng, height, width, kinds) * blend
    if polarity:
        image = image * 0.45
    instances = np.zeros((height, width), dtype=np.uint16)
    classes = {}
    areas = {}
    n_target = int(rng.integers(1, max_objects + 1))
    next_id = 1
    tries = 0
    while next_id <= n_target and tries < 60:
        tries += 1
        cls = int(rng.integers(1, len(CLASSES)))
        r = float(rng.uniform(*RADIUS))
        # Centre inside the frame, at most ~30% of the radius outside the border.
        m = 0.7 * r
        cx = float(rng.uniform(m, max(width - m, m + 1)))
        cy = float(rng.uniform(m, max(height - m, m + 1)))
        angle = float(rng.uniform(0, 2 * np.pi))
        param = float(rng.uniform(0.45, 0.62)) if cls == 5 else float(rng.uniform(0.38, 0.5))
        # Work in the object's bounding window.
        x0, x1 = max(int(cx - r) - 1, 0), min(int(cx + r) + 2, width)
        y0, y1 = max(int(cy - r) - 1, 0), min(int(cy + r) + 2, height)
        mask = shape_mask(cls, y1 - y0, x1 - x0, cx, cy, r, angle, param, x0, y0)
        area = int(mask.sum())
        if area < 300:
            continue
        # Reject if an earlier object would keep less than MIN_VISIBLE of its full area.
        window = instances[y0:y1, x0:x1]
        covered = np.bincount(window[mask].ravel(), minlength=next_id)
        visible = np.bincount(instances.ravel(), minlength=next_id)
        if any(visible[k] - covered[k] < MIN_VISIBLE * areas[k] for k in areas):
            continue
        tex = texture(rng, y1 - y0, x1 - x0, kinds)
        if polarity:
            tex = 0.55 + 0.45 * tex
        under = image[y0:y1, x0:x1]
        # Keep the object distinguishable from what it covers: invert the texture if the mean colours are close.
        if np.abs(tex[mask].mean(0) - under[mask].mean(0)).sum() < 0.3:
            tex = 1.0 - tex
        under[mask] = tex[mask]
        window[mask] = next_id
        classes[next_id] = cls
        areas[next_id] = area
        next_id += 1
    # Mild global noise and blur-free camera look.
    image = image + rng.normal(0.0, 0.015, size=image.shape).astype(np.float32)
    image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    semantic = np.zeros((height, width), dtype=np.uint8)
    objects = []
    for k, cls in classes.items():
        sel = instances == k
        if sel.any():
            semantic[sel] = cls
            objects.append((k, cls))
    return Scene(image=image, semantic=semantic, instances=instances, objects=objects)


def train_seed(step, index, batch):
    """Seed of training sample `index` of step `step`: always below TEST_SEED_BASE."""
    return (step * batch + index) % TEST_SEED_BASE


if __name__ == "__main__":
    import sys
    import time

    from PIL import Image

    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/demo_scenes"
    import os

    os.makedirs(out, exist_ok=True)
    t = time.time()
    for i in range(8):
        s = render_scene(TEST_SEED_BASE + i, *test_frame_size(i))
        Image.fromarray(s.image).save(f"{out}/{i}_image.png")
        Image.fromarray((s.semantic * 40).astype(np.uint8)).save(f"{out}/{i}_semantic.png")
        print(i, s.image.shape, s.objects)
    print(f"{(time.time() - t) / 8 * 1000:.1f} ms/frame")

"""Composed scene: the mixed image laid out from per-class images (reference for Swift).

Inputs: canvas size (W, H); for each active class its generated image (RGB float in [0, 1],
any square size, background neutral grey like the dataset's), its score (presence
probability or tracker confidence, > 0) and its layer from Assets/classes.json
("sky" | "middle" | "ground"). Rules, in order:

1. Background: every canvas pixel = BG = (200, 200, 200) / 255 (the dataset's backdrop grey).
2. Order for placement: sort by (layer rank sky=0, middle=1, ground=2, then score descending,
   then class name); i = position in that order, n = number of classes.
3. Box of item i (square, side S_i, centre (cx_i, cy_i)), with m = max score:
     S_i  = H * BASE[n] * (0.75 + 0.25 * score_i / m),  BASE = {1: 0.92, 2: 0.64, 3: 0.54, >=4: 0.48}
     cx_i = W * (i + 0.5) / n
     cy_i = H * LAYER_Y[layer],  LAYER_Y = {sky: 0.30, middle: 0.50, ground: 0.68}
   then clamped so the box stays inside the canvas: cx in [S/2, W - S/2], cy in [S/2, H - S/2]
   (when S > W, cx = W / 2). Box corners: x0 = round(cx - S/2), y0 = round(cy - S/2), side
   round(S) pixels.
4. The item's image is resized to the box side with bilinear interpolation (source
   coordinate (i + 0.5) * h / side - 0.5 clamped to [0, h - 1]).
5. Soft mask of the item, per box pixel:
     d      = max over RGB of |img - BG|
     a_col  = clamp((d - 0.04) / 0.12, 0, 1)                 (foreground = away from grey)
     a_col  = 3x3 box blur of a_col (edge clamp), applied twice
     r      = sqrt(u^2 + v^2), u, v = pixel centre offset from the box centre / (side / 2)
     a_vig  = clamp((1 - r) / 0.35, 0, 1)                     (feathered ellipse)
     alpha  = a_col * a_vig
6. Paint in ascending score (ties: reverse of the order in 2), each: out = out * (1 - alpha) + img * alpha.
"""
from __future__ import annotations

import numpy as np

BG = np.array([200, 200, 200], np.float32) / 255.0
BASE = {1: 0.92, 2: 0.64, 3: 0.54}
BASE_MANY = 0.48
LAYER_Y = {"sky": 0.30, "middle": 0.50, "ground": 0.68}
LAYER_RANK = {"sky": 0, "middle": 1, "ground": 2}


def resize_bilinear(img, size):
    """[h, w, 3] -> [size, size, 3]: source coordinate (i + 0.5) * h / size - 0.5 clamped to
    [0, h - 1], linear between floor and floor + 1 (clamped)."""
    h, w = img.shape[:2]
    ys = np.clip((np.arange(size) + 0.5) * h / size - 0.5, 0, h - 1)
    xs = np.clip((np.arange(size) + 0.5) * w / size - 0.5, 0, w - 1)
    y0 = np.floor(ys).astype(int); y1 = np.minimum(y0 + 1, h - 1)
    x0 = np.floor(xs).astype(int); x1 = np.minimum(x0 + 1, w - 1)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    a = img[y0][:, x0]; b = img[y0][:, x1]; c = img[y1][:, x0]; d = img[y1][:, x1]
    return (a * (1 - fx) * (1 - fy) + b * fx * (1 - fy) + c * (1 - fx) * fy + d * fx * fy).astype(np.float32)


def box_blur3(a):
    p = np.pad(a, 1, mode="edge")
    return sum(p[dy:dy + a.shape[0], dx:dx + a.shape[1]] for dy in range(3) for dx in range(3)) / 9.0


def soft_mask(img):
    d = np.abs(img - BG).max(axis=2)
    a = np.clip((d - 0.04) / 0.12, 0, 1)
    a = box_blur3(box_blur3(a))
    s = img.shape[0]
    c = (np.arange(s) + 0.5 - s / 2) / (s / 2)
    r = np.sqrt(c[:, None] ** 2 + c[None, :] ** 2)
    return (a * np.clip((1 - r) / 0.35, 0, 1)).astype(np.float32)


def layout(items, W, H):
    """items: list of dicts with class, score, layer. Returns list of (item, x0, y0, side) in
    paint order."""
    n = len(items)
    order = sorted(items, key=lambda it: (LAYER_RANK.get(it["layer"], 1), -it["score"], it["class"]))
    m = max(it["score"] for it in items)
    base = BASE.get(n, BASE_MANY)
    boxes = []
    for i, it in enumerate(order):
        S = H * base * (0.75 + 0.25 * it["score"] / m)
        cx = W * (i + 0.5) / n
        cy = H * LAYER_Y.get(it["layer"], 0.5)
        cx = W / 2 if S > W else min(max(cx, S / 2), W - S / 2)
        cy = H / 2 if S > H else min(max(cy, S / 2), H - S / 2)
        side = int(round(S))
        boxes.append((i, it, int(round(cx - S / 2)), int(round(cy - S / 2)), side))
    boxes.sort(key=lambda b: (b[1]["score"], -b[0]))  # ascending score; ties: later order first
    return [(it, x0, y0, side) for _, it, x0, y0, side in boxes]


def compose(items, W=128, H=128):
    """items: dicts {class, score, layer, image (float [h, w, 3] in [0, 1])} -> [H, W, 3]."""
    out = np.tile(BG, (H, W, 1)).astype(np.float32)
    if not items:
        return out
    for it, x0, y0, side in layout(items, W, H):
        im = resize_bilinear(np.asarray(it["image"], np.float32), side)
        a = soft_mask(im)[..., None]
        ya, yb = max(0, y0), min(H, y0 + side)
        xa, xb = max(0, x0), min(W, x0 + side)
        if ya >= yb or xa >= xb:
            continue
        sub_im = im[ya - y0:yb - y0, xa - x0:xb - x0]
        sub_a = a[ya - y0:yb - y0, xa - x0:xb - x0]
        out[ya:yb, xa:xb] = out[ya:yb, xa:xb] * (1 - sub_a) + sub_im * sub_a
    return out

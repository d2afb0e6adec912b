"""How far can a composed scene go with this judge? CRS2 / R@2* of scenes composed from REAL images.

    python -m training.generator.compose_bound --split val --pairs 150

The composed-scene target (CRS2 >= 0.9, issue 6) is scored by the judge (training/avgas/judge.py),
an image classifier trained on single-subject pictures. This tool composes pairs of real held-out
images (not generated ones: the best per-class images there can be) and scores them exactly like
evaluate.py scores mixed images (crs_r2), so the figure is an upper bound for any generator feeding
the same layout. Layouts:
  scene   compose.compose (the shipped rules: side by side, sky classes up, soft masks), score 1 each
  panels  the canvas split into n vertical strips, each image centre-cropped to its strip (no masks)
Pairs: `--pairs` random pairs of distinct classes (seed 0) among the classes with an image in the
split; the k-th pair takes the (k mod count)-th image of each class. Also prints the judge's top-1 on
the single images of the split.
"""
from __future__ import annotations

import argparse
import collections

import numpy as np

from . import compose, data
from .evaluate import Judge, crs_r2


def panels(images, W=128, H=128):
    """n images side by side, each centre-cropped to a W/n x H strip (nearest-size bilinear)."""
    from PIL import Image
    out = np.tile(compose.BG, (H, W, 1)).astype(np.float32)
    n = len(images)
    for i, im in enumerate(images):
        x0, x1 = i * W // n, (i + 1) * W // n
        h = im.shape[0]
        cw = max(1, int(round(h * (x1 - x0) / H)))
        a = (im.shape[1] - cw) // 2
        crop = (np.clip(im[:, a:a + cw], 0, 1) * 255 + 0.5).astype(np.uint8)
        out[:, x0:x1] = np.asarray(Image.fromarray(crop).resize((x1 - x0, H), Image.BILINEAR)) / 255.0
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="val", choices=["train", "val", "test"])
    ap.add_argument("--pairs", type=int, default=150)
    ap.add_argument("--data", default="data")
    ap.add_argument("--base2", type=float, nargs="*", default=[],
                    help="also score the scene rules with BASE[2] (box side / canvas height for two items) = each value")
    ap.add_argument("--judge", default=None,
                    help="judge file (default: the train-only judge for --split val, else the committed one)")
    args = ap.parse_args(argv)
    classes, layers = data.load_classes()
    from training.avgas import judge as J
    judge = Judge(classes, args.data, path=args.judge or (J.TRAINONLY_PATH if args.split == "val" else J.JUDGE_PATH))
    print(f"judge: {judge.name}")
    rows = data.image_rows(args.data, splits=(args.split,))
    imgs = data.load_images(args.data, rows)
    by = collections.defaultdict(list)
    for i, r in enumerate(rows):
        by[r["class"]].append(i)
    s1 = judge.scores(imgs)
    top1 = np.mean([classes[int(np.argmax(s))] == r["class"] for s, r in zip(s1, rows)])
    print(f"{args.split}: {len(rows)} images of {len(by)} classes, judge top-1 on single images {top1:.3f}")
    rng = np.random.default_rng(0)
    cl = sorted(by)
    pairs = [tuple(cl[j] for j in rng.choice(len(cl), 2, replace=False)) for _ in range(args.pairs)]
    layouts = {"scene": lambda items: compose.compose(items),
               "panels": lambda items: panels([it["image"] for it in items])}

    def with_base2(b):
        def f(items):
            old = compose.BASE[2]
            compose.BASE[2] = b
            try:
                return compose.compose(items)
            finally:
                compose.BASE[2] = old
        return f
    for b in args.base2:
        layouts[f"scene, BASE[2] = {b:g}"] = with_base2(b)
    print("| layout | CRS2 | R@2* |\n|---|---:|---:|")
    for name, f in layouts.items():
        outs, sets = [], []
        for k, pair in enumerate(pairs):
            items = [{"class": c, "score": 1.0, "layer": layers[c],
                      "image": imgs[by[c][k % len(by[c])]].astype(np.float32) / 255.0} for c in pair]
            outs.append((np.clip(f(items), 0, 1) * 255 + 0.5).astype(np.uint8))
            sets.append(list(pair))
        crs, r2 = crs_r2(judge.scores(np.stack(outs)), sets, classes)
        print(f"| {name} | {crs:.3f} | {r2:.3f} |", flush=True)


if __name__ == "__main__":
    main()

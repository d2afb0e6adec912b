"""Cached frozen-encoder features for the image judge (issue 5): multi-layer pooled features of
EfficientNet-Lite0 / Lite2 under fixed test-time views and of random augmented train copies.

Per image and view: the global-average-pooled output of the last block of every stage from the
second on, and of the 1280-d head, concatenated (Lite0: 24+40+80+112+192+320+1280 = 2048 dims;
Lite2: 24+48+88+120+208+352+1280 = 2120). Caches live under <data>/features/judge_<arch>_<norm>_<view>.npz
keyed by image path (augmented copies by "path#k", each copy seeded by a hash of that key), so a
re-run after the dataset grows only encodes the new images.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

# last block of each stage (stages 2..7) of the package's EfficientNet-Lite block lists
STAGE_ENDS = {"lite0": (2, 4, 7, 10, 14, 15), "lite2": (3, 6, 10, 14, 19, 20)}
STAGE_DIMS = {"lite0": (24, 40, 80, 112, 192, 320, 1280), "lite2": (24, 48, 88, 120, 208, 352, 1280)}
# Test-time views: identity, horizontal flip, centre crop of 85% of the side, zoom-out (pad to 115%
# with the dataset's grey background 200), each with its flip.
VIEWS = ("id", "flip", "c85", "c85f", "p115", "p115f")
BG = 200


def view(images: np.ndarray, name: str) -> np.ndarray:
    """uint8 [N,H,W,3] -> the named view (same dtype; size may differ: the encoder resizes)."""
    x = images
    base = name[:-1] if name.endswith("f") and name not in ("id",) and name != "flip" else name
    flip = name == "flip" or (name != base)
    if base.startswith("c"):
        s = int(base[1:]) / 100
        H, W = x.shape[1:3]
        h, w = int(round(H * s)), int(round(W * s))
        t, l = (H - h) // 2, (W - w) // 2
        x = x[:, t:t + h, l:l + w]
    elif base.startswith("p"):
        s = int(base[1:]) / 100
        H, W = x.shape[1:3]
        h, w = int(round(H * s)), int(round(W * s))
        y = np.full((x.shape[0], h, w, 3), BG, np.uint8)
        t, l = (h - H) // 2, (w - W) // 2
        y[:, t:t + H, l:l + W] = x
        x = y
    if flip:
        x = x[:, :, ::-1]
    return np.ascontiguousarray(x)


class MultiLayerEncoder:
    def __init__(self, arch: str = "lite0", norm: str = "imagenet"):
        from .visual import Encoder
        self.enc = Encoder(norm=norm, arch=arch, flip_tta=False)
        self.arch, self.norm = arch, norm
        self.ends = STAGE_ENDS[arch]
        self.dim = sum(STAGE_DIMS[arch])

    def features(self, images: np.ndarray, batch: int = 32) -> np.ndarray:
        """uint8 [N,H,W,3] -> [N, dim] concatenated pooled stage outputs (one view, no TTA)."""
        torch = self.enc.torch
        net = self.enc.net
        out = []
        with torch.no_grad():
            for i in range(0, len(images), batch):
                x = self.enc.preprocess(images[i:i + batch])
                x = net._swish(net._bn0(net._conv_stem(x)))
                pooled = []
                for idx, block in enumerate(net._blocks):
                    dc = net._global_params.drop_connect_rate
                    x = block(x, drop_connect_rate=dc * idx / len(net._blocks) if dc else dc)
                    if idx in self.ends:
                        pooled.append(x.mean(dim=(2, 3)))
                x = net._swish(net._bn1(net._conv_head(x)))
                pooled.append(x.mean(dim=(2, 3)))
                out.append(torch.cat(pooled, 1).numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)


def layer_slices(arch: str):
    """stage name -> column slice of the concatenated vector ('s2'..'s7', 'head')."""
    names = [f"s{i}" for i in range(2, 8)] + ["head"]
    off, out = 0, {}
    for n, d in zip(names, STAGE_DIMS[arch]):
        out[n] = slice(off, off + d)
        off += d
    return out


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "little")


def cached(ds, rows, arch, norm, view_name, feat_dir, encoder=None, log=print):
    """[len(rows), dim] features of `rows` under `view_name` ('augK' = the K-th random augmented
    copy, loaders.augment_image p=0.8 seeded by path#K), from/into the on-disk cache."""
    p = Path(feat_dir) / f"judge_{arch}_{norm}_{view_name}.npz"
    keys = [r["path"] for r in rows]
    have = {}
    if p.exists():
        z = np.load(p)
        have = dict(zip(z["keys"].tolist(), z["feats"]))
    todo = [i for i, k in enumerate(keys) if k not in have]
    if todo:
        enc = encoder[0] if encoder and encoder[0] is not None else MultiLayerEncoder(arch, norm)
        if encoder is not None:
            encoder[0] = enc
        from tqdm import tqdm
        for b in tqdm(range(0, len(todo), 64), desc=f"{arch}/{norm}/{view_name}", disable=log is None):
            ii = todo[b:b + 64]
            base = [ds.load_image(rows[i]) for i in ii]
            if view_name.startswith("aug"):
                from training.dataset.loaders import augment_image
                k = view_name[3:]
                imgs = np.stack([augment_image(im, np.random.default_rng(_seed(f"{keys[i]}#{k}")), p=0.8)
                                 for i, im in zip(ii, base)])
            else:
                imgs = view(np.stack(base), view_name)
            f = enc.features(imgs)
            for i, fi in zip(ii, f):
                have[keys[i]] = fi
        allk = sorted(have)
        tmp = p.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(allk), feats=np.stack([have[k] for k in allk]).astype(np.float32))
        tmp.replace(p)
    return np.stack([have[k] for k in keys]).astype(np.float32)

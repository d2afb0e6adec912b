"""Train the separator (AV-GAS) and the no-separator ablation on the cached YAMNet features.

Separator losses per training window (0-3 sources), as in the paper:
  presence  BCE over the 46 classes (summed over classes, averaged over windows)
  A2V       InfoNCE of each present class's separated embedding e[b,c] against one random
            train-split image embedding per class (46-way: positive = an image of class c)
  A2A       symmetric InfoNCE between e[b,c] and z = AudioProj(YAMNet(source alone)) over all
            (window, source) pairs of the batch (positive = the same source)
  anchor    0.5 x A2V of z (keeps the learned A2A projection in the visual space)
Ablation (Sound2Scene-style, one embedding a[b] per window, same data, steps, batches):
  A2V       multi-positive InfoNCE: -log sum_{c present} softmax(a V^T / tau)_c
  A2A       InfoNCE between a[b] and l2n(mean_j z[b,j]), plus the same 0.5 x anchor on z.
Checkpoints every --ckpt-every steps (200) under <data>/features/ckpt/<kind>.pt (resumed automatically
when --steps matches the checkpoint's run; otherwise it says so and starts again);
the best validation state (presence macro F1 + retrieval R@1 on val windows vs val images) is kept.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .models import Ablation, AudioProj, Separator, N_CLASSES


def load_cache(path):
    z = np.load(path)
    return {"x": torch.from_numpy(z["mix_emb"].astype(np.float32)),
            "stem": torch.from_numpy(z["stem_emb"].astype(np.float32)),
            "cls": torch.from_numpy(z["stem_cls"].astype(np.int64))}


def multi_hot(cls):
    y = torch.zeros(cls.shape[0], N_CLASSES)
    for j in range(cls.shape[1]):
        m = cls[:, j] >= 0
        y[m, cls[m, j]] = 1
    return y


class ImageBank:
    def __init__(self, feat_dir: Path, names):
        z = np.load(feat_dir / "image_embeddings.npz")
        cidx = {n: i for i, n in enumerate(names)}
        self.emb = torch.from_numpy(z["emb"])
        self.y = np.array([cidx[c] for c in z["classes"]])
        self.split = z["splits"]
        self.by_cls = [np.where((self.y == c) & (self.split == "train"))[0] for c in range(len(names))]
        missing = [names[c] for c, v in enumerate(self.by_cls) if len(v) == 0]
        if missing:   # fall back to any split rather than leave a class without an image target
            for c, v in enumerate(self.by_cls):
                if len(v) == 0:
                    self.by_cls[c] = np.where(self.y == c)[0]
        self.missing_train = missing

    def sample(self, g: np.random.Generator):
        return self.emb[[int(g.choice(v)) for v in self.by_cls]]     # [46,128]

    def split_set(self, split):
        m = self.split == split
        return self.emb[m], torch.from_numpy(self.y[m])


def pairs(cls):
    b, j = torch.nonzero(cls >= 0, as_tuple=True)
    return b, j, cls[b, j]


def info_nce(a, b, tau):
    logits = a @ b.T / tau
    t = torch.arange(len(a))
    return 0.5 * (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t))


def losses(kind, model, proj, batch, V, tau):
    x, stem, cls = batch["x"], batch["stem"], batch["cls"]
    b, j, c = pairs(cls)
    out = {}
    z = proj(stem[b, j]) if len(b) else None
    if kind == "separator":
        logits, E = model(x)
        out["presence"] = F.binary_cross_entropy_with_logits(logits, multi_hot(cls), reduction="sum") / len(x)
        if len(b):
            e = E[b, c]
            out["a2v"] = F.cross_entropy(e @ V.T / tau, c)
            out["a2a"] = info_nce(e, z, tau) if len(b) > 1 else e.sum() * 0
    else:
        a = model(x)
        has = (cls >= 0).any(1)
        if has.any():
            lp = F.log_softmax(a[has] @ V.T / tau, dim=1)
            pos = multi_hot(cls[has]).bool()
            out["a2v"] = -(lp.masked_fill(~pos, -1e9).logsumexp(1)).mean()
            zm = torch.zeros(len(x), z.shape[1]).index_add_(0, b, z)
            zm = F.normalize(zm[has], dim=-1)
            out["a2a"] = info_nce(a[has], zm, tau) if has.sum() > 1 else a.sum() * 0
    if z is not None:
        out["anchor"] = 0.5 * F.cross_entropy(z @ V.T / tau, c)
    out["total"] = sum(out.values())
    return out


@torch.no_grad()
def validate(kind, model, val, img_emb, img_y):
    """Presence macro F1 (threshold 0.5) and R@1 (nearest val image has the class) on val windows."""
    model.eval()
    cls = val["cls"]
    b, j, c = pairs(cls)
    res = {}
    if kind == "separator":
        logits, E = model(val["x"])
        y = multi_hot(cls).bool()
        p = torch.sigmoid(logits) > 0.5
        f1s = []
        for k in range(N_CLASSES):
            tp = (p[:, k] & y[:, k]).sum().item()
            fp = (p[:, k] & ~y[:, k]).sum().item()
            fn = (~p[:, k] & y[:, k]).sum().item()
            if tp + fn > 0:
                f1s.append(2 * tp / max(1, 2 * tp + fp + fn))
        res["f1"] = float(np.mean(f1s))
        e = E[b, c]
    else:
        e = model(val["x"])[b]
        res["f1"] = 0.0
    nn_ = (e @ img_emb.T).argmax(1)
    res["r1"] = float((img_y[nn_] == c).float().mean())
    model.train()
    return res


def train(kind, data="data", steps=3000, batch=128, lr=2e-3, wd=1e-2, tau=0.1, seed=0,
          ckpt_every=200, feat_dir=None, log=print, cache_train=None, cache_val=None, quiet=False):
    from tqdm import tqdm
    from .visual import class_names
    feat_dir = Path(feat_dir or Path(data) / "features")
    names = class_names()
    tr = load_cache(cache_train or feat_dir / "audio_train.npz")
    va = load_cache(cache_val or feat_dir / "audio_val.npz")
    bank = ImageBank(feat_dir, names)
    img_emb, img_y = bank.split_set("val")
    torch.manual_seed(seed)
    model = Separator() if kind == "separator" else Ablation()
    proj = AudioProj()
    params = list(model.parameters()) + list(proj.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    warm = min(100, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, warm)) * 0.5 * (1 + np.cos(np.pi * min(1.0, s / steps))))
    ck_dir = feat_dir / "ckpt"
    ck_dir.mkdir(parents=True, exist_ok=True)
    ck = ck_dir / f"{kind}.pt"
    state = {"step": 0, "history": [], "val": [], "best": None, "best_score": -1.0, "best_step": -1}
    if ck.exists():
        s = torch.load(ck, weights_only=False)
        old = s.get("config", {}).get("steps")
        if old == steps:
            model.load_state_dict(s["model"]); proj.load_state_dict(s["proj"])
            opt.load_state_dict(s["opt"]); sched.load_state_dict(s["sched"])
            state = s["state"]
            log(f"resumed {kind} at step {state['step']}")
        else:   # the learning-rate schedule depends on the total: a checkpoint of another length cannot continue
            log(f"{ck} belongs to a {old}-step run, not {steps} steps: starting {kind} from step 0 "
                f"(pass --steps {old} to resume it; it is replaced at the first checkpoint)")
    g = np.random.default_rng([seed, state["step"]])
    N = len(tr["x"])
    model.train(); proj.train()
    t0 = time.time()
    bar = tqdm(range(state["step"], steps), desc=f"train {kind}", initial=state["step"], total=steps, disable=quiet)
    for step in bar:
        idx = torch.from_numpy(g.integers(0, N, batch))
        bt = {k: v[idx] for k, v in tr.items()}
        V = bank.sample(g)
        L = losses(kind, model, proj, bt, V, tau)
        opt.zero_grad()
        L["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step(); sched.step()
        state["history"].append({"step": step + 1, **{k: float(v.detach()) if hasattr(v, "detach") else float(v) for k, v in L.items()}})
        bar.set_postfix(loss=f"{float(L['total'].detach()):.3f}")
        state["step"] = step + 1
        if state["step"] % ckpt_every == 0 or state["step"] == steps:
            v = validate(kind, model, va, img_emb, img_y)
            v["step"] = state["step"]
            state["val"].append(v)
            score = v["f1"] + v["r1"]
            if score > state["best_score"]:
                state["best_score"], state["best_step"] = score, state["step"]
                state["best"] = {"model": {k: t.clone() for k, t in model.state_dict().items()},
                                 "proj": {k: t.clone() for k, t in proj.state_dict().items()}}
            log(f"{kind} step {state['step']}: val {v} ({time.time() - t0:.0f} s)")
            tmp = ck.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "proj": proj.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "state": state,
                        "config": {"steps": steps, "batch": batch, "lr": lr, "wd": wd, "tau": tau, "seed": seed}}, tmp)
            tmp.replace(ck)
    if state["best"] is not None:
        model.load_state_dict(state["best"]["model"]); proj.load_state_dict(state["best"]["proj"])
    model.eval(); proj.eval()
    cfg = {"steps": steps, "batch": batch, "lr": lr, "wd": wd, "tau": tau, "seed": seed,
           "best_step": state["best_step"], "train_windows": N, "val_windows": len(va["x"])}
    return model, proj, state, cfg


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--only", choices=["separator", "ablation"], default=None)
    ap.add_argument("--ckpt-every", type=int, default=200, help="steps between checkpoints (default 200, at least 1)")
    ap.add_argument("--export-to", default=None,
                    help="folder for the exported safetensors (default: Assets/models when --data is 'data', "
                         "else <data>/features/export, so a trial on other data never replaces the shipped models)")
    a = ap.parse_args(argv)
    if a.ckpt_every < 1:
        ap.error("--ckpt-every must be at least 1")
    torch.set_num_threads(a.threads)
    from . import export
    feat_dir = Path(a.data) / "features"
    shipped = a.export_to is None and Path(a.data).resolve() == (export.ROOT / "data").resolve()
    out_dir = export.PATHS["separator"].parent if shipped else Path(a.export_to or feat_dir / "export")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / export.PATHS[kind].name for kind in export.PATHS}
    for kind in ([a.only] if a.only else ["separator", "ablation"]):
        model, proj, state, cfg = train(kind, a.data, steps=a.steps, batch=a.batch, ckpt_every=a.ckpt_every)
        torch.save({"model": model.state_dict(), "proj": proj.state_dict(), "cfg": cfg,
                    "history": state["history"], "val": state["val"]}, feat_dir / f"{kind}_final.pt")
        export.export(kind, model, cfg, state, path=paths[kind])
    if shipped:   # the Swift parity fixture follows the shipped models only
        export.write_fixture(a.data)
    else:
        print(f"exported to {out_dir} (the shipped models and the Swift fixture are unchanged)")


if __name__ == "__main__":
    main()

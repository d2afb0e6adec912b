"""Nearest-recording evidence for the presence head, and tracker settings, chosen on the
cross-validation folds of the train recordings (issue 3; rules in training/reports/listening.md,
"Tenth session").

(K) A bank of YAMNet embeddings of training recordings: patches every 0.48 s that hold at least
20 frames within 35 dB of the recording's peak, at most 8 per recording (evenly spaced), a
recording shorter than one patch repeated end to end. Embeddings are centred on the bank mean and
L2-normalised; a window's score for class c is its largest cosine with a bank patch of class c
(-1 when the bank has none). A logistic map (two numbers, fitted on the bank itself with each
patch scored leave-its-split-group-out) turns the score into p_knn, which joins the linear head:
  "or":   1 - (1 - p_head)(1 - p_knn)
  "mean": (p_head + p_knn) / 2
and the result is "or"-ed with the AudioSet mapping as shipped (presence.make_scorer).

(S) Tracker settings: on in {0.35, 0.40, 0.45, 0.50} x smoothing in {0, 0.15, 0.25} s, off = on/2.

Run: .venv/bin/python -m training.avgas.presence_knn bank        (YAMNet of the bank patches, cached)
     .venv/bin/python -m training.avgas.presence_knn cv          (K and S on the four folds; the rule)
     .venv/bin/python -m training.avgas.presence_knn follow-up   (K at other thresholds; the follow-up rule)
     .venv/bin/python -m training.avgas.presence_knn gate        (G, the top-K gate; its rule)
     .venv/bin/python -m training.avgas.presence_knn val --candidate NAME   (confirmation on val)
"""
from __future__ import annotations

import argparse
import csv
import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from training.avgas import presence as pres  # noqa: E402
from training.avgas import presence_data as pdata  # noqa: E402
from training.avgas import presence_refit as refit  # noqa: E402

frontend = pdata.frontend
tl = pres.tl

BANK_DIR = pdata.CACHE / "knn_bank"
HOP, MIN_OK, PEAK_DB, MAX_PER = 48, 20, 35.0, 8
COMBINES = ("or", "mean")
SHIPPED = dict(on=0.45, off=0.225, smooth=0.25, min_on=0.5, hold=0.5)
GRID = [dict(SHIPPED, on=on, off=on / 2, smooth=sm) for on in (0.35, 0.40, 0.45, 0.50) for sm in (0.0, 0.15, 0.25)]
BASE = dict(recall=0.840, wrong=0.90, share=0.535)           # ninth session, (T) heads, shipped tracker
RULE = dict(recall=BASE["recall"] + 0.02, wrong=BASE["wrong"] + 0.05, share=BASE["share"] - 0.02)
VAL_RULE = dict(recall=0.867, wrong=1.00, share=0.419)
RESULTS = pdata.CACHE / "knn_cv.json"
# (G) the top-K gate on the smoothed rule (listening.md, "A top-K gate")
GATES = [dict(SHIPPED, on=on, off=on / 2, smooth=sm, topk=k) for k in (2, 3) for on in (0.35, 0.40, 0.45)
         for sm in (0.15, 0.25)]
# the follow-up (listening.md): K-mean at lower on-thresholds, K-or at higher ones
FOLLOW_UP = ([("mean", dict(SHIPPED, on=on, off=on / 2, smooth=sm)) for on in (0.30, 0.35, 0.40) for sm in (0.15, 0.25)]
             + [("or", dict(SHIPPED, on=on, off=on / 2)) for on in (0.55, 0.60, 0.65)])


def manifest_rows(ids):
    """Manifest rows (id, class, split_group, path) of the audio ids, in id order."""
    keep = set(ids)
    with open(pres.ROOT / "data/manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["id"] in keep]
    if len(rows) != len(keep):
        raise SystemExit(f"presence_knn: {len(keep) - len(rows)} recordings missing from data/manifest.csv")
    return sorted(rows, key=lambda r: r["id"])


def recording_patches(audio: np.ndarray) -> np.ndarray:
    """[N] 16 kHz recording -> [<= MAX_PER, 96, 64] log-mel patches (selection in the module doc)."""
    need = (frontend.PATCH_FRAMES - 1) * frontend.HOP + frontend.WIN
    x = np.asarray(audio, np.float32)
    if len(x) < need:
        x = np.tile(x, -(-need // max(1, len(x))))
    frames = frontend.log_mel(x)
    db = pdata.frame_db(x)[:len(frames)]
    ok = db > db.max() - PEAK_DB
    starts = [s for s in range(0, len(frames) - frontend.PATCH_FRAMES + 1, HOP)
              if ok[s:s + frontend.PATCH_FRAMES].sum() >= MIN_OK]
    if not starts:                        # a recording that is one click: its loudest patch
        c = int(np.argmax(db))
        starts = [min(max(0, c - frontend.PATCH_FRAMES // 2), len(frames) - frontend.PATCH_FRAMES)]
    if len(starts) > MAX_PER:
        starts = [starts[int(round(i))] for i in np.linspace(0, len(starts) - 1, MAX_PER)]
    return np.stack([frames[s:s + frontend.PATCH_FRAMES] for s in starts]).astype(np.float32)


def bank_embeddings(ids, yam=None):
    """{id: [n, 1024] float32} YAMNet embeddings of each recording's bank patches (cached)."""
    from training.dataset import loaders
    BANK_DIR.mkdir(parents=True, exist_ok=True)
    out, ds = {}, None
    for r in manifest_rows(ids):
        path = BANK_DIR / f"{r['id']}.npy"
        if not path.exists():
            ds = ds or loaders.Dataset(str(pres.ROOT / "data"))
            yam = yam or pdata.Yamnet(threads=1)
            e, _ = yam(recording_patches(ds.load_clip(r)))
            np.save(path, e.astype(np.float32))
        out[r["id"]] = np.load(path)
    return out


def logistic_fit(s: np.ndarray, y: np.ndarray, iters: int = 50):
    """(a, b) maximising the likelihood of y ~ sigmoid(a s + b) (Newton's method, a tiny ridge)."""
    X = np.stack([s, np.ones_like(s)], 1).astype(np.float64)
    w = np.zeros(2)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(X @ w)))
        g = X.T @ (p - y) + 1e-6 * w
        H = (X * (p * (1 - p))[:, None]).T @ X + 1e-6 * np.eye(2)
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


class Bank:
    """Centred, normalised bank embeddings sorted by class, with the calibration (a, b)."""

    def __init__(self, ids, n_classes, yam=None):
        _, cidx = pdata.class_index()
        rows = manifest_rows(ids)
        embs = bank_embeddings(ids, yam)
        E, cls, grp = [], [], []
        for r in rows:
            e = embs[r["id"]]
            E.append(e)
            cls += [cidx[r["class"]]] * len(e)
            grp += [r["split_group"]] * len(e)
        E = np.concatenate(E)
        order = np.argsort(np.array(cls), kind="stable")
        self.mean = E.mean(0)
        self.E = self.norm(E[order])
        self.cls = np.array(cls)[order]
        _, self.group = np.unique(np.array(grp)[order], return_inverse=True)
        self.n = n_classes
        self.a, self.b = self.calibrate()

    def norm(self, X):
        X = np.asarray(X, np.float32) - self.mean
        return X / (np.linalg.norm(X, axis=1, keepdims=True) + 1e-8)

    def class_max(self, S):
        """[N, B] cosines (bank sorted by class) -> [N, n_classes] largest per class, -1 if none."""
        out = np.full((len(S), self.n), -1.0, np.float32)
        present, starts = np.unique(self.cls, return_index=True)
        out[:, present] = np.maximum.reduceat(S, starts, axis=1)
        return out

    def scores(self, X):
        return self.class_max(self.norm(X) @ self.E.T)

    def calibrate(self):
        """Leave-split-group-out scores of the bank's own patches -> logistic (a, b)."""
        S = self.E @ self.E.T
        S[self.group[:, None] == self.group[None, :]] = -1.0
        M = self.class_max(S)
        has_other = np.zeros((len(self.E), self.n), bool)
        for c in np.unique(self.cls):
            g = np.unique(self.group[self.cls == c])
            has_other[:, c] = ~np.isin(self.group, g) | (len(g) > 1)
        Y = (self.cls[:, None] == np.arange(self.n)[None]).astype(np.float64)
        keep = has_other & (M > -1.0)
        return logistic_fit(M[keep].astype(np.float64), Y[keep])

    def prob(self, X):
        return 1 / (1 + np.exp(-(self.a * self.scores(X) + self.b)))


class KnnHead(torch.nn.Module):
    """A presence "net" for presence.predict: head logits joined with the bank's p_knn; returns
    logits of the joined probability (so everything downstream is unchanged)."""

    def __init__(self, head, bank, combine):
        super().__init__()
        self.head, self.bank, self.combine = head, bank, combine

    def forward(self, x):
        with torch.no_grad():
            ph = torch.sigmoid(self.head(x)).numpy().astype(np.float64)
        pk = self.bank.prob(x.numpy())
        p = 1 - (1 - ph) * (1 - pk) if self.combine == "or" else (ph + pk) / 2
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return torch.from_numpy(np.log(p / (1 - p)).astype(np.float32))


def evaluate(net, split, ids=None, yam=None, cfgs=(SHIPPED,)):
    """presence_onset.evaluate_clips with the tracker settings `cfgs` -> [per-clip results per cfg]."""
    from training.avgas import presence_onset as po
    names, _, W = tl.load_vocab(str(pres.ROOT / "Assets/classes.json"))
    scorer = pres.make_scorer(net, W, False, "or")
    det = {k: v for k, v in po.SHIPPED.items() if k != "fast"}
    cs = po.view(po.prepare(split, det, yam or pdata.Yamnet(threads=1), net, W, sub=True))
    if ids is not None:
        cs = [c for c in cs if c["id"] in ids]

    def sc(c, v, step):
        x = scorer(c, v, step).copy()
        x[c[f"hops_{v}"] % 2 == 1] = np.nan
        return x

    out = []
    for cfg in cfgs:
        for c in cs:
            c.pop("_key", None)
        out.append(tl.evaluate(cs, names, W, dict(cfg, fast=po.SHIPPED["fast"]), hop=5, scorer=sc,
                               fast_scorer=lambda c, v, step: c[f"tile_{v}"]))
    return out


def summary(res):
    from training.avgas import presence_onset as po
    b = tl.summarise(res, True)
    return dict(recall=b["recall"], wrong=b["wrong"], latency=b["latency"], share=po.within(res, True),
                unw_recall=tl.summarise(res, False)["recall"], clips=len(res))


def qualifies(s, rule):
    return s["recall"] >= rule["recall"] - 1e-9 and s["wrong"] <= rule["wrong"] + 1e-9 and s["share"] >= rule["share"] - 1e-9


def cfg_name(cfg):
    gate = f"G top-{cfg['topk']} " if cfg.get("topk") else "S "
    return f"{gate}on {cfg['on']:.2f} smooth {cfg['smooth']:.2f}"


def knn_name(comb, cfg):
    return f"K-{comb} on {cfg['on']:.2f} smooth {cfg['smooth']:.2f}"


def cmd_follow_up(a):
    n = len(pdata.class_index()[0])
    yam, pooled = refit.MemoYamnet(), {}
    for k, held in enumerate(refit.cv_folds()):
        head = refit.cv_head(k, "T")
        if a.what == "gate":
            for cfg, r in zip(GATES, evaluate(head, "train", set(held), yam, GATES)):
                pooled.setdefault(cfg_name(cfg), []).extend(r)
        else:
            bank = Bank(refit.cv_lists(k)[0], n)
            for comb in COMBINES:
                cands = [c for cb, c in FOLLOW_UP if cb == comb]
                for cfg, r in zip(cands, evaluate(KnnHead(head, bank, comb), "train", set(held), yam, cands)):
                    pooled.setdefault(knn_name(comb, cfg), []).extend(r)
        print(f"fold {k} done", flush=True)
    table = {name: summary(r) for name, r in pooled.items()}
    print(f"pooled, class-balanced (rule recall >= {RULE['recall']:.3f}, wrong <= {RULE['wrong']:.2f}, "
          f"share >= {RULE['share']:.3f})")
    print("| candidate | recall | wrong / clip | median latency | share within 0.4 s | unweighted recall | qualifies |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, s in table.items():
        print(f"| {name} | {s['recall']:.3f} | {s['wrong']:.2f} | {s['latency']:.2f} s | {s['share']:.3f} | "
              f"{s['unw_recall']:.3f} | {'yes' if qualifies(s, RULE) else 'no'} |")
    quals = [(s["recall"], -s["wrong"], name) for name, s in table.items() if qualifies(s, RULE)]
    win = max(quals)[2] if quals else None
    print(f"winner: {win or 'none (nothing changes)'}")
    RESULTS.with_name(f"knn_{a.what}.json").write_text(json.dumps(dict(table=table, winner=win), indent=1))


def cmd_bank(a):
    ids = pdata.split_ids("train")
    bank_embeddings(ids)
    b = Bank(ids, len(pdata.class_index()[0]))
    print(f"bank: {len(b.E)} patches of {len(ids)} recordings; calibration a {b.a:.3f} b {b.b:.3f}")


def cmd_cv(a):
    n = len(pdata.class_index()[0])
    folds = refit.cv_folds()
    yam = refit.MemoYamnet()
    pooled = {}
    for k, held in enumerate(folds):
        head = refit.cv_head(k, "T")
        t_ids, _ = refit.cv_lists(k)
        bank = Bank(t_ids, n)
        runs = {cfg_name(c): r for c, r in zip(GRID, evaluate(head, "train", set(held), yam, GRID))}
        for comb in COMBINES:
            runs[f"K-{comb}"] = evaluate(KnnHead(head, bank, comb), "train", set(held), yam)[0]
        for name, r in runs.items():
            pooled.setdefault(name, []).extend(r)
        print(f"fold {k} ({len(held)} held out; bank {len(bank.E)} patches, a {bank.a:.2f} b {bank.b:.2f}): " +
              "; ".join(f"{nm} {pres.short(tl.summarise(r, True))}" for nm, r in runs.items()
                        if nm.startswith("K") or nm == cfg_name(SHIPPED)), flush=True)
    table = {name: summary(r) for name, r in pooled.items()}
    base = table[cfg_name(SHIPPED)]
    print(f"\npooled, class-balanced (baseline = {cfg_name(SHIPPED)}: {base['recall']:.3f} / {base['wrong']:.2f} / "
          f"share {base['share']:.3f}; rule recall >= {RULE['recall']:.3f}, wrong <= {RULE['wrong']:.2f}, "
          f"share >= {RULE['share']:.3f})")
    print("| candidate | recall | wrong / clip | median latency | share within 0.4 s | unweighted recall | qualifies |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, s in table.items():
        print(f"| {name} | {s['recall']:.3f} | {s['wrong']:.2f} | {s['latency']:.2f} s | {s['share']:.3f} | "
              f"{s['unw_recall']:.3f} | {'yes' if name != cfg_name(SHIPPED) and qualifies(s, RULE) else 'no'} |")
    quals = [(s["recall"], -s["wrong"], name) for name, s in table.items()
             if name != cfg_name(SHIPPED) and qualifies(s, RULE)]
    win = max(quals)[2] if quals else None
    print(f"winner: {win or 'none (nothing changes)'}")
    RESULTS.write_text(json.dumps(dict(table=table, winner=win), indent=1))


def cmd_val(a):
    n = len(pdata.class_index()[0])
    head, _ = pres.chosen_head()
    follow = {knn_name(cb, c): (cb, c) for cb, c in FOLLOW_UP}
    if a.candidate in follow:
        comb, cfg = follow[a.candidate]
        net = KnnHead(head, Bank(pdata.split_ids("train"), n), comb)
    elif a.candidate.startswith("K-"):
        net, cfg = KnnHead(head, Bank(pdata.split_ids("train"), n), a.candidate[2:]), SHIPPED
    else:
        net, cfg = head, next(c for c in GRID + GATES if cfg_name(c) == a.candidate)
    s = summary(evaluate(net, "val", cfgs=(cfg,))[0])
    ok = qualifies(s, VAL_RULE)
    print(f"val, {a.candidate}: class-balanced {s['recall']:.3f} / {s['wrong']:.2f} / {s['latency']:.2f} s, share "
          f"{s['share']:.3f} (unweighted recall {s['unw_recall']:.3f}); rule recall >= {VAL_RULE['recall']}, wrong <= "
          f"{VAL_RULE['wrong']}, share >= {VAL_RULE['share']} -> {'CONFIRMED' if ok else 'not confirmed'}")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["bank", "cv", "follow-up", "gate", "val"])
    ap.add_argument("--candidate", default="")
    a = ap.parse_args(argv)
    {"bank": cmd_bank, "cv": cmd_cv, "follow-up": cmd_follow_up, "gate": cmd_follow_up, "val": cmd_val}[a.what](a)


if __name__ == "__main__":
    main()

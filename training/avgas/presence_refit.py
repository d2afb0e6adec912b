"""Should the presence head be refitted on train + val recordings? A learning curve on val decides
(rule in training/reports/listening.md, "Seventh session: refit the presence head").

  curve:  the committed recipe (presence.CHOSEN) on windows from random 60% / 80% subsets of the
          train recordings (whole split groups, drawn per class, each class keeps >= 1 group;
          subset seeds 1, 2) and on all of them; val window BCE and the shipped tracker + onset
          path on the 80 val clips (presence_onset.evaluate_net).
  refit:  the same recipe on windows of the train + val recordings, 25 epochs, last epoch kept;
          saved under data/cache/presence/heads/ (presence.py export --refit writes the asset).
  cv:     (ninth session) 4-fold cross-validation on the train recordings: heads without and with
          the pools, each scored on its fold's held-out recordings (rule in listening.md,
          "cross-validation on the train recordings"); `cv-windows --fold K` builds a fold's windows.
  pools:  (ninth session) the same recipe on the train recordings plus the training-only pools of
          training/dataset/tables/audio.tsv (5th column "train2", "train3"; never in val or test),
          early-stopped on val like the committed head; the same val measurements. The head is
          cached under data/cache/presence/heads/; `presence.py export --pools ...` writes it as the asset.

Windows: 8000 scenes (seed 0) per recording list, about 6-7 minutes each on one core, cached as
data/cache/presence/windows_<name>.npz, built in chunks of 100 scenes (an interrupted build resumes at
its next chunk; two different recording lists can build side by side in two shells).

Run: .venv/bin/python -m training.avgas.presence_refit windows --frac 0.6 --seed 1   (etc.)
     .venv/bin/python -m training.avgas.presence_refit curve
     .venv/bin/python -m training.avgas.presence_refit refit
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from training.avgas import presence as pres  # noqa: E402
from training.avgas import presence_data as pdata  # noqa: E402

SCENES, SCENE_SEED = 8000, 0
FRACS, SUBSET_SEEDS = (0.6, 0.8), (1, 2)
RESULTS = pdata.CACHE / "refit_curve.json"


def groups_by_class(ids):
    """{class: {split_group: [ids]}} for the given audio ids (data/manifest.csv)."""
    keep = set(ids)
    out = {}
    with open(pres.ROOT / "data/manifest.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["id"] in keep:
                out.setdefault(r["class"], {}).setdefault(r["split_group"], []).append(r["id"])
    missing = keep - {i for g in out.values() for ids_ in g.values() for i in ids_}
    if missing:
        raise SystemExit(f"presence_refit: {len(missing)} ids of presence_split.json are not in data/manifest.csv")
    return out


def draw_subset(by_class, frac, seed):
    """{class: {group: [ids]}} -> a random `frac` of the recordings: per class, round(frac * groups)
    whole split groups (at least one), so near-duplicate cuts of one original never straddle the
    subset's edge. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    out = []
    for cls, groups in sorted(by_class.items()):
        keys = sorted(groups)
        k = max(1, int(round(frac * len(keys))))
        for g in rng.permutation(len(keys))[:k]:
            out.extend(groups[keys[g]])
    return sorted(out)


def subset_ids(frac, seed):
    """draw_subset of the train recordings of presence_split.json."""
    return draw_subset(groups_by_class(pdata.split_ids("train")), frac, seed)


def name_of(ids, label):
    return f"{label}_{hashlib.sha1(chr(10).join(sorted(ids)).encode()).hexdigest()[:8]}"


def windows(ids, label):
    """Cached windows (emb96, y96) for a recording list."""
    name = name_of(ids, label)
    path = pdata.CACHE / f"windows_{name}.npz"
    if not path.exists():
        pdata.build_windows("train", SCENES, SCENE_SEED, ids=ids, name=name)
    z = np.load(path)
    return z["emb96"].astype(np.float32), z["y96"].astype(np.float32)


def fit(Xtr, Ytr, keep_last=False, seed=None):
    c = pres.CHOSEN
    ev_, _, yv, _ = pres.load_windows("val")
    return pres.train_head(Xtr, Ytr, ev_, yv, c["hidden"], c["dropout"], c["wd"], c["lr"], c["epochs"],
                           seed=c["seed"] if seed is None else seed, keep_last=keep_last)


def cmd_windows(a):
    ids = subset_ids(a.frac, a.seed) if a.frac < 1 else (
        sorted(pdata.split_ids("train") + pdata.split_ids("val")) if a.trainval else pdata.split_ids("train"))
    label = "trainval" if a.trainval else f"sub{int(round(a.frac * 100))}s{a.seed}"
    print(f"{label}: {len(ids)} recordings", flush=True)
    windows(ids, label)


def cmd_curve(a):
    from training.avgas import presence_onset as po
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs = [(f, s) for f in FRACS for s in SUBSET_SEEDS] + [(1.0, 0)]
    for frac, seed in runs:
        key = f"{frac}_{seed}"
        if key in rows:
            continue
        if frac < 1:
            ids = subset_ids(frac, seed)
            X, Y = windows(ids, f"sub{int(round(frac * 100))}s{seed}")
            net, info = fit(X, Y)
        else:
            ids = pdata.split_ids("train")
            net, info = pres.chosen_head()
        b, u, share = po.evaluate_net(net, "val")
        rows[key] = dict(frac=frac, seed=seed, recordings=len(ids), val_bce=float(info["val_bce"]),
                         best_epoch=int(info["best_epoch"]), recall_bal=b["recall"], wrong_bal=b["wrong"],
                         latency_bal=b["latency"], share_bal=share, recall_unw=u["recall"], wrong_unw=u["wrong"])
        print(json.dumps(rows[key]), flush=True)
        RESULTS.write_text(json.dumps(rows, indent=1))
    mean = lambda f, k: float(np.mean([r[k] for r in rows.values() if r["frac"] == f]))
    b60, b80, b100 = mean(0.6, "val_bce"), mean(0.8, "val_bce"), mean(1.0, "val_bce")
    r80, r100 = mean(0.8, "recall_bal"), mean(1.0, "recall_bal")
    print("| train recordings | val window BCE | val clips recall / wrong / share within 0.4 s (class-balanced) |")
    print("| --- | ---: | --- |")
    for f in (0.6, 0.8, 1.0):
        rs = [r for r in rows.values() if r["frac"] == f]
        print(f"| {int(f * 100)}% ({', '.join(str(r['recordings']) for r in rs)}) | "
              + ", ".join("%.4f" % r["val_bce"] for r in rs) + f" (mean {mean(f, 'val_bce'):.4f}) | "
              + "; ".join(f"{r['recall_bal']:.3f} / {r['wrong_bal']:.2f} / {r['share_bal']:.3f}" for r in rs) + " |")
    refit = b100 <= b80 - 0.002 and b80 <= b60 and r100 >= r80
    print(f"rule: BCE(100%) {b100:.4f} <= BCE(80%) {b80:.4f} - 0.002: {b100 <= b80 - 0.002}; "
          f"BCE(80%) <= BCE(60%) {b60:.4f}: {b80 <= b60}; recall(100%) {r100:.3f} >= recall(80%) {r80:.3f}: {r100 >= r80}"
          f" -> {'REFIT' if refit else 'keep the train-only head'}")


REFIT_PATH = pdata.CACHE / "heads" / "refit_trainval.pt"


def load_head(path):
    """(net, info) of a head saved by save_head, or None."""
    if not path.exists():
        return None
    d = torch.load(path)
    net = pres.Head(d["d_in"], d["n"], d["hidden"], 0.0, d["state"]["mean"], d["state"]["std"])
    net.load_state_dict(d["state"])
    net.eval()
    return net, d["info"]


def save_head(path, net, info, X, Y):
    """Saves a head fitted on windows X -> Y (the committed recipe's hidden size); -> (net, info)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"d_in": X.shape[1], "n": Y.shape[1], "hidden": pres.CHOSEN["hidden"], "state": net.state_dict(),
                "info": info}, path)
    return net, info


def pool_ids(pools):
    """Audio ids (data/manifest.csv) of the recordings of audio.tsv's training-only `pools`."""
    keys = set()
    for line in (pres.ROOT / "training/dataset/tables/audio.tsv").read_text().splitlines():
        f = line.split("\t")
        if not line.startswith("#") and len(f) > 4 and f[4] in pools:
            keys.add(f"{f[1]}:{f[2]}")
    with open(pres.ROOT / "data/manifest.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["kind"] == "audio" and r["original_id"] in keys]
    found = {r["original_id"] for r in rows}
    if keys - found or any(r["split"] != "train" for r in rows):
        raise SystemExit(f"presence_refit: pools {pools}: {len(keys - found)} recordings missing from data/manifest.csv "
                         "(rebuild the dataset) or not in train")
    return sorted(r["id"] for r in rows)


def pools_path(pools, seed=0):
    return pdata.CACHE / "heads" / f"pools_{'+'.join(pools)}{'' if seed == 0 else f'_seed{seed}'}.pt"


def pools_head(pools, seed=0):
    """The committed recipe (head seed `seed`; the committed head's is 0) on train + `pools`
    recordings (no pools: the train recordings alone), best epoch by val BCE; cached."""
    path = pools_path(pools, seed)
    cached = load_head(path)
    if cached:
        return cached
    if pools:
        ids = sorted(pdata.split_ids("train") + pool_ids(pools))
        X, Y = windows(ids, "+".join(["train"] + list(pools)))
    else:
        ids = pdata.split_ids("train")
        X, _, Y, _ = pres.load_windows("train")
    net, info = fit(X, Y, seed=seed)
    return save_head(path, net, dict(info, recordings=len(ids), windows=int(len(X)), pools=list(pools)), X, Y)


FOLDS, CV_POOLS = 4, ("train2", "train3")


def deal_folds(by_class, folds=FOLDS, seed=0):
    """{class: {group: [ids]}} -> `folds` lists of held-out ids: in every class with >= 2 groups,
    the groups shuffled (classes in name order, one generator) and dealt to the folds in turn, the
    deal continuing across classes so the folds stay even; one-group classes are in no fold."""
    rng = np.random.default_rng(seed)
    out, j = [[] for _ in range(folds)], 0
    for cls in sorted(by_class):
        keys = sorted(by_class[cls])
        if len(keys) < 2:
            continue
        for g in rng.permutation(len(keys)):
            out[j % folds].extend(by_class[cls][keys[g]])
            j += 1
    return [sorted(f) for f in out]


def cv_folds():
    """Held-out recordings of each fold (deal_folds of the frozen train recordings)."""
    return deal_folds(groups_by_class(pdata.split_ids("train")))


def cv_lists(k):
    """(T, B) training recording lists of fold k."""
    held = set(cv_folds()[k])
    t = sorted(i for i in pdata.split_ids("train") if i not in held)
    return t, sorted(t + pool_ids(CV_POOLS))


def cv_head(k, variant):
    """The committed recipe on fold k's T or B list (cached under data/cache/presence/heads/)."""
    path = pdata.CACHE / "heads" / f"cv{k}_{variant}.pt"
    cached = load_head(path)
    if cached:
        return cached[0]
    ids = cv_lists(k)[0 if variant == "T" else 1]
    X, Y = windows(ids, f"cv{k}{variant}")
    return save_head(path, *fit(X, Y), X, Y)[0]


class MemoYamnet:
    """Float YAMNet memoised by the patches' bytes: the tiled patches of a clip do not depend on
    the head, so the eight cross-validation heads share one forward per patch set."""

    def __init__(self):
        self.yam, self.memo = pdata.Yamnet(threads=1), {}

    def __call__(self, p):
        key = hashlib.sha1(np.ascontiguousarray(p).tobytes()).hexdigest()
        if key not in self.memo:
            self.memo[key] = self.yam(p)
        return self.memo[key]


def cmd_cv_windows(a):
    for variant in ("T", "B"):
        ids = cv_lists(a.fold)[0 if variant == "T" else 1]
        print(f"fold {a.fold} {variant}: {len(ids)} recordings", flush=True)
        windows(ids, f"cv{a.fold}{variant}")


def cmd_cv(a):
    from training.avgas import presence_onset as po
    tl = pres.tl
    folds = cv_folds()
    print("held-out recordings per fold: " + ", ".join(str(len(f)) for f in folds), flush=True)
    yam, res = MemoYamnet(), {"T": [], "B": []}
    for k, held in enumerate(folds):
        for variant in ("T", "B"):
            r = po.evaluate_clips(cv_head(k, variant), "train", yam=yam, ids=set(held))
            res[variant] += r
            print(f"fold {k} {variant}: {pres.short(tl.summarise(r, True))} share {po.within(r, True):.3f} "
                  f"({len(r)} clips)", flush=True)
    out = {}
    for variant in ("T", "B"):
        b, u = tl.summarise(res[variant], True), tl.summarise(res[variant], False)
        out[variant] = dict(bal=b, unw=u, share=po.within(res[variant], True), clips=len(res[variant]))
        print(f"pooled {variant}: class-balanced {pres.short(b)} share {out[variant]['share']:.3f} | "
              f"unweighted {pres.short(u)} ({len(res[variant])} clips)", flush=True)
    t, b = out["T"], out["B"]
    adopt = (b["bal"]["recall"] >= t["bal"]["recall"] + 0.02 and b["bal"]["wrong"] <= t["bal"]["wrong"] + 0.05
             and b["share"] >= t["share"] - 0.02)
    print(f"rule: recall {b['bal']['recall']:.3f} >= {t['bal']['recall']:.3f} + 0.02, wrong {b['bal']['wrong']:.2f} <= "
          f"{t['bal']['wrong']:.2f} + 0.05, share {b['share']:.3f} >= {t['share']:.3f} - 0.02 -> "
          f"{'ADOPT (B)' if adopt else 'keep the committed head'}")
    (pdata.CACHE / "cv_pools.json").write_text(json.dumps(out, indent=1, default=float))


def cmd_pools(a):
    from training.avgas import presence_onset as po
    net, info = pools_head(a.pools, a.seed)
    b, u, share = po.evaluate_net(net, "val")
    thr, vf, _ = pres.mixture_f1(net, False, "or")
    print(f"train + {'+'.join(a.pools) or 'no pool'}, head seed {a.seed}: {info['recordings']} recordings, val BCE {info['val_bce']:.4f} "
          f"(epoch {info['best_epoch']}) | val clips bal {pres.short(b)} share {share:.3f} | unw {pres.short(u)} | "
          f"val mixtures macro F1 at {thr}: " + ", ".join(f"{k}-src {v:.3f}" for k, v in vf.items()), flush=True)


def refit_head():
    """The refitted head (train + val recordings, last epoch), trained once and cached."""
    cached = load_head(REFIT_PATH)
    if cached:
        return cached
    ids = sorted(pdata.split_ids("train") + pdata.split_ids("val"))
    X, Y = windows(ids, "trainval")
    net, info = fit(X, Y, keep_last=True)
    return save_head(REFIT_PATH, net, dict(info, recordings=len(ids), windows=int(len(X))), X, Y)


def cmd_refit(a):
    net, info = refit_head()
    print(f"refit head: {info}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("windows")
    p.add_argument("--frac", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--trainval", action="store_true")
    sub.add_parser("curve")
    sub.add_parser("refit")
    p = sub.add_parser("cv-windows")
    p.add_argument("--fold", type=int, required=True)
    sub.add_parser("cv")
    p = sub.add_parser("pools")
    p.add_argument("pools", nargs="*", help="training-only pools of audio.tsv, e.g. train2 train3 (none: train only)")
    p.add_argument("--seed", type=int, default=0, help="head seed (the committed head's: 0)")
    a = ap.parse_args(argv)
    {"windows": cmd_windows, "curve": cmd_curve, "refit": cmd_refit, "pools": cmd_pools, "cv-windows": cmd_cv_windows,
     "cv": cmd_cv}[a.cmd](a)


if __name__ == "__main__":
    main()

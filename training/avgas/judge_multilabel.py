"""A judge that has seen two subjects in one picture (eighth session; a val study).

The committed recipe (the train-only judge's members: encoder, layers, test-time views, head,
augmented copies; training/avgas/judge.py) fitted on the train pictures PLUS two-subject composites
of train pictures labelled 0.5 / 0.5 (soft targets in the same softmax loss). Composites: random
pairs of distinct classes, one of three generic layouts at random (never the shipped scene
composer's): left | right halves, top / bottom halves (each picture shrunk to half the canvas), or a
collage of two pictures scaled to 50-70% of the canvas at random places, the second pasted over the
first, all on the dataset's grey. Real pictures only.

Scored on VAL beside the train-only judge, on the same features: top-1 on single pictures, and
CRS2 / R@2* of compose_bound's 150 val pairs composed with the shipped scene rules and as panels.
The rule is in training/reports/separator_judge.md (eighth session). Prints a table; writes
<data>/features/judge_multilabel_val.json.

    .venv/bin/python -m training.avgas.judge_multilabel --threads 2          (about 6 minutes)

`--refit` (after the rule adopted the recipe; what `make train-separator` runs last): fits the
recipe twice, on the train pictures + composites of train pictures (exactly the val study's judge:
Assets/models/judge_trainonly.safetensors, for every later choice made on val) and on train + val
pictures + composites of train + val pictures (Assets/models/judge.safetensors, every test metric),
evaluates the latter once on the test pictures beside the judge it replaces, and appends the
figures to training/reports/separator_judge.md (about 10 minutes).
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from . import judge as J  # noqa: E402

BG = 200


def _resize(im: np.ndarray, w: int, h: int) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.fromarray(im).resize((w, h), Image.BILINEAR))


def composite(a: np.ndarray, b: np.ndarray, layout: str, rng, size: int = 128) -> np.ndarray:
    """Two uint8 [H, W, 3] pictures -> one uint8 [size, size, 3] picture showing both."""
    out = np.full((size, size, 3), BG, np.uint8)
    if layout in ("lr", "tb"):
        h = size // 2
        for k, im in enumerate((a, b)):
            s = _resize(im, h, h)
            o = int(rng.integers(0, size - h + 1))      # free position along the other axis
            if layout == "lr":
                out[o:o + h, k * h:(k + 1) * h] = s
            else:
                out[k * h:(k + 1) * h, o:o + h] = s
    else:  # collage
        for im in (a, b):
            side = int(round(size * rng.uniform(0.5, 0.7)))
            y, x = (int(v) for v in rng.integers(0, size - side + 1, 2))
            out[y:y + side, x:x + side] = _resize(im, side, side)
    return out


def make_composites(images, labels, n, seed=0):
    """n composites of random pairs of distinct classes; returns (uint8 [n,128,128,3], [(ca, cb)])."""
    rng = np.random.default_rng(seed)
    by = collections.defaultdict(list)
    for i, c in enumerate(labels):
        by[c].append(i)
    cl = sorted(by)
    out, pairs = [], []
    for _ in range(n):
        ca, cb = (cl[j] for j in rng.choice(len(cl), 2, replace=False))
        ia, ib = by[ca][rng.integers(len(by[ca]))], by[cb][rng.integers(len(by[cb]))]
        out.append(composite(images[ia], images[ib], ("lr", "tb", "collage")[rng.integers(3)], rng))
        pairs.append((ca, cb))
    return np.stack(out), pairs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--composites", type=int, default=1000)
    ap.add_argument("--pairs", type=int, default=150, help="val pairs (compose_bound's, seed 0)")
    ap.add_argument("--refit", action="store_true", help="export the adopted recipe (see above)")
    ap.add_argument("--report", default="training/reports/separator_judge.md")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    import safetensors_io
    from training.dataset.loaders import Dataset
    from training.generator import compose
    from training.generator.compose_bound import panels
    from training.generator.evaluate import crs_r2
    from .judge_features import MultiLayerEncoder, cached, view

    t0 = time.time()
    tens, meta = safetensors_io.load(J.TRAINONLY_PATH)
    members = json.loads(meta["members"])
    names = json.loads(meta["classes"])
    C = len(names)
    cidx = {n: i for i, n in enumerate(names)}
    ds = Dataset(a.data)
    feat_dir = Path(a.data) / "features"
    rows = ds.rows(kind="image")
    y = np.array([cidx[r["class"]] for r in rows])
    sp = np.array([r["split"] for r in rows])
    tr, va = np.flatnonzero(sp == "train"), np.flatnonzero(sp == "val")
    encs = {m["arch"]: MultiLayerEncoder(m["arch"], m["norm"]) for m in members}
    wrap = {arch: [None] for arch in encs}

    def F(idx, arch, v):
        return cached(ds, [rows[i] for i in idx], arch, "imagenet", v, feat_dir, wrap[arch])

    def feats(images, arch, views):
        return [encs[arch].features(view(images, v)) for v in views]

    if a.refit:
        return refit(a, t0, tens, meta, members, names, rows, y, sp, F, feats)

    # ---- two-subject composites of train pictures
    tr_imgs = np.stack([ds.load_image(rows[i]) for i in tr])
    comp, comp_pairs = make_composites(tr_imgs, [rows[i]["class"] for i in tr], a.composites)
    P = np.zeros((len(comp), C), np.float32)
    for k, (ca, cb) in enumerate(comp_pairs):
        P[k, cidx[ca]] = P[k, cidx[cb]] = 0.5
    print(f"[{time.time() - t0:4.0f}s] {len(comp)} composites of {len(tr)} train pictures", flush=True)

    # ---- val: single pictures and compose_bound's pairs (seed 0), scene rules and panels
    classes, layers = __import__("training.generator.data", fromlist=["x"]).load_classes()
    assert classes == names
    va_rows = [rows[i] for i in va]
    va_imgs = np.stack([ds.load_image(r) for r in va_rows])
    by = collections.defaultdict(list)
    for k, r in enumerate(va_rows):
        by[r["class"]].append(k)
    rng = np.random.default_rng(0)
    cl = sorted(by)
    pairs = [tuple(cl[j] for j in rng.choice(len(cl), 2, replace=False)) for _ in range(a.pairs)]
    scenes = {"scene": [], "panels": []}
    for k, pair in enumerate(pairs):
        items = [{"class": c, "score": 1.0, "layer": layers[c],
                  "image": va_imgs[by[c][k % len(by[c])]].astype(np.float32) / 255.0} for c in pair]
        scenes["scene"].append(compose.compose(items))
        scenes["panels"].append(panels([it["image"] for it in items]))
    scenes = {k: (np.clip(np.stack(v), 0, 1) * 255 + 0.5).astype(np.uint8) for k, v in scenes.items()}

    fitted_new, probs = [], collections.defaultdict(list)
    for i, m in enumerate(members):
        cols = J.select_columns(m["arch"], m["layers"])
        t_old = {k[len(f"m{i}."):]: v for k, v in tens.items() if k.startswith(f"m{i}.")}
        assert m["train"] == "id+flip"
        train_views = [F(tr, m["arch"], v)[:, cols] for v in ("id", "flip")]
        train_views += [F(tr, m["arch"], f"aug{k}")[:, cols] for k in range(m["naug"])]
        extra = [f[:, cols] for f in feats(comp, m["arch"], ("id", "flip"))]
        print(f"[{time.time() - t0:4.0f}s] {m['arch']}: composite features", flush=True)
        t_new = J.fit_member(m, train_views, y[tr], C, extra=(extra, P))
        fitted_new.append(t_new)
        evals = {"single": [F(va, m["arch"], v)[:, cols] for v in m["views"]]}
        for name, im in scenes.items():
            evals[name] = [f[:, cols] for f in feats(im, m["arch"], m["views"])]
        for name, views in evals.items():
            probs["old", name].append(J.member_probs(t_old, m, views))
            probs["new", name].append(J.member_probs(t_new, m, views))
        print(f"[{time.time() - t0:4.0f}s] {m['arch']}: fitted and scored", flush=True)

    res = {}
    for j in ("old", "new"):
        p = {k: np.mean(v, 0) for (jj, k), v in probs.items() if jj == j}
        res[j] = {"single_top1": float((p["single"].argmax(1) == y[va]).mean())}
        for name in scenes:
            crs, r2 = crs_r2(p[name], [list(q) for q in pairs], names)
            res[j][f"{name}_crs2"], res[j][f"{name}_r2"] = crs, r2
    label = {"old": "train-only judge (committed)", "new": "+ two-subject composites"}
    print("| judge (val) | top-1 single pictures | scene CRS2 | scene R@2* | panels CRS2 | panels R@2* |")
    print("|---|---:|---:|---:|---:|---:|")
    for j in ("old", "new"):
        r = res[j]
        print(f"| {label[j]} | {r['single_top1']:.3f} | {r['scene_crs2']:.3f} | {r['scene_r2']:.3f} | "
              f"{r['panels_crs2']:.3f} | {r['panels_r2']:.3f} |")
    ok_a = res["new"]["single_top1"] >= res["old"]["single_top1"] - 0.01 - 1e-9
    ok_b = res["new"]["scene_crs2"] >= res["old"]["scene_crs2"] + 0.10 - 1e-9
    res["rule"] = {"a_single_within_1pt": ok_a, "b_scene_crs2_plus_0.10": ok_b, "adopt": ok_a and ok_b}
    res["n_val"], res["n_pairs"], res["n_composites"] = int(len(va)), len(pairs), len(comp)
    print(f"rule: (a) {ok_a}, (b) {ok_b} -> adopt = {ok_a and ok_b}; {time.time() - t0:.0f}s")
    json.dump(res, open(feat_dir / "judge_multilabel_val.json", "w"), indent=1)


def fit_recipe(members, idx, comp, P, y, C, F, feats, log=print):
    """The committed recipe's members fitted on pictures idx (id, flip, augmented copies) plus the
    composites comp (id, flip) with soft targets P."""
    out = []
    for m in members:
        cols = J.select_columns(m["arch"], m["layers"])
        assert m["train"] == "id+flip"
        views = [F(idx, m["arch"], v)[:, cols] for v in ("id", "flip")]
        views += [F(idx, m["arch"], f"aug{k}")[:, cols] for k in range(m["naug"])]
        extra = [f[:, cols] for f in feats(comp, m["arch"], ("id", "flip"))]
        out.append(J.fit_member(m, views, y[idx], C, extra=(extra, P)))
        log(f"{m['arch']}: fitted on {len(idx)} pictures + {len(comp)} composites")
    return out


def refit(a, t0, tens_old, meta_old, members, names, rows, y, sp, F, feats):
    import subprocess
    sp_path = Path(a.data) / "features" / "judge_multilabel_val.json"
    if not sp_path.exists() or not json.load(open(sp_path))["rule"]["adopt"]:
        print(f"{sp_path}: the val study did not adopt the recipe (or has not run): the committed judges stay")
        return
    import safetensors_io
    from training.dataset.loaders import Dataset
    ds = Dataset(a.data)
    C = len(names)
    tr, va, te = (np.flatnonzero(sp == s) for s in ("train", "val", "test"))
    log = lambda msg: print(f"[{time.time() - t0:4.0f}s] {msg}", flush=True)

    def comps(idx):
        im, pairs = make_composites(np.stack([ds.load_image(rows[i]) for i in idx]),
                                    [rows[i]["class"] for i in idx], a.composites)
        P = np.zeros((len(im), C), np.float32)
        for k, (ca, cb) in enumerate(pairs):
            P[k, names.index(ca)] = P[k, names.index(cb)] = 0.5
        return im, P

    def probs(fitted, idx):
        ps = []
        for m, t in zip(members, fitted):
            cols = J.select_columns(m["arch"], m["layers"])
            ps.append(J.member_probs(t, m, [F(idx, m["arch"], v)[:, cols] for v in m["views"]]))
        return np.mean(ps, 0)

    trainonly = fit_recipe(members, tr, *comps(tr), y, C, F, feats, log)
    both = np.concatenate([tr, va])
    full = fit_recipe(members, both, *comps(both), y, C, F, feats, log)
    val_top1 = float((probs(trainonly, va).argmax(1) == y[va]).mean())
    old_full = J.load_judge(J.JUDGE_PATH)
    old_fitted = [{k[len(f"m{i}."):]: v for k, v in old_full.t.items() if k.startswith(f"m{i}.")}
                  for i in range(len(members))]
    p_new, p_old = probs(full, te), probs(old_fitted, te)
    acc_new = float((p_new.argmax(1) == y[te]).mean())
    acc_old = float((p_old.argmax(1) == y[te]).mean())
    pred = p_new.argmax(1)
    per = {names[c]: (int((pred[y[te] == c] == c).sum()), int((y[te] == c).sum())) for c in np.unique(y[te])}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    recipe = (f"the v3 recipe (members as listed) + {a.composites} two-subject composites of the fitted pictures "
              "(soft targets 0.5 / 0.5; layouts lr / tb / collage; training/avgas/judge_multilabel.py)")
    study = json.load(open(sp_path))
    for path, fitted, extra in (
            (J.TRAINONLY_PATH, trainonly, {"trained_on": f"real train pictures ({len(tr)}) + augmented copies + composites of them",
                                           "val_top1": f"{val_top1:.4f}", "val_study": json.dumps(study)}),
            (J.JUDGE_PATH, full, {"trained_on": f"real train + val pictures ({len(both)}) + augmented copies + composites of them; "
                                                "every choice made on val with judge_trainonly.safetensors",
                                  "val_top1": "n/a (val used for fitting)", "test_top1": f"{acc_new:.4f}",
                                  "test_n": str(len(te)), "test_top1_previous_judge": f"{acc_old:.4f}",
                                  "per_class_test": json.dumps(per)})):
        m = {k: v for k, v in meta_old.items() if k in ("format", "classes", "members", "encoder", "head")}
        m.update({"format": "avgas-judge-v3", "version": "v6 (multi-subject)", "recipe": recipe,
                  "training_commit": commit}, **extra)
        safetensors_io.save(path, {f"m{i}.{k}": v for i, t in enumerate(fitted) for k, v in t.items()}, m)
    log(f"TEST (once): {acc_new:.3f} (the judge it replaces: {acc_old:.3f}) on {len(te)} pictures; val (train-only) {val_top1:.3f}")
    lines = ["", f"**Result (val, `judge_multilabel`; {study['n_val']} val pictures, {study['n_pairs']} pairs):**", "",
             "| judge (val) | top-1 single pictures | scene CRS2 | scene R@2* | panels CRS2 | panels R@2* |",
             "|---|---:|---:|---:|---:|---:|"]
    for j, lab in (("old", "train-only judge (v3 recipe)"), ("new", "+ two-subject composites")):
        r = study[j]
        lines.append(f"| {lab} | {r['single_top1']:.3f} | {r['scene_crs2']:.3f} | {r['scene_r2']:.3f} | "
                     f"{r['panels_crs2']:.3f} | {r['panels_r2']:.3f} |")
    lines += ["", f"Rule: (a) single pictures within 1 point: {study['rule']['a_single_within_1pt']}; (b) scene CRS2 "
              f"+0.10: {study['rule']['b_scene_crs2_plus_0.10']} -> **adopted** (judge v6). Exported by `--refit`: "
              f"Assets/models/judge_trainonly.safetensors (train + composites of train; val top-1 {val_top1:.3f}) and "
              f"Assets/models/judge.safetensors (train + val + composites of train + val). Test, evaluated once "
              f"({len(te)} pictures): **{acc_new:.3f}** (v5, the judge it replaces: {acc_old:.3f}; target >= 0.7: "
              f"{'met' if acc_new >= 0.7 else 'NOT met'}).", "", "Per class (test, v6):", "",
              "| class | correct / total |", "|---|---|"]
    lines += [f"| {k} | {v[0]}/{v[1]} |" for k, v in per.items()]
    rp = Path(a.report)
    rp.write_text(rp.read_text().rstrip("\n") + "\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

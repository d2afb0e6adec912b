"""Near-duplicate pictures across splits (eleventh session audit; training/reports/near_duplicates.md).

The image splits keep pixel-identical pictures and the rows `images.tsv` groups together, but some
variants of one drawing were not grouped: an emoji in two skin tones, a duck in two colours, one
artist's numbered series (people_juliane_krug_06b / 06c), the same car drawn in two packages, a
picture and its mirror. When one copy is in test and another in train (or val), a test figure
measures recall of a seen drawing, not generalisation.

Measure: each picture composited on white, cropped to its foreground (grey level < 245), resized
to 48 x 48, grey-level gradient magnitude, centred and L2-normalised; the similarity of two
pictures is the larger correlation of these maps with the other picture as is or mirrored. Colour
changes (skin tones, duck colours) and re-renderings of one drawing keep the outline, so they
score high; different drawings of one class score below 0.75 (listed by `report`). Threshold
THRESHOLD = 0.80, chosen by looking at the ranked list (the gap between 0.81, one artist's two
sleeping cats, and 0.73, two different singer emoji), before any figure was recomputed. A pair
must also look alike to the judge's image encoder: cosine >= FEATURE_MIN = 0.90 of the cached
EfficientNet-Lite0 features (data/features/judge_lite0_imagenet_id.npz). This second condition
removes the one false pair of the ranked list (0.84: a lightning bolt and fireworks, two mostly
black rectangles with thin bright strokes); every pair kept has a cosine of at least 0.909.

  .venv/bin/python -m training.dataset.near_duplicates compute   -> training/dataset/tables/near_duplicates.json
  .venv/bin/python -m training.dataset.near_duplicates report    (the ranked pairs around the threshold)

Evaluations read `excluded_test_ids()` to report test figures without the test pictures that have
a near-duplicate in train or val ("deduplicated test").
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "training/dataset/tables/near_duplicates.json"
THRESHOLD = 0.80
FEATURE_MIN = 0.90
FEATURES = "features/judge_lite0_imagenet_id.npz"
SIZE = 48


def edge_map(rgba: np.ndarray) -> np.ndarray:
    """[H, W, 4] uint8 picture -> [SIZE * SIZE] centred unit-norm gradient magnitude of its
    foreground crop on white."""
    from PIL import Image
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    g = (rgba[..., :3].astype(np.float32) * a + 255.0 * (1 - a)) @ np.array([0.299, 0.587, 0.114], np.float32)
    fg = g < 245
    if fg.any():
        ys, xs = np.nonzero(fg)
        g = g[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    g = np.asarray(Image.fromarray(np.clip(g, 0, 255).astype(np.uint8)).resize((SIZE, SIZE), Image.BILINEAR), np.float32)
    gy, gx = np.gradient(g)
    e = np.hypot(gx, gy)
    return e


def _unit(e: np.ndarray) -> np.ndarray:
    v = e.ravel() - e.mean()
    return v / (np.linalg.norm(v) + 1e-6)


def similarity_matrix(edges: np.ndarray) -> np.ndarray:
    """[N, SIZE, SIZE] edge maps -> [N, N] max(corr(a, b), corr(a, mirror(b)))."""
    E = np.stack([_unit(e) for e in edges])
    M = np.stack([_unit(e[:, ::-1]) for e in edges])
    return np.maximum(E @ E.T, E @ M.T)


def image_rows(data_root: Path):
    with open(data_root / "manifest.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r["kind"] == "image"]


def load_rgba(data_root: Path, row) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(data_root / row["path"]).convert("RGBA"))


def feature_cosines(data_root: Path, rows) -> np.ndarray:
    """[N, N] cosine of the judge encoder's cached features, rows in `rows` order."""
    path = data_root / FEATURES
    if not path.exists():
        raise SystemExit(f"near_duplicates: {path} is missing (built by the judge's feature cache, make train-separator)")
    z = np.load(path)
    at = {Path(k).stem: i for i, k in enumerate(z["keys"])}
    missing = [r["id"] for r in rows if r["id"] not in at]
    if missing:
        raise SystemExit(f"near_duplicates: {len(missing)} pictures have no cached features in {path} (e.g. {missing[0]})")
    F = z["feats"][[at[r["id"]] for r in rows]].astype(np.float64)
    F /= np.linalg.norm(F, axis=1, keepdims=True)
    return F @ F.T


def compute(data_root: Path):
    rows = image_rows(data_root)
    S = similarity_matrix(np.stack([edge_map(load_rgba(data_root, r)) for r in rows]))
    C = feature_cosines(data_root, rows)
    S = np.where(C >= FEATURE_MIN, S, np.minimum(S, THRESHOLD - 1e-3))    # both measures must agree
    split = np.array([r["split"] for r in rows])
    out = {"threshold": THRESHOLD, "feature_min": FEATURE_MIN,
           "measure": "max(corr, mirrored corr) of 48x48 foreground gradient maps, and judge Lite0 feature cosine",
           "pairs": []}
    for s, others in (("test", ("train", "val")), ("val", ("train",))):
        te, ot = np.nonzero(split == s)[0], np.nonzero(np.isin(split, others))[0]
        sub = S[np.ix_(te, ot)]
        for i, t in enumerate(te):
            for j in np.nonzero(sub[i] >= THRESHOLD)[0]:
                o = ot[j]
                cos = float(C[t, o])
                out["pairs"].append({"split": s, "id": rows[t]["id"], "class": rows[t]["class"],
                                     "source": f"{rows[t]['package']}:{rows[t]['source_path']}",
                                     "other_split": rows[o]["split"], "other_id": rows[o]["id"],
                                     "other_class": rows[o]["class"],
                                     "other_source": f"{rows[o]['package']}:{rows[o]['source_path']}",
                                     "similarity": round(float(sub[i, j]), 4), "feature_cosine": round(cos, 4)})
    iu = np.argwhere(np.triu(S >= THRESHOLD, 1))
    out["all_pairs"] = [[rows[i]["id"], rows[j]["id"], round(float(S[i, j]), 4)] for i, j in iu]
    out["excluded_test_ids"] = sorted({p["id"] for p in out["pairs"] if p["split"] == "test"})
    out["val_ids_with_train_duplicate"] = sorted({p["id"] for p in out["pairs"] if p["split"] == "val"})
    out["n_test"], out["n_val"] = int((split == "test").sum()), int((split == "val").sum())
    return out, S, rows


def excluded_test_ids(split_of: dict | None = None) -> set:
    """Test picture ids with a near-duplicate outside test: by the current data/manifest.csv splits
    (the table's list), or by the split assignment `split_of` {id: split} that a model was trained
    with (e.g. the 638-picture split of data/features/image_embeddings.npz). The table is committed;
    without it the evaluations stop (a report must not call its test set deduplicated)."""
    if not TABLE.exists():
        raise SystemExit(f"near_duplicates: {TABLE} is missing (make near-duplicates, or check out the committed one)")
    t = json.loads(TABLE.read_text())
    if split_of is None:
        return set(t["excluded_test_ids"])
    out = set()
    for a, b, _ in t["all_pairs"]:
        sa, sb = split_of.get(a), split_of.get(b)
        if sa == "test" and sb not in (None, "test"):
            out.add(a)
        if sb == "test" and sa not in (None, "test"):
            out.add(b)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["compute", "report"])
    ap.add_argument("--data", default=str(ROOT / "data"))
    a = ap.parse_args(argv)
    out, S, rows = compute(Path(a.data))
    if a.cmd == "compute":
        TABLE.write_text(json.dumps(out, indent=1) + "\n")
        print(f"{len(out['excluded_test_ids'])} of {out['n_test']} test pictures and "
              f"{len(out['val_ids_with_train_duplicate'])} of {out['n_val']} val pictures have a near-duplicate "
              f"in an earlier split -> {TABLE.relative_to(ROOT)}")
    else:
        split = np.array([r["split"] for r in rows])
        te, ot = np.nonzero(split == "test")[0], np.nonzero(split != "test")[0]
        sub = S[np.ix_(te, ot)]
        best = sub.argmax(1)
        for i in np.argsort(-sub.max(1))[:30]:
            a_, b_ = rows[te[i]], rows[ot[best[i]]]
            print(f"{sub[i, best[i]]:.3f} {a_['id']} {a_['class'][:20]:20s} <- {b_['split']:5s} {b_['id']} "
                  f"{b_['class'][:20]:20s} {a_['source_path'][-34:]} | {b_['source_path'][-34:]}")


if __name__ == "__main__":
    main()

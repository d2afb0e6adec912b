"""Images, embeddings and class metadata for the generator."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

EMB_FILE = "features/image_embeddings.npz"


def load_classes(path="Assets/classes.json"):
    d = json.load(open(path))
    return [c["name"] for c in d["classes"]], {c["name"]: c.get("layer", "middle") for c in d["classes"]}


def image_rows(data_root, splits=("train", "val", "test")):
    with open(Path(data_root) / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "image" and r["split"] in splits]
    return sorted(rows, key=lambda r: r["id"])


def load_images(data_root, rows, size=128):
    from PIL import Image
    out = np.zeros((len(rows), size, size, 3), np.uint8)
    for i, r in enumerate(rows):
        im = Image.open(Path(data_root) / r["path"]).convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.BICUBIC)
        out[i] = np.asarray(im)
    return out


def load_embeddings(data_root):
    """ids -> embedding dict from the separator issue's file (None if it does not exist yet)."""
    p = Path(data_root) / EMB_FILE
    if not p.exists():
        return None
    z = np.load(p, allow_pickle=True)
    return {str(i): e.astype(np.float32) for i, e in zip(z["ids"], z["emb"])}


def embedding_splits(data_root):
    """ids -> split of the image set the visual embedding space was fitted on (the file's
    `splits`); None if the file does not exist. Images added to the manifest later have no
    embedding, and an image's split is the one recorded there."""
    p = Path(data_root) / EMB_FILE
    if not p.exists():
        return None
    z = np.load(p, allow_pickle=True)
    return {str(i): str(s) for i, s in zip(z["ids"], z["splits"])} if "splits" in z.files else None


def fake_embeddings(rows, classes, dim=128, seed=0):
    """Smoke-test stand-in when no embedding file exists: class direction + instance noise."""
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((len(classes), dim)).astype(np.float32)
    out = {}
    for r in rows:
        e = dirs[classes.index(r["class"])] + 0.3 * rng.standard_normal(dim).astype(np.float32)
        out[r["id"]] = e / np.linalg.norm(e)
    return out

"""Re-checks on VALIDATION pictures two generator choices first made on test numbers (eleventh
session audit; training/reports/generator_notes.md): the retrieval strength (0.4 vs 0.6) and the
live default (retrieval vs pure generation with the student at 4 steps).

The 85 doubly held-out val pictures of select_run.py (in the run's VAL split and in the current
manifest's VAL split), the train-only judge (Assets/models/judge_trainonly.safetensors), the same
noise seed and exemplar bank rules as evaluate.py; also without the 12 val pictures that have a
near-duplicate in train (training/dataset/tables/near_duplicates.json). Writes
training/reports/generator_val_choices.json and prints it.

    PYTHONPATH=. .venv/bin/python -m training.generator.check_val_choices
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from . import data
from . import select_run as sr
from .evaluate import Gen, Judge, to_uint8


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="training/runs/generator")
    ap.add_argument("--data", default="data")
    ap.add_argument("--out", default="training/reports/generator_val_choices.json")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    from training.avgas.judge_refit import TRAINONLY_PATH
    from training.dataset.near_duplicates import TABLE
    classes, _ = data.load_classes("Assets/classes.json")
    judge = Judge(classes, a.data, path=TRAINONLY_PATH)
    gen = Gen.with_bank(a.run, classes)
    L = gen.L
    idx = sr.val_images(L, a.data)
    dup = set(json.loads(TABLE.read_text())["val_ids_with_train_duplicate"])
    clean = np.array([str(L["ids"][i]) not in dup for i in idx])
    cls = [str(L["classes"][i]) for i in idx]
    cidx = np.array([classes.index(c) for c in cls])
    emb = torch.from_numpy(L["emb"][idx])
    modes = {"retrieval, strength 0.4 (2 steps) = default": gen.retrieval_imgs(emb, cidx, 1, strength=0.4)[0],
             "retrieval, strength 0.6 (3 steps)": gen.retrieval_imgs(emb, cidx, 1, strength=0.6)[0],
             "student 4 steps (pure generation)": gen.student_imgs(emb, 1, 4)}
    out = {"val_pictures": int(len(idx)), "val_pictures_without_near_duplicates": int(clean.sum()),
           "judge": str(TRAINONLY_PATH.name), "top1": {}, "top1_without_near_duplicates": {}}
    for name, im in modes.items():
        ok = np.array([classes[j] == c for j, c in zip(judge.scores(to_uint8(im)).argmax(1), cls)])
        out["top1"][name] = round(float(ok.mean()), 4)
        out["top1_without_near_duplicates"][name] = round(float(ok[clean].mean()), 4)
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

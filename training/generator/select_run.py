"""Compare generator runs on VALIDATION images, so a run can be chosen before the test look.

    python -m training.generator.select_run training/runs/generator training/runs/generator_long

For every run: judge top-1 (the separator issue's judge, training/avgas/judge.py) of the images
drawn from the real-image embeddings of the doubly held-out validation images (in the run's own
VAL split, latents.npz `splits`, and in the current data/manifest.csv VAL split: neither the
generator nor the judge trained on them: the train-only judge, Assets/models/judge_trainonly.safetensors,
since the committed judge.safetensors is refitted on train + val), for the teacher (16 Euler steps, guidance 2.5), the
student at 1, 2 and 4 steps and the retrieval mode (the live default: exemplar re-noised at
strength 0.4, 2 student steps). Same noise seeds and exemplar bank rules as evaluate.py. Writes a
JSON per run next to it (<run>/select_val.json) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from . import data
from .evaluate import Gen, Judge, RET, match_splits, to_uint8, top1_acc

CEIL = "autoencoder reconstructions (ceiling)"


def val_images(L, data_root):
    """Indices (into the run's latents) of the doubly held-out validation images."""
    rows, split, cur = match_splits(L, data.image_rows(data_root))
    return np.flatnonzero((split == "val") & (cur == "val"))


def ae_ceiling(run, judge, classes, data_root):
    """Judge top-1 on the run's autoencoder reconstructions of the doubly held-out val images
    (the exported decoder on the normalised latents: the ceiling for anything decoded)."""
    run = Path(run)
    cfg = json.load(open(run / "config.json"))
    from .export import exported_decoder
    from .train import load_latents
    L = load_latents(run)
    idx = val_images(L, data_root)
    with torch.no_grad():
        rec = to_uint8(exported_decoder(run, cfg)(z=torch.from_numpy(L["z"][idx])))
    return top1_acc(judge.scores(rec), [str(L["classes"][i]) for i in idx], classes)[0], len(idx)


def evaluate_run(run, judge, classes, data_root):
    run = Path(run)
    gen = Gen.with_bank(run, classes)
    L = gen.L
    idx = val_images(L, data_root)
    cls = [str(L["classes"][i]) for i in idx]
    cidx = np.array([classes.index(c) for c in cls])
    emb = torch.from_numpy(L["emb"][idx])
    modes = {
        "teacher (16 steps, guidance 2.5)": gen.teacher_imgs(emb, 1),
        "student 1 step": gen.student_imgs(emb, 1, 1),
        "student 2 steps": gen.student_imgs(emb, 1, 2),
        "student 4 steps": gen.student_imgs(emb, 1, 4),
        RET: gen.retrieval_imgs(emb, cidx, 1)[0],
    }
    out = {"run": str(run), "n_val_images": int(len(idx)), "n_val_classes": int(len(set(cls)))}
    for name, im in modes.items():
        out[name] = top1_acc(judge.scores(to_uint8(im)), cls, classes)[0]
    out[CEIL] = ae_ceiling(run, judge, classes, data_root)[0]
    json.dump(out, open(run / "select_val.json", "w"), indent=1)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--data", default="data")
    ap.add_argument("--classes", default="Assets/classes.json")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ae-only", action="store_true",
                    help="only the autoencoder ceiling (runs that hold an autoencoder and latents alone)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    classes, _ = data.load_classes(args.classes)
    from training.avgas.judge_refit import TRAINONLY_PATH
    judge = Judge(classes, args.data, path=TRAINONLY_PATH)
    if args.ae_only:
        for r in args.runs:
            acc, n = ae_ceiling(r, judge, classes, args.data)
            print(f"| {r} | {CEIL}: {acc:.3f} ({n} val images) |")
        return
    res = [evaluate_run(r, judge, classes, args.data) for r in args.runs]
    keys = [k for k in res[0] if k not in ("run", "n_val_images", "n_val_classes")]
    print("| mode | " + " | ".join(r["run"] for r in res) + " |")
    print("|---|" + "---:|" * len(res))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{r[k]:.3f}" for r in res) + " |")
    print(f"val images: {res[0]['n_val_images']} of {res[0]['n_val_classes']} classes", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Mixed images on the VALIDATION mixtures, so a generator run can be chosen on CRS / R@2* before
the test look (definitions in evaluate.py; the test figures come from `make eval-generator`).

The 60 two-source and 60 three-source val mixtures (data/features/audio_val_clips.npz: val-split
recordings, built like the fixed test sets), the exported separator and ablation on them as
separated.Separated does for test, the train-only judge (Assets/models/judge_trainonly.safetensors),
the same seeds and exemplar bank as evaluate.py. Per run: (i) paper-style mixed image (student 4
steps on sample.mixture_embedding), (ii) composed scene of the retrieval images, (iii) the
ablation's single image (student 4 steps).

    PYTHONPATH=. .venv/bin/python -m training.generator.check_val_mixtures RUN [RUN ...]

Writes <run>/val_mixtures.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from . import compose, data, sample
from .evaluate import Gen, Judge, crs_r2, to_uint8

MODES = ("(i) paper-style (student 4 steps)", "(ii) composed scene (retrieval images)",
         "(iii) ablation, single image (student 4 steps)")


def evaluate_run(run, sep, judge, classes, layers):
    run = Path(run)
    gen = Gen.with_bank(run, classes)
    out = {"run": str(run)}
    for n_src in (2, 3):
        outs = sep.outputs(n_src)
        E = np.stack([o["emb"][c] for o in outs for c in o["classes"]]).astype(np.float32)
        cidx = np.array([classes.index(c) for o in outs for c in o["classes"]])
        ret = to_uint8(gen.retrieval_imgs(torch.from_numpy(E), cidx, 11)[0])
        paper_e, abl_e, comp, sets, pos = [], [], [], [], 0
        for o in outs:
            C = o["classes"]
            w = [float(o["presence"][c]) for c in C]
            paper_e.append(sample.mixture_embedding([o["emb"][c] for c in C], w))
            if o["ablation"] is not None:
                abl_e.append(np.asarray(o["ablation"], np.float32))
            items = [{"class": c, "score": max(w[j], 1e-3), "layer": layers.get(c, "middle"),
                      "image": ret[pos + j].astype(np.float32) / 255} for j, c in enumerate(C)]
            comp.append((compose.compose(items) * 255 + 0.5).astype(np.uint8))
            sets.append(C)
            pos += len(C)
        ims = (to_uint8(gen.student_imgs(torch.from_numpy(np.stack(paper_e)), 13, 4)), np.stack(comp),
               to_uint8(gen.student_imgs(torch.from_numpy(np.stack(abl_e)), 13, 4)) if abl_e else None)
        for mode, im in zip(MODES, ims):
            if im is None:   # the ablation is exported by `make train-separator`; without it, n/a
                out.setdefault(mode, {"crs2": float("nan"), "r2": float("nan"), "crs3": float("nan")})
                continue
            crs, r2 = crs_r2(judge.scores(im), sets, classes)
            out.setdefault(mode, {})[f"crs{n_src}"] = crs
            if n_src == 2:
                out[mode]["r2"] = r2
        out[f"mixtures{n_src}"] = len(outs)
    json.dump(out, open(run / "val_mixtures.json", "w"), indent=1)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--data", default="data")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from training.avgas.judge_refit import TRAINONLY_PATH
    from .separated import Separated
    classes, layers = data.load_classes("Assets/classes.json")
    judge = Judge(classes, a.data, path=TRAINONLY_PATH)
    sep = Separated(a.data, classes, cache="audio_val_clips.npz")
    res = [evaluate_run(r, sep, judge, classes, layers) for r in a.runs]
    print("| mixed image (val mixtures, train-only judge) | " + " | ".join(r["run"] for r in res) + " |")
    print("|---|" + "---|" * len(res))
    for mode in MODES:
        print(f"| {mode} | " + " | ".join(f"CRS2 {r[mode]['crs2']:.3f}, R@2* {r[mode]['r2']:.3f}, CRS3 {r[mode]['crs3']:.3f}"
                                          for r in res) + " |")


if __name__ == "__main__":
    main()

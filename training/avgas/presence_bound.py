"""How far clip-level presence on two-source mixtures can go with this project's recognisers,
even if the mixture were separated perfectly (issue 5's target: 2-source macro F1 >= 0.8).

"Oracle separation": each fixed evaluation mixture is rebuilt source by source from its seed
(loaders.write_eval_set draws every mixture from one seeded generator; `replay_eval_set` makes the
same draws with make_mixture's keep_parts, which keeps each levelled source apart). Each source is scored ALONE,
with the mixture's own background noise and peak scaling, by the live tracker's presence source
(the learned presence head noisy-OR the AudioSet-label mapping, evaluate.shipped_presence, at its
val-chosen clip threshold) and by the mapping alone (>= 0.45, the separator report's column); the
classes named for the mixture are the union over its sources. Protocol otherwise as
training/avgas/evaluate.py (patches every 48 frames over the 4 s clip, clip-level max, macro F1
over the classes present in the set). The same scores on the real mixtures are printed beside
them (they agree with the separator report's columns within 0.005 on test: a check of this tool).

A recogniser that separated perfectly and then named each source as well as these do alone would
score the "oracle" column.

    PYTHONPATH=. .venv/bin/python -m training.avgas.presence_bound     (about 2 minutes)

Writes training/reports/presence_bound.json and presence_bound.md.

The val set is the replay of the val mixtures' draws on the current manifest: its class pairs
are those of data/features/val_mixtures/eval_2src, but val recordings added to the dataset after
that set was written change which recording some draws pick, so its audio differs from the cached
files (the JSON records the largest difference; the test replay matches its files to 16-bit
rounding). Both columns of a set are scored on the same replayed audio.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from training.dataset import audio as dsaudio
from training.dataset import build, loaders

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "training/reports/presence_bound.json"
ROWS = (("mixture_shipped", "the mixture (as mixed)", "live presence source"),
        ("oracle_shipped", "each source alone (oracle separation)", "live presence source"),
        ("mixture_mapping", "the mixture (as mixed)", "AudioSet-label mapping"),
        ("oracle_mapping", "each source alone (oracle separation)", "AudioSet-label mapping"))


def replay_eval_set(ds, n, n_sources, seed, split):
    """The mixtures of loaders.write_eval_set(ds, ..., n, n_sources, seed, split) again, in order,
    each with its parts kept apart (Dataset.sample_mixture(keep_parts=True): the same draws)."""
    return list(loaders.eval_set_draws(ds, n, n_sources, seed, split, keep_parts=True))


GRID = np.round(np.arange(0.1, 0.951, 0.05), 2)   # thresholds of the sensitivity figure

SETS = {  # name: (folder, seed, split, n) as written by dataset/build.py and avgas/features.py
    "val": ("data/features/val_mixtures/eval_2src", 100 + 2, "val", 60),
    "test": ("data/mixtures/eval_2src", build.SEED + 2, "test", 100),
}


def scores(yam, x):
    from training.avgas import evaluate as ev
    from training.avgas.features import clip_patches
    e, lg = yam(clip_patches(np.asarray(x, np.float32), 48))
    ship = ev.shipped_presence(e[None], lg[None])[0].max(0)          # [46]
    mapping = ev.yamnet_mapping_scores(lg).max(0)                     # [46]
    return ship, mapping


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    from training.avgas import evaluate as ev
    from training.avgas.features import Yamnet, class_index
    names, cidx = class_index()
    yam = Yamnet(threads=2)
    head_thr = ev.choose_head_threshold(a.data)
    ds = loaders.Dataset(a.data)
    res = {"head_threshold": head_thr, "mapping_threshold": 0.45, "sets": {}}
    for name, (folder, seed, split, n) in SETS.items():
        items = loaders.load_eval_set(ROOT / folder)
        mixes = replay_eval_set(ds, n, 2, seed, split)
        assert len(items) == len(mixes) == n, (name, len(items), len(mixes))
        worst, differ = 0.0, 0
        T = np.zeros((n, len(names)), bool)
        # clip-level scores; a class named for a source alone counts for the mixture (union over its
        # sources = the largest of their scores against the threshold)
        S = {k: np.zeros((n, len(names)), np.float32) for k in ("mixture_shipped", "mixture_mapping",
                                                                "oracle_shipped", "oracle_mapping")}
        for i, (it, m) in enumerate(zip(items, mixes)):
            assert it["classes"] == m["classes"], (name, i)
            wav = dsaudio.load_16k(ROOT / folder / it["path"])
            d = float(np.abs(wav - m["audio"]).max())
            worst, differ = max(worst, d), differ + (d > 1e-3)
            for c in m["classes"]:
                T[i, cidx[c]] = True
            S["mixture_shipped"][i], S["mixture_mapping"][i] = scores(yam, m["audio"])
            for st in m["stems"]:
                s, mp = scores(yam, (st + m["noise"]) * m["scale"])
                S["oracle_shipped"][i] = np.maximum(S["oracle_shipped"][i], s)
                S["oracle_mapping"][i] = np.maximum(S["oracle_mapping"][i], mp)
        row = {"mixtures": n, "max_abs_difference_replay_vs_wav": worst,
               "mixtures_whose_replay_differs_from_the_file": differ}
        for k, sc in S.items():
            thr = head_thr if k.endswith("shipped") else 0.45
            p = sc >= thr
            per, mac = ev.f1_table(p, T)
            sweep = {f"{t:.2f}": round(ev.f1_table(sc >= t, T)[1], 4) for t in GRID}
            best = max(sweep, key=sweep.get)
            row[k] = {"macro_f1": round(mac, 4), "classes": len(per),
                      "recall": round(float((p & T).sum() / T.sum()), 4),
                      "wrong_per_mixture": round(float((p & ~T).sum(1).mean()), 3),
                      "best_threshold_on_this_set": float(best), "macro_f1_at_it": sweep[best]}
        res["sets"][name] = row
        print(name, json.dumps(row), flush=True)
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    Path(a.out).with_suffix(".md").write_text(markdown(res))


def markdown(res):
    """The JSON as the report's table."""
    L = ["# Two-source presence with oracle separation (issue 5)", "",
         "Written by `python -m training.avgas.presence_bound` (method in its module doc). Live presence "
         f"source: learned head noisy-OR mapping, clip threshold {res['head_threshold']} (chosen on the val "
         f"mixtures as in separator.md); mapping alone: {res['mapping_threshold']}.", "",
         "| set | scored on | presence source | macro F1 | recall | wrong classes per mixture | "
         "best threshold on the set itself: macro F1 (threshold) |",
         "|---|---|---|---:|---:|---:|---:|"]
    for name, row in res["sets"].items():
        for key, what, src in ROWS:
            r = row[key]
            L.append(f"| {name} ({row['mixtures']} two-source mixtures, {r['classes']} classes) | {what} | {src} | "
                     f"{r['macro_f1']:.3f} | {r['recall']:.3f} | {r['wrong_per_mixture']:.2f} | "
                     f"{r['macro_f1_at_it']:.3f} ({r['best_threshold_on_this_set']:.2f}) |")
    v = res["sets"]["val"]
    L += ["", f"The val rows are scored on the replayed audio: {v['mixtures_whose_replay_differs_from_the_file']} of "
          f"its {v['mixtures']} mixtures pick another recording of the same class than the cached files (val "
          "recordings added after those were written). The last column picks the threshold on the set it scores "
          "(optimistic: a sensitivity figure, not a result)."]
    t = res["sets"]["test"]["oracle_shipped"]["macro_f1"]
    v = v["oracle_shipped"]["macro_f1"]
    tb = res["sets"]["test"]["oracle_shipped"]["macro_f1_at_it"]
    L += ["", f"Perfect separation followed by the live presence source would reach macro F1 {t:.3f} on the test "
          f"mixtures ({v:.3f} on val; {tb:.3f} with the best threshold picked on test itself): mixing costs about "
          f"{t - res['sets']['test']['mixture_shipped']['macro_f1']:.2f}, but even without it two-source presence stays "
          "below issue 5's 0.8 (the sources scored alone are named with recall about 0.8 and 1.7-1.9 wrong "
          "classes per mixture). Reaching 0.8 would take a read-out of the frozen YAMNet backbone that names held-out "
          "single recordings far better than the learned head does; none of the read-outs, banks, trackers or fine-tuning "
          "studied in training/reports/listening.md did (the recordings, mostly two to ten per class, bound them).", ""]
    return "\n".join(L)


if __name__ == "__main__":
    main()

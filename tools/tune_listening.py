#!/usr/bin/env python3
"""Tune and evaluate the listening stage (YAMNet -> class vocabulary -> tracker) in Python.

A simulation of the Swift analysis path (Sources/Pipeline/Analyzer.swift, Listener.swift,
Sources/Listening/ClassVocabulary.swift, Tracker.swift):
  - log-mel frames from the numpy front end (tools/frontend.py; the Swift streaming front end
    equals the batch one);
  - one hop every `hop` frames (10 frames = 100 ms): the first hop ends at frame 95, its patch
    is frames 0..95 and its time is the stream time at the end of the window,
    (f * 160 + 400) / 16000 s for last frame f;
  - YAMNet float graph (.build/models/yamnet_float.onnx, `make yamnet-float-onnx`; parity with
    the Swift engine 5.7e-5 on logits) by onnxruntime;
  - class score = 1 - prod(1 - w * sigmoid(logit)) over the class's evidence (noisy-OR);
  - ClassTracker rules exactly as Tracker.swift documents them (EMA with time constant,
    on/off hysteresis, minimum on-time, hold time), in float32.

Clip sets:
  val   real (non-synthetic) recordings of the VALIDATION split of data/manifest.csv, cut like
        tools/make_listening_clips.py cuts the test clips (loudest 3 s by RMS over 0.5 s steps,
        -3 dBFS peak, shorter ones 0.5 s into -60 dBFS seeded noise, FLAC 16-bit round trip);
  train the same for the TRAIN split (only used to look at labels of classes without val clips);
  test  the committed held-out clips Tests/ListeningTests/Fixtures/clips (evaluate once).
Each clip has a plain version (as ListeningEvaluationTests feeds it) and an onset version
(2 s of -60 dBFS SplitMix noise first, exactly as `avgas-bench listening` builds it: seed 7,
one generator across the clips in order). `export` writes a split's clips with a clips.json,
so `avgas-bench listening --clips DIR` measures the Swift path on the same audio (parity check).

Metrics (as ListeningBench.swift): onset version, `heard` = classes active in any hop whose time
is after the onset (first 10 ms frame of the clip with RMS > -40 dBFS); recall = clip's class
heard; wrong = other classes heard; latency = first such hop with the class active - onset
(median = sorted[n // 2]). Plain version: heard over all hops (the test suite's rule).
Stability (for the off threshold, hold and minimum on-time, which barely change the above):
activations of the true class per clip, and the fraction of hops after its first detection in
which it is active (coverage); wrong-class active hops per clip.
Val metrics are class-balanced (each clip weighted 1 / clips of its class) because test has one
clip per class; unweighted numbers are printed too.

YAMNet logits per clip and hop (every 5 frames, so 50 ms and 100 ms hops are both covered) are
cached under data/cache/listening_tune/ (git-ignored).

Run:
  .venv/bin/python tools/tune_listening.py cache  --split val
  .venv/bin/python tools/tune_listening.py labels --split val         # top YAMNet labels per class
  .venv/bin/python tools/tune_listening.py grid   --split val         # tracker grid search
  .venv/bin/python tools/tune_listening.py eval   --split val [--on 0.3 ...] [--classes FILE]
  .venv/bin/python tools/tune_listening.py eval   --split test        # once, at the end
Add --frozen to take the val/train recordings from training/avgas/presence_split.json (the split
the committed test clips were cut from; the dataset rebuild of 592a9b1 moved 11 test originals to
val). The learned presence head (training/avgas/presence.py) plugs into `evaluate` as a scorer.
"""
import argparse
import csv
import hashlib
import io
import itertools
import json
import os
import re
import sys

import numpy as np
import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import frontend  # noqa: E402
import yamnet_onnx  # noqa: E402

SR = 16000
CACHE_HOP = 5                       # frames between cached patches (50 ms)
CACHE_DIR = os.path.join(ROOT, "data/cache/listening_tune")
ONNX = os.path.join(ROOT, ".build/models/yamnet_float.onnx")
LEAD = 32000                        # 2 s of noise before an onset clip

# Current Swift defaults (TrackerConfiguration); a config is
# (onThreshold, offThreshold, smoothingTime, minimumOnTime, holdTime).
DEFAULT = dict(on=0.30, off=0.15, smooth=0.25, min_on=0.5, hold=0.5)


# ---------------------------------------------------------------- noise (SplitMix, as Swift)
class SplitMix:
    """ListeningBench.swift's SplitMix + Box-Muller, vectorised (same numbers)."""
    M = (1 << 64) - 1

    def __init__(self, seed):
        self.state = seed

    def _next(self, n):
        g = 0x9E3779B97F4A7C15
        k = np.arange(1, n + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            z = np.uint64(self.state) + k * np.uint64(g)
            self.state = (self.state + n * g) & self.M
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))

    def gaussian(self, n):
        r = self._next(2 * n)
        uv = (r >> np.uint64(11)).astype(np.float64) / float(1 << 53)
        u, v = np.maximum(uv[0::2], 1e-12), uv[1::2]
        return np.sqrt(-2 * np.log(u)) * np.cos(2 * np.pi * v)


# ---------------------------------------------------------------- clips
def flac_roundtrip(x):
    b = io.BytesIO()
    sf.write(b, x, SR, subtype="PCM_16", format="FLAC")
    b.seek(0)
    y, _ = sf.read(b, dtype="float32")
    return y


def cut_clip(x, index, seconds=3.0):
    """tools/make_listening_clips.py's cut (index seeds the padding noise)."""
    n = int(seconds * SR)
    if len(x) > n:
        starts = range(0, len(x) - n + 1, 8000)
        best = max(starts, key=lambda s: float(np.mean(x[s:s + n] ** 2)))
        x = x[best:best + n]
    x = x * (10 ** (-3 / 20) / max(1e-6, float(np.abs(x).max())))
    if len(x) < n:
        rng = np.random.default_rng(index)
        pad = (rng.standard_normal(max(n, len(x) + 8000)) * 1e-3).astype(np.float32)
        pad[8000:8000 + len(x)] += x
        x = pad[:max(n, len(x) + 8000)]
    return flac_roundtrip(x.astype(np.float32))


def onset_of(clip):
    """First 10 ms frame with RMS > 0.01 (ListeningBench.swift), in samples of the clip."""
    n = len(clip) // 160
    fr = clip[:n * 160].reshape(n, 160).astype(np.float32)
    rms = np.sqrt((fr * fr).sum(1, dtype=np.float32) / np.float32(160))
    hit = np.nonzero(rms > 0.01)[0]
    return int(hit[0]) * 160 if len(hit) else 0


def load_clips(split, data="data", ids=None):
    """[{id, class, plain, onset_audio, onset_s}] for a split (see module doc). `ids`: take the
    recordings with these manifest ids instead of the manifest's split column (a frozen split
    list, e.g. training/avgas/presence_split.json)."""
    if split == "test":
        d = os.path.join(ROOT, "Tests/ListeningTests/Fixtures/clips")
        meta = json.load(open(os.path.join(d, "clips.json")))["clips"]
        items = [(c["file"], c["class"], sf.read(os.path.join(d, c["file"]), dtype="float32")[0]) for c in meta]
    else:
        rows = [r for r in csv.DictReader(open(os.path.join(ROOT, data, "manifest.csv")))
                if r["kind"] == "audio" and (r["split"] == split if ids is None else r["id"] in ids)
                and r["synthetic"] == "0"]
        order = [c["name"] for c in json.load(open(os.path.join(ROOT, "Assets/classes.json")))["classes"]]
        rows.sort(key=lambda r: (order.index(r["class"]), r["id"]))
        items = []
        for i, r in enumerate(rows):
            x, sr = sf.read(os.path.join(ROOT, data, r["path"]), dtype="float32")
            assert sr == SR and x.ndim == 1
            items.append((r["id"], r["class"], cut_clip(x, i)))
    rng = SplitMix(7)
    out = []
    for cid, cls, clip in items:
        lead = rng.gaussian(LEAD).__mul__(1e-3).astype(np.float32)
        out.append(dict(id=cid, cls=cls, plain=clip, onset_audio=np.concatenate([lead, clip]),
                        onset_s=(LEAD + onset_of(clip)) / SR))
    return out


# ---------------------------------------------------------------- YAMNet + cache
_sess = None


def yamnet(patches):
    global _sess
    if _sess is None:
        if not os.path.exists(ONNX):
            sys.exit(f"error: {ONNX} missing; run `make yamnet-float-onnx`")
        _sess = yamnet_onnx.session(yamnet_onnx.batchable(ONNX))
    return yamnet_onnx.run(_sess, patches, outputs=("class_scores",))[0]


def hop_logits(audio):
    """(times [P], logits [P, 521]) for patches every CACHE_HOP frames, cached by audio hash."""
    h = hashlib.sha1(np.ascontiguousarray(audio, np.float32).tobytes()).hexdigest()[:20]
    path = os.path.join(CACHE_DIR, f"{h}.npz")
    if os.path.exists(path):
        z = np.load(path)
        return z["times"], z["logits"]
    frames = frontend.log_mel(audio)
    p = frontend.patches(frames, CACHE_HOP)
    last = np.arange(len(p)) * CACHE_HOP + frontend.PATCH_FRAMES - 1
    times = (last * frontend.HOP + frontend.WIN) / SR
    logits = yamnet(p)
    os.makedirs(CACHE_DIR, exist_ok=True)
    np.savez(path, times=times, logits=logits.astype(np.float32))
    return times, logits


def frozen_ids(a):
    """--frozen: the split's ids from training/avgas/presence_split.json (the split the committed
    test clips were cut from; the dataset rebuild of 592a9b1 moved some val/test recordings)."""
    if not getattr(a, "frozen", False) or a.split == "test":
        return None
    return set(json.load(open(os.path.join(ROOT, "training/avgas/presence_split.json")))[a.split])


def with_logits(clips):
    for c in clips:
        c["t_plain"], c["z_plain"] = hop_logits(c["plain"])
        c["t_onset"], c["z_onset"] = hop_logits(c["onset_audio"])
    return clips


# ---------------------------------------------------------------- vocabulary + tracker
def load_vocab(path):
    labels = open(os.path.join(ROOT, "Assets/models/yamnet_classes.txt")).read().split("\n")
    labels = [l for l in labels if l]
    ix = {l: i for i, l in reversed(list(enumerate(labels)))}
    classes = json.load(open(path))["classes"]
    names = [c["name"] for c in classes]
    W = np.zeros((len(classes), len(labels)), np.float32)
    for k, c in enumerate(classes):
        for e in c["audioset"]:
            W[k, ix[e["label"]]] = e["weight"]   # KeyError = a label not in yamnet_classes.txt
    return names, labels, W


def sigmoid(z):
    with np.errstate(over="ignore"):
        return (np.float32(1) / (np.float32(1) + np.exp(-z.astype(np.float32)))).astype(np.float32)


def class_scores(logits, W):
    """[P, 521] logits -> [P, C] noisy-OR class scores (float32)."""
    p = sigmoid(logits)                                   # [P, 521]
    miss = np.ones((len(p), len(W)), np.float32)
    for k in range(len(W)):
        nz = np.nonzero(W[k])[0]
        miss[:, k] = np.prod(np.float32(1) - W[k, nz][None] * p[:, nz], axis=1, dtype=np.float32)
    return np.float32(1) - miss


def track(scores, times, cfg, fast_scores=None):
    """ClassTracker over [P, C] scores at `times` -> active [P, C] bool (Tracker.swift rules).
    Experiments: cfg["fast"] turns a class on at once when its raw score reaches it; with
    `fast_scores` ([P, C], e.g. a short-window detector) that score is compared instead. A row of
    `scores` that is all NaN is an extra evaluation between hops (training/avgas/presence_onset.py
    --subfast): there only the fast rule runs (no smoothing update, nothing turns off)."""
    P, C = scores.shape
    on, off = np.float32(cfg["on"]), np.float32(cfg["off"])
    sm = np.zeros(C, np.float32)
    act = np.zeros(C, bool)
    since = np.zeros(C)
    above = np.zeros(C)
    out = np.zeros((P, C), bool)
    run = np.zeros(C, int)
    last = None
    for i in range(P):
        t = times[i]
        if np.isnan(scores[i]).all():
            if cfg.get("fast") is not None and fast_scores is not None:
                turn_on = ~act & (fast_scores[i] >= np.float32(cfg["fast"]))
                since[turn_on] = t
                above[turn_on] = t
                act = act | turn_on
            out[i] = act
            continue
        if last is None:
            a = np.float32(1)
        else:
            dt = max(0.0, t - last)
            a = np.float32(1 - np.exp(-dt / cfg["smooth"])) if cfg["smooth"] > 0 else np.float32(1)
        x = np.clip(np.nan_to_num(scores[i], nan=0, posinf=0, neginf=0), 0, 1).astype(np.float32)
        sm = (sm + a * (x - sm)).astype(np.float32)
        turn_on = ~act & (sm >= on)
        if cfg.get("topk"):                      # experiment: only the K largest smoothed scores may turn on
            gate = np.zeros(C, bool)
            gate[np.argsort(-sm, kind="stable")[:cfg["topk"]]] = True
            turn_on &= gate
        if cfg.get("fast") is not None:          # experiment: raw score >= fast turns on at once
            f = x if fast_scores is None else fast_scores[i]
            if cfg.get("confirm"):               # ... for `confirm` consecutive hops
                run = np.where(f >= np.float32(cfg["fast"]), run + 1, 0)
                turn_on |= ~act & (run >= cfg["confirm"])
            else:
                turn_on |= ~act & (f >= np.float32(cfg["fast"]))
        stay = act & (sm >= off)
        turn_off = act & (sm < off) & (t - above >= cfg["hold"] - 1e-9) & (t - since >= cfg["min_on"] - 1e-9)
        since[turn_on] = t
        above[turn_on | stay] = t
        act = (act | turn_on) & ~turn_off
        out[i] = act
        last = t
    return out


# ---------------------------------------------------------------- evaluation
def evaluate(clips, names, W, cfg, hop=10, scorer=None, fast_scorer=None):
    """`scorer(clip, version, step)` -> [P, C] scores replaces the noisy-OR mapping of W
    (training/avgas/presence.py: the learned presence head); `fast_scorer` likewise gives the
    scores compared with cfg["fast"] (default: the raw scores)."""
    step = hop // CACHE_HOP
    ci = {n: k for k, n in enumerate(names)}
    res = []
    key = (hashlib.sha1(W.tobytes()).hexdigest() if scorer is None else id(scorer), id(fast_scorer), step)
    for c in clips:
        if c.get("_key") != key:      # class scores depend only on the evidence and the hop
            c["_key"] = key
            if scorer is None:
                c["s_onset"] = class_scores(c["z_onset"][::step], W)
                c["s_plain"] = class_scores(c["z_plain"][::step], W)
            else:
                c["s_onset"] = scorer(c, "onset", step)
                c["s_plain"] = scorer(c, "plain", step)
            c["fs_onset"] = None if fast_scorer is None else fast_scorer(c, "onset", step)
            c["fs_plain"] = None if fast_scorer is None else fast_scorer(c, "plain", step)
        k = ci[c["cls"]]
        r = dict(id=c["id"], cls=c["cls"])
        # onset version (the benchmark)
        t, s = c["t_onset"][::step], c["s_onset"]
        a = track(s, t, cfg, c["fs_onset"])
        after = t > c["onset_s"]
        heard = a[after].any(0)
        r["hit"] = bool(heard[k])
        r["wrong"] = int(heard.sum() - heard[k])
        r["wrong_names"] = [names[j] for j in np.nonzero(heard)[0] if j != k]
        first = np.nonzero(after & a[:, k])[0]
        r["latency"] = float(t[first[0]] - c["onset_s"]) if len(first) else None
        if len(first):
            seg = a[first[0]:, k]
            r["coverage"] = float(seg.mean())
            r["activations"] = int((np.diff(a[after, k].astype(int)) == 1).sum() + (a[after, k][0]))
        else:
            r["coverage"], r["activations"] = 0.0, 0
        r["wrong_hops"] = int(a[after].sum() - a[after, k].sum())
        r["peak"] = float(s[after, k].max())
        # plain version (the test suite)
        a2 = track(c["s_plain"], c["t_plain"][::step], cfg, c["fs_plain"])
        h2 = a2.any(0)
        r["hit_plain"] = bool(h2[k])
        r["wrong_plain"] = int(h2.sum() - h2[k])
        res.append(r)
    return res


def summarise(res, balanced=True):
    n = {}
    for r in res:
        n[r["cls"]] = n.get(r["cls"], 0) + 1
    w = np.array([1.0 / n[r["cls"]] if balanced else 1.0 for r in res])
    w = w / w.sum()
    lat = [(r["latency"], wi) for r, wi in zip(res, w) if r["latency"] is not None]
    if balanced and lat:
        lat.sort()
        cw = np.cumsum([x[1] for x in lat])
        # the upper weighted median, the same convention as sorted[n // 2] (equal weights give
        # exactly that; the tolerance keeps a cumulative weight of 0.4999... from picking the lower one)
        med = lat[min(len(lat) - 1, int(np.searchsorted(cw, cw[-1] / 2 + 1e-12, side="right")))][0]
    else:
        ls = sorted(x[0] for x in lat)
        med = ls[len(ls) // 2] if ls else float("nan")
    det = [(r, wi) for r, wi in zip(res, w) if r["hit"]]
    dw = sum(wi for _, wi in det) or 1
    return dict(
        recall=float(sum(wi * r["hit"] for r, wi in zip(res, w))),
        wrong=float(sum(wi * r["wrong"] for r, wi in zip(res, w))),
        latency=float(med),
        recall_plain=float(sum(wi * r["hit_plain"] for r, wi in zip(res, w))),
        wrong_plain=float(sum(wi * r["wrong_plain"] for r, wi in zip(res, w))),
        coverage=float(sum(wi * r["coverage"] for r, wi in det) / dw),
        activations=float(sum(wi * r["activations"] for r, wi in det) / dw),
        wrong_hops=float(sum(wi * r["wrong_hops"] for r, wi in zip(res, w))),
    )


def fmt(s):
    return (f"recall {s['recall']:.3f}  wrong {s['wrong']:.2f}  median latency {s['latency']:.2f} s  | "
            f"plain recall {s['recall_plain']:.3f} wrong {s['wrong_plain']:.2f}  | coverage {s['coverage']:.2f} "
            f"activations {s['activations']:.2f} wrong hops {s['wrong_hops']:.1f}")


# ---------------------------------------------------------------- commands
def cmd_cache(a):
    clips = with_logits(load_clips(a.split, ids=frozen_ids(a)))
    print(f"{a.split}: {len(clips)} clips cached in {CACHE_DIR}")


def cmd_export(a):
    os.makedirs(a.out, exist_ok=True)
    meta = []
    for c in load_clips(a.split, ids=frozen_ids(a)):
        fn = re.sub(r"[^a-z0-9]+", "_", (c["cls"] + "_" + c["id"]).lower()).strip("_") + ".flac"
        sf.write(os.path.join(a.out, fn), c["plain"], SR, subtype="PCM_16", format="FLAC")
        meta.append({"class": c["cls"], "file": fn, "id": c["id"]})
    json.dump({"note": f"{a.split} clips, tools/tune_listening.py export", "clips": meta},
              open(os.path.join(a.out, "clips.json"), "w"), indent=1)
    print(f"{len(meta)} clips in {a.out}")


def cmd_labels(a):
    names, labels, W = load_vocab(a.classes)
    clips = with_logits(load_clips(a.split, ids=frozen_ids(a)))
    by = {}
    for c in clips:
        p = sigmoid(c["z_plain"][::2]).max(0)        # max over 100 ms hops
        by.setdefault(c["cls"], []).append(p)
    for cls in names:
        if cls not in by or (a.only and cls not in a.only):
            continue
        k = names.index(cls)
        m = np.mean(by[cls], 0)
        top = np.argsort(-m)[:a.top]
        ev = ", ".join(f"{labels[j]}={W[k, j]:.1f}:{m[j]:.2f}" for j in np.nonzero(W[k])[0])
        print(f"\n## {cls} ({len(by[cls])} clips)  evidence: {ev}")
        print("   " + "; ".join(f"{'*' if W[k, j] else ''}{labels[j]} {m[j]:.2f}" for j in top))


def parse_cfg(a):
    cfg = dict(DEFAULT)
    for key in cfg:
        v = getattr(a, key, None)
        if v is not None:
            cfg[key] = v
    return cfg


def print_detail(res, names):
    for r in res:
        mark = "ok  " if r["hit"] else "MISS"
        lat = f"{r['latency']:.2f}" if r["latency"] is not None else "  - "
        print(f"{mark} {r['cls']:32s} {r['id'][:22]:22s} peak {r['peak']:.2f} lat {lat} cov {r['coverage']:.2f} "
              f"act {r['activations']} plain {'ok' if r['hit_plain'] else 'MISS'} wrong {r['wrong_names']}")


def cmd_eval(a):
    names, labels, W = load_vocab(a.classes)
    clips = with_logits(load_clips(a.split, ids=frozen_ids(a)))
    cfg = parse_cfg(a)
    res = evaluate(clips, names, W, cfg, hop=a.hop // 10)
    print(f"config {cfg}, hop {a.hop} ms, {len(clips)} clips, classes {os.path.relpath(a.classes, ROOT)}")
    if a.detail:
        print_detail(res, names)
    if a.split != "test":
        print("class-balanced:", fmt(summarise(res, True)))
    print("unweighted:    ", fmt(summarise(res, False)))
    if a.json:
        json.dump(dict(config=cfg, hop=a.hop, balanced=summarise(res, True), unweighted=summarise(res, False),
                       clips=res), open(a.json, "w"), indent=1)


def cmd_grid(a):
    names, labels, W = load_vocab(a.classes)
    clips = with_logits(load_clips(a.split, ids=frozen_ids(a)))
    rows = []
    for on, fr, smooth, mn, hold in itertools.product(a.ons, a.offr, a.smooths, a.mins, a.holds):
        cfg = dict(on=on, off=round(on * fr, 3), smooth=smooth, min_on=mn, hold=hold)
        s = summarise(evaluate(clips, names, W, cfg, hop=a.hop // 10), True)
        rows.append((cfg, s))
        print(f"on {on:.2f} off {cfg['off']:.3f} smooth {smooth:.2f} min_on {mn:.1f} hold {hold:.1f}: {fmt(s)}",
              flush=True)
    if a.json:
        json.dump([dict(config=c, **s) for c, s in rows], open(a.json, "w"), indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("cache", "labels", "eval", "grid", "export"):
        p = sub.add_parser(name)
        p.add_argument("--split", default="val", choices=["val", "train", "test"])
        p.add_argument("--classes", default=os.path.join(ROOT, "Assets/classes.json"))
        p.add_argument("--hop", type=int, default=100, choices=[50, 100])
        p.add_argument("--json")
        p.add_argument("--frozen", action="store_true", help="use training/avgas/presence_split.json's ids for the split")
        if name == "export":
            p.add_argument("--out", required=True)
        if name == "labels":
            p.add_argument("--top", type=int, default=12)
            p.add_argument("--only", nargs="*")
        if name == "grid":
            p.add_argument("--ons", type=float, nargs="+", default=[0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5])
            p.add_argument("--offr", type=float, nargs="+", default=[0.5, 0.7], help="off = on * this")
            p.add_argument("--smooths", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2])
            p.add_argument("--mins", type=float, nargs="+", default=[0.5, 1.0])
            p.add_argument("--holds", type=float, nargs="+", default=[0.3, 0.6])
        if name == "eval":
            for key in DEFAULT:
                p.add_argument(f"--{key.replace('_', '-')}", dest=key, type=float)
            p.add_argument("--detail", action="store_true")
    a = ap.parse_args()
    {"cache": cmd_cache, "export": cmd_export, "labels": cmd_labels, "eval": cmd_eval, "grid": cmd_grid}[a.cmd](a)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Single-source evaluation clips for the listening tests and benchmark.

From the built dataset's manifest (`make dataset`), for every class: the first real
(non-synthetic) test-split recording by id; its loudest 3 s (by RMS over 0.5 s steps), 16 kHz
mono, peak-normalised to -3 dBFS (shorter ones placed 0.5 s into -60 dBFS noise), written as FLAC to Tests/ListeningTests/Fixtures/clips/.
clips.json records class, file, source package and path, and license for each clip.
The test split never trains any model, so these clips are held out from training.
Run: .venv/bin/python tools/make_listening_clips.py [--data data]
"""
import argparse
import csv
import json
import os
import re

import numpy as np
import soundfile as sf

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="data")
ap.add_argument("--out", default="Tests/ListeningTests/Fixtures/clips")
ap.add_argument("--seconds", type=float, default=3.0)
a = ap.parse_args()

classes = [c["name"] for c in json.load(open("Assets/classes.json"))["classes"]]
rows = [r for r in csv.DictReader(open(os.path.join(a.data, "manifest.csv")))
        if r["kind"] == "audio" and r["split"] == "test" and r["synthetic"] == "0"]
os.makedirs(a.out, exist_ok=True)
out = []
n = int(a.seconds * 16000)
for cls in classes:
    cand = sorted((r for r in rows if r["class"] == cls), key=lambda r: r["id"])
    if not cand:
        continue
    r = cand[0]
    x, sr = sf.read(os.path.join(a.data, r["path"]), dtype="float32")
    assert sr == 16000 and x.ndim == 1
    if len(x) > n:
        step = 8000
        starts = range(0, len(x) - n + 1, step)
        best = max(starts, key=lambda s: float(np.mean(x[s:s + n] ** 2)))
        x = x[best:best + n]
    x = x * (10 ** (-3 / 20) / max(1e-6, float(np.abs(x).max())))
    if len(x) < n:
        # Short recordings (a single bark) sit 0.5 s into quiet room noise (-60 dBFS RMS,
        # seeded), as they would in a live stream, so the analysis has whole windows to see.
        rng = np.random.default_rng(len(out))
        pad = (rng.standard_normal(max(n, len(x) + 8000)) * 1e-3).astype(np.float32)
        pad[8000:8000 + len(x)] += x
        x = pad[:max(n, len(x) + 8000)]
    slug = re.sub(r"[^a-z0-9]+", "_", cls.lower()).strip("_")
    fn = f"{slug}.flac"
    sf.write(os.path.join(a.out, fn), x, 16000, subtype="PCM_16", format="FLAC")
    out.append({"class": cls, "file": fn, "package": r["package"], "source_path": r["source_path"],
                "license": r["license"], "seconds": round(len(x) / 16000, 3)})
json.dump({"note": "single-source held-out clips (dataset test split); tools/make_listening_clips.py",
           "clips": out}, open(os.path.join(a.out, "clips.json"), "w"), indent=1)
print(f"{len(out)} clips, {sum(os.path.getsize(os.path.join(a.out, c['file'])) for c in out) / 1e6:.1f} MB")

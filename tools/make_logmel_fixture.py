#!/usr/bin/env python3
"""Golden fixture for the Swift log-mel test (Tests/FeaturesTests/Fixtures/).

A real recording (Debian `scratch`, usr/share/scratch/Media/Sounds/Animal/WolfHowl.wav,
CC-BY-SA-3.0, MIT Media Lab), first 2 s, downmixed and resampled to 16 kHz with
scipy.signal.resample_poly, then tools/frontend.py's numpy log-mel.

Writes little-endian float32 raw files plus a JSON description:
  wolf_16k.f32      [N]        16 kHz mono waveform (the Swift test's input)
  wolf_logmel.f32   [T, 64]    reference frames, T = 1 + (N - 400) // 160
  logmel.json      shapes, source, license
Run by `make logmel-fixture` (needs the scratch package, fetched by `make yamnet-fixtures`).
"""
import argparse
import json
import os
import sys
from math import gcd

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import frontend  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--sounds", required=True, help="scratch's Media/Sounds folder")
ap.add_argument("--out", default="Tests/FeaturesTests/Fixtures")
a = ap.parse_args()

x, sr = sf.read(os.path.join(a.sounds, "Animal/WolfHowl.wav"), dtype="float32", always_2d=True)
x = x.mean(axis=1)
g = gcd(sr, frontend.SAMPLE_RATE)
y = resample_poly(x, frontend.SAMPLE_RATE // g, sr // g).astype(np.float32)[: 2 * frontend.SAMPLE_RATE]
# The reference is computed in float64 from the float32 samples (tools/frontend.py's definition,
# evaluated without float32 rounding), so the Swift test measures its own error, not numpy's:
# numpy's float32 path itself differs from the float64 result by up to ~5e-4 on quiet frames.
x64 = y.astype(np.float64)
n = 1 + (len(x64) - frontend.WIN) // frontend.HOP
idx = np.arange(frontend.WIN)[None, :] + frontend.HOP * np.arange(n)[:, None]
win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frontend.WIN) / frontend.WIN)
mag = np.abs(np.fft.rfft(x64[idx] * win, n=frontend.NFFT, axis=1))
frames = np.log(mag @ frontend.mel_matrix().astype(np.float64) + frontend.LOG_OFFSET).astype(np.float32)
assert np.abs(frames - frontend.log_mel(y)).max() < 1e-3  # same definition as the float32 path
os.makedirs(a.out, exist_ok=True)
y.astype("<f4").tofile(os.path.join(a.out, "wolf_16k.f32"))
frames.astype("<f4").tofile(os.path.join(a.out, "wolf_logmel.f32"))
with open(os.path.join(a.out, "logmel.json"), "w") as f:
    json.dump({"samples": int(len(y)), "frames": int(frames.shape[0]), "bands": int(frames.shape[1]),
               "source": "Debian scratch: usr/share/scratch/Media/Sounds/Animal/WolfHowl.wav (first 2 s)",
               "license": "CC-BY-SA-3.0 (Scratch media, MIT Media Lab)",
               "reference": "tools/frontend.py definition evaluated in float64"}, f, indent=1)
print(f"wrote {len(y)} samples, {frames.shape} frames to {a.out}")

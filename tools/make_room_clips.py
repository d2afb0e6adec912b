#!/usr/bin/env python3
"""The held-out listening clips as a room would deliver them, for `avgas-bench listening --clips`.

Each clip of Tests/ListeningTests/Fixtures/clips is convolved with a synthetic room impulse
response (a direct sound, then exponentially decaying noise with the given RT60, starting
`--predelay` later: the usual statistical model of late reverberation), mixed with the
reverberant part at a direct-to-reverberant ratio `--drr` dB (lower = microphone farther from the
source), and pink noise (a ventilated room, a crowd far away) runs `--snr` dB below the
reverberant clip's RMS. Peak-normalised to -3 dBFS like the originals; seeded, so the output is
reproducible. Nothing here trains or tunes anything: the clips only measure how the shipped
listening settings degrade away from close, clean recordings.

Writes to --out, per clip, the plain version (FILE) and an onset version (FILE with "_onset":
the room's noise alone for 2 s, then the clip, one continuous noise), and a clips.json whose
entries name both with the onset time taken from the clean clip (the benchmark's rule: the
first 10 ms frame above -40 dBFS RMS), so that the room's noise is not mistaken for the source.

Run: .venv/bin/python tools/make_room_clips.py --out out/room_clips [--rt60 0.6 --drr 0 --snr 20]
then: .build/release/avgas-bench listening --clips out/room_clips
"""
import argparse
import json
import os

import numpy as np
from scipy.signal import fftconvolve

SR = 16000
LEAD = 2 * SR            # the benchmark's 2 s before each onset clip


def room_ir(rng, rt60: float, drr_db: float, predelay: float) -> np.ndarray:
    """Unit direct impulse + exponentially decaying Gaussian tail (-60 dB after rt60 seconds),
    the tail's energy set `drr_db` below the direct sound's, silent for `predelay` seconds (at
    least one sample, so the direct sound stays a unit impulse)."""
    if not rt60 > 0:
        raise ValueError(f"rt60 must be positive (got {rt60})")
    n = int(SR * (predelay + rt60 * 1.2))
    t = np.arange(n) / SR
    tail = rng.standard_normal(n) * np.exp(-6.908 * t / rt60)   # amplitude: ln(1000) = 60 dB of energy
    tail[: max(1, int(SR * predelay))] = 0
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail ** 2))
    tail[0] += 1.0
    return tail


def pink(rng, n: int) -> np.ndarray:
    """Pink (1/f) noise by shaping white noise in the frequency domain, unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return x / np.sqrt(np.mean(x ** 2))


def through_room(x: np.ndarray, rng, rt60: float, drr_db: float, predelay: float, snr_db: float,
                 lead: int = 0) -> np.ndarray:
    """`x` as a microphone in the room hears it, after `lead` samples of the room's noise alone:
    convolved with `room_ir`, pink noise `snr_db` below the reverberant clip's RMS throughout,
    peak-normalised to -3 dBFS. Float64, `lead + len(x)` samples."""
    y = fftconvolve(np.asarray(x, np.float64), room_ir(rng, rt60, drr_db, predelay))[: len(x)]
    rms = np.sqrt(np.mean(y ** 2))
    y = np.concatenate([np.zeros(lead), y]) + pink(rng, lead + len(y)) * rms * 10 ** (-snr_db / 20)
    return y * 10 ** (-3 / 20) / max(np.max(np.abs(y)), 1e-9)


def onset_sample(clip: np.ndarray) -> int:
    """The benchmark's onset: the first 10 ms frame whose RMS exceeds 0.01 (-40 dBFS), in
    float32 as ListeningBench.swift computes it (0 when none does)."""
    n = len(clip) // 160
    fr = np.asarray(clip[:n * 160], np.float32).reshape(n, 160)
    hit = np.nonzero(np.sqrt((fr * fr).sum(1, dtype=np.float32) / np.float32(160)) > 0.01)[0]
    return int(hit[0]) * 160 if len(hit) else 0


def main():
    import soundfile as sf
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", default="Tests/ListeningTests/Fixtures/clips")
    ap.add_argument("--out", required=True)
    ap.add_argument("--rt60", type=float, default=0.6, help="reverberation time in seconds (default 0.6: a living room or small hall)")
    ap.add_argument("--drr", type=float, default=0.0, help="direct-to-reverberant ratio in dB (default 0: about the critical distance)")
    ap.add_argument("--predelay", type=float, default=0.01, help="seconds from the direct sound to the tail (default 0.01)")
    ap.add_argument("--snr", type=float, default=20.0, help="pink noise this many dB below the clip's RMS (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if not a.rt60 > 0 or a.predelay < 0:
        ap.error("--rt60 must be positive and --predelay not negative")
    meta = json.load(open(os.path.join(a.clips, "clips.json")))
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    for c in meta["clips"]:
        x, sr = sf.read(os.path.join(a.clips, c["file"]), dtype="float64")
        assert sr == SR and x.ndim == 1, c["file"]
        y = through_room(x, rng, a.rt60, a.drr, a.predelay, a.snr, lead=LEAD)
        stem, ext = os.path.splitext(c["file"])
        c["onset_file"] = f"{stem}_onset{ext}"
        c["onset_s"] = (LEAD + onset_sample(x)) / SR
        sf.write(os.path.join(a.out, c["file"]), y[LEAD:].astype(np.float32), SR, subtype="PCM_16")
        sf.write(os.path.join(a.out, c["onset_file"]), y.astype(np.float32), SR, subtype="PCM_16")
    meta = dict(meta, note=f"{meta.get('note', '')}; room version: RT60 {a.rt60} s, DRR {a.drr} dB, "
                           f"pink noise {a.snr} dB below, seed {a.seed} (tools/make_room_clips.py)")
    json.dump(meta, open(os.path.join(a.out, "clips.json"), "w"), indent=1)
    print(f"wrote {len(meta['clips'])} clips (plain and onset versions) to {a.out}")


if __name__ == "__main__":
    main()

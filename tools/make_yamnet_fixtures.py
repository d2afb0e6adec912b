#!/usr/bin/env python3
"""Golden fixtures for the Swift YAMNet parity test (Tests/ListeningTests/Fixtures/yamnet_golden.safetensors).

Real recordings from Debian's `scratch` package (usr/share/scratch/Media/Sounds, CC-BY-SA-3.0,
MIT Media Lab) -> 16 kHz mono (scipy resample_poly) -> tools/frontend.py log-mel -> one 96x64
patch per (file, start) below (zero-padded at the end when the file is shorter than 0.96 s)
-> the float ONNX graph written by tools/convert_yamnet.py, run by onnxruntime (1 thread).

Output tensors: patches [N,96,64], embeddings [N,1024], logits [N,521] (float32), metadata
`sources` (JSON list of {file, start_s}) and the float graph's sha256. Run by `make yamnet-fixtures`.
"""
import argparse
import hashlib
import json
import os
import sys
from math import gcd

import numpy as np
import onnxruntime as ort
import soundfile as sf
from scipy.signal import resample_poly

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import frontend  # noqa: E402
import safetensors_io  # noqa: E402

# (file under Media/Sounds, start in seconds): 24 patches, 20 recordings, many AudioSet families.
CHOICES = [
    ("Animal/Dog1.wav", 0.0), ("Animal/Meow.wav", 0.0), ("Animal/Duck.wav", 0.0),
    ("Animal/Rooster.wav", 0.0), ("Animal/Owl.wav", 0.0), ("Animal/Bird.wav", 0.0),
    ("Animal/Crickets.wav", 0.5), ("Animal/Crickets.wav", 2.5), ("Animal/WolfHowl.wav", 1.0),
    ("Animal/Horse.wav", 0.0), ("Animal/Goose.wav", 0.0), ("Effects/CarPassing.wav", 3.0),
    ("Effects/MotorcyclePassing.wav", 3.0), ("Effects/BellToll.wav", 0.0), ("Effects/BellToll.wav", 2.0),
    ("Instruments/Trumpet1.wav", 0.5), ("Instruments/GuitarStrum.wav", 0.0), ("Human/PartyNoise.wav", 1.0),
    ("Human/Laugh-male1.wav", 0.0), ("Human/Cough-male.wav", 0.0), ("Percussion/Gong.wav", 1.0),
    ("Percussion/DrumBuzz.wav", 0.0), ("Vocals/Singer1.wav", 0.5), ("Effects/Bubbles.wav", 1.0),
]


def load_16k(path):
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    g = gcd(sr, frontend.SAMPLE_RATE)
    return resample_poly(x, frontend.SAMPLE_RATE // g, sr // g).astype(np.float32)


def patch_at(wave, start_s):
    need = frontend.WIN + frontend.HOP * (frontend.PATCH_FRAMES - 1)   # 15,600 samples -> 96 frames
    seg = wave[int(round(start_s * frontend.SAMPLE_RATE)):][:need]
    seg = np.pad(seg, (0, need - len(seg)))
    frames = frontend.log_mel(seg)
    assert frames.shape == (frontend.PATCH_FRAMES, frontend.N_MELS), frames.shape
    return frames


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sounds", required=True, help="extracted scratch package: .../usr/share/scratch/Media/Sounds")
    ap.add_argument("--float-onnx", default=".build/models/yamnet_float.onnx")
    ap.add_argument("--classes", default="Assets/models/yamnet_classes.txt")
    ap.add_argument("--out", default="Tests/ListeningTests/Fixtures/yamnet_golden.safetensors")
    args = ap.parse_args()

    patches = np.stack([patch_at(load_16k(os.path.join(args.sounds, f)), s) for f, s in CHOICES])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(args.float_onnx, opts, providers=["CPUExecutionProvider"])
    logits, embeddings = [], []
    for p in patches:
        out = sess.run(["class_scores", "embedding"], {"audio": p[None, None]})
        logits.append(out[0][0])
        embeddings.append(out[1][0])
    logits, embeddings = np.stack(logits), np.stack(embeddings)
    names = open(args.classes).read().splitlines()
    for (f, s), l in zip(CHOICES, logits):
        top = np.argsort(-l)[:3]
        print(f"{f:32s} {s:4.1f}s  " + ", ".join(f"{names[i]} {1 / (1 + np.exp(-l[i])):.2f}" for i in top))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    digest = hashlib.sha256(open(args.float_onnx, "rb").read()).hexdigest()
    safetensors_io.save(args.out, {"patches": patches, "embeddings": embeddings, "logits": logits}, {
        "sources": json.dumps([{"file": f, "start_s": s} for f, s in CHOICES]),
        "recordings": "Debian package scratch 1.4.0.6~dfsg1-6.1, usr/share/scratch/Media/Sounds, CC-BY-SA-3.0",
        "reference": f"onnxruntime {ort.__version__} on the float YAMNet graph (sha256 {digest})",
        "frontend": "tools/frontend.py",
    })
    print(f"wrote {args.out}: {len(patches)} patches")


if __name__ == "__main__":
    main()

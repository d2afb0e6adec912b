#!/usr/bin/env python3
"""Times one generator student step (denoiser + decoder) in PyTorch on the same exported
weights the Swift program runs (Assets/models/generator.safetensors), batch 1; prints JSON.
Called by `avgas-bench live` so both run side by side on one machine.
Networks are rebuilt from the file's own program metadata with training/generator/arch.py's
ProgramNet (the PyTorch reference interpreter of the same op list).
Output: {"torch": version, "results": [{"threads": t, "denoiser_ms": .., "decoder_ms": .., "step_ms": ..}]}
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import safetensors_io  # noqa: E402
from training.generator import arch  # noqa: E402


def build(tensors, meta, net):
    steps = json.loads(meta[f"{net}.program"])
    params = {k[len(net) + 1:]: tuple(v.shape) for k, v in tensors.items() if k.startswith(net + ".")}
    m = arch.ProgramNet(steps, params, meta[f"{net}.output"])
    m.load_numpy({k: tensors[f"{net}.{k}"] for k in params})
    return m.eval()


def median_ms(fn, n, warm=5):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=os.path.join(ROOT, "Assets/models/generator.safetensors"))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--iterations", type=int, default=50)
    a = ap.parse_args()
    tensors, meta = safetensors_io.load(a.weights)
    den, dec = build(tensors, meta, "denoiser"), build(tensors, meta, "decoder")
    shape = json.loads(meta["latent_shape"])
    emb_dim = int(meta["emb_dim"])
    x = torch.randn((1, *shape))
    e = torch.nn.functional.normalize(torch.randn(1, emb_dim), dim=-1)
    t = torch.tensor([0.25])
    out = []
    with torch.no_grad():
        for th in [int(v) for v in a.threads.split(",")]:
            torch.set_num_threads(th)
            dn = median_ms(lambda: den(x=x, t=t, emb=e), a.iterations)
            dc = median_ms(lambda: dec(z=x), a.iterations)
            st = median_ms(lambda: dec(z=x + 0.75 * den(x=x, t=t, emb=e)), a.iterations)
            out.append({"threads": th, "denoiser_ms": dn, "decoder_ms": dc, "step_ms": st})
    print(json.dumps({"torch": torch.__version__, "results": out}))


if __name__ == "__main__":
    main()

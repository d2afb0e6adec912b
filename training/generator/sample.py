"""Reference inference of the exported generator: the rules the Swift port implements.

Flow convention: x_t = (1 - t) * noise + t * data, t in [0, 1]; the denoiser returns a
velocity v ~ data - noise for (x, t, emb).

One student step (the live program's unit of work), from time t to t_next:
    v       = denoiser(x, t, emb)
    x_next  = x + (t_next - t) * v              # next state
    x1_hat  = x + (1 - t) * v                   # current clean estimate (== x_next on the last step)
    preview = decoder(x1_hat)                   # RGB [3, 128, 128] in [0, 1]
Schedule for n steps from start time t0: t_k = t0 + (1 - t0) * k / n, k = 0..n.
  fresh start:  x = noise ~ N(0, I) (shape [8, 16, 16]), t0 = 0, n = steps (default 4).
  re-noise (embedding drift, or continuous refresh) with strength s in (0, 1]:
                t0 = 1 - s, x = t0 * z + (1 - t0) * noise, where z = the slot's last x1_hat,
                n = max(1, ceil(steps * s)).
  retrieval:    z = exemplar latent (see `retrieve`), same rule with s = retrieval strength.
Embeddings are L2-normalised before use; a zero embedding means "unconditional".
"""
from __future__ import annotations

import math

import numpy as np
import torch


def schedule(t0: float, n: int):
    return [t0 + (1.0 - t0) * k / n for k in range(n + 1)]


@torch.no_grad()
def student_step(net, dec, x, t, t_next, emb, decode=True):
    tt = torch.full((len(x),), float(t))
    v = net(x=x, t=tt, emb=emb)
    x_next = x + (t_next - t) * v
    x1_hat = x + (1.0 - t) * v
    return x_next, x1_hat, (dec(z=x1_hat) if decode else None)


@torch.no_grad()
def student_sample(net, dec, emb, steps, noise=None, start=None, strength=1.0, generator=None,
                   latent_shape=(8, 16, 16), decode=True):
    """Runs the student from noise (start None) or from a partially re-noised latent `start`."""
    B = len(emb)
    if noise is None:
        noise = torch.randn((B,) + tuple(latent_shape), generator=generator)
    if start is None:
        t0, n = 0.0, steps
        x = noise
    else:
        t0 = 1.0 - strength
        n = max(1, math.ceil(steps * strength))
        x = t0 * start + (1.0 - t0) * noise
    ts = schedule(t0, n)
    x1 = x
    for k in range(n):
        x, x1, _ = student_step(net, dec, x, ts[k], ts[k + 1], emb, decode=False)
    return (dec(z=x1) if decode else None), x1


@torch.no_grad()
def teacher_sample(net, dec, emb, steps, w, noise=None, generator=None, latent_shape=(8, 16, 16)):
    from .train import teacher_sample as ts
    if noise is None:
        noise = torch.randn((len(emb),) + tuple(latent_shape), generator=generator)
    z = ts(net, emb, noise, steps, w)
    return dec(z=z), z


def retrieve(emb, bank_emb, bank_cls=None, cls=None, top_k=3, rng=None):
    """Index of an exemplar for `emb` (L2-normalised): among the bank entries of class `cls`
    (all entries if None or absent), the top_k by cosine similarity; one of them drawn
    uniformly (rng), or the best when rng is None."""
    cand = np.arange(len(bank_emb))
    if cls is not None and bank_cls is not None and np.any(bank_cls == cls):
        cand = cand[bank_cls == cls]
    sims = bank_emb[cand] @ emb
    order = cand[np.argsort(-sims)][:top_k]
    return int(order[0] if rng is None else order[rng.integers(len(order))])


def mixture_embedding(embs, weights):
    """Paper-style mixed image input: L2-normalised presence-weighted sum of the separated
    embeddings of the active classes."""
    e = (np.asarray(weights, np.float32)[:, None] * np.asarray(embs, np.float32)).sum(0)
    return e / max(np.linalg.norm(e), 1e-8)

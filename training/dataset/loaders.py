"""Loader API for training code (audio clips, images, augmentation, mixtures).

Layout (see training/README.md): <root>/manifest.csv, <root>/audio/<class_slug>/*.wav
(16 kHz mono 16-bit), <root>/images/<class_slug>/*.png (128x128 RGB),
<root>/mixtures/eval_{1,2,3}src/{mixtures.jsonl, <id>.wav}.

    from training.dataset import loaders
    ds = loaders.Dataset("data")                     # or any folder with a manifest.csv
    rows = ds.rows(kind="audio", split="train", cls="dog barking")
    x = ds.load_clip(rows[0])                        # float32 [n] at 16 kHz
    img = ds.load_image(ds.rows(kind="image")[0])    # uint8 [128, 128, 3]
    rng = np.random.default_rng(0)
    y = augment_audio(x, rng); im2 = augment_image(img, rng)
    mix = ds.sample_mixture(rng, n_sources=2, split="train", seconds=4.0)
    mix["audio"], mix["classes"], mix["sources"]     # mixture, class names, per-source info

Folders without a manifest (your own recordings or VGGSound exported to
<root>/audio/<class>/*.wav and <root>/images/<class>/*.png) work too:
`Dataset.from_folders(root)` builds an in-memory manifest with a split per file hash.
"""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from scipy.signal import fftconvolve, lfilter, resample_poly

from . import audio

SR = audio.SR

# Mixture gain policy: a reference level drawn in [LEVEL_MIN, LEVEL_MAX] dBFS; each
# source within +-REL_DB/2 of it (so sources are within REL_DB dB of each other).
LEVEL_MIN, LEVEL_MAX, REL_DB = -32.0, -18.0, 6.0
NOISE_SNR_DB = (15.0, 35.0)   # background noise below the mixture level


class Dataset:
    def __init__(self, root: Union[str, Path], manifest: Optional[List[dict]] = None):
        self.root = Path(root)
        if manifest is None:
            with open(self.root / "manifest.csv", newline="") as f:
                manifest = list(csv.DictReader(f))
        self.manifest = manifest
        self.classes = sorted({r["class"] for r in manifest})

    @classmethod
    def from_folders(cls, root: Union[str, Path], val: float = 0.15, test: float = 0.15) -> "Dataset":
        """Index <root>/audio/<class>/* and <root>/images/<class>/* (class = folder name)."""
        root = Path(root)
        rows = []
        for kind, sub, exts in (("audio", "audio", (".wav", ".flac", ".ogg", ".mp3")),
                                ("image", "images", (".png", ".jpg", ".jpeg", ".webp"))):
            for p in sorted((root / sub).glob("*/*")):
                if p.suffix.lower() not in exts:
                    continue
                u = int(hashlib.sha1(p.name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
                split = "test" if u < test else "val" if u < test + val else "train"
                rel = p.relative_to(root).as_posix()
                rows.append({"id": rel, "kind": kind, "class": p.parent.name, "split": split,
                             "path": rel, "package": "", "source_path": rel, "license": "",
                             "original_id": rel, "split_group": rel, "synthetic": "0", "duration_s": ""})
        return cls(root, rows)

    def rows(self, kind: Optional[str] = None, split: Optional[str] = None,
             cls: Optional[str] = None, real_only: bool = False) -> List[dict]:
        return [r for r in self.manifest
                if (kind is None or r["kind"] == kind) and (split is None or r["split"] == split)
                and (cls is None or r["class"] == cls)
                and (not real_only or str(r.get("synthetic", "0")) in ("0", "", "False"))]

    def load_clip(self, row: dict) -> np.ndarray:
        return audio.load_16k(self.root / row["path"])

    def load_image(self, row: dict) -> np.ndarray:
        from PIL import Image
        return np.asarray(Image.open(self.root / row["path"]).convert("RGB"))

    def sample_mixture(self, rng: np.random.Generator, n_sources: int = 2, split: str = "train",
                       seconds: float = 4.0, augment: bool = True, noise: bool = True,
                       keep_parts: bool = False) -> dict:
        """Draw n_sources clips of different classes from `split` and mix them (keep_parts: see
        make_mixture)."""
        by_cls: Dict[str, List[dict]] = {}
        for r in self.rows(kind="audio", split=split):
            by_cls.setdefault(r["class"], []).append(r)
        names = sorted(by_cls)
        if len(names) < n_sources:
            raise ValueError(f"split {split!r} has only {len(names)} classes with audio")
        picked = rng.choice(len(names), size=n_sources, replace=False)
        rows = [by_cls[names[i]][int(rng.integers(len(by_cls[names[i]])))] for i in picked]
        clips = [self.load_clip(r) for r in rows]
        if augment:
            clips = [augment_audio(c, rng) for c in clips]
        m = make_mixture(clips, rng, seconds=seconds, noise=noise, keep_parts=keep_parts)
        m["classes"] = [r["class"] for r in rows]
        for s, r in zip(m["sources"], rows):
            s.update({"id": r["id"], "class": r["class"]})
        return m


# ------------------------------------------------------------------ audio augmentation

def augment_audio(x: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Random gain (+-6 dB), speed/pitch shift (+-2 semitones, resampling), band filter,
    synthetic room reverb, random crop (keeps >= 1 s). Each applied with probability p."""
    y = np.asarray(x, dtype=np.float64)
    if rng.random() < p and len(y) > SR:
        n = int(rng.integers(SR, len(y) + 1))
        s = int(rng.integers(0, len(y) - n + 1))
        y = y[s:s + n]
    if rng.random() < p:
        semis = rng.uniform(-2, 2)
        up = 100
        down = int(round(100 * 2 ** (semis / 12)))
        y = resample_poly(y, up, max(1, down))
    if rng.random() < p:
        y = one_pole_filter(y, rng)
    if rng.random() < p:
        y = reverb(y, rng)
    if rng.random() < p:
        y = y * 10 ** (rng.uniform(-6, 6) / 20)
    return y.astype(np.float32)


def one_pole_filter(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    a = rng.uniform(0.3, 0.9)
    if rng.random() < 0.5:   # low-pass
        return lfilter([1 - a], [1, -a], y)
    return y - lfilter([1 - a], [1, -a], y)   # high-pass (complement)


def reverb(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    t60 = rng.uniform(0.2, 0.9)
    n = int(t60 * SR)
    ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    ir[0] = 1.0
    ir /= np.sqrt(np.sum(ir ** 2))
    wet = fftconvolve(y, ir)[:len(y)]
    mix = rng.uniform(0.1, 0.5)
    return (1 - mix) * y + mix * wet


# ------------------------------------------------------------------ mixtures

def make_mixture(clips: Sequence[np.ndarray], rng: np.random.Generator, seconds: float = 4.0,
                 noise: bool = True, level_db: Optional[float] = None, keep_parts: bool = False) -> dict:
    """Mix clips into one `seconds` long signal.

    Each source: looped if shorter than 1 s of the window, placed at a random offset
    (0..50% of the window, clipped to fit), levelled to ref + U(-REL_DB/2, REL_DB/2) dB
    active RMS where ref ~ U(LEVEL_MIN, LEVEL_MAX). Optional pink-ish background noise at
    U(15, 35) dB below ref. Returns {"audio", "sources": [{"offset_s", "gain_db", "level_db",
    "length_s"}], "noise_db"}; the sum is scaled down if it would clip. With keep_parts, also
    "stems" [S, n] (each levelled source in place), "noise" [n] (zeros without noise) and "scale"
    (the peak scaling): audio == (stems.sum(0) + noise) * scale, same draws from rng."""
    n = int(round(seconds * SR))
    ref = rng.uniform(LEVEL_MIN, LEVEL_MAX) if level_db is None else level_db
    out = np.zeros(n, dtype=np.float64)
    info, stems = [], []
    for c in clips:
        c = np.asarray(c, dtype=np.float64)
        if len(c) == 0:
            raise ValueError("empty clip")
        if len(c) > n:
            s = int(rng.integers(0, len(c) - n + 1))
            c = c[s:s + n]
        off = int(rng.integers(0, max(1, min(n - len(c), n // 2) + 1)))
        lvl = ref + rng.uniform(-REL_DB / 2, REL_DB / 2)
        g = 10 ** ((lvl - audio.active_rms_db(c)) / 20)
        seg = c[:n - off] * g
        out[off:off + len(seg)] += seg
        if keep_parts:
            stems.append(np.zeros(n))
            stems[-1][off:off + len(seg)] = seg
        info.append({"offset_s": off / SR, "gain_db": float(20 * np.log10(g)),
                     "level_db": float(lvl), "length_s": len(seg) / SR})
    noise_db, w = None, np.zeros(n)
    if noise:
        noise_db = float(ref - rng.uniform(*NOISE_SNR_DB))
        w = lfilter([1.0], [1.0, -0.95], rng.standard_normal(n))
        w *= 10 ** ((noise_db - audio.rms_db(w)) / 20)
        out += w
    pk = np.abs(out).max()
    scale = 0.98 / pk if pk > 0.98 else 1.0
    out *= scale
    m = {"audio": out.astype(np.float32), "sources": info, "noise_db": noise_db, "level_db": float(ref)}
    if keep_parts:
        m.update(stems=np.array(stems), noise=w, scale=scale)
    return m


def eval_set_draws(ds: Dataset, n: int, n_sources: int, seed: int, split: str = "test",
                   seconds: float = 4.0, keep_parts: bool = False):
    """The n mixtures of a fixed evaluation set, in order, from one generator seeded with `seed`
    (write_eval_set writes these; keep_parts=True gives the same mixtures with their parts apart,
    see make_mixture)."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield ds.sample_mixture(rng, n_sources=n_sources, split=split, seconds=seconds,
                                augment=False, noise=True, keep_parts=keep_parts)


def write_eval_set(ds: Dataset, dest: Path, n: int, n_sources: int, seed: int,
                   split: str = "test", seconds: float = 4.0) -> int:
    """Write a fixed evaluation set: dest/mixtures.jsonl + dest/<id>.wav (no augmentation).
    Returns how many mixtures were written (0 when the split has too few classes)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    classes = {r["class"] for r in ds.rows(kind="audio", split=split)}
    lines = []
    if len(classes) >= n_sources:
        for i, m in enumerate(eval_set_draws(ds, n, n_sources, seed, split, seconds)):
            mid = f"mix{n_sources}_{i:04d}"
            audio.write_wav16(dest / f"{mid}.wav", m["audio"])
            lines.append(json.dumps({"id": mid, "path": f"{mid}.wav", "classes": m["classes"],
                                     "sources": m["sources"], "noise_db": m["noise_db"],
                                     "level_db": m["level_db"], "seconds": seconds},
                                    sort_keys=True))
    (dest / "mixtures.jsonl").write_text("\n".join(lines) + ("\n" if lines else ""))
    return len(lines)


def load_eval_set(path: Union[str, Path]) -> List[dict]:
    """Read mixtures.jsonl of an evaluation set; each item gets "audio" loaded lazily via
    `audio.load_16k(Path(path)/item["path"])`."""
    p = Path(path)
    return [json.loads(l) for l in (p / "mixtures.jsonl").read_text().splitlines() if l.strip()]


# ------------------------------------------------------------------ image augmentation

def augment_image(img: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Random horizontal flip, random resized crop (80-100% side, back to the input size)
    and colour jitter (brightness/contrast/saturation +-20%). uint8 HxWx3 in and out."""
    from PIL import Image
    y = np.asarray(img)
    H, W = y.shape[:2]
    if rng.random() < p:
        y = y[:, ::-1]
    if rng.random() < p:
        s = rng.uniform(0.8, 1.0)
        h, w = int(H * s), int(W * s)
        t, l = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        y = np.asarray(Image.fromarray(np.ascontiguousarray(y[t:t + h, l:l + w])).resize((W, H), Image.BILINEAR))
    if rng.random() < p:
        f = y.astype(np.float32)
        f = f * rng.uniform(0.8, 1.2)
        m = f.mean()
        f = (f - m) * rng.uniform(0.8, 1.2) + m
        g = f.mean(axis=2, keepdims=True)
        f = (f - g) * rng.uniform(0.8, 1.2) + g
        y = np.clip(f, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(y)

"""Audio features for the separator (issue 5, step 2): frozen YAMNet (the float ONNX graph that the
Swift engine matches, .build/models/yamnet_float.onnx, run by onnxruntime) on log-mel patches from
tools/frontend.py.

Training cache (`python -m training.avgas.features train`): random training windows of one YAMNet
patch (96 frames = 15,600 samples = 0.975 s) mixed from 0-3 sources of the train (or val) split with
the dataset loaders' augmentation (training.dataset.loaders.augment_audio) and their level policy
(reference level U(LEVEL_MIN, LEVEL_MAX) dBFS, each source within +-REL_DB/2, pink-ish background
noise NOISE_SNR_DB below). Each source occupies a random part of the window (length 0.3 s .. full),
like the 4 s evaluation mixtures whose sources are often short. For every window we keep:
  mix_emb [N,1024], mix_logits [N,521]     YAMNet of the mixture patch
  stem_emb [N,3,1024]                      YAMNet of each source alone, same gain and placement
                                           (A2A target; zeros where no source)
  stem_cls [N,3] int16                     class index (Assets/classes.json order), -1 = none
Evaluation cache (`... eval`): each fixed test mixture (data/mixtures/eval_{1,2,3}src) cut into
patches every 48 frames (0.48 s): emb [M,P,1024], logits [M,P,521], and the class lists.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import frontend  # noqa: E402
import yamnet_onnx  # noqa: E402

from training.dataset import audio as dsaudio  # noqa: E402
from training.dataset import loaders  # noqa: E402

ONNX_PATH = ROOT / ".build/models/yamnet_float.onnx"
WIN_SAMPLES = frontend.WIN + (frontend.PATCH_FRAMES - 1) * frontend.HOP   # 15600
MAX_SRC = 3


class Yamnet:
    """onnxruntime session on the float YAMNet graph with a dynamic batch dimension."""

    def __init__(self, path=ONNX_PATH, threads: int = 1):
        self.sess = yamnet_onnx.session(yamnet_onnx.batchable(path), threads)

    def __call__(self, patches: np.ndarray, batch: int = 64):
        """[P,96,64] log-mel patches -> (emb [P,1024], logits [P,521]) float32."""
        logits, emb = yamnet_onnx.run(self.sess, patches, batch=batch)
        return emb, logits


def window_patch(x: np.ndarray) -> np.ndarray:
    """15,600-sample window -> [96, 64] log-mel patch."""
    fr = frontend.log_mel(x[:WIN_SAMPLES])
    return fr[:frontend.PATCH_FRAMES]


def clip_patches(x: np.ndarray, hop_frames: int = 48) -> np.ndarray:
    return frontend.patches(frontend.log_mel(x), hop_frames)


def class_index(path=ROOT / "Assets/classes.json"):
    names = [c["name"] for c in json.loads(Path(path).read_text())["classes"]]
    return names, {n: i for i, n in enumerate(names)}


def _energetic_crop(x: np.ndarray, n: int, rng) -> np.ndarray:
    """A random n-sample crop of x biased to loud parts (best of 4 random crops by RMS)."""
    if len(x) <= n:
        return x
    best, be = None, -1.0
    for _ in range(4):
        s = int(rng.integers(0, len(x) - n + 1))
        e = float(np.mean(x[s:s + n] ** 2))
        if e > be:
            best, be = x[s:s + n], e
    return best


def make_window(clips_by_cls, names_in_split, cidx, rng, n_src: int):
    """One training window: (mix [W], stems list of [W], class indices)."""
    W = WIN_SAMPLES
    picked = rng.choice(len(names_in_split), size=n_src, replace=False) if n_src else []
    ref = rng.uniform(loaders.LEVEL_MIN, loaders.LEVEL_MAX)
    stems, cls = [], []
    for i in picked:
        name = names_in_split[int(i)]
        pool = clips_by_cls[name]
        c = pool[int(rng.integers(len(pool)))]
        c = _energetic_crop(c, 2 * W, rng)                 # keep augmentation cheap
        c = loaders.augment_audio(c, rng).astype(np.float64)
        L = W if rng.random() < 0.5 else int(rng.uniform(0.3, 1.0) * W)
        seg = _energetic_crop(c, L, rng)
        off = int(rng.integers(0, W - len(seg) + 1))
        lvl = ref + rng.uniform(-loaders.REL_DB / 2, loaders.REL_DB / 2)
        g = 10 ** ((lvl - dsaudio.active_rms_db(seg)) / 20)
        s = np.zeros(W)
        s[off:off + len(seg)] = seg * g
        stems.append(s)
        cls.append(cidx[name])
    mix = np.sum(stems, axis=0) if stems else np.zeros(W)
    from scipy.signal import lfilter
    noise_db = ref - rng.uniform(*loaders.NOISE_SNR_DB)
    w = lfilter([1.0], [1.0, -0.95], rng.standard_normal(W))
    w *= 10 ** ((noise_db - dsaudio.rms_db(w)) / 20)
    mix = mix + w
    pk = np.abs(mix).max()
    if pk > 0.98:
        k = 0.98 / pk
        mix *= k
        stems = [s * k for s in stems]
    return mix.astype(np.float32), [s.astype(np.float32) for s in stems], cls


def build_train_cache(data: str, split: str, n: int, seed: int, out: Path, threads: int = 1,
                      src_probs=(0.05, 0.30, 0.40, 0.25), chunk: int = 256, rank: int = 0, world: int = 1):
    """Resumable: writes chunks of `chunk` windows under <out>.parts/ (skipping those present; chunk k
    is seeded by (seed, k), so any process count gives the same data); process `rank` of `world`
    does chunks k % world == rank; whoever finds all chunks present merges them into `out`."""
    from tqdm import tqdm
    ds = loaders.Dataset(data)
    names, cidx = class_index()
    clips_by_cls = {}
    for r in ds.rows(kind="audio", split=split):
        clips_by_cls.setdefault(r["class"], []).append(ds.load_clip(r))
    split_names = sorted(clips_by_cls)
    yam = Yamnet(threads=threads)
    part_dir = out.with_suffix(".parts")
    part_dir.mkdir(parents=True, exist_ok=True)
    n_chunks = (n + chunk - 1) // chunk
    for k in tqdm(range(n_chunks), desc=f"windows {split}"):
        pf = part_dir / f"{k:05d}.npz"
        if pf.exists() or k % world != rank:
            continue
        rng = np.random.default_rng([seed, k])
        m = min(chunk, n - k * chunk)
        mix_p, stem_p, stem_cls = [], [], np.full((m, MAX_SRC), -1, np.int16)
        stem_where = []
        for i in range(m):
            ns = int(rng.choice(4, p=src_probs))
            ns = min(ns, len(split_names))
            mix, stems, cls = make_window(clips_by_cls, split_names, cidx, rng, ns)
            mix_p.append(window_patch(mix))
            for j, (s, c) in enumerate(zip(stems, cls)):
                stem_p.append(window_patch(s))
                stem_where.append((i, j))
                stem_cls[i, j] = c
        me, ml = yam(np.stack(mix_p))
        se = np.zeros((m, MAX_SRC, 1024), np.float32)
        if stem_p:
            e, _ = yam(np.stack(stem_p))
            for (i, j), v in zip(stem_where, e):
                se[i, j] = v
        tmp = pf.with_name(pf.stem + ".tmp.npz")
        np.savez(tmp, mix_emb=me, mix_logits=ml, stem_emb=se.astype(np.float16), stem_cls=stem_cls)
        tmp.rename(pf)
    if not all((part_dir / f"{k:05d}.npz").exists() for k in range(n_chunks)):
        print(f"rank {rank}: done; waiting for other ranks to merge {out}")
        return
    parts = [np.load(part_dir / f"{k:05d}.npz") for k in range(n_chunks)]
    np.savez(out, **{key: np.concatenate([p[key] for p in parts]) for key in parts[0].files},
             classes=np.array(names), split=split, seed=seed)


def build_val_clip_cache(data: str, out: Path, threads: int = 1, n: int = 60):
    """Validation mixtures built like the fixed test sets (loaders.write_eval_set, 4 s, no
    augmentation) but from the val split, for choosing clip-level presence thresholds."""
    root = Path(out).parent / "val_mixtures"
    ds = loaders.Dataset(data)
    for k in (1, 2, 3):
        loaders.write_eval_set(ds, root / f"eval_{k}src", n=n, n_sources=k, seed=100 + k, split="val")
    build_eval_cache(data, out, threads, root=root)


def build_eval_cache(data: str, out: Path, threads: int = 1, hop_frames: int = 48, root=None):
    ds_root = Path(root) if root else Path(data) / "mixtures"
    names, cidx = class_index()
    yam = Yamnet(threads=threads)
    res = {}
    for k in (1, 2, 3):
        d = ds_root / f"eval_{k}src"
        items = loaders.load_eval_set(d)
        embs, logs, cls = [], [], []
        for it in items:
            x = dsaudio.load_16k(d / it["path"])
            e, l = yam(clip_patches(x, hop_frames))
            embs.append(e)
            logs.append(l)
            row = np.full(MAX_SRC, -1, np.int16)
            for j, c in enumerate(it["classes"]):
                row[j] = cidx[c]
            cls.append(row)
        P = min(len(e) for e in embs)
        res[f"emb{k}"] = np.stack([e[:P] for e in embs])
        res[f"logits{k}"] = np.stack([l[:P] for l in logs])
        res[f"cls{k}"] = np.stack(cls)
        res[f"ids{k}"] = np.array([it["id"] for it in items])
    np.savez(out, classes=np.array(names), hop_frames=hop_frames, **res)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["train", "eval", "valclips", "all"])
    ap.add_argument("--data", default="data")
    ap.add_argument("--out", default=None)
    ap.add_argument("--n-train", type=int, default=24000)
    ap.add_argument("--n-val", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--world", type=int, default=1)
    a = ap.parse_args(argv)
    out = Path(a.out or Path(a.data) / "features")
    out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    if a.what in ("eval", "all"):
        build_eval_cache(a.data, out / "audio_eval.npz", a.threads)
    if a.what in ("valclips", "all"):
        build_val_clip_cache(a.data, out / "audio_val_clips.npz", a.threads)
    if a.what in ("train", "all"):
        build_train_cache(a.data, "val", a.n_val, 1, out / "audio_val.npz", a.threads, rank=a.rank, world=a.world)
        build_train_cache(a.data, "train", a.n_train, 0, out / "audio_train.npz", a.threads, rank=a.rank, world=a.world)
    print(f"done in {time.time() - t:.0f} s")


if __name__ == "__main__":
    main()

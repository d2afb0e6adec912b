"""Training windows and per-clip features for the learned presence head (issue 3 / issue 5).

Windows (`python -m training.avgas.presence_data windows --split train`): "scenes" of 3 s built
from 0-3 recordings of one split (classes drawn uniformly, then a recording of the class), each
recording augmented like the dataset loaders do (training.dataset.loaders.augment_audio: crop,
pitch/speed, band filter, reverb, gain), levelled to a reference level U(-36, -12) dBFS
+- REL_DB/2, placed at a random offset (it may start before the scene, i.e. continue, or start
inside it: onsets), over background noise (pink-ish 15-35 dB below the reference, or white noise
at about -60 dBFS as in the benchmark's onset clips). The scene's log-mel frames are cut into
96-frame windows every 25 frames (0.25 s); for each window we keep YAMNet of the whole window
(emb96, logits96) and of its last 48 frames (emb48, logits48: the short-window detector; the
ONNX graph is fully convolutional up to a global average pool, so it accepts 48 frames).

Labels respect energy: a source is labelled present in a window only if, in the window's span
(last 48 frames for the short-window label), it has at least 5 frames (50 ms) whose level is above
both the background noise + 6 dB and the source's own peak - 35 dB. A short bark whose window
holds only silence is therefore not labelled present (the separator's presence head was trained
with the class label whatever the source's energy).

Clip features (`... clips --split val|test|train`): for every clip of tools/tune_listening.py's
clip sets (plain and onset versions), one hop every 5 frames as tune_listening.py caches, YAMNet
on the 96-frame window and on its last 32, 48 and 64 frames (emb + logits), cached under
data/cache/presence/.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
from scipy.signal import lfilter  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import frontend  # noqa: E402
import yamnet_onnx  # noqa: E402

from training.avgas.features import Yamnet as Yamnet96  # noqa: E402
from training.avgas.features import class_index  # noqa: E402
from training.dataset import audio as dsaudio  # noqa: E402
from training.dataset import loaders  # noqa: E402

CACHE = ROOT / "data/cache/presence"
SR = 16000
SCENE_S = 3.0
WIN_HOP = 25              # frames between training windows (0.25 s)
SHORTS = (32, 48, 64)     # short-window lengths cached for the clips
MIN_FRAMES = 5            # 50 ms of energy makes a source present in a window


class Yamnet(Yamnet96):
    """The float YAMNet graph (training.avgas.features.Yamnet) with dynamic batch AND time
    dimensions: the graph is convolutions + a global average pool, so a window of 32-96 frames
    works as is (ONNX keeps the fixed TF-SAME pads of the 96-frame export)."""

    def __init__(self, threads: int = 1, extra_outputs=()):
        import onnx
        m = self.model()
        for name in extra_outputs:   # intermediate tensors to return too (e.g. the pre-pool map)
            m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        self.onnx_model = m
        self.sess = yamnet_onnx.session(m, threads)

    @staticmethod
    def model():
        """The float ONNX graph with dynamic batch and time axes (the Reshape before the Gemm made
        batch-safe)."""
        from training.avgas.features import ONNX_PATH
        return yamnet_onnx.batchable(ONNX_PATH, dynamic_time=True)


def split_ids(split):
    """Real recordings of a split as frozen in training/avgas/presence_split.json (the split the
    committed listening test clips were cut from; see its note)."""
    return json.loads((ROOT / "training/avgas/presence_split.json").read_text())[split]


def split_tag(split):
    """Short hash of a split's recording list: cached windows (and heads trained on them) are named
    by it, so changing presence_split.json never reuses windows of another recording list."""
    return hashlib.sha1("\n".join(sorted(split_ids(split))).encode()).hexdigest()[:8]


def frame_db(x: np.ndarray) -> np.ndarray:
    """Level (dB) of the 10 ms frames that the front end's frames centre on: frame f covers
    samples f*160 .. f*160+400 (the 25 ms STFT window)."""
    n = max(0, (len(x) - frontend.WIN) // frontend.HOP + 1)
    idx = np.arange(n)[:, None] * frontend.HOP + np.arange(frontend.WIN)[None]
    e = np.mean(x[idx].astype(np.float64) ** 2, axis=1)
    return 10 * np.log10(e + 1e-20)


def make_scene(clips_by_cls, names, cidx, rng, n_src):
    n = int(SCENE_S * SR)
    ref = rng.uniform(-36.0, -12.0)
    picked = rng.choice(len(names), size=n_src, replace=False) if n_src else []
    stems, cls = [], []
    for i in picked:
        name = names[int(i)]
        pool = clips_by_cls[name]
        c = pool[int(rng.integers(len(pool)))]
        if len(c) > 3 * n:                       # keep augmentation cheap
            s = int(rng.integers(0, len(c) - 3 * n + 1))
            c = c[s:s + 3 * n]
        c = loaders.augment_audio(c, rng).astype(np.float64)
        lvl = ref + rng.uniform(-loaders.REL_DB / 2, loaders.REL_DB / 2)
        c = c * 10 ** ((lvl - dsaudio.active_rms_db(c)) / 20)
        # offset: continuing (starts before the scene) or an onset inside it
        if rng.random() < 0.4 or len(c) <= 0:
            off = int(rng.integers(-max(0, len(c) - SR // 2), 1)) if len(c) > SR // 2 else 0
        else:
            off = int(rng.integers(0, int(0.85 * n)))
        s = np.zeros(n)
        a, b = max(0, off), min(n, off + len(c))
        if b > a:
            s[a:b] = c[a - off:b - off]
        stems.append(s)
        cls.append(cidx[name])
    mix = np.sum(stems, axis=0) if stems else np.zeros(n)
    if rng.random() < 0.7:
        noise_db = ref - rng.uniform(*loaders.NOISE_SNR_DB)
        w = lfilter([1.0], [1.0, -0.95], rng.standard_normal(n))
    else:
        noise_db = -60.0 + rng.uniform(-6, 6)
        w = rng.standard_normal(n)
    w *= 10 ** ((noise_db - dsaudio.rms_db(w)) / 20)
    mix = mix + w
    pk = np.abs(mix).max()
    k = 0.98 / pk if pk > 0.98 else 1.0
    return (mix * k).astype(np.float32), [s * k for s in stems], cls, noise_db + 20 * np.log10(k)


def window_labels(stems, cls, noise_db, starts, n_classes, lo=0, hi=96):
    """[W, n_classes] uint8: source c is present in the window starting at frame s when it has at
    least MIN_FRAMES frames of energy (above the noise + 6 dB and its own peak - 35 dB) in the
    window's frames s+lo .. s+hi (lo=48: the last 48 frames, the short-window label)."""
    y = np.zeros((len(starts), n_classes), np.uint8)
    for s_audio, c in zip(stems, cls):
        db = frame_db(s_audio)
        ok = (db > noise_db + 6) & (db > db.max() - 35)
        for w, s in enumerate(starts):
            if ok[s + lo:s + hi].sum() >= MIN_FRAMES:
                y[w, c] = 1
    return y


def scene_patches(mix, stems, cls, noise_db, n_classes):
    """One scene's 96-frame windows every WIN_HOP frames and their labels: (patches [W, 96, 64],
    y96 [W, n_classes] uint8, starts)."""
    fr = frontend.log_mel(mix)
    starts = list(range(0, len(fr) - frontend.PATCH_FRAMES + 1, WIN_HOP))
    p96 = np.stack([fr[s:s + 96] for s in starts])
    return p96, window_labels(stems, cls, noise_db, starts, n_classes), starts


def scene_windows(mix, stems, cls, noise_db, yam, n_classes):
    """-> dict of per-window arrays for one scene."""
    p96, y96, starts = scene_patches(mix, stems, cls, noise_db, n_classes)
    p48 = np.ascontiguousarray(p96[:, -48:])
    e96, l96 = yam(p96)
    e48, l48 = yam(p48)
    y48 = window_labels(stems, cls, noise_db, starts, n_classes, lo=48)
    return dict(emb96=e96.astype(np.float16), logits96=l96.astype(np.float16),
                emb48=e48.astype(np.float16), logits48=l48.astype(np.float16), y96=y96, y48=y48)


def load_recordings(ids):
    """(vocabulary names, name -> index, {class: [16 kHz clips]}) for the audio ids `ids`, in
    manifest order (the order scene drawing depends on)."""
    ds = loaders.Dataset(str(ROOT / "data"))
    names, cidx = class_index()
    keep = set(ids)
    by = {}
    for r in ds.rows(kind="audio"):
        if r["id"] in keep:
            by.setdefault(r["class"], []).append(ds.load_clip(r))
    return names, cidx, by


def build_scene_chunks(ids, out_dir, scenes, seed, per_scene, part=0, parts=1, chunk=100, label="",
                       src_probs=(0.05, 0.40, 0.35, 0.20)):
    """Scenes of the recordings `ids` (0-3 sources drawn with `src_probs`; the draws of chunk k come
    from default_rng([seed, k]), so every builder over the same ids, scenes and seed sees the same
    scenes), chunks part::parts: per_scene(scene, index, n_src) -> {key: per-window array}, with
    scene = make_scene's (mix, stems, classes, noise_db); each chunk saved as out_dir/NNNN.npz
    (resumable). Returns (vocabulary names, number of chunks)."""
    names, cidx, by = load_recordings(ids)
    split_names = sorted(by)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_chunks = (scenes + chunk - 1) // chunk
    t0 = time.time()
    for k in range(part, n_chunks, parts):
        pf = out_dir / f"{k:04d}.npz"
        if pf.exists():
            continue
        rng = np.random.default_rng([seed, k])
        acc = {}
        for i in range(min(chunk, scenes - k * chunk)):
            ns = min(int(rng.choice(4, p=src_probs)), len(split_names))
            scene = make_scene(by, split_names, cidx, rng, ns)
            for key, v in per_scene(scene, k * chunk + i, ns).items():
                acc.setdefault(key, []).append(v)
        tmp = pf.with_name(pf.stem + ".tmp.npz")
        np.savez(tmp, **{key: np.concatenate(v) for key, v in acc.items()})
        tmp.rename(pf)
        print(f"{label} chunk {k + 1}/{n_chunks} ({time.time() - t0:.0f} s)", flush=True)
    return names, n_chunks


def build_windows(split: str, scenes: int, seed: int, chunk: int = 100,
                  src_probs=(0.05, 0.40, 0.35, 0.20), ids=None, name=None):
    """Windows of `scenes` scenes of the recordings of `split` (or of the explicit list `ids`,
    cached as windows_{name}: training/avgas/presence_refit.py's subsets and train + val)."""
    name = name or f"{split}_{split_tag(split)}"
    yam = Yamnet(threads=1)
    n_classes = len(class_index()[0])

    def per_scene(scene, index, n_src):
        w = scene_windows(*scene, yam, n_classes)
        n = len(w["y96"])
        return dict(w, scene=np.full(n, index, np.int32), nsrc=np.full(n, n_src, np.int8))
    part_dir = CACHE / f"windows_{name}.parts"
    names, n_chunks = build_scene_chunks(split_ids(split) if ids is None else ids, part_dir, scenes, seed, per_scene,
                                         chunk=chunk, label=split, src_probs=src_probs)
    parts = [np.load(part_dir / f"{k:04d}.npz") for k in range(n_chunks)]
    out = CACHE / f"windows_{name}.npz"
    np.savez(out, classes=np.array(names), **{key: np.concatenate([p[key] for p in parts]) for key in parts[0].files})
    print(f"wrote {out}")


# ------------------------------------------------------------------ per-clip features
def clip_features(audio: np.ndarray, yam, hop: int = 5):
    """Per hop (every `hop` frames, first hop ends at frame 95, times as tune_listening.py):
    times, and emb/logits for the 96-frame window and its last 32/48/64 frames. Cached."""
    h = hashlib.sha1(np.ascontiguousarray(audio, np.float32).tobytes()).hexdigest()[:20]
    path = CACHE / "clips" / f"{h}.npz"
    if path.exists():
        return dict(np.load(path))
    frames = frontend.log_mel(audio)
    p = frontend.patches(frames, hop)
    last = np.arange(len(p)) * hop + frontend.PATCH_FRAMES - 1
    out = dict(times=(last * frontend.HOP + frontend.WIN) / SR)
    e, l = yam(p)
    out["emb96"], out["logits96"] = e.astype(np.float16), l.astype(np.float32)
    for s in SHORTS:
        e, l = yam(np.ascontiguousarray(p[:, -s:]))
        out[f"emb{s}"], out[f"logits{s}"] = e.astype(np.float16), l.astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def load_clip_set(split: str, yam=None):
    """tools/tune_listening.py's clips with features for both versions:
    c["f_plain"], c["f_onset"] (dicts from clip_features)."""
    sys.path.insert(0, str(ROOT / "tools"))
    import tune_listening as tl
    clips = tl.load_clips(split, ids=None if split == "test" else set(split_ids(split)))
    for c in clips:
        for v, key in (("plain", "plain"), ("onset", "onset_audio")):
            h = hashlib.sha1(np.ascontiguousarray(c[key], np.float32).tobytes()).hexdigest()[:20]
            if yam is None and not (CACHE / "clips" / f"{h}.npz").exists():
                yam = Yamnet(threads=1)
            c[f"f_{v}"] = clip_features(c[key], yam)
    return clips


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["windows", "clips"])
    ap.add_argument("--split", default="train")
    ap.add_argument("--scenes", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.what == "windows":
        build_windows(a.split, a.scenes, a.seed)
    else:
        t = time.time()
        clips = load_clip_set(a.split)
        print(f"{a.split}: {len(clips)} clips in {time.time() - t:.0f} s")


if __name__ == "__main__":
    main()

"""Study (issues 3 and 5): a presence head on a MAX-pooled read-out of YAMNet's pre-pool map.

YAMNet's global average pool turns the [1024, 3, 2] map (time x frequency cells of the patch) into
the 1024-d embedding; a brief event inside the 0.96 s window is diluted by it. The max over the 6
cells is a second 1024-d read-out of the same forward pass. Heads with the committed recipe
(presence.CHOSEN) on (a) the max, (b) [average, max], trained on the same 8000 train scenes and
early-stopped on the same 1000 val scenes (regenerated from their seeds; the labels are checked
against the cached windows), scored "or" with the mapping through the shipped tracker and onset
path on the 80 val clips (presence_onset.evaluate_net's rules), and on the val mixtures.
Rule and results: training/reports/listening.md ("a max-pooled read-out").

  .venv/bin/python -m training.avgas.presence_maxpool windows --split train --part 0 --parts 2   (and --part 1)
  .venv/bin/python -m training.avgas.presence_maxpool windows --split val
  .venv/bin/python -m training.avgas.presence_maxpool study
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

from training.avgas import presence as pres  # noqa: E402
from training.avgas import presence_data as pdata  # noqa: E402
from training.avgas import presence_onset as po  # noqa: E402
from training.avgas.presence_prepool import PRE  # noqa: E402

tl = pres.tl
frontend = pdata.frontend
CACHE = pdata.CACHE / "maxpool"
SCENES = {"train": (8000, 0), "val": (1000, 1)}     # as `make train-presence` builds them


class YamnetMax:
    """Float YAMNet returning (embedding, logits, max over the pre-pool cells)."""

    def __init__(self, threads: int = 1):
        self.yam = pdata.Yamnet(threads, extra_outputs=(PRE,))

    def __call__(self, patches: np.ndarray, batch: int = 64):
        E, L, X = [], [], []
        for i in range(0, len(patches), batch):
            lo, em, mp = self.yam.sess.run(["class_scores", "embedding", PRE],
                                           {"audio": np.ascontiguousarray(patches[i:i + batch, None], np.float32)})
            E.append(em); L.append(lo); X.append(mp.reshape(len(mp), mp.shape[1], -1).max(-1))
        if not E:
            return (np.zeros((0, 1024), np.float32),) * 3
        return tuple(np.concatenate(a).astype(np.float32) for a in (E, L, X))


def build(split, part=0, parts=1, chunk=100):
    """Max features of the windows of presence_data.build_windows(split) (same scenes: same seeds
    per chunk), chunks part::parts; cached per chunk."""
    scenes, seed = SCENES[split]
    names, cidx, by = pdata.load_recordings(pdata.split_ids(split))
    split_names = sorted(by)
    yam = YamnetMax()
    out_dir = CACHE / f"{split}_{pdata.split_tag(split)}"
    out_dir.mkdir(parents=True, exist_ok=True)
    n_chunks = (scenes + chunk - 1) // chunk
    t0 = time.time()
    for k in range(part, n_chunks, parts):
        pf = out_dir / f"{k:04d}.npz"
        if pf.exists():
            continue
        rng = np.random.default_rng([seed, k])
        M, Y = [], []
        for i in range(min(chunk, scenes - k * chunk)):
            ns = min(int(rng.choice(4, p=(0.05, 0.40, 0.35, 0.20))), len(split_names))
            mix, stems, cls, noise_db = pdata.make_scene(by, split_names, cidx, rng, ns)
            fr = frontend.log_mel(mix)
            starts = list(range(0, len(fr) - frontend.PATCH_FRAMES + 1, pdata.WIN_HOP))
            p96 = np.stack([fr[s:s + 96] for s in starts])
            _, _, mx = yam(p96)
            M.append(mx.astype(np.float16))
            y = np.zeros((len(starts), len(names)), np.uint8)
            for s_audio, c in zip(stems, cls):
                db = pdata.frame_db(s_audio)
                ok = (db > noise_db + 6) & (db > db.max() - 35)
                for w, s in enumerate(starts):
                    if ok[s:s + 96].sum() >= pdata.MIN_FRAMES:
                        y[w, c] = 1
            Y.append(y)
            # the scene's second YAMNet pass of build_windows (48 frames) draws nothing from rng
        tmp = pf.with_name(pf.stem + ".tmp.npz")
        np.savez(tmp, max96=np.concatenate(M), y96=np.concatenate(Y))
        tmp.rename(pf)
        print(f"{split} chunk {k + 1}/{n_chunks} ({time.time() - t0:.0f} s)", flush=True)


def load(split):
    """(average emb, max, labels) of the windows; the labels must equal the cached windows'."""
    scenes, _ = SCENES[split]
    d = CACHE / f"{split}_{pdata.split_tag(split)}"
    n_chunks = (scenes + 99) // 100
    parts = [np.load(d / f"{k:04d}.npz") for k in range(n_chunks)]
    mx = np.concatenate([p["max96"] for p in parts]).astype(np.float32)
    y = np.concatenate([p["y96"] for p in parts]).astype(np.float32)
    e, _, y0, _ = pres.load_windows(split)
    if y.shape != y0.shape or not np.array_equal(y, y0):
        raise SystemExit(f"presence_maxpool: the regenerated {split} scenes differ from the cached windows")
    return e, mx, y


def clip_max(split):
    """Per clip and version, the max read-out at the cached hops (every 5 frames), cached."""
    path = CACHE / f"clips_{split}.npz"
    if path.exists():
        return dict(np.load(path))
    yam = YamnetMax()
    audio = {c["id"]: c for c in tl.load_clips(split, ids=None if split == "test" else set(pdata.split_ids(split)))}
    out = {}
    for c in pres.clips(split):
        a = audio[c["id"]]
        for v, key in (("plain", "plain"), ("onset", "onset_audio")):
            fr = frontend.log_mel(a[key])
            n5 = len(c[f"t_{v}"])
            p = np.stack([fr[k * 5:k * 5 + 96] for k in range(n5)])
            e, _, mx = yam(p)
            assert np.allclose(e, c[f"f_{v}"]["emb96"].astype(np.float32), atol=2e-2), "clip windows differ from the cache"
            out[f"{c['id']}|{v}"] = mx
    np.savez(path, **out)
    return out


def evaluate(net, feature, split="val"):
    """The shipped tracker + onset path with a head on `feature` ("max" or "cat")."""
    names, _, W = tl.load_vocab(str(pres.ROOT / "Assets/classes.json"))
    mx = clip_max(split)
    join = (lambda e, m: m) if feature == "max" else (lambda e, m: np.concatenate([e, m], 1))
    # the ordinary windows: the head reads clip features "emb96" -> swap in the new read-out
    saved = {}
    for c in pres.clips(split):
        for v in ("plain", "onset"):
            f = c[f"f_{v}"]
            saved[(c["id"], v)] = f["emb96"]
            f["emb96"] = join(f["emb96"].astype(np.float32), mx[f"{c['id']}|{v}"])
    yam = YamnetMax()

    def tiled_yam(p):                       # the onset path's tiled patches, same read-out
        e, lg, m = yam(p)
        return join(e, m), lg
    try:
        scorer = pres.make_scorer(net, W, False, "or")
        det = {k: v for k, v in po.SHIPPED.items() if k != "fast"}
        cs = po.view(po.prepare(split, det, tiled_yam, net, W, sub=True))

        def sc(c, v, step):
            x = scorer(c, v, step).copy()
            x[c[f"hops_{v}"] % 2 == 1] = np.nan
            return x
        cfg = dict(on=0.45, off=0.225, smooth=0.25, min_on=0.5, hold=0.5, fast=po.SHIPPED["fast"])
        res = tl.evaluate(cs, names, W, cfg, hop=5, scorer=sc, fast_scorer=lambda c, v, step: c[f"tile_{v}"])
    finally:
        for c in pres.clips(split):
            for v in ("plain", "onset"):
                c[f"f_{v}"]["emb96"] = saved[(c["id"], v)]
                c.pop("_key", None)
    return tl.summarise(res, True), tl.summarise(res, False), po.within(res, True), res


def mixture_f1(net, feature):
    """Val mixtures (audio_val_clips.npz: 7 patches per mixture): clip-level macro F1 at the
    thresholds of presence.mixture_f1's grid (the best one reported)."""
    from training.avgas import evaluate as ev
    path = CACHE / "val_mixtures.npz"
    z = np.load(pres.ROOT / "data/features/audio_val_clips.npz")
    if not path.exists():
        raise SystemExit("presence_maxpool: val mixture max features missing (mixtures command)")
    zm = np.load(path)
    out = {}
    for th in (0.3, 0.4, 0.45, 0.5, 0.6, 0.7):
        f = {}
        for k in (1, 2, 3):
            e, lg = z[f"emb{k}"], z[f"logits{k}"]
            M, P = e.shape[:2]
            x = zm[f"max{k}"].reshape(M * P, -1)
            x = x if feature == "max" else np.concatenate([e.reshape(M * P, -1), x], 1)
            m = ev.yamnet_mapping_scores(lg.reshape(M * P, -1)).astype(np.float32)
            p = pres.predict(net, x)
            s = (1 - (1 - p) * (1 - m)).reshape(M, P, -1).max(1)
            f[k] = ev.f1_table(s >= th, ev._truth(z[f"cls{k}"]))[1]
        out[th] = f
    return out


def cmd_windows(a):
    build(a.split, a.part, a.parts)


def cmd_study(a):
    e, mx, y = load("train")
    ev_, mxv, yv = load("val")
    c = pres.CHOSEN
    for feature in a.features:
        X = mx if feature == "max" else np.concatenate([e, mx], 1)
        Xv = mxv if feature == "max" else np.concatenate([ev_, mxv], 1)
        net, info = pres.train_head(X, y, Xv, yv, c["hidden"], c["dropout"], c["wd"], c["lr"], c["epochs"], seed=c["seed"])
        b, u, share, res = evaluate(net, feature)
        print(f"{feature}: val BCE {info['val_bce']:.4f} (epoch {info['best_epoch']}) | val clips bal {pres.short(b)} "
              f"share {share:.3f} | unw {pres.short(u)}", flush=True)
        if a.detail:
            tl.print_detail(res, tl.load_vocab(str(pres.ROOT / "Assets/classes.json"))[0])
        if (CACHE / "val_mixtures.npz").exists():
            mf = mixture_f1(net, feature)
            best = max(mf, key=lambda t: np.mean(list(mf[t].values())))
            print(f"   val mixtures macro F1 at {best}: " + ", ".join(f"{k}-src {v:.3f}" for k, v in mf[best].items()), flush=True)


def cmd_mixtures(a):
    """Max features of the val mixtures (data/mixtures/val...: the same 7 patches per mixture as
    audio_val_clips.npz)."""
    from training.avgas import features as F
    from training.dataset import audio as dsaudio
    from training.dataset import loaders
    yam = YamnetMax()
    z = np.load(pres.ROOT / "data/features/audio_val_clips.npz")
    root = pres.ROOT / "data/features/val_mixtures"          # features.build_val_clip_cache
    out = {}
    for k in (1, 2, 3):
        d = root / f"eval_{k}src"
        items = {it["id"]: it for it in loaders.load_eval_set(d)}
        P = z[f"emb{k}"].shape[1]
        rows = []
        for i in z[f"ids{k}"]:
            e, _, mx = yam(F.clip_patches(dsaudio.load_16k(d / items[str(i)]["path"]), int(z["hop_frames"]))[:P])
            rows.append(mx)
        out[f"max{k}"] = np.stack(rows)
        e_all = np.stack([yam(F.clip_patches(dsaudio.load_16k(d / items[str(i)]["path"]), int(z["hop_frames"]))[:P])[0]
                          for i in z[f"ids{k}"][:3]])
        assert np.allclose(e_all, z[f"emb{k}"][:3], atol=2e-2), "val mixture patches differ from the cache"
    np.savez(CACHE / "val_mixtures.npz", **out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("windows")
    p.add_argument("--split", default="train", choices=["train", "val"])
    p.add_argument("--part", type=int, default=0)
    p.add_argument("--parts", type=int, default=1)
    p = sub.add_parser("study")
    p.add_argument("--features", nargs="+", default=["max", "cat"])
    p.add_argument("--detail", action="store_true")
    sub.add_parser("mixtures")
    a = ap.parse_args(argv)
    {"windows": cmd_windows, "study": cmd_study, "mixtures": cmd_mixtures}[a.cmd](a)


if __name__ == "__main__":
    main()

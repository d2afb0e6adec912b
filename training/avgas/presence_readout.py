"""Studies (issues 3 and 5): presence heads on other read-outs of YAMNet's forward pass than
the pooled embedding. Rules and results: training/reports/listening.md.

- `maxpool` (seventh session, "a max-pooled read-out"): YAMNet's global average pool turns the
  [1024, 3, 2] pre-pool map (time x frequency cells of the patch) into the 1024-d embedding; a
  brief event inside the 0.96 s window is diluted by it. Features `max` (the max over the 6
  cells) and `cat` ([average, max]).
- `midlayer` (ninth session, "mid-level YAMNet read-outs"): earlier layers, less shaped by the
  521 AudioSet labels. Features `l12` (layer 12, 512 channels x 6 x 4 cells, mean over the
  cells), `l12mm` (its [mean, max]), `emb+l12` ([pooled embedding, l12]), `l13` (layer 13,
  1024 x 3 x 2, mean).

Heads with the committed recipe (presence.CHOSEN) on each feature, trained on the same 8000 train
scenes and early-stopped on the same 1000 val scenes (regenerated from their seeds; the labels are
checked against the cached windows), scored "or" with the mapping through the shipped tracker and
onset path on the 80 val clips (presence_onset's rules; the tiled patches read out the same way),
and on the val mixtures.

  .venv/bin/python -m training.avgas.presence_readout windows --readout R --split train --part 0 --parts 2   (and --part 1)
  .venv/bin/python -m training.avgas.presence_readout windows --readout R --split val
  .venv/bin/python -m training.avgas.presence_readout mixtures --readout R
  .venv/bin/python -m training.avgas.presence_readout study --features max cat     (or l12 l12mm emb+l12 l13)
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

from training.avgas import presence as pres  # noqa: E402
from training.avgas import presence_data as pdata  # noqa: E402
from training.avgas import presence_onset as po  # noqa: E402
from training.avgas.presence_prepool import PRE  # noqa: E402

tl = pres.tl
frontend = pdata.frontend
SCENES = {"train": (8000, 0), "val": (1000, 1)}     # as `make train-presence` builds them
L12 = "/model/layer12/pointwise_conv/relu/Relu_output_0"     # [N, 512, 6, 4]
L13 = "/model/layer13/pointwise_conv/relu/Relu_output_0"     # [N, 1024, 3, 2]


def _cells(x):
    """[N, C, T, F] -> [N, C, T * F]"""
    return x.reshape(len(x), x.shape[1], -1)


@dataclass(frozen=True)
class Readout:
    """Extra tensors fetched from the forward pass (`outputs`) and `reduce(*tensors)` -> named
    per-patch features {key: [N, D]}; cached under data/cache/presence/<name>/."""
    name: str
    outputs: tuple
    reduce: Callable

    @property
    def cache(self):
        return pdata.CACHE / self.name


READOUTS = {
    "maxpool": Readout("maxpool", (PRE,), lambda pre: {"max96": _cells(pre).max(-1)}),
    "midlayer": Readout("midlayer", (L12, L13), lambda a, b: {
        "l12mean": _cells(a).mean(-1), "l12max": _cells(a).max(-1), "l13mean": _cells(b).mean(-1)}),
}

# study feature -> (read-out, head input from (pooled embedding, read-out features))
FEATURES = {
    "max": ("maxpool", lambda e, f: f["max96"]),
    "cat": ("maxpool", lambda e, f: np.concatenate([e, f["max96"]], 1)),
    "l12": ("midlayer", lambda e, f: f["l12mean"]),
    "l12mm": ("midlayer", lambda e, f: np.concatenate([f["l12mean"], f["l12max"]], 1)),
    "emb+l12": ("midlayer", lambda e, f: np.concatenate([e, f["l12mean"]], 1)),
    "l13": ("midlayer", lambda e, f: f["l13mean"]),
}


class YamnetReadout:
    """Float YAMNet returning (embedding, logits, {key: feature}) for a Readout."""

    def __init__(self, ro: Readout, threads: int = 1):
        self.ro = ro
        self.yam = pdata.Yamnet(threads, extra_outputs=ro.outputs)

    def __call__(self, patches: np.ndarray, batch: int = 64):
        E, L, F = [], [], {}
        for i in range(0, len(patches), batch):
            out = self.yam.sess.run(["class_scores", "embedding", *self.ro.outputs],
                                    {"audio": np.ascontiguousarray(patches[i:i + batch, None], np.float32)})
            L.append(out[0]); E.append(out[1])
            for k, v in self.ro.reduce(*out[2:]).items():
                F.setdefault(k, []).append(v)
        if not E:
            raise ValueError("presence_readout: no patches")
        return (np.concatenate(E).astype(np.float32), np.concatenate(L).astype(np.float32),
                {k: np.concatenate(v).astype(np.float32) for k, v in F.items()})


def build(ro: Readout, split, part=0, parts=1, chunk=100):
    """Read-out features of the windows of presence_data.build_windows(split) (same scenes: same
    seeds per chunk), chunks part::parts; cached per chunk."""
    scenes, seed = SCENES[split]
    yam, n_classes = YamnetReadout(ro), len(pdata.class_index()[0])

    def per_scene(scene, index, n_src):
        # the scene's second YAMNet pass of build_windows (48 frames) draws nothing from rng
        p96, y, _ = pdata.scene_patches(*scene, n_classes)
        return dict(y96=y, **{key: v.astype(np.float16) for key, v in yam(p96)[2].items()})
    pdata.build_scene_chunks(pdata.split_ids(split), ro.cache / f"{split}_{pdata.split_tag(split)}", scenes, seed,
                             per_scene, part, parts, chunk, f"{ro.name} {split}")


def load(ro: Readout, split):
    """(average emb, {key: read-out feature}, labels) of the windows; the labels must equal the
    cached windows'."""
    scenes, _ = SCENES[split]
    d = ro.cache / f"{split}_{pdata.split_tag(split)}"
    n_chunks = (scenes + 99) // 100
    parts = [np.load(d / f"{k:04d}.npz") for k in range(n_chunks)]
    keys = [k for k in parts[0].files if k != "y96"]
    f = {k: np.concatenate([p[k] for p in parts]).astype(np.float32) for k in keys}
    y = np.concatenate([p["y96"] for p in parts]).astype(np.float32)
    e, _, y0, _ = pres.load_windows(split)
    if y.shape != y0.shape or not np.array_equal(y, y0):
        raise SystemExit(f"presence_readout: the regenerated {split} scenes differ from the cached windows")
    return e, f, y


def clip_readout(ro: Readout, split):
    """Per clip and version, the read-out features at the cached hops (every 5 frames), cached
    as {"<clip id>|<version>|<key>": [hops, D]}."""
    path = ro.cache / f"clipfeat_{split}.npz"
    if path.exists():
        return dict(np.load(path))
    yam = YamnetReadout(ro)
    audio = {c["id"]: c for c in tl.load_clips(split, ids=None if split == "test" else set(pdata.split_ids(split)))}
    out = {}
    for c in pres.clips(split):
        a = audio[c["id"]]
        for v, key in (("plain", "plain"), ("onset", "onset_audio")):
            fr = frontend.log_mel(a[key])
            n5 = len(c[f"t_{v}"])
            p = np.stack([fr[k * 5:k * 5 + 96] for k in range(n5)])
            e, _, f = yam(p)
            assert np.allclose(e, c[f"f_{v}"]["emb96"].astype(np.float32), atol=2e-2), "clip windows differ from the cache"
            for k, x in f.items():
                out[f"{c['id']}|{v}|{k}"] = x
    np.savez(path, **out)
    return out


def split_keys(flat, prefix):
    """{"<prefix>|<key>": x} -> {key: x}"""
    return {k[len(prefix) + 1:]: v for k, v in flat.items() if k.startswith(prefix + "|")}


def evaluate(net, feature, split="val"):
    """The shipped tracker + onset path with a head on `feature` (a FEATURES name)."""
    ro_name, join = FEATURES[feature]
    ro = READOUTS[ro_name]
    names, _, W = tl.load_vocab(str(pres.ROOT / "Assets/classes.json"))
    flat = clip_readout(ro, split)
    # the ordinary windows: the head reads clip features "emb96" -> swap in the new read-out
    saved = {}
    for c in pres.clips(split):
        for v in ("plain", "onset"):
            f = c[f"f_{v}"]
            saved[(c["id"], v)] = f["emb96"]
            f["emb96"] = join(f["emb96"].astype(np.float32), split_keys(flat, f"{c['id']}|{v}"))
    yam = YamnetReadout(ro)

    def tiled_yam(p):                       # the onset path's tiled patches, same read-out
        e, lg, f = yam(p)
        return join(e, f), lg
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
    ro_name, join = FEATURES[feature]
    path = READOUTS[ro_name].cache / "val_mixtures.npz"
    z = np.load(pres.ROOT / "data/features/audio_val_clips.npz")
    if not path.exists():
        raise SystemExit(f"presence_readout: val mixture features missing (mixtures --readout {ro_name})")
    zm = np.load(path)
    out = {}
    for th in (0.3, 0.4, 0.45, 0.5, 0.6, 0.7):
        f = {}
        for k in (1, 2, 3):
            e, lg = z[f"emb{k}"], z[f"logits{k}"]
            M, P = e.shape[:2]
            feats = {key: zm[f"{k}|{key}"].reshape(M * P, -1) for key in
                     {n.split("|", 1)[1] for n in zm.files if n.startswith(f"{k}|")}}
            x = join(e.reshape(M * P, -1).astype(np.float32), feats)
            m = ev.yamnet_mapping_scores(lg.reshape(M * P, -1)).astype(np.float32)
            p = pres.predict(net, x)
            s = (1 - (1 - p) * (1 - m)).reshape(M, P, -1).max(1)
            f[k] = ev.f1_table(s >= th, ev._truth(z[f"cls{k}"]))[1]
        out[th] = f
    return out


def cmd_windows(a):
    build(READOUTS[a.readout], a.split, a.part, a.parts)


def cmd_study(a):
    c = pres.CHOSEN
    loaded = {}
    for feature in a.features:
        ro_name, join = FEATURES[feature]
        if ro_name not in loaded:
            loaded[ro_name] = (load(READOUTS[ro_name], "train"), load(READOUTS[ro_name], "val"))
        (e, f, y), (ev_, fv, yv) = loaded[ro_name]
        net, info = pres.train_head(join(e, f), y, join(ev_, fv), yv, c["hidden"], c["dropout"], c["wd"], c["lr"],
                                    c["epochs"], seed=c["seed"])
        b, u, share, res = evaluate(net, feature)
        print(f"{feature}: val BCE {info['val_bce']:.4f} (epoch {info['best_epoch']}) | val clips bal {pres.short(b)} "
              f"share {share:.3f} | unw {pres.short(u)}", flush=True)
        if a.detail:
            tl.print_detail(res, tl.load_vocab(str(pres.ROOT / "Assets/classes.json"))[0])
        if (READOUTS[ro_name].cache / "val_mixtures.npz").exists():
            mf = mixture_f1(net, feature)
            best = max(mf, key=lambda t: np.mean(list(mf[t].values())))
            print(f"   val mixtures macro F1 at {best}: " + ", ".join(f"{k}-src {v:.3f}" for k, v in mf[best].items()), flush=True)


def cmd_mixtures(a):
    """Read-out features of the val mixtures (data/features/val_mixtures: the same 7 patches per
    mixture as audio_val_clips.npz), stored as {"<sources>|<key>": [M, P, D]}."""
    from training.avgas import features as F
    from training.dataset import audio as dsaudio
    from training.dataset import loaders
    ro = READOUTS[a.readout]
    yam = YamnetReadout(ro)
    z = np.load(pres.ROOT / "data/features/audio_val_clips.npz")
    root = pres.ROOT / "data/features/val_mixtures"          # features.build_val_clip_cache
    out = {}
    for k in (1, 2, 3):
        d = root / f"eval_{k}src"
        items = {it["id"]: it for it in loaders.load_eval_set(d)}
        P = z[f"emb{k}"].shape[1]
        rows = []
        for n, i in enumerate(z[f"ids{k}"]):
            e, _, f = yam(F.clip_patches(dsaudio.load_16k(d / items[str(i)]["path"]), int(z["hop_frames"]))[:P])
            if n < 3:
                assert np.allclose(e, z[f"emb{k}"][n], atol=2e-2), "val mixture patches differ from the cache"
            rows.append(f)
        for key in rows[0]:
            out[f"{k}|{key}"] = np.stack([r[key] for r in rows]).astype(np.float16)
    ro.cache.mkdir(parents=True, exist_ok=True)
    np.savez(ro.cache / "val_mixtures.npz", **out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("windows")
    p.add_argument("--readout", choices=sorted(READOUTS), required=True)
    p.add_argument("--split", default="train", choices=["train", "val"])
    p.add_argument("--part", type=int, default=0)
    p.add_argument("--parts", type=int, default=1)
    p = sub.add_parser("study")
    p.add_argument("--features", nargs="+", choices=sorted(FEATURES), default=["l12", "l12mm", "emb+l12", "l13"])
    p.add_argument("--detail", action="store_true")
    p = sub.add_parser("mixtures")
    p.add_argument("--readout", choices=sorted(READOUTS), required=True)
    a = ap.parse_args(argv)
    {"windows": cmd_windows, "study": cmd_study, "mixtures": cmd_mixtures}[a.cmd](a)


if __name__ == "__main__":
    main()

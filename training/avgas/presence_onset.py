"""Onset-tiled patches: a latency study for the listening stage (issue 3), val clips only.

Why: YAMNet classifies a whole 0.96 s window (global average pool), so a source that starts
after quiet must fill a good part of the window before its label rises; the tracked median
onset latency stays at 0.67-0.77 s whatever the tracker settings (training/reports/listening.md).

Idea: when the stream's level jumps well above its recent floor (an onset after quiet), the
audio since the onset is what matters. For the hops that follow, until the ordinary window is
full of post-onset audio, we also build a *tiled* patch: the log-mel frames from the onset to
now, repeated end to end until they fill 96 frames (ending with the newest frame). YAMNet then
sees a whole window of the new source, at its normal statistics. The tiled patch's scores
(head + mapping, the default presence source) go to the tracker as a fast-on score: a class
turns on at once when its tiled score reaches `fast` (besides the ordinary smoothed rule).

Onset detector (causal, on the log-mel frames the analyser already has):
  level[t] = 20 log10(mean_m exp(logmel[t, m]))     (dB, arbitrary reference)
  floor    = follows the level down at once, up by `rise` dB per frame
  onset    = armed and level[t] > floor + `jump` dB; disarms; re-arms after `rearm` frames
             whose level is below floor + jump / 2.
  tiled patch at a hop ending at frame f: frames [o - pre, f] with n = f - o + pre + 1 frames;
             used while min_frames <= n < 96.

Run: .venv/bin/python -m training.avgas.presence_onset study   (val clips of the frozen split)
"""
from __future__ import annotations

import argparse
import itertools
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

from training.avgas import presence as pres  # noqa: E402
from training.avgas import presence_data as pdata  # noqa: E402

tl = pres.tl
frontend = pdata.frontend

DET = dict(jump=12.0, rise=0.02, rearm=30, pre=0, min_frames=24)   # pre 2 until the seventh session


def frame_level(frames: np.ndarray) -> np.ndarray:
    """[T, 64] log-mel -> [T] level in dB (mean mel magnitude)."""
    return (20.0 / np.log(10.0)) * np.log(np.mean(np.exp(frames.astype(np.float64)), axis=1) + 1e-12)


def onsets(level: np.ndarray, jump: float, rise: float, rearm: int, **_) -> np.ndarray:
    """Frame index of the latest onset at or before each frame (-1: none yet)."""
    last = np.full(len(level), -1)
    floor = level[0] if len(level) else 0.0
    armed, quiet, o = True, 0, -1
    for t, x in enumerate(level):
        floor = min(x, floor + rise)
        if armed and x > floor + jump:
            o, armed, quiet = t, False, 0
        elif not armed:
            quiet = quiet + 1 if x < floor + jump / 2 else 0
            if quiet >= rearm:
                armed = True
        last[t] = o
    return last


def fill(seg, mode="repeat"):
    """[n, 64] post-onset frames -> a [96, 64] patch ending with the newest frame. repeat: the
    segment end to end (the Swift path); mirror: forward and time-reversed copies alternating, so
    no seam jumps from the newest frame back to the onset; stretch: the segment resampled in time
    (linear) to 96 frames. ("both" / "all", in prepare: the largest of the repeat and mirror (and stretch) scores.)"""
    P, n = frontend.PATCH_FRAMES, len(seg)
    if mode == "stretch":
        x = np.linspace(0, n - 1, P)
        i0 = np.floor(x).astype(int); i1 = np.minimum(i0 + 1, n - 1); w = (x - i0)[:, None]
        return (seg[i0] * (1 - w) + seg[i1] * w).astype(np.float32)
    if mode == "mirror":
        reps = -(-P // n)
        parts = [seg if (reps - 1 - k) % 2 == 0 else seg[::-1] for k in range(reps)]
        return np.concatenate(parts)[-P:]
    return np.tile(seg, (-(-P // n), 1))[-P:]


def level_gain(patch, target, mode="up"):
    """Shift a log-mel patch so its loudest frame sits at `target` dB (frame_level's scale): the
    early frames after an onset are often quieter than the source will be. mode "up": gain only."""
    d = target - float(frame_level(patch).max())
    if mode == "up":
        d = max(0.0, d)
    return (patch + d * np.log(10.0) / 20.0).astype(np.float32)


def tiled_patches(frames, last_onset, hop_last, pre, min_frames, tile="repeat", gain=None, gain_mode="up", **_):
    """For hops ending at frames `hop_last`: (hop indices, [K, 96, 64] tiled patches); with `gain`
    (dB) each patch is level-normalised by level_gain."""
    idx, out = [], []
    for i, f in enumerate(hop_last):
        o = last_onset[f]
        if o < 0:
            continue
        s = max(0, o - pre)
        n = f - s + 1
        if n < min_frames or n >= frontend.PATCH_FRAMES:
            continue
        seg = frames[s:f + 1]
        patch = fill(seg, tile)
        out.append(patch if gain is None else level_gain(patch, gain, gain_mode))
        idx.append(i)
    return np.array(idx, int), (np.stack(out) if out else np.zeros((0, 96, 64), np.float32))


ONSET_HEAD = dict(scenes=6000, seed=10, val_scenes=1000, val_seed=11, hidden=0, dropout=0.2, wd=1e-2, lr=3e-3,
                  epochs=25, head_seed=0)


def onset_head(cfg=ONSET_HEAD):
    """Linear head on YAMNet embeddings of tiled patches (presence.train_head's recipe)."""
    import torch
    path = pdata.CACHE / "heads" / ("onset_" + "_".join(f"{k}{v}" for k, v in cfg.items()) + ".pt")
    tr = onset_windows("train", cfg["scenes"], cfg["seed"])
    va = onset_windows("val", cfg["val_scenes"], cfg["val_seed"])
    if path.exists():
        net = pres.Head(1024, tr["y"].shape[1], cfg["hidden"], cfg["dropout"], np.zeros(1024), np.ones(1024))
        net.load_state_dict(torch.load(path))
        net.eval()
        return net
    net, info = pres.train_head(tr["emb"], tr["y"].astype(np.float32), va["emb"], va["y"].astype(np.float32),
                                cfg["hidden"], cfg["dropout"], cfg["wd"], cfg["lr"], cfg["epochs"], seed=cfg["head_seed"])
    print(f"onset head: {info}", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return net


def prepare(split, det, yam, net, W, sub=False, combine="or", clipset=None):
    """Clips of `split` (presence.clips: cached window features, one every 5 frames) with, per
    version v: c["hops_v"] (indices into the 5-frame grid: every 100 ms, plus with `sub` every
    50 ms while a tiled patch exists) and c["tile_v"] [len(hops), C] tiled scores (0 where no
    tiled patch). `clipset`: clips to use instead of the split's (each with its audio, "plain"
    and "onset_audio", and features as presence.clips makes them; presence_room.py's rooms)."""
    cs = clipset if clipset is not None else pres.clips(split)
    audio = {c["id"]: c for c in (clipset if clipset is not None else
                                  tl.load_clips(split, ids=None if split == "test" else set(pdata.split_ids(split))))}
    for c in cs:
        a = audio[c["id"]]
        for v, key in (("plain", "plain"), ("onset", "onset_audio")):
            frames = frontend.log_mel(a[key])
            n5 = len(c[f"t_{v}"])
            last5 = np.arange(n5) * 5 + frontend.PATCH_FRAMES - 1
            lo = onsets(frame_level(frames), **det)
            modes = {"both": ["repeat", "mirror"], "all": ["repeat", "mirror", "stretch"]}.get(
                det.get("tile", "repeat"), [det.get("tile", "repeat")])
            s5 = np.zeros((n5, W.shape[0]), np.float32)
            for mode in modes:   # "both": the larger of the two fills' scores, class by class
                ii, p = tiled_patches(frames, lo, last5, **dict(det, tile=mode))
                if len(ii):
                    e, lg = yam(p)
                    ph = pres.predict(net, e)
                    m = tl.class_scores(lg, W)
                    s5[ii] = np.maximum(s5[ii], ph if combine == "head" else 1 - (1 - ph) * (1 - m))
            has = np.zeros(n5, bool)
            has[ii] = True
            hops = np.nonzero((np.arange(n5) % 2 == 0) | (has if sub else False))[0]
            c[f"hops_{v}"] = hops
            c[f"tile_{v}"] = s5[hops]
            c[f"onsets_{v}"] = sorted(set(int(x) for x in lo if x >= 0))
    return cs


def view(cs):
    """Clip dicts whose times/features are restricted to each version's hops, so that
    tune_listening.evaluate (called with hop=5, i.e. step 1) walks exactly those hops."""
    out = []
    for c in cs:
        d = dict(c)
        d.pop("_key", None)
        for v in ("plain", "onset"):
            h = c[f"hops_{v}"]
            d[f"t_{v}"] = c[f"t_{v}"][h]
            d[f"f_{v}"] = {k: x[h] for k, x in c[f"f_{v}"].items()}
        out.append(d)
    return out


def onset_windows(split, scenes, seed, det=None):
    """Training samples for an onset head: scenes as presence_data builds them (0-3 sources, 60%
    of them starting inside the scene, over quiet or pink noise); the causal onset detector runs
    on each scene and every 5 frames after a detected onset (while the tiled patch exists) we keep
    YAMNet of the tiled patch (emb, logits) and a label: a source is present if it has >= 5 frames
    of energy (presence_data's rule) inside the tiled segment. Cached under data/cache/presence/."""
    det = dict(DET if det is None else det)
    tag = pdata.split_tag(split)
    out = pdata.CACHE / f"onset_{split}_{tag}_{scenes}_{seed}.npz"
    if out.exists():
        return dict(np.load(out))
    names, cidx, by = pdata.load_recordings(pdata.split_ids(split))
    split_names = sorted(by)
    yam = pdata.Yamnet(threads=1)
    rng = np.random.default_rng(seed)
    P, Y, G = [], [], []
    for k in range(scenes):
        ns = min(int(rng.choice(4, p=(0.05, 0.40, 0.35, 0.20))), len(split_names))
        mix, stems, cls, noise_db = pdata.make_scene(by, split_names, cidx, rng, ns)
        fr = frontend.log_mel(mix)
        lo = onsets(frame_level(fr), **det)
        last = np.arange(frontend.PATCH_FRAMES - 1, len(fr), 5)
        ii, p = tiled_patches(fr, lo, last, **det)
        if not len(ii):
            continue
        ok = []
        for s_audio in stems:
            db = pdata.frame_db(s_audio)
            ok.append((db > noise_db + 6) & (db > db.max() - 35))
        for j, i in enumerate(ii):
            f = last[i]
            s0 = max(0, lo[f] - det["pre"])
            y = np.zeros(len(names), np.uint8)
            for okc, c in zip(ok, cls):
                if okc[s0:f + 1].sum() >= pdata.MIN_FRAMES:
                    y[c] = 1
            Y.append(y)
            G.append(k)
        P.append(p)
        if (k + 1) % 500 == 0:
            print(f"{split}: {k + 1}/{scenes} scenes, {len(Y)} tiled patches", flush=True)
    P = np.concatenate(P)
    e, lg = yam(P)
    z = dict(emb=e.astype(np.float32), logits=lg.astype(np.float32), y=np.stack(Y), scene=np.array(G))
    np.savez(out, **z)
    return z


def within(res, balanced, limit=0.4):
    """Fraction of the detected clips (class-balanced weights like tl.summarise) heard within `limit`
    s: the median is at most `limit` exactly when this is more than one half."""
    n = {}
    for r in res:
        n[r["cls"]] = n.get(r["cls"], 0) + 1
    det = [(r["latency"], 1.0 / n[r["cls"]] if balanced else 1.0) for r in res if r["latency"] is not None]
    tot = sum(w for _, w in det) or 1.0
    return sum(w for x, w in det if x <= limit + 1e-9) / tot


# The shipped onset path (Swift OnsetConfiguration / TrackerConfiguration.learnedHead).
SHIPPED = dict(DET, tile="both", fast=0.9)


def evaluate_net(net, split="val"):
    """The shipped tracker + onset path (both fills, pre 0, min 24, fast 0.9, mid-hops) with presence
    head `net` ("or" with the mapping) on a clip set: (class-balanced summary, unweighted summary,
    class-balanced share of detected clips heard within 0.4 s)."""
    res = evaluate_clips(net, split)
    return tl.summarise(res, True), tl.summarise(res, False), within(res, True)


def evaluate_clips(net, split="val", yam=None, ids=None, clipset=None):
    """Per-clip results (tune_listening.evaluate) of the shipped tracker + onset path with head
    `net` on the clips of `split` (only those whose id is in `ids`, if given; `clipset`: other
    clips, see `prepare`). `yam` scores the tiled patches (default: a fresh float YAMNet)."""
    names, _, W = tl.load_vocab(str(pres.ROOT / "Assets/classes.json"))
    scorer = pres.make_scorer(net, W, False, "or")
    det = {k: v for k, v in SHIPPED.items() if k != "fast"}
    cs = view(prepare(split, det, yam or pdata.Yamnet(threads=1), net, W, sub=True, clipset=clipset))
    if ids is not None:
        cs = [c for c in cs if c["id"] in ids]

    def sc(c, v, step):
        x = scorer(c, v, step).copy()
        x[c[f"hops_{v}"] % 2 == 1] = np.nan       # mid-hops: the fast rule only
        return x

    cfg = dict(on=0.45, off=0.225, smooth=0.25, min_on=0.5, hold=0.5, fast=SHIPPED["fast"])
    return tl.evaluate(cs, names, W, cfg, hop=5, scorer=sc, fast_scorer=lambda c, v, step: c[f"tile_{v}"])


def cmd_study(a):
    names, _, W = tl.load_vocab(str(pres.ROOT / "Assets/classes.json"))
    net, _ = pres.chosen_head()
    scorer = pres.make_scorer(net, W, False, "or")
    cfg0 = dict(on=0.45, off=0.225, smooth=0.25, min_on=0.5, hold=0.5)
    b, u, _ = pres.run_eval(a.split, scorer, dict(cfg0))
    _, _, res = pres.run_eval(a.split, scorer, dict(cfg0))
    print(f"baseline (committed head, or, on 0.45): bal {pres.short(b)} | unw {pres.short(u)} | plain "
          f"{np.mean([r['hit_plain'] for r in res]):.3f} / {np.mean([r['wrong_plain'] for r in res]):.2f}", flush=True)
    yam = pdata.Yamnet(threads=1)
    for jump, min_frames in itertools.product(a.jumps, a.mins):
        det = dict(DET, jump=jump, min_frames=min_frames, tile=a.tile, pre=a.pre, gain=a.gain, gain_mode=a.gain_mode)
        tnet = onset_head() if a.onset_head else net
        cs = view(prepare(a.split, det, yam, tnet, W, sub=a.sub, combine=a.combine))
        n_on = np.mean([len(c["onsets_onset"]) for c in cs])
        n_pl = np.mean([len(c["onsets_plain"]) for c in cs])

        def fast_scorer(c, v, step):
            assert step == 1
            s = c[f"tile_{v}"]
            if a.top1:      # only the tiled patch's best class may turn on fast
                keep = np.zeros_like(s)
                r = np.arange(len(s))
                j = s.argmax(1)
                srt = np.sort(s, 1)
                ok = (srt[:, -1] - srt[:, -2]) >= a.margin
                keep[r, j] = np.where(ok, s[r, j], 0)
                s = keep
            if a.agree > 0:  # ... and the ordinary window's own score must already reach `agree`
                s = np.where(scorer(c, v, 1) >= a.agree, s, 0).astype(np.float32)
            return s
        sc = scorer
        if a.subfast:       # mid-hop rows (odd 5-frame indices) only run the fast-on rule
            def sc(c, v, step):
                x = scorer(c, v, step).copy()
                x[c[f"hops_{v}"] % 2 == 1] = np.nan   # tune_listening.track: fast rule only
                return x
        if a.mix:           # the tracker's input is max(window score, tiled score)
            def sc(c, v, step):
                return np.maximum(scorer(c, v, step), c[f"tile_{v}"])
        for fast in a.fasts:
            cfg = dict(cfg0, fast=fast, confirm=a.confirm)
            pres.run_eval._last = None
            for c in cs:
                c.pop("_key", None)
            res = tl.evaluate(cs, names, W, cfg, hop=5, scorer=sc, fast_scorer=fast_scorer)
            b, u = tl.summarise(res, True), tl.summarise(res, False)
            print(f"  share of the detected clips heard within 0.4 s: bal {within(res, True):.3f} | unw "
                  f"{within(res, False):.3f}; wrong per clip bal {b['wrong']:.4f}")
            print(f"jump {jump:4.1f} min {min_frames:2d} fast {fast:.2f} (onsets/clip {n_on:.2f} onset, {n_pl:.2f} plain): "
                  f"bal {pres.short(b)} | unw {pres.short(u)} | plain {np.mean([r['hit_plain'] for r in res]):.3f} / "
                  f"{np.mean([r['wrong_plain'] for r in res]):.2f}", flush=True)
            if a.detail:
                tl.print_detail(res, names)
                lat = sorted(r["latency"] for r in res if r["latency"] is not None)
                print("latencies:", " ".join(f"{x:.2f}" for x in lat))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("study")
    p.add_argument("--split", default="val", choices=["val", "test"], help="test: once, after every choice")
    p.add_argument("--jumps", type=float, nargs="+", default=[12.0])
    p.add_argument("--mins", type=int, nargs="+", default=[24])
    p.add_argument("--fasts", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9])
    p.add_argument("--detail", action="store_true")
    p.add_argument("--pre", type=int, default=DET["pre"], help="frames before the onset in the tiled segment")
    p.add_argument("--tile", default="repeat", choices=["repeat", "mirror", "stretch", "both", "all"],
                   help="how the post-onset frames fill the patch (repeat = the Swift path)")
    p.add_argument("--margin", type=float, default=0.0, help="with --top1: best - second best >= this")
    p.add_argument("--agree", type=float, default=0.0, help="ordinary window score must reach this too")
    p.add_argument("--gain", type=float, default=None, help="level-normalise tiled patches: loudest frame at this dB")
    p.add_argument("--gain-mode", default="up", choices=["up", "both"])
    p.add_argument("--onset-head", action="store_true", help="score tiled patches with the onset head")
    p.add_argument("--combine", default="or", choices=["or", "head"])
    p.add_argument("--mix", action="store_true", help="tracker input max(window, tiled)")
    p.add_argument("--sub", action="store_true", help="50 ms hops while a tiled patch exists")
    p.add_argument("--subfast", action="store_true", help="with --sub: the extra 50 ms hops only run the fast-on rule")
    p.add_argument("--top1", action="store_true", help="fast-on only for the tiled patch's best class")
    p.add_argument("--confirm", type=int, default=0, help="fast-on needs this many consecutive hops")
    a = ap.parse_args(argv)
    {"study": cmd_study}[a.cmd](a)


if __name__ == "__main__":
    main()

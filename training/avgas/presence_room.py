"""A presence head trained through synthetic rooms (training/reports/listening.md, "A presence head
trained through rooms"; the rule there was written before any head was trained).

The committed head's recipe and scenes (presence.CHOSEN; presence_data's 8000 scenes of the frozen
train recordings, seed 0), but each scene goes with probability P_ROOM through a room of
tools/make_room_clips.py's model before YAMNet: the mixture and its stems (whose energy makes the
labels) are convolved with one impulse response (RT60, DRR and pre-delay drawn per scene), then
pink noise is added with probability P_NOISE. The draws come from a generator seeded by the scene
index, so the scenes left clean are exactly the committed ones.

  windows --part K --parts N   build the room windows (resumable chunks; run parts side by side)
  study                        train the head; committed vs room head on the 80 frozen val clips,
                               clean and through the rooms near / mid / far; writes a JSON report
  (export: `python -m training.avgas.presence export --room` ships the room head)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import make_room_clips as room  # noqa: E402
import tune_listening as tl  # noqa: E402

from training.avgas import presence as pres  # noqa: E402
from training.avgas import presence_data as pdata  # noqa: E402
from training.avgas import presence_onset as po  # noqa: E402

SCENES, SEED = 8000, 0                     # the committed head's scenes
P_ROOM, P_NOISE = 0.5, 0.5
RT60, DRR, PREDELAY, SNR = (0.2, 1.2), (-6.0, 10.0), (0.005, 0.03), (10.0, 30.0)
# The evaluation rooms of listening.md's room measurement (RT60 s, DRR dB, pink noise dB below).
ROOMS = {"near": (0.4, 6.0, 25.0), "mid": (0.6, 0.0, 20.0), "far": (1.0, -6.0, 15.0)}
NAME = "train_room"
REPORT = ROOT / "training/reports/listening_room_head.json"


def room_scene(scene, index):
    """make_scene's (mix, stems, classes, noise_db), through a room with probability P_ROOM."""
    mix, stems, cls, noise_db = scene
    rng = np.random.default_rng([SEED, 7919, index])
    if rng.random() >= P_ROOM:
        return scene
    h = room.room_ir(rng, rng.uniform(*RT60), rng.uniform(*DRR), rng.uniform(*PREDELAY))
    n = len(mix)
    mix = fftconvolve(mix.astype(np.float64), h)[:n]
    stems = [fftconvolve(s, h)[:n] for s in stems]
    # The scene's background noise is in the mixture and went through the room too: its power
    # grew by the impulse response's energy (1 + the tail's), and so did the labels' noise floor.
    noise_db += 10 * np.log10(np.sum(h ** 2))
    if rng.random() < P_NOISE:
        rms = np.sqrt(np.mean(mix ** 2))
        if rms > 0:
            add = room.pink(rng, n) * rms * 10 ** (-rng.uniform(*SNR) / 20)
            mix = mix + add
            # The labels' noise floor (frame_db units: 10 log10 of mean power) includes the new noise.
            noise_db = 10 * np.log10(10 ** (noise_db / 10) + np.mean(add ** 2) + 1e-20)
    pk = np.abs(mix).max()
    k = 0.98 / pk if pk > 0.98 else 1.0
    return (mix * k).astype(np.float32), [s * k for s in stems], cls, noise_db + 20 * np.log10(k)


def cmd_windows(a):
    yam = pdata.Yamnet(threads=1)
    n_classes = len(pdata.class_index()[0])

    def per_scene(scene, index, n_src):
        mix, stems, cls, noise_db = room_scene(scene, index)
        p96, y96, _ = pdata.scene_patches(mix, stems, cls, noise_db, n_classes)
        e96, _ = yam(p96)
        return dict(emb96=e96.astype(np.float16), y96=y96, scene=np.full(len(y96), index, np.int32))
    part_dir = pdata.CACHE / f"windows_{NAME}.parts"
    pdata.build_scene_chunks(pdata.split_ids("train"), part_dir, SCENES, SEED, per_scene,
                             part=a.part, parts=a.parts, label=f"room part {a.part}")


def room_windows():
    part_dir = pdata.CACHE / f"windows_{NAME}.parts"
    n_chunks = (SCENES + 99) // 100
    missing = [k for k in range(n_chunks) if not (part_dir / f"{k:04d}.npz").exists()]
    if missing:
        sys.exit(f"error: {len(missing)} room window chunks missing; run `... presence_room windows` first")
    parts = [np.load(part_dir / f"{k:04d}.npz") for k in range(n_chunks)]
    return (np.concatenate([p["emb96"] for p in parts]).astype(np.float32),
            np.concatenate([p["y96"] for p in parts]).astype(np.float32))


def room_head():
    """The room head: presence.CHOSEN's recipe on the room windows, early stop on the clean val scenes."""
    path = pdata.CACHE / "heads" / f"room_{pres.CHOSEN['spec']}.pt"
    X, Y = room_windows()
    c = pres.CHOSEN
    ev_, _, yv, _ = pres.load_windows("val")
    import torch
    if path.exists():
        net = pres.Head(1024, Y.shape[1], c["hidden"], c["dropout"], np.zeros(1024), np.ones(1024))
        net.load_state_dict(torch.load(path))
        net.eval()
        info = json.loads(path.with_suffix(".json").read_text())
    else:
        net, info = pres.train_head(X, Y, ev_, yv, c["hidden"], c["dropout"], c["wd"], c["lr"], c["epochs"], seed=c["seed"])
        info = dict(info, windows=int(len(X)))
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path)
        path.with_suffix(".json").write_text(json.dumps(info))
    return net, info


def committed_head():
    """Assets/models/presence.safetensors as a presence.Head (standardisation folded into fc1)."""
    import safetensors_io
    import torch
    t, _ = safetensors_io.load(pres.OUT)
    W, b = t["fc1.weight"], t["fc1.bias"]
    net = pres.Head(W.shape[1], W.shape[0], 0, 0.0, np.zeros(W.shape[1]), np.ones(W.shape[1]))
    with torch.no_grad():
        net.fc1.weight.copy_(torch.from_numpy(np.array(W, np.float32)))
        net.fc1.bias.copy_(torch.from_numpy(np.array(b, np.float32)))
    net.eval()
    return net


def room_clipset(split, name, yam):
    """The clip set of `split` (tune_listening's clips of the frozen split) through room `name`,
    as tools/make_room_clips.py builds the test rooms (seed 0, clips in order): the onset version
    is 2 s of the room's noise alone and then the clip, the onset taken from the clean clip.
    Features as presence.clips makes them."""
    rt60, drr, snr = ROOMS[name]
    rng = np.random.default_rng(0)
    out = []
    for c in tl.load_clips(split, ids=set(pdata.split_ids(split))):
        y = np.asarray(pcm16(room.through_room(c["plain"], rng, rt60, drr, 0.01, snr, lead=room.LEAD)), np.float32)
        d = dict(id=c["id"], cls=c["cls"], plain=y[room.LEAD:], onset_audio=y,
                 onset_s=(room.LEAD + room.onset_sample(c["plain"])) / tl.SR)
        for v, key in (("plain", "plain"), ("onset", "onset_audio")):
            f = pdata.clip_features(d[key], yam)
            d[f"f_{v}"], d[f"t_{v}"], d[f"z_{v}"] = f, f["times"], f["logits96"]
        out.append(d)
    return out


def pcm16(y):
    """16-bit rounding, as the FLAC files of make_room_clips.py hold the test rooms."""
    return np.round(np.clip(y, -1, 1) * 32767) / 32767


def cmd_study(a):
    yam = pdata.Yamnet(threads=1)
    heads = {"committed": committed_head(), "room": room_head()[0]}
    sets = {"clean": None}
    sets.update({name: room_clipset("val", name, yam) for name in ROOMS})
    res = {}
    for hname, net in heads.items():
        for sname, cs in sets.items():
            r = po.evaluate_clips(net, "val", yam=yam, clipset=cs)
            b, u = tl.summarise(r, True), tl.summarise(r, False)
            res.setdefault(hname, {})[sname] = dict(recall=b["recall"], wrong=b["wrong"], latency=b["latency"],
                                                     share=po.within(r, True), recall_unweighted=u["recall"],
                                                     wrong_unweighted=u["wrong"])
            print(f"{hname:9s} {sname:5s} {pres.short(b)}  share {po.within(r, True):.3f}  "
                  f"(unweighted {pres.short(u)})", flush=True)
    c, r = res["committed"], res["room"]
    mean = lambda d, k: float(np.mean([d[n][k] for n in ROOMS]))  # noqa: E731
    rule = dict(clean_recall=r["clean"]["recall"] >= 0.842 - 1e-9, clean_wrong=r["clean"]["wrong"] <= 1.00 + 1e-9,
                clean_share=r["clean"]["share"] >= 0.419 - 1e-9,
                room_recall=mean(r, "recall") >= mean(c, "recall") + 0.05 - 1e-9,
                room_wrong=mean(r, "wrong") <= mean(c, "wrong") + 0.10 + 1e-9)
    out = dict(results=res, room_mean=dict(committed=dict(recall=mean(c, "recall"), wrong=mean(c, "wrong")),
                                           room=dict(recall=mean(r, "recall"), wrong=mean(r, "wrong"))),
               rule=rule, adopt=all(rule.values()))
    REPORT.write_text(json.dumps(out, indent=1))
    print(json.dumps(out["room_mean"]), rule, "ADOPT" if out["adopt"] else "not adopted")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("windows")
    w.add_argument("--part", type=int, default=0)
    w.add_argument("--parts", type=int, default=1)
    w.set_defaults(fn=cmd_windows)
    s = sub.add_parser("study")
    s.set_defaults(fn=cmd_study)
    a = ap.parse_args(argv)
    a.fn(a)


if __name__ == "__main__":
    main()

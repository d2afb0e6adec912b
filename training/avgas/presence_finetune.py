"""Study (issue 3, eleventh session): fine-tune YAMNet's last block for the presence head.

The presence head reads YAMNet's pooled embedding, which is shaped by the 521 AudioSet labels and
frozen. Here the last block (layer14: depthwise 3x3 + ReLU, pointwise 1x1 + ReLU, then the average
pool) gets its own copy of the weights, trained jointly with the head on the presence windows,
while the AudioSet logits (the label mapping) and the embedding for the separator stay frozen.
The block's input, layer 13's output ([1024, 3, 2] per 96-frame window), is cached once, so
training costs only the block (6.3 M multiply-adds per window).

Rule and results: training/reports/listening.md, "Eleventh session". Selection on the ninth
session's 4-fold cross-validation over the frozen train recordings (presence_refit.cv_folds);
fold k starts from its cached (T) head (presence_refit.cv_head(k, "T")).

  .venv/bin/python -m training.avgas.presence_finetune windows --fold K --part P --parts 2
  .venv/bin/python -m training.avgas.presence_finetune windows --split val
  .venv/bin/python -m training.avgas.presence_finetune clips            (layer-13 maps of the train clips)
  .venv/bin/python -m training.avgas.presence_finetune train --fold K    (both candidates; folds side by side)
  .venv/bin/python -m training.avgas.presence_finetune cv               (score the folds; trains what is missing)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from training.avgas import presence as pres  # noqa: E402
from training.avgas import presence_data as pdata  # noqa: E402
from training.avgas import presence_refit as refit  # noqa: E402

tl = pres.tl
frontend = pdata.frontend
L13 = "/model/layer13/pointwise_conv/relu/Relu_output_0"     # [N, 1024, 3, 2] for a 96-frame patch
CACHE = pdata.CACHE / "finetune"
VAL_SCENES = (1000, 1)                                      # as presence.load_windows("val")
RESULTS = pdata.CACHE / "finetune_cv.json"

# Candidates (pre-registered in listening.md): tail learning rate; everything else shared.
CANDIDATES = {"F1": dict(tail_lr=1e-4), "F2": dict(tail_lr=3e-4)}
TRAIN = dict(head_lr=1e-3, head_wd=1e-2, epochs=8, batch=512, seed=0)
RULE = dict(recall=0.860, wrong=0.95, share=0.515)          # the tenth session's bars


class YamnetL13:
    """Float YAMNet returning (embedding, logits, layer-13 map) per 96-frame patch."""

    def __init__(self, threads=1):
        self.yam = pdata.Yamnet(threads, extra_outputs=(L13,))

    def __call__(self, patches, batch=64):
        E, L, M = [], [], []
        for i in range(0, len(patches), batch):
            lg, e, m = self.yam.sess.run(["class_scores", "embedding", L13],
                                         {"audio": np.ascontiguousarray(patches[i:i + batch, None], np.float32)})
            E.append(e); L.append(lg); M.append(m)
        return (np.concatenate(E).astype(np.float32), np.concatenate(L).astype(np.float32),
                np.concatenate(M).astype(np.float32))


def layer14_weights(path=None):
    """YAMNet's layer14 (batch norm folded) as PyTorch wants it: dw [1024,1,3,3], dwb, pw [1024,1024,1,1],
    pwb, read from the converted weights the Swift engine runs (Assets/models/yamnet.safetensors:
    depthwise [kh,kw,c], pointwise [cin,cout]; equal to the float ONNX graph's initialisers)."""
    import sys
    sys.path.insert(0, str(pres.ROOT / "tools"))
    import safetensors_io
    t, _ = safetensors_io.load(str(path or pres.ROOT / "Assets/models/yamnet.safetensors"))
    dw, pw = t["layers.13.depthwise.weight"], t["layers.13.pointwise.weight"]
    assert dw.shape == (3, 3, 1024) and pw.shape == (1024, 1024), "unexpected layer14"
    return dict(dw=np.ascontiguousarray(dw.transpose(2, 0, 1)[:, None]), dwb=t["layers.13.depthwise.bias"].copy(),
                pw=np.ascontiguousarray(pw.T[:, :, None, None]), pwb=t["layers.13.pointwise.bias"].copy())


class Tail(torch.nn.Module):
    """layer14 (depthwise 3x3 pad 1 + ReLU, pointwise + ReLU) and the average pool: [N,1024,3,2] -> [N,1024]."""

    def __init__(self):
        super().__init__()
        w = layer14_weights()
        self.dw = torch.nn.Conv2d(1024, 1024, 3, padding=1, groups=1024)
        self.pw = torch.nn.Conv2d(1024, 1024, 1)
        with torch.no_grad():
            self.dw.weight.copy_(torch.from_numpy(w["dw"])); self.dw.bias.copy_(torch.from_numpy(w["dwb"]))
            self.pw.weight.copy_(torch.from_numpy(w["pw"])); self.pw.bias.copy_(torch.from_numpy(w["pwb"]))

    def forward(self, m):
        return torch.relu(self.pw(torch.relu(self.dw(m)))).mean((2, 3))


def embed(tail, maps, batch=2048):
    with torch.no_grad():
        return np.concatenate([tail(torch.from_numpy(np.ascontiguousarray(maps[i:i + batch], np.float32))).numpy()
                               for i in range(0, len(maps), batch)])


# ------------------------------------------------------------------ windows with layer-13 maps
def window_dir(label):
    return CACHE / f"windows_{label}"


def build_windows(ids, label, scenes, seed, part=0, parts=1, chunk=100):
    """The scenes of presence_data.build_windows(ids, scenes, seed), keeping layer 13's map of each
    96-frame window (float16), its embedding and its label; chunks part::parts."""
    yam, n_classes = YamnetL13(), len(pdata.class_index()[0])

    def per_scene(scene, index, n_src):
        p96, y, _ = pdata.scene_patches(*scene, n_classes)
        e, _, m = yam(p96)
        return dict(l13=m.astype(np.float16), emb96=e.astype(np.float16), y96=y)
    pdata.build_scene_chunks(ids, window_dir(label), scenes, seed, per_scene, part, parts, chunk, label)


def load_windows(label, scenes, reference):
    """(maps [N,1024,3,2] float16, labels [N,C] float32); labels and embeddings must equal the
    cached windows file `reference` (presence_data's windows of the same scenes)."""
    d = window_dir(label)
    n_chunks = (scenes + 99) // 100
    parts = [np.load(d / f"{k:04d}.npz") for k in range(n_chunks)]
    maps = np.concatenate([p["l13"] for p in parts])
    y = np.concatenate([p["y96"] for p in parts])
    e = np.concatenate([p["emb96"] for p in parts])
    z = np.load(reference)
    if y.shape != z["y96"].shape or not np.array_equal(y, z["y96"]):
        raise SystemExit(f"presence_finetune: the regenerated scenes of {label} differ from {reference.name}")
    if not np.allclose(e[:2000].astype(np.float32), z["emb96"][:2000].astype(np.float32), atol=2e-2):
        raise SystemExit(f"presence_finetune: embeddings of {label} differ from {reference.name}")
    return maps, y.astype(np.float32)


def fold_reference(k):
    ids = refit.cv_lists(k)[0]
    return ids, pdata.CACHE / f"windows_{refit.name_of(ids, f'cv{k}T')}.npz"


def val_reference():
    return pdata.CACHE / f"windows_val_{pdata.split_tag('val')}.npz"


def cmd_windows(a):
    if a.split == "val":
        build_windows(pdata.split_ids("val"), "val", *VAL_SCENES, a.part, a.parts)
    elif a.fold < 0:      # all train recordings: the committed head's windows (val confirmation)
        build_windows(pdata.split_ids("train"), "train", refit.SCENES, refit.SCENE_SEED, a.part, a.parts)
    else:
        ids, _ = fold_reference(a.fold)
        build_windows(ids, f"cv{a.fold}T", refit.SCENES, refit.SCENE_SEED, a.part, a.parts)


# ------------------------------------------------------------------ clips: layer-13 maps per hop
def clip_maps(split="train"):
    """{"<clip id>|<version>": [hops, 1024, 3, 2] float16} at the cached hops (every 5 frames) of
    the clip set; cached."""
    path = CACHE / f"clipmaps_{split}.npz"
    if path.exists():
        return dict(np.load(path))
    yam = YamnetL13()
    audio = {c["id"]: c for c in tl.load_clips(split, ids=None if split == "test" else set(pdata.split_ids(split)))}
    out = {}
    for n, c in enumerate(pres.clips(split)):
        a = audio[c["id"]]
        for v, key in (("plain", "plain"), ("onset", "onset_audio")):
            fr = frontend.log_mel(a[key])
            n5 = len(c[f"t_{v}"])
            e, _, m = yam(np.stack([fr[k * 5:k * 5 + 96] for k in range(n5)]))
            assert np.allclose(e, c[f"f_{v}"]["emb96"].astype(np.float32), atol=2e-2), "clip windows differ from the cache"
            out[f"{c['id']}|{v}"] = m.astype(np.float16)
        if (n + 1) % 50 == 0:
            print(f"clip maps: {n + 1} clips", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


class MemoL13:
    """Layer-13 maps and logits of the onset path's tiled patches, memoised by the patches' bytes
    (they do not depend on the tail)."""

    def __init__(self):
        self.yam, self.memo = YamnetL13(), {}

    def __call__(self, p):
        key = hashlib.sha1(np.ascontiguousarray(p).tobytes()).hexdigest()
        if key not in self.memo:
            _, lg, m = self.yam(p)
            self.memo[key] = (m, lg)
        return self.memo[key]


# ------------------------------------------------------------------ training
def finetune(maps, y, vmaps, vy, head, tail_lr, head_lr, head_wd, epochs, batch, seed, verbose=True):
    """Joint training of a fresh Tail (YAMNet's layer14) and a copy of `head` (BCE, AdamW), best
    epoch by val window BCE; epoch "-1" (the starting point: YAMNet's layer14 and the given head)
    competes too. -> (tail, head, info)."""
    import copy
    torch.manual_seed(seed)
    tail, head = Tail(), copy.deepcopy(head)
    opt = torch.optim.AdamW([dict(params=tail.parameters(), lr=tail_lr, weight_decay=0.0),
                             dict(params=head.fc1.parameters(), lr=head_lr, weight_decay=head_wd)])
    lossf = torch.nn.BCEWithLogitsLoss()
    Y, Vy = torch.from_numpy(y), torch.from_numpy(vy)

    def val_bce():
        tail.eval(); head.eval()
        with torch.no_grad():
            logit = head(torch.from_numpy(embed(tail, vmaps)))
            return float(torch.nn.functional.binary_cross_entropy_with_logits(logit, Vy))

    best, best_ep = val_bce(), -1
    best_state = (copy.deepcopy(tail.state_dict()), copy.deepcopy(head.state_dict()))
    g = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        tail.train(); head.train()
        t0, tot, nb = time.time(), 0.0, 0
        perm = torch.randperm(len(maps), generator=g).numpy()
        for i in range(0, len(maps), batch):
            j = np.sort(perm[i:i + batch])
            x = torch.from_numpy(maps[j].astype(np.float32))
            opt.zero_grad()
            loss = lossf(head(tail(x)), Y[j])
            loss.backward()
            opt.step()
            tot, nb = tot + float(loss), nb + 1
        vl = val_bce()
        if verbose:
            print(f"  epoch {ep}: train BCE {tot / nb:.4f}, val window BCE {vl:.4f} ({time.time() - t0:.0f} s)", flush=True)
        if vl < best:
            best, best_ep = vl, ep
            best_state = (copy.deepcopy(tail.state_dict()), copy.deepcopy(head.state_dict()))
    tail.load_state_dict(best_state[0]); head.load_state_dict(best_state[1])
    tail.eval(); head.eval()
    return tail, head, dict(val_bce=best, best_epoch=best_ep)


def tail_path(k, cand):
    return CACHE / "tails" / f"cv{k}_{cand}.pt"


def fold_model(k, cand, vmaps, vy, maps_y=None):
    """(tail, head, info) of candidate `cand` on fold k, cached."""
    path = tail_path(k, cand)
    head0 = refit.cv_head(k, "T")
    if path.exists():
        d = torch.load(path)
        tail, head = Tail(), __import__("copy").deepcopy(head0)
        tail.load_state_dict(d["tail"]); head.load_state_dict(d["head"])
        tail.eval(); head.eval()
        return tail, head, d["info"]
    maps, y = maps_y
    print(f"fold {k} {cand}: {len(maps)} windows", flush=True)
    tail, head, info = finetune(maps, y, vmaps, vy, head0, CANDIDATES[cand]["tail_lr"], **{
        k_: v for k_, v in TRAIN.items() if k_ != "epochs" and k_ != "batch" and k_ != "seed"},
        epochs=TRAIN["epochs"], batch=TRAIN["batch"], seed=TRAIN["seed"])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(tail=tail.state_dict(), head=head.state_dict(), info=info), path)
    return tail, head, info


# ------------------------------------------------------------------ evaluation (the shipped tracker + onset path)
def evaluate(tail, head, ids, flat, memo, split="train"):
    """presence_onset.evaluate_clips with the head reading the tuned tail's embedding (per hop and
    for the tiled onset patches); the label mapping keeps the frozen logits."""
    from training.avgas import presence_onset as po
    names, _, W = tl.load_vocab(str(pres.ROOT / "Assets/classes.json"))
    saved = {}
    for c in pres.clips(split):
        for v in ("plain", "onset"):
            f = c[f"f_{v}"]
            saved[(c["id"], v)] = f["emb96"]
            key = f"{c['id']}|{v}"
            if key in flat:
                f["emb96"] = embed(tail, flat[key])

    def tiled_yam(p):
        m, lg = memo(p)
        return embed(tail, m), lg
    try:
        scorer = pres.make_scorer(head, W, False, "or")
        det = {k: v for k, v in po.SHIPPED.items() if k != "fast"}
        cs = [c for c in po.view(po.prepare(split, det, tiled_yam, head, W, sub=True)) if c["id"] in ids]

        def sc(c, v, step):
            x = scorer(c, v, step).copy()
            x[c[f"hops_{v}"] % 2 == 1] = np.nan
            return x
        cfg = dict(on=0.45, off=0.225, smooth=0.25, min_on=0.5, hold=0.5, fast=po.SHIPPED["fast"])
        return tl.evaluate(cs, names, W, cfg, hop=5, scorer=sc, fast_scorer=lambda c, v, step: c[f"tile_{v}"])
    finally:
        for c in pres.clips(split):
            for v in ("plain", "onset"):
                c[f"f_{v}"]["emb96"] = saved[(c["id"], v)]
                c.pop("_key", None)


def cmd_train(a):
    """Trains candidate(s) on fold K (two shells can train two folds side by side)."""
    torch.set_num_threads(a.threads)
    vmaps, vy = load_windows("val", VAL_SCENES[0], val_reference())
    ids, ref = fold_reference(a.fold)
    maps_y = load_windows(f"cv{a.fold}T", refit.SCENES, ref)
    for c in a.cands:
        if not tail_path(a.fold, c).exists():
            info = fold_model(a.fold, c, vmaps.astype(np.float32), vy, maps_y)[2]
            print(f"fold {a.fold} {c}: {info}", flush=True)


def cmd_cv(a):
    from training.avgas import presence_knn as pk
    torch.set_num_threads(a.threads)
    vmaps, vy = load_windows("val", VAL_SCENES[0], val_reference())
    vmaps = vmaps.astype(np.float32)
    flat = clip_maps("train")
    memo = MemoL13()
    pooled = {}
    for k, held in enumerate(refit.cv_folds()):
        maps_y = None
        if any(not tail_path(k, c).exists() for c in a.cands):
            ids, ref = fold_reference(k)
            maps_y = load_windows(f"cv{k}T", refit.SCENES, ref)
        runs = {"baseline (YAMNet layer14, (T) head)": (Tail().eval(), refit.cv_head(k, "T"), None)}
        for c in a.cands:
            runs[c] = fold_model(k, c, vmaps, vy, maps_y)
        for name, (tail, head, info) in runs.items():
            r = evaluate(tail, head, set(held), flat, memo)
            pooled.setdefault(name, []).extend(r)
            print(f"fold {k} {name}: {pres.short(tl.summarise(r, True))} "
                  + (f"(val BCE {info['val_bce']:.4f}, epoch {info['best_epoch']})" if info else ""), flush=True)
        del maps_y
    table = {name: pk.summary(r) for name, r in pooled.items()}
    print(f"\npooled, class-balanced (rule recall >= {RULE['recall']:.3f}, wrong <= {RULE['wrong']:.2f}, "
          f"share >= {RULE['share']:.3f})")
    print("| candidate | recall | wrong / clip | median latency | share within 0.4 s | unweighted recall | qualifies |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, s in table.items():
        q = name in CANDIDATES and pk.qualifies(s, RULE)
        print(f"| {name} | {s['recall']:.3f} | {s['wrong']:.2f} | {s['latency']:.2f} s | {s['share']:.3f} | "
              f"{s['unw_recall']:.3f} | {'yes' if q else ('-' if name not in CANDIDATES else 'no')} |")
    quals = [(s["recall"], -s["wrong"], name) for name, s in table.items() if name in CANDIDATES and pk.qualifies(s, RULE)]
    win = max(quals)[2] if quals else None
    print(f"winner: {win or 'none (nothing changes)'}")
    RESULTS.write_text(json.dumps(dict(table=table, winner=win), indent=1, default=float))


VAL_BAR = dict(recall=0.867, wrong=1.00, share=0.419)       # the tenth session's val bar


def cmd_val(a):
    """The rule's confirmation: candidate `a.cand` on the windows of all 351 train recordings,
    starting from the committed head (presence.chosen_head), scored on the 80 val clips."""
    from training.avgas import presence_knn as pk
    torch.set_num_threads(a.threads)
    path = CACHE / "tails" / f"train_{a.cand}.pt"
    head0 = pres.chosen_head()[0]
    if path.exists():
        d = torch.load(path)
        tail, head = Tail(), __import__("copy").deepcopy(head0)
        tail.load_state_dict(d["tail"]); head.load_state_dict(d["head"])
        tail.eval(); head.eval()
        info = d["info"]
    else:
        vmaps, vy = load_windows("val", VAL_SCENES[0], val_reference())
        maps, y = load_windows("train", refit.SCENES, pdata.CACHE / f"windows_train_{pdata.split_tag('train')}.npz")
        tail, head, info = finetune(maps, y, vmaps.astype(np.float32), vy, head0, CANDIDATES[a.cand]["tail_lr"],
                                    TRAIN["head_lr"], TRAIN["head_wd"], TRAIN["epochs"], TRAIN["batch"], TRAIN["seed"])
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(dict(tail=tail.state_dict(), head=head.state_dict(), info=info), path)
    ids = set(pdata.split_ids("val"))
    flat, memo = clip_maps("val"), MemoL13()
    rows = {"committed head, YAMNet's layer14": pk.summary(evaluate(Tail().eval(), head0, ids, flat, memo, "val")),
            f"{a.cand} (val BCE {info['val_bce']:.4f}, epoch {info['best_epoch']})":
                pk.summary(evaluate(tail, head, ids, flat, memo, "val"))}
    for name, s in rows.items():
        print(f"| {name} | {s['recall']:.3f} | {s['wrong']:.2f} | {s['latency']:.2f} s | {s['share']:.3f} | "
              f"{s['unw_recall']:.3f} |")
    s = list(rows.values())[1]
    ok = pk.qualifies(s, VAL_BAR)
    print(f"val bar recall >= {VAL_BAR['recall']}, wrong <= {VAL_BAR['wrong']}, share >= {VAL_BAR['share']}: "
          f"{'CONFIRMED' if ok else 'not confirmed (nothing changes)'}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("windows")
    p.add_argument("--fold", type=int, default=0, help="-1: all train recordings (val confirmation)")
    p.add_argument("--split", default="train", choices=["train", "val"])
    p.add_argument("--part", type=int, default=0)
    p.add_argument("--parts", type=int, default=1)
    sub.add_parser("clips")
    p = sub.add_parser("train")
    p.add_argument("--fold", type=int, required=True)
    p.add_argument("--cands", nargs="+", default=sorted(CANDIDATES), choices=sorted(CANDIDATES))
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("cv")
    p.add_argument("--cands", nargs="+", default=sorted(CANDIDATES), choices=sorted(CANDIDATES))
    p.add_argument("--threads", type=int, default=2)
    p = sub.add_parser("val")
    p.add_argument("--cand", required=True, choices=sorted(CANDIDATES))
    p.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    if a.cmd == "clips":
        clip_maps("train")
    else:
        {"windows": cmd_windows, "train": cmd_train, "cv": cmd_cv, "val": cmd_val}[a.cmd](a)


if __name__ == "__main__":
    main()

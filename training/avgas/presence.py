"""Learned presence head on YAMNet outputs (issue 3 recall, issue 5 presence): study and export.

A per-class presence head over the frozen YAMNet 1024-d embedding of one analysis window,
trained on the project's own TRAIN recordings (windows of 0-3 source scenes with energy-aware
labels: training/avgas/presence_data.py), regularised (weight decay, input dropout, early stop
on the loss of VAL-split windows), and chosen on the VAL clip set of tools/tune_listening.py
through the exact tracker simulation (class-balanced and unweighted recall / wrong classes per
clip / median onset latency). Test clips and test mixtures are evaluated once, at the end.

  .venv/bin/python -m training.avgas.presence_data windows --split train --scenes 8000
  .venv/bin/python -m training.avgas.presence_data windows --split val --scenes 1000 --seed 1
  .venv/bin/python -m training.avgas.presence_data clips --split val
  .venv/bin/python -m training.avgas.presence study            # variants on val
  .venv/bin/python -m training.avgas.presence export [...]     # Assets/models/presence.safetensors
  .venv/bin/python -m training.avgas.presence final            # test clips + test mixtures, once

Exported head (safetensors, float32): y = sigmoid(fc2(relu(fc1(x)))) or sigmoid(fc1(x)) with the
input standardisation folded into fc1 (x = the raw YAMNet embedding). Score given to the tracker:
`combine` in the metadata: "head" (the head's probability) or "or" (noisy-OR of the head and the
YAMNet-label mapping: 1 - (1 - p_head)(1 - s_mapping)).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import tune_listening as tl  # noqa: E402

from training.avgas import presence_data as pdata  # noqa: E402

torch.set_num_threads(1)
CACHE = pdata.CACHE
OUT = ROOT / "Assets/models/presence.safetensors"
BASE_CFG = dict(tl.DEFAULT)            # the Swift tracker defaults


# ------------------------------------------------------------------ data
def load_windows(split, short=False):
    z = np.load(CACHE / f"windows_{split}_{pdata.split_tag(split)}.npz")
    e = z["emb48" if short else "emb96"].astype(np.float32)
    lg = z["logits48" if short else "logits96"].astype(np.float32)
    y = z["y48" if short else "y96"].astype(np.float32)
    return e, lg, y, z["scene"]


def feats(emb, logits, use_logits):
    return np.concatenate([emb, logits], 1) if use_logits else emb


# ------------------------------------------------------------------ model
class Head(torch.nn.Module):
    def __init__(self, d_in, n, hidden=0, dropout=0.0, mean=None, std=None):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.drop = torch.nn.Dropout(dropout)
        self.hidden = hidden
        if hidden:
            self.fc1 = torch.nn.Linear(d_in, hidden)
            self.fc2 = torch.nn.Linear(hidden, n)
        else:
            self.fc1 = torch.nn.Linear(d_in, n)

    def forward(self, x):
        h = self.drop((x - self.mean) / self.std)
        h = self.fc1(h)
        if self.hidden:
            h = self.fc2(self.drop(torch.relu(h)))
        return h

    def folded(self):
        """Weights with the standardisation folded into fc1 (for export)."""
        W = self.fc1.weight.detach() / self.std[None]
        b = self.fc1.bias.detach() - W @ self.mean
        out = {"fc1.weight": W, "fc1.bias": b}
        if self.hidden:
            out["fc2.weight"] = self.fc2.weight.detach().clone()
            out["fc2.bias"] = self.fc2.bias.detach().clone()
        return {k: v.contiguous().float() for k, v in out.items()}


def train_head(Xtr, Ytr, Xva, Yva, hidden=0, dropout=0.2, wd=1e-3, lr=1e-3, epochs=30, batch=512,
               pos_weight=1.0, seed=0, verbose=False, keep_last=False):
    """AdamW on BCE; keeps the epoch with the lowest val window BCE, or with `keep_last` the last
    epoch (a refit whose val windows are in its training data)."""
    torch.manual_seed(seed)
    mean, std = Xtr.mean(0), Xtr.std(0) + 1e-3
    net = Head(Xtr.shape[1], Ytr.shape[1], hidden, dropout, mean, std)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=wd)
    Xt, Yt = torch.from_numpy(Xtr), torch.from_numpy(Ytr)
    Xv, Yv = torch.from_numpy(Xva), torch.from_numpy(Yva)
    pw = torch.full((Ytr.shape[1],), float(pos_weight))
    lossf = torch.nn.BCEWithLogitsLoss(pos_weight=pw)
    best, best_state, best_ep = 1e9, None, -1
    g = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(len(Xt), generator=g)
        for i in range(0, len(Xt), batch):
            j = perm[i:i + batch]
            opt.zero_grad()
            lossf(net(Xt[j]), Yt[j]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            vl = float(torch.nn.functional.binary_cross_entropy_with_logits(net(Xv), Yv))
        if verbose:
            print(f"  epoch {ep}: val window BCE {vl:.4f}", flush=True)
        if vl < best or keep_last:
            best, best_ep = vl, ep
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    net.eval()
    return net, dict(val_bce=best, best_epoch=best_ep)


def predict(net, X):
    with torch.no_grad():
        return torch.sigmoid(net(torch.from_numpy(np.ascontiguousarray(X, np.float32)))).numpy()


# ------------------------------------------------------------------ clip evaluation
_clips = {}


def clips(split):
    """The clip set with cached features. An index (ids, classes, onsets, feature files) is kept
    under data/cache/presence/ so later runs do not need data/audio (the dataset helper may be
    rebuilding it)."""
    if split not in _clips:
        index = CACHE / f"clipset_{split}.json"
        if index.exists():
            cs = json.loads(index.read_text())
            for c in cs:
                for v in ("plain", "onset"):
                    c[f"f_{v}"] = dict(np.load(CACHE / "clips" / c[f"file_{v}"]))
        else:
            import hashlib
            cs = pdata.load_clip_set(split)
            rows = []
            for c in cs:
                r = dict(id=c["id"], cls=c["cls"], onset_s=c["onset_s"])
                for v, key in (("plain", "plain"), ("onset", "onset_audio")):
                    r[f"file_{v}"] = hashlib.sha1(np.ascontiguousarray(c[key], np.float32).tobytes()).hexdigest()[:20] + ".npz"
                rows.append(r)
            index.write_text(json.dumps(rows))
        for c in cs:
            for v in ("plain", "onset"):
                f = c[f"f_{v}"]
                c[f"t_{v}"], c[f"z_{v}"] = f["times"], f["logits96"]
        _clips[split] = cs
    return _clips[split]


def make_scorer(net, W, use_logits, combine, window=96):
    """scorer(clip, version, step) for tune_listening.evaluate."""
    def scorer(c, v, step):
        f = c[f"f_{v}"]
        e = f[f"emb{window}"][::step].astype(np.float32)
        lg = f[f"logits{window}"][::step].astype(np.float32)
        m = tl.class_scores(lg, W)
        if net is None:
            return m
        p = predict(net, feats(e, lg, use_logits)).astype(np.float32)
        if combine == "head":
            return p
        if combine == "or":
            return (1 - (1 - p) * (1 - m)).astype(np.float32)
        if combine == "max":
            return np.maximum(p, m)
        raise ValueError(combine)
    return scorer


def run_eval(split, scorer, cfg, fast_scorer=None, names=None, W=None, detail=False):
    if names is None:
        names, _, W = tl.load_vocab(str(ROOT / "Assets/classes.json"))
    cs = clips(split)
    if getattr(run_eval, "_last", None) is not (scorer, fast_scorer):
        for c in cs:                        # tune_listening caches scores per clip by id(scorer)
            c.pop("_key", None)
        run_eval._last = (scorer, fast_scorer)
    res = tl.evaluate(cs, names, W, cfg, hop=10, scorer=scorer, fast_scorer=fast_scorer)
    if detail:
        tl.print_detail(res, names)
    return tl.summarise(res, True), tl.summarise(res, False), res


def short(s):
    return f"{s['recall']:.3f} / {s['wrong']:.2f} / {s['latency']:.2f}"


# ------------------------------------------------------------------ mixtures (issue 5 protocol)
def mixture_scores(z, k, net, use_logits, combine):
    """[M, classes] clip scores of the k-source mixtures in cache `z` (emb{k}, logits{k}): the
    presence source per patch (the mapping alone when `net` is None; else the head alone, "or"
    or max with the mapping), max over the patches."""
    from training.avgas import evaluate as ev
    e, lg = z[f"emb{k}"], z[f"logits{k}"]
    M, P = e.shape[:2]
    m = ev.yamnet_mapping_scores(lg.reshape(M * P, -1)).astype(np.float32)
    if net is None:
        s = m
    else:
        p = predict(net, feats(e.reshape(M * P, -1), lg.reshape(M * P, -1), use_logits))
        s = p if combine == "head" else (1 - (1 - p) * (1 - m)) if combine == "or" else np.maximum(p, m)
    return s.reshape(M, P, -1).max(1)


def mixture_f1(net, use_logits, combine, thr=None, W=None):
    """Clip-level presence macro F1 on the fixed mixtures (training/avgas/evaluate.py protocol:
    patches every 0.48 s, max over patches >= threshold). The threshold is chosen on the VAL
    mixtures (data/features/audio_val_clips.npz, mean macro F1 over 1-3 sources) unless given.
    Returns (threshold, {k: val macro F1}, {k: test macro F1})."""
    from training.avgas import evaluate as ev
    zv = np.load(ROOT / "data/features/audio_val_clips.npz")
    val = {k: (mixture_scores(zv, k, net, use_logits, combine), ev._truth(zv[f"cls{k}"])) for k in (1, 2, 3)}
    grid = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9)
    vf = {t: {k: ev.f1_table(s >= t, T)[1] for k, (s, T) in val.items()} for t in grid}
    if thr is None:
        thr = max(grid, key=lambda t: np.mean(list(vf[t].values())))
    return thr, vf[thr], None


def mixture_f1_test(net, use_logits, combine, thr):
    from training.avgas import evaluate as ev
    z = np.load(ROOT / "data/features/audio_eval.npz")
    return {k: ev.f1_table(mixture_scores(z, k, net, use_logits, combine) >= thr, ev._truth(z[f"cls{k}"]))[1]
            for k in (1, 2, 3)}


# ------------------------------------------------------------------ commands
ONS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def sweep(split, scorer, label, ons=ONS, smooths=(0.25,), fast_scorer=None, fasts=(None,)):
    rows = []
    for on in ons:
        for sm in smooths:
            for fa in fasts:
                cfg = dict(BASE_CFG, on=on, off=round(on / 2, 3), smooth=sm)
                if fa is not None:
                    cfg["fast"] = fa
                b, u, _ = run_eval(split, scorer, cfg, fast_scorer=fast_scorer)
                rows.append((cfg, b, u))
                print(f"{label:40s} on {on:.2f} sm {sm:.2f} fast {fa}: bal {short(b)} | unw {short(u)}", flush=True)
    return rows


def cached_head(spec, make):
    """Trained heads are kept under data/cache/presence/heads/ by their spec string."""
    tag = f"{pdata.split_tag('train')}_{pdata.split_tag('val')}"
    path = CACHE / "heads" / tag / (spec.replace(",", "_").replace("=", "") + ".pt")
    if path.exists():
        d = torch.load(path)
        net = Head(d["d_in"], d["n"], d["hidden"], 0.0, d["state"]["mean"], d["state"]["std"])
        net.load_state_dict(d["state"])
        net.eval()
        return net, d["info"]
    net, info = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(d_in=net.fc1.in_features, n=(net.fc2 if net.hidden else net.fc1).out_features,
                    hidden=net.hidden, state=net.state_dict(), info=info), path)
    return net, info


def cmd_study(a):
    names, _, W = tl.load_vocab(str(ROOT / "Assets/classes.json"))
    if not a.train_only:
        print("baseline (YAMNet mapping, Swift defaults):")
        b, u, _ = run_eval("val", make_scorer(None, W, False, "head"), dict(BASE_CFG))
        print(f"baseline: bal {short(b)} | unw {short(u)}")
    e, lg, y, _ = load_windows("train")
    ev_, lgv, yv, _ = load_windows("val")
    for spec in a.variants:
        kv = dict(x.split("=") for x in spec.split(","))
        hidden = int(kv.get("h", 0)); drop = float(kv.get("drop", 0.2)); wd = float(kv.get("wd", 1e-3))
        use_logits = kv.get("logits", "0") == "1"; epochs = int(kv.get("ep", 20)); pw = float(kv.get("pw", 1))
        lr = float(kv.get("lr", 1e-3))
        net, info = cached_head(spec, lambda: train_head(feats(e, lg, use_logits), y, feats(ev_, lgv, use_logits), yv,
                                                          hidden, drop, wd, lr, epochs, pos_weight=pw))
        if a.train_only:
            print(f"== {spec}: {info}", flush=True)
            continue
        print(f"== {spec}: {info}", flush=True)
        for comb in a.combine:
            sweep("val", make_scorer(net, W, use_logits, comb), f"{spec} {comb}", ons=a.ons)
            if a.mix:
                thr, vf, _ = mixture_f1(net, use_logits, comb)
                print(f"   val mixtures thr {thr}: " + ", ".join(f"{k}src {v:.3f}" for k, v in vf.items()))


# The chosen head (on val; training/reports/listening.md): linear, "or" combination, tracker on 0.45.
CHOSEN = dict(spec="h=0,wd=1e-2,lr=3e-3,ep=25", hidden=0, dropout=0.2, wd=1e-2, lr=3e-3, epochs=25, seed=0,
              combine="or", tracker=dict(onThreshold=0.45, offThreshold=0.225, smoothingTime=0.25,
                                         minimumOnTime=0.5, holdTime=0.5))
FIXTURE = ROOT / "Tests/ListeningTests/Fixtures/presence_golden.safetensors"


def commit():
    return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()


def chosen_head():
    c = CHOSEN
    def make():
        e, lg, y, _ = load_windows("train")
        ev_, lgv, yv, _ = load_windows("val")
        return train_head(e, y, ev_, yv, c["hidden"], c["dropout"], c["wd"], c["lr"], c["epochs"], seed=c["seed"])
    return cached_head(c["spec"], make)


def graph(hidden, n_classes, d_in=1024):
    ops = [{"op": "linear", "in": "x", "out": "h" if hidden else "presence_logits", "weight": "fc1.weight", "bias": "fc1.bias"}]
    if hidden:
        ops += [{"op": "relu", "in": "h", "out": "h"},
                {"op": "linear", "in": "h", "out": "presence_logits", "weight": "fc2.weight", "bias": "fc2.bias"}]
    return {"format": "avgas-graph-v1", "name": "presence",
            "input": {"name": "x", "shape": [d_in], "what": "YAMNet 1024-d embedding of one 96-frame log-mel patch"},
            "ops": ops, "outputs": {"presence_logits": [n_classes]}}


def cmd_export(a):
    import safetensors_io
    names, _, W = tl.load_vocab(str(ROOT / "Assets/classes.json"))
    if a.refit:     # the recipe refitted on train + val recordings (presence_refit.py; listening.md)
        from training.avgas import presence_refit
        net, info = presence_refit.refit_head()
        windows = ("training/avgas/presence_data.py: 8000 scenes (seed 0) of 0-3 train + val recordings, "
                   f"{info['windows']} windows, energy-aware labels; 25 epochs, last kept (refit after the val learning curve)")
    elif a.pools:   # train + training-only pools (presence_refit.py pools; listening.md, ninth session)
        from training.avgas import presence_refit
        net, info = presence_refit.pools_head(a.pools)
        windows = (f"training/avgas/presence_data.py: 8000 scenes (seed 0) of 0-3 recordings of the train split and "
                   f"the training-only pools {'+'.join(a.pools)} ({info['recordings']} recordings), {info['windows']} "
                   "windows, energy-aware labels; early stop on 1000 val scenes")
    else:
        net, info = chosen_head()
        windows = ("training/avgas/presence_data.py: 8000 scenes (seed 0) of 0-3 train recordings, 72000 windows, "
                   "energy-aware labels; early stop on 1000 val scenes")
    t = {k: v.numpy() for k, v in net.folded().items()}
    metrics = json.loads(a.metrics) if a.metrics else {}
    meta = {"format": "avgas-graph-v1", "architecture": json.dumps(graph(net.hidden, len(names))),
            "classes": json.dumps(names), "combine": CHOSEN["combine"],
            "combine_rule": "or: score_c = 1 - (1 - sigmoid(presence_logit_c)) * (1 - s_c), s_c = the noisy-OR "
                            "YAMNet-label mapping of Assets/classes.json; head: score_c = sigmoid(presence_logit_c)",
            "tracker": json.dumps(CHOSEN["tracker"]),
            "input": "YAMNet 1024-d embedding (global average pool) of one 96x64 log-mel patch, float graph "
                     "(.build/models/yamnet_float.onnx == Assets/models/yamnet.safetensors in Swift); the input "
                     "standardisation of training is folded into fc1",
            "training": json.dumps(dict({k: v for k, v in CHOSEN.items() if k not in ("tracker",)}, **info,
                                        windows=windows,
                                        split="training/avgas/presence_split.json")),
            "training_commit": commit(), "metrics": json.dumps(metrics),
            "license": "trained by avgas-live on its dataset (data/manifest.csv licenses); see Assets/models/NOTICE"}
    safetensors_io.save(OUT, t, meta)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    # Parity fixture: 8 real windows (val scenes) -> probabilities and "or" scores with given mapping scores.
    ev_, lgv, yv, _ = load_windows("val")
    idx = np.linspace(0, len(ev_) - 1, 8).astype(int)
    x = ev_[idx].astype(np.float32)
    m = tl.class_scores(lgv[idx].astype(np.float32), W)
    with torch.no_grad():
        logit = (torch.from_numpy(x) @ torch.from_numpy(t["fc1.weight"]).T + torch.from_numpy(t["fc1.bias"])).numpy()
    prob = predict(net, x)
    assert np.abs(1 / (1 + np.exp(-logit)) - prob).max() < 1e-5, "folded weights differ from the trained head"
    fx = {"input": x, "mapping": m.astype(np.float32), "probabilities": prob.astype(np.float32),
          "scores": (1 - (1 - prob) * (1 - m)).astype(np.float32)}
    safetensors_io.save(FIXTURE, fx, {"what": "Swift parity fixture for Assets/models/presence.safetensors: input [8,1024] "
                                      "YAMNet embeddings of val-split training windows, mapping [8,46] noisy-OR scores of "
                                      "the same windows, PyTorch probabilities [8,46] and combined 'or' scores [8,46]",
                                      "head_commit": meta["training_commit"]})
    print(f"wrote {FIXTURE}")


def cmd_final(a):
    """The one evaluation on held-out data: the 44 test clips (chosen head vs the mapping at the
    Swift defaults) and the fixed test mixtures (issue 5's presence protocol)."""
    names, _, W = tl.load_vocab(str(ROOT / "Assets/classes.json"))
    if a.refit:
        from training.avgas import presence_refit
        net, _ = presence_refit.refit_head()
    elif a.pools:
        from training.avgas import presence_refit
        net, _ = presence_refit.pools_head(a.pools)
    else:
        net, _ = chosen_head()
    tcfg = CHOSEN["tracker"]
    cfg = dict(BASE_CFG, on=tcfg["onThreshold"], off=tcfg["offThreshold"], smooth=tcfg["smoothingTime"],
               min_on=tcfg["minimumOnTime"], hold=tcfg["holdTime"])
    for label, sc, c in (("YAMNet mapping, Swift defaults", make_scorer(None, W, False, "head"), dict(BASE_CFG)),
                         ("learned head (or), on 0.45", make_scorer(net, W, False, CHOSEN["combine"]), cfg)):
        res = tl.evaluate(clips("test"), names, W, c, hop=10, scorer=sc)
        for cl in clips("test"):
            cl.pop("_key", None)
        u = tl.summarise(res, False)
        lats = sorted(r["latency"] for r in res if r["latency"] is not None)
        p90 = lats[min(len(lats) - 1, len(lats) * 9 // 10)] if lats else float("nan")
        print(f"test clips, {label}: recall {u['recall']:.3f} wrong {u['wrong']:.2f} median latency {u['latency']:.2f} s "
              f"p90 {p90:.2f} s | plain recall {u['recall_plain']:.3f} wrong {u['wrong_plain']:.2f}")
        if a.detail:
            tl.print_detail(res, names)
    # The refit trained on the val recordings: its threshold is the train-only head's, chosen on val.
    thr, vf, _ = mixture_f1(chosen_head()[0] if a.refit else net, False, CHOSEN["combine"])
    print(f"val mixtures, train-only head ({CHOSEN['combine']}), threshold {thr}: " + ", ".join(f"{k}-src {v:.3f}" for k, v in vf.items()))
    t = mixture_f1_test(net, False, CHOSEN["combine"], thr)
    print(f"TEST mixtures, head ({CHOSEN['combine']}), threshold {thr}: " + ", ".join(f"{k}-src {v:.3f}" for k, v in t.items()))
    for mthr in (0.45, mixture_f1(None, False, "head")[0]):
        t = mixture_f1_test(None, False, "head", mthr)
        print(f"TEST mixtures, YAMNet mapping, threshold {mthr}: " + ", ".join(f"{k}-src {v:.3f}" for k, v in t.items()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("study")
    p.add_argument("--variants", nargs="+", default=["h=0"])
    p.add_argument("--combine", nargs="+", default=["head", "or"])
    p.add_argument("--ons", type=float, nargs="+", default=list(ONS))
    p.add_argument("--mix", action="store_true")
    p.add_argument("--train-only", action="store_true")
    p = sub.add_parser("final")
    p.add_argument("--detail", action="store_true")
    p.add_argument("--refit", action="store_true", help="the train + val refit (presence_refit.py)")
    p.add_argument("--pools", nargs="+", help="the head on train + these training-only pools (presence_refit.py pools)")
    p = sub.add_parser("export")
    p.add_argument("--metrics", help="JSON headline metrics for the metadata")
    p.add_argument("--refit", action="store_true", help="export the train + val refit (presence_refit.py)")
    p.add_argument("--pools", nargs="+", help="export the head on train + these training-only pools (presence_refit.py pools)")
    a = ap.parse_args(argv)
    {"study": cmd_study, "export": cmd_export, "final": cmd_final}[a.cmd](a)


if __name__ == "__main__":
    main()

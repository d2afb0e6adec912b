"""Study (issue 3, onset latency): does the LAST time column of YAMNet's pre-pool feature map
detect a new source earlier than the global-average-pooled embedding?

YAMNet ends in a [1024, 3, 2] map (time x frequency cells of the 96x64 patch) that the global
average pool turns into the 1024-d embedding. The last time column sees the same full-window
context but weights the most recent part of the window more. Three scorers are compared on the
VAL clip set with the tracker simulation of tools/tune_listening.py (= the Swift tracker):

  pool   the committed presence head on the pooled embedding, "or" with the mapping (baseline)
  last   the committed head and the label mapping both applied to the last column (no training)
  y96 / y48  linear heads trained like the committed one (same hyper-parameters) on last-column
         features of the same 8000 training scenes, with the window label (y96) or the label of
         the window's last 48 frames (y48)

  .venv/bin/python -m training.avgas.presence_prepool     (about 10 minutes, 1 thread)

Results are written up in training/reports/listening.md; nothing here is used by the program.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import frontend  # noqa: E402
import tune_listening as tl  # noqa: E402

from training.avgas import presence as P  # noqa: E402
from training.avgas import presence_data as pdata  # noqa: E402

PRE = "/model/layer14/pointwise_conv/relu/Relu_output_0"   # input of the GlobalAveragePool
CACHE = pdata.CACHE / "prepool"


class YamnetLast:
    """Float YAMNet (dynamic batch and time) that returns the last time column of the pre-pool
    map (mean of its 2 frequency cells) and the classifier applied to it, plus the pooled pair."""

    def __init__(self, threads: int = 1):
        import onnx
        self.yam = pdata.Yamnet(threads, extra_outputs=(PRE,))
        init = {i.name: i for i in self.yam.onnx_model.graph.initializer}
        self.wc = onnx.numpy_helper.to_array(init["model.classifier.weight"])
        self.bc = onnx.numpy_helper.to_array(init["model.classifier.bias"])
        self.sess = self.yam.sess

    def both(self, patches: np.ndarray, batch: int = 64):
        """[P, T, 64] -> (pooled emb, pooled logits, last-column emb, last-column logits)."""
        E, L, EL = [], [], []
        for i in range(0, len(patches), batch):
            lo, em, mp = self.sess.run(["class_scores", "embedding", PRE],
                                       {"audio": np.ascontiguousarray(patches[i:i + batch, None], np.float32)})
            E.append(em); L.append(lo); EL.append(mp[:, :, -1, :].mean(-1))
        E, L, EL = (np.concatenate(a).astype(np.float32) for a in (E, L, EL))
        return E, L, EL, (EL @ self.wc.T + self.bc).astype(np.float32)

    def __call__(self, patches: np.ndarray, batch: int = 64):
        """pdata.Yamnet's interface, but with the last-column features (for build_windows)."""
        _, _, el, ll = self.both(patches, batch)
        return el, ll


def clip_last_features(split: str, yam: YamnetLast):
    """Last-column features of every clip of the split (both versions), every 5 frames like
    presence_data.clip_features; cached per clip audio."""
    CACHE.mkdir(parents=True, exist_ok=True)
    raw = {c["id"]: c for c in tl.load_clips(split, ids=set(pdata.split_ids(split)))}
    cs = P.clips(split)
    for c in cs:
        r = raw[c["id"]]
        for v, key in (("onset", "onset_audio"), ("plain", "plain")):
            path = CACHE / c[f"file_{v}"]
            if not path.exists():
                p = frontend.patches(frontend.log_mel(r[key]), 5)
                e, l, el, ll = yam.both(p)
                assert np.abs(e - c[f"f_{v}"]["emb96"].astype(np.float32)).max() < 2e-2, "pooled features differ"
                np.savez(path, embL=el.astype(np.float16), logitsL=ll)
            z = np.load(path)
            c[f"f_{v}"]["embL"] = z["embL"].astype(np.float32)
            c[f"f_{v}"]["logitsL"] = z["logitsL"].astype(np.float32)
    return cs


def main():
    names, _, W = tl.load_vocab(str(ROOT / "Assets/classes.json"))
    yam = YamnetLast(threads=1)
    clip_last_features("val", yam)
    tc = P.CHOSEN["tracker"]
    cfg = dict(P.BASE_CFG, on=tc["onThreshold"], off=tc["offThreshold"], smooth=tc["smoothingTime"],
               min_on=tc["minimumOnTime"], hold=tc["holdTime"])
    committed, _ = P.chosen_head()

    def scorer(net, emb_key, map_key):
        def s(c, v, step):
            f = c[f"f_{v}"]
            m = tl.class_scores(f[f"logits{map_key}"][::step].astype(np.float32), W)
            p = P.predict(net, f[f"emb{emb_key}"][::step].astype(np.float32)).astype(np.float32)
            return (1 - (1 - p) * (1 - m)).astype(np.float32)
        return s

    rows = [("pool (committed)", scorer(committed, "96", "96")), ("last, committed head", scorer(committed, "L", "L"))]
    # heads trained on last-column windows of the same scenes (seed 0, 8000 / 1000 scenes)
    orig_cache, orig_yam = pdata.CACHE, pdata.Yamnet
    pdata.CACHE, pdata.Yamnet = CACHE, YamnetLast
    try:
        for split, scenes, seed in (("train", 8000, 0), ("val", 1000, 1)):
            if not (CACHE / f"windows_{split}_{pdata.split_tag(split)}.npz").exists():
                pdata.build_windows(split, scenes, seed)
    finally:
        pdata.CACHE, pdata.Yamnet = orig_cache, orig_yam
    z = {s: np.load(CACHE / f"windows_{s}_{pdata.split_tag(s)}.npz") for s in ("train", "val")}
    c = P.CHOSEN
    for lab in ("y96", "y48"):
        net, info = P.train_head(z["train"]["emb96"].astype(np.float32), z["train"][lab].astype(np.float32),
                                 z["val"]["emb96"].astype(np.float32), z["val"][lab].astype(np.float32),
                                 c["hidden"], c["dropout"], c["wd"], c["lr"], c["epochs"], seed=c["seed"])
        rows.append((f"last, head trained on last column ({lab})", scorer(net, "L", "L")))
    for label, sc in rows:
        for on in (0.40, 0.45, 0.50):
            for sm in (0.25, 0.15):
                b, u, _ = P.run_eval("val", sc, dict(cfg, on=on, off=on / 2, smooth=sm))
                print(f"{label:44s} on {on:.2f} smoothing {sm:.2f} s: class-balanced {P.short(b)} | unweighted {P.short(u)}",
                      flush=True)


if __name__ == "__main__":
    main()

"""The onset path's detector and tiling (training/avgas/presence_onset.py) on the same synthetic
sequences as Tests/ListeningTests/OnsetTests.swift, so the simulation that chose the settings and
the Swift OnsetDetector follow the same rules."""
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from training.avgas import presence_onset as po  # noqa: E402


def frames(levels_db):
    """Log-mel frames whose level is each dB value (all 64 bands equal)."""
    v = np.asarray(levels_db, np.float64) / (20 / np.log(10))
    return np.repeat(v[:, None], 64, 1).astype(np.float32)


def test_level():
    assert abs(po.frame_level(frames([-40]))[0] + 40) < 1e-4


def test_onset_after_quiet_not_during_steady_sound():
    lo = po.onsets(po.frame_level(frames([-60] * 50 + [-30] * 100)), **po.DET)
    assert lo[49] == -1 and lo[50] == 50 and lo[149] == 50
    lo = po.onsets(po.frame_level(frames([-60] * 30 + [-50] * 30)), **po.DET)
    assert lo[-1] == -1


def test_rearm_after_quiet():
    lv = [-60] * 10 + [-30] * 10 + [-60] * 20 + [-30] * 10 + [-60] * 40 + [-30] * 5
    lo = po.onsets(po.frame_level(frames(lv)), **po.DET)
    assert lo[45] == 10 and lo[90] == 90


def test_tiled_span_and_tile():
    lo = po.onsets(po.frame_level(frames([-60] * 100 + [-20] * 200)), **po.DET)
    assert lo[150] == 100
    fr = np.zeros((300, 64), np.float32)
    fr[:, 0] = np.arange(300)                # band 0 holds the frame index (tiling only)
    assert po.DET["pre"] == 0                # the Swift default (OnsetConfiguration.preFrames)
    idx, p = po.tiled_patches(fr, lo, np.array([122, 123, 194, 195]), **po.DET)
    assert list(idx) == [1, 2]               # from the onset frame: 23 frames none, 24..95 yes
    assert list(p[0, :, 0]) == [100 + k % 24 for k in range(96)]
    # with 2 frames before the onset (OnsetTests.testTiledSpanBounds' second detector)
    idx, p = po.tiled_patches(fr, lo, np.array([120, 121, 192, 193]), **dict(po.DET, pre=2))
    assert list(idx) == [1, 2]               # 23 frames: none; 24..95: yes; 96: the window is all new
    # hop ending at 121: frames 98..121 (24), tiled to 96 ending with frame 121
    assert list(p[0, :, 0]) == [98 + k % 24 for k in range(96)]
    # 95 frames 98..192: 2 copies (190), the last 96 start at copy index 94, i.e. frame 192
    assert p[1, -1, 0] == 192 and p[1, 0, 0] == 192 and p[1, 1, 0] == 98


def test_fills_match_the_swift_rules():
    """OnsetDetector.fill (Swift, OnsetTests.testMirroredFill): 5 frames into 12."""
    seg = np.repeat(np.arange(5, dtype=np.float32)[:, None], 3, 1)
    P = po.frontend.PATCH_FRAMES
    mirror = po.fill(seg, "mirror")
    repeat = po.fill(seg, "repeat")
    assert mirror.shape == repeat.shape == (P, 3)
    assert mirror[-12:, 0].tolist() == [3, 4, 4, 3, 2, 1, 0, 0, 1, 2, 3, 4]
    assert repeat[-12:, 0].tolist() == [3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    assert mirror[-1, 0] == repeat[-1, 0] == 4          # both end with the newest frame
    st = po.fill(seg, "stretch")
    assert st[0, 0] == 0 and st[-1, 0] == 4 and np.all(np.diff(st[:, 0]) >= 0)


def test_refit_subsets_keep_groups_whole_and_every_class():
    """presence_refit.draw_subset: whole split groups, at least one per class, deterministic."""
    from training.avgas import presence_refit as pr
    by = {"dog": {f"g{k}": [f"d{k}_0", f"d{k}_1"] for k in range(5)},
          "cat": {"c": ["c0"]},
          "cow": {f"h{k}": [f"w{k}"] for k in range(10)}}
    sub = pr.draw_subset(by, 0.6, seed=1)
    assert sub == pr.draw_subset(by, 0.6, seed=1)
    assert sub != pr.draw_subset(by, 0.6, seed=2) or sub != pr.draw_subset(by, 0.6, seed=3)
    for groups in by.values():                       # a group is all in or all out
        for ids in groups.values():
            assert all(i in sub for i in ids) or not any(i in sub for i in ids)
    assert "c0" in sub                               # a one-group class keeps its group
    assert sum(i.startswith("d") for i in sub) == 3 * 2      # round(0.6 * 5) groups of 2
    assert sum(i.startswith("w") for i in sub) == 6
    assert len(pr.draw_subset(by, 1.0, seed=1)) == 10 + 1 + 10


def test_cv_folds_hold_out_whole_groups_once():
    """presence_refit.deal_folds: every group of a class with >= 2 groups is held out exactly once,
    whole; a class's groups land in different folds (up to 4 groups); one-group classes stay in
    every training part; deterministic and even."""
    from training.avgas import presence_refit as pr
    by = {"dog": {f"g{k}": [f"d{k}_0", f"d{k}_1"] for k in range(3)},
          "cat": {"c": ["c0"]},
          "cow": {f"h{k}": [f"w{k}"] for k in range(9)}}
    folds = pr.deal_folds(by, 4, seed=0)
    assert folds == pr.deal_folds(by, 4, seed=0)
    flat = [i for f in folds for i in f]
    assert sorted(flat) == sorted(i for c in ("dog", "cow") for g in by[c].values() for i in g)   # once each
    assert "c0" not in flat
    for ids in by["dog"].values():                   # whole groups, three dog groups in three folds
        assert sum(all(i in f for i in ids) for f in folds) == 1
    assert len({k for k, f in enumerate(folds) for i in f if i.startswith("d")}) == 3
    assert max(len(f) for f in folds) - min(len(f) for f in folds) <= 2


def test_readouts_pool_the_cells():
    """presence_readout: the mid-level read-outs are the mean / max over time x frequency cells,
    and each study feature has the width the report states."""
    from training.avgas import presence_readout as pr
    rng = np.random.default_rng(0)
    l12, l13 = rng.random((3, 512, 6, 4)), rng.random((3, 1024, 3, 2))
    f = pr.READOUTS["midlayer"].reduce(l12, l13)
    assert np.allclose(f["l12mean"], l12.mean((2, 3))) and np.allclose(f["l12max"], l12.max((2, 3)))
    assert np.allclose(f["l13mean"], l13.mean((2, 3)))
    e = rng.random((3, 1024))
    widths = {name: pr.FEATURES[name][1](e, f).shape[1] for name in ("l12", "l12mm", "emb+l12", "l13")}
    assert widths == {"l12": 512, "l12mm": 1024, "emb+l12": 1536, "l13": 1024}
    pre = rng.random((3, 1024, 3, 2))
    assert np.allclose(pr.READOUTS["maxpool"].reduce(pre)["max96"], pre.max((2, 3)))


def test_knn_patches_logistic_and_class_max():
    """presence_knn: bank patches skip quiet stretches, cap at 8, fill a short recording; the
    logistic fit recovers a known (a, b); class_max takes the largest cosine per class."""
    from training.avgas import presence_knn as pk
    rng = np.random.default_rng(0)
    sr = 16000
    x = np.concatenate([0.3 * rng.standard_normal(2 * sr), 1e-6 * rng.standard_normal(3 * sr)])
    p = pk.recording_patches(x)
    # 2 s of sound then 3 s of near-silence: only patches starting within the loud part qualify
    assert 1 <= len(p) <= 4 and p.shape[1:] == (96, 64)
    assert len(pk.recording_patches(0.3 * rng.standard_normal(30 * sr))) == pk.MAX_PER
    assert pk.recording_patches(0.3 * rng.standard_normal(sr // 4)).shape == (1, 96, 64)
    s = rng.uniform(-1, 1, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-(8 * s - 2)))).astype(float)
    a, b = pk.logistic_fit(s, y)
    assert abs(a - 8) < 0.6 and abs(b + 2) < 0.3
    bank = pk.Bank.__new__(pk.Bank)
    bank.cls, bank.n = np.array([0, 0, 2]), 4
    m = bank.class_max(np.array([[0.1, 0.5, 0.3]], np.float32))
    assert m.tolist() == [[0.5, -1.0, pytest.approx(0.3), -1.0]]


def test_finetune_tail_is_yamnets_last_block():
    """presence_finetune.Tail starts as YAMNet's layer14 + average pool: the converted weights'
    layout (depthwise [kh,kw,c], pointwise [cin,cout], HWC activations) turned into PyTorch's
    must give what a direct channels-last computation gives."""
    import torch
    from training.avgas import presence_finetune as pf
    sys.path.insert(0, str(ROOT / "tools"))
    import safetensors_io
    t, _ = safetensors_io.load(str(ROOT / "Assets/models/yamnet.safetensors"))
    dw, dwb = t["layers.13.depthwise.weight"], t["layers.13.depthwise.bias"]
    pw, pwb = t["layers.13.pointwise.weight"], t["layers.13.pointwise.bias"]
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 2, 1024)).astype(np.float32)           # [N, H, W, C] after layer 13's ReLU
    pad = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    d = np.zeros_like(x)
    for i in range(3):
        for j in range(2):
            d[:, i, j] = (pad[:, i:i + 3, j:j + 3] * dw[None]).sum((1, 2)) + dwb
    ref = (np.maximum(np.maximum(d, 0) @ pw + pwb, 0)).mean((1, 2))
    with torch.no_grad():
        got = pf.Tail()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert got.shape == (2, 1024)
    assert np.abs(got - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())

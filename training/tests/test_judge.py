"""Smoke test of the image judge (issue 5): the v3 head fitter on separable generated features,
and a v3 judge file -> load_judge -> judge_scores (frozen encoder, test-time views, two heads)
with sigmoid(head(features)) == scores, the interface training/generator/evaluate.py uses."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from training.avgas import judge as J  # noqa: E402
from training.avgas.judge_features import layer_slices, view  # noqa: E402


def test_views_shapes():
    x = np.random.default_rng(0).integers(0, 255, (2, 128, 128, 3), dtype=np.uint8)
    assert (view(x, "flip") == x[:, :, ::-1]).all()
    assert view(x, "c85").shape == (2, 109, 109, 3)
    assert (view(x, "c85f") == view(x, "c85")[:, :, ::-1]).all()
    p = view(x, "p115")
    assert p.shape == (2, 147, 147, 3) and (p[:, 0] == 200).all()


@pytest.mark.parametrize("kind", ["softmax", "bce", "softmax+ncm"])
def test_fit_member_separable(kind):
    g = np.random.default_rng(0)
    C, n = 46, 5
    layers = ["s7", "head"]
    d = 320 + 1280
    cent = g.standard_normal((C, d)).astype(np.float32) * 3
    y = np.repeat(np.arange(C), n)
    views = [cent[y] + g.standard_normal((len(y), d)).astype(np.float32) for _ in range(2)]
    m = {"arch": "lite0", "layers": layers, "blockl2": True, "tta": "prob",
         "head": {"kind": kind, "wd": 1e-3, "tau": 0.05, "iters": 30}}
    t = J.fit_member(m, views, y, C)
    yv = np.arange(C)
    xv = [cent[yv] + g.standard_normal((C, d)).astype(np.float32) for _ in range(2)]
    p = J.member_probs(t, m, xv)
    assert p.shape == (C, C) and np.isfinite(p).all()
    assert (p.argmax(1) == yv).mean() > 0.9


def test_v3_file_roundtrip(tmp_path):
    import safetensors_io
    from training.avgas.visual import class_names
    names = class_names()
    C = len(names)
    g = np.random.default_rng(1)
    members = [{"arch": "lite0", "norm": "imagenet", "layers": ["s7", "head"], "blockl2": True,
                "views": ["id", "c85"], "tta": "prob", "head": {"kind": "softmax+ncm", "wd": 1e-3, "tau": 0.05}},
               {"arch": "lite0", "norm": "imagenet", "layers": ["head"], "blockl2": False,
                "views": ["id", "flip"], "tta": "feature", "head": {"kind": "softmax", "wd": 1e-3}}]
    tensors = {}
    for i, m in enumerate(members):
        d = sum(layer_slices("lite0")[n].stop - layer_slices("lite0")[n].start for n in m["layers"])
        tensors.update({f"m{i}.feat_mean": g.standard_normal(d).astype(np.float32),
                        f"m{i}.feat_std": np.ones(d, np.float32),
                        f"m{i}.out.weight": g.standard_normal((C, d)).astype(np.float32) * 0.01,
                        f"m{i}.out.bias": np.zeros(C, np.float32)})
    p = g.standard_normal((C, 320 + 1280)).astype(np.float32)
    tensors["m0.protos"] = p / np.linalg.norm(p, axis=1, keepdims=True)
    path = tmp_path / "judge.safetensors"
    safetensors_io.save(path, tensors, {"format": "avgas-judge-v3", "classes": json.dumps(names),
                                        "members": json.dumps(members)})
    j = J.load_judge(path)
    imgs = g.integers(0, 255, (2, 96, 96, 3), dtype=np.uint8)
    s = J.judge_scores(imgs, judge=j)
    assert s.shape == (2, C) and np.isfinite(s).all() and (s > 0).all() and (s < 1).all()
    f = j.features(imgs)
    assert f.shape == (2, 2 * (320 + 1280) + 2 * 1280)
    np.testing.assert_allclose(1 / (1 + np.exp(-j.head(f))), s, rtol=1e-4, atol=1e-6)
    # probabilities of the mean of two softmax members sum to 1
    np.testing.assert_allclose(s.sum(1), 1, atol=1e-4)


def test_v4_adds_the_finetuned_member(tmp_path):
    """A v4 file = v3 members + "ft." tensors of a fine-tuned Lite0 top (float16): the judge's
    probability is the mean of the v3 part and the fine-tuned member's (image + mirror), and
    sigmoid(head(features)) == scores still holds."""
    import torch
    import safetensors_io
    from training.avgas.judge_finetune import FineTuned
    from training.avgas.visual import class_names
    names = class_names()
    C = len(names)
    g = np.random.default_rng(2)
    m = {"arch": "lite0", "norm": "imagenet", "layers": ["head"], "blockl2": False,
         "views": ["id"], "tta": "feature", "head": {"kind": "softmax", "wd": 1e-3}}
    tensors = {"m0.feat_mean": np.zeros(1280, np.float32), "m0.feat_std": np.ones(1280, np.float32),
               "m0.out.weight": g.standard_normal((C, 1280)).astype(np.float32) * 0.01,
               "m0.out.bias": np.zeros(C, np.float32)}
    torch.manual_seed(0)
    ft = FineTuned(C)
    for k, v in ft.state().items():
        x = v.numpy()
        tensors["ft." + k] = x.astype(np.float16) if x.dtype.kind == "f" else x
    path = tmp_path / "judge_v4.safetensors"
    safetensors_io.save(path, tensors, {"format": "avgas-judge-v4", "classes": json.dumps(names),
                                        "members": json.dumps([m]), "finetuned": "{}"})
    j = J.load_judge(path)
    imgs = g.integers(0, 255, (2, 96, 96, 3), dtype=np.uint8)
    s = J.judge_scores(imgs, judge=j)
    f = j.features(imgs)
    assert f.shape == (2, 1280 + 2 * 1280)
    np.testing.assert_allclose(1 / (1 + np.exp(-j.head(f))), s, rtol=1e-4, atol=1e-6)
    # the fine-tuned part equals FineTuned.probs with the float16-rounded weights
    ft.load({k: torch.from_numpy(np.array(tensors["ft." + k], np.float32 if tensors["ft." + k].dtype.kind == "f"
                                          else tensors["ft." + k].dtype)) for k in ft.state()})
    v3 = J.member_probs({k[3:]: v for k, v in tensors.items() if k.startswith("m0.")}, m, [f[:, :1280]])
    np.testing.assert_allclose(s, 0.5 * (v3 + ft.probs(imgs)), atol=1e-5)


def test_refit_learning_curve_subsets_keep_groups_whole():
    from training.avgas.judge_refit import group_subset
    g = np.random.default_rng(3)
    groups = np.array([f"g{i}" for i in g.integers(0, 40, 300)])
    split = np.where(g.random(300) < 0.7, "train", "val")
    tr = split == "train"
    m = group_subset(tr, groups, 0.8, seed=5)
    assert not (m & ~tr).any()                       # never a val row
    kept = set(groups[m])
    n_train_groups = len(set(groups[tr]))
    assert len(kept) == round(0.8 * n_train_groups)
    # a kept group brings every one of its train rows
    assert all(m[i] for i in np.nonzero(tr)[0] if groups[i] in kept)
    assert (group_subset(tr, groups, 0.8, seed=5) == m).all()      # seeded
    assert (group_subset(tr, groups, 1.0, seed=0) == tr).all()


def test_fit_member_soft_targets_learn_two_subject_rows():
    """Rows labelled 0.5 / 0.5 (two-subject composites) teach the softmax head to put both classes
    on top for such rows, while single rows stay right."""
    g = np.random.default_rng(0)
    C, n, d = 46, 5, 320 + 1280
    cent = g.standard_normal((C, d)).astype(np.float32) * 3
    y = np.repeat(np.arange(C), n)
    views = [cent[y] + g.standard_normal((len(y), d)).astype(np.float32) for _ in range(2)]
    a, b = g.integers(0, C, 300), g.integers(0, C, 300)
    keep = a != b
    a, b = a[keep], b[keep]
    mix = lambda: (0.5 * (cent[a] + cent[b]) + g.standard_normal((len(a), d))).astype(np.float32)
    P = np.zeros((len(a), C), np.float32)
    P[np.arange(len(a)), a] += 0.5
    P[np.arange(len(a)), b] += 0.5
    m = {"arch": "lite0", "layers": ["s7", "head"], "blockl2": False, "tta": "prob",
         "head": {"kind": "softmax", "wd": 1e-3, "iters": 40}}
    t = J.fit_member(m, views, y, C, extra=([mix(), mix()], P))
    yv = np.arange(C)
    p1 = J.member_probs(t, m, [cent[yv] + g.standard_normal((C, d)).astype(np.float32)])
    assert (p1.argmax(1) == yv).mean() > 0.9
    p2 = J.member_probs(t, m, [mix()])
    top2 = np.argsort(-p2, 1)[:, :2]
    both = np.mean([{a[k], b[k]} == set(top2[k]) for k in range(len(a))])
    assert both > 0.8
    with pytest.raises(AssertionError):
        J.fit_member(dict(m, head={"kind": "bce", "wd": 1e-3}), views, y, C, extra=([mix()], P))


def test_composites_show_both_pictures():
    from training.avgas.judge_multilabel import composite, make_composites
    g = np.random.default_rng(0)
    red = np.zeros((128, 128, 3), np.uint8); red[..., 0] = 255
    blue = np.zeros((128, 128, 3), np.uint8); blue[..., 2] = 255
    for layout in ("lr", "tb", "collage"):
        c = composite(red, blue, layout, g)
        assert c.shape == (128, 128, 3) and c.dtype == np.uint8
        is_red = (c[..., 0] > 200) & (c[..., 2] < 50)
        is_blue = (c[..., 2] > 200) & (c[..., 0] < 50)
        assert is_red.sum() > 0 and is_blue.sum() > 1000
    imgs = np.stack([red, blue, red, blue])
    out, pairs = make_composites(imgs, ["a", "b", "a", "b"], 6)
    assert out.shape == (6, 128, 128, 3) and all(set(p) == {"a", "b"} for p in pairs)

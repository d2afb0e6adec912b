"""Smoke test of the separator side (issue 5) on small generated features (no dataset needed):
shapes, finite losses, loss goes down, better-than-chance validation, export -> load -> same
outputs (PyTorch and the numpy graph interpreter), FLOP budget, fixture writer."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from training.avgas import export, models, train  # noqa: E402
from training.avgas.visual import class_names  # noqa: E402

K = models.N_CLASSES


def make_features(d: Path, n_train=1536, n_val=256, seed=0):
    """Class prototypes in a 1024-d 'YAMNet' space; a window = sum of its sources' prototypes
    (+ instance noise), images = noisy class centroids in 128-d."""
    g = np.random.default_rng(seed)
    proto = np.abs(g.standard_normal((K, 1024))).astype(np.float32)
    cent = g.standard_normal((K, 128)).astype(np.float32)
    names = class_names()

    def windows(n):
        cls = np.full((n, 3), -1, np.int16)
        stem = np.zeros((n, 3, 1024), np.float32)
        for i in range(n):
            m = int(g.integers(0, 4))
            for j, c in enumerate(g.choice(K, m, replace=False)):
                cls[i, j] = c
                stem[i, j] = proto[c] + 0.3 * np.abs(g.standard_normal(1024))
        mix = stem.sum(1) + 0.1 * np.abs(g.standard_normal((n, 1024)))
        return dict(mix_emb=mix.astype(np.float32), mix_logits=np.zeros((n, 521), np.float32),
                    stem_emb=stem.astype(np.float16), stem_cls=cls)

    np.savez(d / "audio_train.npz", **windows(n_train))
    np.savez(d / "audio_val.npz", **windows(n_val))
    ids, emb, cl, sp = [], [], [], []
    for c in range(K):
        for s in ("train", "train", "train", "val", "test"):
            v = cent[c] + 0.5 * g.standard_normal(128)
            ids.append(f"i{len(ids)}"); emb.append(v / np.linalg.norm(v)); cl.append(names[c]); sp.append(s)
    np.savez(d / "image_embeddings.npz", ids=np.array(ids), emb=np.array(emb, np.float32),
             classes=np.array(cl), splits=np.array(sp))
    # fixed eval mixtures (evaluate.py and the fixture writer) and val clip mixtures (thresholds):
    # n mixtures of exactly k sources, 5 patches each
    def clip_sets(n, tag):
        e = {"classes": np.array(names)}
        for k in (1, 2, 3):
            cls = np.full((n, 3), -1, np.int16)
            emb = np.zeros((n, 5, 1024), np.float32)
            for i in range(n):
                cls[i, :k] = g.choice(K, k, replace=False)
                for p_ in range(5):
                    emb[i, p_] = sum(proto[c] + 0.3 * np.abs(g.standard_normal(1024)) for c in cls[i, :k])
            e[f"emb{k}"], e[f"cls{k}"] = emb, cls
            e[f"logits{k}"] = np.zeros((n, 5, 521), np.float32)
            e[f"ids{k}"] = np.array([f"{tag}{k}_{i}" for i in range(n)])
        return e
    np.savez(d / "audio_eval.npz", **clip_sets(12, "mix"))
    np.savez(d / "audio_val_clips.npz", **clip_sets(12, "val"))


@pytest.mark.parametrize("kind", ["separator", "ablation"])
def test_train_export_roundtrip(tmp_path, kind):
    torch.set_num_threads(1)
    feat = tmp_path / "features"
    feat.mkdir()
    make_features(feat)
    model, proj, state, cfg = train.train(kind, feat_dir=feat, steps=150, batch=64, ckpt_every=50,
                                          log=lambda *a: None, quiet=True)
    h = state["history"]
    assert all(np.isfinite(r["total"]) for r in h)
    first = np.mean([r["total"] for r in h[:15]])
    last = np.mean([r["total"] for r in h[-15:]])
    assert last < 0.7 * first, (first, last)
    v = state["val"][-1]
    assert v["r1"] > 5.0 / K          # chance is 1/46
    if kind == "separator":
        assert v["f1"] > 0.5
    # resumable: a second call with the same config resumes at the end and changes nothing
    m2, _, s2, _ = train.train(kind, feat_dir=feat, steps=150, batch=64, ckpt_every=50,
                               log=lambda *a: None, quiet=True)
    assert s2["step"] == 150 and len(s2["history"]) == 150
    # export -> load back -> same outputs (torch and numpy graph interpreter)
    p = export.export(kind, model, cfg, state, path=tmp_path / f"{kind}.safetensors")
    loaded, tensors, meta = export.load_exported(path=p)
    arch = json.loads(meta["architecture"])
    assert json.loads(meta["classes"]) == class_names()
    x = np.load(feat / "audio_val.npz")["mix_emb"][:8]
    with torch.no_grad():
        ref = model(torch.from_numpy(x))
        got = loaded(torch.from_numpy(x))
    ref = ref if isinstance(ref, tuple) else (ref,)
    got = got if isinstance(got, tuple) else (got,)
    npout = models.run_graph(tensors, arch, x)
    for r, g_, (name, n_) in zip(ref, got, npout.items()):
        assert np.array_equal(r.numpy(), g_.numpy())
        assert n_.shape == tuple(r.shape) == (8, *arch["outputs"][name])
        assert np.abs(n_ - r.numpy()).max() < 1e-4
    if kind == "separator":
        assert np.allclose(np.linalg.norm(npout["embeddings"], axis=-1), 1, atol=1e-5)
        assert int(meta["flops_per_hop"]) < 20_000_000


def test_fixture_writer(tmp_path):
    feat = tmp_path / "features"
    feat.mkdir()
    make_features(feat, n_train=256, n_val=64)
    paths = {}
    for kind in ("separator", "ablation"):
        m = models.Separator() if kind == "separator" else models.Ablation()
        m.eval()
        paths[kind] = export.export(kind, m, {}, path=tmp_path / f"{kind}.safetensors")
    out = export.write_fixture(tmp_path, out=tmp_path / "golden.safetensors",
                               sep_path=paths["separator"], abl_path=paths["ablation"])
    import safetensors_io
    t, meta = safetensors_io.load(out)
    assert t["input"].shape == (8, 1024) and t["presence_logits"].shape == (8, K)
    assert t["embeddings"].shape == (8, K, 128) and t["ablation_embedding"].shape == (8, 128)
    st, smeta = safetensors_io.load(paths["separator"])
    r = models.run_graph(st, json.loads(smeta["architecture"]), t["input"])
    assert np.abs(r["presence_logits"] - t["presence_logits"]).max() < 1e-4
    assert out.stat().st_size < 2_000_000


def test_tiny_train_then_evaluate(tmp_path):
    """The issue's tiny train + eval configuration: both models trained briefly on the generated
    features, exported to a temporary folder, and evaluated by training/avgas/evaluate.py exactly
    as `make eval-separator` does (thresholds chosen on the val clip mixtures and written into the
    exported metadata, presence F1 and retrieval on the eval mixtures, report), nothing shipped touched."""
    from training.avgas import evaluate
    torch.set_num_threads(1)
    feat = tmp_path / "features"
    feat.mkdir()
    make_features(feat, n_train=768, n_val=128)
    paths = {}
    for kind in ("separator", "ablation"):
        model, _, state, cfg = train.train(kind, feat_dir=feat, steps=120, batch=64, ckpt_every=60,
                                           log=lambda *a: None, quiet=True)
        paths[kind] = export.export(kind, model, cfg, state, path=tmp_path / f"{kind}.safetensors")
    shipped = {k: p.read_bytes() for k, p in export.PATHS.items()}
    report = tmp_path / "separator.md"
    res = evaluate.evaluate(tmp_path, report=report, plots=False, paths=paths)
    assert {k: p.read_bytes() for k, p in export.PATHS.items()} == shipped
    for k in (1, 2, 3):
        pr, rt = res["presence"][k], res["retrieval"][k]
        assert all(0 <= pr[m] <= 1 for m in ("separator_macro_f1", "yamnet_mapping_macro_f1", "fused_macro_f1"))
        assert rt["queries"] == 12 * k
    # the generated classes are separable: the separator hears and retrieves them well above chance
    assert res["presence"][1]["separator_macro_f1"] > 0.5
    assert res["retrieval"][1]["separator_R@1"] > 10 / K
    _, meta = export.load_exported(path=paths["separator"])[1:]
    assert "presence_threshold" in meta and "R@1_2src" in json.loads(meta["metrics"])
    text = report.read_text()
    assert "Separator (AV-GAS) and no-separator ablation: evaluation" in text and "| 2 |" in text


def test_flops_count():
    m = models.Separator()
    f = models.flops(m.graph(), m.tensors())
    # the three big linears dominate: fc1 1024x512, fc2 512x512, per-class emb1 46x(512x256), emb2 46x(256x128)
    big = 2 * (1024 * 512 + 512 * 512 + 512 * 46 + 46 * 512 * 256 + 46 * 256 * 128)
    assert big < f < big * 1.01


@pytest.mark.parametrize("lengths", [(16000, 24000), (80000, 3000), (64000, 64000, 9000)])
def test_make_mixture_keeps_its_parts(lengths):
    """make_mixture(keep_parts=True) (presence_bound.py rebuilds the fixed evaluation sets source by
    source with it) draws exactly as without: same audio; each source in its own stem, where the
    mixture placed it; stems + noise, scaled, add up to the mixture."""
    from training.dataset import loaders
    g = np.random.default_rng(3)
    clips = [(g.standard_normal(n) * 10 ** (-g.uniform(0, 3))).astype(np.float32) for n in lengths]
    want = loaders.make_mixture(clips, np.random.default_rng(7))
    got = loaders.make_mixture(clips, np.random.default_rng(7), keep_parts=True)
    np.testing.assert_array_equal(got["audio"], want["audio"])
    assert got["sources"] == want["sources"] and got["noise_db"] == want["noise_db"]
    assert got["stems"].shape == (len(clips), len(want["audio"]))
    for st, info in zip(got["stems"], want["sources"]):
        on = np.flatnonzero(st)
        a = round(info["offset_s"] * loaders.SR)
        assert on[0] == a and on[-1] < a + round(info["length_s"] * loaders.SR)   # only where it was placed
    assert np.abs(got["noise"]).max() > 0
    np.testing.assert_allclose((got["stems"].sum(0) + got["noise"]) * got["scale"], got["audio"], atol=1e-6)
    spiky = [np.where(np.arange(len(c)) % 4000 == 0, 1.0, 1e-4 * c).astype(np.float32) for c in clips]
    loud = loaders.make_mixture(spiky, np.random.default_rng(7), keep_parts=True)   # levelled on active RMS: peaks clip
    assert loud["scale"] < 1 and np.abs(loud["audio"]).max() <= 0.98 + 1e-6
    np.testing.assert_allclose((loud["stems"].sum(0) + loud["noise"]) * loud["scale"], loud["audio"], atol=1e-5)


def test_replay_eval_set_reproduces_write_eval_set(tmp_path):
    """presence_bound.replay_eval_set draws the very mixtures loaders.write_eval_set wrote (same
    recordings, same audio to 16-bit rounding), with parts that add up to them."""
    from training.avgas.presence_bound import replay_eval_set
    from training.dataset import audio, loaders
    g = np.random.default_rng(0)
    for c in range(5):
        for k in range(3):
            audio.write_wav16(tmp_path / "d" / "audio" / f"c{c}" / f"r{c}_{k}.wav",
                              0.3 * g.standard_normal(int(g.integers(8000, 90000))))
    ds = loaders.Dataset.from_folders(tmp_path / "d", val=0.0, test=1.0)
    n = loaders.write_eval_set(ds, tmp_path / "e", n=8, n_sources=2, seed=5, split="test")
    items = loaders.load_eval_set(tmp_path / "e")
    mixes = replay_eval_set(ds, n, 2, 5, "test")
    assert n == len(items) == len(mixes) == 8
    for it, m in zip(items, mixes):
        assert it["classes"] == m["classes"]
        assert [s["id"] for s in it["sources"]] == [s["id"] for s in m["sources"]]
        np.testing.assert_allclose(audio.load_16k(tmp_path / "e" / it["path"]), m["audio"], atol=2 / 32767)
        np.testing.assert_allclose((m["stems"].sum(0) + m["noise"]) * m["scale"], m["audio"], atol=1e-5)


def test_bound_note_reads_the_bound_only_when_it_matches(tmp_path):
    """evaluate.bound_note cites presence_bound.json only when it was computed with the report's
    presence threshold and reproduces its mixture figure; the verdict follows the numbers."""
    from training.avgas.evaluate import bound_note
    res = {"head_threshold": 0.5, "presence": {2: {"shipped_head_macro_f1": 0.494}}}
    assert bound_note(res, tmp_path / "missing.json") == ""

    def write(thr, mix, oracle):
        p = tmp_path / "b.json"
        p.write_text(json.dumps({"head_threshold": thr, "sets": {
            "test": {"mixture_shipped": {"macro_f1": mix}, "oracle_shipped": {"macro_f1": oracle}},
            "val": {"oracle_shipped": {"macro_f1": oracle - 0.07}}}}))
        return p
    note = bound_note(res, write(0.5, 0.49, 0.639))
    assert "0.639" in note and "0.569" in note and "beyond the recognisers" in note
    assert "separation, not recognition" in bound_note(res, write(0.5, 0.49, 0.93))
    assert "re-run presence_bound" in bound_note(res, write(0.4, 0.49, 0.639))
    assert "re-run presence_bound" in bound_note(res, write(0.5, 0.60, 0.639))

"""Smoke test of the generator pipeline (issue 6) on a generated toy dataset: tiny config,
all training stages, export, an independent numpy interpreter of the exported metadata
program against PyTorch, the parity fixture, resumability, the composer rules."""
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from training.generator import compose, export, sample, train  # noqa: E402
import safetensors_io  # noqa: E402

CLASSES = ["dog barking", "raining", "helicopter", "playing piano"]


def make_toy_dataset(root: Path):
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(0)
    rows = []
    colours = [(160, 90, 40), (40, 80, 200), (30, 30, 30), (220, 220, 40)]
    for ci, c in enumerate(CLASSES):
        d = root / "images" / c.replace(" ", "_")
        d.mkdir(parents=True)
        for k in range(8):
            im = Image.new("RGB", (128, 128), (200, 200, 200))
            dr = ImageDraw.Draw(im)
            x, y, r = rng.integers(30, 98), rng.integers(30, 98), rng.integers(15, 30)
            (dr.ellipse if ci % 2 == 0 else dr.rectangle)([x - r, y - r, x + r, y + r], fill=colours[ci])
            p = d / f"img_{ci}_{k}.png"
            im.save(p)
            rows.append({"id": f"i_{ci}_{k}", "kind": "image", "class": c,
                         "split": "train" if k < 6 else "test", "path": str(p.relative_to(root)),
                         "package": "toy", "source_path": p.name, "license": "CC0", "original_id": p.name,
                         "split_group": p.name, "synthetic": "1", "duration_s": ""})
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    cls = {"version": 1, "classes": [{"name": c, "layer": l} for c, l in
                                      zip(CLASSES, ["ground", "sky", "sky", "middle"])]}
    (root / "classes.json").write_text(json.dumps(cls))


# ---------------------------------------------------------------- numpy interpreter (Swift model)

def np_conv(x, w, b, k, stride):
    B, C, H, W = x.shape
    p = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    Ho, Wo = H // stride, W // stride
    cols = np.empty((B, C, k, k, Ho, Wo), np.float64)
    for dy in range(k):
        for dx in range(k):
            cols[:, :, dy, dx] = xp[:, :, dy:dy + stride * Ho:stride, dx:dx + stride * Wo:stride]
    return np.einsum("bcyxhw,ocyx->bohw", cols, w) + b[None, :, None, None]


def np_run(program, tensors, prefix, inputs):
    buf = {k: np.asarray(v, np.float64) for k, v in inputs.items()}
    P = lambda s, n: tensors[f"{prefix}{s['param']}.{n}"].astype(np.float64)
    for s in program:
        a = [buf[i] for i in s["in"]]
        op = s["op"]
        if op == "fourier":
            ang = 2 * math.pi * a[0][:, None] * np.array(s["freqs"])[None]
            y = np.concatenate([np.sin(ang), np.cos(ang)], 1)
        elif op == "linear":
            y = a[0] @ P(s, "weight").T + P(s, "bias")
        elif op == "conv":
            y = np_conv(a[0], P(s, "weight"), P(s, "bias"), s["k"], s["stride"])
        elif op == "groupnorm":
            B, C, H, W = a[0].shape
            g = a[0].reshape(B, s["groups"], -1)
            g = (g - g.mean(2, keepdims=True)) / np.sqrt(g.var(2, keepdims=True) + s["eps"])
            y = g.reshape(B, C, H, W) * P(s, "weight")[None, :, None, None] + P(s, "bias")[None, :, None, None]
        elif op == "silu":
            y = a[0] / (1 + np.exp(-a[0]))
        elif op == "sigmoid":
            y = 1 / (1 + np.exp(-a[0]))
        elif op == "film":
            C = a[0].shape[1]
            y = a[0] * (1 + a[1][:, :C, None, None]) + a[1][:, C:, None, None]
        elif op == "add":
            y = a[0] + a[1]
        elif op == "concat":
            y = np.concatenate(a, 1)
        elif op == "up2":
            y = a[0].repeat(2, axis=2).repeat(2, axis=3)
        else:
            raise AssertionError(f"op {op} not in the documented set")
        buf[s["out"]] = y
    return buf


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    data = root / "data"
    make_toy_dataset(data)
    run = root / "run"
    args = ["--config", "tiny", "--run", str(run), "--data", str(data), "--classes", str(data / "classes.json"),
            "--allow-fake-embeddings", "--set", "ae_steps=120", "teacher_steps=120", "student_steps=60"]
    train.main(args)
    out = root / "assets"
    export.main(["--run", str(run), "--data", str(data), "--classes", str(data / "classes.json"),
                 "--out", str(out), "--fixture", str(out / "golden.safetensors"), "--metrics", str(root / "none.json"),
                 "--per-class", "2"])
    return root, run, out, data, args


def read_log(path):
    return [json.loads(l) for l in open(path)]


def test_losses_finite_and_decreasing(trained):
    _, run, _, _, _ = trained
    for stage, key in (("ae", "l1"), ("teacher", "loss"), ("student", "loss")):
        log = read_log(run / f"log_{stage}.jsonl")
        vals = np.array([r[key] for r in log])
        assert np.all(np.isfinite(vals)), stage
    ae = np.array([r["l1"] for r in read_log(run / "log_ae.jsonl")])
    assert ae[-3:].mean() < 0.8 * ae[:3].mean()
    te = np.array([r["loss"] for r in read_log(run / "log_teacher.jsonl")])
    assert te[-4:].mean() < te[:4].mean()


def test_resume_skips_finished_stages(trained, capsys):
    _, run, _, _, args = trained
    mtime = (run / "student.pt").stat().st_mtime
    train.main(args)
    assert "[student] done, skipped" in capsys.readouterr().out
    assert (run / "student.pt").stat().st_mtime == mtime


def test_exported_metadata_program_matches_pytorch(trained):
    _, run, out, _, _ = trained
    t, meta = safetensors_io.load(out / "generator.safetensors")
    assert meta["format"] == export.FORMAT
    fx, fmeta = safetensors_io.load(out / "golden.safetensors")
    den = json.loads(meta["denoiser.program"])
    dec = json.loads(meta["decoder.program"])
    assert {s["op"] for s in den + dec} <= set(json.loads(meta["ops"]))
    b = np_run(den, t, "denoiser.", {"x": fx["x"], "t": fx["t"], "emb": fx["emb"]})
    v = b[meta["denoiser.output"]]
    assert np.abs(v - fx["v"]).max() < 1e-4
    x1 = fx["x"] + (1 - fx["t"])[:, None, None, None] * v
    assert np.abs(x1 - fx["x1_hat"]).max() < 1e-4
    xn = fx["x"] + (fx["t_next"] - fx["t"])[:, None, None, None] * v
    assert np.abs(xn - fx["x_next"]).max() < 1e-4
    img = np_run(dec, t, "decoder.", {"z": fx["x1_hat"]})[meta["decoder.output"]]
    assert img.shape == (2, 3, 128, 128)
    assert np.abs(img - fx["image"]).max() < 1e-4
    assert 0 < json.loads(meta["flops"])["step_flop"] < 5e8


def test_exemplars_and_notice(trained):
    _, run, out, _, _ = trained
    t, meta = safetensors_io.load(out / "exemplars.safetensors")
    n = len(json.loads(meta["ids"]))
    assert t["latents"].shape[0] == t["embeddings"].shape[0] == t["class_index"].shape[0] == n == 2 * len(CLASSES)
    assert np.allclose(np.linalg.norm(t["embeddings"], axis=1), 1, atol=1e-4)
    prov = json.loads(meta["provenance"])
    assert all(p["split"] == "train" for p in prov)
    assert "Generator" in (out / "NOTICE").read_text()


def test_student_sampling_and_renoise(trained):
    _, run, out, _, _ = trained
    cfg = json.load(open(run / "config.json"))
    net = train.load_denoiser(run, cfg, "student")
    dec = export.exported_decoder(run, cfg)
    emb = torch.nn.functional.normalize(torch.randn(3, 128), dim=1)
    g = torch.Generator().manual_seed(0)
    img, z = sample.student_sample(net, dec, emb, 2, generator=g, latent_shape=(cfg["latent_ch"], 16, 16))
    assert img.shape == (3, 3, 128, 128) and torch.all((img >= 0) & (img <= 1))
    # strength -> 0 keeps the start latent; the schedule ends at t = 1
    _, z2 = sample.student_sample(net, dec, emb, 4, start=z, strength=1e-6, generator=g,
                                  latent_shape=(cfg["latent_ch"], 16, 16))
    assert torch.allclose(z2, z, atol=1e-3)
    assert sample.schedule(0.4, 2) == pytest.approx([0.4, 0.7, 1.0])


def test_compose_layout_rules():
    grey = np.tile(compose.BG, (64, 64, 1))
    red = grey.copy(); red[16:48, 16:48] = [1, 0, 0]
    blue = grey.copy(); blue[16:48, 16:48] = [0, 0, 1]
    items = [{"class": "a", "score": 0.9, "layer": "ground", "image": red},
             {"class": "b", "score": 0.5, "layer": "sky", "image": blue}]
    lay = compose.layout(items, 128, 128)
    assert [it["class"] for it, *_ in lay] == ["b", "a"]          # painted by ascending score
    (_, bx, by, bs), (_, ax, ay, as_) = [(it, x, y, s) for it, x, y, s in lay]
    assert by + bs / 2 < ay + as_ / 2                              # sky above ground
    assert as_ > bs                                                # salience by score
    out = compose.compose(items, 128, 128)
    assert np.allclose(out[0, 0], compose.BG)                      # untouched background
    assert out[ay + as_ // 2, ax + as_ // 2, 0] > 0.9              # red class drawn at its box centre
    assert out[by + bs // 2, bx + bs // 2, 2] > 0.9                # blue class drawn at its box centre
    m = compose.soft_mask(grey)
    assert m.max() == 0.0                                          # pure backdrop is transparent


def test_decoder_finetune_stage(trained, tmp_path):
    """Decoder-only fine-tune on a copy of the tiny run: trains, resumes, leaves the encoder and
    the latents alone, evaluates on the held-out images, and export takes it only when adopted."""
    import hashlib
    import shutil
    from training.generator import finetune_decoder as FD
    _, run, _, data, _ = trained
    r2 = tmp_path / "run"
    shutil.copytree(run, r2)
    sha = lambda p: hashlib.sha1(p.read_bytes()).hexdigest()
    ae_sha, lat_sha = sha(r2 / "ae.pt"), sha(r2 / "latents.npz")
    common = ["--run", str(r2), "--data", str(data), "--grid", str(tmp_path / "grid.png"), "--no-judge"]
    FD.main(["train", *common, "--set", "ft_steps=20", "ft_batch=4", "ft_ckpt_every=10", "ft_log_every=5"])
    assert (r2 / "decoder_ft.done").exists() and torch.load(r2 / "decoder_ft.pt")["step"] == 20
    # resume: a longer schedule continues from the checkpoint
    (r2 / "decoder_ft.done").unlink()
    FD.main(["all", *common, "--set", "ft_steps=30"])
    log = read_log(r2 / "log_decoder_ft.jsonl")
    assert [r["step"] for r in log] == list(range(5, 31, 5))
    assert all(np.isfinite(r["loss"]) for r in log)
    assert sha(r2 / "ae.pt") == ae_sha and sha(r2 / "latents.npz") == lat_sha
    res = json.load(open(r2 / "decoder_ft_eval.json"))
    assert res["n_heldout"] == 8 and res["finetune"]["steps"] == 30 and res["adopted"] is False
    assert (tmp_path / "grid.png").exists()
    cfg = json.load(open(r2 / "config.json"))
    ft, _ = FD.load_ft_decoder(r2, cfg)
    assert export.decoder_choice(r2)[0] == "ae"
    res["adopted"] = True
    json.dump(res, open(r2 / "decoder_ft_eval.json", "w"))
    assert export.decoder_choice(r2)[0] == "ft"
    d = export.exported_decoder(r2, cfg).state_numpy()
    for k, v in ft.state_numpy().items():
        assert np.array_equal(d[k], v)


def test_training_rows_follow_the_embedding_file(tmp_path):
    """Images without a visual embedding (added to the manifest after the embedding space was
    fitted) are left out, and each kept image takes the split recorded in the embedding file."""
    import argparse
    data = tmp_path / "data"
    make_toy_dataset(data)
    rows = list(csv.DictReader(open(data / "manifest.csv")))
    keep = rows[:20]
    (data / "features").mkdir()
    rng = np.random.default_rng(1)
    np.savez(data / "features" / "image_embeddings.npz", ids=np.array([r["id"] for r in keep]),
             emb=rng.standard_normal((20, 128)).astype(np.float32),
             splits=np.array(["val" if i % 5 == 0 else "train" for i in range(20)]))
    args = argparse.Namespace(classes=str(data / "classes.json"), data=str(data), max_images=0,
                              allow_fake_embeddings=False)
    classes, got, imgs, emb = train.load_source(args, dict(train.CONFIGS["tiny"]), True)
    assert sorted(r["id"] for r in got) == sorted(r["id"] for r in keep)
    want = {r["id"]: ("val" if i % 5 == 0 else "train") for i, r in enumerate(keep)}
    assert all(r["split"] == want[r["id"]] for r in got)
    assert imgs.shape == (20, 128, 128, 3) and set(emb) == set(want)


def test_autoencoder_snapshots_and_cpu_checkpoints(tmp_path):
    data = tmp_path / "data"
    make_toy_dataset(data)
    run = tmp_path / "run"
    train.main(["--config", "tiny", "--run", str(run), "--data", str(data), "--classes", str(data / "classes.json"),
                "--allow-fake-embeddings", "--stages", "ae", "--set", "ae_steps=12", "ae_snapshots=[4, 8]"])
    for name, step in (("ae_4.pt", 4), ("ae_8.pt", 8), ("ae.pt", 12)):
        s = torch.load(run / name)
        assert s["step"] == step
        assert all(v.device.type == "cpu" for v in s["enc"].values())
    a, b = torch.load(run / "ae_4.pt")["dec"], torch.load(run / "ae.pt")["dec"]
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_shift_latents_translates_with_replicated_edges():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2, 6, 6)).astype(np.float32)
    y = train.shift_latents(x, 1, rng)
    assert y.shape == x.shape
    for k in range(64):  # every output is one of the 9 replicate-padded translations of its input
        xp = np.pad(x[k], ((0, 0), (1, 1), (1, 1)), mode="edge")
        assert any(np.array_equal(y[k], xp[:, a:a + 6, b:b + 6]) for a in range(3) for b in range(3))
    assert sum(np.array_equal(y[k], x[k]) for k in range(64)) < 64 // 2


def test_tiny_evaluate_writes_the_report(trained, tmp_path):
    """The tiny configuration through `make eval-generator`'s evaluation too (--quick: a few test
    images and mixtures): the report with its tables and the plots are written."""
    from training.generator import evaluate
    _, run, _, data, _ = trained
    rep = tmp_path / "reports"
    evaluate.main(["--run", str(run), "--data", str(data), "--classes", str(data / "classes.json"),
                   "--reports", str(rep), "--quick"])
    text = (rep / "generator.md").read_text()
    for heading in ("## Per-class image accuracy", "## Mixtures: CRS and R@2*", "## Targets"):
        assert heading in text, heading
    pngs = sorted(p.name for p in rep.glob("*.png"))
    assert len(pngs) >= 3, pngs


def test_composites_stage_builds_blended_scenes(trained, tmp_path):
    """p_comp > 0: the composites stage lays out 2-3 train pictures of distinct classes, encodes
    them like single pictures and conditions each on sample.mixture_embedding of their embeddings;
    the teacher and pairs stages then train with them (finite loss), and a run without p_comp
    builds nothing."""
    import shutil
    _, run, _, data, _ = trained
    comp = tmp_path / "comp"
    comp.mkdir()
    for f in ("ae.pt", "ae.done", "latents.npz", "latents.done", "config.json"):
        shutil.copy(run / f, comp / f)
    common = ["--config", "tiny", "--run", str(comp), "--data", str(data), "--classes", str(data / "classes.json"),
              "--allow-fake-embeddings"]
    train.main([*common, "--stages", "composites,teacher,pairs", "--set", "p_comp=0.5", "comp_n=40",
                "teacher_steps=20", "pairs=32", f'teacher_init="{run / "teacher.pt"}"'])
    C = np.load(comp / "composites.npz")
    L = train.load_latents(comp)
    assert C["z"].shape == (40,) + L["z"].shape[1:] and C["z"].dtype == np.float16
    names = [c.split("|") for c in C["classes"]]
    assert {len(n) for n in names} <= {2, 3} and all(len(set(n)) == len(n) for n in names)
    assert np.allclose(np.linalg.norm(C["emb"], axis=1), 1, atol=1e-5)
    # the condition is a blend of train embeddings of exactly those classes: nearer to each of them
    # than to the other classes' mean embedding
    tr = L["splits"] == "train"
    mean = {c: L["emb"][tr & (L["classes"] == c)].mean(0) for c in set(L["classes"][tr])}
    for e, n in zip(C["emb"], names):
        sims = {c: float(e @ m / np.linalg.norm(m)) for c, m in mean.items()}
        assert min(sims[c] for c in n) > max([v for c, v in sims.items() if c not in n], default=-1)
    # the picture is what compose.compose draws (not a single subject): it differs from every train picture
    assert np.abs(C["z"].astype(np.float32)[:, None] - L["z"][tr][None]).mean(axis=(2, 3, 4)).min() > 1e-3
    losses = [r["loss"] for r in read_log(comp / "log_teacher.jsonl")]
    assert losses and all(np.isfinite(losses))
    # teacher_init: the fine-tune started from the tiny run's teacher (its first loss is that
    # teacher's, far below a fresh network's), not from scratch
    fresh = read_log(run / "log_teacher.jsonl")[0]["loss"]
    assert losses[0] < 0.8 * fresh
    # the pairs carry the blended conditions in about the share p_comp (32 pairs: at least one)
    P = np.load(comp / "pairs.npz")
    blended = [any(np.allclose(e, c, atol=1e-6) for c in C["emb"]) for e in P["emb"]]
    assert 1 <= sum(blended) < len(blended)
    # composite_rows: the share and the range of the picks
    m, j = train.composite_rows((None, np.zeros((7, 4))), 20000, 0.25, np.random.default_rng(0))
    assert abs(len(m) / 20000 - 0.25) < 0.02 and j.min() >= 0 and j.max() < 7 and len(j) == len(m)
    plain = tmp_path / "plain"
    plain.mkdir()
    for f in ("ae.pt", "ae.done", "latents.npz", "latents.done", "config.json"):
        shutil.copy(run / f, plain / f)
    train.main(["--config", "tiny", "--run", str(plain), "--data", str(tmp_path / "no-data"),
                "--classes", str(data / "classes.json"), "--stages", "composites"])
    assert not (plain / "composites.done").exists() and not (plain / "composites.npz").exists()

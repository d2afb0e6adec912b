"""Export the student + decoder (Assets/models/generator.safetensors), the exemplar bank
(Assets/models/exemplars.safetensors) and the Swift parity fixture
(Tests/ImaginingTests/Fixtures/generator_golden.safetensors).

    python -m training.generator.export --run training/runs/generator
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from . import arch, compose, sample
from .train import load_ae, load_denoiser, load_latents

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import safetensors_io  # noqa: E402

FORMAT = "avgas-generator/1"
DEFAULTS = {"mode": "retrieval", "steps": 4, "retrieval_strength": 0.4, "retrieval_top_k": 3,
            "renoise_strength": 0.5, "drift_cosine": 0.9}


def git_commit():
    try:
        return subprocess.check_output(["git", "rev-parse", "HEAD"], text=True).strip()
    except Exception:
        return "unknown"


def decoder_choice(run, which="auto"):
    """Which decoder weights to export: 'ae' (the autoencoder's own), 'ft' (<run>/decoder_ft.pt,
    training/generator/finetune_decoder.py) or 'auto': the fine-tuned one when it is present AND its
    held-out evaluation (<run>/decoder_ft_eval.json, same checkpoint step) says adopted.
    Returns (kind, evaluation dict or None)."""
    ck, ev = Path(run) / "decoder_ft.pt", Path(run) / "decoder_ft_eval.json"
    res = json.load(open(ev)) if ev.exists() else None
    if which == "ae":
        return "ae", None
    if which == "ft":
        if not ck.exists():
            raise SystemExit(f"error: --decoder ft but {ck} is missing")
        return "ft", res
    if ck.exists() and res and res.get("adopted"):
        step = torch.load(ck)["step"]
        if res["finetune"]["steps"] != step:
            raise SystemExit(f"error: {ev} evaluated step {res['finetune']['steps']}, {ck} is at {step}; re-run "
                             "`python -m training.generator.finetune_decoder evaluate`")
        return "ft", res
    return "ae", None


def exported_decoder(run, cfg, which="auto"):
    """The decoder with the latent de-normalisation prepended as a 1x1 conv ('denorm'):
    z_raw = z * sd + mu, so the exported decoder takes the generator's normalised latent.
    The encoder and mu/sd are never changed by the decoder fine-tune, so both choices take the
    same latents."""
    kind, _ = decoder_choice(run, which)
    if kind == "ft":
        from .finetune_decoder import load_ft_decoder
        dec, _ = load_ft_decoder(run, cfg)
    else:
        _, dec = load_ae(run, cfg)
    L = load_latents(run)
    C = cfg["latent_ch"]
    steps = [{"op": "conv", "in": ["z"], "out": "z_raw", "param": "denorm", "k": 1, "stride": 1}]
    for s in dec.steps:
        s = dict(s)
        s["in"] = ["z_raw" if i == "z" else i for i in s["in"]]
        steps.append(s)
    params = {"denorm.weight": (C, C, 1, 1), "denorm.bias": (C,)}
    params.update({k: tuple(dec.w(k).shape) for k in dec._keys})
    net = arch.ProgramNet(steps, params, dec.output)
    t = dec.state_numpy()
    t["denorm.weight"] = np.diag(L["sd"]).reshape(C, C, 1, 1).astype(np.float32)
    t["denorm.bias"] = L["mu"].astype(np.float32)
    net.load_numpy(t)
    return net.eval()


def flops(cfg, den, dec):
    C = cfg["latent_ch"]
    shp = lambda n: {k: tuple(n.w(k).shape) for k in n._keys}
    fd = arch.count_flops(den.steps, shp(den), {"x": (C, 16, 16), "t": (), "emb": (cfg["emb_dim"],)})
    fc = arch.count_flops(dec.steps, shp(dec), {"z": (C, 16, 16)})
    return {"denoiser_flop": fd["flop"], "denoiser_mac": fd["mac"], "decoder_flop": fc["flop"],
            "decoder_mac": fc["mac"], "step_flop": fd["flop"] + fc["flop"],
            "step_gflop": round((fd["flop"] + fc["flop"]) / 1e9, 4)}


def select_exemplars(L, classes, per_class, seed=0):
    """Per class, up to per_class train images: the one nearest the class mean embedding, then
    farthest-point sampling (cosine) for variety."""
    sel = []
    tr = np.flatnonzero(L["splits"] == "train")
    for c in classes:
        idx = tr[L["classes"][tr] == c]
        if len(idx) == 0:
            continue
        E = L["emb"][idx]
        mean = E.mean(0)
        chosen = [int(np.argmax(E @ mean))]
        while len(chosen) < min(per_class, len(idx)):
            d = 1 - (E @ E[chosen].T).max(1)
            d[chosen] = -1
            chosen.append(int(np.argmax(d)))
        sel.extend(idx[chosen].tolist())
    return sel


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="training/runs/generator")
    ap.add_argument("--data", default="data")
    ap.add_argument("--classes", default="Assets/classes.json")
    ap.add_argument("--out", default="Assets/models")
    ap.add_argument("--fixture", default="Tests/ImaginingTests/Fixtures/generator_golden.safetensors")
    ap.add_argument("--metrics", default="training/reports/generator_metrics.json")
    ap.add_argument("--per-class", type=int, default=4)
    ap.add_argument("--decoder", default="auto", choices=["auto", "ae", "ft"],
                    help="auto: the fine-tuned decoder (<run>/decoder_ft.pt) iff its held-out evaluation adopted it")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    run = Path(args.run)
    cfg = json.load(open(run / "config.json"))
    classes, layers = compose_classes(args.classes)
    den = load_denoiser(run, cfg, "student")
    dec_kind, dec_eval = decoder_choice(run, args.decoder)
    dec = exported_decoder(run, cfg, args.decoder)
    C = cfg["latent_ch"]
    fl = flops(cfg, den, dec)
    metrics = json.load(open(args.metrics)) if Path(args.metrics).exists() else {}
    defaults = dict(DEFAULTS)
    if "default" in metrics:
        defaults["mode"] = metrics["default"]["mode"]
    tensors = {f"denoiser.{k}": v for k, v in den.state_numpy().items()}
    tensors.update({f"decoder.{k}": v for k, v in dec.state_numpy().items()})
    meta = {
        "format": FORMAT,
        "dtype": "float32",
        "convention": "x_t = (1 - t) * noise + t * data; denoiser(x, t, emb) = velocity (data - noise)",
        "step_rule": "v = denoiser(x, t, emb); x_next = x + (t_next - t) * v; x1_hat = x + (1 - t) * v; "
                     "preview = decoder(x1_hat)",
        "schedule": "t_k = t0 + (1 - t0) * k / n, k = 0..n; fresh: x = N(0, I), t0 = 0, n = steps; "
                    "re-noise/retrieval with strength s: t0 = 1 - s, x = t0 * z + (1 - t0) * N(0, I), "
                    "n = max(1, ceil(steps * s))",
        "latent_shape": json.dumps([C, 16, 16]),
        "image_shape": json.dumps([3, 128, 128]),
        "image_range": "decoder output in [0, 1] (sigmoid), RGB, channel-major",
        "emb_dim": str(cfg["emb_dim"]),
        "emb_rule": "L2-normalised 128-d visual embedding (training/avgas/visual.py space); zeros = unconditional",
        "denoiser.program": arch.program_json(den),
        "denoiser.inputs": json.dumps({"x": [C, 16, 16], "t": [], "emb": [cfg["emb_dim"]]}),
        "denoiser.output": den.output,
        "decoder.program": arch.program_json(dec),
        "decoder.inputs": json.dumps({"z": [C, 16, 16]}),
        "decoder.output": dec.output,
        "tensor_prefixes": "denoiser.<param>.weight|bias, decoder.<param>.weight|bias",
        "ops": json.dumps(arch.OPS),
        "ops_doc": arch.__doc__.split("Ops (")[1].split("The network's output")[0].strip(),
        "defaults": json.dumps(defaults),
        "classes": json.dumps(classes),
        "hparams": json.dumps(cfg),
        "training_commit": git_commit(),
        "flops": json.dumps(fl),
        "metrics": json.dumps(metrics.get("headline", {})),
        "distillation": "rectified-flow reflow of a classifier-free-guided teacher (guidance distilled; "
                        "one denoiser call per step)",
        "compose_rules": compose.__doc__.split("Rules, in order:")[1].strip(),
        "decoder_weights": ("fine-tuned decoder (training/generator/finetune_decoder.py, <run>/decoder_ft.pt; "
                            "frozen encoder and latent normalisation)" if dec_kind == "ft" else
                            "the latent autoencoder's decoder (<run>/ae.pt)"),
    }
    if dec_kind == "ft" and dec_eval:
        meta["decoder_finetune"] = json.dumps({
            "steps": dec_eval["finetune"]["steps"], "seconds": dec_eval["finetune"]["seconds"],
            "training_commit": dec_eval["finetune"]["training_commit"], "config": dec_eval["finetune"]["config"],
            "losses": dec_eval["finetune"]["final_losses"], "rule": dec_eval["rule"], "adopted": dec_eval["adopted"],
            "heldout": {k: dec_eval[k] for k in ("n_heldout", "judge_top1_real", "old", "new", "l1_rel_change")},
            "note": "generator 'metrics' above were measured with the autoencoder's own (old) decoder"})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    safetensors_io.save(out / "generator.safetensors", tensors, meta)

    # exemplar bank
    L = load_latents(run)
    sel = select_exemplars(L, classes, args.per_class)
    rows = {r["id"]: r for r in __import__("training.generator.data", fromlist=["x"]).image_rows(args.data)}
    ids = [str(L["ids"][i]) for i in sel]
    # 'split' is the split the generator was trained with (latents.npz), not the current manifest's
    # (the enlarged dataset moved some of these train images into val/test)
    prov = [{**{k: rows[i][k] for k in ("id", "class", "split", "package", "source_path", "license")},
             "split": str(L["splits"][j])} for i, j in zip(ids, sel)]
    ex_t = {"latents": L["z"][sel].astype(np.float32), "embeddings": L["emb"][sel].astype(np.float32),
            "class_index": np.array([classes.index(str(L["classes"][i])) for i in sel], np.int32)}
    ex_meta = {"format": "avgas-exemplars/1", "classes": json.dumps(classes), "ids": json.dumps(ids),
               "latent_rule": "normalised generator latents of real train-split images (decoder(latent) ~ the image)",
               "retrieval": "among entries of the slot's class (all entries if the class has none): top-k "
                            "cosine similarity to the embedding, one drawn uniformly; start the student at "
                            "strength s (see generator.safetensors schedule)",
               "provenance": json.dumps(prov), "training_commit": git_commit()}
    safetensors_io.save(out / "exemplars.safetensors", ex_t, ex_meta)
    write_notice(out / "NOTICE", prov)

    # parity fixture: batch of 2, t = 0 and 0.5
    g = torch.Generator().manual_seed(1234)
    x = torch.randn((2, C, 16, 16), generator=g)
    t = torch.tensor([0.0, 0.5])
    tn = torch.tensor([0.25, 0.75])
    emb = torch.from_numpy(np.stack([L["emb"][sel[0]], np.zeros(cfg["emb_dim"], np.float32)]))
    with torch.no_grad():
        v = den(x=x, t=t, emb=emb)
        x_next = x + (tn - t)[:, None, None, None] * v
        x1 = x + (1 - t)[:, None, None, None] * v
        img = dec(z=x1)
    fx = Path(args.fixture)
    fx.parent.mkdir(parents=True, exist_ok=True)
    safetensors_io.save(fx, {"x": x.numpy(), "t": t.numpy(), "t_next": tn.numpy(), "emb": emb.numpy(),
                             "v": v.numpy(), "x_next": x_next.numpy(), "x1_hat": x1.numpy(),
                             "image": img.numpy()},
                        {"source": "training/generator/export.py", "model": "Assets/models/generator.safetensors",
                         "rule": meta["step_rule"], "tolerance": "max abs error 1e-3 on v, x_next, x1_hat, image",
                         "training_commit": git_commit()})
    print(json.dumps(fl), f"exemplars {len(sel)}", sep="\n")


def compose_classes(path):
    from .data import load_classes
    return load_classes(path)


NOTICE_HEAD = "== Generator (generator.safetensors, exemplars.safetensors) =="


def write_notice(path, prov):
    text = path.read_text() if path.exists() else ""
    after = ""
    if NOTICE_HEAD in text:  # replace only this section; keep other engineers' sections after it
        i = text.index(NOTICE_HEAD)
        j = text.find("\n== ", i + len(NOTICE_HEAD))
        after = text[j:] if j >= 0 else ""
        text = text[:i].rstrip() + "\n"
    pk = sorted({(p["package"], p["license"]) for p in prov})
    lines = [
        "", NOTICE_HEAD,
        "Model:      latent autoencoder decoder + rectified-flow student (reflow-distilled from a",
        "            classifier-free-guided flow-matching teacher), trained from scratch by this project",
        "            (training/generator/, `make train-generator`) on the dataset's train-split images",
        "            (data/manifest.csv: openclipart, Noto/EmojiOne emoji, GCompris, Tux Paint, qabcs images).",
        "            Conditioned on the separator issue's visual embedding (EfficientNet-Lite0 features, Apache-2.0).",
        "            The weights are derived from those images; their licenses are listed below.",
        "Exemplars:  exemplars.safetensors holds the latents (an encoding of the images, decodable by",
        "            generator.safetensors' decoder) and embeddings of these real train-split images:",
    ]
    for p in prov:
        lines.append(f"  {p['id']}  [{p['class']}]  {p['package']}:{p['source_path']}  ({p['license']})")
    lines.append("Licenses of the exemplar sources (package: license):")
    for pkg, lic in pk:
        lines.append(f"  {pkg}: {lic}")
    path.write_text(text.rstrip() + "\n" + "\n".join(lines) + "\n" + after)


if __name__ == "__main__":
    main()

"""Writes training/reports/generator.md from the metrics dict (numbers only; the prose about
what the grids look like lives in training/reports/generator_notes.md, written after looking
at them, and is appended verbatim)."""
from __future__ import annotations

import json
from pathlib import Path

from .export import DEFAULTS


def fmt(x, nd=3):
    return "n/a" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


def write(rep: Path, M: dict, cfg: dict, mix, seconds: float):
    run = Path("training/runs/generator")
    times = {}
    for s in ("ae", "latents", "teacher", "pairs", "student"):
        p = run / f"{s}.time.json"
        if p.exists():
            times[s] = json.load(open(p))["seconds"]
    fl = M.get("flops", {})
    L = []
    L.append("# Generator report (issue 6)\n")
    L.append("Written by `make eval-generator` (training/generator/evaluate.py); definitions of every metric "
             "are in that file's doc comment (CRS, R@2*, per-class image accuracy = judge top-1, diversity, "
             "nearest-training-image distance).\n")
    L.append("## Model\n")
    L.append(f"- Latent autoencoder: 128x128 RGB <-> {cfg['latent_ch']}x16x16 latent, decoder channels "
             f"{cfg['dec_ch']} (no normalisation layers; trained {cfg['ae_steps']} steps on 64x64 crops, L1 + "
             f"gradient L1, latent noise {cfg['ae_noise']}).")
    L.append(f"- Denoiser (teacher and student share it): latent U-Net, widths {cfg['width']}/{cfg['width2']}, "
             f"GroupNorm({cfg['groups']}), FiLM from MLP([emb(128), fourier(t) ({len(cfg['fourier_freqs'])} freqs)]) "
             f"-> {cfg['cond_dim']}.")
    L.append(f"- Teacher: rectified flow / flow matching, {cfg['teacher_steps']} steps at batch "
             f"{cfg['teacher_batch']}, embedding dropout {cfg['p_uncond']} (classifier-free guidance), EMA "
             f"{cfg['ema']}; embeddings augmented with same-class blends and noise (separator-like inputs).")
    L.append(f"- Student: reflow of the guided teacher (w={cfg['guidance']}, {cfg['pair_steps']} Euler steps, "
             f"{cfg['pairs']} pairs), initialised from the teacher, {cfg['student_steps']} steps; "
             f"{int(cfg['p_real'] * 100)}% of each batch are real latents re-noised at t in [0.3, 1] (retrieval / "
             "re-noise starts). Guidance is distilled: one denoiser call per step.")
    L.append("- Why reflow: the previous experiment on this machine found it cheap and good at 2-4 steps; it "
             "needs only teacher ODE pairs (no teacher in the student's training loop, unlike consistency "
             "distillation), it keeps the student's state a noisy latent on the straight path so the same "
             "network also serves SDEdit-style re-noised starts, and it distils guidance for free.")
    if fl:
        L.append(f"- Cost per student step per class, decoding included: **{fl['step_flop'] / 1e9:.4f} GFLOP** "
                 f"(denoiser {fl['denoiser_flop'] / 1e9:.4f} + decoder {fl['decoder_flop'] / 1e9:.4f}; "
                 f"FLOP = 2 x multiply-adds + elementwise ops; {fl['step_flop'] / 2e9 * 2:.3f} G including "
                 f"{(fl['denoiser_mac'] + fl['decoder_mac']) / 1e6:.1f} M MACs). Target <= 0.5.")
    if times:
        L.append("- Training time on this machine, as recorded in the run's `<stage>.time.json` (a resumed or "
                 "copied stage records only its last segment; the schedule history is in generator_notes.md and "
                 "CONFIGS['full']): " +
                 ", ".join(f"{k} {v / 60:.1f} min" for k, v in times.items()) +
                 f". Evaluation took {seconds / 60:.1f} min.")
    L.append("\n![losses](generator_losses.png)\n")

    L.append("## Judge reference\n")
    H = M.get("holdout") or {}
    n = M.get("n_test_images")
    L.append(f"- Judge: {M.get('judge')}")
    if H:
        L.append(f"- Test images of every per-image table below (`--holdout {H['mode']}`): the images "
                 f"{H['description']}: **{n} images of {M.get('n_test_classes')} classes**. "
                 + ("Neither the generator (trained on the train split of the 638-image split recorded in "
                    "its latents.npz `splits`) nor the judge (fitted on the current data/manifest.csv train "
                    "+ val splits) trained on them. " if H["mode"].startswith("both") else "")
                 + f"With few images per class (about {n / max(M.get('n_test_classes') or 1, 1):.1f} on average), "
                 f"one image moves a top-1 figure by {100 / max(n, 1):.1f} points.")
        L.append(f"- Images matched by {H['matched_by']}: all {H['n_generator']} of the generator's images are in "
                 f"the current manifest ({H['n_manifest']} images) with the same class. Generator split (rows) x "
                 "current split (columns):\n")
        L.append("| generator split \\ current split | train | val | test |")
        L.append("|---|---|---|---|")
        for o, r in H["overlap"].items():
            L.append(f"| {o} | {r['train']} | {r['val']} | {r['test']} |")
        L.append("")
    L.append(f"- Judge top-1 on these real held-out test images: {fmt(M.get('judge_real_test_top1'))}")
    L.append(f"- Judge top-1 on autoencoder reconstructions of those images (ceiling for anything decoded): "
             f"{fmt(M.get('judge_ae_reconstruction_top1'))}")
    L.append("- Diversity and nearest-train distance use frozen EfficientNet-Lite0 1280-d pooled features "
             "(ImageNet normalisation, mean of image and flip), the feature vector of the judge they were "
             "first measured with; with judge v3 they are read from its Lite0 member's id/flip views, so "
             "they are comparable across judges. \"Train\" for nearest-train distance is the generator's "
             "own train split.")
    if M.get("history"):
        L.append("- Earlier figures of this report, measured with another judge and/or on another test set, "
                 "are kept in the section \"History\" at the end of the numbers.")
    L.append("")

    L.append("## Per-class image accuracy (judge top-1), diversity, copying\n")
    L.append(f"From real-image embeddings of the {n} held-out test images above (one sample per image, same "
             "noise seed for all modes):\n")
    L.append("| mode | judge top-1 | nearest-train distance |")
    L.append("|---|---|---|")
    for k, v in M.get("real_embeddings", {}).items():
        L.append(f"| {k} | {fmt(v['top1'])} | {fmt(v['nn_dist'])} |")
    L.append(f"| real test images (reference) | {fmt(M.get('judge_real_test_top1'))} | {fmt(M.get('real_test_nn_dist'))} |")
    L.append(f"| autoencoder reconstructions (ceiling) | {fmt(M.get('judge_ae_reconstruction_top1'))} | |")
    L.append("")
    if "separated" in M:
        L.append("From the separator's embeddings (each class of each 1/2/3-source TEST mixture):\n")
        L.append("| mode | judge top-1 | nearest-train distance |")
        L.append("|---|---|---|")
        for k, v in M["separated"].items():
            if isinstance(v, dict) and "top1" in v:
                L.append(f"| {k} | {fmt(v['top1'])} | {fmt(v.get('nn_dist'))} |")
        L.append("")
    L.append("Diversity (mean pairwise cosine distance of judge-backbone features, same embedding, 4 noises; "
             "higher = more varied):\n")
    L.append("| mode | diversity |")
    L.append("|---|---|")
    for k, v in M.get("diversity", {}).items():
        L.append(f"| {k} | {fmt(v)} |")
    L.append("")
    L.append("Per class (columns: real test image, teacher 16 steps w=2.5, student 1/2/4 steps, retrieval mode (default strength 0.4), "
             "the exemplar it started from, the nearest train image to the student-4 sample):\n")
    L.append("![grid a](generator_grid_a.png)\n\n![grid b](generator_grid_b.png)\n")
    L.append("Same embedding, different noise (student 4 steps, then retrieval mode):\n")
    L.append("![diversity](generator_diversity.png)\n")

    L.append("## Mixtures: CRS and R@2*\n")
    mx = M.get("mixtures", {})
    if "error" in mx:
        L.append(f"Not evaluated: {mx['error']}\n")
    else:
        L.append("| mixed image | CRS 2-class | R@2* 2-class | CRS 3-class |")
        L.append("|---|---|---|---|")
        for k, v in mx.items():
            if isinstance(v, dict) and "crs2" in v:
                L.append(f"| {k} | {fmt(v['crs2'])} | {fmt(v['r2'])} | {fmt(v.get('crs3'))} |")
            elif isinstance(v, dict) and "missing" in v:
                L.append(f"| {k} | not evaluated: {v['missing']} | | |")
        L.append("")
        for k in ("note",):
            if k in mx:
                L.append(mx[k] + "\n")
        L.append("![mixtures](generator_mixtures.png)\n")
    L.append("## Targets\n")
    if n:
        L.append(f"Measured with: {M.get('label', M.get('judge'))}. Per-image figures on the {n} test images of the "
                 f"\"Judge reference\" section (one image = {100 / max(n, 1):.1f} points); mixture figures on "
                 "the audio TEST mixtures" + mix_counts(M) + ".\n")
    for t in M.get("targets", []):
        L.append(f"- {t}")
    L.append("")
    history(L, M)
    d = dict(DEFAULTS)
    if "default" in M:
        d["mode"] = M["default"]["mode"]
        L.append(f"## Live default\n\nRule: the mode with the higher judge top-1 on {M['default']['basis']} "
                 f"(pure student 4 steps {M['default']['judge_top1_pure_student4']:.3f} vs retrieval "
                 f"{M['default']['judge_top1_retrieval']:.3f}) -> **{d['mode']}**.\n")
    L.append(f"Defaults written to generator.safetensors metadata `defaults`: `{json.dumps(d)}`.\n")
    notes = rep / "generator_notes.md"
    if notes.exists():
        L.append(notes.read_text())
    (rep / "generator.md").write_text("\n".join(L) + "\n")


def history(L, M):
    """Previous runs (another generator, judge or test set) next to this one, same metric definitions."""
    hist = M.get("history") or []
    if not hist:
        return
    from .evaluate import summary_for_history
    cols = [summary_for_history(M)] + list(reversed(hist))
    L.append("## History: earlier measurements\n")
    L.append("Same metric definitions; the generator, the judge and/or the per-image test set differ (each label "
             "says which). Columns: this run first, then earlier runs (newest first):\n")
    for i, c in enumerate(cols):
        L.append(f"- ({'now' if i == 0 else i}) {c['label']}")
    L.append("")
    L.append("| figure | " + " | ".join("now" if i == 0 else f"({i})" for i in range(len(cols))) + " |")
    L.append("|---|" + "---|" * len(cols))

    def row(name, get):
        vals = []
        for c in cols:
            try:
                v = get(c)
            except (KeyError, TypeError):
                v = None
            vals.append(fmt(v))
        L.append(f"| {name} | " + " | ".join(vals) + " |")
    row("test images (per-image tables)", lambda c: c["n_test_images"])
    row("judge top-1, real test images", lambda c: c["judge_real_test_top1"])
    row("judge top-1, AE reconstructions", lambda c: c["judge_ae_reconstruction_top1"])
    keys = list(dict.fromkeys(k for c in cols for k in c["real_embeddings"]))
    for k in keys:
        row(f"top-1, real-image emb.: {k}", lambda c, k=k: c["real_embeddings"][k]["top1"])
    for k in list(dict.fromkeys(k for c in cols for k in c["separated"])):
        row(f"top-1, separated emb.: {k}", lambda c, k=k: c["separated"][k]["top1"])
    for k in list(dict.fromkeys(k for c in cols for k in c["diversity"])):
        row(f"diversity: {k}", lambda c, k=k: c["diversity"][k])
    row("nearest-train distance, real test images", lambda c: c["real_test_nn_dist"])
    for k in list(dict.fromkeys(k for c in cols for k in c["mixtures"])):
        short = k.split(" (")[0] if k.startswith("(") else k
        for m, nm in (("crs2", "CRS2"), ("r2", "R@2*"), ("crs3", "CRS3")):
            row(f"{nm}: {k}", lambda c, k=k, m=m: c["mixtures"][k][m])
    row("live default by the rule", lambda c: c["default_mode"])
    row("audio TEST mixtures used (1 / 2 / 3 sources)",
        lambda c: " / ".join(str(c["n_mixtures"][k]) for k in ("1", "2", "3")))
    L.append("")
    L.append("Mixture figures use the audio TEST mixtures (the first N of the same fixed lists, N in the last "
             "row); where N differs, the mixture columns differ in mixtures as well as in the judge. The "
             "per-image columns use different test images (see the labels), so differences there mix the judge "
             "change with the test-set change.\n")
    from .evaluate import LEGACY_LABEL
    if any(c["label"] == LEGACY_LABEL for c in cols[1:]):
        L.append("In the run of commit 224b4e6 (the column labelled with judge 7da9b67), the diversity reference "
                 "\"real images, same class\" drew 4 images per class from all of the generator's images but had "
                 "features only for its train and test images: the val images were zero vectors (cosine distance "
                 "1 to anything); re-drawing that run's groups (same seed) gives 29 of 43 groups with a val image, "
                 "95 of 258 pairs at distance 1, so its 0.704 was inflated. Features are now computed for every "
                 "image; the new value is not affected. No other figure used those zero vectors (nearest-train "
                 "distance uses train images only).\n")


def mix_counts(M):
    n = (M.get("mixtures") or {}).get("n_mixtures")
    if not n:
        return ""
    n = {str(k): v for k, v in n.items()}
    return (f" ({n.get('1')} one-source, {n.get('2')} two-source, {n.get('3')} three-source; one two-source "
            f"mixture = {100 / max(n.get('2') or 1, 1):.0f} points of R@2*)")

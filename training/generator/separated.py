"""The generator on the separator's outputs: per-class images from separated embeddings,
both mixed images, CRS / R@2* (definitions in evaluate.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from . import compose, sample


class Separated:
    """Separator (and no-separator ablation) outputs for the fixed TEST mixtures, from the
    separator issue's exported models (Assets/models/separator*.safetensors, loaded with
    training/avgas/export.load_exported) on its cached YAMNet embeddings of the mixtures
    (data/features/audio_eval.npz: emb{k} [mixtures, patches, 1024], cls{k}, ids{k}).

    Per mixture: each class's separated embedding = L2-normalised mean over the mixture's
    patches (0.96 s, hop 0.48 s) of the separator's embedding row of that class; its presence
    = mean over patches of sigmoid(presence logit); the ablation's embedding = L2-normalised
    mean over patches."""

    def __init__(self, data_root, classes, cache="audio_eval.npz"):
        """cache: the YAMNet embeddings of the mixtures under <data_root>/features/ (the TEST
        mixtures; audio_val_clips.npz holds the 60 val mixtures per source count)."""
        from training.avgas.export import load_exported
        self.root = Path(data_root)
        self.classes = classes
        self.sep, _, self.sep_meta = load_exported("separator")
        try:
            self.abl, _, _ = load_exported("ablation")
        except (FileNotFoundError, OSError):
            self.abl = None  # the ablation is exported later by the separator issue
        self.z = np.load(self.root / "features" / cache, allow_pickle=True)
        sc = json.loads(self.sep_meta["classes"])
        assert sc == list(classes), "separator class order differs from Assets/classes.json"

    def outputs_ids(self, n_src, limit=0):
        ids = self.z[f"ids{n_src}"] if f"ids{n_src}" in self.z.files else []
        return list(ids[:limit] if limit else ids)

    @torch.no_grad()
    def outputs(self, n_src, limit=0):
        z = self.z
        E, C, I = z[f"emb{n_src}"], z[f"cls{n_src}"], z[f"ids{n_src}"]
        if limit:
            E, C, I = E[:limit], C[:limit], I[:limit]
        out = []
        for e, cl, mid in zip(E, C, I):
            x = torch.from_numpy(np.asarray(e, np.float32))
            logits, emb = self.sep(x)
            a = self.abl(x).mean(0) if self.abl is not None else None
            p = torch.sigmoid(logits).mean(0).numpy()
            em = emb.mean(0).numpy()
            names = [self.classes[int(c)] for c in cl if c >= 0]
            out.append({"id": str(mid), "classes": names,
                        "emb": {c: em[self.classes.index(c)] / max(np.linalg.norm(em[self.classes.index(c)]), 1e-8)
                                for c in names},
                        "presence": {c: float(p[self.classes.index(c)]) for c in names},
                        "ablation": None if a is None else (a / a.norm().clamp_min(1e-8)).numpy()})
        return out


def evaluate(sep, gen, judge, feats, classes, layers, M, nn_dist, rep, limit=0):
    from .evaluate import crs_r2, grid_image, to_uint8, top1_acc
    res = {}
    per_class = {"student 1 step": [], "student 2 steps": [], "student 4 steps": [], "retrieval": [],
                 "teacher (16 steps, guidance 2.5)": []}
    labels_all = []
    mixed = {k: {} for k in ("(i) separator + paper-style mixed image (student 4 steps)",
                             "(ii) separator + composed scene (retrieval images)",
                             "(ii') separator + composed scene (student-4 images)",
                             "(iii) no-separator ablation, single image (student 4 steps)")}
    examples = []
    for n_src in (1, 2, 3):
        outs = sep.outputs(n_src, limit or (60 if n_src == 3 else 0))
        if not outs:
            continue
        # per-class images from separated embeddings
        E, lab, cidx, mix_of = [], [], [], []
        for m_i, o in enumerate(outs):
            for c in o["classes"]:
                e = np.asarray(o["emb"][c], np.float32)
                E.append(e / max(np.linalg.norm(e), 1e-8)); lab.append(c); cidx.append(classes.index(c)); mix_of.append(m_i)
        E = torch.from_numpy(np.stack(E))
        imgs = {}
        imgs["student 4 steps"] = gen.student_imgs(E, 11, 4)
        imgs["retrieval"] = gen.retrieval_imgs(E, np.array(cidx), 11)[0]
        if n_src == 1:  # (the slower modes on single-source mixtures only: evaluation budget)
            imgs["student 1 step"] = gen.student_imgs(E, 11, 1)
            imgs["student 2 steps"] = gen.student_imgs(E, 11, 2)
            imgs["teacher (16 steps, guidance 2.5)"] = gen.teacher_imgs(E, 11)
        u8 = {k: to_uint8(v) for k, v in imgs.items()}
        for k, v in u8.items():
            per_class[k].append((judge.scores(v), lab, feats(v)))
        labels_all += lab
        if n_src == 1:
            continue
        # mixed images
        pos = 0
        paper_e, abl_e, comp_r, comp_s, sets = [], [], [], [], []
        for m_i, o in enumerate(outs):
            C = o["classes"]
            w = [float(o["presence"][c]) for c in C]
            paper_e.append(sample.mixture_embedding([o["emb"][c] for c in C], w))
            if o["ablation"] is not None:
                a = np.asarray(o["ablation"], np.float32)
                abl_e.append(a / max(np.linalg.norm(a), 1e-8))
            items_r, items_s = [], []
            for j, c in enumerate(C):
                base = {"class": c, "score": max(w[j], 1e-3), "layer": layers.get(c, "middle")}
                items_r.append({**base, "image": u8["retrieval"][pos + j].astype(np.float32) / 255})
                items_s.append({**base, "image": u8["student 4 steps"][pos + j].astype(np.float32) / 255})
            comp_r.append((compose.compose(items_r) * 255 + 0.5).astype(np.uint8))
            comp_s.append((compose.compose(items_s) * 255 + 0.5).astype(np.uint8))
            sets.append(C)
            if (n_src == 2 and len(examples) < 5) or (n_src == 3 and len(examples) < 8):
                examples.append((m_i, n_src, C, [u8["retrieval"][pos + j] for j in range(len(C))], None))
            pos += len(C)
        paper = to_uint8(gen.student_imgs(torch.from_numpy(np.stack(paper_e)), 13, 4))
        abl = to_uint8(gen.student_imgs(torch.from_numpy(np.stack(abl_e)), 13, 4)) if abl_e else None
        for key, ims in zip(mixed, (paper, np.stack(comp_r), np.stack(comp_s), abl)):
            if ims is None:
                mixed[key]["missing"] = "Assets/models/separator_ablation.safetensors not exported yet"
                continue
            crs, r2 = crs_r2(judge.scores(ims), sets, classes)
            mixed[key][f"crs{n_src}"] = crs
            if n_src == 2:
                mixed[key]["r2"] = r2
        # keep mixed images of the example mixtures for the grid
        for ex_i, (m_i, ns, C, ims_c, _) in enumerate(examples):
            if ns == n_src and examples[ex_i][4] is None:
                examples[ex_i] = (m_i, ns, C, ims_c, (comp_r[m_i], comp_s[m_i], paper[m_i],
                                                      abl[m_i] if abl is not None else None))
    # per-class accuracy from separated embeddings
    sep_res = {}
    for k, lst in per_class.items():
        if not lst:
            continue
        S = np.concatenate([a for a, _, _ in lst]); labs = sum([b for _, b, _ in lst], [])
        Fe = np.concatenate([f for _, _, f in lst])
        acc, per = top1_acc(S, labs, classes)
        d, _ = nn_dist(Fe)
        sep_res[k] = {"top1": acc, "per_class": per, "nn_dist": float(d.mean()), "n": len(labs)}
    M["separated"] = sep_res
    M["mixtures"] = mixed
    n_used = {k: len(sep.outputs_ids(k, limit or (60 if k == 3 else 0))) for k in (1, 2, 3)}
    M["mixtures"]["n_mixtures"] = n_used
    M["mixtures"]["note"] = (f"Mixtures are the dataset's fixed TEST mixtures (the first {n_used[1]} one-source, "
                             f"{n_used[2]} two-source (data/mixtures/eval_2src) and {n_used[3]} three-source "
                             f"(eval_3src) ones{'; --max-mixtures ' + str(limit) if limit else ''}; evaluation "
                             "budget); per-class accuracy of teacher and "
                             f"student 1/2 steps from separated embeddings uses the {n_used[1]} one-source mixtures only; "
                             "separated embeddings of the mixture's own classes (oracle class set) with the "
                             "separator's presence probabilities as weights (paper-style) and scores (composed).")
    # grid: per example mixture, per-class images then the four mixed images
    rows, labels = [], []
    for m_i, ns, C, ims_c, mixes in examples:
        if mixes is None:
            continue
        r = list(ims_c) + [None] * (3 - len(ims_c)) + list(mixes)
        rows.append(r)
        labels.append(" + ".join(c.split(",")[0] for c in C))
    if rows:
        grid_image(rows, labels, ["class 1", "class 2", "class 3", "composed", "comp. s4", "paper", "ablation"],
                   rep / "generator_mixtures.png", cell=96)
    return mixed

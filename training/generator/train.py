"""Train the generator in resumable stages (issue 6).

Stages (each checkpointed under <run>/, skipped when <run>/<stage>.done exists):
  ae       latent autoencoder, 128x128 RGB <-> 8x16x16 latent (trained on random 64x64 crops
           of the train-split images; no normalisation layers, so crops and full images match)
  latents  encode every image (and its mirror), per-channel mean/std of the train split,
           normalised latents cached in <run>/latents.npz
  composites  (only with p_comp > 0) two- and three-subject scenes of train pictures laid out by
           compose.compose, conditioned on the blend of their embeddings (the paper-style input)
  teacher  rectified-flow (flow-matching) latent U-Net conditioned on the 128-d visual embedding
           with 10% embedding dropout (classifier-free guidance); EMA weights; with p_comp > 0 that
           share of each batch is composites
  pairs    teacher ODE (Euler, guidance w) from noise x0 -> x1 for train embeddings (instance,
           same-class blends, perturbed): the reflow coupling
  student  reflow: student (teacher architecture, initialised from the teacher EMA) regresses
           x1 - x0 on the straight line between the pairs, no guidance at run time (distilled)

Convention: x_t = (1 - t) * noise + t * data, t in [0, 1], velocity v = data - noise.

The recipe is sized for two CPU cores (`make train-generator`, about 80 minutes). `--set
device='"cuda"'` runs the same stages on a GPU when one is lent (optional; checkpoints always hold
CPU tensors, so such a run resumes and evaluates anywhere); training/generator/gpu_sweep.sh is how
the eighth session compared variants that way.

    python -m training.generator.train --config full --run training/runs/generator
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import arch, data

CONFIGS = {
    "full": dict(
        latent_ch=8, emb_dim=128, width=48, width2=96, cond_dim=192, groups=8,
        fourier_freqs=[0.5, 1, 2, 4, 8, 16, 32, 64], dec_ch=[64, 48, 24, 12],
        # the shipped run's values. History: the autoencoder and a first teacher were shortened
        # mid-run to fit a shared 2-core machine (cosine schedules first laid out for 4000 / 4500
        # steps, stopped at 2600); the shipped teacher is that 2600-step checkpoint resumed with
        # teacher_steps=13600 (the schedule restarts at about 0.8 x the peak rate and decays over
        # the extension; training/reports/generator_notes.md, "a longer teacher"), resumed again
        # with teacher_steps=24600 (fifth session), then 6144 reflow pairs from 16-step teacher
        # samples and a 4000-step student (sixth session, "a fuller distillation"). A fresh run
        # with these values has one schedule over 24600 steps (about 46 minutes on two idle cores).
        ae_steps=2600, ae_batch=32, ae_crop=64, ae_lr=1e-3, ae_noise=0.1, ae_zreg=1e-3,
        teacher_steps=24600, teacher_batch=64, teacher_lr=4e-4, p_uncond=0.1, ema=0.999,
        pairs=6144, pair_steps=16, guidance=2.5,
        student_steps=4000, student_batch=64, student_lr=1e-4, p_real=0.25,
        p_comp=0.0, comp_n=2048, comp_three=0.25,
        threads=1, ckpt_every=200, log_every=25,
    ),
    # CI smoke test: a couple of minutes on one core, no real dataset needed
    "tiny": dict(
        latent_ch=4, emb_dim=128, width=16, width2=32, cond_dim=32, groups=4,
        fourier_freqs=[1, 4, 16], dec_ch=[16, 8, 8, 8],
        ae_steps=40, ae_batch=8, ae_crop=64, ae_lr=2e-3, ae_noise=0.1, ae_zreg=1e-3,
        teacher_steps=60, teacher_batch=16, teacher_lr=1e-3, p_uncond=0.1, ema=0.9,
        pairs=32, pair_steps=4, guidance=2.0,
        student_steps=40, student_batch=16, student_lr=5e-4, p_real=0.25,
        p_comp=0.0, comp_n=64, comp_three=0.25,
        threads=1, ckpt_every=20, log_every=5,
    ),
}


def set_seed(s):
    torch.manual_seed(s)
    np.random.seed(s)


class Logger:
    def __init__(self, path):
        self.f = open(path, "a")

    def __call__(self, **kw):
        self.f.write(json.dumps(kw) + "\n")
        self.f.flush()


def _cpu(o):
    """Checkpoints hold CPU tensors, so a run trained on a GPU resumes and loads anywhere."""
    if torch.is_tensor(o):
        return o.detach().cpu()
    if isinstance(o, dict):
        return {k: _cpu(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return type(o)(_cpu(v) for v in o)
    return o


def device_of(cfg):
    """`device` = "cpu" (default; the recipe's budgets are for two CPU cores) or "cuda" (optional,
    same recipe and same numbers of steps, only faster)."""
    d = cfg.get("device", "cpu")
    if d == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: device=cuda asked for but no CUDA device is available")
    return torch.device(d)


def ema_update(ema, net, decay):
    with torch.no_grad():
        pe, pn = list(ema.parameters()), [p.detach() for p in net.parameters()]
        torch._foreach_mul_(pe, decay)
        torch._foreach_add_(pe, pn, alpha=1 - decay)


def save_ckpt(path, **state):
    tmp = str(path) + ".tmp"
    torch.save(_cpu(state), tmp)
    os.replace(tmp, path)


def load_source(args, cfg, need_emb=True):
    """Images (uint8 NHWC), rows, class list, embeddings dict."""
    classes, layers = data.load_classes(args.classes)
    rows = data.image_rows(args.data)
    emb_split = data.embedding_splits(args.data)
    if emb_split is not None and not args.allow_fake_embeddings:
        # train on the images the visual embedding space covers, in its splits (the shipped run's
        # 638-image split); images added to the manifest later have no embedding
        kept = [dict(r, split=emb_split[r["id"]]) for r in rows if r["id"] in emb_split]
        if len(kept) < len(rows):
            print(f"images: {len(kept)} of {len(rows)} have a visual embedding "
                  f"({data.EMB_FILE}); training on those, in that file's splits")
        rows = kept
    if args.max_images:
        rows = rows[: args.max_images]
    imgs = data.load_images(args.data, rows)
    if not need_emb:
        return classes, rows, imgs, None
    emb = data.load_embeddings(args.data)
    if emb is None:
        if not args.allow_fake_embeddings:
            raise SystemExit(f"error: {args.data}/{data.EMB_FILE} is missing (the separator issue writes it); "
                             "run `make train-separator` first")
        emb = data.fake_embeddings(rows, classes)
    return classes, rows, imgs, emb


# --------------------------------------------------------------------------- stages

def stage_ae(run, cfg, imgs, rows):
    set_seed(1)
    dev = device_of(cfg)
    tr = np.array([r["split"] == "train" for r in rows])
    x = (torch.from_numpy(imgs[tr]).permute(0, 3, 1, 2).float() / 255.0).to(dev)
    enc, dec = arch.build("encoder", cfg).to(dev), arch.build("decoder", cfg).to(dev)
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=cfg["ae_lr"])
    ck, step = run / "ae.pt", 0
    if ck.exists():
        s = torch.load(ck)
        enc.load_state_dict(s["enc"]); dec.load_state_dict(s["dec"]); opt.load_state_dict(s["opt"]); step = s["step"]
    log = Logger(run / "log_ae.jsonl")
    total = cfg["ae_steps"]
    sched = lambda i: cfg["ae_lr"] * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(1.0, i / total))))
    bar = tqdm(range(step, total), desc="ae", initial=step, total=total)
    c = cfg["ae_crop"]
    for i in bar:
        for g in opt.param_groups:
            g["lr"] = float(sched(i))
        idx = torch.randint(0, len(x), (cfg["ae_batch"],)).to(dev)
        b = x[idx]
        flip = (torch.rand(len(b)) < 0.5).to(dev)
        b[flip] = b[flip].flip(3)
        oy, ox = np.random.randint(0, 128 - c + 1, 2) // 8 * 8
        b = b[:, :, oy:oy + c, ox:ox + c]
        z = enc(img=b)
        rec = dec(z=z + cfg["ae_noise"] * torch.randn_like(z))
        l1 = (rec - b).abs().mean()
        grad = ((rec[..., 1:, :] - rec[..., :-1, :]) - (b[..., 1:, :] - b[..., :-1, :])).abs().mean() + \
               ((rec[..., 1:] - rec[..., :-1]) - (b[..., 1:] - b[..., :-1])).abs().mean()
        loss = l1 + 0.5 * grad + cfg["ae_zreg"] * z.pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        if i % cfg["log_every"] == 0:
            log(step=i, loss=loss.item(), l1=l1.item(), grad=grad.item(), zrms=z.pow(2).mean().sqrt().item())
            bar.set_postfix(l1=f"{l1.item():.4f}")
        if (i + 1) % cfg["ckpt_every"] == 0 or i + 1 == total:
            save_ckpt(ck, enc=enc.state_dict(), dec=dec.state_dict(), opt=opt.state_dict(), step=i + 1)
        if i + 1 in cfg.get("ae_snapshots", []):  # studies of the schedule: the AE at earlier steps
            save_ckpt(run / f"ae_{i + 1}.pt", enc=enc.state_dict(), dec=dec.state_dict(), step=i + 1)
    (run / "ae.done").touch()


def load_ae(run, cfg):
    s = torch.load(run / "ae.pt")
    enc, dec = arch.build("encoder", cfg), arch.build("decoder", cfg)
    enc.load_state_dict(s["enc"]); dec.load_state_dict(s["dec"])
    return enc.eval(), dec.eval()


def stage_latents(run, cfg, imgs, rows, emb):
    enc, _ = load_ae(run, cfg)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0
    zs, zf = [], []
    with torch.no_grad():
        for i in tqdm(range(0, len(x), 32), desc="latents"):
            zs.append(enc(img=x[i:i + 32])); zf.append(enc(img=x[i:i + 32].flip(3)))
    z, zfl = torch.cat(zs).numpy(), torch.cat(zf).numpy()
    tr = np.array([r["split"] == "train" for r in rows])
    mu = z[tr].mean(axis=(0, 2, 3)); sd = z[tr].std(axis=(0, 2, 3)) + 1e-6
    norm = lambda a: ((a - mu[None, :, None, None]) / sd[None, :, None, None]).astype(np.float32)
    np.savez(run / "latents.npz", ids=np.array([r["id"] for r in rows]), classes=np.array([r["class"] for r in rows]),
             splits=np.array([r["split"] for r in rows]), z=norm(z), zflip=norm(zfl), mu=mu, sd=sd,
             emb=np.stack([emb[r["id"]] for r in rows]), emb_sha=np.array(emb_sha(np.stack([emb[r["id"]] for r in rows]))))
    (run / "latents.done").touch()


def stage_composites(run, cfg, imgs, rows, layers):
    """Two- and three-subject training pictures for the paper-style mixed image (cfg p_comp > 0):
    comp_n scenes laid out by compose.compose from TRAIN pictures of distinct classes (three with
    probability comp_three), each picture's score U(0.5, 1); the scene's condition is
    sample.mixture_embedding of the pictures' embeddings with those scores as weights, which is
    how the paper-style input is formed from separated embeddings. Encoded and normalised like
    the single pictures. Writes composites.npz (z float16 [N, C, 16, 16], emb [N, D], classes)."""
    from . import compose, sample
    L = load_latents(run)
    assert list(L["ids"]) == [r["id"] for r in rows], "latents and image rows differ"
    tr = np.flatnonzero(L["splits"] == "train")
    cls = L["classes"]
    rng = np.random.default_rng(5)
    enc, _ = load_ae(run, cfg)
    mu, sd = L["mu"][None, :, None, None], L["sd"][None, :, None, None]
    Z, E, C = [], [], []
    for b in tqdm(range(0, cfg["comp_n"], 32), desc="composites"):
        pics, embs = [], []
        for _ in range(min(32, cfg["comp_n"] - b)):
            k = 3 if rng.random() < cfg["comp_three"] else 2
            pick = []
            while len(pick) < k:
                i = int(tr[rng.integers(len(tr))])
                if all(cls[i] != cls[j] for j in pick):
                    pick.append(i)
            w = rng.uniform(0.5, 1.0, k)
            items = [{"class": str(cls[i]), "score": float(wj), "layer": layers.get(str(cls[i]), "middle"),
                      "image": imgs[i].astype(np.float32) / 255} for i, wj in zip(pick, w)]
            pics.append(compose.compose(items))
            embs.append(sample.mixture_embedding([L["emb"][i] for i in pick], w))
            C.append("|".join(str(cls[i]) for i in pick))
        with torch.no_grad():
            z = enc(img=torch.from_numpy(np.stack(pics)).permute(0, 3, 1, 2).float()).numpy()
        Z.append(((z - mu) / sd).astype(np.float16)); E += embs
    np.savez(run / "composites.npz", z=np.concatenate(Z), emb=np.stack(E).astype(np.float32), classes=np.array(C))
    (run / "composites.done").touch()


def load_composites(run, cfg):
    """(z float32, emb) of composites.npz, or None when the run trains on single pictures only."""
    if not cfg.get("p_comp"):
        return None
    c = np.load(run / "composites.npz")
    return c["z"].astype(np.float32), c["emb"]


def composite_rows(comp, n, p, rng):
    """Which of a batch's n rows become composites (each with probability p) and which composite
    each takes: (rows, composite indices)."""
    m = np.flatnonzero(rng.random(n) < p)
    return m, rng.integers(0, len(comp[1]), len(m))


def emb_sha(E):
    import hashlib
    return hashlib.sha1(np.ascontiguousarray(E, np.float32).tobytes()).hexdigest()[:16]


def load_latents(run):
    return dict(np.load(run / "latents.npz"))


def train_split(L):
    tr = L["splits"] == "train"
    return L["z"][tr], L["zflip"][tr], L["emb"][tr], L["classes"][tr]


def stage_teacher(run, cfg):
    set_seed(2)
    L = load_latents(run)
    z, zf, e, cls = train_split(L)
    comp = load_composites(run, cfg)
    dev = device_of(cfg)
    net = arch.build("denoiser", cfg).to(dev)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["teacher_lr"])
    ck, step = run / "teacher.pt", 0
    if ck.exists():
        s = torch.load(ck)
        net.load_state_dict(s["net"]); ema.load_state_dict(s["ema"]); opt.load_state_dict(s["opt"]); step = s["step"]
    elif cfg.get("teacher_init"):
        # fine-tune: start from another run's teacher (its EMA weights, as exported), with a fresh
        # optimiser and this run's own schedule of teacher_steps
        s = torch.load(cfg["teacher_init"])
        net.load_state_dict(s["ema"]); ema.load_state_dict(s["ema"])
    log = Logger(run / "log_teacher.jsonl")
    rng = np.random.default_rng(step + 7)
    total, B = cfg["teacher_steps"], cfg["teacher_batch"]
    bar = tqdm(range(step, total), desc="teacher", initial=step, total=total)
    for i in bar:
        lr = float(cfg["teacher_lr"]) * min(1.0, (i + 1) / 200) * float(0.2 + 0.8 * 0.5 * (1 + np.cos(np.pi * i / total)))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = rng.integers(0, len(z), B)
        flip = rng.random(B) < 0.5
        x1 = np.where(flip[:, None, None, None], zf[idx], z[idx])
        if cfg.get("teacher_shift", 0):
            x1 = shift_latents(x1, cfg["teacher_shift"], rng)
        eb = augment_emb_idx(e, cls, idx, rng)
        if comp is not None:   # a share p_comp of the batch: multi-subject scenes and their blended condition
            m, j = composite_rows(comp, B, cfg["p_comp"], rng)
            x1[m], eb[m] = comp[0][j], comp[1][j]
        x1, eb = torch.from_numpy(x1), torch.from_numpy(eb)
        eb[torch.from_numpy(rng.random(B) < cfg["p_uncond"])] = 0.0
        x0 = torch.randn_like(x1)
        t = torch.rand(B)
        x1, eb, x0, t = x1.to(dev), eb.to(dev), x0.to(dev), t.to(dev)
        xt = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * x1
        loss = (net(x=xt, t=t, emb=eb) - (x1 - x0)).pow(2).mean()
        opt.zero_grad(); loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        ema_update(ema, net, min(cfg["ema"], (1 + i) / (10 + i)))
        if i % cfg["log_every"] == 0:
            log(step=i, loss=loss.item(), lr=lr)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if (i + 1) % cfg["ckpt_every"] == 0 or i + 1 == total:
            save_ckpt(ck, net=net.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(), step=i + 1)
    (run / "teacher.done").touch()


def shift_latents(x, s, rng):
    """Translate each latent [C, H, W] by (dy, dx) uniform in [-s, s] latent pixels (8 image pixels
    each), edges replicated: the same picture placed a little elsewhere, same embedding."""
    B, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (s, s), (s, s)), mode="edge")
    d = rng.integers(0, 2 * s + 1, (B, 2))
    return np.stack([xp[k, :, d[k, 0]:d[k, 0] + H, d[k, 1]:d[k, 1] + W] for k in range(B)])


def augment_emb_idx(e, cls, idx, rng, p_blend=0.3, p_noise=0.2, sigma=0.35):
    """Embeddings for rows idx: instance (50%), blend with another image of the same class
    (30%; prototype-like, what a separator trained with class-level A2V produces), or the
    instance plus isotropic noise of norm ~sigma (20%); re-normalised."""
    out = e[idx].copy()
    for k, i in enumerate(idx):
        u = rng.random()
        if u < p_blend:
            same = np.flatnonzero(cls == cls[i])
            j = same[rng.integers(len(same))]
            a = rng.uniform(0.3, 0.7)
            out[k] = a * e[i] + (1 - a) * e[j]
        elif u < p_blend + p_noise:
            out[k] = e[i] + sigma * rng.standard_normal(e.shape[1]) / np.sqrt(e.shape[1])
        out[k] /= max(np.linalg.norm(out[k]), 1e-8)
    return out.astype(np.float32)


def load_denoiser(run, cfg, which):
    s = torch.load(run / f"{which}.pt")
    net = arch.build("denoiser", cfg)
    net.load_state_dict(s["ema"] if "ema" in s else s["net"])
    return net.eval()


@torch.no_grad()
def teacher_sample(net, emb, x0, steps, w):
    """Euler ODE from t=0 (noise x0) to 1 with classifier-free guidance w (w=1: none)."""
    x = x0.clone()
    for k in range(steps):
        t = torch.full((len(x),), k / steps, device=x.device)
        if w == 1.0:
            v = net(x=x, t=t, emb=emb)
        else:
            vv = net(x=torch.cat([x, x]), t=torch.cat([t, t]), emb=torch.cat([emb, torch.zeros_like(emb)]))
            vc, vu = vv.chunk(2)
            v = vu + w * (vc - vu)
        x = x + v / steps
    return x


def stage_pairs(run, cfg):
    set_seed(3)
    L = load_latents(run)
    z, _, e, cls = train_split(L)
    dev = device_of(cfg)
    net = load_denoiser(run, cfg, "teacher").to(dev)
    comp = load_composites(run, cfg)
    rng = np.random.default_rng(3)
    n = cfg["pairs"]
    ck = run / "pairs_partial.npz"
    X0, X1, E = [], [], []
    if ck.exists():
        p = np.load(ck); X0, X1, E = [p["x0"]], [p["x1"]], [p["emb"]]
    done = sum(len(a) for a in X0)
    bar = tqdm(total=n, initial=done, desc="pairs")
    bs = cfg.get("pair_batch", 64)
    while done < n:
        idx = rng.integers(0, len(z), bs)
        eb = augment_emb_idx(e, cls, idx, rng)
        if comp is not None:   # the same share of blended (multi-subject) conditions as the teacher saw
            m, j = composite_rows(comp, bs, cfg["p_comp"], rng)
            eb[m] = comp[1][j]
        eb = torch.from_numpy(eb)
        g = torch.Generator().manual_seed(1000 + done)
        x0 = torch.randn((bs,) + z.shape[1:], generator=g)
        x1 = teacher_sample(net, eb.to(dev), x0.to(dev), cfg["pair_steps"], cfg["guidance"]).cpu()
        X0.append(x0.numpy()); X1.append(x1.numpy()); E.append(eb.numpy())
        done += bs
        bar.update(bs)
        np.savez(ck, x0=np.concatenate(X0), x1=np.concatenate(X1), emb=np.concatenate(E))
    os.replace(ck, run / "pairs.npz")
    (run / "pairs.done").touch()


STUDENT_TIMES = [0.0, 0.25, 0.5, 0.75]


def stage_student(run, cfg):
    set_seed(4)
    L = load_latents(run)
    z, zf, e, cls = train_split(L)
    P = np.load(run / "pairs.npz")
    px0, px1, pe = P["x0"], P["x1"], P["emb"]
    dev = device_of(cfg)
    net = load_denoiser(run, cfg, "teacher").train().to(dev)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["student_lr"])
    ck, step = run / "student.pt", 0
    if ck.exists():
        s = torch.load(ck)
        net.load_state_dict(s["net"]); ema.load_state_dict(s["ema"]); opt.load_state_dict(s["opt"]); step = s["step"]
    log = Logger(run / "log_student.jsonl")
    rng = np.random.default_rng(step + 11)
    total, B = cfg["student_steps"], cfg["student_batch"]
    nr = int(round(B * cfg["p_real"]))
    bar = tqdm(range(step, total), desc="student", initial=step, total=total)
    for i in bar:
        idx = rng.integers(0, len(px0), B - nr)
        x0, x1, eb = map(torch.from_numpy, (px0[idx], px1[idx], pe[idx]))
        # times: half on the 1/2/4-step grid, half uniform
        grid = torch.tensor(STUDENT_TIMES)[torch.from_numpy(rng.integers(0, 4, B - nr))]
        t = torch.where(torch.rand(B - nr) < 0.5, grid, torch.rand(B - nr))
        # SDEdit-style starts from real latents (retrieval mode, re-noising): independent noise, t >= 0.3
        ridx = rng.integers(0, len(z), nr)
        flip = rng.random(nr) < 0.5
        r1 = torch.from_numpy(np.where(flip[:, None, None, None], zf[ridx], z[ridx]))
        r0 = torch.randn_like(r1)
        re = torch.from_numpy(augment_emb_idx(e, cls, ridx, rng))
        rt = 0.3 + 0.7 * torch.rand(nr)
        x0, x1, eb, t = (torch.cat(p).to(dev) for p in ((x0, r0), (x1, r1), (eb, re), (t, rt)))
        xt = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * x1
        loss = (net(x=xt, t=t, emb=eb) - (x1 - x0)).pow(2).mean()
        opt.zero_grad(); loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        ema_update(ema, net, min(0.998, (1 + i) / (10 + i)))
        if i % cfg["log_every"] == 0:
            log(step=i, loss=loss.item())
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if (i + 1) % cfg["ckpt_every"] == 0 or i + 1 == total:
            save_ckpt(ck, net=net.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(), step=i + 1)
    (run / "student.done").touch()


STAGES = ["ae", "latents", "composites", "teacher", "pairs", "student"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="full", choices=sorted(CONFIGS))
    ap.add_argument("--run", default="training/runs/generator")
    ap.add_argument("--data", default="data")
    ap.add_argument("--classes", default="Assets/classes.json")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--max-images", type=int, default=0)
    ap.add_argument("--allow-fake-embeddings", action="store_true",
                    help="smoke tests only: random class embeddings when the embedding file is missing")
    ap.add_argument("--set", nargs="*", default=[], help="override config values, key=value (JSON)")
    args = ap.parse_args(argv)
    cfg = dict(CONFIGS[args.config])
    overrides = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        overrides[k] = json.loads(v)
    cfg.update(overrides)
    torch.set_num_threads(cfg["threads"])
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    cfgp = run / "config.json"
    if cfgp.exists():
        old = json.load(open(cfgp))
        arch_keys = ("latent_ch", "width", "width2", "cond_dim", "groups", "fourier_freqs", "dec_ch")
        if any(old.get(k) != cfg.get(k) for k in arch_keys):
            raise SystemExit(f"error: {run} holds a run with another architecture; use another --run")
        # a resumed run keeps its recorded values; --set overrides only the keys it names
        cfg = {**cfg, **old, **overrides}
    json.dump(cfg, open(cfgp, "w"), indent=1)
    todo = [s for s in args.stages.split(",") if s]
    need_data = any(s in (("ae", "latents", "composites") if cfg.get("p_comp") else ("ae", "latents"))
                    and not (run / f"{s}.done").exists() for s in todo)
    if need_data:
        need_emb = "latents" in todo and not (run / "latents.done").exists()
        classes, rows, imgs, emb = load_source(args, cfg, need_emb)
    t0 = time.time()
    for s in todo:
        if (run / f"{s}.done").exists():
            print(f"[{s}] done, skipped")
            continue
        ts = time.time()
        if s == "ae":
            stage_ae(run, cfg, imgs, rows)
        elif s == "latents":
            stage_latents(run, cfg, imgs, rows, emb)
        elif s == "composites":
            if not cfg.get("p_comp"):   # single pictures only: nothing to build, and no composites.done
                continue                # (a later resume with p_comp > 0 must still build them)
            stage_composites(run, cfg, imgs, rows, data.load_classes(args.classes)[1])
        elif s == "teacher":
            stage_teacher(run, cfg)
        elif s == "pairs":
            stage_pairs(run, cfg)
        elif s == "student":
            stage_student(run, cfg)
        tp = run / f"{s}.time.json"
        prev = json.load(open(tp))["seconds"] if tp.exists() else 0.0  # summed over resumed runs
        json.dump({"seconds": prev + time.time() - ts}, open(tp, "w"))
    print(f"generator training: {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()

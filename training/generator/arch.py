"""Swift-portable network description ("program") and its PyTorch interpreter.

Every network of the generator (the latent denoiser used as teacher and student, the
decoder, and the training-only encoder) is a *program*: a list of steps executed in order
over named buffers. The same list is written into the safetensors `__metadata__` (key
`<net>.program`, JSON) so the Swift loader builds the network from the file alone.

Buffers: NCHW float32 feature maps or [B, D] vectors. Inputs of the denoiser are
`x` [B, C, H, W] (normalised latent), `t` [B] (flow time, 0 = noise, 1 = data) and
`emb` [B, 128] (L2-normalised visual embedding; all zeros = unconditional).
Inputs of the decoder: `z` [B, C, H, W] (normalised latent).

Ops (fields besides `op`, `in` (list of buffer names) and `out` (buffer name)):
- `fourier`   in [t] -> [B, 2K]: concat(sin(2*pi*f_k*t), cos(2*pi*f_k*t)) for f in `freqs`.
- `linear`    `param` P: y = x @ P.weight^T + P.bias; P.weight [out, in].
- `conv`      `param` P, `k` (1|3), `stride` (1|2): 2-D cross-correlation, zero padding k//2
              (so stride 2 halves H and W, H and W even), P.weight [cout, cin, k, k], P.bias [cout].
- `groupnorm` `param` P, `groups`, `eps`: per sample and group, (x - mean) / sqrt(var + eps)
              (biased variance over channels-in-group x H x W), then * P.weight[c] + P.bias[c].
- `silu`      x * sigmoid(x).      `sigmoid`  1 / (1 + exp(-x)).
- `film`      in [h, s]: s [B, 2C] -> h * (1 + s[:, :C]) + s[:, C:] per channel.
- `add`       in [a, b]: a + b.     `concat` in [a, b, ...]: along dim 1 (channels / features).
- `up2`       nearest-neighbour x2: y[.., i, j] = x[.., i // 2, j // 2].
The network's output buffer is named in `<net>.output`.
"""
from __future__ import annotations

import json
import math
from typing import Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

OPS = ("fourier", "linear", "conv", "groupnorm", "silu", "sigmoid", "film", "add", "concat", "up2")


class Builder:
    """Helper that appends steps and records parameter shapes."""

    def __init__(self):
        self.steps: List[dict] = []
        self.params: Dict[str, tuple] = {}
        self.n = 0

    def _name(self, prefix):
        self.n += 1
        return f"{prefix}{self.n}"

    def step(self, op, inputs, out=None, **attrs):
        out = out or self._name("b")
        s = {"op": op, "in": list(inputs), "out": out}
        s.update(attrs)
        self.steps.append(s)
        return out

    def conv(self, x, cin, cout, k, stride, param):
        self.params[param + ".weight"] = (cout, cin, k, k)
        self.params[param + ".bias"] = (cout,)
        return self.step("conv", [x], param=param, k=k, stride=stride)

    def linear(self, x, din, dout, param):
        self.params[param + ".weight"] = (dout, din)
        self.params[param + ".bias"] = (dout,)
        return self.step("linear", [x], param=param)

    def gn(self, x, c, groups, param):
        self.params[param + ".weight"] = (c,)
        self.params[param + ".bias"] = (c,)
        return self.step("groupnorm", [x], param=param, groups=groups, eps=1e-5)

    def resblock(self, x, cin, cout, cond, cdim, groups, param):
        """[GN]-SiLU-conv3, FiLM(cond), [GN]-SiLU-conv3, + skip (1x1 conv when cin != cout).
        groups = 0: no normalisation (the autoencoder, trained on crops)."""
        h = self.gn(x, cin, min(groups, cin), param + ".norm1") if groups else x
        h = self.step("silu", [h])
        h = self.conv(h, cin, cout, 3, 1, param + ".conv1")
        if cond is not None:
            s = self.linear(cond, cdim, 2 * cout, param + ".film")
            h = self.step("film", [h, s])
        h = self.gn(h, cout, min(groups, cout), param + ".norm2") if groups else h
        h = self.step("silu", [h])
        h = self.conv(h, cout, cout, 3, 1, param + ".conv2")
        skip = x if cin == cout else self.conv(x, cin, cout, 1, 1, param + ".skip")
        return self.step("add", [h, skip])


def denoiser_program(cfg: dict):
    """Latent U-Net: levels at H and H/2, FiLM conditioning on [emb, fourier(t)]."""
    b = Builder()
    C, E, w, w2, cd, G = cfg["latent_ch"], cfg["emb_dim"], cfg["width"], cfg["width2"], cfg["cond_dim"], cfg["groups"]
    freqs = [float(f) for f in cfg["fourier_freqs"]]
    tf = b.step("fourier", ["t"], freqs=freqs)
    c = b.step("concat", ["emb", tf])
    c = b.linear(c, E + 2 * len(freqs), cd, "cond.fc1")
    c = b.step("silu", [c])
    c = b.linear(c, cd, cd, "cond.fc2")
    c = b.step("silu", [c])
    h = b.conv("x", C, w, 3, 1, "conv_in")
    h1 = b.resblock(h, w, w, c, cd, G, "down1")
    h = b.conv(h1, w, w2, 3, 2, "downsample")
    h = b.resblock(h, w2, w2, c, cd, G, "mid1")
    h = b.resblock(h, w2, w2, c, cd, G, "mid2")
    h = b.step("up2", [h])
    h = b.step("concat", [h, h1])
    h = b.resblock(h, w2 + w, w, c, cd, G, "up1")
    h = b.gn(h, w, G, "norm_out")
    h = b.step("silu", [h])
    out = b.conv(h, w, C, 3, 1, "conv_out")
    return b.steps, b.params, out


def decoder_program(cfg: dict):
    """Latent [C, H, W] -> RGB [3, 8H, 8W] in [0, 1] (sigmoid)."""
    b = Builder()
    C, chs = cfg["latent_ch"], cfg["dec_ch"]  # e.g. [64, 48, 24, 12]
    h = b.conv("z", C, chs[0], 3, 1, "conv_in")
    h = b.resblock(h, chs[0], chs[0], None, 0, 0, "res0")
    for i in range(1, len(chs)):
        h = b.step("up2", [h])
        h = b.conv(h, chs[i - 1], chs[i], 3, 1, f"up{i}.conv")
        h = b.step("silu", [h])
    h = b.conv(h, chs[-1], 3, 3, 1, "conv_out")
    out = b.step("sigmoid", [h])
    return b.steps, b.params, out


def encoder_program(cfg: dict):
    """RGB [3, 128, 128] in [0, 1] -> latent [C, 16, 16] (training only; not exported)."""
    b = Builder()
    C, chs = cfg["latent_ch"], list(reversed(cfg["dec_ch"]))  # [12, 24, 48, 64]
    h = b.conv("img", 3, chs[0], 3, 1, "conv_in")
    h = b.step("silu", [h])
    for i in range(1, len(chs)):
        h = b.conv(h, chs[i - 1], chs[i], 3, 2, f"down{i}.conv")
        h = b.step("silu", [h])
    h = b.resblock(h, chs[-1], chs[-1], None, 0, 0, "res0")
    out = b.conv(h, chs[-1], C, 3, 1, "conv_out")
    return b.steps, b.params, out


class ProgramNet(nn.Module):
    """Interprets a program; parameters live in a flat ParameterDict keyed by tensor name."""

    def __init__(self, steps, params, output):
        super().__init__()
        self.steps, self.output = steps, output
        self.p = nn.ParameterDict()
        self._keys = {}
        for name, shape in params.items():
            key = name.replace(".", "__")
            self._keys[name] = key
            t = torch.zeros(shape)
            if name.endswith(".weight") and len(shape) >= 2:
                fan_in = math.prod(shape[1:])
                nn.init.normal_(t, std=1.0 / math.sqrt(fan_in))
            elif name.endswith(".weight"):
                t.fill_(1.0)  # groupnorm scale
            self.p[key] = nn.Parameter(t)
        # zero-init residual branch outputs and FiLM so the net starts near identity
        for name in params:
            if name.endswith("conv2.weight") or name.endswith(".film.weight"):
                self.p[self._keys[name]].data.mul_(0.1)

    def w(self, name):
        return self.p[self._keys[name]]

    def forward(self, **inputs):
        buf = dict(inputs)
        for s in self.steps:
            op, a = s["op"], [buf[i] for i in s["in"]]
            if op == "fourier":
                f = torch.tensor(s["freqs"], dtype=a[0].dtype, device=a[0].device)
                ang = 2 * math.pi * a[0][:, None] * f[None, :]
                y = torch.cat([torch.sin(ang), torch.cos(ang)], 1)
            elif op == "linear":
                y = F.linear(a[0], self.w(s["param"] + ".weight"), self.w(s["param"] + ".bias"))
            elif op == "conv":
                y = F.conv2d(a[0], self.w(s["param"] + ".weight"), self.w(s["param"] + ".bias"),
                             stride=s["stride"], padding=s["k"] // 2)
            elif op == "groupnorm":
                y = F.group_norm(a[0], s["groups"], self.w(s["param"] + ".weight"),
                                 self.w(s["param"] + ".bias"), s["eps"])
            elif op == "silu":
                y = F.silu(a[0])
            elif op == "sigmoid":
                y = torch.sigmoid(a[0])
            elif op == "film":
                C = a[0].shape[1]
                y = a[0] * (1 + a[1][:, :C, None, None]) + a[1][:, C:, None, None]
            elif op == "add":
                y = a[0] + a[1]
            elif op == "concat":
                y = torch.cat(a, 1)
            elif op == "up2":
                y = F.interpolate(a[0], scale_factor=2, mode="nearest")
            else:
                raise ValueError(op)
            buf[s["out"]] = y
        return buf[self.output]

    def state_numpy(self):
        return {name: self.w(name).detach().cpu().numpy().astype("float32") for name in self._keys}

    def load_numpy(self, tensors):
        with torch.no_grad():
            for name in self._keys:
                self.w(name).copy_(torch.as_tensor(tensors[name]))


def count_flops(steps, params, input_shapes: Dict[str, tuple]) -> dict:
    """Multiply-adds (MAC) and elementwise ops of one forward at batch 1.

    FLOP = 2 * MAC for conv/linear plus 1 per output element of elementwise ops
    (silu/sigmoid counted as 4, groupnorm as 5 per element)."""
    shp = dict(input_shapes)
    mac, elem = 0, 0
    for s in steps:
        a = [shp[i] for i in s["in"]]
        op = s["op"]
        if op == "fourier":
            y = (2 * len(s["freqs"]),)
            elem += 2 * y[0]
        elif op == "linear":
            dout, din = params[s["param"] + ".weight"]
            y = (dout,)
            mac += din * dout
        elif op == "conv":
            cout, cin, k, _ = params[s["param"] + ".weight"]
            H, W = a[0][1] // s["stride"], a[0][2] // s["stride"]
            y = (cout, H, W)
            mac += cout * cin * k * k * H * W
        elif op in ("silu", "sigmoid"):
            y = a[0]; elem += 4 * math.prod(y)
        elif op == "groupnorm":
            y = a[0]; elem += 5 * math.prod(y)
        elif op in ("film", "add"):
            y = a[0]; elem += 2 * math.prod(y)
        elif op == "concat":
            y = (sum(x[0] for x in a),) + tuple(a[0][1:])
        elif op == "up2":
            y = (a[0][0], a[0][1] * 2, a[0][2] * 2)
        shp[s["out"]] = y
    return {"mac": mac, "flop": 2 * mac + elem}


def build(kind: str, cfg: dict) -> ProgramNet:
    fn = {"denoiser": denoiser_program, "decoder": decoder_program, "encoder": encoder_program}[kind]
    steps, params, out = fn(cfg)
    return ProgramNet(steps, params, out)


def program_json(net: ProgramNet) -> str:
    return json.dumps(net.steps, separators=(",", ":"))

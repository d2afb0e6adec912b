"""Separator (AV-GAS) and the no-separator ablation, built only from ops the Swift runtime
implements: linear, relu, layernorm, add, mul, l2norm (sigmoid is applied by the consumer to
presence logits). Each model describes its own inference graph as an op list (`graph()`), stored
in the exported safetensors' __metadata__["architecture"]; `run_graph` is the numpy reference
interpreter of that format (the Swift loader implements the same rules).

Graph format "avgas-graph-v1" (JSON):
  {"format": "avgas-graph-v1", "input": {"name": "x", "shape": [1024]},
   "ops": [...], "outputs": {"name": shape, ...}}
  op kinds (values are float32 arrays named by "in"/"a"/"b"/"out"; "weight"/"bias"/"param" name
  tensors stored in the file):
    linear    out = in @ weight.T + bias      weight [out_f, in_f], bias [out_f]; applied to the
                                              last axis (row-wise on [K, in_f] values)
    relu      out = max(in, 0)
    layernorm out = (in - mean) / sqrt(var + eps) * weight + bias over the last axis (biased var)
    add       out = a + b (two values) or in + param; numpy broadcasting (trailing axes aligned)
    mul       out = in * param; numpy broadcasting ([512] * [46, 512] -> [46, 512])
    l2norm    out = in / max(||in||_2, eps) over the last axis
  A value may be overwritten by a later op ("out" equal to an earlier name).
"""
from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

D_IN = 1024
N_CLASSES = 46
D_EMB = 128
LN_EPS = 1e-5
L2_EPS = 1e-12


def l2n(x):
    return F.normalize(x, dim=-1, eps=L2_EPS)


class Trunk(nn.Module):
    """LayerNorm(1024) -> Linear(1024, H) -> ReLU -> residual [Linear(H, H) -> ReLU]."""

    def __init__(self, d_hidden=512, dropout=0.1):
        super().__init__()
        self.in_norm = nn.LayerNorm(D_IN, eps=LN_EPS)
        self.fc1 = nn.Linear(D_IN, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        h1 = F.relu(self.fc1(self.in_norm(x)))
        h1 = self.drop(h1)
        return h1 + self.drop(F.relu(self.fc2(h1)))

    @staticmethod
    def graph():
        return [
            {"op": "layernorm", "in": "x", "out": "h0", "weight": "in_norm.weight", "bias": "in_norm.bias", "eps": LN_EPS},
            {"op": "linear", "in": "h0", "out": "h1", "weight": "fc1.weight", "bias": "fc1.bias"},
            {"op": "relu", "in": "h1", "out": "h1"},
            {"op": "linear", "in": "h1", "out": "t", "weight": "fc2.weight", "bias": "fc2.bias"},
            {"op": "relu", "in": "t", "out": "t"},
            {"op": "add", "a": "h1", "b": "t", "out": "h2"},
        ]


class Separator(nn.Module):
    """x [B,1024] -> presence logits [B,46], embeddings [B,46,128] (unit norm).

    Per-class branch: g_c = h2 * class_gate[c]; u_c = relu(emb1(g_c) + class_bias[c]);
    e_c = l2norm(emb2(u_c)). emb1/emb2 are shared by all classes."""

    def __init__(self, d_hidden=512, d_class=256, n_classes=N_CLASSES, dropout=0.1):
        super().__init__()
        self.cfg = dict(d_hidden=d_hidden, d_class=d_class, n_classes=n_classes)
        self.trunk = Trunk(d_hidden, dropout)
        self.presence = nn.Linear(d_hidden, n_classes)
        self.class_gate = nn.Parameter(1.0 + 0.1 * torch.randn(n_classes, d_hidden))
        self.emb1 = nn.Linear(d_hidden, d_class)
        self.class_bias = nn.Parameter(0.02 * torch.randn(n_classes, d_class))
        self.emb2 = nn.Linear(d_class, D_EMB)

    def forward(self, x):
        h = self.trunk(x)
        logits = self.presence(h)
        g = h[:, None, :] * self.class_gate[None]
        u = F.relu(self.emb1(g) + self.class_bias[None])
        return logits, l2n(self.emb2(u))

    def graph(self):
        H, C, K = self.cfg["d_hidden"], self.cfg["d_class"], self.cfg["n_classes"]
        return {"format": "avgas-graph-v1", "name": "separator",
                "input": {"name": "x", "shape": [D_IN], "what": "YAMNet 1024-d embedding of one 96-frame log-mel patch"},
                "ops": Trunk.graph() + [
                    {"op": "linear", "in": "h2", "out": "presence_logits", "weight": "presence.weight", "bias": "presence.bias"},
                    {"op": "mul", "in": "h2", "param": "class_gate", "out": "g"},
                    {"op": "linear", "in": "g", "out": "u", "weight": "emb1.weight", "bias": "emb1.bias"},
                    {"op": "add", "in": "u", "param": "class_bias", "out": "u"},
                    {"op": "relu", "in": "u", "out": "u"},
                    {"op": "linear", "in": "u", "out": "e", "weight": "emb2.weight", "bias": "emb2.bias"},
                    {"op": "l2norm", "in": "e", "out": "embeddings", "eps": L2_EPS},
                ],
                "outputs": {"presence_logits": [K], "embeddings": [K, D_EMB]},
                "sizes": {"d_in": D_IN, "d_hidden": H, "d_class": C, "n_classes": K, "d_emb": D_EMB}}

    def tensors(self):
        sd = self.state_dict()
        return {k.replace("trunk.", ""): v.detach().float().numpy().copy() for k, v in sd.items()}


class Ablation(nn.Module):
    """No-separator (Sound2Scene-style) baseline: one 128-d embedding of the whole window."""

    def __init__(self, d_hidden=512, dropout=0.1):
        super().__init__()
        self.cfg = dict(d_hidden=d_hidden)
        self.trunk = Trunk(d_hidden, dropout)
        self.head1 = nn.Linear(d_hidden, d_hidden)
        self.head2 = nn.Linear(d_hidden, D_EMB)

    def forward(self, x):
        return l2n(self.head2(F.relu(self.head1(self.trunk(x)))))

    def graph(self):
        H = self.cfg["d_hidden"]
        return {"format": "avgas-graph-v1", "name": "separator_ablation",
                "input": {"name": "x", "shape": [D_IN], "what": "YAMNet 1024-d embedding of one 96-frame log-mel patch"},
                "ops": Trunk.graph() + [
                    {"op": "linear", "in": "h2", "out": "a", "weight": "head1.weight", "bias": "head1.bias"},
                    {"op": "relu", "in": "a", "out": "a"},
                    {"op": "linear", "in": "a", "out": "e", "weight": "head2.weight", "bias": "head2.bias"},
                    {"op": "l2norm", "in": "e", "out": "embedding", "eps": L2_EPS},
                ],
                "outputs": {"embedding": [D_EMB]},
                "sizes": {"d_in": D_IN, "d_hidden": H, "d_emb": D_EMB}}

    def tensors(self):
        return {k.replace("trunk.", ""): v.detach().float().numpy().copy() for k, v in self.state_dict().items()}


class AudioProj(nn.Module):
    """A2A target: single-source YAMNet embedding -> the 128-d visual space (training only)."""

    def __init__(self, d_hidden=512):
        super().__init__()
        self.norm = nn.LayerNorm(D_IN, eps=LN_EPS)
        self.fc1 = nn.Linear(D_IN, d_hidden)
        self.fc2 = nn.Linear(d_hidden, D_EMB)

    def forward(self, x):
        return l2n(self.fc2(F.relu(self.fc1(self.norm(x)))))


def run_graph(tensors: dict, arch: dict, x: np.ndarray) -> dict:
    """numpy interpreter of avgas-graph-v1 for one input vector x [1024] or a batch [B,1024]
    (a batch adds a leading axis to every value; params broadcast against trailing axes)."""
    batched = x.ndim == 2
    v = {arch["input"]["name"]: np.asarray(x, np.float32)}

    def P(name):
        return np.asarray(tensors[name], np.float32)

    for op in arch["ops"]:
        k = op["op"]
        if k == "linear":
            y = v[op["in"]] @ P(op["weight"]).T + P(op["bias"])
        elif k == "relu":
            y = np.maximum(v[op["in"]], 0)
        elif k == "layernorm":
            a = v[op["in"]]
            m = a.mean(-1, keepdims=True)
            var = ((a - m) ** 2).mean(-1, keepdims=True)
            y = (a - m) / np.sqrt(var + op["eps"]) * P(op["weight"]) + P(op["bias"])
        elif k in ("add", "mul"):
            if "param" in op:
                a, b = v[op["in"]], P(op["param"])
                if batched and b.ndim > 1 and a.ndim == 2:   # [B,H] * [K,H] -> [B,K,H]
                    a = a[:, None, :]
            else:
                a, b = v[op["a"]], v[op["b"]]
            y = a + b if k == "add" else a * b
        elif k == "l2norm":
            a = v[op["in"]]
            y = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), op["eps"])
        else:
            raise ValueError(f"unknown op {k}")
        v[op["out"]] = y.astype(np.float32)
    return {name: v[name] for name in arch["outputs"]}


def flops(arch: dict, tensors: dict) -> int:
    """Floating-point operations of one forward (one input vector): 2*in*out per linear row plus
    one per element for relu/add/mul, ~5 per element for layernorm, ~3 per element for l2norm."""
    shapes = {arch["input"]["name"]: tuple(arch["input"]["shape"])}
    total = 0
    for op in arch["ops"]:
        k = op["op"]
        if k == "linear":
            s = shapes[op["in"]]
            o, i = tensors[op["weight"]].shape
            rows = int(np.prod(s[:-1])) if len(s) > 1 else 1
            total += rows * (2 * i * o + o)
            shp = s[:-1] + (o,)
        elif k in ("add", "mul"):
            a = shapes[op["in"]] if "param" in op else shapes[op["a"]]
            b = tuple(tensors[op["param"]].shape) if "param" in op else shapes[op["b"]]
            shp = tuple(np.broadcast_shapes(a, b))
            total += int(np.prod(shp))
        else:
            shp = shapes[op["in"]]
            total += int(np.prod(shp)) * {"relu": 1, "layernorm": 5, "l2norm": 3}[k]
        shapes[op["out"]] = shp
    return total

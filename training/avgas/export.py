"""Export the separator / ablation to Assets/models/*.safetensors (float32, tools/safetensors_io.py)
and write the Swift parity fixture.

Metadata keys (all strings; JSON where noted):
  format            "avgas-graph-v1"
  architecture      JSON graph: input, ops (kind, operand names, tensor names), outputs, sizes
                    (see training/avgas/models.py for the op semantics)
  classes           JSON list of the 46 class names (Assets/classes.json order) = presence/embedding rows
  presence_threshold  decision threshold on sigmoid(presence logit) (separator only)
  embedding_space   how the 128-d visual space is defined (data/features/README)
  input             what x is (YAMNet embedding of a 96-frame patch, float ONNX graph / Swift engine)
  flops_per_hop     exact float operations of one forward, counted per op (models.flops)
  training          JSON: steps, batch, lr, wd, tau, seed, best_step, windows
  training_commit   git rev-parse HEAD at export time
  metrics           JSON headline metrics (filled in by `make eval-separator`)
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from .models import Ablation, Separator, flops, run_graph

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import safetensors_io  # noqa: E402

PATHS = {"separator": ROOT / "Assets/models/separator.safetensors",
         "ablation": ROOT / "Assets/models/separator_ablation.safetensors"}
FIXTURE = ROOT / "Tests/ListeningTests/Fixtures/separator_golden.safetensors"


def commit():
    return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()


def export(kind, model, cfg, state=None, path=None, metrics=None, threshold=0.5):
    from .visual import class_names
    arch = model.graph()
    t = model.tensors()
    meta = {"format": "avgas-graph-v1", "architecture": json.dumps(arch), "classes": json.dumps(class_names()),
            "embedding_space": "128-d L2-normalised: PCA-128 of frozen EfficientNet-Lite0 pooled features of the "
                               "dataset's real images, fitted on the train split (training/avgas/visual.py)",
            "input": "YAMNet 1024-d embedding (global average pool) of one 96x64 log-mel patch, float graph "
                     "(.build/models/yamnet_float.onnx == Assets/models/yamnet.safetensors in Swift)",
            "flops_per_hop": str(flops(arch, t)), "training": json.dumps(cfg), "training_commit": commit(),
            "metrics": json.dumps(metrics or {})}
    if kind == "separator":
        meta["presence_threshold"] = str(threshold)
        meta["outputs"] = "presence_logits [46] (sigmoid -> probability), embeddings [46,128] unit norm, row c = class c"
    else:
        meta["outputs"] = "embedding [128] unit norm (one embedding of the whole window)"
    p = Path(path or PATHS[kind])
    p.parent.mkdir(parents=True, exist_ok=True)
    safetensors_io.save(p, t, meta)
    return p


def load_exported(kind=None, path=None):
    """-> (torch model in eval mode, tensors, metadata)."""
    p = Path(path or PATHS[kind])
    t, meta = safetensors_io.load(p)
    arch = json.loads(meta["architecture"])
    sz = arch["sizes"]
    if arch["name"] == "separator":
        m = Separator(d_hidden=sz["d_hidden"], d_class=sz["d_class"], n_classes=sz["n_classes"])
    else:
        m = Ablation(d_hidden=sz["d_hidden"])
    sd = {}
    for k in m.state_dict():
        sd[k] = torch.from_numpy(np.array(t[k.replace("trunk.", "")]))
    m.load_state_dict(sd)
    m.eval()
    return m, t, meta


def update_metrics(kind, metrics: dict, path=None):
    p = Path(path or PATHS[kind])
    t, meta = safetensors_io.load(p)
    meta["metrics"] = json.dumps(metrics)
    safetensors_io.save(p, {k: np.array(v) for k, v in t.items()}, meta)


def write_fixture(data="data", out=FIXTURE, n=8, sep_path=None, abl_path=None):
    """8 real YAMNet embeddings (patches of the fixed test mixtures: 2 one-source, 4 two-source,
    2 three-source) with the PyTorch outputs of the exported separator and ablation."""
    z = np.load(Path(data) / "features/audio_eval.npz")
    xs, src = [], []
    for k, cnt in ((1, 2), (2, 4), (3, 2)):
        e = z[f"emb{k}"]
        for i in range(cnt):
            xs.append(e[i, 3])     # patch 3 (1.44-2.40 s) of mixture i
            src.append(f"{z[f'ids{k}'][i]}:patch3")
    x = np.stack(xs).astype(np.float32)
    sep, _, meta = load_exported("separator", sep_path)
    abl, _, _ = load_exported("ablation", abl_path)
    with torch.no_grad():
        logits, emb = sep(torch.from_numpy(x))
        a = abl(torch.from_numpy(x))
    t = {"input": x, "presence_logits": logits.numpy(), "embeddings": emb.numpy(), "ablation_embedding": a.numpy()}
    fmeta = {"what": "Swift parity fixture for Assets/models/separator.safetensors and separator_ablation.safetensors: "
                     "input [8,1024] YAMNet embeddings (float ONNX graph) of real test-mixture patches; PyTorch outputs "
                     "presence_logits [8,46], embeddings [8,46,128] (all 46 classes), ablation_embedding [8,128]",
             "sources": json.dumps(src), "separator_commit": meta.get("training_commit", ""),
             "tolerance": "max abs error 1e-4 expected in float32 (numpy reference interpreter: see models.run_graph)"}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    safetensors_io.save(out, t, fmeta)
    return out

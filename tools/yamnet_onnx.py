"""The float YAMNet ONNX graph (`make yamnet-float-onnx`: .build/models/yamnet_float.onnx, the
graph the Swift engine matches) prepared for batched onnxruntime runs. One place for the graph
edits that the tuning tool and the training code share.

The export has batch 1 baked into its Reshape before the final Gemm ([1, -1]); `batchable` makes
that [-1, 1024] and the batch axis dynamic. With `dynamic_time` the time axis is dynamic too: the
graph is convolutions + a global average pool, so 32-96 frame windows run as they are (ONNX keeps
the fixed TF-SAME pads of the 96-frame export).
"""
from __future__ import annotations

import numpy as np


def batchable(path, dynamic_time: bool = False):
    """The ONNX model at `path` with a dynamic batch axis (and time axis with `dynamic_time`)."""
    import onnx
    from onnx import numpy_helper
    m = onnx.load(str(path))
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    if dynamic_time:
        m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "T"
    for o in m.graph.output:
        o.type.tensor_type.shape.dim[0].dim_param = "N"
    reshape = np.array([-1, 1024], np.int64)
    for init in m.graph.initializer:   # the Reshape before the Gemm: [1, -1] -> [-1, 1024]
        if init.data_type == onnx.TensorProto.INT64 and list(numpy_helper.to_array(init)) == [1, -1]:
            init.CopyFrom(numpy_helper.from_array(reshape, init.name))
    for n in m.graph.node:
        if n.op_type == "Constant" and n.output[0] == "/model/Constant_output_0":
            n.attribute[0].t.CopyFrom(numpy_helper.from_array(reshape))
    if dynamic_time:
        del m.graph.value_info[:]   # shapes inferred for 96 frames no longer hold
    return m


def session(model, threads: int = 1):
    """A CPU onnxruntime session on `model` with `threads` intra-op threads."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run(sess, patches: np.ndarray, outputs=("class_scores", "embedding"), batch: int = 64):
    """[P, T, 64] log-mel patches -> one float32 array per name in `outputs`, batched by `batch`
    (empty input: [0, 521] logits, [0, 1024] embeddings)."""
    parts = [[] for _ in outputs]
    for i in range(0, len(patches), batch):
        x = np.ascontiguousarray(patches[i:i + batch, None], dtype=np.float32)
        for p, y in zip(parts, sess.run(list(outputs), {"audio": x})):
            p.append(y)
    width = {"class_scores": 521, "embedding": 1024}
    return [np.concatenate(p) if p else np.zeros((0, width.get(name, 0)), np.float32) for p, name in zip(parts, outputs)]

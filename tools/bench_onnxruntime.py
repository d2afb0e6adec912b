#!/usr/bin/env python3
"""Times onnxruntime on the float YAMNet graph, one 96x64 patch per run; prints one JSON object.

Called by `avgas-bench backbone` (Sources/avgas-bench/BackboneBench.swift) so that the Swift
engine and onnxruntime are measured in one run on the same machine. Same settings as a careful
single-stream deployment: CPU provider, all graph optimisations, sequential execution,
intra-op threads as asked, inter-op 1.
Output: {"onnxruntime": version, "graph": path, "results": [{"threads": t, "median_ms": .., "mean_ms": .., "min_ms": ..,
"thread_cpu_ms": CPU time of the calling thread per run (meaningful for threads = 1)}]}
"""
import argparse
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", required=True, help="float YAMNet graph (tools/convert_yamnet.py --float-onnx)")
    ap.add_argument("--threads", default="1,2", help="comma-separated intra-op thread counts (default 1,2)")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()

    # A plausible log-mel patch (log(mel + 1e-6) spans about -13.8 .. 3); values do not change the timing.
    patch = np.random.default_rng(0).uniform(-12, 2, size=(1, 1, 96, 64)).astype(np.float32)
    results = []
    for t in [int(x) for x in args.threads.split(",")]:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = t
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(args.onnx, opts, providers=["CPUExecutionProvider"])
        feed = {"audio": patch}
        for _ in range(args.warmup):
            sess.run(None, feed)
        times = []
        cpu0 = time.thread_time()
        for _ in range(args.iterations):
            t0 = time.perf_counter()
            sess.run(None, feed)
            times.append((time.perf_counter() - t0) * 1e3)
        # CPU time of this thread: with one intra-op thread onnxruntime computes on the caller's
        # thread, so this is the compute time without the time other processes took the core.
        cpu_ms = (time.thread_time() - cpu0) * 1e3 / args.iterations
        times = np.array(times)
        results.append({"threads": t, "median_ms": float(np.median(times)), "mean_ms": float(times.mean()),
                        "min_ms": float(times.min()), "thread_cpu_ms": cpu_ms})
        del sess
    json.dump({"onnxruntime": ort.__version__, "graph": args.onnx, "results": results}, sys.stdout)
    print()


if __name__ == "__main__":
    main()

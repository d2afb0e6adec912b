"""tools/yamnet_onnx.py: the batched float YAMNet graph gives what the unmodified export gives
one patch at a time, for full and short windows."""
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import yamnet_onnx  # noqa: E402

ONNX = ROOT / ".build/models/yamnet_float.onnx"
pytestmark = pytest.mark.skipif(not ONNX.exists(), reason="make yamnet-float-onnx first (make test builds it)")


def test_batched_equals_one_by_one():
    import onnx
    rng = np.random.default_rng(0)
    patches = rng.normal(-5, 2, (5, 96, 64)).astype(np.float32)
    plain = yamnet_onnx.session(onnx.load(str(ONNX)))   # the export as written: batch 1
    want = np.concatenate([plain.run(["class_scores"], {"audio": p[None, None]})[0] for p in patches])
    logits, emb = yamnet_onnx.run(yamnet_onnx.session(yamnet_onnx.batchable(ONNX)), patches, batch=2)
    assert logits.shape == (5, 521) and emb.shape == (5, 1024)
    np.testing.assert_allclose(logits, want, atol=1e-4)
    assert np.all(emb >= 0)   # the pooled output of ReLU layers


def test_dynamic_time_and_empty_input():
    rng = np.random.default_rng(1)
    patches = rng.normal(-5, 2, (3, 48, 64)).astype(np.float32)
    sess = yamnet_onnx.session(yamnet_onnx.batchable(ONNX, dynamic_time=True))
    (logits,) = yamnet_onnx.run(sess, patches, outputs=("class_scores",))
    assert logits.shape == (3, 521) and np.all(np.isfinite(logits))
    # A short window is a different input from the full one it starts: not the same scores.
    full = rng.normal(-5, 2, (1, 96, 64)).astype(np.float32)
    (a,) = yamnet_onnx.run(sess, full, outputs=("class_scores",))
    (b,) = yamnet_onnx.run(sess, full[:, :48], outputs=("class_scores",))
    assert np.abs(a - b).max() > 1e-3
    empty = yamnet_onnx.run(sess, np.zeros((0, 96, 64), np.float32))
    assert empty[0].shape == (0, 521) and empty[1].shape == (0, 1024)

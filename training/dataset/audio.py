"""Audio decoding and conversion helpers (deterministic: no dithering, no time stamps)."""
from __future__ import annotations

import io
import subprocess
from math import gcd
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SR = 16000


def _decode_ffmpeg(data: bytes) -> tuple[np.ndarray, int]:
    p = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", "pipe:0", "-ac", "1",
                        "-ar", str(SR), "-f", "f32le", "-bitexact", "pipe:1"],
                       input=data, capture_output=True, check=False)
    if p.returncode != 0:
        raise ValueError(f"ffmpeg could not decode the audio: {p.stderr.decode(errors='replace')[:200]}")
    return np.frombuffer(p.stdout, dtype="<f4").copy(), SR


def decode(src: Union[str, Path, bytes]) -> tuple[np.ndarray, int]:
    """Decode WAV/OGG/FLAC/MP3 bytes or a file to (float32 array [frames, channels] or [frames], rate)."""
    data = Path(src).read_bytes() if isinstance(src, (str, Path)) else bytes(src)
    try:
        x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except Exception:
        x, sr = _decode_ffmpeg(data)
    return x, sr


def to_mono_16k(x: np.ndarray, sr: int) -> np.ndarray:
    """Average channels and resample to 16 kHz with a polyphase filter (float32 out)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sr != SR:
        g = gcd(int(sr), SR)
        x = resample_poly(x, SR // g, int(sr) // g)
    return x.astype(np.float32)


def load_16k(src: Union[str, Path, bytes]) -> np.ndarray:
    x, sr = decode(src)
    return to_mono_16k(x, sr)


def write_wav16(path: Union[str, Path], x: np.ndarray, sr: int = SR) -> None:
    """Write float audio as 16-bit PCM WAV (clipped to [-1, 1], rounded to nearest)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    y = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    pcm = np.round(y * 32767.0).astype("<i2")
    sf.write(str(path), pcm, sr, subtype="PCM_16", format="WAV")


def rms_db(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(10 * np.log10(np.mean(x * x) + 1e-20))


def active_rms_db(x: np.ndarray, frame: int = 400, top: float = 0.5) -> float:
    """RMS level (dB) of the loudest `top` fraction of frames: a level that ignores silences."""
    x = np.asarray(x, dtype=np.float64)
    n = max(1, len(x) // frame)
    if len(x) < frame:
        return rms_db(x)
    e = (x[:n * frame].reshape(n, frame) ** 2).mean(axis=1)
    k = max(1, int(np.ceil(n * top)))
    return float(10 * np.log10(np.sort(e)[-k:].mean() + 1e-20))


def trim_silence(x: np.ndarray, thresh_db: float = -50.0, frame: int = 160,
                 floor_db: float = -70.0) -> np.ndarray:
    """Drop leading and trailing frames quieter than thresh_db relative to the loudest frame
    or than floor_db absolute; a file with no frame above both is returned empty."""
    n = len(x) // frame
    if n < 2:
        return x
    e = 10 * np.log10((x[:n * frame].reshape(n, frame).astype(np.float64) ** 2).mean(axis=1) + 1e-20)
    on = np.nonzero((e > e.max() + thresh_db) & (e > floor_db))[0]
    if len(on) == 0:
        return x[:0]
    return x[on[0] * frame:(on[-1] + 1) * frame]

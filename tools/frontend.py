"""YAMNet-compatible log-mel front end in numpy (the project's reference; see docs architecture.md).

16 kHz mono float waveform -> log-mel frames [T, 64] -> 0.96 s patches [96, 64].
  frames : window 400 samples (25 ms), hop 160 (10 ms), no centring/padding: frame t covers
           samples [160 t, 160 t + 400); T = 1 + (N - 400) // 160 (0 when N < 400)
  window : periodic Hann, w[n] = 0.5 - 0.5 cos(2 pi n / 400)
  FFT    : 512 points (frame zero-padded), magnitude |X| (power 1), 257 bins
  mel    : 64 HTK-mel triangles, edges equally spaced in mel(f) = 1127 ln(1 + f / 700) over
           125..7500 Hz; each triangle is linear in mel (not in Hz), weights are not normalised,
           the DC bin gets no weight (TensorFlow's linear_to_mel_weight_matrix, which YAMNet uses)
  log    : log(mel + 1e-6)
Importable by other tools: `from frontend import log_mel, patches, SAMPLE_RATE`.
"""
import numpy as np

SAMPLE_RATE = 16000
WIN, HOP, NFFT, N_MELS = 400, 160, 512, 64
F_MIN, F_MAX, LOG_OFFSET = 125.0, 7500.0, 1e-6
PATCH_FRAMES = 96


def hz_to_mel(f):
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """[257, 64] float32: bin k's weight in band m (linear-in-mel triangles, DC bin zero)."""
    bins_mel = hz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, NFFT // 2 + 1))
    edges = np.linspace(hz_to_mel(F_MIN), hz_to_mel(F_MAX), N_MELS + 2)
    left, center, right = edges[:-2], edges[1:-1], edges[2:]
    up = (bins_mel[:, None] - left) / (center - left)
    down = (right - bins_mel[:, None]) / (right - center)
    w = np.maximum(0.0, np.minimum(up, down))
    w[0, :] = 0.0
    return w.astype(np.float32)


def log_mel(wave: np.ndarray) -> np.ndarray:
    """[N] float waveform at 16 kHz -> [T, 64] float32 log-mel frames."""
    x = np.asarray(wave, dtype=np.float32)
    n = 0 if len(x) < WIN else 1 + (len(x) - WIN) // HOP
    if n == 0:
        return np.zeros((0, N_MELS), np.float32)
    idx = np.arange(WIN)[None, :] + HOP * np.arange(n)[:, None]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN) / WIN)).astype(np.float32)
    mag = np.abs(np.fft.rfft(x[idx] * window, n=NFFT, axis=1))          # [T, 257]
    return np.log(mag.astype(np.float32) @ mel_matrix() + LOG_OFFSET).astype(np.float32)


def patches(frames: np.ndarray, hop_frames: int = PATCH_FRAMES) -> np.ndarray:
    """[T, 64] -> [P, 96, 64]: patches starting every hop_frames frames (no partial patch)."""
    starts = range(0, max(0, len(frames) - PATCH_FRAMES + 1), hop_frames)
    return np.stack([frames[s:s + PATCH_FRAMES] for s in starts]) if len(starts) else \
        np.zeros((0, PATCH_FRAMES, N_MELS), np.float32)

"""tools/make_room_clips.py: the synthetic room is what its options say."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import make_room_clips as room  # noqa: E402


def test_impulse_response_has_the_asked_drr_and_decay():
    rng = np.random.default_rng(0)
    for rt60, drr in ((0.4, 6.0), (1.0, -6.0)):
        h = room.room_ir(rng, rt60, drr, predelay=0.01)
        tail = h.copy()
        tail[0] -= 1.0
        assert abs(10 * np.log10(1.0 / np.sum(tail ** 2)) - drr) < 1e-6
        assert np.all(tail[1:int(0.01 * room.SR)] == 0)            # nothing before the pre-delay
        # Energy in 50 ms windows falls by about 60 dB over rt60 seconds.
        w = int(0.05 * room.SR)
        start = int(0.01 * room.SR) + w
        e0 = np.sum(tail[start:start + w] ** 2)
        e1 = np.sum(tail[start + int(rt60 * room.SR):start + int(rt60 * room.SR) + w] ** 2)
        assert 52 < 10 * np.log10(e0 / e1) < 68


def test_pink_noise_falls_3_db_per_octave():
    x = room.pink(np.random.default_rng(1), 1 << 16)
    assert abs(np.sqrt(np.mean(x ** 2)) - 1) < 1e-9
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / room.SR)
    band = lambda lo: p[(f >= lo) & (f < 2 * lo)].mean()  # noqa: E731
    slope = 10 * np.log10(band(2000) / band(250)) / 3    # dB per octave over 3 octaves
    assert -3.6 < slope < -2.4

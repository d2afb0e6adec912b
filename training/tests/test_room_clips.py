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


def test_onset_version_has_the_rooms_noise_before_the_source():
    rng = np.random.default_rng(2)
    x = np.zeros(16000)
    x[8000:] = np.sin(np.arange(8000) * 0.05) * 0.5            # silence, then a tone at 0.5 s
    y = room.through_room(x, rng, 0.4, 6.0, 0.01, 20.0, lead=room.LEAD)
    assert len(y) == room.LEAD + len(x) and abs(np.abs(y).max() - 10 ** (-3 / 20)) < 1e-9
    rms = lambda a: np.sqrt(np.mean(a ** 2))  # noqa: E731
    lead, before = y[:room.LEAD], y[room.LEAD:room.LEAD + 7000]
    assert rms(lead) > 0 and 0.7 < rms(lead) / rms(before) < 1.4   # one noise, before and in the clip
    assert room.onset_sample(x) == 8000                             # taken from the clean clip
    assert room.onset_sample(np.zeros(1600)) == 0

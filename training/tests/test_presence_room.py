"""training/avgas/presence_room.py: the room scenes of the room-trained presence head."""
import numpy as np

from training.avgas import presence_room as pr


def scene(seed=0):
    rng = np.random.default_rng(seed)
    stem = np.zeros(48000)
    stem[16000:24000] = rng.standard_normal(8000) * 0.1      # a 0.5 s burst in the middle
    noise = rng.standard_normal(48000) * 1e-3
    return (stem + noise).astype(np.float32), [stem], [5], -60.0


def test_rooms_are_seeded_by_scene_and_the_rest_stay_clean():
    s = scene()
    outs = [pr.room_scene(s, i) for i in range(200)]
    clean = [o[0] is s[0] for o in outs]
    assert 0.35 < np.mean(clean) < 0.65                      # P_ROOM = 0.5
    again = pr.room_scene(s, 7)
    assert np.array_equal(again[0], outs[7][0]) and again[3] == outs[7][3]


def test_a_room_smears_the_source_in_time_and_keeps_the_labels_consistent():
    s = scene()
    rooms = [i for i in range(60) if pr.room_scene(s, i)[0] is not s[0]][:12]
    gains = []
    for i in rooms:
        mix, stems, cls, noise_db = pr.room_scene(s, i)
        assert mix.dtype == np.float32 and len(mix) == len(s[0]) and np.abs(mix).max() <= 0.98 + 1e-6
        assert cls == [5]
        # The labels' noise floor follows the noise as the room delivers it (reverberated, plus
        # any added pink noise): the level of the noise-only stretch before the burst.
        measured = 10 * np.log10(np.mean(mix[4000:15000].astype(np.float64) ** 2))
        assert abs(noise_db - measured) < 1.5, (i, noise_db, measured)
        gains.append(measured - s[3])
        after = slice(24000 + 1600, 24000 + 3200)             # 0.1-0.2 s after the burst ends
        assert np.sum(stems[0][after] ** 2) > 100 * np.sum(s[1][0][after] ** 2) + 1e-12   # the tail rings on
    assert max(gains) > 3                                     # some rooms raise the noise by several dB

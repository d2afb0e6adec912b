"""Smoke test of the whole dataset builder on a tiny fixture tree (no network, seconds),
plus split, mixture, loader and table checks."""
import csv
import hashlib
import json
import struct
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_dataset_readers import make_cat, make_rcc, wav_bytes  # noqa: E402

from training.dataset import build, debs, loaders  # noqa: E402

CLASSES = ["dog barking", "raining", "playing violin, fiddle"]


def tone(f, secs, sr, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(secs * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * f * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def png_bytes(color, size=(40, 20), alpha=True):
    im = Image.new("RGBA", (60, 60), (0, 0, 0, 0))
    im.paste(Image.new("RGBA", size, color + (255,)), (10, 20))
    import io
    b = io.BytesIO()
    im.save(b, format="PNG")
    return b.getvalue()


def make_fixture(root: Path) -> Path:
    """Three fake 'packages': plain files, an .rcc, an .cat, a .zip; tables; classes.json."""
    import io
    import zipfile
    fx = root / "fixtures"
    pa = fx / "pkg-a/usr/share/a"
    pa.mkdir(parents=True)
    rows_a, rows_i = [], []
    for i in range(3):
        sf.write(pa / f"dog{i}.wav", tone(300 + 50 * i, 1.5 + i, 22050, i), 22050)
        rows_a.append(("dog barking", "pkg-a", f"usr/share/a/dog{i}.wav", "CC0-1.0"))
    # a long stereo recording: cut into chunks
    sf.write(pa / "rain_long.wav", np.stack([tone(900, 23.0, 44100, 9)] * 2, axis=1), 44100)
    rows_a.append(("raining", "pkg-a", "usr/share/a/rain_long.wav", "CC0-1.0"))
    # a silent file must be dropped
    sf.write(pa / "silent.wav", np.zeros(16000, np.float32), 16000)
    rows_a.append(("raining", "pkg-a", "usr/share/a/silent.wav", "CC0-1.0"))
    # an .rcc with two rain recordings (one zlib) and an image
    rcc = make_rcc({"gcompris/src/activities/x/rain1.wav": wav_bytes(tone(1000, 1.0, 16000, 3), 16000),
                    "gcompris/src/activities/x/rain2.wav": wav_bytes(tone(1100, 2.0, 16000, 4), 16000),
                    "gcompris/src/activities/x/violin.png": png_bytes((200, 50, 50))},
                   compress=("rain2.wav",))
    pb = fx / "pkg-b/usr/share/b"
    pb.mkdir(parents=True)
    (pb / "x.rcc").write_bytes(rcc)
    for n in ("rain1", "rain2"):
        rows_a.append(("raining", "pkg-b", f"usr/share/b/x.rcc#gcompris/src/activities/x/{n}.wav", "DEP5"))
    rows_i.append(("playing violin, fiddle", "pkg-b", "usr/share/b/x.rcc#gcompris/src/activities/x/violin.png"))
    doc = fx / "pkg-b/usr/share/doc/pkg-b"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Format: x\n\nFiles: *\nCopyright: me\nLicense: GPL-3+\n\n"
                                   "Files: src/activities/x/rain*\nCopyright: you\nLicense: CC-BY-3.0\n")
    # a .cat with three violin recordings
    cat = make_cat([(f'"Violin {i}". License: Creative Commons Zero 1.0.', wav_bytes(tone(440 * (i + 1), 1.2, 11025, 10 + i), 11025))
                    for i in range(3)])
    pc = fx / "pkg-c/usr/share/c"
    pc.mkdir(parents=True)
    (pc / "s.cat").write_bytes(cat)
    for i in range(3):
        rows_a.append(("playing violin, fiddle", "pkg-c", f"usr/share/c/s.cat#{i}", "OPENSFX"))
    # a .zip with one more dog
    zb = io.BytesIO()
    with zipfile.ZipFile(zb, "w") as z:
        z.writestr("audio/dog/bark.wav", wav_bytes(tone(250, 0.8, 16000, 20), 16000))
    (pc / "public.zip").write_bytes(zb.getvalue())
    rows_a.append(("dog barking", "pkg-c", "usr/share/c/public.zip#audio/dog/bark.wav", "CC-BY-SA-3.0"))
    # images: 12 distinct per class + one duplicate (must be kept once)
    for ci, cls in enumerate(CLASSES):
        d = fx / f"pkg-a/usr/share/img/{ci}"
        d.mkdir(parents=True)
        for k in range(12):
            (d / f"{k}.png").write_bytes(png_bytes((20 * k, 100 + 10 * ci, 50), size=(10 + 3 * k, 12 + 2 * k)))
            rows_i.append((cls, "pkg-a", f"usr/share/img/{ci}/{k}.png"))
        (d / "dup.png").write_bytes((d / "0.png").read_bytes())
        rows_i.append((cls, "pkg-a", f"usr/share/img/{ci}/dup.png"))
    # raining: two more files that are one drawing in two colours (group column): one original
    d = fx / "pkg-a/usr/share/img/1"
    for k, col in enumerate(((10, 200, 10), (10, 10, 200))):
        (d / f"twin{k}.png").write_bytes(png_bytes(col, size=(33, 17)))
        rows_i.append(("raining", "pkg-a", f"usr/share/img/1/twin{k}.png", "twin"))
    # violin: two crops of one opaque scene (a red and a blue object on white), in their own pool
    scene = Image.new("RGB", (100, 60), (255, 255, 255))
    scene.paste((220, 20, 20), (5, 10, 35, 40))
    scene.paste((20, 20, 220), (60, 20, 90, 50))
    scene.save(fx / "pkg-a/usr/share/img/scene.png")
    rows_i.append(("playing violin, fiddle", "pkg-a", "usr/share/img/scene.png|crop=0,5,45,50", "", "4"))
    rows_i.append(("playing violin, fiddle", "pkg-a", "usr/share/img/scene.png|crop=55,15,95,55", "", "4"))
    t = fx / "tables"
    t.mkdir()
    (t / "audio.tsv").write_text("# test\n" + "".join("\t".join(r) + "\n" for r in rows_a))
    (t / "images.tsv").write_text("".join("\t".join(r) + "\n" for r in rows_i))
    classes = {"version": 1, "classes": [{"name": n, "group": "g", "layer": "l", "audioset": []} for n in CLASSES]}
    (root / "classes.json").write_text(json.dumps(classes, indent=2) + "\n")
    return fx


def run_build(tmp: Path, out: Path):
    fx = tmp / "fixtures"
    if not fx.exists():
        make_fixture(tmp)
    return build.build(out, tmp / "cache", tmp / "classes.json", fixtures=fx, report=True,
                       n_eval=6, reports_dir=tmp / "reports")


def read_manifest(out: Path):
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def tree_digest(out: Path) -> dict:
    return {p.relative_to(out).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ds")
    r = run_build(tmp, tmp / "out1")
    return tmp, r


def test_builder_end_to_end(built):
    tmp, r = built
    out = tmp / "out1"
    rows = read_manifest(out)
    assert set(rows[0]) >= {"id", "kind", "class", "split", "path", "package", "source_path",
                            "license", "original_id"}
    audio_rows = [x for x in rows if x["kind"] == "audio"]
    image_rows = [x for x in rows if x["kind"] == "image"]
    # silent file dropped; the 23 s rain file cut into 3 chunks (10 + 10 + 3 s)
    assert not any("silent" in x["source_path"] for x in audio_rows)
    rain_long = [x for x in audio_rows if x["source_path"].endswith("rain_long.wav")]
    assert len(rain_long) == 3 and len({x["original_id"] for x in rain_long}) == 1
    for x in audio_rows:
        info = sf.info(str(out / x["path"]))
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        assert 0.3 <= info.duration <= 10.0 + 1e-6
    # container entries were read; licenses resolved from DEP5 and from the .cat names
    by_src = {x["source_path"]: x for x in audio_rows}
    assert by_src["usr/share/b/x.rcc#gcompris/src/activities/x/rain1.wav"]["license"] == "CC-BY-3.0"
    assert by_src["usr/share/c/s.cat#1"]["license"] == "Creative Commons Zero 1.0"
    assert "usr/share/c/public.zip#audio/dog/bark.wav" in by_src
    # images: 128x128 RGB, duplicates removed (12 + 1 rcc image for violin)
    counts = defaultdict(int)
    for x in image_rows:
        im = Image.open(out / x["path"])
        assert im.size == (128, 128) and im.mode == "RGB"
        # corner pixel is the neutral background
        assert max(abs(a - b) for a, b in zip(im.getpixel((0, 0)), build.BG)) <= 10
        counts[x["class"]] += 1
    assert counts == {"dog barking": 12, "raining": 14, "playing violin, fiddle": 15}
    # crops: cut from the scene before the square resize; the suffix stays in source_path
    crops = {x["source_path"]: np.asarray(Image.open(out / x["path"])).reshape(-1, 3)
             for x in image_rows if "|crop=" in x["source_path"]}
    assert set(crops) == {"usr/share/img/scene.png|crop=0,5,45,50", "usr/share/img/scene.png|crop=55,15,95,55"}
    red, blue = crops["usr/share/img/scene.png|crop=0,5,45,50"], crops["usr/share/img/scene.png|crop=55,15,95,55"]
    is_red = lambda a: (a[:, 0] > 180) & (a[:, 2] < 60)
    is_blue = lambda a: (a[:, 2] > 180) & (a[:, 0] < 60)
    assert is_red(red).mean() > 0.3 and not is_blue(red).any()
    assert is_blue(blue).mean() > 0.3 and not is_red(blue).any()
    # the two files of one group share original_id and split, and count as one image
    twins = [x for x in image_rows if "twin" in x["source_path"]]
    assert len(twins) == 2 and len({(x["original_id"], x["split"]) for x in twins}) == 1
    # coverage: recordings are distinct originals
    cov = r["coverage"]
    assert cov["dog barking"]["recordings"] == 4
    assert cov["raining"]["recordings"] == 3
    assert cov["playing violin, fiddle"]["recordings"] == 3
    assert not any(c["thin"] for c in cov.values())
    assert cov["raining"]["images"] == 13 and cov["raining"]["image_files"] == 14
    # classes.json got the three fields and kept the rest
    cj = json.loads((tmp / "classes.json").read_text())
    c0 = cj["classes"][0]
    assert c0["group"] == "g" and c0["recordings"] == 4 and c0["images"] == 12 and c0["thin"] is False
    # report and contact sheet
    rep = (tmp / "reports/dataset.md").read_text()
    assert "| dog barking | 4 |" in rep
    sheet = Image.open(tmp / "reports/dataset_contact_sheet.png")
    assert sheet.size[0] > 500


def test_no_original_in_two_splits(built):
    tmp, _ = built
    rows = read_manifest(tmp / "out1")
    assert_no_leak(rows)
    splits = {x["split"] for x in rows}
    assert splits == {"train", "val", "test"}


def assert_no_leak(rows):
    where = defaultdict(set)
    for x in rows:
        where[x["original_id"]].add(x["split"])
        where["group:" + x.get("split_group", x["original_id"])].add(x["split"])
    leaks = {k: v for k, v in where.items() if len(v) > 1}
    assert not leaks, f"originals in several splits: {list(leaks)[:5]}"


def test_real_manifest_has_no_original_in_two_splits():
    m = ROOT / "data/manifest.csv"
    if not m.exists():
        pytest.skip("data/ not built here (make dataset)")
    rows = read_manifest(ROOT / "data")
    assert len(rows) > 100
    assert_no_leak(rows)


def test_eval_mixtures_from_test_split_only(built):
    tmp, _ = built
    out = tmp / "out1"
    rows = {x["id"]: x for x in read_manifest(out)}
    for k in (1, 2, 3):
        items = loaders.load_eval_set(out / f"mixtures/eval_{k}src")
        assert len(items) == 6
        for it in items:
            assert len(it["classes"]) == k == len(set(it["classes"]))
            for s in it["sources"]:
                assert rows[s["id"]]["split"] == "test"
                assert rows[s["id"]]["class"] == s["class"]
            lv = [s["level_db"] for s in it["sources"]]
            assert max(lv) - min(lv) <= loaders.REL_DB + 1e-9
            x, sr = sf.read(str(out / f"mixtures/eval_{k}src" / it["path"]))
            assert sr == 16000 and len(x) == 64000 and np.abs(x).max() > 0.001


def test_build_is_deterministic(built, tmp_path):
    tmp, _ = built
    run_build(tmp, tmp_path / "out2")
    a, b = tree_digest(tmp / "out1"), tree_digest(tmp_path / "out2")
    assert a == b


def test_assign_splits_groups_and_small_classes():
    rows = []
    for g in range(20):
        for k in range(3):
            rows.append({"kind": "audio", "class": "a", "split_group": f"g{g}"})
    rows.append({"kind": "audio", "class": "b", "split_group": "only"})
    rows += [{"kind": "audio", "class": "c", "split_group": s} for s in ("x", "y")]
    build.assign_splits(rows)
    per = defaultdict(set)
    for r in rows:
        per[(r["class"], r["split_group"])].add(r["split"])
    assert all(len(v) == 1 for v in per.values())
    a = [next(iter(v)) for (c, _), v in per.items() if c == "a"]
    assert a.count("test") == 3 and a.count("val") == 3 and a.count("train") == 14
    assert per[("b", "only")] == {"train"}
    assert sorted(next(iter(per[("c", s)])) for s in ("x", "y")) == ["test", "train"]


def test_synthetic_groups_never_move_real_ones():
    real = [{"kind": "audio", "class": "speech", "split_group": f"r{g}", "synthetic": 0} for g in range(12)]
    build.assign_splits(real)
    before = {r["split_group"]: r["split"] for r in real}
    rows = [dict(r) for r in real] + [{"kind": "audio", "class": "speech", "split_group": f"espeak{g}",
                                       "synthetic": 1} for g in range(30)]
    build.assign_splits(rows)
    assert {r["split_group"]: r["split"] for r in rows if not r["synthetic"]} == before
    synth = [r["split"] for r in rows if r["synthetic"]]
    assert synth.count("test") >= 1 and synth.count("val") >= 1 and synth.count("train") >= 20


def test_image_pool_is_split_among_itself_and_never_moves_the_first_pool():
    first = [{"kind": "image", "class": "harp", "split_group": f"img{g}", "synthetic": 0} for g in range(7)]
    build.assign_splits(first)
    before = {r["split_group"]: r["split"] for r in first}
    # 7 groups alone: 1 test, 1 val; 7 + 5 groups in one pool would be 2 test, 2 val (something moves)
    rows = [dict(r) for r in first] + [{"kind": "image", "class": "harp", "split_group": f"new{g}",
                                        "synthetic": 0, "pool": "2"} for g in range(5)]
    assert build.assign_splits(rows) == 0
    assert {r["split_group"]: r["split"] for r in rows if not r.get("pool")} == before
    new = [r["split"] for r in rows if r.get("pool")]
    assert new.count("test") == 1 and new.count("val") == 1 and new.count("train") == 3
    # a group split over two pools is refused (its rows could otherwise land in two splits)
    bad = [dict(r) for r in rows] + [{"kind": "image", "class": "harp", "split_group": "img0",
                                      "synthetic": 0, "pool": "2"}]
    with pytest.raises(ValueError, match="two pools"):
        build.assign_splits(bad)


def test_training_only_pool_goes_to_train_and_moves_nothing():
    first = [{"kind": "audio", "class": "phone", "split_group": f"r{g}", "synthetic": 0} for g in range(6)]
    build.assign_splits(first)
    before = {r["split_group"]: r["split"] for r in first}
    assert sorted(before.values()).count("test") == 1
    rows = [dict(r) for r in first] + [{"kind": "audio", "class": "phone", "split_group": f"n{g}",
                                        "synthetic": 0, "pool": "train2"} for g in range(4)]
    assert build.assign_splits(rows) == 0
    assert {r["split_group"]: r["split"] for r in rows if not r.get("pool")} == before
    assert [r["split"] for r in rows if r.get("pool")] == ["train"] * 4


def test_audio_table_pools_are_known():
    rows = build.read_table(build.TABLES / "audio.tsv")
    assert all(len(r) in (4, 5) for r in rows)
    assert {r[4] for r in rows if len(r) == 5} <= {"train2", "train3"}


def test_frozen_splits_pin_groups():
    rows = [{"kind": "image", "class": "c", "split_group": f"g{g}", "synthetic": 0} for g in range(10)]
    build.assign_splits(rows)
    frozen = {("image", "c", 0, r["split_group"]): r["split"] for r in rows}
    # three more groups in the same pool would move some of the ten; the frozen table keeps them
    more = [dict(r) for r in rows] + [{"kind": "image", "class": "c", "split_group": f"x{g}", "synthetic": 0}
                                      for g in range(3)]
    moved = build.assign_splits(more, frozen=frozen)
    assert {("image", "c", 0, r["split_group"]): r["split"] for r in more if r["split_group"].startswith("g")} == frozen
    assert moved >= 0


FROZEN = build.TABLES / "splits_frozen.tsv"
FIRST_POOL_ROWS = 495   # images.tsv rows before the second pool (commit e932d58)
FIRST_POOL_SHA1 = "6bd187df9de2869279253f7c9951028353517615"
# The second pool (commit bd09755) is closed too: its groups are not in splits_frozen.tsv, so one more
# group in it would re-split it (adding Stellarium's raven there moved KStars' Corvus from train to val).
# Later images go to pool "3".
SECOND_POOL_ROWS = 30
SECOND_POOL_SHA1 = "0107888e833f69ea6b696785051ecce3fa511520"
# The third pool (commit c86c73b) is closed as well; crops of scenes (path|crop=...) are pool "4".
THIRD_POOL_ROWS = 2
THIRD_POOL_SHA1 = "ae445239e125af10118ceae8c3f14a5ee861c619"


def test_split_algorithm_reproduces_the_frozen_splits():
    """tables/splits_frozen.tsv is the split of every group (audio and image) of the dataset the
    committed models and test clips were made from. The algorithm alone (no pinning) must still give
    exactly those splits for those groups: new images go to a new pool, never into the first one."""
    frozen = build.read_frozen_splits(FROZEN)
    assert len(frozen) > 900
    assert {k[0] for k in frozen} == {"audio", "image"}
    rows = [{"kind": k, "class": c, "synthetic": s, "split_group": g} for (k, c, s, g) in frozen]
    build.assign_splits(rows)
    got = {(r["kind"], r["class"], r["synthetic"], r["split_group"]): r["split"] for r in rows}
    assert got == frozen


def test_images_table_pools():
    """Rows of images.tsv without a 5th column are the first pool (all in the frozen splits' build);
    rows added later carry a pool; a group never spans pools; new pools use known package licenses."""
    from training.dataset import sources
    rows = build.read_table(build.TABLES / "images.tsv")
    pool_of_group = {}
    for r in rows:
        pool = r[4] if len(r) > 4 else ""
        assert pool in ("", "2", "3", "4"), r
        if len(r) > 3 and r[3]:
            assert pool_of_group.setdefault((r[0], r[3]), pool) == pool, f"group {r[3]} spans pools"
        if pool:
            assert sources.image_license(r[1], build.split_crop(r[2])[0]), f"no license for {r[1]}:{r[2]}"
    # the first pool is closed: its rows are exactly those the frozen splits were built from
    first = sorted("\t".join(r[:4]) for r in rows if not (len(r) > 4 and r[4]))
    assert len(first) == FIRST_POOL_ROWS
    assert hashlib.sha1("\n".join(first).encode()).hexdigest() == FIRST_POOL_SHA1
    second = sorted("\t".join(r[:4]) for r in rows if len(r) > 4 and r[4] == "2")
    assert len(second) == SECOND_POOL_ROWS
    assert hashlib.sha1("\n".join(second).encode()).hexdigest() == SECOND_POOL_SHA1
    third = sorted("\t".join(r[:4]) for r in rows if len(r) > 4 and r[4] == "3")
    assert len(third) == THIRD_POOL_ROWS
    assert hashlib.sha1("\n".join(third).encode()).hexdigest() == THIRD_POOL_SHA1


def test_real_manifest_keeps_the_frozen_splits():
    m = ROOT / "data/manifest.csv"
    if not m.exists():
        pytest.skip("data/ not built here (make dataset)")
    frozen = build.read_frozen_splits(FROZEN)
    rows = read_manifest(ROOT / "data")
    seen = set()
    for r in rows:
        k = (r["kind"], r["class"], int(r["synthetic"]), r["split_group"])
        if k in frozen:
            seen.add(k)
            assert r["split"] == frozen[k], r
    assert len(seen) == len(frozen), "groups of the frozen splits missing from data/manifest.csv"


def test_make_mixture_levels_and_offsets():
    rng = np.random.default_rng(1)
    clips = [tone(300, 2.0, 16000, 1), tone(700, 6.0, 16000, 2), tone(1500, 0.5, 16000, 3)]
    m = loaders.make_mixture(clips, rng, seconds=4.0, noise=False, level_db=-24.0)
    assert m["audio"].shape == (64000,) and m["audio"].dtype == np.float32
    for s in m["sources"]:
        assert -24.0 - loaders.REL_DB / 2 <= s["level_db"] <= -24.0 + loaders.REL_DB / 2
        assert 0.0 <= s["offset_s"] <= 2.0
    # with no noise and sources placed, the mixture equals the sum of placed sources
    assert np.abs(m["audio"]).max() > 0.01
    m2 = loaders.make_mixture(clips, np.random.default_rng(1), seconds=4.0, noise=False, level_db=-24.0)
    assert np.array_equal(m["audio"], m2["audio"])


def test_augmentations_keep_types_and_change_content():
    rng = np.random.default_rng(3)
    x = tone(440, 2.0, 16000, 5)
    ys = [loaders.augment_audio(x, rng, p=1.0) for _ in range(3)]
    for y in ys:
        assert y.dtype == np.float32 and len(y) >= 16000 * 0.8 and np.isfinite(y).all()
        assert not np.array_equal(y[:len(x)], x[:len(y)])
    img = np.asarray(Image.new("RGB", (128, 128), (10, 200, 30)))
    img = img.copy()
    img[:, :40] = 250
    z = loaders.augment_image(img, rng, p=1.0)
    assert z.shape == (128, 128, 3) and z.dtype == np.uint8
    assert not np.array_equal(z, img)


def test_from_folders_layout(tmp_path):
    for cls in ("dog", "rain"):
        d = tmp_path / "audio" / cls
        d.mkdir(parents=True)
        for i in range(4):
            sf.write(d / f"{i}.wav", tone(200 + i, 0.5, 16000, i), 16000)
        di = tmp_path / "images" / cls
        di.mkdir(parents=True)
        Image.new("RGB", (128, 128)).save(di / "a.png")
    ds = loaders.Dataset.from_folders(tmp_path)
    assert ds.classes == ["dog", "rain"]
    assert len(ds.rows(kind="audio")) == 8 and len(ds.rows(kind="image")) == 2
    m = ds.sample_mixture(np.random.default_rng(0), n_sources=2,
                          split=ds.rows(kind="audio")[0]["split"], seconds=1.0) \
        if len({r["class"] for r in ds.rows(kind="audio", split=ds.rows(kind="audio")[0]["split"])}) >= 2 else None
    if m is not None:
        assert sorted(m["classes"]) == ["dog", "rain"]


def test_midi_writer_produces_valid_smf(tmp_path):
    rng = np.random.default_rng(0)
    notes = build.phrase(rng, 40)
    assert notes and all(55 <= p <= 91 for _, _, p, _ in notes)
    build.write_midi(tmp_path / "a.mid", 40, notes)
    b = (tmp_path / "a.mid").read_bytes()
    assert b[:4] == b"MThd" and struct.unpack(">IHHH", b[4:14]) == (6, 0, 1, 480)
    assert b[14:18] == b"MTrk" and struct.unpack(">I", b[18:22])[0] == len(b) - 22
    assert b.endswith(b"\x00\xff\x2f\x00")
    drums = build.phrase(np.random.default_rng(1), None)
    build.write_midi(tmp_path / "d.mid", None, drums)
    assert b"\x99" in (tmp_path / "d.mid").read_bytes()  # note-on on channel 10


def test_crop_suffix_parsing():
    assert build.split_crop("a/b.png") == ("a/b.png", None)
    assert build.split_crop("x.rcc#a/b.webp|crop=1,2,30,40") == ("x.rcc#a/b.webp", (1, 2, 30, 40))
    for bad in ("a.png|crop=1,2,3", "a.png|crop=5,5,5,9", "a.png|x=1", "a.png|crop=-1,0,4,4"):
        with pytest.raises(ValueError):
            build.split_crop(bad)
    im = Image.new("RGB", (20, 10))
    assert build.apply_crop(im, (2, 3, 12, 8)).size == (10, 5)
    assert build.apply_crop(im, None) is im
    with pytest.raises(ValueError, match="outside"):
        build.apply_crop(im, (0, 0, 21, 10))


def test_reserved_packages_refused(tmp_path):
    with pytest.raises(debs.PackageError, match="reserved"):
        debs.fetch("widelands-data", tmp_path)
    with pytest.raises(debs.PackageError, match="reserved"):
        debs.fetch("musescore-general-soundfont-small", tmp_path)


def test_committed_tables_are_well_formed():
    names = {c["name"] for c in json.loads((ROOT / "Assets/classes.json").read_text())["classes"]}
    for t, ncol in (("audio.tsv", (4, 5)), ("images.tsv", (3, 4, 5))):
        rows = build.read_table(build.TABLES / t)
        assert rows
        seen = set()
        for r in rows:
            assert len(r) in ncol, r
            assert r[0] in names, r
            assert r[1] not in debs.RESERVED
            assert (r[0], r[1], r[2]) not in seen, f"duplicate line {r}"
            seen.add((r[0], r[1], r[2]))
    # every class has at least one real recording line or a fluidsynth program
    audio_classes = {r[0] for r in build.read_table(build.TABLES / "audio.tsv")}
    assert names <= audio_classes | {"people speaking"}


def test_near_duplicates_measure_and_exclusion(tmp_path, monkeypatch):
    """near_duplicates: a drawing recoloured (another skin tone) or mirrored scores above the
    threshold, a different drawing below it; a test picture is excluded when its near-duplicate is
    outside test under the split assignment asked for, and not otherwise."""
    import json
    from training.dataset import near_duplicates as nd
    rng = np.random.default_rng(0)

    def drawing(seed, colour):
        r = np.random.default_rng(seed)
        im = np.zeros((96, 96, 4), np.uint8)
        for _ in range(6):                                   # a few filled boxes with dark outlines
            y, x = r.integers(8, 60, 2)
            h, w = r.integers(10, 30, 2)
            im[y:y + h, x:x + w, :3] = colour
            im[y:y + h, x:x + w, 3] = 255
            im[y, x:x + w, :3] = im[y + h - 1, x:x + w, :3] = 0
            im[y:y + h, x, :3] = im[y:y + h, x + w - 1, :3] = 0
        return im
    a = drawing(1, (230, 180, 140))
    recoloured = drawing(1, (170, 120, 80))                  # a darker skin tone: 0.94 here
    mirrored = a[:, ::-1].copy()
    other = drawing(2, (230, 180, 140))
    noise = (rng.random((96, 96, 4)) * 255).astype(np.uint8)
    noise[..., 3] = 255
    S = nd.similarity_matrix(np.stack([nd.edge_map(x) for x in (a, recoloured, mirrored, other, noise)]))
    assert S[0, 1] >= nd.THRESHOLD and S[0, 2] >= nd.THRESHOLD
    assert S[0, 3] < nd.THRESHOLD and S[0, 4] < nd.THRESHOLD

    table = tmp_path / "near_duplicates.json"
    table.write_text(json.dumps({"excluded_test_ids": ["t1"], "all_pairs": [["t1", "r1", 0.9], ["t2", "t3", 0.95]]}))
    monkeypatch.setattr(nd, "TABLE", table)
    assert nd.excluded_test_ids() == {"t1"}
    assert nd.excluded_test_ids({"t1": "test", "r1": "train", "t2": "test", "t3": "test"}) == {"t1"}
    assert nd.excluded_test_ids({"t1": "test", "r1": "test", "t2": "test", "t3": "val"}) == {"t2"}
    assert nd.excluded_test_ids({"t2": "test"}) == set()          # a partner outside the split is ignored

"""Unit tests for the Qt .rcc and OpenTTD .cat readers, on files the tests build."""
import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from training.dataset.readers import FormatError, read_cat, read_rcc  # noqa: E402


# ------------------------------------------------------------------ writers used by the tests

def make_rcc(files: dict, version: int = 2, compress=()) -> bytes:
    """Build a Qt binary resource (.rcc) holding `files` ({"a/b.txt": bytes}).

    Tree: entry 0 is the root; directory children are stored contiguously (Qt's layout)."""
    # build a nested dict
    root: dict = {}
    for path, data in files.items():
        node = root
        parts = path.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = data
    names = b""
    name_off = {}

    def name(n: str) -> int:
        nonlocal names
        if n not in name_off:
            name_off[n] = len(names)
            enc = n.encode("utf-16-be")
            names += struct.pack(">HI", len(n), 0) + enc
        return name_off[n]

    data_blob = b""
    entries = []  # (name_off, flags, a, b) -> packed later

    # breadth-first: each directory's children contiguous
    queue = [("", root)]
    entries.append(None)  # root placeholder
    index_of = {id(root): 0}
    while queue:
        nm, node = queue.pop(0)
        kids = sorted(node.items())
        first = len(entries)
        me = index_of[id(node)]
        entries[me] = ("dir", nm, len(kids), first)
        for k, v in kids:
            if isinstance(v, dict):
                index_of[id(v)] = len(entries)
                entries.append(None)
                queue.append((k, v))
            else:
                comp = k in compress or any(k.endswith(c) for c in compress)
                payload = (struct.pack(">I", len(v)) + zlib.compress(v)) if comp else v
                off = len(data_blob)
                data_blob += struct.pack(">I", len(payload)) + payload
                entries.append(("file", k, off, 1 if comp else 0))
    esz = 14 if version == 1 else 22
    tree = b""
    for e in entries:
        if e[0] == "dir":
            no = 0 if e[1] == "" else name(e[1])
            rec = struct.pack(">IHII", no, 2, e[2], e[3])
        else:
            rec = struct.pack(">IHHHI", name(e[1]), e[3], 0, 0, e[2])
        tree += rec + b"\0" * (esz - len(rec))
    header_len = 20 if version < 3 else 24
    tree_off = header_len
    data_off = tree_off + len(tree)
    names_off = data_off + len(data_blob)
    head = b"qres" + struct.pack(">IIII", version, tree_off, data_off, names_off)
    if version >= 3:
        head += struct.pack(">I", 0)
    return head + tree + data_blob + names


def wav_bytes(x: np.ndarray, sr: int) -> bytes:
    b = io.BytesIO()
    sf.write(b, x, sr, format="WAV", subtype="PCM_16")
    return b.getvalue()


def make_cat(samples) -> bytes:
    """Build an OpenTTD sound catalogue from [(name, wav_bytes)]."""
    n = len(samples)
    table = b""
    body = b""
    off = 8 * n
    for nm, wav in samples:
        nb = nm.encode("latin-1") + b"\0"
        blob = bytes([len(nb)]) + nb + wav
        table += struct.pack("<II", (off + len(body)) | 0x80000000, len(wav))
        body += blob
    return table + body


# ------------------------------------------------------------------ .rcc

@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_reads_nested_files_plain_and_zlib(version):
    files = {"gcompris/src/a/dog.ogg": b"OggS" + bytes(range(200)),
             "gcompris/src/a/readme.txt": b"hello world " * 20,
             "gcompris/top.svg": b"<svg/>"}
    blob = make_rcc(files, version=version, compress=("readme.txt",))
    got = {e.path: e for e in read_rcc(blob)}
    assert set(got) == set(files)
    for p, d in files.items():
        assert got[p].data == d
    assert got["gcompris/src/a/readme.txt"].compression == "zlib"
    assert got["gcompris/top.svg"].compression == "none"


def test_rcc_truncated_file_gives_clear_error():
    blob = make_rcc({"x/y.wav": b"RIFF" + b"\1" * 500})
    with pytest.raises(FormatError, match="truncated"):
        read_rcc(blob[:-300], name="cut.rcc")
    with pytest.raises(FormatError, match="cut.rcc"):
        read_rcc(blob[:10], name="cut.rcc")


def test_rcc_rejects_wrong_magic():
    with pytest.raises(FormatError, match="not a Qt resource"):
        read_rcc(b"RIFF" + b"\0" * 40)


# ------------------------------------------------------------------ .cat

def test_cat_reads_names_and_waves():
    sr = 22050
    a = (0.3 * np.sin(np.arange(2205) * 0.1)).astype(np.float32)
    b = (0.1 * np.ones(1000)).astype(np.float32)
    blob = make_cat([('"Cow". License: Creative Commons Zero 1.0.', wav_bytes(a, sr)),
                     ("Helicopter", wav_bytes(b, 11025))])
    es = read_cat(blob)
    assert [e.index for e in es] == [0, 1]
    assert es[0].name.startswith('"Cow"') and es[1].name == "Helicopter"
    x, r = sf.read(io.BytesIO(es[0].wav), dtype="float32")
    assert r == sr and len(x) == len(a)
    assert np.max(np.abs(x - a)) < 1e-3
    y, r2 = sf.read(io.BytesIO(es[1].wav))
    assert r2 == 11025 and len(y) == 1000


def test_cat_data_chunk_overclaiming_is_clamped():
    w = bytearray(wav_bytes(np.zeros(100, np.float32), 8000))
    struct.pack_into("<I", w, 40, 100 * 2 + 50)   # data chunk claims 25 frames more
    es = read_cat(make_cat([("x", bytes(w))]))
    x, _ = sf.read(io.BytesIO(es[0].wav))
    assert len(x) == 100


def test_cat_truncated_file_gives_clear_error():
    blob = make_cat([("one", wav_bytes(np.zeros(500, np.float32), 8000)),
                     ("two", wav_bytes(np.zeros(500, np.float32), 8000))])
    with pytest.raises(FormatError, match="truncated"):
        read_cat(blob[:-100], name="opensfx.cat")
    with pytest.raises(FormatError, match="opensfx.cat"):
        read_cat(blob[:12], name="opensfx.cat")


def test_cat_rejects_non_wave_entry():
    with pytest.raises(FormatError, match="RIFF/WAVE"):
        read_cat(make_cat([("junk", b"OggS" + b"\0" * 60)]))


def test_partial_extraction_follows_symbolic_links(tmp_path):
    """A drawing linked into a category the patterns select, with its file in one they do not
    (openclipart-png does this), is extracted whole: the link's target comes along."""
    import os
    import subprocess
    from training.dataset import debs
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text("Package: avgas-linktest\nVersion: 1.0\nArchitecture: all\n"
                                            "Maintainer: test <t@example.org>\nDescription: link test\n")
    people = pkg / "usr/share/art/people"
    cars = pkg / "usr/share/art/transportation"
    people.mkdir(parents=True)
    cars.mkdir(parents=True)
    (people / "ride.png").write_bytes(b"drawing")
    os.symlink("../people/ride.png", cars / "ride.png")
    os.symlink("/usr/share/art/people/walk.png", cars / "walk.png")   # absolute: a path of the package
    (people / "walk.png").write_bytes(b"walking")
    os.symlink("../../../lib/missing.png", cars / "gone.png")        # not in the package: stays dangling
    cache = tmp_path / "cache"
    (cache / "debs").mkdir(parents=True)
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(pkg), str(cache / "debs" / "avgas-linktest_1.0_all.deb")],
                   check=True, capture_output=True)
    root = debs.extract("avgas-linktest", cache, ["./usr/share/art/transportation/*"])
    assert (root / "usr/share/art/transportation/ride.png").read_bytes() == b"drawing"
    assert (root / "usr/share/art/people/walk.png").read_bytes() == b"walking"
    assert (root / "usr/share/art/transportation/gone.png").is_symlink()
    assert not (root / "usr/share/art/transportation/gone.png").exists()
    # A cache extracted before links were followed is repaired on the next call.
    os.remove(root / "usr/share/art/people/ride.png")
    root = debs.extract("avgas-linktest", cache, ["./usr/share/art/transportation/*"])
    assert (root / "usr/share/art/transportation/ride.png").read_bytes() == b"drawing"

"""Build the 30 s demo soundscape Assets/demo/soundscape.wav (16 kHz mono, 16-bit).

Deterministic: fixed sources from Debian packages, fixed placement, fixed-seed noise
floor. Writes soundscape.wav, timeline.json and NOTICE into the output folder.

    python -m training.dataset.make_demo [--cache data/cache] [--out Assets/demo]

Layout (each foreground is alone over the rain bed for several seconds):
  0.0-1.5  near silence (noise floor only)  -> dog onset after near-silence at 1.5 s
  1.5-~6   dog barking, alone (no rain yet)
  5.0-30   raining, low bed
  9.5-~16  playing violin, fiddle
  18-~25   helicopter (18-21 alone over rain)
  21-~29   bird chirping, tweeting
"""
from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import audio, debs
from .readers import read_cat

SR = audio.SR
DUR = 30.0

SCORCH = "./usr/share/games/scorched3d/data/globalmods"
STAMPS = "./usr/share/tuxpaint/stamps"
OPENSFX = "./usr/share/games/openttd/baseset/opensfx/opensfx.cat"


@dataclass
class Src:
    cls: str
    package: str
    path: str           # path inside the package (for .cat: catalogue path + "#index")
    license: str
    start: float        # placement in the soundscape (s)
    level_db: float     # target active RMS level (dBFS)
    offset: float = 0.0  # seconds skipped at the start of the source
    length: float = 0.0  # seconds used (0 = whole file); longer than the file -> looped
    fade: float = 0.05
    note: str = ""


SOURCES = [
    Src("dog barking", "scorched3d-data", f"{SCORCH}/apoc/data/wav/misc/dog3.wav",
        "CC-BY-SA-3.0 (Scorched3D Apocalypse mod team)", 1.5, -20.0),
    Src("dog barking", "tuxpaint-stamps-default", f"{STAMPS}/animals/mammals/dogs/dog.ogg",
        "GPL-2", 5.55, -20.0),
    Src("raining", "scorched3d-data", f"{SCORCH}/none/data/wav/misc/rain.wav",
        "GPL-2+ (Scorched3D, Gavin Camp)", 5.0, -34.0, length=25.0, fade=1.0,
        note="looped with 1 s crossfades"),
    Src("playing violin, fiddle", "tuxpaint-stamps-default",
        f"{STAMPS}/hobbies/music/string/violin.ogg", "GPL-2", 9.5, -21.0),
    Src("playing violin, fiddle", "tuxpaint-stamps-default",
        f"{STAMPS}/hobbies/music/string/violin.ogg", "GPL-2", 12.8, -21.0,
        note="second playing of the same recording"),
    Src("helicopter", "openttd-opensfx", f"{OPENSFX}#24",
        "CC-BY-SA-3.0 (\"helicopterRaw_16sec.wav\" by lorenzosu, edited by Wuzzy)", 18.0,
        -22.0, length=7.0, fade=0.3, note="looped with 0.3 s crossfades"),
    Src("bird chirping, tweeting", "tuxpaint-stamps-default",
        f"{STAMPS}/animals/birds/blackbird.ogg", "GPL-2", 21.0, -23.0, offset=2.4, fade=0.2),
    Src("bird chirping, tweeting", "scorched3d-data", f"{SCORCH}/none/data/wav/misc/birds1.wav",
        "GPL-2+ (Scorched3D, Gavin Camp)", 26.4, -23.0, length=2.6, fade=0.2),
]


def _load(src: Src, roots: dict) -> np.ndarray:
    root = roots[src.package]
    if "#" in src.path:
        cat_path, idx = src.path.split("#")
        entries = read_cat(root / cat_path)
        return audio.load_16k(entries[int(idx)].wav)
    return audio.load_16k(root / src.path)


def _loop(x: np.ndarray, n: int, xf: int) -> np.ndarray:
    """Repeat x with linear crossfades of xf samples until it is n samples long."""
    if len(x) >= n:
        return x[:n].copy()
    xf = min(xf, len(x) // 3)
    out = x.astype(np.float64).copy()
    ramp = np.linspace(0.0, 1.0, xf, endpoint=False) if xf else np.zeros(0)
    while len(out) < n:
        head = x[:xf] * ramp
        out[len(out) - xf:] = out[len(out) - xf:] * (1 - ramp) + head
        out = np.concatenate([out, x[xf:]])
    return out[:n]


def _fade(x: np.ndarray, n: int) -> np.ndarray:
    n = min(n, len(x) // 2)
    if n > 0:
        r = np.linspace(0.0, 1.0, n)
        x[:n] *= r
        x[-n:] *= r[::-1]
    return x


def build(cache: Path, out: Path) -> dict:
    pats = {
        "scorched3d-data": [f"{SCORCH}/*/data/wav/misc/*"],
        "tuxpaint-stamps-default": [f"{STAMPS}/animals/mammals/dogs/dog.ogg",
                                    f"{STAMPS}/hobbies/music/string/violin.ogg",
                                    f"{STAMPS}/animals/birds/blackbird.ogg"],
        "openttd-opensfx": [OPENSFX],
    }
    roots = {p: debs.extract(p, cache, pt) for p, pt in pats.items()}
    versions = {p: debs.version(debs.deb_path(p, cache)) for p in pats}
    n = int(DUR * SR)
    mix = np.zeros(n, dtype=np.float64)
    timeline = []
    for s in SOURCES:
        x = _load(s, roots).astype(np.float64)
        x = x[int(s.offset * SR):]
        if s.length:
            x = _loop(x, int(s.length * SR), int(s.fade * SR))
        x = audio.trim_silence(x.astype(np.float32), -45.0).astype(np.float64)
        x = _fade(x, int(s.fade * SR))
        x *= 10 ** ((s.level_db - audio.active_rms_db(x)) / 20)
        a = int(round(s.start * SR))
        x = x[:n - a]
        mix[a:a + len(x)] += x
        timeline.append({"class": s.cls, "start": round(s.start, 3),
                         "end": round((a + len(x)) / SR, 3),
                         "source": f"{s.package}:{s.path.lstrip('./')}"})
    rng = np.random.default_rng(20250418)
    mix += rng.standard_normal(n) * 10 ** (-66 / 20)   # noise floor, about -66 dBFS
    peak = np.abs(mix).max()
    if peak > 0.89:
        mix *= 0.89 / peak
    out.mkdir(parents=True, exist_ok=True)
    audio.write_wav16(out / "soundscape.wav", mix)
    # merge consecutive pieces of the same class into one event
    merged = []
    for t in sorted(timeline, key=lambda e: (e["class"], e["start"])):
        if merged and merged[-1]["class"] == t["class"] and t["start"] <= merged[-1]["end"] + 0.5:
            merged[-1]["end"] = max(merged[-1]["end"], t["end"])
            if t["source"] not in merged[-1]["source"]:
                merged[-1]["source"] += " + " + t["source"]
        else:
            merged.append(dict(t))
    merged.sort(key=lambda e: (e["start"], e["class"]))
    (out / "timeline.json").write_text(json.dumps(merged, indent=1) + "\n")
    lines = [
        "Assets/demo/soundscape.wav: a 30 s, 16 kHz mono, 16-bit demo soundscape mixed from",
        "real recordings shipped in Debian packages (none of the reserved evaluation packages).",
        "Built by training/dataset/make_demo.py (`make demo-audio`); timeline.json lists when",
        "each class sounds. The mix as a whole is distributed under the terms of every source",
        "below (CC-BY-SA-3.0 and GPL-2+ parts: share alike, keep this notice).",
        "",
        "Processing, all sources: decoded, averaged to mono, resampled to 16 kHz (scipy",
        "resample_poly), leading/trailing silence below -45 dB trimmed, faded in/out,",
        "levelled to the stated active RMS level, placed at the stated time and summed; a",
        "-66 dBFS seeded white noise floor added; peak-limited to -1 dBFS by one overall gain.",
        "",
    ]
    for s in SOURCES:
        extra = []
        if s.offset:
            extra.append(f"starting {s.offset:g} s into the file")
        if s.length:
            extra.append(f"{s.length:g} s used")
        if s.note:
            extra.append(s.note)
        lines += [f"- {s.cls} at {s.start:g} s, level {s.level_db:g} dBFS"
                  + (f" ({'; '.join(extra)})" if extra else ""),
                  f"    package: {s.package} {versions[s.package]} (Debian)",
                  f"    path:    {s.path.lstrip('./')}" + (" (OpenTTD sound catalogue entry, read with"
                                                         " training/dataset/readers.py)" if "#" in s.path else ""),
                  f"    license: {s.license}"]
    (out / "NOTICE").write_text("\n".join(lines) + "\n")
    return {"timeline": merged}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default="data/cache", type=Path)
    ap.add_argument("--out", default="Assets/demo", type=Path)
    a = ap.parse_args(argv)
    r = build(a.cache, a.out)
    for e in r["timeline"]:
        print(f"{e['start']:6.2f}-{e['end']:6.2f}  {e['class']}")
    print(f"wrote {a.out}/soundscape.wav, timeline.json, NOTICE")


if __name__ == "__main__":
    main()

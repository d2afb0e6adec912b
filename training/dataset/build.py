"""`make dataset`: build the paired audio/image dataset from Debian packages.

    python -m training.dataset.build [--out data] [--cache data/cache] [--classes Assets/classes.json]
                                     [--no-report] [--fixtures DIR]

Steps (each deterministic: same packages -> byte-identical outputs):
 1. download (apt-get download, cached) and extract only the paths the tables name;
 2. audio: tables/audio.tsv (real recordings; .rcc, .cat and .zip entries read by our own
    readers), fluidsynth renders of MIDI phrases written here (sources.FLUID_PROGRAMS),
    Tux Paint spoken descriptions (people speaking), espeak-ng (synthetic, extra);
    each decoded, mixed to mono, resampled to 16 kHz, silence-trimmed, cut into <= 10 s
    chunks, levelled to -20 dBFS active RMS and written as 16-bit WAV;
 3. images: tables/images.tsv (openclipart, Tux Paint, GCompris, qabcs, Scratch, pysiogame...),
    Noto Color Emoji and EmojiOne (sources.EMOJI), Symbola glyphs (sources.SYMBOLA);
    a path ending in `|crop=x0,y0,x1,y1` is first cut to that box (a part of a larger scene);
    alpha-cropped, padded to a square on a neutral grey, 128x128 PNG; identical images are
    kept once; rows of images.tsv that share a 4th-column group (the same drawing in two
    sizes, colours or poses) share one original_id, so they count as one image and never
    span splits;
 4. splits by original (train/val/test, fixed seed), manifest.csv;
 5. fixed evaluation mixtures from the test split (mixtures/eval_{1,2,3}src.jsonl + wavs);
 6. coverage: report, contact sheet, thin/recordings/images fields of classes.json.

`--fixtures DIR` builds from a folder of plain files instead of Debian packages (used
by the smoke test; see training/tests/fixtures/dataset/README).
"""
from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import io
import json
import re
import shutil
import struct
import subprocess
import tempfile
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from tqdm import tqdm

from . import audio, debs, loaders, sources
from .readers import read_cat, read_rcc

HERE = Path(__file__).resolve().parent
TABLES = HERE / "tables"
SEED = 20250418
CLIP_MAX_S = 10.0
CLIP_MAX_CHUNKS = 6
CLIP_MIN_S = 0.3
LEVEL_DB = -20.0
IMG = 128
BG = (200, 200, 200)
SPEECH_DESC_MAX = 160
MANIFEST_FIELDS = ["id", "kind", "class", "split", "path", "package", "source_path", "license",
                   "original_id", "split_group", "synthetic", "duration_s"]


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def h(s: str, n: int = 12) -> str:
    return hashlib.sha1(s.encode()).hexdigest()[:n]


@dataclass
class AudioSrc:
    cls: str
    package: str
    path: str          # inside the package; "#" marks a container entry
    license: str
    original_id: str = ""
    split_group: str = ""
    synthetic: bool = False
    pool: str = ""                    # audio.tsv 5th column: split pool ("" = the first pool)
    data: Optional[bytes] = None      # raw file bytes (set when loaded)
    pcm: Optional[np.ndarray] = None  # already 16 kHz mono (renders)


@dataclass
class ImageSrc:
    cls: str
    package: str
    path: str
    license: str
    data: Optional[bytes] = None
    image: object = None  # PIL image (emoji)
    group: str = ""       # images.tsv 4th column: near-duplicates of one original share it
    pool: str = ""        # images.tsv 5th column: split pool ("" = the first pool)


# ------------------------------------------------------------------ tables

CROP_RE = re.compile(r"\|crop=(\d+),(\d+),(\d+),(\d+)$")


def split_crop(path: str):
    """images.tsv path -> (path without the crop suffix, (x0, y0, x1, y1) or None). A path may end in
    `|crop=x0,y0,x1,y1`: the picture is cut to that box (pixels of the decoded source picture, x1/y1
    exclusive) before the alpha-crop and square resize; the suffix stays in the manifest's source_path."""
    if "|" not in path:
        return path, None
    m = CROP_RE.search(path)
    if m is None:
        raise ValueError(f"bad crop suffix in {path!r} (want path|crop=x0,y0,x1,y1)")
    box = tuple(int(v) for v in m.groups())
    if not (box[0] < box[2] and box[1] < box[3]):
        raise ValueError(f"empty crop box in {path!r}")
    return path[:m.start()], box


def apply_crop(im, box):
    """Cut a decoded picture to box; the box must lie inside the picture."""
    if box is None:
        return im
    if box[2] > im.size[0] or box[3] > im.size[1]:
        raise ValueError(f"crop box {box} outside the {im.size[0]}x{im.size[1]} picture")
    return im.crop(box)


def read_table(p: Path) -> List[List[str]]:
    rows = []
    for line in p.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.split("\t"))
    return rows


def dep5(copyright_text: str):
    """Parse a machine-readable debian/copyright into [(patterns, license)] in file order."""
    out, pats, lic = [], None, None
    for para in re.split(r"\n\s*\n", copyright_text):
        m = re.search(r"^Files:\s*(.+?)(?=^\S|\Z)", para, re.M | re.S)
        l = re.search(r"^License:\s*(.+)$", para, re.M)
        if m and l:
            out.append((m.group(1).split(), l.group(1).strip()))
    return out


def dep5_license(rules, src_path: str, default: str) -> str:
    lic = default
    for pats, l in rules:
        if any(fnmatch.fnmatch(src_path, p) for p in pats):
            lic = l  # the last matching stanza wins
    return lic


# ------------------------------------------------------------------ package access

class Packages:
    """Reads files from extracted Debian packages, or from a plain fixtures folder."""

    def __init__(self, cache: Path, fixtures: Optional[Path] = None):
        self.cache, self.fixtures = cache, fixtures
        self.roots: Dict[str, Path] = {}
        self._rcc: Dict[str, dict] = {}
        self._cat: Dict[str, list] = {}
        self._zip: Dict[str, zipfile.ZipFile] = {}
        self.versions: Dict[str, str] = {}

    def prepare(self, wanted: Dict[str, set]) -> None:
        for pkg in tqdm(sorted(wanted), desc="packages", unit="pkg"):
            if self.fixtures is not None:
                self.roots[pkg] = self.fixtures / pkg
                self.versions[pkg] = "fixture"
                continue
            pats = sorted({"./" + p.split("#")[0] for p in wanted[pkg] if p} |
                          {"./usr/share/doc/*"})
            if None in wanted[pkg] or "" in wanted[pkg]:
                pats = None
            self.roots[pkg] = debs.extract(pkg, self.cache, pats)
            self.versions[pkg] = debs.version(debs.deb_path(pkg, self.cache))

    def read(self, pkg: str, path: str) -> bytes:
        root = self.roots[pkg]
        if "#" not in path:
            return (root / path).read_bytes()
        outer, inner = path.split("#", 1)
        if outer.endswith(".rcc"):
            if outer not in self._rcc:
                self._rcc[outer] = {e.path: e.data for e in read_rcc(root / outer)}
            return self._rcc[outer][inner]
        if outer.endswith(".cat"):
            if outer not in self._cat:
                self._cat[outer] = read_cat(root / outer)
            return self._cat[outer][int(inner)].wav
        if outer.endswith(".zip"):
            if outer not in self._zip:
                self._zip[outer] = zipfile.ZipFile(root / outer)
            return self._zip[outer].read(inner)
        if outer.endswith((".ttf", ".otf")):
            return font_glyph_svg(root / outer, inner)
        raise ValueError(f"unknown container in {path}")

    def cat_name(self, pkg: str, path: str) -> str:
        outer, inner = path.split("#", 1)
        self.read(pkg, path)
        return self._cat[outer][int(inner)].name

    def copyright(self, pkg: str) -> str:
        p = self.roots[pkg] / f"usr/share/doc/{pkg}/copyright"
        return p.read_text(errors="replace") if p.exists() else ""


def resolve_license(pk: Packages, pkg: str, path: str, code: str, cache_rules: dict) -> str:
    if code == "DEP5":
        if pkg not in cache_rules:
            cache_rules[pkg] = dep5(pk.copyright(pkg))
        inner = path.split("#", 1)[-1]
        src = inner[len("gcompris/"):] if inner.startswith("gcompris/") else inner
        src = re.sub(r"^usr/share/qabcs/", "", src)
        return dep5_license(cache_rules[pkg], src, "GPL-3+")
    if code == "OPENSFX":
        m = re.search(r"License:\s*(.+?)\.?$", pk.cat_name(pkg, path))
        return m.group(1) if m else "CC-BY-SA-3.0"
    return sources.LICENSE_NOTES.get(code, code)


# ------------------------------------------------------------------ fluidsynth renders

def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def write_midi(path: Path, program: Optional[int], notes, tempo_us: int = 500000) -> None:
    """Write a format-0 SMF: notes = [(start_tick, dur_ticks, pitch, velocity)], 480 ticks/beat."""
    ch = 9 if program is None else 0
    ev = []
    for s, d, p, v in notes:
        ev.append((s, 1, bytes([0x90 | ch, p, v])))
        ev.append((s + d, 0, bytes([0x80 | ch, p, 0])))
    ev.sort(key=lambda e: (e[0], e[1]))
    trk = b"\x00\xff\x51\x03" + tempo_us.to_bytes(3, "big")
    if program is not None:
        trk += b"\x00" + bytes([0xC0 | ch, program])
    t = 0
    for tick, _, msg in ev:
        trk += _vlq(tick - t) + msg
        t = tick
    trk += b"\x00\xff\x2f\x00"
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) +
                     b"MTrk" + struct.pack(">I", len(trk)) + trk)


def phrase(rng: np.random.Generator, program: Optional[int]):
    """A random 4-bar phrase: scale melody (melodic programs), chords (piano/guitar/organ
    sometimes), a rock/swing pattern for drums, sparse hits for effects."""
    if program is None:
        notes = []
        swing = rng.random() < 0.5
        for beat in range(16):
            t = beat * 480
            notes.append((t, 120, 42 if rng.random() < 0.8 else 46, int(rng.integers(60, 100))))
            if beat % 4 in (0, 2) or rng.random() < 0.15:
                notes.append((t, 120, 36, int(rng.integers(80, 120))))
            if beat % 4 in (1, 3):
                notes.append((t + (160 if swing else 0), 120, 38, int(rng.integers(80, 120))))
            if beat % 8 == 7 and rng.random() < 0.6:
                notes.append((t + 240, 120, int(rng.choice([45, 47, 50])), 100))
        notes.append((0, 480, 49, 110))
        return notes
    lo, hi = sources.FLUID_RANGE.get(program, (48, 84))
    if program >= 120 or program == 14:  # effects, bells: few long notes
        out, t = [], 0
        while t < 16 * 480:
            d = int(rng.choice([960, 1440, 1920]))
            out.append((t, d, int(rng.integers(lo, hi + 1)), int(rng.integers(70, 120))))
            t += d + int(rng.choice([0, 240, 480]))
        return out
    scale = np.array([0, 2, 4, 5, 7, 9, 11]) if rng.random() < 0.6 else np.array([0, 2, 3, 5, 7, 8, 10])
    root = int(rng.integers(lo, max(lo + 1, hi - 12)))
    pitches = sorted({root + 12 * o + s for o in range(-1, 3) for s in scale if lo <= root + 12 * o + s <= hi})
    idx = int(rng.integers(0, len(pitches)))
    out, t = [], 0
    chords = program in (0, 1, 16, 19, 24, 25, 46) and rng.random() < 0.4
    while t < 16 * 480:
        d = int(rng.choice([240, 480, 480, 720, 960]))
        idx = int(np.clip(idx + rng.integers(-2, 3), 0, len(pitches) - 1))
        v = int(rng.integers(55, 120))
        out.append((t, d, pitches[idx], v))
        if chords and rng.random() < 0.5:
            for k in (2, 4):
                if idx + k < len(pitches):
                    out.append((t, d, pitches[idx + k], max(40, v - 20)))
        t += d
    return out


def render_fluid(cache: Path, sf2: Path, phrases_per_program: int = 3) -> List[AudioSrc]:
    out = []
    work = cache / "fluid"
    work.mkdir(parents=True, exist_ok=True)
    jobs = [(c, p, k) for c, ps in sources.FLUID_PROGRAMS.items() for p in ps
            for k in range(phrases_per_program)]
    for cls, prog, k in tqdm(jobs, desc="fluidsynth", unit="phrase"):
        tag = "drums" if prog is None else f"program{prog}"
        rng = np.random.default_rng([SEED, 0 if prog is None else prog + 1, k])
        mid = work / f"{tag}_{k}.mid"
        wav = work / f"{tag}_{k}.wav"
        tempo = int(rng.integers(400000, 700000))
        write_midi(mid, prog, phrase(rng, prog), tempo)
        if not wav.exists() or wav.stat().st_mtime < mid.stat().st_mtime:
            subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.6", "-r", "16000",
                            "-F", str(wav), str(sf2), str(mid)], check=True, capture_output=True)
        x = audio.load_16k(wav)
        out.append(AudioSrc(cls, "fluid-soundfont-gm", f"render:{tag}:phrase{k}",
                            "MIT (FluidR3_GM.sf2, rendered by fluidsynth from MIDI written by build.py)",
                            original_id=f"fluid-soundfont-gm:{tag}", pcm=x))
    return out


def render_espeak(cache: Path) -> List[AudioSrc]:
    if shutil.which("espeak-ng") is None:
        return []
    out = []
    for v in tqdm(sources.ESPEAK_VOICES, desc="espeak-ng", unit="voice"):
        for i, text in enumerate(sources.ESPEAK_TEXT[:3]):
            r = subprocess.run(["espeak-ng", "-v", v, "-s", str(140 + 10 * i), "--stdout", text],
                               capture_output=True, check=True)
            out.append(AudioSrc("people speaking", "espeak-ng", f"synth:{v}:{i}",
                                "GPL-3+ (espeak-ng, synthetic speech)",
                                original_id=f"espeak-ng:{v}", split_group=f"espeak-ng:{v}",
                                synthetic=True, data=r.stdout))
    return out


# ------------------------------------------------------------------ processing

def process_audio(x: np.ndarray) -> List[np.ndarray]:
    x = audio.trim_silence(np.asarray(x, np.float32), -50.0)
    if len(x) < CLIP_MIN_S * audio.SR:
        return []
    n = int(CLIP_MAX_S * audio.SR)
    chunks = [x[i:i + n] for i in range(0, len(x), n)][:CLIP_MAX_CHUNKS]
    chunks = [c for c in chunks if len(c) >= CLIP_MIN_S * audio.SR]
    out = []
    for c in chunks:
        c = c.astype(np.float64)
        c *= 10 ** ((LEVEL_DB - audio.active_rms_db(c)) / 20)
        pk = np.abs(c).max()
        if pk > 0.98:
            c *= 0.98 / pk
        out.append(c.astype(np.float32))
    return out


def font_glyph_svg(font_path: Path, entry: str) -> bytes:
    """One glyph of a font as SVG: `entry` is "U+XXXX". A COLR (v0) colour glyph is drawn layer by
    layer in palette 0 (Twemoji in TwemojiMozilla.ttf); any other glyph is drawn black. The outlines
    are taken from the font with fontTools, so the picture does not depend on FreeType's colour support."""
    from fontTools.pens.svgPathPen import SVGPathPen
    from fontTools.ttLib import TTFont
    m = re.fullmatch(r"U\+([0-9A-Fa-f]{4,6})", entry)
    if m is None:
        raise ValueError(f"font entry must be U+XXXX, got {entry!r}")
    font = TTFont(str(font_path), lazy=True)
    name = font.getBestCmap().get(int(m.group(1), 16))
    if name is None:
        raise ValueError(f"{font_path.name} has no glyph for {entry}")
    gs = font.getGlyphSet()
    layers = [(name, "#000000", 1.0)]
    if "COLR" in font and name in font["COLR"].ColorLayers:
        pal = font["CPAL"].palettes[0]
        layers = []
        for lay in font["COLR"].ColorLayers[name]:
            c = pal[lay.colorID]
            layers.append((lay.name, f"#{c.red:02x}{c.green:02x}{c.blue:02x}", c.alpha / 255))
    paths = []
    for gname, fill, alpha in layers:
        pen = SVGPathPen(gs)
        gs[gname].draw(pen)
        paths.append(f'<path d="{pen.getCommands()}" fill="{fill}" fill-opacity="{alpha:.4f}"/>')
    asc, desc = font["hhea"].ascent, font["hhea"].descent
    adv = font["hmtx"][name][0]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 {-asc} {adv} {asc - desc}" '
            f'width="{adv}" height="{asc - desc}"><g transform="scale(1,-1)">{"".join(paths)}</g></svg>').encode()


def svg_to_png(data: bytes, size: int = 256) -> bytes:
    r = subprocess.run(["rsvg-convert", "-w", str(size), "-h", str(size), "--keep-aspect-ratio"],
                       input=data, capture_output=True)
    if r.returncode != 0:
        raise ValueError(r.stderr.decode(errors="replace")[:200])
    return r.stdout


def square_image(im, size: int = IMG, bg=BG):
    """Alpha-crop, pad to a square (4% margin per side) on a neutral background, resize to size."""
    from PIL import Image
    im = im.convert("RGBA")
    a = im.getchannel("A")
    box = a.point(lambda v: 255 if v > 8 else 0).getbbox()
    if box is None:
        return None
    im = im.crop(box)
    w, hgt = im.size
    side = max(w, hgt) + 2 * max(1, int(round(0.04 * max(w, hgt))))  # 4% margin each side
    canvas = Image.new("RGBA", (side, side), bg + (255,))
    canvas.alpha_composite(im, ((side - w) // 2, (side - hgt) // 2))
    return canvas.convert("RGB").resize((size, size), Image.LANCZOS)


def decode_image(data: bytes, path: str):
    from PIL import Image
    if path.endswith((".svg", ".svgz")) or data[:5] == b"<svg ":
        data = svg_to_png(data)
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


EMOJIONE = "usr/share/rubygems-integration/all/gems/gemojione-3.3.0/assets/svg"


def emoji_codes():
    """(class, code) for every emoji of sources.EMOJI, skin-tone variants expanded."""
    out = []
    for cls, codes in sources.EMOJI.items():
        for code in codes:
            if code.endswith("+TONES"):
                base = code[:-6]
                parts = base.split("-")
                out.append((cls, base))
                out += [(cls, "-".join([parts[0], t] + parts[1:])) for t in
                        ("1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF")]
            else:
                out.append((cls, code))
    return out


def render_emoji(font_path: Path):
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.truetype(str(font_path), 109)
    out = []
    for cls, v in emoji_codes():
        text = "".join(chr(int(c, 16)) for c in v.split("-"))
        im = Image.new("RGBA", (260, 160), (0, 0, 0, 0))
        ImageDraw.Draw(im).text((10, 10), text, font=font, embedded_color=True)
        bb = im.getchannel("A").getbbox()
        if bb is None or bb[2] - bb[0] > 150:  # not one glyph in this font version
            continue
        out.append(ImageSrc(cls, "fonts-noto-color-emoji",
                            f"usr/share/fonts/truetype/noto/NotoColorEmoji.ttf#U+{v}",
                            "OFL-1.1 (font) / Apache-2.0 (emoji images), Noto Color Emoji",
                            image=im))
    return out


SYMBOLA = "usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf"


def render_symbola(font_path: Path):
    """Black Symbola glyphs (sources.SYMBOLA) on a transparent canvas."""
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.truetype(str(font_path), 100)
    out = []
    for cls, codes in sources.SYMBOLA.items():
        for v in codes:
            im = Image.new("RGBA", (200, 160), (0, 0, 0, 0))
            ImageDraw.Draw(im).text((20, 10), chr(int(v, 16)), font=font, fill=(0, 0, 0, 255))
            if im.getchannel("A").getbbox() is None:
                continue
            out.append(ImageSrc(cls, "fonts-symbola", f"{SYMBOLA}#U+{v}", sources.IMAGE_LICENSES["fonts-symbola"],
                                image=im))
    return out


# ------------------------------------------------------------------ splits

def pool_key(r: dict):
    return (r["kind"], r["class"], int(r.get("synthetic") or 0), r.get("pool") or "")


def read_frozen_splits(p: Path) -> Dict[tuple, str]:
    """tables/splits_frozen.tsv -> {(kind, class, synthetic, split_group): split}."""
    return {(k, c, int(s), g): sp for k, c, s, g, sp in read_table(p)}


def assign_splits(rows: List[dict], seed: int = SEED, frozen: Optional[Dict[tuple, str]] = None) -> int:
    """Split by split_group within each (kind, class, synthetic, pool): 1 group -> train,
    2 -> train/test, >= 3 -> at least one val and one test, about 70/15/15. A group is never in
    two splits. Synthetic groups (espeak-ng) are split among themselves, so adding or removing
    them never moves a real recording to another split (an espeak-ng install once moved 11 real
    test recordings of "people speaking" to val, after the listening test clips had been cut from
    them). Likewise images added later carry a pool (images.tsv 5th column) and are split among
    themselves, so the first pool keeps its splits. A pool named "train..." goes to train whole:
    recordings added after the evaluation sets were fixed (listening test clips, eval mixtures,
    val clips the models were chosen on) only add training material. `frozen` (tables/splits_frozen.tsv) pins the
    groups it lists to their recorded split whatever else changed; returns how many it moved back
    (0 when the pools did their job)."""
    groups = defaultdict(set)
    pools = defaultdict(set)
    for r in rows:
        groups[pool_key(r)].add(r["split_group"])
        pools[(r["kind"], r["class"], r["split_group"])].add(r.get("pool") or "")
    mixed = [g for g, p in pools.items() if len(p) > 1]
    if mixed:
        raise ValueError(f"split groups in two pools (give every row of a group the same pool): {mixed[:3]}")
    which = {}
    for key, gs in groups.items():
        order = sorted(gs, key=lambda g: h(f"{seed}:{g}", 16))
        n = len(order)
        if n == 1:
            n_val, n_test = 0, 0
        elif n == 2:
            n_val, n_test = 0, 1
        else:
            n_test = max(1, int(round(0.15 * n)))
            n_val = max(1, int(round(0.15 * n)))
        if key[3].startswith("train"):   # a training-only pool: extra material, fixed eval sets
            n_val, n_test = 0, 0
        for i, g in enumerate(order):
            which[(key, g)] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    pinned = set()
    for r in rows:
        key = pool_key(r)
        r["split"] = which[(key, r["split_group"])]
        fz = (frozen or {}).get((r["kind"], r["class"], key[2], r["split_group"]))
        if fz is not None and fz != r["split"]:
            pinned.add((r["kind"], r["class"], r["split_group"]))
            r["split"] = fz
    if pinned:
        print(f"warning: {len(pinned)} split groups would have moved; kept in their frozen split "
              f"(tables/splits_frozen.tsv): {sorted(pinned)[:5]}")
    return len(pinned)


# ------------------------------------------------------------------ main build

def build(out: Path, cache: Path, classes_path: Path, fixtures: Optional[Path] = None,
          report: bool = True, n_eval: int = 100, reports_dir: Optional[Path] = None,
          update_classes: bool = True) -> dict:
    classes = json.loads(classes_path.read_text())
    names = [c["name"] for c in classes["classes"]]
    nameset = set(names)
    tables = (fixtures / "tables") if fixtures is not None and (fixtures / "tables").exists() else TABLES
    arows = read_table(tables / "audio.tsv")
    irows = read_table(tables / "images.tsv")
    for r in arows + irows:
        if r[0] not in nameset:
            raise SystemExit(f"table names an unknown class {r[0]!r} (not in {classes_path})")
        if r[1] in debs.RESERVED:
            raise SystemExit(f"table uses reserved package {r[1]}")
    for r in irows:
        split_crop(r[2])  # a malformed crop suffix stops the build here

    wanted: Dict[str, set] = defaultdict(set)
    for r in arows + irows:
        wanted[r[1]].add(split_crop(r[2])[0])
    use_fluid = fixtures is None or (fixtures / "fluid-soundfont-gm").exists()
    use_emoji = fixtures is None or (fixtures / "fonts-noto-color-emoji").exists()
    use_desc = fixtures is None or (fixtures / "tuxpaint-stamps-default").exists()
    use_emojione = fixtures is None or (fixtures / "ruby-gemojione").exists()
    use_symbola = fixtures is None or (fixtures / "fonts-symbola").exists()
    if use_emojione:
        wanted["ruby-gemojione"].add(f"{EMOJIONE}/*.svg")
    if use_fluid:
        wanted["fluid-soundfont-gm"].add("usr/share/sounds/sf2/FluidR3_GM.sf2")
    if use_emoji:
        wanted["fonts-noto-color-emoji"].add("usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
    if use_symbola:
        wanted["fonts-symbola"].add(SYMBOLA)
    if use_desc and fixtures is None:
        wanted["tuxpaint-stamps-default"].add("usr/share/tuxpaint/stamps/*_desc*.ogg")
    pk = Packages(cache, fixtures)
    pk.prepare(wanted)

    if out.exists():
        for sub in ("audio", "images", "mixtures"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    lic_rules: dict = {}

    # ---- audio sources
    asrc: List[AudioSrc] = []
    for r in arows:
        cls, pkg, path, code = r[:4]
        asrc.append(AudioSrc(cls, pkg, path, resolve_license(pk, pkg, path, code, lic_rules),
                             pool=r[4] if len(r) > 4 else ""))
    if use_desc:
        root = pk.roots["tuxpaint-stamps-default"]
        desc = sorted(p.relative_to(root).as_posix() for p in root.rglob("*_desc*.ogg"))
        desc = sorted(desc, key=lambda p: h(f"{SEED}:{p}", 16))[:SPEECH_DESC_MAX]
        for p in sorted(desc):
            m = re.search(r"_desc_?([a-z]{2}(_[A-Za-z]{2})?)?\.ogg$", p)
            lang = (m.group(1) if m and m.group(1) else "en")
            asrc.append(AudioSrc("people speaking", "tuxpaint-stamps-default", p, "GPL-2",
                                 split_group=f"tuxpaint-desc:{lang}"))
    if use_fluid:
        asrc += render_fluid(cache, pk.roots["fluid-soundfont-gm"] / "usr/share/sounds/sf2/FluidR3_GM.sf2")
    if fixtures is None:
        asrc += render_espeak(cache)

    rows: List[dict] = []
    for s in tqdm(asrc, desc="audio", unit="file"):
        s.original_id = s.original_id or f"{s.package}:{s.path}"
        s.split_group = s.split_group or s.original_id
        try:
            x = s.pcm if s.pcm is not None else audio.load_16k(s.data if s.data is not None
                                                                else pk.read(s.package, s.path))
        except Exception as e:  # a broken file must not stop the build, but is reported
            print(f"warning: cannot decode {s.package}:{s.path}: {e}")
            continue
        for k, c in enumerate(process_audio(x)):
            cid = f"a_{h(s.original_id + '|' + s.path)}_{k}"
            rel = f"audio/{slug(s.cls)}/{cid}.wav"
            audio.write_wav16(out / rel, c)
            rows.append({"id": cid, "kind": "audio", "class": s.cls, "path": rel,
                         "package": s.package, "source_path": s.path, "license": s.license,
                         "original_id": s.original_id, "split_group": s.split_group,
                         "synthetic": int(s.synthetic), "duration_s": f"{len(c) / audio.SR:.3f}",
                         "pool": s.pool})

    # ---- images
    isrc: List[ImageSrc] = [ImageSrc(r[0], r[1], r[2], "", group=r[3] if len(r) > 3 else "",
                                     pool=r[4] if len(r) > 4 else "") for r in irows]
    for s in isrc:
        base = split_crop(s.path)[0]
        s.license = sources.image_license(s.package, base)
        if s.package in ("gcompris-qt-data", "qabcs-data") and not s.license:
            s.license = resolve_license(pk, s.package, base, "DEP5", lic_rules)
        if not s.license and fixtures is None:
            raise SystemExit(f"no license known for images of package {s.package} "
                             "(add it to sources.IMAGE_LICENSES)")
    if use_emoji:
        isrc += render_emoji(pk.roots["fonts-noto-color-emoji"] /
                             "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
    if use_symbola:
        isrc += render_symbola(pk.roots["fonts-symbola"] / SYMBOLA)
    if use_emojione:
        for cls, code in emoji_codes():
            rel = f"{EMOJIONE}/{code}.svg"
            if (pk.roots["ruby-gemojione"] / rel).exists():
                isrc.append(ImageSrc(cls, "ruby-gemojione", rel,
                                     "CC-BY-SA-4.0 (EmojiOne artwork, Ranks.com Inc.)"))
    seen: Dict[str, str] = {}
    for s in tqdm(isrc, desc="images", unit="img"):
        try:
            base, box = split_crop(s.path)
            im = s.image if s.image is not None else decode_image(pk.read(s.package, base), base.split("#")[-1])
        except Exception as e:
            print(f"warning: cannot decode image {s.package}:{s.path}: {e}")
            continue
        sq = square_image(apply_crop(im, box))  # a wrong crop box stops the build
        if sq is None:
            continue
        digest = hashlib.sha1(sq.tobytes()).hexdigest()
        if (s.cls, digest) in seen:
            continue  # the same picture under two paths: keep once
        seen[(s.cls, digest)] = s.path
        iid = f"i_{digest[:12]}"
        rel = f"images/{slug(s.cls)}/{iid}.png"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        sq.save(out / rel, format="PNG", optimize=False)
        orig = f"image-group:{slug(s.cls)}:{s.group}" if s.group else f"image:{digest}"
        rows.append({"id": iid, "kind": "image", "class": s.cls, "path": rel, "package": s.package,
                     "source_path": s.path, "license": s.license, "original_id": orig,
                     "split_group": orig, "synthetic": 0, "duration_s": "", "pool": s.pool})

    frozen_path = tables / "splits_frozen.tsv"
    assign_splits(rows, frozen=read_frozen_splits(frozen_path) if frozen_path.exists() else None)
    rows.sort(key=lambda r: (r["kind"], r["class"], r["id"]))
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in MANIFEST_FIELDS})
    (out / "classes.json").write_text(json.dumps({"classes": names}, indent=1) + "\n")
    (out / "packages.json").write_text(json.dumps(pk.versions, indent=1, sort_keys=True) + "\n")

    # ---- evaluation mixtures (test split only)
    ds = loaders.Dataset(out)
    for k in (1, 2, 3):
        loaders.write_eval_set(ds, out / "mixtures" / f"eval_{k}src", n=n_eval, n_sources=k,
                               seed=SEED + k, split="test")

    cov = coverage(rows, names)
    if report:
        rd = reports_dir or (HERE.parent / "reports")
        write_report(cov, rows, pk.versions, rd)
        contact_sheet(out, rows, names, rd / "dataset_contact_sheet.png")
    if update_classes:
        update_classes_json(classes_path, cov)
    return {"rows": rows, "coverage": cov}


# ------------------------------------------------------------------ coverage and reports

def coverage(rows: List[dict], names: List[str]) -> Dict[str, dict]:
    cov = {n: {"recordings": set(), "synthetic": set(), "clips": 0, "images": set(), "image_files": 0,
               "packages": set(), "splits": defaultdict(int)} for n in names}
    for r in rows:
        c = cov[r["class"]]
        c["packages"].add(r["package"])
        if r["kind"] == "audio":
            c["clips"] += 1
            (c["synthetic"] if int(r["synthetic"]) else c["recordings"]).add(r["original_id"])
            c["splits"]["a_" + r["split"]] += 1
        else:
            c["images"].add(r["original_id"])
            c["image_files"] += 1
            c["splits"]["i_" + r["split"]] += 1
    res = {}
    for n, c in cov.items():
        nrec = len(c["recordings"])
        nimg = len(c["images"])
        res[n] = {"recordings": nrec, "synthetic": len(c["synthetic"]), "clips": c["clips"],
                  "images": nimg, "image_files": c["image_files"], "packages": sorted(c["packages"]),
                  "splits": dict(c["splits"]),
                  "thin": nrec < 3 or nimg < 10}
    return res


FIXES = {
    "baby crying": "a real baby recording (none found in Debian beyond scratch's BabyCry)",
    "church bell ringing": "real church bell recordings (only scratch BellToll + GM tubular bells)",
    "telephone bell ringing": "real telephone ring recordings (one GCompris ring + GM render)",
    "vacuum cleaner cleaning floors": "more vacuum cleaner recordings and pictures (one of each)",
    "crow cawing": "more crow recordings (Tux Paint and qabcs only)",
    "fireworks banging": "more fireworks recordings (Tux Paint + SuperTuxKart only)",
    "singing choir": "real choir recordings (one ETW 'hallelujah' + GM choir renders)",
}


IMAGE_FIX = ("more licensed pictures of this class: the Debian picture sources searched so far "
             "(openclipart-png/-svg, Tux Paint stamps and templates, GCompris, qabcs, Scratch, pysiogame "
             "Art4Apps, 0 A.D. portraits, Noto/EmojiOne/OpenMoji/Twemoji/EmojiOne-1 emoji, Symbola, Font Awesome "
             "and Material Design Icons (mkdocs-material), icon themes (Papirus, Numix, Breeze, Mint-Y), JOSM, "
             "Songwrite, setBfree, vmpk, foo-yc20, gearhead2, lmemory; later also Stellarium sky-culture art, "
             "Cricket's logo, Sweet Home 3D furniture catalogs, openclipart-svg titles/keywords, KTuberling, Parley, "
             "Kanagram, KHangman, TuxType, Minuet, Memorize, GrandOrgue, Aeolus, Bristol, horgand, FontAwesomeFX "
             "icons525, GCompris' other activities, Numix app icons) hold no further distinct one")
IMAGE_FIXES: Dict[str, str] = {
    "playing electronic organ": IMAGE_FIX + " (no organ emoji exists; foo-yc20's, calf's and Bristol's organ "
                                "GUIs are control panels, not pictures of an organ; GrandOrgue's icon is piano keys; "
                                "Sweet Home 3D's catalogs have pianos only); photos or drawings of pipe, church "
                                "or Hammond organs from a new source would fix it",
    "playing harp": IMAGE_FIX + " (no harp emoji exists; Songwrite's lyre is not a harp)",
    "playing cello": IMAGE_FIX + " (no cello emoji exists)",
    "vacuum cleaner cleaning floors": IMAGE_FIX + " (two of the six are robot-vacuum icons; the Papirus/Numix "
                                      "'vacuum' icons are the Vacuum-IM logo, not a vacuum cleaner)",
    "crow cawing": IMAGE_FIX + " (the black-bird emoji U+1F426 U+200D U+2B1B is only in Noto here; "
                   "Crow Translate's icons are feathers; Stellarium's western/chinese Corvus is KStars' drawing, "
                   "its al-Sufi, Babylonian and Greek ravens are CC BY-ND and its Boorong crows are grey birds "
                   "not recognisable as crows)",
}


def write_report(cov: dict, rows: List[dict], versions: dict, rd: Path) -> None:
    rd.mkdir(parents=True, exist_ok=True)
    na = sum(1 for r in rows if r["kind"] == "audio")
    ni = sum(1 for r in rows if r["kind"] == "image")
    ok3 = sum(1 for c in cov.values() if c["recordings"] >= 3)
    lines = ["# Dataset coverage report", "",
             "Generated by `make dataset` (training/dataset/build.py). Recordings = distinct real",
             "originals (fluidsynth renders count one per GM program; espeak-ng is synthetic and",
             "not counted). Images = distinct original pictures (image files that are the same",
             "drawing in another size, colour or pose share a group in tables/images.tsv and count",
             "once; the file count is in brackets). Thin = fewer than 3 recordings or fewer than",
             "10 images.", "",
             f"- audio clips: {na}, image files: {ni} ({sum(c['images'] for c in cov.values())} distinct originals), "
             f"classes: {len(cov)}",
             f"- classes with >= 3 distinct recordings: {ok3} / {len(cov)}",
             f"- classes with >= 1 recording and >= 10 images: "
             f"{sum(1 for c in cov.values() if c['recordings'] >= 1 and c['images'] >= 10)} / {len(cov)}",
             "", "| class | recordings | clips | images | train/val/test audio | train/val/test images | thin |",
             "| --- | ---: | ---: | ---: | --- | --- | --- |"]
    for n, c in cov.items():
        s = c["splits"]
        lines.append(f"| {n} | {c['recordings']}" + (f" (+{c['synthetic']} synth)" if c["synthetic"] else "") +
                     f" | {c['clips']} | {c['images']}" + (f" ({c['image_files']})" if c["image_files"] != c["images"] else "") +
                     f" | {s.get('a_train', 0)}/{s.get('a_val', 0)}/{s.get('a_test', 0)}"
                     f" | {s.get('i_train', 0)}/{s.get('i_val', 0)}/{s.get('i_test', 0)} | {'thin' if c['thin'] else ''} |")
    thin = [n for n, c in cov.items() if c["thin"]]
    lines += ["", "## Thin classes and what would fix them", ""]
    for n in thin:
        c = cov[n]
        why = []
        if c["recordings"] < 3:
            why.append(f"{c['recordings']} recording(s)")
        if c["images"] < 10:
            why.append(f"{c['images']} image(s)")
        fix = FIXES.get(n) if c["recordings"] < 3 else None
        if c["images"] < 10:
            fix = (fix + "; " if fix else "") + IMAGE_FIXES.get(n, IMAGE_FIX)
        lines.append(f"- {n}: {', '.join(why)}. Fix: {fix}.")
    if not thin:
        lines.append("- none")
    lines += ["", "## Package versions used", ""] + [f"- {p} {v}" for p, v in sorted(versions.items())]
    (rd / "dataset.md").write_text("\n".join(lines) + "\n")


def contact_sheet(out: Path, rows: List[dict], names: List[str], dest: Path, per: int = 6) -> None:
    from PIL import Image, ImageDraw, ImageFont
    cell, label_w = 64, 230
    W = label_w + per * cell
    H = len(names) * cell
    sheet = Image.new("RGB", (W * 2, (H + 1) // 2 + cell // 2), (255, 255, 255))
    try:
        font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 13)
    except OSError:
        font = ImageFont.load_default()
    d = ImageDraw.Draw(sheet)
    by = defaultdict(list)
    for r in rows:
        if r["kind"] == "image":
            by[r["class"]].append(r)
    half = (len(names) + 1) // 2
    for i, n in enumerate(names):
        col, row = divmod(i, half)
        x0, y0 = col * W, row * cell
        d.text((x0 + 4, y0 + cell // 2 - 8), f"{n} ({len(by[n])})", fill=(0, 0, 0), font=font)
        pick = sorted(by[n], key=lambda r: h(r["id"]))[:per]
        for j, r in enumerate(pick):
            im = Image.open(out / r["path"]).convert("RGB").resize((cell - 2, cell - 2))
            sheet.paste(im, (x0 + label_w + j * cell, y0 + 1))
    dest.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(dest, format="PNG")


def update_classes_json(path: Path, cov: dict) -> None:
    """Set only "thin", "recordings" and "images" of each class; keep everything else."""
    d = json.loads(path.read_text())
    for c in d["classes"]:
        v = cov.get(c["name"])
        if v is None:
            continue
        c["recordings"] = v["recordings"]
        c["images"] = v["images"]
        c["thin"] = bool(v["thin"])
    path.write_text(json.dumps(d, indent=2, ensure_ascii=False) + "\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("data"))
    ap.add_argument("--cache", type=Path, default=Path("data/cache"))
    ap.add_argument("--classes", type=Path, default=Path("Assets/classes.json"))
    ap.add_argument("--fixtures", type=Path, default=None)
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--eval-mixtures", type=int, default=100)
    a = ap.parse_args(argv)
    r = build(a.out, a.cache, a.classes, a.fixtures, report=not a.no_report, n_eval=a.eval_mixtures)
    cov = r["coverage"]
    print(f"{sum(1 for x in r['rows'] if x['kind'] == 'audio')} clips, "
          f"{sum(1 for x in r['rows'] if x['kind'] == 'image')} images; "
          f"{sum(1 for c in cov.values() if c['recordings'] >= 3)}/{len(cov)} classes with >= 3 recordings; "
          f"thin: {', '.join(n for n, c in cov.items() if c['thin']) or 'none'}")


if __name__ == "__main__":
    main()

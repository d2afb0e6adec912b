"""Readers for the two binary container formats the dataset pulls sounds and images from.

* Qt resource files (``.rcc``, used by gcompris-qt-data), read from the published layout:
  magic ``qres``, big-endian u32 version, tree offset, data offset, names offset
  (version >= 3 adds a u32 "overall flags" word). Tree entries are 14 bytes (version 1)
  or 22 bytes (version >= 2, the extra 8 bytes are a last-modified time). Each entry
  starts with u32 name offset and u16 flags. Flag 2 = directory: u32 child count and u32
  index of the first child follow. Otherwise it is a file: u16 country, u16 language,
  u32 data offset. Flag 1 = zlib data prefixed by a 4-byte big-endian uncompressed size,
  flag 4 = zstd. A name is u16 length, u32 hash, then UTF-16BE characters; a data block
  is u32 size then the bytes.
* OpenTTD sample catalogues (``opensfx.cat``): a table of little-endian u32
  (offset, size) pairs, the first offset / 8 being the entry count (the high bit of the
  offset is a flag and is masked off). Each entry starts with a u8-length-prefixed,
  NUL-terminated name (in OpenSFX the name carries the title, author and license), then a
  RIFF/WAVE file of exactly the table's size (the size does not count the name).

Both readers raise :class:`FormatError` with a message naming the file and the offset
when the data is truncated or malformed.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Union

__all__ = ["FormatError", "RccEntry", "read_rcc", "CatEntry", "read_cat"]


class FormatError(ValueError):
    """Raised for a truncated or malformed container file."""


def _need(buf: bytes, off: int, n: int, what: str, src: str) -> None:
    if off < 0 or off + n > len(buf):
        raise FormatError(
            f"{src}: truncated or corrupt: {what} needs bytes {off}..{off + n} "
            f"but the file has {len(buf)} bytes")


# ---------------------------------------------------------------- Qt .rcc

@dataclass(frozen=True)
class RccEntry:
    path: str          # "/"-joined path inside the resource, no leading slash
    data: bytes        # uncompressed payload
    compression: str   # "none" | "zlib" | "zstd"


def _zstd_decompress(data: bytes, src: str) -> bytes:
    try:
        import zstandard  # type: ignore
    except ImportError as e:  # pragma: no cover - depends on environment
        raise FormatError(f"{src}: entry is zstd-compressed and the 'zstandard' module "
                          "is not installed") from e
    return zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 30)


def read_rcc(source: Union[str, Path, bytes], name: str = "") -> List[RccEntry]:
    """Return every file stored in a Qt binary resource (.rcc) as RccEntry, in tree order."""
    if isinstance(source, (str, Path)):
        src = name or str(source)
        buf = Path(source).read_bytes()
    else:
        src = name or "<rcc bytes>"
        buf = bytes(source)
    _need(buf, 0, 20, "header", src)
    if buf[:4] != b"qres":
        raise FormatError(f"{src}: not a Qt resource file (magic {buf[:4]!r}, expected b'qres')")
    version, tree_off, data_off, names_off = struct.unpack_from(">IIII", buf, 4)
    if version not in (1, 2, 3):
        raise FormatError(f"{src}: unsupported rcc version {version}")
    entry_size = 14 if version == 1 else 22

    def name_at(off: int) -> str:
        p = names_off + off
        _need(buf, p, 6, "name header", src)
        (n,) = struct.unpack_from(">H", buf, p)
        _need(buf, p + 6, 2 * n, "name characters", src)
        return buf[p + 6:p + 6 + 2 * n].decode("utf-16-be")

    def entry(i: int):
        p = tree_off + i * entry_size
        _need(buf, p, 14, f"tree entry {i}", src)
        name_off, flags = struct.unpack_from(">IH", buf, p)
        return p, name_off, flags

    out: List[RccEntry] = []
    seen = set()

    def walk(i: int, prefix: str, depth: int) -> None:
        if depth > 64 or i in seen:
            raise FormatError(f"{src}: tree is cyclic or too deep at entry {i}")
        seen.add(i)
        p, name_off, flags = entry(i)
        nm = "" if i == 0 else name_at(name_off)
        path = f"{prefix}/{nm}" if prefix else nm
        if flags & 2:
            count, first = struct.unpack_from(">II", buf, p + 6)
            for c in range(first, first + count):
                walk(c, path, depth + 1)
            return
        (doff,) = struct.unpack_from(">I", buf, p + 10)
        q = data_off + doff
        _need(buf, q, 4, f"data size of {path}", src)
        (size,) = struct.unpack_from(">I", buf, q)
        _need(buf, q + 4, size, f"data of {path}", src)
        raw = buf[q + 4:q + 4 + size]
        if flags & 1:
            _need(raw, 0, 4, f"zlib prefix of {path}", src)
            try:
                data = zlib.decompress(raw[4:])
            except zlib.error as e:
                raise FormatError(f"{src}: bad zlib data in {path}: {e}") from e
            comp = "zlib"
        elif flags & 4:
            data, comp = _zstd_decompress(raw, src), "zstd"
        else:
            data, comp = raw, "none"
        out.append(RccEntry(path, data, comp))

    walk(0, "", 0)
    return out


# ---------------------------------------------------------------- OpenTTD .cat

@dataclass(frozen=True)
class CatEntry:
    index: int
    name: str      # the text stored before the WAVE data (title, author, license)
    wav: bytes     # a complete RIFF/WAVE file


def read_cat(source: Union[str, Path, bytes], name: str = "") -> List[CatEntry]:
    """Return every sample of an OpenTTD sound catalogue (.cat)."""
    if isinstance(source, (str, Path)):
        src = name or str(source)
        buf = Path(source).read_bytes()
    else:
        src = name or "<cat bytes>"
        buf = bytes(source)
    _need(buf, 0, 8, "first table entry", src)
    first = struct.unpack_from("<I", buf, 0)[0] & 0x7FFFFFFF
    if first == 0 or first % 8:
        raise FormatError(f"{src}: not a sound catalogue (first offset {first} is not a "
                          "positive multiple of 8)")
    count = first // 8
    _need(buf, 0, first, f"offset table of {count} entries", src)
    out: List[CatEntry] = []
    for i in range(count):
        off, size = struct.unpack_from("<II", buf, 8 * i)
        off &= 0x7FFFFFFF
        _need(buf, off, 1, f"name length of sample {i}", src)
        n = buf[off]
        _need(buf, off + 1, n, f"name of sample {i}", src)
        nm = buf[off + 1:off + 1 + n].split(b"\0", 1)[0].decode("latin-1")
        _need(buf, off + 1 + n, size, f"WAVE data of sample {i} ({nm!r})", src)
        wav = _clean_wave(buf[off + 1 + n:off + 1 + n + size], f"{src}: sample {i} ({nm!r})")
        out.append(CatEntry(i, nm, wav))
    return out


def _clean_wave(wav: bytes, what: str) -> bytes:
    """Parse a RIFF/WAVE blob and return a canonical WAVE file (fmt + data chunks).

    A data chunk that claims more bytes than the entry holds is clamped to what is there
    (whole frames only); other chunks (LIST, cue...) are dropped."""
    if len(wav) < 12 or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise FormatError(f"{what} is not RIFF/WAVE data")
    p, fmt, data = 12, None, None
    while p + 8 <= len(wav):
        cid, clen = wav[p:p + 4], struct.unpack_from("<I", wav, p + 4)[0]
        body = wav[p + 8:p + 8 + clen]
        if cid == b"fmt ":
            fmt = body[:16]
        elif cid == b"data":
            data = body
            break
        p += 8 + clen + (clen & 1)
    if fmt is None or len(fmt) < 16 or data is None:
        raise FormatError(f"{what}: WAVE without fmt or data chunk")
    block_align = struct.unpack_from("<H", fmt, 12)[0] or 1
    data = data[:len(data) - len(data) % block_align]
    return (b"RIFF" + struct.pack("<I", 4 + 24 + 8 + len(data)) + b"WAVE" + b"fmt " +
            struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data)


def rcc_index(entries: List[RccEntry]) -> Dict[str, RccEntry]:
    return {e.path: e for e in entries}

"""Download Debian packages with `apt-get download` and extract only what is needed.

Downloads are cached in <cache>/debs, extractions in <cache>/x/<package>; a stamp file
records which path patterns were extracted so that a later call with new patterns
extracts again. Reserved packages (kept for independent evaluation) are refused.
"""
from __future__ import annotations

import fnmatch
import json
import os
import subprocess
from pathlib import Path
from typing import Iterable, Optional

RESERVED = {"widelands-data", "megaglest-data", "lincity-ng", "lincity-ng-data",
            "wesnoth-1.16-data", "musescore-general-soundfont",
            "musescore-general-soundfont-small"}


class PackageError(RuntimeError):
    pass


def _check(pkg: str) -> None:
    if pkg in RESERVED or pkg.startswith("wesnoth") or pkg.startswith("musescore-general"):
        raise PackageError(f"{pkg} is reserved for independent evaluation and must not be used")


def deb_path(pkg: str, cache: Path) -> Optional[Path]:
    c = sorted((cache / "debs").glob(f"{pkg}_*.deb"))
    return c[-1] if c else None


def fetch(pkg: str, cache: Path) -> Path:
    """Return the cached .deb of pkg, downloading it with apt-get download if missing."""
    _check(pkg)
    d = cache / "debs"
    d.mkdir(parents=True, exist_ok=True)
    p = deb_path(pkg, cache)
    if p is not None:
        return p
    r = subprocess.run(["apt-get", "download", pkg], cwd=d, capture_output=True, text=True)
    p = deb_path(pkg, cache)
    if r.returncode != 0 or p is None:
        raise PackageError(f"apt-get download {pkg} failed ({r.stderr.strip()[:300]}); "
                           "run `apt-get update` and check the network to the Debian archive")
    return p


def version(deb: Path) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True,
                          text=True, check=True).stdout.strip()


def _extract_link_targets(deb: Path, root: Path, rounds: int = 4) -> None:
    """A partial extraction keeps symbolic links whose targets lie outside the patterns (packages
    such as openclipart-png link one drawing into several categories): extract those targets too,
    following links to links for a few rounds. Targets are looked up inside `root` (an absolute
    link names a path of the package, never of this machine); links to what the package does not
    hold stay dangling. Without this a fresh machine builds a smaller dataset than a machine whose
    cache once held the whole package."""
    base = root.resolve()
    tried: set = set()
    for _ in range(rounds):
        want = set()
        for link in root.rglob("*"):
            if not link.is_symlink():
                continue
            t = os.readlink(link)
            target = base / t.lstrip("/") if os.path.isabs(t) else (link.parent.resolve() / t)
            target = Path(os.path.normpath(target))
            if target.exists() or target.is_symlink():
                continue
            try:
                member = "./" + str(target.relative_to(base))
            except ValueError:
                continue   # points outside the package: nothing to extract
            if member not in tried:
                want.add(member)
        if not want:
            return
        tried |= want
        p1 = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        p2 = subprocess.run(["tar", "-x", "-C", str(root)] + sorted(want), stdin=p1.stdout, capture_output=True, text=True)
        p1.stdout.close()
        p1.wait()
        errors = [l for l in p2.stderr.splitlines() if l.strip() and "Not found in archive" not in l
                  and "Exiting with failure status" not in l]
        if p1.returncode != 0 or errors:
            raise PackageError(f"extracting link targets of {deb.name} failed: {' '.join(errors)[:300]}")


def extract(pkg: str, cache: Path, patterns: Optional[Iterable[str]] = None) -> Path:
    """Extract pkg (only members matching the tar wildcards `patterns`, all when None) into
    <cache>/x/<pkg> and return that folder. Idempotent."""
    deb = fetch(pkg, cache)
    pats = sorted(patterns) if patterns else []
    root = cache / "x" / pkg
    done_file = root / ".extracted.json"
    done = json.loads(done_file.read_text()) if done_file.exists() else None
    if done is not None and done.get("deb") == deb.name:
        old = done.get("patterns")
        if old == [] or (pats and all(any(fnmatch.fnmatch(p, q) for q in old) for p in pats)):
            if pats:
                _extract_link_targets(deb, root)   # a cache made before links were followed
            return root   # everything asked for was extracted before
    root.mkdir(parents=True, exist_ok=True)
    tar_cmd = ["tar", "-x", "-C", str(root)]
    if pats:
        tar_cmd += ["--wildcards"] + pats  # members are named "./usr/..."
    p1 = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    p2 = subprocess.run(tar_cmd, stdin=p1.stdout, capture_output=True, text=True)
    p1.stdout.close()
    p1.wait()
    if p1.returncode != 0 or (p2.returncode != 0 and "Not found in archive" not in p2.stderr):
        raise PackageError(f"extracting {deb.name} failed: {p2.stderr.strip()[:300]}")
    if pats:
        _extract_link_targets(deb, root)
    merged = [] if not pats or (done and done.get("patterns") == []) else sorted(
        set(pats) | set((done or {}).get("patterns") or []) if done and done.get("deb") == deb.name else set(pats))
    done_file.write_text(json.dumps({"deb": deb.name, "patterns": merged}))
    return root

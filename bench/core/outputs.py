"""Where a command may write its output files (`leaderboard --output`, `plot --out`, `estimate --json`).

Records are written by `bench run` / `bench eval` only, so an output path is refused when it lies inside
a record folder (one holding config.json) or inside a results folder the command is reading (a board
written into the results it ranks would be read back as a damaged record, or replace one of its files).
An existing file is replaced only when this project wrote it and nobody changed it since (its SHA-256 is
remembered in `$XDG_CACHE_HOME/regbench/outputs.json`), or with `--force`: an unrelated file of the same
name is never lost without a word. Writes are atomic (`store.atomic_write_bytes`).
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from bench.core import store

MAX_REMEMBERED = 2000  # entries kept in the registry of written outputs


class OutputRefused(ValueError):
    """An output path that would clobber data (a one-line error of the CLI)."""


def _registry_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "regbench" / "outputs.json"


def _digest(path: Path) -> str | None:
    try:
        return store.sha256_file(path)
    except OSError:
        return None


def _registry() -> dict:
    try:
        data = json.loads(_registry_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def written_by_us(path: Path) -> bool:
    """`path` holds exactly what a regbench command last wrote there."""
    path = Path(path).resolve()
    want = _registry().get(str(path))
    return want is not None and _digest(path) == want


def remember(paths) -> None:
    """Note the current contents of `paths` as ours (best effort: a read-only cache only costs a --force later)."""
    reg = _registry()
    for p in paths:
        p = Path(p).resolve()
        d = _digest(p)
        if d is not None:
            reg.pop(str(p), None)
            reg[str(p)] = d
    if len(reg) > MAX_REMEMBERED:
        reg = dict(list(reg.items())[-MAX_REMEMBERED:])
    with contextlib.suppress(OSError):
        store.atomic_write_bytes(_registry_path(), json.dumps(reg, indent=0).encode())


def enclosing_record(path: Path) -> Path | None:
    """The record folder (one with a config.json) that `path` is in or is, if any."""
    p = Path(path).expanduser().resolve()
    for d in [p, *p.parents]:
        with contextlib.suppress(OSError):
            if (d / "config.json").is_file():
                return d
    return None


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def check_output(path, *, option: str, reading=(), force: bool = False, folder: bool = False) -> Path:
    """The resolved output path, or `OutputRefused` in one line: inside a record, inside a results folder
    being read, a folder where a file is wanted (or the reverse), an existing file not written by us
    (without `force`)."""
    raw = str(path)
    p = Path(path).expanduser().resolve()
    rec = enclosing_record(p)
    if rec is not None:
        raise OutputRefused(f"refusing {option} {raw}: it is inside the record {rec} (records are written by "
                            "`bench run` and `bench eval` only); write it elsewhere")
    for root in reading:
        r = Path(root).expanduser().resolve()
        if _inside(p, r):
            raise OutputRefused(f"refusing {option} {raw}: it is inside the results folder {root} being read; "
                                "write it elsewhere")
    if folder:
        if p.exists() and not p.is_dir():
            raise OutputRefused(f"{option} {raw} exists and is not a folder")
        return p
    if p.is_dir():
        raise OutputRefused(f"{option} {raw} is a folder; give a file name")
    if p.exists() and not force and not written_by_us(p):
        raise OutputRefused(f"refusing to replace {raw} ({option}): an existing file this command did not write; "
                            "add --force to replace it")
    return p


def write_output(path, data: bytes) -> Path:
    """Write `data` atomically to `path` (already checked) and remember it as ours."""
    p = Path(path)
    store.atomic_write_bytes(p, data)
    remember([p])
    return p


def check_folder_files(out_dir: Path, names, option: str, force: bool = False) -> None:
    """Files `names` about to be written into `out_dir`: refuse replacing any that is not ours (without force)."""
    if force:
        return
    theirs = [n for n in names if (Path(out_dir) / n).exists() and not written_by_us(Path(out_dir) / n)]
    if theirs:
        raise OutputRefused(f"refusing to replace {len(theirs)} existing file(s) in {out_dir} ({option}) that this "
                            f"command did not write (e.g. {theirs[0]}); add --force to replace them")

"""Robust record loading: every evaluated, successful record under the results roots, each once; a damaged
record is skipped with a warning naming its file (an error when strict), a failed one is never ranked, and
copies of one record are counted once.

Kept apart from `leaderboard.aggregate` (the table and its statistics): what counts as a readable record, and
how the board warns about the others (`loading_options`), is the same for every reader of the records
(board, plots, the Python API and the CLI).
"""
from __future__ import annotations

import contextlib
import re
import sys
from pathlib import Path
from typing import Iterable

from bench.core import store
from bench.core.records import Record

from .flatten import record_meta, record_metrics


_LOADING = {"strict": False, "warned": None, "warn": None}


@contextlib.contextmanager
def loading_options(strict: bool = False, warn=None):
    """Within the block, record loading is strict (a damaged record is an error) or not (it is
    skipped with a warning), and each warning is emitted once (the plots read the records
    several times). `warn(message)` defaults to a `warning: ...` line on stderr."""
    old = dict(_LOADING)
    _LOADING.update(strict=bool(strict), warned=set(), warn=warn)
    try:
        yield
    finally:
        _LOADING.clear()
        _LOADING.update(old)


def _warn(msg: str) -> None:
    seen = _LOADING.get("warned")
    if seen is not None:
        if msg in seen:
            return
        seen.add(msg)
    fn = _LOADING.get("warn")
    if fn is not None:
        fn(msg)
    else:
        print(f"warning: {msg}", file=sys.stderr)


def _record_key(run_dir: Path, rec: dict) -> tuple:
    """A record is one (config hash, seed): copies of it (overlapping roots, a copied folder) are one."""
    cfg = rec.get("config") or {}
    return (str(rec.get("hash") or run_dir.name), repr(cfg.get("seed")), str(rec.get("external") or ""))


_HEADER_DICTS = ("config", "model", "budget", "regularizer", "data")
_HASH_RE = re.compile(r"[0-9a-f]{12}")


def _check_shape(record: Record, rec: dict, metrics: dict) -> None:
    """A record the board can read: the header's parts and the metrics' entries are JSON objects, every value
    the board takes reads (`record_meta`, `record_metrics` run once here), and a header written by this
    project (a 12-hex `hash`) still matches its config (`Record.hash_problem`). Else `DamagedRecord`."""
    cfg_path, met_path = record.path / "config.json", record.path / "metrics.json"
    for k in _HEADER_DICTS:
        if k in rec and rec[k] is not None and not isinstance(rec[k], dict):
            raise store.DamagedRecord(cfg_path, f"{k!r} is a {type(rec[k]).__name__}, not a JSON object")
    for k in ("train", "suite"):
        if k in metrics and metrics[k] is not None and not isinstance(metrics[k], dict):
            raise store.DamagedRecord(met_path, f"{k!r} is a {type(metrics[k]).__name__}, not a JSON object")
    bad = [t for t, e in (metrics.get("suite") or {}).items() if e is not None and not isinstance(e, dict)]
    if bad:
        raise store.DamagedRecord(met_path, f"suite entry {bad[0]!r} is not a JSON object")
    if isinstance(rec.get("config"), dict):
        from bench.core.config import RunConfig, validate
        try:
            validate(RunConfig.from_dict(rec["config"]))
        except (TypeError, ValueError) as e:
            raise store.DamagedRecord(cfg_path, " ".join(str(e).split())[:200]) from None
    try:
        record_meta(record.path, rec, metrics)
    except (AttributeError, TypeError, ValueError, KeyError) as e:
        raise store.DamagedRecord(cfg_path, f"unreadable ({type(e).__name__}: {e})") from None
    try:
        record_metrics(metrics)
    except (AttributeError, TypeError, ValueError, KeyError) as e:
        raise store.DamagedRecord(met_path, f"unreadable ({type(e).__name__}: {e})") from None
    if _HASH_RE.fullmatch(str(rec.get("hash") or "")):
        why = record.hash_problem()
        if why is not None:
            raise store.DamagedRecord(cfg_path, f"does not match the record's hash: {why} (edited after training?)")


def iter_records(roots, strict: bool | None = None) -> Iterable[tuple[Path, dict, dict]]:
    """Every evaluated, successful record under the roots, each (config hash, seed) once.

    A damaged config.json/metrics.json is skipped with a warning naming the file (an error when
    `strict`); a failed record (non-finite training, ...) is never ranked; duplicates are counted
    once (the copy with the most suite results is kept) with a warning naming the others."""
    strict = _LOADING["strict"] if strict is None else strict
    damaged, failed = [], []
    found: dict[tuple, list] = {}
    seen_dirs = set()
    for record in Record.find(*roots):
        run_dir = record.path
        real = run_dir.resolve()
        if real in seen_dirs:  # the same folder reached through two roots
            _warn(f"record {run_dir} is reached through more than one results root; counted once")
            continue
        seen_dirs.add(real)
        try:
            rec = record.header()
            if not isinstance(rec, dict):
                raise store.DamagedRecord(run_dir / "config.json", "not a JSON object")
            metrics = record.metrics()
            if not isinstance(metrics, dict):
                raise store.DamagedRecord(run_dir / "metrics.json", "not a JSON object")
            _check_shape(record, rec, metrics)
        except store.DamagedRecord as e:
            if strict:
                raise store.DamagedRecord(e.path, f"{e.detail} (--strict; without it the record is skipped)") from None
            damaged.append(e.path)
            _warn(f"skipped damaged record file {e.path}: {e.detail}")
            continue
        train = metrics.get("train") or {}
        if isinstance(train, dict) and (train.get("failed") or train.get("done") is False):
            failed.append(run_dir)
            why = " ".join(str(train.get("error") or "training did not finish").split())[:200]
            _warn(f"skipped failed record {run_dir}: {why}")
            continue
        if not metrics.get("suite"):
            # trained but never evaluated (e.g. a transfer surrogate, or a run still in its suite):
            # its training costs alone would inflate the n of its group's cost columns
            continue
        found.setdefault(_record_key(run_dir, rec), []).append((run_dir, rec, metrics))
    if damaged:
        _warn(f"{len(damaged)} damaged record(s) skipped (--strict makes this an error)")
    for key, items in found.items():
        if len(items) > 1:
            items.sort(key=lambda x: -len(x[2].get("suite") or {}))  # stable: the first of equals stays
            others = ", ".join(str(x[0]) for x in items[1:])
            _warn(f"{len(items)} copies of record {key[0]} (seed {key[1]}) counted once: using {items[0][0]}, "
                  f"ignoring {others}")
        yield items[0]

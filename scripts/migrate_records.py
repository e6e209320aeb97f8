#!/usr/bin/env python3
"""Removes the machine paths of existing records (issue 21), in the form new records have:
  * config.json: `config.out`, an absolute path of the machine that trained them -> ".."
    (`bench.core.records.RECORD_OUT`); nothing else in config.json changes (same keys, same formatting);
  * metrics.json: the transfer tests' `details.surrogate.run_dir`, an absolute path -> the surrogate's folder
    relative to the record's ("../<name>", when that folder sits beside the record), with
    `run_dir_relative_to` as new records write it;
  * reproduce_invocations.json: the `results` path of each entry (the file lives in that folder) is dropped.
Idempotent: what is already relative is left alone, so it is safe to run after every merge of records.

    python scripts/migrate_records.py [FOLDER ...]      # default: docs/reproduction_records
    python scripts/migrate_records.py --check FOLDER    # list what would change; exit 1 if anything would

`out` is outside the config hash and the report reads neither path, so record names, hashes and the rendered
report stay as they are.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.core import store  # noqa: E402
from bench.core.records import CONFIG, portable_header  # noqa: E402


def _dump(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"  # the writer's format (store.atomic_write_json)


class NotMigrated(ValueError):
    """A config.json this script leaves alone (the message names it and says why)."""


def _rewrite(path: Path, change, check: bool) -> bool:
    """Apply `change(obj) -> new obj or None (nothing to change)` to one JSON file in the writer's format."""
    try:
        text = path.read_text(encoding="utf-8")
        obj = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NotMigrated(f"{path}: cannot be read as JSON ({e})") from None
    same_format = _dump(obj) == text
    new = change(obj)  # may change obj in place
    if new is None:
        return False
    if not same_format:
        raise NotMigrated(f"{path}: not in the format RegBench writes (rewriting it would change more than its "
                          "machine paths); left as it is")
    if not check:
        store.atomic_write_bytes(path, _dump(new).encode())
    return True


def migrate_record(run_dir: Path, check: bool = False) -> bool:
    """Makes one record's config.out relative; True when it changed (or, with `check`, would change).
    A config.json that does not parse, or that is not in the writer's own format (so that rewriting it would
    change more than `out`), raises `NotMigrated` naming it and is left as it is. The file is replaced
    atomically (config.json is written once, when a run starts, so no lock is needed)."""
    def change(header):
        new = portable_header(header)
        return None if new is header else new
    return _rewrite(Path(run_dir) / CONFIG, change, check)


def _relative_surrogates(run_dir: Path):
    def change(metrics):
        changed = False
        for entry in (metrics.get("suite") or {}).values() if isinstance(metrics, dict) else []:
            sur = (((entry or {}).get("result") or {}).get("details") or {}).get("surrogate")
            if not isinstance(sur, dict) or not isinstance(sur.get("run_dir"), str):
                continue
            p = Path(sur["run_dir"])
            if not p.is_absolute():
                continue
            if not (run_dir.parent / p.name).is_dir():
                raise NotMigrated(f"{run_dir / 'metrics.json'}: its surrogate {p} is not beside the record; "
                                  "left as it is")
            sur["run_dir"], sur["run_dir_relative_to"] = f"../{p.name}", "the evaluated record's folder"
            changed = True
        return metrics if changed else None
    return change


def _no_results_path(history):
    if not isinstance(history, list) or not any(isinstance(h, dict) and "results" in h for h in history):
        return None
    return [{k: v for k, v in h.items() if k != "results"} if isinstance(h, dict) else h for h in history]


def migrate_folder(run_dir: Path, check: bool = False) -> bool:
    """A record's config.json (`migrate_record`) and metrics.json; True when anything changed (would change)."""
    a = migrate_record(run_dir, check)
    m = Path(run_dir) / "metrics.json"
    b = m.is_file() and _rewrite(m, _relative_surrogates(Path(run_dir)), check)
    return bool(a or b)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="*", default=[str(ROOT / "docs" / "reproduction_records")],
                    help="results folders (searched recursively for records; default: docs/reproduction_records)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 when a record would change")
    args = ap.parse_args(argv)
    missing = [f for f in args.folders if not Path(f).is_dir()]
    if missing:
        print(f"error: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    changed, failed, runs = [], [], store.find_records(*args.folders)
    for run_dir in runs:
        try:
            if migrate_folder(run_dir, check=args.check):
                changed.append(run_dir)
        except NotMigrated as e:
            failed.append(str(e))
    for folder in args.folders:
        hist = Path(folder) / "reproduce_invocations.json"
        try:
            if hist.is_file() and _rewrite(hist, _no_results_path, args.check):
                changed.append(hist)
        except NotMigrated as e:
            failed.append(str(e))
    verb = "would migrate" if args.check else "migrated"
    n_hist = sum(1 for c in changed if c.name == "reproduce_invocations.json")
    print(f"{verb} {len(changed) - n_hist} of {len(runs)} records and {n_hist} invocation histories (machine "
          "paths -> relative); the others had none")
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    return 1 if failed or (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())

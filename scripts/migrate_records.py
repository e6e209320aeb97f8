#!/usr/bin/env python3
"""Rewrites the `config.out` of existing records from an absolute path of the machine that trained them to
the record-relative form new records have (`bench.core.records.RECORD_OUT`, ".."); nothing else in
config.json changes (same keys, same formatting, byte for byte), and no other file is touched.
Idempotent: an already relative record is left alone, so it is safe to run after every merge of records.

    python scripts/migrate_records.py [FOLDER ...]      # default: docs/reproduction_records
    python scripts/migrate_records.py --check FOLDER    # list what would change; exit 1 if anything would

`out` is outside the config hash, so record names, hashes and the rendered report stay as they are.
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


def migrate_record(run_dir: Path, check: bool = False) -> bool:
    """Makes one record's config.out relative; True when it changed (or, with `check`, would change).
    A config.json that does not parse, or that is not in the writer's own format (so that rewriting it would
    change more than `out`), raises `NotMigrated` naming it and is left as it is. The file is replaced
    atomically (config.json is written once, when a run starts, so no lock is needed)."""
    path = Path(run_dir) / CONFIG
    try:
        text = path.read_text(encoding="utf-8")
        header = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NotMigrated(f"{path}: cannot be read as JSON ({e})") from None
    new = portable_header(header)
    if new is header:
        return False
    if _dump(header) != text:
        raise NotMigrated(f"{path}: not in the format RegBench writes (rewriting it would change more than "
                          "config.out); left as it is")
    if not check:
        store.atomic_write_bytes(path, _dump(new).encode())
    return True


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
            if migrate_record(run_dir, check=args.check):
                changed.append(run_dir)
        except NotMigrated as e:
            failed.append(str(e))
    verb = "would migrate" if args.check else "migrated"
    print(f"{verb} {len(changed)} of {len(runs)} records (config.out -> relative); "
          f"{len(runs) - len(changed) - len(failed)} already relative")
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    return 1 if failed or (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())

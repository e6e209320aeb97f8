#!/usr/bin/env python3
"""Regenerate leaderboard/data/robustbench_cifar10.csv from RobustBench's published `model_info/` files.

    python scripts/refresh_robustbench_rows.py PATH_TO_ROBUSTBENCH_CLONE [--commit SHA] [--out FILE]

PATH is a local clone (or snapshot) of https://github.com/RobustBench/robustbench; with a git clone the
files are read at `--commit` (default HEAD) through `git show`, so the commit recorded in every row is the
one the numbers came from. Without git (a plain folder) pass --commit yourself. Rows: CIFAR-10 L-inf, L2
and corruptions, one per model_info/cifar10/<threat>/<name>.json, in percent as published, with
  * `robust_acc`: the value RobustBench ranks by, i.e. `robustbench.utils.ACC_FIELDS` read as
    `robustbench/leaderboard/template.py` does: for Linf/L2 the field `external` (best known robust
    accuracy, from a stronger attack than AutoAttack) when the file has it, else `autoattack_acc`; for
    corruptions `corruptions_acc`. `robust_metric` names the field the value came from;
  * `autoattack_acc` (AutoAttack standard alone), `external`, `unreliable` (RobustBench's "AA eval.
    potentially unreliable": True/False, empty when the file does not say) and `footnote`, kept as
    published so the board can show them.
Nothing is downloaded.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

THREATS = ("Linf", "L2", "corruptions")
COLUMNS = ["dataset", "threat_model", "name", "paper", "venue", "architecture", "additional_data", "eps",
           "clean_acc", "robust_acc", "robust_metric", "autoattack_acc", "external", "unreliable", "footnote", "link",
           "source_file", "commit"]
# robustbench.utils.ACC_FIELDS at 78fcc9e4 (the ranking field, or the fields tried in order)
ACC_FIELDS = {"Linf": ("external", "autoattack_acc"), "L2": ("external", "autoattack_acc"),
              "corruptions": ("corruptions_acc",)}
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "leaderboard" / "data" / "robustbench_cifar10.csv"


def _git(repo: Path, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def _pct(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def read_rows(repo: Path, commit: str | None = None, dataset: str = "cifar10") -> list[dict]:
    repo = Path(repo)
    is_git = (repo / ".git").exists() or (repo / "HEAD").is_file()
    if is_git:
        commit = _git(repo, "rev-parse", commit or "HEAD").strip()
    elif not commit:
        raise SystemExit("not a git clone: pass --commit SHA (the commit the snapshot was taken at)")
    rows = []
    for threat in THREATS:
        folder = f"model_info/{dataset}/{threat}"
        if is_git:
            names = [n for n in _git(repo, "ls-tree", "--name-only", commit, folder + "/").split() if n.endswith(".json")]
            texts = {n: _git(repo, "show", f"{commit}:{n}") for n in names}
        else:
            texts = {f"{folder}/{p.name}": p.read_text() for p in sorted((repo / folder).glob("*.json"))}
        for path, text in sorted(texts.items()):
            try:
                info = json.loads(text)
            except ValueError as e:
                raise SystemExit(f"{path} at {commit} is not valid JSON: {e}") from None
            # robustbench/leaderboard/template.py get_key: the first field of ACC_FIELDS the file has
            key = next(k for k in ACC_FIELDS[threat] if k in info or k == ACC_FIELDS[threat][-1])
            unreliable = info.get("unreliable")
            rows.append({"dataset": dataset, "threat_model": threat, "name": Path(path).stem,
                         "paper": " ".join(str(info.get("name", "")).split()), "venue": info.get("venue", ""),
                         "architecture": info.get("architecture", ""),
                         "additional_data": bool(info.get("additional_data", False)),
                         "eps": info.get("eps") or "", "clean_acc": _pct(info.get("clean_acc")),
                         "robust_acc": _pct(info.get(key)), "robust_metric": key,
                         "autoattack_acc": _pct(info.get("autoattack_acc")), "external": _pct(info.get("external")),
                         "unreliable": "" if unreliable is None else bool(unreliable),
                         "footnote": " ".join(str(info.get("footnote") or "").split()), "link": info.get("link", ""),
                         "source_file": path, "commit": commit})
    return rows


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo", type=Path, help="local clone/snapshot of RobustBench/robustbench")
    ap.add_argument("--commit", default=None, help="commit to read (default: HEAD of the clone)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output CSV (default: {DEFAULT_OUT})")
    a = ap.parse_args(argv)
    rows = read_rows(a.repo, a.commit)
    if not rows:
        print(f"no model_info/cifar10 files found in {a.repo}", file=sys.stderr)
        return 1
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(to_csv(rows))
    counts = {t: sum(r["threat_model"] == t for r in rows) for t in THREATS}
    print(f"wrote {a.out}: {len(rows)} rows ({', '.join(f'{t} {n}' for t, n in counts.items())}) "
          f"at commit {rows[0]['commit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

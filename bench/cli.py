"""`python -m bench ...`: the command line.

Subcommands live next to what they drive; each module listed in `COMMAND_MODULES` exposes
`add_parser(subparsers)` which registers its subcommand(s) with a `func(args) -> int`.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback

COMMAND_MODULES = ["bench.commands", "attacks.cli", "leaderboard.cli", "bench.sweep", "bench.estimate",
                   "bench.reproduce", "regularizers.analysis"]


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description="RegBench: benchmark robustness regularizers.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).add_parser(sub)
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, KeyError, ImportError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"error: {msg}", file=sys.stderr)
        return 2

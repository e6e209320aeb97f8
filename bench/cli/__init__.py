"""`python -m bench ...`: the command line.

The parser is built without importing torch, numpy, scipy or pandas, so `--help` answers at once:
every function in `PARSERS` lives in a module that imports only the standard library at load time,
and registers its subcommand(s) with a `func(args) -> int` that does its heavy imports when it runs
(`bench.cli.commands.lazy("bench.cli.module:function")`). The command functions parse and call
`bench.app` (the Python API, `bench.app.api`, for run / evaluate / sweep / leaderboard). Names offered
in help texts come from `bench.core.names` (checked against the registries by the tests).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

# (module, function) in the order the subcommands are listed by --help
PARSERS = [("bench.cli.commands", "add_parser"),              # run, list
           ("bench.cli.commands", "add_eval_parser"),         # eval        (bench.cli.evaluate)
           ("bench.cli.commands", "add_leaderboard_parsers"),  # leaderboard, plot (bench.cli.leaderboard)
           ("bench.cli.sweep", "add_parser"),                 # sweep, demo
           ("bench.cli.commands", "add_estimate_parser"),     # estimate
           ("bench.cli.reproduce", "add_parser"),             # reproduce
           ("bench.cli.commands", "add_similarity_parser")]   # similarity  (bench.cli.similarity)

EPILOG = """first steps:
  python -m bench list                          what is installed (regularizers, presets, suites, ...)
  python -m bench run -r pixel_sim              one run with the default preset (quick: minutes on a CPU)
  python -m bench demo                          4 regularizers x 3 seeds, leaderboard and plots
  python -m bench COMMAND --help                the options of one command"""


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    from bench import __version__
    p = argparse.ArgumentParser(prog="python -m bench", description="RegBench: benchmark robustness regularizers.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"regbench {__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True
    for mod, fn in PARSERS:
        getattr(importlib.import_module(mod), fn)(sub)
    return p


def _stdout_gone() -> int:
    """The reader of our stdout went away (`bench list | head`): no traceback, the usual 141 exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
    except (OSError, ValueError):
        pass
    return 141


def one_line(msg) -> str:
    """An error message as one terminal line: whitespace runs (newlines too) become one space and
    control characters (ESC, BEL, ...) are dropped, so a name cannot drive the terminal."""
    text = " ".join(str(msg).split())
    return "".join(ch for ch in text if ch.isprintable())


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv  # the command line as given (`bench sweep --train-only` prints the one that evaluates)
    real_stdout = sys.stdout
    sys.stdout = _GuardedStdout(real_stdout)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except StdoutError as e:  # stdout on a full device (`> /dev/full`): one line, not the interpreter's traceback
        sys.stdout = real_stdout
        _stdout_gone()
        print(f"error: cannot write to standard output: {e.strerror or e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return _stdout_gone()
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", None)  # bench.app.launcher_base.Terminated: SIGTERM/SIGINT during a sweep
        print(getattr(e, "message", None) or "interrupted; re-run the same command to resume", file=sys.stderr)
        return 128 + int(signum or 2)
    except UserError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, KeyError, ImportError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"error: {one_line(msg)}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only folder, a name too long, ...: one line, path and cause
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"error: {one_line(os_error_text(e))}", file=sys.stderr)
        return 1
    finally:
        if sys.stdout is not real_stdout and isinstance(sys.stdout, _GuardedStdout):
            sys.stdout = real_stdout


class StdoutError(OSError):
    """Writing to standard output failed (not a broken pipe: a full device, an I/O error)."""


class _GuardedStdout:
    """sys.stdout during a command: a failed write to it is a `StdoutError`, told apart from a failed write
    of a file (which names its path)."""

    def __init__(self, stream):
        self._stream = stream

    def _guard(self, fn, *a):
        try:
            return fn(*a)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise StdoutError(e.errno, e.strerror or str(e)) from None

    def write(self, text):
        return self._guard(self._stream.write, text)

    def flush(self):
        return self._guard(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def os_error_text(e: OSError) -> str:
    """`cannot write PATH: No space left on device`: the path and the cause of an OSError (its own message
    when it names neither, e.g. one raised with a sentence of ours)."""
    if e.filename is None:
        return str(e.strerror or e)
    path = e.filename if e.filename2 is None else f"{e.filename} -> {e.filename2}"
    return f"{path}: {e.strerror or e}"


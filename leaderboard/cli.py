"""`python -m bench leaderboard` and `python -m bench plot`."""
from __future__ import annotations

import sys
from pathlib import Path


def cmd_leaderboard(args) -> int:
    from . import build_table, write
    roots = args.results or ["results"]
    table = build_table(*roots)
    if table.empty:
        print(f"no records found under {', '.join(roots)}", file=sys.stderr)
        return 1
    fmt = args.format or ("html" if args.output and str(args.output).endswith(".html") else "term")
    text = write(table, fmt, args.output)
    if args.output:
        print(f"wrote {args.output} ({len(table)} rows)")
    else:
        sys.stdout.write(text)
    return 0


def cmd_plot(args) -> int:
    from .plots import plot_all
    roots = args.results or ["results"]
    for r in roots:
        if not Path(r).exists():
            raise FileNotFoundError(f"results directory not found: {r}")
    paths = plot_all(roots, args.out)
    for p in paths:
        print(p)
    if not paths:
        print("no figures written: no records with plottable results", file=sys.stderr)
        return 1
    return 0


def add_parser(sub):
    p = sub.add_parser("leaderboard", help="aggregate records: mean ± SEM over seeds, Δ vs none, Welch p")
    p.add_argument("results", nargs="*", metavar="RESULTS_DIR", help="results directories (default: ./results)")
    p.add_argument("--format", "-f", choices=["term", "md", "csv", "html"], default=None,
                   help="output format (default: term, or html when --output ends in .html)")
    p.add_argument("--output", "-o", default=None, metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("plot", help="the paper's figures from the records (PNG and SVG)")
    p.add_argument("results", nargs="*", metavar="RESULTS_DIR", help="results directories (default: ./results)")
    p.add_argument("--out", default="figures", metavar="DIR", help="output folder (default: ./figures)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=cmd_plot)

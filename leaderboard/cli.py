"""`python -m bench leaderboard` and `python -m bench plot`."""
from __future__ import annotations

import sys
from pathlib import Path


def render_json(table) -> str:
    """The leaderboard table as JSON: a list of rows, one object per (setup, regularizer, metric) row with
    the same columns as the CSV (missing values are null)."""
    import json
    rows = json.loads(table.to_json(orient="records", date_format="iso", default_handler=str))
    return json.dumps(rows, indent=1, ensure_ascii=False) + "\n"


def cmd_leaderboard(args) -> int:
    from . import build_table, write
    from .aggregate import loading_options
    roots = args.results or ["results"]
    with loading_options(strict=getattr(args, "strict", False)):  # damaged records: skipped with a warning
        table = build_table(*roots)
    if table.empty:
        print(f"no records found under {', '.join(roots)}", file=sys.stderr)
        return 1
    fmt = args.format or {".html": "html", ".json": "json"}.get(Path(args.output).suffix if args.output else "", "term")
    if getattr(args, "robustbench", None):  # this project's rows ranked among RobustBench's published ones
        from .published import board, render_board
        text = render_board(board(table, args.robustbench), fmt)
        if args.output:
            from bench.store import atomic_write_bytes
            atomic_write_bytes(Path(args.output), text.encode("utf-8"))
    elif fmt == "json":
        text = render_json(table)
        if args.output:
            from bench.store import atomic_write_bytes
            atomic_write_bytes(Path(args.output), text.encode("utf-8"))
    else:
        text = write(table, fmt, args.output, metrics=getattr(args, "metrics", None))
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
    from .aggregate import loading_options
    with loading_options(strict=getattr(args, "strict", False)):
        paths = plot_all(roots, args.out)
    for p in paths:
        print(p)
    if not paths:
        print("no figures written: no records with plottable results", file=sys.stderr)
        return 1
    return 0


def add_parser(sub):
    """`leaderboard` and `plot`: defined in bench.commands.add_leaderboard_parsers (no torch/pandas to parse)."""
    from bench.commands import add_leaderboard_parsers
    add_leaderboard_parsers(sub)

"""`python -m bench leaderboard` and `python -m bench plot`: parse, then call the leaderboard package
(which reads records only)."""
from __future__ import annotations

import sys
from pathlib import Path


def cmd_leaderboard(args) -> int:
    from leaderboard import build_table, write
    from leaderboard.aggregate import loading_options
    roots = args.results or ["results"]
    with loading_options(strict=getattr(args, "strict", False)):  # damaged records: skipped with a warning
        table = build_table(*roots)
    if table.empty:
        print(f"no records found under {', '.join(roots)}", file=sys.stderr)
        return 1
    fmt = args.format or {".html": "html", ".json": "json"}.get(Path(args.output).suffix if args.output else "", "term")
    if getattr(args, "robustbench", None):  # this project's rows ranked among RobustBench's published ones
        from bench.cli import UserError
        from leaderboard.published import board, render_board
        try:
            b = board(table, args.robustbench, by=getattr(args, "by", "robustbench"),
                      strict=getattr(args, "strict", False))
        except ValueError as e:  # unknown spec / order, --strict refusing a partial row: one line
            raise UserError(str(e)) from None
        if b.attrs.get("empty") and not (b["source"] == "evaluated here").any():
            print(b.attrs["empty"], file=sys.stderr)  # nothing of this project to place: say why, in one line
            return 1
        text = render_board(b, fmt)
        if args.output:
            from bench.core.store import atomic_write_bytes
            atomic_write_bytes(Path(args.output), text.encode("utf-8"))
    elif fmt == "json":
        from leaderboard.render import render_json
        text = render_json(table)
        if args.output:
            from bench.core.store import atomic_write_bytes
            atomic_write_bytes(Path(args.output), text.encode("utf-8"))
    else:
        text = write(table, fmt, args.output, metrics=getattr(args, "metrics", None))
    if args.output:
        print(f"wrote {args.output} ({len(table)} rows)")
    else:
        sys.stdout.write(text)
    return 0


def cmd_plot(args) -> int:
    from leaderboard.plots import plot_all
    roots = args.results or ["results"]
    for r in roots:
        if not Path(r).exists():
            raise FileNotFoundError(f"results directory not found: {r}")
    from leaderboard.aggregate import loading_options
    with loading_options(strict=getattr(args, "strict", False)):
        paths = plot_all(roots, args.out)
    for p in paths:
        print(p)
    if not paths:
        print("no figures written: no records with plottable results", file=sys.stderr)
        return 1
    return 0

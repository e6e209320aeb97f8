"""`python -m bench leaderboard` and `python -m bench plot`: parse, then call the leaderboard package
(which reads records only). Output paths go through `bench.core.outputs`: never inside a record or the
results being read, never over a file this project did not write (without --force), always atomic."""
from __future__ import annotations

import sys
from pathlib import Path


def cmd_leaderboard(args) -> int:
    from leaderboard import render
    roots = args.results or ["results"]
    out = None
    if args.output:  # checked before any work: a refused path costs nothing
        from bench.core.outputs import check_output
        out = check_output(args.output, option="--output", reading=roots, force=getattr(args, "force", False))
    table = _read_table(args, roots)
    if table.empty and not getattr(args, "robustbench", None):
        print(f"no records found under {', '.join(roots)}", file=sys.stderr)
        return 1
    fmt = args.format or {".html": "html", ".json": "json"}.get(Path(args.output).suffix if args.output else "", "term")
    if getattr(args, "robustbench", None):  # this project's rows ranked among RobustBench's published ones
        text = _robustbench_board(args, table, roots, fmt, to_file=out is not None)
    elif fmt == "json":
        from leaderboard.render import render_json
        text = render_json(table)
    else:
        text = render(table, fmt, metrics=getattr(args, "metrics", None))
    if out is not None:
        from bench.core.outputs import write_output
        write_output(out, text.encode("utf-8"))
        print(f"wrote {args.output} ({len(table)} rows)")
    else:
        sys.stdout.write(text)
    return 0


def _read_table(args, roots):
    """The records' table; with --robustbench and no RESULTS_DIR given, a missing ./results is no records (the
    published board is still shown), while a folder named on the command line must exist."""
    import pandas as pd

    from leaderboard import build_table
    from leaderboard.loading import loading_options
    try:
        with loading_options(strict=getattr(args, "strict", False)):  # damaged records: skipped with a warning
            return build_table(*roots)
    except FileNotFoundError:
        if getattr(args, "robustbench", None) and not args.results and not Path(roots[0]).exists():
            return pd.DataFrame()
        raise


def _robustbench_board(args, table, roots, fmt: str, to_file: bool) -> str:
    """RobustBench's published rows for DATASET:THREAT with this project's comparable rows ranked among them. With
    none, the published table is still shown, under the one-line note that says why nothing of ours is placed
    (the note is in the table's header; it also goes to stderr where the output would not show it)."""
    from bench.cli import UserError
    from leaderboard.published import board, render_board
    try:
        b = board(table, args.robustbench, by=getattr(args, "by", "robustbench"), strict=getattr(args, "strict", False))
    except ValueError as e:  # unknown spec / order, --strict refusing a partial row: one line
        raise UserError(str(e)) from None
    note = b.attrs.get("empty", "")
    if note and table.empty:
        note = b.attrs["empty"] = (f"nothing ranked: no records under {', '.join(roots)}; the published rows alone "
                                   "(`bench eval RUN_DIR --suite robustbench` on an RGB CIFAR-10 record places one)")
    if note and (to_file or fmt == "csv"):
        print(note, file=sys.stderr)
    return render_board(b, fmt)


def cmd_plot(args) -> int:
    import shutil
    import tempfile

    from bench.core.outputs import check_folder_files, check_output, remember
    from leaderboard.plots import plot_all
    roots = args.results or ["results"]
    for r in roots:
        if not Path(r).exists():
            raise FileNotFoundError(f"results directory not found: {r}")
    force = getattr(args, "force", False)
    out = check_output(args.out, option="--out", reading=roots, force=force, folder=True)
    from leaderboard.loading import loading_options
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".plots-"))  # drawn aside, moved in once all are checked
    try:
        with loading_options(strict=getattr(args, "strict", False)):
            drawn = plot_all(roots, tmp)
        check_folder_files(out, [p.name for p in drawn], "--out", force=force)
        paths = []
        for p in drawn:
            dest = out / p.name
            p.replace(dest)
            paths.append(Path(args.out) / p.name)
        remember([out / p.name for p in paths])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for p in paths:
        print(p)
    if not paths:
        print("no figures written: no records with plottable results", file=sys.stderr)
        return 1
    return 0

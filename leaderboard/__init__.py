"""The leaderboard: records -> tidy table -> mean ± SEM per regularizer -> term/md/csv/html and plots.

    from leaderboard import load_records, build_table, render, write
    table = build_table("results")          # or build_table(load_records("a", "b"))
    print(render(table, "md"))
    write(table, "html", "board.html")

Plots (`leaderboard.plots.plot_all`) and RobustBench models (`leaderboard.robustbench`) are
imported lazily: matplotlib and robustbench are only needed by those.
"""
from .aggregate import aggregate, build_table, load_curves, load_details, load_records, sem, welch_p
from .render import FORMATS, render, write


def plot_all(roots, out_dir):
    from .plots import plot_all as _plot_all
    return _plot_all(roots, out_dir)


__all__ = ["load_records", "load_curves", "load_details", "build_table", "aggregate", "render", "write", "plot_all",
           "sem", "welch_p", "FORMATS"]

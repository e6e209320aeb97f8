"""What a sweep shows: the per-job status table (`bench sweep --status`: done / running / stale / failed, read
from the per-run status files), the terminal leaderboard and the leaderboard files and plots it writes.

Kept apart from planning (`bench.app.sweep`) and running (`bench.app.sweep_run`): it only reads a plan's
records, from any machine that sees the results folder.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from bench.app.sweep import Plan


def _age(ts) -> str:
    if not ts:
        return ""
    s = max(0, time.time() - float(ts))
    return f"{s:.0f} s" if s < 120 else (f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h")


def status_rows(plan: Plan) -> list[dict]:
    from bench.app.jobs import job_state
    rows = []
    for s in plan.specs:
        state, st = job_state(s)
        c = s.config
        if state == "running":
            info = (f"pid {st.get('pid')} on {st.get('host')}, since {st.get('start')} "
                    f"(heartbeat {_age(st.get('heartbeat_ts'))} ago)")
        elif state == "stale":
            info = f"was running (pid {st.get('pid')} on {st.get('host')}), process gone; re-run to resume"
        elif state in ("failed", "interrupted"):
            info = f"{st.get('error')}  log: {st.get('log')}"
        elif state == "done":
            info = f"{st.get('seconds', '?')} s" if st.get("state") == "done" else "(record complete)"
        elif state == "trained":
            info = "trained; suite incomplete"
        else:
            info = ""
        rows.append({"job": s.kind, "regularizer": c["regularizer"], "dataset": c["dataset"], "seed": c["seed"],
                     "state": state, "info": info, "run_dir": s.run_dir})
    return rows


def print_status(plan: Plan, file=None) -> dict:
    file = file or sys.stdout
    rows = status_rows(plan)
    w = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in ("job", "regularizer", "dataset", "seed", "state")}
    head = "  ".join(k.ljust(w[k]) for k in w) + "  info"
    print(head, file=file)
    print("-" * len(head), file=file)
    for r in rows:
        print("  ".join(str(r[k]).ljust(w[k]) for k in w) + "  " + r["info"], file=file)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    print(f"\n{len(rows)} jobs: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
          + f"  (results: {plan.out})", file=file)
    return counts


# ----------------------------------------------------------------------------- leaderboard + plots
def show_leaderboard(roots, log=print) -> None:
    """Print the terminal leaderboard of `roots`."""
    import leaderboard
    log(leaderboard.render(leaderboard.build_table(*roots), "term"))


def write_reports(roots, out_dir: Path, log=print) -> dict:
    """Leaderboard files (md/csv/html) in out_dir and the plots in out_dir/plots; returns
    {"leaderboard": [paths], "plots": [paths]}."""
    import leaderboard
    table = leaderboard.build_table(*roots)
    written = {"leaderboard": [], "plots": []}
    for fmt in ("md", "csv", "html"):
        p = Path(out_dir) / f"leaderboard.{fmt}"
        try:
            leaderboard.write(table, fmt, p)
            written["leaderboard"].append(p)
        except Exception as e:  # noqa: BLE001 - one renderer failing must not hide the others
            log(f"[sweep] leaderboard as {fmt} failed: {type(e).__name__}: {e}")
    written["plots"] = [Path(p) for p in leaderboard.plot_all([str(r) for r in roots], str(Path(out_dir) / "plots"))]
    return written


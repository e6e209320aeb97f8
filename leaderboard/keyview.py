"""The leaderboard at a glance: a key view of one column per test, chosen to keep clean cost apart from
robustness, with units in the headers.

Default columns (those a block has; `--metrics PATTERN[,PATTERN]` picks others, fnmatch on metric names,
and then the full renderers of leaderboard.render show them unscaled):

    score, clean accuracy (%), noise / transfer FGSM / corruptions relative robustness (accuracy over
    the model's own clean accuracy, mean over the perturbed levels), boundary / white-box / HopSkipJump
    median squared L2 per value (x1e-3), PGD / AutoAttack accuracy, RobustBench AutoAttack and
    CIFAR-10-C accuracy (%), training time.

Left out of the key view: columns constant across every row of a block (e.g. `success_rate` always 1),
duplicates (`convergence_auc`), budget-fixed costs (`train.steps`, `train.images`). Every cell is
mean ± SEM (n); a regularized row adds Δ to `none` and to each baseline arm present, each with its
interval, paired over common seed blocks else Welch (leaderboard.differences; bold when the Holm-corrected p
against `none` < 0.05). A test recorded as skipped shows why in its cell. The protocol line gives the
number of images each test attacked. The CSV and JSON outputs always carry the full table.
"""
from __future__ import annotations

import fnmatch
import html
import json
import math
import shutil

import pandas as pd

from . import differences
from .aggregate import SCORE, fmt_num
from .layout import _CSS, _JS, _md_escape, _name, _setup_text, _term_clean_rows, _text_table, strip_control

# (metric, header, scale): the first present metric of each group is shown
KEY_GROUPS: list[list[tuple[str, str, float]]] = [
    [(SCORE, "score (rel. robustness)", 1.0)],
    [("clean.accuracy", "clean acc. (%)", 100.0)],
    [("gaussian_noise.relative_robustness", "noise rel. robustness", 1.0),
     ("gaussian_noise.mean_accuracy", "noise mean acc. (%)", 100.0)],
    [("transfer_fgsm.relative_robustness", "transfer FGSM rel. robustness", 1.0),
     ("transfer_fgsm.mean_accuracy", "transfer FGSM mean acc. (%)", 100.0)],
    [("transfer_fgsm_reverse.relative_robustness", "reverse FGSM rel. robustness", 1.0)],
    [("corruptions.relative_robustness", "corruptions rel. robustness", 1.0),
     ("corruptions.mean_accuracy", "corruptions mean acc. (%)", 100.0)],
    [("boundary.median_sq_l2", "boundary median sq. L2 (x1e-3)", 1e3)],
    [("min_perturbation.median_sq_l2", "white-box min. sq. L2 (x1e-3)", 1e3)],
    [("hop_skip_jump.median_sq_l2", "HopSkipJump median sq. L2 (x1e-3)", 1e3)],
    [("pgd.accuracy_eps_1_255", "PGD acc. @1/255 (%)", 100.0)],
    [("autoattack.accuracy_eps_1_255", "AutoAttack acc. @1/255 (%)", 100.0)],
    [("rb_autoattack_linf.robust_accuracy", "AutoAttack L-inf 8/255 acc. (%)", 100.0)],
    [("rb_autoattack_l2.robust_accuracy", "AutoAttack L2 0.5 acc. (%)", 100.0)],
    [("rb_corruptions.accuracy", "CIFAR-10-C acc. (%)", 100.0)],
    [("train.wall_s", "train time (s)", 1.0)],
]
NEVER_KEY = ("*.success_rate", "*convergence_auc*", "train.steps", "train.images", "train.task_images",
             "train.reg_images")


def _has(g: pd.DataFrame, m: str) -> bool:
    c = f"{m}|n"
    return c in g and bool((g[c].fillna(0) > 0).any())


def _constant(g: pd.DataFrame, m: str) -> bool:
    """Same mean on every row and no spread within any row: the column carries nothing."""
    if len(g) < 2:
        return False
    means = g[f"{m}|mean"].dropna()
    sems = g[f"{m}|sem"].fillna(0) if f"{m}|sem" in g else pd.Series([0.0])
    return len(means) > 0 and means.nunique() == 1 and bool((sems == 0).all())


def key_columns(g: pd.DataFrame) -> list[tuple[str, str, float]]:
    cols = []
    for group in KEY_GROUPS:
        for m, head, scale in group:
            if any(fnmatch.fnmatchcase(m, p) for p in NEVER_KEY):
                continue
            if _has(g, m) or _skip_reason(g, m.split(".")[0]) is not None:
                if m != SCORE and _has(g, m) and _constant(g, m):
                    break
                cols.append((m, head, scale))
                break
    return cols


def select_metrics(all_metrics, patterns: str) -> list[str]:
    pats = [p.strip() for p in str(patterns).split(",") if p.strip()]
    return [m for m in all_metrics if any(fnmatch.fnmatchcase(m, p) for p in pats)]


def restrict(table: pd.DataFrame, patterns: str) -> pd.DataFrame:
    """A copy of the table whose metric list (what the renderers show) is the metrics matching PATTERN."""
    out = table.copy()
    out.attrs = dict(table.attrs)
    ms = table.attrs.get("metrics") or list(dict.fromkeys(c.rsplit("|", 1)[0] for c in table.columns
                                                          if c.endswith("|mean")))
    chosen = select_metrics(ms, patterns)
    if not chosen:
        raise ValueError(f"--metrics {patterns!r} matches no metric; e.g. {', '.join(ms[:8])}")
    out.attrs["metrics"] = chosen
    return out


# ------------------------------------------------------------------------------------- text pieces
def _skip_reason(g: pd.DataFrame, test: str):
    if "skipped" not in g:
        return None
    for s in g["skipped"]:
        try:
            r = json.loads(s or "{}").get(test)
        except (TypeError, ValueError):
            r = None
        if r:
            return r
    return None


def _row_skip(r, test: str):
    try:
        return json.loads(r.get("skipped") or "{}").get(test)
    except (TypeError, ValueError):
        return None


def _isnan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def cell(r, m: str, scale: float) -> str:
    n = r.get(f"{m}|n")
    if _isnan(n) or int(n) == 0:
        why = _row_skip(r, m.split(".")[0])
        return f"n/a: {why}" if why else "–"
    mean, sem = r.get(f"{m}|mean"), r.get(f"{m}|sem")
    s = fmt_num(None if _isnan(mean) else mean * scale, 3)
    return f"{s} ± {fmt_num(None if _isnan(sem) else sem * scale, 2)} ({int(n)})"


def delta(r, m: str, scale: float) -> str:
    """Δ to `none` and to each baseline present, each with its interval and analysis (leaderboard.differences)."""
    return differences.delta_text(r, m, scale)


def significant(r, m: str) -> bool:
    p = r.get(f"{m}|p_holm", r.get(f"{m}|p"))
    return not _isnan(p) and p < 0.05


def images_per_test(protocol_map) -> dict[str, str]:
    """{test: 'N images' (+ repeats/steps)} from a row's protocol map: what each test attacked."""
    try:
        pm = json.loads(protocol_map) if isinstance(protocol_map, str) else dict(protocol_map or {})
    except (TypeError, ValueError):
        return {}
    out = {}
    for test, ent in sorted(pm.items()):
        ent = ent or {}
        proto = ent.get("protocol") or {}
        total = ent.get("n_examples")
        n = proto.get("n", proto.get("n_examples"))
        if isinstance(n, int) and isinstance(total, int):
            n = min(n, total)
        elif n is None:
            n = total
        extra = []
        if proto.get("repeats") not in (None, 1):
            extra.append(f"x{proto['repeats']} starts")
        if test in ("boundary", "hop_skip_jump", "min_perturbation", "pgd") and proto.get("steps"):
            extra.append(f"{proto['steps']} steps")
        out[test] = f"{n}" + (f" ({', '.join(extra)})" if extra else "")
    return out


def images_line(protocol_map) -> str:
    per = images_per_test(protocol_map)
    return "images attacked per test: " + "; ".join(f"{t} {v}" for t, v in per.items()) if per else ""


# ------------------------------------------------------------------------------------- renderers
def _blocks(table):
    for _, g in table.groupby(["comparison_key", "protocol_id"], sort=False, dropna=False):
        yield g


LEGEND = ("cells: mean ± SEM (n seeds); " + differences.LEGEND + "; score: mean relative robustness of Gaussian "
          "noise and transfer FGSM; "
          "other columns: --metrics PATTERN (e.g. 'boundary.*'); every column: --format csv|json")


def render_key(table: pd.DataFrame, fmt: str = "term", width: int | None = None) -> str:
    if fmt not in ("term", "md", "html"):
        raise ValueError(f"key view formats: term, md, html (got {fmt!r})")
    if fmt == "html":
        return _html(table)
    if table.empty:
        return "no records found\n" if fmt == "term" else "_no records found_\n"
    out = [] if fmt == "term" else ["# RegBench leaderboard", "", LEGEND, ""]
    for g in _blocks(table):
        cols = key_columns(g)
        r0 = g.iloc[0]
        head = f"{_setup_text(r0)} | suite {r0.get('suite_name')} | protocol {r0['protocol_id']}"
        line = images_line(r0.get("protocol_map"))
        rows = []
        for _, r in g.iterrows():
            d = {"regularizer": _name(r)}
            for m, h, s in cols:
                d[h] = cell(r, m, s)
                dl = delta(r, m, s)
                if dl and fmt == "md":
                    d[h] += f"<br>{dl}"
                elif dl:
                    d[f"{h} Δ"] = dl
            rows.append(d)
        if fmt == "term":
            out += [strip_control("== " + head), strip_control("   " + line)]
            keys = list(dict.fromkeys(k for d in rows for k in d))
            rows = [{k: d.get(k, "") for k in keys} for d in rows]
            out += [_text_table(_term_clean_rows(rows), width or shutil.get_terminal_size((160, 40)).columns), ""]
        else:
            keys = ["regularizer"] + [h for _, h, _ in cols]
            out += [f"## {_md_escape(head)}", "", _md_escape(line), "",
                    "| " + " | ".join(_md_escape(k) for k in keys) + " |", "|" + "---|" * len(keys)]
            out += ["| " + " | ".join(_md_escape(d.get(k, "")).replace("&lt;br&gt;", "<br>") for k in keys) + " |"
                    for d in rows]
            out.append("")
    if fmt == "term":
        out.append(LEGEND)
    return "\n".join(out) + "\n"


_KEY_CSS = """
table.board{font-size:12px;table-layout:auto}
table.board th{white-space:normal;max-width:7.5em;vertical-align:bottom;font-weight:600}
table.board td{white-space:nowrap} table.board td.name{white-space:normal;max-width:14em}
table.board span.d{display:inline-block;white-space:normal;max-width:16em}
p.proto{font-size:12px;color:#444;max-width:75em}
"""


def _html(table: pd.DataFrame) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width">',
             f"<title>RegBench leaderboard</title><style>{_CSS}{_KEY_CSS}</style></head><body>",
             "<h1>RegBench leaderboard</h1>", f"<p>{e(LEGEND)}. Click a column header to sort.</p>"]
    if table.empty:
        parts.append("<p>No records found.</p>")
    lower = set(table.attrs.get("lower_is_better", []))
    for g in (_blocks(table) if not table.empty else []):
        cols = key_columns(g)
        r0 = g.iloc[0]
        parts.append(f"<h2>{e(_setup_text(r0))}</h2>")
        parts.append(f'<p class="proto">Suite <code>{e(str(r0.get("suite_name")))}</code>, protocol '
                     f'<code>{e(str(r0["protocol_id"]))}</code>. {e(images_line(r0.get("protocol_map")))}.</p>')
        parts.append('<table class="board"><thead><tr><th data-metric="" title="regularizer">regularizer</th>')
        for m, h, _ in cols:
            tip = m + (" (lower is better)" if m in lower else "")
            parts.append(f'<th data-metric="{e(m)}" title="{e(tip)}">{e(h)}</th>')
        parts.append("</tr></thead><tbody>")
        for _, r in g.iterrows():
            cls = ' class="ext"' if bool(r.get("external")) else ""
            parts.append(f'<tr{cls}><td class="name">{e(_name(r))}</td>')
            for m, h, s in cols:
                dl = differences.delta_parts(r, m, s)  # one line per reference: the cell wraps, never widens
                span = (f'<br><span class="{"d sig" if significant(r, m) else "d"}">{"<br>".join(map(e, dl))}</span>'
                        if dl else "")
                mean = r.get(f"{m}|mean")
                dv = "" if _isnan(mean) else repr(float(mean))
                parts.append(f'<td data-v="{e(dv)}">{e(cell(r, m, s))}{span}</td>')
            parts.append("</tr>")
        parts.append("</tbody></table>")
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts) + "\n"

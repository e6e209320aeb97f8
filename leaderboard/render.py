"""Renderers of the aggregated table: terminal, Markdown, CSV, one self-contained HTML page.

All four read the same table from `aggregate.build_table`, so they show the same numbers: CSV
with one column per statistic (`<metric>|mean`, `|sem`, `|n`, `|diff`, `|p`), the others as
`mean ± SEM (n=3)`. The HTML page is plain HTML + a few lines of inline JavaScript for sorting
(no external assets, so it opens offline); every value passes through `html.escape`.
"""
from __future__ import annotations

import html
import math
import shutil
from pathlib import Path

import pandas as pd

from . import differences, pareto
from .aggregate import SCORE, fmt_num, fmt_value
from .layout import _CSS, _JS, _md_escape, _name, _setup_text, _term_clean_rows, _text_table, strip_control

FORMATS = ("term", "md", "csv", "html")
SETUP_COLS = ["dataset", "color", "arch", "width", "budget_steps"]


def _metrics(table: pd.DataFrame, kinds=("score", "summary", "auc", "cost")) -> list[str]:
    k = table.attrs.get("kinds", {})
    ms = table.attrs.get("metrics")
    if ms is None:  # a table read back from CSV: recover the metric list from the column names
        ms = list(dict.fromkeys(c.rsplit("|", 1)[0] for c in table.columns if c.endswith("|mean")))
    return [m for m in ms if k.get(m, "summary" if m != SCORE else "score") in kinds]


# Costs shown by md/html (the CSV has every cost, per test too).
SHOWN_COSTS = ("train.wall_s", "train.device_s", "train.steps", "train.images", "train.peak_memory_mb",
               "eval.seconds", "eval.forward_images")


def _shown_metrics(table) -> tuple[list[str], list[str]]:
    """(metrics with a Δ vs none, cost metrics shown without one)."""
    costs = [m for m in SHOWN_COSTS if m in _metrics(table, ("cost",))]
    return _metrics(table, ("score", "summary", "auc")), costs


def _terminal_metrics(table) -> list[str]:
    ms = _metrics(table, ("score", "summary"))
    if "train.wall_s" in _metrics(table, ("cost",)):
        ms.append("train.wall_s")
    return ms


def _fmt_params(x) -> str:
    try:
        return f"{int(x):,}"
    except (TypeError, ValueError):
        return "n/a"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value):
    """OWASP CSV-injection rule: a text cell starting with = + - @ tab or CR gets a leading
    apostrophe so spreadsheet tools show it as text; numbers (and text that is just a number,
    such as "-0.5") stay as they are."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def _cell(r, m) -> str:
    cell = fmt_value(r.get(f"{m}|mean"), r.get(f"{m}|sem"), r.get(f"{m}|n"))
    k = r.get(f"{m}|censored")
    if k and k == k and int(k) > 0:  # censored seeds enter at the top of the tested range: a lower bound
        cell = f">= {cell} [{int(k)} censored]"
    return cell


def _diff(r, m) -> str:
    """Δ to `none` (and to each baseline present) with its interval, analysis and the p-value to `none`."""
    d = differences.delta_text(r, m)
    return f"{d} (p={fmt_num(r.get(f'{m}|p'), 2)})" if d else ""


def _blocks(table: pd.DataFrame):
    """Rows grouped by comparison key + protocol (the rows that may be compared)."""
    keys = ["comparison_key", "protocol_id"]
    for _, g in table.groupby(keys, sort=False, dropna=False):
        yield g


def _present(g: pd.DataFrame, metrics: list[str]) -> list[str]:
    """The metrics that at least one row of a block has."""
    return [m for m in metrics if f"{m}|n" in g and (g[f"{m}|n"].fillna(0) > 0).any()]


def _has_baseline(g: pd.DataFrame) -> bool:
    return bool((g["regularizer"] == "none").any())


# ------------------------------------------------------------------------------------- term
def render_term(table: pd.DataFrame, width: int | None = None) -> str:
    if table.empty:
        return "no records found\n"
    width = width or shutil.get_terminal_size((160, 40)).columns
    out = []
    for g in _blocks(table):
        ms = _present(g, _terminal_metrics(table))
        r0 = g.iloc[0]
        out.append(strip_control(f"== {_setup_text(r0)} | suite {r0.get('suite_name')} | protocol "
                                 f"{r0['protocol_id']} | score: {r0.get('score_basis')}"))
        proto = strip_control(r0["protocol"])
        out.append("   " + (proto if len(proto) <= width - 3 else proto[:width - 4] + "…"))
        rows = []
        for _, r in g.iterrows():
            d = {"regularizer": _name(r)}
            for m in ms:
                d[m] = _cell(r, m)
            if _has_baseline(g) and len(g) > 1:
                d[f"Δ {SCORE} vs none"] = _diff(r, SCORE)
            rows.append(d)
        out.append(_text_table(_term_clean_rows(rows), width))
        out.append("")
    out.append("values: mean ± SEM over seeds (n = seeds); Δ: difference to `none` with the same comparison key "
               "and protocol, p: paired t-test over common seed blocks, else Welch; "
               "score: mean normalised AUC of the noise and FGSM curves (clean "
               "accuracy where absent); full protocols: --format md|html|csv")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------- md
def render_md(table: pd.DataFrame) -> str:
    if table.empty:
        return "_no records found_\n"
    ms_all, costs_all = _shown_metrics(table)
    out = ["# RegBench leaderboard", "",
           "Values: mean ± SEM over seeds (n = seeds). Δ: difference to `none` (same comparison key and "
           "protocol) with the p-value of its analysis. " + differences.LEGEND + ".", ""]
    for g in _blocks(table):
        ms, costs = _present(g, ms_all), _present(g, costs_all)
        with_diff = _has_baseline(g) and len(g) > 1
        r0 = g.iloc[0]
        out += [f"## {_md_escape(_setup_text(r0))}", "",
                f"Suite `{_md_escape(r0.get('suite_name'))}`, protocol `{_md_escape(r0['protocol_id'])}`: "
                f"{_md_escape(r0['protocol'])}", "",
                f"Score: {_md_escape(r0.get('score_basis'))}", ""]
        head = ["regularizer", "seeds", "params"] + [x for m in ms for x in ((m, f"Δ {m}") if with_diff else (m,))]
        head += costs
        out.append("| " + " | ".join(_md_escape(h) for h in head) + " |")
        out.append("|" + "---|" * len(head))
        for _, r in g.iterrows():
            cells = [_name(r), r["seeds"], _fmt_params(r.get("model_params"))]
            for m in ms:
                cells += [_cell(r, m), _diff(r, m)] if with_diff else [_cell(r, m)]
            cells += [_cell(r, m) for m in costs]
            out.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
        out.append("")
    return "\n".join(out)


# -------------------------------------------------------------------------------------- csv
def render_csv(table: pd.DataFrame) -> str:
    """Every column; text cells (and headers) that a spreadsheet would run as a formula are
    neutralised (`csv_safe`), numeric columns are written unchanged."""
    safe = table.copy()
    for c in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[c]) and not pd.api.types.is_bool_dtype(safe[c]):
            safe[c] = safe[c].astype(object).map(csv_safe)
    safe.columns = [csv_safe(str(c)) for c in safe.columns]
    return safe.to_csv(index=False)


# ------------------------------------------------------------------------------------- html
def _e(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _num_attr(x) -> str:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(f) else repr(f)


def render_html(table: pd.DataFrame, title: str = "RegBench leaderboard") -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{_e(title)}</h1>",
             "<p>Values: mean ± SEM over seeds (n = seeds). Below each value: Δ = difference to "
             "<code>none</code> with the same comparison key and protocol, "
             "and the p-value of its analysis (paired t-test "
             "over common seed blocks, else Welch) "
             "(bold when Holm-corrected across the row's metrics p &lt; 0.05). Click a column header to sort.</p>"]
    if table.empty:
        parts.append("<p>No records found.</p>")
    ms_all, costs_all = _shown_metrics(table)
    lower = set(table.attrs.get("lower_is_better", []))
    for g in (_blocks(table) if not table.empty else []):
        ms, costs = _present(g, ms_all), _present(g, costs_all)
        r0 = g.iloc[0]
        parts.append(f"<h2>{_e(_setup_text(r0))}</h2>")
        parts.append(f"<p>Suite <code>{_e(r0.get('suite_name'))}</code>, protocol <code>{_e(r0['protocol_id'])}"
                     f"</code>, comparison key <code>{_e(r0['comparison_key'])}</code>. Score: "
                     f"{_e(r0.get('score_basis'))}.</p>")
        parts.append('<table class="board"><thead><tr>')
        heads = [("regularizer", "regularizer", ""), ("seeds", "seeds", ""), ("params", "model parameters", ""),
                 ("protocol", "protocol", "")]
        heads += [(m, m + (" (lower is better)" if m in lower else ""), m) for m in ms + costs]
        for text, tip, metric in heads:
            parts.append(f'<th title="{_e(tip)}" data-metric="{_e(metric)}">{_e(text)}</th>')
        parts.append("</tr></thead><tbody>")
        for _, r in g.iterrows():
            cls = ' class="ext"' if bool(r.get("external")) else ""
            parts.append(f"<tr{cls}>")
            parts.append(f'<td class="name">{_e(_name(r))}</td>')
            parts.append(f'<td data-v="{_e(r.get("n_seeds"))}">{_e(r["seeds"])}</td>')
            parts.append(f'<td data-v="{_e(_num_attr(r.get("model_params")))}">'
                         f'{_e(_fmt_params(r.get("model_params")))}</td>')
            parts.append(f'<td class="proto"><details><summary>{_e(r["protocol_id"])}: '
                         f'{_e(str(r["protocol"])[:60])}…</summary>{_e(r["protocol"])}</details></td>')
            for m in ms + costs:
                d = _diff(r, m) if m in ms else ""
                p = r.get(f"{m}|p_holm", r.get(f"{m}|p"))
                sig = p is not None and not (isinstance(p, float) and math.isnan(p)) and p < 0.05
                dspan = f'<br><span class="{"d sig" if sig else "d"}">{_e(d)}</span>' if d else ""
                parts.append(f'<td data-v="{_e(_num_attr(r.get(f"{m}|mean")))}">{_e(_cell(r, m))}{dspan}</td>')
            parts.append("</tr>")
        parts.append("</tbody></table>")
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts) + "\n"


def render(table: pd.DataFrame, fmt: str = "term", metrics: str | None = None) -> str:
    """The table as text in one of term | md | csv | html. term/md/html show the key view
    (leaderboard.keyview) unless `metrics` (fnmatch patterns, comma-separated) picks columns; csv: all."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    from . import keyview
    if fmt != "csv" and metrics is None:
        text = keyview.render_key(table, fmt)
    else:
        if fmt != "csv" and not table.empty:
            table = keyview.restrict(table, metrics)
        text = {"term": render_term, "md": render_md, "csv": render_csv, "html": render_html}[fmt](table)
    matched = table.attrs.get("matched")
    if matched and fmt in ("term", "md"):
        text = text.rstrip("\n") + "\n\n" + MATCHED_TITLE + "\n\n" + matched + "\n"
    if matched and fmt == "html":
        import html
        block = f"<h2>{html.escape(MATCHED_TITLE)}</h2><pre>{html.escape(matched)}</pre>"
        text = text.replace("</body>", block + "</body>") if "</body>" in text else text + block
    return pareto.inject_html(text, table.attrs.get("pareto")) if fmt == "html" else text


MATCHED_TITLE = ("Accuracy-matched none: each regularized run beside `none` of its seed block at the `none` epoch "
                 "whose validation accuracy is closest (leaderboard.matched)")


def write(table: pd.DataFrame, fmt: str = "term", output=None, metrics: str | None = None) -> str:
    """Render and write to `output` (atomically) or return the text for printing when None."""
    text = render(table, fmt, metrics)
    if output is not None:
        from bench.core.store import atomic_write_bytes
        atomic_write_bytes(Path(output), text.encode("utf-8"))
    return text


def render_json(table) -> str:
    """The leaderboard table as JSON: a list of rows, one object per (setup, regularizer, metric) row with
    the same columns as the CSV (missing values are null)."""
    import json
    rows = json.loads(table.to_json(orient="records", date_format="iso", default_handler=str))
    return json.dumps(rows, indent=1, ensure_ascii=False) + "\n"

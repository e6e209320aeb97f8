"""The page pieces both renderers use: leaderboard.render (the full tables) and leaderboard.keyview (the
key view). A block's setup line, a row's name, terminal text without control characters, a fixed-width text
table, Markdown escaping, and the HTML page's style and column-sorting script.

Both import this module and it imports neither, so the renderers' imports point one way (render -> keyview,
both -> layout).
"""
from __future__ import annotations

import html
import math
import re

from .aggregate import fmt_num


def _setup_text(r) -> str:
    w = r.get("width")
    w = "" if w is None or (isinstance(w, float) and math.isnan(w)) else f" width={fmt_num(w)}"
    steps = r.get("budget_steps")
    no_steps = steps is None or steps == -1 or (isinstance(steps, float) and math.isnan(steps))
    steps = "" if no_steps else f", {int(steps)} steps"
    return f"{r['dataset']} ({r['color']}), {r['arch']}{w}{steps}"


def _name(r) -> str:
    return ("[ext] " if bool(r.get("external")) else "") + str(r["label"])


# C0 and C1 control characters (ESC, BEL, CR, ...) and DEL: a name must not drive the terminal
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def strip_control(text) -> str:
    """`text` without control characters (each becomes a visible `?`), for terminal output."""
    return _CONTROL.sub("?", str(text))


def _text_table(rows: list[dict], width: int) -> str:
    """Left-aligned fixed-width table; columns that do not fit the width wrap into further
    blocks, each repeating the first (name) column."""
    cols = list(rows[0])
    w = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    first, rest = cols[0], cols[1:]
    blocks, cur, used = [], [], w[first]
    for c in rest:
        if cur and used + 2 + w[c] > width:
            blocks.append(cur)
            cur, used = [], w[first]
        cur.append(c)
        used += 2 + w[c]
    blocks.append(cur)
    lines = []
    for b in blocks:
        if lines:
            lines.append("")
        for r in [{c: c for c in cols}] + rows:
            lines.append("  ".join(str(r.get(c, "")).ljust(w[c]) for c in [first] + b).rstrip())
    return "\n".join(lines)


def _term_clean_rows(rows: list[dict]) -> list[dict]:
    return [{strip_control(k): strip_control(v) for k, v in r.items()} for r in rows]


def _md_escape(s) -> str:
    return html.escape(str(s)).replace("|", "\\|").replace("\n", " ")


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:2em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f0f0f0;cursor:pointer;position:sticky;top:0}
th.sorted-asc::after{content:" \\25B2"} th.sorted-desc::after{content:" \\25BC"}
td.name,td.proto{text-align:left} td.proto{white-space:normal;min-width:18em;font-size:11px;color:#555}
tr.ext td.name{font-style:italic} span.d{color:#666;font-size:11px} span.sig{color:#080;font-weight:bold}
"""

_JS = """
(function(){
  function key(td){var v=td.getAttribute('data-v');
    if(v!==null&&v!==''&&!isNaN(parseFloat(v)))return [0,parseFloat(v)];
    return [1,td.textContent.toLowerCase()];}
  function sortBy(th){
    var table=th.closest('table'),tbody=table.tBodies[0],i=th.cellIndex;
    var asc=!th.classList.contains('sorted-asc');
    Array.prototype.forEach.call(table.tHead.rows[0].cells,
      function(c){c.classList.remove('sorted-asc','sorted-desc');});
    th.classList.add(asc?'sorted-asc':'sorted-desc');
    var rows=Array.prototype.slice.call(tbody.rows);
    rows.sort(function(a,b){var x=key(a.cells[i]),y=key(b.cells[i]);
      if(x[0]!==y[0])return x[0]-y[0];
      var r=x[1]<y[1]?-1:(x[1]>y[1]?1:0);return asc?r:-r;});
    rows.forEach(function(r){tbody.appendChild(r);});
  }
  document.querySelectorAll('table.board th').forEach(function(th){
    th.addEventListener('click',function(){sortBy(th);});});
  document.querySelectorAll('table.board').forEach(function(t){
    var th=t.querySelector('th[data-metric="score"]'); if(th){sortBy(th);sortBy(th);} });
  document.body.setAttribute('data-sortable','ready');
})();
"""

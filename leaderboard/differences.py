"""Each leaderboard row's differences to its references: `none` and the baseline arms, as the report does.

References. A regularized row is compared with the `none` row of the same comparison key and a compatible
suite protocol (the one sharing most tests), and with each row of a baseline arm (`BASELINES`: input-noise
augmentation and fast adversarial training, read from the records by name: the board never needs them
registered) under the same rule. Every baseline present is a reference: none is picked after seeing the data.

Analysis (board = report). A seed is a block: within one comparison key every arm at seed s shares the
initialisation, the data order, the pair draws and every attack's randomness, and, where `data_seed` and
`surrogate_seed` follow the seed (None in the config), the training subset, the test images and the transfer
surrogate too. So where a row and its reference have at least two seeds in common, the difference is the
mean of the per-block differences with its paired t interval (`leaderboard.stats.compare`, the function the
report's lines use; seeds present in one arm only are left out and counted); where they have fewer (no common
seeds, or a seed repeated within a row), the Welch interval. Each difference says which it used
(`paired n=5`, `paired n=3, fixed data` where the design fixes the data for every seed, `Welch`).

Family-wise adjustment. A row's comparisons on one metric (with `none` and with each baseline row present)
form a family of m: each interval is at the Bonferroni level 1 - 0.05/m (95% when `none` is the only
reference, as before); the raw p stays in `|p`, and `|p_holm` is Holm across the row's metrics against `none`.
Censored metrics (a strength beyond the tested range) get no mean difference here (the report's sign test
handles them).
"""
from __future__ import annotations

import json
import math

import numpy as np

from .stats import ALPHA, compare, holm

NONE = "none"
BASELINES = ("noise_aug", "fgsm_at")
LEGEND = ("Δ: difference to `none` (same comparison key and protocol) and to each baseline arm present "
          f"({', '.join(BASELINES)}), paired over the seed blocks both rows have (`paired n=`; `fixed data` where "
          "the design fixes the data for every seed), Welch where they share fewer than two seeds; intervals "
          "Bonferroni-adjusted over the row's comparisons on the metric (95% with `none` alone)")


def _key_tuple(row: dict, group_cols: list[str]) -> tuple:
    return tuple(row[c] for c in group_cols)


def _best_match(r: dict, candidates: list[dict]) -> dict | None:
    """The candidate with the same comparison key and a compatible protocol that shares most tests."""
    mine = json.loads(r["protocol_map"])
    best, overlap = None, -1
    for b in candidates:
        if b["comparison_key"] != r["comparison_key"] or b is r:
            continue
        theirs = json.loads(b["protocol_map"])
        shared = mine.keys() & theirs.keys()
        if all(mine[t] == theirs[t] for t in shared) and len(shared) > overlap:
            best, overlap = b, len(shared)
    return best


def references(out_rows: list[dict]) -> list[list[tuple[str, dict]]]:
    """Per row: [(reference label, reference row)]: `none` first, then every baseline row (each label of a
    baseline arm) with the same comparison key and a compatible protocol. `none` rows have none."""
    nones = [b for b in out_rows if b["regularizer"] == NONE]
    out = []
    for r in out_rows:
        refs = []
        if r["regularizer"] != NONE:
            b = _best_match(r, nones)
            if b is not None:
                refs.append((NONE, b))
            for name in BASELINES:
                labels = sorted({b["label"] for b in out_rows if b["regularizer"] == name and b is not r})
                for lab in labels:
                    b = _best_match(r, [x for x in out_rows if x["label"] == lab and x["regularizer"] == name])
                    if b is not None:
                        refs.append((lab, b))
        out.append(refs)
    return out


def seeded_values(df, group_cols: list[str]) -> dict[tuple, tuple[list[int], list[float], str]]:
    """(group key + metric) -> (seeds, values, design) of the tidy rows, one per record."""
    out = {}
    design = df["design"] if "design" in df else None
    for key, g in df.groupby(group_cols + ["metric"], sort=False, dropna=False):
        d = "fixed data" if design is not None and (g["design"] == "fixed data").any() else "blocks"
        seeds = [int(s) if isinstance(s, (int, np.integer)) or (isinstance(s, float) and s == s) else None
                 for s in g["seed"]]
        out[key] = (seeds, [float(v) for v in g["value"]], d)
    return out


def _suffix(label: str) -> str:
    return "" if label == NONE else f"@{label}"


def _analysis(c, design: str) -> str:
    if c.analysis != "paired":
        return "Welch"
    extra = (f", {c.dropped_unpaired} unpaired left out" if c.dropped_unpaired else "") + \
        (", fixed data" if design == "fixed data" else "")
    return f"paired n={c.n_pairs}{extra}"


def _one(seeded, gk, bk, m, alpha) -> dict:
    """The difference of row gk to reference bk on metric m: compare() paired over common seeds, else Welch."""
    a, b = seeded.get(gk + (m,)), seeded.get(bk + (m,))
    if a is None or b is None:
        return {}
    unique = all(None not in x[0] and len(set(x[0])) == len(x[0]) for x in (a, b))
    c = compare(a[1], b[1], seeds_a=a[0], seeds_b=b[0], alpha=alpha, paired=None if unique else False)
    if c is None:
        fa, fb = [x for x in a[1] if math.isfinite(x)], [x for x in b[1] if math.isfinite(x)]
        d = float(np.mean(fa) - np.mean(fb)) if fa and fb else float("nan")
        return {"diff": d}
    return {"diff": c.diff, "ci_low": c.ci_low, "ci_high": c.ci_high, "p": c.p,
            "analysis": _analysis(c, a[2] if a[2] == b[2] else "fixed data"), "n_pairs": c.n_pairs}


STATS = ("diff", "ci_low", "ci_high", "p", "analysis", "n_pairs")


def differences(df, group_cols, out_rows, metrics, kinds, cens) -> dict[str, list]:
    """Columns `<metric>|<stat>` (to `none`) and `<metric>|<stat>@<baseline label>` for `STATS`, plus
    `<metric>|p_holm` (Holm across the row's summary metrics against `none`), `refs` (JSON list of the
    references) and `ref_level` (the level of every interval of the row)."""
    seeded = seeded_values(df, group_cols)
    refs = references(out_rows)
    labels = list(dict.fromkeys(lab for rr in refs for lab, _ in rr if lab != NONE))
    cols: dict[str, list] = {}
    n = len(out_rows)
    for m in metrics:
        for lab in [NONE] + labels:
            for s in STATS:
                cols[f"{m}|{s}{_suffix(lab)}"] = [None if s == "analysis" else float("nan")] * n
    for i, (r, rr) in enumerate(zip(out_rows, refs)):
        gk = _key_tuple(r, group_cols)
        alpha = ALPHA / max(len(rr), 1)
        for lab, b in rr:
            bk = _key_tuple(b, group_cols)
            for m in metrics:
                if cens.get(gk + (m,), 0) or cens.get(bk + (m,), 0):
                    continue  # censored seeds are lower bounds: no mean difference (the report's sign test)
                for s, v in _one(seeded, gk, bk, m, alpha).items():
                    cols[f"{m}|{s}{_suffix(lab)}"][i] = v
    cols = {k: v for k, v in cols.items() if "@" not in k or any(x is not None and x == x for x in v)}
    cols["refs"] = [json.dumps([lab for lab, _ in rr]) for rr in refs]
    cols["ref_level"] = [1 - ALPHA / max(len(rr), 1) if rr else float("nan") for rr in refs]
    _holm_columns(cols, [m for m in metrics if kinds.get(m) in ("summary", "auc")], n)
    return cols


def _holm_columns(cols: dict, tested: list[str], n: int) -> None:
    """Holm across the metrics of a row (costs and the score excluded): what a reader scanning a row for
    "significant" cells needs; the raw p stays in `|p`."""
    if not tested or not n:
        return
    pmat = np.array([cols[f"{m}|p"] for m in tested], float)  # [metric, row]
    adj = np.array([holm(pmat[:, j]) for j in range(n)], float).T
    for i, m in enumerate(tested):
        cols[f"{m}|p_holm"] = list(adj[i])


# ------------------------------------------------------------------------------------- text
def _isnan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def row_references(r) -> list[str]:
    try:
        return list(json.loads(r.get("refs") or "[]"))
    except (TypeError, ValueError):
        return [NONE]


def delta_text(r, m: str, scale: float = 1.0, sep: str = "; ") -> str:
    """`Δ +0.1 [+0.05, +0.15] paired n=5; Δ vs noise_aug -0.02 [...] Welch (97.5% each)`: the row's
    differences on metric m to each reference, each with its interval and analysis."""
    return sep.join(delta_parts(r, m, scale))


def delta_parts(r, m: str, scale: float = 1.0) -> list[str]:
    """The parts of `delta_text`, one per reference (`none`, then each baseline present); empty for `none`."""
    if r.get("regularizer") == NONE:
        return []
    parts = []
    for lab in row_references(r):
        sfx = _suffix(lab)
        d = r.get(f"{m}|diff{sfx}")
        if _isnan(d):
            continue
        lo, hi = r.get(f"{m}|ci_low{sfx}"), r.get(f"{m}|ci_high{sfx}")
        ci = "" if _isnan(lo) or _isnan(hi) else f" [{lo * scale:+.3g}, {hi * scale:+.3g}]"
        how = r.get(f"{m}|analysis{sfx}")
        name = "" if lab == NONE else f" vs {lab}"
        parts.append(f"Δ{name} {d * scale:+.3g}{ci}" + (f" {how}" if isinstance(how, str) and how else ""))
    level = r.get("ref_level")
    if len(parts) > 1 and not _isnan(level):
        parts[-1] += f" ({level:.2%} intervals each)"
    return parts

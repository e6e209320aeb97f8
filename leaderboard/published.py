"""RobustBench's published CIFAR-10 rows as data, and records of this project ranked among them.

`data/robustbench_cifar10.csv` holds RobustBench's published entries (L-inf 8/255, L2 0.5, corruptions)
as `model_info/cifar10/<threat>/<name>.json` gives them at the recorded commit (regenerate with
scripts/refresh_robustbench_rows.py): clean accuracy, `robust_acc` = the value RobustBench ranks by
(`external`, the best known robust accuracy, when present, else `autoattack_acc`; `corruptions_acc`),
and `autoattack_acc`, `external`, `unreliable` and `footnote` as published.

`board(table, "cifar10:Linf")` ranks every aggregated row evaluated with the `robustbench` suite's
matching test among them, with RobustBench's own key (`by="autoattack"`: AutoAttack accuracy alone),
ties sharing a rank (1 + the number of rows strictly better). Why a rank cannot mislead:
  * a row evaluated here also gets the 95% rank range its image count allows: the Clopper-Pearson
    interval of its robust accuracy over its n images (the images, not the seeds, are the sample:
    every seed sees the same first n test images), turned into ranks among the other rows;
  * fewer images than the published protocol (10,000) is marked "n images, not the published
    protocol" (`strict=True` refuses the board);
  * a row not on the published protocol is shown beside the ranked ones, unranked, with the reason:
    another eps, another test version, or generated (not the released) CIFAR-10-C images.
"""
from __future__ import annotations

import html
import json
import math
import re
from fractions import Fraction
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parent / "data" / "robustbench_cifar10.csv"
THREATS = {"linf": "Linf", "l2": "L2", "corruptions": "corruptions"}
ORDERS = ("robustbench", "autoattack")
# The published protocol per threat model, and the `robustbench` suite test (and its current version,
# attacks/robustbench_suite.py; tests/test_published_board.py checks they agree) that measures it.
PROTOCOL = {
    "Linf": {"test": "rb_autoattack_linf", "version": "2", "metric": "robust_accuracy", "eps": 8 / 255,
             "eps_text": "8/255", "n_images": 10000},
    "L2": {"test": "rb_autoattack_l2", "version": "2", "metric": "robust_accuracy", "eps": 0.5, "eps_text": "0.5",
           "n_images": 10000},
    "corruptions": {"test": "rb_corruptions", "version": "2", "metric": "accuracy", "eps": None, "eps_text": "",
                    "n_images": 10000},
}
METRIC = {t: f"{p['test']}.{p['metric']}" for t, p in PROTOCOL.items()}
CLEAN = "clean.accuracy"
LEVEL = 0.95
COLUMNS = ["rank", "rank_lo", "rank_hi", "source", "name", "robust_acc", "robust_lo", "robust_hi", "robust_sem",
           "autoattack_acc", "external", "unreliable", "clean_acc", "architecture", "paper", "eps", "n_images",
           "seeds", "notes", "footnote", "source_file", "commit"]


def parse_spec(spec: str) -> tuple[str, str]:
    """`cifar10:Linf` -> ("cifar10", "Linf"); clear errors for anything else."""
    ds, _, tm = str(spec).partition(":")
    if ds != "cifar10":
        raise ValueError(f"--robustbench: only cifar10 rows are published here, got {spec!r} (e.g. cifar10:Linf)")
    if tm.lower() not in THREATS:
        raise ValueError(f"--robustbench: unknown threat model {tm!r}; valid: cifar10:Linf, cifar10:L2, "
                         "cifar10:corruptions")
    return ds, THREATS[tm.lower()]


def load_published(threat_model: str | None = None, path: Path = DATA) -> pd.DataFrame:
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    for col in ("autoattack_acc", "external", "unreliable", "footnote"):  # files written before these columns
        if col not in df:
            df[col] = df["robust_acc"] if col == "autoattack_acc" else None
    if threat_model is not None:
        df = df[df["threat_model"] == threat_model].reset_index(drop=True)
    return df


def competition_rank(values) -> list[int]:
    """1 + the number of values strictly greater (NaN ranks last)."""
    v = [_key(x) for x in values]
    return [1 + sum(o > x for o in v) for x in v]


def _key(x) -> float:
    return -math.inf if (x is None or x != x) else float(x)


def binomial_interval(acc: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Clopper-Pearson interval of an accuracy measured on `n` images (k = acc * n successes; a mean
    over seeds on the same images may give a fractional k, which the beta quantiles accept)."""
    from scipy import stats
    if not n or acc != acc:
        return float("nan"), float("nan")
    k, a = float(acc) * n, (1 - level) / 2
    lo = 0.0 if k <= 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k >= n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def parse_eps(v) -> float | None:
    """`8/255`, `0.031`, 0.5 -> float; None when absent."""
    if v is None or (isinstance(v, float) and v != v) or str(v).strip() == "":
        return None
    return float(Fraction(str(v).strip())) if "/" in str(v) else float(v)


def _same_eps(a, b) -> bool:
    return a is not None and b is not None and abs(float(a) - float(b)) <= 1e-6


def images_used(entry: dict) -> int | None:
    """The images a `robustbench`-suite test actually used: its parameter (`n` for AutoAttack,
    `n_examples` for corruptions) capped by the images the evaluation had (`n_examples` of the entry)."""
    proto = (entry or {}).get("protocol") or {}
    have = (entry or {}).get("n_examples")
    param = proto.get("n", proto.get("n_examples"))
    vals = [int(v) for v in (param, have) if isinstance(v, (int, float)) and v == v]
    return min(vals) if vals else None


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and x != x)


def _here_rows(table: pd.DataFrame, threat: str) -> list[dict]:
    prot = PROTOCOL[threat]
    m, test = METRIC[threat], prot["test"]
    if table is None or table.empty or f"{m}|mean" not in table:
        return []
    rows = []
    for _, r in table.iterrows():
        n = r.get(f"{m}|n")
        if _nan(n) or int(n) == 0:
            continue
        try:
            entry = json.loads(r.get("protocol_map") or "{}").get(test) or {}
        except (TypeError, ValueError):
            entry = {}
        proto = entry.get("protocol") or {}
        n_img = images_used(entry)
        why, notes = [], []
        if str(proto.get("version")) != prot["version"]:
            why.append(f"{test} v{proto.get('version', '?')}, not the current v{prot['version']}: re-evaluate "
                       "(`bench eval RUN_DIR --suite robustbench`)")
        if prot["eps"] is not None and not _same_eps(proto.get("eps"), prot["eps"]):
            why.append(f"eps {proto.get('eps')}, not the published {prot['eps_text']}")
        if threat == "corruptions" and proto.get("source") != "released":
            why.append("generated CIFAR-10-C images, not the released files: not comparable with the published "
                       "rows (evaluate with --cifar10c-dir)" if proto.get("source") == "generated" else
                       "CIFAR-10-C source not recorded in the protocol: re-evaluate")
        if n_img is None or n_img < prot["n_images"]:
            notes.append(f"{n_img if n_img is not None else '?'} images, not the published protocol "
                         f"({prot['n_images']})")
        mean = float(r[f"{m}|mean"])
        lo, hi = binomial_interval(mean, n_img or 0)
        clean = r.get(f"{CLEAN}|mean")
        sem = r.get(f"{m}|sem")
        rows.append({"source": "evaluated here", "name": str(r["label"]), "robust_acc": 100 * mean,
                     "robust_lo": 100 * lo, "robust_hi": 100 * hi,
                     "robust_sem": None if _nan(sem) else 100 * float(sem),
                     "autoattack_acc": 100 * mean if threat != "corruptions" else None, "external": None,
                     "unreliable": None, "clean_acc": None if _nan(clean) else 100 * float(clean),
                     "architecture": str(r.get("arch")), "paper": "",
                     "eps": "" if proto.get("eps") is None else
                     prot["eps_text"] if _same_eps(proto["eps"], prot["eps"]) else f"{float(proto['eps']):.6g}",
                     "n_images": n_img, "seeds": r.get("seeds"), "notes": "; ".join(notes),
                     "unranked": "; ".join(why), "footnote": "", "source_file": "", "commit": ""})
    return rows


def _published_rows(pub: pd.DataFrame, threat: str) -> list[dict]:
    prot = PROTOCOL[threat]
    rows = []
    for _, p in pub.iterrows():
        notes = []
        unrel = None if _nan(p["unreliable"]) else str(p["unreliable"]).strip().lower() == "true"
        if not _nan(p["external"]):
            notes.append(f"best known {p['external']:.2f} (stronger attack than AutoAttack {p['autoattack_acc']:.2f})")
        if unrel:
            notes.append("AutoAttack evaluation potentially unreliable")
        if prot["eps"] is not None and not _same_eps(parse_eps(p["eps"]), prot["eps"]):
            notes.append(f"eps {p['eps']}, not {prot['eps_text']}")
        rows.append({"source": "published", "name": p["name"], "robust_acc": p["robust_acc"], "robust_lo": None,
                     "robust_hi": None, "robust_sem": None,
                     "autoattack_acc": None if _nan(p["autoattack_acc"]) else float(p["autoattack_acc"]),
                     "external": None if _nan(p["external"]) else float(p["external"]), "unreliable": unrel,
                     "clean_acc": p["clean_acc"], "architecture": p["architecture"], "paper": p["paper"],
                     "eps": "" if _nan(p["eps"]) else str(p["eps"]), "n_images": prot["n_images"], "seeds": "",
                     "notes": "; ".join(notes), "unranked": "",
                     "footnote": "" if _nan(p["footnote"]) else str(p["footnote"]),
                     "source_file": p["source_file"], "commit": p["commit"]})
    return rows


def board(table: pd.DataFrame | None, spec: str = "cifar10:Linf", path: Path = DATA, by: str = "robustbench",
          strict: bool = False) -> pd.DataFrame:
    """Published rows and this project's rows for one threat model, ranked together (see the module doc).
    `attrs`: threat_model, metric, order, protocol (text), empty (why no row evaluated here is ranked, or "")."""
    _, threat = parse_spec(spec)
    if by not in ORDERS:
        raise ValueError(f"--by: unknown order {by!r}; valid: {', '.join(ORDERS)}")
    if by == "autoattack" and threat == "corruptions":
        raise ValueError("--by autoattack orders the Linf/L2 boards; corruptions have no AutoAttack accuracy")
    prot = PROTOCOL[threat]
    rows = _published_rows(load_published(threat, path), threat) + _here_rows(table, threat)
    partial = [r for r in rows if r["source"] == "evaluated here" and not r["unranked"] and r["notes"]]
    if strict and partial:
        raise ValueError(f"--strict: {', '.join(r['name'] for r in partial)} measured on "
                         f"{', '.join(str(r['n_images']) for r in partial)} images, not the published protocol's "
                         f"{prot['n_images']}: evaluate with all {prot['n_images']} test images or leave --strict out")
    df = pd.DataFrame(rows)
    key_col = "autoattack_acc" if by == "autoattack" else "robust_acc"
    ranked = df["unranked"] == ""
    keys = [_key(v) for v in df[key_col]]
    ranked_keys = [k for k, ok in zip(keys, ranked) if ok]
    rank, lo_rank, hi_rank = [], [], []
    for i, (k, ok) in enumerate(zip(keys, ranked)):
        if not ok:
            rank.append(None), lo_rank.append(None), hi_rank.append(None)
            continue
        rank.append(1 + sum(o > k for o in ranked_keys))
        lo, hi = df.at[i, "robust_lo"], df.at[i, "robust_hi"]
        if df.at[i, "source"] == "evaluated here" and not _nan(lo):
            others = [o for j, (o, okj) in enumerate(zip(keys, ranked)) if okj and j != i]
            lo_rank.append(1 + sum(o > hi for o in others))  # best rank: the accuracy at the interval's top
            hi_rank.append(1 + sum(o > lo for o in others))  # worst rank: at its bottom
        else:
            lo_rank.append(None), hi_rank.append(None)
    df.insert(0, "rank", pd.array(rank, dtype="Int64"))
    df.insert(1, "rank_lo", pd.array(lo_rank, dtype="Int64"))
    df.insert(2, "rank_hi", pd.array(hi_rank, dtype="Int64"))
    df["_order"] = [(0 if ok else 1, -k) for k, ok in zip(keys, ranked)]
    df = df.sort_values(["_order", "source", "name"], kind="stable").drop(columns="_order").reset_index(drop=True)
    df["notes"] = [("; ".join(x for x in (f"not ranked: {u}" if u else "", n) if x)) for u, n in
                   zip(df["unranked"], df["notes"])]
    df = df.drop(columns="unranked")[COLUMNS]
    here = df[df["source"] == "evaluated here"]
    df.attrs.update(threat_model=threat, metric=METRIC[threat], order=by,
                    protocol=_protocol_line(threat, here), empty=_why_empty(table, threat, here))
    return df


def _protocol_line(threat: str, here: pd.DataFrame) -> str:
    prot = PROTOCOL[threat]
    what = ("mean accuracy over the 15 CIFAR-10-C corruptions x 5 severities (released files), "
            if threat == "corruptions" else f"AutoAttack standard at eps {prot['eps_text']}, ")
    ns = sorted({int(n) for n in here["n_images"] if not _nan(n)})
    mine = (f"rows evaluated here on {', '.join(map(str, ns))} images (first n test images); rank range = "
            f"{LEVEL:.0%} Clopper-Pearson interval of the robust accuracy over those images") if ns else \
        "no rows evaluated here"
    return f"protocol: {what}published rows on {prot['n_images']} test images; {mine}"


def _why_empty(table: pd.DataFrame | None, threat: str, here: pd.DataFrame) -> str:
    """Why no row evaluated here is ranked ("" when one is)."""
    prot = PROTOCOL[threat]
    if len(here) and here["rank"].notna().any():
        return ""
    if len(here):
        return (f"nothing ranked: the {len(here)} row(s) evaluated with {prot['test']} are not on the published "
                f"protocol ({'; '.join(sorted({n for n in here['notes'] if n}))})")
    n = 0 if table is None else len(table)
    skipped = set()
    suites = set()
    for _, r in (table.iterrows() if n else []):
        suites.add(str(r.get("suite_name")))
        try:
            why = json.loads(r.get("skipped") or "{}").get(prot["test"])
        except (TypeError, ValueError, AttributeError):
            why = None
        if why:
            skipped.add(str(why))
    if skipped:
        return (f"nothing ranked: {prot['test']} was skipped on every record ({'; '.join(sorted(skipped))})")
    return (f"nothing ranked: none of the {n} record row(s) was evaluated with {prot['test']} (the `robustbench` "
            f"suite; their suite(s): {', '.join(sorted(suites)) or '?'}); run `bench eval RUN_DIR --suite robustbench` "
            "on an RGB CIFAR-10 record")


def _f(x, d=2) -> str:
    return "" if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def plain(text: str) -> str:
    """A published footnote (HTML and MathJax) as one line of plain text."""
    t = re.sub(r"<br\s*/?>", "; ", str(text or ""), flags=re.I)
    t = html.unescape(re.sub(r"<[^>]+>", "", t))
    return " ".join(t.replace("\\(", "").replace("\\)", "").split())


def _title(df: pd.DataFrame) -> str:
    threat = df.attrs.get("threat_model", "?")
    if threat == "corruptions":
        what = "mean CIFAR-10-C accuracy, RobustBench's order"
    elif df.attrs.get("order") == "autoattack":
        what = "ordered by AutoAttack accuracy alone (--by autoattack), NOT RobustBench's order"
    else:
        what = "RobustBench's order: best known robust accuracy (`external` when published, else AutoAttack)"
    return (f"RobustBench CIFAR-10 {threat}: robust accuracy (%), {what}; * = evaluated here with the `robustbench` "
            "suite, rank [95% range from its image count]")


def render_board(df: pd.DataFrame, fmt: str = "term") -> str:
    title, proto = _title(df), df.attrs.get("protocol", "")
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        body = json.loads(df.to_json(orient="records"))
        return json.dumps({"title": title, "protocol": proto, "threat_model": df.attrs.get("threat_model"),
                           "order": df.attrs.get("order"), "empty": df.attrs.get("empty", ""), "rows": body},
                          indent=1) + "\n"
    cells, foot = [], []
    for _, r in df.iterrows():
        here = r["source"] == "evaluated here"
        if r["rank"] is pd.NA:
            rank = "-"
        else:
            rank = str(r["rank"]) + (f" [{r['rank_lo']}-{r['rank_hi']}]" if r["rank_lo"] is not pd.NA else "")
        rob = _f(r["robust_acc"]) + (f" ± {_f(r['robust_sem'])}" if here and not _nan(r["robust_sem"]) else "")
        if here and not _nan(r["robust_lo"]):
            rob += f" [{_f(r['robust_lo'], 1)}-{_f(r['robust_hi'], 1)}]"
        aa = _f(r["autoattack_acc"]) if df.attrs.get("threat_model") != "corruptions" else ""
        notes = r["notes"]
        if r["footnote"]:
            foot.append(f"[{len(foot) + 1}] {r['name']}: {plain(r['footnote'])}")
            notes = (notes + "; " if notes else "") + f"footnote [{len(foot)}]"
        cells.append([rank, ("* " if here else "") + str(r["name"]), rob, aa, _f(r["clean_acc"]),
                      str(r["architecture"]), str(r["eps"]), "" if _nan(r["n_images"]) else str(int(r["n_images"])),
                      f"seeds {r['seeds']}" if here else f"{r['source_file']}@{str(r['commit'])[:10]}", notes])
    head = ["rank", "model", "robust acc. (%)", "AutoAttack (%)", "clean acc. (%)", "architecture", "eps", "images",
            "source", "notes"]
    empty = df.attrs.get("empty", "")
    if fmt == "html":
        e = html.escape
        out = [f"<h2>{e(title)}</h2>", f"<p>{e(proto)}</p>" + (f"<p><b>{e(empty)}</b></p>" if empty else ""),
               '<table class="board rb"><thead><tr>' + "".join(f"<th>{e(h)}</th>" for h in head)
               + "</tr></thead><tbody>"]
        for c, (_, r) in zip(cells, df.iterrows()):
            cls = ' class="here"' if r["source"] == "evaluated here" else ""
            out.append(f"<tr{cls}>" + "".join(f"<td>{e(x)}</td>" for x in c) + "</tr>")
        out.append("</tbody></table>")
        out += [f"<p class=\"footnote\">{e(f)}</p>" for f in foot]
        return "\n".join(out) + "\n"
    if fmt == "md":
        lines = [f"## {title}", "", proto, ""] + ([f"**{empty}**", ""] if empty else [])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(x.replace("|", "\\|") for x in c) + " |" for c in cells]
        lines += [""] + [f"{f}  " for f in foot] if foot else []
        return "\n".join(lines) + "\n"
    from .render import strip_control
    w = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(head)]
    lines = [title, proto] + ([empty] if empty else [])
    lines.append("  ".join(h.ljust(w[i]) for i, h in enumerate(head)).rstrip())
    lines += [strip_control("  ".join(x.ljust(w[i]) for i, x in enumerate(c)).rstrip()) for c in cells]
    lines += [strip_control(f) for f in foot]
    return "\n".join(lines) + "\n"

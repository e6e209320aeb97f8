"""RobustBench's published CIFAR-10 rows as data, and records of this project ranked among them.

`data/robustbench_cifar10.csv` holds RobustBench's published entries (L-inf 8/255, L2 0.5, corruptions):
name, paper, architecture, clean and robust accuracy in percent, and the `model_info/` file and commit
of RobustBench/robustbench they were read from (regenerate with scripts/refresh_robustbench_rows.py).

`board(table, "cifar10:Linf")` puts every aggregated row that was evaluated with the `robustbench`
suite's matching test in rank among them: robust accuracy (AutoAttack for L-inf/L2, mean CIFAR-10-C
accuracy for corruptions) descending, ties sharing a rank (1 + the number of rows strictly better),
each row marked `evaluated here` or `published`. Rows evaluated here carry mean ± SEM over seeds and
the number of images attacked: RobustBench uses 10,000, so a rank from fewer images is approximate.
"""
from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parent / "data" / "robustbench_cifar10.csv"
THREATS = {"linf": "Linf", "l2": "L2", "corruptions": "corruptions"}
# the robustbench-suite metric that RobustBench ranks by, per threat model
METRIC = {"Linf": "rb_autoattack_linf.robust_accuracy", "L2": "rb_autoattack_l2.robust_accuracy",
          "corruptions": "rb_corruptions.accuracy"}
CLEAN = "clean.accuracy"
COLUMNS = ["rank", "source", "name", "robust_acc", "robust_sem", "clean_acc", "architecture", "paper", "n_images",
           "seeds", "source_file", "commit"]


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
    if threat_model is not None:
        df = df[df["threat_model"] == threat_model].reset_index(drop=True)
    return df


def competition_rank(values) -> list[int]:
    """1 + the number of values strictly greater (NaN ranks last)."""
    v = [(-math.inf if (x is None or x != x) else float(x)) for x in values]
    return [1 + sum(o > x for o in v) for x in v]


def _here_rows(table: pd.DataFrame, threat: str) -> list[dict]:
    m = METRIC[threat]
    if table is None or table.empty or f"{m}|mean" not in table:
        return []
    rows = []
    for _, r in table.iterrows():
        n = r.get(f"{m}|n")
        if n is None or n != n or int(n) == 0:
            continue
        pmap = {}
        try:
            import json
            pmap = json.loads(r.get("protocol_map") or "{}")
        except (TypeError, ValueError):
            pass
        test = m.split(".")[0]
        proto = (pmap.get(test) or {}).get("protocol") or {}
        n_img = proto.get("n") or proto.get("n_examples") or (pmap.get(test) or {}).get("n_examples")
        if proto.get("n") and (pmap.get(test) or {}).get("n_examples"):
            n_img = min(int(proto["n"]), int(pmap[test]["n_examples"]))
        clean = r.get(f"{CLEAN}|mean")
        rows.append({"source": "evaluated here", "name": str(r["label"]),
                     "robust_acc": 100 * float(r[f"{m}|mean"]),
                     "robust_sem": 100 * float(r[f"{m}|sem"]) if r.get(f"{m}|sem") == r.get(f"{m}|sem") else None,
                     "clean_acc": 100 * float(clean) if clean is not None and clean == clean else None,
                     "architecture": str(r.get("arch")), "paper": "", "n_images": n_img,
                     "seeds": r.get("seeds"), "source_file": "", "commit": ""})
    return rows


def board(table: pd.DataFrame | None, spec: str = "cifar10:Linf", path: Path = DATA) -> pd.DataFrame:
    """Published rows and this project's rows for one threat model, ranked together."""
    _, threat = parse_spec(spec)
    pub = load_published(threat, path)
    rows = [{"source": "published", "name": p["name"], "robust_acc": p["robust_acc"], "robust_sem": None,
             "clean_acc": p["clean_acc"], "architecture": p["architecture"], "paper": p["paper"],
             "n_images": 10000, "seeds": "", "source_file": p["source_file"], "commit": p["commit"]}
            for _, p in pub.iterrows()]
    rows += _here_rows(table, threat)
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "rank"])
    df.insert(0, "rank", competition_rank(df["robust_acc"]))
    df = df.sort_values(["rank", "source", "name"], kind="stable").reset_index(drop=True)
    df.attrs.update(threat_model=threat, metric=METRIC[threat])
    return df


def _f(x, d=2) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def render_board(df: pd.DataFrame, fmt: str = "term") -> str:
    threat = df.attrs.get("threat_model", "?")
    title = (f"RobustBench CIFAR-10 {threat}: robust accuracy (%) ({'mean CIFAR-10-C accuracy' if threat == 'corruptions' else 'AutoAttack standard'}), "
             f"published rows (10,000 images) and rows evaluated here with the `robustbench` suite (* = evaluated here)")
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return df.to_json(orient="records", indent=1) + "\n"
    cells = []
    for _, r in df.iterrows():
        here = r["source"] == "evaluated here"
        rob = _f(r["robust_acc"]) + (f" ± {_f(r['robust_sem'])}" if here and r["robust_sem"] is not None else "")
        cells.append([str(r["rank"]), ("* " if here else "") + str(r["name"]), rob, _f(r["clean_acc"]),
                      str(r["architecture"]), str(r["n_images"]),
                      f"seeds {r['seeds']}" if here else f"{r['source_file']}@{str(r['commit'])[:10]}"])
    head = ["rank", "model", "robust acc. (%)", "clean acc. (%)", "architecture", "images", "source"]
    if fmt == "html":
        e = html.escape
        out = [f"<h2>{e(title)}</h2>", '<table class="board rb"><thead><tr>'
               + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
        for c, (_, r) in zip(cells, df.iterrows()):
            cls = ' class="here"' if r["source"] == "evaluated here" else ""
            out.append(f"<tr{cls}>" + "".join(f"<td>{e(x)}</td>" for x in c) + "</tr>")
        out.append("</tbody></table>")
        return "\n".join(out) + "\n"
    if fmt == "md":
        lines = [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(x.replace("|", "\\|") for x in c) + " |" for c in cells]
        return "\n".join(lines) + "\n"
    from .render import strip_control
    w = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(head)]
    lines = [title, "  ".join(h.ljust(w[i]) for i, h in enumerate(head))]
    lines += [strip_control("  ".join(x.ljust(w[i]) for i, x in enumerate(c)).rstrip()) for c in cells]
    return "\n".join(lines) + "\n"

"""The audits of the CIFAR-10 study's report, per arm (issue 29, item 3): numbers that look right but are not.

* Two white-box families on the same images: DDN and FMN minimal L2 (median per record, mean over blocks) and
  their ratio; a larger distance that only one family sees, or that gradient attacks see and a decision-based
  attack does not, is a sign of gradient masking.
* The paper's 50-step boundary attack against the white-box minimum on the same images (squared L2 per pixel):
  the ratio says how far from converged the paper-protocol figure is.
* Images where an attack hit its step cap are counted, not called converged.
* Transfer FGSM: the forward gain beside the reverse direction (FGSM from the evaluated model against the
  unregularized surrogate) on the same line: a forward gain matched by the reverse direction says the models
  differ, not that one is robust.
* A test whose `none` curve never leaves 90% of clean accuracy cannot separate models at its strengths: flagged.
Everything is read from the records' metrics.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from leaderboard.derived import per_image_l2


def _suite(run_dir) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text()).get("suite", {})


def _details(s: dict, test: str) -> dict:
    return ((s.get(test) or {}).get("result") or {}).get("details") or {}


def record_audit(run_dir) -> dict:
    """One record's audit numbers."""
    s = _suite(run_dir)
    ddn, fmn = per_image_l2(s, "min_perturbation"), per_image_l2(s, "min_perturbation_fmn")
    common = sorted(set(ddn) & set(fmn))
    out = {}
    if common:
        a, b = np.array([ddn[i] for i in common]), np.array([fmn[i] for i in common])
        ok = np.isfinite(a) & np.isfinite(b)
        out["ddn_median_l2"] = float(np.median(a[np.isfinite(a)])) if np.isfinite(a).any() else np.nan
        out["fmn_median_l2"] = float(np.median(b[np.isfinite(b)])) if np.isfinite(b).any() else np.nan
        out["fmn_over_ddn_median"] = float(np.median(b[ok] / a[ok])) if ok.any() else np.nan
        out["ddn_failed"] = int((~np.isfinite(a)).sum())
        out["fmn_failed"] = int((~np.isfinite(b)).sum())
    for t, key in (("min_perturbation", "ddn_at_cap"), ("min_perturbation_fmn", "fmn_at_cap")):
        d = _details(s, t)
        su = d.get("steps_used")
        if isinstance(su, list) and d.get("steps"):
            out[key] = int(sum(int(x) >= int(d["steps"]) for x in su))
            out[key.replace("at_cap", "images")] = len(su)
    b = (((s.get("boundary") or {}).get("result") or {}).get("summary") or {}).get("median_sq_l2")
    m = (((s.get("min_perturbation") or {}).get("result") or {}).get("summary") or {}).get("median_sq_l2")
    if b is not None and m:
        out["boundary50_over_ddn"] = float(b) / float(m)
    return out


def arm_audits(tidy) -> dict[str, dict]:
    """{arm: {audit key: (mean over blocks, or sum for counts), n}} over the records in `tidy`."""
    per: dict[str, list[dict]] = {}
    for (reg, run_dir) in tidy[["regularizer", "run_dir"]].drop_duplicates().itertuples(index=False):
        per.setdefault(reg, []).append(record_audit(run_dir))
    out = {}
    for reg, recs in per.items():
        agg = {"n": len(recs)}
        for k in sorted({k for r in recs for k in r}):
            vals = [r[k] for r in recs if k in r]
            agg[k] = int(sum(vals)) if k.endswith(("_at_cap", "_failed", "_images")) else float(np.nanmean(vals))
        out[reg] = agg
    return out


def audit_table(tidy, regs) -> str:
    a = arm_audits(tidy)
    lines = ["| arm | blocks | DDN median L2 | FMN median L2 | FMN / DDN (per image, median) | DDN at its step cap | "
             "FMN at its step cap | failed (DDN, FMN) | 50-step boundary / DDN (sq. L2) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in regs:
        x = a.get(r)
        if not x:
            continue

        def f(k, d=3):
            v = x.get(k)
            return "n/a" if v is None or v != v else f"{v:.{d}g}"
        lines.append(f"| `{r}` | {x['n']} | {f('ddn_median_l2')} | {f('fmn_median_l2')} | {f('fmn_over_ddn_median')} | "
                     f"{x.get('ddn_at_cap', 'n/a')} of {x.get('ddn_images', 'n/a')} | {x.get('fmn_at_cap', 'n/a')} of "
                     f"{x.get('fmn_images', 'n/a')} | {x.get('ddn_failed', 0)}, {x.get('fmn_failed', 0)} | "
                     f"{f('boundary50_over_ddn', 3)}x |")
    return "\n".join(lines)


def transfer_lines(tidy, regs, compare) -> list[str]:
    """Forward gain and reverse gain against `none`, same line, per range (paper, extended)."""
    out = []
    for fwd, rev, label in (("transfer_fgsm", "transfer_fgsm_reverse", "papers' range"),
                            ("transfer_fgsm_extended", "transfer_fgsm_reverse_extended", "extended range")):
        for r in regs:
            if r == "none":
                continue
            cf = compare(tidy, r, "none", f"{fwd}.relative_robustness")
            cr = compare(tidy, r, "none", f"{rev}.relative_robustness")
            if cf is None or cr is None:
                continue
            out.append(f"- `{r}`, {label}: forward (surrogate -> `{r}`) {cf.diff:+.3f} [{cf.ci_low:+.3f}, "
                       f"{cf.ci_high:+.3f}]; reverse (`{r}` -> surrogate) {cr.diff:+.3f} [{cr.ci_low:+.3f}, "
                       f"{cr.ci_high:+.3f}] (relative robustness vs `none`, paired n={cf.n_pairs}; a forward gain "
                       "matched by the reverse one says the models differ, not that one resists attack)")
    return out


def separation_flags(tidy) -> list[str]:
    """Tests whose `none` curve never leaves 90% of clean accuracy (mean over `none`'s blocks)."""
    out = []
    none = tidy[tidy["regularizer"] == "none"]
    clean = none[none["metric"] == "clean.accuracy"].set_index("seed")["value"]
    for t in ("gaussian_noise", "gaussian_noise_extended", "transfer_fgsm", "transfer_fgsm_extended"):
        last = none[none["metric"] == f"{t}.accuracy_max_level"].set_index("seed")["value"]
        common = clean.index.intersection(last.index)
        if len(common) == 0:
            continue
        frac = float((last[common] / clean[common]).mean())
        word = "**cannot separate models at these strengths**" if frac > 0.9 else "leaves 90% of clean"
        out.append(f"- `{t}`: `none` keeps {frac:.0%} of its clean accuracy at the strongest level: {word}")
    return out

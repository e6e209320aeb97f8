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
* The decision-based audit (`run_decision_audit`): foolbox's HopSkipJump (L2), a query-only attack, on the first
  DECISION["n"] of the white-box attacks' images, for 3 blocks per distance-claim arm, stored in the record's
  metrics.json under `decision_audit` (beside, not in, the suite: the records' protocol stays `cifar_cpu`).
  Per image: its L2 over the white-box minimum (DDN, FMN). A ratio below 1 (a query-only attack found a closer
  adversarial than the gradient attacks) is what gradient masking looks like; the ratio is also the audit of
  convergence: within 2x in L2 (4x in squared L2, `attacks.suite.STALL_RATIO`) counts as converged.
  Why HopSkipJump and not the suite's `boundary_converged`: on this CPU 6000 Boundary-attack steps on 20 images
  of one model ran for minutes and stayed ~15x (squared L2) above the white-box minimum; HopSkipJump at 32
  iterations costs ~13k forwards per image (~2.5 CPU-minutes for 20 images of a width-0.25 model) and lands
  within 1.2-4x (L2) on most images (calibration on `none` s0, 2026-12-06).
Everything is read from the records' metrics.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.core.records import as_record
from leaderboard.derived import per_image_l2

DECISION = {"n": 20, "steps": 32}  # HopSkipJump's parameters in the decision-based audit
DECISION_ARMS = ("none", "pixel_sim", "pixel_th", "neural_pred", "fgsm_at")  # the arms with distance claims
DECISION_BLOCKS = (0, 1, 2)
COUNTS = ("_at_cap", "_failed", "_images", "_converged", "_below_whitebox")  # summed over blocks, not averaged
CONVERGED_L2 = 2.0  # within 2x of the white-box minimum in L2 = STALL_RATIO (4x) in squared L2


def _details(s: dict, test: str) -> dict:
    return ((s.get(test) or {}).get("result") or {}).get("details") or {}


def record_audit(run_dir) -> dict:
    """One record's audit numbers."""
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    s = metrics.get("suite", {})
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
    out.update(decision_numbers(metrics))
    b = (((s.get("boundary") or {}).get("result") or {}).get("summary") or {}).get("median_sq_l2")
    m = (((s.get("min_perturbation") or {}).get("result") or {}).get("summary") or {}).get("median_sq_l2")
    if b is not None and m:
        out["boundary50_over_ddn"] = float(b) / float(m)
    return out


def run_decision_audit(run_dir, log=print) -> dict:
    """HopSkipJump (DECISION) on a trained record's first DECISION["n"] white-box images (same suite seed, so
    the same images), stored under `decision_audit` in its metrics.json; a record that has it is skipped."""
    import attacks
    record = as_record(run_dir)
    m = record.metrics()
    if "decision_audit" in m:
        return m["decision_audit"]
    seed = int(m["suite"]["min_perturbation"]["seed"])
    ctx = attacks.context_for_run(record.path, seed=seed, progress=False)
    res = attacks.TESTS["hop_skip_jump"](**DECISION)(ctx)
    record.merge({"decision_audit": res})
    log(f"[audit] {record.name}: hop_skip_jump on {DECISION['n']} images in {res['cost']['seconds']:.0f} s")
    return res


def decision_numbers(metrics: dict) -> dict:
    """Per record: HopSkipJump's L2 over the white-box minimum (min of DDN and FMN) on the images both have."""
    dec = per_image_l2({"hop_skip_jump": metrics.get("decision_audit")}, "hop_skip_jump")
    s = metrics.get("suite", {})
    wb = [per_image_l2(s, t) for t in ("min_perturbation", "min_perturbation_fmn")]
    common = sorted(i for i in dec if all(i in w for w in wb))
    if not common:
        return {}
    best = np.array([min(w[i] for w in wb) for i in common])
    hs = np.array([dec[i] for i in common])
    ok = np.isfinite(best) & np.isfinite(hs)
    r = hs[ok] / best[ok]
    return {"dec_images": len(common), "dec_failed": int((~np.isfinite(hs)).sum()),
            "dec_ratio_median": float(np.median(r)) if len(r) else np.nan,
            "dec_converged": int((r <= CONVERGED_L2).sum()), "dec_below_whitebox": int((r < 0.95).sum())}


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
            agg[k] = int(sum(vals)) if k.endswith(COUNTS) else float(np.nanmean(vals))
        agg["dec_blocks"] = sum("dec_images" in r for r in recs)
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


def decision_table(tidy, regs) -> list[str]:
    """The decision-based audit per arm (blocks that have it); nothing when no record has it."""
    a = arm_audits(tidy)
    rows = [(r, a[r]) for r in regs if a.get(r, {}).get("dec_blocks")]
    if not rows:
        return []
    lines = [f"HopSkipJump (L2, {DECISION['steps']} iterations, query-only) on the first {DECISION['n']} of the "
             "white-box attacks' images of blocks " + ", ".join(map(str, DECISION_BLOCKS)) + " per arm; per image "
             "its L2 over the white-box minimum (DDN, FMN) of the same image. Below 1: the query-only attack found a "
             f"closer adversarial than the gradient attacks (gradient masking); within {CONVERGED_L2:g}x (L2): "
             "converged by this audit's rule (4x in squared L2, the suite's stall flag).", "",
             "| arm | blocks | images | HopSkipJump / white-box L2 (median per block, mean) | within 2x (converged) | "
             "below 0.95x (closer than white-box) | failed |", "|---|---|---|---|---|---|---|"]
    for r, x in rows:
        lines.append(f"| `{r}` | {x['dec_blocks']} | {x.get('dec_images', 0)} | "
                     f"{x.get('dec_ratio_median', np.nan):.2f} | {x.get('dec_converged', 0)} | "
                     f"{x.get('dec_below_whitebox', 0)} | {x.get('dec_failed', 0)} |")
    return lines


def _ci(c) -> str:
    return f"{c.diff:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]"


def _matched_diff(matched, reg: str, metric: str) -> str:
    """The arm minus `none` at matched validation accuracy, paired 95% t interval over the blocks (unadjusted)."""
    from leaderboard.matched import paired_interval_text
    if matched is None or not len(matched):
        return ""
    sub = matched[(matched["regularizer"] == reg) & (matched["metric"] == metric)]
    d = (sub["value"] - sub["none_matched"]).dropna().to_numpy(float)
    if len(d) < 2:
        return ""
    return f"vs `none` at matched accuracy {paired_interval_text(d)} (paired, {len(d)} blocks, 95% unadjusted)"


def line_audit(tidy, comp: dict, audits: dict, matched, compare) -> str:
    """The audits that bear on one claim line (`comp`: a comparison's dict), for the line itself: the distance's
    step caps and the query-only attack's ratio for both arms; transfer FGSM's reverse direction and the shuffled
    control's forward gain; the difference to `none` at matched accuracy."""
    reg, base, m = comp["reg"], comp["base"], comp["metric"]
    notes = []
    if m == "minimal_l2.median_l2":
        for arm in (reg, base):
            a = audits.get(arm, {})
            bits = [f"DDN at its cap on {a.get('ddn_at_cap', '?')} of {a.get('ddn_images', '?')} images",
                    f"FMN on {a.get('fmn_at_cap', '?')} of {a.get('fmn_images', '?')}"]
            if a.get("dec_blocks"):
                bits.append(f"HopSkipJump / white-box L2 {a['dec_ratio_median']:.2f}, closer than white-box on "
                            f"{a.get('dec_below_whitebox', 0)} of {a.get('dec_images', 0)}")
            notes.append(f"`{arm}`: " + ", ".join(bits))
    if m.startswith("transfer_fgsm") and base == "none":
        cr = compare(tidy, reg, "none", m.replace("transfer_fgsm", "transfer_fgsm_reverse", 1))
        if cr is not None:
            notes.append(f"reverse direction vs `none` {_ci(cr)}")
        cs = compare(tidy, "pixel_shuffle", "none", m) if reg != "pixel_shuffle" else None
        if cs is not None:
            notes.append(f"shuffled control (`pixel_shuffle`) forward vs `none` {_ci(cs)}")
    if base == "none" and m != "clean.accuracy":
        md = _matched_diff(matched, reg, m)
        if md:
            notes.append(md)
    return "; ".join(notes)


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

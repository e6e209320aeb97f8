"""The study report (`bench reproduce`): its sections assembled from the records and the study file.

Every number is read from the finished records (`bench.app.report_tables`, `bench.app.claims`); the prose that
is not generated comes from the study file (`bench.app.studyfile`: title, protocol notes, differences from the
papers, the rule note), so a study changes its report by changing its file. The header names the command and
its invocation history; from "## Protocol" on, the report depends on the records and the file only
(tests/test_studyfile.py renders the cpu study from a copy of its committed records and compares).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from bench.app import claims, report_extras, studyfile
from bench.app.report_tables import budget_section, budgets, honesty_section, key_table
from bench.core.records import Record

def claims_section(tidy, claim_list: list[dict]) -> tuple[str, list[dict]]:
    """The claims of one group judged on `tidy`: one subsection per claim, one line per comparison."""
    from leaderboard import stats
    res = claims.evaluate_claims(tidy, claim_list)
    lines = []
    for cl in res:
        v = cl["verdict"] + (f" ({cl['note']})" if cl.get("note") else "")
        fam = "; ".join(f"{f}: **{w}**" for f, w in (cl.get("per_family") or {}).items())
        lines += [f"### {cl['title']}", "", f"*Claim:* {cl['text']}.", "",
                  f"*Quantifier:* `{cl['quantifier']}` ({stats.QUANTIFIER_TEXT[cl['quantifier']]}).", "",
                  f"*Verdict:* **{v}**." + (f" Per family: {fam}." if fam else ""), ""]
        lines += [f"- {claims.fmt_comparison(c)}" for c in cl["comparisons"]]
        lines.append("")
    return "\n".join(lines), res


def rule_md(study: studyfile.Study) -> str:
    """The verdict rule as the code applies it, then the study's own note with its smallest effects."""
    from leaderboard import stats
    sesoi = ", ".join(f"`{m}` {'+' + format(x, '.0%') + ' of the baseline' if k == 'rel' else f'+{x:g}'}"
                      for m, (k, x) in study.sesoi.items())
    note = study.rule_note.replace("{sesoi}", sesoi)
    return "Rule (generated from `leaderboard.stats`, the code that applies it): " + stats.rule_text() + (
        " " + note if note else "")


def claims_md(main, study: studyfile.Study, out: Path) -> tuple[list[str], list[dict]]:
    """The claims of every group on the main budget's records. One group over every task is today's report
    ("## Claims (main budget)"); several groups each get their own section, judged on their tasks' records
    only, so a group's claims never share records or an adjustment with another's."""
    if len(study.groups) == 1 and set(study.groups[0]["tasks"]) == {t.name for t in study.tasks}:
        text, res = claims_section(main, study.groups[0]["claims"])
        return ["## Claims (main budget)", "", rule_md(study) + "\n\n" + text], res
    md, res = ["## Claims (main budget)", "", rule_md(study), ""], []
    for g in study.groups:
        text, r = claims_section(group_tidy(main, study, g, out), g["claims"])
        md += [f"## Claims: {g['title']} (main budget)", "", text]
        res += [{**x, "group": g["name"]} for x in r]
    return md, res


def group_tidy(tidy, study: studyfile.Study, group: dict, out: Path):
    """The records of a group's tasks: the run folders the tasks' sweeps plan (a task is one comparison)."""
    from bench.app.sweep import SweepSpec, plan_sweep
    dirs = set()
    for sw in study.sweeps():
        if sw["task"] in group["tasks"]:
            spec = SweepSpec(regularizers=sw["regularizers"], seeds=sw["seeds"], preset=sw["preset"],
                             datasets=sw["datasets"], overrides={"out": str(out), **sw["overrides"]},
                             sets=sw["sets"], suites=study.suites)
            dirs |= {Path(s.run_dir).name for s in plan_sweep(spec).runs}
    return tidy[tidy["run_dir"].map(lambda d: Path(d).name in dirs)] if len(tidy) else tidy


def render_report(study: studyfile.Study, out: Path, report: Path, sims: list[dict], meta: dict, log=print) -> Path:
    """The report and its figures, every number read from the finished records under `out`."""
    import leaderboard
    from bench.core import store
    fig_dir = report.parent / (report.stem + "_figures")
    tidy = _finished(leaderboard.load_records(out), study.main_suite)
    order = budgets(tidy)
    main_b = order[0] if order else None
    main = tidy[tidy["budget_steps"] == main_b] if main_b is not None else tidy
    regs = [r for r in study.arms() if (tidy["regularizer"] == r).any()]
    regs += [b for b in report_extras.baselines_present(tidy) if b not in regs]
    rel = lambda p: os.path.relpath(p, report.parent)  # noqa: E731
    plots = leaderboard.plot_all([str(out)], str(fig_dir))
    if isinstance(plots, dict):
        plots = [p for v in plots.values() for p in (v if isinstance(v, (list, tuple)) else [v])]
    fig_dir.mkdir(parents=True, exist_ok=True)
    table = leaderboard.build_table(tidy)
    for fmt in ("md", "csv", "html"):
        store.atomic_write_bytes(fig_dir / f"leaderboard.{fmt}", leaderboard.render(table, fmt).encode())
    claims_part, claim_results = claims_md(main, study, out)
    md = _header_md(study, tidy, meta)
    md += _protocol_md(study, out, tidy, order, main_b)
    finished = set(tidy["run_dir"])
    details = [d for d in leaderboard.load_details(out) if d["meta"]["run_dir"] in finished]
    md += _leaderboard_md(tidy, order, main_b, regs, fig_dir, rel, details)
    md += claims_part
    md += _budget_md(tidy, order, regs, fig_dir, rel, study, out)
    md += ["## Honesty checks (main budget)", "", honesty_section(main, regs), "",
           "## S^pixel vs S^neural-pred", ""]
    md += _similarity_md(sims, rel) + [""] + report_extras.matched_md(tidy, out) + report_extras.pareto_md(plots, rel)
    md += ["## Figures", ""] + [f"![{Path(p).stem}]({rel(p)})" for p in sorted(str(x) for x in plots or [])
                                if p.endswith(".png") and not Path(p).stem.startswith("pareto")] + [""]
    store.atomic_write_bytes(report, "\n".join(md).encode())
    store.atomic_write_json(report.with_suffix(".json"), {"meta": meta, "main_budget": main_b, "budgets": order,
                                                          "claims": claim_results, "similarity": sims})
    log(f"[reproduce] wrote {report}")
    return report


def _finished(tidy, suite: str | None):
    """Only records whose whole suite is in (a record still being evaluated would enter with some tests); each
    record against its own suite where the records name it, else `suite`."""
    if len(tidy):
        named = "suite_name" in tidy
        per_run = tidy.groupby("run_dir").agg(tests=("test", set), **({"suite": ("suite_name", "first")}
                                                                      if named else {}))
        keep = [d for d, row in per_run.iterrows()
                if {t for t, _ in _suite_tests((row.get("suite") if named else None) or suite)} <= row["tests"]]
        tidy = tidy[tidy["run_dir"].isin(keep)]
    return tidy


def _header_md(study: studyfile.Study, tidy, meta: dict) -> list[str]:
    finished = int(tidy["run_dir"].nunique()) if len(tidy) else 0
    planned = study.planned_records()
    md = [f"# {study.title}", ""]
    if finished < planned:
        md += [f"> **Partial study: {finished} of the {planned} planned records are finished.** Every table, "
               "verdict and figure below uses only those; the verdicts are provisional. Re-running the command "
               "reuses every finished record and runs only what is missing.", ""]
    md += ["Generated by `" + meta["command"] + "`; nothing below is typed by hand except the prose.",
           f"Rendered {meta['finished']} on {meta['device']}. Invocations of the command on these records "
           "(each reuses every finished record and runs only what is missing):", ""]
    md += [f"- {h['finished']}: `{h['command']}`: {h['duration_min']:.1f} min, {h.get('jobs_run', '?')} jobs run"
           for h in meta.get("history", [meta])]
    return md + ["",
                 f"Total recorded compute of the records: {meta['train_s'] / 60:.1f} min training, "
                 f"{meta['eval_s'] / 60:.1f} min evaluation (evaluation / training = "
                 f"{meta['eval_s'] / max(meta['train_s'], 1e-9):.2f}).", "",
                 "## Protocol", ""]


def _protocol_md(study: studyfile.Study, out: Path, tidy, order, main_b) -> list[str]:
    n_seeds = {b: tidy[tidy["budget_steps"] == b].groupby("regularizer")["seed"].nunique().to_dict() for b in order}
    md = [f"- Step budget {b}{' (main)' if b == main_b else ''}: seeds per regularizer "
          + ", ".join(f"{k} {v}" for k, v in sorted(n_seeds[b].items())) + "; training (from the records' "
          "config.json): " + _record_setup(out, b) + "." for b in order]
    md += ["- Suite `" + suite + "`: " + "; ".join(f"{t} {json.dumps(p)}" if p else t for t, p in _suite_tests(suite))
           + "." for suite in dict.fromkeys(study.suite_of(t) for t in study.tasks)]
    md += [f"- {n}" for n in study.protocol_notes] + ["", "### Differences from the papers' protocols", ""]
    md += [f"- {d}" for d in study.differences]
    suite_p = dict(_suite_tests(study.main_suite))
    if "boundary" in suite_p:
        import attacks
        b = suite_p["boundary"]
        mp = attacks.TESTS["min_perturbation"](**suite_p.get("min_perturbation", {})).params
        md.append(f"- Boundary attack: {b.get('n')} test images x {b.get('repeats')} repeats (paper: 1000 x 5), "
                  f"{b.get('steps')} steps as in the reference code, each repeat from its own seeded random "
                  f"other-class starting image (so the repeats are independent); `min_perturbation` "
                  f"({getattr(mp, 'attack', 'ddn')}, at most {getattr(mp, 'steps', '?')} steps with early stopping) "
                  "on the "
                  "same images is its converged reference.")
    def _kv(k, v):
        return f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
    extras = [f"{t} ({', '.join(_kv(k, v) for k, v in suite_p[t].items())})"
              for t in ("pgd", "autoattack", "hop_skip_jump") if t in suite_p]
    if extras:
        md.append("- Extras the papers did not run: " + "; ".join(extras) + ".")
    return md


def _leaderboard_md(tidy, order, main_b, regs, fig_dir: Path, rel, details=None) -> list[str]:
    md = ["", "## Leaderboard (key metrics)", "",
          "The key columns keep clean accuracy apart from robustness: *relative robustness* is the mean over the "
          "perturbed levels of accuracy / the model's own clean accuracy on the same images; *at half clean* is "
          "the strength at which accuracy falls to half of clean (interpolated; a seed whose accuracy never falls "
          "that far is censored at the top level, counted, and compared by a sign test); *error increase* is the "
          "corruption error minus clean error (absolute); *relative mCE* is that increase relative to `none`'s "
          "(Hendrycks & Dietterich), over the corruptions where none's increase is large enough to divide by "
          "(`leaderboard.derived`); *minimal L2* is the median over images of the smallest plain L2 any converged "
          "attack found. Each cell: mean ± SEM over seeds (n); under it Δ = difference to `none` [95% interval, "
          "paired over the seed blocks both have unless marked Welch] and the p-value Holm-corrected across the "
          "row's metrics. Every metric of every test: "
          f"[leaderboard.md]({rel(fig_dir / 'leaderboard.md')}), "
          f"[leaderboard.csv]({rel(fig_dir / 'leaderboard.csv')}), "
          f"[leaderboard.html]({rel(fig_dir / 'leaderboard.html')}).", ""]
    for b in order:
        sub = tidy[tidy["budget_steps"] == b]
        here = [r for r in regs if (sub["regularizer"] == r).any()]
        md += [f"### Step budget {b}{' (main)' if b == main_b else ''}", ""] + report_extras.baselines_note(sub) + [
            key_table(sub, here, details), ""]
    return md


def _budget_md(tidy, order, regs, fig_dir: Path, rel, study: studyfile.Study, out: Path) -> list[str]:
    budget_md, budget_png = budget_section(tidy, fig_dir, regs)
    md = ["## Effect versus training length", "", budget_md, ""]
    if budget_png:
        md += [f"![differences to none against the step budget]({rel(budget_png)})", ""]
    if len(order) > 1:
        md += ["Verdicts of the same claims at the other budgets (fewer seeds, so wider intervals):", ""]
        for b in order[1:]:
            sub = tidy[tidy["budget_steps"] == b]
            for g in study.groups:
                res = claims.evaluate_claims(group_tidy(sub, study, g, out) if len(study.groups) > 1 else sub,
                                             g["claims"])
                md += [f"- {b} steps{'' if len(study.groups) == 1 else ', ' + g['title']}: "
                       + "; ".join(f"{c['id']}: **{c['verdict']}**" for c in res)]
        md.append("")
    return md


def _similarity_md(sims: list[dict], rel) -> list[str]:
    md = []
    for s in sims:
        md.append(f"- **{s['label']}** ({s['n_images']} images, {s['pairs']} pairs, response model "
                  f"`{s['response_model'].get('name', s['response_model'])}`): Pearson r = {s['pearson']:.3f}, "
                  f"Spearman rho = {s['spearman']:.3f}; "
                  f"pairs with |S^pixel| > {s['th']}: {100 * s['pixel']['pass']:.2f}%, "
                  f"|S^neural-pred| > {s['th']}: {100 * s['neural_pred']['pass']:.2f}%.")
        png = [f for f in s.get("figures", []) if f.endswith(".png")]
        if png:
            md.append(f"\n  ![similarity {s['label']}]({rel(png[0])})\n")
    return md


def _record_setup(out: Path, steps: int | None = None) -> str:
    for record in Record.find(out):
        rec = record.header() or {}
        c, b = rec.get("config", {}), rec.get("budget", {})
        if c.get("regularizer") != "none" or (steps is not None and b.get("steps") != steps):
            continue
        keys = ("preset", "dataset", "color", "arch", "width", "n_train", "n_test", "epochs", "batch_size", "lr",
                "momentum", "weight_decay", "lr_schedule", "lr_step_epochs", "lr_gamma", "lr_cycle_epochs", "select",
                "reg_forward", "input_scaling", "suite")
        return (", ".join(f"{k}={c.get(k)}" for k in keys) + f"; step budget {b.get('steps')} "
                f"({b.get('epochs')} epochs x {b.get('steps_per_epoch')} steps), identical for every regularizer")
    return "no record found"


def _suite_tests(name):
    import attacks
    return attacks.SUITES.get(name, [])

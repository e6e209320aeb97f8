"""The CIFAR-10 CPU study (issue 29): its report renderer, its plan as sweep commands, and its audit command.

The study itself is data: `bench/app/studies/cifar10_cpu.toml` (tasks, arms and seed blocks, suite, claims,
smallest effects, the protocol and compute prose). `bench reproduce cifar10_cpu --out results/cifar10` runs what
is missing and renders through `render_study` here (the file names this renderer); so does
`python -m bench.app.cifar_study render`. What stays code is what no other study has: the pilot's table, the
audits (bench.app.cifar_audits), the accuracy-matched control and the colour section. Its records live in
`docs/cifar10_records/` (configs, metrics and logs; no weights); `python -m bench.app.cifar_study plan` prints the
equivalent `bench sweep` commands (resumable: a finished record is skipped). Every number in the report is read
from the records.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

from bench.app import claims as C
from bench.app import report_extras, studyfile

STUDY = "cifar10_cpu"  # the built-in study file
OUT = "results/cifar10"  # where the plan's sweeps write (weights included); records are copied to docs/


@functools.lru_cache(maxsize=None)
def study() -> studyfile.Study:
    return studyfile.load(STUDY)


def plan() -> list[dict]:
    """Arms and seed blocks per task, in the file's order (the issue's priority)."""
    return [{"task": t.name, "color": t.color, "arms": list(a["regularizers"]), "seeds": a["seeds"]}
            for t in study().tasks for a in t.arms]


def _group(name: str) -> dict:
    return next(g for g in study().groups if g["name"] == name)


def ext_metrics() -> list[str]:
    """The metrics the claims judge robustness on (the extended ranges and the minimal L2)."""
    return [s.metric for s in _group("gray")["claims"][0]["specs"]]


def commands() -> list[str]:
    """The study's sweeps as `bench sweep` commands (2 workers x 1 thread, into OUT)."""
    out = []
    for sw in study().sweeps():
        args = ["python", "-m", "bench", "sweep", "--regularizers", ",".join(sw["regularizers"]), "--seeds",
                sw["seeds"], "--color", sw["overrides"]["color"], "--yes", "--no-leaderboard", "--preset",
                sw["preset"], "--datasets", sw["datasets"], "--suite", sw["overrides"]["suite"], "--workers", "2",
                "--threads", "1", "--out", OUT] + [a for x in sw["sets"] for a in ("--set", x)]
        out.append(" ".join(args))
    return out


def study_claims() -> list[dict]:
    """The grayscale claims: relative robustness judged on the extended ranges (where `none` falls to half of
    clean), the distance on the converged white-box minimum (DDN and FMN), the clean cost as non-inferiority;
    each against `none`, and against each baseline."""
    return _group("gray")["claims"]


def colour_claims() -> list[dict]:
    """Colour (Attias et al. Fig. 4) runs `none`, `pixel_sim`, `pixel_th` only: their claims against `none`,
    judged on the colour records alone (their own adjustment)."""
    return _group("rgb")["claims"]


def _tidy(root: Path, color: str | None):
    """The study's records of one task's colour (None: both tasks)."""
    from leaderboard.aggregate import load_records
    t = load_records(root)
    if not len(t):
        return t
    return t[((t["color"] == color) if color else True) & (t["suite_name"] == "cifar_cpu")]


def status(root: Path) -> list[str]:
    """Which arms have how many evaluated blocks, against the plan."""
    lines = ["| task | arm | evaluated blocks | missing blocks |", "|---|---|---|---|"]
    for p in plan():
        t = _tidy(root, p["color"])
        lo, hi = (int(x) for x in p["seeds"].split("-"))
        want = set(range(lo, hi + 1))
        for arm in p["arms"]:
            have = set() if not len(t) else {int(s) for s in t[(t["regularizer"] == arm)
                                                               & (t["metric"] == "clean.accuracy")]["seed"]}
            miss = sorted(want - have)
            lines.append(f"| {p['task']} | `{arm}` | {len(have & want)} of {len(want)} | "
                         + (", ".join(map(str, miss)) if miss else "none") + " |")
    return lines


def measured_cost(tidy) -> str:
    """What the evaluated runs so far cost (process seconds, one thread each; surrogates have no suite)."""
    if not len(tidy):
        return ""
    tr = tidy[tidy["metric"] == "train.wall_s"]["value"].sum()
    ev = tidy[tidy["metric"] == "eval.seconds"]["value"].sum()
    n = tidy[tidy["metric"] == "train.wall_s"]["run_dir"].nunique()
    return (f"Measured in the {n} evaluated runs (not counted: their surrogates and `none`'s epoch evaluations): "
            f"{tr / 60:.0f} min of training and {ev / 60:.0f} min of evaluation "
            "(process time, one thread each, two worker processes on the 2-core CPU).")


def pilot_section(root: Path) -> str:
    """The pilot's validation accuracy per epoch and where `none` halves on the extended ranges."""
    runs = sorted(d for d in root.iterdir() if (d / "train_log.jsonl").is_file()) if root.is_dir() else []
    rows, ext, late = [], [], []
    for d in runs:
        head = json.loads((d / "config.json").read_text())
        if head["config"]["seed"] >= 1000:
            continue
        log = [json.loads(x) for x in (d / "train_log.jsonl").read_text().splitlines()]
        acc = [x["val_acc"] for x in log if "val_acc" in x]
        late.append(sum(acc[-3:]) / 3 - sum(acc[-6:-3]) / 3)
        rows.append(f"| {head['config']['seed']} | " + " | ".join(f"{a:.3f}" for a in acc) + " |")
        suite = json.loads((d / "metrics.json").read_text()).get("suite", {})
        clean = suite["clean"]["result"]["summary"]["accuracy"]
        cells = [f"{clean:.3f}"]
        for t in ("gaussian_noise", "gaussian_noise_extended", "transfer_fgsm", "transfer_fgsm_extended"):
            su = suite[t]["result"]["summary"]
            s50 = "censored (> top)" if su["strength_50"] is None else f"{su['strength_50']:.3g}"
            cells.append(f"{su['relative_robustness']:.3f}; {su['accuracy_max_level'] / clean:.0%} of clean at the "
                         f"top; half clean at {s50}")
        ext.append(f"| {head['config']['seed']} | " + " | ".join(cells) + " |")
    if not rows:
        return "No pilot records found."
    n_ep = max(r.count("|") for r in rows) - 2
    return ("Three `none` seeds (100-102) outside the study, at the study's config, 13 epochs (936 steps), suite "
            "`cifar_cpu_pilot` (records: `docs/cifar10_pilot_records/`). Validation accuracy (509 images) per "
            "epoch:\n\n| seed | " + " | ".join(str(e) for e in range(1, n_ep + 1)) + " |\n|" + "---|" * (n_ep + 1)
            + "\n" + "\n".join(rows) + "\n\nMean validation accuracy of the last 3 epochs minus that of the 3 before: "
            + ", ".join(f"{x:+.3f}" for x in late) + (" (still rising on every seed)" if all(x > 0 for x in late)
                                                      else " (not rising on every seed)")
            + ", so the step budget is the cap of 2 x 474 steps: 13 epochs (936 steps). Relative robustness on the "
            "papers' ranges and on the "
            "pilot's wide ranges:\n\n| seed | clean | noise, papers' range (std <= 0.1) | noise, wide (std <= 0.4) "
            "| transfer FGSM, papers' range (eps <= 0.02) | transfer FGSM, wide (eps <= 0.15) |\n|---|---|---|---|---|"
            "---|\n" + "\n".join(ext) + "\n\nThe study's extended ranges (fixed from these numbers before any main run "
            "was evaluated): noise std " + ", ".join(f"{x:g}" for x in _ranges()[0]) + "; transfer eps "
            + ", ".join(f"{x:g}" for x in _ranges()[1]) + " (`attacks.suite.CIFAR_CPU_NOISE`, `CIFAR_CPU_EPS`).")


def _ranges():
    from attacks.suite import CIFAR_CPU_EPS, CIFAR_CPU_NOISE
    return CIFAR_CPU_NOISE, CIFAR_CPU_EPS


TABLE = [("clean.accuracy", "clean accuracy"),
         ("gaussian_noise.relative_robustness", "noise rel. rob., papers' range"),
         ("gaussian_noise_extended.relative_robustness", "noise rel. rob., extended"),
         ("gaussian_noise_extended.strength_50", "noise std at half clean"),
         ("transfer_fgsm.relative_robustness", "transfer FGSM rel. rob., papers' range"),
         ("transfer_fgsm_extended.relative_robustness", "transfer FGSM rel. rob., extended"),
         ("transfer_fgsm_extended.strength_50", "transfer eps at half clean"),
         ("minimal_l2.median_l2", "minimal L2 (DDN, FMN)"),
         ("boundary.median_sq_l2", "boundary, paper protocol (50 steps) median sq. L2"),
         ("corruptions.error_increase", "corruptions: error increase (lower better)")]


def key_table(tidy, regs) -> str:
    """Arms x metrics: mean ± SEM (n) and, under it, the difference to `none` with its 95% interval, paired over
    the seed blocks both have (censored values: counted and entered at the top of the range)."""
    from leaderboard import sem
    lines = ["| arm | " + " | ".join(t for _, t in TABLE) + " |", "|" + "---|" * (len(TABLE) + 1)]
    for r in regs:
        cells = []
        for m, _ in TABLE:
            v = C.values(tidy, r, m)
            if not v:
                cells.append("n/a")
                continue
            k = sum(C.censored(tidy, r, m))
            cell = f"{sum(v) / len(v):.4g} ± {sem(v):.2g} (n={len(v)}" + (f", {k} censored)" if k else ")")
            c = None if r == "none" or k else C.compare_in(tidy, r, "none", m, "corruptions" not in m)
            if c is not None:
                cell += f"<br>Δ {c.diff:+.3g} [{c.ci_low:+.3g}, {c.ci_high:+.3g}] paired n={c.n_pairs}"
            cells.append(cell)
        lines.append(f"| `{r}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def colour_section(records: Path) -> list[str]:
    from bench.app import cifar_audits as A
    tidy = _tidy(records, "rgb")
    regs = [r for p in plan() if p["task"] == "rgb" for r in p["arms"]
            if len(tidy) and (tidy["regularizer"] == r).any()]
    if not regs:
        return ["Not run yet (issue 29's priority puts colour last).", ""]
    return ["The same protocol on the colour images (3 channels; the regularization set is the task's own colour "
            "training images). Its claims are judged on the colour records alone, each with its own adjustment.", "",
            "### Key metrics", "", key_table(tidy, regs), "", "### Verdicts", "",
            claims_section(tidy, colour_claims(), records), "",
            "### Distances: two white-box families, the boundary figure, step caps", "", A.audit_table(tidy, regs), "",
            "The query-only audit and the accuracy-matched control ran on the grayscale task only.", "",
            "### Can the tests separate models? (the extended ranges were fixed from the grayscale pilot)", "",
            *A.separation_flags(tidy), ""]


def claims_section(tidy, claims: list[dict] | None = None, records: Path | None = None) -> str:
    """The verdicts, each comparison line followed by the audits that bear on it (bench.app.cifar_audits)."""
    from bench.app import cifar_audits as A
    from leaderboard import stats
    from leaderboard.matched import matched_rows
    res = C.evaluate_claims(tidy, study_claims() if claims is None else claims)
    audits = A.arm_audits(tidy)
    matched = matched_rows(tidy, records) if records is not None else None
    out = ["Rule (generated from `leaderboard.stats`, the code that applies it): " + stats.rule_text() + " Relative "
           "robustness is judged on the **extended ranges** (where `none` falls to half of clean; the papers' ranges "
           "are the paper-protocol figure in the table above); the distance on the per-image minimum of DDN and FMN in "
           "plain L2. Direction-only claims are judged against a smallest effect of interest: "
           + ", ".join(f"`{m}` {'+' + format(x, '.0%') + ' of the baseline' if k == 'rel' else f'+{x:g}'}"
                       for m, (k, x) in study().sesoi.items() if m in ext_metrics())
           + f"; clean accuracy: non-inferiority margin {C.CLEAN_MARGIN:g}.", ""]
    for cl in res:
        fam = "; ".join(f"{f}: **{w}**" for f, w in (cl.get("per_family") or {}).items())
        out += [f"### {cl['title']}", "", f"*Claim:* {cl['text']}.", "",
                f"*Quantifier:* `{cl['quantifier']}` ({stats.QUANTIFIER_TEXT[cl['quantifier']]}).", "",
                f"*Verdict:* **{cl['verdict']}**." + (f" Per family: {fam}." if fam else ""), ""]
        for c in cl["comparisons"]:
            out.append(f"- {C.fmt_comparison(c)}")
            note = A.line_audit(tidy, c, audits, matched, C.compare_in)
            if note:
                out.append(f"  - *Audit:* {note}.")
        out.append("")
    return "\n".join(out)


def accuracy_caveat(tidy, regs, records: Path) -> list[str]:
    """Where `none` has no epoch evaluations, say what the missing accuracy-matched control leaves open."""
    if report_extras.matched_md(tidy, records):
        return []
    lines = []
    for r in regs:
        c = None if r == "none" else C.compare_in(tidy, r, "none", "clean.accuracy")
        if c is not None:
            lines.append(f"`{r}` {c.diff:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]")
    if not lines:
        return []
    return ["### What the verdicts above cannot say yet: the accuracy-matched control", "",
            "Clean accuracy against `none` (paired, 95%): " + "; ".join(lines) + ". A less accurate model is often "
            "farther from its boundary and flatter under noise for that reason alone, so these gains are not yet "
            "separated from the accuracy they cost: this study's `none` runs were trained before `epoch_evals` "
            "existed, so `none` at matched accuracy (leaderboard.matched) is not in the records. Next: `none` with "
            "`--set epoch_evals=true` on the same blocks.", ""]


def corruption_table(tidy, regs) -> str:
    from leaderboard import sem
    lines = ["| arm | mean error over 15 corruptions x 5 severities | increase over clean error |", "|---|---|---|"]
    for r in regs:
        e, d = C.values(tidy, r, "corruptions.mean_error"), C.values(tidy, r, "corruptions.error_increase")
        if e:
            lines.append(f"| `{r}` | {sum(e) / len(e):.3f} ± {sem(e):.2g} (n={len(e)}) | "
                         f"{sum(d) / len(d):.3f} ± {sem(d):.2g} |")
    return "\n".join(lines)


def similarity_text(path: Path) -> str:
    if not path.is_file():
        return "Not computed yet."
    d = json.loads(path.read_text())
    return (f"Pearson r between S^pixel and S^v1gabor (the V1 Gabor stand-in's similarity) over {d['pairs']} pairs of "
            f"the first {d['n_images']} CIFAR-10 prefix training images (grayscale, no augmentation): **r = "
            f"{d['pearson']:.3f}** (Spearman {d['spearman']:.3f}); Attias et al. report 0.83 against their V1 "
            f"predictive model (a model fitted to mouse V1 recordings, not a Gabor bank). Pairs above Th = {d['th']}: "
            f"S^pixel {d['pixel']['above_th']:.2%}, S^v1gabor {d['neural_pred']['above_th']:.2%}. "
            f"(`python -m bench similarity --reg-dataset {study().tasks[0].dataset} --n-images 1000 "
            "--reg-augment none`; file sha256 "
            f"{d.get('data_sha256', 'n/a')[:12]}...)\n\n"
            "![S^pixel vs S^v1gabor](cifar10_figures/similarity-cifar10_prefix.png)")


def render(records: Path, pilot: Path, out: Path, similarity: Path) -> str:
    from bench.app import cifar_audits as A
    tidy = _tidy(records, "gray")
    regs = [r for p in plan() if p["task"] == "gray" for r in p["arms"]
            if len(tidy) and (tidy["regularizer"] == r).any()]
    st = status(records)
    partial = any(not line.endswith("| none |") for line in st[2:])
    parts = [f"# {study().title}" + (" — partial" if partial else ""), "",
             "Rendered by `python -m bench reproduce cifar10_cpu --render-only` (the study file "
             "`bench/app/studies/cifar10_cpu.toml`; the same as `python -m bench.app.cifar_study render`) from the "
             "records in `docs/cifar10_records/` (configs, metrics, logs; no weights). Every number below is read "
             "from them. " + ("**The study is incomplete**: the table says which arms and blocks are still missing; "
                              "`python -m bench reproduce cifar10_cpu --out results/cifar10` (or the sweeps of "
                              "`python -m bench.app.cifar_study plan`) trains and evaluates only what is missing."
                              if partial else "Every planned arm and block is in."), "",
             "## Status", "", *st, "",
             f"Compute stated before the study: {study().extra.get('compute', 'not stated')}. "
             + measured_cost(_tidy(records, None)),
             "",
             "## Protocol", "", study().extra.get("protocol", ""), "",
             "## Pilot (outside the study)", "", pilot_section(pilot), "",
             "## Grayscale CIFAR-10: key metrics", "", key_table(tidy, regs) if regs else "No records yet.", "",
             "## Verdicts", "", claims_section(tidy, records=records) if regs else "No records yet.", "",
             *(report_extras.matched_md(tidy, records) if regs else []),
             *(accuracy_caveat(tidy, regs, records) if regs else []),
             "## Audits", "", "### Distances: two white-box families, the boundary figure, step caps", "",
             A.audit_table(tidy, regs) if regs else "", "",
             "### A query-only attack on the same images (gradient masking, convergence)", "",
             *(A.decision_table(tidy, regs) or ["Not run yet (`python -m bench.app.cifar_study audit`)."]), "",
             "### Transfer FGSM: forward and reverse", "",
             *(A.transfer_lines(tidy, regs, C.compare_in) if regs else []), "",
             "### Can the tests separate models?", "",
             *(A.separation_flags(tidy) if regs else []), "",
             "## Corruptions (CIFAR-10-C parameters, generated on these test images; 100 images)", "",
             corruption_table(tidy, regs) if regs else "", "",
             "## Figure-1 analogue: pixel vs V1 similarity on CIFAR-10 images", "", similarity_text(similarity), "",
             "## Colour CIFAR-10 (Attias et al. Fig. 4)", "", *colour_section(records)]
    text = "\n".join(parts)
    out.write_text(text)
    return text


def audit(results: Path, part: str = "1/1") -> int:
    """The decision-based audit (bench.app.cifar_audits) on the weights in `results` (the sweeps' --out): the
    grayscale records of its arms and blocks, every PARTS-th one from PART (two processes: 1/2 and 2/2)."""
    from bench.app import cifar_audits as A
    k, n = (int(x) for x in part.split("/"))
    t = _tidy(results, "gray")
    if not len(t):
        print(f"no grayscale cifar_cpu records under {results}")
        return 1
    t = t[t["regularizer"].isin(A.DECISION_ARMS) & t["seed"].isin(A.DECISION_BLOCKS)]
    runs = sorted(t[["seed", "run_dir"]].drop_duplicates().itertuples(index=False))  # block by block
    for _, d in runs[k - 1::n]:
        A.run_decision_audit(d)
    return 0


def render_study(st: studyfile.Study, out: Path, report: Path) -> str:
    """`bench reproduce`'s entry for this study's file (`renderer = "cifar_cpu"`): its records in `out`."""
    return render(Path(out), Path(st.extra["pilot_records"]), Path(report), Path(st.extra["similarity_file"]))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("plan", "render", "audit"):
        print("usage: python -m bench.app.cifar_study plan | render [RECORDS PILOT OUT.md SIMILARITY.json] | "
              "audit [RESULTS] [PART/PARTS]")
        return 2
    if argv[0] == "plan":
        print("\n".join(commands()))
        return 0
    if argv[0] == "audit":
        return audit(Path(argv[1] if len(argv) > 1 else "results/cifar10"), *(argv[2:3] or ["1/1"]))
    root = Path(__file__).resolve().parents[2] / "docs"
    args = [Path(a) for a in argv[1:]] or [root / "cifar10_records", root / "cifar10_pilot_records",
                                           root / "cifar10_reproduction.md", root / "cifar10_similarity.json"]
    render(*args)
    print(f"wrote {args[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

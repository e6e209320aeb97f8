"""`python -m bench reproduce`: does the harness reproduce the papers' claims?

One command runs the comparison sweep (none, pixel_sim, pixel_th, neural_pred; >= 5 seeds; the
paper's suite plus the white-box extras and honesty checks), the `bench similarity` analysis, and
writes the leaderboard, the plots and a report (`docs/reproduction.md` by default) in which every
number is read from the records: only the prose is fixed text. Each claim gets a verdict from a
rule stated in the report (direction of the mean difference to `none` and a Welch t-test over
seeds), so a claim that does not reproduce is reported as such.

Scales:
  cpu  Fashion-MNIST (grayscale), a narrow ResNet18 (width 0.25), a budget at which every model is
       well trained on this kind of 2-core machine, the `repro_cpu` suite (the paper's tests at
       reduced image counts, plus the white-box extras).
  gpu  the paper's protocol on grayscale and colour CIFAR-10 with CIFAR-10 and CIFAR-100
       regularization sets (needs the CIFAR files and a GPU).
Re-running reuses every finished record (the sweep skips complete jobs) and re-renders the report.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import sys
import time
from pathlib import Path

REGULARIZERS = ("none", "pixel_sim", "pixel_th", "neural_pred")

SCALES = {
    "cpu": {
        "preset": "repro_cpu",
        "seeds": "0-4",
        "sweeps": [{"name": "fashion_mnist-gray", "datasets": "fashion_mnist", "sets": []}],
        "similarity": [("fashion_mnist", 1000), ("skimage_crops", None)],
    },
    "gpu": {
        "preset": "paper",
        "seeds": "0-4",
        "sweeps": [
            {"name": f"cifar10-{color}-reg_{reg}", "datasets": "cifar10",
             "sets": [f"color={color}", "suite=\"full\"", f"reg_params.reg_dataset={reg}"]}
            for color in ("gray", "rgb") for reg in ("cifar10", "cifar100")
        ],
        "similarity": [("cifar10", 1000), ("cifar100", 1000), ("skimage_crops", None)],
    },
}

ALPHA = 0.05


def register_repro_suite() -> None:
    import attacks
    if "repro_cpu" not in attacks.SUITES:  # defined in attacks/suite.py; kept as a guard
        raise ValueError("suite 'repro_cpu' is missing from attacks.SUITES")


# ----------------------------------------------------------------------------- similarity inputs
def skimage_crops(folder: Path, size: int = 32) -> Path:
    """32x32 crops (non-overlapping grid) of scikit-image's bundled natural photos, as PNG files:
    a natural-image regularization set that ships with a dependency and works offline."""
    import numpy as np
    from PIL import Image
    from skimage import data as skd
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.glob("*.png")):
        return folder
    names = ["astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
             "motorcycle_left", "retina", "brick", "grass", "gravel", "moon", "page", "text", "horse", "cat"]
    k = 0
    for name in names:
        try:
            img = np.asarray(getattr(skd, name)())
        except Exception:  # a photo missing from this scikit-image version (or needing pooch)
            continue
        if img.dtype != np.uint8:  # float or boolean photos: stretch to 0..255
            img = img.astype(np.float64)
            img = (255 * (img - img.min()) / max(float(img.max() - img.min()), 1e-9)).astype(np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3]
        # downsample the photo so a 32x32 crop holds an object part, not a flat patch
        pil = Image.fromarray(img)
        scale = 128 / min(pil.size)
        pil = pil.resize((max(size, int(pil.size[0] * scale)), max(size, int(pil.size[1] * scale))), Image.BILINEAR)
        arr = np.asarray(pil)
        for y in range(0, arr.shape[0] - size + 1, size):
            for x in range(0, arr.shape[1] - size + 1, size):
                Image.fromarray(arr[y:y + size, x:x + size]).save(folder / f"{k:05d}-{name}.png")
                k += 1
    return folder


def run_similarity(scale: str, out_dir: Path, crops_dir: Path, log=print) -> list[dict]:
    from regularizers.analysis import similarity_figure, similarity_report
    from . import store
    results = []
    for ds, n in SCALES[scale]["similarity"]:
        label = ds
        if ds == "skimage_crops":
            ds = "folder:" + str(skimage_crops(crops_dir))
            n = len(list(Path(ds.split(":", 1)[1]).glob("*.png")))
        js = out_dir / f"similarity-{label}.json"
        cached = store.read_json(js)
        if cached and cached.get("n_requested") == n:
            results.append(cached)
            continue
        log(f"[reproduce] similarity analysis on {label} ({n} images)")
        summary, s_pix, s_neu = similarity_report(ds, n, color="gray", reg_augment="none")
        figs = similarity_figure(s_pix, s_neu, summary, out_dir / f"similarity-{label}")
        summary.update(label=label, n_requested=n, figures=[str(p) for p in figs])
        store.atomic_write_json(js, summary)
        results.append(summary)
    return results


# ----------------------------------------------------------------------------- claims
def _values(tidy, reg: str, metric: str):
    rows = tidy[(tidy["regularizer"] == reg) & (tidy["metric"] == metric)]
    return rows.sort_values("seed")["value"].astype(float).tolist() if "seed" in rows else rows["value"].tolist()


def compare(tidy, reg: str, metric: str, base: str = "none", lower_is_better: bool = False) -> dict | None:
    """Mean ± SEM of `reg` and `base` on one metric over seeds, the difference, Welch's p, and
    whether the difference goes in the better direction."""
    import numpy as np
    from leaderboard import sem, welch_p
    a, b = _values(tidy, reg, metric), _values(tidy, base, metric)
    if len(a) < 2 or len(b) < 2:
        return None
    diff = float(np.mean(a) - np.mean(b))
    p = welch_p(a, b)
    better = diff < 0 if lower_is_better else diff > 0
    return {"metric": metric, "reg": reg, "base": base, "mean": float(np.mean(a)), "sem": sem(a), "n": len(a),
            "base_mean": float(np.mean(b)), "base_sem": sem(b), "base_n": len(b), "diff": diff, "p": p,
            "better": bool(better), "significant": bool(p == p and p < ALPHA)}


def verdict(comps: list[dict]) -> str:
    """reproduced: every listed comparison improves significantly; partly: at least one does (or all
    improve without significance); not reproduced: none improves significantly."""
    comps = [c for c in comps if c]
    if not comps:
        return "not tested (metric missing)"
    sig_better = [c for c in comps if c["better"] and c["significant"]]
    if len(sig_better) == len(comps):
        return "reproduced"
    if sig_better or all(c["better"] for c in comps):
        return "partly reproduced"
    return "not reproduced"


KEY_METRICS = [
    # (metric, lower_is_better, description)
    ("gaussian_noise.mean_accuracy", False, "mean accuracy over the Gaussian-noise curve"),
    ("transfer_fgsm.mean_accuracy", False, "mean accuracy over the transfer-FGSM curve"),
    ("boundary.median_sq_l2", False, "boundary-attack median squared L2 per pixel (higher: more robust)"),
    ("min_perturbation.median_sq_l2", False, "converged white-box minimal squared L2 per pixel"),
    ("corruptions.mean_accuracy", False, "mean accuracy over the corruptions"),
    ("clean.accuracy", False, "clean accuracy"),
]


def _fmt(c: dict | None, digits: int = 4) -> str:
    if not c:
        return "n/a"
    p = c["p"]
    ptxt = "n/a" if p != p else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")
    return (f"{c['mean']:.{digits}g} ± {c['sem']:.2g} (n={c['n']}) vs none {c['base_mean']:.{digits}g} ± "
            f"{c['base_sem']:.2g}; diff {c['diff']:+.{digits}g}, Welch p = {ptxt}")


TABLE_METRICS = [
    ("clean.accuracy", "clean"),
    ("gaussian_noise.mean_accuracy", "noise (mean acc.)"),
    ("transfer_fgsm.mean_accuracy", "transfer FGSM (mean acc.)"),
    ("transfer_fgsm_reverse.mean_accuracy", "reverse FGSM (surrogate acc.)"),
    ("boundary.median_sq_l2", "boundary median sq. L2"),
    ("min_perturbation.median_sq_l2", "white-box min. sq. L2"),
    ("corruptions.mean_accuracy", "corruptions (mean acc.)"),
    ("pgd.accuracy_eps_1_255", "PGD 1/255"),
    ("pgd.accuracy_eps_8_255", "PGD 8/255"),
    ("autoattack.accuracy_eps_1_255", "AutoAttack 1/255"),
    ("hop_skip_jump.median_sq_l2", "HopSkipJump median sq. L2"),
    ("train.wall_s", "train wall s"),
]


def key_table(tidy) -> str:
    """Regularizers x key metrics: mean ± SEM (n), and under it the difference to none with p."""
    import numpy as np
    from leaderboard import sem
    present = [(m, t) for m, t in TABLE_METRICS if (tidy["metric"] == m).any()]
    head = "| regularizer | " + " | ".join(t for _, t in present) + " |"
    lines = [head, "|" + "---|" * (len(present) + 1)]
    for reg in REGULARIZERS:
        cells = []
        for m, _ in present:
            v = _values(tidy, reg, m)
            if not v:
                cells.append("n/a")
                continue
            cell = f"{np.mean(v):.4g} ± {sem(v):.2g} (n={len(v)})"
            c = compare(tidy, reg, m) if reg != "none" else None
            if c:
                ptxt = "n/a" if c["p"] != c["p"] else f"{c['p']:.2g}"
                cell += f"<br>Δ {c['diff']:+.3g} (p={ptxt})"
            cells.append(cell)
        lines.append(f"| {reg} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claims_section(tidy) -> tuple[str, list[dict]]:
    lines, out = [], []

    def block(title, claim, comps, note=""):
        v = verdict(comps)
        out.append({"claim": title, "verdict": v, "comparisons": [c for c in comps if c]})
        lines.append(f"### {title}\n\n*Claim:* {claim}\n\n*Verdict:* **{v}**.{(' ' + note) if note else ''}\n")
        for c in comps:
            if c:
                lines.append(f"- `{c['reg']}` on `{c['metric']}`: {_fmt(c)}")
        lines.append("")

    for reg in ("pixel_sim", "pixel_th"):
        comps = [compare(tidy, reg, m, lower_is_better=lib) for m, lib, _ in KEY_METRICS[:3]]
        block(f"Attias et al.: {reg} improves robustness over none",
              f"training with the `{reg}` target raises accuracy under Gaussian noise and transfer FGSM and the "
              "boundary-attack distance, relative to the unregularized baseline", comps)
    comps = [compare(tidy, "neural_pred", m, lower_is_better=lib)
             for m, lib, _ in (KEY_METRICS[2], KEY_METRICS[0])]
    block("Li et al.: neural similarity beats none on boundary distance and noise",
          "the neural-predicted similarity target (here: our V1 Gabor model, not recordings) increases the "
          "boundary-attack distance and the accuracy under Gaussian noise", comps)
    comps = [compare(tidy, "pixel_th", m, base="neural_pred", lower_is_better=lib) for m, lib, _ in KEY_METRICS[:3]]
    ok = [c for c in comps if c]
    not_worse = ok and all(not (not c["better"] and c["significant"]) for c in ok)
    neural = [compare(tidy, "neural_pred", m, lower_is_better=lib) for m, lib, _ in KEY_METRICS[:3]]
    neural_gain = any(c and c["better"] and c["significant"] for c in neural)
    if not ok:
        v = "not tested"
    elif not neural_gain:
        v = ("not informative: neural_pred itself shows no significant gain over none here, so matching it "
             "says nothing about robustness" + ("" if not_worse else "; pixel_th is also significantly worse on a metric"))
    else:
        v = ("reproduced (no metric significantly worse than neural_pred)" if not_worse
             else "not reproduced (pixel_th is significantly worse on a metric)")
    out.append({"claim": "pixel similarity matches neural similarity", "verdict": v, "comparisons": ok})
    lines.append("### Attias et al.: pixel similarity gives the gains of neural similarity\n\n"
                 "*Claim:* `pixel_th` is as robust as `neural_pred` (the paper's alternative to neural data).\n\n"
                 f"*Verdict:* **{v}**. Rule: not significantly worse (Welch p < {ALPHA}) on any of the three "
                 "robustness metrics.\n")
    for c in ok:
        lines.append(f"- `pixel_th` vs `neural_pred` on `{c['metric']}`: " + _fmt(c).replace("vs none", "vs neural_pred"))
    lines.append("")
    comps = [compare(tidy, r, "clean.accuracy") for r in ("pixel_sim", "pixel_th", "neural_pred")]
    costs = [c for c in comps if c]
    small = costs and all(c["diff"] > -0.02 for c in costs)
    out.append({"claim": "clean accuracy cost is small", "verdict": "reproduced" if small else "not reproduced",
                "comparisons": costs})
    lines.append("### Clean accuracy is (nearly) preserved\n\n*Claim:* the regularizers cost little clean "
                 f"accuracy. *Verdict:* **{'reproduced' if small else 'not reproduced'}** (rule: each mean within "
                 "2 points of `none`).\n")
    for c in costs:
        lines.append(f"- `{c['reg']}`: {_fmt(c)}")
    lines.append("")
    return "\n".join(lines), out


def honesty_section(tidy) -> str:
    import numpy as np
    lines = ["Converged reference for every boundary figure (same images, same unit): the ratio of the 50-step "
             "boundary median to the converged white-box minimal perturbation. A ratio far above 1 means the "
             "short boundary attack stalled and its distance says little about the true distance to the boundary.",
             "", "| regularizer | boundary median sq. L2 | white-box minimum sq. L2 | ratio |", "|---|---|---|---|"]
    for reg in REGULARIZERS:
        b = _values(tidy, reg, "boundary.median_sq_l2")
        m = _values(tidy, reg, "min_perturbation.median_sq_l2")
        if b and m:
            lines.append(f"| {reg} | {np.mean(b):.4g} | {np.mean(m):.4g} | {np.mean(b) / max(np.mean(m), 1e-12):.1f} |")
    lines += ["", "Reverse transfer (attacker: the evaluated model; target: the unregularized surrogate). If a "
              "regularized model looks robust to transfer only because it differs from the surrogate, its own "
              "FGSM examples also transfer poorly to the surrogate:", ""]
    for reg in REGULARIZERS:
        c = compare(tidy, reg, "transfer_fgsm_reverse.mean_accuracy") if reg != "none" else None
        if c:
            lines.append(f"- `{reg}`: surrogate accuracy under `{reg}`'s FGSM: {_fmt(c)}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the report
def render_report(scale: str, out: Path, report: Path, sims: list[dict], meta: dict, log=print) -> Path:
    import leaderboard
    from . import store
    from .config import PRESETS
    fig_dir = report.parent / (report.stem + "_figures")
    tidy = leaderboard.load_records(out)
    table = leaderboard.build_table(tidy)
    plots = leaderboard.plot_all([str(out)], str(fig_dir))
    if isinstance(plots, dict):
        plots = [p for v in plots.values() for p in (v if isinstance(v, (list, tuple)) else [v])]
    claims_md, claims = claims_section(tidy)
    preset = PRESETS[SCALES[scale]["preset"]]
    n_seeds = tidy.groupby("regularizer")["seed"].nunique().to_dict() if "seed" in tidy else {}
    rel = lambda p: os.path.relpath(p, report.parent)  # noqa: E731
    md = [f"# Reproduction study ({scale} scale)", "",
          "Generated by `" + meta["command"] + "`; nothing below is typed by hand except the prose.",
          f"Rendered {meta['finished']} on {meta['device']}. Invocations of the command on these records "
          "(each reuses every finished record and runs only what is missing):", ""]
    md += [f"- {h['finished']}: `{h['command']}`: {h['duration_min']:.1f} min, {h.get('jobs_run', '?')} jobs run"
           for h in meta.get("history", [meta])]
    md += ["",
          f"Total recorded compute of the records: {meta['train_s'] / 60:.1f} min training, "
          f"{meta['eval_s'] / 60:.1f} min evaluation.", "",
          "## Protocol", "",
          f"- Regularizers: {', '.join(REGULARIZERS)}; seeds per regularizer: "
          + ", ".join(f"{k} {v}" for k, v in sorted(n_seeds.items())) + ".",
          "- Training (read from the records' config.json): " + _record_setup(out) + ".",
          "- Suite `" + preset.get("suite", "?") + "`: " + "; ".join(
              f"{t} {json.dumps(p)}" if p else t for t, p in _suite_tests(preset.get("suite"))) + ".",
          "- Regularizer hyper-parameters: the defaults of each entry (alpha 10 for pixel_sim/pixel_th, 20 for "
          "neural_pred; Th 0.8; 5000 regularization images = the first 5000 of the task's training subset; 16 pairs "
          "per step; g = 2 arctanh with eps 1e-5; running-mean beta 0.9).",
          "", "### Differences from the papers' protocols", ""]
    md += [f"- {d}" for d in DIFFERENCES[scale]]
    suite_p = dict(_suite_tests(preset.get("suite")))
    if "boundary" in suite_p:
        b = suite_p["boundary"]
        md.append(f"- Boundary attack: {b.get('n')} test images x {b.get('repeats')} repeats (paper: 1000 x 5), "
                  f"{b.get('steps')} steps as in the reference code; `min_perturbation` (foolbox DDN, "
                  f"{suite_p.get('min_perturbation', {}).get('steps')} steps) on the same images is its converged reference.")
    extras = [f"{t} ({', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in suite_p[t].items())})"
              for t in ("pgd", "autoattack", "hop_skip_jump") if t in suite_p]
    if extras:
        md.append("- Extras the papers did not run: " + "; ".join(extras) + ".")
    fig_dir.mkdir(parents=True, exist_ok=True)
    for fmt in ("md", "csv", "html"):
        store.atomic_write_bytes(fig_dir / f"leaderboard.{fmt}", leaderboard.render(table, fmt).encode())
    md += ["", "## Leaderboard (key metrics)", "", key_table(tidy), "",
           "Each cell: mean ± SEM over seeds (n); Δ: difference to `none` with Welch's t-test p-value. Every metric "
           f"of every test: [leaderboard.md]({rel(fig_dir / 'leaderboard.md')}), "
           f"[leaderboard.csv]({rel(fig_dir / 'leaderboard.csv')}), [leaderboard.html]({rel(fig_dir / 'leaderboard.html')}).", "",
           "## Claims", "", f"Rule: a claim is *reproduced* when every comparison it names improves on the "
           f"baseline with Welch p < {ALPHA} over seeds, *partly* when some do (or all point the right way "
           "without significance), *not reproduced* otherwise.", "", claims_md,
           "## Honesty checks", "", honesty_section(tidy), "",
           "## S^pixel vs S^neural-pred", ""]
    for s in sims:
        md.append(f"- **{s['label']}** ({s['n_images']} images, {s['pairs']} pairs, response model "
                  f"`{s['response_model'].get('name', s['response_model'])}`): Pearson r = {s['pearson']:.3f}, "
                  f"Spearman rho = {s['spearman']:.3f}; pairs with |S^pixel| > {s['th']}: {100 * s['pixel']['pass']:.2f}%, "
                  f"|S^neural-pred| > {s['th']}: {100 * s['neural_pred']['pass']:.2f}%.")
        png = [f for f in s.get("figures", []) if f.endswith(".png")]
        if png:
            md.append(f"\n  ![similarity {s['label']}]({rel(png[0])})\n")
    md += ["", "## Figures", ""]
    for p in sorted(str(x) for x in plots or []):
        if p.endswith(".png"):
            md.append(f"![{Path(p).stem}]({rel(p)})")
    md.append("")
    store.atomic_write_bytes(report, "\n".join(md).encode())
    store.atomic_write_json(report.with_suffix(".json"), {"meta": meta, "claims": claims, "similarity": sims})
    log(f"[reproduce] wrote {report}")
    return report


def _record_setup(out: Path) -> str:
    from . import store
    for rd in store.find_records(out):
        rec = store.read_json(rd / "config.json") or {}
        c, b = rec.get("config", {}), rec.get("budget", {})
        if c.get("regularizer") != "none":
            continue
        keys = ("preset", "dataset", "color", "arch", "width", "n_train", "n_test", "epochs", "batch_size", "lr",
                "momentum", "weight_decay", "lr_schedule", "lr_step_epochs", "lr_gamma", "lr_cycle_epochs", "select",
                "reg_forward", "input_scaling", "suite")
        return (", ".join(f"{k}={c.get(k)}" for k in keys) + f"; step budget {b.get('steps')} "
                f"({b.get('epochs')} epochs x {b.get('steps_per_epoch')} steps), identical for every regularizer")
    return "no record found"


def _suite_tests(name):
    import attacks
    register_repro_suite()
    return attacks.SUITES.get(name, [])


DIFFERENCES = {
    "cpu": [
        "Task: Fashion-MNIST (grayscale, 28x28 zero-padded to 32x32) instead of grayscale CIFAR-10; the "
        "regularization set is the task's own training images, as in the paper's Fashion-MNIST setting.",
        "Model: the reference ResNet18 at width 0.25 (16-32-64-128 channels) instead of 64-128-256-512.",
        "Budget: see the preset above (a subset of the training set, a few epochs) instead of 40 epochs on "
        "the full set; the identical step budget holds across regularizers.",
        "neural_pred: the target comes from our seeded V1 Gabor energy model (`v1gabor`), not from a CNN "
        "fitted to mouse V1 recordings (neither the recordings nor that model are available).",
        "Corruptions: generated with the CIFAR-10-C parameters on the Fashion-MNIST test images "
        "(a 'Fashion-MNIST-C'); frost uses procedural textures.",
        "AutoAttack is not run at this scale (its Square stage costs minutes per model on this CPU; it is in "
        "the `full` suite).",
        "Boundary attack: foolbox 3's BoundaryAttack, started from the nearest other-class test image moved "
        "towards the original by binary search (the reference used an older foolbox); see the honesty checks.",
    ],
    "gpu": [
        "neural_pred: the target comes from our seeded V1 Gabor energy model, not from recordings.",
        "Corruptions: the released CIFAR-10-C files when present, else generated with the CIFAR-10-C parameters.",
    ],
}


# ----------------------------------------------------------------------------- command
def cmd_reproduce(args) -> int:
    from . import store
    from .sweep import add_sweep_args, run_sweep, _summarize
    t0 = time.time()
    register_repro_suite()
    scale = SCALES[args.scale]
    out = Path(args.out or f"results/reproduce-{args.scale}").resolve()
    report = Path(args.report or ("docs/reproduction.md" if args.scale == "cpu" else "docs/reproduction-gpu.md")).resolve()
    code, jobs_run = 0, 0
    if not args.render_only:
        for sw in scale["sweeps"]:
            p = argparse.ArgumentParser()
            add_sweep_args(p)
            argv = ["--regularizers", ",".join(REGULARIZERS), "--seeds", args.seeds or scale["seeds"],
                    "--preset", scale["preset"], "--datasets", sw["datasets"], "--out", str(out),
                    "--launcher", args.launcher, "--no-progress"]
            if args.workers:
                argv += ["--workers", str(args.workers)]
            if args.device:
                argv += ["--device", args.device]
            for s in sw["sets"] + (args.set or []):
                argv += ["--set", s]
            sargs = p.parse_args(argv)
            print(f"[reproduce] sweep {sw['name']}: python -m bench sweep {shlex.join(argv)}")
            plan, results = run_sweep(sargs)
            code |= _summarize(plan, results)
            jobs_run += sum(1 for r in results.values() if r.get("state") == "done" and not r.get("skipped"))
    sims = run_similarity(args.scale, report.parent / (report.stem + "_figures"), out / "skimage_crops")
    import leaderboard
    tidy = leaderboard.load_records(out)
    train_s = tidy[tidy["metric"] == "train.wall_s"]["value"].sum()
    eval_s = tidy[tidy["metric"] == "eval.seconds"]["value"].sum()
    dev = "unknown device"
    for rd in store.find_records(out)[:1]:
        dev = (store.read_json(rd / "config.json") or {}).get("device", {}).get("name", dev)
    cmdline = "python -m bench reproduce " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["reproduce"] else sys.argv[1:])
    meta = {"command": cmdline.strip(), "finished": _dt.datetime.now().isoformat(timespec="seconds"),
            "duration_min": (time.time() - t0) / 60, "device": dev, "train_s": float(train_s),
            "eval_s": float(eval_s), "results": str(out), "jobs_run": jobs_run}
    hist_path = out / "reproduce_invocations.json"
    history = (store.read_json(hist_path, []) or []) + [dict(meta)]
    store.atomic_write_json(hist_path, history)
    meta = {**meta, "history": history}
    render_report(args.scale, out, report, sims, meta)
    print(f"[reproduce] records: {out}\n[reproduce] report: {report}")
    return code


def add_parser(sub) -> None:
    p = sub.add_parser("reproduce", help="run the reproduction study of the papers' claims and write its report")
    p.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    p.add_argument("--seeds", default=None, help="default: 0-4")
    p.add_argument("--launcher", default="local", choices=["local", "ray", "slurm"])
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="results directory (default: results/reproduce-SCALE)")
    p.add_argument("--report", default=None, help="report path (default: docs/reproduction.md for cpu)")
    p.add_argument("--set", action="append", default=[], help="extra config overrides for every job")
    p.add_argument("--render-only", action="store_true", help="only re-render the report from existing records")
    p.set_defaults(func=cmd_reproduce)

"""`python -m bench reproduce [STUDY]`: does the harness reproduce the papers' claims?

A study is a file (`bench.app.studyfile`): its tasks and arms, seed blocks, budgets, suite, claims, the
similarity analysis and the differences from the papers' protocols are TOML, so a new study adds a file, not
code. The built-in ones are `bench/app/studies/cpu.toml` (Fashion-MNIST at width 0.25 on a 2-core CPU, the
`repro_cpu` suite: docs/reproduction.md) and `gpu.toml` (the paper's protocol on grayscale and colour CIFAR-10
with CIFAR-10 and CIFAR-100 regularization sets); `--scale cpu|gpu` names them.

One command runs the study's sweeps (one per task and arm entry), the `bench similarity` analysis, and writes
the leaderboard, the plots and a report in which every number is read from the records: only the prose is
fixed text (the file's). Each claim gets a verdict from the rules of `leaderboard.stats` (paired intervals
over seed blocks, Bonferroni within a claim, the detectable effect; `bench.app.claims` applies them), and the
differences to `none` are shown against the step budget, so "does the effect change with training length" is
answered from the records too. Re-running reuses every finished record (the sweep skips complete jobs) and
re-renders the report.
"""
from __future__ import annotations

import datetime as _dt
import shlex
import sys
import time
from pathlib import Path

from bench.app import studyfile
from bench.app.study_report import render_report
from bench.core import names
from bench.core.records import Record

REGULARIZERS = names.REPRODUCTION  # the cpu study's pinned arms (studies/cpu.toml; tests/test_baselines.py holds them)


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


def run_similarity(study: studyfile.Study, out_dir: Path, crops_dir: Path, log=print) -> list[dict]:
    """The study's S^pixel vs S^neural-pred analyses (cached beside the report's figures)."""
    from regularizers.analysis import similarity_figure, similarity_report
    from bench.core import store
    results = []
    for label, ds, n in study.similarity:
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


# ----------------------------------------------------------------------------- command
# A study's records may live in the repository (configs, metrics, training logs; no weights: the cpu study's
# `records` is docs/reproduction_records), so every number of the report can be recomputed and a later
# invocation re-renders or extends the study without retraining (bench.app.jobs.is_complete accepts a
# finished record without its weights).
RECORDS_GITIGNORE = "# weights, caches and transient job files stay out of git\n*.pt\n*.pt.tmp*\n.sweeps/\n.cache/\n" \
                    "skimage_crops/\njob_status.json\njob.log\n*.lock\n.*.lock\n"


def keep_records_light(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    gi = out / ".gitignore"
    if not gi.exists():
        gi.write_text(RECORDS_GITIGNORE)


def reproduce(study: str | Path | studyfile.Study = "cpu", *, seeds: str | None = None, launcher: str = "local",
              workers: int | None = None, device: str | None = None, out=None, report=None, sets=(),
              render_only: bool = False, train_only: bool = False, log=print) -> int:
    """Run a study (a study file, or a built-in study's name: every sweep; finished records are reused), then
    its similarity analysis, and render the report from the records. Returns 0, or 1 when a job failed."""
    t0 = time.time()
    study = study if isinstance(study, studyfile.Study) else studyfile.load(study)
    study.register_suites()
    out = Path(out or study.records).resolve()
    keep_records_light(out)
    report = Path(report or study.report).resolve()
    code, jobs_run = 0, 0
    if not render_only:
        code, jobs_run = _run_sweeps(study, out, seeds=seeds, launcher=launcher, workers=workers, device=device,
                                     sets=list(sets), train_only=train_only, log=log)
        if train_only:
            log("[reproduce] trained; evaluate and report with the same command without --train-only")
            return code
    if study.renderer == "cifar_cpu":  # the CIFAR-10 study's own report (pilot, audits, colour)
        from bench.app.cifar_study import render_study
        render_study(study, out, report)
        log(f"[reproduce] records: {out}\n[reproduce] report: {report}")
        return code
    sims = run_similarity(study, report.parent / (report.stem + "_figures"), out / "skimage_crops")
    meta = _invocation(out, t0, jobs_run)
    render_report(study, out, report, sims, meta)
    log(f"[reproduce] records: {out}\n[reproduce] report: {report}")
    return code


def _run_sweeps(study: studyfile.Study, out: Path, *, seeds, launcher, workers, device, sets, train_only,
                log) -> tuple[int, int]:
    """Every sweep of the study (one per task and arm entry) through `bench.app.sweep`; `seeds` (the
    command line's) replaces every arm's seeds."""
    from bench.app.sweep import SweepSpec
    from bench.app.sweep_run import run_sweep, summarize
    code, jobs_run = 0, 0
    for sw in study.sweeps():
        spec = SweepSpec(regularizers=sw["regularizers"], seeds=seeds or sw["seeds"], preset=sw["preset"],
                         datasets=sw["datasets"], suites=study.suites,
                         overrides={"out": str(out), **sw["overrides"], **({"device": device} if device else {})},
                         sets=list(sw["sets"]) + list(sets), launcher=launcher, workers=workers,
                         train_only=train_only)
        log(f"[reproduce] sweep {sw['name']}: regularizers {','.join(spec.regularizers)}, seeds {spec.seeds}, "
            f"preset {spec.preset}" + (f", --set {' --set '.join(spec.sets)}" if spec.sets else ""))
        plan, results = run_sweep(spec, log=log)
        code |= summarize(plan, results, log=log)
        jobs_run += sum(1 for r in results.values() if r.get("state") == "done" and not r.get("skipped"))
    return code, jobs_run


def _invocation(out: Path, t0: float, jobs_run: int) -> dict:
    """This invocation's facts (appended to the records' `reproduce_invocations.json`) and the history."""
    import leaderboard
    from bench.core import store
    tidy = leaderboard.load_records(out)
    dev = "unknown device"
    for record in Record.find(out)[:1]:
        dev = (record.header() or {}).get("device", {}).get("name", dev)
    cmdline = "python -m bench reproduce " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["reproduce"]
                                                        else sys.argv[1:])
    meta = {"command": cmdline.strip(), "finished": _dt.datetime.now().isoformat(timespec="seconds"),
            "duration_min": (time.time() - t0) / 60, "device": dev,
            "train_s": float(tidy[tidy["metric"] == "train.wall_s"]["value"].sum()),
            "eval_s": float(tidy[tidy["metric"] == "eval.seconds"]["value"].sum()),
            "jobs_run": jobs_run}  # no results path: the history lives in the results folder, machine paths stay out
    hist_path = out / "reproduce_invocations.json"
    history = (store.read_json(hist_path, []) or []) + [dict(meta)]
    store.atomic_write_json(hist_path, history)
    return {**meta, "history": history}

"""Named suites (lists of tests with their parameters) and the evaluation of a record.

Each test's result goes into the record's metrics.json under `suite.<test>` (atomically, merged)
with its protocol, seed and cost. A test already there with the same protocol, seed and number of
examples is not recomputed unless `force`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from bench import store

from .base import TESTS, EvalContext, dataset_of

_QUICK_N = 32  # boundary / min_perturbation images in `quick`: a CPU demo of 12 runs in ~15 minutes

# Every test with its parameters. `quick`: a cheap CPU smoke version of everything that is cheap;
# `paper`: the paper's protocol (plus the honesty checks, which are cheap next to it);
# `full`: paper + converged boundary attack + the attacks the reviewers asked for.
SUITES: dict[str, list[tuple[str, dict]]] = {
    "quick": [("clean", {}),
              ("gaussian_noise", {"n": 200}),
              ("transfer_fgsm", {"n": 200}),
              ("corruptions", {"n_examples": 200}),
              ("min_perturbation", {"n": _QUICK_N, "steps": 50, "patience": 15}),
              ("boundary", {"n": _QUICK_N, "repeats": 1, "steps": 50, "curve_points": 4}),
              ("pgd", {"n": 100, "steps": 5})],
    "paper": [("clean", {}),
              ("gaussian_noise", {}),
              ("transfer_fgsm", {}),
              ("corruptions", {}),
              ("min_perturbation", {"n": 1000}),  # DDN, early stopping (<= 250 steps): 1000-step DDN's median
              ("boundary", {"n": 1000, "repeats": 5, "steps": 50}),
              ("transfer_fgsm_reverse", {})],
    "full": [("clean", {}),
             ("gaussian_noise", {}),
             ("transfer_fgsm", {}),
             ("corruptions", {}),
             ("min_perturbation", {"n": 1000, "steps": 1000, "patience": 100}),
             ("boundary", {"n": 1000, "repeats": 5, "steps": 10000, "curve_points": 8}),
             ("transfer_fgsm_reverse", {}),
             ("pgd", {"n": 1000, "steps": 20}),
             ("autoattack", {"n": 1000, "eps": 1 / 255}),
             ("hop_skip_jump", {"n": 1000, "steps": 64})],
    # The CPU scale of `bench reproduce`: the paper's tests (boundary at its 50 steps, 5 repeats) on fewer
    # images, the honesty check (min_perturbation: DDN with early stopping, converged, on the boundary's
    # 40 images) and PGD on a small subset; about 2 CPU-minutes per model at width 0.25, so the study's
    # evaluation stays under half its training. HopSkipJump and AutoAttack are left to `full` (minutes per
    # model here; on 8 images HopSkipJump said nothing the converged white-box minimum does not).
    "repro_cpu": [("clean", {}),
                  ("gaussian_noise", {"n": 500}),
                  ("transfer_fgsm", {"n": 250}),
                  ("transfer_fgsm_reverse", {"n": 250}),
                  ("corruptions", {"n_examples": 100}),
                  ("min_perturbation", {"n": 40}),
                  ("boundary", {"n": 40, "repeats": 5, "steps": 50}),
                  ("pgd", {"n": 100, "steps": 5})],
}
OPTIONAL_TESTS = {"corruptions"}  # written separately: a suite still builds while it is absent
STALL_RATIO = 4.0  # boundary median (squared L2) above this multiple of the white-box minimum: flagged


def register_suite(name: str, tests: list[tuple[str, dict]]) -> None:
    SUITES[name] = list(tests)


def available_suites() -> list[str]:
    return sorted(SUITES)


def build_suite(name: str, only: list[str] | None = None):
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; valid suites: {', '.join(available_suites())}")
    tests = []
    for tname, params in SUITES[name]:
        if only and tname not in only:
            continue
        if tname not in TESTS and tname in OPTIONAL_TESTS:
            continue
        if tname not in TESTS:
            raise ValueError(f"suite {name!r} names unknown test {tname!r}; registered: {', '.join(sorted(TESTS))}")
        tests.append(TESTS[tname](**params))
    return tests


def evaluate(ctx: EvalContext, suite: str = "quick", run_dir: Path | None = None, force: bool = False,
             only: list[str] | None = None, log=print) -> dict:
    """Run a suite on a model; with `run_dir`, merge each result into its metrics.json."""
    done = {}
    ctx.extras.pop("_shared", None)  # work shared by the tests (clean predictions, ...): once per evaluation
    if run_dir is not None:
        done = (store.read_json(Path(run_dir) / "metrics.json", {}) or {}).get("suite", {})
    results = {}
    for test in build_suite(suite, only):
        prev = done.get(test.name)
        if (not force and prev and prev.get("protocol") == test.protocol(dataset_of(ctx)) and prev.get("seed") == ctx.seed
                and prev.get("n_examples") == len(ctx.x)
                and not (prev.get("result", {}).get("details") or {}).get("skipped")):
            log(f"[regbench] {test.name}: already in the record, skipped (--force recomputes)")
            results[test.name] = prev
            continue
        log(f"[regbench] {test.name}: running {test!r} on {len(ctx.x)} images")
        out = test(ctx)
        results[test.name] = out
        if run_dir is not None:
            with store.locked(run_dir):
                m = store.read_json(Path(run_dir) / "metrics.json", {}) or {}
                m.setdefault("suite", {})[test.name] = out
                m["suite_name"] = suite
                store.atomic_write_json(Path(run_dir) / "metrics.json", m)
    flags = cross_checks(results if run_dir is None else {**done, **results})
    if run_dir is not None:
        store.merge_metrics(Path(run_dir), {"suite_flags": flags})
    for f in flags:
        log(f"[regbench] flag: {f['message']}")
    return results


def cross_checks(results: dict) -> list[dict]:
    """Flags that need more than one test: a boundary figure still falling at its last step, or
    stalled far above the converged white-box minimum on the same images (same unit)."""
    flags = []
    b = results.get("boundary", {})
    br = b.get("result", {})
    if (br.get("details") or {}).get("flags", {}).get("still_falling"):
        f = br["details"]["flags"]
        flags.append({"test": "boundary", "flag": "still_falling", "relative_drop_last": f["relative_drop_last"],
                      "message": f"boundary median still fell {f['relative_drop_last']:.1%} over steps "
                                 f"{f['last_stretch']}: not converged, use more steps (suite full)"})
    mp = results.get("min_perturbation", {})
    if b and mp:
        bp, mpp = b.get("protocol", {}), mp.get("protocol", {})
        same = (bp.get("n") == mpp.get("n") and bp.get("channel") == mpp.get("channel")
                and b.get("seed") == mp.get("seed") and b.get("n_examples") == mp.get("n_examples"))
        bm = br.get("summary", {}).get("median_sq_l2")
        mm = mp.get("result", {}).get("summary", {}).get("median_sq_l2")
        if same and bm is not None and mm is not None and mm == mm and mm > 0 and bm == bm:
            ratio = bm / mm
            if ratio > STALL_RATIO:
                flags.append({"test": "boundary", "flag": "stalled", "ratio_to_min_perturbation": ratio,
                              "message": f"boundary median is {ratio:.1f}x the white-box minimum on the same images:"
                                         " the decision-based attack stalled far above the boundary"})
    return flags


def context_for_run(run_dir: Path, device="cpu", n_examples: int | None = None, seed: int = 0,
                    progress: bool = True) -> EvalContext:
    """EvalContext of a trained record: its model and its test set."""
    from bench import data as bdata
    from bench.train import load_task_data, load_trained
    device = torch.device(device)
    cfg, model = load_trained(run_dir, device)
    d = load_task_data(cfg)
    x, y = d.test_x, d.test_y
    if n_examples is not None:
        x, y = x[:n_examples], y[:n_examples]
    return EvalContext(model=model, x=bdata.to_float(x).to(device), y=y.to(device), config=cfg,
                       run_dir=Path(run_dir), device=device, seed=seed, num_classes=d.num_classes,
                       progress=progress)

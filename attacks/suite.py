"""Named suites (lists of tests with their parameters) and the evaluation of a model.

The suite judges any `nn.Module` and never trains. With a record, each test's result goes into the
record's metrics.json under `suite.<test>` (atomically, merged; `bench.core.records.Record`) with its
protocol, seed and cost; a test whose result there is current (`Record.result_is_current`: same
protocol, seed and number of images, not skipped) is not recomputed unless `force`.
Third-party packages add suites through the entry-point group `regbench.suites` (a list of
(test name, parameters) pairs).
"""
from __future__ import annotations

import dataclasses

from pathlib import Path

import torch

from bench.core import data as bdata
from bench.core.records import Record, as_record
from bench.core.registry import Registry

from .base import TESTS, EvalContext, dataset_of

_QUICK_N = 32  # boundary / min_perturbation images in `quick`: a CPU demo of 12 runs in ~15 minutes

# Every test with its parameters. `quick`: a cheap CPU smoke version of everything that is cheap;
# `paper`: the paper's protocol (plus the honesty checks, which are cheap next to it);
# `full`: paper + converged boundary attack + the attacks the reviewers asked for.
# The CIFAR-10 CPU study's extended ranges, fixed from its pilot (3 `none` seeds outside the study): see
# docs/cifar10_reproduction.md, "Pilot".
# Pilot (seeds 100-102, 936 steps, clean 49-51%): `none` halves at noise std 0.22-0.25 and keeps 33-37% of clean at
# 0.4; it halves at transfer eps 0.028-0.031 and keeps 13-17% of clean at 0.1 (chance is 10%). Each range holds the
# papers' (std <= 0.1, eps <= 0.02) and reaches about twice the halving strength, short of the chance floor.
CIFAR_CPU_NOISE = [0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4]
CIFAR_CPU_EPS = [0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1]

BUILTIN_SUITES: dict[str, list[tuple[str, dict]]] = {
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
              ("boundary", {"n": 1000, "repeats": 5, "steps": 50}),  # the paper's figure: measures its start
              ("boundary_converged", {"n": 1000}),  # the decision-based distance claims are judged on
              ("transfer_fgsm_reverse", {})],
    "full": [("clean", {}),
             ("gaussian_noise", {}),
             ("transfer_fgsm", {}),
             ("corruptions", {}),
             ("min_perturbation", {"n": 1000, "steps": 1000, "patience": 100}),
             ("boundary", {"n": 1000, "repeats": 5, "steps": 10000, "curve_points": 8}),
             ("boundary_converged", {"n": 1000, "max_steps": 20000}),
             ("transfer_fgsm_reverse", {}),
             ("pgd", {"n": 1000, "steps": 20}),
             ("autoattack", {"n": 1000, "eps": 1 / 255}),
             ("hop_skip_jump", {"n": 1000, "steps": 64})],
    # The CPU scale of `bench reproduce`: the paper's tests (boundary at its 50 steps, 5 repeats) on fewer
    # images, the honesty check (min_perturbation: DDN with early stopping, converged, on the boundary's
    # 40 images) and PGD on a small subset; about 2 CPU-minutes per model at width 0.25, so the study's
    # evaluation stays under half its training. HopSkipJump and AutoAttack are left to `full` (minutes per
    # model here; on 8 images HopSkipJump said nothing the converged white-box minimum does not). No
    # `boundary_converged` either: on this CPU 6000 steps on 20 images of one model took minutes and had not
    # converged (median still falling 19% per 2000 steps, 15x the white-box minimum), so the CPU study judges
    # distances on the converged white-box minimum (`minimal_l2`); the paper and full suites run it.
    "repro_cpu": [("clean", {}),
                  ("gaussian_noise", {"n": 500}),
                  ("transfer_fgsm", {"n": 250}),
                  ("transfer_fgsm_reverse", {"n": 250}),
                  ("corruptions", {"n_examples": 100}),
                  ("min_perturbation", {"n": 40}),
                  ("boundary", {"n": 40, "repeats": 5, "steps": 50}),
                  ("pgd", {"n": 100, "steps": 5})],
    # The pilot of the CIFAR-10 CPU study (issue 29): `none` only, outside the study, to fix the study's extended
    # ranges (where `none` falls to half of clean) next to the papers' CIFAR ranges (noise std <= 0.1, eps <= 0.02).
    "cifar_cpu_pilot": [("clean", {}),
                        ("gaussian_noise", {}),
                        ("gaussian_noise_extended", {"stds": [0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3,
                                                              0.4]}),
                        ("transfer_fgsm", {"n": 500}),
                        ("transfer_fgsm_extended", {"n": 500, "eps": [0.0, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08,
                                                                      0.1, 0.15]})],
    # The CIFAR-10 CPU study (issue 29; docs/cifar10_reproduction.md): the papers' CIFAR strengths (paper-protocol
    # figure) and the extended ranges fixed from the pilot (`cifar_cpu_pilot`) before any main run was evaluated;
    # DDN and FMN minimal L2 on the same 40 images (two white-box families), the paper's 50-step boundary attack.
    "cifar_cpu": [("clean", {}),
                  ("gaussian_noise", {}),
                  ("gaussian_noise_extended", {"stds": CIFAR_CPU_NOISE}),
                  ("transfer_fgsm", {"n": 500}),
                  ("transfer_fgsm_reverse", {"n": 500}),
                  ("transfer_fgsm_extended", {"n": 500, "eps": CIFAR_CPU_EPS}),
                  ("transfer_fgsm_reverse_extended", {"n": 500, "eps": CIFAR_CPU_EPS}),
                  ("corruptions", {"n_examples": 100}),
                  ("min_perturbation", {"n": 40}),
                  ("min_perturbation_fmn", {"n": 40}),
                  ("boundary", {"n": 40, "repeats": 5, "steps": 50}),
                  ("pgd", {"n": 100, "steps": 5})],
}
STALL_RATIO = 4.0  # boundary median (squared L2) above this multiple of the white-box minimum: flagged


def _check_suite(name, tests) -> None:
    if not isinstance(tests, (list, tuple)) or not all(
            isinstance(t, (list, tuple)) and len(t) == 2 and isinstance(t[0], str) and isinstance(t[1], dict)
            for t in tests):
        raise TypeError(f"suite {name!r} must be a list of (test name, parameters dict) pairs, got {tests!r}")


SUITES = Registry("suite", "regbench.suites", check=_check_suite, label="valid suites")
for _name, _tests in BUILTIN_SUITES.items():
    SUITES.register(_name, _tests)
available_suites = SUITES.names


def register_suite(name: str, tests: list[tuple[str, dict]]) -> None:
    """Register (or replace) a named suite: a list of (test name, parameters) pairs."""
    SUITES.register(name, [(str(n), dict(p)) for n, p in tests], replace=True)


def suite_tests(name: str) -> list[str]:
    """The test names of a suite, in order."""
    return [t for t, _ in SUITES[name]]


def build_suite(name: str, only: list[str] | None = None, options: dict | None = None):
    """The suite's tests; `options` (e.g. {"cifar10c_dir": DIR}) set that parameter on every test whose
    Params has it (a real parameter, so it reaches the test's protocol as the test defines it)."""
    tests = []
    for tname, params in SUITES[name]:
        if only and tname not in only:
            continue
        if tname not in TESTS:
            raise ValueError(f"suite {name!r} names unknown test {tname!r}; registered: {', '.join(TESTS.names())}")
        cls = TESTS[tname]
        fields = {f.name for f in dataclasses.fields(cls.Params)}
        tests.append(cls(**{**params, **{k: v for k, v in (options or {}).items() if k in fields}}))
    return tests


def evaluate(ctx: EvalContext, suite: str = "quick", run_dir: Path | Record | None = None, force: bool = False,
             only: list[str] | None = None, log=print, options: dict | None = None) -> dict:
    """Run a suite on a model; with a record (`run_dir`), put each result into it and reuse the results
    that are current there. `options`: parameters set on every test that has them (`build_suite`)."""
    record = None if run_dir is None else as_record(run_dir)
    done = {} if record is None else record.results()
    ctx.extras.pop("_shared", None)  # work shared by the tests (clean predictions, ...): once per evaluation
    results = {}
    for test in build_suite(suite, only, options):
        prev = done.get(test.name)
        if not force and Record.result_is_current(prev, test.protocol(dataset_of(ctx)), ctx.seed, len(ctx.x)):
            log(f"[regbench] {test.name}: already in the record, skipped (--force recomputes)")
            results[test.name] = prev
            continue
        log(f"[regbench] {test.name}: running {test!r} on {len(ctx.x)} images")
        results[test.name] = out = test(ctx)
        if record is not None:
            record.put_result(test.name, out, suite)
    flags = cross_checks(results if record is None else {**done, **results})
    if record is not None:
        record.merge({"suite_flags": flags})
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


def context_for_run(run_dir, device="cpu", n_examples: int | None = None, seed: int = 0,
                    progress: bool = True, surrogate=None) -> EvalContext:
    """EvalContext of a trained record: its model and its test set (the first `n_examples` of it)."""
    device = torch.device(device)
    record = as_record(run_dir)
    cfg, model = record.load_model(device)
    d = bdata.load_for_config(cfg)
    x, y = d.test_x, d.test_y
    if n_examples is not None:
        x, y = x[:n_examples], y[:n_examples]
    return EvalContext(model=model, x=bdata.to_float(x).to(device), y=y.to(device), config=cfg,
                       run_dir=record.path, device=device, seed=seed, num_classes=d.num_classes,
                       dataset=cfg.dataset, surrogate=surrogate, progress=progress)

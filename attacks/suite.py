"""Named suites (lists of tests with their parameters) and the evaluation of a record.

Each test's result goes into the record's metrics.json under `suite.<test>` (atomically, merged)
with its protocol, seed and cost. A test already there with the same protocol, seed and number of
examples is not recomputed unless `force`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from bench import store

from .base import TESTS, EvalContext

SUITES: dict[str, list[tuple[str, dict]]] = {
    "quick": [("clean", {})],
    "paper": [("clean", {})],
    "full": [("clean", {})],
}


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
        if tname not in TESTS:
            raise ValueError(f"suite {name!r} names unknown test {tname!r}; registered: {', '.join(sorted(TESTS))}")
        tests.append(TESTS[tname](**params))
    return tests


def evaluate(ctx: EvalContext, suite: str = "quick", run_dir: Path | None = None, force: bool = False,
             only: list[str] | None = None, log=print) -> dict:
    """Run a suite on a model; with `run_dir`, merge each result into its metrics.json."""
    done = {}
    if run_dir is not None:
        done = (store.read_json(Path(run_dir) / "metrics.json", {}) or {}).get("suite", {})
    results = {}
    for test in build_suite(suite, only):
        prev = done.get(test.name)
        if (not force and prev and prev.get("protocol") == test.protocol() and prev.get("seed") == ctx.seed
                and prev.get("n_examples") == len(ctx.x)):
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
    return results


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

"""`python -m bench eval`: run a suite on a trained record (or a RobustBench zoo model), through
`bench.app.api.evaluate` (records) and `bench.app.robustbench.eval_robustbench` (zoo models).

    python -m bench eval RUN_DIR [--suite paper] [--n-examples N] [--force] [--only boundary,pgd]
    python -m bench eval --robustbench NAME --threat-model Linf --model-dir DIR [--suite quick]

Each test's result is merged into the record's metrics.json; a test already there with the same
protocol, seed and number of images is skipped unless --force. `--cifar10c-dir DIR` is a real parameter
of the corruption tests (`cifar10c_dir`; for rb_corruptions the source `released` enters the protocol), so
a result computed from the other source is re-evaluated, never reused; a folder that does not exist is
an error, never a fall-back to generated images.
"""
from __future__ import annotations

import math
from pathlib import Path


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def print_results(results: dict) -> None:
    for name, out in results.items():
        res = out.get("result", {})
        skipped = (res.get("details") or {}).get("skipped")
        cost = out.get("cost", {})
        if skipped:
            print(f"  {name:<22} skipped: {skipped}")
            continue
        summ = ", ".join(f"{k}={_fmt(v)}" for k, v in res.get("summary", {}).items())
        print(f"  {name:<22} {summ}  [{cost.get('seconds', '?')} s, {cost.get('forward_calls', '?')} forward calls]")


def cmd_eval(args) -> int:
    import attacks
    from bench.cli import UserError
    from bench.core.device import resolve_device
    only = None
    if args.only is not None:  # `--only ''` is no test at all, never "all tests"
        only = [t.strip() for t in args.only.split(",") if t.strip()]
        if not only:
            raise UserError(f"--only is empty; give test names, e.g. clean,gaussian_noise "
                            f"(valid: {', '.join(attacks.available_tests())})")
    if args.seed is not None and not 0 <= args.seed <= 2**63 - 1:
        raise UserError(f"--seed must be from 0 to {2**63 - 1}, got {args.seed}")
    c10c = getattr(args, "cifar10c_dir", None)
    if c10c is not None and not Path(c10c).expanduser().is_dir():  # never a silent fall-back to generated images
        raise UserError(f"--cifar10c-dir {c10c}: no such folder (it should hold the released CIFAR-10-C labels.npy "
                        "and <corruption>.npy files)")
    options = {"cifar10c_dir": str(Path(c10c).expanduser())} if c10c else None
    if c10c:  # the generic corruptions test (attacks/corruptions.py) still reads it from the environment
        import os
        os.environ["REGBENCH_CIFAR10C"] = str(Path(c10c).expanduser())
    if only:
        unknown = sorted(set(only) - set(attacks.available_tests()))
        if unknown:
            raise UserError(f"unknown test(s) {', '.join(unknown)}; valid: {', '.join(attacks.available_tests())}")
    if args.suite is not None:
        attacks.SUITES[args.suite]  # an unknown suite: one line listing the valid ones
    if args.n_examples is not None and args.n_examples < 1:
        raise UserError(f"--n-examples must be a positive number of test images, got {args.n_examples}")
    if args.robustbench:
        from bench.cli.common import check_results_dir
        check_results_dir(args.out)
        return _eval_zoo(args, resolve_device(args.device or "auto"), options)
    if not args.run_dir:
        raise UserError("give a RUN_DIR (a trained record) or --robustbench NAME")
    record = _trained_record(Path(args.run_dir))
    cfg = record.config()
    suite = args.suite or cfg.suite
    if args.n_examples is not None:
        _refuse_partial(record, suite, only, args.n_examples)
    from bench.app import api
    results = api.evaluate(record, suite, device=resolve_device(args.device or cfg.device),
                           n_examples=args.n_examples, seed=cfg.seed if args.seed is None else args.seed, only=only,
                           force=args.force, progress=cfg.progress and not args.no_progress, options=options)
    print(f"record: {record.path.resolve()} (suite {suite}, {_n_images(results)} test images)")
    print_results(results)
    return 0


def _n_images(results: dict):
    return next((out.get("n_examples") for out in results.values() if out.get("n_examples") is not None), "?")


def _eval_zoo(args, device, options=None) -> int:
    from bench.cli import UserError
    if args.run_dir:
        raise UserError("give either RUN_DIR or --robustbench NAME, not both")
    if not args.threat_model or not args.model_dir:
        raise UserError("--robustbench needs --threat-model (Linf | L2 | corruptions) and --model-dir DIR")
    from bench.app.robustbench import eval_robustbench
    out = eval_robustbench(name=args.robustbench, threat_model=args.threat_model, model_dir=args.model_dir,
                           suite=args.suite or "quick", n_examples=args.n_examples, out=args.out, device=device,
                           cifar10c_dir=(options or {}).get("cifar10c_dir"))
    if out is not None:
        print(f"record: {out}")
    return 0


def _trained_record(run_dir: Path):
    """The record at `run_dir`, refused in one line when it is not a finished training."""
    from bench.cli import UserError
    from bench.core.records import Record
    record = Record(run_dir)
    if record.header() is None:
        raise UserError(f"{run_dir} is not a RegBench record (no config.json); train one with `python -m bench run`")
    train_rec = record.training()
    if train_rec.get("failed"):
        raise UserError(f"{run_dir} is a failed run ({' '.join(str(train_rec.get('error', '')).split())[:300]}); "
                        "fix the cause and rerun `python -m bench run` with --force")
    if not record.model_path.is_file():
        raise UserError(f"{run_dir} has no model.pt: training has not finished "
                        "(re-run `python -m bench run` to resume)")
    record.config()  # every field in its domain (`width: "abc"` is a damaged record, by its path)
    record.check_hash()  # config.json edited under the record: refused, its results would not be what they say
    return record


def _refuse_partial(record, suite: str, only, n_examples: int) -> None:
    """A partial evaluation (--n-examples) never replaces a fuller stored result."""
    import attacks
    from bench.cli import UserError
    n = min(n_examples, record.n_test() or n_examples)
    stored = record.results()
    fuller = sorted(t for t in attacks.suite_tests(suite) if (not only or t in only)
                    and isinstance((stored.get(t) or {}).get("n_examples"), int) and stored[t]["n_examples"] > n)
    if fuller:
        raise UserError(f"refusing --n-examples {n_examples}: the record holds {', '.join(fuller)} on "
                        f"{stored[fuller[0]]['n_examples']} test images and a {n}-image run would replace "
                        "it; evaluate a copy of the record folder instead, or leave --n-examples out")



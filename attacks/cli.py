"""`python -m bench eval`: run a suite on a trained record (or a RobustBench zoo model).

    python -m bench eval RUN_DIR [--suite paper] [--n-examples N] [--force] [--only boundary,pgd]
    python -m bench eval --robustbench NAME --threat-model Linf --model-dir DIR [--suite quick]

Each test's result is merged into the record's metrics.json; a test already there with the same
protocol, seed and number of images is skipped unless --force.
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
    from bench.train import resolve_device
    only = [t.strip() for t in args.only.split(",") if t.strip()] if args.only else None
    if getattr(args, "cifar10c_dir", None):  # read by the corruptions test (attacks/corruptions.py)
        import os
        os.environ["REGBENCH_CIFAR10C"] = args.cifar10c_dir
    if only:
        unknown = sorted(set(only) - set(attacks.available_tests()) - attacks.suite.OPTIONAL_TESTS)
        if unknown:
            raise UserError(f"unknown test(s) {', '.join(unknown)}; valid: {', '.join(attacks.available_tests())}")
    if args.suite is not None and args.suite not in attacks.SUITES:
        raise UserError(f"unknown suite {args.suite!r}; valid suites: {', '.join(attacks.available_suites())}")
    if args.n_examples is not None and args.n_examples < 1:
        raise UserError(f"--n-examples must be a positive number of test images, got {args.n_examples}")
    if args.robustbench:
        if args.run_dir:
            raise UserError("give either RUN_DIR or --robustbench NAME, not both")
        if not args.threat_model or not args.model_dir:
            raise UserError("--robustbench needs --threat-model (Linf | L2 | corruptions) and --model-dir DIR")
        try:
            from leaderboard.robustbench import eval_robustbench
        except ImportError as e:
            raise UserError(f"RobustBench evaluation is not available in this install "
                            f"(leaderboard.robustbench.eval_robustbench could not be imported: {e})") from e
        out = eval_robustbench(name=args.robustbench, threat_model=args.threat_model, model_dir=args.model_dir,
                               suite=args.suite or "quick", n_examples=args.n_examples, out=args.out,
                               device=resolve_device(args.device or "auto"))
        if out is not None:
            print(f"record: {out}")
        return 0
    if not args.run_dir:
        raise UserError("give a RUN_DIR (a trained record) or --robustbench NAME")
    run_dir = Path(args.run_dir)
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir} is not a RegBench record (no config.json); train one with `python -m bench run`")
    from bench import store
    train_rec = (store.read_json(run_dir / "metrics.json", {}) or {}).get("train") or {}
    if train_rec.get("failed"):
        raise UserError(f"{run_dir} is a failed run ({' '.join(str(train_rec.get('error', '')).split())[:300]}); "
                        "fix the cause and rerun `python -m bench run` with --force")
    if not (run_dir / "model.pt").is_file():
        raise UserError(f"{run_dir} has no model.pt: training has not finished (re-run `python -m bench run` to resume)")
    from bench.config import RunConfig
    cfg = RunConfig.from_dict(store.read_json(run_dir / "config.json")["config"])
    suite = args.suite or cfg.suite
    device = resolve_device(args.device or cfg.device)
    progress = cfg.progress and not args.no_progress
    seed = cfg.seed if args.seed is None else args.seed
    ctx = attacks.context_for_run(run_dir, device=device, n_examples=args.n_examples, seed=seed, progress=progress)
    if args.n_examples is not None:  # a partial evaluation never replaces a fuller stored result
        stored = (store.read_json(run_dir / "metrics.json", {}) or {}).get("suite") or {}
        fuller = sorted(t for t, _ in attacks.SUITES[suite] if (not only or t in only)
                        and isinstance((stored.get(t) or {}).get("n_examples"), int)
                        and stored[t]["n_examples"] > len(ctx.x))
        if fuller:
            raise UserError(f"refusing --n-examples {args.n_examples}: the record holds {', '.join(fuller)} on "
                            f"{stored[fuller[0]]['n_examples']} test images and a {len(ctx.x)}-image run would replace "
                            "it; evaluate a copy of the record folder instead, or leave --n-examples out")
    attacks.prepare_context(ctx, ctx.config, suite=suite, only=only)
    results = attacks.evaluate(ctx, suite=suite, run_dir=run_dir, force=args.force, only=only)
    print(f"record: {run_dir.resolve()} (suite {suite}, {len(ctx.x)} test images)")
    print_results(results)
    return 0


def add_parser(sub):
    """The `eval` subcommand: defined in bench.commands.add_eval_parser (parsed without importing torch)."""
    from bench.commands import add_eval_parser
    add_eval_parser(sub)

"""The standard attack-and-corruption suite: one module per family, each a registered test."""
from .base import EvalContext, SuiteTest, TESTS, available_tests, register_test
from . import clean  # noqa: F401
from . import noise, transfer, boundary, whitebox  # noqa: F401  (register their tests)
from .suite import SUITES, available_suites, build_suite, context_for_run, evaluate, register_suite

import importlib.util as _ilu
if _ilu.find_spec(f"{__name__}.corruptions") is not None:  # written separately; the suite builds without it
    from . import corruptions  # noqa: F401
from . import robustbench_suite  # noqa: F401,E402  (the `robustbench` suite: RobustBench's protocol)

TRANSFER_TESTS = ("transfer_fgsm", "transfer_fgsm_reverse")


def surrogate_config(cfg):
    """The surrogate of a run for transfer attacks: the same task and model, unregularized, another seed."""
    return cfg.replace(regularizer="none", reg_params={}, seed=cfg.surrogate_seed)


def prepare_context(ctx: EvalContext, cfg, suite: str | None = None, only=None, log=print) -> EvalContext:
    """Find or train the transfer surrogate (a normal record next to the evaluated run) and put it in
    `ctx.extras` ("surrogate", "surrogate_dir", "surrogate_seed"). Does nothing when the suite has no
    transfer test or there is no config (e.g. a zoo model): the transfer tests then report 'skipped'."""
    from pathlib import Path
    from bench.train import load_trained, train
    if cfg is None:
        return ctx
    names = [t for t, _ in SUITES.get(suite or cfg.suite, [])]
    if only:
        names = [t for t in names if t in only]
    if not any(t in TRANSFER_TESTS for t in names):
        return ctx
    scfg = surrogate_config(cfg).replace(device=str(ctx.device), progress=ctx.progress)
    if ctx.run_dir is not None:  # next to the evaluated record, wherever that now lives
        scfg = scfg.replace(out=str(Path(ctx.run_dir).resolve().parent))
    # Two evaluations sharing a surrogate train it once: `train` holds the surrogate record's run lock
    # (`store.run_lock`, re-entrant within a process, so a run that is its own surrogate does not block
    # itself). No second lock here: a separate surrogate lock taken before the run lock would deadlock
    # against `bench run` of the surrogate config, which holds its run lock while it evaluates.
    sdir = train(scfg, log=log)
    _, model = load_trained(sdir, ctx.device)
    ctx.extras.update(surrogate=model, surrogate_dir=str(sdir), surrogate_seed=scfg.seed)
    return ctx


__all__ = ["EvalContext", "SuiteTest", "TESTS", "available_tests", "register_test", "SUITES",
           "available_suites", "build_suite", "evaluate", "context_for_run", "register_suite",
           "prepare_context", "surrogate_config"]

"""The pipelines of one run: train, provide the transfer surrogate, evaluate. The one place that
decides what the surrogate is (`surrogate_config`) and trains it when it is missing; the suite only
receives it (`attacks.Surrogate`, a typed field of the evaluation context) and never trains.

`bench run`, the sweep's jobs (`bench.app.jobs`) and the Python API (`bench.app.api`) all go through
`run_and_evaluate` / `evaluate_record`, so the train-then-evaluate order, the run lock and the
surrogate rules exist once.
"""
from __future__ import annotations

import attacks
from bench.app.epoch_evals import MATCH_TESTS, run_epoch_evals
from bench.core.config import RunConfig
from bench.core.device import resolve_device
from bench.core.records import Record, as_record
from bench.engine.trainer import train


def surrogate_config(cfg: RunConfig) -> RunConfig:
    """The transfer attack's source model of a run: the same task, model and budget, unregularized,
    at the run's effective surrogate seed (by default one per seed block: 1000 + seed), trained on the
    block's own data (its data seed, made explicit so the surrogate's seed does not move it). A surrogate is
    trained, never evaluated: it keeps no epoch weights (`epoch_evals` would leave them behind)."""
    return cfg.replace(regularizer="none", reg_params={}, seed=cfg.effective_surrogate_seed,
                       data_seed=cfg.effective_data_seed, surrogate_seed=cfg.effective_surrogate_seed,
                       epoch_evals=False)


def suite_needs_surrogate(suite: str, only=None) -> bool:
    """True when the named suite (restricted to `only`) has a transfer test."""
    attacks.SUITES[suite]  # an unknown suite: an error that lists the valid ones
    return attacks.needs_surrogate(suite, only)


def provide_surrogate(cfg: RunConfig, device, out=None, progress: bool = False, log=print) -> attacks.Surrogate:
    """The surrogate record of `cfg` (found next to the evaluated record, or trained there) as the
    suite's typed `Surrogate`. Two evaluations sharing a surrogate train it once: `train` holds the
    surrogate record's run lock (re-entrant within a process, so a run that is its own surrogate does
    not block itself)."""
    scfg = surrogate_config(cfg).replace(device=str(device), progress=progress)
    if out is not None:
        scfg = scfg.replace(out=str(out))
    sdir = train(scfg, log=log)
    _, model = Record(sdir).load_model(device)
    return attacks.Surrogate(model=model, run_dir=str(sdir), seed=scfg.seed)


def evaluate_record(record, suite: str | None = None, *, device=None, n_examples: int | None = None,
                    seed: int | None = None, only=None, force: bool = False, progress: bool | None = None,
                    log=print, options: dict | None = None) -> dict:
    """Run a suite on a trained record (its own suite and seed by default), with its surrogate when
    the suite has a transfer test, and store the results in it (`options`: see attacks.build_suite).
    Holds the record's run lock, so a second identical command waits and then finds the results."""
    record = as_record(record)
    cfg = record.config()
    suite = suite or cfg.suite
    attacks.SUITES[suite]
    device = resolve_device(cfg.device if device is None else str(device))
    progress = cfg.progress if progress is None else progress
    with record.run_lock(log=log):
        epochs = (record.path / "epochs").is_dir()  # epoch_evals: the epochs' weights, evaluated then deleted
        ctx = attacks.context_for_run(record, device=device, n_examples=n_examples,
                                      seed=cfg.seed if seed is None else seed, progress=progress)
        if suite_needs_surrogate(suite, only) or (epochs and suite_needs_surrogate(cfg.suite, MATCH_TESTS)):
            ctx.surrogate = provide_surrogate(cfg, device, out=record.path.resolve().parent, progress=progress,
                                              log=log)
        if epochs:
            run_epoch_evals(record, device=device, log=log, surrogate=ctx.surrogate)
        return attacks.evaluate(ctx, suite=suite, run_dir=record, force=force, only=only, log=log, options=options)


def run_and_evaluate(cfg: RunConfig, *, evaluate: bool = True, force: bool = False, force_eval: bool = False,
                     log=print) -> Record:
    """Train the run `cfg` describes (or resume / skip it), then evaluate it with `cfg.suite`."""
    record = Record(train(cfg, log=log, force=force))
    if cfg.epoch_evals and not (record.path / "epochs").is_dir() and "epoch_suite" not in record.metrics():
        # epoch_evals is not hashed: a record trained without it is found complete and has no epochs to evaluate
        log(f"[regbench] {record.name}: epoch_evals is on but this record was trained without it, so it has no "
            "epoch weights; --force retrains it")
    if evaluate:
        evaluate_record(record, cfg.suite, device=cfg.device, force=force_eval, progress=cfg.progress, log=log)
    return record


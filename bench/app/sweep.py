"""Sweeps: a comparison of regularizers over seeds (what `bench sweep`, `bench demo`, `bench estimate` and
`bench reproduce` run), described by a `SweepSpec`.

A sweep expands into one job per (regularizer, seed, dataset), plus the unregularized surrogate
model of each dataset that the transfer attack needs (trained first, see bench/app/jobs.py). Every job
of a dataset gets the same budget and the same suite: the sweep builds all of them from one base
config, refuses `--set` overrides that would give one regularizer its own budget or protocol, and
checks that the jobs' `comparison_key` (everything but regularizer, hyper-parameters and seed)
agrees before it launches anything.

Re-running a sweep runs only what is missing: a job whose record is trained and holds every suite
test is not launched at all; an interrupted one resumes from its checkpoint (the trainer's own
resume) and the suite skips tests already in the record. `--status` reads the per-run status files
and shows done / running / stale / failed per job, from any machine that sees the results folder.

This module plans (`SweepSpec` -> `Plan`, one `JobSpec` per job); `bench.app.sweep_run` runs a plan and
`bench.app.sweep_report` shows its status, leaderboard and plots.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.app.jobs import JobSpec
from bench.core.records import Record

from bench.core.config import DEFAULT_PRESET, RunConfig


@dataclasses.dataclass
class SweepSpec:
    """A sweep: regularizers x seeds x datasets from one preset, with the same config overrides for
    every job, and how to launch the jobs. Lists may be given as text (`"0-4"`, `"none,pixel_sim"`)."""
    regularizers: list | str = "none"
    seeds: list | str = "0-4"
    datasets: list | str | None = None  # default: the preset's dataset
    preset: str | None = DEFAULT_PRESET
    overrides: dict = dataclasses.field(default_factory=dict)  # RunConfig fields, e.g. {"width": 0.5, "out": ...}
    sets: list = dataclasses.field(default_factory=list)  # `--set` items: key=value, reg_params.k=v, REG.k=v
    plugins: list = dataclasses.field(default_factory=list)  # modules that register regularizers
    # suites a study file declares ({name: [(test, params), ...]}): registered here and in every job's process
    suites: dict = dataclasses.field(default_factory=dict)
    train_only: bool = False  # train every job (and surrogates), evaluate nothing
    launcher: str = "local"  # local | ray | slurm
    workers: int | None = None
    threads: int | None = None  # torch threads per job (local: default cores / workers; ray: CPUs per job)
    gpus_per_job: float | None = None  # ray: a fraction packs several jobs on one GPU (None: 1 when there are GPUs)
    ray_address: str | None = None
    slurm_cluster: str | None = None
    slurm_params: dict = dataclasses.field(default_factory=dict)
    slurm_array: bool = True  # slurm: the jobs ready at once go out as one job array (one sbatch)
    force: bool = False  # launch jobs whose status says running (their process is gone)
    yes: bool = False  # plan more than CONFIRM_JOBS jobs
    pack: int = 1  # train this many runs of one regularizer at once on one device (bench.engine.packed)


# A plan is built in memory (one JobSpec per job), so its size is bounded: above CONFIRM_JOBS jobs a sweep or
# estimate needs `--yes`; above MAX_JOBS it is refused (split it). Both are counted before any list is expanded.
CONFIRM_JOBS = 500
MAX_JOBS = 10_000
SEED_MAX = 2**63 - 1  # bench.core.config.validate's range of a seed


# ----------------------------------------------------------------------------- parsing
def seed_ranges(text: str) -> list[tuple[int, int]]:
    """'0-4,7' -> [(0, 4), (7, 7)], every seed checked against [0, 2**63-1] and every range low-high,
    without expanding anything (so `0-100000000` costs nothing to check)."""
    usage = f"--seeds expects e.g. 0-4 or 0,1,2 or 0-2,7 (seeds 0 to {SEED_MAX}); got {text!r}"
    ranges = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"{usage}: an empty item" if str(text).strip() else "--seeds is empty; e.g. 0-4")
        try:
            if "-" in part[1:]:
                i = part.index("-", 1)
                a, b = int(part[:i]), int(part[i + 1:])
            else:
                a = b = int(part)
        except ValueError:
            raise ValueError(usage) from None
        if a < 0 or b < 0 or part.startswith("-"):
            raise ValueError(f"--seeds {text}: seeds are 0 to {SEED_MAX}, got a negative one")
        if a > SEED_MAX or b > SEED_MAX:
            raise ValueError(f"--seeds {text}: seeds are 0 to {SEED_MAX}")
        if b < a:
            raise ValueError(f"--seeds {text}: the range {part} runs backwards; write it low-high ({b}-{a})")
        ranges.append((a, b))
    return ranges


def count_seeds(seeds) -> int:
    """How many seeds (at most: overlaps count twice) `seeds` names, without expanding a text range."""
    if isinstance(seeds, str):
        return sum(b - a + 1 for a, b in seed_ranges(seeds))
    return len(list(seeds))


def parse_seeds(text: str, limit: int | None = None) -> list[int]:
    """'0-4' -> [0, 1, 2, 3, 4]; '0,2,5' and '0-2,7' work too. More than `limit` seeds is refused before
    the list is built."""
    ranges = seed_ranges(text)
    n = sum(b - a + 1 for a, b in ranges)
    if limit is not None and n > limit:
        raise ValueError(f"--seeds {text} names {n} seeds; at most {limit} here")
    seeds: list[int] = []
    for a, b in ranges:
        seeds += list(range(a, b + 1))
    return list(dict.fromkeys(seeds))


def check_seed_list(seeds) -> list[int]:
    """Seeds given as a list (the Python API): integers in [0, 2**63-1]."""
    out = []
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= SEED_MAX:
            raise ValueError(f"seeds must be integers from 0 to {SEED_MAX}, got {s!r}")
        out.append(s)
    if not out:
        raise ValueError("seeds is empty; e.g. [0, 1, 2]")
    return list(dict.fromkeys(out))


def check_datasets(names: list[str]) -> None:
    """Every dataset name known (or `folder:PATH` with an existing folder, `npz:PATH` with an existing file)
    before anything runs."""
    from bench.core import arrays
    from bench.core import data as bdata
    for ds in names:
        if arrays.is_npz(ds):
            arrays.path_of(ds)  # a missing file: one line saying where it looked
            continue
        if ds.startswith("folder:"):
            path = Path(ds[len("folder:"):]).expanduser()
            if not path.is_dir():
                raise ValueError(f"dataset {ds}: no folder {path}")
            continue
        if ds not in bdata.available_datasets():
            raise ValueError(f"unknown dataset {ds!r}; valid datasets: "
                             f"{', '.join(bdata.available_datasets() + ['folder:PATH', 'npz:PATH'])}")


def check_launch(spec: "SweepSpec") -> None:
    """Workers and threads in their domain (one-line errors before anything runs)."""
    for name, v in (("--workers", spec.workers), ("--threads", spec.threads)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    from bench.app.launchers import LAUNCHERS
    if spec.launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {spec.launcher!r}; valid launchers: {', '.join(LAUNCHERS)}")


def parse_list(text: str | None) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in (text or "").split(",") if t.strip()))


def split_sets(sets: list[str], reg_names: list[str]) -> tuple[list[str], dict, dict]:
    """Split `--set` items into (global config sets, hyper-parameters for every regularizer that has
    them, per-regularizer hyper-parameters `NAME.param=value`). Anything that would give one
    regularizer its own budget or protocol is refused."""
    from bench.core.config import RunConfig, parse_value
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    glob, common, per = [], {}, {}
    for item in sets or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, val = item.split("=", 1)
        if key in ("regularizer", "seed"):
            raise ValueError(f"--set {key}=... is not allowed in a sweep: use --regularizers / --seeds")
        if key == "reg_params":
            raise ValueError("--set reg_params=... is not allowed: use reg_params.NAME=VALUE (every "
                             "regularizer that has NAME) or REGULARIZER.NAME=VALUE (one regularizer)")
        if "." in key:
            head, rest = key.split(".", 1)
            if head in ("reg_params", "reg"):
                common[rest] = parse_value(val)
                continue
            if head in reg_names:
                if rest in fields:
                    raise ValueError(
                        f"--set {key}=... would give {head} its own {rest!r}: every job of a sweep gets the "
                        f"same budget and protocol. Set it for all with --set {rest}=..., or run a separate sweep")
                per.setdefault(head, {})[rest] = parse_value(val)
                continue
        glob.append(item)
    return glob, common, per


def _params_for(reg: str, common: dict, per: dict) -> dict:
    import regularizers
    cls = regularizers.get_class(reg)
    valid = {f.name for f in dataclasses.fields(cls.Params)}
    out = {}
    if reg != "none":  # the baseline has no hyper-parameters that matter; keep its record shared
        out.update({k: v for k, v in common.items() if k in valid})
    for k, v in per.get(reg, {}).items():
        if k not in valid:
            raise ValueError(f"{reg}: unknown hyper-parameter {k!r}; valid: {', '.join(sorted(valid)) or '(none)'}")
        out[k] = v
    return out


# ----------------------------------------------------------------------------- the plan
@dataclasses.dataclass
class Plan:
    specs: list  # surrogates first, then runs
    out: Path
    datasets: list
    regularizers: list
    seeds: list

    @property
    def runs(self):
        return [s for s in self.specs if s.kind == "run"]


def _names(v) -> list[str]:
    return parse_list(v) if (v is None or isinstance(v, str)) else list(dict.fromkeys(str(x) for x in v))


def plan_sweep(spec: SweepSpec) -> Plan:
    """Expand a sweep into job specs: surrogates first, then one run per (regularizer, seed, dataset)."""
    import regularizers
    from bench.core.config import build_config
    for mod in spec.plugins or []:
        regularizers.load_plugin(mod)
    for name, tests in (spec.suites or {}).items():
        import attacks
        attacks.register_suite(name, tests)
    regs = _names(spec.regularizers)
    if not regs:
        raise ValueError("--regularizers is empty")
    for r in regs:
        regularizers.get_class(r)  # unknown name: an error that lists the valid ones
    check_launch(spec)
    if spec.datasets is not None and not _names(spec.datasets):
        raise ValueError("--datasets is empty; e.g. fashion_mnist (or leave it out for the preset's)")
    datasets = _names(spec.datasets)
    if spec.overrides.get("dataset"):
        datasets = list(dict.fromkeys([spec.overrides["dataset"]] + datasets))
    n_jobs = len(regs) * count_seeds(spec.seeds) * max(1, len(datasets))
    if n_jobs > MAX_JOBS:
        raise ValueError(f"this sweep would be {n_jobs} jobs; at most {MAX_JOBS} per sweep: split it "
                         "(fewer --seeds, --regularizers or --datasets)")
    if n_jobs > CONFIRM_JOBS and not spec.yes:
        raise ValueError(f"this sweep would be {n_jobs} jobs (more than {CONFIRM_JOBS}): add --yes to plan it, "
                         "or fewer --seeds, --regularizers or --datasets")
    seeds = parse_seeds(spec.seeds) if isinstance(spec.seeds, str) else check_seed_list(spec.seeds)
    check_datasets(datasets)
    glob, common, per = split_sets(spec.sets, regs)
    _check_reg_sets(regs, common, per)
    over = _overrides(spec)
    base0 = build_config(spec.preset, over, glob)
    specs_sur, specs_run, names = [], [], []
    for ds in datasets or [base0.dataset]:
        base = build_config(spec.preset, dict(over, dataset=ds), glob)
        names.append(base.dataset)  # as the records name it (an array file: npz:sha256=...)
        sur, runs = _dataset_jobs(spec, base, regs, seeds, common, per)
        specs_sur += sur
        specs_run += runs
    sur_dirs = {s.run_dir for s in specs_sur}
    for s in specs_run:
        if s.run_dir in sur_dirs:
            raise ValueError(f"seed {s.config['seed']} of `none` is the transfer surrogate's seed "
                             f"(surrogate seed {s.config['seed']}): the transfer test would attack "
                             f"the model with its own gradients. Drop that seed or --set surrogate_seed=...")
    return Plan(specs=specs_sur + specs_run, out=Path(base0.out).expanduser().resolve(),
                datasets=list(dict.fromkeys(names)), regularizers=regs, seeds=seeds)


def _check_reg_sets(regs: list[str], common: dict, per: dict) -> None:
    import regularizers
    unused = [k for k in common if all(k not in {f.name for f in dataclasses.fields(regularizers.get_class(r).Params)}
                                       for r in regs if r != "none")]
    if unused:
        raise ValueError(f"--set reg_params.{unused[0]}=...: no regularizer of this sweep has a hyper-parameter "
                         f"{unused[0]!r}")
    for r in per:
        if r not in regs:
            raise ValueError(f"--set {r}.…: {r} is not in --regularizers ({', '.join(regs)})")


def _overrides(spec: SweepSpec) -> dict:
    """The spec's config overrides for every job (never the regularizer, seed or preset; no progress bars:
    job logs are files)."""
    fixed = ("regularizer", "reg_params", "seed", "dataset", "preset", "progress")
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    bad = sorted(k for k in spec.overrides if k not in fields or (k in fixed and k != "dataset"))
    if bad:
        raise ValueError(f"a sweep's overrides cannot set {', '.join(bad)} (use regularizers / seeds / datasets; "
                         f"config fields: {', '.join(sorted(fields - set(fixed)))})")
    over = {k: v for k, v in spec.overrides.items() if k != "dataset" and v is not None}
    over["progress"] = False
    return over


def _dataset_jobs(spec: SweepSpec, base: RunConfig, regs, seeds, common, per) -> tuple[list, list]:
    """(surrogate jobs, run jobs) of one dataset, all from one base config: one budget and protocol."""
    import regularizers
    from bench.app.pipeline import suite_needs_surrogate, surrogate_config
    ds, plugins, suites = base.dataset, list(spec.plugins or []), dict(spec.suites or {})
    sur, runs, keys, sur_ids = [], [], {}, {}
    if suite_needs_surrogate(base.suite):  # one surrogate per seed block (or one for all: a fixed surrogate_seed)
        for s in seeds:
            scfg = surrogate_config(base.replace(seed=s))
            sid = f"surrogate/{ds}/s{scfg.seed}"
            sur_ids[s] = sid
            if all(j.id != sid for j in sur):
                sur.append(JobSpec(id=sid, kind="surrogate", config=scfg.to_dict(),
                                   run_dir=str(Record.for_config(scfg).path), plugins=plugins,
                                   suites=suites))
    params_of = {}
    for r in regs:
        params_of[r] = _params_for(r, common, per)
        regularizers.get_class(r)(**params_of[r])  # bad values fail here, before anything runs
    # block by block (every regularizer of seed 0, then of seed 1, ...): an interrupted sweep leaves
    # complete seed blocks, which a paired analysis can use
    for s in seeds:
        for r in regs:
            params = params_of[r]
            # epoch_evals serves the accuracy-matched control, which is `none`'s: other arms keep no epochs
            cfg = base.replace(regularizer=r, reg_params=params, seed=s, epoch_evals=base.epoch_evals and r == "none")
            keys.setdefault(cfg.comparison_key(), []).append(f"{r}/s{s}")
            runs.append(JobSpec(id=f"{r}/{ds}/s{s}", kind="run", config=cfg.to_dict(),
                                run_dir=str(Record.for_config(cfg).path), deps=[sur_ids[s]] if s in sur_ids else [],
                                plugins=plugins, suites=suites, evaluate=not spec.train_only))
    if len(keys) != 1:  # cannot happen through the CLI; guards programmatic use
        raise ValueError(f"jobs of {ds} would not share one budget/protocol: {keys}")
    return sur, runs

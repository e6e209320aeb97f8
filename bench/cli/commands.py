"""`bench run` and `bench list`, and the arguments of `eval`, `leaderboard`, `plot`, `estimate` and
`similarity` (their command functions live in bench/cli/<command>.py and call `bench.app`). The options `run`
shares with `sweep`, `demo` and `estimate` are in bench/cli/common.py, which imports neither command module.

This module must stay importable without torch, numpy, scipy or pandas: `python -m bench --help` (and
every `COMMAND --help`) builds the whole parser from it. Heavy imports happen inside the command
functions only; the names offered in help texts come from `bench.core.names`.
"""
from __future__ import annotations

import sys

from bench.core.config import DEFAULT_PRESET, PRESETS
from bench.cli.common import CONFIRM_ABOVE_S, RUN_FIELDS, add_common_run_args, check_results_dir, hms
from bench.core.names import DATASETS, DEVICES, FILE_DATASETS, REGULARIZERS, SUITES, TESTS, joined

PRESET_HELP = {
    "paper": "the papers' protocol: grayscale CIFAR-10, ResNet18 width 1.0, 40 epochs, paper suite (GPU-days on a CPU)",
    "quick": "Fashion-MNIST 10k images, width 0.25, 4 epochs, quick suite (minutes on 2 CPU cores)",
    "demo": "Fashion-MNIST 5k images, width 0.25, 3 epochs, quick suite (what `bench demo` runs)",
    "repro_cpu": "the CPU reproduction study's runs (`bench reproduce --scale cpu`)",
    "tiny": "256 images, width 0.125, 1 epoch (seconds; tests)",
}


def lazy(target: str):
    """A command function imported only when the command runs: 'package.module:function'."""
    return LazyCommand(target)


class LazyCommand:
    def __init__(self, target: str):
        self.target = target

    def __call__(self, args):
        import importlib
        mod, fn = self.target.split(":")
        return getattr(importlib.import_module(mod), fn)(args)

    def __repr__(self):
        return f"lazy({self.target!r})"


def config_from_args(args, **extra):
    from bench.core.config import build_config
    over = {k: getattr(args, k, None) for k in RUN_FIELDS}
    over.update(extra)
    if getattr(args, "no_progress", False):
        over["progress"] = False
    return build_config(args.preset, over, args.set)


def load_plugins(names):
    import regularizers
    for mod in names or []:
        regularizers.load_plugin(mod)


def preflight(args, cfg, log=print) -> float | None:
    """Before `bench run` trains: the estimated device time of what is still to do (the run, the transfer
    attack's surrogate when its record is missing, the suite), measured here by `bench.app.estimate` (a few
    real train steps and a tiny suite run). Returns the estimate in seconds (None when skipped)."""
    import dataclasses

    from bench.app import estimate as est_mod
    from bench.app.jobs import is_complete
    from bench.app.sweep import SweepSpec, plan_sweep
    over = {k: v for k, v in dataclasses.asdict(cfg).items() if k in RUN_FIELDS}
    spec = SweepSpec(regularizers=[cfg.regularizer], seeds=[cfg.seed], preset=cfg.preset, overrides=over,
                     sets=list(args.set or []), plugins=list(args.plugin or []))
    pending = [s for s in plan_sweep(spec).specs if getattr(args, "force", False) or not is_complete(s)]
    if not pending:
        log("[run] the record is complete: nothing to train or evaluate")
        return 0.0
    if getattr(args, "no_estimate", False):
        return None
    log("[run] estimating the time: timing a few train steps and a tiny suite run on this device ...")
    est = est_mod.estimate(spec, log=lambda m: log(f"  {m}"), measure_steps=4, warmup_steps=1, suite_images=8)
    return _report_estimate(est, pending, cfg, log)


def _report_estimate(est: dict, pending, cfg, log) -> float:
    pend = {(s.kind, s.config["regularizer"]) for s in pending}
    parts, total = [], 0.0
    for r in est["rows"]:
        if (r["kind"], r["regularizer"]) not in pend:
            continue
        what = "surrogate (for the transfer attack)" if r["kind"] == "surrogate" else "training"
        parts.append(f"{what} {r['steps']} steps x {r['step_s']:.3f} s = {hms(r['train_s'])}")
        total += r["train_s"]
        if r["kind"] == "run":
            parts.append(f"suite {cfg.suite} {hms(r['suite_total_s'])}")
            total += r["suite_total_s"]
    log(f"[run] estimate on {est.get('device')}: {hms(total)} ({'; '.join(parts)}); a rough figure "
        f"(from short timings), not a promise")
    return total


def cmd_run(args) -> int:
    import time
    t0 = time.time()
    preset_note = ""
    if args.preset is None:
        args.preset = DEFAULT_PRESET
        preset_note = " (the default; --preset paper for the papers' protocol)"
    cfg, device = _checked_run_config(args)
    print(f"[run] preset {cfg.preset}{preset_note}: {cfg.dataset} ({cfg.color}), {cfg.arch} width {cfg.width:g}, "
          f"regularizer {cfg.regularizer}, seed {cfg.seed}, suite {cfg.suite}, device {device}")
    _print_budget(cfg)
    try:
        est = preflight(args, cfg)
    except (ValueError, KeyError, OSError, RuntimeError) as e:  # no estimate is no reason not to run
        print(f"[run] no time estimate: {e}")
        est = None
    if est is not None and est > CONFIRM_ABOVE_S and not args.yes:
        from bench.cli import UserError
        raise UserError(f"this run is estimated at {hms(est)} on {device} (more than {hms(CONFIRM_ABOVE_S)}): "
                        f"add --yes to run it, or choose a smaller --preset (quick: minutes on a CPU)")
    from bench.app import api
    print("[run] training ..." + ("" if args.no_eval else f" then evaluating with the {cfg.suite} suite"), flush=True)
    record = api.run(cfg, evaluate=not args.no_eval, force=getattr(args, "force", False),
                     force_eval=args.force_eval)
    acc = record.results().get("clean", {}).get("result", {}).get("summary", {}).get("accuracy")
    print(f"record: {record.path}")
    if acc is not None:
        print(f"clean test accuracy: {acc:.4f}")
    print(f"[run] preset {cfg.preset}, finished in {hms(time.time() - t0)}")
    return 0


def _checked_run_config(args):
    """The run's config and device, every name checked before any work (a plugin may register suites)."""
    import attacks
    import regularizers
    from bench.core.device import resolve_device
    load_plugins(args.plugin)
    regularizers.get_class(args.regularizer)  # fail early with the list of valid names
    cfg = config_from_args(args, regularizer=args.regularizer, seed=args.seed)
    check_results_dir(cfg.out)
    regularizers.get_class(cfg.regularizer)(**cfg.reg_params)  # hyper-parameters in their domain, before any work
    device = resolve_device(cfg.device)
    if not args.no_eval:
        attacks.SUITES[cfg.suite]
    return cfg, device


def _print_budget(cfg) -> None:
    """The step budget, from the dataset's known size (the split of bench.core.data.split_indices:
    validation images come on top of n_train)."""
    import math

    from bench.app.estimate_measure import DATASET_SIZES
    from bench.engine.epoch_plan import steps_per_epoch
    n_total = DATASET_SIZES.get(cfg.dataset, (None,))[0]
    if n_total is None:
        return
    n_fit = min(cfg.n_train or n_total, n_total)
    n_val = max(1, math.ceil(cfg.val_fraction * n_fit))
    n_fit = n_total - n_val if cfg.n_train is None else min(n_fit, n_total - n_val)
    spe = steps_per_epoch(cfg, n_fit)
    print(f"[run] step budget: {cfg.epochs} epochs x {spe} steps = {cfg.epochs * spe} steps of batch "
          f"{cfg.batch_size} ({n_fit} training images)")


# ----------------------------------------------------------------------------- bench list
def cmd_list(args) -> int:
    """Everything the install offers; with PATTERN (fnmatch wildcards, e.g. 'pixel*'), only matching names."""
    from fnmatch import fnmatchcase
    pat = args.pattern

    def keep(name: str) -> bool:
        return pat is None or fnmatchcase(name, pat)

    import regularizers
    from bench.core import data
    from bench.core import models
    for mod in args.plugin or []:  # a plugin that fails to import is listed with its error below
        regularizers.load_plugin(mod, strict=False)
    sections: list[tuple[str, list[str]]] = []
    regs = []
    for e in regularizers.entries():
        if keep(e.name):
            hp = ", ".join(f"{k}={v}" for k, v in e.cls.Params().__dict__.items())
            regs.append(f"{e.name:<14} [{e.source}] {hp}")
    regs += [f"(plugin {name} failed to load: {err})" for name, err in regularizers.plugin_errors().items()
             if keep(name)]
    sections.append(("regularizers", regs))
    sections.append(("models", [m for m in models.available_models() if keep(m)]))
    sections.append(("datasets", [d for d in data.available_datasets() if keep(d)]
                     + [f for f in ("folder:PATH", "npz:PATH") if keep(f)]))
    sections.append(("presets", [f"{p:<10} {PRESET_HELP.get(p, '')}".rstrip() for p in sorted(PRESETS) if keep(p)]))
    import attacks
    sections.append(("suites", [f"{s:<10} {', '.join(attacks.suite_tests(s))}"
                                for s in attacks.available_suites() if keep(s)]))
    sections.append(("tests", [t for t in attacks.available_tests() if keep(t)]))
    shown = 0
    for title, items in sections:
        if not items:
            continue
        print(f"{title}:")
        for it in items:
            print(f"  {it}")
        shown += len(items)
    if not shown:
        print(f"nothing matches {pat!r}", file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------- parsers
def add_parser(sub):
    """`run` and `list`."""
    p = sub.add_parser("run", help="train one (regularizer, seed) run and evaluate it (default preset: quick)",
                       description="Train one (regularizer, seed) run, then evaluate it with the preset's suite. "
                                   "Prints the resolved preset, the step budget and an estimate of the time first; "
                                   f"asks for --yes above {hms(CONFIRM_ABOVE_S)}.")
    p.add_argument("--regularizer", "-r", default="none", metavar="NAME",
                   help=f"built-ins: {joined(REGULARIZERS)}, or a plugin's name (see `bench list`) (default: none)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    p.add_argument("--no-eval", action="store_true", help="train only")
    p.add_argument("--force-eval", action="store_true", help="recompute suite results already in the record")
    p.add_argument("--force", action="store_true",
                   help="retrain from scratch even if the record exists (e.g. its model.pt is damaged)")
    p.add_argument("--yes", "-y", action="store_true",
                   help=f"run even when the estimate is above {hms(CONFIRM_ABOVE_S)} on this device")
    p.add_argument("--no-estimate", action="store_true",
                   help="skip the time estimate before training (and so its --yes check)")
    add_common_run_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("list", help="list regularizers, models, datasets, presets, suites and tests",
                       description="List what this install offers. PATTERN (fnmatch wildcards: * ? [..]) "
                                   "keeps only matching names, e.g. `bench list 'pixel*'`.")
    p.add_argument("pattern", nargs="?", default=None, metavar="PATTERN",
                   help="show only names matching this wildcard pattern (e.g. 'pixel*', '*mnist')")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import a module that registers regularizers first; repeatable")
    p.set_defaults(func=cmd_list)


def add_eval_parser(sub):
    p = sub.add_parser("eval", help="evaluate a trained record (or a RobustBench model) with a test suite",
                       description="Run a suite on a trained record; each test's result is merged into its "
                                   "metrics.json (a test already there with the same protocol is skipped).")
    p.add_argument("run_dir", nargs="?", default=None, metavar="RUN_DIR", help="a record folder written by `bench run`")
    p.add_argument("--suite", default=None, metavar="SUITE",
                   help=f"{joined(SUITES)}, or one a --plugin registers (default: the record's suite)")
    p.add_argument("--n-examples", type=int, default=None, dest="n_examples", metavar="N",
                   help="use only the first N test images (development)")
    p.add_argument("--force", action="store_true", help="recompute tests already in the record")
    p.add_argument("--only", default=None, metavar="TEST,...", help=f"run only these tests: {joined(TESTS)}")
    p.add_argument("--device", default=None, help=f"{DEVICES} (default: the record's)")
    p.add_argument("--seed", type=int, default=None, help="suite seed (default: the run's seed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--robustbench", default=None, metavar="NAME",
                   help="evaluate a RobustBench zoo model instead of a record (e.g. Ding2020MMA)")
    p.add_argument("--threat-model", default=None, dest="threat_model", choices=["Linf", "L2", "corruptions"],
                   help="RobustBench threat model: Linf, L2 or corruptions")
    p.add_argument("--model-dir", default=None, dest="model_dir", metavar="DIR",
                   help="RobustBench model folder (MODEL_DIR/cifar10/THREAT/NAME.pt; nothing is downloaded)")
    p.add_argument("--out", default="results", metavar="DIR",
                   help="results folder for RobustBench records (default: %(default)s)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--cifar10c-dir", default=None, dest="cifar10c_dir", metavar="DIR",
                   help="folder of the released CIFAR-10-C .npy files (a parameter of the corruption tests; "
                        "without it they generate the images, which RobustBench's board never ranks)")
    p.set_defaults(func=lazy("bench.cli.evaluate:cmd_eval"))


def add_leaderboard_parsers(sub):
    p = sub.add_parser("leaderboard", help="aggregate records: mean ± SEM over seeds, Δ vs none, Welch p")
    p.add_argument("results", nargs="*", metavar="RESULTS_DIR", help="results directories (default: ./results)")
    p.add_argument("--format", "-f", choices=["term", "md", "csv", "html", "json"], default=None,
                   help="output format: term, md, csv, html or json (default: term, or html when --output ends "
                        "in .html, json when it ends in .json)")
    p.add_argument("--output", "-o", default=None, metavar="FILE",
                   help="write to FILE instead of stdout (never inside a record or the results being read)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --output file that this project did not write")
    p.add_argument("--strict", action="store_true",
                   help="a damaged record is an error (default: skipped with a warning naming it); with --robustbench, "
                        "so is a row measured on fewer images than the published protocol")
    p.add_argument("--metrics", default=None, metavar="PATTERN",
                   help="show these metrics (fnmatch patterns, comma-separated, e.g. 'boundary.*,clean.*'; '*': all) "
                        "instead of the key view (csv/json always carry every column)")
    p.add_argument("--robustbench", default=None, metavar="DATASET:THREAT",
                   help="rank records evaluated with the `robustbench` suite among RobustBench's published rows "
                        "(cifar10:Linf, cifar10:L2, cifar10:corruptions)")
    p.add_argument("--by", default="robustbench", choices=["robustbench", "autoattack"],
                   help="with --robustbench: RobustBench's own order (best known robust accuracy: `external` when "
                        "published, else AutoAttack; default) or AutoAttack accuracy alone")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=lazy("bench.cli.leaderboard:cmd_leaderboard"))

    p = sub.add_parser("plot", help="the paper's figures from the records (PNG and SVG)")
    p.add_argument("results", nargs="*", metavar="RESULTS_DIR", help="results directories (default: ./results)")
    p.add_argument("--out", default="figures", metavar="DIR",
                   help="output folder (default: ./figures; never inside a record or the results being read)")
    p.add_argument("--force", action="store_true", help="replace existing figure files this project did not write")
    p.add_argument("--strict", action="store_true",
                   help="a damaged record is an error (default: skipped with a warning naming it)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=lazy("bench.cli.leaderboard:cmd_plot"))


def add_estimate_parser(sub):
    from bench.cli.sweep import add_sweep_args
    p = sub.add_parser("estimate", help="predict a sweep's device time (train + suite) from rates measured here",
                       description="Predict the device time of a sweep (same arguments as `bench sweep`) from "
                                   "train steps and a tiny suite run timed on this machine; prints a line per stage.")
    add_sweep_args(p)
    p.add_argument("--measure-steps", type=int, default=6, dest="measure_steps", metavar="K",
                   help="train steps timed per regularizer, after the warm-up steps (default: %(default)s)")
    p.add_argument("--warmup-steps", type=int, default=2, dest="warmup_steps", metavar="W",
                   help="train steps run before timing starts (default: %(default)s)")
    p.add_argument("--suite-images", type=int, default=16, dest="suite_images", metavar="N",
                   help="test images of the tiny suite run that counts forwards when no record has them "
                        "(default: %(default)s)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the estimate as JSON")
    p.add_argument("--recalibrate", action="store_true",
                   help="measure this device's rates again (they are cached in $XDG_CACHE_HOME/regbench, "
                        "default ~/.cache/regbench, after the first estimate)")
    p.set_defaults(func=cmd_estimate)


def check_count(option: str, value, lo: int, what: str) -> None:
    """A count option in its domain, or a one-line error with the valid range."""
    if value is not None and value < lo:
        from bench.cli import UserError
        raise UserError(f"{option} must be >= {lo} ({what}), got {value}")


def cmd_estimate(args) -> int:
    check_count("--measure-steps", args.measure_steps, 1, "train steps timed per regularizer")
    check_count("--warmup-steps", args.warmup_steps, 0, "train steps before timing starts")
    check_count("--suite-images", args.suite_images, 1, "test images of the tiny suite run")
    if args.preset is None:
        args.preset = DEFAULT_PRESET
    from bench.app import estimate
    from bench.cli.sweep import checked_spec
    spec = checked_spec(args)
    out = None
    if args.json:
        from bench.core.outputs import check_output
        out = check_output(args.json, option="--json", reading=[spec.overrides.get("out") or "results"],
                           force=getattr(args, "force", False))
    print(f"[estimate] planning the sweep: regularizers {args.regularizers}, seeds {args.seeds}, "
          f"preset {args.preset}", flush=True)
    est = estimate.estimate(spec, measure_steps=args.measure_steps, warmup_steps=args.warmup_steps,
                            suite_images=args.suite_images, refresh=bool(args.recalibrate))
    print(estimate.format_estimate(est))
    if out is not None:
        from bench.core.outputs import write_output
        from bench.core.store import dumps_strict
        write_output(out, (dumps_strict(dict(est), indent=2, sort_keys=True) + "\n").encode())
        print(f"[estimate] wrote {args.json}")
    return 0


def add_similarity_parser(sub):
    # the same text as regularizers.response_models.RESPONSE_MODEL_HELP (that module imports torch)
    response_help = ("v1gabor | v1gabor:seed=1,n_simple=64,... | path/to/model.pt (TorchScript) | "
                     "package.module:attr | path/to/targets.npz (images + similarity or responses)")
    p = sub.add_parser("similarity",
                       help="correlate S^pixel with S^neural-pred on a regularization set (figure + JSON)")
    p.add_argument("--reg-dataset", default="fashion_mnist", metavar="NAME",
                   help=f"regularization images: {joined(DATASETS, FILE_DATASETS)} (default: %(default)s)")
    p.add_argument("--n-images", type=int, default=1000, metavar="N", help="first N images (default: %(default)s)")
    p.add_argument("--color", choices=["gray", "rgb"], default="gray", help="image colour (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=32, metavar="PX",
                   help="image side in pixels (default: %(default)s)")
    p.add_argument("--reg-augment", choices=["auto", "crop_flip", "none"], default="auto",
                   help="one-off augmentation: auto = crop+flip for CIFAR, none for the MNIST family")
    p.add_argument("--th", type=float, default=0.8, help="threshold of S^Th (default: %(default)s)")
    p.add_argument("--response-model", default="v1gabor", help=response_help)
    p.add_argument("--seed", type=int, default=0, help="seed of the one-off augmentation")
    p.add_argument("--data-dir", default=None, metavar="DIR", help="where datasets are")
    p.add_argument("--out", default="results/similarity", metavar="DIR", help="output folder (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="also print the summary as JSON")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=lazy("bench.cli.similarity:cmd_similarity"))

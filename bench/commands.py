"""`bench run` and `bench list`."""
from __future__ import annotations




def add_common_run_args(p):
    p.add_argument("--preset", default=None, help="paper | quick | demo | tiny (defaults: the paper's values)")
    p.add_argument("--dataset", default=None)
    p.add_argument("--color", choices=["gray", "rgb"], default=None)
    p.add_argument("--width", type=float, default=None, help="channel multiplier (1.0 = 64 base channels)")
    p.add_argument("--arch", default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--n-train", type=int, default=None, dest="n_train")
    p.add_argument("--n-test", type=int, default=None, dest="n_test")
    p.add_argument("--suite", default=None)
    p.add_argument("--budget-seconds", type=float, default=None, dest="budget_seconds")
    p.add_argument("--data-dir", default=None, dest="data_dir")
    p.add_argument("--out", default=None, help="results directory (default: ./results)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field; reg_params.NAME=VALUE for regularizer hyper-parameters")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import a module that registers regularizers")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the model for training (speed only; not part of the run's hash)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def config_from_args(args, **extra):
    from .config import build_config
    over = {k: getattr(args, k, None) for k in ("dataset", "color", "width", "arch", "epochs", "n_train", "n_test",
                                               "suite", "budget_seconds", "data_dir", "out", "device",
                                               "compile")}
    over.update(extra)
    if getattr(args, "no_progress", False):
        over["progress"] = False
    return build_config(args.preset, over, args.set)


def load_plugins(names):
    import regularizers
    for mod in names or []:
        regularizers.load_plugin(mod)


def cmd_run(args) -> int:
    import regularizers
    from . import store
    from .train import resolve_device, train
    load_plugins(args.plugin)
    regularizers.get_class(args.regularizer)  # fail early with the list of valid names
    cfg = config_from_args(args, regularizer=args.regularizer, seed=args.seed)
    run_dir = train(cfg)
    acc = None
    if not args.no_eval:
        import attacks
        ctx = attacks.context_for_run(run_dir, device=resolve_device(cfg.device), n_examples=None,
                                      seed=cfg.seed, progress=cfg.progress)
        if hasattr(attacks, "prepare_context"):
            attacks.prepare_context(ctx, cfg)
        attacks.evaluate(ctx, suite=cfg.suite, run_dir=run_dir, force=args.force_eval)
    m = store.read_json(run_dir / "metrics.json", {})
    acc = m.get("suite", {}).get("clean", {}).get("result", {}).get("summary", {}).get("accuracy")
    print(f"record: {run_dir}")
    if acc is not None:
        print(f"clean test accuracy: {acc:.4f}")
    return 0


def cmd_list(args) -> int:
    import regularizers
    from . import data, models
    from .config import PRESETS
    load_plugins(args.plugin)
    print("regularizers:")
    for e in regularizers.entries():
        hp = ", ".join(f"{k}={v}" for k, v in e.cls.Params().__dict__.items())
        print(f"  {e.name:<14} [{e.source}] {hp}")
    for name, err in regularizers.plugin_errors().items():
        print(f"  (plugin {name} failed to load: {err})")
    print("models:   " + ", ".join(models.available_models()))
    print("datasets: " + ", ".join(data.available_datasets()) + ", folder:PATH")
    print("presets:  " + ", ".join(sorted(PRESETS)))
    try:
        import attacks
        print("suites:   " + ", ".join(f"{s} ({', '.join(t for t, _ in attacks.SUITES[s])})" for s in attacks.available_suites()))
    except ImportError:
        pass
    return 0


def add_parser(sub):
    p = sub.add_parser("run", help="train one (regularizer, seed) run and evaluate it")
    p.add_argument("--regularizer", "-r", default="none")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-eval", action="store_true", help="train only")
    p.add_argument("--force-eval", action="store_true", help="recompute suite results already in the record")
    add_common_run_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("list", help="list regularizers, models, datasets, presets and suites")
    p.add_argument("--plugin", action="append", default=[])
    p.set_defaults(func=cmd_list)

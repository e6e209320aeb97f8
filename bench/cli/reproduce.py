"""`python -m bench reproduce`: parse, then `bench.app.reproduce.reproduce` runs the study."""
from __future__ import annotations

SCALES = ("cpu", "gpu")  # bench.app.reproduce.SCALES (not imported to build the parser)


def cmd_reproduce(args) -> int:
    if args.seeds is not None:  # checked before anything runs or renders (a reversed range is an error)
        from bench.app.sweep import seed_ranges
        seed_ranges(args.seeds)
    if args.workers is not None and args.workers < 1:
        from bench.cli import UserError
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    from bench.app.reproduce import reproduce
    return reproduce(args.scale, seeds=args.seeds, launcher=args.launcher, workers=args.workers, device=args.device,
                     out=args.out, report=args.report, sets=args.set or [], render_only=args.render_only,
                     train_only=args.train_only)


def add_parser(sub) -> None:
    p = sub.add_parser("reproduce", help="run the reproduction study of the papers' claims and write its report")
    p.add_argument("--scale", choices=SCALES, default="cpu",
                   help="cpu: Fashion-MNIST at width 0.25 (hours on 2 cores); gpu: the larger study (default: cpu)")
    p.add_argument("--seeds", default=None, help="default: 0-4")
    p.add_argument("--launcher", default="local", choices=["local", "ray", "slurm"],
                   help="how jobs run: local processes, a Ray cluster or SLURM via submitit (default: local)")
    p.add_argument("--workers", type=int, default=None, help="parallel jobs (default: the launcher's)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--out", default=None, help="records directory (default: docs/reproduction_records for cpu, "
                   "results/reproduce-SCALE otherwise)")
    p.add_argument("--report", default=None, help="report path (default: docs/reproduction.md for cpu)")
    p.add_argument("--set", action="append", default=[], help="extra config overrides for every job")
    p.add_argument("--render-only", action="store_true", help="only re-render the report from existing records")
    p.add_argument("--train-only", action="store_true", dest="train_only",
                   help="train every record of the study but evaluate nothing and write no report")
    p.set_defaults(func=cmd_reproduce)

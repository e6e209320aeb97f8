"""`python -m bench reproduce [STUDY]`: parse, then `bench.app.reproduce.reproduce` runs the study.

STUDY is a study file (TOML, `bench.app.studyfile`) or a built-in study's name; `--scale cpu|gpu` names the
built-in ones as before. A file with mistakes is refused before anything runs, one `error:` line per mistake.
"""
from __future__ import annotations

import sys

SCALES = ("cpu", "gpu")  # the --scale names: Fashion-MNIST studies among the built-in files (bench/app/studies/)


def cmd_reproduce(args) -> int:
    from bench.cli import UserError, one_line
    if args.seeds is not None:  # checked before anything runs or renders (a reversed range is an error)
        from bench.app.sweep import seed_ranges
        seed_ranges(args.seeds)
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    if args.study and args.scale:
        raise UserError(f"give a study file or --scale, not both (got {args.study} and --scale {args.scale})")
    from bench.app import studyfile
    from bench.app.reproduce import reproduce
    try:
        study = studyfile.load(args.study or args.scale or "cpu")
    except studyfile.StudyError as e:
        for line in e.problems:
            print("error: " + one_line(line), file=sys.stderr)
        return 2
    return reproduce(study, seeds=args.seeds, launcher=args.launcher, workers=args.workers, device=args.device,
                     out=args.out, report=args.report, sets=args.set or [], render_only=args.render_only,
                     train_only=args.train_only)


def _builtin() -> list[str]:
    from bench.app.studyfile import builtin_names  # the files in bench/app/studies/ (a glob, nothing heavy)
    return builtin_names()


def add_parser(sub) -> None:
    p = sub.add_parser("reproduce", help="run a study of the papers' claims (a study file) and write its report")
    p.add_argument("study", nargs="?", default=None, metavar="STUDY",
                   help="a study file (.toml; README 'Study files') or a built-in study: "
                        + ", ".join(_builtin()) + " (default: cpu)")
    p.add_argument("--scale", choices=SCALES, default=None,
                   help="the built-in study: cpu (Fashion-MNIST at width 0.25, hours on 2 cores) or gpu (the larger "
                        "study); the same as STUDY cpu|gpu")
    p.add_argument("--seeds", default=None, help="replace every arm's seeds (default: the study file's)")
    p.add_argument("--launcher", default="local", choices=["local", "ray", "slurm"],
                   help="how jobs run: local processes, a Ray cluster or SLURM via submitit (default: local)")
    p.add_argument("--workers", type=int, default=None, help="parallel jobs (default: the launcher's)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--out", default=None, help="records directory (default: the study file's `records`, e.g. "
                   "docs/reproduction_records for cpu)")
    p.add_argument("--report", default=None, help="report path (default: the study file's `report`, e.g. "
                   "docs/reproduction.md for cpu)")
    p.add_argument("--set", action="append", default=[], help="extra config overrides for every job")
    p.add_argument("--render-only", action="store_true", help="only re-render the report from existing records")
    p.add_argument("--train-only", action="store_true", dest="train_only",
                   help="train every record of the study but evaluate nothing and write no report")
    p.set_defaults(func=cmd_reproduce)

"""A study is a file: the TOML that declares a `bench reproduce` study, read and checked here.

Why a file: a study (its tasks, arms and seed blocks, budgets, suite and strengths, claims, the similarity
analysis, the differences from the papers' protocols) is data. Written as Python inside the package, each new
study grew the code and a researcher had to edit the package to declare their own. The built-in studies are
files in `bench/app/studies/` (`cpu.toml`, `gpu.toml`); `bench reproduce FILE` takes any other.

The schema (README "Study files" has an example; `bench/app/studies/cpu.toml` the full one):
  name, title, preset, seeds ("0-4"), records (folder), report (Markdown path)
  [suites] NAME = [[test, {params}], ...]       a suite of the study's own (e.g. extended strengths)
  [[tasks]] name, dataset, color, preset, suite, sets = ["key=value", ...] (`--set` items),
            arms = [{regularizers = [...], seeds = "0-9"}, ...]  (seed blocks per arm)
  [[similarity]] dataset, n_images, label      the S^pixel vs S^neural-pred analysis
  differences, protocol_notes = [prose, ...]; rule_note = prose with `{sesoi}` where the list goes
  renderer = "reproduction" (default) | "cifar_cpu"   a built-in report renderer; "cifar_cpu" also reads
            pilot_records (folder), similarity_file (JSON), compute and protocol (prose)
  [sesoi] METRIC = {abs = x} | {rel = x}        smallest effect of interest of direction-only claims
  [metric_sets] NAME = [metric, ...]            named lists: a comparison's metric "@NAME"
  [[groups]] name, title, tasks (default: all)  claims judged on these tasks' records, apart from other groups
  [[groups.claims]] id, title, text, quantifier (all | any | family), needs (a claim id),
            comparisons = [{reg, base = "none", metric, kind, effect = {rel = 0.44}, margin, higher_is_better}]
Relative paths (records, report, `npz:PATH` and `folder:PATH` datasets) are relative to the working directory
`bench reproduce` runs in, as every path on the command line is; the built-in files live inside the package,
so a path relative to the file would point into it. Records never hold these paths (data is named by its hash).

Validation lists every mistake, one line each, naming the file and the key path (`StudyError.problems`), so a
researcher fixes a file in one pass instead of one error per run.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as a package
    import tomli as tomllib

from bench.app import studycheck

BUILTIN_DIR = Path(__file__).resolve().parent / "studies"


class StudyError(ValueError):
    """A study file that cannot be used: `problems` holds one line per mistake."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclasses.dataclass
class Task:
    name: str
    dataset: str
    preset: str
    arms: list  # [{"regularizers": [...], "seeds": "0-4"}]
    sets: list = dataclasses.field(default_factory=list)
    color: str | None = None
    suite: str | None = None


@dataclasses.dataclass
class Study:
    """A study as `bench.app.reproduce` runs and renders it."""
    name: str
    title: str
    path: Path
    preset: str
    seeds: str
    records: str
    report: str
    tasks: list
    groups: list  # [{"name", "title", "tasks": [...], "claims": [claims.evaluate_claims' claim dicts]}]
    suites: dict = dataclasses.field(default_factory=dict)
    similarity: list = dataclasses.field(default_factory=list)  # [(label, dataset, n_images or None)]
    differences: list = dataclasses.field(default_factory=list)
    protocol_notes: list = dataclasses.field(default_factory=list)
    rule_note: str = ""
    sesoi: dict = dataclasses.field(default_factory=dict)  # metric -> ("abs" | "rel", x)
    renderer: str = "reproduction"  # which built-in report renderer (studycheck.RENDERERS)
    extra: dict = dataclasses.field(default_factory=dict)  # a renderer's own keys: pilot_records, compute, ...

    def arms(self) -> list[str]:
        """Every regularizer the study runs, in the order of first mention."""
        return list(dict.fromkeys(r for t in self.tasks for a in t.arms for r in a["regularizers"]))

    def suite_of(self, task: Task) -> str:
        from bench.core.config import PRESETS
        return task.suite or PRESETS[task.preset].get("suite", "quick")

    @property
    def main_suite(self) -> str:
        """The suite of the first task: the one the report's protocol section describes."""
        return self.suite_of(self.tasks[0])

    def sweeps(self) -> list[dict]:
        """One sweep per (task, arm entry): the arms of a task share its budget and protocol."""
        out = []
        for t in self.tasks:
            over = {k: v for k, v in (("color", t.color), ("suite", t.suite)) if v is not None}
            for i, a in enumerate(t.arms):
                out.append({"name": t.name + (f"#{i + 1}" if len(t.arms) > 1 else ""), "task": t.name,
                            "datasets": t.dataset, "preset": t.preset, "regularizers": list(a["regularizers"]),
                            "seeds": a["seeds"], "sets": list(t.sets), "overrides": over})
        return out

    def planned_records(self) -> int:
        """Records the study's sweeps plan (arms x seeds; surrogates not counted)."""
        from bench.app.sweep import parse_seeds
        return sum(len(s["regularizers"]) * len(parse_seeds(s["seeds"])) for s in self.sweeps())

    def register_suites(self) -> None:
        """Put the study's own suites in `attacks.SUITES` (the jobs carry them to worker processes too)."""
        import attacks
        for name, tests in self.suites.items():
            attacks.register_suite(name, tests)


def builtin_names() -> list[str]:
    """The built-in studies (files shipped in `bench/app/studies/`), without importing anything heavy."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def resolve(study: str | Path) -> Path:
    """A study file's path: an existing file, else a built-in study's name."""
    p = Path(study).expanduser()
    if p.is_file():
        return p
    if str(study) in builtin_names():
        return BUILTIN_DIR / f"{study}.toml"
    raise StudyError([f"{study}: no such study file, and not a built-in study ({', '.join(builtin_names())})"])


def load(study: str | Path) -> Study:
    """Read and check a study file (or a built-in name); every mistake is one line of the StudyError."""
    path = resolve(study)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise StudyError([f"{path}: cannot read it ({e})"]) from None
    except tomllib.TOMLDecodeError as e:
        raise StudyError([f"{path}: not valid TOML: {e}"]) from None
    problems = studycheck.check(data, str(path))
    if problems:
        raise StudyError(problems)
    return _build(data, path)


def _build(d: dict, path: Path) -> Study:
    """The checked TOML as a Study (defaults filled in, metric sets and claim comparisons expanded)."""
    name = d.get("name", path.stem)
    preset, seeds = d.get("preset", "quick"), str(d.get("seeds", "0-4"))
    tasks = [Task(name=t["name"], dataset=t.get("dataset", ""), preset=t.get("preset", preset),
                  arms=[{"regularizers": list(a["regularizers"]), "seeds": str(a.get("seeds", seeds))}
                        for a in t["arms"]], sets=list(t.get("sets", [])), color=t.get("color"), suite=t.get("suite"))
             for t in d["tasks"]]
    for t in tasks:
        if not t.dataset:
            from bench.core.config import PRESETS
            t.dataset = PRESETS[t.preset].get("dataset", "fashion_mnist")
    sesoi = {m: next(iter(v.items())) for m, v in d.get("sesoi", {}).items()}
    groups = [{"name": g["name"], "title": g.get("title", g["name"]),
               "tasks": list(g.get("tasks", [t.name for t in tasks])),
               "claims": [_claim(c, d.get("metric_sets", {}), sesoi) for c in g.get("claims", [])]}
              for g in d.get("groups", [])]
    records = d.get("records", f"results/reproduce-{name}")
    return Study(name=name, title=d.get("title", f"Study {name}"), path=path, preset=preset, seeds=seeds,
                 records=records, report=d.get("report", f"results/reproduce-{name}.md"), tasks=tasks, groups=groups,
                 suites={k: [(str(t), dict(p)) for t, p in v] for k, v in d.get("suites", {}).items()},
                 similarity=[(s.get("label", s["dataset"]), s["dataset"], s.get("n_images"))
                             for s in d.get("similarity", [])],
                 differences=list(d.get("differences", [])), protocol_notes=list(d.get("protocol_notes", [])),
                 rule_note=d.get("rule_note", ""), sesoi=sesoi, renderer=d.get("renderer", "reproduction"),
                 extra={k: d[k] for k in ("pilot_records", "similarity_file", "compute", "protocol") if k in d})


def _claim(c: dict, metric_sets: dict, sesoi: dict) -> dict:
    """A claim as `bench.app.claims.evaluate_claims` takes it: its comparisons as `claims.Spec`s."""
    from bench.app.claims import Spec
    specs = []
    for comp in c["comparisons"]:
        for reg in studycheck.as_list(comp["reg"]):
            for metric in studycheck.expand_metrics(comp["metric"], metric_sets):
                effect = next(iter(comp["effect"].items())) if "effect" in comp else None
                specs.append(Spec(reg, metric, base=comp.get("base", "none"),
                                  higher_is_better=comp.get("higher_is_better", True), effect=effect,
                                  kind=comp.get("kind", "superiority"), margin=comp.get("margin"),
                                  sesoi=sesoi.get(metric)))
    out = {"id": c["id"], "title": c["title"], "text": c["text"], "quantifier": c["quantifier"], "specs": specs}
    if "needs" in c:
        out["needs"] = c["needs"]
    return out

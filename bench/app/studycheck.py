"""The checks of a study file (`bench.app.studyfile`): every mistake found, one line each, with the key path.

Why all at once: a study runs for hours, and a file that fails on its first mistake, then on the next, costs a
researcher a round trip per typo. Each line is `FILE: KEY.PATH: what is wrong` (list indices count from 0),
and nothing is trained before the file is clean. What is checked against the code, not against a copy of it:
regularizer names (`bench.core.names` and the registry, so plugins count), suite tests and their parameters
(`attacks.TESTS`), presets and `--set` items (`bench.core.config.build_config`), quantifiers
(`leaderboard.stats.QUANTIFIERS`), and every claim's arms and metrics against what the group's tasks run.
"""
from __future__ import annotations

import dataclasses

TOP = {"name": str, "title": str, "preset": str, "seeds": str, "records": str, "report": str, "suites": dict,
       "tasks": list, "similarity": list, "differences": list, "protocol_notes": list, "rule_note": str,
       "sesoi": dict, "metric_sets": dict, "groups": list, "renderer": str, "pilot_records": str,
       "similarity_file": str, "compute": str, "protocol": str}
# the report renderers a study file may name (built in: a file names one, it never carries code)
RENDERERS = ("reproduction", "cifar_cpu")
TASK = {"name": str, "dataset": str, "color": str, "preset": str, "suite": str, "sets": list, "arms": list}
ARM = {"regularizers": list, "seeds": str}
SIMILARITY = {"dataset": str, "n_images": int, "label": str}
GROUP = {"name": str, "title": str, "tasks": list, "claims": list}
CLAIM = {"id": str, "title": str, "text": str, "quantifier": str, "needs": str, "comparisons": list}
COMPARISON = {"reg": (str, list), "base": str, "metric": (str, list), "kind": str, "effect": dict,
              "margin": (int, float), "higher_is_better": bool}
KINDS = ("superiority", "noninferiority")
CURVE_KEYS = ("mean_accuracy", "accuracy_max_level", "mean_accuracy_perturbed", "relative_robustness",
              "strength_50", "accuracy_auc", "relative_accuracy_max_level")
CURVE_TESTS = ("gaussian_noise", "uniform_noise", "salt_pepper_noise", "transfer_fgsm")  # name prefixes
# summary keys of the tests and derived metrics claims use most; a test not listed here takes any key
KEYS = {"clean": ("accuracy",), "minimal_l2": ("median_l2",),
        "min_perturbation": ("median_l2", "median_sq_l2", "success_rate", "steps_used_mean", "steps_used_median"),
        "boundary": ("median_sq_l2", "median_sq_l2_sem", "success_rate", "convergence_auc"),
        "boundary_converged": ("median_sq_l2", "median_l2", "success_rate", "converged_fraction"),
        "corruptions": ("mean_accuracy", "mean_error", "error_increase", "relative_robustness", "mce_vs_none",
                        "relative_mce_vs_none", "accuracy_vs_severity_auc")
                       + tuple(f"severity_{i}" for i in range(1, 6)),
        "train": ("wall_s", "device_s", "steps", "images", "task_images", "reg_images"),
        "eval": ("seconds", "forward_images")}
KEYS["min_perturbation_fmn"] = KEYS["min_perturbation"]
DERIVED = ("minimal_l2", "train", "eval")  # metrics that are no suite test's (leaderboard.derived, the record)


def as_list(v) -> list:
    return list(v) if isinstance(v, list) else [v]


def expand_metrics(metric, metric_sets: dict) -> list[str]:
    """A comparison's metric(s), with `@NAME` replaced by the study's `[metric_sets]` list NAME."""
    out = []
    for m in as_list(metric):
        out += list(metric_sets.get(m[1:], [])) if isinstance(m, str) and m.startswith("@") else [m]
    return out


class Checker:
    """Collects the problems of one file; `kp` is the key path of the value being checked."""

    def __init__(self, path: str):
        self.path, self.problems = path, []

    def err(self, kp: str, msg: str) -> None:
        self.problems.append(f"{self.path}: {kp}: {msg}" if kp else f"{self.path}: {msg}")

    def table(self, d, schema: dict, kp: str, required=()) -> dict:
        """The keys of a table checked against its schema (unknown keys, types, required keys); returns the
        well-typed entries only, so later checks never see a wrong type."""
        if not isinstance(d, dict):
            self.err(kp, f"must be a table, got {_tname(d)}")
            return {}
        out = {}
        for k, v in d.items():
            want = schema.get(k)
            if want is None:
                self.err(_join(kp, k), f"unknown key; valid keys: {', '.join(schema)}")
            elif isinstance(v, bool) and bool not in (want if isinstance(want, tuple) else (want,)) \
                    or not isinstance(v, want):
                names = " or ".join(_tname(t) for t in (want if isinstance(want, tuple) else (want,)))
                self.err(_join(kp, k), f"must be {names}, got {_tname(v)} {v!r}")
            else:
                out[k] = v
        for k in required:
            if k not in d:
                self.err(_join(kp, k), "missing (required)")
        return out

    def strings(self, v, kp: str) -> list[str]:
        ok = []
        for i, x in enumerate(as_list(v)):
            if isinstance(x, str):
                ok.append(x)
            else:
                self.err(f"{kp}[{i}]" if isinstance(v, list) else kp, f"must be a string, got {_tname(x)} {x!r}")
        return ok


def _tname(t) -> str:
    t = t if isinstance(t, type) else type(t)
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "an array",
            dict: "a table"}.get(t, t.__name__)


def _join(kp: str, k) -> str:
    return f"{kp}.{k}" if kp else str(k)


def check(d: dict, path: str) -> list[str]:
    """Every problem of a parsed study file, one line each (empty: the file is good)."""
    c = Checker(path)
    top = c.table(d, TOP, "", required=("tasks",))
    preset = top.get("preset", "quick")
    _check_preset(c, preset, "preset")
    if "seeds" in top:
        _check_seeds(c, top["seeds"], "seeds")
    suites = _check_suites(c, top.get("suites", {}))
    tasks = _check_tasks(c, top.get("tasks", []), preset, suites)
    for i, s in enumerate(top.get("similarity", [])):
        s = c.table(s, SIMILARITY, f"similarity[{i}]", required=("dataset",))
        if "n_images" in s and s["n_images"] < 2:
            c.err(f"similarity[{i}].n_images", f"must be at least 2, got {s['n_images']}")
    for k in ("differences", "protocol_notes"):
        c.strings(top.get(k, []), k)
    if top.get("renderer", "reproduction") not in RENDERERS:
        c.err("renderer", f"unknown renderer {top['renderer']!r}; valid: {', '.join(RENDERERS)}")
    metric_sets = {k: c.strings(v, f"metric_sets.{k}") for k, v in top.get("metric_sets", {}).items()}
    all_tests = {t for tk in tasks.values() for t in tk["tests"]}
    for k, ms in metric_sets.items():
        for j, m in enumerate(ms):
            _check_metric(c, m, all_tests, f"metric_sets.{k}[{j}]")
    for m, v in top.get("sesoi", {}).items():
        _check_metric(c, m, set(), f"sesoi.{m}")  # a default for any claim: not tied to these suites
        check_effect(c, v, f"sesoi.{m}")
    check_groups(c, top.get("groups", []), tasks, metric_sets)
    return c.problems


def _check_preset(c: Checker, preset: str, kp: str) -> bool:
    from bench.core.config import PRESETS
    if preset not in PRESETS:
        c.err(kp, f"unknown preset {preset!r}; valid presets: {', '.join(sorted(PRESETS))}")
        return False
    return True


def _check_seeds(c: Checker, seeds: str, kp: str) -> None:
    from bench.app.sweep import seed_ranges
    try:
        seed_ranges(seeds)
    except ValueError as e:
        c.err(kp, str(e).replace("--seeds", "seeds"))


def _check_suites(c: Checker, suites: dict) -> dict[str, list[str]]:
    """The study's own suites: [[test, {params}], ...] with registered tests and their real parameters.
    Returns {suite: [test names]} of the good ones."""
    import attacks
    from attacks.suite import BUILTIN_SUITES
    out = {}
    for name, tests in suites.items():
        kp = f"suites.{name}"
        if name in BUILTIN_SUITES:
            c.err(kp, f"{name!r} is a built-in suite (its records would mix protocols): give the study's suite "
                      "its own name")
        if not isinstance(tests, list) or not tests:
            c.err(kp, "must be a non-empty array of [test, {params}] pairs")
            continue
        names = []
        for j, item in enumerate(tests):
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                    and isinstance(item[1], dict)):
                c.err(f"{kp}[{j}]", f"must be a [test, {{params}}] pair, e.g. [\"clean\", {{}}], got {item!r}")
                continue
            test, params = item
            if test not in attacks.TESTS:
                c.err(f"{kp}[{j}]", f"unknown test {test!r}; registered: {', '.join(attacks.TESTS.names())}")
                continue
            valid = [f.name for f in dataclasses.fields(attacks.TESTS[test].Params)]
            for p in params:
                if p not in valid:
                    c.err(f"{kp}[{j}].{p}", f"test {test} has no parameter {p!r}; its parameters: "
                                            f"{', '.join(valid) or 'none'}")
            names.append(test)
        out[name] = names
    return out


def _check_tasks(c: Checker, tasks: list, preset: str, suites: dict) -> dict[str, dict]:
    """{task name: {"arms": set of regularizers, "tests": set of test names}} of the checkable tasks."""
    out = {}
    if not tasks:
        c.err("tasks", "at least one task is needed")
    for i, t in enumerate(tasks):
        kp = f"tasks[{i}]"
        t = c.table(t, TASK, kp, required=("name", "arms"))
        name = t.get("name", f"#{i}")
        if name in out:
            c.err(f"{kp}.name", f"task {name!r} is declared twice")
        tp = t.get("preset", preset)
        good_preset = _check_preset(c, tp, f"{kp}.preset") if "preset" in t else tp == preset
        if "dataset" in t:
            _check_dataset(c, t["dataset"], f"{kp}.dataset")
        if t.get("color", "gray") not in ("gray", "rgb"):
            c.err(f"{kp}.color", f"must be gray or rgb, got {t['color']!r}")
        sets = c.strings(t.get("sets", []), f"{kp}.sets")
        if good_preset:
            _check_sets(c, tp, sets, f"{kp}.sets")
        out[name] = {"arms": _check_arms(c, t.get("arms", []), f"{kp}.arms"),
                     "tests": _suite_tests(c, t.get("suite"), tp if good_preset else None, suites, f"{kp}.suite")}
    return out


def _check_arms(c: Checker, arms: list, kp: str) -> set[str]:
    from bench.core import names
    regs = set()
    if not arms:
        c.err(kp, "at least one arm entry ({regularizers = [...], seeds = \"0-4\"}) is needed")
    for j, a in enumerate(arms):
        a = c.table(a, ARM, f"{kp}[{j}]", required=("regularizers",))
        if "seeds" in a:
            _check_seeds(c, a["seeds"], f"{kp}[{j}].seeds")
        for k, r in enumerate(c.strings(a.get("regularizers", []), f"{kp}[{j}].regularizers")):
            if r in names.REGULARIZERS or _registered(r):
                regs.add(r)
            else:
                c.err(f"{kp}[{j}].regularizers[{k}]", f"unknown regularizer {r!r}; available: "
                                                       f"{', '.join(_available())}")
    return regs


def _registered(reg: str) -> bool:
    return reg in _available()


def _available() -> list[str]:
    import regularizers
    return list(regularizers.available())


def _check_dataset(c: Checker, ds: str, kp: str) -> None:
    """A dataset's name only (`npz:`/`folder:` paths are looked up when the study plans, not to render)."""
    from bench.core import names
    if ds.split(":", 1)[0] in ("npz", "folder") and ds.split(":", 1)[1:] != [""]:
        return
    from bench.core import data
    if ds not in data.available_datasets():
        c.err(kp, f"unknown dataset {ds!r}; valid datasets: {', '.join(data.available_datasets())}, "
                  f"{names.FILE_DATASETS}")


def _check_sets(c: Checker, preset: str, sets: list[str], kp: str) -> None:
    from bench.core.config import build_config
    for j, item in enumerate(sets):
        try:
            build_config(preset, sets=[item])
        except ValueError as e:
            c.err(f"{kp}[{j}]", str(e))


def _suite_tests(c: Checker, suite, preset, suites: dict, kp: str) -> set[str]:
    """The test names a task's suite runs (empty where the suite is unknown: reported once here)."""
    import attacks
    from bench.core.config import PRESETS
    name = suite or (PRESETS[preset].get("suite", "quick") if preset else None)
    if name is None:
        return set()
    if name in suites:
        return set(suites[name])
    if name in attacks.SUITES:
        return {t for t, _ in attacks.SUITES[name]}
    c.err(kp, f"unknown suite {name!r}; built-in suites: {', '.join(attacks.SUITES.names())}; the study's: "
              f"{', '.join(suites) or 'none'}")
    return set()


def _check_metric(c: Checker, metric: str, tests: set[str], kp: str) -> None:
    problem = metric_problem(metric, tests)
    if problem:
        c.err(kp, problem)


def metric_problem(metric: str, tests: set[str]) -> str | None:
    """What is wrong with `TEST.KEY` (None: nothing): a test the tasks' suites run (or a derived metric) and,
    where the test's summaries are known here, one of them."""
    import attacks
    from leaderboard.derived import DISTANCE_TESTS
    test, _, key = metric.partition(".")
    if not key:
        return f"metric {metric!r} must be TEST.SUMMARY, e.g. clean.accuracy"
    if test == "minimal_l2" and tests and not tests & set(DISTANCE_TESTS):
        return f"metric {metric!r} needs one of {', '.join(DISTANCE_TESTS)} in the suite"
    if test not in DERIVED:
        if test not in attacks.TESTS:
            return f"metric {metric!r}: unknown test {test!r}; registered: {', '.join(attacks.TESTS.names())}"
        if tests and test not in tests:
            return f"metric {metric!r}: test {test!r} is not in the suite of these tasks ({', '.join(sorted(tests))})"
    known = CURVE_KEYS if test.startswith(CURVE_TESTS) else KEYS.get(test)
    if known and key not in known and not key.startswith("cost."):
        return f"metric {metric!r}: {test} has no summary {key!r}; its summaries: {', '.join(known)}"
    return None


def check_effect(c: Checker, v, kp: str) -> None:
    """An effect size: a table with one key, `abs` (in the metric's unit) or `rel` (a fraction of the base)."""
    if not isinstance(v, dict) or len(v) != 1 or next(iter(v)) not in ("abs", "rel") \
            or isinstance(next(iter(v.values())), bool) or not isinstance(next(iter(v.values())), (int, float)):
        c.err(kp, f"must be {{abs = X}} or {{rel = X}} with a number X, got {v!r}")


def check_groups(c: Checker, groups: list, tasks: dict, metric_sets: dict) -> None:
    """Each group's tasks exist; its claims' ids are unique, `needs` names an earlier claim of the group,
    quantifiers are known, and every comparison names arms and metrics the group's tasks run."""
    names = set()
    for i, g in enumerate(groups):
        kp = f"groups[{i}]"
        g = c.table(g, GROUP, kp, required=("name",))
        if g.get("name") in names:
            c.err(f"{kp}.name", f"group {g['name']!r} is declared twice")
        names.add(g.get("name"))
        mine = c.strings(g.get("tasks", list(tasks)), f"{kp}.tasks")
        for j, t in enumerate(mine):
            if t not in tasks:
                c.err(f"{kp}.tasks[{j}]", f"no task {t!r}; the study's tasks: {', '.join(tasks)}")
        arms = {r for t in mine if t in tasks for r in tasks[t]["arms"]}
        tests = {x for t in mine if t in tasks for x in tasks[t]["tests"]}
        ids: list[str] = []
        for j, cl in enumerate(g.get("claims", [])):
            _check_claim(c, cl, f"{kp}.claims[{j}]", ids, arms, tests, metric_sets)


def _check_claim(c: Checker, cl, kp: str, ids: list, arms: set, tests: set, metric_sets: dict) -> None:
    from leaderboard.stats import QUANTIFIER_TEXT as QUANTIFIERS  # all, any, family: what judge_claim takes
    cl = c.table(cl, CLAIM, kp, required=("id", "title", "text", "quantifier", "comparisons"))
    if cl.get("id") in ids:
        c.err(f"{kp}.id", f"claim {cl['id']!r} is declared twice in this group")
    if "needs" in cl and cl["needs"] not in ids:
        c.err(f"{kp}.needs", f"no earlier claim {cl['needs']!r} in this group (earlier: {', '.join(ids) or 'none'})")
    ids.append(cl.get("id"))
    if "quantifier" in cl and cl["quantifier"] not in QUANTIFIERS:
        c.err(f"{kp}.quantifier", f"unknown quantifier {cl['quantifier']!r}; valid: {', '.join(QUANTIFIERS)}")
    if "comparisons" in cl and not cl["comparisons"]:
        c.err(f"{kp}.comparisons", "at least one comparison is needed")
    for j, comp in enumerate(cl.get("comparisons", [])):
        _check_comparison(c, comp, f"{kp}.comparisons[{j}]", arms, tests, metric_sets)


def _check_comparison(c: Checker, comp, kp: str, arms: set, tests: set, metric_sets: dict) -> None:
    comp = c.table(comp, COMPARISON, kp, required=("reg", "metric"))
    for key in ("reg", "base"):
        for r in c.strings(comp.get(key, "none"), f"{kp}.{key}"):
            if r not in arms:
                c.err(f"{kp}.{key}", f"{r!r} is not an arm of these tasks ({', '.join(sorted(arms))})")
    for m in c.strings(comp.get("metric", []), f"{kp}.metric"):
        if not m.startswith("@"):
            _check_metric(c, m, tests, f"{kp}.metric")
        elif m[1:] not in metric_sets:
            c.err(f"{kp}.metric", f"no metric set {m[1:]!r} in [metric_sets] ({', '.join(metric_sets) or 'none'})")
        else:
            for x in metric_sets[m[1:]]:
                problem = metric_problem(x, tests)
                if problem:
                    c.err(f"{kp}.metric", f"{m}: {problem}")
    if comp.get("kind", "superiority") not in KINDS:
        c.err(f"{kp}.kind", f"unknown kind {comp['kind']!r}; valid: {', '.join(KINDS)}")
    if "effect" in comp:
        check_effect(c, comp["effect"], f"{kp}.effect")
    if "margin" in comp and (comp["margin"] < 0 or comp.get("kind") != "noninferiority"):
        c.err(f"{kp}.margin", "a margin is a non-negative number of a noninferiority comparison (kind = "
                              "\"noninferiority\")")

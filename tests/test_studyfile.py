"""Studies are files (issue 32, item 1): the built-in studies' files render the committed report unchanged, a
file with mistakes is refused with one line per mistake (file and key path in each), a study of issue 29's
shape (array data, per-arm seed blocks, its own suite with extended ranges, colour claims in their own group)
can be declared, and the README's example study runs end to end with `bench reproduce FILE`."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.app import studyfile

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# --------------------------------------------------------------------------- the committed report
def test_cpu_report_renders_from_its_file_equal_from_protocol_on(tmp_path):
    """The cpu study rendered from `studies/cpu.toml` on a copy of its committed records, with the last saved
    invocation, is docs/reproduction.md from "## Protocol" on (the header names the command and history)."""
    from bench.app.reproduce import render_report
    out = tmp_path / "records"
    shutil.copytree(DOCS / "reproduction_records", out)
    fig = tmp_path / "reproduction_figures"
    fig.mkdir()
    sims = []
    for label in ("fashion_mnist", "skimage_crops"):  # the cached analyses, their figures beside the copy
        s = json.loads((DOCS / "reproduction_figures" / f"similarity-{label}.json").read_text())
        s["figures"] = [str(fig / Path(f).name) for f in s["figures"]]
        sims.append(s)
    meta = json.loads((DOCS / "reproduction.json").read_text())["meta"]
    report = render_report(studyfile.load("cpu"), out, tmp_path / "reproduction.md", sims, meta, log=lambda *a: None)

    def tail(text: str) -> str:
        return text[text.index("## Protocol"):]
    assert tail(report.read_text()) == tail((DOCS / "reproduction.md").read_text())
    committed = json.loads((DOCS / "reproduction.json").read_text())
    rendered = json.loads(report.with_suffix(".json").read_text())
    assert rendered["claims"] == committed["claims"] and rendered["budgets"] == committed["budgets"]


def test_builtin_studies_are_the_cli_scales_and_load():
    from bench.cli.reproduce import SCALES
    assert set(SCALES) <= set(studyfile.builtin_names()) == {"cpu", "gpu", "cifar10_cpu"}
    for name in studyfile.builtin_names():  # every shipped file passes its own validation
        studyfile.load(name)
    cpu = studyfile.load("cpu")
    assert cpu.planned_records() == 5 * 5 + 4 * 3 and cpu.records == "docs/reproduction_records"
    assert [len(g["claims"]) for g in cpu.groups] == [6]
    li = next(c for c in cpu.groups[0]["claims"] if c["id"] == "li-neural")
    assert [(s.metric, s.effect) for s in li["specs"]][:2] == [("minimal_l2.median_l2", ("rel", 0.44)),
                                                               ("gaussian_noise.accuracy_max_level", ("abs", 0.3))]
    assert studyfile.load("gpu").planned_records() == 4 * 5 * 5


# --------------------------------------------------------------------------- validation
BAD = """
name = "bad"
preset = "tiny"
colour = "gray"
renderer = "fancy"

[suites]
mine = [["clean", {}], ["gaussian_noise", {stds = [0.0, 0.5], sigma = 3}], ["laser", {}]]

[[tasks]]
name = "gray"
dataset = "fashion_mnist"
suite = "mine"
sets = ["epochz=3", "val_fraction=0.1"]
arms = [{regularizers = ["none", "pixel_simm"], seeds = "4-2"}]

[[tasks]]
name = "rgb"
dataset = "cifar1O"
color = "blue"
arms = [{regularizers = ["none", 7]}]

[[groups]]
name = "gray"
tasks = ["gray", "grey"]

[[groups.claims]]
id = "a"
title = "t"
text = "x"
quantifier = "most"
comparisons = [{reg = "pixel_th", metric = "gaussian_noise.relative_robustnes"},
               {reg = "none", base = "fgsm_at", metric = "transfer_fgsm.relative_robustness"},
               {reg = "none", metric = "clean.accuracy", effect = {big = 1}, kind = "better"}]
needs = "b"
"""


def test_every_mistake_is_one_line_with_the_file_and_key_path(tmp_path):
    path = _write(tmp_path, BAD)
    with pytest.raises(studyfile.StudyError) as e:
        studyfile.load(path)
    lines = e.value.problems
    expected = {
        "colour": "unknown key",
        "renderer": "unknown renderer 'fancy'; valid: reproduction, cifar_cpu",
        "suites.mine[1].sigma": "test gaussian_noise has no parameter 'sigma'",
        "suites.mine[2]": "unknown test 'laser'",
        "tasks[0].sets[0]": "unknown config key 'epochz'",
        "tasks[0].arms[0].seeds": "runs backwards",
        "tasks[0].arms[0].regularizers[1]": "unknown regularizer 'pixel_simm'",
        "tasks[1].dataset": "unknown dataset 'cifar1O'",
        "tasks[1].color": "must be gray or rgb",
        "tasks[1].arms[0].regularizers[1]": "must be a string",
        "groups[0].tasks[1]": "no task 'grey'",
        "groups[0].claims[0].quantifier": "unknown quantifier 'most'",
        "groups[0].claims[0].needs": "no earlier claim 'b'",
        "groups[0].claims[0].comparisons[0].reg": "'pixel_th' is not an arm of these tasks",
        "groups[0].claims[0].comparisons[0].metric": "gaussian_noise has no summary 'relative_robustnes'",
        "groups[0].claims[0].comparisons[1].base": "'fgsm_at' is not an arm of these tasks",
        "groups[0].claims[0].comparisons[1].metric": "test 'transfer_fgsm' is not in the suite of these tasks",
        "groups[0].claims[0].comparisons[2].effect": "must be {abs = X} or {rel = X}",
        "groups[0].claims[0].comparisons[2].kind": "unknown kind 'better'",
    }
    for kp, msg in expected.items():
        hits = [ln for ln in lines if ln.startswith(f"{path}: {kp}: ") and msg in ln]
        assert len(hits) == 1, (kp, msg, lines)
    assert len(lines) == len(expected), "\n".join(lines)
    assert all("\n" not in ln for ln in lines)


def test_the_cli_prints_one_error_line_per_mistake_and_runs_nothing(tmp_path, capsys):
    from bench.cli import main
    path = _write(tmp_path, BAD)
    assert main(["reproduce", str(path), "--out", str(tmp_path / "rec")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 19 and all(ln.startswith(f"error: {path}: ") for ln in err)
    assert not (tmp_path / "rec").exists()
    assert main(["reproduce", str(tmp_path / "missing.toml")]) == 2
    assert "no such study file" in capsys.readouterr().err
    _write(tmp_path, "name = [", "broken.toml")
    assert main(["reproduce", str(tmp_path / "broken.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not valid TOML" in err[0]


ISSUE29 = """
name = "cifar10-cpu"
title = "The claims on CIFAR-10 itself (CPU scale)"
preset = "paper"
records = "results/cifar10"
report = "docs/cifar10_reproduction.md"

[suites]
cifar_cpu_study = [["clean", {}], ["gaussian_noise", {}],
                   ["gaussian_noise_extended", {stds = [0.0, 0.05, 0.1, 0.2, 0.3, 0.4]}],
                   ["transfer_fgsm", {n = 500}], ["transfer_fgsm_extended", {n = 500, eps = [0.0, 0.02, 0.05, 0.1]}],
                   ["min_perturbation", {n = 40}], ["min_perturbation_fmn", {n = 40}]]

[metric_sets]
ext = ["gaussian_noise_extended.relative_robustness", "transfer_fgsm_extended.relative_robustness",
       "minimal_l2.median_l2"]

[[tasks]]
name = "gray"
dataset = "npz:../shared/data/cifar10-prefix/cifar10_prefix.npz"
color = "gray"
suite = "cifar_cpu_study"
sets = ["val_fraction=0.1", "step_path=plain", "width=0.25", "epochs=13"]
arms = [{regularizers = ["none", "pixel_sim", "pixel_th"], seeds = "0-9"},
        {regularizers = ["pixel_shuffle", "neural_pred", "noise_aug", "fgsm_at"], seeds = "0-4"}]

[[tasks]]
name = "rgb"
dataset = "npz:../shared/data/cifar10-prefix/cifar10_prefix.npz"
color = "rgb"
suite = "cifar_cpu_study"
sets = ["val_fraction=0.1", "step_path=plain", "width=0.25", "epochs=13", "augment=crop_flip"]
arms = [{regularizers = ["none", "pixel_sim", "pixel_th"], seeds = "0-4"}]

[[similarity]]
dataset = "npz:../shared/data/cifar10-prefix/cifar10_prefix.npz"
n_images = 1000
label = "cifar10-prefix"

[[groups]]
name = "gray"
tasks = ["gray"]

[[groups.claims]]
id = "attias"
title = "pixel targets beat none"
text = "on the extended ranges"
quantifier = "family"
comparisons = [{reg = ["pixel_sim", "pixel_th"], metric = "@ext"},
               {reg = ["pixel_sim", "pixel_th"], base = "noise_aug", metric = "@ext"},
               {reg = ["pixel_sim", "pixel_th"], base = "fgsm_at", metric = "@ext"}]

[[groups]]
name = "rgb"
title = "Colour CIFAR-10"
tasks = ["rgb"]

[[groups.claims]]
id = "attias-colour"
title = "colour: pixel targets beat none"
text = "Attias et al. Fig. 4"
quantifier = "all"
comparisons = [{reg = ["pixel_sim", "pixel_th"], metric = "@ext"},
               {reg = "pixel_th", metric = "clean.accuracy", kind = "noninferiority", margin = 0.02}]
"""


def test_issue_29s_study_can_be_declared_as_a_file(tmp_path):
    """Array data (path relative to the working directory, not read to check the file), per-arm seed blocks,
    the baselines as arms, a suite of the study's own with extended ranges, colour claims in their own group."""
    st = studyfile.load(_write(tmp_path, ISSUE29))
    assert st.planned_records() == 3 * 10 + 4 * 5 + 3 * 5
    assert [(s["task"], len(s["regularizers"]), s["seeds"]) for s in st.sweeps()] == [
        ("gray", 3, "0-9"), ("gray", 4, "0-4"), ("rgb", 3, "0-4")]
    assert st.sweeps()[2]["overrides"] == {"color": "rgb", "suite": "cifar_cpu_study"}
    gray, rgb = st.groups
    assert len(gray["claims"][0]["specs"]) == 3 * 2 * 3 and rgb["tasks"] == ["rgb"]
    assert {s.base for s in gray["claims"][0]["specs"]} == {"none", "noise_aug", "fgsm_at"}
    assert rgb["claims"][0]["specs"][-1].margin == 0.02
    st.register_suites()
    import attacks
    assert dict(attacks.SUITES["cifar_cpu_study"])["transfer_fgsm_extended"]["eps"] == [0.0, 0.02, 0.05, 0.1]
    # the colour group may not name an arm only the grayscale task runs
    bad = ISSUE29.replace('text = "Attias et al. Fig. 4"', 'text = "x"').replace(
        'metric = "clean.accuracy"', 'base = "noise_aug", metric = "clean.accuracy"')
    with pytest.raises(studyfile.StudyError, match=r"groups\[1\]\.claims\[0\]\.comparisons\[1\]\.base: 'noise_aug' "
                                                   r"is not an arm of these tasks"):
        studyfile.load(_write(tmp_path, bad, "bad.toml"))


def test_a_study_suite_reaches_the_jobs_and_may_not_shadow_a_builtin(tmp_path):
    from bench.app.sweep import SweepSpec, plan_sweep
    st = studyfile.load(_write(tmp_path, ISSUE29.replace("npz:../shared/data/cifar10-prefix/cifar10_prefix.npz",
                                                         "fashion_mnist")))
    sw = st.sweeps()[0]
    spec = SweepSpec(regularizers=sw["regularizers"], seeds="0", preset="tiny", datasets=sw["datasets"],
                     overrides={"out": str(tmp_path / "r"), **sw["overrides"]}, suites=st.suites)
    runs = plan_sweep(spec).runs
    assert runs and all(r.suites == st.suites and r.config["suite"] == "cifar_cpu_study" for r in runs)
    with pytest.raises(studyfile.StudyError, match=r"suites\.quick: 'quick' is a built-in suite"):
        studyfile.load(_write(tmp_path, ISSUE29.replace("cifar_cpu_study", "quick"), "shadow.toml"))


# --------------------------------------------------------------------------- the README's example
def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- study-example -->\n```toml\n(.*?)```", text, re.S)
    assert m, "README.md lost its example study (<!-- study-example --> then a toml block)"
    return m.group(1)


def test_the_readme_example_study_runs_end_to_end(tmp_path):
    """`bench reproduce FILE` on the README's example, as a user runs it: plans, trains, evaluates, renders;
    a second invocation reuses every record."""
    _write(tmp_path, readme_example())
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "bench", "reproduce", "study.toml", "--workers", "1"]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = (tmp_path / "results" / "tiny-study.md").read_text()
    assert report.startswith("# A tiny study: pixel_sim against none")
    assert "### pixel_sim degrades more slowly under noise" in report and "- Suite `tiny_noise`:" in report
    assert "smallest effect of interest: `gaussian_noise.relative_robustness` +0.02." in report
    assert len([d for d in (tmp_path / "results" / "tiny-study").iterdir() if (d / "metrics.json").is_file()]) == 2
    r = subprocess.run(cmd + ["--render-only"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "jobs run" in (tmp_path / "results" / "tiny-study.md").read_text()

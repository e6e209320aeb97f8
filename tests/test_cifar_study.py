"""The CIFAR-10 CPU study (issue 29): its audits computed independently on synthetic records, its committed report
equal to a fresh render from its committed records (every number recomputable), and its plan naming exactly
the configs of its committed records."""
import json
import math
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.app import cifar_audits as A
from bench.app import cifar_study as S

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _record(path: Path, ddn, fmn, ddn_steps, fmn_steps, boundary_sq, ddn_sq):
    path.mkdir(parents=True)
    idx = list(range(len(ddn)))
    suite = {"min_perturbation": {"result": {"summary": {"median_sq_l2": ddn_sq}, "details": {
                 "per_image_l2": ddn, "image_indices": idx, "steps_used": ddn_steps, "steps": 250}}},
             "min_perturbation_fmn": {"result": {"summary": {}, "details": {
                 "per_image_l2": fmn, "image_indices": idx, "steps_used": fmn_steps, "steps": 250}}},
             "boundary": {"result": {"summary": {"median_sq_l2": boundary_sq}}}}
    (path / "metrics.json").write_text(json.dumps({"suite": suite}))
    return path


def test_record_audit_counts_caps_failures_and_ratios(tmp_path):
    ddn = [0.5, 1.0, None, 2.0]
    fmn = [0.6, 1.1, 0.9, 2.4]
    r = A.record_audit(_record(tmp_path / "r", ddn, fmn, [10, 250, 250, 40], [250, 12, 13, 14], 0.03, 0.01))
    assert r["ddn_failed"] == 1 and r["fmn_failed"] == 0
    assert r["ddn_at_cap"] == 2 and r["fmn_at_cap"] == 1 and r["ddn_images"] == 4
    assert r["ddn_median_l2"] == pytest.approx(1.0) and r["fmn_median_l2"] == pytest.approx(1.0)
    # per image, where both broke it: 0.6/0.5, 1.1/1.0, 2.4/2.0 -> median 1.2
    assert r["fmn_over_ddn_median"] == pytest.approx(1.2)
    assert r["boundary50_over_ddn"] == pytest.approx(3.0)


def test_arm_audits_sum_counts_and_average_ratios(tmp_path):
    a = _record(tmp_path / "a", [1.0, 1.0], [1.0, 2.0], [250, 1], [1, 1], 0.02, 0.01)
    b = _record(tmp_path / "b", [1.0, 1.0], [1.0, 1.0], [250, 250], [1, 1], 0.04, 0.01)
    tidy = pd.DataFrame({"regularizer": ["none", "none"], "run_dir": [str(a), str(b)]})
    out = A.arm_audits(tidy)["none"]
    assert out["n"] == 2 and out["ddn_at_cap"] == 3 and out["ddn_images"] == 4
    assert out["boundary50_over_ddn"] == pytest.approx(3.0)  # mean of 2 and 4
    assert out["fmn_over_ddn_median"] == pytest.approx((1.5 + 1.0) / 2)


def test_decision_numbers_ratio_to_the_whitebox_minimum_per_image():
    idx = [3, 5, 7, 9, 11]
    wb = {"min_perturbation": {"result": {"details": {"per_image_l2": [1.0, 2.0, 1.0, None, 4.0],
                                                        "image_indices": idx}}},
          "min_perturbation_fmn": {"result": {"details": {"per_image_l2": [0.5, 2.5, 1.0, 3.0, 4.0],
                                                            "image_indices": idx}}}}
    # HopSkipJump on images 3, 5, 7, 9 (not 11, and one more image the white-box attacks did not see); 7 failed
    dec = {"result": {"details": {"per_image_l2": [0.9, 1.8, None, 9.0, 1.0], "image_indices": [3, 5, 7, 9, 13]}}}
    out = A.decision_numbers({"suite": wb, "decision_audit": dec})
    ratios = np.array([0.9 / 0.5, 1.8 / 2.0, 9.0 / 3.0])  # per image over min(DDN, FMN); 7 failed
    assert out["dec_images"] == 4 and out["dec_failed"] == 1
    assert out["dec_ratio_median"] == pytest.approx(float(np.median(ratios)))
    assert out["dec_converged"] == int((ratios <= 2).sum()) == 2
    assert out["dec_below_whitebox"] == 1  # 1.8 / 2.0 = 0.9: closer than the gradient attacks found
    assert A.decision_numbers({"suite": wb}) == {}


def test_decision_audit_runs_hopskipjump_on_the_whitebox_images_once(small_trained_run, tmp_path, monkeypatch):
    import shutil
    import attacks
    from attacks.base import select_images
    from bench.core.records import Record
    run = tmp_path / "rec"
    shutil.copytree(small_trained_run, run)
    rec = Record(run)
    rec.merge({"suite": {"min_perturbation": {"seed": 5}}})  # the suite seed the white-box attacks used
    monkeypatch.setattr(A, "DECISION", {"n": 3, "steps": 2})
    res = A.run_decision_audit(run, log=lambda *a: None)
    ctx = attacks.context_for_run(run, seed=5, progress=False)
    det = res["result"]["details"]
    assert det["image_indices"] == select_images(ctx, 3).tolist()  # the same images as the white-box attacks
    assert rec.metrics()["decision_audit"]["protocol"]["steps"] == 2
    assert rec.metrics()["suite"].keys() == {"min_perturbation"}  # beside the suite, not in it
    l2 = [v for v in det["per_image_l2"] if v is not None]
    assert l2 and all(v > 0 for v in l2)
    monkeypatch.setattr(A, "DECISION", {"n": 3, "steps": 50})
    again = A.run_decision_audit(run, log=lambda *a: None)  # stored: not run again
    assert again["cost"] == res["cost"]


def test_line_audit_puts_the_matched_difference_reverse_direction_and_caps_on_the_line():
    from types import SimpleNamespace
    matched = pd.DataFrame({"regularizer": ["pixel_sim"] * 3, "metric": ["m"] * 3, "value": [2.0, 3.0, 4.0],
                            "none_matched": [1.0, 1.0, 1.0]})
    note = A.line_audit(None, {"reg": "pixel_sim", "base": "none", "metric": "m"}, {}, matched, None)
    h = 4.302653 / math.sqrt(3)  # t(0.975, 2) x SD 1 / sqrt(3): differences 1, 2, 3
    assert f"+2 [{2 - h:+.3g}, {2 + h:+.3g}] (paired, 3 blocks" in note

    def compare(tidy, reg, base, metric):
        return SimpleNamespace(diff={"transfer_fgsm_reverse_extended.x": 0.1}.get(metric, 0.3), ci_low=0.0,
                               ci_high=0.5)
    note = A.line_audit(None, {"reg": "pixel_sim", "base": "none", "metric": "transfer_fgsm_extended.x"}, {}, None,
                        compare)
    assert "reverse direction vs `none` +0.100 [+0.000, +0.500]" in note
    assert "shuffled control (`pixel_shuffle`) forward vs `none` +0.300" in note
    audits = {"pixel_sim": {"ddn_at_cap": 3, "ddn_images": 40, "fmn_at_cap": 1, "fmn_images": 40, "dec_blocks": 1,
                            "dec_ratio_median": 1.5, "dec_below_whitebox": 2, "dec_images": 20}}
    note = A.line_audit(None, {"reg": "pixel_sim", "base": "fgsm_at", "metric": "minimal_l2.median_l2"}, audits,
                        None, None)
    assert "`pixel_sim`: DDN at its cap on 3 of 40 images, FMN on 1 of 40, HopSkipJump / white-box L2 1.50, closer " \
           "than white-box on 2 of 20" in note and "`fgsm_at`: DDN at its cap on ? of ?" in note


def test_separation_flag_when_none_keeps_90_percent():
    rows = []
    for seed, clean, last_paper, last_ext in ((0, 0.5, 0.47, 0.2), (1, 0.6, 0.57, 0.2)):
        rows += [{"regularizer": "none", "seed": seed, "metric": "clean.accuracy", "value": clean},
                 {"regularizer": "none", "seed": seed, "metric": "gaussian_noise.accuracy_max_level", "value": last_paper},
                 {"regularizer": "none", "seed": seed, "metric": "gaussian_noise_extended.accuracy_max_level",
                  "value": last_ext}]
    lines = A.separation_flags(pd.DataFrame(rows))
    paper = next(x for x in lines if x.startswith("- `gaussian_noise`"))
    ext = next(x for x in lines if x.startswith("- `gaussian_noise_extended`"))
    assert "cannot separate" in paper and f"{np.mean([0.47 / 0.5, 0.57 / 0.6]):.0%}" in paper
    assert "cannot separate" not in ext


def test_plan_commands_name_the_committed_records_configs():
    """Every planned sweep, parsed and planned by the real CLI and sweep planner, names exactly the committed
    records' folders (same config hashes), so rerunning the plan resumes the study instead of starting another."""
    from bench.app.sweep import plan_sweep
    from bench.cli import build_parser
    from bench.cli.sweep import spec_from_args
    records = DOCS / "cifar10_records"
    names = {p.name for p in records.iterdir()} if records.is_dir() else set()
    if not names or not (ROOT.parent / "shared" / "data" / "cifar10-prefix").is_dir():
        pytest.skip("no committed CIFAR-10 study records, or ../shared/data/cifar10-prefix absent")
    import os
    cwd = os.getcwd()
    os.chdir(ROOT)  # the plan names the data file relative to the project's root
    planned = set()
    try:
        for command in S.commands():  # every sweep of the plan: its runs and their transfer surrogates
            plan = plan_sweep(spec_from_args(build_parser().parse_args(shlex.split(command)[3:])))
            planned |= {Path(s.run_dir).name for s in plan.specs}
    finally:
        os.chdir(cwd)
    assert names <= planned, sorted(names - planned)


def test_bench_reproduce_renders_the_study_file_with_its_own_renderer(tmp_path, monkeypatch):
    """`bench reproduce cifar10_cpu --render-only` on a copy of the records writes the committed report: the study
    file names this study's renderer, and its claims, arms and prose are the ones the report shows."""
    import shutil
    from bench.cli import main
    report = DOCS / "cifar10_reproduction.md"
    if not report.is_file():
        pytest.skip("no committed CIFAR-10 report yet")
    shutil.copytree(DOCS / "cifar10_records", tmp_path / "records")
    monkeypatch.chdir(ROOT)  # the study file's pilot and similarity paths are relative to the repository root
    assert main(["reproduce", "cifar10_cpu", "--render-only", "--out", str(tmp_path / "records"),
                 "--report", str(tmp_path / "r.md")]) == 0
    assert (tmp_path / "r.md").read_text() == report.read_text()
    assert sorted(p.name for p in (tmp_path / "records").iterdir() if p.is_dir()) == \
        sorted(p.name for p in (DOCS / "cifar10_records").iterdir() if p.is_dir())  # nothing trained


def test_committed_report_is_rendered_from_the_committed_records(tmp_path):
    report = DOCS / "cifar10_reproduction.md"
    if not report.is_file():
        pytest.skip("no committed CIFAR-10 report yet")
    text = S.render(DOCS / "cifar10_records", DOCS / "cifar10_pilot_records", tmp_path / "r.md",
                    DOCS / "cifar10_similarity.json")
    assert text == report.read_text()
    assert "partial" in text.splitlines()[0] or "| 0 of" not in text

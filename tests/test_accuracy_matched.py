"""The accuracy-matched `none` (issue 31, item 4): epoch weights evaluated after training and deleted, each epoch's
result equal to the suite run independently on that epoch's weights, matching on the closest validation accuracy,
and the option outside the hash (committed records keep their names)."""
import json

import pandas as pd
import pytest

from bench.app.pipeline import evaluate_record, run_and_evaluate
from bench.core.config import build_config
from bench.core.records import Record
from leaderboard import matched as M


def _cfg(tmp_path, name, **kw):
    over = {"out": str(tmp_path / name), "progress": False, "epochs": 3, "steps_per_epoch": 3, "n_test": 64,
            "lr_schedule": "constant", "suite": "quick", "select": "last", "epoch_evals": True, **kw}
    return build_config("tiny", over)


def test_epoch_evals_store_each_epoch_and_match_an_independent_run(tmp_path):
    import attacks
    attacks.register_suite("epoch_evals_test", [("clean", {}), ("gaussian_noise", {"n": 64}),
                                                ("transfer_fgsm", {"n": 32}),
                                                ("min_perturbation", {"n": 8, "steps": 30, "patience": 10})])
    cfg = _cfg(tmp_path, "a", suite="epoch_evals_test")
    assert cfg.hash() == cfg.replace(epoch_evals=False).hash()  # adds evaluations, changes no weight
    rec = run_and_evaluate(cfg, log=lambda *a: None)
    m = json.loads((rec.path / "metrics.json").read_text())
    ep = m["epoch_suite"]["epochs"]
    assert sorted(ep, key=int) == ["1", "2", "3"] and not (rec.path / "epochs").exists()
    assert m["epoch_suite"]["tests"] == ["clean", "gaussian_noise", "transfer_fgsm", "min_perturbation"]
    assert all(0 <= e["val_acc"] <= 1 and e["seconds"] > 0 for e in ep.values())
    assert not list(tmp_path.rglob("epoch_*.pt"))
    # the surrogate (trained, never evaluated) kept no epochs
    from bench.app.pipeline import surrogate_config
    assert not surrogate_config(cfg).epoch_evals
    # epoch 3 of a run that keeps its last weights is the final model: the same numbers as the suite's own
    for t in ("gaussian_noise", "transfer_fgsm", "min_perturbation"):
        assert ep["3"]["results"][t] == m["suite"][t]["result"]["summary"], t
    # epoch 1 equals a 1-epoch run of the same seed (constant lr: the same weights after the first epoch)
    logs = []
    one = run_and_evaluate(_cfg(tmp_path, "b", suite="epoch_evals_test", epochs=1, epoch_evals=False),
                           log=lambda *a: logs.append(" ".join(map(str, a))))
    assert not any("epoch_evals is on" in x for x in logs)
    m1 = json.loads((one.path / "metrics.json").read_text())["suite"]
    assert ep["1"]["results"]["gaussian_noise"] == m1["gaussian_noise"]["result"]["summary"]
    assert ep["1"]["results"]["min_perturbation"] == m1["min_perturbation"]["result"]["summary"]


def _fake(root, reg, seed, val_accs, selected, epoch_results=None, clean=0.5):
    d = root / f"{reg}-s{seed}"
    d.mkdir(parents=True)
    head = {"comparison_key": "k", "config": {"regularizer": reg, "seed": seed}, "data": {"n_val": 400}}
    (d / "config.json").write_text(json.dumps(head))
    met = {"train": {"selected_epoch": selected}}
    if epoch_results:
        met["epoch_suite"] = {"tests": ["gaussian_noise"], "epochs": epoch_results}
    (d / "metrics.json").write_text(json.dumps(met))
    (d / "train_log.jsonl").write_text("\n".join(json.dumps({"epoch": e, "val_acc": a, "val_loss": 1.0})
                                                 for e, a in val_accs.items()))
    return d


def test_matching_picks_the_closest_validation_accuracy(tmp_path):
    eps = {str(e): {"val_acc": a, "results": {"gaussian_noise": {"relative_robustness": rr}}}
           for e, a, rr in ((1, 0.40, 0.9), (2, 0.55, 0.8), (3, 0.70, 0.7))}
    n = _fake(tmp_path, "none", 0, {1: 0.40, 2: 0.55, 3: 0.70}, 3, eps)
    p = _fake(tmp_path, "pixel_sim", 0, {1: 0.30, 2: 0.52, 3: 0.50}, 2)
    tidy = pd.DataFrame({"run_dir": [str(n), str(p)], "metric": ["gaussian_noise.relative_robustness"] * 2,
                         "value": [0.7, 0.85]})
    df = M.matched_rows(tidy, tmp_path)
    row = df[df["metric"] == "gaussian_noise.relative_robustness"].iloc[0]
    assert row["none_epoch"] == 2 and row["reg_val_acc"] == 0.52 and row["none_val_acc"] == 0.55
    assert row["value"] == 0.85 and row["none_final"] == 0.7 and row["none_matched"] == 0.8
    assert row["val_se"] == pytest.approx((0.52 * 0.48 / 400) ** 0.5)
    text = M.matched_markdown(df)
    assert "| pixel_sim | gaussian_noise.relative_robustness | 1 | 0.85 | 0.7 | 0.8 | +0.05 |" in text


def test_matching_flags_an_accuracy_none_never_had(tmp_path):
    eps = {str(e): {"val_acc": a, "results": {"gaussian_noise": {"relative_robustness": rr}}}
           for e, a, rr in ((1, 0.40, 0.9), (2, 0.55, 0.8))}
    n = _fake(tmp_path, "none", 0, {1: 0.40, 2: 0.55}, 2, eps)
    low = _fake(tmp_path, "pixel_th", 0, {1: 0.20, 2: 0.25}, 2)  # below none's first epoch by 7 SE
    tidy = pd.DataFrame({"run_dir": [str(n), str(low)], "metric": ["gaussian_noise.relative_robustness"] * 2,
                         "value": [0.8, 0.95]})
    df = M.matched_rows(tidy, tmp_path)
    row = df[df["metric"] == "gaussian_noise.relative_robustness"].iloc[0]
    assert row["none_epoch"] == 1 and not row["within_2se"] and row["setup"].endswith("[k]")
    assert "| 0 of 1 |" in M.matched_markdown(df)
    from bench.app import report_extras
    md = report_extras.matched_md(tidy, tmp_path)
    assert md[0] == "## Accuracy-matched control" and any("| pixel_th |" in x for x in md)
    assert report_extras.matched_md(tidy, tmp_path / "nothing") == []


def test_epoch_evals_stay_out_of_the_hash_and_committed_records_keep_their_names():
    from pathlib import Path
    on = build_config("tiny", {"epoch_evals": True})
    assert "epoch_evals" not in on.semantic_dict() and on.hash() == on.replace(epoch_evals=False).hash()
    root = Path(__file__).resolve().parents[1] / "docs"
    runs = sorted(p.parent for p in root.glob("*records/*/config.json"))
    assert len(runs) > 10
    bad = {r.name: Record(r).hash_problem() for r in runs if Record(r).hash_problem() is not None}
    assert not bad, bad


def test_a_sweep_keeps_epochs_for_none_only(tmp_path):
    from bench.app.sweep import SweepSpec, plan_sweep
    plan = plan_sweep(SweepSpec(regularizers="none,pixel_sim", seeds="0-1", preset="tiny",
                                overrides={"out": str(tmp_path)}, sets=["epoch_evals=true"]))
    kept = {(s.kind, s.config["regularizer"]): s.config["epoch_evals"] for s in plan.specs}
    assert kept[("run", "none")] and not kept[("run", "pixel_sim")]
    assert not kept.get(("surrogate", "none"), False)

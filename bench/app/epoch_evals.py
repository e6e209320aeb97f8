"""Epoch evaluations: the suite's distance and noise tests on every epoch's weights of a run (issue 31, item 4).

Why: a regularizer that costs clean accuracy can look robust for that reason alone (a less accurate model is
often farther from its decision boundary). The control is `none` at the same accuracy: for each seed block, the
`none` epoch whose validation accuracy is closest to the regularized arm's (`leaderboard.matched`). Weights are
not committed, so the epochs are evaluated while they exist: with `epoch_evals=true` the trainer writes each
epoch's state dict to `<record>/epochs/epoch_K.pt`; after training, `run_epoch_evals` runs the tests of
`MATCH_TESTS` that the record's suite has (same images, same seeds as the final model's suite, float32), stores
them in metrics.json under `epoch_suite` (each with the epoch's validation accuracy and loss from the training
log, and the seconds spent), and deletes the weights. Transfer FGSM runs with the block's surrogate (the one
the final model's suite uses). Who keeps epochs: a run with `epoch_evals=true`; in a sweep only its `none` arm
(the control is `none`'s), and a transfer surrogate never (it is trained, not evaluated). Cost: one run of those
tests per epoch, recorded per epoch (`seconds`). From the committed Fashion-MNIST `repro_cpu` records (width
0.25, one thread, their suites' `cost.seconds`), clean + the noise test + transfer FGSM + the 40-image DDN take
about 2 + 10 + 6 + 30 s per model, so each epoch adds ~50 s: 3 epochs add ~2.5 minutes to a `none` run whose
training takes 2-6 minutes.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import attacks
from bench.core import data as bdata
from bench.core import store
from bench.core.models import model_from_config
from bench.core.records import Record, as_record

# what the accuracy-matched control is judged on: clean accuracy, the noise tests, the white-box minimal distance,
# and the forward transfer FGSM (one surrogate gradient and a forward per eps: about the noise test's cost)
MATCH_TESTS = ("clean", "gaussian_noise", "gaussian_noise_extended", "min_perturbation", "min_perturbation_fmn",
               "transfer_fgsm", "transfer_fgsm_extended")


def _val_by_epoch(record: Record) -> dict[int, dict]:
    out = {}
    log = record.path / "train_log.jsonl"
    for line in log.read_text().splitlines() if log.is_file() else []:
        x = json.loads(line)
        if "val_acc" in x:
            out[int(x["epoch"])] = {"val_acc": float(x["val_acc"]), "val_loss": float(x["val_loss"])}
    return out


def run_epoch_evals(record, device="cpu", log=print, surrogate=None) -> dict:
    """Evaluate every saved epoch of `record` on MATCH_TESTS of its suite, store `epoch_suite`, delete weights.
    The transfer tests run only with the block's `surrogate` (`attacks.Surrogate`, as the final model's suite has)."""
    import torch
    record = as_record(record)
    folder = record.path / "epochs"
    files = sorted(folder.glob("epoch_*.pt"), key=lambda p: int(p.stem.split("_")[1])) if folder.is_dir() else []
    if not files:
        return {}
    cfg = record.config()
    tests = [t for t in attacks.suite_tests(cfg.suite)
             if t in MATCH_TESTS and (surrogate is not None or t not in attacks.TRANSFER_TESTS)]
    h = record.header()
    d = bdata.load_for_config(cfg)
    x = bdata.to_float(d.test_x).to(device)
    vals, out = _val_by_epoch(record), {}
    for f in files:
        epoch = int(f.stem.split("_")[1])
        model = model_from_config(cfg, h["model"]["channels"], h["model"]["num_classes"])
        model.load_state_dict(store.load_state(f))
        model.to(device).eval()
        ctx = attacks.EvalContext(model=model, x=x, y=d.test_y.to(device), config=cfg, run_dir=None,
                                  device=torch.device(device), seed=cfg.seed, num_classes=d.num_classes,
                                  dataset=cfg.dataset, surrogate=surrogate, progress=False)
        t0 = time.perf_counter()
        res = attacks.evaluate(ctx, suite=cfg.suite, only=tests, log=lambda *a: None)
        out[str(epoch)] = {**vals.get(epoch, {}), "seconds": round(time.perf_counter() - t0, 3),
                           "results": {k: v.get("result", {}).get("summary", {}) for k, v in res.items()},
                           "details": {k: v.get("result", {}).get("details", {}) for k, v in res.items()}}
        log(f"[regbench] epoch {epoch} of {record.name}: {', '.join(tests)} in {out[str(epoch)]['seconds']:.0f} s")
    record.merge({"epoch_suite": {"tests": tests, "epochs": out}})
    shutil.rmtree(folder)
    return out

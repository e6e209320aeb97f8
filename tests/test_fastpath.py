"""The fast step path (`step_path=fast`: channels_last + bf16 autocast, float32 loss and penalty), the GPU's
path, run on the CPU through the real option (no monkeypatch), so CI runs the GPU path's code.

What holds and is tested here: the resolved path (never auto) is what config.json, the hash and the comparison
key carry, and a plain record hashes as every record made before the option did; on the CPU a fast run is
bit-identical when rerun or resumed at the same thread count (bf16 autocast on the CPU is deterministic: no
atomics; measured on an AMD EPYC, torch 2.14.1); its weights differ from the plain path's (bf16 rounding);
the suite after a fast training runs in float32 with autocast off. The CUDA-only parts (events, pinned copies)
are guarded by `device.type == "cuda"` in bench/engine/trainer.py and bench/engine/monitors.py."""
import json
import shutil

import pytest
import torch
import torch.nn.functional as F

from bench.engine import step_path as bpath
from bench.engine import trainer as btrain
from bench.core.config import RunConfig, build_config
from bench.core.models import create_model

FAST_CPU = bpath.StepPath(fast=True, channels_last=True, amp_dtype=torch.bfloat16, compiled=False)
QUIET = dict(progress=False)


def _model_and_batch(seed=0):
    torch.manual_seed(seed)
    model = create_model("resnet18", width=0.125, in_channels=1, num_classes=10)
    x = torch.rand(16, 1, 32, 32)
    y = torch.randint(0, 10, (16,))
    return model, x, y


def test_bf16_channels_last_forward_matches_fp32_within_tolerance():
    model, x, y = _model_and_batch()
    model.eval()
    with torch.no_grad():
        ref_logits, ref_feats = model(x, features=True)
        plain_logits = bpath.path_forward(model, x, bpath.StepPath())
        assert torch.equal(plain_logits, model(x))  # the plain path is exactly the model call
        net = bpath.prepare_model(model, FAST_CPU)
        assert net is model and model.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
        logits, feats = bpath.path_forward(net, x, FAST_CPU, features=True)
    assert logits.dtype == torch.float32 and all(f.dtype == torch.float32 for f in feats)
    assert [f.shape for f in feats] == [f.shape for f in ref_feats]
    ce_ref, ce = F.cross_entropy(ref_logits, y), F.cross_entropy(logits, y)
    assert abs(ce.item() - ce_ref.item()) < 0.05 * max(1.0, ce_ref.item())
    # bf16 has an 8-bit mantissa: features agree to ~1e-2 relative, and not bit-exactly
    rel = max(((f - r).norm() / r.norm()).item() for f, r in zip(feats, ref_feats))
    assert 0 < rel < 0.05


def test_step_path_option_resolves_and_is_recorded(monkeypatch):
    from bench.core import device as bdev
    from bench.core.records import legacy_defaults
    assert bdev.resolve_step_path(None, "cpu") == "plain" and bdev.resolve_step_path(None, "cuda:1") == "fast"
    assert bdev.resolve_step_path("auto", "cuda") == "fast" and bdev.resolve_step_path("plain", "cuda") == "plain"
    monkeypatch.setattr(bdev, "cpu_native_bf16", lambda: (True, "stub"))
    assert bdev.resolve_step_path("auto", "cpu") == "fast"
    monkeypatch.setattr(bdev, "cpu_native_bf16", lambda: (False, "stub"))
    assert bdev.resolve_step_path("auto", "cpu") == "plain"
    monkeypatch.undo()
    plain, fast = build_config("tiny", {"device": "cpu"}), build_config("tiny", {"device": "cpu"}, ["step_path=fast"])
    assert plain.step_path == "plain" and fast.step_path == "fast"  # resolved at build time, never auto
    assert build_config("tiny", {"device": "cpu", "step_path": "auto"}).step_path in ("plain", "fast")
    # a plain config hashes as a record written before the option (no step_path in its config.json) ...
    old = {k: v for k, v in plain.to_dict().items() if k != "step_path"}
    assert RunConfig.from_dict(legacy_defaults(old)).hash() == plain.hash()
    # ... and a fast run is another protocol: its own hash and comparison key
    assert fast.hash() != plain.hash() and fast.comparison_key() != plain.comparison_key()
    assert bpath.step_path(plain, torch.device("cpu")) == bpath.StepPath()
    assert bpath.step_path(fast, torch.device("cpu")).describe() == {
        "fast_path": True, "channels_last": True, "amp_dtype": "bfloat16", "compiled": False}
    cuda = bpath.step_path(RunConfig(compile=True), torch.device("cuda"))  # unset: fast on CUDA (no GPU needed)
    assert cuda.describe() == {"fast_path": True, "channels_last": True, "amp_dtype": "bfloat16", "compiled": True}
    with pytest.raises(ValueError, match=r"^step_path must be auto\|plain\|fast \(or unset\), got 'bf16'$"):
        build_config("tiny", None, ["step_path=bf16"])


def test_compile_flag_is_not_semantic():
    a = build_config("tiny")
    b = build_config("tiny", {"compile": True})
    assert b.compile and a.hash() == b.hash() and a.comparison_key() == b.comparison_key()
    from bench.cli import build_parser
    args = build_parser().parse_args(["run", "--preset", "tiny", "--compile"])
    from bench.cli.commands import config_from_args
    assert config_from_args(args).compile is True
    assert config_from_args(build_parser().parse_args(["run", "--preset", "tiny"])).compile is False


def _tiny_over(tmp_path, name, regularizer, **kw):
    over = {"out": str(tmp_path / name), "progress": False, "regularizer": regularizer, "epochs": 2,
            "steps_per_epoch": 3, "batch_size": 16, **kw}
    if regularizer != "none":
        over["reg_params"] = {"n_images": 64}
    return over


@pytest.mark.parametrize("regularizer", ["none", "pixel_sim"])
def test_fast_path_trains_through_the_option(tmp_path, regularizer):
    """The whole fast loop (channels_last, autocast, on-device loss sums) runs and learns; its weights
    differ from the exact fp32 path (bf16), its logged losses stay finite, its record says which path."""
    cfg = build_config("tiny", _tiny_over(tmp_path, "fast", regularizer), ["step_path=fast"])
    run = btrain.train(cfg, log=lambda *a: None)
    m = json.loads((run / "metrics.json").read_text())["train"]
    assert m["fast_path"] is True and m["amp_dtype"] == "bfloat16" and m["steps"] == m["budget_steps"]
    assert m["device_s"] > 0
    head = json.loads((run / "config.json").read_text())
    assert head["config"]["step_path"] == "fast" and head["hash"] == cfg.hash()
    lines = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in lines if "loss" in x]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    if regularizer != "none":
        assert all(x["reg_raw"] > 0 for x in lines if "loss" in x)
    ref = btrain.train(build_config("tiny", _tiny_over(tmp_path, "plain", regularizer)), log=lambda *a: None)
    m = json.loads((ref / "metrics.json").read_text())["train"]
    assert m["fast_path"] is False and m["amp_dtype"] is None and m["compiled"] is False
    head = json.loads((ref / "config.json").read_text())
    assert head["step_path"]["fast_path"] is False and head["config"]["step_path"] == "plain"
    a = torch.load(run / "model.pt", weights_only=True)
    b = torch.load(ref / "model.pt", weights_only=True)
    assert not all(torch.equal(a[k], b[k]) for k in a)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("regularizer", ["none", "pixel_th"])
def test_fast_path_reruns_and_resumes_bit_identical(tmp_path, monkeypatch, regularizer):
    """At one thread count, a fast run rerun from scratch and a fast run stopped after a checkpoint and resumed
    give the same weights bit for bit (what config.json's determinism.bit_identical_when says)."""
    def cfg(name):
        return build_config("tiny", _tiny_over(tmp_path, name, regularizer, ckpt_every=3), ["step_path=fast"])
    ref = btrain.train(cfg("ref"), log=lambda *a: None)
    again = btrain.train(cfg("again"), log=lambda *a: None)
    orig = btrain.Trainer.after_step

    def stop_at_5(self):
        orig(self)
        if self.state["step"] == 5:  # after the checkpoint of step 3
            raise _Stop()
    monkeypatch.setattr(btrain.Trainer, "after_step", stop_at_5)
    with pytest.raises(_Stop):
        btrain.train(cfg("killed"), log=lambda *a: None)
    monkeypatch.setattr(btrain.Trainer, "after_step", orig)
    msgs = []
    resumed = btrain.train(cfg("killed"), log=msgs.append)
    assert any("resuming" in m and "at step 3/" in m for m in msgs)
    a = torch.load(ref / "model.pt", weights_only=True)
    for other in (again, resumed):
        b = torch.load(other / "model.pt", weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a), other.name


def test_suite_after_fast_training_is_float32(tmp_path, monkeypatch):
    """Evaluation is float32 on every path: every module's output in every test of the suite (the transfer
    surrogate, trained on the fast path too, included) is float32 with CPU autocast off. Forward hooks see the
    activations: a check of parameter dtypes could not fail (autocast never changes them)."""
    from attacks import base as abase
    from attacks import suite_tests
    from bench.app.pipeline import run_and_evaluate
    cfg = build_config("tiny", {"out": str(tmp_path / "r"), "progress": False, "n_test": 48, "epochs": 1,
                                "steps_per_epoch": 3}, ["step_path=fast"])
    seen: dict[str, list] = {}
    current = {"test": None}
    orig_call = abase.SuiteTest.__call__

    def call(self, ctx):
        current["test"] = self.name
        try:
            return orig_call(self, ctx)
        finally:
            current["test"] = None

    def hook(module, args, out):
        if current["test"] is None:
            return
        outs = out if isinstance(out, (tuple, list)) else [out]
        dtypes = {t.dtype for t in outs if isinstance(t, torch.Tensor) and t.is_floating_point()}
        seen.setdefault(current["test"], []).append((dtypes, torch.is_autocast_enabled("cpu")))
    monkeypatch.setattr(abase.SuiteTest, "__call__", call)
    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        rec = run_and_evaluate(cfg, log=lambda *a: None)
    finally:
        handle.remove()
    m = json.loads((rec.path / "metrics.json").read_text())
    assert m["train"]["amp_dtype"] == "bfloat16"
    assert set(seen) == set(suite_tests(cfg.suite)), sorted(seen)  # every test ran forwards under the hook
    for test, calls in seen.items():
        assert calls and all(d <= {torch.float32} and not ac for d, ac in calls), test


def test_grouped_step_on_the_fast_path(tmp_path):
    """reg_forward=grouped (the paper preset's forward) under bf16 autocast + channels_last: from one state, the
    fast step's loss is the plain step's within bf16 round-off (measured ~1e-3 relative; 5e-2 allowed), and it
    moves the weights."""
    from bench.engine.opcount import ready_trainer
    torch.set_num_threads(1)
    kw = dict(regularizer="pixel_sim", width=0.25, reg_forward="grouped", out=str(tmp_path / "g"), progress=False,
              reg_params={"n_images": 128, "pairs_per_step": 8})
    plain = ready_trainer(build_config("tiny", kw))
    fast = ready_trainer(build_config("tiny", kw, ["step_path=fast"]))
    assert fast.path.fast and fast.bn_groups is not None
    fast.model.load_state_dict(plain.model.state_dict())
    before = {k: v.detach().clone() for k, v in fast.model.named_parameters()}
    plain.step()
    fast.step()
    lp, lf = float(plain.running["loss"]), float(fast.running["loss"])
    assert abs(lp - lf) <= 5e-2 * abs(lp) and abs(lp - float(plain.running["ce"])) > 0.1, (lp, lf)
    assert any(not torch.equal(p.detach(), before[n]) for n, p in fast.model.named_parameters())


@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
                    reason="torch.compile's CPU backend (inductor) needs a C++ compiler")
def test_compiled_step_on_the_fast_path(tmp_path, monkeypatch):
    """The compiled step (the CUDA path's forwards + loss + penalty as one graph) under bf16 autocast and
    channels_last on the CPU: from one state its losses are the eager fast step's within bf16 round-off
    (inductor reorders bf16 reductions; 5e-2 relative allowed)."""
    from bench.engine.opcount import ready_trainer
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))  # see tests/test_compiled_step.py
    torch._dynamo.reset()
    torch.set_num_threads(2)
    kw = dict(regularizer="pixel_sim", width=0.25, reg_forward="grouped", out=str(tmp_path / "c"), progress=False,
              reg_params={"n_images": 128, "pairs_per_step": 8})
    eager = ready_trainer(build_config("tiny", kw, ["step_path=fast"]))
    comp = ready_trainer(build_config("tiny", {**kw, "compile": True}, ["step_path=fast"]))
    assert comp.path.compiled and comp.path.fast and comp.loss_fn is not comp._loss_of
    comp.model.load_state_dict(eager.model.state_dict())
    eager.step()
    comp.step()
    le, lc = float(eager.running["loss"]), float(comp.running["loss"])
    assert abs(le - lc) <= 5e-2 * abs(le) and abs(le - float(eager.running["ce"])) > 0.1, (le, lc)
    sd = comp.model.state_dict()
    assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())

"""The GPU fast path of the trainer, exercised on the CPU (channels_last + bf16 autocast run there too).

No GPU here: these tests check the numerics and bookkeeping of the fast path's pieces; the CUDA-only
parts (events, pinned copies) are guarded by `device.type == "cuda"` in bench/engine/trainer.py."""
import json

import pytest
import torch
import torch.nn.functional as F

from bench.engine import trainer as btrain
from bench.core.config import RunConfig, build_config
from bench.core.models import create_model

FAST_CPU = btrain.StepPath(fast=True, channels_last=True, amp_dtype=torch.bfloat16, compiled=False)


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
        plain_logits = btrain.path_forward(model, x, btrain.StepPath())
        assert torch.equal(plain_logits, model(x))  # the plain path is exactly the model call
        net = btrain.prepare_model(model, FAST_CPU)
        assert net is model and model.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
        logits, feats = btrain.path_forward(net, x, FAST_CPU, features=True)
    assert logits.dtype == torch.float32 and all(f.dtype == torch.float32 for f in feats)
    assert [f.shape for f in feats] == [f.shape for f in ref_feats]
    ce_ref, ce = F.cross_entropy(ref_logits, y), F.cross_entropy(logits, y)
    assert abs(ce.item() - ce_ref.item()) < 0.05 * max(1.0, ce_ref.item())
    # bf16 has an 8-bit mantissa: features agree to ~1e-2 relative, and not bit-exactly
    rel = max(((f - r).norm() / r.norm()).item() for f, r in zip(feats, ref_feats))
    assert 0 < rel < 0.05


def test_step_path_selection_and_description():
    cfg = RunConfig()
    cpu = btrain.step_path(cfg, torch.device("cpu"))
    assert cpu == btrain.StepPath() and cpu.describe() == {"fast_path": False, "channels_last": False,
                                                         "amp_dtype": None, "compiled": False}
    cuda = btrain.step_path(cfg.replace(compile=True), torch.device("cuda"))  # no GPU needed to decide
    assert cuda.describe() == {"fast_path": True, "channels_last": True, "amp_dtype": "bfloat16", "compiled": True}


def test_compile_flag_is_not_semantic():
    a = build_config("tiny")
    b = build_config("tiny", {"compile": True})
    assert b.compile and a.hash() == b.hash() and a.comparison_key() == b.comparison_key()
    from bench.cli import build_parser
    args = build_parser().parse_args(["run", "--preset", "tiny", "--compile"])
    from bench.cli.commands import config_from_args
    assert config_from_args(args).compile is True
    assert config_from_args(build_parser().parse_args(["run", "--preset", "tiny"])).compile is False


@pytest.mark.parametrize("regularizer", ["none", "pixel_sim"])
def test_fast_path_trains_on_cpu_when_forced(tmp_path, monkeypatch, regularizer):
    """The whole fast loop (channels_last, autocast, on-device loss sums) runs and learns; its
    weights differ from the exact fp32 path (bf16), its logged losses stay finite."""
    import regularizers
    if regularizer not in regularizers.available():
        pytest.skip(f"{regularizer} not registered in this checkout")
    over = {"out": str(tmp_path / "fast"), "progress": False, "regularizer": regularizer, "epochs": 2,
            "steps_per_epoch": 3, "batch_size": 16}  # bf16 on a CPU without AMX is slow: keep it tiny
    if regularizer != "none":
        over["reg_params"] = {"n_images": 64}
    cfg = build_config("tiny", over)
    monkeypatch.setattr(btrain, "step_path", lambda c, d: FAST_CPU)
    run = btrain.train(cfg, log=lambda *a: None)
    m = json.loads((run / "metrics.json").read_text())["train"]
    assert m["fast_path"] is True and m["amp_dtype"] == "bfloat16" and m["steps"] == m["budget_steps"]
    assert m["device_s"] > 0
    lines = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in lines if "loss" in x]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    if regularizer != "none":
        assert all(x["reg_raw"] > 0 for x in lines if "loss" in x)
    monkeypatch.undo()
    ref = btrain.train(cfg.replace(out=str(tmp_path / "plain")), log=lambda *a: None)
    # the plain CPU run records that it took the plain path
    m = json.loads((ref / "metrics.json").read_text())["train"]
    assert m["fast_path"] is False and m["amp_dtype"] is None and m["compiled"] is False
    assert json.loads((ref / "config.json").read_text())["step_path"]["fast_path"] is False
    a = torch.load(run / "model.pt", weights_only=True)
    b = torch.load(ref / "model.pt", weights_only=True)
    assert not all(torch.equal(a[k], b[k]) for k in a)

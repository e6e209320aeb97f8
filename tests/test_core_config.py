import json
import subprocess
import sys

import pytest

from bench.core.config import PRESETS, RunConfig, build_config, lr_at


def test_paper_lr_schedule_values():
    cfg = build_config("paper")
    spe = 100
    expected = {0: 0.1, 3.99: 0.1, 4: 0.03, 8: 0.009, 12: 0.0027, 16: 0.00081, 19.99: 0.00081,
                20: 0.1, 24: 0.03, 39.5: 0.00081}
    for epoch, lr in expected.items():
        assert lr_at(cfg, int(round(epoch * spe)), spe) == pytest.approx(lr, rel=1e-9), epoch


def test_paper_preset_values():
    cfg = build_config("paper")
    assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.epochs, cfg.batch_size) == (0.1, 0.9, 0.0, 40, 64)
    assert cfg.select == "best_val_loss" and cfg.val_fraction == 0.01


def test_hash_ignores_paths_and_device_but_not_semantics():
    a = build_config("tiny", {"out": "/tmp/a", "device": "cpu"})
    b = build_config("tiny", {"out": "/tmp/b", "device": "cuda", "data_dir": "/x", "step_path": "plain"})
    assert a.hash() == b.hash()
    # the device is not hashed, but the step path it selects is: unset, CUDA resolves to the fast path
    # (bf16 autocast), another protocol than the CPU's plain fp32 path
    c = build_config("tiny", {"out": "/tmp/c", "device": "cuda"})
    assert c.step_path == "fast" and c.hash() != a.hash()
    assert a.hash() != a.replace(seed=1).hash()
    assert a.hash() != a.replace(reg_params={"alpha": 1}).hash()
    # same comparison key across regularizers and seeds, different with another budget
    assert a.comparison_key() == a.replace(regularizer="pixel_sim", seed=3).comparison_key()
    assert a.comparison_key() != a.replace(epochs=2).comparison_key()


def test_hash_is_stable_across_processes():
    code = ("from bench.core.config import build_config; "
            "print(build_config('paper', {'seed': 3}, ['reg_params.alpha=5']).hash())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == build_config("paper", {"seed": 3}, ["reg_params.alpha=5"]).hash()


def test_set_overrides_and_errors():
    cfg = build_config("demo", None, ["lr=0.01", "reg_params.th=0.5", "n_train=100"])
    assert cfg.lr == 0.01 and cfg.reg_params == {"th": 0.5} and cfg.n_train == 100
    with pytest.raises(ValueError, match="valid keys"):
        build_config(None, None, ["learning_rate=1"])
    with pytest.raises(ValueError, match="valid presets: demo, paper"):
        build_config("fast")
    with pytest.raises(ValueError, match="color"):
        build_config(None, {"color": "blue"})


def test_config_roundtrip_json():
    cfg = build_config("quick", {"seed": 2})
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.hash() == cfg.hash()
    assert set(PRESETS) >= {"paper", "quick", "demo"}

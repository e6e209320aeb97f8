"""Device handling: worker GPU masks, precision flags in config.json, the fold tolerance, and suite
draws that come from CPU generators whatever the evaluation device."""
import json
import queue

import pytest
import torch

from bench.core.device import (SHARED_ENV, device_shared_by, fold_tolerance, precision_info,
                               worker_devices)


# --------------------------------------------------------------------------- CUDA_VISIBLE_DEVICES
@pytest.mark.parametrize("mask,count,expected", [
    (None, 2, ["0", "1"]),  # no mask: the physical indices
    ("2,3", 2, ["2", "3"]),  # the parent's mask, not 0,1
    (" 3 , 1 ", 2, ["3", "1"]),
    ("GPU-8f1c6a2e-1111-2222-3333-444455556666,GPU-0a9b", 2,
     ["GPU-8f1c6a2e-1111-2222-3333-444455556666", "GPU-0a9b"]),
    ("MIG-5c4b1e3d-aaaa-bbbb-cccc-ddddeeeeffff", 1, ["MIG-5c4b1e3d-aaaa-bbbb-cccc-ddddeeeeffff"]),
    ("MIG-GPU-8f1c/1/0,MIG-GPU-8f1c/2/0", 2, ["MIG-GPU-8f1c/1/0", "MIG-GPU-8f1c/2/0"]),
    ("2,3,7", 2, ["2", "3"]),  # CUDA stops at the first invalid entry: device_count says how many are real
    ("", 0, []),
    ("-1", 0, []),
])
def test_worker_devices_keep_the_parents_mask(mask, count, expected):
    assert worker_devices(mask, count) == expected


def test_local_launcher_pins_workers_through_the_mask(monkeypatch):
    from bench.app import launch_local, launchers
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa,GPU-bbbb")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    lau = launchers.make_launcher("local", workers=4, device="auto")
    assert lau.gpus == ["GPU-aaaa", "GPU-bbbb"]
    assert lau.assignments() == [("GPU-aaaa", 2), ("GPU-bbbb", 2), ("GPU-aaaa", 2), ("GPU-bbbb", 2)]
    assert lau.threads >= 1  # GPU workers get a thread count too
    # what a worker does first: its own CUDA_VISIBLE_DEVICES is the parent's token, and it knows it shares it
    q = queue.Queue()
    q.put(lau.assignments()[1])
    monkeypatch.setenv(SHARED_ENV, "1")
    launch_local._init_worker(q, None, None)
    import os
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "GPU-bbbb" and device_shared_by() == 2
    one = launch_local.LocalLauncher(workers=2, gpus=["3", "5"]).assignments()
    assert one == [("3", 1), ("5", 1)]


# --------------------------------------------------------------------------- precision
def test_precision_flags_follow_torch_and_fold_tolerance():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert fold_tolerance(cpu) == 1e-4
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
             torch.get_float32_matmul_precision())
    try:
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        p = precision_info(cuda, torch.bfloat16)
        assert p["cudnn_allow_tf32"] is True and p["effective_float32"] == {"conv": "tf32", "matmul": "float32"}
        assert p["autocast_dtype"] == "bfloat16"
        assert fold_tolerance(cuda) > 1e-4  # TF32 convolutions: float32 round-off is not the right scale
        assert fold_tolerance(cuda, torch.bfloat16) >= fold_tolerance(cuda)
        torch.backends.cudnn.allow_tf32 = False
        assert precision_info(cuda)["effective_float32"] == {"conv": "float32", "matmul": "float32"}
        assert fold_tolerance(cuda) == 1e-4
        torch.set_float32_matmul_precision("high")  # TF32 matmuls
        assert precision_info(cuda)["effective_float32"]["matmul"] == "tf32" and fold_tolerance(cuda) > 1e-4
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])


def test_config_json_records_precision(tmp_path):
    from bench.engine.trainer import train
    from conftest import tiny_config
    run = train(tiny_config(tmp_path, n_train=64, steps_per_epoch=2), log=lambda *a: None)
    rec = json.loads((run / "config.json").read_text())
    p = rec["determinism"]["precision"]
    assert p["autocast_dtype"] is None  # the CPU step path is plain float32
    assert p["cudnn_allow_tf32"] == torch.backends.cudnn.allow_tf32
    assert p["cuda_matmul_allow_tf32"] == torch.backends.cuda.matmul.allow_tf32
    assert p["float32_matmul_precision"] == torch.get_float32_matmul_precision()
    assert p["effective_float32"] == {"conv": "float32", "matmul": "float32"}
    assert rec["device"]["shared_by"] == 1
    assert "device_shared_by" not in json.loads((run / "metrics.json").read_text())["train"]


def test_global_pool_is_the_mean():
    """h.mean((2, 3)) replaced F.adaptive_avg_pool2d(h, 1) (no deterministic CUDA backward): same values."""
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(0)
    h = torch.randn(8, 32, 4, 4, generator=g)
    torch.testing.assert_close(h.mean((2, 3)), torch.flatten(F.adaptive_avg_pool2d(h, 1), 1), rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- suite draws
def _noise_tests():
    from attacks.noise import GaussianNoise, SaltPepperNoise, UniformNoise
    return [GaussianNoise(), UniformNoise(), SaltPepperNoise()]


@pytest.mark.parametrize("device", ["cpu", "meta"] + (["cuda"] if torch.cuda.is_available() else []))
def test_noise_draws_come_from_the_cpu_generator(device):
    """The noise a test adds is drawn from a CPU generator and only then moved: the same generator
    seed gives the same draws (and leaves the generator in the same state) whatever device the images
    are on ("meta" stands in for an accelerator: it holds no values, so only the generator's state can
    be compared there)."""
    x_cpu = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    xb = x_cpu.to(device)
    for t in _noise_tests():
        g_ref, g_dev = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        ref = t.draw(x_cpu, g_ref)
        got = t.draw(xb, g_dev)
        assert torch.equal(g_ref.get_state(), g_dev.get_state()), t.name
        ref, got = (ref if isinstance(ref, tuple) else (ref,)), (got if isinstance(got, tuple) else (got,))
        for a, b in zip(ref, got):
            assert b.device.type == device
            if device != "meta":
                assert torch.equal(a, b.cpu()), t.name
    # an independent computation of the Gaussian draw
    g = torch.Generator().manual_seed(5)
    assert torch.equal(_noise_tests()[0].draw(x_cpu, torch.Generator().manual_seed(5)),
                       torch.randn(x_cpu.shape, generator=g))


def test_generated_corruptions_use_cpu_generators():
    from attacks import corruption_ops as ops
    from attacks.corruptions import generate, quantize
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(3 * 1_000_003 + ops.CORRUPTIONS.index("gaussian_noise") * 1009 + 2 * 101)
    assert torch.equal(generate(x, "gaussian_noise", 2, seed=3), quantize(ops.corrupt(x, "gaussian_noise", 2, g)))
    if torch.cuda.is_available():
        assert torch.equal(generate(x.cuda(), "gaussian_noise", 2, seed=3).cpu(), generate(x, "gaussian_noise", 2, 3))


@pytest.mark.parametrize("device", ["cpu", "meta"] + (["cuda"] if torch.cuda.is_available() else []))
def test_foolbox_draws_come_from_the_cpu_generator(device):
    """Inside `host_draws` (the boundary attacks' context) eagerpy's random directions are drawn from the
    global CPU generator and then moved: after one seed the draws are the same on every device, and on the
    CPU exactly what eagerpy itself draws (so CPU records keep their numbers). "meta" stands in for an
    accelerator: only the generator's state can be compared there."""
    import eagerpy as ep
    from attacks.foolbox_adapters import host_draws
    like = ep.astensor(torch.zeros(2, 3, device=device))
    torch.manual_seed(11)
    with host_draws():
        n, u = like.normal((4, 5)), like.uniform((3,), -1, 1)
    state = torch.get_rng_state()
    g = torch.Generator().manual_seed(11)
    ref_n, ref_u = torch.randn((4, 5), generator=g), torch.rand((3,), generator=g) * 2 - 1
    assert torch.equal(state, g.get_state())  # the CPU generator advanced by exactly these draws
    assert n.raw.device.type == device and u.raw.device.type == device
    if device != "meta":
        assert torch.equal(n.raw.cpu(), ref_n) and torch.equal(u.raw.cpu(), ref_u)
    if device == "cpu":  # unchanged on the CPU: eagerpy's own methods give the same numbers
        torch.manual_seed(11)
        assert torch.equal(like.normal((4, 5)).raw, ref_n)
    from eagerpy.tensor.pytorch import PyTorchTensor
    assert PyTorchTensor.normal.__module__ == "eagerpy.tensor.pytorch"  # eagerpy's own again after the context

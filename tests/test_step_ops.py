"""The training step's dispatched aten ops (what a launch-bound GPU step pays per op), counted on the
CPU: the multi-tensor optimizer update lowers them, and changes no weight (bit-identical)."""
import pytest
import torch

from bench.engine.opcount import ready_trainer, step_ops
from conftest import tiny_config


def _ops_and_weights(cfg, foreach: bool, steps: int = 4):
    t = ready_trainer(cfg)
    for g in t.opt.param_groups:  # foreach=False: the per-tensor loop the trainer used before
        g["foreach"] = foreach
    t.step()  # the first step allocates the momentum buffers
    c = step_ops(t, 1)
    for _ in range(steps):
        t.step()
    return c, {k: v.clone() for k, v in t.model.state_dict().items()}


@pytest.mark.parametrize("reg,extra", [("none", dict(weight_decay=5e-4)),
                                       ("pixel_sim", dict(reg_forward="separate",
                                                          reg_params={"n_images": 256, "pairs_per_step": 8}))])
def test_step_ops_go_down_and_weights_do_not_move(tmp_path, reg, extra):
    torch.set_num_threads(1)
    cfg = tiny_config(tmp_path, regularizer=reg, width=0.25, **extra)
    new, w_new = _ops_and_weights(cfg, foreach=True)
    old, w_old = _ops_and_weights(cfg, foreach=False)
    print(f"\naten ops per step ({reg}): {old.total} before (per-tensor SGD) -> {new.total} now")
    n_params = sum(1 for _ in ready_trainer(cfg).model.parameters())
    # the per-tensor loop costs >= 2 ops per parameter tensor (momentum mul_ + add_, the update add_)
    assert old.total - new.total >= 2 * n_params
    assert new.ops["convolution"] == old.ops["convolution"] > 0  # the same forward
    assert all(torch.equal(w_new[k], w_old[k]) for k in w_new)  # the same arithmetic, element by element

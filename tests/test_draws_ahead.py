"""An epoch's random draws made at its start (the task batch's crops and flips, the regularizer's pairs) and
copied to the device at once give exactly the numbers of drawing step by step: the same generator, the same
order. The reference is the step-by-step path the trainer still takes for a plugin regularizer without
`draw` (the path every committed record was trained on), so a record's meaning does not change."""
import pytest
import torch

import regularizers
from bench.core import data as bdata
from bench.engine.opcount import ready_trainer
from conftest import tiny_config


@pytest.mark.parametrize("reg,extra", [("none", {}),
                                       ("pixel_th", dict(reg_params={"n_images": 128, "pairs_per_step": 8,
                                                                     "pair_range": "high"})),
                                       ("pixel_sim", dict(reg_params={"n_images": 128, "pairs_per_step": 8}))])
def test_drawing_ahead_gives_the_step_by_step_weights(tmp_path, reg, extra):
    torch.set_num_threads(1)
    cfg = tiny_config(tmp_path, regularizer=reg, width=0.25, augment="crop_flip", **extra)
    ahead, stepwise = ready_trainer(cfg), ready_trainer(cfg)
    stepwise.ahead = False
    assert ahead.ahead and ahead.spe < 10  # 10 steps cross an epoch boundary: a new epoch's draws
    seen = {}
    for name, t in (("ahead", ahead), ("stepwise", stepwise)):
        def spy(t=t, name=name, inputs=t.inputs):
            seen[name] = inputs()
            return seen[name]
        t.inputs = spy
    for _ in range(10):
        ahead.step()
        stepwise.step()
        (xa, ya, ra), (xs, ys, rs) = seen["ahead"], seen["stepwise"]
        assert torch.equal(xa, xs) and torch.equal(ya, ys)
        if ra is not None:
            assert torch.equal(ra.images, rs.images) and torch.equal(ra.meta["target"], rs.meta["target"])
    sa, ss = ahead.model.state_dict(), stepwise.model.state_dict()
    assert all(torch.equal(sa[k], ss[k]) for k in sa)
    assert all(torch.equal(a, b) for a, b in zip(ahead.reg.state_dict().values(), stepwise.reg.state_dict().values()))


def test_a_resumed_epoch_redraws_the_same_numbers(tmp_path):
    """Drawing ahead, a run resumed mid-epoch (fresh trainer, step counter restored) draws its epoch again
    from the epoch's seed and slices the same step's draws."""
    cfg = tiny_config(tmp_path, regularizer="pixel_sim", width=0.25, augment="crop_flip",
                      reg_params={"n_images": 128, "pairs_per_step": 8})
    a = ready_trainer(cfg)
    for _ in range(3):
        a.inputs()
        a.state["step"] += 1
    b = ready_trainer(cfg)
    b.state["step"] = 3
    xa, _, ra = a.inputs()
    xb, _, rb = b.inputs()
    assert torch.equal(xa, xb) and torch.equal(ra.images, rb.images)


def test_crop_flip_drawn_apart_equals_in_one_call():
    x = torch.randint(0, 256, (6, 3, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    one = bdata.batch_crop_flip(bdata.to_float(x), generator=torch.Generator().manual_seed(4))
    oy, ox, f = bdata.draw_crop_flip(6, generator=torch.Generator().manual_seed(4))
    assert torch.equal(one, bdata.apply_crop_flip(bdata.to_float(x), oy, ox, f))
    # an independent per-image reference of the first image: pad (reflect), crop at (oy, ox), flip
    p = torch.nn.functional.pad(bdata.to_float(x[:1]), (4, 4, 4, 4), mode="reflect")[0]
    ref = p[:, int(oy[0]):int(oy[0]) + 12, int(ox[0]):int(ox[0]) + 12]
    assert torch.equal(one[0], ref.flip(-1) if bool(f[0]) else ref)


def test_a_plugin_without_draw_keeps_drawing_step_by_step(tmp_path):
    @regularizers.register("test_stepwise_l2")
    class StepwiseL2(regularizers.Regularizer):
        from dataclasses import dataclass

        @dataclass
        class Params:
            alpha: float = 0.1

        def sample(self, step, generator=None, drawn=None):
            return regularizers.RegBatch(images=torch.rand(2, 1, 32, 32, generator=generator))

        def images_per_step(self):
            return 2

        def penalty(self, feats, batch):
            return sum(f.pow(2).mean() for f in feats)
    try:
        t = ready_trainer(tiny_config(tmp_path, regularizer="test_stepwise_l2", width=0.25))
        assert not t.ahead
        t.step()
        t.step()
        assert t.state["step"] == 2 and not t.plan["draws"] and not t.plan["reg"]  # nothing drawn ahead
    finally:
        regularizers.REGULARIZERS.unregister("test_stepwise_l2")

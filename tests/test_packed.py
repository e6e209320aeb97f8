"""Packed training (several runs in one vmapped forward/backward): each member's step is the step it
would take alone, each member ends as its own ordinary record, and a failing member fails alone.

Tolerance. One packed step from the same state gives every member the same step as unpacked: weights
within 5% of the step's largest weight update, momentum (gradient sums) and batch-norm running
statistics within 5% of their largest entry. The batched convolutions and batch norm of `vmap` round
differently from the unbatched kernels (the forward of the first step is bit-identical; weights after
it differ by ~5e-7), and these tiny models' gradients are ill-conditioned (a 1e-7 weight perturbation
moves the next update by ~1e-3): measured differences reach ~1.3% of the largest momentum entry.
A wrong data order, pair draw or optimizer state differs by O(100%): the negative control below
(member i's packed step against member j's unpacked one) shows the check can fail. Whole runs are not compared weight by weight: on these tiny models
training amplifies a 1e-7 perturbation to ~1e-4 after one step (measured: an unpacked run perturbed by
1e-7 ends 3e-3 away after 16 steps even at lr 1e-3), so per-step agreement is what can be stated."""
import json
from dataclasses import dataclass

import pytest
import torch

import regularizers
from bench.core.records import Record
from bench.engine.opcount import ready_trainer
from bench.engine.packed import PackedTrainer, train_packed
from conftest import tiny_config

REL_TOL = 5e-2  # of the step's largest weight update / the largest momentum or running-statistics entry


def _close(t, pt, i):
    """(largest weight difference, largest relative batch-norm running-statistics difference)."""
    sd = {**dict(t.model.named_parameters()), **dict(t.model.named_buffers())}
    w = max(float((p[i].detach() - sd[n].detach()).abs().max()) for n, p in pt.params.items())
    b = 0.0
    for n, buf in pt.buffers.items():
        if buf.is_floating_point():
            b = max(b, float((buf[i] - sd[n]).abs().max()) / (float(sd[n].abs().max()) + 1e-12))
        else:
            assert torch.equal(buf[i], sd[n]), n
    return w, b


@pytest.mark.parametrize("reg,extra", [("none", dict(weight_decay=5e-4)),
                                       ("pixel_sim", dict(reg_forward="separate",
                                                          reg_params={"n_images": 256, "pairs_per_step": 8}))])
def test_each_packed_step_is_the_members_own_step(tmp_path, reg, extra):
    """k=3 seeds packed: for 10 steps (across an epoch boundary, so a new data order is drawn), each
    member's packed step from its unpacked state gives its unpacked step's weights, buffers and
    momentum (own data order, pairs and targets, own optimizer state)."""
    torch.set_num_threads(1)
    cfgs = [tiny_config(tmp_path / "p", regularizer=reg, width=0.25, seed=s, **extra) for s in (0, 1, 2)]
    pt = PackedTrainer(cfgs, log=lambda *a: None)
    pt.setup(pt.members)
    alone = [ready_trainer(c) for c in cfgs]
    assert pt.members[0].spe < 10
    for step in range(10):
        for i, t in enumerate(alone):
            pt.adopt(i, t)  # the same state (weights, BN buffers, momentum) before the step
        before = [{n: p.detach().clone() for n, p in t.model.named_parameters()} for t in alone]
        for t in alone:
            t.step()
        assert pt._step(pt.members, step) == {}
        for i, t in enumerate(alone):
            assert pt.members[i].state["step"] == t.state["step"]
            assert torch.equal(pt.members[i].perm, t.perm)  # the member's own data order
            w, b = _close(t, pt, i)
            update = max(float((p - before[i][n]).abs().max()) for n, p in t.model.named_parameters())
            assert w <= REL_TOL * update + 1e-7 and b <= REL_TOL, (step, i, w, update, b)
            for n, p in t.model.named_parameters():
                mb = t.opt.state[p]["momentum_buffer"]
                got = pt.opt.state[pt.params[n]]["momentum_buffer"][i]
                assert float((got - mb).abs().max()) <= REL_TOL * float(mb.abs().max()) + 1e-6, (step, i, n)
    # negative control: another member's unpacked step is far outside the tolerance
    for i, j in ((0, 1), (1, 2)):
        other = {n: p for n, p in alone[j].model.named_parameters()}
        mb = alone[j].opt.state[other["stem.0.weight"]]["momentum_buffer"]
        got = pt.opt.state[pt.params["stem.0.weight"]]["momentum_buffer"][i]
        assert float((got - mb).abs().max()) > 10 * REL_TOL * float(mb.abs().max())


def test_packed_members_are_ordinary_records(tmp_path):
    torch.set_num_threads(1)
    cfgs = [tiny_config(tmp_path, width=0.25, seed=s, epochs=2) for s in (0, 1, 2)]
    res = train_packed(cfgs, log=lambda *a: None)
    assert list(res.values()) == [None, None, None]
    for c in cfgs:
        rec = Record.for_config(c)
        assert rec.is_trained() and rec.config() == c
        m = json.loads((rec.path / "metrics.json").read_text())["train"]
        assert m["steps"] == m["budget_steps"] == 2 * 8 and m["packed"] == 3 and m["device_s"] > 0
        lines = [json.loads(x) for x in (rec.path / "train_log.jsonl").read_text().splitlines()]
        assert sum("val_loss" in x for x in lines) == 2
        sd = torch.load(rec.path / "model.pt", weights_only=True)
        assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())
    # a second call finds them trained
    assert list(train_packed(cfgs, log=lambda *a: None).values()) == [None, None, None]
    with pytest.raises(ValueError, match="one comparison"):
        PackedTrainer([cfgs[0], cfgs[1].replace(lr=0.5)])


@regularizers.register("_nan_for_test")
class NanForTest(regularizers.Regularizer):
    """Penalty 0, or NaN from step `fail_at` on (to make one member of a pack fail)."""

    @dataclass
    class Params:
        alpha: float = 1.0
        fail_at: int = -1

    def setup(self, ctx):
        self.calls = 0

    def penalty(self, feats, batch):
        self.calls += 1
        z = feats[-1].mean() * 0.0
        return z + float("nan") if 0 <= self.hp.fail_at < self.calls else z


def test_a_failing_member_fails_only_its_own_record(tmp_path):
    torch.set_num_threads(1)
    cfgs = [tiny_config(tmp_path, width=0.25, seed=s, epochs=2, regularizer="_nan_for_test",
                        reg_params={"fail_at": 3 if s == 1 else -1}) for s in (0, 1, 2)]
    res = train_packed(cfgs, log=lambda *a: None)
    bad = Record.for_config(cfgs[1])
    assert res[str(bad.path)] is not None and "non-finite regularizer penalty" in str(res[str(bad.path)])
    t = bad.training()
    assert t.get("failed") and t.get("failed_step") == 4 and not bad.is_trained()
    for c in (cfgs[0], cfgs[2]):
        rec = Record.for_config(c)
        assert res[str(rec.path)] is None and rec.is_trained()
        assert json.loads((rec.path / "metrics.json").read_text())["train"]["steps"] == 16


def test_packed_takes_the_members_fast_path(tmp_path):
    """On the fast path (`step_path=fast` on the CPU: channels_last + bf16 autocast, as on CUDA) the pack runs
    its forwards in one autocast region and its members record that path: a pack never mixes step paths."""
    cfgs = [tiny_config(tmp_path, seed=s, epochs=1, steps_per_epoch=3, batch_size=16, step_path="fast",
                        regularizer="pixel_sim", reg_params={"n_images": 64, "pairs_per_step": 4}) for s in (0, 1)]
    assert all(c.step_path == "fast" for c in cfgs)
    with pytest.raises(ValueError, match="comparison"):  # a plain member in a fast pack: another protocol
        train_packed([cfgs[0], cfgs[1].replace(step_path="plain")], log=lambda *a: None)
    assert list(train_packed(cfgs, log=lambda *a: None).values()) == [None, None]
    for c in cfgs:
        m = json.loads((Record.for_config(c).path / "metrics.json").read_text())["train"]
        assert m["amp_dtype"] == "bfloat16" and m["packed"] == 2 and m["steps"] == 3
        assert all(torch.isfinite(v).all() for v in torch.load(Record.for_config(c).path / "model.pt",
                                                                weights_only=True).values() if v.is_floating_point())

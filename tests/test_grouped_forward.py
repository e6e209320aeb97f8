"""`reg_forward=grouped`: one forward over task + both pair halves whose batch norms use each group's own
statistics and update their running statistics once per group, in order, is the reference's three separate
forwards (task, first halves, second halves) in one pass. Checked against the separate path itself: the same
model state, the same draws. Convolutions over 96 images instead of 64 + 16 + 16 round differently, so
values agree within float32 round-off, not bit for bit; joint batch statistics (the `joint` forward) differ
by O(1) in the features, the negative control."""
import torch

from bench.core.models import BatchNormGroups, model_from_config
from bench.engine.opcount import ready_trainer
from conftest import tiny_config


def test_grouped_batch_norm_is_separate_forwards(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config(tmp_path, width=0.25)
    a, b = model_from_config(cfg, 1, 10), model_from_config(cfg, 1, 10)
    b.load_state_dict(a.state_dict())
    a.train(), b.train()
    parts = [torch.rand(n, 1, 32, 32) for n in (12, 4, 4)]
    sep = [a(p, features=True) for p in parts]
    groups = BatchNormGroups(b)
    groups.sizes = [12, 4, 4]
    lg, fs = b(torch.cat(parts), features=True)
    groups.sizes = None
    torch.testing.assert_close(lg, torch.cat([s[0] for s in sep]), rtol=1e-4, atol=1e-5)
    for k, f in enumerate(fs):
        torch.testing.assert_close(f, torch.cat([s[1][k] for s in sep]), rtol=1e-4, atol=1e-5)
    for (n, x), (_, y) in zip(a.named_buffers(), b.named_buffers()):
        torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-6, msg=n)  # 3 updates each, same order
    assert int(dict(b.named_buffers())["stem.1.num_batches_tracked"]) == 3
    x = torch.rand(6, 1, 32, 32)  # without sizes the layers are plain again
    torch.testing.assert_close(b(x), a(x), rtol=1e-5, atol=1e-6)
    joint = a(torch.cat(parts), features=True)[1]  # one batch's statistics: not the same maths
    assert float((joint[1] - fs[1]).detach().abs().max()) > 100 * 1e-4


def test_grouped_step_is_the_separate_step(tmp_path):
    torch.set_num_threads(1)
    kw = dict(regularizer="pixel_sim", width=0.25, reg_params={"n_images": 128, "pairs_per_step": 8})
    sep = ready_trainer(tiny_config(tmp_path / "s", reg_forward="separate", **kw))
    grp = ready_trainer(tiny_config(tmp_path / "g", reg_forward="grouped", **kw))
    grp.model.load_state_dict(sep.model.state_dict())
    before = {k: v.detach().clone() for k, v in sep.model.named_parameters()}
    sep.step()
    grp.step()
    ls, lg = float(sep.running["loss"]), float(grp.running["loss"])
    assert abs(ls - lg) <= 1e-5 * abs(ls), (ls, lg)
    # the step's largest weight update is the yardstick, as for packed and compiled steps (tiny models'
    # gradients amplify round-off; measured here: under 0.1% of it)
    upd = max(float((p.detach() - before[n]).abs().max()) for n, p in sep.model.named_parameters())
    for (n, p), (_, q) in zip(sep.model.named_parameters(), grp.model.named_parameters()):
        assert float((p.detach() - q.detach()).abs().max()) <= 5e-2 * upd, n

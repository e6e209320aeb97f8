"""`compile`: the step's forwards, cross-entropy and penalty as one torch.compile graph (inductor on the CPU;
CUDA graphs on CUDA) compute the eager step. From the same state, one compiled step gives the eager step's
losses and weights within float32 round-off: inductor fuses and reorders the reductions (measured on an AMD
EPYC: loss agrees to ~1e-6 relative; weights after the step differ by up to 0.2% of the step's largest weight
update with the native kernels and 1.7% of one tensor's own update under ONEDNN_MAX_CPU_ISA=AVX2: these tiny
models' gradients amplify round-off, as tests/test_packed.py measures; the test allows 5% of the largest). A wrong graph (a
missing penalty, a stale running mean, a dropped forward) changes the loss by O(1): the penalty alone is
several units of this loss. The first compile costs ~30-60 s on 2 cores, so this is the one compiled test."""
import shutil

import pytest
import torch

from bench.engine.opcount import ready_trainer
from conftest import tiny_config


REL_TOL = 5e-2  # of the step's largest weight update, as tests/test_packed.py states for batched kernels


@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
                    reason="torch.compile's CPU backend (inductor) needs a C++ compiler")
def test_compiled_step_computes_the_eager_step(tmp_path, monkeypatch):
    # a cache of its own: inductor's on-disk cache is not keyed by ATEN_CPU_CAPABILITY, so kernels compiled
    # earlier for another ISA setting fail to build (seen: `at::vec` undeclared under
    # ATEN_CPU_CAPABILITY=default after an AVX-512 run); this test always compiles afresh, as CI does
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch._dynamo.reset()
    torch.set_num_threads(2)
    cfg = tiny_config(tmp_path, regularizer="pixel_sim", width=0.25, reg_forward="grouped",  # the paper's forward
                      reg_params={"n_images": 128, "pairs_per_step": 8})
    eager, comp = ready_trainer(cfg), ready_trainer(cfg.replace(compile=True))
    assert comp.path.compiled and comp.loss_fn is not comp._loss_of
    comp.model.load_state_dict(eager.model.state_dict())
    before = {k: v.clone() for k, v in eager.model.state_dict().items()}
    eager.step()
    comp.step()
    le, lc = float(eager.running["loss"]), float(comp.running["loss"])
    ce_e, ce_c = float(eager.running["ce"]), float(comp.running["ce"])
    assert abs(le - lc) <= 1e-4 * abs(le) and abs(ce_e - ce_c) <= 1e-4 * abs(ce_e), (le, lc, ce_e, ce_c)
    assert abs((le - ce_e)) > 0.1  # the penalty is a real part of the loss compared
    se, sc = eager.model.state_dict(), comp.model.state_dict()
    weights = [k for k in se if se[k].is_floating_point() and "running" not in k]
    upd = max(float((se[k] - before[k]).abs().max()) for k in weights)  # the step's largest weight update
    for k in se:
        if k in weights:
            assert float((se[k] - sc[k]).abs().max()) <= REL_TOL * upd, (k, upd)
        elif se[k].is_floating_point():
            torch.testing.assert_close(sc[k], se[k], rtol=1e-4, atol=1e-6)
    # the regularizer's running means (mutated inside the compiled graph) moved as in eager
    for a, b in zip(eager.reg.state_dict().values(), comp.reg.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)

"""The similarity penalty on the fast path (bf16 autocast features, float32 similarity and loss) vs the plain
path, from the same weights and images (issue 30, item 3). Not a timing: prints a table for benchmarks/README.md.

g(S) = 2 atanh(S) has slope 2 / (1 - S^2), so a small rounding error in S_cnn near +-1 becomes a large one in
g(S_cnn); `pixel_th`'s targets sit exactly at +-1 (g = +-12.2). A width-0.25 ResNet18 trained 60 plain steps on
Fashion-MNIST (quick preset, pixel_th) scores three kinds of pairs: random regularization pairs (what training
draws), and near-duplicates (an image and a noisy copy: S_cnn -> 1), with targets +1, -1 and 0.

Run: OMP_NUM_THREADS=1 python benchmarks/fastpath_penalty_precision.py
"""
from __future__ import annotations

import copy
import tempfile

import torch

from bench.core.config import build_config
from bench.engine import step_path as bt
from bench.engine.opcount import ready_trainer
from regularizers.similarity import g_transform, similarity_loss


def main() -> None:
    torch.set_num_threads(1)
    cfg = build_config("quick", dict(out=tempfile.mkdtemp(), progress=False, regularizer="pixel_th", n_train=2000,
                                     reg_params={"n_images": 512, "pairs_per_step": 16}))
    t = ready_trainer(cfg)
    for _ in range(60):
        t.step()
    imgs = t.reg.images[:64].float() / 255
    torch.manual_seed(0)
    left = imgs[:32]
    print("| pairs | mean S_cnn (plain) | max abs dS | max abs d g(S) | target | penalty plain | fast | rel. diff |")
    print("|---|---|---|---|---|---|---|---|")
    for name, right in [("random", imgs[32:64]),
                        ("near-duplicate, noise 0.05", (left + 0.05 * torch.randn_like(left)).clamp(0, 1)),
                        ("near-duplicate, noise 0.01", (left + 0.01 * torch.randn_like(left)).clamp(0, 1))]:
        x = torch.cat([left, right])
        s = {}
        for pname, path in [("plain", bt.StepPath()), ("fast", bt.StepPath(True, True, torch.bfloat16))]:
            m, sim = copy.deepcopy(t.model), copy.deepcopy(t.reg.sim)
            m.train()
            bt.prepare_model(m, path)
            _, feats = bt.path_forward(m, x, path, features=True)
            s[pname] = sim(feats, update=False)[0].detach()
        sp, sf = s["plain"], s["fast"]
        dg = (g_transform(sp) - g_transform(sf)).abs().max()
        for tname, tv in (("+1", 1.0), ("-1", -1.0), ("0", 0.0)):
            tgt = torch.full_like(sp, tv)
            lp, lf = similarity_loss(sp, tgt).item(), similarity_loss(sf, tgt).item()
            print(f"| {name} | {sp.mean():.4f} | {(sp - sf).abs().max():.1e} | {dg:.3f} | {tname} | {lp:.3f} | "
                  f"{lf:.3f} | {abs(lp - lf) / lp:.1e} |")


if __name__ == "__main__":
    main()

"""gaussian_noise: accuracy under additive Gaussian noise of growing std on the [0, 1] scale.

The reference clamps each noisy image to that image's own [min, max] (default, `clamp="image"`);
`clamp="unit"` clamps to [0, 1] instead. One standard-normal draw per image (seeded by the suite
seed) is scaled by every std (common random numbers), so the accuracy curve is not blurred by
redrawing the noise at each std. Hand-written: adding noise is one line, no library needed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .base import EvalContext, SuiteTest, first_n, progress_bar, register_test


def _default_stds() -> list:
    return [round(float(s), 6) for s in torch.linspace(0, 0.1, 10)]


def add_noise(x: torch.Tensor, z: torch.Tensor, std: float, clamp: str = "image") -> torch.Tensor:
    """x + std * z, clamped per image to its own [min, max] ("image") or to [0, 1] ("unit")."""
    out = x + std * z
    if clamp == "image":
        flat = x.flatten(1)
        lo = flat.min(1).values.view(-1, *[1] * (x.dim() - 1))
        hi = flat.max(1).values.view(-1, *[1] * (x.dim() - 1))
        return torch.maximum(torch.minimum(out, hi), lo)
    if clamp == "unit":
        return out.clamp(0.0, 1.0)
    raise ValueError(f"clamp must be 'image' or 'unit', got {clamp!r}")


@register_test("gaussian_noise")
class GaussianNoise(SuiteTest):
    version = "1"

    @dataclass
    class Params:
        stds: list = field(default_factory=_default_stds)
        clamp: str = "image"  # image: each image's own [min, max] (reference) | unit: [0, 1]
        n: int | None = None  # first n test images (None: all)
        batch: int = 500

    def run(self, ctx: EvalContext) -> dict:
        p = self.params
        if p.clamp not in ("image", "unit"):
            raise ValueError(f"gaussian_noise: clamp must be 'image' or 'unit', got {p.clamp!r}")
        x, y = first_n(ctx, p.n)
        gen = torch.Generator(device=x.device).manual_seed(int(ctx.seed))
        correct = torch.zeros(len(p.stds), dtype=torch.long)
        nb = (len(x) + p.batch - 1) // p.batch
        with torch.no_grad(), progress_bar(ctx, nb * len(p.stds), "gaussian_noise") as bar:
            for i in range(0, len(x), p.batch):
                xb, yb = x[i:i + p.batch], y[i:i + p.batch]
                z = torch.randn(xb.shape, generator=gen, device=xb.device, dtype=xb.dtype)
                for k, s in enumerate(p.stds):
                    pred = ctx.model(add_noise(xb, z, float(s), p.clamp)).argmax(1)
                    correct[k] += int((pred == yb).sum())
                    bar.update(1)
        acc = (correct.double() / max(len(x), 1)).tolist()
        summary = {"mean_accuracy": sum(acc) / len(acc), "accuracy_max_std": acc[-1]}
        return {"summary": summary,
                "curves": {"accuracy": {"x": [float(s) for s in p.stds], "y": acc, "x_label": "noise std ([0,1] scale)",
                                        "y_label": "accuracy"}},
                "details": {"n_images": len(x), "clamp": p.clamp}}

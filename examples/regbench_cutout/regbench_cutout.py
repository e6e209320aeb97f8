"""Cutout (DeVries & Taylor 2017) as a RegBench plugin: a regularizer that transforms the task batch.

It is a separate distribution: the harness finds it through the entry-point group `regbench.regularizers`
declared in this folder's pyproject.toml, never by importing it itself. The only thing it writes is
`transform_batch`; the base class keeps the bookkeeping (the step budget, images processed, the cost of any
forward the hook runs through `step.model`, the record). Its randomness comes from `step.generator`, a
generator on the device seeded by (run seed, step), so a seed fixes it and the data order stays `none`'s.
"""
from dataclasses import dataclass

import torch

import regularizers


class Cutout(regularizers.Regularizer):
    """Each training image gets one `size` x `size` square, at a random centre, set to `fill`."""

    @dataclass
    class Params:
        size: int = 8
        fill: float = 0.5

    def __init__(self, **hp):
        super().__init__(**hp)
        if self.hp.size < 1 or not 0.0 <= self.hp.fill <= 1.0:
            raise ValueError(f"regularizer {self.name}: size must be >= 1 and fill in [0, 1], "
                             f"got {self.hp.size}, {self.hp.fill:g}")

    def transform_batch(self, x, y, step):
        n, _, h, w = x.shape
        g = step.generator
        cy = torch.randint(0, h, (n, 1, 1), generator=g, device=x.device)
        cx = torch.randint(0, w, (n, 1, 1), generator=g, device=x.device)
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        half = self.hp.size // 2
        hole = ((rows - cy).abs() <= half) & ((cols - cx).abs() <= half)  # [n, h, w]
        return torch.where(hole.unsqueeze(1), torch.full_like(x, self.hp.fill), x)

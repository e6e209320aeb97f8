"""The `none` entry: no penalty, no extra images (the baseline of every comparison)."""
from dataclasses import dataclass

import torch

from .base import Regularizer
from .registry import register


@register("none")
class NoRegularizer(Regularizer):
    @dataclass
    class Params:
        alpha: float = 0.0

    @property
    def active(self) -> bool:
        return False

    def penalty(self, feats, batch):
        return torch.zeros((), device=feats[0].device if feats else None)

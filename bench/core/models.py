"""Architecture registry. The default is the reference ResNet18 of Li et al. / Attias et al.

Reference variant: a 7x7 stride-1 stem with no max-pool, four stages of two basic blocks with
64-128-256-512 channels (times a width multiplier), global average pooling and a linear head.
Every model takes images in [0, 1] and applies its own named input scaling, so attacks and
corruptions always work on [0, 1] images. `forward(x, features=True)` also returns the stem and
the four stage outputs, so a regularizer gets them without a second forward pass.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.core.registry import Registry

MODELS = Registry("architecture", "regbench.models", label="valid")
register_model = MODELS.register
available_models = MODELS.names


def create_model(name: str, **kw) -> nn.Module:
    return MODELS[name](**kw)


class _GroupedBN:
    """A BatchNorm's forward that, while its `BatchNormGroups` has sizes, normalises each consecutive group
    of the batch with that group's own statistics and updates the running statistics once per group, in
    order: exactly what separate forwards of the groups do to a batch-norm layer (every other layer of a
    CNN treats images independently). Without sizes (validation, evaluation, a batch of another size) it is
    the layer's own forward."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, groups: "BatchNormGroups"):
        self.bn, self.groups = bn, groups

    def __call__(self, x):
        bn, sizes = self.bn, self.groups.sizes
        if sizes is None or not bn.training or not bn.track_running_stats or x.shape[0] != sum(sizes):
            return type(bn).forward(bn, x)
        outs = []
        for part in x.split(sizes):
            bn.num_batches_tracked.add_(1)
            momentum = (1.0 / float(bn.num_batches_tracked)) if bn.momentum is None else bn.momentum
            outs.append(F.batch_norm(part, bn.running_mean, bn.running_var, bn.weight, bn.bias, True, momentum,
                                     bn.eps))
        return torch.cat(outs)


class BatchNormGroups:
    """Per-group batch statistics for every batch norm of `model`: with `sizes = [64, 16, 16]`,
    `model(torch.cat([a, b, c]))` gives what three separate forwards of a, b and c give (per-group batch
    statistics, three running-statistics updates in order) in one forward, one launch per convolution
    instead of one per group; with `sizes = None` the model is plain. Installed once (the layers' forwards
    are wrapped, their state dicts untouched), switched by an attribute, so torch.compile can trace it."""

    def __init__(self, model: nn.Module):
        self.sizes: list[int] | None = None
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.forward = _GroupedBN(m, self)


class InputScaling(nn.Module):
    """Maps [0, 1] images to the network's input convention.

    reference: 5 * (x - 0.5) (the reference code); meanstd: (x - mean) / std; none: identity."""

    def __init__(self, kind: str = "reference", mean=None, std=None, channels: int = 1):
        super().__init__()
        self.kind = kind
        mean = torch.as_tensor(mean if mean is not None else [0.5] * channels, dtype=torch.float32)
        std = torch.as_tensor(std if std is not None else [0.25] * channels, dtype=torch.float32)
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)

    def forward(self, x):
        if self.kind == "reference":
            return 5.0 * (x - 0.5)
        if self.kind == "meanstd":
            return (x - self.mean) / self.std
        return x

    def extra_repr(self):
        return self.kind


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with a stride-1 7x7 stem (no max-pool); `stage_channels` per stage."""

    def __init__(self, blocks=(2, 2, 2, 2), width: float = 1.0, in_channels: int = 1,
                 num_classes: int = 10, input_scaling: str = "reference", mean=None, std=None):
        super().__init__()
        base = max(1, int(round(64 * width)))
        chans = [base * 2 ** i for i in range(4)]
        self.stage_channels = chans
        self.scaling = InputScaling(input_scaling, mean, std, in_channels)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, base, 7, 1, 3, bias=False),
                                  nn.BatchNorm2d(base), nn.ReLU(inplace=True))
        stages, cin = [], base
        for i, (n, c) in enumerate(zip(blocks, chans)):
            layers = []
            for j in range(n):
                layers.append(BasicBlock(cin, c, 2 if (i > 0 and j == 0) else 1))
                cin = c
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.linear = nn.Linear(cin, num_classes)
        self.feature_names = ["stem", "stage1", "stage2", "stage3", "stage4"]

    def forward(self, x, features: bool = False):
        h = self.stem(self.scaling(x))
        feats = [h]
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        # the global average pool as a mean: F.adaptive_avg_pool2d's backward has no deterministic CUDA kernel
        logits = self.linear(h.mean((2, 3)))
        return (logits, feats) if features else logits


@register_model("resnet18")
def resnet18(**kw) -> ResNet:
    return ResNet((2, 2, 2, 2), **kw)


@register_model("resnet34")
def resnet34(**kw) -> ResNet:
    return ResNet((3, 4, 6, 3), **kw)


def model_from_config(cfg, channels: int, num_classes: int) -> nn.Module:
    """The model a RunConfig describes."""
    return create_model(cfg.arch, width=cfg.width, in_channels=channels, num_classes=num_classes,
                        input_scaling=cfg.input_scaling)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

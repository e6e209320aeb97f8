"""Data path: one epoch of batched augmentation on uint8 tensors (what the trainer does) vs a
per-image torchvision DataLoader (PIL image -> RandomCrop(32, padding=4, reflect) ->
RandomHorizontalFlip -> ToTensor, as the reference code's CIFAR loader), over the same uint8 images
and the same batch size. Goal: >= 10x on CPU."""
from __future__ import annotations

import numpy as np
import torch
from conftest import record

from bench.core import data as bdata

BATCH = 64
GOAL = 10.0


class PerImageDataset(torch.utils.data.Dataset):
    """torchvision-style dataset: a uint8 HxW(xC) array per image, PIL transforms per item."""

    def __init__(self, x_uint8: torch.Tensor, transform):
        arr = x_uint8.permute(0, 2, 3, 1).numpy()
        self.arr = arr[..., 0] if arr.shape[-1] == 1 else arr
        self.transform = transform

    def __len__(self):
        return len(self.arr)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(np.ascontiguousarray(self.arr[i]))), 0


def test_data_path_epoch(paired, benchmark, fmnist_uint8):
    import torchvision.transforms as T
    x, source = fmnist_uint8
    n = len(x)
    tf = T.Compose([T.RandomCrop(32, padding=4, padding_mode="reflect"), T.RandomHorizontalFlip(), T.ToTensor()])
    loader = torch.utils.data.DataLoader(PerImageDataset(x, tf), batch_size=BATCH, shuffle=True, num_workers=0)

    def reference():
        for xb, _ in loader:
            pass
        return xb

    def fast():
        gen = torch.Generator().manual_seed(0)
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, BATCH):
            xb = bdata.batch_crop_flip(bdata.to_float(x[perm[i:i + BATCH]]), pad=4, flip=True, generator=gen)
        return xb

    # same output convention: float [0, 1], same shape, same pixel values up to the crop/flip draw
    a, b = fast(), reference()
    assert a.shape[1:] == b.shape[1:] and a.dtype == b.dtype and 0 <= float(a.min()) and float(a.max()) <= 1
    ratio, f, r = paired(fast, reference, rounds=3)
    record(benchmark, "data_path_epoch_speedup", ratio, goal=f">= {GOAL:g}x on CPU", met=ratio >= GOAL,
           fast_s=round(f, 4), reference_s=round(r, 4), images=n, batch=BATCH, data=source,
           reference_loader="torchvision DataLoader, num_workers=0, PIL per image")

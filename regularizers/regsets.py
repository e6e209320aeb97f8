"""Regularization image sets: which N images the similarity regularizers use, frozen once.

As the reference code does: the first N images of a dataset's training split (default: the task's
own training set, i.e. the first N of the run's training subset), converted to the task's colour
and size, augmented ONCE the way the reference augments that dataset (CIFAR: random crop with
4-px reflect padding + horizontal flip; MNIST family and folders: none), then frozen. The
augmentation is seeded by the run's `data_seed`, which every seed of a comparison shares, so the
regularization set and its targets are identical across seeds and their cache is reused.

Also: a small on-disk cache (`cached_tensors`) keyed by a content hash, for target embeddings
that are expensive to compute (the V1 model's responses over 5000 images).
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch

from bench.core.config import resolve_augment  # one rule for task and regularization sets


def load_reg_images(reg_dataset: str, n_images: int, *, config, task_data=None, augment: str = "auto",
                    seed: int = 0) -> tuple[torch.Tensor, dict]:
    """(uint8 images [N, C, H, W] on the CPU, description) of a regularization set.

    reg_dataset: "task" (the run's own training images), a registered dataset name (its training
    split through `bench.core.data.load_raw`), "folder:PATH", or an array file ("npz:PATH", or the
    "npz:sha256=<hex>" a RunConfig makes of it, found through `config.data_files`). Fewer available images than asked
    for is allowed (with a warning); the description records the number used."""
    from bench.core import data as bdata
    if n_images < 2:
        raise ValueError(f"n_images must be >= 2, got {n_images}")
    if reg_dataset == "task":
        if task_data is None:
            raise ValueError("reg_dataset='task' needs the task's data")
        source = config.dataset
        x = task_data.train_x[:n_images].cpu()
    else:
        source = reg_dataset
        x = bdata.load_raw(reg_dataset, getattr(config, "data_dir", None), getattr(config, "download", True),
                           files=getattr(config, "data_files", None))[0]
        x = bdata.fit_size(bdata.convert_color(x[:n_images], config.color), config.image_size).contiguous()
    if len(x) < n_images:
        warnings.warn(f"regularization set {reg_dataset!r} has {len(x)} images, fewer than n_images={n_images}; "
                      f"using {len(x)}", stacklevel=2)
    if len(x) < 2:
        raise ValueError(f"regularization set {reg_dataset!r} has fewer than 2 images")
    aug = resolve_augment(augment, "folder" if source.startswith("folder:") else source,
                          getattr(config, "data_files", None))
    if aug == "crop_flip":
        g = torch.Generator().manual_seed(int(seed) * 7919 + 17)
        x = bdata.batch_crop_flip(x, pad=4, flip=True, generator=g)  # exact on uint8 (gather only)
    desc = {"reg_dataset": reg_dataset, "source": source, "n_images": len(x), "augment": aug, "seed": int(seed),
            "color": config.color, "image_size": config.image_size, "sha256": tensor_digest(x)}
    return x.contiguous(), desc


def tensor_digest(t: torch.Tensor) -> str:
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(str((t.dtype, tuple(t.shape))).encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cache_key(*parts) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def cached_tensors(cache_dir, key: str, compute, log=None) -> dict[str, torch.Tensor]:
    """Load a dict of tensors cached under `cache_dir/similarity/<key>.pt`, or compute and save it
    (atomically). No cache_dir: just compute. A damaged cache file is recomputed."""
    from bench.core import store
    if cache_dir is None:
        return compute()
    path = Path(cache_dir) / "similarity" / f"{key}.pt"
    if path.is_file():
        try:
            return store.load_state(path)
        except store.CorruptCheckpoint:
            pass
    out = compute()
    store.atomic_torch_save(path, {k: v.detach().cpu() for k, v in out.items()})
    if log:
        log(f"[regbench] cached similarity targets in {path}")
    return out

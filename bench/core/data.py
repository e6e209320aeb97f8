"""Datasets held as uint8 tensors (airbench style) with batched augmentation.

Every dataset loads into one `DataBundle` of uint8 tensors `[N, C, H, W]` at the model's input
size, which can live on the training device; augmentation (random crop with padding, horizontal
flip) is done for a whole batch at once with tensor indexing instead of per-image PIL transforms.

CIFAR-10/100 come through torchvision (which downloads when online). Fashion-MNIST and MNIST
come through torchvision's folder layout or, offline, from Debian's `dataset-fashion-mnist`
(`/usr/share/datasets/fashion-mnist`). Those are gzipped IDX files, which torchvision's MNIST
class does not read from an arbitrary folder, so a 15-line IDX reader lives here.
Array files (`npz:PATH`) are read by `bench.core.arrays`.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench.core import arrays
from bench.core.device import to_device
from bench.core.registry import Registry

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_DATA_DIR = Path(os.environ.get("REGBENCH_DATA", Path.home() / ".cache" / "regbench" / "data"))


class DatasetNotFound(FileNotFoundError):
    """Raised with a message that says where we looked and how to get the files."""


@dataclass
class DataBundle:
    name: str
    color: str
    num_classes: int
    train_x: torch.Tensor  # uint8 [N, C, H, W]
    train_y: torch.Tensor  # int64 [N]
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # what the record's `data` section adds (an npz file's sha256, ...)

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    def to(self, device) -> "DataBundle":
        kw = {k: (getattr(self, k).to(device) if isinstance(getattr(self, k), torch.Tensor) else getattr(self, k))
              for k in self.__dataclass_fields__}
        return DataBundle(**kw)


# --------------------------------------------------------------------------- registry
DATASETS = Registry("dataset", "regbench.datasets", label="valid datasets")


def register_dataset(name: str, num_classes: int):
    """`@register_dataset("name", num_classes)` on a loader `(root, download) -> (train_x, train_y, test_x,
    test_y)` (uint8 / int64 tensors at native size and colour)."""
    def deco(fn):
        fn.num_classes = int(num_classes)
        DATASETS.register(name, fn)
        return fn
    return deco


def available_datasets(pattern: str = "*") -> list[str]:
    return DATASETS.names(pattern)


def num_classes(name: str, default: int = 1) -> int:
    """Number of classes of a registered dataset (`default` for folders and unknown names)."""
    return int(getattr(DATASETS.get(name, None), "num_classes", default))


def _read_idx_gz(path: Path) -> np.ndarray:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_idx(dirs: list[Path], stem: str) -> Path | None:
    for d in dirs:
        for suffix in ("", ".gz"):
            p = d / (stem + suffix)
            if p.is_file():
                return p
    return None


def _load_mnist_family(tv_name: str, data_dir: Path, download: bool, extra_dirs=()) -> tuple:
    dirs = [data_dir / tv_name / "raw", data_dir / tv_name, data_dir, *extra_dirs]
    found = {split: [_find_idx(dirs, s) for s in stems] for split, stems in _IDX_FILES.items()}
    if not all(p for ps in found.values() for p in ps):
        if download:
            import torchvision
            cls = getattr(torchvision.datasets, tv_name)
            try:
                cls(str(data_dir), train=True, download=True)
                cls(str(data_dir), train=False, download=True)
            except Exception as e:  # offline: turn into the helpful error below
                _raise_missing(tv_name, dirs, e)
            return _load_mnist_family(tv_name, data_dir, False, extra_dirs)
        _raise_missing(tv_name, dirs, None)
    out = []
    for split in ("train", "test"):
        xi, yi = found[split]
        x = torch.from_numpy(_read_idx_gz(xi).copy())[:, None]
        y = torch.from_numpy(_read_idx_gz(yi).astype(np.int64))
        out += [x, y]
    return tuple(out)


def _raise_missing(name, dirs, err):
    hint = {
        "FashionMNIST": "install Debian's package (`apt-get install dataset-fashion-mnist`), or run once "
                        "online so torchvision downloads it, or copy the four *-ubyte(.gz) files into "
                        "DATA_DIR/FashionMNIST/raw",
        "MNIST": "run once online so torchvision downloads it, or copy the four *-ubyte(.gz) files "
                 "into DATA_DIR/MNIST/raw",
        "CIFAR10": "run once online (downloads automatically), or download cifar-10-python.tar.gz "
                   "from https://www.cs.toronto.edu/~kriz/cifar.html and extract it into DATA_DIR",
        "CIFAR100": "run once online (downloads automatically), or download cifar-100-python.tar.gz "
                    "from https://www.cs.toronto.edu/~kriz/cifar.html and extract it into DATA_DIR",
    }[name]
    looked = ", ".join(str(d) for d in dirs)
    msg = f"dataset {name} not found; looked in: {looked}. To get it: {hint} (DATA_DIR is --data-dir)."
    if err is not None:
        msg += f" Download failed: {type(err).__name__}: {err}"
    raise DatasetNotFound(msg)


@register_dataset("fashion_mnist", 10)
def _fashion(data_dir: Path, download: bool):
    return _load_mnist_family("FashionMNIST", data_dir, download, extra_dirs=[DEBIAN_FASHION_MNIST])


@register_dataset("mnist", 10)
def _mnist(data_dir: Path, download: bool):
    return _load_mnist_family("MNIST", data_dir, download)


def _load_cifar(cls_name: str, folder: str, data_dir: Path, download: bool):
    import torchvision
    cls = getattr(torchvision.datasets, cls_name)
    where = data_dir / folder
    try:
        tr = cls(str(data_dir), train=True, download=download and not where.is_dir())
        te = cls(str(data_dir), train=False, download=False)
    except Exception as e:  # RuntimeError "Dataset not found" or a network error
        _raise_missing(cls_name, [where], e)
    out = []
    for ds in (tr, te):
        x = torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        y = torch.as_tensor(ds.targets, dtype=torch.int64)
        out += [x, y]
    return tuple(out)


@register_dataset("cifar10", 10)
def _cifar10(data_dir: Path, download: bool):
    return _load_cifar("CIFAR10", "cifar-10-batches-py", data_dir, download)


@register_dataset("cifar100", 100)
def _cifar100(data_dir: Path, download: bool):
    return _load_cifar("CIFAR100", "cifar-100-python", data_dir, download)


# --------------------------------------------------------------------------- conversion
def convert_color(x: torch.Tensor, color: str) -> torch.Tensor:
    """uint8 [N,C,H,W] -> gray (ITU-R 601 luma, as torchvision) or rgb (gray repeated)."""
    c = x.shape[1]
    if color == "gray":
        if c == 1:
            return x
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (x.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    if color == "rgb":
        return x if c == 3 else x.expand(-1, 3, -1, -1).contiguous()
    raise ValueError(f"color must be gray or rgb, got {color!r}")


def fit_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad smaller images to `size` (28 -> 32 for the MNIST family) or resize larger ones."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if h <= size and w <= size:
        top, left = (size - h) // 2, (size - w) // 2
        return torch.nn.functional.pad(x, (left, size - w - left, top, size - h - top))
    y = torch.nn.functional.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True,
                                        align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8)


def split_indices(n_total: int, n_train: int | None, val_fraction: float, seed: int):
    """Seeded split of the training set into (train subset, validation) index tensors."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n_total, generator=g)
    n_tr = n_total if n_train is None else min(n_train, n_total)
    n_val = max(1, math.ceil(val_fraction * n_tr))
    if n_train is None:
        n_tr = n_total - n_val
    if n_val + n_tr > n_total:
        n_tr = n_total - n_val
    return perm[n_val:n_val + n_tr], perm[:n_val]


_HAS_FALLBACK = {"fashion_mnist"}  # datasets also read from a system copy (Debian's package)


def load_raw(name: str, data_dir=None, download: bool = True, files: dict | None = None):
    """(train_x, train_y, test_x, test_y) as uint8/int64 tensors at native size and colour (`files`: the
    array files of `npz:sha256=` names, RunConfig.data_files)."""
    if arrays.is_npz(name):
        return arrays.load_npz(name, files)[:4]
    if name.startswith("folder:"):
        x = load_image_folder(name.split(":", 1)[1])
        y = torch.zeros(len(x), dtype=torch.int64)
        return x, y, x[:0], y[:0]
    if name not in DATASETS:
        raise ValueError(f"{DATASETS.unknown(name)} (or folder:/path/to/images, npz:/path/to/arrays.npz)")
    if data_dir and name in _HAS_FALLBACK and not Path(data_dir).expanduser().is_dir():
        # an explicit folder that is not there is a typo, not a reason to read another copy of the data
        # (datasets without a fallback copy report the folders they looked in, or download into it)
        raise DatasetNotFound(f"--data-dir {data_dir} does not exist (or is not a folder); give the folder that "
                              f"holds the {name} files, or leave --data-dir out to use the default locations")
    root = Path(data_dir).expanduser() if data_dir else DEFAULT_DATA_DIR
    return DATASETS[name](root, download)


def test_subset(n_total: int, n_test: int | None, data_seed: int) -> torch.Tensor:
    """Indices (into the full test split) of the `n_test` test images a config evaluates: a permutation
    seeded by `data_seed` only, so every seed and regularizer of a comparison sees the same images."""
    if n_test is None or n_test >= n_total:
        return torch.arange(n_total)
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(int(data_seed) + 1))[:n_test]


def natively_rgb(name: str, files: dict | None = None) -> bool:
    """The dataset's own images are colour: CIFAR, or an array file of 32x32 colour images (`arrays.cifar_like`):
    a grayscale task on them is corrupted in RGB, then converted."""
    return str(name).startswith("cifar") or (arrays.is_npz(name) and arrays.cifar_like(name, files))


def load_for_config(cfg) -> "DataBundle":
    """The task data a RunConfig describes (its subset, split, colour and size). A preset's own n_train /
    n_test may exceed an array file (then the whole split, said: `arrays.check_sizes`); a value set by hand may
    not."""
    from bench.core.config import PRESETS
    preset = PRESETS.get(cfg.preset or "", {})
    from_preset = tuple(k for k in ("n_train", "n_test") if k in preset and preset[k] == getattr(cfg, k))
    return load(cfg.dataset, color=cfg.color, image_size=cfg.image_size, n_train=cfg.n_train,
                n_test=cfg.n_test, val_fraction=cfg.val_fraction, data_seed=cfg.effective_data_seed,
                data_dir=cfg.data_dir, download=cfg.download, files=cfg.data_files, from_preset=from_preset)


def load(name: str, color: str = "gray", image_size: int = 32, n_train: int | None = None,
         n_test: int | None = None, val_fraction: float = 0.01, data_seed: int = 0,
         data_dir=None, download: bool = True, files: dict | None = None, from_preset=()) -> DataBundle:
    """The task data of dataset `name`: its training subset (`n_train`) with a seeded validation split, its test
    subset (`n_test`), in `color` at `image_size`. `files`/`from_preset`: array files (`bench.core.arrays`)."""
    meta, k = {}, None
    if arrays.is_npz(name):
        trx, try_, tex, tey, info = arrays.load_npz(name, files)
        n_train, n_test, meta = arrays.check_sizes(info["path"], len(trx), len(tex), n_train, n_test,
                                                   val_fraction, from_preset)
        meta, k = {"file": info["file"], "sha256": info["sha256"], **meta}, info["num_classes"]
    else:
        trx, try_, tex, tey = load_raw(name, data_dir, download)
    n_classes = int(torch.unique(try_).numel()) if len(try_) else 0
    if n_classes < 2:
        raise ValueError(f"dataset {name!r} has {n_classes} class(es) in its training images; a task needs at least 2"
                         + (" (a folder: dataset has no labels: use it as a regularization set, "
                            "--set reg_params.reg_dataset=folder:PATH)" if name.startswith("folder:") else ""))
    if len(tex) == 0:
        raise ValueError(f"dataset {name!r} has 0 test images; a task needs a test set to be evaluated")
    if n_train is not None and n_train < 1:
        raise ValueError(f"n_train must be >= 1, got {n_train}")
    if n_test is not None and n_test < 1:
        raise ValueError(f"n_test must be >= 1, got {n_test}")
    tr_idx, va_idx = split_indices(len(trx), n_train, val_fraction, data_seed)

    def prep(x):
        return fit_size(convert_color(x, color), image_size).contiguous()

    if n_test is not None and n_test < len(tex):
        te_idx = test_subset(len(tex), n_test, data_seed)
        tex, tey = tex[te_idx], tey[te_idx]
    return DataBundle(name=name, color=color, num_classes=num_classes(name) if k is None else k,
                      train_x=prep(trx[tr_idx]), train_y=try_[tr_idx],
                      val_x=prep(trx[va_idx]), val_y=try_[va_idx],
                      test_x=prep(tex), test_y=tey, meta=meta)


def load_image_folder(path, size: int | None = None) -> torch.Tensor:
    """All images in a folder (sorted by name) as uint8 RGB [N,3,H,W]; resized to `size` if given
    (else they must share one size)."""
    from PIL import Image
    root = Path(path)
    exts = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in exts) if root.is_dir() else []
    if not files:
        raise DatasetNotFound(f"no images ({', '.join(sorted(exts))}) found in folder {root}")
    imgs = []
    for p in files:
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                if size is not None:
                    im = im.resize((size, size), Image.BILINEAR)
                imgs.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            detail = " ".join(str(e).split())[:160]
            raise ValueError(f"cannot read image {p} in folder {root} ({type(e).__name__}: {detail}); "
                             "remove or replace the file") from None
    shapes = {tuple(t.shape) for t in imgs}
    if len(shapes) > 1:
        raise ValueError(f"images in {root} have different sizes {sorted(shapes)[:3]}...; pass a size")
    return torch.stack(imgs)


# --------------------------------------------------------------------------- augmentation
def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [0, 1]."""
    return x.float().div_(255.0)


def draw_crop_flip(n: int, pad: int = 4, flip: bool = True, generator=None) -> tuple:
    """The random part of `batch_crop_flip` for n images, on the host from `generator` (CPU): row offsets,
    column offsets (each in [0, 2*pad]) and flip flags (None without flips), in the order
    `batch_crop_flip` draws them, so drawing ahead (a whole epoch at once) gives the same numbers."""
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device="cpu")
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device="cpu")
    f = (torch.rand(n, generator=generator, device="cpu") < 0.5) if flip else None
    return oy, ox, f


def apply_crop_flip(x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, f: torch.Tensor | None = None,
                    pad: int = 4, padding_mode: str = "reflect") -> torch.Tensor:
    """Crop each image of `x` at offsets (oy, ox) of its `pad`-padded copy and flip where `f`: one gather on
    x's device (the draws are moved there; on CUDA without a host sync)."""
    n, c, h, w = x.shape
    dev = x.device
    xp = torch.nn.functional.pad(x.float() if padding_mode == "reflect" else x, (pad, pad, pad, pad),
                                 mode=padding_mode)
    if padding_mode == "reflect":
        xp = xp.to(x.dtype)
    oy, ox = to_device(oy, dev), to_device(ox, dev)
    ar_h = torch.arange(h, device=dev)
    ar_w = torch.arange(w, device=dev)
    rows = (oy[:, None] + ar_h[None, :])  # [n, h]
    cols = (ox[:, None] + ar_w[None, :])  # [n, w]
    if f is not None:
        cols = torch.where(to_device(f, dev)[:, None], cols.flip(1), cols)
    bi = torch.arange(n, device=dev)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # [n, h, w, c]
    return out.permute(0, 3, 1, 2).contiguous()


def batch_crop_flip(x: torch.Tensor, pad: int = 4, flip: bool = True, generator=None,
                    padding_mode: str = "reflect") -> torch.Tensor:
    """Random crop with `pad`-pixel padding and random horizontal flip of a whole batch at once.

    Works on any dtype/device; one gather instead of a Python loop over images. The offsets and flips
    are drawn on the host (`draw_crop_flip`), so the result does not depend on the device."""
    oy, ox, f = draw_crop_flip(x.shape[0], pad, flip, generator)
    return apply_crop_flip(x, oy, ox, f, pad, padding_mode)

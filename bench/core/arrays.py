"""Array datasets: `--dataset npz:PATH`, a NumPy `.npz` archive with `x_train`, `y_train`, `x_test`, `y_test`.

Why a file format of our own: real data that no torchvision class reads (the shared CIFAR-10 prefix, a
subset someone cut, a data set converted elsewhere) should train through the same harness without a loader
plugin. The archive is read with `np.load(path, allow_pickle=False)`: a file never executes anything.

What a file must hold (each problem is one ValueError line naming the file):
- `x_train`, `x_test`: uint8 images, `[N, H, W, C]` (HWC) or `[N, C, H, W]` (CHW) with C 1 or 3, or `[N, H, W]`
  (one channel). The layout is read from which axis has 1 or 3 entries; when both do (3x3 images) it is HWC,
  NumPy's and CIFAR's own layout.
- `y_train`, `y_test`: integer labels `[N]`, one per image, >= 0. The number of classes is the optional scalar
  `num_classes` key (or the length of an optional string array `classes`), else max label + 1 over both splits.
- no empty split.
Sizes and colours follow the built-in datasets (`bench.core.data.load`): images of another size than
`image_size` are zero-padded when smaller and resized (bilinear, antialiased) when larger (`fit_size`); a
1-channel file with `color=rgb` is replicated to 3 channels and a 3-channel one with `color=gray` becomes
ITU-R 601 luma (`convert_color`).

Identity, not location. A record names its data by the file's content: a config's `npz:PATH` becomes
`npz:sha256=<hex>` as the RunConfig is made (`canonical`), and the path goes into `RunConfig.data_files`
({sha256: path}), a field outside the hash that config.json stores relative to the record (as `out`). So two
records are comparable only when they read the same bytes, a copy of the file in another folder gives the same
run hash, and no record holds a path of the machine that made it. Reading a record back (resume, `bench
evaluate`, sweeps, `bench reproduce`) finds the file there again, or, when it moved, at any path this process
has hashed (give `--dataset npz:NEWPATH` again: the same record); a file whose bytes changed is refused.

`n_train` / `n_test` larger than the file holds (`check_sizes`): an error that says both numbers, unless the
value is the preset's own default (presets are sized for the built-in data sets: `--preset quick` asks for
10000 training images, the CIFAR-10 prefix holds 5085); then the whole file is used and the clamp is said in
the log and in the record (`data.n_train_requested`, `data.n_train`, `data.notes`).
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import zipfile
from pathlib import Path

import numpy as np

PREFIX = "npz:"
CANON = "npz:sha256="
KEYS = ("x_train", "y_train", "x_test", "y_test")
_HEX = re.compile(r"[0-9a-f]{64}")
_SHA_CACHE: dict[tuple, str] = {}  # (resolved path, mtime_ns, size) -> sha256: a file is hashed once per change
_GEOMETRY: dict[str, tuple] = {}  # sha256 -> (channels, height, width) of x_train
_KNOWN: dict[str, str] = {}  # sha256 -> a path this process hashed to it (a record whose file moved finds it here)


class NpzError(ValueError):
    """A one-line problem with an array file (the CLI prints it as it is)."""


class NpzNotFound(FileNotFoundError, ValueError):
    """The array file is not where the dataset name (or the record) says; the message says where it looked."""


def is_npz(name) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def file_sha256(path) -> str:
    """sha256 of a file's bytes, cached per (path, mtime, size) so repeated loads do not re-read it."""
    p = Path(path).expanduser().resolve()
    st = p.stat()
    key = (str(p), st.st_mtime_ns, st.st_size)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    _KNOWN.setdefault(_SHA_CACHE[key], str(p))
    return _SHA_CACHE[key]


def canonical(name: str, files: dict | None) -> tuple[str, dict | None]:
    """(`npz:sha256=<hex>`, files with that hex -> the absolute path) for `npz:PATH`; other names unchanged.
    What RunConfig does to its `dataset` and `reg_params.reg_dataset` as it is made."""
    if not is_npz(name) or name.startswith(CANON):
        return name, files
    p = _existing(name[len(PREFIX):])
    sha = file_sha256(p)
    return CANON + sha, {**(files or {}), sha: str(p)}


def _existing(text: str) -> Path:
    if not text.strip():
        raise NpzError("dataset npz: needs a path, e.g. --dataset npz:data/my_images.npz")
    p = Path(text).expanduser()
    if not p.is_file():
        raise NpzNotFound(f"npz dataset file not found: {text} (looked at {p.resolve()}, from the current folder "
                          f"{Path.cwd()}); give the path of an .npz file with {', '.join(KEYS)}")
    return p.resolve()


def path_of(name: str, files: dict | None = None) -> Path:
    """The file a dataset name reads: `npz:PATH` directly; `npz:sha256=<hex>` through `files` (checked to
    still hold those bytes), else a path this process hashed to it."""
    if not name.startswith(CANON):
        return _existing(name[len(PREFIX):])
    sha = name[len(CANON):]
    if not _HEX.fullmatch(sha):
        raise NpzError(f"dataset {name}: not a sha256 (64 lowercase hex digits); use npz:PATH")
    looked = []
    for cand in [(files or {}).get(sha), _KNOWN.get(sha)]:
        if cand and cand not in looked:
            looked.append(cand)
            if Path(cand).is_file() and file_sha256(cand) == sha:
                return Path(cand).resolve()
    where = "; ".join(f"{c} ({'other bytes' if Path(c).is_file() else 'absent'})" for c in looked) or "no path known"
    raise NpzNotFound(f"npz dataset with sha256 {sha} not found (looked at: {where}); give the file again with "
                      "--dataset npz:PATH (the same bytes make the same record, wherever they lie)")


def _open(path: Path) -> dict:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise NpzError(f"cannot read {path} as an .npz archive ({type(e).__name__}: {_short(e)})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise NpzError(f"{path} is a single .npy array, not an .npz archive with {', '.join(KEYS)}")
    with z:
        missing = [k for k in KEYS if k not in z.files]
        if missing:
            raise NpzError(f"{path} has no {', '.join(missing)}; it holds {', '.join(z.files) or 'no arrays'} "
                           f"(needed: {', '.join(KEYS)})")
        try:
            return {k: z[k] for k in z.files if k in KEYS + ("num_classes", "classes")}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:  # object arrays (pickles), damage
            raise NpzError(f"cannot read {path} as an .npz archive ({type(e).__name__}: {_short(e)})") from None


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:160]


def _images(path: Path, key: str, x: np.ndarray) -> np.ndarray:
    """uint8 [N, C, H, W] from HWC, CHW or [N, H, W] (see the module's docstring for the rule)."""
    if x.dtype != np.uint8:
        raise NpzError(f"{path}: {key} has dtype {x.dtype}; images must be uint8 (0-255)")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif not (x.ndim == 4 and x.shape[1] in (1, 3)):
        raise NpzError(f"{path}: {key} has shape {x.shape}; images must be [N, H, W, C] or [N, C, H, W] with C 1 "
                       "or 3, or [N, H, W]")
    if len(x) == 0:
        raise NpzError(f"{path}: {key} is empty (0 images); both splits need images")
    return np.ascontiguousarray(x)


def _labels(path: Path, key: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise NpzError(f"{path}: {key} has dtype {y.dtype}; labels must be integers")
    if y.ndim != 1:
        raise NpzError(f"{path}: {key} has shape {y.shape}; labels must be one integer per image, shape [N]")
    if len(y) != n:
        raise NpzError(f"{path}: {key} has {len(y)} labels but x_{key[2:]} has {n} images")
    if len(y) and int(y.min()) < 0:
        raise NpzError(f"{path}: {key} has a negative label ({int(y.min())}); labels must be 0 .. classes-1")
    return y.astype(np.int64)


def _num_classes(path: Path, arrs: dict, ys: list) -> tuple[int, list]:
    """(classes, class names): declared by `num_classes` / `classes`, else max label + 1."""
    top = max(int(y.max()) for y in ys) + 1
    names = []
    if "classes" in arrs:
        c = arrs["classes"]
        if c.ndim != 1 or c.dtype.kind not in "US":
            raise NpzError(f"{path}: classes must be a 1-D array of names (strings), got {c.dtype} {c.shape}")
        names = [str(s) for s in c.tolist()]
    declared = len(names) or None
    if "num_classes" in arrs:
        k = arrs["num_classes"]
        if k.ndim != 0 or not np.issubdtype(k.dtype, np.integer) or int(k) < 1:
            raise NpzError(f"{path}: num_classes must be one positive integer, got {k.dtype} {k.shape}")
        if declared is not None and declared != int(k):
            raise NpzError(f"{path}: num_classes is {int(k)} but classes names {declared}")
        declared = int(k)
    if declared is not None and top > declared:
        raise NpzError(f"{path}: a label is {top - 1}, out of range for the file's {declared} classes "
                       f"(labels must be 0 .. {declared - 1})")
    return declared or top, names


def load_npz(name: str, files: dict | None = None) -> tuple:
    """(train_x, train_y, test_x, test_y, info) of an array dataset: uint8 [N, C, H, W] / int64 [N] tensors at
    the file's size and colour, every rule of the module's docstring checked; info = {file, path, sha256,
    num_classes, classes} (`path` for messages only: records keep `file` and `sha256`)."""
    import torch
    path = path_of(name, files)
    arrs = _open(path)
    xtr, xte = _images(path, "x_train", arrs["x_train"]), _images(path, "x_test", arrs["x_test"])
    ytr = _labels(path, "y_train", arrs["y_train"], len(xtr))
    yte = _labels(path, "y_test", arrs["y_test"], len(xte))
    if xtr.shape[1:] != xte.shape[1:]:
        raise NpzError(f"{path}: x_train images are {xtr.shape[1:]} (C, H, W) but x_test images {xte.shape[1:]}")
    k, names = _num_classes(path, arrs, [ytr, yte])
    info = {"file": path.name, "path": str(path), "sha256": file_sha256(path), "num_classes": k, "classes": names}
    return (torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte), info)


def geometry(name: str, files: dict | None = None) -> tuple[int, int, int]:
    """(channels, height, width) of the training images, from the array's header only (nothing decompressed
    beyond it): what `augment=auto` and the corruption test's colour rule ask of a file."""
    path = path_of(name, files)
    sha = file_sha256(path)
    if sha not in _GEOMETRY:  # asked per training step by `augment=auto`: read once per file content
        _GEOMETRY[sha] = _read_geometry(path)
    return _GEOMETRY[sha]


def _read_geometry(path: Path) -> tuple[int, int, int]:
    try:
        with zipfile.ZipFile(path) as zf, zf.open("x_train.npy") as f:
            major, _ = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape = read(f)[0]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise NpzError(f"cannot read x_train's shape in {path} ({type(e).__name__}: {e})") from None
    if len(shape) == 3:
        return 1, int(shape[1]), int(shape[2])
    if len(shape) == 4 and shape[3] in (1, 3):
        return int(shape[3]), int(shape[1]), int(shape[2])
    if len(shape) == 4:
        return int(shape[1]), int(shape[2]), int(shape[3])
    raise NpzError(f"{path}: x_train has shape {tuple(shape)}; images must be [N, H, W, C] or [N, C, H, W]")


def cifar_like(name: str, files: dict | None = None) -> bool:
    """32x32 colour images: CIFAR's geometry. `augment=auto` gives them CIFAR's crop + flip (the reference
    augments CIFAR, not the MNIST family), and a grayscale task on them is corrupted in RGB, then converted,
    as grayscale CIFAR-10 is."""
    return geometry(name, files) == (3, 32, 32)


def check_sizes(name: str, n_total: int, n_test_total: int, n_train, n_test, val_fraction: float,
                from_preset=()) -> tuple:
    """(n_train, n_test, record notes) for a file holding `n_total` training and `n_test_total` test images.
    A request it cannot give is an error naming both numbers, unless it is the preset's default (`from_preset`
    names those fields): then the whole split is used and the notes say so."""
    meta, notes = {}, []
    if n_train is not None:
        n_val = max(1, math.ceil(val_fraction * n_train))
        if n_train + n_val > n_total:
            most = n_total - max(1, math.ceil(val_fraction * n_total))
            if "n_train" not in from_preset:
                raise NpzError(f"n_train={n_train} (+ {n_val} validation images, val_fraction {val_fraction}) is more "
                               f"than {name} holds: {n_total} training images; use --n-train {most} or less, or "
                               "leave n_train unset for the whole file")
            meta["n_train_requested"] = n_train
            notes.append(f"the preset's n_train={n_train} is more than the file's {n_total} training images: "
                         f"using all of them ({most} for training, the rest for validation)")
            n_train = None
    if n_test is not None and n_test > n_test_total:
        if "n_test" not in from_preset:
            raise NpzError(f"n_test={n_test} is more than {name} holds: {n_test_total} test images; use --n-test "
                           f"{n_test_total} or less")
        meta["n_test_requested"] = n_test
        notes.append(f"the preset's n_test={n_test} is more than the file's {n_test_total} test images: using all")
        n_test = None
    if notes:
        meta["notes"] = notes
    return n_train, n_test, meta

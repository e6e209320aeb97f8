"""Response models for `neural_pred`: the default V1 model and loaders for users' own models/data.

Li et al. 2019 took their target from a CNN fitted to mouse V1 recordings; neither is available
here, so the default response model is a classical one written in the project: a seeded,
versioned Gabor filter bank of simple cells (half-wave rectified linear Gabor responses) and
complex cells (energy model: sqrt of the summed squares of a quadrature pair; Adelson & Bergen
1985), in the style of VOneNet's VOneBlock (Dapello et al. 2020, NeurIPS). Its tuning parameters
are drawn with a fixed seed from the published (macaque) V1 distributions VOneNet uses:
  * preferred orientation: De Valois, Yund & Hepler 1982, Vision Res. 22:531 (histogram over
    45-degree bins centred at 0/45/90/135 deg: 66/49/77/54 cells, uniform within a bin);
  * preferred spatial frequency: De Valois, Albrecht & Thorell 1982, Vision Res. 22:545 (foveal
    cells; bins 0.5-8 cycles/deg, log-uniform within a bin);
  * envelope size in cycles (nx, ny = sigma * frequency): Ringach 2002, J. Neurophysiol. 88:455
    (the joint histogram of nx, ny on log10 bins, sampled as marginal nx then ny | nx);
  * phase: uniform.
It is a stand-in for the recording-based model (mouse V1 prefers far lower frequencies), named
and versioned (`V1GaborBank.VERSION`) so that the targets it gives are reproducible. Hand-written
because VOneNet is not packaged on PyPI and brings its own stochastic/noise layers we do not want.

Users with data plug in (see `load_response_model`): a TorchScript file (`*.pt`), an importable
module (`package.module:attr`, an nn.Module instance, class or factory), or a precomputed `.npz`
with `images` and `similarity` (or `responses`, optionally `reliability`), e.g. from recordings.
A module may carry per-unit reliability weights as a `reliability` attribute/buffer.
"""
from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.core.store import sha256_file

# --------------------------------------------------------------------------- published distributions
# De Valois, Yund & Hepler 1982: orientation preference (deg) histogram.
ORI_BINS = np.array([-22.5, 22.5, 67.5, 112.5, 157.5])
ORI_COUNTS = np.array([66, 49, 77, 54], dtype=float)
# De Valois, Albrecht & Thorell 1982: peak spatial frequency (cycles/deg), foveal cells.
SF_BINS = np.array([0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6, 8.0])
SF_COUNTS = np.array([4, 4, 8, 25, 32, 26, 28, 12], dtype=float)
# Ringach 2002: joint histogram of (nx, ny), rows nx bins, columns ny bins, log10-spaced edges.
N_BINS = np.logspace(-1, 0.2, 6, base=10)
N_JOINT = np.array([[2., 0., 1., 0., 0.],
                    [8., 9., 4., 1., 0.],
                    [1., 2., 19., 17., 3.],
                    [0., 0., 1., 7., 4.],
                    [0., 0., 0., 0., 0.]])


def _sample_hist(rng: np.random.Generator, counts, edges, n, log=False):
    """Draw n values from a histogram: pick a bin by its count, then uniform (or log-uniform) in it."""
    p = np.asarray(counts, float) / np.sum(counts)
    b = rng.choice(len(p), size=n, p=p)
    u = rng.random(n)
    lo, hi = edges[b], edges[b + 1]
    if log:
        return np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
    return lo + u * (hi - lo)


def sample_v1_params(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Tuning parameters of n cells: ori (deg in [0, 180)), sf (cycles/deg), phase (rad), nx, ny."""
    rng = np.random.Generator(np.random.PCG64(seed))
    ori = _sample_hist(rng, ORI_COUNTS, ORI_BINS, n) % 180.0
    sf = _sample_hist(rng, SF_COUNTS, SF_BINS, n, log=True)
    nx_marg = N_JOINT.sum(1)
    nx_bin = rng.choice(len(nx_marg), size=n, p=nx_marg / nx_marg.sum())
    nx = np.exp(np.log(N_BINS[nx_bin]) + rng.random(n) * (np.log(N_BINS[nx_bin + 1]) - np.log(N_BINS[nx_bin])))
    ny = np.empty(n)
    for k in range(n):
        row = N_JOINT[nx_bin[k]]
        ny[k] = _sample_hist(rng, row, N_BINS, 1, log=True)[0]
    phase = rng.random(n) * 2 * np.pi
    return {"ori": ori, "sf": sf, "phase": phase, "nx": nx, "ny": ny}


def gabor_kernel(ksize: int, f: float, theta: float, phase: float, sigx: float, sigy: float) -> np.ndarray:
    """A Gabor (VOneNet's convention: carrier along the rotated x axis), frequency f in cycles/pixel,
    theta in rad, sizes in pixels; DC removed (uniform light gives no response) and unit L2 norm."""
    r = (ksize - 1) / 2
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    rotx = x * np.cos(theta) + y * np.sin(theta)
    roty = -x * np.sin(theta) + y * np.cos(theta)
    g = np.exp(-0.5 * (rotx ** 2 / sigx ** 2 + roty ** 2 / sigy ** 2)) * np.cos(2 * np.pi * f * rotx + phase)
    g = g - g.mean()
    nrm = np.linalg.norm(g)
    return g / nrm if nrm > 0 else g


@dataclass(frozen=True)
class V1Spec:
    seed: int = 0
    n_simple: int = 32
    n_complex: int = 32
    fov_deg: float = 2.0  # visual angle the image spans: 2 deg puts the 0.5-8 c/deg range between
    #                       one cycle per 32-px image and the Nyquist frequency
    stride: int = 4  # spacing of receptive-field centres in pixels
    image_size: int = 32


class V1GaborBank(nn.Module):
    """Seeded Gabor bank of simple and complex cells: images [B, C, H, W] in [0, 1] -> responses
    [B, (n_simple + n_complex) * (H/stride) * (W/stride)]. Colour is averaged to luminance."""

    VERSION = "v1gabor-1"

    def __init__(self, **kw):
        super().__init__()
        self.spec = V1Spec(**kw)
        s = self.spec
        if s.n_simple < 0 or s.n_complex < 0 or s.n_simple + s.n_complex == 0:
            raise ValueError("v1gabor needs n_simple + n_complex > 0")
        self.ksize = s.image_size - 1 if s.image_size % 2 == 0 else s.image_size  # odd, about the image
        n = s.n_simple + s.n_complex
        p = sample_v1_params(n, s.seed)
        cpp = p["sf"] * s.fov_deg / s.image_size  # cycles per pixel
        kernels = []
        for k in range(n):
            args = (self.ksize, cpp[k], np.deg2rad(p["ori"][k]))
            sig = (p["nx"][k] / cpp[k], p["ny"][k] / cpp[k])
            kernels.append(gabor_kernel(*args, p["phase"][k], *sig))
            if k >= s.n_simple:  # complex cell: the quadrature partner
                kernels.append(gabor_kernel(*args, p["phase"][k] + np.pi / 2, *sig))
        self.params = {k: v.tolist() for k, v in p.items()}
        self.register_buffer("weight", torch.tensor(np.stack(kernels), dtype=torch.float32)[:, None])

    def describe(self) -> dict:
        return {"name": self.VERSION, **asdict(self.spec)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().mean(1, keepdim=True) - 0.5
        pad = self.ksize // 2
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect" if pad < x.shape[-1] else "constant")
        r = F.conv2d(x, self.weight.to(x.device), stride=self.spec.stride)
        ns = self.spec.n_simple
        simple = F.relu(r[:, :ns])
        q = r[:, ns:]
        complex_ = (q[:, 0::2] ** 2 + q[:, 1::2] ** 2).sqrt()
        return torch.cat([simple, complex_], 1).flatten(1)


# --------------------------------------------------------------------------- loaders
RESPONSE_MODEL_HELP = ("v1gabor | v1gabor:seed=1,n_simple=64,... | path/to/model.pt (TorchScript) | "
                       "package.module:attr | path/to/targets.npz (images + similarity or responses)")


@dataclass
class NpzTargets:
    """A precomputed target: regularization images and their similarity (or responses)."""
    images: torch.Tensor  # uint8 [N, C, H, W]
    similarity: torch.Tensor | None
    responses: torch.Tensor | None
    reliability: torch.Tensor | None
    digest: str


def module_digest(module: nn.Module) -> str:
    """Hash of a module's state (names, shapes and values) for the target cache."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        t = v.detach().cpu().contiguous()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _images_to_nchw_uint8(a: np.ndarray) -> torch.Tensor:
    a = np.asarray(a)
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[-1] in (1, 3) and a.shape[1] not in (1, 3):
        a = a.transpose(0, 3, 1, 2)
    if a.ndim != 4 or a.shape[1] not in (1, 3):
        raise ValueError(f"npz 'images' must be [N,H,W], [N,C,H,W] or [N,H,W,C] with C in 1|3, got {a.shape}")
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        if a.min() < 0 or a.max() > 1:
            raise ValueError("float npz 'images' must lie in [0, 1] (or store them as uint8)")
        a = np.round(a * 255)
    return torch.from_numpy(np.ascontiguousarray(a.astype(np.uint8)))


def load_npz_targets(path) -> NpzTargets:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"response-model file not found: {path}")
    import zipfile
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path} is not a readable .npz file "
                         f"({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is a single .npy array, not an .npz archive with 'images' and "
                         "'similarity'/'responses'")
    with z:
        keys = set(z.files)
        if "images" not in keys or not ({"similarity", "responses"} & keys):
            raise ValueError(f"{path}: an .npz target needs 'images' and 'similarity' (or 'responses'); "
                             f"it has {', '.join(sorted(keys)) or 'nothing'}")
        imgs = _images_to_nchw_uint8(z["images"])
        n = len(imgs)
        sim = resp = rel = None
        if n < 2:
            raise ValueError(f"{path}: 'images' holds {n} image(s); a target needs at least 2")
        if "similarity" in keys:
            sim = torch.from_numpy(_numeric(z, "similarity", path))
            if tuple(sim.shape) != (n, n):
                raise ValueError(f"{path}: 'similarity' has shape {tuple(sim.shape)}, expected ({n}, {n}) "
                                 f"for its {n} images")
            _finite(sim, "similarity", path)
            if not torch.allclose(sim, sim.T, atol=1e-6) or sim.abs().max() > 1 + 1e-6:
                raise ValueError(f"{path}: 'similarity' must be symmetric with values in [-1, 1]")
        else:
            a = _numeric(z, "responses", path)
            if a.ndim == 1:
                a = a[:, None]
            if a.ndim != 2 or a.shape[0] != n or a.shape[1] < 1:
                raise ValueError(f"{path}: 'responses' has shape {a.shape}, expected (N, U) = ({n}, units) "
                                 f"for its {n} images")
            resp = torch.from_numpy(a)
            _finite(resp, "responses", path)
        if "reliability" in keys:
            r = _numeric(z, "reliability", path)
            rel = torch.from_numpy(r).flatten()
            _finite(rel, "reliability", path)
            if resp is not None and (r.ndim > 1 or rel.numel() != resp.shape[1]):
                raise ValueError(f"{path}: 'reliability' has shape {r.shape}, expected ({resp.shape[1]},): one "
                                 "weight per response unit")
            if (rel < 0).any():
                raise ValueError(f"{path}: 'reliability' weights must be non-negative")
    return NpzTargets(imgs, sim, resp, rel, sha256_file(path))


def _numeric(z, key: str, path) -> np.ndarray:
    """An npz array as float64, or a one-line error naming the key (strings, objects, ...)."""
    a = z[key]
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{path}: '{key}' must be a numeric array, got dtype {a.dtype}")
    return np.asarray(a, dtype=np.float64)


def _finite(t: torch.Tensor, key: str, path) -> None:
    bad = ~torch.isfinite(t)
    if bad.any():
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{path}: '{key}' holds {int(bad.sum())} non-finite value(s) (NaN/Inf), the first at "
                         f"index {first}; fix or drop them before using the file as a target")


def _parse_v1(spec: str) -> dict:
    kw = {}
    if ":" in spec:
        for item in filter(None, spec.split(":", 1)[1].split(",")):
            if "=" not in item:
                raise ValueError(f"v1gabor options are key=value, got {item!r}")
            k, v = item.split("=", 1)
            if k not in V1Spec.__dataclass_fields__ or k == "image_size":
                valid = ", ".join(f for f in V1Spec.__dataclass_fields__ if f != "image_size")
                raise ValueError(f"unknown v1gabor option {k!r}; valid: {valid}")
            kw[k] = type(getattr(V1Spec, k))(json.loads(v))
    return kw


def load_response_model(spec: str, image_size: int = 32) -> tuple[nn.Module | NpzTargets, dict]:
    """(response model or NpzTargets, identity dict for the record and the target cache)."""
    spec = str(spec)
    if spec == "v1gabor" or spec.startswith("v1gabor:"):
        m = V1GaborBank(image_size=image_size, **_parse_v1(spec))
        return m, m.describe()
    if spec.endswith(".npz"):
        t = load_npz_targets(spec)
        return t, {"name": "npz", "path": str(spec), "sha256": t.digest}
    if spec.endswith((".pt", ".pth", ".ts")) or Path(spec).is_file():
        p = Path(spec)
        if not p.is_file():
            raise FileNotFoundError(f"response model file not found: {p}")
        try:
            m = torch.jit.load(str(p), map_location="cpu")
        except Exception as e:
            raise ValueError(f"{p} is not a TorchScript module ({type(e).__name__}: {str(e)[:200]}); save one with "
                             "torch.jit.script(model).save(path), or pass package.module:attr") from e
        return m.eval(), {"name": "torchscript", "path": str(p), "sha256": sha256_file(p)}
    if ":" in spec:
        mod, attr = spec.split(":", 1)
        try:
            obj = importlib.import_module(mod)
        except ImportError as e:
            raise ImportError(f"response model module {mod!r} failed to import: {e}") from e
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise ValueError(f"response model {spec!r}: {mod} has no attribute {attr!r}")
            obj = getattr(obj, part)
        if not isinstance(obj, nn.Module) and callable(obj):
            obj = obj()
        if not isinstance(obj, nn.Module):
            raise ValueError(f"response model {spec!r} is not a torch.nn.Module (got {type(obj).__name__})")
        return obj.eval(), {"name": "module", "spec": spec, "state_sha256": module_digest(obj)}
    raise ValueError(f"unknown response model {spec!r}; valid: {RESPONSE_MODEL_HELP}")


@torch.no_grad()
def compute_responses(model: nn.Module, images_uint8: torch.Tensor, batch: int = 256,
                      device="cpu") -> torch.Tensor:
    """Responses [N, U] (float64, CPU) of a model to uint8 images, in batches."""
    model = model.to(device)
    out = []
    for i in range(0, len(images_uint8), batch):
        x = images_uint8[i:i + batch].to(device).float().div_(255.0)
        r = model(x)
        if isinstance(r, (tuple, list)):
            r = r[0]
        out.append(r.detach().flatten(1).to("cpu", torch.float64))
    r = torch.cat(out)
    if not torch.isfinite(r).all():
        raise ValueError("the response model produced non-finite responses")
    return r


def reliability_of(model) -> torch.Tensor | None:
    rel = getattr(model, "reliability", None)
    return None if rel is None else torch.as_tensor(rel, dtype=torch.float64).flatten()


__all__ = ["V1GaborBank", "V1Spec", "sample_v1_params", "gabor_kernel", "load_response_model",
           "load_npz_targets", "NpzTargets", "compute_responses", "reliability_of", "module_digest",
           "RESPONSE_MODEL_HELP"]

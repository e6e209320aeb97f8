"""The image primitives the CIFAR-10-C corruptions are built from, batched in torch with the boundary modes of
the libraries the reference used: seeded sampling, padding and same-size convolution, Gaussian kernels and blur,
bilinear sampling and zoom, ImageMagick's motion-blur kernel, the plasma fractal (fog), PIL's BOX matrices
(pixelate) and the procedural frost textures.

Kept apart from the corruption functions (`attacks.corruption_families`): several families share them, and
each is checked on its own against the library it re-implements (tests/test_corruptions.py).
"""
from __future__ import annotations

import contextlib
import functools
import math

import torch
import torch.nn.functional as F

FROST_TEXTURE_SEED = 1234
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as OpenCV's RGB2GRAY and bench.core.data.convert_color


# ----------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def one_thread(device):
    """Run a loop of many tiny CPU ops on one intra-op thread (restored afterwards)."""
    if torch.device(device).type != "cpu":
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def seeded_rand(shape, gen, device, dtype=torch.float32):
    return torch.rand(shape, generator=gen, device=device, dtype=dtype)


def seeded_uniform(shape, lo, hi, gen, device):
    return lo + (hi - lo) * seeded_rand(shape, gen, device)


def luma(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    w = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _pad_index(n: int, pad: int, mode: str, device) -> torch.Tensor:
    """Source index of each position -pad .. n+pad-1 under a border mode:
    'nearest' (aaa|abc), 'reflect101' (cb|abc: OpenCV default, torch 'reflect', scipy 'mirror'),
    'symmetric' (ba|abc: scipy 'reflect')."""
    i = torch.arange(-pad, n + pad, device=device)
    if mode == "nearest" or n == 1:
        return i.clamp(0, n - 1)
    if mode == "reflect101":
        p = 2 * n - 2
        i = i.remainder(p)
        return torch.where(i >= n, p - i, i)
    if mode == "symmetric":
        p = 2 * n
        i = i.remainder(p)
        return torch.where(i >= n, p - 1 - i, i)
    raise ValueError(mode)


def _pad2d(x: torch.Tensor, ph: int, pw: int, mode: str) -> torch.Tensor:
    h, w = x.shape[-2:]
    torch_mode = {"reflect101": "reflect", "nearest": "replicate"}.get(mode)
    if torch_mode and ph < h and pw < w and x.dim() == 4:
        return F.pad(x, (pw, pw, ph, ph), mode=torch_mode)
    return x.index_select(-2, _pad_index(h, ph, mode, x.device)).index_select(-1, _pad_index(w, pw, mode, x.device))


def conv2d_same(x: torch.Tensor, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlate every channel of x [N,C,H,W] with one 2-D kernel (odd size), padded by `mode`.
    Small kernels are a sum of shifted slices (PyTorch's CPU depthwise conv2d for a few channels
    is an order of magnitude slower than that); larger ones use conv2d."""
    kh, kw = kernel.shape
    n, c, h, w = x.shape
    xp = _pad2d(x, kh // 2, kw // 2, mode)
    k = kernel.to(x.device, x.dtype)
    if kh * kw <= 64:
        out = torch.zeros_like(x)
        for i in range(kh):
            for j in range(kw):
                if float(kernel[i, j]) != 0.0:
                    out.add_(xp[..., i:i + h, j:j + w], alpha=float(kernel[i, j]))
        return out
    return F.conv2d(xp, k.expand(c, 1, kh, kw), groups=c)


def gaussian_kernel1d(sigma: float, truncate: float) -> torch.Tensor:
    """scipy.ndimage's kernel: radius int(truncate*sigma + 0.5), normalised."""
    r = int(truncate * float(sigma) + 0.5)
    if sigma <= 0 or r == 0:
        return torch.ones(1, dtype=torch.float64)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float, truncate: float = 4.0, mode: str = "nearest") -> torch.Tensor:
    """skimage.filters.gaussian over H, W of every channel (defaults: truncate 4, 'nearest')."""
    k = gaussian_kernel1d(sigma, truncate)
    if len(k) == 1:
        return x
    return conv2d_same(conv2d_same(x, k.view(1, -1), mode), k.view(-1, 1), mode)


def bilinear_sample(x: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, mode: str) -> torch.Tensor:
    """Bilinear sample x [N,C,H,W] at pixel coordinates ys, xs [N,H',W'] with a border mode
    ('reflect101' or 'symmetric'), via grid_sample's two reflection conventions."""
    h, w = x.shape[-2:]
    if mode == "reflect101":  # reflect about the edge pixels' centres
        gx, gy = 2 * xs / max(w - 1, 1) - 1, 2 * ys / max(h - 1, 1) - 1
        ac = True
    elif mode == "symmetric":  # reflect about the image border
        gx, gy = (2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1
        ac = False
    else:
        raise ValueError(mode)
    grid = torch.stack([gx, gy], -1).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=ac)


def clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Centre crop of ceil(H/factor), scipy-zoom(order=1) style corner-aligned bilinear upscale,
    centre trim back to H x W (the reference's clipped_zoom, for square or non-square images)."""
    h, w = x.shape[-2:]
    ch, cw = int(math.ceil(h / factor)), int(math.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top:top + ch, left:left + cw]
    oh, ow = int(round(ch * factor)), int(round(cw * factor))
    if (oh, ow) == (ch, cw):
        z = crop
    else:
        z = F.interpolate(crop, size=(oh, ow), mode="bilinear", align_corners=True)
    th, tw = (z.shape[-2] - h) // 2, (z.shape[-1] - w) // 2
    return z[..., th:th + h, tw:tw + w]


def motion_blur_batch(x: torch.Tensor, radius: float, sigma: float, angles_deg: torch.Tensor) -> torch.Tensor:
    """ImageMagick MotionBlurImage with one angle per image: one-sided Gaussian taps
    exp(-i^2 / 2 sigma^2), i = 0 .. 2*ceil(radius), at offsets round(i cos a), round(i sin a),
    'edge' border. One gather per tap for the whole batch."""
    n, c, h, w = x.shape
    width = int(2 * math.ceil(radius) + 1)
    i = torch.arange(width, device=x.device, dtype=torch.float64)
    k = torch.exp(-(i ** 2) / (2 * sigma ** 2))
    k = (k / k.sum()).to(x.dtype)
    a = torch.deg2rad(angles_deg.to(torch.float64))
    # ceil(v - 0.5) as ImageMagick
    ox = torch.ceil(i[None] * torch.cos(a)[:, None] - 0.5).long()  # [N, width]
    oy = torch.ceil(i[None] * torch.sin(a)[:, None] - 0.5).long()
    yy = torch.arange(h, device=x.device).view(1, h, 1)
    xx = torch.arange(w, device=x.device).view(1, 1, w)
    flat = x.reshape(n, c, h * w)
    out = torch.zeros_like(flat)
    for t in range(width):
        sy = (yy + oy[:, t].view(n, 1, 1)).clamp(0, h - 1)
        sx = (xx + ox[:, t].view(n, 1, 1)).clamp(0, w - 1)
        idx = (sy * w + sx).view(n, 1, h * w).expand(n, c, h * w)
        out += k[t] * flat.gather(2, idx)
    return out.view(n, c, h, w)


def plasma_fractal(n: int, mapsize: int, wibble_decay: float, gen, device) -> torch.Tensor:
    """The reference's diamond-square height map ([N, mapsize, mapsize] in [0, 1]), one per image."""
    m = torch.zeros(n, mapsize, mapsize, dtype=torch.float64, device=device)
    step, wibble = mapsize, 100.0

    def wibbled_mean(a):
        return a / 4 + wibble * (-wibble + 2 * wibble * torch.rand(a.shape, generator=gen, device=device,
                                                                   dtype=torch.float64))

    while step >= 2:
        half = step // 2
        corner = m[:, 0::step, 0::step]
        sq = corner + torch.roll(corner, -1, 1)
        sq = sq + torch.roll(sq, -1, 2)
        m[:, half::step, half::step] = wibbled_mean(sq)
        dr = m[:, half::step, half::step]
        ul = m[:, 0::step, 0::step]
        lt = dr + torch.roll(dr, 1, 1) + ul + torch.roll(ul, -1, 2)
        m[:, 0::step, half::step] = wibbled_mean(lt)
        tt = dr + torch.roll(dr, 1, 2) + ul + torch.roll(ul, -1, 1)
        m[:, half::step, 0::step] = wibbled_mean(tt)
        step //= 2
        wibble /= wibble_decay
    flat = m.view(n, -1)
    flat = flat - flat.min(1, keepdim=True).values
    flat = flat / flat.max(1, keepdim=True).values
    return flat.view(n, mapsize, mapsize)


@functools.lru_cache(maxsize=8)
def pil_box_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """PIL BOX resampling along one axis as an (n_out x n_in) matrix, read off PIL by resizing
    unit vectors (mode 'F', no rounding)."""
    import numpy as np
    from PIL import Image
    cols = []
    for j in range(n_in):
        e = np.zeros((1, n_in), dtype=np.float32)
        e[0, j] = 1.0
        cols.append(np.asarray(Image.fromarray(e, mode="F").resize((n_out, 1), Image.BOX))[0])
    return torch.from_numpy(np.stack(cols, 1).astype(np.float32))


@functools.lru_cache(maxsize=4)
def _frost_textures_cpu(size: int = 160, count: int = 5) -> torch.Tensor:
    """Procedural frost: [count, 3, size, size] in [0, 1] from a fixed seed (see module doc)."""
    g = torch.Generator().manual_seed(FROST_TEXTURE_SEED)
    base = torch.zeros(count, 1, size, size)
    for octave, amp in ((4, 0.5), (8, 0.25), (16, 0.15), (32, 0.07), (80, 0.03)):
        noise = torch.rand(count, 1, octave, octave, generator=g)
        base += amp * F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)
    veins = torch.zeros(count, 1, size, size)
    for octave, amp in ((6, 0.6), (12, 0.4), (24, 0.3)):
        noise = F.interpolate(torch.rand(count, 1, octave, octave, generator=g), size=(size, size),
                              mode="bicubic", align_corners=False)
        veins += amp * torch.exp(-((noise - 0.5).abs() * 40))  # thin bright ridges along level lines
    speckle = gaussian_blur(torch.rand(count, 1, size, size, generator=g), 0.7) ** 6
    t = (0.55 * base + 0.8 * veins + 0.8 * speckle)
    t = (t - t.amin((2, 3), keepdim=True)) / (t.amax((2, 3), keepdim=True) - t.amin((2, 3), keepdim=True))
    t = t ** 0.6  # brighten: frost photographs are mostly light; mean about 0.4
    tint = torch.tensor([0.86, 0.93, 1.0]).view(1, 3, 1, 1)  # icy blue-white
    return (t * tint).clamp(0, 1)


def frost_textures(device, dtype=torch.float32) -> torch.Tensor:
    return _frost_textures_cpu().to(device=device, dtype=dtype)


def texture_crops(tex: torch.Tensor, which: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: int, w: int):
    """Batched crops: tex [K,C,S,S], per-image texture index/top/left -> [N,C,h,w] (one gather)."""
    k, c, s = tex.shape[0], tex.shape[1], tex.shape[-1]
    yy = top.view(-1, 1, 1) + torch.arange(h, device=tex.device).view(1, h, 1)
    xx = left.view(-1, 1, 1) + torch.arange(w, device=tex.device).view(1, 1, w)
    idx = (which.view(-1, 1, 1) * (s * s) + yy * s + xx).reshape(-1)  # [N*h*w] into each channel
    flat = tex.transpose(0, 1).reshape(c, k * s * s)
    return flat[:, idx].view(c, len(which), h, w).transpose(0, 1).contiguous()



"""The 15 CIFAR-10-C corruptions as functions `op(x, severity, generator) -> x'` on a float batch, by family:
noise (gaussian, shot, impulse), blur (defocus, glass, motion, zoom), weather (snow, frost, fog) and digital
(brightness, contrast, elastic transform, pixelate, JPEG).

Kept apart from `attacks.corruption_ops` (the checked entry point `corrupt` and the provenance of each
algorithm, in its docstring) so that each function here reads as the reference's algorithm on top of the
shared primitives of `attacks.corruption_kernels` and the severity table of `attacks.corruption_params`.
"""
from __future__ import annotations

import warnings

import torch

from .corruption_kernels import (bilinear_sample, clipped_zoom, conv2d_same, frost_textures, gaussian_blur,
                                 gaussian_kernel1d, luma, motion_blur_batch, one_thread, pil_box_matrix, plasma_fractal,
                                 seeded_rand, seeded_uniform, texture_crops)
from .corruption_params import params

# ----------------------------------------------------------------------------- noise
def gaussian_noise(x, severity=1, generator=None):
    c = params("gaussian_noise", severity)["std"]
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + c * noise).clamp(0, 1)


def shot_noise(x, severity=1, generator=None):
    c = params("shot_noise", severity)["rate"]
    return (torch.poisson(x * c, generator=generator) / c).clamp(0, 1)


def impulse_noise(x, severity=1, generator=None):
    """skimage random_noise(mode='s&p'): each value independently, with probability `amount`,
    becomes 0 or 1 with equal odds."""
    c = params("impulse_noise", severity)["amount"]
    flip = seeded_rand(x.shape, generator, x.device) <= c
    salt = seeded_rand(x.shape, generator, x.device) <= 0.5
    out = torch.where(flip & salt, torch.ones_like(x), x)
    return torch.where(flip & ~salt, torch.zeros_like(x), out)


# ----------------------------------------------------------------------------- blur
def defocus_kernel(radius: float, alias_blur: float) -> torch.Tensor:
    """make_cifar_c's disk(): normalised aliased disk on a 17x17 grid (or 2r+1 when r > 8),
    smoothed by OpenCV GaussianBlur (3x3, or 5x5 when r > 8, reflect-101); cropped to its
    nonzero support (the rest is exactly 0)."""
    if radius <= 8:
        L, ks = torch.arange(-8, 9, dtype=torch.float64), 3
    else:
        L, ks = torch.arange(-radius, radius + 1, dtype=torch.float64), 5
    Y, X = torch.meshgrid(L, L, indexing="ij")
    disk = ((X ** 2 + Y ** 2) <= radius ** 2).double()
    disk /= disk.sum()
    t = torch.arange(ks, dtype=torch.float64) - (ks - 1) / 2
    g = torch.exp(-(t ** 2) / (2 * alias_blur ** 2))
    g /= g.sum()
    k = conv2d_same(disk[None, None], g.view(1, -1), "reflect101")
    k = conv2d_same(k, g.view(-1, 1), "reflect101")[0, 0]
    nz = (k != 0).nonzero()
    r = int(max(nz[:, 0].sub(len(L) // 2).abs().max(), nz[:, 1].sub(len(L) // 2).abs().max()))
    mid = len(L) // 2
    return k[mid - r:mid + r + 1, mid - r:mid + r + 1]


def defocus_blur(x, severity=1, generator=None):
    p = params("defocus_blur", severity)
    return conv2d_same(x, defocus_kernel(p["radius"], p["alias_blur"]), "reflect101").clamp(0, 1)


def glass_blur(x, severity=1, generator=None):
    p = params("glass_blur", severity)
    sigma, d, iters = p["sigma"], p["max_delta"], p["iterations"]
    n, c, h, w = x.shape
    y = gaussian_blur(x, sigma)
    y = torch.floor(y * 255 + 1e-4) / 255  # np.uint8(... * 255) truncates
    hs, ws = list(range(h - d, d, -1)), list(range(w - d, d, -1))
    offs = torch.randint(-d, d, (iters, len(hs), len(ws), 2, n), generator=generator, device=x.device)
    # idx[p * n + k]: which source pixel now sits at position p of image k (position-major, so
    # position p of all images is one contiguous slice)
    idx = torch.arange(h * w, device=x.device).repeat_interleave(n)
    rows = torch.arange(n, device=x.device)
    with one_thread(x.device):  # ~2000 tiny steps: thread hand-offs would cost more than the work
        for it in range(iters):
            for a, hh in enumerate(hs):
                for b, ww in enumerate(ws):
                    dy, dx = offs[it, a, b]
                    p = hh * w + ww
                    q = ((hh + dy) * w + (ww + dx)) * n + rows
                    vp = idx[p * n:(p + 1) * n].clone()
                    idx[p * n:(p + 1) * n] = idx[q]
                    idx[q] = vp
    idx = idx.view(h * w, n).T
    y = y.reshape(n, c, h * w).gather(2, idx.reshape(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)
    return gaussian_blur(y, sigma).clamp(0, 1)


def motion_blur(x, severity=1, generator=None):
    p = params("motion_blur", severity)
    angles = seeded_uniform((x.shape[0],), *p["angle_range"], generator, x.device)
    return motion_blur_batch(x, p["radius"], p["sigma"], angles).clamp(0, 1)


def zoom_blur(x, severity=1, generator=None):
    zooms = params("zoom_blur", severity)["zooms"]
    out = torch.zeros_like(x)
    for z in zooms:
        out += clipped_zoom(x, z)
    return ((x + out) / (len(zooms) + 1)).clamp(0, 1)


# ----------------------------------------------------------------------------- weather
def snow(x, severity=1, generator=None):
    p = params("snow", severity)
    n, c, h, w = x.shape
    layer = p["loc"] + p["scale"] * torch.randn((n, 1, h, w), generator=generator, device=x.device, dtype=x.dtype)
    layer = clipped_zoom(layer, p["zoom"])
    layer = torch.where(layer < p["threshold"], torch.zeros_like(layer), layer)
    layer = torch.floor(layer.clamp(0, 1) * 255) / 255  # the reference's uint8 PNG round trip
    angles = seeded_uniform((n,), *p["angle_range"], generator, x.device)
    layer = motion_blur_batch(layer, p["blur_radius"], p["blur_sigma"], angles)
    blend = p["blend"]
    y = blend * x + (1 - blend) * torch.maximum(x, luma(x) * 1.5 + 0.5)
    return (y + layer + torch.rot90(layer, 2, (2, 3))).clamp(0, 1)


def frost(x, severity=1, generator=None):
    p = params("frost", severity)
    n, c, h, w = x.shape
    tex = frost_textures(x.device, x.dtype)
    if c == 1:
        tex = luma(tex)
    k, s = tex.shape[0], tex.shape[-1]
    which = torch.randint(0, k, (n,), generator=generator, device=x.device)
    top = torch.randint(0, s - h, (n,), generator=generator, device=x.device)
    left = torch.randint(0, s - w, (n,), generator=generator, device=x.device)
    fr = texture_crops(tex, which, top, left, h, w)
    return (p["image_weight"] * x + p["frost_weight"] * fr).clamp(0, 1)


def fog(x, severity=1, generator=None):
    p = params("fog", severity)
    n, c, h, w = x.shape
    size = 1 << max(5, (max(h, w) - 1).bit_length())  # the reference's mapsize 32, or the next power of 2
    plasma = plasma_fractal(n, size, p["wibble_decay"], generator, x.device)[:, None, :h, :w].to(x.dtype)
    mx = x.reshape(n, -1).amax(1).view(n, 1, 1, 1)
    y = x + p["strength"] * plasma
    return (y * mx / (mx + p["strength"])).clamp(0, 1)


# ----------------------------------------------------------------------------- digital
def brightness(x, severity=1, generator=None):
    c = params("brightness", severity)["shift"]
    v = x.amax(1, keepdim=True)
    v2 = (v + c).clamp(max=1.0)
    scaled = x * (v2 / v.clamp_min(1e-12))
    return torch.where(v > 0, scaled, v2.expand_as(x)).clamp(0, 1)


def contrast(x, severity=1, generator=None):
    c = params("contrast", severity)["factor"]
    m = x.mean((2, 3), keepdim=True)
    return ((x - m) * c + m).clamp(0, 1)


def elastic_transform(x, severity=1, generator=None):
    p = params("elastic_transform", severity)
    n, c, h, w = x.shape
    dev = x.device
    # random affine from three points (OpenCV getAffineTransform + warpAffine, reflect-101)
    centre = torch.tensor([w // 2, h // 2], dtype=torch.float64, device=dev)  # (x, y) as cv2
    sq = min(h, w) // 3
    pts1 = torch.stack([centre + sq, torch.stack([centre[0] + sq, centre[1] - sq]), centre - sq])  # [3,2]
    pts2 = pts1 + (-p["affine"] + 2 * p["affine"] * torch.rand((n, 3, 2), generator=generator, device=dev,
                                                                 dtype=torch.float64))
    A = torch.cat([pts1, torch.ones(3, 1, dtype=torch.float64, device=dev)], 1)  # [3,3]
    M = torch.linalg.solve(A, pts2).transpose(1, 2)  # [N,2,3]: dst = M @ (x, y, 1)
    Minv = torch.linalg.inv(torch.cat([M, torch.tensor([0, 0, 1.0], dtype=torch.float64, device=dev)
                                       .expand(n, 1, 3)], 1))[:, :2]
    yy, xx = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float64),
                            torch.arange(w, device=dev, dtype=torch.float64), indexing="ij")
    src_x = Minv[:, 0, 0, None, None] * xx + Minv[:, 0, 1, None, None] * yy + Minv[:, 0, 2, None, None]
    src_y = Minv[:, 1, 0, None, None] * xx + Minv[:, 1, 1, None, None] * yy + Minv[:, 1, 2, None, None]
    y = bilinear_sample(x, src_y, src_x, "reflect101")
    # smooth random displacement field (skimage gaussian, mode='reflect', truncate=3)
    k = gaussian_kernel1d(p["sigma"], 3.0)
    field = -1 + 2 * torch.rand((n, 2, h, w), generator=generator, device=dev, dtype=x.dtype)
    if len(k) > 1:
        field = conv2d_same(conv2d_same(field, k.view(1, -1), "symmetric"), k.view(-1, 1), "symmetric")
    dx, dy = p["alpha"] * field[:, 0], p["alpha"] * field[:, 1]
    out = bilinear_sample(y, yy + dy, xx + dx, "symmetric")
    return out.clamp(0, 1)


def pixelate(x, severity=1, generator=None):
    c = params("pixelate", severity)["factor"]
    n, ch, h, w = x.shape
    sh, sw = int(h * c), int(w * c)
    dh, dw = pil_box_matrix(h, sh).to(x.device, x.dtype), pil_box_matrix(w, sw).to(x.device, x.dtype)
    uh, uw = pil_box_matrix(sh, h).to(x.device, x.dtype), pil_box_matrix(sw, w).to(x.device, x.dtype)
    mh, mw = uh @ dh, uw @ dw  # down then up, one (H x H) and one (W x W) matrix
    return (mh @ x @ mw.T).clamp(0, 1)


def jpeg_compression(x, severity=1, generator=None):
    q = params("jpeg_compression", severity)["quality"]
    from torchvision.io import decode_jpeg, encode_jpeg
    u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision 0.29 deprecates its codecs in favour of torchcodec
        enc = encode_jpeg(list(u8), quality=q)
        dec = decode_jpeg(enc)
    return torch.stack(dec).to(device=x.device, dtype=x.dtype) / 255


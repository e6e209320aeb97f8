"""Corruptions: the batched torch generator (attacks/corruption_ops.py) vs straightforward per-image
NumPy code for the same 15 CIFAR-10-C functions (numpy / scipy.ndimage / scikit-image / PIL, one
HxWxC image at a time, as make_cifar_c.py runs them), on the same 1000 images at severity 3.
Goal: >= 10x on CPU for the whole set (and per function where a per-image library call is not
already the whole cost, e.g. JPEG is libjpeg either way).

imagecorruptions is not used as the reference: it hard-codes the ImageNet-C parameters (224 px
images), so its functions would time different work. The NumPy references below use the CIFAR
table of corruption_ops and, where OpenCV / ImageMagick were used originally, the scipy or numpy
equivalent. As a cross-check that both sides compute the same corruption, each benchmark compares
the mean absolute change they cause (within 25%; exact for the deterministic ones).
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from conftest import record

from attacks import corruption_kernels as ck
from attacks import corruption_ops as co

N_IMAGES = 1000
SEVERITY = 3
GOAL = 10.0
DETERMINISTIC = {"defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression"}


# ----------------------------------------------------------------------------- per-image references
def _p(name):
    return co.params(name, SEVERITY)


def _clipped_zoom(img, f):
    h = img.shape[0]
    ch = int(np.ceil(h / f))
    top = (h - ch) // 2
    z = ndi.zoom(img[top:top + ch, top:top + ch], (f, f, 1), order=1)
    t = (z.shape[0] - h) // 2
    return z[t:t + h, t:t + h]


def _motion(img, radius, sigma, angle):
    width = int(2 * np.ceil(radius) + 1)
    i = np.arange(width)
    k = np.exp(-i ** 2 / (2 * sigma ** 2))
    k /= k.sum()
    a = np.deg2rad(angle)
    h, w = img.shape[:2]
    out = np.zeros_like(img)
    for t in range(width):
        oy, ox = int(np.ceil(t * np.sin(a) - 0.5)), int(np.ceil(t * np.cos(a) - 0.5))
        ys = np.clip(np.arange(h) + oy, 0, h - 1)
        xs = np.clip(np.arange(w) + ox, 0, w - 1)
        out += k[t] * img[ys][:, xs]
    return out


def _plasma(mapsize, decay, rng):
    m = np.zeros((mapsize, mapsize))
    step, wibble = mapsize, 100.0

    def wm(a):
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        half = step // 2
        c = m[0::step, 0::step]
        sq = c + np.roll(c, -1, 0)
        sq += np.roll(sq, -1, 1)
        m[half::step, half::step] = wm(sq)
        dr, ul = m[half::step, half::step], m[0::step, 0::step]
        m[0::step, half::step] = wm(dr + np.roll(dr, 1, 0) + ul + np.roll(ul, -1, 1))
        m[half::step, 0::step] = wm(dr + np.roll(dr, 1, 1) + ul + np.roll(ul, -1, 0))
        step //= 2
        wibble /= decay
    m -= m.min()
    return m / m.max()


def _disk(radius, alias_blur):
    L = np.arange(-8, 9)
    X, Y = np.meshgrid(L, L)
    d = ((X ** 2 + Y ** 2) <= radius ** 2).astype(np.float64)
    d /= d.sum()
    t = np.array([-1.0, 0.0, 1.0])
    g = np.exp(-t ** 2 / (2 * alias_blur ** 2))
    g /= g.sum()
    return ndi.correlate1d(ndi.correlate1d(d, g, 0, mode="mirror"), g, 1, mode="mirror")


def ref_gaussian_noise(x, rng):
    return np.clip(x + rng.normal(size=x.shape, scale=_p("gaussian_noise")["std"]), 0, 1)


def ref_shot_noise(x, rng):
    c = _p("shot_noise")["rate"]
    return np.clip(rng.poisson(x * c) / c, 0, 1)


def ref_impulse_noise(x, rng):
    from skimage.util import random_noise
    return np.clip(random_noise(x, mode="s&p", amount=_p("impulse_noise")["amount"],
                                rng=int(rng.integers(1 << 31))), 0, 1)


def ref_defocus_blur(x, rng):
    k = _disk(**_p("defocus_blur"))
    return np.clip(np.stack([ndi.correlate(x[..., c], k, mode="mirror") for c in range(x.shape[2])], -1), 0, 1)


def ref_glass_blur(x, rng):
    from skimage.filters import gaussian
    p = _p("glass_blur")
    d = p["max_delta"]
    y = np.uint8(gaussian(x, sigma=p["sigma"], channel_axis=-1) * 255)
    h, w = y.shape[:2]
    for _ in range(p["iterations"]):
        for hh in range(h - d, d, -1):
            for ww in range(w - d, d, -1):
                dx, dy = rng.integers(-d, d, size=(2,))
                hp, wp = hh + dy, ww + dx
                y[hh, ww], y[hp, wp] = y[hp, wp], y[hh, ww].copy()
    return np.clip(gaussian(y / 255.0, sigma=p["sigma"], channel_axis=-1), 0, 1)


def ref_motion_blur(x, rng):
    p = _p("motion_blur")
    return np.clip(_motion(x, p["radius"], p["sigma"], rng.uniform(*p["angle_range"])), 0, 1)


def ref_zoom_blur(x, rng):
    zooms = _p("zoom_blur")["zooms"]
    out = np.zeros_like(x)
    for z in zooms:
        out += _clipped_zoom(x, z)
    return np.clip((x + out) / (len(zooms) + 1), 0, 1)


def ref_snow(x, rng):
    p = _p("snow")
    layer = rng.normal(size=x.shape[:2], loc=p["loc"], scale=p["scale"])
    layer = _clipped_zoom(layer[..., None], p["zoom"])
    layer[layer < p["threshold"]] = 0
    layer = np.floor(np.clip(layer, 0, 1) * 255) / 255
    layer = _motion(layer, p["blur_radius"], p["blur_sigma"], rng.uniform(*p["angle_range"]))
    gray = (x * np.array(co.LUMA)).sum(-1, keepdims=True)
    y = p["blend"] * x + (1 - p["blend"]) * np.maximum(x, gray * 1.5 + 0.5)
    return np.clip(y + layer + np.rot90(layer, k=2), 0, 1)


_TEX = None


def ref_frost(x, rng):
    global _TEX
    if _TEX is None:
        _TEX = ck._frost_textures_cpu().permute(0, 2, 3, 1).numpy().astype(np.float64)
    p = _p("frost")
    tex = _TEX[rng.integers(len(_TEX))]
    s = tex.shape[0]
    t, left = rng.integers(0, s - 32), rng.integers(0, s - 32)
    return np.clip(p["image_weight"] * x + p["frost_weight"] * tex[t:t + 32, left:left + 32], 0, 1)


def ref_fog(x, rng):
    p = _p("fog")
    mx = x.max()
    y = x + p["strength"] * _plasma(32, p["wibble_decay"], rng)[:32, :32, None]
    return np.clip(y * mx / (mx + p["strength"]), 0, 1)


def ref_brightness(x, rng):
    from skimage.color import hsv2rgb, rgb2hsv
    hsv = rgb2hsv(x)
    hsv[..., 2] = np.clip(hsv[..., 2] + _p("brightness")["shift"], 0, 1)
    return np.clip(hsv2rgb(hsv), 0, 1)


def ref_contrast(x, rng):
    c = _p("contrast")["factor"]
    m = x.mean((0, 1), keepdims=True)
    return np.clip((x - m) * c + m, 0, 1)


def ref_elastic_transform(x, rng):
    from skimage.filters import gaussian
    from skimage.transform import AffineTransform, warp
    p = _p("elastic_transform")
    h, w = x.shape[:2]
    centre = np.float64([w // 2, h // 2])
    sq = min(h, w) // 3
    pts1 = np.float64([centre + sq, [centre[0] + sq, centre[1] - sq], centre - sq])
    pts2 = pts1 + rng.uniform(-p["affine"], p["affine"], size=pts1.shape)
    tf = AffineTransform()
    tf.estimate(pts1, pts2)
    y = warp(x, tf.inverse, order=1, mode="reflect")  # numpy 'reflect' = OpenCV's reflect-101
    dx = gaussian(rng.uniform(-1, 1, size=(h, w)), p["sigma"], mode="reflect", truncate=3) * p["alpha"]
    dy = gaussian(rng.uniform(-1, 1, size=(h, w)), p["sigma"], mode="reflect", truncate=3) * p["alpha"]
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.clip(np.stack([ndi.map_coordinates(y[..., c], [yy + dy, xx + dx], order=1, mode="reflect")
                             for c in range(x.shape[2])], -1), 0, 1)


def ref_pixelate(x, rng):
    from PIL import Image
    s = int(32 * _p("pixelate")["factor"])
    im = Image.fromarray((x * 255).round().astype(np.uint8))
    return np.asarray(im.resize((s, s), Image.BOX).resize((32, 32), Image.BOX)) / 255.0


def ref_jpeg_compression(x, rng):
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray((x * 255).round().astype(np.uint8)).save(buf, "JPEG", quality=_p("jpeg_compression")["quality"])
    return np.asarray(Image.open(buf)) / 255.0


REFS = {name: globals()[f"ref_{name}"] for name in co.CORRUPTIONS}


# ----------------------------------------------------------------------------- benchmarks
@pytest.fixture(scope="module")
def images(fmnist_uint8):
    """1000 real Fashion-MNIST images as 3-channel floats (CIFAR-10-C is RGB)."""
    x, source = fmnist_uint8
    return x[:N_IMAGES].float().div(255).expand(-1, 3, -1, -1).contiguous(), source


_TOTALS: dict[str, tuple[float, float]] = {}


@pytest.mark.parametrize("name", co.CORRUPTIONS)
def test_corruption_generator(paired, benchmark, images, name):
    x, source = images
    x_np = x.permute(0, 2, 3, 1).double().numpy()

    def fast():
        return co.corrupt(x, name, SEVERITY, torch.Generator().manual_seed(0))

    def reference():
        rng = np.random.default_rng(0)
        return np.stack([REFS[name](im, rng) for im in x_np])

    a, b = fast(), reference()
    assert a.shape == x.shape and b.shape == x_np.shape
    da = (a - x).abs().mean().item()
    db = np.abs(b - x_np).mean()
    tol = 0.05 if name in DETERMINISTIC else 0.25
    assert abs(da - db) <= tol * db + 1e-3, (name, da, db)  # both sides compute the same corruption
    ratio, f, r = paired(fast, reference, rounds=2, warmup=0)
    _TOTALS[name] = (f, r)
    record(benchmark, f"corruption_{name}_speedup", ratio, goal=f">= {GOAL:g}x on CPU", met=ratio >= GOAL,
           fast_s=round(f, 4), reference_s=round(r, 4), images=N_IMAGES, severity=SEVERITY, data=source,
           mean_abs_change_fast=round(da, 4), mean_abs_change_reference=round(float(db), 4))


def test_corruption_generator_all_15(benchmark):
    """Whole CIFAR-10-C set (sum over the 15 functions above)."""
    if len(_TOTALS) < len(co.CORRUPTIONS):
        pytest.skip("run with the per-function benchmarks of this file")
    f = sum(v[0] for v in _TOTALS.values())
    r = sum(v[1] for v in _TOTALS.values())
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    record(benchmark, "corruption_all15_speedup", r / f, goal=f">= {GOAL:g}x on CPU", met=r / f >= GOAL,
           fast_s=round(f, 3), reference_s=round(r, 3), images=N_IMAGES, severity=SEVERITY)

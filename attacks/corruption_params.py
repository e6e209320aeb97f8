"""The severity table of the 15 CIFAR-10-C corruptions: `CIFAR_C_PARAMS` copies the CIFAR values of
hendrycks/robustness `ImageNet-C/create_c/make_cifar_c.py` (not ImageNet-C's), and `params` looks one up.

Kept apart from the corruption functions (`attacks.corruption_families`) because it is data, the protocol's
definition of each severity, which every family and the suite test read (see `attacks.corruption_ops`).
"""
from __future__ import annotations

CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
               "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
               "elastic_transform", "pixelate", "jpeg_compression")

# severity -> parameters, from make_cifar_c.py (CIFAR-10-C values).
CIFAR_C_PARAMS: dict[str, dict[int, dict]] = {
    "gaussian_noise": {s: {"std": c} for s, c in zip(range(1, 6), [0.04, 0.06, 0.08, 0.09, 0.10])},
    "shot_noise": {s: {"rate": c} for s, c in zip(range(1, 6), [500, 250, 100, 75, 50])},
    "impulse_noise": {s: {"amount": c} for s, c in zip(range(1, 6), [0.01, 0.02, 0.03, 0.05, 0.07])},
    "defocus_blur": {s: {"radius": r, "alias_blur": a}
                     for s, (r, a) in zip(range(1, 6), [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)])},
    "glass_blur": {s: {"sigma": g, "max_delta": d, "iterations": i}
                   for s, (g, d, i) in zip(range(1, 6), [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2),
                                                         (0.4, 1, 2)])},
    "motion_blur": {s: {"radius": r, "sigma": g, "angle_range": (-45.0, 45.0)}
                    for s, (r, g) in zip(range(1, 6), [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)])},
    "zoom_blur": {s: {"zooms": [round(1 + 0.01 * i, 2) for i in range(n)]}
                  for s, n in zip(range(1, 6), [7, 12, 16, 21, 26])},
    "snow": {s: dict(zip(("loc", "scale", "zoom", "threshold", "blur_radius", "blur_sigma", "blend"), c),
                     angle_range=(-135.0, -45.0))
             for s, c in zip(range(1, 6), [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
                                           (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
                                           (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
                                           (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)])},
    "frost": {s: {"image_weight": a, "frost_weight": b}
              for s, (a, b) in zip(range(1, 6), [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)])},
    "fog": {s: {"strength": a, "wibble_decay": b}
            for s, (a, b) in zip(range(1, 6), [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)])},
    "brightness": {s: {"shift": c} for s, c in zip(range(1, 6), [0.05, 0.1, 0.15, 0.2, 0.3])},
    "contrast": {s: {"factor": c} for s, c in zip(range(1, 6), [0.75, 0.5, 0.4, 0.3, 0.15])},
    # (alpha, sigma, affine) = 32 * the reference's fractions
    "elastic_transform": {s: {"alpha": 32 * a, "sigma": 32 * b, "affine": 32 * c}
                          for s, (a, b, c) in zip(range(1, 6), [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06),
                                                                (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)])},
    "pixelate": {s: {"factor": c} for s, c in zip(range(1, 6), [0.95, 0.9, 0.85, 0.75, 0.65])},
    "jpeg_compression": {s: {"quality": c} for s, c in zip(range(1, 6), [80, 65, 58, 50, 40])},
}



def params(name: str, severity: int) -> dict:
    if name not in CIFAR_C_PARAMS:
        raise ValueError(f"unknown corruption {name!r}; valid: {', '.join(CORRUPTIONS)}")
    if severity not in CIFAR_C_PARAMS[name]:
        raise ValueError(f"severity must be one of 1, 2, 3, 4, 5, got {severity!r}")
    return CIFAR_C_PARAMS[name][severity]


"""How S^pixel relates to S^neural-pred on a regularization set (`python -m bench similarity`).

The paper's Figure 1 with our V1 model in place of the recording-based one: Pearson and
Spearman correlation between the two target matrices over all pairs i < j, the share of pairs
that pass the threshold (|S| > th, i.e. non-zero in S^Th), and a figure with the two matrices
side by side and their scatter. Correlations come from scipy.stats; the figure from matplotlib.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch


def similarity_report(reg_dataset: str = "fashion_mnist", n_images: int = 1000, *, color: str = "gray",
                      image_size: int = 32, reg_augment: str = "auto", th: float = 0.8,
                      response_model: str = "v1gabor", data_dir=None, seed: int = 0,
                      download: bool = True) -> tuple[dict, np.ndarray, np.ndarray]:
    """(summary dict, S^pixel, S^neural-pred) for the first n_images of a dataset."""
    from scipy import stats

    from . import regsets, response_models, targets
    if not 0 <= th < 1:
        raise ValueError(f"th must be in [0, 1), got {th}")
    cfg = SimpleNamespace(dataset=reg_dataset, color=color, image_size=image_size, data_dir=data_dir,
                          download=download)
    model, ident = response_models.load_response_model(response_model, image_size)
    if isinstance(model, response_models.NpzTargets):
        from bench.core import data as bdata
        imgs = bdata.fit_size(bdata.convert_color(model.images, color), image_size)[:n_images]
        desc = {"reg_dataset": response_model, "n_images": len(imgs), "augment": "none"}
        S_neu = (model.similarity[:n_images, :n_images] if model.similarity is not None
                 else targets.cosine_similarity_matrix(model.responses[:n_images], model.reliability))
    else:
        imgs, desc = regsets.load_reg_images(reg_dataset, n_images, config=cfg, augment=reg_augment, seed=seed)
        resp = response_models.compute_responses(model, imgs)
        S_neu = targets.cosine_similarity_matrix(resp, response_models.reliability_of(model))
    S_pix = targets.pixel_similarity(imgs)
    n = len(imgs)
    iu = np.triu_indices(n, 1)
    a, b = S_pix.numpy()[iu], S_neu.numpy()[iu]
    pear = stats.pearsonr(a, b)
    spear = stats.spearmanr(a, b)

    def passing(s):
        return {"above_th": float(np.mean(s > th)), "below_minus_th": float(np.mean(s < -th)),
                "pass": float(np.mean(np.abs(s) > th))}

    summary = {"reg_set": {k: v for k, v in desc.items() if k != "sha256"}, "n_images": n, "pairs": int(len(a)),
               "response_model": ident, "th": th,
               "pearson": float(pear.statistic), "pearson_p": float(pear.pvalue),
               "spearman": float(spear.statistic), "spearman_p": float(spear.pvalue),
               "pixel": {"mean": float(a.mean()), "std": float(a.std()), **passing(a)},
               "neural_pred": {"mean": float(b.mean()), "std": float(b.std()), **passing(b)}}
    return summary, S_pix.numpy(), S_neu.numpy()


def similarity_figure(S_pix: np.ndarray, S_neu: np.ndarray, summary: dict, out_base: Path,
                      max_points: int = 20000, show: int = 200) -> list[Path]:
    """Two matrices (first `show` images) side by side and the scatter over pairs; PNG and SVG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = len(S_pix)
    iu = np.triu_indices(n, 1)
    a, b = S_pix[iu], S_neu[iu]
    rng = np.random.default_rng(0)
    sel = rng.choice(len(a), size=min(max_points, len(a)), replace=False)
    k = min(show, n)
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.6))
    for axis, S, title in ((ax[0], S_pix, "$S^{pixel}$"), (ax[1], S_neu, "$S^{neural\\text{-}pred}$ (V1 model)")):
        im = axis.imshow(S[:k, :k], vmin=-1, vmax=1, cmap="RdBu_r", interpolation="nearest")
        axis.set_title(f"{title}, first {k} images")
        axis.set_xlabel(f"image index j (0-{k - 1})")
        axis.set_ylabel(f"image index i (0-{k - 1})")
        fig.colorbar(im, ax=axis, fraction=0.046).set_label("cosine similarity S[i, j]")
    ax[2].scatter(a[sel], b[sel], s=2, alpha=0.3, rasterized=True)
    th = summary["th"]
    for v in (th, -th):
        ax[2].axvline(v, color="k", lw=0.8, ls="--")
    ax[2].set_xlabel("$S^{pixel}$")
    ax[2].set_ylabel("$S^{neural-pred}$")
    ax[2].set_title(f"Pearson {summary['pearson']:.3f}, Spearman {summary['spearman']:.3f}\n"
                    f"$|S^{{pixel}}|$ > {th}: {100 * summary['pixel']['pass']:.2f}% of {summary['pairs']} pairs")
    fig.tight_layout()
    out_base.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        p = out_base.with_suffix("." + ext)
        fig.savefig(p, dpi=120)
        paths.append(p)
    plt.close(fig)
    return paths

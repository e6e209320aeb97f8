"""The representational-similarity regularizers `pixel_sim`, `pixel_th` and `neural_pred`.

Li et al. 2019 and Attias et al. (arXiv 2410.03952), as the reference code computes it
(README: Regularizers; the reference code `elieattias1/pixel-reg`): each step draws k pairs (i, j) of frozen
regularization images, the trainer pushes the 2k images through the model (left k then right k), and

    S_cnn(i, j) = sum_l softmax(w)_l * cos(f_l(x_i) - m_l, f_l(x_j) - m_l)
    L_sim       = mean over pairs of (g(S_cnn) - g(S_target))^2,  g(x) = log(1+x+eps) - log(1-x+eps)

at the stem and the 4 stage outputs f_l, with m_l a per-channel running mean (updated before
use, m <- beta m + (1 - beta) batch mean over the 2k images and space, no gradient) and w a
trainable layer weight initialised to zeros. g is 2*arctanh with eps inside the logs (bounded at
+-12.2); `transform=identity` gives the plain MSE the reference also offers. The transform, eps
and beta are hyper-parameters recorded with the run (alpha's meaning depends on them).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.core.config import AUGMENTS
from bench.core.device import to_device

from . import regsets, targets
from .base import RegBatch, Regularizer
from .registry import register

TRANSFORMS = ("atanh", "identity")


def g_transform(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """g(x) = log(1 + x + eps) - log(1 - x + eps): 2*arctanh(x) kept finite at x = +-1."""
    # (1 - x) is exact for x near 1 (and 1 + x near -1), so eps is not lost to rounding in float32
    return torch.log((1 + x) + eps) - torch.log((1 - x) + eps)


def similarity_loss(s_cnn: torch.Tensor, s_target: torch.Tensor, transform: str = "atanh",
                    eps: float = 1e-5) -> torch.Tensor:
    """mean((g(s_cnn) - g(s_target))^2); `identity` transform: mean((s_cnn - s_target)^2)."""
    if transform == "atanh":
        g_t = g_transform(s_target.to(torch.float64), eps).to(s_cnn.dtype)  # targets: exact
        return (g_transform(s_cnn, eps) - g_t).pow(2).mean()
    s_target = s_target.to(s_cnn.dtype)
    if transform == "identity":
        return (s_cnn - s_target).pow(2).mean()
    raise ValueError(f"unknown transform {transform!r}; valid: {', '.join(TRANSFORMS)}")


class PairSimilarity(nn.Module):
    """CNN-side pair similarity: running-mean centring per layer, flatten, cosine, softmax-weighted
    sum over layers. Running means are buffers (saved with the regularizer's state_dict)."""

    def __init__(self, channels: list[int], beta: float = 0.9):
        super().__init__()
        self.beta = float(beta)
        self.n_layers = len(channels)
        for i, c in enumerate(channels):
            self.register_buffer(f"running_mean_{i}", torch.zeros(int(c)))
        self.layer_weight = nn.Parameter(torch.zeros(len(channels)))

    def running_means(self) -> list[torch.Tensor]:
        return [getattr(self, f"running_mean_{i}") for i in range(self.n_layers)]

    def layer_weights(self) -> torch.Tensor:
        return F.softmax(self.layer_weight.detach().float(), 0)

    def forward(self, feats: list[torch.Tensor], update: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """feats: per layer [2k, C, H, W] = cat(left k, right k) -> (S_cnn [k], per-layer cos [k, L])."""
        if len(feats) != self.n_layers:
            raise ValueError(f"expected {self.n_layers} feature maps, got {len(feats)}")
        per_layer = []
        for f, rm in zip(feats, self.running_means()):
            f = f.float()
            if f.shape[0] % 2:
                raise ValueError(f"pair features need an even batch (left k + right k), got {f.shape[0]}")
            if f.shape[1] != rm.numel():
                raise ValueError(f"feature map has {f.shape[1]} channels, running mean has {rm.numel()}")
            if update:
                with torch.no_grad():
                    dims = [0] + list(range(2, f.dim()))
                    rm.mul_(self.beta).add_(f.detach().mean(dims).to(rm.dtype), alpha=1 - self.beta)
            shape = (1, -1) + (1,) * (f.dim() - 2)
            c = (f - rm.detach().to(f.dtype).view(shape)).flatten(1)
            a, b = c.chunk(2)
            per_layer.append(F.cosine_similarity(a, b, dim=1, eps=1e-8))
        cos = torch.stack(per_layer, 1)
        w = F.softmax(self.layer_weight.float(), 0)
        return (cos * w).sum(1), cos


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a.detach().float() - a.detach().float().mean()
    b = b.detach().float() - b.detach().float().mean()
    den = (a.norm() * b.norm()).clamp_min(1e-12)
    return (a * b).sum() / den


def feature_channels(model: nn.Module, channels: int, image_size: int, device) -> list[int]:
    """Channels of the model's feature maps: the stem width + `stage_channels` when the model says
    (the reference ResNet), else from one no-grad forward in eval mode."""
    st = getattr(model, "stage_channels", None)
    if st is not None and getattr(model, "feature_names", [None])[0] == "stem":
        return [int(st[0])] + [int(c) for c in st]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            _, feats = model(torch.zeros(1, channels, image_size, image_size, device=device), features=True)
    finally:
        model.train(was)
    return [int(f.shape[1]) for f in feats]


class SimilarityRegularizer(Regularizer):
    """Shared machinery of the similarity family; subclasses say how targets are built."""

    @dataclass
    class Params:
        alpha: float = 10.0
        n_images: int = 5000
        pairs_per_step: int = 16
        reg_dataset: str = "task"  # task | a registered dataset | folder:PATH
        reg_augment: str = "auto"  # auto | crop_flip | none (augmented once, then frozen)
        pair_range: str = "all"  # all | high | low | positive | negative (judged on the continuous S)
        th: float = 0.8
        transform: str = "atanh"  # atanh: g = 2*arctanh with eps | identity: plain MSE
        eps: float = 1e-5
        beta: float = 0.9
        shuffle: bool = False  # control (Li et al.): targets of a seeded permutation of the image indices
        shuffle_seed: int = 0

    target_kind = "continuous"

    def __init__(self, **hp):
        super().__init__(**hp)
        h = self.hp
        if h.pair_range not in targets.PAIR_RANGES:
            raise ValueError(f"{self.name}: unknown pair_range {h.pair_range!r}; "
                             f"valid: {', '.join(targets.PAIR_RANGES)}")
        if h.transform not in TRANSFORMS:
            raise ValueError(f"{self.name}: unknown transform {h.transform!r}; valid: {', '.join(TRANSFORMS)}")
        if h.reg_augment not in AUGMENTS:
            raise ValueError(f"{self.name}: reg_augment must be one of {', '.join(AUGMENTS)}")
        if not 0.0 <= h.th < 1.0:
            raise ValueError(f"{self.name}: th must be in [0, 1), got {h.th}")
        if not 0.0 <= h.beta < 1.0:
            raise ValueError(f"{self.name}: beta must be in [0, 1), got {h.beta}")
        if not h.eps > 0:
            raise ValueError(f"{self.name}: eps must be > 0")
        if int(h.pairs_per_step) < 1 or int(h.n_images) < 2:
            raise ValueError(f"{self.name}: pairs_per_step must be >= 1 and n_images >= 2")
        self.sim: PairSimilarity | None = None
        self.pairs: targets.PairTargets | None = None
        self.images: torch.Tensor | None = None  # uint8 [N, C, H, W] on the training device
        self.info: dict = {}

    # ------------------------------------------------------------------ setup
    def reg_images(self, ctx) -> tuple[torch.Tensor, dict]:
        h = self.hp
        seed = getattr(ctx.config, "effective_data_seed", None)
        if seed is None:  # a plain namespace as config
            seed = getattr(ctx.config, "data_seed", 0) or 0
        return regsets.load_reg_images(h.reg_dataset, int(h.n_images), config=ctx.config, task_data=ctx.data,
                                       augment=h.reg_augment, seed=seed)

    def build_targets(self, ctx, images: torch.Tensor, desc: dict) -> dict[str, torch.Tensor]:
        """{"embeddings": rows whose dot products are the continuous target S} (or {"matrix": S})."""
        return {"embeddings": targets.pixel_embeddings(images)}

    def target_identity(self, ctx) -> dict:
        """What, besides the images, decides the targets (for the record and the cache key)."""
        return {"target": "pixel", "version": 1}

    def images_per_step(self) -> int:
        return 2 * int(self.hp.pairs_per_step)

    def _check_pairs(self, n_pairs: int, n_images: int, which: str = "") -> None:
        k = int(self.hp.pairs_per_step)
        if k > n_pairs:
            raise ValueError(f"{self.name}: pairs_per_step={k} exceeds the {n_pairs} {which}pairs (i<j) of the "
                             f"{n_images} regularization images; use at most {n_pairs} or add images (n_images)")

    def setup(self, ctx) -> None:
        h = self.hp
        images, desc = self.reg_images(ctx)
        self._check_pairs(len(images) * (len(images) - 1) // 2, len(images))
        ident = self.target_identity(ctx)
        key = regsets.cache_key(desc["sha256"], ident)
        t = regsets.cached_tensors(ctx.cache_dir, key, lambda: self.build_targets(ctx, images, desc))
        emb, mat = t.get("embeddings"), t.get("matrix")
        shuffle = None
        if h.shuffle:
            emb, mat, shuffle = targets.shuffled(emb, mat, int(h.shuffle_seed))
        self.pairs = targets.PairTargets(embeddings=emb, matrix=mat,
                                         kind=self.target_kind, th=h.th, pair_range=h.pair_range)
        if h.pair_range != "all":
            self._check_pairs(self.pairs.allowed_pairs, len(images), f"allowed ({h.pair_range}) ")
        self.images = images.to(ctx.device)
        data_channels = ctx.data.channels if ctx.data is not None else images.shape[1]
        chans = feature_channels(ctx.model, data_channels, images.shape[-1], ctx.device)
        self.sim = PairSimilarity(chans, beta=h.beta).to(ctx.device)
        self.info = {"reg_set": desc, "target": ident, "cache_key": key, "pair_fraction": self.pairs.fraction,
                     "allowed_pairs": self.pairs.allowed_pairs}
        if shuffle is not None:
            self.info["shuffle"] = shuffle

    def describe(self) -> dict:
        d = super().describe()
        d["conventions"] = {"transform": self.hp.transform, "eps": self.hp.eps, "beta": self.hp.beta,
                            "g": "log(1+x+eps)-log(1-x+eps)" if self.hp.transform == "atanh" else "x",
                            "layers": "stem+4 stages, softmax(w), w init 0", "target_kind": self.target_kind}
        if self.info:
            d["setup"] = self.info
        return d

    # ------------------------------------------------------------------ per step
    draws_ahead = True

    def draw(self, step: int, generator: torch.Generator) -> dict:
        """k pairs (i < j) from the allowed set and their targets, on the host: `idx` = [i, j] (the 2k images
        to gather, first halves then second halves), `target` (float32)."""
        if self.pairs is None:
            raise RuntimeError(f"{self.name}: call setup(ctx) before sample()")
        i, j = self.pairs.sample(int(self.hp.pairs_per_step), generator)
        return {"idx": torch.cat([i, j]), "target": self.pairs(i, j).float()}

    def sample(self, step: int, generator: torch.Generator | None = None, drawn: dict | None = None) -> RegBatch:
        if self.pairs is None:
            raise RuntimeError(f"{self.name}: call setup(ctx) before sample()")
        if drawn is None:
            drawn = self.draw(step, generator)
        idx = to_device(drawn["idx"], self.images.device)  # pinned + non_blocking on CUDA: no host sync in the step
        x = self.images[idx].float().div_(255.0)
        return RegBatch(images=x, meta={"target": drawn["target"], "groups": 2})

    def penalty(self, feats, batch: RegBatch):
        if batch is None or "target" not in batch.meta:
            raise ValueError(f"{self.name}: penalty needs the RegBatch returned by sample()")
        s_cnn, per_layer = self.sim(feats, update=self.training)
        tgt = batch.meta["target"].to(s_cnn.device)
        loss = similarity_loss(s_cnn, tgt, self.hp.transform, self.hp.eps)
        return loss, {"sim_corr": _pearson(s_cnn, tgt), "layer_w": self.sim.layer_weights()}

    def layer_weights(self) -> torch.Tensor:
        if self.sim is None:
            raise RuntimeError(f"{self.name}: not set up")
        return self.sim.layer_weights()

    def describe_training(self) -> dict:
        """The learned softmax layer weights (they typically collapse onto one layer)."""
        return {"layer_weights": self.layer_weights().tolist()}

    def full_target(self) -> torch.Tensor:
        """The N x N target matrix (for analysis; O(N^2) memory)."""
        return self.pairs.full()


@register("pixel_sim")
class PixelSim(SimilarityRegularizer):
    """Continuous S^pixel (Attias et al.)."""


@register("pixel_th")
class PixelTh(SimilarityRegularizer):
    """S^Th: S^pixel thresholded to {-1, 0, +1} at th (Attias et al.'s best variant)."""
    target_kind = "threshold"


@register("pixel_shuffle")
class PixelShuffle(SimilarityRegularizer):
    """Control for pixel_sim (after Li et al.'s shuffled-target control): the continuous S^pixel with
    its image indices permuted (seeded), so the target keeps its value distribution but loses its
    relation to the images. A gain of pixel_sim that pixel_shuffle also shows is "any similarity-
    matching penalty helps", not "pixel similarity helps"."""

    @dataclass
    class Params(SimilarityRegularizer.Params):
        shuffle: bool = True


@register("neural_pred")
class NeuralPred(SimilarityRegularizer):
    """S^neural-pred: cosine similarity of responses of a response model, centred over the N
    images (Li et al. 2019). Default: the project's seeded V1 Gabor model (regularizers.response_models)."""

    @dataclass
    class Params(SimilarityRegularizer.Params):
        alpha: float = 20.0
        response_model: str = "v1gabor"  # v1gabor[:opts] | model.pt (TorchScript) | module:attr | targets.npz

    def _load(self, ctx):
        from . import response_models
        if getattr(self, "_model", None) is None:
            self._model, self._ident = response_models.load_response_model(self.hp.response_model,
                                                                           ctx.config.image_size)
        return self._model, self._ident

    def target_identity(self, ctx) -> dict:
        return {"target": "neural_pred", "response_model": self._load(ctx)[1], "version": 1}

    def reg_images(self, ctx):
        from bench.core import data as bdata
        from . import response_models
        model, ident = self._load(ctx)
        if not isinstance(model, response_models.NpzTargets):
            return super().reg_images(ctx)
        # the .npz brings its own images (those the similarity was measured on)
        imgs = bdata.fit_size(bdata.convert_color(model.images, ctx.config.color), ctx.config.image_size)
        imgs = imgs[:int(self.hp.n_images)].contiguous()
        return imgs, {"reg_dataset": self.hp.response_model, "source": "npz", "n_images": len(imgs),
                      "augment": "none", "color": ctx.config.color, "image_size": ctx.config.image_size,
                      "sha256": regsets.tensor_digest(imgs)}

    def build_targets(self, ctx, images, desc):
        from . import response_models
        model, _ = self._load(ctx)
        n = len(images)
        if isinstance(model, response_models.NpzTargets):
            if model.similarity is not None:
                return {"matrix": model.similarity[:n, :n].clone()}
            return {"embeddings": targets.unit_embeddings(model.responses[:n], model.reliability)}
        dev = ctx.device if ctx.device is not None else "cpu"
        resp = response_models.compute_responses(model, images, device=dev)
        emb = targets.unit_embeddings(resp, response_models.reliability_of(model))
        if emb.shape[1] > 1024:  # wide responses: float32 rows keep the N x U memory in check
            emb = emb.float()
        return {"embeddings": emb}


__all__ = ["g_transform", "similarity_loss", "PairSimilarity", "SimilarityRegularizer", "PixelSim", "PixelTh",
           "NeuralPred", "PixelShuffle", "feature_channels", "TRANSFORMS"]

"""Target similarities of the representational-similarity regularizers (README: Regularizers;
the reference code `elieattias1/pixel-reg`).

Public API:
  * `pixel_similarity(images) -> [N, N] float64`: S^pixel. Channel-mean grayscale, centred by the
    mean image over the N images, each vector L2-normalised, cosine similarity (Attias et al.).
  * `cosine_similarity_matrix(responses, weights=None) -> [N, N] float64`: the same for any response
    vectors (S^neural-pred), optionally with per-unit reliability weights.
  * `threshold(S, th)`: S^Th, +1 where S > th, -1 where S < -th, 0 elsewhere.
  * `pair_mask(S, pair_range, th)`: the pair-range variants of the reference code.
  * `PairTargets`: targets for drawn pairs without an N x N matrix (O(k) per step) plus the
    seeded pair sampler, used by the regularizers.

Hand-written because no library computes these exact conventions (centring over the N images,
zero-norm guard, the reference's pair ranges); everything is plain float64 torch linear algebra.
"""
from __future__ import annotations

import math

import torch

PAIR_RANGES = ("all", "high", "low", "positive", "negative")
_NORM_EPS = 1e-12


# --------------------------------------------------------------------------- embeddings
def grayscale_vectors(images: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] (uint8 or float) -> float64 [N, H*W]: the mean over colour channels.

    The scale (0-255 or 0-1) does not matter: the similarity is a cosine after centring."""
    if images.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
    return images.to(torch.float64).mean(1).flatten(1)


def unit_embeddings(vectors: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Centre [N, D] vectors by their mean over the N rows, scale unit d by sqrt(weights[d])
    (reliability weighting of the cosine), L2-normalise each row. float64. A row that is all zero
    after centring (an image equal to the mean image) stays zero: its similarities are 0."""
    v = vectors.to(torch.float64)
    if v.dim() != 2 or v.shape[0] < 2:
        raise ValueError(f"need [N, D] vectors with N >= 2, got shape {tuple(v.shape)}")
    v = v - v.mean(0, keepdim=True)
    if weights is not None:
        w = torch.as_tensor(weights, dtype=torch.float64, device=v.device).flatten()
        if w.numel() != v.shape[1]:
            raise ValueError(f"reliability weights have {w.numel()} entries for {v.shape[1]} units")
        if (w < 0).any():
            raise ValueError("reliability weights must be non-negative")
        v = v * w.sqrt()
    norm = v.norm(dim=1, keepdim=True)
    return v / norm.clamp_min(_NORM_EPS)


def pixel_embeddings(images: torch.Tensor) -> torch.Tensor:
    """Rows whose dot products are S^pixel."""
    return unit_embeddings(grayscale_vectors(images))


def pixel_similarity(images: torch.Tensor) -> torch.Tensor:
    """S^pixel of N images: [N, N] float64, symmetric, in [-1, 1], diagonal 1 (0 for an image
    that equals the mean image)."""
    e = pixel_embeddings(images)
    return (e @ e.T).clamp_(-1.0, 1.0)


def cosine_similarity_matrix(responses: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """S of response vectors [N, U] centred across the N images (S^neural-pred)."""
    e = unit_embeddings(responses, weights)
    return (e @ e.T).clamp_(-1.0, 1.0)


# --------------------------------------------------------------------------- threshold and ranges
def threshold(S: torch.Tensor, th: float = 0.8) -> torch.Tensor:
    """S^Th: +1 where S > th, -1 where S < -th, 0 elsewhere (same dtype as S)."""
    if not 0.0 <= th < 1.0:
        raise ValueError(f"threshold th must be in [0, 1), got {th}")
    return (S > th).to(S.dtype) - (S < -th).to(S.dtype)


def pair_mask(S: torch.Tensor, pair_range: str = "all", th: float = 0.8) -> torch.Tensor:
    """Which pairs a pair-range variant of the reference code keeps, judged on the continuous S:
    all; high: |S| > th; low: |S| < th; positive: S > th or |S| < th; negative: S < -th or |S| < th."""
    if pair_range == "all":
        return torch.ones_like(S, dtype=torch.bool)
    a = S.abs()
    if pair_range == "high":
        return a > th
    if pair_range == "low":
        return a < th
    if pair_range == "positive":
        return (S > th) | (a < th)
    if pair_range == "negative":
        return (S < -th) | (a < th)
    raise ValueError(f"unknown pair_range {pair_range!r}; valid: {', '.join(PAIR_RANGES)}")


def shuffled(embeddings: torch.Tensor | None, matrix: torch.Tensor | None, seed: int):
    """The shuffled-target control: a seeded permutation p of the N image indices, so that the target
    of pair (i, j) becomes S[p(i), p(j)]. Rows of the embeddings (or rows and columns of the matrix)
    are permuted; the images stay where they are. The multiset of off-diagonal target values is
    unchanged, their relation to the images is gone. Returns (embeddings, matrix, description)."""
    n = int((embeddings if embeddings is not None else matrix).shape[0])
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    if embeddings is not None:
        embeddings = embeddings[perm].contiguous()
    if matrix is not None:
        matrix = matrix[perm][:, perm].contiguous()
    fixed = int((perm == torch.arange(n)).sum())
    return embeddings, matrix, {"seed": int(seed), "n": n, "fixed_points": fixed}


# --------------------------------------------------------------------------- pair targets
class PairTargets:
    """Targets for pairs (i, j) of N regularization images, and a seeded sampler of pairs i < j.

    Holds either the unit embeddings E (S = E E^T, a pair costs one float64 dot product: O(k)
    memory, for large N) or a precomputed matrix (for targets given as a matrix, e.g. from
    recordings). `kind` "continuous" returns S, "threshold" returns threshold(S, th). Pairs are
    drawn uniformly from those `pair_range` allows (judged on the continuous S); the allowed set
    is enumerated when it is small (< `enumerate_below` of all pairs) and rejection-sampled
    otherwise, so memory never grows with N^2 for the `all` default.
    """

    def __init__(self, embeddings: torch.Tensor | None = None, matrix: torch.Tensor | None = None,
                 kind: str = "continuous", th: float = 0.8, pair_range: str = "all",
                 enumerate_below: float = 0.02, block: int = 1024):
        if (embeddings is None) == (matrix is None):
            raise ValueError("give exactly one of embeddings or matrix")
        if kind not in ("continuous", "threshold"):
            raise ValueError(f"kind must be continuous|threshold, got {kind!r}")
        if pair_range not in PAIR_RANGES:
            raise ValueError(f"unknown pair_range {pair_range!r}; valid: {', '.join(PAIR_RANGES)}")
        # float64 rows, or float32 ones for wide responses (memory); pair dots are taken in float64
        self.emb = None if embeddings is None else embeddings.cpu()
        if self.emb is not None and not self.emb.is_floating_point():
            self.emb = self.emb.double()
        self.matrix = None if matrix is None else matrix.to(torch.float64).cpu()
        if self.matrix is not None and (self.matrix.dim() != 2 or self.matrix.shape[0] != self.matrix.shape[1]):
            raise ValueError(f"target matrix must be square, got shape {tuple(self.matrix.shape)}")
        self.n = int((self.emb if self.emb is not None else self.matrix).shape[0])
        if self.n < 2:
            raise ValueError("need at least 2 regularization images")
        self.kind, self.th, self.pair_range = kind, float(th), pair_range
        self.total_pairs = self.n * (self.n - 1) // 2
        self.allowed_pairs = self.total_pairs
        self.enumerated: torch.Tensor | None = None  # int64 [P, 2] when enumerated
        if pair_range != "all":
            count, small = 0, []
            for r0 in range(0, self.n, block):
                rows = torch.arange(r0, min(r0 + block, self.n))
                S = self.rows(rows)
                m = pair_mask(S, pair_range, th)
                m &= torch.arange(self.n)[None, :] > rows[:, None]  # i < j only
                count += int(m.sum())
                if count <= enumerate_below * self.total_pairs:
                    ii, jj = m.nonzero(as_tuple=True)
                    small.append(torch.stack([rows[ii], jj], 1))
            self.allowed_pairs = count
            if count == 0:
                raise ValueError(f"pair_range={pair_range!r} with th={th} leaves no pair of the {self.n} "
                                 "regularization images; lower th, add images, or use pair_range=all")
            if count <= enumerate_below * self.total_pairs:
                self.enumerated = torch.cat(small) if small else torch.zeros(0, 2, dtype=torch.int64)

    @property
    def fraction(self) -> float:
        """Share of all pairs i < j that the pair range allows."""
        return self.allowed_pairs / self.total_pairs

    def rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Continuous S[rows, :] (float64)."""
        if self.matrix is not None:
            return self.matrix[rows]
        return (self.emb[rows] @ self.emb.T).double().clamp_(-1.0, 1.0)

    def continuous(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Continuous S[i, j] for index vectors (float64)."""
        i, j = i.cpu().long(), j.cpu().long()
        if self.matrix is not None:
            return self.matrix[i, j]
        return (self.emb[i].double() * self.emb[j].double()).sum(1).clamp_(-1.0, 1.0)

    def __call__(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """The regularizer's target for pairs (i, j) (float64)."""
        s = self.continuous(i, j)
        return threshold(s, self.th) if self.kind == "threshold" else s

    def full(self) -> torch.Tensor:
        """The whole target matrix (for analysis and small N)."""
        S = self.rows(torch.arange(self.n))
        return threshold(S, self.th) if self.kind == "threshold" else S

    def _uniform_pairs(self, k: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.randint(0, self.n, (k,), generator=generator)
        j = torch.randint(0, self.n - 1, (k,), generator=generator)
        j = j + (j >= i).long()  # uniform over ordered pairs with i != j
        return torch.minimum(i, j), torch.maximum(i, j)

    def sample(self, k: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """k pairs (i < j), uniform over the allowed set, drawn with `generator` (CPU)."""
        if self.enumerated is not None:
            sel = torch.randint(0, len(self.enumerated), (k,), generator=generator)
            p = self.enumerated[sel]
            return p[:, 0], p[:, 1]
        if self.pair_range == "all":
            return self._uniform_pairs(k, generator)
        got_i, got_j, have = [], [], 0
        draw = max(2 * k, math.ceil(1.5 * k / max(self.fraction, 1e-6)))
        while have < k:
            i, j = self._uniform_pairs(draw, generator)
            keep = pair_mask(self.continuous(i, j), self.pair_range, self.th)
            got_i.append(i[keep])
            got_j.append(j[keep])
            have += int(keep.sum())
        return torch.cat(got_i)[:k], torch.cat(got_j)[:k]

"""Starting points of the boundary attack: an adversarial start per image, found among the test images the
model assigns to another class (nearest or seeded random), moved towards the original by a batched binary
search on the blend, with seeded uniform noise as a last resort; and `ensure_adversarial`, which re-checks each
start with foolbox's own criterion on exactly the batch the attack will see and steps a failing one back
towards its other-class image.

Kept apart from `attacks.boundary`: foolbox's default initialisation raises on a model that predicts one
class, so finding starts is its own search (see the module docstring of `attacks.boundary`), also used by
`attacks.whitebox`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .base import EvalContext, clean_predictions, predict
from .foolbox_adapters import foolbox_model


@torch.no_grad()
def starting_points(ctx: EvalContext, idx: torch.Tensor, labels: torch.Tensor, start: str = "nearest",
                    search: bool = True, search_steps: int = 12, noise_tries: int = 256, repeat: int = 0,
                    margin: float = 1e-3, check_batch: int | None = None, model: nn.Module | None = None):
    """(starts, ok, info): an adversarial start per selected image (other-class test image, blended
    towards the original, stopping `margin` of the blend on the adversarial side), `ok` False where
    none could be found. `start="random"` draws the other-class image with a generator seeded by
    (suite seed, `repeat`), so repeats start from different points. With `check_batch`, every start is
    re-checked at that batch size and steps back towards its other-class image where needed
    (`ensure_adversarial`). `info["anchors"]` holds the other-class images themselves."""
    if start not in ("nearest", "random"):
        raise ValueError(f"start must be 'nearest' or 'random', got {start!r}")
    model = model if model is not None else ctx.model
    x = ctx.x[idx]
    pool, pool_pred = ctx.x, clean_predictions(ctx)
    n = len(x)
    anchors = x.clone()
    ok = torch.zeros(n, dtype=torch.bool, device=x.device)
    g = torch.Generator().manual_seed(int(ctx.seed) + 31_337 + 1_000_003 * int(repeat))
    flat_pool = pool.flatten(1)
    for i in range(0, n, 256):
        xb, lb = x[i:i + 256].flatten(1), labels[i:i + 256]
        other = pool_pred[None, :] != lb[:, None]
        if start == "nearest":
            score = torch.cdist(xb, flat_pool)
            score = score.masked_fill(~other, float("inf"))
            j = score.argmin(1)
        else:
            score = torch.rand(other.shape, generator=g).to(x.device).masked_fill(~other, -1.0)
            j = score.argmax(1)
        has = other.any(1)
        anchors[i:i + 256][has] = pool[j[has]]
        ok[i:i + 256] = has
    n_from_noise = 0
    if not bool(ok.all()):  # e.g. a one-class model: try seeded uniform noise
        noise = torch.rand((noise_tries,) + tuple(x.shape[1:]), generator=g).to(x.device)
        npred = predict(model, noise)
        for k in torch.nonzero(~ok).flatten().tolist():
            cand = torch.nonzero(npred != labels[k]).flatten()
            if len(cand):
                anchors[k] = noise[cand[0]]
                ok[k] = True
                n_from_noise += 1
    starts = anchors.clone()
    shape = (-1,) + (1,) * (x.dim() - 1)
    if search and bool(ok.any()):
        # smallest blend a in [0, 1] with (1 - a) x + a anchor still of another class, then a margin
        lo = torch.zeros(n, device=x.device)
        hi = torch.ones(n, device=x.device)
        for _ in range(search_steps):
            mid = (lo + hi) / 2
            cand = (1 - mid.view(shape)) * x + mid.view(shape) * anchors
            adv = predict(model, cand) != labels
            hi = torch.where(adv, mid, hi)
            lo = torch.where(adv, lo, mid)
        a = (hi + margin).clamp(max=1.0)
        blended = (1 - a.view(shape)) * x + a.view(shape) * anchors
        still = predict(model, blended) != labels
        use = ok & still
        starts[use] = blended[use]
    stepped_back = 0
    if check_batch is not None and bool(ok.any()):
        sel = torch.nonzero(ok).flatten()
        s2, keep, stepped_back = ensure_adversarial(foolbox_model(ctx, model), x[sel], labels[sel], starts[sel],
                                                    anchors[sel], check_batch)
        starts[sel] = s2
        ok[sel[~keep]] = False
    return starts, ok, {"start": start, "repeat": int(repeat), "blend_search": search, "margin": margin,
                        "from_noise": n_from_noise, "no_start": int((~ok).sum()), "stepped_back": int(stepped_back),
                        "anchors": anchors}


@torch.no_grad()
def ensure_adversarial(fmodel, x: torch.Tensor, labels: torch.Tensor, starts: torch.Tensor, anchors: torch.Tensor,
                       batch: int, tries: int = 6):
    """(starts, keep, n_stepped): re-check every start with foolbox's criterion on exactly the chunks of
    `batch` rows the attack will run; a start that is not adversarial there moves half-way towards its
    anchor (the other-class image), up to `tries` times; one that never is gets `keep` False. Returns
    starts that are adversarial in their chunks (the chunk composition of the kept rows)."""
    import eagerpy as ep
    import foolbox as fb
    from foolbox.attacks.base import get_is_adversarial
    starts = starts.clone()
    keep = torch.ones(len(x), dtype=torch.bool, device=x.device)
    stepped = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for _ in range(tries + 2):
        sel = torch.nonzero(keep).flatten()
        bad_all = []
        for i in range(0, len(sel), batch):
            s = sel[i:i + batch]
            is_adv = get_is_adversarial(fb.criteria.Misclassification(labels[s]), fmodel)
            bad = ~is_adv(ep.astensor(starts[s])).raw.to(x.device)
            bad_all.append(s[bad])
        bad = torch.cat(bad_all) if bad_all else sel[:0]
        if not len(bad):
            break
        for k in bad.tolist():
            if bool((starts[k] == anchors[k]).all()) or int(stepped[k]) >= tries:
                keep[k] = False  # the anchor itself fails at this batch size: a failure, not a crash
            else:
                starts[k] = (starts[k] + anchors[k]) / 2
                stepped[k] = True
    return starts, keep, int(stepped.sum())

"""boundary: foolbox's BoundaryAttack (decision-based, minimal L2), the paper's main robustness figure.

Protocol: n random test images (seeded by the suite seed; the same images as `min_perturbation`
and `hop_skip_jump`), untargeted against the model's own clean prediction, r repeats with
different attack seeds, batched over images. Figure: the median over successful images of the
squared L2 distance per pixel (all channels; `channel="0"` is the reference code's channel-0
variant), then mean and SEM over repeats, plus the success rate.

Starting points: foolbox's default initialisation (blended uniform noise) raises when it finds no
adversarial start, which is what happens on a model that predicts one class (e.g. a randomly
initialised net). So the start of each image is the nearest (`start="nearest"`) or a seeded random
(`start="random"`) test image that the model assigns to *another* class, moved towards the original
by a batched binary search on the blend (as foolbox's blended-noise init does with noise); only when
no test image has another class, seeded uniform-noise images are tried; an image with no start at
all counts as a failure instead of aborting the run.

Convergence curve: foolbox reports the current distances of its best adversarials to its
TensorBoard logger at every step (`tb.histogram("norms", ...)`); a recording logger is swapped in for
the duration of the attack to read the median at several step counts without re-running. The
result flags a run whose median was still falling over the last stretch of steps; the suite flags
one that stalled far above the white-box minimum (`min_perturbation`), see `suite.cross_checks`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from .base import (EvalContext, SuiteTest, mean_sem, predict, progress_bar, register_test, select_images,
                   sq_l2_per_pixel)


def foolbox_model(ctx: EvalContext):
    import foolbox as fb
    return fb.PyTorchModel(ctx.model, bounds=(0.0, 1.0), device=ctx.device)


@torch.no_grad()
def starting_points(ctx: EvalContext, idx: torch.Tensor, labels: torch.Tensor, start: str = "nearest",
                    search: bool = True, search_steps: int = 12, noise_tries: int = 256):
    """(starts, ok, info): an adversarial start per selected image (other-class test image, blended
    towards the original), `ok` False where none could be found."""
    if start not in ("nearest", "random"):
        raise ValueError(f"start must be 'nearest' or 'random', got {start!r}")
    x = ctx.x[idx]
    pool, pool_pred = ctx.x, predict(ctx.model, ctx.x)
    n = len(x)
    starts = x.clone()
    ok = torch.zeros(n, dtype=torch.bool, device=x.device)
    g = torch.Generator().manual_seed(int(ctx.seed) + 31_337)
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
        starts[i:i + 256][has] = pool[j[has]]
        ok[i:i + 256] = has
    n_from_noise = 0
    if not bool(ok.all()):  # e.g. a one-class model: try seeded uniform noise
        noise = torch.rand((noise_tries,) + tuple(x.shape[1:]), generator=g).to(x.device)
        npred = predict(ctx.model, noise)
        for k in torch.nonzero(~ok).flatten().tolist():
            cand = torch.nonzero(npred != labels[k]).flatten()
            if len(cand):
                starts[k] = noise[cand[0]]
                ok[k] = True
                n_from_noise += 1
    if search and bool(ok.any()):
        # smallest blend a in [0, 1] with (1 - a) x + a start still of another class
        lo = torch.zeros(n, device=x.device)
        hi = torch.ones(n, device=x.device)
        shape = (-1,) + (1,) * (x.dim() - 1)
        for _ in range(search_steps):
            mid = (lo + hi) / 2
            cand = (1 - mid.view(shape)) * x + mid.view(shape) * starts
            adv = predict(ctx.model, cand) != labels
            hi = torch.where(adv, mid, hi)
            lo = torch.where(adv, lo, mid)
        blended = (1 - hi.view(shape)) * x + hi.view(shape) * starts
        still = predict(ctx.model, blended) != labels
        use = ok & still
        starts[use] = blended[use]
    return starts, ok, {"start": start, "blend_search": search, "from_noise": n_from_noise,
                        "no_start": int((~ok).sum())}


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def curve_steps(steps: int, points: int) -> list[int]:
    """0 (the start), then `points` roughly geometric step counts ending at `steps`."""
    if points < 1:
        return [0, steps]
    xs = np.unique(np.round(np.geomspace(max(1, steps / 2 ** (points - 1)), steps, points)).astype(int))
    return [0] + [int(s) for s in xs]


@contextlib.contextmanager
def record_norms(checkpoints, on_step=None):
    """Swap foolbox's BoundaryAttack TensorBoard logger for one that records the per-image L2
    distance of the current best adversarials after each checkpoint's number of steps."""
    import foolbox.attacks.boundary_attack as ba
    original = ba.TensorBoard
    want = set(int(c) for c in checkpoints)
    seen: dict[int, torch.Tensor] = {}

    class Recorder(original):
        def __init__(self, logdir):
            super().__init__(False)

        def histogram(self, tag, x, step, *, first=True):
            if tag != "norms":
                return
            if on_step is not None:
                on_step()
            if step - 1 in want:  # at step s the logger sees the distances after s - 1 steps
                seen[step - 1] = x.raw.detach().float().cpu().clone()

    ba.TensorBoard = Recorder
    try:
        yield seen
    finally:
        ba.TensorBoard = original


def boundary_run(ctx: EvalContext, x: torch.Tensor, labels: torch.Tensor, starts: torch.Tensor, steps: int,
                 checkpoints, batch: int, attack_kw: dict, bar=None):
    """One repeat of the attack over all images (in batches): (advs, {step: L2 norms of all images})."""
    import foolbox as fb
    fmodel = foolbox_model(ctx)
    attack = fb.attacks.BoundaryAttack(steps=steps, **attack_kw)
    advs, norms = [], {}
    for i in range(0, len(x), batch):
        xb, lb, sb = x[i:i + batch], labels[i:i + batch], starts[i:i + batch]
        done = [0]

        def tick():
            done[0] += 1
            if bar is not None:
                bar.update(1)

        with record_norms(checkpoints, tick) as seen:
            adv = attack.run(fmodel, xb, fb.criteria.Misclassification(lb), starting_points=sb)
        if bar is not None and done[0] < steps:  # converged early: the bar still reaches the end
            bar.update(steps - done[0])
        final = (adv - xb).flatten(1).norm(dim=1).float().cpu()
        for c in checkpoints:
            norms.setdefault(c, []).append(final if c >= steps or c not in seen else seen[c])
        advs.append(adv.detach())
    return torch.cat(advs), {c: torch.cat(v) for c, v in norms.items()}


@register_test("boundary")
class Boundary(SuiteTest):
    version = "1"

    @dataclass
    class Params:
        n: int = 1000
        repeats: int = 5
        steps: int = 50  # the reference code's value; `full` uses a converged setting
        channel: str = "all"  # all: every channel | 0: the reference code's channel-0 variant
        start: str = "nearest"  # nearest | random other-class test image
        start_search: bool = True  # binary search of the blend towards the original first
        curve_points: int = 6
        batch: int = 1000
        spherical_step: float = 0.01
        source_step: float = 0.01
        step_adaptation: float = 1.5
        falling_tol: float = 0.02  # flag: median fell by more than this fraction over the last stretch

    def run(self, ctx: EvalContext) -> dict:
        p = self.params
        if p.channel not in ("all", "0"):
            raise ValueError(f"boundary: channel must be 'all' or '0', got {p.channel!r}")
        if p.repeats < 1 or p.steps < 1:
            raise ValueError("boundary: repeats and steps must be >= 1")
        idx = select_images(ctx, p.n)
        x = ctx.x[idx]
        labels = predict(ctx.model, x)
        starts, ok, start_info = starting_points(ctx, idx, labels, p.start, p.start_search)
        cps = curve_steps(p.steps, p.curve_points)
        dim = x[0].numel()
        kw = dict(spherical_step=p.spherical_step, source_step=p.source_step, step_adaptation=p.step_adaptation)
        n_batches = (int(ok.sum()) + p.batch - 1) // p.batch
        med, rate, curves = [], [], []
        with progress_bar(ctx, p.repeats * n_batches * p.steps, "boundary") as bar:
            for r in range(p.repeats):
                torch.manual_seed(int(ctx.seed) * 1000 + r)
                success = torch.zeros(len(x), dtype=torch.bool)
                dist = torch.full((len(x),), float("nan"))
                curve = [float("nan")] * len(cps)
                if bool(ok.any()):
                    sel = torch.nonzero(ok).flatten()
                    adv, norms = boundary_run(ctx, x[sel], labels[sel], starts[sel], p.steps, cps, p.batch, kw, bar)
                    with torch.no_grad():
                        s = (predict(ctx.model, adv) != labels[sel]).cpu()
                    success[sel.cpu()] = s
                    dist[sel.cpu()] = sq_l2_per_pixel(adv, x[sel], p.channel).cpu()
                    curve = [_median((norms[c][s] ** 2 / dim).numpy()) for c in cps]
                med.append(_median(dist[success].numpy()))
                rate.append(float(success.float().mean()))
                curves.append(curve)
        m, sem = mean_sem(med)
        mean_curve = [float(np.nanmean([c[k] for c in curves])) if any(c[k] == c[k] for c in curves)
                      else float("nan") for k in range(len(cps))]
        drop = (mean_curve[-2] - mean_curve[-1]) / mean_curve[-2] if len(cps) > 1 and mean_curve[-2] > 0 \
            else float("nan")
        flags = {"still_falling": bool(drop > p.falling_tol), "relative_drop_last": drop,
                 "last_stretch": [cps[-2], cps[-1]] if len(cps) > 1 else None}
        return {"summary": {"median_sq_l2": m, "median_sq_l2_sem": sem, "success_rate": float(np.mean(rate))},
                "curves": {"convergence": {"x": cps, "y": mean_curve, "x_label": "boundary attack steps",
                                           "y_label": "median squared L2 per pixel (all channels)"}},
                "per_repeat": {"median_sq_l2": med, "success_rate": rate},
                "details": {"n_images": len(x), "steps": p.steps, "setting": "reference (50 steps)"
                            if p.steps == 50 else f"{p.steps} steps",
                            "unit": "squared L2 / number of values" + (" (channel 0)" if p.channel == "0" else
                                                                         " (all channels)"),
                            "image_selection_seed": int(ctx.seed), "starting_points": start_info,
                            "per_repeat_convergence": curves, "flags": flags}}

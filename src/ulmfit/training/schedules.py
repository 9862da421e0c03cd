"""Learning-rate (and momentum) schedules over one phase of training.

A schedule maps (step, total) to (lr factor, beta1 or None): the loop multiplies the phase's lr by
the factor and, when beta1 is not None, sets Adam's beta1 (the "momentum") to it. Each phase runs
its own cycle over its own steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..errors import UlmfitError


def stlr(step: int, total: int, cut_frac=0.1, ratio=32.0):
    """Slanted triangular lr (Howard & Ruder 2018, eq. 3): a short linear warm-up over the first
    `cut_frac` of the steps, then a long linear decay; the lowest lr is 1/ratio of the peak."""
    cut = max(1, math.floor(total * cut_frac))
    if step < cut:
        p = step / cut
    else:
        p = 1 - (step - cut) / max(1, total - cut)
    return (1 + p * (ratio - 1)) / ratio, None


def _cos(start, end, pct):
    return end + (start - end) * (1 + math.cos(math.pi * pct)) / 2


def one_cycle(step: int, total: int, pct_start=0.25, div=25.0, div_final=1e5, moms=(0.95, 0.85, 0.95)):
    """fastai-style one-cycle: cosine warm-up from lr/div to lr over `pct_start` of the steps, then
    cosine annealing to lr/div_final; beta1 goes the other way (moms[0] -> moms[1] -> moms[2]) since
    high momentum and a high lr together make training unstable."""
    warm = max(1, round(total * pct_start))
    if step < warm:
        pct = step / warm
        f = _cos(1 / div, 1.0, pct)
        m = _cos(moms[0], moms[1], pct) if moms else None
    else:
        pct = min(1.0, (step - warm) / max(1, total - warm))
        f = _cos(1.0, 1 / div_final, pct)
        m = _cos(moms[1], moms[2], pct) if moms else None
    return f, m


def constant(step: int, total: int):
    return 1.0, None


# (step, total) -> (lr factor, beta1 or None: the optimiser's own)
Schedule = Callable[[int, int], tuple[float, float | None]]
SCHEDULES: dict[str, Callable[..., Any]] = {"stlr": stlr, "one_cycle": one_cycle, "constant": constant}


def make_schedule(name: str, cfg=None) -> Schedule:
    """The schedule `name` with its settings taken from a TrainConfig: a function (step, total)."""
    if name not in SCHEDULES:
        raise UlmfitError(f"unknown lr schedule {name!r} (choose from {', '.join(SCHEDULES)})")
    if name == "stlr":
        kw = {} if cfg is None else {"cut_frac": cfg.cut_frac, "ratio": cfg.ratio}
    elif name == "one_cycle":
        kw = (
            {}
            if cfg is None
            else {
                "pct_start": cfg.pct_start,
                "div": cfg.div,
                "div_final": cfg.div_final,
                "moms": tuple(cfg.moms) if cfg.moms else None,
            }
        )
    else:
        kw = {}
    fn = SCHEDULES[name]
    return lambda step, total: fn(step, total, **kw)

"""What the training stages share: a stage's settings -> the loop's TrainConfig, made in one place."""

from __future__ import annotations


def train_config(s, **kw):
    """The loop's TrainConfig from a stage's settings (optimisation + run control); kw: a stage's own."""
    from ..training.loop import TrainConfig

    base = dict(
        schedule=s.schedule,
        wd=s.wd,
        betas=tuple(s.betas),
        moms=tuple(s.moms),
        clip=s.clip or None,
        seed=s.seed,
        ckpt_every=getattr(s, "ckpt_every", 0),
        max_minutes=getattr(s, "max_minutes", None),
        patience=getattr(s, "patience", None),
        device=s.device,
        threads=s.threads,
        bf16=not s.fp32,
        progress=not s.quiet,
    )
    return TrainConfig(**{**base, **kw})

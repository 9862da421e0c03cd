"""Sizing a run's training stages: to the data (`sizing = "data"`) or to a time budget (`budget = "30m"`).

Fixed step counts tuned for IMDb are wrong for most data: a 5k-document table gets a handful of LM steps
and two classifier epochs. Sized to the data, the LM fine-tunes for a number of *passes* over the target
texts (many for a small corpus, one for IMDb) and the classifier for a number of epochs that shrinks as
the labelled set grows. Sized to a budget, a speed probe of this machine (`ulmfit.training.probe`) turns
the minutes left after preparing and tokenizing into LM steps and classifier epochs, the test evaluation
set aside; each training stage also gets a hard stop a little past its share.

Everything here is arithmetic on plain numbers: the runner measures, this module decides.
"""

from __future__ import annotations

import math
import re

from ..errors import UlmfitError

LM_TARGET_TOKENS = 10_000_000  # tokens an LM fine-tune should see when the data allows (imdb-cpu: 20M)
LM_MAX_PASSES = 30  # more passes over a small corpus stop helping (and start memorizing)
CLAS_TARGET_DOCS = 60_000  # document-visits a classifier should see: 10 epochs of 6k (a large table: the floor)
# ...or token-visits, whichever asks for more epochs: short texts are cheap, and TREC-6's questions (12 tokens)
# were still improving at 14 epochs (hold-out 86.7 %; 24 epochs: 90.6 %, docs/benchmarks.md)
CLAS_TARGET_TOKENS = 1_500_000
CLAS_EPOCHS = (7, 30)  # fewest and most classifier epochs, whatever the data (early stopping ends them sooner)
# The floor of 7 leaves 4 to the all-layer stage after 1 per unfreezing stage. With 4 in all (1), a 67k-row table of
# short sentences was still climbing: hold-out of 6,700 73.5 % after it, 75.7 % after 4 (docs/benchmarks.md); IMDb's
# classifier peaked after 2-3 (imdb-cpu)
FROZEN_FRAC = 0.06  # share of the LM steps with only the embedding/decoder training (imdb-cpu: 300 of 4,800)
LM_SHARE = 0.45  # share of the training time given to LM fine-tuning when both stages fit the budget
MARGIN = 0.05  # share of the budget kept for what the estimate misses (saves, model loads, the report)
STAGE_OVERHEAD_S = 5.0  # loading the model, building batches, saving the folder: per training stage
HARD_STOP = 1.15  # a stage is stopped at this multiple of its planned time (validated and saved)
# the probe's LM steps (a few batches, each run twice) are 11-17 % faster than a stage's (IMDb 25.1k vs 22.5k tokens/s,
# agnews-small 25.4k vs 21.7k on a bf16 CPU, docs/benchmarks.md): planned at the probe's speed, a stage filling its
# budget would meet the hard stop just before its end
LM_STEP_SLACK = 1.15
# [classifier] backwards = "auto" without a run budget: the backward LM and classifier are trained when the run,
# with them, should end within this; so text-cpu on a table of 10k rows stays under half an hour on any CPU
BACKWARD_AUTO_S = 25 * 60


def parse_duration(value, where: str = "budget") -> float:
    """'30m', '1h30m', '90s', '1.5h' or a number of minutes -> seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UlmfitError(f"{where} must be a duration like '30m', '1h30m' or '90s', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = 60.0 * value
    else:
        text = value.strip().lower().replace(" ", "")
        parts = re.findall(r"(\d+(?:\.\d+)?)(min|h|m|s)", text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise UlmfitError(f"{where} must be a duration like '30m', '1h30m' or '90s', got {value!r}")
        seconds = sum(float(n) * {"h": 3600, "m": 60, "min": 60, "s": 1}[u] for n, u in parts)
    if not seconds > 0:
        raise UlmfitError(f"{where} must be positive, got {value!r}")
    return seconds


# ------------------------------------------------------------------------------------ stages


def stages_text(stages) -> str:
    return ",".join(f"{'all' if t == 0 else t}:{e}:{lr:g}" for t, e, lr in stages)


def _parsed(stages: str) -> list[tuple[int, int, float]]:
    """'1:2:4e-2,...,all:4:5e-3' -> [(1, 2, 0.04), ..., (0, 4, 0.005)] (0: all groups)."""
    from ..classifier.task import parse_stages  # imports torch: only when sizing

    return [(-f, e, lr) for f, e, lr in parse_stages(stages)]


def spread_epochs(stages: str, total: int) -> str:
    """The gradual-unfreezing stages with `total` epochs in all, shared as the preset shares them (each stage
    at least one); beyond the preset's own total, the unfreezing stages keep theirs and the rest goes to the last
    one (everything unfrozen: where more epochs paid on TREC-6). Fewer epochs than stages: the head first,
    everything last, the middle dropped."""
    st = _parsed(stages)
    total = max(1, int(total))
    if total >= sum(e for _, e, _ in st):
        return stages_text(st[:-1] + [(st[-1][0], total - sum(e for _, e, _ in st[:-1]), st[-1][2])])
    if total < len(st):
        keep = [st[-1]] if total == 1 else st[: total - 1] + [st[-1]]
        return stages_text([(t, 1, lr) for t, _, lr in keep])
    weight = sum(e for _, e, _ in st)
    epochs = [max(1, math.floor(total * e / weight)) for _, e, _ in st]
    while sum(epochs) > total:  # the floors of 1 can overshoot: take back from the largest
        epochs[epochs.index(max(epochs))] -= 1
    epochs[-1] += total - sum(epochs)  # the rest to the last stage (everything unfrozen)
    return stages_text([(t, e, lr) for (t, _, lr), e in zip(st, epochs)])


def lm_schedule(total_steps: int, steps_per_epoch: int) -> dict:
    """FinetuneSettings changes for `total_steps` LM steps: a short frozen phase, then the rest with everything
    unfrozen, its last epoch cut short where the steps end (the unfrozen phase's schedule spans exactly them)."""
    total_steps = max(2, int(total_steps))
    steps_per_epoch = max(1, int(steps_per_epoch))
    frozen = min(steps_per_epoch, max(1, round(FROZEN_FRAC * total_steps)))
    rest = max(1, total_steps - frozen)
    epochs = math.ceil(rest / steps_per_epoch)
    return {
        "frozen_epochs": 1,
        "frozen_steps": frozen,
        "epochs": epochs,
        "max_steps": None if rest == epochs * steps_per_epoch else rest,
    }


def lm_steps_of(changes: dict, steps_per_epoch: int) -> int:
    return changes["frozen_steps"] + (changes["max_steps"] or changes["epochs"] * max(1, steps_per_epoch))


# ------------------------------------------------------------------------------------ sizing


def _lm_data_steps(lm_tokens: int | None, tokens_per_step: int, steps_per_epoch: int) -> int:
    """LM steps for the data's size: passes enough to see LM_TARGET_TOKENS, between 1 and LM_MAX_PASSES."""
    passes = min(LM_MAX_PASSES, max(1.0, LM_TARGET_TOKENS / max(1, lm_tokens or 1)))
    return min(round(passes * steps_per_epoch), max(steps_per_epoch, LM_TARGET_TOKENS // tokens_per_step))


def _clas_data_epochs(n_train_docs: int, n_train_tokens: int | None = None) -> int:
    want = max(CLAS_TARGET_DOCS / max(1, n_train_docs), CLAS_TARGET_TOKENS / n_train_tokens if n_train_tokens else 0)
    return min(CLAS_EPOCHS[1], max(CLAS_EPOCHS[0], round(want)))


def size_to_data(
    lm_tokens: int | None,
    tokens_per_step: int,
    steps_per_epoch: int | None,
    n_train_docs: int,
    stages: str,
    n_train_tokens: int | None = None,
) -> dict:
    """Without a budget: LM passes and classifier epochs from the data's size -> {section: changes, "lines"}."""
    plan: dict = {"lines": []}
    if lm_tokens:
        assert steps_per_epoch, "an LM corpus has its steps per epoch"
        plan["finetune_lm"] = lm_schedule(_lm_data_steps(lm_tokens, tokens_per_step, steps_per_epoch), steps_per_epoch)
        plan["lines"].append(
            f"LM fine-tuning: {lm_steps_of(plan['finetune_lm'], steps_per_epoch):,} steps, "
            f"{lm_steps_of(plan['finetune_lm'], steps_per_epoch) / steps_per_epoch:.1f} passes over "
            f"the {lm_tokens:,} training tokens (sized to the data)"
        )
    epochs = _clas_data_epochs(n_train_docs, n_train_tokens)
    plan["classifier"] = {"stages": spread_epochs(stages, epochs)}
    plan["lines"].append(
        f"classifier: {epochs} epochs over {n_train_docs:,} labelled documents, stages "
        f"{plan['classifier']['stages']} (sized to the data)"
    )
    return plan


def _lm_plan(lm: dict, share: float, lm_tokens: int | None) -> tuple[dict, float, str]:
    """The LM fine-tuning steps that fit `share` seconds -> (its settings' changes, its seconds, a line)."""
    s_per_token = lm["train_s_per_token"] * LM_STEP_SLACK
    step_s = lm["tokens_per_step"] * s_per_token
    valid_s = lm["valid_tokens"] * lm["eval_s_per_token"]
    spe = max(1, lm["steps_per_epoch"])
    room = share - STAGE_OVERHEAD_S - 2 * valid_s  # the frozen phase's validation and the last one
    if math.isinf(room):  # no budget for this stage: as many steps as the data calls for
        steps = _lm_data_steps(lm_tokens, lm["tokens_per_step"], spe)
    else:
        steps = min(max(2, int(room / (step_s + valid_s / spe))), LM_MAX_PASSES * spe)
    changes = lm_schedule(steps, spe)
    steps = lm_steps_of(changes, spe)
    lm_s = STAGE_OVERHEAD_S + steps * step_s + (1 + math.ceil(steps / spe)) * valid_s
    changes["max_minutes"] = round(HARD_STOP * lm_s / 60, 2)
    tokens = steps * lm["tokens_per_step"]
    passes = f", {steps / spe:.1f} passes over the texts" if lm_tokens else ""
    return (
        changes,
        lm_s,
        (
            f"LM fine-tuning: {steps:,} steps ({tokens / 1e6:.1f}M tokens{passes}) at "
            f"{1 / s_per_token:,.0f} tokens/s: about {lm_s / 60:.1f} min"
        ),
    )


def _clas_plan(clas: dict, share: float, stages: str) -> tuple[dict, float, str]:
    """The classifier epochs that fit `share` seconds (not one: one epoch on the share of the documents that
    fits) -> (its settings' changes, its seconds, a line)."""
    train_s = clas["train_tokens"] * clas["train_s_per_token"]
    epoch_s = train_s + clas["valid_tokens"] * clas["eval_s_per_token"] + 1.0  # + saving the folder
    room = share - STAGE_OVERHEAD_S
    # more epochs than the data calls for would not help
    cap = _clas_data_epochs(clas["n_train_docs"], clas.get("train_tokens"))
    epochs = cap if math.isinf(room) else min(cap, int(room // epoch_s))
    changes: dict = {}
    if epochs >= 1:
        changes["stages"] = spread_epochs(stages, epochs)
        clas_s = STAGE_OVERHEAD_S + epochs * epoch_s
        what = f"{epochs} epochs, stages {changes['stages']}"
    else:  # not one epoch: one epoch over the share of the documents that fits (its schedule then completes)
        fits = (room - clas["valid_tokens"] * clas["eval_s_per_token"]) / max(train_s, 1e-9)
        changes["stages"] = spread_epochs(stages, 1)
        changes["limit_train"] = max(2 * 2, int(clas["n_train_docs"] * max(0.0, min(1.0, fits))))
        clas_s = (
            STAGE_OVERHEAD_S
            + train_s * changes["limit_train"] / max(1, clas["n_train_docs"])
            + clas["valid_tokens"] * clas["eval_s_per_token"]
        )
        what = f"one epoch on {changes['limit_train']:,} of the documents (less than an epoch of all fits)"
    if math.isfinite(room):
        changes["max_minutes"] = round(HARD_STOP * clas_s / 60, 2)
    # else its epochs come from the data, not from time: the estimate is for the report and the backward decision,
    # and the preset's own max_minutes stays the cap (on a 67k-row table of short texts the probe read the
    # all-layer steps 1.6x fast, and a hard stop at 1.15x its estimate cut the last epoch short, docs/benchmarks.md)
    return (
        changes,
        clas_s,
        (
            f"classifier: {what} over {clas['n_train_docs']:,} documents at "
            f"{1 / clas['train_s_per_token']:,.0f} tokens/s: about {clas_s / 60:.1f} min"
        ),
    )


def size_to_budget(
    budget_s: float,
    spent_s: float,
    lm: dict | None,
    clas: dict,
    test_tokens: int,
    stages: str,
    lm_tokens: int | None = None,
    directions: int = 1,
    lm_budget_s: float | None = None,
    clas_budget_s: float | None = None,
) -> dict:
    """Steps and epochs that fit what is left of `budget_s` after `spent_s` -> {section: changes, "lines",
    "seconds"}.

    lm / clas: probe results (`probe_finetune` / `probe_classifier`): seconds per token of a training and
    an evaluation step, steps per epoch, tokens per epoch. lm None: no LM stage. directions: 2 when a
    backward model is trained too. lm_budget_s / clas_budget_s: a stage's own budget, instead of its share.
    """
    eval_s = directions * test_tokens * clas["eval_s_per_token"] * 1.2 + STAGE_OVERHEAD_S
    left = budget_s * (1 - MARGIN) - spent_s - eval_s
    per_dir = left / directions
    if (lm_budget_s is None or clas_budget_s is None) and per_dir < 3 * STAGE_OVERHEAD_S:
        raise UlmfitError(
            f"budget {budget_s / 60:.1f} min is too small: {spent_s / 60:.1f} min went to preparing, "
            f"tokenizing and the baseline, and the test evaluation needs about {eval_s / 60:.1f} min"
        )
    plan: dict = {"lines": [], "seconds": {}}
    lm_s = 0.0
    if lm is not None:
        # a stage's own budget is its share; otherwise it gets LM_SHARE of the time left, or what the other
        # stage's own budget leaves
        if lm_budget_s is not None:
            share = lm_budget_s
        elif clas_budget_s is not None:
            share = per_dir - clas_budget_s
        else:
            share = per_dir * LM_SHARE
        if share <= 2 * STAGE_OVERHEAD_S:
            raise UlmfitError(
                f"the budget leaves no time for LM fine-tuning ({share / 60:.1f} min): raise `budget` "
                "or lower [classifier] budget"
            )
        changes, lm_s, line = _lm_plan(lm, share, lm_tokens)
        plan["finetune_lm"] = changes
        plan["seconds"]["finetune_lm"] = round(lm_s, 1)
        plan["lines"].append(line)
    share = clas_budget_s if clas_budget_s is not None else per_dir - lm_s
    if share <= 2 * STAGE_OVERHEAD_S:
        raise UlmfitError(
            f"the budget leaves no time for the classifier ({share / 60:.1f} min): raise `budget` or "
            "lower [finetune_lm] budget"
        )
    changes, clas_s, line = _clas_plan(clas, share, stages)
    plan["classifier"] = changes
    plan["seconds"]["classifier"] = round(clas_s, 1)
    plan["seconds"]["evaluate"] = round(eval_s, 1)
    plan["lines"].append(line)
    if math.isfinite(budget_s):
        plan["lines"].append(
            f"evaluation: about {eval_s / 60:.1f} min; already spent: {spent_s / 60:.1f} min "
            f"(prepare, tokenize, baseline, speed probe); kept in reserve: "
            f"{MARGIN * budget_s / 60:.1f} min of the {budget_s / 60:g} min budget"
        )
    if directions == 2:
        plan["lines"].append("the same again for the backward model")
    return plan


def backward_fits(spent_s: float, forward_s: float, eval_s: float, budget_s: float | None = None) -> tuple[bool, str]:
    """backwards = "auto", once the forward direction is trained: train the backward one too? It is taken to
    need what the forward one took (the same texts and schedule). spent_s: the run so far; eval_s: evaluating
    both models. Within a run budget the limit is the budget (less its margin). -> (yes or no, a report line)."""
    limit = budget_s * (1 - MARGIN) if budget_s else BACKWARD_AUTO_S
    end = spent_s + forward_s + eval_s
    if end <= limit:
        return True, (
            f'backward model: trained too (backwards = "auto"): the forward one took {forward_s / 60:.1f} min, '
            f"so with it the run should end at about {end / 60:.1f} min, within {limit / 60:g} min"
        )
    return False, (
        f'backward model: not trained (backwards = "auto"): the forward one took {forward_s / 60:.1f} min, '
        f"so with it the run would end at about {end / 60:.1f} min, past {limit / 60:g} min"
    )

"""The stage graph of `ulmfit run`: which stages a config has, in order, what each reads and where it writes.

The runner runs `plan(cfg)` from top to bottom; `--from`, stages.json, the report and the run folder's
layout all read these entries, so a stage's name and folder are written here and nowhere else.

    prepare -> tokenize -> baseline -> [pretrain] -> [lr_find] -> finetune_lm | lm -> classifier
            (-> the same LM stages and classifier backwards) -> [self_train] -> evaluate
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import RunConfig

CHECKPOINT = "checkpoint.safetensors"  # training.checkpoints.CKPT (not imported: this module stays torch-free)
BWD = "-bwd"  # a backward stage's name and folder: the forward one's + this


@dataclass(frozen=True)
class Kind:
    """One kind of stage. section: the config section its settings come from; folder: its output in the run
    folder; resume: for a training stage, the file in its folder that shows a stopped run to resume (every
    torchrun rank runs a training stage; rank 0 alone runs the others); sized: its settings may be sized to
    the data or the budget (the run sizes once, before the first such stage)."""

    name: str
    section: str
    folder: str
    resume: str | None = None
    sized: bool = False


PREPARE = Kind("prepare", "data", "data")
TOKENIZE = Kind("tokenize", "tokenize", "data/tokens")
BASELINE = Kind("baseline", "baseline", "baseline")
PRETRAIN = Kind("pretrain", "pretrain", "pretrain", CHECKPOINT, sized=True)  # on a general corpus (mode corpus)
LR_FIND = Kind("lr_find", "lr_find", "lr_find", sized=True)  # a side stage: nothing reads it
FINETUNE_LM = Kind("finetune_lm", "finetune_lm", "lm", CHECKPOINT, sized=True)  # a pretrained LM on the target texts
SCRATCH_LM = Kind("lm", "pretrain", "lm", CHECKPOINT, sized=True)  # mode scratch: an LM of the target texts alone
CLASSIFIER = Kind("classifier", "classifier", "classifier", CHECKPOINT, sized=True)
SELF_TRAIN = Kind("self_train", "self_train", "self-train", "self-train")
EVALUATE = Kind("evaluate", "evaluate", "evaluation")
KINDS = (PREPARE, TOKENIZE, BASELINE, PRETRAIN, LR_FIND, FINETUNE_LM, SCRATCH_LM, CLASSIFIER, SELF_TRAIN, EVALUATE)
DIRECTIONAL = (PRETRAIN, FINETUNE_LM, SCRATCH_LM, CLASSIFIER)  # one per direction when [classifier] backwards


@dataclass(frozen=True)
class Stage:
    """One stage of a run: its kind, its direction and the names of the stages whose output it reads (its
    key includes theirs, and it runs again whenever one of them ran)."""

    kind: Kind
    backwards: bool = False
    inputs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return name_of(self.kind, self.backwards)

    @property
    def folder(self) -> str:
        return folder_of(self.kind, self.backwards)


def name_of(kind: Kind, backwards: bool = False) -> str:
    return kind.name + (BWD if backwards else "")


def folder_of(kind: Kind, backwards: bool = False) -> str:
    return kind.folder + (BWD if backwards else "")


# Every name some config's stages can have: what `ulmfit run --from` may be given.
ALL_NAMES = tuple([k.name for k in KINDS] + [name_of(k, True) for k in DIRECTIONAL])


def plan(cfg: dict | RunConfig) -> list[Stage]:
    """The stages of a checked run config (`run.config.validate`, or its RunConfig), in the order they run."""
    rc = cfg if isinstance(cfg, RunConfig) else RunConfig.of(cfg)
    mode = rc.mode
    prep, tok = Stage(PREPARE), Stage(TOKENIZE, inputs=(PREPARE.name,))
    stages = [prep, tok, Stage(BASELINE, inputs=(PREPARE.name,))]
    directions = [False] + ([True] if rc.backwards else [])
    for bwd in directions:
        lm: Stage | None = None
        if mode == "corpus":
            pre = Stage(PRETRAIN, bwd)
            lm = Stage(FINETUNE_LM, bwd, (tok.name, pre.name))
            stages += [pre, *_lr_find(rc, bwd, (tok.name, pre.name)), lm]
        elif mode == "from":
            lm = Stage(FINETUNE_LM, bwd, (tok.name,))
            stages += [*_lr_find(rc, bwd, (tok.name,)), lm]
        elif mode == "scratch":
            lm = Stage(SCRATCH_LM, bwd, (tok.name,))
            stages += [*_lr_find(rc, bwd, (tok.name,)), lm]
        stages.append(Stage(CLASSIFIER, bwd, (tok.name,) + ((lm.name,) if lm else ())))
    fwd_lm = [s.name for s in stages if s.kind in (FINETUNE_LM, SCRATCH_LM) and not s.backwards]
    final = CLASSIFIER.name
    if rc.self_train:  # forward only (config.validate checks)
        stages.append(Stage(SELF_TRAIN, inputs=(tok.name, CLASSIFIER.name, *fwd_lm)))
        final = SELF_TRAIN.name
    ev_inputs = [tok.name, CLASSIFIER.name] + ([name_of(CLASSIFIER, True)] if len(directions) == 2 else [])
    if rc.blend_baseline:
        ev_inputs.append(BASELINE.name)
    if final != CLASSIFIER.name:
        ev_inputs.append(final)
    stages.append(Stage(EVALUATE, inputs=tuple(ev_inputs)))
    return stages


def _lr_find(rc: RunConfig, bwd: bool, inputs: tuple[str, ...]) -> list[Stage]:
    """[lr_find]: once, on the forward LM the next stage trains."""
    return [Stage(LR_FIND, inputs=inputs)] if rc.lr_find and not bwd else []


def names(cfg: dict | RunConfig) -> list[str]:
    return [s.name for s in plan(cfg)]


def final_classifier(cfg: dict | RunConfig) -> Stage:
    """The stage whose classifier is evaluated: the last self-training round's, or the forward classifier's."""
    stages = plan(cfg)
    return next(
        s for s in stages if s.kind is (SELF_TRAIN if any(x.kind is SELF_TRAIN for x in stages) else CLASSIFIER)
    )

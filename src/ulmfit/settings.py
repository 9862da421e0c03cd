"""The settings of every stage: one dataclass per stage, the only place its defaults live.

The Python API takes them (`ulmfit.pretrain(corpus, out, PretrainSettings(epochs=2))`), the CLI builds
each subcommand's options from them (name -> `--name`, type, default, help: `ulmfit.cli.options`), and
`ulmfit run` validates each section of a run config against them (`from_dict`). Each field's help
text lives in its metadata. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from dataclasses import dataclass, field

from .archs import ARCHS
from .archs import PRESETS as MODEL_PRESETS
from .errors import UlmfitError

# ARCHS, MODEL_PRESETS: live name sets that grow as architectures register (ulmfit.models.registry); torch-free.
SCHEDULES = ("one_cycle", "stlr", "constant")
TOKENIZERS = ("spacy", "sentencepiece")
PAPER_STAGES = "1:1:2e-2,2:1:1e-2,3:1:5e-3,all:2:1e-3"  # fast.ai's IMDb recipe (see classifier.task)
# How the table readers read what they are given (ulmfit.data.table), said once for every command that reads tables.
TSV_QUOTES = (
    'read a .tsv with CSV-style double quotes (a field in "..." may hold tabs and line breaks, "" is a '
    "quote); by default a TSV field is its text as it stands, quotes and all"
)
NUMERIC_LABELS = (
    "A label that is a number is the class of its value, in every format: 1, 1.0, 01, +1 and 1e0 are all "
    "class 1, 2.50 is 2.5; other labels are their text, stripped of surrounding spaces"
)
SEED_MAX = 2**32 - 1  # numpy's seeds are unsigned 32-bit numbers
BATCHNORM = "the head's BatchNorm needs two documents per batch"
# Defaults that several settings classes share (each field names one of these rather than repeating it).
MAX_VOCAB = 60000  # tokens kept, specials aside
BPTT = 70  # tokens per backprop-through-time step: the LM's mean sequence length, the classifier's chunk


def opt(
    default,
    help: str,
    *,
    flag: str | None = None,
    choices=None,
    metavar: str | None = None,
    aliases=(),
    negative: str | None = None,
    nargs: str | None = None,
    cli: bool = True,
    **limits,
):
    """A settings field: its default, its limits and what the CLI needs to offer it.

    flag: the option's name if not `--field-name`; aliases: more names for it; negative: a second flag that
    sets the field to False (for a tri-state bool whose None means "decide"); nargs "+": several values after
    one flag (lists default to a repeatable flag); cli=False: settable from Python and run configs only.
    limits: see `bounds` (ge=0, lt=1, length=2, ...), checked whenever the settings are made."""
    meta = {
        "help": help,
        "flag": flag,
        "choices": choices,
        "metavar": metavar,
        "aliases": tuple(aliases),
        "negative": negative,
        "nargs": nargs,
        "cli": cli,
        "bounds": bounds(**limits),
    }
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _type_ok(value, tp) -> bool:
    origin = typing.get_origin(tp)
    if tp is typing.Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(_type_ok(v, args[0]) for v in value) if args else True
    return isinstance(value, tp)


@functools.cache
def field_types(cls) -> dict:
    return typing.get_type_hints(cls)


def type_name(tp) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "nothing"
    if typing.get_origin(tp) in (list, tuple):
        return f"a list of {type_name(typing.get_args(tp)[0])}"
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }.get(tp, str(tp))


# ------------------------------------------------------------------------- checking settings


def bounds(*, ge=None, gt=None, le=None, lt=None, length=None, min_len=None, why=None) -> dict:
    """A field's limits (field metadata "bounds"): ge/gt/le/lt bound a number, or each number of a list or
    tuple; length: a tuple's exact number of values; min_len: a list's fewest values; why: the reason for
    a bound that is not obvious, told with it."""
    return {
        k: v
        for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, length=length, min_len=min_len, why=why).items()
        if v is not None
    }


class SettingsError(UlmfitError):
    """A settings field with a wrong type or out of its bounds. `message(name)` words it with each field
    called `name(field)`: the CLI passes its flags (--clip), run configs their keys (key 'clip'); str() is
    the Python wording ("TrainClassifierSettings: field 'clip' must be >= 0, got -1")."""

    def __init__(self, owner: str, field: str, problem):
        # problem: text after the field's name, or a function of `name` for one that names several fields
        self.owner, self.field, self.problem = owner, field, problem
        super().__init__(f"{owner}: {self.message(lambda f: f'field {f!r}')}")

    def message(self, name) -> str:
        return self.problem(name) if callable(self.problem) else f"{name(self.field)} {self.problem}"


def _num(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _range_text(b) -> str:
    lo = ("[", b["ge"]) if "ge" in b else ("(", b["gt"]) if "gt" in b else None
    hi = ("]", b["le"]) if "le" in b else (")", b["lt"]) if "lt" in b else None
    if lo and hi:
        return f"in {lo[0]}{_num(lo[1])}, {_num(hi[1])}{hi[0]}"
    if lo:
        return f"{'>=' if lo[0] == '[' else '>'} {_num(lo[1])}"
    assert hi, "a bound to describe"
    return f"{'<=' if hi[0] == ']' else '<'} {_num(hi[1])}"


def _in_range(v, b) -> bool:
    # written as `not`-free comparisons so that NaN is out of every range
    return (
        ("ge" not in b or v >= b["ge"])
        and ("gt" not in b or v > b["gt"])
        and ("le" not in b or v <= b["le"])
        and ("lt" not in b or v < b["lt"])
    )


def _wants(tp, origin) -> bool:
    """tp (or a member of its union) is a list/tuple type."""
    args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    return any(typing.get_origin(a) is origin for a in args)


def _wants_strings(tp) -> bool:
    args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    return any(typing.get_origin(a) is list and typing.get_args(a) == (str,) for a in args)


def check(obj, owner: str | None = None):
    """Check every field of the dataclass `obj` against its type, choices and bounds (its metadata); raise
    SettingsError naming the first wrong one. Normalizes in place: a lone string where a list of strings is
    expected is a one-element list (text_col="text" means ["text"]); a list given for a tuple is a tuple."""
    cls: type = type(obj)  # not inferred: mypy wrongly takes type[Any] for unhashable (field_types is cached)
    owner = owner or cls.__name__
    hints = field_types(cls)
    for f in dataclasses.fields(obj):
        v, tp, m = getattr(obj, f.name), hints[f.name], f.metadata
        if isinstance(v, str) and _wants_strings(tp):
            v = [v]
            setattr(obj, f.name, v)
        elif isinstance(v, list) and _wants(tp, tuple):
            v = tuple(v)
            setattr(obj, f.name, v)
        elif _is_numpy_number(v) and _wants_number(tp):
            v = v.item()  # a numpy scalar (a size computed with numpy) as the Python number it holds
            setattr(obj, f.name, v)
        if not _type_ok(v, tp):
            raise SettingsError(owner, f.name, f"must be {type_name(tp)}, got {v!r}")
        if v is None:
            continue
        if m.get("choices") and v not in m["choices"]:
            raise SettingsError(owner, f.name, f"must be one of {', '.join(m['choices'])}, got {v!r}")
        b = m.get("bounds") or {}
        seq = isinstance(v, (list, tuple))
        if seq and "length" in b and len(v) != b["length"]:
            raise SettingsError(owner, f.name, f"takes {b['length']} values, got {len(v)}: {_values_text(v)}")
        if seq and len(v) < b.get("min_len", 0):
            raise SettingsError(owner, f.name, f"needs at least {b['min_len']} value(s), got {len(v)}")
        if any(k in b for k in ("ge", "gt", "le", "lt")):
            bad = [x for x in (v if seq else [v]) if not _in_range(x, b)]
            if bad:
                what = "values must be" if seq else "must be"
                why = f" ({b['why']})" if "why" in b else ""
                raise SettingsError(owner, f.name, f"{what} {_range_text(b)}{why}, got {_num(bad[0])}")


def _wants_number(tp) -> bool:
    args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    return any(a in (int, float) for a in args)


def _is_numpy_number(v) -> bool:
    return type(v).__module__ == "numpy" and hasattr(v, "item") and getattr(v, "shape", None) == ()


def _values_text(v) -> str:
    return ",".join(_num(x) for x in v) or "none"


class Settings:
    """Base of the settings dataclasses: made from Python, the CLI or a run config, each is checked at once
    (`check`); a subclass's __post_init__ adds the checks that relate fields (calling this one first)."""

    def __post_init__(self):
        check(self)


def from_dict(cls, d: dict, where: str):
    """Settings of class `cls` from a mapping (a run-config section), checking every key, type and bound.
    Errors name `where` (e.g. "my.toml: [classifier]") and the key."""
    names = {f.name for f in dataclasses.fields(cls)}
    for key in d:
        if key not in names:
            close = difflib.get_close_matches(str(key).replace("-", "_"), sorted(names), n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(names))})"
            raise UlmfitError(f"{where}: unknown key {key!r}{hint}")
    try:
        return cls(**d)  # checked by the class (Settings.__post_init__)
    except SettingsError as e:
        raise UlmfitError(f"{where}: {e.message(lambda name: f'key {name!r}')}") from None


def to_dict(settings) -> dict:
    return dataclasses.asdict(settings)


# Settings a resumed run may change: where and how fast it runs, not what it computes.
RUN_ONLY = {"resume", "quiet", "threads", "device", "max_minutes", "ckpt_every", "fp32"}


def identity(settings, ignore=(), **inputs) -> dict:
    """What makes two runs the same run: the settings that shape training (all but RUN_ONLY and `ignore`),
    and the inputs' fingerprints."""
    d = {k: v for k, v in dataclasses.asdict(settings).items() if k not in RUN_ONLY and k not in ignore}
    return json_safe({**d, **inputs})


def json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj if isinstance(obj, (str, int, float, bool, type(None))) else str(obj)


def replace(settings, **changes):
    return dataclasses.replace(settings, **changes)


def default(cls, name: str):
    """The default of field `name` of settings class `cls`: what core code names instead of repeating it."""
    f = cls.__dataclass_fields__[name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


# ------------------------------------------------------------------------------------ prepare


@dataclass
class PrepareSettings(Settings):
    """What every `prepare` source shares."""

    lm_valid_frac: float = opt(0.1, "share of all texts held out to validate the language model", ge=0, lt=1)
    seed: int = opt(42, "seed of the random splits", ge=0, le=SEED_MAX)
    force: bool = opt(False, "prepare again even if the folder already matches the inputs")
    quiet: bool = opt(False, "no progress bars")


@dataclass
class LabelledPrepareSettings(PrepareSettings):
    valid_frac: float = opt(
        0.0,
        "share of the labelled training rows held out as a `valid` split (0: the test "
        "set, if any, is used for validation)",
        ge=0,
        lt=1,
    )


@dataclass
class ImdbSettings(PrepareSettings):
    """`prepare imdb`: the aclImdb layout (folder, tarball or URL)."""


@dataclass
class TableSettings(LabelledPrepareSettings):
    """`prepare table`: CSV/TSV, Parquet or JSON Lines with text and label columns."""

    text_col: list[str] = opt(
        ["text"], "a text column (repeat for several fields: `xxfld N` before field N)", metavar="COL", min_len=1
    )
    label_col: list[str] | None = opt(
        None,
        "the label column (omit for unlabelled data); repeat it for multi-label "
        "data held as 0/1 columns, one per label. " + NUMERIC_LABELS,
        metavar="COL",
        min_len=1,
    )
    label_sep: str | None = opt(
        None,
        "multi-label: the label cell holds several labels separated by SEP (e.g. "
        "'|'), or in JSONL/Parquet a list of labels; an empty cell means no label applies",
        metavar="SEP",
    )
    test: str | None = opt(None, "a labelled test table (same columns)", metavar="FILE")
    unlabelled: list[str] = opt(
        [],
        "tables of texts without labels, for the language model (and the pool that `self-train` labels)",
        metavar="FILE",
        nargs="+",
    )
    tsv_quotes: bool = opt(False, TSV_QUOTES)


@dataclass
class FolderSettings(LabelledPrepareSettings):
    """`prepare folder`: DIR/CLASS/*.txt or DIR/{train,test}/CLASS/*.txt."""


@dataclass
class CorpusSettings(PrepareSettings):
    """`prepare corpus`: unlabelled text (JSON Lines with a text field, or one document per line)."""

    text_field: str = opt("text", "the JSON field holding the text")
    max_docs: int | None = opt(None, "read at most this many documents", metavar="N", ge=1)
    max_words: int | None = opt(None, "stop after about this many words (a slice for a quick run)", metavar="N", ge=1)


# ----------------------------------------------------------------------------------- tokenize


@dataclass
class TokenizeSettings(Settings):
    tokenizer: str = opt(
        "spacy",
        "tokenizer backend (spacy: blank English rules; sentencepiece: a unigram model "
        "trained on the LM training texts)",
        choices=TOKENIZERS,
    )
    max_vocab: int = opt(MAX_VOCAB, "most tokens kept, specials aside", metavar="N", ge=1)
    min_freq: int = opt(3, "least count for a token to be kept", metavar="N", ge=1)
    sp_vocab_size: int | None = opt(
        None, "SentencePiece pieces to learn (default min(max-vocab, 30000))", metavar="N", ge=1
    )
    keep_vocab: str | None = opt(
        None,
        "also keep every word of this language model's vocab (a folder, a shipped "
        "model's name or a vocab.json) that occurs at all, below --min-freq too: its "
        'embedding is pretrained (`ulmfit run`: "pretrained" = the [pretrain] folder)',
        metavar="LM",
    )
    workers: int | None = opt(None, "processes to tokenize with (default: all cores)", metavar="N", ge=1)
    force: bool = opt(False, "tokenize again even if the cached store matches")
    quiet: bool = opt(False, "no progress bar")


# ----------------------------------------------------------------------------- language model


@dataclass
class ComputeSettings(Settings):
    device: str | None = opt(None, "torch device, e.g. cpu or cuda:0 (default: cuda if available)")
    threads: int | None = opt(None, "CPU threads (default: all cores)", metavar="N", ge=1)
    fp32: bool = opt(False, "compute in float32 only (default: bf16 autocast on GPUs and on CPUs where it is faster)")
    quiet: bool = opt(False, "no progress bars or per-epoch lines")


@dataclass
class RunControlSettings(ComputeSettings):
    max_minutes: float | None = opt(
        None,
        "stop after M minutes; the epoch cut short is validated and saved, "
        "--resume continues it (0: stop at the first step, a checkpoint to resume)",
        metavar="M",
        ge=0,
    )
    ckpt_every: int = opt(0, "also write a checkpoint every N steps (0: at epoch ends only)", metavar="N", ge=0)
    patience: int | None = opt(
        None,
        "stop the last phase after N epochs without a better validation score (loss "
        "for a language model, accuracy for a classifier); the folder keeps the best epoch "
        "(default: every epoch runs)",
        metavar="N",
        ge=1,
    )
    resume: bool = opt(
        False, "continue from the checkpoint in the output folder (same settings); exact, as if never stopped"
    )


@dataclass
class LMDataSettings(Settings):
    valid_tokens: int | None = opt(
        None,
        "validate on the first N tokens of lm_valid only (default: all; a cap keeps CPU runs short)",
        metavar="N",
        ge=1,
    )
    bs: int = opt(64, "batch size: parallel text streams", metavar="N", ge=1)
    bptt: int = opt(BPTT, "mean sequence length for backprop through time; varied per batch", metavar="N", ge=1)


@dataclass
class LMOptimSettings(Settings):
    schedule: str = opt(
        "one_cycle",
        "lr schedule of each phase: fastai's one-cycle, the paper's slanted triangular "
        "lr (cut_frac 0.1, ratio 32), or constant",
        choices=SCHEDULES,
    )
    wd: float = opt(0.01, "decoupled weight decay of AdamW", ge=0)
    moms: tuple[float, ...] = opt(
        (0.8, 0.7, 0.8),
        "one-cycle Adam beta1 cycle: start, middle, end (fastai's text learners)",
        metavar="M0,M1,M2",
        ge=0,
        lt=1,
        length=3,
    )
    betas: tuple[float, ...] = opt(
        (0.9, 0.99), "Adam betas; beta1 is cycled by --moms under one-cycle", metavar="B1,B2", ge=0, lt=1, length=2
    )
    clip: float = opt(0.4, "gradient norm clipping, 0 for none", ge=0)
    alpha: float = opt(2.0, "AR: activation regularization weight", ge=0)
    beta: float = opt(1.0, "TAR: temporal activation regularization weight", ge=0)
    seed: int = opt(0, "random seed of initialisation, dropout and batches", ge=0, le=SEED_MAX)
    sampled: int = opt(
        0,
        "train with a sampled softmax of N words per step instead of the full vocab (e.g. 2048: "
        "about 10x faster per token with a 60k vocab on a CPU); validation stays exact (0: off)",
        metavar="N",
        ge=0,
    )


@dataclass
class PretrainSettings(LMDataSettings, LMOptimSettings, RunControlSettings):
    """`pretrain`: a language model from scratch (ULMFiT stage 1)."""

    arch: str = opt(
        "awd_lstm", "encoder architecture: awd_lstm, or qrnn (several times faster on a CPU with bf16)", choices=ARCHS
    )
    preset: str = opt(
        "small",
        "model size: paper (400/1150/3 layers), medium (256/1024/3), small (200/600/3, "
        "CPU-friendly), cpu (128/384/3, for 2-core CPUs), tiny (tests)",
        choices=MODEL_PRESETS,
    )
    drop_mult: float = opt(1.0, "multiplier of all the preset's dropouts", ge=0)
    epochs: int = opt(10, "epochs", metavar="N", ge=1)
    max_steps: int | None = opt(
        None,
        "train at most N steps (the last epoch is cut short); the lr schedule is fitted to them",
        metavar="N",
        ge=1,
    )
    backwards: bool = opt(False, "train on the reversed text (for a backwards model)")
    lr: float = opt(5e-3, "peak learning rate", metavar="LR", gt=0)
    # when the corpus is given as files (prepared and tokenized into OUT/corpus first)
    max_words: int | None = opt(None, "corpus files: read only about the first N words", metavar="N", ge=1)
    max_vocab: int = opt(MAX_VOCAB, "corpus files: vocab size", metavar="N", ge=1)
    min_freq: int = opt(3, "corpus files: least token count in the vocab", metavar="N", ge=1)
    tokenizer: str = opt("spacy", "corpus files: tokenizer backend", choices=TOKENIZERS)


@dataclass
class FinetuneSettings(LMDataSettings, LMOptimSettings, RunControlSettings):
    """`finetune-lm`: a pretrained language model on the target texts (ULMFiT stage 2)."""

    frozen_epochs: int = opt(
        1, "epochs training only the embedding/decoder group (0 skips the phase)", metavar="N", ge=0
    )
    frozen_lr: float = opt(2e-2, "peak lr of the frozen phase", metavar="LR", gt=0)
    frozen_steps: int | None = opt(
        None, "stop the frozen phase after N steps (its lr schedule is fitted to them)", metavar="N", ge=1
    )
    epochs: int = opt(10, "epochs with everything unfrozen", metavar="N", ge=0)
    max_steps: int | None = opt(
        None, "stop the unfrozen phase after N steps (its lr schedule is fitted to them)", metavar="N", ge=1
    )
    lr: float = opt(2e-3, "peak learning rate of the unfrozen phase", metavar="LR", gt=0)
    lr_div: float = opt(2.6, "discriminative lr factor between layer groups when unfrozen; 1 for one lr", gt=0)
    drop_mult: float = opt(0.3, "multiplier of the model's dropouts while fine-tuning (the fast.ai course's 0.3)", ge=0)

    def __post_init__(self):
        super().__post_init__()
        if self.frozen_epochs == 0 and self.epochs == 0:
            raise SettingsError(
                type(self).__name__,
                "epochs",
                lambda name: f"nothing to train: {name('frozen_epochs')} and {name('epochs')} are both 0",
            )


@dataclass
class EvaluateLMSettings(LMDataSettings, ComputeSettings):
    """`evaluate-lm`: loss, accuracy and perplexity (exact, full softmax) on a split."""

    split: str = opt("lm_valid", "the split to measure")


@dataclass
class LRFindLMSettings(LMDataSettings, LMOptimSettings, ComputeSettings):
    """`lr-find`: a short run with an exponentially growing lr on a language model."""

    arch: str = opt("awd_lstm", "encoder architecture without --from", choices=ARCHS)
    preset: str = opt("small", "model size without --from", choices=MODEL_PRESETS)
    frozen: bool = opt(False, "only the embedding/decoder group trains (the frozen phase)")
    drop_mult: float | None = opt(None, "dropout multiplier (default: 1 fresh, 0.3 with --from)", ge=0)
    start: float = opt(1e-7, "first lr", gt=0)
    end: float = opt(10.0, "last lr", gt=0)
    steps: int = opt(100, "most batches to run", ge=1)
    backwards: bool = opt(False, "a backwards model (fresh model only; --from knows)")

    def __post_init__(self):
        super().__post_init__()
        if not self.start < self.end:
            raise SettingsError(
                type(self).__name__,
                "start",
                lambda name: f"{name('start')} must be below {name('end')}, got {self.start:g} and {self.end:g}",
            )


# ---------------------------------------------------------------------------------- classifier


@dataclass
class TrainClassifierSettings(RunControlSettings):
    """`train-classifier`: BPT3C + concat pooling over a fine-tuned LM's encoder (ULMFiT stage 3)."""

    backwards: bool | None = opt(None, "read documents backwards (default: as the language model was trained)")
    arch: str = opt("awd_lstm", "encoder architecture without a language model", choices=ARCHS)
    preset: str = opt("small", "model size without a language model", choices=MODEL_PRESETS)
    # data
    train_split: str = opt("train", "split to train on")
    valid_split: str | None = opt(None, "split to validate on (default: valid if the dataset has one, else test)")
    valid_frac: float | None = opt(
        None,
        "validate on a fixed random fraction F of the train split instead "
        "(stratified by class), which is then left out of training: keeps the test "
        "split unseen until evaluation",
        metavar="F",
        gt=0,
        lt=1,
    )
    limit_train: int | None = opt(None, "train on a fixed random N documents only", metavar="N", ge=2, why=BATCHNORM)
    limit_valid: int | None = opt(None, "validate on a fixed random N documents only", metavar="N", ge=1)
    bs: int = opt(64, "documents per batch", metavar="N", ge=2, why=BATCHNORM)
    bptt: int = opt(BPTT, "tokens per BPT3C chunk", metavar="N", ge=1)
    max_len: int = opt(20 * BPTT, "pool over each document's last N tokens", metavar="N", ge=1)
    eos: bool = opt(False, "append an end-of-document token")
    # model
    drop_mult: float = opt(0.5, "multiplier of the classifier dropouts (fastai's awd_lstm_clas_config)", ge=0)
    head: list[int] = opt([50], "hidden sizes of the head", metavar="N[,N]", ge=1, min_len=1)
    multi_label: bool = opt(
        False, "independent labels (sigmoid + threshold); the default when the dataset is multi-label"
    )
    threshold: float = opt(0.5, "multi-label decision threshold", gt=0, lt=1)
    # optimisation
    stages: str = opt(
        PAPER_STAGES,
        "training phases as TRAINABLE:EPOCHS:LR: the top TRAINABLE layer groups train "
        "(1 = the head, 2 = + the top layer, ..., all), for EPOCHS epochs at peak lr LR (the head's)",
        metavar="N:E:LR,...",
    )
    lr_mult: float = opt(1.0, "multiply every stage's lr", gt=0)
    lr_div: float = opt(2.6, "discriminative lr factor between groups", gt=0)
    schedule: str = opt(
        "stlr", "lr schedule of each stage (stlr: slanted triangular, cut_frac 0.1, ratio 32)", choices=SCHEDULES
    )
    betas: tuple[float, ...] = opt((0.7, 0.99), "Adam betas", metavar="B1,B2", ge=0, lt=1, length=2)
    moms: tuple[float, ...] = opt(
        (0.8, 0.7, 0.8), "beta1 cycle under --schedule one_cycle", metavar="M0,M1,M2", ge=0, lt=1, length=3
    )
    wd: float = opt(0.01, "AdamW weight decay", ge=0)
    clip: float = opt(0.0, "gradient norm clipping, 0 for none", ge=0)
    seed: int = opt(0, "random seed", ge=0, le=SEED_MAX)
    max_steps: int | None = opt(None, "stop after N steps in all (--resume continues)", metavar="N", ge=1)
    # learning-rate finder
    lr_find: bool = opt(
        False,
        "instead of training: sweep the lr over --lr-find-steps batches with the first "
        "stage's layers trainable, write lr_find.csv/.json/.png and print the suggested lr",
    )
    lr_find_steps: int = opt(100, "batches in the sweep", metavar="N", ge=1)
    lr_find_range: tuple[float, ...] = opt(
        (1e-7, 10.0), "lrs swept, exponentially", metavar="START,END", gt=0, length=2
    )

    def __post_init__(self):
        super().__post_init__()
        me = type(self).__name__
        if self.valid_frac is not None and self.valid_split is not None:
            raise SettingsError(
                me, "valid_frac", lambda name: f"give {name('valid_split')} or {name('valid_frac')}, not both"
            )
        if not self.lr_find_range[0] < self.lr_find_range[1]:
            raise SettingsError(
                me, "lr_find_range", f"must go from a lower to a higher lr, got {_values_text(self.lr_find_range)}"
            )


@dataclass
class SelfTrainSettings(TrainClassifierSettings):
    """`self-train`: few labels, many unlabelled texts: train-classifier, then rounds of labelling the unlabelled
    documents with the classifier (blended with TF-IDF) and training again on labels + the surest of them."""

    rounds: list[float] = opt(
        [0.15, 0.4, 0.67],
        "one round per entry: add the documents per class the teacher is "
        "surest of (N, or a share F < 1 of the unlabelled pool split between the classes), then "
        "train a new classifier from --lm",
        metavar="N|F[,...]",
        gt=0,
        min_len=1,
    )
    teacher_weight: float = opt(
        0.5,
        "the classifier's weight in the teacher, the TF-IDF baseline (trained on the "
        "same labels) having the rest; 1: the classifier alone",
        metavar="W",
        ge=0,
        le=1,
    )
    student_stages: str = opt(
        "1:1:4e-2,2:1:2e-2,all:2:5e-3",
        "--stages of the rounds after the first, which train on "
        "thousands of documents: 4 epochs (measured on IMDb and agnews-small)",
        metavar="N:E:LR,...",
    )

    def __post_init__(self):
        super().__post_init__()
        if any(k > 1 and not float(k).is_integer() for k in self.rounds):
            raise SettingsError(
                type(self).__name__,
                "rounds",
                "takes documents per class (whole numbers) or shares "
                f"of the pool (below 1), got {_values_text(self.rounds)}",
            )
        if self.lr_find:
            raise SettingsError(
                type(self).__name__, "lr_find", "belongs to train-classifier (the sweep of round 0 is the same there)"
            )


@dataclass
class InferenceSettings(Settings):
    int8: bool | None = opt(
        None,
        "int8 dynamic quantized recurrent layers (fast CPU serving); default: as the folder says",
        negative="--float32",
    )
    bs: int = opt(64, "documents per batch", metavar="N", ge=1)
    threads: int | None = opt(None, "CPU threads (default: all cores)", metavar="N", ge=1)
    workers: int | None = opt(
        None,
        "batches predicted at once, sharing the threads (default: one per thread, at most 4: on 2 cores two "
        "1-thread batches beat one 2-thread batch for every int8 backend, by up to 1.4x; float32 ties or wins, "
        "docs/benchmarks.md)",
        metavar="N",
        ge=1,
    )
    onnx: bool = opt(False, "run the folder's ONNX export with onnxruntime (`export-classifier --onnx`)")
    quiet: bool = opt(False, "no progress bar")
    ensemble: list[str] = opt(
        [], "average probabilities with this classifier too (e.g. the backward model); repeatable", metavar="DIR2"
    )
    blend: str | None = opt(
        None,
        "blend with a saved TF-IDF baseline (the folder `ulmfit baseline --out` or a run's "
        "baseline/ writes): the weighted mean of the two models' probabilities",
        metavar="DIR",
    )
    blend_weight: float | None = opt(
        None,
        "ULMFiT's weight in the blend, 0-1 (evaluate: default the weight that does "
        "best on the classifier's held-out validation documents)",
        metavar="W",
        ge=0,
        le=1,
    )


@dataclass
class PredictSettings(InferenceSettings):
    """`predict`: labels and probabilities for raw texts."""

    input: str | None = opt(None, "read texts from FILE (.txt, .csv, .tsv, .jsonl, .parquet)", metavar="FILE")
    text_col: str = opt("text", "the text column of a table input")
    output: str | None = opt(None, "write the JSON lines to FILE (default stdout)", metavar="FILE")
    tsv_quotes: bool = opt(False, TSV_QUOTES)


@dataclass
class EvaluateSettings(InferenceSettings):
    """`evaluate`: accuracy, macro-F1 and the confusion matrix on labelled data."""

    split: str | None = opt(None, "the dataset split (default: test, else valid)")
    text_col: str = opt("text", "text column of a table file")
    label_col: str = opt("label", "label column of a table file. " + NUMERIC_LABELS)
    tsv_quotes: bool = opt(False, TSV_QUOTES)
    limit: int | None = opt(None, "evaluate a fixed random N documents only", metavar="N", ge=1)
    out: str | None = opt(None, "write evaluation.json + evaluation.png here", metavar="DIR")


@dataclass
class ExportSettings(Settings):
    """`export-classifier`: a serving copy of a classifier folder."""

    int8: bool = opt(False, "load quantized (int8 dynamic recurrent layers) by default; with --onnx: int8 ONNX graphs")
    onnx: bool = opt(
        False,
        "also write ONNX graphs of the chunk step and the head (chunk.onnx, head.onnx), which "
        "`predict --onnx`, `serve --onnx` and any ONNX runtime run",
    )


@dataclass
class ExplainSettings(Settings):
    """`explain`: per-token contributions to a prediction (integrated gradients on the input embeddings)."""

    steps: int = opt(
        32,
        "integration steps from the zero-embedding baseline to the text (more: closer to the exact integral, slower)",
        metavar="N",
        ge=1,
    )
    html: str | None = opt(None, "also write a standalone HTML page of the shaded tokens to FILE", metavar="FILE")
    threads: int | None = opt(None, "CPU threads (default: all cores)", metavar="N", ge=1)


@dataclass
class ServeSettings(InferenceSettings):
    """`serve`: a classifier behind an HTTP API with dynamic batching and request limits (`ulmfit.serve`).
    bs is the largest batch the server gathers; threads are set once at start-up (per worker)."""

    host: str = opt("127.0.0.1", "address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface)")
    port: int = opt(8000, "TCP port (0: any free port)", metavar="PORT", ge=0, le=65535)
    workers: int | None = opt(
        None,
        "inference workers, each running one batch at a time (default: one per core, at most 4; torch threads per "
        "worker: --threads, default cores / N). On 2 cores, 2 workers of 1 thread served 1.25x the requests of 1 "
        "worker of 2 at the same single-request latency (docs/serving.md)",
        metavar="N",
        ge=1,
    )
    batch_ms: float = opt(
        5.0, "how long a batch waits for more requests once a worker is free (milliseconds)", metavar="MS", ge=0
    )
    max_texts: int = opt(64, "texts per request (more: 413)", metavar="N", ge=1)
    max_chars: int = opt(20000, "characters per text (more: 413)", metavar="N", ge=1)
    max_body: int = opt(2_000_000, "bytes per request body (more: 413)", metavar="BYTES", ge=1)
    max_queue: int = opt(1024, "texts waiting for a worker (more: 503 with Retry-After)", metavar="N", ge=1)
    timeout: float = opt(30.0, "seconds a request may wait for its result (more: 504)", metavar="S", gt=0)
    explain_steps: int = opt(ExplainSettings.steps, "integration steps of POST /explain (the page)", metavar="N", ge=1)


# -------------------------------------------------------------------------------- model tools


@dataclass
class GenerateSettings(Settings):
    """`generate`: continue a prompt with words sampled from a language model."""

    n_words: int = opt(40, "how many tokens to sample", metavar="N", ge=1)
    temperature: float = opt(0.8, "softmax temperature: lower is more conservative, 0 is greedy", metavar="T", ge=0)
    seed: int | None = opt(None, "random seed, for reproducible samples", metavar="S", ge=0, le=SEED_MAX)


# ----------------------------------------------------------------------------------- baseline


@dataclass
class BaselineSettings(Settings):
    """`baseline`: what you would get without the language model, in seconds (TF-IDF + logistic regression)."""

    train_split: str = opt("train", "split to train on")
    valid_frac: float | None = opt(
        None,
        "hold out the same stratified fraction of the train split as "
        "train-classifier --valid-frac does (same documents), and report on it too",
        metavar="F",
        gt=0,
        lt=1,
    )
    split: str | None = opt(None, "the split to report on (default: test, else valid)")
    limit_train: int | None = opt(
        None, "train on the same fixed random N documents as train-classifier --limit-train N", metavar="N", ge=2
    )
    ngram_max: int = opt(2, "word n-grams from 1 to N", metavar="N", ge=1)
    min_df: int = opt(1, "least number of training documents an n-gram must appear in", metavar="N", ge=1)
    c: float = opt(4.0, "inverse regularization strength of the logistic regression", metavar="C", gt=0)
    out: str | None = opt(
        None,
        "write baseline.json and the model (tfidf.json + tfidf.safetensors: what "
        "`evaluate --blend` and `predict --blend` read) here",
        metavar="DIR",
    )
    quiet: bool = opt(False, "no progress lines")

"""Run configs: TOML (or YAML) files, or the name of a preset shipped in ulmfit/configs/."""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import UlmfitError
from ..settings import (
    BaselineSettings,
    EvaluateSettings,
    FinetuneSettings,
    LRFindLMSettings,
    PretrainSettings,
    SelfTrainSettings,
    Settings,
    TokenizeSettings,
    TrainClassifierSettings,
    from_dict,
)
from .budget import parse_duration

# Each section's settings class: its keys are the stage's settings (the same names as the command's options).
SECTION_SETTINGS: dict[str, type[Settings]] = {
    "tokenize": TokenizeSettings,
    "pretrain": PretrainSettings,
    "finetune_lm": FinetuneSettings,
    "classifier": TrainClassifierSettings,
    "evaluate": EvaluateSettings,
    "lr_find": LRFindLMSettings,
    "baseline": BaselineSettings,
    "self_train": SelfTrainSettings,
}


def data_settings(kind: str) -> type[Settings]:
    """[data] kind -> its settings class: a registered labelled source (`ulmfit.data.sources`)."""
    from ..data import sources

    return sources.get(kind).settings


SECTIONS = ("data", "tokenize", "pretrain", "finetune_lm", "classifier", "evaluate")
# lr_find, self_train: run when present; baseline: always runs, settings optional
OPTIONAL_SECTIONS = ("lr_find", "baseline", "self_train")
PRETRAIN_MODES = ("corpus", "from", "scratch", "none")
# Keys that steer the run rather than a stage, with their types; the rest of a section is the stage's settings.
RUN_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "data": {"kind": str, "source": str},
    "pretrain": {"mode": str, "corpus": list, "folder": str},
    "finetune_lm": {"budget": (str, int, float)},
    "classifier": {"backwards": (bool, str), "budget": (str, int, float)},
}
# Top-level keys: besides name/description/base, how the training stages are sized (ulmfit.run.budget) and
# how many processes train (torchrun, ulmfit.training.distributed).
TOP_KEYS = ("name", "description", "base", "budget", "sizing", "nproc")
SIZINGS = ("fixed", "data")
CLASSIFIER_KEYS = set(TrainClassifierSettings.__dataclass_fields__)
SELF_TRAIN_KEYS = set(SelfTrainSettings.__dataclass_fields__) - CLASSIFIER_KEYS
# Settings the runner owns (where each stage reads and writes, resuming, progress): not for a config.
RUNNER_OWNED = {"resume", "quiet", "out", "ensemble"}


@dataclass(frozen=True)
class RunConfig:
    """A checked run config (`validate`), typed: the keys that steer the run as fields. The stage sections'
    own keys stay tables in `raw` (the dict it was read from, which report.json and --print-config write),
    read through `stage_settings` into each stage's settings object."""

    raw: dict
    name: str
    nproc: int
    sizing: str  # one of SIZINGS
    budget: str | int | float | None  # the whole run's time budget
    finetune_budget: str | int | float | None  # [finetune_lm] budget
    classifier_budget: str | int | float | None  # [classifier] budget
    data_kind: str  # [data] kind: a labelled source of ulmfit.data.sources
    source: str | None  # [data] source
    mode: str  # [pretrain] mode: one of PRETRAIN_MODES
    corpus: tuple[str, ...]  # [pretrain] corpus (mode corpus)
    folder: str | None  # [pretrain] folder (mode from): a language-model folder or shipped name
    backwards: bool | str  # [classifier] backwards: a backward LM and classifier too, ensembled; "auto": when
    # the run has time for it (runner: decided once the forward classifier is trained)
    lr_find: bool  # an [lr_find] section: the lr finder before the first LM training stage
    self_train: bool  # a [self_train] section: rounds after the classifier
    blend_baseline: bool  # [evaluate] blend = "baseline": blend with this run's own baseline stage

    @classmethod
    def of(cls, cfg: dict) -> RunConfig:
        pre, clas = cfg["pretrain"], cfg["classifier"]
        return cls(
            raw=cfg,
            name=cfg["name"],
            nproc=cfg["nproc"],
            sizing=cfg["sizing"],
            budget=cfg.get("budget"),
            finetune_budget=cfg["finetune_lm"].get("budget"),
            classifier_budget=clas.get("budget"),
            data_kind=cfg["data"]["kind"],
            source=cfg["data"].get("source"),
            mode=pre["mode"],
            corpus=tuple(str(p) for p in pre.get("corpus") or ()),
            folder=pre.get("folder"),
            backwards=clas["backwards"] if clas.get("backwards") == "auto" else bool(clas.get("backwards")),
            lr_find="lr_find" in cfg,
            self_train="self_train" in cfg,
            blend_baseline=(cfg["evaluate"].get("blend") or None) == "baseline",
        )


def preset_names():
    return sorted(p.name[:-5] for p in resources.files("ulmfit.configs").iterdir() if p.name.endswith(".toml"))


def preset_text(name) -> str:
    f = resources.files("ulmfit.configs") / f"{name}.toml"
    if not f.is_file():
        raise UlmfitError(f"no preset {name!r} (presets: {', '.join(preset_names())})")
    return f.read_text(encoding="utf-8")


def auto_preset() -> str:
    """The IMDb preset for this machine: imdb-fast on a GPU, imdb-cpu otherwise."""
    import torch

    return "imdb-fast" if torch.cuda.is_available() else "imdb-cpu"


def load_config(name_or_path) -> dict:
    name = str(name_or_path)
    path = Path(name)
    if path.suffix in (".toml", ".yaml", ".yml") or path.is_file():
        if not path.exists():
            raise UlmfitError(f"{path}: no such config file")
        text = path.read_text(encoding="utf-8")
        where = str(path)
    else:
        if name == "imdb":
            name = auto_preset()
        text, where = preset_text(name), f"preset {name}"
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise UlmfitError(f"{path}: reading YAML needs PyYAML (pip install pyyaml), or use TOML") from None
        try:
            cfg = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise UlmfitError(f"{path}: not valid YAML: {e}") from None
    else:
        try:
            cfg = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise UlmfitError(f"{where}: not valid TOML: {e}") from None
    return validate(with_base(cfg, where), where)


def auto_text_preset() -> str:
    """The generic preset for one's own data on this machine: text-gpu on a GPU, text-cpu otherwise."""
    import torch

    return "text-gpu" if torch.cuda.is_available() else "text-cpu"


def with_base(cfg: dict, where: str) -> dict:
    """A config with `base = "PRESET"` is that preset with the file's sections laid over it, key by key; a config
    with nothing but [data] (and a name/description), or whose [data] names no `kind`, gets the generic preset for
    this machine as its base (so `[classifier] patience = 3` beside a [data] section changes only that key)."""
    base = cfg.get("base")
    data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    if base is None and (set(cfg) <= {"data", *TOP_KEYS} or (data and "kind" not in data)):
        base = auto_text_preset()
    if base is None:
        return cfg
    if not isinstance(base, str):
        raise UlmfitError(f"{where}: key 'base' must be a preset name, got {base!r}")
    merged = tomllib.loads(preset_text(base))
    for k, v in cfg.items():
        if k == "base":
            continue
        merged[k] = {**merged.get(k, {}), **v} if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    merged["name"] = cfg.get("name") or (Path(where).stem if where.endswith((".toml", ".yaml", ".yml")) else base)
    return merged


def validate(cfg: dict, where: str) -> dict:
    """Check a whole run config at load time, before any stage runs: sections, every key and its type
    (against the stage's settings class). Errors name `where`, the section and the key."""
    cfg = copy.deepcopy(cfg)
    unknown = set(cfg) - set(SECTIONS) - set(OPTIONAL_SECTIONS) - set(TOP_KEYS)
    if unknown:
        raise UlmfitError(
            f"{where}: unknown section(s) {sorted(unknown)} (known: {', '.join(SECTIONS + OPTIONAL_SECTIONS)})"
        )
    for s in SECTIONS + tuple(x for x in OPTIONAL_SECTIONS if x in cfg):
        cfg.setdefault(s, {})
        if not isinstance(cfg[s], dict):
            raise UlmfitError(f"{where}: [{s}] must be a table")
    data = cfg["data"]
    data.setdefault("kind", "imdb")
    from ..data import sources

    if data["kind"] not in sources.names(labelled_only=True):
        raise UlmfitError(
            f"{where}: [data] kind must be one of {', '.join(sources.names(labelled_only=True))}, not {data['kind']!r}"
        )
    mode = cfg["pretrain"].setdefault("mode", "scratch")
    if mode not in PRETRAIN_MODES:
        raise UlmfitError(f"{where}: [pretrain] mode must be one of {', '.join(PRETRAIN_MODES)}, not {mode!r}")
    if cfg.setdefault("sizing", "fixed") not in SIZINGS:
        raise UlmfitError(f"{where}: sizing must be one of {', '.join(SIZINGS)}, not {cfg['sizing']!r}")
    budgets = {
        k: v
        for k, v in (
            ("budget", cfg.get("budget")),
            ("[finetune_lm] budget", cfg["finetune_lm"].get("budget")),
            ("[classifier] budget", cfg["classifier"].get("budget")),
        )
        if v is not None
    }
    for key, value in budgets.items():
        parse_duration(value, f"{where}: {key}")
    if budgets and mode not in ("from", "none"):
        raise UlmfitError(
            f"{where}: a time budget sizes the fine-tuning of a pretrained model: it needs [pretrain] "
            f"mode = 'from' (or 'none'), not {mode!r}"
        )
    backwards = cfg["classifier"].get("backwards", False)
    if isinstance(backwards, str) and backwards != "auto":
        raise UlmfitError(f'{where}: [classifier] backwards must be true, false or "auto", got {backwards!r}')
    nproc = cfg.setdefault("nproc", 1)
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise UlmfitError(f"{where}: nproc must be a whole number of processes (1 or more), got {nproc!r}")
    for section in cfg:
        if section in TOP_KEYS:
            continue
        stage_settings(cfg, section, where)  # raises on an unknown key or a wrong type
    if cfg["tokenize"].get("keep_vocab") == "pretrained" and mode != "from":
        raise UlmfitError(
            f"{where}: [tokenize] keep_vocab = 'pretrained' keeps the words of the model the run "
            f"starts from: it needs [pretrain] mode = 'from', not {mode!r}"
        )
    if "self_train" in cfg and (mode == "none" or cfg["classifier"].get("backwards") or nproc > 1):
        raise UlmfitError(
            f"{where}: [self_train] trains new forward classifiers from the fine-tuned language "
            "model: it needs a [pretrain] mode other than 'none', [classifier] backwards = false and "
            "nproc = 1"
        )
    if mode == "corpus" and not cfg["pretrain"].get("corpus"):
        raise UlmfitError(f"{where}: [pretrain] mode = 'corpus' needs corpus = [files]")
    if mode == "from" and not cfg["pretrain"].get("folder"):
        raise UlmfitError(f"{where}: [pretrain] mode = 'from' needs folder = 'a language-model folder or shipped name'")
    cfg.setdefault("name", Path(where).stem if where.endswith((".toml", ".yaml", ".yml")) else where.split()[-1])
    return cfg


def stage_settings(cfg: dict, section: str, where: str = "config"):
    """The settings object of a section ([data]: of its kind), from its keys minus the run-level ones."""
    table = cfg.get(section) or {}
    run_keys = RUN_KEYS.get(section, {})
    here = f"{where}: [{section}]"
    for key, tp in run_keys.items():
        if key in table and not isinstance(table[key], tp):
            kind = " or ".join(t.__name__ for t in tp) if isinstance(tp, tuple) else tp.__name__
            raise UlmfitError(f"{here}: key {key!r} must be a {kind}, got {table[key]!r}")
    owned = sorted(RUNNER_OWNED & set(table))
    if owned:
        raise UlmfitError(f"{here}: key {owned[0]!r} is set by `ulmfit run` itself")
    if section == "pretrain" and table.get("mode", "scratch") in ("corpus", "from"):
        cls: type[Settings] | None = PretrainSettings if table.get("mode") == "corpus" else None
    else:
        cls = data_settings(table.get("kind", "imdb")) if section == "data" else SECTION_SETTINGS[section]
    rest = {k: v for k, v in table.items() if k not in run_keys}
    if section == "self_train":  # its rounds only: the classifiers it trains take [classifier]'s settings
        if other := sorted(set(rest) - SELF_TRAIN_KEYS):
            where_to = "[classifier]" if other[0] in CLASSIFIER_KEYS else f"one of {', '.join(sorted(SELF_TRAIN_KEYS))}"
            raise UlmfitError(f"{here}: key {other[0]!r} does not belong here ({where_to})")
    if cls is None:
        if rest:
            raise UlmfitError(
                f"{here}: key {sorted(rest)[0]!r} does nothing with mode = 'from' "
                "(fine-tuning settings go in [finetune_lm])"
            )
        return None
    return from_dict(cls, rest, here)


def dump_toml(cfg: dict) -> str:
    """A small TOML writer for resolved configs (tables of scalars, lists and one level of inline tables)."""

    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + " }"
        raise TypeError(type(v))

    lines = [f"{k} = {val(v)}" for k, v in cfg.items() if not isinstance(v, dict)]
    for k, v in cfg.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {val(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"

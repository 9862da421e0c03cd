"""Run configs: TOML (or YAML) files, or the name of a preset shipped in ulmfit/configs/."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path

from ..errors import UlmfitError

SECTIONS = ("data", "tokenize", "pretrain", "finetune_lm", "classifier", "evaluate")
OPTIONAL_SECTIONS = ("lr_find",)  # present: the stage runs
PRETRAIN_MODES = ("corpus", "from", "scratch", "none")


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
    return validate(cfg, where)


def validate(cfg: dict, where: str) -> dict:
    cfg = copy.deepcopy(cfg)
    unknown = set(cfg) - set(SECTIONS) - set(OPTIONAL_SECTIONS) - {"name", "description"}
    if unknown:
        raise UlmfitError(f"{where}: unknown section(s) {sorted(unknown)} "
                          f"(known: {', '.join(SECTIONS + OPTIONAL_SECTIONS)})")
    for s in OPTIONAL_SECTIONS:
        if s in cfg:
            if not isinstance(cfg[s], dict):
                raise UlmfitError(f"{where}: [{s}] must be a table")
            cfg[s].setdefault("args", {})
    for s in SECTIONS:
        cfg.setdefault(s, {})
        if not isinstance(cfg[s], dict):
            raise UlmfitError(f"{where}: [{s}] must be a table")
        cfg[s].setdefault("args", {})
    data = cfg["data"]
    data.setdefault("kind", "imdb")
    if data["kind"] not in ("imdb", "table", "folder"):
        raise UlmfitError(f"{where}: [data] kind must be imdb, table or folder, not {data['kind']!r}")
    mode = cfg["pretrain"].setdefault("mode", "scratch")
    if mode not in PRETRAIN_MODES:
        raise UlmfitError(f"{where}: [pretrain] mode must be one of {', '.join(PRETRAIN_MODES)}, not {mode!r}")
    if mode == "corpus" and not cfg["pretrain"].get("corpus"):
        raise UlmfitError(f"{where}: [pretrain] mode = 'corpus' needs corpus = [files]")
    if mode == "from" and not cfg["pretrain"].get("folder"):
        raise UlmfitError(f"{where}: [pretrain] mode = 'from' needs folder = 'a language-model folder'")
    cfg.setdefault("name", Path(where).stem if where.endswith((".toml", ".yaml", ".yml")) else where.split()[-1])
    return cfg


def to_argv(args: dict) -> list[str]:
    """{"max_steps": 100, "quiet": true, "betas": [0.7, 0.99]} -> ["--max-steps", "100", "--quiet", "--betas", "0.7,0.99"]."""
    argv = []
    for k, v in args.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            argv.append(flag)
        elif v is False or v is None:
            continue
        elif isinstance(v, (list, tuple)):
            argv += [flag, ",".join(str(x) for x in v)]
        else:
            argv += [flag, str(v)]
    return argv


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

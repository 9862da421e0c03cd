"""Subcommand options built from a settings dataclass, and the parsed namespace turned back into settings.

Field `max_len` becomes `--max-len` with the field's type, default and help (its metadata: see
`ulmfit.settings.opt`), so the CLI never restates a default. Booleans are switches; lists are a
repeatable flag (or several values after one flag), tuples and `list[int|float]` comma-separated values.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from ..errors import UlmfitError
from ..settings import SettingsError, field_types


def _base(tp):
    """int | None -> int; the type a single command-line value converts to."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def _comma(elem):
    def parse(text):
        try:
            return [elem(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {elem.__name__}s, got {text!r}") from None

    parse.__name__ = f"comma-separated {elem.__name__}s"
    return parse


def _tuple_of(elem):
    parse = _comma(elem)
    return lambda s: tuple(parse(s))


def _default_text(v):
    if isinstance(v, (list, tuple)):
        return ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v) or "none"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def add_settings(parser, cls, skip=(), group: str | None = None):
    """Add an option per field of `cls` (except `skip`) to `parser` (in an argument group if named)."""
    target = parser.add_argument_group(group) if group else parser
    hints = field_types(cls)
    for f in dataclasses.fields(cls):
        m = f.metadata
        if f.name in skip or not m.get("cli", True):
            continue
        names = [flag_of(cls, f.name), *m.get("aliases", ())]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        tp = _base(hints[f.name])
        kw = {"dest": f.name, "default": default, "help": m["help"]}
        shown = "" if default is None or default is False or default == [] else f" (default {_default_text(default)})"
        if tp is bool:
            kw.update(action="store_true")
            kw["help"] += shown if default is None else ""
        elif typing.get_origin(tp) is tuple:
            kw.update(type=_tuple_of(typing.get_args(tp)[0]), metavar=m.get("metavar"))
            kw["help"] += shown
        elif typing.get_origin(tp) is list:
            elem = typing.get_args(tp)[0]
            if elem in (int, float):  # e.g. --head 50,20
                kw.update(type=_comma(elem), metavar=m.get("metavar"))
            elif m.get("nargs"):
                kw.update(nargs=m["nargs"], metavar=m.get("metavar"))
            else:  # repeatable: --text-col a --text-col b
                kw.update(action="append", metavar=m.get("metavar"), default=None)
            kw["help"] += shown
        else:
            kw.update(type=tp, metavar=m.get("metavar"), choices=m.get("choices"))
            kw["help"] += shown
        target.add_argument(*names, **kw)
        if m.get("negative"):
            target.add_argument(
                m["negative"],
                **{"dest": f.name, "action": "store_false", "default": default, "help": f"the opposite of {names[0]}"},
            )


def settings_from(ns, cls, **overrides):
    """The settings of class `cls` from a parsed namespace (fields the parser lacks keep their defaults)."""
    hints = field_types(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if not hasattr(ns, f.name):
            continue
        v = getattr(ns, f.name)
        if v is None and typing.get_origin(_base(hints[f.name])) is list and f.default is dataclasses.MISSING:
            v = f.default_factory()  # a repeatable flag never given
        values[f.name] = v
    values.update(overrides)
    try:
        return cls(**values)  # checked by the class, before the command does any work
    except SettingsError as e:
        raise UlmfitError(e.message(lambda name: flag_of(cls, name))) from None


def flag_of(cls, name: str) -> str:
    """The option that sets field `name` of `cls` (`--max-len` for max_len)."""
    f = cls.__dataclass_fields__[name]
    if not f.metadata.get("cli", True):
        return repr(name)
    return f.metadata.get("flag") or "--" + name.replace("_", "-")


@dataclasses.dataclass
class Command:
    """One subcommand: its words for --help, its positional/required arguments as (names, argparse keywords),
    its settings class, and `run(args, settings)` (settings: built from the parsed options); an int it
    returns is the exit code, anything else (a stage function's result) means success."""

    name: str
    help: str
    description: str
    run: typing.Callable
    settings: type | None = None
    args: list = dataclasses.field(default_factory=list)
    epilog: str | None = None


def arg(*names, **kw):
    """A positional or required argument of a Command (no default: defaults live in the settings)."""
    return names, kw


def add_commands(sub, commands, **parser_kw):
    """Register each Command as a subparser of `sub`."""
    for c in commands:
        p = sub.add_parser(c.name, help=c.help, description=c.description, epilog=c.epilog, **parser_kw)
        for names, kw in c.args:
            p.add_argument(*names, **kw)
        if c.settings is not None:
            add_settings(p, c.settings)
        p.set_defaults(func=lambda a, c=c: _exit_code(c.run(a, settings_from(a, c.settings) if c.settings else None)))


def _exit_code(result):
    return result if isinstance(result, int) and not isinstance(result, bool) else 0

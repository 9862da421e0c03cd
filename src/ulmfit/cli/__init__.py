"""The `ulmfit` command: parsing only. Each module here registers a stage's subcommands.

A command module exposes `register(subparsers)`, which adds parsers built from the settings classes
(`ulmfit.settings`, via `cli.options`) whose `func` default turns the parsed args into settings, calls
the stage function (`ulmfit.api`) and returns an exit code. Heavy imports (torch, spacy) happen inside
the stage functions, so `ulmfit --help` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from .. import __version__
from .. import settings as settings_module
from ..errors import UlmfitError, is_disk_full
from ..settings import SettingsError
from .options import flag_of

# One line per command module; keep the order of the ULMFiT stages.
COMMAND_MODULES = [
    "ulmfit.cli.data",  # prepare
    "ulmfit.cli.text",  # tokenize
    "ulmfit.cli.models",  # models, generate, import-fastai
    "ulmfit.cli.lm",  # pretrain, finetune-lm, evaluate-lm, lr-find
    "ulmfit.cli.classifier",  # train-classifier, predict, evaluate, export-classifier
    "ulmfit.cli.serve",  # serve, explain
    "ulmfit.cli.run",  # run
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ulmfit",
        description="Train text classifiers by transfer learning from a language model "
        "(ULMFiT): prepare -> tokenize -> pretrain -> finetune-lm -> train-classifier -> predict.",
    )
    parser.add_argument("--version", action="version", version=f"ulmfit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None) -> int:
    # OpenMP threads that sleep at barriers instead of spinning: where the cores are shared with other
    # work, spinning threads wait for descheduled ones and the LSTMs get up to 10x slower; on an idle
    # machine the cost is small. Must be set before torch loads; the environment's own setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # Text a stdout's encoding cannot hold (a class name on an ASCII terminal) is escaped, not a traceback
    # (stderr does this by default); JSON output switches to \u escapes instead (see cli.classifier).
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    code = 1
    try:
        _check_outputs(args)
        code = int(args.func(args) or 0)
        return code
    except SettingsError as e:  # raised inside a stage (e.g. --stages parsed at train time): name the flag
        cls = getattr(settings_module, e.owner, None)
        named = e.message(lambda f: flag_of(cls, f)) if cls and f_in(cls, e.field) else str(e)
        print(f"ulmfit {args.command}: error: {named}", file=sys.stderr)
        return 1
    except UlmfitError as e:
        print(f"ulmfit {args.command}: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away (`ulmfit predict ... | head`): nothing to say, and nothing more can be written
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 141
    except OSError as e:
        # What the system refused (a read-only or full disk, a missing permission, ...): one line naming the
        # path. Writes go to temporary names first, so nothing already written was lost.
        print(f"ulmfit {args.command}: error: {os_error_message(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ulmfit {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if "torch.distributed" in sys.modules:  # only a command that loaded it can have joined a process group
            from ..training.distributed import finish

            finish(ok=code == 0)


def f_in(cls, name) -> bool:
    return name in getattr(cls, "__dataclass_fields__", {})


def os_error_message(e: OSError) -> str:
    """`PATH: what the system said (what to do)` for an OSError that reached the command."""
    where = ": ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    what = e.strerror or str(e) or type(e).__name__
    if is_disk_full(e):
        hint = " (free some space and run again)"
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = " (choose a path you may write to, or fix its permissions)"
    else:
        hint = ""
    return f"{where + ': ' if where else ''}{what}{hint}"


def _check_outputs(args):
    """Every command's `out` (--out DIR, export-classifier's OUT) is a folder and `output` (predict --output)
    a file: a path of the other kind is an error naming it before any work, not a traceback after it."""
    from ..io import check_output_dir, check_output_file

    if getattr(args, "out", None):
        check_output_dir(args.out)
    if getattr(args, "output", None):
        check_output_file(args.output)


if __name__ == "__main__":
    raise SystemExit(main())

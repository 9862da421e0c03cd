"""The `ulmfit` command: parsing only. Each module here registers a stage's subcommands.

A command module exposes `register(subparsers)`, which adds parsers built from the settings classes
(`ulmfit.settings`, via `cli.options`) whose `func` default turns the parsed args into settings, calls
the stage function (`ulmfit.api`) and returns an exit code. Heavy imports (torch, spacy) happen inside
the stage functions, so `ulmfit --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .. import __version__
from ..errors import UlmfitError, is_disk_full

# One line per command module; keep the order of the ULMFiT stages.
COMMAND_MODULES = [
    "ulmfit.cli.data",  # prepare
    "ulmfit.cli.text",  # tokenize
    "ulmfit.cli.models",  # models, generate, import-fastai
    "ulmfit.cli.lm",  # pretrain, finetune-lm, evaluate-lm, lr-find
    "ulmfit.cli.classifier",  # train-classifier, predict, evaluate, export-classifier
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
    code = 1
    try:
        _check_outputs(args)
        code = int(args.func(args) or 0)
        return code
    except UlmfitError as e:
        print(f"ulmfit {args.command}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if not is_disk_full(e):
            raise
        # A full disk met by a write that does not name its file (a library's, or a stream's)
        where = f"{e.filename}: " if e.filename else ""
        print(f"ulmfit {args.command}: error: {where}{e.strerror or 'no space left on device'} (free some space "
              "and run again)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ulmfit {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if "torch.distributed" in sys.modules:  # only a command that loaded it can have joined a process group
            from ..training.distributed import finish

            finish(ok=code == 0)


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

"""`ulmfit run CONFIG`: prepare -> tokenize -> pretrain -> fine-tune LM -> classifier(s) -> evaluate -> report."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from ..run.graph import ALL_NAMES as STAGES


def register(sub):
    from ..run.config import preset_names

    p = sub.add_parser(
        "run",
        help="every stage from raw data to an evaluated classifier, from one config",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the ULMFiT pipeline described by CONFIG (a TOML/YAML file or a shipped preset): "
        "prepare -> tokenize -> pretrain (or load, or skip) -> [lr finder] -> fine-tune LM -> classifier (forward, "
        "optionally backward) -> [self-training] -> evaluate (+ ensemble) -> report.md/report.json. Each stage's "
        "output is a folder in the run folder, reused when nothing it depends on changed; an interrupted run resumes "
        "where it stopped.\n\n"
        f"presets: {', '.join(preset_names())}; `imdb` picks imdb-fast on a GPU, imdb-cpu otherwise. A config with "
        "only a [data] section gets text-cpu (text-gpu on a GPU).\n\n"
        'Sizing: `budget = "30m"` at the top of a config (or in [finetune_lm] / [classifier] for one stage) '
        "measures this machine's speed with a few training steps and sizes the LM fine-tuning steps and the "
        'classifier epochs to fit; `sizing = "data"` sizes them to the data instead (LM passes over the texts, '
        "classifier epochs by labelled documents). report.md says what was chosen and why.\n\n"
        "Few labels, many unlabelled texts: a [self_train] section (rounds = [0.15, 0.4, 0.67], teacher_weight, "
        "student_stages; see `ulmfit self-train --help`) adds rounds of classifiers trained on the labels plus the "
        "unlabelled texts the previous round labels; the last round is the model evaluated.",
        epilog="examples:\n  ulmfit run imdb --source ../shared/data/aclImdb_v1.tar.gz\n"
        "  ulmfit run --print-config imdb-cpu > my.toml && ulmfit run my.toml --out runs/mine\n"
        '  printf \'budget = "30m"\\n[data]\\nsource = "train.csv"\\ntest = "test.csv"\\n\' > mine.toml'
        " && ulmfit run mine.toml",
    )
    p.add_argument("config", nargs="?", metavar="CONFIG", help="a .toml/.yaml file or a preset name")
    p.add_argument("--out", metavar="DIR", help="the run folder (default: runs/NAME)")
    p.add_argument("--source", help="the data source, overriding [data] source (e.g. the IMDb tarball)")
    p.add_argument(
        "--from",
        dest="force_from",
        metavar="STAGE",
        choices=STAGES,
        help=f"redo STAGE and every stage after it ({', '.join(STAGES)})",
    )
    p.add_argument("--print-config", metavar="PRESET", help="print a preset's TOML (a starting point) and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(a):
    from ..errors import UlmfitError
    from ..run.config import load_config, preset_text

    if a.print_config:
        name = a.print_config
        if name == "imdb":
            from ..run.config import auto_preset

            name = auto_preset()
        sys.stdout.write(preset_text(name))
        return 0
    if not a.config:
        raise UlmfitError("name a CONFIG (file or preset) or use --print-config PRESET")
    cfg = load_config(a.config)
    out = a.out or f"runs/{cfg['name']}"
    if a.force_from:  # before torchrun starts its processes (the Runner checks too, for Python callers)
        from ..run.runner import check_force_from

        check_force_from(cfg, a.force_from)
    if cfg["nproc"] > 1 and "WORLD_SIZE" not in os.environ:
        # `nproc = N`: the same command again under torchrun, N processes training together
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={cfg['nproc']}",
            "-m",
            "ulmfit",
            "run",
            str(a.config),
            "--out",
            str(out),
        ]
        cmd += (["--source", str(a.source)] if a.source else []) + (["--from", a.force_from] if a.force_from else [])
        proc = subprocess.Popen(cmd + (["--quiet"] if a.quiet else []))
        try:
            return proc.wait()
        except KeyboardInterrupt:  # Ctrl-C reached torchrun and its workers too: let them checkpoint and exit
            return proc.wait()
    from ..run.runner import Runner

    report = Runner(cfg, out, source=a.source, force_from=a.force_from, quiet=a.quiet).run()
    if not report:  # a rank other than 0 under torchrun: rank 0 reports
        return 0
    acc = report.get("accuracy")
    split = (report.get("evaluation") or {}).get("split") or "test"
    base = report.get("baseline") or {}
    bl = (report.get("evaluation") or {}).get("blend")
    score = "" if acc is None else f"  {split} accuracy {100 * acc:.2f} %"
    if bl:
        score = (
            f"  {split} accuracy {100 * bl['accuracy']:.2f} % blended with the baseline "
            f"(ULMFiT alone {100 * acc:.2f} %)"
        )
    print(
        f"report: {out}/report.md{score}"
        + (f"  (TF-IDF baseline {100 * base['accuracy']:.2f} %)" if base.get("accuracy") is not None else "")
    )
    if report.get("verdict") and "NOT" in report["verdict"]:
        print(report["verdict"])
    return 0

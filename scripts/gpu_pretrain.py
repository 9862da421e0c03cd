"""Pretrain the shipped forward and backward language models together on one GPU, within a wall-time budget.

Both directions train at once, as two `ulmfit pretrain` processes sharing the card, so that one budget (one
device call) yields both. On an H100 the card time-slices between the two: together they ran as fast as one
alone (the 128/384 QRNN: 498k tokens/s for the pair, 529k for one; docs/gpu.md). The lr schedule
must end inside the budget, so a short calibration run of both first measures seconds per step, and the
real runs get `--max-steps` fitted to the time left (a `--max-minutes` hard stop a little later is the net).
The run folders then get fp16 weights (half the size; `ship_lm.py` reads them) and no checkpoints; with
`--pieces-mib N` each is also cut into OUT/pieces/run-{fwd,bwd}.tar.NNN of at most N MiB (`scripts/pieces.py`), for
a device that brings back files of limited size.

usage: python scripts/gpu_pretrain.py CORPUS OUT --budget-s 420 [pretrain options, e.g. --bs 256 --lr 1.5e-2]
On a machine without a GPU it runs the same on the CPU (tests/test_gpu_pretrain.py does, tiny).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from ulmfit.artifacts import half_precision, load_model, save_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pieces  # noqa: E402  (scripts/pieces.py, beside this file)

DIRECTIONS = {"fwd": [], "bwd": ["--backwards"]}


def launch(corpus, out: Path, extra: list[str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ulmfit", "pretrain", str(corpus), "--out", str(out), *extra]
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def steady_step_s(run: Path) -> float:
    """Seconds per step once warm, as the training loop measured it (history.json's step_s: the later half of
    the epoch's host syncs, so allocation and kernel choice at the start do not count)."""
    rows = json.loads((run / "history.json").read_text()) if (run / "history.json").exists() else []
    rates = [r["step_s"] for r in rows if r.get("step_s")]
    if not rates:
        raise SystemExit(f"no step time in {run / 'history.json'} (did the calibration run train?)")
    return rates[-1]


def run_pair(corpus, root: Path, tag: str, extra: list[str], timeout: float) -> dict:
    """Both directions at once; -> {direction: seconds}. Raises with the log's tail if one fails."""
    t0, procs = time.time(), {}
    for d, flags in DIRECTIONS.items():
        procs[d] = launch(corpus, root / f"{tag}-{d}", [*extra, *flags], root / f"{tag}-{d}.log")
    done = {}
    while len(done) < len(procs):
        for d, p in procs.items():
            if d not in done and p.poll() is not None:
                done[d] = time.time() - t0
                if p.returncode != 0:
                    for q in procs.values():
                        q.kill()
                    tail = (root / f"{tag}-{d}.log").read_text()[-3000:]
                    raise SystemExit(f"{tag}-{d} failed (exit {p.returncode}):\n{tail}")
        if time.time() - t0 > timeout:
            for q in procs.values():
                q.kill()
            raise SystemExit(f"{tag}: still running after {timeout:.0f} s")
        time.sleep(1)
    return done


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", type=Path, help="a tokenized corpus folder (ulmfit tokenize)")
    p.add_argument("out", type=Path, help="where the run folders go")
    p.add_argument("--budget-s", type=float, required=True, help="seconds from now until both runs must be saved")
    p.add_argument("--calib-steps", type=int, default=300)
    p.add_argument("--pieces-mib", type=float, default=0, help="also cut each run folder into pieces of N MiB")
    a, extra = p.parse_known_args(argv)
    t_start = time.time()
    a.out.mkdir(parents=True, exist_ok=True)
    info = {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "torch": torch.__version__,
            "extra": extra}

    calib = run_pair(a.corpus, a.out, "calib", [*extra, "--max-steps", str(a.calib_steps), "--valid-tokens", "2000"],
                     timeout=a.budget_s / 2)
    # the slower direction's steady seconds per step; start-up = the rest of its wall time (warm-up included)
    step_s = max(steady_step_s(a.out / f"calib-{d}") for d in DIRECTIONS)
    startup_s = max(calib.values()) - a.calib_steps * step_s
    left = a.budget_s - (time.time() - t_start)
    train_s = left - startup_s - 25  # the last validation and the saves
    steps = max(10, int(train_s / step_s))
    info.update(calib_seconds=calib, step_s=step_s, startup_s=startup_s, steps=steps, train_s=train_s)
    print(json.dumps(info), flush=True)

    # the net under the fitted steps: never below their own time (the 10-step floor on a tight budget)
    hard = (max(train_s, steps * step_s) * 1.08 + 5) / 60
    run_pair(a.corpus, a.out, "run", [*extra, "--max-steps", str(steps), "--max-minutes", f"{hard:.2f}", "--quiet"],
             timeout=left + 60)
    for d in DIRECTIONS:
        run = a.out / f"run-{d}"
        for f in ("checkpoint.safetensors", "checkpoint.json"):
            (run / f).unlink(missing_ok=True)
        config, sd, _ = load_model(run, with_encoder=False)
        save_model(run, half_precision(sd), config)  # the folder's other files (vocab, logs) stay
        info[d] = json.loads((run / "history.json").read_text())[-1]
        if a.pieces_mib > 0:
            info[d]["pieces"] = len(pieces.split(run, a.out / "pieces", a.pieces_mib)["pieces"])
    info["seconds"] = time.time() - t_start
    (a.out / "gpu_pretrain.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info), flush=True)


if __name__ == "__main__":
    main()

"""The GPU check behind scripts/gpu-check.sh: what a session with a GPU measures in under 10 minutes.

1. LM training throughput of the paper-size model (AWD-LSTM and QRNN), bf16, full softmax, at bs 64/128/256
   (benchmarks/lm_throughput.py; goal on one H100: >= 500k tokens/s).
2. With more than one GPU: a 2-rank torchrun smoke test (pretrain a small LM with NCCL).
3. The imdb-fast recipe scaled to a few minutes (capped steps and documents), end to end.

Everything goes under OUT: one JSON per part, gpu-check.json (all of it) and report.md. `--dry` runs the
same code on the CPU with tiny sizes and synthetic data (the test suite does), so the script is known to
work before a GPU is lent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sh(cmd, out: Path, name: str, timeout: int, env=None) -> dict:
    """Run a command, its output to OUT/name.log; -> {"ok", "seconds", "log"}."""
    t0 = time.time()
    with open(out / f"{name}.log", "w") as log:
        # its own process group: on a timeout the whole tree goes (torchrun's workers too, which would hold
        # the GPU through the next part)
        proc = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, **(env or {})}, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            rc = "timeout"
    return {"ok": rc == 0, "returncode": rc, "seconds": round(time.time() - t0, 1), "log": f"{name}.log"}


def last_json(path: Path):
    lines = [ln for ln in path.read_text().splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def synthetic_imdb(path: Path, n: int = 40):
    """A small aclImdb_v1.tar.gz in the real layout (for --dry: no download, no shared data)."""
    import io
    import random

    rng = random.Random(0)
    good, bad = "great wonderful loved superb moving".split(), "awful boring hated dull mess".split()
    filler = "the film a story was and it of actors plot this".split()
    with tarfile.open(path, "w:gz") as tf:
        for split in ("train", "test"):
            for cls in ("pos", "neg") + (("unsup",) if split == "train" else ()):
                for i in range(n):
                    words = [rng.choice(filler) for _ in range(30)]
                    marks = good if cls == "pos" else bad if cls == "neg" else good + bad
                    words[rng.randrange(30)] = rng.choice(marks)
                    data = " ".join(words).encode()
                    rating = {"pos": 8, "neg": 2, "unsup": 0}[cls]
                    info = tarfile.TarInfo(f"aclImdb/{split}/{cls}/{i}_{rating}.txt")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))


def synthetic_corpus(path: Path, n_docs: int = 300):
    import random

    rng = random.Random(1)
    words = "the a film story good bad actor plot was is it and of review".split()
    with open(path, "w") as f:
        for _ in range(n_docs):
            f.write(json.dumps({"text": " ".join(rng.choice(words) for _ in range(40))}) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="output folder (JSON files, logs, report.md)")
    p.add_argument("--dry", action="store_true", help="CPU, tiny sizes, synthetic data: checks the script itself")
    p.add_argument("--imdb", default=str(ROOT.parent / "shared" / "data" / "aclImdb_v1.tar.gz"),
                   help="the IMDb tarball for part 3")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: throughput, ddp, imdb")
    a = p.parse_args(argv)
    import torch

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, a.skip.split(",")))
    py = sys.executable
    n_gpu = torch.cuda.device_count()
    env = {"PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = {"dry": a.dry, "date": time.strftime("%Y-%m-%d %H:%M"), "gpus": n_gpu,
              "gpu": torch.cuda.get_device_name(0) if n_gpu else None, "torch": torch.__version__,
              "python": platform.python_version(), "parts": {}}
    if not n_gpu and not a.dry:
        print("gpu-check: no CUDA GPU here (use --dry to check the script on a CPU)", file=sys.stderr)
        return 2

    # 1. throughput
    if "throughput" not in skip:
        rows = []
        sizes = [4, 8] if a.dry else [64, 128, 256]
        for bs in sizes:
            name = f"throughput-bs{bs}"
            extra = (["--preset", "tiny", "--vocab-size", "500", "--steps", "2", "--warmup", "1", "--device", "cpu",
                      "--threads", "1"] if a.dry else ["--preset", "paper", "--vocab-size", "60000", "--steps", "20",
                                                         "--warmup", "5", "--device", "cuda"])
            r = sh([py, ROOT / "benchmarks" / "lm_throughput.py", "--archs", "awd_lstm,qrnn", "--precisions", "auto",
                    "--softmaxes", "full", "--bs", str(bs), *extra], out, name, 300, env)
            js = last_json(out / f"{name}.log") if r["ok"] else None
            if js:
                (out / f"{name}.json").write_text(json.dumps(js, indent=1))
                rows += [{"bs": bs, **row} for row in js["results"]]
            rows += [] if js else [{"bs": bs, "error": r}]
        result["parts"]["throughput"] = {"goal_tokens_per_s": 500_000, "rows": rows,
                                         "ok": bool(rows) and not any("error" in row for row in rows)}

    # 2. DDP smoke test: two ranks (NCCL on 2+ GPUs; gloo on the CPU in --dry)
    if "ddp" not in skip and (n_gpu > 1 or a.dry):
        work = out / "ddp"
        shutil.rmtree(work, ignore_errors=True)  # a stale history.json must not pass for this run's
        work.mkdir()
        synthetic_corpus(work / "corpus.jsonl")
        r = sh([py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ulmfit", "pretrain",
                work / "corpus.jsonl", "--out", work / "lm", "--preset", "tiny", "--arch", "qrnn", "--bs", "8",
                "--bptt", "10", "--epochs", "1", "--max-steps", "20", "--quiet", "--valid-tokens", "500"]
               + (["--threads", "1"] if a.dry else []), out, "ddp", 300, {**env, "OMP_NUM_THREADS": "1"})
        hist = work / "lm" / "history.json"
        r["valid_loss"] = json.loads(hist.read_text())[-1]["valid_loss"] if hist.exists() else None
        result["parts"]["ddp"] = r

    # 3. the imdb-fast recipe, scaled to minutes
    if "imdb" not in skip:
        work = out / "imdb"
        shutil.rmtree(work / "run", ignore_errors=True)
        work.mkdir(exist_ok=True)
        if a.dry:
            tar = work / "aclImdb_v1.tar.gz"
            synthetic_imdb(tar)
            synthetic_corpus(work / "corpus.jsonl")
            base, corpus = "tiny", [str(work / "corpus.jsonl")]
            caps = {"pretrain": {"mode": "corpus", "corpus": corpus, "max_steps": 10},
                    "finetune_lm": {"frozen_steps": 3, "epochs": 1, "max_steps": 5, "bs": 8, "bptt": 20,
                                    "threads": 1},
                    "classifier": {"limit_train": 60}}
        else:
            tar = Path(a.imdb)
            base = "imdb-fast"
            caps = {"pretrain": {"max_steps": 1500}, "finetune_lm": {"frozen_steps": 300, "max_steps": 1500}}
        lines = [f'base = "{base}"', 'name = "imdb-fast-mini"']
        for section, keys in caps.items():
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
        (work / "mini.toml").write_text("\n".join(lines) + "\n")
        r = sh([py, "-m", "ulmfit", "run", work / "mini.toml", "--source", tar, "--out", work / "run", "--quiet"],
               out, "imdb", 540, env)
        rep = work / "run" / "report.json"
        if rep.exists():
            js = json.loads(rep.read_text())
            r.update(accuracy=js.get("accuracy"), baseline=(js.get("baseline") or {}).get("accuracy"),
                     stages={s["stage"]: s["seconds"] for s in js.get("stages", [])})
        result["parts"]["imdb"] = r

    (out / "gpu-check.json").write_text(json.dumps(result, indent=1))
    (out / "report.md").write_text(render(result))
    print(json.dumps({"gpu_check": str(out), "ok": all(v["ok"] for v in result["parts"].values())}))
    return 0


def render(r) -> str:
    L = [f"# gpu-check {'(dry run on the CPU)' if r['dry'] else ''}", "",
         f"{r['date']} · {r['gpus']} GPU(s) {r['gpu'] or ''} · torch {r['torch']}", ""]
    t = r["parts"].get("throughput")
    if t:
        L += ["## LM training throughput (full softmax; bf16 where it runs)", "",
              "| bs | arch | precision | tokens/s | s/step |", "|---|---|---|---|---|"]
        for row in t["rows"]:
            if "error" in row:
                L.append(f"| {row['bs']} | failed: see {row['error']['log']} | | | |")
            else:
                L.append(f"| {row['bs']} | {row['arch']} | {row['precision']} | {row['tokens_per_s']:,.0f} | "
                         f"{row['s_per_step']} |")
        L += ["", f"Goal on one H100: {t['goal_tokens_per_s']:,} tokens/s.", ""]
    d = r["parts"].get("ddp")
    if d:
        L += ["## Two ranks (torchrun)", "", f"{'ok' if d['ok'] else 'FAILED'} in {d['seconds']} s, valid loss "
              f"{d.get('valid_loss')} (log: {d['log']})", ""]
    m = r["parts"].get("imdb")
    if m:
        pct = lambda x: f"{100 * x:.2f} %" if x is not None else "–"  # noqa: E731
        L += ["## imdb-fast, scaled to minutes", "", f"{'ok' if m['ok'] else 'FAILED'} in {m['seconds']} s: test "
              f"accuracy {pct(m.get('accuracy'))} (TF-IDF baseline {pct(m.get('baseline'))}); seconds per stage "
              f"{m.get('stages')} (log: {m['log']})", ""]
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())

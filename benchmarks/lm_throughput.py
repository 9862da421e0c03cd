"""Language-model training throughput: tokens/s of forward + backward + optimizer step, per variant.

Runs every combination of --archs x --precisions x --softmaxes in one process (the same machine state
for all) and prints one JSON line with a row per variant. The training step is the real one
(`LMTask.train_step`: AR/TAR, sampled or full softmax), on random ids.

Example (CPU, the variants of docs/benchmarks.md):
  PYTHONPATH=src python benchmarks/lm_throughput.py --preset cpu --vocab-size 60000 --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from ulmfit.models.config import preset
from ulmfit.models.language_model import LanguageModel
from ulmfit.training.lm_task import LMTask
from ulmfit.training.loop import TrainConfig
from ulmfit.training.optim import make_optimizer
from ulmfit.training.precision import cpu_bf16_speedup, uses_bf16


def resolve_precision(precision: str, device) -> tuple[str, str | None]:
    """-> (precision to run, why a requested bf16 cannot run here or None). "auto" is the loop's choice:
    bf16 on CUDA and on CPUs whose probe finds it usable and faster (ulmfit.training.precision)."""
    if precision == "auto":
        return ("bf16" if uses_bf16(device) else "fp32"), None
    if precision == "bf16" and device.type == "cpu" and cpu_bf16_speedup() == 0.0:
        return precision, "bf16 is not usable on this CPU (no AVX512-BF16/AMX, or oneDNN refuses it)"
    return precision, None


def measure(a, arch, precision, softmax, device):
    requested = precision
    precision, why_not = resolve_precision(precision, device)
    if why_not:
        return {"arch": arch, "precision": requested, "softmax": softmax, "skipped": why_not}
    torch.manual_seed(0)
    sizes = {k: getattr(a, k) for k in ("emb_size", "n_hid", "n_layers") if getattr(a, k)}
    cfg = preset(a.preset, a.vocab_size, arch=arch, **sizes)
    lm = LanguageModel(cfg).to(device).train()
    opt = make_optimizer(lm, TrainConfig())  # the loop's optimiser (fused AdamW)
    # a Zipf-like stream, so that the sampled softmax's proposal and the batches look like text
    rng = np.random.default_rng(0)
    stream = np.minimum(rng.zipf(1.2, size=a.bs * (a.bptt + 1) * 4), a.vocab_size - 1).astype(np.int64)
    task = LMTask(lm, stream, stream[:1000], a.bs, a.bptt, sampled=a.samples if softmax == "sampled" else 0)
    data = torch.from_numpy(stream[: a.bs * (a.bptt + 1)].reshape(a.bs, a.bptt + 1)).to(device)
    state = None
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step():
        nonlocal state
        with amp:
            (loss, _), _, state = task.train_step(lm, (data[:, :-1], data[:, 1:]), state)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 0.4)
        opt.step()

    for _ in range(a.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"arch": arch, "precision": precision, "requested": requested, "softmax": softmax,
            "tokens_per_s": round(a.bs * a.bptt * a.steps / dt, 1), "s_per_step": round(dt / a.steps, 4),
            "params": sum(p.numel() for p in lm.parameters())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default=None, help="model size preset (default: paper on CUDA, cpu on CPU)")
    p.add_argument("--archs", default="awd_lstm,qrnn", help="comma-separated encoder architectures")
    p.add_argument("--precisions", default="fp32,bf16",
                   help="comma-separated: fp32, bf16 (autocast; a row says 'skipped' where this CPU cannot), "
                        "auto (what training uses here: bf16 where the probe finds it usable and faster)")
    p.add_argument("--softmaxes", default="full,sampled", help="comma-separated: full, sampled")
    p.add_argument("--samples", type=int, default=2048, help="words drawn per step by the sampled softmax")
    p.add_argument("--bs", type=int, default=64, help="batch size (sequences per step)")
    p.add_argument("--bptt", type=int, default=70, help="sequence length per step")
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (allocator, kernels warm-up)")
    p.add_argument("--vocab-size", type=int, default=60000, help="vocab size (decoder width)")
    p.add_argument("--emb-size", type=int, help="override the preset's embedding size")
    p.add_argument("--n-hid", type=int, help="override the preset's hidden size")
    p.add_argument("--n-layers", type=int, help="override the preset's number of layers")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    a = p.parse_args(argv)

    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    a.preset = a.preset or ("paper" if device.type == "cuda" else "cpu")
    rows = [measure(a, arch, prec, sm, device)
            for arch in a.archs.split(",") for prec in a.precisions.split(",") for sm in a.softmaxes.split(",")]
    cfg = preset(a.preset, a.vocab_size, **{k: getattr(a, k) for k in ("emb_size", "n_hid", "n_layers") if getattr(a, k)})
    print(json.dumps({
        "benchmark": "lm_throughput", "results": rows,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16_matmul_speedup": round(cpu_bf16_speedup(), 2) if device.type == "cpu" else None,
        "preset": a.preset, "emb_size": cfg.emb_size, "n_hid": cfg.n_hid, "n_layers": cfg.n_layers,
        "bs": a.bs, "bptt": a.bptt, "steps": a.steps, "vocab_size": a.vocab_size, "samples": a.samples,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }))


if __name__ == "__main__":
    main()

"""Language-model training throughput: tokens/s of forward + backward + optimizer step.

Prints one JSON line. Defaults: `--preset small` in fp32 on CPU; `--preset paper` with bf16 autocast
when CUDA is present. Example: PYTHONPATH=src python benchmarks/lm_throughput.py --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F

from ulmfit.models.awd_lstm import LanguageModel, ar_tar_loss, detach_state
from ulmfit.models.config import preset


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default=None, help="model preset (default: paper on CUDA, small on CPU)")
    p.add_argument("--bs", type=int, default=32, help="batch size (sequences per step)")
    p.add_argument("--bptt", type=int, default=70, help="sequence length per step")
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (allocator, kernels warm-up)")
    p.add_argument("--vocab-size", type=int, default=60000, help="vocab size (decoder width)")
    p.add_argument("--emb-size", type=int, help="override the preset's embedding size")
    p.add_argument("--n-hid", type=int, help="override the preset's LSTM hidden size")
    p.add_argument("--n-layers", type=int, help="override the preset's number of LSTM layers")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--amp", choices=["bf16", "fp16", "none"], default=None,
                   help="autocast dtype on CUDA (default bf16; CPU runs fp32: oneDNN's bf16 LSTM needs AVX-512)")
    a = p.parse_args(argv)

    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = a.preset or ("paper" if device.type == "cuda" else "small")
    amp = a.amp or ("bf16" if device.type == "cuda" else "none")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    torch.manual_seed(0)
    cfg = preset(name, a.vocab_size, **{k: getattr(a, k) for k in ("emb_size", "n_hid", "n_layers") if getattr(a, k)})
    lm = LanguageModel(cfg).to(device).train()
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-3, betas=(0.8, 0.99), weight_decay=0.01)
    data = torch.randint(0, a.vocab_size, (a.bs, a.bptt + 1), device=device)
    state = None

    def step():
        nonlocal state
        with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            logits, raw, out, state = lm(data[:, :-1], state)
            loss = F.cross_entropy(logits.float().flatten(0, 1), data[:, 1:].flatten()) + ar_tar_loss(raw, out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 0.4)
        opt.step()
        state = detach_state(state)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(a.warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    dt = time.perf_counter() - t0
    tokens = a.bs * a.bptt * a.steps
    print(json.dumps({
        "benchmark": "lm_throughput", "tokens_per_s": round(tokens / dt, 1), "s_per_step": round(dt / a.steps, 4),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "preset": name, "emb_size": cfg.emb_size, "n_hid": cfg.n_hid, "n_layers": cfg.n_layers, "bs": a.bs, "bptt": a.bptt, "steps": a.steps, "vocab_size": a.vocab_size,
        "amp": amp, "params": sum(p.numel() for p in lm.parameters()),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }))


if __name__ == "__main__":
    main()

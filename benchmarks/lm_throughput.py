"""Language-model training throughput: tokens/s of forward + backward + optimizer step.

Prints one JSON line. Defaults: `--preset small` in fp32 on CPU; `--preset paper` with bf16 autocast
when CUDA is present. Example: PYTHONPATH=src python benchmarks/lm_throughput.py --steps 5
"""

from __future__ import annotations

import argparse
import json
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
    p.add_argument("--steps", type=int, default=5, help="timed steps (after 2 warm-up steps)")
    p.add_argument("--vocab-size", type=int, default=60000, help="vocab size (decoder width)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-amp", action="store_true", help="fp32 even on CUDA")
    a = p.parse_args(argv)

    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = a.preset or ("paper" if device.type == "cuda" else "small")
    amp = device.type == "cuda" and not a.no_amp
    torch.manual_seed(0)
    cfg = preset(name, a.vocab_size)
    lm = LanguageModel(cfg).to(device).train()
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-3, betas=(0.8, 0.99), weight_decay=0.01)
    data = torch.randint(0, a.vocab_size, (a.bs, a.bptt + 1), device=device)
    state = None

    def step():
        nonlocal state
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
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

    for _ in range(2):
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
        "preset": name, "bs": a.bs, "bptt": a.bptt, "steps": a.steps, "vocab_size": a.vocab_size,
        "amp": "bf16" if amp else "fp32", "params": sum(p.numel() for p in lm.parameters()),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()

"""Which float precision the loop computes in: bf16 autocast where the hardware makes it pay.

On CUDA, bf16 autocast whenever TrainConfig.bf16 is set. On a CPU it pays only where the matrix units
have bf16 instructions (AVX512-BF16, AMX): there a bf16 matmul runs several times faster than fp32, elsewhere
it is emulated and slower. So the CPU path is probed once per process, by timing one matmul of a typical
layer's shape in both precisions, and bf16 is used only when it is clearly faster.
"""

from __future__ import annotations

import contextlib
import functools
import time

import torch

MIN_SPEEDUP = 1.3  # bf16 must beat fp32 by this much on the probe to be used on a CPU


def _time_matmul(dtype, reps=5):
    g = torch.Generator().manual_seed(0)  # its own: the probe must not move the global RNG a run was seeded with
    a = torch.randn(2048, 384, generator=g).to(dtype)
    b = torch.randn(384, 1152, generator=g).to(dtype)
    a @ b  # warm-up: kernel selection, allocation
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return time.perf_counter() - t


def _bf16_lstm_runs() -> bool:
    """Whether oneDNN builds a bf16 LSTM here. The CPU flags are not enough: ONEDNN_MAX_CPU_ISA (or a CPU
    without AVX512-BF16) makes oneDNN refuse the primitive although the matmul probe would run."""
    # fork the RNG: the LSTM's init draws from it, and the probe must not move the seed a run set
    with torch.random.fork_rng(devices=[]):
        try:
            lstm = torch.nn.LSTM(8, 8)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out, _ = lstm(torch.zeros(3, 2, 8, requires_grad=True))
            out.float().sum().backward()
            return True
        except RuntimeError:
            return False


@functools.cache
def cpu_bf16_speedup() -> float:
    """fp32 time / bf16 time of a layer-sized matmul on this CPU (0 when bf16 is not supported at all)."""
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return 0.0
    except (AttributeError, RuntimeError):
        return 0.0
    if not _bf16_lstm_runs():
        return 0.0
    return _time_matmul(torch.float32) / max(_time_matmul(torch.bfloat16), 1e-9)


def uses_bf16(device: torch.device, want: bool = True) -> bool:
    if not want:
        return False
    if device.type == "cuda":
        return True
    return device.type == "cpu" and cpu_bf16_speedup() >= MIN_SPEEDUP


def autocast(device: torch.device, want_bf16: bool = True):
    """The autocast context for a training or evaluation step on `device`."""
    if uses_bf16(device, want_bf16):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()

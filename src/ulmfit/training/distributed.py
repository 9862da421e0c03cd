"""Data parallelism over processes started by torchrun: `torchrun --nproc_per_node N -m ulmfit pretrain ...`.

Every rank reads the same batch (batching is cheap slicing of id arrays) and trains on its share of the
rows: the LM's text streams, the classifier's documents. Gradients are averaged with one flat all-reduce
per step, the loss of each rank weighted by its share of the rows, so a step equals a step of one process
on the whole batch (the same sums, in another order). The batch sequence does not depend on the number of
ranks: a checkpoint resumes with any number of them.

Why not the `DistributedDataParallel` wrapper: the LM's sampled softmax and the classifier's BPT3C call
submodules directly (the wrapper only syncs what goes through its own forward) and a frozen group or the
weight-dropped gates make "unused parameter" errors; an explicit all-reduce after backward has none of
that, and for these models (< 50M parameters) one flat buffer costs little next to the step.

Only rank 0 writes files, logs and progress bars.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

# Ranks wait at barriers while rank 0 alone prepares, tokenizes or evaluates (`ulmfit run`): far longer than
# torch's default timeouts (10 min for NCCL) on a large corpus.
TIMEOUT = datetime.timedelta(hours=12)


def init_from_env() -> None:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1); no-op otherwise.
    gloo carries CPU tensors (flags, validation sums), NCCL CUDA ones where there are GPUs."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())
            dist.init_process_group("cpu:gloo,cuda:nccl", timeout=TIMEOUT)
        else:
            dist.init_process_group("gloo", timeout=TIMEOUT)


def finish(ok: bool) -> None:
    """Leave the process group before the interpreter shuts down: otherwise gloo's worker threads can still hold
    tensors then, and the process aborts at exit ("terminate called without an active exception") after a
    successful run. After a barrier when the command succeeded (no rank drops its connections while another
    still uses them); at once after an error, where the other ranks may never reach one."""
    if dist.is_available() and dist.is_initialized():
        if ok:
            dist.barrier()
        dist.destroy_process_group()


def world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def local_world() -> int:
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if world() > 1:
        dist.barrier()


def main_first(call):
    """call() on rank 0, then on the other ranks, which find what it made (a prepared corpus, say) and reuse it."""
    if is_main():
        result = call()
    barrier()
    if not is_main():
        result = call()
    return result


def rows(batch) -> int:
    """Rows (text streams or documents) of a batch: dim 0 of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, dict):
        return rows(next(iter(batch.values())))
    return rows(batch[0])


def shard(batch, r: int, n: int):
    """Rank r's contiguous share of every tensor's rows (the LM's hidden state rows follow the same split)."""
    if isinstance(batch, torch.Tensor):
        return torch.tensor_split(batch, n)[r]
    if isinstance(batch, (list, tuple)):
        return type(batch)(shard(b, r, n) for b in batch)
    if isinstance(batch, dict):
        return {k: shard(v, r, n) for k, v in batch.items()}
    return batch


def average_gradients(model) -> None:
    """Average the trainable parameters' gradients over the ranks (a parameter without a gradient on this
    rank counts as zeros, so every rank reduces the same buffer)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def broadcast_model(model) -> None:
    """Every rank starts from rank 0's weights."""
    for t in model.state_dict().values():
        dist.broadcast(t, 0)


def broadcast_buffers(model) -> None:
    """Rank 0's buffers (BatchNorm's running statistics, which each rank updates from its own rows) on every
    rank, so that validation and the saved model agree with rank 0."""
    for b in model.buffers():
        dist.broadcast(b, 0)


def sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    if world() > 1:
        dist.all_reduce(t)
    return t


def max_over_ranks(t: torch.Tensor) -> torch.Tensor:
    if world() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def merge_sums(sums: dict) -> dict:
    """Validation sums of every rank added up (their keys may differ: a rank can get no rows)."""
    if world() == 1:
        return sums
    every = [None] * world()
    dist.all_gather_object(every, sums)
    out: dict = {}
    for s in every:
        for k, v in s.items():
            out[k] = out.get(k, 0.0) + v
    return out

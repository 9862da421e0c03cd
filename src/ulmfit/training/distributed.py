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

Only rank 0 writes files, logs and progress bars. The training loop sees the ranks through one object,
`group()`: `Ranks` under torchrun, else `Single`, whose methods do nothing (or hand back what they are
given), so the loop has no branch for the number of processes.
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


def rank_seed(seed: int, r: int, step: int = 0) -> int:
    """torch's seed on rank r: rank 0 keeps a single process's seed, the others' dropout differs from it."""
    return seed + 1000003 * r + step


def group(device=None) -> Single | Ranks:
    """The processes this one trains with, as the training loop sees them: `Ranks` under torchrun (after
    `init_from_env`), else `Single`. The loop calls the same methods either way; Single's do nothing."""
    return Ranks(world(), rank(), device) if world() > 1 else Single()


class Single:
    """One process: the whole batch is its own, and there is no one to wait for or agree with."""

    world, rank, main = 1, 0, True
    alone = True  # no other process waits for it: it may stop at any step, validation included

    def shard(self, batch):
        return batch

    def train_share(self, batch):
        return batch, 1.0

    def average_gradients(self, model) -> None:
        pass

    def mean_losses(self, losses: torch.Tensor, items: torch.Tensor):
        return losses, items

    def agree(self, flags: tuple, at_sync: bool) -> tuple:
        return flags

    def merge_sums(self, sums: dict) -> dict:
        return sums

    def portable_state(self, state):
        return state

    def reseed_after_resume(self, seed: int, step: int) -> None:
        pass

    def broadcast_model(self, model) -> None:
        pass

    def broadcast_buffers(self, model) -> None:
        pass

    def barrier(self) -> None:
        pass


class Ranks:
    """`world` processes under torchrun, this one being `rank`; `device` carries the collectives' tensors."""

    alone = False  # the others wait for it at every collective: it stops only when they all do

    def __init__(self, world: int, rank: int, device=None):
        self.world, self.rank, self.main, self.device = world, rank, rank == 0, device
        self._agreed = (False, False)

    def shard(self, batch):
        """This rank's rows of a validation batch; None when it gets none (a batch of fewer rows than ranks)."""
        part = shard(batch, self.rank, self.world)
        return part if rows(part) else None

    def train_share(self, batch):
        """(this rank's rows of a training batch, its loss weight); None when the batch is too small to split
        (BatchNorm needs 2 rows per rank). The weight, this rank's share of the rows x world, makes the
        average over ranks of the weighted mean losses' gradients that of the whole batch's mean loss."""
        n_rows = rows(batch)
        if n_rows < 2 * self.world:
            return None
        part = shard(batch, self.rank, self.world)
        return part, rows(part) * self.world / n_rows

    def average_gradients(self, model) -> None:
        """Average the trainable parameters' gradients over the ranks (a parameter without a gradient on
        this rank counts as zeros, so every rank reduces the same buffer)."""
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n

    def mean_losses(self, losses: torch.Tensor, items: torch.Tensor):
        """Each step's loss averaged over the ranks, weighted by their items; and the items summed."""
        both = torch.stack([losses * items, items])
        dist.all_reduce(both)
        return both[0] / both[1].clamp(min=1e-12), both[1]

    def agree(self, flags: tuple, at_sync: bool) -> tuple:
        """Stop flags every rank shares: at a host sync, each flag set on any rank; between syncs the last
        answer (a collective at every step would be a host sync at every step)."""
        if at_sync:
            t = torch.tensor([float(f) for f in flags], device=self.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            self._agreed = tuple(v > 0 for v in t.tolist())
        return self._agreed

    def merge_sums(self, sums: dict) -> dict:
        """Validation sums of every rank added up (their keys may differ: a rank can get no rows)."""
        every: list = [None] * self.world
        dist.all_gather_object(every, sums)
        out: dict = {}
        for s in every:
            for k, v in s.items():
                out[k] = out.get(k, 0.0) + v
        return out

    def portable_state(self, state):
        """None: a rank's task state (the LM's hidden state) holds only its own rows and a checkpoint's all of
        them, so ranks save none and start it afresh on resume, as at an epoch start."""
        return None

    def reseed_after_resume(self, seed: int, step: int) -> None:
        """Rank 0's RNGs come back from the checkpoint; the others' dropout must still differ from it."""
        if self.rank:
            torch.manual_seed(rank_seed(seed, self.rank, step))

    def broadcast_model(self, model) -> None:
        """Every rank starts from rank 0's weights."""
        for t in model.state_dict().values():
            dist.broadcast(t, 0)

    def broadcast_buffers(self, model) -> None:
        """Rank 0's buffers (BatchNorm's running statistics, which each rank updates from its own rows) on
        every rank, so that validation and the saved model agree with rank 0."""
        for b in model.buffers():
            dist.broadcast(b, 0)

    def barrier(self) -> None:
        dist.barrier()

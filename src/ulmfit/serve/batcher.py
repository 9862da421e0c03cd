"""Dynamic batching: concurrent requests gathered into one batch for a fixed pool of inference threads.

Requests wait in a queue (bounded: `QueueFull` past `max_queue` texts, the server's 503). When a worker is free,
the batch takes what is waiting and, when requests are arriving together (the last batch held more than one,
or more than one is waiting now), waits up to `wait_s` for more while it holds fewer than `max_batch` texts; a lone
client is never made to wait for company that is not coming. What is waiting is shared among the free workers
(with 64 requests and two idle workers each takes 32, rather than one taking 64 while the other idles). Then the
batch runs on that worker (the predictor sorts it by length); each request gets its own rows back. While every worker
is busy, requests pile up and the next batch is larger: throughput grows with load. A request whose client gave
up (timeout) before its batch started is dropped from it.
"""

from __future__ import annotations

import asyncio
import collections
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class QueueFull(Exception):
    pass


class _Item:
    def __init__(self, texts, future):
        self.texts, self.future = texts, future


class Batcher:
    def __init__(self, run_batch, max_batch: int, wait_s: float, max_queue: int, workers: int):
        self.run_batch = run_batch  # list[str] -> np.ndarray [n, n_classes]; called on a worker thread
        self.max_batch, self.wait_s, self.max_queue, self.workers = max_batch, wait_s, max_queue, workers
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="ulmfit-infer")
        self.pending: collections.deque[_Item] = collections.deque()
        self.queued = 0  # texts waiting (requests not yet in a batch, and /explain calls waiting for a worker)
        self._task: asyncio.Task | None = None
        self.batches = self.batched = 0  # batches run and the texts in them (GET /health: the mean batch size)
        self._together = False  # did the last batch hold more than one request? (then the next one waits)

    async def start(self):
        self._free = asyncio.Semaphore(self.workers)
        self._idle = self.workers  # workers not running a batch (this loop's count; the semaphore's is private)
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._loop())

    async def stop(self):
        if self._task is not None:
            self._task.cancel()
        self.pool.shutdown(wait=True)  # a batch already running finishes

    def _admit(self, n):
        if self.queued + n > self.max_queue:
            raise QueueFull(f"the queue is full ({self.queued} texts waiting, at most {self.max_queue})")
        self.queued += n

    async def predict(self, texts: list) -> np.ndarray:
        """Probabilities for `texts`, batched with whatever else is waiting."""
        self._admit(len(texts))
        item = _Item(texts, asyncio.get_running_loop().create_future())
        self.pending.append(item)
        self._wake.set()
        return await item.future

    async def run_alone(self, fn, *args):
        """fn(*args) on a worker of its own (an /explain), under the same queue bound."""
        self._admit(1)
        try:
            await self._free.acquire()
            self._idle -= 1
        finally:
            self.queued -= 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        finally:
            self._release()

    def _waiting(self):
        return sum(len(i.texts) for i in self.pending if not i.future.done())

    async def _loop(self):
        loop = asyncio.get_running_loop()
        while True:
            while not self.pending:
                self._wake.clear()
                await self._wake.wait()
            await self._free.acquire()
            self._idle -= 1
            deadline = loop.time() + (self.wait_s if self._together or len(self.pending) > 1 else 0.0)
            while self._waiting() < self.max_batch and (left := deadline - loop.time()) > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except TimeoutError:
                    break
            share = -(-self._waiting() // (self._idle + 1))  # this worker's part of what waits (ceil)
            limit = min(self.max_batch, max(share, 1))
            batch, n = [], 0
            while self.pending and (not batch or n + len(self.pending[0].texts) <= limit):
                item = self.pending.popleft()
                self.queued -= len(item.texts)
                if not item.future.done():  # not given up by its client
                    batch.append(item)
                    n += len(item.texts)
            if not batch:
                self._release()
                continue
            self.batches, self.batched = self.batches + 1, self.batched + n
            self._together = len(batch) > 1
            job = loop.run_in_executor(self.pool, self._run, [t for i in batch for t in i.texts])
            job.add_done_callback(lambda job, batch=batch: self._deliver(job, batch))

    def _release(self):
        self._idle += 1
        self._free.release()

    def _deliver(self, job, batch):
        self._release()
        err = job.exception()
        start = 0
        for item in batch:
            rows = slice(start, start + len(item.texts))
            start = rows.stop
            if item.future.done():  # its client gave up while the batch ran
                continue
            if err is not None:
                item.future.set_exception(err)
            else:
                item.future.set_result(job.result()[rows])

    def _run(self, texts):
        return self.run_batch(texts)

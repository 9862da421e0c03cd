"""The dynamic batcher on its own (no HTTP, no model): when it waits for company and when it does not."""

import asyncio

import numpy as np

from ulmfit.serve.batcher import Batcher


def _recording_batcher(wait_s, max_batch):
    sizes = []

    def run(texts):
        sizes.append(len(texts))
        return np.zeros((len(texts), 2))

    return Batcher(run, max_batch=max_batch, wait_s=wait_s, max_queue=100, workers=1), sizes


def test_a_lone_request_does_not_wait_out_the_batching_window():
    async def go():
        b, sizes = _recording_batcher(wait_s=60.0, max_batch=8)
        await b.start()
        try:
            for _ in range(3):  # one client, one request at a time: never delayed by the 60-s window
                await asyncio.wait_for(b.predict(["a"]), 20)
        finally:
            await b.stop()
        return sizes

    assert asyncio.run(go()) == [1, 1, 1]


def test_after_a_shared_batch_the_next_one_waits_for_more():
    async def go():
        b, sizes = _recording_batcher(wait_s=60.0, max_batch=2)
        await b.start()
        try:
            # two requests queued together: one batch (it waits for the second, or finds it there)
            await asyncio.wait_for(asyncio.gather(b.predict(["a"]), b.predict(["b"])), 20)
            # the last batch was shared, so a request arriving alone waits for company: the one that comes
            # 0.2 s later joins it (and fills the batch, so neither waits the whole window)
            first = asyncio.ensure_future(b.predict(["c"]))
            await asyncio.sleep(0.2)
            await asyncio.wait_for(asyncio.gather(first, b.predict(["d"])), 20)
        finally:
            await b.stop()
        return sizes

    assert asyncio.run(go()) == [2, 2]


def test_what_waits_is_shared_among_the_free_workers():
    import threading

    hold, sizes = threading.Event(), []

    def run(texts):  # each batch holds its worker until the test lets go
        sizes.append(len(texts))
        assert hold.wait(20)
        return np.zeros((len(texts), 2))

    async def go():
        b = Batcher(run, max_batch=8, wait_s=0.05, max_queue=100, workers=2)
        await b.start()
        try:
            jobs = [asyncio.ensure_future(b.predict([str(k)])) for k in range(8)]  # 8 waiting, 2 idle workers
            for _ in range(400):
                if len(sizes) == 2:
                    break
                await asyncio.sleep(0.05)
            hold.set()
            await asyncio.wait_for(asyncio.gather(*jobs), 20)
        finally:
            hold.set()
            await b.stop()

    asyncio.run(go())
    assert sizes == [4, 4]  # not 8 on one worker while the other idles

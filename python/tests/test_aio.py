# SPDX-License-Identifier: LGPL-2.1-or-later
# test_aio.py: the asyncio helpers (blocking calls in the loop's executor):
# the loop keeps running while a task waits, timeouts, and a cancelled wait
# gives back what it got.
from __future__ import annotations

import asyncio
import contextlib

from ipcbroker import aio


def test_acquire_does_not_block_the_loop(client):
    sem = client.sem_create("a", 0)

    async def main():
        ticks = 0
        task = asyncio.create_task(aio.acquire(sem, timeout=5))
        for _ in range(10):
            await asyncio.sleep(0.01)
            ticks += 1
        assert not task.done()
        sem.release()
        assert await task is True
        assert await aio.acquire(sem, timeout=0.05) is False
        seg = await aio.run(client.create, "aseg", 64)
        with seg:
            with await aio.lock(seg, timeout=1):
                pass
        return ticks

    assert asyncio.run(main()) == 10
    sem.close()


def test_cancelled_acquire_loses_no_token(client):
    sem = client.sem_create("c", 0)

    async def main():
        task = asyncio.create_task(aio.acquire(sem))
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sem.release()
        await asyncio.sleep(0.1)  # a worker still waiting would take it

    asyncio.run(main())
    assert sem.value == 1
    sem.close()


def test_lock_timeout(client):
    with client.create("l", 64) as a, client.open("l") as b:
        async def main():
            with a.lock():
                try:
                    await aio.lock(b, timeout=0.1)
                except TimeoutError:
                    return "timeout"
        assert asyncio.run(main()) == "timeout"

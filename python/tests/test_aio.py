# SPDX-License-Identifier: LGPL-2.1-or-later
# test_aio.py: asyncio: semaphore and segment-lock waits on their
# descriptors, open-or-wait and watches on the client's descriptor (no
# thread): the loop keeps running while a task waits, timeouts, and a
# cancelled wait keeps nothing.
from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import ipcbroker
import pytest

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


def test_two_tasks_wait_on_one_semaphore(client):
    sem = client.sem_create("two", 0)
    other = ipcbroker.Client()
    peer = other.sem_open("two")

    async def main():
        tasks = [asyncio.create_task(aio.acquire(sem, timeout=5)) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert not any(t.done() for t in tasks)
        peer.release(2)  # one descriptor, both waiters woken
        assert await asyncio.wait_for(asyncio.gather(*tasks), 2) == [True, True]

    asyncio.run(main())
    assert sem.value == 0
    peer.close()
    other.close()
    sem.close()


def test_lock_uses_no_thread(client):
    other = ipcbroker.Client()
    with client.create("nl", 64) as a, other.open("nl") as b:
        async def main():
            held = b.lock()
            threads = threading.active_count()
            task = asyncio.create_task(aio.lock(a, timeout=5))
            await asyncio.sleep(0.05)
            assert not task.done()
            assert threading.active_count() == threads  # waits on a.lock_fileno()
            assert asyncio.get_running_loop()._default_executor is None
            t0 = time.monotonic()
            held.unlock()  # another connection's unlock wakes the loop
            guard = await task
            assert time.monotonic() - t0 < 1 and not guard.owner_died
            with pytest.raises(BlockingIOError):
                b.lock(blocking=False)
            guard.unlock()
        asyncio.run(main())
    other.close()


def test_cancelled_lock_keeps_nothing(client):
    other = ipcbroker.Client()
    with client.create("cl", 64) as a, other.open("cl") as b:
        async def main():
            held = b.lock()
            task = asyncio.create_task(aio.lock(a))
            await asyncio.sleep(0.05)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            held.unlock()
            await asyncio.sleep(0.1)
            with b.lock(blocking=False):  # nobody took it for the cancelled wait
                pass
        asyncio.run(main())
    other.close()


def test_acquire_uses_no_thread(client):
    sem = client.sem_create("nt", 0)
    other = ipcbroker.Client()
    peer = other.sem_open("nt")

    async def main():
        threads = threading.active_count()
        task = asyncio.create_task(aio.acquire(sem, timeout=5))
        await asyncio.sleep(0.05)
        assert not task.done()
        assert threading.active_count() == threads  # waits on sem.fileno(), not in a thread
        assert asyncio.get_running_loop()._default_executor is None
        t0 = time.monotonic()
        peer.release()  # another connection's release wakes the loop
        assert await task is True
        assert time.monotonic() - t0 < 1
        t0 = time.monotonic()
        assert await aio.acquire(sem, timeout=0.1) is False
        assert 0.08 <= time.monotonic() - t0 < 2

    asyncio.run(main())
    assert sem.value == 0
    peer.close()
    other.close()
    sem.close()


def test_open_wait(client):
    other = ipcbroker.Client()

    async def main():
        task = asyncio.create_task(aio.open_wait(client, "later", timeout=5))
        stask = asyncio.create_task(aio.sem_open_wait(client, "slater", undo=True))
        await asyncio.sleep(0.05)
        assert not task.done() and not stask.done()
        made = other.create("later", 4096)
        made.buf[0] = 7
        msem = other.sem_create("slater", 2)
        seg = await asyncio.wait_for(task, 2)
        sem = await asyncio.wait_for(stask, 2)
        assert seg.size == 4096 and seg.buf[0] == 7
        assert sem.acquire(blocking=False) and sem.held == 1
        sem.close()
        client.sync()
        assert msem.value == 2  # the undo handle gave its token back
        seg.close()
        made.close()
        msem.close()

    asyncio.run(main())
    other.close()


def test_open_wait_timeout_and_cancel(client):
    other = ipcbroker.Client()

    async def main():
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            await aio.open_wait(client, "never", timeout=0.1)
        assert time.monotonic() - t0 < 2
        # A watch keeps the client's loop running: a cancelled wait that
        # went on would open "c" when its creation event is processed.
        async with await aio.watch(client, "c") as w:
            task = asyncio.create_task(aio.open_wait(client, "c"))
            await asyncio.sleep(0.05)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with other.create("c", 64):
                assert (await w.get(timeout=2)).event == aio.WatchEvent.CREATED
                client.sync()
                assert client.stat("c").handles == 1

    asyncio.run(main())
    other.close()


def test_watch(client):
    other = ipcbroker.Client()

    async def main():
        async with await aio.watch(client, "w.", prefix=True) as w:
            seg = await aio.run(other.create, "w.a", 64)
            ev = await w.get(timeout=2)
            assert (ev.event, ev.name, ev.kind) == (aio.WatchEvent.CREATED, "w.a", 1)
            seg.close()
            ev = await w.get(timeout=2)
            assert (ev.event, ev.name) == (aio.WatchEvent.DESTROYED, "w.a")
            other.sem_create("other-prefix", 0).close()
            with pytest.raises(asyncio.TimeoutError):
                await w.get(timeout=0.1)
        with pytest.raises(ValueError):
            await aio.watch(client, "x", events=0)

    asyncio.run(main())
    other.close()


def test_tasks_take_turns_on_one_segment(client):
    # Two tasks lock through one Segment (one handle): the second waits its
    # turn instead of failing with EDEADLK, and each holds it alone.
    with client.create("turns", 64) as seg:
        inside = []

        async def worker(i):
            for _ in range(3):
                with await aio.lock(seg, timeout=5):
                    inside.append(i)
                    await asyncio.sleep(0.01)  # yield while holding it
                    assert inside[-1] == i  # nobody else got in meanwhile
                    inside.append(-i)

        async def main():
            await asyncio.wait_for(asyncio.gather(worker(1), worker(2)), 10)

        asyncio.run(main())
        assert len(inside) == 12
        # after the turns, the lock is free for a plain call
        with seg.lock(blocking=False):
            pass


def test_turn_timeout_and_cancel_keep_nothing(client):
    with client.create("turnto", 64) as seg:
        async def main():
            held = await aio.lock(seg)
            with pytest.raises(TimeoutError):
                await aio.lock(seg, timeout=0.05)  # its turn never came
            task = asyncio.create_task(aio.lock(seg))
            await asyncio.sleep(0.02)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            held.unlock()
            # neither the timed-out nor the cancelled wait kept a turn
            with await aio.lock(seg, timeout=1):
                pass

        asyncio.run(main())
        with seg.lock(blocking=False):
            pass


def test_lock_with_timeout_zero_takes_a_free_lock(client):
    with client.create("tz", 64) as seg, client.open("tz") as other:
        async def main():
            with await aio.lock(seg, timeout=0):  # free: taken at once
                with pytest.raises(TimeoutError):
                    await aio.lock(seg, timeout=0)  # another task's turn
            with other.lock():
                with pytest.raises(TimeoutError):
                    await aio.lock(seg, timeout=0)  # held through another handle
            with await aio.lock(seg, timeout=0):  # neither kept a turn
                pass

        asyncio.run(main())


def test_turn_passed_from_another_thread(client):
    with client.create("tt", 64) as seg:
        async def main():
            guard = await aio.lock(seg)
            waiter = asyncio.create_task(aio.lock(seg, timeout=5))
            await asyncio.sleep(0.02)
            assert not waiter.done()
            await aio.run(guard.unlock)  # unlocked in an executor thread
            (await waiter).unlock()

        asyncio.run(main())

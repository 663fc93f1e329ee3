# SPDX-License-Identifier: LGPL-2.1-or-later
# aio.py: asyncio helpers that run the blocking calls in a thread
# (loop.run_in_executor); the library has no pollable descriptor yet.
"""asyncio helpers.  Every one of them runs a blocking library call in the
loop's default executor (a thread pool): nothing here is a native,
fd-driven asyncio integration, and each waiter occupies one executor thread
while it waits.

Waits (acquire, lock) are done in slices of at most `slice` seconds so that
a cancelled task does not leave a thread waiting forever: after
cancellation the worker stops at the end of its slice, and a token or lock
it got after the task was cancelled is given back."""
from __future__ import annotations

import asyncio
import functools
import threading
import time
from typing import Any, Callable, TypeVar

from ._segment import Segment, SegmentLock
from ._semaphore import Semaphore

T = TypeVar("T")

__all__ = ["run", "acquire", "lock"]


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """await fn(*args, **kwargs) run in the loop's default executor (for
    opens, creates, stat, ...: requests that wait for the broker)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


async def _sliced(try_once: Callable[[float], Any], undo: Callable[[Any], None],
                  timeout: float | None, slice: float) -> Any:
    cancelled = threading.Event()
    deadline = None if timeout is None else time.monotonic() + timeout

    def work() -> Any:
        while not cancelled.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            got = try_once(slice if left is None else min(slice, left))
            if got is not None:
                if cancelled.is_set():
                    undo(got)  # nobody is waiting for it any more
                    return None
                return got
        return None

    fut = asyncio.get_running_loop().run_in_executor(None, work)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        cancelled.set()
        got = await fut  # the worker notices within one slice
        if got is not None:
            undo(got)
        raise


async def acquire(sem: Semaphore, timeout: float | None = None, *,
                  slice: float = 0.05) -> bool:
    """Take one token of sem without blocking the loop: True, or False after
    `timeout` seconds.  Use a plain handle (an undo handle serves one call at
    a time)."""
    if sem.acquire(blocking=False):
        return True
    got = await _sliced(lambda t: True if sem.acquire(timeout=t) else None,
                        lambda _got: sem.release(), timeout, slice)
    return bool(got)


async def lock(seg: Segment, timeout: float | None = None, *,
               slice: float = 0.05) -> SegmentLock:
    """Take seg's lock without blocking the loop; returns the guard
    (`async with` is not needed: use `with await aio.lock(seg): ...`).
    TimeoutError after `timeout` seconds."""
    def once(t: float) -> SegmentLock | None:
        try:
            return seg.lock(timeout=t)
        except TimeoutError:
            return None
    got = await _sliced(once, lambda g: g.unlock(), timeout, slice)
    if got is None:
        raise TimeoutError(f"segment lock of {seg.name!r} not taken within {timeout} s")
    return got

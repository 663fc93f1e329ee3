# SPDX-License-Identifier: LGPL-2.1-or-later
# aio.py: asyncio on the library's pollable descriptors: semaphore and
# segment-lock waits on their fds, open-or-wait and watches on the client's
# fd (loop.add_reader + ipcb_process); plain requests in the loop's
# executor.
"""asyncio for ipcbroker.

Native (no thread; the event loop watches a descriptor):
  await acquire(sem, timeout=None)           one token of a semaphore
  await lock(seg, timeout=None)              a segment's lock
  await open_wait(client, name, ...)         a segment, once it exists
  await sem_open_wait(client, name, ...)     a semaphore, once it exists
  async with watch(client, name, ...) as w:  events on a name or a prefix
      async for ev in w: ...

In the loop's default executor (a thread each):
  await run(fn, *args)                       any blocking call
"""
from __future__ import annotations

import asyncio
import dataclasses
import functools
import weakref
from ctypes import byref, c_uint64, c_void_p
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from . import _lib
from ._segment import Segment, SegmentLock
from ._semaphore import Semaphore

if TYPE_CHECKING:
    from ._client import Client

T = TypeVar("T")

__all__ = ["run", "acquire", "lock", "open_wait", "sem_open_wait", "watch", "Watch",
           "WatchEvent"]


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """await fn(*args, **kwargs) run in the loop's default executor (for
    blocking requests: create, stat, list, ...)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


# The futures waiting for each (loop, fd): one reader per descriptor wakes
# them all, so that several tasks may wait on one semaphore or segment.
_waiters: dict[tuple[asyncio.AbstractEventLoop, int], set[asyncio.Future]] = {}


def _wake_all(key: tuple[asyncio.AbstractEventLoop, int]) -> None:
    for fut in _waiters.get(key, ()):
        if not fut.done():
            fut.set_result(None)


async def _readable(loop: asyncio.AbstractEventLoop, fd: int, timeout: float | None) -> bool:
    """Wait until fd is readable: True, or False after timeout seconds."""
    fut = loop.create_future()
    key = (loop, fd)
    waiting = _waiters.setdefault(key, set())
    if not waiting:
        loop.add_reader(fd, _wake_all, key)
    waiting.add(fut)
    try:
        if timeout is None:
            await fut
        else:
            await asyncio.wait_for(fut, max(timeout, 0))
        return True
    except asyncio.TimeoutError:
        return False
    finally:
        waiting.discard(fut)
        if not waiting:
            del _waiters[key]
            loop.remove_reader(fd)


async def _poll_until(loop: asyncio.AbstractEventLoop, fd: int, attempt: Callable[[], T | None],
                      timeout: float | None) -> T | None:
    """attempt() until it returns something other than None, waiting for fd
    to become readable between attempts: its result, or None after timeout
    seconds."""
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        got = attempt()
        if got is not None:
            return got
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            return None
        await _readable(loop, fd, left)


async def acquire(sem: Semaphore, timeout: float | None = None) -> bool:
    """Take one token of sem without blocking the loop: True, or False after
    `timeout` seconds.  Waits on the semaphore's descriptor (sem.fileno()),
    with no thread; a cancelled wait has taken nothing.  The first wait
    registers the handle as a poller (one round trip)."""
    if sem.acquire(blocking=False):
        return True
    loop = asyncio.get_running_loop()
    got = await _poll_until(loop, sem.fileno(), lambda: sem.poll_acquire() or None, timeout)
    return got is not None


# The tasks of one loop that lock through one Segment take turns here
# first: the broker's lock belongs to the handle, which they share.
_task_turns: "weakref.WeakKeyDictionary[Segment, dict[asyncio.AbstractEventLoop, asyncio.Lock]]" = \
    weakref.WeakKeyDictionary()


async def lock(seg: Segment, timeout: float | None = None) -> SegmentLock:
    """Take seg's lock without blocking the loop; returns the guard (use
    `with await aio.lock(seg): ...`; guard.owner_died as for seg.lock()).
    TimeoutError after `timeout` seconds.  Waits on the lock's descriptor
    (seg.lock_fileno()), with no thread; a cancelled wait has taken
    nothing.  The first wait registers the handle as a poller of the lock
    (one round trip, two with the lock page).  Tasks of one loop that lock
    through the same seg take turns, in order, as on an asyncio.Lock."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    turn = _task_turns.setdefault(seg, {}).setdefault(loop, asyncio.Lock())
    if turn.locked() and timeout is not None:
        # Another task has the turn.  (wait_for only then: with a timeout of
        # 0 it would cancel even a free acquire before it ran.)
        try:
            if timeout <= 0:
                raise asyncio.TimeoutError
            await asyncio.wait_for(turn.acquire(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"segment lock of {seg.name!r} not taken within {timeout} s") from None
    else:
        await turn.acquire()
    try:
        try:
            guard: SegmentLock | None = seg.lock(blocking=False)
        except BlockingIOError:
            guard = await _poll_until(loop, seg.lock_fileno(), seg.poll_lock,
                                      None if deadline is None else deadline - loop.time())
        if guard is None:
            raise TimeoutError(f"segment lock of {seg.name!r} not taken within {timeout} s")
    except BaseException:
        turn.release()
        raise
    guard._on_unlock = _turn_passer(loop, turn)  # the next task's turn once this one unlocks
    return guard


def _turn_passer(loop: asyncio.AbstractEventLoop, turn: asyncio.Lock) -> Callable[[], None]:
    """What a guard's unlock calls: turn.release() in loop's thread, from
    whichever thread unlocks (asyncio.Lock is not thread-safe)."""
    def release() -> None:
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            turn.release()
            return
        try:
            loop.call_soon_threadsafe(turn.release)
        except RuntimeError:
            pass  # the loop is closed: no task waits for the turn
    return release


class _Driver:
    """Runs one client's ipcb_process from one event loop while anything
    awaits on it: a reader on the client's descriptor, and a timer at the
    library's next deadline."""

    def __init__(self, client: "Client", loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.fd = _lib.check(client._call(_lib.ipcb_get_fd))
        self.users = 0
        self.timer: asyncio.TimerHandle | None = None

    def hold(self) -> None:
        if self.users == 0:
            self.loop.add_reader(self.fd, self.process)
        self.users += 1

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            self.loop.remove_reader(self.fd)
            if self.timer:
                self.timer.cancel()
                self.timer = None

    def process(self) -> None:
        if self.client.closed:
            return
        self.client._call(_lib.ipcb_process)
        self.rearm()

    def rearm(self) -> None:
        """Call after anything that may move the next deadline."""
        if self.timer:
            self.timer.cancel()
            self.timer = None
        if self.users == 0 or self.client.closed:
            return
        ms = self.client._call(_lib.ipcb_get_timeout_ms)
        if ms >= 0:
            self.timer = self.loop.call_later(ms / 1000, self.process)


_drivers: "weakref.WeakKeyDictionary[Client, _Driver]" = weakref.WeakKeyDictionary()


def _driver(client: "Client") -> _Driver:
    loop = asyncio.get_running_loop()
    d = _drivers.get(client)
    if d is None or d.loop is not loop:
        if d is not None and d.users:
            raise RuntimeError("this client is already driven by another event loop")
        d = _drivers[client] = _Driver(client, loop)
    return d


def _timeout_ms(timeout: float | None) -> int:
    if timeout is None:
        return -1
    if timeout < 0:
        raise ValueError("timeout must be >= 0 or None")
    return int(timeout * 1000 + 0.999)


async def _open_wait(client: "Client", start: Callable[..., int], cb_type: Any,
                     adopt: Callable[[c_void_p], Any], close: Callable[[c_void_p], Any]) -> Any:
    loop = asyncio.get_running_loop()
    d = _driver(client)
    fut = loop.create_future()

    def done(_c: Any, status: int, handle: Any, _ud: Any) -> None:
        if fut.done():  # cancelled meanwhile: the handle is ours to close
            if status == 0 and handle:
                close(c_void_p(handle))
            return
        if status < 0:
            fut.set_exception(_lib.error_from_code(status, _lib.strerror(status)))
        else:
            fut.set_result(adopt(c_void_p(handle)))

    ccb = cb_type(done)
    cookie = c_uint64()
    _lib.check(start(ccb, byref(cookie)))
    d.hold()
    try:
        d.rearm()
        return await fut
    except asyncio.CancelledError:
        if not client.closed:
            client._call(_lib.ipcb_cancel, cookie.value)  # or its callback closes the handle
        raise
    finally:
        d.release()
        del ccb  # no call can come any more: it ran, was cancelled, or the client is gone


async def open_wait(client: "Client", name: str, *, readonly: bool = False,
                    timeout: float | None = None) -> Segment:
    """Open segment `name`, waiting until it exists, without blocking the
    loop and without polling (the library watches for its creation).
    TimeoutError after `timeout` seconds; other errors as Client.open."""
    b = _lib.encode_name(name)
    access = _lib.READ_ONLY if readonly else _lib.READ_WRITE
    ms = _timeout_ms(timeout)
    return await _open_wait(
        client,
        lambda ccb, cookie: client._call(_lib.ipcb_shm_open_wait_async, b, access, ms, ccb, None,
                                         cookie),
        _lib.SHM_CB, lambda h: Segment._adopt(client, h, name), _lib.ipcb_shm_close)


async def sem_open_wait(client: "Client", name: str, *, undo: bool = False,
                        timeout: float | None = None) -> Semaphore:
    """Open semaphore `name`, waiting until it exists (as open_wait)."""
    b = _lib.encode_name(name)
    flags = _lib.SEM_UNDO if undo else 0
    ms = _timeout_ms(timeout)
    return await _open_wait(
        client,
        lambda ccb, cookie: client._call(_lib.ipcb_sem_open_wait_async, b, flags, ms, ccb, None,
                                         cookie),
        _lib.SEM_CB, lambda h: Semaphore._adopt(client, h, name, undo), _lib.ipcb_sem_close)


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    """One event of a watch.  `event` is one of the WATCH_* bits (CREATED,
    UNLINKED, DESTROYED, ACCESS, FROZEN) or OVERFLOW (events were lost;
    kind 0, name "")."""
    event: int
    kind: int
    name: str
    id: int
    uid: int
    gid: int
    mode: int
    seals: int

    CREATED = _lib.WATCH_CREATED
    UNLINKED = _lib.WATCH_UNLINKED
    DESTROYED = _lib.WATCH_DESTROYED
    ACCESS = _lib.WATCH_ACCESS
    FROZEN = _lib.WATCH_FROZEN
    OWNER_DIED = _lib.WATCH_OWNER_DIED
    ALL = _lib.WATCH_ALL
    OVERFLOW = _lib.WATCH_OVERFLOW


class Watch:
    """Events on a name (or every name with a prefix), delivered to an
    asyncio queue from the client's descriptor.  Made by watch(); iterate
    with `async for ev in w`; close() (or leaving `async with`) removes it."""

    def __init__(self, client: "Client", kind: int, name: str, prefix: bool, events: int,
                 maxsize: int) -> None:
        self._client = client
        self._kind = kind
        self._name = _lib.encode_name(name)
        self._flags = _lib.WATCH_PREFIX if prefix else 0
        self._events = events
        self._queue: asyncio.Queue[WatchEvent] = asyncio.Queue(maxsize)
        self._id = c_uint64()
        self._driver: _Driver | None = None
        self._ccb = _lib.WATCH_CB(self._on_event)
        self._added: Any = None
        self.dropped = 0  # events not queued because the queue was full

    def _on_event(self, _c: Any, ev: Any, _ud: Any) -> None:
        e = ev.contents
        w = WatchEvent(e.event, e.kind, (e.name or b"").decode("utf-8", "replace"), e.id, e.uid,
                       e.gid, e.mode, e.seals)
        try:
            self._queue.put_nowait(w)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _start(self) -> "Watch":
        loop = asyncio.get_running_loop()
        self._driver = d = _driver(self._client)
        added = loop.create_future()

        def on_added(_c: Any, status: int, _ud: Any) -> None:
            if added.done():
                return
            if status < 0:
                added.set_exception(_lib.error_from_code(status, _lib.strerror(status)))
            else:
                added.set_result(None)

        self._added = _lib.DONE_CB(on_added)
        _lib.check(self._client._call(_lib.ipcb_watch_add_async, self._kind, self._name,
                                      self._flags, self._events, self._ccb, None, self._added,
                                      byref(self._id)), self._name.decode("utf-8", "replace"))
        d.hold()
        try:
            d.rearm()
            await added
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Remove the watch; no event is queued after this returns."""
        if self._driver is None:
            return
        if not self._client.closed:
            self._client._call(_lib.ipcb_watch_remove, self._id.value)
        self._driver.release()
        self._driver = None

    async def get(self, timeout: float | None = None) -> WatchEvent:
        """The next event; TimeoutError after `timeout` seconds."""
        if timeout is None:
            return await self._queue.get()
        return await asyncio.wait_for(self._queue.get(), timeout)

    def __aiter__(self) -> "Watch":
        return self

    async def __anext__(self) -> WatchEvent:
        if self._driver is None and self._queue.empty():
            raise StopAsyncIteration
        return await self._queue.get()

    async def __aenter__(self) -> "Watch":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


async def watch(client: "Client", name: str, *, kind: int = _lib.KIND_SHM, prefix: bool = False,
                events: int = _lib.WATCH_ALL, maxsize: int = 0) -> Watch:
    """Watch `name` (prefix=True: every name that starts with it; "" with
    prefix: every name) of `kind` for `events` (WatchEvent bits).  Returns
    once the broker has the watch: no event after that is missed (the
    library keeps up to 4096 undelivered events, then one OVERFLOW).
    maxsize bounds the queue (0: unbounded); events past it are counted in
    Watch.dropped."""
    if not events or events & ~_lib.WATCH_ALL:
        raise ValueError("events must be a non-empty set of WatchEvent bits")
    return await Watch(client, kind, name, prefix, events, maxsize)._start()

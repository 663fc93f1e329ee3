# SPDX-License-Identifier: LGPL-2.1-or-later
# _semaphore.py: Semaphore, one open handle on a brokered named semaphore
# (plain or undo), with the interface of threading.Semaphore.
"""Named semaphores."""
from __future__ import annotations

import errno
import time
from ctypes import byref, c_void_p
from typing import TYPE_CHECKING

from . import _lib
from ._handle import _Handle
from ._segment import _deadline, _slice_ms

_try_acquire = _lib.sem_try_acquire_fast
_release = _lib.sem_release_fast
_EAGAIN = -errno.EAGAIN

if TYPE_CHECKING:
    from ._client import Client, HandleInfo


class Semaphore(_Handle):
    """An open handle on a named semaphore.  Made by Client.sem_create() and
    Client.sem_open().

    acquire()/release() are the client's own atomics on a shared page: no
    request to the broker; only waiting enters the kernel, with the GIL
    released.  Like threading.Semaphore, `with sem:` acquires and releases.
    An undo handle (undo=True) gives back the tokens it holds when its
    process dies or the handle is closed; it serves one call at a time (a
    second thread's call meanwhile raises OSError EBUSY): open one undo
    handle per thread."""

    _kind_name = "semaphore"

    def __init__(self) -> None:  # pragma: no cover - use Client.sem_create/sem_open
        raise TypeError("use Client.sem_create() or Client.sem_open()")

    @classmethod
    def _adopt(cls, client: "Client", ptr: c_void_p, name: str, undo: bool) -> "Semaphore":
        self = cls.__new__(cls)
        _Handle.__init__(self, ptr)
        self._client = client
        self.name = name
        self.undo = undo
        return self

    def _enter(self) -> c_void_p:
        # Unlike connections, semaphore handles work in a forked child: a
        # plain handle's page is shared memory, and the library itself
        # refuses (ECHILD) calls on an undo handle inherited across fork.
        self._users.append(None)
        h = self._h
        if h is None:
            self._users.pop()
            raise self._unusable(h)
        return h

    def __reduce__(self) -> tuple:
        # pickling (multiprocessing's spawn): the receiver opens it by name
        return (_reopen, (self.name, self.undo))

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take one token.  Returns True, or False when none came within
        `timeout` seconds (None: wait as long as it takes) or, with
        blocking=False, none was free.  The GIL is released while waiting."""
        if timeout is not None and not blocking:
            raise ValueError("can't specify timeout for non-blocking acquire")
        users = self._users
        users.append(None)  # the guard of _Handle, inlined: this is the hot path
        try:
            h = self._h
            if h is None:
                raise self._unusable(h)
            r = _try_acquire(h, 0)  # the uncontended path: one call
            if r == 0:
                return True
            if r != _EAGAIN:
                _lib.check(r, self.name)
            if not blocking:
                return False
            dl = _deadline(timeout)
            while True:
                ms = _slice_ms(dl)
                if ms == 0:
                    return False
                r = _try_acquire(h, ms)
                if r == 0:
                    return True
                if r != -errno.ETIMEDOUT and r != _EAGAIN:
                    _lib.check(r, self.name)
                if dl is not None and time.monotonic() >= dl:
                    return False
                # a slice ended and signal handlers ran; the handle stays
                # registered, so close() from another thread raises EBUSY
        finally:
            users.pop()

    def fileno(self) -> int:
        """A descriptor that becomes readable when a release may have made a
        token available (for select, selectors, asyncio's add_reader); then
        call poll_acquire().  Registers this handle as a poller with the
        broker the first time (one round trip).  Owned by the handle: do not
        close it; after a broker restart, open a new handle and ask again."""
        return _lib.check(self._call(_lib.ipcb_sem_get_fd), self.name)

    def poll_acquire(self) -> bool:
        """After fileno() became readable: take one token without waiting
        (True), or False when there is none (keep watching fileno()).  It
        resets the descriptor; no wake-up is lost."""
        r = self._call(_lib.ipcb_sem_poll_acquire)
        if r == _EAGAIN:
            return False
        _lib.check(r, self.name)
        return True

    def release(self, n: int = 1) -> None:
        """Give back n tokens, all or nothing (OSError EOVERFLOW past the
        maximum, the count unchanged)."""
        if n.__class__ is not int or not 1 <= n <= _lib.SEM_VALUE_MAX:
            if n < 1:
                raise ValueError("n must be >= 1")
            n = min(int(n), _lib.SEM_VALUE_MAX + 1)  # still past any maximum
        users = self._users
        users.append(None)
        try:
            h = self._h
            if h is None:
                raise self._unusable(h)
            r = _release(h, n)
        finally:
            users.pop()
        if r < 0:
            _lib.check(r, self.name)

    def release_undo(self, n: int = 1) -> None:
        """Give n tokens through this undo handle and owe back what it does
        not hold (System V's SEM_UNDO on a release): within the tokens it
        holds, as release(); beyond them the broker releases all n (one
        round trip) and takes them back from the count, never below 0, when
        the handle goes (closed, or its process dies).  ValueError on a
        plain handle; OSError EOVERFLOW past the maximum (nothing changes)."""
        if not self.undo:
            raise ValueError("release_undo needs an undo handle (undo=True)")
        if n.__class__ is not int or not 1 <= n <= _lib.SEM_VALUE_MAX:
            if n < 1:
                raise ValueError("n must be >= 1")
            n = min(int(n), _lib.SEM_VALUE_MAX + 1)  # still past any maximum
        _lib.check(self._call(_lib.ipcb_sem_release_undo, n), self.name)

    @property
    def owed(self) -> int:
        """Tokens this undo handle owes back (release_undo), as the broker
        last said; 0 for a plain handle."""
        return self._call(_lib.ipcb_sem_owed)

    @property
    def value(self) -> int:
        """Tokens available now."""
        return _lib.check(self._call(_lib.ipcb_sem_value), self.name)

    @property
    def held(self) -> int:
        """Tokens this undo handle holds (0 for a plain handle)."""
        return _lib.check(self._call(_lib.ipcb_sem_held), self.name)

    @property
    def info(self) -> "HandleInfo":
        """Owner, group and mode of the semaphore when this handle was opened."""
        from ._client import HandleInfo
        i = _lib.HandleInfo()
        _lib.check(self._call(_lib.ipcb_sem_info, byref(i)))
        return HandleInfo(i.uid, i.gid, i.mode)

    @property
    def client(self) -> "Client":
        return self._client

    def close(self) -> None:
        """Release the handle (an undo handle's tokens come back).
        Idempotent.  OSError(EBUSY), handle still open, while another thread
        is inside a call on it (e.g. waiting in acquire)."""
        h = self._take_for_close()
        if h is not None and not self._inherited:
            r = _lib.ipcb_sem_close(h)
            if r < 0 and r != -errno.ENOTCONN:
                _lib.check(r, self.name)

    def unlink(self) -> None:
        """Remove this semaphore's name (Client.sem_unlink(self.name))."""
        self._client.sem_unlink(self.name)

    def __enter__(self) -> "Semaphore":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        kind = "undo" if self.undo else "plain"
        state = "closed" if self.closed else "open"
        return f"<ipcbroker.Semaphore {self.name!r} {kind} {state}>"


def _reopen(name: str, undo: bool) -> Semaphore:
    from ._client import default_client
    return default_client().sem_open(name, undo=undo)

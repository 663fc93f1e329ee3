# SPDX-License-Identifier: LGPL-2.1-or-later
# _segment.py: Segment, one open handle on a brokered shared-memory segment:
# its zero-copy buffer (a Python mmap of the handle's memfd), the segment
# lock and the seqlock read.
"""Shared-memory segments."""
from __future__ import annotations

import errno
import mmap
import os
import threading
import time
from ctypes import byref, c_uint32, c_void_p
from typing import TYPE_CHECKING, Callable

from . import _lib
from ._handle import _Handle

if TYPE_CHECKING:
    from ._client import Client, HandleInfo

# A blocking wait on the main thread is cut into slices of this many ms so
# that signal handlers (KeyboardInterrupt) run: the library's waits do not
# end on a caught signal.
WAIT_SLICE_MS = 200


def _deadline(timeout: float | None) -> float | None:
    if timeout is None or timeout < 0:
        return None
    return time.monotonic() + timeout


def _slice_ms(deadline: float | None) -> int:
    """Milliseconds to wait in the next call: -1 forever (a thread that gets
    no signals), else at most WAIT_SLICE_MS on the main thread."""
    main = threading.current_thread() is threading.main_thread()
    if deadline is None:
        return WAIT_SLICE_MS if main else -1
    left = deadline - time.monotonic()
    if left <= 0:
        return 0
    ms = max(1, min(int(left * 1000 + 0.999), 2**31 - 1))
    return min(ms, WAIT_SLICE_MS) if main else ms


class Segment(_Handle):
    """An open handle on a segment.  Made by Client.create(), Client.open()
    and Client.register() (or the module-level create()/open()).

    buf is a memoryview of the whole segment (read-only for a read-only
    handle), backed by this handle's own mmap of the memfd: numpy.frombuffer
    (seg.buf) and bytes(seg.buf[:n]) read and write the shared bytes without
    a copy.  Like multiprocessing.shared_memory, close() raises BufferError
    while views of buf (slices, numpy arrays, ...) are still alive, and the
    segment then stays open: release them (del, memoryview.release()) and
    close again.  A view can therefore never outlive the mapping.

    A Segment used as a context manager is closed on exit."""

    _kind_name = "segment"

    def __init__(self) -> None:  # pragma: no cover - use Client.create/open
        raise TypeError("use Client.create(), Client.open() or Client.register()")

    @classmethod
    def _adopt(cls, client: "Client", ptr: c_void_p, name: str) -> "Segment":
        self = cls.__new__(cls)
        _Handle.__init__(self, ptr)
        self._client = client  # keeps the connection open while the handle is
        self.name = name if isinstance(name, str) else os.fsdecode(name)
        self._access = _lib.ipcb_shm_access(ptr)
        self._mmap: mmap.mmap | None = None
        self._view: memoryview | None = None
        try:
            fd = _lib.ipcb_shm_fd(ptr)
            size = _lib.ipcb_shm_size(ptr)
            # mmap dups the fd (close-on-exec): our mapping and fd live
            # until close() succeeds, independently of the library's.
            acc = mmap.ACCESS_READ if self.readonly else mmap.ACCESS_WRITE
            self._mmap = mmap.mmap(fd, size, access=acc)
        except BaseException:
            self._h = None
            _lib.ipcb_shm_close(ptr)
            raise
        return self

    # ---- properties ----
    @property
    def readonly(self) -> bool:
        """True for a read-only handle (IPCB_READ_ONLY)."""
        return self._access == _lib.READ_ONLY

    @property
    def size(self) -> int:
        """Bytes mapped (the segment's size at open, or after remap())."""
        m = self._mmap
        if m is None:
            raise ValueError("operation on a closed segment")
        return len(m)

    @property
    def buf(self) -> memoryview:
        """The whole mapping as a memoryview of unsigned bytes, no copy."""
        v = self._view
        if v is None:
            if self._mmap is None:
                raise ValueError("operation on a closed segment")
            v = self._view = memoryview(self._mmap)
        return v

    @property
    def fd(self) -> int:
        """The handle's memfd (borrowed: do not close it; valid until close())."""
        return self._call(_lib.ipcb_shm_fd)

    @property
    def seals(self) -> int:
        """F_SEAL_* bits reported by the broker at open."""
        return self._call(_lib.ipcb_shm_seals)

    @property
    def info(self) -> "HandleInfo":
        """Owner, group and mode of the segment when this handle was opened."""
        from ._client import HandleInfo
        i = _lib.HandleInfo()
        _lib.check(self._call(_lib.ipcb_shm_info, byref(i)))
        return HandleInfo(i.uid, i.gid, i.mode)

    @property
    def client(self) -> "Client":
        return self._client

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"size={len(self._mmap)}"  # type: ignore[arg-type]
        ro = ", readonly" if self._access == _lib.READ_ONLY else ""
        return f"<ipcbroker.Segment {self.name!r} {state}{ro}>"

    def __reduce__(self) -> tuple:
        # pickling (multiprocessing's spawn): the receiver opens it by name
        return (_reopen, (self.name, self.readonly))

    # ---- lifetime ----
    def close(self) -> None:
        """Unmap and release the handle (the last handle of a transient
        segment destroys it).  Idempotent.  Raises BufferError, and stays
        open, while views of buf exist; OSError(EBUSY) while another thread
        is inside a call on this handle (e.g. waiting for the lock)."""
        if self._h is None:
            return
        if self._users:
            raise OSError(errno.EBUSY, "segment is in use by another thread")
        if self._view is not None:
            self._view.release()
            self._view = None
        if self._mmap is not None:
            self._mmap.close()  # BufferError if exports remain: nothing changed
            self._mmap = None
        h = self._take_for_close()
        if h is not None and not self._inherited:
            r = _lib.ipcb_shm_close(h)
            if r < 0 and r != -errno.ENOTCONN:  # local resources are gone either way
                _lib.check(r, self.name)

    def unlink(self) -> None:
        """Remove this segment's name (Client.unlink(self.name))."""
        self._client.unlink(self.name)

    def __enter__(self) -> "Segment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Garbage: release the broker handle and the library's mapping, but
        # leave views of buf alone (unlike close()): our mmap is its own
        # mapping with its own fd, freed when the last view goes.
        self._view = None
        self._mmap = None
        try:
            h = self._take_for_close()
            if h is not None and not self._inherited:
                _lib.ipcb_shm_close(h)
        except Exception:
            pass

    # ---- size ----
    def grow(self, new_size: int) -> None:
        """Grow a growable segment (read-write handle) to new_size bytes and
        map the new size.  BufferError while views of buf exist."""
        if self.readonly:
            raise PermissionError(errno.EBADF, "grow needs a read-write handle", self.name)
        if new_size < self.size:
            raise ValueError("segments cannot shrink")
        os.ftruncate(self.fd, new_size)
        self.remap()

    def remap(self) -> int:
        """Map the segment at its current size (after another holder grew
        it); returns the size.  BufferError while views of buf exist."""
        fd = self.fd
        size = os.fstat(fd).st_size
        if self._view is not None:
            self._view.release()
            self._view = None
        old = self._mmap
        acc = mmap.ACCESS_READ if self.readonly else mmap.ACCESS_WRITE
        if old is not None:
            old.close()  # BufferError first, before anything changes
        self._mmap = mmap.mmap(fd, size, access=acc)
        return size

    # ---- the segment lock ----
    def lock(self, timeout: float | None = None, *, blocking: bool = True) -> "SegmentLock":
        """Take the segment lock (read-write handles only) and return a guard
        whose exit unlocks: `with seg.lock(): ...`.  timeout in seconds
        (None: as long as it takes); blocking=False: do not wait.  Raises
        TimeoutError / BlockingIOError when not taken.  guard.owner_died is
        True when the previous holder died holding the lock (check the data).
        The GIL is released while waiting."""
        r = self._call(_lib.shm_try_lock_fast, 0)  # uncontended: one call
        if r >= 0:
            return SegmentLock(self, r == _lib.OWNER_DIED)
        if r != -errno.EAGAIN or not blocking:
            _lib.check(r, self.name)
        dl = _deadline(timeout)
        while True:
            ms = _slice_ms(dl)
            r = self._call(_lib.ipcb_shm_try_lock, ms)
            if r >= 0:
                return SegmentLock(self, r == _lib.OWNER_DIED)
            if r in (-errno.ETIMEDOUT, -errno.EAGAIN) and ms != 0 and (
                    dl is None or time.monotonic() < dl):
                continue  # a slice ended: signals ran; wait on
            _lib.check(r, self.name)

    def lock_fileno(self) -> int:
        """A descriptor that becomes readable when an unlock, or the death of
        the holder, may have freed the lock (for select, selectors,
        asyncio's add_reader); then call poll_lock().  Registers this handle
        as a poller of the lock the first time.  Owned by the handle: do not
        close it; after a broker restart, open a new handle and ask again."""
        return _lib.check(self._call(_lib.ipcb_shm_lock_get_fd), self.name)

    def poll_lock(self) -> "SegmentLock | None":
        """Try the lock without waiting: its guard, or None when it is held
        (keep watching lock_fileno(); no wake-up is lost)."""
        r = self._call(_lib.ipcb_shm_poll_lock)
        if r == -errno.EAGAIN:
            return None
        _lib.check(r, self.name)
        return SegmentLock(self, r == _lib.OWNER_DIED)

    def unlock(self) -> None:
        """Release the segment lock held through this handle."""
        r = self._call(_lib.shm_unlock_fast)
        if r < 0:
            _lib.check(r, self.name)

    # ---- seqlock reads ----
    def read_begin(self, timeout: float | None = None) -> int:
        """Start a consistent read: waits while the lock is held; returns the
        sequence to give to read_retry().  OwnerDiedError if the last holder
        died holding the lock."""
        seq = c_uint32()
        dl = _deadline(timeout)
        while True:
            ms = _slice_ms(dl)
            r = self._call(_lib.ipcb_shm_read_begin, ms, byref(seq))
            if r >= 0:
                return seq.value
            if r in (-errno.ETIMEDOUT, -errno.EAGAIN) and ms != 0 and (
                    dl is None or time.monotonic() < dl):
                continue
            _lib.check(r, self.name)

    def read_retry(self, seq: int) -> bool:
        """True if what was read since read_begin() returned seq may be torn."""
        return bool(self._call(_lib.ipcb_shm_read_retry, seq))

    def read(self, offset: int = 0, size: int | None = None,
             timeout: float | None = None) -> bytes:
        """A consistent copy of size bytes at offset (seqlock: no lock taken,
        works on read-only handles).  Through a handle that holds the lock,
        just a copy."""
        end = self.size if size is None else offset + size
        if offset < 0 or end > self.size or end < offset:
            raise ValueError("range outside the segment")
        while True:
            try:
                seq = self.read_begin(timeout)
            except OSError as e:
                if e.errno == errno.EDEADLK:
                    return bytes(self._mmap[offset:end])  # type: ignore[index]
                raise
            data = self._mmap[offset:end]  # type: ignore[index]
            if not self.read_retry(seq):
                return data


def _reopen(name: str, readonly: bool) -> Segment:
    from ._client import default_client
    return default_client().open(name, readonly=readonly)


class SegmentLock:
    """A held segment lock; unlocks on __exit__ (or unlock())."""

    def __init__(self, seg: Segment, owner_died: bool) -> None:
        self.segment = seg
        self.owner_died = owner_died
        self._held = True
        self._on_unlock: Callable[[], None] | None = None  # aio.lock: the next task's turn

    def unlock(self) -> None:
        """Release the lock (once; later calls do nothing)."""
        if self._held:
            self._held = False
            try:
                self.segment.unlock()
            finally:
                if self._on_unlock is not None:
                    self._on_unlock()

    def __enter__(self) -> "SegmentLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

# SPDX-License-Identifier: LGPL-2.1-or-later
# shared_memory.py: SharedMemory, a brokered drop-in for
# multiprocessing.shared_memory.SharedMemory.
"""A drop-in for multiprocessing.shared_memory.SharedMemory, brokered.

    from ipcbroker.shared_memory import SharedMemory
    shm = SharedMemory(create=True, size=1024)   # as the standard one
    other = SharedMemory(shm.name)               # another process: attach by name

Differences from the standard class (docs/python.md):
  - segments are transient by default: the broker destroys one when its
    last handle is gone, also when its holders are killed (no
    resource_tracker, no leak warnings).  persistent=True keeps it until
    unlink(), like a POSIX shm object;
  - mode (default 0o600) and the broker's access control decide which uids
    may attach; readonly=True attaches read-only (buf is then read-only);
  - names are the broker's ([A-Za-z0-9._:@+-], up to 255 bytes); a leading
    '/' is accepted and dropped;
  - close() with views of buf still alive raises BufferError and leaves the
    object open (the standard one drops buf first, then raises).
"""
from __future__ import annotations

import secrets
from typing import Any

from ._client import Client, default_client
from ._segment import Segment

__all__ = ["SharedMemory"]

_SHM_NAME_PREFIX = "psm_"
# name -> unlinks this process made (see SharedMemory.unlink)
_unlinks: dict[str, int] = {}
_SHM_SAFE_NAME_LENGTH = 14


def _make_filename() -> str:
    """A random name (as the standard module's, without the leading '/')."""
    nbytes = (_SHM_SAFE_NAME_LENGTH - len(_SHM_NAME_PREFIX)) // 2
    return _SHM_NAME_PREFIX + secrets.token_hex(nbytes)


class SharedMemory:
    """SharedMemory(name=None, create=False, size=0, *, persistent=False,
    mode=0o600, readonly=False, client=None)

    Creates a new segment (create=True; name None: a random free one) or
    attaches to an existing one by name.  size is the size to create; on
    attach it is ignored and the segment's size is used."""

    _seg: Segment | None = None
    _name: str | None = None

    def __init__(self, name: str | None = None, create: bool = False, size: int = 0, *,
                 persistent: bool = False, mode: int = 0o600, readonly: bool = False,
                 client: Client | None = None) -> None:
        if not size >= 0:
            raise ValueError("'size' must be a positive integer")
        if create:
            if size == 0:
                raise ValueError("'size' must be a positive number different from zero")
            if readonly:
                raise ValueError("cannot create a segment read-only")
        if name is None and not create:
            raise ValueError("'name' can only be None if create=True")
        c = client if client is not None else default_client()
        if name is not None and name.startswith("/"):
            name = name[1:]
        if create:
            while True:
                n = _make_filename() if name is None else name
                try:
                    self._seg = c.create(n, size, mode=mode, persistent=persistent)
                except FileExistsError:
                    if name is None:
                        continue  # a random name that was taken: draw again
                    raise
                break
        else:
            assert name is not None
            self._seg = c.open(name, readonly=readonly)
        self._name = self._seg.name
        self._size = self._seg.size
        # (attached: not known without a request; treated as transient)
        self._persistent = persistent and create
        self._unlinks_seen = _unlinks.get(self._name, 0)

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.name, False, self.size))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.name!r}, size={self.size})"

    @property
    def buf(self) -> memoryview | None:
        """A memoryview of the contents (None once closed)."""
        s = self._seg
        return None if s is None or s.closed else s.buf

    @property
    def name(self) -> str:
        """The segment's name."""
        return self._name  # type: ignore[return-value]

    @property
    def size(self) -> int:
        """Size in bytes."""
        return self._size

    @property
    def segment(self) -> Segment | None:
        """The underlying ipcbroker.Segment (lock, read, fd, ...)."""
        return self._seg

    def close(self) -> None:
        """Close this process's access; the segment lives on while others
        hold it (or until unlink(), if persistent).  BufferError while views
        of buf exist."""
        s = self._seg
        if s is not None:
            s.close()
            self._seg = None

    def unlink(self) -> None:
        """Remove the name: nobody can attach any more; handles stay valid.

        FileNotFoundError if the name is already gone, except in one case:
        a transient segment dies with its last handle, so the POSIX idiom
        `shm.close(); shm.unlink()` finds it gone; that unlink succeeds (as
        on Windows, where unlink() does nothing) unless this process has
        unlinked the name since this object was made (a second unlink is
        an error, as with POSIX shm)."""
        s = self._seg
        # (in a forked child the parent's connection is not ours to use)
        c = s.client if s is not None and not s.client._inherited else default_client()
        name = self.name
        try:
            c.unlink(name)
        except FileNotFoundError:
            if not (self._seg is None and not self._persistent
                    and _unlinks.get(name, 0) == self._unlinks_seen):
                raise
        _unlinks[name] = _unlinks.get(name, 0) + 1

# SPDX-License-Identifier: LGPL-2.1-or-later
# _handle.py: what every wrapper of a library pointer shares: the pointer,
# the fork generation it belongs to, and a guard that keeps close() from
# freeing it while another thread is inside a call on it.
"""Base class of Client, Segment and Semaphore."""
from __future__ import annotations

import errno
from ctypes import c_void_p
from typing import Any

from . import _lib


class _Handle:
    """A library pointer.

    `_users` holds one entry per call in progress (list.append and list.pop
    are atomic under the GIL).  A call registers itself *before* reading the
    pointer and close() clears the pointer *before* looking at `_users`, so
    that either the call sees the handle closed or close() sees the call and
    refuses with EBUSY: the C object is never freed under a running call."""

    _kind_name = "handle"

    def __init__(self, ptr: c_void_p) -> None:
        self._h: c_void_p | None = ptr
        self._users: list[None] = []
        self._gen = _lib.fork_generation

    def _enter(self) -> c_void_p:
        """Register a call; returns the pointer.  Pair with _leave()."""
        self._users.append(None)
        h = self._h
        if h is None or self._gen != _lib.fork_generation:
            self._users.pop()
            raise self._unusable(h)
        return h

    def _unusable(self, h: c_void_p | None) -> Exception:
        """The error for a call on a closed or inherited handle."""
        if h is None:
            return ValueError(f"operation on a closed {self._kind_name}")
        return OSError(errno.ECHILD, f"this {self._kind_name} belongs to the parent "
                       "process (made before fork): connect again in the child")

    def _leave(self) -> None:
        self._users.pop()

    def _call(self, fn: Any, *args: Any) -> int:
        """fn(pointer, *args) under the guard; returns its int result unchecked."""
        h = self._enter()
        try:
            return fn(h, *args)
        finally:
            self._users.pop()

    def _take_for_close(self) -> c_void_p | None:
        """Detach the pointer for freeing: None if already closed; raises
        OSError(EBUSY) (the handle stays open) if a call is in progress."""
        h = self._h
        if h is None:
            return None
        self._h = None
        if self._users:
            self._h = h
            raise OSError(errno.EBUSY, f"{self._kind_name} is in use by another thread")
        return h

    @property
    def closed(self) -> bool:
        """True once close() succeeded."""
        return self._h is None

    @property
    def _inherited(self) -> bool:
        """Made in a parent process before os.fork()."""
        return self._gen != _lib.fork_generation

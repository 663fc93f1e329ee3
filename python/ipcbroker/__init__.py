# SPDX-License-Identifier: LGPL-2.1-or-later
# ipcbroker: Python bindings of libipcbroker (ctypes, standard library only).
"""Brokered shared memory and semaphores (ipcbrokerd) for Python.

    import ipcbroker
    c = ipcbroker.Client()                       # $IPCBROKER_SOCKET or the default
    with c.create("frame", 1 << 20) as seg:      # transient: dies with its last handle
        seg.buf[:5] = b"hello"                   # zero-copy memoryview
        with seg.lock():
            ...
    sem = c.sem_create("slots", 4, undo=True)
    with sem:                                    # acquire ... release
        ...

See docs/python.md.  The library is found through $IPCBROKER_LIBRARY, the
path recorded at install time, or the linker's search path."""
from __future__ import annotations

from . import _lib
from ._client import (BROKER_DEFAULT, BROKER_SYSTEM, BROKER_USER, KIND_SEM, KIND_SHM,
                      Client, HandleInfo, Holder, ObjectInfo, QuotaInfo, close_default_client,
                      default_client, socket_path)
from ._errors import (BrokerDisconnectedError, OwnerDiedError, QuotaExceededError,
                      ReadOnlyError, UntrustedBrokerError)
from ._segment import Segment, SegmentLock
from ._semaphore import Semaphore
from .shared_memory import SharedMemory

__version__: str = _lib.ipcb_version().decode()
LIBRARY_PATH: str = _lib.LIBRARY_PATH

SHM_PERSISTENT = _lib.SHM_PERSISTENT
SHM_GROWABLE = _lib.SHM_GROWABLE
OBJ_UNLINKED = _lib.OBJ_UNLINKED
SEM_VALUE_MAX = _lib.SEM_VALUE_MAX
SEM_UNDO_MAX = _lib.SEM_UNDO_MAX
NAME_MAX = _lib.NAME_MAX


def strerror(code: int) -> str:
    """The library's description of an errno value (negative or positive)."""
    return _lib.strerror(code)


def create(name: str, size: int, **kw) -> Segment:
    """default_client().create(name, size, **kw)."""
    return default_client().create(name, size, **kw)


def open(name: str, **kw) -> Segment:  # noqa: A001 - mirrors Client.open
    """default_client().open(name, **kw)."""
    return default_client().open(name, **kw)


# (create and open are left out of __all__: `from ipcbroker import *` must
# not shadow the builtin open)
__all__ = [
    "Client", "Segment", "SegmentLock", "Semaphore", "SharedMemory", "ObjectInfo",
    "HandleInfo", "QuotaInfo", "Holder", "BROKER_DEFAULT", "BROKER_SYSTEM", "BROKER_USER",
    "socket_path", "KIND_SHM", "KIND_SEM", "SHM_PERSISTENT", "SHM_GROWABLE",
    "OBJ_UNLINKED", "SEM_VALUE_MAX", "SEM_UNDO_MAX", "NAME_MAX", "default_client",
    "close_default_client", "strerror", "QuotaExceededError",
    "OwnerDiedError", "BrokerDisconnectedError", "UntrustedBrokerError", "ReadOnlyError",
    "LIBRARY_PATH",
]

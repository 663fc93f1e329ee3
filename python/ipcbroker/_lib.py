# SPDX-License-Identifier: LGPL-2.1-or-later
# _lib.py: loads libipcbroker with ctypes and declares every function, struct
# and constant of client/ipcbroker.h that the package uses.  Nothing here is
# public API; the classes in _client.py, _segment.py and _semaphore.py are.
"""ctypes declarations of libipcbroker (client/ipcbroker.h)."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char, c_char_p, c_int,
                    c_int32, c_size_t, c_uint, c_uint32, c_uint64, c_void_p)

from ._errors import error_from_code

# ---- constants (ipcbroker.h) ----
NAME_MAX = 255
READ_ONLY = 1
READ_WRITE = 2
KIND_SHM = 1
KIND_SEM = 2
SHM_PERSISTENT = 0x1
SHM_GROWABLE = 0x2
OBJ_UNLINKED = 0x4
OPEN_OWNED = 0x20
OWNER_SELF = 0xFFFFFFFF  # (uid_t)-1
OWNER_DIED = 1
SEM_VALUE_MAX = 65535
SEM_UNDO_MAX = 504
SEM_PERSISTENT = 0x1
SEM_UNDO = 0x8
ACCESS_MODE = 0x1
ACCESS_UID = 0x2
ACCESS_GID = 0x4
TIMEOUT_DEFAULT_MS = 25000
BROKER_DEFAULT = 0
BROKER_SYSTEM = 1
BROKER_USER = 2

uid_t = c_uint32
gid_t = c_uint32


class ShmOptions(Structure):
    _fields_ = [("struct_size", c_size_t), ("mode", c_uint), ("flags", c_uint)]


class ObjectInfo(Structure):
    _fields_ = [("struct_size", c_size_t), ("kind", c_int), ("name", c_char * (NAME_MAX + 1)), ("id", c_uint64),
                ("size", c_uint64), ("uid", uid_t), ("gid", gid_t), ("mode", c_uint),
                ("flags", c_uint), ("seals", c_uint), ("handles", c_uint),
                ("sem_value", c_uint), ("sem_max", c_uint), ("sem_undo_held", c_uint)]


class OpenOptions(Structure):
    _fields_ = [("struct_size", c_size_t), ("flags", c_uint), ("owner", uid_t)]


class HandleInfo(Structure):
    _fields_ = [("uid", uid_t), ("gid", gid_t), ("mode", c_uint)]


class SemOptions(Structure):
    _fields_ = [("struct_size", c_size_t), ("mode", c_uint), ("flags", c_uint),
                ("max", c_uint)]


class Access(Structure):
    _fields_ = [("struct_size", c_size_t), ("what", c_uint), ("mode", c_uint),
                ("uid", uid_t), ("gid", gid_t)]


class QuotaInfo(Structure):
    _fields_ = [("struct_size", c_size_t), ("uid", uid_t), ("exempt", c_int), ("objects", c_uint64),
                ("bytes", c_uint64), ("handles", c_uint), ("connections", c_uint),
                ("max_objects", c_uint64), ("max_bytes", c_uint64),
                ("max_handles", c_uint64), ("max_connections", c_uint64)]


class Holder(Structure):
    _fields_ = [("pid", c_int32), ("uid", uid_t), ("handles", c_uint)]


class WatchEvent(Structure):
    _fields_ = [("struct_size", c_size_t), ("watch", c_uint64), ("event", c_uint),
                ("kind", c_int), ("name", c_char_p), ("id", c_uint64), ("uid", uid_t),
                ("gid", gid_t), ("mode", c_uint), ("seals", c_uint)]


WATCH_CREATED = 0x01
WATCH_UNLINKED = 0x02
WATCH_DESTROYED = 0x04
WATCH_ACCESS = 0x08
WATCH_FROZEN = 0x10
WATCH_OWNER_DIED = 0x20
WATCH_ALL = 0x3F
WATCH_OVERFLOW = 0x80000000
WATCH_PREFIX = 0x1

LIST_CB = CFUNCTYPE(c_int, POINTER(ObjectInfo), c_void_p)
QUOTA_CB = CFUNCTYPE(c_int, POINTER(QuotaInfo), c_void_p)
# Callbacks of asynchronous requests: run inside ipcb_process (aio.py).
SHM_CB = CFUNCTYPE(None, c_void_p, c_int, c_void_p, c_void_p)
SEM_CB = CFUNCTYPE(None, c_void_p, c_int, c_void_p, c_void_p)
DONE_CB = CFUNCTYPE(None, c_void_p, c_int, c_void_p)
WATCH_CB = CFUNCTYPE(None, c_void_p, POINTER(WatchEvent), c_void_p)


def _candidates() -> list[str]:
    """Where to look for libipcbroker, in order."""
    out = []
    env = os.environ.get("IPCBROKER_LIBRARY")
    if env:
        out.append(env)
    try:  # written by `cmake --install`: the library installed with the package
        from . import _paths  # type: ignore[attr-defined]
        if getattr(_paths, "LIBRARY", None):
            out.append(_paths.LIBRARY)
    except ImportError:
        pass
    found = ctypes.util.find_library("ipcbroker")
    if found:
        out.append(found)
    out.append("libipcbroker.so.0")
    return out


def _load() -> tuple[ctypes.CDLL, str]:
    errors = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append(f"{path}: {e}")
            if path == os.environ.get("IPCBROKER_LIBRARY"):
                break  # an explicit choice that fails is not silently replaced
    raise ImportError("ipcbroker: cannot load libipcbroker (set IPCBROKER_LIBRARY to its "
                      "path): " + "; ".join(errors))


lib, LIBRARY_PATH = _load()


def _fn(name: str, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


P = c_void_p
ipcb_connect = _fn("ipcb_connect", c_int, c_char_p, POINTER(c_void_p))
ipcb_connect_system = _fn("ipcb_connect_system", c_int, POINTER(c_void_p))
ipcb_connect_user = _fn("ipcb_connect_user", c_int, POINTER(c_void_p))
ipcb_socket_path = _fn("ipcb_socket_path", c_int, c_int, c_char_p, c_size_t)
ipcb_connect_error = _fn("ipcb_connect_error", c_char_p, c_int, c_char_p, c_int, c_char_p,
                         c_size_t)
ipcb_holders = _fn("ipcb_holders", c_int, P, c_int, c_char_p, POINTER(Holder), c_size_t,
                   POINTER(c_uint64))
ipcb_set_timeout = _fn("ipcb_set_timeout", c_int, P, c_int)
ipcb_disconnect = _fn("ipcb_disconnect", None, P)
ipcb_shm_create = _fn("ipcb_shm_create", c_int, P, c_char_p, c_size_t, POINTER(ShmOptions),
                      POINTER(c_void_p))
ipcb_shm_open = _fn("ipcb_shm_open", c_int, P, c_char_p, c_int, POINTER(c_void_p))
ipcb_shm_open_ex = _fn("ipcb_shm_open_ex", c_int, P, c_char_p, c_int, POINTER(OpenOptions),
                       POINTER(c_void_p))
ipcb_shm_open_fd = _fn("ipcb_shm_open_fd", c_int, P, c_char_p, c_int, POINTER(OpenOptions),
                       POINTER(c_int), POINTER(c_size_t))
ipcb_shm_info = _fn("ipcb_shm_info", c_int, P, POINTER(HandleInfo))
ipcb_shm_data = _fn("ipcb_shm_data", c_void_p, P)
ipcb_shm_size = _fn("ipcb_shm_size", c_size_t, P)
ipcb_shm_fd = _fn("ipcb_shm_fd", c_int, P)
ipcb_shm_access = _fn("ipcb_shm_access", c_int, P)
ipcb_shm_seals = _fn("ipcb_shm_seals", c_uint, P)
ipcb_shm_close = _fn("ipcb_shm_close", c_int, P)
ipcb_sync = _fn("ipcb_sync", c_int, P)
ipcb_unlink = _fn("ipcb_unlink", c_int, P, c_char_p)
ipcb_stat = _fn("ipcb_stat", c_int, P, c_int, c_char_p, POINTER(ObjectInfo))
ipcb_list = _fn("ipcb_list", c_int, P, c_int, LIST_CB, c_void_p)
ipcb_shm_lock = _fn("ipcb_shm_lock", c_int, P)
ipcb_shm_try_lock = _fn("ipcb_shm_try_lock", c_int, P, c_int)
ipcb_shm_unlock = _fn("ipcb_shm_unlock", c_int, P)
ipcb_shm_read_begin = _fn("ipcb_shm_read_begin", c_int, P, c_int, POINTER(c_uint32))
ipcb_shm_read_retry = _fn("ipcb_shm_read_retry", c_bool, P, c_uint32)
ipcb_sem_create = _fn("ipcb_sem_create", c_int, P, c_char_p, c_uint, POINTER(SemOptions),
                      POINTER(c_void_p))
ipcb_sem_open = _fn("ipcb_sem_open", c_int, P, c_char_p, c_int, POINTER(c_void_p))
ipcb_sem_open_ex = _fn("ipcb_sem_open_ex", c_int, P, c_char_p, POINTER(OpenOptions),
                       POINTER(c_void_p))
ipcb_sem_info = _fn("ipcb_sem_info", c_int, P, POINTER(HandleInfo))
ipcb_sem_acquire = _fn("ipcb_sem_acquire", c_int, P)
ipcb_sem_try_acquire = _fn("ipcb_sem_try_acquire", c_int, P, c_int)
ipcb_sem_release = _fn("ipcb_sem_release", c_int, P, c_uint)
ipcb_sem_value = _fn("ipcb_sem_value", c_int, P)
ipcb_sem_held = _fn("ipcb_sem_held", c_int, P)
ipcb_sem_release_undo = _fn("ipcb_sem_release_undo", c_int, P, c_uint)
ipcb_sem_owed = _fn("ipcb_sem_owed", c_uint64, P)
ipcb_sem_close = _fn("ipcb_sem_close", c_int, P)
ipcb_sem_unlink = _fn("ipcb_sem_unlink", c_int, P, c_char_p)
ipcb_set_access = _fn("ipcb_set_access", c_int, P, c_int, c_char_p, POINTER(Access))
ipcb_chmod = _fn("ipcb_chmod", c_int, P, c_int, c_char_p, c_uint)
ipcb_chown = _fn("ipcb_chown", c_int, P, c_int, c_char_p, uid_t, gid_t)
ipcb_shm_freeze = _fn("ipcb_shm_freeze", c_int, P, c_char_p, POINTER(c_uint))
ipcb_shm_register = _fn("ipcb_shm_register", c_int, P, c_char_p, c_int, POINTER(ShmOptions),
                        POINTER(c_void_p))
ipcb_memfd_sealed = _fn("ipcb_memfd_sealed", c_int, P, c_size_t, c_uint, POINTER(c_int),
                        POINTER(c_uint))
ipcb_quota = _fn("ipcb_quota", c_int, P, uid_t, POINTER(QuotaInfo))
ipcb_quota_list = _fn("ipcb_quota_list", c_int, P, QUOTA_CB, c_void_p)
ipcb_strerror = _fn("ipcb_strerror", c_char_p, c_int)
ipcb_version = _fn("ipcb_version", c_char_p)
ipcb_sem_get_fd = _fn("ipcb_sem_get_fd", c_int, P)
ipcb_sem_poll_acquire = _fn("ipcb_sem_poll_acquire", c_int, P)
ipcb_shm_lock_get_fd = _fn("ipcb_shm_lock_get_fd", c_int, P)
ipcb_shm_poll_lock = _fn("ipcb_shm_poll_lock", c_int, P)
ipcb_get_fd = _fn("ipcb_get_fd", c_int, P)
ipcb_get_timeout_ms = _fn("ipcb_get_timeout_ms", c_int, P)
ipcb_process = _fn("ipcb_process", c_int, P)
ipcb_cancel = _fn("ipcb_cancel", c_int, P, c_uint64)
ipcb_shm_open_wait_async = _fn("ipcb_shm_open_wait_async", c_int, P, c_char_p, c_int, c_int,
                               SHM_CB, c_void_p, POINTER(c_uint64))
ipcb_sem_open_wait_async = _fn("ipcb_sem_open_wait_async", c_int, P, c_char_p, c_int, c_int,
                               SEM_CB, c_void_p, POINTER(c_uint64))
ipcb_watch_add_async = _fn("ipcb_watch_add_async", c_int, P, c_int, c_char_p, c_uint, c_uint,
                           WATCH_CB, c_void_p, DONE_CB, POINTER(c_uint64))
ipcb_watch_remove = _fn("ipcb_watch_remove", c_int, P, c_uint64)


# Unprototyped copies of the hottest calls: ctypes converts no argument
# (callers pass the handle as a c_void_p and small non-negative ints), which
# saves a third of the per-call cost.  Still a CDLL: the GIL is released.
sem_try_acquire_fast = lib["ipcb_sem_try_acquire"]
sem_release_fast = lib["ipcb_sem_release"]
shm_try_lock_fast = lib["ipcb_shm_try_lock"]
shm_unlock_fast = lib["ipcb_shm_unlock"]


def strerror(code: int) -> str:
    """ipcb_strerror(code) as str."""
    return ipcb_strerror(code).decode("utf-8", "replace")


def check(r: int, *context: str) -> int:
    """Return r if >= 0, else raise the OSError subclass for -r."""
    if r < 0:
        raise error_from_code(r, strerror(r), *context)
    return r


def encode_name(name: str | bytes) -> bytes:
    """A name as the library wants it (validation is the broker's and the library's)."""
    if isinstance(name, str):
        b = name.encode("utf-8")
    elif isinstance(name, (bytes, bytearray)):
        b = bytes(name)
    else:
        raise TypeError(f"name must be str or bytes, not {type(name).__name__}")
    if b"\0" in b:
        raise ValueError("name contains a NUL byte")
    return b


# Bumped in every child after os.fork(): handles and clients made before a
# fork belong to the parent's connection and must not send from the child.
fork_generation = 0


def _after_fork_in_child() -> None:
    global fork_generation
    fork_generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)

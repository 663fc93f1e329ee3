# SPDX-License-Identifier: LGPL-2.1-or-later
# _client.py: Client, one connection to ipcbrokerd, and the requests that are
# not about one open handle: stat, list, unlink, access control, freeze,
# register, quotas; plus the per-process default client.
"""The connection to the broker."""
from __future__ import annotations

import os
import threading
from ctypes import byref, c_int, c_size_t, c_uint, c_uint64, c_void_p, create_string_buffer
from ctypes import sizeof as ctypes_sizeof
from dataclasses import dataclass

from . import _lib
from ._errors import error_from_code
from ._handle import _Handle
from ._segment import Segment
from ._semaphore import Semaphore

KIND_SHM = _lib.KIND_SHM
KIND_SEM = _lib.KIND_SEM
BROKER_DEFAULT = _lib.BROKER_DEFAULT
BROKER_SYSTEM = _lib.BROKER_SYSTEM
BROKER_USER = _lib.BROKER_USER


def socket_path(broker: int = BROKER_DEFAULT) -> str:
    """The socket path of BROKER_DEFAULT (the rule Client() follows now),
    BROKER_SYSTEM or BROKER_USER (ipcb_socket_path)."""
    buf = create_string_buffer(4096)
    _lib.check(_lib.ipcb_socket_path(broker, buf, len(buf)))
    return os.fsdecode(buf.value)


@dataclass(frozen=True)
class Holder:
    """A connection holding handles on an object (ipcb_holders)."""
    pid: int
    uid: int
    handles: int


@dataclass(frozen=True)
class ObjectInfo:
    """What stat() and list() report about one object (ipcb_object_info)."""
    kind: int          #: KIND_SHM or KIND_SEM
    name: str
    id: int            #: unique for the broker's lifetime
    size: int          #: bytes
    uid: int           #: owner
    gid: int
    mode: int
    flags: int         #: SHM_PERSISTENT, SHM_GROWABLE, OBJ_UNLINKED
    seals: int         #: F_SEAL_* bits of the memfd
    handles: int       #: open handles over all connections
    sem_value: int
    sem_max: int
    sem_undo_held: int

    @property
    def persistent(self) -> bool:
        return bool(self.flags & _lib.SHM_PERSISTENT)

    @property
    def growable(self) -> bool:
        return bool(self.flags & _lib.SHM_GROWABLE)

    @classmethod
    def _from_c(cls, i: _lib.ObjectInfo) -> "ObjectInfo":
        return cls(i.kind, i.name.decode("utf-8", "replace"), i.id, i.size, i.uid, i.gid,
                   i.mode, i.flags, i.seals, i.handles, i.sem_value, i.sem_max,
                   i.sem_undo_held)


@dataclass(frozen=True)
class HandleInfo:
    """Owner, group and mode of an object when a handle was opened."""
    uid: int
    gid: int
    mode: int


@dataclass(frozen=True)
class QuotaInfo:
    """Usage and limits of one uid (0: no limit); exempt: counted, not limited."""
    uid: int
    exempt: bool
    objects: int
    bytes: int
    handles: int
    connections: int
    max_objects: int
    max_bytes: int
    max_handles: int
    max_connections: int

    @classmethod
    def _from_c(cls, q: _lib.QuotaInfo) -> "QuotaInfo":
        return cls(q.uid, bool(q.exempt), q.objects, q.bytes, q.handles, q.connections,
                   q.max_objects, q.max_bytes, q.max_handles, q.max_connections)


def _open_options(flags: int, owner: int | None) -> _lib.OpenOptions:
    o = _lib.OpenOptions(ctypes_sizeof(_lib.OpenOptions), flags, _lib.OWNER_SELF)
    if owner is not None:
        o.flags |= _lib.OPEN_OWNED
        o.owner = _lib.OWNER_SELF if owner < 0 else owner
    return o


class Client(_Handle):
    """One connection to ipcbrokerd (ipcb_connect).

    socket_path: None for $IPCBROKER_SOCKET, else the default socket.
    timeout: seconds every request may take (None: the library's default,
    $IPCBROKER_TIMEOUT_MS or 25 s; a negative value: no limit).

    Requests on one client are serialized by the library; a Client may be
    used from several threads.  A Client made before os.fork() cannot be
    used in the child (OSError ECHILD): connect again there.  Closing the
    client drops every handle of the connection at the broker (transient
    objects whose last handle it held die); Segment and Semaphore objects
    still open keep their mappings and must still be closed."""

    _kind_name = "client"

    def __init__(self, socket_path: str | os.PathLike | None = None,
                 timeout: float | None = None, *, broker: int = BROKER_DEFAULT) -> None:
        ret = c_void_p()
        path = None if socket_path is None else os.fsencode(socket_path)
        if broker == BROKER_SYSTEM and path is None:
            r = _lib.ipcb_connect_system(byref(ret))
        elif broker == BROKER_USER and path is None:
            r = _lib.ipcb_connect_user(byref(ret))
        elif broker == BROKER_DEFAULT:
            r = _lib.ipcb_connect(path, byref(ret))
        else:
            raise ValueError("give either socket_path or broker=BROKER_SYSTEM/BROKER_USER")
        if r < 0:
            # ipcb_connect_error: the path tried, which broker, what to do
            buf = create_string_buffer(512)
            msg = _lib.ipcb_connect_error(r, path, broker, buf, len(buf))
            raise error_from_code(r, msg.decode("utf-8", "replace"))
        super().__init__(ret)
        if timeout is not None:
            self.set_timeout(timeout)

    # ---- lifetime ----
    def close(self) -> None:
        """ipcb_disconnect.  Idempotent.  In a child of fork, only forgets
        the parent's connection (nothing is sent)."""
        h = self._take_for_close()
        if h is not None and not self._inherited:
            _lib.ipcb_disconnect(h)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def set_timeout(self, timeout: float) -> None:
        """Bound later requests to `timeout` seconds (> 0), none (< 0), or
        the default (0).  Semaphore and lock waits have their own timeouts."""
        if timeout > 0:
            ms = max(1, min(int(timeout * 1000 + 0.999), 2**31 - 1))
        else:
            ms = -1 if timeout < 0 else 0
        _lib.check(self._call(_lib.ipcb_set_timeout, ms))

    def sync(self) -> None:
        """Wait until the broker processed every request sent on this client
        (handle releases from close() included)."""
        _lib.check(self._call(_lib.ipcb_sync))

    # ---- segments ----
    def create(self, name: str, size: int, *, mode: int = 0o600, persistent: bool = False,
               growable: bool = False) -> "Segment":
        """Create segment `name` of `size` bytes and open it read-write
        (FileExistsError if it exists).  Transient (the default): it dies with
        its last handle, also when its holders crash; persistent: it lives
        until unlinked."""
        if size <= 0:
            raise ValueError("size must be > 0")
        flags = (_lib.SHM_PERSISTENT if persistent else 0) | (_lib.SHM_GROWABLE if growable else 0)
        opts = _lib.ShmOptions(ctypes_sizeof(_lib.ShmOptions), mode, flags)
        ret = c_void_p()
        n = _lib.encode_name(name)
        _lib.check(self._call(_lib.ipcb_shm_create, n, size, byref(opts), byref(ret)), name)
        return Segment._adopt(self, ret, name)

    def open(self, name: str, *, readonly: bool = False, owner: int | None = None) -> "Segment":
        """Open existing segment `name` (FileNotFoundError if there is none).
        readonly: a read-only handle (its buffer is a read-only view; the
        kernel refuses writes).  owner: refuse (PermissionError, EPERM) a
        segment not owned by this uid (-1: our own uid), checked by the broker
        with the open itself."""
        access = _lib.READ_ONLY if readonly else _lib.READ_WRITE
        ret = c_void_p()
        n = _lib.encode_name(name)
        if owner is None:
            r = self._call(_lib.ipcb_shm_open, n, access, byref(ret))
        else:
            opts = _open_options(0, owner)
            r = self._call(_lib.ipcb_shm_open_ex, n, access, byref(opts), byref(ret))
        _lib.check(r, name)
        return Segment._adopt(self, ret, name)

    def open_fd(self, name: str, *, readonly: bool = False,
                owner: int | None = None) -> tuple[int, int]:
        """Open existing segment `name` for a descriptor alone: (fd, size).
        The fd is yours (close it with os.close; it is close-on-exec; a
        read-only one can never be made writable); map at most size bytes.
        No handle is made: nothing to close at the broker, but the open does
        not keep a transient segment alive and cannot lock.  One request,
        where open() and close() cost a request and a message.  Errors and
        owner as for open()."""
        access = _lib.READ_ONLY if readonly else _lib.READ_WRITE
        fd = c_int(-1)
        size = c_size_t()
        opts = None if owner is None else byref(_open_options(0, owner))
        r = self._call(_lib.ipcb_shm_open_fd, _lib.encode_name(name), access, opts, byref(fd),
                       byref(size))
        _lib.check(r, name)
        return fd.value, size.value

    def register(self, name: str, memfd: int, *, mode: int = 0o600,
                 persistent: bool = False) -> "Segment":
        """Publish `memfd` (borrowed: still yours to close) as segment `name`.
        It must be a memfd sealed at least F_SEAL_SHRINK.  Returns a handle:
        read-write unless the memfd is write-sealed or O_RDONLY."""
        opts = _lib.ShmOptions(ctypes_sizeof(_lib.ShmOptions), mode,
                               _lib.SHM_PERSISTENT if persistent else 0)
        ret = c_void_p()
        n = _lib.encode_name(name)
        _lib.check(self._call(_lib.ipcb_shm_register, n, memfd, byref(opts), byref(ret)), name)
        return Segment._adopt(self, ret, name)

    def memfd_sealed(self, size: int, seals: int = 0) -> tuple[int, int]:
        """An anonymous memfd made by the broker: (fd, seals).  The fd is
        yours (close it); F_SEAL_SHRINK is always added."""
        fd = c_int()
        got = c_uint()
        _lib.check(self._call(_lib.ipcb_memfd_sealed, size, seals, byref(fd), byref(got)))
        return fd.value, got.value

    def freeze(self, name: str) -> int:
        """Seal segment `name` against writes (owner only); returns its seals.
        Read-write opens fail with ReadOnlyError (EROFS) afterwards."""
        seals = c_uint()
        _lib.check(self._call(_lib.ipcb_shm_freeze, _lib.encode_name(name), byref(seals)), name)
        return seals.value

    def unlink(self, name: str) -> None:
        """Remove segment `name` from the namespace; open handles stay valid."""
        _lib.check(self._call(_lib.ipcb_unlink, _lib.encode_name(name)), name)

    # ---- semaphores ----
    def sem_create(self, name: str, initial: int = 0, *, max: int = 0, mode: int = 0o600,
                   persistent: bool = False, undo: bool = False) -> "Semaphore":
        """Create semaphore `name` with `initial` tokens (max 0: SEM_VALUE_MAX)
        and open it; undo: tokens this handle holds come back when the
        process dies or the handle is closed."""
        flags = (_lib.SEM_PERSISTENT if persistent else 0) | (_lib.SEM_UNDO if undo else 0)
        if initial < 0 or max < 0:
            raise ValueError("initial and max must be >= 0")
        opts = _lib.SemOptions(ctypes_sizeof(_lib.SemOptions), mode, flags, max)
        ret = c_void_p()
        n = _lib.encode_name(name)
        _lib.check(self._call(_lib.ipcb_sem_create, n, initial, byref(opts), byref(ret)), name)
        return Semaphore._adopt(self, ret, name, undo)

    def sem_open(self, name: str, *, undo: bool = False, owner: int | None = None) -> "Semaphore":
        """Open existing semaphore `name` (FileNotFoundError if none); undo
        as in sem_create, owner as in open()."""
        ret = c_void_p()
        n = _lib.encode_name(name)
        opts = _open_options(_lib.SEM_UNDO if undo else 0, owner)
        _lib.check(self._call(_lib.ipcb_sem_open_ex, n, byref(opts), byref(ret)), name)
        return Semaphore._adopt(self, ret, name, undo)

    def sem_unlink(self, name: str) -> None:
        """Remove semaphore `name` from its namespace; open handles keep working."""
        _lib.check(self._call(_lib.ipcb_sem_unlink, _lib.encode_name(name)), name)

    def holders(self, name: str, kind: int = KIND_SHM) -> tuple[list[Holder], int]:
        """The connections holding handles on `name` (like `ipcs -p`), and
        the object's id; the broker names at most 256."""
        n = _lib.encode_name(name)
        oid = c_uint64()
        cap = 16
        while True:
            arr = (_lib.Holder * cap)()
            r = _lib.check(self._call(_lib.ipcb_holders, kind, n, arr, cap, byref(oid)), name)
            if r <= cap:
                return [Holder(h.pid, h.uid, h.handles) for h in arr[:r]], oid.value
            cap = r

    # ---- inspection and access control ----
    def stat(self, name: str, kind: int = KIND_SHM) -> ObjectInfo:
        """Describe object `name` of `kind` (KIND_SHM or KIND_SEM)."""
        info = _lib.ObjectInfo(struct_size=ctypes_sizeof(_lib.ObjectInfo))
        _lib.check(self._call(_lib.ipcb_stat, kind, _lib.encode_name(name), byref(info)), name)
        return ObjectInfo._from_c(info)

    def exists(self, name: str, kind: int = KIND_SHM) -> bool:
        """True if stat(name, kind) finds the object."""
        try:
            self.stat(name, kind)
            return True
        except FileNotFoundError:
            return False

    def list(self, kind: int = 0) -> list[ObjectInfo]:
        """Every object of `kind` (0: all kinds) in creation order."""
        out: list[ObjectInfo] = []

        def cb(p, _ud):  # runs inside ipcb_list, with the GIL
            out.append(ObjectInfo._from_c(p.contents))
            return 0
        _lib.check(self._call(_lib.ipcb_list, kind, _lib.LIST_CB(cb), None))
        return out

    def set_access(self, name: str, *, kind: int = KIND_SHM, mode: int | None = None,
                   uid: int | None = None, gid: int | None = None) -> None:
        """Change mode, owner and/or group of `name` in one step (all or nothing)."""
        acc = _lib.Access(ctypes_sizeof(_lib.Access), 0, 0, 0, 0)
        if mode is not None:
            acc.what |= _lib.ACCESS_MODE
            acc.mode = mode
        if uid is not None:
            acc.what |= _lib.ACCESS_UID
            acc.uid = uid
        if gid is not None:
            acc.what |= _lib.ACCESS_GID
            acc.gid = gid
        if not acc.what:
            raise ValueError("set_access: give mode, uid and/or gid")
        _lib.check(self._call(_lib.ipcb_set_access, kind, _lib.encode_name(name), byref(acc)), name)

    def chmod(self, name: str, mode: int, *, kind: int = KIND_SHM) -> None:
        """Set the mode bits of `name`."""
        _lib.check(self._call(_lib.ipcb_chmod, kind, _lib.encode_name(name), mode), name)

    def chown(self, name: str, uid: int = -1, gid: int = -1, *, kind: int = KIND_SHM) -> None:
        """Set owner and/or group of `name` (-1 leaves that one unchanged)."""
        _lib.check(self._call(_lib.ipcb_chown, kind, _lib.encode_name(name),
                              uid & 0xFFFFFFFF, gid & 0xFFFFFFFF), name)

    def quota(self, uid: int | None = None) -> QuotaInfo:
        """Usage and limits of `uid` (None: ours; another's needs uid 0)."""
        q = _lib.QuotaInfo(struct_size=ctypes_sizeof(_lib.QuotaInfo))
        u = os.geteuid() if uid is None else uid
        _lib.check(self._call(_lib.ipcb_quota, u, byref(q)))
        return QuotaInfo._from_c(q)

    def quota_list(self) -> list[QuotaInfo]:
        """Every uid that uses something (uid 0), or our own only."""
        out: list[QuotaInfo] = []

        def cb(p, _ud):
            out.append(QuotaInfo._from_c(p.contents))
            return 0
        _lib.check(self._call(_lib.ipcb_quota_list, _lib.QUOTA_CB(cb), None))
        return out


_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """This process's shared Client, connected on first use ($IPCBROKER_SOCKET
    or the default socket); a new one after fork()."""
    global _default
    c = _default
    if c is not None and not c.closed and not c._inherited:
        return c
    with _default_lock:
        c = _default
        if c is None or c.closed or c._inherited:
            c = _default = Client()
        return c


def _forget_default_in_child() -> None:
    global _default, _default_lock
    _default = None  # the parent's connection: never used, never closed here
    _default_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_default_in_child)


def close_default_client() -> None:
    """Disconnect the default client (a later default_client() connects again)."""
    global _default
    with _default_lock:
        c, _default = _default, None
    if c is not None:
        c.close()

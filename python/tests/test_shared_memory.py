# SPDX-License-Identifier: LGPL-2.1-or-later
# test_shared_memory.py: the checks of CPython's test_shared_memory (3.11,
# _TestSharedMemory), run against multiprocessing.shared_memory.SharedMemory
# and against the brokered drop-in alike; then what only the brokered one
# does (crash cleanup, modes for other uids, read-only attach).
from __future__ import annotations

import errno
import os
import pickle
from multiprocessing import resource_tracker
from multiprocessing import shared_memory as std_module

import pytest

import ipcbroker
from ipcbroker import shared_memory as ipcb_module
from conftest import NOBODY, Child, require_root, run_as, wait_until

MODULES = {"stdlib": std_module, "ipcbroker": ipcb_module}


@pytest.fixture(scope="session", autouse=True)
def _tracker_first():
    # the standard module starts a resource tracker (a pipe fd kept for the
    # process's lifetime) on first use: start it before any fd count is taken
    resource_tracker.ensure_running()


@pytest.fixture(params=sorted(MODULES))
def mod(request, broker):
    """Each test runs once per implementation (the broker runs for both, so
    that the brokered run is checked for leaks the same way)."""
    return MODULES[request.param]


def test_shared_memory_basics(mod):
    name_tsmb = "test01_tsmb"
    sms = mod.SharedMemory(name_tsmb, create=True, size=512)
    try:
        assert sms.name == name_tsmb
        assert sms.size >= 512
        assert len(sms.buf) >= sms.size
        assert name_tsmb in repr(sms) and str(sms.size) in repr(sms)
        sms.buf[0] = 42
        assert sms.buf[0] == 42

        also_sms = mod.SharedMemory(name_tsmb)
        assert also_sms.buf[0] == 42
        also_sms.close()

        same_sms = mod.SharedMemory(name_tsmb, size=sms.size * 2)  # size ignored on attach
        assert same_sms.size == sms.size
        same_sms.close()

        with pytest.raises(FileExistsError):
            mod.SharedMemory(name_tsmb, create=True, size=512)

        # creating with a random name retries when the name is taken
        names = [name_tsmb, "test01_dblunlink"]
        orig = mod._make_filename
        prefix = "/" if mod is std_module else ""
        mod._make_filename = lambda: prefix + names.pop(0)
        try:
            sms2 = mod.SharedMemory(create=True, size=64)
        finally:
            mod._make_filename = orig
        assert sms2.name == "test01_dblunlink" and not names
        sms2.close()
        sms2.unlink()
        with pytest.raises(FileNotFoundError):
            sms2.unlink()
    finally:
        sms.close()
        sms.unlink()
    with pytest.raises(FileNotFoundError):
        mod.SharedMemory(name_tsmb)
    sms.close()  # closing twice is fine
    assert sms.buf is None


def test_double_unlink(mod):
    # POSIX shm can be unlinked once (CPython's test_shared_memory_basics)
    sms_uno = mod.SharedMemory("test01_dblunlink", create=True, size=5000)
    with pytest.raises(FileNotFoundError):
        try:
            assert sms_uno.size >= 5000
            sms_duo = mod.SharedMemory("test01_dblunlink")
            sms_duo.unlink()  # first unlink
            sms_duo.close()
            sms_uno.close()
        finally:
            sms_uno.unlink()  # a second one is bad


def test_close_then_unlink(mod):
    # the common idiom; a brokered transient segment is already gone
    sms = mod.SharedMemory(create=True, size=10)
    sms.close()
    sms.unlink()
    with pytest.raises(FileNotFoundError):
        mod.SharedMemory(sms.name)


def test_invalid_shared_memory_creation(mod):
    with pytest.raises(ValueError):
        mod.SharedMemory(create=True, size=-1)
    with pytest.raises(ValueError):
        mod.SharedMemory(create=True, size=0)
    with pytest.raises(ValueError):
        mod.SharedMemory(create=False)
    with pytest.raises(FileNotFoundError):
        mod.SharedMemory("test_no_such_segment")


def test_random_names_differ(mod):
    a = mod.SharedMemory(create=True, size=100)
    b = mod.SharedMemory(create=True, size=100)
    try:
        assert a.name != b.name and a.name.startswith("psm_")
    finally:
        for s in (a, b):
            s.close()
            s.unlink()


def test_shared_memory_pickle_unpickle(mod):
    sms = mod.SharedMemory(create=True, size=512)
    try:
        sms.buf[0:6] = b"pickle"
        sms2 = pickle.loads(pickle.dumps(sms))
        assert isinstance(sms2, mod.SharedMemory)
        assert sms.name == sms2.name and bytes(sms2.buf[0:6]) == b"pickle"
        sms2.buf[0:6] = b"newval"
        assert bytes(sms.buf[0:6]) == b"newval"
        sms2.close()
        dump = pickle.dumps(sms)
    finally:
        sms.close()
        sms.unlink()
    with pytest.raises(FileNotFoundError):
        pickle.loads(dump)


def test_shared_memory_across_processes(mod):
    sms = mod.SharedMemory(create=True, size=512)
    try:
        def child(name):
            s = mod.SharedMemory(name)
            s.buf[:5] = b"howdy"
            s.close()
        run_as(None, child, sms.name)
        assert bytes(sms.buf[:5]) == b"howdy"
    finally:
        sms.close()
        sms.unlink()


def _attach_existing_shmem_then_write(shmem_name_or_obj, binary_data):
    # as CPython's _TestSharedMemory helper; runs in a multiprocessing child
    mod = ipcb_module if isinstance(shmem_name_or_obj, ipcb_module.SharedMemory) or \
        os.environ.get("IPCB_TEST_MOD") == "ipcbroker" else std_module
    if isinstance(shmem_name_or_obj, str):
        local_sms = mod.SharedMemory(shmem_name_or_obj)
    else:
        local_sms = shmem_name_or_obj
    local_sms.buf[:len(binary_data)] = binary_data
    local_sms.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_shared_memory_across_multiprocessing(mod, method, monkeypatch):
    """CPython's test_shared_memory_across_processes with multiprocessing
    itself: by name, then the pickled (spawn) or inherited (fork) object."""
    import multiprocessing
    if method == "spawn" and mod is std_module:
        pytest.skip("slow, and the fork run checks the same test logic on the standard class")
    ctx = multiprocessing.get_context(method)
    monkeypatch.setenv("IPCB_TEST_MOD", "ipcbroker" if mod is ipcb_module else "stdlib")
    sms = mod.SharedMemory(create=True, size=512)
    try:
        for arg, data in ((sms.name, b"howdy"), (sms, b"HELLO")):
            p = ctx.Process(target=_attach_existing_shmem_then_write, args=(arg, data))
            p.daemon = True
            p.start()
            p.join(30)
            assert p.exitcode == 0
            assert bytes(sms.buf[:5]) == data
    finally:
        sms.close()
        sms.unlink()


def test_pickle_all_protocols(mod):
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        sms = mod.SharedMemory(create=True, size=512)
        sms.buf[0:6] = b"pickle"
        sms2 = pickle.loads(pickle.dumps(sms, protocol=proto))
        assert sms2.name == sms.name and bytes(sms2.buf[0:6]) == b"pickle"
        sms2.buf[0:6] = b"oldval"
        assert bytes(sms.buf[0:6]) == b"oldval"
        sms2.close()
        dump = pickle.dumps(sms, protocol=proto)
        sms.close()
        sms.unlink()
        with pytest.raises(FileNotFoundError):
            pickle.loads(dump)


def test_close_with_exported_views(mod):
    sms = mod.SharedMemory(create=True, size=64)
    view = sms.buf[:8]
    try:
        with pytest.raises(BufferError):
            sms.close()
    finally:
        view.release()
        sms.close()
        sms.unlink()


def test_numpy_on_the_buffer(mod):
    np = pytest.importorskip("numpy")
    sms = mod.SharedMemory(create=True, size=8 * 16)
    try:
        a = np.ndarray((16,), dtype=np.float64, buffer=sms.buf)
        a[:] = np.arange(16)
        other = mod.SharedMemory(sms.name)
        b = np.ndarray((16,), dtype=np.float64, buffer=other.buf)
        assert b[15] == 15.0
        del a, b
        other.close()
    finally:
        sms.close()
        sms.unlink()


# ---- what only the brokered one does ----

def test_transient_by_default_and_cleaned_after_kill_9(broker):
    def holder(conn):
        s = ipcb_module.SharedMemory(create=True, size=4096)
        s.buf[0] = 1
        conn.send(s.name)
        conn.recv(30)

    ch = Child(holder)
    name = ch.recv()
    c = ipcbroker.default_client()
    assert c.exists(name)
    ch.kill()
    assert wait_until(lambda: not c.exists(name))
    with pytest.raises(FileNotFoundError):
        ipcb_module.SharedMemory(name)


def test_persistent_lives_until_unlink(broker):
    s = ipcb_module.SharedMemory("keep", create=True, size=100, persistent=True)
    s.close()
    t = ipcb_module.SharedMemory("/keep")  # a leading slash is accepted
    assert t.name == "keep" and t.size == 100
    t.close()
    t.unlink()


def test_unlink_from_a_forked_child(mod):
    sms = mod.SharedMemory(create=True, size=64, **({} if mod is std_module
                                                     else {"persistent": True}))

    def child():
        sms.buf[0] = 1     # the inherited mapping
        sms.unlink()       # any process may unlink
        sms.close()
    try:
        run_as(None, child)
        with pytest.raises(FileNotFoundError):
            mod.SharedMemory(sms.name)
        assert sms.buf[0] == 1
    finally:
        sms.close()


def test_mode_and_readonly_for_other_uids(broker):
    require_root()
    s = ipcb_module.SharedMemory("shared", create=True, size=64, mode=0o644)
    s.buf[:2] = b"ok"

    def other():
        out = []
        try:
            ipcb_module.SharedMemory("shared")
        except PermissionError as e:
            out.append(errno.errorcode[e.errno])
        r = ipcb_module.SharedMemory("shared", readonly=True)
        out.append(bytes(r.buf[:2]))
        out.append(r.buf.readonly)
        r.close()
        return out
    assert run_as(NOBODY, other) == ["EACCES", b"ok", True]
    with pytest.raises(ValueError):
        ipcb_module.SharedMemory("x", create=True, size=1, readonly=True)
    s.close()

# SPDX-License-Identifier: LGPL-2.1-or-later
# test_layout.py: the ctypes structs and constants of _lib.py against the C
# compiler's view of ipcbroker.h (printed by the ipcb_py_layout helper).
from __future__ import annotations

import ctypes
import os
import subprocess

import pytest

from ipcbroker import _lib

STRUCTS = {
    "ipcb_shm_options": _lib.ShmOptions, "ipcb_object_info": _lib.ObjectInfo,
    "ipcb_open_options": _lib.OpenOptions, "ipcb_handle_info": _lib.HandleInfo,
    "ipcb_sem_options": _lib.SemOptions, "ipcb_access": _lib.Access,
    "ipcb_quota_info": _lib.QuotaInfo, "ipcb_holder": _lib.Holder,
    "ipcb_watch_event": _lib.WatchEvent,
}


def _layout() -> list[tuple[str, str, int]]:
    helper = os.environ.get("IPCB_PY_LAYOUT")
    if not helper:
        pytest.fail("IPCB_PY_LAYOUT is not set (run these tests through ctest)")
    out = subprocess.run([helper], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        what, kind, value = line.split()
        rows.append((what, kind, int(value)))
    return rows


def test_structs_and_constants_match_the_header():
    rows = _layout()
    seen_fields: dict[str, set[str]] = {k: set() for k in STRUCTS}
    assert len(rows) > 50
    for what, kind, value in rows:
        if kind == "size":
            assert ctypes.sizeof(STRUCTS[what]) == value, what
        elif kind == "offset":
            struct, field = what.split(".")
            assert getattr(STRUCTS[struct], field).offset == value, what
            seen_fields[struct].add(field)
        else:
            assert what == "const", what
            assert getattr(_lib, kind) == value, kind
    for struct, cls in STRUCTS.items():  # every ctypes field was checked
        assert {f[0] for f in cls._fields_} == seen_fields[struct], struct

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# publisher.py: fills a numpy array in a brokered segment, freezes it (no
# writer is left, nobody can get write access), lets uid 65534 read it, and
# runs consumer.py as uid 65534 (when started as root) to read it back.
"""Publish a numpy array through a frozen segment; see README.md."""
import os
import subprocess
import sys

import numpy as np

import ipcbroker

NAME = "example.numpy.frame"
HEADER = 64  # b"<dtype> <dim0>x<dim1>..." padded with NULs, then the array


def main() -> int:
    frame = (np.arange(480 * 640, dtype=np.float32) * 0.25).reshape(480, 640)
    header = f"{frame.dtype.str} {'x'.join(map(str, frame.shape))}".encode()
    c = ipcbroker.Client()
    # persistent: it outlives this handle, which is closed before freezing
    seg = c.create(NAME, HEADER + frame.nbytes, persistent=True, mode=0o644)
    try:
        seg.buf[:len(header)] = header
        view = np.ndarray(frame.shape, frame.dtype, buffer=seg.buf, offset=HEADER)
        view[:] = frame          # the one copy: into shared memory
        del view                 # no view may outlive close()
        seg.close()
        seals = c.freeze(NAME)   # F_SEAL_WRITE: the bytes are immutable now
        print(f"publisher (uid {os.geteuid()}): {frame.shape} {frame.dtype} in "
              f"{NAME!r}, frozen (seals {seals:#x}), sum {float(frame.sum())}")
        cmd = [sys.executable, os.path.join(os.path.dirname(__file__), "consumer.py"),
               NAME, repr(float(frame.sum()))]
        kw = {}
        if os.geteuid() == 0:
            kw = dict(user=65534, group=65534, extra_groups=[])
        else:
            print("publisher: not root, the consumer runs as this uid")
        return subprocess.run(cmd, **kw).returncode
    finally:
        c.unlink(NAME)
        c.close()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# consumer.py NAME SUM: opens the frozen segment read-only, wraps the array
# in numpy without copying, and checks it; it cannot get write access.
"""Read the published numpy array; see README.md."""
import errno
import os
import sys

import numpy as np

import ipcbroker

HEADER = 64


def main() -> int:
    name, want = sys.argv[1], float(sys.argv[2])
    c = ipcbroker.Client()
    try:
        c.open(name)  # read-write: refused (frozen, and mode 0644 for others)
        print("consumer: got write access to a frozen segment!")
        return 1
    except OSError as e:
        refused = errno.errorcode[e.errno]
    with c.open(name, readonly=True) as seg:
        dtype, shape = bytes(seg.buf[:HEADER]).rstrip(b"\0").decode().split()
        shape = tuple(int(n) for n in shape.split("x"))
        a = np.ndarray(shape, np.dtype(dtype), buffer=seg.buf, offset=HEADER)
        ok = (not a.flags.writeable and not a.flags.owndata and float(a.sum()) == want
              and a[479, 639] == np.float32(479 * 640 + 639) * np.float32(0.25))
        print(f"consumer (uid {os.geteuid()}): {a.shape} {a.dtype}, zero-copy read-only view, "
              f"sum {float(a.sum())}, read-write open refused ({refused}): "
              f"{'ok' if ok else 'WRONG'}")
        del a
    c.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

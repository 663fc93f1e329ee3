# SPDX-License-Identifier: LGPL-2.1-or-later
# _errors.py: the library's negative errno values as Python exceptions.
"""Exceptions: every failure is an OSError (subclass) whose errno is the
library's.  Python's own mapping gives FileExistsError (EEXIST),
FileNotFoundError (ENOENT), PermissionError (EACCES, EPERM), TimeoutError
(ETIMEDOUT), BlockingIOError (EAGAIN), ...; a few errnos of the broker get
their own subclass here."""
from __future__ import annotations

import errno as _errno


class QuotaExceededError(OSError):
    """EDQUOT: a per-uid quota of the broker is used up."""


class OwnerDiedError(OSError):
    """EOWNERDEAD: the last holder of a segment lock died holding it."""


class BrokerDisconnectedError(ConnectionError):
    """ENOTCONN: the connection to the broker is gone and could not be made again."""


class UntrustedBrokerError(PermissionError):
    """EKEYREJECTED: the socket is served by an untrusted uid."""


class ReadOnlyError(OSError):
    """EROFS: read-write access asked of a frozen segment."""


_SPECIFIC = {
    _errno.EDQUOT: QuotaExceededError,
    _errno.EOWNERDEAD: OwnerDiedError,
    _errno.ENOTCONN: BrokerDisconnectedError,
    _errno.EKEYREJECTED: UntrustedBrokerError,
    _errno.EROFS: ReadOnlyError,
}


def error_from_code(code: int, message: str, *context: str) -> OSError:
    """The exception for a negative (or positive) errno value `code`.

    `context` (e.g. the object's name) becomes the exception's filename."""
    err = -code if code < 0 else code
    cls = _SPECIFIC.get(err)
    args = (err, message) + tuple(context[:1])
    if cls is not None:
        return cls(*args)
    return OSError(*args)  # OSError picks the builtin subclass for err

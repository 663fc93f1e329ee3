/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* strerror.c: the library's static strings: its version (ipcb_version),
 * and ipcb_strerror, what the library's negative errnos mean here.
 * Many errnos the library returns were chosen for their closeness, not their
 * C library text: -ETIMEDOUT of a semaphore wait is no "Connection timed
 * out", -EUSERS is no "Too many users", -EKEYREJECTED has nothing to do with
 * keys.  Each gets the text of what it means for a broker, a segment or a
 * semaphore (ipcbroker.h lists where each comes from); any other errno gets
 * the C library's description. */
#include "ipcbroker.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

static const struct {
        int err;
        const char *text;
} texts[] = {
        { EPROTO, "protocol error: the broker sent a malformed reply" },
        { ENOTCONN, "not connected to the broker (the connection is gone)" },
        { ECONNREFUSED, "no broker is listening on the socket" },
        { EFBIG, "size above the broker's maximum segment size" },
        { EDQUOT, "quota exceeded (objects, bytes, handles or fds of this user)" },
        { ENOSPC, "the broker has no room for more objects (its fd budget is spent)" },
        { EUSERS, "too many connections for this user, or no undo slot left on the semaphore" },
        { EBADFD, "not a memfd sealed with F_SEAL_SHRINK, or one the broker already serves" },
        { EROFS, "the segment is frozen (write-sealed): only read-only access" },
        { EPROTONOSUPPORT, "the broker speaks another protocol version" },
        { ETIMEDOUT, "timed out (no answer from the broker in time, or a semaphore or lock "
                     "wait ran out)" },
        { EKEYREJECTED, "the socket is served by a uid that is not a trusted broker (not root, "
                        "not you, not the owner of a socket directory only it can write)" },
        { EAGAIN, "not available now (no token, or the lock is taken)" },
        { EOVERFLOW, "the semaphore's value would exceed its maximum" },
        { EDEADLK, "this handle already holds the lock" },
        { EOWNERDEAD, "the lock's last holder died holding it: the data may be half-written" },
        { EBUSY, "another thread is inside a call on this undo handle" },
        { ECHILD, "an undo handle cannot be used in a child after fork" },
        { ESTALE, "the name now leads to another object" },
        { ESRCH, "nothing left to reclaim (the broker's grace period is over)" },
        { EEXIST, "the name is taken" },
        { ENOENT, "no such object" },
        { EACCES, "permission denied (mode, or a prefix reserved for another uid)" },
        { EPERM, "operation not permitted (not the owner, or not the expected owner)" },
        { EINVAL, "invalid argument (a name, size, mode, flag or value the broker refuses)" },
        { ENAMETOOLONG, "name too long (at most 255 bytes)" },
        { EMFILE, "this process is out of file descriptors" },
        { EBADF, "bad handle (read-only, or not a handle of this kind)" },
        { EOPNOTSUPP, "the broker does not support this request" },
        { EDESTADDRREQ, "no user broker: $XDG_RUNTIME_DIR is not set" },
};

const char *ipcb_strerror(int err) {
        const char *s;

        if (err == INT_MIN)
                return "unknown error";
        if (err > 0)
                err = -err;
        if (err == 0)
                return "success";
        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
                if (texts[i].err == -err)
                        return texts[i].text;
        s = strerrordesc_np(-err);
        return s ? s : "unknown error";
}

const char *ipcb_version(void) {
        return IPCB_VERSION_STRING;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ipcbroker.h: client library for ipcbrokerd, a broker of named shared-memory
 * segments handed out as sealed memfds.
 *
 * Conventions, for every call below:
 *   - An int return is 0 (or a documented positive value) on success and a
 *     negative errno on failure; ipcb_strerror() explains it.
 *   - ret_ out-parameters are written only on success.
 *   - Destructors accept NULL.
 *   - Every descriptor the library creates or receives is close-on-exec.
 *   - The library never logs and never writes to stdout/stderr.
 *   - Thread safety: one ipcb_client may be used from several threads at once;
 *     requests on it are serialized.  An ipcb_shm may be used from several
 *     threads, but closing it while another thread uses it is the caller's bug.
 *   - fork(): a child must not use its parent's ipcb_client or close its
 *     parent's handles through it; it calls ipcb_connect() itself.  Mappings
 *     inherited across fork stay valid as ordinary shared mappings.
 *
 * Errors that any request may return:
 *   -ENOTCONN  the connection to the broker is gone and a new one could not
 *              be made (the handle is dead; disconnect and connect again).
 *              A lost connection (e.g. the broker was restarted by systemd
 *              and took its objects back from the fd store) is replaced
 *              once, transparently, by the next request: every open handle
 *              is re-opened by name on the new connection (same memfd
 *              inode, so mappings never change; a handle whose name now
 *              leads elsewhere keeps its mapping but loses its broker
 *              handle).  What a caller can notice is in docs/systemd.md:
 *              new object ids, a request whose reply was lost sent
 *              again; undo tokens stay held if the handle is used within
 *              the restarted broker's grace period, and a segment lock held
 *              across the restart stays held if the client makes any
 *              request within it (otherwise it is released as owner-died);
 *   -EPROTO    the broker sent something that does not decode;
 *   -ENOMEM    out of memory;
 *   -EDQUOT    a per-uid quota of the broker (objects, bytes, handles, fds) is
 *              used up: only this uid is refused (docs/security.md);
 *   -ENOSPC    (creating or registering) the broker's fd budget for
 *              objects, shared by all uids, is spent (docs/security.md,
 *              "Shares of the fd table"); retry when objects have gone;
 *   -EUSERS    (ipcb_connect) the uid has too many connections;
 *   -ETIMEDOUT the broker did not answer within the client's timeout
 *              (ipcb_set_timeout; 25 s by default); the connection stays
 *              usable, see ipcb_set_timeout for what the request did;
 *   -EMFILE    a request whose answer carries an fd (opening or creating
 *              a segment or semaphore, a segment's first lock, a sealed
 *              memfd) found this process out of fds: the kernel dropped
 *              the fd.  Only that request fails: a handle the broker made
 *              for it is released again (a transient object this created
 *              is destroyed with it); the connection and every other
 *              handle stay usable.  Retry once fds are free;
 *   -EINTR is never returned: requests are retried internally.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(IPCB_BUILDING_LIBRARY)
#define IPCB_EXPORT __attribute__((visibility("default")))
#else
#define IPCB_EXPORT
#endif

/* The version of this header: the project's only statement of it. */
#define IPCB_VERSION_STRING "0.1.0"

/* Longest object name in bytes.  Names are 1..IPCB_NAME_MAX bytes of
 * [A-Za-z0-9._:@+-] and do not start with '.'.  Other names are refused with
 * -EINVAL (-ENAMETOOLONG when too long); they are never truncated. */
#define IPCB_NAME_MAX 255

/* The system broker's socket (root's broker, shared by every user). */
#define IPCB_SYSTEM_SOCKET "/run/ipcbroker/ipcbroker.sock"

typedef struct ipcb_client ipcb_client;
typedef struct ipcb_shm ipcb_shm;
typedef struct ipcb_sem ipcb_sem;

/* Access requested by ipcb_shm_open(). */
enum {
        IPCB_READ_ONLY  = 1,
        IPCB_READ_WRITE = 2,
};

/* Object kinds: each has its own namespace. */
#define IPCB_KIND_SHM 1
#define IPCB_KIND_SEM 2

/* ipcb_shm_options.flags and ipcb_object_info.flags */
#define IPCB_SHM_PERSISTENT 0x1u /* live until unlinked, not until the last handle closes */
#define IPCB_SHM_GROWABLE   0x2u /* do not set F_SEAL_GROW */
#define IPCB_OBJ_UNLINKED   0x4u /* info only: the name is gone, handles remain */

/* Options for ipcb_shm_create().  Always initialise with
 * IPCB_SHM_OPTIONS_INIT: the library reads only the first struct_size bytes,
 * so that fields added later do not break programs built against this
 * version. */
typedef struct ipcb_shm_options {
        size_t struct_size;
        unsigned mode;  /* permission bits (r/w for user, group, other; x bits
                         * are kept and shown but grant nothing); default 0600 */
        unsigned flags; /* IPCB_SHM_PERSISTENT | IPCB_SHM_GROWABLE */
} ipcb_shm_options;
/* Positional (every field, in order) so that the macros also compile as C++. */
#define IPCB_SHM_OPTIONS_INIT { sizeof(ipcb_shm_options), 0600, 0 }

/* What ipcb_stat() and ipcb_list() report about one object.
 *
 * Output structs (this one and ipcb_quota_info) carry their size, as the
 * option structs do, so that fields added later break no program built
 * against this version:
 *   - a struct the caller passes to be filled (ipcb_stat, ipcb_quota) must
 *     be initialised with IPCB_OBJECT_INFO_INIT / IPCB_QUOTA_INFO_INIT (or
 *     have struct_size set to its sizeof).  The library writes only the
 *     first struct_size bytes and sets struct_size to how many of them it
 *     filled (no more than it knows of).  A struct_size smaller than the
 *     first version of the struct (this one) is refused with -EINVAL
 *     before anything is sent;
 *   - a struct the library passes to a callback (ipcb_list, ipcb_quota_list,
 *     ipcb_stat_async) has struct_size set by the library: read only the
 *     fields that lie within it. */
typedef struct ipcb_object_info {
        size_t struct_size;           /* see above */
        int kind;                     /* IPCB_KIND_* */
        char name[IPCB_NAME_MAX + 1]; /* NUL-terminated */
        uint64_t id;                  /* unique for the daemon's lifetime */
        uint64_t size;                /* bytes */
        uid_t uid;                    /* owner */
        gid_t gid;
        unsigned mode;
        unsigned flags;               /* IPCB_SHM_PERSISTENT, IPCB_SHM_GROWABLE, IPCB_OBJ_UNLINKED */
        unsigned seals;               /* F_SEAL_* bits of the memfd */
        unsigned handles;             /* open handles over all connections */
        unsigned sem_value, sem_max, sem_undo_held; /* semaphores only */
} ipcb_object_info;
/* Positional, like the option macros, so that it also compiles as C++. */
#define IPCB_OBJECT_INFO_INIT { sizeof(ipcb_object_info), 0, "", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/* Which broker: a machine may run two, as it runs two D-Bus buses.
 *   IPCB_BROKER_SYSTEM   the system broker, run by root (systemd's
 *                        ipcbroker.socket, or `ipcbrokerd --system`), at
 *                        IPCB_SYSTEM_SOCKET; every user may connect.
 *   IPCB_BROKER_USER     a user's own broker (the user manager's
 *                        ipcbroker.socket, or `ipcbrokerd --user`), at
 *                        "$XDG_RUNTIME_DIR/ipcbroker/ipcbroker.sock".
 *   IPCB_BROKER_DEFAULT  the rule ipcb_connect(NULL) follows, in order:
 *                        1. $IPCBROKER_SOCKET, if set and not empty;
 *                        2. the user broker, if the caller is not root,
 *                           $XDG_RUNTIME_DIR is set and a socket exists at
 *                           its path (a stale one too: it is not probed);
 *                        3. the system broker.
 *                        So a user's program reaches a root service through
 *                        the system broker unless the user runs a broker of
 *                        their own; root (euid 0) uses the system broker
 *                        unless told otherwise (IPCB_BROKER_USER reaches
 *                        root's own broker).  The daemon listens where
 *                        this rule looks (ipcbrokerd --help).
 * Environment variables are read with secure_getenv (ignored in set-uid
 * programs). */
enum {
        IPCB_BROKER_DEFAULT = 0,
        IPCB_BROKER_SYSTEM  = 1,
        IPCB_BROKER_USER    = 2,
};

/* Write the socket path of broker (IPCB_BROKER_*) to buf (size bytes, NUL
 * terminated), as the connect calls below resolve it now.  Returns 0;
 * -EINVAL (buf NULL, unknown broker), -EDESTADDRREQ (IPCB_BROKER_USER:
 * $XDG_RUNTIME_DIR is not set), -ENAMETOOLONG (longer than a Unix socket
 * path allows, or than size). */
IPCB_EXPORT int ipcb_socket_path(int broker, char *buf, size_t size);

/* Connect to the broker at socket_path (borrowed; NULL: the IPCB_BROKER_DEFAULT
 * rule above) and exchange HELLO.  Before anything is sent, the
 * listening process's credentials (SO_PEERCRED) must name a trusted broker:
 * uid 0, the caller's euid, or the uid that owns the socket's directory when
 * that directory is writable by nobody else (no group or other write bit)
 * and every directory above it belongs to root, that uid or the caller and
 * is not writable by others unless sticky.  Reconnects check the same.  On
 * success *ret owns one socket fd (close-on-exec).  Errors: -ENOENT/
 * -ECONNREFUSED no broker there, -EACCES, -ENAMETOOLONG path too long for a
 * Unix socket, -EKEYREJECTED the socket is served by an untrusted uid (an
 * impostor may have taken the path; nothing was sent to it),
 * -EPROTONOSUPPORT the broker speaks another protocol version, -ETIMEDOUT
 * no answer within the default timeout (below), -EINVAL (ret NULL, or
 * socket_path ""); ipcb_connect_error() turns any of them into a message. */
IPCB_EXPORT int ipcb_connect(const char *socket_path, ipcb_client **ret);
/* ipcb_connect to the system broker, or to the caller's own broker, whatever
 * the default rule would pick; $IPCBROKER_SOCKET is not read.  Same contract
 * and errors, and -EDESTADDRREQ (ipcb_connect_user: $XDG_RUNTIME_DIR is not
 * set). */
IPCB_EXPORT int ipcb_connect_system(ipcb_client **ret);
IPCB_EXPORT int ipcb_connect_user(ipcb_client **ret);
/* One line for a person, after a connect call failed with err: the path it
 * tried, which broker that is and what to do ("no broker at
 * /run/ipcbroker/ipcbroker.sock (the system broker): start the system broker
 * as root (...)").  socket_path and broker are what the failed call was
 * given (ipcb_connect: its socket_path and IPCB_BROKER_DEFAULT;
 * ipcb_connect_system/_user: NULL and IPCB_BROKER_SYSTEM/_USER); the
 * default rule is evaluated again, so call it right away.  Hints name
 * ipcbrokerctl's options (--system, --user, --socket).  Writes at most size
 * bytes to buf, NUL-terminated (truncated if need be), and returns buf ("" if
 * buf is NULL or size 0).  Never fails, reads only the environment and the
 * file system. */
IPCB_EXPORT const char *ipcb_connect_error(int err, const char *socket_path, int broker,
                                           char *buf, size_t size);

/* Requests time out after this many milliseconds unless
 * $IPCBROKER_TIMEOUT_MS (read by ipcb_connect: a positive number of ms, or
 * a negative one for no timeout; other values are ignored) says otherwise.
 * ipcb_connect itself, connect(2) on a full listen backlog and the HELLO
 * included, is bounded by it too. */
#define IPCB_TIMEOUT_DEFAULT_MS 25000

/* Bound every later request on c to timeout_ms milliseconds (> 0), none
 * (< 0: wait as long as it takes), or the default (0: $IPCBROKER_TIMEOUT_MS
 * as read at connect, else IPCB_TIMEOUT_DEFAULT_MS).  The time counts from
 * the call's start and includes waiting for another thread's request on
 * the same client; a request the broker has not answered by then returns
 * -ETIMEDOUT.  Handle releases (ipcb_shm_close, ipcb_sem_close) wait for
 * the client's lock without limit, since they must not be skipped, and
 * then send within the timeout.  Semaphore and lock waits
 * (ipcb_sem_try_acquire, ipcb_shm_try_lock) have their own timeouts and
 * are not affected.  After -ETIMEDOUT the connection stays up and usable;
 * the request may or may not have taken effect (a create may have created
 * the object; an unlink may have removed it; check with ipcb_stat).  Its
 * reply is discarded when it arrives, while a later request on c waits for
 * its own; if it gave a handle, that handle is released (a transient object
 * created by it is destroyed) and its fd closed, so nothing leaks.  Like
 * ipcb_shm_close, the release does not wait: requests after that later one
 * see it (ipcb_sync() settles both).  Errors: -EINVAL (NULL). */
IPCB_EXPORT int ipcb_set_timeout(ipcb_client *c, int timeout_ms);

/* Close the connection.  The broker drops every handle of this connection
 * (transient objects whose last handle this was are destroyed).  Handles still
 * open keep their mappings and fds; they must still be released with
 * ipcb_shm_close(), which then only unmaps and closes locally.  NULL is a no-op. */
IPCB_EXPORT void ipcb_disconnect(ipcb_client *c);

/* Create segment `name` of `size` bytes (> 0, at most the broker's maximum;
 * 0 is allowed with IPCB_SHM_GROWABLE: an empty segment that holders grow
 * with ftruncate on the fd) and open it read-write, mapped
 * PROT_READ|PROT_WRITE, MAP_SHARED (an empty segment is not mapped).  The
 * memfd carries F_SEAL_SHRINK, and F_SEAL_GROW unless IPCB_SHM_GROWABLE.
 * opts is borrowed (NULL: defaults).  On success *ret owns the mapping and
 * one fd.  Errors: -EEXIST (nothing changes), -EINVAL (bad name, size 0
 * without IPCB_SHM_GROWABLE or 2^63 and above, bad mode or flags),
 * -ENAMETOOLONG, -EFBIG
 * (size above the broker's maximum), -ENOMEM, -ENOSPC, -EMFILE (out of
 * fds), -EACCES (the name is under a prefix the broker reserves for another
 * uid or group: docs/security.md). */
IPCB_EXPORT int ipcb_shm_create(ipcb_client *c, const char *name, size_t size,
                                const ipcb_shm_options *opts, ipcb_shm **ret);

/* Open existing segment `name` with access IPCB_READ_ONLY or IPCB_READ_WRITE.
 * A read-only handle holds an O_RDONLY fd mapped PROT_READ: writing, mapping
 * writable, mprotect, ftruncate, fallocate and adding seals all fail.  On
 * success *ret owns the mapping and one fd.  Errors: -ENOENT, -EINVAL (bad
 * name or access), -ENAMETOOLONG, -EACCES, -EMFILE, -EROFS (read-write
 * asked of a frozen segment). */
IPCB_EXPORT int ipcb_shm_open(ipcb_client *c, const char *name, int access, ipcb_shm **ret);

/* ---- who owns what you opened ----
 * Any uid may create any free name (unless the broker reserves its prefix
 * for someone: docs/security.md, "Names"), so a name a service expects to
 * find may have been created first by someone else ("squatting").  Every
 * open and create reports the object's owner, group and mode as they were
 * at that moment (ipcb_shm_info, ipcb_sem_info), and the _ex opens can ask
 * the broker to refuse an object not owned by an expected uid, checked
 * with the open itself (no window between a check and the open). */

/* ipcb_open_options.flags: fail with -EPERM unless the object's owner is
 * opts->owner.  Checked by the broker before the permission check, so a
 * squatter's object is refused with -EPERM whatever its mode. */
#define IPCB_OPEN_OWNED 0x20u
/* ipcb_open_options.owner: the uid of the connection (as the broker saw it
 * connect), the default. */
#define IPCB_OWNER_SELF ((uid_t)-1)

/* Options for ipcb_shm_open_ex() and ipcb_sem_open_ex().  Initialise with
 * IPCB_OPEN_OPTIONS_INIT (the library reads only struct_size bytes). */
typedef struct ipcb_open_options {
        size_t struct_size;
        unsigned flags; /* IPCB_OPEN_OWNED; for ipcb_sem_open_ex also IPCB_SEM_UNDO */
        uid_t owner;    /* with IPCB_OPEN_OWNED: the uid that must own it */
} ipcb_open_options;
#define IPCB_OPEN_OPTIONS_INIT { sizeof(ipcb_open_options), 0, IPCB_OWNER_SELF }

/* What an open or create found: the object's owner, group and mode at the
 * moment of the open (a later chown or chmod is not seen here; ipcb_stat
 * shows the current values). */
typedef struct ipcb_handle_info {
        uid_t uid;
        gid_t gid;
        unsigned mode;
} ipcb_handle_info;

/* ipcb_shm_open with options (opts borrowed, NULL: as ipcb_shm_open).
 * Errors: as ipcb_shm_open, and -EPERM (IPCB_OPEN_OWNED: another uid owns
 * the segment; nothing is opened). */
IPCB_EXPORT int ipcb_shm_open_ex(ipcb_client *c, const char *name, int access,
                                 const ipcb_open_options *opts, ipcb_shm **ret);
/* Open segment `name` for a descriptor alone: no handle, no mapping,
 * nothing to close at the broker (one request, where ipcb_shm_open and
 * ipcb_shm_close cost a request and a CLOSE message).  Access and opts as
 * ipcb_shm_open_ex: a read-only descriptor is O_RDONLY and can never be
 * made writable.  On success *ret_fd is a new O_CLOEXEC descriptor the
 * caller owns (close it with close(2)), and *ret_size (if not NULL) the
 * segment's size at the open; map at most that many bytes.  Without a
 * handle the open does not count among the segment's holders
 * (ipcb_holders), does not keep a transient segment alive, and cannot
 * take the segment's lock; the descriptor still keeps the memory.
 * Errors: as ipcb_shm_open_ex, and -EOPNOTSUPP from a broker older than
 * this call (nothing is asked), -EPROTO (the broker's reply and the
 * descriptor disagree; nothing is kept). */
IPCB_EXPORT int ipcb_shm_open_fd(ipcb_client *c, const char *name, int access,
                                 const ipcb_open_options *opts, int *ret_fd, size_t *ret_size);
/* Owner, group and mode of the segment when s was opened or created (or
 * registered).  Errors: -EINVAL (NULL). */
IPCB_EXPORT int ipcb_shm_info(const ipcb_shm *s, ipcb_handle_info *ret);

/* The mapping (valid until ipcb_shm_close; NULL when the segment was empty
 * at open time), its size in bytes (the size at open time), and the memfd
 * (borrowed: do not close it; dup it with F_DUPFD_CLOEXEC to keep it past
 * ipcb_shm_close).  For NULL: NULL, 0 and
 * -EBADF.  All holders of one access share one open file description, so
 * use pread/pwrite or the mapping, not the file offset. */
IPCB_EXPORT void *ipcb_shm_data(const ipcb_shm *s);
IPCB_EXPORT size_t ipcb_shm_size(const ipcb_shm *s);
IPCB_EXPORT int ipcb_shm_fd(const ipcb_shm *s);
/* IPCB_READ_ONLY or IPCB_READ_WRITE (-EINVAL for NULL); and the seals the
 * broker reported at open (F_SEAL_* bits; 0 for NULL). */
IPCB_EXPORT int ipcb_shm_access(const ipcb_shm *s);
IPCB_EXPORT unsigned ipcb_shm_seals(const ipcb_shm *s);

/* Unmap, close the fd and release the handle at the broker; frees s.  The
 * local resources are always released, even when the broker cannot be told
 * (then -ENOTCONN is returned, and the broker drops the handle when the
 * connection ends); after ipcb_disconnect() it returns 0.  NULL: returns 0.
 * It does not wait for the broker's answer: later requests on the same
 * client see the handle released, another connection may see it a moment
 * later (ipcb_sync() waits until the broker has processed it). */
IPCB_EXPORT int ipcb_shm_close(ipcb_shm *s);

/* Wait until the broker has processed every request this client sent
 * (releases from ipcb_shm_close included).  Errors: -ENOTCONN. */
IPCB_EXPORT int ipcb_sync(ipcb_client *c);

/* Remove segment `name` from the namespace now.  Open handles and mappings
 * stay valid; a later create of the same name makes a new segment.  Errors:
 * -ENOENT, -EINVAL, -ENAMETOOLONG, -EPERM. */
IPCB_EXPORT int ipcb_unlink(ipcb_client *c, const char *name);

/* Describe object `name` of `kind` (IPCB_KIND_*) into *ret, which the
 * caller initialised with IPCB_OBJECT_INFO_INIT.  Errors: -ENOENT, -EINVAL
 * (also: ret->struct_size too small), -ENAMETOOLONG. */
IPCB_EXPORT int ipcb_stat(ipcb_client *c, int kind, const char *name, ipcb_object_info *ret);

/* Call cb once for each object of `kind` (0: every kind) in creation order,
 * fetching pages from the broker as needed.  info is valid during the call
 * only.  cb returns 0 to go on, anything else to stop: that value is then
 * returned.  Objects created or removed meanwhile may or may not be seen;
 * none is seen twice. */
IPCB_EXPORT int ipcb_list(ipcb_client *c, int kind,
                          int (*cb)(const ipcb_object_info *info, void *userdata),
                          void *userdata);

/* One connection holding handles on an object: the pid and uid the broker
 * saw connect (SO_PEERCRED: the process that connected, which may have
 * passed the socket on), and how many handles it holds on the object. */
typedef struct ipcb_holder {
        pid_t pid;
        uid_t uid;
        unsigned handles;
} ipcb_holder;

/* The connections holding handles on object `name` of `kind`, like `ipcs
 * -p`: of an object the caller may read (else -EACCES).  Fills up to max
 * entries of ret (borrowed; NULL when max is 0), in no particular order,
 * and returns how many holders there are (>= 0; may exceed max, and the
 * broker names at most 256); *ret_id (may be NULL) gets the object's id,
 * to tell it from an object of the same name listed earlier.  A handle of
 * the caller's own connection counts.  Errors: -ENOENT, -EACCES, -EINVAL,
 * -ENAMETOOLONG, -EOPNOTSUPP (a broker older than this request). */
IPCB_EXPORT int ipcb_holders(ipcb_client *c, int kind, const char *name, ipcb_holder *ret,
                             size_t max, uint64_t *ret_id);

/* ---- segment locks ----
 * A lock on a segment, for the processes that share it (QSharedMemory::lock's
 * job).  Its state lives on a page of its own that the broker makes on the
 * handle's first lock or read call (one request, once per handle); the
 * segment's bytes stay all the user's.  The lock belongs to the handle, not
 * to a thread: two handles exclude each other, even in one process; any
 * thread may unlock through the handle that holds it.  Uncontended lock and
 * unlock are one atomic read-modify-write each; only waiting enters the
 * kernel (futex).
 * Taking the lock is a write: only read-write handles lock.  Read-only
 * handles read consistent bytes with the seqlock below, on a read-only
 * mapping of the page, and cannot take, release or block the lock.
 * When a handle that holds the lock goes away (ipcb_shm_close unlocks first;
 * otherwise its process died or its connection ended), the broker marks the
 * owner dead and the next locker is told IPCB_OWNER_DIED: it holds the lock,
 * and should check the data the dead holder may have left half-written. */
#define IPCB_OWNER_DIED 1

/* Wait as long as it takes.  Returns 0 or IPCB_OWNER_DIED (both: you hold
 * the lock).  Errors: -EBADF (a read-only handle), -EDEADLK (this handle
 * holds it already), -ENOTCONN, -ENOMEM, -EMFILE, -ETIMEDOUT (first call
 * only: fetching the lock page; or, after a broker restart, the round trip
 * that first reconnects and reclaims the handle's token failed: the lock
 * was not taken), -EINVAL (NULL).  That round trip (the lock page's epoch
 * changed: docs/systemd.md) is bounded by the client's request timeout
 * (ipcb_set_timeout), not by a try-lock's.  A caught signal does not end
 * the wait. */
IPCB_EXPORT int ipcb_shm_lock(ipcb_shm *s);
/* timeout_ms 0: do not wait (-EAGAIN when taken); < 0: forever; else up to
 * that many milliseconds (-ETIMEDOUT).  Otherwise as ipcb_shm_lock. */
IPCB_EXPORT int ipcb_shm_try_lock(ipcb_shm *s, int timeout_ms);
/* Release the lock.  -EPERM when this handle does not hold it, -EBADF for a
 * read-only handle. */
IPCB_EXPORT int ipcb_shm_unlock(ipcb_shm *s);
/* Wait for the lock from an event loop, as for a semaphore
 * (ipcb_sem_get_fd).  ipcb_shm_lock_get_fd registers s as a poller of the
 * segment's lock with the broker (a round trip or two, the first time:
 * it also fetches the lock page) and returns a descriptor (an epoll set),
 * owned by s (closed by ipcb_shm_close), that becomes readable (POLLIN)
 * when an unlock, or the death of the holder, may have freed the lock;
 * then call ipcb_shm_poll_lock, which resets the descriptor and tries to
 * take the lock without waiting: 0 or IPCB_OWNER_DIED (you hold it), or
 * -EAGAIN (taken: keep polling).  Call it once before the first wait: the
 * descriptor reports only unlocks after the registration.  No wake-up is
 * lost: an unlock after the
 * reset makes the descriptor readable again (docs/semaphores.md, "Polling
 * a lock").  Unlock stays userspace atomics while nobody polls the lock;
 * while someone does, each unlock also writes one eventfd (the first such
 * unlock through a handle, and the first after a broker restart, fetch it
 * from the broker: one round trip; if that fails, as when the broker
 * cannot be reached, the pollers are woken by the next unlock only).  After the
 * library reconnected to a restarted broker, call ipcb_shm_lock_get_fd
 * again on a new handle.  Errors: -EINVAL (NULL), -EBADF (a read-only
 * handle, or s lost its broker handle), -EDQUOT (64 pollers per
 * connection, semaphores included), -ENOTCONN, -ETIMEDOUT, -EMFILE,
 * -ENOMEM, and those of ipcb_shm_try_lock. */
IPCB_EXPORT int ipcb_shm_lock_get_fd(ipcb_shm *s);
IPCB_EXPORT int ipcb_shm_poll_lock(ipcb_shm *s);

/* Consistent reads without the lock (a seqlock), for read-only and
 * read-write handles alike.  Writers need do nothing more than lock and
 * unlock: the sequence is odd while the lock is held.  Read like this:
 *
 *     uint32_t seq;
 *     do {
 *             if ((r = ipcb_shm_read_begin(s, -1, &seq)) < 0)
 *                     return r;
 *             memcpy(copy, ipcb_shm_data(s), n);
 *     } while (ipcb_shm_read_retry(s, seq));
 *
 * and use only the copy (what was read may be torn until read_retry says
 * it is not).  ipcb_shm_read_begin waits while the lock is held, polling (a
 * reader cannot be woken: it may not write the page) with a back-off of up
 * to 1 ms.  timeout_ms as ipcb_shm_try_lock.  Returns 0 with *ret_seq.
 * Errors: -EOWNERDEAD (the last holder died holding the lock and nobody has
 * locked since: the bytes may be half-written; the next locker repairs and
 * unlocks), -EAGAIN, -ETIMEDOUT, -EDEADLK (this handle holds the lock: just
 * read), -ENOTCONN, -ENOMEM, -EMFILE (first call only: fetching the page),
 * -EINVAL (NULL). */
IPCB_EXPORT int ipcb_shm_read_begin(ipcb_shm *s, int timeout_ms, uint32_t *ret_seq);
/* True when the bytes read since ipcb_shm_read_begin returned seq may be
 * inconsistent (a writer locked meanwhile): read again.  True for NULL or a
 * handle whose read_begin never succeeded.  Makes no syscall. */
IPCB_EXPORT bool ipcb_shm_read_retry(const ipcb_shm *s, uint32_t seq);

/* ---- semaphores ----
 * Named counting semaphores (QSystemSemaphore's job), in their own
 * namespace.  The count lives on a sealed page the broker makes and every
 * user maps: acquire and release are userspace atomics, and the kernel is
 * entered (futex) only to sleep or to wake a sleeper.  Counts range over
 * 0..max, max at most IPCB_SEM_VALUE_MAX.
 *
 * Undo handles (IPCB_SEM_UNDO): tokens acquired through one and not yet
 * released come back when its process dies, however it dies, or when the
 * handle is closed; exactly, never more or fewer (docs/semaphores.md).  A
 * release through an undo handle gives back its own tokens first; any
 * excess is released plainly.  At most IPCB_SEM_UNDO_MAX undo handles per
 * semaphore at once (-EUSERS beyond).
 *
 * Threads: a plain handle may be used by many threads at once.  An undo
 * handle serves one call at a time (open one undo handle per thread): a
 * call made while another thread is inside a call on the same undo handle
 * (typically waiting in acquire) returns -EBUSY and changes nothing; of two
 * calls entering at the same instant, exactly one gets in.  The opening
 * thread's calls are cheapest: the first call from another thread costs one
 * membarrier(2) and every call after it an atomic exchange (docs/semaphores.md).
 * fork(): a child
 * may use its parent's plain handles' pages; calls on an undo handle
 * inherited across fork return -ECHILD.  Once the client is disconnected,
 * a plain handle keeps working on its page, but calls on an undo handle
 * return -ENOTCONN: the broker has given back its tokens.  If the broker
 * restarted, the next call on an undo handle reconnects and reclaims its
 * own slot, which the new broker keeps reserved, tokens held, for its grace
 * period (--restore-grace, 30 s by default); after that, or if the
 * connection was lost without a restart, the tokens were given back and
 * the handle takes a new slot (ipcb_sem_held() starts at 0 again).  If the
 * broker cannot be reached: -ENOTCONN; if it does not answer within the
 * client's timeout, or this process is out of fds: -ETIMEDOUT or -EMFILE,
 * and the next call tries again. */
#define IPCB_SEM_VALUE_MAX 65535
#define IPCB_SEM_UNDO_MAX 504
#define IPCB_SEM_PERSISTENT 0x1u /* options.flags: live until unlinked */
#define IPCB_SEM_UNDO       0x8u /* options.flags, ipcb_sem_open flags */

typedef struct ipcb_sem_options {
        size_t struct_size;
        unsigned mode;  /* r/w bits for user, group, other; default 0600.  Using a
                         * semaphore needs both read and write permission. */
        unsigned flags; /* IPCB_SEM_PERSISTENT | IPCB_SEM_UNDO (the creator's handle) */
        unsigned max;   /* 0: IPCB_SEM_VALUE_MAX */
} ipcb_sem_options;
#define IPCB_SEM_OPTIONS_INIT { sizeof(ipcb_sem_options), 0600, 0, 0 }

/* Create semaphore `name` with `initial` tokens and open it.  opts borrowed
 * (NULL: defaults).  On success *ret owns a mapping of the page.  Errors:
 * -EEXIST (nothing changes: no silent reset), -EINVAL (bad name, mode,
 * flags, max above IPCB_SEM_VALUE_MAX, initial above max), -ENAMETOOLONG,
 * -ENOMEM, -EMFILE, -EACCES (a reserved prefix, as ipcb_shm_create). */
IPCB_EXPORT int ipcb_sem_create(ipcb_client *c, const char *name, unsigned initial,
                                const ipcb_sem_options *opts, ipcb_sem **ret);
/* Open existing semaphore `name`; flags 0 or IPCB_SEM_UNDO.  Errors:
 * -ENOENT (no silent create), -EACCES, -EUSERS (no undo slot left),
 * -EINVAL, -ENAMETOOLONG, -EMFILE. */
IPCB_EXPORT int ipcb_sem_open(ipcb_client *c, const char *name, int flags, ipcb_sem **ret);
/* ipcb_sem_open with options: opts->flags IPCB_SEM_UNDO and/or
 * IPCB_OPEN_OWNED (NULL: a plain open).  Errors: as ipcb_sem_open, and
 * -EPERM (IPCB_OPEN_OWNED: another uid owns the semaphore). */
IPCB_EXPORT int ipcb_sem_open_ex(ipcb_client *c, const char *name, const ipcb_open_options *opts,
                                 ipcb_sem **ret);
/* Owner, group and mode of the semaphore when s was opened or created.
 * Errors: -EINVAL (NULL). */
IPCB_EXPORT int ipcb_sem_info(const ipcb_sem *s, ipcb_handle_info *ret);
/* Take one token, waiting as long as it takes; a caught signal does not end
 * the wait.  Errors: -EINVAL (NULL), -EBUSY/-ECHILD (undo handle, above). */
IPCB_EXPORT int ipcb_sem_acquire(ipcb_sem *s);
/* timeout_ms 0: do not wait (-EAGAIN); < 0: forever; else at most that many
 * milliseconds (-ETIMEDOUT).  Otherwise as ipcb_sem_acquire. */
IPCB_EXPORT int ipcb_sem_try_acquire(ipcb_sem *s, int timeout_ms);
/* Take n tokens at once, all or nothing (never some of them while waiting
 * for the rest): timeout_ms as ipcb_sem_try_acquire (0: try once).  An undo
 * handle then holds n more.  Errors: -EINVAL (NULL, n 0 or above the
 * maximum), -EAGAIN, -ETIMEDOUT, -EOVERFLOW (the undo handle would hold
 * more than IPCB_SEM_VALUE_MAX), -EBUSY/-ECHILD (undo handle, above). */
IPCB_EXPORT int ipcb_sem_acquire_n(ipcb_sem *s, unsigned n, int timeout_ms);
/* Give back n tokens, all or nothing: past the maximum → -EOVERFLOW and the
 * count is unchanged.  Wakes sleepers. */
IPCB_EXPORT int ipcb_sem_release(ipcb_sem *s, unsigned n);
/* Tokens available now (>= 0), or -EINVAL. */
IPCB_EXPORT int ipcb_sem_value(ipcb_sem *s);
/* Set the count to value in one atomic step (System V's SETVAL): no other
 * process ever sees a value in between.  Through any handle; it changes no
 * undo handle's held tokens (they still come back when their holders go,
 * on top of value).  Wakes sleepers and pollers when the count grew.
 * Returns the count it replaced (>= 0), or -EINVAL (NULL, value above the
 * maximum). */
IPCB_EXPORT int ipcb_sem_set_value(ipcb_sem *s, unsigned value);
/* Tokens this undo handle holds (0 for a plain handle), or -EINVAL. */
IPCB_EXPORT int ipcb_sem_held(ipcb_sem *s);
/* Release n tokens through undo handle s and owe back what it does not
 * hold (System V's semop(+n, SEM_UNDO)): within the tokens s holds it is
 * ipcb_sem_release (they are given back; userspace atomics); beyond them
 * the broker adds all n to the count and records n owed by s (one round
 * trip).  When s goes (closed, its process dies, its connection ends) the
 * broker adds what it holds less what it owes to the count, clamped to
 * [0, maximum] once (for one process's handles, summed first), as the
 * kernel applies semadj.
 * All or nothing: -EOVERFLOW (past the maximum) changes nothing.  What s
 * owes survives a broker restart with its undo slot (docs/semaphores.md).
 * Errors: -EINVAL (NULL, a plain handle), -EOVERFLOW, -EBUSY/-ECHILD
 * (above), -EOPNOTSUPP (a broker older than this call; nothing changes),
 * -ENOTCONN (no broker), -ENOTCONN or -ETIMEDOUT during the call (the
 * broker went away or did not answer in time: the release may then have
 * happened, and owed; do not repeat it blindly). */
IPCB_EXPORT int ipcb_sem_release_undo(ipcb_sem *s, unsigned n);
/* Tokens undo handle s owes (ipcb_sem_release_undo), as the broker last
 * said; 0 for NULL or a plain handle. */
IPCB_EXPORT uint64_t ipcb_sem_owed(const ipcb_sem *s);
/* Change the counts of n distinct semaphores at once, all or none: each
 * sems[i] (a plain handle of c) by deltas[i] (not 0; negative takes,
 * positive gives), never waiting.  The broker does it within one request
 * (takes first, then gives; one round trip), so a process killed once the
 * call has begun cannot leave part of it done (System V's semop of several
 * operations, through the preload shim).  Other processes' single
 * operations may see the counts between two of its changes.  Errors:
 * -EINVAL (NULL, n 0 or above 64, an undo handle, a handle of another
 * client, a semaphore twice, a delta of 0 or beyond the maximum), -EAGAIN
 * (a take found too few tokens: nothing changed), -ERANGE (a give would
 * pass the maximum: nothing changed), -EBADF (a handle without a broker
 * handle), -EOPNOTSUPP (a broker older than this call), -ENOTCONN,
 * -ETIMEDOUT (the broker did not answer in time: the change may have been
 * made).  A request whose reply was lost is sent again after a reconnect,
 * as every request: a restarted broker had either not read it or had
 * answered it; only a broker that died between the change and its answer
 * leaves it made and then makes it again. */
IPCB_EXPORT int ipcb_sem_apply(ipcb_client *c, ipcb_sem *const *sems, const int *deltas, unsigned n);
/* Unmap and release the handle (an undo handle's tokens come back); frees s.
 * Does not wait for the broker, like ipcb_shm_close.  NULL: 0. */
IPCB_EXPORT int ipcb_sem_close(ipcb_sem *s);
/* Wait for a semaphore from an event loop.  ipcb_sem_get_fd registers s
 * as a poller with the broker (one round trip, the first time) and returns
 * a descriptor (an epoll set), owned by s (closed by ipcb_sem_close), that
 * becomes readable (POLLIN) when a release may have made a token
 * available; then call ipcb_sem_poll_acquire, which resets the descriptor
 * and takes one token without waiting: 0, or -EAGAIN (none: keep polling;
 * call it again after 0 to take more).  No wake-up is lost: a release after the reset makes the
 * descriptor readable again (docs/semaphores.md, "Polling a semaphore").
 * Releases stay userspace atomics while nobody polls the semaphore; while
 * someone does, each release also writes one eventfd (fetched from the
 * broker by the first such release through a handle, and again after a
 * broker restart: one round trip).  After the library
 * reconnected to a restarted broker, call ipcb_sem_get_fd again on a new
 * handle (the registration died with the old broker).  Errors: -EINVAL,
 * -EBADF (s lost its broker handle), -EDQUOT (64 pollers per connection),
 * -ENOTCONN, -ETIMEDOUT, -EMFILE, and those of ipcb_sem_try_acquire. */
IPCB_EXPORT int ipcb_sem_get_fd(ipcb_sem *s);
IPCB_EXPORT int ipcb_sem_poll_acquire(ipcb_sem *s);
/* Remove semaphore `name` from its namespace; open handles keep working.
 * Errors: -ENOENT, -EPERM, -EINVAL, -ENAMETOOLONG. */
IPCB_EXPORT int ipcb_sem_unlink(ipcb_client *c, const char *name);

/* ---- access control, sealed publishing, quotas (docs/security.md) ----
 * Every object has an owner uid, a group gid and mode bits (r/w for user,
 * group, other), set at create (default 0600) from the kernel's view of the
 * creating process.  Opening read-write needs w (a semaphore needs r and w),
 * read-only needs r; unlink, chmod, chown and freeze need ownership.  uid 0
 * may do everything unless the broker runs with --no-root-override.
 * Refusals: -EACCES (open), -EPERM (manage). */

/* ipcb_access.what: which fields ipcb_set_access() changes. */
#define IPCB_ACCESS_MODE 0x1u
#define IPCB_ACCESS_UID  0x2u
#define IPCB_ACCESS_GID  0x4u

typedef struct ipcb_access {
        size_t struct_size; /* sizeof(ipcb_access) */
        unsigned what;      /* IPCB_ACCESS_* (at least one) */
        unsigned mode;      /* permission bits, at most 0777 */
        uid_t uid;
        gid_t gid;
} ipcb_access;
#define IPCB_ACCESS_INIT { sizeof(ipcb_access), 0, 0, 0, 0 }

/* Change owner, group and/or mode of object `name` of `kind` in one step
 * (all or nothing).  acc is borrowed.  The owner (or a privileged uid 0) may
 * change the mode, and the group to one of its own groups (primary or
 * supplementary); giving the object to another uid, or to a group the owner
 * is not in, needs a privileged uid 0, as with chown(2).  Quota charges stay
 * with the uid that created the object.  Errors: -ENOENT, -EPERM, -EINVAL
 * (bad kind, name, mode, what, or uid/gid -1), -ENAMETOOLONG. */
IPCB_EXPORT int ipcb_set_access(ipcb_client *c, int kind, const char *name,
                                const ipcb_access *acc);
/* Shorthands for ipcb_set_access: the mode; the owner and group, where
 * (uid_t)-1 / (gid_t)-1 leaves that one unchanged. */
IPCB_EXPORT int ipcb_chmod(ipcb_client *c, int kind, const char *name, unsigned mode);
IPCB_EXPORT int ipcb_chown(ipcb_client *c, int kind, const char *name, uid_t uid, gid_t gid);

/* Freeze segment `name` (owner or privileged uid 0 only): the broker adds
 * F_SEAL_SHRINK|F_SEAL_GROW and F_SEAL_WRITE, or F_SEAL_FUTURE_WRITE when
 * some process still has a writable mapping (those mappings keep writing,
 * and mremap can grow one over the whole segment; nobody gets new write
 * access).  Only F_SEAL_WRITE makes the bytes immutable: freezing again
 * once no writable mapping is left upgrades to it.  From then on read-write
 * opens fail with -EROFS and stat/list show which write seal is set.  A
 * segment that a read-write holder already sealed that far itself (even
 * with F_SEAL_SEAL) counts as frozen: 0.  *ret_seals (may be NULL) gets
 * the seals now set.  Errors: -ENOENT, -EPERM (not the owner, or
 * F_SEAL_SEAL set without the seals a freeze adds), -EROFS (published
 * through a read-only descriptor), -EINVAL. */
IPCB_EXPORT int ipcb_shm_freeze(ipcb_client *c, const char *name, unsigned *ret_seals);

/* Publish memfd (borrowed; the caller keeps it) as segment `name`.  It must
 * be a memfd carrying at least F_SEAL_SHRINK; its size is taken from fstat
 * (> 0, at most the broker's maximum), it is growable unless sealed
 * F_SEAL_GROW.  Once it knows memfd is a memfd (F_GET_SEALS works and its
 * /proc/self/fd link reads "/memfd:..."; anything else is -EBADFD, untouched
 * and unsent), the library drops group/other write and exec bits of the
 * memfd's inode (fchmod) so that no other uid can reopen it writable
 * through /proc.  opts: mode and IPCB_SHM_PERSISTENT (growable is ignored).
 * On success *ret is a handle on the new segment: read-write (mapped
 * PROT_READ|PROT_WRITE) unless the memfd is write-sealed or memfd is an
 * O_RDONLY descriptor, then read-only.  Errors: -EBADFD (not a memfd with
 * F_SEAL_SHRINK: a pipe, socket, regular file, unsealed memfd; or a memfd
 * whose inode the broker already serves: one it handed out for a segment,
 * semaphore or lock, or one registered before and still published),
 * -EEXIST (the name is taken),
 * -EFBIG, -EINVAL (size 0, bad name/mode/flags), -EACCES (the inode's mode
 * keeps a group/other write or an exec bit, which the library can drop only
 * as the inode's owner; the broker cannot read it; or a reserved prefix as
 * ipcb_shm_create), -EDQUOT, -EMFILE. */
IPCB_EXPORT int ipcb_shm_register(ipcb_client *c, const char *name, int memfd,
                                  const ipcb_shm_options *opts, ipcb_shm **ret);

/* An anonymous memfd of `size` bytes made by the broker, for processes whose
 * sandbox forbids memfd_create.  seals: F_SEAL_* bits among SEAL, SHRINK,
 * GROW, WRITE, FUTURE_WRITE (F_SEAL_SHRINK is always added).  On success
 * *ret_fd is a new O_RDWR, close-on-exec fd the caller owns (nothing is
 * named, nothing counts against quotas: the broker keeps no reference), and
 * *ret_seals (may be NULL) the seals it carries.  Errors: -EINVAL (size 0
 * or 2^63 and above, other seals), -EFBIG, -ENOMEM, -EMFILE. */
IPCB_EXPORT int ipcb_memfd_sealed(ipcb_client *c, size_t size, unsigned seals, int *ret_fd,
                                  unsigned *ret_seals);

/* Usage and limits of one uid.  A limit of 0 means none; exempt: the uid is
 * counted but not limited (uid 0 with root override).  struct_size as for
 * ipcb_object_info: initialise with IPCB_QUOTA_INFO_INIT. */
typedef struct ipcb_quota_info {
        size_t struct_size;
        uid_t uid;
        int exempt;
        uint64_t objects, bytes;   /* objects this uid created, their declared sizes */
        unsigned handles, connections;
        uint64_t max_objects, max_bytes, max_handles, max_connections;
} ipcb_quota_info;
#define IPCB_QUOTA_INFO_INIT { sizeof(ipcb_quota_info), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/* Usage of uid (your own; any uid needs privileged uid 0) into *ret, which
 * the caller initialised with IPCB_QUOTA_INFO_INIT.  Errors: -EPERM,
 * -EINVAL (NULL, or ret->struct_size too small). */
IPCB_EXPORT int ipcb_quota(ipcb_client *c, uid_t uid, ipcb_quota_info *ret);
/* Call cb for every uid that uses something (privileged uid 0), or for your
 * own uid only (everyone else), in uid order.  As ipcb_list for cb. */
IPCB_EXPORT int ipcb_quota_list(ipcb_client *c,
                                int (*cb)(const ipcb_quota_info *info, void *userdata),
                                void *userdata);

/* ---- event loops and asynchronous requests (ipcb_loop(3)) ----
 * A client can be driven from an event loop (sd-event, libuv, GLib, epoll)
 * instead of blocking: watch ipcb_get_fd() for ipcb_get_events(), wake at
 * ipcb_get_timeout(), and call ipcb_process() when either happens.
 * Requests made with the *_async calls below are sent at once (pipelined:
 * several may be in flight) and their callbacks run later, inside
 * ipcb_process(), in the order the requests were made.
 *
 * Mixing blocking calls and the loop on one client is allowed, from any
 * thread: a blocking call that reads the answer to an asynchronous request
 * on its way to its own keeps it for ipcb_process() and makes the fd
 * readable.  Callbacks run only inside ipcb_process(), on the thread that
 * calls it, one at a time, with no library lock held: they may make
 * blocking or asynchronous requests on the same client, close handles, and
 * cancel requests.  ipcb_process() called from a callback, or while another
 * thread is running callbacks, runs none itself.  Do not call
 * ipcb_disconnect() while another thread is inside ipcb_process().
 *
 * Every asynchronous request has the client's timeout (ipcb_set_timeout),
 * counted from the call: its callback gets -ETIMEDOUT when ipcb_process()
 * runs after the deadline, and a reply that comes later is disposed of (a
 * handle it made is released).  If the connection is lost, the callbacks of
 * the requests in flight get -ENOTCONN (they are not sent again); the next
 * request, blocking or not, reconnects as a blocking request does (that
 * step blocks, bounded by the timeout).  If an *_async call returns an
 * error, its callback never runs.  ret_cookie (may be NULL) names the
 * request for ipcb_cancel(). */

/* A descriptor to watch, owned by the client (do not close it; valid until
 * ipcb_disconnect).  It is an epoll descriptor that stays the same across
 * reconnects.  Made on the first call (two fds: the epoll fd and an
 * eventfd); then this returns it.  Errors: -EINVAL (NULL), -EMFILE,
 * -ENOMEM, -ENOTCONN (disconnected). */
IPCB_EXPORT int ipcb_get_fd(ipcb_client *c);
/* The poll events to wait for on ipcb_get_fd(): always POLLIN (a full
 * socket is watched inside the epoll set), or a negative errno. */
IPCB_EXPORT int ipcb_get_events(ipcb_client *c);
/* The next deadline (CLOCK_MONOTONIC, microseconds) at which
 * ipcb_process() must run even if the fd stays quiet: UINT64_MAX for none,
 * 0 when there is work to do now.  Returns 0, or -EINVAL. */
IPCB_EXPORT int ipcb_get_timeout(ipcb_client *c, uint64_t *ret_usec);
/* The same as a relative timeout for poll(2)-style loops: -1 for none,
 * else milliseconds from now (rounded up; 0: now). */
IPCB_EXPORT int ipcb_get_timeout_ms(ipcb_client *c);
/* Without blocking: send what is queued, read what has arrived, expire
 * requests past their deadline, and run the callbacks that are due.  It
 * stops reading at the reply that leaves nothing in flight (when no watch
 * is registered): what comes after it (a hang-up too) leaves the fd
 * readable for the next call, as a level-triggered loop expects.
 * Returns the number of callbacks run (>= 0), or -EINVAL.  A lost
 * connection is reported to the requests' callbacks, not here. */
IPCB_EXPORT int ipcb_process(ipcb_client *c);
/* Cancel request cookie: its callback will not run (0), or -ENOENT (its
 * callback already runs or ran, or no such request).  What the broker did
 * stays done (an object created stays created), but a handle or fd its
 * reply brings is released.  A listing (ipcb_list_async,
 * ipcb_quota_list_async) can be cancelled until its final call begins,
 * from its own item callback too. */
IPCB_EXPORT int ipcb_cancel(ipcb_client *c, uint64_t cookie);

/* Callbacks.  status is 0 or a negative errno (as the blocking call would
 * return).  ipcb_shm_cb / ipcb_sem_cb: on 0, s is a new handle the callback
 * owns (close it with ipcb_shm_close / ipcb_sem_close); else NULL.
 * ipcb_stat_cb: info valid during the call only.  ipcb_done_cb: status >= 0
 * on success; its value is documented per call. */
typedef void (*ipcb_shm_cb)(ipcb_client *c, int status, ipcb_shm *s, void *userdata);
typedef void (*ipcb_sem_cb)(ipcb_client *c, int status, ipcb_sem *s, void *userdata);
typedef void (*ipcb_stat_cb)(ipcb_client *c, int status, const ipcb_object_info *info,
                             void *userdata);
typedef void (*ipcb_done_cb)(ipcb_client *c, int status, void *userdata);

/* Asynchronous twins of the blocking calls of the same name: arguments are
 * checked as there (-EINVAL and friends returned at once, nothing sent);
 * name and options are copied; the result goes to cb. */
IPCB_EXPORT int ipcb_shm_create_async(ipcb_client *c, const char *name, size_t size,
                                      const ipcb_shm_options *opts, ipcb_shm_cb cb,
                                      void *userdata, uint64_t *ret_cookie);
IPCB_EXPORT int ipcb_shm_open_async(ipcb_client *c, const char *name, int access,
                                    const ipcb_open_options *opts, ipcb_shm_cb cb,
                                    void *userdata, uint64_t *ret_cookie);
IPCB_EXPORT int ipcb_sem_create_async(ipcb_client *c, const char *name, unsigned initial,
                                      const ipcb_sem_options *opts, ipcb_sem_cb cb,
                                      void *userdata, uint64_t *ret_cookie);
IPCB_EXPORT int ipcb_sem_open_async(ipcb_client *c, const char *name,
                                    const ipcb_open_options *opts, ipcb_sem_cb cb,
                                    void *userdata, uint64_t *ret_cookie);
IPCB_EXPORT int ipcb_stat_async(ipcb_client *c, int kind, const char *name, ipcb_stat_cb cb,
                                void *userdata, uint64_t *ret_cookie);
/* Unlink `name` of `kind` (IPCB_KIND_SHM or IPCB_KIND_SEM); status 0. */
IPCB_EXPORT int ipcb_unlink_async(ipcb_client *c, int kind, const char *name, ipcb_done_cb cb,
                                  void *userdata, uint64_t *ret_cookie);
/* status: the seals now set (>= 0). */
IPCB_EXPORT int ipcb_shm_freeze_async(ipcb_client *c, const char *name, ipcb_done_cb cb,
                                      void *userdata, uint64_t *ret_cookie);
IPCB_EXPORT int ipcb_set_access_async(ipcb_client *c, int kind, const char *name,
                                      const ipcb_access *acc, ipcb_done_cb cb, void *userdata,
                                      uint64_t *ret_cookie);
/* status: a new sealed memfd (>= 0) the callback owns, as ipcb_memfd_sealed. */
IPCB_EXPORT int ipcb_memfd_sealed_async(ipcb_client *c, size_t size, unsigned seals,
                                        ipcb_done_cb cb, void *userdata, uint64_t *ret_cookie);
/* A round trip: status 0 once everything sent before has been handled. */
IPCB_EXPORT int ipcb_sync_async(ipcb_client *c, ipcb_done_cb cb, void *userdata,
                                uint64_t *ret_cookie);
/* As ipcb_shm_register: status 0 and a handle on the published segment.
 * memfd is borrowed: the library sends (and keeps for the handle) its own
 * close-on-exec copy, so the caller may close memfd as soon as this
 * returns; that copy is closed on every path that makes no handle (an
 * error, ipcb_cancel, the timeout, a lost connection).  The library's
 * checks of memfd, and the fchmod, happen here: -EBADFD for a pipe, socket
 * or regular file is returned at once; what only the broker can judge (an
 * unsealed memfd: -EBADFD, size 0: -EINVAL, -EEXIST...) goes to cb. */
IPCB_EXPORT int ipcb_shm_register_async(ipcb_client *c, const char *name, int memfd,
                                        const ipcb_shm_options *opts, ipcb_shm_cb cb,
                                        void *userdata, uint64_t *ret_cookie);
/* As ipcb_quota.  info is valid during the call only; NULL when status < 0. */
typedef void (*ipcb_quota_cb)(ipcb_client *c, int status, const ipcb_quota_info *info,
                              void *userdata);
IPCB_EXPORT int ipcb_quota_async(ipcb_client *c, uid_t uid, ipcb_quota_cb cb, void *userdata,
                                 uint64_t *ret_cookie);
/* Listings: what ipcb_list (kind: 0 or IPCB_KIND_*) and ipcb_quota_list
 * report, with the same guarantees (objects in creation order, none seen
 * twice, every object that lives throughout seen), one page per request.
 * Each page is handed to cb inside ipcb_process, and only then is the next
 * page asked for, so that ipcb_process never waits for a page.  cb (not
 * NULL) runs once per item with status 0 and info (valid during the call
 * only); it returns 0 to go on, anything else to stop.  Then it runs
 * exactly once more, with info NULL and status 0 (everything listed), a
 * negative errno (the listing failed; the items before stand), or the
 * non-zero value an item call returned; what that final call returns is
 * ignored.  Each page has the client's timeout (-ETIMEDOUT).  A listing
 * does not outlive its connection: if that is lost before the last page,
 * the final call gets -ENOTCONN, even when the library has reconnected
 * meanwhile.  ipcb_cancel(cookie) stops it: no call after the one running
 * (if any), no further page requested.  Errors at once: -EINVAL (NULL c
 * or cb, bad kind), -ENOMEM, -ENOTCONN. */
typedef int (*ipcb_list_cb)(ipcb_client *c, int status, const ipcb_object_info *info,
                            void *userdata);
typedef int (*ipcb_quota_list_cb)(ipcb_client *c, int status, const ipcb_quota_info *info,
                                  void *userdata);
IPCB_EXPORT int ipcb_list_async(ipcb_client *c, int kind, ipcb_list_cb cb, void *userdata,
                                uint64_t *ret_cookie);
IPCB_EXPORT int ipcb_quota_list_async(ipcb_client *c, ipcb_quota_list_cb cb, void *userdata,
                                      uint64_t *ret_cookie);
/* Create segment (semaphore) `name` as ipcb_shm_create (ipcb_sem_create)
 * does, or, if it exists, open it (a segment read-write; a semaphore with
 * opts->flags & IPCB_SEM_UNDO).  Of processes racing on one name exactly
 * one creates it; *ret_created (may be NULL) says whether this call did.
 * An opened object keeps its own size, mode, count and maximum (check
 * ipcb_shm_size).  Errors: as ipcb_shm_create/open (ipcb_sem_create/open),
 * but never -EEXIST; -EAGAIN if the name was unlinked again and again
 * between the create and the open (100 tries). */
IPCB_EXPORT int ipcb_shm_create_or_open(ipcb_client *c, const char *name, size_t size,
                                        const ipcb_shm_options *opts, ipcb_shm **ret,
                                        bool *ret_created);
IPCB_EXPORT int ipcb_sem_create_or_open(ipcb_client *c, const char *name, unsigned initial,
                                        const ipcb_sem_options *opts, ipcb_sem **ret,
                                        bool *ret_created);
/* Remove segment `name` (the same as ipcb_unlink, named like ipcb_sem_unlink). */
IPCB_EXPORT int ipcb_shm_unlink(ipcb_client *c, const char *name);

/* ---- watches (ipcb_watch(3)) ----
 * A watch subscribes the client to what happens to the objects of one kind
 * under one name, or under every name that starts with a prefix.  Its
 * callback runs inside ipcb_process() (see above: the client must be
 * driven by a loop, or by the *_wait calls below), once per event, in the
 * order the broker saw them.  The namespace is public (any user may stat
 * any object), so anyone may watch any name; an event tells no more than
 * ipcb_stat does.
 * A client that falls behind does not make the broker wait or grow: events
 * that do not fit are dropped, and each watch's callback gets one
 * IPCB_WATCH_OVERFLOW instead (name "", kind 0): re-read the state you care
 * about (ipcb_stat / ipcb_list).  The same happens after the library
 * reconnected to a restarted broker (watches are re-added). */
#define IPCB_WATCH_CREATED   0x01u /* created or registered under the name */
#define IPCB_WATCH_UNLINKED  0x02u /* the name was removed; handles may remain */
#define IPCB_WATCH_DESTROYED 0x04u /* the object is gone (its name too) */
#define IPCB_WATCH_ACCESS    0x08u /* owner, group or mode changed */
#define IPCB_WATCH_FROZEN    0x10u /* a segment was frozen (ipcb_shm_freeze) */
/* A handle went away (its process died, its connection ended, it was
 * closed) holding the segment's lock, which the next locker gets with
 * IPCB_OWNER_DIED; or holding a semaphore's undo tokens, which the broker
 * gave back; also when, after a broker restart, the holder did not come
 * back within the grace period. */
#define IPCB_WATCH_OWNER_DIED 0x20u
#define IPCB_WATCH_ALL       0x3fu
#define IPCB_WATCH_OVERFLOW  0x80000000u /* events were lost; never asked for */
/* ipcb_watch_add flags: name is a prefix ("" watches every name). */
#define IPCB_WATCH_PREFIX 0x1u

typedef struct ipcb_watch_event {
        size_t struct_size; /* set by the library: fields up to here are valid */
        uint64_t watch;     /* the watch this is delivered to */
        unsigned event;     /* one IPCB_WATCH_* bit */
        int kind;           /* IPCB_KIND_*; 0 for an overflow */
        const char *name;   /* NUL-terminated; "" for an overflow */
        uint64_t id;        /* the object's id (as ipcb_object_info.id) */
        uid_t uid;          /* owner, group, mode and seals after the event */
        gid_t gid;
        unsigned mode;
        unsigned seals;
} ipcb_watch_event;

/* ev and its name are valid during the call only. */
typedef void (*ipcb_watch_cb)(ipcb_client *c, const ipcb_watch_event *ev, void *userdata);

/* Watch `name` (or, with IPCB_WATCH_PREFIX, every name that starts with
 * it) of kind (IPCB_KIND_SHM or IPCB_KIND_SEM) for `events` (IPCB_WATCH_*
 * bits, not 0).  Blocks for one round trip; every event after it returns
 * is delivered.  *ret_watch (may be NULL) names it for ipcb_watch_remove.
 * Errors: -EINVAL (bad kind, flags, events, name; NULL cb), -ENAMETOOLONG,
 * -EDQUOT (64 watches per connection, 256 per uid), -ENOSPC (the broker's
 * limit on all watches), -ENOTCONN, -ETIMEDOUT, -ENOMEM. */
IPCB_EXPORT int ipcb_watch_add(ipcb_client *c, int kind, const char *name, unsigned flags,
                               unsigned events, ipcb_watch_cb cb, void *userdata,
                               uint64_t *ret_watch);
/* ipcb_watch_add without blocking: *ret_watch is valid at once; added (may
 * be NULL) runs in ipcb_process with 0 once the broker has the watch (no
 * event is missed after that), or with an error (the watch is gone, as
 * after ipcb_watch_remove); it gets userdata too. */
IPCB_EXPORT int ipcb_watch_add_async(ipcb_client *c, int kind, const char *name, unsigned flags,
                                     unsigned events, ipcb_watch_cb cb, void *userdata,
                                     ipcb_done_cb added, uint64_t *ret_watch);
/* Remove a watch: once this returns, its callback does not run again
 * (unless it is running right now in another thread).  -ENOENT: no such
 * watch. */
IPCB_EXPORT int ipcb_watch_remove(ipcb_client *c, uint64_t watch);

/* ---- waiting for an object to appear ----
 * Open segment (or semaphore) `name`, waiting until it exists if it does
 * not yet, so that a consumer may start before its producer: a watch for
 * its creation is added first, then the open is tried, and tried again on
 * every creation event, without polling.  timeout_ms < 0: no limit; else
 * -ETIMEDOUT after that many milliseconds (0: one try).  Errors: as
 * ipcb_shm_open / ipcb_sem_open except -ENOENT, and as ipcb_watch_add.
 * The blocking forms drive the client's loop themselves (ipcb_process):
 * callbacks of other asynchronous requests on c that come due meanwhile
 * run on the calling thread; do not call them from a callback or while
 * another thread runs ipcb_process on c.  The async forms call cb from
 * ipcb_process with the handle (which the callback owns); ret_cookie
 * (may be NULL) cancels them (ipcb_cancel). */
IPCB_EXPORT int ipcb_shm_open_wait(ipcb_client *c, const char *name, int access, int timeout_ms,
                                   ipcb_shm **ret);
IPCB_EXPORT int ipcb_sem_open_wait(ipcb_client *c, const char *name, int flags, int timeout_ms,
                                   ipcb_sem **ret);
IPCB_EXPORT int ipcb_shm_open_wait_async(ipcb_client *c, const char *name, int access,
                                         int timeout_ms, ipcb_shm_cb cb, void *userdata,
                                         uint64_t *ret_cookie);
IPCB_EXPORT int ipcb_sem_open_wait_async(ipcb_client *c, const char *name, int flags,
                                         int timeout_ms, ipcb_sem_cb cb, void *userdata,
                                         uint64_t *ret_cookie);

/* A static, thread-safe description of err (a negative errno; a positive
 * value is taken as its negation; 0: "success").  Never NULL; the string
 * belongs to the library.  For the errnos this library returns it says what
 * they mean here, where the C library's text would mislead: -ETIMEDOUT (no
 * answer from the broker, or a semaphore or lock wait ran out, not a
 * network timeout), -EDQUOT, -ENOSPC, -EUSERS, -EKEYREJECTED, -EBADFD,
 * -EROFS, -EAGAIN, -EOVERFLOW, -EDEADLK, -EOWNERDEAD, -EBUSY, -ECHILD,
 * -ESTALE, -ESRCH, -EEXIST, -ENOENT, -EACCES, -EPERM, -EINVAL,
 * -ENAMETOOLONG, -EMFILE, -EBADF, -ENOTCONN, -ECONNREFUSED, -EPROTO,
 * -EPROTONOSUPPORT, -EOPNOTSUPP, -EFBIG.  Any other errno gets the C
 * library's description, an unknown one "unknown error". */
IPCB_EXPORT const char *ipcb_strerror(int err);
/* The version of the library loaded at run time: the IPCB_VERSION_STRING
 * it was built with, which may differ from the header the caller was
 * compiled with.  Static storage; never NULL. */
IPCB_EXPORT const char *ipcb_version(void);

#ifdef __cplusplus
}
#endif

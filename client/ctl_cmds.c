/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ctl_cmds.c: ipcbrokerctl's object commands: stat, create, rm, cat, write
 * and the semaphore commands.  Each checks its arguments (a usage error
 * before anything is sent), makes one connection, and reports a failure
 * naming the object (ctl_fail_obj). */
#include "ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ctl_cmd_stat(const ctl_args *a) {
        const char *name = a->argv[0];
        int kind = ctl_kind_arg(a), r;
        ipcb_object_info o = IPCB_OBJECT_INFO_INIT;
        ipcb_client *c;

        if ((r = ctl_name_arg(a->cmd, name)))
                return r;
        if (!(c = ctl_connect()))
                return CTL_EXIT_FAIL;
        r = ipcb_stat(c, kind, name, &o);
        ipcb_disconnect(c);
        if (r < 0)
                return ctl_fail_obj(kind, name, r);
        if (ctl_flag(a, "json")) {
                ctl_json_object(stdout, &o, NULL);
                putchar('\n');
        } else
                ctl_print_stat(stdout, &o);
        return ctl_finish_stdout();
}

/* The broker's largest segment, found after it refused `size` with -EFBIG:
 * the protocol has no request that states it, but an anonymous memfd
 * (MEMFD, ipcb_memfd_sealed) is held to the same limit, and asking for one
 * leaves nothing behind.  A binary search: at most 63 requests, on this
 * error path only.  0 when it cannot be found. */
static uint64_t probe_max_size(ipcb_client *c, uint64_t size) {
        uint64_t lo = 0, hi = size; /* lo fits (or is 0), hi does not */
        int fd, r;

        while (hi - lo > 1) {
                uint64_t mid = lo + (hi - lo) / 2;
                r = ipcb_memfd_sealed(c, (size_t)mid, 0, &fd, NULL);
                if (r == 0) {
                        close(fd);
                        lo = mid;
                } else if (r == -EFBIG)
                        hi = mid;
                else
                        return 0;
        }
        return lo;
}

/* Always persistent: a transient segment would vanish when we exit. */
int ctl_cmd_create(const ctl_args *a) {
        const char *name = a->argv[0], *size_arg = a->argv[1];
        const char *mode_arg = ctl_opt_value(a, "mode");
        ipcb_shm_options opts = IPCB_SHM_OPTIONS_INIT;
        ipcb_client *c;
        ipcb_shm *s;
        uint64_t size = 0, max;
        int r;

        if ((r = ctl_name_arg(a->cmd, name)))
                return r;
        r = ctl_parse_size(size_arg, &size);
        if (r == -ERANGE)
                return ctl_usage_error(a->cmd, "size '%s' is too large: at most %" PRIu64
                                       " bytes (8E - 1), and the broker's maximum is lower",
                                       size_arg, CTL_SIZE_MAX);
        if (r < 0 || size == 0)
                return ctl_usage_error(a->cmd, "invalid size '%s': bytes > 0, or with a K, M, G "
                                       "or T suffix (powers of 1024)", size_arg);
        if (mode_arg && ctl_parse_mode(mode_arg, &opts.mode) < 0)
                return ctl_usage_error(a->cmd, "invalid mode '%s': octal, at most 0777",
                                       mode_arg);
        opts.flags = IPCB_SHM_PERSISTENT | (ctl_flag(a, "growable") ? IPCB_SHM_GROWABLE : 0);
        if (!(c = ctl_connect()))
                return CTL_EXIT_FAIL;
        r = ipcb_shm_create(c, name, (size_t)size, &opts, &s);
        if (r >= 0)
                r = ipcb_shm_close(s);
        if (r == -EFBIG && (max = probe_max_size(c, size)) > 0) {
                char h[32];
                ipcb_disconnect(c);
                ctl_human_size(max, h, sizeof(h));
                fprintf(stderr, PROG ": size '%s': above the broker's maximum segment size, %s "
                                "(%" PRIu64 " bytes)\n", size_arg, h, max);
                return CTL_EXIT_FAIL;
        }
        ipcb_disconnect(c);
        return r < 0 ? ctl_fail_obj(IPCB_KIND_SHM, name, r) : CTL_EXIT_OK;
}

static int remove_object(const ctl_args *a, int kind) {
        const char *name = a->argv[0];
        ipcb_client *c;
        int r;

        if ((r = ctl_name_arg(a->cmd, name)))
                return r;
        if (!(c = ctl_connect()))
                return CTL_EXIT_FAIL;
        r = kind == IPCB_KIND_SEM ? ipcb_sem_unlink(c, name) : ipcb_unlink(c, name);
        ipcb_disconnect(c);
        return r < 0 ? ctl_fail_obj(kind, name, r) : CTL_EXIT_OK;
}

int ctl_cmd_rm(const ctl_args *a) {
        return remove_object(a, ctl_kind_arg(a));
}

int ctl_cmd_sem_rm(const ctl_args *a) {
        return remove_object(a, IPCB_KIND_SEM);
}

/* Read through STAT: needs no permission on the semaphore and no handle. */
static int print_sem_value(const ctl_args *a) {
        const char *name = a->argv[0];
        ipcb_object_info o = IPCB_OBJECT_INFO_INIT;
        ipcb_client *c;
        int r;

        if ((r = ctl_name_arg(a->cmd, name)))
                return r;
        if (!(c = ctl_connect()))
                return CTL_EXIT_FAIL;
        r = ipcb_stat(c, IPCB_KIND_SEM, name, &o);
        ipcb_disconnect(c);
        if (r < 0)
                return ctl_fail_obj(IPCB_KIND_SEM, name, r);
        printf("%u\n", o.sem_value);
        return ctl_finish_stdout();
}

int ctl_cmd_sem_value(const ctl_args *a) {
        return print_sem_value(a);
}

int ctl_cmd_cat(const ctl_args *a) {
        const char *name = a->argv[0];
        ipcb_client *c;
        ipcb_shm *s;
        const char *p;
        size_t left;
        int r;

        if (ctl_kind_arg(a) == IPCB_KIND_SEM)
                return print_sem_value(a);
        if ((r = ctl_name_arg(a->cmd, name)))
                return r;
        if (!(c = ctl_connect()))
                return CTL_EXIT_FAIL;
        r = ipcb_shm_open(c, name, IPCB_READ_ONLY, &s);
        if (r < 0) {
                ipcb_disconnect(c);
                return ctl_fail_obj(IPCB_KIND_SHM, name, r);
        }
        p = ipcb_shm_data(s);
        left = ipcb_shm_size(s);
        while (left > 0) {
                ssize_t n = write(STDOUT_FILENO, p, left);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        break;
                }
                p += n;
                left -= (size_t)n;
        }
        ipcb_shm_close(s);
        ipcb_disconnect(c);
        return r < 0 ? ctl_fail("stdout", r) : CTL_EXIT_OK;
}

/* Fill the segment from stdin.  Returns bytes copied, or a negative errno;
 * *ret_more tells whether input remained once the segment was full. */
static ssize_t copy_stdin(char *dst, size_t size, bool *ret_more) {
        size_t off = 0;
        char probe;
        ssize_t n;

        while (off < size) {
                n = read(STDIN_FILENO, dst + off, size - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0) {
                        *ret_more = false;
                        return (ssize_t)off;
                }
                off += (size_t)n;
        }
        do
                n = read(STDIN_FILENO, &probe, 1);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        *ret_more = n > 0;
        return (ssize_t)off;
}

int ctl_cmd_write(const ctl_args *a) {
        const char *name = a->argv[0];
        char esc[CTL_ESC_MAX];
        ipcb_client *c;
        ipcb_shm *s;
        bool more = false;
        size_t size;
        ssize_t n;
        int r;

        if ((r = ctl_name_arg(a->cmd, name)))
                return r;
        if (!(c = ctl_connect()))
                return CTL_EXIT_FAIL;
        r = ipcb_shm_open(c, name, IPCB_READ_WRITE, &s);
        if (r < 0) {
                ipcb_disconnect(c);
                return ctl_fail_obj(IPCB_KIND_SHM, name, r);
        }
        size = ipcb_shm_size(s);
        n = copy_stdin(ipcb_shm_data(s), size, &more);
        ipcb_shm_close(s);
        ipcb_disconnect(c);
        if (n < 0)
                return ctl_fail("stdin", (int)n);
        if (more) {
                fprintf(stderr, PROG ": segment '%s': input larger than the segment (%zu bytes)\n",
                        ctl_escape(name, esc, sizeof(esc)), size);
                return CTL_EXIT_FAIL;
        }
        return CTL_EXIT_OK;
}

/* ---- semaphores ---- */

/* Always persistent, like create: a transient semaphore would vanish when
 * we exit. */
int ctl_cmd_sem_create(const ctl_args *a) {
        const char *name = a->argv[0], *mode_arg = ctl_opt_value(a, "mode");
        const char *max_arg = ctl_opt_value(a, "max");
        ipcb_sem_options opts = IPCB_SEM_OPTIONS_INIT;
        unsigned initial = 0;
        ipcb_client *c;
        ipcb_sem *s;
        int r;

        if ((r = ctl_name_arg(a->cmd, name)))
                return r;
        opts.max = IPCB_SEM_VALUE_MAX;
        if (max_arg && (ctl_parse_uint(max_arg, IPCB_SEM_VALUE_MAX, &opts.max) < 0 || opts.max == 0))
                return ctl_usage_error(a->cmd, "invalid maximum '%s': 1..%d", max_arg,
                                       IPCB_SEM_VALUE_MAX);
        if (a->argc == 2 && ctl_parse_uint(a->argv[1], opts.max, &initial) < 0)
                return ctl_usage_error(a->cmd, "invalid initial value '%s': 0..%u", a->argv[1],
                                       opts.max);
        if (mode_arg && ctl_parse_mode(mode_arg, &opts.mode) < 0)
                return ctl_usage_error(a->cmd, "invalid mode '%s': octal, at most 0777",
                                       mode_arg);
        opts.flags = IPCB_SEM_PERSISTENT;
        if (!(c = ctl_connect()))
                return CTL_EXIT_FAIL;
        r = ipcb_sem_create(c, name, initial, &opts, &s);
        if (r >= 0)
                r = ipcb_sem_close(s);
        ipcb_disconnect(c);
        return r < 0 ? ctl_fail_obj(IPCB_KIND_SEM, name, r) : CTL_EXIT_OK;
}

int ctl_cmd_sem_post(const ctl_args *a) {
        const char *name = a->argv[0];
        char esc[CTL_ESC_MAX];
        ipcb_object_info o = IPCB_OBJECT_INFO_INIT;
        unsigned n = 1;
        ipcb_client *c;
        ipcb_sem *s;
        int r, value = -1;

        if ((r = ctl_name_arg(a->cmd, name)))
                return r;
        if (a->argc == 2 && (ctl_parse_uint(a->argv[1], IPCB_SEM_VALUE_MAX, &n) < 0 || n == 0))
                return ctl_usage_error(a->cmd, "invalid count '%s': 1..%d", a->argv[1],
                                       IPCB_SEM_VALUE_MAX);
        if (!(c = ctl_connect()))
                return CTL_EXIT_FAIL;
        r = ipcb_sem_open(c, name, 0, &s);
        if (r >= 0) {
                r = ipcb_sem_release(s, n);
                if (r == -EOVERFLOW)
                        value = ipcb_sem_value(s);
                ipcb_sem_close(s);
        }
        if (r != -EOVERFLOW) {
                ipcb_disconnect(c);
                return r < 0 ? ctl_fail_obj(IPCB_KIND_SEM, name, r) : CTL_EXIT_OK;
        }
        /* For the message only: the count may have moved meanwhile. */
        fprintf(stderr, PROG ": semaphore '%s': %u more would exceed the maximum",
                ctl_escape(name, esc, sizeof(esc)), n);
        if (value >= 0 && ipcb_stat(c, IPCB_KIND_SEM, name, &o) == 0)
                fprintf(stderr, " (value %d, max %u)", value, o.sem_max);
        fputc('\n', stderr);
        ipcb_disconnect(c);
        return CTL_EXIT_FAIL;
}

/* Through a plain handle, so the token stays taken when we exit (an undo
 * handle would give it back at once). */
int ctl_cmd_sem_wait(const ctl_args *a) {
        const char *name = a->argv[0], *timeout_arg = ctl_opt_value(a, "timeout");
        char esc[CTL_ESC_MAX];
        unsigned timeout = 0;
        ipcb_client *c;
        ipcb_sem *s;
        int r;

        if ((r = ctl_name_arg(a->cmd, name)))
                return r;
        if (timeout_arg && ctl_parse_uint(timeout_arg, INT_MAX, &timeout) < 0)
                return ctl_usage_error(a->cmd, "invalid timeout '%s': milliseconds, 0..%d",
                                       timeout_arg, INT_MAX);
        if (!(c = ctl_connect()))
                return CTL_EXIT_FAIL;
        r = ipcb_sem_open(c, name, 0, &s);
        if (r >= 0) {
                r = ipcb_sem_try_acquire(s, timeout_arg ? (int)timeout : -1);
                ipcb_sem_close(s);
        }
        ipcb_disconnect(c);
        if (r == -EAGAIN || r == -ETIMEDOUT) {
                fprintf(stderr, PROG ": semaphore '%s': no token available",
                        ctl_escape(name, esc, sizeof(esc)));
                if (timeout > 0)
                        fprintf(stderr, " within %u ms", timeout);
                fputc('\n', stderr);
                return CTL_EXIT_FAIL;
        }
        return r < 0 ? ctl_fail_obj(IPCB_KIND_SEM, name, r) : CTL_EXIT_OK;
}

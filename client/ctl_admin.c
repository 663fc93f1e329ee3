/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ctl_admin.c: ipcbrokerctl's access-control, publishing and quota
 * commands: chmod, chown, freeze, register, quota (docs/security.md). */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef F_SEAL_SHRINK
#define F_SEAL_SHRINK 0x0002
#endif
#ifndef F_SEAL_GROW
#define F_SEAL_GROW 0x0004
#endif
#ifndef F_SEAL_WRITE
#define F_SEAL_WRITE 0x0008
#endif

int ctl_cmd_chmod(const ctl_args *a) {
        const char *name = a->argv[0];
        int kind = ctl_kind_arg(a), r;
        unsigned mode;
        ipcb_client *c;

        if ((r = ctl_name_arg(a->cmd, name)))
                return r;
        if (ctl_parse_mode(a->argv[1], &mode) < 0)
                return ctl_usage_error(a->cmd, "invalid mode '%s': octal, at most 0777",
                                       a->argv[1]);
        if (!(c = ctl_connect()))
                return CTL_EXIT_FAIL;
        r = ipcb_chmod(c, kind, name, mode);
        ipcb_disconnect(c);
        return r < 0 ? ctl_fail_obj(kind, name, r) : CTL_EXIT_OK;
}

int ctl_cmd_chown(const ctl_args *a) {
        const char *name = a->argv[0];
        int kind = ctl_kind_arg(a), r;
        char esc[CTL_ESC_MAX];
        ipcb_client *c;
        uid_t uid;
        gid_t gid;

        if ((r = ctl_name_arg(a->cmd, name)))
                return r;
        if (ctl_parse_owner(a->argv[1], &uid, &gid) < 0)
                return ctl_usage_error(a->cmd, "invalid owner '%s': USER, USER:GROUP or :GROUP "
                                       "(names or numbers)",
                                       ctl_escape(a->argv[1], esc, sizeof(esc)));
        if (!(c = ctl_connect()))
                return CTL_EXIT_FAIL;
        r = ipcb_chown(c, kind, name, uid, gid);
        ipcb_disconnect(c);
        return r < 0 ? ctl_fail_obj(kind, name, r) : CTL_EXIT_OK;
}

int ctl_cmd_freeze(const ctl_args *a) {
        const char *name = a->argv[0];
        unsigned seals = 0;
        ipcb_client *c;
        char buf[64];
        int r;

        if ((r = ctl_name_arg(a->cmd, name)))
                return r;
        if (!(c = ctl_connect()))
                return CTL_EXIT_FAIL;
        r = ipcb_shm_freeze(c, name, &seals);
        ipcb_disconnect(c);
        if (r < 0)
                return ctl_fail_obj(IPCB_KIND_SHM, name, r);
        ctl_seals_str(seals, buf, sizeof(buf));
        printf("seals: %s\n", buf);
        return ctl_finish_stdout();
}

/* FILE copied into a new memfd (-ENODATA: it was empty). */
static int copy_to_memfd(int in, int fd) {
        char buf[65536];
        off_t total = 0;
        ssize_t n;

        while ((n = read(in, buf, sizeof(buf))) != 0) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 || write(fd, buf, (size_t)n) != n)
                        return -(errno ? errno : EIO);
                total += n;
        }
        return total == 0 ? -ENODATA : 0;
}

/* Copy FILE into a new memfd, seal it (shrink, grow, write: the published
 * bytes are immutable) and register it, persistent. */
int ctl_cmd_register(const ctl_args *a) {
        const char *file = a->argv[0], *name = a->argv[1], *mode_arg = ctl_opt_value(a, "mode");
        ipcb_shm_options opts = IPCB_SHM_OPTIONS_INIT;
        char esc[CTL_ESC_MAX];
        ipcb_client *c;
        ipcb_shm *s;
        int in, fd = -1, r;

        if ((r = ctl_name_arg(a->cmd, name)))
                return r;
        if (mode_arg && ctl_parse_mode(mode_arg, &opts.mode) < 0)
                return ctl_usage_error(a->cmd, "invalid mode '%s': octal, at most 0777",
                                       mode_arg);
        opts.flags = IPCB_SHM_PERSISTENT;
        in = strcmp(file, "-") == 0 ? STDIN_FILENO : open(file, O_RDONLY | O_CLOEXEC);
        if (in < 0) {
                fprintf(stderr, PROG ": '%s': %s\n", ctl_escape(file, esc, sizeof(esc)),
                        strerror(errno));
                return CTL_EXIT_FAIL;
        }
        fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        r = fd < 0 ? -errno : copy_to_memfd(in, fd);
        if (in > STDIN_FILENO)
                close(in);
        if (r == -ENODATA) {
                if (fd >= 0)
                        close(fd);
                fprintf(stderr, PROG ": '%s': empty: a segment needs at least one byte\n",
                        ctl_escape(file, esc, sizeof(esc)));
                return CTL_EXIT_FAIL;
        }
        if (r == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
                r = -errno;
        if (r < 0) {
                if (fd >= 0)
                        close(fd);
                return ctl_fail(ctl_escape(file, esc, sizeof(esc)), r);
        }
        if (!(c = ctl_connect())) {
                close(fd);
                return CTL_EXIT_FAIL;
        }
        r = ipcb_shm_register(c, name, fd, &opts, &s);
        if (r >= 0)
                r = ipcb_shm_close(s);
        ipcb_disconnect(c);
        close(fd);
        return r < 0 ? ctl_fail_obj(IPCB_KIND_SHM, name, r) : CTL_EXIT_OK;
}

typedef struct quota_vec {
        ipcb_quota_info *v;
        size_t n, cap;
} quota_vec;

static int quota_collect(const ipcb_quota_info *q, void *ud) {
        quota_vec *qv = ud;

        if (qv->n == qv->cap) {
                size_t cap = qv->cap ? qv->cap * 2 : 16;
                ipcb_quota_info *v = realloc(qv->v, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                qv->v = v;
                qv->cap = cap;
        }
        qv->v[qv->n++] = *q;
        return 0;
}

/* Usage and limits: of one uid, or of every uid the caller may see.  All
 * rows are fetched before anything is printed, so that a failure leaves no
 * half document on stdout; JSON is one array, like list --json. */
int ctl_cmd_quota(const ctl_args *a) {
        const char *uid_arg = ctl_opt_value(a, "uid");
        bool json = ctl_flag(a, "json");
        quota_vec qv = { 0 };
        ipcb_quota_info q = IPCB_QUOTA_INFO_INIT;
        ipcb_client *c;
        unsigned uid = 0;
        int r;

        if (uid_arg && ctl_parse_uint(uid_arg, UINT32_MAX - 1, &uid) < 0)
                return ctl_usage_error(a->cmd, "invalid uid '%s': a number", uid_arg);
        if (!(c = ctl_connect()))
                return CTL_EXIT_FAIL;
        if (uid_arg) {
                r = ipcb_quota(c, (uid_t)uid, &q);
                if (r == 0)
                        r = quota_collect(&q, &qv);
        } else
                r = ipcb_quota_list(c, quota_collect, &qv);
        ipcb_disconnect(c);
        if (r < 0) {
                free(qv.v);
                if (uid_arg) {
                        fprintf(stderr, PROG ": uid %u: %s\n", uid, ipcb_strerror(r));
                        return CTL_EXIT_FAIL;
                }
                return ctl_fail("quota", r);
        }
        if (json) {
                putchar('[');
                for (size_t i = 0; i < qv.n; i++) {
                        if (i)
                                putchar(',');
                        ctl_json_quota(stdout, &qv.v[i]);
                }
                printf("]\n");
        } else {
                ctl_print_quota_header(stdout);
                for (size_t i = 0; i < qv.n; i++)
                        ctl_print_quota_row(stdout, &qv.v[i]);
        }
        free(qv.v);
        return ctl_finish_stdout();
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ctl_parse.c: ipcbrokerctl's argument checks: sizes (the daemon's syntax,
 * K/M/G/T), octal modes, counts, USER:GROUP, and object names (the rule of
 * proto/, checked before anything is sent so that the message can say
 * which characters are allowed). */
#include "ctl.h"

#include "proto.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

int ctl_parse_size(const char *s, uint64_t *ret) {
        unsigned long long v;
        char *end;
        int shift = 0;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (errno)
                return -EINVAL;
        switch (*end) {
        case '\0': break;
        case 'k': case 'K': shift = 10; end++; break;
        case 'm': case 'M': shift = 20; end++; break;
        case 'g': case 'G': shift = 30; end++; break;
        case 't': case 'T': shift = 40; end++; break;
        default: return -EINVAL;
        }
        if (*end)
                return -EINVAL;
        if (v > (CTL_SIZE_MAX >> shift))
                return -ERANGE;
        *ret = (uint64_t)v << shift;
        return 0;
}

int ctl_parse_mode(const char *s, unsigned *ret) {
        unsigned long v;
        char *end;

        if (*s < '0' || *s > '7')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 8);
        if (errno || *end || v > 0777)
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

int ctl_parse_uint(const char *s, unsigned long max, unsigned *ret) {
        unsigned long v;
        char *end;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || v > max)
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

int ctl_parse_owner(const char *s, uid_t *ret_uid, gid_t *ret_gid) {
        char buf[256], tmp[4096];
        char *colon;
        unsigned v;

        if (strlen(s) >= sizeof(buf))
                return -EINVAL;
        snprintf(buf, sizeof(buf), "%s", s);
        *ret_uid = (uid_t)-1;
        *ret_gid = (gid_t)-1;
        colon = strchr(buf, ':');
        if (colon)
                *colon++ = '\0';
        if (buf[0]) {
                struct passwd pw, *pwp = NULL;
                if (ctl_parse_uint(buf, UINT32_MAX - 1, &v) == 0)
                        *ret_uid = (uid_t)v;
                else if (getpwnam_r(buf, &pw, tmp, sizeof(tmp), &pwp) == 0 && pwp)
                        *ret_uid = pwp->pw_uid;
                else
                        return -EINVAL;
        }
        if (colon && *colon) {
                struct group gr, *grp = NULL;
                if (ctl_parse_uint(colon, UINT32_MAX - 1, &v) == 0)
                        *ret_gid = (gid_t)v;
                else if (getgrnam_r(colon, &gr, tmp, sizeof(tmp), &grp) == 0 && grp)
                        *ret_gid = grp->gr_gid;
                else
                        return -EINVAL;
        }
        return *ret_uid == (uid_t)-1 && *ret_gid == (gid_t)-1 ? -EINVAL : 0;
}

int ctl_check_name(const char *name) {
        return ipcb__name_check(name, strlen(name));
}

int ctl_name_arg(const ctl_command *cmd, const char *name) {
        char esc[CTL_ESC_MAX];
        int k = ctl_check_name(name);

        if (k == 0)
                return 0;
        ctl_escape(name, esc, sizeof(esc));
        if (k == -ENAMETOOLONG)
                return ctl_usage_error(cmd, "name '%.40s...' is too long (%zu bytes): %s", esc,
                                       strlen(name), CTL_NAME_RULE);
        return ctl_usage_error(cmd, "invalid name '%s': %s", esc, CTL_NAME_RULE);
}

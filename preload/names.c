/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* names.c: POSIX names to broker names and back (pure).  A POSIX name is
 * any bytes but '/' (after the leading '/'s); a broker name is 1..255 bytes
 * of [A-Za-z0-9._:@+-].  The rule (docs/preload.md): PREFIX + TAG + '.' +
 * the name with every byte outside [A-Za-z0-9._:@-] written as '+' and two
 * upper-case hex digits ('+' itself too), so that it reverses exactly. */
#include "shim.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

static bool plain(unsigned char b) {
        return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
               b == '.' || b == '_' || b == ':' || b == '@' || b == '-';
}

const char *shim_posix_strip(const char *name, int *ret_err) {
        size_t n;

        if (!name) {
                *ret_err = EINVAL;
                return NULL;
        }
        while (*name == '/')
                name++;
        n = strlen(name);
        if (n == 0 || strchr(name, '/')) {
                *ret_err = EINVAL;
                return NULL;
        }
        if (n > NAME_MAX) {
                *ret_err = ENAMETOOLONG;
                return NULL;
        }
        return name;
}

int shim_posix_name(const char *name, const char *kind_tag, char *buf) {
        static const char hex[] = "0123456789ABCDEF";
        size_t o;
        int n;

        n = snprintf(buf, IPCB_NAME_MAX + 1, "%s%s.", shim_cfg.prefix, kind_tag);
        if (n < 0 || n > IPCB_NAME_MAX)
                return -ENAMETOOLONG;
        o = (size_t)n;
        for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
                if (plain(*p)) {
                        if (o + 1 > IPCB_NAME_MAX)
                                return -ENAMETOOLONG;
                        buf[o++] = (char)*p;
                } else {
                        if (o + 3 > IPCB_NAME_MAX)
                                return -ENAMETOOLONG;
                        buf[o++] = '+';
                        buf[o++] = hex[*p >> 4];
                        buf[o++] = hex[*p & 15];
                }
        }
        buf[o] = '\0';
        return 0;
}

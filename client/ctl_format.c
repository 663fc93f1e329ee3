/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ctl_format.c: everything ipcbrokerctl prints about objects and quotas:
 * the ipcs-like table, "key: value" lines, JSON, human sizes, seal names,
 * user and group names (cached), and the escaping of names, so that a name
 * with control characters (a hostile or broken broker's) reaches the
 * terminal as harmless text. */
#include "ctl.h"

#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

/* A HOLDERS cell: up to 256 pids of up to 10 digits, commas, "+N". */
#define IPCB_HOLDERS_CELL (256 * 11 + 16)

#ifndef F_SEAL_SEAL
#define F_SEAL_SEAL 0x0001
#endif
#ifndef F_SEAL_SHRINK
#define F_SEAL_SHRINK 0x0002
#endif
#ifndef F_SEAL_GROW
#define F_SEAL_GROW 0x0004
#endif
#ifndef F_SEAL_WRITE
#define F_SEAL_WRITE 0x0008
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

const char *ctl_kind_name(int kind) {
        switch (kind) {
        case IPCB_KIND_SHM: return "shm";
        case IPCB_KIND_SEM: return "sem";
        default: return "?";
        }
}

const char *ctl_kind_noun(int kind) {
        return kind == IPCB_KIND_SEM ? "semaphore" : "segment";
}

const char *ctl_escape(const char *name, char *buf, size_t cap) {
        size_t n = 0;

        for (const unsigned char *p = (const unsigned char *)name; *p && n + 5 <= cap; p++) {
                if (*p < 0x20 || *p >= 0x7f || *p == '\\' || *p == '\'')
                        n += (size_t)snprintf(buf + n, cap - n, "\\x%02x", *p);
                else
                        buf[n++] = (char)*p;
        }
        buf[n] = '\0';
        return buf;
}

void ctl_human_size(uint64_t v, char *buf, size_t cap) {
        static const char units[] = "KMGTPE";
        uint64_t scale = 1024;
        int u = 0;

        if (v < 1024) {
                snprintf(buf, cap, "%" PRIu64, v);
                return;
        }
        while (u < 5 && v / scale >= 1024) {
                scale <<= 10;
                u++;
        }
        if (v % scale == 0)
                snprintf(buf, cap, "%" PRIu64 "%c", v / scale, units[u]);
        else if (v / scale < 10) {
                /* tenths, rounded up: 1025 bytes is "1.1K", never "1.0K" */
                uint64_t whole = v / scale, rest = v % scale;
                uint64_t tenths = (rest * 10 + scale - 1) / scale; /* rest < scale <= 2^60 */
                if (tenths == 10) {
                        whole++;
                        tenths = 0;
                }
                if (whole == 10)
                        snprintf(buf, cap, "10%c", units[u]);
                else
                        snprintf(buf, cap, "%" PRIu64 ".%" PRIu64 "%c", whole, tenths, units[u]);
        } else
                snprintf(buf, cap, "%" PRIu64 "%c", v / scale + 1, units[u]);
}

static const struct {
        unsigned bit;
        const char *name;
} seal_names[] = {
        { F_SEAL_SEAL, "seal" },   { F_SEAL_SHRINK, "shrink" },
        { F_SEAL_GROW, "grow" },   { F_SEAL_WRITE, "write" },
        { F_SEAL_FUTURE_WRITE, "future_write" }, { F_SEAL_EXEC, "exec" },
};
#define NSEALS (sizeof(seal_names) / sizeof(seal_names[0]))

void ctl_seals_str(unsigned seals, char *buf, size_t cap) {
        size_t n = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < NSEALS; i++)
                if ((seals & seal_names[i].bit) && n < cap)
                        n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "," : "",
                                              seal_names[i].name);
        if (n == 0)
                snprintf(buf, cap, "-");
}

/* ---- user and group names, looked up once each ---- */

typedef struct id_name {
        uint32_t id;
        char name[64];
} id_name;

typedef struct id_cache {
        id_name *v;
        size_t n, cap;
} id_cache;

static id_cache uid_cache, gid_cache;

/* The cached name of id; looks it up (numbers for what does not resolve,
 * or when memory is short: then it is not cached). */
static const char *id_lookup(id_cache *c, uint32_t id, bool group, char *tmp, size_t tmpcap) {
        char buf[4096];
        id_name e = { .id = id };

        for (size_t i = 0; i < c->n; i++)
                if (c->v[i].id == id)
                        return c->v[i].name;
        if (group) {
                struct group gr, *grp = NULL;
                if (getgrgid_r((gid_t)id, &gr, buf, sizeof(buf), &grp) == 0 && grp)
                        snprintf(e.name, sizeof(e.name), "%s", grp->gr_name);
        } else {
                struct passwd pw, *pwp = NULL;
                if (getpwuid_r((uid_t)id, &pw, buf, sizeof(buf), &pwp) == 0 && pwp)
                        snprintf(e.name, sizeof(e.name), "%s", pwp->pw_name);
        }
        if (!e.name[0])
                snprintf(e.name, sizeof(e.name), "%" PRIu32, id);
        if (c->n == c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 8;
                id_name *v = realloc(c->v, cap * sizeof(*v));
                if (!v) {
                        snprintf(tmp, tmpcap, "%s", e.name);
                        return tmp;
                }
                c->v = v;
                c->cap = cap;
        }
        c->v[c->n] = e;
        return c->v[c->n++].name;
}

void ctl_owner_str(uid_t uid, gid_t gid, char *buf, size_t cap) {
        char tu[64], tg[64];
        const char *u = id_lookup(&uid_cache, (uint32_t)uid, false, tu, sizeof(tu));
        const char *g = id_lookup(&gid_cache, (uint32_t)gid, true, tg, sizeof(tg));

        snprintf(buf, cap, "%s:%s", u, g);
}

/* ---- JSON ---- */

void ctl_json_string(FILE *f, const char *s) {
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p == '"' || *p == '\\')
                        fprintf(f, "\\%c", *p);
                else if (*p < 0x20 || *p >= 0x7f)
                        fprintf(f, "\\u%04x", *p);
                else
                        fputc(*p, f);
        }
        fputc('"', f);
}

void ctl_json_object(FILE *f, const ipcb_object_info *o, const ctl_holders *h) {
        bool first = true;

        fprintf(f, "{\"kind\":\"%s\",\"name\":", ctl_kind_name(o->kind));
        ctl_json_string(f, o->name);
        fprintf(f,
                ",\"id\":%" PRIu64 ",\"size\":%" PRIu64 ",\"uid\":%u,\"gid\":%u,\"mode\":%u,"
                "\"seals\":[",
                o->id, o->size, (unsigned)o->uid, (unsigned)o->gid, o->mode);
        for (size_t i = 0; i < NSEALS; i++)
                if (o->seals & seal_names[i].bit) {
                        fprintf(f, "%s\"%s\"", first ? "" : ",", seal_names[i].name);
                        first = false;
                }
        fprintf(f, "],\"handles\":%u,\"persistent\":%s,\"unlinked\":%s", o->handles,
                o->flags & IPCB_SHM_PERSISTENT ? "true" : "false",
                o->flags & IPCB_OBJ_UNLINKED ? "true" : "false");
        if (o->kind == IPCB_KIND_SEM)
                fprintf(f, ",\"value\":%u,\"max\":%u,\"undo_held\":%u", o->sem_value, o->sem_max,
                        o->sem_undo_held);
        if (h && h->total < 0)
                fprintf(f, ",\"holders\":null");
        else if (h) {
                fprintf(f, ",\"holders_total\":%d,\"holders\":[", h->total);
                for (unsigned i = 0; i < h->n; i++)
                        fprintf(f, "%s{\"pid\":%d,\"uid\":%u,\"handles\":%u}", i ? "," : "",
                                (int)h->v[i].pid, (unsigned)h->v[i].uid, h->v[i].handles);
                fputc(']', f);
        }
        fputc('}', f);
}

void ctl_json_quota(FILE *f, const ipcb_quota_info *q) {
        fprintf(f,
                "{\"uid\":%u,\"exempt\":%s,\"objects\":%" PRIu64 ",\"bytes\":%" PRIu64
                ",\"handles\":%u,\"connections\":%u,\"max_objects\":%" PRIu64
                ",\"max_bytes\":%" PRIu64 ",\"max_handles\":%" PRIu64
                ",\"max_connections\":%" PRIu64 "}",
                (unsigned)q->uid, q->exempt ? "true" : "false", q->objects, q->bytes, q->handles,
                q->connections, q->max_objects, q->max_bytes, q->max_handles, q->max_connections);
}

/* ---- the table ---- */

/* One row's computed cells.  A segment has no VALUE or UNDO; a semaphore
 * no SIZE or SEALS worth showing (its page is the broker's business). */
typedef struct row_cells {
        char name[CTL_ESC_MAX + 16], size[32], value[32], undo[16], owner[160], seals[64];
} row_cells;

static void row_fill(const ipcb_object_info *o, bool bytes, row_cells *rc) {
        char esc[CTL_ESC_MAX];

        snprintf(rc->name, sizeof(rc->name), "%s%s", ctl_escape(o->name, esc, sizeof(esc)),
                 o->flags & IPCB_OBJ_UNLINKED ? " (unlinked)" : "");
        if (o->kind == IPCB_KIND_SEM) {
                snprintf(rc->size, sizeof(rc->size), "-");
                snprintf(rc->value, sizeof(rc->value), "%u/%u", o->sem_value, o->sem_max);
                snprintf(rc->undo, sizeof(rc->undo), "%u", o->sem_undo_held);
                snprintf(rc->seals, sizeof(rc->seals), "-");
        } else {
                if (bytes)
                        snprintf(rc->size, sizeof(rc->size), "%" PRIu64, o->size);
                else
                        ctl_human_size(o->size, rc->size, sizeof(rc->size));
                snprintf(rc->value, sizeof(rc->value), "-");
                snprintf(rc->undo, sizeof(rc->undo), "-");
                ctl_seals_str(o->seals, rc->seals, sizeof(rc->seals));
        }
        ctl_owner_str(o->uid, o->gid, rc->owner, sizeof(rc->owner));
}

static int max_width(int w, const char *s) {
        int l = (int)strlen(s);
        return l > w ? l : w;
}

/* "1234,1240" (each pid once), "+N" for holders the broker did not name,
 * "-" for none, "?" when unknown. */
static void holders_str(const ctl_holders *h, char *buf, size_t cap) {
        size_t n = 0;

        if (h->total < 0) {
                snprintf(buf, cap, "?");
                return;
        }
        if (h->total == 0) {
                snprintf(buf, cap, "-");
                return;
        }
        buf[0] = '\0';
        for (unsigned i = 0; i < h->n && n < cap; i++)
                n += (size_t)snprintf(buf + n, cap - n, "%s%d", i ? "," : "", (int)h->v[i].pid);
        if ((unsigned)h->total > h->n && n < cap)
                snprintf(buf + n, cap - n, "%s+%u", h->n ? "," : "", (unsigned)h->total - h->n);
}

/* KIND NAME SIZE VALUE UNDO OWNER MODE SEALS HANDLES PERSISTENT [HOLDERS].
 * Cells are computed twice (widths, then rows) rather than kept: cheap now
 * that owner names are cached, and memory stays one row. */
void ctl_print_table(FILE *f, const ipcb_object_info *v, const ctl_holders *h, size_t n,
                     bool bytes) {
        int wname = 4, wsize = 4, wvalue = 5, wundo = 4, wowner = 5, wseals = 5;
        char holders[IPCB_HOLDERS_CELL];
        row_cells rc;

        for (size_t i = 0; i < n; i++) {
                row_fill(&v[i], bytes, &rc);
                wname = max_width(wname, rc.name);
                wsize = max_width(wsize, rc.size);
                wvalue = max_width(wvalue, rc.value);
                wundo = max_width(wundo, rc.undo);
                wowner = max_width(wowner, rc.owner);
                wseals = max_width(wseals, rc.seals);
        }
        fprintf(f, "%-4s  %-*s  %*s  %*s  %*s  %-*s  %-4s  %-*s  %7s  %s%s\n", "KIND", wname,
                "NAME", wsize, "SIZE", wvalue, "VALUE", wundo, "UNDO", wowner, "OWNER", "MODE",
                wseals, "SEALS", "HANDLES", h ? "PERSISTENT  " : "PERSISTENT",
                h ? "HOLDERS" : "");
        for (size_t i = 0; i < n; i++) {
                const ipcb_object_info *o = &v[i];
                row_fill(o, bytes, &rc);
                if (h)
                        holders_str(&h[i], holders, sizeof(holders));
                fprintf(f, "%-4s  %-*s  %*s  %*s  %*s  %-*s  %04o  %-*s  %7u  %s%s\n",
                        ctl_kind_name(o->kind), wname, rc.name, wsize, rc.size, wvalue, rc.value,
                        wundo, rc.undo, wowner, rc.owner, o->mode, wseals, rc.seals, o->handles,
                        h ? (o->flags & IPCB_SHM_PERSISTENT ? "yes         " : "no          ")
                          : (o->flags & IPCB_SHM_PERSISTENT ? "yes" : "no"),
                        h ? holders : "");
        }
}

void ctl_print_stat(FILE *f, const ipcb_object_info *o) {
        char owner[160], seals[64], esc[CTL_ESC_MAX];

        ctl_owner_str(o->uid, o->gid, owner, sizeof(owner));
        ctl_seals_str(o->seals, seals, sizeof(seals));
        fprintf(f, "name: %s\nkind: %s\nid: %" PRIu64 "\n", ctl_escape(o->name, esc, sizeof(esc)),
                ctl_kind_name(o->kind), o->id);
        if (o->kind == IPCB_KIND_SEM)
                fprintf(f, "value: %u\nmax: %u\nundo_held: %u\n", o->sem_value, o->sem_max,
                        o->sem_undo_held);
        else
                fprintf(f, "size: %" PRIu64 "\n", o->size);
        fprintf(f, "owner: %s (uid %u, gid %u)\nmode: %04o\n", owner, (unsigned)o->uid,
                (unsigned)o->gid, o->mode);
        if (o->kind != IPCB_KIND_SEM)
                fprintf(f, "seals: %s\n", seals);
        fprintf(f, "handles: %u\npersistent: %s\n", o->handles,
                o->flags & IPCB_SHM_PERSISTENT ? "yes" : "no");
        if (o->kind != IPCB_KIND_SEM)
                fprintf(f, "growable: %s\n", o->flags & IPCB_SHM_GROWABLE ? "yes" : "no");
        fprintf(f, "unlinked: %s\n", o->flags & IPCB_OBJ_UNLINKED ? "yes" : "no");
}

static void limit_str(uint64_t v, char *buf, size_t cap) {
        if (v == 0)
                snprintf(buf, cap, "-");
        else
                snprintf(buf, cap, "%" PRIu64, v);
}

void ctl_print_quota_header(FILE *f) {
        fprintf(f, "%-8s  %15s  %25s  %13s  %11s\n", "UID", "OBJECTS/MAX", "BYTES/MAX",
                "HANDLES/MAX", "CONNS/MAX");
}

void ctl_print_quota_row(FILE *f, const ipcb_quota_info *q) {
        char lo[32], lb[32], lh[32], lc[32];

        limit_str(q->max_objects, lo, sizeof(lo));
        limit_str(q->max_bytes, lb, sizeof(lb));
        limit_str(q->max_handles, lh, sizeof(lh));
        limit_str(q->max_connections, lc, sizeof(lc));
        fprintf(f, "%-8u  %8" PRIu64 "/%-6s  %12" PRIu64 "/%-12s  %6u/%-6s  %5u/%-5s%s\n",
                (unsigned)q->uid, q->objects, lo, q->bytes, lb, q->handles, lh, q->connections,
                lc, q->exempt ? "  (exempt)" : "");
}

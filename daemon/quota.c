/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* quota.c: the per-uid usage table (see quota.h).  A small hash table keyed
 * by uid; an entry lives while any of its counters is non-zero.  A uid of
 * a subordinate range counts as the range's owner (quota_principal). */
#include "quota.h"

#include "config.h"
#include "log.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- subordinate uid ranges ---- */

typedef struct subrange {
        uint32_t first, last, owner;
        uint32_t line; /* where the file gave it: the earlier wins a tie */
} subrange;

/* Sorted by first, not overlapping; set at start, never changed after. */
static subrange *subranges;
static size_t nsubranges;

static int cmp_range(const void *a, const void *b) {
        const subrange *x = a, *y = b;

        if (x->first != y->first)
                return x->first < y->first ? -1 : 1;
        return x->line < y->line ? -1 : x->line > y->line;
}

/* "owner:start:count" (blanks around it ignored), owner a uid or a login
 * name (looked up now). */
static int range_parse(char *line, subrange *r) {
        char *f[3], *end;
        unsigned long long start, count;

        f[0] = line + strspn(line, " \t");
        for (end = f[0] + strlen(f[0]); end > f[0] && strchr(" \t\r", end[-1]); end--)
                end[-1] = '\0';
        for (int i = 1; i < 3; i++) { /* exactly three fields, none empty */
                if (!(f[i] = strchr(f[i - 1], ':')))
                        return -EINVAL;
                *f[i]++ = '\0';
        }
        if (strchr(f[2], ':') || !f[0][0])
                return -EINVAL;
        errno = 0;
        unsigned long long u = strtoull(f[0], &end, 10);
        if (f[0][0] >= '0' && f[0][0] <= '9' && !*end) {
                if (errno || u >= UINT32_MAX)
                        return -EINVAL;
                r->owner = (uint32_t)u;
        } else {
                struct passwd *pw = getpwnam(f[0]);
                if (!pw || (uint32_t)pw->pw_uid == UINT32_MAX)
                        return -ENOENT;
                r->owner = (uint32_t)pw->pw_uid;
        }
        errno = 0;
        start = strtoull(f[1], &end, 10);
        if (errno || *end || f[1][0] < '0' || f[1][0] > '9')
                return -EINVAL;
        count = strtoull(f[2], &end, 10);
        if (errno || *end || f[2][0] < '0' || f[2][0] > '9' || count == 0 || start == 0 ||
            start >= UINT32_MAX ||
            count > UINT32_MAX - start) /* neither uid 0 nor (uid_t)-1 */
                return -EINVAL;
        r->first = (uint32_t)start;
        r->last = (uint32_t)(start + count - 1);
        return 0;
}

int quota_load_subuids(const char *path) {
        char line[512];
        size_t cap = 0, bad = 0, kept = 0;
        uint32_t lineno = 0;
        bool cut = false;
        FILE *f;

        if (!path || !*path)
                return 0;
        if (!(f = fopen(path, "re"))) {
                int k = -errno;
                if (k == -ENOENT)
                        log_debug("no %s: every uid counts as itself", path);
                else
                        log_warn("cannot read %s: %s; every uid counts as itself", path, strerror(-k));
                return k == -ENOENT ? 0 : k;
        }
        while (fgets(line, sizeof(line), f)) {
                bool whole = strchr(line, '\n') || feof(f), was_cut = cut;
                subrange r = { .line = ++lineno };
                cut = !whole;
                line[strcspn(line, "\n")] = '\0';
                if (was_cut) /* the rest of a line too long: not a line */
                        continue;
                if (!line[strspn(line, " \t\r")] || line[strspn(line, " \t")] == '#')
                        continue;
                if (!whole || range_parse(line, &r) < 0) {
                        bad++;
                        continue;
                }
                if (r.owner == 0) /* root's: counted as root, its uids would be exempt */
                        continue;
                if (nsubranges == cap) {
                        size_t c = cap ? 2 * cap : 16;
                        subrange *n = realloc(subranges, c * sizeof(*n));
                        if (!n) {
                                fclose(f);
                                log_warn("%s: out of memory; every uid counts as itself", path);
                                free(subranges);
                                subranges = NULL;
                                nsubranges = 0;
                                return -ENOMEM;
                        }
                        subranges = n;
                        cap = c;
                }
                subranges[nsubranges++] = r;
        }
        fclose(f);
        if (nsubranges) /* (qsort of NULL, even of 0, is undefined) */
                qsort(subranges, nsubranges, sizeof(*subranges), cmp_range);
        for (size_t i = 0; i < nsubranges; i++) /* overlapping: the first to start wins */
                if (!kept || subranges[i].first > subranges[kept - 1].last)
                        subranges[kept++] = subranges[i];
                else
                        bad++;
        if (bad)
                log_warn("%s: %zu lines not understood or overlapping another range, left out", path, bad);
        nsubranges = kept;
        if (kept)
                log_info("%s: the uids of %zu subordinate range%s count as their owners' for quotas",
                         path, kept, kept == 1 ? "" : "s");
        return 0;
}

uid_t quota_principal(uid_t uid) {
        size_t lo = 0, hi = nsubranges;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if ((uint32_t)uid < subranges[mid].first)
                        hi = mid;
                else if ((uint32_t)uid > subranges[mid].last)
                        lo = mid + 1;
                else
                        return (uid_t)subranges[mid].owner;
        }
        return uid;
}

/* ---- the usage table ---- */

#define QUOTA_BUCKETS 256

typedef struct quota_user {
        uid_t uid;
        uint64_t use[QUOTA_NRES_];
        void *data[QUOTA_DATA_N_]; /* quota_user_data */
        mainloop_share share;
        struct quota_user *next;
} quota_user;

static quota_user *buckets[QUOTA_BUCKETS];

static unsigned bucket_of(uid_t uid) {
        uint32_t h = (uint32_t)uid * 2654435761u;
        return h >> 24; /* 0..255 */
}

static quota_user *lookup(uid_t uid, bool create) {
        quota_user **b, *u;

        uid = quota_principal(uid);
        b = &buckets[bucket_of(uid)];

        for (u = *b; u; u = u->next)
                if (u->uid == uid)
                        return u;
        if (!create || !(u = calloc(1, sizeof(*u))))
                return NULL;
        u->uid = uid;
        u->next = *b;
        *b = u;
        return u;
}

static void maybe_free(quota_user *u) {
        quota_user **pp;

        for (int r = 0; r < QUOTA_NRES_; r++)
                if (u->use[r])
                        return;
        for (pp = &buckets[bucket_of(u->uid)]; *pp; pp = &(*pp)->next)
                if (*pp == u) {
                        *pp = u->next;
                        free(u);
                        return;
                }
}

static uint64_t limit_of(quota_res r) {
        switch (r) {
        case QUOTA_OBJECTS: return cfg.max_objects_per_uid;
        case QUOTA_BYTES: return cfg.max_bytes_per_uid;
        case QUOTA_HANDLES: return cfg.max_handles_per_uid;
        case QUOTA_CONNECTIONS: return cfg.max_connections_per_uid;
        case QUOTA_FDS: return cfg.max_fds_per_uid;
        default: return 0; /* throttles: never refused here */
        }
}

bool quota_exempt(uid_t uid) {
        return uid == 0 && cfg.root_override;
}

static bool over(const quota_user *u, quota_res r, uint64_t n) {
        uint64_t lim = limit_of(r);

        if (lim == 0 || quota_exempt(u->uid))
                return false;
        return n > lim || u->use[r] > lim - n;
}

uint64_t quota_use(uid_t uid, quota_res r) {
        quota_user *u = lookup(uid, false);

        return u ? u->use[r] : 0;
}

void **quota_user_data(uid_t uid, unsigned which) {
        quota_user *u = lookup(uid, false);

        return u && which < QUOTA_DATA_N_ ? &u->data[which] : NULL;
}

mainloop_share *quota_loop_share(uid_t uid) {
        quota_user *u = lookup(uid, false);

        return u ? &u->share : NULL;
}

int quota_charge(uid_t uid, quota_res r, uint64_t n) {
        quota_user *u = lookup(uid, true);

        if (!u)
                return -ENOMEM;
        if (over(u, r, n)) {
                maybe_free(u);
                return r == QUOTA_CONNECTIONS ? -EUSERS : -EDQUOT;
        }
        u->use[r] += n;
        return 0;
}

/* The daemon's fds for all objects (root's too): creation stops at
 * cfg.fd_budget, so that the rest stays free for connections and clean-up. */
static uint64_t fds_total;

uint64_t quota_object_fds(uint8_t kind) {
        /* A segment: its memfd, the read-only description, the lock page. */
        return kind == IPCB_KIND_SHM ? 3 : 1;
}

int quota_charge_object(uid_t uid, uint8_t kind, uint64_t bytes) {
        uint64_t fds = quota_object_fds(kind);
        quota_user *u;

        if (cfg.fd_budget && fds_total + fds > cfg.fd_budget)
                return -ENOSPC;
        if (!(u = lookup(uid, true)))
                return -ENOMEM;
        if (over(u, QUOTA_OBJECTS, 1) || over(u, QUOTA_BYTES, bytes) || over(u, QUOTA_FDS, fds)) {
                maybe_free(u);
                return -EDQUOT;
        }
        u->use[QUOTA_OBJECTS]++;
        u->use[QUOTA_BYTES] += bytes;
        u->use[QUOTA_FDS] += fds;
        fds_total += fds;
        return 0;
}

int quota_charge_object_restored(uid_t uid, uint8_t kind, uint64_t bytes) {
        uint64_t fds = quota_object_fds(kind);
        quota_user *u = lookup(uid, true);

        if (!u)
                return -ENOMEM;
        u->use[QUOTA_OBJECTS]++;
        u->use[QUOTA_BYTES] += bytes;
        u->use[QUOTA_FDS] += fds;
        fds_total += fds;
        return 0;
}

void quota_charge_grown(uid_t uid, uint64_t bytes) {
        quota_user *u = lookup(uid, true);

        if (u)
                u->use[QUOTA_BYTES] += bytes;
}

int quota_charge_fd(uid_t uid) {
        quota_user *u;

        if (cfg.fd_budget && fds_total + 1 > cfg.fd_budget)
                return -ENOSPC;
        if (!(u = lookup(uid, true)))
                return -ENOMEM;
        if (over(u, QUOTA_FDS, 1)) {
                maybe_free(u);
                return -EDQUOT;
        }
        u->use[QUOTA_FDS]++;
        fds_total++;
        return 0;
}

void quota_uncharge_fd(uid_t uid) {
        fds_total = fds_total ? fds_total - 1 : 0;
        quota_uncharge(uid, QUOTA_FDS, 1);
}

void quota_uncharge(uid_t uid, quota_res r, uint64_t n) {
        quota_user *u = lookup(uid, false);

        if (!u)
                return;
        u->use[r] = u->use[r] > n ? u->use[r] - n : 0;
        maybe_free(u);
}

void quota_uncharge_object(uid_t uid, uint8_t kind, uint64_t bytes) {
        uint64_t fds = quota_object_fds(kind);
        quota_user *u = lookup(uid, false);

        fds_total = fds_total > fds ? fds_total - fds : 0;
        if (!u)
                return;
        u->use[QUOTA_OBJECTS] = u->use[QUOTA_OBJECTS] ? u->use[QUOTA_OBJECTS] - 1 : 0;
        u->use[QUOTA_BYTES] = u->use[QUOTA_BYTES] > bytes ? u->use[QUOTA_BYTES] - bytes : 0;
        u->use[QUOTA_FDS] = u->use[QUOTA_FDS] > fds ? u->use[QUOTA_FDS] - fds : 0;
        maybe_free(u);
}

static void rec_fill(const quota_user *u, uid_t uid, ipcb_quota_rec *r) {
        *r = (ipcb_quota_rec){
                .uid = (uint32_t)uid,
                .flags = quota_exempt(uid) ? IPCB_QR_EXEMPT : 0,
        };
        if (u) {
                r->objects = u->use[QUOTA_OBJECTS];
                r->bytes = u->use[QUOTA_BYTES];
                r->handles = (uint32_t)u->use[QUOTA_HANDLES];
                r->connections = (uint32_t)u->use[QUOTA_CONNECTIONS];
        }
}

static int cmp_uid(const void *a, const void *b) {
        uid_t x = ((const ipcb_quota_rec *)a)->uid, y = ((const ipcb_quota_rec *)b)->uid;
        return x < y ? -1 : x > y;
}

unsigned quota_report(bool only_one, uid_t only, uint64_t cursor, ipcb_quota_rec *recs,
                      unsigned max, bool *ret_more) {
        unsigned n = 0;
        bool more = false;

        *ret_more = false;
        if (only_one) {
                if (max == 0 || (uint64_t)only < cursor)
                        return 0;
                rec_fill(lookup(only, false), quota_principal(only), &recs[0]);
                return 1;
        }
        /* Keep the `max` smallest uids >= cursor: a full scan per page, which
         * is fine for a table with one entry per active uid. */
        for (unsigned b = 0; b < QUOTA_BUCKETS; b++)
                for (const quota_user *u = buckets[b]; u; u = u->next) {
                        if ((uint64_t)u->uid < cursor)
                                continue;
                        if (n < max) {
                                rec_fill(u, u->uid, &recs[n++]);
                                continue;
                        }
                        more = true;
                        /* Replace the largest if this one is smaller. */
                        unsigned big = 0;
                        for (unsigned i = 1; i < n; i++)
                                if (recs[i].uid > recs[big].uid)
                                        big = i;
                        if (u->uid < recs[big].uid)
                                rec_fill(u, u->uid, &recs[big]);
                }
        qsort(recs, n, sizeof(*recs), cmp_uid);
        *ret_more = more;
        return n;
}

void quota_fini(void) {
        free(subranges);
        subranges = NULL;
        nsubranges = 0;
        for (unsigned b = 0; b < QUOTA_BUCKETS; b++)
                while (buckets[b]) {
                        quota_user *u = buckets[b];
                        buckets[b] = u->next;
                        free(u);
                }
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sysv_sem.c: semget, semop, semtimedop and semctl served by broker
 * semaphores.  A key names a set: member 0 is the broker semaphore PREFIX
 * "sysv-sem." + 8 hex digits, member i > 0 that name + "." + i (sets of up
 * to SET_MAX).  A semop of several operations takes the set's ops lock, a
 * segment named member 0's name + ".ops" (below).  SEM_UNDO operations go through
 * the broker's undo handles (ipcb_sem with IPCB_SEM_UNDO): tokens a process
 * took with SEM_UNDO come back when it dies, however it dies.  An undo
 * handle serves one call at a time, so each process keeps a small pool per
 * semaphore; a release prefers a handle that holds tokens, so that the
 * usual acquire-then-release (in one thread or across threads that do not
 * overlap) nets to zero as the kernel's semadj does.  A release beyond what
 * the handle holds is owed back when the process goes (semadj below 0:
 * ipcb_sem_release_undo). */
#include "sysv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sem.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define SEM_IDS_MAX 4096
#define UNDO_POOL 32
#define SYSV_SEMVMX 32767 /* the kernel's largest semaphore value */
#define SET_MAX 64        /* semaphores per set served (documented) */
#define SEMOPM 500        /* operations per semop, as the kernel's default */

/* One semaphore of a set: its plain handle and its undo-handle pool. */
typedef struct member {
        ipcb_sem *plain; /* opened by semget, kept until exit */
        ipcb_sem *undo[UNDO_POOL];
        bool busy[UNDO_POOL];
} member;

typedef struct sem_ent {
        bool used, removed;
        key_t key;
        char name[IPCB_NAME_MAX + 1]; /* member 0's; member i > 0: name.i */
        unsigned gen;    /* shim_fork_gen of the handles below */
        unsigned nsems;
        member *m;       /* nsems members */
        ipcb_shm *ops;   /* the set's ops lock (semop with several operations) */
        pthread_mutex_t ops_mu; /* this process's threads take turns with ops */
        bool ops_mu_ready;
        unsigned ops_mu_gen;    /* shim_fork_gen when ops_mu was initialised */
} sem_ent;
static sem_ent sem_ids[SEM_IDS_MAX];

static sem_ent *ent_of(int id) {
        unsigned i = (unsigned)id - SYSV_ID_BASE;

        if (id < SYSV_ID_BASE || i >= SEM_IDS_MAX || !sem_ids[i].used)
                return NULL;
        return &sem_ids[i];
}

static int member_name(const char *base, unsigned i, char *buf) {
        int n = i == 0 ? snprintf(buf, IPCB_NAME_MAX + 1, "%s", base)
                       : snprintf(buf, IPCB_NAME_MAX + 1, "%s.%u", base, i);
        return n < 0 || n > IPCB_NAME_MAX ? -ENAMETOOLONG : 0;
}

static void members_close(member *m, unsigned n) {
        for (unsigned i = 0; m && i < n; i++)
                ipcb_sem_close(m[i].plain);
        free(m);
}

/* Open the set named base: member 0, then members 1.. as far as they go.
 * -ENOENT when member 0 is missing; -EINVAL when it has fewer than want. */
static int set_open(ipcb_client *c, const char *base, unsigned want, member **ret_m,
                    unsigned *ret_n) {
        char name[IPCB_NAME_MAX + 1];
        member *m = calloc(SET_MAX, sizeof(*m));
        unsigned n = 0;
        int r = 0;

        if (!m)
                return -ENOMEM;
        for (; n < SET_MAX; n++) {
                if ((r = member_name(base, n, name)) < 0 ||
                    (r = ipcb_sem_open(c, name, 0, &m[n].plain)) < 0)
                        break;
        }
        if (n > 0 && r == -ENOENT)
                r = 0;
        if (r == 0 && n < want)
                r = -EINVAL; /* a smaller set than asked for */
        if (r < 0) {
                members_close(m, n);
                return r;
        }
        member *fit = realloc(m, n * sizeof(*m)); /* n > 0 */
        *ret_m = fit ? fit : m;
        *ret_n = n;
        return 0;
}

/* Create the set base of n members at 0.  Members n-1..1 first, member 0
 * (what openers look for) last, so that nobody opens a half-made set; a
 * member left by a creator that died half-way is taken over.  -EEXIST when
 * member 0 exists (nothing of ours is left behind). */
static int set_create(ipcb_client *c, const char *base, unsigned n,
                      const ipcb_sem_options *opts, member **ret_m) {
        char name[IPCB_NAME_MAX + 1];
        member *m = calloc(n, sizeof(*m));
        bool made[SET_MAX] = { false };
        int r = 0;

        if (!m)
                return -ENOMEM;
        for (unsigned i = n; i-- > 0 && r == 0;) {
                if ((r = member_name(base, i, name)) < 0)
                        break;
                r = ipcb_sem_create(c, name, 0, opts, &m[i].plain);
                made[i] = r == 0;
                if (r == -EEXIST && i > 0 && (r = ipcb_sem_open(c, name, 0, &m[i].plain)) == 0) {
                        /* an orphan: reset it */
                        while ((r = ipcb_sem_try_acquire(m[i].plain, 0)) == 0)
                                ;
                        r = r == -EAGAIN ? 0 : r;
                }
        }
        if (r < 0) {
                /* Members we made are ours to remove, unless member 0
                 * exists: then another creator may have finished the set
                 * with them (found by opening) */
                for (unsigned i = 1; r != -EEXIST && i < n; i++)
                        if (made[i] && member_name(base, i, name) == 0)
                                (void)ipcb_sem_unlink(c, name);
                members_close(m, n);
                return r;
        }
        *ret_m = m;
        return 0;
}

/* In a forked child the handles are the parent's: open our own.  Lock
 * held. */
static int ent_handles(ipcb_client *c, sem_ent *e) {
        member *m;
        unsigned n;
        int r;

        if (e->gen == shim_fork_gen && e->m)
                return 0;
        /* the parent's handles are left alone */
        if ((r = set_open(c, e->name, e->nsems, &m, &n)) < 0)
                return r == -ENOENT ? -EIDRM : r;
        e->m = m;
        e->nsems = n < e->nsems ? n : e->nsems;
        e->gen = shim_fork_gen;
        e->ops = NULL; /* the parent's, if any, is left alone too */
        return 0;
}

static int serve_get(ipcb_client *c, key_t key, int nsems, int flg) {
        ipcb_sem_options opts = IPCB_SEM_OPTIONS_INIT;
        char name[IPCB_NAME_MAX + 1];
        bool create = key == IPC_PRIVATE || (flg & IPC_CREAT);
        member *m = NULL;
        unsigned n = 0;
        int r = -ENOENT, free_i = -1;

        if (nsems < 0)
                return -EINVAL;
        if (nsems > SET_MAX)
                return -ENOSYS; /* documented: sets of at most SET_MAX */
        if ((r = sysv_name(key, "sem", name)) < 0)
                return r;
        opts.mode = (unsigned)flg & 0777u;
        opts.flags = shim_cfg.transient ? 0 : IPCB_SEM_PERSISTENT;
        opts.max = SYSV_SEMVMX;
        for (int turn = 0; turn < 100; turn++) {
                if (key != IPC_PRIVATE && !(create && (flg & IPC_EXCL))) {
                        r = set_open(c, name, (unsigned)nsems, &m, &n);
                        if (r == 0 || r != -ENOENT || !create)
                                break;
                }
                if (nsems == 0)
                        return -EINVAL;
                r = set_create(c, name, (unsigned)nsems, &opts, &m);
                n = (unsigned)nsems;
                if (r == 0 || r != -EEXIST || (flg & IPC_EXCL))
                        break;
        }
        if (r < 0)
                return r;
        for (int i = 0; i < SEM_IDS_MAX; i++) {
                sem_ent *e = &sem_ids[i];
                if (e->used && strcmp(e->name, name) == 0) {
                        /* known here: one set of handles is enough */
                        if (e->gen == shim_fork_gen && e->m && !e->removed) {
                                members_close(m, n);
                        } else {
                                e->m = m; /* the old ones: the parent's, or removed */
                                e->nsems = n;
                                e->gen = shim_fork_gen;
                                e->removed = false;
                                e->ops = NULL; /* the same goes for its ops lock */
                        }
                        return SYSV_ID_BASE + i;
                }
                if (!e->used && free_i < 0)
                        free_i = i;
        }
        if (free_i < 0) {
                members_close(m, n);
                return -ENOSPC;
        }
        sem_ids[free_i] = (sem_ent){ .used = true, .key = key, .m = m, .nsems = n,
                                     .gen = shim_fork_gen };
        snprintf(sem_ids[free_i].name, sizeof(sem_ids[free_i].name), "%s", name);
        return SYSV_ID_BASE + free_i;
}

__attribute__((visibility("default"))) int semget(key_t key, int nsems, int semflg) {
        char what[16];
        ipcb_client *c;
        int err, r;

        snprintf(what, sizeof(what), "0x%08x", (unsigned)key);
        pthread_mutex_lock(&shim_lock);
        switch (sysv_route(what, &c, &err)) {
        case SHIM_PASS:
                pthread_mutex_unlock(&shim_lock);
                return SHIM_NEXT(int (*)(key_t, int, int), semget)(key, nsems, semflg);
        case SHIM_FAIL:
                pthread_mutex_unlock(&shim_lock);
                errno = err;
                return -1;
        case SHIM_SERVE:
                break;
        }
        r = serve_get(c, key, nsems, semflg);
        pthread_mutex_unlock(&shim_lock);
        return r < 0 ? shim_fail(r) : r;
}

/* Claim an undo handle of member num of e for one call: one not in use,
 * preferring one that holds tokens (for a release); a new one if all are
 * in use.  Lock held.  The index, or a negative errno. */
static int undo_claim(ipcb_client *c, sem_ent *e, unsigned num, bool want_held) {
        char name[IPCB_NAME_MAX + 1];
        member *m = &e->m[num];
        int pick = -1, r;

        for (int i = 0; i < UNDO_POOL; i++) {
                if (!m->undo[i] || m->busy[i])
                        continue;
                if (pick < 0)
                        pick = i;
                if (!want_held || ipcb_sem_held(m->undo[i]) > 0) {
                        pick = i;
                        break;
                }
        }
        if (pick < 0) {
                for (int i = 0; i < UNDO_POOL && pick < 0; i++)
                        if (!m->undo[i])
                                pick = i;
                if (pick < 0)
                        return -EAGAIN; /* UNDO_POOL calls in flight at once */
                if ((r = member_name(e->name, num, name)) < 0 ||
                    (r = ipcb_sem_open(c, name, IPCB_SEM_UNDO, &m->undo[pick])) < 0)
                        return r == -ENOENT ? -EIDRM : r;
        }
        m->busy[pick] = true;
        return pick;
}

static long remaining_ms(const struct timespec *deadline) {
        struct timespec now;
        long ms;

        if (!deadline)
                return -1;
        clock_gettime(CLOCK_MONOTONIC, &now);
        ms = (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
        return ms < 0 ? 0 : ms;
}

/* Waits that have no futex (for zero, or for several operations) poll:
 * sleep *us, doubling it from 50 µs up to 1 ms. */
#define BACKOFF_START_US 50
static void backoff(unsigned *us) {
        usleep(*us);
        *us = *us < 1000 ? *us * 2 : 1000;
}

/* +n through h.  Through an undo handle, what this process did not take
 * with SEM_UNDO is owed back when it goes, as the kernel's semadj
 * (ipcb_sem_release_undo); a broker without it gets a plain release. */
static int give(ipcb_sem *h, bool undo, unsigned n) {
        int r = undo ? ipcb_sem_release_undo(h, n) : -EOPNOTSUPP;

        if (r == -EOPNOTSUPP)
                r = ipcb_sem_release(h, n);
        return r == -EOVERFLOW ? -ERANGE : r;
}

/* One operation on handle h (not holding the lock). */
static int sem_do(ipcb_sem *h, bool undo, short op, bool nowait, const struct timespec *deadline) {
        int r = 0;

        if (op > 0)
                return give(h, undo, (unsigned)op);
        if (op == 0) {
                /* wait for zero: no futex for it on the page; poll */
                unsigned us = BACKOFF_START_US;
                while ((r = ipcb_sem_value(h)) > 0) {
                        if (nowait || remaining_ms(deadline) == 0)
                                return -EAGAIN;
                        backoff(&us);
                }
                return r < 0 ? r : 0;
        }
        /* -n takes n tokens at once, never some while it waits for the
         * rest (ipcb_sem_acquire_n). */
        long ms = nowait ? 0 : remaining_ms(deadline);
        r = ipcb_sem_acquire_n(h, (unsigned)-op, ms > 0x7fffffff ? 0x7fffffff : (int)ms);
        return r == -ETIMEDOUT ? -EAGAIN : r;
}

/* ---- semop with several operations ----
 * All of them or none, in one step with respect to every other semop of
 * several operations on the set: those take the set's ops lock, the lock
 * of a broker segment named after member 0 + ".ops", made by the first
 * such call with member 0's mode.  Under the lock the operations are
 * played in order on the members' current values; if they all go, each
 * member's net change is applied (plan(): the plain handles' changes in
 * one SEM_APPLY request, all or none even if the process is killed), else
 * the lock is let go and the call waits (polling, up to 1 ms apart) and
 * tries again.  A semop of one operation does not take the lock: it may
 * land between the values' reading and the net change, as if just after
 * the several; a take it made meanwhile can make the net take fail, which
 * is undone and tried again.  A process killed while applying a net change
 * leaves its plain part whole or undone, and its undo part to the broker,
 * which settles it as semadj (the next locker is told, and carries on).  The
 * threads of one process share the set's handles, the ops lock's too, and
 * a lock belongs to its handle: they take turns on a mutex of the set
 * first. */

/* The set's ops lock, opened or made on first use, and the mutex that
 * makes this process's threads take turns with it (a segment lock belongs
 * to a handle, and they share this one).  Lock held. */
static int ops_lock_of(ipcb_client *c, sem_ent *e) {
        ipcb_shm_options opts = IPCB_SHM_OPTIONS_INIT;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        char name[IPCB_NAME_MAX + 1];
        bool created = false;
        int n, r;

        if (e->ops)
                return 0;
        n = snprintf(name, sizeof(name), "%s.ops", e->name);
        if (n < 0 || n > IPCB_NAME_MAX)
                return -ENAMETOOLONG;
        if ((r = ipcb_stat(c, IPCB_KIND_SEM, e->name, &info)) < 0)
                return r == -ENOENT ? -EIDRM : r;
        opts.mode = info.mode & 0666u;
        opts.flags = shim_cfg.transient ? 0 : IPCB_SHM_PERSISTENT;
        if ((r = ipcb_shm_create_or_open(c, name, 64, &opts, &e->ops, &created)) < 0)
                return r;
        /* Made by someone other than the set's owner: the set's group, so
         * that those the set admits through its group are admitted here
         * too (best effort: only a member of that group may give it). */
        if (created && info.uid != getuid())
                (void)ipcb_chown(c, IPCB_KIND_SHM, name, (uid_t)-1, info.gid);
        /* Made once, and again in a forked child (one thread: nobody can
         * hold it), whose copy may have been held by another thread. */
        if (!e->ops_mu_ready || e->ops_mu_gen != shim_fork_gen) {
                pthread_mutex_init(&e->ops_mu, NULL);
                e->ops_mu_ready = true;
                e->ops_mu_gen = shim_fork_gen;
        }
        return 0;
}

/* One step of a net change: delta tokens through undo handle h. */
typedef struct step {
        ipcb_sem *h;
        int delta;
} step;

/* A net change: the undo handles' gives, every plain handle's change at
 * once, the undo handles' takes (plan()). */
typedef struct change {
        ipcb_client *c;
        step give[SET_MAX], take[SET_MAX];
        ipcb_sem *plain[SET_MAX];
        int pdelta[SET_MAX];
        unsigned ngive, ntake, nplain;
} change;

/* Play sops on the members' values (m, n members): 0 if all go, -EAGAIN if
 * operation *ret_blocked would wait, -ERANGE past SEMVMX.  net[k][u]: the
 * net change of member k through its plain (u 0) or undo (u 1) handle. */
static int play(const member *m, const struct sembuf *sops, size_t nsops, int (*net)[2],
                size_t *ret_blocked) {
        int val[SET_MAX];
        bool seen[SET_MAX] = { false };

        for (size_t i = 0; i < nsops; i++) {
                unsigned k = sops[i].sem_num;
                if (!seen[k]) {
                        if ((val[k] = ipcb_sem_value(m[k].plain)) < 0)
                                return val[k];
                        seen[k] = true;
                }
                int op = sops[i].sem_op;
                if ((op < 0 && val[k] < -op) || (op == 0 && val[k] != 0)) {
                        *ret_blocked = i;
                        return -EAGAIN;
                }
                if (val[k] + op > SYSV_SEMVMX)
                        return -ERANGE;
                val[k] += op;
                net[k][(sops[i].sem_flg & SEM_UNDO) && op != 0] += op;
        }
        return 0;
}

/* The net changes in an order in which none has to wait on the values
 * play() saw.  Members are independent: only each member's own order
 * matters, and the undo gives first, then the plain changes, then the
 * undo takes keeps it for every member (a give before a take of the same
 * member; a member whose changes both take or both give may go in any
 * order, its value being enough for the whole). */
static void plan(const member *m, unsigned nsems, int (*net)[2], const int *slot, change *ch) {
        ch->ngive = ch->ntake = ch->nplain = 0;
        for (unsigned k = 0; k < nsems; k++) {
                if (net[k][1] > 0)
                        ch->give[ch->ngive++] = (step){ m[k].undo[slot[k]], net[k][1] };
                if (net[k][1] < 0)
                        ch->take[ch->ntake++] = (step){ m[k].undo[slot[k]], net[k][1] };
                if (net[k][0] != 0) {
                        ch->plain[ch->nplain] = m[k].plain;
                        ch->pdelta[ch->nplain++] = net[k][0];
                }
        }
}

/* Take or give delta through h now (never waiting). */
static int step_do(ipcb_sem *h, bool undo, int delta) {
        return delta < 0 ? ipcb_sem_acquire_n(h, (unsigned)-delta, 0) : give(h, undo, (unsigned)delta);
}

/* The plain changes times sign (1, or -1 to undo them): at once, all or
 * none, through the broker (ipcb_sem_apply: a process killed meanwhile
 * cannot leave part of them done), or on the page if there is one; with
 * an older broker one by one, takes first, those done undone if a later
 * one fails. */
static int plain_apply(const change *ch, int sign) {
        unsigned done[SET_MAX], nd = 0;
        int d[SET_MAX], r;

        if (ch->nplain == 0)
                return 0;
        if (ch->nplain == 1) /* one change: one CAS on the page is whole */
                return step_do(ch->plain[0], false, sign * ch->pdelta[0]);
        for (unsigned i = 0; i < ch->nplain; i++)
                d[i] = sign * ch->pdelta[i];
        r = ipcb_sem_apply(ch->c, ch->plain, d, ch->nplain);
        if (r != -EOPNOTSUPP)
                return r;
        for (int gives = 0; gives < 2; gives++)
                for (unsigned i = 0; i < ch->nplain; i++) {
                        if ((d[i] > 0) != gives)
                                continue;
                        if ((r = step_do(ch->plain[i], false, d[i])) < 0)
                                goto undo;
                        done[nd++] = i;
                }
        return 0;
undo:
        while (nd-- > 0)
                (void)step_do(ch->plain[done[nd]], false, -d[done[nd]]);
        return r;
}

/* Apply a net change in plan()'s order; a part that fails (a single
 * operation changed a value since play() read it) undoes the parts before
 * it, as far as it can: -EAGAIN to play again, or the part's error.  A
 * process killed half way leaves its undo parts to the broker, which
 * settles them as the kernel applies semadj (what an undo handle holds
 * goes back, what it owes is taken), and its plain parts all done or none
 * (SEM_APPLY): what the kernel's atomic semop would leave at that death. */
static int apply(const change *ch) {
        unsigned g = 0, t = 0;
        bool plain = false;
        int r;

        for (; g < ch->ngive; g++)
                if ((r = step_do(ch->give[g].h, true, ch->give[g].delta)) < 0)
                        goto undo;
        if ((r = plain_apply(ch, 1)) < 0)
                goto undo;
        plain = true;
        for (; t < ch->ntake; t++)
                if ((r = step_do(ch->take[t].h, true, ch->take[t].delta)) < 0)
                        goto undo;
        return 0;
undo:
        while (t-- > 0)
                (void)step_do(ch->take[t].h, true, -ch->take[t].delta);
        if (plain)
                (void)plain_apply(ch, -1);
        while (g-- > 0)
                (void)step_do(ch->give[g].h, true, -ch->give[g].delta);
        return r == -EAGAIN ? -EAGAIN : r == -EOVERFLOW ? -ERANGE : r;
}

static int serve_multi(int semid, struct sembuf *sops, size_t nsops, const struct timespec *dl) {
        int net[SET_MAX][2], slot[SET_MAX];
        change ch;
        size_t blocked = SIZE_MAX;
        unsigned us = BACKOFF_START_US, nsems = 0;
        ipcb_client *c;
        ipcb_shm *ops = NULL;
        pthread_mutex_t *mu = NULL;
        member *m = NULL;
        sem_ent *e;
        int err, r;

        for (unsigned k = 0; k < SET_MAX; k++)
                slot[k] = -1;
        pthread_mutex_lock(&shim_lock);
        e = ent_of(semid);
        if (sysv_route(NULL, &c, &err) != SHIM_SERVE || e->removed)
                r = -EIDRM;
        else
                r = ent_handles(c, e);
        for (size_t i = 0; r == 0 && i < nsops; i++)
                if (sops[i].sem_num >= e->nsems)
                        r = -EFBIG;
        if (r == 0 && (r = ops_lock_of(c, e)) == 0) {
                /* What this call uses, taken now: a semget may rebind e. */
                ops = e->ops;
                mu = &e->ops_mu;
                m = e->m;
                nsems = e->nsems;
        }
        /* One undo handle per member that an undo operation touches. */
        for (size_t i = 0; r == 0 && i < nsops; i++) {
                unsigned k = sops[i].sem_num;
                if ((sops[i].sem_flg & SEM_UNDO) && sops[i].sem_op != 0 && slot[k] < 0 &&
                    (slot[k] = undo_claim(c, e, k, sops[i].sem_op > 0)) < 0)
                        r = slot[k];
        }
        pthread_mutex_unlock(&shim_lock);

        while (r == 0) {
                long ms = remaining_ms(dl);
                if (dl ? pthread_mutex_clocklock(mu, CLOCK_MONOTONIC, dl) : pthread_mutex_lock(mu)) {
                        r = -EAGAIN; /* the deadline passed while another thread had it */
                        break;
                }
                r = ipcb_shm_try_lock(ops, ms > 0x7fffffff ? 0x7fffffff : (int)ms);
                if (r >= 0) {
                        memset(net, 0, sizeof(net));
                        blocked = SIZE_MAX;
                        r = play(m, sops, nsops, net, &blocked);
                        if (r == 0) {
                                plan(m, nsems, net, slot, &ch);
                                ch.c = c;
                                r = apply(&ch);
                        }
                        (void)ipcb_shm_unlock(ops);
                } else if (r == -ETIMEDOUT) {
                        r = -EAGAIN;
                        blocked = 0;
                }
                pthread_mutex_unlock(mu);
                if (r != -EAGAIN)
                        break;
                if (blocked == SIZE_MAX) { /* a single operation interfered: again, now */
                        r = 0;
                        continue;
                }
                if ((blocked < nsops && (sops[blocked].sem_flg & IPC_NOWAIT)) || remaining_ms(dl) == 0)
                        break;
                backoff(&us);
                r = 0;
        }

        pthread_mutex_lock(&shim_lock);
        for (unsigned k = 0; k < SET_MAX; k++)
                if (slot[k] >= 0)
                        m[k].busy[slot[k]] = false;
        pthread_mutex_unlock(&shim_lock);
        return r;
}

static int serve_op(int semid, struct sembuf *sops, size_t nsops, const struct timespec *timeout) {
        struct timespec deadline, *dl = NULL;
        ipcb_client *c;
        sem_ent *e;
        member *mem;
        ipcb_sem *h;
        int err, r, slot = -1;
        bool undo;

        if (nsops == 0)
                return -EINVAL;
        if (!sops)
                return -EFAULT;
        if (nsops > SEMOPM)
                return -E2BIG;
        if (timeout) {
                if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000)
                        return -EINVAL;
                clock_gettime(CLOCK_MONOTONIC, &deadline);
                deadline.tv_sec += timeout->tv_sec;
                deadline.tv_nsec += timeout->tv_nsec;
                if (deadline.tv_nsec >= 1000000000) {
                        deadline.tv_sec++;
                        deadline.tv_nsec -= 1000000000;
                }
                dl = &deadline;
        }
        if (nsops > 1)
                return serve_multi(semid, sops, nsops, dl);
        undo = (sops[0].sem_flg & SEM_UNDO) && sops[0].sem_op != 0;
        pthread_mutex_lock(&shim_lock);
        e = ent_of(semid);
        if (sysv_route(NULL, &c, &err) != SHIM_SERVE)
                r = -EIDRM;
        else if (e->removed)
                r = -EIDRM;
        else if ((r = ent_handles(c, e)) == 0 && sops[0].sem_num >= e->nsems)
                r = -EFBIG;
        else if (r == 0 && undo &&
                 (slot = undo_claim(c, e, sops[0].sem_num, sops[0].sem_op > 0)) < 0)
                r = slot;
        mem = r == 0 ? &e->m[sops[0].sem_num] : NULL;
        h = !mem ? NULL : slot >= 0 ? mem->undo[slot] : mem->plain;
        pthread_mutex_unlock(&shim_lock);
        if (r < 0)
                return r;
        r = sem_do(h, slot >= 0, sops[0].sem_op, sops[0].sem_flg & IPC_NOWAIT, dl);
        if (slot >= 0) {
                pthread_mutex_lock(&shim_lock);
                mem->busy[slot] = false;
                pthread_mutex_unlock(&shim_lock);
        }
        return r;
}

__attribute__((visibility("default"))) int semtimedop(int semid, struct sembuf *sops, size_t nsops,
                                                      const struct timespec *timeout) {
        int r;

        pthread_mutex_lock(&shim_lock);
        if (!ent_of(semid)) {
                pthread_mutex_unlock(&shim_lock);
                return SHIM_NEXT(int (*)(int, struct sembuf *, size_t, const struct timespec *),
                                 semtimedop)(semid, sops, nsops, timeout);
        }
        pthread_mutex_unlock(&shim_lock);
        r = serve_op(semid, sops, nsops, timeout);
        return r < 0 ? shim_fail(r) : 0;
}

__attribute__((visibility("default"))) int semop(int semid, struct sembuf *sops, size_t nsops) {
        int r;

        pthread_mutex_lock(&shim_lock);
        if (!ent_of(semid)) {
                pthread_mutex_unlock(&shim_lock);
                return SHIM_NEXT(int (*)(int, struct sembuf *, size_t), semop)(semid, sops, nsops);
        }
        pthread_mutex_unlock(&shim_lock);
        r = serve_op(semid, sops, nsops, NULL);
        return r < 0 ? shim_fail(r) : 0;
}

/* SETVAL: one atomic step on the broker semaphore's count.  Other
 * processes' undo tokens are not cleared, as the kernel clears semadj:
 * they come back on top of val (documented). */
static int set_value(ipcb_sem *h, int val) {
        int r;

        if (val < 0 || val > SYSV_SEMVMX)
                return -ERANGE;
        return (r = ipcb_sem_set_value(h, (unsigned)val)) < 0 ? r : 0;
}

union shim_semun {
        int val;
        struct semid_ds *buf;
        unsigned short *array;
};

static int serve_ctl(ipcb_client *c, sem_ent *e, int semnum, int cmd, union shim_semun arg) {
        char name[IPCB_NAME_MAX + 1];
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        int r;

        if (cmd == IPC_RMID) {
                /* member 0 first: the set is gone for openers at once */
                r = ipcb_sem_unlink(c, e->name);
                for (unsigned i = 1; r == 0 && i < e->nsems; i++)
                        if (member_name(e->name, i, name) == 0)
                                (void)ipcb_sem_unlink(c, name);
                if (r == 0 && snprintf(name, sizeof(name), "%s.ops", e->name) <= IPCB_NAME_MAX)
                        (void)ipcb_shm_unlink(c, name); /* its ops lock, if it has one */
                if (r == 0) {
                        e->removed = true; /* handles stay: a waiter may be using them */
                        e->ops = NULL;
                }
                return r == -ENOENT ? -EIDRM : r;
        }
        if (e->removed)
                return -EIDRM;
        if ((r = ent_handles(c, e)) < 0)
                return r;
        if ((cmd == GETVAL || cmd == SETVAL) && (semnum < 0 || (unsigned)semnum >= e->nsems))
                return -EINVAL;
        switch (cmd) {
        case GETVAL:
                return ipcb_sem_value(e->m[semnum].plain);
        case SETVAL:
                return set_value(e->m[semnum].plain, arg.val);
        case GETALL:
                for (unsigned i = 0; i < e->nsems; i++) {
                        if ((r = ipcb_sem_value(e->m[i].plain)) < 0)
                                return r;
                        arg.array[i] = (unsigned short)r;
                }
                return 0;
        case SETALL:
                for (unsigned i = 0; i < e->nsems; i++)
                        if (arg.array[i] > SYSV_SEMVMX)
                                return -ERANGE;
                for (unsigned i = 0; i < e->nsems; i++)
                        if ((r = set_value(e->m[i].plain, arg.array[i])) < 0)
                                return r;
                return 0;
        case IPC_STAT:
                if ((r = ipcb_stat(c, IPCB_KIND_SEM, e->name, &info)) < 0)
                        return r == -ENOENT ? -EIDRM : r;
                memset(arg.buf, 0, sizeof(*arg.buf));
                arg.buf->sem_perm.__key = e->key;
                arg.buf->sem_perm.uid = arg.buf->sem_perm.cuid = info.uid;
                arg.buf->sem_perm.gid = arg.buf->sem_perm.cgid = info.gid;
                arg.buf->sem_perm.mode = (unsigned short)info.mode;
                arg.buf->sem_nsems = e->nsems;
                arg.buf->sem_ctime = time(NULL);
                return 0;
        case IPC_SET:
        case IPC_INFO:
        case SEM_INFO:
        case SEM_STAT:
        case GETPID:
        case GETNCNT:
        case GETZCNT:
                return -ENOSYS; /* documented: not served */
        default:
                return -EINVAL;
        }
}

__attribute__((visibility("default"))) int semctl(int semid, int semnum, int cmd, ...) {
        union shim_semun arg = { 0 };
        ipcb_client *c;
        sem_ent *e;
        va_list ap;
        int err, r;

        /* the fourth argument exists only for these commands */
        switch (cmd) {
        case SETVAL:
        case GETALL:
        case SETALL:
        case IPC_STAT:
        case IPC_SET:
        case IPC_INFO:
        case SEM_INFO:
        case SEM_STAT:
        case SEM_STAT_ANY:
                va_start(ap, cmd);
                arg = va_arg(ap, union shim_semun);
                va_end(ap);
                break;
        default:
                break;
        }
        pthread_mutex_lock(&shim_lock);
        if (!(e = ent_of(semid))) {
                pthread_mutex_unlock(&shim_lock);
                return SHIM_NEXT(int (*)(int, int, int, ...), semctl)(semid, semnum, cmd, arg);
        }
        if (sysv_route(NULL, &c, &err) != SHIM_SERVE)
                r = -EIDRM;
        else if ((cmd == GETALL || cmd == SETALL || cmd == IPC_STAT) && !arg.array)
                r = -EFAULT;
        else
                r = serve_ctl(c, e, semnum, cmd, arg);
        pthread_mutex_unlock(&shim_lock);
        return r < 0 ? shim_fail(r) : r;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* workers.c: the soak's well-behaved clients.  Each follows the rules
 * (locks around writes, the seqlock around reads, tokens given back) and
 * checks what it sees: a consistent read that does not add up, a data
 * sequence that went back, a token count the library disagrees with, a
 * quota refused with the wrong error.  Producers, consumers, undo users
 * and the quota filler are killed at random by the orchestrator and
 * started again; the plain-token users and the probe live the whole run. */
#include "soak.h"

#include "ipcbroker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void phase(wslot *w, enum phase p) {
        atomic_store(&w->phase, p);
}

/* Errors a call may return while the broker restarts: try again later. */
static bool transient_error(int r) {
        return r == -ENOTCONN || r == -ETIMEDOUT || r == -ECONNRESET || r == -EPIPE ||
               r == -ECONNREFUSED || r == -EMFILE;
}

static int connect_retry(ipcb_client **ret) {
        for (int i = 0; !atomic_load(&S->stop); i++) {
                int r = ipcb_connect(soak_socket, ret);
                if (r == 0) {
                        ipcb_set_timeout(*ret, 10000);
                        return 0;
                }
                if (i > 3000)
                        return r;
                soak_sleep_us(10000);
        }
        return -ECANCELED;
}

/* A producer: lock, write the next sequence, unlock; now and then it
 * dawdles half way through a write so that kills land there.  It holds SOAK_NTR
 * transient segments of its own, which must go when it is killed. */
static int producer(wslot *w, ipcb_client *c, uint64_t *rng) {
        char name[64];
        ipcb_shm *s, *tr[SOAK_NTR];
        int r;

        snprintf(name, sizeof(name), SOAK_DATA "%u", w->index);
        phase(w, P_REQUEST);
        if ((r = ipcb_shm_open(c, name, IPCB_READ_WRITE, &s)) < 0) {
                soak_violation("producer %u: open %s: %s", w->index, name, strerror(-r));
                return 1;
        }
        for (unsigned k = 0; k < SOAK_NTR; k++) {
                ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
                snprintf(name, sizeof(name), SOAK_TR "%d.%u", (int)getpid(), k);
                if ((r = ipcb_shm_create(c, name, 4096, &o, &tr[k])) < 0) {
                        soak_violation("producer: create %s: %s", name, strerror(-r));
                        return 1;
                }
        }
        phase(w, P_IDLE);
        while (!atomic_load(&S->stop)) {
                uint64_t seq;

                phase(w, P_REQUEST);
                r = ipcb_shm_lock(s);
                if (r < 0) {
                        if (transient_error(r)) {
                                soak_sleep_us(5000);
                                continue;
                        }
                        soak_violation("producer %u: lock: %s", w->index, strerror(-r));
                        return 1;
                }
                atomic_store(&w->locked, (int)w->index + 1);
                phase(w, P_LOCKED);
                if (r == IPCB_OWNER_DIED) {
                        atomic_fetch_add(&S->owner_died, 1);
                        if (!soak_data_valid(ipcb_shm_data(s), &seq)) {
                                /* Half-written by the dead holder: write that
                                 * sequence again, whole. */
                                soak_data_fill(ipcb_shm_data(s), seq);
                                atomic_fetch_add(&S->repairs, 1);
                        }
                }
                if (!soak_data_valid(ipcb_shm_data(s), &seq))
                        soak_violation("producer %u: data invalid under the lock", w->index);
                if (soak_rand(rng) % 8 == 0) {
                        /* Dawdle half way through the write: a kill now
                         * leaves it half-written for the next locker. */
                        ((soak_data_hdr *)ipcb_shm_data(s))->sum ^= 1;
                        soak_sleep_us((unsigned)(soak_rand(rng) % 2000));
                }
                soak_data_fill(ipcb_shm_data(s), seq + 1);
                /* Cleared first: set at a death means the lock was held. */
                atomic_store(&w->locked, 0);
                r = ipcb_shm_unlock(s);
                phase(w, P_IDLE);
                if (r < 0) /* -EPERM: the lock was taken from a live holder */
                        soak_violation("producer %u: unlock: %s", w->index, strerror(-r));
                atomic_fetch_add(&S->writes, 1);
                soak_sleep_us(500 + (unsigned)(soak_rand(rng) % 1000));
        }
        for (unsigned k = 0; k < SOAK_NTR; k++)
                ipcb_shm_close(tr[k]);
        ipcb_shm_close(s);
        return 0;
}

/* A consumer of another uid: reads every data segment read-only.  A read
 * the seqlock calls consistent must add up, and no sequence may be older
 * than one already read (the segments are persistent: restarts keep them). */
static int consumer(wslot *w, ipcb_client *c, uint64_t *rng) {
        static uint8_t copy[sizeof(soak_data_hdr) + SOAK_PAYLOAD];
        ipcb_shm *s[SOAK_NDATA];
        char name[64];
        int r;

        phase(w, P_REQUEST);
        for (unsigned i = 0; i < SOAK_NDATA; i++) {
                snprintf(name, sizeof(name), SOAK_DATA "%u", i);
                if ((r = ipcb_shm_open(c, name, IPCB_READ_ONLY, &s[i])) < 0) {
                        soak_violation("consumer: open %s: %s", name, strerror(-r));
                        return 1;
                }
        }
        phase(w, P_IDLE);
        while (!atomic_load(&S->stop)) {
                unsigned i = (unsigned)(soak_rand(rng) % SOAK_NDATA);
                uint64_t before = atomic_load(&S->max_seen[i]), seq, m;
                uint32_t q;

                r = ipcb_shm_read_begin(s[i], 200, &q);
                if (r == -EOWNERDEAD || r == -ETIMEDOUT || r == -EAGAIN || transient_error(r)) {
                        atomic_fetch_add(&S->read_retries, 1);
                        soak_sleep_us(1000);
                        continue;
                }
                if (r < 0) {
                        soak_violation("consumer: read_begin: %s", strerror(-r));
                        return 1;
                }
                memcpy(copy, ipcb_shm_data(s[i]), sizeof(copy));
                if (ipcb_shm_read_retry(s[i], q)) {
                        atomic_fetch_add(&S->read_retries, 1);
                        continue;
                }
                if (!soak_data_valid(copy, &seq)) {
                        soak_violation("consumer: %s%u: a consistent read does not add up (seq %llu)",
                                       SOAK_DATA, i, (unsigned long long)seq);
                        soak_sleep_us(100000);
                        continue;
                }
                if (seq < before)
                        soak_violation("consumer: %s%u went back: %llu after %llu", SOAK_DATA, i,
                                       (unsigned long long)seq, (unsigned long long)before);
                m = before;
                while (seq > m && !atomic_compare_exchange_weak(&S->max_seen[i], &m, seq))
                        ;
                atomic_fetch_add(&S->reads, 1);
                soak_sleep_us(300 + (unsigned)(soak_rand(rng) % 700));
        }
        for (unsigned i = 0; i < SOAK_NDATA; i++)
                ipcb_shm_close(s[i]);
        return 0;
}

/* Token users.  held and pending tell the orchestrator what this process
 * has; the library's own count must agree with held. */
static int tokens(wslot *w, ipcb_client *c, uint64_t *rng, bool undo) {
        ipcb_sem *s;
        int r;

        phase(w, P_REQUEST);
        r = ipcb_sem_open(c, undo ? SOAK_UNDO : SOAK_PLAIN, undo ? IPCB_SEM_UNDO : 0, &s);
        if (r < 0) {
                soak_violation("%s: open: %s", undo ? "undo" : "plain", strerror(-r));
                return 1;
        }
        phase(w, P_IDLE);
        while (!atomic_load(&S->stop)) {
                unsigned n = undo ? 1 + (unsigned)(soak_rand(rng) % 2) : 1;

                atomic_store(&w->pending, (int)n);
                phase(w, P_REQUEST);
                r = ipcb_sem_acquire_n(s, n, 100);
                if (r == 0)
                        atomic_fetch_add(&w->held, (int)n);
                atomic_store(&w->pending, 0);
                if (r == -ETIMEDOUT || r == -EAGAIN || transient_error(r)) {
                        phase(w, P_IDLE);
                        soak_sleep_us(1000);
                        continue;
                }
                if (r < 0) {
                        soak_violation("%s: acquire %u: %s", undo ? "undo" : "plain", n, strerror(-r));
                        return 1;
                }
                phase(w, P_TOKENS);
                if (undo && (r = ipcb_sem_held(s)) != atomic_load(&w->held))
                        soak_violation("undo: the library says %d held, the worker took %d", r,
                                       atomic_load(&w->held));
                soak_sleep_us((unsigned)(soak_rand(rng) % 2000));
                atomic_store(&w->pending, -(int)n);
                r = ipcb_sem_release(s, n);
                if (r == 0)
                        atomic_fetch_sub(&w->held, (int)n);
                atomic_store(&w->pending, 0);
                phase(w, P_IDLE);
                if (r < 0 && !transient_error(r)) {
                        soak_violation("%s: release %u: %s", undo ? "undo" : "plain", n, strerror(-r));
                        return 1;
                }
                if (r < 0 && undo) { /* its tokens went back with a lost slot */
                        int h = ipcb_sem_held(s);
                        atomic_store(&w->held, h > 0 ? h : 0);
                }
                atomic_fetch_add(undo ? &S->undo_ops : &S->plain_ops, 1);
                soak_sleep_us(200 + (unsigned)(soak_rand(rng) % 800));
        }
        if (atomic_load(&w->held) > 0 && ipcb_sem_release(s, (unsigned)atomic_load(&w->held)) == 0)
                atomic_store(&w->held, 0);
        ipcb_sem_close(s);
        return 0;
}

/* Fill this uid's object quota with transients, check the refusal is
 * -EDQUOT and the counters agree, free them all, check a create works. */
static int quota(wslot *w, ipcb_client *c, uint64_t *rng) {
        enum { MAX = 1024 };
        static ipcb_shm *h[MAX];
        while (!atomic_load(&S->stop)) {
                unsigned n = 0;
                ipcb_quota_info qi = IPCB_QUOTA_INFO_INIT;
                int r = 0;

                phase(w, P_REQUEST);
                while (n < MAX) {
                        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
                        char name[64];
                        snprintf(name, sizeof(name), "soak.q.%d.%u", (int)getpid(), n);
                        if ((r = ipcb_shm_create(c, name, 65536, &o, &h[n])) < 0)
                                break;
                        n++;
                }
                if (r == -EDQUOT) {
                        int k = ipcb_quota(c, getuid(), &qi);
                        atomic_fetch_add(&S->quota_refusals, 1);
                        /* More may be counted: a killed predecessor's transients
                         * go when the broker sees it die (or its grace ends). */
                        if (k == 0 && qi.objects < n)
                                soak_violation("quota: %u objects made, the broker counts %llu", n,
                                               (unsigned long long)qi.objects);
                        if (k == 0 && qi.max_objects && qi.objects < qi.max_objects &&
                            (!qi.max_bytes || qi.bytes + 65536 <= qi.max_bytes))
                                soak_violation("quota: refused at %llu of %llu objects",
                                               (unsigned long long)qi.objects,
                                               (unsigned long long)qi.max_objects);
                } else if (!transient_error(r) && r != -EEXIST) {
                        soak_violation("quota: create refused with %s (%d) after %u", strerror(-r), r, n);
                }
                for (unsigned i = 0; i < n; i++)
                        ipcb_shm_close(h[i]);
                if (r != -EDQUOT) {
                        phase(w, P_IDLE);
                        soak_sleep_us(20000);
                        continue;
                }
                atomic_fetch_add(&S->quota_fills, 1);
                ipcb_sync(c);
                {
                        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
                        ipcb_shm *one;
                        r = ipcb_shm_create(c, "soak.q.recovered", 65536, &o, &one);
                        if (r == 0) {
                                atomic_fetch_add(&S->quota_recoveries, 1);
                                ipcb_shm_close(one);
                        } else if (!transient_error(r) && r != -EEXIST) {
                                soak_violation("quota: no recovery after freeing: %s", strerror(-r));
                        }
                }
                phase(w, P_IDLE);
                soak_sleep_us(200000 + (unsigned)(soak_rand(rng) % 300000));
        }
        return 0;
}

static void lat_record(enum lclass k, uint64_t ns) {
        uint64_t now = soak_now_ns(), sec = (now - S->t_start) / 1000000000u;
        uint32_t i = atomic_fetch_add(&S->nlat[k], 1);
        if (ns > S->max_ns[k]) { /* one probe: no race */
                S->max_ns[k] = ns;
                S->max_at[k] = now;
        }
        if (k == L_HOSTILE && ns >= 5000000) {
                int a = atomic_load(&S->last_attack);
                S->slow_by_attack[a]++;
                if (ns / 1000 > S->max_by_attack_us[a])
                        S->max_by_attack_us[a] = (uint32_t)(ns / 1000);
        }
        if (sec < SOAK_SECS) {
                S->sec_n[k][sec]++;
                if (ns / 1000 > S->sec_max_us[k][sec])
                        S->sec_max_us[k][sec] = (uint32_t)(ns / 1000);
        }
        if (i < SOAK_LAT_CAP)
                S->lat[k][i] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

/* The machine's floor: a child that sends back each datagram it gets,
 * over a socket like the broker's.  Returns the probe's end, or -errno. */
static int echo_start(pid_t *ret_pid) {
        int sv[2];
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        if ((pid = fork()) < 0) {
                close(sv[0]);
                close(sv[1]);
                return -errno;
        }
        if (pid == 0) {
                char buf[256];
                ssize_t n;
                close(sv[0]);
                while ((n = recv(sv[1], buf, sizeof(buf), 0)) > 0)
                        if (send(sv[1], buf, (size_t)n, MSG_NOSIGNAL) != n)
                                break;
                _exit(0);
        }
        close(sv[1]);
        *ret_pid = pid;
        return sv[0];
}

/* One round trip through the echo, timed, of a request's size. */
static void echo_round(int fd) {
        char buf[64] = { 0 };
        uint64_t t0 = soak_now_ns();

        if (send(fd, buf, sizeof(buf), MSG_NOSIGNAL) != sizeof(buf) || recv(fd, buf, sizeof(buf), 0) != sizeof(buf)) {
                soak_violation("probe: the echo process failed: %s", strerror(errno));
                return;
        }
        lat_record(L_ECHO, soak_now_ns() - t0);
}

/* The probe: a stat, then an open and close of a persistent segment (a
 * reply with an fd), every 2 ms, each timed and filed by what was going on;
 * after each, the same round trip through the echo process. */
static int probe(wslot *w, ipcb_client *c) {
        pid_t echo_pid = -1;
        int echo = echo_start(&echo_pid);

        (void)w;
        if (echo < 0) {
                soak_violation("probe: cannot start the echo process: %s", strerror(-echo));
                return 1;
        }
        for (unsigned it = 0; !atomic_load(&S->stop); it++) {
                uint32_t rs0 = atomic_load(&S->restart_seq), rs1;
                bool hostile = atomic_load(&S->hostile_on);
                uint64_t t0 = soak_now_ns(), t1;
                ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
                ipcb_shm *s;
                int r;

                if (it & 1) {
                        r = ipcb_shm_open(c, SOAK_KEEP "0", IPCB_READ_ONLY, &s);
                        if (r == 0)
                                ipcb_shm_close(s);
                } else {
                        r = ipcb_stat(c, IPCB_KIND_SHM, SOAK_KEEP "0", &info);
                }
                t1 = soak_now_ns();
                rs1 = atomic_load(&S->restart_seq);
                if (r < 0)
                        atomic_fetch_add(&S->probe_errors, 1);
                if ((rs0 & 1) || rs0 != rs1)
                        lat_record(L_RESTART, t1 - t0);
                else if (r == 0)
                        lat_record(hostile || atomic_load(&S->hostile_on) ? L_HOSTILE : L_QUIET, t1 - t0);
                if (r < 0 && !(rs0 & 1) && rs0 == rs1)
                        soak_violation("probe: %s outside a restart", strerror(-r));
                atomic_fetch_add(&S->probe_ops, 1);
                soak_sleep_us(1000);
                echo_round(echo);
                soak_sleep_us(1000);
        }
        close(echo);
        waitpid(echo_pid, NULL, 0);
        return 0;
}

int worker_run(wslot *w) {
        uint64_t rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ soak_now_ns();
        ipcb_client *c;
        int r;

        if ((r = connect_retry(&c)) < 0) {
                if (r != -ECANCELED)
                        soak_violation("role %d: connect: %s", (int)w->role, strerror(-r));
                return 1;
        }
        switch (w->role) {
        case R_PRODUCER: r = producer(w, c, &rng); break;
        case R_CONSUMER: r = consumer(w, c, &rng); break;
        case R_UNDO: r = tokens(w, c, &rng, true); break;
        case R_PLAIN: r = tokens(w, c, &rng, false); break;
        case R_QUOTA: r = quota(w, c, &rng); break;
        case R_PROBE: r = probe(w, c); break;
        default: r = 2; break;
        }
        ipcb_disconnect(c);
        return r;
}

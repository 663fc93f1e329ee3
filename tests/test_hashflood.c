/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_hashflood.c: names chosen to collide cost the daemon no more than
 * any others.  The test crafts thousands of valid names whose 64-bit FNV-1a
 * (the registry's old, unkeyed hash) agrees in the low HASH_BITS bits, so
 * that they share one bucket at every table size the daemon reaches, and
 * creates them.  Then it compares the daemon's CPU time for stat requests
 * of crafted missing names (each lookup would walk the whole chain) with
 * random missing names.  Also checks siphash.c against the reference
 * vectors of SipHash-2-4. */
#include "harness.h"

#include "ipcbroker.h"

/* The daemon's SipHash, compiled in here: tests link the library only. */
#include "../daemon/siphash.c"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NCOLLIDE 12000 /* objects in the crafted bucket (semaphores: 1 daemon fd each) */
#define NPROBE 1000   /* crafted names that are not created */
#define NREQ 5000     /* stat requests of each class */
#define BLOCK 250     /* interleaved in blocks, against drifting noise */
#define HASH_BITS 20  /* table sizes up to 2^20 buckets */
#define MAX_RATIO 3.0

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

/* From the SipHash reference implementation: key 00..0f, message 00..len-1. */
static const uint64_t sip_vectors[64] = {
        0x726fdb47dd0e0e31ull, 0x74f839c593dc67fdull, 0x0d6c8009d9a94f5aull, 0x85676696d7fb7e2dull,
        0xcf2794e0277187b7ull, 0x18765564cd99a68dull, 0xcbc9466e58fee3ceull, 0xab0200f58b01d137ull,
        0x93f5f5799a932462ull, 0x9e0082df0ba9e4b0ull, 0x7a5dbbc594ddb9f3ull, 0xf4b32f46226bada7ull,
        0x751e8fbc860ee5fbull, 0x14ea5627c0843d90ull, 0xf723ca908e7af2eeull, 0xa129ca6149be45e5ull,
        0x3f2acc7f57c29bdbull, 0x699ae9f52cbe4794ull, 0x4bc1b3f0968dd39cull, 0xbb6dc91da77961bdull,
        0xbed65cf21aa2ee98ull, 0xd0f2cbb02e3b67c7ull, 0x93536795e3a33e88ull, 0xa80c038ccd5ccec8ull,
        0xb8ad50c6f649af94ull, 0xbce192de8a85b8eaull, 0x17d835b85bbb15f3ull, 0x2f2e6163076bcfadull,
        0xde4daaaca71dc9a5ull, 0xa6a2506687956571ull, 0xad87a3535c49ef28ull, 0x32d892fad841c342ull,
        0x7127512f72f27cceull, 0xa7f32346f95978e3ull, 0x12e0b01abb051238ull, 0x15e034d40fa197aeull,
        0x314dffbe0815a3b4ull, 0x027990f029623981ull, 0xcadcd4e59ef40c4dull, 0x9abfd8766a33735cull,
        0x0e3ea96b5304a7d0ull, 0xad0c42d6fc585992ull, 0x187306c89bc215a9ull, 0xd4a60abcf3792b95ull,
        0xf935451de4f21df2ull, 0xa9538f0419755787ull, 0xdb9acddff56ca510ull, 0xd06c98cd5c0975ebull,
        0xe612a3cb9ecba951ull, 0xc766e62cfcadaf96ull, 0xee64435a9752fe72ull, 0xa192d576b245165aull,
        0x0a8787bf8ecb74b2ull, 0x81b3e73d20b49b6full, 0x7fa8220ba3b2eceaull, 0x245731c13ca42499ull,
        0xb78dbfaf3a8d83bdull, 0xea1ad565322a1a0bull, 0x60e61c23a3795013ull, 0x6606d7e446282b93ull,
        0x6ca4ecb15c5f91e1ull, 0x9f626da15c9625f3ull, 0xe51b38608ef25f57ull, 0x958a324ceb064572ull,
};

Test(hashflood, siphash_reference_vectors) {
        uint8_t key[16], msg[64];

        for (int i = 0; i < 16; i++)
                key[i] = (uint8_t)i;
        for (int i = 0; i < 64; i++)
                msg[i] = (uint8_t)i;
        for (size_t len = 0; len < 64; len++)
                cr_assert_eq(siphash24(msg, len, key), sip_vectors[len], "length %zu: %016llx", len,
                             (unsigned long long)siphash24(msg, len, key));
}

/* ---- crafting ---- */

static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@+-";

static uint64_t fnv1a(const char *s, size_t len, uint64_t h) {
        for (size_t i = 0; i < len; i++) {
                h ^= (unsigned char)s[i];
                h *= FNV_PRIME;
        }
        return h;
}

static bool name_char(unsigned c) {
        return c && c < 256 && strchr(alphabet, (int)c);
}

/* Names "hf<8 digits><c1><c2>" with fnv1a & mask == target.  The low k bits
 * of FNV-1a depend only on the low k bits of its state, and the prime is
 * odd: so the state before the last byte must be target * prime^-1 with the
 * low 8 bits free (the byte is xored in).  For each prefix and first byte
 * c1, that leaves one candidate c2, valid when the higher bits match. */
static unsigned craft(char (*names)[16], unsigned want, uint64_t target, unsigned *counter) {
        const uint64_t mask = (1ull << HASH_BITS) - 1;
        uint64_t inv = FNV_PRIME, before;
        unsigned n = 0;

        for (int i = 0; i < 6; i++) /* Newton: each step doubles the correct low bits */
                inv *= 2 - FNV_PRIME * inv;
        before = (target * inv) & mask;
        while (n < want) {
                char prefix[16];
                snprintf(prefix, sizeof(prefix), "hf%08u", (*counter)++);
                uint64_t s0 = fnv1a(prefix, 10, FNV_OFFSET);
                for (const char *c1 = alphabet; *c1 && n < want; c1++) {
                        uint64_t s1 = (s0 ^ (unsigned char)*c1) * FNV_PRIME;
                        uint64_t c2 = (s1 ^ before) & mask;
                        if (!name_char((unsigned)c2))
                                continue;
                        memcpy(names[n], prefix, 10);
                        names[n][10] = *c1;
                        names[n][11] = (char)c2;
                        names[n][12] = '\0';
                        cr_assert_eq(fnv1a(names[n], 12, FNV_OFFSET) & mask, target & mask);
                        n++;
                }
        }
        return n;
}

/* ---- the daemon's CPU time ---- */

/* On-CPU nanoseconds (schedstat), and utime+stime in clock ticks. */
static void daemon_cpu(pid_t pid, long long *ret_ns, long long *ret_ticks) {
        char path[64], buf[1024];
        unsigned long long ut = 0, st = 0, ns = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
        if ((f = fopen(path, "re"))) {
                if (fscanf(f, "%llu", &ns) != 1)
                        ns = 0;
                fclose(f);
        }
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        cr_assert_not_null(f = fopen(path, "re"));
        cr_assert_not_null(fgets(buf, sizeof(buf), f));
        fclose(f);
        /* Fields after the command (which may hold spaces): state is 3rd,
         * utime and stime the 14th and 15th. */
        char *p = strrchr(buf, ')');
        cr_assert_not_null(p);
        cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st), 2);
        *ret_ns = (long long)ns;
        *ret_ticks = (long long)(ut + st);
}

static void stat_missing(ipcb_client *c, char (*names)[16], unsigned n, unsigned from, unsigned count) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        for (unsigned i = 0; i < count; i++)
                cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, names[(from + i) % n], &info), -ENOENT);
}

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

Test(hashflood, colliding_names_cost_no_more, .timeout = 120) {
        static char crafted[NCOLLIDE + NPROBE][16], random_names[NPROBE][16];
        static const char *const args[] = { "--max-objects", "20000", NULL };
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        long long cpu_ns[2] = { 0, 0 }, cpu_ticks[2] = { 0, 0 }, ns0, t0, ns1, t1;
        unsigned counter = 0;
        ipcb_client *c;
        ipcb_sem *s;
        static ipcbd d;
        double t;

        t = now_s();
        craft(crafted, NCOLLIDE + NPROBE, 0x5eed5, &counter);
        srand(12345);
        for (unsigned i = 0; i < NPROBE; i++) {
                for (int j = 0; j < 12; j++)
                        random_names[i][j] = alphabet[rand() % (int)(sizeof(alphabet) - 1)];
                random_names[i][0] = 'r'; /* never a crafted name, never a leading '.' */
                random_names[i][12] = '\0';
        }
        fprintf(stderr, "[hashflood] crafted %u names colliding in the low %d bits of FNV-1a in %.2f s\n",
                NCOLLIDE + NPROBE, HASH_BITS, now_s() - t);

        /* The daemon's fd budget (3/4 of its limit, 1 per semaphore) must
         * hold every semaphore. */
        raise_nofile(20000);
        fixture_begin(&d, args);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        o.flags = IPCB_SEM_PERSISTENT;
        t = now_s();
        for (unsigned i = 0; i < NCOLLIDE; i++) {
                cr_assert_eq(ipcb_sem_create(c, crafted[i], 0, &o, &s), 0, "create %s", crafted[i]);
                cr_assert_eq(ipcb_sem_close(s), 0);
        }
        cr_assert_eq(ipcb_sync(c), 0);
        fprintf(stderr, "[hashflood] created %u of them in %.2f s\n", NCOLLIDE, now_s() - t);

        /* Alternate: random missing names (class 0), crafted missing (1). */
        t = now_s();
        for (unsigned done = 0; done < NREQ; done += BLOCK)
                for (int cls = 0; cls < 2; cls++) {
                        daemon_cpu(d.pid, &ns0, &t0);
                        if (cls == 0)
                                stat_missing(c, random_names, NPROBE, done, BLOCK);
                        else
                                stat_missing(c, crafted + NCOLLIDE, NPROBE, done, BLOCK);
                        daemon_cpu(d.pid, &ns1, &t1);
                        cpu_ns[cls] += ns1 - ns0;
                        cpu_ticks[cls] += t1 - t0;
                }
        t = now_s() - t;

        /* Prefer the nanosecond clock; ticks (1/CLK_TCK s) if it is off. */
        bool use_ns = cpu_ns[0] > 0 && cpu_ns[1] > 0;
        double tick = 1e9 / (double)sysconf(_SC_CLK_TCK);
        double per[2];
        for (int cls = 0; cls < 2; cls++)
                per[cls] = (use_ns ? (double)cpu_ns[cls] : (double)cpu_ticks[cls] * tick) / NREQ / 1000.0;
        double ratio = per[0] > 0 ? per[1] / per[0] : 0;
        fprintf(stderr,
                "[hashflood] daemon CPU per stat of a missing name, %d requests each (%.2f s): random "
                "%.2f us, crafted %.2f us, ratio %.2f (%s; ticks %lld vs %lld)\n",
                NREQ, t, per[0], per[1], ratio, use_ns ? "schedstat" : "utime+stime",
                cpu_ticks[0], cpu_ticks[1]);
        cr_assert_gt(per[0], 0, "no daemon CPU time measured");
        cr_assert_lt(ratio, MAX_RATIO, "a lookup of a crafted name costs %.1fx a random one", ratio);

        for (unsigned i = 0; i < NCOLLIDE; i++) /* the fixture wants the daemon idle */
                cr_assert_eq(ipcb_sem_unlink(c, crafted[i]), 0);
        ipcb_disconnect(c);
        fixture_end(&d);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* siphash.c: SipHash-2-4, written from the paper ("SipHash: a fast
 * short-input PRF", 2012); checked against the reference test vectors in
 * tests/test_hashflood.c. */
#include "siphash.h"

static uint64_t rotl(uint64_t x, int b) {
        return (x << b) | (x >> (64 - b));
}

/* Byte order is fixed by the algorithm, not by the machine. */
static uint64_t load_le(const uint8_t *p, size_t n) {
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++)
                v |= (uint64_t)p[i] << (8 * i);
        return v;
}

#define SIPROUND                                                        \
        do {                                                            \
                v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32); \
                v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                  \
                v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                  \
                v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32); \
        } while (0)

uint64_t siphash24(const void *data, size_t len, const uint8_t k[16]) {
        const uint8_t *p = data;
        uint64_t k0 = load_le(k, 8), k1 = load_le(k + 8, 8);
        uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
        uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
        size_t whole = len & ~(size_t)7;
        uint64_t m;

        for (size_t i = 0; i < whole; i += 8) {
                m = load_le(p + i, 8);
                v3 ^= m;
                SIPROUND;
                SIPROUND;
                v0 ^= m;
        }
        /* The last block: the leftover bytes, the length's low byte on top. */
        m = load_le(p + whole, len - whole) | (uint64_t)(len & 0xff) << 56;
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
        v2 ^= 0xff;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        return v0 ^ v1 ^ v2 ^ v3;
}

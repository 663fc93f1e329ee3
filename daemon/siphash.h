/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* siphash.h: SipHash-2-4 (Aumasson and Bernstein), the keyed hash of object
 * names in registry.c: without the key, nobody can choose names that pile
 * up in one bucket. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The 64-bit SipHash-2-4 of len bytes at p under the 128-bit key k (bytes
 * 0..15, read little-endian as in the reference implementation). */
uint64_t siphash24(const void *p, size_t len, const uint8_t k[16]);

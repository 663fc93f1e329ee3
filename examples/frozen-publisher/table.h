/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* table.h: the published table, shared by the publisher and its readers. */
#pragma once

#include <stdint.h>

#define TABLE_NAME "example.table"
#define TABLE_MAGIC 0x7461626cu /* "tabl" */
#define TABLE_ENTRIES 4096

struct table {
        uint32_t magic;
        uint32_t entries;
        uint64_t checksum; /* sum of every entry */
        uint64_t entry[TABLE_ENTRIES];
};

static inline uint64_t table_sum(const struct table *t) {
        uint64_t s = 0;

        for (uint32_t i = 0; i < t->entries && i < TABLE_ENTRIES; i++)
                s += t->entry[i];
        return s;
}

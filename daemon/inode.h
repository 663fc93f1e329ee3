/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* inode.h: every inode the broker serves (a segment's memfd, a semaphore's
 * page, a segment's lock page), by (st_dev, st_ino).  A memfd a client
 * sends to register may be one the broker handed out: then it would become
 * a second name, owned by the registrar, for an object that is not its own.
 * The index tells (access.c); objects keep it current (object.c). */
#pragma once

#include "ihash.h"

#include <stdbool.h>
#include <sys/types.h>

/* One indexed inode, embedded in what serves it (object.h); zeroed: not
 * indexed. */
typedef struct inode_key {
        ihash_node node;
        dev_t dev;
        ino_t ino;
        bool linked;
} inode_key;

/* Index the inode of fd (borrowed) under k; no-op if k is indexed already.
 * Never fails for want of memory (chains grow longer instead), never
 * rehashes the whole index at once (ihash.h); -errno if
 * fstat fails. */
int inode_add(inode_key *k, int fd);
/* Take k out of the index (no-op if it is not in). */
void inode_remove(inode_key *k);
/* Some object is served from inode (dev, ino). */
bool inode_served(dev_t dev, ino_t ino);

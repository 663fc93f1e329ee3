/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* registry.h: name → object, one hash table per kind (separate namespaces),
 * plus every live object (linked or not) of each kind in id order, for
 * paged listing that resumes from any cursor in O(log n). */
#pragma once

#include "object.h"

#include <stddef.h>

/* Draws the name hash's random key; 0 or a negative errno. */
int registry_init(void);
void registry_fini(void); /* destroys every object left */

/* NULL if `kind`/`name` is not linked. */
object *registry_lookup(uint8_t kind, const char *name, size_t len);
/* Allocate an object with a copy of name, a fresh id, linked.  The caller has
 * checked that the name is free.  `extra` zeroed bytes follow the name in
 * the same allocation (registry_trailer), for a kind's own state: what a
 * request reads of it is then near the object, not one more cache and TLB
 * miss away.  NULL on ENOMEM. */
object *registry_add(uint8_t kind, const char *name, size_t len, size_t extra);
/* The `extra` bytes of registry_add, 8-aligned; freed with the object. */
void *registry_trailer(object *o);
/* Remove from the name table (no-op if not linked). */
void registry_unlink(object *o);
/* Remove from everything and free the struct (not the object's fds). */
void registry_remove(object *o);
/* First live object of `kind` with id > cursor (O(log n), whether or not
 * the object with id cursor still lives), then the next one of its kind. */
object *registry_kind_first_after(uint8_t kind, uint64_t cursor);
object *registry_kind_next(const object *o);
/* The same over every kind, in id order. */
object *registry_first_after(uint64_t cursor);
object *registry_next(object *o);
size_t registry_count(void);
/* A name table is growing (its rehash is spread over later operations). */
bool registry_migrating(uint8_t kind);

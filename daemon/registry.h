/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* registry.h: name → object, one hash table per kind (separate namespaces),
 * plus every live object (linked or not) in id order for paged listing. */
#pragma once

#include "object.h"

#include <stddef.h>

/* Draws the name hash's random key; 0 or a negative errno. */
int registry_init(void);
void registry_fini(void); /* destroys every object left */

/* NULL if `kind`/`name` is not linked. */
object *registry_lookup(uint8_t kind, const char *name, size_t len);
/* Allocate an object with a copy of name, a fresh id, linked.  The caller has
 * checked that the name is free.  NULL on ENOMEM. */
object *registry_add(uint8_t kind, const char *name, size_t len);
/* Remove from the name table (no-op if not linked). */
void registry_unlink(object *o);
/* Remove from everything and free the struct (not the object's fds). */
void registry_remove(object *o);
/* First live object with id > cursor, then the next one. */
object *registry_first_after(uint64_t cursor);
object *registry_next(object *o);
size_t registry_count(void);

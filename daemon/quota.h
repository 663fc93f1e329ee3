/* quota.h: per-uid resource accounting.  Each resource is charged at the one
 * place it is acquired and uncharged at the one place it is released
 * (objects and bytes: create / object_destroy; handles: peer_handle_add /
 * handle_slot_release; connections: peer_new / peer_close), so usage cannot
 * drift.  A charge that would pass the uid's limit is refused and changes
 * nothing; other uids never notice. */
#pragma once

#include "proto.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum quota_res {
        QUOTA_OBJECTS,
        QUOTA_BYTES,
        QUOTA_HANDLES,
        QUOTA_CONNECTIONS,
        QUOTA_NRES_,
} quota_res;

/* Charge n units of r to uid.  0, or -EDQUOT (-EUSERS for connections) when
 * the limit would be passed.  An exempt uid (uid 0 with root override) is
 * counted but never refused.  May return -ENOMEM for a new uid. */
int quota_charge(uid_t uid, quota_res r, uint64_t n);
/* Charge an object and its bytes together (both or neither). */
int quota_charge_object(uid_t uid, uint64_t bytes);
void quota_uncharge(uid_t uid, quota_res r, uint64_t n);
void quota_uncharge_object(uid_t uid, uint64_t bytes);
bool quota_exempt(uid_t uid);

/* Fill recs (at most max) with the usage of uids > cursor, in uid order, or
 * of `only` alone when only_one.  Returns the count; *ret_more tells whether
 * more uids follow. */
unsigned quota_report(bool only_one, uid_t only, uint64_t cursor, ipcb_quota_rec *recs,
                      unsigned max, bool *ret_more);
/* Free the table (shutdown). */
void quota_fini(void);

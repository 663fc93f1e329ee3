/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* access.h: the 0x03xx requests (docs/protocol.md, docs/security.md):
 * SET_ACCESS (chmod/chown), FREEZE, SHM_REGISTER, MEMFD and QUOTA, plus the
 * helpers request.c shares with them.  Each handler returns 0 after sending
 * its reply, or a negative errno for request.c to send. */
#pragma once

#include "peer.h"

int access_set(peer *p, const ipcb_msg *m);
int access_freeze(peer *p, const ipcb_msg *m);
/* Takes p->rx_fd (the memfd) when it publishes it; leaves it for the peer
 * to close on every refusal. */
int access_register(peer *p, const ipcb_msg *m);
int access_memfd(peer *p, const ipcb_msg *m);
int access_quota(peer *p, const ipcb_msg *m);

/* Record that o's object and bytes were charged to uid (quota.c). */
void access_charged(object *o, uid_t uid, uint64_t bytes);
/* Nobody may get write access to segment o any more: frozen, published
 * write-sealed, or published through a read-only descriptor. */
bool access_write_sealed(object *o);

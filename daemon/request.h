/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* request.h: what the daemon does with each decoded request. */
#pragma once

#include "peer.h"

/* May a request of this op store an fd in the service manager's fd store
 * (it creates an object, or its lock page)? */
bool request_may_store(uint16_t op);
/* Answer m (a decoded, well-formed request) on p.  May close p. */
void request_dispatch(peer *p, const ipcb_msg *m);

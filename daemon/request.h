/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* request.h: what the daemon does with each decoded request. */
#pragma once

#include "peer.h"

/* Answer m (a decoded, well-formed request) on p.  May close p. */
void request_dispatch(peer *p, const ipcb_msg *m);

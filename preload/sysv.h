/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sysv.h: what sysv_shm.c and sysv_sem.c share: the key-to-name rule, the
 * id range, and routing (System V calls may be switched off as a whole). */
#pragma once

#include "shim.h"

#include <sys/ipc.h>

/* Ids handed out by the shim: SYSV_ID_BASE + table index.  An id outside
 * the shim's tables is the kernel's and passes through. */
#define SYSV_ID_BASE 0x7ff00000

/* The broker name of key for kind_tag "shm" or "sem": PREFIX "sysv-" TAG
 * "." and the key as 8 lower-case hex digits; IPC_PRIVATE: PREFIX
 * "sysv-" TAG ".private." pid "." serial "." random.  buf: IPCB_NAME_MAX + 1. */
int sysv_name(key_t key, const char *kind_tag, char *buf);

/* shim_route_call, and SHIM_PASS when System V is not served. */
shim_route sysv_route(const char *what, ipcb_client **ret_client, int *ret_err);

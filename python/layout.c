/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* layout.c: prints the size of every struct of ipcbroker.h that the Python
 * binding declares, and the offset of each field, as the C compiler lays
 * them out; python/tests/test_layout.py compares them with ctypes'. */
#include <ipcbroker.h>
#include <stddef.h>
#include <stdio.h>

#define SIZE(T) printf(#T " size %zu\n", sizeof(T))
#define FIELD(T, f) printf(#T "." #f " offset %zu\n", offsetof(T, f))

int main(void) {
        SIZE(ipcb_shm_options);
        FIELD(ipcb_shm_options, struct_size);
        FIELD(ipcb_shm_options, mode);
        FIELD(ipcb_shm_options, flags);
        SIZE(ipcb_object_info);
        FIELD(ipcb_object_info, struct_size);
        FIELD(ipcb_object_info, kind);
        FIELD(ipcb_object_info, name);
        FIELD(ipcb_object_info, id);
        FIELD(ipcb_object_info, size);
        FIELD(ipcb_object_info, uid);
        FIELD(ipcb_object_info, gid);
        FIELD(ipcb_object_info, mode);
        FIELD(ipcb_object_info, flags);
        FIELD(ipcb_object_info, seals);
        FIELD(ipcb_object_info, handles);
        FIELD(ipcb_object_info, sem_value);
        FIELD(ipcb_object_info, sem_max);
        FIELD(ipcb_object_info, sem_undo_held);
        SIZE(ipcb_open_options);
        FIELD(ipcb_open_options, struct_size);
        FIELD(ipcb_open_options, flags);
        FIELD(ipcb_open_options, owner);
        SIZE(ipcb_handle_info);
        FIELD(ipcb_handle_info, uid);
        FIELD(ipcb_handle_info, gid);
        FIELD(ipcb_handle_info, mode);
        SIZE(ipcb_sem_options);
        FIELD(ipcb_sem_options, struct_size);
        FIELD(ipcb_sem_options, mode);
        FIELD(ipcb_sem_options, flags);
        FIELD(ipcb_sem_options, max);
        SIZE(ipcb_access);
        FIELD(ipcb_access, struct_size);
        FIELD(ipcb_access, what);
        FIELD(ipcb_access, mode);
        FIELD(ipcb_access, uid);
        FIELD(ipcb_access, gid);
        SIZE(ipcb_quota_info);
        FIELD(ipcb_quota_info, struct_size);
        FIELD(ipcb_quota_info, uid);
        FIELD(ipcb_quota_info, exempt);
        FIELD(ipcb_quota_info, objects);
        FIELD(ipcb_quota_info, bytes);
        FIELD(ipcb_quota_info, handles);
        FIELD(ipcb_quota_info, connections);
        FIELD(ipcb_quota_info, max_objects);
        FIELD(ipcb_quota_info, max_bytes);
        FIELD(ipcb_quota_info, max_handles);
        FIELD(ipcb_quota_info, max_connections);
        SIZE(ipcb_holder);
        FIELD(ipcb_holder, pid);
        FIELD(ipcb_holder, uid);
        FIELD(ipcb_holder, handles);
        SIZE(ipcb_watch_event);
        FIELD(ipcb_watch_event, struct_size);
        FIELD(ipcb_watch_event, watch);
        FIELD(ipcb_watch_event, event);
        FIELD(ipcb_watch_event, kind);
        FIELD(ipcb_watch_event, name);
        FIELD(ipcb_watch_event, id);
        FIELD(ipcb_watch_event, uid);
        FIELD(ipcb_watch_event, gid);
        FIELD(ipcb_watch_event, mode);
        FIELD(ipcb_watch_event, seals);
        /* constants the binding copies */
        printf("const NAME_MAX %d\n", IPCB_NAME_MAX);
        printf("const OWNER_SELF %u\n", (unsigned)IPCB_OWNER_SELF);
        printf("const SEM_VALUE_MAX %d\n", IPCB_SEM_VALUE_MAX);
        printf("const SEM_UNDO_MAX %d\n", IPCB_SEM_UNDO_MAX);
        printf("const SEM_UNDO %u\n", IPCB_SEM_UNDO);
        printf("const SEM_PERSISTENT %u\n", IPCB_SEM_PERSISTENT);
        printf("const SHM_PERSISTENT %u\n", IPCB_SHM_PERSISTENT);
        printf("const SHM_GROWABLE %u\n", IPCB_SHM_GROWABLE);
        printf("const OBJ_UNLINKED %u\n", IPCB_OBJ_UNLINKED);
        printf("const OPEN_OWNED %u\n", IPCB_OPEN_OWNED);
        printf("const OWNER_DIED %d\n", IPCB_OWNER_DIED);
        printf("const READ_ONLY %d\n", IPCB_READ_ONLY);
        printf("const READ_WRITE %d\n", IPCB_READ_WRITE);
        printf("const KIND_SHM %d\n", IPCB_KIND_SHM);
        printf("const KIND_SEM %d\n", IPCB_KIND_SEM);
        printf("const ACCESS_MODE %u\n", IPCB_ACCESS_MODE);
        printf("const ACCESS_UID %u\n", IPCB_ACCESS_UID);
        printf("const ACCESS_GID %u\n", IPCB_ACCESS_GID);
        printf("const TIMEOUT_DEFAULT_MS %d\n", IPCB_TIMEOUT_DEFAULT_MS);
        printf("const BROKER_DEFAULT %d\n", IPCB_BROKER_DEFAULT);
        printf("const BROKER_SYSTEM %d\n", IPCB_BROKER_SYSTEM);
        printf("const BROKER_USER %d\n", IPCB_BROKER_USER);
        printf("const WATCH_CREATED %u\n", IPCB_WATCH_CREATED);
        printf("const WATCH_UNLINKED %u\n", IPCB_WATCH_UNLINKED);
        printf("const WATCH_DESTROYED %u\n", IPCB_WATCH_DESTROYED);
        printf("const WATCH_ACCESS %u\n", IPCB_WATCH_ACCESS);
        printf("const WATCH_FROZEN %u\n", IPCB_WATCH_FROZEN);
        printf("const WATCH_OWNER_DIED %u\n", IPCB_WATCH_OWNER_DIED);
        printf("const WATCH_ALL %u\n", IPCB_WATCH_ALL);
        printf("const WATCH_OVERFLOW %u\n", IPCB_WATCH_OVERFLOW);
        printf("const WATCH_PREFIX %u\n", IPCB_WATCH_PREFIX);
        return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cxx_header.cpp: ipcbroker.h used from C++17 (built with -Wall -Wextra
 * -pedantic -Werror by cxx_header.sh): every *_INIT macro gives the values
 * the C header documents, and the library works with them against a real
 * broker ($IPCBROKER_SOCKET). */
#include <ipcbroker.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <type_traits>

static int failures;

#define CHECK(cond)                                                                    \
        do {                                                                           \
                if (!(cond)) {                                                         \
                        std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond); \
                        failures++;                                                    \
                }                                                                      \
        } while (0)

static_assert(std::is_standard_layout<ipcb_shm_options>::value, "C layout");
static_assert(std::is_trivially_copyable<ipcb_object_info>::value, "C layout");

static int count_cb(const ipcb_object_info *info, void *userdata) {
        if (std::strcmp(info->name, "cxx.seg") == 0)
                ++*static_cast<int *>(userdata);
        return 0;
}

int main() {
        /* The macros, in declarations and as temporaries. */
        ipcb_shm_options so = IPCB_SHM_OPTIONS_INIT;
        ipcb_open_options oo = IPCB_OPEN_OPTIONS_INIT;
        ipcb_sem_options sm = IPCB_SEM_OPTIONS_INIT;
        ipcb_access acc = IPCB_ACCESS_INIT;
        const ipcb_shm_options copy = ipcb_shm_options(IPCB_SHM_OPTIONS_INIT);

        CHECK(so.struct_size == sizeof(ipcb_shm_options) && so.mode == 0600 && so.flags == 0);
        CHECK(copy.struct_size == so.struct_size && copy.mode == so.mode);
        CHECK(oo.struct_size == sizeof(ipcb_open_options) && oo.flags == 0 &&
              oo.owner == IPCB_OWNER_SELF);
        CHECK(sm.struct_size == sizeof(ipcb_sem_options) && sm.mode == 0600 && sm.flags == 0 &&
              sm.max == 0);
        CHECK(acc.struct_size == sizeof(ipcb_access) && acc.what == 0 && acc.mode == 0 &&
              acc.uid == 0 && acc.gid == 0);

        ipcb_client *c = nullptr;
        int k = ipcb_connect(nullptr, &c);
        if (k < 0) {
                std::fprintf(stderr, "ipcb_connect: %s\n", ipcb_strerror(k));
                return 1;
        }

        ipcb_shm *s = nullptr, *r = nullptr;
        so.flags = IPCB_SHM_PERSISTENT;
        so.mode = 0644;
        CHECK(ipcb_shm_create(c, "cxx.seg", 4096, &so, &s) == 0);
        if (s)
                std::memcpy(ipcb_shm_data(s), "c++", 4);
        oo.flags = IPCB_OPEN_OWNED;
        CHECK(ipcb_shm_open_ex(c, "cxx.seg", IPCB_READ_ONLY, &oo, &r) == 0);
        if (r) {
                CHECK(std::memcmp(ipcb_shm_data(r), "c++", 4) == 0);
                CHECK(ipcb_shm_access(r) == IPCB_READ_ONLY);
        }

        acc.what = IPCB_ACCESS_MODE;
        acc.mode = 0600;
        CHECK(ipcb_set_access(c, IPCB_KIND_SHM, "cxx.seg", &acc) == 0);
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        CHECK(ipcb_stat(c, IPCB_KIND_SHM, "cxx.seg", &info) == 0 && info.mode == 0600 &&
              (info.flags & IPCB_SHM_PERSISTENT));
        int seen = 0;
        CHECK(ipcb_list(c, IPCB_KIND_SHM, count_cb, &seen) == 0 && seen == 1);

        ipcb_sem *sem = nullptr;
        sm.max = 2;
        sm.flags = IPCB_SEM_UNDO;
        CHECK(ipcb_sem_create(c, "cxx.sem", 1, &sm, &sem) == 0);
        CHECK(ipcb_sem_create(c, "cxx.sem", 1, &sm, &sem) == -EEXIST);
        CHECK(ipcb_sem_acquire(sem) == 0 && ipcb_sem_held(sem) == 1 && ipcb_sem_value(sem) == 0);
        CHECK(ipcb_sem_release(sem, 3) == -EOVERFLOW);
        CHECK(ipcb_sem_release(sem, 1) == 0 && ipcb_sem_value(sem) == 1);

        CHECK(ipcb_shm_close(r) == 0);
        CHECK(ipcb_shm_close(s) == 0);
        CHECK(ipcb_sem_close(sem) == 0);
        CHECK(ipcb_unlink(c, "cxx.seg") == 0);
        CHECK(ipcb_stat(c, IPCB_KIND_SEM, "cxx.sem", &info) == -ENOENT); /* transient: gone */
        ipcb_disconnect(c);
        if (failures == 0)
                std::printf("C++17: the header and its INIT macros work\n");
        return failures ? 1 : 0;
}

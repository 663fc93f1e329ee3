/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cases_qt.cpp: the Qt 6 rows, built only when pkg-config finds Qt6Core
 * (bench/CMakeLists.txt).  QSystemSemaphore acquire+release and
 * QSharedMemory lock+unlock, uncontended, in this process: the calls
 * ipcb_sem and ipcb_shm_lock are meant to replace.  On Linux, Qt 6.4 builds
 * both on System V semaphores with SEM_UNDO (unless Qt itself was built with
 * QT_POSIX_IPC), so expect SysV's cost. */
#include "bench.h"

#include <QSharedMemory>
#include <QString>
#include <QSystemSemaphore>
#include <QtGlobal>

#include <cerrno>
#include <cstdio>
#include <new>
#include <unistd.h>

namespace {

QString qt_key(const char *what) {
        static unsigned rows;
        return QStringLiteral("ipcb-bench.qt.%1.%2.%3")
                .arg(QLatin1StringView(what))
                .arg(getpid())
                .arg(++rows);
}

int qsem_setup(const bench_env *, void **ret_state) {
        auto *s = new (std::nothrow) QSystemSemaphore(qt_key("sem"), 1, QSystemSemaphore::Create);

        if (!s)
                return -ENOMEM;
        if (s->error() != QSystemSemaphore::NoError) {
                std::fprintf(stderr, "ipcb_bench: QSystemSemaphore: %s\n",
                             qPrintable(s->errorString()));
                delete s;
                return -EIO;
        }
        *ret_state = s;
        return 0;
}

void qsem_teardown(void *state) {
        delete static_cast<QSystemSemaphore *>(state);
}

int run_qsem(void *state, unsigned n) {
        auto *s = static_cast<QSystemSemaphore *>(state);

        for (unsigned i = 0; i < n; i++)
                if (!s->acquire() || !s->release())
                        return -EIO;
        return 0;
}

int qshm_setup(const bench_env *, void **ret_state) {
        auto *m = new (std::nothrow) QSharedMemory(qt_key("shm"));

        if (!m)
                return -ENOMEM;
        if (!m->create(4096)) {
                std::fprintf(stderr, "ipcb_bench: QSharedMemory::create: %s\n",
                             qPrintable(m->errorString()));
                delete m;
                return -EIO;
        }
        *ret_state = m;
        return 0;
}

void qshm_teardown(void *state) {
        delete static_cast<QSharedMemory *>(state);
}

int run_qshm_lock(void *state, unsigned n) {
        auto *m = static_cast<QSharedMemory *>(state);

        for (unsigned i = 0; i < n; i++)
                if (!m->lock() || !m->unlock())
                        return -EIO;
        return 0;
}

} // namespace

extern "C" {

const bench_case qt_cases[] = {
        { "qt.sem.pair", "(f) Qt " QT_VERSION_STR,
          "(ref) QSystemSemaphore acquire()+release(), uncontended",
          qsem_setup, run_qsem, qsem_teardown },
        { "qt.shm.lock", "(f) Qt " QT_VERSION_STR,
          "(ref) QSharedMemory lock()+unlock(), uncontended",
          qshm_setup, run_qshm_lock, qshm_teardown },
        {},
};

const bench_ratio qt_ratios[] = {
        { "(ref) acquire+release: QSystemSemaphore / ipcb_sem undo handle", "qt.sem.pair",
          "sem.pair.undo", 0 },
        { "(ref) lock+unlock: QSharedMemory / ipcb_shm_lock", "qt.shm.lock", "lock.pair", 0 },
        {},
};

} // extern "C"

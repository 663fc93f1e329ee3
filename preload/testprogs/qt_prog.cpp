// SPDX-License-Identifier: LGPL-2.1-or-later
// qt_prog.cpp: an unchanged Qt 6 program using QSharedMemory and
// QSystemSemaphore (System V underneath in Qt 6.4 on Linux) that
// tests/test_preload_qt.c runs under ipcbroker-run.  Commands:
//   serve KEY READYFILE   create the segment, write "hello" under its lock,
//                         create READYFILE, wait (20 s) until another
//                         process wrote "world", detach; exit 0
//   hold KEY READYFILE    create the segment, take its lock, create
//                         READYFILE, sleep until killed
//   attach KEY            attach, lock, find "hello", write "world", detach
//   attach-any KEY        attach and lock (within 10 s), detach
//   sem KEY READYFILE     QSystemSemaphore(KEY, 1, Create): acquire, create
//                         READYFILE, sleep until killed
//   sem-take KEY          QSystemSemaphore(KEY, 0, Open): acquire, release
#include <QSharedMemory>
#include <QSystemSemaphore>
#include <QThread>
#include <cstdio>
#include <cstring>
#include <unistd.h>

static int fail(const char *what, const QString &why) {
    std::fprintf(stderr, "qt_prog: %s: %s\n", what, qPrintable(why));
    return 1;
}

static void ready(const char *path) {
    FILE *f = std::fopen(path, "w");
    if (f)
        std::fclose(f);
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    const QString key = QString::fromUtf8(argv[2]);
    const char *cmd = argv[1];
    QSharedMemory shm(key);

    if (!std::strcmp(cmd, "serve") || !std::strcmp(cmd, "hold")) {
        if (argc < 4)
            return 2;
        if (!shm.create(4096))
            return fail("create", shm.errorString());
        if (!shm.lock())
            return fail("lock", shm.errorString());
        std::strcpy(static_cast<char *>(shm.data()), "hello");
        if (!std::strcmp(cmd, "hold")) {
            ready(argv[3]);
            for (;;)
                pause();
        }
        shm.unlock();
        ready(argv[3]);
        for (int i = 0; i < 2000; i++) {
            shm.lock();
            bool done = !std::strcmp(static_cast<char *>(shm.data()), "world");
            shm.unlock();
            if (done)
                return shm.detach() ? 0 : fail("detach", shm.errorString());
            QThread::msleep(10);
        }
        return fail("serve", QStringLiteral("nobody wrote"));
    }
    if (!std::strcmp(cmd, "attach") || !std::strcmp(cmd, "attach-any")) {
        if (!shm.attach())
            return fail("attach", shm.errorString());
        if (!shm.lock())
            return fail("lock", shm.errorString());
        if (!std::strcmp(cmd, "attach")) {
            if (std::strcmp(static_cast<char *>(shm.data()), "hello"))
                return fail("attach", QStringLiteral("no hello"));
            std::strcpy(static_cast<char *>(shm.data()), "world");
        }
        shm.unlock();
        return shm.detach() ? 0 : fail("detach", shm.errorString());
    }
    if (!std::strcmp(cmd, "sem")) {
        if (argc < 4)
            return 2;
        QSystemSemaphore sem(key, 1, QSystemSemaphore::Create);
        if (!sem.acquire())
            return fail("acquire", sem.errorString());
        ready(argv[3]);
        for (;;)
            pause();
    }
    if (!std::strcmp(cmd, "sem-take")) {
        QSystemSemaphore sem(key, 0, QSystemSemaphore::Open);
        if (!sem.acquire())
            return fail("acquire", sem.errorString());
        return sem.release() ? 0 : fail("release", sem.errorString());
    }
    return 2;
}

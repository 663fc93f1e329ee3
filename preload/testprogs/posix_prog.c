/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* posix_prog.c: a plain POSIX shared-memory and semaphore program (no
 * ipcbroker header, nothing but libc) that tests/test_preload_posix.c runs
 * under ipcbroker-run, as root and as other uids.  One command per run;
 * exit 0 when every check of the command held, else 1 with the reason on
 * stderr. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                                \
        do {                                                                            \
                if (!(cond)) {                                                          \
                        fprintf(stderr, "posix_prog %s:%d: %s: ", cmd, __LINE__, #cond); \
                        fprintf(stderr, __VA_ARGS__);                                   \
                        fprintf(stderr, " (errno %s)\n", strerror(errno));              \
                        return 1;                                                       \
                }                                                                       \
        } while (0)

static const char *cmd = "";

/* create NAME SIZE TEXT [MODE]: a new segment holding TEXT. */
static int do_create(char **a) {
        size_t size = strtoul(a[1], NULL, 0);
        mode_t mode = a[3] ? (mode_t)strtoul(a[3], NULL, 8) : 0600;
        int fd = shm_open(a[0], O_CREAT | O_EXCL | O_RDWR, mode);
        struct stat st;
        char *p;

        CHECK(fd >= 0, "shm_open(%s)", a[0]);
        CHECK(fcntl(fd, F_GETFD) == FD_CLOEXEC, "close-on-exec");
        CHECK(fstat(fd, &st) == 0 && st.st_size == 0, "new segment empty");
        CHECK(ftruncate(fd, (off_t)size) == 0, "ftruncate %zu", size);
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(p != MAP_FAILED, "mmap");
        strcpy(p, a[2]);
        CHECK(close(fd) == 0, "close");
        return 0;
}

/* read NAME TEXT: open read-only, find TEXT; writing must be impossible. */
static int do_read(char **a) {
        int fd = shm_open(a[0], O_RDONLY, 0);
        struct stat st;
        char *p;

        CHECK(fd >= 0, "shm_open(%s, O_RDONLY)", a[0]);
        CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY, "O_RDONLY description");
        CHECK(fstat(fd, &st) == 0 && st.st_size > 0, "size");
        p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        CHECK(p != MAP_FAILED, "mmap");
        CHECK(strcmp(p, a[1]) == 0, "content '%.20s'", p);
        CHECK(mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) ==
                      MAP_FAILED && errno == EACCES, "writable map of a read-only fd");
        CHECK(mprotect(p, (size_t)st.st_size, PROT_READ | PROT_WRITE) < 0, "mprotect");
        CHECK(write(fd, "x", 1) < 0 && errno == EBADF, "write");
        CHECK(ftruncate(fd, st.st_size * 2) < 0, "ftruncate");
        close(fd);
        return 0;
}

/* expect-errno NAME OFLAG ERRNO: shm_open fails so. */
static int do_open_fails(char **a) {
        int fd = shm_open(a[0], (int)strtol(a[1], NULL, 0), 0600);
        int want = atoi(a[2]);

        CHECK(fd < 0 && errno == want, "shm_open(%s) = %d, want errno %d", a[0], fd, want);
        return 0;
}

static int do_unlink(char **a) {
        CHECK(shm_unlink(a[0]) == 0, "shm_unlink(%s)", a[0]);
        CHECK(shm_unlink(a[0]) < 0 && errno == ENOENT, "second shm_unlink");
        return 0;
}

/* semantics: POSIX behaviour of shm_open beyond create and read. */
static int do_semantics(char **a) {
        const char *n = a[0];
        struct stat st;
        char *p, *q;
        int fd, fd2;

        (void)a;
        fd = shm_open(n, O_CREAT | O_EXCL | O_RDWR, 0666);
        CHECK(fd >= 0, "create");
        CHECK(shm_open(n, O_CREAT | O_EXCL | O_RDWR, 0666) < 0 && errno == EEXIST, "EEXIST");
        fd2 = shm_open(n, O_CREAT | O_RDWR, 0666); /* create-or-open opens */
        CHECK(fd2 >= 0, "O_CREAT of an existing one");
        CHECK(ftruncate(fd, 4096) == 0, "grow");
        CHECK(fstat(fd2, &st) == 0 && st.st_size == 4096, "same segment, %ld", (long)st.st_size);
        CHECK(ftruncate(fd, 8192) == 0, "grow again");
        p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        q = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
        CHECK(p != MAP_FAILED && q != MAP_FAILED, "mmap");
        p[5000] = 42;
        CHECK(q[5000] == 42, "shared");
        CHECK(ftruncate(fd, 100) < 0 && errno == EPERM, "shrink refused (F_SEAL_SHRINK)");
        CHECK(shm_open(n, O_RDWR | O_TRUNC, 0) < 0 && errno == EPERM, "O_TRUNC of a non-empty one");
        CHECK(shm_open(n, O_WRONLY, 0) < 0 && errno == EINVAL, "O_WRONLY");
        CHECK(shm_open("/a/b", O_RDWR, 0) < 0 && errno == EINVAL, "slash inside");
        CHECK(shm_open("/", O_RDWR, 0) < 0 && errno == EINVAL, "empty");
        CHECK(shm_open("/does-not-exist", O_RDWR, 0) < 0 && errno == ENOENT, "ENOENT");
        close(fd);
        close(fd2);
        /* the fds are gone, the segment stays (persistent) until unlinked */
        fd = shm_open(n, O_RDWR, 0);
        CHECK(fd >= 0, "reopen after close");
        CHECK(fstat(fd, &st) == 0 && st.st_size == 8192, "size kept");
        CHECK(shm_unlink(n) == 0, "unlink");
        CHECK(shm_open(n, O_RDWR, 0) < 0 && errno == ENOENT, "gone");
        CHECK(p[5000] == 42, "mapping survives unlink");
        /* an empty segment takes O_TRUNC */
        fd2 = shm_open(n, O_CREAT | O_RDWR | O_TRUNC, 0600);
        CHECK(fd2 >= 0, "O_TRUNC on creation");
        CHECK(shm_open(n, O_RDWR | O_TRUNC, 0) >= 0, "O_TRUNC of an empty one");
        CHECK(shm_unlink(n) == 0, "unlink");
        return 0;
}

static sem_t *sem_get(const char *name, int create, unsigned value) {
        return create ? sem_open(name, O_CREAT, 0666, value) : sem_open(name, 0);
}

/* sem-wait NAME SECONDS: sem_timedwait on an existing semaphore. */
static int do_sem_wait(char **a) {
        sem_t *s = sem_get(a[0], 0, 0);
        struct timespec ts;

        CHECK(s != SEM_FAILED, "sem_open(%s)", a[0]);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += atoi(a[1]);
        CHECK(sem_timedwait(s, &ts) == 0, "sem_timedwait");
        CHECK(sem_close(s) == 0, "sem_close");
        return 0;
}

/* sem-post NAME: one post. */
static int do_sem_post(char **a) {
        sem_t *s = sem_get(a[0], 0, 0);

        CHECK(s != SEM_FAILED, "sem_open(%s)", a[0]);
        CHECK(sem_post(s) == 0, "sem_post");
        CHECK(sem_close(s) == 0, "sem_close");
        return 0;
}

/* sem-create NAME VALUE */
static int do_sem_create(char **a) {
        sem_t *s = sem_open(a[0], O_CREAT | O_EXCL, 0666, (unsigned)atoi(a[1]));
        int v;

        CHECK(s != SEM_FAILED, "sem_open(%s, O_CREAT|O_EXCL)", a[0]);
        CHECK(sem_getvalue(s, &v) == 0 && v == atoi(a[1]), "value %d", v);
        CHECK(sem_open(a[0], O_CREAT | O_EXCL, 0666, 0) == SEM_FAILED && errno == EEXIST,
              "EEXIST");
        CHECK(sem_open(a[0], 0) == s, "a second open gives the same sem_t");
        CHECK(sem_close(s) == 0 && sem_close(s) == 0, "sem_close twice (two opens)");
        return 0;
}

/* sem-value NAME N */
static int do_sem_value(char **a) {
        sem_t *s = sem_get(a[0], 0, 0);
        int v = -1;

        CHECK(s != SEM_FAILED, "sem_open(%s)", a[0]);
        CHECK(sem_getvalue(s, &v) == 0 && v == atoi(a[1]), "value %d, want %s", v, a[1]);
        sem_close(s);
        return 0;
}

static int do_sem_unlink(char **a) {
        CHECK(sem_unlink(a[0]) == 0, "sem_unlink(%s)", a[0]);
        CHECK(sem_open(a[0], 0) == SEM_FAILED && errno == ENOENT, "gone");
        return 0;
}

/* fork NAME: a semaphore inherited across fork works in the child, and
 * the child's own calls reach the broker on its own connection. */
static int do_fork(char **a) {
        char child_name[300];
        sem_t *s = sem_open(a[0], O_CREAT | O_EXCL, 0600, 0);
        int status, v;
        pid_t pid;

        CHECK(s != SEM_FAILED, "sem_open");
        snprintf(child_name, sizeof(child_name), "%s-child", a[0]);
        pid = fork();
        CHECK(pid >= 0, "fork");
        if (pid == 0) {
                sem_t *t = sem_open(child_name, O_CREAT | O_EXCL, 0600, 3);
                int fd = shm_open(child_name, O_CREAT | O_EXCL | O_RDWR, 0600);
                if (t == SEM_FAILED || fd < 0 || ftruncate(fd, 4096) < 0)
                        _exit(10);
                sem_post(s); /* the inherited one */
                sem_close(s);
                sem_close(t);
                _exit(0);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 10;
        CHECK(sem_timedwait(s, &ts) == 0, "the child's post");
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child status %x", status);
        sem_t *t = sem_open(child_name, 0);
        CHECK(t != SEM_FAILED && sem_getvalue(t, &v) == 0 && v == 3, "the child's semaphore");
        CHECK(shm_unlink(child_name) == 0, "the child's segment");
        sem_close(t);
        sem_close(s);
        CHECK(sem_unlink(child_name) == 0 && sem_unlink(a[0]) == 0, "sem_unlink");
        return 0;
}

/* crash NAME: create a segment and a semaphore, then die by SIGKILL. */
static int do_crash(char **a) {
        int fd = shm_open(a[0], O_CREAT | O_EXCL | O_RDWR, 0600);
        sem_t *s = sem_open(a[0], O_CREAT | O_EXCL, 0600, 1);

        CHECK(fd >= 0 && s != SEM_FAILED, "create");
        CHECK(ftruncate(fd, 65536) == 0, "ftruncate");
        close(fd); /* closed: only the shim's handle holds it now */
        sem_wait(s);
        kill(getpid(), SIGKILL);
        return 1;
}

/* kernel NAME: shm_open + sem_open work and are the kernel's (/dev/shm). */
static int do_kernel(char **a) {
        char path[300];
        struct stat st;
        int fd = shm_open(a[0], O_CREAT | O_EXCL | O_RDWR, 0600);
        sem_t *s;

        CHECK(fd >= 0, "shm_open");
        snprintf(path, sizeof(path), "/dev/shm%s", a[0]);
        CHECK(stat(path, &st) == 0, "%s exists", path);
        s = sem_open(a[0], O_CREAT | O_EXCL, 0600, 2);
        CHECK(s != SEM_FAILED, "sem_open");
        snprintf(path, sizeof(path), "/dev/shm/sem.%s", a[0] + 1);
        CHECK(stat(path, &st) == 0, "%s exists", path);
        CHECK(sem_wait(s) == 0 && sem_close(s) == 0, "sem_wait, sem_close");
        CHECK(shm_unlink(a[0]) == 0 && sem_unlink(a[0]) == 0, "unlink");
        close(fd);
        return 0;
}

/* fails NAME ERRNO: shm_open, shm_unlink, sem_open, sem_unlink all fail so. */
static int do_fails(char **a) {
        int want = atoi(a[1]);

        CHECK(shm_open(a[0], O_CREAT | O_RDWR, 0600) < 0 && errno == want, "shm_open");
        CHECK(shm_unlink(a[0]) < 0 && errno == want, "shm_unlink");
        CHECK(sem_open(a[0], O_CREAT, 0600, 1) == SEM_FAILED && errno == want, "sem_open");
        CHECK(sem_unlink(a[0]) < 0 && errno == want, "sem_unlink");
        return 0;
}

static void *thread_main(void *arg) {
        const char *base = arg;
        char name[300];
        static _Atomic int serial;

        for (int i = 0; i < 40; i++) {
                snprintf(name, sizeof(name), "%s-%d", base, serial++);
                int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
                if (fd < 0 || ftruncate(fd, 4096) < 0)
                        return (void *)1;
                int *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                close(fd);
                if (p == MAP_FAILED)
                        return (void *)1;
                *p = i;
                sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, 1);
                if (s == SEM_FAILED || sem_wait(s) < 0 || sem_post(s) < 0 || sem_close(s) < 0 ||
                    sem_unlink(name) < 0 || shm_unlink(name) < 0)
                        return (void *)1;
                munmap(p, 4096);
        }
        return NULL;
}

/* threads BASE: 8 threads creating, using and removing objects at once. */
static int do_threads(char **a) {
        pthread_t t[8];
        void *ret;
        int bad = 0;

        for (int i = 0; i < 8; i++)
                CHECK(pthread_create(&t[i], NULL, thread_main, a[0]) == 0, "pthread_create");
        for (int i = 0; i < 8; i++) {
                pthread_join(t[i], &ret);
                bad += ret != NULL;
        }
        CHECK(bad == 0, "%d threads failed", bad);
        return 0;
}

/* unlink-fails NAME ERRNO: shm_unlink and sem_unlink both fail so. */
static int do_unlink_fails(char **a) {
        int want = atoi(a[1]);

        CHECK(shm_unlink(a[0]) < 0 && errno == want, "shm_unlink");
        CHECK(sem_unlink(a[0]) < 0 && errno == want, "sem_unlink");
        return 0;
}

/* sem-open-fails NAME ERRNO: sem_open (create-or-open) fails so. */
static int do_sem_open_fails(char **a) {
        CHECK(sem_open(a[0], O_CREAT, 0600, 1) == SEM_FAILED && errno == atoi(a[1]), "sem_open");
        return 0;
}

/* sem-nomemfd NAME: with memfd_create forbidden (seccomp: EPERM), as in a
 * sandbox, a semaphore is still created and works. */
static int do_sem_nomemfd(char **a) {
        struct sock_filter f[] = {
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_memfd_create, 0, 1),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
        sem_t *s;
        int v;

        CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
              prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0, "seccomp");
        CHECK(memfd_create("x", 0) < 0 && errno == EPERM, "memfd_create forbidden");
        s = sem_open(a[0], O_CREAT | O_EXCL, 0600, 2);
        CHECK(s != SEM_FAILED, "sem_open");
        CHECK(sem_wait(s) == 0 && sem_getvalue(s, &v) == 0 && v == 1, "sem_wait");
        CHECK(sem_close(s) == 0 && sem_unlink(a[0]) == 0, "sem_close, sem_unlink");
        return 0;
}

/* exec PROGRAM ARGS: exec (the environment carries over). */
static int do_exec(char **a) {
        execv(a[0], a);
        CHECK(0, "execv %s", a[0]);
}

int main(int argc, char **argv) {
        static const struct {
                const char *name;
                int nargs;
                int (*fn)(char **);
        } cmds[] = {
                { "create", 3, do_create },       { "read", 2, do_read },
                { "open-fails", 3, do_open_fails }, { "unlink", 1, do_unlink },
                { "semantics", 1, do_semantics }, { "sem-wait", 2, do_sem_wait },
                { "sem-post", 1, do_sem_post },   { "sem-create", 2, do_sem_create },
                { "sem-value", 2, do_sem_value }, { "sem-unlink", 1, do_sem_unlink },
                { "fork", 1, do_fork },           { "crash", 1, do_crash },
                { "kernel", 1, do_kernel },       { "fails", 2, do_fails },
                { "exec", 1, do_exec },           { "threads", 1, do_threads },
                { "unlink-fails", 2, do_unlink_fails },
                { "sem-open-fails", 2, do_sem_open_fails },
                { "sem-nomemfd", 1, do_sem_nomemfd },
        };

        if (argc < 2)
                return 2;
        cmd = argv[1];
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
                if (strcmp(cmds[i].name, cmd) == 0) {
                        if (argc - 2 < cmds[i].nargs)
                                return 2;
                        return cmds[i].fn(argv + 2);
                }
        return 2;
}

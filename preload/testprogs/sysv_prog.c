/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sysv_prog.c: a plain System V shared-memory and semaphore program (no
 * ipcbroker header, libc only) that tests/test_preload_sysv.c runs under
 * ipcbroker-run, as root and as other uids.  One command per run; exit 0
 * when every check held, else 1 with the reason on stderr.  Keys are given
 * in hex. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                                \
        do {                                                                            \
                if (!(cond)) {                                                          \
                        fprintf(stderr, "sysv_prog %s:%d: %s: ", cmd, __LINE__, #cond);  \
                        fprintf(stderr, __VA_ARGS__);                                   \
                        fprintf(stderr, " (errno %s)\n", strerror(errno));              \
                        return 1;                                                       \
                }                                                                       \
        } while (0)

union semun {
        int val;
        struct semid_ds *buf;
        unsigned short *array;
};

static const char *cmd = "";

static key_t key_arg(const char *s) {
        return (key_t)strtoul(s, NULL, 16);
}

static unsigned long nattch(int id) {
        struct shmid_ds ds;
        if (shmctl(id, IPC_STAT, &ds) < 0)
                return 9999;
        return (unsigned long)ds.shm_nattch;
}

/* shm-create KEY SIZE TEXT MODE */
static int do_shm_create(char **a) {
        key_t key = key_arg(a[0]);
        size_t size = strtoul(a[1], NULL, 0);
        int id = shmget(key, size, IPC_CREAT | IPC_EXCL | (int)strtoul(a[3], NULL, 8));
        struct shmid_ds ds;
        char *p;

        CHECK(id >= 0, "shmget");
        CHECK(shmget(key, 0, 0) == id, "the same id again");
        CHECK(shmget(key, size, IPC_CREAT | IPC_EXCL | 0600) < 0 && errno == EEXIST, "EEXIST");
        CHECK(shmget(key, size + 1, 0) < 0 && errno == EINVAL, "larger than it is");
        p = shmat(id, NULL, 0);
        CHECK(p != (void *)-1, "shmat");
        strcpy(p, a[2]);
        CHECK(shmctl(id, IPC_STAT, &ds) == 0, "IPC_STAT");
        CHECK(ds.shm_segsz == size && ds.shm_nattch == 1 && ds.shm_perm.__key == key,
              "stat: size %zu nattch %lu", (size_t)ds.shm_segsz, (unsigned long)ds.shm_nattch);
        CHECK(shmdt(p) == 0, "shmdt");
        CHECK(nattch(id) == 0, "nattch after shmdt %lu", nattch(id));
        return 0;
}

/* shm-read KEY TEXT: attach read-only and find TEXT; writing attach fails
 * with EACCES when EXPECT_RO is given. */
static int do_shm_read(char **a) {
        int id = shmget(key_arg(a[0]), 0, 0);
        char *p;

        CHECK(id >= 0, "shmget");
        p = shmat(id, NULL, SHM_RDONLY);
        CHECK(p != (void *)-1, "shmat(SHM_RDONLY)");
        CHECK(strcmp(p, a[1]) == 0, "content '%.20s'", p);
        CHECK(nattch(id) >= 1, "attached");
        if (a[2])
                CHECK(shmat(id, NULL, 0) == (void *)-1 && errno == EACCES, "read-write attach");
        CHECK(shmdt(p) == 0, "shmdt");
        return 0;
}

static int do_shm_rmid(char **a) {
        int id = shmget(key_arg(a[0]), 0, 0);

        CHECK(id >= 0, "shmget");
        CHECK(shmctl(id, IPC_RMID, NULL) == 0, "IPC_RMID");
        CHECK(shmget(key_arg(a[0]), 0, 0) < 0 && errno == ENOENT, "gone");
        return 0;
}

/* shm-semantics: private segments, several attachments, fork, IPC_RMID
 * while attached, what is not served. */
static int do_shm_semantics(char **a) {
        int id = shmget(IPC_PRIVATE, 10000, IPC_CREAT | 0600), id2, status;
        char *p, *q;
        pid_t pid;

        (void)a;
        CHECK(id >= 0, "IPC_PRIVATE");
        id2 = shmget(IPC_PRIVATE, 100, 0600);
        CHECK(id2 >= 0 && id2 != id, "a second private one");
        CHECK(shmget(0x7e57, 100, 0) < 0 && errno == ENOENT, "ENOENT without IPC_CREAT");
        CHECK(shmget(0x7e57, 0, IPC_CREAT | 0600) < 0 && errno == EINVAL, "size 0 creates nothing");
        p = shmat(id, NULL, 0);
        q = shmat(id, NULL, 0);
        CHECK(p != (void *)-1 && q != (void *)-1 && p != q, "two attachments");
        CHECK(nattch(id) == 2, "nattch %lu", nattch(id));
        p[9999] = 5;
        CHECK(q[9999] == 5, "shared");
        pid = fork();
        if (pid == 0) {
                p[0] = 'c';
                _exit(shmdt(p) == 0 ? 0 : 3);
        }
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child");
        CHECK(q[0] == 'c', "the child wrote through its inherited attachment");
        /* at a given address: where q is now, once q is detached */
        char *r = shmat(id, NULL, 0);
        CHECK(r != (void *)-1 && shmdt(r) == 0, "attach, detach");
        CHECK(shmat(id, p, 0) == (void *)-1 && errno == EINVAL, "over an attachment");
        CHECK(shmat(id, r + 1, 0) == (void *)-1 && errno == EINVAL, "unaligned");
        CHECK(shmat(id, r + 1, SHM_RND) == r, "SHM_RND");
        CHECK(r[9999] == 5 && shmdt(r) == 0, "the same segment there");
        CHECK(shmctl(id, IPC_SET, NULL) < 0 && errno == ENOSYS, "IPC_SET");
        CHECK(shmctl(id, IPC_RMID, NULL) == 0, "IPC_RMID while attached");
        CHECK(q[9999] == 5, "still mapped");
        CHECK(shmat(id, NULL, 0) == (void *)-1 && errno == EINVAL, "no new attach");
        CHECK(shmdt(p) == 0 && shmdt(q) == 0, "shmdt");
        CHECK(shmdt(q) < 0 && errno == EINVAL, "shmdt twice");
        CHECK(shmctl(id2, IPC_RMID, NULL) == 0, "IPC_RMID");
        return 0;
}

/* sem-create KEY VALUE MODE */
static int do_sem_create(char **a) {
        key_t key = key_arg(a[0]);
        int id = semget(key, 1, IPC_CREAT | IPC_EXCL | (int)strtoul(a[2], NULL, 8));
        union semun arg = { .val = atoi(a[1]) };
        struct semid_ds ds;
        union semun sarg = { .buf = &ds };

        CHECK(id >= 0, "semget");
        CHECK(semget(key, 1, 0) == id, "the same id");
        CHECK(semctl(id, 0, GETVAL) == 0, "a new set is 0");
        CHECK(semctl(id, 0, SETVAL, arg) == 0, "SETVAL");
        CHECK(semctl(id, 0, GETVAL) == arg.val, "GETVAL");
        CHECK(semctl(id, 0, IPC_STAT, sarg) == 0 && ds.sem_nsems == 1 && ds.sem_perm.__key == key,
              "IPC_STAT");
        return 0;
}

/* sem-value KEY N */
static int do_sem_value(char **a) {
        int id = semget(key_arg(a[0]), 1, 0), v;

        CHECK(id >= 0, "semget");
        v = semctl(id, 0, GETVAL);
        CHECK(v == atoi(a[1]), "value %d, want %s", v, a[1]);
        return 0;
}

/* sem-hold KEY: take one token with SEM_UNDO, say so on stdout, wait to
 * be killed. */
static int do_sem_hold(char **a) {
        int id = semget(key_arg(a[0]), 1, 0);
        struct sembuf op = { 0, -1, SEM_UNDO };

        CHECK(id >= 0, "semget");
        CHECK(semop(id, &op, 1) == 0, "semop -1 SEM_UNDO");
        printf("held\n");
        fflush(stdout);
        for (;;)
                pause();
}

/* sem-take KEY SECONDS: take one token with SEM_UNDO within SECONDS, and
 * give it back. */
static int do_sem_take(char **a) {
        int id = semget(key_arg(a[0]), 1, 0);
        struct sembuf down = { 0, -1, SEM_UNDO }, up = { 0, 1, SEM_UNDO };
        struct timespec ts = { .tv_sec = atoi(a[1]) };

        CHECK(id >= 0, "semget");
        CHECK(semtimedop(id, &down, 1, &ts) == 0, "semtimedop");
        CHECK(semop(id, &up, 1) == 0, "semop +1");
        return 0;
}

static int do_sem_rmid(char **a) {
        int id = semget(key_arg(a[0]), 1, 0);

        CHECK(id >= 0, "semget");
        CHECK(semctl(id, 0, IPC_RMID) == 0, "IPC_RMID");
        CHECK(semget(key_arg(a[0]), 1, 0) < 0 && errno == ENOENT, "gone");
        return 0;
}

/* rmid-fails KEY ERRNO: IPC_RMID of the segment and of the semaphore of
 * KEY both fail so (the objects stay). */
static int do_rmid_fails(char **a) {
        int shm = shmget(key_arg(a[0]), 0, 0), sem = semget(key_arg(a[0]), 1, 0);

        CHECK(shm >= 0 && sem >= 0, "shmget, semget");
        CHECK(shmctl(shm, IPC_RMID, NULL) < 0 && errno == atoi(a[1]), "shmctl(IPC_RMID)");
        CHECK(semctl(sem, 0, IPC_RMID) < 0 && errno == atoi(a[1]), "semctl(IPC_RMID)");
        CHECK(shmget(key_arg(a[0]), 0, 0) >= 0 && semget(key_arg(a[0]), 1, 0) >= 0, "still there");
        return 0;
}

/* sem-set KEY: a set of three; left in place for the test to look at. */
static int do_sem_set(char **a) {
        key_t key = key_arg(a[0]);
        int id = semget(key, 3, IPC_CREAT | IPC_EXCL | 0600), status;
        unsigned short all[3] = { 0 }, set[3] = { 1, 2, 3 };
        union semun arg = { .val = 5 }, aarg = { .array = all }, sarg = { .array = set };
        struct sembuf up1 = { 1, 1, 0 }, bad = { 3, 1, 0 };
        struct semid_ds ds;
        union semun darg = { .buf = &ds };
        pid_t pid;

        CHECK(id >= 0, "semget(3)");
        CHECK(semget(key, 0, 0) == id && semget(key, 3, 0) == id, "the same id");
        CHECK(semget(key, 4, 0) < 0 && errno == EINVAL, "a larger set");
        CHECK(semctl(id, 2, SETVAL, arg) == 0 && semctl(id, 2, GETVAL) == 5, "SETVAL 2");
        CHECK(semctl(id, 0, GETVAL) == 0, "member 0 untouched");
        CHECK(semctl(id, 3, GETVAL) < 0 && errno == EINVAL, "GETVAL 3");
        CHECK(semop(id, &up1, 1) == 0, "semop on member 1");
        CHECK(semop(id, &bad, 1) < 0 && errno == EFBIG, "semop on member 3");
        CHECK(semctl(id, 0, GETALL, aarg) == 0 && all[0] == 0 && all[1] == 1 && all[2] == 5,
              "GETALL %u %u %u", all[0], all[1], all[2]);
        CHECK(semctl(id, 0, SETALL, sarg) == 0, "SETALL");
        CHECK(semctl(id, 0, IPC_STAT, darg) == 0 && ds.sem_nsems == 3, "IPC_STAT nsems");
        /* SEM_UNDO on member 2, in a child that exits holding it */
        pid = fork();
        if (pid == 0) {
                struct sembuf d = { 2, -1, SEM_UNDO };
                _exit(semop(id, &d, 1) == 0 && semctl(id, 2, GETVAL) == 2 ? 0 : 3);
        }
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child %x", status);
        for (int i = 0; i < 500 && semctl(id, 2, GETVAL) != 3; i++)
                usleep(10000);
        CHECK(semctl(id, 0, GETALL, aarg) == 0 && all[0] == 1 && all[1] == 2 && all[2] == 3,
              "after the child: %u %u %u", all[0], all[1], all[2]);
        return 0;
}

/* get-fails KEY ERRNO: shmget and semget of KEY both fail so. */
static int do_get_fails(char **a) {
        int want = atoi(a[1]);

        CHECK(shmget(key_arg(a[0]), 4096, IPC_CREAT | 0600) < 0 && errno == want, "shmget");
        CHECK(semget(key_arg(a[0]), 1, IPC_CREAT | 0600) < 0 && errno == want, "semget");
        return 0;
}

static int sem_id;
static void *undo_thread(void *arg) {
        struct sembuf down = { 0, -1, SEM_UNDO }, up = { 0, 1, SEM_UNDO };
        (void)arg;
        for (int i = 0; i < 2000; i++)
                if (semop(sem_id, &down, 1) < 0 || semop(sem_id, &up, 1) < 0)
                        return (void *)1;
        return NULL;
}

/* A child reads GETVAL as fast as it can while this process switches the
 * value between 2 and 1000 with SETVAL and tries semop -3 (IPC_NOWAIT) at
 * 2: each is one step, so the child sees 2 and 1000 only (a SETVAL made
 * of single releases and acquires, or a -3 that takes 2 tokens before it
 * finds no third, would show values in between).  0, or 1 with the reason
 * on stderr. */
static int atomic_steps(int id) {
        struct sembuf three = { 0, -3, IPC_NOWAIT };
        union semun arg = { .val = 2 };
        int pipefd[2], status, bad = 0;
        pid_t pid;

        CHECK(semctl(id, 0, SETVAL, arg) == 0, "SETVAL 2");
        CHECK(pipe(pipefd) == 0, "pipe");
        pid = fork();
        if (pid == 0) {
                char x;
                close(pipefd[1]);
                if (fcntl(pipefd[0], F_SETFL, O_NONBLOCK) < 0)
                        _exit(3);
                for (;;) {
                        int v = semctl(id, 0, GETVAL);
                        if (v != 2 && v != 1000)
                                _exit(v < 0 ? 4 : 1);
                        if (read(pipefd[0], &x, 1) == 0)
                                _exit(0); /* the parent is done */
                }
        }
        close(pipefd[0]);
        for (int i = 0; i < 300; i++) {
                arg.val = 1000;
                CHECK(semctl(id, 0, SETVAL, arg) == 0, "SETVAL 1000");
                arg.val = 2;
                CHECK(semctl(id, 0, SETVAL, arg) == 0, "SETVAL 2");
                CHECK(semop(id, &three, 1) < 0 && errno == EAGAIN, "-3 at 2");
        }
        close(pipefd[1]);
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status), "watcher %x", status);
        if (WEXITSTATUS(status) != 0) {
                fprintf(stderr, "sysv_prog: the watcher saw a value in between (%d)\n",
                        WEXITSTATUS(status));
                bad = 1;
        }
        arg.val = 1;
        CHECK(semctl(id, 0, SETVAL, arg) == 0, "SETVAL 1");
        return bad;
}

/* sem-semantics KEY */
static int do_sem_semantics(char **a) {
        key_t key = key_arg(a[0]);
        struct sembuf down = { 0, -1, 0 }, up = { 0, 1, 0 }, zero = { 0, 0, IPC_NOWAIT };
        struct sembuf two[2] = { { 0, -1, 0 }, { 0, 1, 0 } };
        struct timespec t0, t1, ts = { 0, 200 * 1000 * 1000 };
        union semun arg = { .val = 0 };
        pthread_t th[4];
        void *ret;
        int id, status;
        pid_t pid;

        CHECK(semget(key, 65, IPC_CREAT | 0600) < 0 && errno == ENOSYS, "sets of 65: ENOSYS");
        id = semget(key, 1, IPC_CREAT | IPC_EXCL | 0600);
        CHECK(id >= 0, "semget");
        CHECK(semget(key, 2, 0) < 0 && errno == EINVAL, "more than the set has");
        down.sem_flg = IPC_NOWAIT;
        CHECK(semop(id, &down, 1) < 0 && errno == EAGAIN, "IPC_NOWAIT on 0");
        CHECK(semop(id, &zero, 1) == 0, "wait-for-zero on 0");
        down.sem_flg = 0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        CHECK(semtimedop(id, &down, 1, &ts) < 0 && errno == EAGAIN, "timed out");
        clock_gettime(CLOCK_MONOTONIC, &t1);
        CHECK((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 190,
              "waited the timeout");
        two[0].sem_flg = IPC_NOWAIT;
        CHECK(semop(id, two, 2) < 0 && errno == EAGAIN, "two operations, the first would wait");
        CHECK(semctl(id, 0, GETVAL) == 0, "nothing applied");
        CHECK(semop(id, &up, 1) == 0 && semctl(id, 0, GETVAL) == 1, "post");
        CHECK(semop(id, &zero, 1) < 0 && errno == EAGAIN, "wait-for-zero on 1");
        /* a child that takes the token with SEM_UNDO and exits gives it back */
        pid = fork();
        if (pid == 0) {
                struct sembuf d = { 0, -1, SEM_UNDO };
                _exit(semop(id, &d, 1) == 0 && semctl(id, 0, GETVAL) == 0 ? 0 : 3);
        }
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child %x", status);
        for (int i = 0; i < 500 && semctl(id, 0, GETVAL) != 1; i++)
                usleep(10000);
        CHECK(semctl(id, 0, GETVAL) == 1, "undone at the child's exit");
        /* threads of one process with SEM_UNDO */
        sem_id = id;
        for (int i = 0; i < 4; i++)
                CHECK(pthread_create(&th[i], NULL, undo_thread, NULL) == 0, "pthread_create");
        for (int i = 0; i < 4; i++) {
                pthread_join(th[i], &ret);
                CHECK(ret == NULL, "thread %d", i);
        }
        CHECK(semctl(id, 0, GETVAL) == 1, "value after the threads");
        arg.val = 40000;
        CHECK(semctl(id, 0, SETVAL, arg) < 0 && errno == ERANGE, "SETVAL above SEMVMX");
        CHECK(atomic_steps(id) == 0, "SETVAL and semop -n are single steps");
        CHECK(semctl(id, 0, GETPID) < 0 && errno == ENOSYS, "GETPID");
        CHECK(semctl(id, 0, IPC_RMID) == 0, "IPC_RMID");
        CHECK(semop(id, &up, 1) < 0 && errno == EIDRM, "EIDRM");
        return 0;
}

/* One process of the exclusion runs of sem-multi: `rounds` times, enter
 * (one semop), check that nobody else is inside, leave (one semop). */
static int exclusion(int id, struct sembuf *enter, struct sembuf *leave, volatile int *inside,
                     int rounds) {
        time_t give_up = time(NULL) + 30;

        for (int i = 0; i < rounds; i++) {
                if (semop(id, enter, 2) < 0) {
                        if (errno == EAGAIN && (enter[0].sem_flg & IPC_NOWAIT) && time(NULL) < give_up) {
                                i--; /* busy: try again at once, to meet the others */
                                continue;
                        }
                        return 5;
                }
                if (*inside != 0)
                        return 6; /* two inside at once */
                *inside = 1;
                sched_yield();
                *inside = 0;
                if (semop(id, leave, 2) < 0)
                        return 7;
        }
        return 0;
}

/* Threads of sem-multi: the wait-for-zero exclusion, in one process. */
static int multi_id;
static struct sembuf *multi_enter, *multi_leave;
static volatile int *multi_inside;

static void *exclusion_thread(void *arg) {
        (void)arg;
        return (void *)(intptr_t)exclusion(multi_id, multi_enter, multi_leave, multi_inside, 300);
}

/* sem-multi KEY: semop with several operations.  Errors and in-order
 * play; a transfer between two members is all or nothing; the old lock
 * idiom (wait for zero, then +1, in one call) excludes 4 processes from
 * each other; taking two members at once with SEM_UNDO excludes them too,
 * and a holder killed inside gives both back. */
static int do_sem_multi(char **a) {
        key_t key = key_arg(a[0]);
        struct sembuf zenter[2] = { { 0, 0, 0 }, { 0, 1, 0 } }, zleave[2] = { { 0, -1, 0 }, { 1, 0, 0 } };
        struct sembuf uenter[2] = { { 0, -1, SEM_UNDO }, { 1, -1, SEM_UNDO } };
        struct sembuf uleave[2] = { { 0, 1, SEM_UNDO }, { 1, 1, SEM_UNDO } };
        struct sembuf move[2] = { { 1, -1, IPC_NOWAIT }, { 0, 1, 0 } };
        struct sembuf order[2] = { { 1, 1, 0 }, { 1, 0, IPC_NOWAIT } };
        struct sembuf big[2] = { { 1, 32767, 0 }, { 1, 1, 0 } }, bad[2] = { { 0, 1, 0 }, { 2, 1, 0 } };
        static struct sembuf many[501];
        volatile int *inside = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        unsigned short vals[2];
        union semun arg = { .val = 3 };
        pid_t pids[4], holder;
        int id, status, ready[2];
        char x;

        CHECK(inside != MAP_FAILED, "mmap");
        id = semget(key, 2, IPC_CREAT | IPC_EXCL | 0600);
        CHECK(id >= 0, "semget");
        CHECK(semop(id, many, 501) < 0 && errno == E2BIG, "501 operations");
        CHECK(semop(id, bad, 2) < 0 && errno == EFBIG, "a member past the set");
        CHECK(semop(id, big, 2) < 0 && errno == ERANGE, "past SEMVMX");
        CHECK(semctl(id, 1, GETVAL) == 0, "nothing applied after ERANGE");
        CHECK(semop(id, order, 2) < 0 && errno == EAGAIN, "+1, then wait-for-zero: played in order");
        CHECK(semctl(id, 1, GETVAL) == 0, "nothing applied after EAGAIN");
        CHECK(semop(id, move, 2) < 0 && errno == EAGAIN, "a transfer from an empty member");
        CHECK(semctl(id, 0, GETVAL) == 0, "member 0 untouched");
        CHECK(semctl(id, 1, SETVAL, arg) == 0, "SETVAL");
        CHECK(semop(id, move, 2) == 0, "transfer");
        /* a give and an undo take on one member, in that order: they go */
        vals[0] = 1;
        vals[1] = 0;
        CHECK(semctl(id, 0, SETALL, (union semun){ .array = vals }) == 0, "SETALL 1 0");
        struct sembuf mixed[2] = { { 1, 1, 0 }, { 1, -1, SEM_UNDO | IPC_NOWAIT } };
        CHECK(semop(id, mixed, 2) == 0, "+1, then -1 with SEM_UNDO, at 0");
        CHECK(semctl(id, 1, GETVAL) == 0, "member 1 after the mixed call");
        struct sembuf back = { 1, 1, SEM_UNDO };
        CHECK(semop(id, &back, 1) == 0 && semctl(id, 1, GETVAL) == 1, "the undo token given back");
        vals[0] = 1;
        vals[1] = 2;
        CHECK(semctl(id, 0, SETALL, (union semun){ .array = vals }) == 0, "SETALL 1 2");
        CHECK(semctl(id, 0, GETALL, (union semun){ .array = vals }) == 0 && vals[0] == 1 &&
              vals[1] == 2, "after the transfer: %u %u", vals[0], vals[1]);

        /* wait for zero, then +1: member 0 from 0; member 1 at 0 too */
        vals[0] = vals[1] = 0;
        CHECK(semctl(id, 0, SETALL, (union semun){ .array = vals }) == 0, "SETALL 0 0");
        for (int nowait = 0; nowait < 2; nowait++) {
                /* waiting, then without waiting: busy loops that meet */
                zenter[0].sem_flg = nowait ? IPC_NOWAIT : 0;
                for (int p = 0; p < 4; p++)
                        if ((pids[p] = fork()) == 0)
                                _exit(exclusion(id, zenter, zleave, inside, nowait ? 2000 : 100));
                for (int p = 0; p < 4; p++)
                        CHECK(waitpid(pids[p], &status, 0) == pids[p] && WIFEXITED(status) &&
                              WEXITSTATUS(status) == 0, "wait-for-zero process %d (nowait %d): status %x",
                              p, nowait, status);
                CHECK(semctl(id, 0, GETVAL) == 0, "member 0 back at 0");
        }
        /* the same between the threads of one process (they share the
         * set's handles) */
        pthread_t th[4];
        void *ret;
        zenter[0].sem_flg = 0;
        multi_id = id;
        multi_enter = zenter;
        multi_leave = zleave;
        multi_inside = inside;
        for (int t = 0; t < 4; t++)
                CHECK(pthread_create(&th[t], NULL, exclusion_thread, NULL) == 0, "pthread_create");
        for (int t = 0; t < 4; t++) {
                pthread_join(th[t], &ret);
                CHECK(ret == NULL, "thread %d: %d", t, (int)(intptr_t)ret);
        }
        CHECK(semctl(id, 0, GETVAL) == 0, "member 0 back at 0 after the threads");

        /* both members at once with SEM_UNDO; a holder killed inside */
        vals[0] = vals[1] = 1;
        CHECK(semctl(id, 0, SETALL, (union semun){ .array = vals }) == 0, "SETALL 1 1");
        CHECK(pipe(ready) == 0, "pipe");
        if ((holder = fork()) == 0) {
                if (semop(id, uenter, 2) < 0 || write(ready[1], "x", 1) != 1)
                        _exit(3);
                pause();
                _exit(4);
        }
        CHECK(read(ready[0], &x, 1) == 1, "the holder entered");
        for (int p = 0; p < 4; p++)
                if ((pids[p] = fork()) == 0)
                        _exit(exclusion(id, uenter, uleave, inside, 100));
        usleep(50000);
        CHECK(semctl(id, 0, GETVAL) == 0 && semctl(id, 1, GETVAL) == 0, "the holder has both");
        kill(holder, SIGKILL);
        CHECK(waitpid(holder, &status, 0) == holder, "holder");
        for (int p = 0; p < 4; p++)
                CHECK(waitpid(pids[p], &status, 0) == pids[p] && WIFEXITED(status) &&
                      WEXITSTATUS(status) == 0, "undo process %d: status %x", p, status);
        CHECK(semctl(id, 0, GETALL, (union semun){ .array = vals }) == 0 && vals[0] == 1 &&
              vals[1] == 1, "the killed holder's tokens came back: %u %u", vals[0], vals[1]);
        CHECK(semctl(id, 0, IPC_RMID) == 0, "IPC_RMID");
        return 0;
}

/* Wait up to 5 s for semaphore 0 of id to read want. */
static int value_becomes(int id, int want) {
        for (int i = 0; i < 500 && semctl(id, 0, GETVAL) != want; i++)
                usleep(10000);
        return semctl(id, 0, GETVAL) == want;
}

/* sem-owe KEY: SEM_UNDO on a release the process did not take first.  The
 * kernel keeps semadj -n and takes n back at exit, never below 0; so must
 * the broker (ipcb_sem_release_undo).  Passes against the kernel too
 * (ipcbroker-run --no-sysv). */
static int do_sem_owe(char **a) {
        struct sembuf up = { 0, 1, SEM_UNDO }, up2 = { 0, 2, SEM_UNDO }, down = { 0, -1, SEM_UNDO };
        struct sembuf take = { 0, -1, 0 };
        int id, status, p[2];
        pid_t pid;
        char x;

        id = semget(key_arg(a[0]), 1, IPC_CREAT | IPC_EXCL | 0600);
        CHECK(id >= 0, "semget");
        /* +1 with SEM_UNDO, then a normal exit: taken back */
        pid = fork();
        if (pid == 0)
                _exit(semop(id, &up, 1) == 0 && semctl(id, 0, GETVAL) == 1 ? 0 : 3);
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child %x", status);
        CHECK(value_becomes(id, 0), "+1 SEM_UNDO not taken back at exit: %d", semctl(id, 0, GETVAL));
        /* +1, -1, +1, all SEM_UNDO (semadj -1), then exit: 0 again */
        pid = fork();
        if (pid == 0)
                _exit(semop(id, &up, 1) == 0 && semop(id, &down, 1) == 0 && semop(id, &up, 1) == 0 &&
                      semctl(id, 0, GETVAL) == 1 ? 0 : 3);
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child %x", status);
        CHECK(value_becomes(id, 0), "semadj -1 not applied at exit: %d", semctl(id, 0, GETVAL));
        /* +2 with SEM_UNDO, then killed after someone took 1: 1 - 2, never below 0 */
        CHECK(pipe(p) == 0, "pipe");
        pid = fork();
        if (pid == 0) {
                if (semop(id, &up2, 1) < 0 || write(p[1], "k", 1) != 1)
                        _exit(3);
                for (;;)
                        pause();
        }
        close(p[1]);
        CHECK(read(p[0], &x, 1) == 1, "the child did not release");
        close(p[0]);
        CHECK(semctl(id, 0, GETVAL) == 2, "after +2: %d", semctl(id, 0, GETVAL));
        CHECK(semop(id, &take, 1) == 0, "take one");
        CHECK(kill(pid, SIGKILL) == 0 && waitpid(pid, &status, 0) == pid && WIFSIGNALED(status),
              "kill");
        CHECK(value_becomes(id, 0), "owed tokens of a killed process: %d", semctl(id, 0, GETVAL));
        usleep(50000);
        CHECK(semctl(id, 0, GETVAL) == 0, "below 0, or given back again: %d", semctl(id, 0, GETVAL));
        CHECK(semctl(id, 0, IPC_RMID) == 0, "IPC_RMID");
        return 0;
}

/* One token from one semaphore of id to the other, whichever has one
 * (two operations, not waiting): 0, or -1 with errno. */
static int move_token(int id) {
        struct sembuf ab[2] = { { 0, -1, IPC_NOWAIT }, { 1, 1, IPC_NOWAIT } };
        struct sembuf ba[2] = { { 1, -1, IPC_NOWAIT }, { 0, 1, IPC_NOWAIT } };

        if (semop(id, ab, 2) == 0)
                return 0;
        return errno == EAGAIN ? semop(id, ba, 2) : -1;
}

/* sem-kill-multi KEY: a process killed in the middle of a semop of several
 * operations leaves all of it or none: the kernel's semop is atomic, kill
 * included.  Children move tokens between two semaphores with
 * two-operation semops and are killed at random moments; the tokens must
 * add up after every kill.  Passes against the kernel too.
 *
 * Brokered, a change the child sent just before its kill may still be in
 * the broker's hands after waitpid, and the broker applies it member by
 * member, so GETVAL of one member and then the other may straddle it (the
 * documented "other processes' single operations may see the members
 * between two changes").  So before it reads, the parent makes a semop of
 * several operations that changes nothing: it takes the set's ops lock,
 * which the dead child held until the broker had done its last request. */
static int do_sem_kill_multi(char **a) {
        enum { TOTAL = 4, KILLS = 150 };
        unsigned short init[2] = { TOTAL, 0 };
        int id, status;

        id = semget(key_arg(a[0]), 2, IPC_CREAT | IPC_EXCL | 0600);
        CHECK(id >= 0, "semget");
        CHECK(semctl(id, 0, SETALL, (union semun){ .array = init }) == 0, "SETALL");
        srand((unsigned)getpid());
        for (int k = 0; k < KILLS; k++) {
                int p[2];
                char x;
                CHECK(pipe(p) == 0, "pipe");
                pid_t pid = fork();
                CHECK(pid >= 0, "fork");
                if (pid == 0) {
                        /* one move first (connected, set up), then say so */
                        if (move_token(id) < 0 || write(p[1], "r", 1) != 1)
                                _exit(3);
                        for (;;)
                                if (move_token(id) < 0)
                                        _exit(3);
                }
                close(p[1]);
                CHECK(read(p[0], &x, 1) == 1, "child %d did not start", k);
                close(p[0]);
                usleep((unsigned)(rand() % 1000));
                CHECK(kill(pid, SIGKILL) == 0 && waitpid(pid, &status, 0) == pid, "kill");
                CHECK(WIFSIGNALED(status), "child %d ended before its kill: %x", k, status);
                CHECK(semop(id, (struct sembuf[]){ { 0, 1, 0 }, { 0, -1, 0 } }, 2) == 0, "barrier semop");
                int v0 = semctl(id, 0, GETVAL), v1 = semctl(id, 1, GETVAL);
                CHECK(v0 >= 0 && v1 >= 0 && v0 + v1 == TOTAL,
                      "after kill %d: %d + %d tokens, not %d: a semop of two operations was cut in two", k,
                      v0, v1, TOTAL);
        }
        CHECK(semctl(id, 0, IPC_RMID) == 0, "IPC_RMID");
        return 0;
}

int main(int argc, char **argv) {
        static const struct {
                const char *name;
                int nargs;
                int (*fn)(char **);
        } cmds[] = {
                { "shm-create", 4, do_shm_create }, { "shm-read", 2, do_shm_read },
                { "shm-rmid", 1, do_shm_rmid },     { "shm-semantics", 0, do_shm_semantics },
                { "sem-create", 3, do_sem_create }, { "sem-value", 2, do_sem_value },
                { "sem-hold", 1, do_sem_hold },     { "sem-take", 2, do_sem_take },
                { "sem-rmid", 1, do_sem_rmid },     { "sem-semantics", 1, do_sem_semantics },
                { "rmid-fails", 2, do_rmid_fails }, { "get-fails", 2, do_get_fails },
                { "sem-set", 1, do_sem_set },       { "sem-multi", 1, do_sem_multi },
                { "sem-owe", 1, do_sem_owe },       { "sem-kill-multi", 1, do_sem_kill_multi },
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

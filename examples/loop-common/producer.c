/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* producer.c: the other side of the loop-* examples.  Started after the
 * consumer, it takes its time: creates the segment, later the semaphore
 * (empty), later releases a token on it, later unlinks the segment, pausing
 * between steps so that the consumer has to wait for each. */
#include "demo.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
        ipcb_shm_options so = IPCB_SHM_OPTIONS_INIT;
        ipcb_sem_options mo = IPCB_SEM_OPTIONS_INIT;
        ipcb_client *c;
        ipcb_shm *shm;
        ipcb_sem *sem;
        int r;

        if ((r = ipcb_connect(NULL, &c)) < 0) {
                fprintf(stderr, "producer: connect: %s\n", ipcb_strerror(r));
                return 1;
        }
        usleep(500 * 1000);
        so.flags = IPCB_SHM_PERSISTENT;
        if ((r = ipcb_shm_create(c, DEMO_SHM, 4096, &so, &shm)) < 0) {
                fprintf(stderr, "producer: create %s: %s\n", DEMO_SHM, ipcb_strerror(r));
                return 1;
        }
        strcpy(ipcb_shm_data(shm), "hello from the producer");
        printf("producer: created '%s'\n", DEMO_SHM);
        usleep(500 * 1000);
        mo.flags = IPCB_SEM_PERSISTENT;
        if ((r = ipcb_sem_create(c, DEMO_SEM, 0, &mo, &sem)) < 0) {
                fprintf(stderr, "producer: create %s: %s\n", DEMO_SEM, ipcb_strerror(r));
                return 1;
        }
        printf("producer: created '%s', empty\n", DEMO_SEM);
        usleep(500 * 1000);
        if ((r = ipcb_sem_release(sem, 1)) < 0) {
                fprintf(stderr, "producer: release: %s\n", ipcb_strerror(r));
                return 1;
        }
        printf("producer: released a token\n");
        usleep(500 * 1000);
        ipcb_shm_unlink(c, DEMO_SHM);
        ipcb_sem_unlink(c, DEMO_SEM);
        printf("producer: unlinked both\n");
        ipcb_shm_close(shm);
        ipcb_sem_close(sem);
        ipcb_disconnect(c);
        return 0;
}

/* notify.c: the controller's change notifier. A generation counter bumped on every change to jobs
 * or instances, and a condition variable (on CLOCK_MONOTONIC) that long-polls and SSE streams wait
 * on. */
#include <time.h>

#include "controller.h"
#include "drover/util.h"

int controller_notify_init(controller *c) {
        pthread_condattr_t attr;
        int r;

        r = pthread_mutex_init(&c->notify_lock, NULL);
        if (r != 0)
                return -r;
        r = pthread_condattr_init(&attr);
        if (r != 0)
                goto fail_mutex;
        r = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        if (r == 0)
                r = pthread_cond_init(&c->notify_cond, &attr);
        pthread_condattr_destroy(&attr);
        if (r != 0)
                goto fail_mutex;
        r = pthread_mutex_init(&c->sched_lock, NULL);
        if (r != 0) {
                pthread_cond_destroy(&c->notify_cond);
                goto fail_mutex;
        }
        c->notify_generation = 1;
        c->long_polls = c->streams = 0;
        return 0;

fail_mutex:
        pthread_mutex_destroy(&c->notify_lock);
        return -r;
}

void controller_notify_done(controller *c) {
        pthread_mutex_destroy(&c->sched_lock);
        pthread_cond_destroy(&c->notify_cond);
        pthread_mutex_destroy(&c->notify_lock);
}

void controller_notify(controller *c) {
        pthread_mutex_lock(&c->notify_lock);
        c->notify_generation++;
        pthread_cond_broadcast(&c->notify_cond);
        pthread_mutex_unlock(&c->notify_lock);
}

uint64_t controller_generation(controller *c) {
        uint64_t g;

        pthread_mutex_lock(&c->notify_lock);
        g = c->notify_generation;
        pthread_mutex_unlock(&c->notify_lock);
        return g;
}

int controller_wait(controller *c, uint64_t *gen, uint64_t timeout_usec) {
        struct timespec deadline;
        uint64_t until;
        int woken = 0;

        until = now_monotonic_usec() + timeout_usec;
        deadline.tv_sec = (time_t) (until / USEC_PER_SEC);
        deadline.tv_nsec = (long) ((until % USEC_PER_SEC) * NSEC_PER_USEC);

        pthread_mutex_lock(&c->notify_lock);
        for (;;) {
                if (c->notify_generation != *gen || c->shutting_down) {
                        woken = 1;
                        break;
                }
                if (pthread_cond_timedwait(&c->notify_cond, &c->notify_lock, &deadline) == ETIMEDOUT) {
                        woken = c->notify_generation != *gen;
                        break;
                }
        }
        *gen = c->notify_generation;
        pthread_mutex_unlock(&c->notify_lock);
        return woken;
}

int controller_slot_acquire(controller *c, unsigned *counter, unsigned max) {
        int r = 0;

        pthread_mutex_lock(&c->notify_lock);
        if (*counter >= max)
                r = -EBUSY;
        else
                (*counter)++;
        pthread_mutex_unlock(&c->notify_lock);
        return r;
}

void controller_slot_release(controller *c, unsigned *counter) {
        pthread_mutex_lock(&c->notify_lock);
        if (*counter > 0)
                (*counter)--;
        pthread_mutex_unlock(&c->notify_lock);
}

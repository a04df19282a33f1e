/* ptimer.c -- precise timers: a timerfd each, read by a libevent event. */
#include "rtb/ptimer.h"

#include "rtb/log.h"

#include <event2/event.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

struct rtb_ptimer {
    int fd;
    struct event *ev;
    rtb_ptimer_fn *fn;
    void *arg;
    int64_t at_us;     /* one shot: when; periodic: the next period's due time */
    int64_t period_us; /* 0: one shot */
    int armed;
};

static struct timespec to_timespec(int64_t us) {
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    return ts;
}

static void on_fire(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    rtb_ptimer *t = arg;
    uint64_t expirations = 0;
    if (read(fd, &expirations, sizeof(expirations)) != (ssize_t)sizeof(expirations))
        return; /* re-armed since it fired (EAGAIN): nothing is due */
    int64_t now_us = rtb_now_us(), due_us = t->at_us;
    if (t->period_us > 0) {
        due_us = t->at_us + (int64_t)(expirations - 1) * t->period_us;
        t->at_us = due_us + t->period_us;
    } else {
        t->armed = 0;
    }
    t->fn(t->arg, due_us, now_us);
}

rtb_ptimer *rtb_ptimer_new(struct event_base *base, rtb_ptimer_fn *fn, void *arg, char *err,
                           size_t errlen) {
    rtb_ptimer *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->fn = fn;
    t->arg = arg;
    t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (t->fd < 0) {
        snprintf(err, errlen, "cannot create a timer (timerfd): %s", strerror(errno));
        free(t);
        return NULL;
    }
    t->ev = event_new(base, t->fd, EV_READ | EV_PERSIST, on_fire, t);
    if (!t->ev || event_add(t->ev, NULL) != 0) {
        snprintf(err, errlen, "out of memory");
        rtb_ptimer_free(t);
        return NULL;
    }
    return t;
}

int rtb_ptimer_urgent(rtb_ptimer *t) {
    return event_priority_set(t->ev, RTB_LOOP_URGENT);
}

void rtb_ptimer_free(rtb_ptimer *t) {
    if (!t) return;
    if (t->ev) event_free(t->ev);
    close(t->fd);
    free(t);
}

static int program(rtb_ptimer *t, int64_t at_us, int64_t period_us) {
    if (at_us < 1) at_us = 1; /* 0 would disarm it */
    struct itimerspec its = {.it_interval = to_timespec(period_us), .it_value = to_timespec(at_us)};
    if (timerfd_settime(t->fd, TFD_TIMER_ABSTIME, &its, NULL) != 0) return -1;
    t->at_us = at_us;
    t->period_us = period_us;
    t->armed = 1;
    return 0;
}

int rtb_ptimer_at(rtb_ptimer *t, int64_t at_us) {
    if (t->armed && t->period_us == 0 && t->at_us == at_us) return 0;
    return program(t, at_us, 0);
}

int rtb_ptimer_every(rtb_ptimer *t, int64_t first_us, int64_t period_us) {
    return program(t, first_us, period_us > 0 ? period_us : 1);
}

void rtb_ptimer_stop(rtb_ptimer *t) {
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    timerfd_settime(t->fd, 0, &its, NULL);
    t->armed = 0;
}

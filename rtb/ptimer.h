/* ptimer.h -- precise timers on the loop, at the cost of a system call only
 * when their time changes.
 *
 * libevent's own timers are either coarse or costly on Linux: without
 * EVENT_BASE_FLAG_PRECISE_TIMER they run on CLOCK_MONOTONIC_COARSE (4 ms
 * steps on this kernel: a deadline could fire ms late), and with it libevent
 * reprograms a timerfd before every epoll_wait, one system call per loop
 * turn. A ptimer is a timerfd of its own, registered with libevent as a
 * read event and programmed (TFD_TIMER_ABSTIME, CLOCK_MONOTONIC, the clock
 * of rtb_now_us) only when its time changes. The exchange uses two: the
 * auctions' deadline (re-armed about once per tmax, txn.h) and the loop lag
 * probe (periodic, never re-armed, admission.h); every other timer of the
 * exchange is happy with libevent's coarse ones. */
#ifndef RTB_PTIMER_H
#define RTB_PTIMER_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

typedef struct rtb_ptimer rtb_ptimer;

/* Called when the timer fires: `due_us` is the time it was due (for a
 * periodic timer, the latest period that passed), `now_us` when the loop
 * got to it, both monotonic (rtb_now_us). */
typedef void rtb_ptimer_fn(void *arg, int64_t due_us, int64_t now_us);

/* A stopped timer on `base` (borrowed; outlives it). Returns NULL with a
 * message in `err` when the timerfd or the event cannot be made. */
rtb_ptimer *rtb_ptimer_new(struct event_base *base, rtb_ptimer_fn *fn, void *arg, char *err,
                           size_t errlen);
/* Stop and free. NULL is a no-op. */
void rtb_ptimer_free(rtb_ptimer *t);

/* Fire once at monotonic `at_us` (at once when it has passed), replacing
 * whatever was set. Setting the time it is already set to costs nothing.
 * Returns 0, or -1 when the kernel refused (errno set). */
int rtb_ptimer_at(rtb_ptimer *t, int64_t at_us);

/* Fire every `period_us` from monotonic `first_us` on, until stopped or
 * set again. Returns 0 or -1 (errno). */
int rtb_ptimer_every(rtb_ptimer *t, int64_t first_us, int64_t period_us);

/* Do not fire until set again. */
void rtb_ptimer_stop(rtb_ptimer *t);

/* The loop's priorities (main.c sets them up): the auctions' deadline runs
 * at RTB_LOOP_URGENT, every other event at the default, RTB_LOOP_URGENT + 1.
 * After RTB_LOOP_DISPATCH_MAX callbacks of default priority libevent looks
 * for new events again (event_config_set_max_dispatch_interval), and a
 * deadline that came due meanwhile runs before the rest of that backlog: a
 * burst of answers or Redis replies cannot hold the close of the auctions
 * it is late for (SPEC 4: tmax + 5 ms; SPEC 13: on time for what is
 * accepted). */
#define RTB_LOOP_PRIORITIES 2
#define RTB_LOOP_URGENT 0
#define RTB_LOOP_DISPATCH_MAX 64

/* Run `t` before the events of default priority (RTB_LOOP_URGENT). Call it
 * while the timer has not fired. Returns 0, or -1 when the loop has no such
 * priority (libevent refused). */
int rtb_ptimer_urgent(rtb_ptimer *t);

#endif

/* admission.h -- whether one more auction can start and still finish on
 * time (SPEC 13 admission). Pure: the caller passes the times.
 *
 * The exchange learns its capacity from two things it measures:
 *   - loop lag: a probe timer, due every RTB_ADMISSION_PROBE_US, fires late
 *     by however long the loop was busy (or not scheduled: a box shared with
 *     the broker, Redis and the bidders) -- the exchange's own queueing
 *     delay. Lag delays every result; it breaks the timing promise (tmax +
 *     5 ms) of the auctions that run to their deadline. So the lag the
 *     exchange tolerates is health.lag_ms in a period where an auction
 *     closed at its deadline, and a quarter of tmax in one where all of them
 *     closed early (their bidders all answered);
 *   - utilisation: the loop's CPU time over wall time. A loop that stays
 *     near 100 % cannot keep up with its MQTT stream, and the backlog grows
 *     in the broker where the exchange cannot see it (the loop reads one
 *     message per turn, so its own lag stays low). A burst that the loop
 *     absorbs in a few hundred ms is not that: only RTB_ADMISSION_BUSY_PERIODS
 *     full periods in a row count.
 * From them it keeps an adaptive limit on the auctions open at once, in the
 * style of Netflix's concurrency-limits "Gradient2" (itself after TCP
 * Vegas: back off on a rising delay before anything is lost). At the end of
 * each RTB_ADMISSION_PERIOD_US, when the period saw more lag than it
 * tolerates or the loop stayed full, the limit falls to the auctions that
 * were open times a gradient (tolerated / measured lag, or RTB_ADMISSION_BUSY
 * / utilisation; between 0.5 and 0.95); when neither happened and the limit
 * was nearly reached, it grows by its square root (Gradient2's queue
 * allowance). limits.max_inflight stays the hard cap.
 *
 * A request is also shed at once when the oldest open auction is already
 * past its deadline by more than health.lag_ms: the loop cannot close on
 * time what it has. Shedding answers `overloaded` before any Redis GET or
 * bidder call. */
#ifndef RTB_ADMISSION_H
#define RTB_ADMISSION_H

#include <stddef.h>
#include <stdint.h>

#define RTB_ADMISSION_PROBE_US 10000   /* lag probe period */
#define RTB_ADMISSION_PERIOD_US 100000 /* limit update period */
#define RTB_ADMISSION_BUSY 0.9         /* utilisation above which the loop is full */
#define RTB_ADMISSION_BUSY_PERIODS 3   /* full periods in a row that mean overload */
#define RTB_ADMISSION_MIN_LIMIT 4

typedef enum rtb_admission_verdict {
    RTB_ADMISSION_ACCEPT = 0,
    RTB_ADMISSION_SHED_MAX,   /* limits.max_inflight reached */
    RTB_ADMISSION_SHED_LIMIT, /* the adaptive limit reached */
    RTB_ADMISSION_SHED_LATE,  /* open auctions already past their deadline */
    RTB_ADMISSION_VERDICTS
} rtb_admission_verdict;

/* "accept", "max_inflight", "limit", "late". Never NULL. */
const char *rtb_admission_verdict_str(rtb_admission_verdict v);

typedef struct rtb_admission {
    int64_t lag_allow_us; /* health.lag_ms */
    int64_t tmax_us;      /* auction.tmax_ms */
    size_t max_inflight;  /* limits.max_inflight */
    double limit;         /* the adaptive limit, RTB_ADMISSION_MIN_LIMIT..max_inflight */
    int64_t lag_us;       /* the latest probe's lateness */
    int64_t last_late_us; /* when a probe last found lag beyond the allowance; 0: never */
    /* the period being measured */
    int64_t period_start_us, period_cpu_us;
    int64_t period_lag_max_us;
    double period_open_sum;
    size_t period_open_max;
    unsigned period_probes;
    int period_deadline_closes; /* auctions of the period that ran to their deadline */
    double busy;                /* utilisation of the last period */
    unsigned busy_periods;      /* full periods in a row */
    unsigned long long shed[RTB_ADMISSION_VERDICTS];
} rtb_admission;

/* Start with the limit at `max_inflight`, tolerating `lag_allow_us`
 * (health.lag_ms) with auctions of `tmax_us`, measuring from `now_us` with
 * the loop's CPU time `cpu_us` (any clock of CPU microseconds); with now_us
 * 0 the first probe starts the measuring. */
void rtb_admission_init(rtb_admission *a, int64_t lag_allow_us, int64_t tmax_us,
                        size_t max_inflight, int64_t now_us, int64_t cpu_us);

/* An auction ran to its deadline (a call was still out): lag in this period
 * delays results past tmax. */
void rtb_admission_deadline_close(rtb_admission *a);

/* 1 when a probe at `now_us` ends a period (or starts the first): the
 * caller then reads the loop's CPU time for it; otherwise it need not. */
int rtb_admission_wants_cpu(const rtb_admission *a, int64_t now_us);

/* A lag probe due at `due_us` ran at `now_us`, with `open` auctions open
 * and the loop's CPU time `cpu_us` (read when rtb_admission_wants_cpu
 * said so; any value otherwise). Updates the limit when a period ended. */
void rtb_admission_probe(rtb_admission *a, int64_t due_us, int64_t now_us, size_t open,
                         int64_t cpu_us);

/* May an auction start at `now_us`, with `open` open and the earliest open
 * deadline at `oldest_deadline_us` (0: none open)? Counts what it sheds. */
rtb_admission_verdict rtb_admission_decide(rtb_admission *a, size_t open,
                                           int64_t oldest_deadline_us, int64_t now_us);

/* 1 when the exchange was on time since `since_us`: no probe found the loop
 * late by more than the allowance after it (SPEC 13: a timeout counts
 * against a bidder only then). */
int rtb_admission_on_time(const rtb_admission *a, int64_t since_us);

#endif

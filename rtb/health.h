/* health.h -- one bidder's health, and whether to call it in an auction
 * (SPEC 13). Pure: every function takes the time from its caller.
 *
 * Three things decide whether a bidder is called, each counted when it says
 * no (rtb_skip_reason):
 *
 *   circuit    connection refusals and other bidder errors (HTTP status,
 *              malformed answer) open it: 5 in a row, or half the calls of
 *              the window. While open nobody calls the bidder; after a pause
 *              (1 s, doubling on each failed probe up to 30 s, glue/backoff)
 *              one call is the probe, and a good answer closes it.
 *   throttled  the failure rate over the last window_s seconds (errors, and
 *              timeouts that were the bidder's fault) sets the share of
 *              auctions the bidder is called in: all of them up to 10 %
 *              failures, falling linearly to min_share at 60 %, never below.
 *              A window with fewer than min_calls calls counts the missing
 *              ones as good, so a few failures never throttle and a quiet
 *              bidder recovers as its failures age out.
 *   too_slow   the bidder's recent latency (a histogram that forgets with a
 *              time constant of window_s) has a p95 above the time the
 *              auction has left: it is called for min_share of auctions only,
 *              so its latency keeps being measured. It recovers as it
 *              succeeds: min_calls answers in a row within the time it was
 *              found too slow for, and the histogram starts afresh from
 *              them. Waiting for the slow answers to be forgotten instead
 *              would keep a bidder that was slow for one second (a cold
 *              start, a stall) at min_share for tens of seconds, since at
 *              min_share its good answers come in slowly.
 *
 * Shares are kept exactly, without randomness: a credit grows by the share
 * in each auction and a call spends 1 of it (it starts at 1: the first
 * auction calls).
 *
 * Timeouts go into the latency histogram as what they are, answers of at
 * least the time waited: a bidder timing out in more than 5 % of its calls
 * has a p95 beyond the deadline, so it is too slow for any auction (SPEC
 * 13) and keeps min_share. Throttling by failure rate then mostly answers
 * errors that are not enough to open the circuit.
 *
 * Not blaming the bidder for the exchange's own lateness: a timeout counts
 * against the bidder only when the caller says the exchange was on time
 * (the request went out and the deadline fired without loop lag beyond
 * health.lag_ms); otherwise it is "excused": counted apart, judged neither
 * way, and its latency is not recorded. */
#ifndef RTB_HEALTH_H
#define RTB_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "glue/backoff.h"

/* Why an eligible advertiser was not called (SPEC 4 `skipped`, 13). */
typedef enum rtb_skip_reason {
    RTB_SKIP_CIRCUIT = 0,
    RTB_SKIP_THROTTLED,
    RTB_SKIP_TOO_SLOW,
    RTB_SKIP_MAX_CONCURRENT,
    RTB_SKIP_BUDGET, /* its daily budget is spent, or pacing holds it back (SPEC 16) */
    RTB_SKIP_COUNT
} rtb_skip_reason;

/* "circuit", "throttled", "too_slow", "max_concurrent", "budget". Never
 * NULL. */
const char *rtb_skip_reason_str(rtb_skip_reason r);

typedef enum rtb_circuit {
    RTB_CIRCUIT_CLOSED = 0,
    RTB_CIRCUIT_OPEN = 1,
    RTB_CIRCUIT_HALF_OPEN = 2, /* the pause is over: a probe may go, or is out */
} rtb_circuit;

/* "closed", "open", "half_open". Never NULL. */
const char *rtb_circuit_str(rtb_circuit c);

/* Errors in a row that open the circuit. */
#define RTB_HEALTH_ERRORS_IN_A_ROW 5
/* Failure rate up to which a bidder gets every auction, and from which it
 * gets min_share. */
#define RTB_HEALTH_FAIL_OK 0.10
#define RTB_HEALTH_FAIL_WORST 0.60
/* Seconds of window at most (config health.window_s). */
#define RTB_HEALTH_MAX_WINDOW_S 60
/* Latency histogram: buckets of tmax/RTB_HEALTH_LAT_PER_TMAX, up to
 * 2 tmax, then one bucket for everything slower. */
#define RTB_HEALTH_LAT_PER_TMAX 100
#define RTB_HEALTH_LAT_BUCKETS (2 * RTB_HEALTH_LAT_PER_TMAX + 1)

typedef struct rtb_health_conf {
    int64_t window_s;  /* health.window_s, 1..RTB_HEALTH_MAX_WINDOW_S */
    int64_t min_calls; /* health.min_calls */
    double min_share;  /* health.min_share, 0 < x <= 1 */
    int64_t tmax_us;   /* auction.tmax_ms, for the latency buckets */
    int dry_run;       /* health.dry_run: count throttling, call anyway */
} rtb_health_conf;

/* How a call ended, as health sees it. */
typedef enum rtb_health_outcome {
    RTB_HEALTH_OK = 0,          /* a bid or a no-bid */
    RTB_HEALTH_ERROR,           /* HTTP status, malformed answer, connection refused */
    RTB_HEALTH_TIMEOUT,         /* no answer by the deadline, the exchange on time */
    RTB_HEALTH_TIMEOUT_EXCUSED, /* no answer by the deadline, the exchange late */
} rtb_health_outcome;

/* One second of the window. */
typedef struct rtb_health_slot {
    int64_t second; /* now_us / 1e6 when it was filled; older ones are stale */
    uint32_t judged, failures, errors;
} rtb_health_slot;

/* A bidder's health. Fields are private to health.c; zero it and call
 * rtb_health_init. */
typedef struct rtb_health {
    const rtb_health_conf *conf;
    rtb_health_slot slots[RTB_HEALTH_MAX_WINDOW_S];
    rtb_health_slot sums; /* over the window, as of sums.second */
    unsigned errors_in_a_row;
    rtb_circuit circuit;
    int probe_out;
    int64_t circuit_until_us;
    backoff pause;
    double throttle_credit, slow_credit;
    double latency[RTB_HEALTH_LAT_BUCKETS]; /* decayed counts */
    double latency_weight;                  /* their sum */
    int64_t latency_second;                 /* when they were last decayed */
    int64_t p95_us, p95_second;             /* the p95 deciding uses, and when taken */
    int64_t slow_left_us;                   /* too slow for this much time left; 0: not too slow */
    int64_t fast_in_a_row;                  /* answers within slow_left_us in a row since */
} rtb_health;

/* What rtb_health_decide says. */
typedef enum rtb_health_verdict {
    RTB_HEALTH_CALL = 0,
    RTB_HEALTH_PROBE, /* call it: this call is the circuit's probe */
    RTB_HEALTH_SKIP,  /* with the reason in *reason */
} rtb_health_verdict;

/* Start healthy, circuit closed. `conf` is borrowed for the health's life. */
void rtb_health_init(rtb_health *h, const rtb_health_conf *conf);

/* Should the bidder be called in an auction at `now_us` that leaves it
 * `left_us` to answer? CALL, PROBE, or SKIP with the reason (circuit,
 * throttled, too_slow; max_concurrent is the pool's business). A PROBE must
 * be followed by rtb_health_record(..., probe 1) when the call ends (or
 * fails to start). In dry_run, throttling only says what it would do:
 * *would_throttle is set and the verdict is CALL. */
rtb_health_verdict rtb_health_decide(rtb_health *h, int64_t now_us, int64_t left_us,
                                     rtb_skip_reason *reason, int *would_throttle);

/* A call ended at `now_us` with `outcome`; `probe` when rtb_health_decide
 * said PROBE for it. `latency_us` is how long it took, for the latency
 * histogram: its answer time (OK), or how long it waited (TIMEOUT: the
 * bidder took at least that); -1 to learn nothing from it (an answer read
 * while the loop was late, an error). A too slow bidder's min_calls-th OK
 * answer in a row within the time it was too slow for clears the histogram
 * (it recovers, above). Returns 1 when this opened the circuit (for the log
 * and the counter), else 0. */
int rtb_health_record(rtb_health *h, rtb_health_outcome outcome, int probe, int64_t latency_us,
                      int64_t now_us);

/* The failure rate over the window at `now_us` (0..1; the missing calls
 * below min_calls count as good), and the share of auctions it earns. */
double rtb_health_failure_rate(const rtb_health *h, int64_t now_us);
double rtb_health_share(const rtb_health *h, int64_t now_us);

/* The recent p95 latency in µs (an upper bucket bound), or -1 while fewer
 * than min_calls calls are remembered. */
int64_t rtb_health_p95_us(const rtb_health *h, int64_t now_us);

/* The circuit now (an open circuit whose pause is over reads HALF_OPEN). */
rtb_circuit rtb_health_circuit(const rtb_health *h, int64_t now_us);

#endif

/* health.c -- a bidder's health (health.h): the window of calls, the
 * circuit, the latency histogram and the shares. */
#include "rtb/health.h"

#include <math.h>
#include <string.h>

#define US_PER_S 1000000
#define CIRCUIT_PAUSE_MIN_US 1000000
#define CIRCUIT_PAUSE_MAX_US 30000000
#define CIRCUIT_ERROR_RATE 0.5

const char *rtb_skip_reason_str(rtb_skip_reason r) {
    switch (r) {
    case RTB_SKIP_CIRCUIT:
        return "circuit";
    case RTB_SKIP_THROTTLED:
        return "throttled";
    case RTB_SKIP_TOO_SLOW:
        return "too_slow";
    case RTB_SKIP_MAX_CONCURRENT:
        return "max_concurrent";
    case RTB_SKIP_BUDGET:
        return "budget";
    case RTB_SKIP_COUNT:
        break;
    }
    return "unknown";
}

const char *rtb_circuit_str(rtb_circuit c) {
    switch (c) {
    case RTB_CIRCUIT_OPEN:
        return "open";
    case RTB_CIRCUIT_HALF_OPEN:
        return "half_open";
    case RTB_CIRCUIT_CLOSED:
        break;
    }
    return "closed";
}

void rtb_health_init(rtb_health *h, const rtb_health_conf *conf) {
    memset(h, 0, sizeof(*h));
    h->conf = conf;
    h->throttle_credit = 1;
    h->slow_credit = 1;
    h->latency_second = -1;
    h->sums.second = -1;
    h->p95_second = -1;
    backoff_init(&h->pause, CIRCUIT_PAUSE_MIN_US, CIRCUIT_PAUSE_MAX_US, 0);
}

/* ---- The window --------------------------------------------------------------------- */

static int64_t window_s(const rtb_health *h) {
    int64_t w = h->conf->window_s;
    return w < 1 ? 1 : w > RTB_HEALTH_MAX_WINDOW_S ? RTB_HEALTH_MAX_WINDOW_S : w;
}

/* Sums over the slots of the last window_s seconds, into `out`. */
static void scan_window(const rtb_health *h, int64_t second, rtb_health_slot *out) {
    int64_t w = window_s(h);
    memset(out, 0, sizeof(*out));
    out->second = second;
    for (size_t i = 0; i < RTB_HEALTH_MAX_WINDOW_S; i++) {
        const rtb_health_slot *s = &h->slots[i];
        if (s->second > second - w && s->second <= second) {
            out->judged += s->judged;
            out->failures += s->failures;
            out->errors += s->errors;
        }
    }
}

/* The window's sums now: kept up to date by record and refreshed once a
 * second, so deciding costs no scan of the slots. */
static const rtb_health_slot *window_now(rtb_health *h, int64_t now_us) {
    int64_t second = now_us / US_PER_S;
    if (h->sums.second != second) scan_window(h, second, &h->sums);
    return &h->sums;
}

/* The same for readers that cannot change `h` (the admin listener). */
static void window_sums(const rtb_health *h, int64_t now_us, double *judged, double *failures,
                        double *errors) {
    rtb_health_slot w;
    int64_t second = now_us / US_PER_S;
    if (h->sums.second == second)
        w = h->sums;
    else
        scan_window(h, second, &w);
    *judged = w.judged;
    *failures = w.failures;
    *errors = w.errors;
}

static rtb_health_slot *slot_now(rtb_health *h, int64_t now_us) {
    int64_t second = now_us / US_PER_S;
    rtb_health_slot *s = &h->slots[second % RTB_HEALTH_MAX_WINDOW_S];
    if (s->second != second) {
        memset(s, 0, sizeof(*s));
        s->second = second;
    }
    return s;
}

/* A rate over the window where missing calls below min_calls count as good. */
static double diluted(double bad, double judged, const rtb_health *h) {
    double n = judged > (double)h->conf->min_calls ? judged : (double)h->conf->min_calls;
    return n > 0 ? bad / n : 0;
}

double rtb_health_failure_rate(const rtb_health *h, int64_t now_us) {
    double judged, failures, errors;
    window_sums(h, now_us, &judged, &failures, &errors);
    return diluted(failures, judged, h);
}

double rtb_health_share(const rtb_health *h, int64_t now_us) {
    double fr = rtb_health_failure_rate(h, now_us), min_share = h->conf->min_share;
    if (fr <= RTB_HEALTH_FAIL_OK) return 1;
    if (fr >= RTB_HEALTH_FAIL_WORST) return min_share;
    double x = (fr - RTB_HEALTH_FAIL_OK) / (RTB_HEALTH_FAIL_WORST - RTB_HEALTH_FAIL_OK);
    return 1 - x * (1 - min_share);
}

/* ---- Latency ------------------------------------------------------------------------- */

static int64_t bucket_us(const rtb_health *h) {
    int64_t w = h->conf->tmax_us / RTB_HEALTH_LAT_PER_TMAX;
    return w < 1 ? 1 : w;
}

/* What the counts of `h` are worth at `now_us`: each whole second since
 * they were last decayed multiplies them by 1 - 1/window_s. */
static double decay_factor(const rtb_health *h, int64_t now_us) {
    int64_t elapsed = h->latency_second < 0 ? 0 : now_us / US_PER_S - h->latency_second;
    if (elapsed <= 0) return 1;
    int64_t w = window_s(h);
    return elapsed > 20 * w ? 0 : pow(1 - 1.0 / (double)w, (double)elapsed);
}

/* Forget, before counting anew. */
static void decay(rtb_health *h, int64_t now_us) {
    double f = decay_factor(h, now_us);
    h->latency_second = now_us / US_PER_S;
    if (f == 1) return;
    h->latency_weight = 0;
    for (size_t i = 0; i < RTB_HEALTH_LAT_BUCKETS; i++) {
        h->latency[i] *= f;
        h->latency_weight += h->latency[i];
    }
}

static void observe_latency(rtb_health *h, int64_t latency_us, int64_t now_us) {
    decay(h, now_us);
    int64_t b = latency_us < 0 ? 0 : latency_us / bucket_us(h);
    if (b >= RTB_HEALTH_LAT_BUCKETS) b = RTB_HEALTH_LAT_BUCKETS - 1;
    h->latency[b] += 1;
    h->latency_weight += 1;
}

/* Start the histogram afresh: the bidder has shown it is fast again. */
static void forget_latency(rtb_health *h) {
    memset(h->latency, 0, sizeof(h->latency));
    h->latency_weight = 0;
    h->p95_second = -1;
    h->slow_left_us = 0;
    h->fast_in_a_row = 0;
}

/* A too slow bidder recovers as it succeeds (health.h): count the answers
 * within the time it was too slow for, and forget the slow past after
 * min_calls of them in a row. A timeout or a slow answer starts over; an
 * error says nothing about speed. */
static void watch_recovery(rtb_health *h, rtb_health_outcome outcome, int64_t latency_us) {
    if (h->slow_left_us == 0 || latency_us < 0) return;
    if (outcome != RTB_HEALTH_OK || latency_us > h->slow_left_us) {
        h->fast_in_a_row = 0;
        return;
    }
    if (++h->fast_in_a_row >= h->conf->min_calls) forget_latency(h);
}

/* The p95 of the counts as they are (an upper bucket bound). */
static int64_t p95_of_counts(const rtb_health *h) {
    double rank = 0.95 * h->latency_weight, below = 0;
    for (size_t i = 0; i < RTB_HEALTH_LAT_BUCKETS - 1; i++) {
        below += h->latency[i];
        if (below >= rank) return (int64_t)(i + 1) * bucket_us(h);
    }
    return INT64_MAX; /* slower than twice tmax */
}

int64_t rtb_health_p95_us(const rtb_health *h, int64_t now_us) {
    /* Decay scales every bucket alike: it moves the weight, not the p95. */
    double weight = h->latency_weight * decay_factor(h, now_us);
    if (weight < (double)h->conf->min_calls || weight <= 0) return -1;
    return p95_of_counts(h);
}

/* The same for deciding: the bucket walk at most once a second, since a
 * second's answers move a p95 over window_s seconds very little. */
static int64_t p95_for_decision(rtb_health *h, int64_t now_us) {
    int64_t second = now_us / US_PER_S;
    double weight = h->latency_weight * decay_factor(h, now_us);
    if (weight < (double)h->conf->min_calls || weight <= 0) return -1;
    if (h->p95_second != second) {
        h->p95_us = p95_of_counts(h);
        h->p95_second = second;
    }
    return h->p95_us;
}

/* ---- The circuit ------------------------------------------------------------------------ */

rtb_circuit rtb_health_circuit(const rtb_health *h, int64_t now_us) {
    if (h->circuit == RTB_CIRCUIT_OPEN && now_us >= h->circuit_until_us)
        return RTB_CIRCUIT_HALF_OPEN;
    return h->circuit;
}

static void circuit_open(rtb_health *h, int64_t now_us) {
    h->circuit = RTB_CIRCUIT_OPEN;
    h->probe_out = 0;
    h->circuit_until_us = backoff_fail(&h->pause, now_us, 0);
}

static void circuit_close(rtb_health *h) {
    h->circuit = RTB_CIRCUIT_CLOSED;
    h->probe_out = 0;
    h->errors_in_a_row = 0;
    backoff_reset(&h->pause);
}

/* ---- Decide and record ----------------------------------------------------------------- */

/* Spend 1 of the credit when it has grown to 1: exact shares, no dice. */
static int spend(double *credit, double share) {
    *credit += share;
    if (*credit > 2) *credit = 2;
    if (*credit < 1) return 0;
    *credit -= 1;
    return 1;
}

rtb_health_verdict rtb_health_decide(rtb_health *h, int64_t now_us, int64_t left_us,
                                     rtb_skip_reason *reason, int *would_throttle) {
    *would_throttle = 0;
    if (h->circuit == RTB_CIRCUIT_OPEN && now_us >= h->circuit_until_us) {
        h->circuit = RTB_CIRCUIT_HALF_OPEN;
        h->probe_out = 0;
    }
    if (h->circuit == RTB_CIRCUIT_HALF_OPEN && !h->probe_out) {
        h->probe_out = 1;
        return RTB_HEALTH_PROBE;
    }
    if (h->circuit != RTB_CIRCUIT_CLOSED) {
        *reason = RTB_SKIP_CIRCUIT;
        return RTB_HEALTH_SKIP;
    }
    int64_t p95 = p95_for_decision(h, now_us);
    if (p95 >= 0 && p95 > left_us) {
        if (h->slow_left_us == 0) h->fast_in_a_row = 0;
        h->slow_left_us = left_us;
        if (spend(&h->slow_credit, h->conf->min_share)) return RTB_HEALTH_CALL;
        *reason = RTB_SKIP_TOO_SLOW;
        return RTB_HEALTH_SKIP;
    }
    window_now(h, now_us); /* the share below reads the kept sums */
    double share = rtb_health_share(h, now_us);
    if (share >= 1) {
        h->throttle_credit = 1;
        return RTB_HEALTH_CALL;
    }
    if (spend(&h->throttle_credit, share)) return RTB_HEALTH_CALL;
    if (h->conf->dry_run) {
        *would_throttle = 1;
        return RTB_HEALTH_CALL;
    }
    *reason = RTB_SKIP_THROTTLED;
    return RTB_HEALTH_SKIP;
}

int rtb_health_record(rtb_health *h, rtb_health_outcome outcome, int probe, int64_t latency_us,
                      int64_t now_us) {
    if (outcome == RTB_HEALTH_TIMEOUT_EXCUSED) {
        if (probe) h->probe_out = 0; /* no verdict: the next auction probes again */
        return 0;
    }
    rtb_health_slot *s = slot_now(h, now_us), *sums = (rtb_health_slot *)window_now(h, now_us);
    s->judged++;
    sums->judged++;
    if (outcome != RTB_HEALTH_OK) {
        s->failures++;
        sums->failures++;
    }
    if (outcome == RTB_HEALTH_ERROR) {
        s->errors++;
        sums->errors++;
        h->errors_in_a_row++;
    } else {
        h->errors_in_a_row = 0;
    }
    if (latency_us >= 0) observe_latency(h, latency_us, now_us);
    watch_recovery(h, outcome, latency_us);
    if (probe) {
        if (outcome == RTB_HEALTH_OK) {
            circuit_close(h);
            return 0;
        }
        circuit_open(h, now_us); /* the pause doubles */
        return 1;
    }
    /* While open or half-open only the probe speaks: answers to calls made
     * before the circuit opened must neither close it nor reopen it. */
    if (h->circuit != RTB_CIRCUIT_CLOSED || outcome != RTB_HEALTH_ERROR) return 0;
    if (h->errors_in_a_row >= RTB_HEALTH_ERRORS_IN_A_ROW ||
        diluted(sums->errors, sums->judged, h) >= CIRCUIT_ERROR_RATE) {
        circuit_open(h, now_us);
        return 1;
    }
    return 0;
}

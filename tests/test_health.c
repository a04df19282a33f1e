/* test_health.c -- the arithmetic of SPEC 13 with exact times: a bidder's
 * health (rtb/health.h: window, shares, circuit, latency) and admission
 * (rtb/admission.h: lag probes, the adaptive limit, shedding). */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "rtb/admission.h"
#include "rtb/health.h"

#define S INT64_C(1000000)
#define MS INT64_C(1000)
#define T0 (INT64_C(1000) * S)

static rtb_health_conf conf;
static rtb_health h;

static void setup(void) {
    conf = (rtb_health_conf){
        .window_s = 10, .min_calls = 20, .min_share = 0.05, .tmax_us = 100 * MS, .dry_run = 0};
    rtb_health_init(&h, &conf);
}

/* n calls at `now` ending with `outcome`, each taking `took_us` (errors
 * teach no latency). */
static void record(int n, rtb_health_outcome outcome, int64_t took_us, int64_t now) {
    for (int i = 0; i < n; i++)
        rtb_health_record(&h, outcome, 0, outcome == RTB_HEALTH_ERROR ? -1 : took_us, now);
}

/* How many of `n` auctions at `now` call the bidder, with `left_us` left. */
static int calls_left(int n, int64_t now, int64_t left_us, rtb_skip_reason *last_reason) {
    int called = 0;
    for (int i = 0; i < n; i++) {
        rtb_skip_reason r;
        int would;
        rtb_health_verdict v = rtb_health_decide(&h, now, left_us, &r, &would);
        if (v == RTB_HEALTH_SKIP)
            *last_reason = r;
        else
            called++;
    }
    return called;
}

/* The same with 90 ms left. */
static int calls_in(int n, int64_t now, rtb_skip_reason *last_reason) {
    return calls_left(n, now, 90 * MS, last_reason);
}

START_TEST(healthy_bidder_gets_every_auction) {
    record(100, RTB_HEALTH_OK, 2 * MS, T0);
    ck_assert_double_eq(rtb_health_failure_rate(&h, T0), 0);
    ck_assert_double_eq(rtb_health_share(&h, T0), 1);
    rtb_skip_reason r = RTB_SKIP_COUNT;
    ck_assert_int_eq(calls_in(1000, T0, &r), 1000);
    ck_assert_int_eq(rtb_health_p95_us(&h, T0), 3 * MS); /* 2 ms lands in the 2-3 ms bucket */
}
END_TEST

START_TEST(few_failures_never_throttle) {
    /* 2 failures of 2 calls: diluted by min_calls (20), 10 %: still healthy. */
    record(2, RTB_HEALTH_TIMEOUT, 100 * MS, T0);
    ck_assert_double_eq_tol(rtb_health_failure_rate(&h, T0), 0.1, 1e-12);
    ck_assert_double_eq(rtb_health_share(&h, T0), 1);
}
END_TEST

START_TEST(share_falls_with_the_failure_rate_never_below_min) {
    /* 35 % errors, never 5 in a row and under half: the circuit stays shut. */
    for (int i = 0; i < 100; i++)
        rtb_health_record(&h, i * 7 % 20 < 7 ? RTB_HEALTH_ERROR : RTB_HEALTH_OK, 0, 2 * MS, T0);
    ck_assert_int_eq(rtb_health_circuit(&h, T0), RTB_CIRCUIT_CLOSED);
    ck_assert_double_eq_tol(rtb_health_failure_rate(&h, T0), 0.35, 1e-12);
    /* linear from 1 at 10 % to 0.05 at 60 %: 1 - 0.5 * 0.95 */
    ck_assert_double_eq_tol(rtb_health_share(&h, T0), 0.525, 1e-12);
    rtb_skip_reason r = RTB_SKIP_COUNT;
    /* exact, credit not dice: the first auction, then one per 1 / 0.525 */
    ck_assert_int_eq(calls_in(1000, T0, &r), 1 + 525);
    ck_assert_int_eq(r, RTB_SKIP_THROTTLED);

    setup();
    record(40, RTB_HEALTH_OK, 2 * MS, T0);
    record(60, RTB_HEALTH_TIMEOUT, 100 * MS, T0); /* a bidder timing out 60 % */
    ck_assert_double_eq_tol(rtb_health_share(&h, T0), 0.05, 1e-12);
    /* with more time than its p95 it is not too slow: throttled, min_share */
    ck_assert_int_eq(calls_left(1000, T0, 200 * MS, &r), 1 + 50);
    ck_assert_int_eq(r, RTB_SKIP_THROTTLED);
    /* with 90 ms left its p95 (>= 100 ms) is too slow: min_share again */
    ck_assert_int_eq(calls_in(1000, T0, &r), 1 + 50);
    ck_assert_int_eq(r, RTB_SKIP_TOO_SLOW);
    setup();
    record(100, RTB_HEALTH_TIMEOUT, 100 * MS, T0);
    ck_assert_double_eq_tol(rtb_health_share(&h, T0), 0.05, 1e-12);
}
END_TEST

START_TEST(recovers_as_failures_age_out) {
    record(50, RTB_HEALTH_TIMEOUT, 100 * MS, T0);
    ck_assert_double_eq_tol(rtb_health_share(&h, T0), 0.05, 1e-12);
    /* 5 s later it answers well: the old failures still weigh. */
    record(50, RTB_HEALTH_OK, 2 * MS, T0 + 5 * S);
    ck_assert_double_eq_tol(rtb_health_failure_rate(&h, T0 + 5 * S), 0.5, 1e-12);
    /* 10 s after them (window_s), they are gone. */
    ck_assert_double_eq(rtb_health_failure_rate(&h, T0 + 10 * S), 0);
    ck_assert_double_eq(rtb_health_share(&h, T0 + 10 * S), 1);
}
END_TEST

START_TEST(excused_timeouts_are_not_judged) {
    record(100, RTB_HEALTH_TIMEOUT_EXCUSED, 100 * MS, T0);
    ck_assert_double_eq(rtb_health_failure_rate(&h, T0), 0);
    ck_assert_double_eq(rtb_health_share(&h, T0), 1);
    ck_assert_int_eq(rtb_health_p95_us(&h, T0), -1); /* no latency learned from them */
    ck_assert_int_eq(rtb_health_circuit(&h, T0), RTB_CIRCUIT_CLOSED);
}
END_TEST

START_TEST(dry_run_counts_but_calls) {
    conf.dry_run = 1;
    record(100, RTB_HEALTH_TIMEOUT, 100 * MS, T0);
    int would = 0, called = 0;
    for (int i = 0; i < 100; i++) {
        rtb_skip_reason r;
        int w;
        called += rtb_health_decide(&h, T0, 200 * MS, &r, &w) != RTB_HEALTH_SKIP;
        would += w;
    }
    ck_assert_int_eq(called, 100);
    ck_assert_int_eq(would, 100 - 1 - 5); /* the first auction, then 5 % */
}
END_TEST

START_TEST(errors_in_a_row_open_the_circuit_and_a_probe_closes_it) {
    for (int i = 0; i < RTB_HEALTH_ERRORS_IN_A_ROW - 1; i++)
        ck_assert_int_eq(rtb_health_record(&h, RTB_HEALTH_ERROR, 0, -1, T0), 0);
    ck_assert_int_eq(rtb_health_circuit(&h, T0), RTB_CIRCUIT_CLOSED);
    ck_assert_int_eq(rtb_health_record(&h, RTB_HEALTH_ERROR, 0, -1, T0), 1); /* opened */
    ck_assert_int_eq(rtb_health_circuit(&h, T0), RTB_CIRCUIT_OPEN);
    rtb_skip_reason r = RTB_SKIP_COUNT;
    ck_assert_int_eq(calls_in(10, T0 + 999 * MS, &r), 0);
    ck_assert_int_eq(r, RTB_SKIP_CIRCUIT);
    /* After 1 s: one probe, and only one, while it is out. */
    ck_assert_int_eq(rtb_health_circuit(&h, T0 + 1 * S), RTB_CIRCUIT_HALF_OPEN);
    int w;
    ck_assert_int_eq(rtb_health_decide(&h, T0 + 1 * S, 90 * MS, &r, &w), RTB_HEALTH_PROBE);
    ck_assert_int_eq(calls_in(10, T0 + 1 * S, &r), 0);
    /* Answers to calls made before the circuit opened change nothing. */
    rtb_health_record(&h, RTB_HEALTH_OK, 0, 2 * MS, T0 + 1 * S);
    ck_assert_int_eq(rtb_health_circuit(&h, T0 + 1 * S), RTB_CIRCUIT_HALF_OPEN);
    /* The probe fails: open again for 2 s. */
    ck_assert_int_eq(rtb_health_record(&h, RTB_HEALTH_ERROR, 1, -1, T0 + 1 * S), 1);
    ck_assert_int_eq(rtb_health_circuit(&h, T0 + 2 * S), RTB_CIRCUIT_OPEN);
    ck_assert_int_eq(rtb_health_circuit(&h, T0 + 3 * S), RTB_CIRCUIT_HALF_OPEN);
    ck_assert_int_eq(rtb_health_decide(&h, T0 + 3 * S, 90 * MS, &r, &w), RTB_HEALTH_PROBE);
    /* An excused probe gives no verdict: the next auction probes again. */
    rtb_health_record(&h, RTB_HEALTH_TIMEOUT_EXCUSED, 1, -1, T0 + 3 * S);
    ck_assert_int_eq(rtb_health_decide(&h, T0 + 3 * S, 90 * MS, &r, &w), RTB_HEALTH_PROBE);
    /* It answers: closed, and the pause starts from 1 s again. */
    ck_assert_int_eq(rtb_health_record(&h, RTB_HEALTH_OK, 1, 2 * MS, T0 + 3 * S), 0);
    ck_assert_int_eq(rtb_health_circuit(&h, T0 + 3 * S), RTB_CIRCUIT_CLOSED);
    for (int i = 0; i < RTB_HEALTH_ERRORS_IN_A_ROW; i++)
        rtb_health_record(&h, RTB_HEALTH_ERROR, 0, -1, T0 + 4 * S);
    ck_assert_int_eq(rtb_health_circuit(&h, T0 + 5 * S), RTB_CIRCUIT_HALF_OPEN);
}
END_TEST

START_TEST(timeouts_never_open_the_circuit) {
    record(200, RTB_HEALTH_TIMEOUT, 100 * MS, T0);
    ck_assert_int_eq(rtb_health_circuit(&h, T0), RTB_CIRCUIT_CLOSED);
}
END_TEST

START_TEST(half_errors_open_the_circuit) {
    /* Errors between good answers, never 5 in a row: the rate opens it. */
    int opened = 0;
    for (int i = 0; i < 20 && !opened; i++) {
        opened = rtb_health_record(&h, RTB_HEALTH_ERROR, 0, -1, T0);
        if (!opened) rtb_health_record(&h, RTB_HEALTH_OK, 0, 2 * MS, T0);
    }
    ck_assert_int_eq(opened, 1);
    ck_assert_int_eq(rtb_health_circuit(&h, T0), RTB_CIRCUIT_OPEN);
}
END_TEST

START_TEST(too_slow_for_the_time_left_keeps_min_share) {
    record(100, RTB_HEALTH_OK, 150 * MS, T0); /* always 150 ms */
    ck_assert_int_eq(rtb_health_p95_us(&h, T0), 151 * MS);
    rtb_skip_reason r = RTB_SKIP_COUNT;
    ck_assert_int_eq(calls_in(1000, T0, &r), 1 + 50); /* 90 ms left: min_share */
    ck_assert_int_eq(r, RTB_SKIP_TOO_SLOW);
    int w;
    ck_assert_int_eq(rtb_health_decide(&h, T0, 200 * MS, &r, &w), RTB_HEALTH_CALL);
    /* It forgets: with a 10 s time constant, 60 s later fewer than min_calls
     * are remembered and nothing is known. */
    ck_assert_int_eq(rtb_health_p95_us(&h, T0 + 60 * S), -1);
    /* It speeds up: new samples outweigh the old ones. */
    record(2000, RTB_HEALTH_OK, 5 * MS, T0 + 30 * S);
    ck_assert_int_lt(rtb_health_p95_us(&h, T0 + 30 * S), 10 * MS);
}
END_TEST

/* A bidder slow for a moment (a cold start: 30 % timeouts in its first
 * second) is back in every auction after min_calls fast answers in a row
 * at min_share, not after its timeouts have been forgotten (tens of
 * seconds); a bidder that stays slow never is. */
START_TEST(too_slow_recovers_as_it_succeeds) {
    record(30, RTB_HEALTH_TIMEOUT, 100 * MS, T0);
    record(70, RTB_HEALTH_OK, 2 * MS, T0);
    rtb_skip_reason r = RTB_SKIP_COUNT;
    ck_assert_int_eq(calls_in(100, T0, &r), 1 + 5); /* p95 >= 100 ms: min_share */
    ck_assert_int_eq(r, RTB_SKIP_TOO_SLOW);
    /* Its calls at min_share answer in 2 ms, but a timeout breaks the run. */
    record(19, RTB_HEALTH_OK, 2 * MS, T0 + 100 * MS);
    record(1, RTB_HEALTH_TIMEOUT, 100 * MS, T0 + 100 * MS);
    record(19, RTB_HEALTH_OK, 2 * MS, T0 + 200 * MS);
    ck_assert_int_eq(calls_in(100, T0 + 200 * MS, &r), 5);
    ck_assert_int_eq(r, RTB_SKIP_TOO_SLOW);
    /* An answer within the time but slower than the 90 ms left breaks it too. */
    record(1, RTB_HEALTH_OK, 95 * MS, T0 + 300 * MS);
    record(19, RTB_HEALTH_OK, 2 * MS, T0 + 300 * MS);
    ck_assert_int_eq(calls_in(100, T0 + 300 * MS, &r), 5);
    /* The 20th fast answer in a row (min_calls): a fresh histogram, and its
     * p95 is known again after min_calls more. Not too slow any more, only
     * throttled by the 31 timeouts of 160 calls in its window (share 0.82),
     * until they age out. */
    record(1, RTB_HEALTH_OK, 2 * MS, T0 + 400 * MS);
    ck_assert_int_eq(rtb_health_p95_us(&h, T0 + 400 * MS), -1);
    r = RTB_SKIP_COUNT;
    ck_assert_int_eq(calls_in(100, T0 + 400 * MS, &r), 83);
    ck_assert_int_eq(r, RTB_SKIP_THROTTLED);
    record(20, RTB_HEALTH_OK, 2 * MS, T0 + 500 * MS);
    ck_assert_int_eq(rtb_health_p95_us(&h, T0 + 500 * MS), 3 * MS);
    ck_assert_int_eq(calls_in(100, T0 + 11 * S, &r), 100);

    /* Always 150 ms: every sampled answer is too slow, so it never recovers. */
    setup();
    record(100, RTB_HEALTH_OK, 150 * MS, T0);
    ck_assert_int_eq(calls_in(100, T0, &r), 1 + 5);
    for (int s = 1; s <= 20; s++) {
        record(50, RTB_HEALTH_OK, 150 * MS, T0 + s * S);
        ck_assert_int_eq(calls_in(100, T0 + s * S, &r), 5);
        ck_assert_int_eq(r, RTB_SKIP_TOO_SLOW);
    }
}
END_TEST

/* ---- Admission ---------------------------------------------------------------------- */

static rtb_admission a;

/* Probes every 10 ms from `from` for `periods` periods of 100 ms, each late
 * by lag_us, with `open` auctions and the loop busy `busy` of the time; with
 * `deadline`, an auction runs to its deadline in each period. Returns the
 * time after the last probe; *cpu carries the CPU clock. */
static int64_t run_ex(int64_t from, int periods, int64_t lag_us, size_t open, double busy,
                      int deadline, int64_t *cpu) {
    int64_t now = from;
    for (int p = 0; p < periods * 10; p++) {
        now += 10 * MS;
        *cpu += (int64_t)(busy * 10 * MS);
        if (deadline && p % 10 == 0) rtb_admission_deadline_close(&a);
        rtb_admission_probe(&a, now - lag_us, now, open, *cpu);
    }
    return now;
}

/* The same with auctions running to their deadline. */
static int64_t run(int64_t from, int periods, int64_t lag_us, size_t open, double busy,
                   int64_t *cpu) {
    return run_ex(from, periods, lag_us, open, busy, 1, cpu);
}

START_TEST(admission_backs_off_on_lag_and_grows_back) {
    int64_t cpu = 0;
    rtb_admission_init(&a, 5 * MS, 100 * MS, 10000, 0, 0);
    ck_assert_double_eq(a.limit, 10000);
    rtb_admission_probe(&a, T0, T0, 0, cpu); /* starts the first period */
    int64_t now = run(T0, 1, 0, 50, 0.3, &cpu);
    ck_assert_double_eq(a.limit, 10000); /* on time, far from the limit: unchanged */
    ck_assert(rtb_admission_on_time(&a, T0));

    now = run(now, 1, 20 * MS, 100, 0.3, &cpu); /* 20 ms late: gradient 5/20 -> 0.5 */
    ck_assert_double_eq_tol(a.limit, 50, 1e-9); /* 100 open on average, halved */
    ck_assert(!rtb_admission_on_time(&a, T0));
    ck_assert(rtb_admission_on_time(&a, now + 1));
    ck_assert_int_eq(rtb_admission_decide(&a, 49, 0, now), RTB_ADMISSION_ACCEPT);
    ck_assert_int_eq(rtb_admission_decide(&a, 50, 0, now), RTB_ADMISSION_SHED_LIMIT);

    now = run(now, 1, 0, 45, 0.3, &cpu); /* on time, limit nearly reached: + sqrt(50) */
    ck_assert_double_eq_tol(a.limit, 50 + 7.0710678118654755, 1e-9);
    now = run(now, 1, 0, 10, 0.3, &cpu); /* far from it: no growth */
    ck_assert_double_eq_tol(a.limit, 50 + 7.0710678118654755, 1e-9);
    ck_assert_uint_eq(a.shed[RTB_ADMISSION_SHED_LIMIT], 1);
}
END_TEST

START_TEST(admission_tolerates_lag_while_auctions_close_early) {
    int64_t cpu = 0;
    rtb_admission_init(&a, 5 * MS, 100 * MS, 10000, 0, 0);
    rtb_admission_probe(&a, T0, T0, 0, cpu);
    /* Every auction closed before its deadline: 20 ms of lag delays them,
     * breaks no promise (up to tmax / 4 = 25 ms) */
    int64_t now = run_ex(T0, 1, 20 * MS, 100, 0.5, 0, &cpu);
    ck_assert_double_eq(a.limit, 10000);
    /* ... but 50 ms does: gradient 25 / 50 */
    run_ex(now, 1, 50 * MS, 100, 0.5, 0, &cpu);
    ck_assert_double_eq_tol(a.limit, 50, 1e-9);
}
END_TEST

START_TEST(admission_backs_off_when_the_loop_is_full) {
    int64_t cpu = 0;
    rtb_admission_init(&a, 5 * MS, 100 * MS, 10000, 0, 0);
    rtb_admission_probe(&a, T0, T0, 0, cpu);
    /* A burst the loop absorbs: two full periods change nothing ... */
    int64_t now = run(T0, 2, 0, 200, 1.0, &cpu);
    ck_assert_double_eq_tol(a.busy, 1.0, 1e-9);
    ck_assert_double_eq(a.limit, 10000);
    /* ... a third in a row is overload: gradient 0.9 / 1.0 */
    run(now, 1, 0, 200, 1.0, &cpu);
    ck_assert_double_eq_tol(a.limit, 180, 1e-9);
    run(T0 + S, 20, 0, 1, 1.0, &cpu); /* never below RTB_ADMISSION_MIN_LIMIT */
    ck_assert_double_eq(a.limit, RTB_ADMISSION_MIN_LIMIT);
}
END_TEST

START_TEST(admission_sheds_when_late_or_at_the_hard_cap) {
    rtb_admission_init(&a, 5 * MS, 100 * MS, 3, 0, 0);
    ck_assert_int_eq(rtb_admission_decide(&a, 3, 0, T0), RTB_ADMISSION_SHED_MAX);
    /* the oldest open auction should have closed 6 ms ago: the loop is behind */
    ck_assert_int_eq(rtb_admission_decide(&a, 1, T0 - 6 * MS, T0), RTB_ADMISSION_SHED_LATE);
    ck_assert_int_eq(rtb_admission_decide(&a, 1, T0 - 4 * MS, T0), RTB_ADMISSION_ACCEPT);
    ck_assert_uint_eq(a.shed[RTB_ADMISSION_SHED_MAX], 1);
    ck_assert_uint_eq(a.shed[RTB_ADMISSION_SHED_LATE], 1);
}
END_TEST

static Suite *health_suite(void) {
    Suite *s = suite_create("health");
    TCase *tc = tcase_create("bidder");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, healthy_bidder_gets_every_auction);
    tcase_add_test(tc, few_failures_never_throttle);
    tcase_add_test(tc, share_falls_with_the_failure_rate_never_below_min);
    tcase_add_test(tc, recovers_as_failures_age_out);
    tcase_add_test(tc, excused_timeouts_are_not_judged);
    tcase_add_test(tc, dry_run_counts_but_calls);
    tcase_add_test(tc, errors_in_a_row_open_the_circuit_and_a_probe_closes_it);
    tcase_add_test(tc, timeouts_never_open_the_circuit);
    tcase_add_test(tc, half_errors_open_the_circuit);
    tcase_add_test(tc, too_slow_for_the_time_left_keeps_min_share);
    tcase_add_test(tc, too_slow_recovers_as_it_succeeds);
    suite_add_tcase(s, tc);
    tc = tcase_create("admission");
    tcase_add_test(tc, admission_backs_off_on_lag_and_grows_back);
    tcase_add_test(tc, admission_tolerates_lag_while_auctions_close_early);
    tcase_add_test(tc, admission_backs_off_when_the_loop_is_full);
    tcase_add_test(tc, admission_sheds_when_late_or_at_the_hard_cap);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(health_suite());
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

/* test_sampler.c -- the dashboard's arithmetic without servers: latency
 * histogram bounds derived from tmax_ms and their quantiles (rtb/stats.h),
 * and the per-second sampler ring (rtb/sampler.h) fed with exact counters
 * and times. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "rtb/registry.h"
#include "rtb/sampler.h"
#include "rtb/stats.h"
#include "tests/two_bidders.h"

#define WALL0 INT64_C(1795000000000000)
#define S 1000000

/* ---- Latency bounds ------------------------------------------------------------------ */

START_TEST(bounds_follow_tmax) {
    rtb_latency_bounds b;
    rtb_latency_bounds_init(&b, 100);
    const int64_t want100[RTB_LATENCY_BUCKETS - 1] = {
        1000,   2000,   5000,   10000,  20000,  50000,  75000,   100000,
        102000, 105000, 110000, 150000, 200000, 500000, 1000000,
    };
    for (int i = 0; i < RTB_LATENCY_BUCKETS - 1; i++)
        ck_assert_int_eq(b.us[i], want100[i]);
    rtb_latency_bounds_init(&b, 250); /* the deadline moves, the buckets move with it */
    ck_assert_int_eq(b.us[7], 250000);
    ck_assert_int_eq(b.us[8], 252000);
    ck_assert_int_eq(b.us[9], 255000);
    ck_assert_int_eq(b.us[14], 2500000);
    rtb_latency_bounds_init(&b, 1); /* tiny tmax: still strictly increasing */
    for (int i = 1; i < RTB_LATENCY_BUCKETS - 1; i++)
        ck_assert_int_gt(b.us[i], b.us[i - 1]);
    ck_assert_int_gt(b.us[0], 0);
}
END_TEST

START_TEST(bucket_and_quantile) {
    rtb_latency_bounds b;
    rtb_latency_bounds_init(&b, 100);
    ck_assert_uint_eq(rtb_latency_bucket(&b, 0), 0);
    ck_assert_uint_eq(rtb_latency_bucket(&b, 1000), 0); /* bounds are inclusive */
    ck_assert_uint_eq(rtb_latency_bucket(&b, 1001), 1);
    ck_assert_uint_eq(rtb_latency_bucket(&b, 100000), 7);
    ck_assert_uint_eq(rtb_latency_bucket(&b, 103000), 9);
    ck_assert_uint_eq(rtb_latency_bucket(&b, INT64_C(5000000)), RTB_LATENCY_BUCKETS - 1);

    unsigned long long buckets[RTB_LATENCY_BUCKETS] = {0};
    ck_assert_double_eq(rtb_latency_quantile_ms(&b, buckets, 0.5), -1);
    buckets[3] = 10; /* 10 auctions in (5, 10] ms */
    ck_assert_double_eq_tol(rtb_latency_quantile_ms(&b, buckets, 0.5), 7.5, 1e-9);
    ck_assert_double_eq_tol(rtb_latency_quantile_ms(&b, buckets, 1.0), 10.0, 1e-9);
    buckets[RTB_LATENCY_BUCKETS - 1] = 990; /* most beyond 10 tmax: the lower bound */
    ck_assert_double_eq_tol(rtb_latency_quantile_ms(&b, buckets, 0.99), 1000.0, 1e-9);

    rtb_stats s;
    memset(&s, 0, sizeof(s));
    rtb_stats_observe_latency(&s, &b, 4000);
    rtb_stats_observe_latency(&s, &b, 101500);
    ck_assert_uint_eq(s.latency_buckets[2], 1);
    ck_assert_uint_eq(s.latency_buckets[8], 1);
    ck_assert_uint_eq(s.latency_count, 2);
    ck_assert_int_eq(s.latency_sum_us, 105500);
}
END_TEST

/* ---- The sampler ring ---------------------------------------------------------------- */

static proto_config cfg;
static rtb_registry *reg;

static void reg_setup(void) {
    reg = two_bidders_new(&cfg);
}

static void reg_teardown(void) {
    two_bidders_free(reg, &cfg);
}

START_TEST(samples_are_growth_per_second) {
    rtb_stats st;
    memset(&st, 0, sizeof(st));
    st.requests = 1000; /* before the sampler: not counted */
    rtb_sampler *s = rtb_sampler_new(&st);
    ck_assert_uint_eq(rtb_sampler_count(s), 0);

    st.requests += 7;
    st.results[PROTO_STATUS_SUCCESS] += 5;
    st.results[PROTO_STATUS_TIMEOUT] += 2;
    st.latency_buckets[3] += 7;
    rtb_registry_at(reg, 0)->stats.calls = 7;
    rtb_registry_at(reg, 0)->stats.timeouts = 2;
    rtb_sampler_take(s, WALL0 + 1 * S, &st, reg);

    st.requests += 3;
    st.results[PROTO_STATUS_NO_BID] += 3;
    st.clicks += 4;
    rtb_registry_at(reg, 0)->stats.calls = 10;
    rtb_registry_at(reg, 1)->stats.calls = 3;
    rtb_sampler_take(s, WALL0 + 2 * S, &st, reg);
    ck_assert_uint_eq(rtb_sampler_count(s), 2);

    rtb_sample_counts c;
    int64_t wall;
    rtb_sampler_sample(s, 0, &c, &wall); /* the latest */
    ck_assert_int_eq(wall, WALL0 + 2 * S);
    ck_assert_uint_eq(c.requests, 3);
    ck_assert_uint_eq(c.results[PROTO_STATUS_NO_BID], 3);
    ck_assert_uint_eq(c.clicks, 4);
    rtb_sampler_sample(s, 1, &c, &wall);
    ck_assert_int_eq(wall, WALL0 + 1 * S);
    ck_assert_uint_eq(c.requests, 7);
    ck_assert_uint_eq(c.latency_buckets[3], 7);

    ck_assert_int_eq(rtb_sampler_window(s, 10, &c), 2); /* only 2 seconds held */
    ck_assert_uint_eq(c.requests, 10);
    ck_assert_uint_eq(c.results[PROTO_STATUS_SUCCESS], 5);
    ck_assert_int_eq(rtb_sampler_window(s, 1, &c), 1);
    ck_assert_uint_eq(c.requests, 3);

    rtb_sample_bidder_counts bc;
    rtb_sampler_bidder_window(s, 0, 2, &bc);
    ck_assert_uint_eq(bc.calls, 10);
    ck_assert_uint_eq(bc.timeouts, 2);
    rtb_sampler_bidder_window(s, 1, 2, &bc);
    ck_assert_uint_eq(bc.calls, 3);
    rtb_sampler_bidder_window(s, 7, 2, &bc); /* unknown index: nothing */
    ck_assert_uint_eq(bc.calls, 0);
    rtb_sampler_free(s);
}
END_TEST

/* The per-advertiser counts behind the alert metrics of SPEC 16 (ctr, cvr,
 * cpc, spend_rate, win_rate): events, wins and spend per second, spend in
 * 64 bits (a second of CPM wins can pass 2^32 micros). */
START_TEST(advertiser_events_and_spend) {
    rtb_stats st;
    memset(&st, 0, sizeof(st));
    rtb_bidder_stats *a = &rtb_registry_at(reg, 0)->stats;
    a->impressions = 5; /* before the sampler knew it: in its first sample */
    rtb_sampler *s = rtb_sampler_new(&st);
    a->impressions = 20;
    a->clicks = 4;
    a->conversions = 1;
    a->bids = 10;
    a->wins = 6;
    a->spend_cpm_micros = 6ULL * 3000000000ULL; /* 6 wins at a 3000.0 CPM */
    rtb_sampler_take(s, WALL0 + 1 * S, &st, reg);
    a->impressions = 30;
    a->clicks = 5;
    a->spend_cpm_micros += 1500000;
    rtb_sampler_take(s, WALL0 + 2 * S, &st, reg);

    rtb_sample_bidder_counts bc;
    ck_assert_int_eq(rtb_sampler_bidder_window(s, 0, 1, &bc), 1);
    ck_assert_uint_eq(bc.impressions, 10);
    ck_assert_uint_eq(bc.clicks, 1);
    ck_assert_uint_eq(bc.conversions, 0);
    ck_assert_uint_eq(bc.spend_cpm_micros, 1500000);
    ck_assert_int_eq(rtb_sampler_bidder_window(s, 0, 5, &bc), 2);
    ck_assert_uint_eq(bc.impressions, 30);
    ck_assert_uint_eq(bc.clicks, 5);
    ck_assert_uint_eq(bc.conversions, 1);
    ck_assert_uint_eq(bc.bids, 10);
    ck_assert_uint_eq(bc.wins, 6);
    ck_assert_uint_eq(bc.spend_cpm_micros, 6ULL * 3000000000ULL + 1500000);
    rtb_sampler_bidder_window(s, 1, 5, &bc); /* the other advertiser: nothing */
    ck_assert_uint_eq(bc.impressions + bc.clicks + bc.spend_cpm_micros, 0);
    rtb_sampler_free(s);
    memset(a, 0, sizeof(*a));
}
END_TEST

START_TEST(ring_keeps_the_last_ten_minutes) {
    rtb_stats st;
    memset(&st, 0, sizeof(st));
    rtb_sampler *s = rtb_sampler_new(&st);
    for (int sec = 1; sec <= RTB_SAMPLER_HISTORY_S + 50; sec++) {
        st.requests += (unsigned long long)sec; /* second `sec` saw `sec` requests */
        rtb_sampler_take(s, WALL0 + sec * S, &st, reg);
    }
    ck_assert_uint_eq(rtb_sampler_count(s), RTB_SAMPLER_HISTORY_S);
    rtb_sample_counts c;
    int64_t wall;
    rtb_sampler_sample(s, RTB_SAMPLER_HISTORY_S - 1, &c, &wall); /* the oldest kept */
    ck_assert_int_eq(wall, WALL0 + 51 * S);
    ck_assert_uint_eq(c.requests, 51);
    ck_assert_int_eq(rtb_sampler_window(s, 3, &c), 3);
    ck_assert_uint_eq(c.requests, 650 + 649 + 648);
    rtb_sampler_free(s);
}
END_TEST

START_TEST(counter_going_back_counts_zero) {
    rtb_stats st;
    memset(&st, 0, sizeof(st));
    st.requests = 10;
    rtb_sampler *s = rtb_sampler_new(&st);
    st.requests = 4; /* never happens in the exchange; must not wrap to 2^64 */
    rtb_sampler_take(s, WALL0 + S, &st, reg);
    rtb_sample_counts c;
    rtb_sampler_window(s, 1, &c);
    ck_assert_uint_eq(c.requests, 0);
    rtb_sampler_free(s);
}
END_TEST

static Suite *sampler_suite(void) {
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("stats");
    tcase_add_test(tc, bounds_follow_tmax);
    tcase_add_test(tc, bucket_and_quantile);
    suite_add_tcase(s, tc);
    tc = tcase_create("ring");
    tcase_add_checked_fixture(tc, reg_setup, reg_teardown);
    tcase_add_test(tc, samples_are_growth_per_second);
    tcase_add_test(tc, advertiser_events_and_spend);
    tcase_add_test(tc, ring_keeps_the_last_ten_minutes);
    tcase_add_test(tc, counter_going_back_counts_zero);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(sampler_suite());
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

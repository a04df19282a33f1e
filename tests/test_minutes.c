/* test_minutes.c -- the campaign view's per-advertiser minute ring
 * (rtb/minutes.h) without servers: exact counters and times go in, the
 * 60-point series of GET /api/advertisers/{id} comes out. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "rtb/minutes.h"
#include "rtb/registry.h"
#include "tests/two_bidders.h"

/* A minute boundary: 1795000020 s = 29916667 minutes exactly. */
#define MIN0 INT64_C(29916667)
#define S INT64_C(1000000)
#define AT(minute, second) (((MIN0 + (minute)) * 60 + (second)) * S)

static proto_config cfg;
static rtb_registry *reg;

static void reg_setup(void) {
    reg = two_bidders_new(&cfg);
}

static void reg_teardown(void) {
    two_bidders_free(reg, &cfg);
}

static rtb_bidder_stats *stats_of(size_t i) {
    return &rtb_registry_at(reg, i)->stats;
}

START_TEST(before_the_first_take_all_is_zero) {
    rtb_minutes *m = rtb_minutes_new();
    rtb_minute_counts out[RTB_MINUTES];
    int64_t first = -1;
    rtb_minutes_series(m, 0, out, &first);
    ck_assert_int_eq(first, 0);
    for (int k = 0; k < RTB_MINUTES; k++)
        ck_assert_uint_eq(out[k].calls + out[k].wins + out[k].spend_cpm_micros, 0);
    rtb_minutes_free(m);
}
END_TEST

START_TEST(seconds_add_up_into_their_minute) {
    rtb_minutes *m = rtb_minutes_new();
    stats_of(0)->calls = 100; /* before the first take: counted from 0, in its minute */
    rtb_minutes_take(m, AT(0, 1), reg);
    stats_of(0)->calls = 130;
    stats_of(0)->bids = 20;
    stats_of(0)->wins = 5;
    stats_of(0)->spend_cpm_micros = 12345678901ULL; /* > 2^32: one minute of a rich advertiser */
    stats_of(0)->impressions = 4;
    stats_of(0)->clicks = 2;
    stats_of(0)->conversions = 1;
    rtb_minutes_take(m, AT(0, 59), reg); /* same minute */
    stats_of(0)->calls = 131;
    stats_of(1)->wins = 3;
    rtb_minutes_take(m, AT(1, 0), reg); /* the next minute */

    rtb_minute_counts out[RTB_MINUTES];
    int64_t first;
    rtb_minutes_series(m, 0, out, &first);
    ck_assert_int_eq(first, (MIN0 + 1 - (RTB_MINUTES - 1)) * 60);
    const rtb_minute_counts *was = &out[RTB_MINUTES - 2], *now = &out[RTB_MINUTES - 1];
    ck_assert_uint_eq(was->calls, 130);
    ck_assert_uint_eq(was->bids, 20);
    ck_assert_uint_eq(was->wins, 5);
    ck_assert_uint_eq(was->spend_cpm_micros, 12345678901ULL);
    ck_assert_uint_eq(was->impressions, 4);
    ck_assert_uint_eq(was->clicks, 2);
    ck_assert_uint_eq(was->conversions, 1);
    ck_assert_uint_eq(now->calls, 1);
    ck_assert_uint_eq(now->wins, 0);
    for (int k = 0; k < RTB_MINUTES - 2; k++) /* no take there */
        ck_assert_uint_eq(out[k].calls, 0);
    rtb_minutes_series(m, 1, out, NULL);
    ck_assert_uint_eq(out[RTB_MINUTES - 1].wins, 3);
    ck_assert_uint_eq(out[RTB_MINUTES - 2].wins, 0);
    rtb_minutes_series(m, 7, out, NULL); /* an index it never saw: zero */
    ck_assert_uint_eq(out[RTB_MINUTES - 1].calls + out[RTB_MINUTES - 2].calls, 0);
    rtb_minutes_free(m);
}
END_TEST

START_TEST(an_hour_later_old_minutes_are_gone) {
    rtb_minutes *m = rtb_minutes_new();
    for (int minute = 0; minute < 90; minute++) { /* minute `minute` sees minute + 1 wins */
        stats_of(0)->wins += (unsigned long long)minute + 1;
        rtb_minutes_take(m, AT(minute, 30), reg);
    }
    rtb_minute_counts out[RTB_MINUTES];
    int64_t first;
    rtb_minutes_series(m, 0, out, &first);
    ck_assert_int_eq(first, (MIN0 + 30) * 60);
    for (int k = 0; k < RTB_MINUTES; k++)
        ck_assert_uint_eq(out[k].wins, 31 + k);

    /* A pause of 10 minutes: those minutes read zero, not what their slots
     * held an hour ago. */
    stats_of(0)->wins += 1000;
    rtb_minutes_take(m, AT(99, 0), reg);
    rtb_minutes_series(m, 0, out, &first);
    ck_assert_int_eq(first, (MIN0 + 40) * 60);
    ck_assert_uint_eq(out[RTB_MINUTES - 1].wins, 1000);
    for (int k = RTB_MINUTES - 10; k < RTB_MINUTES - 1; k++)
        ck_assert_uint_eq(out[k].wins, 0);
    ck_assert_uint_eq(out[0].wins, 41);                /* minute 40 */
    ck_assert_uint_eq(out[RTB_MINUTES - 11].wins, 90); /* minute 89 */

    /* Two hours on: nothing is left but the latest minute. */
    stats_of(0)->wins += 1;
    rtb_minutes_take(m, AT(220, 0), reg);
    rtb_minutes_series(m, 0, out, NULL);
    ck_assert_uint_eq(out[RTB_MINUTES - 1].wins, 1);
    for (int k = 0; k < RTB_MINUTES - 1; k++)
        ck_assert_uint_eq(out[k].wins, 0);
    rtb_minutes_free(m);
}
END_TEST

START_TEST(clock_stepping_back_counts_in_the_latest_minute) {
    rtb_minutes *m = rtb_minutes_new();
    rtb_minutes_take(m, AT(5, 0), reg);
    stats_of(0)->calls = 9;
    rtb_minutes_take(m, AT(3, 0), reg); /* the wall clock stepped back two minutes */
    stats_of(0)->calls = 4;             /* a counter going back: never wraps */
    rtb_minutes_take(m, AT(5, 10), reg);
    rtb_minute_counts out[RTB_MINUTES];
    int64_t first;
    rtb_minutes_series(m, 0, out, &first);
    ck_assert_int_eq(first, (MIN0 + 5 - (RTB_MINUTES - 1)) * 60);
    ck_assert_uint_eq(out[RTB_MINUTES - 1].calls, 9);
    ck_assert_uint_eq(out[RTB_MINUTES - 3].calls, 0);
    rtb_minutes_free(m);
}
END_TEST

static Suite *minutes_suite(void) {
    Suite *s = suite_create("minutes");
    TCase *tc = tcase_create("ring");
    tcase_add_checked_fixture(tc, reg_setup, reg_teardown);
    tcase_add_test(tc, before_the_first_take_all_is_zero);
    tcase_add_test(tc, seconds_add_up_into_their_minute);
    tcase_add_test(tc, an_hour_later_old_minutes_are_gone);
    tcase_add_test(tc, clock_stepping_back_counts_in_the_latest_minute);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(minutes_suite());
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

/* test_budget.c -- daily budgets and pacing (rtb/budget.h, SPEC 16) with
 * injected wall time: the UTC day of a time, asap and even to the micro, the
 * roll-over at midnight UTC (never waited for: the time is a parameter), and
 * the local figure kept in step with Redis without counting a win twice.
 * The live exchange's side (skipped with reason budget, the Redis key, other
 * exchanges' spend) is tests/test_pacing.c. */
#include <check.h>
#include <stdint.h>

#include "rtb/budget.h"

#define S INT64_C(1000000)
#define MS INT64_C(1000)
#define DAY RTB_BUDGET_DAY_US
/* 2025-01-01 00:00:00 UTC, Unix µs */
#define JAN1 (INT64_C(1735689600) * S)

/* Micros as CPM clearing micros: a win at `cpm` costs cpm / 1000. */
#define CPM(micros) ((micros)*1000)

static rtb_budget budget(int64_t daily_micros, proto_pacing pacing) {
    rtb_budget b = {0};
    rtb_budget_set(&b, daily_micros, pacing);
    return b;
}

START_TEST(utc_day_of_a_time) {
    static const struct {
        int64_t unix_s;
        long day;
    } cases[] = {
        {0, 19700101},          {86399, 19700101},        {86400, 19700102},      {-1, 19691231},
        {-86400, 19691231},     {-86401, 19691230},       {1709164800, 20240229}, /* a leap day */
        {1735689599, 20241231}, {1735689600, 20250101},   {951782400, 20000229},  /* 2000 is a leap
                                                                                     year */
        {4107456000, 21000228}, {4107542400, 21000301},                           /* 2100 is not */
        {2147472000, 20380119}, {253402214400, 99991231},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(rtb_budget_day(cases[i].unix_s * S) == cases[i].day, "%lld s: %ld, not %ld",
                      (long long)cases[i].unix_s, rtb_budget_day(cases[i].unix_s * S),
                      cases[i].day);
    /* The last µs of a day is still that day. */
    ck_assert_int_eq(rtb_budget_day(JAN1 - 1), 20241231);
    ck_assert_int_eq(rtb_budget_day(JAN1), 20250101);
}
END_TEST

START_TEST(no_budget_is_always_called) {
    rtb_budget b = {0};
    ck_assert_int_eq(rtb_budget_admit(&b, JAN1), 1);
    ck_assert_int_eq(rtb_budget_win(&b, CPM(INT64_C(1000000000000)), JAN1), 0); /* no key */
    ck_assert_int_eq(rtb_budget_admit(&b, JAN1), 1);
    ck_assert_int_eq(rtb_budget_refresh_begin(&b, JAN1), 0);
    ck_assert_int_eq(rtb_budget_allowance_micros(&b, JAN1), 0);
    /* A budget set to 0 is removed. */
    b = budget(5 * S, PROTO_PACING_ASAP);
    rtb_budget_win(&b, CPM(5 * S), JAN1);
    ck_assert_int_eq(rtb_budget_admit(&b, JAN1), 0);
    rtb_budget_set(&b, 0, PROTO_PACING_ASAP);
    ck_assert_int_eq(rtb_budget_admit(&b, JAN1), 1);
}
END_TEST

/* asap: called while the exact spend (sum / 1000) is below the budget. */
START_TEST(asap_stops_at_the_budget_exactly) {
    rtb_budget b = budget(1 * S, PROTO_PACING_ASAP); /* 1.000000 a day */
    int64_t t = JAN1 + 3 * S;
    ck_assert_int_eq(rtb_budget_admit(&b, t), 1);
    ck_assert_int_eq(rtb_budget_win(&b, 999999999, t), 20250101); /* spend 0.999999 */
    ck_assert_int_eq(rtb_budget_admit(&b, t), 1);
    ck_assert_int_eq(rtb_budget_spent_micros(&b, t), 999999);
    ck_assert_int_eq(rtb_budget_win(&b, 1, t), 20250101); /* sum 10^9: spend 1.000000 */
    ck_assert_int_eq(rtb_budget_spent_micros(&b, t), 1000000);
    ck_assert_int_eq(rtb_budget_admit(&b, t), 0);
    /* ... and stays so for the rest of the day, whatever its hour. */
    ck_assert_int_eq(rtb_budget_admit(&b, JAN1 + DAY - 1), 0);
    ck_assert_int_eq(rtb_budget_allowance_micros(&b, t), 1000000);
}
END_TEST

/* The sum is exact: fractions of a micro add up instead of being dropped
 * per win (SPEC 14). 1000 wins at 0.000999 CPM spend 0.000999 (not 0), and
 * the sum reaching 10^6 CPM micros spends the budget of 0.001. */
START_TEST(sum_is_exact) {
    rtb_budget b = budget(1000, PROTO_PACING_ASAP); /* 0.001 a day */
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(rtb_budget_admit(&b, JAN1), 1);
        rtb_budget_win(&b, 999, JAN1);
    }
    ck_assert_int_eq(rtb_budget_spent_micros(&b, JAN1), 999);
    for (int i = 0; i < 999; i++)
        rtb_budget_win(&b, 1, JAN1);
    ck_assert_int_eq(rtb_budget_spent_micros(&b, JAN1), 999); /* sum 999999 */
    ck_assert_int_eq(rtb_budget_admit(&b, JAN1), 1);
    rtb_budget_win(&b, 1, JAN1);
    ck_assert_int_eq(rtb_budget_admit(&b, JAN1), 0);
}
END_TEST

/* even: at or below the elapsed share of the day plus 5 %. A budget of
 * 86.4 a day allows exactly 1 micro per ms. */
START_TEST(even_follows_the_clock) {
    const int64_t daily = INT64_C(86400000);
    const int64_t slack = daily / 20; /* 5 %: 4.32 */
    static const int64_t at_ms[] = {0, 1, 1000, 3600000, 43200000, 80000000};
    for (size_t i = 0; i < sizeof at_ms / sizeof at_ms[0]; i++) {
        int64_t t = JAN1 + at_ms[i] * MS;
        int64_t allowed = at_ms[i] + slack; /* micros */
        rtb_budget b = budget(daily, PROTO_PACING_EVEN);
        ck_assert_int_eq(rtb_budget_allowance_micros(&b, t), allowed);
        rtb_budget_win(&b, CPM(allowed), t);
        ck_assert_msg(rtb_budget_admit(&b, t) == 1, "at %lld ms: spend %lld is allowed",
                      (long long)at_ms[i], (long long)allowed);
        rtb_budget_win(&b, 1000, t); /* one micro more */
        ck_assert_msg(rtb_budget_admit(&b, t) == 0, "at %lld ms: spend %lld is over",
                      (long long)at_ms[i], (long long)allowed + 1);
        /* 1 ms later the same spend is allowed again. */
        ck_assert_int_eq(rtb_budget_admit(&b, t + MS), 1);
    }
    /* Sub-millisecond times count from the last whole ms. */
    rtb_budget b = budget(daily, PROTO_PACING_EVEN);
    ck_assert_int_eq(rtb_budget_allowance_micros(&b, JAN1 + 999), slack);
    /* Late in the day the share plus 5 % passes the budget: the budget caps. */
    int64_t late = JAN1 + DAY - 1;
    ck_assert_int_eq(rtb_budget_allowance_micros(&b, late), daily);
    rtb_budget_win(&b, CPM(daily - 1), late);
    ck_assert_int_eq(rtb_budget_admit(&b, late), 1);
    rtb_budget_win(&b, 1000, late);
    ck_assert_int_eq(rtb_budget_admit(&b, late), 0);
}
END_TEST

/* The first seconds of a day: even lets 5 % go, asap all of it. */
START_TEST(even_spends_far_less_than_asap_early) {
    rtb_budget asap = budget(10 * S, PROTO_PACING_ASAP), even = budget(10 * S, PROTO_PACING_EVEN);
    int wins_asap = 0, wins_even = 0;
    for (int64_t t = JAN1 + 60 * S; t < JAN1 + 70 * S; t += 10 * MS) { /* 1000 auctions */
        if (rtb_budget_admit(&asap, t)) {
            rtb_budget_win(&asap, CPM(20000), t); /* 0.02 each */
            wins_asap++;
        }
        if (rtb_budget_admit(&even, t)) {
            rtb_budget_win(&even, CPM(20000), t);
            wins_even++;
        }
    }
    ck_assert_int_eq(wins_asap, 500); /* 10.00 */
    ck_assert_int_eq(rtb_budget_spent_micros(&asap, JAN1 + 70 * S), 10 * S);
    /* 0.5 + 70 s of 10 a day: 0.508, and one win past it */
    ck_assert_int_eq(wins_even, 26);
    ck_assert_int_le(rtb_budget_spent_micros(&even, JAN1 + 70 * S), 520000);
}
END_TEST

/* Midnight UTC: the new day starts from 0, as its new key does; an
 * advertiser out of budget is called again at once. */
START_TEST(day_rolls_over_at_midnight_utc) {
    rtb_budget b = budget(2 * S, PROTO_PACING_ASAP);
    int64_t evening = JAN1 - 1; /* 2024-12-31 23:59:59.999999 */
    ck_assert_int_eq(rtb_budget_win(&b, CPM(2 * S), evening), 20241231);
    ck_assert_int_eq(rtb_budget_admit(&b, evening), 0);
    ck_assert_int_eq(rtb_budget_spent_micros(&b, evening), 2 * S);
    /* Read at the next day, the figure is not that day's. */
    ck_assert_int_eq(rtb_budget_spent_micros(&b, JAN1), 0);
    ck_assert_int_eq(rtb_budget_admit(&b, JAN1), 1);
    ck_assert_int_eq(b.day, 20250101);
    ck_assert_int_eq(rtb_budget_spent_micros(&b, JAN1), 0);
    ck_assert_int_eq(rtb_budget_win(&b, CPM(1 * S), JAN1 + 5 * S), 20250101);
    ck_assert_int_eq(rtb_budget_admit(&b, JAN1 + 5 * S), 1);
    ck_assert_int_eq(rtb_budget_spent_micros(&b, JAN1 + 5 * S), 1 * S);
    /* A win is counted on the day it happens: the first of a day rolls. */
    rtb_budget c = budget(2 * S, PROTO_PACING_ASAP);
    rtb_budget_win(&c, CPM(2 * S), evening);
    ck_assert_int_eq(rtb_budget_win(&c, CPM(1 * S), JAN1 + DAY), 20250102);
    ck_assert_int_eq(rtb_budget_spent_micros(&c, JAN1 + DAY), 1 * S);
    ck_assert_int_eq(rtb_budget_admit(&c, JAN1 + DAY), 1);
    /* even starts the new day with 5 % again. */
    rtb_budget e = budget(INT64_C(86400000), PROTO_PACING_EVEN);
    rtb_budget_win(&e, CPM(INT64_C(80000000)), evening);
    ck_assert_int_eq(rtb_budget_admit(&e, evening), 1);
    ck_assert_int_eq(rtb_budget_allowance_micros(&e, JAN1), 4320000);
    ck_assert_int_eq(rtb_budget_admit(&e, JAN1), 1);
    ck_assert_int_eq(rtb_budget_spent_micros(&e, JAN1), 0);
}
END_TEST

/* The local figure and Redis: other exchanges' spend arrives with the
 * refresh; own wins between the read and its answer are not lost, and
 * those before it are not counted twice. */
START_TEST(refresh_from_redis) {
    rtb_budget b = budget(10 * S, PROTO_PACING_ASAP);
    int64_t t = JAN1 + 100 * S;
    rtb_budget_win(&b, CPM(1 * S), t); /* own win: in Redis before the read */
    long day = rtb_budget_refresh_begin(&b, t);
    ck_assert_int_eq(day, 20250101);
    rtb_budget_win(&b, CPM(2 * S), t); /* own win after the read was sent */
    /* Redis: our 1.0 plus 8.5 from other exchanges. */
    rtb_budget_refresh_end(&b, day, CPM(INT64_C(9500000)));
    ck_assert_int_eq(rtb_budget_spent_micros(&b, t), INT64_C(11500000));
    ck_assert_int_eq(rtb_budget_admit(&b, t), 0);

    /* Spend written into the key directly stops calls at the next refresh. */
    rtb_budget c = budget(10 * S, PROTO_PACING_ASAP);
    ck_assert_int_eq(rtb_budget_admit(&c, t), 1);
    day = rtb_budget_refresh_begin(&c, t);
    rtb_budget_refresh_end(&c, day, CPM(10 * S));
    ck_assert_int_eq(rtb_budget_admit(&c, t), 0);
    /* A read answered with less (the key was reset) is believed too. */
    day = rtb_budget_refresh_begin(&c, t);
    rtb_budget_refresh_end(&c, day, 0);
    ck_assert_int_eq(rtb_budget_admit(&c, t), 1);
}
END_TEST

/* A read sent before midnight and answered after belongs to the old day:
 * it must not bring yesterday's spend into today. */
START_TEST(refresh_across_midnight_is_ignored) {
    rtb_budget b = budget(1 * S, PROTO_PACING_ASAP);
    long day = rtb_budget_refresh_begin(&b, JAN1 - 100 * MS);
    ck_assert_int_eq(day, 20241231);
    ck_assert_int_eq(rtb_budget_admit(&b, JAN1 + 1), 1); /* rolls */
    rtb_budget_refresh_end(&b, day, CPM(5 * S));
    ck_assert_int_eq(rtb_budget_spent_micros(&b, JAN1 + 1), 0);
    ck_assert_int_eq(rtb_budget_admit(&b, JAN1 + 1), 1);
    /* A refresh begun after midnight reads the new day's key. */
    ck_assert_int_eq(rtb_budget_refresh_begin(&b, JAN1 + 2), 20250101);
}
END_TEST

/* A budget changed during the day keeps what was spent. */
START_TEST(changed_budget_keeps_the_day) {
    rtb_budget b = budget(5 * S, PROTO_PACING_ASAP);
    rtb_budget_win(&b, CPM(3 * S), JAN1);
    rtb_budget_set(&b, 2 * S, PROTO_PACING_ASAP);
    ck_assert_int_eq(rtb_budget_admit(&b, JAN1), 0);
    rtb_budget_set(&b, 4 * S, PROTO_PACING_ASAP);
    ck_assert_int_eq(rtb_budget_admit(&b, JAN1), 1);
    ck_assert_int_eq(rtb_budget_spent_micros(&b, JAN1), 3 * S);
    rtb_budget_set(&b, 4 * S, PROTO_PACING_EVEN); /* 5 % of 4 at 00:00 */
    ck_assert_int_eq(rtb_budget_admit(&b, JAN1), 0);
}
END_TEST

/* The largest budget, at the end of a day: no overflow. */
START_TEST(largest_budget) {
    rtb_budget b = budget(AUCTION_PRICE_MAX_MICROS, PROTO_PACING_EVEN);
    int64_t late = JAN1 + DAY - MS;
    ck_assert_int_eq(rtb_budget_allowance_micros(&b, late), AUCTION_PRICE_MAX_MICROS);
    int64_t half = rtb_budget_allowance_micros(&b, JAN1 + DAY / 2);
    ck_assert_int_eq(half, AUCTION_PRICE_MAX_MICROS / 2 + AUCTION_PRICE_MAX_MICROS / 20);
    rtb_budget_win(&b, CPM(AUCTION_PRICE_MAX_MICROS - 1), late);
    ck_assert_int_eq(rtb_budget_admit(&b, late), 1);
    rtb_budget_win(&b, 1000, late);
    ck_assert_int_eq(rtb_budget_admit(&b, late), 0);
}
END_TEST

static Suite *budget_suite(void) {
    Suite *s = suite_create("budget");
    TCase *tc = tcase_create("budget");
    tcase_add_test(tc, utc_day_of_a_time);
    tcase_add_test(tc, no_budget_is_always_called);
    tcase_add_test(tc, asap_stops_at_the_budget_exactly);
    tcase_add_test(tc, sum_is_exact);
    tcase_add_test(tc, even_follows_the_clock);
    tcase_add_test(tc, even_spends_far_less_than_asap_early);
    tcase_add_test(tc, day_rolls_over_at_midnight_utc);
    tcase_add_test(tc, refresh_from_redis);
    tcase_add_test(tc, refresh_across_midnight_is_ignored);
    tcase_add_test(tc, changed_budget_keeps_the_day);
    tcase_add_test(tc, largest_budget);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(budget_suite());
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

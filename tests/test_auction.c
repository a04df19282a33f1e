/* test_auction.c -- the auction rules of SPEC 3.6 and the money conversions.
 *
 * Each test builds an auction the way the exchange does (bids added in the
 * order responses arrive) and checks the winner and clearing price in micros. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auction/auction.h"

#define M(units) ((int64_t)((units)*1000000.0 + 0.5)) /* test literals only */
#define INC M(0.01)

typedef struct fixture {
    auction a;
    auction_bid storage[32];
    auction_outcome out;
} fixture;

static void open_auction(fixture *f, int64_t floor_micros) {
    auction_init(&f->a, AUCTION_SECOND_PRICE, floor_micros, INC, f->storage, 32);
}

static auction_err bid(fixture *f, const char *bidder, int64_t price_micros) {
    auction_bid b = {.bidder_id = bidder, .price_micros = price_micros, .ad_id = bidder};
    return auction_add_bid(&f->a, &b);
}

static void close_auction(fixture *f) {
    auction_close(&f->a, &f->out);
}

START_TEST(three_bids_second_price) {
    fixture f;
    open_auction(&f, M(1.00));
    ck_assert_int_eq(bid(&f, "a", M(2.52)), AUCTION_OK);
    ck_assert_int_eq(bid(&f, "b", M(2.10)), AUCTION_OK);
    ck_assert_int_eq(bid(&f, "c", M(1.50)), AUCTION_OK);
    close_auction(&f);
    ck_assert_ptr_nonnull(f.out.winner);
    ck_assert_str_eq(f.out.winner->bidder_id, "a");
    ck_assert_int_eq(f.out.winner->price_micros, M(2.52));
    ck_assert_int_eq(f.out.clearing_price_micros, M(2.11));
    ck_assert_str_eq(f.out.runner_up->bidder_id, "b");
    ck_assert_uint_eq(f.out.valid_bidders, 3);
}
END_TEST

START_TEST(single_bid_clears_at_floor) {
    fixture f;
    open_auction(&f, M(1.50));
    ck_assert_int_eq(bid(&f, "a", M(3.00)), AUCTION_OK);
    close_auction(&f);
    ck_assert_str_eq(f.out.winner->bidder_id, "a");
    ck_assert_int_eq(f.out.clearing_price_micros, M(1.50));
    ck_assert_ptr_null(f.out.runner_up);
}
END_TEST

START_TEST(all_below_floor_no_winner) {
    fixture f;
    open_auction(&f, M(5.00));
    ck_assert_int_eq(bid(&f, "a", M(4.99)), AUCTION_ERR_BELOW_FLOOR);
    ck_assert_int_eq(bid(&f, "b", M(1.00)), AUCTION_ERR_BELOW_FLOOR);
    close_auction(&f);
    ck_assert_ptr_null(f.out.winner);
    ck_assert_int_eq(f.out.clearing_price_micros, 0);
    ck_assert_uint_eq(f.out.valid_bidders, 0);
}
END_TEST

START_TEST(below_floor_bid_does_not_set_price) {
    fixture f;
    open_auction(&f, M(2.00));
    bid(&f, "a", M(3.00));
    bid(&f, "b", M(1.99)); /* under the floor: not a second price */
    close_auction(&f);
    ck_assert_int_eq(f.out.clearing_price_micros, M(2.00));
}
END_TEST

START_TEST(bid_equal_to_floor_is_valid) {
    fixture f;
    open_auction(&f, M(2.00));
    ck_assert_int_eq(bid(&f, "a", M(2.00)), AUCTION_OK);
    close_auction(&f);
    ck_assert_str_eq(f.out.winner->bidder_id, "a");
    ck_assert_int_eq(f.out.clearing_price_micros, M(2.00));
}
END_TEST

START_TEST(floor_zero) {
    fixture f;
    open_auction(&f, 0);
    bid(&f, "a", M(0.50));
    bid(&f, "b", M(0.20));
    close_auction(&f);
    ck_assert_int_eq(f.out.clearing_price_micros, M(0.21));

    open_auction(&f, 0);
    bid(&f, "a", M(0.50));
    close_auction(&f);
    ck_assert_int_eq(f.out.clearing_price_micros, 0); /* single bid: the floor */
}
END_TEST

START_TEST(refuses_zero_negative_and_too_high) {
    fixture f;
    open_auction(&f, 0);
    ck_assert_int_eq(bid(&f, "a", 0), AUCTION_ERR_PRICE);
    ck_assert_int_eq(bid(&f, "b", -1), AUCTION_ERR_PRICE);
    ck_assert_int_eq(bid(&f, "c", AUCTION_PRICE_MAX_MICROS + 1), AUCTION_ERR_PRICE);
    ck_assert_int_eq(auction_add_bid(&f.a, NULL), AUCTION_ERR_ARG);
    auction_bid nameless = {.price_micros = M(1)};
    ck_assert_int_eq(auction_add_bid(&f.a, &nameless), AUCTION_ERR_ARG);
    close_auction(&f);
    ck_assert_ptr_null(f.out.winner);
}
END_TEST

START_TEST(tie_at_top_goes_to_earliest) {
    fixture f;
    open_auction(&f, M(1.00));
    bid(&f, "late", M(1.00) + 1); /* lower, arrives first */
    bid(&f, "first", M(3.00));
    bid(&f, "second", M(3.00));
    close_auction(&f);
    ck_assert_str_eq(f.out.winner->bidder_id, "first");
    /* second + increment capped at the winner's price */
    ck_assert_int_eq(f.out.clearing_price_micros, M(3.00));
}
END_TEST

START_TEST(tie_for_second) {
    fixture f;
    open_auction(&f, M(1.00));
    bid(&f, "a", M(2.00));
    bid(&f, "b", M(1.50));
    bid(&f, "c", M(5.00));
    bid(&f, "d", M(1.50));
    close_auction(&f);
    ck_assert_str_eq(f.out.winner->bidder_id, "c");
    ck_assert_str_eq(f.out.runner_up->bidder_id, "a");
    ck_assert_int_eq(f.out.clearing_price_micros, M(2.01));

    open_auction(&f, M(1.00));
    bid(&f, "a", M(5.00));
    bid(&f, "b", M(1.50));
    bid(&f, "c", M(1.50));
    close_auction(&f);
    ck_assert_str_eq(f.out.runner_up->bidder_id, "b");
    ck_assert_int_eq(f.out.clearing_price_micros, M(1.51));
}
END_TEST

START_TEST(clearing_capped_at_winner) {
    fixture f;
    open_auction(&f, M(1.00));
    bid(&f, "a", M(2.00));
    bid(&f, "b", M(1.995));
    close_auction(&f);
    ck_assert_str_eq(f.out.winner->bidder_id, "a");
    ck_assert_int_eq(f.out.clearing_price_micros, M(2.00));
}
END_TEST

START_TEST(floor_above_second_plus_increment) {
    fixture f;
    open_auction(&f, M(3.00));
    bid(&f, "a", M(10.00));
    bid(&f, "b", M(3.00));
    close_auction(&f);
    ck_assert_int_eq(f.out.clearing_price_micros, M(3.01));
}
END_TEST

START_TEST(ten_bidders) {
    fixture f;
    static const char *names[10] = {"b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9"};
    static const double prices[10] = {1.1, 4.4, 2.2, 9.9, 3.3, 7.7, 8.8, 5.5, 6.6, 0.5};
    open_auction(&f, M(1.00));
    for (int i = 0; i < 10; i++)
        bid(&f, names[i], M(prices[i]));
    close_auction(&f);
    ck_assert_str_eq(f.out.winner->bidder_id, "b3");
    ck_assert_str_eq(f.out.runner_up->bidder_id, "b6");
    ck_assert_int_eq(f.out.clearing_price_micros, M(8.81));
    ck_assert_uint_eq(f.out.valid_bidders, 9); /* 0.5 is under the floor */
}
END_TEST

START_TEST(maximum_price) {
    fixture f;
    open_auction(&f, AUCTION_PRICE_MAX_MICROS);
    ck_assert_int_eq(bid(&f, "a", AUCTION_PRICE_MAX_MICROS), AUCTION_OK);
    ck_assert_int_eq(bid(&f, "b", AUCTION_PRICE_MAX_MICROS), AUCTION_OK);
    close_auction(&f);
    ck_assert_str_eq(f.out.winner->bidder_id, "a");
    ck_assert_int_eq(f.out.clearing_price_micros, AUCTION_PRICE_MAX_MICROS);

    open_auction(&f, 0);
    bid(&f, "a", AUCTION_PRICE_MAX_MICROS);
    bid(&f, "b", AUCTION_PRICE_MAX_MICROS - 1);
    close_auction(&f);
    ck_assert_int_eq(f.out.clearing_price_micros, AUCTION_PRICE_MAX_MICROS);
}
END_TEST

START_TEST(bidder_bidding_twice_keeps_highest) {
    fixture f;
    open_auction(&f, M(1.00));
    bid(&f, "a", M(2.00));
    bid(&f, "b", M(3.00));
    bid(&f, "a", M(4.00)); /* a's higher bid replaces its first */
    bid(&f, "a", M(1.50)); /* a lower one is ignored */
    close_auction(&f);
    ck_assert_str_eq(f.out.winner->bidder_id, "a");
    ck_assert_int_eq(f.out.winner->price_micros, M(4.00));
    ck_assert_str_eq(f.out.runner_up->bidder_id, "b");
    ck_assert_int_eq(f.out.clearing_price_micros, M(3.01));
    ck_assert_uint_eq(f.out.valid_bidders, 2);

    /* a bidder's own two bids never make a second price */
    open_auction(&f, M(1.00));
    bid(&f, "a", M(2.00));
    bid(&f, "a", M(5.00));
    close_auction(&f);
    ck_assert_int_eq(f.out.clearing_price_micros, M(1.00));
}
END_TEST

START_TEST(storage_full) {
    auction a;
    auction_bid storage[2];
    auction_init(&a, AUCTION_SECOND_PRICE, 0, INC, storage, 2);
    auction_bid b = {.bidder_id = "a", .price_micros = 1};
    ck_assert_int_eq(auction_add_bid(&a, &b), AUCTION_OK);
    b.bidder_id = "b";
    ck_assert_int_eq(auction_add_bid(&a, &b), AUCTION_OK);
    b.bidder_id = "c";
    ck_assert_int_eq(auction_add_bid(&a, &b), AUCTION_ERR_FULL);
    ck_assert_ptr_nonnull(auction_strerror(AUCTION_ERR_FULL));
}
END_TEST

START_TEST(first_price) {
    fixture f;
    auction_init(&f.a, AUCTION_FIRST_PRICE, M(1.00), INC, f.storage, 32);
    bid(&f, "a", M(2.52));
    bid(&f, "b", M(2.10));
    close_auction(&f);
    ck_assert_int_eq(f.out.clearing_price_micros, M(2.52));
    auction_init(&f.a, AUCTION_FIRST_PRICE, M(1.00), INC, f.storage, 32);
    bid(&f, "a", M(2.52));
    close_auction(&f);
    ck_assert_int_eq(f.out.clearing_price_micros, M(2.52));
}
END_TEST

/* ---- money ---- */

static int64_t micros(double v) {
    int64_t out = -42;
    ck_assert_int_eq(auction_micros_from_double(v, &out), 0);
    return out;
}

START_TEST(money_exact_decimals) {
    ck_assert_int_eq(micros(1.1), 1100000);
    ck_assert_int_eq(micros(0.000001), 1);
    ck_assert_int_eq(micros(1e6), INT64_C(1000000000000));
    ck_assert_int_eq(micros(2.11), 2110000);
    ck_assert_int_eq(micros(1.995), 1995000);
    ck_assert_int_eq(micros(0.1 + 0.2), 300000); /* 0.30000000000000004 */
    ck_assert_int_eq(micros(0), 0);
    ck_assert_int_eq(micros(999999.999999), INT64_C(999999999999));
    ck_assert_int_eq(micros(123456.654321), INT64_C(123456654321));
    /* every 6-decimal value in a sweep converts exactly */
    for (int64_t m = 0; m < 3000000; m += 7) {
        char text[40];
        snprintf(text, sizeof(text), "%lld.%06lld", (long long)(m / 1000000),
                 (long long)(m % 1000000));
        ck_assert_int_eq(micros(strtod(text, NULL)), m);
    }
}
END_TEST

START_TEST(money_more_decimals_round_half_up) {
    ck_assert_int_eq(micros(0.0000005), 1);
    ck_assert_int_eq(micros(0.0000004), 0);
    ck_assert_int_eq(micros(2.0000004), 2000000);
    ck_assert_int_eq(micros(2.0000005), 2000001);
    ck_assert_int_eq(micros(1.2345675), 1234568);
    ck_assert_int_eq(micros(1e-30), 0);
}
END_TEST

START_TEST(money_refused) {
    int64_t out = 7;
    ck_assert_int_eq(auction_micros_from_double(NAN, &out), -1);
    ck_assert_int_eq(auction_micros_from_double(INFINITY, &out), -1);
    ck_assert_int_eq(auction_micros_from_double(-INFINITY, &out), -1);
    ck_assert_int_eq(auction_micros_from_double(-0.5, &out), -1);
    ck_assert_int_eq(auction_micros_from_double(1000000.000001, &out), -1);
    ck_assert_int_eq(auction_micros_from_double(1e300, &out), -1);
    ck_assert_int_eq(out, 7); /* untouched on error */
}
END_TEST

/* Parse s (whole string) and return micros, or -2 when it is refused. */
static int64_t parsed(const char *s) {
    int64_t out = -2;
    if (auction_micros_parse(s, strlen(s), &out) != 0) ck_assert_int_eq(out, -2);
    return out;
}

START_TEST(money_parse) {
    ck_assert_int_eq(parsed("2.5"), 2500000);
    ck_assert_int_eq(parsed("2.11"), 2110000);
    ck_assert_int_eq(parsed("0.000001"), 1);
    ck_assert_int_eq(parsed("0"), 0);
    ck_assert_int_eq(parsed("7"), 7000000);
    ck_assert_int_eq(parsed("7."), 7000000);
    ck_assert_int_eq(parsed("007.50"), 7500000);
    ck_assert_int_eq(parsed("123456.654321"), INT64_C(123456654321));
    ck_assert_int_eq(parsed("1000000"), AUCTION_PRICE_MAX_MICROS);
    ck_assert_int_eq(parsed("1000000.000000"), AUCTION_PRICE_MAX_MICROS);
    ck_assert_int_eq(parsed("999999.999999"), AUCTION_PRICE_MAX_MICROS - 1);
}
END_TEST

START_TEST(money_parse_refused) {
    const char *bad[] = {"",        ".5",  "1.0000001", "1000000.000001",
                         "1000001", "-1",  "+1",        "1e3",
                         " 1",      "1 ",  "1..2",      "1.2.3",
                         "abc",     "1,5", "0x10",      "99999999999999999999999",
                         "."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(parsed(bad[i]) == -2, "'%s' was accepted", bad[i]);
}
END_TEST

/* The length bounds the text: no NUL needed, nothing after it read. */
START_TEST(money_parse_length) {
    const char *range = "0.5-2.0";
    int64_t out = 0;
    ck_assert_int_eq(auction_micros_parse(range, 3, &out), 0);
    ck_assert_int_eq(out, 500000);
    ck_assert_int_eq(auction_micros_parse(range + 4, 3, &out), 0);
    ck_assert_int_eq(out, 2000000);
    ck_assert_int_eq(auction_micros_parse("12", 1, &out), 0);
    ck_assert_int_eq(out, 1000000);
    const char no_nul[3] = {'4', '.', '2'};
    ck_assert_int_eq(auction_micros_parse(no_nul, sizeof no_nul, &out), 0);
    ck_assert_int_eq(out, 4200000);
    out = 9;
    ck_assert_int_eq(auction_micros_parse(range, 4, &out), -1);
    ck_assert_int_eq(auction_micros_parse("5", 0, &out), -1);
    ck_assert_int_eq(out, 9);
}
END_TEST

/* parse(format(m)) is the identity over the whole range. */
START_TEST(money_parse_format_round_trip) {
    char buf[AUCTION_MICROS_STRLEN];
    for (int64_t m = 0; m <= AUCTION_PRICE_MAX_MICROS; m = m * 3 + 1) {
        int64_t out = -1;
        size_t n = auction_micros_format(m, buf);
        ck_assert_int_eq(auction_micros_parse(buf, n, &out), 0);
        ck_assert_int_eq(out, m);
    }
}
END_TEST

START_TEST(money_format) {
    char buf[AUCTION_MICROS_STRLEN];
    ck_assert_uint_eq(auction_micros_format(2110000, buf), 4);
    ck_assert_str_eq(buf, "2.11");
    auction_micros_format(1, buf);
    ck_assert_str_eq(buf, "0.000001");
    auction_micros_format(5000000, buf);
    ck_assert_str_eq(buf, "5");
    auction_micros_format(0, buf);
    ck_assert_str_eq(buf, "0");
    auction_micros_format(-1500000, buf);
    ck_assert_str_eq(buf, "-1.5");
    auction_micros_format(AUCTION_PRICE_MAX_MICROS, buf);
    ck_assert_str_eq(buf, "1000000");
    auction_micros_format(INT64_MIN, buf);
    ck_assert_str_eq(buf, "-9223372036854.775808");
    auction_decimal_format(12400, 3, buf);
    ck_assert_str_eq(buf, "12.4");
    auction_decimal_format(5, 3, buf);
    ck_assert_str_eq(buf, "0.005");
    auction_decimal_format(1795000000123, 3, buf);
    ck_assert_str_eq(buf, "1795000000.123");
    auction_decimal_format(0, 0, buf);
    ck_assert_str_eq(buf, "0");
    ck_assert_uint_eq(auction_decimal_format(INT64_MAX, 0, buf), 19);
    ck_assert_str_eq(buf, "9223372036854775807");
    /* format -> strtod -> micros is the identity */
    for (int64_t m = 1; m < INT64_C(1000000000000); m = m * 3 + 1) {
        auction_micros_format(m, buf);
        ck_assert_int_eq(micros(strtod(buf, NULL)), m);
    }
}
END_TEST

static Suite *auction_suite(void) {
    Suite *s = suite_create("auction");
    TCase *tc = tcase_create("second_price");
    tcase_add_test(tc, three_bids_second_price);
    tcase_add_test(tc, single_bid_clears_at_floor);
    tcase_add_test(tc, all_below_floor_no_winner);
    tcase_add_test(tc, below_floor_bid_does_not_set_price);
    tcase_add_test(tc, bid_equal_to_floor_is_valid);
    tcase_add_test(tc, floor_zero);
    tcase_add_test(tc, refuses_zero_negative_and_too_high);
    tcase_add_test(tc, tie_at_top_goes_to_earliest);
    tcase_add_test(tc, tie_for_second);
    tcase_add_test(tc, clearing_capped_at_winner);
    tcase_add_test(tc, floor_above_second_plus_increment);
    tcase_add_test(tc, ten_bidders);
    tcase_add_test(tc, maximum_price);
    tcase_add_test(tc, bidder_bidding_twice_keeps_highest);
    tcase_add_test(tc, storage_full);
    tcase_add_test(tc, first_price);
    suite_add_tcase(s, tc);

    tc = tcase_create("money");
    tcase_add_test(tc, money_exact_decimals);
    tcase_add_test(tc, money_more_decimals_round_half_up);
    tcase_add_test(tc, money_refused);
    tcase_add_test(tc, money_format);
    tcase_add_test(tc, money_parse);
    tcase_add_test(tc, money_parse_refused);
    tcase_add_test(tc, money_parse_length);
    tcase_add_test(tc, money_parse_format_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(auction_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* test_auction.c -- the auction rules of SPEC 3.6, 12 and 17, the money and
 * currency conversions.
 *
 * Each test builds an auction the way the exchange does (bids added in the
 * order responses arrive) and checks the winner and clearing price in micros.
 * The SPEC 17 tests describe a request's imps and deals as the decoded
 * request would and add each bid to the imp it names. */
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

/* ---- deals and several impressions (SPEC 17) ---- */

#define D1 0 /* deal indexes in the imps below */
#define D2 1

typedef struct request {
    auction_imps s;
    auction_imp imps[AUCTION_MAX_IMPS];
    auction_deal deals[AUCTION_MAX_IMPS][4];
    auction_bid storage[64];
    auction_outcome out;
} request;

static const char *const only_x[] = {"seat-x"};

/* Imp i with open floor `floor_micros` and no deals yet. */
static void imp_floor(request *r, size_t i, int64_t floor_micros) {
    r->imps[i] = (auction_imp){.floor_micros = floor_micros, .deals = r->deals[i]};
}

static void add_deal(request *r, size_t i, const char *id, int64_t bidfloor_micros,
                     const char *const *wseat, size_t nwseat) {
    r->deals[i][r->imps[i].ndeals++] = (auction_deal){
        .id = id, .bidfloor_micros = bidfloor_micros, .wseat = wseat, .nwseat = nwseat};
}

static void open_request(request *r, auction_type type, size_t nimps) {
    ck_assert_int_eq(auction_imps_init(&r->s, type, INC, r->imps, nimps, r->storage, 64),
                     AUCTION_OK);
}

/* One imp, open floor 1.00, deals "D1" (floor 2.00) and "D2" (floor 4.00),
 * any seat. */
static void one_imp_two_deals(request *r, auction_type type) {
    memset(r, 0, sizeof(*r));
    imp_floor(r, 0, M(1.00));
    add_deal(r, 0, "D1", M(2.00), NULL, 0);
    add_deal(r, 0, "D2", M(4.00), NULL, 0);
    open_request(r, type, 1);
}

static auction_err imp_bid(request *r, size_t imp, const char *bidder, int64_t price_micros,
                           const char *deal_id) {
    auction_bid b = {
        .bidder_id = bidder, .price_micros = price_micros, .ad_id = bidder, .deal_id = deal_id};
    return auction_imps_add_bid(&r->s, imp, &b);
}

static auction_err seat_bid(request *r, const char *bidder, const char *seat, int64_t price_micros,
                            const char *deal_id) {
    auction_bid b = {
        .bidder_id = bidder, .seat = seat, .price_micros = price_micros, .deal_id = deal_id};
    return auction_imps_add_bid(&r->s, 0, &b);
}

static void close_imp(request *r, size_t imp) {
    auction_imps_close(&r->s, imp, &r->out);
}

START_TEST(deal_beats_open_bid) {
    request r;
    one_imp_two_deals(&r, AUCTION_SECOND_PRICE);
    ck_assert_int_eq(imp_bid(&r, 0, "open", M(9.00), NULL), AUCTION_OK);
    ck_assert_int_eq(imp_bid(&r, 0, "deal", M(2.50), "D1"), AUCTION_OK);
    ck_assert_int_eq(imp_bid(&r, 0, "open2", M(8.00), NULL), AUCTION_OK);
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "deal");
    ck_assert_ptr_eq(r.out.deal, &r.deals[0][D1]);
    ck_assert_str_eq(r.out.deal->id, "D1");
    ck_assert_ptr_null(r.out.runner_up); /* open bids never set a deal's price */
    ck_assert_uint_eq(r.out.valid_bidders, 1);
    ck_assert_int_eq(r.out.clearing_price_micros, M(2.00));
}
END_TEST

START_TEST(deal_alone_clears_at_deal_floor) {
    request r;
    one_imp_two_deals(&r, AUCTION_SECOND_PRICE);
    ck_assert_int_eq(imp_bid(&r, 0, "a", M(50.00), "D2"), AUCTION_OK);
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "a");
    ck_assert_str_eq(r.out.deal->id, "D2");
    ck_assert_int_eq(r.out.clearing_price_micros, M(4.00)); /* D2's floor, not the imp's */

    /* a bid exactly at the deal floor is a deal bid */
    one_imp_two_deals(&r, AUCTION_SECOND_PRICE);
    ck_assert_int_eq(imp_bid(&r, 0, "a", M(2.00), "D1"), AUCTION_OK);
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.deal->id, "D1");
    ck_assert_int_eq(r.out.clearing_price_micros, M(2.00));
}
END_TEST

START_TEST(deal_second_bid_plus_increment) {
    request r;
    one_imp_two_deals(&r, AUCTION_SECOND_PRICE);
    imp_bid(&r, 0, "a", M(5.00), "D1");
    imp_bid(&r, 0, "b", M(3.00), "D1");
    imp_bid(&r, 0, "c", M(2.50), "D1");
    imp_bid(&r, 0, "open", M(4.00), NULL);
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "a");
    ck_assert_str_eq(r.out.runner_up->bidder_id, "b");
    ck_assert_int_eq(r.out.clearing_price_micros, M(3.01));
    ck_assert_uint_eq(r.out.valid_bidders, 3);

    /* bids on two deals of one imp compete; the winner's deal floor counts */
    one_imp_two_deals(&r, AUCTION_SECOND_PRICE);
    imp_bid(&r, 0, "a", M(5.00), "D2");
    imp_bid(&r, 0, "b", M(3.00), "D1");
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "a");
    ck_assert_str_eq(r.out.deal->id, "D2");
    ck_assert_int_eq(r.out.clearing_price_micros, M(4.00)); /* max(4.00, 3.01) */

    one_imp_two_deals(&r, AUCTION_SECOND_PRICE);
    imp_bid(&r, 0, "b", M(4.50), "D2");
    imp_bid(&r, 0, "a", M(6.00), "D1");
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "a");
    ck_assert_str_eq(r.out.deal->id, "D1");
    ck_assert_int_eq(r.out.clearing_price_micros, M(4.51));
}
END_TEST

START_TEST(deal_clearing_capped_at_its_bid) {
    request r;
    one_imp_two_deals(&r, AUCTION_SECOND_PRICE);
    imp_bid(&r, 0, "a", M(3.00), "D1");
    imp_bid(&r, 0, "b", M(2.995), "D1");
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "a");
    ck_assert_int_eq(r.out.clearing_price_micros, M(3.00)); /* 3.005 capped */
}
END_TEST

START_TEST(deal_bid_under_deal_floor_joins_open) {
    request r;
    one_imp_two_deals(&r, AUCTION_SECOND_PRICE);
    /* 3.50 is under D2's 4.00: an open bid, above the imp's 1.00 */
    ck_assert_int_eq(imp_bid(&r, 0, "a", M(3.50), "D2"), AUCTION_OK);
    ck_assert_int_eq(imp_bid(&r, 0, "b", M(3.00), NULL), AUCTION_OK);
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "a");
    ck_assert_ptr_null(r.out.deal);
    ck_assert_ptr_null(r.out.winner->deal);
    ck_assert_str_eq(r.out.winner->deal_id, "D2"); /* what it sent, kept */
    ck_assert_int_eq(r.out.clearing_price_micros, M(3.01));

    /* under the deal floor and the open floor: refused like any open bid */
    memset(&r, 0, sizeof(r));
    imp_floor(&r, 0, M(3.00));
    add_deal(&r, 0, "D1", M(5.00), NULL, 0);
    open_request(&r, AUCTION_SECOND_PRICE, 1);
    ck_assert_int_eq(imp_bid(&r, 0, "a", M(2.00), "D1"), AUCTION_ERR_BELOW_FLOOR);
    close_imp(&r, 0);
    ck_assert_ptr_null(r.out.winner);

    /* a deal floor below the open floor: the deal bid needs only the deal floor */
    memset(&r, 0, sizeof(r));
    imp_floor(&r, 0, M(3.00));
    add_deal(&r, 0, "D1", M(0.50), NULL, 0);
    open_request(&r, AUCTION_SECOND_PRICE, 1);
    ck_assert_int_eq(imp_bid(&r, 0, "a", M(1.00), "D1"), AUCTION_OK);
    ck_assert_int_eq(imp_bid(&r, 0, "b", M(9.00), NULL), AUCTION_OK);
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "a");
    ck_assert_int_eq(r.out.clearing_price_micros, M(0.50));
}
END_TEST

START_TEST(seat_not_in_wseat_joins_open) {
    request r;
    memset(&r, 0, sizeof(r));
    imp_floor(&r, 0, M(1.00));
    add_deal(&r, 0, "D1", M(2.00), only_x, 1);
    open_request(&r, AUCTION_SECOND_PRICE, 1);
    ck_assert_int_eq(seat_bid(&r, "a", "seat-y", M(6.00), "D1"), AUCTION_OK);
    ck_assert_int_eq(seat_bid(&r, "b", NULL, M(5.00), NULL), AUCTION_OK);
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "a");
    ck_assert_ptr_null(r.out.deal);
    ck_assert_int_eq(r.out.clearing_price_micros, M(5.01));

    /* the allowed seat is a deal bid, named by seat or (no seat) by bidder id */
    ck_assert_int_eq(seat_bid(&r, "c", "seat-x", M(2.50), "D1"), AUCTION_OK);
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "c");
    ck_assert_str_eq(r.out.deal->id, "D1");
    ck_assert_int_eq(r.out.clearing_price_micros, M(2.00));
    ck_assert_int_eq(seat_bid(&r, "seat-x", NULL, M(2.20), "D1"), AUCTION_OK);
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "c");
    ck_assert_str_eq(r.out.runner_up->bidder_id, "seat-x");
    ck_assert_int_eq(r.out.clearing_price_micros, M(2.21));
}
END_TEST

START_TEST(unknown_dealid_is_an_error) {
    request r;
    one_imp_two_deals(&r, AUCTION_SECOND_PRICE);
    ck_assert_int_eq(imp_bid(&r, 0, "a", M(9.00), "D3"), AUCTION_ERR_DEAL);
    ck_assert_int_eq(imp_bid(&r, 0, "b", M(9.00), ""), AUCTION_ERR_DEAL);
    ck_assert_int_eq(imp_bid(&r, 0, "c", M(9.00), "d1"), AUCTION_ERR_DEAL);
    close_imp(&r, 0);
    ck_assert_ptr_null(r.out.winner); /* none of them was kept */
    ck_assert_str_ne(auction_strerror(AUCTION_ERR_DEAL), auction_strerror(AUCTION_ERR_ARG));

    /* an imp without deals, and the single-slot auction, have no deal ids */
    memset(&r, 0, sizeof(r));
    imp_floor(&r, 0, 0);
    open_request(&r, AUCTION_SECOND_PRICE, 1);
    ck_assert_int_eq(imp_bid(&r, 0, "a", M(1.00), "D1"), AUCTION_ERR_DEAL);
    fixture f;
    open_auction(&f, 0);
    auction_bid b = {.bidder_id = "a", .price_micros = M(1.00), .deal_id = "D1"};
    ck_assert_int_eq(auction_add_bid(&f.a, &b), AUCTION_ERR_DEAL);
    /* a malformed price is reported before the deal id */
    ck_assert_int_eq(imp_bid(&r, 0, "a", 0, "D1"), AUCTION_ERR_PRICE);
}
END_TEST

START_TEST(private_auction_without_deal_bid_no_winner) {
    request r;
    memset(&r, 0, sizeof(r));
    imp_floor(&r, 0, M(1.00));
    add_deal(&r, 0, "D1", M(2.00), NULL, 0);
    add_deal(&r, 0, "D2", M(3.00), only_x, 1);
    r.imps[0].private_auction = 1;
    open_request(&r, AUCTION_SECOND_PRICE, 1);
    ck_assert_int_eq(imp_bid(&r, 0, "a", M(9.00), NULL), AUCTION_ERR_PRIVATE);
    ck_assert_int_eq(imp_bid(&r, 0, "b", M(1.50), "D1"), AUCTION_ERR_PRIVATE); /* under D1 */
    ck_assert_int_eq(seat_bid(&r, "c", "seat-y", M(9.00), "D2"), AUCTION_ERR_PRIVATE);
    ck_assert_int_eq(imp_bid(&r, 0, "d", M(0.50), NULL), AUCTION_ERR_PRIVATE);
    close_imp(&r, 0);
    ck_assert_ptr_null(r.out.winner);
    ck_assert_ptr_null(r.out.deal);
    ck_assert_int_eq(r.out.clearing_price_micros, 0);
    ck_assert_uint_eq(r.out.valid_bidders, 0);

    /* a deal bid still wins a private auction */
    ck_assert_int_eq(imp_bid(&r, 0, "e", M(2.00), "D1"), AUCTION_OK);
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "e");
    ck_assert_int_eq(r.out.clearing_price_micros, M(2.00));

    /* private_auction 0 with deals and no deal bid: the open auction runs */
    memset(&r, 0, sizeof(r));
    imp_floor(&r, 0, M(1.00));
    add_deal(&r, 0, "D1", M(2.00), NULL, 0);
    open_request(&r, AUCTION_SECOND_PRICE, 1);
    imp_bid(&r, 0, "a", M(9.00), NULL);
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "a");
    ck_assert_int_eq(r.out.clearing_price_micros, M(1.00));
}
END_TEST

START_TEST(ties_across_deal_and_open) {
    request r;
    /* a deal bid equal to an open bid that came first: deals go first */
    one_imp_two_deals(&r, AUCTION_SECOND_PRICE);
    imp_bid(&r, 0, "open", M(3.00), NULL);
    imp_bid(&r, 0, "deal", M(3.00), "D1");
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "deal");
    ck_assert_int_eq(r.out.clearing_price_micros, M(2.00));

    /* equal deal bids: the first added wins, at its bid (second + increment capped) */
    one_imp_two_deals(&r, AUCTION_SECOND_PRICE);
    imp_bid(&r, 0, "z-first", M(4.00), "D1");
    imp_bid(&r, 0, "a-second", M(4.00), "D2");
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "z-first");
    ck_assert_str_eq(r.out.runner_up->bidder_id, "a-second");
    ck_assert_str_eq(r.out.deal->id, "D1");
    ck_assert_int_eq(r.out.clearing_price_micros, M(4.00));

    /* one bidder with an open bid and a lower deal bid: its deal bid wins, and
     * its own open bid is not a second price */
    one_imp_two_deals(&r, AUCTION_SECOND_PRICE);
    imp_bid(&r, 0, "a", M(7.00), NULL);
    imp_bid(&r, 0, "a", M(2.50), "D1");
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "a");
    ck_assert_int_eq(r.out.winner->price_micros, M(2.50));
    ck_assert_ptr_null(r.out.runner_up);
    ck_assert_int_eq(r.out.clearing_price_micros, M(2.00));

    /* one bidder's bids on two deals: its highest counts, never a second price */
    one_imp_two_deals(&r, AUCTION_SECOND_PRICE);
    imp_bid(&r, 0, "a", M(4.50), "D2");
    imp_bid(&r, 0, "a", M(6.00), "D1");
    imp_bid(&r, 0, "a", M(5.00), "D2"); /* lower than its 6.00: ignored */
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.deal->id, "D1");
    ck_assert_int_eq(r.out.winner->price_micros, M(6.00));
    ck_assert_ptr_null(r.out.runner_up);
    ck_assert_uint_eq(r.out.valid_bidders, 1);
    ck_assert_int_eq(r.out.clearing_price_micros, M(2.00));

    /* a failed deal bid equal to an open bid that came first: the first wins */
    one_imp_two_deals(&r, AUCTION_SECOND_PRICE);
    imp_bid(&r, 0, "open", M(3.00), NULL);
    imp_bid(&r, 0, "nodeal", M(3.00), "D2"); /* under D2's 4.00 */
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "open");
    ck_assert_ptr_null(r.out.deal);
    ck_assert_int_eq(r.out.clearing_price_micros, M(3.00));
}
END_TEST

START_TEST(first_price_with_deals) {
    request r;
    one_imp_two_deals(&r, AUCTION_FIRST_PRICE);
    imp_bid(&r, 0, "a", M(5.00), "D1");
    imp_bid(&r, 0, "b", M(3.00), "D1");
    imp_bid(&r, 0, "open", M(9.00), NULL);
    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "a");
    ck_assert_int_eq(r.out.clearing_price_micros, M(5.00));

    one_imp_two_deals(&r, AUCTION_FIRST_PRICE);
    imp_bid(&r, 0, "a", M(4.25), "D2");
    close_imp(&r, 0);
    ck_assert_int_eq(r.out.clearing_price_micros, M(4.25)); /* its bid, not D2's floor */
}
END_TEST

START_TEST(several_imps_one_bidder) {
    request r;
    memset(&r, 0, sizeof(r));
    imp_floor(&r, 0, M(1.00));
    r.imps[0].id = "top";
    imp_floor(&r, 1, M(2.00));
    r.imps[1].id = "side";
    imp_floor(&r, 2, M(0.50));
    r.imps[2].id = "bottom";
    add_deal(&r, 2, "D1", M(1.50), NULL, 0);
    open_request(&r, AUCTION_SECOND_PRICE, 3);
    ck_assert_int_eq(auction_imps_find(&r.s, "top"), 0);
    ck_assert_int_eq(auction_imps_find(&r.s, "bottom"), 2);
    ck_assert_int_eq(auction_imps_find(&r.s, "middle"), -1);
    ck_assert_int_eq(auction_imps_find(&r.s, NULL), -1);

    /* "a" answers first with a bid per imp, "b" next */
    ck_assert_int_eq(imp_bid(&r, 0, "a", M(3.00), NULL), AUCTION_OK);
    ck_assert_int_eq(imp_bid(&r, 1, "a", M(2.50), NULL), AUCTION_OK);
    ck_assert_int_eq(imp_bid(&r, 2, "a", M(1.60), "D1"), AUCTION_OK);
    ck_assert_int_eq(imp_bid(&r, 0, "b", M(2.00), NULL), AUCTION_OK);
    ck_assert_int_eq(imp_bid(&r, 1, "b", M(4.00), NULL), AUCTION_OK);
    ck_assert_int_eq(imp_bid(&r, 2, "b", M(5.00), NULL), AUCTION_OK);
    ck_assert_int_eq(imp_bid(&r, 3, "b", M(5.00), NULL), AUCTION_ERR_IMP); /* unknown imp */
    ck_assert_int_eq(imp_bid(&r, AUCTION_MAX_IMPS, "b", M(5.00), NULL), AUCTION_ERR_IMP);

    close_imp(&r, 0);
    ck_assert_str_eq(r.out.winner->bidder_id, "a");
    ck_assert_uint_eq(r.out.winner->imp_index, 0);
    ck_assert_int_eq(r.out.clearing_price_micros, M(2.01));
    close_imp(&r, 1);
    ck_assert_str_eq(r.out.winner->bidder_id, "b");
    ck_assert_int_eq(r.out.clearing_price_micros, M(2.51));
    close_imp(&r, 2);
    ck_assert_str_eq(r.out.winner->bidder_id, "a");
    ck_assert_uint_eq(r.out.winner->imp_index, 2);
    ck_assert_str_eq(r.out.deal->id, "D1");
    ck_assert_int_eq(r.out.clearing_price_micros, M(1.50));
    close_imp(&r, 3); /* out of range: no winner */
    ck_assert_ptr_null(r.out.winner);
    ck_assert_int_eq(r.out.clearing_price_micros, 0);
}
END_TEST

/* The caller's pointer comes back with the winner: how it finds its bid. */
START_TEST(ref_copied_through) {
    request r;
    int records[2];
    one_imp_two_deals(&r, AUCTION_SECOND_PRICE);
    auction_bid b = {.bidder_id = "a", .price_micros = M(3.00), .ref = &records[0]};
    auction_imps_add_bid(&r.s, 0, &b);
    b = (auction_bid){.bidder_id = "b", .price_micros = M(4.00), .ref = &records[1]};
    auction_imps_add_bid(&r.s, 0, &b);
    close_imp(&r, 0);
    ck_assert_ptr_eq(r.out.winner->ref, &records[1]);
    ck_assert_ptr_eq(r.out.runner_up->ref, &records[0]);
}
END_TEST

START_TEST(imps_init_refused) {
    request r;
    memset(&r, 0, sizeof(r));
    for (size_t i = 0; i < AUCTION_MAX_IMPS; i++)
        imp_floor(&r, i, 0);
    ck_assert_int_eq(
        auction_imps_init(&r.s, AUCTION_SECOND_PRICE, INC, r.imps, AUCTION_MAX_IMPS, r.storage, 64),
        AUCTION_OK);
    ck_assert_int_eq(imp_bid(&r, AUCTION_MAX_IMPS - 1, "a", M(1.00), NULL), AUCTION_OK);

    auction_imp seventeen[AUCTION_MAX_IMPS + 1];
    memset(seventeen, 0, sizeof(seventeen));
    ck_assert_int_eq(auction_imps_init(&r.s, AUCTION_SECOND_PRICE, INC, seventeen,
                                       AUCTION_MAX_IMPS + 1, r.storage, 64),
                     AUCTION_ERR_ARG);
    ck_assert_int_eq(imp_bid(&r, 0, "a", M(1.00), NULL), AUCTION_ERR_IMP); /* no imps */
    ck_assert_int_eq(auction_imps_init(&r.s, AUCTION_SECOND_PRICE, INC, r.imps, 0, r.storage, 64),
                     AUCTION_ERR_ARG);
    ck_assert_int_eq(auction_imps_init(&r.s, AUCTION_SECOND_PRICE, INC, NULL, 1, r.storage, 64),
                     AUCTION_ERR_ARG);

    imp_floor(&r, 0, AUCTION_PRICE_MAX_MICROS + 1);
    ck_assert_int_eq(auction_imps_init(&r.s, AUCTION_SECOND_PRICE, INC, r.imps, 1, r.storage, 64),
                     AUCTION_ERR_ARG);
    imp_floor(&r, 0, -1);
    ck_assert_int_eq(auction_imps_init(&r.s, AUCTION_SECOND_PRICE, INC, r.imps, 1, r.storage, 64),
                     AUCTION_ERR_ARG);
    imp_floor(&r, 0, 0);
    add_deal(&r, 0, NULL, 0, NULL, 0); /* a deal without an id */
    ck_assert_int_eq(auction_imps_init(&r.s, AUCTION_SECOND_PRICE, INC, r.imps, 1, r.storage, 64),
                     AUCTION_ERR_ARG);
    imp_floor(&r, 0, 0);
    add_deal(&r, 0, "D1", 0, NULL, 2); /* two seats, no array */
    ck_assert_int_eq(auction_imps_init(&r.s, AUCTION_SECOND_PRICE, INC, r.imps, 1, r.storage, 64),
                     AUCTION_ERR_ARG);
    imp_floor(&r, 0, 0);
    add_deal(&r, 0, "D1", AUCTION_PRICE_MAX_MICROS + 1, NULL, 0);
    ck_assert_int_eq(auction_imps_init(&r.s, AUCTION_SECOND_PRICE, INC, r.imps, 1, r.storage, 64),
                     AUCTION_ERR_ARG);
    r.imps[0] = (auction_imp){.ndeals = 1}; /* deals NULL */
    ck_assert_int_eq(auction_imps_init(&r.s, AUCTION_SECOND_PRICE, INC, r.imps, 1, r.storage, 64),
                     AUCTION_ERR_ARG);
    ck_assert_int_eq(auction_imps_add_bid(NULL, 0, NULL), AUCTION_ERR_ARG);
}
END_TEST

/* The storage is shared by all imps; a slot is per (imp, bidder, deal or open). */
START_TEST(imps_storage_shared) {
    request r;
    memset(&r, 0, sizeof(r));
    imp_floor(&r, 0, 0);
    imp_floor(&r, 1, 0);
    add_deal(&r, 1, "D1", 0, NULL, 0);
    ck_assert_int_eq(auction_imps_init(&r.s, AUCTION_SECOND_PRICE, INC, r.imps, 2, r.storage, 3),
                     AUCTION_OK);
    ck_assert_int_eq(imp_bid(&r, 0, "a", M(1.00), NULL), AUCTION_OK);
    ck_assert_int_eq(imp_bid(&r, 1, "a", M(1.00), NULL), AUCTION_OK);
    ck_assert_int_eq(imp_bid(&r, 1, "a", M(1.00), "D1"), AUCTION_OK);
    ck_assert_int_eq(imp_bid(&r, 1, "a", M(2.00), "D1"), AUCTION_OK); /* replaces, no slot */
    ck_assert_int_eq(imp_bid(&r, 0, "b", M(1.00), NULL), AUCTION_ERR_FULL);
    close_imp(&r, 1);
    ck_assert_int_eq(r.out.winner->price_micros, M(2.00));
    ck_assert_ptr_nonnull(r.out.deal);
}
END_TEST

START_TEST(deal_match) {
    auction_deal deals[2] = {
        {.id = "D1", .bidfloor_micros = M(2.00)},
        {.id = "D2", .bidfloor_micros = 0, .wseat = only_x, .nwseat = 1},
    };
    auction_imp imp = {.floor_micros = M(1.00), .deals = deals, .ndeals = 2};
    const auction_deal *d = &deals[0];
    auction_bid b = {.bidder_id = "a", .price_micros = M(2.00)};
    ck_assert_int_eq(auction_deal_match(&imp, &b, &d), AUCTION_OK);
    ck_assert_ptr_null(d); /* no deal id: open */
    b.deal_id = "D1";
    ck_assert_int_eq(auction_deal_match(&imp, &b, &d), AUCTION_OK);
    ck_assert_ptr_eq(d, &deals[0]);
    b.price_micros = M(2.00) - 1;
    ck_assert_int_eq(auction_deal_match(&imp, &b, &d), AUCTION_OK);
    ck_assert_ptr_null(d);
    b.deal_id = "D2";
    ck_assert_int_eq(auction_deal_match(&imp, &b, &d), AUCTION_OK);
    ck_assert_ptr_null(d); /* seat "a" */
    b.seat = "seat-x";
    ck_assert_int_eq(auction_deal_match(&imp, &b, &d), AUCTION_OK);
    ck_assert_ptr_eq(d, &deals[1]);
    b.deal_id = "D9";
    ck_assert_int_eq(auction_deal_match(&imp, &b, &d), AUCTION_ERR_DEAL);
    ck_assert_ptr_null(d);
}
END_TEST

/* The single-slot API is the engine with one imp: the same answers. */
START_TEST(single_slot_equals_one_imp) {
    static const double prices[6] = {2.10, 3.30, 0.90, 3.30, 2.99, 1.00};
    static const char *names[6] = {"a", "b", "c", "d", "b", "e"};
    for (int type = 1; type <= 2; type++) {
        fixture f;
        request r;
        memset(&r, 0, sizeof(r));
        imp_floor(&r, 0, M(1.00));
        open_request(&r, (auction_type)type, 1);
        auction_init(&f.a, (auction_type)type, M(1.00), INC, f.storage, 32);
        for (int i = 0; i < 6; i++) {
            ck_assert_int_eq(imp_bid(&r, 0, names[i], M(prices[i]), NULL),
                             bid(&f, names[i], M(prices[i])));
        }
        close_auction(&f);
        close_imp(&r, 0);
        ck_assert_str_eq(r.out.winner->bidder_id, f.out.winner->bidder_id);
        ck_assert_str_eq(r.out.runner_up->bidder_id, f.out.runner_up->bidder_id);
        ck_assert_int_eq(r.out.clearing_price_micros, f.out.clearing_price_micros);
        ck_assert_uint_eq(r.out.valid_bidders, f.out.valid_bidders);
        ck_assert_ptr_null(f.out.deal);
    }
}
END_TEST

/* ---- currency (SPEC 17) ---- */

#define RATE(units) ((int64_t)((units)*1e12 + 0.5)) /* test literals only */

static int64_t rate_of(const char *text) {
    int64_t r = -2;
    if (auction_rate_parse(text, strlen(text), &r) != AUCTION_OK) ck_assert_int_eq(r, -2);
    return r;
}

START_TEST(rate_parse) {
    ck_assert_int_eq(rate_of("0.92"), INT64_C(920000000000));
    ck_assert_int_eq(rate_of("1"), AUCTION_RATE_SCALE);
    ck_assert_int_eq(rate_of("0"), -2);
    ck_assert_int_eq(rate_of("149.53"), INT64_C(149530000000000));
    ck_assert_int_eq(rate_of("0.000000000001"), 1);
    ck_assert_int_eq(rate_of("1e-5"), INT64_C(10000000));
    ck_assert_int_eq(rate_of("1.2e-05"), INT64_C(12000000));
    ck_assert_int_eq(rate_of("9.2E-1"), INT64_C(920000000000));
    ck_assert_int_eq(rate_of("9.2e+1"), INT64_C(92000000000000));
    ck_assert_int_eq(rate_of("25e3"), INT64_C(25000000000000000));
    ck_assert_int_eq(rate_of("0.7186000000000001"), INT64_C(718600000000));
    /* beyond 12 decimals: half up at the 12th */
    ck_assert_int_eq(rate_of("1.0000000000005"), INT64_C(1000000000001));
    ck_assert_int_eq(rate_of("1.00000000000049999"), AUCTION_RATE_SCALE);
    ck_assert_int_eq(rate_of("0.0000000000005"), 1);
    ck_assert_int_eq(rate_of("5e-13"), 1);
    ck_assert_int_eq(rate_of("0.99999999999951"), AUCTION_RATE_SCALE);
    /* the range: INT64_MAX / 1e12 */
    ck_assert_int_eq(rate_of("9223372.036854775807"), INT64_MAX);
    ck_assert_int_eq(rate_of("9223372.0368547758074"), INT64_MAX);
    ck_assert_int_eq(rate_of("9223372.0368547758075"), -2); /* rounds above */
    ck_assert_int_eq(rate_of("9223372.036854775808"), -2);
    ck_assert_int_eq(rate_of("1e7"), -2);
    ck_assert_int_eq(rate_of("1e99999999999"), -2);
    ck_assert_int_eq(rate_of("1e-99999999999"), -2);
    ck_assert_int_eq(rate_of("0e99999999999"), -2);
    ck_assert_int_eq(rate_of("100000000000000000000000000000000000000000000000000"), -2);
    ck_assert_int_eq(rate_of("0.000000000001000000000000000000000000000000000000000009"), 1);
    const char *bad[] = {"",
                         "-1",
                         "-0.5",
                         "+1",
                         ".5",
                         "1.",
                         "01",
                         "1e",
                         "1e+",
                         "e5",
                         "0x10",
                         "1 ",
                         " 1",
                         "1,5",
                         "abc",
                         "1..2",
                         "NaN",
                         "Infinity",
                         "0.",
                         "00",
                         "0.0",
                         "4e-13",
                         "0.0000000000004",
                         "5e-14",
                         "9e-14",
                         "0.00000000000009"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(rate_of(bad[i]) == -2, "'%s' was accepted", bad[i]);
    /* the length bounds the text */
    int64_t r = 0;
    ck_assert_int_eq(auction_rate_parse("0.92,1.1", 4, &r), AUCTION_OK);
    ck_assert_int_eq(r, INT64_C(920000000000));
    ck_assert_int_eq(auction_rate_parse("1.5", 1, &r), AUCTION_OK);
    ck_assert_int_eq(r, AUCTION_RATE_SCALE);
}
END_TEST

static int64_t rate_double(double v) {
    int64_t r = -2;
    if (auction_rate_from_double(v, &r) != AUCTION_OK) ck_assert_int_eq(r, -2);
    return r;
}

START_TEST(rate_from_double) {
    ck_assert_int_eq(rate_double(0.92), INT64_C(920000000000));
    ck_assert_int_eq(rate_double(1.1), INT64_C(1100000000000));
    ck_assert_int_eq(rate_double(0.1 + 0.2), INT64_C(300000000000));
    ck_assert_int_eq(rate_double(1.2e-05), INT64_C(12000000));
    ck_assert_int_eq(rate_double(149.53), INT64_C(149530000000000));
    ck_assert_int_eq(rate_double(0.000064102564), INT64_C(64102564));
    ck_assert_int_eq(rate_double(123.456789012345), INT64_C(123456789012345)); /* 15 digits */
    ck_assert_int_eq(rate_double(0), -2);
    ck_assert_int_eq(rate_double(-0.92), -2);
    ck_assert_int_eq(rate_double(NAN), -2);
    ck_assert_int_eq(rate_double(INFINITY), -2);
    ck_assert_int_eq(rate_double(1e7), -2);
    ck_assert_int_eq(rate_double(1e-13), -2);
    /* every 6-decimal rate in a sweep comes back exactly */
    for (int64_t m = 1; m < 3000000; m += 7919) {
        char text[40];
        snprintf(text, sizeof(text), "%lld.%06lld", (long long)(m / 1000000),
                 (long long)(m % 1000000));
        ck_assert_int_eq(rate_double(strtod(text, NULL)), m * 1000000);
    }
}
END_TEST

typedef struct rates_fixture {
    auction_rates t;
    auction_rate rows[8];
} rates_fixture;

static void prebid_rates(rates_fixture *f) {
    /* {"USD":{"EUR":0.92,"GBP":0.8,"JPY":149.53},"EUR":{"CHF":0.5}} */
    auction_rates_init(&f->t, f->rows, 8);
    ck_assert_int_eq(auction_rates_set(&f->t, "USD", "EUR", rate_of("0.92")), AUCTION_OK);
    ck_assert_int_eq(auction_rates_set(&f->t, "USD", "GBP", rate_of("0.8")), AUCTION_OK);
    ck_assert_int_eq(auction_rates_set(&f->t, "USD", "JPY", rate_of("149.53")), AUCTION_OK);
    ck_assert_int_eq(auction_rates_set(&f->t, "EUR", "CHF", rate_of("0.5")), AUCTION_OK);
}

static int64_t convert(const rates_fixture *f, int64_t amount, const char *from, const char *to) {
    int64_t out = -2;
    auction_err err = auction_convert(&f->t, amount, from, to, &out);
    if (err != AUCTION_OK) ck_assert_int_eq(out, -2);
    return out;
}

START_TEST(currency_direct_rate) {
    rates_fixture f;
    prebid_rates(&f);
    ck_assert_int_eq(convert(&f, M(2.50), "USD", "EUR"), M(2.30));
    ck_assert_int_eq(convert(&f, M(1.00), "USD", "JPY"), M(149.53));
    ck_assert_int_eq(convert(&f, M(3.00), "EUR", "CHF"), M(1.50));
    ck_assert_int_eq(convert(&f, 0, "USD", "EUR"), 0);
    /* the same currency: unchanged, whatever the table, even without one */
    ck_assert_int_eq(convert(&f, M(7.77), "CHF", "CHF"), M(7.77));
    int64_t out = 0;
    ck_assert_int_eq(auction_convert(NULL, M(1.5), "SEK", "SEK", &out), AUCTION_OK);
    ck_assert_int_eq(out, M(1.5));
    ck_assert_int_eq(auction_convert(NULL, M(1.5), "SEK", "USD", &out), AUCTION_ERR_CURRENCY);
}
END_TEST

START_TEST(currency_inverse_rate) {
    rates_fixture f;
    prebid_rates(&f);
    ck_assert_int_eq(convert(&f, M(2.30), "EUR", "USD"), M(2.50));
    ck_assert_int_eq(convert(&f, M(1.00), "GBP", "USD"), M(1.25));
    ck_assert_int_eq(convert(&f, M(149.53), "JPY", "USD"), M(1.00));
    /* 1 EUR = 1/0.92 USD = 1.0869565217... USD */
    ck_assert_int_eq(convert(&f, M(1.00), "EUR", "USD"), 1086957);
    ck_assert_int_eq(convert(&f, M(1.00), "JPY", "USD"), 6688); /* 0.0066876211... */
    ck_assert_int_eq(convert(&f, M(1.00), "CHF", "EUR"), M(2.00));

    /* the direct rate wins over the inverse of the reverse one */
    ck_assert_int_eq(auction_rates_set(&f.t, "EUR", "USD", rate_of("1.1")), AUCTION_OK);
    ck_assert_int_eq(convert(&f, M(1.00), "EUR", "USD"), M(1.10));
    ck_assert_int_eq(convert(&f, M(1.00), "USD", "EUR"), M(0.92));
}
END_TEST

START_TEST(currency_half_up) {
    rates_fixture f;
    auction_rates_init(&f.t, f.rows, 8);
    /* direct, exactly half a micro: up; just below: down */
    auction_rates_set(&f.t, "AAA", "BBB", rate_of("0.5"));
    ck_assert_int_eq(convert(&f, 1, "AAA", "BBB"), 1);
    ck_assert_int_eq(convert(&f, 3, "AAA", "BBB"), 2);
    ck_assert_int_eq(convert(&f, 4, "AAA", "BBB"), 2);
    auction_rates_set(&f.t, "AAA", "CCC", rate_of("0.499999999999"));
    ck_assert_int_eq(convert(&f, 1, "AAA", "CCC"), 0);
    ck_assert_int_eq(convert(&f, 3, "AAA", "CCC"), 1); /* 1.499999999997 */
    /* 100 micros * 1.005 = 100.5 micros exactly: 101. Through doubles,
     * 100 * 1.005 is 100.49999999999999 and would round to 100. */
    auction_rates_set(&f.t, "AAA", "DDD", rate_of("1.005"));
    ck_assert_int_eq(convert(&f, 100, "AAA", "DDD"), 101);
    ck_assert_int_eq(convert(&f, 300, "AAA", "DDD"), 302); /* 301.5 */
    /* 12th decimal of the rate: 1e12 micros * 0.000000000001 = 1 micro */
    auction_rates_set(&f.t, "AAA", "EEE", 1);
    ck_assert_int_eq(convert(&f, M(1000000), "AAA", "EEE"), 1);
    ck_assert_int_eq(convert(&f, M(500000), "AAA", "EEE"), 1);     /* 0.5 */
    ck_assert_int_eq(convert(&f, M(500000) - 1, "AAA", "EEE"), 0); /* 0.499999999999 */

    /* inverse: amount / rate, rounded once */
    auction_rates_set(&f.t, "XXX", "YYY", rate_of("4"));
    ck_assert_int_eq(convert(&f, 2, "YYY", "XXX"), 1); /* 0.5 */
    ck_assert_int_eq(convert(&f, 6, "YYY", "XXX"), 2); /* 1.5 */
    ck_assert_int_eq(convert(&f, 5, "YYY", "XXX"), 1); /* 1.25 */
    ck_assert_int_eq(convert(&f, 7, "YYY", "XXX"), 2); /* 1.75 */
    auction_rates_set(&f.t, "XXX", "ZZZ", rate_of("0.8"));
    ck_assert_int_eq(convert(&f, 2, "ZZZ", "XXX"), 3); /* 2.5 */
    ck_assert_int_eq(convert(&f, 1, "ZZZ", "XXX"), 1); /* 1.25 */
    auction_rates_set(&f.t, "XXX", "WWW", rate_of("3"));
    ck_assert_int_eq(convert(&f, 1, "WWW", "XXX"), 0); /* 0.333... */
    ck_assert_int_eq(convert(&f, 2, "WWW", "XXX"), 1); /* 0.666... */
    ck_assert_int_eq(convert(&f, M(1.00), "WWW", "XXX"), 333333);
    ck_assert_int_eq(convert(&f, M(2.00), "WWW", "XXX"), 666667);
}
END_TEST

START_TEST(currency_unknown) {
    rates_fixture f;
    prebid_rates(&f);
    int64_t out = 42;
    ck_assert_int_eq(auction_convert(&f.t, M(1), "USD", "SEK", &out), AUCTION_ERR_CURRENCY);
    ck_assert_int_eq(auction_convert(&f.t, M(1), "SEK", "USD", &out), AUCTION_ERR_CURRENCY);
    /* no cross rates: GBP -> EUR would need USD in between */
    ck_assert_int_eq(auction_convert(&f.t, M(1), "GBP", "EUR", &out), AUCTION_ERR_CURRENCY);
    const char *bad[] = {"usd", "US", "USDX", "", "U$D", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(auction_convert(&f.t, M(1), bad[i], "USD", &out), AUCTION_ERR_CURRENCY);
        ck_assert_int_eq(auction_convert(&f.t, M(1), "USD", bad[i], &out), AUCTION_ERR_CURRENCY);
        ck_assert_int_eq(auction_currency_valid(bad[i]), 0);
    }
    ck_assert_int_eq(out, 42); /* untouched on error */
    ck_assert_int_eq(auction_currency_valid("EUR"), 1);
    ck_assert_str_ne(auction_strerror(AUCTION_ERR_CURRENCY), auction_strerror(AUCTION_ERR_ARG));
}
END_TEST

START_TEST(currency_large_amounts) {
    rates_fixture f;
    auction_rates_init(&f.t, f.rows, 8);
    auction_rates_set(&f.t, "AAA", "BBB", AUCTION_RATE_SCALE); /* 1 */
    auction_rates_set(&f.t, "AAA", "CCC", INT64_MAX);          /* the largest rate */
    auction_rates_set(&f.t, "AAA", "DDD", 1);                  /* the smallest */
    auction_rates_set(&f.t, "AAA", "EEE", rate_of("149.53"));
    ck_assert_int_eq(convert(&f, INT64_MAX, "AAA", "BBB"), INT64_MAX);
    ck_assert_int_eq(convert(&f, INT64_MAX, "BBB", "AAA"), INT64_MAX);
    /* 1e12 micros * 9223372.036854775807 = INT64_MAX exactly */
    ck_assert_int_eq(convert(&f, AUCTION_PRICE_MAX_MICROS, "AAA", "CCC"), INT64_MAX);
    ck_assert_int_eq(convert(&f, AUCTION_PRICE_MAX_MICROS + 1, "AAA", "CCC"), -2);
    /* intermediates near 2^126 still exact */
    ck_assert_int_eq(convert(&f, INT64_MAX, "CCC", "AAA"), AUCTION_RATE_SCALE);
    ck_assert_int_eq(convert(&f, INT64_MAX, "AAA", "DDD"), 9223372); /* 9223372.04 */
    /* amount / 1e-12: fits up to INT64_MAX / 1e12 micros */
    ck_assert_int_eq(convert(&f, INT64_C(9223372), "DDD", "AAA"), INT64_C(9223372000000000000));
    ck_assert_int_eq(convert(&f, INT64_C(9223373), "DDD", "AAA"), -2);
    ck_assert_int_eq(convert(&f, INT64_MAX, "DDD", "AAA"), -2);
    ck_assert_int_eq(convert(&f, AUCTION_PRICE_MAX_MICROS, "AAA", "EEE"), INT64_C(149530000000000));
    ck_assert_int_eq(convert(&f, INT64_C(149530000000000), "EEE", "AAA"), AUCTION_PRICE_MAX_MICROS);
    int64_t out = 5;
    ck_assert_int_eq(auction_convert(&f.t, INT64_MAX, "AAA", "CCC", &out), AUCTION_ERR_PRICE);
    ck_assert_int_eq(auction_convert(&f.t, -1, "AAA", "BBB", &out), AUCTION_ERR_PRICE);
    ck_assert_int_eq(out, 5);
}
END_TEST

START_TEST(rates_table) {
    rates_fixture f;
    auction_rates_init(&f.t, f.rows, 2);
    ck_assert_int_eq(auction_rates_set(&f.t, "USD", "EUR", RATE(0.92)), AUCTION_OK);
    ck_assert_int_eq(auction_rates_set(&f.t, "USD", "EUR", RATE(0.93)), AUCTION_OK); /* replaces */
    ck_assert_int_eq(auction_rates_set(&f.t, "USD", "GBP", RATE(0.8)), AUCTION_OK);
    ck_assert_int_eq(auction_rates_set(&f.t, "USD", "JPY", RATE(149)), AUCTION_ERR_FULL);
    ck_assert_int_eq(auction_rates_set(&f.t, "USD", "GBP", RATE(0.81)), AUCTION_OK); /* not full */
    ck_assert_int_eq(auction_rates_set(&f.t, "usd", "EUR", RATE(1)), AUCTION_ERR_CURRENCY);
    ck_assert_int_eq(auction_rates_set(&f.t, "USD", "EURO", RATE(1)), AUCTION_ERR_CURRENCY);
    ck_assert_int_eq(auction_rates_set(&f.t, "USD", "EUR", 0), AUCTION_ERR_RATE);
    ck_assert_int_eq(auction_rates_set(&f.t, "USD", "EUR", -1), AUCTION_ERR_RATE);
    const auction_rate *r = auction_rates_find(&f.t, "USD", "EUR");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->rate, RATE(0.93));
    ck_assert_str_eq(r->from, "USD");
    ck_assert_str_eq(r->to, "EUR");
    ck_assert_int_eq(auction_rates_find(&f.t, "USD", "GBP")->rate, RATE(0.81));
    ck_assert_ptr_null(auction_rates_find(&f.t, "EUR", "USD")); /* no inverse here */
    ck_assert_ptr_null(auction_rates_find(&f.t, "USD", NULL));
    ck_assert_ptr_null(auction_rates_find(NULL, "USD", "EUR"));
    ck_assert_int_eq(convert(&f, M(1.00), "EUR", "USD"), 1075269); /* 1 / 0.93 */

    auction_rates_init(&f.t, NULL, 8); /* no storage: nothing fits */
    ck_assert_int_eq(auction_rates_set(&f.t, "USD", "EUR", RATE(0.92)), AUCTION_ERR_FULL);
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

    tc = tcase_create("deals_and_imps");
    tcase_add_test(tc, deal_beats_open_bid);
    tcase_add_test(tc, deal_alone_clears_at_deal_floor);
    tcase_add_test(tc, deal_second_bid_plus_increment);
    tcase_add_test(tc, deal_clearing_capped_at_its_bid);
    tcase_add_test(tc, deal_bid_under_deal_floor_joins_open);
    tcase_add_test(tc, seat_not_in_wseat_joins_open);
    tcase_add_test(tc, unknown_dealid_is_an_error);
    tcase_add_test(tc, private_auction_without_deal_bid_no_winner);
    tcase_add_test(tc, ties_across_deal_and_open);
    tcase_add_test(tc, first_price_with_deals);
    tcase_add_test(tc, several_imps_one_bidder);
    tcase_add_test(tc, ref_copied_through);
    tcase_add_test(tc, imps_init_refused);
    tcase_add_test(tc, imps_storage_shared);
    tcase_add_test(tc, deal_match);
    tcase_add_test(tc, single_slot_equals_one_imp);
    suite_add_tcase(s, tc);

    tc = tcase_create("currency");
    tcase_add_test(tc, rate_parse);
    tcase_add_test(tc, rate_from_double);
    tcase_add_test(tc, currency_direct_rate);
    tcase_add_test(tc, currency_inverse_rate);
    tcase_add_test(tc, currency_half_up);
    tcase_add_test(tc, currency_unknown);
    tcase_add_test(tc, currency_large_amounts);
    tcase_add_test(tc, rates_table);
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

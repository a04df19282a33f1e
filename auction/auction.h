/* auction.h -- the auction itself: bids in, winner and clearing price out.
 *
 * Pure logic: no I/O, no clock, no allocation. Money is int64_t micros
 * (1e-6 currency units) everywhere; the helpers at the bottom convert the
 * decimal numbers that JSON carries to micros and back, exactly.
 *
 * Rules implemented: SPEC section 3.6 (second price, OpenRTB 2.6 `at`=2)
 * and section 12 (first price, `at`=1). */
#ifndef RTB_AUCTION_H
#define RTB_AUCTION_H

#include <stddef.h>
#include <stdint.h>

/* Upper bound of any price or floor: 1,000,000 currency units (SPEC 2). */
#define AUCTION_PRICE_MAX_MICROS INT64_C(1000000000000)

typedef enum auction_type {
    AUCTION_SECOND_PRICE = 2, /* OpenRTB `at` 2 */
    AUCTION_FIRST_PRICE = 1,  /* OpenRTB `at` 1 */
} auction_type;

typedef enum auction_err {
    AUCTION_OK = 0,
    AUCTION_ERR_PRICE,       /* price <= 0 or above AUCTION_PRICE_MAX_MICROS */
    AUCTION_ERR_BELOW_FLOOR, /* well-formed bid, but price < floor */
    AUCTION_ERR_FULL,        /* more bids than the storage the caller gave */
    AUCTION_ERR_ARG,         /* NULL bidder id or other misuse */
} auction_err;

/* One bid. Strings are borrowed: the auction keeps the pointers, so they
 * must outlive the auction (the transaction that owns the auction owns them).
 * `arrival` is set by auction_add_bid (the order of the calls). */
typedef struct auction_bid {
    const char *bidder_id;    /* advertiser / seat id, required */
    int64_t price_micros;     /* bid price, CPM, micros */
    const char *ad_id;        /* OpenRTB bid.adid, may be NULL */
    const char *creative_url; /* OpenRTB bid.iurl, may be NULL */
    const char *nurl;         /* win notice URL, may be NULL */
    const char *lurl;         /* loss notice URL, may be NULL */
    uint32_t arrival;         /* 0 for the first bid added, 1 for the next... */
} auction_bid;

/* An open auction. Fields are private to auction.c; allocate it anywhere
 * (stack, inside a transaction) and call auction_init. */
typedef struct auction {
    auction_type type;
    int64_t floor_micros;
    int64_t increment_micros;
    auction_bid *bids; /* caller-owned storage, `cap` entries */
    size_t nbids;
    size_t cap;
    uint32_t next_arrival;
} auction;

/* The outcome of auction_close. `winner` points into the auction's storage
 * (valid while the auction and its storage are). */
typedef struct auction_outcome {
    const auction_bid *winner;     /* NULL when no valid bid */
    const auction_bid *runner_up;  /* best valid bid of another bidder, or NULL */
    int64_t clearing_price_micros; /* 0 when no winner */
    size_t valid_bidders;          /* distinct bidders with a valid bid */
} auction_outcome;

/* Open an auction with floor `floor_micros` (0..AUCTION_PRICE_MAX_MICROS),
 * increment `increment_micros` (>= 0; SPEC 7 auction.price_increment) and
 * `cap` bid slots in caller-owned `storage` (which must outlive the auction). */
void auction_init(auction *a, auction_type type, int64_t floor_micros, int64_t increment_micros,
                  auction_bid *storage, size_t cap);

/* Add a bid (copied by value; its strings are borrowed). Bids are numbered in
 * the order they are added, which is the order responses arrived.
 * Returns AUCTION_OK when the bid is valid and kept; AUCTION_ERR_BELOW_FLOOR
 * when it is well formed but under the floor (not kept: it can neither win
 * nor set the price, SPEC 3.6); AUCTION_ERR_PRICE for a price <= 0 or over
 * the maximum; AUCTION_ERR_FULL when the storage is full; AUCTION_ERR_ARG for
 * a NULL bid or bidder id. Only AUCTION_OK changes the auction. */
auction_err auction_add_bid(auction *a, const auction_bid *bid);

/* Close the auction (SPEC 3.6): one bid per bidder (its highest; among equal
 * bids of one bidder the earliest), the highest price wins, equal prices go
 * to the earliest arrival. Second price: clearing = min(winner,
 * max(floor, second + increment)); a single valid bidder clears at the
 * floor. First price: clearing = winner's price. Does not modify `a`. */
void auction_close(const auction *a, auction_outcome *out);

/* Short English name of an error, for logs. Never NULL. */
const char *auction_strerror(auction_err err);

/* ---- Money: decimal <-> micros ------------------------------------------ */

/* Convert a decimal amount (as a JSON number parsed into a double) to micros.
 * Exact for every decimal with at most 6 decimals and at most 15 significant
 * digits (1.1 -> 1100000, 0.000001 -> 1, 1e6 -> 1000000000000): the decimal
 * that the double stands for is recovered and scaled in integer arithmetic.
 * More than 6 decimals round half up (0.0000005 -> 1, 2.0000004 -> 2000000).
 * Returns 0 and stores into *out on success; -1 when `value` is not finite,
 * negative, or above AUCTION_PRICE_MAX_MICROS after conversion. */
int auction_micros_from_double(double value, int64_t *out);

/* Parse the plain decimal in s[0..len) (no NUL needed; `s` is borrowed):
 * one or more digits, then optionally '.' and at most 6 more digits ("2.5",
 * "0.000001", "7", "7."). No sign, exponent, spaces or leading '.'. Exact:
 * "2.5" -> 2500000. Returns 0 and stores into *out on success; -1 when the
 * text is not such a decimal or is above AUCTION_PRICE_MAX_MICROS (*out is
 * left alone). For command-line prices (rtb-bidder, rtb-loadgen). */
int auction_micros_parse(const char *s, size_t len, int64_t *out);

/* Write `micros` as the shortest exact decimal ("2.11", "0.000001", "5",
 * "-1.5") into `buf` (at least AUCTION_MICROS_STRLEN bytes), NUL-terminated.
 * Returns the length written. */
#define AUCTION_MICROS_STRLEN 32
size_t auction_micros_format(int64_t micros, char *buf);

/* Write value / 10^decimals (decimals <= 18) the same way: exact, shortest,
 * no trailing zeros (12400 with 3 decimals -> "12.4"). Returns the length. */
size_t auction_decimal_format(int64_t value, unsigned decimals, char *buf);

/* Micros as a double, for the rare consumer that needs one (rtb-bidder's
 * price rules). Exact up to 2^53 micros. */
double auction_micros_to_double(int64_t micros);

#endif

/* auction.h -- the auction itself: bids in, winner and clearing price out.
 *
 * Pure logic: no I/O, no clock, no allocation. Money is int64_t micros
 * (1e-6 currency units) everywhere; the helpers at the bottom convert the
 * decimal numbers that JSON carries to micros and back, exactly, and convert
 * amounts between currencies.
 *
 * Two ways in, one engine. `auction_imps` runs one auction per impression of
 * a request (SPEC 17): each imp has its own floor, deals and private_auction,
 * and each bid is added to the imp it names. `auction` is the same engine with
 * one impression and no deals (the SPEC 2 single-slot form).
 *
 * Rules implemented: SPEC section 3.6 (second price, OpenRTB 2.6 `at`=2),
 * section 12 (first price, `at`=1) and section 17 (deals, private auctions,
 * several impressions, currency conversion). */
#ifndef RTB_AUCTION_H
#define RTB_AUCTION_H

#include <stddef.h>
#include <stdint.h>

/* Upper bound of any price or floor: 1,000,000 currency units (SPEC 2). */
#define AUCTION_PRICE_MAX_MICROS INT64_C(1000000000000)

/* Most impressions in one request (SPEC 17: `imps` has 1..16 entries). */
#define AUCTION_MAX_IMPS 16

typedef enum auction_type {
    AUCTION_SECOND_PRICE = 2, /* OpenRTB `at` 2 */
    AUCTION_FIRST_PRICE = 1,  /* OpenRTB `at` 1 */
} auction_type;

/* What became of a bid, or why a call was refused. For a bid: AUCTION_OK,
 * AUCTION_ERR_BELOW_FLOOR and AUCTION_ERR_PRIVATE are well-formed bids (SPEC 4
 * counts them in `bids`; the last two cannot win); AUCTION_ERR_PRICE,
 * AUCTION_ERR_IMP, AUCTION_ERR_DEAL and AUCTION_ERR_CURRENCY break a rule and
 * are a bidder error for that bid only (SPEC 5, 17). */
typedef enum auction_err {
    AUCTION_OK = 0,
    AUCTION_ERR_PRICE,       /* price <= 0 or above AUCTION_PRICE_MAX_MICROS; a
                                converted amount above INT64_MAX */
    AUCTION_ERR_BELOW_FLOOR, /* well-formed bid, but price < floor */
    AUCTION_ERR_FULL,        /* more bids (or rates) than the storage the caller gave */
    AUCTION_ERR_ARG,         /* NULL bidder id, bad imp or deal description, other misuse */
    AUCTION_ERR_IMP,         /* the imp index is not one of the request's imps */
    AUCTION_ERR_DEAL,        /* bid.dealid is not one of that imp's deals */
    AUCTION_ERR_PRIVATE,     /* well-formed, but not a deal bid and the imp is private */
    AUCTION_ERR_CURRENCY,    /* not 3 capital letters, or no rate between the currencies */
    AUCTION_ERR_RATE,        /* a rate that is not a positive decimal within range */
} auction_err;

/* One deal of an imp (OpenRTB 2.6 section 3.2.12, `imp.pmp.deals[]`). All
 * borrowed from the caller (the decoded request), for the auction's life. */
typedef struct auction_deal {
    const char *id;           /* deal.id, required; unique within its imp */
    int64_t bidfloor_micros;  /* deal.bidfloor, 0..AUCTION_PRICE_MAX_MICROS */
    const char *const *wseat; /* seats allowed to bid on it, `nwseat` entries */
    size_t nwseat;            /* 0: any seat */
} auction_deal;

/* One impression's rules (SPEC 17; OpenRTB 2.6 section 3.2.4 `imp` and
 * 3.2.11 `pmp`). Borrowed, like the deals it points to. */
typedef struct auction_imp {
    const char *id;            /* imp.id, for auction_imps_find; may be NULL */
    int64_t floor_micros;      /* the open auction's floor, 0..AUCTION_PRICE_MAX_MICROS */
    const auction_deal *deals; /* `ndeals` entries; NULL when ndeals is 0 */
    size_t ndeals;
    int private_auction; /* pmp.private_auction: 1, only deal bids can win */
} auction_imp;

/* One bid. Strings are borrowed: the auction keeps the pointers, so they
 * must outlive the auction (the transaction that owns the auction owns them).
 * The last three fields are set by the add; whatever the caller puts there is
 * overwritten. */
typedef struct auction_bid {
    const char *bidder_id;    /* advertiser id, required; one bid per bidder counts */
    int64_t price_micros;     /* bid price, CPM, micros, in the request's currency */
    const char *ad_id;        /* OpenRTB bid.adid, may be NULL */
    const char *creative_url; /* OpenRTB bid.iurl, may be NULL */
    const char *nurl;         /* win notice URL, may be NULL */
    const char *lurl;         /* loss notice URL, may be NULL */
    const char *seat;         /* seatbid.seat; NULL: bidder_id is the seat (SPEC 17) */
    const char *deal_id;      /* bid.dealid as the bidder sent it; NULL: none */
    void *ref;                /* the caller's own, copied through (e.g. its bid record) */
    /* set by the add */
    uint32_t arrival;         /* 0 for the first bid added, 1 for the next... */
    uint32_t imp_index;       /* the imp it was added to */
    const auction_deal *deal; /* the deal it competes for; NULL: the open auction */
} auction_bid;

/* The engine's state, shared by both entry points. Private to auction.c. */
typedef struct auction_core {
    auction_type type;
    int64_t increment_micros;
    auction_bid *bids; /* caller-owned storage, `cap` entries */
    size_t nbids;
    size_t cap;
    uint32_t next_arrival;
} auction_core;

/* The auctions of one request, one per imp. Fields are private to auction.c;
 * allocate it anywhere (stack, inside a transaction) and call
 * auction_imps_init. */
typedef struct auction_imps {
    auction_core core;
    const auction_imp *imps; /* borrowed, `nimps` entries */
    size_t nimps;
} auction_imps;

/* A single-impression auction without deals (the SPEC 2 form). Fields are
 * private to auction.c; allocate it anywhere and call auction_init. */
typedef struct auction {
    auction_core core;
    auction_imp imp;
} auction;

/* The outcome of closing one imp's auction. Pointers point into the
 * auction's storage or the caller's imps (valid while those are). */
typedef struct auction_outcome {
    const auction_bid *winner;     /* NULL when no bid can win */
    const auction_bid *runner_up;  /* best bid of another bidder in the same auction
                                      (deal or open) as the winner, or NULL */
    const auction_deal *deal;      /* the deal won: deal->id is the result's `deal_id`;
                                      NULL when the open auction won or no winner.
                                      (winner->deal_id is only what the bidder sent.) */
    int64_t clearing_price_micros; /* 0 when no winner */
    size_t valid_bidders;          /* distinct bidders in the auction that decided: the
                                      deal bids when any, else the open bids */
} auction_outcome;

/* ---- Several impressions, with deals (SPEC 17) --------------------------- */

/* Open the auctions of `nimps` impressions (1..AUCTION_MAX_IMPS) described
 * by `imps` (borrowed, with their deals and seats, for the auction's life),
 * with `increment_micros` (>= 0; SPEC 7 auction.price_increment) and `cap`
 * bid slots in caller-owned `storage`, shared by all imps (it must outlive
 * the auction). A kept bid takes one slot per (imp, bidder, deal-or-open):
 * 2 * nimps * bidders slots never run out, nor do as many as bids added.
 * Returns AUCTION_OK, or AUCTION_ERR_ARG when nimps is out of range, a floor
 * is out of 0..AUCTION_PRICE_MAX_MICROS, or a deal has no id (or an imp says
 * ndeals > 0 with NULL deals, a deal nwseat > 0 with NULL wseat); then `s`
 * is an auction of no imps (every add is AUCTION_ERR_IMP). */
auction_err auction_imps_init(auction_imps *s, auction_type type, int64_t increment_micros,
                              const auction_imp *imps, size_t nimps, auction_bid *storage,
                              size_t cap);

/* The index of the imp whose id is `imp_id` (NUL-terminated, borrowed), or
 * -1 when none has it: a bid for an unknown imp is a bidder error (SPEC 17). */
int auction_imps_find(const auction_imps *s, const char *imp_id);

/* Add a bid (copied by value; its strings are borrowed) to the auction of
 * imp `imp` (an index into the imps given to auction_imps_init). Bids are
 * numbered in the order they are added, across all imps: add them in the
 * order responses arrived, and a response's bids in their order in it.
 * Checked in this order (SPEC 3.6, 17):
 *   AUCTION_ERR_ARG   NULL `s`, bid or bidder id;
 *   AUCTION_ERR_IMP   `imp` is not an imp index;
 *   AUCTION_ERR_PRICE price <= 0 or over the maximum;
 *   AUCTION_ERR_DEAL  deal_id is set and is none of the imp's deals;
 *   then a deal bid (auction_deal_match) is kept among the deal bids;
 *   AUCTION_ERR_PRIVATE any other bid when the imp is a private auction;
 *   AUCTION_ERR_BELOW_FLOOR any other bid under the imp's floor;
 *   else it is kept in the open auction. AUCTION_ERR_FULL when the storage
 * is full. Kept means AUCTION_OK; only AUCTION_OK changes the auction. A
 * bidder keeps one deal bid and one open bid per imp: the highest of each (a
 * later equal or lower bid is ignored, with AUCTION_OK). */
auction_err auction_imps_add_bid(auction_imps *s, size_t imp, const auction_bid *bid);

/* Close imp `imp`'s auction into `out` (SPEC 17, 3.6, 12). Deals first: when
 * any deal bid was kept, the highest wins and clears at min(bid, max(its
 * deal's bidfloor, second deal bid + increment)), or its deal's bidfloor
 * when it is the only deal bid; with first price, at its bid. Otherwise,
 * unless the imp is private, the open auction decides as SPEC 3.6: clears at
 * min(bid, max(floor, second + increment)), the floor when alone, the bid
 * with first price. Ties: one bid per bidder per auction (its highest; of
 * equal ones the first added); equal prices go to the bid added first (the
 * earliest response), never to an id or memory order; a deal bid beats any
 * open bid, equal or higher. Imps are independent: a bidder may win several.
 * An `imp` out of range gives no winner. Does not modify `s`. */
void auction_imps_close(const auction_imps *s, size_t imp, auction_outcome *out);

/* Is `bid` a deal bid of `imp` (SPEC 17)? Stores into *deal the deal it
 * competes for: the deal whose id is bid->deal_id, when the bid's seat
 * (bid->seat, else bid->bidder_id) is in its wseat (or wseat is empty) and
 * the price is at least its bidfloor; otherwise NULL, and the bid belongs to
 * the open auction like one without a deal id. Returns AUCTION_OK, or
 * AUCTION_ERR_DEAL when deal_id is set but is none of the imp's deals (the
 * first deal with the id counts; ids are compared byte for byte, so "" is
 * an unknown deal). For callers that count deal bids or pick a loss reason. */
auction_err auction_deal_match(const auction_imp *imp, const auction_bid *bid,
                               const auction_deal **deal);

/* ---- One impression, no deals (SPEC 2 form) ----------------------------- */

/* Open an auction with floor `floor_micros` (0..AUCTION_PRICE_MAX_MICROS),
 * increment `increment_micros` (>= 0; SPEC 7 auction.price_increment) and
 * `cap` bid slots in caller-owned `storage` (which must outlive the auction).
 * The same as auction_imps_init with one imp that has no deals. */
void auction_init(auction *a, auction_type type, int64_t floor_micros, int64_t increment_micros,
                  auction_bid *storage, size_t cap);

/* Add a bid (copied by value; its strings are borrowed). Bids are numbered in
 * the order they are added, which is the order responses arrived.
 * Returns AUCTION_OK when the bid is valid and kept; AUCTION_ERR_BELOW_FLOOR
 * when it is well formed but under the floor (not kept: it can neither win
 * nor set the price, SPEC 3.6); AUCTION_ERR_PRICE for a price <= 0 or over
 * the maximum; AUCTION_ERR_DEAL for a bid with a deal_id (there are no
 * deals); AUCTION_ERR_FULL when the storage is full; AUCTION_ERR_ARG for a
 * NULL bid or bidder id. Only AUCTION_OK changes the auction. */
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

/* ---- Currency conversion (SPEC 17) -------------------------------------- */

/* A rate is an integer: the decimal rate times AUCTION_RATE_SCALE, so it
 * holds 12 decimals exactly ("0.92" -> 920000000000) and ranges over
 * 1e-12 .. INT64_MAX / 1e12 (about 9.2 million units of one currency per
 * unit of the other). */
#define AUCTION_RATE_DECIMALS 12
#define AUCTION_RATE_SCALE INT64_C(1000000000000)

/* One row of the table: 1 `from` = rate / AUCTION_RATE_SCALE `to`, as
 * `{"USD":{"EUR":0.92}}` says 1 USD = 0.92 EUR in the Prebid currency file. */
typedef struct auction_rate {
    char from[4], to[4]; /* ISO 4217 codes, 3 capital letters, NUL-terminated */
    int64_t rate;        /* scaled by AUCTION_RATE_SCALE, > 0 */
} auction_rate;

/* A table of rates in caller-owned storage. Fields are private to
 * currency.c; fill it with auction_rates_set. */
typedef struct auction_rates {
    auction_rate *rates; /* `cap` entries */
    size_t n, cap;
} auction_rates;

/* Is `code` (NUL-terminated, may be NULL) 3 capital letters A-Z? 1 or 0. */
int auction_currency_valid(const char *code);

/* Empty table over caller-owned `storage` of `cap` rows (it must outlive
 * the table; cap 0 and NULL storage make a table that converts only a
 * currency to itself). */
void auction_rates_init(auction_rates *t, auction_rate *storage, size_t cap);

/* Set the rate from `from` to `to` (NUL-terminated codes, copied):
 * 1 from = rate / AUCTION_RATE_SCALE to. A pair already in the table gets
 * the new rate (the last one set counts). Returns AUCTION_OK;
 * AUCTION_ERR_CURRENCY when a code is not 3 capital letters;
 * AUCTION_ERR_RATE when rate <= 0; AUCTION_ERR_FULL when the storage is
 * full. The table is unchanged on error. */
auction_err auction_rates_set(auction_rates *t, const char *from, const char *to, int64_t rate);

/* Parse the JSON number in text[0..len) (no NUL needed; borrowed) into a
 * scaled rate: the JSON grammar without a sign ("0.92", "1", "1.2e-05",
 * "9.2E-1"), exact up to 12 decimals, further digits rounded half up at the
 * 12th ("1.0000000000005" -> 1000000000001). Returns AUCTION_OK and stores
 * into *rate; AUCTION_ERR_RATE (leaving *rate alone) for any other text, a
 * negative number, one that is 0 at 12 decimals, or one above the range.
 * For the parser of Redis `currency:rates` (SPEC 17). */
auction_err auction_rate_parse(const char *text, size_t len, int64_t *rate);

/* The same from a double (what cJSON hands over): the shortest decimal that
 * converts back to the same double is recovered -- the text the sender
 * wrote when it had at most 15 significant digits -- and parsed as
 * auction_rate_parse does (0.92 -> 920000000000, exactly). AUCTION_ERR_RATE
 * when `value` is not finite, not positive or out of range. */
auction_err auction_rate_from_double(double value, int64_t *rate);

/* The row from `from` to `to` exactly as set (no inverse), or NULL. */
const auction_rate *auction_rates_find(const auction_rates *t, const char *from, const char *to);

/* Convert `amount_micros` (>= 0) of currency `from` to currency `to`
 * (NUL-terminated codes, borrowed) with table `t` (may be NULL), SPEC 17:
 * the same currency: unchanged; else the direct rate from->to when set:
 * amount * rate; else the inverse of the rate to->from: amount / rate. Each
 * is computed exactly in 128-bit integers from the scaled rate and rounded
 * once, half up, to the micro (so with rates of at most 12 decimals the
 * result is the exact value rounded half up). Returns AUCTION_OK and stores
 * into *out_micros; AUCTION_ERR_CURRENCY when a code is not 3 capital
 * letters or neither rate is set; AUCTION_ERR_PRICE when the amount is
 * negative or the result exceeds INT64_MAX (*out_micros left alone). The
 * caller still bounds the result (auction_add_bid refuses a price above
 * AUCTION_PRICE_MAX_MICROS). */
auction_err auction_convert(const auction_rates *t, int64_t amount_micros, const char *from,
                            const char *to, int64_t *out_micros);

#endif

/* auction.c -- collecting bids and closing the auction (SPEC 3.6).
 *
 * The auction keeps at most one bid per bidder: the highest it sent. Bids
 * under the floor or with a price that is not positive are refused as they
 * arrive, so closing only has to find the best bid and the best of the rest.
 * Arrival order breaks ties, so the result never depends on memory layout. */
#include "auction/auction.h"

#include <string.h>

void auction_init(auction *a, auction_type type, int64_t floor_micros, int64_t increment_micros,
                  auction_bid *storage, size_t cap) {
    a->type = type;
    a->floor_micros = floor_micros;
    a->increment_micros = increment_micros < 0 ? 0 : increment_micros;
    a->bids = storage;
    a->nbids = 0;
    a->cap = storage ? cap : 0;
    a->next_arrival = 0;
}

static auction_bid *find_bidder(auction *a, const char *bidder_id) {
    for (size_t i = 0; i < a->nbids; i++) {
        if (strcmp(a->bids[i].bidder_id, bidder_id) == 0) return &a->bids[i];
    }
    return NULL;
}

auction_err auction_add_bid(auction *a, const auction_bid *bid) {
    if (!a || !bid || !bid->bidder_id) return AUCTION_ERR_ARG;
    uint32_t arrival = a->next_arrival++;
    if (bid->price_micros <= 0 || bid->price_micros > AUCTION_PRICE_MAX_MICROS)
        return AUCTION_ERR_PRICE;
    if (bid->price_micros < a->floor_micros) return AUCTION_ERR_BELOW_FLOOR;

    auction_bid *slot = find_bidder(a, bid->bidder_id);
    if (slot) {
        /* One bid per bidder: a later bid only replaces a lower one. */
        if (bid->price_micros <= slot->price_micros) return AUCTION_OK;
    } else {
        if (a->nbids == a->cap) return AUCTION_ERR_FULL;
        slot = &a->bids[a->nbids++];
    }
    *slot = *bid;
    slot->arrival = arrival;
    return AUCTION_OK;
}

/* Does x beat y? Higher price, then earlier arrival. */
static int beats(const auction_bid *x, const auction_bid *y) {
    if (x->price_micros != y->price_micros) return x->price_micros > y->price_micros;
    return x->arrival < y->arrival;
}

void auction_close(const auction *a, auction_outcome *out) {
    const auction_bid *best = NULL, *second = NULL;
    for (size_t i = 0; i < a->nbids; i++) {
        const auction_bid *b = &a->bids[i];
        if (!best || beats(b, best)) {
            second = best;
            best = b;
        } else if (!second || beats(b, second)) {
            second = b;
        }
    }
    out->winner = best;
    out->runner_up = second;
    out->valid_bidders = a->nbids;
    out->clearing_price_micros = 0;
    if (!best) return;

    if (a->type == AUCTION_FIRST_PRICE) {
        out->clearing_price_micros = best->price_micros;
    } else if (!second) {
        out->clearing_price_micros = a->floor_micros;
    } else {
        int64_t price = second->price_micros + a->increment_micros;
        if (price < a->floor_micros) price = a->floor_micros;
        if (price > best->price_micros) price = best->price_micros;
        out->clearing_price_micros = price;
    }
}

const char *auction_strerror(auction_err err) {
    switch (err) {
    case AUCTION_OK:
        return "ok";
    case AUCTION_ERR_PRICE:
        return "price must be positive and at most 1000000";
    case AUCTION_ERR_BELOW_FLOOR:
        return "price below the bid floor";
    case AUCTION_ERR_FULL:
        return "too many bids for the auction";
    case AUCTION_ERR_ARG:
        return "bad argument";
    }
    return "unknown error";
}

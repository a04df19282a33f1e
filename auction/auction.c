/* auction.c -- collecting bids and closing the auctions (SPEC 3.6, 12, 17).
 *
 * One idea: every imp of a request holds two auctions, the deal bids and the
 * open bids, and closing looks at the deal bids first. Bids share one array of
 * caller-owned slots; each slot says its imp and its deal (NULL: open). A
 * slot holds one bidder's highest bid in one of those auctions, and bids that
 * cannot win (under the floor, not a deal bid on a private imp) are refused
 * as they arrive, so closing only has to find the best bid and the best of
 * the rest. Arrival order breaks ties, so the result never depends on memory
 * layout or on ids. The single-slot `auction` is the same engine with one
 * imp that has no deals. */
#include "auction/auction.h"

#include <string.h>

/* ---- The engine ----------------------------------------------------------------- */

static void core_init(auction_core *c, auction_type type, int64_t increment_micros,
                      auction_bid *storage, size_t cap) {
    c->type = type;
    c->increment_micros = increment_micros < 0 ? 0 : increment_micros;
    c->bids = storage;
    c->nbids = 0;
    c->cap = storage ? cap : 0;
    c->next_arrival = 0;
}

static int same_id(const char *x, const char *y) {
    return x == y || strcmp(x, y) == 0;
}

/* The slot of `bidder_id` in imp `imp`'s deal auction (deal != 0) or open
 * auction, or NULL. */
static auction_bid *find_slot(auction_core *c, uint32_t imp, int deal, const char *bidder_id) {
    for (size_t i = 0; i < c->nbids; i++) {
        auction_bid *b = &c->bids[i];
        if (b->imp_index == imp && (b->deal != NULL) == deal && same_id(b->bidder_id, bidder_id))
            return b;
    }
    return NULL;
}

static int seat_allowed(const auction_deal *d, const char *seat) {
    if (d->nwseat == 0) return 1;
    for (size_t i = 0; i < d->nwseat; i++)
        if (d->wseat[i] && strcmp(d->wseat[i], seat) == 0) return 1;
    return 0;
}

auction_err auction_deal_match(const auction_imp *imp, const auction_bid *bid,
                               const auction_deal **deal) {
    *deal = NULL;
    if (!bid->deal_id) return AUCTION_OK;
    const auction_deal *d = NULL;
    for (size_t i = 0; i < imp->ndeals && !d; i++)
        if (strcmp(imp->deals[i].id, bid->deal_id) == 0) d = &imp->deals[i];
    if (!d) return AUCTION_ERR_DEAL;
    /* A valid id but the wrong seat or too low a price: an open bid. */
    if (bid->price_micros < d->bidfloor_micros) return AUCTION_OK;
    if (!seat_allowed(d, bid->seat ? bid->seat : bid->bidder_id)) return AUCTION_OK;
    *deal = d;
    return AUCTION_OK;
}

static auction_err core_add(auction_core *c, const auction_imp *imp, uint32_t imp_index,
                            const auction_bid *bid) {
    uint32_t arrival = c->next_arrival++;
    if (bid->price_micros <= 0 || bid->price_micros > AUCTION_PRICE_MAX_MICROS)
        return AUCTION_ERR_PRICE;
    const auction_deal *deal;
    auction_err err = auction_deal_match(imp, bid, &deal);
    if (err != AUCTION_OK) return err;
    if (!deal) {
        if (imp->private_auction) return AUCTION_ERR_PRIVATE;
        if (bid->price_micros < imp->floor_micros) return AUCTION_ERR_BELOW_FLOOR;
    }

    auction_bid *slot = find_slot(c, imp_index, deal != NULL, bid->bidder_id);
    if (slot) {
        /* One bid per bidder and auction: a later bid only replaces a lower one. */
        if (bid->price_micros <= slot->price_micros) return AUCTION_OK;
    } else {
        if (c->nbids == c->cap) return AUCTION_ERR_FULL;
        slot = &c->bids[c->nbids++];
    }
    *slot = *bid;
    slot->arrival = arrival;
    slot->imp_index = imp_index;
    slot->deal = deal;
    return AUCTION_OK;
}

/* Does x beat y? Higher price, then earlier arrival. */
static int beats(const auction_bid *x, const auction_bid *y) {
    if (x->price_micros != y->price_micros) return x->price_micros > y->price_micros;
    return x->arrival < y->arrival;
}

/* The best and second-best bid of one auction, and how many bidders it has. */
typedef struct ranking {
    const auction_bid *best, *second;
    size_t n;
} ranking;

static void rank(ranking *r, const auction_bid *b) {
    r->n++;
    if (!r->best || beats(b, r->best)) {
        r->second = r->best;
        r->best = b;
    } else if (!r->second || beats(b, r->second)) {
        r->second = b;
    }
}

/* SPEC 3.6 and 17: min(bid, max(floor, second + increment)); the floor when
 * alone; the bid with first price. */
static int64_t clearing_price(const auction_core *c, const ranking *r, int64_t floor_micros) {
    if (c->type == AUCTION_FIRST_PRICE) return r->best->price_micros;
    if (!r->second) return floor_micros;
    int64_t price = r->second->price_micros + c->increment_micros;
    if (price < floor_micros) price = floor_micros;
    if (price > r->best->price_micros) price = r->best->price_micros;
    return price;
}

static void core_close(const auction_core *c, const auction_imp *imp, uint32_t imp_index,
                       auction_outcome *out) {
    ranking deals = {0}, open = {0};
    for (size_t i = 0; i < c->nbids; i++) {
        const auction_bid *b = &c->bids[i];
        if (b->imp_index != imp_index) continue;
        rank(b->deal ? &deals : &open, b);
    }
    memset(out, 0, sizeof(*out));
    if (deals.best) {
        out->winner = deals.best;
        out->runner_up = deals.second;
        out->deal = deals.best->deal;
        out->valid_bidders = deals.n;
        out->clearing_price_micros = clearing_price(c, &deals, deals.best->deal->bidfloor_micros);
    } else if (open.best && !imp->private_auction) {
        out->winner = open.best;
        out->runner_up = open.second;
        out->valid_bidders = open.n;
        out->clearing_price_micros = clearing_price(c, &open, imp->floor_micros);
    }
}

/* ---- Several impressions ---------------------------------------------------------- */

static int floor_ok(int64_t floor_micros) {
    return floor_micros >= 0 && floor_micros <= AUCTION_PRICE_MAX_MICROS;
}

static int imp_ok(const auction_imp *imp) {
    if (!floor_ok(imp->floor_micros)) return 0;
    if (imp->ndeals > 0 && !imp->deals) return 0;
    for (size_t i = 0; i < imp->ndeals; i++) {
        const auction_deal *d = &imp->deals[i];
        if (!d->id || !floor_ok(d->bidfloor_micros)) return 0;
        if (d->nwseat > 0 && !d->wseat) return 0;
    }
    return 1;
}

auction_err auction_imps_init(auction_imps *s, auction_type type, int64_t increment_micros,
                              const auction_imp *imps, size_t nimps, auction_bid *storage,
                              size_t cap) {
    core_init(&s->core, type, increment_micros, storage, cap);
    s->imps = NULL;
    s->nimps = 0;
    if (!imps || nimps == 0 || nimps > AUCTION_MAX_IMPS) return AUCTION_ERR_ARG;
    for (size_t i = 0; i < nimps; i++)
        if (!imp_ok(&imps[i])) return AUCTION_ERR_ARG;
    s->imps = imps;
    s->nimps = nimps;
    return AUCTION_OK;
}

int auction_imps_find(const auction_imps *s, const char *imp_id) {
    if (!imp_id) return -1;
    for (size_t i = 0; i < s->nimps; i++)
        if (s->imps[i].id && strcmp(s->imps[i].id, imp_id) == 0) return (int)i;
    return -1;
}

auction_err auction_imps_add_bid(auction_imps *s, size_t imp, const auction_bid *bid) {
    if (!s || !bid || !bid->bidder_id) return AUCTION_ERR_ARG;
    if (imp >= s->nimps) return AUCTION_ERR_IMP;
    return core_add(&s->core, &s->imps[imp], (uint32_t)imp, bid);
}

void auction_imps_close(const auction_imps *s, size_t imp, auction_outcome *out) {
    if (imp >= s->nimps) {
        memset(out, 0, sizeof(*out));
        return;
    }
    core_close(&s->core, &s->imps[imp], (uint32_t)imp, out);
}

/* ---- One impression, no deals ----------------------------------------------------- */

void auction_init(auction *a, auction_type type, int64_t floor_micros, int64_t increment_micros,
                  auction_bid *storage, size_t cap) {
    core_init(&a->core, type, increment_micros, storage, cap);
    a->imp = (auction_imp){.floor_micros = floor_micros};
}

auction_err auction_add_bid(auction *a, const auction_bid *bid) {
    if (!a || !bid || !bid->bidder_id) return AUCTION_ERR_ARG;
    return core_add(&a->core, &a->imp, 0, bid);
}

void auction_close(const auction *a, auction_outcome *out) {
    core_close(&a->core, &a->imp, 0, out);
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
    case AUCTION_ERR_IMP:
        return "impid is not one of the request's imps";
    case AUCTION_ERR_DEAL:
        return "dealid is not one of the imp's deals";
    case AUCTION_ERR_PRIVATE:
        return "not a deal bid on a private auction";
    case AUCTION_ERR_CURRENCY:
        return "unknown currency or no rate";
    case AUCTION_ERR_RATE:
        return "rate must be a positive decimal";
    }
    return "unknown error";
}

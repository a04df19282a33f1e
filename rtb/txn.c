/* txn.c -- the life of one bid request (SPEC 3), from receipt to result.
 *
 *   RECEIVED --> PROFILE --> BIDDING --> CLOSING --> PUBLISHED --> DONE
 *                   |                       ^
 *                   +--- deadline/shutdown -+
 *
 *   RECEIVED   made, in the in-flight table and the deadline queue;
 *   PROFILE    the Redis GET of the profile is out (SPEC 3.2);
 *   BIDDING    bidder calls are out; each answer is decoded and bid at
 *              once, so the auction sees bids in arrival order (SPEC 3.4);
 *   CLOSING    every bidder answered, the deadline passed or the server
 *              shuts down: calls still out are cancelled (timeouts), the
 *              auction is closed, the result published (SPEC 3.5-3.7) and
 *              the outcome handed to the transport;
 *   PUBLISHED  waiting for what is still outstanding (a profile GET that
 *              outlived the deadline: hiredis cannot cancel it);
 *   DONE       freed.
 *
 * The one idea: a transaction changes state only in txn_advance. Callbacks
 * (rtb_txn_on_profile, rtb_txn_on_answer, rtb_txns_expire,
 * rtb_txns_shutdown) record a fact -- an answer, the deadline, shutdown --
 * and call it; it runs every transition those facts allow, in a loop, and
 * frees the transaction in DONE. `outstanding` counts the operations out;
 * nothing else says what is pending.
 *
 * Deadlines: all auctions of one set have the same tmax, so they expire in
 * the order they arrived. The open transactions form one queue in deadline
 * order, and the transport keeps one wake-up, for the head of the queue:
 * an auction that closes early costs no timer operation. */
#include "rtb/txn.h"

#include "rtb/hash.h"
#include "rtb/log.h"

#include <stdlib.h>
#include <string.h>

#define TABLE_BUCKETS_MAX (1u << 21)
#define CHOSEN_MAX 128 /* above config auction.max_bidders' bound (100) */
#define OVERHEAD_MIN_US 1000

typedef enum txn_state {
    TXN_RECEIVED,
    TXN_PROFILE,
    TXN_BIDDING,
    TXN_CLOSING,
    TXN_PUBLISHED,
    TXN_DONE,
} txn_state;

struct rtb_txn {
    rtb_txns *set;
    rtb_txn *hnext;         /* in-flight bucket chain, while open */
    uint64_t hash;          /* of its request_id, under the set's key */
    rtb_txn *dprev, *dnext; /* deadline queue, while open */
    rtb_txn *lprev, *lnext; /* every live transaction */
    txn_state state;
    unsigned outstanding; /* profile lookup and calls out */
    /* facts recorded by the callbacks */
    int profile_answered; /* the lookup ended, or could not start */
    int profile_missed;
    int profile_failed;
    int deadline_passed;
    int shutdown;
    int profile_late; /* closed before the profile came */
    proto_bid_request req;
    proto_profile profile; /* root NULL: the config's default profile */
    int64_t received_us, deadline_us;
    size_t ncalls, nanswered;
    unsigned bids, errors, timeouts, skipped;
    auction_imps auction; /* one auction per imp (SPEC 17) */
    auction_imp *aimps;   /* the request's imps as the auction reads them */
    auction_bid *bid_storage;
    int pooled; /* the block is pool_bytes long: it may go back to the pool */
    rtb_txn_call calls[];
};

/* Freed blocks kept for the next auctions. A block holds a transaction, its
 * calls and its auction's room, a few KiB: glibc serves such sizes from its
 * large bins, and each such malloc first consolidates the small chunks
 * evhttp and cJSON freed since the last one -- some thousands of
 * instructions per auction that a free list does not spend. Blocks are of
 * one size, that of a single-imp request without deals (nearly every
 * request); larger ones come from malloc and go back to free. At most
 * TXN_POOL_MAX are kept. */
#define TXN_POOL_MAX 256

/* Under AddressSanitizer a pooled block is poisoned but for its link word,
 * so that a transaction used after its release is still reported as ASan
 * reports one used after free. */
#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define RTB_ASAN 1
#elif defined(__has_feature) /* clang */
#if __has_feature(address_sanitizer)
#define RTB_ASAN 1
#endif
#endif
#ifdef RTB_ASAN
#include <sanitizer/asan_interface.h>
#define POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POOL_POISON(p, n) ((void)(p), (void)(n))
#define POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct rtb_txns {
    const proto_config *cfg;
    rtb_registry *reg;
    rtb_txn_transport tp;
    rtb_txn **table; /* open transactions by request_id; power-of-two buckets */
    void *pool;      /* freed blocks of pool_bytes, linked through their first word */
    size_t pool_bytes, npool;
    size_t table_cap;
    rtb_hash_key key; /* the table's secret: publishers choose request_ids */
    size_t open, live;
    rtb_txn *dhead, *dtail; /* open transactions, earliest deadline first */
    rtb_txn *all;           /* live transactions */
    int64_t wake_us;        /* the wake-up asked for; 0: none */
    rtb_admission adm;
    proto_buf body;        /* the OpenRTB request being sent */
    proto_buf body_capped; /* the same for a bidder with its own tmax_ms cap */
    proto_buf result;      /* the result being published */
    const auction_rates *rates;
    rtb_txn_counts counts;
    /* What a close hands over, valid during `closed` (close_auction). */
    rtb_txn_notice *notices;
    size_t notices_cap;
    rtb_txn_win wins[AUCTION_MAX_IMPS];
    proto_result_imp rimps[AUCTION_MAX_IMPS];
};

static void txn_advance(rtb_txn *t, int64_t now_us);

/* ---- The set: in-flight table, deadline queue ------------------------------------ */

/* The in-flight table hashes request_ids, which publishers choose, with
 * SipHash under a key drawn at start (SPEC 15): nobody outside can pick ids
 * that share a bucket and make its chain long. */
static rtb_txn **find_slot(const rtb_txns *ts, const char *request_id) {
    uint64_t h = rtb_hash_str(&ts->key, request_id);
    rtb_txn **slot = &ts->table[h & (ts->table_cap - 1)];
    while (*slot && ((*slot)->hash != h || strcmp((*slot)->req.request_id, request_id) != 0))
        slot = &(*slot)->hnext;
    return slot;
}

static void table_insert(rtb_txns *ts, rtb_txn *t) {
    t->hash = rtb_hash_str(&ts->key, t->req.request_id);
    rtb_txn **slot = &ts->table[t->hash & (ts->table_cap - 1)];
    t->hnext = *slot;
    *slot = t;
}

static void table_remove(rtb_txns *ts, rtb_txn *t) {
    rtb_txn **slot = &ts->table[t->hash & (ts->table_cap - 1)];
    while (*slot && *slot != t)
        slot = &(*slot)->hnext;
    if (*slot) *slot = t->hnext;
    t->hnext = NULL;
}

static void queue_insert(rtb_txns *ts, rtb_txn *t) {
    rtb_txn *after = ts->dtail; /* usually the tail: deadlines come in order */
    while (after && after->deadline_us > t->deadline_us)
        after = after->dprev;
    t->dprev = after;
    t->dnext = after ? after->dnext : ts->dhead;
    if (t->dnext)
        t->dnext->dprev = t;
    else
        ts->dtail = t;
    if (after)
        after->dnext = t;
    else
        ts->dhead = t;
}

static void queue_remove(rtb_txns *ts, rtb_txn *t) {
    if (t->dprev)
        t->dprev->dnext = t->dnext;
    else
        ts->dhead = t->dnext;
    if (t->dnext)
        t->dnext->dprev = t->dprev;
    else
        ts->dtail = t->dprev;
    t->dprev = t->dnext = NULL;
}

/* Ask for a wake-up at the head's deadline unless an earlier one is asked. */
static void wake_for_head(rtb_txns *ts) {
    if (!ts->dhead) return;
    int64_t at = ts->dhead->deadline_us;
    if (ts->wake_us != 0 && ts->wake_us <= at) return;
    ts->wake_us = at;
    ts->tp.wake_at(ts->tp.ctx, at);
}

/* The bytes of a transaction's block for `nimps` imps with `ndeals` deals in
 * all and `max` bidders: the transaction, its calls, then its auction's
 * bids, imps and deals. */
static size_t block_bytes(size_t max, size_t nimps, size_t ndeals) {
    return sizeof(rtb_txn) + max * sizeof(rtb_txn_call) + 2 * nimps * max * sizeof(auction_bid) +
           nimps * sizeof(auction_imp) + ndeals * sizeof(auction_deal);
}

rtb_txns *rtb_txns_new(const proto_config *cfg, rtb_registry *reg, const rtb_txn_transport *tp) {
    rtb_txns *ts = calloc(1, sizeof(*ts));
    if (!ts) return NULL;
    ts->cfg = cfg;
    ts->reg = reg;
    ts->tp = *tp;
    rtb_admission_init(&ts->adm, cfg->health.lag_ms * 1000, cfg->auction.tmax_ms * 1000,
                       (size_t)cfg->limits.max_inflight, 0, 0);
    size_t cap = 16;
    while (cap < (size_t)cfg->limits.max_inflight * 2 && cap < TABLE_BUCKETS_MAX)
        cap *= 2;
    ts->table_cap = cap;
    ts->pool_bytes = block_bytes((size_t)cfg->auction.max_bidders, 1, 0);
    if (rtb_hash_key_init(&ts->key) != 0 || !(ts->table = calloc(cap, sizeof(*ts->table)))) {
        free(ts);
        return NULL;
    }
    return ts;
}

static void txn_free(rtb_txn *t) {
    rtb_txns *ts = t->set;
    if (t->lprev)
        t->lprev->lnext = t->lnext;
    else
        ts->all = t->lnext;
    if (t->lnext) t->lnext->lprev = t->lprev;
    ts->live--;
    proto_bid_request_free(&t->req);
    proto_profile_free(&t->profile);
    for (size_t i = 0; i < t->ncalls; i++)
        proto_bid_list_free(&t->calls[i].bids);
    if (t->pooled && ts->npool < TXN_POOL_MAX) {
        *(void **)(void *)t = ts->pool;
        ts->pool = t;
        ts->npool++;
        POOL_POISON((char *)t + sizeof(void *), ts->pool_bytes - sizeof(void *));
        return;
    }
    free(t);
}

void rtb_txns_free(rtb_txns *ts) {
    if (!ts) return;
    if (ts->live)
        rtb_log(PROTO_LOG_WARN, "%zu auctions still waiting for Redis at exit: freed", ts->live);
    while (ts->all)
        txn_free(ts->all);
    while (ts->pool) {
        void *next = *(void **)ts->pool;
        POOL_UNPOISON(ts->pool, ts->pool_bytes);
        free(ts->pool);
        ts->pool = next;
    }
    free(ts->table);
    free(ts->notices);
    proto_buf_free(&ts->body);
    proto_buf_free(&ts->body_capped);
    proto_buf_free(&ts->result);
    free(ts);
}

int rtb_txns_has(const rtb_txns *ts, const char *request_id) {
    return *find_slot(ts, request_id) != NULL;
}

size_t rtb_txns_open(const rtb_txns *ts) {
    return ts->open;
}

size_t rtb_txns_live(const rtb_txns *ts) {
    return ts->live;
}

const char *rtb_txn_request_id(const rtb_txn *t) {
    return t->req.request_id;
}

void rtb_txns_set_rates(rtb_txns *ts, const auction_rates *rates) {
    ts->rates = rates;
}

const rtb_txn_counts *rtb_txns_counts(const rtb_txns *ts) {
    return &ts->counts;
}

/* The request's imps and deals as the auction reads them (auction.h), in
 * the transaction's block: `aimps` then `deals`. */
static void describe_imps(const proto_bid_request *req, auction_imp *aimps, auction_deal *deals) {
    for (size_t i = 0; i < req->nimps; i++) {
        const proto_imp *imp = &req->imps[i];
        size_t nd = imp->pmp ? imp->pmp->ndeals : 0;
        for (size_t d = 0; d < nd; d++) {
            const proto_deal *pd = &imp->pmp->deals[d];
            deals[d] = (auction_deal){pd->id, pd->bidfloor_micros, pd->wseat, pd->nwseat};
        }
        aimps[i] = (auction_imp){
            .id = imp->id,
            .floor_micros = imp->floor_micros,
            .deals = nd ? deals : NULL,
            .ndeals = nd,
            .private_auction = imp->pmp && imp->pmp->private_auction == 1,
        };
        deals += nd;
    }
}

int rtb_txns_start(rtb_txns *ts, proto_bid_request *req, int64_t received_us, int64_t now_us) {
    size_t max = (size_t)ts->cfg->auction.max_bidders, ndeals = 0;
    for (size_t i = 0; i < req->nimps; i++)
        ndeals += req->imps[i].pmp ? req->imps[i].pmp->ndeals : 0;
    /* One deal bid and one open bid per imp and bidder never run out
     * (auction.h). */
    size_t slots = 2 * req->nimps * max;
    size_t bytes = block_bytes(max, req->nimps, ndeals);
    int pooled = bytes <= ts->pool_bytes;
    rtb_txn *t;
    if (pooled && ts->pool) {
        t = ts->pool;
        ts->pool = *(void **)ts->pool;
        ts->npool--;
        POOL_UNPOISON(t, ts->pool_bytes);
    } else {
        t = malloc(pooled ? ts->pool_bytes : bytes);
    }
    if (!t) {
        proto_bid_request_free(req);
        return -1;
    }
    memset(t, 0, sizeof(*t));
    t->pooled = pooled;
    t->set = ts;
    t->req = *req;
    t->bid_storage = (auction_bid *)(void *)&t->calls[max];
    t->aimps = (auction_imp *)(void *)&t->bid_storage[slots];
    describe_imps(&t->req, t->aimps, (auction_deal *)(void *)&t->aimps[req->nimps]);
    t->received_us = received_us;
    t->deadline_us = received_us + ts->cfg->auction.tmax_ms * 1000;
    auction_imps_init(&t->auction, ts->cfg->auction.type, ts->cfg->auction.price_increment_micros,
                      t->aimps, t->req.nimps, t->bid_storage, slots);
    table_insert(ts, t);
    queue_insert(ts, t);
    t->lnext = ts->all;
    if (ts->all) ts->all->lprev = t;
    ts->all = t;
    ts->open++;
    ts->live++;
    wake_for_head(ts);
    t->state = TXN_RECEIVED;
    txn_advance(t, now_us);
    return 0;
}

void rtb_txns_expire(rtb_txns *ts, int64_t now_us) {
    ts->wake_us = 0; /* the wake-up came */
    while (ts->dhead && ts->dhead->deadline_us <= now_us) {
        rtb_txn *t = ts->dhead;
        t->deadline_passed = 1;
        txn_advance(t, now_us); /* closes it: out of the queue */
    }
    wake_for_head(ts);
}

void rtb_txns_shutdown(rtb_txns *ts, int64_t now_us) {
    while (ts->dhead) {
        rtb_txn *t = ts->dhead;
        t->shutdown = 1;
        txn_advance(t, now_us);
    }
}

void rtb_txns_probe(rtb_txns *ts, int64_t due_us, int64_t now_us, int64_t cpu_us) {
    rtb_admission_probe(&ts->adm, due_us, now_us, ts->open, cpu_us);
}

rtb_admission_verdict rtb_txns_admit(rtb_txns *ts, int64_t now_us) {
    return rtb_admission_decide(&ts->adm, ts->open, ts->dhead ? ts->dhead->deadline_us : 0, now_us);
}

const rtb_admission *rtb_txns_admission(const rtb_txns *ts) {
    return &ts->adm;
}

int64_t rtb_txns_overhead_us(const rtb_txns *ts) {
    return OVERHEAD_MIN_US + ts->adm.lag_us;
}

/* ---- Profile (SPEC 3.2) ------------------------------------------------------------ */

static void use_default_profile(rtb_txn *t) {
    const cJSON *def = t->set->cfg->profiles.default_profile;
    const cJSON *ltv = cJSON_GetObjectItemCaseSensitive(def, "ltv_score");
    proto_profile_free(&t->profile);
    t->profile.interests = cJSON_GetObjectItemCaseSensitive(def, "interests");
    t->profile.ltv_score = cJSON_IsNumber(ltv) ? ltv->valuedouble : 0;
}

static void start_profile(rtb_txn *t) {
    rtb_txns *ts = t->set;
    if (ts->tp.profile_get(ts->tp.ctx, t, t->req.user_id) == 0) {
        t->outstanding++;
        return;
    }
    t->profile_answered = 1; /* Redis is down: the default, not cached */
    t->profile_failed = 1;
    use_default_profile(t);
}

void rtb_txn_on_profile(rtb_txn *t, rtb_profile_status st, const char *json, size_t len,
                        int64_t now_us) {
    t->outstanding--;
    /* The profile is only read while the bidders are chosen and called, all
     * within this call (txn_advance drops it after fan_out): its tree can
     * live in scratch memory. */
    int scoped = 0;
    if (t->state == TXN_PROFILE) {
        t->profile_answered = 1;
        t->profile_missed = st == RTB_PROFILE_MISS;
        t->profile_failed = st == RTB_PROFILE_ERROR;
        char err[160];
        scoped = st == RTB_PROFILE_HIT && proto_json_scratch_begin();
        int usable = st == RTB_PROFILE_HIT &&
                     proto_profile_decode(json, len, &t->profile, err, sizeof(err)) == PROTO_OK;
        if (st == RTB_PROFILE_HIT && !usable)
            rtb_log(PROTO_LOG_DEBUG, "profile of user %s unreadable (%s): using the default",
                    t->req.user_id, err);
        if (!usable) use_default_profile(t);
    }
    txn_advance(t, now_us); /* may free t */
    if (scoped) proto_json_scratch_end();
}

/* ---- Bidding (SPEC 3.3-3.5, 5) --------------------------------------------------- */

static void bidder_error(rtb_txn *t, rtb_txn_call *c, const char *what) {
    t->errors++;
    c->bidder->stats.errors++;
    rtb_bidder_log_error(c->bidder, t->req.request_id, what);
}

/* The OpenRTB tmax for a bidder with `left_ms` of the auction left, capped
 * by its own tmax_ms (SPEC 13). */
static int bidder_tmax_ms(const rtb_bidder *b, int64_t left_ms) {
    if (b->tmax_ms > 0 && b->tmax_ms < left_ms) left_ms = b->tmax_ms;
    return left_ms < 1 ? 1 : (int)left_ms;
}

static void call_one(rtb_txn *t, rtb_bidder *b, int64_t left_ms, int64_t now_us, int64_t wall_us) {
    rtb_txns *ts = t->set;
    int tmax_ms = bidder_tmax_ms(b, left_ms), probe;
    if (!rtb_bidder_admit(b, now_us, wall_us, (int64_t)tmax_ms * 1000, &probe)) {
        t->skipped++;
        return;
    }
    const proto_buf *body = &ts->body;
    if (tmax_ms < left_ms) { /* its own cap: its own body */
        proto_buf_reset(&ts->body_capped);
        if (proto_openrtb_request_encode(&t->req, &t->profile, ts->cfg, tmax_ms,
                                         &ts->body_capped) == 0)
            body = &ts->body_capped;
    }
    rtb_txn_call *c = &t->calls[t->ncalls++];
    memset(c, 0, sizeof(*c));
    c->txn = t;
    c->bidder = b;
    c->probe = probe;
    c->started_us = now_us;
    b->stats.calls++;
    if (ts->tp.call_start(ts->tp.ctx, c, body->data, body->len) == 0) {
        c->out = 1;
        t->outstanding++;
        return;
    }
    /* Not sent (memory, or evhttp refused it at once): a bidder error, but
     * no verdict on its health; a probe must not stay out. */
    t->nanswered++;
    rtb_bidder_outcome(b, RTB_HEALTH_TIMEOUT_EXCUSED, c->probe, -1, now_us);
    bidder_error(t, c, "cannot send the request");
}

static void fan_out(rtb_txn *t, int64_t now_us) {
    rtb_txns *ts = t->set;
    const proto_config *cfg = ts->cfg;
    rtb_bidder *chosen[CHOSEN_MAX];
    size_t max = (size_t)cfg->auction.max_bidders;
    if (max > CHOSEN_MAX) max = CHOSEN_MAX;
    /* More than max in the order: one that may not be called now leaves
     * its place to the next, and the next auction goes on from where this
     * one stopped (SPEC 3.3, 13, 16). */
    size_t n = rtb_registry_choose(ts->reg, t->profile.interests, t->req.context_interests, chosen,
                                   max, CHOSEN_MAX);
    if (n == 0) return;
    /* The bidders' time: what is left of the auction, minus what the
     * exchange needs to read their answers and publish (SPEC 13). */
    int64_t left_ms = (t->deadline_us - now_us - rtb_txns_overhead_us(ts)) / 1000;
    if (left_ms < 1) left_ms = 1;
    proto_buf_reset(&ts->body);
    if (proto_openrtb_request_encode(&t->req, &t->profile, cfg, (int)left_ms, &ts->body) != 0) {
        rtb_log(PROTO_LOG_ERROR, "out of memory encoding request %s: no bidder called",
                t->req.request_id);
        return;
    }
    /* Budgets go by the UTC day (SPEC 16): one wall-clock read per auction. */
    int64_t wall_us = ts->tp.wall_us(ts->tp.ctx);
    size_t i = 0;
    for (; i < n && t->ncalls < max; i++)
        call_one(t, chosen[i], left_ms, now_us, wall_us);
    rtb_registry_passed(ts->reg, i);
}

/* Decode one answer: 1 for a bid, 0 for a no-bid, -1 for an error (with
 * `what` set). SPEC 5. */
static int decode_answer(rtb_txn *t, rtb_txn_call *c, const rtb_call_result *r, char *what,
                         size_t len) {
    const proto_config *cfg = t->set->cfg;
    switch (r->status) {
    case RTB_CALL_OK:
        break;
    case RTB_CALL_BODY_TOO_LARGE:
        snprintf(what, len, "response body over %ld bytes", cfg->limits.max_response_bytes);
        return -1;
    case RTB_CALL_HEADERS_TOO_LARGE:
        snprintf(what, len, "response headers over %d bytes or malformed",
                 RTB_BIDDER_MAX_HEADER_BYTES);
        return -1;
    case RTB_CALL_CONNECT:
    case RTB_CALL_TIMEOUT:
        snprintf(what, len, "connection failed or closed before an answer");
        return -1;
    }
    if (r->code == 204) return 0;
    if (r->code != 200) {
        snprintf(what, len, "HTTP status %d", r->code);
        return -1;
    }
    char err[160];
    proto_bid_status st =
        proto_bid_response_decode_all(r->body, r->len, (size_t)cfg->limits.max_response_bytes,
                                      &t->req, &c->bids, err, sizeof(err));
    rtb_txn_counts *refused = &t->set->counts;
    for (int k = 0; k < PROTO_BID_STATUS_COUNT; k++)
        refused->by_proto[k] += c->bids.refused[k];
    if (st == PROTO_BID_OK) {
        /* Some bids refused beside valid ones: each is an error for that
         * bid only (SPEC 17), told in the log. */
        if (*err) rtb_bidder_log_error(c->bidder, t->req.request_id, err);
        return 1;
    }
    if (st == PROTO_BID_NO_BID || st == PROTO_BID_NO_SEATBID) return 0;
    snprintf(what, len, "%s: %s", proto_bid_status_str(st), err);
    return -1;
}

/* The currency the publisher is paid in (SPEC 17). */
static const char *request_currency(const rtb_txn *t) {
    return t->req.cur[0] ? t->req.cur : t->set->cfg->auction.currency;
}

/* Every valid bid of call c into the auction of its imp, its price first
 * converted to the request's currency (SPEC 17; in place: later readers,
 * the notices and the result, see the price that competed). Returns 1 when
 * at least one bid could compete (even under a floor: a well-formed bid,
 * SPEC 4 `bids`). */
static int record_bids(rtb_txn *t, rtb_txn_call *c) {
    const char *cur = request_currency(t);
    int well_formed = 0;
    for (size_t i = 0; i < c->bids.nbids; i++) {
        proto_bid *b = &c->bids.bids[i];
        if (strcmp(b->cur, cur) != 0) {
            int64_t converted;
            if (auction_convert(t->set->rates, b->price_micros, b->cur, cur, &converted) !=
                AUCTION_OK) {
                t->set->counts.currency++;
                char what[96];
                snprintf(what, sizeof(what), "bid in %s: no rate to %s (currency:rates)", b->cur,
                         cur);
                rtb_bidder_log_error(c->bidder, t->req.request_id, what);
                b->price_micros = 0; /* not a bid any more: no notice either */
                continue;
            }
            b->price_micros = converted;
            memcpy(b->cur, cur, 4);
        }
        auction_bid ab = {
            .bidder_id = c->bidder->id,
            .price_micros = b->price_micros,
            .ad_id = b->ad_id,
            .creative_url = b->creative_url,
            .nurl = b->nurl,
            .lurl = b->lurl,
            .seat = b->seat,
            .deal_id = b->deal_id,
            .ref = b,
        };
        auction_err e = auction_imps_add_bid(&t->auction, (size_t)b->imp_index, &ab);
        if (e == AUCTION_OK || e == AUCTION_ERR_BELOW_FLOOR || e == AUCTION_ERR_PRIVATE) {
            well_formed = 1;
        } else {
            b->price_micros = 0;
            if (e == AUCTION_ERR_PRICE) t->set->counts.by_proto[PROTO_BID_BAD_PRICE]++;
        }
    }
    return well_formed;
}

void rtb_txn_on_answer(rtb_txn_call *c, const rtb_call_result *r, int64_t now_us) {
    rtb_txn *t = c->txn;
    if (!c->out) return; /* a transport that broke its contract */
    c->out = 0;
    t->outstanding--;
    t->nanswered++;
    char what[256];
    int got = decode_answer(t, c, r, what, sizeof(what));
    /* An answer read while the loop was late took less than it seems: its
     * time is not learned (SPEC 13). */
    int64_t took_us = got >= 0 && rtb_admission_on_time(&t->set->adm, c->started_us)
                          ? now_us - c->started_us
                          : -1;
    rtb_bidder_outcome(c->bidder, got >= 0 ? RTB_HEALTH_OK : RTB_HEALTH_ERROR, c->probe, took_us,
                       now_us);
    if (got > 0 && record_bids(t, c)) {
        t->bids++;
        c->bidder->stats.bids++;
    } else if (got > 0) { /* every bid refused by the auction (currency, price) */
        bidder_error(t, c, "no bid of the response could compete");
    } else if (got == 0)
        c->bidder->stats.no_bids++;
    else
        bidder_error(t, c, what);
    txn_advance(t, now_us);
}

/* Calls still out at the close are timeouts (SPEC 4). One counts against
 * its bidder only when the exchange was on time (SPEC 13): the close is the
 * deadline firing within health.lag_ms, and no lag probe found the loop late
 * since the call went out. */
static void cancel_calls(rtb_txn *t, int64_t now_us) {
    rtb_txns *ts = t->set;
    int deadline_on_time = !t->shutdown && now_us - t->deadline_us <= ts->adm.lag_allow_us;
    if (t->nanswered < t->ncalls && !t->shutdown) rtb_admission_deadline_close(&ts->adm);
    for (size_t i = 0; i < t->ncalls; i++) {
        rtb_txn_call *c = &t->calls[i];
        if (!c->out) continue;
        ts->tp.call_cancel(ts->tp.ctx, c);
        c->out = 0;
        t->outstanding--;
        t->timeouts++;
        c->bidder->stats.timeouts++;
        int on_time = deadline_on_time && rtb_admission_on_time(&ts->adm, c->started_us);
        if (!on_time) c->bidder->stats.timeouts_excused++;
        rtb_bidder_outcome(c->bidder, on_time ? RTB_HEALTH_TIMEOUT : RTB_HEALTH_TIMEOUT_EXCUSED,
                           c->probe, on_time ? now_us - c->started_us : -1, now_us);
    }
}

/* ---- Closing (SPEC 3.6, 3.7, 4, 9) ------------------------------------------------- */

/* The status of an imp (or a request) without a winner: the deadline
 * passed with a bidder (or the profile lookup) still out, or not. */
static proto_status lost_status(const rtb_txn *t) {
    return t->timeouts > 0 || t->profile_late ? PROTO_STATUS_TIMEOUT : PROTO_STATUS_NO_BID;
}

/* The macros of bid b of call c (SPEC 9, 14, 17): its imp, and the clearing
 * price of that imp in the request's currency. */
static proto_notice_macros bid_macros(const rtb_txn *t, const rtb_txn_call *c, const proto_bid *b,
                                      const auction_outcome *imp, int won) {
    const proto_config *cfg = t->set->cfg;
    const proto_imp *pimp = &t->req.imps[b->imp_index];
    return (proto_notice_macros){
        .auction_id = t->req.request_id,
        .bid_id = b->bid_id,
        .imp_id = pimp->id,
        .seat_id = b->seat ? b->seat : c->bidder->id,
        .ad_id = b->ad_id,
        .price_micros = imp->clearing_price_micros,
        .currency = request_currency(t),
        .loss = won                                    ? 0
                : b->price_micros < pimp->floor_micros ? PROTO_LOSS_BELOW_FLOOR
                                                       : PROTO_LOSS_OUTBID,
        /* Losers learn what the winner paid only when the exchange says
         * so: OpenRTB leaves it to the exchange (SPEC 14). */
        .no_price = !won && !cfg->notices.loss_price,
    };
}

/* Room for n notices in the set's array; 0, or -1 when memory ran out. */
static int notices_room(rtb_txns *ts, size_t n) {
    if (n <= ts->notices_cap) return 0;
    rtb_txn_notice *v = realloc(ts->notices, n * sizeof(*v));
    if (!v) return -1;
    ts->notices = v;
    ts->notices_cap = n;
    return 0;
}

/* The winners' nurls, then each other bid's lurl, in the imps that had a
 * winner; bids below the floor are losers too (SPEC 9, 17). `imps` holds
 * each imp's outcome. */
static size_t collect_notices(rtb_txn *t, const auction_outcome *imps) {
    rtb_txns *ts = t->set;
    size_t total = 0, n = 0;
    for (size_t i = 0; i < t->ncalls; i++)
        total += t->calls[i].bids.nbids;
    if (notices_room(ts, total) != 0) {
        rtb_log(PROTO_LOG_ERROR, "out of memory: the notices of %s are not sent",
                t->req.request_id);
        return 0;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < t->ncalls; i++) {
            rtb_txn_call *c = &t->calls[i];
            for (size_t k = 0; k < c->bids.nbids; k++) {
                const proto_bid *b = &c->bids.bids[k];
                if (!b->price_micros) continue; /* refused: no bid */
                const auction_outcome *o = &imps[b->imp_index];
                if (!o->winner) continue; /* no winner there: nothing to tell */
                int won = o->winner->ref == b;
                if (won != (pass == 0)) continue;
                const char *url = won ? b->nurl : b->lurl;
                if (!url || !*url) continue;
                ts->notices[n++] = (rtb_txn_notice){
                    .url = url,
                    .bidder = c->bidder,
                    .win = won,
                    .macros = bid_macros(t, c, b, o, won),
                };
            }
        }
    }
    return n;
}

/* The call whose bidder made auction bid `ab`. */
static rtb_txn_call *call_of(rtb_txn *t, const auction_bid *ab) {
    for (size_t i = 0; i < t->ncalls; i++)
        if (t->calls[i].bidder->id == ab->bidder_id) return &t->calls[i];
    return NULL;
}

static void close_auction(rtb_txn *t, int64_t now_us) {
    rtb_txns *ts = t->set;
    table_remove(ts, t);
    queue_remove(ts, t);
    ts->open--;

    auction_outcome imps[AUCTION_MAX_IMPS];
    size_t nwins = 0;
    for (size_t i = 0; i < t->req.nimps; i++) {
        auction_imps_close(&t->auction, i, &imps[i]);
        const auction_bid *w = imps[i].winner;
        rtb_txn_call *c = w ? call_of(t, w) : NULL;
        proto_result_imp *ri = &ts->rimps[i];
        *ri = (proto_result_imp){.imp_id = t->req.imps[i].id, .status = lost_status(t)};
        if (!c) continue;
        const proto_bid *b = w->ref;
        ri->status = PROTO_STATUS_SUCCESS;
        ri->advertiser_id = c->bidder->id;
        ri->bid_price_micros = w->price_micros;
        ri->clearing_price_micros = imps[i].clearing_price_micros;
        ri->ad_id = b->ad_id;
        ri->creative_url = b->creative_url;
        ri->deal_id = imps[i].deal ? imps[i].deal->id : NULL;
        rtb_txn_win *win = &ts->wins[nwins++];
        *win = (rtb_txn_win){
            .bidder = c->bidder,
            .imp_id = ri->imp_id,
            .ad_id = b->ad_id,
            .deal_id = ri->deal_id,
            .clearing_price_micros = imps[i].clearing_price_micros,
            .currency = request_currency(t),
        };
        if (b->burl && *b->burl)
            win->burl = (rtb_txn_notice){.url = b->burl,
                                         .bidder = c->bidder,
                                         .win = 1,
                                         .macros = bid_macros(t, c, b, &imps[i], 1)};
    }
    for (size_t i = 0; i < t->req.nimps; i++) {
        ts->counts.imps[ts->rimps[i].status]++;
        ts->counts.deals_won += ts->rimps[i].deal_id != NULL;
    }
    proto_status status = nwins ? PROTO_STATUS_SUCCESS : lost_status(t);
    proto_result r = {
        .request_id = t->req.request_id,
        .status = status,
        .bids = t->bids,
        .bidders = (unsigned)t->ncalls,
        .timeouts = t->timeouts,
        .errors = t->errors,
        .skipped = t->skipped,
        .latency_us = now_us - t->received_us,
        .timestamp_us = ts->tp.wall_us(ts->tp.ctx),
    };
    rtb_txn_outcome out = {
        .request_id = t->req.request_id,
        .user_id = t->req.user_id,
        .status = status,
        .latency_us = r.latency_us,
        .profile_missed = t->profile_missed,
        .profile_failed = t->profile_failed,
        .wins = ts->wins,
        .nwins = nwins,
    };
    if (t->req.has_imps) { /* the "imps" array, even with one imp (SPEC 17) */
        r.imps = ts->rimps;
        r.nimps = t->req.nimps;
    }
    if (nwins) {
        const proto_result_imp *first = NULL;
        for (size_t i = 0; i < t->req.nimps && !first; i++)
            if (ts->rimps[i].status == PROTO_STATUS_SUCCESS) first = &ts->rimps[i];
        r.advertiser_id = first->advertiser_id;
        r.bid_price_micros = first->bid_price_micros;
        r.clearing_price_micros = first->clearing_price_micros;
        r.ad_id = first->ad_id;
        r.creative_url = first->creative_url;
        out.winner = ts->wins[0].bidder;
        out.clearing_price_micros = ts->wins[0].clearing_price_micros;
        out.ad_id = ts->wins[0].ad_id;
        out.nnotices = collect_notices(t, imps); /* may move ts->notices */
        out.notices = ts->notices;
    }
    proto_buf_reset(&ts->result);
    if (proto_result_encode(&r, &ts->result) == 0)
        out.published = ts->tp.publish(ts->tp.ctx, t->req.request_id, status, ts->result.data,
                                       ts->result.len) == 0;
    else
        rtb_log(PROTO_LOG_ERROR, "out of memory encoding the result of %s", t->req.request_id);
    ts->tp.closed(ts->tp.ctx, &out);
}

/* ---- The one place a transaction changes state ------------------------------------ */

static void txn_advance(rtb_txn *t, int64_t now_us) {
    for (;;) {
        txn_state was = t->state;
        switch (t->state) {
        case TXN_RECEIVED:
            start_profile(t);
            t->state = TXN_PROFILE;
            break;
        case TXN_PROFILE:
            if (t->deadline_passed || t->shutdown) {
                t->profile_late = 1;
                t->state = TXN_CLOSING;
            } else if (t->profile_answered) {
                fan_out(t, now_us);
                t->state = TXN_BIDDING;
            }
            /* Past PROFILE nothing reads the profile again: drop it now,
             * inside rtb_txn_on_profile's scratch scope. */
            if (t->state != TXN_PROFILE) proto_profile_free(&t->profile);
            break;
        case TXN_BIDDING:
            if (t->nanswered == t->ncalls || t->deadline_passed || t->shutdown) {
                cancel_calls(t, now_us);
                t->state = TXN_CLOSING;
            }
            break;
        case TXN_CLOSING:
            close_auction(t, now_us);
            t->state = TXN_PUBLISHED;
            break;
        case TXN_PUBLISHED:
            if (t->outstanding == 0) t->state = TXN_DONE;
            break;
        case TXN_DONE:
            txn_free(t);
            return;
        }
        if (t->state == was) return;
    }
}

/* txn.c -- the life of one bid request (SPEC 3), from receipt to result.
 *
 * A transaction owns everything of its request: the decoded request and
 * profile, the deadline timer (embedded), one `rtb_call` per bidder called,
 * the bids, and the auction. It moves PROFILE -> BIDDING -> CLOSED:
 *   PROFILE  a Redis GET for the profile is out;
 *   BIDDING  HTTP calls are out; each answer is decoded and bid at once, so
 *            the auction sees bids in arrival order;
 *   CLOSED   every bidder answered or the deadline fired: calls still out are
 *            cancelled (evhttp then never runs their callback, so we release
 *            their connections here), the result is published, and the
 *            transaction is freed -- unless the profile GET is still out, in
 *            which case its callback (hiredis runs it exactly once) frees it. */
#include "rtb/rtb.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <stdlib.h>
#include <string.h>

typedef enum txn_state { TXN_PROFILE, TXN_BIDDING, TXN_CLOSED } txn_state;

typedef struct rtb_call {
    rtb_txn *txn;
    rtb_bidder *bidder;
    rtb_conn *conn;
    struct evhttp_request *req; /* while pending */
    int pending;
    int http_error; /* evhttp error code, when it reported one */
    int probe;      /* the circuit breaker's probe call */
    proto_bid bid;
} rtb_call;

struct rtb_txn {
    rtb_server *srv;
    rtb_txn *hnext; /* in-flight bucket chain */
    txn_state state;
    int profile_pending;
    int fanning_out;
    proto_bid_request req;
    proto_profile profile; /* root NULL: the config's default profile */
    int64_t received_us, deadline_us;
    struct event deadline;
    size_t ncalls, nanswered;
    unsigned bids, errors, timeouts;
    auction auction;
    auction_bid *bid_storage;
    rtb_call calls[];
};

static void txn_free(rtb_txn *t) {
    proto_bid_request_free(&t->req);
    proto_profile_free(&t->profile);
    for (size_t i = 0; i < t->ncalls; i++)
        proto_bid_free(&t->calls[i].bid);
    free(t);
}

const char *rtb_txn_request_id(const rtb_txn *t) {
    return t->req.request_id;
}

rtb_txn **rtb_txn_next_slot(rtb_txn *t) {
    return &t->hnext;
}

/* ---- Closing ------------------------------------------------------------------ */

static proto_status outcome_status(const rtb_txn *t, const auction_outcome *o) {
    if (o->winner) return PROTO_STATUS_SUCCESS;
    /* The deadline passed with a bidder (or the profile lookup) still out. */
    if (t->timeouts > 0 || t->state == TXN_PROFILE) return PROTO_STATUS_TIMEOUT;
    return PROTO_STATUS_NO_BID;
}

static void cancel_pending_calls(rtb_txn *t) {
    for (size_t i = 0; i < t->ncalls; i++) {
        rtb_call *c = &t->calls[i];
        if (!c->pending) continue;
        evhttp_cancel_request(c->req); /* its callback will never run */
        c->req = NULL;
        c->pending = 0;
        rtb_bidder_release(c->conn);
        c->conn = NULL;
        c->bidder->stats.timeouts++;
        rtb_bidder_outcome(c->bidder, 0, c->probe, t->deadline_us);
        t->timeouts++;
    }
}

/* After a success result (SPEC 9, 10): the winner's nurl, the losers'
 * lurls, and the advertiser's and ad's wins and spend. */
static void after_win(rtb_txn *t, const auction_outcome *o) {
    rtb_server *srv = t->srv;
    for (size_t i = 0; i < t->ncalls; i++) {
        rtb_call *c = &t->calls[i];
        if (!c->bid.price_micros) continue; /* no well-formed bid */
        int won = c->bidder->id == o->winner->bidder_id;
        proto_notice_macros m = {
            .auction_id = t->req.request_id,
            .bid_id = c->bid.bid_id,
            .imp_id = c->bid.imp_id ? c->bid.imp_id : "1",
            .seat_id = c->bid.seat ? c->bid.seat : c->bidder->id,
            .ad_id = c->bid.ad_id,
            .price_micros = o->clearing_price_micros,
            .currency = srv->cfg->auction.currency,
            .loss = won                                         ? 0
                    : c->bid.price_micros < t->req.floor_micros ? PROTO_LOSS_BELOW_FLOOR
                                                                : PROTO_LOSS_OUTBID,
        };
        rtb_notify(srv->notifier, won ? c->bid.nurl : c->bid.lurl, &m);
    }
    /* Prices are CPM: one impression costs clearing / 1000. */
    long long spend = (long long)(o->clearing_price_micros / 1000);
    for (size_t i = 0; i < t->ncalls; i++) {
        if (t->calls[i].bidder->id != o->winner->bidder_id) continue;
        t->calls[i].bidder->stats.wins++;
        t->calls[i].bidder->stats.spend_micros += (unsigned long long)spend;
    }
    store_hincrby(srv->store, "stats:advertiser:", o->winner->bidder_id, "wins", 1);
    store_hincrby(srv->store, "stats:advertiser:", o->winner->bidder_id, "spend_micros", spend);
    if (o->winner->ad_id && *o->winner->ad_id) {
        store_hincrby(srv->store, "stats:ad:", o->winner->ad_id, "wins", 1);
        store_hincrby(srv->store, "stats:ad:", o->winner->ad_id, "spend_micros", spend);
    }
}

void rtb_txn_close(rtb_txn *t) {
    if (t->state == TXN_CLOSED) return;
    rtb_server *srv = t->srv;
    event_del(&t->deadline);
    cancel_pending_calls(t);

    auction_outcome o;
    auction_close(&t->auction, &o);
    proto_status status = outcome_status(t, &o);
    t->state = TXN_CLOSED;

    proto_result r = {
        .request_id = t->req.request_id,
        .status = status,
        .bids = t->bids,
        .bidders = (unsigned)t->ncalls,
        .timeouts = t->timeouts,
        .errors = t->errors,
        .latency_us = rtb_now_us() - t->received_us,
        .timestamp_us = rtb_wall_us(),
    };
    if (o.winner) {
        r.advertiser_id = o.winner->bidder_id;
        r.bid_price_micros = o.winner->price_micros;
        r.clearing_price_micros = o.clearing_price_micros;
        r.ad_id = o.winner->ad_id;
        r.creative_url = o.winner->creative_url;
    }
    proto_buf_reset(&srv->out);
    if (proto_result_encode(&r, &srv->out) == 0)
        rtb_server_publish_result(srv, t->req.request_id, &srv->out);
    srv->stats.results[status]++;
    rtb_metrics_observe_latency(&srv->stats, r.latency_us);
    if (o.winner) after_win(t, &o);

    rtb_server_forget(srv, t);
    if (!t->profile_pending) txn_free(t);
}

static void maybe_close(rtb_txn *t) {
    if (t->state == TXN_BIDDING && !t->fanning_out && t->nanswered == t->ncalls) rtb_txn_close(t);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rtb_txn_close(arg);
}

/* ---- Bidder answers --------------------------------------------------------------- */

static void on_http_error(enum evhttp_request_error err, void *arg) {
    rtb_call *c = arg;
    c->http_error = (int)err + 1;
}

/* Decode one answer: returns 1 for a bid, 0 for a no-bid, -1 for an error
 * (with `what` set). */
static int decode_answer(rtb_call *c, struct evhttp_request *req, char *what, size_t len) {
    rtb_txn *t = c->txn;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (c->http_error == EVREQ_HTTP_DATA_TOO_LONG + 1) {
        snprintf(what, len, "response body over %ld bytes", t->srv->cfg->limits.max_response_bytes);
        return -1;
    }
    if (!req || code == 0 || c->http_error) {
        snprintf(what, len, "connection failed or closed before an answer");
        return -1;
    }
    if (code == 204) return 0;
    if (code != 200) {
        snprintf(what, len, "HTTP status %d", code);
        return -1;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    const char *body = n ? (const char *)evbuffer_pullup(in, -1) : "";
    char err[160];
    proto_bid_status st =
        proto_bid_response_decode(body, n, (size_t)t->srv->cfg->limits.max_response_bytes,
                                  t->req.request_id, &c->bid, err, sizeof(err));
    if (st == PROTO_BID_OK) return 1;
    if (st == PROTO_BID_NO_BID || st == PROTO_BID_NO_SEATBID) return 0;
    snprintf(what, len, "%s: %s", proto_bid_status_str(st), err);
    return -1;
}

static void record_bid(rtb_txn *t, rtb_call *c) {
    auction_bid b = {
        .bidder_id = c->bidder->id,
        .price_micros = c->bid.price_micros,
        .ad_id = c->bid.ad_id,
        .creative_url = c->bid.creative_url,
        .nurl = c->bid.nurl,
        .lurl = c->bid.lurl,
    };
    t->bids++;
    c->bidder->stats.bids++;
    auction_add_bid(&t->auction, &b); /* under the floor: counted, never wins */
}

static void on_response(struct evhttp_request *req, void *arg) {
    rtb_call *c = arg;
    rtb_txn *t = c->txn;
    char what[256];
    int got = decode_answer(c, req, what, sizeof(what));

    c->pending = 0;
    c->req = NULL;
    rtb_bidder_release(c->conn);
    c->conn = NULL;
    t->nanswered++;
    rtb_bidder_outcome(c->bidder, got >= 0, c->probe, rtb_now_us());
    if (got > 0) {
        record_bid(t, c);
    } else if (got == 0) {
        c->bidder->stats.no_bids++;
    } else {
        t->errors++;
        c->bidder->stats.errors++;
        rtb_bidder_log_error(c->bidder, t->req.request_id, what);
    }
    maybe_close(t);
}

/* ---- Fan-out ------------------------------------------------------------------------ */

static int call_bidder(rtb_txn *t, rtb_bidder *b, const proto_buf *body) {
    rtb_server *srv = t->srv;
    if (b->busy >= b->max_concurrent) {
        b->stats.throttled++;
        return -1;
    }
    int admitted = rtb_bidder_admit(b, rtb_now_us());
    if (!admitted) return -1;
    rtb_conn *conn = rtb_bidder_acquire(b, srv->base, (size_t)srv->cfg->limits.max_response_bytes);
    if (!conn) { /* out of memory: a failed call, so a probe is not left out */
        rtb_bidder_outcome(b, 0, admitted == 2, rtb_now_us());
        return -1;
    }
    rtb_call *c = &t->calls[t->ncalls];
    memset(c, 0, sizeof(*c));
    c->probe = admitted == 2;
    c->txn = t;
    c->bidder = b;
    c->conn = conn;
    struct evhttp_request *req = evhttp_request_new(on_response, c);
    if (!req) {
        rtb_bidder_release(conn);
        return -1;
    }
    evhttp_request_set_error_cb(req, on_http_error);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", b->host_header);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "x-openrtb-version", "2.6");
    evbuffer_add(evhttp_request_get_output_buffer(req), body->data, body->len);

    t->ncalls++;
    b->stats.calls++;
    c->pending = 1;
    c->req = req;
    if (evhttp_make_request(conn->evcon, req, EVHTTP_REQ_POST, b->path) != 0) {
        /* libevent freed the request; unless it already ran the callback,
         * count the call as a failed one. */
        if (c->pending) {
            c->pending = 0;
            c->req = NULL;
            rtb_bidder_release(conn);
            t->nanswered++;
            t->errors++;
            b->stats.errors++;
            rtb_bidder_log_error(b, t->req.request_id, "cannot send the request");
        }
    }
    return 0;
}

/* Pick at most max_bidders eligible advertisers (SPEC 3.3), rotating the
 * starting point so that each gets an equal share when more are eligible. */
static size_t choose_bidders(rtb_txn *t, rtb_bidder **chosen, size_t max) {
    rtb_server *srv = t->srv;
    const cJSON *user = t->profile.interests, *ctx = t->req.context_interests;
    size_t n = 0;
    for (size_t i = 0; i < srv->nbidders; i++) {
        rtb_bidder *b = srv->bidders[i];
        if (b->active && rtb_bidder_matches(b, user, ctx)) srv->eligible[n++] = b;
    }
    if (n <= max) {
        for (size_t i = 0; i < n; i++)
            chosen[i] = srv->eligible[i];
        return n;
    }
    size_t start = (size_t)(srv->rotation++ % n);
    for (size_t i = 0; i < max; i++)
        chosen[i] = srv->eligible[(start + i) % n];
    return max;
}

static void fan_out(rtb_txn *t) {
    rtb_server *srv = t->srv;
    const proto_config *cfg = srv->cfg;
    t->state = TXN_BIDDING;

    rtb_bidder *chosen[128];
    size_t max = (size_t)cfg->auction.max_bidders;
    if (max > sizeof(chosen) / sizeof(chosen[0])) max = sizeof(chosen) / sizeof(chosen[0]);
    size_t n = choose_bidders(t, chosen, max);
    if (n > 0) {
        int64_t left_ms = (t->deadline_us - rtb_now_us()) / 1000;
        proto_buf_reset(&srv->body);
        if (proto_openrtb_request_encode(&t->req, &t->profile, cfg->auction.type,
                                         left_ms < 1 ? 1 : (int)left_ms, cfg->auction.currency,
                                         &srv->body) != 0) {
            n = 0; /* out of memory: no bidder can be called */
        }
    }
    t->fanning_out = 1;
    for (size_t i = 0; i < n; i++)
        call_bidder(t, chosen[i], &srv->body);
    t->fanning_out = 0;
    maybe_close(t);
}

/* ---- Profile -------------------------------------------------------------------------- */

static void use_default_profile(rtb_txn *t) {
    const cJSON *def = t->srv->cfg->profiles.default_profile;
    const cJSON *ltv = cJSON_GetObjectItemCaseSensitive(def, "ltv_score");
    t->profile.root = NULL;
    t->profile.interests = cJSON_GetObjectItemCaseSensitive(def, "interests");
    t->profile.ltv_score = cJSON_IsNumber(ltv) ? ltv->valuedouble : 0;
}

static void on_profile(void *arg, store_status st, const char *value, size_t len) {
    rtb_txn *t = arg;
    rtb_server *srv = t->srv;
    t->profile_pending = 0;
    if (t->state == TXN_CLOSED) { /* closed at its deadline while we waited */
        txn_free(t);
        return;
    }
    char err[160];
    if (st == STORE_OK &&
        proto_profile_decode(value, len, &t->profile, err, sizeof(err)) == PROTO_OK) {
        fan_out(t);
        return;
    }
    if (st == STORE_OK) {
        rtb_log(PROTO_LOG_DEBUG, "profile of user %s unreadable (%s): using the default",
                t->req.user_id, err);
    } else if (st == STORE_NIL) {
        srv->stats.profile_misses++;
        proto_buf_reset(&srv->out);
        if (proto_profile_encode(srv->cfg->profiles.default_profile, t->req.user_id, &srv->out) ==
            0)
            store_profile_put(srv->store, t->req.user_id, srv->out.data, srv->out.len,
                              srv->cfg->profiles.ttl_s);
    } else {
        srv->stats.profile_errors++;
    }
    use_default_profile(t);
    fan_out(t);
}

rtb_txn *rtb_txn_start(rtb_server *srv, proto_bid_request *req, int64_t received_us) {
    size_t max = (size_t)srv->cfg->auction.max_bidders;
    rtb_txn *t = malloc(sizeof(*t) + max * sizeof(rtb_call) + max * sizeof(auction_bid));
    if (!t) {
        proto_bid_request_free(req);
        return NULL;
    }
    memset(t, 0, sizeof(*t));
    t->srv = srv;
    t->req = *req;
    t->bid_storage = (auction_bid *)((char *)t + sizeof(*t) + max * sizeof(rtb_call));
    t->received_us = received_us;
    t->deadline_us = received_us + srv->cfg->auction.tmax_ms * 1000;
    auction_init(&t->auction, srv->cfg->auction.type, req->floor_micros,
                 srv->cfg->auction.price_increment_micros, t->bid_storage, max);
    rtb_server_remember(srv, t);

    event_assign(&t->deadline, srv->base, -1, 0, on_deadline, t);
    int64_t wait_us = t->deadline_us - rtb_now_us();
    if (wait_us < 0) wait_us = 0;
    struct timeval tv = {(time_t)(wait_us / 1000000), (suseconds_t)(wait_us % 1000000)};
    event_add(&t->deadline, &tv);

    t->state = TXN_PROFILE;
    t->profile_pending = 1;
    if (store_profile_get(srv->store, t->req.user_id, on_profile, t) != 0) {
        /* Redis is down: the default profile, not cached (SPEC 3.2). */
        t->profile_pending = 0;
        srv->stats.profile_errors++;
        use_default_profile(t);
        fan_out(t);
    }
    return t;
}

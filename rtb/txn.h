/* txn.h -- one bid request's life, as a state machine (SPEC 3), and the set
 * of transactions in flight.
 *
 *   RECEIVED --> PROFILE --> BIDDING --> CLOSING --> PUBLISHED --> DONE
 *                   |                       ^             (nothing
 *                   +-- deadline / shutdown-+              outstanding)
 *
 * The transaction does no I/O of its own: it asks a transport (the server,
 * or a unit test's fake) to start a profile lookup, start or cancel a bidder
 * call, publish the result and wake it at a deadline, and the transport
 * tells it what happened through the rtb_txn_on_* functions, with the time.
 * Those record the fact and call the one function that moves a transaction
 * on, txn_advance (txn.c). What the close means for the rest of the exchange
 * (counters, notices, wins and spend, the profile cache) comes out as one
 * rtb_txn_outcome that the transport applies.
 *
 * Transport contract (hiredis's): a start function returns 0 and the answer
 * comes later, exactly once, never from inside the start call; or it returns
 * -1 and no answer ever comes. After call_cancel no answer comes for that
 * call. A transaction is freed only in DONE, with nothing outstanding. */
#ifndef RTB_TXN_H
#define RTB_TXN_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"
#include "rtb/admission.h"
#include "rtb/bidder.h"
#include "rtb/call.h"
#include "rtb/registry.h"

typedef struct rtb_txns rtb_txns;
typedef struct rtb_txn rtb_txn;

/* One bidder call of a transaction. The transport reads `bidder` and uses
 * `http` as the storage of its call; the rest is private to txn.c. */
typedef struct rtb_txn_call {
    rtb_txn *txn;
    rtb_bidder *bidder;
    rtb_call http;
    int out;             /* started, not answered, not cancelled */
    int probe;           /* the circuit's probe (rtb_bidder_admit) */
    int64_t started_us;  /* when it was sent */
    proto_bid_list bids; /* its valid bids (SPEC 17: several, on several imps),
                            prices converted to the request's currency */
} rtb_txn_call;

/* How the profile lookup ended (SPEC 3.2). */
typedef enum rtb_profile_status {
    RTB_PROFILE_HIT = 0, /* found: the JSON comes with it */
    RTB_PROFILE_MISS,    /* no profile stored for the user */
    RTB_PROFILE_ERROR,   /* Redis down or error */
} rtb_profile_status;

/* A win, loss or billing notice (SPEC 9, 14, 17: one per bid, with that
 * bid's imp and price): the bid's URL template, the values of its macros
 * and the bidder whose bid it was. Strings belong to the transaction. */
typedef struct rtb_txn_notice {
    const char *url;
    proto_notice_macros macros;
    rtb_bidder *bidder;
    int win; /* the winner's nurl (1) or a loser's lurl (0) */
} rtb_txn_notice;

/* One imp won (SPEC 17: a request has 1..16 imps, each its own auction,
 * and a bidder may win several). */
typedef struct rtb_txn_win {
    rtb_bidder *bidder;
    const char *imp_id;
    const char *ad_id;             /* the winning bid's adid (may be NULL) */
    const char *deal_id;           /* the deal won; NULL: the open auction */
    int64_t clearing_price_micros; /* in `currency` */
    const char *currency;          /* the request's (SPEC 17) */
    rtb_txn_notice burl;           /* its billing notice (SPEC 14); url NULL
                                      when the bid had none */
} rtb_txn_win;

/* What one closed auction means for the rest of the exchange. Everything is
 * borrowed from the transaction and valid only during the `closed` call. */
typedef struct rtb_txn_outcome {
    const char *request_id;
    const char *user_id;
    proto_status status;
    int published;                 /* the transport took the result (publish returned 0) */
    int64_t latency_us;            /* receipt to close */
    int profile_missed;            /* no profile in Redis: cache the default (SPEC 3.2) */
    int profile_failed;            /* the lookup failed (Redis down or error) */
    rtb_bidder *winner;            /* success: the first imp's winner, else NULL */
    int64_t clearing_price_micros; /* its clearing price */
    const char *ad_id;             /* its ad (may be NULL) */
    const rtb_txn_win *wins;       /* success: every imp won, in imp order */
    size_t nwins;
    const rtb_txn_notice *notices; /* success: the winners' nurls, then every
                                      losing bid's lurl in the imps that had a
                                      winner (SPEC 9, 17); only bids with a URL */
    size_t nnotices;
} rtb_txn_outcome;

/* What a transaction asks of the world. `ctx` is passed back to each. */
typedef struct rtb_txn_transport {
    /* Look up user:profile:{user_id}; answer with rtb_txn_on_profile. */
    int (*profile_get)(void *ctx, rtb_txn *t, const char *user_id);
    /* POST `body` to call->bidder; answer with rtb_txn_on_answer(call, ...). */
    int (*call_start)(void *ctx, rtb_txn_call *call, const char *body, size_t len);
    /* Cancel a call that is out: no answer may come afterwards. */
    void (*call_cancel)(void *ctx, rtb_txn_call *call);
    /* Publish the result JSON on auction:results:{request_id} (SPEC 4;
     * with its status for the result log, SPEC 14): 0 when taken, -1 when
     * refused. */
    int (*publish)(void *ctx, const char *request_id, proto_status status, const char *json,
                   size_t len);
    /* Apply the outcome of a closed auction. */
    void (*closed)(void *ctx, const rtb_txn_outcome *o);
    /* Call rtb_txns_expire at (or soon after) monotonic time `at_us`. One
     * wake-up is enough: it replaces the one asked before. */
    void (*wake_at)(void *ctx, int64_t at_us);
    /* Wall-clock time, Unix microseconds, for the result's timestamp. */
    int64_t (*wall_us)(void *ctx);
    void *ctx;
} rtb_txn_transport;

/* The set of transactions: the in-flight table (by request_id, hashed with
 * SipHash under a random key drawn here: SPEC 15), the deadline queue, and
 * the buffers the transactions encode into. `cfg`, `reg` and `tp` are
 * borrowed for the set's life. Returns NULL when memory ran out or
 * libsodium could not start. */
rtb_txns *rtb_txns_new(const proto_config *cfg, rtb_registry *reg, const rtb_txn_transport *tp);
/* Free the set. Every transaction must be DONE (rtb_txns_shutdown, then the
 * outstanding profile lookups answered); any left is freed without its
 * answers, which must then never come. NULL is a no-op. */
void rtb_txns_free(rtb_txns *ts);

/* Start a transaction for a decoded, valid request whose request_id is not
 * in flight (rtb_txns_has), received at monotonic `received_us`; its
 * deadline is received_us + auction.tmax_ms. Takes ownership of `req` (its
 * parse tree) whatever happens. Returns 0 (the transaction runs on by
 * itself and publishes exactly one result; it may already be DONE and
 * freed), or -1 when memory ran out (nothing was published). */
int rtb_txns_start(rtb_txns *ts, proto_bid_request *req, int64_t received_us, int64_t now_us);
/* 1 when a transaction for `request_id` is open (not yet published). */
int rtb_txns_has(const rtb_txns *ts, const char *request_id);
/* Transactions open now (received, result not yet published). */
size_t rtb_txns_open(const rtb_txns *ts);
/* Transactions not yet freed (open ones and closed ones with a lookup still
 * out). */
size_t rtb_txns_live(const rtb_txns *ts);

/* Close every open transaction whose deadline is at or before `now_us`
 * (SPEC 3.5), then ask the transport to wake the set at the next deadline. */
void rtb_txns_expire(rtb_txns *ts, int64_t now_us);
/* The currency rates bids are converted with (SPEC 17; borrowed until
 * replaced; NULL: none, only bids in the request's currency count). */
void rtb_txns_set_rates(rtb_txns *ts, const auction_rates *rates);

/* Counters of the set since start (SPEC 17): bids refused one by one, by
 * reason -- the proto statuses of proto_bid_response_decode_all's
 * refusals, and a currency with no rate to the request's -- and the
 * outcomes of every imp, and the imps a deal won. */
typedef struct rtb_txn_counts {
    unsigned long long by_proto[PROTO_BID_STATUS_COUNT];
    unsigned long long currency;                 /* no rate to the request's currency */
    unsigned long long imps[PROTO_STATUS_COUNT]; /* SUCCESS, NO_BID, TIMEOUT */
    unsigned long long deals_won;
} rtb_txn_counts;
const rtb_txn_counts *rtb_txns_counts(const rtb_txns *ts);

/* Close every open transaction now (shutdown): calls still out are
 * cancelled and counted as timeouts (excused: the bidders are not blamed),
 * results are published. */
void rtb_txns_shutdown(rtb_txns *ts, int64_t now_us);

/* ---- Admission (SPEC 13, admission.h) -------------------------------------------- */

/* A loop lag probe due at `due_us` ran at `now_us`; `cpu_us` is the loop's
 * CPU time (any CPU clock in µs). Call every RTB_ADMISSION_PROBE_US. */
void rtb_txns_probe(rtb_txns *ts, int64_t due_us, int64_t now_us, int64_t cpu_us);
/* May a new auction start now? ACCEPT, or why it is shed (counted). */
rtb_admission_verdict rtb_txns_admit(rtb_txns *ts, int64_t now_us);
/* The admission state: limit, lag, utilisation, shed counts (read-only). */
const rtb_admission *rtb_txns_admission(const rtb_txns *ts);
/* The time the exchange keeps for itself out of a bidder's time (the
 * OpenRTB tmax sent is the time left minus this): 1 ms plus the loop lag
 * measured last, in µs. */
int64_t rtb_txns_overhead_us(const rtb_txns *ts);

/* ---- What happened: the transport's answers ------------------------------------- */

/* The profile lookup of `t` ended; `json` (`len` bytes) valid for the call,
 * with RTB_PROFILE_HIT only. */
void rtb_txn_on_profile(rtb_txn *t, rtb_profile_status st, const char *json, size_t len,
                        int64_t now_us);
/* The bidder call `c` ended with `r` (call.h). */
void rtb_txn_on_answer(rtb_txn_call *c, const rtb_call_result *r, int64_t now_us);

/* The request_id of a transaction. */
const char *rtb_txn_request_id(const rtb_txn *t);

#endif

/* bidder.h -- one advertiser: its targeting, its endpoint and connection
 * pool, its circuit breaker and its counters (SPEC 5, 6).
 *
 * A bidder is made from a validated config entry or registry entry
 * (proto_bidder_conf) and lives as long as the server: an advertiser that
 * leaves the registry is only marked inactive, so the dashboard's per-bidder
 * history keeps its index. */
#ifndef RTB_BIDDER_H
#define RTB_BIDDER_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"
#include "rtb/call.h"

typedef struct rtb_bidder_stats {
    unsigned long long calls, bids, no_bids, timeouts, errors;
    unsigned long long throttled;     /* auctions that skipped it: max_concurrent */
    unsigned long long breaker_skips; /* auctions that skipped it: breaker open */
    unsigned long long breaker_opens;
    unsigned long long wins;
    unsigned long long spend_micros; /* sum of clearing prices / 1000 (CPM) */
} rtb_bidder_stats;

/* Circuit breaker (docs/operations.md): RTB_BREAKER_FAILURES consecutive
 * failures (errors or timeouts) open it; after a pause (1 s, doubling on
 * each failed probe up to 30 s) one call is let through as a probe; a
 * success closes it. */
#define RTB_BREAKER_FAILURES 10
typedef enum rtb_breaker {
    RTB_BREAKER_CLOSED = 0,
    RTB_BREAKER_OPEN = 1,
    RTB_BREAKER_HALF_OPEN = 2, /* a probe may go, or is out */
} rtb_breaker;

/* Response headers from a bidder at most (SPEC 15). */
#define RTB_BIDDER_MAX_HEADER_BYTES 8192

typedef struct rtb_bidder {
    char *id;
    char *endpoint; /* as configured */
    char *host;     /* parsed from endpoint */
    int port;
    char *path;        /* path + query, "/" at least */
    char *host_header; /* "host:port" */
    char **interests;
    size_t ninterests;
    long max_concurrent;
    int active;            /* in the current registry */
    rtb_http *http;        /* borrowed; NULL: the bidder is never called */
    size_t max_body_bytes; /* limits.max_response_bytes */
    rtb_pool *pool;        /* connections to the current endpoint; NULL until
                              the first call after a (re)configuration */
    rtb_bidder_stats stats;
    rtb_breaker breaker;
    unsigned failures;        /* consecutive */
    int probe_out;            /* half-open: the probe call is in flight */
    int64_t breaker_until_us; /* open: no call before this */
    int64_t breaker_pause_us;
    int64_t last_error_log_us; /* rate limit for error logs */
    unsigned long suppressed_logs;
} rtb_bidder;

/* Create a bidder from a validated config entry (copied). Calls go through
 * `http` (borrowed; may be NULL where no call is ever made, as in the unit
 * tests) with answer bodies of at most `max_body_bytes`. Returns NULL when
 * the endpoint cannot be parsed or memory ran out. */
rtb_bidder *rtb_bidder_new(const proto_bidder_conf *conf, rtb_http *http, size_t max_body_bytes);
/* Update targeting and endpoint from `conf`; the pool of an old endpoint is
 * retired (its calls still out end as usual). Returns 0, or -1 (bad endpoint
 * or memory: the bidder is left as it was). */
int rtb_bidder_update(rtb_bidder *b, const proto_bidder_conf *conf);
/* Free a bidder; its calls must have ended or been cancelled. NULL is a
 * no-op. */
void rtb_bidder_free(rtb_bidder *b);

/* Does the bidder target a user with these interests (SPEC 3.3)? Empty
 * bidder interests match everyone. `user` and `context` are cJSON arrays of
 * strings (either may be NULL). */
int rtb_bidder_matches(const rtb_bidder *b, const cJSON *user, const cJSON *context);

/* Calls in flight to the current endpoint, and connections open to it. */
long rtb_bidder_busy(const rtb_bidder *b);
long rtb_bidder_conns(const rtb_bidder *b);

/* What rtb_bidder_admit decides for one auction. */
typedef enum rtb_admit {
    RTB_ADMIT_SKIP = 0,  /* not called: max_concurrent reached or breaker open */
    RTB_ADMIT_CALL = 1,  /* call it */
    RTB_ADMIT_PROBE = 2, /* call it: this call is the breaker's probe */
} rtb_admit;

/* May the bidder be called in this auction? SKIP when max_concurrent calls
 * are out (counted in `throttled`, SPEC 5) or its breaker is open (counted
 * in `breaker_skips`); when the pause is over an open breaker turns
 * half-open and the call it admits is the PROBE. Half-open with the probe
 * out: SKIP. `now_us` is monotonic. */
rtb_admit rtb_bidder_admit(rtb_bidder *b, int64_t now_us);

/* POST `body` (`len` bytes, an OpenRTB 2.6 BidRequest) to the bidder's
 * endpoint with the SPEC 5 headers, through its pool; the rtb_call contract
 * of call.h (0: `fn` runs once later; -1: never). The caller counts the
 * call in stats.calls. */
int rtb_bidder_call(rtb_bidder *b, rtb_call *c, const char *body, size_t len, rtb_call_fn *fn,
                    void *arg);

/* Record how a call ended: `ok` (a bid or a no-bid) or a failure (bidder
 * error or timeout); `probe` when admit returned PROBE for it. Closed:
 * failures in a row open the breaker. Open or half-open: only the probe's
 * outcome counts -- success closes, failure reopens with the pause doubled.
 * Logs when it opens or closes. */
void rtb_bidder_outcome(rtb_bidder *b, int ok, int probe, int64_t now_us);

/* Log a bidder error at most once a second per bidder, counting the rest. */
void rtb_bidder_log_error(rtb_bidder *b, const char *request_id, const char *what);

#endif

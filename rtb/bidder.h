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
#include "rtb/budget.h"
#include "rtb/call.h"
#include "rtb/hash.h"
#include "rtb/health.h"

typedef struct rtb_bidder_stats {
    unsigned long long calls, bids, no_bids, errors;
    unsigned long long timeouts;                /* no answer by the deadline, all of them */
    unsigned long long timeouts_excused;        /* of those, while the exchange was late */
    unsigned long long skipped[RTB_SKIP_COUNT]; /* eligible, not called: by reason */
    unsigned long long would_throttle;          /* health.dry_run: called anyway */
    unsigned long long circuit_opens;
    unsigned long long connects; /* TCP connections opened to it (call.h) */
    unsigned long long wins;
    unsigned long long billed; /* its billing notices answered 2xx (SPEC 14) */
    /* The exact sum of its clearing prices, micros (prices are CPM: the
     * spend is this / 1000, taken only when reported; SPEC 14). */
    unsigned long long spend_cpm_micros;
    /* Its ad events (SPEC 10), as rtb/events.c accepts them: impressions,
     * clicks that were not duplicates, conversions (attributed or not). */
    unsigned long long impressions, clicks, conversions;
} rtb_bidder_stats;

/* What the bidder spent, micros: its clearing prices' sum / 1000, the
 * fraction of a micro dropped once, at the end (SPEC 14 exact spend). */
unsigned long long rtb_bidder_spend_micros(const rtb_bidder_stats *s);

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
    uint64_t *interest_hashes; /* rtb_hash_str of each interest under hash_key */
    size_t ninterests;
    const rtb_hash_key *hash_key; /* borrowed: the registry's */
    long max_concurrent;
    long tmax_ms;              /* a cap on its time (SPEC 13); 0: none */
    const char **notice_hosts; /* hosts its notice URLs may name: its endpoint's,
                                  then its notice_hosts (SPEC 15) */
    size_t nnotice_hosts;
    unsigned notices_out;  /* its notices out now (rtb_notice owner_out) */
    int active;            /* in the current registry */
    rtb_http *http;        /* borrowed; NULL: the bidder is never called */
    size_t max_body_bytes; /* limits.max_response_bytes */
    rtb_pool *pool;        /* connections to the current endpoint; NULL until
                              the first call after a (re)configuration */
    rtb_bidder_stats stats;
    rtb_health health;
    rtb_budget budget;         /* its daily budget and the day's spend known here (SPEC 16) */
    int64_t last_error_log_us; /* rate limit for error logs */
    unsigned long suppressed_logs;
} rtb_bidder;

/* Create a bidder from a validated config entry (copied). Calls go through
 * `http` (borrowed; may be NULL where no call is ever made, as in the unit
 * tests) with answer bodies of at most `max_body_bytes`; its health follows
 * `health` and its interests are hashed under `key` (both borrowed for its
 * life). Returns NULL when the endpoint cannot be parsed or memory ran
 * out. */
rtb_bidder *rtb_bidder_new(const proto_bidder_conf *conf, rtb_http *http, size_t max_body_bytes,
                           const rtb_health_conf *health, const rtb_hash_key *key);
/* Update targeting and endpoint from `conf`; the pool of an old endpoint is
 * retired (its calls still out end as usual). Returns 0, or -1 (bad endpoint
 * or memory: the bidder is left as it was). */
int rtb_bidder_update(rtb_bidder *b, const proto_bidder_conf *conf);
/* Free a bidder; its calls must have ended or been cancelled. NULL is a
 * no-op. */
void rtb_bidder_free(rtb_bidder *b);

/* Does the bidder target a user with these interests (SPEC 3.3)? `user` is
 * the set of the user's interests (profile and user_context.interests),
 * hashed under the key the bidder was made with. Empty bidder interests
 * match everyone. Time linear in the bidder's interests (SPEC 15). */
int rtb_bidder_matches(const rtb_bidder *b, const rtb_hash_set *user);

/* Calls in flight to the current endpoint, and connections open to it. */
long rtb_bidder_busy(const rtb_bidder *b);
long rtb_bidder_conns(const rtb_bidder *b);

/* May the bidder be called in an auction at `now_us` (monotonic) and
 * `wall_us` (Unix µs, for its budget's UTC day) that leaves it `left_us` to
 * answer? 0 when not: its daily budget is spent or its pacing holds it back
 * (SPEC 16, budget.h: asked first, so a bidder out of budget spends no
 * health probe), max_concurrent calls are out (SPEC 5) or its health says
 * no (circuit, throttled, too_slow: SPEC 13), each counted in stats.skipped
 * by reason. 1 when it may; *probe is then set when the call is its
 * circuit's probe (hand it back to rtb_bidder_outcome). */
int rtb_bidder_admit(rtb_bidder *b, int64_t now_us, int64_t wall_us, int64_t left_us, int *probe);

/* POST `body` (`len` bytes, an OpenRTB 2.6 BidRequest) to the bidder's
 * endpoint with the SPEC 5 headers, through its pool; the rtb_call contract
 * of call.h (0: `fn` runs once later; -1: never). The caller counts the
 * call in stats.calls. */
int rtb_bidder_call(rtb_bidder *b, rtb_call *c, const char *body, size_t len, rtb_call_fn *fn,
                    void *arg);

/* Record how a call ended at `now_us` (health.h: OK, ERROR, TIMEOUT,
 * TIMEOUT_EXCUSED; `latency_us` as rtb_health_record takes it); `probe` as
 * admit said. Logs when the circuit opens or closes. */
void rtb_bidder_outcome(rtb_bidder *b, rtb_health_outcome outcome, int probe, int64_t latency_us,
                        int64_t now_us);

/* Count one win at `clearing_micros` (CPM): wins, and the exact sum of
 * clearing prices (SPEC 14). */
void rtb_bidder_count_win(rtb_bidder *b, int64_t clearing_micros);

/* Log a bidder error at most once a second per bidder, counting the rest. */
void rtb_bidder_log_error(rtb_bidder *b, const char *request_id, const char *what);

#endif

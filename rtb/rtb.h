/* rtb.h -- the server: one libevent loop that takes bid requests from MQTT,
 * calls bidders over HTTP and publishes auction results through store/.
 *
 * Modules inside rtb/ and who owns what:
 *   server.c  the one server context: config, loop, MQTT, store, registry,
 *             the in-flight table, counters, signals and drain;
 *   txn.c     one transaction per bid request (SPEC 3): it owns the decoded
 *             request, profile, deadline timer, bidder calls, bids and result;
 *   bidder.c  advertisers and their pools of keep-alive evhttp connections;
 *   mqtt.c    libmosquitto driven by the loop (socket events + misc timer);
 *   admin.c   the admin HTTP listener: /healthz and /metrics;
 *   dashboard.c  the live dashboard (SPEC 11): per-second sampler, /api/stats
 *             JSON and the page; admin.c serves them and the SSE stream;
 *   alerts.c  alert rules (config `alerts`) evaluated each second;
 *   notice.c  win and loss notices: fire-and-forget GETs through a queue;
 *   events.c  ad events (impression, click, conversion) counted in Redis;
 *   log.c     leveled, timestamped logging to stderr.
 * A transaction moves PROFILE -> BIDDING -> CLOSED in txn_advance only;
 * callbacks record what happened and call it. */
#ifndef RTB_RTB_H
#define RTB_RTB_H

#include <stddef.h>
#include <stdint.h>

#include "auction/auction.h"
#include "proto/proto.h"
#include "store/store.h"

struct event_base;
struct event;
struct evhttp_connection;
struct evhttp_request;

/* ---- log.c ------------------------------------------------------------------ */

/* Set the lowest level written (config log.level; -v makes it debug). */
void rtb_log_set_level(proto_log_level level);
int rtb_log_enabled(proto_log_level level);
/* Write "2026-11-25T10:46:26.123Z LEVEL message" to stderr. */
void rtb_log(proto_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Monotonic microseconds (CLOCK_MONOTONIC), for deadlines and latency. */
int64_t rtb_now_us(void);
/* Wall-clock microseconds since the Unix epoch, for result timestamps. */
int64_t rtb_wall_us(void);

/* ---- bidder.c: advertisers and connection pools (SPEC 5, 6) --------------------- */

typedef struct rtb_conn {
    struct evhttp_connection *evcon;
    struct rtb_conn *next; /* idle list */
    struct rtb_bidder *bidder;
    unsigned generation; /* bidder's endpoint generation when opened */
} rtb_conn;

typedef struct rtb_bidder_stats {
    unsigned long long calls, bids, no_bids, timeouts, errors, throttled;
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
    int active;          /* in the current registry */
    rtb_conn *idle;      /* idle connections, ready for a call */
    long nconns;         /* connections to the current endpoint */
    unsigned generation; /* bumped when the endpoint changes */
    long busy;           /* calls in flight */
    rtb_bidder_stats stats;
    rtb_breaker breaker;
    unsigned failures;        /* consecutive */
    int probe_out;            /* half-open: the probe call is in flight */
    int64_t breaker_until_us; /* open: no call before this */
    int64_t breaker_pause_us;
    int64_t last_error_log_us; /* rate limit for error logs */
    unsigned long suppressed_logs;
} rtb_bidder;

/* Create a bidder from a validated config entry (copied). Returns NULL when
 * the endpoint cannot be parsed or memory ran out. */
rtb_bidder *rtb_bidder_new(const proto_bidder_conf *conf);
/* Update targeting and endpoint from `conf`; connections to an old endpoint
 * are closed (busy ones when their call ends). Returns 0, or -1 (bad
 * endpoint or memory: the bidder is left as it was). */
int rtb_bidder_update(rtb_bidder *b, const proto_bidder_conf *conf);
/* Free a bidder with no call in flight. */
void rtb_bidder_free(rtb_bidder *b);
/* Does the bidder target a user with these interests (SPEC 3.3)? Empty
 * bidder interests match everyone. `user` and `context` are cJSON arrays of
 * strings (either may be NULL). */
int rtb_bidder_matches(const rtb_bidder *b, const cJSON *user, const cJSON *context);

/* Take a connection for one call: an idle one, or a new one while fewer
 * than max_concurrent exist. NULL when the bidder is at its limit
 * (throttled) or memory ran out. */
rtb_conn *rtb_bidder_acquire(rtb_bidder *b, struct event_base *base, size_t max_body_bytes);
/* Give a connection back after its call ended or was cancelled. */
void rtb_bidder_release(rtb_conn *c);

/* May the bidder be called now (circuit breaker)? Returns 1 when closed;
 * 0 when open, until the pause is over; then it turns half-open and returns
 * 2: this call is the probe. Half-open with the probe out: 0. Skips are
 * counted. */
int rtb_bidder_admit(rtb_bidder *b, int64_t now_us);
/* Record how a call ended: `ok` (a bid or a no-bid) or a failure (bidder
 * error or timeout); `probe` when admit returned 2 for it. Closed: failures
 * in a row open the breaker. Open or half-open: only the probe's outcome
 * counts — success closes, failure reopens with the pause doubled. Logs
 * when it opens or closes. */
void rtb_bidder_outcome(rtb_bidder *b, int ok, int probe, int64_t now_us);

/* Log a bidder error at most once a second per bidder, counting the rest. */
void rtb_bidder_log_error(rtb_bidder *b, const char *request_id, const char *what);

/* ---- mqtt.c: libmosquitto on the loop (SPEC 1, 2) ------------------------------- */

typedef struct rtb_mqtt rtb_mqtt;
/* A message on the request topic; `payload` valid only during the call. */
typedef void rtb_mqtt_message_fn(void *arg, const char *topic, const char *payload, size_t len);
/* Connection state: `auth_refused` when the broker refused the credentials. */
typedef void rtb_mqtt_state_fn(void *arg, int connected, int auth_refused, const char *why);

/* Create the client (not connected yet). `cfg` is borrowed for the client's
 * life. Returns NULL with a message in `err` (bad TLS files, memory). */
rtb_mqtt *rtb_mqtt_new(struct event_base *base, const proto_config *cfg,
                       rtb_mqtt_message_fn *on_message, rtb_mqtt_state_fn *on_state, void *arg,
                       char *err, size_t errlen);
/* Start connecting; subscribes (QoS mqtt.qos) on every CONNACK, so a
 * reconnect resubscribes. Reconnects with backoff by itself. */
void rtb_mqtt_start(rtb_mqtt *m);
/* Stop taking requests: UNSUBSCRIBE the request topic (drain). */
void rtb_mqtt_unsubscribe(rtb_mqtt *m);
int rtb_mqtt_connected(const rtb_mqtt *m);
/* Disconnect and free. */
void rtb_mqtt_free(rtb_mqtt *m);

/* ---- notice.c: win and loss notices (SPEC 9) ------------------------------------- */

typedef struct rtb_notifier rtb_notifier;

typedef struct rtb_notice_stats {
    unsigned long long sent;    /* answered with 2xx */
    unsigned long long failed;  /* bad URL, other status, connection error, timeout */
    unsigned long long dropped; /* queue full (limits.max_pending_notices) */
} rtb_notice_stats;

/* A notifier on `base` with at most `max_pending` notices out at once. */
rtb_notifier *rtb_notifier_new(struct event_base *base, size_t max_pending);
/* Cancel what is still out (not counted as failed) and free. */
void rtb_notifier_free(rtb_notifier *n);
/* Substitute the macros of `m` in `url_template` and GET it, fire and
 * forget: never blocks, never delays a result. A URL that is not http://
 * with a host counts as failed; past max_pending it is dropped. */
void rtb_notify(rtb_notifier *n, const char *url_template, const proto_notice_macros *m);
const rtb_notice_stats *rtb_notifier_stats(const rtb_notifier *n);
size_t rtb_notifier_pending(const rtb_notifier *n);

/* ---- server.c ------------------------------------------------------------------- */

typedef struct rtb_txn rtb_txn;
typedef struct rtb_admin rtb_admin;
typedef struct rtb_dash rtb_dash;
typedef struct rtb_alerts rtb_alerts;

#define RTB_LATENCY_BUCKETS 16

typedef struct rtb_stats {
    unsigned long long requests; /* MQTT messages on the request topic */
    unsigned long long results[PROTO_STATUS_COUNT];
    unsigned long long request_errors; /* reported on auction:errors */
    unsigned long long duplicates;
    unsigned long long profile_misses, profile_errors;
    /* ad events (SPEC 10), counted as accepted by the exchange */
    unsigned long long impressions, clicks, duplicate_clicks, conversions;
    unsigned long long conversions_attributed, events_invalid;
    unsigned long long events_dropped; /* Redis down or out of memory */
    /* auction latency, receipt to close: counts per bucket of admin.c's
     * bounds (the last bucket is +Inf), their sum and count */
    unsigned long long latency_buckets[RTB_LATENCY_BUCKETS];
    unsigned long long latency_count;
    int64_t latency_sum_us;
} rtb_stats;

typedef struct rtb_server {
    struct event_base *base;
    proto_config *cfg; /* borrowed from main */
    store *store;
    rtb_mqtt *mqtt;
    rtb_admin *admin;   /* NULL when admin.listen is null */
    rtb_dash *dash;     /* per-second sampler (dashboard.c) */
    rtb_alerts *alerts; /* alert rules (alerts.c) */
    rtb_notifier *notifier;
    rtb_bidder **bidders; /* every advertiser ever seen; `active` marks */
    size_t nbidders, capbidders;
    uint64_t rotation;   /* fair rotation among eligible bidders */
    rtb_txn **inflight;  /* hash table of open transactions by request_id */
    size_t inflight_cap; /* power of two */
    size_t ninflight;
    rtb_bidder **eligible; /* scratch for bidder choice, capbidders long */
    proto_buf out;         /* reused for encoding results and profiles */
    proto_buf body;        /* reused for encoding OpenRTB requests */
    rtb_stats stats;
    struct event *refresh_timer, *drain_timer, *start_timer;
    struct event *sigint, *sigterm;
    int registry_reload; /* an update arrived during a load */
    int started;         /* MQTT started */
    int draining;
    int64_t drain_deadline_us;
    int mqtt_was_connected;
    int exit_code;
} rtb_server;

/* Build the server on `base` from `cfg` (both borrowed for the server's
 * life): connects Redis, loads the registry, then connects MQTT. Returns
 * NULL with a message in `err`. */
rtb_server *rtb_server_new(struct event_base *base, proto_config *cfg, char *err, size_t errlen);
/* Run the loop until shutdown; returns the process exit code (SPEC 7). */
int rtb_server_run(rtb_server *srv);
void rtb_server_free(rtb_server *srv);

/* Publish an encoded result for `request_id` (SPEC 4); counts failures. */
void rtb_server_publish_result(rtb_server *srv, const char *request_id, const proto_buf *json);
/* Add an open transaction to the in-flight table (by request_id). */
void rtb_server_remember(rtb_server *srv, rtb_txn *t);
/* Remove a closed transaction from the in-flight table. */
void rtb_server_forget(rtb_server *srv, rtb_txn *t);

/* ---- admin.c: the admin listener (SPEC 11) ------------------------------------------ */

/* Listen on `listen` ("host:port") with evhttp on the server's loop:
 * GET /healthz -> 200 "ok" when MQTT and Redis are connected, else 503 with
 * the reason; GET /metrics -> the Prometheus text exposition format (0.0.4).
 * Returns NULL with a message in `err` when the address is bad or taken. */
rtb_admin *rtb_admin_new(rtb_server *srv, const char *listen, char *err, size_t errlen);
void rtb_admin_free(rtb_admin *a);
/* Count one auction's latency (receipt to close) in `stats`. */
void rtb_metrics_observe_latency(rtb_stats *stats, int64_t latency_us);

/* ---- dashboard.c, alerts.c, admin.c: the live dashboard (SPEC 11) ---------------- */

struct evbuffer;

/* Upper bounds of the latency histogram's buckets (rtb_stats.latency_buckets,
 * /metrics), in µs, increasing; the last bucket (RTB_LATENCY_BUCKETS - 1) is
 * +Inf. Defined in admin.c. */
extern const int64_t rtb_latency_bounds_us[RTB_LATENCY_BUCKETS - 1];

/* The latency under which a fraction `q` (0 < q <= 1) of the auctions counted
 * in `buckets` closed, in ms. An estimate: the bucket holding rank q * count
 * is found and the value interpolated linearly between its bounds (as
 * Prometheus' histogram_quantile does), so it is as precise as the bucket is
 * narrow; a rank in the +Inf bucket gives its lower bound (1 s). Returns -1
 * when every bucket is 0. */
double rtb_latency_quantile_ms(const unsigned long long buckets[RTB_LATENCY_BUCKETS], double q);

#define RTB_DASH_HISTORY_S 600      /* samples kept: one a second, 10 minutes */
#define RTB_DASH_HISTORY_JSON_S 300 /* of those, how many /api/stats "history" carries */

/* What the exchange did over some seconds: differences of rtb_stats. */
typedef struct rtb_dash_counts {
    unsigned long long requests;
    unsigned long long results[PROTO_STATUS_COUNT];          /* by proto_status */
    unsigned long long latency_buckets[RTB_LATENCY_BUCKETS]; /* auctions closed */
    unsigned long long impressions, clicks, duplicate_clicks, conversions;
} rtb_dash_counts;

/* What one advertiser did over some seconds: differences of rtb_bidder_stats. */
typedef struct rtb_dash_bidder_counts {
    unsigned long long calls, bids, wins, timeouts, errors, throttled;
} rtb_dash_bidder_counts;

/* The sampler: a 1-second timer on srv's loop that keeps, for each of the
 * last RTB_DASH_HISTORY_S seconds, what changed in srv->stats and in every
 * advertiser's stats, and each breaker's state. After each sample it runs
 * rtb_alerts_evaluate(srv->alerts) and rtb_admin_broadcast(srv->admin) (each
 * when not NULL). `srv` is borrowed for the sampler's life. Returns NULL with
 * a message in `err` when memory ran out. Free before srv's alerts and admin. */
rtb_dash *rtb_dash_new(rtb_server *srv, char *err, size_t errlen);
void rtb_dash_free(rtb_dash *d);
/* Zero `out`, then add the last `seconds` samples to it. Returns how many
 * were added: fewer than `seconds` while the server is younger than that or
 * when seconds > RTB_DASH_HISTORY_S. */
int rtb_dash_window(const rtb_dash *d, int seconds, rtb_dash_counts *out);
/* The same for the advertiser srv->bidders[bidder] (an index into the
 * server's array, which only grows); 0 for seconds before it was seen. */
int rtb_dash_bidder_window(const rtb_dash *d, size_t bidder, int seconds,
                           rtb_dash_bidder_counts *out);
/* Append the JSON object of GET /api/stats (and of each SSE event) to
 * `out`: counters now, rates and latency of the latest second, the last
 * RTB_DASH_HISTORY_JSON_S seconds, active alerts. Shape: docs/dashboard.md.
 * Returns 0, or -1 when memory ran out (`out` unchanged). */
int rtb_dash_stats_json(const rtb_server *srv, struct evbuffer *out);
/* Append the self-contained HTML page of GET / to `out`. Returns 0 or -1. */
int rtb_dash_page(struct evbuffer *out);

/* Alert rules (config `alerts`, docs/dashboard.md): each second every rule is
 * evaluated over its last window_s seconds of samples; a rule whose value
 * goes above `above` fires, and resolves when the value is back at or below
 * it. Both transitions are published on Redis channel auction:alerts and
 * logged. A window with fewer than RTB_ALERT_MIN_COUNT calls (per-bidder
 * metrics), results (rates) or closed auctions (latency) keeps the rule's
 * state as it is. */
#define RTB_ALERT_MIN_COUNT 5
#define RTB_ALERTS_CHANNEL "auction:alerts"

/* Build the rules of srv->cfg->alerts, which the config rows checked (no
 * config alerts: an empty set). Returns NULL with "out of memory" in `err`.
 * `srv` is borrowed. */
rtb_alerts *rtb_alerts_new(rtb_server *srv, char *err, size_t errlen);
void rtb_alerts_free(rtb_alerts *a);
/* Evaluate every rule on srv->dash's samples; `wall_us` (Unix µs) stamps
 * the transitions. Called by the sampler after each sample. */
void rtb_alerts_evaluate(rtb_alerts *a, int64_t wall_us);
/* Append one object per active alert to the cJSON array `array` (owned by
 * the caller): {"name","metric","subject","value","above","window_s",
 * "since"}. Returns 0, or -1 when memory ran out. */
int rtb_alerts_json(const rtb_alerts *a, cJSON *array);
/* Number of active alerts. */
size_t rtb_alerts_active(const rtb_alerts *a);

/* GET /api/stream clients at most (admin.c); past it the answer is 503. */
#define RTB_ADMIN_MAX_STREAMS 32
/* Send the current /api/stats JSON as one Server-Sent Event ("data: ...")
 * to every /api/stream client (admin.c). Called by the sampler each second.
 * A client whose unsent output passed 1 MiB is dropped. */
void rtb_admin_broadcast(rtb_admin *a);

/* ---- events.c: ad events (SPEC 10) ------------------------------------------------ */

/* 1 when `topic` is an event topic (rtb/events/...). */
int rtb_events_topic(const char *topic);
/* Handle one event message (`payload` valid only during the call): decode,
 * then count it in stats:advertiser:{id} / stats:ad:{ad_id} (HINCRBY),
 * deduplicating clicks with SET click:{user}:{ad} 1 NX EX 3600 and
 * attributing conversions to the user's last click on the advertiser.
 * Invalid events are counted (events_invalid) and logged at debug level;
 * events that cannot reach Redis are counted (events_dropped). */
void rtb_events_on_message(rtb_server *srv, const char *topic, const char *payload, size_t len);

/* ---- txn.c: one bid request's life (SPEC 3) ------------------------------------ */

/* Start a transaction for a decoded, valid, non-duplicate request. Takes
 * ownership of `req` (its parse tree) whatever happens. `received_us` is the
 * monotonic receipt time; the deadline is received_us + tmax_ms. The
 * transaction publishes exactly one result and frees itself. Returns the
 * transaction (already in the in-flight table) or NULL when memory ran out. */
rtb_txn *rtb_txn_start(rtb_server *srv, proto_bid_request *req, int64_t received_us);
/* The request_id of an open transaction (key of the in-flight table). */
const char *rtb_txn_request_id(const rtb_txn *t);
/* Next transaction in the same in-flight bucket. */
rtb_txn **rtb_txn_next_slot(rtb_txn *t);
/* Close now (shutdown): cancels calls, publishes the result. */
void rtb_txn_close(rtb_txn *t);

#endif

/* admin.c -- the admin HTTP listener: /healthz, /metrics and the live
 * dashboard (SPEC 11): GET / (the page), GET /api/stats (JSON) and
 * GET /api/stream (Server-Sent Events), the campaign view (SPEC 16:
 * GET /api/advertisers, GET /api/advertisers/{id}) and the alert rules of
 * SPEC 16 (GET and POST /api/alerts, DELETE /api/alerts/{name}), within the
 * bounds of SPEC 15.
 *
 * An evhttp server on the same loop as everything else, bound to
 * admin.listen (loopback by default). It only reads the server's counters;
 * a scrape costs one pass over the advertisers and never touches an
 * auction. /metrics speaks the Prometheus text exposition format 0.0.4.
 *
 * Bounds (SPEC 15). evhttp itself caps the request line and headers (8 KiB:
 * 400 and close) and bodies (16 KiB, the most any route takes: 413 before
 * reading it), and closes a connection that sends nothing for 30 s. Every
 * request then passes one gate, on_request: its Host must name this
 * listener (else 421; 400 when missing or repeated: no DNS-rebound page can
 * read the dashboard), its path is looked up in `routes` (method -> 405 with
 * Allow, body -> 413: each route says which methods and how many body bytes
 * it takes; a row may match a path prefix, /api/alerts/{name}). Refusals,
 * evhttp's own included, are counted by reason on /metrics.
 *
 * Writes (SPEC 16) need Authorization: Bearer {admin.token}, compared in
 * time that does not depend on where the two differ; with no token
 * configured they are refused (403). A write waits for Redis: its request
 * is held by an `api_call` until the alert module's callback answers it.
 * When its connection goes first, the call forgets the request (or, when
 * libevent left the request to us, answers it into the void, which frees
 * it); when the listener goes first, the call is cut loose and its answer
 * dropped.
 *
 * The one idea for connections: evhttp (libevent 2.1) has no hook for a new
 * connection and no cap (2.2's evhttp_set_newreqcb and max_connections), but
 * it lets us make each connection's bufferevent (new_bev) and then passes
 * its evhttp_connection as that bufferevent's callback argument. So every
 * connection gets a `conn` at accept, adopted (its evhttp_connection and
 * close callback learnt) in the same loop turn; that evhttp really does so is
 * checked once at start on a probe connection. The conns form a list, least
 * recently active first; past 256 the first one that is not a stream (and
 * preferably has no reply in flight) is freed. The output of every
 * connection is watched: bytes written while no route of ours is answering
 * are evhttp's own refusals, counted by their status line.
 *
 * A stream is a chunked reply that never ends: the sampler (dashboard.c)
 * calls rtb_admin_broadcast once a second and each client gets one
 * "data: {json}" event. Lifetimes: a stream slot holds its request until the
 * connection's close callback runs. When the client goes away, libevent
 * detaches the unfinished request from the connection
 * (evhttp_request_get_connection gives NULL), frees the connection and
 * calls the close callback, which ends (frees) the request; in every other
 * case the slot is emptied before the reply is ended or the connection
 * freed, and libevent frees the request with its connection. So no chunk is
 * ever sent to a freed request, and none leaks. A stream has no read
 * timeout (a client of a stream says nothing), only the write one. The
 * campaign view's replies wait on Redis (campaign.h) and are held the same
 * way: on their connection, until answered or the connection closes. */
#include "rtb/admin.h"

#include "rtb/campaign.h"
#include "rtb/dashboard.h"
#include "rtb/dashboard_page.h"
#include "rtb/log.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define STREAM_MAX_BACKLOG (1u << 20) /* unread bytes before a client is dropped */
#define STREAM_RETRY_MS 2000          /* EventSource reconnect delay we ask for */

/* Every method evhttp parses: the routes, not evhttp, say which they take. */
#define ALL_METHODS                                                                                \
    (EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |     \
     EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)
#define GET_HEAD (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD)

/* Why a request was refused: rtb_admin_refused_total{reason}. */
typedef enum refusal {
    REFUSED_HOST,    /* Host missing, repeated or naming something else: 400, 421 */
    REFUSED_HEADERS, /* request line or headers unreadable or over 8 KiB: evhttp's 400 */
    REFUSED_BODY,    /* a body the route does not take: 413 (ours or evhttp's) */
    REFUSED_METHOD,  /* a method the route does not take: 405 (evhttp: 501) */
    REFUSED_AUTH,    /* a write without the right bearer token, or with none configured */
    REFUSED_COUNT,
} refusal;

static const char *const refusal_names[REFUSED_COUNT] = {"host", "headers", "body", "method",
                                                         "auth"};

typedef struct conn conn;
typedef struct held held;

/* One GET /api/stream client; req NULL: a free slot. */
typedef struct stream {
    rtb_admin *admin;
    struct evhttp_request *req;
    conn *conn; /* the connection it is the last reply of */
} stream;

/* One connection of the listener, from accept to close. */
struct conn {
    rtb_admin *admin;
    struct bufferevent *bev;         /* evhttp's, made by new_bev */
    struct evhttp_connection *evcon; /* NULL until adopted */
    struct evbuffer_cb_entry *watch; /* on bev's output: evhttp's own refusals */
    stream *stream;                  /* the stream it carries, or NULL */
    unsigned waiting;                /* its API writes waiting for Redis */
    held *held;                      /* the reply it waits for, or NULL */
    int64_t active_us;               /* accepted, or its latest request */
    conn *prev, *next;               /* a->oldest .. a->newest */
};

/* One write of the admin API waiting for Redis (SPEC 16). */
typedef struct api_call {
    rtb_admin *admin;           /* NULL once the listener is freed */
    struct evhttp_request *req; /* NULL once its connection freed it */
    conn *conn;                 /* NULL once closed */
    struct api_call *prev, *next;
} api_call;

struct rtb_admin {
    struct event_base *base;
    const rtb_server *srv;
    rtb_alerts *alerts;
    api_call *calls; /* writes waiting for Redis */
    struct evhttp *http;
    char **hosts; /* names a Host header may give, without port or brackets */
    size_t nhosts;
    conn *oldest, *newest; /* every connection, least recently active first */
    size_t nconns;
    struct event *adopt;                  /* activated by new_bev: adopt_all */
    bufferevent_event_cb evhttp_error_cb; /* evhttp's, learnt from a probe */
    int answering;                        /* 1 while a route of ours writes */
    unsigned long long refused[REFUSED_COUNT];
    unsigned long long evicted; /* idle connections closed at the cap */
    stream streams[RTB_ADMIN_MAX_STREAMS];
    size_t nstreams;
    struct evbuffer *event; /* scratch: one SSE event, copied to each client */
    struct evbuffer *chunk; /* scratch: what evhttp_send_reply_chunk drains */
    held *held;             /* replies that wait on Redis (the campaign view) */
};

static void reply(struct evhttp_request *req, int code, const char *reason,
                  const char *content_type, struct evbuffer *body) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", content_type);
    evhttp_send_reply(req, code, reason, body);
}

static void on_healthz(struct evhttp_request *req, void *arg) {
    rtb_admin *a = arg;
    rtb_server_health h;
    rtb_server_health_get(a->srv, &h);
    int mqtt_up = h.mqtt_connected, redis_up = h.redis_connected;
    struct evbuffer *body = evbuffer_new();
    if (!body) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (mqtt_up && redis_up && !h.draining) {
        evbuffer_add_printf(body, "ok\n");
        reply(req, 200, "OK", "text/plain; charset=utf-8", body);
    } else {
        evbuffer_add_printf(body, "unavailable:%s%s%s\n", mqtt_up ? "" : " mqtt disconnected;",
                            redis_up ? "" : " redis disconnected;",
                            h.draining ? " shutting down;" : "");
        reply(req, 503, "Service Unavailable", "text/plain; charset=utf-8", body);
    }
    evbuffer_free(body);
}

static void counter(struct evbuffer *b, const char *name, const char *help,
                    unsigned long long value) {
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                        value);
}

static void gauge(struct evbuffer *b, const char *name, const char *help, long long value) {
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name, name,
                        value);
}

/* Per-bidder series: one HELP/TYPE header, one line per advertiser. Ids are
 * [A-Za-z0-9._:-] (SPEC 6 via the config and registry decoders), so they
 * need no escaping inside a label value. A counter reads an unsigned long
 * long of rtb_bidder_stats at `offset`; a gauge formats its value (an empty
 * value leaves the line out). */
typedef struct series {
    struct evbuffer *b;
    const char *name;
    size_t offset;
    void (*gauge)(const rtb_bidder *bd, int64_t now_us, char *buf, size_t len);
    int64_t now_us;
} series;

static void series_line(void *arg, size_t index, const rtb_bidder *bd) {
    (void)index;
    const series *s = arg;
    if (s->gauge) {
        char v[48];
        s->gauge(bd, s->now_us, v, sizeof(v));
        if (v[0]) evbuffer_add_printf(s->b, "%s{bidder=\"%s\"} %s\n", s->name, bd->id, v);
        return;
    }
    unsigned long long v = *(const unsigned long long *)((const char *)&bd->stats + s->offset);
    evbuffer_add_printf(s->b, "%s{bidder=\"%s\"} %llu\n", s->name, bd->id, v);
}

static void bidder_series(struct evbuffer *b, const rtb_server *srv, const char *name,
                          const char *type, const char *help, size_t offset,
                          void (*gauge)(const rtb_bidder *, int64_t, char *, size_t)) {
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    series s = {b, name, offset, gauge, rtb_now_us()};
    rtb_server_each_bidder(srv, series_line, &s);
}

static void skipped_lines(void *arg, size_t index, const rtb_bidder *bd) {
    (void)index;
    for (int r = 0; r < RTB_SKIP_COUNT; r++)
        evbuffer_add_printf(arg, "rtb_bidder_skipped_total{bidder=\"%s\",reason=\"%s\"} %llu\n",
                            bd->id, rtb_skip_reason_str((rtb_skip_reason)r), bd->stats.skipped[r]);
}

static void circuit_state(const rtb_bidder *bd, int64_t now_us, char *buf, size_t len) {
    snprintf(buf, len, "%d", (int)rtb_health_circuit(&bd->health, now_us));
}

static void health_share(const rtb_bidder *bd, int64_t now_us, char *buf, size_t len) {
    snprintf(buf, len, "%.4g", rtb_health_share(&bd->health, now_us));
}

static void failure_rate(const rtb_bidder *bd, int64_t now_us, char *buf, size_t len) {
    snprintf(buf, len, "%.4g", rtb_health_failure_rate(&bd->health, now_us));
}

static void latency_p95(const rtb_bidder *bd, int64_t now_us, char *buf, size_t len) {
    int64_t p95 = rtb_health_p95_us(&bd->health, now_us);
    buf[0] = '\0';
    if (p95 >= 0 && p95 < INT64_MAX && len >= AUCTION_MICROS_STRLEN)
        auction_micros_format(p95, buf); /* µs as seconds */
}

static void spend_micros(const rtb_bidder *bd, int64_t now_us, char *buf, size_t len) {
    (void)now_us;
    snprintf(buf, len, "%llu", rtb_bidder_spend_micros(&bd->stats));
}

/* Budgets (SPEC 16): a line only for an advertiser with a budget. */
static void budget_daily(const rtb_bidder *bd, int64_t now_us, char *buf, size_t len) {
    (void)now_us;
    buf[0] = '\0';
    if (bd->budget.daily_micros > 0) snprintf(buf, len, "%lld", (long long)bd->budget.daily_micros);
}

static void budget_spent(const rtb_bidder *bd, int64_t now_us, char *buf, size_t len) {
    (void)now_us;
    buf[0] = '\0';
    if (bd->budget.daily_micros > 0)
        snprintf(buf, len, "%lld", (long long)rtb_budget_spent_micros(&bd->budget, rtb_wall_us()));
}

static void busy_calls(const rtb_bidder *bd, int64_t now_us, char *buf, size_t len) {
    (void)now_us;
    snprintf(buf, len, "%ld", rtb_bidder_busy(bd));
}

static void open_conns(const rtb_bidder *bd, int64_t now_us, char *buf, size_t len) {
    (void)now_us;
    snprintf(buf, len, "%ld", rtb_bidder_conns(bd));
}

static void write_bidders(struct evbuffer *b, const rtb_server *srv) {
#define BIDDER_COUNTER(field, help)                                                                \
    bidder_series(b, srv, "rtb_bidder_" #field "_total", "counter", help,                          \
                  offsetof(rtb_bidder_stats, field), NULL)
    BIDDER_COUNTER(calls, "HTTP calls made to the bidder.");
    BIDDER_COUNTER(bids, "Well-formed bids received.");
    BIDDER_COUNTER(no_bids, "No-bid answers.");
    BIDDER_COUNTER(timeouts, "Calls still out at the auction deadline.");
    BIDDER_COUNTER(timeouts_excused,
                   "Of those, while the exchange itself was late: not held against the bidder.");
    BIDDER_COUNTER(errors, "Bidder errors (status, body, connection).");
    BIDDER_COUNTER(would_throttle, "health.dry_run: calls health throttling would have skipped.");
    BIDDER_COUNTER(circuit_opens, "Times the bidder's circuit opened.");
    BIDDER_COUNTER(connects, "TCP connections opened to the bidder: new ones, and again after "
                             "one was closed (kept alive otherwise).");
    BIDDER_COUNTER(wins, "Auctions the bidder won.");
    BIDDER_COUNTER(spend_cpm_micros, "Sum of clearing prices, in micros (CPM: exact).");
    bidder_series(b, srv, "rtb_bidder_spend_micros_total", "counter",
                  "Spend: the sum of clearing prices / 1000 (prices are CPM), in micros.", 0,
                  spend_micros);
#undef BIDDER_COUNTER
    evbuffer_add_printf(b, "# HELP rtb_bidder_skipped_total Auctions that did not call an "
                           "eligible bidder, by reason.\n"
                           "# TYPE rtb_bidder_skipped_total counter\n");
    rtb_server_each_bidder(srv, skipped_lines, b);
    bidder_series(b, srv, "rtb_bidder_circuit_state", "gauge",
                  "Circuit: 0 closed, 1 open, 2 half-open.", 0, circuit_state);
    bidder_series(b, srv, "rtb_bidder_health_share", "gauge",
                  "Share of auctions the bidder's health earns it (1: all).", 0, health_share);
    bidder_series(b, srv, "rtb_bidder_failure_rate", "gauge",
                  "Failures over the health window (errors, timeouts that were its fault).", 0,
                  failure_rate);
    bidder_series(b, srv, "rtb_bidder_latency_p95_seconds", "gauge",
                  "Recent p95 answer time (no line until health.min_calls are known).", 0,
                  latency_p95);
    bidder_series(b, srv, "rtb_bidder_inflight", "gauge", "Calls in flight to the bidder.", 0,
                  busy_calls);
    bidder_series(b, srv, "rtb_bidder_budget_daily_micros", "gauge",
                  "Daily budget, micros (only advertisers with a budget).", 0, budget_daily);
    bidder_series(b, srv, "rtb_bidder_budget_spent_micros", "gauge",
                  "Spend of the UTC day as this exchange knows it (its own wins at once, every "
                  "exchange's from Redis each second), micros.",
                  0, budget_spent);
    bidder_series(b, srv, "rtb_bidder_connections", "gauge", "Connections open to the bidder.", 0,
                  open_conns);
}

static void write_admission(struct evbuffer *b, const rtb_server *srv) {
    const rtb_admission *a = rtb_server_admission(srv);
    char lag[AUCTION_MICROS_STRLEN];
    auction_micros_format(a->lag_us, lag);
    evbuffer_add_printf(b,
                        "# HELP rtb_admission_limit Auctions the exchange lets be open at once "
                        "now (adaptive).\n# TYPE rtb_admission_limit gauge\n"
                        "rtb_admission_limit %.0f\n"
                        "# HELP rtb_loop_lag_seconds Lateness of the latest loop lag probe.\n"
                        "# TYPE rtb_loop_lag_seconds gauge\nrtb_loop_lag_seconds %s\n"
                        "# HELP rtb_loop_busy_ratio CPU time over wall time of the loop, "
                        "last period.\n# TYPE rtb_loop_busy_ratio gauge\n"
                        "rtb_loop_busy_ratio %.3f\n"
                        "# HELP rtb_admission_shed_total Requests answered overloaded, by "
                        "reason.\n# TYPE rtb_admission_shed_total counter\n",
                        a->limit, lag, a->busy);
    for (int v = RTB_ADMISSION_SHED_MAX; v < RTB_ADMISSION_VERDICTS; v++)
        evbuffer_add_printf(b, "rtb_admission_shed_total{reason=\"%s\"} %llu\n",
                            rtb_admission_verdict_str((rtb_admission_verdict)v), a->shed[v]);
}

/* Notice counters by kind (win, loss, bill), and billing (SPEC 9, 14, 15). */
static void write_notices(struct evbuffer *b, const rtb_server *srv) {
    const rtb_notice_stats *ns = rtb_server_notice_stats(srv);
    static const struct {
        const char *name, *help;
        size_t offset;
    } by_kind[] = {
        {"rtb_notices_sent_total", "Notices answered with 2xx, by kind.",
         offsetof(rtb_notice_stats, sent)},
        {"rtb_notices_failed_total",
         "Notice attempts that failed (bad URL, status, connection, timeout), by kind.",
         offsetof(rtb_notice_stats, failed)},
    };
    for (size_t i = 0; i < sizeof(by_kind) / sizeof(by_kind[0]); i++) {
        const unsigned long long *v =
            (const unsigned long long *)(const void *)((const char *)ns + by_kind[i].offset);
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s counter\n", by_kind[i].name,
                            by_kind[i].help, by_kind[i].name);
        for (int k = 0; k < RTB_NOTICE_KINDS; k++)
            evbuffer_add_printf(b, "%s{kind=\"%s\"} %llu\n", by_kind[i].name,
                                rtb_notice_kind_str((rtb_notice_kind)k), v[k]);
    }
    counter(b, "rtb_notices_dropped_total",
            "Notices not sent for now: limits.max_pending_notices or the bidder's share of it "
            "out at once.",
            ns->dropped);
    counter(b, "rtb_notices_refused_host_total",
            "Notices refused: the URL's host is not the bidder's endpoint host or one of its "
            "notice_hosts.",
            ns->refused_host);
    counter(b, "rtb_notice_targets_evicted_total",
            "Notice targets retired to make room (the one idle longest).", ns->targets_evicted);
    gauge(b, "rtb_notices_pending", "Notices out now.", (long long)rtb_server_notices_pending(srv));
    const rtb_ledger_stats *ls = rtb_server_ledger_stats(srv);
    counter(b, "rtb_burl_kept_total", "Winners' billing notices kept for their impression.",
            ls->burl_kept);
    counter(b, "rtb_burl_refused_total",
            "Winners' billing notices never kept: not http:// on one of the bidder's hosts.",
            ls->burl_refused);
    counter(b, "rtb_burl_sent_total", "Billing notices answered with 2xx: billed.",
            ls->burl_billed);
    counter(b, "rtb_burl_retried_total",
            "Billing notice attempts that failed and were rescheduled.", ls->burl_retried);
    counter(b, "rtb_burl_failed_total",
            "Billing notices given up: notices.burl_retry_s spent, or refused for good.",
            ls->burl_failed);
    gauge(b, "rtb_burl_pending",
          "Billing notices in notices:burl:pending at the last claim (every exchange's).",
          ls->burl_pending);
    counter(b, "rtb_notices_kept_total", "Notices a drain left in Redis for the next exchange.",
            ls->kept);
    counter(b, "rtb_notices_resumed_total",
            "Notices taken from Redis: kept by a drain, or due for another attempt.", ls->resumed);
    counter(b, "rtb_ledger_redis_errors_total",
            "Billing claims and kept burls Redis did not take (retried, or lost and counted here).",
            ls->redis_errors);
}

static void write_metrics(struct evbuffer *b, const rtb_server *srv) {
    const rtb_stats *s = rtb_server_stats(srv);
    rtb_server_health h;
    rtb_server_health_get(srv, &h);
    counter(b, "rtb_requests_total", "MQTT messages received on the request topic.", s->requests);
    evbuffer_add_printf(b, "# HELP rtb_auctions_total Results published, by status.\n"
                           "# TYPE rtb_auctions_total counter\n");
    for (int st = 0; st < PROTO_STATUS_COUNT; st++)
        evbuffer_add_printf(b, "rtb_auctions_total{status=\"%s\"} %llu\n",
                            proto_status_str((proto_status)st), s->results[st]);
    counter(b, "rtb_request_errors_total",
            "Requests reported on auction:errors (unreadable request_id or duplicate).",
            s->request_errors);
    counter(b, "rtb_duplicate_requests_total", "Requests whose request_id was in flight.",
            s->duplicates);
    const store_stats *ss = rtb_server_store_stats(srv);
    counter(b, "rtb_redis_published_total", "PUBLISHes acknowledged by Redis.", ss->published);
    counter(b, "rtb_redis_publish_failed_total", "PUBLISHes Redis answered with an error.",
            ss->publish_failed);
    counter(b, "rtb_redis_publish_dropped_total",
            "PUBLISHes dropped because the queue was full (limits.max_pending_results).",
            ss->publish_dropped);
    gauge(b, "rtb_redis_publish_queued", "PUBLISHes waiting for Redis or its acknowledgement.",
          (long long)rtb_server_results_queued(srv));
    gauge(b, "rtb_redis_publish_queued_bytes",
          "Bytes of the PUBLISHes queued (bounded by limits.max_pending_result_bytes).",
          (long long)rtb_server_results_queued_bytes(srv));
    counter(b, "rtb_redis_reconnects_total", "Redis reconnect attempts.", ss->reconnects);
    counter(b, "rtb_redis_timeouts_total",
            "Redis connections dropped and reconnected: a command (or the connect) had no answer "
            "within redis.timeout_ms.",
            ss->timeouts);
    gauge(b, "rtb_redis_commands_pending",
          "Redis commands other than PUBLISH sent and not yet answered.",
          (long long)rtb_server_redis_commands_pending(srv));
    counter(b, "rtb_redis_commands_refused_total",
            "Redis commands refused at once because limits.max_pending_redis were waiting "
            "(profile lookups use the default profile; writes count as failed).",
            ss->commands_refused);
    counter(b, "rtb_result_log_appended_total",
            "Results and error reports appended to the stream auction:log (XADD answered).",
            ss->logged);
    counter(b, "rtb_result_log_failed_total", "XADD to auction:log answered with an error.",
            ss->log_failed);
    counter(b, "rtb_redis_writes_failed_total",
            "Profile caches and stats counters not written (Redis down or error).",
            ss->writes_failed);
    const rtb_txn_counts *br = rtb_server_txn_counts(srv);
    evbuffer_add_printf(b, "# HELP rtb_bids_refused_total Bids refused one by one (the others of "
                           "their response stand), by reason (SPEC 15, 17).\n"
                           "# TYPE rtb_bids_refused_total counter\n");
    static const proto_bid_status reasons[] = {PROTO_BID_BAD_PRICE, PROTO_BID_BAD_FIELD,
                                               PROTO_BID_BAD_IMP, PROTO_BID_BAD_DEAL,
                                               PROTO_BID_TOO_MANY};
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        evbuffer_add_printf(b, "rtb_bids_refused_total{reason=\"%s\"} %llu\n",
                            proto_bid_status_str(reasons[i]), br->by_proto[reasons[i]]);
    evbuffer_add_printf(b, "rtb_bids_refused_total{reason=\"currency\"} %llu\n", br->currency);
    evbuffer_add_printf(b, "# HELP rtb_imps_total Impressions closed, by status (SPEC 17: each "
                           "imp of a request is its own auction).\n"
                           "# TYPE rtb_imps_total counter\n");
    for (int st = 0; st <= PROTO_STATUS_TIMEOUT; st++)
        evbuffer_add_printf(b, "rtb_imps_total{status=\"%s\"} %llu\n",
                            proto_status_str((proto_status)st), br->imps[st]);
    counter(b, "rtb_deals_won_total", "Impressions won by a deal bid (SPEC 17).", br->deals_won);
    gauge(b, "rtb_currency_rates", "Rates read from Redis currency:rates (SPEC 17).",
          (long long)rtb_server_currency_rates(srv));
    counter(b, "rtb_spend_unconverted_total",
            "Wins in a publisher's currency with no rate to auction.currency: counted as wins, "
            "their spend not.",
            s->spend_unconverted);
    counter(b, "rtb_ad_stats_skipped_total",
            "Wins whose ad_id breaks the key rule (1-128 characters of [A-Za-z0-9._:-]): "
            "counted on the advertiser only, not in stats:ad:{ad_id}.",
            s->ad_stats_skipped);
    write_notices(b, srv);
    counter(b, "rtb_profile_misses_total", "Profile lookups that found no profile.",
            s->profile_misses);
    counter(b, "rtb_profile_errors_total", "Profile lookups that failed (Redis down or error).",
            s->profile_errors);
    gauge(b, "rtb_inflight_auctions", "Auctions open now.", (long long)h.inflight);
    gauge(b, "rtb_mqtt_connected", "1 when connected to the broker.", h.mqtt_connected);
    gauge(b, "rtb_redis_connected", "1 when the Redis command connection is up.",
          h.redis_connected);

    write_bidders(b, srv);
    write_admission(b, srv);

    evbuffer_add_printf(b, "# HELP rtb_auction_latency_seconds Receipt to close of auctions.\n"
                           "# TYPE rtb_auction_latency_seconds histogram\n");
    const rtb_latency_bounds *bounds = rtb_server_latency_bounds(srv);
    unsigned long long cumulative = 0;
    for (size_t i = 0; i < RTB_LATENCY_BUCKETS - 1; i++) {
        cumulative += s->latency_buckets[i];
        char le[AUCTION_MICROS_STRLEN];
        auction_micros_format(bounds->us[i], le); /* µs as seconds, exactly */
        evbuffer_add_printf(b, "rtb_auction_latency_seconds_bucket{le=\"%s\"} %llu\n", le,
                            cumulative);
    }
    char sum[AUCTION_MICROS_STRLEN];
    auction_micros_format(s->latency_sum_us, sum);
    evbuffer_add_printf(b,
                        "rtb_auction_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
                        "rtb_auction_latency_seconds_sum %s\n"
                        "rtb_auction_latency_seconds_count %llu\n",
                        s->latency_count, sum, s->latency_count);
}

/* The listener's own account (SPEC 15). */
static void write_admin(struct evbuffer *b, const rtb_admin *a) {
    gauge(b, "rtb_admin_connections", "Connections open to the admin listener.",
          (long long)a->nconns);
    counter(b, "rtb_admin_connections_evicted_total",
            "Admin connections closed, idle the longest, to make room at the cap of 256.",
            a->evicted);
    evbuffer_add_printf(b, "# HELP rtb_admin_refused_total Admin requests refused, by reason.\n"
                           "# TYPE rtb_admin_refused_total counter\n");
    for (int r = 0; r < REFUSED_COUNT; r++)
        evbuffer_add_printf(b, "rtb_admin_refused_total{reason=\"%s\"} %llu\n", refusal_names[r],
                            a->refused[r]);
}

static void on_metrics(struct evhttp_request *req, void *arg) {
    rtb_admin *a = arg;
    struct evbuffer *body = evbuffer_new();
    if (!body) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    write_metrics(body, a->srv);
    write_admin(body, a);
    reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
    evbuffer_free(body);
}

static void on_other(struct evhttp_request *req, void *arg) {
    (void)arg;
    evhttp_send_error(req, 404,
                      "Not Found: try /, /api/stats, /api/stream, /api/advertisers, /api/alerts, "
                      "/healthz or /metrics");
}

/* ---- The dashboard (SPEC 11) ------------------------------------------------------ */

/* The page needs nothing from elsewhere; the browser is told so. Its one
 * inline style sheet and script are allowed by their SHA-256 (computed at
 * build time, rtb/meson.build), so no other inline script or style runs. */
#define PAGE_CSP                                                                                   \
    "default-src 'none'; script-src " RTB_DASH_PAGE_SCRIPT_SRC                                     \
    "; style-src " RTB_DASH_PAGE_STYLE_SRC                                                         \
    "; connect-src 'self'; img-src data:; base-uri 'none'; "                                       \
    "form-action 'none'"

static void on_page(struct evhttp_request *req, void *arg) {
    (void)arg;
    struct evbuffer *body = evbuffer_new();
    if (!body || rtb_dash_page(body) != 0) {
        if (body) evbuffer_free(body);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_add_header(h, "Content-Security-Policy", PAGE_CSP);
    reply(req, 200, "OK", "text/html; charset=utf-8", body);
    evbuffer_free(body);
}

static void on_stats(struct evhttp_request *req, void *arg) {
    rtb_admin *a = arg;
    struct evbuffer *body = evbuffer_new();
    if (!body || rtb_dash_stats_json(a->srv, body) != 0) {
        if (body) evbuffer_free(body);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    reply(req, 200, "OK", "application/json", body);
    evbuffer_free(body);
}

/* ---- Streams ------------------------------------------------------------------------ */

/* Empty the slot of a stream we still hold: it no longer follows its connection. */
static void stream_detach(stream *s) {
    s->req = NULL;
    if (s->conn) s->conn->stream = NULL;
    s->conn = NULL;
    s->admin->nstreams--;
}

/* The connection of a stream closed (conn_closed): see the top of the file. */
static void stream_gone(stream *s) {
    struct evhttp_request *req = s->req;
    stream_detach(s);
    if (!evhttp_request_get_connection(req)) evhttp_send_reply_end(req); /* ours: frees it */
}

/* End a stream we still hold (its connection is alive): the last chunk goes
 * out and, the reply carrying "Connection: close", the connection closes. */
static void stream_end(stream *s) {
    struct evhttp_request *req = s->req;
    stream_detach(s);
    evhttp_send_reply_end(req);
}

/* a->event = "data: {json}\n\n". */
static int stream_event(rtb_admin *a) {
    evbuffer_drain(a->event, evbuffer_get_length(a->event));
    if (evbuffer_add(a->event, "data: ", 6) != 0 || rtb_dash_stats_json(a->srv, a->event) != 0 ||
        evbuffer_add(a->event, "\n\n", 2) != 0)
        return -1;
    return 0;
}

static void stream_send(stream *s, const void *data, size_t len) {
    rtb_admin *a = s->admin;
    struct evhttp_connection *evcon = evhttp_request_get_connection(s->req);
    size_t backlog =
        evbuffer_get_length(bufferevent_get_output(evhttp_connection_get_bufferevent(evcon)));
    if (backlog > STREAM_MAX_BACKLOG) {
        /* It reads nothing: ending the reply politely would wait on it forever. */
        rtb_log(PROTO_LOG_WARN, "admin: /api/stream client with %zu bytes unread: dropped",
                backlog);
        stream_detach(s);
        evhttp_connection_free(evcon); /* frees the request too; conn_closed forgets it */
        return;
    }
    if (evbuffer_add(a->chunk, data, len) == 0) evhttp_send_reply_chunk(s->req, a->chunk);
    evbuffer_drain(a->chunk, evbuffer_get_length(a->chunk));
}

static conn *conn_of(rtb_admin *a, struct evhttp_connection *evcon);

static void on_stream(struct evhttp_request *req, void *arg) {
    rtb_admin *a = arg;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Cache-Control", "no-cache");
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        evhttp_add_header(h, "Content-Type", "text/event-stream");
        evhttp_send_reply(req, 200, "OK", NULL);
        return;
    }
    stream *s = NULL;
    for (size_t i = 0; i < RTB_ADMIN_MAX_STREAMS && !s; i++)
        if (!a->streams[i].req) s = &a->streams[i];
    struct evbuffer *body = s ? NULL : evbuffer_new();
    if (body) {
        evbuffer_add_printf(body, "too many /api/stream clients (%d); poll /api/stats\n",
                            RTB_ADMIN_MAX_STREAMS);
        evhttp_add_header(h, "Retry-After", "5");
        reply(req, 503, "Service Unavailable", "text/plain; charset=utf-8", body);
        evbuffer_free(body);
        return;
    }
    if (!s || stream_event(a) != 0) {
        evhttp_send_error(req, s ? 500 : 503, NULL);
        return;
    }
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Connection", "close"); /* the stream is the connection's last reply */
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    s->admin = a;
    s->req = req;
    s->conn = conn_of(a, evcon); /* on_request made sure there is one */
    s->conn->stream = s;
    a->nstreams++;
    evhttp_send_reply_start(req, 200, "OK");
    /* Its client says nothing, so no read timeout may run. (evhttp 2.1 reads
     * nothing while it answers, so none does; this says it for any version.)
     * A client that stops reading still meets the write timeout, and the
     * backlog cap. */
    struct timeval idle = {RTB_ADMIN_IDLE_TIMEOUT_S, 0};
    bufferevent_set_timeouts(evhttp_connection_get_bufferevent(evcon), NULL, &idle);
    char retry[32];
    int n = snprintf(retry, sizeof(retry), "retry: %d\n", STREAM_RETRY_MS);
    stream_send(s, retry, (size_t)n);
    if (s->req) stream_send(s, evbuffer_pullup(a->event, -1), evbuffer_get_length(a->event));
}

void rtb_admin_broadcast(rtb_admin *a) {
    if (!a || a->nstreams == 0 || stream_event(a) != 0) return;
    size_t len = evbuffer_get_length(a->event);
    const unsigned char *data = evbuffer_pullup(a->event, -1);
    a->answering = 1;
    for (size_t i = 0; data && i < RTB_ADMIN_MAX_STREAMS; i++)
        if (a->streams[i].req) stream_send(&a->streams[i], data, len);
    a->answering = 0;
}

/* ---- Alert rules (SPEC 16) ---------------------------------------------------------- */

#define ALERTS_PATH "/api/alerts"

/* Answer `code` with the JSON of `root` (freed here; NULL: out of memory,
 * answered 500), not cached, like every answer of the API. */
static void reply_json(struct evhttp_request *req, int code, const char *reason, cJSON *root) {
    char *json = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    struct evbuffer *body = json ? evbuffer_new() : NULL;
    if (!body || evbuffer_add_printf(body, "%s\n", json) < 0) {
        if (body) evbuffer_free(body);
        cJSON_free(json);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    cJSON_free(json);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
    reply(req, code, reason, "application/json", body);
    evbuffer_free(body);
}

/* {"error": text} with `code`. */
static void api_error(struct evhttp_request *req, int code, const char *reason, const char *text) {
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddStringToObject(o, "error", text)) {
        cJSON_Delete(o);
        o = NULL;
    }
    reply_json(req, code, reason, o);
}

/* `want` and `given` are equal, in time that depends on their lengths only
 * (never on where they differ): a wrong guess tells nothing of the token. */
static int token_equal(const char *want, const char *given) {
    size_t wn = strlen(want), gn = strlen(given);
    volatile unsigned char diff = wn != gn;
    for (size_t i = 0; i < wn; i++)
        diff |= (unsigned char)(want[i] ^ (i < gn ? given[i] : 0));
    return diff == 0;
}

/* SPEC 16: a write needs exactly one "Authorization: Bearer {admin.token}".
 * 1 when it may go on; else answered: 403 with no token configured, 401
 * (with WWW-Authenticate) when missing or wrong. No answer or log line
 * carries what was sent or the token. */
static int authorized(rtb_admin *a, struct evhttp_request *req) {
    const char *token = rtb_server_config(a->srv)->admin.token, *given = NULL;
    if (!token) {
        a->refused[REFUSED_AUTH]++;
        api_error(req, 403, "Forbidden",
                  "writing alert rules is off: set admin.token or RTB_ADMIN_TOKEN");
        return 0;
    }
    int n = 0;
    for (const struct evkeyval *kv = evhttp_request_get_input_headers(req)->tqh_first; kv;
         kv = kv->next.tqe_next)
        if (strcasecmp(kv->key, "Authorization") == 0) {
            given = kv->value;
            n++;
        }
    int ok = n == 1 && strncasecmp(given, "Bearer ", 7) == 0;
    if (ok) {
        given += 7;
        given += strspn(given, " ");
        ok = token_equal(token, given);
    }
    if (!ok) {
        a->refused[REFUSED_AUTH]++;
        rtb_log(PROTO_LOG_DEBUG, "admin: a write to %s refused (401): %s bearer token", ALERTS_PATH,
                n == 0 ? "no" : "a wrong");
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"rtb-exchange admin\"");
        api_error(req, 401, "Unauthorized",
                  n == 0 ? "Authorization: Bearer {admin.token} is required to write"
                         : "wrong bearer token");
    }
    return ok;
}

/* A write held until Redis answers; NULL when memory ran out (answered). */
static api_call *call_new(rtb_admin *a, struct evhttp_request *req) {
    api_call *c = calloc(1, sizeof(*c));
    if (!c) {
        evhttp_send_error(req, 503, "Service Unavailable: out of memory");
        return NULL;
    }
    c->req = req;
    c->conn = conn_of(a, evhttp_request_get_connection(req)); /* answer() made sure */
    return c;
}

/* The write was sent: the call waits on the listener's list. */
static void call_link(rtb_admin *a, api_call *c) {
    c->admin = a;
    c->next = a->calls;
    if (a->calls) a->calls->prev = c;
    a->calls = c;
    if (c->conn) c->conn->waiting++;
}

static void call_unlink(rtb_admin *a, api_call *c) {
    if (c->prev)
        c->prev->next = c->next;
    else
        a->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    if (c->conn) c->conn->waiting--;
}

/* conn_closed: the calls waiting on c lose their connection. A request
 * libevent detached (the client went away) is ours: answered later, which
 * frees it; one still attached is freed with the connection. */
static void calls_conn_gone(rtb_admin *a, conn *c) {
    for (api_call *k = a->calls; k && c->waiting; k = k->next) {
        if (k->conn != c) continue;
        k->conn = NULL;
        c->waiting--;
        if (k->req && evhttp_request_get_connection(k->req)) k->req = NULL;
    }
}

/* rtb_alerts_fn: Redis answered a write. */
static void on_written(void *arg, rtb_alerts_status st, const char *rule_json) {
    api_call *c = arg;
    rtb_admin *a = c->admin;
    if (a) call_unlink(a, c);
    if (a && c->req) {
        a->answering = 1;
        struct evbuffer *body = NULL;
        switch (st) {
        case RTB_ALERTS_OK:
            if (!rule_json) {
                evhttp_send_reply(c->req, 204, "No Content", NULL);
                break;
            }
            body = evbuffer_new();
            if (!body || evbuffer_add_printf(body, "%s\n", rule_json) < 0) {
                evhttp_send_error(c->req, 500, NULL);
                break;
            }
            evhttp_add_header(evhttp_request_get_output_headers(c->req), "Cache-Control",
                              "no-store");
            reply(c->req, 201, "Created", "application/json", body);
            break;
        case RTB_ALERTS_EXISTS:
            api_error(c->req, 409, "Conflict",
                      "a rule of that name exists: DELETE /api/alerts/{name} first");
            break;
        case RTB_ALERTS_FULL:
            api_error(c->req, 409, "Conflict", "at most 100 rules: delete one first");
            break;
        case RTB_ALERTS_NOT_FOUND:
            api_error(c->req, 404, "Not Found", "no rule of that name");
            break;
        case RTB_ALERTS_INVALID:
        case RTB_ALERTS_UNAVAILABLE:
            api_error(c->req, 503, "Service Unavailable",
                      "Redis did not take the change: try again");
            break;
        }
        if (body) evbuffer_free(body);
        a->answering = 0;
    }
    free(c);
}

static void post_alert(rtb_admin *a, struct evhttp_request *req) {
    if (!authorized(a, req)) return;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    api_call *c = body ? call_new(a, req) : NULL;
    if (!c) {
        if (!body) evhttp_send_error(req, 500, NULL);
        return;
    }
    char err[512];
    rtb_alerts_status st = rtb_alerts_add(a->alerts, body, len, on_written, c, err, sizeof(err));
    if (st == RTB_ALERTS_OK) {
        call_link(a, c);
        return;
    }
    free(c);
    if (st == RTB_ALERTS_INVALID)
        api_error(req, 400, "Bad Request", err);
    else
        api_error(req, 503, "Service Unavailable",
                  "Redis is not reachable: the rule was not stored");
}

/* GET /api/alerts: the rules and their states here; POST: add one. */
static void on_alerts(struct evhttp_request *req, void *arg) {
    rtb_admin *a = arg;
    if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
        post_alert(a, req);
        return;
    }
    reply_json(req, 200, "OK", rtb_alerts_rules_json(a->alerts));
}

/* DELETE /api/alerts/{name}: the name percent-decoded ("a%2Fb" is "a/b"). */
static void on_alert_delete(struct evhttp_request *req, void *arg) {
    rtb_admin *a = arg;
    if (!authorized(a, req)) return;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    size_t n = 0;
    char *name = evhttp_uridecode(path + sizeof(ALERTS_PATH), 0, &n);
    if (!name || n == 0 || strlen(name) != n) {
        free(name);
        api_error(req, 404, "Not Found", "no rule of that name");
        return;
    }
    api_call *c = call_new(a, req);
    rtb_alerts_status st = c ? rtb_alerts_remove(a->alerts, name, on_written, c) : RTB_ALERTS_OK;
    free(name);
    if (!c) return;
    if (st == RTB_ALERTS_OK) {
        call_link(a, c);
        return;
    }
    free(c);
    api_error(req, 503, "Service Unavailable", "Redis is not reachable: nothing was deleted");
}

/* ---- The campaign view (SPEC 16): replies that wait on Redis ------------------------ */

/* A request whose reply comes later (campaign.h: after one Redis read). It
 * lives on its connection like a stream: when the connection closes first,
 * the query is cancelled and the request forgotten -- or freed, when
 * libevent left it to us (see the top of the file). At most one per
 * connection (evhttp answers a connection's requests one at a time), so at
 * most RTB_ADMIN_MAX_CONNECTIONS at once. */
struct held {
    rtb_admin *admin;
    struct evhttp_request *req;
    conn *conn;
    rtb_campaign_query *query;
    held *prev, *next; /* a->held */
};

/* Unlink h from its admin and connection, and free it. */
static void held_free(held *h) {
    rtb_admin *a = h->admin;
    if (h->prev)
        h->prev->next = h->next;
    else
        a->held = h->next;
    if (h->next) h->next->prev = h->prev;
    if (h->conn) h->conn->held = NULL;
    free(h);
}

/* The listener closes: the query is cancelled, the request goes with its
 * connection. */
static void held_drop(held *h) {
    rtb_campaign_cancel(h->query);
    held_free(h);
}

/* The connection of h closed (conn_closed). */
static void held_gone(held *h) {
    struct evhttp_request *req = h->req;
    held_drop(h);
    if (!evhttp_request_get_connection(req)) evhttp_request_free(req); /* ours */
}

/* campaign.h's answer: from a Redis reply or a timer, never inside on_request. */
static void on_campaign(void *arg, struct evbuffer *json) {
    held *h = arg;
    rtb_admin *a = h->admin;
    struct evhttp_request *req = h->req;
    held_free(h);
    int was = a->answering;
    a->answering = 1;
    if (json) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
        reply(req, 200, "OK", "application/json", json);
    } else {
        evhttp_send_error(req, 500, NULL);
    }
    a->answering = was;
}

/* GET /api/advertisers and /api/advertisers/{id}. */
static void on_advertisers(struct evhttp_request *req, void *arg) {
    rtb_admin *a = arg;
    static const char list[] = "/api/advertisers";
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    long index = -1;
    if (path && strncmp(path, list, sizeof(list) - 1) == 0 && path[sizeof(list) - 1] == '/') {
        const char *id = path + sizeof(list);
        index = rtb_campaign_find(a->srv, id);
        if (index == RTB_CAMPAIGN_BAD_ID) {
            api_error(req, 400, "Bad Request",
                      "advertiser id: must be 1-128 characters of [A-Za-z0-9._:-]");
            return;
        }
        if (index == RTB_CAMPAIGN_UNKNOWN) {
            char text[192];
            snprintf(text, sizeof(text), "no advertiser %s", id);
            api_error(req, 404, "Not Found", text);
            return;
        }
    }
    conn *c = conn_of(a, evhttp_request_get_connection(req)); /* answer() made sure */
    held *h = c ? calloc(1, sizeof(*h)) : NULL;
    if (h) h->query = rtb_campaign_ask(a->base, a->srv, index, on_campaign, h);
    if (!h || !h->query) {
        free(h);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    h->admin = a;
    h->req = req;
    h->conn = c;
    c->held = h;
    h->next = a->held;
    if (a->held) a->held->prev = h;
    a->held = h;
}

/* ---- Connections (SPEC 15: at most 256, idle ones closed) --------------------------- */

static void conn_unlink(rtb_admin *a, conn *c) {
    if (c->prev)
        c->prev->next = c->next;
    else
        a->oldest = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        a->newest = c->prev;
    c->prev = c->next = NULL;
}

static void conn_append(rtb_admin *a, conn *c) {
    c->prev = a->newest;
    c->next = NULL;
    if (a->newest)
        a->newest->next = c;
    else
        a->oldest = c;
    a->newest = c;
}

/* Drop c (its bufferevent still alive). */
static void conn_forget(conn *c) {
    rtb_admin *a = c->admin;
    evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->watch);
    conn_unlink(a, c);
    a->nconns--;
    free(c);
}

/* evhttp frees the connection: the close callback of every adopted conn. */
static void conn_closed(struct evhttp_connection *evcon, void *arg) {
    conn *c = arg;
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    if (c->stream) stream_gone(c->stream);
    if (c->waiting) calls_conn_gone(c->admin, c);
    if (c->held) held_gone(c->held);
    conn_forget(c);
}

/* Bytes were added to or taken from a connection's output. Added while no
 * route of ours answers, they are a reply evhttp made itself: a refusal
 * (or a "100 Continue"), counted by its status code. */
static void watch_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg) {
    conn *c = arg;
    if (info->n_added == 0 || c->admin->answering) return;
    struct evbuffer_ptr at;
    char line[16];
    size_t added_at = evbuffer_get_length(buf) - info->n_added; /* appended at the end */
    if (evbuffer_ptr_set(buf, &at, added_at, EVBUFFER_PTR_SET) != 0) return;
    ev_ssize_t n = evbuffer_copyout_from(buf, &at, line, sizeof(line) - 1);
    int code = 0;
    if (n <= 0) return;
    line[n] = '\0';
    if (sscanf(line, "HTTP/1.%*d %3d", &code) != 1 || code < 400) return;
    c->admin->refused[code == 413   ? REFUSED_BODY
                      : code == 501 ? REFUSED_METHOD
                                    : REFUSED_HEADERS]++;
}

/* evhttp_set_bevcb: a connection was accepted; its bufferevent is ours to
 * make. It is held (a reference) until adopt_all learns its connection. */
static struct bufferevent *new_bev(struct event_base *base, void *arg) {
    rtb_admin *a = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0); /* as evhttp makes its own */
    conn *c = bev ? calloc(1, sizeof(*c)) : NULL;
    if (!c) return bev; /* untracked: on_request refuses its requests */
    c->watch = evbuffer_add_cb(bufferevent_get_output(bev), watch_output, c);
    if (!c->watch) {
        free(c);
        return bev;
    }
    c->admin = a;
    c->bev = bev;
    c->active_us = rtb_now_us();
    bufferevent_incref(bev);
    conn_append(a, c);
    a->nconns++;
    event_active(a->adopt, EV_TIMEOUT, 0);
    return bev;
}

/* Learn c's evhttp_connection from its bufferevent's callback argument and
 * watch for its close. 0, or -1 when evhttp had already freed it (c is
 * forgotten). Drops new_bev's reference. */
static int conn_adopt(conn *c) {
    bufferevent_event_cb error_cb = NULL;
    void *arg = NULL;
    struct bufferevent *bev = c->bev;
    bufferevent_getcb(bev, NULL, NULL, &error_cb, &arg);
    struct evhttp_connection *evcon = arg;
    if (error_cb == c->admin->evhttp_error_cb && evcon &&
        evhttp_connection_get_bufferevent(evcon) == bev) {
        c->evcon = evcon;
        evhttp_connection_set_closecb(evcon, conn_closed, c);
    }
    int rc = c->evcon ? 0 : -1;
    if (rc != 0) conn_forget(c);
    bufferevent_decref(bev);
    return rc;
}

/* The connection least recently active that may be closed: never a stream,
 * and one with a reply in flight only when there is no other. */
static conn *conn_idlest(rtb_admin *a) {
    conn *busy = NULL;
    for (conn *c = a->oldest; c; c = c->next) {
        if (!c->evcon || c->stream) continue;
        if (!c->waiting && !c->held && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            return c;
        if (!busy) busy = c;
    }
    return busy;
}

/* The loop turn of an accept: adopt the new connections, then make room. */
static void adopt_all(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rtb_admin *a = arg;
    for (conn *c = a->oldest, *next; c; c = next) {
        next = c->next;
        if (!c->evcon) conn_adopt(c);
    }
    while (a->nconns > RTB_ADMIN_MAX_CONNECTIONS) {
        conn *c = conn_idlest(a);
        if (!c) break;
        a->evicted++;
        rtb_log(PROTO_LOG_DEBUG, "admin: %d connections: closing one idle for %lld ms",
                RTB_ADMIN_MAX_CONNECTIONS, (long long)(rtb_now_us() - c->active_us) / 1000);
        evhttp_connection_free(c->evcon); /* conn_closed forgets c */
    }
}

/* The conn of a request's connection (adopted now if it was not yet), or
 * NULL when it has none (new_bev ran out of memory). */
static conn *conn_of(rtb_admin *a, struct evhttp_connection *evcon) {
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    for (conn *c = a->newest; c; c = c->prev)
        if (c->bev == bev) return c->evcon || conn_adopt(c) == 0 ? c : NULL;
    return NULL;
}

/* Learn evhttp's bufferevent error callback from a connection of our own
 * (never connected): conn_adopt trusts a callback argument only next to it.
 * 0, or -1 when evhttp does not pass its connection as the argument. The
 * probe gets a resolver of its own (no nameservers, never asked): like
 * every evhttp connection of the exchange, it must never fall back on a
 * blocking getaddrinfo. */
static int learn_evhttp(rtb_admin *a, struct event_base *base) {
    struct evdns_base *dns = evdns_base_new(base, 0);
    struct evhttp_connection *probe =
        dns ? evhttp_connection_base_new(base, dns, "127.0.0.1", 1) : NULL;
    int rc = -1;
    if (probe) {
        void *arg = NULL;
        bufferevent_getcb(evhttp_connection_get_bufferevent(probe), NULL, NULL, &a->evhttp_error_cb,
                          &arg);
        rc = arg == probe && a->evhttp_error_cb ? 0 : -1;
        evhttp_connection_free(probe);
    }
    if (dns) evdns_base_free(dns, 0);
    return rc;
}

/* ---- The gate: Host, route, method, body -------------------------------------------- */

/* One route: the methods it answers, the body it takes (at most
 * RTB_ADMIN_MAX_BODY_BYTES, evhttp's cap for all: no max_body may be
 * larger). */
typedef struct route {
    const char *path;  /* exact, or with `prefix` the start of the path */
    unsigned methods;  /* EVHTTP_REQ_* */
    const char *allow; /* the same, for the Allow header of a 405 */
    size_t max_body;   /* bytes; 0: no body at all */
    void (*answer)(struct evhttp_request *req, void *admin);
    int prefix; /* 1: matches `path` followed by at least one character */
} route;

static const route routes[] = {
    {"/", GET_HEAD, "GET, HEAD", 0, on_page, 0},
    {"/api/stats", GET_HEAD, "GET, HEAD", 0, on_stats, 0},
    {"/api/stream", GET_HEAD, "GET, HEAD", 0, on_stream, 0},
    {"/healthz", GET_HEAD, "GET, HEAD", 0, on_healthz, 0},
    {"/metrics", GET_HEAD, "GET, HEAD", 0, on_metrics, 0},
    {ALERTS_PATH, GET_HEAD | EVHTTP_REQ_POST, "GET, HEAD, POST", RTB_ADMIN_MAX_BODY_BYTES,
     on_alerts, 0},
    {ALERTS_PATH "/", EVHTTP_REQ_DELETE, "DELETE", 0, on_alert_delete, 1},
    {"/api/advertisers", GET_HEAD, "GET, HEAD", 0, on_advertisers, 0},
    {"/api/advertisers/", GET_HEAD, "GET, HEAD", 0, on_advertisers, 1}, /* + {id} */
};

/* 1 when `value` (a Host header, or the host of an absolute request URI)
 * names this listener: one of a->hosts (any case), bracketed when it is an
 * IPv6 address, with or without a port. */
static int host_allowed(const rtb_admin *a, const char *value) {
    const char *name = value, *end, *rest;
    if (value[0] == '[') {
        name = value + 1;
        end = strchr(name, ']');
        if (!end) return 0;
        rest = end + 1;
    } else {
        end = value + strcspn(value, ":");
        rest = end;
    }
    if (rest[0] != '\0') {
        size_t digits = strspn(rest + 1, "0123456789");
        if (rest[0] != ':' || digits == 0 || digits > 5 || rest[1 + digits] != '\0' ||
            atol(rest + 1) > 65535)
            return 0;
    }
    size_t len = (size_t)(end - name);
    for (size_t i = 0; len > 0 && i < a->nhosts; i++)
        if (strlen(a->hosts[i]) == len && strncasecmp(a->hosts[i], name, len) == 0) return 1;
    return 0;
}

/* A plain-text refusal that closes the connection (what follows a refused
 * request, a body for one, is not read). */
static void refuse(rtb_admin *a, struct evhttp_request *req, refusal why, int code,
                   const char *reason, const char *allow, const char *text) {
    a->refused[why]++;
    rtb_log(PROTO_LOG_DEBUG, "admin: request refused (%s): %d %s", refusal_names[why], code,
            reason);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Connection", "close");
    if (allow) evhttp_add_header(h, "Allow", allow);
    struct evbuffer *body = evbuffer_new();
    if (!body) {
        evhttp_send_error(req, code, reason);
        return;
    }
    evbuffer_add_printf(body, "%s\n", text);
    reply(req, code, reason, "text/plain; charset=utf-8", body);
    evbuffer_free(body);
}

/* The Host check (SPEC 15): 1 when the request may go on, else refused. A
 * page on another site that a rebound DNS name points here carries that
 * name in its Host, so it never reads the listener's answers. */
static int host_ok(rtb_admin *a, struct evhttp_request *req, const struct evhttp_uri *uri) {
    const char *host = NULL;
    int n = 0;
    for (const struct evkeyval *kv = evhttp_request_get_input_headers(req)->tqh_first; kv;
         kv = kv->next.tqe_next)
        if (strcasecmp(kv->key, "Host") == 0) {
            host = kv->value;
            n++;
        }
    if (n != 1) {
        refuse(a, req, REFUSED_HOST, 400, "Bad Request", NULL,
               "Bad Request: exactly one Host header is required");
        return 0;
    }
    const char *uri_host = uri ? evhttp_uri_get_host(uri) : NULL;
    if (!host_allowed(a, host) || (uri_host && !host_allowed(a, uri_host))) {
        refuse(a, req, REFUSED_HOST, 421, "Misdirected Request", NULL,
               "Misdirected Request: the Host does not name this listener (loopback, "
               "admin.listen or admin.allowed_hosts)");
        return 0;
    }
    return 1;
}

/* 1 when the request carries more body than `max_body`: what evhttp read
 * (it reads bodies of POST, PUT and PATCH only), or one it did not read. */
static int body_too_large(struct evhttp_request *req, size_t max_body) {
    size_t len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    if (len > 0) return len > max_body;
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *length = evhttp_find_header(h, "Content-Length");
    return evhttp_find_header(h, "Transfer-Encoding") != NULL ||
           (length && length[strspn(length, "0")] != '\0');
}

static void answer(rtb_admin *a, struct evhttp_request *req) {
    conn *c = conn_of(a, evhttp_request_get_connection(req));
    if (!c) { /* not counted: it is not the client's doing */
        evhttp_send_error(req, 503, "Service Unavailable: out of memory");
        return;
    }
    c->active_us = rtb_now_us();
    conn_unlink(a, c);
    conn_append(a, c);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    if (!host_ok(a, req, uri)) return;
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || !path[0]) path = "/";
    const route *r = NULL;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && !r; i++) {
        size_t n = strlen(routes[i].path);
        if (routes[i].prefix ? strncmp(routes[i].path, path, n) == 0 && path[n] != '\0'
                             : strcmp(routes[i].path, path) == 0)
            r = &routes[i];
    }
    if (!r) {
        on_other(req, a);
        return;
    }
    if (!(evhttp_request_get_command(req) & r->methods)) {
        refuse(a, req, REFUSED_METHOD, 405, "Method Not Allowed", r->allow, "Method Not Allowed");
        return;
    }
    if (body_too_large(req, r->max_body)) {
        refuse(a, req, REFUSED_BODY, 413, "Payload Too Large", NULL,
               r->max_body ? "Payload Too Large" : "Payload Too Large: this route takes no body");
        return;
    }
    r->answer(req, a);
}

/* Every request evhttp parsed comes here (the generic callback). */
static void on_request(struct evhttp_request *req, void *arg) {
    rtb_admin *a = arg;
    a->answering = 1;
    answer(a, req);
    a->answering = 0;
}

/* ---- The listener ------------------------------------------------------------------- */

/* a->hosts: the loopback names, listen's host (no brackets) and
 * admin.allowed_hosts. 0, or -1 when memory ran out. */
static int hosts_init(rtb_admin *a, const char *host, char *const *allowed, size_t nallowed) {
    static const char *const loopback[] = {"localhost", "127.0.0.1", "::1"};
    size_t n = 3 + 1 + nallowed;
    if (!(a->hosts = calloc(n, sizeof(*a->hosts)))) return -1;
    for (size_t i = 0; i < n; i++) {
        char *h = i < 3 ? strdup(loopback[i]) : i == 3 ? strdup(host) : strdup(allowed[i - 4]);
        if (!h) return -1;
        a->hosts[a->nhosts++] = h;
    }
    return 0;
}

rtb_admin *rtb_admin_new(struct event_base *base, const rtb_server *srv, rtb_alerts *alerts,
                         const char *listen, char *err, size_t errlen) {
    /* admin.listen passed its config row (proto/config.c): "host:port" or
     * "[v6]:port", the port 1..65535. What is left is to split it. */
    const char *colon = strrchr(listen, ':');
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    size_t hostlen = colon ? (size_t)(colon - listen) : strlen(listen);
    if (listen[0] == '[' && hostlen > 2 && listen[hostlen - 1] == ']') {
        listen++;
        hostlen -= 2;
    }
    const proto_config *cfg = rtb_server_config(srv);
    char *host = strndup(listen, hostlen);
    rtb_admin *a = host ? calloc(1, sizeof(*a)) : NULL;
    if (!a || !(a->http = evhttp_new(base)) || !(a->event = evbuffer_new()) ||
        !(a->chunk = evbuffer_new()) || !(a->adopt = event_new(base, -1, 0, adopt_all, a)) ||
        hosts_init(a, host, cfg->admin.allowed_hosts, cfg->admin.nallowed_hosts) != 0) {
        rtb_admin_free(a);
        free(host);
        snprintf(err, errlen, "admin: out of memory");
        return NULL;
    }
    if (learn_evhttp(a, base) != 0) {
        rtb_admin_free(a);
        free(host);
        snprintf(err, errlen,
                 "admin: this libevent's evhttp does not show its connections to us; "
                 "the listener cannot bound them");
        return NULL;
    }
    a->srv = srv;
    a->alerts = alerts;
    a->base = base;
    evhttp_set_max_headers_size(a->http, RTB_ADMIN_MAX_HEADER_BYTES);
    evhttp_set_max_body_size(a->http, RTB_ADMIN_MAX_BODY_BYTES);
    evhttp_set_timeout(a->http, RTB_ADMIN_IDLE_TIMEOUT_S);
    evhttp_set_allowed_methods(a->http, ALL_METHODS);
    evhttp_set_bevcb(a->http, new_bev, a);
    evhttp_set_gencb(a->http, on_request, a);
    if (!evhttp_bind_socket_with_handle(a->http, host, (ev_uint16_t)port)) {
        snprintf(err, errlen,
                 "admin.listen: cannot listen on %s:%ld (address in use or "
                 "not local)",
                 host, port);
        rtb_admin_free(a);
        free(host);
        return NULL;
    }
    rtb_log(PROTO_LOG_INFO,
            "admin: listening on http://%s:%ld (dashboard at /; /api/stats, /api/stream, "
            "/api/advertisers, /api/alerts, /healthz, /metrics)",
            host, port);
    free(host);
    return a;
}

void rtb_admin_free(rtb_admin *a) {
    if (!a) return;
    a->answering = 1; /* the last chunks of the streams */
    for (size_t i = 0; i < RTB_ADMIN_MAX_STREAMS; i++)
        if (a->streams[i].req) stream_end(&a->streams[i]);
    /* Writes still waiting for Redis: their answers will find no listener.
     * A request libevent left to us is freed now; the others go with their
     * connections. */
    for (api_call *c = a->calls, *next; c; c = next) {
        next = c->next;
        if (c->req && !evhttp_request_get_connection(c->req)) evhttp_request_free(c->req);
        c->admin = NULL;
        c->req = NULL;
        c->conn = NULL;
    }
    a->calls = NULL;
    while (a->held) /* their requests go with their connections */
        held_drop(a->held);
    /* Connections not adopted yet: evhttp frees them without telling us. */
    for (conn *c = a->oldest, *next; c; c = next) {
        next = c->next;
        if (c->evcon) continue;
        struct bufferevent *bev = c->bev;
        conn_forget(c);
        bufferevent_decref(bev);
    }
    if (a->http) evhttp_free(a->http); /* frees the connections: conn_closed forgets them */
    while (a->oldest) {                /* none, unless evhttp skipped a close callback */
        conn *c = a->oldest;
        conn_unlink(a, c);
        free(c);
    }
    if (a->adopt) event_free(a->adopt);
    if (a->event) evbuffer_free(a->event);
    if (a->chunk) evbuffer_free(a->chunk);
    for (size_t i = 0; i < a->nhosts; i++)
        free(a->hosts[i]);
    free(a->hosts);
    free(a);
}

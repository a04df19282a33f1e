/* admin.c -- the admin HTTP listener: /healthz, /metrics and the live
 * dashboard (SPEC 11): GET / (the page), GET /api/stats (JSON) and
 * GET /api/stream (Server-Sent Events).
 *
 * An evhttp server on the same loop as everything else, bound to
 * admin.listen (loopback by default). It only reads the server's counters;
 * a scrape costs one pass over the advertisers and never touches an
 * auction. /metrics speaks the Prometheus text exposition format 0.0.4.
 *
 * A stream is a chunked reply that never ends: the sampler (dashboard.c)
 * calls rtb_admin_broadcast once a second and each client gets one
 * "data: {json}" event. The one idea for lifetimes: a stream slot holds its
 * request until the connection's close callback runs. When the client goes
 * away, libevent detaches the unfinished request from the connection
 * (evhttp_request_get_connection gives NULL), frees the connection and
 * calls the close callback, which ends (frees) the request; in every other
 * case the slot is emptied and its close callback cleared before the reply
 * is ended or the connection freed, and libevent frees the request with its
 * connection. So no chunk is ever sent to a freed request, and none leaks. */
#include "rtb/admin.h"

#include "rtb/dashboard.h"
#include "rtb/dashboard_page.h"
#include "rtb/log.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <stdlib.h>
#include <string.h>

#define STREAM_MAX_BACKLOG (1u << 20) /* unread bytes before a client is dropped */
#define STREAM_RETRY_MS 2000          /* EventSource reconnect delay we ask for */

/* One GET /api/stream client; req NULL: a free slot. */
typedef struct stream {
    rtb_admin *admin;
    struct evhttp_request *req;
} stream;

struct rtb_admin {
    const rtb_server *srv;
    struct evhttp *http;
    stream streams[RTB_ADMIN_MAX_STREAMS];
    size_t nstreams;
    struct evbuffer *event; /* scratch: one SSE event, copied to each client */
    struct evbuffer *chunk; /* scratch: what evhttp_send_reply_chunk drains */
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
    BIDDER_COUNTER(timeouts, "Calls cancelled at the auction deadline.");
    BIDDER_COUNTER(timeouts_excused,
                   "Of those, while the exchange itself was late: not held against the bidder.");
    BIDDER_COUNTER(errors, "Bidder errors (status, body, connection).");
    BIDDER_COUNTER(would_throttle, "health.dry_run: calls health throttling would have skipped.");
    BIDDER_COUNTER(circuit_opens, "Times the bidder's circuit opened.");
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
    counter(b, "rtb_redis_reconnects_total", "Redis reconnect attempts.", ss->reconnects);
    counter(b, "rtb_result_log_appended_total",
            "Results and error reports appended to the stream auction:log (XADD answered).",
            ss->logged);
    counter(b, "rtb_result_log_failed_total", "XADD to auction:log answered with an error.",
            ss->log_failed);
    counter(b, "rtb_redis_writes_failed_total",
            "Profile caches and stats counters not written (Redis down or error).",
            ss->writes_failed);
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

static void on_metrics(struct evhttp_request *req, void *arg) {
    rtb_admin *a = arg;
    struct evbuffer *body = evbuffer_new();
    if (!body) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    write_metrics(body, a->srv);
    reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
    evbuffer_free(body);
}

static void on_other(struct evhttp_request *req, void *arg) {
    (void)arg;
    evhttp_send_error(req, 404, "Not Found: try /, /api/stats, /api/stream, /healthz or /metrics");
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

/* The connection of a stream closed: see the top of the file. */
static void stream_closed(struct evhttp_connection *evcon, void *arg) {
    (void)evcon;
    stream *s = arg;
    struct evhttp_request *req = s->req;
    if (!req) return;
    s->req = NULL;
    s->admin->nstreams--;
    if (!evhttp_request_get_connection(req)) evhttp_send_reply_end(req); /* ours: frees it */
}

/* End a stream we still hold (its connection is alive): the last chunk goes
 * out and, the reply carrying "Connection: close", the connection closes. */
static void stream_end(stream *s) {
    struct evhttp_request *req = s->req;
    s->req = NULL;
    s->admin->nstreams--;
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), NULL, NULL);
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
        s->req = NULL;
        a->nstreams--;
        evhttp_connection_set_closecb(evcon, NULL, NULL);
        evhttp_connection_free(evcon); /* frees the request too */
        return;
    }
    if (evbuffer_add(a->chunk, data, len) == 0) evhttp_send_reply_chunk(s->req, a->chunk);
    evbuffer_drain(a->chunk, evbuffer_get_length(a->chunk));
}

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
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Connection", "close"); /* the stream is the connection's last reply */
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    s->admin = a;
    s->req = req;
    a->nstreams++;
    evhttp_send_reply_start(req, 200, "OK");
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), stream_closed, s);
    char retry[32];
    int n = snprintf(retry, sizeof(retry), "retry: %d\n", STREAM_RETRY_MS);
    stream_send(s, retry, (size_t)n);
    if (s->req) stream_send(s, evbuffer_pullup(a->event, -1), evbuffer_get_length(a->event));
}

void rtb_admin_broadcast(rtb_admin *a) {
    if (!a || a->nstreams == 0 || stream_event(a) != 0) return;
    size_t len = evbuffer_get_length(a->event);
    const unsigned char *data = evbuffer_pullup(a->event, -1);
    for (size_t i = 0; data && i < RTB_ADMIN_MAX_STREAMS; i++)
        if (a->streams[i].req) stream_send(&a->streams[i], data, len);
}

rtb_admin *rtb_admin_new(struct event_base *base, const rtb_server *srv, const char *listen,
                         char *err, size_t errlen) {
    /* admin.listen passed its config row (proto/config.c): "host:port" or
     * "[v6]:port", the port 1..65535. What is left is to split it. */
    const char *colon = strrchr(listen, ':');
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    size_t hostlen = colon ? (size_t)(colon - listen) : strlen(listen);
    if (listen[0] == '[' && hostlen > 2 && listen[hostlen - 1] == ']') {
        listen++;
        hostlen -= 2;
    }
    char *host = strndup(listen, hostlen);
    rtb_admin *a = host ? calloc(1, sizeof(*a)) : NULL;
    if (!a || !(a->http = evhttp_new(base)) || !(a->event = evbuffer_new()) ||
        !(a->chunk = evbuffer_new())) {
        rtb_admin_free(a);
        free(host);
        snprintf(err, errlen, "admin: out of memory");
        return NULL;
    }
    a->srv = srv;
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_cb(a->http, "/healthz", on_healthz, a);
    evhttp_set_cb(a->http, "/metrics", on_metrics, a);
    evhttp_set_cb(a->http, "/", on_page, a);
    evhttp_set_cb(a->http, "/api/stats", on_stats, a);
    evhttp_set_cb(a->http, "/api/stream", on_stream, a);
    evhttp_set_gencb(a->http, on_other, a);
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
            "/healthz, /metrics)",
            host, port);
    free(host);
    return a;
}

void rtb_admin_free(rtb_admin *a) {
    if (!a) return;
    for (size_t i = 0; i < RTB_ADMIN_MAX_STREAMS; i++)
        if (a->streams[i].req) stream_end(&a->streams[i]);
    if (a->http) evhttp_free(a->http); /* frees the ended requests with their connections */
    if (a->event) evbuffer_free(a->event);
    if (a->chunk) evbuffer_free(a->chunk);
    free(a);
}

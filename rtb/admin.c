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
#include "rtb/dashboard_page.h"
#include "rtb/rtb.h"

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
    rtb_server *srv;
    struct evhttp *http;
    stream streams[RTB_ADMIN_MAX_STREAMS];
    size_t nstreams;
    struct evbuffer *event; /* scratch: one SSE event, copied to each client */
    struct evbuffer *chunk; /* scratch: what evhttp_send_reply_chunk drains */
};

/* Upper bounds of the latency buckets, in µs; RTB_LATENCY_BUCKETS - 1 of
 * them, the last bucket being +Inf. Dense around tmax (100 ms). */
const int64_t rtb_latency_bounds_us[RTB_LATENCY_BUCKETS - 1] = {
    1000,   2000,   5000,   10000,  20000,  50000,  75000,   100000,
    102000, 105000, 110000, 150000, 200000, 500000, 1000000,
};

void rtb_metrics_observe_latency(rtb_stats *stats, int64_t latency_us) {
    size_t i = 0;
    while (i < RTB_LATENCY_BUCKETS - 1 && latency_us > rtb_latency_bounds_us[i])
        i++;
    stats->latency_buckets[i]++;
    stats->latency_count++;
    stats->latency_sum_us += latency_us;
}

static void reply(struct evhttp_request *req, int code, const char *reason,
                  const char *content_type, struct evbuffer *body) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", content_type);
    evhttp_send_reply(req, code, reason, body);
}

static void on_healthz(struct evhttp_request *req, void *arg) {
    rtb_admin *a = arg;
    int mqtt_up = rtb_mqtt_connected(a->srv->mqtt), redis_up = store_connected(a->srv->store);
    struct evbuffer *body = evbuffer_new();
    if (!body) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (mqtt_up && redis_up && !a->srv->draining) {
        evbuffer_add_printf(body, "ok\n");
        reply(req, 200, "OK", "text/plain; charset=utf-8", body);
    } else {
        evbuffer_add_printf(body, "unavailable:%s%s%s\n", mqtt_up ? "" : " mqtt disconnected;",
                            redis_up ? "" : " redis disconnected;",
                            a->srv->draining ? " shutting down;" : "");
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
 * need no escaping inside a label value. */
static void bidder_series(struct evbuffer *b, const rtb_server *srv, const char *name,
                          const char *type, const char *help, size_t offset) {
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (size_t i = 0; i < srv->nbidders; i++) {
        const rtb_bidder *bd = srv->bidders[i];
        unsigned long long v = *(const unsigned long long *)((const char *)&bd->stats + offset);
        evbuffer_add_printf(b, "%s{bidder=\"%s\"} %llu\n", name, bd->id, v);
    }
}

static void write_metrics(struct evbuffer *b, const rtb_server *srv) {
    const rtb_stats *s = &srv->stats;
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
    const store_stats *ss = store_get_stats(srv->store);
    counter(b, "rtb_redis_published_total", "PUBLISHes acknowledged by Redis.", ss->published);
    counter(b, "rtb_redis_publish_failed_total", "PUBLISHes Redis answered with an error.",
            ss->publish_failed);
    counter(b, "rtb_redis_publish_dropped_total",
            "PUBLISHes dropped because the queue was full (limits.max_pending_results).",
            ss->publish_dropped);
    gauge(b, "rtb_redis_publish_queued", "PUBLISHes waiting for Redis or its acknowledgement.",
          (long long)store_queued(srv->store));
    counter(b, "rtb_redis_reconnects_total", "Redis reconnect attempts.", ss->reconnects);
    counter(b, "rtb_redis_writes_failed_total",
            "Profile caches and stats counters not written (Redis down or error).",
            ss->writes_failed);
    const rtb_notice_stats *ns = rtb_notifier_stats(srv->notifier);
    counter(b, "rtb_notices_sent_total", "Win/loss notices answered with 2xx.", ns->sent);
    counter(b, "rtb_notices_failed_total",
            "Win/loss notices that failed (bad URL, status, connection, timeout).", ns->failed);
    counter(b, "rtb_notices_dropped_total",
            "Win/loss notices dropped: limits.max_pending_notices out at once.", ns->dropped);
    gauge(b, "rtb_notices_pending", "Win/loss notices out now.",
          (long long)rtb_notifier_pending(srv->notifier));
    counter(b, "rtb_profile_misses_total", "Profile lookups that found no profile.",
            s->profile_misses);
    counter(b, "rtb_profile_errors_total", "Profile lookups that failed (Redis down or error).",
            s->profile_errors);
    gauge(b, "rtb_inflight_auctions", "Auctions open now.", (long long)srv->ninflight);
    gauge(b, "rtb_mqtt_connected", "1 when connected to the broker.",
          rtb_mqtt_connected(srv->mqtt));
    gauge(b, "rtb_redis_connected", "1 when the Redis command connection is up.",
          store_connected(srv->store));

#define BIDDER_COUNTER(field, help)                                                                \
    bidder_series(b, srv, "rtb_bidder_" #field "_total", "counter", help,                          \
                  offsetof(rtb_bidder_stats, field))
    BIDDER_COUNTER(calls, "HTTP calls made to the bidder.");
    BIDDER_COUNTER(bids, "Well-formed bids received.");
    BIDDER_COUNTER(no_bids, "No-bid answers.");
    BIDDER_COUNTER(timeouts, "Calls cancelled at the auction deadline.");
    BIDDER_COUNTER(errors, "Bidder errors (status, body, connection).");
    BIDDER_COUNTER(throttled, "Auctions that skipped the bidder at max_concurrent.");
    BIDDER_COUNTER(breaker_skips, "Auctions that skipped the bidder: circuit breaker open.");
    BIDDER_COUNTER(breaker_opens, "Times the bidder's circuit breaker opened.");
    BIDDER_COUNTER(wins, "Auctions the bidder won.");
    BIDDER_COUNTER(spend_micros, "Sum of clearing prices / 1000 (prices are CPM), in micros.");
#undef BIDDER_COUNTER
    evbuffer_add_printf(b, "# HELP rtb_bidder_breaker_state Circuit breaker: 0 closed, "
                           "1 open, 2 half-open.\n# TYPE rtb_bidder_breaker_state gauge\n");
    for (size_t i = 0; i < srv->nbidders; i++)
        evbuffer_add_printf(b, "rtb_bidder_breaker_state{bidder=\"%s\"} %d\n", srv->bidders[i]->id,
                            (int)srv->bidders[i]->breaker);
    evbuffer_add_printf(b, "# HELP rtb_bidder_inflight Calls in flight to the bidder.\n"
                           "# TYPE rtb_bidder_inflight gauge\n");
    for (size_t i = 0; i < srv->nbidders; i++)
        evbuffer_add_printf(b, "rtb_bidder_inflight{bidder=\"%s\"} %ld\n", srv->bidders[i]->id,
                            srv->bidders[i]->busy);
    evbuffer_add_printf(b, "# HELP rtb_bidder_connections Connections open to the bidder.\n"
                           "# TYPE rtb_bidder_connections gauge\n");
    for (size_t i = 0; i < srv->nbidders; i++)
        evbuffer_add_printf(b, "rtb_bidder_connections{bidder=\"%s\"} %ld\n", srv->bidders[i]->id,
                            srv->bidders[i]->nconns);

    evbuffer_add_printf(b, "# HELP rtb_auction_latency_seconds Receipt to close of auctions.\n"
                           "# TYPE rtb_auction_latency_seconds histogram\n");
    unsigned long long cumulative = 0;
    for (size_t i = 0; i < RTB_LATENCY_BUCKETS - 1; i++) {
        cumulative += s->latency_buckets[i];
        char le[AUCTION_MICROS_STRLEN];
        auction_micros_format(rtb_latency_bounds_us[i], le); /* µs as seconds, exactly */
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

rtb_admin *rtb_admin_new(rtb_server *srv, const char *listen, char *err, size_t errlen) {
    const char *colon = strrchr(listen, ':');
    char host[256];
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    size_t hostlen = colon ? (size_t)(colon - listen) : 0;
    if (listen[0] == '[' && hostlen > 2 && listen[hostlen - 1] == ']') {
        listen++;
        hostlen -= 2;
    }
    if (!colon || hostlen == 0 || hostlen >= sizeof(host) || port < 1 || port > 65535) {
        snprintf(err, errlen, "admin.listen: expected host:port, got '%s'", listen);
        return NULL;
    }
    memcpy(host, listen, hostlen);
    host[hostlen] = '\0';

    rtb_admin *a = calloc(1, sizeof(*a));
    if (!a || !(a->http = evhttp_new(srv->base)) || !(a->event = evbuffer_new()) ||
        !(a->chunk = evbuffer_new())) {
        rtb_admin_free(a);
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
        return NULL;
    }
    rtb_log(PROTO_LOG_INFO,
            "admin: listening on http://%s:%ld (dashboard at /; /api/stats, /api/stream, "
            "/healthz, /metrics)",
            host, port);
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

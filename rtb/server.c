/* server.c -- the one server context and everything that is not one auction.
 *
 * Start-up: connect Redis, load the advertiser registry, then connect MQTT
 * (so the first requests already see the bidders). Each MQTT message is
 * decoded here: a bad one is answered at once (`invalid` on its result
 * channel when its request_id is readable, else on auction:errors), a
 * duplicate of a request in flight goes to auction:errors, past
 * limits.max_inflight the answer is `overloaded`; the rest start a
 * transaction (txn.c). The in-flight table maps request_id -> transaction.
 *
 * Shutdown (SIGINT/SIGTERM): unsubscribe, let the open auctions close at
 * their own deadline, wait for Redis to acknowledge the results, exit 0; a
 * second signal exits at once. */
#include "rtb/rtb.h"

#include <event2/event.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define START_WAIT_S 3 /* start MQTT even if the registry is not loaded */
#define DRAIN_TICK_US 10000
#define INFLIGHT_BUCKETS_MAX (1u << 21)

/* ---- In-flight table ---------------------------------------------------------- */

static size_t hash_id(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h;
}

static rtb_txn **find_slot(rtb_server *srv, const char *request_id) {
    rtb_txn **slot = &srv->inflight[hash_id(request_id) & (srv->inflight_cap - 1)];
    while (*slot && strcmp(rtb_txn_request_id(*slot), request_id) != 0)
        slot = rtb_txn_next_slot(*slot);
    return slot;
}

void rtb_server_remember(rtb_server *srv, rtb_txn *t) {
    rtb_txn **slot = find_slot(srv, rtb_txn_request_id(t));
    *rtb_txn_next_slot(t) = NULL;
    *slot = t;
    srv->ninflight++;
}

void rtb_server_forget(rtb_server *srv, rtb_txn *t) {
    rtb_txn **slot = find_slot(srv, rtb_txn_request_id(t));
    if (*slot != t) return;
    *slot = *rtb_txn_next_slot(t);
    srv->ninflight--;
}

/* ---- Results -------------------------------------------------------------------- */

void rtb_server_publish_result(rtb_server *srv, const char *request_id, const proto_buf *json) {
    /* Queued until Redis acknowledges it (store.c); a drop is counted there. */
    store_publish_result(srv->store, request_id, json->data, json->len);
}

/* An answer that needs no auction: `invalid` or `overloaded` (SPEC 4). */
static void publish_at_once(rtb_server *srv, const char *request_id, proto_status status,
                            const char *error, int64_t received_us) {
    proto_result r = {
        .request_id = request_id,
        .status = status,
        .error = error,
        .latency_us = rtb_now_us() - received_us,
        .timestamp_us = rtb_wall_us(),
    };
    proto_buf_reset(&srv->out);
    if (proto_result_encode(&r, &srv->out) == 0)
        rtb_server_publish_result(srv, request_id, &srv->out);
    srv->stats.results[status]++;
}

static void report_error(rtb_server *srv, const char *error, const char *topic,
                         const char *request_id) {
    srv->stats.request_errors++;
    rtb_log(PROTO_LOG_DEBUG, "request on %s refused: %s", topic, error);
    proto_buf_reset(&srv->out);
    if (proto_error_encode(error, topic, request_id, &srv->out) == 0)
        store_publish(srv->store, "auction:errors", srv->out.data, srv->out.len);
}

static void on_request(void *arg, const char *topic, const char *payload, size_t len) {
    rtb_server *srv = arg;
    if (rtb_events_topic(topic)) {
        rtb_events_on_message(srv, topic, payload, len);
        return;
    }
    int64_t received_us = rtb_now_us();
    srv->stats.requests++;

    proto_bid_request req;
    char err[256];
    proto_err e = proto_bid_request_decode(payload, len, (size_t)srv->cfg->limits.max_request_bytes,
                                           &req, err, sizeof(err));
    if (e != PROTO_OK) {
        if (req.has_request_id)
            publish_at_once(srv, req.request_id, PROTO_STATUS_INVALID, err, received_us);
        else
            report_error(srv, err, topic, NULL);
        proto_bid_request_free(&req);
        return;
    }
    if (*find_slot(srv, req.request_id)) {
        srv->stats.duplicates++;
        report_error(srv, "request_id: duplicate of a request still in flight", topic,
                     req.request_id);
        proto_bid_request_free(&req);
        return;
    }
    if (srv->ninflight >= (size_t)srv->cfg->limits.max_inflight) {
        publish_at_once(srv, req.request_id, PROTO_STATUS_OVERLOADED, NULL, received_us);
        proto_bid_request_free(&req);
        return;
    }
    char request_id[sizeof(req.request_id)];
    memcpy(request_id, req.request_id, sizeof(request_id));
    if (!rtb_txn_start(srv, &req, received_us)) {
        rtb_log(PROTO_LOG_ERROR, "out of memory for request %s", request_id);
        publish_at_once(srv, request_id, PROTO_STATUS_OVERLOADED, NULL, received_us);
    }
}

/* ---- Advertiser registry (SPEC 6) ----------------------------------------------------- */

static rtb_bidder *find_bidder(rtb_server *srv, const char *id) {
    for (size_t i = 0; i < srv->nbidders; i++)
        if (strcmp(srv->bidders[i]->id, id) == 0) return srv->bidders[i];
    return NULL;
}

/* Make `conf` active: update the advertiser of that id, or add it. */
static void apply_bidder(rtb_server *srv, const proto_bidder_conf *conf) {
    rtb_bidder *b = find_bidder(srv, conf->id);
    if (b) {
        if (rtb_bidder_update(b, conf) != 0) {
            rtb_log(PROTO_LOG_WARN, "advertiser %s: cannot use endpoint %s: skipped", conf->id,
                    conf->endpoint);
            return;
        }
        b->active = 1;
        return;
    }
    if (srv->nbidders == srv->capbidders) {
        size_t cap = srv->capbidders ? srv->capbidders * 2 : 16;
        rtb_bidder **v = realloc(srv->bidders, cap * sizeof(*v));
        rtb_bidder **e = realloc(srv->eligible, cap * sizeof(*e));
        if (v) srv->bidders = v;
        if (e) srv->eligible = e;
        if (!v || !e) return;
        srv->capbidders = cap;
    }
    b = rtb_bidder_new(conf);
    if (!b) {
        rtb_log(PROTO_LOG_WARN, "advertiser %s: cannot use endpoint %s: skipped", conf->id,
                conf->endpoint);
        return;
    }
    srv->bidders[srv->nbidders++] = b;
    rtb_log(PROTO_LOG_INFO, "advertiser %s added: %s", b->id, b->endpoint);
}

/* Redis entries first; config `bidders` add those Redis does not have. */
static void apply_registry(rtb_server *srv, const store_entry *entries, size_t n) {
    for (size_t i = 0; i < srv->nbidders; i++)
        srv->bidders[i]->active = 0;
    for (size_t i = 0; i < n; i++) {
        proto_bidder_conf conf;
        char err[256];
        if (proto_advertiser_decode(entries[i].id, entries[i].value, entries[i].len, &conf, err,
                                    sizeof(err)) != PROTO_OK) {
            rtb_log(PROTO_LOG_WARN, "advertiser:targeting:%s skipped: %s", entries[i].id, err);
            continue;
        }
        apply_bidder(srv, &conf);
        proto_bidder_conf_free(&conf);
    }
    for (size_t i = 0; i < srv->cfg->nbidders; i++) {
        rtb_bidder *b = find_bidder(srv, srv->cfg->bidders[i].id);
        if (!b || !b->active) apply_bidder(srv, &srv->cfg->bidders[i]);
    }
    size_t active = 0;
    for (size_t i = 0; i < srv->nbidders; i++)
        active += (size_t)srv->bidders[i]->active;
    rtb_log(PROTO_LOG_DEBUG, "registry: %zu advertisers active", active);
}

static void start_mqtt(rtb_server *srv) {
    if (srv->started) return;
    srv->started = 1;
    rtb_mqtt_start(srv->mqtt);
}

static void load_registry(rtb_server *srv);

static void on_registry(void *arg, store_status st, const store_entry *entries, size_t n) {
    rtb_server *srv = arg;
    if (st == STORE_OK)
        apply_registry(srv, entries, n);
    else
        rtb_log(PROTO_LOG_WARN, "registry: load from Redis failed; keeping the last copy");
    start_mqtt(srv);
    if (srv->registry_reload) {
        srv->registry_reload = 0;
        load_registry(srv);
    }
}

static void load_registry(rtb_server *srv) {
    if (store_registry_load(srv->store, on_registry, srv) != 0)
        srv->registry_reload = store_connected(srv->store); /* one is running: again after */
}

static void on_advertiser_update(void *arg, const char *payload, size_t len) {
    (void)payload;
    (void)len;
    load_registry(arg);
}

static void on_refresh(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    load_registry(arg);
}

static void on_start_wait(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rtb_server *srv = arg;
    if (srv->started) return;
    rtb_log(PROTO_LOG_WARN,
            "registry not loaded after %d s (Redis unreachable?): starting "
            "with the config's bidders only",
            START_WAIT_S);
    apply_registry(srv, NULL, 0);
    start_mqtt(srv);
}

/* ---- Connection states ---------------------------------------------------------------- */

static void fail_start(rtb_server *srv, const char *why) {
    rtb_log(PROTO_LOG_ERROR, "%s", why);
    srv->exit_code = 1;
    event_base_loopbreak(srv->base);
}

static void on_store_state(void *arg, int connected, int auth_refused, const char *why) {
    rtb_server *srv = arg;
    if (auth_refused && !srv->started) {
        fail_start(srv, why);
        return;
    }
    rtb_log(connected ? PROTO_LOG_INFO : PROTO_LOG_WARN, "redis: %s", why);
    if (connected) load_registry(srv);
}

static void on_mqtt_state(void *arg, int connected, int auth_refused, const char *why) {
    rtb_server *srv = arg;
    if (auth_refused && !srv->mqtt_was_connected) {
        fail_start(srv, why);
        return;
    }
    if (connected) srv->mqtt_was_connected = 1;
    rtb_log(connected ? PROTO_LOG_INFO : PROTO_LOG_WARN, "mqtt: %s", why);
}

/* ---- Shutdown ----------------------------------------------------------------------------- */

static void on_drain_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rtb_server *srv = arg;
    int flushed = srv->ninflight == 0 && store_pending(srv->store) == 0;
    if (flushed || rtb_now_us() > srv->drain_deadline_us) {
        if (!flushed)
            rtb_log(PROTO_LOG_WARN,
                    "drain: giving up with %zu auctions open and %zu Redis "
                    "commands unanswered",
                    srv->ninflight, store_pending(srv->store));
        event_base_loopexit(srv->base, NULL);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    (void)what;
    rtb_server *srv = arg;
    if (srv->draining) {
        rtb_log(PROTO_LOG_WARN, "second signal: exiting now");
        srv->exit_code = 1;
        event_base_loopbreak(srv->base);
        return;
    }
    srv->draining = 1;
    rtb_log(PROTO_LOG_INFO, "signal %d: draining %zu auctions, then exiting", (int)sig,
            srv->ninflight);
    rtb_mqtt_unsubscribe(srv->mqtt);
    srv->drain_deadline_us = rtb_now_us() + srv->cfg->auction.tmax_ms * 1000 + 750000;
    struct timeval tv = {0, DRAIN_TICK_US};
    event_add(srv->drain_timer, &tv);
}

/* ---- Life ---------------------------------------------------------------------------------- */

rtb_server *rtb_server_new(struct event_base *base, proto_config *cfg, char *err, size_t errlen) {
    rtb_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->base = base;
    srv->cfg = cfg;
    if (!(srv->alerts = rtb_alerts_new(srv, err, errlen))) {
        rtb_server_free(srv);
        return NULL;
    }
    size_t cap = 16;
    while (cap < (size_t)cfg->limits.max_inflight * 2 && cap < INFLIGHT_BUCKETS_MAX)
        cap *= 2;
    srv->inflight_cap = cap;
    srv->inflight = calloc(cap, sizeof(*srv->inflight));

    store_options so = {
        .host = cfg->redis.host,
        .port = (int)cfg->redis.port,
        .username = cfg->redis.username,
        .password = cfg->redis.password,
        .on_state = on_store_state,
        .on_update = on_advertiser_update,
        .arg = srv,
        .max_pending_publishes = (size_t)cfg->limits.max_pending_results,
    };
    srv->mqtt = rtb_mqtt_new(base, cfg, on_request, on_mqtt_state, srv, err, errlen);
    if (!srv->mqtt) {
        rtb_server_free(srv);
        return NULL;
    }
    srv->refresh_timer = event_new(base, -1, EV_PERSIST, on_refresh, srv);
    srv->drain_timer = event_new(base, -1, EV_PERSIST, on_drain_tick, srv);
    srv->start_timer = evtimer_new(base, on_start_wait, srv);
    srv->sigint = evsignal_new(base, SIGINT, on_signal, srv);
    srv->sigterm = evsignal_new(base, SIGTERM, on_signal, srv);
    srv->store = store_new(base, &so);
    srv->notifier = rtb_notifier_new(base, (size_t)cfg->limits.max_pending_notices);
    if (!srv->notifier || !srv->inflight || !srv->refresh_timer || !srv->drain_timer ||
        !srv->start_timer || !srv->sigint || !srv->sigterm || !srv->store) {
        snprintf(err, errlen, "out of memory");
        rtb_server_free(srv);
        return NULL;
    }
    if (!(srv->dash = rtb_dash_new(srv, err, errlen)) ||
        (cfg->admin.listen && !(srv->admin = rtb_admin_new(srv, cfg->admin.listen, err, errlen)))) {
        rtb_server_free(srv);
        return NULL;
    }
    struct timeval refresh = {cfg->registry.refresh_s, 0}, wait = {START_WAIT_S, 0};
    event_add(srv->refresh_timer, &refresh);
    event_add(srv->start_timer, &wait);
    event_add(srv->sigint, NULL);
    event_add(srv->sigterm, NULL);
    return srv;
}

int rtb_server_run(rtb_server *srv) {
    rtb_log(PROTO_LOG_INFO, "rtb-exchange %s: redis %s:%ld, mqtt %s:%ld topic %s, tmax %ld ms",
            RTB_VERSION, srv->cfg->redis.host, srv->cfg->redis.port, srv->cfg->mqtt.host,
            srv->cfg->mqtt.port, srv->cfg->mqtt.topic, srv->cfg->auction.tmax_ms);
    event_base_dispatch(srv->base);
    const rtb_stats *s = &srv->stats;
    const store_stats *ss = store_get_stats(srv->store);
    rtb_log(PROTO_LOG_INFO,
            "exit: %llu requests; success %llu, no_bid %llu, timeout %llu, invalid %llu, "
            "overloaded %llu; %llu on auction:errors; %llu results not published "
            "(%llu dropped, %llu refused by Redis, %zu still queued)",
            s->requests, s->results[PROTO_STATUS_SUCCESS], s->results[PROTO_STATUS_NO_BID],
            s->results[PROTO_STATUS_TIMEOUT], s->results[PROTO_STATUS_INVALID],
            s->results[PROTO_STATUS_OVERLOADED], s->request_errors,
            ss->publish_dropped + ss->publish_failed + store_queued(srv->store),
            ss->publish_dropped, ss->publish_failed, store_queued(srv->store));
    return srv->exit_code;
}

static void close_all(rtb_server *srv) {
    for (size_t i = 0; srv->inflight && i < srv->inflight_cap; i++) {
        while (srv->inflight[i])
            rtb_txn_close(srv->inflight[i]);
    }
}

void rtb_server_free(rtb_server *srv) {
    if (!srv) return;
    close_all(srv);           /* results of auctions cut short are still published */
    rtb_dash_free(srv->dash); /* its timer drives alerts and admin streams */
    rtb_alerts_free(srv->alerts);
    rtb_admin_free(srv->admin);
    struct event *evs[] = {srv->refresh_timer, srv->drain_timer, srv->start_timer, srv->sigint,
                           srv->sigterm};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i]) event_free(evs[i]);
    for (size_t i = 0; i < srv->nbidders; i++)
        rtb_bidder_free(srv->bidders[i]);
    free(srv->bidders);
    free(srv->eligible);
    store_free(srv->store); /* runs pending callbacks: frees txns awaiting a profile */
    rtb_notifier_free(srv->notifier);
    rtb_mqtt_free(srv->mqtt);
    free(srv->inflight);
    proto_buf_free(&srv->out);
    proto_buf_free(&srv->body);
    free(srv);
}

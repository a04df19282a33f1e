/* server.c -- the one server context and everything that is not one auction.
 *
 * Start-up: connect Redis, load the advertiser registry, then connect MQTT
 * (so the first requests already see the bidders). Each MQTT message is
 * decoded here: a bad one is answered at once (`invalid` on its result
 * channel when its request_id is readable, else on auction:errors), a
 * duplicate of a request in flight goes to auction:errors, a request that
 * admission sheds (SPEC 13: the adaptive limit, limits.max_inflight, open
 * auctions already late) is answered `overloaded` at once; the rest start a
 * transaction (txn.h).
 *
 * The server is the transactions' transport: it turns their asks into Redis
 * and HTTP calls and the answers back into rtb_txn_on_* calls, keeps the one
 * deadline timer they share, and applies each closed auction's outcome
 * (counters, notices, wins and spend, the profile cache).
 *
 * Shutdown (SIGINT/SIGTERM): unsubscribe, let the open auctions close at
 * their own deadline, wait for Redis to acknowledge the results, exit 0; a
 * second signal exits at once. */
#include "rtb/server.h"

#include "rtb/admin.h"
#include "rtb/alerts.h"
#include "rtb/alloc.h"
#include "rtb/call.h"
#include "rtb/events.h"
#include "rtb/ledger.h"
#include "rtb/log.h"
#include "rtb/minutes.h"
#include "rtb/mqtt.h"
#include "rtb/ptimer.h"
#include "rtb/registry.h"
#include "rtb/sampler.h"
#include "rtb/spend.h"
#include "rtb/txn.h"

#include <event2/event.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define START_WAIT_S 3 /* start MQTT even if the registry is not loaded */
#define RATES_MAX (PROTO_RATES_CURRENCIES_MAX * PROTO_RATES_CURRENCIES_MAX)
#define DRAIN_TICK_US 10000
#define DRAIN_REDIS_US 750000 /* after the notices: Redis answers what the drain wrote */

struct rtb_server {
    struct event_base *base;
    proto_config *cfg; /* borrowed from main */
    rtb_http *http;
    store *store;
    rtb_mqtt *mqtt;
    rtb_registry *registry;
    rtb_txns *txns;
    rtb_ledger *ledger;  /* win, loss and billing notices */
    auction_rates rates; /* currency:rates (SPEC 17) */
    auction_rate *rate_rows;
    int rates_refused; /* the last table read was refused (logged once) */
    rtb_events *events;
    rtb_admin *admin;     /* NULL when admin.listen is null */
    rtb_sampler *sampler; /* one sample a second */
    rtb_minutes *minutes; /* per advertiser, per minute (the campaign view) */
    rtb_alerts *alerts;
    rtb_spend *spend; /* budgets' figures refreshed from Redis (SPEC 16) */
    rtb_stats stats;
    rtb_latency_bounds bounds;
    proto_buf out;                            /* results and errors answered at once */
    proto_buf profile;                        /* the default profile cached on a miss */
    rtb_ptimer *deadline_timer, *probe_timer; /* precise (ptimer.h) */
    struct event *second_timer, *refresh_timer, *drain_timer, *start_timer;
    struct event *sigint, *sigterm;
    int64_t start_us;
    int registry_reload; /* an update arrived during a load */
    int started;         /* MQTT started */
    int draining;
    int64_t drain_deadline_us;   /* auctions and Redis at the latest */
    int64_t notices_deadline_us; /* notices still out are kept in Redis then */
    int notices_kept;
    int mqtt_was_connected;
    int exit_code;
    /* requests shed by reason as of the last second's log line */
    unsigned long long shed_logged[RTB_ADMISSION_VERDICTS];
    int shedding; /* the last second shed some */
};

/* ---- The transactions' transport (txn.h) ---------------------------------------- */

static void on_profile_reply(void *arg, store_status st, const char *value, size_t len) {
    rtb_profile_status ps = st == STORE_OK    ? RTB_PROFILE_HIT
                            : st == STORE_NIL ? RTB_PROFILE_MISS
                                              : RTB_PROFILE_ERROR;
    rtb_txn_on_profile(arg, ps, value, len, rtb_now_us());
}

static int tp_profile_get(void *ctx, rtb_txn *t, const char *user_id) {
    rtb_server *srv = ctx;
    return store_profile_get(srv->store, user_id, on_profile_reply, t);
}

static void on_call_done(void *arg, const rtb_call_result *r) {
    rtb_txn_on_answer(arg, r, rtb_now_us());
}

static int tp_call_start(void *ctx, rtb_txn_call *c, const char *body, size_t len) {
    (void)ctx;
    return rtb_bidder_call(c->bidder, &c->http, body, len, on_call_done, c);
}

/* A call still out when its auction closes (the deadline) is let go, not
 * cancelled: its answer, late by up to another tmax, is read and dropped
 * and the connection stays up, so a burst of late answers (a stall of the
 * loop, a bidder just over its time) is not also a burst of reconnects to
 * that bidder. Past the grace it is cancelled, as before (call.h). */
static void tp_call_cancel(void *ctx, rtb_txn_call *c) {
    rtb_server *srv = ctx;
    rtb_call_detach(&c->http, (int64_t)srv->cfg->auction.tmax_ms * 1000);
}

static int tp_publish(void *ctx, const char *request_id, proto_status status, const char *json,
                      size_t len) {
    rtb_server *srv = ctx;
    /* Queued until Redis acknowledges it (store.c); a drop is counted there. */
    return store_publish_result(srv->store, request_id, proto_status_str(status), json, len);
}

static void tp_wake_at(void *ctx, int64_t at_us) {
    rtb_server *srv = ctx;
    if (rtb_ptimer_at(srv->deadline_timer, at_us) != 0)
        rtb_log(PROTO_LOG_ERROR, "the deadline timer cannot be set: %s", strerror(errno));
}

static int64_t tp_wall_us(void *ctx) {
    (void)ctx;
    return rtb_wall_us();
}

/* After a success (SPEC 9, 10): notices, and the advertiser's and ad's
 * wins and spend. The ad's counters only for an ad_id that may be a key
 * (SPEC 15: the request_id rule); the bidder chose it, up to 2048 bytes. */
/* One imp won: the advertiser's and ad's wins and spend. Spend is kept in
 * auction.currency: a price in the publisher's own currency (SPEC 17) is
 * converted with the current rates; without a rate the win counts and its
 * spend does not (counted, logged). */
static void count_win(rtb_server *srv, const rtb_txn_win *w) {
    int64_t spend = w->clearing_price_micros;
    const char *books = srv->cfg->auction.currency;
    if (strcmp(w->currency, books) != 0 &&
        auction_convert(&srv->rates, w->clearing_price_micros, w->currency, books, &spend) !=
            AUCTION_OK) {
        srv->stats.spend_unconverted++;
        rtb_log(PROTO_LOG_WARN, "a win of %s in %s: no rate to %s, its spend is not counted",
                w->bidder->id, w->currency, books);
        spend = 0;
    }
    /* Prices are CPM: the clearing prices are summed exactly and divided by
     * 1000 only when reported (SPEC 14). */
    rtb_bidder_count_win(w->bidder, spend);
    const char *ad_id = w->ad_id;
    if (ad_id && *ad_id && !proto_key_id_ok(ad_id)) {
        srv->stats.ad_stats_skipped++;
        ad_id = NULL;
    }
    /* The day's spend of an advertiser with a budget (SPEC 16): here at
     * once, in Redis by the same command as the counters. */
    long budget_day = rtb_budget_win(&w->bidder->budget, spend, rtb_wall_us());
    store_count_win(srv->store, w->bidder->id, ad_id, spend, budget_day);
}

static void apply_win(rtb_server *srv, const rtb_txn_outcome *o) {
    rtb_ledger_on_win(srv->ledger, o);
    for (size_t i = 0; i < o->nwins; i++)
        count_win(srv, &o->wins[i]);
}

static void tp_closed(void *ctx, const rtb_txn_outcome *o) {
    rtb_server *srv = ctx;
    srv->stats.results[o->status]++;
    rtb_stats_observe_latency(&srv->stats, &srv->bounds, o->latency_us);
    if (o->profile_missed) { /* cache the default (SPEC 3.2) */
        srv->stats.profile_misses++;
        proto_buf_reset(&srv->profile);
        if (proto_profile_encode(srv->cfg->profiles.default_profile, o->user_id, &srv->profile) ==
            0)
            store_profile_put(srv->store, o->user_id, srv->profile.data, srv->profile.len,
                              srv->cfg->profiles.ttl_s);
    }
    if (o->profile_failed) srv->stats.profile_errors++;
    if (o->winner) apply_win(srv, o);
}

static void on_deadline(void *arg, int64_t due_us, int64_t now_us) {
    (void)due_us;
    rtb_server *srv = arg;
    rtb_txns_expire(srv->txns, now_us);
}

/* ---- Admission: the loop lag probe (SPEC 13, admission.h) ---------------------------- */

/* The loop's CPU time in µs (one thread: the loop is all of it). */
static int64_t loop_cpu_us(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_probe(void *arg, int64_t due_us, int64_t now_us) {
    rtb_server *srv = arg;
    /* The CPU clock is a system call: read it only when a period ends. */
    int64_t cpu_us =
        rtb_admission_wants_cpu(rtb_txns_admission(srv->txns), now_us) ? loop_cpu_us() : 0;
    rtb_txns_probe(srv->txns, due_us, now_us, cpu_us);
}

/* ---- Requests (SPEC 2, 4) ---------------------------------------------------------- */

/* An answer that needs no auction: `invalid` or `overloaded` (SPEC 4). A
 * request shed with its imps read (`req` not NULL, SPEC 17 form) gets the
 * imps array too, every imp `overloaded` (SPEC 17: a request with `imps`
 * always gets it). */
static void publish_at_once(rtb_server *srv, const char *request_id, proto_status status,
                            const char *error, const proto_bid_request *req, int64_t received_us) {
    proto_result r = {
        .request_id = request_id,
        .status = status,
        .error = error,
        .latency_us = rtb_now_us() - received_us,
        .timestamp_us = rtb_wall_us(),
    };
    proto_result_imp imps[PROTO_IMPS_MAX];
    if (req != NULL && req->has_imps && req->nimps <= PROTO_IMPS_MAX) {
        for (size_t i = 0; i < req->nimps; i++)
            imps[i] = (proto_result_imp){.imp_id = req->imps[i].id, .status = status};
        r.imps = imps;
        r.nimps = req->nimps;
    }
    proto_buf_reset(&srv->out);
    if (proto_result_encode(&r, &srv->out) == 0)
        store_publish_result(srv->store, request_id, proto_status_str(status), srv->out.data,
                             srv->out.len);
    srv->stats.results[status]++;
}

/* An error report names the topic the request came on, of which the
 * publisher chose the last level (MQTT allows 64 KiB): at most this many
 * bytes of it are repeated (SPEC 15), cut at a character boundary. */
#define REPORT_TOPIC_MAX_BYTES 256

static void report_error(rtb_server *srv, const char *error, const char *topic,
                         const char *request_id) {
    char cut[REPORT_TOPIC_MAX_BYTES + 1];
    if (strlen(topic) > REPORT_TOPIC_MAX_BYTES) {
        memcpy(cut, topic, REPORT_TOPIC_MAX_BYTES);
        cut[REPORT_TOPIC_MAX_BYTES] = '\0';
        proto_utf8_cut(cut);
        topic = cut;
    }
    srv->stats.request_errors++;
    rtb_log(PROTO_LOG_DEBUG, "request on %s refused: %s", topic, error);
    proto_buf_reset(&srv->out);
    if (proto_error_encode(error, topic, request_id, &srv->out) == 0)
        store_publish_error(srv->store, request_id, topic, srv->out.data, srv->out.len);
}

static void on_message(void *arg, const char *topic, const char *payload, size_t len) {
    rtb_server *srv = arg;
    if (rtb_events_topic(topic)) {
        rtb_events_on_message(srv->events, topic, payload, len);
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
            publish_at_once(srv, req.request_id, PROTO_STATUS_INVALID, err, NULL, received_us);
        else
            report_error(srv, err, topic, NULL);
        proto_bid_request_free(&req);
        return;
    }
    if (rtb_txns_has(srv->txns, req.request_id)) {
        srv->stats.duplicates++;
        report_error(srv, "request_id: duplicate of a request still in flight", topic,
                     req.request_id);
        proto_bid_request_free(&req);
        return;
    }
    if (rtb_txns_admit(srv->txns, received_us) != RTB_ADMISSION_ACCEPT) {
        publish_at_once(srv, req.request_id, PROTO_STATUS_OVERLOADED, NULL, &req, received_us);
        proto_bid_request_free(&req);
        return;
    }
    char request_id[sizeof(req.request_id)];
    memcpy(request_id, req.request_id, sizeof(request_id));
    if (rtb_txns_start(srv->txns, &req, received_us, received_us) != 0) {
        rtb_log(PROTO_LOG_ERROR, "out of memory for request %s", request_id);
        publish_at_once(srv, request_id, PROTO_STATUS_OVERLOADED, NULL, NULL, received_us);
    }
}

/* ---- Advertiser registry (SPEC 6) ----------------------------------------------------- */

static void start_mqtt(rtb_server *srv) {
    if (srv->started) return;
    srv->started = 1;
    rtb_mqtt_start(srv->mqtt);
}

static void load_registry(rtb_server *srv);

/* currency:rates (SPEC 17): all or nothing, so a broken table keeps the
 * last good one (logged once per change of its text). */
static void on_rates(void *arg, store_status st, const char *json, size_t len) {
    rtb_server *srv = arg;
    if (st == STORE_ERR) return; /* Redis down: the last table stays */
    proto_rates decoded = {0};
    char err[256] = "";
    if (st == STORE_OK &&
        proto_currency_rates_decode(json, len, &decoded, err, sizeof(err)) != PROTO_OK) {
        if (!srv->rates_refused)
            rtb_log(PROTO_LOG_WARN, "currency:rates refused, keeping the last table: %s", err);
        srv->rates_refused = 1;
        return;
    }
    srv->rates_refused = 0;
    auction_rates_init(&srv->rates, srv->rate_rows, RATES_MAX);
    for (size_t i = 0; i < decoded.n; i++) {
        const proto_rate *pr = &decoded.rates[i];
        int64_t rate;
        if (auction_rate_parse(pr->text, strlen(pr->text), &rate) != AUCTION_OK ||
            auction_rates_set(&srv->rates, pr->from, pr->to, rate) != AUCTION_OK)
            rtb_log(PROTO_LOG_WARN, "currency:rates: %s.%s = %s cannot be used", pr->from, pr->to,
                    pr->text);
    }
    proto_currency_rates_free(&decoded);
}

static void on_registry(void *arg, store_status st, const store_entry *entries, size_t n) {
    rtb_server *srv = arg;
    /* The rates are reloaded with the registry (SPEC 17). */
    if (st == STORE_OK) store_get(srv->store, "currency:rates", on_rates, srv);
    if (st == STORE_OK) {
        rtb_registry_apply(srv->registry, entries, n);
        rtb_spend_refresh(srv->spend, rtb_wall_us()); /* new budgets: their day's spend */
    } else
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

/* A write to alerts:rules (SPEC 16) was announced: read the rules again. */
static void on_alerts_update(void *arg, const char *payload, size_t len) {
    (void)payload;
    (void)len;
    rtb_server *srv = arg;
    if (srv->alerts) rtb_alerts_refresh(srv->alerts);
}

/* Every registry.refresh_s: the registry, and the alert rules in case an
 * alerts:updates message was missed. */
static void on_refresh(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rtb_server *srv = arg;
    load_registry(srv);
    if (srv->alerts) rtb_alerts_refresh(srv->alerts);
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
    rtb_registry_apply(srv->registry, NULL, 0);
    start_mqtt(srv);
}

/* ---- Once a second: sample, alerts, dashboard streams ---------------------------------- */

/* Shedding in the log, at most a line a second: how many and why, with what
 * admission saw (SPEC 13); one line when it stops. The counters are on
 * /metrics too, but the log is what tells when an episode began and ended. */
static void log_shedding(rtb_server *srv) {
    const rtb_admission *a = rtb_txns_admission(srv->txns);
    unsigned long long d[RTB_ADMISSION_VERDICTS] = {0}, all = 0;
    for (int v = RTB_ADMISSION_ACCEPT + 1; v < RTB_ADMISSION_VERDICTS; v++) {
        d[v] = a->shed[v] - srv->shed_logged[v];
        srv->shed_logged[v] = a->shed[v];
        all += d[v];
    }
    if (all > 0) {
        rtb_log(PROTO_LOG_WARN,
                "overload: %llu requests answered overloaded in the last second (limit %llu, "
                "max_inflight %llu, late %llu); %zu auctions open, admission limit %.0f, loop lag "
                "%.1f ms, loop busy %.0f %%",
                all, d[RTB_ADMISSION_SHED_LIMIT], d[RTB_ADMISSION_SHED_MAX],
                d[RTB_ADMISSION_SHED_LATE], rtb_txns_open(srv->txns), a->limit,
                (double)a->lag_us / 1000.0, a->busy * 100.0);
        srv->shedding = 1;
    } else if (srv->shedding) {
        rtb_log(PROTO_LOG_INFO, "overload: over; no request shed in the last second");
        srv->shedding = 0;
    }
}

static void on_second(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rtb_server *srv = arg;
    int64_t wall_us = rtb_wall_us();
    rtb_sampler_take(srv->sampler, wall_us, &srv->stats, srv->registry);
    rtb_minutes_take(srv->minutes, wall_us, srv->registry);
    rtb_alerts_evaluate(srv->alerts, wall_us);
    rtb_spend_refresh(srv->spend, wall_us);
    log_shedding(srv);
    if (srv->admin) rtb_admin_broadcast(srv->admin);
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
    if (connected && srv->alerts) rtb_alerts_refresh(srv->alerts);
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
    size_t open = rtb_txns_open(srv->txns);
    int64_t now = rtb_now_us();
    /* Notices of the last auctions go out when they close; what is still
     * out at notices.drain_s is kept in Redis for the next exchange
     * (SPEC 14), and the drain then waits for those writes. */
    if (!srv->notices_kept &&
        ((open == 0 && rtb_ledger_out(srv->ledger) == 0) || now > srv->notices_deadline_us)) {
        rtb_ledger_keep(srv->ledger);
        srv->notices_kept = 1;
        if (srv->drain_deadline_us < now + DRAIN_REDIS_US)
            srv->drain_deadline_us = now + DRAIN_REDIS_US;
    }
    int flushed = store_pending(srv->store) == 0;
    if (srv->notices_kept && (flushed || now > srv->drain_deadline_us)) {
        if (!flushed)
            rtb_log(PROTO_LOG_WARN,
                    "drain: giving up with %zu auctions open, %zu notices out and %zu Redis "
                    "commands unanswered",
                    open, rtb_ledger_out(srv->ledger), store_pending(srv->store));
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
            rtb_txns_open(srv->txns));
    rtb_mqtt_unsubscribe(srv->mqtt);
    rtb_ledger_stop(srv->ledger);
    int64_t now = rtb_now_us(), auctions_us = srv->cfg->auction.tmax_ms * 1000;
    srv->notices_deadline_us = now + auctions_us + srv->cfg->notices.drain_s * 1000000;
    srv->drain_deadline_us = now + auctions_us + DRAIN_REDIS_US;
    struct timeval tv = {0, DRAIN_TICK_US};
    event_add(srv->drain_timer, &tv);
}

/* ---- Life ---------------------------------------------------------------------------------- */

static int make_parts(rtb_server *srv, char *err, size_t errlen) {
    struct event_base *base = srv->base;
    proto_config *cfg = srv->cfg;
    static const rtb_txn_transport tp_proto = {
        .profile_get = tp_profile_get,
        .call_start = tp_call_start,
        .call_cancel = tp_call_cancel,
        .publish = tp_publish,
        .closed = tp_closed,
        .wake_at = tp_wake_at,
        .wall_us = tp_wall_us,
    };
    rtb_txn_transport tp = tp_proto;
    tp.ctx = srv;
    store_options so = {
        .host = cfg->redis.host,
        .port = (int)cfg->redis.port,
        .username = cfg->redis.username,
        .password = cfg->redis.password,
        .on_state = on_store_state,
        .on_update = on_advertiser_update,
        .on_alerts = on_alerts_update,
        .arg = srv,
        .max_pending_publishes = (size_t)cfg->limits.max_pending_results,
        .max_pending_publish_bytes = (size_t)cfg->limits.max_pending_result_bytes,
        .max_pending_commands = (size_t)cfg->limits.max_pending_redis,
        .timeout_ms = cfg->redis.timeout_ms,
        .log_maxlen = cfg->log.maxlen,
        .ad_ttl_s = cfg->stats.ad_ttl_s,
    };
    if (!(srv->http = rtb_http_new(base, err, errlen))) return -1;
    if (!(srv->mqtt = rtb_mqtt_new(base, cfg, on_message, on_mqtt_state, srv, err, errlen)))
        return -1;
    srv->registry = rtb_registry_new(cfg, srv->http);
    srv->txns = srv->registry ? rtb_txns_new(cfg, srv->registry, &tp) : NULL;
    srv->rate_rows = calloc(RATES_MAX, sizeof(*srv->rate_rows));
    auction_rates_init(&srv->rates, srv->rate_rows, srv->rate_rows ? RATES_MAX : 0);
    if (srv->txns) rtb_txns_set_rates(srv->txns, &srv->rates);
    srv->store = store_new(base, &so);
    srv->ledger = srv->store && srv->registry
                      ? rtb_ledger_new(base, srv->http, srv->store, srv->registry, cfg)
                      : NULL;
    srv->events = srv->ledger
                      ? rtb_events_new(srv->store, srv->ledger, srv->registry, cfg, &srv->stats)
                      : NULL;
    srv->sampler = rtb_sampler_new(&srv->stats);
    srv->spend = srv->store && srv->registry ? rtb_spend_new(srv->store, srv->registry) : NULL;
    srv->minutes = rtb_minutes_new();
    if (!(srv->deadline_timer = rtb_ptimer_new(base, on_deadline, srv, err, errlen)) ||
        !(srv->probe_timer = rtb_ptimer_new(base, on_probe, srv, err, errlen)))
        return -1;
    /* The deadline first; the lag probe stays at the default priority, so
     * that it measures the delay every other event sees (rtb/ptimer.h). */
    if (rtb_ptimer_urgent(srv->deadline_timer) != 0) {
        snprintf(err, errlen, "cannot give the deadline timer its priority");
        return -1;
    }
    srv->second_timer = event_new(base, -1, EV_PERSIST, on_second, srv);
    srv->refresh_timer = event_new(base, -1, EV_PERSIST, on_refresh, srv);
    srv->drain_timer = event_new(base, -1, EV_PERSIST, on_drain_tick, srv);
    srv->start_timer = evtimer_new(base, on_start_wait, srv);
    srv->sigint = evsignal_new(base, SIGINT, on_signal, srv);
    srv->sigterm = evsignal_new(base, SIGTERM, on_signal, srv);
    if (!srv->txns || !srv->store || !srv->ledger || !srv->events || !srv->sampler || !srv->spend ||
        !srv->minutes || !srv->second_timer || !srv->refresh_timer || !srv->drain_timer ||
        !srv->start_timer || !srv->sigint || !srv->sigterm) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!(srv->alerts = rtb_alerts_new(cfg, srv->store, srv->registry, srv->sampler, &srv->bounds,
                                       err, errlen)))
        return -1;
    if (cfg->admin.listen &&
        !(srv->admin = rtb_admin_new(base, srv, srv->alerts, cfg->admin.listen, err, errlen)))
        return -1;
    return 0;
}

rtb_server *rtb_server_new(struct event_base *base, proto_config *cfg, char *err, size_t errlen) {
    rtb_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->base = base;
    srv->cfg = cfg;
    srv->start_us = rtb_now_us();
    rtb_latency_bounds_init(&srv->bounds, cfg->auction.tmax_ms);
    if (make_parts(srv, err, errlen) != 0) {
        rtb_server_free(srv);
        return NULL;
    }
    struct timeval second = {1, 0}, refresh = {cfg->registry.refresh_s, 0},
                   wait = {START_WAIT_S, 0};
    event_add(srv->second_timer, &second);
    int64_t now_us = rtb_now_us();
    rtb_ptimer_every(srv->probe_timer, now_us + RTB_ADMISSION_PROBE_US, RTB_ADMISSION_PROBE_US);
    event_add(srv->refresh_timer, &refresh);
    event_add(srv->start_timer, &wait);
    event_add(srv->sigint, NULL);
    event_add(srv->sigterm, NULL);
    return srv;
}

int rtb_server_run(rtb_server *srv) {
    rtb_log(PROTO_LOG_INFO,
            "rtb-exchange %s: redis %s:%ld, mqtt %s:%ld topic %s, tmax %ld ms, allocator %s",
            RTB_VERSION, srv->cfg->redis.host, srv->cfg->redis.port, srv->cfg->mqtt.host,
            srv->cfg->mqtt.port, srv->cfg->mqtt.topic, srv->cfg->auction.tmax_ms, rtb_allocator());
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

void rtb_server_free(rtb_server *srv) {
    if (!srv) return;
    /* Results of auctions cut short are still published (queued in store). */
    if (srv->txns) rtb_txns_shutdown(srv->txns, rtb_now_us());
    rtb_admin_free(srv->admin);
    rtb_alerts_free(srv->alerts);
    rtb_ptimer_free(srv->deadline_timer);
    rtb_ptimer_free(srv->probe_timer);
    struct event *evs[] = {srv->second_timer, srv->refresh_timer, srv->drain_timer,
                           srv->start_timer,  srv->sigint,        srv->sigterm};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i]) event_free(evs[i]);
    /* Answers the commands still out with STORE_ERR: transactions waiting
     * for a profile finish, events waiting for Redis are dropped. */
    store_free(srv->store);
    rtb_spend_free(srv->spend); /* after the store: a read still out was answered */
    rtb_txns_free(srv->txns);
    rtb_events_free(srv->events);
    rtb_ledger_free(srv->ledger);
    rtb_registry_free(srv->registry);
    rtb_sampler_free(srv->sampler);
    free(srv->rate_rows);
    rtb_minutes_free(srv->minutes);
    rtb_mqtt_free(srv->mqtt);
    rtb_http_free(srv->http);
    proto_buf_free(&srv->out);
    proto_buf_free(&srv->profile);
    free(srv);
}

/* ---- Reading the server ------------------------------------------------------------------- */

const proto_config *rtb_server_config(const rtb_server *srv) {
    return srv->cfg;
}

const rtb_stats *rtb_server_stats(const rtb_server *srv) {
    return &srv->stats;
}

const rtb_latency_bounds *rtb_server_latency_bounds(const rtb_server *srv) {
    return &srv->bounds;
}

const rtb_sampler *rtb_server_sampler(const rtb_server *srv) {
    return srv->sampler;
}

const rtb_alerts *rtb_server_alerts(const rtb_server *srv) {
    return srv->alerts;
}

const rtb_minutes *rtb_server_minutes(const rtb_server *srv) {
    return srv->minutes;
}

store *rtb_server_store(const rtb_server *srv) {
    return srv->store;
}

void rtb_server_each_bidder(const rtb_server *srv, rtb_server_bidder_fn *fn, void *arg) {
    size_t n = rtb_registry_count(srv->registry);
    for (size_t i = 0; i < n; i++)
        fn(arg, i, rtb_registry_at(srv->registry, i));
}

void rtb_server_health_get(const rtb_server *srv, rtb_server_health *out) {
    out->mqtt_connected = rtb_mqtt_connected(srv->mqtt);
    out->redis_connected = store_connected(srv->store);
    out->draining = srv->draining;
    out->inflight = rtb_txns_open(srv->txns);
    out->uptime_us = rtb_now_us() - srv->start_us;
}

const rtb_txn_counts *rtb_server_txn_counts(const rtb_server *srv) {
    return rtb_txns_counts(srv->txns);
}

size_t rtb_server_currency_rates(const rtb_server *srv) {
    return srv->rates.n;
}

const rtb_admission *rtb_server_admission(const rtb_server *srv) {
    return rtb_txns_admission(srv->txns);
}

const store_stats *rtb_server_store_stats(const rtb_server *srv) {
    return store_get_stats(srv->store);
}

size_t rtb_server_results_queued(const rtb_server *srv) {
    return store_queued(srv->store);
}

size_t rtb_server_results_queued_bytes(const rtb_server *srv) {
    return store_queued_bytes(srv->store);
}

size_t rtb_server_redis_commands_pending(const rtb_server *srv) {
    return store_commands_pending(srv->store);
}

const rtb_notice_stats *rtb_server_notice_stats(const rtb_server *srv) {
    return rtb_ledger_notice_stats(srv->ledger);
}

size_t rtb_server_notices_pending(const rtb_server *srv) {
    return rtb_ledger_out(srv->ledger);
}

const rtb_ledger_stats *rtb_server_ledger_stats(const rtb_server *srv) {
    return rtb_ledger_get_stats(srv->ledger);
}

/* bidder.c -- advertisers: targeting, endpoint, health, counters.
 *
 * Each advertiser calls its endpoint through a pool of keep-alive
 * connections (call.h) capped at `max_concurrent`: a call takes an idle
 * connection or opens one, and gives it back when the call ends or is
 * cancelled. An endpoint change retires the old pool (its calls still out
 * finish there) and the next call opens the new one. */
#include "rtb/bidder.h"

#include "rtb/log.h"

#include <event2/http.h>

#include <stdlib.h>
#include <string.h>

/* Parsed endpoint; strings owned. */
typedef struct endpoint {
    char *host, *path, *host_header;
    int port;
} endpoint;

static void endpoint_free(endpoint *e) {
    free(e->host);
    free(e->path);
    free(e->host_header);
}

static int endpoint_parse(const char *url, endpoint *e) {
    memset(e, 0, sizeof(*e));
    struct evhttp_uri *uri = evhttp_uri_parse(url);
    if (!uri) return -1;
    const char *scheme = evhttp_uri_get_scheme(uri), *host = evhttp_uri_get_host(uri);
    const char *path = evhttp_uri_get_path(uri), *query = evhttp_uri_get_query(uri);
    int port = evhttp_uri_get_port(uri);
    int ok = scheme && strcmp(scheme, "http") == 0 && host && *host;
    if (ok) {
        e->port = port > 0 ? port : 80;
        e->host = strdup(host);
        size_t plen = (path && *path ? strlen(path) : 1) + (query ? strlen(query) + 1 : 0) + 1;
        e->path = malloc(plen);
        e->host_header = malloc(strlen(host) + 8);
        if (e->path) {
            snprintf(e->path, plen, "%s%s%s", path && *path ? path : "/", query ? "?" : "",
                     query ? query : "");
        }
        if (e->host_header) sprintf(e->host_header, "%s:%d", host, e->port);
        ok = e->host && e->path && e->host_header;
        if (!ok) endpoint_free(e);
    }
    evhttp_uri_free(uri);
    return ok ? 0 : -1;
}

static void free_strings(char **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* A copy of `n` strings, after `skip` empty slots left for the caller. */
static char **copy_strings(char *const *src, size_t n, size_t skip) {
    char **v = calloc(n + skip ? n + skip : 1, sizeof(*v));
    if (!v) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!(v[skip + i] = strdup(src[i]))) {
            free_strings(v, skip + i);
            return NULL;
        }
    }
    return v;
}

/* The hosts its notices may name: [0] is the endpoint's host (borrowed),
 * then its notice_hosts (owned). SPEC 15. */
static void free_notice_hosts(rtb_bidder *b) {
    if (b->notice_hosts) b->notice_hosts[0] = NULL;
    free_strings((char **)b->notice_hosts, b->nnotice_hosts);
}

/* The hashes of `n` interests under `key`, for rtb_bidder_matches. */
static uint64_t *hash_strings(char *const *v, size_t n, const rtb_hash_key *key) {
    uint64_t *h = malloc((n ? n : 1) * sizeof(*h));
    for (size_t i = 0; h && i < n; i++)
        h[i] = rtb_hash_str(key, v[i]);
    return h;
}

int rtb_bidder_update(rtb_bidder *b, const proto_bidder_conf *conf) {
    char **interests = copy_strings(conf->interests, conf->ninterests, 0);
    uint64_t *hashes = interests ? hash_strings(interests, conf->ninterests, b->hash_key) : NULL;
    char **notice_hosts = copy_strings(conf->notice_hosts, conf->nnotice_hosts, 1);
    if (!interests || !hashes || !notice_hosts) {
        free_strings(interests, interests ? conf->ninterests : 0);
        free(hashes);
        free_strings(notice_hosts, notice_hosts ? conf->nnotice_hosts + 1 : 0);
        return -1;
    }
    int new_endpoint = !b->endpoint || strcmp(b->endpoint, conf->endpoint) != 0;
    if (new_endpoint) {
        endpoint e;
        char *url = strdup(conf->endpoint);
        if (!url || endpoint_parse(conf->endpoint, &e) != 0) {
            free(url);
            free_strings(interests, conf->ninterests);
            free(hashes);
            free_strings(notice_hosts, conf->nnotice_hosts + 1);
            return -1;
        }
        rtb_pool_free(b->pool); /* retired: its calls still out end there */
        b->pool = NULL;
        free(b->endpoint);
        free(b->host);
        free(b->path);
        free(b->host_header);
        b->endpoint = url;
        b->host = e.host;
        b->path = e.path;
        b->host_header = e.host_header;
        b->port = e.port;
    }
    free_strings(b->interests, b->ninterests);
    free(b->interest_hashes);
    b->interests = interests;
    b->interest_hashes = hashes;
    b->ninterests = conf->ninterests;
    free_notice_hosts(b);
    notice_hosts[0] = b->host;
    b->notice_hosts = (const char **)notice_hosts;
    b->nnotice_hosts = conf->nnotice_hosts + 1;
    b->max_concurrent = conf->max_concurrent > 0 ? conf->max_concurrent : 100;
    b->tmax_ms = conf->tmax_ms;
    rtb_budget_set(&b->budget, conf->budget_daily_micros, conf->budget_pacing);
    if (b->pool) rtb_pool_set_max_conns(b->pool, (size_t)b->max_concurrent);
    return 0;
}

rtb_bidder *rtb_bidder_new(const proto_bidder_conf *conf, rtb_http *http, size_t max_body_bytes,
                           const rtb_health_conf *health, const rtb_hash_key *key) {
    rtb_bidder *b = calloc(1, sizeof(*b));
    if (b) {
        b->http = http;
        b->hash_key = key;
        b->max_body_bytes = max_body_bytes;
        rtb_health_init(&b->health, health);
    }
    if (!b || !(b->id = strdup(conf->id)) || rtb_bidder_update(b, conf) < 0) {
        if (b) free(b->id);
        free(b);
        return NULL;
    }
    b->active = 1;
    return b;
}

void rtb_bidder_free(rtb_bidder *b) {
    if (!b) return;
    rtb_pool_free(b->pool);
    free(b->id);
    free(b->endpoint);
    free(b->host);
    free(b->path);
    free(b->host_header);
    free_strings(b->interests, b->ninterests);
    free(b->interest_hashes);
    free_notice_hosts(b);
    free(b);
}

int rtb_bidder_matches(const rtb_bidder *b, const rtb_hash_set *user) {
    if (b->ninterests == 0) return 1;
    for (size_t i = 0; i < b->ninterests; i++)
        if (rtb_hash_set_has(user, b->interests[i], b->interest_hashes[i])) return 1;
    return 0;
}

long rtb_bidder_busy(const rtb_bidder *b) {
    return b->pool ? (long)rtb_pool_busy(b->pool) : 0;
}

long rtb_bidder_conns(const rtb_bidder *b) {
    return b->pool ? (long)rtb_pool_conns(b->pool) : 0;
}

int rtb_bidder_call(rtb_bidder *b, rtb_call *c, const char *body, size_t len, rtb_call_fn *fn,
                    void *arg) {
    if (!b->http) return -1;
    if (!b->pool) {
        rtb_pool_opts o = {
            .max_conns = (size_t)b->max_concurrent,
            .max_body_bytes = b->max_body_bytes,
            .max_header_bytes = RTB_BIDDER_MAX_HEADER_BYTES,
        };
        if (!(b->pool = rtb_pool_new(b->http, b->host, b->port, &o))) return -1;
    }
    static const rtb_header headers[] = {
        {"Content-Type", "application/json"},
        {"x-openrtb-version", "2.6"},
    };
    size_t connects = rtb_pool_connects(b->pool);
    int rc = rtb_call_start(c, b->pool, RTB_POST, b->path, b->host_header, headers, 2, body, len,
                            fn, arg);
    b->stats.connects += rtb_pool_connects(b->pool) - connects; /* kept across pools */
    return rc;
}

int rtb_bidder_admit(rtb_bidder *b, int64_t now_us, int64_t wall_us, int64_t left_us, int *probe) {
    *probe = 0;
    if (!rtb_budget_admit(&b->budget, wall_us)) {
        b->stats.skipped[RTB_SKIP_BUDGET]++;
        return 0;
    }
    if (rtb_bidder_busy(b) >= b->max_concurrent) {
        b->stats.skipped[RTB_SKIP_MAX_CONCURRENT]++;
        return 0;
    }
    rtb_skip_reason reason = RTB_SKIP_CIRCUIT;
    int would_throttle = 0;
    rtb_health_verdict v = rtb_health_decide(&b->health, now_us, left_us, &reason, &would_throttle);
    b->stats.would_throttle += (unsigned long long)would_throttle;
    if (v == RTB_HEALTH_SKIP) {
        b->stats.skipped[reason]++;
        return 0;
    }
    *probe = v == RTB_HEALTH_PROBE;
    return 1;
}

void rtb_bidder_outcome(rtb_bidder *b, rtb_health_outcome outcome, int probe, int64_t latency_us,
                        int64_t now_us) {
    rtb_circuit was = b->health.circuit;
    if (rtb_health_record(&b->health, outcome, probe, latency_us, now_us)) {
        b->stats.circuit_opens++;
        rtb_log(PROTO_LOG_WARN, "bidder %s: circuit open (%s); next probe in %lld ms", b->id,
                was == RTB_CIRCUIT_CLOSED ? "connection refusals or errors" : "the probe failed",
                (long long)((b->health.circuit_until_us - now_us) / 1000));
    } else if (was != RTB_CIRCUIT_CLOSED && b->health.circuit == RTB_CIRCUIT_CLOSED) {
        rtb_log(PROTO_LOG_INFO, "bidder %s: circuit closed (the probe answered)", b->id);
    }
}

unsigned long long rtb_bidder_spend_micros(const rtb_bidder_stats *s) {
    return s->spend_cpm_micros / 1000;
}

void rtb_bidder_count_win(rtb_bidder *b, int64_t clearing_micros) {
    b->stats.wins++;
    b->stats.spend_cpm_micros += (unsigned long long)clearing_micros;
}

void rtb_bidder_log_error(rtb_bidder *b, const char *request_id, const char *what) {
    int64_t now = rtb_now_us();
    if (now - b->last_error_log_us < 1000000) {
        b->suppressed_logs++;
        return;
    }
    if (b->suppressed_logs)
        rtb_log(PROTO_LOG_WARN, "bidder %s: %s (request %s; %lu similar suppressed)", b->id, what,
                request_id, b->suppressed_logs);
    else
        rtb_log(PROTO_LOG_WARN, "bidder %s: %s (request %s)", b->id, what, request_id);
    b->last_error_log_us = now;
    b->suppressed_logs = 0;
}

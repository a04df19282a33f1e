/* dashboard.c -- the live dashboard's content (SPEC 11): the JSON of
 * GET /api/stats (also each SSE event of GET /api/stream) and the page
 * GET / serves (rtb/dashboard.html, .css and .js, embedded at build time;
 * admin.c routes them).
 *
 * It only reads the server: counters now, and the per-second samples
 * (sampler.h) for rates, the latency of the last second and the history
 * chart. The JSON (cJSON; not on the auction path) is built only for
 * /api/stats requests and once a second when streams are open. */
#include "rtb/dashboard.h"

#include "rtb/alerts.h"
#include "rtb/dashboard_page.h"
#include "rtb/log.h"
#include "rtb/sampler.h"

#include <event2/buffer.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- GET /api/stats ------------------------------------------------------------------ */

static double round_to(double x, double unit) {
    return round(x / unit) * unit;
}

static double ratio(unsigned long long num, unsigned long long den) {
    return den ? round_to((double)num / (double)den, 1e-4) : 0;
}

/* A latency in ms rounded to µs, or null when no auction closed. */
static cJSON *latency_json(const rtb_latency_bounds *b,
                           const unsigned long long buckets[RTB_LATENCY_BUCKETS], double q) {
    double ms = rtb_latency_quantile_ms(b, buckets, q);
    return ms < 0 ? cJSON_CreateNull() : cJSON_CreateNumber(round_to(ms, 1e-3));
}

static void add_statuses(cJSON *o, const unsigned long long results[PROTO_STATUS_COUNT]) {
    for (int st = 0; st < PROTO_STATUS_COUNT; st++)
        cJSON_AddNumberToObject(o, proto_status_str((proto_status)st), (double)results[st]);
}

static unsigned long long sum_results(const unsigned long long results[PROTO_STATUS_COUNT]) {
    unsigned long long n = 0;
    for (int st = 0; st < PROTO_STATUS_COUNT; st++)
        n += results[st];
    return n;
}

static void add_rates(cJSON *root, const rtb_server *srv) {
    const rtb_latency_bounds *b = rtb_server_latency_bounds(srv);
    rtb_sample_counts sec;
    rtb_sampler_window(rtb_server_sampler(srv), 1, &sec);
    cJSON *rates = cJSON_AddObjectToObject(root, "rates");
    add_statuses(cJSON_AddObjectToObject(rates, "auctions_per_s"), sec.results);
    cJSON_AddNumberToObject(rates, "results_per_s", (double)sum_results(sec.results));
    cJSON_AddNumberToObject(rates, "requests_per_s", (double)sec.requests);
    cJSON *lat = cJSON_AddObjectToObject(root, "latency_ms");
    cJSON_AddItemToObject(lat, "p50", latency_json(b, sec.latency_buckets, 0.5));
    cJSON_AddItemToObject(lat, "p99", latency_json(b, sec.latency_buckets, 0.99));
}

static void add_totals(cJSON *root, const rtb_server *srv) {
    const rtb_stats *s = rtb_server_stats(srv);
    rtb_server_health h;
    rtb_server_health_get(srv, &h);
    cJSON *t = cJSON_AddObjectToObject(root, "totals");
    cJSON_AddNumberToObject(t, "requests", (double)s->requests);
    cJSON_AddNumberToObject(t, "auctions", (double)sum_results(s->results));
    add_statuses(t, s->results);
    cJSON_AddNumberToObject(t, "request_errors", (double)s->request_errors);
    cJSON_AddNumberToObject(t, "duplicates", (double)s->duplicates);
    cJSON_AddNumberToObject(t, "inflight", (double)h.inflight);
    cJSON_AddItemToObject(t, "latency_p99_ms",
                          latency_json(rtb_server_latency_bounds(srv), s->latency_buckets, 0.99));
}

typedef struct bidder_list {
    cJSON *list;
    const rtb_sampler *samples;
    int64_t now_us;
} bidder_list;

/* The health figures of one advertiser (SPEC 13), as /api/stats and the
 * campaign view show them. */
int rtb_dash_bidder_health(cJSON *o, const rtb_bidder *b, int64_t now_us) {
    const rtb_bidder_stats *s = &b->stats;
    cJSON_AddNumberToObject(o, "timeouts", (double)s->timeouts);
    cJSON_AddNumberToObject(o, "errors", (double)s->errors);
    cJSON_AddNumberToObject(o, "timeouts_excused", (double)s->timeouts_excused);
    cJSON_AddNumberToObject(o, "throttled", (double)s->skipped[RTB_SKIP_THROTTLED]);
    unsigned long long skipped = 0;
    cJSON *by = cJSON_CreateObject();
    for (int r = 0; r < RTB_SKIP_COUNT; r++) {
        skipped += s->skipped[r];
        cJSON_AddNumberToObject(by, rtb_skip_reason_str((rtb_skip_reason)r), (double)s->skipped[r]);
    }
    cJSON_AddNumberToObject(o, "skipped", (double)skipped);
    if (!cJSON_AddItemToObject(o, "skipped_by", by)) cJSON_Delete(by);
    cJSON_AddStringToObject(o, "breaker", rtb_circuit_str(rtb_health_circuit(&b->health, now_us)));
    cJSON_AddNumberToObject(o, "share", round_to(rtb_health_share(&b->health, now_us), 1e-4));
    int64_t p95 = rtb_health_p95_us(&b->health, now_us);
    cJSON *item = p95 >= 0 && p95 < INT64_MAX
                      ? cJSON_AddNumberToObject(o, "p95_ms", round_to((double)p95 / 1000.0, 1e-3))
                      : cJSON_AddNullToObject(o, "p95_ms");
    return item ? 0 : -1;
}

static void add_bidder(void *arg, size_t index, const rtb_bidder *b) {
    const bidder_list *bl = arg;
    const rtb_bidder_stats *s = &b->stats;
    rtb_sample_bidder_counts sec;
    rtb_sampler_bidder_window(bl->samples, index, 1, &sec);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", b->id);
    cJSON_AddBoolToObject(o, "active", b->active);
    cJSON_AddNumberToObject(o, "calls", (double)s->calls);
    cJSON_AddNumberToObject(o, "bids", (double)s->bids);
    cJSON_AddNumberToObject(o, "wins", (double)s->wins);
    cJSON_AddNumberToObject(o, "win_rate", ratio(s->wins, s->bids));
    rtb_dash_bidder_health(o, b, bl->now_us);
    cJSON_AddNumberToObject(o, "spend", (double)rtb_bidder_spend_micros(s) / 1e6);
    cJSON_AddNumberToObject(o, "calls_per_s", (double)sec.calls);
    cJSON_AddNumberToObject(o, "inflight", (double)rtb_bidder_busy(b));
    cJSON_AddItemToArray(bl->list, o);
}

static void add_bidders(cJSON *root, const rtb_server *srv) {
    bidder_list bl = {cJSON_AddArrayToObject(root, "bidders"), rtb_server_sampler(srv),
                      rtb_now_us()};
    rtb_server_each_bidder(srv, add_bidder, &bl);
}

/* Impressions by outcome and deals won (SPEC 17). */
static void add_imps(cJSON *root, const rtb_server *srv) {
    const rtb_txn_counts *c = rtb_server_txn_counts(srv);
    cJSON *o = cJSON_AddObjectToObject(root, "imps");
    for (int st = 0; st <= PROTO_STATUS_TIMEOUT; st++)
        cJSON_AddNumberToObject(o, proto_status_str((proto_status)st), (double)c->imps[st]);
    cJSON_AddNumberToObject(o, "deals_won", (double)c->deals_won);
}

static void add_events(cJSON *root, const rtb_stats *s) {
    cJSON *e = cJSON_AddObjectToObject(root, "events");
    cJSON_AddNumberToObject(e, "impressions", (double)s->impressions);
    cJSON_AddNumberToObject(e, "clicks", (double)s->clicks);
    cJSON_AddNumberToObject(e, "ctr", ratio(s->clicks, s->impressions));
    cJSON_AddNumberToObject(e, "conversions", (double)s->conversions);
    cJSON_AddNumberToObject(e, "duplicate_clicks", (double)s->duplicate_clicks);
}

/* Billing notices (SPEC 14): billed, retried, given up, pending in Redis. */
static void add_billing(cJSON *root, const rtb_server *srv) {
    const rtb_ledger_stats *l = rtb_server_ledger_stats(srv);
    cJSON *o = cJSON_AddObjectToObject(root, "billing");
    cJSON_AddNumberToObject(o, "kept", (double)l->burl_kept);
    cJSON_AddNumberToObject(o, "billed", (double)l->burl_billed);
    cJSON_AddNumberToObject(o, "retried", (double)l->burl_retried);
    cJSON_AddNumberToObject(o, "failed", (double)l->burl_failed);
    cJSON_AddNumberToObject(o, "pending", (double)l->burl_pending);
}

/* The last RTB_DASH_HISTORY_JSON_S seconds, oldest first. */
static void add_history(cJSON *root, const rtb_server *srv) {
    const rtb_sampler *samples = rtb_server_sampler(srv);
    const rtb_latency_bounds *b = rtb_server_latency_bounds(srv);
    cJSON *h = cJSON_AddArrayToObject(root, "history");
    size_t n = rtb_sampler_count(samples);
    if (n > RTB_DASH_HISTORY_JSON_S) n = RTB_DASH_HISTORY_JSON_S;
    for (size_t k = n; k-- > 0;) {
        rtb_sample_counts c;
        int64_t wall_us;
        rtb_sampler_sample(samples, k, &c, &wall_us);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "t", floor((double)wall_us / 1e6)); /* second's end */
        cJSON_AddNumberToObject(o, "auctions", (double)sum_results(c.results));
        cJSON_AddNumberToObject(o, "success", (double)c.results[PROTO_STATUS_SUCCESS]);
        cJSON_AddNumberToObject(o, "timeout", (double)c.results[PROTO_STATUS_TIMEOUT]);
        cJSON_AddItemToObject(o, "p99", latency_json(b, c.latency_buckets, 0.99));
        cJSON_AddItemToArray(h, o);
    }
}

int rtb_dash_stats_json(const rtb_server *srv, struct evbuffer *out) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return -1;
    rtb_server_health h;
    rtb_server_health_get(srv, &h);
    cJSON_AddNumberToObject(root, "time", round_to((double)rtb_wall_us() / 1e6, 1e-3));
    cJSON_AddNumberToObject(root, "uptime_s", floor((double)h.uptime_us / 1e6));
    add_rates(root, srv);
    add_totals(root, srv);
    add_bidders(root, srv);
    add_events(root, rtb_server_stats(srv));
    add_billing(root, srv);
    add_imps(root, srv);
    add_history(root, srv);
    const rtb_alerts *al = rtb_server_alerts(srv);
    cJSON *alerts = cJSON_AddArrayToObject(root, "alerts");
    int rc = alerts ? rtb_alerts_json(al, alerts) : 0;
    cJSON_AddNumberToObject(root, "alert_rules", (double)rtb_alerts_rules(al));
    /* Out of memory, an Add* above may have left a key out; the JSON stays valid. */
    char *text = rc == 0 ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return -1;
    rc = evbuffer_add(out, text, strlen(text));
    cJSON_free(text);
    return rc;
}

/* ---- GET / --------------------------------------------------------------------------- */

/* The page is rtb/dashboard.{html,css,js}, put together and embedded at
 * build time by tools/embed.py (rtb/meson.build). Static bytes: referenced,
 * not copied. */
int rtb_dash_page(struct evbuffer *out) {
    return evbuffer_add_reference(out, rtb_dash_page_html, rtb_dash_page_html_len, NULL, NULL);
}

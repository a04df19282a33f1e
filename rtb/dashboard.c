/* dashboard.c -- the live dashboard (SPEC 11): a per-second sampler of the
 * server's counters, the JSON of GET /api/stats (also each SSE event of
 * GET /api/stream), and the page GET / serves (rtb/dashboard.html, .css and
 * .js, embedded at build time; admin.c routes them).
 *
 * The one idea: every counter in rtb_stats and rtb_bidder_stats only grows,
 * so once a second the sampler stores how much each grew since the previous
 * tick, in a ring of the last RTB_DASH_HISTORY_S seconds. A rate is one
 * sample; a window (alerts.c) is the sum of its last samples; a latency
 * percentile comes from the growth of the latency histogram's buckets,
 * interpolated linearly inside the bucket that holds the rank, so it is an
 * estimate as fine as the buckets: 1-5 ms wide below 10 ms, 25-30 ms from
 * 20 to 100 ms, 2-5 ms just above 100 ms (tmax), wider beyond.
 *
 * It only reads counters: a tick costs one pass over the advertisers, never
 * touches an auction, and the JSON (cJSON; not on the auction path) is built
 * only for /api/stats requests and once a second when streams are open. */
#include "rtb/dashboard_page.h"
#include "rtb/rtb.h"

#include <event2/buffer.h>
#include <event2/event.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One advertiser in one second. A second's growth fits 32 bits with room. */
typedef struct bidder_sec {
    uint32_t calls, bids, wins, timeouts, errors, throttled;
    uint8_t breaker; /* rtb_breaker when the second ended */
} bidder_sec;

/* One second of the exchange. */
typedef struct sample {
    int64_t wall_us; /* when the second ended (Unix µs) */
    uint32_t requests;
    uint32_t results[PROTO_STATUS_COUNT];
    uint32_t latency[RTB_LATENCY_BUCKETS];
    uint32_t impressions, clicks, duplicate_clicks, conversions;
    bidder_sec *bidders; /* nbidders long: srv->bidders[0..nbidders) then */
    size_t nbidders, capbidders;
} sample;

struct rtb_dash {
    rtb_server *srv;
    struct event *timer;
    int64_t start_us; /* monotonic, for uptime */
    sample ring[RTB_DASH_HISTORY_S];
    size_t next;                    /* slot the next sample goes to */
    size_t count;                   /* samples held */
    rtb_stats last;                 /* counters at the previous tick */
    rtb_bidder_stats *last_bidders; /* per advertiser, nlast long */
    size_t nlast;
};

static uint32_t grew(unsigned long long now, unsigned long long was) {
    unsigned long long d = now >= was ? now - was : 0;
    return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

/* The k-th latest sample (0: the latest); k < d->count. */
static const sample *latest(const rtb_dash *d, size_t k) {
    return &d->ring[(d->next + RTB_DASH_HISTORY_S - 1 - k) % RTB_DASH_HISTORY_S];
}

/* Room for `n` advertisers in the previous-tick copy and in sample `s`. */
static int reserve_bidders(rtb_dash *d, sample *s, size_t n) {
    if (n > d->nlast) {
        rtb_bidder_stats *v = realloc(d->last_bidders, n * sizeof(*v));
        if (!v) return -1;
        memset(v + d->nlast, 0, (n - d->nlast) * sizeof(*v)); /* new: counted from 0 */
        d->last_bidders = v;
        d->nlast = n;
    }
    if (n > s->capbidders) {
        bidder_sec *v = realloc(s->bidders, n * sizeof(*v));
        if (!v) return -1;
        s->bidders = v;
        s->capbidders = n;
    }
    return 0;
}

static void take_sample(rtb_dash *d, int64_t wall_us) {
    const rtb_server *srv = d->srv;
    const rtb_stats *now = &srv->stats, *was = &d->last;
    sample *s = &d->ring[d->next];
    s->wall_us = wall_us;
    s->requests = grew(now->requests, was->requests);
    for (int st = 0; st < PROTO_STATUS_COUNT; st++)
        s->results[st] = grew(now->results[st], was->results[st]);
    for (int i = 0; i < RTB_LATENCY_BUCKETS; i++)
        s->latency[i] = grew(now->latency_buckets[i], was->latency_buckets[i]);
    s->impressions = grew(now->impressions, was->impressions);
    s->clicks = grew(now->clicks, was->clicks);
    s->duplicate_clicks = grew(now->duplicate_clicks, was->duplicate_clicks);
    s->conversions = grew(now->conversions, was->conversions);
    d->last = *now;

    /* Out of memory: this second keeps the advertisers it had room for. */
    size_t n = srv->nbidders;
    if (reserve_bidders(d, s, n) != 0) n = s->capbidders < d->nlast ? s->capbidders : d->nlast;
    for (size_t i = 0; i < n; i++) {
        const rtb_bidder *b = srv->bidders[i];
        const rtb_bidder_stats *bs = &b->stats, *lb = &d->last_bidders[i];
        s->bidders[i] = (bidder_sec){
            .calls = grew(bs->calls, lb->calls),
            .bids = grew(bs->bids, lb->bids),
            .wins = grew(bs->wins, lb->wins),
            .timeouts = grew(bs->timeouts, lb->timeouts),
            .errors = grew(bs->errors, lb->errors),
            .throttled = grew(bs->throttled, lb->throttled),
            .breaker = (uint8_t)b->breaker,
        };
        d->last_bidders[i] = *bs;
    }
    s->nbidders = n;
    d->next = (d->next + 1) % RTB_DASH_HISTORY_S;
    if (d->count < RTB_DASH_HISTORY_S) d->count++;
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rtb_dash *d = arg;
    int64_t wall_us = rtb_wall_us();
    take_sample(d, wall_us);
    if (d->srv->alerts) rtb_alerts_evaluate(d->srv->alerts, wall_us);
    if (d->srv->admin) rtb_admin_broadcast(d->srv->admin);
}

rtb_dash *rtb_dash_new(rtb_server *srv, char *err, size_t errlen) {
    rtb_dash *d = calloc(1, sizeof(*d));
    if (!d || !(d->timer = event_new(srv->base, -1, EV_PERSIST, on_tick, d))) {
        free(d);
        snprintf(err, errlen, "dashboard: out of memory");
        return NULL;
    }
    d->srv = srv;
    d->start_us = rtb_now_us();
    d->last = srv->stats;
    struct timeval second = {1, 0};
    event_add(d->timer, &second);
    return d;
}

void rtb_dash_free(rtb_dash *d) {
    if (!d) return;
    event_free(d->timer);
    for (size_t i = 0; i < RTB_DASH_HISTORY_S; i++)
        free(d->ring[i].bidders);
    free(d->last_bidders);
    free(d);
}

/* ---- Windows ---------------------------------------------------------------------- */

int rtb_dash_window(const rtb_dash *d, int seconds, rtb_dash_counts *out) {
    memset(out, 0, sizeof(*out));
    size_t n = seconds > 0 ? (size_t)seconds : 0;
    if (n > d->count) n = d->count;
    for (size_t k = 0; k < n; k++) {
        const sample *s = latest(d, k);
        out->requests += s->requests;
        for (int st = 0; st < PROTO_STATUS_COUNT; st++)
            out->results[st] += s->results[st];
        for (int i = 0; i < RTB_LATENCY_BUCKETS; i++)
            out->latency_buckets[i] += s->latency[i];
        out->impressions += s->impressions;
        out->clicks += s->clicks;
        out->duplicate_clicks += s->duplicate_clicks;
        out->conversions += s->conversions;
    }
    return (int)n;
}

int rtb_dash_bidder_window(const rtb_dash *d, size_t bidder, int seconds,
                           rtb_dash_bidder_counts *out) {
    memset(out, 0, sizeof(*out));
    size_t n = seconds > 0 ? (size_t)seconds : 0;
    if (n > d->count) n = d->count;
    for (size_t k = 0; k < n; k++) {
        const sample *s = latest(d, k);
        if (bidder >= s->nbidders) continue;
        const bidder_sec *b = &s->bidders[bidder];
        out->calls += b->calls;
        out->bids += b->bids;
        out->wins += b->wins;
        out->timeouts += b->timeouts;
        out->errors += b->errors;
        out->throttled += b->throttled;
    }
    return (int)n;
}

double rtb_latency_quantile_ms(const unsigned long long buckets[RTB_LATENCY_BUCKETS], double q) {
    unsigned long long total = 0;
    for (int i = 0; i < RTB_LATENCY_BUCKETS; i++)
        total += buckets[i];
    if (total == 0) return -1;
    double rank = q * (double)total, below = 0;
    for (int i = 0; i < RTB_LATENCY_BUCKETS; i++) {
        if (buckets[i] == 0 || below + (double)buckets[i] < rank) {
            below += (double)buckets[i];
            continue;
        }
        double lo = i > 0 ? (double)rtb_latency_bounds_us[i - 1] : 0;
        if (i == RTB_LATENCY_BUCKETS - 1) return lo / 1000.0; /* +Inf: at least lo */
        double hi = (double)rtb_latency_bounds_us[i];
        return (lo + (hi - lo) * (rank - below) / (double)buckets[i]) / 1000.0;
    }
    return (double)rtb_latency_bounds_us[RTB_LATENCY_BUCKETS - 2] / 1000.0; /* rounding */
}

/* ---- GET /api/stats ------------------------------------------------------------------ */

static double round_to(double x, double unit) {
    return round(x / unit) * unit;
}

static double ratio(unsigned long long num, unsigned long long den) {
    return den ? round_to((double)num / (double)den, 1e-4) : 0;
}

static const char *breaker_str(rtb_breaker b) {
    switch (b) {
    case RTB_BREAKER_OPEN:
        return "open";
    case RTB_BREAKER_HALF_OPEN:
        return "half_open";
    case RTB_BREAKER_CLOSED:
        break;
    }
    return "closed";
}

/* A latency in ms rounded to µs, or null when no auction closed. */
static cJSON *latency_json(const unsigned long long buckets[RTB_LATENCY_BUCKETS], double q) {
    double ms = rtb_latency_quantile_ms(buckets, q);
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

static void add_rates(cJSON *root, const rtb_dash *d) {
    rtb_dash_counts sec;
    rtb_dash_window(d, 1, &sec);
    cJSON *rates = cJSON_AddObjectToObject(root, "rates");
    add_statuses(cJSON_AddObjectToObject(rates, "auctions_per_s"), sec.results);
    cJSON_AddNumberToObject(rates, "results_per_s", (double)sum_results(sec.results));
    cJSON_AddNumberToObject(rates, "requests_per_s", (double)sec.requests);
    cJSON *lat = cJSON_AddObjectToObject(root, "latency_ms");
    cJSON_AddItemToObject(lat, "p50", latency_json(sec.latency_buckets, 0.5));
    cJSON_AddItemToObject(lat, "p99", latency_json(sec.latency_buckets, 0.99));
}

static void add_totals(cJSON *root, const rtb_server *srv) {
    const rtb_stats *s = &srv->stats;
    cJSON *t = cJSON_AddObjectToObject(root, "totals");
    cJSON_AddNumberToObject(t, "requests", (double)s->requests);
    cJSON_AddNumberToObject(t, "auctions", (double)sum_results(s->results));
    add_statuses(t, s->results);
    cJSON_AddNumberToObject(t, "request_errors", (double)s->request_errors);
    cJSON_AddNumberToObject(t, "duplicates", (double)s->duplicates);
    cJSON_AddNumberToObject(t, "inflight", (double)srv->ninflight);
    cJSON_AddItemToObject(t, "latency_p99_ms", latency_json(s->latency_buckets, 0.99));
}

static void add_bidders(cJSON *root, const rtb_server *srv) {
    cJSON *list = cJSON_AddArrayToObject(root, "bidders");
    for (size_t i = 0; i < srv->nbidders; i++) {
        const rtb_bidder *b = srv->bidders[i];
        const rtb_bidder_stats *s = &b->stats;
        rtb_dash_bidder_counts sec;
        rtb_dash_bidder_window(srv->dash, i, 1, &sec);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", b->id);
        cJSON_AddBoolToObject(o, "active", b->active);
        cJSON_AddNumberToObject(o, "calls", (double)s->calls);
        cJSON_AddNumberToObject(o, "bids", (double)s->bids);
        cJSON_AddNumberToObject(o, "wins", (double)s->wins);
        cJSON_AddNumberToObject(o, "win_rate", ratio(s->wins, s->bids));
        cJSON_AddNumberToObject(o, "timeouts", (double)s->timeouts);
        cJSON_AddNumberToObject(o, "errors", (double)s->errors);
        cJSON_AddNumberToObject(o, "throttled", (double)s->throttled);
        cJSON_AddStringToObject(o, "breaker", breaker_str(b->breaker));
        cJSON_AddNumberToObject(o, "spend", (double)s->spend_micros / 1e6);
        cJSON_AddNumberToObject(o, "calls_per_s", (double)sec.calls);
        cJSON_AddNumberToObject(o, "inflight", (double)b->busy);
        cJSON_AddItemToArray(list, o);
    }
}

static void add_events(cJSON *root, const rtb_stats *s) {
    cJSON *e = cJSON_AddObjectToObject(root, "events");
    cJSON_AddNumberToObject(e, "impressions", (double)s->impressions);
    cJSON_AddNumberToObject(e, "clicks", (double)s->clicks);
    cJSON_AddNumberToObject(e, "ctr", ratio(s->clicks, s->impressions));
    cJSON_AddNumberToObject(e, "conversions", (double)s->conversions);
    cJSON_AddNumberToObject(e, "duplicate_clicks", (double)s->duplicate_clicks);
}

/* The last RTB_DASH_HISTORY_JSON_S seconds, oldest first. */
static void add_history(cJSON *root, const rtb_dash *d) {
    cJSON *h = cJSON_AddArrayToObject(root, "history");
    size_t n = d->count < RTB_DASH_HISTORY_JSON_S ? d->count : RTB_DASH_HISTORY_JSON_S;
    for (size_t k = n; k-- > 0;) {
        const sample *s = latest(d, k);
        unsigned long long buckets[RTB_LATENCY_BUCKETS], auctions = 0;
        for (int i = 0; i < RTB_LATENCY_BUCKETS; i++)
            buckets[i] = s->latency[i];
        for (int st = 0; st < PROTO_STATUS_COUNT; st++)
            auctions += s->results[st];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "t", floor((double)s->wall_us / 1e6)); /* second's end */
        cJSON_AddNumberToObject(o, "auctions", (double)auctions);
        cJSON_AddNumberToObject(o, "success", s->results[PROTO_STATUS_SUCCESS]);
        cJSON_AddNumberToObject(o, "timeout", s->results[PROTO_STATUS_TIMEOUT]);
        cJSON_AddItemToObject(o, "p99", latency_json(buckets, 0.99));
        cJSON_AddItemToArray(h, o);
    }
}

int rtb_dash_stats_json(const rtb_server *srv, struct evbuffer *out) {
    const rtb_dash *d = srv->dash;
    cJSON *root = cJSON_CreateObject();
    if (!root || !d) {
        cJSON_Delete(root);
        return -1;
    }
    cJSON_AddNumberToObject(root, "time", round_to((double)rtb_wall_us() / 1e6, 1e-3));
    cJSON_AddNumberToObject(root, "uptime_s", floor((double)(rtb_now_us() - d->start_us) / 1e6));
    add_rates(root, d);
    add_totals(root, srv);
    add_bidders(root, srv);
    add_events(root, &srv->stats);
    add_history(root, d);
    cJSON *alerts = cJSON_AddArrayToObject(root, "alerts");
    int rc = alerts && srv->alerts ? rtb_alerts_json(srv->alerts, alerts) : 0;
    cJSON_AddNumberToObject(root, "alert_rules", (double)srv->cfg->nalerts);
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

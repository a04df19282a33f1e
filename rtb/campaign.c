/* campaign.c -- the campaign view (SPEC 16): GET /api/advertisers and
 * GET /api/advertisers/{id}, built with cJSON.
 *
 * The one idea: a query is a small object between two events that may come
 * in either order -- the Redis reply with the group's totals and its own
 * timer (RTB_CAMPAIGN_WAIT_MS, or at once when Redis is down). Whichever
 * comes first builds the answer (Redis totals, or this exchange's own
 * counters: "source":"local") and calls the caller back; the query is freed
 * when both have happened, or when it is cancelled and no Redis reply is
 * out (a reply still out frees it when it comes: store.h promises it comes,
 * at the latest when the store is freed). So a client that goes away, or a
 * Redis that never answers, leaves nothing behind and touches nothing freed.
 *
 * Everything else is read from the server: per advertiser its counters, its
 * health (SPEC 13), its minute ring (minutes.h: this exchange's view) and
 * the firing alerts whose subject it is. */
#include "rtb/campaign.h"

#include "rtb/alerts.h"
#include "rtb/dashboard.h"
#include "rtb/log.h"
#include "rtb/minutes.h"
#include "rtb/sampler.h"

#include <event2/buffer.h>
#include <event2/event.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STATS_PREFIX "stats:advertiser:"
#define ID_MAX 128 /* SPEC 2's request_id rule, which ids used in keys follow (SPEC 15) */

/* The fields of stats:advertiser:{id} the view shows (SPEC 10, 14). */
enum { F_WINS, F_SPEND_CPM, F_SPEND, F_IMPRESSIONS, F_CLICKS, F_CONVERSIONS, F_BILLED, F_COUNT };
static const char *const field_names[F_COUNT] = {
    "wins", "spend_cpm_micros", "spend_micros", "impressions", "clicks", "conversions", "billed"};

/* One advertiser's totals, from Redis or from this exchange's counters. */
typedef struct totals {
    long long v[F_COUNT];
} totals;

struct rtb_campaign_query {
    const rtb_server *srv;
    long index;          /* -1: every advertiser */
    size_t count;        /* advertisers asked about (index -1: the first `count`) */
    rtb_campaign_fn *fn; /* NULL once answered or cancelled */
    void *arg;
    struct event *timer;
    int redis_out; /* a store_hashes_get reply is still due: it frees the query */
};

/* ---- Ids --------------------------------------------------------------------------- */

typedef struct find {
    const char *id;
    long index;
} find;

static void find_one(void *arg, size_t index, const rtb_bidder *b) {
    find *f = arg;
    if (f->index < 0 && strcmp(b->id, f->id) == 0) f->index = (long)index;
}

long rtb_campaign_find(const rtb_server *srv, const char *id) {
    size_t len = strlen(id);
    if (len == 0 || len > ID_MAX ||
        strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") != len)
        return RTB_CAMPAIGN_BAD_ID;
    find f = {id, RTB_CAMPAIGN_UNKNOWN};
    rtb_server_each_bidder(srv, find_one, &f);
    return f.index;
}

/* ---- JSON ------------------------------------------------------------------------------ */

static double round_to(double x, double unit) {
    return round(x / unit) * unit;
}

static double ratio(long long num, long long den) {
    return den > 0 ? round_to((double)num / (double)den, 1e-4) : 0;
}

static void local_totals(const rtb_bidder *b, totals *t) {
    const rtb_bidder_stats *s = &b->stats;
    *t = (totals){{
        [F_WINS] = (long long)s->wins,
        [F_SPEND_CPM] = (long long)s->spend_cpm_micros,
        [F_SPEND] = (long long)rtb_bidder_spend_micros(s),
        [F_IMPRESSIONS] = (long long)s->impressions,
        [F_CLICKS] = (long long)s->clicks,
        [F_CONVERSIONS] = (long long)s->conversions,
        [F_BILLED] = (long long)s->billed,
    }};
}

/* The budget of advertiser `b` (SPEC 16 budgets and pacing) as "budget" in
 * `o`: null without one, else the daily amount, pacing, today's spend as
 * known here, what pacing allows by now, and whether it is exhausted or
 * called now. Returns the item added, or NULL (out of memory). */
static cJSON *add_budget_json(cJSON *o, const rtb_server *srv, const rtb_bidder *b) {
    (void)srv;
    const rtb_budget *bg = &b->budget;
    if (bg->daily_micros == 0) return cJSON_AddNullToObject(o, "budget");
    int64_t now_us = rtb_wall_us(), spent = rtb_budget_spent_micros(bg, now_us);
    int64_t allowance = rtb_budget_allowance_micros(bg, now_us);
    cJSON *j = cJSON_AddObjectToObject(o, "budget");
    if (!j) return NULL;
    cJSON_AddNumberToObject(j, "daily", (double)bg->daily_micros / 1e6);
    cJSON_AddStringToObject(j, "pacing", bg->pacing == PROTO_PACING_EVEN ? "even" : "asap");
    cJSON_AddNumberToObject(j, "spent_today", (double)spent / 1e6);
    cJSON_AddNumberToObject(j, "allowed_by_now", (double)allowance / 1e6);
    cJSON_AddBoolToObject(j, "exhausted", spent >= bg->daily_micros);
    /* budget.h's rule, read without moving the figure to a new day. */
    cJSON_AddBoolToObject(j, "called",
                          spent < bg->daily_micros &&
                              (bg->pacing != PROTO_PACING_EVEN || spent <= allowance));
    return j;
}

/* The fields every advertiser object has (docs/dashboard.md). */
static void add_advertiser(cJSON *o, const rtb_server *srv, const rtb_bidder *b, const totals *t) {
    const long long *v = t->v;
    /* Spend from the exact sum when there is one (SPEC 14): micros, the
     * fraction of a micro dropped once. */
    long long spend_micros = v[F_SPEND_CPM] > 0 ? v[F_SPEND_CPM] / 1000 : v[F_SPEND];
    cJSON_AddStringToObject(o, "id", b->id);
    cJSON_AddBoolToObject(o, "active", b->active);
    cJSON_AddNumberToObject(o, "wins", (double)v[F_WINS]);
    cJSON_AddNumberToObject(o, "spend", (double)spend_micros / 1e6);
    cJSON_AddNumberToObject(o, "impressions", (double)v[F_IMPRESSIONS]);
    cJSON_AddNumberToObject(o, "clicks", (double)v[F_CLICKS]);
    cJSON_AddNumberToObject(o, "ctr", ratio(v[F_CLICKS], v[F_IMPRESSIONS]));
    cJSON_AddNumberToObject(o, "conversions", (double)v[F_CONVERSIONS]);
    cJSON_AddNumberToObject(o, "cvr", ratio(v[F_CONVERSIONS], v[F_CLICKS]));
    if (v[F_CLICKS] > 0) /* micros, rounded half up */
        cJSON_AddNumberToObject(o, "cpc",
                                (double)((spend_micros + v[F_CLICKS] / 2) / v[F_CLICKS]) / 1e6);
    else
        cJSON_AddNullToObject(o, "cpc");
    cJSON_AddNumberToObject(o, "billed", (double)v[F_BILLED]);
    /* Calls and bids only this exchange knows: its own win rate. */
    const rtb_bidder_stats *s = &b->stats;
    cJSON_AddNumberToObject(o, "calls", (double)s->calls);
    cJSON_AddNumberToObject(o, "bids", (double)s->bids);
    cJSON_AddNumberToObject(o, "win_rate", ratio((long long)s->wins, (long long)s->bids));
    add_budget_json(o, srv, b);
}

/* The minute ring of advertiser `index`: 60 points, oldest first. */
static void add_series(cJSON *o, const rtb_server *srv, size_t index) {
    rtb_minute_counts m[RTB_MINUTES];
    int64_t first_s;
    rtb_minutes_series(rtb_server_minutes(srv), index, m, &first_s);
    if (first_s == 0) /* no take yet (the first second): the hour that ends now */
        first_s = (rtb_wall_us() / 60000000 - (RTB_MINUTES - 1)) * 60;
    cJSON *series = cJSON_AddObjectToObject(o, "series");
    cJSON_AddStringToObject(series, "scope", "exchange");
    cJSON_AddNumberToObject(series, "minute_s", 60);
    cJSON *points = cJSON_AddArrayToObject(series, "points");
    for (size_t k = 0; points && k < RTB_MINUTES; k++) {
        cJSON *p = cJSON_CreateObject();
        if (!p || !cJSON_AddItemToArray(points, p)) {
            cJSON_Delete(p);
            return;
        }
        cJSON_AddNumberToObject(p, "t", (double)(first_s + 60 * (int64_t)k));
        cJSON_AddNumberToObject(p, "calls", (double)m[k].calls);
        cJSON_AddNumberToObject(p, "bids", (double)m[k].bids);
        cJSON_AddNumberToObject(p, "wins", (double)m[k].wins);
        cJSON_AddNumberToObject(p, "spend", round_to((double)m[k].spend_cpm_micros / 1e9, 1e-6));
        cJSON_AddNumberToObject(p, "impressions", (double)m[k].impressions);
        cJSON_AddNumberToObject(p, "clicks", (double)m[k].clicks);
        cJSON_AddNumberToObject(p, "conversions", (double)m[k].conversions);
    }
}

static void add_health(cJSON *o, const rtb_server *srv, size_t index, const rtb_bidder *b) {
    cJSON *h = cJSON_AddObjectToObject(o, "health");
    if (!h) return;
    rtb_dash_bidder_health(h, b, rtb_now_us());
    rtb_sample_bidder_counts sec;
    rtb_sampler_bidder_window(rtb_server_sampler(srv), index, 1, &sec);
    cJSON_AddNumberToObject(h, "calls_per_s", (double)sec.calls);
    cJSON_AddNumberToObject(h, "inflight", (double)rtb_bidder_busy(b));
}

/* The firing alerts whose subject is `id`, as /api/stats lists them. */
static void add_alerts(cJSON *o, const rtb_server *srv, const char *id) {
    cJSON *all = cJSON_CreateArray(), *mine = cJSON_AddArrayToObject(o, "alerts");
    if (all && mine && rtb_alerts_json(rtb_server_alerts(srv), all) == 0) {
        cJSON *a = all->child;
        while (a) {
            cJSON *next = a->next;
            const cJSON *subject = cJSON_GetObjectItemCaseSensitive(a, "subject");
            if (cJSON_IsString(subject) && strcmp(subject->valuestring, id) == 0)
                cJSON_AddItemToArray(mine, cJSON_DetachItemViaPointer(all, a));
            a = next;
        }
    }
    cJSON_Delete(all);
}

typedef struct each_adv {
    const rtb_server *srv;
    cJSON *list;
    const long long *values; /* Redis totals, F_COUNT per advertiser; NULL: local */
    size_t n;                /* advertisers with Redis totals */
} each_adv;

static void totals_of(const each_adv *e, size_t index, const rtb_bidder *b, totals *t) {
    if (e->values && index < e->n)
        memcpy(t->v, e->values + index * F_COUNT, sizeof(t->v));
    else /* local, or new since the question was asked */
        local_totals(b, t);
}

static void list_one(void *arg, size_t index, const rtb_bidder *b) {
    const each_adv *e = arg;
    totals t;
    totals_of(e, index, b, &t);
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(e->list, o)) {
        cJSON_Delete(o);
        return;
    }
    add_advertiser(o, e->srv, b, &t);
}

typedef struct pick {
    size_t index;
    const rtb_bidder *b;
} pick;

static void pick_one(void *arg, size_t index, const rtb_bidder *b) {
    pick *p = arg;
    if (index == p->index) p->b = b;
}

/* The answer of q: Redis totals `values` (F_COUNT per advertiser asked
 * about) or, when NULL, the local counters. NULL when memory ran out. */
static char *answer_json(const rtb_campaign_query *q, const long long *values) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddNumberToObject(root, "time", round_to((double)rtb_wall_us() / 1e6, 1e-3));
    cJSON_AddStringToObject(root, "source", values ? "redis" : "local");
    if (q->index < 0) {
        each_adv e = {q->srv, cJSON_AddArrayToObject(root, "advertisers"), values, q->count};
        if (e.list) rtb_server_each_bidder(q->srv, list_one, &e);
    } else {
        pick p = {(size_t)q->index, NULL};
        rtb_server_each_bidder(q->srv, pick_one, &p);
        totals t;
        if (values)
            memcpy(t.v, values, sizeof(t.v));
        else
            local_totals(p.b, &t);
        add_advertiser(root, q->srv, p.b, &t);
        add_series(root, q->srv, p.index);
        add_health(root, q->srv, p.index, p.b);
        add_alerts(root, q->srv, p.b->id);
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

/* ---- The query ------------------------------------------------------------------------- */

static void query_free(rtb_campaign_query *q) {
    if (q->timer) event_free(q->timer);
    free(q);
}

/* Answer once, from `values` or (NULL) the local counters. */
static void answer(rtb_campaign_query *q, const long long *values) {
    rtb_campaign_fn *fn = q->fn;
    if (!fn) return;
    q->fn = NULL;
    evtimer_del(q->timer);
    char *text = answer_json(q, values);
    struct evbuffer *body = text ? evbuffer_new() : NULL;
    if (body && evbuffer_add(body, text, strlen(text)) != 0) { /* evhttp moves it: a copy */
        evbuffer_free(body);
        body = NULL;
    }
    fn(q->arg, body); /* NULL: out of memory */
    if (body) evbuffer_free(body);
    cJSON_free(text);
}

static void on_totals(void *arg, store_status st, const long long *values, size_t nkeys,
                      size_t nfields) {
    rtb_campaign_query *q = arg;
    q->redis_out = 0;
    if (q->fn && st != STORE_OK)
        rtb_log(PROTO_LOG_DEBUG, "campaign view: Redis could not read " STATS_PREFIX
                                 "*: answering from this exchange's counters");
    if (st == STORE_OK && nkeys == q->count && nfields == F_COUNT)
        answer(q, values);
    else
        answer(q, NULL);
    query_free(q);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rtb_campaign_query *q = arg;
    if (q->redis_out && q->fn)
        rtb_log(PROTO_LOG_DEBUG, "campaign view: no answer from Redis within %d ms",
                RTB_CAMPAIGN_WAIT_MS);
    answer(q, NULL);
    if (!q->redis_out) query_free(q);
}

typedef struct ids {
    const char **v;
    size_t n, first, count;
} ids;

static void collect_id(void *arg, size_t index, const rtb_bidder *b) {
    ids *x = arg;
    if (index >= x->first && index - x->first < x->count) x->v[x->n++] = b->id;
}

static void count_one(void *arg, size_t index, const rtb_bidder *b) {
    (void)b;
    *(size_t *)arg = index + 1;
}

rtb_campaign_query *rtb_campaign_ask(struct event_base *base, const rtb_server *srv, long index,
                                     rtb_campaign_fn *fn, void *arg) {
    size_t known = 0;
    rtb_server_each_bidder(srv, count_one, &known);
    rtb_campaign_query *q = calloc(1, sizeof(*q));
    ids x = {NULL, 0, index < 0 ? 0 : (size_t)index, index < 0 ? known : 1};
    if (q) q->timer = evtimer_new(base, on_timer, q);
    if (q && q->timer && x.count > 0) x.v = malloc(x.count * sizeof(*x.v));
    if (!q || !q->timer || (x.count > 0 && !x.v)) {
        if (q) query_free(q);
        return NULL;
    }
    *q = (rtb_campaign_query){
        .srv = srv, .index = index, .count = x.count, .fn = fn, .arg = arg, .timer = q->timer};
    rtb_server_each_bidder(srv, collect_id, &x);
    /* The work is bounded by the advertisers known now: one key each. */
    if (x.n == x.count && store_hashes_get(rtb_server_store(srv), STATS_PREFIX, x.v, x.n,
                                           field_names, F_COUNT, on_totals, q) == 0) {
        q->redis_out = 1;
        struct timeval wait = {RTB_CAMPAIGN_WAIT_MS / 1000, (RTB_CAMPAIGN_WAIT_MS % 1000) * 1000};
        evtimer_add(q->timer, &wait);
    } else { /* Redis down: the local answer, from the loop as promised */
        event_active(q->timer, EV_TIMEOUT, 0);
    }
    free(x.v);
    return q;
}

void rtb_campaign_cancel(rtb_campaign_query *q) {
    q->fn = NULL;
    if (q->redis_out) {
        evtimer_del(q->timer);
        return;
    }
    query_free(q);
}

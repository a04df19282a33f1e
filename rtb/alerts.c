/* alerts.c -- alert rules of SPEC 11 (config `alerts`), evaluated once a
 * second on the dashboard's samples.
 *
 * A rule {"name","metric","above","window_s"} watches one metric over its
 * last window_s seconds: a per-bidder metric has one state per advertiser
 * (the subject), the others one state. A state fires when the value goes
 * above `above` and resolves when it is back at or below; each transition is
 * published on auction:alerts as {"name","metric","subject","value","above",
 * "window_s","state","timestamp"} and logged. With too little traffic in the
 * window (RTB_ALERT_MIN_COUNT) a value means nothing, so the state is held:
 * a bidder whose breaker is open gets almost no calls, and its timeout alert
 * must not resolve for that. An advertiser that left the registry resolves.
 *
 * The rules come checked: the config's rows (proto/config.c) make `metric`
 * one of proto_alert_metric, `above` finite and window_s 1..
 * PROTO_ALERT_WINDOW_MAX_S, so nothing here checks them again. */
#include "rtb/alerts.h"

#include "rtb/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A window may be as long as the config allows: the sampler keeps that much. */
_Static_assert(RTB_SAMPLER_HISTORY_S == PROTO_ALERT_WINDOW_MAX_S,
               "the sampler keeps every second an alert window may cover");

/* Metrics with one state per advertiser (the others have one state). */
static const int per_bidder[PROTO_ALERT_METRIC_COUNT] = {
    [PROTO_ALERT_BIDDER_TIMEOUT_RATE] = 1,
    [PROTO_ALERT_BIDDER_ERROR_RATE] = 1,
};

typedef struct alert_state {
    int firing;
    double value;          /* the last value computed with enough traffic */
    int64_t since_wall_us; /* when it fired */
} alert_state;

typedef struct rule {
    const proto_alert_conf *conf; /* borrowed from the config */
    alert_state *states;          /* per advertiser (registry index) or one */
    size_t nstates;
} rule;

struct rtb_alerts {
    store *store;
    const rtb_registry *reg;
    const rtb_sampler *samples;
    const rtb_latency_bounds *bounds;
    rule *rules;
    size_t nrules;
};

rtb_alerts *rtb_alerts_new(const proto_config *cfg, store *st, const rtb_registry *reg,
                           const rtb_sampler *samples, const rtb_latency_bounds *bounds, char *err,
                           size_t errlen) {
    rtb_alerts *a = calloc(1, sizeof(*a));
    if (a && cfg->nalerts) a->rules = calloc(cfg->nalerts, sizeof(*a->rules));
    if (!a || (cfg->nalerts && !a->rules)) {
        free(a);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->store = st;
    a->reg = reg;
    a->samples = samples;
    a->bounds = bounds;
    a->nrules = cfg->nalerts;
    for (size_t i = 0; i < a->nrules; i++)
        a->rules[i].conf = &cfg->alerts[i];
    return a;
}

void rtb_alerts_free(rtb_alerts *a) {
    if (!a) return;
    for (size_t i = 0; i < a->nrules; i++)
        free(a->rules[i].states);
    free(a->rules);
    free(a);
}

/* ---- Transitions ----------------------------------------------------------------- */

static double rounded(double value, proto_alert_metric m) {
    double unit = m == PROTO_ALERT_P99_LATENCY_MS ? 1e-3 : 1e-4;
    return round(value / unit) * unit;
}

static double wall_s(int64_t wall_us) {
    return round((double)wall_us / 1000.0) / 1000.0;
}

/* {"name","metric","subject","value","above","window_s"}: what both the
 * auction:alerts messages and /api/stats carry. */
static cJSON *alert_json(const rule *r, const char *subject, const alert_state *st) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", r->conf->name);
    cJSON_AddStringToObject(o, "metric", proto_alert_metric_str(r->conf->metric));
    if (subject)
        cJSON_AddStringToObject(o, "subject", subject);
    else
        cJSON_AddNullToObject(o, "subject");
    cJSON_AddNumberToObject(o, "value", rounded(st->value, r->conf->metric));
    cJSON_AddNumberToObject(o, "above", r->conf->above);
    cJSON_AddNumberToObject(o, "window_s", (double)r->conf->window_s);
    return o;
}

static void announce(rtb_alerts *a, const rule *r, const char *subject, const alert_state *st,
                     int64_t wall_us) {
    const char *state = st->firing ? "firing" : "resolved";
    rtb_log(st->firing ? PROTO_LOG_WARN : PROTO_LOG_INFO,
            "alert %s %s: %s%s%s = %.4g (above %.4g over %ld s)", r->conf->name, state,
            proto_alert_metric_str(r->conf->metric), subject ? " of " : "", subject ? subject : "",
            st->value, r->conf->above, r->conf->window_s);
    cJSON *o = alert_json(r, subject, st);
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddNumberToObject(o, "timestamp", wall_s(wall_us));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) {
        rtb_log(PROTO_LOG_ERROR, "alert %s: out of memory: not published", r->conf->name);
        return;
    }
    /* Queued while Redis is down (store.c); a drop is counted there. */
    store_publish(a->store, RTB_ALERTS_CHANNEL, text, strlen(text));
    cJSON_free(text);
}

/* One evaluation of one state: `enough` says whether the window had enough
 * traffic for `value` to mean something; `gone` resolves a firing state. */
static void update(rtb_alerts *a, const rule *r, alert_state *st, const char *subject, int enough,
                   double value, int gone, int64_t wall_us) {
    if (gone) {
        if (!st->firing) return;
        st->firing = 0;
        announce(a, r, subject, st, wall_us);
        return;
    }
    if (!enough) return;
    st->value = value;
    int above = value > r->conf->above;
    if (above == st->firing) return;
    st->firing = above;
    if (above) st->since_wall_us = wall_us;
    announce(a, r, subject, st, wall_us);
}

/* States for every advertiser seen so far (the server's array only grows). */
static int grow_states(rule *r, size_t n) {
    if (n <= r->nstates) return 0;
    alert_state *v = realloc(r->states, n * sizeof(*v));
    if (!v) return -1;
    memset(v + r->nstates, 0, (n - r->nstates) * sizeof(*v));
    r->states = v;
    r->nstates = n;
    return 0;
}

static void evaluate_bidders(rtb_alerts *a, rule *r, int64_t wall_us) {
    size_t n = rtb_registry_count(a->reg);
    if (grow_states(r, n) != 0) return; /* next second, maybe */
    for (size_t i = 0; i < n; i++) {
        const rtb_bidder *b = rtb_registry_at(a->reg, i);
        rtb_sample_bidder_counts c;
        rtb_sampler_bidder_window(a->samples, i, (int)r->conf->window_s, &c);
        unsigned long long bad =
            r->conf->metric == PROTO_ALERT_BIDDER_TIMEOUT_RATE ? c.timeouts : c.errors;
        /* A call is counted when made, its timeout or error when it ends (up to
         * tmax later): one made just before the window can end inside it. */
        double value = c.calls ? fmin(1.0, (double)bad / (double)c.calls) : 0;
        update(a, r, &r->states[i], b->id, c.calls >= RTB_ALERT_MIN_COUNT, value, !b->active,
               wall_us);
    }
}

static void evaluate_exchange(rtb_alerts *a, rule *r, int64_t wall_us) {
    if (grow_states(r, 1) != 0) return;
    rtb_sample_counts c;
    rtb_sampler_window(a->samples, (int)r->conf->window_s, &c);
    unsigned long long results = 0, closed = 0;
    for (int st = 0; st < PROTO_STATUS_COUNT; st++)
        results += c.results[st];
    for (int i = 0; i < RTB_LATENCY_BUCKETS; i++)
        closed += c.latency_buckets[i];
    double value = 0;
    int enough = results >= RTB_ALERT_MIN_COUNT;
    switch (r->conf->metric) {
    case PROTO_ALERT_AUCTION_TIMEOUT_RATE:
        value = results ? (double)c.results[PROTO_STATUS_TIMEOUT] / (double)results : 0;
        break;
    case PROTO_ALERT_NO_BID_RATE:
        value = results ? (double)c.results[PROTO_STATUS_NO_BID] / (double)results : 0;
        break;
    case PROTO_ALERT_P99_LATENCY_MS:
        enough = closed >= RTB_ALERT_MIN_COUNT;
        value = enough ? rtb_latency_quantile_ms(a->bounds, c.latency_buckets, 0.99) : 0;
        break;
    default:
        return;
    }
    update(a, r, &r->states[0], NULL, enough, value, 0, wall_us);
}

void rtb_alerts_evaluate(rtb_alerts *a, int64_t wall_us) {
    for (size_t i = 0; i < a->nrules; i++) {
        rule *r = &a->rules[i];
        if (per_bidder[r->conf->metric])
            evaluate_bidders(a, r, wall_us);
        else
            evaluate_exchange(a, r, wall_us);
    }
}

/* ---- What is firing now ---------------------------------------------------------- */

int rtb_alerts_json(const rtb_alerts *a, cJSON *array) {
    for (size_t i = 0; i < a->nrules; i++) {
        const rule *r = &a->rules[i];
        for (size_t k = 0; k < r->nstates; k++) {
            const alert_state *st = &r->states[k];
            if (!st->firing) continue;
            const char *subject =
                per_bidder[r->conf->metric] ? rtb_registry_at(a->reg, k)->id : NULL;
            cJSON *o = alert_json(r, subject, st);
            if (!o || !cJSON_AddNumberToObject(o, "since", wall_s(st->since_wall_us)) ||
                !cJSON_AddItemToArray(array, o)) {
                cJSON_Delete(o);
                return -1;
            }
        }
    }
    return 0;
}

size_t rtb_alerts_rules(const rtb_alerts *a) {
    return a->nrules;
}

size_t rtb_alerts_active(const rtb_alerts *a) {
    size_t n = 0;
    for (size_t i = 0; i < a->nrules; i++)
        for (size_t k = 0; k < a->rules[i].nstates; k++)
            n += (size_t)a->rules[i].states[k].firing;
    return n;
}

/* alerts.c -- alert rules of SPEC 11 and 16, evaluated once a second on the
 * dashboard's samples, kept in Redis and changed at run time.
 *
 * A rule watches one metric over its last window_s seconds: a
 * per-advertiser metric has one state per advertiser (the subject; a rule
 * naming a subject watches that advertiser alone), the others one state. A
 * state fires when the value breaks the threshold (above it, or below it)
 * and resolves when it is back; each transition is published on
 * auction:alerts as {"name","metric","subject","value","op","threshold",
 * ["above",]"window_s","severity","message","state","timestamp"} and
 * logged. With too little traffic in the window a value means nothing, so
 * the state is held: a bidder whose breaker is open gets almost no calls,
 * and its timeout alert must not resolve for that. An advertiser that left
 * the registry resolves.
 *
 * The one idea for storage: the set of rules is whatever alerts:rules held
 * at the last read, and nothing else changes it but a read, or a write of
 * ours that Redis confirmed (the read that follows it would say the same).
 * A read replaces the set; a rule whose stored JSON did not change keeps
 * its states (so a reload never resolves or re-fires anything). Every call
 * to Redis carries an `op` record that its one callback frees; freeing the
 * set only cuts the records loose (op->a NULL), since the store answers
 * them later.
 *
 * Rules come checked: proto/config.c's rows (the config's alerts[], and
 * proto_alert_decode for the API and Redis) make `metric` one of
 * proto_alert_metric, the threshold finite, window_s 1..
 * PROTO_ALERT_WINDOW_MAX_S and a subject only on a per-advertiser metric. */
#include "rtb/alerts.h"

#include "rtb/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A window may be as long as the config allows: the sampler keeps that much. */
_Static_assert(RTB_SAMPLER_HISTORY_S == PROTO_ALERT_WINDOW_MAX_S,
               "the sampler keeps every second an alert window may cover");

typedef struct alert_state {
    int firing;
    double value;          /* the last value computed with enough traffic */
    int64_t since_wall_us; /* when it fired */
} alert_state;

typedef struct rule {
    proto_alert_conf conf; /* owned */
    char *json;            /* as stored: a rule is "unchanged" while this is */
    alert_state *states;   /* per advertiser (registry index), or one */
    size_t nstates;
} rule;

/* One call to Redis in flight: a read, the config's write, an add or a
 * remove. */
typedef struct op {
    rtb_alerts *a;     /* NULL until sent, and once the set is freed */
    rtb_alerts_fn *fn; /* add, remove: the caller's */
    void *arg;
    rule rule;  /* add: the rule sent */
    char *name; /* remove */
    struct op *prev, *next;
} op;

struct rtb_alerts {
    const proto_config *cfg;
    store *store;
    const rtb_registry *reg;
    const rtb_sampler *samples;
    const rtb_latency_bounds *bounds;
    rule *rules; /* by name */
    size_t nrules;
    op *ops;             /* in flight */
    int config_written;  /* the config's rules are in alerts:rules */
    int reading;         /* a read (or the config's write) is out */
    int read_again;      /* a refresh came meanwhile */
    uint64_t bad_digest; /* of the stored rules that did not decode, last read */
    long long too_many;  /* rules in alerts:rules at the last read refused for it */
};

const char *rtb_alerts_strerror(rtb_alerts_status st) {
    switch (st) {
    case RTB_ALERTS_OK:
        return "ok";
    case RTB_ALERTS_INVALID:
        return "invalid rule";
    case RTB_ALERTS_EXISTS:
        return "a rule of that name exists";
    case RTB_ALERTS_FULL:
        return "too many rules";
    case RTB_ALERTS_NOT_FOUND:
        return "no rule of that name";
    case RTB_ALERTS_UNAVAILABLE:
        return "Redis is not reachable";
    }
    return "unknown";
}

/* ---- Rules ------------------------------------------------------------------------ */

static void rule_free(rule *r) {
    proto_alert_conf_free(&r->conf);
    cJSON_free(r->json);
    free(r->states);
    memset(r, 0, sizeof(*r));
}

/* r->json from r->conf. 0, or -1 when memory ran out. */
static int rule_encode(rule *r) {
    cJSON *o = proto_alert_to_json(&r->conf);
    r->json = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return r->json ? 0 : -1;
}

static int rule_cmp(const void *x, const void *y) {
    return strcmp(((const rule *)x)->conf.name, ((const rule *)y)->conf.name);
}

/* The rule `name`; a slot emptied by apply_stored (no name) is skipped. */
static rule *find_rule(const rtb_alerts *a, const char *name) {
    for (size_t i = 0; i < a->nrules; i++)
        if (a->rules[i].conf.name && strcmp(a->rules[i].conf.name, name) == 0) return &a->rules[i];
    return NULL;
}

/* `name` (n bytes, from anywhere) for a log line: at most 64 bytes, control
 * characters as '?'. */
static const char *printable(const char *name, size_t n, char buf[72]) {
    size_t k = n < 64 ? n : 64;
    for (size_t i = 0; i < k; i++)
        buf[i] = (unsigned char)name[i] < ' ' || name[i] == 0x7F ? '?' : name[i];
    strcpy(buf + k, n > k ? "..." : "");
    return buf;
}

rtb_alerts *rtb_alerts_new(const proto_config *cfg, store *st, const rtb_registry *reg,
                           const rtb_sampler *samples, const rtb_latency_bounds *bounds, char *err,
                           size_t errlen) {
    rtb_alerts *a = calloc(1, sizeof(*a));
    if (a && cfg->nalerts) a->rules = calloc(cfg->nalerts, sizeof(*a->rules));
    if (!a || (cfg->nalerts && !a->rules)) goto nomem;
    a->cfg = cfg;
    a->store = st;
    a->reg = reg;
    a->samples = samples;
    a->bounds = bounds;
    for (size_t i = 0; i < cfg->nalerts; i++) {
        rule *r = &a->rules[a->nrules++]; /* freed with the rest if it fails */
        if (proto_alert_conf_copy(&r->conf, &cfg->alerts[i]) != 0 || rule_encode(r) != 0)
            goto nomem;
    }
    if (a->nrules) qsort(a->rules, a->nrules, sizeof(*a->rules), rule_cmp);
    return a;
nomem:
    rtb_alerts_free(a);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

void rtb_alerts_free(rtb_alerts *a) {
    if (!a) return;
    for (op *o = a->ops; o; o = o->next)
        o->a = NULL; /* answered later, by the store */
    for (size_t i = 0; i < a->nrules; i++)
        rule_free(&a->rules[i]);
    free(a->rules);
    free(a);
}

/* ---- Transitions ------------------------------------------------------------------- */

static double rounded(double value, proto_alert_metric m) {
    double unit = m == PROTO_ALERT_P99_LATENCY_MS                       ? 1e-3
                  : m == PROTO_ALERT_CPC || m == PROTO_ALERT_SPEND_RATE ? 1e-6
                                                                        : 1e-4;
    return round(value / unit) * unit;
}

static double wall_s(int64_t wall_us) {
    return round((double)wall_us / 1000.0) / 1000.0;
}

/* {"name","metric","subject","value","op","threshold",["above",]"window_s",
 * "severity","message"}: what both auction:alerts and /api/stats carry. */
static cJSON *alert_json(const rule *r, const char *subject, const alert_state *st) {
    const proto_alert_conf *c = &r->conf;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddStringToObject(o, "metric", proto_alert_metric_str(c->metric));
    if (subject)
        cJSON_AddStringToObject(o, "subject", subject);
    else
        cJSON_AddNullToObject(o, "subject");
    cJSON_AddNumberToObject(o, "value", rounded(st->value, c->metric));
    cJSON_AddStringToObject(o, "op", proto_alert_op_str(c->op));
    cJSON_AddNumberToObject(o, "threshold", c->threshold);
    if (c->op == PROTO_ALERT_ABOVE) cJSON_AddNumberToObject(o, "above", c->threshold);
    cJSON_AddNumberToObject(o, "window_s", (double)c->window_s);
    cJSON_AddStringToObject(o, "severity", proto_alert_severity_str(c->severity));
    cJSON_AddStringToObject(o, "message", c->message ? c->message : "");
    return o;
}

static void announce(rtb_alerts *a, const rule *r, const char *subject, const alert_state *st,
                     int64_t wall_us, const char *why) {
    const proto_alert_conf *c = &r->conf;
    const char *state = st->firing ? "firing" : "resolved";
    rtb_log(st->firing ? PROTO_LOG_WARN : PROTO_LOG_INFO,
            "alert %s %s (%s): %s%s%s = %.4g (%s %.4g over %ld s)%s", c->name, state,
            proto_alert_severity_str(c->severity), proto_alert_metric_str(c->metric),
            subject ? " of " : "", subject ? subject : "", st->value, proto_alert_op_str(c->op),
            c->threshold, c->window_s, why);
    cJSON *o = alert_json(r, subject, st);
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddNumberToObject(o, "timestamp", wall_s(wall_us));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) {
        rtb_log(PROTO_LOG_ERROR, "alert %s: out of memory: not published", c->name);
        return;
    }
    /* Queued while Redis is down (store.c); a drop is counted there. */
    store_publish(a->store, RTB_ALERTS_CHANNEL, text, strlen(text));
    cJSON_free(text);
}

/* The subject of state k of rule r: an advertiser id, or NULL. */
static const char *subject_of(const rtb_alerts *a, const rule *r, size_t k) {
    return proto_alert_per_advertiser(r->conf.metric) ? rtb_registry_at(a->reg, k)->id : NULL;
}

/* A rule that leaves the set (deleted, or changed) resolves what it had
 * firing: subscribers of auction:alerts must not wait for it forever. */
static void rule_retire(rtb_alerts *a, rule *r, int64_t wall_us) {
    for (size_t k = 0; k < r->nstates; k++) {
        if (!r->states[k].firing) continue;
        r->states[k].firing = 0;
        announce(a, r, subject_of(a, r, k), &r->states[k], wall_us, ": the rule was removed");
    }
    rule_free(r);
}

/* One evaluation of one state: `enough` says whether the window had enough
 * traffic for `value` to mean something; `gone` resolves a firing state. */
static void update(rtb_alerts *a, const rule *r, alert_state *st, const char *subject, int enough,
                   double value, int gone, int64_t wall_us) {
    if (gone) {
        if (!st->firing) return;
        st->firing = 0;
        announce(a, r, subject, st, wall_us, "");
        return;
    }
    if (!enough) return;
    st->value = value;
    int breaks =
        r->conf.op == PROTO_ALERT_ABOVE ? value > r->conf.threshold : value < r->conf.threshold;
    if (breaks == st->firing) return;
    st->firing = breaks;
    if (breaks) st->since_wall_us = wall_us;
    announce(a, r, subject, st, wall_us, "");
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

/* n / d, at most 1: a call (a bid, an impression) is counted when it
 * happens, its timeout or error (win, click, conversion) when that
 * follows, so one just before the window can end inside it. */
static double share(unsigned long long n, unsigned long long d) {
    return d ? fmin(1.0, (double)n / (double)d) : 0;
}

/* The value of a per-advertiser metric over `held` seconds of a window of
 * window_s; returns whether the window had enough traffic (docs/dashboard.md
 * lists what each needs). */
static int bidder_value(proto_alert_metric m, const rtb_sample_bidder_counts *c, int held,
                        long window_s, double *value) {
    /* Clearing prices are CPM micros: spend is their sum / 1000, in micros. */
    double spend = (double)c->spend_cpm_micros / 1e9;
    switch (m) {
    case PROTO_ALERT_BIDDER_TIMEOUT_RATE:
        *value = share(c->timeouts, c->calls);
        return c->calls >= RTB_ALERT_MIN_COUNT;
    case PROTO_ALERT_BIDDER_ERROR_RATE:
        *value = share(c->errors, c->calls);
        return c->calls >= RTB_ALERT_MIN_COUNT;
    case PROTO_ALERT_CTR:
        *value = share(c->clicks, c->impressions);
        return c->impressions >= RTB_ALERT_MIN_COUNT;
    case PROTO_ALERT_CVR:
        *value = share(c->conversions, c->clicks);
        return c->clicks >= RTB_ALERT_MIN_COUNT;
    case PROTO_ALERT_CPC:
        *value = c->clicks ? spend / (double)c->clicks : 0;
        return c->clicks >= RTB_ALERT_MIN_COUNT;
    case PROTO_ALERT_WIN_RATE:
        *value = share(c->wins, c->bids);
        return c->bids >= RTB_ALERT_MIN_COUNT;
    case PROTO_ALERT_SPEND_RATE:
        /* Spending nothing is a value too: what it needs is the whole window. */
        *value = spend * 60.0 / (double)window_s;
        return held >= window_s;
    case PROTO_ALERT_AUCTION_TIMEOUT_RATE:
    case PROTO_ALERT_NO_BID_RATE:
    case PROTO_ALERT_P99_LATENCY_MS:
    case PROTO_ALERT_METRIC_COUNT:
        break;
    }
    *value = 0;
    return 0;
}

static void evaluate_bidders(rtb_alerts *a, rule *r, int64_t wall_us) {
    size_t n = rtb_registry_count(a->reg);
    if (grow_states(r, n) != 0) return; /* next second, maybe */
    for (size_t i = 0; i < n; i++) {
        const rtb_bidder *b = rtb_registry_at(a->reg, i);
        if (r->conf.subject && strcmp(r->conf.subject, b->id) != 0) continue;
        rtb_sample_bidder_counts c;
        int held = rtb_sampler_bidder_window(a->samples, i, (int)r->conf.window_s, &c);
        double value;
        int enough = bidder_value(r->conf.metric, &c, held, r->conf.window_s, &value);
        update(a, r, &r->states[i], b->id, enough, value, !b->active, wall_us);
    }
}

static void evaluate_exchange(rtb_alerts *a, rule *r, int64_t wall_us) {
    if (grow_states(r, 1) != 0) return;
    rtb_sample_counts c;
    rtb_sampler_window(a->samples, (int)r->conf.window_s, &c);
    unsigned long long results = 0, closed = 0;
    for (int st = 0; st < PROTO_STATUS_COUNT; st++)
        results += c.results[st];
    for (int i = 0; i < RTB_LATENCY_BUCKETS; i++)
        closed += c.latency_buckets[i];
    double value = 0;
    int enough = results >= RTB_ALERT_MIN_COUNT;
    switch (r->conf.metric) {
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
        if (proto_alert_per_advertiser(r->conf.metric))
            evaluate_bidders(a, r, wall_us);
        else
            evaluate_exchange(a, r, wall_us);
    }
}

/* ---- What is firing now ------------------------------------------------------------ */

int rtb_alerts_json(const rtb_alerts *a, cJSON *array) {
    for (size_t i = 0; i < a->nrules; i++) {
        const rule *r = &a->rules[i];
        for (size_t k = 0; k < r->nstates; k++) {
            const alert_state *st = &r->states[k];
            if (!st->firing) continue;
            cJSON *o = alert_json(r, subject_of(a, r, k), st);
            if (!o || !cJSON_AddNumberToObject(o, "since", wall_s(st->since_wall_us)) ||
                !cJSON_AddItemToArray(array, o)) {
                cJSON_Delete(o);
                return -1;
            }
        }
    }
    return 0;
}

/* One rule of GET /api/alerts, or NULL when memory ran out; *firing: 1
 * when any subject breaks it. */
static cJSON *rule_state_json(const rtb_alerts *a, const rule *r, int *firing) {
    int64_t since_us = 0;
    *firing = 0;
    for (size_t k = 0; k < r->nstates; k++) {
        const alert_state *st = &r->states[k];
        if (!st->firing) continue;
        if (!*firing || st->since_wall_us < since_us) since_us = st->since_wall_us;
        *firing = 1;
    }
    cJSON *o = proto_alert_to_json(&r->conf), *values = NULL;
    int ok = o && cJSON_AddStringToObject(o, "state", *firing ? "firing" : "ok") &&
             (*firing ? cJSON_AddNumberToObject(o, "since", wall_s(since_us)) != NULL
                      : cJSON_AddNullToObject(o, "since") != NULL) &&
             (values = cJSON_AddArrayToObject(o, "subject_values")) != NULL;
    for (size_t k = 0; ok && k < r->nstates; k++) {
        const alert_state *st = &r->states[k];
        if (!st->firing) continue;
        const char *subject = subject_of(a, r, k);
        cJSON *v = cJSON_CreateObject();
        if (!v || !cJSON_AddItemToArray(values, v)) {
            cJSON_Delete(v);
            ok = 0;
            break;
        }
        ok = (subject ? cJSON_AddStringToObject(v, "subject", subject) != NULL
                      : cJSON_AddNullToObject(v, "subject") != NULL) &&
             cJSON_AddNumberToObject(v, "value", rounded(st->value, r->conf.metric)) &&
             cJSON_AddNumberToObject(v, "since", wall_s(st->since_wall_us));
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *rtb_alerts_rules_json(const rtb_alerts *a) {
    cJSON *root = cJSON_CreateObject();
    cJSON *rules = root ? cJSON_AddArrayToObject(root, "rules") : NULL;
    int ok = rules != NULL, firing_rules = 0;
    for (size_t i = 0; ok && i < a->nrules; i++) {
        int firing = 0;
        cJSON *o = rule_state_json(a, &a->rules[i], &firing);
        ok = o && cJSON_AddItemToArray(rules, o);
        firing_rules += firing;
    }
    if (!ok || !cJSON_AddNumberToObject(root, "firing", firing_rules)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
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

/* ---- Calls to Redis ------------------------------------------------------------------ */

static op *op_new(void) {
    return calloc(1, sizeof(op));
}

/* The call was sent: its callback will run; until then it is the set's. */
static void op_link(rtb_alerts *a, op *o) {
    o->a = a;
    o->next = a->ops;
    if (a->ops) a->ops->prev = o;
    a->ops = o;
}

/* Its callback ran (or it was never sent): out of the set's list (if the
 * set lives and had it), then freed. */
static void op_done(op *o) {
    rtb_alerts *a = o->a;
    if (a) {
        if (o->prev)
            o->prev->next = o->next;
        else
            a->ops = o->next;
        if (o->next) o->next->prev = o->prev;
    }
    rule_free(&o->rule);
    free(o->name);
    free(o);
}

/* ---- Reading alerts:rules ------------------------------------------------------------ */

static uint64_t fnv1a(uint64_t h, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
    return h;
}

/* Decode stored rule i into `out`; 0, or -1 with the reason in err. */
static int decode_stored(const store_str *name, const store_str *value, rule *out, char *err,
                         size_t errlen) {
    memset(out, 0, sizeof(*out));
    if (value->len == 0) {
        snprintf(err, errlen, "empty, or larger than %d bytes", PROTO_ALERT_MAX_BYTES);
        return -1;
    }
    if (proto_alert_decode(value->s, value->len, 1, &out->conf, err, errlen) != PROTO_OK) return -1;
    if (strlen(out->conf.name) != name->len || memcmp(out->conf.name, name->s, name->len) != 0) {
        snprintf(err, errlen, "its \"name\" is not its field's");
        rule_free(out);
        return -1;
    }
    return 0;
}

/* Make the `n` stored rules the set; `wall_us` stamps what resolves. */
static void apply_stored(rtb_alerts *a, const store_str *names, const store_str *values, size_t n,
                         int64_t wall_us) {
    rule *next = n ? calloc(n, sizeof(*next)) : NULL;
    if (n && !next) {
        rtb_log(PROTO_LOG_ERROR, "alerts: out of memory reading alerts:rules: keeping %zu rules",
                a->nrules);
        return;
    }
    size_t count = 0, bad = 0;
    uint64_t digest = 0xcbf29ce484222325ULL;
    char err[256], shown[72];
    for (size_t i = 0; i < n; i++) {
        rule *r = &next[count];
        if (decode_stored(&names[i], &values[i], r, err, sizeof(err)) != 0) {
            bad++;
            digest = fnv1a(fnv1a(digest, names[i].s, names[i].len), values[i].s, values[i].len);
            continue;
        }
        rule *old = find_rule(a, r->conf.name);
        if (old && strlen(old->json) == values[i].len &&
            memcmp(old->json, values[i].s, values[i].len) == 0) {
            rule_free(r);
            *r = *old;                    /* unchanged: its states go on */
            memset(old, 0, sizeof(*old)); /* no name: find_rule skips it, retiring too */
        } else if (!(r->json = cJSON_malloc(values[i].len + 1))) {
            rule_free(r);
            continue;
        } else {
            memcpy(r->json, values[i].s, values[i].len);
            r->json[values[i].len] = '\0';
        }
        count++;
    }
    /* What did not decode is told once, not at every read. */
    if (bad && digest != a->bad_digest)
        for (size_t i = 0; i < n; i++) {
            rule r;
            if (decode_stored(&names[i], &values[i], &r, err, sizeof(err)) == 0) {
                rule_free(&r);
                continue;
            }
            rtb_log(PROTO_LOG_WARN, "alerts:rules field %s: %s: not evaluated",
                    printable(names[i].s, names[i].len, shown), err);
        }
    a->bad_digest = bad ? digest : 0;
    for (size_t i = 0; i < a->nrules; i++)
        if (a->rules[i].conf.name) rule_retire(a, &a->rules[i], wall_us);
    free(a->rules);
    if (count) qsort(next, count, sizeof(*next), rule_cmp);
    a->rules = next;
    a->nrules = count;
}

static void read_rules(rtb_alerts *a);

static void on_read(void *arg, store_status st, long long count, const store_str *names,
                    const store_str *values, size_t n) {
    op *o = arg;
    rtb_alerts *a = o->a;
    op_done(o);
    if (!a) return;
    a->reading = 0;
    if (st == STORE_OK) {
        a->too_many = 0;
        apply_stored(a, names, values, n, rtb_wall_us());
    } else if (st == STORE_NIL && count != a->too_many) {
        a->too_many = count;
        rtb_log(PROTO_LOG_WARN,
                "alerts:rules holds %lld rules, more than %d: keeping the %zu rules read before",
                count, PROTO_ALERT_MAX_RULES, a->nrules);
    } else if (st == STORE_ERR) {
        rtb_log(PROTO_LOG_DEBUG, "alerts: reading alerts:rules failed; keeping %zu rules",
                a->nrules);
    }
    if (a->read_again) {
        a->read_again = 0;
        rtb_alerts_refresh(a);
    }
}

static void on_config_written(void *arg, store_status st, long long left) {
    op *o = arg;
    rtb_alerts *a = o->a;
    op_done(o);
    if (!a) return;
    a->reading = 0;
    if (st != STORE_OK) {
        rtb_log(PROTO_LOG_WARN, "alerts: the config's rules were not written to alerts:rules; "
                                "trying again at the next refresh");
        return;
    }
    a->config_written = 1;
    if (left > 0)
        rtb_log(PROTO_LOG_ERROR,
                "alerts: %lld of the config's rules not written: alerts:rules holds %d rules "
                "already",
                left, PROTO_ALERT_MAX_RULES);
    a->read_again = 0;
    read_rules(a);
}

/* The config's rules into alerts:rules, replacing those of the same names. */
static void write_config(rtb_alerts *a) {
    size_t n = a->cfg->nalerts;
    store_str *names = calloc(n, sizeof(*names)), *values = calloc(n, sizeof(*values));
    rule *enc = calloc(n, sizeof(*enc));
    op *o = names && values && enc ? op_new() : NULL;
    size_t done = 0;
    for (; o && done < n; done++) {
        if (proto_alert_conf_copy(&enc[done].conf, &a->cfg->alerts[done]) != 0 ||
            rule_encode(&enc[done]) != 0)
            break;
        names[done] = (store_str){enc[done].conf.name, strlen(enc[done].conf.name)};
        values[done] = (store_str){enc[done].json, strlen(enc[done].json)};
    }
    if (o && done == n &&
        store_alert_rules_put(a->store, names, values, n, PROTO_ALERT_MAX_RULES, on_config_written,
                              o) == 0) {
        op_link(a, o);
        a->reading = 1;
    } else if (o) {
        op_done(o);
    }
    for (size_t i = 0; i < n && enc; i++)
        rule_free(&enc[i]);
    free(enc);
    free(names);
    free(values);
}

static void read_rules(rtb_alerts *a) {
    op *o = op_new();
    if (o && store_alert_rules_load(a->store, PROTO_ALERT_MAX_RULES, PROTO_ALERT_MAX_BYTES, on_read,
                                    o) == 0) {
        op_link(a, o);
        a->reading = 1;
        return;
    }
    if (o) op_done(o);
}

void rtb_alerts_refresh(rtb_alerts *a) {
    if (a->reading) {
        a->read_again = 1;
        return;
    }
    if (!a->config_written && a->cfg->nalerts == 0) a->config_written = 1;
    if (a->config_written)
        read_rules(a);
    else
        write_config(a);
}

/* ---- Changes from the admin API ------------------------------------------------------- */

static void on_added(void *arg, store_status st, long long n) {
    op *o = arg;
    rtb_alerts *a = o->a;
    rtb_alerts_status res = st != STORE_OK ? RTB_ALERTS_UNAVAILABLE
                            : n == 1       ? RTB_ALERTS_OK
                            : n == 0       ? RTB_ALERTS_EXISTS
                                           : RTB_ALERTS_FULL;
    const char *json = o->rule.json; /* o's, or the set's once the rule moves there */
    /* Redis has it: evaluated from now on, as the read it announced will say. */
    if (a && res == RTB_ALERTS_OK) {
        rule *old = find_rule(a, o->rule.conf.name), *v = NULL;
        if (old) {
            rule_retire(a, old, rtb_wall_us());
            *old = o->rule;
        } else if ((v = realloc(a->rules, (a->nrules + 1) * sizeof(*v)))) {
            a->rules = v;
            a->rules[a->nrules++] = o->rule;
        }
        if (old || v) {
            o->rule = (rule){0};
            qsort(a->rules, a->nrules, sizeof(*a->rules), rule_cmp);
        }
    }
    o->fn(o->arg, res, res == RTB_ALERTS_OK ? json : NULL);
    op_done(o);
}

rtb_alerts_status rtb_alerts_add(rtb_alerts *a, const char *json, size_t len, rtb_alerts_fn *fn,
                                 void *arg, char *err, size_t errlen) {
    op *o = op_new();
    if (!o) return RTB_ALERTS_UNAVAILABLE;
    if (proto_alert_decode(json, len, 0, &o->rule.conf, err, errlen) != PROTO_OK) {
        op_done(o);
        return RTB_ALERTS_INVALID;
    }
    o->fn = fn;
    o->arg = arg;
    if (rule_encode(&o->rule) != 0 ||
        store_alert_rule_add(a->store, o->rule.conf.name, o->rule.json, strlen(o->rule.json),
                             PROTO_ALERT_MAX_RULES, on_added, o) != 0) {
        op_done(o);
        return RTB_ALERTS_UNAVAILABLE;
    }
    op_link(a, o);
    return RTB_ALERTS_OK;
}

static void on_removed(void *arg, store_status st, long long n) {
    op *o = arg;
    rtb_alerts *a = o->a;
    rtb_alerts_status res = st != STORE_OK ? RTB_ALERTS_UNAVAILABLE
                            : n == 1       ? RTB_ALERTS_OK
                                           : RTB_ALERTS_NOT_FOUND;
    rule *r = a && res == RTB_ALERTS_OK ? find_rule(a, o->name) : NULL;
    if (r) {
        rule_retire(a, r, rtb_wall_us());
        *r = a->rules[--a->nrules]; /* the last one fills the gap, then all are sorted */
        if (a->nrules) qsort(a->rules, a->nrules, sizeof(*a->rules), rule_cmp);
    }
    o->fn(o->arg, res, NULL);
    op_done(o);
}

rtb_alerts_status rtb_alerts_remove(rtb_alerts *a, const char *name, rtb_alerts_fn *fn, void *arg) {
    op *o = op_new();
    if (o) {
        o->fn = fn;
        o->arg = arg;
    }
    if (!o || !(o->name = strdup(name)) ||
        store_alert_rule_delete(a->store, name, on_removed, o) != 0) {
        if (o) op_done(o);
        return RTB_ALERTS_UNAVAILABLE;
    }
    op_link(a, o);
    return RTB_ALERTS_OK;
}

/* events.c -- ad events after the auction (SPEC 10): impressions, clicks,
 * conversions, counted in Redis hashes.
 *
 * An event arrives on rtb/events/{type}. Impressions are counted at once.
 * A click is remembered at once as the user's last click on that advertiser
 * (for attribution), then `SET click:{user}:{ad} 1 NX EX 3600` decides: set
 * means a new click (counted), not set a repeat within the hour (a
 * duplicate). A conversion looks up that last click: found, it is credited
 * to the clicked ad too (last_click); not found, only to the advertiser
 * (unattributed). Every Redis call is asynchronous; each event that waits
 * for an answer owns a small record that its one callback frees. */
#include "rtb/events.h"

#include "rtb/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_PREFIX "rtb/events/"
#define CLICK_DEDUP_S 3600
#define LAST_CLICK_TTL_S (30L * 86400) /* attribution window: 30 days */
#define KEY_MAX 1200

struct rtb_events {
    store *store;
    rtb_ledger *ledger;
    const rtb_registry *reg;
    const proto_config *cfg;
    rtb_stats *stats;
};

typedef struct pending_event {
    rtb_events *e;
    rtb_bidder *b; /* its advertiser: lives as long as the server */
    proto_event ev;
} pending_event;

rtb_events *rtb_events_new(store *st, rtb_ledger *ledger, const rtb_registry *reg,
                           const proto_config *cfg, rtb_stats *stats) {
    rtb_events *e = calloc(1, sizeof(*e));
    if (!e) return NULL;
    e->store = st;
    e->ledger = ledger;
    e->reg = reg;
    e->cfg = cfg;
    e->stats = stats;
    return e;
}

void rtb_events_free(rtb_events *e) {
    free(e);
}

int rtb_events_topic(const char *topic) {
    return strncmp(topic, EVENTS_PREFIX, sizeof(EVENTS_PREFIX) - 1) == 0;
}

/* HINCRBY field on stats:advertiser:{adv} and, when `ad` is not empty,
 * stats:ad:{ad}. */
static void count(rtb_events *e, const char *adv, const char *ad, const char *field) {
    store_hincrby(e->store, "stats:advertiser:", adv, field, 1);
    if (ad && *ad) store_count_ad(e->store, ad, field, 1);
}

/* `id` into `out` with each ':' written "%3A": '%' is not in the id rule
 * (SPEC 2), so the escape cannot be confused with an id. */
static size_t put_id(char *out, const char *id) {
    size_t n = 0;
    for (; *id; id++) {
        if (*id == ':') {
            memcpy(out + n, "%3A", 3);
            n += 3;
        } else {
            out[n++] = *id;
        }
    }
    return n;
}

/* {prefix}{a}:{b}, the SPEC 10 keys of two ids. Ids may hold ':', so one
 * pair could spell another ("a:b" + "c" against "a" + "b:c"): each ':'
 * inside an id is escaped (put_id), and ids without one keep the SPEC's
 * form. `out` holds KEY_MAX bytes: ids are at most 128 characters. */
static void pair_key(char *out, size_t cap, const char *prefix, const char *a, const char *b) {
    size_t n = strlen(prefix);
    if (cap < n + 2 * 3 * PROTO_ID_MAX_CHARS + 2) {
        out[0] = '\0';
        return;
    }
    memcpy(out, prefix, n);
    n += put_id(out + n, a);
    out[n++] = ':';
    n += put_id(out + n, b);
    out[n] = '\0';
}

static void on_click(void *arg, store_status st, const char *value, size_t len) {
    (void)value;
    (void)len;
    pending_event *p = arg;
    rtb_events *e = p->e;
    const proto_event *ev = &p->ev;
    if (st == STORE_OK) {
        e->stats->clicks++;
        p->b->stats.clicks++;
        count(e, ev->advertiser_id, ev->ad_id, "clicks");
    } else if (st == STORE_NIL) {
        e->stats->duplicate_clicks++;
        count(e, ev->advertiser_id, ev->ad_id, "duplicate_clicks");
    } else {
        e->stats->events_dropped++;
    }
    free(p);
}

static void on_last_click(void *arg, store_status st, const char *value, size_t len) {
    pending_event *p = arg;
    rtb_events *e = p->e;
    const proto_event *ev = &p->ev;
    if (st == STORE_ERR) {
        e->stats->events_dropped++;
        free(p);
        return;
    }
    e->stats->conversions++;
    p->b->stats.conversions++;
    store_hincrby(e->store, "stats:advertiser:", ev->advertiser_id, "conversions", 1);
    if (st == STORE_OK && len > 0 && len < PROTO_ID_BYTES) {
        char ad[PROTO_ID_BYTES];
        memcpy(ad, value, len);
        ad[len] = '\0';
        e->stats->conversions_attributed++;
        store_count_ad(e->store, ad, "conversions", 1);
    } else {
        store_hincrby(e->store, "stats:advertiser:", ev->advertiser_id, "conversions_unattributed",
                      1);
    }
    free(p);
}

void rtb_events_on_message(rtb_events *e, const char *topic, const char *payload, size_t len) {
    pending_event *p = malloc(sizeof(*p));
    if (!p) {
        e->stats->events_dropped++;
        return;
    }
    p->e = e;
    char err[256];
    const char *type = topic + sizeof(EVENTS_PREFIX) - 1;
    proto_err rc_decode = proto_event_decode(
        type, payload, len, (size_t)e->cfg->limits.max_request_bytes, &p->ev, err, sizeof(err));
    /* Counters are keyed by advertiser: only those the exchange knows get
     * one, so a publisher cannot grow the keyspace (SPEC 15). */
    if (rc_decode == PROTO_OK && !(p->b = rtb_registry_find(e->reg, p->ev.advertiser_id))) {
        snprintf(err, sizeof(err), "advertiser_id: %.128s is not in the registry",
                 p->ev.advertiser_id);
        rc_decode = PROTO_ERR_FIELD;
    }
    if (rc_decode != PROTO_OK) {
        e->stats->events_invalid++;
        rtb_log(PROTO_LOG_DEBUG, "event on %s refused: %s", topic, err);
        free(p);
        return;
    }
    const proto_event *ev = &p->ev;
    int rc = 0;
    char key[KEY_MAX];
    switch (ev->type) {
    case PROTO_EVENT_IMPRESSION:
        e->stats->impressions++;
        p->b->stats.impressions++;
        count(e, ev->advertiser_id, ev->ad_id, "impressions");
        if (e->ledger) rtb_ledger_on_impression(e->ledger, ev->request_id, ev->ad_id);
        free(p);
        return;
    case PROTO_EVENT_CLICK:
        /* The last click is recorded at once, before the dedup answer: a
         * conversion right behind the click (same connection, so Redis sees
         * it after this SET) must find it. A repeat click is still the
         * user's last click on that ad. */
        pair_key(key, sizeof(key), "last_click:", ev->user_id, ev->advertiser_id);
        store_set(e->store, key, ev->ad_id, LAST_CLICK_TTL_S);
        pair_key(key, sizeof(key), "click:", ev->user_id, ev->ad_id);
        rc = store_set_nx(e->store, key, "1", CLICK_DEDUP_S, on_click, p);
        break;
    case PROTO_EVENT_CONVERSION:
        pair_key(key, sizeof(key), "last_click:", ev->user_id, ev->advertiser_id);
        rc = store_get(e->store, key, on_last_click, p);
        break;
    }
    if (rc != 0) { /* Redis down: the event cannot be deduplicated or attributed */
        e->stats->events_dropped++;
        free(p);
    }
}

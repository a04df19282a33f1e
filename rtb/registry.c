/* registry.c -- the set of advertisers and the choice of bidders.
 *
 * Redis entries come first; config `bidders` add those Redis does not have.
 * The eligible scratch array is as long as the set, so choosing bidders for
 * an auction allocates nothing.
 *
 * Matching is linear in the number of interests (SPEC 15): the user's
 * interests go once into a hash set (SipHash under the registry's secret
 * key, so a publisher cannot pick interests that collide), and each
 * advertiser's interests, hashed once when it was applied, are looked up
 * in it. The set is the registry's and is reused auction after auction. */
#include "rtb/registry.h"

#include "rtb/log.h"

#include <stdlib.h>
#include <string.h>

struct rtb_registry {
    const proto_config *cfg;
    rtb_http *http;
    rtb_health_conf health; /* every bidder's, from cfg->health */
    rtb_bidder **bidders;   /* every advertiser ever seen; `active` marks */
    size_t nbidders, capbidders;
    rtb_bidder **eligible; /* scratch for rtb_registry_choose, capbidders long */
    uint64_t rotation;
    rtb_hash_key key;  /* every interest hash, the bidders' too */
    rtb_hash_set user; /* scratch for rtb_registry_choose: the user's interests */
};

/* Items of a cJSON array (NULL: 0): what cJSON_ArrayForEach walks. */
static size_t count_items(const cJSON *a) {
    size_t n = 0;
    for (const cJSON *it = a ? a->child : NULL; it; it = it->next)
        n++;
    return n;
}

rtb_registry *rtb_registry_new(const proto_config *cfg, rtb_http *http) {
    rtb_registry *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->cfg = cfg;
    r->http = http;
    r->health = (rtb_health_conf){
        .window_s = cfg->health.window_s,
        .min_calls = cfg->health.min_calls,
        .min_share = cfg->health.min_share,
        .tmax_us = (int64_t)cfg->auction.tmax_ms * 1000,
        .dry_run = cfg->health.dry_run,
    };
    rtb_hash_set_init(&r->user);
    /* Room for the most a user can have: a stored profile's and a request's
     * interests (each cut to PROTO_INTERESTS_MAX), or the default profile's. */
    const cJSON *def = cJSON_GetObjectItemCaseSensitive(cfg->profiles.default_profile, "interests");
    size_t most = count_items(def) > PROTO_INTERESTS_MAX ? count_items(def) : PROTO_INTERESTS_MAX;
    if (rtb_hash_key_init(&r->key) != 0 ||
        rtb_hash_set_reset(&r->user, most + PROTO_INTERESTS_MAX) != 0) {
        rtb_hash_set_free(&r->user);
        free(r);
        return NULL;
    }
    return r;
}

void rtb_registry_free(rtb_registry *r) {
    if (!r) return;
    for (size_t i = 0; i < r->nbidders; i++)
        rtb_bidder_free(r->bidders[i]);
    free(r->bidders);
    free(r->eligible);
    rtb_hash_set_free(&r->user);
    free(r);
}

size_t rtb_registry_count(const rtb_registry *r) {
    return r->nbidders;
}

rtb_bidder *rtb_registry_at(const rtb_registry *r, size_t index) {
    return r->bidders[index];
}

size_t rtb_registry_active(const rtb_registry *r) {
    size_t active = 0;
    for (size_t i = 0; i < r->nbidders; i++)
        active += (size_t)r->bidders[i]->active;
    return active;
}

static rtb_bidder *find_bidder(const rtb_registry *r, const char *id) {
    for (size_t i = 0; i < r->nbidders; i++)
        if (strcmp(r->bidders[i]->id, id) == 0) return r->bidders[i];
    return NULL;
}

rtb_bidder *rtb_registry_find(const rtb_registry *r, const char *id) {
    rtb_bidder *b = find_bidder(r, id);
    return b && b->active ? b : NULL;
}

/* Make `conf` active: update the advertiser of that id, or add it. */
static void apply_bidder(rtb_registry *r, const proto_bidder_conf *conf) {
    rtb_bidder *b = find_bidder(r, conf->id);
    if (b) {
        if (rtb_bidder_update(b, conf) != 0) {
            rtb_log(PROTO_LOG_WARN, "advertiser %s: cannot use endpoint %s: skipped", conf->id,
                    conf->endpoint);
            return;
        }
        b->active = 1;
        return;
    }
    if (r->nbidders == r->capbidders) {
        size_t cap = r->capbidders ? r->capbidders * 2 : 16;
        rtb_bidder **v = realloc(r->bidders, cap * sizeof(*v));
        if (v) r->bidders = v;
        rtb_bidder **e = v ? realloc(r->eligible, cap * sizeof(*e)) : NULL;
        if (e) r->eligible = e;
        if (!v || !e) {
            rtb_log(PROTO_LOG_ERROR, "advertiser %s: out of memory: skipped", conf->id);
            return;
        }
        r->capbidders = cap;
    }
    b = rtb_bidder_new(conf, r->http, (size_t)r->cfg->limits.max_response_bytes, &r->health,
                       &r->key);
    if (!b) {
        rtb_log(PROTO_LOG_WARN, "advertiser %s: cannot use endpoint %s: skipped", conf->id,
                conf->endpoint);
        return;
    }
    r->bidders[r->nbidders++] = b;
    rtb_log(PROTO_LOG_INFO, "advertiser %s added: %s", b->id, b->endpoint);
}

void rtb_registry_apply(rtb_registry *r, const store_entry *entries, size_t n) {
    for (size_t i = 0; i < r->nbidders; i++)
        r->bidders[i]->active = 0;
    for (size_t i = 0; i < n; i++) {
        proto_bidder_conf conf;
        char err[256];
        if (proto_advertiser_decode(entries[i].id, entries[i].value, entries[i].len, &conf, err,
                                    sizeof(err)) != PROTO_OK) {
            rtb_log(PROTO_LOG_WARN, "advertiser:targeting:%s skipped: %s", entries[i].id, err);
            continue;
        }
        apply_bidder(r, &conf);
        proto_bidder_conf_free(&conf);
    }
    const proto_config *cfg = r->cfg;
    for (size_t i = 0; i < cfg->nbidders; i++) {
        rtb_bidder *b = find_bidder(r, cfg->bidders[i].id);
        if (!b || !b->active) apply_bidder(r, &cfg->bidders[i]);
    }
    rtb_log(PROTO_LOG_DEBUG, "registry: %zu advertisers active", rtb_registry_active(r));
}

/* Add the strings of `a` (NULL: none) to the user's set. */
static void add_interests(rtb_registry *r, const cJSON *a) {
    for (const cJSON *it = a ? a->child : NULL; it; it = it->next)
        if (cJSON_IsString(it))
            rtb_hash_set_add(&r->user, it->valuestring, rtb_hash_str(&r->key, it->valuestring));
}

size_t rtb_registry_choose(rtb_registry *r, const cJSON *user, const cJSON *context,
                           rtb_bidder **chosen, size_t max, size_t room) {
    if (rtb_hash_set_reset(&r->user, count_items(user) + count_items(context)) != 0) {
        rtb_log(PROTO_LOG_ERROR, "out of memory matching interests: no bidder chosen");
        return 0;
    }
    add_interests(r, user);
    add_interests(r, context);
    size_t n = 0;
    for (size_t i = 0; i < r->nbidders; i++) {
        rtb_bidder *b = r->bidders[i];
        if (b->active && rtb_bidder_matches(b, &r->user)) r->eligible[n++] = b;
    }
    size_t put = n < room ? n : room;
    if (n <= max) {
        if (put) memcpy(chosen, r->eligible, put * sizeof(*chosen));
        return put;
    }
    size_t start = (size_t)(r->rotation % n);
    for (size_t i = 0; i < put; i++)
        chosen[i] = r->eligible[(start + i) % n];
    return put;
}

void rtb_registry_passed(rtb_registry *r, size_t places) {
    r->rotation += places;
}

/* bidrequest.c -- the OpenRTB 2.6 BidRequest the exchange sends to each
 * bidder (SPEC 5, 17).
 *
 * The one idea: it is written field by field into a proto_buf, straight
 * from the decoded request (no cJSON tree to build and free per bidder, and
 * nothing re-read from the publisher's JSON); only ext.user_context, which
 * we forward without looking inside, is printed by cJSON. Every optional
 * field goes out only when the publisher gave it; what a bidder needs to bid
 * at all (a banner or video per imp, a site or app) comes from the config
 * when the request has none. Numbers are printed from integers (money from
 * micros), so 2.11 goes out as 2.11. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "proto/internal.h"
#include "proto/proto.h"

/* Each writer appends with `rc |=`, which keeps the first failure (-1,
 * memory); appends after a failure are harmless and the caller drops the
 * buffer. */

/* A set of borrowed strings (open addressing, linear probing): keywords are
 * deduplicated in linear time. A request and a stored profile carry at most
 * 64 interests each, but the config's default profile has no such cap. */
typedef struct str_set {
    const char **slot;
    size_t mask;
} str_set;

static int set_init(str_set *s, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    s->slot = calloc(cap, sizeof *s->slot);
    s->mask = cap - 1;
    return s->slot != NULL ? 0 : -1;
}

/* 1 when `key` was added, 0 when it was already there. */
static int set_add(str_set *s, const char *key) {
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * UINT64_C(1099511628211);
    for (size_t i = (size_t)h & s->mask;; i = (i + 1) & s->mask) {
        if (s->slot[i] == NULL) {
            s->slot[i] = key;
            return 1;
        }
        if (strcmp(s->slot[i], key) == 0) return 0;
    }
}

static size_t array_len(const cJSON *a) {
    return cJSON_IsArray(a) ? (size_t)cJSON_GetArraySize(a) : 0;
}

/* Append each string of `list` not yet in `seen` to `kw`, comma-separated. */
static int add_keywords(proto_buf *kw, str_set *seen, const cJSON *list) {
    const cJSON *item = NULL;
    if (!cJSON_IsArray(list)) return 0;
    cJSON_ArrayForEach(item, list) {
        const char *s = proto_json_string(item);
        if (s == NULL || *s == '\0' || !set_add(seen, s)) continue;
        if ((kw->len > 0 && proto_buf_puts(kw, ",") != 0) || proto_buf_puts(kw, s) != 0) return -1;
    }
    return 0;
}

/* The keywords as one JSON string: profile interests, then the request's
 * user_context.interests, each once, in that order. */
static int put_keywords(proto_buf *out, const cJSON *profile_interests,
                        const cJSON *context_interests) {
    str_set seen;
    if (set_init(&seen, array_len(profile_interests) + array_len(context_interests)) != 0)
        return -1;
    proto_buf kw;
    proto_buf_init(&kw);
    int rc = add_keywords(&kw, &seen, profile_interests) != 0 ||
             add_keywords(&kw, &seen, context_interests) != 0 ||
             proto_buf_json_string(out, kw.data) != 0;
    proto_buf_free(&kw);
    free(seen.slot);
    return rc ? -1 : 0;
}

/* The shortest of %.15g / %.17g that reads back as `v` (0.7, not
 * 0.69999999999999996). */
static int put_double(proto_buf *out, double v) {
    char tmp[32];
    if (!isfinite(v)) v = 0.0;
    /* The usual case, a score of at most 6 decimals (0.7, 0.25): its
     * micros read back exactly, and their shortest decimal is the
     * shortest text of v too -- no printf on the hot path. */
    if (v >= 0 && v <= 1e6) {
        int64_t micros = (int64_t)llround(v * 1e6);
        if ((double)micros / 1e6 == v) {
            auction_micros_format(micros, tmp);
            return proto_buf_puts(out, tmp);
        }
    }
    snprintf(tmp, sizeof tmp, "%.15g", v);
    if (strtod(tmp, NULL) != v) snprintf(tmp, sizeof tmp, "%.17g", v);
    return proto_buf_puts(out, tmp);
}

static int put_user_context(proto_buf *out, const cJSON *user_context) {
    if (!cJSON_IsObject(user_context)) return proto_buf_puts(out, "{}");
    char *text = cJSON_PrintUnformatted(user_context);
    if (text == NULL) return -1;
    int rc = proto_buf_puts(out, text);
    cJSON_free(text);
    return rc;
}

/* ---- Optional fields ------------------------------------------------------ */

/* Start a member of an object: `key` is its quoted name and colon,
 * K("id") = "\"id\":", written after a comma unless `*first` (the object
 * is still empty). */
#define K(name) "\"" name "\":"
static int put_key(proto_buf *out, int *first, const char *key) {
    int rc = *first ? 0 : proto_buf_append(out, ",", 1);
    *first = 0;
    return rc | proto_buf_puts(out, key);
}

/* key "value" when `value` is set; nothing when NULL. */
static int put_text(proto_buf *out, int *first, const char *key, const char *value) {
    if (value == NULL) return 0;
    return put_key(out, first, key) | proto_buf_json_string(out, value);
}

/* key n when `value` is not PROTO_ABSENT (integers here are >= 0). */
static int put_int(proto_buf *out, int *first, const char *key, long value) {
    if (value == PROTO_ABSENT) return 0;
    return put_key(out, first, key) | proto_buf_uint(out, value < 0 ? 0 : (uint64_t)value);
}

/* ["a","b"] */
static int put_strings(proto_buf *out, const char *const *list, size_t n) {
    int rc = proto_buf_puts(out, "[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0) rc |= proto_buf_puts(out, ",");
        rc |= proto_buf_json_string(out, list[i]);
    }
    return rc | proto_buf_puts(out, "]");
}

/* "publisher":{"id","name"} when either is set (OpenRTB 2.6 3.2.15). */
static int put_publisher(proto_buf *out, int *first, const proto_publisher *p) {
    if (p->id == NULL && p->name == NULL) return 0;
    int inner = 1;
    int rc = put_key(out, first, K("publisher") "{");
    rc |= put_text(out, &inner, K("id"), p->id);
    rc |= put_text(out, &inner, K("name"), p->name);
    return rc | proto_buf_puts(out, "}");
}

/* ,"site":{...} (OpenRTB 2.6 3.2.13). */
static int put_site(proto_buf *out, const proto_site *s) {
    int first = 1;
    int rc = proto_buf_puts(out, ",\"site\":{");
    rc |= put_text(out, &first, K("id"), s->id);
    rc |= put_text(out, &first, K("domain"), s->domain);
    rc |= put_text(out, &first, K("page"), s->page);
    rc |= put_publisher(out, &first, &s->publisher);
    return rc | proto_buf_puts(out, "}");
}

/* ,"app":{...} (OpenRTB 2.6 3.2.14). */
static int put_app(proto_buf *out, const proto_app *a) {
    int first = 1;
    int rc = proto_buf_puts(out, ",\"app\":{");
    rc |= put_text(out, &first, K("id"), a->id);
    rc |= put_text(out, &first, K("bundle"), a->bundle);
    rc |= put_text(out, &first, K("storeurl"), a->storeurl);
    rc |= put_publisher(out, &first, &a->publisher);
    return rc | proto_buf_puts(out, "}");
}

/* ,"device":{...} (OpenRTB 2.6 3.2.18): the address as `ip` (IPv4) or
 * `ipv6`, the location as geo (3.2.19). */
static int put_device(proto_buf *out, const proto_device *d) {
    int first = 1;
    int rc = proto_buf_puts(out, ",\"device\":{");
    rc |= put_text(out, &first, K("ua"), d->ua);
    rc |= put_text(out, &first, d->ip_is_v6 ? K("ipv6") : K("ip"), d->ip);
    rc |= put_int(out, &first, K("devicetype"), d->devicetype);
    rc |= put_text(out, &first, K("os"), d->os);
    rc |= put_text(out, &first, K("language"), d->language);
    if (d->geo_country != NULL || d->geo_region != NULL) {
        int inner = 1;
        rc |= put_key(out, &first, K("geo") "{");
        rc |= put_text(out, &inner, K("country"), d->geo_country);
        rc |= put_text(out, &inner, K("region"), d->geo_region);
        rc |= proto_buf_puts(out, "}");
    }
    return rc | proto_buf_puts(out, "}");
}

/* ,"regs":{...} (OpenRTB 2.6 3.2.3). */
static int put_regs(proto_buf *out, const proto_regs *r) {
    int first = 1;
    int rc = proto_buf_puts(out, ",\"regs\":{");
    rc |= put_int(out, &first, K("coppa"), r->coppa);
    rc |= put_int(out, &first, K("gdpr"), r->gdpr);
    rc |= put_text(out, &first, K("us_privacy"), r->us_privacy);
    return rc | proto_buf_puts(out, "}");
}

/* ---- Imps ------------------------------------------------------------------- */

/* {"w":300,"h":250}, in one append (every imp has one). */
static int put_size(proto_buf *out, long w, long h) {
    char tmp[2 * AUCTION_MICROS_STRLEN + 16];
    size_t n = 0;
    memcpy(tmp, "{\"w\":", 5);
    n = 5 + auction_decimal_format(w, 0, tmp + 5);
    memcpy(tmp + n, ",\"h\":", 5);
    n += 5;
    n += auction_decimal_format(h, 0, tmp + n);
    tmp[n++] = '}';
    return proto_buf_append(out, tmp, n);
}

/* ,"banner":{...} (OpenRTB 2.6 3.2.6, with 3.2.10 Format). */
static int put_banner(proto_buf *out, const proto_banner *b) {
    if (b->nformat == 0) return proto_buf_puts(out, ",\"banner\":") | put_size(out, b->w, b->h);
    int rc = proto_buf_puts(out, ",\"banner\":{\"format\":[");
    for (size_t i = 0; i < b->nformat; i++) {
        if (i > 0) rc |= proto_buf_puts(out, ",");
        rc |= put_size(out, b->format[i].w, b->format[i].h);
    }
    return rc | proto_buf_puts(out, "]}");
}

/* ,"video":{...} (OpenRTB 2.6 3.2.7). */
static int put_video(proto_buf *out, const proto_video *v) {
    int first = 0; /* mimes comes first, always */
    int rc = proto_buf_puts(out, ",\"video\":{\"mimes\":");
    rc |= put_strings(out, v->mimes, v->nmimes);
    rc |= put_int(out, &first, K("w"), v->w);
    rc |= put_int(out, &first, K("h"), v->h);
    rc |= put_int(out, &first, K("minduration"), v->minduration);
    rc |= put_int(out, &first, K("maxduration"), v->maxduration);
    return rc | proto_buf_puts(out, "}");
}

/* ,"pmp":{...} (OpenRTB 2.6 3.2.11, 3.2.12): each deal's floor is in the
 * request's currency, said again in its bidfloorcur. */
static int put_pmp(proto_buf *out, const proto_pmp *p, const char *currency) {
    int rc = proto_buf_puts(out, ",\"pmp\":{\"private_auction\":");
    rc |= proto_buf_uint(out, p->private_auction ? 1 : 0);
    if (p->ndeals > 0) rc |= proto_buf_puts(out, ",\"deals\":[");
    for (size_t i = 0; i < p->ndeals; i++) {
        const proto_deal *d = &p->deals[i];
        rc |= proto_buf_puts(out, i > 0 ? ",{\"id\":" : "{\"id\":");
        rc |= proto_buf_json_string(out, d->id);
        rc |= proto_buf_puts(out, ",\"bidfloor\":");
        rc |= proto_buf_micros(out, d->bidfloor_micros);
        rc |= proto_buf_puts(out, ",\"bidfloorcur\":");
        rc |= proto_buf_json_string(out, currency);
        if (d->nwseat > 0) {
            rc |= proto_buf_puts(out, ",\"wseat\":");
            rc |= put_strings(out, d->wseat, d->nwseat);
        }
        rc |= proto_buf_puts(out, "}");
    }
    if (p->ndeals > 0) rc |= proto_buf_puts(out, "]");
    return rc | proto_buf_puts(out, "}");
}

/* One imp (OpenRTB 2.6 3.2.4). */
static int put_imp(proto_buf *out, const proto_imp *imp, const char *currency,
                   const proto_config *cfg) {
    int rc = proto_buf_puts(out, "{\"id\":");
    rc |= proto_buf_json_string(out, imp->id);
    rc |= proto_buf_puts(out, ",\"tagid\":");
    rc |= proto_buf_json_string(out, imp->tagid);
    rc |= proto_buf_puts(out, ",\"bidfloor\":");
    rc |= proto_buf_micros(out, imp->floor_micros);
    rc |= proto_buf_puts(out, ",\"bidfloorcur\":");
    rc |= proto_buf_json_string(out, currency);
    if (imp->banner != NULL)
        rc |= put_banner(out, imp->banner);
    else if (imp->default_banner)
        rc |= proto_buf_puts(out, ",\"banner\":") |
              put_size(out, cfg->auction.default_banner.w, cfg->auction.default_banner.h);
    if (imp->video != NULL) rc |= put_video(out, imp->video);
    if (imp->pmp != NULL) rc |= put_pmp(out, imp->pmp, currency);
    return rc | proto_buf_puts(out, "}");
}

/* ---- The request -------------------------------------------------------------- */

int proto_openrtb_request_encode(const proto_bid_request *req, const proto_profile *profile,
                                 const proto_config *cfg, int tmax_ms, proto_buf *out) {
    if (req == NULL || cfg == NULL) return -1;
    const char *currency = req->cur[0] != '\0'             ? req->cur
                           : cfg->auction.currency != NULL ? cfg->auction.currency
                                                           : "USD";
    const cJSON *interests = profile != NULL ? profile->interests : NULL;
    int rc = 0;
    rc |= proto_buf_puts(out, "{\"id\":");
    rc |= proto_buf_json_string(out, req->request_id);
    rc |= proto_buf_puts(out, ",\"at\":");
    rc |= proto_buf_uint(out, (uint64_t)cfg->auction.type);
    rc |= proto_buf_puts(out, ",\"tmax\":");
    rc |= proto_buf_uint(out, tmax_ms < 1 ? 1 : (uint64_t)tmax_ms);
    rc |= proto_buf_puts(out, ",\"cur\":[");
    rc |= proto_buf_json_string(out, currency);
    rc |= proto_buf_puts(out, "],\"imp\":[");
    for (size_t i = 0; i < req->nimps; i++) {
        if (i > 0) rc |= proto_buf_puts(out, ",");
        rc |= put_imp(out, &req->imps[i], currency, cfg);
    }
    rc |= proto_buf_puts(out, "]");
    if (req->has_app) {
        rc |= put_app(out, &req->app);
    } else if (req->has_site) {
        rc |= put_site(out, &req->site);
    } else {
        const proto_site def = {
            cfg->auction.default_site.id,
            cfg->auction.default_site.domain,
            cfg->auction.default_site.page,
            {cfg->auction.default_site.publisher_id, cfg->auction.default_site.publisher_name},
        };
        rc |= put_site(out, &def);
    }
    if (req->has_device) rc |= put_device(out, &req->device);
    if (req->has_regs) rc |= put_regs(out, &req->regs);
    rc |= proto_buf_puts(out, ",\"user\":{\"id\":");
    rc |= proto_buf_json_string(out, req->user_id);
    rc |= proto_buf_puts(out, ",\"keywords\":");
    rc |= put_keywords(out, interests, req->context_interests);
    if (req->user_consent != NULL) {
        rc |= proto_buf_puts(out, ",\"consent\":");
        rc |= proto_buf_json_string(out, req->user_consent);
    }
    rc |= proto_buf_puts(out, ",\"ext\":{\"ltv_score\":");
    rc |= put_double(out, profile != NULL ? profile->ltv_score : 0.0);
    rc |= proto_buf_puts(out, "}},\"ext\":{\"user_context\":");
    rc |= put_user_context(out, req->user_context);
    rc |= proto_buf_puts(out, "}}");
    return rc;
}

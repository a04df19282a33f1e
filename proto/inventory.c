/* inventory.c -- what a bid request says about what it sells (SPEC 17): its
 * impressions (`imps`, or the one slot of the SPEC 2 form), the site or app,
 * the device, the regulations and the currency.
 *
 * The one idea: check and copy in one walk, into one block sized before the
 * walk. A first pass counts what the imps will need (their banners, videos,
 * deals and the arrays inside, each count cut at its bound), one malloc
 * makes room for all of it, and the walk that checks each rule writes the
 * decoded imp into that room as it goes; a bound is checked before anything
 * is written under it, so the walk never takes more than was counted.
 * Strings are not copied: they point into the request's parse tree, which
 * lives as long as the request. The first broken rule stops the walk, with
 * its key path ("imps[2].pmp.deals[0].id: required"). */
#include <arpa/inet.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "proto/internal.h"
#include "proto/proto.h"

#define FLOOR_RULE "must be a finite number between 0 and 1000000"
/* Key paths: "imps[15].pmp.deals[15].wseat" and the like, with room to
 * spare for the compiler's worst case of each %zu. */
#define PATH_BYTES 160

/* Present and not JSON null: optional fields may be sent as null. */
static int given(const cJSON *v) {
    return v != NULL && !cJSON_IsNull(v);
}

/* ---- The block ---------------------------------------------------------- */

#define ALIGN_UP(n) (((n) + 15) & ~(size_t)15)

typedef struct arena {
    char *base;
    size_t used, cap;
} arena;

/* `n` bytes of the block (16-aligned), or NULL when the count was short,
 * which the walk's order of checks rules out. */
static void *take(arena *a, size_t n) {
    n = ALIGN_UP(n);
    if (n > a->cap - a->used) return NULL;
    void *p = a->base + a->used;
    a->used += n;
    return p;
}

/* Entries of the array obj[key], counted up to PROTO_LIST_MAX; 0 when it is
 * not an array (the walk then refuses it before taking any room). */
static size_t list_len(const cJSON *obj, const char *key) {
    const cJSON *a = proto_json_get(obj, key);
    size_t n = 0;
    if (!cJSON_IsArray(a)) return 0;
    for (const cJSON *c = a->child; c != NULL && n < PROTO_LIST_MAX; c = c->next)
        n++;
    return n;
}

/* The most one imp object can take of the block. */
static size_t imp_bytes(const cJSON *imp) {
    const cJSON *banner = proto_json_get(imp, "banner"), *video = proto_json_get(imp, "video");
    const cJSON *pmp = proto_json_get(imp, "pmp");
    size_t ndeals = list_len(pmp, "deals"), i = 0;
    size_t n = ALIGN_UP(sizeof(proto_banner)) +
               ALIGN_UP(list_len(banner, "format") * sizeof(proto_format)) +
               ALIGN_UP(sizeof(proto_video)) +
               ALIGN_UP(list_len(video, "mimes") * sizeof(const char *)) +
               ALIGN_UP(sizeof(proto_pmp)) + ALIGN_UP(ndeals * sizeof(proto_deal));
    const cJSON *deals = proto_json_get(pmp, "deals");
    for (const cJSON *d = cJSON_IsArray(deals) ? deals->child : NULL; d != NULL && i < ndeals;
         d = d->next, i++)
        n += ALIGN_UP(list_len(d, "wseat") * sizeof(const char *));
    return n;
}

/* ---- Field readers -------------------------------------------------------- */

/* dst (PATH_BYTES) = "path.key", or "path.key[index]" when index >= 0. */
static void sub_path(char *dst, const char *path, const char *key, long index) {
    int n = index >= 0 ? snprintf(dst, PATH_BYTES, "%s.%s[%ld]", path, key, index)
                       : snprintf(dst, PATH_BYTES, "%s.%s", path, key);
    if (n < 0 || n >= PATH_BYTES) dst[PATH_BYTES - 1] = '\0'; /* never, with our paths */
}

/* Each reads obj[key]; messages name "path.key" ("path" is never empty). */

/* An optional object: *out is it, or NULL when absent. */
static proto_err object_field(const cJSON *obj, const char *path, const char *key,
                              const cJSON **out, char *err, size_t errlen) {
    const cJSON *v = proto_json_get(obj, key);
    *out = NULL;
    if (!given(v)) return PROTO_OK;
    if (!cJSON_IsObject(v))
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s.%s: must be an object", path, key);
    *out = v;
    return PROTO_OK;
}

/* 1 when `s` has min..max characters. */
static int chars_ok(const char *s, size_t min, size_t max) {
    size_t n = proto_utf8_chars(s, max);
    return n >= min && n <= max;
}

/* A string of `min`..`max` characters: *out borrows it, or is NULL when it
 * is absent and not `required`. */
static proto_err text_field(const cJSON *obj, const char *path, const char *key, int required,
                            size_t min, size_t max, const char **out, char *err, size_t errlen) {
    const cJSON *v = proto_json_get(obj, key);
    *out = NULL;
    if (!given(v)) {
        if (!required) return PROTO_OK;
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s.%s: required", path, key);
    }
    const char *s = proto_json_string(v);
    if (s == NULL || !chars_ok(s, min, max)) {
        if (min == 0)
            return proto_fail(err, errlen, PROTO_ERR_FIELD,
                              "%s.%s: must be a string of at most %zu characters", path, key, max);
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "%s.%s: must be a string of %zu-%zu characters", path, key, min, max);
    }
    *out = s;
    return PROTO_OK;
}

/* An optional string of at most PROTO_TEXT_MAX_CHARS characters. */
static proto_err text(const cJSON *obj, const char *path, const char *key, const char **out,
                      char *err, size_t errlen) {
    return text_field(obj, path, key, 0, 0, PROTO_TEXT_MAX_CHARS, out, err, errlen);
}

/* An integer in lo..hi (a JSON number with no fraction): *out, or
 * PROTO_ABSENT when absent and not `required`. */
static proto_err int_field(const cJSON *obj, const char *path, const char *key, int required,
                           int lo, int hi, int *out, char *err, size_t errlen) {
    const cJSON *v = proto_json_get(obj, key);
    *out = PROTO_ABSENT;
    if (!given(v)) {
        if (!required) return PROTO_OK;
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s.%s: required", path, key);
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    /* The range first: NaN and infinities fail it. */
    if (!(d >= lo && d <= hi) || d != floor(d)) {
        if (lo == 0 && hi == 1)
            return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s.%s: must be 0 or 1", path, key);
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "%s.%s: must be an integer between %d and %d", path, key, lo, hi);
    }
    *out = (int)d;
    return PROTO_OK;
}

/* Money (SPEC 2: finite, 0..1,000,000, micros exactly): *out, or 0 when
 * absent and not `required`. */
static proto_err money_field(const cJSON *obj, const char *path, const char *key, int required,
                             int64_t *out, char *err, size_t errlen) {
    const cJSON *v = proto_json_get(obj, key);
    *out = 0;
    if (!given(v)) {
        if (!required) return PROTO_OK;
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s.%s: required", path, key);
    }
    if (proto_json_micros(v, out) != 0)
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s.%s: %s", path, key, FLOOR_RULE);
    return PROTO_OK;
}

/* An array of `min`..PROTO_LIST_MAX strings of 1..PROTO_TEXT_MAX_CHARS
 * characters, taken into the block: *out and *n (NULL and 0 when absent and
 * `min` is 0). */
static proto_err string_list(arena *a, const cJSON *obj, const char *path, const char *key,
                             size_t min, const char *const **out, size_t *n, char *err,
                             size_t errlen) {
    const cJSON *v = proto_json_get(obj, key);
    *out = NULL;
    *n = 0;
    if (!given(v) && min == 0) return PROTO_OK;
    size_t count = 0;
    if (cJSON_IsArray(v))
        for (const cJSON *c = v->child; c != NULL && count <= PROTO_LIST_MAX; c = c->next)
            count++;
    if (!cJSON_IsArray(v) || count < min || count > PROTO_LIST_MAX)
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "%s.%s: must be an array of %zu to %d strings", path, key, min,
                          PROTO_LIST_MAX);
    const char **list = count > 0 ? take(a, count * sizeof *list) : NULL;
    if (count > 0 && list == NULL)
        return proto_fail(err, errlen, PROTO_ERR_NOMEM, "%s.%s: out of room", path, key);
    size_t i = 0;
    for (const cJSON *c = v->child; c != NULL; c = c->next, i++) {
        const char *s = proto_json_string(c);
        if (s == NULL || !chars_ok(s, 1, PROTO_TEXT_MAX_CHARS))
            return proto_fail(err, errlen, PROTO_ERR_FIELD,
                              "%s.%s[%zu]: must be a string of 1-%d characters", path, key, i,
                              PROTO_TEXT_MAX_CHARS);
        list[i] = s;
    }
    *out = list;
    *n = count;
    return PROTO_OK;
}

/* ---- Imps ----------------------------------------------------------------- */

/* banner (OpenRTB 2.6 3.2.6): {"w","h"} or {"format":[{"w","h"},...]}. */
static proto_err banner_field(arena *a, const cJSON *imp, const char *path,
                              const proto_banner **out, char *err, size_t errlen) {
    const cJSON *b;
    char sub[PATH_BYTES];
    proto_err e = object_field(imp, path, "banner", &b, err, errlen);
    *out = NULL;
    if (e != PROTO_OK || b == NULL) return e;
    proto_banner *banner = take(a, sizeof *banner);
    if (banner == NULL) return proto_fail(err, errlen, PROTO_ERR_NOMEM, "%s: out of room", path);
    memset(banner, 0, sizeof *banner);
    sub_path(sub, path, "banner", -1);
    const cJSON *format = proto_json_get(b, "format");
    int sized = given(proto_json_get(b, "w")) || given(proto_json_get(b, "h"));
    if (given(format) && sized)
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: w and h, or format, not both", sub);
    if (!given(format)) {
        e = int_field(b, sub, "w", 1, 1, PROTO_PIXELS_MAX, &banner->w, err, errlen);
        if (e == PROTO_OK)
            e = int_field(b, sub, "h", 1, 1, PROTO_PIXELS_MAX, &banner->h, err, errlen);
        *out = banner;
        return e;
    }
    size_t count = 0;
    if (cJSON_IsArray(format))
        for (const cJSON *c = format->child; c != NULL && count <= PROTO_LIST_MAX; c = c->next)
            count++;
    if (!cJSON_IsArray(format) || count < 1 || count > PROTO_LIST_MAX)
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "%s.format: must be an array of 1 to %d sizes", sub, PROTO_LIST_MAX);
    proto_format *sizes = take(a, count * sizeof *sizes);
    if (sizes == NULL) return proto_fail(err, errlen, PROTO_ERR_NOMEM, "%s: out of room", sub);
    size_t i = 0;
    for (const cJSON *f = format->child; f != NULL; f = f->next, i++) {
        char fpath[PATH_BYTES];
        sub_path(fpath, sub, "format", (long)i);
        if (!cJSON_IsObject(f))
            return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: must be an object", fpath);
        e = int_field(f, fpath, "w", 1, 1, PROTO_PIXELS_MAX, &sizes[i].w, err, errlen);
        if (e == PROTO_OK)
            e = int_field(f, fpath, "h", 1, 1, PROTO_PIXELS_MAX, &sizes[i].h, err, errlen);
        if (e != PROTO_OK) return e;
    }
    banner->w = banner->h = PROTO_ABSENT;
    banner->format = sizes;
    banner->nformat = count;
    *out = banner;
    return PROTO_OK;
}

/* video (OpenRTB 2.6 3.2.7): mimes required, w, h, minduration,
 * maxduration optional. */
static proto_err video_field(arena *a, const cJSON *imp, const char *path, const proto_video **out,
                             char *err, size_t errlen) {
    const cJSON *v;
    char sub[PATH_BYTES];
    proto_err e = object_field(imp, path, "video", &v, err, errlen);
    *out = NULL;
    if (e != PROTO_OK || v == NULL) return e;
    proto_video *video = take(a, sizeof *video);
    if (video == NULL) return proto_fail(err, errlen, PROTO_ERR_NOMEM, "%s: out of room", path);
    memset(video, 0, sizeof *video);
    sub_path(sub, path, "video", -1);
    e = string_list(a, v, sub, "mimes", 1, &video->mimes, &video->nmimes, err, errlen);
    if (e == PROTO_OK) e = int_field(v, sub, "w", 0, 1, PROTO_PIXELS_MAX, &video->w, err, errlen);
    if (e == PROTO_OK) e = int_field(v, sub, "h", 0, 1, PROTO_PIXELS_MAX, &video->h, err, errlen);
    if (e == PROTO_OK)
        e = int_field(v, sub, "minduration", 0, 0, PROTO_DURATION_MAX_S, &video->minduration, err,
                      errlen);
    if (e == PROTO_OK)
        e = int_field(v, sub, "maxduration", 0, 0, PROTO_DURATION_MAX_S, &video->maxduration, err,
                      errlen);
    if (e != PROTO_OK) return e;
    if (video->minduration != PROTO_ABSENT && video->maxduration != PROTO_ABSENT &&
        video->maxduration < video->minduration)
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "%s.maxduration: must not be below minduration", sub);
    *out = video;
    return PROTO_OK;
}

/* One deal of pmp.deals (OpenRTB 2.6 3.2.12): id required, unique among
 * the `before` deals already read. */
static proto_err deal_field(arena *a, const cJSON *d, const char *path, proto_deal *deal,
                            const proto_deal *before, size_t nbefore, char *err, size_t errlen) {
    if (!cJSON_IsObject(d))
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: must be an object", path);
    memset(deal, 0, sizeof *deal);
    proto_err e = text_field(d, path, "id", 1, 1, PROTO_TEXT_MAX_CHARS, &deal->id, err, errlen);
    for (size_t j = 0; e == PROTO_OK && j < nbefore; j++)
        if (strcmp(before[j].id, deal->id) == 0)
            e = proto_fail(err, errlen, PROTO_ERR_FIELD, "%s.id: a deal id used twice in the imp",
                           path);
    if (e == PROTO_OK) e = money_field(d, path, "bidfloor", 0, &deal->bidfloor_micros, err, errlen);
    if (e == PROTO_OK)
        e = string_list(a, d, path, "wseat", 0, &deal->wseat, &deal->nwseat, err, errlen);
    return e;
}

/* pmp (OpenRTB 2.6 3.2.11): private_auction 0|1, deals of at most
 * PROTO_LIST_MAX with ids unique within the imp. */
static proto_err pmp_field(arena *a, const cJSON *imp, const char *path, const proto_pmp **out,
                           char *err, size_t errlen) {
    const cJSON *p;
    char sub[PATH_BYTES];
    proto_err e = object_field(imp, path, "pmp", &p, err, errlen);
    *out = NULL;
    if (e != PROTO_OK || p == NULL) return e;
    proto_pmp *pmp = take(a, sizeof *pmp);
    if (pmp == NULL) return proto_fail(err, errlen, PROTO_ERR_NOMEM, "%s: out of room", path);
    memset(pmp, 0, sizeof *pmp);
    sub_path(sub, path, "pmp", -1);
    e = int_field(p, sub, "private_auction", 0, 0, 1, &pmp->private_auction, err, errlen);
    if (e != PROTO_OK) return e;
    if (pmp->private_auction == PROTO_ABSENT) pmp->private_auction = 0;
    const cJSON *deals = proto_json_get(p, "deals");
    *out = pmp;
    if (!given(deals)) return PROTO_OK;
    size_t count = 0;
    if (cJSON_IsArray(deals))
        for (const cJSON *c = deals->child; c != NULL && count <= PROTO_LIST_MAX; c = c->next)
            count++;
    if (!cJSON_IsArray(deals) || count > PROTO_LIST_MAX)
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "%s.deals: must be an array of at most %d deals", sub, PROTO_LIST_MAX);
    proto_deal *list = count > 0 ? take(a, count * sizeof *list) : NULL;
    if (count > 0 && list == NULL)
        return proto_fail(err, errlen, PROTO_ERR_NOMEM, "%s: out of room", sub);
    size_t i = 0;
    for (const cJSON *d = deals->child; d != NULL; d = d->next, i++) {
        char dpath[PATH_BYTES];
        sub_path(dpath, sub, "deals", (long)i);
        e = deal_field(a, d, dpath, &list[i], list, i, err, errlen);
        if (e != PROTO_OK) return e;
    }
    pmp->deals = list;
    pmp->ndeals = count;
    return PROTO_OK;
}

/* 1 when `s` is an imp id: 1..PROTO_IMP_ID_MAX_CHARS of the request_id
 * alphabet. */
static int imp_id_ok(const char *s) {
    size_t n = s != NULL ? strnlen(s, PROTO_IMP_ID_MAX_CHARS + 1) : 0;
    return n >= 1 && n <= PROTO_IMP_ID_MAX_CHARS && proto_id_charset_ok(s);
}

/* imps[i]: id (unique among the `i` before), ad_slot_id, floor_price,
 * banner and/or video, pmp. */
static proto_err imp_field(arena *a, const cJSON *o, size_t i, proto_imp *imps, char *err,
                           size_t errlen) {
    char path[PATH_BYTES];
    proto_imp *imp = &imps[i];
    snprintf(path, sizeof path, "imps[%zu]", i);
    if (!cJSON_IsObject(o))
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: must be an object", path);
    memset(imp, 0, sizeof *imp);
    const cJSON *id = proto_json_get(o, "id");
    if (!given(id)) return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s.id: required", path);
    imp->id = proto_json_string(id);
    if (!imp_id_ok(imp->id))
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "%s.id: must be 1-%d characters of [A-Za-z0-9._:-]", path,
                          PROTO_IMP_ID_MAX_CHARS);
    for (size_t j = 0; j < i; j++)
        if (strcmp(imps[j].id, imp->id) == 0)
            return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s.id: the same as imps[%zu].id", path,
                              j);
    proto_err e =
        text_field(o, path, "ad_slot_id", 1, 1, PROTO_ID_MAX_CHARS, &imp->tagid, err, errlen);
    if (e == PROTO_OK) e = money_field(o, path, "floor_price", 1, &imp->floor_micros, err, errlen);
    if (e == PROTO_OK) e = banner_field(a, o, path, &imp->banner, err, errlen);
    if (e == PROTO_OK) e = video_field(a, o, path, &imp->video, err, errlen);
    if (e == PROTO_OK && imp->banner == NULL && imp->video == NULL)
        e = proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: needs a banner or a video", path);
    if (e == PROTO_OK) e = pmp_field(a, o, path, &imp->pmp, err, errlen);
    return e;
}

proto_err proto_request_imps(const cJSON *root, const cJSON *imps, proto_bid_request *out,
                             char *err, size_t errlen) {
    if (given(proto_json_get(root, "ad_slot_id")))
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "ad_slot_id: not allowed together with imps");
    if (given(proto_json_get(root, "floor_price")))
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "floor_price: not allowed together with imps");
    size_t count = 0, bytes = 0;
    if (cJSON_IsArray(imps))
        for (const cJSON *c = imps->child; c != NULL && count <= PROTO_IMPS_MAX; c = c->next) {
            bytes += imp_bytes(c);
            count++;
        }
    if (!cJSON_IsArray(imps) || count < 1 || count > PROTO_IMPS_MAX)
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "imps: must be an array of 1 to %d imps",
                          PROTO_IMPS_MAX);
    bytes += ALIGN_UP(count * sizeof(proto_imp));
    arena a = {malloc(bytes), 0, bytes};
    if (a.base == NULL) return proto_fail(err, errlen, PROTO_ERR_NOMEM, "imps: out of memory");
    out->block = a.base;
    proto_imp *list = take(&a, count * sizeof *list);
    size_t i = 0;
    for (const cJSON *c = imps->child; c != NULL; c = c->next, i++) {
        proto_err e = imp_field(&a, c, i, list, err, errlen);
        if (e != PROTO_OK) return e; /* the caller frees out->block */
    }
    out->imps = list;
    out->nimps = count;
    out->has_imps = 1;
    return PROTO_OK;
}

proto_err proto_request_single_imp(const cJSON *ad_slot_id, proto_bid_request *out, char *err,
                                   size_t errlen) {
    proto_imp *imp = malloc(sizeof *imp);
    if (imp == NULL) return proto_fail(err, errlen, PROTO_ERR_NOMEM, "imps: out of memory");
    memset(imp, 0, sizeof *imp);
    imp->id = "1";
    imp->tagid = ad_slot_id->valuestring; /* the tree's: the struct may be copied */
    imp->floor_micros = out->floor_micros;
    imp->default_banner = 1;
    out->block = imp;
    out->imps = imp;
    out->nimps = 1;
    return PROTO_OK;
}

/* ---- Site, app, device, regs, consent, cur ------------------------------- */

static proto_err publisher_field(const cJSON *obj, const char *path, proto_publisher *out,
                                 char *err, size_t errlen) {
    const cJSON *p;
    char sub[PATH_BYTES];
    proto_err e = object_field(obj, path, "publisher", &p, err, errlen);
    if (e != PROTO_OK || p == NULL) return e;
    sub_path(sub, path, "publisher", -1);
    e = text(p, sub, "id", &out->id, err, errlen);
    if (e == PROTO_OK) e = text(p, sub, "name", &out->name, err, errlen);
    return e;
}

/* site (OpenRTB 2.6 3.2.13): id, domain, page, publisher. */
static proto_err site_fields(const cJSON *s, proto_site *out, char *err, size_t errlen) {
    proto_err e = text(s, "site", "id", &out->id, err, errlen);
    if (e == PROTO_OK) e = text(s, "site", "domain", &out->domain, err, errlen);
    if (e == PROTO_OK) e = text(s, "site", "page", &out->page, err, errlen);
    if (e == PROTO_OK) e = publisher_field(s, "site", &out->publisher, err, errlen);
    return e;
}

/* app (OpenRTB 2.6 3.2.14): id, bundle, storeurl, publisher. */
static proto_err app_fields(const cJSON *s, proto_app *out, char *err, size_t errlen) {
    proto_err e = text(s, "app", "id", &out->id, err, errlen);
    if (e == PROTO_OK) e = text(s, "app", "bundle", &out->bundle, err, errlen);
    if (e == PROTO_OK) e = text(s, "app", "storeurl", &out->storeurl, err, errlen);
    if (e == PROTO_OK) e = publisher_field(s, "app", &out->publisher, err, errlen);
    return e;
}

/* device (OpenRTB 2.6 3.2.18): ua, ip, devicetype, os, language, geo. */
static proto_err device_fields(const cJSON *d, proto_device *out, char *err, size_t errlen) {
    const cJSON *geo = NULL;
    proto_err e = text(d, "device", "ua", &out->ua, err, errlen);
    if (e == PROTO_OK) e = text(d, "device", "ip", &out->ip, err, errlen);
    if (e == PROTO_OK && out->ip != NULL) {
        unsigned char addr[16];
        if (inet_pton(AF_INET, out->ip, addr) == 1)
            out->ip_is_v6 = 0;
        else if (inet_pton(AF_INET6, out->ip, addr) == 1)
            out->ip_is_v6 = 1;
        else
            e = proto_fail(err, errlen, PROTO_ERR_FIELD,
                           "device.ip: must be an IPv4 or IPv6 address");
    }
    if (e == PROTO_OK)
        e = int_field(d, "device", "devicetype", 0, 1, 8, &out->devicetype, err, errlen);
    if (e == PROTO_OK) e = text(d, "device", "os", &out->os, err, errlen);
    if (e == PROTO_OK) e = text(d, "device", "language", &out->language, err, errlen);
    if (e == PROTO_OK) e = object_field(d, "device", "geo", &geo, err, errlen);
    if (e == PROTO_OK && geo != NULL)
        e = text(geo, "device.geo", "country", &out->geo_country, err, errlen);
    if (e == PROTO_OK && geo != NULL)
        e = text(geo, "device.geo", "region", &out->geo_region, err, errlen);
    return e;
}

/* regs (OpenRTB 2.6 3.2.3): coppa, gdpr, us_privacy. */
static proto_err regs_fields(const cJSON *r, proto_regs *out, char *err, size_t errlen) {
    proto_err e = int_field(r, "regs", "coppa", 0, 0, 1, &out->coppa, err, errlen);
    if (e == PROTO_OK) e = int_field(r, "regs", "gdpr", 0, 0, 1, &out->gdpr, err, errlen);
    if (e == PROTO_OK) e = text(r, "regs", "us_privacy", &out->us_privacy, err, errlen);
    return e;
}

/* A top-level optional object: *out, or NULL when absent. */
static proto_err top_object(const cJSON *root, const char *key, const cJSON **out, char *err,
                            size_t errlen) {
    const cJSON *v = proto_json_get(root, key);
    *out = NULL;
    if (!given(v)) return PROTO_OK;
    if (!cJSON_IsObject(v))
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: must be an object", key);
    *out = v;
    return PROTO_OK;
}

proto_err proto_request_context(const cJSON *root, proto_bid_request *out, char *err,
                                size_t errlen) {
    const cJSON *site, *app, *device, *regs;
    proto_err e = top_object(root, "site", &site, err, errlen);
    if (e == PROTO_OK) e = top_object(root, "app", &app, err, errlen);
    if (e != PROTO_OK) return e;
    if (site != NULL && app != NULL)
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "site: not allowed together with app");
    if (site != NULL) e = site_fields(site, &out->site, err, errlen);
    if (e == PROTO_OK && app != NULL) e = app_fields(app, &out->app, err, errlen);
    if (e == PROTO_OK) e = top_object(root, "device", &device, err, errlen);
    if (e == PROTO_OK && device != NULL) e = device_fields(device, &out->device, err, errlen);
    if (e == PROTO_OK) e = top_object(root, "regs", &regs, err, errlen);
    if (e == PROTO_OK && regs != NULL) e = regs_fields(regs, &out->regs, err, errlen);
    if (e != PROTO_OK) return e;
    out->has_site = site != NULL;
    out->has_app = app != NULL;
    out->has_device = device != NULL;
    out->has_regs = regs != NULL;

    const cJSON *v = proto_json_get(root, "user_consent");
    if (given(v)) {
        const char *s = proto_json_string(v);
        if (s == NULL || !chars_ok(s, 0, PROTO_CONSENT_MAX_CHARS))
            return proto_fail(err, errlen, PROTO_ERR_FIELD,
                              "user_consent: must be a string of at most %d characters",
                              PROTO_CONSENT_MAX_CHARS);
        out->user_consent = s;
    }
    v = proto_json_get(root, "cur");
    if (given(v)) {
        if (!proto_currency_ok(proto_json_string(v)))
            return proto_fail(err, errlen, PROTO_ERR_FIELD,
                              "cur: must be 3 capital letters (an ISO 4217 code)");
        memcpy(out->cur, v->valuestring, 4);
    }
    return PROTO_OK;
}

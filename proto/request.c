/* request.c -- what comes in before an auction: the bid request a publisher
 * sends over MQTT (SPEC 2) and the user profile read from Redis (SPEC 3.2),
 * plus the default profile written back on a miss.
 *
 * The one idea: check the rules in a fixed order and stop at the first one
 * broken, with one message per rule. request_id comes first, so that an
 * `invalid` result can still name the request when a later field is bad.
 * The parse tree is kept on success: user_context is forwarded to bidders
 * as it came, and the SPEC 17 fields (inventory.c) point into it.
 *
 * Bounds (SPEC 15): what a publisher sends is refused past its bounds
 * (interests: 64 of 1-64 characters), while a stored profile, which the
 * publisher did not write, is cut to the same bounds instead of refused.
 * Ad event ids end up in Redis keys, so they follow the request_id rule. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "proto/internal.h"
#include "proto/proto.h"

#define REQUEST_ID_RULE "request_id: must be 1-128 characters of [A-Za-z0-9._:-]"
#define FLOOR_RULE "floor_price: must be a finite number between 0 and 1000000"
#define INTERESTS_RULE "user_context.interests: must be an array of strings"

/* Present and not JSON null: optional fields may be sent as null. */
static int given(const cJSON *v) {
    return v != NULL && !cJSON_IsNull(v);
}

static int is_string_array(const cJSON *v) {
    if (!cJSON_IsArray(v)) return 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, v) {
        if (proto_json_string(item) == NULL) return 0;
    }
    return 1;
}

int proto_key_id_ok(const char *s) {
    if (s == NULL) return 0;
    size_t n = strnlen(s, PROTO_ID_MAX_CHARS + 1);
    return n >= 1 && n <= PROTO_ID_MAX_CHARS && proto_id_charset_ok(s);
}

/* 1 when the string `s` is an interest: 1..PROTO_INTEREST_MAX_CHARS
 * characters. */
static int interest_ok(const char *s) {
    size_t chars = proto_utf8_chars(s, PROTO_INTEREST_MAX_CHARS);
    return chars >= 1 && chars <= PROTO_INTEREST_MAX_CHARS;
}

/* user_context.interests (SPEC 2): an array of at most PROTO_INTERESTS_MAX
 * strings of 1..PROTO_INTEREST_MAX_CHARS characters. */
static proto_err check_interests(const cJSON *interests, char *err, size_t errlen) {
    if (!is_string_array(interests))
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s", INTERESTS_RULE);
    size_t i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, interests) {
        if (i == PROTO_INTERESTS_MAX)
            return proto_fail(err, errlen, PROTO_ERR_FIELD,
                              "user_context.interests: at most %d entries", PROTO_INTERESTS_MAX);
        i++;
    }
    i = 0;
    cJSON_ArrayForEach(item, interests) {
        if (!interest_ok(item->valuestring))
            return proto_fail(err, errlen, PROTO_ERR_FIELD,
                              "user_context.interests[%zu]: must be 1 to %d characters", i,
                              PROTO_INTEREST_MAX_CHARS);
        i++;
    }
    return PROTO_OK;
}

/* The values in the tree under `v`, itself included, counted up to `stop`. */
static size_t count_values(const cJSON *v, size_t stop) {
    size_t n = 1;
    for (const cJSON *c = v->child; c != NULL && n < stop; c = c->next)
        n += count_values(c, stop - n);
    return n;
}

/* A required string of 1-128 characters, copied into `dst` (PROTO_ID_BYTES). */
static proto_err id_field(const cJSON *root, const char *key, char *dst, char *err, size_t errlen) {
    const cJSON *v = proto_json_get(root, key);
    if (v == NULL) return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: required", key);
    const char *s = proto_json_string(v);
    size_t chars = s != NULL ? proto_utf8_chars(s, PROTO_ID_MAX_CHARS) : 0;
    if (chars < 1 || chars > PROTO_ID_MAX_CHARS || strlen(s) >= PROTO_ID_BYTES)
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: must be a string of 1-%d characters",
                          key, PROTO_ID_MAX_CHARS);
    strcpy(dst, s);
    return PROTO_OK;
}

/* The field rules of SPEC 2, in order. Fields not listed there are ignored,
 * so that publishers can add fields before the exchange knows them
 * (forward-compatible); optional fields sent as null count as absent. */
static proto_err check_fields(const cJSON *root, proto_bid_request *out, char *err, size_t errlen) {
    const cJSON *v = proto_json_get(root, "request_id");
    if (v == NULL) return proto_fail(err, errlen, PROTO_ERR_FIELD, "request_id: required");
    if (!proto_key_id_ok(proto_json_string(v)))
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s", REQUEST_ID_RULE);
    strcpy(out->request_id, v->valuestring);
    out->has_request_id = 1;

    proto_err e = id_field(root, "user_id", out->user_id, err, errlen);
    if (e != PROTO_OK) return e;

    /* One of two forms (SPEC 17): `imps`, or the SPEC 2 slot. */
    const cJSON *imps = proto_json_get(root, "imps");
    if (given(imps)) {
        e = proto_request_imps(root, imps, out, err, errlen);
        if (e != PROTO_OK) return e;
    } else {
        e = id_field(root, "ad_slot_id", out->ad_slot_id, err, errlen);
        if (e != PROTO_OK) return e;
        v = proto_json_get(root, "floor_price");
        if (v == NULL) return proto_fail(err, errlen, PROTO_ERR_FIELD, "floor_price: required");
        if (proto_json_micros(v, &out->floor_micros) != 0)
            return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s", FLOOR_RULE);
    }

    v = proto_json_get(root, "user_context");
    if (given(v)) {
        if (!cJSON_IsObject(v))
            return proto_fail(err, errlen, PROTO_ERR_FIELD, "user_context: must be an object");
        if (count_values(v, PROTO_USER_CONTEXT_MAX_VALUES + 1) > PROTO_USER_CONTEXT_MAX_VALUES)
            return proto_fail(err, errlen, PROTO_ERR_FIELD,
                              "user_context: at most %d JSON values (it is forwarded to every "
                              "bidder)",
                              PROTO_USER_CONTEXT_MAX_VALUES);
        const cJSON *interests = proto_json_get(v, "interests");
        if (given(interests)) {
            proto_err e = check_interests(interests, err, errlen);
            if (e != PROTO_OK) return e;
        }
        out->user_context = v;
        out->context_interests = given(interests) ? interests : NULL;
    }

    v = proto_json_get(root, "timestamp");
    if (given(v)) {
        /* cJSON reads 1e400 as inf: not a number a clock can have. */
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return proto_fail(err, errlen, PROTO_ERR_FIELD, "timestamp: must be a number");
        out->has_timestamp = 1;
        out->timestamp = v->valuedouble;
    }

    e = proto_request_context(root, out, err, errlen);
    /* Last, so that a request refused for another rule costs no malloc. */
    if (e == PROTO_OK && !out->has_imps)
        e = proto_request_single_imp(proto_json_get(root, "ad_slot_id"), out, err, errlen);
    return e;
}

/* Parse `len` bytes through the JSON gate into *root, which must be an
 * object; `who` starts the messages ("payload: not valid UTF-8"). */
static proto_err parse_object(const char *json, size_t len, const char *who, cJSON **root,
                              char *err, size_t errlen) {
    proto_json_error je;
    *root = proto_json_parse(json, len, &je);
    if (*root == NULL)
        return proto_fail(err, errlen, PROTO_ERR_NOT_JSON, "%s: %s", who,
                          proto_json_fault_str(je.fault));
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return proto_fail(err, errlen, PROTO_ERR_NOT_OBJECT, "%s: must be a JSON object", who);
    }
    return PROTO_OK;
}

/* The SPEC 17 fields of `r`, emptied (the block freed). */
static void forget_inventory(proto_bid_request *r) {
    free(r->block);
    r->block = NULL;
    r->imps = NULL;
    r->nimps = 0;
    r->has_imps = r->has_site = r->has_app = r->has_device = r->has_regs = 0;
    memset(&r->site, 0, sizeof r->site);
    memset(&r->app, 0, sizeof r->app);
    memset(&r->device, 0, sizeof r->device);
    memset(&r->regs, 0, sizeof r->regs);
    r->device.devicetype = r->regs.coppa = r->regs.gdpr = PROTO_ABSENT;
    r->user_consent = NULL;
    r->cur[0] = '\0';
}

proto_err proto_bid_request_decode(const char *payload, size_t len, size_t max_bytes,
                                   proto_bid_request *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->device.devicetype = out->regs.coppa = out->regs.gdpr = PROTO_ABSENT;
    proto_clear_err(err, errlen);
    if (len > max_bytes)
        return proto_fail(err, errlen, PROTO_ERR_TOO_LARGE, "payload: over %zu bytes", max_bytes);
    /* A value takes two bytes at least ("0,"): only a long payload can hold
     * too many, and only then are they counted. */
    if (len > 2 * PROTO_REQUEST_MAX_VALUES &&
        proto_json_values_max(payload, len) > PROTO_REQUEST_MAX_VALUES)
        return proto_fail(err, errlen, PROTO_ERR_TOO_LARGE, "payload: over %d JSON values",
                          PROTO_REQUEST_MAX_VALUES);
    cJSON *root = NULL;
    proto_err e = parse_object(payload, len, "payload", &root, err, errlen);
    if (e == PROTO_OK) e = check_fields(root, out, err, errlen);
    if (e != PROTO_OK) {
        cJSON_Delete(root);
        out->user_context = NULL;
        out->context_interests = NULL;
        forget_inventory(out);
        return e;
    }
    out->root = root;
    return PROTO_OK;
}

void proto_bid_request_free(proto_bid_request *r) {
    if (r == NULL) return;
    cJSON_Delete(r->root);
    r->root = NULL;
    r->user_context = NULL;
    r->context_interests = NULL;
    forget_inventory(r);
}

/* ---- User profile ------------------------------------------------------- */

/* Keep the first PROTO_INTERESTS_MAX interests of 1..PROTO_INTEREST_MAX_CHARS
 * characters in the array `interests` (all strings) and delete the rest. */
static void cut_interests(cJSON *interests) {
    size_t kept = 0;
    cJSON *item = interests->child;
    while (item != NULL) {
        cJSON *next = item->next;
        if (kept < PROTO_INTERESTS_MAX && interest_ok(item->valuestring))
            kept++;
        else
            cJSON_Delete(cJSON_DetachItemViaPointer(interests, item));
        item = next;
    }
}

/* Only the keys the exchange reads are checked; profiles are written by
 * other systems, which may add keys of their own. */
proto_err proto_profile_decode(const char *json, size_t len, proto_profile *out, char *err,
                               size_t errlen) {
    memset(out, 0, sizeof *out);
    proto_clear_err(err, errlen);
    cJSON *root = NULL;
    proto_err e = parse_object(json, len, "profile", &root, err, errlen);
    if (e != PROTO_OK) return e;
    const cJSON *interests = proto_json_get(root, "interests");
    const cJSON *ltv = proto_json_get(root, "ltv_score");
    if (given(interests) && !is_string_array(interests))
        e = proto_fail(err, errlen, PROTO_ERR_FIELD, "interests: must be an array of strings");
    else if (given(ltv) && !proto_ltv_score_ok(ltv))
        e = proto_fail(err, errlen, PROTO_ERR_FIELD, "ltv_score: must be a number between 0 and 1");
    if (e != PROTO_OK) {
        cJSON_Delete(root);
        return e;
    }
    if (given(interests)) cut_interests((cJSON *)interests);
    out->root = root;
    out->interests = given(interests) ? interests : NULL;
    out->ltv_score = given(ltv) ? ltv->valuedouble : 0.0;
    return PROTO_OK;
}

int proto_profile_encode(const cJSON *defaults, const char *user_id, proto_buf *out) {
    int rc = 0;
    rc |= proto_buf_puts(out, "{\"user_id\":");
    rc |= proto_buf_json_string(out, user_id);
    const cJSON *item = NULL;
    if (cJSON_IsObject(defaults)) {
        cJSON_ArrayForEach(item, defaults) {
            if (item->string == NULL || strcmp(item->string, "user_id") == 0) continue;
            char *value = cJSON_PrintUnformatted(item);
            if (value == NULL) return -1;
            rc |= proto_buf_puts(out, ",");
            rc |= proto_buf_json_string(out, item->string);
            rc |= proto_buf_puts(out, ":");
            rc |= proto_buf_puts(out, value);
            cJSON_free(value);
        }
    }
    rc |= proto_buf_puts(out, "}");
    return rc;
}

void proto_profile_free(proto_profile *p) {
    if (p == NULL) return;
    cJSON_Delete(p->root);
    p->root = NULL;
    p->interests = NULL;
    p->ltv_score = 0.0;
}

/* ---- Ad events (SPEC 10) ---------------------------------------------------- */

/* An event id (SPEC 15 Keys: the request_id rule), copied into `dst`
 * (PROTO_ID_BYTES). Absent or null is an error when `required`, else
 * leaves `dst` empty. */
static proto_err key_id_field(const cJSON *root, const char *key, int required, char *dst,
                              char *err, size_t errlen) {
    const cJSON *v = proto_json_get(root, key);
    if (!given(v)) {
        if (!required) return PROTO_OK;
        if (v == NULL) return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: required", key);
    }
    const char *s = proto_json_string(v);
    if (!proto_key_id_ok(s))
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "%s: must be 1-128 characters of [A-Za-z0-9._:-]", key);
    strcpy(dst, s);
    return PROTO_OK;
}

proto_err proto_event_decode(const char *type, const char *payload, size_t len, size_t max_bytes,
                             proto_event *out, char *err, size_t errlen) {
    static const char *const types[] = {"impression", "click", "conversion"};
    memset(out, 0, sizeof *out);
    proto_clear_err(err, errlen);
    size_t t = 0;
    while (t < 3 && (type == NULL || strcmp(type, types[t]) != 0))
        t++;
    if (t == 3)
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "topic: event type must be impression, click or conversion");
    out->type = (proto_event_type)t;
    if (len > max_bytes)
        return proto_fail(err, errlen, PROTO_ERR_TOO_LARGE, "payload: over %zu bytes", max_bytes);
    cJSON *root = NULL;
    proto_err e = parse_object(payload, len, "payload", &root, err, errlen);
    int need_ad = out->type != PROTO_EVENT_CONVERSION;
    if (e == PROTO_OK) e = key_id_field(root, "event_id", 0, out->event_id, err, errlen);
    if (e == PROTO_OK) e = key_id_field(root, "request_id", 0, out->request_id, err, errlen);
    if (e == PROTO_OK) e = key_id_field(root, "ad_id", need_ad, out->ad_id, err, errlen);
    if (e == PROTO_OK) e = key_id_field(root, "advertiser_id", 1, out->advertiser_id, err, errlen);
    if (e == PROTO_OK) e = key_id_field(root, "user_id", 1, out->user_id, err, errlen);
    if (e == PROTO_OK) {
        const cJSON *ts = proto_json_get(root, "timestamp");
        if (ts != NULL && !cJSON_IsNull(ts) && !(cJSON_IsNumber(ts) && isfinite(ts->valuedouble)))
            e = proto_fail(err, errlen, PROTO_ERR_FIELD, "timestamp: must be a number");
    }
    cJSON_Delete(root);
    return e;
}

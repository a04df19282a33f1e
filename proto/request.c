/* request.c -- what comes in before an auction: the bid request a publisher
 * sends over MQTT (SPEC 2) and the user profile read from Redis (SPEC 3.2),
 * plus the default profile written back on a miss.
 *
 * The one idea: check the rules in a fixed order and stop at the first one
 * broken, with one message per rule. request_id comes first, so that an
 * `invalid` result can still name the request when a later field is bad.
 * The parse tree is kept on success: user_context is forwarded to bidders
 * as it came. */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "proto/proto.h"

/* buf.c, module-private: strict parse (NUL, UTF-8, trailing garbage). */
cJSON *proto_json_parse(const char *text, size_t len, const char **why);

#define REQUEST_ID_RULE "request_id: must be 1-128 characters of [A-Za-z0-9._:-]"
#define FLOOR_RULE "floor_price: must be a finite number between 0 and 1000000"
#define INTERESTS_RULE "user_context.interests: must be an array of strings"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write the message for a broken rule, when the caller gave room for one. */
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const cJSON *get(const cJSON *obj, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* Present and not JSON null: optional fields may be sent as null. */
static int given(const cJSON *v) { return v != NULL && !cJSON_IsNull(v); }

static int is_string_array(const cJSON *v) {
    if (!cJSON_IsArray(v))
        return 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, v) {
        if (!cJSON_IsString(item) || item->valuestring == NULL)
            return 0;
    }
    return 1;
}

static int request_id_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
}

static int request_id_ok(const cJSON *v) {
    if (!cJSON_IsString(v) || v->valuestring == NULL)
        return 0;
    size_t n = 0;
    for (const char *p = v->valuestring; *p != '\0'; p++) {
        if (++n > PROTO_ID_MAX_CHARS || !request_id_char(*p))
            return 0;
    }
    return n > 0;
}

/* Number of UTF-8 characters in `s`, counting no further than `limit` + 1
 * (the input was checked to be valid UTF-8 before parsing, and cJSON's own
 * \u decoding only produces valid UTF-8). */
static size_t utf8_chars(const char *s, size_t limit) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && n <= limit; p++) {
        if ((*p & 0xc0) != 0x80)
            n++;
    }
    return n;
}

/* A required string of 1-128 characters, copied into `dst` (PROTO_ID_BYTES). */
static proto_err id_field(const cJSON *root, const char *key, char *dst, char *err, size_t errlen) {
    const cJSON *v = get(root, key);
    if (v == NULL) {
        set_err(err, errlen, "%s: required", key);
        return PROTO_ERR_FIELD;
    }
    const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
    size_t chars = s != NULL ? utf8_chars(s, PROTO_ID_MAX_CHARS) : 0;
    if (chars < 1 || chars > PROTO_ID_MAX_CHARS || strlen(s) >= PROTO_ID_BYTES) {
        set_err(err, errlen, "%s: must be a string of 1-%d characters", key, PROTO_ID_MAX_CHARS);
        return PROTO_ERR_FIELD;
    }
    strcpy(dst, s);
    return PROTO_OK;
}

/* The field rules of SPEC 2, in order. Fields not listed there are ignored,
 * so that publishers can add fields before the exchange knows them
 * (forward-compatible); optional fields sent as null count as absent. */
static proto_err check_fields(const cJSON *root, proto_bid_request *out, char *err, size_t errlen) {
    const cJSON *v = get(root, "request_id");
    if (v == NULL) {
        set_err(err, errlen, "request_id: required");
        return PROTO_ERR_FIELD;
    }
    if (!request_id_ok(v)) {
        set_err(err, errlen, "%s", REQUEST_ID_RULE);
        return PROTO_ERR_FIELD;
    }
    strcpy(out->request_id, v->valuestring);
    out->has_request_id = 1;

    proto_err e = id_field(root, "user_id", out->user_id, err, errlen);
    if (e == PROTO_OK)
        e = id_field(root, "ad_slot_id", out->ad_slot_id, err, errlen);
    if (e != PROTO_OK)
        return e;

    v = get(root, "floor_price");
    if (v == NULL) {
        set_err(err, errlen, "floor_price: required");
        return PROTO_ERR_FIELD;
    }
    if (!cJSON_IsNumber(v) || auction_micros_from_double(v->valuedouble, &out->floor_micros) != 0) {
        set_err(err, errlen, "%s", FLOOR_RULE);
        return PROTO_ERR_FIELD;
    }

    v = get(root, "user_context");
    if (given(v)) {
        if (!cJSON_IsObject(v)) {
            set_err(err, errlen, "user_context: must be an object");
            return PROTO_ERR_FIELD;
        }
        const cJSON *interests = get(v, "interests");
        if (given(interests) && !is_string_array(interests)) {
            set_err(err, errlen, "%s", INTERESTS_RULE);
            return PROTO_ERR_FIELD;
        }
        out->user_context = v;
        out->context_interests = given(interests) ? interests : NULL;
    }

    v = get(root, "timestamp");
    if (given(v)) {
        /* cJSON reads 1e400 as inf: not a number a clock can have. */
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
            set_err(err, errlen, "timestamp: must be a number");
            return PROTO_ERR_FIELD;
        }
        out->has_timestamp = 1;
        out->timestamp = v->valuedouble;
    }
    return PROTO_OK;
}

proto_err proto_bid_request_decode(const char *payload, size_t len, size_t max_bytes,
                                   proto_bid_request *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    set_err(err, errlen, "%s", "");
    if (len > max_bytes) {
        set_err(err, errlen, "payload: over %zu bytes", max_bytes);
        return PROTO_ERR_TOO_LARGE;
    }
    const char *why = NULL;
    cJSON *root = proto_json_parse(payload, len, &why);
    if (root == NULL) {
        set_err(err, errlen, "payload: %s", why);
        return PROTO_ERR_NOT_JSON;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        set_err(err, errlen, "payload: must be a JSON object");
        return PROTO_ERR_NOT_OBJECT;
    }
    proto_err e = check_fields(root, out, err, errlen);
    if (e != PROTO_OK) {
        cJSON_Delete(root);
        out->user_context = NULL;
        out->context_interests = NULL;
        return e;
    }
    out->root = root;
    return PROTO_OK;
}

void proto_bid_request_free(proto_bid_request *r) {
    if (r == NULL)
        return;
    cJSON_Delete(r->root);
    r->root = NULL;
    r->user_context = NULL;
    r->context_interests = NULL;
}

/* ---- User profile ------------------------------------------------------- */

/* Only the keys the exchange reads are checked; profiles are written by
 * other systems, which may add keys of their own. */
proto_err proto_profile_decode(const char *json, size_t len, proto_profile *out, char *err,
                               size_t errlen) {
    memset(out, 0, sizeof *out);
    set_err(err, errlen, "%s", "");
    const char *why = NULL;
    cJSON *root = proto_json_parse(json, len, &why);
    if (root == NULL) {
        set_err(err, errlen, "profile: %s", why);
        return PROTO_ERR_NOT_JSON;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        set_err(err, errlen, "profile: must be a JSON object");
        return PROTO_ERR_NOT_OBJECT;
    }
    const cJSON *interests = get(root, "interests");
    if (given(interests) && !is_string_array(interests)) {
        cJSON_Delete(root);
        set_err(err, errlen, "interests: must be an array of strings");
        return PROTO_ERR_FIELD;
    }
    const cJSON *ltv = get(root, "ltv_score");
    if (given(ltv) &&
        (!cJSON_IsNumber(ltv) || !(ltv->valuedouble >= 0.0) || !(ltv->valuedouble <= 1.0))) {
        cJSON_Delete(root);
        set_err(err, errlen, "ltv_score: must be a number between 0 and 1");
        return PROTO_ERR_FIELD;
    }
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
            if (item->string == NULL || strcmp(item->string, "user_id") == 0)
                continue;
            char *value = cJSON_PrintUnformatted(item);
            if (value == NULL)
                return -1;
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
    if (p == NULL)
        return;
    cJSON_Delete(p->root);
    p->root = NULL;
    p->interests = NULL;
    p->ltv_score = 0.0;
}

/* fuzz_event.c -- libFuzzer target: an ad event payload (SPEC 10) as it
 * comes on rtb/events/{type}, for each type and one that is not.
 *
 * The one idea: an accepted event carries only ids that may go into a Redis
 * key (SPEC 15: the request_id rule), exactly as the payload spelled them,
 * and every id its type needs; a refused one has a message that names what
 * was wrong. Both are checked against a reading of the payload with cJSON
 * alone, not through request.c. */
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz_common.h"

/* limits.max_request_bytes by default, which events share; tools/fuzz feeds
 * up to 70000 bytes, so the size gate is on the path too. */
#define EVENT_MAX_BYTES 65536

static const char *const id_keys[] = {"event_id", "request_id", "ad_id", "advertiser_id",
                                      "user_id"};

static const char *id_of(const proto_event *ev, size_t k) {
    const char *const ids[] = {ev->event_id, ev->request_id, ev->ad_id, ev->advertiser_id,
                               ev->user_id};
    return ids[k];
}

/* An accepted event against the payload parsed by cJSON: each id is the
 * payload's string ("" when absent or null), follows the key rule, and is
 * present when the type needs it. */
static void check_accepted(const char *payload, size_t size, proto_event_type type,
                           const proto_event *ev) {
    fuzz_check(ev->type == type, "event: type");
    cJSON *root = cJSON_ParseWithLength(payload, size);
    fuzz_check(cJSON_IsObject(root), "event: accepted what cJSON does not read as an object");
    for (size_t k = 0; k < sizeof id_keys / sizeof id_keys[0]; k++) {
        const char *got = id_of(ev, k);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, id_keys[k]);
        if (v == NULL || cJSON_IsNull(v)) {
            fuzz_check(got[0] == '\0', "event: an id that the payload does not carry");
        } else {
            fuzz_check(cJSON_IsString(v) && strcmp(v->valuestring, got) == 0,
                       "event: an id other than the payload's");
            fuzz_check(fuzz_key_id_ok(got), "event: an id that breaks the key rule");
        }
    }
    fuzz_check(ev->advertiser_id[0] != '\0' && ev->user_id[0] != '\0',
               "event: accepted without advertiser_id or user_id");
    fuzz_check(type == PROTO_EVENT_CONVERSION || ev->ad_id[0] != '\0',
               "event: impression or click accepted without ad_id");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(root, "timestamp");
    fuzz_check(ts == NULL || cJSON_IsNull(ts) || cJSON_IsNumber(ts),
               "event: accepted a timestamp that is not a number");
    cJSON_Delete(root);
}

/* A refusal's message starts with what it is about. */
static void check_refused(proto_err e, const char *err) {
    static const char *const prefixes[] = {
        "payload: ", "topic: ",         "event_id: ", "request_id: ",
        "ad_id: ",   "advertiser_id: ", "user_id: ",  "timestamp: "};
    fuzz_check(e == PROTO_ERR_FIELD || e == PROTO_ERR_NOT_JSON || e == PROTO_ERR_NOT_OBJECT ||
                   e == PROTO_ERR_TOO_LARGE,
               "event: an error code decoders do not give");
    int named = 0;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0] && !named; i++)
        named = strncmp(err, prefixes[i], strlen(prefixes[i])) == 0;
    fuzz_check(named, "event: a message that names no field");
    fuzz_check(fuzz_utf8_ok(err, strlen(err)), "event: message not UTF-8");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const types[] = {"impression", "click", "conversion", "view", NULL};
    const char *payload = (const char *)data;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        proto_event ev, again;
        char err[256], err2[256]; /* the size rtb/events.c uses */
        proto_err e =
            proto_event_decode(types[t], payload, size, EVENT_MAX_BYTES, &ev, err, sizeof err);
        if (t >= 3) {
            fuzz_check(e == PROTO_ERR_FIELD &&
                           strcmp(err, "topic: event type must be impression, click or "
                                       "conversion") == 0,
                       "event: an unknown type not refused first");
            continue;
        }
        fuzz_check((size > EVENT_MAX_BYTES) == (e == PROTO_ERR_TOO_LARGE), "event: size gate");
        if (e == PROTO_OK) {
            fuzz_check(err[0] == '\0', "event: a message with OK");
            check_accepted(payload, size, (proto_event_type)t, &ev);
        } else {
            check_refused(e, err);
        }
        proto_err e2 =
            proto_event_decode(types[t], payload, size, EVENT_MAX_BYTES, &again, err2, sizeof err2);
        fuzz_check(e == e2 && strcmp(err, err2) == 0, "event: a second decode answered otherwise");
        fuzz_check(e != PROTO_OK || memcmp(&ev, &again, sizeof ev) == 0,
                   "event: a second decode gave other ids");
    }
    return 0;
}

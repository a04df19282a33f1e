/* fuzz_advertiser.c -- libFuzzer target: an advertiser registry entry, the
 * key advertiser:targeting:{id} and its value in Redis (SPEC 6), read with
 * proto_advertiser_decode at every registry load.
 *
 * The one idea: both halves of a registry entry come from outside, the id
 * (the key's suffix) as much as the JSON, so both are fuzzed: an input
 * "@ID\nJSON" decodes JSON under the id ID, any other input is JSON under
 * "adv-fuzz". An accepted entry is one the exchange can call: an id that
 * may go into Redis keys, an http(s) endpoint with a host, interests that
 * are non-empty strings, limits in their bounds (checked without proto/).
 * A refused one leaves nothing behind and says why. The same input decodes
 * the same way twice. */
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz_common.h"

#define DEFAULT_ID "adv-fuzz"

static void check_entry(const char *id, const proto_bidder_conf *b) {
    fuzz_check(b->id != NULL && strcmp(b->id, id) == 0, "advertiser: id is not the key's");
    fuzz_check(fuzz_key_id_ok(b->id), "advertiser: id breaks the key rule");
    fuzz_check(b->endpoint != NULL && fuzz_url_ok(b->endpoint),
               "advertiser: endpoint not http(s) with a host");
    fuzz_check(b->max_concurrent >= 1 && b->max_concurrent <= 100000,
               "advertiser: max_concurrent out of 1..100000");
    fuzz_check(b->tmax_ms == 0 || (b->tmax_ms >= 1 && b->tmax_ms <= 10000),
               "advertiser: tmax_ms out of 1..10000");
    fuzz_check(b->budget_daily_micros >= 0 && b->budget_daily_micros <= INT64_C(1000000000000),
               "advertiser: budget.daily out of 0 (none)..1000000");
    fuzz_check(b->budget_pacing == PROTO_PACING_ASAP ||
                   (b->budget_pacing == PROTO_PACING_EVEN && b->budget_daily_micros > 0),
               "advertiser: budget.pacing not asap or even (or even without a budget)");
    fuzz_check((b->ninterests == 0) == (b->interests == NULL), "advertiser: interests and count");
    for (size_t i = 0; i < b->ninterests; i++) {
        const char *s = b->interests[i];
        fuzz_check(s != NULL && s[0] != '\0', "advertiser: empty interest");
        fuzz_check(fuzz_utf8_ok(s, strlen(s)), "advertiser: interest not UTF-8");
    }
}

static void check_refused(const proto_bidder_conf *b, const char *err) {
    fuzz_check(b->id == NULL && b->endpoint == NULL && b->interests == NULL && b->ninterests == 0,
               "advertiser: fields kept on error");
    fuzz_check(err[0] != '\0', "advertiser: error without a message");
    fuzz_check(fuzz_utf8_ok(err, strlen(err)), "advertiser: message not UTF-8");
}

static int same_entry(const proto_bidder_conf *a, const proto_bidder_conf *b) {
    if (!fuzz_same_string(a->id, b->id) || !fuzz_same_string(a->endpoint, b->endpoint) ||
        a->ninterests != b->ninterests || a->max_concurrent != b->max_concurrent ||
        a->tmax_ms != b->tmax_ms || a->budget_daily_micros != b->budget_daily_micros ||
        a->budget_pacing != b->budget_pacing)
        return 0;
    for (size_t i = 0; i < a->ninterests; i++)
        if (strcmp(a->interests[i], b->interests[i]) != 0) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    char *id = NULL;
    const char *json = text;
    size_t len = size;
    const char *nl = size > 0 && text[0] == '@' ? memchr(text, '\n', size) : NULL;
    if (nl != NULL) {
        /* A Redis key is a C string to the registry: no NUL inside. */
        id = strndup(text + 1, (size_t)(nl - text) - 1);
        fuzz_check(id != NULL, "advertiser: strndup");
        json = nl + 1;
        len = size - (size_t)(nl + 1 - text);
    }
    const char *key_id = id != NULL ? id : DEFAULT_ID;

    proto_bidder_conf b, again;
    char err[256], err2[256]; /* the size rtb/registry.c uses */
    proto_err e = proto_advertiser_decode(key_id, json, len, &b, err, sizeof err);
    if (e == PROTO_OK)
        check_entry(key_id, &b);
    else
        check_refused(&b, err);
    proto_err e2 = proto_advertiser_decode(key_id, json, len, &again, err2, sizeof err2);
    fuzz_check(e == e2, "advertiser: a second decode answered otherwise");
    fuzz_check(e != PROTO_OK || same_entry(&b, &again), "advertiser: a second decode differs");
    fuzz_check(e == PROTO_OK || strcmp(err, err2) == 0, "advertiser: a second message differs");
    proto_bidder_conf_free(&b);
    proto_bidder_conf_free(&again);
    fuzz_check(b.id == NULL && b.interests == NULL && b.ninterests == 0,
               "advertiser: proto_bidder_conf_free");
    free(id);
    return 0;
}

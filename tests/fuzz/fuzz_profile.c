/* fuzz_profile.c -- libFuzzer target: a stored user profile, the value of
 * user:profile:{user_id} in Redis (SPEC 3.2), which other systems write.
 *
 * The one idea: whatever is stored, the exchange either refuses it (and
 * uses the default) or ends up with a profile inside the bounds of SPEC 15:
 * at most 64 interests of 1-64 characters, which must be the first 64 such
 * strings of what was stored, in order (checked against a reading with
 * cJSON alone), and an ltv_score in 0..1. The kept profile then goes where
 * the exchange sends it, into an OpenRTB BidRequest whose keywords are
 * those interests; and printed back out, it decodes to the same interests
 * (cutting is done once and for all). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz_common.h"

/* The request every bidder call below is made for. */
static const char request_json[] = "{\"request_id\":\"r-1\",\"user_id\":\"u-7\","
                                   "\"ad_slot_id\":\"slot-9\",\"floor_price\":1.5}";

static int interest_ok(const char *s) {
    size_t n = fuzz_utf8_chars(s);
    return n >= 1 && n <= PROTO_INTEREST_MAX_CHARS;
}

/* p->interests against the stored array: the first PROTO_INTERESTS_MAX
 * strings of 1-64 characters, in order. */
static void check_interests(const char *json, size_t size, const proto_profile *p) {
    cJSON *root = cJSON_ParseWithLength(json, size);
    fuzz_check(cJSON_IsObject(root), "profile: accepted what cJSON does not read as an object");
    const cJSON *stored = cJSON_GetObjectItemCaseSensitive(root, "interests");
    if (stored == NULL || cJSON_IsNull(stored)) {
        fuzz_check(p->interests == NULL, "profile: interests out of nothing");
        cJSON_Delete(root);
        return;
    }
    fuzz_check(cJSON_IsArray(p->interests), "profile: interests not an array");
    const cJSON *kept = p->interests->child, *item;
    int n = 0;
    cJSON_ArrayForEach(item, stored) {
        fuzz_check(cJSON_IsString(item), "profile: accepted an interest that is not a string");
        if (n == PROTO_INTERESTS_MAX || !interest_ok(item->valuestring)) continue;
        fuzz_check(kept != NULL && cJSON_IsString(kept) &&
                       strcmp(kept->valuestring, item->valuestring) == 0,
                   "profile: kept interests are not the first 64 of 1-64 characters");
        kept = kept->next;
        n++;
    }
    fuzz_check(kept == NULL, "profile: kept more interests than the stored ones allow");
    fuzz_check(cJSON_GetArraySize(p->interests) == n, "profile: interest count");
    cJSON_Delete(root);
}

/* The bidder call's keywords are the kept interests, each once. */
static void check_keywords(const proto_profile *p) {
    proto_bid_request req;
    char err[256];
    fuzz_check(proto_bid_request_decode(request_json, sizeof request_json - 1, 65536, &req, err,
                                        sizeof err) == PROTO_OK,
               "profile: the fixed request does not decode");
    proto_buf out;
    proto_buf_init(&out);
    fuzz_check(proto_openrtb_request_encode(&req, p, fuzz_default_config(), 95, &out) == 0,
               "openrtb: encode failed");
    cJSON *root = fuzz_parse_output(&out, "proto_openrtb_request_encode");
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(root, "user");
    const char *keywords = fuzz_get_string(user, "keywords");
    const cJSON *ext = cJSON_GetObjectItemCaseSensitive(user, "ext");
    fuzz_check(fuzz_get_number(ext, "ltv_score") == p->ltv_score, "openrtb: ltv_score");
    /* Each kept interest appears in the keywords; at most 64 entries, so at
     * most 63 commas besides those inside interests. */
    size_t commas = 0, inner = 0;
    for (const char *c = keywords; *c != '\0'; c++)
        commas += *c == ',';
    const cJSON *item;
    cJSON_ArrayForEach(item, p->interests) {
        fuzz_check(strstr(keywords, item->valuestring) != NULL,
                   "openrtb: a kept interest is not in the keywords");
        for (const char *c = item->valuestring; *c != '\0'; c++)
            inner += *c == ',';
    }
    fuzz_check(commas <= inner + PROTO_INTERESTS_MAX - 1 || p->interests == NULL,
               "openrtb: more keywords than interests");
    cJSON_Delete(root);
    proto_buf_free(&out);
    proto_bid_request_free(&req);
}

/* The kept profile, printed by cJSON, decodes to the same interests. */
static void check_fixed_point(const proto_profile *p) {
    char *text = cJSON_PrintUnformatted(p->root);
    fuzz_check(text != NULL, "profile: cJSON_PrintUnformatted failed");
    proto_profile again;
    char err[160];
    fuzz_check(proto_profile_decode(text, strlen(text), &again, err, sizeof err) == PROTO_OK,
               "profile: a kept profile printed back does not decode");
    fuzz_check((p->interests == NULL) == (again.interests == NULL) &&
                   (p->interests == NULL || cJSON_Compare(p->interests, again.interests, 1)),
               "profile: a kept profile decodes to other interests");
    /* cJSON prints a double with 15 significant digits when that reads back
     * within DBL_EPSILON of it (relative), else 17: exact to that much, not
     * to the bit (5.2617055646445292e-34 prints as 5.26170556464453e-34). */
    double a = again.ltv_score, b = p->ltv_score;
    fuzz_check(fabs(a - b) <= fmax(fabs(a), fabs(b)) * DBL_EPSILON, "profile: ltv_score changed");
    proto_profile_free(&again);
    cJSON_free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *json = (const char *)data;
    proto_profile p;
    char err[160]; /* the size rtb/txn.c uses */
    proto_err e = proto_profile_decode(json, size, &p, err, sizeof err);
    if (e != PROTO_OK) {
        fuzz_check(p.root == NULL && p.interests == NULL, "profile: tree kept on error");
        fuzz_check(err[0] != '\0', "profile: error without a message");
        fuzz_check(fuzz_utf8_ok(err, strlen(err)), "profile: message not UTF-8");
        proto_profile_free(&p);
        return 0;
    }
    fuzz_check(p.root != NULL, "profile: no parse tree");
    fuzz_check(p.ltv_score >= 0.0 && p.ltv_score <= 1.0, "profile: ltv_score out of 0..1");
    check_interests(json, size, &p);
    check_keywords(&p);
    check_fixed_point(&p);
    proto_profile_free(&p);
    fuzz_check(p.root == NULL && p.interests == NULL, "profile: proto_profile_free");
    return 0;
}

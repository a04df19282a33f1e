/* fuzz_request.c -- libFuzzer target: a bid request payload (SPEC 2, with
 * the interest bounds of SPEC 15), and the same bytes as a stored user
 * profile (SPEC 3.2) for the bidder call (fuzz_profile.c fuzzes profiles
 * on their own, fuzz_event.c the ad events).
 *
 * The one idea: follow the bytes as far as the exchange would. A request
 * that decodes is encoded into the OpenRTB BidRequest of a bidder call
 * (with the profile when the same bytes decode as one) and into an auction
 * result of every status; one that does not becomes the `invalid` result
 * or the auction:errors notice. Every output is parsed back and checked
 * field by field against what went in; any broken promise aborts. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz_common.h"

/* limits.max_request_bytes by default; tools/fuzz feeds up to 70000 bytes,
 * so the size gate is on the path too. */
#define REQUEST_MAX_BYTES 65536
#define TOPIC "rtb/requests/pub-1"

static void check_request(const proto_bid_request *r) {
    size_t n = strlen(r->request_id);
    fuzz_check(r->has_request_id, "request: decoded without has_request_id");
    fuzz_check(n >= 1 && n <= PROTO_ID_MAX_CHARS, "request: request_id length");
    fuzz_check(strspn(r->request_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789._:-") == n,
               "request: request_id alphabet");
    fuzz_check(r->user_id[0] != '\0' && r->ad_slot_id[0] != '\0', "request: empty id");
    fuzz_check(fuzz_utf8_ok(r->user_id, strlen(r->user_id)), "request: user_id not UTF-8");
    fuzz_check(r->floor_micros >= 0 && r->floor_micros <= AUCTION_PRICE_MAX_MICROS,
               "request: floor out of range");
    fuzz_check(r->root != NULL, "request: no parse tree");
    fuzz_check(r->user_context == NULL || cJSON_IsObject(r->user_context),
               "request: user_context not an object");
    fuzz_check(r->context_interests == NULL || cJSON_IsArray(r->context_interests),
               "request: interests not an array");
    int n_interests = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, r->context_interests) {
        size_t chars = cJSON_IsString(item) ? fuzz_utf8_chars(item->valuestring) : 0;
        fuzz_check(chars >= 1 && chars <= PROTO_INTEREST_MAX_CHARS,
                   "request: an interest not of 1-64 characters");
        n_interests++;
    }
    fuzz_check(n_interests <= PROTO_INTERESTS_MAX, "request: more than 64 interests");
    fuzz_check(!r->has_timestamp || isfinite(r->timestamp), "request: timestamp not finite");
}

static void check_profile(proto_err e, const proto_profile *p) {
    if (e != PROTO_OK) {
        fuzz_check(p->root == NULL && p->interests == NULL, "profile: tree kept on error");
        return;
    }
    fuzz_check(p->root != NULL, "profile: no parse tree");
    fuzz_check(p->ltv_score >= 0.0 && p->ltv_score <= 1.0, "profile: ltv_score out of 0..1");
    fuzz_check(p->interests == NULL || cJSON_IsArray(p->interests),
               "profile: interests not an array");
}

/* user.keywords against the interests it joins (SPEC 5: profile, then
 * user_context, each once). Both lists hold at most 64 interests (SPEC 15),
 * so the quadratic check below stays cheap. Checked when no interest holds
 * a comma (which would make the joined string ambiguous). */
static void check_keywords(const char *keywords, const cJSON *profile_interests,
                           const cJSON *context_interests) {
    const char *want[2 * PROTO_INTERESTS_MAX];
    size_t nwant = 0;
    const cJSON *lists[2] = {profile_interests, context_interests};
    for (int l = 0; l < 2; l++) {
        const cJSON *item;
        cJSON_ArrayForEach(item, lists[l]) {
            const char *s = item->valuestring;
            fuzz_check(nwant < 2 * PROTO_INTERESTS_MAX,
                       "openrtb: more interests than the bounds allow");
            if (strchr(s, ',') != NULL) return;
            int seen = s[0] == '\0';
            for (size_t i = 0; i < nwant && !seen; i++)
                seen = strcmp(want[i], s) == 0;
            if (!seen) want[nwant++] = s;
        }
    }
    /* keywords must be exactly want[0],want[1],... in this order. */
    const char *p = keywords;
    for (size_t i = 0; i < nwant; i++) {
        size_t n = strlen(want[i]);
        fuzz_check(strncmp(p, want[i], n) == 0, "openrtb: user.keywords is not the interests");
        p += n;
        if (i + 1 < nwant) {
            fuzz_check(*p == ',', "openrtb: user.keywords is not comma-separated");
            p++;
        }
    }
    fuzz_check(*p == '\0', "openrtb: user.keywords has more than the interests");
}

/* The bidder call of SPEC 5, parsed back. */
static void check_bidder_call(const proto_bid_request *req, const proto_profile *profile,
                              size_t size) {
    auction_type at = (size & 1) ? AUCTION_FIRST_PRICE : AUCTION_SECOND_PRICE;
    int tmax_ms = (int)(size % 200) - 50; /* 0 and below are sent as 1 */
    proto_buf out;
    proto_buf_init(&out);
    fuzz_check(proto_openrtb_request_encode(req, profile, at, tmax_ms, "USD", &out) == 0,
               "openrtb: encode failed");
    cJSON *root = fuzz_parse_output(&out, "proto_openrtb_request_encode");

    fuzz_check(strcmp(fuzz_get_string(root, "id"), req->request_id) == 0, "openrtb: id");
    fuzz_check(fuzz_get_number(root, "at") == (double)at, "openrtb: at");
    fuzz_check(fuzz_get_number(root, "tmax") == (tmax_ms < 1 ? 1 : tmax_ms), "openrtb: tmax");
    const cJSON *imp = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "imp"), 0);
    fuzz_check(cJSON_IsObject(imp), "openrtb: imp[0]");
    fuzz_check(strcmp(fuzz_get_string(imp, "tagid"), req->ad_slot_id) == 0, "openrtb: tagid");
    int64_t floor_micros = -1;
    fuzz_check(auction_micros_from_double(fuzz_get_number(imp, "bidfloor"), &floor_micros) == 0 &&
                   floor_micros == req->floor_micros,
               "openrtb: bidfloor does not read back as the floor");
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(root, "user");
    fuzz_check(cJSON_IsObject(user), "openrtb: user");
    fuzz_check(strcmp(fuzz_get_string(user, "id"), req->user_id) == 0, "openrtb: user.id");
    check_keywords(fuzz_get_string(user, "keywords"), profile != NULL ? profile->interests : NULL,
                   req->context_interests);
    const cJSON *user_ext = cJSON_GetObjectItemCaseSensitive(user, "ext");
    double ltv = profile != NULL ? profile->ltv_score : 0.0;
    fuzz_check(fuzz_get_number(user_ext, "ltv_score") == ltv, "openrtb: ltv_score");
    const cJSON *ext = cJSON_GetObjectItemCaseSensitive(root, "ext");
    fuzz_check(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(ext, "user_context")),
               "openrtb: ext.user_context");

    cJSON_Delete(root);
    proto_buf_free(&out);
}

/* The result of SPEC 4 for `status`, parsed back. */
static void check_result(const proto_bid_request *req, proto_status status, const char *error,
                         size_t size) {
    proto_result r = {
        .request_id = req->request_id,
        .status = status,
        .advertiser_id = req->user_id,
        .bid_price_micros = req->floor_micros,
        .clearing_price_micros = req->floor_micros / 2,
        .ad_id = req->ad_slot_id,
        .creative_url = (size & 2) ? NULL : req->user_id,
        .bids = (unsigned)size,
        .bidders = (unsigned)size + 1,
        .timeouts = (unsigned)(size % 7),
        .errors = UINT32_MAX,
        .latency_us = (int64_t)size * 37 - 1000, /* negative prints as 0 */
        .timestamp_us = INT64_C(1795000000123456) + (int64_t)size,
        .error = error,
    };
    proto_buf out;
    proto_buf_init(&out);
    fuzz_check(proto_result_encode(&r, &out) == 0, "result: encode failed");
    cJSON *root = fuzz_parse_output(&out, "proto_result_encode");

    fuzz_check(strcmp(fuzz_get_string(root, "request_id"), req->request_id) == 0,
               "result: request_id");
    fuzz_check(strcmp(fuzz_get_string(root, "status"), proto_status_str(status)) == 0,
               "result: status");
    const cJSON *winner = cJSON_GetObjectItemCaseSensitive(root, "winner");
    if (status == PROTO_STATUS_SUCCESS) {
        fuzz_check(cJSON_IsObject(winner), "result: winner not an object");
        int64_t micros = -1;
        fuzz_check(auction_micros_from_double(fuzz_get_number(winner, "bid_price"), &micros) == 0 &&
                       micros == r.bid_price_micros,
                   "result: bid_price does not read back");
        fuzz_check(strcmp(fuzz_get_string(winner, "ad_id"), req->ad_slot_id) == 0, "result: ad_id");
        fuzz_check(strcmp(fuzz_get_string(winner, "creative_url"),
                          r.creative_url != NULL ? r.creative_url : "") == 0,
                   "result: creative_url");
    } else {
        fuzz_check(cJSON_IsNull(winner), "result: winner not null");
    }
    if (status == PROTO_STATUS_INVALID)
        fuzz_check(strcmp(fuzz_get_string(root, "error"), error) == 0, "result: error");
    if (status == PROTO_STATUS_INVALID || status == PROTO_STATUS_OVERLOADED)
        fuzz_check(fuzz_get_number(root, "bids") == 0 && fuzz_get_number(root, "errors") == 0,
                   "result: counters of an auction that never ran");
    else
        fuzz_check(fuzz_get_number(root, "errors") == (double)UINT32_MAX, "result: errors");
    fuzz_check(fuzz_get_number(root, "latency_ms") >= 0, "result: latency_ms negative");

    cJSON_Delete(root);
    proto_buf_free(&out);
}

/* The auction:errors notice of SPEC 4, parsed back. */
static void check_error_notice(const char *error, const char *topic, const char *request_id) {
    proto_buf out;
    proto_buf_init(&out);
    fuzz_check(proto_error_encode(error, topic, request_id, &out) == 0, "notice: encode failed");
    cJSON *root = fuzz_parse_output(&out, "proto_error_encode");
    fuzz_check(strcmp(fuzz_get_string(root, "status"), "invalid") == 0, "notice: status");
    fuzz_check(strcmp(fuzz_get_string(root, "error"), error) == 0, "notice: error");
    fuzz_check(strcmp(fuzz_get_string(root, "topic"), topic) == 0, "notice: topic");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "request_id");
    fuzz_check(request_id != NULL ? cJSON_IsString(id) && strcmp(id->valuestring, request_id) == 0
                                  : id == NULL,
               "notice: request_id");
    cJSON_Delete(root);
    proto_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    char err[256]; /* the size rtb/server.c uses */
    proto_bid_request req;
    proto_err e = proto_bid_request_decode(text, size, REQUEST_MAX_BYTES, &req, err, sizeof err);

    char perr[256];
    proto_profile profile;
    proto_err pe = proto_profile_decode(text, size, &profile, perr, sizeof perr);
    check_profile(pe, &profile);
    fuzz_check(pe == PROTO_OK || perr[0] != '\0', "profile: error without a message");

    fuzz_check((size > REQUEST_MAX_BYTES) == (e == PROTO_ERR_TOO_LARGE), "request: size gate");
    if (e == PROTO_OK) {
        check_request(&req);
        check_bidder_call(&req, pe == PROTO_OK ? &profile : NULL, size);
        check_bidder_call(&req, NULL, size + 1);
        for (int s = 0; s < PROTO_STATUS_COUNT; s++)
            check_result(&req, (proto_status)s, "request_id: duplicate", size);
        /* A duplicate goes to auction:errors; the topic is any UTF-8. */
        check_error_notice("request_id: duplicate of a request still in flight", req.user_id,
                           req.request_id);
    } else {
        fuzz_check(req.root == NULL && req.user_context == NULL && req.context_interests == NULL,
                   "request: tree kept on error");
        fuzz_check(err[0] != '\0', "request: error without a message");
        if (req.has_request_id)
            check_result(&req, PROTO_STATUS_INVALID, err, size);
        else
            check_error_notice(err, TOPIC, NULL);
    }
    proto_bid_request_free(&req);
    proto_profile_free(&profile);
    return 0;
}

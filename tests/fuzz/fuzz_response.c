/* fuzz_response.c -- libFuzzer target: a bidder's HTTP body, decoded as the
 * OpenRTB 2.6 BidResponse to request "r-1" (SPEC 5, the bounds of SPEC 15).
 *
 * The one idea: whatever a bidder sends, the exchange ends up with exactly
 * one status, and with OK a bid it can put in an auction and a result
 * (price > 0 and <= AUCTION_PRICE_MAX_MICROS, strings of at most 2048 bytes
 * that print as JSON, URLs that are http(s) with a host). Which bid is
 * taken, and why none is, is checked against a reading of the body that
 * does not use response.c. The body is decoded twice: the decoder parses
 * in a process-wide scratch arena (proto/buf.c), and the second answer must
 * equal the first, so state left behind by one call shows up as a
 * difference. */
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz_common.h"

#define REQUEST_ID "r-1"
/* limits.max_response_bytes by default; tools/fuzz feeds up to 70000 bytes. */
#define RESPONSE_MAX_BYTES 65536

#define NSTRINGS 9

/* The strings of a proto_bid, in one list for the loops below; the last
 * four are URLs. */
static void bid_strings(const proto_bid *b, const char *s[NSTRINGS]) {
    s[0] = b->bid_id;
    s[1] = b->imp_id;
    s[2] = b->seat;
    s[3] = b->ad_id;
    s[4] = b->crid;
    s[5] = b->creative_url;
    s[6] = b->nurl;
    s[7] = b->lurl;
    s[8] = b->burl;
}
#define FIRST_URL 5

static void check_bid(proto_bid_status st, const proto_bid *b, const char *err) {
    const char *s[NSTRINGS];
    bid_strings(b, s);
    fuzz_check(st >= PROTO_BID_OK && st <= PROTO_BID_BAD_FIELD, "response: status out of enum");
    fuzz_check(strcmp(proto_bid_status_str(st), "unknown") != 0, "response: status name");
    if (st != PROTO_BID_OK) {
        fuzz_check(b->price_micros == 0 && b->block == NULL, "response: bid kept on error");
        for (int i = 0; i < NSTRINGS; i++)
            fuzz_check(s[i] == NULL, "response: string kept on error");
        fuzz_check(err[0] != '\0', "response: error without a message");
        return;
    }
    fuzz_check(err[0] == '\0', "response: a message with OK");
    fuzz_check(b->price_micros > 0, "response: price_micros <= 0");
    fuzz_check(b->price_micros <= AUCTION_PRICE_MAX_MICROS, "response: price over the maximum");
    for (int i = 0; i < NSTRINGS; i++) {
        if (s[i] == NULL) continue;
        size_t n = strlen(s[i]);
        fuzz_check(b->block != NULL && s[i] >= b->block, "response: string outside its block");
        fuzz_check(fuzz_utf8_ok(s[i], n), "response: string not UTF-8");
        fuzz_check(n <= PROTO_BID_STRING_MAX_BYTES, "response: string over 2048 bytes");
        if (i >= FIRST_URL) fuzz_check(fuzz_url_ok(s[i]), "response: URL not http(s) with a host");
    }
}

static void check_same(proto_bid_status st1, const proto_bid *a, proto_bid_status st2,
                       const proto_bid *b) {
    const char *sa[NSTRINGS], *sb[NSTRINGS];
    bid_strings(a, sa);
    bid_strings(b, sb);
    fuzz_check(st1 == st2, "response: second decode gave another status");
    fuzz_check(a->price_micros == b->price_micros, "response: second decode gave another price");
    for (int i = 0; i < NSTRINGS; i++)
        fuzz_check(fuzz_same_string(sa[i], sb[i]), "response: second decode gave other strings");
}

/* SPEC 15 on one bid, read without response.c: every string taken (a
 * non-string is not taken; a URL "" is absent) at most 2048 bytes, the
 * URLs http(s) with a host. */
static int strings_ok(const cJSON *seat, const cJSON *bid) {
    static const char *const keys[] = {"id",   "impid", "adid", "crid", "seat",
                                       "iurl", "nurl",  "lurl", "burl"};
    for (int i = 0; i < 9; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(i == 4 ? seat : bid, keys[i]);
        if (!cJSON_IsString(v)) continue;
        const char *s = v->valuestring;
        int url = i >= 5;
        if (url && s[0] == '\0') continue;
        if (strlen(s) > 2048 || (url && !fuzz_url_ok(s))) return 0;
    }
    return 1;
}

/* The bid that OpenRTB 2.6 4.2.3 and SPEC 5, 15 pick, read without
 * response.c: among all seatbid[].bid[] whose price is a number with micros
 * in 1..AUCTION_PRICE_MAX_MICROS and whose strings keep the bounds, the
 * highest price; the first of equals. With none: BAD_FIELD when a bid with
 * such a price broke a bound, else BAD_PRICE. */
static void check_best(const char *body, size_t size, proto_bid_status st, const proto_bid *b) {
    cJSON *root = cJSON_ParseWithLength(body, size);
    fuzz_check(root != NULL, "response: a bid status for a body cJSON refuses");
    const cJSON *seat, *bid, *best = NULL, *best_seat = NULL;
    int64_t best_micros = 0;
    int usable = 0, broken = 0;
    cJSON_ArrayForEach(seat, cJSON_GetObjectItemCaseSensitive(root, "seatbid")) {
        cJSON_ArrayForEach(bid, cJSON_GetObjectItemCaseSensitive(seat, "bid")) {
            const cJSON *price = cJSON_GetObjectItemCaseSensitive(bid, "price");
            int64_t micros;
            if (!cJSON_IsNumber(price) ||
                auction_micros_from_double(price->valuedouble, &micros) != 0 || micros <= 0)
                continue;
            usable = 1;
            if (!strings_ok(seat, bid)) {
                broken = 1;
                continue;
            }
            if (micros > best_micros) {
                best = bid;
                best_seat = seat;
                best_micros = micros;
            }
        }
    }
    if (st == PROTO_BID_BAD_PRICE) {
        fuzz_check(!usable, "response: bad_price with a usable price");
    } else if (st == PROTO_BID_BAD_FIELD) {
        fuzz_check(best == NULL && broken, "response: bad_field with a valid bid, or none broken");
    } else {
        fuzz_check(best != NULL && best_micros == b->price_micros, "response: not the best price");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(best, "id");
        const cJSON *seat_name = cJSON_GetObjectItemCaseSensitive(best_seat, "seat");
        fuzz_check(fuzz_same_string(cJSON_IsString(id) ? id->valuestring : NULL, b->bid_id) &&
                       fuzz_same_string(cJSON_IsString(seat_name) ? seat_name->valuestring : NULL,
                                        b->seat),
                   "response: not the first bid of the best price");
    }
    cJSON_Delete(root);
}

/* The winner as published (SPEC 4): seat, adid and iurl reach subscribers. */
static void check_result(const proto_bid *b) {
    proto_result r = {
        .request_id = REQUEST_ID,
        .status = PROTO_STATUS_SUCCESS,
        .advertiser_id = b->seat != NULL ? b->seat : "adv-1",
        .bid_price_micros = b->price_micros,
        .clearing_price_micros = b->price_micros,
        .ad_id = b->ad_id,
        .creative_url = b->creative_url,
        .bids = 1,
        .bidders = 1,
        .latency_us = 12400,
        .timestamp_us = INT64_C(1795000000123000),
    };
    proto_buf out;
    proto_buf_init(&out);
    fuzz_check(proto_result_encode(&r, &out) == 0, "result: encode failed");
    cJSON *root = fuzz_parse_output(&out, "proto_result_encode");
    const cJSON *winner = cJSON_GetObjectItemCaseSensitive(root, "winner");
    fuzz_check(cJSON_IsObject(winner), "result: winner");
    int64_t micros = -1;
    fuzz_check(auction_micros_from_double(fuzz_get_number(winner, "bid_price"), &micros) == 0 &&
                   micros == b->price_micros,
               "result: bid_price does not read back as the bid's price");
    fuzz_check(strcmp(fuzz_get_string(winner, "ad_id"), b->ad_id ? b->ad_id : "") == 0,
               "result: ad_id");
    fuzz_check(strcmp(fuzz_get_string(winner, "creative_url"),
                      b->creative_url ? b->creative_url : "") == 0,
               "result: creative_url");
    cJSON_Delete(root);
    proto_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *body = (const char *)data;
    char err[160]; /* the size rtb/txn.c uses */
    proto_bid bid, again;
    proto_bid_status st = proto_bid_response_decode(body, size, RESPONSE_MAX_BYTES, REQUEST_ID,
                                                    &bid, err, sizeof err);
    check_bid(st, &bid, err);
    fuzz_check((size > RESPONSE_MAX_BYTES) == (st == PROTO_BID_TOO_LARGE), "response: size gate");
    if (st == PROTO_BID_OK || st == PROTO_BID_BAD_PRICE || st == PROTO_BID_BAD_FIELD)
        check_best(body, size, st, &bid);
    if (st == PROTO_BID_OK) check_result(&bid);

    proto_bid_status st2 = proto_bid_response_decode(body, size, RESPONSE_MAX_BYTES, REQUEST_ID,
                                                     &again, err, sizeof err);
    check_same(st, &bid, st2, &again);

    proto_bid_free(&bid);
    proto_bid_free(&again);
    fuzz_check(bid.block == NULL && bid.price_micros == 0, "response: proto_bid_free");
    return 0;
}

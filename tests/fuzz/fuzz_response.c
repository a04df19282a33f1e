/* fuzz_response.c -- libFuzzer target: a bidder's HTTP body, decoded as the
 * OpenRTB 2.6 BidResponse to request "r-1" (SPEC 5).
 *
 * The one idea: whatever a bidder sends, the exchange ends up with exactly
 * one status, and with OK a bid it can put in an auction and a result
 * (price > 0 and <= AUCTION_PRICE_MAX_MICROS, strings that print as JSON).
 * The body is decoded twice: the decoder parses in a process-wide scratch
 * arena (proto/buf.c), and the second answer must equal the first, so state
 * left behind by one call shows up as a difference. */
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz_common.h"

#define REQUEST_ID "r-1"
/* limits.max_response_bytes by default; tools/fuzz feeds up to 70000 bytes. */
#define RESPONSE_MAX_BYTES 65536

/* The strings of a proto_bid, in one list for the loops below. */
static void bid_strings(const proto_bid *b, const char *s[8]) {
    s[0] = b->bid_id;
    s[1] = b->imp_id;
    s[2] = b->seat;
    s[3] = b->ad_id;
    s[4] = b->crid;
    s[5] = b->creative_url;
    s[6] = b->nurl;
    s[7] = b->lurl;
}

static void check_bid(proto_bid_status st, const proto_bid *b, const char *err) {
    const char *s[8];
    bid_strings(b, s);
    fuzz_check(st >= PROTO_BID_OK && st <= PROTO_BID_TOO_LARGE, "response: status out of enum");
    fuzz_check(strcmp(proto_bid_status_str(st), "unknown") != 0, "response: status name");
    if (st != PROTO_BID_OK) {
        fuzz_check(b->price_micros == 0 && b->block == NULL, "response: bid kept on error");
        for (int i = 0; i < 8; i++)
            fuzz_check(s[i] == NULL, "response: string kept on error");
        fuzz_check(err[0] != '\0', "response: error without a message");
        return;
    }
    fuzz_check(b->price_micros > 0, "response: price_micros <= 0");
    fuzz_check(b->price_micros <= AUCTION_PRICE_MAX_MICROS, "response: price over the maximum");
    for (int i = 0; i < 8; i++) {
        if (s[i] == NULL) continue;
        fuzz_check(b->block != NULL && s[i] >= b->block, "response: string outside its block");
        fuzz_check(fuzz_utf8_ok(s[i], strlen(s[i])), "response: string not UTF-8");
    }
}

static void check_same(proto_bid_status st1, const proto_bid *a, proto_bid_status st2,
                       const proto_bid *b) {
    const char *sa[8], *sb[8];
    bid_strings(a, sa);
    bid_strings(b, sb);
    fuzz_check(st1 == st2, "response: second decode gave another status");
    fuzz_check(a->price_micros == b->price_micros, "response: second decode gave another price");
    for (int i = 0; i < 8; i++)
        fuzz_check(fuzz_same_string(sa[i], sb[i]), "response: second decode gave other strings");
}

/* The bid that OpenRTB 2.6 4.2.3 and SPEC 5 pick, read without response.c:
 * among all seatbid[].bid[], the highest price that is a number with
 * micros in 1..AUCTION_PRICE_MAX_MICROS; the first of equals. */
static void check_best(const char *body, size_t size, const proto_bid *b) {
    cJSON *root = cJSON_ParseWithLength(body, size);
    fuzz_check(root != NULL, "response: OK for a body cJSON refuses");
    const cJSON *seat, *bid, *best = NULL, *best_seat = NULL;
    int64_t best_micros = 0;
    cJSON_ArrayForEach(seat, cJSON_GetObjectItemCaseSensitive(root, "seatbid")) {
        cJSON_ArrayForEach(bid, cJSON_GetObjectItemCaseSensitive(seat, "bid")) {
            const cJSON *price = cJSON_GetObjectItemCaseSensitive(bid, "price");
            int64_t micros;
            if (cJSON_IsNumber(price) &&
                auction_micros_from_double(price->valuedouble, &micros) == 0 &&
                micros > best_micros) {
                best = bid;
                best_seat = seat;
                best_micros = micros;
            }
        }
    }
    fuzz_check(best != NULL && best_micros == b->price_micros, "response: not the best price");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(best, "id");
    const cJSON *seat_name = cJSON_GetObjectItemCaseSensitive(best_seat, "seat");
    fuzz_check(
        fuzz_same_string(cJSON_IsString(id) ? id->valuestring : NULL, b->bid_id) &&
            fuzz_same_string(cJSON_IsString(seat_name) ? seat_name->valuestring : NULL, b->seat),
        "response: not the first bid of the best price");
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
    if (st == PROTO_BID_OK) {
        check_best(body, size, &bid);
        check_result(&bid);
    }

    proto_bid_status st2 = proto_bid_response_decode(body, size, RESPONSE_MAX_BYTES, REQUEST_ID,
                                                     &again, err, sizeof err);
    check_same(st, &bid, st2, &again);

    proto_bid_free(&bid);
    proto_bid_free(&again);
    fuzz_check(bid.block == NULL && bid.price_micros == 0, "response: proto_bid_free");
    return 0;
}

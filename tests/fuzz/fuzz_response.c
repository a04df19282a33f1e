/* fuzz_response.c -- libFuzzer target: a bidder's HTTP body, decoded as the
 * OpenRTB 2.6 BidResponse to request "r-1" (SPEC 5, the bounds of SPEC 15),
 * both as the single best bid and (SPEC 17) as every valid bid against a
 * request with imps "1", "top" and "side" and deals; and the same bytes as
 * the currency:rates table (SPEC 17).
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
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz_common.h"

#define REQUEST_ID "r-1"
/* limits.max_response_bytes by default; tools/fuzz feeds up to 70000 bytes. */
#define RESPONSE_MAX_BYTES 65536

#define NSTRINGS 10

/* The strings of a proto_bid, in one list for the loops below; the last
 * four are URLs. */
static void bid_strings(const proto_bid *b, const char *s[NSTRINGS]) {
    s[0] = b->bid_id;
    s[1] = b->imp_id;
    s[2] = b->seat;
    s[3] = b->ad_id;
    s[4] = b->crid;
    s[5] = b->deal_id;
    s[6] = b->creative_url;
    s[7] = b->nurl;
    s[8] = b->lurl;
    s[9] = b->burl;
}
#define FIRST_URL 6

/* `block` is what owns the bid's strings: b->block, or its list's. */
static void check_bid_in(proto_bid_status st, const proto_bid *b, const char *err,
                         const void *block) {
    const char *s[NSTRINGS];
    bid_strings(b, s);
    fuzz_check(st >= PROTO_BID_OK && st < PROTO_BID_STATUS_COUNT && st != PROTO_BID_BAD_IMP &&
                   st != PROTO_BID_BAD_DEAL && st != PROTO_BID_TOO_MANY,
               "response: status out of enum");
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
        fuzz_check(block != NULL && (const void *)s[i] >= block,
                   "response: string outside its block");
        fuzz_check(fuzz_utf8_ok(s[i], n), "response: string not UTF-8");
        fuzz_check(n <= PROTO_BID_STRING_MAX_BYTES, "response: string over 2048 bytes");
        if (i >= FIRST_URL) fuzz_check(fuzz_url_ok(s[i]), "response: URL not http(s) with a host");
    }
}

static void check_bid(proto_bid_status st, const proto_bid *b, const char *err) {
    check_bid_in(st, b, err, b->block);
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
                                       "iurl", "nurl",  "lurl", "burl", "dealid"};
    for (int i = 0; i < 10; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(i == 4 ? seat : bid, keys[i]);
        if (!cJSON_IsString(v)) continue;
        const char *s = v->valuestring;
        int url = i >= 5 && i < 9;
        if (i >= 5 && s[0] == '\0') continue; /* a URL or dealid given as "" is absent */
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
    /* SPEC 17: the bids' currency is the response's cur, USD when absent;
     * any other shape would have refused the response (BAD_CUR). */
    const cJSON *cur = cJSON_GetObjectItemCaseSensitive(root, "cur");
    const char *want = "USD";
    if (cur != NULL && !cJSON_IsNull(cur)) {
        fuzz_check(cJSON_IsString(cur) && strlen(cur->valuestring) == 3 &&
                       strspn(cur->valuestring, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 3,
                   "response: a cur that is not 3 capital letters was taken");
        want = cur->valuestring;
    }
    if (st == PROTO_BID_OK) fuzz_check(strcmp(b->cur, want) == 0, "response: the bid's cur");
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

/* ---- SPEC 17: every valid bid, against imps and deals ------------------ */

/* The request the list decoder checks bids against. */
static const char multi_json[] =
    "{\"request_id\":\"r-1\",\"user_id\":\"u\",\"imps\":["
    "{\"id\":\"1\",\"ad_slot_id\":\"s1\",\"floor_price\":1,\"banner\":{\"w\":300,\"h\":250}},"
    "{\"id\":\"top\",\"ad_slot_id\":\"s2\",\"floor_price\":0.5,\"banner\":{\"w\":728,\"h\":90},"
    "\"pmp\":{\"deals\":[{\"id\":\"deal-1\",\"bidfloor\":2},{\"id\":\"deal-2\"}]}},"
    "{\"id\":\"side\",\"ad_slot_id\":\"s3\",\"floor_price\":0,\"video\":{\"mimes\":[\"v\"]},"
    "\"pmp\":{\"private_auction\":1,\"deals\":[{\"id\":\"deal-1\"}]}}]}";

static const proto_bid_request *multi_request(void) {
    static proto_bid_request req;
    static int made;
    if (!made) {
        char err[256];
        fuzz_check(proto_bid_request_decode(multi_json, sizeof multi_json - 1, 65536, &req, err,
                                            sizeof err) == PROTO_OK,
                   "response: the fixed multi-imp request does not decode");
        made = 1;
    }
    return &req;
}

/* What proto_bid_response_decode_all promises, read apart from response.c
 * where it can be: each bid kept names an imp of the request and a deal of
 * that imp, carries the response's cur, and keeps the bounds of one bid;
 * refusals are counted; the status says why none was kept. */
static void check_list(const char *body, size_t size, proto_bid_status st, const proto_bid_list *l,
                       const char *err, proto_bid_status single) {
    const proto_bid_request *req = multi_request();
    unsigned refused = 0;
    for (int i = 0; i < PROTO_BID_STATUS_COUNT; i++) {
        int per_bid = i == PROTO_BID_BAD_PRICE || i == PROTO_BID_BAD_FIELD ||
                      i == PROTO_BID_BAD_IMP || i == PROTO_BID_BAD_DEAL || i == PROTO_BID_TOO_MANY;
        fuzz_check(per_bid || l->refused[i] == 0, "list: a refusal of a response-wide kind");
        refused += l->refused[i];
    }
    fuzz_check(strcmp(proto_bid_status_str(st), "unknown") != 0, "list: status name");
    if (st != PROTO_BID_OK) {
        fuzz_check(l->bids == NULL && l->block == NULL && l->nbids == 0,
                   "list: bids kept on error");
        fuzz_check(err[0] != '\0', "list: error without a message");
        fuzz_check(st != PROTO_BID_TOO_MANY, "list: too_many as a response's status");
        if (st == PROTO_BID_BAD_IMP || st == PROTO_BID_BAD_DEAL)
            fuzz_check(l->refused[st] > 0, "list: a reason no bid had");
        /* What the single reading refuses, so does the list, and for the
         * same reason; the list refuses more only for imps, deals, or a bad
         * string the single reading had no need to look at. */
        if (single != PROTO_BID_OK)
            fuzz_check(st == single, "list: another status than the single reading");
        else
            fuzz_check(st == PROTO_BID_BAD_IMP || st == PROTO_BID_BAD_DEAL ||
                           st == PROTO_BID_BAD_FIELD,
                       "list: refused what the single reading took, for no bid's reason");
        return;
    }
    fuzz_check(single == PROTO_BID_OK, "list: bids where the single reading found none");
    fuzz_check(l->nbids >= 1 && l->nbids <= PROTO_RESPONSE_BIDS_MAX, "list: bid count");
    fuzz_check(l->refused[PROTO_BID_TOO_MANY] == 0 || l->nbids == PROTO_RESPONSE_BIDS_MAX,
               "list: too_many below the bound");
    fuzz_check(strlen(l->cur) == 3 && strspn(l->cur, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 3,
               "list: cur");
    fuzz_check(refused == 0 || err[0] != '\0', "list: refusals without a message");
    for (size_t i = 0; i < l->nbids; i++) {
        const proto_bid *b = &l->bids[i];
        fuzz_check(b->block == NULL, "list: a bid owning a block");
        check_bid_in(PROTO_BID_OK, b, "", l->block);
        fuzz_check(strcmp(b->cur, l->cur) == 0, "list: a bid's cur is not the response's");
        fuzz_check(b->imp_index >= 0 && (size_t)b->imp_index < req->nimps && b->imp_id != NULL &&
                       strcmp(b->imp_id, req->imps[b->imp_index].id) == 0,
                   "list: impid not the imp it was matched to");
        const proto_pmp *pmp = req->imps[b->imp_index].pmp;
        if (b->deal_id == NULL)
            fuzz_check(b->deal_index == -1, "list: a deal index without a dealid");
        else
            fuzz_check(b->deal_index >= 0 && pmp != NULL && (size_t)b->deal_index < pmp->ndeals &&
                           strcmp(pmp->deals[b->deal_index].id, b->deal_id) == 0,
                       "list: dealid not the deal it was matched to");
    }
    /* The bids kept are in the body's order, and are the valid ones: count
     * them from a reading with cJSON alone. */
    cJSON *root = cJSON_ParseWithLength(body, size);
    const cJSON *seat, *bid;
    size_t total = 0;
    cJSON_ArrayForEach(seat, cJSON_GetObjectItemCaseSensitive(root, "seatbid")) {
        cJSON_ArrayForEach(bid, cJSON_GetObjectItemCaseSensitive(seat, "bid")) total++;
    }
    fuzz_check(total == l->nbids + refused, "list: every bid is kept or refused, once");
    cJSON_Delete(root);
}

/* ---- SPEC 17: currency:rates ---------------------------------------------- */

/* Each triple: codes of 3 capital letters, a plain decimal above 0 with no
 * needless zeros, which reads as the very double the JSON number does. */
static void check_rates(const char *body, size_t size, proto_err e, const proto_rates *r,
                        const char *err) {
    if (e != PROTO_OK) {
        fuzz_check(r->rates == NULL && r->n == 0, "rates: kept on error");
        fuzz_check(err[0] != '\0', "rates: error without a message");
        return;
    }
    fuzz_check(r->n <= PROTO_RATES_CURRENCIES_MAX * PROTO_RATES_CURRENCIES_MAX, "rates: count");
    cJSON *root = cJSON_ParseWithLength(body, size);
    fuzz_check(cJSON_IsObject(root), "rates: accepted what cJSON does not read as an object");
    const cJSON *table = cJSON_GetObjectItemCaseSensitive(root, "conversions");
    if (table == NULL) table = root;
    for (size_t i = 0; i < r->n; i++) {
        const proto_rate *t = &r->rates[i];
        fuzz_check(strlen(t->from) == 3 && strspn(t->from, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 3 &&
                       strlen(t->to) == 3 && strspn(t->to, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 3,
                   "rates: a code");
        size_t n = strlen(t->text), digits = strspn(t->text, "0123456789");
        fuzz_check(n >= 1 && n <= PROTO_RATE_TEXT_MAX && digits >= 1, "rates: text");
        fuzz_check(t->text[0] != '0' || digits == 1, "rates: a leading zero");
        if (digits < n) {
            fuzz_check(t->text[digits] == '.' && n > digits + 1 &&
                           strspn(t->text + digits + 1, "0123456789") == n - digits - 1 &&
                           t->text[n - 1] != '0',
                       "rates: not a plain decimal without trailing zeros");
        }
        fuzz_check(strspn(t->text, "0.") < n, "rates: zero");
        const cJSON *from = cJSON_GetObjectItemCaseSensitive(table, t->from);
        const cJSON *to = cJSON_GetObjectItemCaseSensitive(from, t->to);
        fuzz_check(cJSON_IsNumber(to) && strtod(t->text, NULL) == to->valuedouble,
                   "rates: the text is not the JSON number");
    }
    cJSON_Delete(root);
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

    proto_bid_list list;
    proto_bid_status lst = proto_bid_response_decode_all(body, size, RESPONSE_MAX_BYTES,
                                                         multi_request(), &list, err, sizeof err);
    check_list(body, size, lst, &list, err, st);
    proto_bid_list_free(&list);
    fuzz_check(list.block == NULL && list.nbids == 0, "list: proto_bid_list_free");

    proto_rates rates;
    proto_err re = proto_currency_rates_decode(body, size, &rates, err, sizeof err);
    check_rates(body, size, re, &rates, err);
    proto_currency_rates_free(&rates);

    proto_bid_free(&bid);
    proto_bid_free(&again);
    fuzz_check(bid.block == NULL && bid.price_micros == 0, "response: proto_bid_free");
    return 0;
}

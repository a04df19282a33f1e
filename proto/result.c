/* result.c -- what the exchange publishes: the auction result on
 * auction:results:{request_id} and the notice on auction:errors (SPEC 4).
 *
 * The one idea: every number is printed from integers, never from a double:
 * prices from micros, latency and timestamp from thousandths, so subscribers
 * read 2.11, 12.4 and 1795000000.123 exactly. Fields come in the order of
 * the SPEC example; a request with `imps` (SPEC 17) adds its imps array
 * after "winner", and nothing else changes. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "proto/proto.h"

const char *proto_status_str(proto_status s) {
    switch (s) {
    case PROTO_STATUS_SUCCESS:
        return "success";
    case PROTO_STATUS_NO_BID:
        return "no_bid";
    case PROTO_STATUS_TIMEOUT:
        return "timeout";
    case PROTO_STATUS_INVALID:
        return "invalid";
    case PROTO_STATUS_OVERLOADED:
        return "overloaded";
    case PROTO_STATUS_COUNT:
        break;
    }
    return "unknown";
}

/* `thousandths` / 1000 with up to 3 decimals, trailing zeros dropped:
 * 12400 -> 12.4, 5 -> 0.005, 0 -> 0. */
static int put_thousandths(proto_buf *out, int64_t thousandths) {
    char digits[AUCTION_MICROS_STRLEN];
    return proto_buf_append(out, digits, auction_decimal_format(thousandths, 3, digits));
}

/* The winner object of SPEC 4; with `deal_id` (SPEC 17 imps), its deal id
 * or null after the rest. */
static int put_winner(proto_buf *out, const char *advertiser_id, int64_t bid_price_micros,
                      int64_t clearing_price_micros, const char *ad_id, const char *creative_url,
                      int with_deal, const char *deal_id) {
    int rc = 0;
    rc |= proto_buf_puts(out, "{\"advertiser_id\":");
    rc |= proto_buf_json_string(out, advertiser_id);
    rc |= proto_buf_puts(out, ",\"bid_price\":");
    rc |= proto_buf_micros(out, bid_price_micros);
    rc |= proto_buf_puts(out, ",\"clearing_price\":");
    rc |= proto_buf_micros(out, clearing_price_micros);
    rc |= proto_buf_puts(out, ",\"ad_id\":");
    rc |= proto_buf_json_string(out, ad_id);
    rc |= proto_buf_puts(out, ",\"creative_url\":");
    rc |= proto_buf_json_string(out, creative_url);
    if (with_deal) {
        rc |= proto_buf_puts(out, ",\"deal_id\":");
        rc |= deal_id != NULL ? proto_buf_json_string(out, deal_id) : proto_buf_puts(out, "null");
    }
    rc |= proto_buf_puts(out, "}");
    return rc;
}

/* "imps":[{"imp_id","status","winner"},...] (SPEC 17). */
static int put_imps(proto_buf *out, const proto_result_imp *imps, size_t n) {
    int rc = proto_buf_puts(out, ",\"imps\":[");
    for (size_t i = 0; i < n; i++) {
        const proto_result_imp *m = &imps[i];
        rc |= proto_buf_puts(out, i > 0 ? ",{\"imp_id\":" : "{\"imp_id\":");
        rc |= proto_buf_json_string(out, m->imp_id);
        rc |= proto_buf_puts(out, ",\"status\":");
        rc |= proto_buf_json_string(out, proto_status_str(m->status));
        rc |= proto_buf_puts(out, ",\"winner\":");
        if (m->status == PROTO_STATUS_SUCCESS)
            rc |= put_winner(out, m->advertiser_id, m->bid_price_micros, m->clearing_price_micros,
                             m->ad_id, m->creative_url, 1, m->deal_id);
        else
            rc |= proto_buf_puts(out, "null");
        rc |= proto_buf_puts(out, "}");
    }
    return rc | proto_buf_puts(out, "]");
}

/* Each append returns 0 or -1, so `rc |=` keeps the first failure; later
 * appends after a failure are harmless and the caller drops the buffer. */
int proto_result_encode(const proto_result *r, proto_buf *out) {
    proto_status status = r->status;
    const proto_result_imp *first_win = NULL;
    for (size_t i = 0; r->imps != NULL && i < r->nimps && first_win == NULL; i++)
        if (r->imps[i].status == PROTO_STATUS_SUCCESS) first_win = &r->imps[i];
    /* SPEC 17: with imps, the request succeeded when any imp did. */
    if (first_win != NULL)
        status = PROTO_STATUS_SUCCESS;
    else if (r->imps != NULL && status == PROTO_STATUS_SUCCESS)
        status = PROTO_STATUS_NO_BID;
    /* invalid and overloaded auctions never ran: their counters are 0 */
    int ran = status != PROTO_STATUS_INVALID && status != PROTO_STATUS_OVERLOADED;
    int rc = 0;
    rc |= proto_buf_puts(out, "{\"request_id\":");
    rc |= proto_buf_json_string(out, r->request_id);
    rc |= proto_buf_puts(out, ",\"status\":");
    rc |= proto_buf_json_string(out, proto_status_str(status));
    if (status == PROTO_STATUS_INVALID) {
        rc |= proto_buf_puts(out, ",\"error\":");
        rc |= proto_buf_json_string(out, r->error);
    }
    rc |= proto_buf_puts(out, ",\"winner\":");
    if (first_win != NULL)
        rc |= put_winner(out, first_win->advertiser_id, first_win->bid_price_micros,
                         first_win->clearing_price_micros, first_win->ad_id,
                         first_win->creative_url, 0, NULL);
    else if (r->imps == NULL && status == PROTO_STATUS_SUCCESS)
        rc |= put_winner(out, r->advertiser_id, r->bid_price_micros, r->clearing_price_micros,
                         r->ad_id, r->creative_url, 0, NULL);
    else
        rc |= proto_buf_puts(out, "null");
    if (r->imps != NULL) rc |= put_imps(out, r->imps, r->nimps);
    rc |= proto_buf_puts(out, ",\"bids\":");
    rc |= proto_buf_uint(out, ran ? r->bids : 0);
    rc |= proto_buf_puts(out, ",\"bidders\":");
    rc |= proto_buf_uint(out, ran ? r->bidders : 0);
    rc |= proto_buf_puts(out, ",\"timeouts\":");
    rc |= proto_buf_uint(out, ran ? r->timeouts : 0);
    rc |= proto_buf_puts(out, ",\"errors\":");
    rc |= proto_buf_uint(out, ran ? r->errors : 0);
    rc |= proto_buf_puts(out, ",\"skipped\":");
    rc |= proto_buf_uint(out, ran ? r->skipped : 0);
    rc |= proto_buf_puts(out, ",\"latency_ms\":");
    rc |= put_thousandths(out, r->latency_us < 0 ? 0 : r->latency_us);
    rc |= proto_buf_puts(out, ",\"timestamp\":");
    rc |= put_thousandths(out, r->timestamp_us / 1000);
    rc |= proto_buf_puts(out, "}");
    return rc;
}

int proto_error_encode(const char *error, const char *topic, const char *request_id,
                       proto_buf *out) {
    int rc = 0;
    rc |= proto_buf_puts(out, "{\"status\":\"invalid\",\"error\":");
    rc |= proto_buf_json_string(out, error);
    rc |= proto_buf_puts(out, ",\"topic\":");
    rc |= proto_buf_json_string(out, topic);
    if (request_id != NULL) {
        rc |= proto_buf_puts(out, ",\"request_id\":");
        rc |= proto_buf_json_string(out, request_id);
    }
    rc |= proto_buf_puts(out, "}");
    return rc;
}

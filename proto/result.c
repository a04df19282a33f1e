/* result.c -- what the exchange publishes: the auction result on
 * auction:results:{request_id} and the notice on auction:errors (SPEC 4).
 *
 * The one idea: every number is printed from integers, never from a double:
 * prices from micros, latency and timestamp from thousandths, so subscribers
 * read 2.11, 12.4 and 1795000000.123 exactly. Fields come in the order of
 * the SPEC example. */
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

static int put_winner(proto_buf *out, const proto_result *r) {
    int rc = 0;
    rc |= proto_buf_puts(out, "{\"advertiser_id\":");
    rc |= proto_buf_json_string(out, r->advertiser_id);
    rc |= proto_buf_puts(out, ",\"bid_price\":");
    rc |= proto_buf_micros(out, r->bid_price_micros);
    rc |= proto_buf_puts(out, ",\"clearing_price\":");
    rc |= proto_buf_micros(out, r->clearing_price_micros);
    rc |= proto_buf_puts(out, ",\"ad_id\":");
    rc |= proto_buf_json_string(out, r->ad_id);
    rc |= proto_buf_puts(out, ",\"creative_url\":");
    rc |= proto_buf_json_string(out, r->creative_url);
    rc |= proto_buf_puts(out, "}");
    return rc;
}

/* Each append returns 0 or -1, so `rc |=` keeps the first failure; later
 * appends after a failure are harmless and the caller drops the buffer. */
int proto_result_encode(const proto_result *r, proto_buf *out) {
    /* invalid and overloaded auctions never ran: their counters are 0 */
    int ran = r->status != PROTO_STATUS_INVALID && r->status != PROTO_STATUS_OVERLOADED;
    int rc = 0;
    rc |= proto_buf_puts(out, "{\"request_id\":");
    rc |= proto_buf_json_string(out, r->request_id);
    rc |= proto_buf_puts(out, ",\"status\":");
    rc |= proto_buf_json_string(out, proto_status_str(r->status));
    if (r->status == PROTO_STATUS_INVALID) {
        rc |= proto_buf_puts(out, ",\"error\":");
        rc |= proto_buf_json_string(out, r->error);
    }
    rc |= proto_buf_puts(out, ",\"winner\":");
    if (r->status == PROTO_STATUS_SUCCESS)
        rc |= put_winner(out, r);
    else
        rc |= proto_buf_puts(out, "null");
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

/* response.c -- the bidder call (SPEC 5): the OpenRTB 2.6 BidRequest the
 * exchange sends, and the BidResponse it gets back.
 *
 * The one idea: what we send is written field by field into a proto_buf (no
 * cJSON tree to build and free per bidder); only ext.user_context, which we
 * forward without looking inside, is printed by cJSON. What we get back is
 * sorted into exactly one status, so the caller can count bidder errors
 * by kind, and the single best valid bid is copied out so the tree can go.
 * A bid is valid when its price and its strings are (SPEC 15 bounds); an
 * invalid bid is skipped, and only a response with no valid bid at all is a
 * bidder error. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "proto/internal.h"
#include "proto/proto.h"

/* ---- BidRequest out ----------------------------------------------------- */

/* A set of borrowed strings (open addressing, linear probing): keywords are
 * deduplicated in linear time. A request and a stored profile carry at most
 * 64 interests each, but the config's default profile has no such cap. */
typedef struct str_set {
    const char **slot;
    size_t mask;
} str_set;

static int set_init(str_set *s, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    s->slot = calloc(cap, sizeof *s->slot);
    s->mask = cap - 1;
    return s->slot != NULL ? 0 : -1;
}

/* 1 when `key` was added, 0 when it was already there. */
static int set_add(str_set *s, const char *key) {
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * UINT64_C(1099511628211);
    for (size_t i = (size_t)h & s->mask;; i = (i + 1) & s->mask) {
        if (s->slot[i] == NULL) {
            s->slot[i] = key;
            return 1;
        }
        if (strcmp(s->slot[i], key) == 0) return 0;
    }
}

static size_t array_len(const cJSON *a) {
    return cJSON_IsArray(a) ? (size_t)cJSON_GetArraySize(a) : 0;
}

/* Append each string of `list` not yet in `seen` to `kw`, comma-separated. */
static int add_keywords(proto_buf *kw, str_set *seen, const cJSON *list) {
    const cJSON *item = NULL;
    if (!cJSON_IsArray(list)) return 0;
    cJSON_ArrayForEach(item, list) {
        const char *s = proto_json_string(item);
        if (s == NULL || *s == '\0' || !set_add(seen, s)) continue;
        if ((kw->len > 0 && proto_buf_puts(kw, ",") != 0) || proto_buf_puts(kw, s) != 0) return -1;
    }
    return 0;
}

/* The keywords as one JSON string: profile interests, then the request's
 * user_context.interests, each once, in that order. */
static int put_keywords(proto_buf *out, const cJSON *profile_interests,
                        const cJSON *context_interests) {
    str_set seen;
    if (set_init(&seen, array_len(profile_interests) + array_len(context_interests)) != 0)
        return -1;
    proto_buf kw;
    proto_buf_init(&kw);
    int rc = add_keywords(&kw, &seen, profile_interests) != 0 ||
             add_keywords(&kw, &seen, context_interests) != 0 ||
             proto_buf_json_string(out, kw.data) != 0;
    proto_buf_free(&kw);
    free(seen.slot);
    return rc ? -1 : 0;
}

/* The shortest of %.15g / %.17g that reads back as `v` (0.7, not
 * 0.69999999999999996). */
static int put_double(proto_buf *out, double v) {
    char tmp[32];
    if (!isfinite(v)) v = 0.0;
    snprintf(tmp, sizeof tmp, "%.15g", v);
    if (strtod(tmp, NULL) != v) snprintf(tmp, sizeof tmp, "%.17g", v);
    return proto_buf_puts(out, tmp);
}

static int put_user_context(proto_buf *out, const cJSON *user_context) {
    if (!cJSON_IsObject(user_context)) return proto_buf_puts(out, "{}");
    char *text = cJSON_PrintUnformatted(user_context);
    if (text == NULL) return -1;
    int rc = proto_buf_puts(out, text);
    cJSON_free(text);
    return rc;
}

/* Each append returns 0 or -1, so `rc |=` keeps the first failure; later
 * appends after a failure are harmless and the caller drops the buffer. */
int proto_openrtb_request_encode(const proto_bid_request *req, const proto_profile *profile,
                                 auction_type at, int tmax_ms, const char *currency,
                                 proto_buf *out) {
    if (req == NULL) return -1;
    if (currency == NULL) currency = "USD";
    const cJSON *interests = profile != NULL ? profile->interests : NULL;
    int rc = 0;
    rc |= proto_buf_puts(out, "{\"id\":");
    rc |= proto_buf_json_string(out, req->request_id);
    rc |= proto_buf_puts(out, ",\"at\":");
    rc |= proto_buf_uint(out, (uint64_t)at);
    rc |= proto_buf_puts(out, ",\"tmax\":");
    rc |= proto_buf_uint(out, tmax_ms < 1 ? 1 : (uint64_t)tmax_ms);
    rc |= proto_buf_puts(out, ",\"cur\":[");
    rc |= proto_buf_json_string(out, currency);
    rc |= proto_buf_puts(out, "],\"imp\":[{\"id\":\"1\",\"tagid\":");
    rc |= proto_buf_json_string(out, req->ad_slot_id);
    rc |= proto_buf_puts(out, ",\"bidfloor\":");
    rc |= proto_buf_micros(out, req->floor_micros);
    rc |= proto_buf_puts(out, ",\"bidfloorcur\":");
    rc |= proto_buf_json_string(out, currency);
    rc |= proto_buf_puts(out, "}],\"user\":{\"id\":");
    rc |= proto_buf_json_string(out, req->user_id);
    rc |= proto_buf_puts(out, ",\"keywords\":");
    rc |= put_keywords(out, interests, req->context_interests);
    rc |= proto_buf_puts(out, ",\"ext\":{\"ltv_score\":");
    rc |= put_double(out, profile != NULL ? profile->ltv_score : 0.0);
    rc |= proto_buf_puts(out, "}},\"ext\":{\"user_context\":");
    rc |= put_user_context(out, req->user_context);
    rc |= proto_buf_puts(out, "}}");
    return rc;
}

/* ---- BidResponse in ----------------------------------------------------- */

/* A bid's price in micros when it is a number, > 0 and <= 1,000,000. */
static int bid_price(const cJSON *bid, int64_t *micros) {
    return proto_json_micros(proto_json_get(bid, "price"), micros) == 0 && *micros > 0;
}

/* The bid's strings, in proto_bid field order, where each is read, and
 * whether it is a URL. */
static const struct {
    const char *key;
    int from_seat;
    int url;
    size_t offset;
} bid_strings[] = {
    {"id", 0, 0, offsetof(proto_bid, bid_id)}, {"impid", 0, 0, offsetof(proto_bid, imp_id)},
    {"seat", 1, 0, offsetof(proto_bid, seat)}, {"adid", 0, 0, offsetof(proto_bid, ad_id)},
    {"crid", 0, 0, offsetof(proto_bid, crid)}, {"iurl", 0, 1, offsetof(proto_bid, creative_url)},
    {"nurl", 0, 1, offsetof(proto_bid, nurl)}, {"lurl", 0, 1, offsetof(proto_bid, lurl)},
    {"burl", 0, 1, offsetof(proto_bid, burl)},
};
#define NBID_STRINGS (sizeof(bid_strings) / sizeof(bid_strings[0]))

/* Read the strings of the bid at seatbid[si].bid[bi] into src[] (borrowed
 * from the tree; NULL when absent, not a string, or a URL given as "") and
 * check the bounds of SPEC 15. 0, or -1 with a message naming the first
 * field that broke one. */
static int read_bid_strings(const cJSON *seat, const cJSON *bid, size_t si, size_t bi,
                            const char *src[NBID_STRINGS], char *err, size_t errlen) {
    for (size_t i = 0; i < NBID_STRINGS; i++) {
        const char *key = bid_strings[i].key;
        const char *s =
            proto_json_string(proto_json_get(bid_strings[i].from_seat ? seat : bid, key));
        if (s != NULL && bid_strings[i].url && *s == '\0') s = NULL;
        src[i] = s;
        if (s == NULL) continue;
        char what[48];
        if (strnlen(s, PROTO_BID_STRING_MAX_BYTES + 1) > PROTO_BID_STRING_MAX_BYTES)
            snprintf(what, sizeof what, "over %d bytes", PROTO_BID_STRING_MAX_BYTES);
        else if (bid_strings[i].url && !proto_url_ok(s))
            snprintf(what, sizeof what, "not an http(s) URL with a host");
        else
            continue;
        if (bid_strings[i].from_seat)
            proto_set_err(err, errlen, "seatbid[%zu].%s: %s", si, key, what);
        else
            proto_set_err(err, errlen, "seatbid[%zu].bid[%zu].%s: %s", si, bi, key, what);
        return -1;
    }
    return 0;
}

/* Copy the strings `src` into one block, out->block (proto_bid_free frees
 * it): one allocation per bid instead of nine. -1: no memory. */
static int copy_bid(const char *const src[NBID_STRINGS], int64_t micros, proto_bid *out) {
    size_t len[NBID_STRINGS], total = 0;
    out->price_micros = micros;
    for (size_t i = 0; i < NBID_STRINGS; i++) {
        len[i] = src[i] ? strlen(src[i]) + 1 : 0;
        total += len[i];
    }
    if (total == 0) return 0;
    char *block = malloc(total), *p = block;
    if (block == NULL) return -1;
    out->block = block;
    for (size_t i = 0; i < NBID_STRINGS; i++) {
        if (!src[i]) continue;
        memcpy(p, src[i], len[i]);
        *(char **)((char *)out + bid_strings[i].offset) = p;
        p += len[i];
    }
    return 0;
}

/* OpenRTB 2.6 4.2.1-4.2.3 on a parsed object: the id, then every seatbid and
 * bid (a wrong shape anywhere refuses the whole response), then the valid
 * bid with the highest price (the first of equals). A bid's strings are
 * checked only when its price would make it the best so far: every bid with
 * a usable price is checked when none turns out valid, which is when the
 * first broken string becomes the message. */
static proto_bid_status pick_bid(const cJSON *root, const char *request_id, proto_bid *out,
                                 char *err, size_t errlen) {
    const char *id = proto_json_string(proto_json_get(root, "id"));
    if (id == NULL) {
        proto_set_err(err, errlen, "id: missing or not a string");
        return PROTO_BID_WRONG_ID;
    }
    if (request_id != NULL && strcmp(id, request_id) != 0) {
        proto_set_err(err, errlen, "id: not the request's id");
        return PROTO_BID_WRONG_ID;
    }
    const cJSON *seatbids = proto_json_get(root, "seatbid");
    if (seatbids == NULL || cJSON_IsNull(seatbids)) {
        proto_set_err(err, errlen, "seatbid: absent");
        return PROTO_BID_NO_SEATBID;
    }
    if (!cJSON_IsArray(seatbids)) {
        proto_set_err(err, errlen, "seatbid: must be an array");
        return PROTO_BID_BAD_SHAPE;
    }
    const cJSON *best = NULL, *seat = NULL;
    const char *best_src[NBID_STRINGS] = {0}, *src[NBID_STRINGS];
    int64_t best_micros = 0;
    size_t nbids = 0, si = 0;
    int bad_field = 0;
    cJSON_ArrayForEach(seat, seatbids) {
        if (!cJSON_IsObject(seat)) {
            proto_set_err(err, errlen, "seatbid[%zu]: must be an object", si);
            return PROTO_BID_BAD_SHAPE;
        }
        const cJSON *bids = proto_json_get(seat, "bid"), *bid = NULL;
        if (!cJSON_IsArray(bids)) {
            proto_set_err(err, errlen, "seatbid[%zu].bid: must be an array", si);
            return PROTO_BID_BAD_SHAPE;
        }
        size_t bi = 0;
        cJSON_ArrayForEach(bid, bids) {
            if (!cJSON_IsObject(bid)) {
                proto_set_err(err, errlen, "seatbid[%zu].bid[%zu]: must be an object", si, bi);
                return PROTO_BID_BAD_SHAPE;
            }
            int64_t micros = 0;
            if (bid_price(bid, &micros) && micros > best_micros) {
                /* Only the first broken string is reported. */
                if (read_bid_strings(seat, bid, si, bi, src, bad_field ? NULL : err,
                                     bad_field ? 0 : errlen) == 0) {
                    best = bid;
                    best_micros = micros;
                    memcpy(best_src, src, sizeof src);
                } else {
                    bad_field = 1;
                }
            }
            nbids++;
            bi++;
        }
        si++;
    }
    if (nbids == 0) {
        proto_set_err(err, errlen, "seatbid: no bid");
        return PROTO_BID_NO_SEATBID;
    }
    if (best == NULL && bad_field) return PROTO_BID_BAD_FIELD;
    if (best == NULL) {
        proto_set_err(err, errlen, "bid.price: no bid with a positive finite price up to 1000000");
        return PROTO_BID_BAD_PRICE;
    }
    proto_clear_err(err, errlen); /* a skipped bid's message is not this answer's */
    if (copy_bid(best_src, best_micros, out) != 0) {
        /* cJSON cannot tell a parse failure from no memory either. */
        proto_set_err(err, errlen, "body: out of memory");
        return PROTO_BID_BAD_JSON;
    }
    return PROTO_BID_OK;
}

proto_bid_status proto_bid_response_decode(const char *body, size_t len, size_t max_bytes,
                                           const char *request_id, proto_bid *out, char *err,
                                           size_t errlen) {
    memset(out, 0, sizeof *out);
    proto_clear_err(err, errlen);
    if (len > max_bytes) {
        proto_set_err(err, errlen, "body: over %zu bytes", max_bytes);
        return PROTO_BID_TOO_LARGE;
    }
    if (body == NULL || proto_json_blank(body, len)) {
        proto_set_err(err, errlen, "body: empty");
        return PROTO_BID_NO_BID;
    }
    /* The tree dies here: build it in scratch memory (the hot path parses
     * one response per bidder per auction). */
    int scoped = proto_json_scratch_begin();
    proto_json_error je;
    cJSON *root = proto_json_parse(body, len, &je);
    proto_bid_status st = PROTO_BID_BAD_JSON;
    if (root == NULL)
        proto_set_err(err, errlen, "body: %s", proto_json_fault_str(je.fault));
    else if (cJSON_IsObject(root))
        st = pick_bid(root, request_id, out, err, errlen);
    else
        proto_set_err(err, errlen, "body: must be a JSON object");
    cJSON_Delete(root);
    if (scoped) proto_json_scratch_end();
    if (st != PROTO_BID_OK) proto_bid_free(out);
    return st;
}

void proto_bid_free(proto_bid *b) {
    if (b == NULL) return;
    free(b->block);
    memset(b, 0, sizeof *b);
}

const char *proto_bid_status_str(proto_bid_status s) {
    switch (s) {
    case PROTO_BID_OK:
        return "ok";
    case PROTO_BID_NO_BID:
        return "no_bid";
    case PROTO_BID_NO_SEATBID:
        return "no_seatbid";
    case PROTO_BID_BAD_JSON:
        return "bad_json";
    case PROTO_BID_WRONG_ID:
        return "wrong_id";
    case PROTO_BID_BAD_PRICE:
        return "bad_price";
    case PROTO_BID_BAD_SHAPE:
        return "bad_shape";
    case PROTO_BID_TOO_LARGE:
        return "too_large";
    case PROTO_BID_BAD_FIELD:
        return "bad_field";
    }
    return "unknown";
}

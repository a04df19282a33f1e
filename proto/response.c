/* response.c -- the BidResponse a bidder answers the exchange's call with
 * (SPEC 5, 15, 17).
 *
 * The one idea: what we get back is sorted into exactly one status, so the
 * caller can count bidder errors by kind, and the bids worth keeping are
 * copied out (into one block) so the tree can go. One walk serves both
 * readings: the SPEC 2 exchange's single best bid, and SPEC 17's every valid
 * bid checked against the request's imps and deals. A bid is valid when its
 * price, its strings (SPEC 15 bounds) and, for SPEC 17, its impid and
 * dealid are; an invalid bid is skipped and counted by reason, and only a
 * response with no valid bid at all is a bidder error. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "proto/internal.h"
#include "proto/proto.h"

/* ---- Reading one bid ------------------------------------------------------ */

/* A bid's price in micros when it is a number, > 0 and <= 1,000,000. */
static int bid_price(const cJSON *bid, int64_t *micros) {
    return proto_json_micros(proto_json_get(bid, "price"), micros) == 0 && *micros > 0;
}

/* The bid's strings, in proto_bid field order, where each is read, and
 * whether "" counts as absent (URLs and dealid) and it must be a URL. */
static const struct {
    const char *key;
    int from_seat;
    int empty_absent;
    int url;
    size_t offset;
} bid_strings[] = {
    {"id", 0, 0, 0, offsetof(proto_bid, bid_id)},
    {"impid", 0, 0, 0, offsetof(proto_bid, imp_id)},
    {"seat", 1, 0, 0, offsetof(proto_bid, seat)},
    {"adid", 0, 0, 0, offsetof(proto_bid, ad_id)},
    {"crid", 0, 0, 0, offsetof(proto_bid, crid)},
    {"iurl", 0, 1, 1, offsetof(proto_bid, creative_url)},
    {"nurl", 0, 1, 1, offsetof(proto_bid, nurl)},
    {"lurl", 0, 1, 1, offsetof(proto_bid, lurl)},
    {"burl", 0, 1, 1, offsetof(proto_bid, burl)},
    {"dealid", 0, 1, 0, offsetof(proto_bid, deal_id)},
};
#define NBID_STRINGS (sizeof(bid_strings) / sizeof(bid_strings[0]))
#define IMPID 1  /* index of impid in bid_strings */
#define DEALID 9 /* index of dealid */

/* A bid kept while the tree lives: its strings borrowed from the tree. */
typedef struct bid_ref {
    const char *src[NBID_STRINGS];
    int64_t micros;
    int imp_index, deal_index;
} bid_ref;

/* Read the strings of the bid at seatbid[si].bid[bi] into src[] (borrowed
 * from the tree; NULL when absent, not a string, or "" where that counts as
 * absent) and check the bounds of SPEC 15. 0, or -1 with a message naming
 * the first field that broke one. */
static int read_bid_strings(const cJSON *seat, const cJSON *bid, size_t si, size_t bi,
                            const char *src[NBID_STRINGS], char *err, size_t errlen) {
    for (size_t i = 0; i < NBID_STRINGS; i++) {
        const char *key = bid_strings[i].key;
        const char *s =
            proto_json_string(proto_json_get(bid_strings[i].from_seat ? seat : bid, key));
        if (s != NULL && bid_strings[i].empty_absent && *s == '\0') s = NULL;
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

/* SPEC 17: the bid's impid names one of req's imps and its dealid, when
 * given, one of that imp's deals. PROTO_BID_OK with the indexes set, or the
 * reason with a message. */
static proto_bid_status match_imp(const proto_bid_request *req, bid_ref *b, size_t si, size_t bi,
                                  char *err, size_t errlen) {
    const char *impid = b->src[IMPID], *dealid = b->src[DEALID];
    const proto_imp *imp = NULL;
    for (size_t i = 0; impid != NULL && i < req->nimps && imp == NULL; i++)
        if (strcmp(req->imps[i].id, impid) == 0) {
            imp = &req->imps[i];
            b->imp_index = (int)i;
        }
    if (imp == NULL) {
        proto_set_err(err, errlen, "seatbid[%zu].bid[%zu].impid: %s", si, bi,
                      impid == NULL ? "required" : "not an imp of the request");
        return PROTO_BID_BAD_IMP;
    }
    if (dealid == NULL) return PROTO_BID_OK;
    for (size_t d = 0; imp->pmp != NULL && d < imp->pmp->ndeals; d++)
        if (strcmp(imp->pmp->deals[d].id, dealid) == 0) {
            b->deal_index = (int)d;
            return PROTO_BID_OK;
        }
    proto_set_err(err, errlen, "seatbid[%zu].bid[%zu].dealid: not a deal of imp \"%s\"", si, bi,
                  imp->id);
    return PROTO_BID_BAD_DEAL;
}

/* ---- The walk ------------------------------------------------------------------- */

/* What a walk keeps: every valid bid up to `cap` (req set: SPEC 17), or
 * the best one alone in refs[0] (req NULL: SPEC 5's single bid). */
typedef struct walk {
    const proto_bid_request *req;
    bid_ref *refs;
    size_t cap, nrefs;
    unsigned *refused;    /* by proto_bid_status */
    proto_bid_status why; /* of the first bid with a usable price refused for
                             its strings, imp or deal; OK when none */
    int have_msg;         /* 0: no message yet; 1: a price message; 2: why's */
} walk;

/* Refuse the bid at seatbid[si].bid[bi] for `reason`. Its message (in
 * `msg`) is kept when it is the first of its kind: a price refusal's only
 * while no other was seen. */
static void refuse(walk *w, proto_bid_status reason, const char *msg, char *err, size_t errlen) {
    w->refused[reason]++;
    if (reason == PROTO_BID_BAD_PRICE) {
        if (w->have_msg == 0) {
            proto_set_err(err, errlen, "%s", msg);
            w->have_msg = 1;
        }
        return;
    }
    if (reason != PROTO_BID_TOO_MANY && w->why == PROTO_BID_OK) w->why = reason;
    if (w->have_msg < 2) {
        proto_set_err(err, errlen, "%s", msg);
        w->have_msg = 2;
    }
}

/* One bid: price, strings, imp and deal, room. */
static void take_bid(walk *w, const cJSON *seat, const cJSON *bid, size_t si, size_t bi, char *err,
                     size_t errlen) {
    char msg[200];
    bid_ref b = {.imp_index = -1, .deal_index = -1};
    if (!bid_price(bid, &b.micros)) {
        msg[0] = '\0';
        if (w->have_msg == 0) /* else it would not be kept: no printf */
            snprintf(msg, sizeof msg,
                     "seatbid[%zu].bid[%zu].price: not a number above 0 up to 1000000", si, bi);
        refuse(w, PROTO_BID_BAD_PRICE, msg, err, errlen);
        return;
    }
    /* The single best: a bid no better than the best so far cannot change
     * the answer, so its strings need no look (all are looked at when no
     * bid turns out valid, which is when the first broken one is named). */
    if (w->req == NULL && w->nrefs > 0 && b.micros <= w->refs[0].micros) return;
    if (read_bid_strings(seat, bid, si, bi, b.src, msg, sizeof msg) != 0) {
        refuse(w, PROTO_BID_BAD_FIELD, msg, err, errlen);
        return;
    }
    if (w->req != NULL) {
        proto_bid_status st = match_imp(w->req, &b, si, bi, msg, sizeof msg);
        if (st != PROTO_BID_OK) {
            refuse(w, st, msg, err, errlen);
            return;
        }
    }
    if (w->req == NULL) {
        w->refs[0] = b;
        w->nrefs = 1;
    } else if (w->nrefs < w->cap) {
        w->refs[w->nrefs++] = b;
    } else {
        snprintf(msg, sizeof msg, "seatbid[%zu].bid[%zu]: over %d valid bids in one response", si,
                 bi, PROTO_RESPONSE_BIDS_MAX);
        refuse(w, PROTO_BID_TOO_MANY, msg, err, errlen);
    }
}

/* OpenRTB 2.6 4.2.1-4.2.3 on a parsed object: the id, then every seatbid and
 * bid (a wrong shape anywhere refuses the whole response), then the cur
 * when there are bids. PROTO_BID_OK when some bid was kept; else the
 * status of the response. `cur` gets the currency (4 bytes). */
static proto_bid_status walk_bids(const cJSON *root, const char *request_id, walk *w, char *cur,
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
    const cJSON *seat = NULL;
    size_t nbids = 0, si = 0;
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
            take_bid(w, seat, bid, si, bi, err, errlen);
            nbids++;
            bi++;
        }
        si++;
    }
    if (nbids == 0) {
        proto_set_err(err, errlen, "seatbid: no bid");
        return PROTO_BID_NO_SEATBID;
    }
    /* SPEC 17: the bids' currency, USD unless said. */
    const cJSON *c = proto_json_get(root, "cur");
    memcpy(cur, "USD", 4);
    if (c != NULL && !cJSON_IsNull(c)) {
        if (!proto_currency_ok(proto_json_string(c))) {
            proto_set_err(err, errlen, "cur: must be 3 capital letters (an ISO 4217 code)");
            return PROTO_BID_BAD_CUR;
        }
        memcpy(cur, c->valuestring, 4);
    }
    if (w->nrefs > 0) return PROTO_BID_OK;
    if (w->why != PROTO_BID_OK) return w->why;
    proto_set_err(err, errlen, "bid.price: no bid with a positive finite price up to 1000000");
    return PROTO_BID_BAD_PRICE;
}

/* The room the strings of `b` take, NULs included. */
static size_t ref_bytes(const bid_ref *b) {
    size_t total = 0;
    for (size_t i = 0; i < NBID_STRINGS; i++)
        total += b->src[i] ? strlen(b->src[i]) + 1 : 0;
    return total;
}

/* Fill `out` from `b`, copying its strings to `p` (ref_bytes(b) bytes of
 * room); returns the byte after them. */
static char *copy_ref(const bid_ref *b, const char *cur, proto_bid *out, char *p) {
    memset(out, 0, sizeof *out);
    out->price_micros = b->micros;
    out->imp_index = b->imp_index;
    out->deal_index = b->deal_index;
    memcpy(out->cur, cur, 4);
    for (size_t i = 0; i < NBID_STRINGS; i++) {
        if (!b->src[i]) continue;
        size_t n = strlen(b->src[i]) + 1;
        memcpy(p, b->src[i], n);
        *(char **)((char *)out + bid_strings[i].offset) = p;
        p += n;
    }
    return p;
}

/* Parse `body` through the JSON gate in scratch memory and walk it. The
 * tree dies before the return: `copy` takes what it needs first. */
static proto_bid_status decode_body(const char *body, size_t len, size_t max_bytes,
                                    const char *request_id, walk *w, char *cur, char *err,
                                    size_t errlen, int (*copy)(const walk *, const char *, void *),
                                    void *arg) {
    if (len > max_bytes) {
        proto_set_err(err, errlen, "body: over %zu bytes", max_bytes);
        return PROTO_BID_TOO_LARGE;
    }
    if (body == NULL || proto_json_blank(body, len)) {
        proto_set_err(err, errlen, "body: empty");
        return PROTO_BID_NO_BID;
    }
    /* The hot path parses one response per bidder per auction. */
    int scoped = proto_json_scratch_begin();
    proto_json_error je;
    cJSON *root = proto_json_parse(body, len, &je);
    proto_bid_status st = PROTO_BID_BAD_JSON;
    if (root == NULL)
        proto_set_err(err, errlen, "body: %s", proto_json_fault_str(je.fault));
    else if (cJSON_IsObject(root))
        st = walk_bids(root, request_id, w, cur, err, errlen);
    else
        proto_set_err(err, errlen, "body: must be a JSON object");
    if (st == PROTO_BID_OK && copy(w, cur, arg) != 0) {
        /* cJSON cannot tell a parse failure from no memory either. */
        proto_set_err(err, errlen, "body: out of memory");
        st = PROTO_BID_BAD_JSON;
    }
    cJSON_Delete(root);
    if (scoped) proto_json_scratch_end();
    return st;
}

/* ---- The single best bid (SPEC 5) -------------------------------------------- */

static int copy_best(const walk *w, const char *cur, void *arg) {
    proto_bid *out = arg;
    size_t total = ref_bytes(&w->refs[0]);
    char *block = total > 0 ? malloc(total) : NULL;
    if (total > 0 && block == NULL) return -1;
    copy_ref(&w->refs[0], cur, out, block);
    out->block = block;
    return 0;
}

proto_bid_status proto_bid_response_decode(const char *body, size_t len, size_t max_bytes,
                                           const char *request_id, proto_bid *out, char *err,
                                           size_t errlen) {
    bid_ref best;
    unsigned refused[PROTO_BID_STATUS_COUNT] = {0};
    walk w = {.refs = &best, .cap = 1, .refused = refused};
    char cur[4];
    memset(out, 0, sizeof *out);
    proto_clear_err(err, errlen);
    proto_bid_status st =
        decode_body(body, len, max_bytes, request_id, &w, cur, err, errlen, copy_best, out);
    if (st == PROTO_BID_OK)
        proto_clear_err(err, errlen); /* a skipped bid's message is not this answer's */
    else
        proto_bid_free(out);
    return st;
}

/* ---- Every valid bid (SPEC 17) ---------------------------------------------------- */

/* One block: the proto_bid array, then every bid's strings. */
static int copy_all(const walk *w, const char *cur, void *arg) {
    proto_bid_list *out = arg;
    size_t head = w->nrefs * sizeof(proto_bid), total = head;
    for (size_t i = 0; i < w->nrefs; i++)
        total += ref_bytes(&w->refs[i]);
    char *block = malloc(total);
    if (block == NULL) return -1;
    proto_bid *bids = (proto_bid *)(void *)block;
    char *p = block + head;
    for (size_t i = 0; i < w->nrefs; i++)
        p = copy_ref(&w->refs[i], cur, &bids[i], p);
    out->block = block;
    out->bids = bids;
    out->nbids = w->nrefs;
    memcpy(out->cur, cur, 4);
    return 0;
}

proto_bid_status proto_bid_response_decode_all(const char *body, size_t len, size_t max_bytes,
                                               const proto_bid_request *req, proto_bid_list *out,
                                               char *err, size_t errlen) {
    bid_ref refs[PROTO_RESPONSE_BIDS_MAX];
    char cur[4];
    memset(out, 0, sizeof *out);
    proto_clear_err(err, errlen);
    if (req == NULL || req->nimps == 0) {
        proto_set_err(err, errlen, "request: no imps");
        return PROTO_BID_BAD_IMP;
    }
    walk w = {.req = req, .refs = refs, .cap = PROTO_RESPONSE_BIDS_MAX, .refused = out->refused};
    proto_bid_status st =
        decode_body(body, len, max_bytes, req->request_id, &w, cur, err, errlen, copy_all, out);
    if (st != PROTO_BID_OK) {
        unsigned refused[PROTO_BID_STATUS_COUNT];
        memcpy(refused, out->refused, sizeof refused);
        proto_bid_list_free(out);
        memcpy(out->refused, refused, sizeof refused);
    }
    return st;
}

void proto_bid_list_free(proto_bid_list *l) {
    if (l == NULL) return;
    free(l->block);
    memset(l, 0, sizeof *l);
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
    case PROTO_BID_BAD_IMP:
        return "bad_imp";
    case PROTO_BID_BAD_DEAL:
        return "bad_deal";
    case PROTO_BID_TOO_MANY:
        return "too_many";
    case PROTO_BID_BAD_CUR:
        return "bad_cur";
    case PROTO_BID_STATUS_COUNT:
        break;
    }
    return "unknown";
}

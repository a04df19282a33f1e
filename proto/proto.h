/* proto.h -- JSON codecs: everything that crosses a process boundary as JSON.
 *
 * No I/O: every function takes bytes and gives structs, or takes structs and
 * gives bytes. Decoders parse with cJSON (with a length; input need not be
 * NUL-terminated), enforce the rules of ../shared/SPEC.md and write one clear
 * message per broken rule into a caller-owned buffer (`err`, `errlen`), the
 * message starting with the field or key path ("floor_price: must be ...").
 * Encoders append to a proto_buf and print money exactly (2.11, never
 * 2.1099999999). Money inside is int64_t micros (auction/auction.h). */
#ifndef RTB_PROTO_H
#define RTB_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "auction/auction.h"

/* ---- Output buffer ------------------------------------------------------ */

/* A growable byte buffer. Zero-initialised (or proto_buf_init) is empty and
 * valid. `data` is always NUL-terminated once anything was appended. Every
 * append returns 0, or -1 when memory ran out (the buffer is then unchanged
 * except possibly larger capacity). */
typedef struct proto_buf {
    char *data;
    size_t len;
    size_t cap;
} proto_buf;

void proto_buf_init(proto_buf *b);
/* Forget the contents, keep the memory (for reuse on the hot path). */
void proto_buf_reset(proto_buf *b);
void proto_buf_free(proto_buf *b);
int proto_buf_append(proto_buf *b, const char *s, size_t n);
int proto_buf_puts(proto_buf *b, const char *s);
/* printf-style append. */
int proto_buf_printf(proto_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append `s` as a JSON string literal, quotes included, escaping `"`, `\`
 * and control characters (RFC 8259 section 7). `s` must be valid UTF-8. */
int proto_buf_json_string(proto_buf *b, const char *s);
/* Append an unsigned integer below 2^63 in decimal, without printf. */
int proto_buf_uint(proto_buf *b, uint64_t v);
/* Append micros as an exact decimal JSON number (2.11). */
int proto_buf_micros(proto_buf *b, int64_t micros);

/* ---- Errors ------------------------------------------------------------- */

typedef enum proto_err {
    PROTO_OK = 0,
    PROTO_ERR_TOO_LARGE,  /* input over the size limit; not parsed */
    PROTO_ERR_NOT_JSON,   /* not JSON, trailing garbage, NUL bytes, "\u0000"
                             escapes, raw control characters, bad UTF-8,
                             nesting deeper than cJSON allows */
    PROTO_ERR_NOT_OBJECT, /* JSON, but not an object */
    PROTO_ERR_FIELD,      /* an object breaking a field rule; err names it */
    PROTO_ERR_NOMEM,
    PROTO_ERR_IO, /* a config file could not be read (by rtb/conffile.c:
                     proto/ itself does no I/O) */
} proto_err;

/* Short English name of an error, for logs. Never NULL. */
const char *proto_strerror(proto_err err);

/* ---- Bid request in (SPEC 2) -------------------------------------------- */

#define PROTO_ID_MAX_CHARS 128
/* 128 characters of UTF-8, 4 bytes at most each, plus NUL. */
#define PROTO_ID_BYTES (PROTO_ID_MAX_CHARS * 4 + 1)

/* user_context.interests (SPEC 2, 15): at most this many entries, each of
 * 1..PROTO_INTEREST_MAX_CHARS characters. A stored profile's interests are
 * cut to the same bounds (proto_profile_decode). */
#define PROTO_INTERESTS_MAX 64
/* JSON values a bid request may hold in all, and within user_context (SPEC
 * 15: a request of the maximum size must stay cheap; cJSON spends about
 * 0.1 µs reading and 0.35 µs printing each number). */
#define PROTO_REQUEST_MAX_VALUES 4096
#define PROTO_USER_CONTEXT_MAX_VALUES 256
#define PROTO_INTEREST_MAX_CHARS 64

/* ---- SPEC 17: what a request may say about its inventory ---------------- */

/* Bounds of SPEC 17 (and docs/security.md): the imps of a request, the
 * entries of every array (formats, mimes, deals, wseat), the characters of
 * every string unless its own rule says otherwise, and of user_consent. */
#define PROTO_IMPS_MAX 16
#define PROTO_IMP_ID_MAX_CHARS 64
#define PROTO_LIST_MAX 16
#define PROTO_TEXT_MAX_CHARS 256
#define PROTO_CONSENT_MAX_CHARS 4096
/* w and h (banner, format, video) are integers in 1..PROTO_PIXELS_MAX;
 * minduration and maxduration in 0..PROTO_DURATION_MAX_S seconds. */
#define PROTO_PIXELS_MAX 65535
#define PROTO_DURATION_MAX_S 86400
/* An optional integer that was absent (or null). */
#define PROTO_ABSENT (-1)

/* Every `const char *` below is borrowed from the request's parse tree
 * (proto_bid_request.root) or its block, and every array from its block:
 * valid until proto_bid_request_free, also after the struct itself was
 * copied (nothing points into the struct). A string is NULL when absent. */

typedef struct proto_format {
    int w, h; /* 1..PROTO_PIXELS_MAX */
} proto_format;

/* OpenRTB 2.6 3.2.6 Banner: either an exact size or a list of sizes. */
typedef struct proto_banner {
    int w, h;                   /* 1..PROTO_PIXELS_MAX, or PROTO_ABSENT with format */
    const proto_format *format; /* `nformat` (1..PROTO_LIST_MAX) sizes, or NULL with w/h */
    size_t nformat;
} proto_banner;

/* OpenRTB 2.6 3.2.7 Video (the fields SPEC 17 takes). */
typedef struct proto_video {
    const char *const *mimes;     /* 1..PROTO_LIST_MAX strings of 1..256 characters */
    size_t nmimes;                /* (OpenRTB requires mimes) */
    int w, h;                     /* 1..PROTO_PIXELS_MAX, or PROTO_ABSENT */
    int minduration, maxduration; /* seconds 0..PROTO_DURATION_MAX_S, or PROTO_ABSENT;
                                     min <= max when both are given */
} proto_video;

/* OpenRTB 2.6 3.2.12 Deal. The floor is in the request's currency. */
typedef struct proto_deal {
    const char *id;           /* 1..256 characters, unique within its imp */
    int64_t bidfloor_micros;  /* 0 when absent */
    const char *const *wseat; /* `nwseat` (0..PROTO_LIST_MAX) seats of 1..256
                                 characters allowed to bid; 0: any seat */
    size_t nwseat;
} proto_deal;

/* OpenRTB 2.6 3.2.11 Pmp. */
typedef struct proto_pmp {
    int private_auction;     /* 0 or 1 (1: only deal bids can win) */
    const proto_deal *deals; /* `ndeals` (0..PROTO_LIST_MAX) deals */
    size_t ndeals;
} proto_pmp;

/* One impression (SPEC 17 `imps[]`, or the SPEC 2 form's single slot). */
typedef struct proto_imp {
    const char *id;             /* 1..64 characters of [A-Za-z0-9._:-], unique in the
                                   request; "1" for the SPEC 2 form */
    const char *tagid;          /* its ad_slot_id: 1..128 characters */
    int64_t floor_micros;       /* its floor_price: 0..AUCTION_PRICE_MAX_MICROS, in
                                   the request's currency */
    const proto_banner *banner; /* NULL when absent */
    const proto_video *video;   /* NULL when absent; banner or video is set,
                                   except for the SPEC 2 form: */
    int default_banner;         /* 1 for the SPEC 2 form: no banner or video was
                                   given, the banner is auction.default_banner */
    const proto_pmp *pmp;       /* NULL when absent */
} proto_imp;

typedef struct proto_publisher {
    const char *id, *name; /* at most 256 characters each */
} proto_publisher;

/* OpenRTB 2.6 3.2.13 Site (the fields SPEC 17 takes; each at most 256
 * characters). */
typedef struct proto_site {
    const char *id, *domain, *page;
    proto_publisher publisher; /* both NULL when absent */
} proto_site;

/* OpenRTB 2.6 3.2.14 App. */
typedef struct proto_app {
    const char *id, *bundle, *storeurl;
    proto_publisher publisher;
} proto_app;

/* OpenRTB 2.6 3.2.18 Device. */
typedef struct proto_device {
    const char *ua;
    const char *ip; /* an IPv4 or IPv6 address (inet_pton); sent as
                       OpenRTB `ip` or `ipv6` by its family */
    int ip_is_v6;
    int devicetype; /* AdCOM 1.0 Device Types 1..8, or PROTO_ABSENT */
    const char *os, *language;
    const char *geo_country, *geo_region; /* device.geo */
} proto_device;

/* OpenRTB 2.6 3.2.3 Regs. */
typedef struct proto_regs {
    int coppa;              /* 0, 1 or PROTO_ABSENT */
    int gdpr;               /* 0, 1 or PROTO_ABSENT */
    const char *us_privacy; /* at most 256 characters */
} proto_regs;

typedef struct proto_bid_request {
    char request_id[PROTO_ID_MAX_CHARS + 1]; /* [A-Za-z0-9._:-]{1,128} */
    int has_request_id;                      /* request_id is set and valid, also when another
                                                field broke a rule (so `invalid` can name it) */
    char user_id[PROTO_ID_BYTES];            /* 1-128 characters */
    /* The SPEC 2 form: its ad_slot_id and floor; "" and 0 with `imps`
     * (read imps[] instead, which covers both forms). */
    char ad_slot_id[PROTO_ID_BYTES]; /* 1-128 characters */
    int64_t floor_micros;            /* 0 .. AUCTION_PRICE_MAX_MICROS */
    int has_timestamp;
    double timestamp;               /* Unix seconds, when has_timestamp */
    cJSON *root;                    /* owned: the parsed payload */
    const cJSON *user_context;      /* object inside root, or NULL */
    const cJSON *context_interests; /* user_context.interests inside root,
                                       or NULL: an array of at most
                                       PROTO_INTERESTS_MAX strings of 1..
                                       PROTO_INTEREST_MAX_CHARS characters */
    /* SPEC 17. */
    const proto_imp *imps; /* `nimps` impressions, 1..PROTO_IMPS_MAX, in the
                              request's order; in `block` */
    size_t nimps;
    int has_imps;          /* the request used `imps` (its result carries the
                              "imps" array, SPEC 17); 0 for the SPEC 2 form */
    char cur[4];           /* 3 capital letters, or "" when absent: the
                              publisher's currency is then auction.currency */
    int has_site, has_app; /* at most one of the two */
    proto_site site;
    proto_app app;
    int has_device;
    proto_device device;
    int has_regs;
    proto_regs regs;
    const char *user_consent; /* at most PROTO_CONSENT_MAX_CHARS characters, or NULL */
    void *block;              /* owned: imps and the arrays they point to */
} proto_bid_request;

/* Decode one MQTT payload (`len` bytes at `payload`, not necessarily
 * NUL-terminated) into `out`, which the caller provides (it need not be
 * initialised). Payloads over `max_bytes` (SPEC 7 limits.max_request_bytes)
 * are refused before parsing. The rules of SPEC 2 and 17 are checked in a
 * fixed order (docs/protocol.md lists it) and the first broken one is
 * reported by its key path ("imps[2].banner.w: must be an integer between 1
 * and 65535", "site: not allowed together with app"). A request uses one of
 * two forms: `imps` (then top-level ad_slot_id and floor_price are not
 * allowed), or the SPEC 2 form, decoded as one imp with id "1", tagid
 * ad_slot_id, floor floor_price and default_banner set. Unknown keys are
 * ignored at every level; an optional key sent as null counts as absent.
 * On success returns PROTO_OK and `out` owns a parse tree and a block:
 * release them with proto_bid_request_free (the struct may be copied by
 * value first: the copy then owns them). On failure returns the error,
 * writes a message naming the field into `err`, leaves nothing to free
 * (calling proto_bid_request_free is still safe), and sets
 * out->has_request_id when the request_id could be read and is valid.
 * SPEC 2, 15, 17; OpenRTB 2.6 section 3.2. */
proto_err proto_bid_request_decode(const char *payload, size_t len, size_t max_bytes,
                                   proto_bid_request *out, char *err, size_t errlen);
void proto_bid_request_free(proto_bid_request *r);

/* 1 when `s` (NUL-terminated; NULL is not) follows the request_id rule of
 * SPEC 2: 1-128 characters of [A-Za-z0-9._:-]. SPEC 15: every id the
 * exchange puts into a Redis key (request_id, and the ids of ad events;
 * click:{user_id}:{ad_id}, stats:ad:{ad_id}, ...) must follow it, so a key
 * is never longer than its prefix plus 128 bytes. */
int proto_key_id_ok(const char *s);

/* ---- Ad events in (SPEC 10) --------------------------------------------- */

typedef enum proto_event_type {
    PROTO_EVENT_IMPRESSION = 0,
    PROTO_EVENT_CLICK,
    PROTO_EVENT_CONVERSION,
} proto_event_type;

/* Every id follows proto_key_id_ok (1-128 ASCII characters). */
typedef struct proto_event {
    proto_event_type type;
    char event_id[PROTO_ID_BYTES];   /* "" when absent */
    char request_id[PROTO_ID_BYTES]; /* "" when absent */
    char ad_id[PROTO_ID_BYTES];      /* "" when absent (conversions) */
    char advertiser_id[PROTO_ID_BYTES];
    char user_id[PROTO_ID_BYTES];
} proto_event;

/* Decode an event that came on rtb/events/{type}: `type` is the topic's
 * last level ("impression", "click" or "conversion"; anything else is an
 * error naming it). Impressions and clicks need ad_id, user_id and
 * advertiser_id; conversions need user_id and advertiser_id (ad_id is
 * optional: attribution finds the clicked ad). event_id, request_id and
 * timestamp are optional. Every id, given, follows the request_id rule
 * (proto_key_id_ok: 1-128 characters of [A-Za-z0-9._:-]), since ids end up
 * in Redis keys (SPEC 15 Keys): "ad_id: must be 1-128 characters of
 * [A-Za-z0-9._:-]". Payloads over `max_bytes` are refused before parsing.
 * `out` is caller-provided and holds no allocation. Returns PROTO_OK or an
 * error with a message naming the field. SPEC 10, 15. */
proto_err proto_event_decode(const char *type, const char *payload, size_t len, size_t max_bytes,
                             proto_event *out, char *err, size_t errlen);

/* ---- User profile (SPEC 3.2) -------------------------------------------- */

typedef struct proto_profile {
    cJSON *root;            /* owned */
    const cJSON *interests; /* array of strings inside root, or NULL */
    double ltv_score;       /* 0..1; 0 when absent */
} proto_profile;

/* Decode a profile as stored at user:profile:{user_id}: an object with
 * optional `interests` (array of strings), `ltv_score` (number 0..1),
 * `demographics` (object) and `user_id`; other keys are ignored (profiles
 * are written by other systems). Interests are bounded as a request's are
 * (SPEC 2, 15), but without failing the profile, which the publisher did
 * not write: an empty interest or one over PROTO_INTEREST_MAX_CHARS
 * characters is dropped, and so is every one after the first
 * PROTO_INTERESTS_MAX kept; out->interests holds what is left (the tree is
 * edited in place), so matching and keywords stay bounded. An `interests`
 * that is not an array of strings still fails the profile. Returns
 * PROTO_OK, or an error with `out` left empty (safe to free). */
proto_err proto_profile_decode(const char *json, size_t len, proto_profile *out, char *err,
                               size_t errlen);
/* Encode the profile stored on a miss: `defaults` (config profiles.default,
 * an object) with "user_id" set to `user_id` first. */
int proto_profile_encode(const cJSON *defaults, const char *user_id, proto_buf *out);
void proto_profile_free(proto_profile *p);

/* Cut the NUL-terminated `s` before a last UTF-8 sequence that is
 * incomplete (a string truncated by snprintf or to a byte bound): it stays
 * valid UTF-8. */
void proto_utf8_cut(char *s);

/* ---- Scratch memory for short-lived trees ------------------------------------ */

/* Scratch allocation for cJSON trees that die within one scope (a
 * BidResponse: its values are copied out, then the tree is dropped; a
 * profile: read to choose and call the bidders, then dropped). Between
 * begin and end, cJSON's nodes and strings are bump-allocated from a fixed
 * 64 KiB per-process buffer and their frees cost nothing; when the buffer is
 * full cJSON falls back to malloc, so any size parses (cJSON_Delete still
 * frees those). `end` forgets the buffer at once: every tree made in between
 * must be deleted before it. One scope at a time (the exchange is one
 * thread): begin returns 1 when it opened the scope, 0 when one was open
 * already (then the caller must not end it, and its trees live as long as
 * the outer scope). */
int proto_json_scratch_begin(void);
void proto_json_scratch_end(void);

/* ---- OpenRTB 2.6 BidRequest out (SPEC 5, 17) ----------------------------- */

typedef struct proto_config proto_config; /* below */

/* Append the BidRequest for one bidder call:
 * {"id","at","tmax","cur":[cur],"imp":[{"id","tagid","bidfloor",
 * "bidfloorcur","banner","video","pmp"}, one per imp],"site"|"app",
 * "device","regs","user":{"id","keywords","consent","ext":{"ltv_score"}},
 * "ext":{"user_context":{...}}}, every field named and typed as in OpenRTB
 * 2.6 and sent only when it has a value, except that every imp has a banner
 * or video (the SPEC 2 form's is cfg auction.default_banner) and every
 * request names its inventory (site or app, else cfg auction.default_site).
 * `cur` and every bidfloorcur are the request's cur, else cfg
 * auction.currency; `at` is cfg auction.type. device.ip goes out as `ip` or
 * `ipv6` by its family; regs carries coppa, gdpr and us_privacy, and
 * user_consent goes to user.consent (OpenRTB 2.6 places). `keywords` joins
 * the profile's interests and user_context.interests with commas
 * (duplicates once). `profile` may be NULL (no keywords, ltv 0). `tmax_ms`
 * is the time left (sent as at least 1). `cfg` is borrowed. Returns 0, or
 * -1 when memory ran out. OpenRTB 2.6 sections 3.2.1-3.2.20; SPEC 5, 17. */
int proto_openrtb_request_encode(const proto_bid_request *req, const proto_profile *profile,
                                 const proto_config *cfg, int tmax_ms, proto_buf *out);

/* ---- OpenRTB 2.6 BidResponse in (SPEC 5, 15, 17) ----------------------- */

typedef enum proto_bid_status {
    PROTO_BID_OK = 0,
    PROTO_BID_NO_BID,     /* empty body: no bid (not an error) */
    PROTO_BID_NO_SEATBID, /* valid response without any bid: a no-bid too */
    PROTO_BID_BAD_JSON,   /* not JSON / not an object / bad UTF-8 / NUL or
                             "\u0000" */
    PROTO_BID_WRONG_ID,   /* `id` missing or not the request's id */
    PROTO_BID_BAD_PRICE,  /* bids present, none with a positive finite price */
    PROTO_BID_BAD_SHAPE,  /* seatbid/bid of the wrong type */
    PROTO_BID_TOO_LARGE,  /* body over the limit; not parsed */
    PROTO_BID_BAD_FIELD,  /* bids present, none valid, and at least one with
                             a positive price broke a string rule (SPEC 15):
                             err names the first such field */
    /* SPEC 17 (proto_bid_response_decode_all; per bid, and the status of a
     * response whose every bid was refused for it): */
    PROTO_BID_BAD_IMP,  /* impid absent or not an imp of the request */
    PROTO_BID_BAD_DEAL, /* dealid not one of the deals of the bid's imp */
    PROTO_BID_TOO_MANY, /* over PROTO_RESPONSE_BIDS_MAX valid bids */
    PROTO_BID_BAD_CUR,  /* the response has bids and a `cur` that is not 3
                           capital letters: no bid of it is usable */
    PROTO_BID_STATUS_COUNT
} proto_bid_status;

/* SPEC 15: each string taken from a bid (ids, adid, crid and the URLs) is at
 * most this many bytes. */
#define PROTO_BID_STRING_MAX_BYTES 2048

/* At most this many valid bids are taken from one BidResponse (16 imps, a
 * deal bid and an open bid each, twice over); the rest are refused
 * (PROTO_BID_TOO_MANY). SPEC 15, 17. */
#define PROTO_RESPONSE_BIDS_MAX 64

/* A bid taken from a response. Strings are NULL when absent; the present
 * ones live in one owned block. Each is at most PROTO_BID_STRING_MAX_BYTES
 * bytes of UTF-8; the URLs (creative_url, nurl, lurl, burl) are http:// or
 * https:// with a host (proto/internal.h proto_url_ok: any case, no
 * whitespace or control characters). */
typedef struct proto_bid {
    int64_t price_micros; /* in `cur` */
    char *bid_id;         /* bid.id */
    char *imp_id;         /* bid.impid */
    char *seat;           /* seatbid.seat (NULL: the advertiser's own, SPEC 17) */
    char *ad_id;          /* bid.adid */
    char *crid;           /* bid.crid */
    char *creative_url;   /* bid.iurl */
    char *nurl;           /* win notice URL */
    char *lurl;           /* loss notice URL */
    char *burl;           /* billing notice URL (OpenRTB 2.6, SPEC 14) */
    char *deal_id;        /* bid.dealid (SPEC 17); NULL when absent or "" */
    char cur[4];          /* the BidResponse's cur: 3 capital letters, "USD"
                             when absent (SPEC 17) */
    int imp_index;        /* proto_bid_response_decode_all: index of the bid's
                             imp in req->imps; -1 from proto_bid_response_decode */
    int deal_index;       /* index of its deal in that imp's pmp->deals, or -1
                             without a dealid */
    char *block;          /* owns the strings above (proto_bid_response_decode);
                             NULL in a proto_bid_list, whose block owns them */
} proto_bid;

/* Decode a BidResponse body for the request `request_id` and take its best
 * bid: the single-bid reading of SPEC 5, kept for the SPEC 2 exchange
 * (proto_bid_response_decode_all is the SPEC 17 one). Bodies over
 * `max_bytes` (limits.max_response_bytes) are refused before parsing. A bid
 * is valid when its price is a number, > 0 and <= 1,000,000, and its
 * strings keep the bounds of SPEC 15: bid.id, impid, adid, crid, dealid,
 * iurl, nurl, lurl, burl and its seatbid.seat at most
 * PROTO_BID_STRING_MAX_BYTES bytes each, and iurl, nurl, lurl, burl http://
 * or https:// URLs with a host. A URL (or dealid) given as "" counts as
 * absent; a string field of another JSON type is ignored (NULL). impid and
 * dealid are not checked against a request here. With several seatbids or
 * bids, the valid bid with the highest price is taken (the first of
 * equals): an invalid bid is skipped, like a bid without a price, and does
 * not spoil its neighbours. A response with bids and no valid one is a
 * bidder error: BAD_FIELD when a bid with a usable price broke a string
 * rule (the message names the first such field:
 * "seatbid[0].bid[1].iurl: not an http(s) URL with a host",
 * "seatbid[0].bid[0].adid: over 2048 bytes"), else BAD_PRICE. So with one
 * bid per response, as SPEC 15 says, a bad string is a bidder error. A
 * response with bids whose `cur` is not 3 capital letters is BAD_CUR.
 * Returns PROTO_BID_OK with `out` filled (free with proto_bid_free), or
 * another status with `out` empty (safe to free) and a message in `err`.
 * OpenRTB 2.6 sections 4.2.1-4.2.3; SPEC 5, 14, 15, 17. */
proto_bid_status proto_bid_response_decode(const char *body, size_t len, size_t max_bytes,
                                           const char *request_id, proto_bid *out, char *err,
                                           size_t errlen);
void proto_bid_free(proto_bid *b);

/* Every valid bid of one BidResponse (SPEC 17: a bidder may bid on several
 * imps, and with and without a deal). */
typedef struct proto_bid_list {
    proto_bid *bids; /* `nbids` (0..PROTO_RESPONSE_BIDS_MAX) valid bids, in
                        the response's order; in `block` */
    size_t nbids;
    char cur[4]; /* the response's cur ("USD" when absent) */
    /* Bids refused, by reason: BAD_PRICE, BAD_FIELD, BAD_IMP, BAD_DEAL,
     * TOO_MANY (the other entries stay 0). Each refusal is a bidder error
     * for that bid only (SPEC 17). */
    unsigned refused[PROTO_BID_STATUS_COUNT];
    void *block; /* owned: bids and their strings */
} proto_bid_list;

/* Decode a BidResponse body for the decoded request `req` (borrowed) and
 * take every valid bid: valid as for proto_bid_response_decode (price,
 * SPEC 15 strings), and also (SPEC 17) its impid is the id of one of
 * req->imps (else BAD_IMP: "seatbid[0].bid[1].impid: not an imp of the
 * request"), and its dealid, when given, is the id of one of that imp's
 * deals (else BAD_DEAL: "seatbid[0].bid[1].dealid: not a deal of imp
 * \"a\""). Whether the seat may use the deal (wseat) and the deal floor
 * are the auction's to judge (SPEC 17: such a bid joins the open auction).
 * Bids past the first PROTO_RESPONSE_BIDS_MAX valid ones are refused
 * (TOO_MANY). A refused bid is skipped and counted in out->refused by
 * reason; it does not spoil its neighbours. Returns PROTO_BID_OK when at
 * least one bid is valid (`err` then names the first bid refused for
 * something else than its price, else the first refused for its price, or
 * is "" when none was: for the log); NO_BID or NO_SEATBID for a no-bid; BAD_CUR when
 * there are bids and `cur` is not 3 capital letters; when every bid was
 * refused, the reason of the first bid with a usable price that was refused
 * for something else than its price (BAD_FIELD, BAD_IMP, BAD_DEAL), else
 * BAD_PRICE, with that bid's message; the other statuses as for
 * proto_bid_response_decode. `out` is filled on OK and empty (safe to
 * free) otherwise, but out->refused counts on every status. Release with
 * proto_bid_list_free. OpenRTB 2.6 sections 4.2.1-4.2.3; SPEC 5, 15, 17. */
proto_bid_status proto_bid_response_decode_all(const char *body, size_t len, size_t max_bytes,
                                               const proto_bid_request *req, proto_bid_list *out,
                                               char *err, size_t errlen);
void proto_bid_list_free(proto_bid_list *l);

/* Short name ("bad_json", "wrong_id", "bad_imp", ...): also the reason
 * label of a refused bid. Never NULL. */
const char *proto_bid_status_str(proto_bid_status s);

/* ---- Currency rates (SPEC 17) ------------------------------------------ */

/* Redis currency:rates: {"USD":{"EUR":0.92,...},...}, "1 USD = 0.92 EUR",
 * the shape of the Prebid currency file; the file as Prebid publishes it,
 * {"dataAsOf":...,"conversions":{...}}, is accepted too. */
#define PROTO_RATES_MAX_BYTES (1024 * 1024)
#define PROTO_RATES_CURRENCIES_MAX 64 /* "from" currencies, and "to" ones per "from" */
#define PROTO_RATE_TEXT_MAX 40        /* characters of a rate's decimal text */

typedef struct proto_rate {
    char from[4], to[4];                /* 3 capital letters each */
    char text[PROTO_RATE_TEXT_MAX + 1]; /* the rate as a plain decimal, exactly
                                          as the JSON number says it: digits,
                                          optionally '.' and more digits; > 0;
                                          no sign, exponent or needless zeros
                                          ("0.92", "1.0389036164053573",
                                          6.28e-05 -> "0.0000628") */
} proto_rate;

typedef struct proto_rates {
    proto_rate *rates; /* owned: `n` triples, in the document's order */
    size_t n;
} proto_rates;

/* Decode a currency:rates value (`len` bytes at `json`, at most
 * PROTO_RATES_MAX_BYTES). The root is an object of "from" currencies, or an
 * object whose "conversions" member is one (Prebid's file; its other
 * members are then ignored). Each "from" maps to an object of "to"
 * currencies and rates. Every code is 3 capital letters, appears once in
 * its object, at most PROTO_RATES_CURRENCIES_MAX "from" codes and as many
 * "to" codes each; every rate is a number > 0 whose decimal text (read from
 * the JSON text, never through a double) fits PROTO_RATE_TEXT_MAX. All or
 * nothing: one broken rule fails the whole table, with a message naming it
 * ("USD.EUR: must be a number above 0"). On success `out` owns the triples
 * (release with proto_currency_rates_free); on error `out` is empty. */
proto_err proto_currency_rates_decode(const char *json, size_t len, proto_rates *out, char *err,
                                      size_t errlen);
void proto_currency_rates_free(proto_rates *r);

/* ---- Auction result out (SPEC 4) ---------------------------------------- */

typedef enum proto_status {
    PROTO_STATUS_SUCCESS = 0,
    PROTO_STATUS_NO_BID,
    PROTO_STATUS_TIMEOUT,
    PROTO_STATUS_INVALID,
    PROTO_STATUS_OVERLOADED,
    PROTO_STATUS_COUNT
} proto_status;

/* "success", "no_bid", "timeout", "invalid", "overloaded". */
const char *proto_status_str(proto_status s);

/* One imp's outcome in a result (SPEC 17). Strings are borrowed. */
typedef struct proto_result_imp {
    const char *imp_id;
    proto_status status; /* SUCCESS (a winner), NO_BID, TIMEOUT or OVERLOADED */
    /* winner, used when status is SUCCESS: */
    const char *advertiser_id;
    int64_t bid_price_micros;
    int64_t clearing_price_micros;
    const char *ad_id;        /* may be NULL -> "" */
    const char *creative_url; /* may be NULL -> "" */
    const char *deal_id;      /* NULL: won in the open auction -> null */
} proto_result_imp;

/* A result to publish. Strings are borrowed for the call. */
typedef struct proto_result {
    const char *request_id;
    proto_status status;
    /* winner, used when status is SUCCESS and `imps` is NULL: */
    const char *advertiser_id;
    int64_t bid_price_micros;
    int64_t clearing_price_micros;
    const char *ad_id;        /* may be NULL -> "" */
    const char *creative_url; /* may be NULL -> "" */
    unsigned bids, bidders, timeouts, errors;
    unsigned skipped;     /* eligible advertisers not called (SPEC 4, 13) */
    int64_t latency_us;   /* printed as latency_ms with up to 3 decimals */
    int64_t timestamp_us; /* Unix time; printed as seconds with 3 decimals */
    const char *error;    /* INVALID: the rule broken; else NULL */
    /* SPEC 17: for a request with `imps` (proto_bid_request.has_imps), its
     * imps' outcomes in the request's order; NULL for the SPEC 2 form. */
    const proto_result_imp *imps;
    size_t nimps;
} proto_result;

/* Append the result JSON of SPEC 4. `winner` is an object only for SUCCESS,
 * else null; INVALID carries "error"; INVALID and OVERLOADED print zero
 * counters. Without `imps` the output is exactly SPEC 4's. With `imps`
 * (SPEC 17), "imps":[{"imp_id","status","winner":{advertiser_id,
 * bid_price, clearing_price, ad_id, creative_url, deal_id}|null},...]
 * follows "winner", always an array (also of one imp); the top-level
 * status is then SUCCESS when any imp has one (else r->status, NO_BID in
 * place of a SUCCESS no imp backs), and the
 * top-level winner is the first winning imp's (SPEC 4's fields, no deal_id),
 * so a SPEC 4 reader still finds a winner in every success. Returns 0, or
 * -1 when memory ran out. */
int proto_result_encode(const proto_result *r, proto_buf *out);

/* Append the auction:errors message of SPEC 4:
 * {"status":"invalid","error":...,"topic":...} plus "request_id" when
 * `request_id` is not NULL (duplicates). Returns 0 or -1 (memory). */
int proto_error_encode(const char *error, const char *topic, const char *request_id,
                       proto_buf *out);

/* ---- Win and loss notices (SPEC 9, OpenRTB 2.6 section 4.4) ------------ */

/* OpenRTB 2.6 loss reason codes used in ${AUCTION_LOSS} (section 5.25). */
#define PROTO_LOSS_INVALID_RESPONSE 3
#define PROTO_LOSS_BELOW_FLOOR 100
#define PROTO_LOSS_OUTBID 102

/* Values of the substitution macros; strings borrowed, NULL -> "". */
typedef struct proto_notice_macros {
    const char *auction_id; /* ${AUCTION_ID}: the request_id */
    const char *bid_id;     /* ${AUCTION_BID_ID} */
    const char *imp_id;     /* ${AUCTION_IMP_ID} */
    const char *seat_id;    /* ${AUCTION_SEAT_ID} */
    const char *ad_id;      /* ${AUCTION_AD_ID} */
    int64_t price_micros;   /* ${AUCTION_PRICE}: the clearing price, decimal */
    int no_price;           /* ${AUCTION_PRICE} -> "": a loser is not told (SPEC 14) */
    const char *currency;   /* ${AUCTION_CURRENCY} */
    int loss;               /* ${AUCTION_LOSS}: a PROTO_LOSS_* code; 0 -> "" */
} proto_notice_macros;

/* Append `url_template` to `out` with every macro above replaced by its
 * value, percent-encoded (RFC 3986 unreserved characters pass as they are);
 * unknown ${...} text is kept as it is. Returns 0, or -1 when memory ran
 * out. OpenRTB 2.6 section 4.4; SPEC 9. */
int proto_notice_url(const char *url_template, const proto_notice_macros *m, proto_buf *out);

/* ---- Configuration (SPEC 7) --------------------------------------------- */

typedef enum proto_log_level {
    PROTO_LOG_DEBUG = 0,
    PROTO_LOG_INFO,
    PROTO_LOG_WARN,
    PROTO_LOG_ERROR,
} proto_log_level;

/* How an advertiser's daily budget is spread over the UTC day (SPEC 16;
 * rtb/budget.h applies it). */
typedef enum proto_pacing {
    PROTO_PACING_ASAP = 0, /* "asap": called until the day's budget is spent */
    PROTO_PACING_EVEN,     /* "even": called while the day's spend is at or below the
                              elapsed share of the budget plus 5 % of it */
} proto_pacing;

typedef struct proto_bidder_conf {
    char *id;
    char *endpoint;   /* http:// or https:// URL with a host */
    char **interests; /* `ninterests` strings; empty matches every user */
    size_t ninterests;
    long max_concurrent; /* default 100 */
    long tmax_ms;        /* a cap on the bidder's time (SPEC 13); 0: none */
    char **notice_hosts; /* hosts its notice URLs may name besides the
                            endpoint's (SPEC 15); `nnotice_hosts` of them */
    size_t nnotice_hosts;
    /* `budget` (SPEC 16): null, or {"daily": amount > 0, "pacing": "asap" | "even"} */
    int64_t budget_daily_micros; /* the day's budget, micros; 0: no budget */
    proto_pacing budget_pacing;  /* default asap */
} proto_bidder_conf;

/* What an alert rule watches (config alerts[].metric, the admin API's
 * rules; SPEC 11, 16; docs/dashboard.md says how each is computed). */
typedef enum proto_alert_metric {
    PROTO_ALERT_BIDDER_TIMEOUT_RATE = 0, /* "bidder_timeout_rate", per advertiser */
    PROTO_ALERT_BIDDER_ERROR_RATE,       /* "bidder_error_rate", per advertiser */
    PROTO_ALERT_AUCTION_TIMEOUT_RATE,    /* "auction_timeout_rate" */
    PROTO_ALERT_NO_BID_RATE,             /* "no_bid_rate" */
    PROTO_ALERT_P99_LATENCY_MS,          /* "p99_latency_ms" */
    PROTO_ALERT_CTR,                     /* "ctr": clicks / impressions, per advertiser */
    PROTO_ALERT_CVR,                     /* "cvr": conversions / clicks, per advertiser */
    PROTO_ALERT_CPC,                     /* "cpc": spend / clicks, currency units, per advertiser */
    PROTO_ALERT_SPEND_RATE,              /* "spend_rate": currency units a minute, per advertiser */
    PROTO_ALERT_WIN_RATE,                /* "win_rate": wins / bids, per advertiser */
    PROTO_ALERT_METRIC_COUNT
} proto_alert_metric;

/* A rule fires when the value goes above (or below) its threshold. */
typedef enum proto_alert_op {
    PROTO_ALERT_ABOVE = 0, /* "above" */
    PROTO_ALERT_BELOW,     /* "below" */
} proto_alert_op;

typedef enum proto_alert_severity {
    PROTO_ALERT_INFO = 0, /* "info" */
    PROTO_ALERT_WARNING,  /* "warning" (the default) */
    PROTO_ALERT_CRITICAL, /* "critical" */
} proto_alert_severity;

/* Where a rule came from: a config file's alerts[] or POST /api/alerts. */
typedef enum proto_alert_source {
    PROTO_ALERT_FROM_CONFIG = 0, /* "config" */
    PROTO_ALERT_FROM_API,        /* "api" */
} proto_alert_source;

/* The longest alert window (alerts[].window_s), in seconds: what the
 * dashboard keeps of its per-second samples. rtb/ sizes its history from it
 * (a compile-time check keeps the two equal). */
#define PROTO_ALERT_WINDOW_MAX_S 600
/* Most alert rules: in a config's alerts[], and in Redis alerts:rules (SPEC 16). */
#define PROTO_ALERT_MAX_RULES 100
/* The longest rule document proto_alert_decode takes, in bytes: the admin
 * listener's body limit (SPEC 15). Every rule the rows accept encodes well
 * below it (name 128 and message 1024 characters at most). */
#define PROTO_ALERT_MAX_BYTES 16384

/* The names of the enums above as rules spell them ("bidder_timeout_rate",
 * "below", "critical", "api"). Never NULL ("unknown" outside the enum). */
const char *proto_alert_metric_str(proto_alert_metric m);
const char *proto_alert_op_str(proto_alert_op op);
const char *proto_alert_severity_str(proto_alert_severity s);
const char *proto_alert_source_str(proto_alert_source s);
/* 1 for the metrics with one value per advertiser (they may name a
 * `subject`), 0 for the exchange-wide ones. */
int proto_alert_per_advertiser(proto_alert_metric m);

/* One alert rule (SPEC 16): {"name","metric","subject","op","threshold",
 * "window_s","severity","message"}. The older shape {"name","metric",
 * "above","window_s"} still decodes: `above` X is op above, threshold X. */
typedef struct proto_alert_conf {
    char *name; /* 1..128 characters, no control characters */
    proto_alert_metric metric;
    char *subject; /* an advertiser id (per-advertiser metrics only), or NULL: every one */
    proto_alert_op op;
    double threshold; /* finite; what the rule compares with (`above` folded in) */
    double above;     /* the older key as given, NaN when absent; read threshold instead */
    long window_s;    /* 1..PROTO_ALERT_WINDOW_MAX_S */
    proto_alert_severity severity;
    char *message; /* 0..1024 characters, no control characters; "" by default */
    proto_alert_source source;
} proto_alert_conf;

/* Decode one rule (`len` bytes of JSON at `json`, not NUL-terminated) with
 * the rows of the config's alerts[] (one validator for both paths): the
 * admin API's POST body (`stored` 0), or a value of the Redis hash
 * alerts:rules (`stored` 1: the key "source" is allowed too; else the rule
 * is from the API). On error `out` is empty (safe to free) and `err` names
 * the key ("threshold: expected a finite number"); PROTO_ERR_TOO_LARGE past
 * PROTO_ALERT_MAX_BYTES. Free with proto_alert_conf_free. */
proto_err proto_alert_decode(const char *json, size_t len, int stored, proto_alert_conf *out,
                             char *err, size_t errlen);
/* The rule as a new cJSON object (the caller cJSON_Deletes it) with every
 * key, defaults included, in the order of the comment above, then
 * "source": what alerts:rules holds and the admin API shows. NULL when
 * memory ran out. */
cJSON *proto_alert_to_json(const proto_alert_conf *r);
/* Deep copy of `src` into `dst` (overwritten). 0, or -1 when memory ran
 * out (`dst` is then empty, safe to free). */
int proto_alert_conf_copy(proto_alert_conf *dst, const proto_alert_conf *src);
void proto_alert_conf_free(proto_alert_conf *r);

/* Longest health window (config health.window_s), seconds. */
#define PROTO_HEALTH_WINDOW_MAX_S 60
/* Most entries of admin.allowed_hosts (SPEC 15). */
#define PROTO_ADMIN_MAX_ALLOWED_HOSTS 16

/* Every key of SPEC 7. Strings are owned (NULL where the key is null). */
typedef struct proto_config {
    struct {
        char *host;
        long port;
        char *client_id;
        char *topic;
        long qos;
        char *shared_group;
        char *username;
        char *password;
        int tls; /* mqtt.tls is an object */
        char *tls_cafile;
        char *tls_certfile;
        char *tls_keyfile;
    } mqtt;
    struct {
        char *host;
        long port;
        char *username;
        char *password;
        long timeout_ms; /* every command's answer within this, else the connection is
                            dropped and reconnected (SPEC 15) */
    } redis;
    struct {
        auction_type type; /* "second_price" | "first_price" */
        long tmax_ms;
        long max_bidders;
        int64_t price_increment_micros;
        char *currency;
        /* SPEC 17: the banner of a SPEC 2 form request, and the site of a
         * request that names neither site nor app. */
        struct {
            long w, h; /* 1..PROTO_PIXELS_MAX */
        } default_banner;
        struct {
            char *id, *domain, *page;            /* each NULL or 1..256 characters */
            char *publisher_id, *publisher_name; /* site.publisher */
        } default_site;
    } auction;
    struct {
        long ttl_s;
        cJSON *default_profile; /* owned object: interests, ltv_score, ... */
    } profiles;
    struct {
        long refresh_s;
    } registry;
    proto_bidder_conf *bidders;
    size_t nbidders;
    struct {
        long max_request_bytes;
        long max_response_bytes;
        long max_inflight;
        long max_pending_results;
        long max_pending_notices;
        long max_pending_redis;        /* commands sent and not yet answered (SPEC 15) */
        long max_pending_result_bytes; /* the result queue's bytes (SPEC 15) */
    } limits;
    struct {
        char *listen; /* "host:port", or NULL: no admin listener */
        /* SPEC 15: host names a request's Host header may give besides the
         * loopback names and listen's host (each 1..255 characters). */
        char **allowed_hosts;
        size_t nallowed_hosts; /* 0..PROTO_ADMIN_MAX_ALLOWED_HOSTS */
        /* SPEC 16: the bearer token the admin API's writes need, or NULL
         * (writes refused). Sensitive: never printed, logged or echoed. */
        char *token;
    } admin;
    struct {              /* SPEC 13: bidder health and admission */
        long lag_ms;      /* loop lag beyond which the exchange is late */
        long window_s;    /* 1..PROTO_HEALTH_WINDOW_MAX_S */
        long min_calls;   /* calls a window needs before it can throttle */
        double min_share; /* share of auctions a throttled bidder keeps, (0, 1] */
        int dry_run;      /* count throttling, call anyway */
    } health;
    proto_alert_conf *alerts; /* at most PROTO_ALERT_MAX_RULES */
    size_t nalerts;
    struct {
        proto_log_level level;
        long maxlen; /* the result stream auction:log, MAXLEN ~; 0: off (SPEC 14) */
    } log;
    struct {               /* SPEC 14 */
        long drain_s;      /* a drain waits this long for notices still out */
        long burl_retry_s; /* a failed billing notice is retried this long */
        int loss_price;    /* ${AUCTION_PRICE} in lurl: the clearing price (1) or "" (0) */
    } notices;
    struct {
        long ad_ttl_s; /* stats:ad:{ad_id} expires this long after its last write (SPEC 15) */
    } stats;
} proto_config;

/* Decode an advertiser:targeting:{id} value (SPEC 6): {"interests",
 * "endpoint","max_concurrent","tmax_ms","notice_hosts","budget"} with the
 * rules of a config `bidders` entry ("budget.daily: ..." in messages);
 * `id` (the key's suffix) is copied into out->id. On error `out` is left
 * empty (safe to free) and `err` names the field. */
proto_err proto_advertiser_decode(const char *id, const char *json, size_t len,
                                  proto_bidder_conf *out, char *err, size_t errlen);
void proto_bidder_conf_free(proto_bidder_conf *b);

/* A config document (file or value) is refused above this size, unparsed
 * (PROTO_ERR_TOO_LARGE); whoever reads a file bounds its read with it. */
#define PROTO_CONFIG_MAX_BYTES (1024 * 1024)

/* Fill `c` with the defaults of SPEC 7 (no bidders: the sample bidder of
 * SPEC 7 lives in conf/exchange.json). Returns PROTO_OK or PROTO_ERR_NOMEM.
 * Release with proto_config_free. */
proto_err proto_config_defaults(proto_config *c);

/* Apply a JSON config document (`len` bytes at `json`, not necessarily
 * NUL-terminated; NUL bytes are refused) on top of `c` (normally fresh
 * defaults): every key present replaces the value; keys absent keep theirs.
 * Every rule about a key is checked here, by the key's row: unknown keys,
 * wrong types, ranges, formats, enums, and rules across keys (each checked
 * once the whole document is applied). Errors name the key path
 * ("auction.tmax_ms: expected an integer between 1 and 10000",
 * "bidders[2].endpoint: ..."), and never carry the value of a sensitive key
 * (the passwords). PROTO_ERR_TOO_LARGE over PROTO_CONFIG_MAX_BYTES. On error
 * `c` is unchanged. Reading a file is the caller's (proto/ does no I/O). */
proto_err proto_config_parse(proto_config *c, const char *json, size_t len, char *err,
                             size_t errlen);

/* Set one key from a JSON value text, validated as in a file:
 * proto_config_set(c, "auction.tmax_ms", "50", ...),
 * proto_config_set(c, "mqtt.host", "\"10.0.0.1\"", ...). Used for command
 * line overrides. */
proto_err proto_config_set(proto_config *c, const char *path, const char *json_value, char *err,
                           size_t errlen);

/* Append the --help listing to `out`: one line per key with its default
 * and bounds ("  auction.tmax_ms = 100  (integer 1..10000)\n"), the keys of
 * list elements and of mqtt.tls under their parent. A sensitive key's line
 * shows no default ("  mqtt.password = (not shown)  (sensitive; ...)").
 * Returns 0, or -1 when memory ran out. */
int proto_config_print_keys(proto_buf *out);

void proto_config_free(proto_config *c);

#endif

/* internal.h -- what the files of proto/ share and nothing outside uses.
 *
 * Not installed and not included outside proto/ (proto.h is the module's
 * API). Defined in buf.c. One strict JSON gate every decoder parses through,
 * so that a request, a bidder response, a profile and a config file all
 * obey the same rules about bytes, and the small readers of cJSON values
 * that several decoders need. */
#ifndef RTB_PROTO_INTERNAL_H
#define RTB_PROTO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "proto/proto.h"

/* ---- The JSON gate ------------------------------------------------------ */

/* Why proto_json_parse refused its input. */
typedef enum proto_json_fault {
    PROTO_JSON_OK = 0,
    PROTO_JSON_NUL,        /* a raw NUL byte (cJSON would stop reading there) */
    PROTO_JSON_UTF8,       /* bytes that are not UTF-8 (RFC 3629) */
    PROTO_JSON_NUL_ESCAPE, /* "\u0000" inside a string (cJSON would cut the
                              string short in C) */
    PROTO_JSON_SYNTAX,     /* anything else: empty input, a raw control
                              character, bad syntax, trailing non-whitespace,
                              nesting over CJSON_NESTING_LIMIT, or cJSON out
                              of memory (which it does not tell apart) */
} proto_json_fault;

typedef struct proto_json_error {
    proto_json_fault fault;
    /* Byte offset into the input of what was refused: the NUL byte, the
     * first byte of the bad UTF-8 sequence, the backslash of "\u0000", the
     * control character, the first trailing non-whitespace byte, or where
     * cJSON stopped (0 for empty input). 0 when fault is PROTO_JSON_OK. */
    size_t offset;
} proto_json_error;

/* Parse `len` bytes at `text` (not necessarily NUL-terminated; NULL reads
 * as empty) as exactly one JSON value of RFC 8259. The bytes are checked in
 * order before cJSON sees them, and the first fault found is the one
 * reported. Returns the tree, which the caller cJSON_Deletes; or NULL with
 * `*e` (required) saying why and where. No size limit: callers check their
 * own before calling. */
cJSON *proto_json_parse(const char *text, size_t len, proto_json_error *e);

/* An upper bound on the JSON values in `n` bytes of text: one, plus every
 * ',', '[' and '{' outside strings. Linear, no allocation: it lets a decoder
 * refuse a payload of tens of thousands of tiny values before cJSON spends
 * milliseconds on them (SPEC 15). */
size_t proto_json_values_max(const char *text, size_t n);

/* The fault as the short phrase decoders put after their prefix
 * ("payload: not valid UTF-8"): "contains a NUL byte", "not valid UTF-8",
 * "contains \u0000" or "not valid JSON". Never NULL. */
const char *proto_json_fault_str(proto_json_fault fault);

/* 1 when the `n` bytes at `s` are all JSON whitespace (space, tab, newline,
 * carriage return), also when n is 0. */
int proto_json_blank(const char *s, size_t n);

/* ---- Reading cJSON values ----------------------------------------------- */

/* obj[key], matching case (JSON keys are case-sensitive): the first member
 * of that name, as cJSON_GetObjectItemCaseSensitive finds it; NULL when
 * absent (or `obj` is NULL or not an object). Borrowed from `obj`. */
const cJSON *proto_json_get(const cJSON *obj, const char *key);

/* The text of a string value, borrowed from `v`; NULL when `v` is not a
 * string (or is NULL). */
const char *proto_json_string(const cJSON *v);

/* A JSON number as money: 0 with *micros set when `v` is a number that
 * auction_micros_from_double accepts (finite, 0 .. AUCTION_PRICE_MAX_MICROS);
 * -1 otherwise, *micros then unspecified. Callers add their own bounds. */
int proto_json_micros(const cJSON *v, int64_t *micros);

/* 1 when `v` is a number between 0 and 1 (NaN is not): the ltv_score of a
 * profile (SPEC 3.2), stored or configured. */
int proto_ltv_score_ok(const cJSON *v);

/* ---- Text rules --------------------------------------------------------- */

/* 1 when the `n` bytes at `s` are well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF); NUL bytes count as valid. */
int proto_utf8_valid(const char *s, size_t n);

/* Characters (code points) in the NUL-terminated `s`, which must be valid
 * UTF-8 (every string of a tree from proto_json_parse is), counting no
 * further than `limit` + 1: enough to tell "too long" without reading a
 * long string to its end. */
size_t proto_utf8_chars(const char *s, size_t limit);

/* 1 when every byte of `s` is one of [A-Za-z0-9._:-], the id alphabet of
 * SPEC 2 (request_id) and SPEC 6/7 (bidder ids); also for "". Length is the
 * caller's rule. */
int proto_id_charset_ok(const char *s);

/* 1 when `s` is a currency code as SPEC 7 and 17 write it: exactly 3
 * capital letters A-Z (the shape of ISO 4217; whether the code exists is
 * for the rates table to say). NULL is not. */
int proto_currency_ok(const char *s);

/* 1 when `s` (NUL-terminated) is an absolute http:// or https:// URL with a
 * host: the scheme in any case (RFC 3986 3.1), then a host name or an
 * [IPv6] address, an optional port 1-65535, then anything. No byte of the
 * URL is whitespace or a control character (<= 0x20, 0x7F), and the
 * authority carries no userinfo ('@'). A string check, not a parser: what a
 * URL must be before it is published or fired (SPEC 15). */
int proto_url_ok(const char *s);

/* 1 when the `n` bytes at `s` are a host name or address: printable, no
 * spaces, none of "/?#@[]" (config host keys; a URL's host). */
int proto_host_ok(const char *s, size_t n);

/* 1 when the `n` bytes at `s` are host, [IPv6], host:port or [IPv6]:port
 * (port 1-65535; `need_port`: the port is required). A URL's authority,
 * and config host:port keys. */
int proto_authority_ok(const char *s, size_t n, int need_port);

/* ---- SPEC 17 parts of a bid request (inventory.c) ----------------------- */

/* The `imps` form: `imps` (the root's "imps", given) checked by SPEC 17 and
 * decoded into out->imps, nimps, has_imps, in a block at out->block (set
 * as soon as it exists: on error the caller frees it). The root's
 * ad_slot_id and floor_price are not allowed with it. */
proto_err proto_request_imps(const cJSON *root, const cJSON *imps, proto_bid_request *out,
                             char *err, size_t errlen);

/* The SPEC 2 form, already checked: one imp "1" with tagid the string
 * `ad_slot_id` (the root's, borrowed), floor out->floor_micros and the
 * default banner, in a block at out->block. */
proto_err proto_request_single_imp(const cJSON *ad_slot_id, proto_bid_request *out, char *err,
                                   size_t errlen);

/* site | app, device, regs, user_consent and cur of the root, checked by
 * SPEC 17 and decoded into `out` (strings borrowed from the root). */
proto_err proto_request_context(const cJSON *root, proto_bid_request *out, char *err,
                                size_t errlen);

/* ---- Error messages ----------------------------------------------------- */

/* Empty the caller's `err` buffer (errlen bytes), when there is one: no
 * printf on the hot path, where every decode starts with it. */
void proto_clear_err(char *err, size_t errlen);
/* printf into the caller's `err` buffer (errlen bytes), when there is one:
 * err may be NULL or errlen 0, and then nothing is written. */
void proto_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* proto_set_err, then return `code`: `return proto_fail(err, errlen,
 * PROTO_ERR_FIELD, "%s: required", key);`. */
proto_err proto_fail(char *err, size_t errlen, proto_err code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif

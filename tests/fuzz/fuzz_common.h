/* fuzz_common.h -- what the libFuzzer targets of tests/fuzz share.
 *
 * A target turns every broken promise of proto.h into abort(), which
 * libFuzzer reports as a crash and saves the input for: a decoder that
 * accepts what it should refuse, an encoder whose output is not valid UTF-8
 * JSON, a value that does not survive the trip out and back in. */
#ifndef RTB_FUZZ_COMMON_H
#define RTB_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "proto/proto.h"

/* abort() with `what` on stderr when `ok` is 0. */
void fuzz_check(int ok, const char *what);

/* 1 when the `n` bytes at `s` are well-formed UTF-8 (RFC 3629). */
int fuzz_utf8_ok(const char *s, size_t n);

/* Check that `b` holds exactly one JSON object in valid UTF-8 without raw
 * control characters (compact JSON has none), with no NUL byte before
 * b->len and one at b->len, and return it parsed (the caller cJSON_Deletes
 * it). `who` names the encoder in the abort message. */
cJSON *fuzz_parse_output(const proto_buf *b, const char *who);

/* obj[key] as a string, or abort naming `key`. */
const char *fuzz_get_string(const cJSON *obj, const char *key);

/* obj[key] as a number, or abort naming `key`. */
double fuzz_get_number(const cJSON *obj, const char *key);

/* Both NULL, or both strings with the same bytes. */
int fuzz_same_string(const char *a, const char *b);

/* Characters (UTF-8 lead bytes) in the valid UTF-8 string `s`. */
size_t fuzz_utf8_chars(const char *s);

/* The request_id rule of SPEC 2 (1-128 of [A-Za-z0-9._:-]), which SPEC 15
 * puts on every id used in a Redis key; written apart from proto/, so that
 * a bug there cannot agree with itself. */
int fuzz_key_id_ok(const char *s);

/* SPEC 15 URL rule, written apart from proto/internal.h proto_url_ok:
 * "http://" or "https://" in any case, then a host name (no "@[]") or an
 * [IPv6] address, an optional port 1-65535, then anything; no byte of the
 * URL <= 0x20 or 0x7F. */
int fuzz_url_ok(const char *s);

/* The default config (proto_config_defaults), made once and kept for the
 * process: what the encoders of a bidder call read. */
const proto_config *fuzz_default_config(void);

#endif

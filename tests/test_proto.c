/* test_proto.c -- the JSON codecs of proto/ against SPEC 2, 3.2, 4, 5, 10
 * and the bounds of 15.
 *
 * The one idea: every rule has a test that fails when the rule breaks, and
 * hostile input (not JSON, wrong types, huge strings, deep nesting, bad
 * UTF-8, NUL bytes, trailing garbage) is a first-class subject. Decoders are
 * fed exact-size heap copies without a NUL, so a memory checker catches any
 * over-read (ASan in our code; valgrind in libcjson too); encoder output is
 * parsed back with cJSON and checked field by field. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

#define MAX_BYTES 65536
#define ERRLEN 256
#define BIG_MAX (1 << 22) /* a limit high enough to let huge inputs reach cJSON */

#define VALID_REQUEST                                                                              \
    "{\"request_id\":\"r-1\",\"user_id\":\"u-7\",\"ad_slot_id\":\"slot-9\","                       \
    "\"floor_price\":1.5}"

/* ---- helpers ------------------------------------------------------------ */

static char *xmalloc(size_t n) {
    char *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* `unit` repeated `n` times, NUL-terminated. */
static char *repeat(const char *unit, size_t n) {
    size_t len = strlen(unit);
    char *s = xmalloc(len * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * len, unit, len);
    s[len * n] = '\0';
    return s;
}

/* printf into a fresh heap string. */
__attribute__((format(printf, 1, 2))) static char *fmt(const char *f, ...) {
    char *s = NULL;
    size_t n = 0;
    FILE *mem = open_memstream(&s, &n);
    ck_assert_ptr_nonnull(mem);
    va_list ap;
    va_start(ap, f);
    ck_assert_int_ge(vfprintf(mem, f, ap), 0);
    va_end(ap);
    ck_assert_int_eq(fclose(mem), 0);
    return s;
}

/* Decode `n` bytes from an exact-size heap copy (no NUL after it). */
static proto_err decode_n(const char *s, size_t n, size_t max, proto_bid_request *r, char *err) {
    char *copy = xmalloc(n);
    memcpy(copy, s, n);
    proto_err e = proto_bid_request_decode(copy, n, max, r, err, ERRLEN);
    free(copy);
    return e;
}

static proto_err decode(const char *s, proto_bid_request *r, char *err) {
    return decode_n(s, strlen(s), MAX_BYTES, r, err);
}

static void decode_ok(const char *json, proto_bid_request *r) {
    char err[ERRLEN];
    proto_err e = decode_n(json, strlen(json), BIG_MAX, r, err);
    ck_assert_msg(e == PROTO_OK, "%s", err);
}

static void decode_profile_ok(const char *json, proto_profile *p) {
    char err[ERRLEN];
    ck_assert_int_eq(proto_profile_decode(json, strlen(json), p, err, ERRLEN), PROTO_OK);
}

/* `json` must fail with `code` and exactly `msg`; nothing is left owned. */
static void expect_reject(const char *json, size_t max, proto_err code, const char *msg) {
    proto_bid_request r;
    char err[ERRLEN];
    proto_err e = decode_n(json, strlen(json), max, &r, err);
    ck_assert_msg(e == code, "%.80s: got %d (%s), want %d", json, e, err, code);
    ck_assert_str_eq(err, msg);
    ck_assert_ptr_null(r.root);
    proto_bid_request_free(&r);
}

static void expect_field(const char *json, const char *msg) {
    expect_reject(json, BIG_MAX, PROTO_ERR_FIELD, msg);
}

static proto_bid_status bid_decode(const char *s, size_t n, size_t max, const char *id,
                                   proto_bid *b, char *err) {
    char *copy = xmalloc(n);
    memcpy(copy, s, n);
    proto_bid_status st = proto_bid_response_decode(copy, n, max, id, b, err, ERRLEN);
    free(copy);
    return st;
}

static void expect_bid_status(const char *body, proto_bid_status want) {
    proto_bid b;
    char err[ERRLEN];
    proto_bid_status st = bid_decode(body, strlen(body), MAX_BYTES, "r-1", &b, err);
    ck_assert_msg(st == want, "%.80s: got %s (%s), want %s", body, proto_bid_status_str(st), err,
                  proto_bid_status_str(want));
    ck_assert_ptr_null(b.bid_id);
    ck_assert_ptr_null(b.ad_id);
    proto_bid_free(&b);
}

static cJSON *parse_buf(const proto_buf *b) {
    ck_assert_ptr_nonnull(b->data);
    cJSON *root = cJSON_ParseWithLength(b->data, b->len);
    ck_assert_msg(root != NULL, "output is not JSON: %s", b->data);
    return root;
}

/* root.path (dots between keys; a number selects an array element). */
static const cJSON *at(const cJSON *root, const char *path) {
    char key[64];
    const cJSON *v = root;
    while (*path != '\0' && v != NULL) {
        size_t n = strcspn(path, ".");
        ck_assert_uint_lt(n, sizeof key);
        memcpy(key, path, n);
        key[n] = '\0';
        path += n + (path[n] == '.');
        if (cJSON_IsArray(v))
            v = cJSON_GetArrayItem(v, atoi(key));
        else
            v = cJSON_GetObjectItemCaseSensitive(v, key);
    }
    ck_assert_msg(v != NULL, "missing %s", key);
    return v;
}

static const char *str_at(const cJSON *root, const char *path) {
    const cJSON *v = at(root, path);
    ck_assert_msg(cJSON_IsString(v), "%s is not a string", path);
    return v->valuestring;
}

static double num_at(const cJSON *root, const char *path) {
    const cJSON *v = at(root, path);
    ck_assert_msg(cJSON_IsNumber(v), "%s is not a number", path);
    return v->valuedouble;
}

/* The BidRequest of `r` under the default config with auction.type `at`
 * and auction.currency `currency`. */
static int encode_call(const proto_bid_request *r, const proto_profile *p, auction_type at,
                       int tmax_ms, const char *currency, proto_buf *b) {
    proto_config cfg;
    char err[ERRLEN], value[16];
    ck_assert_int_eq(proto_config_defaults(&cfg), PROTO_OK);
    cfg.auction.type = at;
    snprintf(value, sizeof value, "\"%s\"", currency);
    ck_assert_int_eq(proto_config_set(&cfg, "auction.currency", value, err, ERRLEN), PROTO_OK);
    int rc = proto_openrtb_request_encode(r, p, &cfg, tmax_ms, b);
    proto_config_free(&cfg);
    return rc;
}

/* ---- buffer and escaping ------------------------------------------------ */

START_TEST(buf_grows_and_resets) {
    proto_buf b = {0};
    ck_assert_int_eq(proto_buf_append(&b, "", 0), 0);
    ck_assert_str_eq(b.data, "");
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(proto_buf_printf(&b, "%04d,", i), 0);
    ck_assert_uint_eq(b.len, 5000);
    ck_assert_int_eq(strncmp(b.data + 4995, "0999,", 5), 0);
    ck_assert_uint_eq(strlen(b.data), b.len);
    char *long_text = repeat("x", 10000);
    proto_buf_reset(&b);
    ck_assert_int_eq(proto_buf_printf(&b, "[%s]", long_text), 0);
    ck_assert_uint_eq(b.len, 10002);
    ck_assert_int_eq(b.data[10001], ']');
    size_t cap = b.cap;
    proto_buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, cap);
    ck_assert_str_eq(b.data, "");
    ck_assert_int_eq(proto_buf_puts(&b, "ab"), 0);
    ck_assert_int_eq(proto_buf_append(&b, "cdef", 2), 0);
    ck_assert_str_eq(b.data, "abcd");
    free(long_text);
    proto_buf_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(buf_json_string_escapes) {
    proto_buf b;
    proto_buf_init(&b);
    ck_assert_int_eq(proto_buf_json_string(&b, "a\"b\\c/d\n\t\r\b\f\x01\x1f\x7f"), 0);
    ck_assert_str_eq(b.data, "\"a\\\"b\\\\c/d\\n\\t\\r\\b\\f\\u0001\\u001f\x7f\"");
    proto_buf_reset(&b);
    ck_assert_int_eq(proto_buf_json_string(&b, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), 0);
    ck_assert_str_eq(b.data, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    proto_buf_reset(&b);
    ck_assert_int_eq(proto_buf_json_string(&b, ""), 0);
    ck_assert_int_eq(proto_buf_json_string(&b, NULL), 0);
    ck_assert_str_eq(b.data, "\"\"\"\"");
    proto_buf_free(&b);
}
END_TEST

START_TEST(buf_json_string_round_trips) {
    /* every ASCII byte 1..127, then multi-byte UTF-8 */
    char s[200];
    size_t n = 0;
    for (int c = 1; c < 128; c++)
        s[n++] = (char)c;
    const char *utf8 = "\xc3\xa9\xe2\x80\xa8\xef\xbf\xbf\xf4\x8f\xbf\xbf";
    memcpy(s + n, utf8, strlen(utf8) + 1);
    proto_buf b;
    proto_buf_init(&b);
    ck_assert_int_eq(proto_buf_json_string(&b, s), 0);
    cJSON *v = parse_buf(&b);
    ck_assert(cJSON_IsString(v));
    ck_assert_str_eq(v->valuestring, s);
    cJSON_Delete(v);
    proto_buf_free(&b);
}
END_TEST

START_TEST(buf_micros_exact) {
    static const struct {
        int64_t micros;
        const char *text;
    } cases[] = {
        {2110000, "2.11"}, {1, "0.000001"},  {INT64_C(1000000000000), "1000000"},
        {0, "0"},          {1500000, "1.5"}, {2520000, "2.52"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proto_buf b = {0};
        ck_assert_int_eq(proto_buf_micros(&b, cases[i].micros), 0);
        ck_assert_str_eq(b.data, cases[i].text);
        proto_buf_free(&b);
    }
}
END_TEST

START_TEST(strerror_names_every_error) {
    const proto_err all[] = {
        PROTO_OK,        PROTO_ERR_TOO_LARGE, PROTO_ERR_NOT_JSON, PROTO_ERR_NOT_OBJECT,
        PROTO_ERR_FIELD, PROTO_ERR_NOMEM,     PROTO_ERR_IO};
    size_t n = sizeof all / sizeof all[0];
    for (size_t i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(proto_strerror(all[i]));
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(proto_strerror(all[i]), proto_strerror(all[j]));
    }
    ck_assert_ptr_nonnull(proto_strerror((proto_err)99));
}
END_TEST

/* ---- bid request: valid --------------------------------------------------- */

START_TEST(request_valid_full) {
    const char *json =
        "  {\"request_id\":\"A.z_0:9-x\",\"user_id\":\"u-7\",\"ad_slot_id\":\"slot-9\","
        "\"floor_price\":2.11,\"user_context\":{\"interests\":[\"tech\",\"news\"],"
        "\"geo\":{\"country\":\"FR\"}},\"timestamp\":1795000000.5,"
        "\"future_field\":[1,{\"x\":null}]}\n";
    proto_bid_request r;
    char err[ERRLEN];
    ck_assert_int_eq(decode(json, &r, err), PROTO_OK);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(r.has_request_id, 1);
    ck_assert_str_eq(r.request_id, "A.z_0:9-x");
    ck_assert_str_eq(r.user_id, "u-7");
    ck_assert_str_eq(r.ad_slot_id, "slot-9");
    ck_assert_int_eq(r.floor_micros, 2110000);
    ck_assert_int_eq(r.has_timestamp, 1);
    ck_assert(r.timestamp == 1795000000.5);
    ck_assert_ptr_nonnull(r.root);
    ck_assert(cJSON_IsObject(r.user_context));
    ck_assert(cJSON_IsArray(r.context_interests));
    ck_assert_int_eq(cJSON_GetArraySize(r.context_interests), 2);
    proto_bid_request_free(&r);
    ck_assert_ptr_null(r.root);
    proto_bid_request_free(&r); /* twice is safe */
}
END_TEST

START_TEST(request_valid_minimal_and_nulls) {
    proto_bid_request r;
    char err[ERRLEN];
    ck_assert_int_eq(decode(VALID_REQUEST, &r, err), PROTO_OK);
    ck_assert_int_eq(r.floor_micros, 1500000);
    ck_assert_int_eq(r.has_timestamp, 0);
    ck_assert_ptr_null(r.user_context);
    ck_assert_ptr_null(r.context_interests);
    proto_bid_request_free(&r);

    /* optional fields sent as null count as absent */
    const char *nulls = "{\"request_id\":\"r\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
                        "\"floor_price\":0,\"user_context\":null,\"timestamp\":null}";
    ck_assert_int_eq(decode(nulls, &r, err), PROTO_OK);
    ck_assert_ptr_null(r.user_context);
    ck_assert_int_eq(r.has_timestamp, 0);
    ck_assert_int_eq(r.floor_micros, 0);
    proto_bid_request_free(&r);

    const char *no_interests = "{\"request_id\":\"r\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
                               "\"floor_price\":1000000,\"user_context\":{\"interests\":null}}";
    ck_assert_int_eq(decode(no_interests, &r, err), PROTO_OK);
    ck_assert(cJSON_IsObject(r.user_context));
    ck_assert_ptr_null(r.context_interests);
    ck_assert_int_eq(r.floor_micros, INT64_C(1000000000000));
    proto_bid_request_free(&r);
}
END_TEST

START_TEST(request_floor_exact) {
    static const struct {
        const char *text;
        int64_t micros;
    } cases[] = {
        {"0.000001", 1},
        {"2.11", 2110000},
        {"0.1", 100000},
        {"999999.999999", INT64_C(999999999999)},
        {"1e6", INT64_C(1000000000000)},
        {"-0", 0},
        {"1.10", 1100000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *json = fmt("{\"request_id\":\"r\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
                         "\"floor_price\":%s}",
                         cases[i].text);
        proto_bid_request r;
        char err[ERRLEN];
        ck_assert_msg(decode(json, &r, err) == PROTO_OK, "%s: %s", cases[i].text, err);
        ck_assert_int_eq(r.floor_micros, cases[i].micros);
        proto_bid_request_free(&r);
        free(json);
    }
}
END_TEST

START_TEST(request_ids_count_characters) {
    /* 128 characters are allowed whatever their UTF-8 length; 129 are not */
    const char *units[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    for (size_t i = 0; i < 4; i++) {
        char *ok = repeat(units[i], 128);
        char *json = fmt("{\"request_id\":\"r\",\"user_id\":\"%s\",\"ad_slot_id\":\"%s\","
                         "\"floor_price\":1}",
                         ok, ok);
        proto_bid_request r;
        char err[ERRLEN];
        ck_assert_msg(decode(json, &r, err) == PROTO_OK, "%s", err);
        ck_assert_str_eq(r.user_id, ok);
        ck_assert_str_eq(r.ad_slot_id, ok);
        proto_bid_request_free(&r);
        free(json);
        char *long_id = repeat(units[i], 129);
        json = fmt("{\"request_id\":\"r\",\"user_id\":\"%s\",\"ad_slot_id\":\"s\","
                   "\"floor_price\":1}",
                   long_id);
        expect_field(json, "user_id: must be a string of 1-128 characters");
        free(json);
        json = fmt("{\"request_id\":\"r\",\"user_id\":\"u\",\"ad_slot_id\":\"%s\","
                   "\"floor_price\":1}",
                   long_id);
        expect_field(json, "ad_slot_id: must be a string of 1-128 characters");
        free(json);
        free(long_id);
        free(ok);
    }
    /* an escaped character counts once too */
    char *esc = repeat("\\u00e9", 128);
    char *json = fmt("{\"request_id\":\"r\",\"user_id\":\"%s\",\"ad_slot_id\":\"s\","
                     "\"floor_price\":1}",
                     esc);
    proto_bid_request r;
    char err[ERRLEN];
    ck_assert_int_eq(decode(json, &r, err), PROTO_OK);
    ck_assert_uint_eq(strlen(r.user_id), 256);
    proto_bid_request_free(&r);
    free(json);
    free(esc);
}
END_TEST

START_TEST(request_exactly_at_limit) {
    size_t pad = MAX_BYTES - strlen(VALID_REQUEST);
    char *json = xmalloc(MAX_BYTES + 2);
    memcpy(json, VALID_REQUEST, strlen(VALID_REQUEST));
    memset(json + strlen(VALID_REQUEST), ' ', pad + 1);
    proto_bid_request r;
    char err[ERRLEN];
    ck_assert_int_eq(decode_n(json, MAX_BYTES, MAX_BYTES, &r, err), PROTO_OK);
    proto_bid_request_free(&r);
    ck_assert_int_eq(decode_n(json, MAX_BYTES + 1, MAX_BYTES, &r, err), PROTO_ERR_TOO_LARGE);
    ck_assert_str_eq(err, "payload: over 65536 bytes");
    ck_assert_int_eq(r.has_request_id, 0);
    ck_assert_int_eq(decode_n(json, 200, 100, &r, err), PROTO_ERR_TOO_LARGE);
    ck_assert_str_eq(err, "payload: over 100 bytes");
    free(json);
}
END_TEST

/* ---- bid request: payload-level rejects ---------------------------------- */

START_TEST(request_not_json) {
    const char *bad[] = {"",
                         "   ",
                         "hello",
                         "{",
                         "{\"request_id\":}",
                         "{'a':1}",
                         "{\"a\":1,}",
                         "NaN",
                         "{\"floor_price\":NaN}",
                         "{\"floor_price\":Infinity}",
                         "{\"floor_price\":-Infinity}",
                         "{\"a\":0x10}",
                         "[1,2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_reject(bad[i], MAX_BYTES, PROTO_ERR_NOT_JSON, "payload: not valid JSON");
    proto_bid_request r;
    char err[ERRLEN];
    ck_assert_int_eq(proto_bid_request_decode(NULL, 0, MAX_BYTES, &r, err, ERRLEN),
                     PROTO_ERR_NOT_JSON);
    proto_bid_request_free(&r);
}
END_TEST

START_TEST(request_trailing_garbage) {
    const char *bad[] = {VALID_REQUEST " x", VALID_REQUEST "{}", VALID_REQUEST ",",
                         VALID_REQUEST "\n\n]", "[] []"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_reject(bad[i], MAX_BYTES, PROTO_ERR_NOT_JSON, "payload: not valid JSON");
    /* trailing whitespace is fine */
    proto_bid_request r;
    char err[ERRLEN];
    ck_assert_int_eq(decode(VALID_REQUEST " \t\r\n", &r, err), PROTO_OK);
    proto_bid_request_free(&r);
}
END_TEST

START_TEST(request_not_object) {
    const char *bad[] = {"[]", "[" VALID_REQUEST "]", "\"r-1\"", "42", "null", "true"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_reject(bad[i], MAX_BYTES, PROTO_ERR_NOT_OBJECT, "payload: must be a JSON object");
}
END_TEST

START_TEST(request_deep_nesting) {
    /* Deeper than cJSON's nesting limit (1000) but within the value count:
     * cJSON refuses it. */
    for (int pass = 0; pass < 2; pass++) {
        size_t depth = pass == 0 ? 3000 : 100000;
        char *open = repeat("[", depth), *close = repeat("]", depth);
        char *json = fmt("%s%s", open, close);
        proto_err code = pass == 0 ? PROTO_ERR_NOT_JSON : PROTO_ERR_TOO_LARGE;
        const char *msg = pass == 0 ? "payload: not valid JSON" : "payload: over 4096 JSON values";
        expect_reject(json, BIG_MAX, code, msg);
        free(json);
        char *objs = repeat("{\"a\":", depth), *ends = repeat("}", depth);
        json = fmt("{\"request_id\":\"r-1\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
                   "\"floor_price\":1,\"user_context\":%s1%s}",
                   objs, ends);
        expect_reject(json, BIG_MAX, code, msg);
        free(json);
        /* unterminated: no closing brackets at all */
        expect_reject(open, BIG_MAX, code, msg);
        free(open);
        free(close);
        free(objs);
        free(ends);
    }
}
END_TEST

/* SPEC 15: a maximum-size request stays cheap. Tiny values by the
 * thousand are refused before parsing; user_context, forwarded to every
 * bidder, holds at most 256. Strings in the count's way are text. */
START_TEST(request_value_bounds) {
    char *zeros = repeat("0,", 5000);
    char *json = fmt("{\"request_id\":\"r-1\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
                     "\"floor_price\":1,\"x\":[%s0]}",
                     zeros);
    expect_reject(json, BIG_MAX, PROTO_ERR_TOO_LARGE, "payload: over 4096 JSON values");
    free(json);
    /* commas inside a string are not values: 10,000 of them pass */
    char *commas = repeat(",", 10000);
    json = fmt("{\"request_id\":\"r-1\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
               "\"floor_price\":1,\"x\":\"%s\\\",\"}",
               commas);
    proto_bid_request r;
    char err[ERRLEN];
    ck_assert_msg(decode_n(json, strlen(json), BIG_MAX, &r, err) == PROTO_OK, "%s", err);
    proto_bid_request_free(&r);
    free(json);
    free(commas);
    char *few = repeat("0,", 255);
    json = fmt("{\"request_id\":\"r-1\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
               "\"floor_price\":1,\"user_context\":{\"v\":[%s0]}}",
               few);
    expect_field(json, "user_context: at most 256 JSON values (it is forwarded to every bidder)");
    free(json);
    free(few);
    few = repeat("0,", 253);
    json = fmt("{\"request_id\":\"r-1\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
               "\"floor_price\":1,\"user_context\":{\"v\":[%s0]}}",
               few);
    ck_assert_msg(decode_n(json, strlen(json), BIG_MAX, &r, err) == PROTO_OK, "%s", err);
    proto_bid_request_free(&r);
    free(json);
    free(zeros);
    free(few);
}
END_TEST

START_TEST(request_bad_utf8) {
    const char *bad[] = {
        "\x80",             /* lone continuation byte */
        "\xc0\xaf",         /* overlong '/' (2 bytes) */
        "\xc1\xbf",         /* overlong (2 bytes) */
        "\xe0\x80\xaf",     /* overlong '/' (3 bytes) */
        "\xf0\x80\x80\xaf", /* overlong '/' (4 bytes) */
        "\xed\xa0\x80",     /* UTF-16 surrogate U+D800 */
        "\xed\xbf\xbf",     /* UTF-16 surrogate U+DFFF */
        "\xf4\x90\x80\x80", /* U+110000, above U+10FFFF */
        "\xf5\x80\x80\x80", /* lead byte 0xf5 */
        "\xff",             /* never valid */
        "\xe2\x82",         /* truncated sequence */
        "\xc3\x28",         /* bad continuation */
        "\xf0\x9f\x98",     /* 4-byte sequence cut short */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *json = fmt("{\"request_id\":\"r-1\",\"user_id\":\"u%s\",\"ad_slot_id\":\"s\","
                         "\"floor_price\":1}",
                         bad[i]);
        expect_reject(json, MAX_BYTES, PROTO_ERR_NOT_JSON, "payload: not valid UTF-8");
        free(json);
    }
    /* at the very end of the payload, where a reader could run past it */
    char *json = fmt("%s\xe2\x82", VALID_REQUEST);
    expect_reject(json, MAX_BYTES, PROTO_ERR_NOT_JSON, "payload: not valid UTF-8");
    free(json);
    /* escaped lone surrogates are refused by the parser */
    expect_reject("{\"request_id\":\"r-1\",\"user_id\":\"\\ud800\",\"ad_slot_id\":\"s\","
                  "\"floor_price\":1}",
                  MAX_BYTES, PROTO_ERR_NOT_JSON, "payload: not valid JSON");
    expect_reject("{\"request_id\":\"r-1\",\"user_id\":\"\\udc00x\",\"ad_slot_id\":\"s\","
                  "\"floor_price\":1}",
                  MAX_BYTES, PROTO_ERR_NOT_JSON, "payload: not valid JSON");
}
END_TEST

/* The text check reads 8 bytes at a time: a bad byte is found at every
 * offset of a word, and every plain byte passes. */
START_TEST(text_check_every_offset_and_byte) {
    char json[128];
    proto_bid_request r;
    char err[ERRLEN];
    for (int at = 0; at < 24; at++) {
        for (int b = 0; b < 256; b++) {
            int len = snprintf(json, sizeof json,
                               "{\"request_id\":\"r-1\",\"user_id\":\"%.*sXXXXXXXXXXXXXXXX\","
                               "\"ad_slot_id\":\"s\",\"floor_price\":1}",
                               at, "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu");
            char *x = strchr(json, 'X');
            *x = (char)b;
            proto_err e = decode_n(json, (size_t)len, MAX_BYTES, &r, err);
            proto_bid_request_free(&r);
            const char *want = NULL;
            if (b == 0)
                want = "payload: contains a NUL byte";
            else if (b >= 0x80)
                want = "payload: not valid UTF-8";
            else if ((b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == '"' || b == '\\')
                want = "payload: not valid JSON";
            if (want) {
                ck_assert_msg(e == PROTO_ERR_NOT_JSON && strcmp(err, want) == 0,
                              "byte 0x%02x at %d: got %d (%s), want %s", b, at, e, err, want);
            } else {
                ck_assert_msg(e == PROTO_OK, "plain byte 0x%02x at %d refused: %s", b, at, err);
            }
        }
    }
}
END_TEST

START_TEST(request_nul_and_control_bytes) {
    static const char with_nul[] = "{\"request_id\":\"r-1\",\"user_id\":\"u\0x\",\"ad_slot_id\":"
                                   "\"s\",\"floor_price\":1}";
    proto_bid_request r;
    char err[ERRLEN];
    ck_assert_int_eq(decode_n(with_nul, sizeof with_nul - 1, MAX_BYTES, &r, err),
                     PROTO_ERR_NOT_JSON);
    ck_assert_str_eq(err, "payload: contains a NUL byte");
    ck_assert_int_eq(r.has_request_id, 0);
    /* a NUL after a complete object is not "the end of the string" */
    static const char nul_after[] = VALID_REQUEST "\0garbage";
    ck_assert_int_eq(decode_n(nul_after, sizeof nul_after - 1, MAX_BYTES, &r, err),
                     PROTO_ERR_NOT_JSON);
    ck_assert_str_eq(err, "payload: contains a NUL byte");
    /* raw control characters are not JSON (cJSON alone would skip them) */
    expect_reject("\x01" VALID_REQUEST, MAX_BYTES, PROTO_ERR_NOT_JSON, "payload: not valid JSON");
    expect_reject("{\"request_id\":\"r-1\",\"user_id\":\"u\x1b\",\"ad_slot_id\":\"s\","
                  "\"floor_price\":1}",
                  MAX_BYTES, PROTO_ERR_NOT_JSON, "payload: not valid JSON");
}
END_TEST

/* "\u0000" is JSON, but cJSON would decode it into a C string cut short:
 * "r-1\u0000x" must not be read as the request "r-1". */
START_TEST(request_escaped_nul) {
    expect_reject("{\"request_id\":\"r-1\\u0000x\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
                  "\"floor_price\":1}",
                  MAX_BYTES, PROTO_ERR_NOT_JSON, "payload: contains \\u0000");
    expect_reject("{\"request_id\":\"r-1\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
                  "\"floor_price\":1,\"user_context\":{\"interests\":[\"\\u0000\"]}}",
                  MAX_BYTES, PROTO_ERR_NOT_JSON, "payload: contains \\u0000");
    /* an escaped backslash before "u0000" is just text */
    proto_bid_request r;
    char err[ERRLEN];
    ck_assert_int_eq(decode("{\"request_id\":\"r-1\",\"user_id\":\"u\\\\u0000\","
                            "\"ad_slot_id\":\"s\",\"floor_price\":1}",
                            &r, err),
                     PROTO_OK);
    ck_assert_str_eq(r.user_id, "u\\u0000");
    proto_bid_request_free(&r);
    /* the profile and the bid response go through the same gate */
    static const char profile[] = "{\"interests\":[\"a\\u0000\"]}";
    proto_profile p;
    ck_assert_int_eq(proto_profile_decode(profile, sizeof profile - 1, &p, err, ERRLEN),
                     PROTO_ERR_NOT_JSON);
    ck_assert_str_eq(err, "profile: contains \\u0000");
    proto_profile_free(&p);
    expect_bid_status("{\"id\":\"r-1\",\"seatbid\":[{\"bid\":[{\"price\":1,"
                      "\"adid\":\"\\u0000\"}]}]}",
                      PROTO_BID_BAD_JSON);
}
END_TEST

/* With several broken rules about bytes, the first one in the input is named. */
START_TEST(request_first_byte_fault_named) {
    static const char utf8_then_nul[] = "{\"request_id\":\"\xc0\xaf\"}\0";
    static const char nul_then_utf8[] = "{\"request_id\":\"\0\xc0\xaf\"}";
    proto_bid_request r;
    char err[ERRLEN];
    ck_assert_int_eq(decode_n(utf8_then_nul, sizeof utf8_then_nul - 1, MAX_BYTES, &r, err),
                     PROTO_ERR_NOT_JSON);
    ck_assert_str_eq(err, "payload: not valid UTF-8");
    ck_assert_int_eq(decode_n(nul_then_utf8, sizeof nul_then_utf8 - 1, MAX_BYTES, &r, err),
                     PROTO_ERR_NOT_JSON);
    ck_assert_str_eq(err, "payload: contains a NUL byte");
    expect_reject("{\"request_id\":\"\x01\\u0000\"}", MAX_BYTES, PROTO_ERR_NOT_JSON,
                  "payload: not valid JSON");
}
END_TEST

/* Every truncation of a rich payload is refused, and no reader runs past the
 * end of the bytes it was given (the copies are exact-size). */
START_TEST(request_every_prefix) {
    const char *full = "{\"request_id\":\"r-1\",\"user_id\":\"u\\u00e9\\ud83d\\ude00\\\"\","
                       "\"ad_slot_id\":\"s\xc3\xa9\",\"floor_price\":1.5e0,\"timestamp\":-12.5E+2,"
                       "\"user_context\":{\"interests\":[\"a\",\"b\"],\"x\":[true,false,null,{}]}}";
    size_t n = strlen(full);
    for (size_t len = 0; len < n; len++) {
        proto_bid_request r;
        char err[ERRLEN];
        ck_assert_int_ne(decode_n(full, len, MAX_BYTES, &r, err), PROTO_OK);
        proto_bid_request_free(&r);
    }
    proto_bid_request r;
    char err[ERRLEN];
    ck_assert_int_eq(decode_n(full, n, MAX_BYTES, &r, err), PROTO_OK);
    ck_assert_str_eq(r.user_id, "u\xc3\xa9\xf0\x9f\x98\x80\"");
    ck_assert(r.timestamp == -1250.0);
    proto_bid_request_free(&r);
}
END_TEST

/* ---- bid request: field rules -------------------------------------------- */

#define RID_RULE "request_id: must be 1-128 characters of [A-Za-z0-9._:-]"

START_TEST(request_id_rules) {
    expect_field("{\"user_id\":\"u\",\"ad_slot_id\":\"s\",\"floor_price\":1}",
                 "request_id: required");
    const char *bad[] = {
        "1",       "null", "\"\"",   "\"r 1\"", "\"r/1\"", "\"r\\n\"", "\"caf\xc3\xa9\"",
        "[\"r\"]", "{}",   "\"r+1\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *json = fmt("{\"request_id\":%s,\"user_id\":\"u\",\"ad_slot_id\":\"s\","
                         "\"floor_price\":1}",
                         bad[i]);
        expect_field(json, RID_RULE);
        free(json);
    }
    char *ok = repeat("a", 128), *long_id = repeat("a", 129);
    char *json = fmt("{\"request_id\":\"%s\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
                     "\"floor_price\":1}",
                     ok);
    proto_bid_request r;
    char err[ERRLEN];
    ck_assert_int_eq(decode(json, &r, err), PROTO_OK);
    ck_assert_str_eq(r.request_id, ok);
    proto_bid_request_free(&r);
    free(json);
    json = fmt("{\"request_id\":\"%s\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
               "\"floor_price\":1}",
               long_id);
    expect_field(json, RID_RULE);
    free(json);
    free(ok);
    free(long_id);
}
END_TEST

START_TEST(request_user_and_slot_rules) {
    expect_field("{\"request_id\":\"r\",\"ad_slot_id\":\"s\",\"floor_price\":1}",
                 "user_id: required");
    expect_field("{\"request_id\":\"r\",\"user_id\":\"u\",\"floor_price\":1}",
                 "ad_slot_id: required");
    const char *bad[] = {"7", "\"\"", "null", "true", "[\"u\"]", "{\"id\":\"u\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *json = fmt("{\"request_id\":\"r\",\"user_id\":%s,\"ad_slot_id\":\"s\","
                         "\"floor_price\":1}",
                         bad[i]);
        expect_field(json, "user_id: must be a string of 1-128 characters");
        free(json);
        json = fmt("{\"request_id\":\"r\",\"user_id\":\"u\",\"ad_slot_id\":%s,"
                   "\"floor_price\":1}",
                   bad[i]);
        expect_field(json, "ad_slot_id: must be a string of 1-128 characters");
        free(json);
    }
    char *huge = repeat("x", 100000);
    char *json = fmt("{\"request_id\":\"r\",\"user_id\":\"%s\",\"ad_slot_id\":\"s\","
                     "\"floor_price\":1}",
                     huge);
    expect_field(json, "user_id: must be a string of 1-128 characters");
    /* and with the normal limit it never reaches the parser */
    expect_reject(json, MAX_BYTES, PROTO_ERR_TOO_LARGE, "payload: over 65536 bytes");
    free(json);
    json = fmt("{\"request_id\":\"r\",\"user_id\":\"u\",\"ad_slot_id\":\"%s\","
               "\"floor_price\":1}",
               huge);
    expect_field(json, "ad_slot_id: must be a string of 1-128 characters");
    free(json);
    free(huge);
}
END_TEST

#define FLOOR_MSG "floor_price: must be a finite number between 0 and 1000000"

START_TEST(request_floor_rules) {
    expect_field("{\"request_id\":\"r\",\"user_id\":\"u\",\"ad_slot_id\":\"s\"}",
                 "floor_price: required");
    const char *bad[] = {"\"1.5\"", "-0.01", "-1",   "1000000.01", "1000001", "1e400",
                         "-1e400",  "1e300", "true", "null",       "[1]",     "{}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *json = fmt("{\"request_id\":\"r\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
                         "\"floor_price\":%s}",
                         bad[i]);
        expect_field(json, FLOOR_MSG);
        free(json);
    }
}
END_TEST

START_TEST(request_context_rules) {
    const char *not_object[] = {"[]", "\"ctx\"", "1", "true"};
    for (size_t i = 0; i < sizeof not_object / sizeof not_object[0]; i++) {
        char *json = fmt("{\"request_id\":\"r\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
                         "\"floor_price\":1,\"user_context\":%s}",
                         not_object[i]);
        expect_field(json, "user_context: must be an object");
        free(json);
    }
    const char *bad_interests[] = {"\"tech\"", "[1]", "[\"a\",null]", "{}", "[[\"a\"]]", "7"};
    for (size_t i = 0; i < sizeof bad_interests / sizeof bad_interests[0]; i++) {
        char *json = fmt("{\"request_id\":\"r\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
                         "\"floor_price\":1,\"user_context\":{\"interests\":%s}}",
                         bad_interests[i]);
        expect_field(json, "user_context.interests: must be an array of strings");
        free(json);
    }
}
END_TEST

/* A request whose user_context.interests is `interests` (JSON text). */
static char *request_with_interests(const char *interests) {
    return fmt("{\"request_id\":\"r\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
               "\"floor_price\":1,\"user_context\":{\"interests\":%s}}",
               interests);
}

/* A JSON array of `n` strings: "k0", "k1", ... */
static char *interest_array(size_t first, size_t n) {
    proto_buf b = {0};
    ck_assert_int_eq(proto_buf_puts(&b, "["), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(proto_buf_printf(&b, "%s\"k%zu\"", i ? "," : "", first + i), 0);
    ck_assert_int_eq(proto_buf_puts(&b, "]"), 0);
    return b.data;
}

START_TEST(request_interest_bounds) {
    /* SPEC 2: at most 64 entries */
    char *list = interest_array(0, 64);
    char *json = request_with_interests(list);
    proto_bid_request r;
    decode_ok(json, &r);
    ck_assert_int_eq(cJSON_GetArraySize(r.context_interests), 64);
    proto_bid_request_free(&r);
    free(json);
    free(list);
    list = interest_array(0, 65);
    json = request_with_interests(list);
    expect_field(json, "user_context.interests: at most 64 entries");
    free(json);
    free(list);
    /* each 1 to 64 characters, counted as characters, not bytes */
    const char *units[] = {"a", "\xc3\xa9", "\xf0\x9f\x98\x80"};
    for (size_t i = 0; i < 3; i++) {
        char *ok = repeat(units[i], 64);
        char *list_ok = fmt("[\"a\",\"%s\"]", ok);
        json = request_with_interests(list_ok);
        decode_ok(json, &r);
        ck_assert_str_eq(cJSON_GetArrayItem(r.context_interests, 1)->valuestring, ok);
        proto_bid_request_free(&r);
        free(json);
        free(list_ok);
        free(ok);
        char *long_one = repeat(units[i], 65);
        char *list_bad = fmt("[\"a\",\"b\",\"c\",\"%s\"]", long_one);
        json = request_with_interests(list_bad);
        expect_field(json, "user_context.interests[3]: must be 1 to 64 characters");
        free(json);
        free(list_bad);
        free(long_one);
    }
    json = request_with_interests("[\"a\",\"\"]");
    expect_field(json, "user_context.interests[1]: must be 1 to 64 characters");
    free(json);
    /* the type is checked first: a long list of the wrong type says so */
    list = interest_array(0, 100);
    list[strlen(list) - 1] = '\0';
    char *mixed = fmt("%s,7]", list);
    json = request_with_interests(mixed);
    expect_field(json, "user_context.interests: must be an array of strings");
    free(json);
    free(mixed);
    free(list);
}
END_TEST

START_TEST(request_timestamp_rules) {
    const char *bad[] = {"\"1795000000\"", "1e400", "-1e400", "true", "[]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *json = fmt("{\"request_id\":\"r\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
                         "\"floor_price\":1,\"timestamp\":%s}",
                         bad[i]);
        expect_field(json, "timestamp: must be a number");
        free(json);
    }
}
END_TEST

START_TEST(request_id_recovered) {
    const char *cases[] = {
        "{\"request_id\":\"r-42\",\"user_id\":7,\"ad_slot_id\":\"s\",\"floor_price\":1}",
        "{\"request_id\":\"r-42\",\"user_id\":\"u\",\"floor_price\":1}",
        "{\"floor_price\":-5,\"user_id\":\"u\",\"ad_slot_id\":\"s\",\"request_id\":\"r-42\"}",
        "{\"request_id\":\"r-42\",\"user_id\":\"u\",\"ad_slot_id\":\"s\",\"floor_price\":1,"
        "\"user_context\":[]}",
        "{\"request_id\":\"r-42\",\"user_id\":\"u\",\"ad_slot_id\":\"s\",\"floor_price\":1,"
        "\"timestamp\":\"now\"}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proto_bid_request r;
        char err[ERRLEN];
        ck_assert_int_eq(decode(cases[i], &r, err), PROTO_ERR_FIELD);
        ck_assert_int_eq(r.has_request_id, 1);
        ck_assert_str_eq(r.request_id, "r-42");
        ck_assert_ptr_null(r.root);
        ck_assert_ptr_null(r.user_context);
        proto_bid_request_free(&r);
    }
    /* not recovered when request_id itself is bad, or the payload is not JSON */
    const char *lost[] = {
        "{\"request_id\":\"r 42\",\"user_id\":7}",
        "{\"request_id\":42}",
        "{\"request_id\":\"r-42\"",
        "[{\"request_id\":\"r-42\"}]",
    };
    for (size_t i = 0; i < sizeof lost / sizeof lost[0]; i++) {
        proto_bid_request r;
        char err[ERRLEN];
        ck_assert_int_ne(decode(lost[i], &r, err), PROTO_OK);
        ck_assert_int_eq(r.has_request_id, 0);
        proto_bid_request_free(&r);
    }
}
END_TEST

/* ---- profile ------------------------------------------------------------ */

START_TEST(profile_decode_valid) {
    const char *json = "{\"user_id\":\"u-7\",\"interests\":[\"tech\",\"sports\"],"
                       "\"demographics\":{\"age\":30},\"ltv_score\":0.7,\"source\":\"crm\"}";
    proto_profile p;
    char err[ERRLEN];
    ck_assert_int_eq(proto_profile_decode(json, strlen(json), &p, err, ERRLEN), PROTO_OK);
    ck_assert(cJSON_IsArray(p.interests));
    ck_assert_int_eq(cJSON_GetArraySize(p.interests), 2);
    ck_assert(p.ltv_score == 0.7);
    proto_profile_free(&p);
    ck_assert_ptr_null(p.root);

    ck_assert_int_eq(proto_profile_decode("{}", 2, &p, err, ERRLEN), PROTO_OK);
    ck_assert_ptr_null(p.interests);
    ck_assert(p.ltv_score == 0.0);
    proto_profile_free(&p);
}
END_TEST

START_TEST(profile_decode_invalid) {
    static const struct {
        const char *json;
        proto_err code;
        const char *msg;
    } cases[] = {
        {"", PROTO_ERR_NOT_JSON, "profile: not valid JSON"},
        {"{\"interests\":[]", PROTO_ERR_NOT_JSON, "profile: not valid JSON"},
        {"{} x", PROTO_ERR_NOT_JSON, "profile: not valid JSON"},
        {"{\"interests\":[\"\xc0\xaf\"]}", PROTO_ERR_NOT_JSON, "profile: not valid UTF-8"},
        {"[]", PROTO_ERR_NOT_OBJECT, "profile: must be a JSON object"},
        {"{\"interests\":\"tech\"}", PROTO_ERR_FIELD, "interests: must be an array of strings"},
        {"{\"interests\":[1]}", PROTO_ERR_FIELD, "interests: must be an array of strings"},
        {"{\"ltv_score\":1.5}", PROTO_ERR_FIELD, "ltv_score: must be a number between 0 and 1"},
        {"{\"ltv_score\":-0.1}", PROTO_ERR_FIELD, "ltv_score: must be a number between 0 and 1"},
        {"{\"ltv_score\":\"0.5\"}", PROTO_ERR_FIELD, "ltv_score: must be a number between 0 and 1"},
        {"{\"ltv_score\":1e400}", PROTO_ERR_FIELD, "ltv_score: must be a number between 0 and 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].json);
        char *copy = xmalloc(n);
        memcpy(copy, cases[i].json, n);
        proto_profile p;
        char err[ERRLEN];
        ck_assert_int_eq(proto_profile_decode(copy, n, &p, err, ERRLEN), cases[i].code);
        ck_assert_str_eq(err, cases[i].msg);
        ck_assert_ptr_null(p.root);
        proto_profile_free(&p);
        free(copy);
    }
    static const char nul[] = "{\"interests\":[\"a\0\"]}";
    proto_profile p;
    char err[ERRLEN];
    ck_assert_int_eq(proto_profile_decode(nul, sizeof nul - 1, &p, err, ERRLEN),
                     PROTO_ERR_NOT_JSON);
    ck_assert_str_eq(err, "profile: contains a NUL byte");
    proto_profile_free(&p);
}
END_TEST

/* The strings of the array `a`, joined with commas. */
static char *joined(const cJSON *a) {
    proto_buf b = {0};
    const cJSON *item;
    ck_assert_int_eq(proto_buf_puts(&b, ""), 0);
    cJSON_ArrayForEach(item, a) {
        ck_assert(cJSON_IsString(item));
        ck_assert_int_eq(proto_buf_printf(&b, "%s%s", b.len ? "," : "", item->valuestring), 0);
    }
    return b.data;
}

START_TEST(profile_interests_capped) {
    /* 100 interests: the first 64 are kept, the profile is not refused */
    char *list = interest_array(0, 100);
    char *json = fmt("{\"user_id\":\"u\",\"interests\":%s,\"ltv_score\":0.25}", list);
    proto_profile p;
    char err[ERRLEN];
    ck_assert_int_eq(proto_profile_decode(json, strlen(json), &p, err, ERRLEN), PROTO_OK);
    ck_assert_int_eq(cJSON_GetArraySize(p.interests), 64);
    ck_assert_str_eq(cJSON_GetArrayItem(p.interests, 0)->valuestring, "k0");
    ck_assert_str_eq(cJSON_GetArrayItem(p.interests, 63)->valuestring, "k63");
    ck_assert(p.ltv_score == 0.25);
    /* what bidders see (keywords) is the capped list */
    proto_bid_request r;
    decode_ok(VALID_REQUEST, &r);
    proto_buf b = {0};
    ck_assert_int_eq(encode_call(&r, &p, AUCTION_SECOND_PRICE, 50, "USD", &b), 0);
    cJSON *o = parse_buf(&b);
    char *want = joined(p.interests);
    ck_assert_str_eq(str_at(o, "user.keywords"), want);
    free(want);
    cJSON_Delete(o);
    proto_buf_free(&b);
    proto_bid_request_free(&r);
    proto_profile_free(&p);
    free(json);
    free(list);

    /* empty and over-long interests are dropped and do not use up the 64 */
    char *long_one = repeat("x", 65);
    char *max_one = repeat("\xc3\xa9", 64);
    list = interest_array(0, 70);
    list[0] = ',';
    json = fmt("{\"interests\":[\"\",\"%s\",\"%s\"%s}", long_one, max_one, list);
    ck_assert_int_eq(proto_profile_decode(json, strlen(json), &p, err, ERRLEN), PROTO_OK);
    ck_assert_int_eq(cJSON_GetArraySize(p.interests), 64);
    ck_assert_str_eq(cJSON_GetArrayItem(p.interests, 0)->valuestring, max_one);
    ck_assert_str_eq(cJSON_GetArrayItem(p.interests, 1)->valuestring, "k0");
    ck_assert_str_eq(cJSON_GetArrayItem(p.interests, 63)->valuestring, "k62");
    proto_profile_free(&p);
    free(json);
    free(list);
    free(max_one);
    free(long_one);

    /* a short list is kept whole, in order */
    const char *few = "{\"interests\":[\"b\",\"a\",\"b\"]}";
    ck_assert_int_eq(proto_profile_decode(few, strlen(few), &p, err, ERRLEN), PROTO_OK);
    char *got = joined(p.interests);
    ck_assert_str_eq(got, "b,a,b");
    free(got);
    proto_profile_free(&p);
}
END_TEST

START_TEST(profile_encode_default) {
    cJSON *defaults = cJSON_Parse("{\"user_id\":\"stale\",\"interests\":[],\"ltv_score\":0.5,"
                                  "\"demographics\":{\"a\":[1,\"x\"]}}");
    ck_assert_ptr_nonnull(defaults);
    proto_buf b = {0};
    ck_assert_int_eq(proto_profile_encode(defaults, "u-7", &b), 0);
    ck_assert_str_eq(b.data, "{\"user_id\":\"u-7\",\"interests\":[],\"ltv_score\":0.5,"
                             "\"demographics\":{\"a\":[1,\"x\"]}}");
    /* it reads back as a profile */
    proto_profile p;
    char err[ERRLEN];
    ck_assert_int_eq(proto_profile_decode(b.data, b.len, &p, err, ERRLEN), PROTO_OK);
    ck_assert(p.ltv_score == 0.5);
    proto_profile_free(&p);
    /* a user_id that needs escaping */
    proto_buf_reset(&b);
    ck_assert_int_eq(proto_profile_encode(defaults, "a\"b\\c\n\xc3\xa9", &b), 0);
    cJSON *back = parse_buf(&b);
    ck_assert_str_eq(str_at(back, "user_id"), "a\"b\\c\n\xc3\xa9");
    cJSON_Delete(back);
    /* no defaults at all */
    proto_buf_reset(&b);
    ck_assert_int_eq(proto_profile_encode(NULL, "u", &b), 0);
    ck_assert_str_eq(b.data, "{\"user_id\":\"u\"}");
    proto_buf_free(&b);
    cJSON_Delete(defaults);
}
END_TEST

/* ---- OpenRTB BidRequest out --------------------------------------------- */

START_TEST(openrtb_request_fields) {
    proto_bid_request r;
    decode_ok("{\"request_id\":\"r-1\",\"user_id\":\"u-7\",\"ad_slot_id\":\"slot-9\","
              "\"floor_price\":1.5,\"user_context\":{\"interests\":[\"sports\",\"music\","
              "\"tech\",\"music\"],\"geo\":{\"lat\":48.85,\"city\":\"Paris\"},\"n\":null}}",
              &r);
    proto_profile p;
    decode_profile_ok("{\"interests\":[\"tech\",\"sports\",\"tech\"],\"ltv_score\":0.7}", &p);
    proto_buf b = {0};
    ck_assert_int_eq(encode_call(&r, &p, AUCTION_SECOND_PRICE, 95, "USD", &b), 0);
    cJSON *o = parse_buf(&b);
    ck_assert_str_eq(str_at(o, "id"), "r-1");
    ck_assert(num_at(o, "at") == 2);
    ck_assert(num_at(o, "tmax") == 95);
    ck_assert_int_eq(cJSON_GetArraySize(at(o, "cur")), 1);
    ck_assert_str_eq(str_at(o, "cur.0"), "USD");
    ck_assert_int_eq(cJSON_GetArraySize(at(o, "imp")), 1);
    ck_assert_str_eq(str_at(o, "imp.0.id"), "1");
    ck_assert_str_eq(str_at(o, "imp.0.tagid"), "slot-9");
    ck_assert(num_at(o, "imp.0.bidfloor") == 1.5);
    ck_assert_str_eq(str_at(o, "imp.0.bidfloorcur"), "USD");
    ck_assert_str_eq(str_at(o, "user.id"), "u-7");
    ck_assert_str_eq(str_at(o, "user.keywords"), "tech,sports,music");
    ck_assert(num_at(o, "user.ext.ltv_score") == 0.7);
    ck_assert(cJSON_Compare(at(o, "ext.user_context"), r.user_context, 1));
    /* numbers are printed exactly, not through a rounding double */
    ck_assert_ptr_nonnull(strstr(b.data, "\"bidfloor\":1.5,"));
    ck_assert_ptr_nonnull(strstr(b.data, "\"ltv_score\":0.7}"));
    ck_assert_ptr_nonnull(
        strstr(b.data, "{\"id\":\"r-1\",\"at\":2,\"tmax\":95,\"cur\":[\"USD\"],"));
    cJSON_Delete(o);
    /* A score of more than 6 decimals takes the long road, and reads back
     * as the same number. */
    static const struct {
        double v;
        const char *text;
    } scores[] = {{0.30000000000000004, "0.30000000000000004"},
                  {0.123456789, "0.123456789"},
                  {0.000001, "0.000001"},
                  {1, "1"}};
    for (size_t i = 0; i < sizeof scores / sizeof scores[0]; i++) {
        p.ltv_score = scores[i].v;
        proto_buf_reset(&b);
        ck_assert_int_eq(encode_call(&r, &p, AUCTION_SECOND_PRICE, 95, "USD", &b), 0);
        char want[64];
        snprintf(want, sizeof want, "\"ltv_score\":%s}", scores[i].text);
        ck_assert_msg(strstr(b.data, want) != NULL, "ltv_score %.17g: want %s in %s", scores[i].v,
                      want, b.data);
    }

    proto_buf_reset(&b);
    ck_assert_int_eq(encode_call(&r, &p, AUCTION_FIRST_PRICE, 0, "EUR", &b), 0);
    o = parse_buf(&b);
    ck_assert(num_at(o, "at") == 1);
    ck_assert(num_at(o, "tmax") == 1); /* never below 1 */
    ck_assert_str_eq(str_at(o, "cur.0"), "EUR");
    ck_assert_str_eq(str_at(o, "imp.0.bidfloorcur"), "EUR");
    cJSON_Delete(o);
    proto_buf_free(&b);
    proto_profile_free(&p);
    proto_bid_request_free(&r);
}
END_TEST

START_TEST(openrtb_request_defaults) {
    proto_bid_request r;
    decode_ok("{\"request_id\":\"r-2\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
              "\"floor_price\":0.000001}",
              &r);
    proto_buf b = {0};
    ck_assert_int_eq(encode_call(&r, NULL, AUCTION_SECOND_PRICE, 100, "USD", &b), 0);
    cJSON *o = parse_buf(&b);
    ck_assert_str_eq(str_at(o, "user.keywords"), "");
    ck_assert(num_at(o, "user.ext.ltv_score") == 0);
    const cJSON *ctx = at(o, "ext.user_context");
    ck_assert(cJSON_IsObject(ctx));
    ck_assert_ptr_null(ctx->child);
    ck_assert_ptr_nonnull(strstr(b.data, "\"bidfloor\":0.000001,"));
    cJSON_Delete(o);
    proto_bid_request_free(&r);

    /* profile keywords alone, and a floor of 2.11 printed as such */
    decode_ok("{\"request_id\":\"r-3\",\"user_id\":\"u\",\"ad_slot_id\":\"s\","
              "\"floor_price\":2.11,\"user_context\":{}}",
              &r);
    proto_profile p;
    decode_profile_ok("{\"interests\":[\"a\",\"\",\"b\"]}", &p);
    proto_buf_reset(&b);
    ck_assert_int_eq(encode_call(&r, &p, AUCTION_SECOND_PRICE, 50, "USD", &b), 0);
    o = parse_buf(&b);
    ck_assert_str_eq(str_at(o, "user.keywords"), "a,b");
    ck_assert_ptr_nonnull(strstr(b.data, "\"bidfloor\":2.11,"));
    cJSON_Delete(o);
    proto_profile_free(&p);
    proto_bid_request_free(&r);
    proto_buf_free(&b);
}
END_TEST

START_TEST(openrtb_request_escaping) {
    proto_bid_request r;
    decode_ok("{\"request_id\":\"r-4\",\"user_id\":\"u\\\"\\\\\\n\xc3\xa9\","
              "\"ad_slot_id\":\"s\\t\\u0001\",\"floor_price\":1,"
              "\"user_context\":{\"interests\":[\"a\\\"b\",\"\\u00e9\"],\"k\\\"\":\"v\\n\"}}",
              &r);
    proto_buf b = {0};
    ck_assert_int_eq(encode_call(&r, NULL, AUCTION_SECOND_PRICE, 10, "USD", &b), 0);
    cJSON *o = parse_buf(&b);
    ck_assert_str_eq(str_at(o, "user.id"), "u\"\\\n\xc3\xa9");
    ck_assert_str_eq(str_at(o, "imp.0.tagid"), "s\t\x01");
    ck_assert_str_eq(str_at(o, "user.keywords"), "a\"b,\xc3\xa9");
    ck_assert(cJSON_Compare(at(o, "ext.user_context"), r.user_context, 1));
    cJSON_Delete(o);
    proto_buf_free(&b);
    proto_bid_request_free(&r);
}
END_TEST

START_TEST(openrtb_request_many_keywords) {
    /* the most a request and a profile can carry, overlapping: each once */
    char *list = interest_array(32, 64);
    char *json = request_with_interests(list);
    proto_bid_request r;
    decode_ok(json, &r);
    free(json);
    free(list);
    list = interest_array(0, 64);
    json = fmt("{\"interests\":%s}", list);
    proto_profile p;
    decode_profile_ok(json, &p);
    free(json);
    free(list);
    proto_buf b = {0};
    ck_assert_int_eq(encode_call(&r, &p, AUCTION_SECOND_PRICE, 10, "USD", &b), 0);
    cJSON *o = parse_buf(&b);
    const char *kw = str_at(o, "user.keywords");
    size_t commas = 0;
    for (const char *c = kw; *c != '\0'; c++)
        commas += *c == ',';
    ck_assert_uint_eq(commas, 95); /* k0 .. k95 */
    ck_assert_int_eq(strncmp(kw, "k0,k1,k2,", 9), 0);
    ck_assert_ptr_nonnull(strstr(kw, ",k63,k64,"));
    ck_assert_int_eq(strcmp(kw + strlen(kw) - 4, ",k95"), 0);
    cJSON_Delete(o);
    proto_buf_free(&b);
    proto_profile_free(&p);
    proto_bid_request_free(&r);
}
END_TEST

/* ---- BidResponse in ----------------------------------------------------- */

#define SPEC_RESPONSE                                                                              \
    "{\"id\":\"r-1\",\"seatbid\":[{\"seat\":\"adv-2\",\"bid\":[{\"id\":\"b1\",\"impid\":\"1\","    \
    "\"price\":2.52,\"adid\":\"ad_adv-2_r-1\",\"crid\":\"c1\","                                    \
    "\"iurl\":\"https://cdn.example/adv-2.jpg\",\"nurl\":\"http://n.example/win\"}]}],"            \
    "\"cur\":\"USD\"}"

START_TEST(bid_response_ok) {
    proto_bid b;
    char err[ERRLEN];
    ck_assert_int_eq(bid_decode(SPEC_RESPONSE, strlen(SPEC_RESPONSE), MAX_BYTES, "r-1", &b, err),
                     PROTO_BID_OK);
    ck_assert_int_eq(b.price_micros, 2520000);
    ck_assert_str_eq(b.bid_id, "b1");
    ck_assert_str_eq(b.imp_id, "1");
    ck_assert_str_eq(b.seat, "adv-2");
    ck_assert_str_eq(b.ad_id, "ad_adv-2_r-1");
    ck_assert_str_eq(b.crid, "c1");
    ck_assert_str_eq(b.creative_url, "https://cdn.example/adv-2.jpg");
    ck_assert_str_eq(b.nurl, "http://n.example/win");
    ck_assert_ptr_null(b.lurl);
    proto_bid_free(&b);
    ck_assert_ptr_null(b.seat);
    proto_bid_free(&b);

    /* a price of exactly 1,000,000 is valid; missing strings stay NULL */
    const char *max = "{\"id\":\"r-1\",\"seatbid\":[{\"bid\":[{\"price\":1000000,"
                      "\"lurl\":\"http://l\",\"adid\":7}]}]}";
    ck_assert_int_eq(bid_decode(max, strlen(max), MAX_BYTES, "r-1", &b, err), PROTO_BID_OK);
    ck_assert_int_eq(b.price_micros, INT64_C(1000000000000));
    ck_assert_ptr_null(b.seat);
    ck_assert_ptr_null(b.ad_id);
    ck_assert_str_eq(b.lurl, "http://l");
    proto_bid_free(&b);
}
END_TEST

START_TEST(bid_response_highest_wins) {
    const char *body =
        "{\"id\":\"r-1\",\"seatbid\":["
        "{\"seat\":\"s1\",\"bid\":[{\"id\":\"a\",\"price\":1.2},{\"id\":\"b\",\"price\":3.4}]},"
        "{\"seat\":\"s2\",\"bid\":[]},"
        "{\"seat\":\"s3\",\"bid\":[{\"id\":\"c\",\"price\":-9},{\"id\":\"d\",\"price\":5.01},"
        "{\"id\":\"e\",\"price\":\"99\"},{\"id\":\"f\",\"price\":1e400},{\"id\":\"g\"},"
        "{\"id\":\"h\",\"price\":5.01},{\"id\":\"i\",\"price\":2000000}]}]}";
    proto_bid b;
    char err[ERRLEN];
    ck_assert_int_eq(bid_decode(body, strlen(body), MAX_BYTES, "r-1", &b, err), PROTO_BID_OK);
    ck_assert_int_eq(b.price_micros, 5010000);
    ck_assert_str_eq(b.bid_id, "d"); /* first of equal prices */
    ck_assert_str_eq(b.seat, "s3");
    proto_bid_free(&b);
}
END_TEST

START_TEST(bid_response_no_bid) {
    const char *blank[] = {"", " ", "\r\n\t  \n"};
    for (size_t i = 0; i < 3; i++)
        expect_bid_status(blank[i], PROTO_BID_NO_BID);
    proto_bid b;
    char err[ERRLEN];
    ck_assert_int_eq(proto_bid_response_decode(NULL, 0, MAX_BYTES, "r-1", &b, err, ERRLEN),
                     PROTO_BID_NO_BID);
}
END_TEST

START_TEST(bid_response_bad_json) {
    const char *bad[] = {"not json",
                         "{",
                         "[1]",
                         "\"r-1\"",
                         "null",
                         "42",
                         SPEC_RESPONSE " x",
                         SPEC_RESPONSE SPEC_RESPONSE,
                         "{\"id\":\"r-1\",\"seatbid\":[{\"bid\":[{\"price\":NaN}]}]}",
                         "{\"id\":\"r-1\",\"seatbid\":[{\"bid\":[{\"price\":Infinity}]}]}",
                         "{\"id\":\"r\xc0\xaf\"}",
                         "{\"id\":\"\xed\xa0\x80\"}",
                         "\x02{}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_bid_status(bad[i], PROTO_BID_BAD_JSON);
    static const char nul[] = "{\"id\":\"r-1\"}\0";
    proto_bid b;
    char err[ERRLEN];
    ck_assert_int_eq(bid_decode(nul, sizeof nul - 1, MAX_BYTES, "r-1", &b, err),
                     PROTO_BID_BAD_JSON);
    ck_assert_str_eq(err, "body: contains a NUL byte");
    char *deep = repeat("[", 100000);
    ck_assert_int_eq(bid_decode(deep, strlen(deep), BIG_MAX, "r-1", &b, err), PROTO_BID_BAD_JSON);
    free(deep);
}
END_TEST

START_TEST(bid_response_wrong_id) {
    const char *bad[] = {"{}",
                         "{\"id\":1}",
                         "{\"id\":null}",
                         "{\"id\":\"r-2\"}",
                         "{\"id\":\"R-1\",\"seatbid\":[]}",
                         "{\"seatbid\":[{\"bid\":[{\"price\":1}]}]}",
                         "{\"id\":\"r-1x\",\"seatbid\":[{\"bid\":[{\"price\":1}]}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_bid_status(bad[i], PROTO_BID_WRONG_ID);
}
END_TEST

START_TEST(bid_response_no_seatbid) {
    const char *none[] = {
        "{\"id\":\"r-1\"}", "{\"id\":\"r-1\",\"nbr\":2}", "{\"id\":\"r-1\",\"seatbid\":null}",
        "{\"id\":\"r-1\",\"seatbid\":[]}",
        "{\"id\":\"r-1\",\"seatbid\":[{\"bid\":[]},{\"seat\":\"x\",\"bid\":[]}]}"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        expect_bid_status(none[i], PROTO_BID_NO_SEATBID);
}
END_TEST

START_TEST(bid_response_bad_shape) {
    const char *bad[] = {
        "{\"id\":\"r-1\",\"seatbid\":{}}",
        "{\"id\":\"r-1\",\"seatbid\":\"x\"}",
        "{\"id\":\"r-1\",\"seatbid\":[1]}",
        "{\"id\":\"r-1\",\"seatbid\":[{}]}",
        "{\"id\":\"r-1\",\"seatbid\":[{\"bid\":{\"price\":1}}]}",
        "{\"id\":\"r-1\",\"seatbid\":[{\"bid\":[1]}]}",
        "{\"id\":\"r-1\",\"seatbid\":[{\"bid\":[{\"price\":1},\"x\"]}]}",
        "{\"id\":\"r-1\",\"seatbid\":[{\"bid\":[{\"price\":1}]},null]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_bid_status(bad[i], PROTO_BID_BAD_SHAPE);
}
END_TEST

START_TEST(bid_response_bad_price) {
    const char *prices[] = {"0",      "-1",         "\"2.5\"", "null", "1e400",
                            "-1e400", "1000000.01", "1e-9",    "true", "{}"};
    for (size_t i = 0; i < sizeof prices / sizeof prices[0]; i++) {
        char *body = fmt("{\"id\":\"r-1\",\"seatbid\":[{\"bid\":[{\"id\":\"b\",\"price\":%s}]}]}",
                         prices[i]);
        expect_bid_status(body, PROTO_BID_BAD_PRICE);
        free(body);
    }
    expect_bid_status("{\"id\":\"r-1\",\"seatbid\":[{\"bid\":[{\"id\":\"b\"}]}]}",
                      PROTO_BID_BAD_PRICE);
}
END_TEST

START_TEST(bid_response_too_large) {
    size_t n = strlen(SPEC_RESPONSE);
    proto_bid b;
    char err[ERRLEN];
    ck_assert_int_eq(bid_decode(SPEC_RESPONSE, n, n, "r-1", &b, err), PROTO_BID_OK);
    proto_bid_free(&b);
    ck_assert_int_eq(bid_decode(SPEC_RESPONSE, n, n - 1, "r-1", &b, err), PROTO_BID_TOO_LARGE);
    ck_assert_ptr_null(b.bid_id);
    char *big = repeat(" ", MAX_BYTES + 1);
    ck_assert_int_eq(bid_decode(big, MAX_BYTES + 1, MAX_BYTES, "r-1", &b, err),
                     PROTO_BID_TOO_LARGE);
    ck_assert_str_eq(err, "body: over 65536 bytes");
    free(big);
}
END_TEST

START_TEST(bid_response_every_prefix) {
    size_t n = strlen(SPEC_RESPONSE);
    for (size_t len = 1; len < n; len++) {
        proto_bid b;
        char err[ERRLEN];
        ck_assert_int_eq(bid_decode(SPEC_RESPONSE, len, MAX_BYTES, "r-1", &b, err),
                         PROTO_BID_BAD_JSON);
        proto_bid_free(&b);
    }
}
END_TEST

/* A response with one bid whose `key` is the JSON text `value` (a string
 * field of the bid, or "seat" of its seatbid), beside a valid price. */
static char *bid_with(const char *key, const char *value) {
    if (strcmp(key, "seat") == 0)
        return fmt("{\"id\":\"r-1\",\"seatbid\":[{\"seat\":%s,\"bid\":[{\"price\":1}]}]}", value);
    return fmt("{\"id\":\"r-1\",\"seatbid\":[{\"bid\":[{\"price\":1,\"%s\":%s}]}]}", key, value);
}

/* The string of `b` that `key` fills. */
static const char *bid_field(const proto_bid *b, const char *key) {
    static const char *const keys[] = {"id",   "impid", "seat", "adid", "crid",
                                       "iurl", "nurl",  "lurl", "burl"};
    const char *const vals[] = {b->bid_id,       b->imp_id, b->seat, b->ad_id, b->crid,
                                b->creative_url, b->nurl,   b->lurl, b->burl};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(keys[i], key) == 0) return vals[i];
    ck_abort_msg("no field %s", key);
    return NULL;
}

/* `body` decodes OK and `key` reads back as `want` (NULL: absent). */
static void expect_bid_field(const char *body, const char *key, const char *want) {
    proto_bid b;
    char err[ERRLEN];
    proto_bid_status st = bid_decode(body, strlen(body), MAX_BYTES, "r-1", &b, err);
    ck_assert_msg(st == PROTO_BID_OK, "%.100s: got %s (%s)", body, proto_bid_status_str(st), err);
    ck_assert_str_eq(err, "");
    if (want == NULL)
        ck_assert_ptr_null(bid_field(&b, key));
    else
        ck_assert_str_eq(bid_field(&b, key), want);
    proto_bid_free(&b);
}

/* `body` is a bidder error BAD_FIELD with exactly `msg`. */
static void expect_bad_field(const char *body, const char *msg) {
    proto_bid b;
    char err[ERRLEN];
    proto_bid_status st = bid_decode(body, strlen(body), MAX_BYTES, "r-1", &b, err);
    ck_assert_msg(st == PROTO_BID_BAD_FIELD, "%.100s: got %s (%s)", body, proto_bid_status_str(st),
                  err);
    ck_assert_str_eq(err, msg);
    ck_assert_ptr_null(b.block);
    proto_bid_free(&b);
}

START_TEST(bid_response_string_bounds) {
    /* SPEC 15: every string taken from a bid is at most 2048 bytes */
    static const char *const ids[] = {"id", "impid", "adid", "crid", "seat"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char *v = repeat("a", 2048);
        char *value = fmt("\"%s\"", v);
        char *body = bid_with(ids[i], value);
        expect_bid_field(body, ids[i], v);
        free(body);
        free(value);
        free(v);
        v = repeat("a", 2049);
        value = fmt("\"%s\"", v);
        body = bid_with(ids[i], value);
        char *msg = strcmp(ids[i], "seat") == 0
                        ? fmt("seatbid[0].seat: over 2048 bytes")
                        : fmt("seatbid[0].bid[0].%s: over 2048 bytes", ids[i]);
        expect_bad_field(body, msg);
        free(msg);
        free(body);
        free(value);
        free(v);
    }
    /* bytes, not characters: 683 three-byte characters are 2049 bytes */
    char *v = repeat("\xe2\x82\xac", 683);
    char *value = fmt("\"%s\"", v);
    char *body = bid_with("adid", value);
    expect_bad_field(body, "seatbid[0].bid[0].adid: over 2048 bytes");
    free(body);
    free(value);
    free(v);
    /* the URLs too, at 2048 bytes exactly and one more */
    static const char *const urls[] = {"iurl", "nurl", "lurl", "burl"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char *pad = repeat("p", 2048 - strlen("https://h.example/"));
        char *url = fmt("https://h.example/%s", pad);
        ck_assert_uint_eq(strlen(url), 2048);
        value = fmt("\"%s\"", url);
        body = bid_with(urls[i], value);
        expect_bid_field(body, urls[i], url);
        free(body);
        free(value);
        value = fmt("\"%sq\"", url);
        body = bid_with(urls[i], value);
        char *msg = fmt("seatbid[0].bid[0].%s: over 2048 bytes", urls[i]);
        expect_bad_field(body, msg);
        free(msg);
        free(body);
        free(value);
        free(url);
        free(pad);
    }
}
END_TEST

START_TEST(bid_response_url_rules) {
    static const char *const good[] = {
        "https://cdn.example/adv-2.jpg",
        "http://n.example/win?id=${AUCTION_ID}&p=${AUCTION_PRICE}",
        "http://n",
        "HTTPS://CDN.EXAMPLE/A.JPG",
        "Http://h.example:8080",
        "http://127.0.0.1:9001/win",
        "https://[::1]:8443/x",
        "http://h.example#frag",
        "http://h.example?q=1",
        "https://h.example/caf\u00e9.jpg",
    };
    static const char *const bad[] = {
        "javascript:alert(1)",
        "JavaScript://h.example/%0aalert(1)",
        "data:image/png;base64,iVBORw0KGgo=",
        "ftp://h.example/x",
        "//h.example/x",
        "h.example/x",
        "http:/h.example",
        "http://",
        "https:///path",
        "http://?q",
        "http://#f",
        "https://:443/x",
        "http://user@h.example/x",
        "http://h.example:0/",
        "http://h.example:65536/",
        "http://h.example:80x/",
        "http://h.example:/",
        "http://[]/x",
        "http://[zz]/x",
        "http://h example/",
        "http://h.example/a b",
        "http://h.example/\\t",
        "http://h.example/\\n",
        "http://h.example/\\u007f",
        " http://h.example/",
    };
    static const char *const urls[] = {"iurl", "nurl", "lurl", "burl"};
    for (size_t u = 0; u < sizeof urls / sizeof urls[0]; u++) {
        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
            char *value = fmt("\"%s\"", good[i]);
            char *body = bid_with(urls[u], value);
            proto_bid b;
            char err[ERRLEN];
            ck_assert_msg(bid_decode(body, strlen(body), MAX_BYTES, "r-1", &b, err) == PROTO_BID_OK,
                          "%s: %s", body, err);
            ck_assert_ptr_nonnull(bid_field(&b, urls[u]));
            proto_bid_free(&b);
            free(body);
            free(value);
        }
        char *msg = fmt("seatbid[0].bid[0].%s: not an http(s) URL with a host", urls[u]);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            char *value = fmt("\"%s\"", bad[i]);
            char *body = bid_with(urls[u], value);
            expect_bad_field(body, msg);
            free(body);
            free(value);
        }
        free(msg);
        /* "" counts as absent; another JSON type is ignored, as before */
        char *body = bid_with(urls[u], "\"\"");
        expect_bid_field(body, urls[u], NULL);
        free(body);
        body = bid_with(urls[u], "7");
        expect_bid_field(body, urls[u], NULL);
        free(body);
    }
    /* ids are not URLs: any text passes */
    char *body = bid_with("adid", "\"javascript:x\"");
    expect_bid_field(body, "adid", "javascript:x");
    free(body);
}
END_TEST

START_TEST(bid_response_burl) {
    const char *body = "{\"id\":\"r-1\",\"seatbid\":[{\"seat\":\"adv-2\",\"bid\":[{"
                       "\"id\":\"b1\",\"impid\":\"1\",\"price\":2.52,"
                       "\"nurl\":\"http://n.example/win\",\"lurl\":\"http://n.example/loss\","
                       "\"burl\":\"https://n.example/bill?p=${AUCTION_PRICE}\"}]}]}";
    proto_bid b;
    char err[ERRLEN];
    ck_assert_int_eq(bid_decode(body, strlen(body), MAX_BYTES, "r-1", &b, err), PROTO_BID_OK);
    ck_assert_str_eq(b.burl, "https://n.example/bill?p=${AUCTION_PRICE}");
    ck_assert_str_eq(b.nurl, "http://n.example/win");
    ck_assert_str_eq(b.lurl, "http://n.example/loss");
    ck_assert_str_eq(b.seat, "adv-2");
    proto_bid_free(&b);
    ck_assert_ptr_null(b.burl);
    /* absent: NULL */
    ck_assert_int_eq(bid_decode(SPEC_RESPONSE, strlen(SPEC_RESPONSE), MAX_BYTES, "r-1", &b, err),
                     PROTO_BID_OK);
    ck_assert_ptr_null(b.burl);
    proto_bid_free(&b);
}
END_TEST

START_TEST(bid_response_bad_bid_skipped) {
    /* the highest bid breaks a rule: skipped, the next valid one is taken */
    const char *body = "{\"id\":\"r-1\",\"seatbid\":["
                       "{\"seat\":\"s1\",\"bid\":[{\"id\":\"a\",\"price\":9,"
                       "\"iurl\":\"javascript:alert(1)\"},{\"id\":\"b\",\"price\":2,"
                       "\"iurl\":\"https://cdn.example/b.jpg\"}]},"
                       "{\"seat\":\"s2\",\"bid\":[{\"id\":\"c\",\"price\":1}]}]}";
    proto_bid b;
    char err[ERRLEN];
    ck_assert_int_eq(bid_decode(body, strlen(body), MAX_BYTES, "r-1", &b, err), PROTO_BID_OK);
    ck_assert_str_eq(err, "");
    ck_assert_str_eq(b.bid_id, "b");
    ck_assert_int_eq(b.price_micros, 2000000);
    ck_assert_str_eq(b.creative_url, "https://cdn.example/b.jpg");
    proto_bid_free(&b);
    /* a bad seat spoils every bid of that seat, not the other seats */
    body = "{\"id\":\"r-1\",\"seatbid\":[{\"seat\":\"s2\",\"bid\":[{\"id\":\"c\","
           "\"price\":1}]},{\"seat\":7,\"bid\":[{\"id\":\"d\",\"price\":3}]}]}";
    ck_assert_int_eq(bid_decode(body, strlen(body), MAX_BYTES, "r-1", &b, err), PROTO_BID_OK);
    ck_assert_str_eq(b.bid_id, "d"); /* a seat that is not a string is ignored */
    ck_assert_ptr_null(b.seat);
    proto_bid_free(&b);
    /* no valid bid: the first broken field is named */
    expect_bad_field("{\"id\":\"r-1\",\"seatbid\":[{\"bid\":[{\"price\":\"x\"},"
                     "{\"price\":1,\"nurl\":\"http://\"},{\"price\":2,\"lurl\":\"x\"}]}]}",
                     "seatbid[0].bid[1].nurl: not an http(s) URL with a host");
    expect_bad_field("{\"id\":\"r-1\",\"seatbid\":[{\"bid\":[]},{\"bid\":[{\"price\":1,"
                     "\"iurl\":\"https://ok.example\",\"burl\":\"mailto:x@y\"}]}]}",
                     "seatbid[1].bid[0].burl: not an http(s) URL with a host");
    /* a bid without a usable price is no field error: still bad_price */
    expect_bid_status("{\"id\":\"r-1\",\"seatbid\":[{\"bid\":[{\"price\":0,"
                      "\"iurl\":\"javascript:x\"}]}]}",
                      PROTO_BID_BAD_PRICE);
}
END_TEST

START_TEST(bid_status_names) {
    static const struct {
        proto_bid_status s;
        const char *name;
    } names[] = {
        {PROTO_BID_OK, "ok"},
        {PROTO_BID_NO_BID, "no_bid"},
        {PROTO_BID_NO_SEATBID, "no_seatbid"},
        {PROTO_BID_BAD_JSON, "bad_json"},
        {PROTO_BID_WRONG_ID, "wrong_id"},
        {PROTO_BID_BAD_PRICE, "bad_price"},
        {PROTO_BID_BAD_SHAPE, "bad_shape"},
        {PROTO_BID_TOO_LARGE, "too_large"},
        {PROTO_BID_BAD_FIELD, "bad_field"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        ck_assert_str_eq(proto_bid_status_str(names[i].s), names[i].name);
        for (size_t j = 0; j < i; j++)
            ck_assert_int_ne(names[i].s, names[j].s);
    }
    ck_assert_ptr_nonnull(proto_bid_status_str((proto_bid_status)99));
}
END_TEST

/* ---- auction result and errors out -------------------------------------- */

static proto_result spec_result(void) {
    proto_result r = {
        .request_id = "r-1",
        .status = PROTO_STATUS_SUCCESS,
        .advertiser_id = "adv-2",
        .bid_price_micros = 2520000,
        .clearing_price_micros = 2110000,
        .ad_id = "ad_adv-2_r-1",
        .creative_url = "https://cdn.example/adv-2.jpg",
        .bids = 3,
        .bidders = 4,
        .timeouts = 1,
        .errors = 0,
        .skipped = 2,
        .latency_us = 12400,
        .timestamp_us = INT64_C(1795000000123000),
    };
    return r;
}

static void expect_result(const proto_result *r, const char *want) {
    proto_buf b = {0};
    ck_assert_int_eq(proto_result_encode(r, &b), 0);
    ck_assert_str_eq(b.data, want);
    cJSON_Delete(parse_buf(&b));
    proto_buf_free(&b);
}

START_TEST(result_success_matches_spec) {
    proto_result r = spec_result();
    expect_result(&r, "{\"request_id\":\"r-1\",\"status\":\"success\","
                      "\"winner\":{\"advertiser_id\":\"adv-2\",\"bid_price\":2.52,"
                      "\"clearing_price\":2.11,\"ad_id\":\"ad_adv-2_r-1\","
                      "\"creative_url\":\"https://cdn.example/adv-2.jpg\"},"
                      "\"bids\":3,\"bidders\":4,\"timeouts\":1,\"errors\":0,\"skipped\":2,"
                      "\"latency_ms\":12.4,\"timestamp\":1795000000.123}");
    r.ad_id = NULL;
    r.creative_url = NULL;
    r.bid_price_micros = INT64_C(1000000000000);
    r.clearing_price_micros = 1;
    expect_result(&r, "{\"request_id\":\"r-1\",\"status\":\"success\","
                      "\"winner\":{\"advertiser_id\":\"adv-2\",\"bid_price\":1000000,"
                      "\"clearing_price\":0.000001,\"ad_id\":\"\",\"creative_url\":\"\"},"
                      "\"bids\":3,\"bidders\":4,\"timeouts\":1,\"errors\":0,\"skipped\":2,"
                      "\"latency_ms\":12.4,\"timestamp\":1795000000.123}");
}
END_TEST

START_TEST(result_other_statuses) {
    proto_result r = spec_result();
    r.status = PROTO_STATUS_NO_BID;
    expect_result(&r, "{\"request_id\":\"r-1\",\"status\":\"no_bid\",\"winner\":null,"
                      "\"bids\":3,\"bidders\":4,\"timeouts\":1,\"errors\":0,\"skipped\":2,"
                      "\"latency_ms\":12.4,\"timestamp\":1795000000.123}");
    r.status = PROTO_STATUS_TIMEOUT;
    r.errors = 2;
    expect_result(&r, "{\"request_id\":\"r-1\",\"status\":\"timeout\",\"winner\":null,"
                      "\"bids\":3,\"bidders\":4,\"timeouts\":1,\"errors\":2,\"skipped\":2,"
                      "\"latency_ms\":12.4,\"timestamp\":1795000000.123}");
    r.status = PROTO_STATUS_INVALID;
    r.error = "floor_price: must be a finite number between 0 and 1000000";
    expect_result(&r, "{\"request_id\":\"r-1\",\"status\":\"invalid\","
                      "\"error\":\"floor_price: must be a finite number between 0 and 1000000\","
                      "\"winner\":null,\"bids\":0,\"bidders\":0,\"timeouts\":0,\"errors\":0,"
                      "\"skipped\":0,"
                      "\"latency_ms\":12.4,\"timestamp\":1795000000.123}");
    r.status = PROTO_STATUS_OVERLOADED;
    expect_result(&r, "{\"request_id\":\"r-1\",\"status\":\"overloaded\",\"winner\":null,"
                      "\"bids\":0,\"bidders\":0,\"timeouts\":0,\"errors\":0,\"skipped\":0,"
                      "\"latency_ms\":12.4,\"timestamp\":1795000000.123}");
    /* an error string that needs escaping still gives JSON */
    r.status = PROTO_STATUS_INVALID;
    r.error = "x: \"quoted\"\n\\";
    proto_buf b = {0};
    ck_assert_int_eq(proto_result_encode(&r, &b), 0);
    cJSON *o = parse_buf(&b);
    ck_assert_str_eq(str_at(o, "error"), "x: \"quoted\"\n\\");
    ck_assert(cJSON_IsNull(at(o, "winner")));
    cJSON_Delete(o);
    proto_buf_free(&b);
}
END_TEST

START_TEST(result_latency_and_timestamp) {
    static const struct {
        int64_t latency_us;
        const char *latency;
        int64_t timestamp_us;
        const char *timestamp;
    } cases[] = {
        {12400, "12.4", INT64_C(1795000000123000), "1795000000.123"},
        {5, "0.005", INT64_C(1795000000000000), "1795000000"},
        {0, "0", INT64_C(1795000000100999), "1795000000.1"},
        {1000, "1", INT64_C(1795000000010000), "1795000000.01"},
        {1234567, "1234.567", 999, "0"},
        {10, "0.01", 1000, "0.001"},
        {-7, "0", 0, "0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proto_result r = spec_result();
        r.status = PROTO_STATUS_NO_BID;
        r.latency_us = cases[i].latency_us;
        r.timestamp_us = cases[i].timestamp_us;
        char *want = fmt("{\"request_id\":\"r-1\",\"status\":\"no_bid\",\"winner\":null,"
                         "\"bids\":3,\"bidders\":4,\"timeouts\":1,\"errors\":0,\"skipped\":2,"
                         "\"latency_ms\":%s,\"timestamp\":%s}",
                         cases[i].latency, cases[i].timestamp);
        expect_result(&r, want);
        free(want);
    }
}
END_TEST

START_TEST(result_status_names) {
    const char *names[] = {"success", "no_bid", "timeout", "invalid", "overloaded"};
    for (int s = 0; s < PROTO_STATUS_COUNT; s++)
        ck_assert_str_eq(proto_status_str((proto_status)s), names[s]);
    ck_assert_ptr_nonnull(proto_status_str(PROTO_STATUS_COUNT));
}
END_TEST

START_TEST(error_encode) {
    proto_buf b = {0};
    ck_assert_int_eq(proto_error_encode("payload: not valid JSON", "rtb/requests/pub-1", NULL, &b),
                     0);
    ck_assert_str_eq(b.data, "{\"status\":\"invalid\",\"error\":\"payload: not valid JSON\","
                             "\"topic\":\"rtb/requests/pub-1\"}");
    proto_buf_reset(&b);
    ck_assert_int_eq(proto_error_encode("request_id: duplicate", "rtb/requests/p\"2", "r-1", &b),
                     0);
    ck_assert_str_eq(b.data, "{\"status\":\"invalid\",\"error\":\"request_id: duplicate\","
                             "\"topic\":\"rtb/requests/p\\\"2\",\"request_id\":\"r-1\"}");
    cJSON *o = parse_buf(&b);
    ck_assert_str_eq(str_at(o, "topic"), "rtb/requests/p\"2");
    cJSON_Delete(o);
    proto_buf_free(&b);
}
END_TEST

/* ---- suite -------------------------------------------------------------- */

/* ---- win and loss notice macros (SPEC 9) ---------------------------------- */

static char *notice(const char *tmpl, const proto_notice_macros *m) {
    proto_buf b = {0};
    ck_assert_int_eq(proto_notice_url(tmpl, m, &b), 0);
    return b.data ? b.data : strdup("");
}

START_TEST(notice_macros_substituted) {
    proto_notice_macros m = {.auction_id = "r-1",
                             .bid_id = "b1",
                             .imp_id = "1",
                             .seat_id = "adv-2",
                             .ad_id = "ad 1&x",
                             .price_micros = 2110000,
                             .currency = "USD",
                             .loss = PROTO_LOSS_OUTBID};
    char *u = notice("http://h:1/win?id=${AUCTION_ID}&b=${AUCTION_BID_ID}&i=${AUCTION_IMP_ID}"
                     "&s=${AUCTION_SEAT_ID}&a=${AUCTION_AD_ID}&p=${AUCTION_PRICE}"
                     "&c=${AUCTION_CURRENCY}&l=${AUCTION_LOSS}",
                     &m);
    ck_assert_str_eq(u, "http://h:1/win?id=r-1&b=b1&i=1&s=adv-2&a=ad%201%26x&p=2.11&c=USD&l=102");
    free(u);
    /* A loser is not told the price unless notices.loss_price (SPEC 14). */
    m.no_price = 1;
    u = notice("http://h:1/loss?p=${AUCTION_PRICE}&l=${AUCTION_LOSS}", &m);
    ck_assert_str_eq(u, "http://h:1/loss?p=&l=102");
    free(u);
}
END_TEST

START_TEST(notice_unknown_and_broken_macros_kept) {
    proto_notice_macros m = {.auction_id = "r-1", .price_micros = 1};
    char *u =
        notice("http://h/x?a=${AUCTION_MBR}&p=${AUCTION_PRICE}&l=${AUCTION_LOSS}&z=${OPEN", &m);
    ck_assert_str_eq(u, "http://h/x?a=${AUCTION_MBR}&p=0.000001&l=&z=${OPEN");
    free(u);
    u = notice("", &m);
    ck_assert_str_eq(u, "");
    free(u);
    u = notice("http://h/${AUCTION_ID}${AUCTION_ID}", &m);
    ck_assert_str_eq(u, "http://h/r-1r-1");
    free(u);
}
END_TEST

/* ---- ad events (SPEC 10) --------------------------------------------------- */

static proto_err event(const char *type, const char *json, proto_event *ev, char *err) {
    return proto_event_decode(type, json, strlen(json), 65536, ev, err, 256);
}

START_TEST(event_valid_types) {
    proto_event ev;
    char err[256];
    ck_assert_int_eq(event("impression",
                           "{\"event_id\":\"e-1\",\"request_id\":\"r-1\",\"ad_id\":\"ad-1\","
                           "\"advertiser_id\":\"adv-2\",\"user_id\":\"u-7\",\"timestamp\":1.5}",
                           &ev, err),
                     PROTO_OK);
    ck_assert_int_eq(ev.type, PROTO_EVENT_IMPRESSION);
    ck_assert_str_eq(ev.event_id, "e-1");
    ck_assert_str_eq(ev.ad_id, "ad-1");
    ck_assert_str_eq(ev.advertiser_id, "adv-2");
    ck_assert_str_eq(ev.user_id, "u-7");
    ck_assert_int_eq(
        event("click", "{\"ad_id\":\"a\",\"advertiser_id\":\"b\",\"user_id\":\"c\"}", &ev, err),
        PROTO_OK);
    ck_assert_int_eq(ev.type, PROTO_EVENT_CLICK);
    ck_assert_str_eq(ev.event_id, "");
    /* a conversion needs no ad_id */
    ck_assert_int_eq(event("conversion", "{\"advertiser_id\":\"b\",\"user_id\":\"c\"}", &ev, err),
                     PROTO_OK);
    ck_assert_int_eq(ev.type, PROTO_EVENT_CONVERSION);
    ck_assert_str_eq(ev.ad_id, "");
}
END_TEST

START_TEST(event_invalid) {
    proto_event ev;
    char err[256];
    ck_assert_int_eq(event("view", "{}", &ev, err), PROTO_ERR_FIELD);
    ck_assert_str_eq(err, "topic: event type must be impression, click or conversion");
    ck_assert_int_eq(event(NULL, "{}", &ev, err), PROTO_ERR_FIELD);
    ck_assert_int_eq(event("click", "{\"advertiser_id\":\"b\",\"user_id\":\"c\"}", &ev, err),
                     PROTO_ERR_FIELD);
    ck_assert_str_eq(err, "ad_id: required");
    ck_assert_int_eq(event("impression", "{\"ad_id\":\"a\",\"user_id\":\"c\"}", &ev, err),
                     PROTO_ERR_FIELD);
    ck_assert_str_eq(err, "advertiser_id: required");
    ck_assert_int_eq(event("conversion", "{\"advertiser_id\":7,\"user_id\":\"c\"}", &ev, err),
                     PROTO_ERR_FIELD);
    ck_assert_str_eq(err, "advertiser_id: must be 1-128 characters of [A-Za-z0-9._:-]");
    ck_assert_int_eq(event("conversion", "{\"advertiser_id\":null,\"user_id\":\"c\"}", &ev, err),
                     PROTO_ERR_FIELD);
    ck_assert_str_eq(err, "advertiser_id: must be 1-128 characters of [A-Za-z0-9._:-]");
    ck_assert_int_eq(event("click", "[1]", &ev, err), PROTO_ERR_NOT_OBJECT);
    ck_assert_int_eq(event("click", "nope", &ev, err), PROTO_ERR_NOT_JSON);
    ck_assert_int_eq(event("click",
                           "{\"ad_id\":\"a\",\"advertiser_id\":\"b\",\"user_id\":\"c\","
                           "\"timestamp\":\"x\"}",
                           &ev, err),
                     PROTO_ERR_FIELD);
    ck_assert_str_eq(err, "timestamp: must be a number");
    ck_assert_int_eq(proto_event_decode("click", "{}", 2, 1, &ev, err, sizeof err),
                     PROTO_ERR_TOO_LARGE);
}
END_TEST

/* A click whose `key` is the string `value` (JSON text inside the quotes),
 * with valid values for the other required ids. */
static char *click_with(const char *key, const char *value) {
    return fmt("{\"%s\":\"%s\"%s%s%s}", key, value,
               strcmp(key, "ad_id") != 0 ? ",\"ad_id\":\"ad-1\"" : "",
               strcmp(key, "advertiser_id") != 0 ? ",\"advertiser_id\":\"adv-1\"" : "",
               strcmp(key, "user_id") != 0 ? ",\"user_id\":\"u-1\"" : "");
}

START_TEST(event_ids_follow_key_rule) {
    /* SPEC 15 Keys: every id of an event follows the request_id rule */
    static const char *const keys[] = {"event_id", "request_id", "ad_id", "advertiser_id",
                                       "user_id"};
    char *too_long = repeat("a", 129);
    char *longest = fmt("Az09._:-%s", too_long + 9); /* 128 characters */
    const char *bad[] = {"a b",      "u/7",  "u*", "ad{1}",    "\\u00e9",
                         "\xc3\xa9", "a\\n", "",   "7\\u0001", too_long};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        proto_event ev;
        char err[256];
        char *msg = fmt("%s: must be 1-128 characters of [A-Za-z0-9._:-]", keys[k]);
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            char *json = click_with(keys[k], bad[i]);
            ck_assert_msg(event("click", json, &ev, err) == PROTO_ERR_FIELD, "%s", json);
            ck_assert_str_eq(err, msg);
            free(json);
        }
        free(msg);
        char *json = click_with(keys[k], longest);
        ck_assert_msg(event("click", json, &ev, err) == PROTO_OK, "%s: %s", json, err);
        free(json);
    }
    /* the optional ids may be absent or null */
    proto_event ev;
    char err[256];
    ck_assert_int_eq(event("impression",
                           "{\"event_id\":null,\"request_id\":null,\"ad_id\":\"a:1\","
                           "\"advertiser_id\":\"adv.2\",\"user_id\":\"u_7\"}",
                           &ev, err),
                     PROTO_OK);
    ck_assert_str_eq(ev.event_id, "");
    ck_assert_str_eq(ev.request_id, "");
    ck_assert_str_eq(ev.ad_id, "a:1");
    free(longest);
    free(too_long);
}
END_TEST

START_TEST(key_id_rule) {
    ck_assert(proto_key_id_ok("r-1"));
    ck_assert(proto_key_id_ok("A.z_0:9-"));
    char *id = repeat("x", 128);
    ck_assert(proto_key_id_ok(id));
    free(id);
    id = repeat("x", 129);
    ck_assert(!proto_key_id_ok(id));
    free(id);
    ck_assert(!proto_key_id_ok(NULL));
    ck_assert(!proto_key_id_ok(""));
    ck_assert(!proto_key_id_ok("a b"));
    ck_assert(!proto_key_id_ok("a*"));
    ck_assert(!proto_key_id_ok("\xc3\xa9"));
}
END_TEST

/* ---- SPEC 17: requests a real bidder can bid on -------------------------- */

/* A multi-imp request with everything SPEC 17 allows: a banner, a banner by
 * formats with a deal list, a video with a private auction. */
#define FULL_REQUEST                                                                               \
    "{\"request_id\":\"r-17\",\"user_id\":\"u-7\",\"cur\":\"EUR\","                                \
    "\"user_context\":{\"interests\":[\"tech\"]},"                                                 \
    "\"site\":{\"id\":\"site-1\",\"domain\":\"news.example\",\"page\":\"https://news.example/a\"," \
    "\"publisher\":{\"id\":\"pub-1\",\"name\":\"News \\\"Inc\\\"\"},\"extra\":[1,2]},"             \
    "\"device\":{\"ua\":\"Mozilla/5.0\",\"ip\":\"192.0.2.7\",\"devicetype\":2,\"os\":\"Linux\","   \
    "\"language\":\"fr\",\"geo\":{\"country\":\"FRA\",\"region\":\"FR-75\"}},"                     \
    "\"regs\":{\"coppa\":0,\"gdpr\":1,\"us_privacy\":\"1YNN\"},"                                   \
    "\"user_consent\":\"CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA\","                           \
    "\"imps\":["                                                                                   \
    "{\"id\":\"top\",\"ad_slot_id\":\"slot-top\",\"floor_price\":1.5,"                             \
    "\"banner\":{\"w\":728,\"h\":90}},"                                                            \
    "{\"id\":\"side\",\"ad_slot_id\":\"slot-side\",\"floor_price\":0.25,"                          \
    "\"banner\":{\"format\":[{\"w\":300,\"h\":250},{\"w\":300,\"h\":600}]},"                       \
    "\"pmp\":{\"private_auction\":0,\"deals\":[{\"id\":\"deal-1\",\"bidfloor\":2.11,"              \
    "\"wseat\":[\"adv-1\",\"adv-2\"]},{\"id\":\"deal-2\"}]}},"                                     \
    "{\"id\":\"pre\",\"ad_slot_id\":\"slot-pre\",\"floor_price\":4,"                               \
    "\"video\":{\"mimes\":[\"video/mp4\",\"video/webm\"],\"w\":640,\"h\":360,"                     \
    "\"minduration\":5,\"maxduration\":30},"                                                       \
    "\"pmp\":{\"private_auction\":1,\"deals\":[{\"id\":\"deal-1\",\"bidfloor\":6}]}}]}"

START_TEST(request17_full_decodes) {
    proto_bid_request r;
    decode_ok(FULL_REQUEST, &r);
    ck_assert(r.has_imps);
    ck_assert_str_eq(r.ad_slot_id, "");
    ck_assert_str_eq(r.cur, "EUR");
    ck_assert_uint_eq(r.nimps, 3);

    const proto_imp *top = &r.imps[0], *side = &r.imps[1], *pre = &r.imps[2];
    ck_assert_str_eq(top->id, "top");
    ck_assert_str_eq(top->tagid, "slot-top");
    ck_assert_int_eq(top->floor_micros, 1500000);
    ck_assert_ptr_nonnull(top->banner);
    ck_assert_int_eq(top->banner->w, 728);
    ck_assert_int_eq(top->banner->h, 90);
    ck_assert_uint_eq(top->banner->nformat, 0);
    ck_assert_ptr_null(top->video);
    ck_assert_ptr_null(top->pmp);
    ck_assert(!top->default_banner);

    ck_assert_int_eq(side->floor_micros, 250000);
    ck_assert_int_eq(side->banner->w, PROTO_ABSENT);
    ck_assert_uint_eq(side->banner->nformat, 2);
    ck_assert_int_eq(side->banner->format[1].w, 300);
    ck_assert_int_eq(side->banner->format[1].h, 600);
    ck_assert_ptr_nonnull(side->pmp);
    ck_assert_int_eq(side->pmp->private_auction, 0);
    ck_assert_uint_eq(side->pmp->ndeals, 2);
    ck_assert_str_eq(side->pmp->deals[0].id, "deal-1");
    ck_assert_int_eq(side->pmp->deals[0].bidfloor_micros, 2110000);
    ck_assert_uint_eq(side->pmp->deals[0].nwseat, 2);
    ck_assert_str_eq(side->pmp->deals[0].wseat[1], "adv-2");
    ck_assert_str_eq(side->pmp->deals[1].id, "deal-2");
    ck_assert_int_eq(side->pmp->deals[1].bidfloor_micros, 0);
    ck_assert_uint_eq(side->pmp->deals[1].nwseat, 0);

    ck_assert_ptr_null(pre->banner);
    ck_assert_ptr_nonnull(pre->video);
    ck_assert_uint_eq(pre->video->nmimes, 2);
    ck_assert_str_eq(pre->video->mimes[0], "video/mp4");
    ck_assert_int_eq(pre->video->w, 640);
    ck_assert_int_eq(pre->video->minduration, 5);
    ck_assert_int_eq(pre->video->maxduration, 30);
    ck_assert_int_eq(pre->pmp->private_auction, 1);
    /* deal ids are unique within an imp, not across imps */
    ck_assert_str_eq(pre->pmp->deals[0].id, "deal-1");

    ck_assert(r.has_site && !r.has_app);
    ck_assert_str_eq(r.site.domain, "news.example");
    ck_assert_str_eq(r.site.publisher.name, "News \"Inc\"");
    ck_assert(r.has_device);
    ck_assert_str_eq(r.device.ip, "192.0.2.7");
    ck_assert(!r.device.ip_is_v6);
    ck_assert_int_eq(r.device.devicetype, 2);
    ck_assert_str_eq(r.device.geo_region, "FR-75");
    ck_assert(r.has_regs);
    ck_assert_int_eq(r.regs.coppa, 0);
    ck_assert_int_eq(r.regs.gdpr, 1);
    ck_assert_str_eq(r.regs.us_privacy, "1YNN");
    ck_assert_str_eq(r.user_consent, "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA");

    /* The struct is copied by value into a transaction (rtb/txn.c): the
     * copy owns everything, nothing points into the original. */
    proto_bid_request copy = r;
    memset(&r, 0xA5, sizeof r);
    ck_assert_str_eq(copy.imps[1].pmp->deals[0].wseat[0], "adv-1");
    ck_assert_str_eq(copy.imps[2].tagid, "slot-pre");
    ck_assert_str_eq(copy.cur, "EUR");
    proto_bid_request_free(&copy);
    ck_assert_ptr_null(copy.imps);
    ck_assert_ptr_null(copy.block);
    proto_bid_request_free(&copy);
}
END_TEST

START_TEST(request17_spec2_form_is_one_imp) {
    proto_bid_request r;
    decode_ok(VALID_REQUEST, &r);
    ck_assert(!r.has_imps);
    ck_assert_uint_eq(r.nimps, 1);
    ck_assert_str_eq(r.imps[0].id, "1");
    ck_assert_str_eq(r.imps[0].tagid, "slot-9");
    ck_assert_int_eq(r.imps[0].floor_micros, 1500000);
    ck_assert(r.imps[0].default_banner);
    ck_assert_ptr_null(r.imps[0].banner);
    ck_assert_ptr_null(r.imps[0].video);
    ck_assert_ptr_null(r.imps[0].pmp);
    ck_assert_str_eq(r.cur, "");
    ck_assert(!r.has_site && !r.has_app && !r.has_device && !r.has_regs);
    ck_assert_int_eq(r.device.devicetype, PROTO_ABSENT);
    ck_assert_int_eq(r.regs.gdpr, PROTO_ABSENT);
    ck_assert_ptr_null(r.user_consent);
    proto_bid_request copy = r; /* the imp's tagid is the tree's, not r's */
    memset(&r, 0, sizeof r);
    ck_assert_str_eq(copy.imps[0].tagid, "slot-9");
    proto_bid_request_free(&copy);

    /* The SPEC 17 context works with the SPEC 2 form too; null is absent. */
    decode_ok(
        "{\"request_id\":\"r-2\",\"user_id\":\"u\",\"ad_slot_id\":\"s\",\"floor_price\":1,"
        "\"imps\":null,\"site\":null,\"app\":{\"id\":\"app-1\",\"bundle\":\"com.example.game\","
        "\"storeurl\":\"https://store.example/app\",\"publisher\":{\"name\":\"Games\"}},"
        "\"device\":{\"ip\":\"2001:db8::1\",\"devicetype\":null},\"regs\":{},"
        "\"user_consent\":null,\"cur\":null}",
        &r);
    ck_assert(!r.has_imps && r.nimps == 1);
    ck_assert(r.has_app && !r.has_site);
    ck_assert_str_eq(r.app.bundle, "com.example.game");
    ck_assert_ptr_null(r.app.publisher.id);
    ck_assert_str_eq(r.app.publisher.name, "Games");
    ck_assert(r.device.ip_is_v6);
    ck_assert_int_eq(r.device.devicetype, PROTO_ABSENT);
    ck_assert(r.has_regs);
    ck_assert_int_eq(r.regs.coppa, PROTO_ABSENT);
    ck_assert_str_eq(r.cur, "");
    proto_bid_request_free(&r);
}
END_TEST

/* "imps":[IMP(fields)] with fields added to a valid imp "a". */
#define IMPS_REQ(imps) "{\"request_id\":\"r\",\"user_id\":\"u\",\"imps\":" imps "}"
#define IMP_REQ(fields)                                                                            \
    IMPS_REQ("[{\"id\":\"a\",\"ad_slot_id\":\"s\",\"floor_price\":1" fields "}]")
#define BANNER ",\"banner\":{\"w\":300,\"h\":250}"
#define CTX_REQ(fields)                                                                            \
    "{\"request_id\":\"r\",\"user_id\":\"u\",\"ad_slot_id\":\"s\",\"floor_price\":1" fields "}"

START_TEST(request17_rules) {
    static const char *const cases[][2] = {
        /* the two forms */
        {IMPS_REQ("{}"), "imps: must be an array of 1 to 16 imps"},
        {IMPS_REQ("[]"), "imps: must be an array of 1 to 16 imps"},
        {"{\"request_id\":\"r\",\"user_id\":\"u\",\"ad_slot_id\":\"s\",\"imps\":[]}",
         "ad_slot_id: not allowed together with imps"},
        {"{\"request_id\":\"r\",\"user_id\":\"u\",\"floor_price\":1,\"imps\":[]}",
         "floor_price: not allowed together with imps"},
        {"{\"request_id\":\"r\",\"user_id\":\"u\"}", "ad_slot_id: required"},
        /* an imp */
        {IMPS_REQ("[7]"), "imps[0]: must be an object"},
        {IMPS_REQ("[{\"ad_slot_id\":\"s\"}]"), "imps[0].id: required"},
        {IMPS_REQ("[{\"id\":\"a b\"}]"), "imps[0].id: must be 1-64 characters of [A-Za-z0-9._:-]"},
        {IMPS_REQ("[{\"id\":\"\"}]"), "imps[0].id: must be 1-64 characters of [A-Za-z0-9._:-]"},
        {IMPS_REQ("[{\"id\":1}]"), "imps[0].id: must be 1-64 characters of [A-Za-z0-9._:-]"},
        {IMPS_REQ("[{\"id\":\"a\",\"ad_slot_id\":\"s\",\"floor_price\":1" BANNER
                  "},{\"id\":\"a\"}]"),
         "imps[1].id: the same as imps[0].id"},
        {IMPS_REQ("[{\"id\":\"a\",\"floor_price\":1}]"), "imps[0].ad_slot_id: required"},
        {IMPS_REQ("[{\"id\":\"a\",\"ad_slot_id\":\"\"}]"),
         "imps[0].ad_slot_id: must be a string of 1-128 characters"},
        {IMPS_REQ("[{\"id\":\"a\",\"ad_slot_id\":\"s\"}]"), "imps[0].floor_price: required"},
        {IMPS_REQ("[{\"id\":\"a\",\"ad_slot_id\":\"s\",\"floor_price\":-1}]"),
         "imps[0].floor_price: must be a finite number between 0 and 1000000"},
        {IMPS_REQ("[{\"id\":\"a\",\"ad_slot_id\":\"s\",\"floor_price\":\"1\"}]"),
         "imps[0].floor_price: must be a finite number between 0 and 1000000"},
        {IMP_REQ(""), "imps[0]: needs a banner or a video"},
        {IMP_REQ(",\"banner\":null,\"video\":null"), "imps[0]: needs a banner or a video"},
        /* banner */
        {IMP_REQ(",\"banner\":[]"), "imps[0].banner: must be an object"},
        {IMP_REQ(",\"banner\":{}"), "imps[0].banner.w: required"},
        {IMP_REQ(",\"banner\":{\"w\":300}"), "imps[0].banner.h: required"},
        {IMP_REQ(",\"banner\":{\"w\":0,\"h\":250}"),
         "imps[0].banner.w: must be an integer between 1 and 65535"},
        {IMP_REQ(",\"banner\":{\"w\":65536,\"h\":250}"),
         "imps[0].banner.w: must be an integer between 1 and 65535"},
        {IMP_REQ(",\"banner\":{\"w\":300.5,\"h\":250}"),
         "imps[0].banner.w: must be an integer between 1 and 65535"},
        {IMP_REQ(",\"banner\":{\"w\":\"300\",\"h\":250}"),
         "imps[0].banner.w: must be an integer between 1 and 65535"},
        {IMP_REQ(",\"banner\":{\"w\":300,\"h\":1e400}"),
         "imps[0].banner.h: must be an integer between 1 and 65535"},
        {IMP_REQ(",\"banner\":{\"w\":300,\"h\":250,\"format\":[{\"w\":1,\"h\":1}]}"),
         "imps[0].banner: w and h, or format, not both"},
        {IMP_REQ(",\"banner\":{\"format\":[]}"),
         "imps[0].banner.format: must be an array of 1 to 16 sizes"},
        {IMP_REQ(",\"banner\":{\"format\":{\"w\":1,\"h\":1}}"),
         "imps[0].banner.format: must be an array of 1 to 16 sizes"},
        {IMP_REQ(",\"banner\":{\"format\":[{\"w\":1,\"h\":1},{\"w\":2}]}"),
         "imps[0].banner.format[1].h: required"},
        {IMP_REQ(",\"banner\":{\"format\":[\"300x250\"]}"),
         "imps[0].banner.format[0]: must be an object"},
        /* video */
        {IMP_REQ(",\"video\":{}"), "imps[0].video.mimes: must be an array of 1 to 16 strings"},
        {IMP_REQ(",\"video\":{\"mimes\":[]}"),
         "imps[0].video.mimes: must be an array of 1 to 16 strings"},
        {IMP_REQ(",\"video\":{\"mimes\":[\"\"]}"),
         "imps[0].video.mimes[0]: must be a string of 1-256 characters"},
        {IMP_REQ(",\"video\":{\"mimes\":[\"video/mp4\",3]}"),
         "imps[0].video.mimes[1]: must be a string of 1-256 characters"},
        {IMP_REQ(",\"video\":{\"mimes\":[\"v\"],\"w\":-1}"),
         "imps[0].video.w: must be an integer between 1 and 65535"},
        {IMP_REQ(",\"video\":{\"mimes\":[\"v\"],\"minduration\":86401}"),
         "imps[0].video.minduration: must be an integer between 0 and 86400"},
        {IMP_REQ(",\"video\":{\"mimes\":[\"v\"],\"minduration\":30,\"maxduration\":5}"),
         "imps[0].video.maxduration: must not be below minduration"},
        /* pmp and deals */
        {IMP_REQ(BANNER ",\"pmp\":true"), "imps[0].pmp: must be an object"},
        {IMP_REQ(BANNER ",\"pmp\":{\"private_auction\":2}"),
         "imps[0].pmp.private_auction: must be 0 or 1"},
        {IMP_REQ(BANNER ",\"pmp\":{\"private_auction\":true}"),
         "imps[0].pmp.private_auction: must be 0 or 1"},
        {IMP_REQ(BANNER ",\"pmp\":{\"deals\":{}}"),
         "imps[0].pmp.deals: must be an array of at most 16 deals"},
        {IMP_REQ(BANNER ",\"pmp\":{\"deals\":[[]]}"), "imps[0].pmp.deals[0]: must be an object"},
        {IMP_REQ(BANNER ",\"pmp\":{\"deals\":[{\"bidfloor\":1}]}"),
         "imps[0].pmp.deals[0].id: required"},
        {IMP_REQ(BANNER ",\"pmp\":{\"deals\":[{\"id\":\"\"}]}"),
         "imps[0].pmp.deals[0].id: must be a string of 1-256 characters"},
        {IMP_REQ(BANNER ",\"pmp\":{\"deals\":[{\"id\":\"d\"},{\"id\":\"e\"},{\"id\":\"d\"}]}"),
         "imps[0].pmp.deals[2].id: a deal id used twice in the imp"},
        {IMP_REQ(BANNER ",\"pmp\":{\"deals\":[{\"id\":\"d\",\"bidfloor\":1000001}]}"),
         "imps[0].pmp.deals[0].bidfloor: must be a finite number between 0 and 1000000"},
        {IMP_REQ(BANNER ",\"pmp\":{\"deals\":[{\"id\":\"d\",\"wseat\":\"adv-1\"}]}"),
         "imps[0].pmp.deals[0].wseat: must be an array of 0 to 16 strings"},
        {IMP_REQ(BANNER ",\"pmp\":{\"deals\":[{\"id\":\"d\",\"wseat\":[null]}]}"),
         "imps[0].pmp.deals[0].wseat[0]: must be a string of 1-256 characters"},
        /* site, app, device, regs, consent, cur */
        {CTX_REQ(",\"site\":{},\"app\":{}"), "site: not allowed together with app"},
        {CTX_REQ(",\"site\":\"news.example\""), "site: must be an object"},
        {CTX_REQ(",\"site\":{\"page\":7}"),
         "site.page: must be a string of at most 256 characters"},
        {CTX_REQ(",\"site\":{\"publisher\":[]}"), "site.publisher: must be an object"},
        {CTX_REQ(",\"app\":{\"publisher\":{\"id\":false}}"),
         "app.publisher.id: must be a string of at most 256 characters"},
        {CTX_REQ(",\"app\":{\"bundle\":1}"),
         "app.bundle: must be a string of at most 256 characters"},
        {CTX_REQ(",\"device\":[]"), "device: must be an object"},
        {CTX_REQ(",\"device\":{\"ip\":\"192.0.2\"}"), "device.ip: must be an IPv4 or IPv6 address"},
        {CTX_REQ(",\"device\":{\"ip\":\"localhost\"}"),
         "device.ip: must be an IPv4 or IPv6 address"},
        {CTX_REQ(",\"device\":{\"devicetype\":9}"),
         "device.devicetype: must be an integer between 1 and 8"},
        {CTX_REQ(",\"device\":{\"devicetype\":1.5}"),
         "device.devicetype: must be an integer between 1 and 8"},
        {CTX_REQ(",\"device\":{\"geo\":\"FRA\"}"), "device.geo: must be an object"},
        {CTX_REQ(",\"device\":{\"geo\":{\"country\":1}}"),
         "device.geo.country: must be a string of at most 256 characters"},
        {CTX_REQ(",\"regs\":{\"gdpr\":2}"), "regs.gdpr: must be 0 or 1"},
        {CTX_REQ(",\"regs\":{\"coppa\":\"1\"}"), "regs.coppa: must be 0 or 1"},
        {CTX_REQ(",\"regs\":{\"us_privacy\":1}"),
         "regs.us_privacy: must be a string of at most 256 characters"},
        {CTX_REQ(",\"user_consent\":{}"),
         "user_consent: must be a string of at most 4096 characters"},
        {CTX_REQ(",\"cur\":\"usd\""), "cur: must be 3 capital letters (an ISO 4217 code)"},
        {CTX_REQ(",\"cur\":\"US\""), "cur: must be 3 capital letters (an ISO 4217 code)"},
        {CTX_REQ(",\"cur\":\"USDX\""), "cur: must be 3 capital letters (an ISO 4217 code)"},
        {CTX_REQ(",\"cur\":[\"USD\"]"), "cur: must be 3 capital letters (an ISO 4217 code)"},
        {CTX_REQ(",\"cur\":\"U\\u0053D\\u00c9\""),
         "cur: must be 3 capital letters (an ISO 4217 code)"},
        /* the fixed order: the imps before the context, site before cur */
        {"{\"request_id\":\"r\",\"user_id\":\"u\",\"site\":{},\"app\":{},\"imps\":[{}]}",
         "imps[0].id: required"},
        {CTX_REQ(",\"cur\":\"x\",\"site\":{\"id\":2}"),
         "site.id: must be a string of at most 256 characters"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_field(cases[i][0], cases[i][1]);
}
END_TEST

/* The hostile cases of the issue, and each bound exactly. */
START_TEST(request17_bounds) {
    proto_bid_request r;
    /* 16 imps decode; 17 do not */
    for (int n = 16; n <= 17; n++) {
        char *imps = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&imps, &len);
        for (int i = 0; i < n; i++)
            fprintf(mem, "%s{\"id\":\"i%d\",\"ad_slot_id\":\"s%d\",\"floor_price\":0.%d" BANNER "}",
                    i ? "," : "", i, i, i + 1);
        fclose(mem);
        char *json = fmt("{\"request_id\":\"r\",\"user_id\":\"u\",\"imps\":[%s]}", imps);
        if (n == 16) {
            decode_ok(json, &r);
            ck_assert_uint_eq(r.nimps, 16);
            ck_assert_str_eq(r.imps[15].id, "i15");
            ck_assert_int_eq(r.imps[15].floor_micros, 160000);
            proto_bid_request_free(&r);
        } else {
            expect_field(json, "imps: must be an array of 1 to 16 imps");
        }
        free(imps);
        free(json);
    }
    /* a deal list of 16 decodes; of 17 does not; the same for wseat */
    for (int n = 16; n <= 17; n++) {
        char *deals = NULL, *seats = NULL;
        size_t len = 0, slen = 0;
        FILE *mem = open_memstream(&deals, &len);
        FILE *smem = open_memstream(&seats, &slen);
        for (int i = 0; i < n; i++) {
            fprintf(mem, "%s{\"id\":\"d%d\",\"bidfloor\":%d}", i ? "," : "", i, i);
            fprintf(smem, "%s\"seat-%d\"", i ? "," : "", i);
        }
        fclose(mem);
        fclose(smem);
        char *json = fmt(IMP_REQ(BANNER ",\"pmp\":{\"deals\":[%s]}"), deals);
        char *wjson =
            fmt(IMP_REQ(BANNER ",\"pmp\":{\"deals\":[{\"id\":\"d\",\"wseat\":[%s]}]}"), seats);
        if (n == 16) {
            decode_ok(json, &r);
            ck_assert_uint_eq(r.imps[0].pmp->ndeals, 16);
            ck_assert_str_eq(r.imps[0].pmp->deals[15].id, "d15");
            ck_assert_int_eq(r.imps[0].pmp->deals[15].bidfloor_micros, 15000000);
            proto_bid_request_free(&r);
            decode_ok(wjson, &r);
            ck_assert_uint_eq(r.imps[0].pmp->deals[0].nwseat, 16);
            proto_bid_request_free(&r);
        } else {
            expect_field(json, "imps[0].pmp.deals: must be an array of at most 16 deals");
            expect_field(wjson, "imps[0].pmp.deals[0].wseat: must be an array of 0 to 16 strings");
        }
        free(deals);
        free(seats);
        free(json);
        free(wjson);
    }
    /* a 256-character domain (characters, not bytes) decodes; 300 do not */
    char *ok = repeat("\xc3\xa9", 256), *long_domain = repeat("d", 300);
    char *json = fmt(CTX_REQ(",\"site\":{\"domain\":\"%s\"}"), ok);
    decode_ok(json, &r);
    ck_assert_uint_eq(strlen(r.site.domain), 512);
    proto_bid_request_free(&r);
    free(json);
    json = fmt(CTX_REQ(",\"site\":{\"domain\":\"%s\"}"), long_domain);
    expect_field(json, "site.domain: must be a string of at most 256 characters");
    free(json);
    json = fmt(IMP_REQ(",\"video\":{\"mimes\":[\"%s\"]}"), long_domain);
    expect_field(json, "imps[0].video.mimes[0]: must be a string of 1-256 characters");
    free(json);
    free(ok);
    free(long_domain);
    /* 64-character imp ids decode, 65 do not */
    char *id64 = repeat("i", 64), *id65 = repeat("i", 65);
    json =
        fmt(IMPS_REQ("[{\"id\":\"%s\",\"ad_slot_id\":\"s\",\"floor_price\":1" BANNER "}]"), id64);
    decode_ok(json, &r);
    ck_assert_str_eq(r.imps[0].id, id64);
    proto_bid_request_free(&r);
    free(json);
    json = fmt(IMPS_REQ("[{\"id\":\"%s\"}]"), id65);
    expect_field(json, "imps[0].id: must be 1-64 characters of [A-Za-z0-9._:-]");
    free(json);
    free(id64);
    free(id65);
    /* user_consent: 4096 characters decode, 4097 do not */
    char *c4096 = repeat("C", 4096), *c4097 = repeat("C", 4097);
    json = fmt(CTX_REQ(",\"user_consent\":\"%s\""), c4096);
    decode_ok(json, &r);
    ck_assert_uint_eq(strlen(r.user_consent), 4096);
    proto_bid_request_free(&r);
    free(json);
    json = fmt(CTX_REQ(",\"user_consent\":\"%s\""), c4097);
    expect_field(json, "user_consent: must be a string of at most 4096 characters");
    free(json);
    free(c4096);
    free(c4097);
    /* 16 formats and 16 mimes, the most */
    char *formats = repeat("{\"w\":1,\"h\":1},", 16), *mimes = repeat("\"m\",", 16);
    formats[strlen(formats) - 1] = '\0';
    mimes[strlen(mimes) - 1] = '\0';
    json = fmt(IMP_REQ(",\"banner\":{\"format\":[%s]},\"video\":{\"mimes\":[%s]}"), formats, mimes);
    decode_ok(json, &r);
    ck_assert_uint_eq(r.imps[0].banner->nformat, 16);
    ck_assert_uint_eq(r.imps[0].video->nmimes, 16);
    proto_bid_request_free(&r);
    free(json);
    json = fmt(IMP_REQ(",\"banner\":{\"format\":[%s,{\"w\":1,\"h\":1}]}"), formats);
    expect_field(json, "imps[0].banner.format: must be an array of 1 to 16 sizes");
    free(json);
    json = fmt(IMP_REQ(",\"video\":{\"mimes\":[%s,\"m\"]}"), mimes);
    expect_field(json, "imps[0].video.mimes: must be an array of 1 to 16 strings");
    free(json);
    free(formats);
    free(mimes);
}
END_TEST

/* A request refused late (after its imps were decoded) leaves nothing. */
START_TEST(request17_refused_late_frees) {
    proto_bid_request r;
    char err[ERRLEN];
    ck_assert_int_eq(decode(IMP_REQ(BANNER) "", &r, err), PROTO_OK);
    proto_bid_request_free(&r);
    const char *late =
        "{\"request_id\":\"r-9\",\"user_id\":\"u\",\"cur\":\"eur\",\"imps\":[{\"id\":"
        "\"a\",\"ad_slot_id\":\"s\",\"floor_price\":1" BANNER
        ",\"pmp\":{\"deals\":[{\"id\":\"d\",\"wseat\":[\"x\"]}]}}]}";
    ck_assert_int_eq(decode(late, &r, err), PROTO_ERR_FIELD);
    ck_assert_str_eq(err, "cur: must be 3 capital letters (an ISO 4217 code)");
    ck_assert(r.has_request_id);
    ck_assert_str_eq(r.request_id, "r-9");
    ck_assert_ptr_null(r.block);
    ck_assert_ptr_null(r.imps);
    ck_assert_uint_eq(r.nimps, 0);
    ck_assert(!r.has_imps);
    proto_bid_request_free(&r);
}
END_TEST

/* ---- SPEC 17: the BidRequest we send, decoded back ------------------------ */

/* Encode `r` under `cfg` and parse it back. */
static cJSON *encode17(const proto_bid_request *r, const proto_config *cfg, proto_buf *b) {
    proto_buf_reset(b);
    ck_assert_int_eq(proto_openrtb_request_encode(r, NULL, cfg, 80, b), 0);
    return parse_buf(b);
}

/* obj has exactly the member names `keys` (NULL-terminated), in that order. */
static void expect_keys(const cJSON *obj, const char *const *keys) {
    const cJSON *c = obj->child;
    for (size_t i = 0; keys[i] != NULL; i++, c = c->next) {
        ck_assert_msg(c != NULL, "missing %s", keys[i]);
        ck_assert_str_eq(c->string, keys[i]);
    }
    ck_assert_msg(c == NULL, "unexpected member %s", c ? c->string : "");
}

/* `v` is a JSON number holding the integer `want` (OpenRTB integer type). */
static void expect_int(const cJSON *v, long want) {
    ck_assert(cJSON_IsNumber(v));
    ck_assert(v->valuedouble == (double)want);
    ck_assert(v->valuedouble == (double)(long)v->valuedouble);
}

/* `v` is a JSON number reading back as exactly `micros`. */
static void expect_money(const cJSON *v, int64_t micros) {
    int64_t got = -1;
    ck_assert(cJSON_IsNumber(v));
    ck_assert_int_eq(auction_micros_from_double(v->valuedouble, &got), 0);
    ck_assert_int_eq(got, micros);
}

START_TEST(openrtb17_full_round_trip) {
    proto_bid_request r;
    proto_config cfg;
    proto_buf b = {0};
    decode_ok(FULL_REQUEST, &r);
    ck_assert_int_eq(proto_config_defaults(&cfg), PROTO_OK);
    cJSON *o = encode17(&r, &cfg, &b);

    static const char *const top_keys[] = {"id",     "at",   "tmax", "cur", "imp", "site",
                                           "device", "regs", "user", "ext", NULL};
    expect_keys(o, top_keys);
    ck_assert_str_eq(str_at(o, "id"), "r-17");
    expect_int(at(o, "at"), 2);
    expect_int(at(o, "tmax"), 80);
    ck_assert_int_eq(cJSON_GetArraySize(at(o, "cur")), 1);
    ck_assert_str_eq(str_at(o, "cur.0"), "EUR"); /* the request's, not auction.currency */

    /* one imp per impression, in order, each decoded back into what we meant */
    const cJSON *imps = at(o, "imp");
    ck_assert_int_eq(cJSON_GetArraySize(imps), 3);
    static const char *const top_imp_keys[] = {"id",          "tagid",  "bidfloor",
                                               "bidfloorcur", "banner", NULL};
    expect_keys(at(o, "imp.0"), top_imp_keys);
    ck_assert_str_eq(str_at(o, "imp.0.id"), "top");
    ck_assert_str_eq(str_at(o, "imp.0.tagid"), "slot-top");
    expect_money(at(o, "imp.0.bidfloor"), 1500000);
    ck_assert_str_eq(str_at(o, "imp.0.bidfloorcur"), "EUR");
    static const char *const wh[] = {"w", "h", NULL};
    expect_keys(at(o, "imp.0.banner"), wh);
    expect_int(at(o, "imp.0.banner.w"), 728);
    expect_int(at(o, "imp.0.banner.h"), 90);

    static const char *const side_keys[] = {"id",     "tagid", "bidfloor", "bidfloorcur",
                                            "banner", "pmp",   NULL};
    expect_keys(at(o, "imp.1"), side_keys);
    static const char *const format_only[] = {"format", NULL};
    expect_keys(at(o, "imp.1.banner"), format_only);
    ck_assert_int_eq(cJSON_GetArraySize(at(o, "imp.1.banner.format")), 2);
    expect_keys(at(o, "imp.1.banner.format.0"), wh);
    expect_int(at(o, "imp.1.banner.format.0.w"), 300);
    expect_int(at(o, "imp.1.banner.format.1.h"), 600);
    expect_int(at(o, "imp.1.pmp.private_auction"), 0);
    ck_assert_int_eq(cJSON_GetArraySize(at(o, "imp.1.pmp.deals")), 2);
    static const char *const deal_keys[] = {"id", "bidfloor", "bidfloorcur", "wseat", NULL};
    expect_keys(at(o, "imp.1.pmp.deals.0"), deal_keys);
    ck_assert_str_eq(str_at(o, "imp.1.pmp.deals.0.id"), "deal-1");
    expect_money(at(o, "imp.1.pmp.deals.0.bidfloor"), 2110000);
    ck_assert_str_eq(str_at(o, "imp.1.pmp.deals.0.bidfloorcur"), "EUR");
    ck_assert_int_eq(cJSON_GetArraySize(at(o, "imp.1.pmp.deals.0.wseat")), 2);
    ck_assert_str_eq(str_at(o, "imp.1.pmp.deals.0.wseat.1"), "adv-2");
    static const char *const bare_deal[] = {"id", "bidfloor", "bidfloorcur", NULL};
    expect_keys(at(o, "imp.1.pmp.deals.1"), bare_deal);
    expect_money(at(o, "imp.1.pmp.deals.1.bidfloor"), 0);

    static const char *const pre_keys[] = {"id",    "tagid", "bidfloor", "bidfloorcur",
                                           "video", "pmp",   NULL};
    expect_keys(at(o, "imp.2"), pre_keys);
    static const char *const video_keys[] = {"mimes", "w", "h", "minduration", "maxduration", NULL};
    expect_keys(at(o, "imp.2.video"), video_keys);
    ck_assert_str_eq(str_at(o, "imp.2.video.mimes.1"), "video/webm");
    expect_int(at(o, "imp.2.video.w"), 640);
    expect_int(at(o, "imp.2.video.h"), 360);
    expect_int(at(o, "imp.2.video.minduration"), 5);
    expect_int(at(o, "imp.2.video.maxduration"), 30);
    expect_int(at(o, "imp.2.pmp.private_auction"), 1);
    expect_money(at(o, "imp.2.pmp.deals.0.bidfloor"), 6000000);

    static const char *const site_keys[] = {"id", "domain", "page", "publisher", NULL};
    expect_keys(at(o, "site"), site_keys);
    ck_assert_str_eq(str_at(o, "site.id"), "site-1");
    ck_assert_str_eq(str_at(o, "site.domain"), "news.example");
    ck_assert_str_eq(str_at(o, "site.page"), "https://news.example/a");
    ck_assert_str_eq(str_at(o, "site.publisher.id"), "pub-1");
    ck_assert_str_eq(str_at(o, "site.publisher.name"), "News \"Inc\"");

    static const char *const device_keys[] = {"ua",       "ip",  "devicetype", "os",
                                              "language", "geo", NULL};
    expect_keys(at(o, "device"), device_keys);
    ck_assert_str_eq(str_at(o, "device.ua"), "Mozilla/5.0");
    ck_assert_str_eq(str_at(o, "device.ip"), "192.0.2.7");
    expect_int(at(o, "device.devicetype"), 2);
    ck_assert_str_eq(str_at(o, "device.os"), "Linux");
    ck_assert_str_eq(str_at(o, "device.language"), "fr");
    ck_assert_str_eq(str_at(o, "device.geo.country"), "FRA");
    ck_assert_str_eq(str_at(o, "device.geo.region"), "FR-75");

    /* OpenRTB 2.6 places: regs.gdpr, regs.us_privacy, user.consent */
    static const char *const regs_keys[] = {"coppa", "gdpr", "us_privacy", NULL};
    expect_keys(at(o, "regs"), regs_keys);
    expect_int(at(o, "regs.coppa"), 0);
    expect_int(at(o, "regs.gdpr"), 1);
    ck_assert_str_eq(str_at(o, "regs.us_privacy"), "1YNN");
    static const char *const user_keys[] = {"id", "keywords", "consent", "ext", NULL};
    expect_keys(at(o, "user"), user_keys);
    ck_assert_str_eq(str_at(o, "user.id"), "u-7");
    ck_assert_str_eq(str_at(o, "user.keywords"), "tech");
    ck_assert_str_eq(str_at(o, "user.consent"), "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA");
    ck_assert(cJSON_Compare(at(o, "ext.user_context"), r.user_context, 1));
    cJSON_Delete(o);

    /* first price: at 1 */
    cfg.auction.type = AUCTION_FIRST_PRICE;
    o = encode17(&r, &cfg, &b);
    expect_int(at(o, "at"), 1);
    cJSON_Delete(o);
    proto_config_free(&cfg);
    proto_buf_free(&b);
    proto_bid_request_free(&r);
}
END_TEST

/* The SPEC 2 form: one imp "1" with the default banner, the default site,
 * auction.currency, nothing else new. */
START_TEST(openrtb17_spec2_form) {
    proto_bid_request r;
    proto_config cfg;
    proto_buf b = {0};
    char err[ERRLEN];
    decode_ok(VALID_REQUEST, &r);
    ck_assert_int_eq(proto_config_defaults(&cfg), PROTO_OK);
    cJSON *o = encode17(&r, &cfg, &b);
    ck_assert_str_eq(b.data,
                     "{\"id\":\"r-1\",\"at\":2,\"tmax\":80,\"cur\":[\"USD\"],"
                     "\"imp\":[{\"id\":\"1\",\"tagid\":\"slot-9\",\"bidfloor\":1.5,"
                     "\"bidfloorcur\":\"USD\",\"banner\":{\"w\":300,\"h\":250}}],"
                     "\"site\":{\"id\":\"default\",\"domain\":\"example.com\"},"
                     "\"user\":{\"id\":\"u-7\",\"keywords\":\"\",\"ext\":{\"ltv_score\":0}},"
                     "\"ext\":{\"user_context\":{}}}");
    static const char *const top_keys[] = {"id",   "at",   "tmax", "cur", "imp",
                                           "site", "user", "ext",  NULL};
    expect_keys(o, top_keys);
    expect_int(at(o, "imp.0.banner.w"), 300);
    cJSON_Delete(o);

    /* Both defaults come from the config; so does the currency. */
    ck_assert_int_eq(proto_config_parse(&cfg,
                                        "{\"auction\":{\"currency\":\"GBP\","
                                        "\"default_banner\":{\"w\":320,\"h\":50},"
                                        "\"default_site\":{\"id\":\"s\",\"page\":\"https://p/\","
                                        "\"publisher\":{\"name\":\"P\"}}}}",
                                        strlen("{\"auction\":{\"currency\":\"GBP\","
                                               "\"default_banner\":{\"w\":320,\"h\":50},"
                                               "\"default_site\":{\"id\":\"s\",\"page\":"
                                               "\"https://p/\",\"publisher\":{\"name\":\"P\"}}}}"),
                                        err, ERRLEN),
                     PROTO_OK);
    o = encode17(&r, &cfg, &b);
    ck_assert_str_eq(str_at(o, "cur.0"), "GBP");
    ck_assert_str_eq(str_at(o, "imp.0.bidfloorcur"), "GBP");
    expect_int(at(o, "imp.0.banner.w"), 320);
    expect_int(at(o, "imp.0.banner.h"), 50);
    static const char *const site_keys[] = {"id", "page", "publisher", NULL};
    expect_keys(at(o, "site"), site_keys);
    static const char *const pub_keys[] = {"name", NULL};
    expect_keys(at(o, "site.publisher"), pub_keys);
    cJSON_Delete(o);
    proto_bid_request_free(&r);

    /* A request's own app replaces the default site; IPv6 goes out as ipv6;
     * an empty regs is sent as it came. */
    decode_ok(CTX_REQ(",\"app\":{\"bundle\":\"com.example\"},\"device\":{\"ip\":\"2001:db8::7\"},"
                      "\"regs\":{},\"cur\":\"JPY\""),
              &r);
    o = encode17(&r, &cfg, &b);
    static const char *const app_top[] = {"id",     "at",   "tmax", "cur", "imp", "app",
                                          "device", "regs", "user", "ext", NULL};
    expect_keys(o, app_top);
    ck_assert_str_eq(str_at(o, "app.bundle"), "com.example");
    static const char *const v6[] = {"ipv6", NULL};
    expect_keys(at(o, "device"), v6);
    ck_assert_str_eq(str_at(o, "device.ipv6"), "2001:db8::7");
    ck_assert_ptr_null(at(o, "regs")->child);
    ck_assert_str_eq(str_at(o, "cur.0"), "JPY");
    ck_assert_str_eq(str_at(o, "imp.0.bidfloorcur"), "JPY");
    cJSON_Delete(o);
    proto_bid_request_free(&r);
    proto_config_free(&cfg);
    proto_buf_free(&b);
}
END_TEST

/* ---- SPEC 17: bids against the request's imps and deals ------------------ */

#define RESP(bids, tail)                                                                           \
    "{\"id\":\"r-17\",\"seatbid\":[{\"seat\":\"adv-2\",\"bid\":[" bids "]}]" tail "}"

/* Decode `body` against FULL_REQUEST (imps top, side with deal-1, deal-2,
 * pre with deal-1). */
static proto_bid_status decode_all(const char *body, proto_bid_list *l, char *err) {
    proto_bid_request r;
    decode_ok(FULL_REQUEST, &r);
    size_t n = strlen(body);
    char *copy = xmalloc(n);
    memcpy(copy, body, n);
    proto_bid_status st = proto_bid_response_decode_all(copy, n, MAX_BYTES, &r, l, err, ERRLEN);
    free(copy);
    proto_bid_request_free(&r); /* the list owns its strings */
    return st;
}

START_TEST(bids17_every_valid_bid) {
    proto_bid_list l;
    char err[ERRLEN];
    const char *body =
        "{\"id\":\"r-17\",\"cur\":\"EUR\",\"seatbid\":["
        "{\"seat\":\"adv-2\",\"bid\":[{\"id\":\"b1\",\"impid\":\"top\",\"price\":2.5},"
        "{\"id\":\"b2\",\"impid\":\"side\",\"price\":3,\"dealid\":\"deal-2\","
        "\"adid\":\"ad-2\"}]},"
        "{\"bid\":[{\"id\":\"b3\",\"impid\":\"pre\",\"price\":7,\"dealid\":\"deal-1\"},"
        "{\"id\":\"b4\",\"impid\":\"side\",\"price\":1,\"dealid\":\"\"}]}]}";
    ck_assert_int_eq(decode_all(body, &l, err), PROTO_BID_OK);
    ck_assert_str_eq(err, "");
    ck_assert_uint_eq(l.nbids, 4);
    ck_assert_str_eq(l.cur, "EUR");
    ck_assert_str_eq(l.bids[0].bid_id, "b1");
    ck_assert_int_eq(l.bids[0].imp_index, 0);
    ck_assert_int_eq(l.bids[0].deal_index, -1);
    ck_assert_ptr_null(l.bids[0].deal_id);
    ck_assert_str_eq(l.bids[0].cur, "EUR");
    ck_assert_str_eq(l.bids[0].seat, "adv-2");
    ck_assert_int_eq(l.bids[1].imp_index, 1);
    ck_assert_int_eq(l.bids[1].deal_index, 1);
    ck_assert_str_eq(l.bids[1].deal_id, "deal-2");
    ck_assert_str_eq(l.bids[1].ad_id, "ad-2");
    ck_assert_int_eq(l.bids[1].price_micros, 3000000);
    ck_assert_int_eq(l.bids[2].imp_index, 2);
    ck_assert_int_eq(l.bids[2].deal_index, 0);
    ck_assert_ptr_null(l.bids[2].seat);
    ck_assert_ptr_null(l.bids[3].deal_id); /* "" is no deal */
    ck_assert_int_eq(l.bids[3].deal_index, -1);
    ck_assert_ptr_null(l.bids[0].block); /* the list's block owns them */
    for (int s = 0; s < PROTO_BID_STATUS_COUNT; s++)
        ck_assert_uint_eq(l.refused[s], 0);
    proto_bid_list_free(&l);
    ck_assert_ptr_null(l.bids);
    proto_bid_list_free(&l);
}
END_TEST

START_TEST(bids17_refused_one_by_one) {
    proto_bid_list l;
    char err[ERRLEN];
    /* a bad impid, a deal of another imp, an unknown deal, a missing impid:
     * each refused alone, the good bid kept, each counted by its reason */
    const char *body = RESP("{\"id\":\"ok\",\"impid\":\"top\",\"price\":1},"
                            "{\"id\":\"x\",\"impid\":\"nope\",\"price\":2},"
                            "{\"id\":\"y\",\"impid\":\"top\",\"price\":2,\"dealid\":\"deal-1\"},"
                            "{\"id\":\"z\",\"impid\":\"side\",\"price\":2,\"dealid\":\"deal-9\"},"
                            "{\"id\":\"w\",\"price\":2},"
                            "{\"id\":\"v\",\"impid\":\"top\",\"price\":0},"
                            "{\"id\":\"u\",\"impid\":\"top\",\"price\":2,\"iurl\":\"ftp://x\"}",
                            "");
    ck_assert_int_eq(decode_all(body, &l, err), PROTO_BID_OK);
    ck_assert_uint_eq(l.nbids, 1);
    ck_assert_str_eq(l.bids[0].bid_id, "ok");
    ck_assert_str_eq(l.cur, "USD"); /* absent: USD */
    ck_assert_uint_eq(l.refused[PROTO_BID_BAD_IMP], 2);
    ck_assert_uint_eq(l.refused[PROTO_BID_BAD_DEAL], 2);
    ck_assert_uint_eq(l.refused[PROTO_BID_BAD_PRICE], 1);
    ck_assert_uint_eq(l.refused[PROTO_BID_BAD_FIELD], 1);
    ck_assert_str_eq(err, "seatbid[0].bid[1].impid: not an imp of the request");
    proto_bid_list_free(&l);

    /* no valid bid left: a bidder error, with the first such bid's reason */
    static const char *const cases[][3] = {
        {RESP("{\"impid\":\"nope\",\"price\":2}", ""), "bad_imp",
         "seatbid[0].bid[0].impid: not an imp of the request"},
        {RESP("{\"price\":2}", ""), "bad_imp", "seatbid[0].bid[0].impid: required"},
        {RESP("{\"impid\":7,\"price\":2}", ""), "bad_imp", "seatbid[0].bid[0].impid: required"},
        {RESP("{\"impid\":\"top\",\"price\":2,\"dealid\":\"deal-1\"}", ""), "bad_deal",
         "seatbid[0].bid[0].dealid: not a deal of imp \"top\""},
        {RESP("{\"impid\":\"side\",\"price\":0},{\"impid\":\"pre\",\"price\":2,\"dealid\":\"d\"},"
              "{\"impid\":\"x\",\"price\":1}",
              ""),
         "bad_deal", "seatbid[0].bid[1].dealid: not a deal of imp \"pre\""},
        {RESP("{\"impid\":\"side\",\"price\":-2}", ""), "bad_price",
         "bid.price: no bid with a positive finite price up to 1000000"},
        {RESP("{\"impid\":\"side\",\"price\":2,\"nurl\":\"javascript:x\"},{\"impid\":\"q\","
              "\"price\":"
              "3}",
              ""),
         "bad_field", "seatbid[0].bid[0].nurl: not an http(s) URL with a host"},
        /* the BidResponse's currency */
        {RESP("{\"impid\":\"top\",\"price\":2}", ",\"cur\":\"usd\""), "bad_cur",
         "cur: must be 3 capital letters (an ISO 4217 code)"},
        {RESP("{\"impid\":\"top\",\"price\":2}", ",\"cur\":[\"USD\"]"), "bad_cur",
         "cur: must be 3 capital letters (an ISO 4217 code)"},
        {RESP("{\"impid\":\"top\",\"price\":2}", ",\"cur\":\"EURO\""), "bad_cur",
         "cur: must be 3 capital letters (an ISO 4217 code)"},
        /* a no-bid is a no-bid whatever its cur says */
        {"{\"id\":\"r-17\",\"cur\":\"??\"}", "no_seatbid", "seatbid: absent"},
        {"{\"id\":\"r-1\",\"seatbid\":[]}", "wrong_id", "id: not the request's id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proto_bid_status st = decode_all(cases[i][0], &l, err);
        ck_assert_msg(strcmp(proto_bid_status_str(st), cases[i][1]) == 0, "%s: got %s (%s)",
                      cases[i][0], proto_bid_status_str(st), err);
        ck_assert_str_eq(err, cases[i][2]);
        ck_assert_ptr_null(l.bids);
        ck_assert_ptr_null(l.block);
        ck_assert_uint_eq(l.nbids, 0);
        proto_bid_list_free(&l);
    }
    /* counts survive a refused response */
    ck_assert_int_eq(decode_all(RESP("{\"impid\":\"n\",\"price\":2},{\"impid\":\"top\",\"price\":"
                                     "2,\"dealid\":\"zz\"}",
                                     ""),
                                &l, err),
                     PROTO_BID_BAD_IMP);
    ck_assert_uint_eq(l.refused[PROTO_BID_BAD_IMP], 1);
    ck_assert_uint_eq(l.refused[PROTO_BID_BAD_DEAL], 1);
    proto_bid_list_free(&l);
}
END_TEST

START_TEST(bids17_at_most_64) {
    proto_bid_list l;
    char err[ERRLEN];
    char *bids = repeat("{\"impid\":\"top\",\"price\":1.25},", PROTO_RESPONSE_BIDS_MAX + 2);
    bids[strlen(bids) - 1] = '\0';
    char *body = fmt("{\"id\":\"r-17\",\"seatbid\":[{\"bid\":[%s]}]}", bids);
    ck_assert_int_eq(decode_all(body, &l, err), PROTO_BID_OK);
    ck_assert_uint_eq(l.nbids, PROTO_RESPONSE_BIDS_MAX);
    ck_assert_uint_eq(l.refused[PROTO_BID_TOO_MANY], 2);
    ck_assert_int_eq(l.bids[63].price_micros, 1250000);
    ck_assert_str_eq(err, "seatbid[0].bid[64]: over 64 valid bids in one response");
    proto_bid_list_free(&l);
    free(bids);
    free(body);
}
END_TEST

/* The single-bid reading keeps its SPEC 5 answer and learns dealid and cur. */
START_TEST(bids17_single_bid_reading) {
    proto_bid b;
    char err[ERRLEN];
    const char *body = "{\"id\":\"r-1\",\"cur\":\"EUR\",\"seatbid\":[{\"bid\":["
                       "{\"impid\":\"anything\",\"price\":2,\"dealid\":\"d-1\"}]}]}";
    ck_assert_int_eq(bid_decode(body, strlen(body), MAX_BYTES, "r-1", &b, err), PROTO_BID_OK);
    ck_assert_str_eq(b.deal_id, "d-1");
    ck_assert_str_eq(b.cur, "EUR");
    ck_assert_int_eq(b.imp_index, -1);
    ck_assert_int_eq(b.deal_index, -1);
    proto_bid_free(&b);
    ck_assert_int_eq(bid_decode(SPEC_RESPONSE, strlen(SPEC_RESPONSE), MAX_BYTES, "r-1", &b, err),
                     PROTO_BID_OK);
    ck_assert_str_eq(b.cur, "USD");
    ck_assert_ptr_null(b.deal_id);
    proto_bid_free(&b);
    expect_bid_status("{\"id\":\"r-1\",\"cur\":\"eur\",\"seatbid\":[{\"bid\":[{\"price\":2}]}]}",
                      PROTO_BID_BAD_CUR);
    /* dealid is an id of SPEC 15: at most 2048 bytes */
    char *big = repeat("d", 2049);
    char *json =
        fmt("{\"id\":\"r-1\",\"seatbid\":[{\"bid\":[{\"price\":2,\"dealid\":\"%s\"}]}]}", big);
    expect_bid_status(json, PROTO_BID_BAD_FIELD);
    free(big);
    free(json);
}
END_TEST

/* ---- SPEC 17: currency rates ---------------------------------------------------- */

static void expect_rate(const proto_rates *r, size_t i, const char *from, const char *to,
                        const char *text) {
    ck_assert_uint_lt(i, r->n);
    ck_assert_str_eq(r->rates[i].from, from);
    ck_assert_str_eq(r->rates[i].to, to);
    ck_assert_str_eq(r->rates[i].text, text);
}

static proto_err rates_decode(const char *json, proto_rates *r, char *err) {
    size_t n = strlen(json);
    char *copy = xmalloc(n);
    memcpy(copy, json, n);
    proto_err e = proto_currency_rates_decode(copy, n, r, err, ERRLEN);
    free(copy);
    return e;
}

START_TEST(rates_plain_and_wrapped) {
    proto_rates r;
    char err[ERRLEN];
    ck_assert_int_eq(rates_decode("{\"USD\":{\"EUR\":0.92,\"JPY\":151.37,\"GBP\":0.7912},"
                                  "\"EUR\":{\"USD\":1.0389036164053573}}",
                                  &r, err),
                     PROTO_OK);
    ck_assert_uint_eq(r.n, 4);
    expect_rate(&r, 0, "USD", "EUR", "0.92");
    expect_rate(&r, 1, "USD", "JPY", "151.37");
    expect_rate(&r, 2, "USD", "GBP", "0.7912");
    expect_rate(&r, 3, "EUR", "USD", "1.0389036164053573"); /* not through a double */
    proto_currency_rates_free(&r);
    ck_assert_ptr_null(r.rates);

    /* Prebid's published file: numbers and strings before "conversions"
     * (digits, quotes and escapes inside strings) are stepped over. */
    ck_assert_int_eq(rates_decode("{\"dataAsOf\":\"2024-05-01 \\\"12\\\\\",\"version\":[3,-1.5e2],"
                                  "\"generatedAt\":{\"t\":1714521600},\"conversions\":{"
                                  "\"USD\":{\"IDR\":15630.5,\"KWD\":3.07e-1},"
                                  "\"GBP\":{\"USD\":1.25,\"VND\":3.2E+4}},\"after\":99}",
                                  &r, err),
                     PROTO_OK);
    ck_assert_uint_eq(r.n, 4);
    expect_rate(&r, 0, "USD", "IDR", "15630.5");
    expect_rate(&r, 1, "USD", "KWD", "0.307");
    expect_rate(&r, 2, "GBP", "USD", "1.25");
    expect_rate(&r, 3, "GBP", "VND", "32000");
    proto_currency_rates_free(&r);

    /* every number written as a plain decimal, exactly */
    static const char *const texts[][2] = {
        {"6.28e-05", "0.0000628"},
        {"1E+2", "100"},
        {"150.50", "150.5"},
        {"0.000001", "0.000001"},
        {"007", "7"},
        {"1e0", "1"},
        {"12.5e-1", "1.25"},
        {"0.0012e3", "1.2"},
        {"123456789012345678", "123456789012345678"},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char *json = fmt("{\"USD\":{\"EUR\":%s}}", texts[i][0]);
        proto_err e = rates_decode(json, &r, err);
        /* (cJSON reads 007 as 7, as strtod does) */
        ck_assert_msg(e == PROTO_OK, "%s: %s", texts[i][0], err);
        expect_rate(&r, 0, "USD", "EUR", texts[i][1]);
        proto_currency_rates_free(&r);
        free(json);
    }
    ck_assert_int_eq(rates_decode("{}", &r, err), PROTO_OK);
    ck_assert_uint_eq(r.n, 0);
    ck_assert_int_eq(rates_decode("{\"conversions\":{}}", &r, err), PROTO_OK);
    ck_assert_uint_eq(r.n, 0);
}
END_TEST

START_TEST(rates_refused) {
    static const char *const cases[][2] = {
        {"[]", "rates: must be a JSON object"},
        {"{\"USD\":{\"EUR\":0}}", "USD.EUR: must be a number above 0"},
        {"{\"USD\":{\"EUR\":-0.92}}", "USD.EUR: must be a number above 0"},
        {"{\"USD\":{\"EUR\":\"0.92\"}}", "USD.EUR: must be a number above 0"},
        {"{\"USD\":{\"EUR\":1e-50}}",
         "USD.EUR: must be a number above 0 of at most 40 characters as a plain decimal"},
        {"{\"USD\":{\"EUR\":1e45}}",
         "USD.EUR: must be a number above 0 of at most 40 characters as a plain decimal"},
        {"{\"usd\":{\"EUR\":1}}", "rates: key 0 is not a currency code (3 capital letters)"},
        {"{\"USD\":{\"EUR\":1,\"EURO\":1}}",
         "USD: key 1 is not a currency code (3 capital letters)"},
        {"{\"USD\":{\"EUR\":1},\"USD\":{}}", "USD: duplicate"},
        {"{\"USD\":{\"EUR\":1,\"EUR\":2}}", "USD.EUR: duplicate"},
        {"{\"USD\":[0.92]}", "USD: must be an object of rates"},
        {"{\"conversions\":[]}", "conversions: must be an object"},
        {"{\"conversions\":{\"USD\":{\"eur\":1}}}",
         "USD: key 0 is not a currency code (3 capital letters)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proto_rates r;
        char err[ERRLEN];
        proto_err e = rates_decode(cases[i][0], &r, err);
        ck_assert_msg(e != PROTO_OK, "%s accepted", cases[i][0]);
        ck_assert_str_eq(err, cases[i][1]);
        ck_assert_ptr_null(r.rates);
        ck_assert_uint_eq(r.n, 0);
    }
    /* 64 currencies of 64 rates is the most */
    for (int n = 64; n <= 65; n++) {
        proto_buf doc = {0}, to = {0};
        for (int j = 0; j < n; j++)
            proto_buf_printf(&to, "%s\"%c%c%c\":%d.5", j ? "," : "", 'A' + j / 26 % 26,
                             'A' + j % 26, 'Q', j + 1);
        proto_buf_puts(&doc, "{");
        for (int i = 0; i < n; i++)
            proto_buf_printf(&doc, "%s\"%c%cZ\":{%s}", i ? "," : "", 'A' + i / 26 % 26,
                             'A' + i % 26, to.data);
        proto_buf_puts(&doc, "}");
        proto_rates r;
        char err[ERRLEN];
        proto_err e = rates_decode(doc.data, &r, err);
        if (n == 64) {
            ck_assert_msg(e == PROTO_OK, "%s", err);
            ck_assert_uint_eq(r.n, 64 * 64);
            expect_rate(&r, 64 * 64 - 1, "CLZ", "CLQ", "64.5");
        } else {
            ck_assert_int_eq(e, PROTO_ERR_FIELD);
            ck_assert_str_eq(err, "AAZ: more than 64 rates");
        }
        proto_currency_rates_free(&r);
        proto_buf_free(&doc);
        proto_buf_free(&to);
    }
    /* 65 currencies of one rate */
    proto_buf doc = {0};
    proto_buf_puts(&doc, "{");
    for (int i = 0; i < 65; i++)
        proto_buf_printf(&doc, "%s\"%c%cZ\":{\"USD\":1}", i ? "," : "", 'A' + i / 26, 'A' + i % 26);
    proto_buf_puts(&doc, "}");
    proto_rates r;
    char err[ERRLEN];
    ck_assert_int_eq(rates_decode(doc.data, &r, err), PROTO_ERR_FIELD);
    ck_assert_str_eq(err, "rates: more than 64 currencies");
    proto_buf_free(&doc);
    /* the size gate, before parsing */
    ck_assert_int_eq(proto_currency_rates_decode("{}", PROTO_RATES_MAX_BYTES + 1, &r, err, ERRLEN),
                     PROTO_ERR_TOO_LARGE);
}
END_TEST

/* ---- SPEC 17: the result's imps ------------------------------------------------ */

START_TEST(result17_imps) {
    proto_result_imp imps[] = {
        {.imp_id = "top",
         .status = PROTO_STATUS_SUCCESS,
         .advertiser_id = "adv-1",
         .bid_price_micros = 3000000,
         .clearing_price_micros = 2110000,
         .ad_id = "ad-1",
         .creative_url = "https://cdn.example/1.jpg",
         .deal_id = "deal-1"},
        {.imp_id = "side", .status = PROTO_STATUS_NO_BID},
        {.imp_id = "pre",
         .status = PROTO_STATUS_SUCCESS,
         .advertiser_id = "adv-2",
         .bid_price_micros = 5000000,
         .clearing_price_micros = 4000000},
    };
    proto_result r = spec_result();
    r.status = PROTO_STATUS_NO_BID; /* an imp won: success whatever the caller says */
    r.advertiser_id = "ignored";
    r.imps = imps;
    r.nimps = 3;
    expect_result(&r, "{\"request_id\":\"r-1\",\"status\":\"success\","
                      "\"winner\":{\"advertiser_id\":\"adv-1\",\"bid_price\":3,"
                      "\"clearing_price\":2.11,\"ad_id\":\"ad-1\","
                      "\"creative_url\":\"https://cdn.example/1.jpg\"},"
                      "\"imps\":[{\"imp_id\":\"top\",\"status\":\"success\","
                      "\"winner\":{\"advertiser_id\":\"adv-1\",\"bid_price\":3,"
                      "\"clearing_price\":2.11,\"ad_id\":\"ad-1\","
                      "\"creative_url\":\"https://cdn.example/1.jpg\",\"deal_id\":\"deal-1\"}},"
                      "{\"imp_id\":\"side\",\"status\":\"no_bid\",\"winner\":null},"
                      "{\"imp_id\":\"pre\",\"status\":\"success\","
                      "\"winner\":{\"advertiser_id\":\"adv-2\",\"bid_price\":5,"
                      "\"clearing_price\":4,\"ad_id\":\"\",\"creative_url\":\"\","
                      "\"deal_id\":null}}],"
                      "\"bids\":3,\"bidders\":4,\"timeouts\":1,\"errors\":0,\"skipped\":2,"
                      "\"latency_ms\":12.4,\"timestamp\":1795000000.123}");

    /* one imp is still an array; no winner anywhere: the caller's status */
    imps[0].status = PROTO_STATUS_TIMEOUT;
    r.nimps = 1;
    r.status = PROTO_STATUS_TIMEOUT;
    expect_result(&r, "{\"request_id\":\"r-1\",\"status\":\"timeout\",\"winner\":null,"
                      "\"imps\":[{\"imp_id\":\"top\",\"status\":\"timeout\",\"winner\":null}],"
                      "\"bids\":3,\"bidders\":4,\"timeouts\":1,\"errors\":0,\"skipped\":2,"
                      "\"latency_ms\":12.4,\"timestamp\":1795000000.123}");
    /* a success no imp backs is a no_bid */
    r.status = PROTO_STATUS_SUCCESS;
    expect_result(&r, "{\"request_id\":\"r-1\",\"status\":\"no_bid\",\"winner\":null,"
                      "\"imps\":[{\"imp_id\":\"top\",\"status\":\"timeout\",\"winner\":null}],"
                      "\"bids\":3,\"bidders\":4,\"timeouts\":1,\"errors\":0,\"skipped\":2,"
                      "\"latency_ms\":12.4,\"timestamp\":1795000000.123}");
    /* overloaded: every imp says so, counters 0 */
    imps[0].status = PROTO_STATUS_OVERLOADED;
    r.status = PROTO_STATUS_OVERLOADED;
    expect_result(&r, "{\"request_id\":\"r-1\",\"status\":\"overloaded\",\"winner\":null,"
                      "\"imps\":[{\"imp_id\":\"top\",\"status\":\"overloaded\",\"winner\":null}],"
                      "\"bids\":0,\"bidders\":0,\"timeouts\":0,\"errors\":0,\"skipped\":0,"
                      "\"latency_ms\":12.4,\"timestamp\":1795000000.123}");
}
END_TEST

static Suite *proto_suite(void) {
    Suite *s = suite_create("proto");
    TCase *tc = tcase_create("buf");
    tcase_add_test(tc, buf_grows_and_resets);
    tcase_add_test(tc, buf_json_string_escapes);
    tcase_add_test(tc, buf_json_string_round_trips);
    tcase_add_test(tc, buf_micros_exact);
    tcase_add_test(tc, strerror_names_every_error);
    suite_add_tcase(s, tc);

    tc = tcase_create("request_valid");
    tcase_add_test(tc, request_valid_full);
    tcase_add_test(tc, request_valid_minimal_and_nulls);
    tcase_add_test(tc, request_floor_exact);
    tcase_add_test(tc, request_ids_count_characters);
    tcase_add_test(tc, request_exactly_at_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("request_hostile");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, request_not_json);
    tcase_add_test(tc, request_trailing_garbage);
    tcase_add_test(tc, request_not_object);
    tcase_add_test(tc, request_deep_nesting);
    tcase_add_test(tc, request_bad_utf8);
    tcase_add_test(tc, request_nul_and_control_bytes);
    tcase_add_test(tc, text_check_every_offset_and_byte);
    tcase_add_test(tc, request_value_bounds);
    tcase_add_test(tc, request_escaped_nul);
    tcase_add_test(tc, request_first_byte_fault_named);
    tcase_add_test(tc, request_every_prefix);
    suite_add_tcase(s, tc);

    tc = tcase_create("request_fields");
    tcase_add_test(tc, request_id_rules);
    tcase_add_test(tc, request_user_and_slot_rules);
    tcase_add_test(tc, request_floor_rules);
    tcase_add_test(tc, request_context_rules);
    tcase_add_test(tc, request_interest_bounds);
    tcase_add_test(tc, request_timestamp_rules);
    tcase_add_test(tc, request_id_recovered);
    suite_add_tcase(s, tc);

    tc = tcase_create("profile");
    tcase_add_test(tc, profile_decode_valid);
    tcase_add_test(tc, profile_decode_invalid);
    tcase_add_test(tc, profile_interests_capped);
    tcase_add_test(tc, profile_encode_default);
    suite_add_tcase(s, tc);

    tc = tcase_create("openrtb_request");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, openrtb_request_fields);
    tcase_add_test(tc, openrtb_request_defaults);
    tcase_add_test(tc, openrtb_request_escaping);
    tcase_add_test(tc, openrtb_request_many_keywords);
    suite_add_tcase(s, tc);

    tc = tcase_create("bid_response");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, bid_response_ok);
    tcase_add_test(tc, bid_response_highest_wins);
    tcase_add_test(tc, bid_response_no_bid);
    tcase_add_test(tc, bid_response_bad_json);
    tcase_add_test(tc, bid_response_wrong_id);
    tcase_add_test(tc, bid_response_no_seatbid);
    tcase_add_test(tc, bid_response_bad_shape);
    tcase_add_test(tc, bid_response_bad_price);
    tcase_add_test(tc, bid_response_too_large);
    tcase_add_test(tc, bid_response_every_prefix);
    tcase_add_test(tc, bid_response_string_bounds);
    tcase_add_test(tc, bid_response_url_rules);
    tcase_add_test(tc, bid_response_burl);
    tcase_add_test(tc, bid_response_bad_bid_skipped);
    tcase_add_test(tc, bid_status_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("event");
    tcase_add_test(tc, event_valid_types);
    tcase_add_test(tc, event_invalid);
    tcase_add_test(tc, event_ids_follow_key_rule);
    tcase_add_test(tc, key_id_rule);
    suite_add_tcase(s, tc);

    tc = tcase_create("notice");
    tcase_add_test(tc, notice_macros_substituted);
    tcase_add_test(tc, notice_unknown_and_broken_macros_kept);
    suite_add_tcase(s, tc);

    tc = tcase_create("result");
    tcase_add_test(tc, result_success_matches_spec);
    tcase_add_test(tc, result_other_statuses);
    tcase_add_test(tc, result_latency_and_timestamp);
    tcase_add_test(tc, result_status_names);
    tcase_add_test(tc, error_encode);
    suite_add_tcase(s, tc);

    tc = tcase_create("spec17");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, request17_full_decodes);
    tcase_add_test(tc, request17_spec2_form_is_one_imp);
    tcase_add_test(tc, request17_rules);
    tcase_add_test(tc, request17_bounds);
    tcase_add_test(tc, request17_refused_late_frees);
    tcase_add_test(tc, openrtb17_full_round_trip);
    tcase_add_test(tc, openrtb17_spec2_form);
    tcase_add_test(tc, bids17_every_valid_bid);
    tcase_add_test(tc, bids17_refused_one_by_one);
    tcase_add_test(tc, bids17_at_most_64);
    tcase_add_test(tc, bids17_single_bid_reading);
    tcase_add_test(tc, rates_plain_and_wrapped);
    tcase_add_test(tc, rates_refused);
    tcase_add_test(tc, result17_imps);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(proto_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}

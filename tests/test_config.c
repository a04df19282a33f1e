/* test_config.c -- the configuration of SPEC 7: defaults, conf/exchange.json
 * (read by rtb/conffile.c, the exchange's reader), command line overrides,
 * and one case per rule the table enforces.
 *
 * The one idea: every refused document is checked twice, for its exact
 * message (the key path first) and for leaving the config as it was. The
 * bad cases are rows of one table, run by one loop test. The source tree is
 * found through RTB_SOURCE_ROOT (tests/meson.build), never from the working
 * directory. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/internal.h"
#include "proto/proto.h"
#include "rtb/conffile.h"

#define ERRLEN 512

/* SPEC 7's example, verbatim. */
static const char spec_json[] =
    "{\"mqtt\":{\"host\":\"127.0.0.1\",\"port\":1883,\"client_id\":\"rtb-exchange\","
    "\"topic\":\"rtb/requests/+\",\"qos\":1,\"shared_group\":null,\"username\":null,"
    "\"password\":null,\"tls\":null},\n"
    " \"redis\":{\"host\":\"127.0.0.1\",\"port\":6379,\"username\":null,\"password\":null},\n"
    " \"auction\":{\"type\":\"second_price\",\"tmax_ms\":100,\"max_bidders\":10,"
    "\"price_increment\":0.01,\"currency\":\"USD\"},\n"
    " \"profiles\":{\"ttl_s\":3600,\"default\":{\"interests\":[],\"ltv_score\":0.5}},\n"
    " \"registry\":{\"refresh_s\":5},\n"
    " \"bidders\":[{\"id\":\"adv-1\",\"endpoint\":\"http://127.0.0.1:9001/bid\","
    "\"interests\":[\"tech\"],\"max_concurrent\":100}],\n"
    " \"limits\":{\"max_request_bytes\":65536,\"max_response_bytes\":65536,"
    "\"max_inflight\":10000,\"max_pending_results\":100000,\"max_pending_notices\":100000},\n"
    " \"admin\":{\"listen\":\"127.0.0.1:8080\"},\n"
    " \"alerts\":[{\"name\":\"bidder-timeouts\",\"metric\":\"bidder_timeout_rate\","
    "\"above\":0.2,\"window_s\":10}],\n"
    " \"log\":{\"level\":\"info\"}}";

/* ---- Helpers ------------------------------------------------------------ */

static void defaults(proto_config *c) {
    ck_assert_int_eq(proto_config_defaults(c), PROTO_OK);
}

static proto_err parse(proto_config *c, const char *json, char *err) {
    err[0] = '\0';
    return proto_config_parse(c, json, strlen(json), err, ERRLEN);
}

static void parse_ok(proto_config *c, const char *json) {
    char err[ERRLEN];
    proto_err e = parse(c, json, err);
    ck_assert_msg(e == PROTO_OK, "%s: %s", json, err);
}

static void assert_str_or_null(const char *a, const char *b, const char *what) {
    if (a == NULL || b == NULL)
        ck_assert_msg(a == b, "%s: %s vs %s", what, a ? a : "(null)", b ? b : "(null)");
    else
        ck_assert_msg(strcmp(a, b) == 0, "%s: \"%s\" vs \"%s\"", what, a, b);
}

static void assert_strings_eq(char **a, size_t na, char **b, size_t nb) {
    ck_assert_uint_eq(na, nb);
    for (size_t i = 0; i < na; i++)
        ck_assert_str_eq(a[i], b[i]);
}

/* Every field of two configs is equal. */
static void assert_config_eq(const proto_config *a, const proto_config *b) {
    assert_str_or_null(a->mqtt.host, b->mqtt.host, "mqtt.host");
    ck_assert_int_eq(a->mqtt.port, b->mqtt.port);
    assert_str_or_null(a->mqtt.client_id, b->mqtt.client_id, "mqtt.client_id");
    assert_str_or_null(a->mqtt.topic, b->mqtt.topic, "mqtt.topic");
    ck_assert_int_eq(a->mqtt.qos, b->mqtt.qos);
    assert_str_or_null(a->mqtt.shared_group, b->mqtt.shared_group, "mqtt.shared_group");
    assert_str_or_null(a->mqtt.username, b->mqtt.username, "mqtt.username");
    assert_str_or_null(a->mqtt.password, b->mqtt.password, "mqtt.password");
    ck_assert_int_eq(a->mqtt.tls, b->mqtt.tls);
    assert_str_or_null(a->mqtt.tls_cafile, b->mqtt.tls_cafile, "mqtt.tls.cafile");
    assert_str_or_null(a->mqtt.tls_certfile, b->mqtt.tls_certfile, "mqtt.tls.certfile");
    assert_str_or_null(a->mqtt.tls_keyfile, b->mqtt.tls_keyfile, "mqtt.tls.keyfile");
    assert_str_or_null(a->redis.host, b->redis.host, "redis.host");
    ck_assert_int_eq(a->redis.port, b->redis.port);
    assert_str_or_null(a->redis.username, b->redis.username, "redis.username");
    assert_str_or_null(a->redis.password, b->redis.password, "redis.password");
    ck_assert_int_eq(a->redis.timeout_ms, b->redis.timeout_ms);
    ck_assert_int_eq(a->auction.type, b->auction.type);
    ck_assert_int_eq(a->auction.tmax_ms, b->auction.tmax_ms);
    ck_assert_int_eq(a->auction.max_bidders, b->auction.max_bidders);
    ck_assert_int_eq(a->auction.price_increment_micros, b->auction.price_increment_micros);
    assert_str_or_null(a->auction.currency, b->auction.currency, "auction.currency");
    ck_assert_int_eq(a->profiles.ttl_s, b->profiles.ttl_s);
    ck_assert(cJSON_Compare(a->profiles.default_profile, b->profiles.default_profile, 1));
    ck_assert_int_eq(a->registry.refresh_s, b->registry.refresh_s);
    ck_assert_uint_eq(a->nbidders, b->nbidders);
    for (size_t i = 0; i < a->nbidders; i++) {
        const proto_bidder_conf *x = &a->bidders[i], *y = &b->bidders[i];
        ck_assert_str_eq(x->id, y->id);
        ck_assert_str_eq(x->endpoint, y->endpoint);
        assert_strings_eq(x->interests, x->ninterests, y->interests, y->ninterests);
        ck_assert_int_eq(x->max_concurrent, y->max_concurrent);
        ck_assert_int_eq(x->budget_daily_micros, y->budget_daily_micros);
        ck_assert_int_eq(x->budget_pacing, y->budget_pacing);
    }
    ck_assert_int_eq(a->limits.max_request_bytes, b->limits.max_request_bytes);
    ck_assert_int_eq(a->limits.max_response_bytes, b->limits.max_response_bytes);
    ck_assert_int_eq(a->limits.max_inflight, b->limits.max_inflight);
    ck_assert_int_eq(a->limits.max_pending_results, b->limits.max_pending_results);
    ck_assert_int_eq(a->limits.max_pending_notices, b->limits.max_pending_notices);
    ck_assert_int_eq(a->limits.max_pending_redis, b->limits.max_pending_redis);
    ck_assert_int_eq(a->limits.max_pending_result_bytes, b->limits.max_pending_result_bytes);
    assert_str_or_null(a->admin.listen, b->admin.listen, "admin.listen");
    assert_strings_eq(a->admin.allowed_hosts, a->admin.nallowed_hosts, b->admin.allowed_hosts,
                      b->admin.nallowed_hosts);
    ck_assert_uint_eq(a->nalerts, b->nalerts);
    for (size_t i = 0; i < a->nalerts; i++) {
        ck_assert_str_eq(a->alerts[i].name, b->alerts[i].name);
        ck_assert_int_eq(a->alerts[i].metric, b->alerts[i].metric);
        assert_str_or_null(a->alerts[i].subject, b->alerts[i].subject, "alerts[].subject");
        ck_assert_int_eq(a->alerts[i].op, b->alerts[i].op);
        ck_assert(a->alerts[i].threshold == b->alerts[i].threshold);
        ck_assert(a->alerts[i].above == b->alerts[i].above ||
                  (isnan(a->alerts[i].above) && isnan(b->alerts[i].above)));
        ck_assert_int_eq(a->alerts[i].window_s, b->alerts[i].window_s);
        ck_assert_int_eq(a->alerts[i].severity, b->alerts[i].severity);
        ck_assert_str_eq(a->alerts[i].message, b->alerts[i].message);
    }
    assert_str_or_null(a->admin.token, b->admin.token, "admin.token");
    ck_assert_int_eq(a->log.level, b->log.level);
    ck_assert_int_eq(a->stats.ad_ttl_s, b->stats.ad_ttl_s);
}

/* $RTB_SOURCE_ROOT/conf/exchange.json: meson sets the variable (tests/
 * meson.build), so the suite runs from any build directory. */
static const char *exchange_json_path(char *buf, size_t len) {
    const char *root = getenv("RTB_SOURCE_ROOT");
    ck_assert_msg(root != NULL && root[0] != '\0',
                  "RTB_SOURCE_ROOT is not set: run the suite with meson test");
    snprintf(buf, len, "%s/conf/exchange.json", root);
    ck_assert_msg(access(buf, R_OK) == 0, "%s cannot be read", buf);
    return buf;
}

/* A file in /tmp holding `len` bytes of `data`; the caller unlinks it. */
static void temp_file(char *path, size_t pathlen, const char *data, size_t len) {
    snprintf(path, pathlen, "/tmp/test_config_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    return p;
}

static char *repeat(char ch, size_t n) {
    char *s = xmalloc(n + 1);
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

/* ---- Defaults ----------------------------------------------------------- */

START_TEST(defaults_are_spec_7) {
    proto_config c;
    defaults(&c);
    ck_assert_str_eq(c.mqtt.host, "127.0.0.1");
    ck_assert_int_eq(c.mqtt.port, 1883);
    ck_assert_str_eq(c.mqtt.client_id, "rtb-exchange");
    ck_assert_str_eq(c.mqtt.topic, "rtb/requests/+");
    ck_assert_int_eq(c.mqtt.qos, 1);
    ck_assert_ptr_null(c.mqtt.shared_group);
    ck_assert_ptr_null(c.mqtt.username);
    ck_assert_ptr_null(c.mqtt.password);
    ck_assert_int_eq(c.mqtt.tls, 0);
    ck_assert_ptr_null(c.mqtt.tls_cafile);
    ck_assert_ptr_null(c.mqtt.tls_certfile);
    ck_assert_ptr_null(c.mqtt.tls_keyfile);
    ck_assert_str_eq(c.redis.host, "127.0.0.1");
    ck_assert_int_eq(c.redis.port, 6379);
    ck_assert_ptr_null(c.redis.username);
    ck_assert_ptr_null(c.redis.password);
    ck_assert_int_eq(c.redis.timeout_ms, 1000);
    ck_assert_int_eq(c.auction.type, AUCTION_SECOND_PRICE);
    ck_assert_int_eq(c.auction.tmax_ms, 100);
    ck_assert_int_eq(c.auction.max_bidders, 10);
    ck_assert_int_eq(c.auction.price_increment_micros, 10000);
    ck_assert_str_eq(c.auction.currency, "USD");
    ck_assert_int_eq(c.profiles.ttl_s, 3600);
    cJSON *profile = cJSON_Parse("{\"interests\":[],\"ltv_score\":0.5}");
    ck_assert(cJSON_Compare(c.profiles.default_profile, profile, 1));
    ck_assert_ptr_null(c.profiles.default_profile->string);
    cJSON_Delete(profile);
    ck_assert_int_eq(c.registry.refresh_s, 5);
    ck_assert_uint_eq(c.nbidders, 0);
    ck_assert_ptr_null(c.bidders);
    ck_assert_int_eq(c.limits.max_request_bytes, 65536);
    ck_assert_int_eq(c.limits.max_response_bytes, 65536);
    ck_assert_int_eq(c.limits.max_inflight, 10000);
    ck_assert_int_eq(c.limits.max_pending_results, 100000);
    ck_assert_int_eq(c.limits.max_pending_notices, 100000);
    ck_assert_int_eq(c.limits.max_pending_redis, 100000);
    ck_assert_int_eq(c.limits.max_pending_result_bytes, 268435456);
    ck_assert_str_eq(c.admin.listen, "127.0.0.1:8080");
    ck_assert_uint_eq(c.admin.nallowed_hosts, 0);
    ck_assert_ptr_null(c.admin.allowed_hosts);
    ck_assert_uint_eq(c.nalerts, 1);
    ck_assert_str_eq(c.alerts[0].name, "bidder-timeouts");
    ck_assert_int_eq(c.alerts[0].metric, PROTO_ALERT_BIDDER_TIMEOUT_RATE);
    ck_assert(c.alerts[0].above == 0.2);
    ck_assert_int_eq(c.alerts[0].window_s, 10);
    ck_assert_int_eq(c.log.level, PROTO_LOG_INFO);
    ck_assert_int_eq(c.stats.ad_ttl_s, 604800);
    proto_config_free(&c);
}
END_TEST

/* The SPEC's document, minus its sample bidder, changes nothing. */
START_TEST(spec_document_equals_defaults) {
    proto_config c, d;
    defaults(&c);
    defaults(&d);
    parse_ok(&c, spec_json);
    ck_assert_uint_eq(c.nbidders, 1);
    char err[ERRLEN];
    ck_assert_int_eq(proto_config_set(&c, "bidders", "[]", err, sizeof err), PROTO_OK);
    assert_config_eq(&c, &d);
    proto_config_free(&c);
    proto_config_free(&d);
}
END_TEST

START_TEST(free_is_idempotent) {
    proto_config c;
    memset(&c, 0, sizeof c);
    proto_config_free(&c);
    defaults(&c);
    proto_config_free(&c);
    proto_config_free(&c);
    proto_config_free(NULL);
}
END_TEST

START_TEST(print_keys_lists_every_key) {
    static const char *const lines[] = {
        "  auction.tmax_ms = 100  (integer 1..10000)\n",
        "  mqtt.port = 1883  (integer 1..65535)\n",
        "  mqtt.host = \"127.0.0.1\"  (",
        "  mqtt.shared_group = null  (",
        "  mqtt.tls = null  (",
        "  mqtt.tls.cafile  (required; ",
        "  auction.type = \"second_price\"  (second_price | first_price)\n",
        "  auction.price_increment = 0.01  (amount 0..1000000, at most 6 decimals)\n",
        "  auction.currency = \"USD\"  (3 uppercase letters)\n",
        "  profiles.default = {\"interests\":[],\"ltv_score\":0.5}  (",
        "  bidders = []  (",
        "  bidders[].id  (required, unique; 1..128 characters of [A-Za-z0-9._:-])\n",
        "  alerts[].name  (required, unique; string, 1..128 characters, no control characters)\n",
        "  alerts[].subject = null  (1..128 characters of [A-Za-z0-9._:-], or null)\n",
        "  alerts[].op = \"above\"  (above | below)\n",
        "  alerts[].threshold = null  (finite number, or null)\n",
        "  alerts[].above = null  (finite number, or null)\n",
        "  alerts[].severity = \"warning\"  (info | warning | critical)\n",
        "  alerts[].message = \"\"  (string, 0..1024 characters, no control characters)\n",
        "  admin.token = (not shown)  (sensitive; 16..512 visible ASCII characters, or null)\n",
        "  bidders[].max_concurrent = 100  (integer 1..100000)\n",
        "  bidders[].budget = null  (",
        "  bidders[].budget.daily  (required; amount 0.000001..1000000, at most 6 decimals)\n",
        "  bidders[].budget.pacing = \"asap\"  (asap | even)\n",
        "  admin.listen = \"127.0.0.1:8080\"  (\"host:port\", or null)\n",
        "  admin.allowed_hosts = []  (array of at most 16 host names or addresses, 1..255 "
        "characters each)\n",
        "  alerts[].metric  (required; bidder_timeout_rate | bidder_error_rate | "
        "auction_timeout_rate | no_bid_rate | p99_latency_ms | ctr | cvr | cpc | spend_rate | "
        "win_rate)\n",
        "  alerts[].window_s = 10  (integer 1..600)\n",
        "  log.level = \"info\"  (debug | info | warn | error)\n",
        "  limits.max_pending_notices = 100000  (integer 0..10000000)\n",
        "  redis.timeout_ms = 1000  (integer 10..60000)\n",
        "  limits.max_pending_redis = 100000  (integer 1..10000000)\n",
        "  limits.max_pending_result_bytes = 268435456  (integer 1024..68719476736)\n",
        "  stats.ad_ttl_s = 604800  (integer 1..31536000)\n",
        "  health.min_share = 0.05  (number, more than 0 and at most 1)\n",
    };
    proto_buf out;
    proto_buf_init(&out);
    ck_assert_int_eq(proto_config_print_keys(&out), 0);
    const char *text = out.data;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        ck_assert_msg(strstr(text, lines[i]) != NULL, "missing: %s\nin:\n%s", lines[i], text);
    /* Every key of the SPEC document has a line. */
    cJSON *spec = cJSON_Parse(spec_json);
    for (const cJSON *section = spec->child; section != NULL; section = section->next) {
        char want[128];
        if (!cJSON_IsObject(section)) {
            snprintf(want, sizeof want, "  %s = ", section->string);
            ck_assert_msg(strstr(text, want) != NULL, "no line for %s", section->string);
            continue;
        }
        for (const cJSON *key = section->child; key != NULL; key = key->next) {
            snprintf(want, sizeof want, "  %s.%s = ", section->string, key->string);
            ck_assert_msg(strstr(text, want) != NULL, "no line for %s", want);
        }
    }
    cJSON_Delete(spec);
    proto_buf_free(&out);
}
END_TEST

/* The secrets' lines in --help show no value: not even their default. */
START_TEST(print_keys_hides_secrets) {
    static const char *const secrets[] = {"mqtt.password", "redis.password", "admin.token"};
    proto_buf out;
    proto_buf_init(&out);
    ck_assert_int_eq(proto_config_print_keys(&out), 0);
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "\n  %s = (not shown)  (sensitive; ", secrets[i]);
        ck_assert_msg(strstr(out.data, want) != NULL, "no hidden line for %s in:\n%s", secrets[i],
                      out.data);
    }
    /* Every line about a password is such a line. */
    for (const char *p = out.data; (p = strstr(p, "password")) != NULL; p++) {
        const char *eol = strchr(p, '\n');
        const char *shown = strstr(p, " = (not shown)  (sensitive; ");
        ck_assert_msg(shown != NULL && eol != NULL && shown < eol, "a password line shows: %.80s",
                      p);
    }
    proto_buf_free(&out);
}
END_TEST

/* ---- Files -------------------------------------------------------------- */

START_TEST(exchange_json_is_spec_7) {
    char buf[4096];
    const char *path = exchange_json_path(buf, sizeof buf);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char text[65536];
    size_t n = fread(text, 1, sizeof text, f);
    fclose(f);
    cJSON *file = cJSON_ParseWithLength(text, n);
    cJSON *spec = cJSON_Parse(spec_json);
    ck_assert_ptr_nonnull(file);
    ck_assert(cJSON_Compare(file, spec, 1));
    cJSON_Delete(file);
    cJSON_Delete(spec);
}
END_TEST

START_TEST(load_exchange_json) {
    char buf[4096], err[ERRLEN] = "";
    const char *path = exchange_json_path(buf, sizeof buf);
    proto_config c, d;
    defaults(&c);
    defaults(&d);
    ck_assert_msg(rtb_conffile_load(&c, path, err, sizeof err) == PROTO_OK, "%s", err);
    ck_assert_uint_eq(c.nbidders, 1);
    ck_assert_str_eq(c.bidders[0].id, "adv-1");
    ck_assert_str_eq(c.bidders[0].endpoint, "http://127.0.0.1:9001/bid");
    ck_assert_uint_eq(c.bidders[0].ninterests, 1);
    ck_assert_str_eq(c.bidders[0].interests[0], "tech");
    ck_assert_int_eq(c.bidders[0].max_concurrent, 100);
    static const char adv1[] = "[{\"id\":\"adv-1\",\"endpoint\":\"http://127.0.0.1:9001/bid\","
                               "\"interests\":[\"tech\"]}]";
    ck_assert_int_eq(proto_config_set(&d, "bidders", adv1, err, sizeof err), PROTO_OK);
    assert_config_eq(&c, &d);
    proto_config_free(&c);
    proto_config_free(&d);
}
END_TEST

START_TEST(partial_file_keeps_defaults) {
    static const char doc[] = "{\"auction\":{\"tmax_ms\":50},\n \"log\":{\"level\":\"debug\"}}\n";
    char path[64], err[ERRLEN] = "";
    temp_file(path, sizeof path, doc, strlen(doc));
    proto_config c, d;
    defaults(&c);
    defaults(&d);
    ck_assert_msg(rtb_conffile_load(&c, path, err, sizeof err) == PROTO_OK, "%s", err);
    unlink(path);
    ck_assert_int_eq(c.auction.tmax_ms, 50);
    ck_assert_int_eq(c.log.level, PROTO_LOG_DEBUG);
    d.auction.tmax_ms = 50;
    d.log.level = PROTO_LOG_DEBUG;
    assert_config_eq(&c, &d);
    proto_config_free(&c);
    proto_config_free(&d);
}
END_TEST

/* Sections merge key by key across documents; lists are replaced whole. */
START_TEST(documents_layer) {
    proto_config c;
    defaults(&c);
    parse_ok(&c, "{\"auction\":{\"tmax_ms\":50},\"bidders\":[{\"id\":\"a\",\"endpoint\":"
                 "\"http://a/\"},{\"id\":\"b\",\"endpoint\":\"http://b/\"}]}");
    parse_ok(&c, "{\"auction\":{\"currency\":\"EUR\"},\"bidders\":[{\"id\":\"c\","
                 "\"endpoint\":\"http://c/\",\"interests\":[\"x\",\"y\"],\"max_concurrent\":7}]}");
    ck_assert_int_eq(c.auction.tmax_ms, 50);
    ck_assert_str_eq(c.auction.currency, "EUR");
    ck_assert_uint_eq(c.nbidders, 1);
    ck_assert_str_eq(c.bidders[0].id, "c");
    ck_assert_uint_eq(c.bidders[0].ninterests, 2);
    ck_assert_str_eq(c.bidders[0].interests[1], "y");
    ck_assert_int_eq(c.bidders[0].max_concurrent, 7);
    parse_ok(&c, "{\"alerts\":[]}");
    ck_assert_uint_eq(c.nalerts, 0);
    ck_assert_ptr_null(c.alerts);
    parse_ok(&c, "{}");
    ck_assert_int_eq(c.auction.tmax_ms, 50);
    proto_config_free(&c);
}
END_TEST

/* rtb/conffile.c: every message starts with the file's path. */
START_TEST(load_file_errors) {
    char err[ERRLEN] = "", want[ERRLEN];
    proto_config c, d;
    defaults(&c);
    defaults(&d);
    ck_assert_int_eq(rtb_conffile_load(&c, "/nonexistent/exchange.json", err, sizeof err),
                     PROTO_ERR_IO);
    ck_assert_str_eq(err, "/nonexistent/exchange.json: cannot read it: No such file or directory");
    ck_assert_int_eq(rtb_conffile_load(&c, "/tmp", err, sizeof err), PROTO_ERR_IO);
    ck_assert_str_eq(err, "/tmp: cannot read it: Is a directory");

    /* Over 1 MiB: refused unparsed, even though it is valid JSON. */
    size_t big = PROTO_CONFIG_MAX_BYTES + 1;
    char *doc = repeat(' ', big);
    doc[0] = '{';
    doc[big - 1] = '}';
    char path[64];
    temp_file(path, sizeof path, doc, big);
    ck_assert_int_eq(rtb_conffile_load(&c, path, err, sizeof err), PROTO_ERR_TOO_LARGE);
    snprintf(want, sizeof want, "%s: larger than 1048576 bytes", path);
    ck_assert_str_eq(err, want);
    unlink(path);
    /* Exactly 1 MiB is fine. */
    doc[1] = '{';
    temp_file(path, sizeof path, doc + 1, big - 1);
    ck_assert_msg(rtb_conffile_load(&c, path, err, sizeof err) == PROTO_OK, "%s", err);
    unlink(path);
    free(doc);

    temp_file(path, sizeof path, "{\"auction\":{\"tmax_ms\":0}}", 25);
    ck_assert_int_eq(rtb_conffile_load(&c, path, err, sizeof err), PROTO_ERR_FIELD);
    snprintf(want, sizeof want, "%s: auction.tmax_ms: expected an integer between 1 and 10000",
             path);
    ck_assert_str_eq(err, want);
    unlink(path);

    /* A NUL byte in the file is proto's to refuse: the bytes go with their
     * length, not as a C string cut at the NUL. */
    temp_file(path, sizeof path, "{}\0{\"x\":1}", 10);
    ck_assert_int_eq(rtb_conffile_load(&c, path, err, sizeof err), PROTO_ERR_NOT_JSON);
    snprintf(want, sizeof want, "%s: config: NUL byte at byte 2", path);
    ck_assert_str_eq(err, want);
    unlink(path);
    assert_config_eq(&c, &d);
    proto_config_free(&c);
    proto_config_free(&d);
}
END_TEST

/* ---- Every key -------------------------------------------------------- */

START_TEST(every_key_accepted) {
    static const char doc[] =
        "{\"mqtt\":{\"host\":\"broker.example\",\"port\":8883,\"client_id\":\"ex-\u00e9\u20ac\","
        "\"topic\":\"bids/+\",\"qos\":0,\"shared_group\":\"g1\",\"username\":\"u\","
        "\"password\":\"\",\"tls\":{\"cafile\":\"/ca.pem\",\"certfile\":\"/c.pem\","
        "\"keyfile\":\"/k.pem\"}},"
        "\"redis\":{\"host\":\"::1\",\"port\":1,\"username\":\"ru\",\"password\":\"rp\","
        "\"timeout_ms\":60000},"
        "\"auction\":{\"type\":\"first_price\",\"tmax_ms\":1e2,\"max_bidders\":100,"
        "\"price_increment\":1000000,\"currency\":\"EUR\"},"
        "\"profiles\":{\"ttl_s\":31536000,\"default\":{\"interests\":[\"news\"],"
        "\"ltv_score\":1,\"demographics\":{\"age\":[18,24],\"geo\":{\"cc\":\"FR\"}}}},"
        "\"registry\":{\"refresh_s\":86400},"
        "\"bidders\":[{\"id\":\"A.b:c-d_0\",\"endpoint\":\"https://[::1]:9443/bid?x=1\"}],"
        "\"limits\":{\"max_request_bytes\":64,\"max_response_bytes\":16777216,"
        "\"max_inflight\":1000000,\"max_pending_results\":0,\"max_pending_notices\":10000000,"
        "\"max_pending_redis\":1,\"max_pending_result_bytes\":68719476736},"
        "\"admin\":{\"listen\":null,\"allowed_hosts\":[\"dash.example\",\"10.0.0.5\",\"::1\"]},"
        "\"alerts\":[{\"name\":\"a\",\"metric\":\"p99_latency_ms\",\"above\":-1.5,"
        "\"window_s\":600}],"
        "\"log\":{\"level\":\"error\"},"
        "\"stats\":{\"ad_ttl_s\":1}}";
    proto_config c;
    defaults(&c);
    parse_ok(&c, doc);
    ck_assert_str_eq(c.mqtt.host, "broker.example");
    ck_assert_int_eq(c.mqtt.port, 8883);
    ck_assert_str_eq(c.mqtt.client_id, "ex-\u00e9\u20ac");
    ck_assert_str_eq(c.mqtt.topic, "bids/+");
    ck_assert_int_eq(c.mqtt.qos, 0);
    ck_assert_str_eq(c.mqtt.shared_group, "g1");
    ck_assert_str_eq(c.mqtt.username, "u");
    ck_assert_str_eq(c.mqtt.password, "");
    ck_assert_int_eq(c.mqtt.tls, 1);
    ck_assert_str_eq(c.mqtt.tls_cafile, "/ca.pem");
    ck_assert_str_eq(c.mqtt.tls_certfile, "/c.pem");
    ck_assert_str_eq(c.mqtt.tls_keyfile, "/k.pem");
    ck_assert_str_eq(c.redis.host, "::1");
    ck_assert_int_eq(c.redis.port, 1);
    ck_assert_str_eq(c.redis.username, "ru");
    ck_assert_str_eq(c.redis.password, "rp");
    ck_assert_int_eq(c.redis.timeout_ms, 60000);
    ck_assert_int_eq(c.auction.type, AUCTION_FIRST_PRICE);
    ck_assert_int_eq(c.auction.tmax_ms, 100);
    ck_assert_int_eq(c.auction.max_bidders, 100);
    ck_assert_int_eq(c.auction.price_increment_micros, AUCTION_PRICE_MAX_MICROS);
    ck_assert_str_eq(c.auction.currency, "EUR");
    ck_assert_int_eq(c.profiles.ttl_s, 31536000);
    const cJSON *geo = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(c.profiles.default_profile, "demographics"), "geo");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(geo, "cc")->valuestring, "FR");
    ck_assert_ptr_null(c.profiles.default_profile->string);
    ck_assert_int_eq(c.registry.refresh_s, 86400);
    ck_assert_uint_eq(c.nbidders, 1);
    ck_assert_str_eq(c.bidders[0].id, "A.b:c-d_0");
    ck_assert_str_eq(c.bidders[0].endpoint, "https://[::1]:9443/bid?x=1");
    ck_assert_uint_eq(c.bidders[0].ninterests, 0);
    ck_assert_int_eq(c.bidders[0].max_concurrent, 100);
    ck_assert_int_eq(c.limits.max_request_bytes, 64);
    ck_assert_int_eq(c.limits.max_response_bytes, 16777216);
    ck_assert_int_eq(c.limits.max_inflight, 1000000);
    ck_assert_int_eq(c.limits.max_pending_results, 0);
    ck_assert_int_eq(c.limits.max_pending_notices, 10000000);
    ck_assert_int_eq(c.limits.max_pending_redis, 1);
    ck_assert_int_eq(c.limits.max_pending_result_bytes, 68719476736L);
    ck_assert_ptr_null(c.admin.listen);
    ck_assert_uint_eq(c.admin.nallowed_hosts, 3);
    ck_assert_str_eq(c.admin.allowed_hosts[0], "dash.example");
    ck_assert_str_eq(c.admin.allowed_hosts[1], "10.0.0.5");
    ck_assert_str_eq(c.admin.allowed_hosts[2], "::1");
    ck_assert_uint_eq(c.nalerts, 1);
    ck_assert_int_eq(c.alerts[0].metric, PROTO_ALERT_P99_LATENCY_MS);
    ck_assert(c.alerts[0].above == -1.5);
    ck_assert_int_eq(c.alerts[0].window_s, PROTO_ALERT_WINDOW_MAX_S);
    ck_assert_int_eq(c.log.level, PROTO_LOG_ERROR);
    ck_assert_int_eq(c.stats.ad_ttl_s, 1);

    /* And back: tls null clears the three files, nullables take null. */
    parse_ok(&c, "{\"mqtt\":{\"tls\":null,\"shared_group\":null,\"password\":null},"
                 "\"admin\":{\"listen\":\"[::1]:8080\"}}");
    ck_assert_int_eq(c.mqtt.tls, 0);
    ck_assert_ptr_null(c.mqtt.tls_cafile);
    ck_assert_ptr_null(c.mqtt.tls_certfile);
    ck_assert_ptr_null(c.mqtt.tls_keyfile);
    ck_assert_ptr_null(c.mqtt.shared_group);
    ck_assert_ptr_null(c.mqtt.password);
    ck_assert_str_eq(c.admin.listen, "[::1]:8080");
    proto_config_free(&c);
}
END_TEST

static const char *const good_endpoints[] = {
    "http://127.0.0.1:9001/bid",
    "https://bidder.example/openrtb?x=1#f",
    "HTTP://H",
    "http://[::1]:9001/bid",
    "http://h:65535",
    "https://h.example:1/",
    "http://h?q",
};

START_TEST(good_endpoint) {
    char doc[256];
    proto_config c;
    defaults(&c);
    snprintf(doc, sizeof doc, "{\"bidders\":[{\"id\":\"a\",\"endpoint\":\"%s\"}]}",
             good_endpoints[_i]);
    parse_ok(&c, doc);
    ck_assert_str_eq(c.bidders[0].endpoint, good_endpoints[_i]);
    proto_config_free(&c);
}
END_TEST

static const char *const good_money[][2] = {
    {"0", "0"},          {"0.000001", "1"},
    {"2.11", "2110000"}, {"1000000", "1000000000000"},
    {"0.1", "100000"},   {"999999.999999", "999999999999"},
};

START_TEST(price_increment_exact) {
    char doc[128];
    proto_config c;
    defaults(&c);
    snprintf(doc, sizeof doc, "{\"auction\":{\"price_increment\":%s}}", good_money[_i][0]);
    parse_ok(&c, doc);
    ck_assert_int_eq(c.auction.price_increment_micros, strtoll(good_money[_i][1], NULL, 10));
    proto_config_free(&c);
}
END_TEST

/* ---- Refused documents -------------------------------------------------- */

typedef struct bad_case {
    const char *json;
    proto_err code;
    const char *message; /* exact; ending in '*': a prefix */
} bad_case;

#define FIELD PROTO_ERR_FIELD
#define E_PORT "mqtt.port: expected an integer between 1 and 65535"
#define E_TMAX "auction.tmax_ms: expected an integer between 1 and 10000"
#define E_MONEY                                                                                    \
    "auction.price_increment: expected a number between 0 and 1000000 with at most 6 decimals"
#define E_CUR "auction.currency: expected 3 uppercase letters (an ISO 4217 code)"
#define E_TYPE "auction.type: expected one of \"second_price\", \"first_price\""
#define E_LEVEL "log.level: expected one of \"debug\", \"info\", \"warn\", \"error\""
#define E_METRIC                                                                                   \
    "alerts[0].metric: expected one of \"bidder_timeout_rate\", \"bidder_error_rate\", "           \
    "\"auction_timeout_rate\", \"no_bid_rate\", \"p99_latency_ms\", \"ctr\", \"cvr\", \"cpc\", "   \
    "\"spend_rate\", \"win_rate\""
#define E_WINDOW "alerts[0].window_s: expected an integer between 1 and 600"
#define E_ABOVE "alerts[0].above: expected a finite number or null"
#define E_THRESHOLD "alerts[0].threshold: expected a finite number or null"
#define E_NO_THRESHOLD "alerts[0].threshold: required"
#define E_PASSWORD "mqtt.password: set mqtt.username too (no password is sent without a user name)"
#define E_LISTEN "admin.listen: expected \"host:port\" or null"
#define E_HOSTS "admin.allowed_hosts: expected an array of strings of 1 to 255 characters"
#define E_HOST0 "admin.allowed_hosts[0]: expected a host name or address of 1 to 255 characters"
#define HOSTS(v) "{\"admin\":{\"allowed_hosts\":" v "}}"
#define E_URL "bidders[0].endpoint: must be an http:// or https:// URL with a host"
#define E_ID "bidders[0].id: expected 1 to 128 characters of [A-Za-z0-9._:-]"
#define E_TLS "mqtt.tls: expected null or an object {\"cafile\", \"certfile\", \"keyfile\"}"
#define E_PROFILE                                                                                  \
    "profiles.default: expected an object with optional interests, ltv_score, demographics"
#define E_LTV "profiles.default.ltv_score: expected a number between 0 and 1"
#define E_NOT_JSON "config: not valid JSON near byte *"
#define BID(fields) "{\"bidders\":[{" fields "}]}"
#define BUDGET(v) BID("\"id\":\"a\",\"endpoint\":\"http://h/\",\"budget\":" v)
#define E_BUDGET "bidders[0].budget: expected null or an object {\"daily\", \"pacing\"}"
#define E_DAILY                                                                                    \
    "bidders[0].budget.daily: expected a number between 0.000001 and 1000000 with at most 6 "      \
    "decimals"
#define E_PACING "bidders[0].budget.pacing: expected one of \"asap\", \"even\""
#define URL(u) BID("\"id\":\"a\",\"endpoint\":" u)
#define ALERT(fields) "{\"alerts\":[{" fields "}]}"
#define TLS(v) "{\"mqtt\":{\"tls\":" v "}}"
#define PROFILE(v) "{\"profiles\":{\"default\":" v "}}"

static const bad_case bad_cases[] = {
    /* unknown keys, at every level */
    {"{\"auction\":{\"tmaxms\":5}}", FIELD, "auction.tmaxms: unknown key"},
    {"{\"foo\":1}", FIELD, "foo: unknown key"},
    {"{\"mqtt\":{\"port\":1883},\"bidderz\":[]}", FIELD, "bidderz: unknown key"},
    {TLS("{\"cafile\":\"/ca.pem\",\"ca\":1}"), FIELD, "mqtt.tls.ca: unknown key"},
    {BID("\"id\":\"a\",\"endpoint\":\"http://h/\",\"bid\":1"), FIELD,
     "bidders[0].bid: unknown key"},
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"above\":1,\"windows\":5"), FIELD,
     "alerts[0].windows: unknown key"},
    {PROFILE("{\"interest\":[]}"), FIELD, "profiles.default.interest: unknown key"},
    {PROFILE("{\"user_id\":\"u\"}"), FIELD, "profiles.default.user_id: unknown key"},
    {"{\"mqtt.port\":1883}", FIELD, "mqtt.port: unknown key"},
    {"{\"Mqtt\":{\"port\":1}}", FIELD, "Mqtt: unknown key"},
    {"{\"mqtt\":{\"Port\":1}}", FIELD, "mqtt.Port: unknown key"},
    {"{\"\":1}", FIELD, ": unknown key"},
    {"{\"mqtt\":{\"\":1}}", FIELD, "mqtt.: unknown key"},
    {"{\"auction\":{\"tmax_ms\":{\"x\":1}}}", FIELD, E_TMAX},
    {"{\"log\":{\"level\":\"info\",\"level\":\"debug\"}}", FIELD, "log.level: duplicate key"},
    {"{\"log\":{},\"log\":{}}", FIELD, "log: duplicate key"},
    {PROFILE("{\"ltv_score\":0.1,\"ltv_score\":0.2}"), FIELD,
     "profiles.default.ltv_score: duplicate key"},
    /* sections */
    {"{\"mqtt\":5}", FIELD, "mqtt: expected an object"},
    {"{\"mqtt\":null}", FIELD, "mqtt: expected an object"},
    {"{\"limits\":[]}", FIELD, "limits: expected an object"},
    /* integers: type, both ends, integral */
    {"{\"mqtt\":{\"port\":\"1883\"}}", FIELD, E_PORT},
    {"{\"mqtt\":{\"port\":0}}", FIELD, E_PORT},
    {"{\"mqtt\":{\"port\":65536}}", FIELD, E_PORT},
    {"{\"mqtt\":{\"port\":-1}}", FIELD, E_PORT},
    {"{\"mqtt\":{\"port\":1883.5}}", FIELD, E_PORT},
    {"{\"mqtt\":{\"port\":true}}", FIELD, E_PORT},
    {"{\"mqtt\":{\"port\":null}}", FIELD, E_PORT},
    {"{\"mqtt\":{\"port\":1e400}}", FIELD, E_PORT},
    {"{\"mqtt\":{\"port\":[1883]}}", FIELD, E_PORT},
    {"{\"auction\":{\"tmax_ms\":0}}", FIELD, E_TMAX},
    {"{\"auction\":{\"tmax_ms\":10001}}", FIELD, E_TMAX},
    {"{\"auction\":{\"tmax_ms\":50.5}}", FIELD, E_TMAX},
    {"{\"auction\":{\"tmax_ms\":\"100\"}}", FIELD, E_TMAX},
    {"{\"auction\":{\"tmax_ms\":1e19}}", FIELD, E_TMAX},
    {"{\"mqtt\":{\"qos\":-1}}", FIELD, "mqtt.qos: expected an integer between 0 and 1"},
    {"{\"mqtt\":{\"qos\":2}}", FIELD, "mqtt.qos: expected an integer between 0 and 1"},
    {"{\"redis\":{\"port\":0}}", FIELD, "redis.port: expected an integer between 1 and 65535"},
    {"{\"redis\":{\"port\":65536}}", FIELD, "redis.port: expected an integer between 1 and 65535"},
    {"{\"auction\":{\"max_bidders\":0}}", FIELD,
     "auction.max_bidders: expected an integer between 1 and 100"},
    {"{\"auction\":{\"max_bidders\":101}}", FIELD,
     "auction.max_bidders: expected an integer between 1 and 100"},
    {"{\"profiles\":{\"ttl_s\":0}}", FIELD,
     "profiles.ttl_s: expected an integer between 1 and 31536000"},
    {"{\"profiles\":{\"ttl_s\":31536001}}", FIELD,
     "profiles.ttl_s: expected an integer between 1 and 31536000"},
    {"{\"registry\":{\"refresh_s\":0}}", FIELD,
     "registry.refresh_s: expected an integer between 1 and 86400"},
    {"{\"registry\":{\"refresh_s\":86401}}", FIELD,
     "registry.refresh_s: expected an integer between 1 and 86400"},
    {"{\"limits\":{\"max_request_bytes\":63}}", FIELD,
     "limits.max_request_bytes: expected an integer between 64 and 16777216"},
    {"{\"limits\":{\"max_request_bytes\":16777217}}", FIELD,
     "limits.max_request_bytes: expected an integer between 64 and 16777216"},
    {"{\"limits\":{\"max_response_bytes\":63}}", FIELD,
     "limits.max_response_bytes: expected an integer between 64 and 16777216"},
    {"{\"limits\":{\"max_response_bytes\":16777217}}", FIELD,
     "limits.max_response_bytes: expected an integer between 64 and 16777216"},
    {"{\"limits\":{\"max_inflight\":0}}", FIELD,
     "limits.max_inflight: expected an integer between 1 and 1000000"},
    {"{\"limits\":{\"max_inflight\":1000001}}", FIELD,
     "limits.max_inflight: expected an integer between 1 and 1000000"},
    {"{\"limits\":{\"max_pending_results\":-1}}", FIELD,
     "limits.max_pending_results: expected an integer between 0 and 10000000"},
    {"{\"limits\":{\"max_pending_results\":10000001}}", FIELD,
     "limits.max_pending_results: expected an integer between 0 and 10000000"},
    {"{\"limits\":{\"max_pending_notices\":-1}}", FIELD,
     "limits.max_pending_notices: expected an integer between 0 and 10000000"},
    {"{\"limits\":{\"max_pending_notices\":10000001}}", FIELD,
     "limits.max_pending_notices: expected an integer between 0 and 10000000"},
    /* SPEC 15: every wait on Redis and every queue has an end */
    {"{\"redis\":{\"timeout_ms\":9}}", FIELD,
     "redis.timeout_ms: expected an integer between 10 and 60000"},
    {"{\"redis\":{\"timeout_ms\":60001}}", FIELD,
     "redis.timeout_ms: expected an integer between 10 and 60000"},
    {"{\"redis\":{\"timeout_ms\":null}}", FIELD,
     "redis.timeout_ms: expected an integer between 10 and 60000"},
    {"{\"limits\":{\"max_pending_redis\":0}}", FIELD,
     "limits.max_pending_redis: expected an integer between 1 and 10000000"},
    {"{\"limits\":{\"max_pending_redis\":10000001}}", FIELD,
     "limits.max_pending_redis: expected an integer between 1 and 10000000"},
    {"{\"limits\":{\"max_pending_result_bytes\":1023}}", FIELD,
     "limits.max_pending_result_bytes: expected an integer between 1024 and 68719476736"},
    {"{\"limits\":{\"max_pending_result_bytes\":68719476737}}", FIELD,
     "limits.max_pending_result_bytes: expected an integer between 1024 and 68719476736"},
    {"{\"limits\":{\"max_pending_result_bytes\":\"256MiB\"}}", FIELD,
     "limits.max_pending_result_bytes: expected an integer between 1024 and 68719476736"},
    {"{\"stats\":{\"ad_ttl_s\":0}}", FIELD,
     "stats.ad_ttl_s: expected an integer between 1 and 31536000"},
    {"{\"stats\":{\"ad_ttl_s\":31536001}}", FIELD,
     "stats.ad_ttl_s: expected an integer between 1 and 31536000"},
    {"{\"stats\":{\"ad_ttl\":60}}", FIELD, "stats.ad_ttl: unknown key"},
    {"{\"stats\":5}", FIELD, "stats: expected an object"},
    /* money */
    {"{\"auction\":{\"price_increment\":-0.01}}", FIELD, E_MONEY},
    {"{\"auction\":{\"price_increment\":1000000.000001}}", FIELD, E_MONEY},
    {"{\"auction\":{\"price_increment\":0.0000001}}", FIELD, E_MONEY},
    {"{\"auction\":{\"price_increment\":0.0100001}}", FIELD, E_MONEY},
    {"{\"auction\":{\"price_increment\":\"0.01\"}}", FIELD, E_MONEY},
    {"{\"auction\":{\"price_increment\":null}}", FIELD, E_MONEY},
    {"{\"auction\":{\"price_increment\":1e400}}", FIELD, E_MONEY},
    /* enums and formats */
    {"{\"auction\":{\"currency\":\"usd\"}}", FIELD, E_CUR},
    {"{\"auction\":{\"currency\":\"US\"}}", FIELD, E_CUR},
    {"{\"auction\":{\"currency\":\"USDX\"}}", FIELD, E_CUR},
    {"{\"auction\":{\"currency\":\"U$D\"}}", FIELD, E_CUR},
    {"{\"auction\":{\"currency\":840}}", FIELD, E_CUR},
    /* a word that is none of the names is echoed: the typo shows */
    {"{\"auction\":{\"type\":\"vickrey\"}}", FIELD, E_TYPE ", not \"vickrey\""},
    {"{\"auction\":{\"type\":\"Second_price\"}}", FIELD, E_TYPE ", not \"Second_price\""},
    {"{\"auction\":{\"type\":2}}", FIELD, E_TYPE},
    {"{\"log\":{\"level\":\"trace\"}}", FIELD, E_LEVEL ", not \"trace\""},
    {"{\"log\":{\"level\":\"INFO\"}}", FIELD, E_LEVEL ", not \"INFO\""},
    {"{\"log\":{\"level\":null}}", FIELD, E_LEVEL},
    {"{\"admin\":{\"listen\":\"localhost\"}}", FIELD, E_LISTEN},
    {"{\"admin\":{\"listen\":\":80\"}}", FIELD, E_LISTEN},
    {"{\"admin\":{\"listen\":\"h:0\"}}", FIELD, E_LISTEN},
    {"{\"admin\":{\"listen\":\"h:65536\"}}", FIELD, E_LISTEN},
    {"{\"admin\":{\"listen\":\"h:\"}}", FIELD, E_LISTEN},
    {"{\"admin\":{\"listen\":\"h:8o\"}}", FIELD, E_LISTEN},
    {"{\"admin\":{\"listen\":\"[::1]\"}}", FIELD, E_LISTEN},
    {"{\"admin\":{\"listen\":\"a b:80\"}}", FIELD, E_LISTEN},
    {"{\"admin\":{\"listen\":8080}}", FIELD, E_LISTEN},
    {HOSTS("\"localhost\""), FIELD, E_HOSTS},
    {HOSTS("null"), FIELD, E_HOSTS},
    {HOSTS("{}"), FIELD, E_HOSTS},
    {HOSTS("[\"\"]"), FIELD, "admin.allowed_hosts[0]: expected a string of 1 to 255 characters"},
    {HOSTS("[\"a\",5]"), FIELD, "admin.allowed_hosts[1]: expected a string of 1 to 255 characters"},
    {HOSTS("[\"a b\"]"), FIELD, E_HOST0},
    {HOSTS("[\"[::1]\"]"), FIELD, E_HOST0},
    {HOSTS("[\"dash.example/x\"]"), FIELD, E_HOST0},
    {HOSTS("[\"user@dash.example\"]"), FIELD, E_HOST0},
    {HOSTS("[\"ok.example\",\"tab\\there\"]"), FIELD,
     "admin.allowed_hosts[1]: expected a host name or address of 1 to 255 characters"},
    {"{\"mqtt\":{\"client_id\":\"\"}}", FIELD,
     "mqtt.client_id: expected a string of 1 to 128 characters"},
    {"{\"mqtt\":{\"client_id\":null}}", FIELD,
     "mqtt.client_id: expected a string of 1 to 128 characters"},
    {"{\"mqtt\":{\"topic\":\"\"}}", FIELD, "mqtt.topic: expected a string of 1 to 4096 characters"},
    {"{\"mqtt\":{\"host\":\"\"}}", FIELD,
     "mqtt.host: expected a host name or address of 1 to 255 characters"},
    {"{\"mqtt\":{\"host\":\"a b\"}}", FIELD,
     "mqtt.host: expected a host name or address of 1 to 255 characters"},
    {"{\"redis\":{\"host\":5}}", FIELD,
     "redis.host: expected a host name or address of 1 to 255 characters"},
    {"{\"mqtt\":{\"shared_group\":\"a/b\"}}", FIELD,
     "mqtt.shared_group: expected a string of 1 to 128 characters without '/', '+' or '#' or "
     "null"},
    {"{\"mqtt\":{\"shared_group\":\"\"}}", FIELD,
     "mqtt.shared_group: expected a string of 1 to 128 characters without '/', '+' or '#' or "
     "null"},
    {"{\"mqtt\":{\"username\":5}}", FIELD,
     "mqtt.username: expected a string of 1 to 1024 characters or null"},
    {"{\"redis\":{\"password\":false}}", FIELD,
     "redis.password: expected a string of 0 to 1024 characters or null"},
    /* a password goes with a user name, whatever the order of the keys */
    {"{\"mqtt\":{\"password\":\"pw\"}}", FIELD, E_PASSWORD},
    {"{\"mqtt\":{\"password\":\"\"}}", FIELD, E_PASSWORD},
    {"{\"mqtt\":{\"password\":\"pw\",\"username\":null}}", FIELD, E_PASSWORD},
    /* bidders */
    {"{\"bidders\":{}}", FIELD, "bidders: expected an array of bidder objects"},
    {"{\"bidders\":null}", FIELD, "bidders: expected an array of bidder objects"},
    {"{\"bidders\":[5]}", FIELD, "bidders[0]: expected an object"},
    {URL("\"ftp://h/bid\""), FIELD, E_URL},
    {URL("\"http://\""), FIELD, E_URL},
    {URL("\"http:///bid\""), FIELD, E_URL},
    {URL("\"https://\""), FIELD, E_URL},
    {URL("\"http://h:0/\""), FIELD, E_URL},
    {URL("\"http://h:/\""), FIELD, E_URL},
    {URL("\"http:// h/\""), FIELD, E_URL},
    {URL("\"http://h/a b\""), FIELD, E_URL},
    {URL("\"http://u:p@h/\""), FIELD, E_URL},
    {URL("\"h/bid\""), FIELD, E_URL},
    {URL("\"\""), FIELD, E_URL},
    {URL("5"), FIELD, E_URL},
    {URL("null"), FIELD, E_URL},
    {URL("[\"http://h/\"]"), FIELD, E_URL},
    {BID("\"id\":\"a\""), FIELD, "bidders[0].endpoint: required"},
    {BID("\"endpoint\":\"http://h/\""), FIELD, "bidders[0].id: required"},
    {BID("\"id\":\"a b\",\"endpoint\":\"http://h/\""), FIELD, E_ID},
    {BID("\"id\":\"\",\"endpoint\":\"http://h/\""), FIELD, E_ID},
    {BID("\"id\":5,\"endpoint\":\"http://h/\""), FIELD, E_ID},
    {BID("\"id\":\"caf\u00e9\",\"endpoint\":\"http://h/\""), FIELD, E_ID},
    {"{\"bidders\":[{\"id\":\"adv-1\",\"endpoint\":\"http://a/\"},{\"id\":\"adv-2\","
     "\"endpoint\":\"http://b/\"},{\"id\":\"adv-1\",\"endpoint\":\"http://c/\"}]}",
     FIELD, "bidders[2].id: duplicate bidder id \"adv-1\""},
    {"{\"bidders\":[{\"id\":\"a\",\"endpoint\":\"http://a/\"},{\"id\":\"b\","
     "\"endpoint\":\"ftp://b/\"}]}",
     FIELD, "bidders[1].endpoint: must be an http:// or https:// URL with a host"},
    {BID("\"id\":\"a\",\"endpoint\":\"http://h/\",\"interests\":\"tech\""), FIELD,
     "bidders[0].interests: expected an array of strings of 1 to 128 characters"},
    {BID("\"id\":\"a\",\"endpoint\":\"http://h/\",\"interests\":[\"tech\",1]"), FIELD,
     "bidders[0].interests[1]: expected a string of 1 to 128 characters"},
    {BID("\"id\":\"a\",\"endpoint\":\"http://h/\",\"interests\":[\"\"]"), FIELD,
     "bidders[0].interests[0]: expected a string of 1 to 128 characters"},
    {BID("\"id\":\"a\",\"endpoint\":\"http://h/\",\"max_concurrent\":0"), FIELD,
     "bidders[0].max_concurrent: expected an integer between 1 and 100000"},
    {BID("\"id\":\"a\",\"endpoint\":\"http://h/\",\"max_concurrent\":100001"), FIELD,
     "bidders[0].max_concurrent: expected an integer between 1 and 100000"},
    {BID("\"id\":\"a\",\"endpoint\":\"http://h/\",\"id\":\"b\""), FIELD,
     "bidders[0].id: duplicate key"},
    /* budget (SPEC 16): an amount > 0 exact to the micro, a pacing, or null */
    {BUDGET("5"), FIELD, E_BUDGET},
    {BUDGET("250"), FIELD, E_BUDGET},
    {BUDGET("[]"), FIELD, E_BUDGET},
    {BUDGET("\"asap\""), FIELD, E_BUDGET},
    {BUDGET("{}"), FIELD, "bidders[0].budget.daily: required"},
    {BUDGET("{\"pacing\":\"even\"}"), FIELD, "bidders[0].budget.daily: required"},
    {BUDGET("{\"daily\":0}"), FIELD, E_DAILY},
    {BUDGET("{\"daily\":-1}"), FIELD, E_DAILY},
    {BUDGET("{\"daily\":0.0000001}"), FIELD, E_DAILY},
    {BUDGET("{\"daily\":2.0000001}"), FIELD, E_DAILY},
    {BUDGET("{\"daily\":1000000.000001}"), FIELD, E_DAILY},
    {BUDGET("{\"daily\":1e400}"), FIELD, E_DAILY},
    {BUDGET("{\"daily\":\"250\"}"), FIELD, E_DAILY},
    {BUDGET("{\"daily\":null}"), FIELD, E_DAILY},
    {BUDGET("{\"daily\":1,\"pacing\":\"fast\"}"), FIELD, E_PACING ", not \"fast\""},
    {BUDGET("{\"daily\":1,\"pacing\":\"Even\"}"), FIELD, E_PACING ", not \"Even\""},
    {BUDGET("{\"daily\":1,\"pacing\":null}"), FIELD, E_PACING},
    {BUDGET("{\"daily\":1,\"limit\":2}"), FIELD, "bidders[0].budget.limit: unknown key"},
    {BUDGET("{\"daily\":1,\"daily\":2}"), FIELD, "bidders[0].budget.daily: duplicate key"},
    {"{\"bidders\":[{\"id\":\"a\",\"endpoint\":\"http://a/\"},{\"id\":\"b\","
     "\"endpoint\":\"http://b/\",\"budget\":{\"daily\":0}}]}",
     FIELD,
     "bidders[1].budget.daily: expected a number between 0.000001 and 1000000 with at most "
     "6 decimals"},
    /* alerts */
    {"{\"alerts\":{}}", FIELD, "alerts: expected an array of alert objects"},
    /* window_s: at most the seconds the dashboard keeps */
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"above\":1,\"window_s\":0"), FIELD,
     E_WINDOW},
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"above\":1,\"window_s\":601"), FIELD,
     E_WINDOW},
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"above\":1,\"window_s\":3600"), FIELD,
     E_WINDOW},
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"above\":1,\"window_s\":1.5"), FIELD,
     E_WINDOW},
    /* above: a finite number (1e400 reads as infinity) */
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"above\":\"x\""), FIELD, E_ABOVE},
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"above\":1e400"), FIELD, E_ABOVE},
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"above\":-1e400"), FIELD, E_ABOVE},
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"above\":null"), FIELD, E_NO_THRESHOLD},
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"above\":true"), FIELD, E_ABOVE},
    /* metric: one of the five the exchange computes */
    {ALERT("\"name\":\"a\",\"metric\":\"latency\",\"above\":1"), FIELD,
     E_METRIC ", not \"latency\""},
    {ALERT("\"name\":\"a\",\"metric\":\"No_bid_rate\",\"above\":1"), FIELD,
     E_METRIC ", not \"No_bid_rate\""},
    {ALERT("\"name\":\"a\",\"metric\":\"\",\"above\":1"), FIELD, E_METRIC ", not \"\""},
    {ALERT("\"name\":\"a\",\"metric\":5,\"above\":1"), FIELD, E_METRIC},
    {ALERT("\"name\":\"a\",\"metric\":null,\"above\":1"), FIELD, E_METRIC},
    {ALERT("\"name\":\"a\",\"metric\":[\"no_bid_rate\"],\"above\":1"), FIELD, E_METRIC},
    /* the echo is JSON-escaped (one log line) and cut after 48 bytes */
    {ALERT("\"name\":\"a\",\"metric\":\"a\\\"b\\nc\",\"above\":1"), FIELD,
     E_METRIC ", not \"a\\\"b\\nc\""},
    {ALERT("\"name\":\"a\",\"metric\":\"0123456789012345678901234567890123456789012345678x\","
           "\"above\":1"),
     FIELD, E_METRIC ", not \"012345678901234567890123456789012345678901234567\"..."},
    {ALERT("\"name\":\"a\",\"metric\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\u00e9z\","
           "\"above\":1"),
     FIELD, E_METRIC ", not \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"..."},
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\""), FIELD, E_NO_THRESHOLD},
    /* threshold: a finite number; with the older above, one of the two */
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"threshold\":\"1\""), FIELD, E_THRESHOLD},
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"threshold\":1e400"), FIELD, E_THRESHOLD},
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"threshold\":null"), FIELD, E_NO_THRESHOLD},
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"threshold\":1,\"above\":1"), FIELD,
     "alerts[0].above: give threshold (with op) or above, not both"},
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"op\":\"below\",\"above\":1"), FIELD,
     "alerts[0].above: means op \"above\"; with op \"below\" give threshold"},
    /* op, severity: their names only */
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"op\":\">\",\"threshold\":1"), FIELD,
     "alerts[0].op: expected one of \"above\", \"below\", not \">\""},
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"op\":null,\"threshold\":1"), FIELD,
     "alerts[0].op: expected one of \"above\", \"below\""},
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"threshold\":1,\"severity\":\"high\""),
     FIELD,
     "alerts[0].severity: expected one of \"info\", \"warning\", \"critical\", not \"high\""},
    /* subject: an advertiser id, on a per-advertiser metric only */
    {ALERT("\"name\":\"a\",\"metric\":\"ctr\",\"threshold\":1,\"subject\":\"a b\""), FIELD,
     "alerts[0].subject: expected 1 to 128 characters of [A-Za-z0-9._:-]"},
    {ALERT("\"name\":\"a\",\"metric\":\"ctr\",\"threshold\":1,\"subject\":\"\""), FIELD,
     "alerts[0].subject: expected 1 to 128 characters of [A-Za-z0-9._:-]"},
    {ALERT("\"name\":\"a\",\"metric\":\"no_bid_rate\",\"threshold\":1,\"subject\":\"adv-1\""),
     FIELD,
     "alerts[0].subject: no_bid_rate is exchange-wide: only per-advertiser metrics take a "
     "subject"},
    /* name and message: no control characters (they go into logs and pages) */
    {ALERT("\"name\":\"a\\nb\",\"metric\":\"ctr\",\"threshold\":1"), FIELD,
     "alerts[0].name: expected a string of 1 to 128 characters, no control characters"},
    {ALERT("\"name\":\"a\",\"metric\":\"ctr\",\"threshold\":1,\"message\":\"x\\u0007\""), FIELD,
     "alerts[0].message: expected a string of 0 to 1024 characters, no control characters"},
    {ALERT("\"name\":\"a\",\"metric\":\"ctr\",\"threshold\":1,\"message\":null"), FIELD,
     "alerts[0].message: expected a string of 0 to 1024 characters, no control characters"},
    /* source: only Redis says where a rule came from */
    {ALERT("\"name\":\"a\",\"metric\":\"ctr\",\"threshold\":1,\"source\":\"api\""), FIELD,
     "alerts[0].source: unknown key"},
    /* admin.token: a bearer token of visible ASCII, never echoed */
    {"{\"admin\":{\"token\":\"short\"}}", FIELD,
     "admin.token: expected 16 to 512 visible ASCII characters (no spaces) or null"},
    {"{\"admin\":{\"token\":\"with a space in the middle\"}}", FIELD,
     "admin.token: expected 16 to 512 visible ASCII characters (no spaces) or null"},
    {"{\"admin\":{\"token\":\"caf\u00e9-caf\u00e9-caf\u00e9-caf\u00e9\"}}", FIELD,
     "admin.token: expected 16 to 512 visible ASCII characters (no spaces) or null"},
    {"{\"admin\":{\"token\":12345678901234567}}", FIELD,
     "admin.token: expected 16 to 512 visible ASCII characters (no spaces) or null"},
    {ALERT("\"metric\":\"no_bid_rate\",\"above\":1"), FIELD, "alerts[0].name: required"},
    {ALERT("\"name\":\"a\",\"above\":1"), FIELD, "alerts[0].metric: required"},
    {"{\"alerts\":[{\"name\":\"a\",\"metric\":\"no_bid_rate\",\"above\":1},"
     "{\"name\":\"a\",\"metric\":\"p99_latency_ms\",\"above\":2}]}",
     FIELD, "alerts[1].name: duplicate alert name \"a\""},
    /* mqtt.tls */
    {TLS("5"), FIELD, E_TLS},
    {TLS("\"/ca.pem\""), FIELD, E_TLS},
    {TLS("[]"), FIELD, E_TLS},
    {TLS("{}"), FIELD, "mqtt.tls.cafile: required"},
    {TLS("{\"cafile\":null}"), FIELD, "mqtt.tls.cafile: expected a string of 1 to 4096 characters"},
    {TLS("{\"cafile\":\"\"}"), FIELD, "mqtt.tls.cafile: expected a string of 1 to 4096 characters"},
    {TLS("{\"cafile\":\"a\",\"keyfile\":5}"), FIELD,
     "mqtt.tls.keyfile: expected a string of 1 to 4096 characters or null"},
    {TLS("{\"cafile\":\"a\",\"certfile\":\"c\"}"), FIELD,
     "mqtt.tls: certfile and keyfile go together"},
    {TLS("{\"cafile\":\"a\",\"keyfile\":\"k\",\"certfile\":null}"), FIELD,
     "mqtt.tls: certfile and keyfile go together"},
    /* profiles.default */
    {PROFILE("5"), FIELD, E_PROFILE},
    {PROFILE("null"), FIELD, E_PROFILE},
    {PROFILE("[]"), FIELD, E_PROFILE},
    {PROFILE("{\"ltv_score\":1.5}"), FIELD, E_LTV},
    {PROFILE("{\"ltv_score\":-0.1}"), FIELD, E_LTV},
    {PROFILE("{\"ltv_score\":\"0.5\"}"), FIELD, E_LTV},
    {PROFILE("{\"ltv_score\":1e400}"), FIELD, E_LTV},
    {PROFILE("{\"interests\":\"tech\"}"), FIELD,
     "profiles.default.interests: expected an array of strings of 1 to 128 characters"},
    {PROFILE("{\"interests\":[\"a\",[]]}"), FIELD,
     "profiles.default.interests[1]: expected a string of 1 to 128 characters"},
    {PROFILE("{\"demographics\":[]}"), FIELD, "profiles.default.demographics: expected an object"},
    /* the document itself */
    {"[]", PROTO_ERR_NOT_OBJECT, "config: expected a JSON object at the top level"},
    {"5", PROTO_ERR_NOT_OBJECT, "config: expected a JSON object at the top level"},
    {"null", PROTO_ERR_NOT_OBJECT, "config: expected a JSON object at the top level"},
    {"\"{}\"", PROTO_ERR_NOT_OBJECT, "config: expected a JSON object at the top level"},
    {"", PROTO_ERR_NOT_JSON, E_NOT_JSON},
    {"   ", PROTO_ERR_NOT_JSON, E_NOT_JSON},
    {"{", PROTO_ERR_NOT_JSON, E_NOT_JSON},
    {"{\"a\":1} x", PROTO_ERR_NOT_JSON, "config: not valid JSON near byte 8 (line 1)"},
    {"{}\n{}", PROTO_ERR_NOT_JSON, "config: not valid JSON near byte 3 (line 2)"},
    {"{'mqtt':{}}", PROTO_ERR_NOT_JSON, E_NOT_JSON},
    {"{\"mqtt\":{\"port\":1883,}}", PROTO_ERR_NOT_JSON, E_NOT_JSON},
    {"{\"mqtt\":{\"host\":\"\\uD800\"}}", PROTO_ERR_NOT_JSON, E_NOT_JSON},
    {"{\"mqtt\":{\"host\":\"a\\u0000b\"}}", PROTO_ERR_NOT_JSON,
     "config: \\u0000 in a string at byte 18"},
    {"{\"mqtt\":{\"host\":\"\xC3\x28\"}}", PROTO_ERR_NOT_JSON, "config: invalid UTF-8 at byte 17"},
    {"{\"mqtt\":{\"host\":\"\xC0\x80\"}}", PROTO_ERR_NOT_JSON, "config: invalid UTF-8 at byte 17"},
    {"{\"mqtt\":{\"host\":\"\xED\xA0\x80\"}}", PROTO_ERR_NOT_JSON,
     "config: invalid UTF-8 at byte 17"},
    {"{\"mqtt\":{\"host\":\"\xF5\x80\x80\x80\"}}", PROTO_ERR_NOT_JSON,
     "config: invalid UTF-8 at byte 17"},
    {"{\"mqtt\":{\"host\":\"\x80\"}}", PROTO_ERR_NOT_JSON, "config: invalid UTF-8 at byte 17"},
    {"{\"\xFF\":1}", PROTO_ERR_NOT_JSON, "config: invalid UTF-8 at byte 2"},
    {"{\"a\":\"\xE2\x82", PROTO_ERR_NOT_JSON, "config: invalid UTF-8 at byte 6"},
    /* Raw control characters other than tab, newline and CR are not JSON. */
    {"{\"mqtt\":{\"client_id\":\"a\x01"
     "b\"}}",
     PROTO_ERR_NOT_JSON, "config: not valid JSON near byte 23 (line 1)"},
    {"\x01{}", PROTO_ERR_NOT_JSON, "config: not valid JSON near byte 0 (line 1)"},
    {"{}\n\x1b", PROTO_ERR_NOT_JSON, "config: not valid JSON near byte 3 (line 2)"},
    /* The first fault in the document is the one named. */
    {"{\"a\":\"\xFF\\u0000\"}", PROTO_ERR_NOT_JSON, "config: invalid UTF-8 at byte 6"},
    {"{\"a\":\"\\u0000\xFF\"}", PROTO_ERR_NOT_JSON, "config: \\u0000 in a string at byte 6"},
};

/* `want` matches exactly, or as a prefix when it ends in '*'. */
static int message_matches(const char *got, const char *want) {
    size_t n = strlen(want);
    if (n > 0 && want[n - 1] == '*') return strncmp(got, want, n - 1) == 0;
    return strcmp(got, want) == 0;
}

/* Each bad document is refused with its message and changes nothing, on a
 * config that already differs from the defaults (bidders, tls, a scalar). */
START_TEST(bad_document) {
    static const char before[] =
        "{\"auction\":{\"tmax_ms\":77},\"mqtt\":{\"tls\":{\"cafile\":\"/ca\"}},"
        "\"bidders\":[{\"id\":\"x\",\"endpoint\":\"http://x/\",\"interests\":[\"i\"]}]}";
    const bad_case *bc = &bad_cases[_i];
    char err[ERRLEN] = "";
    proto_config c, d;
    defaults(&c);
    defaults(&d);
    parse_ok(&c, before);
    parse_ok(&d, before);
    proto_err e = parse(&c, bc->json, err);
    ck_assert_msg(e == bc->code, "case %d %s: got %d (%s), want %d", _i, bc->json, e, err,
                  bc->code);
    ck_assert_msg(message_matches(err, bc->message), "case %d %s:\n got  %s\n want %s", _i,
                  bc->json, err, bc->message);
    assert_config_eq(&c, &d);
    proto_config_free(&c);
    proto_config_free(&d);
}
END_TEST

/* A document valid up to its last key applies nothing of it. */
START_TEST(failed_parse_changes_nothing) {
    char err[ERRLEN];
    proto_config c, d;
    defaults(&c);
    defaults(&d);
    proto_err e = parse(&c,
                        "{\"mqtt\":{\"host\":\"10.0.0.9\",\"tls\":{\"cafile\":\"/ca\"}},"
                        "\"auction\":{\"tmax_ms\":50},\"profiles\":{\"default\":{\"ltv_score\":1}},"
                        "\"bidders\":[{\"id\":\"a\",\"endpoint\":\"http://a/\"}],"
                        "\"alerts\":[],\"admin\":{\"listen\":null},\"log\":{\"level\":\"loud\"}}",
                        err);
    ck_assert_int_eq(e, PROTO_ERR_FIELD);
    ck_assert_str_eq(err, E_LEVEL ", not \"loud\"");
    assert_config_eq(&c, &d);
    proto_config_free(&c);
    proto_config_free(&d);
}
END_TEST

/* ---- Alert rules (SPEC 11) --------------------------------------------- */

static const struct {
    const char *name;
    proto_alert_metric metric;
} metric_names[] = {
    {"bidder_timeout_rate", PROTO_ALERT_BIDDER_TIMEOUT_RATE},
    {"bidder_error_rate", PROTO_ALERT_BIDDER_ERROR_RATE},
    {"auction_timeout_rate", PROTO_ALERT_AUCTION_TIMEOUT_RATE},
    {"no_bid_rate", PROTO_ALERT_NO_BID_RATE},
    {"p99_latency_ms", PROTO_ALERT_P99_LATENCY_MS},
    {"ctr", PROTO_ALERT_CTR},
    {"cvr", PROTO_ALERT_CVR},
    {"cpc", PROTO_ALERT_CPC},
    {"spend_rate", PROTO_ALERT_SPEND_RATE},
    {"win_rate", PROTO_ALERT_WIN_RATE},
};

/* Every metric the exchange computes is a value of the enum, with the
 * window at both of its bounds; the name comes back for the messages. */
START_TEST(alert_metric_accepted) {
    char doc[256];
    proto_config c;
    defaults(&c);
    snprintf(doc, sizeof doc,
             "{\"alerts\":[{\"name\":\"short\",\"metric\":\"%s\",\"above\":0.5,\"window_s\":1},"
             "{\"name\":\"long\",\"metric\":\"%s\",\"above\":-0,\"window_s\":600}]}",
             metric_names[_i].name, metric_names[_i].name);
    parse_ok(&c, doc);
    ck_assert_uint_eq(c.nalerts, 2);
    ck_assert_int_eq(c.alerts[0].metric, metric_names[_i].metric);
    ck_assert_int_eq(c.alerts[0].window_s, 1);
    ck_assert_int_eq(c.alerts[1].metric, metric_names[_i].metric);
    ck_assert_int_eq(c.alerts[1].window_s, PROTO_ALERT_WINDOW_MAX_S);
    ck_assert_str_eq(proto_alert_metric_str(metric_names[_i].metric), metric_names[_i].name);
    proto_config_free(&c);
}
END_TEST

/* The rule shape of SPEC 16 next to the older one: op, threshold, subject,
 * severity and message as given, defaults otherwise, `above` folded into
 * op above and its threshold. */
START_TEST(alert_rule_shapes) {
    proto_config c;
    defaults(&c);
    parse_ok(&c, "{\"alerts\":["
                 "{\"name\":\"old\",\"metric\":\"bidder_timeout_rate\",\"above\":0.25},"
                 "{\"name\":\"low ctr \u00e9\",\"metric\":\"ctr\",\"subject\":\"adv-1\",\"op\":"
                 "\"below\",\"threshold\":0.01,\"window_s\":60,\"severity\":\"critical\","
                 "\"message\":\"CTR of adv-1 is low\"},"
                 "{\"name\":\"p99\",\"metric\":\"p99_latency_ms\",\"threshold\":105}]}");
    ck_assert_uint_eq(c.nalerts, 3);
    const proto_alert_conf *a = c.alerts;
    ck_assert_int_eq(a[0].op, PROTO_ALERT_ABOVE);
    ck_assert(a[0].threshold == 0.25);
    ck_assert_ptr_null(a[0].subject);
    ck_assert_int_eq(a[0].severity, PROTO_ALERT_WARNING);
    ck_assert_str_eq(a[0].message, "");
    ck_assert_int_eq(a[0].source, PROTO_ALERT_FROM_CONFIG);
    ck_assert_str_eq(a[1].name, "low ctr \xc3\xa9");
    ck_assert_int_eq(a[1].metric, PROTO_ALERT_CTR);
    ck_assert_str_eq(a[1].subject, "adv-1");
    ck_assert_int_eq(a[1].op, PROTO_ALERT_BELOW);
    ck_assert(a[1].threshold == 0.01);
    ck_assert(isnan(a[1].above));
    ck_assert_int_eq(a[1].window_s, 60);
    ck_assert_int_eq(a[1].severity, PROTO_ALERT_CRITICAL);
    ck_assert_str_eq(a[1].message, "CTR of adv-1 is low");
    ck_assert_int_eq(a[2].op, PROTO_ALERT_ABOVE);
    ck_assert(a[2].threshold == 105);
    ck_assert_int_eq(a[2].window_s, 10);
    /* Every change works on a deep copy, which keeps all of it. */
    char err[ERRLEN];
    ck_assert_int_eq(proto_config_set(&c, "log.level", "\"debug\"", err, sizeof err), PROTO_OK);
    ck_assert_str_eq(c.alerts[1].subject, "adv-1");
    ck_assert_str_eq(c.alerts[1].message, "CTR of adv-1 is low");
    ck_assert(c.alerts[0].threshold == 0.25 && c.alerts[1].threshold == 0.01);
    ck_assert_int_eq(c.alerts[1].severity, PROTO_ALERT_CRITICAL);
    proto_config_free(&c);
}
END_TEST

/* Redis alerts:rules holds at most 100 rules: a config holds no more. */
START_TEST(alert_rules_bounded) {
    char err[ERRLEN];
    proto_buf doc;
    proto_buf_init(&doc);
    proto_config c;
    defaults(&c);
    for (int n = PROTO_ALERT_MAX_RULES; n <= PROTO_ALERT_MAX_RULES + 1; n++) {
        proto_buf_reset(&doc);
        ck_assert_int_eq(proto_buf_printf(&doc, "{\"alerts\":["), 0);
        for (int i = 0; i < n; i++)
            ck_assert_int_eq(proto_buf_printf(&doc,
                                              "%s{\"name\":\"r%d\",\"metric\":\"no_bid_rate\","
                                              "\"threshold\":%d}",
                                              i ? "," : "", i, i),
                             0);
        ck_assert_int_eq(proto_buf_printf(&doc, "]}"), 0);
        proto_err e = proto_config_parse(&c, doc.data, doc.len, err, sizeof err);
        if (n == PROTO_ALERT_MAX_RULES) {
            ck_assert_msg(e == PROTO_OK, "%d rules: %s", n, err);
            ck_assert_uint_eq(c.nalerts, (size_t)n);
        } else {
            ck_assert_int_eq(e, PROTO_ERR_FIELD);
            ck_assert_str_eq(err, "alerts: at most 100 rules");
            ck_assert_uint_eq(c.nalerts, PROTO_ALERT_MAX_RULES); /* unchanged */
        }
    }
    proto_buf_free(&doc);
    proto_config_free(&c);
}
END_TEST

/* The admin API's rules go through the same rows (SPEC 16): messages name
 * the key without a list prefix, "source" is Redis's alone, and what
 * proto_alert_to_json writes decodes to the same rule. */
START_TEST(alert_decode) {
    static const struct {
        const char *json;
        int stored;
        proto_err code;
        const char *message;
    } bad[] = {
        {"{\"name\":\"a\",\"metric\":\"ctr\"}", 0, PROTO_ERR_FIELD, "threshold: required"},
        {"{\"name\":\"a\",\"metric\":\"cpc\",\"threshold\":\"2\"}", 0, PROTO_ERR_FIELD,
         "threshold: expected a finite number or null"},
        {"{\"name\":\"a\",\"metric\":\"clicks\",\"threshold\":2}", 0, PROTO_ERR_FIELD,
         "metric: expected one of \"bidder_timeout_rate\", \"bidder_error_rate\", "
         "\"auction_timeout_rate\", \"no_bid_rate\", \"p99_latency_ms\", \"ctr\", \"cvr\", "
         "\"cpc\", "
         "\"spend_rate\", \"win_rate\", not \"clicks\""},
        {"{\"name\":\"a\",\"metric\":\"ctr\",\"threshold\":2,\"window_s\":0}", 0, PROTO_ERR_FIELD,
         "window_s: expected an integer between 1 and 600"},
        {"{\"name\":\"a\",\"metric\":\"ctr\",\"threshold\":2,\"source\":\"config\"}", 0,
         PROTO_ERR_FIELD, "source: unknown key"},
        {"{\"name\":\"a\",\"metric\":\"ctr\",\"threshold\":2,\"source\":\"file\"}", 1,
         PROTO_ERR_FIELD, "source: expected one of \"config\", \"api\", not \"file\""},
        {"{\"metric\":\"ctr\",\"threshold\":2}", 0, PROTO_ERR_FIELD, "name: required"},
        {"[{\"name\":\"a\"}]", 0, PROTO_ERR_NOT_OBJECT, "rule: expected a JSON object"},
        {"{\"name\":", 0, PROTO_ERR_NOT_JSON, "rule: not valid JSON near byte *"},
        {"", 0, PROTO_ERR_NOT_JSON, "rule: not valid JSON near byte *"},
    };
    char err[ERRLEN];
    proto_alert_conf r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&r, 0xA5, sizeof r);
        proto_err e = proto_alert_decode(bad[i].json, strlen(bad[i].json), bad[i].stored, &r, err,
                                         sizeof err);
        ck_assert_msg(e == bad[i].code, "%s: got %d (%s)", bad[i].json, e, err);
        ck_assert_msg(message_matches(err, bad[i].message), "%s:\n got  %s\n want %s", bad[i].json,
                      err, bad[i].message);
        ck_assert_ptr_null(r.name);
        proto_alert_conf_free(&r);
    }
    /* Too large: refused before it is parsed. */
    size_t big = PROTO_ALERT_MAX_BYTES + 1;
    char *doc = xmalloc(big);
    memset(doc, ' ', big);
    doc[0] = '{';
    doc[big - 1] = '}';
    ck_assert_int_eq(proto_alert_decode(doc, big, 0, &r, err, sizeof err), PROTO_ERR_TOO_LARGE);
    ck_assert_str_eq(err, "rule: larger than 16384 bytes");
    free(doc);

    /* A POST body: the API's; encoded and decoded as Redis holds it, the same. */
    const char *post = "{\"name\":\"win/rate \\\"x\\\"\",\"metric\":\"win_rate\",\"op\":\"below\","
                       "\"threshold\":0.125,\"window_s\":30,\"severity\":\"info\","
                       "\"message\":\"wins \u00e9\"}";
    ck_assert_int_eq(proto_alert_decode(post, strlen(post), 0, &r, err, sizeof err), PROTO_OK);
    ck_assert_int_eq(r.source, PROTO_ALERT_FROM_API);
    ck_assert_str_eq(r.name, "win/rate \"x\"");
    cJSON *j = proto_alert_to_json(&r);
    char *text = cJSON_PrintUnformatted(j);
    ck_assert_str_eq(text,
                     "{\"name\":\"win/rate \\\"x\\\"\",\"metric\":\"win_rate\",\"subject\":null,"
                     "\"op\":\"below\",\"threshold\":0.125,\"window_s\":30,\"severity\":"
                     "\"info\",\"message\":\"wins \xc3\xa9\",\"source\":\"api\"}");
    proto_alert_conf back, copy;
    ck_assert_int_eq(proto_alert_decode(text, strlen(text), 1, &back, err, sizeof err), PROTO_OK);
    ck_assert_int_eq(proto_alert_conf_copy(&copy, &back), 0);
    const proto_alert_conf *each[] = {&back, &copy};
    for (int k = 0; k < 2; k++) {
        ck_assert_str_eq(each[k]->name, r.name);
        ck_assert_int_eq(each[k]->metric, PROTO_ALERT_WIN_RATE);
        ck_assert_ptr_null(each[k]->subject);
        ck_assert_int_eq(each[k]->op, PROTO_ALERT_BELOW);
        ck_assert(each[k]->threshold == 0.125);
        ck_assert_int_eq(each[k]->window_s, 30);
        ck_assert_int_eq(each[k]->severity, PROTO_ALERT_INFO);
        ck_assert_str_eq(each[k]->message, r.message);
        ck_assert_int_eq(each[k]->source, PROTO_ALERT_FROM_API);
    }
    cJSON_free(text);
    cJSON_Delete(j);
    proto_alert_conf_free(&r);
    proto_alert_conf_free(&back);
    proto_alert_conf_free(&copy);
    proto_alert_conf_free(&copy); /* idempotent */
    ck_assert_str_eq(proto_alert_op_str(PROTO_ALERT_BELOW), "below");
    ck_assert_str_eq(proto_alert_severity_str(PROTO_ALERT_CRITICAL), "critical");
    ck_assert_str_eq(proto_alert_source_str(PROTO_ALERT_FROM_CONFIG), "config");
    ck_assert_str_eq(proto_alert_op_str((proto_alert_op)7), "unknown");
    for (int m = 0; m < PROTO_ALERT_METRIC_COUNT; m++)
        ck_assert_int_eq(proto_alert_per_advertiser((proto_alert_metric)m),
                         m != PROTO_ALERT_AUCTION_TIMEOUT_RATE && m != PROTO_ALERT_NO_BID_RATE &&
                             m != PROTO_ALERT_P99_LATENCY_MS);
}
END_TEST

START_TEST(alert_metric_names) {
    ck_assert_int_eq(sizeof metric_names / sizeof metric_names[0], PROTO_ALERT_METRIC_COUNT);
    ck_assert_str_eq(proto_alert_metric_str(PROTO_ALERT_METRIC_COUNT), "unknown");
    ck_assert_str_eq(proto_alert_metric_str((proto_alert_metric)-1), "unknown");
}
END_TEST

/* ---- Secrets ------------------------------------------------------------ */

/* mqtt.password needs mqtt.username: checked once the document is applied
 * whole, so the order of the keys does not matter, and layered documents
 * are checked as the config they make. */
START_TEST(password_needs_username) {
    char err[ERRLEN];
    proto_config c, d;
    defaults(&c);
    parse_ok(&c, "{\"mqtt\":{\"password\":\"pw\",\"username\":\"u\"}}");
    ck_assert_str_eq(c.mqtt.password, "pw");
    defaults(&d);
    parse_ok(&d, "{\"mqtt\":{\"password\":\"pw\",\"username\":\"u\"}}");
    ck_assert_int_eq(parse(&c, "{\"mqtt\":{\"username\":null}}", err), PROTO_ERR_FIELD);
    ck_assert_str_eq(err, E_PASSWORD);
    assert_config_eq(&c, &d);
    ck_assert_int_eq(proto_config_set(&c, "mqtt.username", "null", err, sizeof err),
                     PROTO_ERR_FIELD);
    ck_assert_str_eq(err, E_PASSWORD);
    assert_config_eq(&c, &d);
    parse_ok(&c, "{\"mqtt\":{\"username\":null,\"password\":null}}");
    ck_assert_ptr_null(c.mqtt.password);
    ck_assert_int_eq(proto_config_set(&c, "mqtt.password", "\"pw\"", err, sizeof err),
                     PROTO_ERR_FIELD);
    ck_assert_str_eq(err, E_PASSWORD);
    /* Redis takes a password alone (AUTH password). */
    parse_ok(&c, "{\"redis\":{\"password\":\"pw\"}}");
    ck_assert_str_eq(c.redis.password, "pw");
    proto_config_free(&c);
    proto_config_free(&d);
}
END_TEST

#define SECRET "s3cret-Pa55"

/* No message about a password carries its value, whatever was wrong. */
START_TEST(secrets_never_echoed) {
    static const char *const docs[] = {
        "{\"redis\":{\"password\":[\"" SECRET "\"]}}",
        "{\"mqtt\":{\"password\":{\"v\":\"" SECRET "\"},\"username\":\"u\"}}",
        "{\"mqtt\":{\"password\":\"" SECRET "\"}}",
        "{\"mqtt\":{\"password\":\"" SECRET "\",\"username\":null}}",
        "{\"redis\":{\"password\":\"" SECRET "\"},}",
        "{\"redis\":{\"password\":\"" SECRET "\",\"password\":\"" SECRET "\"}}",
        "{\"admin\":{\"token\":\"" SECRET "\"}}",
        "{\"admin\":{\"token\":\"" SECRET " " SECRET "\"}}",
        "{\"admin\":{\"token\":[\"" SECRET SECRET "\"]}}",
        "{\"admin\":{\"token\":\"" SECRET SECRET "\",\"token\":\"" SECRET SECRET "\"}}",
    };
    char err[ERRLEN];
    proto_config c;
    defaults(&c);
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        ck_assert_int_ne(parse(&c, docs[i], err), PROTO_OK);
        ck_assert_msg(err[0] != '\0' && strstr(err, SECRET) == NULL, "%s: %s", docs[i], err);
    }
    /* Over 1024 characters. */
    char *doc = xmalloc(2048);
    size_t n = (size_t)sprintf(doc, "{\"redis\":{\"password\":\"");
    for (int i = 0; i < 100; i++)
        n += (size_t)sprintf(doc + n, SECRET);
    strcpy(doc + n, "\"}}");
    ck_assert_int_eq(parse(&c, doc, err), PROTO_ERR_FIELD);
    ck_assert_str_eq(err, "redis.password: expected a string of 0 to 1024 characters or null");
    free(doc);
    /* A command line value that is not JSON. */
    ck_assert_int_eq(proto_config_set(&c, "redis.password", SECRET, err, sizeof err),
                     PROTO_ERR_NOT_JSON);
    ck_assert_msg(strstr(err, SECRET) == NULL, "%s", err);
    ck_assert_int_eq(proto_config_set(&c, "mqtt.password", "\"" SECRET "\"", err, sizeof err),
                     PROTO_ERR_FIELD);
    ck_assert_msg(strstr(err, SECRET) == NULL, "%s", err);
    proto_config_free(&c);
}
END_TEST

/* ---- Hostile input ------------------------------------------------------ */

START_TEST(deep_nesting) {
    size_t depth = 100000;
    char *doc = xmalloc(2 * depth + 64);
    char err[ERRLEN];
    proto_config c, d;
    defaults(&c);
    defaults(&d);
    memset(doc, '[', depth);
    memset(doc + depth, ']', depth);
    ck_assert_int_eq(proto_config_parse(&c, doc, 2 * depth, err, sizeof err), PROTO_ERR_NOT_JSON);
    ck_assert(message_matches(err, E_NOT_JSON));

    /* Deep inside a value that takes any object. */
    size_t n = (size_t)sprintf(doc, "{\"profiles\":{\"default\":{\"demographics\":");
    for (size_t i = 0; i < depth / 10; i++)
        n += (size_t)sprintf(doc + n, "{\"a\":");
    n += (size_t)sprintf(doc + n, "1");
    memset(doc + n, '}', depth / 10 + 3);
    n += depth / 10 + 3;
    ck_assert_int_eq(proto_config_parse(&c, doc, n, err, sizeof err), PROTO_ERR_NOT_JSON);
    assert_config_eq(&c, &d);

    /* Nesting cJSON allows is kept as is. */
    n = (size_t)sprintf(doc, "{\"profiles\":{\"default\":{\"demographics\":");
    for (size_t i = 0; i < 900; i++)
        n += (size_t)sprintf(doc + n, "{\"a\":");
    n += (size_t)sprintf(doc + n, "1");
    memset(doc + n, '}', 903);
    n += 903;
    ck_assert_msg(proto_config_parse(&c, doc, n, err, sizeof err) == PROTO_OK, "%s", err);
    free(doc);
    proto_config_free(&c);
    proto_config_free(&d);
}
END_TEST

START_TEST(long_strings) {
    size_t len = 100000;
    char *s = repeat('a', len);
    char *doc = xmalloc(len + 256);
    char err[ERRLEN];
    proto_config c, d;
    defaults(&c);
    defaults(&d);

    sprintf(doc, "{\"mqtt\":{\"host\":\"%s\"}}", s);
    ck_assert_int_eq(parse(&c, doc, err), PROTO_ERR_FIELD);
    ck_assert_str_eq(err, "mqtt.host: expected a host name or address of 1 to 255 characters");

    sprintf(doc, "{\"%s\":1}", s);
    ck_assert_int_eq(parse(&c, doc, err), PROTO_ERR_FIELD);
    ck_assert_int_eq(strncmp(err, "aaaa", 4), 0);
    ck_assert_ptr_nonnull(strstr(err, ": unknown key"));
    ck_assert_uint_lt(strlen(err), ERRLEN);

    sprintf(doc, "{\"auction\":{\"%s\":1}}", s);
    ck_assert_int_eq(parse(&c, doc, err), PROTO_ERR_FIELD);
    ck_assert_int_eq(strncmp(err, "auction.aaaa", 12), 0);

    sprintf(doc, "{\"bidders\":[{\"id\":\"%s\",\"endpoint\":\"http://h/\"}]}", s);
    ck_assert_int_eq(parse(&c, doc, err), PROTO_ERR_FIELD);
    ck_assert_str_eq(err, E_ID);

    sprintf(doc, "{\"log\":{\"level\":\"%s\"}}", s);
    ck_assert_int_eq(parse(&c, doc, err), PROTO_ERR_FIELD);
    /* The echoed word is cut after 48 bytes. */
    ck_assert_str_eq(err, E_LEVEL ", not \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"...");
    assert_config_eq(&c, &d);

    /* A short message buffer is cut, never overrun. */
    char small[8];
    ck_assert_int_eq(proto_config_parse(&c, doc, strlen(doc), small, sizeof small),
                     PROTO_ERR_FIELD);
    ck_assert_str_eq(small, "log.lev");
    ck_assert_int_eq(proto_config_parse(&c, doc, strlen(doc), NULL, 0), PROTO_ERR_FIELD);

    /* A long key of 2-byte characters is cut between characters, never
     * inside one: the message stays valid UTF-8 (found by fuzzing). */
    char ukey[1024] = "{\"";
    for (int i = 0; i < 300; i++)
        strcat(ukey, "\xc3\xa9");
    strcat(ukey, "\":1}");
    ck_assert_int_eq(parse(&c, ukey, err), PROTO_ERR_FIELD);
    ck_assert_msg(strstr(err, ": unknown key") != NULL, "%s", err);
    ck_assert_msg(proto_utf8_valid(err, strlen(err)), "message cut inside a character");
    const char *four = "{\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\":1}";
    char cut[8]; /* 7 bytes of message: 3 characters fit, the 4th would be cut */
    ck_assert_int_eq(proto_config_parse(&c, four, strlen(four), cut, sizeof cut), PROTO_ERR_FIELD);
    ck_assert_str_eq(cut, "\xc3\xa9\xc3\xa9\xc3\xa9");

    /* Long values where the table allows them. */
    char *t = repeat('t', 4096);
    sprintf(doc, "{\"mqtt\":{\"topic\":\"%s\"}}", t);
    ck_assert_msg(parse(&c, doc, err) == PROTO_OK, "%s", err);
    ck_assert_uint_eq(strlen(c.mqtt.topic), 4096);
    free(t);
    sprintf(doc, "{\"profiles\":{\"default\":{\"demographics\":{\"x\":\"%s\"}}}}", s);
    ck_assert_msg(parse(&c, doc, err) == PROTO_OK, "%s", err);
    free(s);
    free(doc);
    proto_config_free(&c);
    proto_config_free(&d);
}
END_TEST

/* admin.allowed_hosts: 16 names of up to 255 characters, not one more. */
START_TEST(allowed_hosts_bounds) {
    char *name = repeat('h', 255), *longer = repeat('h', 256);
    char doc[8192], err[ERRLEN];
    int n = snprintf(doc, sizeof doc, "{\"admin\":{\"allowed_hosts\":[\"%s\"", name);
    for (int i = 1; i < PROTO_ADMIN_MAX_ALLOWED_HOSTS; i++)
        n += snprintf(doc + n, sizeof doc - (size_t)n, ",\"h%d.example\"", i);
    snprintf(doc + n, sizeof doc - (size_t)n, "]}}");
    proto_config c, d;
    defaults(&c);
    defaults(&d);
    parse_ok(&c, doc);
    parse_ok(&d, doc);
    ck_assert_uint_eq(c.admin.nallowed_hosts, PROTO_ADMIN_MAX_ALLOWED_HOSTS);
    ck_assert_str_eq(c.admin.allowed_hosts[0], name);
    ck_assert_str_eq(c.admin.allowed_hosts[15], "h15.example");

    /* A 17th entry, and a 256-character name: refused, nothing changed. */
    snprintf(doc + n, sizeof doc - (size_t)n, ",\"h16.example\"]}}");
    ck_assert_int_eq(parse(&c, doc, err), PROTO_ERR_FIELD);
    ck_assert_str_eq(err, "admin.allowed_hosts: expected at most 16 entries");
    assert_config_eq(&c, &d);
    snprintf(doc, sizeof doc, "{\"admin\":{\"allowed_hosts\":[\"a\",\"%s\"]}}", longer);
    ck_assert_int_eq(parse(&c, doc, err), PROTO_ERR_FIELD);
    ck_assert_str_eq(err, "admin.allowed_hosts[1]: expected a string of 1 to 255 characters");
    assert_config_eq(&c, &d);

    /* And back to none. */
    ck_assert_int_eq(proto_config_set(&c, "admin.allowed_hosts", "[]", err, sizeof err), PROTO_OK);
    ck_assert_uint_eq(c.admin.nallowed_hosts, 0);
    free(name);
    free(longer);
    proto_config_free(&c);
    proto_config_free(&d);
}
END_TEST

START_TEST(nul_bytes) {
    static const char doc[] = "{\"mqtt\":{\"host\":\"a\0b\"}}";
    char err[ERRLEN];
    proto_config c, d;
    defaults(&c);
    defaults(&d);
    ck_assert_int_eq(proto_config_parse(&c, doc, sizeof doc - 1, err, sizeof err),
                     PROTO_ERR_NOT_JSON);
    ck_assert_str_eq(err, "config: NUL byte at byte 18");
    /* Trailing NUL after a valid document is not ignored either. */
    ck_assert_int_eq(proto_config_parse(&c, "{}", 3, err, sizeof err), PROTO_ERR_NOT_JSON);
    ck_assert_str_eq(err, "config: NUL byte at byte 2");
    ck_assert_int_eq(proto_config_parse(&c, NULL, 0, err, sizeof err), PROTO_ERR_NOT_JSON);
    assert_config_eq(&c, &d);
    /* An escaped backslash before "u0000" is just text. */
    parse_ok(&c, "{\"mqtt\":{\"client_id\":\"a\\\\u0000b\"}}");
    ck_assert_str_eq(c.mqtt.client_id, "a\\u0000b");
    proto_config_free(&c);
    proto_config_free(&d);
}
END_TEST

/* The parser reads `len` bytes and not one more (ASan checks the last). */
START_TEST(not_nul_terminated) {
    static const char *const docs[] = {
        "{\"auction\":{\"tmax_ms\":50}}",
        "{\"auction\":{\"tmax_ms\":5",
        "{\"log\":{\"level\":\"de",
        "{\"auction\":{\"tmax_ms\":50}}  \n",
    };
    proto_config c;
    defaults(&c);
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        size_t n = strlen(docs[i]);
        char *buf = xmalloc(n), err[ERRLEN];
        memcpy(buf, docs[i], n);
        proto_err e = proto_config_parse(&c, buf, n, err, sizeof err);
        ck_assert_int_eq(e, i == 0 || i == 3 ? PROTO_OK : PROTO_ERR_NOT_JSON);
        free(buf);
    }
    ck_assert_int_eq(c.auction.tmax_ms, 50);
    proto_config_free(&c);
}
END_TEST

START_TEST(too_large) {
    size_t n = 1024 * 1024 + 1;
    char *doc = repeat(' ', n), err[ERRLEN];
    doc[0] = '{';
    doc[n - 1] = '}';
    proto_config c;
    defaults(&c);
    ck_assert_int_eq(proto_config_parse(&c, doc, n, err, sizeof err), PROTO_ERR_TOO_LARGE);
    ck_assert_str_eq(err, "config: larger than 1048576 bytes");
    free(doc);
    proto_config_free(&c);
}
END_TEST

/* 20000 bidders load quickly (the uniqueness check is not quadratic). */
START_TEST(many_bidders) {
    size_t n = 20000;
    char *doc = xmalloc(n * 64 + 64), err[ERRLEN];
    size_t len = (size_t)sprintf(doc, "{\"bidders\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(doc + len, "%s{\"id\":\"b%zu\",\"endpoint\":\"http://h/\"}",
                               i ? "," : "", i);
    strcpy(doc + len, "]}");
    proto_config c;
    defaults(&c);
    ck_assert_msg(parse(&c, doc, err) == PROTO_OK, "%s", err);
    ck_assert_uint_eq(c.nbidders, n);
    ck_assert_str_eq(c.bidders[n - 1].id, "b19999");
    free(doc);
    proto_config_free(&c);
}
END_TEST

START_TEST(duplicate_among_many) {
    size_t n = 20000;
    char *doc = xmalloc(n * 64 + 64), err[ERRLEN];
    size_t len = (size_t)sprintf(doc, "{\"bidders\":[");
    for (size_t i = 0; i < n; i++) {
        /* 19990 repeats 5 and 19998 repeats 17: the first repeat is named. */
        size_t id = i == 19990 ? 5 : i == 19998 ? 17 : i;
        len += (size_t)sprintf(doc + len, "%s{\"id\":\"b%zu\",\"endpoint\":\"http://h/\"}",
                               i ? "," : "", id);
    }
    strcpy(doc + len, "]}");
    proto_config c;
    defaults(&c);
    ck_assert_int_eq(parse(&c, doc, err), PROTO_ERR_FIELD);
    ck_assert_str_eq(err, "bidders[19990].id: duplicate bidder id \"b5\"");
    ck_assert_uint_eq(c.nbidders, 0);
    free(doc);
    proto_config_free(&c);
}
END_TEST

/* ---- proto_config_set --------------------------------------------------- */

START_TEST(set_good) {
    char err[ERRLEN] = "";
    proto_config c;
    defaults(&c);
    ck_assert_int_eq(proto_config_set(&c, "auction.tmax_ms", "50", err, sizeof err), PROTO_OK);
    ck_assert_int_eq(c.auction.tmax_ms, 50);
    /* --mqtt 10.0.0.1:1884 */
    ck_assert_int_eq(proto_config_set(&c, "mqtt.host", "\"10.0.0.1\"", err, sizeof err), PROTO_OK);
    ck_assert_int_eq(proto_config_set(&c, "mqtt.port", "1884", err, sizeof err), PROTO_OK);
    ck_assert_str_eq(c.mqtt.host, "10.0.0.1");
    ck_assert_int_eq(c.mqtt.port, 1884);
    ck_assert_int_eq(proto_config_set(&c, "redis.port", " 6380\n", err, sizeof err), PROTO_OK);
    ck_assert_int_eq(c.redis.port, 6380);
    ck_assert_int_eq(proto_config_set(&c, "mqtt", "{\"qos\":0}", err, sizeof err), PROTO_OK);
    ck_assert_int_eq(c.mqtt.qos, 0);
    ck_assert_int_eq(c.mqtt.port, 1884);
    ck_assert_int_eq(proto_config_set(&c, "mqtt.tls", "{\"cafile\":\"/ca\"}", err, sizeof err),
                     PROTO_OK);
    ck_assert_int_eq(c.mqtt.tls, 1);
    ck_assert_str_eq(c.mqtt.tls_cafile, "/ca");
    ck_assert_int_eq(proto_config_set(&c, "admin.listen", "null", err, sizeof err), PROTO_OK);
    ck_assert_ptr_null(c.admin.listen);
    ck_assert_int_eq(proto_config_set(&c, "auction.price_increment", "0.05", err, sizeof err),
                     PROTO_OK);
    ck_assert_int_eq(c.auction.price_increment_micros, 50000);
    ck_assert_int_eq(proto_config_set(&c, "auction.type", "\"first_price\"", err, sizeof err),
                     PROTO_OK);
    ck_assert_int_eq(c.auction.type, AUCTION_FIRST_PRICE);
    ck_assert_int_eq(
        proto_config_set(&c, "profiles.default", "{\"ltv_score\":0.9}", err, sizeof err), PROTO_OK);
    ck_assert(
        cJSON_GetObjectItemCaseSensitive(c.profiles.default_profile, "ltv_score")->valuedouble ==
        0.9);
    ck_assert_int_eq(proto_config_set(&c, "bidders", "[{\"id\":\"a\",\"endpoint\":\"http://a/\"}]",
                                      err, sizeof err),
                     PROTO_OK);
    ck_assert_uint_eq(c.nbidders, 1);
    proto_config_free(&c);
}
END_TEST

START_TEST(set_bad) {
    static const struct {
        const char *path, *value;
        proto_err code;
        const char *message;
    } cases[] = {
        {"auction.tmax_ms", "0", FIELD, E_TMAX},
        {"auction.tmax_ms", "10001", FIELD, E_TMAX},
        {"auction.tmax_ms", "50.5", FIELD, E_TMAX},
        {"auction.tmax_ms", "\"50\"", FIELD, E_TMAX},
        {"auction.tmaxms", "5", FIELD, "auction.tmaxms: unknown key"},
        {"tmax_ms", "5", FIELD, "tmax_ms: unknown key"},
        {"auction.tmax_ms", "abc", PROTO_ERR_NOT_JSON, "auction.tmax_ms: not valid JSON near *"},
        {"auction.tmax_ms", "", PROTO_ERR_NOT_JSON, "auction.tmax_ms: not valid JSON near *"},
        {"auction.tmax_ms", "50 60", PROTO_ERR_NOT_JSON,
         "auction.tmax_ms: not valid JSON near byte 3 (line 1)"},
        {"mqtt.host", "10.0.0.1", PROTO_ERR_NOT_JSON, "mqtt.host: not valid JSON near *"},
        {"mqtt.host", "\"\xC3\x28\"", PROTO_ERR_NOT_JSON, "mqtt.host: invalid UTF-8 at byte 1"},
        {"mqtt.port", "65536", FIELD, E_PORT},
        {"", "5", FIELD, "config: empty key"},
        {"auction..tmax_ms", "5", FIELD, "auction..tmax_ms: unknown key"},
        {"auction.", "5", FIELD, "auction.: unknown key"},
        {".auction", "5", FIELD, ".auction: unknown key"},
        {"auction", "5", FIELD, "auction: expected an object"},
        {"auction", "{\"tmax_ms\":0}", FIELD, E_TMAX},
        {"auction.tmax_ms.x", "5", FIELD, E_TMAX},
        {"bidders", "[{\"id\":\"a\",\"endpoint\":\"ftp://a/\"}]", FIELD, E_URL},
    };
    proto_config c, d;
    defaults(&c);
    defaults(&d);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[ERRLEN] = "";
        proto_err e = proto_config_set(&c, cases[i].path, cases[i].value, err, sizeof err);
        ck_assert_msg(e == cases[i].code, "%s=%s: got %d (%s)", cases[i].path, cases[i].value, e,
                      err);
        ck_assert_msg(message_matches(err, cases[i].message), "%s=%s:\n got  %s\n want %s",
                      cases[i].path, cases[i].value, err, cases[i].message);
        assert_config_eq(&c, &d);
    }
    proto_config_free(&c);
    proto_config_free(&d);
}
END_TEST

/* ---- Budgets (SPEC 16) -------------------------------------------------- */

/* bidders[].budget: absent and null mean none; an amount is exact to the
 * micro (the same conversion as prices); pacing defaults to asap. */
START_TEST(budget_good) {
    static const struct {
        const char *budget; /* NULL: no budget key */
        int64_t daily_micros;
        proto_pacing pacing;
    } cases[] = {
        {NULL, 0, PROTO_PACING_ASAP},
        {"null", 0, PROTO_PACING_ASAP},
        {"{\"daily\":250.0,\"pacing\":\"even\"}", 250000000, PROTO_PACING_EVEN},
        {"{\"daily\":250}", 250000000, PROTO_PACING_ASAP},
        {"{\"pacing\":\"asap\",\"daily\":0.02}", 20000, PROTO_PACING_ASAP},
        {"{\"daily\":0.000001}", 1, PROTO_PACING_ASAP},
        {"{\"daily\":1.1}", 1100000, PROTO_PACING_ASAP},
        {"{\"daily\":999999.999999,\"pacing\":\"even\"}", 999999999999, PROTO_PACING_EVEN},
        {"{\"daily\":1e6}", AUCTION_PRICE_MAX_MICROS, PROTO_PACING_ASAP},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char doc[256];
        proto_config c;
        defaults(&c);
        if (cases[i].budget)
            snprintf(doc, sizeof doc,
                     "{\"bidders\":[{\"id\":\"a\",\"endpoint\":\"http://h/\",\"budget\":%s}]}",
                     cases[i].budget);
        else
            snprintf(doc, sizeof doc, "{\"bidders\":[{\"id\":\"a\",\"endpoint\":\"http://h/\"}]}");
        parse_ok(&c, doc);
        ck_assert_msg(c.bidders[0].budget_daily_micros == cases[i].daily_micros, "%s: %lld", doc,
                      (long long)c.bidders[0].budget_daily_micros);
        ck_assert_msg(c.bidders[0].budget_pacing == cases[i].pacing, "%s", doc);
        /* A later document replaces the list whole: no budget left over. */
        parse_ok(&c, "{\"bidders\":[{\"id\":\"a\",\"endpoint\":\"http://h/\"}]}");
        ck_assert_int_eq(c.bidders[0].budget_daily_micros, 0);
        proto_config_free(&c);
    }
}
END_TEST

/* A config with budgets is copied whole (a failed parse keeps them) and
 * --set reaches them too. */
START_TEST(budget_kept_and_set) {
    char err[ERRLEN];
    proto_config c;
    defaults(&c);
    parse_ok(&c, "{\"bidders\":[{\"id\":\"a\",\"endpoint\":\"http://h/\","
                 "\"budget\":{\"daily\":3.5,\"pacing\":\"even\"}}]}");
    ck_assert_int_ne(parse(&c, "{\"auction\":{\"tmax_ms\":0}}", err), PROTO_OK);
    ck_assert_int_eq(c.bidders[0].budget_daily_micros, 3500000);
    ck_assert_int_eq(c.bidders[0].budget_pacing, PROTO_PACING_EVEN);
    ck_assert_int_eq(proto_config_set(&c, "bidders",
                                      "[{\"id\":\"b\",\"endpoint\":\"http://h/\","
                                      "\"budget\":{\"daily\":7}}]",
                                      err, sizeof err),
                     PROTO_OK);
    ck_assert_str_eq(c.bidders[0].id, "b");
    ck_assert_int_eq(c.bidders[0].budget_daily_micros, 7000000);
    ck_assert_int_eq(c.bidders[0].budget_pacing, PROTO_PACING_ASAP);
    proto_config_free(&c);
}
END_TEST

/* ---- Advertiser registry entries (SPEC 6) ------------------------------- */

START_TEST(advertiser_good) {
    static const char json[] =
        "{\"interests\":[\"tech\",\"news\"],\"endpoint\":\"http://127.0.0.1:9001/bid\","
        "\"max_concurrent\":7}";
    char err[ERRLEN] = "";
    proto_bidder_conf b;
    ck_assert_msg(proto_advertiser_decode("adv-2", json, strlen(json), &b, err, sizeof err) ==
                      PROTO_OK,
                  "%s", err);
    ck_assert_str_eq(b.id, "adv-2");
    ck_assert_str_eq(b.endpoint, "http://127.0.0.1:9001/bid");
    ck_assert_uint_eq(b.ninterests, 2);
    ck_assert_str_eq(b.interests[1], "news");
    ck_assert_int_eq(b.max_concurrent, 7);
    proto_bidder_conf_free(&b);
    proto_bidder_conf_free(&b);

    static const char minimal[] = "{\"endpoint\":\"https://b.example/\"}";
    ck_assert_int_eq(proto_advertiser_decode("b", minimal, strlen(minimal), &b, err, sizeof err),
                     PROTO_OK);
    ck_assert_uint_eq(b.ninterests, 0);
    ck_assert_int_eq(b.max_concurrent, 100);
    ck_assert_int_eq(b.budget_daily_micros, 0);
    proto_bidder_conf_free(&b);

    static const char budgeted[] =
        "{\"endpoint\":\"http://h/\",\"budget\":{\"daily\":250.0,\"pacing\":\"even\"}}";
    ck_assert_int_eq(proto_advertiser_decode("c", budgeted, strlen(budgeted), &b, err, sizeof err),
                     PROTO_OK);
    ck_assert_int_eq(b.budget_daily_micros, 250000000);
    ck_assert_int_eq(b.budget_pacing, PROTO_PACING_EVEN);
    proto_bidder_conf_free(&b);
    ck_assert_int_eq(b.budget_daily_micros, 0);
}
END_TEST

START_TEST(advertiser_bad) {
    static const struct {
        const char *id, *json;
        proto_err code;
        const char *message;
    } cases[] = {
        {"a", "{}", FIELD, "endpoint: required"},
        {"a", "{\"endpoint\":\"ftp://h/\"}", FIELD,
         "endpoint: must be an http:// or https:// URL with a host"},
        {"a", "{\"endpoint\":\"http://h/\",\"id\":\"a\"}", FIELD, "id: unknown key"},
        {"a", "{\"endpoint\":\"http://h/\",\"foo\":1}", FIELD, "foo: unknown key"},
        {"a", "{\"endpoint\":\"http://h/\",\"max_concurrent\":0}", FIELD,
         "max_concurrent: expected an integer between 1 and 100000"},
        {"a", "{\"endpoint\":\"http://h/\",\"interests\":[5]}", FIELD,
         "interests[0]: expected a string of 1 to 128 characters"},
        {"a b", "{\"endpoint\":\"http://h/\"}", FIELD,
         "id: expected 1 to 128 characters of [A-Za-z0-9._:-]"},
        {"", "{\"endpoint\":\"http://h/\"}", FIELD,
         "id: expected 1 to 128 characters of [A-Za-z0-9._:-]"},
        {"a", "{\"endpoint\":\"http://h/\",\"budget\":{\"daily\":-2}}", FIELD,
         "budget.daily: expected a number between 0.000001 and 1000000 with at most 6 decimals"},
        {"a", "{\"endpoint\":\"http://h/\",\"budget\":{\"pacing\":\"even\"}}", FIELD,
         "budget.daily: required"},
        {"a", "{\"endpoint\":\"http://h/\",\"budget\":{\"daily\":1,\"pacing\":1}}", FIELD,
         "budget.pacing: expected one of \"asap\", \"even\""},
        {"a", "{\"endpoint\":\"http://h/\",\"budget\":true}", FIELD,
         "budget: expected null or an object {\"daily\", \"pacing\"}"},
        {"a", "[]", PROTO_ERR_NOT_OBJECT, "advertiser: expected a JSON object"},
        {"a", "{\"endpoint\":", PROTO_ERR_NOT_JSON, "advertiser: not valid JSON near *"},
        {"a", "", PROTO_ERR_NOT_JSON, "advertiser: not valid JSON near *"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[ERRLEN] = "";
        proto_bidder_conf b;
        memset(&b, 0xA5, sizeof b);
        proto_err e = proto_advertiser_decode(cases[i].id, cases[i].json, strlen(cases[i].json), &b,
                                              err, sizeof err);
        ck_assert_msg(e == cases[i].code, "%s: got %d (%s)", cases[i].json, e, err);
        ck_assert_msg(message_matches(err, cases[i].message), "%s:\n got  %s\n want %s",
                      cases[i].json, err, cases[i].message);
        ck_assert_ptr_null(b.id);
        ck_assert_ptr_null(b.endpoint);
        ck_assert_ptr_null(b.interests);
        proto_bidder_conf_free(&b);
    }
}
END_TEST

/* ---- auction.default_banner, auction.default_site (SPEC 17) ------------- */

START_TEST(default_banner_and_site) {
    proto_config c;
    defaults(&c);
    ck_assert_int_eq(c.auction.default_banner.w, 300);
    ck_assert_int_eq(c.auction.default_banner.h, 250);
    assert_str_or_null(c.auction.default_site.id, "default", "default_site.id");
    assert_str_or_null(c.auction.default_site.domain, "example.com", "default_site.domain");
    assert_str_or_null(c.auction.default_site.page, NULL, "default_site.page");
    assert_str_or_null(c.auction.default_site.publisher_id, NULL, "default_site.publisher.id");

    /* Both are objects replaced whole: what the new one leaves out is gone. */
    parse_ok(&c, "{\"auction\":{\"default_banner\":{\"w\":728,\"h\":90},"
                 "\"default_site\":{\"id\":\"s-1\",\"domain\":\"news.example\","
                 "\"page\":\"https://news.example/a\","
                 "\"publisher\":{\"id\":\"p-1\",\"name\":\"News Inc\"}}}}");
    ck_assert_int_eq(c.auction.default_banner.w, 728);
    ck_assert_int_eq(c.auction.default_banner.h, 90);
    assert_str_or_null(c.auction.default_site.page, "https://news.example/a", "page");
    assert_str_or_null(c.auction.default_site.publisher_id, "p-1", "publisher.id");
    assert_str_or_null(c.auction.default_site.publisher_name, "News Inc", "publisher.name");
    parse_ok(&c, "{\"auction\":{\"default_site\":{\"domain\":\"other.example\"}}}");
    assert_str_or_null(c.auction.default_site.id, NULL, "id after replacement");
    assert_str_or_null(c.auction.default_site.domain, "other.example", "domain");
    assert_str_or_null(c.auction.default_site.publisher_name, NULL, "publisher.name");
    ck_assert_int_eq(c.auction.default_banner.w, 728); /* not named: kept */

    /* From the command line, through the same rows. */
    char err[ERRLEN];
    ck_assert_int_eq(
        proto_config_set(&c, "auction.default_banner", "{\"w\":320,\"h\":50}", err, ERRLEN),
        PROTO_OK);
    ck_assert_int_eq(c.auction.default_banner.w, 320);
    ck_assert_int_eq(c.auction.default_banner.h, 50);
    proto_config_free(&c);
}
END_TEST

START_TEST(default_banner_and_site_bad) {
    static const struct {
        const char *json, *message;
    } cases[] = {
        {"{\"auction\":{\"default_banner\":{\"w\":300}}}", "auction.default_banner.h: required"},
        {"{\"auction\":{\"default_banner\":{\"w\":0,\"h\":250}}}",
         "auction.default_banner.w: expected an integer between 1 and 65535"},
        {"{\"auction\":{\"default_banner\":{\"w\":300,\"h\":65536}}}",
         "auction.default_banner.h: expected an integer between 1 and 65535"},
        {"{\"auction\":{\"default_banner\":{\"w\":300.5,\"h\":250}}}",
         "auction.default_banner.w: expected an integer between 1 and 65535"},
        {"{\"auction\":{\"default_banner\":{\"w\":\"300\",\"h\":250}}}",
         "auction.default_banner.w: expected an integer between 1 and 65535"},
        {"{\"auction\":{\"default_banner\":{\"w\":1,\"h\":1,\"format\":[]}}}",
         "auction.default_banner.format: unknown key"},
        {"{\"auction\":{\"default_banner\":null}}",
         "auction.default_banner: expected an object {\"w\", \"h\"} of integers between 1 and "
         "65535"},
        {"{\"auction\":{\"default_banner\":[300,250]}}", "auction.default_banner: expected*"},
        {"{\"auction\":{\"default_site\":\"example.com\"}}", "auction.default_site: expected*"},
        {"{\"auction\":{\"default_site\":null}}", "auction.default_site: expected*"},
        {"{\"auction\":{\"default_site\":{\"domain\":\"\"}}}",
         "auction.default_site.domain: expected a string of 1 to 256 characters or null"},
        {"{\"auction\":{\"default_site\":{\"id\":7}}}",
         "auction.default_site.id: expected a string of 1 to 256 characters or null"},
        {"{\"auction\":{\"default_site\":{\"publisher\":\"p\"}}}",
         "auction.default_site.publisher: expected an object"},
        {"{\"auction\":{\"default_site\":{\"publisher\":{\"domain\":\"p\"}}}}",
         "auction.default_site.publisher.domain: unknown key"},
        {"{\"auction\":{\"default_site\":{\"bundle\":\"b\"}}}",
         "auction.default_site.bundle: unknown key"},
        {"{\"auction\":{\"default_site\":{\"id\":\"a\",\"id\":\"b\"}}}",
         "auction.default_site.id: duplicate key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proto_config c;
        char err[ERRLEN];
        defaults(&c);
        parse_ok(&c, "{\"auction\":{\"default_banner\":{\"w\":728,\"h\":90},"
                     "\"default_site\":{\"id\":\"keep\"}}}");
        ck_assert_int_eq(parse(&c, cases[i].json, err), PROTO_ERR_FIELD);
        ck_assert_msg(message_matches(err, cases[i].message), "%s:\n got  %s\n want %s",
                      cases[i].json, err, cases[i].message);
        /* a refused document changes nothing */
        ck_assert_int_eq(c.auction.default_banner.w, 728);
        ck_assert_int_eq(c.auction.default_banner.h, 90);
        assert_str_or_null(c.auction.default_site.id, "keep", "default_site.id");
        assert_str_or_null(c.auction.default_site.domain, NULL, "default_site.domain");
        proto_config_free(&c);
    }
    /* 256 characters (not bytes) is the most */
    proto_config c;
    defaults(&c);
    char *ok = repeat('a', 256), *over = repeat('a', 257), doc[1024], err[ERRLEN];
    snprintf(doc, sizeof doc, "{\"auction\":{\"default_site\":{\"domain\":\"%s\"}}}", ok);
    parse_ok(&c, doc);
    ck_assert_uint_eq(strlen(c.auction.default_site.domain), 256);
    snprintf(doc, sizeof doc, "{\"auction\":{\"default_site\":{\"domain\":\"%s\"}}}", over);
    ck_assert_int_eq(parse(&c, doc, err), PROTO_ERR_FIELD);
    ck_assert_str_eq(err, "auction.default_site.domain: expected a string of 1 to 256 characters "
                          "or null");
    free(ok);
    free(over);
    proto_config_free(&c);
}
END_TEST

START_TEST(default_banner_and_site_help) {
    static const char *const lines[] = {
        "  auction.default_banner = {\"w\":300,\"h\":250}  (",
        "  auction.default_banner.w  (required; integer 1..65535)\n",
        "  auction.default_site = {\"id\":\"default\",\"domain\":\"example.com\"}  (",
        "  auction.default_site.publisher.name = null  (",
    };
    proto_buf out;
    proto_buf_init(&out);
    ck_assert_int_eq(proto_config_print_keys(&out), 0);
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        ck_assert_msg(strstr(out.data, lines[i]) != NULL, "missing: %s", lines[i]);
    proto_buf_free(&out);
}
END_TEST

/* ---- Suite -------------------------------------------------------------- */

static Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("defaults");
    tcase_add_test(tc, defaults_are_spec_7);
    tcase_add_test(tc, spec_document_equals_defaults);
    tcase_add_test(tc, free_is_idempotent);
    tcase_add_test(tc, print_keys_lists_every_key);
    tcase_add_test(tc, print_keys_hides_secrets);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_add_test(tc, exchange_json_is_spec_7);
    tcase_add_test(tc, load_exchange_json);
    tcase_add_test(tc, partial_file_keeps_defaults);
    tcase_add_test(tc, documents_layer);
    tcase_add_test(tc, load_file_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("keys");
    tcase_add_test(tc, every_key_accepted);
    tcase_add_loop_test(tc, good_endpoint, 0,
                        (int)(sizeof good_endpoints / sizeof good_endpoints[0]));
    tcase_add_loop_test(tc, price_increment_exact, 0,
                        (int)(sizeof good_money / sizeof good_money[0]));
    tcase_add_loop_test(tc, alert_metric_accepted, 0,
                        (int)(sizeof metric_names / sizeof metric_names[0]));
    tcase_add_test(tc, alert_metric_names);
    tcase_add_test(tc, alert_rule_shapes);
    tcase_add_test(tc, alert_rules_bounded);
    tcase_add_test(tc, alert_decode);
    suite_add_tcase(s, tc);

    tc = tcase_create("secrets");
    tcase_add_test(tc, password_needs_username);
    tcase_add_test(tc, secrets_never_echoed);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_loop_test(tc, bad_document, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(tc, failed_parse_changes_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, deep_nesting);
    tcase_add_test(tc, long_strings);
    tcase_add_test(tc, allowed_hosts_bounds);
    tcase_add_test(tc, nul_bytes);
    tcase_add_test(tc, not_nul_terminated);
    tcase_add_test(tc, too_large);
    tcase_add_test(tc, many_bidders);
    tcase_add_test(tc, duplicate_among_many);
    suite_add_tcase(s, tc);

    tc = tcase_create("advertiser");
    tcase_add_test(tc, budget_good);
    tcase_add_test(tc, budget_kept_and_set);
    tcase_add_test(tc, advertiser_good);
    tcase_add_test(tc, advertiser_bad);
    suite_add_tcase(s, tc);

    tc = tcase_create("set");
    tcase_add_test(tc, set_good);
    tcase_add_test(tc, set_bad);
    suite_add_tcase(s, tc);

    tc = tcase_create("spec17");
    tcase_add_test(tc, default_banner_and_site);
    tcase_add_test(tc, default_banner_and_site_bad);
    tcase_add_test(tc, default_banner_and_site_help);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* fuzz_config.c -- libFuzzer target: a configuration document (SPEC 7) and
 * the same bytes as an advertiser:targeting:{id} value (SPEC 6).
 *
 * The one idea: proto_config_parse is all or nothing. A document that fails
 * must leave the config byte for byte as it was (the struct is compared
 * whole, pointers included); one that succeeds must leave every key inside
 * its row's bounds, must apply a second time on top of itself, and its
 * profiles.default must encode into a profile the exchange reads back.
 * An input "@path=value" also goes through proto_config_set, the command
 * line override (no JSON document starts with '@'). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz_common.h"

#define ADVERTISER_ID "adv-fuzz"

static int is_url(const char *s) {
    return s != NULL && (strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0);
}

static void check_bidder(const proto_bidder_conf *b) {
    fuzz_check(b->id != NULL && b->id[0] != '\0', "bidder: no id");
    fuzz_check(is_url(b->endpoint), "bidder: endpoint not http(s)");
    fuzz_check(b->max_concurrent >= 1 && b->max_concurrent <= 100000,
               "bidder: max_concurrent out of range");
    fuzz_check((b->ninterests == 0) == (b->interests == NULL), "bidder: interests and count");
    for (size_t i = 0; i < b->ninterests; i++)
        fuzz_check(b->interests[i] != NULL && b->interests[i][0] != '\0', "bidder: empty interest");
}

/* What the exchange writes on a profile miss must decode as a profile. */
static void check_default_profile(const cJSON *defaults) {
    proto_buf out;
    proto_buf_init(&out);
    fuzz_check(proto_profile_encode(defaults, "u-fuzz", &out) == 0, "profile: encode failed");
    cJSON_Delete(fuzz_parse_output(&out, "proto_profile_encode"));
    proto_profile p;
    char err[256];
    fuzz_check(proto_profile_decode(out.data, out.len, &p, err, sizeof err) == PROTO_OK,
               "profile: profiles.default does not decode as a profile");
    proto_profile_free(&p);
    proto_buf_free(&out);
}

static void check_config(const proto_config *c) {
    fuzz_check(c->mqtt.host != NULL && c->redis.host != NULL, "config: no host");
    fuzz_check(c->mqtt.port >= 1 && c->mqtt.port <= 65535, "config: mqtt.port");
    fuzz_check(c->redis.port >= 1 && c->redis.port <= 65535, "config: redis.port");
    fuzz_check(c->mqtt.qos == 0 || c->mqtt.qos == 1, "config: mqtt.qos");
    fuzz_check(c->mqtt.password == NULL || c->mqtt.username != NULL,
               "config: mqtt.password without mqtt.username");
    fuzz_check(!c->mqtt.tls || c->mqtt.tls_cafile != NULL, "config: tls without cafile");
    fuzz_check((c->mqtt.tls_certfile == NULL) == (c->mqtt.tls_keyfile == NULL),
               "config: certfile without keyfile");
    fuzz_check(c->auction.type == AUCTION_FIRST_PRICE || c->auction.type == AUCTION_SECOND_PRICE,
               "config: auction.type");
    fuzz_check(c->auction.tmax_ms >= 1 && c->auction.tmax_ms <= 10000, "config: tmax_ms");
    fuzz_check(c->auction.max_bidders >= 1 && c->auction.max_bidders <= 100, "config: max_bidders");
    fuzz_check(c->auction.price_increment_micros >= 0 &&
                   c->auction.price_increment_micros <= AUCTION_PRICE_MAX_MICROS,
               "config: price_increment");
    fuzz_check(c->auction.currency != NULL && strlen(c->auction.currency) == 3, "config: currency");
    fuzz_check(cJSON_IsObject(c->profiles.default_profile), "config: profiles.default");
    fuzz_check((c->nbidders == 0) == (c->bidders == NULL), "config: bidders and count");
    for (size_t i = 0; i < c->nbidders; i++) {
        check_bidder(&c->bidders[i]);
        for (size_t j = 0; j < i; j++)
            fuzz_check(strcmp(c->bidders[i].id, c->bidders[j].id) != 0,
                       "config: duplicate bidder id");
    }
    fuzz_check(c->limits.max_request_bytes >= 64 && c->limits.max_response_bytes >= 64,
               "config: limits");
    fuzz_check((c->nalerts == 0) == (c->alerts == NULL), "config: alerts and count");
    for (size_t i = 0; i < c->nalerts; i++) {
        const proto_alert_conf *a = &c->alerts[i];
        fuzz_check(a->name != NULL && a->metric >= 0 && a->metric < PROTO_ALERT_METRIC_COUNT &&
                       strcmp(proto_alert_metric_str(a->metric), "unknown") != 0,
                   "config: alert metric");
        fuzz_check(a->window_s >= 1 && a->window_s <= PROTO_ALERT_WINDOW_MAX_S,
                   "config: alert window_s");
        fuzz_check(isfinite(a->above), "config: alert above");
        for (size_t j = 0; j < i; j++)
            fuzz_check(strcmp(a->name, c->alerts[j].name) != 0, "config: duplicate alert name");
    }
    fuzz_check(c->log.level >= PROTO_LOG_DEBUG && c->log.level <= PROTO_LOG_ERROR,
               "config: log.level");
    check_default_profile(c->profiles.default_profile);
}

/* Apply `text` to fresh defaults through `apply`; all or nothing. */
static void check_apply(const char *text, size_t size, int set) {
    proto_config c, before;
    char err[512];
    fuzz_check(proto_config_defaults(&c) == PROTO_OK, "config: defaults");
    memcpy(&before, &c, sizeof c);
    proto_err e;
    if (!set) {
        e = proto_config_parse(&c, text, size, err, sizeof err);
    } else {
        /* "@path=value", as NUL-terminated strings (a command line has no NUL). */
        char *path = strndup(text + 1, size - 1);
        fuzz_check(path != NULL, "config: strndup");
        char *value = strchr(path, '=');
        if (value != NULL) *value++ = '\0';
        e = proto_config_set(&c, path, value != NULL ? value : "", err, sizeof err);
        free(path);
    }
    if (e != PROTO_OK) {
        fuzz_check(memcmp(&before, &c, sizeof c) == 0, "config: a failed parse changed it");
        fuzz_check(err[0] != '\0', "config: error without a message");
    } else {
        check_config(&c);
        if (!set)
            fuzz_check(proto_config_parse(&c, text, size, err, sizeof err) == PROTO_OK,
                       "config: a valid document does not apply twice");
        check_config(&c);
    }
    proto_config_free(&c);
}

static void check_advertiser(const char *text, size_t size) {
    proto_bidder_conf b;
    char err[256];
    proto_err e = proto_advertiser_decode(ADVERTISER_ID, text, size, &b, err, sizeof err);
    if (e == PROTO_OK) {
        check_bidder(&b);
        fuzz_check(strcmp(b.id, ADVERTISER_ID) == 0, "advertiser: id");
    } else {
        fuzz_check(b.id == NULL && b.endpoint == NULL && b.interests == NULL && b.ninterests == 0,
                   "advertiser: fields kept on error");
        fuzz_check(err[0] != '\0', "advertiser: error without a message");
    }
    proto_bidder_conf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    check_apply(text, size, 0);
    if (size > 0 && text[0] == '@') check_apply(text, size, 1);
    check_advertiser(text, size);
    return 0;
}

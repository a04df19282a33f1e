/* bench-request.c -- what one bid request of the maximum size costs the
 * exchange's CPU (SPEC 15, docs/security.md, docs/benchmarks.md).
 *
 * SPEC 15 promises that "a request of the maximum size costs no more than
 * a few hundred microseconds". This program measures it, on the code the
 * exchange runs (rtb_core: proto's decoders and encoder, the registry's
 * choice of bidders), without servers: for each request it times
 *
 *   decode   proto_bid_request_decode of the MQTT payload (SPEC 2),
 *   profile  proto_profile_decode of the user's stored profile (SPEC 3.2),
 *   match    rtb_registry_choose over every advertiser (SPEC 3.3),
 *   encode   proto_openrtb_request_encode of the BidRequest (SPEC 5),
 *
 * and prints per-request microseconds (mean and p99) per phase and in all.
 * The requests are limits.max_request_bytes (64 KiB) exactly, with 64
 * user_context.interests of 64 characters, against a profile of 64 more and
 * advertisers of 64 interests of 64 characters each; the rest of the 64 KiB
 * is user_context filler (forwarded to bidders as it is), in three shapes:
 * one long string; the most JSON values user_context may hold (256 in all:
 * small numbers, the costlier ones to parse and print) and a string; and
 * small values by the thousand, which the decoder refuses before parsing
 * (over 4096 JSON values): that row times the refusal. Every fifth advertiser matches on its last
 * interest; the others are walked to the end and do not.
 *
 * Not a test: it asserts nothing about speed, it reports it. The one idea:
 * each phase is timed on its own with CLOCK_MONOTONIC around exactly the
 * call the exchange makes, after a warm-up, so the figures add up to the
 * request's cost on the loop. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "rtb/log.h"
#include "rtb/registry.h"

#define REQUEST_BYTES 65536 /* limits.max_request_bytes' default (SPEC 2) */
#define CHOSEN_MAX 100      /* auction.max_bidders' bound */
#define WARMUP 200

enum { PH_DECODE, PH_PROFILE, PH_MATCH, PH_ENCODE, PH_TOTAL, PH_COUNT };
static const char *const phase_names[PH_COUNT] = {"decode", "profile", "match", "encode", "total"};

typedef struct opts {
    int advertisers, interests, count, max_bidders;
} opts;

static void die(const char *what) {
    fprintf(stderr, "bench-request: %s\n", what);
    exit(1);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* An interest of exactly 64 characters: `tag` padded with '-'. */
static void interest(char out[PROTO_INTEREST_MAX_CHARS + 1], const char *tag) {
    memset(out, '-', PROTO_INTEREST_MAX_CHARS);
    memcpy(out, tag, strlen(tag));
    out[PROTO_INTEREST_MAX_CHARS] = '\0';
}

/* A JSON array of the user interests `prefix`-0 .. `prefix`-(n-1). */
static size_t user_interests(char *out, size_t len, const char *prefix, int n) {
    size_t at = (size_t)snprintf(out, len, "[");
    for (int i = 0; i < n; i++) {
        char tag[32], s[PROTO_INTEREST_MAX_CHARS + 1];
        snprintf(tag, sizeof tag, "%s-%02d", prefix, i);
        interest(s, tag);
        at += (size_t)snprintf(out + at, len - at, "%s\"%s\"", i ? "," : "", s);
    }
    at += (size_t)snprintf(out + at, len - at, "]");
    return at;
}

/* The filler's shapes (see the top). */
enum { SHAPE_STRING, SHAPE_MOST_VALUES, SHAPE_FLOOD };

/* A bid request of exactly REQUEST_BYTES: 64 interests of 64 characters in
 * user_context, and filler after them in `shape`. Returns malloc'd text. */
static char *max_request(int seq, int shape) {
    char *buf = malloc(REQUEST_BYTES + 1), interests[8192], values[1024] = "";
    if (!buf) die("out of memory");
    user_interests(interests, sizeof interests, "ctx", PROTO_INTERESTS_MAX);
    int small_values = shape == SHAPE_FLOOD;
    if (shape == SHAPE_MOST_VALUES) {
        /* user_context, its interests array and `pad` are 3 values, the
         * interests 64: the rest of 256 are zeros. */
        size_t at = 0;
        for (int i = 0; i < PROTO_USER_CONTEXT_MAX_VALUES - 3 - PROTO_INTERESTS_MAX - 1; i++)
            at += (size_t)snprintf(values + at, sizeof values - at, "%s0", i ? "," : "");
        snprintf(values + at, sizeof values - at, "],\"pad2\":");
    }
    int head = snprintf(buf, REQUEST_BYTES + 1,
                        "{\"request_id\":\"r-%06d\",\"user_id\":\"u-1\",\"ad_slot_id\":\"slot-1\","
                        "\"floor_price\":1.5,\"timestamp\":1795000000.123,"
                        "\"user_context\":{\"interests\":%s,\"pad\":%s%s%s",
                        seq, interests, shape == SHAPE_STRING ? "" : "[", values,
                        small_values ? "" : "\"");
    const char *tail = small_values ? "0]}}" : "\"}}";
    size_t at = (size_t)head, end = REQUEST_BYTES - strlen(tail);
    if (at >= end) die("the interests alone are over the size");
    if (small_values) {
        while (at + 2 <= end) { /* ",0" pairs; "0" first */
            memcpy(buf + at, "0,", 2);
            at += 2;
        }
        if (at < end) buf[at++] = ' '; /* an odd byte left: whitespace */
    } else {
        memset(buf + at, 'x', end - at);
        at = end;
    }
    memcpy(buf + at, tail, strlen(tail) + 1);
    if (strlen(buf) != REQUEST_BYTES) die("the request is not of the maximum size");
    return buf;
}

/* Registry entries for o->advertisers advertisers of o->interests
 * interests; every fifth one's last interest is one of the user's. */
static void apply_advertisers(rtb_registry *reg, const opts *o) {
    store_entry *e = calloc((size_t)o->advertisers, sizeof *e);
    char **ids = calloc((size_t)o->advertisers, sizeof *ids);
    char **values = calloc((size_t)o->advertisers, sizeof *values);
    if (!e || !ids || !values) die("out of memory");
    for (int a = 0; a < o->advertisers; a++) {
        size_t len = (size_t)o->interests * (PROTO_INTEREST_MAX_CHARS + 3) + 128, at;
        ids[a] = malloc(16);
        values[a] = malloc(len);
        if (!ids[a] || !values[a]) die("out of memory");
        snprintf(ids[a], 16, "adv-%d", a);
        at = (size_t)snprintf(values[a], len, "{\"interests\":[");
        for (int i = 0; i < o->interests; i++) {
            char tag[32], s[PROTO_INTEREST_MAX_CHARS + 1];
            if (a % 5 == 0 && i == o->interests - 1)
                snprintf(tag, sizeof tag, "ctx-%02d", a % PROTO_INTERESTS_MAX);
            else
                snprintf(tag, sizeof tag, "adv-%d-%02d", a, i);
            interest(s, tag);
            at += (size_t)snprintf(values[a] + at, len - at, "%s\"%s\"", i ? "," : "", s);
        }
        snprintf(values[a] + at, len - at, "],\"endpoint\":\"http://127.0.0.1:9/bid\"}");
        e[a] = (store_entry){.id = ids[a], .value = values[a], .len = strlen(values[a])};
    }
    rtb_registry_apply(reg, e, (size_t)o->advertisers);
    if (rtb_registry_active(reg) != (size_t)o->advertisers) die("an advertiser was refused");
    for (int a = 0; a < o->advertisers; a++) {
        free(ids[a]);
        free(values[a]);
    }
    free(ids);
    free(values);
    free(e);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Time o->count requests (after WARMUP) of one shape; print its row. */
static void run_shape(rtb_registry *reg, const proto_config *cfg, const opts *o, int shape,
                      const char *profile_json, const char *label) {
    int n = o->count + WARMUP;
    int64_t *t[PH_COUNT];
    for (int p = 0; p < PH_COUNT; p++)
        if (!(t[p] = calloc((size_t)n, sizeof(int64_t)))) die("out of memory");
    char **payloads = calloc((size_t)n, sizeof *payloads);
    if (!payloads) die("out of memory");
    for (int i = 0; i < n; i++)
        payloads[i] = max_request(i, shape);
    proto_buf body;
    proto_buf_init(&body);
    rtb_bidder *chosen[CHOSEN_MAX];
    size_t eligible = 0, body_len = 0;
    char refusal[256] = "";
    for (int i = 0; i < n; i++) {
        char err[256];
        proto_bid_request req;
        proto_profile prof;
        int64_t t0 = now_ns();
        proto_err e = proto_bid_request_decode(payloads[i], REQUEST_BYTES, REQUEST_BYTES, &req, err,
                                               sizeof err);
        int64_t t1 = now_ns();
        if (e != PROTO_OK && shape == SHAPE_FLOOD) { /* refused: the refusal is its cost */
            int64_t d[PH_COUNT] = {t1 - t0, 0, 0, 0, t1 - t0};
            for (int p = 0; p < PH_COUNT; p++)
                t[p][i] = d[p];
            snprintf(refusal, sizeof refusal, "%s", err);
            continue;
        }
        if (e != PROTO_OK) die(err);
        if (proto_profile_decode(profile_json, strlen(profile_json), &prof, err, sizeof err) !=
            PROTO_OK)
            die(err);
        int64_t t2 = now_ns();
        eligible = rtb_registry_choose(reg, prof.interests, req.context_interests, chosen,
                                       (size_t)o->max_bidders, (size_t)o->max_bidders);
        int64_t t3 = now_ns();
        proto_buf_reset(&body);
        if (proto_openrtb_request_encode(&req, &prof, cfg, 95, &body) != 0)
            die("out of memory encoding");
        int64_t t4 = now_ns();
        body_len = body.len;
        proto_bid_request_free(&req);
        proto_profile_free(&prof);
        int64_t d[PH_COUNT] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0};
        for (int p = 0; p < PH_COUNT; p++)
            t[p][i] = d[p];
    }
    if (*refusal)
        printf("| %s | refused: %s |", label, refusal);
    else
        printf("| %s | %zu B |", label, body_len);
    for (int p = 0; p < PH_COUNT; p++) {
        int64_t *v = t[p] + WARMUP, sum = 0;
        for (int i = 0; i < o->count; i++)
            sum += v[i];
        qsort(v, (size_t)o->count, sizeof *v, cmp_i64);
        double mean = (double)sum / o->count / 1000.0;
        double p99 = (double)v[(size_t)((o->count - 1) * 0.99)] / 1000.0;
        if (p == PH_TOTAL)
            printf(" %.1f | %.1f |", mean, p99);
        else
            printf(" %.1f |", mean);
    }
    printf(" %zu |\n", eligible);
    for (int i = 0; i < n; i++)
        free(payloads[i]);
    free(payloads);
    for (int p = 0; p < PH_COUNT; p++)
        free(t[p]);
    proto_buf_free(&body);
}

/* "machine: 2 CPUs, <model name>, Linux <release> <arch>". */
static void print_machine(void) {
    char model[256] = "unknown CPU", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            snprintf(model, sizeof model, "%s", colon + 2);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    }
    if (f) fclose(f);
    struct utsname u;
    if (uname(&u) != 0) memset(&u, 0, sizeof u);
    printf("machine: %ld CPUs, %s, %s %s %s\n", sysconf(_SC_NPROCESSORS_ONLN), model, u.sysname,
           u.release, u.machine);
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench-request [--advertisers N] [--interests M] [--count K] "
               "[--max-bidders B]\n\n"
               "Times decode, profile decode, bidder choice and BidRequest encode of bid\n"
               "requests of the maximum size (64 KiB, 64 interests of 64 characters) against\n"
               "N advertisers (50) of M interests (64) each; K requests per shape (2000);\n"
               "at most B bidders chosen (10). Prints microseconds per request.\n");
}

static int parse_count(const char *s, int lo, int hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv) {
    opts o = {.advertisers = 50, .interests = 64, .count = 2000, .max_bidders = 10};
    static const struct option longopts[] = {
        {"advertisers", required_argument, NULL, 'a'},
        {"interests", required_argument, NULL, 'i'},
        {"count", required_argument, NULL, 'c'},
        {"max-bidders", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, bad = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'a')
            bad |= parse_count(optarg, 1, 100000, &o.advertisers);
        else if (c == 'i')
            bad |= parse_count(optarg, 1, 1000, &o.interests);
        else if (c == 'c')
            bad |= parse_count(optarg, 10, 10000000, &o.count);
        else if (c == 'b')
            bad |= parse_count(optarg, 1, CHOSEN_MAX, &o.max_bidders);
        else if (c == 'h') {
            usage(stdout);
            return 0;
        } else
            bad = 1;
    }
    if (bad || optind < argc) {
        usage(stderr);
        return 2;
    }
    rtb_log_set_level(PROTO_LOG_WARN); /* no "advertiser added" lines */
    proto_config cfg;
    if (proto_config_defaults(&cfg) != PROTO_OK) die("no default config");
    rtb_registry *reg = rtb_registry_new(&cfg, NULL);
    if (!reg) die("cannot make the registry");
    apply_advertisers(reg, &o);
    char profile[8192];
    size_t at = (size_t)snprintf(profile, sizeof profile, "{\"user_id\":\"u-1\",\"interests\":");
    at += user_interests(profile + at, sizeof profile - at, "prof", PROTO_INTERESTS_MAX);
    snprintf(profile + at, sizeof profile - at,
             ",\"demographics\":{\"age\":34,\"country\":\"FR\"},\"ltv_score\":0.7}");

    print_machine();
    printf("bench-request: %d requests per shape of %d bytes (64 user_context.interests and a\n"
           "profile of 64, each of 64 characters), %d advertisers x %d interests of 64\n"
           "characters, max_bidders %d; microseconds per request, mean (and p99 of the total)\n\n",
           o.count, REQUEST_BYTES, o.advertisers, o.interests, o.max_bidders);
    printf("| user_context filler | BidRequest |");
    for (int p = 0; p < PH_COUNT; p++)
        printf(p == PH_TOTAL ? " %s µs | %s p99 µs |" : " %s µs |", phase_names[p], phase_names[p]);
    printf(" chosen |\n| --- | ---: |");
    for (int p = 0; p <= PH_COUNT; p++)
        printf(" ---: |");
    printf(" ---: |\n");
    run_shape(reg, &cfg, &o, SHAPE_STRING, profile, "one string");
    run_shape(reg, &cfg, &o, SHAPE_MOST_VALUES, profile,
              "the most values user_context may hold (256), then a string");
    run_shape(reg, &cfg, &o, SHAPE_FLOOD, profile, "small values (`0,0,…`) by the thousand");
    rtb_registry_free(reg);
    proto_config_free(&cfg);
    return 0;
}

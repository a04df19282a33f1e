/* test_loadgen.c -- rtb-loadgen (SPEC 8): its histogram, and runs against live servers.
 *
 * Two kinds of test. The histogram (tools/histogram.c, built into this test
 * too) is checked without any server: bucket layout, and percentiles of known
 * distributions against the exact order statistics, within 1 %. The tool
 * itself is run as a program against the shared fixture's redis-server and
 * mosquitto (tests/fixture.h): with a live rtb-exchange and rtb-bidder (every
 * request gets its result), with the exchange killed (requests are lost, exit
 * 1), against nothing (exit 2), and with this test playing the exchange by
 * PUBLISHing results itself, to check the matching: duplicates, foreign ids,
 * statuses. With --events, the ad events it sends (SPEC 10) are checked in
 * the exchange's Redis counters. With --imps (SPEC 17) it sends multi-imp
 * requests with site, device and a deal: the bidder must see them, and
 * every result must carry the `imps` array SPEC 17 promises.
 *
 * The one idea: rtb-loadgen --json prints one JSON line on stdout; fx_spawn
 * sends its output to a log file in the env's dir, and the test reads that
 * line back after the process exited. */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/fixture.h"
#include "tools/histogram.h"

#define READY_WAIT_MS 10000 /* exchange start-up: registry, MQTT connect, subscribe */
#define RUN_WAIT_MS 60000   /* one loadgen run, generous */

static fx_env *env;
static int run_seq;

static void setup(void) {
    env = fx_start();
    run_seq = 0;
}

static void teardown(void) {
    fx_stop(env);
    env = NULL;
}

/* ---- the histogram ------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(0x2545F4914F6CDD1D);
}

/* Uniform in [0, 1). */
static double rng_unit(uint64_t *s) {
    return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The exact pct-th percentile of sorted v[0..n-1]: the value of rank
 * ceil(pct / 100 * n), computed in integers (pct in tenths). */
static uint64_t exact_percentile(const uint64_t *v, size_t n, int pct_tenths) {
    uint64_t rank = ((uint64_t)pct_tenths * n + 999) / 1000;
    if (rank < 1) rank = 1;
    return v[rank - 1];
}

/* Records v[0..n-1] and checks p50..p99.99 and max against the exact values. */
static void check_distribution(const char *name, uint64_t *v, size_t n) {
    static histogram h; /* 30 KiB: not on the stack */
    static const int pcts[] = {1, 100, 250, 500, 750, 900, 950, 990, 999, 1000};
    histogram_init(&h);
    for (size_t i = 0; i < n; i++)
        histogram_record(&h, v[i]);
    qsort(v, n, sizeof v[0], cmp_u64);
    ck_assert_uint_eq(h.total, n);
    ck_assert_uint_eq(h.min_ns, v[0]);
    ck_assert_uint_eq(h.max_ns, v[n - 1]);
    for (size_t k = 0; k < sizeof pcts / sizeof pcts[0]; k++) {
        uint64_t want = exact_percentile(v, n, pcts[k]);
        uint64_t got = histogram_percentile(&h, pcts[k] / 10.0);
        double err = fabs((double)got - (double)want) / (double)want;
        ck_assert_msg(err <= 0.01, "%s: p%.1f = %llu ns, exact %llu ns (error %.3f %%)", name,
                      pcts[k] / 10.0, (unsigned long long)got, (unsigned long long)want, err * 100);
    }
}

START_TEST(histogram_buckets_tile_the_range) {
    uint64_t prev_hi = 0;
    for (int b = 0; b < HISTOGRAM_BUCKETS; b++) {
        uint64_t lo, hi;
        histogram_bucket_range(b, &lo, &hi);
        ck_assert_msg(b == 0 || lo == prev_hi + 1, "bucket %d starts at %llu, not %llu", b,
                      (unsigned long long)lo, (unsigned long long)prev_hi + 1);
        ck_assert_int_eq(histogram_bucket(lo), b);
        ck_assert_int_eq(histogram_bucket(hi), b);
        /* width at most 1/128 of the lower bound: the middle is within 0.4 % */
        ck_assert_msg(lo < 128 || (hi - lo + 1) * 128 <= lo, "bucket %d [%llu, %llu] too wide", b,
                      (unsigned long long)lo, (unsigned long long)hi);
        prev_hi = hi;
    }
    ck_assert_uint_eq(prev_hi, HISTOGRAM_MAX_NS);
    ck_assert_uint_ge(HISTOGRAM_MAX_NS, UINT64_C(60000000000)); /* 60 s */
    ck_assert_int_eq(histogram_bucket(UINT64_MAX), HISTOGRAM_BUCKETS - 1);
}
END_TEST

START_TEST(histogram_empty_and_single) {
    static histogram h;
    histogram_init(&h);
    ck_assert_uint_eq(histogram_percentile(&h, 50), 0);
    ck_assert_uint_eq(histogram_percentile(&h, 100), 0);
    histogram_record(&h, 123456789);
    ck_assert_uint_eq(histogram_percentile(&h, 50), 123456789); /* clamped to min = max */
    ck_assert_uint_eq(histogram_percentile(&h, 99.9), 123456789);
    ck_assert_uint_eq(h.max_ns, 123456789);
    /* beyond the range: counted in the top bucket, max kept exactly */
    histogram_record(&h, UINT64_C(100000000000));
    ck_assert_uint_eq(h.total, 2);
    ck_assert_uint_eq(h.max_ns, UINT64_C(100000000000));
    ck_assert_uint_le(histogram_percentile(&h, 99), HISTOGRAM_MAX_NS);
    ck_assert_uint_eq(histogram_percentile(&h, 100), UINT64_C(100000000000));
}
END_TEST

START_TEST(histogram_percentiles_within_one_percent) {
    enum { N = 200000 };
    uint64_t *v = malloc(N * sizeof *v);
    ck_assert_ptr_nonnull(v);
    uint64_t s = 42;

    for (size_t i = 0; i < N; i++) /* uniform 1 us .. 1 s */
        v[i] = 1000 + (uint64_t)(rng_unit(&s) * 999999000.0);
    check_distribution("uniform 1us-1s", v, N);

    for (size_t i = 0; i < N; i++) /* log-uniform over the whole range, 1 us .. 60 s */
        v[i] = (uint64_t)(1000.0 * pow(6e7, rng_unit(&s)));
    check_distribution("log-uniform 1us-60s", v, N);

    for (size_t i = 0; i < N; i++) /* exponential, mean 5 ms, from 1 us */
        v[i] = 1000 + (uint64_t)(-5e6 * log(1.0 - rng_unit(&s)));
    check_distribution("exponential 5ms", v, N);

    for (size_t i = 0; i < N; i++) /* a tail: 99.5 % near 1 ms, 0.5 % near 2 s */
        v[i] = (rng_unit(&s) < 0.995 ? 1000000 : 2000000000) + (rng_next(&s) % 1000);
    check_distribution("bimodal", v, N);

    for (size_t i = 0; i < N; i++) /* the ends of the range */
        v[i] = i % 2 ? 1000 : UINT64_C(60000000000);
    check_distribution("1us and 60s", v, N);

    for (size_t i = 0; i < N; i++) /* every value a bucket boundary's neighbour */
        v[i] = (UINT64_C(1) << (10 + i % 26)) + (i % 3) - 1;
    check_distribution("powers of two +-1", v, N);
    free(v);
}
END_TEST

/* ---- running rtb-loadgen ------------------------------------------------------------ */

typedef struct run_result {
    int exit_status; /* -1: killed by a signal */
    cJSON *json;     /* the summary, or NULL when none was printed */
    char log[32];
} run_result;

/* The log must hold no sanitizer report (the ASan build). */
static void check_no_sanitizer_report(const char *log_name) {
    static const char *const reports[] = {"ERROR: AddressSanitizer", "LeakSanitizer",
                                          "runtime error:"};
    char *log = fx_read_file(env, log_name, NULL);
    ck_assert_msg(log != NULL, "%s cannot be read", log_name);
    for (size_t i = 0; i < sizeof reports / sizeof reports[0]; i++) {
        if (strstr(log, reports[i]) != NULL) {
            fx_dump_log(env, log_name);
            free(log);
            ck_abort_msg("%s has a sanitizer report (%s)", log_name, reports[i]);
        }
    }
    free(log);
}

/* Starts $RTB_LOADGEN with the env's broker and Redis and the given extra
 * arguments (NULL-terminated); its output goes to r->log. Returns its PID. */
static pid_t spawn_loadgen(const char *const args[], run_result *r) {
    snprintf(r->log, sizeof r->log, "loadgen-%d.log", ++run_seq);
    char mqtt[64], redis[64];
    snprintf(mqtt, sizeof mqtt, "127.0.0.1:%d", fx_mqtt_port(env));
    snprintf(redis, sizeof redis, "127.0.0.1:%d", fx_redis_port(env));
    const char *argv[40] = {fx_getenv("RTB_LOADGEN"), "--mqtt", mqtt, "--redis", redis};
    size_t n = 5;
    for (size_t i = 0; args[i] != NULL && n < 39; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return fx_spawn(env, argv, r->log);
}

/* Waits for the run to end and reads its exit status and JSON line. */
static void wait_loadgen(pid_t pid, run_result *r) {
    int status = 0;
    if (fx_wait_exit(pid, RUN_WAIT_MS, &status) != 0) {
        fx_dump_log(env, r->log);
        ck_abort_msg("rtb-loadgen did not end within %d ms", RUN_WAIT_MS);
    }
    r->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    check_no_sanitizer_report(r->log);
    char *log = fx_read_file(env, r->log, NULL);
    ck_assert_ptr_nonnull(log);
    for (char *line = log; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL) *nl = '\0';
        if (line[0] == '{' && r->json == NULL) r->json = cJSON_Parse(line);
        line = nl != NULL ? nl + 1 : NULL;
    }
    free(log);
}

static run_result run_loadgen(const char *const args[]) {
    run_result r = {0};
    wait_loadgen(spawn_loadgen(args, &r), &r);
    return r;
}

static double jnum(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Asserts a number in the summary (or in one of its objects), with the log on failure. */
static void expect_num(const run_result *r, const char *object, const char *key, double want) {
    const cJSON *o = object ? cJSON_GetObjectItemCaseSensitive(r->json, object) : r->json;
    double got = jnum(o, key);
    if (got == want) return;
    fx_dump_log(env, r->log);
    ck_abort_msg("%s%s%s = %g, want %g", object ? object : "", object ? "." : "", key, got, want);
}

static run_result expect_summary(const char *const args[], int want_status) {
    run_result r = run_loadgen(args);
    if (r.json == NULL || r.exit_status != want_status) {
        fx_dump_log(env, r.log);
        ck_abort_msg("rtb-loadgen: exit status %d (want %d), summary %s", r.exit_status,
                     want_status, r.json ? "printed" : "missing");
    }
    static const char *const keys[] = {"sent",       "received",     "lost",      "duplicated",
                                       "duration_s", "offered_rate", "throughput"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        ck_assert_msg(!isnan(jnum(r.json, keys[i])), "summary lacks %s", keys[i]);
    ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r.json, "statuses"));
    ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r.json, "latency_ms"));
    return r;
}

/* ---- a live exchange ---------------------------------------------------------------- */

/* rtb-bidder with one fast fixed-price advertiser registered in Redis, and
 * rtb-exchange on a config for this env; returns once a probe request got its
 * result. Returns the exchange's PID. */
static pid_t start_exchange(void) {
    const char *specs[] = {"id=adv-1,price=fixed:2.5"};
    int port[1];
    fx_spawn_bidder(env, specs, 1, port);
    char value[200];
    snprintf(value, sizeof value, "{\"interests\":[],\"endpoint\":\"http://127.0.0.1:%d/bid\"}",
             port[0]);
    fx_redis_do(env, "SET advertiser:targeting:adv-1 %s", value);

    char conf[1024];
    snprintf(conf, sizeof conf,
             "{\"mqtt\":{\"host\":\"127.0.0.1\",\"port\":%d,\"client_id\":\"loadgen-test-%d\","
             "\"topic\":\"rtb/requests/+\",\"qos\":1},"
             "\"redis\":{\"host\":\"127.0.0.1\",\"port\":%d},"
             "\"auction\":{\"tmax_ms\":100},"
             "\"admin\":{\"listen\":null},"
             "\"log\":{\"level\":\"info\"}}",
             fx_mqtt_port(env), (int)getpid(), fx_redis_port(env));
    char *path = fx_write_file(env, "exchange.json", conf);
    const char *argv[] = {fx_getenv("RTB_EXCHANGE"), "-c", path, NULL};
    pid_t pid = fx_spawn(env, argv, "exchange.log");
    free(path);

    fx_sub *sub = fx_sub_start(env, "auction:results:probe-*");
    fx_mqtt *pub = fx_mqtt_connect(env);
    int64_t start = fx_now_ms();
    for (int seq = 1;; seq++) {
        if (!fx_pid_alive(pid) || fx_now_ms() - start > READY_WAIT_MS) {
            fx_dump_log(env, "exchange.log");
            ck_abort_msg("rtb-exchange answered no probe within %d ms", READY_WAIT_MS);
        }
        char probe[200];
        int len = snprintf(probe, sizeof probe,
                           "{\"request_id\":\"probe-%d\",\"user_id\":\"probe\","
                           "\"ad_slot_id\":\"slot-0\",\"floor_price\":0.01}",
                           seq);
        fx_mqtt_publish(pub, "rtb/requests/probe", probe, (size_t)len, 1);
        fx_msg *m = fx_sub_next(sub, 100);
        if (m != NULL) {
            fx_msg_free(m);
            break;
        }
    }
    fx_sub_stop(sub);
    fx_mqtt_close(pub);
    return pid;
}

START_TEST(loadgen_every_request_gets_its_result) {
    pid_t exchange = start_exchange();
    const char *args[] = {"--rate", "200", "--count", "400", "--json", NULL};
    run_result r = expect_summary(args, 0);
    expect_num(&r, NULL, "sent", 400);
    expect_num(&r, NULL, "received", 400);
    expect_num(&r, NULL, "lost", 0);
    expect_num(&r, NULL, "duplicated", 0);
    expect_num(&r, "statuses", "success", 400);
    expect_num(&r, NULL, "offered_rate", 200);
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(r.json, "latency_ms");
    double p50 = jnum(lat, "p50"), p99 = jnum(lat, "p99"), max = jnum(lat, "max");
    ck_assert_msg(p50 > 0 && p50 <= p99 && p99 <= max, "latency p50 %g p99 %g max %g", p50, p99,
                  max);
    /* 400 requests at 200/s take 2 s; results come within tmax of each. */
    double d = jnum(r.json, "duration_s");
    ck_assert_msg(d >= 1.9 && d < 3.5, "duration_s %g", d);
    cJSON_Delete(r.json);

    /* QoS 0, round-robin over three connections (topics rtb/requests/0..2). */
    const char *args2[] = {"--rate",        "300", "--count", "300",     "--qos",  "0",
                           "--connections", "3",   "--floor", "0.1-0.2", "--json", NULL};
    r = expect_summary(args2, 0);
    expect_num(&r, NULL, "sent", 300);
    expect_num(&r, NULL, "received", 300);
    expect_num(&r, "statuses", "success", 300);
    cJSON_Delete(r.json);

    fx_kill(exchange, SIGTERM);
    int status = 0;
    ck_assert_int_eq(fx_wait_exit(exchange, 5000, &status), 0);
    check_no_sanitizer_report("exchange.log");
}
END_TEST

START_TEST(loadgen_counts_lost_when_exchange_is_gone) {
    pid_t exchange = start_exchange();
    fx_kill(exchange, SIGKILL);
    ck_assert_int_eq(fx_wait_exit(exchange, 5000, NULL), 0);
    const char *args[] = {"--rate", "100", "--count", "20", "--tmax-ms", "100", "--json", NULL};
    int64_t t0 = fx_now_ms();
    run_result r = expect_summary(args, 1);
    expect_num(&r, NULL, "sent", 20);
    expect_num(&r, NULL, "received", 0);
    expect_num(&r, NULL, "lost", 20);
    /* the last request is due at 0.19 s and lost 1.1 s later: the tool ends by itself */
    ck_assert_msg(fx_now_ms() - t0 < 10000, "took %lld ms", (long long)(fx_now_ms() - t0));
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(r.json, "latency_ms");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(lat, "p99")));
    cJSON_Delete(r.json);
}
END_TEST

/* ---- the event funnel (--events, SPEC 10) -------------------------------------------- */

/* The sum of field over every stats:advertiser:* hash. */
static long long advertiser_stat_sum(const char *field) {
    long long sum = 0;
    char cursor[32] = "0";
    do { /* SCAN, as the exchange does: KEYS is never used (SPEC 6) */
        redisReply *r = fx_redis_cmd(env, "SCAN %s MATCH stats:advertiser:* COUNT 1000", cursor);
        ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            redisReply *v = fx_redis_cmd(env, "HGET %s %s", keys->element[i]->str, field);
            if (v->type == REDIS_REPLY_STRING) sum += atoll(v->str);
            freeReplyObject(v);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return sum;
}

/* Polls until the exchange counted want of each field (it counts
 * asynchronously), for at most 5 s; then asserts. */
static void expect_advertiser_stats(long long impressions, long long clicks, long long duplicates,
                                    long long conversions) {
    static const char *const fields[] = {"impressions", "clicks", "duplicate_clicks",
                                         "conversions"};
    long long want[] = {impressions, clicks, duplicates, conversions}, got[4] = {0};
    int64_t start = fx_now_ms();
    for (;;) {
        int all = 1;
        for (size_t k = 0; k < 4; k++) {
            got[k] = advertiser_stat_sum(fields[k]);
            all &= got[k] == want[k];
        }
        if (all) return;
        if (fx_now_ms() - start > 5000) break;
        fx_sleep_ms(50);
    }
    fx_dump_log(env, "exchange.log");
    ck_abort_msg("stats:advertiser:* impressions %lld clicks %lld duplicate_clicks %lld "
                 "conversions %lld, want %lld %lld %lld %lld",
                 got[0], got[1], got[2], got[3], want[0], want[1], want[2], want[3]);
}

START_TEST(loadgen_events_reach_the_exchange) {
    pid_t exchange = start_exchange();
    /* Every success gets an impression, a click and a conversion. */
    const char *args[] = {"--events", "--impression-rate",
                          "1",        "--click-rate",
                          "1",        "--conversion-rate",
                          "1",        "--duplicate-click-rate",
                          "0",        "--count",
                          "50",       "--rate",
                          "200",      "--json",
                          NULL};
    run_result r = expect_summary(args, 0);
    expect_num(&r, NULL, "received", 50);
    expect_num(&r, "statuses", "success", 50);
    expect_num(&r, "events", "impressions", 50);
    expect_num(&r, "events", "clicks", 50);
    expect_num(&r, "events", "duplicate_clicks", 0);
    expect_num(&r, "events", "conversions", 50);
    expect_num(&r, "events", "publish_errors", 0);
    cJSON_Delete(r.json);
    expect_advertiser_stats(50, 50, 0, 50);

    /* Every click twice, QoS 0: the exchange's dedup counts the second ones. */
    const char *args2[] = {"--events", "--click-rate",
                           "1",        "--conversion-rate",
                           "0",        "--duplicate-click-rate",
                           "1",        "--impression-rate",
                           "1",        "--count",
                           "10",       "--qos",
                           "0",        "--json",
                           NULL};
    r = expect_summary(args2, 0);
    expect_num(&r, "events", "impressions", 10);
    expect_num(&r, "events", "clicks", 10);
    expect_num(&r, "events", "duplicate_clicks", 10);
    expect_num(&r, "events", "conversions", 0);
    cJSON_Delete(r.json);
    expect_advertiser_stats(60, 60, 10, 50);

    /* Without --events nothing is sent. */
    const char *args3[] = {"--count", "5", "--json", NULL};
    r = expect_summary(args3, 0);
    expect_num(&r, "events", "impressions", 0);
    cJSON_Delete(r.json);
    expect_advertiser_stats(60, 60, 10, 50);

    fx_kill(exchange, SIGTERM);
    int status = 0;
    ck_assert_int_eq(fx_wait_exit(exchange, 5000, &status), 0);
    check_no_sanitizer_report("exchange.log");
}
END_TEST

/* ---- this test as the exchange: matching results to requests -------------------------- */

/* Waits (at most 5 s) until rtb-loadgen's PSUBSCRIBE is in place, which
 * comes before its first request. */
static void await_psubscribe(void) {
    int64_t start = fx_now_ms();
    for (;;) {
        redisReply *rep = fx_redis_cmd(env, "PUBSUB NUMPAT");
        long long numpat = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
        freeReplyObject(rep);
        if (numpat >= 1) break;
        ck_assert_msg(fx_now_ms() - start < 5000, "rtb-loadgen did not PSUBSCRIBE");
        fx_sleep_ms(10);
    }
}

START_TEST(loadgen_matches_results_by_id) {
    /* Three requests t-0, t-1, t-2 at 0, 100 and 200 ms; lost 3 s after. */
    const char *args[] = {"--id-prefix", "t",         "--rate", "10",     "--count",
                          "3",           "--tmax-ms", "2000",   "--json", NULL};
    run_result r = {0};
    pid_t pid = spawn_loadgen(args, &r);

    await_psubscribe();
    fx_sleep_ms(600); /* all three are sent by now */
    static const char *const results[][2] = {
        {"t-0", "success"},  {"t-0", "success"},     /* the second is a duplicate */
        {"t-1", "no_bid"},   {"other-1", "success"}, /* another run: ignored */
        {"t-01", "success"}, {"t-1x", "success"},    /* not ids of this run: ignored */
        {"tt-2", "success"},
    };
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++) {
        char channel[64], payload[200];
        snprintf(channel, sizeof channel, "auction:results:%s", results[i][0]);
        snprintf(payload, sizeof payload,
                 "{\"request_id\":\"%s\",\"status\":\"%s\",\"winner\":null,\"bids\":0,"
                 "\"bidders\":0,\"timeouts\":0,\"errors\":0,\"latency_ms\":1.0}",
                 results[i][0], results[i][1]);
        fx_redis_do(env, "PUBLISH %s %s", channel, payload);
    }
    wait_loadgen(pid, &r);
    if (r.json == NULL || r.exit_status != 1) {
        fx_dump_log(env, r.log);
        ck_abort_msg("exit status %d, want 1 (something lost)", r.exit_status);
    }
    expect_num(&r, NULL, "sent", 3);
    expect_num(&r, NULL, "received", 2);
    expect_num(&r, NULL, "lost", 1);
    expect_num(&r, NULL, "duplicated", 1);
    expect_num(&r, NULL, "unexpected", 0);
    expect_num(&r, "statuses", "success", 1);
    expect_num(&r, "statuses", "no_bid", 1);
    cJSON_Delete(r.json);
}
END_TEST

/* ---- multi-imp requests (--imps, --site, --device, --deal; SPEC 17) --------------------- */

/* GET /last of an rtb-bidder advertiser: the body of the last BidRequest
 * (caller cJSON_Delete()s). */
static cJSON *last_bid_request(int port) {
    char *text = NULL;
    ck_assert_int_eq(fx_http(port, "GET", "/last", NULL, &text, 2000), 200);
    cJSON *last = cJSON_Parse(text);
    free(text);
    cJSON *body = cJSON_DetachItemFromObjectCaseSensitive(last, "body");
    cJSON_Delete(last);
    ck_assert_msg(cJSON_IsObject(body), "/last has no JSON body");
    return body;
}

static const char *jstr(const cJSON *o, const char *key) {
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* Two imps per request, with site, device and deal d-1 on every imp,
 * against a live exchange: every request gets its result, and each result
 * carries the `imps` array of SPEC 17 with both imps won (adv-d, holding
 * d-1, wins each through the deal: deals go first). The BidRequests the
 * bidder saw carry what rtb-loadgen sent. */
START_TEST(loadgen_multi_imp_requests) {
    const char *specs[] = {"id=adv-d,price=fixed:2.2,deal=d-1"};
    int port[1];
    fx_spawn_bidder(env, specs, 1, port);
    char value[200];
    snprintf(value, sizeof value, "{\"interests\":[],\"endpoint\":\"http://127.0.0.1:%d/bid\"}",
             port[0]);
    fx_redis_do(env, "SET advertiser:targeting:adv-d %s", value);
    pid_t exchange = start_exchange();

    const char *args[] = {"--imps", "2",   "--site",  "--device", "--deal", "d-1",
                          "--rate", "200", "--count", "200",      "--json", NULL};
    run_result r = expect_summary(args, 0);
    expect_num(&r, NULL, "sent", 200);
    expect_num(&r, NULL, "received", 200);
    expect_num(&r, NULL, "lost", 0);
    expect_num(&r, NULL, "duplicated", 0);
    expect_num(&r, "statuses", "success", 200);
    expect_num(&r, NULL, "imps_per_request", 2);
    /* These need the exchange's per-imp results (SPEC 17): */
    expect_num(&r, NULL, "imps_missing", 0);
    expect_num(&r, NULL, "imps_received", 400);
    expect_num(&r, NULL, "imps_won", 400);
    expect_num(&r, NULL, "deals_won", 400);
    cJSON_Delete(r.json);

    cJSON *req = last_bid_request(port[0]);
    const cJSON *imps = cJSON_GetObjectItemCaseSensitive(req, "imp");
    ck_assert_int_eq(cJSON_GetArraySize(imps), 2);
    for (int k = 0; k < 2; k++) {
        const cJSON *imp = cJSON_GetArrayItem(imps, k);
        ck_assert_pstr_eq(jstr(imp, "id"), k == 0 ? "1" : "2");
        ck_assert_ptr_nonnull(strstr(jstr(imp, "tagid"), "slot-"));
        const cJSON *banner = cJSON_GetObjectItemCaseSensitive(imp, "banner");
        ck_assert_int_eq((int)jnum(banner, "w"), 300);
        ck_assert_int_eq((int)jnum(banner, "h"), 250);
        double floor = jnum(imp, "bidfloor");
        ck_assert_msg(floor >= 0.5 && floor <= 2.0, "imp %d bidfloor %g", k, floor);
        const cJSON *deal = cJSON_GetArrayItem(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(imp, "pmp"), "deals"),
            0);
        ck_assert_pstr_eq(jstr(deal, "id"), "d-1");
        ck_assert_double_eq_tol(jnum(deal, "bidfloor"), floor, 1e-9);
    }
    const cJSON *site = cJSON_GetObjectItemCaseSensitive(req, "site");
    ck_assert_ptr_nonnull(strstr(jstr(site, "domain"), ".example"));
    ck_assert_ptr_nonnull(jstr(cJSON_GetObjectItemCaseSensitive(site, "publisher"), "id"));
    const cJSON *device = cJSON_GetObjectItemCaseSensitive(req, "device");
    ck_assert_int_eq((int)jnum(device, "devicetype"), 2);
    ck_assert_ptr_nonnull(strstr(jstr(device, "ip"), "192.0.2."));
    ck_assert_pstr_eq(jstr(cJSON_GetObjectItemCaseSensitive(device, "geo"), "country"), "USA");
    cJSON_Delete(req);

    /* One imp in the imps form: the result still has the array (SPEC 17). */
    const char *one[] = {"--imps", "1", "--rate", "200", "--count", "50", "--json", NULL};
    r = expect_summary(one, 0);
    expect_num(&r, "statuses", "success", 50);
    expect_num(&r, NULL, "imps_missing", 0);   /* needs the wiring */
    expect_num(&r, NULL, "imps_received", 50); /* needs the wiring */
    expect_num(&r, NULL, "deals_won", 0);      /* no deal offered */
    cJSON_Delete(r.json);

    fx_kill(exchange, SIGTERM);
    ck_assert_int_eq(fx_wait_exit(exchange, 5000, NULL), 0);
    check_no_sanitizer_report("exchange.log");
}
END_TEST

/* The counting of `imps` arrays, with this test as the exchange: imps in
 * results, those won, those won through a deal, and results of imps-form
 * requests that lack the array (an invalid one may). */
START_TEST(loadgen_counts_imps_in_results) {
    const char *args[] = {"--id-prefix", "m", "--imps",    "2",    "--rate", "10",
                          "--count",     "4", "--tmax-ms", "2000", "--json", NULL};
    run_result r = {0};
    pid_t pid = spawn_loadgen(args, &r);
    await_psubscribe();
    fx_sleep_ms(600); /* all four are sent by now */
    static const char *const w = "{\"advertiser_id\":\"a\",\"bid_price\":2,\"clearing_price\":1,"
                                 "\"ad_id\":\"x\",\"creative_url\":\"\",\"deal_id\":";
    char results[4][600];
    snprintf(results[0], sizeof results[0],
             "{\"request_id\":\"m-0\",\"status\":\"success\",\"winner\":null,\"imps\":["
             "{\"imp_id\":\"1\",\"status\":\"success\",\"winner\":%s\"d-1\"}},"
             "{\"imp_id\":\"2\",\"status\":\"success\",\"winner\":%snull}}]}",
             w, w);
    snprintf(results[1], sizeof results[1],
             "{\"request_id\":\"m-1\",\"status\":\"success\",\"winner\":null,\"imps\":["
             "{\"imp_id\":\"1\",\"status\":\"no_bid\",\"winner\":null},"
             "{\"imp_id\":\"2\",\"status\":\"success\",\"winner\":%s\"d-1\"}}]}",
             w);
    snprintf(results[2], sizeof results[2], "{\"request_id\":\"m-2\",\"status\":\"no_bid\"}");
    snprintf(results[3], sizeof results[3],
             "{\"request_id\":\"m-3\",\"status\":\"invalid\",\"error\":\"x\"}");
    for (int i = 0; i < 4; i++)
        fx_redis_do(env, "PUBLISH auction:results:m-%d %s", i, results[i]);
    wait_loadgen(pid, &r);
    if (r.json == NULL || r.exit_status != 0) {
        fx_dump_log(env, r.log);
        ck_abort_msg("exit status %d, want 0", r.exit_status);
    }
    expect_num(&r, NULL, "received", 4);
    expect_num(&r, NULL, "imps_per_request", 2);
    expect_num(&r, NULL, "imps_received", 4);
    expect_num(&r, NULL, "imps_won", 3);
    expect_num(&r, NULL, "deals_won", 2);
    expect_num(&r, NULL, "imps_missing", 1); /* m-2; m-3 is invalid */
    cJSON_Delete(r.json);

    /* Without --imps nothing is counted, the SPEC 2 form has no array. */
    const char *plain[] = {"--id-prefix", "p",         "--rate", "10",     "--count",
                           "1",           "--tmax-ms", "2000",   "--json", NULL};
    r = (run_result){0};
    pid = spawn_loadgen(plain, &r);
    fx_sleep_ms(500);
    fx_redis_do(env, "PUBLISH auction:results:p-0 %s",
                "{\"request_id\":\"p-0\",\"status\":\"no_bid\"}");
    wait_loadgen(pid, &r);
    ck_assert_int_eq(r.exit_status, 0);
    expect_num(&r, NULL, "imps_per_request", 0);
    expect_num(&r, NULL, "imps_missing", 0);
    expect_num(&r, NULL, "imps_received", 0);
    cJSON_Delete(r.json);
}
END_TEST

/* ---- bad starts: exit 2 --------------------------------------------------------------- */

/* HGET stats:advertiser:{id} wins, polled until it equals want (2 s at most). */
static long long advertiser_wins(const char *id, long long want) {
    int64_t until = fx_now_ms() + 2000;
    for (;;) {
        redisReply *r = fx_redis_cmd(env, "HGET stats:advertiser:%s wins", id);
        long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
        freeReplyObject(r);
        if (v == want || fx_now_ms() > until) return v;
        fx_sleep_ms(20);
    }
}

/* --interests targets advertisers (so budgets can be benchmarked): adv-t,
 * tagged "bench-t" and bidding 9 against adv-1's 2.5, wins every request
 * that carries its tag, and none of those with the default interests. */
START_TEST(loadgen_interests_target_advertisers) {
    const char *specs[] = {"id=adv-t,price=fixed:9"};
    int port[1];
    fx_spawn_bidder(env, specs, 1, port);
    char value[200];
    snprintf(value, sizeof value,
             "{\"interests\":[\"bench-t\"],\"endpoint\":\"http://127.0.0.1:%d/bid\"}", port[0]);
    fx_redis_do(env, "SET advertiser:targeting:adv-t %s", value);
    pid_t exchange = start_exchange();
    const char *tagged[] = {
        "--rate",          "200", "--count", "100", "--interests", "bench-t,other-x",
        "--context-share", "1",   "--json",  NULL};
    run_result r = expect_summary(tagged, 0);
    expect_num(&r, "statuses", "success", 100);
    cJSON_Delete(r.json);
    /* One or both of the two in each request: bench-t is in about 5 of 6. */
    long long wins = advertiser_wins("adv-t", 100);
    ck_assert_msg(wins >= 50 && wins < 100, "adv-t won %lld of 100", wins);
    const char *only[] = {"--rate",          "200", "--count", "100", "--interests", "bench-t",
                          "--context-share", "1",   "--json",  NULL};
    r = expect_summary(only, 0);
    expect_num(&r, "statuses", "success", 100);
    cJSON_Delete(r.json);
    ck_assert_int_eq(advertiser_wins("adv-t", wins + 100), wins + 100);
    const char *defaults[] = {"--rate",          "200", "--count", "100",
                              "--context-share", "1",   "--json",  NULL};
    r = expect_summary(defaults, 0);
    cJSON_Delete(r.json);
    fx_sleep_ms(200);
    ck_assert_int_eq(advertiser_wins("adv-t", wins + 100), wins + 100);

    fx_kill(exchange, SIGTERM);
    ck_assert_int_eq(fx_wait_exit(exchange, 5000, NULL), 0);
    check_no_sanitizer_report("exchange.log");
}
END_TEST

START_TEST(loadgen_exit_2_on_bad_options_or_no_servers) {
    static const char *const bad[][5] = {
        {"--rate", "0", NULL},
        {"--count", "0", NULL},
        {"--qos", "2", NULL},
        {"--floor", "2-1", NULL},
        {"--floor", "0.1234567", NULL},
        {"--count", "5", "--duration", "1", NULL},
        {"--id-prefix", "a b", NULL},
        {"--topic", "rtb/+", NULL},
        {"--mqtt", "nohost", NULL},
        {"--bogus", NULL},
        {"--events", "--click-rate", "1.5", NULL},
        {"--click-rate", "0.5", NULL},
        {"--interests", "", NULL},
        {"--interests", "a,,b", NULL},
        {"--interests", "a,", NULL},
        {"--interests", "a\"b", NULL},
        {"--imps", "0", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run_result r = run_loadgen(bad[i]);
        ck_assert_msg(r.exit_status == 2, "%s %s: exit status %d, want 2", bad[i][0],
                      bad[i][1] ? bad[i][1] : "", r.exit_status);
        cJSON_Delete(r.json);
    }
    /* SPEC 17 options: refused with a message that names the problem. */
    static const char *const bad17[][6] = {
        {"--imps", "17", NULL, NULL, NULL, "--imps: bad value '17'"},
        {"--imps", "two", NULL, NULL, NULL, "--imps: bad value 'two'"},
        {"--deal", "d-1", NULL, NULL, NULL, "--deal needs --imps"},
        {"--imps", "2", "--deal", "d 1", NULL, "--deal: bad value 'd 1'"},
        {"--imps", "2", "--deal", "d\"1", NULL, "--deal: bad value 'd\"1'"},
        {"--site", "yes", NULL, NULL, NULL, "unexpected argument 'yes'"},
    };
    for (size_t i = 0; i < sizeof bad17 / sizeof bad17[0]; i++) {
        const char *args[6] = {bad17[i][0], bad17[i][1], bad17[i][2], bad17[i][3], NULL, NULL};
        run_result r = run_loadgen(args);
        ck_assert_msg(r.exit_status == 2, "%s %s: exit status %d, want 2", args[0], args[1],
                      r.exit_status);
        ck_assert_ptr_null(r.json);
        char *log = fx_read_file(env, r.log, NULL);
        ck_assert_ptr_nonnull(log);
        ck_assert_msg(strstr(log, bad17[i][5]) != NULL, "%s %s: message '%s' lacks '%s'", args[0],
                      args[1], log, bad17[i][5]);
        free(log);
    }
    /* Nothing listens on a fresh free port: the broker, then Redis, unreachable. */
    char nowhere[64];
    snprintf(nowhere, sizeof nowhere, "127.0.0.1:%d", fx_free_port());
    const char *no_broker[] = {"--count", "5", "--mqtt", nowhere, "--json", NULL};
    run_result r = run_loadgen(no_broker);
    ck_assert_int_eq(r.exit_status, 2);
    ck_assert_ptr_null(r.json);
    const char *no_redis[] = {"--count", "5", "--redis", nowhere, "--json", NULL};
    r = run_loadgen(no_redis);
    ck_assert_int_eq(r.exit_status, 2);
    ck_assert_ptr_null(r.json);
    const char *help[] = {"--help", NULL};
    r = run_loadgen(help);
    ck_assert_int_eq(r.exit_status, 0);
}
END_TEST

static Suite *loadgen_suite(void) {
    Suite *s = suite_create("loadgen");
    TCase *tc = tcase_create("histogram");
    tcase_add_test(tc, histogram_buckets_tile_the_range);
    tcase_add_test(tc, histogram_empty_and_single);
    tcase_add_test(tc, histogram_percentiles_within_one_percent);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("live");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, loadgen_every_request_gets_its_result);
    tcase_add_test(tc, loadgen_counts_lost_when_exchange_is_gone);
    tcase_add_test(tc, loadgen_events_reach_the_exchange);
    tcase_add_test(tc, loadgen_matches_results_by_id);
    tcase_add_test(tc, loadgen_interests_target_advertisers);
    tcase_add_test(tc, loadgen_multi_imp_requests);
    tcase_add_test(tc, loadgen_counts_imps_in_results);
    tcase_add_test(tc, loadgen_exit_2_on_bad_options_or_no_servers);
    tcase_set_timeout(tc, 90);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return fx_run_suite(loadgen_suite());
}

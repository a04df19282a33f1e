/* test_faults.c -- integration suite for the faults of docs/operations.md.
 *
 * Each test starts an exchange world (tests/world.h) with an admin port and
 * breaks something around it while requests flow: Redis goes away under load
 * and comes back; Redis stays away long enough for the result queue to hit
 * limits.max_pending_results; the broker goes away and comes back; more
 * requests arrive than limits.max_inflight allows; a bidder fails until its
 * circuit breaker opens, probes, and closes again; SIGTERM comes while Redis
 * is down. And the edge of SPEC 13: the exchange stalls under load, a
 * bidder times out most of the time, an endpoint refuses connections, a
 * bidder is always slower than tmax, a burst far above capacity arrives. And SPEC 15: Redis
 * freezes (SIGSTOP) under load, the commands waiting on Redis and the result queue's bytes reach
 * their caps, stats:ad keys expire and ids that cannot be keys are not. What the exchange promises
 * in each case is checked on the results (counted by request_id), on /metrics and /healthz, and on
 * exchange.log. Every test ends with the exchange's clean exit (SIGTERM, status 0, no sanitizer
 * report).
 *
 * The one idea: the test is the only observer, so it must not lose results
 * itself. Redis pub/sub keeps nothing for a subscriber that is not connected,
 * hence two harness rules around a Redis outage: Redis is stopped with
 * SIGTERM while the test keeps reading its subscriber until redis-server is
 * gone (fx_redis_stop alone closes the subscriber first, and what Redis had
 * delivered but the test had not read would be lost); and Redis is started
 * again with the exchange frozen (SIGSTOP) until fx_redis_start has
 * re-subscribed, so the exchange cannot flush its queue into a Redis nobody
 * listens to yet. Load comes from a publisher thread that owns the world's
 * MQTT client (libmosquitto is thread-safe; the fixture's client locks) while
 * the test thread reads results and injects the faults. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/world.h"

#define HTTP_WAIT_MS 2000 /* one admin request */
#define MAX_DUPLICATES 5  /* results sent twice across an outage (at least once) */
#define RECOVERY_MS 5000  /* results flow again within this of a server's return */
#define RESULT_CHANNEL "auction:results:"
#define RTB_ERRORS_IN_A_ROW 5 /* errors that open a circuit (rtb/health.h) */

static wx_world *w;

static void setup(void) {
    w = wx_start();
}

static void teardown(void) {
    wx_stop(w);
    w = NULL;
}

/* ---- results counted by request_id ----------------------------------------- */

/* The results of requests PREFIX-0 .. PREFIX-(n-1). */
typedef struct tally {
    char prefix[16];
    int n;
    int *count;        /* results per request */
    int64_t *first_ms; /* receipt of the first result (fx_now_ms clock) */
    char (*status)[16];
    double *latency_ms;                /* the first result's latency_ms */
    int *bidders, *skipped, *timeouts; /* and its counters */
    int distinct;                      /* requests with a result */
    int dups;                          /* results beyond the first */
} tally;

static void tally_init(tally *t, const char *prefix, int n) {
    memset(t, 0, sizeof(*t));
    snprintf(t->prefix, sizeof t->prefix, "%s", prefix);
    t->n = n;
    t->count = calloc((size_t)n, sizeof(*t->count));
    t->first_ms = calloc((size_t)n, sizeof(*t->first_ms));
    t->status = calloc((size_t)n, sizeof(*t->status));
    t->latency_ms = calloc((size_t)n, sizeof(*t->latency_ms));
    t->bidders = calloc((size_t)n, sizeof(*t->bidders));
    t->skipped = calloc((size_t)n, sizeof(*t->skipped));
    t->timeouts = calloc((size_t)n, sizeof(*t->timeouts));
    ck_assert(t->count != NULL && t->first_ms != NULL && t->status != NULL &&
              t->latency_ms != NULL && t->bidders != NULL && t->skipped != NULL &&
              t->timeouts != NULL);
}

static void tally_free(tally *t) {
    free(t->count);
    free(t->first_ms);
    free(t->status);
    free(t->latency_ms);
    free(t->bidders);
    free(t->skipped);
    free(t->timeouts);
}

/* Records m when its request_id is PREFIX-K of t, after wx_check_result;
 * returns 1, or 0 when m is not one of t's. */
static int tally_take(tally *t, const fx_msg *m) {
    if (!wx_starts_with(m->channel, RESULT_CHANNEL)) return 0;
    const char *id = m->channel + strlen(RESULT_CHANNEL);
    size_t plen = strlen(t->prefix);
    if (strncmp(id, t->prefix, plen) != 0 || id[plen] != '-') return 0;
    char *end = NULL;
    long k = strtol(id + plen + 1, &end, 10);
    if (end == id + plen + 1 || *end != '\0' || k < 0 || k >= t->n) return 0;
    cJSON *r = fx_msg_json(m);
    if (!cJSON_IsObject(r))
        wx_fail_with_log(w, "result for %s is not a JSON object: %.300s", id, m->payload);
    wx_check_result(r, id, m->payload);
    if (t->count[k]++ == 0) {
        t->first_ms[k] = m->received_ms;
        snprintf(t->status[k], sizeof t->status[k], "%s", wx_jstr(r, "status"));
        t->latency_ms[k] = wx_jnum(r, "latency_ms");
        t->bidders[k] = (int)wx_jnum(r, "bidders");
        t->skipped[k] = (int)wx_jnum(r, "skipped");
        t->timeouts[k] = (int)wx_jnum(r, "timeouts");
        t->distinct++;
    } else {
        t->dups++;
        fprintf(stderr, "test_faults: result %d for %s\n", t->count[k], id);
    }
    cJSON_Delete(r);
    return 1;
}

/* Reads results into the tallies until until_ms (fx_now_ms clock), or until
 * ts[0] has results for `want` requests (want < 0: no such stop). Probe
 * results are dropped; any other result fails the test. */
static void collect(tally *const ts[], int nt, int64_t until_ms, int want) {
    while (want < 0 || ts[0]->distinct < want) {
        int64_t left = until_ms - fx_now_ms();
        if (left <= 0) return;
        fx_msg *m = fx_sub_next(w->results, (int)left);
        if (m == NULL) return;
        int known = wx_is_probe(m);
        for (int i = 0; i < nt && !known; i++)
            known = tally_take(ts[i], m);
        if (!known) wx_fail_with_log(w, "unexpected result on %s: %.300s", m->channel, m->payload);
        fx_msg_free(m);
    }
}

/* Reads results until none came for quiet_ms. */
static void collect_quiet(tally *const ts[], int nt, int quiet_ms) {
    for (;;) {
        int before = 0, after = 0;
        for (int i = 0; i < nt; i++)
            before += ts[i]->distinct + ts[i]->dups;
        collect(ts, nt, fx_now_ms() + quiet_ms, -1);
        for (int i = 0; i < nt; i++)
            after += ts[i]->distinct + ts[i]->dups;
        if (after == before) return;
    }
}

/* Fails naming the first requests of t in [from, to) without a result. */
static void expect_all_present(const tally *t, int from, int to, const char *when) {
    char missing[512] = "";
    int nmissing = 0;
    for (int k = from; k < to; k++) {
        if (t->count[k] > 0) continue;
        if (nmissing++ < 10) {
            size_t used = strlen(missing);
            snprintf(missing + used, sizeof missing - used, " %s-%d", t->prefix, k);
        }
    }
    if (nmissing > 0)
        wx_fail_with_log(w, "%s: %d of %s-%d..%d have no result:%s%s", when, nmissing, t->prefix,
                         from, to - 1, missing, nmissing > 10 ? " ..." : "");
}

/* ---- load --------------------------------------------------------------------- */

/* A publisher thread: requests PREFIX-0 .. PREFIX-(n-1), tagged, one every
 * interval_ms on the world's MQTT client (QoS 1, not waiting for PUBACKs). It
 * never calls Check: the test thread reads what happened after the join. */
typedef struct pacer {
    const char *prefix, *tag;
    int n, interval_ms;
    int64_t *sent_ms; /* fx_now_ms() at the publish; -1: libmosquitto said no (while
                       * disconnected it may still queue a QoS 1 message and send it later) */
    int refused;
    pthread_t thread;
} pacer;

static void *pacer_main(void *arg) {
    pacer *p = arg;
    char ctx[64], id[64], buf[512];
    snprintf(ctx, sizeof ctx, "{\"interests\":[\"%s\"]}", p->tag);
    int64_t start = fx_now_ms();
    for (int i = 0; i < p->n; i++) {
        int64_t wait = start + (int64_t)i * p->interval_ms - fx_now_ms();
        if (wait > 0) fx_sleep_ms((int)wait);
        snprintf(id, sizeof id, "%s-%d", p->prefix, i);
        size_t len = wx_format_request(buf, sizeof buf, id, "u-1", "slot-1", 1.0, ctx);
        p->sent_ms[i] = fx_now_ms();
        if (fx_mqtt_publish_nowait(w->pub, WX_REQUEST_TOPIC, buf, len, 1) < 0) {
            p->sent_ms[i] = -1;
            p->refused++;
        }
    }
    return NULL;
}

static void pacer_start(pacer *p, const char *prefix, const char *tag, int n, int interval_ms) {
    memset(p, 0, sizeof(*p));
    p->prefix = prefix;
    p->tag = tag;
    p->n = n;
    p->interval_ms = interval_ms;
    p->sent_ms = calloc((size_t)n, sizeof(*p->sent_ms));
    ck_assert_ptr_nonnull(p->sent_ms);
    ck_assert_msg(pthread_create(&p->thread, NULL, pacer_main, p) == 0, "pthread_create");
}

static void pacer_join(pacer *p) {
    ck_assert_msg(pthread_join(p->thread, NULL) == 0, "pthread_join");
}

/* Publishes PREFIX-0 .. PREFIX-(n-1), tagged, all at once, and waits for the
 * broker's PUBACKs. Returns the time just before the first publish. */
static int64_t publish_burst(const char *prefix, int n, const char *tag) {
    char ctx[64], id[64], buf[512];
    snprintf(ctx, sizeof ctx, "{\"interests\":[\"%s\"]}", tag);
    int64_t start = fx_now_ms();
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        size_t len = wx_format_request(buf, sizeof buf, id, "u-1", "slot-1", 1.0, ctx);
        ck_assert_msg(fx_mqtt_publish_nowait(w->pub, WX_REQUEST_TOPIC, buf, len, 1) >= 0,
                      "libmosquitto refused %s", id);
    }
    ck_assert_msg(fx_mqtt_flush(w->pub, 20000) == 0, "no PUBACK for a burst of %d", n);
    return start;
}

/* ---- the admin listener and the process ------------------------------------------ */

static double metric(const char *series) {
    return wx_metric(w, series);
}

static void await_metric(const char *series, double want, int within_ms) {
    wx_await_metric(w, series, want, within_ms);
}

static void expect_metric(const char *series, double want) {
    double v = metric(series);
    if (v != want) wx_fail_with_log(w, "%s is %.0f, want %.0f", series, v, want);
}

/* Polls GET /healthz until it answers want; fails after within_ms. */
static void await_healthz(int want, int within_ms) {
    int64_t deadline = fx_now_ms() + within_ms;
    for (;;) {
        char *body = NULL;
        int code = fx_http(w->admin_port, "GET", "/healthz", NULL, &body, HTTP_WAIT_MS);
        if (code == want) {
            free(body);
            return;
        }
        if (fx_now_ms() > deadline)
            wx_fail_with_log(w, "GET /healthz: %d after %d ms, want %d: %.200s", code, within_ms,
                             want, wx_or_empty(body));
        free(body);
        fx_sleep_ms(50);
    }
}

/* VmRSS of pid in kB, from /proc/PID/status. */
static long rss_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    long kb = -1;
    while (kb < 0 && fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "VmRSS: %ld kB", &kb) != 1) kb = -1;
    }
    fclose(f);
    ck_assert_msg(kb > 0, "no VmRSS in %s", path);
    return kb;
}

/* ---- Redis stopped and started without losing what the test observes ------------ */

/* SIGTERM to redis-server, reading the results subscriber until it is gone
 * and its last bytes are read; then reaps it (fx_redis_stop). Returns the
 * time of the signal. */
static int64_t redis_stop_observed(tally *const ts[], int nt) {
    pid_t pid = fx_redis_pid(w->env);
    int64_t t = fx_now_ms();
    fx_kill(pid, SIGTERM);
    while (fx_pid_alive(pid) && fx_now_ms() < t + FX_STOP_GRACE_MS)
        collect(ts, nt, fx_now_ms() + 10, -1);
    collect(ts, nt, fx_now_ms() + 100, -1);
    fx_redis_stop(w->env);
    return t;
}

/* fx_redis_start with the exchange frozen until the subscribers are back
 * (see the top of the file). Returns the time Redis was back. */
static int64_t redis_start_observed(void) {
    fx_kill(w->exchange_pid, SIGSTOP);
    fx_redis_start(w->env);
    fx_kill(w->exchange_pid, SIGCONT);
    return fx_now_ms();
}

/* One rtb-bidder advertiser `id` (fixed price 2), tagged and listed in the
 * config's bidders (so it survives Redis losing its data), and the exchange
 * with an admin port and `extra` config (wx_opts.extra_json; NULL: none).
 * Returns the bidder's port. */
static int start_tagged_world_with(const char *name, const char *tag, const char *spec, int tmax_ms,
                                   long max_inflight, const char *extra) {
    const char *specs[] = {spec};
    int port[1];
    fx_spawn_bidder(w->env, specs, 1, port);
    char bidders[512] = "", interests[64];
    snprintf(interests, sizeof interests, "[\"%s\"]", tag);
    wx_add_config_bidder(bidders, sizeof bidders, "adv", port[0], interests);
    wx_opts o = {.tmax_ms = tmax_ms,
                 .max_inflight = max_inflight,
                 .bidders = bidders,
                 .admin_port = fx_free_port(),
                 .extra_json = extra};
    wx_start_exchange(w, name, &o);
    return port[0];
}

static int start_tagged_world(const char *name, const char *tag, const char *spec, int tmax_ms,
                              long max_inflight) {
    return start_tagged_world_with(name, tag, spec, tmax_ms, max_inflight, NULL);
}

/* ---- 1. Redis outage under load --------------------------------------------------- */

#define RO_N 400
#define RO_INTERVAL_MS 10

START_TEST(redis_outage_under_load) {
    start_tagged_world("faults-redis", "flt", "id=adv,price=fixed:2", 100, 0);
    tally t;
    tally_init(&t, "ro", RO_N);
    tally *ts[] = {&t};
    pacer p;
    int64_t t0 = fx_now_ms();
    pacer_start(&p, "ro", "flt", RO_N, RO_INTERVAL_MS);

    collect(ts, 1, t0 + 1000, -1);
    int64_t t_stop = redis_stop_observed(ts, 1);
    int before_outage = t.distinct;
    await_healthz(503, 2000);
    collect(ts, 1, t0 + 2500, -1); /* nothing can come: the subscriber is down */
    int64_t t_back = redis_start_observed();

    collect(ts, 1, t0 + RO_N * RO_INTERVAL_MS + 50, -1);
    pacer_join(&p);
    ck_assert_msg(p.refused == 0, "libmosquitto refused %d publishes", p.refused);
    int64_t last_sent = p.sent_ms[RO_N - 1];
    int64_t deadline =
        t_back + RECOVERY_MS > last_sent + 2000 ? t_back + RECOVERY_MS : last_sent + 2000;
    collect(ts, 1, deadline, RO_N);
    collect_quiet(ts, 1, 300);
    expect_all_present(&t, 0, RO_N, "Redis outage");
    ck_assert_msg(t.dups <= MAX_DUPLICATES, "%d duplicate results, at most %d allowed", t.dups,
                  MAX_DUPLICATES);

    /* Results queued through the outage arrive within RECOVERY_MS of Redis's
     * return; the others within 2 s of their request. */
    int queued = 0;
    int64_t last_queued_ms = t_back;
    for (int k = 0; k < RO_N; k++) {
        int64_t got = t.first_ms[k], sent = p.sent_ms[k];
        if (got > t_back && sent < t_back) {
            queued++;
            last_queued_ms = got > last_queued_ms ? got : last_queued_ms;
        }
        int64_t due = sent + 2000;
        if (sent >= t_stop - 500 && t_back + RECOVERY_MS > due) due = t_back + RECOVERY_MS;
        if (got > due)
            wx_fail_with_log(w,
                             "result for ro-%d came %lld ms after its request (Redis back "
                             "%lld ms after it)",
                             k, (long long)(got - sent), (long long)(t_back - sent));
    }
    ck_assert_msg(queued > 0, "no result waited for Redis: the outage missed the load");
    fprintf(stderr,
            "test_faults: redis outage: %d of %d results before it, %d queued through it "
            "(the last %lld ms after Redis was back), %d duplicates\n",
            before_outage, RO_N, queued, (long long)(last_queued_ms - t_back), t.dups);

    await_metric("rtb_redis_publish_queued", 0, 2000);
    ck_assert_msg(metric("rtb_redis_reconnects_total") > 0, "rtb_redis_reconnects_total is 0");
    expect_metric("rtb_redis_publish_dropped_total", 0);
    expect_metric("rtb_redis_connected", 1);
    await_healthz(200, 2000);
    free(p.sent_ms);
    tally_free(&t);
    wx_stop_exchange(w);
}
END_TEST

/* ---- 2. The result queue is bounded ----------------------------------------------- */

#define QB_MAX 20
#define QB_N 50

START_TEST(result_queue_drops_oldest) {
    char extra[128];
    snprintf(extra, sizeof extra, "\"limits\":{\"max_pending_results\":%d}", QB_MAX);
    /* No bidders: with Redis down every auction closes on receipt, in order. */
    wx_opts o = {.admin_port = fx_free_port(), .extra_json = extra};
    wx_start_exchange(w, "faults-queue", &o);
    double published = metric("rtb_redis_published_total");
    double requests = metric("rtb_requests_total");

    fx_redis_stop(w->env);
    await_metric("rtb_redis_connected", 0, 2000);
    for (int i = 0; i < QB_N; i++) {
        char id[32];
        snprintf(id, sizeof id, "qb-%d", i);
        wx_publish_request(w, id, "u-1", "slot-1", 1.0, NULL);
    }
    await_metric("rtb_requests_total", requests + QB_N, 3000);
    await_metric("rtb_inflight_auctions", 0, 1000 + w->tmax_ms);
    expect_metric("rtb_redis_publish_queued", QB_MAX);
    expect_metric("rtb_redis_publish_dropped_total", QB_N - QB_MAX);

    tally t;
    tally_init(&t, "qb", QB_N);
    tally *ts[] = {&t};
    int64_t t_back = redis_start_observed();
    collect(ts, 1, t_back + RECOVERY_MS, QB_MAX);
    int64_t took = fx_now_ms() - t_back;
    collect_quiet(ts, 1, 500);
    for (int k = 0; k < QB_N; k++) {
        int want = k >= QB_N - QB_MAX;
        if (t.count[k] != want)
            wx_fail_with_log(w, "qb-%d: %d results, want %d (the newest %d of %d are kept)", k,
                             t.count[k], want, QB_MAX, QB_N);
    }
    fprintf(stderr, "test_faults: queue bound: %d results %lld ms after Redis was back\n",
            t.distinct, (long long)took);
    await_metric("rtb_redis_publish_queued", 0, 2000);
    expect_metric("rtb_redis_publish_dropped_total", QB_N - QB_MAX);
    double delta = metric("rtb_redis_published_total") - published;
    ck_assert_msg(delta == QB_MAX, "rtb_redis_published_total grew by %.0f, want %d", delta,
                  QB_MAX);
    tally_free(&t);
    wx_stop_exchange(w);
}
END_TEST

/* ---- 3. Broker outage --------------------------------------------------------------- */

#define BO_N 60
#define BO_INTERVAL_MS 50
#define BO_AFTER 10

START_TEST(broker_outage) {
    start_tagged_world("faults-mqtt", "bo", "id=adv,price=fixed:2", 100, 0);
    tally t, probes, after;
    tally_init(&t, "bo", BO_N);
    tally_init(&probes, "bop", 200);
    tally_init(&after, "boa", BO_AFTER);
    tally *ts[] = {&t, &probes, &after};
    pacer p;
    int64_t t0 = fx_now_ms();
    pacer_start(&p, "bo", "bo", BO_N, BO_INTERVAL_MS);

    collect(ts, 3, t0 + 1000, -1);
    int64_t t_stop = fx_now_ms();
    fx_mqtt_stop(w->env);
    await_healthz(503, 2000);
    expect_metric("rtb_mqtt_connected", 0);
    collect(ts, 3, t_stop + 1000, -1);
    fx_mqtt_start(w->env);
    int64_t t_back = fx_now_ms();
    collect(ts, 3, t0 + BO_N * BO_INTERVAL_MS + 50, -1);
    pacer_join(&p);

    /* Requests flow again: probes until one gets its result. */
    ck_assert_msg(fx_mqtt_wait_connected(w->pub, RECOVERY_MS) == 0,
                  "the test's MQTT publisher did not reconnect");
    int nprobes = 0;
    while (probes.distinct == 0) {
        if (fx_now_ms() > t_back + RECOVERY_MS)
            wx_fail_with_log(w, "no result within %d ms of the broker's return (%d probes)",
                             RECOVERY_MS, nprobes);
        ck_assert_msg(nprobes < probes.n, "too many probes");
        char id[32];
        snprintf(id, sizeof id, "bop-%d", nprobes++);
        wx_publish_tagged(w, id, 1.0, "bo");
        collect(ts, 3, fx_now_ms() + 100, -1);
    }
    int64_t recovered = fx_now_ms() - t_back;
    tally *ta[] = {&after, &t, &probes}; /* collect() stops on its first tally */
    for (int i = 0; i < BO_AFTER; i++) {
        char id[32];
        snprintf(id, sizeof id, "boa-%d", i);
        wx_publish_tagged(w, id, 1.0, "bo");
        collect(ta, 3, fx_now_ms() + WX_RESULT_WAIT_MS, i + 1);
    }
    collect_quiet(ts, 3, 300);
    expect_all_present(&after, 0, BO_AFTER, "after the broker's return");

    /* Before the outage (leaving 200 ms for delivery) nothing is lost; what
     * was published while the broker was away may be, at the broker. */
    int k_first_lossy = 0;
    while (k_first_lossy < BO_N && p.sent_ms[k_first_lossy] >= 0 &&
           p.sent_ms[k_first_lossy] < t_stop - 200)
        k_first_lossy++;
    expect_all_present(&t, 0, k_first_lossy, "before the broker outage");
    int total_dups = t.dups + probes.dups + after.dups;
    ck_assert_msg(total_dups <= MAX_DUPLICATES, "%d duplicate results", total_dups);
    fprintf(stderr,
            "test_faults: broker outage: results flow %lld ms after its return; of the %d "
            "requests from 200 ms before it on, %d got a result (libmosquitto queued %d "
            "while disconnected); %d duplicates\n",
            (long long)recovered, BO_N - k_first_lossy, t.distinct - k_first_lossy, p.refused,
            total_dups);
    await_healthz(200, RECOVERY_MS);
    expect_metric("rtb_mqtt_connected", 1);
    free(p.sent_ms);
    tally_free(&t);
    tally_free(&probes);
    tally_free(&after);
    wx_stop_exchange(w);
}
END_TEST

/* ---- 4. Overload ------------------------------------------------------------------- */

/* Occurrences of `needle` in exchange.log. */
static int log_count(const char *needle) {
    char *log = fx_read_file(w->env, "exchange.log", NULL);
    ck_assert_msg(log != NULL, "exchange.log cannot be read");
    int n = 0;
    for (const char *p = log; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(log);
    return n;
}

/* The requests the exchange's log says it shed: the sum over its
 * "overload: N requests answered overloaded" lines. */
static long logged_shed(void) {
    static const char head[] = "overload: ";
    char *log = fx_read_file(w->env, "exchange.log", NULL);
    ck_assert_msg(log != NULL, "exchange.log cannot be read");
    long sum = 0;
    for (const char *p = log; (p = strstr(p, head)) != NULL; p += strlen(head)) {
        char *end;
        long n = strtol(p + strlen(head), &end, 10);
        if (end != p + strlen(head) && strncmp(end, " requests answered overloaded", 29) == 0)
            sum += n;
    }
    free(log);
    return sum;
}

#define OV_INFLIGHT 5
#define OV_N 30
#define OV_BURST 3000
#define OV_RSS_SLACK_KB (50L * 1024)

START_TEST(overload_answers_at_once) {
    start_tagged_world("faults-overload", "ovl", "id=adv,latency=200,price=fixed:2", 300,
                       OV_INFLIGHT);
    tally t;
    tally_init(&t, "ov", OV_N);
    tally *ts[] = {&t};
    publish_burst("ov", OV_N, "ovl");
    collect(ts, 1, fx_now_ms() + 3000, OV_N);
    expect_all_present(&t, 0, OV_N, "overload");
    ck_assert_msg(t.dups == 0, "%d duplicate results", t.dups);

    /* The broker delivers in order: the first max_inflight are auctions,
     * the rest are turned away at once, before any auction closes. */
    int64_t first_auction_ms = INT64_MAX;
    for (int k = 0; k < OV_INFLIGHT; k++) {
        if (strcmp(t.status[k], "success") != 0 && strcmp(t.status[k], "timeout") != 0)
            wx_fail_with_log(w, "ov-%d: status %s, want success or timeout", k, t.status[k]);
        first_auction_ms = t.first_ms[k] < first_auction_ms ? t.first_ms[k] : first_auction_ms;
    }
    for (int k = OV_INFLIGHT; k < OV_N; k++) {
        if (strcmp(t.status[k], "overloaded") != 0)
            wx_fail_with_log(w, "ov-%d: status %s, want overloaded", k, t.status[k]);
        if (t.first_ms[k] > first_auction_ms)
            wx_fail_with_log(w, "ov-%d: overloaded after the first auction closed", k);
    }
    tally_free(&t);

    /* A long burst costs no memory beyond the bounds. */
    long rss_before = rss_kb(w->exchange_pid);
    tally_init(&t, "ob", OV_BURST);
    int64_t start = publish_burst("ob", OV_BURST, "ovl");
    collect(ts, 1, fx_now_ms() + 20000, OV_BURST);
    int64_t took = fx_now_ms() - start;
    collect_quiet(ts, 1, 300);
    long rss_after = rss_kb(w->exchange_pid);
    expect_all_present(&t, 0, OV_BURST, "burst");
    ck_assert_msg(t.dups == 0, "%d duplicate results", t.dups);
    int overloaded = 0;
    for (int k = 0; k < OV_BURST; k++)
        overloaded += strcmp(t.status[k], "overloaded") == 0;
    /* Every 200 ms at most OV_INFLIGHT auctions are let in. */
    int max_auctions = OV_INFLIGHT * (int)(took / 200 + 2);
    ck_assert_msg(OV_BURST - overloaded <= max_auctions,
                  "%d of %d requests were auctions over %lld ms with max_inflight %d",
                  OV_BURST - overloaded, OV_BURST, (long long)took, OV_INFLIGHT);
    fprintf(stderr, "test_faults: overload: %d of %d overloaded in %lld ms; RSS %ld kB -> %ld kB\n",
            overloaded, OV_BURST, (long long)took, rss_before, rss_after);
    ck_assert_msg(rss_after - rss_before <= OV_RSS_SLACK_KB,
                  "RSS grew by %ld kB over a burst of %d overloaded requests",
                  rss_after - rss_before, OV_BURST);
    await_metric("rtb_inflight_auctions", 0, 1000);
    tally_free(&t);

    /* The log tells the episode: a line a second with how many were shed
     * and why, adding up to every overloaded result, then its end. */
    int64_t until = fx_now_ms() + 3000;
    while (log_count("overload: over;") == 0 && fx_now_ms() < until)
        fx_sleep_ms(50);
    long shed = (OV_N - OV_INFLIGHT) + overloaded, logged = logged_shed();
    if (logged != shed)
        wx_fail_with_log(w, "the log says %ld requests shed, the results %ld", logged, shed);
    if (log_count("overload: over;") == 0)
        wx_fail_with_log(w, "no 'overload: over' line within 3 s of the last shed request");
    if (log_count("max_inflight 0;") == log_count("requests answered overloaded"))
        wx_fail_with_log(w, "no log line names max_inflight as the reason");
    wx_stop_exchange(w);
}
END_TEST

/* ---- 5. Circuit breaker (SPEC 13) -------------------------------------------------- */

/* One tagged auction; checks its status, bidders, errors and skipped.
 * Returns the receipt time of its result. */
static int64_t breaker_auction(int n, const char *status, int bidders, int errors, int skipped) {
    char id[32];
    snprintf(id, sizeof id, "cb-%d", n);
    wx_publish_tagged(w, id, 1.0, "cb");
    int64_t got = 0;
    cJSON *r = wx_wait_result_ex(w, id, WX_RESULT_WAIT_MS, &got);
    wx_expect_result(r, status, -1, bidders, 0, errors);
    if (wx_jnum(r, "skipped") != skipped)
        wx_fail_with_log(w, "%s: skipped %.0f, want %d", id, wx_jnum(r, "skipped"), skipped);
    cJSON_Delete(r);
    return got;
}

START_TEST(circuit_breaker_opens_probes_and_closes) {
    const char *specs[] = {"id=bad,mode=http500", "id=fast,price=fixed:2",
                           "id=spare,price=fixed:1.5"};
    int port[3];
    fx_spawn_bidder(w->env, specs, 3, port);
    wx_register_advertiser(w, "bad", port[0], "[\"cb\"]");
    wx_register_advertiser(w, "fast", port[1], "[\"cb\"]");
    wx_opts o = {.admin_port = fx_free_port()};
    wx_start_exchange(w, "faults-breaker", &o);

    /* RTB_HEALTH_ERRORS_IN_A_ROW (5) errors in a row open the circuit. */
    int64_t opened = 0;
    for (int i = 0; i < 5; i++)
        opened = breaker_auction(i, "success", 2, 1, 0);
    expect_metric("rtb_bidder_circuit_state{bidder=\"bad\"}", 1);
    expect_metric("rtb_bidder_circuit_opens_total{bidder=\"bad\"}", 1);
    breaker_auction(5, "success", 1, 0, 1); /* skipped: the circuit is open */
    breaker_auction(6, "success", 1, 0, 1);
    ck_assert_msg(fx_now_ms() - opened < 800, "auctions 5-6 took too long to test the pause");
    expect_metric("rtb_bidder_skipped_total{bidder=\"bad\",reason=\"circuit\"}", 2);
    ck_assert_msg(wx_bidder_requests(port[0]) == 5, "bad was called while its circuit was open");

    /* After the 1 s pause one probe goes through; it fails: open again, 2 s. */
    fx_sleep_ms((int)(opened + 1200 - fx_now_ms()));
    int64_t reopened = breaker_auction(7, "success", 2, 1, 0);
    ck_assert_msg(wx_bidder_requests(port[0]) == 6, "the probe did not reach bad");
    expect_metric("rtb_bidder_circuit_state{bidder=\"bad\"}", 1);
    expect_metric("rtb_bidder_circuit_opens_total{bidder=\"bad\"}", 2);
    breaker_auction(8, "success", 1, 0, 1);

    /* bad now points at a healthy bidder; the circuit belongs to the
     * advertiser id, so it stays open until the next probe. */
    wx_register_advertiser(w, "bad", port[2], "[\"cb\"]");
    fx_redis_do(w->env, "PUBLISH advertiser:updates bad");
    fx_sleep_ms(300);
    breaker_auction(9, "success", 1, 0, 1);
    ck_assert_msg(fx_now_ms() - reopened < 1800, "auction 9 too late to test the 2 s pause");
    ck_assert_msg(wx_bidder_requests(port[2]) == 0, "the new endpoint was called during the pause");
    fx_sleep_ms((int)(reopened + 2200 - fx_now_ms()));
    breaker_auction(10, "success", 2, 0, 0);
    ck_assert_msg(wx_bidder_requests(port[2]) == 1, "the probe did not reach the new endpoint");
    expect_metric("rtb_bidder_circuit_state{bidder=\"bad\"}", 0);
    expect_metric("rtb_bidder_circuit_opens_total{bidder=\"bad\"}", 2);
    breaker_auction(11, "success", 2, 0, 0);
    ck_assert_msg(wx_bidder_requests(port[0]) == 6, "the old endpoint was called again");
    wx_stop_exchange(w);
}
END_TEST

/* ---- 6. SIGTERM while Redis is down --------------------------------------------------- */

#define DR_N 10

START_TEST(sigterm_drain_with_redis_down) {
    start_tagged_world("faults-drain", "drn", "id=adv,latency=250,price=fixed:2", 400, 0);
    double requests = metric("rtb_requests_total");
    publish_burst("dr", DR_N, "drn");
    await_metric("rtb_requests_total", requests + DR_N, 2000);
    expect_metric("rtb_inflight_auctions", DR_N);
    fx_redis_stop(w->env);

    int64_t signalled = fx_now_ms();
    fx_kill(w->exchange_pid, SIGTERM);
    wx_expect_clean_exit(w, w->tmax_ms + 1000 + 1000);
    int64_t took = fx_now_ms() - signalled;
    fprintf(stderr, "test_faults: drain with Redis down: exit %lld ms after SIGTERM\n",
            (long long)took);
    if (took > w->tmax_ms + 1000)
        wx_fail_with_log(w, "exit %lld ms after SIGTERM, want at most tmax + 1 s = %d ms",
                         (long long)took, w->tmax_ms + 1000);

    /* The exit line is the last one and says the results never left. */
    char *log = fx_read_file(w->env, "exchange.log", NULL);
    ck_assert_msg(log != NULL, "exchange.log cannot be read");
    size_t len = strlen(log);
    while (len > 0 && log[len - 1] == '\n')
        log[--len] = '\0';
    const char *last = strrchr(log, '\n');
    last = last != NULL ? last + 1 : log;
    char want_queued[64], want_success[64];
    snprintf(want_queued, sizeof want_queued, "%d still queued", DR_N);
    snprintf(want_success, sizeof want_success, "success %d,", DR_N);
    int ok = strstr(last, "exit:") != NULL && strstr(last, want_queued) != NULL &&
             strstr(last, want_success) != NULL;
    char line[600];
    snprintf(line, sizeof line, "%s", last);
    free(log);
    if (!ok)
        wx_fail_with_log(w, "the last log line should be the exit line with '%s' and '%s': %s",
                         want_success, want_queued, line);
}
END_TEST

/* ---- 7. At the edge (SPEC 13) ---------------------------------------------------------- */

/* One rtb-bidder serving the `n` advertisers of `specs` (ids in `ids`), each
 * registered in Redis with interests [tag]; the exchange with tmax 100 ms
 * and an admin port. Ports into port[]. */
static void start_edge_world(const char *name, const char *tag, const char *const specs[],
                             const char *const ids[], int n, int port[]) {
    fx_spawn_bidder(w->env, specs, n, port);
    char interests[64];
    snprintf(interests, sizeof interests, "[\"%s\"]", tag);
    for (int i = 0; i < n; i++)
        wx_register_advertiser(w, ids[i], port[i], interests);
    wx_opts o = {.tmax_ms = 100, .admin_port = fx_free_port()};
    wx_start_exchange(w, name, &o);
}

static double bidder_metric(const char *name, const char *bidder) {
    char series[256];
    snprintf(series, sizeof series, "%s{bidder=\"%s\"}", name, bidder);
    return metric(series);
}

static double skipped_metric(const char *bidder, const char *reason) {
    char series[256];
    snprintf(series, sizeof series, "rtb_bidder_skipped_total{bidder=\"%s\",reason=\"%s\"}", bidder,
             reason);
    return metric(series);
}

#define ST_N 1200
#define ST_INTERVAL_MS 5 /* 200/s for 6 s */

/* A 300 ms stall of the exchange itself (SIGSTOP) under steady load: the
 * auctions it could not close on time are not held against the bidders, so
 * about a second later every auction calls both healthy bidders again. */
START_TEST(stall_does_not_throttle_healthy_bidders) {
    const char *specs[] = {"id=h1,latency=1,price=fixed:2", "id=h2,latency=1,price=fixed:1.5"};
    const char *ids[] = {"h1", "h2"};
    int port[2];
    start_edge_world("edge-stall", "stl", specs, ids, 2, port);
    tally t;
    tally_init(&t, "st", ST_N);
    tally *ts[] = {&t};
    pacer p;
    int64_t t0 = fx_now_ms();
    pacer_start(&p, "st", "stl", ST_N, ST_INTERVAL_MS);
    collect(ts, 1, t0 + 1200, -1);
    fx_kill(w->exchange_pid, SIGSTOP);
    fx_sleep_ms(300);
    int64_t resumed = fx_now_ms();
    fx_kill(w->exchange_pid, SIGCONT);
    collect(ts, 1, t0 + ST_N * ST_INTERVAL_MS + 3000, ST_N);
    pacer_join(&p);
    collect_quiet(ts, 1, 300);
    expect_all_present(&t, 0, ST_N, "stall");
    ck_assert_msg(t.dups == 0, "%d duplicate results", t.dups);

    int checked = 0, bad = 0, first_bad = -1;
    for (int k = 0; k < ST_N; k++) {
        if (p.sent_ms[k] < resumed + 1000) continue;
        checked++;
        if (strcmp(t.status[k], "success") != 0 || t.bidders[k] != 2 || t.skipped[k] != 0) {
            if (bad++ == 0) first_bad = k;
        }
    }
    fprintf(stderr, "test_faults: stall: %d auctions from 1 s after it, %d not calling both\n",
            checked, bad);
    ck_assert_msg(checked >= 300, "only %d requests sent 1 s after the stall", checked);
    if (bad > 0)
        wx_fail_with_log(w,
                         "%d of %d auctions 1 s after the stall did not call both healthy "
                         "bidders (first st-%d: %s, bidders %d, skipped %d)",
                         bad, checked, first_bad, t.status[first_bad], t.bidders[first_bad],
                         t.skipped[first_bad]);
    for (int i = 0; i < 2; i++) {
        if (bidder_metric("rtb_bidder_health_share", ids[i]) != 1)
            wx_fail_with_log(w, "%s's health share is not 1 after the stall", ids[i]);
        if (bidder_metric("rtb_bidder_circuit_state", ids[i]) != 0)
            wx_fail_with_log(w, "%s's circuit is not closed after the stall", ids[i]);
    }
    free(p.sent_ms);
    tally_free(&t);
    wx_stop_exchange(w);
}
END_TEST

#define FL_N 700
#define FL_INTERVAL_MS 10 /* 100/s for 7 s */

/* A bidder that misses the deadline in about 60 % of its calls (answers in
 * 60..160 ms, tmax 100) is cut down, never cut off: it keeps at least
 * health.min_share (0.05) of the auctions, so its recovery would be seen. */
START_TEST(bidder_timing_out_keeps_its_min_share) {
    const char *specs[] = {"id=flaky,latency=60,jitter=100,price=fixed:3",
                           "id=steady,latency=1,price=fixed:1"};
    const char *ids[] = {"flaky", "steady"};
    int port[2];
    start_edge_world("edge-flaky", "flk", specs, ids, 2, port);
    tally t;
    tally_init(&t, "fl", FL_N);
    tally *ts[] = {&t};
    pacer p;
    int64_t t0 = fx_now_ms();
    pacer_start(&p, "fl", "flk", FL_N, FL_INTERVAL_MS);
    collect(ts, 1, t0 + 3000, -1); /* learning is over well before */
    double f1 = bidder_metric("rtb_bidder_calls_total", "flaky");
    double s1 = bidder_metric("rtb_bidder_calls_total", "steady");
    collect(ts, 1, t0 + FL_N * FL_INTERVAL_MS + 3000, FL_N);
    pacer_join(&p);
    collect_quiet(ts, 1, 300);
    expect_all_present(&t, 0, FL_N, "flaky");
    double f2 = bidder_metric("rtb_bidder_calls_total", "flaky");
    double s2 = bidder_metric("rtb_bidder_calls_total", "steady");
    double auctions = s2 - s1, calls = f2 - f1; /* steady is in every auction */
    double skipped = skipped_metric("flaky", "too_slow") + skipped_metric("flaky", "throttled");
    fprintf(stderr,
            "test_faults: flaky: %.0f calls in %.0f auctions (%.1f %%), %.0f skipped in all\n",
            calls, auctions, auctions ? 100 * calls / auctions : 0, skipped);
    ck_assert_msg(auctions >= 300, "only %.0f auctions called steady", auctions);
    ck_assert_msg(skipped > 0, "flaky was never skipped: health did not act");
    ck_assert_msg(calls >= auctions * 0.05 - 1,
                  "flaky got %.0f of %.0f auctions, under its min_share 0.05", calls, auctions);
    ck_assert_msg(calls <= auctions * 0.25, "flaky got %.0f of %.0f auctions: not cut down", calls,
                  auctions);
    free(p.sent_ms);
    tally_free(&t);
    wx_stop_exchange(w);
}
END_TEST

/* One auction of the connection-refused case; returns its result. */
static cJSON *edge_auction(const char *prefix, int n, const char *tag) {
    char id[32];
    snprintf(id, sizeof id, "%s-%d", prefix, n);
    wx_publish_tagged(w, id, 1.0, tag);
    return wx_wait_result(w, id);
}

/* An endpoint that refuses connections opens the bidder's circuit; once
 * something listens there, the probe after the pause closes it. */
START_TEST(connection_refused_opens_the_circuit_and_success_closes_it) {
    const char *specs[] = {"id=ok,latency=1,price=fixed:1"};
    int port[1];
    fx_spawn_bidder(w->env, specs, 1, port);
    int gone_port = fx_free_port(); /* nothing listens there yet */
    wx_register_advertiser(w, "ok", port[0], "[\"ref\"]");
    wx_register_advertiser(w, "gone", gone_port, "[\"ref\"]");
    wx_opts o = {.tmax_ms = 100, .admin_port = fx_free_port()};
    wx_start_exchange(w, "edge-refused", &o);

    int n = 0, opened_after = -1;
    int64_t opened_ms = 0;
    for (; n < 20 && opened_after < 0; n++) {
        cJSON *r = edge_auction("cr", n, "ref");
        wx_expect_result(r, "success", 1, 2, 0, 1); /* gone refused: a bidder error */
        cJSON_Delete(r);
        if (bidder_metric("rtb_bidder_circuit_state", "gone") == 1) {
            opened_after = n + 1;
            opened_ms = fx_now_ms();
        }
    }
    ck_assert_msg(opened_after == RTB_ERRORS_IN_A_ROW,
                  "the circuit opened after %d refusals, want %d", opened_after,
                  RTB_ERRORS_IN_A_ROW);
    cJSON *r = edge_auction("cr", n++, "ref");
    wx_expect_result(r, "success", 1, 1, 0, 0);
    ck_assert_msg(wx_jnum(r, "skipped") == 1, "gone not skipped while its circuit is open");
    cJSON_Delete(r);

    /* Something answers there now; the probe after the 1 s pause closes it. */
    char spec[64];
    snprintf(spec, sizeof spec, "id=gone,port=%d,latency=1,price=fixed:3", gone_port);
    const char *specs2[] = {spec};
    int port2[1];
    fx_spawn_bidder(w->env, specs2, 1, port2);
    ck_assert_int_eq(port2[0], gone_port);
    fx_sleep_ms((int)(opened_ms + 1200 - fx_now_ms()));
    r = edge_auction("cr", n++, "ref");
    wx_expect_result(r, "success", 2, 2, 0, 0);
    wx_expect_winner(r, "gone", 3.0, 1.01);
    cJSON_Delete(r);
    expect_metric("rtb_bidder_circuit_state{bidder=\"gone\"}", 0);
    r = edge_auction("cr", n++, "ref");
    wx_expect_result(r, "success", 2, 2, 0, 0);
    ck_assert_msg(wx_jnum(r, "skipped") == 0, "gone still skipped after its circuit closed");
    cJSON_Delete(r);
    wx_stop_exchange(w);
}
END_TEST

#define SW_N 60
#define SW_INTERVAL_MS 20 /* warm-up: 50/s */
#define SM_N 200
#define SM_INTERVAL_MS 10 /* then 100/s */

/* A bidder that always answers in 150 ms with tmax 100 is found too slow
 * once its latency is known: it is skipped in most auctions, which then
 * close in the fast bidder's time, and still called in min_share of them. */
START_TEST(slow_bidder_is_skipped_and_fast_auctions_close_fast) {
    const char *specs[] = {"id=slow,latency=150,price=fixed:3", "id=fast,latency=1,price=fixed:2"};
    const char *ids[] = {"slow", "fast"};
    int port[2];
    start_edge_world("edge-slow", "slw", specs, ids, 2, port);
    tally warm, t;
    tally_init(&warm, "sw", SW_N);
    tally_init(&t, "sm", SM_N);
    tally *ts[] = {&warm, &t};
    pacer p;
    int64_t t0 = fx_now_ms();
    pacer_start(&p, "sw", "slw", SW_N, SW_INTERVAL_MS);
    collect(ts, 2, t0 + SW_N * SW_INTERVAL_MS + 2000, SW_N);
    pacer_join(&p);
    free(p.sent_ms);
    collect_quiet(ts, 2, 300);
    expect_all_present(&warm, 0, SW_N, "warm-up");

    t0 = fx_now_ms();
    pacer_start(&p, "sm", "slw", SM_N, SM_INTERVAL_MS);
    tally *tm[] = {&t, &warm};
    collect(tm, 2, t0 + SM_N * SM_INTERVAL_MS + 2000, SM_N);
    pacer_join(&p);
    collect_quiet(tm, 2, 300);
    expect_all_present(&t, 0, SM_N, "measured");
    int skipped = 0, called = 0, slow_close = 0;
    double worst = 0;
    for (int k = 0; k < SM_N; k++) {
        if (t.skipped[k] == 1 && t.bidders[k] == 1) {
            skipped++;
            if (t.latency_ms[k] > worst) worst = t.latency_ms[k];
            slow_close += t.latency_ms[k] > 30;
        } else if (t.bidders[k] == 2 && t.timeouts[k] == 1) {
            called++;
        }
    }
    fprintf(stderr,
            "test_faults: slow: skipped in %d of %d auctions (slowest of those %.1f ms), "
            "called in %d\n",
            skipped, SM_N, worst, called);
    ck_assert_msg(skipped >= SM_N * 85 / 100, "slow skipped in only %d of %d auctions", skipped,
                  SM_N);
    ck_assert_msg(slow_close <= SM_N / 50,
                  "%d auctions without slow took over 30 ms (slowest %.1f ms)", slow_close, worst);
    ck_assert_msg(worst < 100, "an auction without slow ran to the deadline (%.1f ms)", worst);
    ck_assert_msg(called >= 3, "slow was called in %d auctions: its latency is no longer measured",
                  called);
    /* Its every call outlived the deadline, and its answer came 50 ms
     * later: let go, not cancelled, so the answer kept the connection. A
     * cancel would have closed it, and every call would connect. Kept, the
     * connections are about the calls out at once (8 at 50/s of 150 ms). */
    double calls = wx_metric(w, "rtb_bidder_calls_total{bidder=\"slow\"}");
    double connects = wx_metric(w, "rtb_bidder_connects_total{bidder=\"slow\"}");
    fprintf(stderr, "test_faults: slow: %.0f calls over %.0f connections\n", calls, connects);
    ck_assert_msg(calls >= 10, "slow got %.0f calls", calls);
    ck_assert_msg(connects >= 1 && connects <= calls / 2,
                  "%.0f connections opened for %.0f calls to slow", connects, calls);
    free(p.sent_ms);
    tally_free(&warm);
    tally_free(&t);
    wx_stop_exchange(w);
}
END_TEST

#define BF_N 20000
#define BF_LATE_MS 30

/* A burst far above what the exchange can do: every request gets exactly one
 * result, and the auctions it accepted closed on time: 99 % of them within
 * tmax + 5 ms (SPEC 4's promise), every one within tmax + BF_LATE_MS (a
 * generous bound, for a shared box under ASan). */
START_TEST(burst_far_above_capacity_gets_one_result_each_and_stays_on_time) {
    const char *specs[] = {"id=bf,latency=1,price=fixed:2"};
    const char *ids[] = {"bf"};
    int port[1];
    start_edge_world("edge-burst", "bst", specs, ids, 1, port);
    tally t;
    tally_init(&t, "bf", BF_N);
    tally *ts[] = {&t};
    int64_t start = publish_burst("bf", BF_N, "bst");
    collect(ts, 1, start + 90000, BF_N);
    collect_quiet(ts, 1, 300);
    expect_all_present(&t, 0, BF_N, "burst");
    ck_assert_msg(t.dups == 0, "%d duplicate results", t.dups);
    int overloaded = 0, accepted = 0, late = 0, first_late = -1, over5 = 0;
    double slowest = 0;
    for (int k = 0; k < BF_N; k++) {
        if (strcmp(t.status[k], "overloaded") == 0) {
            overloaded++;
            continue;
        }
        accepted++;
        over5 += t.latency_ms[k] > w->tmax_ms + 5;
        if (t.latency_ms[k] > slowest) slowest = t.latency_ms[k];
        if (t.latency_ms[k] > w->tmax_ms + BF_LATE_MS && late++ == 0) first_late = k;
    }
    fprintf(stderr,
            "test_faults: burst of %d in %lld ms: %d accepted (%d over tmax + 5 ms, slowest "
            "%.1f ms), %d overloaded\n",
            BF_N, (long long)(fx_now_ms() - start), accepted, over5, slowest, overloaded);
    ck_assert_msg(accepted > 0, "nothing accepted");
    if (late > 0)
        wx_fail_with_log(w, "%d accepted auctions took over tmax + %d ms (first bf-%d: %.1f ms)",
                         late, BF_LATE_MS, first_late, t.latency_ms[first_late]);
    if (over5 > accepted / 100)
        wx_fail_with_log(w, "%d of %d accepted auctions took over tmax + 5 ms: p99 is late", over5,
                         accepted);
    tally_free(&t);
    wx_stop_exchange(w);
}
END_TEST

/* ---- 8. From Redis (SPEC 15) ------------------------------------------------------------ */

#define RS_N 1400
#define RS_INTERVAL_MS 5 /* 200/s for 7 s */
#define RS_STALL_MS 3000
#define RS_TIMEOUT_MS 1000 /* redis.timeout_ms: the default */
#define RS_LATE_MS 50      /* generous: SPEC 4 promises tmax + 5 ms at p99 */
#define RS_RSS_SLACK_KB (32L * 1024)

/* Redis frozen (SIGSTOP) for 3 s under 200 requests a second: every auction
 * still closes on time and its result waits in the queue; the exchange
 * drops the silent connection redis.timeout_ms after its oldest command
 * (one WARN line, counted; Redis counts as down meanwhile) and reconnects;
 * memory stays within a bound (RSS grows by at most 32 MiB); after SIGCONT
 * every request has its result, published at least once (what was on the
 * wire when the connection was dropped may come twice). */
START_TEST(redis_stall_under_load) {
    start_tagged_world("faults-stall-redis", "rsl", "id=adv,price=fixed:2", 100, 0);
    tally t;
    tally_init(&t, "rs", RS_N);
    tally *ts[] = {&t};
    double timeouts = metric("rtb_redis_timeouts_total");
    double reconnects = metric("rtb_redis_reconnects_total");
    pacer p;
    int64_t t0 = fx_now_ms();
    pacer_start(&p, "rs", "rsl", RS_N, RS_INTERVAL_MS);
    collect(ts, 1, t0 + 1500, -1);
    long rss_before = rss_kb(w->exchange_pid), rss_max = rss_before;

    pid_t redis = fx_redis_pid(w->env);
    int64_t t_stop = fx_now_ms(), t_dropped = 0;
    fx_kill(redis, SIGSTOP);
    while (fx_now_ms() < t_stop + RS_STALL_MS) {
        if (t_dropped == 0 && metric("rtb_redis_connected") == 0) t_dropped = fx_now_ms();
        long rss = rss_kb(w->exchange_pid);
        rss_max = rss > rss_max ? rss : rss_max;
        fx_sleep_ms(20);
    }
    fx_kill(redis, SIGCONT);
    int64_t t_back = fx_now_ms();

    collect(ts, 1, t0 + RS_N * RS_INTERVAL_MS + 50, -1);
    pacer_join(&p);
    ck_assert_msg(p.refused == 0, "libmosquitto refused %d publishes", p.refused);
    int64_t last_sent = p.sent_ms[RS_N - 1];
    collect(ts, 1,
            t_back + RECOVERY_MS > last_sent + 2000 ? t_back + RECOVERY_MS : last_sent + 2000,
            RS_N);
    collect_quiet(ts, 1, 300);
    expect_all_present(&t, 0, RS_N, "Redis stall");

    if (t_dropped == 0)
        wx_fail_with_log(w, "Redis stalled for %d ms and the exchange kept its connection",
                         RS_STALL_MS);
    int64_t drop_ms = t_dropped - t_stop;
    if (drop_ms < RS_TIMEOUT_MS - 100 || drop_ms > RS_TIMEOUT_MS + 1000)
        wx_fail_with_log(w, "connection dropped %lld ms into the stall, want about %d",
                         (long long)drop_ms, RS_TIMEOUT_MS);
    /* On time, stalled or not; results of the stall waited for Redis. */
    int late = 0, first_late = -1, queued = 0, on_wire = 0;
    for (int k = 0; k < RS_N; k++) {
        if (t.latency_ms[k] > w->tmax_ms + RS_LATE_MS && late++ == 0) first_late = k;
        int64_t sent = p.sent_ms[k];
        if (sent > t_stop && sent < t_back - 200) {
            queued++;
            if (t.first_ms[k] < t_back)
                wx_fail_with_log(w, "rs-%d has a result while Redis was frozen", k);
            if (t.first_ms[k] > t_back + RECOVERY_MS)
                wx_fail_with_log(w, "rs-%d published %lld ms after Redis was back", k,
                                 (long long)(t.first_ms[k] - t_back));
        }
        on_wire += sent > t_stop - 2 * w->tmax_ms && sent < t_dropped + 100;
    }
    if (late > 0)
        wx_fail_with_log(w, "%d auctions closed over tmax + %d ms (first rs-%d: %.1f ms)", late,
                         RS_LATE_MS, first_late, t.latency_ms[first_late]);
    /* At least once: only what was sent before the drop can come twice. */
    ck_assert_msg(t.dups <= on_wire + MAX_DUPLICATES,
                  "%d duplicates, but only %d results were out before the drop", t.dups, on_wire);
    fprintf(stderr,
            "test_faults: redis stall: dropped %lld ms into it; %d results queued through it, %d "
            "duplicates; RSS %ld kB -> at most %ld kB\n",
            (long long)drop_ms, queued, t.dups, rss_before, rss_max);
    ck_assert_msg(queued > 0, "no request was sent during the stall");
    ck_assert_msg(rss_max - rss_before <= RS_RSS_SLACK_KB,
                  "RSS grew by %ld kB during a %d ms Redis stall, bound %ld kB",
                  rss_max - rss_before, RS_STALL_MS, RS_RSS_SLACK_KB);
    ck_assert_msg(metric("rtb_redis_timeouts_total") > timeouts, "rtb_redis_timeouts_total is 0");
    ck_assert_msg(metric("rtb_redis_reconnects_total") > reconnects, "no reconnect");
    int warned = log_count("redis: no answer from");
    if (warned != 1) wx_fail_with_log(w, "the timeout is logged %d times, want once", warned);
    await_metric("rtb_redis_publish_queued", 0, 2000);
    expect_metric("rtb_redis_publish_dropped_total", 0);
    expect_metric("rtb_redis_connected", 1);
    free(p.sent_ms);
    tally_free(&t);
    wx_stop_exchange(w);
}
END_TEST

#define MR_N 10

/* limits.max_pending_redis 1 with Redis frozen: the first profile lookup
 * waits, every later command is refused at once (counted), so those
 * auctions take the default profile and still call the bidder; every
 * request has its result once Redis is back. */
START_TEST(redis_commands_are_capped) {
    start_tagged_world_with(
        "faults-capped", "mpr", "id=adv,price=fixed:2", 100, 0,
        "\"limits\":{\"max_pending_redis\":1},\"redis\":{\"timeout_ms\":10000}");
    tally t;
    tally_init(&t, "mr", MR_N);
    tally *ts[] = {&t};
    double refused = metric("rtb_redis_commands_refused_total");
    double profile_errors = metric("rtb_profile_errors_total");
    double requests = metric("rtb_requests_total");

    pid_t redis = fx_redis_pid(w->env);
    fx_kill(redis, SIGSTOP);
    publish_burst("mr", MR_N, "mpr");
    await_metric("rtb_requests_total", requests + MR_N, 3000);
    await_metric("rtb_inflight_auctions", 0, 1000 + w->tmax_ms);
    expect_metric("rtb_redis_commands_pending", 1);
    double r = metric("rtb_redis_commands_refused_total") - refused;
    double e = metric("rtb_profile_errors_total") - profile_errors;
    fx_kill(redis, SIGCONT);
    int64_t t_back = fx_now_ms();
    if (r < MR_N - 1 || e < MR_N - 1)
        wx_fail_with_log(w, "%.0f commands refused, %.0f profile lookups failed; want %d each", r,
                         e, MR_N - 1);

    collect(ts, 1, t_back + RECOVERY_MS, MR_N);
    collect_quiet(ts, 1, 300);
    expect_all_present(&t, 0, MR_N, "capped commands");
    ck_assert_msg(t.dups == 0, "%d duplicate results", t.dups);
    int success = 0;
    for (int k = 0; k < MR_N; k++)
        success += strcmp(t.status[k], "success") == 0;
    ck_assert_msg(success >= MR_N - 1, "%d of %d auctions won: a refused lookup stopped one",
                  success, MR_N);
    fprintf(stderr, "test_faults: capped: %.0f commands refused, %d of %d auctions won\n", r,
            success, MR_N);
    await_metric("rtb_redis_commands_pending", 0, 2000);
    tally_free(&t);
    wx_stop_exchange(w);
}
END_TEST

#define RB_BYTES 4096
#define RB_N 50

/* limits.max_pending_result_bytes: with Redis down the result queue keeps
 * the newest results that fit in its bytes and drops the oldest (counted);
 * once Redis is back exactly those kept are published. */
START_TEST(result_queue_bytes_drop_oldest) {
    char extra[128];
    snprintf(extra, sizeof extra, "\"limits\":{\"max_pending_result_bytes\":%d}", RB_BYTES);
    wx_opts o = {.admin_port = fx_free_port(), .extra_json = extra};
    wx_start_exchange(w, "faults-queue-bytes", &o);
    double published = metric("rtb_redis_published_total");
    double dropped = metric("rtb_redis_publish_dropped_total");
    double requests = metric("rtb_requests_total");

    fx_redis_stop(w->env);
    await_metric("rtb_redis_connected", 0, 2000);
    for (int i = 0; i < RB_N; i++) {
        char id[32];
        snprintf(id, sizeof id, "qy-%d", i);
        wx_publish_request(w, id, "u-1", "slot-1", 1.0, NULL);
    }
    await_metric("rtb_requests_total", requests + RB_N, 3000);
    await_metric("rtb_inflight_auctions", 0, 1000 + w->tmax_ms);
    int kept = (int)metric("rtb_redis_publish_queued");
    double bytes = metric("rtb_redis_publish_queued_bytes");
    if (kept < 2 || kept >= RB_N || bytes > RB_BYTES || bytes * (kept + 1) / kept <= RB_BYTES - 8)
        wx_fail_with_log(w, "%d results queued in %.0f bytes: not the newest that fit in %d", kept,
                         bytes, RB_BYTES);
    expect_metric("rtb_redis_publish_dropped_total", dropped + RB_N - kept);

    tally t;
    tally_init(&t, "qy", RB_N);
    tally *ts[] = {&t};
    int64_t t_back = redis_start_observed();
    collect(ts, 1, t_back + RECOVERY_MS, kept);
    collect_quiet(ts, 1, 500);
    for (int k = 0; k < RB_N; k++) {
        int want = k >= RB_N - kept;
        if (t.count[k] != want)
            wx_fail_with_log(w, "qy-%d: %d results, want %d (the newest %d of %d are kept)", k,
                             t.count[k], want, kept, RB_N);
    }
    fprintf(stderr, "test_faults: queue bytes: %d results kept in %.0f bytes\n", kept, bytes);
    await_metric("rtb_redis_publish_queued", 0, 2000);
    expect_metric("rtb_redis_publish_queued_bytes", 0);
    double delta = metric("rtb_redis_published_total") - published;
    ck_assert_msg(delta == kept, "rtb_redis_published_total grew by %.0f, want %d", delta, kept);
    tally_free(&t);
    wx_stop_exchange(w);
}
END_TEST

/* ---- 9. Keys (SPEC 15) --------------------------------------------------------------------- */

#define KR_TTL_S 1000
#define KR_POLL_MS 3000

/* HGET key field as a number, polling until it equals `want` (at most
 * KR_POLL_MS); returns the last value read (-1 when absent). */
static long long hget_poll(const char *key, const char *field, long long want) {
    int64_t until = fx_now_ms() + KR_POLL_MS;
    for (;;) {
        redisReply *r = fx_redis_cmd(w->env, "HGET %s %s", key, field);
        long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
        freeReplyObject(r);
        if (v == want || fx_now_ms() > until) return v;
        fx_sleep_ms(20);
    }
}

/* An integer reply to `cmd key` (TTL, EXISTS). */
static long long redis_key_int(const char *cmd, const char *key) {
    redisReply *r = fx_redis_cmd(w->env, "%s %s", cmd, key);
    ck_assert_msg(r->type == REDIS_REPLY_INTEGER, "%s %s: not an integer", cmd, key);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void expect_ttl_renewed(const char *key, const char *after) {
    long long ttl = redis_key_int("TTL", key);
    if (ttl < KR_TTL_S - 10 || ttl > KR_TTL_S)
        wx_fail_with_log(w, "TTL of %s is %lld after %s, want about %d", key, ttl, after, KR_TTL_S);
}

/* Keys of the keyspace matching `pattern`, counted with SCAN. */
static int count_keys(const char *pattern) {
    int n = 0;
    char cursor[32] = "0";
    do {
        redisReply *r = fx_redis_cmd(w->env, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        ck_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        n += (int)r->element[1]->elements;
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return n;
}

static void win_one(const char *id) {
    wx_publish_tagged(w, id, 1.0, "key");
    cJSON *r = wx_wait_result(w, id);
    wx_expect_result(r, "success", 1, 1, 0, 0);
    wx_expect_winner(r, "adv", 2.0, 1.0);
    cJSON_Delete(r);
}

/* stats:ad:{ad_id} expires stats.ad_ttl_s after its last write: a win sets
 * the TTL, an impression renews it; stats:advertiser:* never expires. An id
 * that breaks the request_id rule is never a key: an event carrying one (or
 * naming an advertiser not in the registry) stores nothing, and
 * rtb-bidder's adid "ad_{adv}_{request_id}" is 135 characters for a
 * request_id of 128, so that win counts on the advertiser only, and in
 * rtb_ad_stats_skipped_total. */
START_TEST(ad_stats_expire_and_ids_in_keys_follow_the_rule) {
    char extra[64];
    snprintf(extra, sizeof extra, "\"stats\":{\"ad_ttl_s\":%d}", KR_TTL_S);
    start_tagged_world_with("faults-keys", "key", "id=adv,price=fixed:2", 100, 0, extra);
    const char *ad_key = "stats:ad:ad_adv_kr-1";
    win_one("kr-1");
    if (hget_poll(ad_key, "wins", 1) != 1) wx_fail_with_log(w, "%s has no win", ad_key);
    expect_ttl_renewed(ad_key, "a win");
    long long adv_ttl = redis_key_int("TTL", "stats:advertiser:adv");
    ck_assert_msg(adv_ttl == -1, "stats:advertiser:adv has a TTL (%lld)", adv_ttl);

    fx_redis_do(w->env, "EXPIRE %s 100", ad_key);
    ck_assert_int_le(redis_key_int("TTL", ad_key), 100);
    const char *imp = "{\"request_id\":\"kr-1\",\"ad_id\":\"ad_adv_kr-1\","
                      "\"advertiser_id\":\"adv\",\"user_id\":\"u-1\"}";
    wx_publish_raw(w, "rtb/events/impression", imp, strlen(imp));
    if (hget_poll(ad_key, "impressions", 1) != 1)
        wx_fail_with_log(w, "%s has no impression", ad_key);
    expect_ttl_renewed(ad_key, "an impression");

    /* Events whose ids could not be keys, or naming an advertiser the
     * exchange does not know, store nothing; the good one behind them (same
     * publisher, so read after them) shows they were read. */
    char long_ad[300], bad3[400];
    memset(long_ad, 'a', 200);
    long_ad[200] = '\0';
    snprintf(bad3, sizeof bad3, "{\"ad_id\":\"%s\",\"advertiser_id\":\"adv\",\"user_id\":\"u-1\"}",
             long_ad);
    const char *bad[] = {"{\"ad_id\":\"ad adv\",\"advertiser_id\":\"adv\",\"user_id\":\"u-1\"}",
                         "{\"ad_id\":\"ad-x\",\"advertiser_id\":\"nobody\",\"user_id\":\"u-1\"}",
                         bad3};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        wx_publish_raw(w, "rtb/events/impression", bad[i], strlen(bad[i]));
    wx_publish_raw(w, "rtb/events/impression", imp, strlen(imp));
    if (hget_poll(ad_key, "impressions", 2) != 2)
        wx_fail_with_log(w, "%s: the second impression is not counted", ad_key);
    ck_assert_msg(redis_key_int("EXISTS", "stats:advertiser:nobody") == 0,
                  "an event made stats:advertiser:nobody");

    char id[129], key[160];
    memset(id, 'x', sizeof id - 1);
    memcpy(id, "kr-", 3);
    id[sizeof id - 1] = '\0';
    win_one(id);
    if (hget_poll("stats:advertiser:adv", "wins", 2) != 2)
        wx_fail_with_log(w, "the second win is not counted on the advertiser");
    snprintf(key, sizeof key, "stats:ad:ad_adv_%s", id);
    ck_assert_msg(redis_key_int("EXISTS", key) == 0, "%s exists", key);
    int nkeys = count_keys("stats:ad:*");
    ck_assert_msg(nkeys == 1, "%d stats:ad: keys, want only %s", nkeys, ad_key);
    expect_metric("rtb_ad_stats_skipped_total", 1);
    wx_stop_exchange(w);
}
END_TEST

/* ---- suite -------------------------------------------------------------------------- */

static Suite *faults_suite(void) {
    Suite *s = suite_create("faults");
    wx_add_case(s, "redis_outage", redis_outage_under_load, 60, setup, teardown);
    wx_add_case(s, "queue_bound", result_queue_drops_oldest, 60, setup, teardown);
    wx_add_case(s, "broker_outage", broker_outage, 60, setup, teardown);
    wx_add_case(s, "overload", overload_answers_at_once, 90, setup, teardown);
    wx_add_case(s, "breaker", circuit_breaker_opens_probes_and_closes, 60, setup, teardown);
    wx_add_case(s, "drain", sigterm_drain_with_redis_down, 60, setup, teardown);
    wx_add_case(s, "stall", stall_does_not_throttle_healthy_bidders, 60, setup, teardown);
    wx_add_case(s, "flaky", bidder_timing_out_keeps_its_min_share, 60, setup, teardown);
    wx_add_case(s, "refused", connection_refused_opens_the_circuit_and_success_closes_it, 60, setup,
                teardown);
    wx_add_case(s, "slow", slow_bidder_is_skipped_and_fast_auctions_close_fast, 60, setup,
                teardown);
    wx_add_case(s, "burst", burst_far_above_capacity_gets_one_result_each_and_stays_on_time, 150,
                setup, teardown);
    wx_add_case(s, "redis_stall", redis_stall_under_load, 60, setup, teardown);
    wx_add_case(s, "redis_capped", redis_commands_are_capped, 60, setup, teardown);
    wx_add_case(s, "queue_bytes", result_queue_bytes_drop_oldest, 60, setup, teardown);
    wx_add_case(s, "ad_keys", ad_stats_expire_and_ids_in_keys_follow_the_rule, 60, setup, teardown);
    return s;
}

int main(void) {
    return fx_run_suite(faults_suite());
}

/* test_admin.c -- integration suite for the admin listener (SPEC 11).
 *
 * Each test starts an exchange world (tests/world.h) whose config sets
 * admin.listen to 127.0.0.1 on a free port, and talks to it with the
 * fixture's HTTP client: GET /healthz while Redis and the broker are stopped
 * and started again, GET /metrics before and after a few auctions, methods
 * and paths the listener does not serve, and a port that is already taken.
 *
 * The one idea: the readiness probes are auctions too, so counters are
 * checked as deltas between a scrape taken once the world is ready (nothing
 * in flight) and one taken after the test's own auctions have their results.
 * Every scrape is parsed by a small Prometheus text-format (0.0.4) parser
 * that fails the test on any malformed line, on a sample whose family has
 * no HELP or no TYPE before it, and on a duplicate series. Every test ends
 * with the exchange's clean exit (SIGTERM, status 0, no sanitizer report),
 * except the one where it must refuse to start. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/world.h"

#define HTTP_WAIT_MS 2000 /* one admin request; the loop answers at once */

static wx_world *w;

static void setup(void) {
    w = wx_start();
}

static void teardown(void) {
    wx_stop(w);
    w = NULL;
}

/* ---- a Prometheus text-format parser ------------------------------------- */

#define MAX_LABELS 4
#define NAME_MAX_LEN 128

typedef struct label {
    char name[NAME_MAX_LEN];
    char value[256]; /* unescaped */
} label;

/* One sample line: name{labels} value. */
typedef struct sample {
    char name[NAME_MAX_LEN];
    label labels[MAX_LABELS];
    int nlabels;
    char series[512]; /* name and labels as written, to spot duplicates */
    double value;
} sample;

/* One metric family: what its # HELP and # TYPE lines said. */
typedef struct family {
    char name[NAME_MAX_LEN];
    char type[16]; /* "" until its TYPE line */
    int has_help;
    int has_samples;
} family;

typedef struct metrics {
    sample *samples;
    size_t nsamples, cap;
    family *families;
    size_t nfamilies, fcap;
} metrics;

static void metrics_free(metrics *m) {
    if (m == NULL) return;
    free(m->samples);
    free(m->families);
    free(m);
}

static int is_name_start(int c, int colon_ok) {
    return isalpha(c) || c == '_' || (colon_ok && c == ':');
}

/* Reads a metric name (colon_ok) or label name at *p into out; 0 or -1. */
static int read_name(const char **p, char *out, int colon_ok) {
    const char *s = *p;
    if (!is_name_start((unsigned char)*s, colon_ok)) return -1;
    size_t n = 0;
    while (is_name_start((unsigned char)s[n], colon_ok) || isdigit((unsigned char)s[n]))
        n++;
    if (n >= NAME_MAX_LEN) return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    *p = s + n;
    return 0;
}

/* Reads "..." with the escapes \\ \" \n at *p into out; 0 or -1. */
static int read_label_value(const char **p, char *out, size_t outlen) {
    const char *s = *p;
    if (*s++ != '"') return -1;
    size_t n = 0;
    for (; *s != '"'; s++) {
        char c = *s;
        if (c == '\0' || c == '\n') return -1;
        if (c == '\\') {
            s++;
            if (*s == 'n')
                c = '\n';
            else if (*s == '\\' || *s == '"')
                c = *s;
            else
                return -1;
        }
        if (n + 1 >= outlen) return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    *p = s + 1;
    return 0;
}

/* Reads a sample value: a float, +Inf, -Inf or NaN, up to a blank or the
 * end of the line. */
static int read_value(const char **p, double *out) {
    const char *s = *p;
    size_t n = strcspn(s, " \t");
    char tok[64];
    if (n == 0 || n >= sizeof tok) return -1;
    memcpy(tok, s, n);
    tok[n] = '\0';
    char *end = NULL;
    errno = 0;
    *out = strtod(tok, &end);
    if (*end != '\0' || errno == ERANGE) return -1;
    *p = s + n;
    return 0;
}

static family *find_family(metrics *m, const char *name) {
    for (size_t i = 0; i < m->nfamilies; i++) {
        if (strcmp(m->families[i].name, name) == 0) return &m->families[i];
    }
    return NULL;
}

static family *get_family(metrics *m, const char *name) {
    family *f = find_family(m, name);
    if (f != NULL) return f;
    if (m->nfamilies == m->fcap) {
        m->fcap = m->fcap ? 2 * m->fcap : 32;
        m->families = realloc(m->families, m->fcap * sizeof(*m->families));
        ck_assert_ptr_nonnull(m->families);
    }
    f = &m->families[m->nfamilies++];
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof f->name, "%s", name);
    return f;
}

/* The family a sample belongs to: its own name when that has a TYPE, else
 * a histogram's (or summary's) for the _bucket, _sum and _count series. */
static family *family_of(metrics *m, const char *name) {
    family *f = find_family(m, name);
    if (f != NULL && f->type[0] != '\0') return f;
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t n = strlen(name), k = strlen(suffixes[i]);
        if (n <= k || strcmp(name + n - k, suffixes[i]) != 0) continue;
        char base[NAME_MAX_LEN];
        snprintf(base, sizeof base, "%.*s", (int)(n - k), name);
        family *b = find_family(m, base);
        if (b != NULL &&
            (strcmp(b->type, "histogram") == 0 || (i > 0 && strcmp(b->type, "summary") == 0)))
            return b;
    }
    return f;
}

/* "# HELP name text" or "# TYPE name type"; other comments are ignored. */
static int parse_comment(metrics *m, const char *line, char *err, size_t errlen) {
    const char *p = line + 1;
    while (*p == ' ' || *p == '\t')
        p++;
    int help = strncmp(p, "HELP ", 5) == 0, type = strncmp(p, "TYPE ", 5) == 0;
    if (!help && !type) return 0;
    p += 5;
    while (*p == ' ' || *p == '\t')
        p++;
    char name[NAME_MAX_LEN];
    if (read_name(&p, name, 1) != 0 || (*p != ' ' && *p != '\0')) {
        snprintf(err, errlen, "bad metric name in a %s line", help ? "HELP" : "TYPE");
        return -1;
    }
    family *f = get_family(m, name);
    if (help) {
        if (f->has_help) {
            snprintf(err, errlen, "a second HELP line for %s", name);
            return -1;
        }
        f->has_help = 1;
        return 0;
    }
    p += *p == ' ';
    static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
    int known = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        known |= strcmp(p, types[i]) == 0;
    if (!known) {
        snprintf(err, errlen, "unknown TYPE '%s' for %s", p, name);
        return -1;
    }
    if (f->type[0] != '\0' || f->has_samples) {
        snprintf(err, errlen, "TYPE for %s %s", name,
                 f->type[0] != '\0' ? "given twice" : "after its samples");
        return -1;
    }
    snprintf(f->type, sizeof f->type, "%s", p);
    return 0;
}

static int parse_sample(metrics *m, const char *line, char *err, size_t errlen) {
    sample s;
    memset(&s, 0, sizeof s);
    const char *p = line;
    if (read_name(&p, s.name, 1) != 0) {
        snprintf(err, errlen, "bad metric name");
        return -1;
    }
    if (*p == '{') {
        p++;
        while (*p != '}') {
            if (s.nlabels == MAX_LABELS) {
                snprintf(err, errlen, "more than %d labels", MAX_LABELS);
                return -1;
            }
            label *l = &s.labels[s.nlabels++];
            if (read_name(&p, l->name, 0) != 0 || *p++ != '=' ||
                read_label_value(&p, l->value, sizeof l->value) != 0) {
                snprintf(err, errlen, "bad label %d", s.nlabels);
                return -1;
            }
            if (*p == ',')
                p++;
            else if (*p != '}') {
                snprintf(err, errlen, "want ',' or '}' after label %d", s.nlabels);
                return -1;
            }
        }
        p++;
    }
    snprintf(s.series, sizeof s.series, "%.*s", (int)(p - line), line);
    if (*p != ' ' && *p != '\t') {
        snprintf(err, errlen, "want a blank before the value");
        return -1;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (read_value(&p, &s.value) != 0) {
        snprintf(err, errlen, "bad value");
        return -1;
    }
    if (*p == ' ') { /* an optional timestamp, integer ms */
        p++;
        p += *p == '-';
        if (!isdigit((unsigned char)*p)) {
            snprintf(err, errlen, "bad timestamp");
            return -1;
        }
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p != '\0') {
        snprintf(err, errlen, "junk after the value");
        return -1;
    }
    family *f = family_of(m, s.name);
    if (f == NULL || f->type[0] == '\0') {
        snprintf(err, errlen, "sample of %s before (or without) its TYPE line", s.name);
        return -1;
    }
    f->has_samples = 1;
    for (size_t i = 0; i < m->nsamples; i++) {
        if (strcmp(m->samples[i].series, s.series) == 0) {
            snprintf(err, errlen, "series %.200s given twice", s.series);
            return -1;
        }
    }
    if (m->nsamples == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->samples = realloc(m->samples, m->cap * sizeof(*m->samples));
        ck_assert_ptr_nonnull(m->samples);
    }
    m->samples[m->nsamples++] = s;
    return 0;
}

/* Parses a /metrics body. Returns the metrics (metrics_free), or NULL with
 * a message naming the line in err. */
static metrics *metrics_parse(const char *text, char *err, size_t errlen) {
    metrics *m = calloc(1, sizeof(*m));
    ck_assert_ptr_nonnull(m);
    size_t len = strlen(text);
    if (len == 0 || text[len - 1] != '\n') {
        snprintf(err, errlen, "the body does not end with a newline");
        metrics_free(m);
        return NULL;
    }
    int lineno = 0;
    for (const char *p = text; *p != '\0';) {
        size_t n = strcspn(p, "\n");
        char line[1024], why[256] = "";
        lineno++;
        if (n >= sizeof line) {
            snprintf(err, errlen, "line %d: longer than %zu bytes", lineno, sizeof line - 1);
            metrics_free(m);
            return NULL;
        }
        memcpy(line, p, n);
        line[n] = '\0';
        p += n + 1;
        int rc = 0;
        if (line[0] == '#')
            rc = parse_comment(m, line, why, sizeof why);
        else if (line[0] != '\0')
            rc = parse_sample(m, line, why, sizeof why);
        if (rc != 0) {
            snprintf(err, errlen, "line %d: %s: %s", lineno, why, line);
            metrics_free(m);
            return NULL;
        }
    }
    for (size_t i = 0; i < m->nfamilies; i++) {
        const family *f = &m->families[i];
        if (!f->has_help || f->type[0] == '\0') {
            snprintf(err, errlen, "metric %s has no %s line", f->name,
                     !f->has_help ? "HELP" : "TYPE");
            metrics_free(m);
            return NULL;
        }
    }
    return m;
}

/* The sample name{lname="lvalue"} (lname NULL: name without labels), or NULL. */
static const sample *find_sample(const metrics *m, const char *name, const char *lname,
                                 const char *lvalue) {
    for (size_t i = 0; i < m->nsamples; i++) {
        const sample *s = &m->samples[i];
        if (strcmp(s->name, name) != 0) continue;
        if (lname == NULL && s->nlabels == 0) return s;
        for (int k = 0; lname != NULL && k < s->nlabels; k++) {
            if (strcmp(s->labels[k].name, lname) == 0 && strcmp(s->labels[k].value, lvalue) == 0)
                return s;
        }
    }
    return NULL;
}

/* ---- the admin listener ---------------------------------------------------- */

/* GET /metrics, which must answer 200 with a well-formed body; parsed. */
static metrics *scrape(void) {
    char *body = NULL;
    int code = fx_http(w->admin_port, "GET", "/metrics", NULL, &body, HTTP_WAIT_MS);
    if (code != 200)
        wx_fail_with_log(w, "GET /metrics: status %d, want 200: %.300s", code, wx_or_empty(body));
    char err[1200];
    metrics *m = metrics_parse(body, err, sizeof err);
    if (m == NULL) {
        fprintf(stderr, "---- /metrics ----\n%s---- end ----\n", body);
        free(body);
        ck_abort_msg("GET /metrics: not the Prometheus text format: %s", err);
    }
    free(body);
    return m;
}

/* The value of name{lname="lvalue"} in m; fails when the series is absent. */
static double mval(const metrics *m, const char *name, const char *lname, const char *lvalue) {
    const sample *s = find_sample(m, name, lname, lvalue);
    if (s == NULL) {
        ck_abort_msg("/metrics has no %s%s%s%s%s%s", name, lname ? "{" : "", lname ? lname : "",
                     lname ? "=\"" : "", lname ? lvalue : "", lname ? "\"}" : "");
    }
    return s->value;
}

/* after - before for one series. */
static double mdelta(const metrics *before, const metrics *after, const char *name,
                     const char *lname, const char *lvalue) {
    return mval(after, name, lname, lvalue) - mval(before, name, lname, lvalue);
}

/* A histogram's buckets, in the order written: `le` increasing, counts
 * cumulative (non-decreasing), the last one +Inf and equal to _count. */
static void check_histogram(const metrics *m, const char *name) {
    char bucket[NAME_MAX_LEN + 16], count[NAME_MAX_LEN + 16];
    snprintf(bucket, sizeof bucket, "%s_bucket", name);
    snprintf(count, sizeof count, "%s_count", name);
    double last_le = -INFINITY, last_n = 0;
    int nbuckets = 0;
    for (size_t i = 0; i < m->nsamples; i++) {
        const sample *s = &m->samples[i];
        if (strcmp(s->name, bucket) != 0) continue;
        ck_assert_msg(s->nlabels == 1 && strcmp(s->labels[0].name, "le") == 0,
                      "%s: want exactly the label le", s->series);
        char *end = NULL;
        double le = strtod(s->labels[0].value, &end);
        ck_assert_msg(*end == '\0' && !isnan(le), "%s: le is not a number", s->series);
        ck_assert_msg(le > last_le, "%s: le not increasing", s->series);
        ck_assert_msg(s->value >= last_n, "%s: %.0f after %.0f: buckets not cumulative", s->series,
                      s->value, last_n);
        last_le = le;
        last_n = s->value;
        nbuckets++;
    }
    ck_assert_msg(nbuckets >= 2, "%s: %d buckets", name, nbuckets);
    ck_assert_msg(isinf(last_le) && last_le > 0, "%s: the last bucket is not +Inf", name);
    ck_assert_msg(last_n == mval(m, count, NULL, NULL), "%s: +Inf bucket %.0f != _count %.0f", name,
                  last_n, mval(m, count, NULL, NULL));
}

/* GET /healthz: the status (-1 when no answer), the body in *body. */
static int healthz(char **body) {
    *body = NULL;
    return fx_http(w->admin_port, "GET", "/healthz", NULL, body, HTTP_WAIT_MS);
}

/* Polls GET /healthz every 50 ms until it answers want_code, for at most
 * within_ms; fails with the last answer otherwise. Returns the body (caller
 * frees); *took_ms (if not NULL) gets the time it took. */
static char *await_healthz(int want_code, int within_ms, int64_t *took_ms) {
    int64_t start = fx_now_ms();
    for (;;) {
        char *body = NULL;
        int code = healthz(&body);
        if (code == want_code) {
            if (took_ms != NULL) *took_ms = fx_now_ms() - start;
            return body;
        }
        if (fx_now_ms() - start > within_ms) {
            wx_fail_with_log(w, "GET /healthz: still %d after %d ms, want %d: %.300s", code,
                             within_ms, want_code, wx_or_empty(body));
        }
        free(body);
        fx_sleep_ms(50);
    }
}

static void expect_healthy(void) {
    char *body = NULL;
    int code = healthz(&body);
    ck_assert_msg(code == 200, "GET /healthz: status %d, want 200: %s", code, wx_or_empty(body));
    ck_assert_msg(strcmp(body, "ok") == 0 || strcmp(body, "ok\n") == 0,
                  "GET /healthz: body '%s', want ok", body);
    free(body);
}

/* Starts one rtb-bidder with one fast advertiser adv-1 (fixed 2.00), tagged
 * "adm" (so the probes do not reach it) and listed in the config's bidders
 * (so it survives a Redis restart), and the exchange with an admin port. */
static int start_admin_world(const char *name) {
    const char *specs[] = {"id=adv-1,price=fixed:2"};
    int port[1];
    fx_spawn_bidder(w->env, specs, 1, port);
    char bidders[512] = "";
    wx_add_config_bidder(bidders, sizeof bidders, "adv-1", port[0], "[\"adm\"]");
    wx_opts o = {.tmax_ms = 100, .bidders = bidders, .admin_port = fx_free_port()};
    wx_start_exchange(w, name, &o);
    return port[0];
}

/* A tagged auction that adv-1 wins at the floor. */
static void auction_adv1(const char *id) {
    wx_publish_tagged(w, id, 1.0, "adm");
    cJSON *r = wx_wait_result(w, id);
    wx_expect_result(r, "success", 1, 1, 0, 0);
    wx_expect_winner(r, "adv-1", 2.0, 1.0);
    cJSON_Delete(r);
}

/* ---- /healthz and /metrics ------------------------------------------------- */

START_TEST(healthz_and_metrics_count_auctions) {
    start_admin_world("admin-metrics");
    expect_healthy();

    metrics *before = scrape();
    for (int i = 0; i < 5; i++) {
        char id[32];
        snprintf(id, sizeof id, "adm-%d", i);
        auction_adv1(id);
    }
    metrics *after = scrape();

    ck_assert_msg(mval(after, "rtb_requests_total", NULL, NULL) >= 5, "rtb_requests_total < 5");
    ck_assert_msg(mdelta(before, after, "rtb_requests_total", NULL, NULL) == 5,
                  "rtb_requests_total grew by %.0f over 5 requests",
                  mdelta(before, after, "rtb_requests_total", NULL, NULL));
    /* The probes reach no bidder (adv-1 is tagged): they are no_bid. */
    ck_assert_msg(mval(after, "rtb_auctions_total", "status", "success") == 5,
                  "rtb_auctions_total{status=\"success\"} %.0f, want 5",
                  mval(after, "rtb_auctions_total", "status", "success"));
    static const char *const others[] = {"no_bid", "timeout", "invalid", "overloaded"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        ck_assert_msg(mdelta(before, after, "rtb_auctions_total", "status", others[i]) == 0,
                      "rtb_auctions_total{status=\"%s\"} changed over 5 successes", others[i]);
    }
    static const char *const per_bidder[][2] = {
        {"rtb_bidder_calls_total", "5"},         {"rtb_bidder_bids_total", "5"},
        {"rtb_bidder_no_bids_total", "0"},       {"rtb_bidder_timeouts_total", "0"},
        {"rtb_bidder_errors_total", "0"},        {"rtb_bidder_timeouts_excused_total", "0"},
        {"rtb_bidder_circuit_opens_total", "0"},
    };
    for (size_t i = 0; i < sizeof per_bidder / sizeof per_bidder[0]; i++) {
        double d = mdelta(before, after, per_bidder[i][0], "bidder", "adv-1");
        ck_assert_msg(d == atof(per_bidder[i][1]), "%s{bidder=\"adv-1\"} grew by %.0f, want %s",
                      per_bidder[i][0], d, per_bidder[i][1]);
    }
    /* Five calls on one kept-alive connection: at most its first connect. */
    double connects = mdelta(before, after, "rtb_bidder_connects_total", "bidder", "adv-1");
    ck_assert_msg(connects <= 1,
                  "rtb_bidder_connects_total{bidder=\"adv-1\"} grew by %.0f over 5 calls",
                  connects);
    ck_assert_msg(mval(after, "rtb_bidder_connects_total", "bidder", "adv-1") >= 1,
                  "rtb_bidder_connects_total{bidder=\"adv-1\"} is 0 after calls");
    ck_assert_msg(mval(after, "rtb_inflight_auctions", NULL, NULL) == 0,
                  "rtb_inflight_auctions %.0f with every result in",
                  mval(after, "rtb_inflight_auctions", NULL, NULL));
    ck_assert_msg(mval(after, "rtb_bidder_inflight", "bidder", "adv-1") == 0,
                  "rtb_bidder_inflight{bidder=\"adv-1\"} not 0 with every result in");
    ck_assert_msg(mval(after, "rtb_mqtt_connected", NULL, NULL) == 1, "rtb_mqtt_connected != 1");
    ck_assert_msg(mval(after, "rtb_redis_connected", NULL, NULL) == 1, "rtb_redis_connected != 1");

    double n = mdelta(before, after, "rtb_auction_latency_seconds_count", NULL, NULL);
    ck_assert_msg(n == 5, "rtb_auction_latency_seconds_count grew by %.0f, want 5", n);
    double sum = mdelta(before, after, "rtb_auction_latency_seconds_sum", NULL, NULL);
    ck_assert_msg(sum > 0 && sum < 5 * 0.1, "5 fast auctions took %.6f s in all", sum);
    check_histogram(before, "rtb_auction_latency_seconds");
    check_histogram(after, "rtb_auction_latency_seconds");
    metrics_free(before);
    metrics_free(after);
    expect_healthy();
    wx_stop_exchange(w);
}
END_TEST

START_TEST(bidder_timeouts_and_errors_are_counted) {
    const char *specs[] = {"id=slow,latency=300,price=fixed:2", "id=broken,mode=http500"};
    int port[2];
    fx_spawn_bidder(w->env, specs, 2, port);
    wx_register_advertiser(w, "slow", port[0], "[\"slow\"]");
    wx_register_advertiser(w, "broken", port[1], "[\"broken\"]");
    wx_opts o = {.tmax_ms = 100, .admin_port = fx_free_port()};
    wx_start_exchange(w, "admin-faults", &o);

    metrics *before = scrape();
    wx_publish_tagged(w, "adm-slow", 1.0, "slow");
    cJSON *r = wx_wait_result(w, "adm-slow");
    wx_expect_result(r, "timeout", 0, 1, 1, 0);
    cJSON_Delete(r);
    wx_publish_tagged(w, "adm-500", 1.0, "broken");
    r = wx_wait_result(w, "adm-500");
    wx_expect_result(r, "no_bid", 0, 1, 0, 1);
    cJSON_Delete(r);
    metrics *after = scrape();

    static const struct {
        const char *metric, *bidder;
        double want;
    } deltas[] = {
        {"rtb_bidder_calls_total", "slow", 1},      {"rtb_bidder_timeouts_total", "slow", 1},
        {"rtb_bidder_errors_total", "slow", 0},     {"rtb_bidder_bids_total", "slow", 0},
        {"rtb_bidder_calls_total", "broken", 1},    {"rtb_bidder_errors_total", "broken", 1},
        {"rtb_bidder_timeouts_total", "broken", 0}, {"rtb_bidder_bids_total", "broken", 0},
    };
    for (size_t i = 0; i < sizeof deltas / sizeof deltas[0]; i++) {
        double d = mdelta(before, after, deltas[i].metric, "bidder", deltas[i].bidder);
        ck_assert_msg(d == deltas[i].want, "%s{bidder=\"%s\"} grew by %.0f, want %.0f",
                      deltas[i].metric, deltas[i].bidder, d, deltas[i].want);
    }
    ck_assert_msg(mdelta(before, after, "rtb_auctions_total", "status", "timeout") == 1,
                  "rtb_auctions_total{status=\"timeout\"} did not grow by 1");
    ck_assert_msg(mdelta(before, after, "rtb_auctions_total", "status", "no_bid") == 1,
                  "rtb_auctions_total{status=\"no_bid\"} did not grow by 1");
    ck_assert_msg(mval(after, "rtb_inflight_auctions", NULL, NULL) == 0,
                  "rtb_inflight_auctions not 0 with every result in");
    /* The timed-out call was let go at the deadline: still out on its
     * connection for its grace (another tmax, 100 ms; slow answers only at
     * 300 ms), then cancelled: in flight no more. */
    wx_await_metric(w, "rtb_bidder_inflight{bidder=\"slow\"}", 0, 100 + 500);
    check_histogram(after, "rtb_auction_latency_seconds");
    metrics_free(before);
    metrics_free(after);

    /* The slow bid lands at 300 ms; it changes no counter of a closed auction. */
    fx_sleep_ms(350);
    before = scrape();
    ck_assert_msg(mval(before, "rtb_bidder_bids_total", "bidder", "slow") == 0,
                  "a bid that came after the deadline was counted");
    metrics_free(before);
    wx_stop_exchange(w);
}
END_TEST

/* ---- /healthz follows Redis and the broker ---------------------------------- */

START_TEST(healthz_follows_redis) {
    start_admin_world("admin-redis");
    expect_healthy();

    fx_redis_stop(w->env);
    int64_t took = 0;
    char *body = await_healthz(503, 2000, &took);
    ck_assert_msg(strstr(body, "redis") != NULL, "503 without a word on redis: %s", body);
    free(body);
    metrics *m = scrape();
    ck_assert_msg(mval(m, "rtb_redis_connected", NULL, NULL) == 0, "rtb_redis_connected != 0");
    ck_assert_msg(mval(m, "rtb_mqtt_connected", NULL, NULL) == 1, "rtb_mqtt_connected != 1");
    metrics_free(m);

    fx_redis_start(w->env);
    body = await_healthz(200, 6000, &took);
    free(body);
    fprintf(stderr, "test_admin: healthy %lld ms after Redis came back\n", (long long)took);
    expect_healthy();
    wx_wait_ready(w);
    auction_adv1("adm-after-redis");
    wx_stop_exchange(w);
}
END_TEST

START_TEST(healthz_follows_mqtt) {
    start_admin_world("admin-mqtt");
    expect_healthy();

    fx_mqtt_stop(w->env);
    char *body = await_healthz(503, 2000, NULL);
    ck_assert_msg(strstr(body, "mqtt") != NULL, "503 without a word on mqtt: %s", body);
    free(body);
    metrics *m = scrape();
    ck_assert_msg(mval(m, "rtb_mqtt_connected", NULL, NULL) == 0, "rtb_mqtt_connected != 0");
    ck_assert_msg(mval(m, "rtb_redis_connected", NULL, NULL) == 1, "rtb_redis_connected != 1");
    metrics_free(m);

    fx_mqtt_start(w->env);
    int64_t took = 0;
    body = await_healthz(200, 6000, &took);
    free(body);
    fprintf(stderr, "test_admin: healthy %lld ms after the broker came back\n", (long long)took);
    expect_healthy();
    ck_assert_msg(fx_mqtt_wait_connected(w->pub, FX_START_TIMEOUT_MS) == 0,
                  "the test's MQTT publisher did not reconnect");
    wx_wait_ready(w);
    auction_adv1("adm-after-mqtt");
    wx_stop_exchange(w);
}
END_TEST

/* ---- what the listener does not serve --------------------------------------- */

START_TEST(unknown_path_and_method) {
    start_admin_world("admin-http");
    char *body = NULL;
    int code = fx_http(w->admin_port, "GET", "/nope", NULL, &body, HTTP_WAIT_MS);
    ck_assert_msg(code == 404, "GET /nope: status %d, want 404: %s", code, wx_or_empty(body));
    free(body);
    code = fx_http(w->admin_port, "POST", "/metrics", "{}", &body, HTTP_WAIT_MS);
    /* Only GET and HEAD are allowed (the listener's routes, SPEC 15;
     * tests/test_hostile.c covers the other refusals). */
    ck_assert_msg(code == 405, "POST /metrics: status %d, want 405: %s", code, wx_or_empty(body));
    free(body);
    expect_healthy();
    wx_stop_exchange(w);
}
END_TEST

/* ---- a port already taken ------------------------------------------------------ */

/* A listening socket on 127.0.0.1:port, or -1 when the port was taken. */
static int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

START_TEST(admin_port_taken_exits_1) {
    int port = 0, fd = -1;
    for (int i = 0; i < 10 && fd < 0; i++) {
        port = fx_free_port();
        fd = listen_on(port);
    }
    ck_assert_msg(fd >= 0, "no port to occupy");
    wx_opts o = {.admin_port = port};
    char *path = wx_write_config(w, "admin-taken", &o);
    const char *argv[] = {fx_getenv("RTB_EXCHANGE"), "-c", path, NULL};
    w->exchange_pid = fx_spawn(w->env, argv, "exchange.log");
    free(path);
    int status = 0;
    if (fx_wait_exit(w->exchange_pid, 10000, &status) != 0)
        wx_fail_with_log(w, "rtb-exchange still runs 10 s after it could not bind admin.listen");
    w->exchange_pid = 0;
    close(fd);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 1) {
        wx_fail_with_log(w, "rtb-exchange ended with %s %d, want exit status 1",
                         WIFEXITED(status) ? "exit status" : "signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    char *log = fx_read_file(w->env, "exchange.log", NULL);
    ck_assert_msg(log != NULL, "exchange.log cannot be read");
    int named = strstr(log, "admin.listen") != NULL;
    free(log);
    if (!named) wx_fail_with_log(w, "the exit message does not name admin.listen");
    wx_check_exchange_log(w);
}
END_TEST

/* ---- suite ------------------------------------------------------------------ */

static Suite *admin_suite(void) {
    Suite *s = suite_create("admin");
    wx_add_case(s, "metrics", healthz_and_metrics_count_auctions, 60, setup, teardown);
    wx_add_case(s, "bidder_faults", bidder_timeouts_and_errors_are_counted, 60, setup, teardown);
    wx_add_case(s, "redis", healthz_follows_redis, 60, setup, teardown);
    wx_add_case(s, "mqtt", healthz_follows_mqtt, 60, setup, teardown);
    wx_add_case(s, "http", unknown_path_and_method, 60, setup, teardown);
    wx_add_case(s, "port_taken", admin_port_taken_exits_1, 60, setup, teardown);
    return s;
}

int main(void) {
    return fx_run_suite(admin_suite());
}

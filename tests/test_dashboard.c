/* test_dashboard.c -- integration suite for the live dashboard (SPEC 11).
 *
 * Each test starts an exchange world (tests/world.h) with admin.listen on a
 * free port and checks one face of the dashboard: GET /api/stats (its shape,
 * and its numbers moving with the test's own auctions), GET /api/stream (a
 * raw-socket Server-Sent Events reader, since fx_http cannot stream: HTTP/1.1
 * chunks decoded, events split on blank lines), the cap on stream clients and
 * their release when they hang up, alert rules (a `firing` and a `resolved`
 * message on auction:alerts, the alert in /api/stats), a config naming an
 * unknown alert metric, the campaign view of SPEC 16 (GET /api/advertisers
 * and /api/advertisers/{id}: totals after known auctions and events, totals
 * written into Redis by "another exchange", the minute series, ids, Redis
 * stalled and down), GET / (self-contained: no external src or href), and
 * the page in a real browser while auctions run: tests/dashboard_webdriver.py
 * drives headless Chromium over WebDriver (python3-selenium, chromium-driver)
 * in real time and checks that the stream updates the numbers, the bidder
 * table and an alert, the advertisers table and an advertiser's view, and
 * adding and deleting an alert rule through the page; it saves
 * screenshots.
 *
 * The one idea: readiness probes are auctions too, so advertisers carry an
 * interest tag the probes lack, and counters are compared as deltas.
 *
 * The browser is required, not optional: without python3-selenium, Chromium
 * or chromedriver that test fails (tools/install-deps installs them). The
 * screenshot goes to $RTB_DASHBOARD_SCREENSHOT (the build dir); with
 * RTB_UPDATE_SCREENSHOT=1 also to $RTB_SOURCE_ROOT/docs/dashboard.png (off
 * by default, so CI never dirties the tree). */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/world.h"

#define HTTP_WAIT_MS 2000        /* one admin request; the loop answers at once */
#define SSE_WAIT_MS 3000         /* two events are due within 3 s (one a second) */
#define MAX_STREAMS 32           /* RTB_ADMIN_MAX_STREAMS */
#define WEBDRIVER_WAIT_MS 150000 /* the script bounds each of its waits by 30 s */

static wx_world *w;

static void setup(void) {
    w = wx_start();
}

static void teardown(void) {
    wx_stop(w);
    w = NULL;
}

/* ---- JSON -------------------------------------------------------------------- */

static const cJSON *jobj(const cJSON *o, const char *key) {
    const cJSON *v = wx_jget(o, key);
    ck_assert_msg(cJSON_IsObject(v), "\"%s\" is not an object", key);
    return v;
}

static const cJSON *jarr(const cJSON *o, const char *key) {
    const cJSON *v = wx_jget(o, key);
    ck_assert_msg(cJSON_IsArray(v), "\"%s\" is not an array", key);
    return v;
}

/* o[key], a number >= 0. */
static double jcount(const cJSON *o, const char *key) {
    double v = wx_jnum(o, key);
    ck_assert_msg(!isnan(v) && v >= 0, "\"%s\" is not a number >= 0", key);
    return v;
}

/* o[key], a number >= 0 or null (-1). */
static double jms_or_null(const cJSON *o, const char *key) {
    const cJSON *v = wx_jget(o, key);
    ck_assert_msg(cJSON_IsNull(v) || (cJSON_IsNumber(v) && v->valuedouble >= 0),
                  "\"%s\" is neither a number >= 0 nor null", key);
    return cJSON_IsNull(v) ? -1 : v->valuedouble;
}

static const char *const statuses[] = {"success", "no_bid", "timeout", "invalid", "overloaded"};

/* Every field docs/dashboard.md promises, with its type. */
static void check_stats_shape(const cJSON *s) {
    ck_assert_msg(cJSON_IsObject(s), "/api/stats is not a JSON object");
    double t = jcount(s, "time");
    ck_assert_msg(fabs(t - wx_wall_s()) < 5, "time %.3f is not about now", t);
    jcount(s, "uptime_s");
    const cJSON *rates = jobj(s, "rates"), *per_s = jobj(rates, "auctions_per_s");
    const cJSON *totals = jobj(s, "totals");
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        jcount(per_s, statuses[i]);
        jcount(totals, statuses[i]);
    }
    jcount(rates, "results_per_s");
    jcount(rates, "requests_per_s");
    const cJSON *lat = jobj(s, "latency_ms");
    jms_or_null(lat, "p50");
    jms_or_null(lat, "p99");
    static const char *const total_keys[] = {"requests", "auctions", "request_errors", "duplicates",
                                             "inflight"};
    for (size_t i = 0; i < sizeof total_keys / sizeof total_keys[0]; i++)
        jcount(totals, total_keys[i]);
    const cJSON *b;
    cJSON_ArrayForEach(b, jarr(s, "bidders")) {
        ck_assert_msg(wx_jstr(b, "id") != NULL, "a bidder without an id");
        static const char *const keys[] = {
            "calls", "bids",        "wins",     "timeouts", "errors",          "throttled",
            "spend", "calls_per_s", "inflight", "skipped",  "timeouts_excused"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            jcount(b, keys[i]);
        /* SPEC 13: skips by reason add up to `skipped`; the health share */
        const cJSON *by = jobj(b, "skipped_by");
        static const char *const reasons[] = {"circuit", "throttled", "too_slow", "max_concurrent",
                                              "budget"};
        double sum = 0;
        for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
            sum += jcount(by, reasons[i]);
        ck_assert_msg(sum == jcount(b, "skipped"), "skipped_by adds up to %.0f, skipped %.0f", sum,
                      jcount(b, "skipped"));
        double share = jcount(b, "share");
        ck_assert_msg(share > 0 && share <= 1, "share %.4f not in (0, 1]", share);
        jms_or_null(b, "p95_ms");
        double rate = jcount(b, "win_rate");
        ck_assert_msg(rate <= 1, "win_rate %.4f > 1", rate);
        const char *br = wx_or_empty(wx_jstr(b, "breaker"));
        ck_assert_msg(!strcmp(br, "closed") || !strcmp(br, "open") || !strcmp(br, "half_open"),
                      "breaker '%s'", br);
        ck_assert_msg(cJSON_IsBool(wx_jget(b, "active")), "bidder \"active\" is not a bool");
    }
    const cJSON *ev = jobj(s, "events");
    static const char *const ev_keys[] = {"impressions", "clicks", "ctr", "conversions"};
    for (size_t i = 0; i < sizeof ev_keys / sizeof ev_keys[0]; i++)
        jcount(ev, ev_keys[i]);
    const cJSON *imps = jobj(s, "imps");
    static const char *const imp_keys[] = {"success", "no_bid", "timeout", "deals_won"};
    for (size_t i = 0; i < sizeof imp_keys / sizeof imp_keys[0]; i++)
        jcount(imps, imp_keys[i]);
    const cJSON *bill = jobj(s, "billing");
    static const char *const bill_keys[] = {"kept", "billed", "retried", "failed", "pending"};
    for (size_t i = 0; i < sizeof bill_keys / sizeof bill_keys[0]; i++)
        jcount(bill, bill_keys[i]);
    const cJSON *h, *hist = jarr(s, "history");
    ck_assert_msg(cJSON_GetArraySize(hist) <= 300, "history longer than 300 s");
    double last_t = 0;
    cJSON_ArrayForEach(h, hist) {
        double ht = jcount(h, "t");
        ck_assert_msg(ht > last_t, "history not in time order");
        last_t = ht;
        jcount(h, "auctions");
        jcount(h, "success");
        jcount(h, "timeout");
        jms_or_null(h, "p99");
    }
    const cJSON *a;
    cJSON_ArrayForEach(a, jarr(s, "alerts")) {
        ck_assert_msg(wx_jstr(a, "name") && wx_jstr(a, "metric"), "alert without name/metric");
        const cJSON *subject = wx_jget(a, "subject");
        ck_assert_msg(cJSON_IsString(subject) || cJSON_IsNull(subject), "alert subject");
        jcount(a, "value");
        ck_assert_msg(!isnan(wx_jnum(a, "above")), "alert without above");
        jcount(a, "since");
    }
    jcount(s, "alert_rules");
}

static cJSON *get_stats(void) {
    char *body = NULL;
    int code = fx_http(w->admin_port, "GET", "/api/stats", NULL, &body, HTTP_WAIT_MS);
    if (code != 200)
        wx_fail_with_log(w, "GET /api/stats: status %d: %.300s", code, wx_or_empty(body));
    cJSON *s = cJSON_Parse(body);
    if (!s) wx_fail_with_log(w, "GET /api/stats: not JSON: %.300s", body);
    free(body);
    check_stats_shape(s);
    return s;
}

static const cJSON *bidder_of(const cJSON *stats, const char *id) {
    const cJSON *b;
    cJSON_ArrayForEach(b, wx_jget(stats, "bidders")) {
        if (strcmp(wx_or_empty(wx_jstr(b, "id")), id) == 0) return b;
    }
    ck_abort_msg("/api/stats has no bidder %s", id);
    return NULL;
}

/* Sum of history[*][key]. */
static double history_sum(const cJSON *stats, const char *key) {
    double n = 0;
    const cJSON *h;
    cJSON_ArrayForEach(h, wx_jget(stats, "history")) {
        n += wx_jnum(h, key);
    }
    return n;
}

/* ---- raw HTTP ---------------------------------------------------------------- */

static int connect_admin(void) {
    return wx_admin_connect(w);
}

static void send_all(int fd, const char *s) {
    size_t len = strlen(s), off = 0;
    while (off < len) {
        ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);
        ck_assert_msg(n > 0, "send: %s", strerror(errno));
        off += (size_t)n;
    }
}

/* A growable byte buffer, always NUL-terminated. */
typedef struct bytes {
    char *p;
    size_t len, cap;
} bytes;

static void bytes_add(bytes *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void bytes_drop(bytes *b, size_t n) {
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
    b->p[b->len] = '\0';
}

/* Reads what is there within ms; 1 read, 0 nothing yet, -1 EOF or error. */
static int read_some(int fd, bytes *b, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, ms < 0 ? 0 : ms);
    if (r <= 0) return 0;
    char buf[16384];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return -1;
    bytes_add(b, buf, (size_t)n);
    return 1;
}

/* A response's head: status and the header block (lower-cased names kept as
 * sent; headers_has does a case-insensitive search). */
typedef struct http_head {
    int status;
    char headers[4096];
} http_head;

/* Splits "HTTP/1.x NNN ...\r\n...\r\n\r\n" off the front of b into h; 0 or -1. */
static int take_head(bytes *b, http_head *h) {
    char *end = b->p ? strstr(b->p, "\r\n\r\n") : NULL;
    if (!end) return -1;
    size_t n = (size_t)(end - b->p) + 4;
    if (sscanf(b->p, "HTTP/1.%*d %d", &h->status) != 1) h->status = -1;
    snprintf(h->headers, sizeof h->headers, "%.*s", (int)n, b->p);
    bytes_drop(b, n);
    return 0;
}

/* 1 when the head has header `name` with a value starting with `value`. */
static int head_has(const http_head *h, const char *name, const char *value) {
    for (const char *line = h->headers; (line = strstr(line, "\r\n")) != NULL;) {
        line += 2;
        size_t nlen = strlen(name);
        if (strncasecmp(line, name, nlen) != 0 || line[nlen] != ':') continue;
        const char *v = line + nlen + 1;
        while (*v == ' ')
            v++;
        return strncasecmp(v, value, strlen(value)) == 0;
    }
    return 0;
}

/* GET path with HTTP/1.0: head and whole body (caller frees body.p). */
static void http_get(const char *path, http_head *h, bytes *body) {
    int fd = connect_admin();
    char req[512];
    snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    send_all(fd, req);
    memset(body, 0, sizeof *body);
    int64_t until = fx_now_ms() + HTTP_WAIT_MS;
    while (fx_now_ms() < until && read_some(fd, body, (int)(until - fx_now_ms())) >= 0)
        continue;
    close(fd);
    if (take_head(body, h) != 0) wx_fail_with_log(w, "GET %s: no HTTP answer", path);
}

/* ---- a Server-Sent Events reader ------------------------------------------------ */

typedef struct sse {
    int fd;
    http_head head;
    int chunked;
    bytes raw;  /* as read, after the head */
    bytes text; /* de-chunked event stream */
} sse;

/* Opens GET /api/stream (HTTP/1.1, as a browser does) and reads the head. */
static void sse_open(sse *s) {
    memset(s, 0, sizeof *s);
    s->fd = connect_admin();
    send_all(s->fd, "GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n");
    int64_t until = fx_now_ms() + HTTP_WAIT_MS;
    while (take_head(&s->raw, &s->head) != 0) {
        if (fx_now_ms() >= until || read_some(s->fd, &s->raw, (int)(until - fx_now_ms())) < 0)
            wx_fail_with_log(w, "GET /api/stream: no answer within %d ms", HTTP_WAIT_MS);
    }
    s->chunked = head_has(&s->head, "Transfer-Encoding", "chunked");
}

static void sse_close(sse *s) {
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    free(s->raw.p);
    free(s->text.p);
}

/* Moves whole chunks from raw to text; -1 on a malformed chunk. */
static int sse_dechunk(sse *s) {
    if (!s->chunked) {
        if (s->raw.len) bytes_add(&s->text, s->raw.p, s->raw.len);
        s->raw.len = 0;
        return 0;
    }
    for (;;) {
        char *crlf = s->raw.p ? strstr(s->raw.p, "\r\n") : NULL;
        if (!crlf) return 0;
        char *end = NULL;
        unsigned long size = strtoul(s->raw.p, &end, 16);
        if (end == s->raw.p) return -1;
        size_t need = (size_t)(crlf - s->raw.p) + 2 + size + 2;
        if (s->raw.len < need) return 0;
        bytes_add(&s->text, crlf + 2, size);
        bytes_drop(&s->raw, need);
        if (size == 0) return 0; /* the last chunk */
    }
}

/* The data of the next event that has some (its "data:" lines joined with
 * "\n"), malloc'd; NULL when none came within ms. */
static char *sse_next(sse *s, int ms) {
    int64_t until = fx_now_ms() + ms;
    for (;;) {
        ck_assert_msg(sse_dechunk(s) == 0, "/api/stream: malformed chunk");
        char *end = s->text.p ? strstr(s->text.p, "\n\n") : NULL;
        if (end) {
            size_t n = (size_t)(end - s->text.p) + 2;
            bytes data = {0};
            for (char *line = s->text.p; line < end;) {
                char *nl = strchr(line, '\n');
                if (strncmp(line, "data:", 5) == 0) {
                    char *v = line + 5 + (line[5] == ' ');
                    if (data.len) bytes_add(&data, "\n", 1);
                    bytes_add(&data, v, (size_t)(nl - v));
                }
                line = nl + 1;
            }
            bytes_drop(&s->text, n);
            if (data.p) return data.p;
            continue;
        }
        int left = (int)(until - fx_now_ms());
        if (left <= 0 || read_some(s->fd, &s->raw, left) < 0) return NULL;
    }
}

/* ---- the world ------------------------------------------------------------------ */

/* One fast advertiser adv-1 (fixed 2.00) tagged "dash", and the exchange
 * with an admin port and `extra` merged over its config. */
static void start_dash_world(const char *name, const char *extra) {
    wx_start_adv1_world(w, name, "dash", extra);
}

static void auction_adv1(const char *id) {
    wx_expect_adv1_wins(w, id, "dash");
}

/* ---- /api/stats ------------------------------------------------------------------- */

START_TEST(stats_shape_and_numbers_move) {
    start_dash_world("dash-stats", NULL);
    cJSON *before = get_stats();
    /* The default config has SPEC 7's rule (bidder_timeout_rate above 0.2); a fast
     * bidder never trips it. */
    ck_assert_msg(wx_jnum(before, "alert_rules") == 1, "alert_rules %.0f, want the default 1",
                  wx_jnum(before, "alert_rules"));
    for (int i = 0; i < 5; i++) {
        char id[32];
        snprintf(id, sizeof id, "dash-%d", i);
        auction_adv1(id);
    }
    /* Totals move at once; the history once the sampler has taken a sample. */
    cJSON *after = NULL;
    for (int64_t until = fx_now_ms() + 3000;;) {
        cJSON_Delete(after);
        after = get_stats();
        if (history_sum(after, "success") >= 5 || fx_now_ms() > until) break;
        fx_sleep_ms(200);
    }
    const cJSON *tb = jobj(before, "totals"), *ta = jobj(after, "totals");
    ck_assert_msg(wx_jnum(ta, "success") - wx_jnum(tb, "success") == 5,
                  "totals.success grew by %.0f over 5 successes",
                  wx_jnum(ta, "success") - wx_jnum(tb, "success"));
    ck_assert_msg(wx_jnum(ta, "requests") - wx_jnum(tb, "requests") == 5, "totals.requests");
    ck_assert_msg(wx_jnum(ta, "auctions") - wx_jnum(tb, "auctions") == 5, "totals.auctions");
    ck_assert_msg(wx_jnum(ta, "timeout") == wx_jnum(tb, "timeout"), "totals.timeout moved");
    ck_assert_msg(wx_jnum(ta, "inflight") == 0, "auctions in flight with every result in");
    const cJSON *bb = bidder_of(before, "adv-1"), *ba = bidder_of(after, "adv-1");
    static const char *const grew5[] = {"calls", "bids", "wins"};
    for (size_t i = 0; i < 3; i++) {
        double d = wx_jnum(ba, grew5[i]) - wx_jnum(bb, grew5[i]);
        ck_assert_msg(d == 5, "adv-1 %s grew by %.0f, want 5", grew5[i], d);
    }
    ck_assert_msg(wx_jnum(ba, "timeouts") == 0 && wx_jnum(ba, "errors") == 0, "adv-1 faults");
    ck_assert_msg(wx_jnum(ba, "win_rate") == 1, "adv-1 won every bid: win_rate %.4f",
                  wx_jnum(ba, "win_rate"));
    /* Clearing price = floor 1.00 (one bid); CPM: one impression costs 1.00 / 1000. */
    double spend = wx_jnum(ba, "spend") - wx_jnum(bb, "spend");
    ck_assert_msg(fabs(spend - 0.005) < 1e-9, "adv-1 spend grew by %.6f, want 0.005", spend);
    ck_assert_msg(strcmp(wx_jstr(ba, "breaker"), "closed") == 0, "adv-1 breaker not closed");
    ck_assert_msg(history_sum(after, "success") >= 5 && history_sum(after, "auctions") >= 5,
                  "history holds %.0f successes, want >= 5", history_sum(after, "success"));
    ck_assert_msg(wx_jnum(after, "uptime_s") >= wx_jnum(before, "uptime_s"), "uptime_s fell");
    ck_assert_msg(cJSON_GetArraySize(wx_jget(after, "alerts")) == 0, "an alert is active");
    /* Some second held our auctions: its p99 is a latency, not null. */
    int p99_seen = 0;
    const cJSON *h;
    cJSON_ArrayForEach(h, wx_jget(after, "history")) {
        double p99 = wx_jnum(h, "p99");
        p99_seen |= wx_jnum(h, "success") > 0 && p99 > 0 && p99 < 100;
    }
    ck_assert_msg(p99_seen, "no history second with our auctions has a p99 in (0, 100) ms");
    cJSON_Delete(before);
    cJSON_Delete(after);
    wx_stop_exchange(w);
}
END_TEST

/* ---- the campaign view: /api/advertisers (SPEC 16) ------------------------------------ */

/* GET path on the admin listener: the status; *out gets the body parsed as
 * JSON (NULL when it is not JSON; the caller cJSON_Delete()s). */
static int get_json(const char *path, cJSON **out) {
    char *body = NULL;
    int code = fx_http(w->admin_port, "GET", path, NULL, &body, HTTP_WAIT_MS);
    *out = body ? cJSON_Parse(body) : NULL;
    if (code < 0) wx_fail_with_log(w, "GET %s: no answer within %d ms", path, HTTP_WAIT_MS);
    if (code == 200 && !*out) wx_fail_with_log(w, "GET %s: not JSON: %.300s", path, body);
    free(body);
    return code;
}

/* Every field of an advertiser object (docs/dashboard.md), with its type. */
static void check_advertiser_shape(const cJSON *a) {
    ck_assert_msg(wx_jstr(a, "id") != NULL, "an advertiser without an id");
    ck_assert_msg(cJSON_IsBool(wx_jget(a, "active")), "advertiser \"active\" is not a bool");
    static const char *const keys[] = {"wins",  "spend",       "impressions", "clicks",
                                       "ctr",   "conversions", "cvr",         "billed",
                                       "calls", "bids",        "win_rate"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        jcount(a, keys[i]);
    ck_assert_msg(jcount(a, "ctr") <= 1 && jcount(a, "win_rate") <= 1, "a rate above 1");
    jms_or_null(a, "cpc");
    /* No budget is configured in these worlds. */
    ck_assert_msg(cJSON_IsNull(wx_jget(a, "budget")), "\"budget\" is not null");
}

/* GET /api/advertisers, checked: 200, its shape, and `source` as wanted. */
static cJSON *get_advertisers(const char *source) {
    cJSON *j = NULL;
    int code = get_json("/api/advertisers", &j);
    if (code != 200 || !j) wx_fail_with_log(w, "GET /api/advertisers: status %d", code);
    ck_assert_msg(fabs(jcount(j, "time") - wx_wall_s()) < 5, "time is not about now");
    const char *src = wx_or_empty(wx_jstr(j, "source"));
    ck_assert_msg(strcmp(src, source) == 0, "source \"%s\", want \"%s\"", src, source);
    const cJSON *a;
    cJSON_ArrayForEach(a, jarr(j, "advertisers")) {
        check_advertiser_shape(a);
    }
    return j;
}

static const cJSON *advertiser_of(const cJSON *list, const char *id) {
    const cJSON *a;
    cJSON_ArrayForEach(a, wx_jget(list, "advertisers")) {
        if (strcmp(wx_or_empty(wx_jstr(a, "id")), id) == 0) return a;
    }
    ck_abort_msg("/api/advertisers has no advertiser %s", id);
    return NULL;
}

static void publish_event(const char *type, const char *adv, const char *ad, const char *user) {
    char topic[64], ev[512];
    snprintf(topic, sizeof topic, "rtb/events/%s", type);
    int n =
        snprintf(ev, sizeof ev, "{\"ad_id\":\"%s\",\"advertiser_id\":\"%s\",\"user_id\":\"%s\"}",
                 ad, adv, user);
    wx_publish_raw(w, topic, ev, (size_t)n);
}

/* adv-1 (fixed 2.00, tagged "dash") and adv-2 (tagged "other": never
 * called), both from the config; the exchange with an admin port. */
static void start_campaign_world(const char *name) {
    const char *specs[] = {"id=adv-1,price=fixed:2", "id=adv-2,price=fixed:3"};
    int port[2];
    fx_spawn_bidder(w->env, specs, 2, port);
    char bidders[1024] = "";
    wx_add_config_bidder(bidders, sizeof bidders, "adv-1", port[0], "[\"dash\"]");
    wx_add_config_bidder(bidders, sizeof bidders, "adv-2", port[1], "[\"other\"]");
    wx_opts o = {.tmax_ms = 100, .bidders = bidders, .admin_port = fx_free_port()};
    wx_start_exchange(w, name, &o);
}

/* Four auctions adv-1 wins at the floor (1.00: 0.001 each, CPM), then three
 * impressions, a click and a conversion (attributed to that click). */
static void campaign_traffic(void) {
    for (int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof id, "camp-%d", i);
        auction_adv1(id);
    }
    publish_event("impression", "adv-1", "ad_adv-1_camp-0", "u-1");
    publish_event("impression", "adv-1", "ad_adv-1_camp-1", "u-1");
    publish_event("impression", "adv-1", "ad_adv-1_camp-2", "u-2");
    publish_event("click", "adv-1", "ad_adv-1_camp-0", "u-1");
    publish_event("conversion", "adv-1", "ad_adv-1_camp-0", "u-1");
}

/* Polls /api/advertisers (source `source`) until adv-1 shows `conversions`
 * conversions; fails after 3 s. */
static cJSON *await_adv1_conversions(const char *source, double conversions) {
    for (int64_t until = fx_now_ms() + 3000;;) {
        cJSON *j = get_advertisers(source);
        if (wx_jnum(advertiser_of(j, "adv-1"), "conversions") == conversions) return j;
        cJSON_Delete(j);
        if (fx_now_ms() > until)
            wx_fail_with_log(w, "adv-1 never showed %.0f conversions in /api/advertisers",
                             conversions);
        fx_sleep_ms(100);
    }
}

START_TEST(advertisers_list_totals_from_redis) {
    start_campaign_world("dash-advertisers");
    cJSON *j = get_advertisers("redis");
    ck_assert_msg(cJSON_GetArraySize(wx_jget(j, "advertisers")) == 2, "%d advertisers, want 2",
                  cJSON_GetArraySize(wx_jget(j, "advertisers")));
    const cJSON *a2 = advertiser_of(j, "adv-2");
    ck_assert_msg(wx_jnum(a2, "wins") == 0 && wx_jnum(a2, "spend") == 0, "adv-2 has wins");
    ck_assert_msg(cJSON_IsNull(wx_jget(a2, "cpc")), "cpc is not null without clicks");
    cJSON_Delete(j);

    campaign_traffic();
    j = await_adv1_conversions("redis", 1);
    const cJSON *a1 = advertiser_of(j, "adv-1");
    ck_assert_msg(wx_jget(a1, "active") && cJSON_IsTrue(wx_jget(a1, "active")), "adv-1 inactive");
    ck_assert_msg(wx_jnum(a1, "wins") == 4, "adv-1 wins %.0f, want 4", wx_jnum(a1, "wins"));
    ck_assert_msg(wx_money_eq(wx_jnum(a1, "spend"), 0.004), "adv-1 spend %.6f, want 0.004",
                  wx_jnum(a1, "spend"));
    ck_assert_msg(wx_jnum(a1, "impressions") == 3, "impressions %.0f", wx_jnum(a1, "impressions"));
    ck_assert_msg(wx_jnum(a1, "clicks") == 1, "clicks %.0f", wx_jnum(a1, "clicks"));
    ck_assert_msg(wx_jnum(a1, "ctr") == 0.3333, "ctr %.4f, want 0.3333", wx_jnum(a1, "ctr"));
    ck_assert_msg(wx_jnum(a1, "cvr") == 1, "cvr %.4f, want 1", wx_jnum(a1, "cvr"));
    ck_assert_msg(wx_money_eq(wx_jnum(a1, "cpc"), 0.004), "cpc %.6f, want 0.004 (spend / clicks)",
                  wx_jnum(a1, "cpc"));
    ck_assert_msg(wx_jnum(a1, "calls") == 4 && wx_jnum(a1, "bids") == 4, "calls/bids");
    ck_assert_msg(wx_jnum(a1, "win_rate") == 1, "win_rate %.4f", wx_jnum(a1, "win_rate"));
    cJSON_Delete(j);

    /* Another exchange of the group counts into the same hashes: its
     * figures show up here, though this exchange never saw them. */
    fx_redis_do(w->env, "HSET stats:advertiser:adv-2 wins 7 spend_cpm_micros 2500000 "
                        "spend_micros 2500 impressions 100 clicks 4 conversions 2 billed 6");
    fx_redis_do(w->env, "HINCRBY stats:advertiser:adv-1 wins 10");
    fx_redis_do(w->env, "HINCRBY stats:advertiser:adv-1 spend_cpm_micros 3000000");
    j = get_advertisers("redis");
    a2 = advertiser_of(j, "adv-2");
    ck_assert_msg(wx_jnum(a2, "wins") == 7 && wx_jnum(a2, "impressions") == 100 &&
                      wx_jnum(a2, "clicks") == 4 && wx_jnum(a2, "conversions") == 2 &&
                      wx_jnum(a2, "billed") == 6,
                  "adv-2 does not show the totals written into Redis");
    ck_assert_msg(wx_money_eq(wx_jnum(a2, "spend"), 0.0025), "adv-2 spend %.6f",
                  wx_jnum(a2, "spend"));
    ck_assert_msg(wx_jnum(a2, "ctr") == 0.04 && wx_jnum(a2, "cvr") == 0.5, "adv-2 ctr/cvr");
    ck_assert_msg(wx_money_eq(wx_jnum(a2, "cpc"), 0.000625), "adv-2 cpc %.6f, want 0.000625",
                  wx_jnum(a2, "cpc"));
    ck_assert_msg(wx_jnum(a2, "calls") == 0 && wx_jnum(a2, "win_rate") == 0,
                  "adv-2's calls are this exchange's own: none");
    a1 = advertiser_of(j, "adv-1");
    ck_assert_msg(wx_jnum(a1, "wins") == 14, "adv-1 wins %.0f, want 4 + 10 from Redis",
                  wx_jnum(a1, "wins"));
    ck_assert_msg(wx_money_eq(wx_jnum(a1, "spend"), 0.007), "adv-1 spend %.6f, want 0.007",
                  wx_jnum(a1, "spend"));
    ck_assert_msg(wx_jnum(a1, "bids") == 4 && wx_jnum(a1, "win_rate") == 1,
                  "adv-1's bids and win rate are this exchange's own");
    cJSON_Delete(j);
    wx_stop_exchange(w);
}
END_TEST

/* Sum of series.points[*][key]. */
static double series_sum(const cJSON *view, const char *key) {
    double n = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, wx_jget(wx_jget(view, "series"), "points")) {
        n += wx_jnum(p, key);
    }
    return n;
}

static void check_view_shape(const cJSON *v) {
    ck_assert_msg(fabs(jcount(v, "time") - wx_wall_s()) < 5, "time is not about now");
    check_advertiser_shape(v);
    const cJSON *series = jobj(v, "series");
    ck_assert_str_eq(wx_or_empty(wx_jstr(series, "scope")), "exchange");
    ck_assert_msg(wx_jnum(series, "minute_s") == 60, "minute_s");
    const cJSON *points = jarr(series, "points"), *p;
    ck_assert_msg(cJSON_GetArraySize(points) == 60, "%d points, want 60",
                  cJSON_GetArraySize(points));
    double last_t = 0;
    cJSON_ArrayForEach(p, points) {
        double t = jcount(p, "t");
        ck_assert_msg(last_t == 0 || t == last_t + 60, "points not one a minute: %.0f after %.0f",
                      t, last_t);
        last_t = t;
        static const char *const keys[] = {"calls",       "bids",   "wins",       "spend",
                                           "impressions", "clicks", "conversions"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            jcount(p, keys[i]);
    }
    double minute_now = floor(wx_wall_s() / 60) * 60;
    ck_assert_msg(fabs(last_t - minute_now) <= 60,
                  "the last point (%.0f) is not this minute (%.0f)", last_t, minute_now);
    const cJSON *h = jobj(v, "health");
    const char *br = wx_or_empty(wx_jstr(h, "breaker"));
    ck_assert_msg(!strcmp(br, "closed") || !strcmp(br, "open") || !strcmp(br, "half_open"),
                  "breaker '%s'", br);
    double share = jcount(h, "share");
    ck_assert_msg(share > 0 && share <= 1, "share %.4f", share);
    jms_or_null(h, "p95_ms");
    jobj(h, "skipped_by");
    static const char *const hkeys[] = {"skipped", "timeouts", "errors", "calls_per_s", "inflight"};
    for (size_t i = 0; i < sizeof hkeys / sizeof hkeys[0]; i++)
        jcount(h, hkeys[i]);
    jarr(v, "alerts");
}

START_TEST(advertiser_view_series_health_and_ids) {
    start_campaign_world("dash-advertiser");
    campaign_traffic();
    cJSON_Delete(await_adv1_conversions("redis", 1));
    /* The series is fed once a second: wait for the tick that holds it all. */
    cJSON *v = NULL;
    for (int64_t until = fx_now_ms() + 3000;;) {
        cJSON_Delete(v);
        int code = get_json("/api/advertisers/adv-1", &v);
        if (code != 200 || !v) wx_fail_with_log(w, "GET /api/advertisers/adv-1: status %d", code);
        check_view_shape(v);
        if (series_sum(v, "conversions") == 1 || fx_now_ms() > until) break;
        fx_sleep_ms(200);
    }
    ck_assert_str_eq(wx_or_empty(wx_jstr(v, "id")), "adv-1");
    ck_assert_str_eq(wx_or_empty(wx_jstr(v, "source")), "redis");
    ck_assert_msg(wx_jnum(v, "wins") == 4 && wx_jnum(v, "clicks") == 1, "adv-1 totals");
    ck_assert_msg(wx_money_eq(wx_jnum(v, "cpc"), 0.004), "adv-1 cpc %.6f", wx_jnum(v, "cpc"));
    ck_assert_msg(series_sum(v, "wins") == 4 && series_sum(v, "calls") == 4 &&
                      series_sum(v, "bids") == 4,
                  "series: %.0f wins, %.0f calls, %.0f bids; want 4 each", series_sum(v, "wins"),
                  series_sum(v, "calls"), series_sum(v, "bids"));
    ck_assert_msg(wx_money_eq(series_sum(v, "spend"), 0.004), "series spend %.6f",
                  series_sum(v, "spend"));
    ck_assert_msg(series_sum(v, "impressions") == 3 && series_sum(v, "clicks") == 1 &&
                      series_sum(v, "conversions") == 1,
                  "series events: %.0f impressions, %.0f clicks, %.0f conversions",
                  series_sum(v, "impressions"), series_sum(v, "clicks"),
                  series_sum(v, "conversions"));
    const cJSON *h = wx_jget(v, "health");
    ck_assert_str_eq(wx_or_empty(wx_jstr(h, "breaker")), "closed");
    ck_assert_msg(wx_jnum(h, "timeouts") == 0 && wx_jnum(h, "errors") == 0, "adv-1 faults");
    ck_assert_msg(cJSON_GetArraySize(wx_jget(v, "alerts")) == 0, "adv-1 has alerts");
    cJSON_Delete(v);

    /* Another exchange's totals, this exchange's series: Redis moves the
     * first, not the second. */
    fx_redis_do(w->env, "HINCRBY stats:advertiser:adv-1 wins 10");
    ck_assert_int_eq(get_json("/api/advertisers/adv-1", &v), 200);
    ck_assert_msg(wx_jnum(v, "wins") == 14 && series_sum(v, "wins") == 4,
                  "wins %.0f (want 14), series wins %.0f (want 4)", wx_jnum(v, "wins"),
                  series_sum(v, "wins"));
    cJSON_Delete(v);
    ck_assert_int_eq(get_json("/api/advertisers/adv-2", &v), 200);
    check_view_shape(v);
    ck_assert_msg(series_sum(v, "calls") == 0, "adv-2 was never called");
    cJSON_Delete(v);

    /* Ids: unknown 404, broken 400, each with a JSON error. */
    static const struct {
        const char *path;
        int code;
    } bad[] = {
        {"/api/advertisers/adv-9", 404},
        {"/api/advertisers/adv%2D1", 400},
        {"/api/advertisers/a/b", 400},
        {"/api/advertisers/a%20b", 400},
        {"/api/advertisers/"
         "x1234567890123456789012345678901234567890123456789012345678901234567890123456789012345"
         "678901234567890123456789012345678901234567890",
         400}, /* 129 characters */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int code = get_json(bad[i].path, &v);
        ck_assert_msg(code == bad[i].code, "GET %s: status %d, want %d", bad[i].path, code,
                      bad[i].code);
        ck_assert_msg(v && wx_jstr(v, "error"), "GET %s: no JSON error", bad[i].path);
        cJSON_Delete(v);
    }
    char *body = NULL;
    ck_assert_int_eq(fx_http(w->admin_port, "GET", "/api/advertisers/", NULL, &body, HTTP_WAIT_MS),
                     404);
    free(body);
    ck_assert_int_eq(
        fx_http(w->admin_port, "DELETE", "/api/advertisers/adv-1", NULL, &body, HTTP_WAIT_MS), 405);
    free(body);
    /* 128 characters is a valid id: unknown, not bad. */
    char path[256];
    snprintf(path, sizeof path, "/api/advertisers/%0128d", 7);
    ck_assert_int_eq(get_json(path, &v), 404);
    cJSON_Delete(v);
    wx_stop_exchange(w);
}
END_TEST

/* Redis stalled, then down: the answer comes from this exchange's own
 * counters and says so; a client that hangs up while its answer waits on
 * Redis harms nothing, and neither does a shutdown while one waits. */
START_TEST(advertisers_without_redis_answer_locally) {
    start_campaign_world("dash-advertisers-local");
    campaign_traffic();
    cJSON_Delete(await_adv1_conversions("redis", 1));

    fx_kill(fx_redis_pid(w->env), SIGSTOP); /* Redis takes the command, never answers */
    int fd = connect_admin();               /* a client that goes away meanwhile */
    send_all(fd, "GET /api/advertisers HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    close(fd);
    int64_t t0 = fx_now_ms();
    cJSON *j = get_advertisers("local");
    int64_t took = fx_now_ms() - t0;
    fprintf(stderr, "test_dashboard: /api/advertisers with Redis stalled: %lld ms\n",
            (long long)took);
    ck_assert_msg(took >= 900 && took < HTTP_WAIT_MS, "answered after %lld ms, want about 1 s",
                  (long long)took);
    const cJSON *a1 = advertiser_of(j, "adv-1");
    ck_assert_msg(wx_jnum(a1, "wins") == 4 && wx_jnum(a1, "impressions") == 3 &&
                      wx_jnum(a1, "clicks") == 1 && wx_jnum(a1, "conversions") == 1,
                  "adv-1's local counters: %.0f wins, %.0f impressions, %.0f clicks, %.0f "
                  "conversions",
                  wx_jnum(a1, "wins"), wx_jnum(a1, "impressions"), wx_jnum(a1, "clicks"),
                  wx_jnum(a1, "conversions"));
    ck_assert_msg(wx_money_eq(wx_jnum(a1, "spend"), 0.004), "local spend %.6f",
                  wx_jnum(a1, "spend"));
    cJSON_Delete(j);
    cJSON *v = NULL;
    ck_assert_int_eq(get_json("/api/advertisers/adv-1", &v), 200);
    ck_assert_str_eq(wx_or_empty(wx_jstr(v, "source")), "local");
    check_view_shape(v);
    cJSON_Delete(v);
    fx_kill(fx_redis_pid(w->env), SIGCONT); /* the replies come: the queries are freed */

    fx_redis_stop(w->env);
    t0 = fx_now_ms();
    j = get_advertisers("local");
    ck_assert_msg(fx_now_ms() - t0 < 500, "with Redis down the answer took %lld ms",
                  (long long)(fx_now_ms() - t0));
    ck_assert_msg(wx_jnum(advertiser_of(j, "adv-1"), "wins") == 4, "local wins");
    cJSON_Delete(j);
    fx_redis_start(w->env);
    for (int64_t until = fx_now_ms() + 10000;; fx_sleep_ms(200)) {
        ck_assert_int_eq(get_json("/api/advertisers", &j), 200);
        int back = strcmp(wx_or_empty(wx_jstr(j, "source")), "redis") == 0;
        cJSON_Delete(j);
        if (back) break;
        if (fx_now_ms() > until) wx_fail_with_log(w, "source never went back to redis");
    }
    wx_wait_ready(w);

    /* Shutting down while an answer waits on a stalled Redis: the listener
     * lets the request go, the Redis reply that never came is answered
     * when the store closes, and the exit is clean (no leak, no use after
     * free: the sanitizer builds check this). */
    fx_kill(fx_redis_pid(w->env), SIGSTOP);
    fd = connect_admin();
    fx_kill(w->exchange_pid, SIGTERM); /* the drain gives up on Redis before the answer's 1 s */
    send_all(fd, "GET /api/advertisers/adv-1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    wx_expect_clean_exit(w, WX_STOP_WAIT_MS);
    close(fd);
    fx_kill(fx_redis_pid(w->env), SIGCONT);
}
END_TEST

/* ---- /api/stream ------------------------------------------------------------------- */

START_TEST(stream_sends_an_event_a_second) {
    start_dash_world("dash-sse", NULL);
    sse s;
    sse_open(&s);
    ck_assert_msg(s.head.status == 200, "GET /api/stream: status %d", s.head.status);
    ck_assert_msg(head_has(&s.head, "Content-Type", "text/event-stream"),
                  "GET /api/stream: not text/event-stream:\n%s", s.head.headers);
    ck_assert_msg(head_has(&s.head, "Cache-Control", "no-cache"),
                  "GET /api/stream: no Cache-Control: no-cache:\n%s", s.head.headers);
    int64_t start = fx_now_ms();
    double last_time = 0;
    for (int i = 0; i < 3; i++) {
        if (i == 1) auction_adv1("dash-sse-1"); /* traffic between events */
        char *data = sse_next(&s, SSE_WAIT_MS);
        if (!data)
            wx_fail_with_log(w, "/api/stream: event %d not within %d ms", i + 1, SSE_WAIT_MS);
        cJSON *j = cJSON_Parse(data);
        if (!j) wx_fail_with_log(w, "/api/stream: event %d is not JSON: %.300s", i + 1, data);
        check_stats_shape(j);
        ck_assert_msg(wx_jnum(j, "time") >= last_time, "event times go back");
        last_time = wx_jnum(j, "time");
        cJSON_Delete(j);
        free(data);
    }
    /* The first at once, then one a second. */
    int64_t took = fx_now_ms() - start;
    ck_assert_msg(took < 3 * 1000, "3 events took %lld ms", (long long)took);
    fprintf(stderr, "test_dashboard: 3 SSE events in %lld ms\n", (long long)took);
    sse_close(&s);
    wx_stop_exchange(w);
}
END_TEST

/* Opens streams until one is refused; returns how many were accepted. */
static int open_streams(sse *v, int max) {
    int n = 0;
    for (; n < max; n++) {
        sse_open(&v[n]);
        if (v[n].head.status != 200) {
            ck_assert_msg(v[n].head.status == 503, "stream %d: status %d, want 200 or 503", n + 1,
                          v[n].head.status);
            sse_close(&v[n]);
            break;
        }
    }
    return n;
}

START_TEST(streams_are_capped_released_and_ended) {
    start_dash_world("dash-sse-cap", NULL);
    sse v[MAX_STREAMS + 1];
    int n = open_streams(v, MAX_STREAMS + 1);
    ck_assert_msg(n == MAX_STREAMS, "%d streams accepted, want %d then 503", n, MAX_STREAMS);
    /* Every one of them is served. */
    for (int i = 0; i < n; i++) {
        char *data = sse_next(&v[i], SSE_WAIT_MS);
        ck_assert_msg(data != NULL, "stream %d got no event", i + 1);
        free(data);
    }
    /* Clients that hang up free their slots (the close callback). */
    for (int i = 0; i < 8; i++)
        sse_close(&v[i]);
    int64_t until = fx_now_ms() + 3000;
    int reopened = 0;
    while (reopened < 8) {
        sse_open(&v[reopened]);
        if (v[reopened].head.status == 200) {
            reopened++;
            continue;
        }
        sse_close(&v[reopened]);
        if (fx_now_ms() > until)
            wx_fail_with_log(w,
                             "only %d of 8 stream slots came back after their clients "
                             "hung up",
                             reopened);
        fx_sleep_ms(100);
    }
    sse extra;
    sse_open(&extra);
    ck_assert_msg(extra.head.status == 503, "stream 33 after the reopen: status %d",
                  extra.head.status);
    sse_close(&extra);
    /* Stop with 32 streams open: a clean exit (no leak, no use after free). */
    fx_kill(w->exchange_pid, SIGTERM);
    wx_expect_clean_exit(w, WX_STOP_WAIT_MS);
    for (int i = 0; i < n; i++)
        sse_close(&v[i]);
}
END_TEST

/* ---- alerts ------------------------------------------------------------------------- */

/* The next message on auction:alerts with `state`, parsed, while a request
 * tagged `tag` goes out every 100 ms; fails after ms. */
static cJSON *await_alert(fx_sub *sub, const char *state, int ms, const char *tag) {
    int64_t until = fx_now_ms() + ms;
    int seq = 0;
    while (fx_now_ms() < until) {
        char id[48];
        snprintf(id, sizeof id, "alert-%s-%d", tag, ++seq);
        wx_publish_tagged(w, id, 1.0, tag);
        fx_msg *m = fx_sub_next(sub, 100);
        if (!m) continue;
        cJSON *j = fx_msg_json(m);
        if (!j) wx_fail_with_log(w, "auction:alerts: not JSON: %.300s", m->payload);
        fx_msg_free(m);
        if (strcmp(wx_or_empty(wx_jstr(j, "state")), state) == 0) return j;
        cJSON_Delete(j);
    }
    wx_fail_with_log(w, "no '%s' message on auction:alerts within %d ms", state, ms);
}

START_TEST(alert_fires_and_resolves) {
    fx_sub *alerts = fx_sub_start(w->env, "auction:alerts");
    const char *specs[] = {"id=slow,latency=300,price=fixed:2", "id=quick,price=fixed:2"};
    int port[2];
    fx_spawn_bidder(w->env, specs, 2, port);
    wx_register_advertiser(w, "slow", port[0], "[\"slow\"]");
    wx_opts o = {
        .tmax_ms = 100,
        .admin_port = fx_free_port(),
        .extra_json = "\"alerts\":[{\"name\":\"t\",\"metric\":\"bidder_timeout_rate\","
                      "\"above\":0.2,\"window_s\":2}]",
    };
    wx_start_exchange(w, "dash-alert", &o);

    int64_t start = fx_now_ms();
    cJSON *m = await_alert(alerts, "firing", 6000, "slow");
    fprintf(stderr, "test_dashboard: firing after %lld ms\n", (long long)(fx_now_ms() - start));
    ck_assert_str_eq(wx_or_empty(wx_jstr(m, "name")), "t");
    ck_assert_str_eq(wx_or_empty(wx_jstr(m, "metric")), "bidder_timeout_rate");
    ck_assert_str_eq(wx_or_empty(wx_jstr(m, "subject")), "slow");
    ck_assert_msg(wx_jnum(m, "value") > 0.2 && wx_jnum(m, "value") <= 1, "value %.4f",
                  wx_jnum(m, "value"));
    ck_assert_msg(wx_jnum(m, "above") == 0.2, "above %.4f", wx_jnum(m, "above"));
    ck_assert_msg(fabs(wx_jnum(m, "timestamp") - wx_wall_s()) < 5, "timestamp not about now");
    cJSON_Delete(m);

    cJSON *s = get_stats();
    const cJSON *a = cJSON_GetArrayItem(wx_jget(s, "alerts"), 0);
    ck_assert_msg(a != NULL && cJSON_GetArraySize(wx_jget(s, "alerts")) == 1,
                  "/api/stats has %d alerts, want 1", cJSON_GetArraySize(wx_jget(s, "alerts")));
    ck_assert_str_eq(wx_or_empty(wx_jstr(a, "name")), "t");
    ck_assert_str_eq(wx_or_empty(wx_jstr(a, "subject")), "slow");
    ck_assert_msg(wx_jnum(a, "value") > 0.2, "active alert value %.4f", wx_jnum(a, "value"));
    ck_assert_msg(wx_jnum(s, "alert_rules") == 1, "alert_rules != 1");
    cJSON_Delete(s);
    /* The campaign view of its subject lists it too (SPEC 16). */
    cJSON *v = NULL;
    ck_assert_int_eq(get_json("/api/advertisers/slow", &v), 200);
    a = cJSON_GetArrayItem(wx_jget(v, "alerts"), 0);
    ck_assert_msg(a && cJSON_GetArraySize(wx_jget(v, "alerts")) == 1 &&
                      strcmp(wx_or_empty(wx_jstr(a, "name")), "t") == 0,
                  "/api/advertisers/slow does not list its alert");
    cJSON_Delete(v);

    /* The advertiser moves to a fast endpoint: its breaker's probe succeeds,
     * calls come back without timeouts, and the alert resolves. */
    wx_register_advertiser(w, "slow", port[1], "[\"slow\"]");
    fx_redis_do(w->env, "PUBLISH advertiser:updates slow");
    m = await_alert(alerts, "resolved", 10000, "slow");
    ck_assert_str_eq(wx_or_empty(wx_jstr(m, "subject")), "slow");
    ck_assert_msg(wx_jnum(m, "value") <= 0.2, "resolved with value %.4f", wx_jnum(m, "value"));
    cJSON_Delete(m);
    s = get_stats();
    ck_assert_msg(cJSON_GetArraySize(wx_jget(s, "alerts")) == 0, "alert still listed");
    cJSON_Delete(s);
    ck_assert_int_eq(get_json("/api/advertisers/slow", &v), 200);
    ck_assert_msg(cJSON_GetArraySize(wx_jget(v, "alerts")) == 0, "resolved alert still listed");
    cJSON_Delete(v);
    /* Let the last slow calls land before stopping (their bids are dropped). */
    fx_sleep_ms(400);
    wx_stop_exchange(w);
}
END_TEST

START_TEST(unknown_alert_metric_is_refused) {
    wx_opts o = {
        .admin_port = fx_free_port(),
        .extra_json = "\"alerts\":[{\"name\":\"ok\",\"metric\":\"no_bid_rate\",\"above\":0.5},"
                      "{\"name\":\"bad\",\"metric\":\"bidder_happiness\",\"above\":1}]",
    };
    char *path = wx_write_config(w, "dash-bad-alert", &o);
    const char *argv[] = {fx_getenv("RTB_EXCHANGE"), "-c", path, NULL};
    w->exchange_pid = fx_spawn(w->env, argv, "exchange.log");
    free(path);
    int status = 0;
    if (fx_wait_exit(w->exchange_pid, 10000, &status) != 0)
        wx_fail_with_log(w, "rtb-exchange still runs with an unknown alert metric");
    w->exchange_pid = 0;
    char *log = fx_read_file(w->env, "exchange.log", NULL);
    ck_assert_msg(log != NULL, "exchange.log cannot be read");
    int named = strstr(log, "alerts[1].metric") != NULL && strstr(log, "bidder_happiness");
    free(log);
    if (!named) wx_fail_with_log(w, "the message does not name alerts[1].metric");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 2)
        wx_fail_with_log(w, "rtb-exchange ended with %s %d, want exit status 2 (bad config)",
                         WIFEXITED(status) ? "exit status" : "signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    wx_check_exchange_log(w);
}
END_TEST

/* ---- the page ------------------------------------------------------------------------ */

/* Fails when `attr`="..." anywhere in html names another host: anything with
 * "//" or a scheme other than data:. */
static void expect_no_external(const char *html, const char *attr) {
    char pat[32];
    snprintf(pat, sizeof pat, " %s=", attr);
    for (const char *p = html; (p = strstr(p, pat)) != NULL; p++) {
        const char *v = p + strlen(pat);
        if (*v == '"' || *v == '\'') v++;
        char val[128];
        snprintf(val, sizeof val, "%.*s", (int)strcspn(v, "\"' >"), v);
        int external = strstr(val, "//") != NULL ||
                       (strchr(val, ':') != NULL && strncmp(val, "data:", 5) != 0);
        ck_assert_msg(!external, "GET /: %s=\"%s\" points elsewhere", attr, val);
    }
}

START_TEST(page_is_self_contained) {
    start_dash_world("dash-page", NULL);
    http_head h;
    bytes body;
    http_get("/", &h, &body);
    ck_assert_msg(h.status == 200, "GET /: status %d", h.status);
    ck_assert_msg(head_has(&h, "Content-Type", "text/html"), "GET /: not text/html:\n%s",
                  h.headers);
    const char *html = body.p;
    ck_assert_msg(html && strstr(html, "<html") && strstr(html, "</html>"), "GET /: no page");
    ck_assert_msg(!strstr(html, "http://") && !strstr(html, "https://"),
                  "GET /: the page names an http(s) URL");
    expect_no_external(html, "src");
    expect_no_external(html, "href");
    ck_assert_msg(!strstr(html, "@import") && !strstr(html, "url("), "GET /: CSS loads a URL");
    ck_assert_msg(strstr(html, "EventSource('/api/stream')") && strstr(html, "'/api/stats'"),
                  "GET /: the page neither streams nor polls");
    /* Every browser runs the same code: none is told apart by its name. */
    ck_assert_msg(!strstr(html, "userAgent"), "GET /: the page looks at the user agent");
    /* The admin token the rules form takes is never stored (SPEC 16). */
    ck_assert_msg(!strstr(html, "localStorage") && !strstr(html, "sessionStorage") &&
                      !strstr(html, "document.cookie"),
                  "GET /: the page keeps something in the browser's storage");
    ck_assert_msg(strstr(html, "id=\"rule-token\" type=\"password\""),
                  "GET /: the admin token field is not a password field");
    static const char *const ids[] = {
        "auctions-per-s", "p50",         "p99",      "total-auctions", "bidders",   "alerts",
        "ev-impressions", "ev-clicks",   "ev-ctr",   "ev-conversions", "spark",     "bill-billed",
        "bill-pending",   "advertisers", "adv-view", "rules",          "rule-form", "rule-token"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char id[64];
        snprintf(id, sizeof id, "id=\"%s\"", ids[i]);
        ck_assert_msg(strstr(html, id) != NULL, "GET /: no element %s", id);
    }
    ck_assert_msg(head_has(&h, "Content-Security-Policy", "default-src 'none'"),
                  "GET /: no Content-Security-Policy");
    /* Inline script and style are allowed by hash alone (the browser test
     * shows the hashes match: the page runs, and the console is clean). */
    ck_assert_msg(
        strstr(h.headers, "script-src 'sha256-") && strstr(h.headers, "style-src 'sha256-") &&
            !strstr(h.headers, "unsafe-inline"),
        "GET /: the CSP does not pin the inline script and style by hash:\n%s", h.headers);
    free(body.p);
    http_get("/nope", &h, &body);
    ck_assert_msg(h.status == 404, "GET /nope: status %d", h.status);
    free(body.p);
    wx_stop_exchange(w);
}
END_TEST

/* ---- the page in a real browser ------------------------------------------------------- */

static int traffic_seq;

/* One tagged request (the world's advertisers answer it), and now and then
 * an impression and a click for the events panel. Results are not awaited. */
static void traffic_tick(void) {
    char id[48], ev[512];
    snprintf(id, sizeof id, "live-%d", ++traffic_seq);
    wx_publish_tagged(w, id, 1.0, "live");
    if (traffic_seq % 2 == 0) {
        int n = snprintf(ev, sizeof ev,
                         "{\"request_id\":\"%s\",\"ad_id\":\"ad_fast_%s\","
                         "\"advertiser_id\":\"fast\",\"user_id\":\"u-%d\"}",
                         id, id, traffic_seq);
        wx_publish_raw(w, "rtb/events/impression", ev, (size_t)n);
        if (traffic_seq % 20 == 0) wx_publish_raw(w, "rtb/events/click", ev, (size_t)n);
        if (traffic_seq % 40 == 0) wx_publish_raw(w, "rtb/events/conversion", ev, (size_t)n);
    }
}

/* Keeps traffic going (one request per 100 ms) for ms. */
static void traffic_for(int ms) {
    for (int64_t until = fx_now_ms() + ms; fx_now_ms() < until;) {
        traffic_tick();
        fx_sleep_ms(100);
    }
}

/* 1 when /api/stats lists an active alert named `name`. */
static int stats_has_alert(const char *name) {
    cJSON *s = get_stats();
    const cJSON *a;
    int found = 0;
    cJSON_ArrayForEach(a, wx_jget(s, "alerts")) {
        found |= strcmp(wx_or_empty(wx_jstr(a, "name")), name) == 0;
    }
    cJSON_Delete(s);
    return found;
}

/* Keeps traffic going until /api/stats lists alert `name`; fails after ms. */
static void traffic_until_alert(const char *name, int ms) {
    for (int64_t until = fx_now_ms() + ms; !stats_has_alert(name);) {
        if (fx_now_ms() > until)
            wx_fail_with_log(w, "alert %s not in /api/stats after %d ms of traffic", name, ms);
        for (int i = 0; i < 5; i++) {
            traffic_tick();
            fx_sleep_ms(100);
        }
    }
}

/* Fails unless `path` holds a PNG of some size (a page, not an empty frame). */
static void expect_png(const char *path) {
    unsigned char head[8] = {0};
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "no screenshot at %s: %s", path, strerror(errno));
    size_t n = fread(head, 1, sizeof head, f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fclose(f);
    ck_assert_msg(n == 8 && memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0, "%s is not a PNG", path);
    ck_assert_msg(len > 20000, "%s is only %ld bytes: no page in it", path, len);
}

/* Prints the last `lines` lines of DIR/name to stderr (chromedriver logs
 * every WebDriver command: the end is what tells why it hung). */
static void dump_tail(const char *name, int lines) {
    size_t len = 0;
    char *text = fx_read_file(w->env, name, &len);
    if (!text) return;
    const char *p = text + len;
    for (int n = 0; p > text && n <= lines; p--)
        n += p[-1] == '\n';
    fprintf(stderr, "----- last %d lines of %s -----\n%s\n----- end -----\n", lines, name,
            p == text ? p : p + 1);
    free(text);
}

/* The admin token the browser test's exchange takes from its environment
 * (SPEC 16: admin.token or RTB_ADMIN_TOKEN). */
#define BROWSER_TOKEN "dash-browser-token-7f3a9c41"

/* tests/dashboard_webdriver.py (python3-selenium driving headless Chromium
 * through chromedriver) opens the page while this test keeps auctions and
 * ad events flowing, and checks in real time what a person sees: the pill
 * says "live", total-auctions changes twice from stream events, the bidder
 * table has the three bidders with numbers, the slow bidder's alert shows;
 * the advertisers table (SPEC 16) lists the three sorted by spend and
 * sorts by a clicked column, the top one's link opens its view with its
 * charts and health, the slow one's view lists its alert; an alert rule is
 * added through the page's form (after a wrong token is refused) and
 * deleted again -- this needs the alert-rules API of SPEC 16 (POST and
 * DELETE /api/alerts); and the browser logged no error (the CSP refused
 * nothing, no request failed). Its output is printed; its exit status is
 * the verdict. */
START_TEST(browser_shows_live_dashboard) {
    const char *specs[] = {"id=fast,price=uniform:1-3,latency=5,jitter=10",
                           "id=slow,latency=80,jitter=60,price=fixed:2.5",
                           "id=flaky,latency=10,error=0.3,nobid=0.2,price=uniform:1-2"};
    int port[3];
    fx_spawn_bidder(w->env, specs, 3, port);
    char bidders[1024] = "";
    wx_add_config_bidder(bidders, sizeof bidders, "fast", port[0], "[\"live\"]");
    wx_add_config_bidder(bidders, sizeof bidders, "slow", port[1], "[\"live\"]");
    wx_add_config_bidder(bidders, sizeof bidders, "flaky", port[2], "[\"live\"]");
    wx_opts o = {
        .tmax_ms = 100,
        .bidders = bidders,
        .admin_port = fx_free_port(),
        .extra_json = "\"alerts\":[{\"name\":\"slow-bidder\",\"metric\":"
                      "\"bidder_timeout_rate\",\"above\":0.2,\"window_s\":10},"
                      "{\"name\":\"bidder-errors\",\"metric\":\"bidder_error_rate\","
                      "\"above\":0.1,\"window_s\":10},{\"name\":\"latency\",\"metric\":"
                      "\"p99_latency_ms\",\"above\":150,\"window_s\":30}]",
    };
    ck_assert_int_eq(setenv("RTB_ADMIN_TOKEN", BROWSER_TOKEN, 1), 0); /* the exchange inherits it */
    wx_start_exchange(w, "dash-browser", &o);
    unsetenv("RTB_ADMIN_TOKEN");
    const char *update = getenv("RTB_UPDATE_SCREENSHOT");
    int update_shot = update && strcmp(update, "1") == 0;
    traffic_for(update_shot ? 45000 : 3000); /* history for the charts */
    traffic_until_alert("slow-bidder", 20000);

    char url[64], dest[1024], adv_dest[1024], adv_shot[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", w->admin_port);
    snprintf(dest, sizeof dest, "%s/docs/dashboard.png", fx_getenv("RTB_SOURCE_ROOT"));
    snprintf(adv_dest, sizeof adv_dest, "%s/docs/dashboard-advertiser.png",
             fx_getenv("RTB_SOURCE_ROOT"));
    const char *shot = fx_getenv("RTB_DASHBOARD_SCREENSHOT");
    /* The advertiser view's picture beside the overview's: X.png -> X-advertiser.png. */
    snprintf(adv_shot, sizeof adv_shot, "%.*s-advertiser.png",
             (int)(strlen(shot) > 4 ? strlen(shot) - 4 : strlen(shot)), shot);
    char *profile = fx_path(w->env, "chromium-profile");
    char *driver_log = fx_path(w->env, "chromedriver.log");
    const char *argv[] = {fx_getenv("RTB_PYTHON"),
                          fx_getenv("RTB_DASHBOARD_WEBDRIVER"),
                          "--url",
                          url,
                          "--profile",
                          profile,
                          "--driver-log",
                          driver_log,
                          "--timeout-s",
                          "30",
                          "--bidder",
                          "fast",
                          "--bidder",
                          "slow",
                          "--bidder",
                          "flaky",
                          "--alert",
                          "slow-bidder",
                          "--advertiser",
                          "fast",
                          "--advertiser",
                          "slow",
                          "--advertiser",
                          "flaky",
                          "--advertiser-alert",
                          "slow=slow-bidder",
                          "--rule",
                          "page-rule",
                          "--token",
                          BROWSER_TOKEN,
                          "--screenshot",
                          shot,
                          "--advertiser-screenshot",
                          adv_shot,
                          update_shot ? "--screenshot" : NULL, /* ends argv here if not */
                          dest,
                          "--advertiser-screenshot",
                          adv_dest,
                          NULL};
    unlink(shot); /* a stale one must not pass for this run's */
    unlink(adv_shot);
    pid_t pid = fx_spawn(w->env, argv, "webdriver.log");
    int status = 0;
    int64_t until = fx_now_ms() + WEBDRIVER_WAIT_MS;
    while (fx_wait_exit(pid, 100, &status) != 0) {
        if (fx_now_ms() > until) {
            fx_dump_log(w->env, "webdriver.log");
            dump_tail("chromedriver.log", 40);
            ck_abort_msg("%s did not finish within %d ms", argv[1], WEBDRIVER_WAIT_MS);
        }
        traffic_tick();
    }
    fx_dump_log(w->env, "webdriver.log");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        dump_tail("chromedriver.log", 40);
        wx_fail_with_log(w, "the browser test failed (%s %d; its output is above)",
                         WIFEXITED(status) ? "exit status" : "signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    expect_png(shot);
    expect_png(adv_shot);
    if (update_shot) {
        expect_png(dest);
        expect_png(adv_dest);
        fprintf(stderr, "test_dashboard: screenshots saved to %s and %s\n", dest, adv_dest);
    }
    free(profile);
    free(driver_log);
    wx_stop_exchange(w);
}
END_TEST

/* ---- suite ---------------------------------------------------------------------------- */

static Suite *dashboard_suite(void) {
    Suite *s = suite_create("dashboard");
    wx_add_case(s, "stats", stats_shape_and_numbers_move, 60, setup, teardown);
    wx_add_case(s, "advertisers", advertisers_list_totals_from_redis, 60, setup, teardown);
    wx_add_case(s, "advertiser", advertiser_view_series_health_and_ids, 60, setup, teardown);
    wx_add_case(s, "advertisers_local", advertisers_without_redis_answer_locally, 60, setup,
                teardown);
    wx_add_case(s, "stream", stream_sends_an_event_a_second, 60, setup, teardown);
    wx_add_case(s, "stream_cap", streams_are_capped_released_and_ended, 60, setup, teardown);
    wx_add_case(s, "alert", alert_fires_and_resolves, 60, setup, teardown);
    wx_add_case(s, "bad_alert", unknown_alert_metric_is_refused, 60, setup, teardown);
    wx_add_case(s, "page", page_is_self_contained, 60, setup, teardown);
    wx_add_case(s, "browser", browser_shows_live_dashboard, 240, setup, teardown);
    return s;
}

int main(void) {
    return fx_run_suite(dashboard_suite());
}

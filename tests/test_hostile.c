/* test_hostile.c -- integration suite for the bounds of the admin listener
 * (SPEC 15, last bullet): hostile clients against a live exchange.
 *
 * Each test starts an exchange world (tests/world.h) with admin.listen on a
 * free port and one fast advertiser, then plays a client the listener must
 * refuse: a foreign Host (a page reached by DNS rebinding), 20 KiB of
 * headers, request bodies on routes that take none, 300 connections held
 * open and idle, and connections left silent for longer than the idle
 * timeout. Raw sockets, since the fixture's fx_http sends one well-formed
 * request.
 *
 * The one idea: every case checks three things -- what the hostile client
 * got (a status, or its connection closed), that the exchange counted it on
 * /metrics (rtb_admin_refused_total{reason}, rtb_admin_connections_evicted_total;
 * as deltas), and that nothing else was harmed: /healthz answers, a stream
 * opened before keeps its events, and an auction published at the end gets
 * its result. Every test ends with the exchange's clean exit. */
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
#include <unistd.h>

#include "tests/world.h"

#define HTTP_WAIT_MS 2000     /* one admin request; the loop answers at once */
#define MAX_CONNECTIONS 256   /* RTB_ADMIN_MAX_CONNECTIONS */
#define IDLE_TIMEOUT_MS 30000 /* RTB_ADMIN_IDLE_TIMEOUT_S */
#define HOLD 300              /* idle connections the cap test opens */

static wx_world *w;

static void setup(void) {
    w = wx_start();
}

static void teardown(void) {
    wx_stop(w);
    w = NULL;
}

/* ---- the world ------------------------------------------------------------------ */

/* One fast advertiser adv-1 (fixed 2.00) tagged "hostile" (so probes do not
 * reach it), and the exchange with an admin port and `extra` merged over its
 * config. */
static void start_hostile_world(const char *name, const char *extra) {
    const char *specs[] = {"id=adv-1,price=fixed:2"};
    int port[1];
    fx_spawn_bidder(w->env, specs, 1, port);
    char bidders[512] = "";
    wx_add_config_bidder(bidders, sizeof bidders, "adv-1", port[0], "[\"hostile\"]");
    wx_opts o = {
        .tmax_ms = 100, .bidders = bidders, .admin_port = fx_free_port(), .extra_json = extra};
    wx_start_exchange(w, name, &o);
}

/* Other auctions are unharmed: one published now gets its result, won by adv-1. */
static void auction_still_runs(const char *id) {
    wx_publish_tagged(w, id, 1.0, "hostile");
    cJSON *r = wx_wait_result(w, id);
    wx_expect_result(r, "success", 1, 1, 0, 0);
    wx_expect_winner(r, "adv-1", 2.0, 1.0);
    cJSON_Delete(r);
}

static void expect_healthy(void) {
    char *body = NULL;
    int code = fx_http(w->admin_port, "GET", "/healthz", NULL, &body, HTTP_WAIT_MS);
    if (code != 200) wx_fail_with_log(w, "GET /healthz: %d, want 200: %s", code, wx_or_empty(body));
    free(body);
}

/* The value of one series on /metrics (e.g. "rtb_admin_refused_total{reason=\"host\"}");
 * fails when it is missing. */
static double metric(const char *series) {
    char *body = NULL;
    int code = fx_http(w->admin_port, "GET", "/metrics", NULL, &body, HTTP_WAIT_MS);
    if (code != 200) wx_fail_with_log(w, "GET /metrics: %d: %s", code, wx_or_empty(body));
    size_t n = strlen(series);
    double v = NAN;
    for (const char *line = body; line; line = strchr(line, '\n')) {
        line += line[0] == '\n';
        if (strncmp(line, series, n) == 0 && line[n] == ' ') v = strtod(line + n + 1, NULL);
    }
    if (isnan(v)) {
        fprintf(stderr, "---- /metrics ----\n%s---- end ----\n", body);
        ck_abort_msg("/metrics has no %s", series);
    }
    free(body);
    return v;
}

static double refused(const char *reason) {
    char series[128];
    snprintf(series, sizeof series, "rtb_admin_refused_total{reason=\"%s\"}", reason);
    return metric(series);
}

/* ---- raw HTTP ------------------------------------------------------------------- */

static int admin_connect(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)w->admin_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        wx_fail_with_log(w, "connect to the admin port: %s", strerror(errno));
    return fd;
}

/* Sends len bytes; 0, or -1 when the peer closed or reset meanwhile. */
static int send_bytes(int fd, const char *s, size_t len) {
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);
        if (n <= 0) return -1;
        off += (size_t)n;
    }
    return 0;
}

/* What came back on a connection. */
typedef struct answer {
    char text[65536]; /* NUL-terminated; the head and the start of the body */
    size_t len;
    int status; /* of the first status line; -1 when none came */
    int closed; /* 1: EOF, -1: reset or error, 0: still open at the deadline */
} answer;

/* Reads until the peer closes, or ms pass. */
static void read_answer(int fd, int ms, answer *out) {
    memset(out, 0, sizeof *out);
    out->status = -1;
    int64_t until = fx_now_ms() + ms;
    while (!out->closed) {
        int left = (int)(until - fx_now_ms());
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0) break;
        char buf[16384];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0) {
            out->closed = 1;
        } else if (n < 0) {
            out->closed = -1;
        } else {
            size_t room = sizeof out->text - 1 - out->len,
                   take = (size_t)n < room ? (size_t)n : room;
            memcpy(out->text + out->len, buf, take);
            out->len += take;
            out->text[out->len] = '\0';
        }
    }
    if (sscanf(out->text, "HTTP/1.%*d %d", &out->status) != 1) out->status = -1;
}

/* Sends `req` on a new connection and reads the answer until the peer
 * closes (within HTTP_WAIT_MS). */
static void raw(const char *req, answer *out) {
    int fd = admin_connect();
    send_bytes(fd, req, strlen(req));
    read_answer(fd, HTTP_WAIT_MS, out);
    close(fd);
}

/* 1 when the answer's head has header `name` with a value starting with `value`. */
static int has_header(const answer *a, const char *name, const char *value) {
    const char *end = strstr(a->text, "\r\n\r\n");
    size_t nlen = strlen(name);
    for (const char *line = a->text; (line = strstr(line, "\r\n")) != NULL && line < end;) {
        line += 2;
        if (strncasecmp(line, name, nlen) != 0 || line[nlen] != ':') continue;
        const char *v = line + nlen + 1;
        while (*v == ' ')
            v++;
        return strncasecmp(v, value, strlen(value)) == 0;
    }
    return 0;
}

/* The answer to `req` is `status` and the connection is closed after it. */
static void expect_refused(const char *what, const char *req, int status, answer *a) {
    raw(req, a);
    if (a->status != status || a->closed != 1)
        wx_fail_with_log(w, "%s: status %d, connection %s; want %d and closed: %.300s", what,
                         a->status, a->closed ? "closed" : "still open", status, a->text);
}

/* 1 when nothing of the dashboard's data is in the answer. */
static int serves_nothing(const answer *a) {
    return strstr(a->text, "<html") == NULL && strstr(a->text, "\"rates\"") == NULL &&
           strstr(a->text, "rtb_") == NULL && strstr(a->text, "ok\n") == NULL;
}

/* ---- a Server-Sent Events stream ------------------------------------------------- */

/* Opens GET /api/stream as a browser does; fails unless it answers 200. */
static int stream_open(void) {
    int fd = admin_connect();
    const char *req = "GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Accept: text/event-stream\r\n\r\n";
    ck_assert_int_eq(send_bytes(fd, req, strlen(req)), 0);
    char buf[4096];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t n = poll(&p, 1, HTTP_WAIT_MS) == 1 ? recv(fd, buf, sizeof buf - 1, 0) : -1;
    ck_assert_msg(n > 0, "GET /api/stream: no answer");
    buf[n] = '\0';
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "GET /api/stream: %.200s", buf);
    return fd;
}

/* 1 when an event ("data:") arrives on the stream within ms, 0 when none,
 * -1 when the stream was closed. */
static int stream_event(int fd, int ms) {
    int64_t until = fx_now_ms() + ms;
    for (;;) {
        int left = (int)(until - fx_now_ms());
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0) return 0;
        char buf[65536];
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        if (n <= 0) return -1;
        buf[n] = '\0';
        if (strstr(buf, "data: {")) return 1;
    }
}

/* ---- Host ----------------------------------------------------------------------- */

START_TEST(foreign_host_is_refused) {
    start_hostile_world("hostile-host", "\"admin\":{\"allowed_hosts\":[\"dash.example\"]}");
    double host0 = refused("host");
    char req[512];
    answer *a = malloc(sizeof *a);
    ck_assert_ptr_nonnull(a);
    int refusals = 0;

    /* A page of evil.example whose name now points here (DNS rebinding)
     * reads nothing: not the page, not the stats, not the metrics. */
    static const char *const paths[] = {"/", "/api/stats", "/api/stream", "/metrics", "/healthz"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: evil.example:%d\r\n\r\n", paths[i],
                 w->admin_port);
        expect_refused(paths[i], req, 421, a);
        ck_assert_msg(serves_nothing(a), "GET %s with a foreign Host served: %.300s", paths[i],
                      a->text);
        refusals++;
    }
    /* Names that only look like ours, a bad port, an absolute URI naming
     * another host, no Host at all, two of them. */
    static const char *const foreign[] = {"127.0.0.1.evil.example",
                                          "localhost.",
                                          "evil-localhost",
                                          "localhost:99999",
                                          "localhost:",
                                          "::1",
                                          "[::2]:80",
                                          "dash.example.evil"};
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        snprintf(req, sizeof req, "GET /api/stats HTTP/1.1\r\nHost: %s\r\n\r\n", foreign[i]);
        expect_refused(foreign[i], req, 421, a);
        refusals++;
    }
    expect_refused("absolute URI",
                   "GET http://evil.example/api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 421, a);
    refusals++;
    expect_refused("no Host", "GET /api/stats HTTP/1.0\r\n\r\n", 400, a);
    ck_assert_msg(serves_nothing(a), "no Host: served %.300s", a->text);
    refusals++;
    expect_refused("two Hosts",
                   "GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n", 400,
                   a);
    refusals++;

    /* What names the listener: loopback names in any case, with any port or
     * none, [::1], the listen address, and admin.allowed_hosts. */
    static const char *const ours[] = {"127.0.0.1", "LocalHost:1",  "[::1]:8080",
                                       "[::1]",     "dash.example", "DASH.example:443"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        snprintf(req, sizeof req,
                 "GET /api/stats HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", ours[i]);
        raw(req, a);
        if (a->status != 200 || strstr(a->text, "\"rates\"") == NULL)
            wx_fail_with_log(w, "Host %s: status %d, want 200 with the stats: %.300s", ours[i],
                             a->status, a->text);
    }
    snprintf(req, sizeof req,
             "GET http://127.0.0.1:%d/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Connection: close\r\n\r\n",
             w->admin_port);
    raw(req, a);
    ck_assert_msg(a->status == 200, "absolute URI naming us: %d: %.200s", a->status, a->text);
    free(a);

    /* Counted, one each; /metrics itself answers a good Host. */
    double host1 = refused("host");
    ck_assert_msg(host1 - host0 == refusals,
                  "rtb_admin_refused_total{reason=\"host\"} grew by %.0f, want %d", host1 - host0,
                  refusals);
    expect_healthy();
    auction_still_runs("hst-host");
    wx_stop_exchange(w);
}
END_TEST

/* ---- Headers -------------------------------------------------------------------- */

/* "GET /healthz" with about `bytes` of headers (in lines of 1000). */
static char *request_with_headers(size_t bytes) {
    size_t cap = bytes + 4096, len = 0;
    char *req = malloc(cap);
    ck_assert_ptr_nonnull(req);
    len += (size_t)snprintf(req, cap, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (size_t i = 0; (i + 1) * 1000 <= bytes; i++) {
        len += (size_t)snprintf(req + len, cap - len, "X-Filler-%03zu: ", i);
        memset(req + len, 'a', 984);
        len += 984;
        len += (size_t)snprintf(req + len, cap - len, "\r\n");
    }
    snprintf(req + len, cap - len, "Connection: close\r\n\r\n");
    return req;
}

START_TEST(big_headers_are_refused) {
    start_hostile_world("hostile-headers", NULL);
    double headers0 = refused("headers");
    int stream = stream_open();
    answer *a = malloc(sizeof *a);
    ck_assert_ptr_nonnull(a);

    /* 7 KiB of headers are fine. */
    char *req = request_with_headers(7 * 1024);
    raw(req, a);
    free(req);
    ck_assert_msg(a->status == 200, "7 KiB of headers: status %d: %.200s", a->status, a->text);

    /* 20 KiB: refused (400, read no further) and the connection closed. The
     * client may still be sending when the exchange closes, so the 400 can
     * be lost to a reset: either way it gets no answer of the route. */
    req = request_with_headers(20 * 1024);
    int fd = admin_connect();
    send_bytes(fd, req, strlen(req));
    free(req);
    read_answer(fd, HTTP_WAIT_MS, a);
    close(fd);
    ck_assert_msg(a->closed != 0, "20 KiB of headers: the connection is still open");
    ck_assert_msg(a->status == 400 || (a->status == -1 && a->len == 0),
                  "20 KiB of headers: status %d, want 400 or nothing: %.200s", a->status, a->text);

    /* A header line longer than the limit, without its end. */
    fd = admin_connect();
    char *line = malloc(10000);
    ck_assert_ptr_nonnull(line);
    memcpy(line, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: ", 49);
    memset(line + 49, 'b', 10000 - 49);
    send_bytes(fd, line, 10000);
    free(line);
    read_answer(fd, HTTP_WAIT_MS, a);
    close(fd);
    ck_assert_msg(a->closed != 0, "a 10000-byte header line: the connection is still open");
    ck_assert_msg(a->status == 400 || a->status == -1, "a 10000-byte header line: status %d",
                  a->status);
    free(a);

    double headers1 = refused("headers");
    ck_assert_msg(headers1 - headers0 == 2,
                  "rtb_admin_refused_total{reason=\"headers\"} grew by %.0f, want 2",
                  headers1 - headers0);
    ck_assert_msg(stream_event(stream, 3000) == 1, "the stream opened before got no event");
    close(stream);
    expect_healthy();
    auction_still_runs("hst-headers");
    wx_stop_exchange(w);
}
END_TEST

/* ---- Bodies --------------------------------------------------------------------- */

START_TEST(bodies_are_refused) {
    start_hostile_world("hostile-body", NULL);
    double body0 = refused("body"), method0 = refused("method");
    answer *a = malloc(sizeof *a);
    ck_assert_ptr_nonnull(a);

    /* POST to /api/stats: the route takes GET and HEAD. */
    expect_refused(
        "POST /api/stats",
        "POST /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 15\r\n\r\n{\"reset\":true}\n",
        405, a);
    ck_assert_msg(has_header(a, "Allow", "GET, HEAD"), "405 without Allow: %.300s", a->text);
    ck_assert_msg(serves_nothing(a), "POST /api/stats served: %.300s", a->text);

    /* A body on GET, which evhttp does not read: refused, not taken for the
     * next request. */
    expect_refused("GET /api/stats with a body",
                   "GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 25\r\n\r\n"
                   "GET /metrics HTTP/1.1\r\n\r\n",
                   413, a);
    ck_assert_msg(serves_nothing(a), "GET with a body served: %.300s", a->text);
    expect_refused("chunked GET",
                   "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n0\r\n\r\n",
                   413, a);

    /* A body of 20 MB announced: refused at once (413), nothing of it read:
     * the client has sent only the head. */
    int fd = admin_connect();
    const char *head =
        "POST /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 20000000\r\n\r\n";
    ck_assert_int_eq(send_bytes(fd, head, strlen(head)), 0);
    int64_t t0 = fx_now_ms();
    read_answer(fd, HTTP_WAIT_MS, a);
    close(fd);
    ck_assert_msg(a->status == 413 && a->closed == 1,
                  "20 MB announced: status %d after %lld ms, want 413 and closed: %.200s",
                  a->status, (long long)(fx_now_ms() - t0), a->text);
    free(a);

    double body1 = refused("body"), method1 = refused("method");
    ck_assert_msg(body1 - body0 == 3,
                  "rtb_admin_refused_total{reason=\"body\"} grew by %.0f, want 3", body1 - body0);
    ck_assert_msg(method1 - method0 == 1,
                  "rtb_admin_refused_total{reason=\"method\"} grew by %.0f, want 1",
                  method1 - method0);
    expect_healthy();
    auction_still_runs("hst-body");
    wx_stop_exchange(w);
}
END_TEST

/* ---- The connection cap --------------------------------------------------------- */

START_TEST(connection_cap_closes_the_idlest) {
    start_hostile_world("hostile-cap", NULL);
    double evicted0 = metric("rtb_admin_connections_evicted_total");
    /* A stream first: the oldest connection, but never idle. */
    int stream = stream_open();
    int *fds = malloc(HOLD * sizeof *fds);
    ck_assert_ptr_nonnull(fds);
    for (int i = 0; i < HOLD; i++)
        fds[i] = admin_connect();
    fx_sleep_ms(200); /* all accepted */

    /* The listener still answers, at once. */
    int64_t t0 = fx_now_ms();
    char *body = NULL;
    int code = fx_http(w->admin_port, "GET", "/healthz", NULL, &body, 1000);
    int64_t took = fx_now_ms() - t0;
    if (code != 200)
        wx_fail_with_log(w, "GET /healthz with %d idle connections: %d, want 200", HOLD, code);
    free(body);
    ck_assert_msg(took < 1000, "GET /healthz took %lld ms", (long long)took);

    /* The ones idle the longest (opened first) were closed to make room: the
     * first ones, and no later one. The stream was not. */
    int closed = 0, first_open = -1;
    for (int i = 0; i < HOLD; i++) {
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        char c;
        int gone = poll(&p, 1, i == 0 ? 1000 : 0) == 1 && recv(fds[i], &c, 1, 0) <= 0;
        if (gone) {
            ck_assert_msg(first_open < 0, "connection %d was closed, but %d (older) was not", i,
                          first_open);
            closed++;
        } else if (first_open < 0) {
            first_open = i;
        }
    }
    /* One stream + HOLD connections + the /healthz request: at least that
     * many over the cap were closed, and not many more. */
    int over = 1 + HOLD + 1 - MAX_CONNECTIONS;
    ck_assert_msg(closed >= over && closed <= over + 2,
                  "%d idle connections closed, want %d (the oldest)", closed, over);
    ck_assert_msg(stream_event(stream, 3000) == 1, "the stream got no event: was it closed?");
    double open = metric("rtb_admin_connections");
    ck_assert_msg(open <= MAX_CONNECTIONS, "rtb_admin_connections %.0f over the cap", open);
    double evicted = metric("rtb_admin_connections_evicted_total") - evicted0;
    ck_assert_msg(evicted >= closed, "rtb_admin_connections_evicted_total grew by %.0f, %d closed",
                  evicted, closed);

    /* Connections kept open still work. */
    const char *req = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    answer *a = malloc(sizeof *a);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(send_bytes(fds[HOLD - 1], req, strlen(req)), 0);
    read_answer(fds[HOLD - 1], HTTP_WAIT_MS, a);
    ck_assert_msg(a->status == 200, "the newest held connection: status %d", a->status);
    free(a);
    for (int i = 0; i < HOLD; i++)
        close(fds[i]);
    free(fds);
    close(stream);
    auction_still_runs("hst-cap");
    wx_stop_exchange(w);
}
END_TEST

/* ---- The idle timeout ----------------------------------------------------------- */

START_TEST(idle_connections_are_closed_streams_are_not) {
    start_hostile_world("hostile-idle", NULL);
    /* A: never says anything. B: one request kept alive, then silence. C: a
     * stream, whose client says nothing either. */
    int conn_a = admin_connect();
    int64_t since_a = fx_now_ms();
    int conn_b = admin_connect();
    const char *req = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    ck_assert_int_eq(send_bytes(conn_b, req, strlen(req)), 0);
    char buf[4096];
    struct pollfd pb = {.fd = conn_b, .events = POLLIN};
    ck_assert_msg(poll(&pb, 1, HTTP_WAIT_MS) == 1 && recv(conn_b, buf, sizeof buf, 0) > 0,
                  "B: no answer");
    int64_t since_b = fx_now_ms();
    int stream = stream_open();

    int64_t closed_a = -1, closed_b = -1, last_event = -1;
    int64_t until = fx_now_ms() + IDLE_TIMEOUT_MS + 5000;
    while (fx_now_ms() < until &&
           (closed_a < 0 || closed_b < 0 || last_event < IDLE_TIMEOUT_MS + 3000)) {
        struct pollfd p[3] = {{.fd = closed_a < 0 ? conn_a : -1, .events = POLLIN},
                              {.fd = closed_b < 0 ? conn_b : -1, .events = POLLIN},
                              {.fd = stream, .events = POLLIN}};
        if (poll(p, 3, 500) <= 0) continue;
        if (p[0].revents && recv(conn_a, buf, sizeof buf, 0) <= 0) closed_a = fx_now_ms() - since_a;
        if (p[1].revents && recv(conn_b, buf, sizeof buf, 0) <= 0) closed_b = fx_now_ms() - since_b;
        if (p[2].revents) {
            ssize_t n = recv(stream, buf, sizeof buf, 0);
            if (n <= 0)
                wx_fail_with_log(w, "the stream was closed after %lld ms",
                                 (long long)(fx_now_ms() - since_a));
            last_event = fx_now_ms() - since_a;
        }
    }
    ck_assert_msg(closed_a >= IDLE_TIMEOUT_MS - 1000 && closed_a <= IDLE_TIMEOUT_MS + 3000,
                  "A (silent) closed after %lld ms, want about %d", (long long)closed_a,
                  IDLE_TIMEOUT_MS);
    ck_assert_msg(closed_b >= IDLE_TIMEOUT_MS - 1000 && closed_b <= IDLE_TIMEOUT_MS + 3000,
                  "B (idle keep-alive) closed after %lld ms, want about %d", (long long)closed_b,
                  IDLE_TIMEOUT_MS);
    ck_assert_msg(last_event >= IDLE_TIMEOUT_MS + 3000, "the stream's last event came %lld ms in",
                  (long long)last_event);
    ck_assert_msg(stream_event(stream, 3000) == 1, "the stream stopped");
    close(conn_a);
    close(conn_b);
    close(stream);
    expect_healthy();
    auction_still_runs("hst-idle");
    wx_stop_exchange(w);
}
END_TEST

/* ---- suite ---------------------------------------------------------------------- */

static Suite *hostile_suite(void) {
    Suite *s = suite_create("hostile");
    wx_add_case(s, "host", foreign_host_is_refused, 60, setup, teardown);
    wx_add_case(s, "headers", big_headers_are_refused, 60, setup, teardown);
    wx_add_case(s, "body", bodies_are_refused, 60, setup, teardown);
    wx_add_case(s, "cap", connection_cap_closes_the_idlest, 60, setup, teardown);
    wx_add_case(s, "idle", idle_connections_are_closed_streams_are_not, 90, setup, teardown);
    return s;
}

int main(void) {
    return fx_run_suite(hostile_suite());
}

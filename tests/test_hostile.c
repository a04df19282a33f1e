/* test_hostile.c -- integration suite for the bounds of SPEC 15: hostile
 * bidders, publishers, notice hosts and admin clients against a live
 * exchange.
 *
 * Each test starts an exchange world (tests/world.h) with admin.listen on a
 * free port and one fast advertiser, adv-1, then plays someone the exchange
 * must hold off:
 *   - bidders (rtb-bidder's hostile keys, docs/rtb-bidder.md): 20 KiB of
 *     answer headers, a body trickled one byte per 50 ms, a 10 KiB adid, a
 *     javascript: iurl;
 *   - notice hosts: one that accepts connections and never answers (a raw
 *     listening socket here), and a nurl naming another host than the
 *     bidder's endpoint (localhost for 127.0.0.1: the same machine, another
 *     name), refused unless the bidder's notice_hosts lists it;
 *   - publishers: requests of the maximum size (64 KiB, 64 interests of 64
 *     characters) at a steady rate against advertisers with 64 long
 *     interests each, while normal auctions run;
 *   - admin clients: a foreign Host (a page reached by DNS rebinding), 20 KiB
 *     of headers, request bodies on routes that take none, 300 connections
 *     held open and idle, and connections left silent for longer than the
 *     idle timeout. Raw sockets, since the fixture's fx_http sends one
 *     well-formed request.
 *
 * The one idea: every case checks three things -- what the hostile party
 * got (a bid refused as a bidder error, a notice not sent, a status, its
 * connection closed), that the exchange counted it on /metrics (as deltas),
 * and that nothing else was harmed: other auctions get their results on
 * time (within tmax + 30 ms of the publish), /healthz answers, and an
 * auction published at the end gets its result. Each would fail with its
 * protection removed: the bid would win, the notice would go out, the
 * queue would grow. Every test ends with the exchange's clean exit. All
 * traffic stays on 127.0.0.1 (localhost resolves there through
 * /etc/hosts). */
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

#define HTTP_WAIT_MS 2000      /* one admin request; the loop answers at once */
#define MAX_CONNECTIONS 256    /* RTB_ADMIN_MAX_CONNECTIONS */
#define IDLE_TIMEOUT_MS 30000  /* RTB_ADMIN_IDLE_TIMEOUT_S */
#define HOLD 300               /* idle connections the cap test opens */
#define ON_TIME_MS 30          /* a result within tmax + this of its publish */
#define NOTICE_TIMEOUT_MS 5000 /* rtb/notice.c NOTICE_TIMEOUT_S */
#define MAX_STRING_BYTES 2048  /* PROTO_BID_STRING_MAX_BYTES */
#define MAX_INTERESTS 64       /* PROTO_INTERESTS_MAX, PROTO_INTEREST_MAX_CHARS */

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
    wx_start_adv1_world(w, name, "hostile", extra);
}

/* Other auctions are unharmed: one published now gets its result, won by adv-1. */
static void auction_still_runs(const char *id) {
    wx_expect_adv1_wins(w, id, "hostile");
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
    return wx_admin_connect(w);
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

/* ---- hostile bidders (SPEC 15: from bidders) --------------------------------- */

/* One advertiser of a bidder world: its rtb-bidder SPEC, its interests (raw
 * JSON) and more members for its config entry ("" or e.g.
 * "\"notice_hosts\":[\"localhost\"]"). */
typedef struct hadv {
    const char *id, *spec, *interests, *more;
} hadv;

static int adv1_port; /* adv-1's, in a bidder world */

/* adv-1 (fixed 2.00, tagged "hostile" as in start_hostile_world, and
 * "mix", for auctions it shares with a hostile bidder) and the
 * advertisers `a` in one rtb-bidder, all config bidders; ports[i] gets
 * a[i]'s port. Then the exchange, with an admin port and `extra`. */
static void start_bidder_world(const char *name, const hadv *a, int n, int *ports,
                               const char *extra) {
    const char *specs[16] = {"id=adv-1,price=fixed:2"};
    int port[16];
    ck_assert_int_lt(n, 16);
    for (int i = 0; i < n; i++)
        specs[i + 1] = a[i].spec;
    fx_spawn_bidder(w->env, specs, n + 1, port);
    static char bidders[8192];
    bidders[0] = '\0';
    wx_add_config_bidder(bidders, sizeof bidders, "adv-1", port[0], "[\"hostile\",\"mix\"]");
    adv1_port = port[0];
    for (int i = 0; i < n; i++) {
        size_t used = strlen(bidders);
        snprintf(bidders + used, sizeof bidders - used,
                 ",{\"id\":\"%s\",\"endpoint\":\"http://127.0.0.1:%d/bid\",\"interests\":%s%s%s}",
                 a[i].id, port[i + 1], a[i].interests, a[i].more[0] ? "," : "", a[i].more);
        ports[i] = port[i + 1];
    }
    ck_assert_uint_lt(strlen(bidders), sizeof bidders - 1);
    wx_opts o = {
        .tmax_ms = 100, .bidders = bidders, .admin_port = fx_free_port(), .extra_json = extra};
    wx_start_exchange(w, name, &o);
}

/* Publishes request `id` for `tag` and waits for its result, which must come
 * on time: within tmax + ON_TIME_MS of the publish (SPEC 4's promise is
 * tmax + 5 ms at p99; this is generous). */
static cJSON *timed_auction(const char *id, const char *tag) {
    int64_t received = 0, sent = wx_publish_tagged(w, id, 1.0, tag);
    cJSON *r = wx_wait_result_ex(w, id, WX_RESULT_WAIT_MS, &received);
    if (received - sent > w->tmax_ms + ON_TIME_MS)
        wx_fail_with_log(w, "result for %s %lld ms after the publish, tmax is %d", id,
                         (long long)(received - sent), w->tmax_ms);
    return r;
}

static double bidder_errors(const char *id) {
    char series[128];
    snprintf(series, sizeof series, "rtb_bidder_errors_total{bidder=\"%s\"}", id);
    return metric(series);
}

/* A counter of rtb-bidder's GET /stats for the advertiser on `port`. */
static int bidder_stat(int port, const char *key) {
    cJSON *st = wx_bidder_get(port, "/stats");
    double v = wx_jnum(st, key);
    cJSON_Delete(st);
    ck_assert_msg(!isnan(v), "GET /stats has no %s", key);
    return (int)v;
}

/* Polls bidder_stat until it is `want`; fails after within_ms. */
static void await_bidder_stat(int port, const char *key, int want, int within_ms) {
    int got = bidder_stat(port, key);
    for (int64_t end = fx_now_ms() + within_ms; got != want && fx_now_ms() < end;) {
        fx_sleep_ms(20);
        got = bidder_stat(port, key);
    }
    if (got != want) wx_fail_with_log(w, "bidder port %d: %s is %d, want %d", port, key, got, want);
}

/* 1 when exchange.log has a line holding both `a` and `b`. */
static int log_has(const char *a, const char *b) {
    char *log = fx_read_file(w->env, "exchange.log", NULL);
    ck_assert_ptr_nonnull(log);
    int found = 0;
    for (char *line = log; line && !found; line = strchr(line, '\n')) {
        line += line[0] == '\n';
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        found = strstr(line, a) && strstr(line, b);
        if (end) *end = '\n';
    }
    free(log);
    return found;
}

START_TEST(big_answer_headers_are_a_bidder_error) {
    /* fat: 20 KiB of headers; lean: 6 KiB, under the 8 KiB limit. */
    const hadv a[] = {
        {"fat", "id=fat,price=fixed:3,header_pad=20480", "[\"fat\",\"mix\"]", ""},
        {"lean", "id=lean,price=fixed:2.5,header_pad=6144", "[\"lean\"]", ""},
    };
    int port[2];
    start_bidder_world("hostile-answer-headers", a, 2, port, NULL);
    double errors0 = bidder_errors("fat");

    cJSON *r = timed_auction("hh-fat", "fat");
    wx_expect_result(r, "no_bid", 0, 1, 0, 1); /* answered, and refused */
    cJSON_Delete(r);
    for (int i = 0; i < 2; i++) {
        char id[32];
        snprintf(id, sizeof id, "hh-mix-%d", i);
        r = timed_auction(id, "mix"); /* fat offers more, adv-1 wins */
        wx_expect_result(r, "success", 1, 2, 0, 1);
        wx_expect_winner(r, "adv-1", 2.0, 1.0);
        cJSON_Delete(r);
    }
    /* 6 KiB of headers are fine: the limit is the bidder's 8 KiB. */
    r = timed_auction("hh-lean", "lean");
    wx_expect_result(r, "success", 1, 1, 0, 0);
    wx_expect_winner(r, "lean", 2.5, 1.0);
    cJSON_Delete(r);

    ck_assert_msg(bidder_errors("fat") - errors0 == 3,
                  "rtb_bidder_errors_total{bidder=\"fat\"} grew by %.0f, want 3",
                  bidder_errors("fat") - errors0);
    ck_assert_msg(log_has("bidder fat:", "headers over 8192 bytes"),
                  "exchange.log does not say why fat's answers were refused");
    expect_healthy();
    auction_still_runs("hh-after");
    wx_stop_exchange(w);
}
END_TEST

START_TEST(trickled_body_is_cut_at_the_deadline) {
    /* drip: a bid of about 300 bytes at one byte per 50 ms, i.e. 15 s. */
    const hadv a[] = {{"drip", "id=drip,price=fixed:3,trickle=50", "[\"drip\",\"mix\"]", ""}};
    int port[1];
    start_bidder_world("hostile-trickle", a, 1, port, NULL);

    cJSON *r = timed_auction("tr-drip", "drip");
    wx_expect_result(r, "timeout", 0, 1, 1, 0);
    ck_assert_msg(wx_jnum(r, "latency_ms") >= w->tmax_ms - 2,
                  "closed before the deadline: latency_ms %.3f", wx_jnum(r, "latency_ms"));
    cJSON_Delete(r);
    r = timed_auction("tr-mix", "mix");
    wx_expect_result(r, "success", 1, 2, 1, 0);
    wx_expect_winner(r, "adv-1", 2.0, 1.0);
    cJSON_Delete(r);

    /* Three trickles at once, and auctions of adv-1 alone meanwhile: those
     * close as soon as adv-1 answers, not at anybody's deadline. */
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "tr-many-%d", i);
        wx_publish_tagged(w, id, 1.0, "drip");
    }
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "tr-other-%d", i);
        r = timed_auction(id, "hostile");
        wx_expect_result(r, "success", 1, 1, 0, 0);
        ck_assert_msg(wx_jnum(r, "latency_ms") < w->tmax_ms / 2,
                      "%s waited %.1f ms beside the trickles", id, wx_jnum(r, "latency_ms"));
        cJSON_Delete(r);
    }
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "tr-many-%d", i);
        r = wx_wait_result(w, id);
        wx_expect_result(r, "timeout", 0, 1, 1, 0);
        ck_assert_msg(wx_jnum(r, "latency_ms") <= w->tmax_ms + 30, "%s: latency_ms %.1f", id,
                      wx_jnum(r, "latency_ms"));
        cJSON_Delete(r);
    }
    /* The exchange hung up on every trickle at its deadline: the bidder
     * dropped all five answers, none is still going out. */
    await_bidder_stat(port[0], "dropped", 5, 3000);
    ck_assert_int_eq(bidder_stat(port[0], "pending"), 0);
    ck_assert_int_eq(bidder_stat(port[0], "bids"), 0);
    expect_healthy();
    auction_still_runs("tr-after");
    wx_stop_exchange(w);
}
END_TEST

START_TEST(long_strings_and_script_urls_are_refused) {
    const hadv a[] = {
        {"longad", "id=longad,price=fixed:3,adid_bytes=10240", "[\"longad\",\"mix\"]", ""},
        {"script", "id=script,price=fixed:3,creative=javascript:alert(1)", "[\"script\",\"mix\"]",
         ""},
        {"edge", "id=edge,price=fixed:2.5,adid_bytes=2048", "[\"edge\"]", ""},
    };
    int port[3];
    start_bidder_world("hostile-strings", a, 3, port, NULL);
    double long0 = bidder_errors("longad"), script0 = bidder_errors("script");

    cJSON *r = timed_auction("st-long", "longad");
    wx_expect_result(r, "no_bid", 0, 1, 0, 1);
    cJSON_Delete(r);
    r = timed_auction("st-script", "script");
    wx_expect_result(r, "no_bid", 0, 1, 0, 1);
    cJSON_Delete(r);
    /* Both offer 3.00 beside adv-1's 2.00: refused, they cannot win. */
    r = timed_auction("st-mix", "mix");
    wx_expect_result(r, "success", 1, 3, 0, 2);
    wx_expect_winner(r, "adv-1", 2.0, 1.0);
    cJSON_Delete(r);

    /* 2048 bytes is the bound itself: taken, and published whole. */
    r = timed_auction("st-edge", "edge");
    wx_expect_result(r, "success", 1, 1, 0, 0);
    const char *ad_id = wx_jstr(wx_jget(r, "winner"), "ad_id");
    ck_assert_msg(ad_id && strlen(ad_id) == MAX_STRING_BYTES && wx_starts_with(ad_id, "ad_edge_"),
                  "ad_id of %zu bytes", ad_id ? strlen(ad_id) : 0);
    cJSON_Delete(r);

    ck_assert_int_eq((int)(bidder_errors("longad") - long0), 2);
    ck_assert_int_eq((int)(bidder_errors("script") - script0), 2);
    ck_assert_msg(log_has("bidder longad: bad_field:", "adid: over 2048 bytes"),
                  "exchange.log does not say why longad's bids were refused");
    ck_assert_msg(log_has("bidder script: bad_field:", "iurl: not an http(s) URL"),
                  "exchange.log does not say why script's bids were refused");
    /* Refused bids get no notices: nobody told them they won or lost. */
    ck_assert_int_eq(bidder_stat(port[0], "wins") + bidder_stat(port[0], "losses"), 0);
    ck_assert_int_eq(bidder_stat(port[1], "wins") + bidder_stat(port[1], "losses"), 0);
    expect_healthy();
    auction_still_runs("st-after");
    wx_stop_exchange(w);
}
END_TEST

/* ---- notice hosts (SPEC 9, 15) --------------------------------------------------- */

/* A TCP port on 127.0.0.1 that takes connections and never answers: the
 * kernel completes the handshake into the listen backlog and keeps what
 * the client sends; nobody ever accepts or reads. Returns the socket. */
static int silent_listener(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 64), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

START_TEST(silent_notice_host_is_bounded) {
    int hole_port, hole = silent_listener(&hole_port);
    char spec[128];
    snprintf(spec, sizeof spec, "id=deaf,price=fixed:2,nurl=http://127.0.0.1:%d", hole_port);
    const hadv a[] = {{"deaf", spec, "[\"deaf\"]", ""}};
    int port[1];
    /* Two bidders: each may have 4 of the 8 notices out at once. */
    start_bidder_world("hostile-silent-notices", a, 1, port,
                       "\"limits\":{\"max_pending_notices\":8}");
    double dropped0 = metric("rtb_notices_dropped_total");
    double failed0 = metric("rtb_notices_failed_total{kind=\"win\"}");

    /* 12 wins for deaf: their notices go to the silent host. The auctions
     * do not wait for them. */
    for (int i = 0; i < 12; i++) {
        char id[32];
        snprintf(id, sizeof id, "sn-deaf-%d", i);
        cJSON *r = timed_auction(id, "deaf");
        wx_expect_result(r, "success", 1, 1, 0, 0);
        wx_expect_winner(r, "deaf", 2.0, 1.0);
        ck_assert_msg(wx_jnum(r, "latency_ms") < w->tmax_ms / 2, "%s: latency_ms %.1f", id,
                      wx_jnum(r, "latency_ms"));
        cJSON_Delete(r);
    }
    /* deaf's share is out, the rest dropped at once; adv-1's notices still
     * go through while deaf's hang. */
    double pending = metric("rtb_notices_pending");
    ck_assert_msg(pending == 4, "rtb_notices_pending %.0f, want deaf's share 4", pending);
    double dropped = metric("rtb_notices_dropped_total") - dropped0;
    ck_assert_msg(dropped == 8, "rtb_notices_dropped_total grew by %.0f, want 8", dropped);
    int64_t hung_at = fx_now_ms();
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "sn-adv1-%d", i);
        cJSON *r = timed_auction(id, "hostile");
        wx_expect_result(r, "success", 1, 1, 0, 0);
        cJSON_Delete(r);
    }
    await_bidder_stat(adv1_port, "wins", 3, 3000);
    ck_assert_msg(fx_now_ms() - hung_at < NOTICE_TIMEOUT_MS,
                  "adv-1's notices went out only after deaf's timed out");

    /* After the notice timeout (5 s) the hung notices fail, counted, and
     * nothing is left out. */
    wx_await_metric(w, "rtb_notices_pending", 0, NOTICE_TIMEOUT_MS + 5000);
    double failed = metric("rtb_notices_failed_total{kind=\"win\"}") - failed0;
    ck_assert_msg(failed == 4, "rtb_notices_failed_total{kind=\"win\"} grew by %.0f, want 4",
                  failed);
    close(hole);
    expect_healthy();
    auction_still_runs("sn-after");
    wx_stop_exchange(w);
}
END_TEST

START_TEST(notice_on_another_host_is_refused_unless_listed) {
    /* Endpoints are http://127.0.0.1:PORT/bid; the nurls name localhost:
     * the same machine under another name. */
    int p_away = fx_free_port(), p_listed = fx_free_port();
    char away[128], listed[128];
    snprintf(away, sizeof away, "id=away,port=%d,price=fixed:2,nurl=http://localhost:%d", p_away,
             p_away);
    snprintf(listed, sizeof listed, "id=listed,port=%d,price=fixed:2,nurl=http://localhost:%d",
             p_listed, p_listed);
    const hadv a[] = {
        {"away", away, "[\"away\"]", ""},
        {"listed", listed, "[\"listed\"]", "\"notice_hosts\":[\"localhost\"]"},
    };
    int port[2];
    start_bidder_world("hostile-notice-host", a, 2, port, NULL);
    double refused0 = metric("rtb_notices_refused_host_total");

    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "nh-away-%d", i);
        cJSON *r = timed_auction(id, "away");
        wx_expect_result(r, "success", 1, 1, 0, 0);
        wx_expect_winner(r, "away", 2.0, 1.0);
        cJSON_Delete(r);
    }
    wx_await_metric(w, "rtb_notices_refused_host_total", refused0 + 3, 2000);
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "nh-listed-%d", i);
        cJSON *r = timed_auction(id, "listed");
        wx_expect_result(r, "success", 1, 1, 0, 0);
        wx_expect_winner(r, "listed", 2.0, 1.0);
        cJSON_Delete(r);
    }
    /* listed's notices went out (localhost resolved without blocking the
     * loop, evdns and /etc/hosts); away's never did. */
    await_bidder_stat(port[1], "wins", 3, 3000);
    cJSON *st = wx_bidder_get(port[1], "/stats");
    char *text = cJSON_PrintUnformatted(wx_jget(st, "notices"));
    ck_assert_msg(strstr(text, "/win?id=nh-listed-0&price=1") != NULL, "listed got %s", text);
    cJSON_free(text);
    cJSON_Delete(st);
    ck_assert_int_eq(bidder_stat(port[0], "wins"), 0);
    ck_assert_int_eq(bidder_stat(port[0], "notices_failed"), 0);
    ck_assert_int_eq((int)(metric("rtb_notices_refused_host_total") - refused0), 3);
    expect_healthy();
    auction_still_runs("nh-after");
    wx_stop_exchange(w);
}
END_TEST

/* ---- hostile publishers (SPEC 15: from publishers) ----------------------------- */

#define DECOYS 30      /* advertisers with 64 long interests that match nobody */
#define BIG_RATE_MS 50 /* one maximum-size request every 50 ms: 20/s */
#define BIG_COUNT 60

/* An interest of exactly 64 characters: `tag` padded with '-'. */
static void long_interest(char out[MAX_INTERESTS + 1], const char *tag) {
    memset(out, '-', MAX_INTERESTS);
    memcpy(out, tag, strlen(tag));
    out[MAX_INTERESTS] = '\0';
}

/* A JSON array of `n` long interests "prefix-K---...", K from 0. */
static void long_interests(char *out, size_t len, const char *prefix, int n) {
    size_t at = (size_t)snprintf(out, len, "[");
    for (int i = 0; i < n; i++) {
        char tag[32], s[MAX_INTERESTS + 1];
        snprintf(tag, sizeof tag, "%s-%02d", prefix, i);
        long_interest(s, tag);
        at += (size_t)snprintf(out + at, len - at, "%s\"%s\"", i ? "," : "", s);
    }
    snprintf(out + at, len - at, "]");
}

/* A bid request of exactly `size` bytes: `ninterests` interests of 64
 * characters in user_context (ctx-00.., so the last of "wide"'s matches
 * with 64 of them) and a filler string after them. malloc'd. */
static char *big_request(const char *id, int ninterests, size_t size) {
    char *buf = malloc(size + 1), interests[8192];
    ck_assert_ptr_nonnull(buf);
    long_interests(interests, sizeof interests, "ctx", ninterests);
    int head = snprintf(buf, size + 1,
                        "{\"request_id\":\"%s\",\"user_id\":\"u-big\",\"ad_slot_id\":\"slot-1\","
                        "\"floor_price\":1.0,\"user_context\":{\"interests\":%s,\"pad\":\"",
                        id, interests);
    ck_assert_msg(head > 0 && (size_t)head + 3 < size, "request %s does not fit", id);
    memset(buf + head, 'x', size - (size_t)head - 3);
    memcpy(buf + size - 3, "\"}}", 4);
    ck_assert_uint_eq(strlen(buf), size);
    return buf;
}

/* One result of the steady-rate test: 0 when on time (success, won by
 * `winner` at `bid` over the floor of 1.00, latency_ms within tmax + 5, and `took_ms` -- publish to
 * result; 0: not measured -- within tmax + ON_TIME_MS), 1 when late. Fails when it is not an
 * auction's result at all or is far too late. */
static int on_time(const cJSON *r, const char *id, const char *winner, double bid,
                   int64_t took_ms) {
    const char *status = wx_or_empty(wx_jstr(r, "status"));
    double latency = wx_jnum(r, "latency_ms");
    if (strcmp(status, "success") != 0 && strcmp(status, "timeout") != 0)
        wx_fail_with_log(w, "%s: status %s", id, status);
    if (latency > w->tmax_ms + 100 || took_ms > w->tmax_ms + 500)
        wx_fail_with_log(w, "%s: latency_ms %.1f, %lld ms after the publish", id, latency,
                         (long long)took_ms);
    if (strcmp(status, "success") == 0) wx_expect_winner(r, winner, bid, 1.0);
    return strcmp(status, "success") != 0 || latency > w->tmax_ms + 5 ||
           took_ms > w->tmax_ms + ON_TIME_MS;
}

START_TEST(max_size_requests_at_a_steady_rate) {
    /* wide: 64 interests of 64 characters, its last one the request's 64th;
     * DECOYS config advertisers of 64 such interests that match nobody (never
     * called: their endpoint is the discard port). */
    static char wide[8192], bidders[DECOYS * 5000];
    long_interests(wide, sizeof wide, "wide", MAX_INTERESTS);
    char last[MAX_INTERESTS + 8];
    long_interest(last, "ctx-63");
    snprintf(strrchr(wide, ',') + 1, sizeof wide - (size_t)(strrchr(wide, ',') + 1 - wide),
             "\"%s\"]", last);
    const char *specs[] = {"id=adv-1,price=fixed:2", "id=wide,price=fixed:3"};
    int port[2];
    fx_spawn_bidder(w->env, specs, 2, port);
    bidders[0] = '\0';
    wx_add_config_bidder(bidders, sizeof bidders, "adv-1", port[0], "[\"hostile\"]");
    wx_add_config_bidder(bidders, sizeof bidders, "wide", port[1], wide);
    for (int d = 0; d < DECOYS; d++) {
        char id[32], decoy[8192];
        snprintf(id, sizeof id, "decoy-%d", d);
        long_interests(decoy, sizeof decoy, id, MAX_INTERESTS);
        size_t used = strlen(bidders);
        snprintf(bidders + used, sizeof bidders - used,
                 ",{\"id\":\"%s\",\"endpoint\":\"http://127.0.0.1:9/bid\",\"interests\":%s}", id,
                 decoy);
    }
    ck_assert_uint_lt(strlen(bidders), sizeof bidders - 1);
    wx_opts o = {.tmax_ms = 100, .bidders = bidders, .admin_port = fx_free_port()};
    wx_start_exchange(w, "hostile-max-size", &o);

    /* The bounds: a byte over the size, or a 65th interest, is refused. */
    char *over = big_request("mx-over", MAX_INTERESTS, WX_MAX_REQUEST_BYTES + 1);
    wx_publish_raw(w, WX_REQUEST_TOPIC, over, strlen(over));
    free(over);
    fx_msg *m = fx_sub_next(w->errors, WX_RESULT_WAIT_MS);
    if (!m) wx_fail_with_log(w, "a request of %d bytes was not refused", WX_MAX_REQUEST_BYTES + 1);
    cJSON *e = fx_msg_json(m);
    ck_assert_msg(strcmp(wx_or_empty(wx_jstr(e, "status")), "invalid") == 0 &&
                      strstr(wx_or_empty(wx_jstr(e, "error")), "over 65536 bytes"),
                  "over the size: %.300s", m->payload);
    cJSON_Delete(e);
    fx_msg_free(m);
    char *many = big_request("mx-65", MAX_INTERESTS + 1, 16384);
    wx_publish_raw(w, WX_REQUEST_TOPIC, many, strlen(many));
    free(many);
    cJSON *r = wx_wait_result(w, "mx-65");
    wx_expect_result(r, "invalid", 0, 0, 0, 0);
    ck_assert_ptr_nonnull(strstr(wx_or_empty(wx_jstr(r, "error")), "interests"));
    cJSON_Delete(r);

    /* 20 maximum-size requests a second for 3 s, each with an auction of
     * adv-1 right behind it: every one answered on time. On time: the
     * exchange's own latency_ms within tmax + 5 ms (SPEC 4) and, for adv-1's
     * auctions, the result within tmax + ON_TIME_MS of the publish, each
     * won by its bidder (who answers at once). The machine is shared with
     * other suites (and ASan slows everything), so 5 % may miss that by a
     * stall of the broker, the test or the bidder, but never by much: no
     * result later than tmax + 100 ms by the exchange's measure. */
    int64_t start = fx_now_ms();
    int late = 0;
    for (int i = 0; i < BIG_COUNT; i++) {
        char id[32];
        snprintf(id, sizeof id, "mx-big-%d", i);
        char *big = big_request(id, MAX_INTERESTS, WX_MAX_REQUEST_BYTES);
        ck_assert_int_ge(fx_mqtt_publish_nowait(w->pub, WX_REQUEST_TOPIC, big, strlen(big), 1), 0);
        free(big);
        snprintf(id, sizeof id, "mx-normal-%d", i);
        int64_t received = 0, sent = wx_publish_tagged(w, id, 1.0, "hostile");
        r = wx_wait_result_ex(w, id, WX_RESULT_WAIT_MS, &received);
        late += on_time(r, id, "adv-1", 2.0, received - sent);
        cJSON_Delete(r);
        int64_t next = start + (int64_t)(i + 1) * BIG_RATE_MS, now = fx_now_ms();
        if (next > now) fx_sleep_ms((int)(next - now));
    }
    for (int i = 0; i < BIG_COUNT; i++) {
        char id[32];
        snprintf(id, sizeof id, "mx-big-%d", i);
        r = wx_wait_result(w, id);
        late += on_time(r, id, "wide", 3.0, 0); /* wide only: no decoy matched */
        cJSON_Delete(r);
    }
    ck_assert_msg(late <= 2 * BIG_COUNT / 20, "%d of %d auctions late or lost", late,
                  2 * BIG_COUNT);
    ck_assert_int_eq(wx_bidder_requests(port[1]), BIG_COUNT);
    expect_healthy();
    auction_still_runs("mx-after");
    wx_stop_exchange(w);
}
END_TEST

/* A request on a topic whose last level is 5000 bytes long: its error
 * report (and the result log's entry) repeat at most 256 bytes of the topic. */
START_TEST(long_topic_is_cut_in_reports) {
    start_hostile_world("hostile-topic", NULL);
    char topic[5100];
    int n = snprintf(topic, sizeof topic, "rtb/requests/");
    memset(topic + n, 'x', 5000);
    topic[n + 5000] = '\0';
    wx_publish_raw(w, topic, "not json", 8);
    fx_msg *m = fx_sub_wait_for(w->errors, "auction:errors", WX_RESULT_WAIT_MS);
    ck_assert_msg(m != NULL, "no report on auction:errors");
    cJSON *r = fx_msg_json(m);
    const char *t = wx_jstr(r, "topic");
    ck_assert_msg(t && strlen(t) == 256 && strncmp(t, topic, 256) == 0,
                  "the report's topic is %zu bytes, want its first 256", t ? strlen(t) : 0);
    cJSON_Delete(r);
    fx_msg_free(m);
    /* The XADD follows the PUBLISH in the same write: poll for it. */
    int found = 0;
    for (int64_t until = fx_now_ms() + 2000; !found && fx_now_ms() < until; fx_sleep_ms(20)) {
        redisReply *log = fx_redis_cmd(w->env, "XREVRANGE auction:log + - COUNT 1");
        const redisReply *fields = log->type == REDIS_REPLY_ARRAY && log->elements == 1
                                       ? log->element[0]->element[1]
                                       : NULL;
        for (size_t f = 0; fields && f + 1 < fields->elements; f += 2)
            if (strcmp(fields->element[f]->str, "topic") == 0)
                found = fields->element[f + 1]->len == 256;
        freeReplyObject(log);
    }
    ck_assert_msg(found, "the result log's topic is not cut to 256 bytes");
    expect_healthy();
    auction_still_runs("tp-after");
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
    wx_add_case(s, "answer headers", big_answer_headers_are_a_bidder_error, 60, setup, teardown);
    wx_add_case(s, "trickle", trickled_body_is_cut_at_the_deadline, 60, setup, teardown);
    wx_add_case(s, "bid strings", long_strings_and_script_urls_are_refused, 60, setup, teardown);
    wx_add_case(s, "silent notice host", silent_notice_host_is_bounded, 90, setup, teardown);
    wx_add_case(s, "notice host", notice_on_another_host_is_refused_unless_listed, 60, setup,
                teardown);
    wx_add_case(s, "max-size requests", max_size_requests_at_a_steady_rate, 90, setup, teardown);
    wx_add_case(s, "long topic", long_topic_is_cut_in_reports, 60, setup, teardown);
    return s;
}

int main(void) {
    return fx_run_suite(hostile_suite());
}

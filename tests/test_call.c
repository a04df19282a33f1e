/* test_call.c -- rtb/call.c, the exchange's HTTP calls, against an evhttp
 * server of our own on the same loop (loopback, no bidder process).
 *
 * What is tested is what a caller of call.h sees: every call started is
 * answered once, with the body its server sent; the server gets every
 * request whole and in order; a kept-alive connection carries call after
 * call (call.c writes a request at once on such a connection, and leaves
 * what the socket does not take to the bufferevent); a cancelled call never
 * calls back and the pool goes on working; a detached call never calls back
 * either, but keeps its connection for the next call when its answer comes
 * within the grace, and loses it when not. Which connection a request came
 * on is the client port the server saw. Each loop run is bounded: a call
 * that never ends fails its test instead of hanging it. */
#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rtb/call.h"

#define MAX_SEEN 8

typedef struct world {
    struct event_base *base;
    struct evhttp *server;
    int port;
    rtb_http *http;
    rtb_pool *pool;
    /* what the server got, in order: body lengths, and whether each body
     * was the pattern of its length */
    size_t seen_len[MAX_SEEN];
    int seen_intact[MAX_SEEN];
    int nseen;
    ev_uint16_t last_port; /* the client port of the last request, any path */
    int waiting;           /* answers still to come before the loop stops */
} world;

/* Byte i of a request body of the pattern. */
static unsigned char pattern(size_t i) {
    return (unsigned char)('a' + (i * 7 + i / 4093) % 26);
}

static int is_pattern(struct evbuffer *b) {
    size_t len = evbuffer_get_length(b), off = 0;
    int n = evbuffer_peek(b, -1, NULL, NULL, 0);
    struct evbuffer_iovec *v = calloc((size_t)n, sizeof *v);
    ck_assert_ptr_nonnull(v);
    evbuffer_peek(b, -1, NULL, v, n);
    int ok = 1;
    for (int k = 0; k < n && ok; k++) {
        const unsigned char *p = v[k].iov_base;
        for (size_t j = 0; j < v[k].iov_len && ok; j++)
            ok = p[j] == pattern(off++);
    }
    free(v);
    return ok && off == len;
}

static void reply(struct evhttp_request *req, const char *body) {
    struct evbuffer *out = evbuffer_new();
    ck_assert_ptr_nonnull(out);
    evbuffer_add(out, body, strlen(body));
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void reply_late(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    reply(arg, "late");
}

/* The server: records the request's body, answers 200 with its length as
 * text. A request for /never is held and never answered; one for /late is
 * answered "late" 50 ms after it came. */
static void serve(struct evhttp_request *req, void *arg) {
    world *w = arg;
    char *addr;
    evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &w->last_port);
    if (strcmp(evhttp_request_get_uri(req), "/never") == 0) return;
    if (strcmp(evhttp_request_get_uri(req), "/late") == 0) {
        struct timeval tv = {0, 50000};
        ck_assert_int_eq(event_base_once(w->base, -1, EV_TIMEOUT, reply_late, req, &tv), 0);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    if (w->nseen < MAX_SEEN) {
        w->seen_len[w->nseen] = evbuffer_get_length(in);
        w->seen_intact[w->nseen] = is_pattern(in);
        w->nseen++;
    }
    char len[32];
    snprintf(len, sizeof len, "%zu", evbuffer_get_length(in));
    reply(req, len);
}

static void world_close(world *w) {
    rtb_pool_free(w->pool);
    rtb_http_free(w->http);
    evhttp_free(w->server);
    event_base_free(w->base);
}

/* What one call got, and the world whose loop its answer may stop. */
typedef struct slot {
    world *w;
    int done;
    rtb_call_status status;
    int code;
    char body[64];
} slot;

static void on_answer(void *arg, const rtb_call_result *r) {
    slot *s = arg;
    s->done++;
    s->status = r->status;
    s->code = r->code;
    snprintf(s->body, sizeof s->body, "%.*s", (int)r->len, r->body);
    if (--s->w->waiting == 0) event_base_loopbreak(s->w->base);
}

/* POST a body of `len` pattern bytes to `path`; the call must start. */
static void post(world *w, rtb_call *c, slot *s, const char *path, size_t len) {
    unsigned char *body = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(body);
    for (size_t i = 0; i < len; i++)
        body[i] = pattern(i);
    memset(s, 0, sizeof *s);
    s->w = w;
    w->waiting++;
    ck_assert_int_eq(
        rtb_call_start(c, w->pool, RTB_POST, path, "127.0.0.1", NULL, 0, body, len, on_answer, s),
        0);
    free(body); /* copied by rtb_call_start */
}

/* Runs the loop until every call out has been answered, or `ms` passed. */
static void run_for(world *w, int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(w->base, &tv);
    event_base_dispatch(w->base);
}

static void assert_answered(const slot *s, size_t len) {
    char want[32];
    snprintf(want, sizeof want, "%zu", len);
    ck_assert_int_eq(s->done, 1);
    ck_assert_int_eq(s->status, RTB_CALL_OK);
    ck_assert_int_eq(s->code, 200);
    ck_assert_str_eq(s->body, want);
}

/* The server got exactly `n` requests, whole, of the lengths `lens` in
 * order, all on the pool's one connection. */
static void assert_server_got(const world *w, int n, const size_t *lens) {
    ck_assert_int_eq(w->nseen, n);
    for (int i = 0; i < n; i++) {
        ck_assert_uint_eq(w->seen_len[i], lens[i]);
        ck_assert_int_eq(w->seen_intact[i], 1);
    }
    ck_assert_uint_eq(rtb_pool_conns(w->pool), 1);
}

/* One call of `len` bytes to /bid, run to its answer (at most 10 s). The
 * first call on a pool opens its connection, which later calls reuse. */
static void call_answered(world *w, rtb_call *c, slot *s, size_t len) {
    post(w, c, s, "/bid", len);
    run_for(w, 10000);
    assert_answered(s, len);
}

static void world_open(world *w, size_t max_conns, int queue) {
    memset(w, 0, sizeof *w);
    w->base = event_base_new();
    ck_assert_ptr_nonnull(w->base);
    w->server = evhttp_new(w->base);
    ck_assert_ptr_nonnull(w->server);
    evhttp_set_gencb(w->server, serve, w);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(w->server, "127.0.0.1", 0);
    ck_assert_ptr_nonnull(bound);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    ck_assert_int_eq(getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sa, &len),
                     0);
    w->port = ntohs(sa.sin_port);
    char err[128];
    w->http = rtb_http_new(w->base, err, sizeof err);
    ck_assert_msg(w->http != NULL, "%s", err);
    rtb_pool_opts o = {.max_conns = max_conns, .queue = queue, .max_body_bytes = 1024};
    w->pool = rtb_pool_new(w->http, "127.0.0.1", w->port, &o);
    ck_assert_ptr_nonnull(w->pool);
    /* Every test starts on a kept-alive connection: one call of 1 byte. */
    rtb_call first;
    slot answer;
    call_answered(w, &first, &answer, 1);
}

/* Call after call on one kept-alive connection: each request arrives whole
 * and each answer comes back to its own call. */
START_TEST(kept_alive_connection_carries_each_call) {
    world w;
    world_open(&w, 1, 0);
    rtb_call c;
    slot s;
    for (size_t i = 0; i < 5; i++) {
        call_answered(&w, &c, &s, 100 + i);
        ck_assert_int_eq(rtb_call_pending(&c), 0);
        ck_assert_uint_eq(rtb_pool_busy(w.pool), 0);
    }
    assert_server_got(&w, 6, (const size_t[]){1, 100, 101, 102, 103, 104});
    ck_assert_uint_eq(rtb_pool_connects(w.pool), 1);
    world_close(&w);
}
END_TEST

/* A request far larger than the socket takes in one write (16 MB): the rest goes out as the server
 * reads, and the server gets every byte before the answer comes. */
START_TEST(request_larger_than_the_socket_takes_arrives_whole) {
    world w;
    world_open(&w, 1, 0);
    rtb_call c;
    slot s;

    const size_t big = (size_t)16 << 20;
    post(&w, &c, &s, "/bid", big);
    run_for(&w, 20000);
    assert_answered(&s, big);
    assert_server_got(&w, 2, (const size_t[]){1, big});
    world_close(&w);
}
END_TEST

/* A queueing pool of one connection: a call started while another is out
 * goes out after it; both are answered, in order. */
START_TEST(queued_call_follows_the_one_before) {
    world w;
    world_open(&w, 1, 1);
    rtb_call c1, c2;
    slot s1, s2;

    post(&w, &c1, &s1, "/bid", 300);
    post(&w, &c2, &s2, "/bid", 400);
    ck_assert_uint_eq(rtb_pool_busy(w.pool), 2);
    run_for(&w, 10000);
    assert_answered(&s1, 300);
    assert_answered(&s2, 400);
    assert_server_got(&w, 3, (const size_t[]){1, 300, 400});
    world_close(&w);
}
END_TEST

/* Start a call to `path` and run the loop until the server has it; return
 * the client port it came from. */
static ev_uint16_t sent(world *w, rtb_call *c, slot *s, const char *path) {
    w->last_port = 0;
    post(w, c, s, path, 5);
    for (int i = 0; i < 100 && !w->last_port; i++)
        run_for(w, 10);
    ck_assert_int_ne(w->last_port, 0);
    ck_assert_int_eq(rtb_call_pending(c), 1);
    return w->last_port;
}

/* A world (world_open's) with one call to `path` out, the server holding
 * it; returns the client port it came from. */
static ev_uint16_t open_with_one_out(world *w, size_t max_conns, int queue, rtb_call *c, slot *s,
                                     const char *path) {
    world_open(w, max_conns, queue);
    return sent(w, c, s, path);
}

/* Let a call go as the exchange does at an auction's deadline, with
 * `grace_us` (< 0: cancel it instead); the pool then has `busy` calls out
 * (1: it is still out on its connection). */
static void let_go(world *w, rtb_call *c, int64_t grace_us, size_t busy) {
    if (grace_us < 0)
        rtb_call_cancel(c);
    else
        rtb_call_detach(c, grace_us);
    w->waiting--; /* its callback never runs */
    ck_assert_int_eq(rtb_call_pending(c), 0);
    ck_assert_uint_eq(rtb_pool_busy(w->pool), busy);
}

/* The end of a test of a call let go (or cancelled) as `s`, first sent
 * from client port `port`: the next call on the pool is answered, on the
 * same connection or on a new one (`same`), the pool has opened `connects`
 * connections in all, and `s` never got an answer. Closes the world. */
static void next_call_then_close(world *w, rtb_call *c, const slot *s, ev_uint16_t port, int same,
                                 size_t connects) {
    slot next;
    call_answered(w, c, &next, 6);
    if (same)
        ck_assert_int_eq(w->last_port, port);
    else
        ck_assert_int_ne(w->last_port, port);
    ck_assert_uint_eq(rtb_pool_connects(w->pool), connects);
    ck_assert_int_eq(s->done, 0);
    world_close(w);
}

/* The ways a call can end without its caller, each on a pool of one
 * connection whose server holds the call (/never) or answers it 50 ms late
 * (/late). In every one the callback never runs and the pool goes on
 * working; what differs is whether the connection survives. */
static const struct {
    const char *what;
    int queue;        /* a queueing pool */
    const char *path; /* /never or /late */
    int64_t grace_us; /* let_go's; < 0: rtb_call_cancel */
    size_t busy;      /* calls out right after */
    int same;         /* the next call on the same connection */
    size_t connects;  /* connections opened in all */
} endings[] = {
    /* cancelled: evhttp resets the connection; the next call opens another */
    {"cancelled", 0, "/never", -1, 0, 0, 2},
    /* let go, answered within the grace (50 ms of 1 s): the answer is read
     * and dropped, the connection goes back to the pool */
    {"answered within its grace", 0, "/late", 1000000, 1, 1, 1},
    /* let go, no answer within the grace (50 ms): cancelled then */
    {"past its grace", 0, "/never", 50000, 1, 0, 2},
    /* a queueing pool may carry more than one request on a connection:
     * letting a call go cancels it at once */
    {"in a queueing pool", 1, "/never", 1000000, 0, 0, 2},
};

START_TEST(call_without_its_caller) {
    world w;
    rtb_call c;
    slot s;
    ev_uint16_t port = open_with_one_out(&w, 1, endings[_i].queue, &c, &s, endings[_i].path);
    let_go(&w, &c, endings[_i].grace_us, endings[_i].busy);
    run_for(&w, 200);
    ck_assert_msg(rtb_pool_busy(w.pool) == 0, "%s: still busy", endings[_i].what);
    ck_assert_uint_eq(rtb_pool_conns(w.pool), 1);
    next_call_then_close(&w, &c, &s, port, endings[_i].same, endings[_i].connects);
}
END_TEST

/* A pool retired with a call let go and still out ends that call at once
 * (nobody waits for it): freed with the pool, nothing left behind (the
 * ASan+UBSan build checks for leaks). */
START_TEST(retired_pool_ends_its_detached_calls) {
    world w;
    world_open(&w, 2, 0);
    rtb_call c1, c2;
    slot s1, s2;
    sent(&w, &c1, &s1, "/never");
    sent(&w, &c2, &s2, "/never");
    let_go(&w, &c1, 10000000, 2);
    let_go(&w, &c2, 10000000, 2);
    ck_assert_uint_eq(rtb_pool_conns(w.pool), 2);
    world_close(&w);
    ck_assert_int_eq(s1.done + s2.done, 0);
}
END_TEST

static Suite *call_suite(void) {
    Suite *s = suite_create("call");
    TCase *tc = tcase_create("loopback");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, kept_alive_connection_carries_each_call);
    tcase_add_test(tc, request_larger_than_the_socket_takes_arrives_whole);
    tcase_add_test(tc, queued_call_follows_the_one_before);
    tcase_add_loop_test(tc, call_without_its_caller, 0, (int)(sizeof endings / sizeof endings[0]));
    tcase_add_test(tc, retired_pool_ends_its_detached_calls);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* as rtb-exchange does: a write to a closed peer is an error */
    SRunner *sr = srunner_create(call_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* test_glue.c -- glue/: the backoff rule and the libmosquitto adapter.
 *
 * The backoff is pure: every test gives it exact now_us and random values
 * and checks the exact time of the next attempt. The adapter is tested with
 * the real libmosquitto and libevent on loopback, without a broker (those
 * paths run in the exchange, security and faults suites): a port where
 * nothing listens (every attempt fails), and a listener of our own that
 * accepts and hangs up. What matters here is what the adapter promises on
 * failure: it retries after the backoff, tells the user once per failure,
 * stops when detached, and may be freed inside any callback it runs (ASan
 * turns a use after free into a failure). */
#include <check.h>
#include <event2/event.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "glue/backoff.h"
#include "glue/mosq_ev.h"

#define MS 1000 /* microseconds */

/* ---- backoff -------------------------------------------------------------- */

START_TEST(backoff_doubles_up_to_max) {
    backoff b;
    backoff_init(&b, 100 * MS, 5000 * MS, 0);
    const int64_t want_ms[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
    for (size_t i = 0; i < sizeof want_ms / sizeof want_ms[0]; i++)
        ck_assert_int_eq(backoff_fail(&b, 0, 0), want_ms[i] * MS);
}
END_TEST

START_TEST(backoff_counts_from_now) {
    backoff b;
    backoff_init(&b, 100 * MS, 5000 * MS, 0);
    ck_assert_int_eq(backoff_fail(&b, 1000, 0), 101000);
    ck_assert_int_eq(backoff_fail(&b, 7000000, 0), 7200000);
    ck_assert_int_eq(backoff_fail(&b, -5000, 0), 395000);
    ck_assert_int_eq(backoff_fail(&b, INT64_C(86400000000000), 0), INT64_C(86400000800000));
}
END_TEST

START_TEST(backoff_reset_starts_over) {
    backoff b;
    backoff_init(&b, 100 * MS, 5000 * MS, 0);
    for (int i = 0; i < 10; i++)
        backoff_fail(&b, 0, 0);
    ck_assert_int_eq(backoff_fail(&b, 0, 0), 5000 * MS);
    backoff_reset(&b);
    ck_assert_int_eq(backoff_fail(&b, 0, 0), 100 * MS);
    ck_assert_int_eq(backoff_fail(&b, 0, 0), 200 * MS);
}
END_TEST

/* A max that is no power-of-two multiple of min is reached, never passed. */
START_TEST(backoff_max_between_doublings) {
    backoff b;
    backoff_init(&b, 100, 250, 0);
    ck_assert_int_eq(backoff_fail(&b, 0, 0), 100);
    ck_assert_int_eq(backoff_fail(&b, 0, 0), 200);
    ck_assert_int_eq(backoff_fail(&b, 0, 0), 250);
    ck_assert_int_eq(backoff_fail(&b, 0, 0), 250);
}
END_TEST

/* store/'s rule: up to 25 % on top, random % (delay / 4 + 1). */
START_TEST(backoff_jitter_from_random) {
    backoff b;
    backoff_init(&b, 100 * MS, 5000 * MS, 25);
    ck_assert_int_eq(backoff_fail(&b, 0, 0), 100000);
    backoff_reset(&b);
    ck_assert_int_eq(backoff_fail(&b, 0, 25000), 125000); /* the most: 25 % */
    backoff_reset(&b);
    ck_assert_int_eq(backoff_fail(&b, 0, 25001), 100000); /* wraps */
    backoff_reset(&b);
    ck_assert_int_eq(backoff_fail(&b, 10, UINT64_MAX), 100010 + 13207);
    ck_assert_int_eq(backoff_fail(&b, 0, 7), 200007); /* the delay doubled as without jitter */
    for (int i = 0; i < 10; i++)
        backoff_fail(&b, 0, 0);
    ck_assert_int_eq(backoff_fail(&b, 0, UINT64_MAX), 5000000 + 1098555);
    ck_assert_int_eq(backoff_fail(&b, 0, 1250000), 6250000);
}
END_TEST

/* Whatever the random value, the jitter stays within 0..pct % of the delay. */
START_TEST(backoff_jitter_bounds) {
    backoff b;
    backoff_init(&b, 1000, 64000, 25);
    uint64_t r = 88172645463325252u;
    for (int i = 0; i < 10000; i++) {
        if (i % 8 == 0) backoff_reset(&b);
        int64_t delay = (int64_t)1000 << (i % 8 > 6 ? 6 : i % 8);
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        int64_t at = backoff_fail(&b, 500, r);
        ck_assert_int_ge(at, 500 + delay);
        ck_assert_int_le(at, 500 + delay + delay / 4);
    }
}
END_TEST

START_TEST(backoff_without_jitter_ignores_random) {
    backoff b;
    backoff_init(&b, 100 * MS, 5000 * MS, 0);
    ck_assert_int_eq(backoff_fail(&b, 0, UINT64_MAX), 100 * MS);
    ck_assert_int_eq(backoff_fail(&b, 0, 12345), 200 * MS);
}
END_TEST

/* Out-of-range settings are clamped, not undefined. */
START_TEST(backoff_clamps_settings) {
    backoff b;
    backoff_init(&b, 0, 0, 0); /* min taken as 1, max as min */
    ck_assert_int_eq(backoff_fail(&b, 0, 0), 1);
    ck_assert_int_eq(backoff_fail(&b, 0, 0), 1);
    backoff_init(&b, 500, 100, 0); /* max below min: min */
    ck_assert_int_eq(backoff_fail(&b, 0, 0), 500);
    ck_assert_int_eq(backoff_fail(&b, 0, 0), 500);
    backoff_init(&b, 100, 100, 250); /* jitter above 100 %: 100 % */
    ck_assert_int_eq(backoff_fail(&b, 0, 100), 200);
    backoff_init(&b, INT64_MAX / 2, INT64_MAX, 100); /* max at most INT64_MAX / 4 */
    ck_assert_int_eq(backoff_fail(&b, 0, 0), INT64_MAX / 4);
    ck_assert_int_eq(backoff_fail(&b, 0, INT64_MAX / 4), INT64_MAX / 4 * 2);
}
END_TEST

/* ---- mosq_ev: the adapter, failures only ------------------------------------ */

#define MAX_DOWNS 16
#define RETRY_MIN_US (20 * MS)
#define RETRY_MAX_US (80 * MS)

typedef struct world {
    struct event_base *base;
    struct mosquitto *mosq;
    mosq_ev *ev;
    int n; /* on_down calls */
    int rc[MAX_DOWNS], was_connected[MAX_DOWNS];
    int64_t at_us[MAX_DOWNS];
    int free_at, detach_at, stop_at; /* on the n-th on_down (1-based); 0: never */
    int free_on_log;                 /* free in libmosquitto's next log callback */
    int freed_in_log;
    int listener;            /* our own TCP listener, or -1 */
    struct event *accepting; /* accepts and hangs up at once */
    int accepted;
} world;

static int64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_down(void *arg, int rc, int was_connected) {
    world *w = arg;
    if (w->n < MAX_DOWNS) {
        w->rc[w->n] = rc;
        w->was_connected[w->n] = was_connected;
        w->at_us[w->n] = mono_us();
    }
    w->n++;
    if (w->n == w->detach_at) mosq_ev_detach(w->ev);
    if (w->n == w->free_at) {
        mosq_ev_free(w->ev);
        w->ev = NULL;
    }
    if (w->n == w->stop_at) event_base_loopbreak(w->base);
}

static void on_log(struct mosquitto *mosq, void *obj, int level, const char *str) {
    (void)mosq;
    (void)level;
    (void)str;
    world *w = obj;
    if (!w->free_on_log || !w->ev) return;
    mosq_ev_free(w->ev);
    w->ev = NULL;
    w->freed_in_log = 1;
}

static void on_accept(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    world *w = arg;
    int s = accept(fd, NULL, NULL);
    if (s < 0) return;
    w->accepted++;
    close(s); /* hang up before CONNACK */
}

/* A loopback port; with `listening`, our listener is on it, else nothing. */
static int loopback_port(world *w, int listening) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(s, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sa, &len), 0);
    if (!listening) {
        close(s);
        return ntohs(sa.sin_port);
    }
    ck_assert_int_eq(listen(s, 16), 0);
    w->listener = s;
    w->accepting = event_new(w->base, s, EV_READ | EV_PERSIST, on_accept, w);
    ck_assert_ptr_nonnull(w->accepting);
    event_add(w->accepting, NULL);
    return ntohs(sa.sin_port);
}

static void world_open(world *w) {
    memset(w, 0, sizeof *w);
    w->listener = -1;
    w->base = event_base_new();
    ck_assert_ptr_nonnull(w->base);
    w->mosq = mosquitto_new(NULL, true, w);
    ck_assert_ptr_nonnull(w->mosq);
    w->ev = mosq_ev_new(w->base, w->mosq, RETRY_MIN_US, RETRY_MAX_US, on_down, w);
    ck_assert_ptr_nonnull(w->ev);
}

/* Runs the loop until on_down breaks it or `ms` pass. */
static void run_for(world *w, int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(w->base, &tv);
    event_base_dispatch(w->base);
}

/* Runs the loop until on_down has run `n` times in all (at most 10 s). */
static void wait_downs(world *w, int n) {
    w->stop_at = n;
    run_for(w, 10000);
    ck_assert_int_eq(w->n, n);
    w->stop_at = 0;
}

/* Frees the adapter inside the next on_down, then runs the loop on for a
 * second: no on_down comes after, and the adapter is gone. */
static void free_in_next_down(world *w) {
    w->free_at = w->n + 1;
    run_for(w, 1000);
    ck_assert_int_eq(w->n, w->free_at);
    ck_assert_ptr_null(w->ev);
}

static void world_close(world *w) {
    mosq_ev_free(w->ev);
    mosquitto_destroy(w->mosq);
    if (w->accepting) event_free(w->accepting);
    if (w->listener >= 0) close(w->listener);
    event_base_free(w->base);
}

/* Nothing listens: every attempt fails, each one reported, the next one
 * after the backoff (20 ms doubling to 80 ms). */
START_TEST(mosq_ev_retries_with_backoff) {
    world w;
    world_open(&w);
    int port = loopback_port(&w, 0);
    /* Refused at once (the first retry in 20 ms), or in progress (the
     * refusal comes through the socket). Either way not reported. */
    int rc = mosq_ev_connect(w.ev, "127.0.0.1", port, 10);
    ck_assert(rc == MOSQ_ERR_SUCCESS || rc == MOSQ_ERR_ERRNO);
    ck_assert_int_eq(w.n, 0);
    wait_downs(&w, 6);
    ck_assert_int_eq(mosq_ev_connected(w.ev), 0);
    int64_t delay_us = rc == MOSQ_ERR_SUCCESS ? RETRY_MIN_US : 2 * RETRY_MIN_US;
    for (int i = 0; i < 6; i++) {
        ck_assert_int_ne(w.rc[i], MOSQ_ERR_SUCCESS);
        ck_assert_int_eq(w.was_connected[i], 0);
        if (i == 0) continue;
        int64_t gap_us = w.at_us[i] - w.at_us[i - 1];
        ck_assert_msg(gap_us >= delay_us - 2 * MS, "attempt %d after %lld us, want >= %lld", i,
                      (long long)gap_us, (long long)delay_us);
        delay_us = delay_us * 2 > RETRY_MAX_US ? RETRY_MAX_US : delay_us * 2;
    }
    world_close(&w);
}
END_TEST

/* Freed inside on_down (run by the retry or a socket handler): nothing
 * more happens, and the memory goes after the handler returns. */
START_TEST(mosq_ev_free_inside_on_down) {
    world w;
    world_open(&w);
    mosq_ev_connect(w.ev, "127.0.0.1", loopback_port(&w, 0), 10);
    free_in_next_down(&w);
    world_close(&w);
}
END_TEST

/* Detached inside on_down: the scheduled retry is cancelled; connect
 * starts again. */
START_TEST(mosq_ev_detach_inside_on_down_stops_retrying) {
    world w;
    world_open(&w);
    int port = loopback_port(&w, 0);
    mosq_ev_connect(w.ev, "127.0.0.1", port, 10);
    w.detach_at = 1;
    run_for(&w, 400);
    ck_assert_int_eq(w.n, 1);
    mosq_ev_connect(w.ev, "127.0.0.1", port, 10);
    wait_downs(&w, 3);
    world_close(&w);
}
END_TEST

/* A peer that accepts and hangs up: the loss comes through the socket
 * handlers (the CONNECT was written, the read sees the close), was not a
 * connection (no CONNACK), and the adapter may be freed right there. */
START_TEST(mosq_ev_peer_hangs_up) {
    world w;
    world_open(&w);
    int port = loopback_port(&w, 1);
    ck_assert_int_eq(mosq_ev_connect(w.ev, "127.0.0.1", port, 10), MOSQ_ERR_SUCCESS);
    wait_downs(&w, 3);
    ck_assert_int_ge(w.accepted, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_ne(w.rc[i], MOSQ_ERR_SUCCESS);
        ck_assert_int_eq(w.was_connected[i], 0);
    }
    free_in_next_down(&w);
    world_close(&w);
}
END_TEST

/* Freed inside one of libmosquitto's own callbacks (its log callback, run by
 * mosquitto_reconnect_async inside the retry handler): the handler does not
 * go on with the freed adapter. */
START_TEST(mosq_ev_free_inside_libmosquitto_callback) {
    world w;
    world_open(&w);
    int port = loopback_port(&w, 1);
    mosquitto_log_callback_set(w.mosq, on_log);
    mosq_ev_connect(w.ev, "127.0.0.1", port, 10);
    wait_downs(&w, 1);
    w.free_on_log = 1; /* the retry's "sending CONNECT" */
    run_for(&w, 500);
    ck_assert_int_eq(w.freed_in_log, 1);
    ck_assert_int_eq(w.n, 1);
    world_close(&w);
}
END_TEST

/* Freeing an adapter that never connected, or NULL, is fine. */
START_TEST(mosq_ev_free_idle) {
    world w;
    world_open(&w);
    mosq_ev_free(NULL);
    ck_assert_int_eq(mosq_ev_connected(w.ev), 0);
    mosq_ev_update_write(w.ev);
    mosq_ev_detach(w.ev);
    world_close(&w);
}
END_TEST

static Suite *glue_suite(void) {
    Suite *s = suite_create("glue");
    TCase *tc = tcase_create("backoff");
    tcase_add_test(tc, backoff_doubles_up_to_max);
    tcase_add_test(tc, backoff_counts_from_now);
    tcase_add_test(tc, backoff_reset_starts_over);
    tcase_add_test(tc, backoff_max_between_doublings);
    tcase_add_test(tc, backoff_jitter_from_random);
    tcase_add_test(tc, backoff_jitter_bounds);
    tcase_add_test(tc, backoff_without_jitter_ignores_random);
    tcase_add_test(tc, backoff_clamps_settings);
    suite_add_tcase(s, tc);

    tc = tcase_create("mosq_ev");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, mosq_ev_retries_with_backoff);
    tcase_add_test(tc, mosq_ev_free_inside_on_down);
    tcase_add_test(tc, mosq_ev_detach_inside_on_down_stops_retrying);
    tcase_add_test(tc, mosq_ev_peer_hangs_up);
    tcase_add_test(tc, mosq_ev_free_inside_libmosquitto_callback);
    tcase_add_test(tc, mosq_ev_free_idle);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* a write to a hung-up peer is an error return */
    mosquitto_lib_init();
    SRunner *sr = srunner_create(glue_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    mosquitto_lib_cleanup();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

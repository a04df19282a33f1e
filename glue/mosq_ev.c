/* mosq_ev.c -- libmosquitto driven by a libevent loop: the adapter, once.
 *
 * Four events: `rev` (socket readable, persistent) and `wev` (socket
 * writable, added while mosquitto_want_write) exist while a socket is
 * watched; `misc` (200 ms, mosquitto_loop_misc) runs while one is; `retry`
 * is the reconnect timer. Any loop call that fails means the connection is
 * gone: the socket events go, `retry` is armed after the backoff, and the
 * user hears it once through on_down.
 *
 * The one idea, from hiredis's adapters/libevent.h: the user may free the
 * adapter inside a callback that one of our handlers runs (libmosquitto's
 * message or connect callback, on_down). So every handler counts itself in
 * (`depth`); mosq_ev_free inside only drops the events and marks the
 * adapter, and the handler frees it on the way out, touching nothing after.
 *
 * TLS: OpenSSL decrypts a whole record at a time while libmosquitto reads a
 * packet at a time, so bytes of the next packets can sit decrypted inside
 * OpenSSL with nothing left on the socket to wake libevent. After each read
 * we therefore keep reading while SSL_pending() says bytes wait, up to
 * TLS_DRAIN_MAX packets, then make the read event active again so the rest
 * of the loop gets its turn. (libmosquitto 2.0's loop_read does the same but
 * stops early when a stale errno says EAGAIN; we do not rely on it.) */
#include "glue/mosq_ev.h"

#include "glue/backoff.h"

#include <event2/event.h>
#include <mosquitto.h>
#include <openssl/ssl.h>

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define MISC_INTERVAL_US 200000
/* Packets read from OpenSSL's buffer in one read event before yielding. */
#define TLS_DRAIN_MAX 256

struct mosq_ev {
    struct event_base *base;
    struct mosquitto *mosq;
    struct event *rev, *wev; /* NULL while no socket is watched */
    struct event *misc, *retry;
    backoff backoff;
    int connected; /* CONNACK accepted, connection not lost since */
    int depth;     /* handlers of ours on the stack */
    int freed;     /* mosq_ev_free ran inside one: free on the way out */
    mosq_ev_down_fn *on_down;
    void *arg;
};

static int64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void unwatch(mosq_ev *e) {
    if (e->rev) event_free(e->rev);
    if (e->wev) event_free(e->wev);
    e->rev = e->wev = NULL;
    if (e->misc) event_del(e->misc);
}

static void schedule_retry(mosq_ev *e) {
    int64_t now_us = mono_us();
    int64_t wait_us = backoff_fail(&e->backoff, now_us, 0) - now_us;
    struct timeval tv = {(time_t)(wait_us / 1000000), (suseconds_t)(wait_us % 1000000)};
    evtimer_add(e->retry, &tv);
}

static void enter(mosq_ev *e) {
    e->depth++;
}

/* The end of every handler: frees the adapter when the user freed it inside. */
static void leave(mosq_ev *e) {
    if (--e->depth == 0 && e->freed) free(e);
}

/* The connection is gone (or never came): unwatch, schedule the next
 * attempt, tell the user (who may detach or free inside). */
static void down(mosq_ev *e, int rc) {
    int saved_errno = errno;
    int was_connected = e->connected;
    e->connected = 0;
    unwatch(e);
    schedule_retry(e);
    errno = saved_errno;
    e->on_down(e->arg, rc, was_connected);
}

static void update_write(mosq_ev *e) {
    if (e->wev && mosquitto_want_write(e->mosq)) event_add(e->wev, NULL);
}

/* After a loop call: a failure means the connection is gone; otherwise the
 * write interest follows libmosquitto. Nothing is touched when the user
 * detached or freed the adapter inside the call's callbacks. With
 * `write_now`, what the call queued (the PUBACK of a QoS 1 message just
 * read) is written at once: the socket is almost always writable, and
 * waiting for EV_WRITE costs two epoll_ctl and a loop turn per message. */
static void after_loop_call(mosq_ev *e, int rc, int write_now) {
    if (e->freed || !e->rev) return;
    if (rc == MOSQ_ERR_SUCCESS && write_now && e->connected && mosquitto_want_write(e->mosq))
        rc = mosquitto_loop_write(e->mosq, 1);
    if (e->freed || !e->rev) return;
    if (rc != MOSQ_ERR_SUCCESS)
        down(e, rc);
    else
        update_write(e);
}

/* 1 when OpenSSL holds decrypted bytes that libmosquitto has not read yet. */
static int tls_pending(mosq_ev *e) {
    SSL *ssl = mosquitto_ssl_get(e->mosq);
    return ssl && SSL_pending(ssl) > 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    mosq_ev *e = arg;
    enter(e);
    int rc = mosquitto_loop_read(e->mosq, 1);
    for (int i = 0; rc == MOSQ_ERR_SUCCESS && i < TLS_DRAIN_MAX && e->rev && tls_pending(e); i++)
        rc = mosquitto_loop_read(e->mosq, 1);
    /* More than TLS_DRAIN_MAX packets in OpenSSL: again on the next turn. */
    if (rc == MOSQ_ERR_SUCCESS && e->rev && tls_pending(e)) event_active(e->rev, EV_READ, 0);
    after_loop_call(e, rc, 1);
    leave(e);
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    mosq_ev *e = arg;
    enter(e);
    after_loop_call(e, mosquitto_loop_write(e->mosq, 1), 0);
    leave(e);
}

static void on_misc(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    mosq_ev *e = arg;
    enter(e);
    after_loop_call(e, mosquitto_loop_misc(e->mosq), 0);
    leave(e);
}

/* Watch the client's socket (just made by connect or reconnect). */
static int watch(mosq_ev *e) {
    int sock = mosquitto_socket(e->mosq);
    if (sock < 0) return MOSQ_ERR_NO_CONN;
    struct timeval misc = {0, MISC_INTERVAL_US};
    e->rev = event_new(e->base, sock, EV_READ | EV_PERSIST, on_read, e);
    e->wev = event_new(e->base, sock, EV_WRITE, on_write, e);
    if (!e->rev || !e->wev || event_add(e->rev, NULL) != 0 || event_add(e->misc, &misc) != 0) {
        unwatch(e);
        return MOSQ_ERR_NOMEM;
    }
    update_write(e); /* the CONNECT packet is queued */
    return MOSQ_ERR_SUCCESS;
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    mosq_ev *e = arg;
    enter(e);
    int rc = mosquitto_reconnect_async(e->mosq);
    if (rc == MOSQ_ERR_SUCCESS && !e->freed) rc = watch(e);
    if (rc != MOSQ_ERR_SUCCESS && !e->freed) down(e, rc);
    leave(e);
}

mosq_ev *mosq_ev_new(struct event_base *base, struct mosquitto *mosq, int64_t retry_min_us,
                     int64_t retry_max_us, mosq_ev_down_fn *on_down, void *arg) {
    mosq_ev *e = calloc(1, sizeof(*e));
    if (!e) return NULL;
    e->base = base;
    e->mosq = mosq;
    e->on_down = on_down;
    e->arg = arg;
    backoff_init(&e->backoff, retry_min_us, retry_max_us, 0);
    e->misc = event_new(base, -1, EV_PERSIST, on_misc, e);
    e->retry = evtimer_new(base, on_retry, e);
    if (!e->misc || !e->retry) {
        mosq_ev_free(e);
        return NULL;
    }
    return e;
}

int mosq_ev_connect(mosq_ev *e, const char *host, int port, int keepalive_s) {
    mosq_ev_detach(e);
    int rc = mosquitto_connect_async(e->mosq, host, port, keepalive_s);
    if (rc == MOSQ_ERR_SUCCESS) rc = watch(e);
    if (rc != MOSQ_ERR_SUCCESS) {
        int saved_errno = errno;
        schedule_retry(e);
        errno = saved_errno;
    }
    return rc;
}

void mosq_ev_connack(mosq_ev *e) {
    e->connected = 1;
    backoff_reset(&e->backoff);
}

int mosq_ev_connected(const mosq_ev *e) {
    return e->connected;
}

void mosq_ev_update_write(mosq_ev *e) {
    update_write(e);
}

void mosq_ev_detach(mosq_ev *e) {
    unwatch(e);
    if (e->retry) evtimer_del(e->retry);
    e->connected = 0;
}

void mosq_ev_free(mosq_ev *e) {
    if (!e || e->freed) return;
    if (e->connected && e->rev) {
        mosquitto_disconnect(e->mosq);
        mosquitto_loop_write(e->mosq, 1);
    }
    mosq_ev_detach(e);
    if (e->misc) event_free(e->misc);
    if (e->retry) event_free(e->retry);
    e->misc = e->retry = NULL;
    e->freed = 1;
    if (e->depth == 0) free(e);
}

/* call.c -- HTTP calls on the loop: evhttp's client side, behind call.h.
 *
 * A pool holds the connections to one target. One evhttp_connection carries
 * one request at a time (HTTP/1.1 without pipelining), so a call takes an
 * idle connection, or opens one while the pool has fewer than max_conns; at
 * the cap a queueing pool lines the request up behind another on the next
 * connection in turn (evhttp sends it when the one before is answered) and a
 * non-queueing pool refuses. Connections keep their socket between calls
 * (keep-alive); a cancelled call makes evhttp reset its connection, and the
 * next call on it reconnects; a detached one (its caller gone, as at an
 * auction's deadline) keeps the connection until its answer or its grace
 * ends. On a kept-alive connection the request is
 * written at once, in rtb_call_start (send_now), not a loop turn later.
 *
 * The one idea for lifetimes: evhttp runs a request's callback exactly once
 * unless the request is cancelled, and on failure it has already freed the
 * request and stopped touching the connection when the callback runs. So a
 * call gives its connection back inside that callback (or in cancel), and a
 * retired pool frees itself when its last connection comes back. A failure
 * evhttp reports from inside evhttp_make_request is turned into -1 from
 * rtb_call_start, so a callback never runs before start has returned. */
#include "rtb/call.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rtb_http {
    struct event_base *base;
    struct evdns_base *dns;
};

typedef struct rtb_conn {
    struct evhttp_connection *evcon;
    struct rtb_conn *next_idle;
    rtb_pool *pool;
    size_t slot;    /* index in pool->conns */
    unsigned calls; /* requests out on it */
    /* A connection of a pool without `queue` carries one request at a
     * time, whose evhttp callbacks get the connection (not the call): */
    rtb_call *call;                  /* its caller, or NULL */
    struct evhttp_request *detached; /* ... or the request, let go */
    struct event *expire;            /* ends a detached request (made once) */
    int error;                       /* evhttp's error code + 1 (also set by a cancel: evhttp runs
                                        the error callback then, not the request callback) */
} rtb_conn;

struct rtb_pool {
    rtb_http *http;
    char *host;
    int port;
    rtb_pool_opts o;
    rtb_conn **conns; /* every connection, nconns of them */
    size_t nconns, capconns;
    rtb_conn *idle;
    size_t busy;     /* calls out */
    size_t connects; /* TCP connections opened for calls */
    size_t next;     /* round robin for queued requests */
    int retired;
};

const char *rtb_call_status_str(rtb_call_status s) {
    switch (s) {
    case RTB_CALL_OK:
        return "answered";
    case RTB_CALL_CONNECT:
        return "connection failed or closed before an answer";
    case RTB_CALL_TIMEOUT:
        return "timed out";
    case RTB_CALL_BODY_TOO_LARGE:
        return "response body too large";
    case RTB_CALL_HEADERS_TOO_LARGE:
        return "response headers too large or malformed";
    }
    return "unknown";
}

/* ---- The shared resolver -------------------------------------------------------- */

rtb_http *rtb_http_new(struct event_base *base, char *err, size_t errlen) {
    rtb_http *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->base = base;
    /* Name servers from /etc/resolv.conf (127.0.0.1 when it is missing),
     * names from /etc/hosts first; an idle resolver does not keep the loop
     * running. */
    h->dns =
        evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!h->dns) {
        snprintf(err, errlen, "cannot start the DNS resolver (evdns)");
        free(h);
        return NULL;
    }
    return h;
}

void rtb_http_free(rtb_http *h) {
    if (!h) return;
    evdns_base_free(h->dns, 1); /* lookups still out fail */
    free(h);
}

/* ---- Pools ------------------------------------------------------------------------- */

rtb_pool *rtb_pool_new(rtb_http *h, const char *host, int port, const rtb_pool_opts *o) {
    rtb_pool *p = calloc(1, sizeof(*p));
    if (!p || !(p->host = strdup(host))) {
        free(p);
        return NULL;
    }
    p->http = h;
    p->port = port;
    p->o = *o;
    if (p->o.max_conns < 1) p->o.max_conns = 1;
    return p;
}

static void pool_destroy(rtb_pool *p) {
    free(p->conns);
    free(p->host);
    free(p);
}

static void conn_close(rtb_conn *c) {
    rtb_pool *p = c->pool;
    p->conns[c->slot] = p->conns[--p->nconns];
    p->conns[c->slot]->slot = c->slot;
    if (c->expire) event_free(c->expire);
    evhttp_connection_free(c->evcon);
    free(c);
}

void rtb_pool_free(rtb_pool *p) {
    if (!p) return;
    p->retired = 1;
    while (p->idle) {
        rtb_conn *c = p->idle;
        p->idle = c->next_idle;
        conn_close(c);
    }
    /* Nobody waits for a detached request: end it, and its connection,
     * now (from the top down: conn_close moves the last one into the
     * slot it frees). */
    for (size_t i = p->nconns; i-- > 0;) {
        rtb_conn *c = p->conns[i];
        if (!c->detached) continue;
        evhttp_cancel_request(c->detached); /* frees it; no callback */
        c->detached = NULL;
        c->calls--;
        p->busy--;
        conn_close(c);
    }
    if (p->nconns == 0) pool_destroy(p);
}

void rtb_pool_set_max_conns(rtb_pool *p, size_t max_conns) {
    p->o.max_conns = max_conns < 1 ? 1 : max_conns;
}

size_t rtb_pool_busy(const rtb_pool *p) {
    return p->busy;
}

size_t rtb_pool_conns(const rtb_pool *p) {
    return p->nconns;
}

size_t rtb_pool_connects(const rtb_pool *p) {
    return p->connects;
}

static rtb_conn *conn_open(rtb_pool *p) {
    if (p->nconns == p->capconns) {
        size_t cap = p->capconns ? p->capconns * 2 : 4;
        rtb_conn **v = realloc(p->conns, cap * sizeof(*v));
        if (!v) return NULL;
        p->conns = v;
        p->capconns = cap;
    }
    rtb_conn *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->evcon =
        evhttp_connection_base_new(p->http->base, p->http->dns, p->host, (unsigned short)p->port);
    if (!c->evcon) {
        free(c);
        return NULL;
    }
    evhttp_connection_set_retries(c->evcon, 0);
    if (p->o.max_body_bytes)
        evhttp_connection_set_max_body_size(c->evcon, (ev_ssize_t)p->o.max_body_bytes);
    if (p->o.max_header_bytes)
        evhttp_connection_set_max_headers_size(c->evcon, (ev_ssize_t)p->o.max_header_bytes);
    if (p->o.timeout_s > 0) evhttp_connection_set_timeout(c->evcon, p->o.timeout_s);
    c->pool = p;
    c->slot = p->nconns;
    p->conns[p->nconns++] = c;
    return c;
}

/* A connection for one more call, or NULL. */
static rtb_conn *conn_take(rtb_pool *p) {
    rtb_conn *c = p->idle;
    if (c) {
        p->idle = c->next_idle;
    } else if (p->nconns < p->o.max_conns) {
        c = conn_open(p);
    } else if (p->o.queue && p->nconns > 0) {
        c = p->conns[p->next++ % p->nconns];
    }
    if (!c) return NULL;
    c->calls++;
    p->busy++;
    return c;
}

static void conn_give_back(rtb_conn *c) {
    rtb_pool *p = c->pool;
    p->busy--;
    if (--c->calls > 0) return;
    if (p->retired) {
        conn_close(c);
        if (p->nconns == 0) pool_destroy(p);
        return;
    }
    c->next_idle = p->idle;
    p->idle = c;
}

/* ---- Calls --------------------------------------------------------------------------- */

/* evhttp runs a request's error callback (on failure) just before its
 * request callback, with the same argument: the call in a queueing pool,
 * the connection otherwise. */
static void on_error_call(enum evhttp_request_error e, void *arg) {
    rtb_call *c = arg;
    c->error = (int)e + 1;
}

static void on_error_conn(enum evhttp_request_error e, void *arg) {
    rtb_conn *conn = arg;
    conn->error = (int)e + 1;
}

/* The end of a request whose caller let go (answered, failed, or ended by
 * its grace): the connection goes back to the pool, kept alive if evhttp
 * kept it. */
static void detached_done(rtb_conn *conn) {
    conn->detached = NULL;
    conn->error = 0;
    if (conn->expire) event_del(conn->expire);
    conn_give_back(conn);
}

static void on_expire(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rtb_conn *conn = arg;
    evhttp_cancel_request(conn->detached); /* frees it, resets the connection */
    detached_done(conn);
}

static void finish(rtb_call *c, rtb_conn *conn, struct evhttp_request *req, int error) {
    if (c->starting) { /* failed inside evhttp_make_request: start reports it */
        c->failed_inline = 1;
        return;
    }
    rtb_call_result r = {.status = RTB_CALL_CONNECT, .body = ""};
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (error == EVREQ_HTTP_DATA_TOO_LONG + 1)
        r.status = RTB_CALL_BODY_TOO_LARGE;
    else if (error == EVREQ_HTTP_INVALID_HEADER + 1)
        r.status = RTB_CALL_HEADERS_TOO_LARGE;
    else if (error == EVREQ_HTTP_TIMEOUT + 1)
        r.status = RTB_CALL_TIMEOUT;
    else if (req && code > 0 && !error)
        r.status = RTB_CALL_OK;
    if (r.status == RTB_CALL_OK) {
        r.code = code;
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        r.len = evbuffer_get_length(in);
        if (r.len) r.body = (const char *)evbuffer_pullup(in, -1);
    }
    c->req = NULL;
    c->conn = NULL;
    conn->call = NULL;
    conn_give_back(conn);
    c->fn(c->arg, &r);
}

static void on_done_call(struct evhttp_request *req, void *arg) {
    rtb_call *c = arg;
    finish(c, c->conn, req, c->error);
}

static void on_done_conn(struct evhttp_request *req, void *arg) {
    rtb_conn *conn = arg;
    int error = conn->error;
    conn->error = 0;
    if (conn->call)
        finish(conn->call, conn, req, error);
    else
        detached_done(conn);
}

/* evhttp hands a request to its connection's bufferevent, which asks the
 * loop for EV_WRITE, writes when the socket is reported writable (a loop
 * turn later) and then drops the interest again: two epoll_ctl and a turn
 * per call. A kept-alive connection's socket almost always takes a request
 * whole, so write it now and tell evhttp what the bufferevent would have:
 * its write callback, as when the output buffer has drained (libevent 2.1
 * bufferevent.h: the write callback runs once the output is at or below the
 * low watermark, 0 here). A connection still connecting, or a request
 * queued behind another, has nothing in the output buffer yet. What the
 * kernel does not take, and any error, stays with the bufferevent, whose
 * EV_WRITE is still asked for. */
static void send_now(struct bufferevent *bev) {
    struct evbuffer *out = bufferevent_get_output(bev);
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd < 0 || evbuffer_get_length(out) == 0) return;
    /* The bufferevent keeps the front of its output frozen but while it
     * writes (so only it drains the buffer): do as it does. */
    evbuffer_unfreeze(out, 1);
    int n = evbuffer_write(out, fd);
    evbuffer_freeze(out, 1);
    if (n <= 0 || evbuffer_get_length(out) > 0) return;
    bufferevent_data_cb written = NULL;
    void *arg = NULL;
    bufferevent_getcb(bev, NULL, &written, NULL, &arg);
    if (written) written(bev, arg);
}

int rtb_call_start(rtb_call *c, rtb_pool *p, rtb_method method, const char *path, const char *host,
                   const rtb_header *headers, size_t nheaders, const void *body, size_t len,
                   rtb_call_fn *fn, void *arg) {
    memset(c, 0, sizeof(*c));
    rtb_conn *conn = conn_take(p);
    if (!conn) return -1;
    int one = !p->o.queue; /* its connection carries this request alone */
    struct evhttp_request *req =
        one ? evhttp_request_new(on_done_conn, conn) : evhttp_request_new(on_done_call, c);
    if (!req) {
        conn_give_back(conn);
        return -1;
    }
    evhttp_request_set_error_cb(req, one ? on_error_conn : on_error_call);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", host);
    for (size_t i = 0; i < nheaders; i++)
        evhttp_add_header(h, headers[i].name, headers[i].value);
    if (len) evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
    c->fn = fn;
    c->arg = arg;
    c->conn = conn;
    c->req = req;
    c->starting = 1;
    /* No socket: evhttp connects for this request (its first, or after a
     * reset). */
    struct bufferevent *bev = evhttp_connection_get_bufferevent(conn->evcon);
    int connecting = bufferevent_getfd(bev) < 0;
    if (one) {
        conn->call = c;
        conn->error = 0;
    }
    int rc = evhttp_make_request(conn->evcon, req,
                                 method == RTB_POST ? EVHTTP_REQ_POST : EVHTTP_REQ_GET, path);
    c->starting = 0;
    if (rc != 0 || c->failed_inline) { /* evhttp freed the request */
        c->req = NULL;
        c->conn = NULL;
        conn->call = NULL;
        conn->error = 0;
        conn_give_back(conn);
        return -1;
    }
    if (connecting)
        p->connects++;
    else
        send_now(bev);
    return 0;
}

void rtb_call_cancel(rtb_call *c) {
    if (!c->req) return;
    rtb_conn *conn = c->conn;
    evhttp_cancel_request(c->req); /* frees it; the callback never runs */
    c->req = NULL;
    c->conn = NULL;
    conn->call = NULL;
    conn->error = 0;
    conn_give_back(conn);
}

void rtb_call_detach(rtb_call *c, int64_t grace_us) {
    if (!c->req) return;
    rtb_conn *conn = c->conn;
    if (conn->call != c || grace_us <= 0) { /* queued with others, or no grace */
        rtb_call_cancel(c);
        return;
    }
    if (!conn->expire) conn->expire = evtimer_new(conn->pool->http->base, on_expire, conn);
    struct timeval tv = {(time_t)(grace_us / 1000000), (suseconds_t)(grace_us % 1000000)};
    if (!conn->expire || evtimer_add(conn->expire, &tv) != 0) {
        rtb_call_cancel(c);
        return;
    }
    conn->detached = c->req;
    conn->call = NULL;
    c->req = NULL;
    c->conn = NULL;
}

int rtb_call_pending(const rtb_call *c) {
    return c->req != NULL;
}

/* call.c -- HTTP calls on the loop: evhttp's client side, behind call.h.
 *
 * A pool holds the connections to one target. One evhttp_connection carries
 * one request at a time (HTTP/1.1 without pipelining), so a call takes an
 * idle connection, or opens one while the pool has fewer than max_conns; at
 * the cap a queueing pool lines the request up behind another on the next
 * connection in turn (evhttp sends it when the one before is answered) and a
 * non-queueing pool refuses. Connections keep their socket between calls
 * (keep-alive); a cancelled call makes evhttp reset its connection, and the
 * next call on it reconnects. On a kept-alive connection the request is
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
} rtb_conn;

struct rtb_pool {
    rtb_http *http;
    char *host;
    int port;
    rtb_pool_opts o;
    rtb_conn **conns; /* every connection, nconns of them */
    size_t nconns, capconns;
    rtb_conn *idle;
    size_t busy; /* calls out */
    size_t next; /* round robin for queued requests */
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

static void on_error(enum evhttp_request_error e, void *arg) {
    rtb_call *c = arg;
    c->error = (int)e + 1;
}

static void on_done(struct evhttp_request *req, void *arg) {
    rtb_call *c = arg;
    if (c->starting) { /* failed inside evhttp_make_request: start reports it */
        c->failed_inline = 1;
        return;
    }
    rtb_call_result r = {.status = RTB_CALL_CONNECT, .body = ""};
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (c->error == EVREQ_HTTP_DATA_TOO_LONG + 1)
        r.status = RTB_CALL_BODY_TOO_LARGE;
    else if (c->error == EVREQ_HTTP_INVALID_HEADER + 1)
        r.status = RTB_CALL_HEADERS_TOO_LARGE;
    else if (c->error == EVREQ_HTTP_TIMEOUT + 1)
        r.status = RTB_CALL_TIMEOUT;
    else if (req && code > 0 && !c->error)
        r.status = RTB_CALL_OK;
    if (r.status == RTB_CALL_OK) {
        r.code = code;
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        r.len = evbuffer_get_length(in);
        if (r.len) r.body = (const char *)evbuffer_pullup(in, -1);
    }
    rtb_conn *conn = c->conn;
    c->req = NULL;
    c->conn = NULL;
    conn_give_back(conn);
    c->fn(c->arg, &r);
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
static void send_now(rtb_conn *conn) {
    struct bufferevent *bev = evhttp_connection_get_bufferevent(conn->evcon);
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
    struct evhttp_request *req = evhttp_request_new(on_done, c);
    if (!req) {
        conn_give_back(conn);
        return -1;
    }
    evhttp_request_set_error_cb(req, on_error);
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
    int rc = evhttp_make_request(conn->evcon, req,
                                 method == RTB_POST ? EVHTTP_REQ_POST : EVHTTP_REQ_GET, path);
    c->starting = 0;
    if (rc != 0 || c->failed_inline) { /* evhttp freed the request */
        c->req = NULL;
        c->conn = NULL;
        conn_give_back(conn);
        return -1;
    }
    send_now(conn);
    return 0;
}

void rtb_call_cancel(rtb_call *c) {
    if (!c->req) return;
    rtb_conn *conn = c->conn;
    evhttp_cancel_request(c->req); /* frees it; the callback never runs */
    c->req = NULL;
    c->conn = NULL;
    conn_give_back(conn);
}

int rtb_call_pending(const rtb_call *c) {
    return c->req != NULL;
}

/* call.h -- HTTP calls from the exchange: the one unit that owns libevent's
 * evhttp client (SPEC 5 bidder calls, SPEC 9 notices).
 *
 * Three objects:
 *   rtb_http  what every call shares: the event_base and one evdns_base, so
 *             host names are resolved without blocking the loop (libevent
 *             2.1.12 falls back to a blocking getaddrinfo when a connection
 *             has no dns base);
 *   rtb_pool  keep-alive connections to one host:port, with the limits of
 *             that target in one place (connections, body and header bytes,
 *             a timeout);
 *   rtb_call  one request: caller-owned storage (embedded in whatever owns
 *             the call, so starting one allocates nothing of ours).
 *
 * The contract is hiredis's: rtb_call_start returns 0 and the callback then
 * runs exactly once, later, from the loop; or it returns -1 at once and the
 * callback never runs. After rtb_call_cancel or rtb_call_detach the
 * callback never runs. */
#ifndef RTB_CALL_H
#define RTB_CALL_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evhttp_request;
struct rtb_conn;

typedef struct rtb_http rtb_http;
typedef struct rtb_pool rtb_pool;

/* How a call ended. */
typedef enum rtb_call_status {
    RTB_CALL_OK = 0,            /* an HTTP answer: `code` and the body */
    RTB_CALL_CONNECT,           /* no connection, or it closed before an answer */
    RTB_CALL_TIMEOUT,           /* the pool's timeout_s passed */
    RTB_CALL_BODY_TOO_LARGE,    /* body over the pool's max_body_bytes */
    RTB_CALL_HEADERS_TOO_LARGE, /* headers over max_header_bytes, or malformed */
} rtb_call_status;

/* Short English text of a status, for logs. Never NULL. */
const char *rtb_call_status_str(rtb_call_status s);

typedef struct rtb_call_result {
    rtb_call_status status;
    int code;         /* HTTP status code when status is RTB_CALL_OK, else 0 */
    const char *body; /* the body, valid only during the callback ("" when none) */
    size_t len;
} rtb_call_result;

/* The one callback of a call: `r` is valid only during the call. */
typedef void rtb_call_fn(void *arg, const rtb_call_result *r);

/* One call. Zero it (or let rtb_call_start do it) before use; the fields are
 * private to call.c. */
typedef struct rtb_call {
    struct evhttp_request *req; /* while out */
    struct rtb_conn *conn;
    rtb_call_fn *fn;
    void *arg;
    int error;    /* evhttp's error code + 1, from its error callback */
    int starting; /* inside rtb_call_start */
    int failed_inline;
} rtb_call;

/* What one target allows. */
typedef struct rtb_pool_opts {
    size_t max_conns;        /* connections at most (>= 1) */
    int queue;               /* at max_conns: 1 queues the request on a busy
                                connection (evhttp sends it after the one
                                before); 0 refuses it */
    size_t max_body_bytes;   /* answer body at most (0: no limit) */
    size_t max_header_bytes; /* answer headers at most (0: no limit) */
    int timeout_s;           /* per request (0: none; the caller cancels) */
} rtb_pool_opts;

typedef enum rtb_method { RTB_GET, RTB_POST } rtb_method;

/* The shared part: an evdns_base on `base` (borrowed; must outlive it), set
 * up from /etc/resolv.conf and /etc/hosts, that does not keep the loop alive.
 * Returns NULL with a message in `err` when it cannot be made. */
rtb_http *rtb_http_new(struct event_base *base, char *err, size_t errlen);
/* Free after every pool made from it. NULL is a no-op. */
void rtb_http_free(rtb_http *h);

/* A pool of connections to host:port (host copied: a name or an address
 * literal). Connects lazily, at the first call. Returns NULL when memory ran
 * out. */
rtb_pool *rtb_pool_new(rtb_http *h, const char *host, int port, const rtb_pool_opts *o);
/* Retire a pool: idle connections close now, busy ones as their calls end;
 * the pool is freed with its last one. Calls still out run their callbacks
 * as usual. NULL is a no-op. */
void rtb_pool_free(rtb_pool *p);
/* Change the pool's max_conns (>= 1). The cap limits new connections; ones
 * already open above a lowered cap stay (idle) until the pool retires. */
void rtb_pool_set_max_conns(rtb_pool *p, size_t max_conns);
/* Calls out on the pool now, detached ones included (they hold a
 * connection, and the target still works on them). */
size_t rtb_pool_busy(const rtb_pool *p);
/* Connections open (or opening) in the pool now. */
size_t rtb_pool_conns(const rtb_pool *p);
/* TCP connections the pool's calls have opened so far: a connection's
 * first, and each one again after evhttp closed it (a cancelled call, the
 * target closing an idle one, an error). Rising with the calls means the
 * target does not keep connections alive, or calls keep being cancelled. */
size_t rtb_pool_connects(const rtb_pool *p);

/* A request header: name and value, borrowed for the call to
 * rtb_call_start. */
typedef struct rtb_header {
    const char *name, *value;
} rtb_header;

/* Send `method` `path` (path and query, starting with '/') to the pool's
 * target with a Host header `host` and `nheaders` more headers, and `len`
 * bytes of `body` (copied; may be NULL when len is 0). `c` is caller-owned
 * and must stay valid until the callback runs or the call is cancelled.
 * Returns 0: `fn(arg, result)` runs exactly once, later; or -1 (the pool is
 * at max_conns without `queue`, memory ran out, or evhttp refused the
 * request): `fn` never runs. */
int rtb_call_start(rtb_call *c, rtb_pool *p, rtb_method method, const char *path, const char *host,
                   const rtb_header *headers, size_t nheaders, const void *body, size_t len,
                   rtb_call_fn *fn, void *arg);
/* Cancel a call that is out: its callback never runs, its connection goes
 * back to the pool (evhttp resets it, so the next call on it reconnects).
 * A call that is not out is left alone. */
void rtb_call_cancel(rtb_call *c);
/* Let a call that is out go on without its caller: as after
 * rtb_call_cancel, its callback never runs and `c` may be reused or freed
 * at once. But its request stays on its connection until the answer comes
 * (read and dropped) or `grace_us` microseconds pass (then it is cancelled),
 * and the connection then goes back to the pool kept alive: a late answer
 * costs no reconnect. Until then it counts in rtb_pool_busy. A call queued
 * on a connection with others (a pool with `queue`), a `grace_us` <= 0, or
 * no memory for the timer: cancelled instead. A retiring pool cancels its
 * detached calls at once (rtb_pool_free). A call that is not out is left
 * alone. */
void rtb_call_detach(rtb_call *c, int64_t grace_us);
/* 1 while the call is out (started, not answered, not cancelled). */
int rtb_call_pending(const rtb_call *c);

#endif

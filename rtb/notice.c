/* notice.c -- win and loss notices (SPEC 9): fire-and-forget HTTP GETs.
 *
 * A notice never delays a result: the auction's result is published first,
 * then its notices are handed here. Notices go to a small set of targets
 * (host:port); each target has a few evhttp connections and lets evhttp
 * queue requests on them. Every request's callback runs exactly once (or
 * never, when the notifier is freed and cancels it), and only counts. At
 * most `max_pending` notices are out; past that a notice is dropped and
 * counted, so a dead notice server cannot grow memory. */
#include "rtb/rtb.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <stdlib.h>
#include <string.h>

#define CONNS_PER_TARGET 4
#define MAX_TARGETS 256
#define NOTICE_TIMEOUT_S 5

typedef struct target {
    char *host;
    int port;
    struct evhttp_connection *conns[CONNS_PER_TARGET];
    unsigned next;
} target;

struct rtb_notifier {
    struct event_base *base;
    size_t max_pending, pending;
    target *targets;
    size_t ntargets;
    proto_buf url;
    int ran_inline; /* the callback ran inside evhttp_make_request */
    rtb_notice_stats stats;
};

rtb_notifier *rtb_notifier_new(struct event_base *base, size_t max_pending) {
    rtb_notifier *n = calloc(1, sizeof(*n));
    if (!n) return NULL;
    n->base = base;
    n->max_pending = max_pending ? max_pending : 100000;
    n->targets = calloc(MAX_TARGETS, sizeof(*n->targets));
    if (!n->targets) {
        free(n);
        return NULL;
    }
    return n;
}

void rtb_notifier_free(rtb_notifier *n) {
    if (!n) return;
    for (size_t i = 0; i < n->ntargets; i++) {
        for (int k = 0; k < CONNS_PER_TARGET; k++)
            if (n->targets[i].conns[k]) evhttp_connection_free(n->targets[i].conns[k]);
        free(n->targets[i].host);
    }
    free(n->targets);
    proto_buf_free(&n->url);
    free(n);
}

const rtb_notice_stats *rtb_notifier_stats(const rtb_notifier *n) {
    return &n->stats;
}

size_t rtb_notifier_pending(const rtb_notifier *n) {
    return n->pending;
}

static target *find_target(rtb_notifier *n, const char *host, int port) {
    for (size_t i = 0; i < n->ntargets; i++)
        if (n->targets[i].port == port && strcmp(n->targets[i].host, host) == 0)
            return &n->targets[i];
    if (n->ntargets == MAX_TARGETS) return NULL;
    target *t = &n->targets[n->ntargets];
    if (!(t->host = strdup(host))) return NULL;
    t->port = port;
    n->ntargets++;
    return t;
}

static struct evhttp_connection *target_conn(rtb_notifier *n, target *t) {
    unsigned k = t->next++ % CONNS_PER_TARGET;
    if (!t->conns[k]) {
        t->conns[k] = evhttp_connection_base_new(n->base, NULL, t->host, (unsigned short)t->port);
        if (t->conns[k]) evhttp_connection_set_timeout(t->conns[k], NOTICE_TIMEOUT_S);
    }
    return t->conns[k];
}

static void on_notice_done(struct evhttp_request *req, void *arg) {
    rtb_notifier *n = arg;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    n->pending--;
    n->ran_inline = 1;
    if (code >= 200 && code < 300)
        n->stats.sent++;
    else
        n->stats.failed++;
}

/* GET the URL in n->url. Returns 0 when it went out, -1 when it failed. */
static int send_notice(rtb_notifier *n) {
    struct evhttp_uri *uri = evhttp_uri_parse(n->url.data);
    if (!uri) return -1;
    const char *scheme = evhttp_uri_get_scheme(uri), *host = evhttp_uri_get_host(uri);
    const char *path = evhttp_uri_get_path(uri), *query = evhttp_uri_get_query(uri);
    int port = evhttp_uri_get_port(uri), rc = -1;
    if (scheme && strcmp(scheme, "http") == 0 && host && *host) {
        target *t = find_target(n, host, port > 0 ? port : 80);
        struct evhttp_connection *conn = t ? target_conn(n, t) : NULL;
        struct evhttp_request *req = conn ? evhttp_request_new(on_notice_done, n) : NULL;
        if (req) {
            char resource[4096];
            snprintf(resource, sizeof(resource), "%s%s%s", path && *path ? path : "/",
                     query ? "?" : "", query ? query : "");
            evhttp_add_header(evhttp_request_get_output_headers(req), "Host", host);
            n->pending++;
            n->ran_inline = 0;
            if (evhttp_make_request(conn, req, EVHTTP_REQ_GET, resource) == 0) {
                rc = 0;
            } else if (n->ran_inline) {
                rc = 0; /* the failure was already counted by the callback */
            } else {
                n->pending--; /* libevent freed the request without calling back */
            }
        }
    }
    evhttp_uri_free(uri);
    return rc;
}

void rtb_notify(rtb_notifier *n, const char *url_template, const proto_notice_macros *m) {
    if (!url_template || !*url_template) return;
    if (n->pending >= n->max_pending) {
        n->stats.dropped++;
        return;
    }
    proto_buf_reset(&n->url);
    if (proto_notice_url(url_template, m, &n->url) != 0 || send_notice(n) != 0) n->stats.failed++;
}

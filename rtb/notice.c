/* notice.c -- win and loss notices (SPEC 9): fire-and-forget HTTP GETs.
 *
 * Notices go to a small set of targets (host:port); each target is a
 * queueing pool of a few connections (call.h), so evhttp lines requests up
 * on them. Each notice out is a small record holding its call, linked so
 * that freeing the notifier can cancel what is still out. Every call's
 * callback runs exactly once (or never, when cancelled) and only counts. */
#include "rtb/notice.h"

#include <event2/http.h>

#include <stdlib.h>
#include <string.h>

#define CONNS_PER_TARGET 4
#define MAX_TARGETS 256
#define NOTICE_TIMEOUT_S 5
#define NOTICE_MAX_BODY_BYTES 65536
#define NOTICE_MAX_HEADER_BYTES 8192
#define RESOURCE_MAX 4096

typedef struct target {
    char *host;
    int port;
    rtb_pool *pool;
} target;

typedef struct notice {
    rtb_call call;
    rtb_notifier *n;
    struct notice *prev, *next;
} notice;

struct rtb_notifier {
    rtb_http *http;
    size_t max_pending, pending;
    target *targets;
    size_t ntargets;
    notice *out; /* notices out */
    proto_buf url;
    rtb_notice_stats stats;
};

rtb_notifier *rtb_notifier_new(rtb_http *http, size_t max_pending) {
    rtb_notifier *n = calloc(1, sizeof(*n));
    if (!n) return NULL;
    n->http = http;
    n->max_pending = max_pending ? max_pending : 100000;
    n->targets = calloc(MAX_TARGETS, sizeof(*n->targets));
    if (!n->targets) {
        free(n);
        return NULL;
    }
    return n;
}

static void unlink_notice(notice *nt) {
    rtb_notifier *n = nt->n;
    if (nt->prev)
        nt->prev->next = nt->next;
    else
        n->out = nt->next;
    if (nt->next) nt->next->prev = nt->prev;
    n->pending--;
}

void rtb_notifier_free(rtb_notifier *n) {
    if (!n) return;
    while (n->out) {
        notice *nt = n->out;
        rtb_call_cancel(&nt->call);
        unlink_notice(nt);
        free(nt);
    }
    for (size_t i = 0; i < n->ntargets; i++) {
        rtb_pool_free(n->targets[i].pool);
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
    rtb_pool_opts o = {
        .max_conns = CONNS_PER_TARGET,
        .queue = 1,
        .max_body_bytes = NOTICE_MAX_BODY_BYTES,
        .max_header_bytes = NOTICE_MAX_HEADER_BYTES,
        .timeout_s = NOTICE_TIMEOUT_S,
    };
    if (!(t->host = strdup(host))) return NULL;
    if (!(t->pool = rtb_pool_new(n->http, host, port, &o))) {
        free(t->host);
        return NULL;
    }
    t->port = port;
    n->ntargets++;
    return t;
}

static void on_notice_done(void *arg, const rtb_call_result *r) {
    notice *nt = arg;
    rtb_notifier *n = nt->n;
    if (r->status == RTB_CALL_OK && r->code >= 200 && r->code < 300)
        n->stats.sent++;
    else
        n->stats.failed++;
    unlink_notice(nt);
    free(nt);
}

/* GET the URL in n->url. Returns 0 when it went out, -1 when it failed. */
static int send_notice(rtb_notifier *n) {
    struct evhttp_uri *uri = evhttp_uri_parse(n->url.data);
    if (!uri) return -1;
    const char *scheme = evhttp_uri_get_scheme(uri), *host = evhttp_uri_get_host(uri);
    const char *path = evhttp_uri_get_path(uri), *query = evhttp_uri_get_query(uri);
    int port = evhttp_uri_get_port(uri), rc = -1;
    target *t = NULL;
    if (scheme && strcmp(scheme, "http") == 0 && host && *host)
        t = find_target(n, host, port > 0 ? port : 80);
    notice *nt = t ? calloc(1, sizeof(*nt)) : NULL;
    if (nt) {
        char resource[RESOURCE_MAX];
        snprintf(resource, sizeof(resource), "%s%s%s", path && *path ? path : "/", query ? "?" : "",
                 query ? query : "");
        nt->n = n;
        if (rtb_call_start(&nt->call, t->pool, RTB_GET, resource, host, NULL, 0, NULL, 0,
                           on_notice_done, nt) == 0) {
            nt->next = n->out;
            if (n->out) n->out->prev = nt;
            n->out = nt;
            n->pending++;
            rc = 0;
        } else {
            free(nt);
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

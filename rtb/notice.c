/* notice.c -- win, loss and billing notices (SPEC 9, 14, 15): HTTP GETs
 * that never delay a result.
 *
 * Notices go to a bounded table of targets (host:port); each target is a
 * queueing pool of a few connections (call.h), so evhttp lines requests up
 * on them. When the table is full the target used longest ago is retired
 * (its calls still out end as usual), so hosts named by bidders cannot grow
 * it. Each notice out is one allocation: its call, its owner's counter and
 * a copy of its URL (a drain lists what is still out), linked oldest first
 * so that freeing the notifier can cancel what is left. */
#include "rtb/notice.h"

#include <event2/http.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONNS_PER_TARGET 4
#define MAX_TARGETS 256
#define NOTICE_TIMEOUT_S 5
#define NOTICE_MAX_BODY_BYTES 65536
#define NOTICE_MAX_HEADER_BYTES 8192
#define RESOURCE_MAX 4096

typedef struct target {
    char *host;
    int port;
    unsigned long long used; /* the notifier's use count at its last notice */
    rtb_pool *pool;
} target;

typedef struct notice {
    rtb_call call;
    rtb_notifier *n;
    rtb_notice_kind kind;
    unsigned *owner_out;
    rtb_notice_fn *done;
    void *arg;
    struct notice *prev, *next;
    char url[]; /* a copy, for the callback and the drain */
} notice;

struct rtb_notifier {
    rtb_http *http;
    size_t max_pending, pending;
    target targets[MAX_TARGETS];
    size_t ntargets;
    unsigned long long uses;
    notice *head, *tail; /* notices out, oldest first */
    rtb_notice_stats stats;
};

static const char *const kind_names[RTB_NOTICE_KINDS] = {"win", "loss", "bill"};

const char *rtb_notice_kind_str(rtb_notice_kind k) {
    return (unsigned)k < RTB_NOTICE_KINDS ? kind_names[k] : "unknown";
}

rtb_notifier *rtb_notifier_new(rtb_http *http, size_t max_pending) {
    rtb_notifier *n = calloc(1, sizeof(*n));
    if (!n) return NULL;
    n->http = http;
    n->max_pending = max_pending ? max_pending : 100000;
    return n;
}

static void unlink_notice(notice *nt) {
    rtb_notifier *n = nt->n;
    if (nt->prev)
        nt->prev->next = nt->next;
    else
        n->head = nt->next;
    if (nt->next)
        nt->next->prev = nt->prev;
    else
        n->tail = nt->prev;
    n->pending--;
    if (nt->owner_out && *nt->owner_out) (*nt->owner_out)--;
}

static void retire_target(rtb_notifier *n, size_t i) {
    rtb_pool_free(n->targets[i].pool);
    free(n->targets[i].host);
    n->targets[i] = n->targets[--n->ntargets];
}

void rtb_notifier_free(rtb_notifier *n) {
    if (!n) return;
    while (n->head) {
        notice *nt = n->head;
        rtb_call_cancel(&nt->call);
        nt->owner_out = NULL; /* its owner may be gone already */
        unlink_notice(nt);
        free(nt);
    }
    while (n->ntargets)
        retire_target(n, n->ntargets - 1);
    free(n);
}

const rtb_notice_stats *rtb_notifier_stats(const rtb_notifier *n) {
    return &n->stats;
}

size_t rtb_notifier_pending(const rtb_notifier *n) {
    return n->pending;
}

void rtb_notifier_cancel_all(rtb_notifier *n,
                             void (*fn)(void *arg, rtb_notice_kind kind, const char *url,
                                        void *notice_arg),
                             void *arg) {
    while (n->head) {
        notice *nt = n->head;
        rtb_call_cancel(&nt->call);
        unlink_notice(nt);
        fn(arg, nt->kind, nt->url, nt->arg);
        free(nt);
    }
}

/* The target for host:port, made when new; when the table is full the one
 * used longest ago is retired first (SPEC 15). NULL when memory ran out. */
static target *find_target(rtb_notifier *n, const char *host, int port) {
    size_t lru = 0;
    for (size_t i = 0; i < n->ntargets; i++) {
        target *t = &n->targets[i];
        if (t->port == port && strcasecmp(t->host, host) == 0) {
            t->used = ++n->uses;
            return t;
        }
        if (t->used < n->targets[lru].used) lru = i;
    }
    if (n->ntargets == MAX_TARGETS) {
        retire_target(n, lru);
        n->stats.targets_evicted++;
    }
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
    t->used = ++n->uses;
    n->ntargets++;
    return t;
}

static void on_notice_done(void *arg, const rtb_call_result *r) {
    notice *nt = arg;
    rtb_notifier *n = nt->n;
    int ok = r->status == RTB_CALL_OK && r->code >= 200 && r->code < 300;
    if (ok)
        n->stats.sent[nt->kind]++;
    else
        n->stats.failed[nt->kind]++;
    unlink_notice(nt);
    if (nt->done) nt->done(nt->arg, nt->kind, nt->url, ok);
    free(nt);
}

static int host_allowed(const char *const *hosts, size_t nhosts, const char *host) {
    if (nhosts == 0) return 1;
    for (size_t i = 0; i < nhosts; i++)
        if (strcasecmp(hosts[i], host) == 0) return 1;
    return 0;
}

/* The URL parsed when it is http:// with a host, else NULL. */
static struct evhttp_uri *parse_http(const char *url) {
    struct evhttp_uri *uri = evhttp_uri_parse(url);
    const char *scheme = uri ? evhttp_uri_get_scheme(uri) : NULL;
    const char *host = uri ? evhttp_uri_get_host(uri) : NULL;
    if (scheme && strcmp(scheme, "http") == 0 && host && *host) return uri;
    if (uri) evhttp_uri_free(uri);
    return NULL;
}

int rtb_notice_url_ok(const char *url, const char *const *hosts, size_t nhosts) {
    struct evhttp_uri *uri = parse_http(url);
    int ok = uri && host_allowed(hosts, nhosts, evhttp_uri_get_host(uri));
    if (uri) evhttp_uri_free(uri);
    return ok;
}

int rtb_notify(rtb_notifier *n, const rtb_notice *nt) {
    if (n->pending >= n->max_pending || (nt->owner_out && *nt->owner_out >= nt->owner_cap)) {
        n->stats.dropped++;
        return RTB_NOTICE_DROPPED;
    }
    struct evhttp_uri *uri = parse_http(nt->url);
    if (!uri) {
        n->stats.failed[nt->kind]++;
        return RTB_NOTICE_REFUSED;
    }
    const char *host = evhttp_uri_get_host(uri);
    if (!host_allowed(nt->hosts, nt->nhosts, host)) {
        n->stats.refused_host++;
        evhttp_uri_free(uri);
        return RTB_NOTICE_REFUSED;
    }
    const char *path = evhttp_uri_get_path(uri), *query = evhttp_uri_get_query(uri);
    int port = evhttp_uri_get_port(uri);
    char resource[RESOURCE_MAX];
    int len = snprintf(resource, sizeof(resource), "%s%s%s", path && *path ? path : "/",
                       query ? "?" : "", query ? query : "");
    if (len <= 0 || (size_t)len >= sizeof(resource)) {
        n->stats.failed[nt->kind]++;
        evhttp_uri_free(uri);
        return RTB_NOTICE_REFUSED;
    }
    size_t url_len = strlen(nt->url);
    target *t = find_target(n, host, port > 0 ? port : 80);
    notice *out = t ? calloc(1, sizeof(*out) + url_len + 1) : NULL;
    int rc = RTB_NOTICE_DROPPED;
    if (out) {
        memcpy(out->url, nt->url, url_len + 1);
        out->n = n;
        out->kind = nt->kind;
        out->owner_out = nt->owner_out;
        out->done = nt->done;
        out->arg = nt->arg;
        if (rtb_call_start(&out->call, t->pool, RTB_GET, resource, host, NULL, 0, NULL, 0,
                           on_notice_done, out) == 0) {
            out->prev = n->tail;
            if (n->tail)
                n->tail->next = out;
            else
                n->head = out;
            n->tail = out;
            n->pending++;
            if (out->owner_out) (*out->owner_out)++;
            rc = 0;
        } else {
            free(out);
        }
    }
    if (rc != 0) n->stats.dropped++;
    evhttp_uri_free(uri);
    return rc;
}

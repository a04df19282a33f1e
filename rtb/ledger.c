/* ledger.c -- win, loss and billing notices that are not lost (SPEC 9, 14).
 *
 * A notice kept in Redis is a member of a pending set:
 *   {kind}\x1f{first attempt, Unix ms}\x1f{ad_id}\x1f{request_id}\x1f{advertiser_id}\x1f{url}
 * kind is 'b' (bill), 'w' or 'l'; ids never hold the separator (SPEC 2
 * rule) and the URL is last, so it may hold anything. A winner's burl is
 * kept as the tail of that (ad onwards), so the billing script only puts
 * the kind and the time in front. One that this exchange is sending is an
 * `attempt`: its member, linked so a claim does not send it twice. */
#include "rtb/ledger.h"

#include "rtb/log.h"

#include <event2/event.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_S 1            /* claim what is due in Redis this often */
#define LEASE_MS 30000      /* a claimed notice comes due again after this */
#define CLAIM_MAX 500       /* notices claimed per poll at most */
#define FIRST_RETRY_MS 1000 /* then doubling (SPEC 14) */
#define SEP '\x1f'
#define SEP_S "\x1f"
#define FIELDS 6 /* kind, t0, ad, request, advertiser, url */

typedef struct attempt {
    rtb_ledger *l;
    int set; /* 0: STORE_BURL_PENDING, 1: STORE_NOTICES_PENDING */
    rtb_notice_kind kind;
    long long t0_ms;
    const char *ad, *request_id, *advertiser, *url; /* inside `fields` */
    uint64_t hash;
    struct attempt *prev, *next;
    size_t len;
    char *fields; /* the member, each separator turned into '\0' */
    char member[];
} attempt;

struct rtb_ledger {
    store *store;
    rtb_registry *reg;
    const proto_config *cfg;
    rtb_notifier *notifier;
    struct event *poll;
    int claiming, stopped;
    attempt *attempts; /* out now */
    unsigned long long kept_seq;
    proto_buf url, value;
    rtb_ledger_stats stats;
};

static const char *const set_keys[2] = {STORE_BURL_PENDING, STORE_NOTICES_PENDING};

static long long wall_ms(void) {
    return (long long)(rtb_wall_us() / 1000);
}

static void on_poll(evutil_socket_t fd, short what, void *arg);

rtb_ledger *rtb_ledger_new(struct event_base *base, rtb_http *http, store *st, rtb_registry *reg,
                           const proto_config *cfg) {
    rtb_ledger *l = calloc(1, sizeof(*l));
    if (!l) return NULL;
    l->store = st;
    l->reg = reg;
    l->cfg = cfg;
    l->notifier = rtb_notifier_new(http, (size_t)cfg->limits.max_pending_notices);
    l->poll = event_new(base, -1, EV_PERSIST, on_poll, l);
    struct timeval tv = {POLL_S, 0};
    if (!l->notifier || !l->poll || event_add(l->poll, &tv) != 0) {
        rtb_ledger_free(l);
        return NULL;
    }
    return l;
}

static void unlink_attempt(attempt *a) {
    rtb_ledger *l = a->l;
    if (a->prev)
        a->prev->next = a->next;
    else
        l->attempts = a->next;
    if (a->next) a->next->prev = a->prev;
}

static void drop_one(void *arg, rtb_notice_kind kind, const char *url, void *notice_arg) {
    (void)arg;
    (void)kind;
    (void)url;
    attempt *a = notice_arg;
    if (!a) return;
    unlink_attempt(a);
    free(a);
}

void rtb_ledger_free(rtb_ledger *l) {
    if (!l) return;
    if (l->notifier) rtb_notifier_cancel_all(l->notifier, drop_one, l);
    rtb_notifier_free(l->notifier);
    if (l->poll) event_free(l->poll);
    proto_buf_free(&l->url);
    proto_buf_free(&l->value);
    free(l);
}

void rtb_ledger_stop(rtb_ledger *l) {
    l->stopped = 1;
    event_del(l->poll);
}

size_t rtb_ledger_out(const rtb_ledger *l) {
    return rtb_notifier_pending(l->notifier);
}

const rtb_ledger_stats *rtb_ledger_get_stats(const rtb_ledger *l) {
    return &l->stats;
}

const rtb_notice_stats *rtb_ledger_notice_stats(const rtb_ledger *l) {
    return rtb_notifier_stats(l->notifier);
}

/* ---- Sending ------------------------------------------------------------------------- */

static void on_attempt_done(void *arg, rtb_notice_kind kind, const char *url, int ok);

/* Send `url` on behalf of `b` (NULL: a notice whose host was checked
 * before it was kept), within its hosts and its share of
 * limits.max_pending_notices (SPEC 15). */
static int send_notice(rtb_ledger *l, rtb_notice_kind kind, const char *url, rtb_bidder *b,
                       unsigned share, attempt *a) {
    rtb_notice nt = {.kind = kind, .url = url, .done = a ? on_attempt_done : NULL, .arg = a};
    if (b) {
        nt.hosts = b->notice_hosts;
        nt.nhosts = b->nnotice_hosts;
        nt.owner_out = &b->notices_out;
        nt.owner_cap = share;
    }
    return rtb_notify(l->notifier, &nt);
}

/* Each active bidder's share of limits.max_pending_notices, at least 1. */
static unsigned share_of(const rtb_ledger *l) {
    size_t active = rtb_registry_active(l->reg);
    size_t max = (size_t)l->cfg->limits.max_pending_notices;
    if (max == 0) max = 100000;
    size_t share = max / (active ? active : 1);
    return share ? (unsigned)share : 1;
}

static void keep_burl(rtb_ledger *l, const rtb_txn_outcome *o, const rtb_txn_win *w);

void rtb_ledger_on_win(rtb_ledger *l, const rtb_txn_outcome *o) {
    unsigned share = o->nnotices ? share_of(l) : 0;
    for (size_t i = 0; i < o->nnotices; i++) {
        const rtb_txn_notice *nt = &o->notices[i];
        proto_buf_reset(&l->url);
        if (proto_notice_url(nt->url, &nt->macros, &l->url) != 0) continue;
        send_notice(l, nt->win ? RTB_NOTICE_WIN : RTB_NOTICE_LOSS, l->url.data, nt->bidder, share,
                    NULL);
    }
    for (size_t i = 0; i < o->nwins; i++)
        keep_burl(l, o, &o->wins[i]);
}

/* A winning bid's burl, kept for the impression of its ad (SPEC 14, 17). */
static void keep_burl(rtb_ledger *l, const rtb_txn_outcome *o, const rtb_txn_win *w) {
    const rtb_txn_notice *burl = &w->burl;
    if (!burl->url) return;
    proto_buf_reset(&l->url);
    if (proto_notice_url(burl->url, &burl->macros, &l->url) != 0) return;
    rtb_bidder *b = burl->bidder;
    if (!rtb_notice_url_ok(l->url.data, b->notice_hosts, b->nnotice_hosts)) {
        l->stats.burl_refused++;
        rtb_log(PROTO_LOG_DEBUG, "%s: the burl of %s is not http:// on one of its hosts",
                o->request_id, b->id);
        return;
    }
    /* The member's tail: ad, request, advertiser, URL. */
    proto_buf *v = &l->value;
    proto_buf_reset(v);
    /* An ad id outside the key rule (SPEC 15) could hold the separator: the
     * bill is then matched by the request alone, never by that ad. */
    const char *ad = w->ad_id && proto_key_id_ok(w->ad_id) ? w->ad_id : "";
    const char *parts[] = {ad, SEP_S, o->request_id, SEP_S, b->id, SEP_S};
    int rc = 0;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        rc |= proto_buf_append(v, parts[i], strlen(parts[i]));
    rc |= proto_buf_append(v, l->url.data, l->url.len);
    if (rc == 0 && store_burl_keep(l->store, o->request_id, ad, v->data, v->len) == 0)
        l->stats.burl_kept++;
    else
        l->stats.redis_errors++;
}

/* Split a member into an attempt; NULL when it is not one (or no memory). */
static attempt *attempt_new(rtb_ledger *l, int set, const char *member, size_t len) {
    attempt *a = calloc(1, sizeof(*a) + 2 * (len + 1));
    if (!a) return NULL;
    a->l = l;
    a->set = set;
    a->len = len;
    memcpy(a->member, member, len);
    a->fields = a->member + len + 1;
    memcpy(a->fields, member, len);
    char *f[FIELDS], *p = a->fields;
    size_t n = 0;
    f[n++] = p;
    while (n < FIELDS && (p = memchr(p, SEP, len - (size_t)(p - a->fields))) != NULL) {
        *p++ = '\0';
        f[n++] = p;
    }
    char *end = NULL;
    a->t0_ms = n == FIELDS ? strtoll(f[1], &end, 10) : 0;
    if (n < FIELDS || strlen(f[0]) != 1 || !strchr("bwl", f[0][0]) || !end || *end) {
        free(a);
        return NULL;
    }
    a->kind = f[0][0] == 'b' ? RTB_NOTICE_BILL : f[0][0] == 'w' ? RTB_NOTICE_WIN : RTB_NOTICE_LOSS;
    a->ad = f[2];
    a->request_id = f[3];
    a->advertiser = f[4];
    a->url = f[5];
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: only to skip equal members */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)member[i]) * 1099511628211ULL;
    a->hash = h;
    return a;
}

static int attempt_out(const rtb_ledger *l, const attempt *a) {
    for (const attempt *o = l->attempts; o; o = o->next)
        if (o->hash == a->hash && o->set == a->set && o->len == a->len &&
            memcmp(o->member, a->member, a->len) == 0)
            return 1;
    return 0;
}

/* A bill given up, or a member that is not one. */
static void give_up(rtb_ledger *l, int set, const char *member, size_t len, int bill) {
    store_notice_done(l->store, set_keys[set], member, len);
    if (bill) l->stats.burl_failed++;
}

/* Send a notice kept in Redis (this exchange holds its lease). */
static void start_attempt(rtb_ledger *l, int set, const char *member, size_t len) {
    attempt *a = attempt_new(l, set, member, len);
    if (!a) {
        rtb_log(PROTO_LOG_WARN, "%s: dropping a member that is not a notice", set_keys[set]);
        give_up(l, set, member, len, set == 0);
        return;
    }
    if (attempt_out(l, a)) { /* its lease ran out while it is still out here */
        free(a);
        return;
    }
    rtb_bidder *b = *a->advertiser ? rtb_registry_find(l->reg, a->advertiser) : NULL;
    int rc = send_notice(l, a->kind, a->url, b, share_of(l), a);
    if (rc == 0) {
        a->next = l->attempts;
        if (l->attempts) l->attempts->prev = a;
        l->attempts = a;
        return;
    }
    if (rc == RTB_NOTICE_REFUSED) {
        rtb_log(PROTO_LOG_WARN, "%s notice of %s refused for good: %s",
                rtb_notice_kind_str(a->kind), *a->request_id ? a->request_id : "a drained auction",
                a->url);
        give_up(l, set, member, len, a->kind == RTB_NOTICE_BILL);
    } /* dropped for now: due again when the lease runs out */
    free(a);
}

static void on_attempt_done(void *arg, rtb_notice_kind kind, const char *url, int ok) {
    (void)url;
    attempt *a = arg;
    rtb_ledger *l = a->l;
    unlink_attempt(a);
    const char *key = set_keys[a->set];
    long long now = wall_ms(), spent = now - a->t0_ms;
    if (kind != RTB_NOTICE_BILL) { /* a kept win or loss notice goes once */
        store_notice_done(l->store, key, a->member, a->len);
    } else if (ok) {
        store_notice_done(l->store, key, a->member, a->len);
        store_hincrby(l->store, "stats:advertiser:", a->advertiser, "billed", 1);
        rtb_bidder *adv = rtb_registry_find(l->reg, a->advertiser);
        if (adv) adv->stats.billed++;
        if (*a->ad) store_count_ad(l->store, a->ad, "billed", 1);
        l->stats.burl_billed++;
    } else if (spent >= l->cfg->notices.burl_retry_s * 1000) {
        rtb_log(PROTO_LOG_WARN, "burl of %s (%s) given up after %lld s of failures: %s",
                a->request_id, a->advertiser, spent / 1000, a->url);
        give_up(l, a->set, a->member, a->len, 1);
    } else { /* 1 s, 2 s, 4 s ... after the first attempt */
        long long wait = spent > FIRST_RETRY_MS ? spent : FIRST_RETRY_MS;
        store_notice_at(l->store, key, a->member, a->len, now + wait, 1);
        l->stats.burl_retried++;
    }
    free(a);
}

/* ---- Billing at the impression ------------------------------------------------------------- */

static void on_bill_claim(void *arg, store_status st, const char *member, size_t len) {
    rtb_ledger *l = arg;
    if (st == STORE_OK)
        start_attempt(l, 0, member, len);
    else if (st == STORE_ERR)
        l->stats.redis_errors++;
}

void rtb_ledger_on_impression(rtb_ledger *l, const char *request_id, const char *ad_id) {
    if (!request_id || !*request_id || !ad_id || !*ad_id) return;
    long long now = wall_ms();
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "b" SEP_S "%lld" SEP_S, now);
    if (store_bill_claim(l->store, request_id, ad_id, prefix, now, LEASE_MS, on_bill_claim, l) != 0)
        l->stats.redis_errors++;
}

/* ---- What Redis keeps ---------------------------------------------------------------------- */

static void on_claimed(void *arg, store_status st, long long burl_pending, const store_str *members,
                       const int *set, size_t n) {
    rtb_ledger *l = arg;
    l->claiming = 0;
    if (st != STORE_OK) {
        l->stats.redis_errors++;
        return;
    }
    l->stats.burl_pending = burl_pending;
    for (size_t i = 0; i < n; i++) {
        l->stats.resumed++;
        start_attempt(l, set[i] ? 1 : 0, members[i].s, members[i].len);
    }
}

static void on_poll(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rtb_ledger *l = arg;
    if (l->stopped || l->claiming || !store_connected(l->store)) return;
    if (store_notices_claim(l->store, wall_ms(), LEASE_MS, CLAIM_MAX, on_claimed, l) == 0)
        l->claiming = 1;
}

/* A notice still out when the drain ends: in Redis, due at once. */
static void keep_one(void *arg, rtb_notice_kind kind, const char *url, void *notice_arg) {
    rtb_ledger *l = arg;
    long long now = wall_ms();
    attempt *a = notice_arg;
    if (a) { /* kept already: due now */
        store_notice_at(l->store, set_keys[a->set], a->member, a->len, now, 1);
        unlink_attempt(a);
        free(a);
    } else { /* a win or loss notice of this exchange's auctions */
        char head[64];
        int n = snprintf(head, sizeof(head), "%c" SEP_S "%lld" SEP_S SEP_S "drain-%llu" SEP_S SEP_S,
                         kind == RTB_NOTICE_WIN ? 'w' : 'l', now, ++l->kept_seq);
        proto_buf *m = &l->value;
        proto_buf_reset(m);
        if (proto_buf_append(m, head, (size_t)n) != 0 ||
            proto_buf_append(m, url, strlen(url)) != 0 ||
            store_notice_at(l->store, STORE_NOTICES_PENDING, m->data, m->len, now, 0) != 0) {
            rtb_log(PROTO_LOG_WARN, "drain: a %s notice could not be kept: %s",
                    rtb_notice_kind_str(kind), url);
            return;
        }
    }
    l->stats.kept++;
}

void rtb_ledger_keep(rtb_ledger *l) {
    size_t out = rtb_notifier_pending(l->notifier);
    if (out) rtb_log(PROTO_LOG_INFO, "drain: keeping %zu notices still out in Redis", out);
    rtb_notifier_cancel_all(l->notifier, keep_one, l);
}

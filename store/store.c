/* store.c -- Redis for rtb-exchange: profiles, registry, results.
 *
 * Two `conn`s, each wrapping one hiredis async context on the libevent loop:
 * the command connection and the subscriber. A conn owns its reconnect: when
 * hiredis reports a failed connect or a disconnect it frees the context, and
 * the conn arms a timer (glue/backoff.h: 100 ms doubling to 5 s, plus up to
 * 25 % jitter) to make a new one. A conn is `ready` once Redis has answered
 * on it (AUTH with a password, else a PING; the subscriber: its SUBSCRIBE);
 * commands are refused (-1) until then.
 *
 * Timeouts (SPEC 15). hiredis 0.14 has no command timeout, and Redis answers
 * the commands of one connection in order, so it is enough to know how long
 * the oldest unanswered one has waited. No time is taken per command: a
 * timer ticking a few times per timeout sets a mark -- "every command sent
 * so far" (a count) and the time -- and the mark is met once that many have
 * been answered (sent minus still out). A mark older than timeout_ms means
 * some command has waited longer: the connection is dropped as a disconnect
 * would drop it (redisAsyncFree: every callback runs with a NULL reply) and
 * reconnected with the usual backoff. A connection not ready timeout_ms
 * after its start is dropped the same way.
 *
 * Callbacks: a command sent with a user callback carries a small `call`
 * record (fn + arg); hiredis runs our trampoline exactly once, with a NULL
 * reply when the connection went away, and the trampoline calls the user. */
#include "store/store.h"

#include "auction/auction.h"

#include "glue/redis_ev.h"

#include "glue/backoff.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <event2/event.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RETRY_MIN_US 100000
#define RETRY_MAX_US 5000000
#define RETRY_JITTER_PCT 25
#define TICKS_PER_TIMEOUT 4
#define TICK_MAX_US 100000
#define SCAN_COUNT "1000"
#define REGISTRY_PREFIX "advertiser:targeting:"
#define UPDATES_CHANNEL "advertiser:updates"

#define PROFILE_PREFIX "user:profile:"
#define RESULTS_PREFIX "auction:results:"
#define ERRORS_CHANNEL "auction:errors"
/* Keys and channels hold an id of at most 128 UTF-8 characters (SPEC 2). */
#define PROFILE_KEY_MAX 600

/* prefix + id into buf; returns the length, or 0 when it does not fit. The
 * hot-path commands are sent as argv: no format string to parse. */
static size_t make_key(char *buf, size_t cap, const char *prefix, const char *id) {
    size_t p = strlen(prefix), n = strlen(id);
    if (p + n + 1 > cap) return 0;
    memcpy(buf, prefix, p);
    memcpy(buf + p, id, n + 1);
    return p + n;
}

typedef struct conn {
    struct store *s;
    int is_sub;
    redisAsyncContext *ac; /* NULL while disconnected */
    int ready;
    backoff backoff; /* of the reconnect timer */
    struct event *retry;
    int64_t start_us;             /* the context's connect began (not ready: times out) */
    int marked;                   /* a timeout mark is set (see the top) */
    unsigned long long mark_sent; /* commands sent when it was set */
    int64_t mark_us;              /* and when */
    int dropping;                 /* inside conn_drop: hiredis's disconnect callback is ours */
    int timed_out;                /* the last drop was a timeout, not yet ready since */
} conn;

typedef struct pub_entry {
    struct pub_entry *next;
    size_t chan_len, len;
    int logged;                              /* also XADD to the result log (SPEC 14) */
    int replies;                             /* replies still due for it on the wire: 0, 1 or 2 */
    size_t bytes;                            /* the whole allocation (the byte bound) */
    const char *request_id, *status, *topic; /* the log's fields, inside data */
    char data[]; /* channel NUL payload NUL [request_id NUL status NUL topic NUL] */
} pub_entry;

typedef struct registry_load {
    int active;
    store_registry_fn *fn;
    void *arg;
    char **keys;
    size_t nkeys, cap;
} registry_load;

struct store {
    struct event_base *base;
    char *host;
    int port;
    char *username;
    char *password;
    store_state_fn *on_state;
    store_message_fn *on_update;
    store_message_fn *on_alerts;
    void *arg;
    conn cmd;
    conn sub;
    size_t pending;             /* commands other than PUBLISH awaiting a reply */
    size_t max_pending;         /* and their bound */
    unsigned long long sent;    /* commands sent on the command connection, ever */
    pub_entry *q_head, *q_tail; /* PUBLISH queue, oldest first */
    pub_entry *q_unsent;        /* first entry not on the wire, or NULL */
    size_t q_len, q_sent, q_max;
    size_t q_bytes, q_max_bytes;
    int freeing;
    int64_t timeout_us;
    struct event *tick; /* the timeout check */
    long log_maxlen;    /* 0: no result log */
    char log_maxlen_text[24];
    char ad_ttl_text[24]; /* stats:ad:{ad_id}'s TTL, seconds */
    uint64_t rng;
    registry_load load;
    store_stats stats;
};

typedef struct call {
    store *s;
    store_value_fn *fn;
    void *arg;
} call;

static void conn_connect(conn *c);
static void send_queued(store *s);
static void pub_pop(store *s);

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

static uint64_t next_random(store *s) {
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

static void report(conn *c, int connected, int auth_refused, const char *why) {
    store *s = c->s;
    if (s->freeing || c->is_sub || !s->on_state) return;
    s->on_state(s->arg, connected, auth_refused, why);
}

/* ---- Connection life -------------------------------------------------------- */

static void retry_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    conn *c = arg;
    c->s->stats.reconnects++;
    conn_connect(c);
}

static int64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void schedule_retry(conn *c) {
    store *s = c->s;
    if (s->freeing) return;
    int64_t now_us = mono_us();
    int64_t wait_us = backoff_fail(&c->backoff, now_us, next_random(s)) - now_us;
    struct timeval tv = {(time_t)(wait_us / 1000000), (suseconds_t)(wait_us % 1000000)};
    evtimer_add(c->retry, &tv);
}

static void set_ready(conn *c) {
    c->ready = 1;
    c->timed_out = 0;
    backoff_reset(&c->backoff);
    report(c, 1, 0, "connected");
    if (!c->is_sub) send_queued(c->s); /* what waited for Redis, in order */
}

/* Redis answered the PING a connection without a password starts with:
 * whatever the answer, Redis is there (an error such as NOAUTH is what
 * every command would get; it is counted there). */
static void on_hello(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    if (r) set_ready(privdata);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    conn *c = ac->data;
    if (status != REDIS_OK) {
        char why[256];
        snprintf(why, sizeof(why), "connect to %s:%d failed: %s", c->s->host, c->s->port,
                 ac->errstr ? ac->errstr : "unknown error");
        c->ac = NULL; /* hiredis frees the context after this callback */
        report(c, 0, 0, why);
        schedule_retry(c);
        return;
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    conn *c = ac->data;
    int was_ready = c->ready;
    c->ac = NULL;
    c->ready = 0;
    c->marked = 0;
    if (c->s->freeing || c->dropping) return;
    char why[256];
    snprintf(why, sizeof(why), "connection to %s:%d lost: %s", c->s->host, c->s->port,
             status == REDIS_OK ? "closed" : (ac->errstr ? ac->errstr : "error"));
    if (was_ready) report(c, 0, 0, why);
    schedule_retry(c);
}

static void on_auth(redisAsyncContext *ac, void *r, void *privdata) {
    conn *c = privdata;
    redisReply *reply = r;
    if (!reply) return; /* connection gone: on_disconnect handles it */
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[256];
        snprintf(why, sizeof(why), "Redis refused the credentials: %s", reply->str);
        report(c, 0, 1, why);
        redisAsyncDisconnect(ac);
        return;
    }
    if (!c->is_sub) set_ready(c); /* the subscriber is ready once subscribed */
}

/* Every reply of the subscriber: a confirmation per channel, then its
 * messages, each naming its channel (element 1). */
static void on_sub_message(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    conn *c = privdata;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return;
    redisReply *kind = reply->element[0], *channel = reply->element[1],
               *payload = reply->element[2];
    if (kind->type != REDIS_REPLY_STRING || channel->type != REDIS_REPLY_STRING) return;
    store_message_fn *fn =
        strcmp(channel->str, STORE_ALERT_UPDATES) == 0 ? c->s->on_alerts : c->s->on_update;
    if (strcmp(kind->str, "subscribe") == 0) {
        c->ready = 1;
        c->timed_out = 0;
        backoff_reset(&c->backoff);
        /* Updates may have been missed while we were away: reload now. */
        if (fn) fn(c->s->arg, "", 0);
        return;
    }
    if (strcmp(kind->str, "message") == 0 && payload->type == REDIS_REPLY_STRING && fn)
        fn(c->s->arg, payload->str, payload->len);
}

static void conn_connect(conn *c) {
    store *s = c->s;
    redisAsyncContext *ac = redisAsyncConnect(s->host, s->port);
    if (!ac || ac->err) {
        char why[256];
        snprintf(why, sizeof(why), "connect to %s:%d failed: %s", s->host, s->port,
                 ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        report(c, 0, 0, why);
        schedule_retry(c);
        return;
    }
    ac->data = c;
    c->ac = ac;
    c->start_us = mono_us();
    c->marked = 0;
    if (redis_ev_attach(ac, s->base) != 0) {
        redisAsyncFree(ac);
        c->ac = NULL;
        report(c, 0, 0, "out of memory");
        schedule_retry(c);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (s->password) {
        if (s->username)
            redisAsyncCommand(ac, on_auth, c, "AUTH %s %s", s->username, s->password);
        else
            redisAsyncCommand(ac, on_auth, c, "AUTH %s", s->password);
    } else if (!c->is_sub) {
        redisAsyncCommand(ac, on_hello, c, "PING");
    }
    if (c->is_sub)
        redisAsyncCommand(ac, on_sub_message, c,
                          "SUBSCRIBE " UPDATES_CHANNEL " " STORE_ALERT_UPDATES);
}

/* ---- Timeouts (SPEC 15; see the top) ---------------------------------------------- */

/* Drop c's context as a disconnect would: the callbacks of the commands out
 * run now with a NULL reply (STORE_ERR; PUBLISHes stay queued), then the
 * reconnect is armed. Reported (`why`) only for the first timeout of an
 * outage. Never from inside a hiredis callback (the tick calls it). */
static void conn_drop(conn *c, const char *why) {
    redisAsyncContext *ac = c->ac;
    int report_it = !c->timed_out;
    c->ac = NULL;
    c->ready = 0; /* the callbacks below find the store down: nothing new is sent */
    c->marked = 0;
    c->timed_out = 1;
    c->s->stats.timeouts++;
    c->dropping = 1;
    redisAsyncFree(ac);
    c->dropping = 0;
    if (report_it) report(c, 0, 0, why);
    schedule_retry(c);
}

static void check_conn(conn *c, int64_t now_us) {
    store *s = c->s;
    char why[512];
    if (!c->ac) return;
    if (!c->ready) {
        if (now_us - c->start_us < s->timeout_us) return;
        snprintf(why, sizeof(why),
                 "no answer from %s:%d within %lld ms of connecting (timeout %lld ms): "
                 "dropping the connection and reconnecting",
                 s->host, s->port, (long long)((now_us - c->start_us) / 1000),
                 (long long)(s->timeout_us / 1000));
        conn_drop(c, why);
        return;
    }
    if (c->is_sub) return; /* subscribed: it only listens */
    size_t out = s->pending + s->q_sent;
    if (c->marked && s->sent - out >= c->mark_sent) c->marked = 0; /* all answered */
    if (c->marked && now_us - c->mark_us >= s->timeout_us) {
        snprintf(why, sizeof(why),
                 "no answer from %s:%d for %lld ms (timeout %lld ms; %zu commands unanswered, "
                 "%zu results queued): dropping the connection and reconnecting",
                 s->host, s->port, (long long)((now_us - c->mark_us) / 1000),
                 (long long)(s->timeout_us / 1000), out, s->q_len);
        conn_drop(c, why);
        return;
    }
    if (!c->marked && out > 0) {
        c->marked = 1;
        c->mark_sent = s->sent;
        c->mark_us = now_us;
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    store *s = arg;
    int64_t now_us = mono_us();
    check_conn(&s->cmd, now_us);
    check_conn(&s->sub, now_us);
}

static int conn_init(store *s, conn *c, int is_sub) {
    c->s = s;
    c->is_sub = is_sub;
    backoff_init(&c->backoff, RETRY_MIN_US, RETRY_MAX_US, RETRY_JITTER_PCT);
    c->retry = evtimer_new(s->base, retry_cb, c);
    return c->retry ? 0 : -1;
}

store *store_new(struct event_base *base, const store_options *opt) {
    store *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->base = base;
    s->host = strdup(opt->host ? opt->host : "127.0.0.1");
    s->port = opt->port;
    s->username = dup_or_null(opt->username);
    s->password = dup_or_null(opt->password);
    s->on_state = opt->on_state;
    s->on_update = opt->on_update;
    s->on_alerts = opt->on_alerts;
    s->arg = opt->arg;
    s->q_max = opt->max_pending_publishes > 0 ? opt->max_pending_publishes : 100000;
    s->q_max_bytes =
        opt->max_pending_publish_bytes > 0 ? opt->max_pending_publish_bytes : 256u << 20;
    s->max_pending = opt->max_pending_commands > 0 ? opt->max_pending_commands : 100000;
    s->timeout_us = (opt->timeout_ms > 0 ? opt->timeout_ms : 1000) * (int64_t)1000;
    s->log_maxlen = opt->log_maxlen > 0 ? opt->log_maxlen : 0;
    snprintf(s->log_maxlen_text, sizeof(s->log_maxlen_text), "%ld", s->log_maxlen);
    snprintf(s->ad_ttl_text, sizeof(s->ad_ttl_text), "%ld",
             opt->ad_ttl_s > 0 ? opt->ad_ttl_s : 7L * 86400);
    s->rng = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ULL;
    s->tick = event_new(base, -1, EV_PERSIST, on_tick, s);
    if (!s->host || !s->tick || conn_init(s, &s->cmd, 0) != 0 || conn_init(s, &s->sub, 1) != 0 ||
        (opt->username && !s->username) || (opt->password && !s->password)) {
        store_free(s);
        return NULL;
    }
    /* A few ticks per timeout: a wait is seen at most about a tick late. */
    int64_t tick_us = s->timeout_us / TICKS_PER_TIMEOUT;
    if (tick_us > TICK_MAX_US) tick_us = TICK_MAX_US;
    struct timeval tv = {(time_t)(tick_us / 1000000), (suseconds_t)(tick_us % 1000000)};
    event_add(s->tick, &tv);
    conn_connect(&s->cmd);
    conn_connect(&s->sub);
    return s;
}

static void registry_load_reset(registry_load *l) {
    for (size_t i = 0; i < l->nkeys; i++)
        free(l->keys[i]);
    free(l->keys);
    memset(l, 0, sizeof(*l));
}

void store_free(store *s) {
    if (!s) return;
    s->freeing = 1;
    if (s->tick) event_free(s->tick);
    conn *conns[2] = {&s->cmd, &s->sub};
    for (int i = 0; i < 2; i++) {
        conn *c = conns[i];
        if (c->retry) event_free(c->retry);
        if (c->ac) redisAsyncFree(c->ac); /* pending callbacks run with NULL */
        c->ac = NULL;
    }
    registry_load_reset(&s->load);
    s->q_sent = 0;
    while (s->q_head)
        pub_pop(s);
    free(s->host);
    free(s->username);
    free(s->password);
    free(s);
}

int store_connected(const store *s) {
    return s->cmd.ready;
}

size_t store_pending(const store *s) {
    return s->pending + s->q_len;
}

size_t store_commands_pending(const store *s) {
    return s->pending;
}

const store_stats *store_get_stats(const store *s) {
    return &s->stats;
}

/* ---- Commands ------------------------------------------------------------------ */

static void on_value(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    call *cl = privdata;
    redisReply *reply = r;
    cl->s->pending--;
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        cl->fn(cl->arg, STORE_ERR, NULL, 0);
    else if (reply->type == REDIS_REPLY_NIL)
        cl->fn(cl->arg, STORE_NIL, NULL, 0);
    else if (reply->type == REDIS_REPLY_STRING)
        cl->fn(cl->arg, STORE_OK, reply->str, reply->len);
    else
        cl->fn(cl->arg, STORE_ERR, NULL, 0);
    free(cl);
}

/* SET NX answers +OK when it set the key and nil when the key existed. */
static void on_set_nx(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    call *cl = privdata;
    redisReply *reply = r;
    cl->s->pending--;
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        cl->fn(cl->arg, STORE_ERR, NULL, 0);
    else
        cl->fn(cl->arg, reply->type == REDIS_REPLY_NIL ? STORE_NIL : STORE_OK, NULL, 0);
    free(cl);
}

/* Fire-and-forget writes (SETEX of a profile, HINCRBY of a counter, SET of
 * a last click): only their failures are counted. */
static void on_write(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    store *s = privdata;
    redisReply *reply = r;
    s->pending--;
    if (!reply || reply->type == REDIS_REPLY_ERROR) s->stats.writes_failed++;
}

/* 1 when one more command may wait on Redis (max_pending_commands, SPEC
 * 15); else counts the refusal. */
static int room_for_command(store *s) {
    if (s->pending < s->max_pending) return 1;
    s->stats.commands_refused++;
    return 0;
}

/* A command other than PUBLISH went out on the command connection. */
static void command_sent(store *s) {
    s->pending++;
    s->sent++;
}

/* Send argv (lengths in argvlen; NULL entries of argvlen mean strlen). With
 * `fn`, `reply_cb` answers through a `call` record to fn(arg) exactly once;
 * without, the command is a fire-and-forget write. Returns 0, or -1 when not
 * connected or max_pending_commands are waiting (a write is then counted as
 * failed; fn never runs). */
static int send_argv(store *s, redisCallbackFn *reply_cb, store_value_fn *fn, void *arg, int argc,
                     const char **argv, size_t *argvlen) {
    for (int i = 0; i < argc; i++)
        if (argvlen[i] == 0) argvlen[i] = strlen(argv[i]);
    call *cl = NULL;
    int rc = REDIS_ERR;
    if (s->cmd.ready && room_for_command(s) && (!fn || (cl = malloc(sizeof(*cl))))) {
        if (cl) *cl = (call){s, fn, arg};
        rc = redisAsyncCommandArgv(s->cmd.ac, fn ? reply_cb : on_write, fn ? (void *)cl : s, argc,
                                   argv, argvlen);
    }
    if (rc != REDIS_OK) {
        free(cl);
        if (!fn) s->stats.writes_failed++;
        return -1;
    }
    command_sent(s);
    return 0;
}

int store_get(store *s, const char *key, store_value_fn *fn, void *arg) {
    const char *argv[2] = {"GET", key};
    size_t argvlen[2] = {0, 0};
    return send_argv(s, on_value, fn, arg, 2, argv, argvlen);
}

int store_profile_get(store *s, const char *user_id, store_value_fn *fn, void *arg) {
    char key[PROFILE_KEY_MAX];
    if (make_key(key, sizeof(key), PROFILE_PREFIX, user_id) == 0) return -1;
    return store_get(s, key, fn, arg);
}

int store_profile_put(store *s, const char *user_id, const char *json, size_t len, long ttl_s) {
    char key[PROFILE_KEY_MAX], ttl[24];
    snprintf(ttl, sizeof(ttl), "%ld", ttl_s);
    const char *argv[4] = {"SETEX", key, ttl, json};
    size_t argvlen[4] = {0, make_key(key, sizeof(key), PROFILE_PREFIX, user_id), 0, len};
    if (argvlen[1] == 0) return -1;
    return send_argv(s, NULL, NULL, NULL, 4, argv, argvlen);
}

int store_hincrby(store *s, const char *prefix, const char *id, const char *field, long long by) {
    char key[PROFILE_KEY_MAX], num[24];
    snprintf(num, sizeof(num), "%lld", by);
    const char *argv[4] = {"HINCRBY", key, field, num};
    size_t argvlen[4] = {0, make_key(key, sizeof(key), prefix, id), 0, 0};
    if (argvlen[1] == 0) return -1;
    return send_argv(s, NULL, NULL, NULL, 4, argv, argvlen);
}

#define BUDGET_PREFIX "budget:"

/* budget:{advertiser_id}:{yyyymmdd} into buf; the length, or 0. */
static size_t make_budget_key(char *buf, size_t cap, const char *advertiser_id, long day) {
    int n = snprintf(buf, cap, BUDGET_PREFIX "%s:%08ld", advertiser_id, day);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* KEYS: stats:ad:{ad_id}. ARGV: the field, the increment, the TTL: a
 * per-ad hash expires that long after its last write (SPEC 15), here and in
 * win_script, with the store's one ad_ttl_text. */
static const char ad_script[] = "redis.call('HINCRBY',KEYS[1],ARGV[1],ARGV[2]) "
                                "redis.call('EXPIRE',KEYS[1],ARGV[3]) "
                                "return 1";

int store_count_ad(store *s, const char *ad_id, const char *field, long long by) {
    char key[PROFILE_KEY_MAX], num[24];
    snprintf(num, sizeof(num), "%lld", by);
    const char *argv[7] = {"EVAL", ad_script, "1", key, field, num, s->ad_ttl_text};
    size_t argvlen[7] = {4, sizeof(ad_script) - 1, 1,
                         make_key(key, sizeof(key), "stats:ad:", ad_id)};
    if (argvlen[3] == 0) return -1;
    return send_argv(s, NULL, NULL, NULL, 7, argv, argvlen);
}

/* KEYS: the advertiser's hash, then the ad's when there is one, then (only
 * for an advertiser with a budget) its day's budget key; ARGV[1]: the
 * clearing price, micros; ARGV[2]: the ad's TTL. spend_micros is the exact
 * sum's text without its last three digits: floor(sum / 1000) with no
 * floating point. */
static const char win_script[] =
    /* The budget key, when there is one, is the last and the only one
     * named budget:..., so the counters below never touch it. */
    "local n=#KEYS "
    "local budget=string.sub(KEYS[n],1,7)=='budget:' "
    "if budget then n=n-1 end "
    /* The counters (SPEC 10, 14). */
    "for i=1,n do local k=KEYS[i] "
    "redis.call('HINCRBY',k,'wins',1) "
    "redis.call('HINCRBY',k,'spend_cpm_micros',ARGV[1]) "
    "local t=redis.call('HGET',k,'spend_cpm_micros') "
    "redis.call('HSET',k,'spend_micros',#t>3 and string.sub(t,1,#t-3) or '0') "
    "end "
    /* The ad's hash expires ad_ttl_s after its last write (SPEC 15). */
    "if n>=2 then redis.call('EXPIRE',KEYS[2],ARGV[2]) end "
    /* Budget (SPEC 16), a part of its own: the day's exact sum of clearing
     * micros, shared by every exchange, kept two days (STORE_BUDGET_TTL_S).
     * After the counters, so that a key someone broke cannot cost them the
     * win. */
    "if budget then "
    "redis.call('INCRBY',KEYS[#KEYS],ARGV[1]) "
    "redis.call('EXPIRE',KEYS[#KEYS],172800) "
    "end "
    "return 1";
_Static_assert(STORE_BUDGET_TTL_S == 172800, "win_script's EXPIRE says 172800");

int store_count_win(store *s, const char *advertiser_id, const char *ad_id,
                    long long clearing_micros, long budget_day) {
    char adv_key[PROFILE_KEY_MAX], ad_key[PROFILE_KEY_MAX], budget_key[PROFILE_KEY_MAX];
    char spend[AUCTION_MICROS_STRLEN], nkeys[4];
    size_t spend_len = auction_decimal_format(clearing_micros, 0, spend);
    const char *argv[8] = {"EVAL", win_script, nkeys, adv_key};
    size_t argvlen[8] = {4, sizeof(win_script) - 1, 0,
                         make_key(adv_key, sizeof(adv_key), "stats:advertiser:", advertiser_id)};
    if (argvlen[3] == 0) return -1;
    int argc = 4;
    if (ad_id && *ad_id) {
        argv[argc] = ad_key;
        if ((argvlen[argc++] = make_key(ad_key, sizeof(ad_key), "stats:ad:", ad_id)) == 0)
            return -1;
    }
    if (budget_day != 0) {
        argv[argc] = budget_key;
        if ((argvlen[argc++] =
                 make_budget_key(budget_key, sizeof(budget_key), advertiser_id, budget_day)) == 0)
            return -1;
    }
    nkeys[0] = (char)('0' + (argc - 3)); /* 1 to 3 keys */
    nkeys[1] = '\0';
    argvlen[2] = 1;
    argv[argc] = spend;
    argvlen[argc++] = spend_len;
    argv[argc++] = s->ad_ttl_text;
    return send_argv(s, NULL, NULL, NULL, argc, argv, argvlen);
}

/* ---- Budgets (SPEC 16) --------------------------------------------------------------- */

typedef struct sums_call {
    store *s;
    store_sums_fn *fn;
    void *arg;
    size_t n;
} sums_call;

static void on_sums(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    sums_call *cl = privdata;
    redisReply *reply = r;
    cl->s->pending--;
    long long *sums = NULL;
    int ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == cl->n &&
             (sums = calloc(cl->n, sizeof(*sums))) != NULL;
    for (size_t i = 0; ok && i < cl->n; i++) {
        const redisReply *v = reply->element[i];
        char *end;
        if (v->type != REDIS_REPLY_STRING) continue; /* no key: nothing spent */
        long long x = strtoll(v->str, &end, 10);
        if (end != v->str && *end == '\0') sums[i] = x;
    }
    if (ok)
        cl->fn(cl->arg, STORE_OK, sums, cl->n);
    else
        cl->fn(cl->arg, STORE_ERR, NULL, 0);
    free(sums);
    free(cl);
}

int store_budget_get(store *s, const char *const *ids, size_t n, long day, store_sums_fn *fn,
                     void *arg) {
    if (!s->cmd.ready || !room_for_command(s) || n == 0 || n > INT32_MAX - 1) return -1;
    /* One block: the argv, their lengths, then the keys, each
     * budget:{id}:{yyyymmdd} plus its NUL. */
    size_t head = (n + 1) * (sizeof(char *) + sizeof(size_t)), text = 0;
    for (size_t i = 0; i < n; i++)
        text += sizeof(BUDGET_PREFIX) + strlen(ids[i]) + 1 + 20;
    char *block = malloc(head + text);
    sums_call *cl = block ? malloc(sizeof(*cl)) : NULL;
    if (!cl) {
        free(block);
        return -1;
    }
    const char **argv = (const char **)(void *)block;
    size_t *argvlen = (size_t *)(void *)(block + (n + 1) * sizeof(char *));
    char *key = block + head, *end = block + head + text;
    argv[0] = "MGET";
    argvlen[0] = 4;
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = key;
        argvlen[i + 1] = make_budget_key(key, (size_t)(end - key), ids[i], day);
        if (argvlen[i + 1] == 0) {
            free(cl);
            free(block);
            return -1;
        }
        key += argvlen[i + 1] + 1;
    }
    *cl = (sums_call){s, fn, arg, n};
    int rc = redisAsyncCommandArgv(s->cmd.ac, on_sums, cl, (int)n + 1, argv, argvlen);
    free(block); /* hiredis has copied the command */
    if (rc != REDIS_OK) {
        free(cl);
        return -1;
    }
    command_sent(s);
    return 0;
}

int store_set_nx(store *s, const char *key, const char *value, long ttl_s, store_value_fn *fn,
                 void *arg) {
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%ld", ttl_s);
    const char *argv[6] = {"SET", key, value, "NX", "EX", ttl};
    size_t argvlen[6] = {0};
    return send_argv(s, on_set_nx, fn, arg, 6, argv, argvlen);
}

int store_set(store *s, const char *key, const char *value, long ttl_s) {
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%ld", ttl_s);
    const char *argv[5] = {"SET", key, value, "EX", ttl};
    size_t argvlen[5] = {0};
    return send_argv(s, NULL, NULL, NULL, 5, argv, argvlen);
}

/* ---- Notices kept in Redis (SPEC 14) -------------------------------------------- */

int store_burl_keep(store *s, const char *request_id, const char *ad_id, const char *value,
                    size_t len) {
    char key[PROFILE_KEY_MAX], ttl[24];
    snprintf(ttl, sizeof(ttl), "%d", STORE_BILLED_TTL_S);
    size_t key_len = make_key(key, sizeof(key), "burl:", request_id);
    if (key_len == 0) return -1;
    const char *hset[4] = {"HSET", key, ad_id, value};
    size_t hset_len[4] = {0, key_len, 0, len};
    const char *expire[3] = {"EXPIRE", key, ttl};
    size_t expire_len[3] = {0, key_len, 0};
    if (send_argv(s, NULL, NULL, NULL, 4, hset, hset_len) != 0) return -1;
    return send_argv(s, NULL, NULL, NULL, 3, expire, expire_len);
}

/* KEYS: burl:{rid} (a hash: ad id -> kept value), billed:{rid}, the
 * pending set. ARGV: the ad, the member's prefix, its score, the TTL. A
 * hash of several winning bids bills each ad once, under
 * billed:{rid}:{ad}. */
static const char bill_script[] =
    "local v=redis.call('HGET',KEYS[1],ARGV[1]) "
    "if not v then v=redis.call('HGET',KEYS[1],'') end "
    "if not v then return false end "
    "local billed=KEYS[2] "
    "if redis.call('HLEN',KEYS[1])>1 then billed=billed..':'..ARGV[1] end "
    "if not redis.call('SET',billed,'1','NX','EX',ARGV[4]) then return false end "
    "local m=ARGV[2]..v "
    "redis.call('ZADD',KEYS[3],ARGV[3],m) "
    "return m";

int store_bill_claim(store *s, const char *request_id, const char *ad_id, const char *prefix,
                     long long now_ms, long long lease_ms, store_value_fn *fn, void *arg) {
    char burl_key[PROFILE_KEY_MAX], billed_key[PROFILE_KEY_MAX], at[24], ttl[24];
    snprintf(at, sizeof(at), "%lld", now_ms + lease_ms);
    snprintf(ttl, sizeof(ttl), "%d", STORE_BILLED_TTL_S);
    const char *argv[10] = {"EVAL", bill_script, "3", burl_key, billed_key, STORE_BURL_PENDING,
                            ad_id,  prefix,      at,  ttl};
    size_t argvlen[10] = {4, sizeof(bill_script) - 1, 1,
                          make_key(burl_key, sizeof(burl_key), "burl:", request_id),
                          make_key(billed_key, sizeof(billed_key), "billed:", request_id)};
    if (argvlen[3] == 0 || argvlen[4] == 0) return -1;
    return send_argv(s, on_value, fn, arg, 10, argv, argvlen);
}

/* KEYS: the two pending sets. ARGV: now, the lease's end, the most to take.
 * Answers {ZCARD of the first, then per member: which set (0/1), member}. */
static const char claim_script[] =
    "local out={redis.call('ZCARD',KEYS[1])} "
    "local left=tonumber(ARGV[3]) "
    "for i,k in ipairs(KEYS) do "
    "if left<=0 then break end "
    "local due=redis.call('ZRANGEBYSCORE',k,'-inf',ARGV[1],'LIMIT',0,left) "
    "for _,m in ipairs(due) do "
    "redis.call('ZADD',k,'XX',ARGV[2],m) "
    "out[#out+1]=i-1 out[#out+1]=m "
    "end "
    "left=left-#due "
    "end "
    "return out";

typedef struct claim_call {
    store *s;
    store_claim_fn *fn;
    void *arg;
} claim_call;

static void on_claim(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    claim_call *cl = privdata;
    redisReply *reply = r;
    cl->s->pending--;
    size_t n = 0;
    store_str *members = NULL;
    int *set = NULL;
    int ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements % 2 == 1 &&
             reply->element[0]->type == REDIS_REPLY_INTEGER;
    if (ok && reply->elements > 1) {
        size_t cap = reply->elements / 2;
        members = malloc(cap * sizeof(*members));
        set = malloc(cap * sizeof(*set));
        ok = members && set;
        for (size_t i = 1; ok && i + 1 < reply->elements; i += 2) {
            const redisReply *which = reply->element[i], *m = reply->element[i + 1];
            if (which->type != REDIS_REPLY_INTEGER || m->type != REDIS_REPLY_STRING) continue;
            set[n] = (int)which->integer;
            members[n++] = (store_str){m->str, m->len};
        }
    }
    if (ok)
        cl->fn(cl->arg, STORE_OK, reply->element[0]->integer, members, set, n);
    else
        cl->fn(cl->arg, STORE_ERR, 0, NULL, NULL, 0);
    free(members);
    free(set);
    free(cl);
}

int store_notices_claim(store *s, long long now_ms, long long lease_ms, long max,
                        store_claim_fn *fn, void *arg) {
    char now[24], until[24], lim[24];
    snprintf(now, sizeof(now), "%lld", now_ms);
    snprintf(until, sizeof(until), "%lld", now_ms + lease_ms);
    snprintf(lim, sizeof(lim), "%ld", max);
    const char *argv[8] = {"EVAL", claim_script, "2", STORE_BURL_PENDING, STORE_NOTICES_PENDING,
                           now,    until,        lim};
    size_t argvlen[8] = {4, sizeof(claim_script) - 1};
    for (int i = 2; i < 8; i++)
        argvlen[i] = strlen(argv[i]);
    claim_call *cl = s->cmd.ready && room_for_command(s) ? malloc(sizeof(*cl)) : NULL;
    if (!cl) return -1;
    *cl = (claim_call){s, fn, arg};
    if (redisAsyncCommandArgv(s->cmd.ac, on_claim, cl, 8, argv, argvlen) != REDIS_OK) {
        free(cl);
        return -1;
    }
    command_sent(s);
    return 0;
}

int store_notice_at(store *s, const char *key, const char *member, size_t len, long long at_ms,
                    int xx) {
    char at[24];
    snprintf(at, sizeof(at), "%lld", at_ms);
    const char *argv[5] = {"ZADD", key, xx ? "XX" : at, at, member};
    size_t argvlen[5] = {0, 0, 0, 0, len};
    int argc = xx ? 5 : 4;
    if (!xx) {
        argv[3] = member;
        argvlen[3] = len;
    }
    return send_argv(s, NULL, NULL, NULL, argc, argv, argvlen);
}

int store_notice_done(store *s, const char *key, const char *member, size_t len) {
    const char *argv[3] = {"ZREM", key, member};
    size_t argvlen[3] = {0, 0, len};
    return send_argv(s, NULL, NULL, NULL, 3, argv, argvlen);
}

/* ---- Advertiser totals: HMGET of many hashes in one EVAL (SPEC 16) ---------------- */

/* KEYS: the hashes. ARGV: the fields. Answers one HMGET reply per key. */
static const char hashes_script[] = "local out={} "
                                    "for i,k in ipairs(KEYS) do "
                                    "out[i]=redis.call('HMGET',k,unpack(ARGV)) "
                                    "end "
                                    "return out";

typedef struct hashes_call {
    store *s;
    store_hashes_fn *fn;
    void *arg;
    size_t nkeys, nfields;
} hashes_call;

/* A field's value: its integer, or 0 when missing or not an integer. */
static long long reply_integer(const redisReply *r) {
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20) return 0;
    char text[24], *end = NULL;
    memcpy(text, r->str, r->len);
    text[r->len] = '\0';
    long long v = strtoll(text, &end, 10);
    return *end == '\0' ? v : 0;
}

static void on_hashes(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    hashes_call *cl = privdata;
    redisReply *reply = r;
    cl->s->pending--;
    long long *values = NULL;
    int ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == cl->nkeys;
    if (ok && cl->nkeys > 0) {
        values = calloc(cl->nkeys * cl->nfields, sizeof(*values));
        ok = values != NULL;
    }
    for (size_t i = 0; ok && i < cl->nkeys; i++) {
        const redisReply *h = reply->element[i];
        if (h->type != REDIS_REPLY_ARRAY || h->elements != cl->nfields) continue;
        for (size_t f = 0; f < cl->nfields; f++)
            values[i * cl->nfields + f] = reply_integer(h->element[f]);
    }
    static const long long none[1];
    if (ok)
        cl->fn(cl->arg, STORE_OK, values ? values : none, cl->nkeys, cl->nfields);
    else
        cl->fn(cl->arg, STORE_ERR, NULL, 0, 0);
    free(values);
    free(cl);
}

int store_hashes_get(store *s, const char *prefix, const char *const *ids, size_t nids,
                     const char *const *fields, size_t nfields, store_hashes_fn *fn, void *arg) {
    if (!s->cmd.ready || !room_for_command(s) || nfields == 0 ||
        nids > (size_t)INT32_MAX - nfields - 3)
        return -1;
    size_t argc = 3 + nids + nfields, plen = strlen(prefix), bytes = 0;
    for (size_t i = 0; i < nids; i++)
        bytes += plen + strlen(ids[i]) + 1;
    const char **argv = malloc(argc * sizeof(*argv));
    size_t *argvlen = malloc(argc * sizeof(*argvlen));
    char *keys = malloc(bytes + 1), numkeys[24];
    hashes_call *cl = malloc(sizeof(*cl));
    int rc = -1;
    if (argv && argvlen && keys && cl) {
        snprintf(numkeys, sizeof(numkeys), "%zu", nids);
        argv[0] = "EVAL";
        argv[1] = hashes_script;
        argv[2] = numkeys;
        char *k = keys;
        for (size_t i = 0; i < nids; i++) {
            size_t n = make_key(k, plen + strlen(ids[i]) + 1, prefix, ids[i]);
            argv[3 + i] = k;
            argvlen[3 + i] = n;
            k += n + 1;
        }
        for (size_t f = 0; f < nfields; f++) {
            argv[3 + nids + f] = fields[f];
            argvlen[3 + nids + f] = strlen(fields[f]);
        }
        argvlen[0] = 4;
        argvlen[1] = sizeof(hashes_script) - 1;
        argvlen[2] = strlen(numkeys);
        *cl = (hashes_call){s, fn, arg, nids, nfields};
        rc = redisAsyncCommandArgv(s->cmd.ac, on_hashes, cl, (int)argc, argv, argvlen) == REDIS_OK
                 ? 0
                 : -1;
    }
    free(argv);
    free(argvlen);
    free(keys);
    if (rc != 0) {
        free(cl);
        return -1;
    }
    command_sent(s);
    return 0;
}

/* ---- Publishing through the queue ------------------------------------------------ */

/* Every PUBLISH goes through one FIFO: an entry stays queued until Redis
 * acknowledges it, so a result sent just before the connection dropped is
 * sent again after the reconnect (at least once, in order). A result (and
 * an auction:errors report) is also appended to the result log: its XADD
 * follows its PUBLISH in the same write, and the entry leaves the queue
 * with the XADD's reply, the last of its two. `q_sent` counts the commands
 * on the wire; from `q_unsent` on entries wait. */

static void pub_pop(store *s) {
    pub_entry *e = s->q_head;
    if (s->q_unsent == e) s->q_unsent = e->next;
    s->q_head = e->next;
    if (!s->q_head) s->q_tail = NULL;
    s->q_len--;
    s->q_bytes -= e->bytes;
    free(e);
}

/* One reply for the head entry (replies come in order): `logged` says
 * whether it is the XADD's. The entry leaves with its last reply. */
static void queue_reply(store *s, redisReply *reply, int log_reply) {
    s->q_sent--;
    if (!reply) { /* connection gone: the entry stays and is sent again */
        if (s->q_sent == 0) s->q_unsent = s->q_head;
        return;
    }
    pub_entry *e = s->q_head;
    int failed = reply->type == REDIS_REPLY_ERROR;
    if (log_reply && failed)
        s->stats.log_failed++;
    else if (log_reply)
        s->stats.logged++;
    else if (failed)
        s->stats.publish_failed++;
    else
        s->stats.published++;
    if (--e->replies == 0) pub_pop(s);
}

static void on_published(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    queue_reply(privdata, r, 0);
}

static void on_logged(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    queue_reply(privdata, r, 1);
}

/* XADD auction:log MAXLEN ~ {log_maxlen} * request_id .. status .. result
 * .. [topic ..] for `e`. */
static int send_log(store *s, pub_entry *e) {
    const char *argv[14] = {"XADD",
                            "auction:log",
                            "MAXLEN",
                            "~",
                            s->log_maxlen_text,
                            "*",
                            "request_id",
                            e->request_id,
                            "status",
                            e->status,
                            "result",
                            e->data + e->chan_len + 1,
                            "topic",
                            e->topic};
    size_t argvlen[14];
    int argc = *e->topic ? 14 : 12; /* the topic of an auction:errors report */
    for (int i = 0; i < argc; i++)
        argvlen[i] = i == 11 ? e->len : strlen(argv[i]);
    return redisAsyncCommandArgv(s->cmd.ac, on_logged, s, argc, argv, argvlen);
}

static void send_queued(store *s) {
    if (!s->cmd.ready || s->freeing) return;
    for (pub_entry *e = s->q_unsent; e; e = e->next) {
        const char *argv[3] = {"PUBLISH", e->data, e->data + e->chan_len + 1};
        size_t argvlen[3] = {7, e->chan_len, e->len};
        if (redisAsyncCommandArgv(s->cmd.ac, on_published, s, 3, argv, argvlen) != REDIS_OK) return;
        e->replies = 1;
        s->q_sent++;
        s->sent++;
        if (e->logged && s->log_maxlen > 0 && send_log(s, e) == REDIS_OK) {
            e->replies++;
            s->q_sent++;
            s->sent++;
        }
        s->q_unsent = e->next;
    }
}

/* Make room for an entry of `bytes`: past q_max entries or q_max_bytes
 * bytes the oldest waiting entries are dropped. Returns -1 when the new one
 * must be dropped instead: entries are on the wire (Redis connected but
 * behind: the head cannot leave before its reply), or it alone is over the
 * byte bound. Every drop is counted. */
static int make_room(store *s, size_t bytes) {
    if (bytes > s->q_max_bytes) {
        s->stats.publish_dropped++;
        return -1;
    }
    while (s->q_len >= s->q_max || s->q_bytes + bytes > s->q_max_bytes) {
        s->stats.publish_dropped++;
        if (s->q_sent > 0) return -1;
        pub_pop(s);
    }
    return 0;
}

/* Queue channel + payload (copied) and send when connected, within the
 * bounds (make_room). */
static int enqueue(store *s, const char *prefix, const char *name, const char *payload, size_t len,
                   const char *request_id, const char *status, const char *topic) {
    size_t p = strlen(prefix), n = strlen(name);
    int logged = status != NULL && s->log_maxlen > 0;
    size_t rl = logged ? strlen(request_id) + 1 : 0, sl = logged ? strlen(status) + 1 : 0,
           tl = logged ? strlen(topic) + 1 : 0;
    size_t bytes = sizeof(pub_entry) + p + n + 1 + len + 1 + rl + sl + tl;
    if (make_room(s, bytes) != 0) return -1;
    pub_entry *e = malloc(bytes);
    if (!e) {
        s->stats.publish_dropped++;
        return -1;
    }
    e->next = NULL;
    e->bytes = bytes;
    e->chan_len = p + n;
    e->len = len;
    e->logged = logged;
    e->replies = 0;
    memcpy(e->data, prefix, p);
    memcpy(e->data + p, name, n + 1);
    memcpy(e->data + p + n + 1, payload, len);
    e->data[p + n + 1 + len] = '\0';
    if (logged) {
        char *f = e->data + p + n + 1 + len + 1;
        e->request_id = memcpy(f, request_id, rl);
        e->status = memcpy(f + rl, status, sl);
        e->topic = memcpy(f + rl + sl, topic, tl);
    }
    if (s->q_tail)
        s->q_tail->next = e;
    else
        s->q_head = e;
    s->q_tail = e;
    if (!s->q_unsent) s->q_unsent = e;
    s->q_len++;
    s->q_bytes += bytes;
    send_queued(s);
    return 0;
}

int store_publish(store *s, const char *channel, const char *payload, size_t len) {
    return enqueue(s, "", channel, payload, len, NULL, NULL, NULL);
}

int store_publish_result(store *s, const char *request_id, const char *status, const char *payload,
                         size_t len) {
    return enqueue(s, RESULTS_PREFIX, request_id, payload, len, request_id, status, "");
}

int store_publish_error(store *s, const char *request_id, const char *topic, const char *payload,
                        size_t len) {
    return enqueue(s, "", ERRORS_CHANNEL, payload, len, request_id ? request_id : "", "invalid",
                   topic ? topic : "");
}

size_t store_queued(const store *s) {
    return s->q_len;
}

size_t store_queued_bytes(const store *s) {
    return s->q_bytes;
}

/* ---- Registry: SCAN, then one MGET ------------------------------------------------ */

static void registry_finish(store *s, store_status st, const store_entry *e, size_t n) {
    registry_load l = s->load;
    s->load.keys = NULL;
    s->load.nkeys = s->load.cap = 0;
    s->load.active = 0;
    l.fn(l.arg, st, e, n);
    registry_load_reset(&l);
}

static void on_mget(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    store *s = privdata;
    redisReply *reply = r;
    s->pending--;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != s->load.nkeys) {
        registry_finish(s, STORE_ERR, NULL, 0);
        return;
    }
    store_entry *entries = calloc(reply->elements + 1, sizeof(*entries));
    if (!entries) {
        registry_finish(s, STORE_ERR, NULL, 0);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < reply->elements; i++) {
        redisReply *v = reply->element[i];
        if (v->type != REDIS_REPLY_STRING) continue; /* deleted since the SCAN */
        entries[n].id = s->load.keys[i] + strlen(REGISTRY_PREFIX);
        entries[n].value = v->str;
        entries[n].len = v->len;
        n++;
    }
    registry_finish(s, STORE_OK, entries, n);
    free(entries);
}

static void send_mget(store *s) {
    registry_load *l = &s->load;
    if (l->nkeys == 0) {
        registry_finish(s, STORE_OK, NULL, 0);
        return;
    }
    const char **argv = malloc((l->nkeys + 1) * sizeof(*argv));
    if (!argv) {
        registry_finish(s, STORE_ERR, NULL, 0);
        return;
    }
    argv[0] = "MGET";
    for (size_t i = 0; i < l->nkeys; i++)
        argv[i + 1] = l->keys[i];
    int rc = s->cmd.ready && room_for_command(s)
                 ? redisAsyncCommandArgv(s->cmd.ac, on_mget, s, (int)l->nkeys + 1, argv, NULL)
                 : REDIS_ERR;
    free(argv);
    if (rc != REDIS_OK) {
        registry_finish(s, STORE_ERR, NULL, 0);
        return;
    }
    command_sent(s);
}

static int keep_key(registry_load *l, const char *key) {
    for (size_t i = 0; i < l->nkeys; i++)
        if (strcmp(l->keys[i], key) == 0) return 0; /* SCAN may repeat a key */
    if (l->nkeys == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **keys = realloc(l->keys, cap * sizeof(*keys));
        if (!keys) return -1;
        l->keys = keys;
        l->cap = cap;
    }
    if (!(l->keys[l->nkeys] = strdup(key))) return -1;
    l->nkeys++;
    return 0;
}

static void on_scan(redisAsyncContext *ac, void *r, void *privdata);

static int send_scan(store *s, const char *cursor) {
    if (!s->cmd.ready || !room_for_command(s) ||
        redisAsyncCommand(s->cmd.ac, on_scan, s,
                          "SCAN %s MATCH " REGISTRY_PREFIX "* COUNT " SCAN_COUNT,
                          cursor) != REDIS_OK)
        return -1;
    command_sent(s);
    return 0;
}

static void on_scan(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    store *s = privdata;
    redisReply *reply = r;
    s->pending--;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        registry_finish(s, STORE_ERR, NULL, 0);
        return;
    }
    redisReply *keys = reply->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
        if (keys->element[i]->type != REDIS_REPLY_STRING) continue;
        if (keep_key(&s->load, keys->element[i]->str) != 0) {
            registry_finish(s, STORE_ERR, NULL, 0);
            return;
        }
    }
    const char *cursor = reply->element[0]->str;
    if (strcmp(cursor, "0") == 0) {
        send_mget(s);
    } else if (send_scan(s, cursor) != 0) {
        registry_finish(s, STORE_ERR, NULL, 0);
    }
}

int store_registry_load(store *s, store_registry_fn *fn, void *arg) {
    if (!s->cmd.ready || s->load.active) return -1;
    s->load.active = 1;
    s->load.fn = fn;
    s->load.arg = arg;
    if (send_scan(s, "0") != 0) {
        s->load.active = 0;
        return -1;
    }
    return 0;
}

/* ---- Alert rules (SPEC 16) ----------------------------------------------------- */

/* Each write to alerts:rules and its PUBLISH are one script, so no exchange
 * hears of a write before it is there, and the bound on the number of rules
 * holds whoever writes at the same time. */

typedef struct int_call {
    store *s;
    store_int_fn *fn;
    void *arg;
} int_call;

static void on_int(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    int_call *cl = privdata;
    redisReply *reply = r;
    cl->s->pending--;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        cl->fn(cl->arg, STORE_OK, reply->integer);
    else
        cl->fn(cl->arg, STORE_ERR, 0);
    free(cl);
}

/* Send argv with an int_call answering fn(arg); -1 when not connected. */
static int send_int(store *s, int argc, const char **argv, const size_t *argvlen, store_int_fn *fn,
                    void *arg) {
    int_call *cl = s->cmd.ready && room_for_command(s) ? malloc(sizeof(*cl)) : NULL;
    if (!cl) return -1;
    *cl = (int_call){s, fn, arg};
    if (redisAsyncCommandArgv(s->cmd.ac, on_int, cl, argc, argv, argvlen) != REDIS_OK) {
        free(cl);
        return -1;
    }
    command_sent(s);
    return 0;
}

/* KEYS: the hash. ARGV: the most rules, the most bytes of a value. */
static const char rules_load_script[] =
    "local n=redis.call('HLEN',KEYS[1]) "
    "if n>tonumber(ARGV[1]) then return n end "
    "local all=redis.call('HGETALL',KEYS[1]) "
    "for i=2,#all,2 do if #all[i]>tonumber(ARGV[2]) then all[i]='' end end "
    "return all";

typedef struct rules_call {
    store *s;
    store_rules_fn *fn;
    void *arg;
} rules_call;

static void on_rules(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    rules_call *cl = privdata;
    redisReply *reply = r;
    cl->s->pending--;
    store_str *names = NULL, *values = NULL;
    size_t n = 0;
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        cl->fn(cl->arg, STORE_NIL, reply->integer, NULL, NULL, 0);
    } else if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements % 2 == 0 &&
               (reply->elements == 0 ||
                ((names = malloc(reply->elements / 2 * sizeof(*names))) &&
                 (values = malloc(reply->elements / 2 * sizeof(*values)))))) {
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            const redisReply *k = reply->element[i], *v = reply->element[i + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
            names[n] = (store_str){k->str, k->len};
            values[n++] = (store_str){v->str, v->len};
        }
        cl->fn(cl->arg, STORE_OK, (long long)n, names, values, n);
    } else {
        cl->fn(cl->arg, STORE_ERR, 0, NULL, NULL, 0);
    }
    free(names);
    free(values);
    free(cl);
}

int store_alert_rules_load(store *s, long max_rules, long max_bytes, store_rules_fn *fn,
                           void *arg) {
    char most[24], bytes[24];
    snprintf(most, sizeof(most), "%ld", max_rules);
    snprintf(bytes, sizeof(bytes), "%ld", max_bytes);
    const char *argv[6] = {"EVAL", rules_load_script, "1", STORE_ALERT_RULES, most, bytes};
    size_t argvlen[6];
    for (int i = 0; i < 6; i++)
        argvlen[i] = strlen(argv[i]);
    rules_call *cl = s->cmd.ready && room_for_command(s) ? malloc(sizeof(*cl)) : NULL;
    if (!cl) return -1;
    *cl = (rules_call){s, fn, arg};
    if (redisAsyncCommandArgv(s->cmd.ac, on_rules, cl, 6, argv, argvlen) != REDIS_OK) {
        free(cl);
        return -1;
    }
    command_sent(s);
    return 0;
}

/* KEYS: the hash. ARGV: the name, the rule, the most rules, the channel. */
static const char rule_add_script[] =
    "if redis.call('HEXISTS',KEYS[1],ARGV[1])==1 then return 0 end "
    "if redis.call('HLEN',KEYS[1])>=tonumber(ARGV[3]) then return -1 end "
    "redis.call('HSET',KEYS[1],ARGV[1],ARGV[2]) "
    "redis.call('PUBLISH',ARGV[4],ARGV[1]) "
    "return 1";

int store_alert_rule_add(store *s, const char *name, const char *json, size_t len, long max_rules,
                         store_int_fn *fn, void *arg) {
    char most[24];
    snprintf(most, sizeof(most), "%ld", max_rules);
    const char *argv[8] = {"EVAL", rule_add_script,    "1", STORE_ALERT_RULES, name, json,
                           most,   STORE_ALERT_UPDATES};
    size_t argvlen[8];
    for (int i = 0; i < 8; i++)
        argvlen[i] = i == 5 ? len : strlen(argv[i]);
    return send_int(s, 8, argv, argvlen, fn, arg);
}

/* KEYS: the hash. ARGV: the name, the channel. */
static const char rule_delete_script[] = "local n=redis.call('HDEL',KEYS[1],ARGV[1]) "
                                         "if n==1 then redis.call('PUBLISH',ARGV[2],ARGV[1]) end "
                                         "return n";

int store_alert_rule_delete(store *s, const char *name, store_int_fn *fn, void *arg) {
    const char *argv[6] = {"EVAL", rule_delete_script, "1", STORE_ALERT_RULES,
                           name,   STORE_ALERT_UPDATES};
    size_t argvlen[6];
    for (int i = 0; i < 6; i++)
        argvlen[i] = strlen(argv[i]);
    return send_int(s, 6, argv, argvlen, fn, arg);
}

/* KEYS: the hash. ARGV: the most rules, the channel, then name, rule, ... */
static const char rules_put_script[] =
    "local left=0 "
    "for i=3,#ARGV,2 do "
    "if redis.call('HEXISTS',KEYS[1],ARGV[i])==1 or "
    "redis.call('HLEN',KEYS[1])<tonumber(ARGV[1]) then "
    "redis.call('HSET',KEYS[1],ARGV[i],ARGV[i+1]) else left=left+1 end "
    "end "
    "redis.call('PUBLISH',ARGV[2],'') "
    "return left";

int store_alert_rules_put(store *s, const store_str *names, const store_str *values, size_t n,
                          long max_rules, store_int_fn *fn, void *arg) {
    char most[24];
    snprintf(most, sizeof(most), "%ld", max_rules);
    size_t argc = 6 + 2 * n;
    const char **argv = malloc(argc * sizeof(*argv));
    size_t *argvlen = malloc(argc * sizeof(*argvlen));
    int rc = -1;
    if (argv && argvlen) {
        const char *head[6] = {"EVAL", rules_put_script,   "1", STORE_ALERT_RULES,
                               most,   STORE_ALERT_UPDATES};
        for (size_t i = 0; i < 6; i++) {
            argv[i] = head[i];
            argvlen[i] = strlen(head[i]);
        }
        for (size_t i = 0; i < n; i++) {
            argv[6 + 2 * i] = names[i].s;
            argvlen[6 + 2 * i] = names[i].len;
            argv[7 + 2 * i] = values[i].s;
            argvlen[7 + 2 * i] = values[i].len;
        }
        rc = send_int(s, (int)argc, argv, argvlen, fn, arg);
    }
    free(argv);
    free(argvlen);
    return rc;
}

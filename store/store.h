/* store.h -- everything rtb-exchange keeps in or sends through Redis.
 *
 * Two hiredis async connections on the server's libevent loop: one for
 * commands (profiles, registry scans, PUBLISH of results), one subscribed to
 * `advertiser:updates` and `alerts:updates`. Both reconnect by themselves with backoff (100 ms
 * doubling to 5 s, with jitter); AUTH is sent first when a password is set.
 *
 * Every asynchronous call follows the hiredis rule: it returns 0 and its
 * callback then runs exactly once, later, from the loop (with STORE_ERR when
 * the command failed or the connection went away), or it returns -1 at once
 * (not connected, or max_pending_commands already waiting) and the callback
 * never runs. Keys and channels: SPEC sections 3.2, 4 and 6. Never KEYS: the
 * registry is read with SCAN.
 *
 * Every wait on Redis ends (SPEC 15): a command unanswered for timeout_ms
 * drops its connection as a disconnect would (the callbacks of the commands
 * out run with STORE_ERR; PUBLISHes stay queued and go out again after the
 * reconnect), and so does a connection that Redis has not answered within
 * timeout_ms of its start. A connection is ready once Redis has answered on
 * it (AUTH, or a PING without a password), so a stalled Redis never gets the
 * queue again until it answers. */
#ifndef RTB_STORE_H
#define RTB_STORE_H

#include <stddef.h>

struct event_base;

typedef struct store store;

typedef enum store_status {
    STORE_OK = 0,
    STORE_NIL, /* the key does not exist */
    STORE_ERR, /* command failed, wrong reply type, or connection lost */
} store_status;

/* Connection state changes: `connected` 1 or 0, `why` a human reason
 * ("connected", "connection refused", "AUTH refused: WRONGPASS ..."). When
 * `auth_refused` is set, the server refused our credentials. */
typedef void store_state_fn(void *arg, int connected, int auth_refused, const char *why);
/* A message on a subscribed channel (advertiser:updates, alerts:updates);
 * also called with "" once the channel is subscribed (again), since
 * messages may have been missed while the subscriber was away. */
typedef void store_message_fn(void *arg, const char *payload, size_t len);

typedef struct store_options {
    const char *host; /* copied */
    int port;
    const char *username;             /* NULL: AUTH with the password alone (Redis < 6) */
    const char *password;             /* NULL: no AUTH */
    store_state_fn *on_state;         /* may be NULL */
    store_message_fn *on_update;      /* message on advertiser:updates; may be NULL */
    store_message_fn *on_alerts;      /* message on alerts:updates (SPEC 16); may be NULL */
    void *arg;                        /* passed to all three */
    size_t max_pending_publishes;     /* PUBLISH queue bound (limits.max_pending_results);
                                         0: 100000 */
    size_t max_pending_publish_bytes; /* and in bytes (limits.max_pending_result_bytes);
                                         0: 256 MiB */
    size_t max_pending_commands;      /* other commands sent and unanswered
                                         (limits.max_pending_redis); 0: 100000 */
    long timeout_ms;                  /* redis.timeout_ms; 0: 1000 */
    long log_maxlen;                  /* the result log's MAXLEN ~ (log.maxlen); 0: no log */
    long ad_ttl_s;                    /* stats:ad:{ad_id}'s TTL (stats.ad_ttl_s); 0: 7 days */
} store_options;

/* Create the store on `base` (borrowed; must outlive the store) and start
 * connecting both connections. Returns NULL when memory ran out. */
store *store_new(struct event_base *base, const store_options *opt);

/* Disconnect and free. Callbacks of commands still pending run with
 * STORE_ERR before this returns; no callback runs afterwards. */
void store_free(store *s);

/* 1 when the command connection is up (and authenticated). */
int store_connected(const store *s);

/* Commands not yet answered: sent ones, and PUBLISHes still queued. */
size_t store_pending(const store *s);
/* Commands other than PUBLISH sent and not yet answered: what
 * max_pending_commands bounds. */
size_t store_commands_pending(const store *s);
/* PUBLISHes queued (waiting for Redis or for its acknowledgement). */
size_t store_queued(const store *s);
/* Their bytes, as max_pending_publish_bytes counts them (each entry's whole
 * allocation: channel, payload and the result log's fields). */
size_t store_queued_bytes(const store *s);

/* ---- Profiles (SPEC 3.2) -------------------------------------------------- */

/* Called once with the profile JSON at user:profile:{user_id}: STORE_OK and
 * the bytes (valid only during the call), STORE_NIL on a miss, STORE_ERR. */
typedef void store_value_fn(void *arg, store_status st, const char *value, size_t len);

/* GET user:profile:{user_id}. `user_id` is copied into the command. */
int store_profile_get(store *s, const char *user_id, store_value_fn *fn, void *arg);

/* SETEX user:profile:{user_id} {ttl_s} {json}: fire and forget (failures are
 * counted in store_stats). */
int store_profile_put(store *s, const char *user_id, const char *json, size_t len, long ttl_s);

/* ---- Counters (SPEC 10) ---------------------------------------------------- */

/* HINCRBY {prefix}{id} {field} {by}, fire and forget (failures counted in
 * writes_failed): stats:advertiser:{id}. Per-ad counters go through
 * store_count_ad, which keeps their TTL. Returns -1 at once when not
 * connected (the increment is lost and counted). */
int store_hincrby(store *s, const char *prefix, const char *id, const char *field, long long by);

/* HINCRBY stats:ad:{ad_id} {field} {by} and EXPIRE it ad_ttl_s (SPEC 15:
 * renewed on every write), atomically in one EVAL. `ad_id` should follow
 * the request_id rule (SPEC 15 Keys; the caller checks). Fire and forget
 * as store_hincrby. */
int store_count_ad(store *s, const char *ad_id, const char *field, long long by);

/* One win, in one command (SPEC 10 counters): on stats:advertiser:{adv}
 * and, when `ad_id` is not empty, on stats:ad:{ad_id}, HINCRBY wins 1 and
 * spend_micros `spend_micros`, atomically, as one EVAL of a small Lua script
 * (Redis caches it by its SHA1; one command instead of four keeps the hot
 * path short); stats:ad:{ad_id} then expires ad_ttl_s later (SPEC 15). When `budget_day` is not 0
 * (yyyymmdd, UTC: the advertiser has a daily budget, SPEC 16), the same command adds the clearing
 * micros to the day's spend, INCRBY budget:{adv}:{budget_day}, and makes that key expire
 * STORE_BUDGET_TTL_S later. Fire and forget: a failure is counted in writes_failed. Returns -1 at
 * once when not connected (counted too). */
int store_count_win(store *s, const char *advertiser_id, const char *ad_id, long long spend_micros,
                    long budget_day);

/* ---- Budgets (SPEC 16) ------------------------------------------------------ */

/* budget:{advertiser_id}:{yyyymmdd} expires this long after its last win:
 * two days, so yesterday's spend can still be read today. */
#define STORE_BUDGET_TTL_S 172800

/* Called once with the `n` sums asked for, in order (a missing key, or a
 * value that is not an integer, reads 0), or with STORE_ERR and none. */
typedef void store_sums_fn(void *arg, store_status st, const long long *sums, size_t n);

/* MGET budget:{id}:{day} of each of the `n` advertiser ids (n >= 1; the ids
 * are copied into the command): the day's exact sums of clearing micros
 * (SPEC 16), one command whatever n. */
int store_budget_get(store *s, const char *const *ids, size_t n, long day, store_sums_fn *fn,
                     void *arg);

/* ---- Events (SPEC 10) ------------------------------------------------------ */

/* GET {key}: the callback as for store_profile_get. */
int store_get(store *s, const char *key, store_value_fn *fn, void *arg);
/* SET {key} {value} NX EX {ttl_s}: the callback gets STORE_OK when the key
 * was set, STORE_NIL when it already existed (a duplicate), STORE_ERR. */
int store_set_nx(store *s, const char *key, const char *value, long ttl_s, store_value_fn *fn,
                 void *arg);
/* SET {key} {value} EX {ttl_s}, fire and forget (failures in writes_failed). */
int store_set(store *s, const char *key, const char *value, long ttl_s);

/* ---- Results (SPEC 4) ------------------------------------------------------ */

/* PUBLISH {channel} {payload}; payload copied. Every PUBLISH waits in one
 * bounded FIFO until Redis acknowledges it: while Redis is down they queue,
 * after the reconnect they go out in order (at least once: one on the wire
 * when the connection dropped is sent again). Past max_pending_publishes
 * entries or max_pending_publish_bytes bytes the oldest waiting entry is
 * dropped (counted in publish_dropped); while some are on the wire (Redis
 * connected but behind), the new one is, and so is one larger than the
 * byte bound by itself. SPEC 15.
 * Returns 0 when queued, -1 when the new one was dropped (or no memory).
 * SPEC 4, SPEC 7 (outage). */
int store_publish(store *s, const char *channel, const char *payload, size_t len);

/* PUBLISH auction:results:{request_id} {payload} and, with the result log
 * on (log_maxlen > 0), in the same write XADD auction:log MAXLEN ~
 * {log_maxlen} * request_id {request_id} status {status} result {payload}
 * (SPEC 14). Through the queue above: a result queued during an outage is
 * logged when it is published. */
int store_publish_result(store *s, const char *request_id, const char *status, const char *payload,
                         size_t len);

/* PUBLISH auction:errors {payload} (SPEC 4), logged like a result with
 * request_id `request_id` ("" when NULL: it could not be read), status
 * invalid and topic `topic` (the MQTT topic it came on). */
int store_publish_error(store *s, const char *request_id, const char *topic, const char *payload,
                        size_t len);

/* ---- Notices kept in Redis (SPEC 14) ---------------------------------------- */

/* The pending sets, scored by the Unix time (ms) of the next attempt:
 * billing notices until billed or given up, and win and loss notices a
 * drain could not send (each sent once by whichever exchange claims it). */
#define STORE_BURL_PENDING "notices:burl:pending"
#define STORE_NOTICES_PENDING "notices:pending"
#define STORE_BILLED_TTL_S 86400 /* burl:{request_id} and billed:{request_id} */

/* HSET burl:{request_id} {ad_id} {value}, EXPIRE 86400: a winning bid's
 * billing notice, waiting for the impression of its ad. The hash has one
 * field per winning bid (SPEC 17: a request may have several imps); `ad_id`
 * is "" when the winning ad id could not be kept (any ad of the auction
 * then bills it). Fire and forget. */
int store_burl_keep(store *s, const char *request_id, const char *ad_id, const char *value,
                    size_t len);

/* The impression of `ad_id` in auction `request_id` arrived: atomically,
 * when burl:{request_id} keeps a bill for that ad (or for "") and the
 * auction's billed key sets -- SET billed:{request_id} 1 NX EX 86400 when
 * the auction had one winning bid (SPEC 14), billed:{request_id}:{ad_id}
 * when it had several (SPEC 17: one bill per winning bid) -- i.e. on the
 * first impression at any exchange, ZADD STORE_BURL_PENDING {now_ms +
 * lease_ms} {member} where member is `prefix` followed by the kept value;
 * the callback gets STORE_OK and the member, else STORE_NIL (nothing to
 * bill, or billed already) or STORE_ERR. */
int store_bill_claim(store *s, const char *request_id, const char *ad_id, const char *prefix,
                     long long now_ms, long long lease_ms, store_value_fn *fn, void *arg);

/* One string of an array reply, valid only during the callback. */
typedef struct store_str {
    const char *s;
    size_t len;
} store_str;

/* Called once with the members claimed (`n` of them, `set` telling which
 * set each came from: 0 STORE_BURL_PENDING, 1 STORE_NOTICES_PENDING) and
 * the billing notices pending in all (ZCARD); or STORE_ERR and nothing. */
typedef void store_claim_fn(void *arg, store_status st, long long burl_pending,
                            const store_str *members, const int *set, size_t n);

/* Claim up to `max` due members (score <= now_ms) of both pending sets for
 * this exchange, atomically re-scoring each to now_ms + lease_ms so that no
 * other exchange takes it while it is being sent (and so that it comes due
 * again if this one dies). */
int store_notices_claim(store *s, long long now_ms, long long lease_ms, long max,
                        store_claim_fn *fn, void *arg);

/* ZADD {key} [XX] {at_ms} {member}, fire and forget: reschedule (xx 1: only
 * while still pending) or keep a notice. */
int store_notice_at(store *s, const char *key, const char *member, size_t len, long long at_ms,
                    int xx);
/* ZREM {key} {member}, fire and forget: the notice is done. */
int store_notice_done(store *s, const char *key, const char *member, size_t len);

/* ---- Advertiser totals (SPEC 16) ------------------------------------------- */

/* Called once with the fields read: STORE_OK and values[i * nfields + f],
 * field f of hash i (0 where the hash or the field is missing or holds no
 * integer), valid only during the call; or STORE_ERR and NULL. */
typedef void store_hashes_fn(void *arg, store_status st, const long long *values, size_t nkeys,
                             size_t nfields);

/* HMGET {prefix}{ids[i]} {fields...} for each of the `nids` ids, as one
 * EVAL of a small Lua script: one command and one reply, so every exchange
 * of a group reads the same totals (stats:advertiser:{id}, SPEC 10, 14) for
 * the price of one round trip. The caller bounds nids (the campaign view:
 * the registry's advertisers); ids follow the key rule of SPEC 15. Never
 * KEYS or SCAN. Returns 0 (fn runs once, later) or -1 at once when not
 * connected, a key is too long or memory ran out (fn never runs). */
int store_hashes_get(store *s, const char *prefix, const char *const *ids, size_t nids,
                     const char *const *fields, size_t nfields, store_hashes_fn *fn, void *arg);

/* ---- Advertiser registry (SPEC 6) ------------------------------------------ */

/* One advertiser:targeting:{id} entry: `id` (the key's suffix) and its JSON. */
typedef struct store_entry {
    const char *id;
    const char *value;
    size_t len;
} store_entry;

/* Called once with every advertiser:targeting:* entry (valid only during the
 * call), or STORE_ERR and no entries. */
typedef void store_registry_fn(void *arg, store_status st, const store_entry *entries, size_t n);

/* SCAN the keyspace for advertiser:targeting:* (COUNT 1000 per step) and GET
 * each key found. Only one load runs at a time: returns -1 while one is in
 * progress, or when not connected. */
int store_registry_load(store *s, store_registry_fn *fn, void *arg);

/* ---- Alert rules (SPEC 16) -------------------------------------------------- */

/* The hash of rules (field: the rule's name, value: its JSON) and the
 * channel every write announces itself on (the message: the name written,
 * or "" for several). */
#define STORE_ALERT_RULES "alerts:rules"
#define STORE_ALERT_UPDATES "alerts:updates"

/* Called once with an integer reply, or STORE_ERR (and 0). */
typedef void store_int_fn(void *arg, store_status st, long long n);
/* Called once with the rules: `npairs` name/value pairs (valid only during
 * the call; a value longer than the load's max_bytes comes as ""); or with
 * STORE_NIL when the hash holds more than max_rules fields (`count` says
 * how many, no pairs); or STORE_ERR. */
typedef void store_rules_fn(void *arg, store_status st, long long count, const store_str *names,
                            const store_str *values, size_t npairs);

/* Read alerts:rules whole in one script: HLEN, then HGETALL only when it
 * holds at most `max_rules` rules, values over `max_bytes` replaced by ""
 * (Redis may hold anything someone wrote by hand; the reply stays bounded). */
int store_alert_rules_load(store *s, long max_rules, long max_bytes, store_rules_fn *fn, void *arg);
/* Add one rule, atomically: unless the name exists (n 0) or the hash holds
 * `max_rules` already (n -1), HSET it and PUBLISH alerts:updates {name}
 * (n 1). */
int store_alert_rule_add(store *s, const char *name, const char *json, size_t len, long max_rules,
                         store_int_fn *fn, void *arg);
/* HDEL one rule and, when it was there (n 1; else n 0), PUBLISH
 * alerts:updates {name}, atomically. */
int store_alert_rule_delete(store *s, const char *name, store_int_fn *fn, void *arg);
/* Write `n` rules (names[i] -> values[i]) replacing those of the same
 * names, a new name only while the hash holds fewer than `max_rules`, then
 * PUBLISH alerts:updates "", atomically; n: how many did not fit. */
int store_alert_rules_put(store *s, const store_str *names, const store_str *values, size_t n,
                          long max_rules, store_int_fn *fn, void *arg);

/* ---- Counters -------------------------------------------------------------- */

typedef struct store_stats {
    unsigned long long published;       /* PUBLISH answered */
    unsigned long long publish_failed;  /* PUBLISH answered with an error */
    unsigned long long publish_dropped; /* PUBLISH dropped: queue full or no memory */
    unsigned long long logged;          /* XADD to auction:log answered */
    unsigned long long log_failed;      /* XADD answered with an error */
    unsigned long long writes_failed;   /* SETEX / HINCRBY not sent or failed */
    unsigned long long reconnects;
    unsigned long long timeouts; /* connections dropped: Redis did not answer in timeout_ms */
    unsigned long long commands_refused; /* max_pending_commands were waiting */
} store_stats;

const store_stats *store_get_stats(const store *s);

#endif

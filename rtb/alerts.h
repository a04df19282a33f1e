/* alerts.h -- alert rules (SPEC 11, 16; docs/dashboard.md): evaluated once a
 * second on the dashboard's samples, kept in Redis, changed at run time.
 *
 * Each second every rule is evaluated over its last window_s seconds of
 * samples; a rule whose value goes above (op above) or below (op below) its
 * threshold fires, and resolves when the value is back. Both transitions
 * are published on Redis channel auction:alerts and logged. A window with
 * too little traffic for its metric (RTB_ALERT_MIN_COUNT calls, results,
 * closed auctions, bids, impressions or clicks; for spend_rate a full
 * window of samples) keeps the rule's state as it is.
 *
 * The rules live in the Redis hash alerts:rules (field: name, value: the
 * rule's JSON with its "source"). At its first connection to Redis the
 * exchange writes its config's rules there (replacing rules of the same
 * names), then reads the hash whole; it reads it again on every message on
 * alerts:updates (each write announces itself there) and every
 * registry.refresh_s as a fallback. Until the first read the config's rules
 * are the set. A rule that comes back unchanged keeps its states. */
#ifndef RTB_ALERTS_H
#define RTB_ALERTS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"
#include "rtb/registry.h"
#include "rtb/sampler.h"
#include "rtb/stats.h"
#include "store/store.h"

#define RTB_ALERT_MIN_COUNT 5
#define RTB_ALERTS_CHANNEL "auction:alerts"

typedef struct rtb_alerts rtb_alerts;

/* What a change of the rules came to (the admin API maps each to a status). */
typedef enum rtb_alerts_status {
    RTB_ALERTS_OK = 0,      /* started; or done: stored, deleted */
    RTB_ALERTS_INVALID,     /* the rule breaks a rule of its rows: the message names the key */
    RTB_ALERTS_EXISTS,      /* add: a rule of that name is stored */
    RTB_ALERTS_FULL,        /* add: PROTO_ALERT_MAX_RULES rules are stored */
    RTB_ALERTS_NOT_FOUND,   /* remove: no rule of that name is stored */
    RTB_ALERTS_UNAVAILABLE, /* Redis is not connected, failed, or the set was freed */
} rtb_alerts_status;

/* A short English phrase for `st` ("a rule of that name exists"). */
const char *rtb_alerts_strerror(rtb_alerts_status st);

/* The rules of cfg->alerts (checked by the config's rows), evaluated on
 * `samples` (per-advertiser metrics name the advertisers of `reg`), latency
 * quantiles with `bounds`; transitions published and rules stored through
 * `st`. Everything is borrowed for the set's life. Returns NULL with "out
 * of memory" in `err` when memory ran out. */
rtb_alerts *rtb_alerts_new(const proto_config *cfg, store *st, const rtb_registry *reg,
                           const rtb_sampler *samples, const rtb_latency_bounds *bounds, char *err,
                           size_t errlen);
/* Free the set. Changes still waiting for Redis answer their callers with
 * RTB_ALERTS_UNAVAILABLE when the store answers them (at the latest when
 * it is freed); free the set before the store. */
void rtb_alerts_free(rtb_alerts *a);

/* Read alerts:rules again (writing the config's rules first, once per
 * process): call it when Redis connects, on every alerts:updates message
 * and periodically. At most one read is out; a call meanwhile makes it read
 * once more afterwards. Without Redis nothing happens. */
void rtb_alerts_refresh(rtb_alerts *a);

/* Evaluate every rule on the samples; `wall_us` (Unix µs) stamps the
 * transitions. Called after each sample. */
void rtb_alerts_evaluate(rtb_alerts *a, int64_t wall_us);

/* Append one object per active alert (a rule and one subject) to the cJSON
 * array `array` (owned by the caller): {"name","metric","subject","value",
 * "op","threshold","window_s","severity","message","since"}, and "above"
 * (the threshold) for rules with op above. Returns 0, or -1 when memory ran
 * out. */
int rtb_alerts_json(const rtb_alerts *a, cJSON *array);
/* GET /api/alerts (SPEC 16): a new object (the caller cJSON_Deletes it)
 * {"rules":[{...the rule..., "source", "state":"ok"|"firing", "since":
 * Unix s of the earliest firing subject | null, "subject_values":[{"subject",
 * "value","since"}] (the firing subjects)}], "firing": rules firing}, rules
 * by name. NULL when memory ran out. */
cJSON *rtb_alerts_rules_json(const rtb_alerts *a);
/* Number of active alerts (rule and subject). */
size_t rtb_alerts_active(const rtb_alerts *a);
/* Number of rules. */
size_t rtb_alerts_rules(const rtb_alerts *a);

/* Called once when a change has its answer: the status and, for an add,
 * the rule as stored (JSON text, valid during the call; NULL otherwise). */
typedef void rtb_alerts_fn(void *arg, rtb_alerts_status st, const char *rule_json);

/* POST /api/alerts: decode `len` bytes of `json` as a rule from the API
 * (proto_alert_decode) and add it to alerts:rules unless its name is taken
 * or the hash is full. Returns RTB_ALERTS_OK when sent: fn runs once later
 * (OK: stored, and evaluated here at once; EXISTS; FULL; UNAVAILABLE).
 * Otherwise fn never runs: RTB_ALERTS_INVALID with the message in `err`
 * (naming the key), RTB_ALERTS_UNAVAILABLE (Redis not connected, memory). */
rtb_alerts_status rtb_alerts_add(rtb_alerts *a, const char *json, size_t len, rtb_alerts_fn *fn,
                                 void *arg, char *err, size_t errlen);
/* DELETE /api/alerts/{name}: remove the rule `name` from alerts:rules.
 * RTB_ALERTS_OK when sent: fn runs once later (OK: removed, and no longer
 * evaluated here; NOT_FOUND; UNAVAILABLE). Else RTB_ALERTS_UNAVAILABLE and
 * fn never runs. */
rtb_alerts_status rtb_alerts_remove(rtb_alerts *a, const char *name, rtb_alerts_fn *fn, void *arg);

#endif

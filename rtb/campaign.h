/* campaign.h -- the campaign view (SPEC 16; docs/dashboard.md): the JSON of
 * GET /api/advertisers (every advertiser with wins, spend, impressions,
 * clicks, CTR, conversions, CVR, CPC) and GET /api/advertisers/{id} (the
 * same, plus its per-minute series of the last hour, its bidder health, its
 * firing alerts and its budget). admin.c routes them.
 *
 * Totals come from Redis (stats:advertiser:{id}, every exchange's) so that
 * every exchange of a group shows the same figures; answering therefore
 * waits for one Redis reply, at most RTB_CAMPAIGN_WAIT_MS, after which (or
 * at once when Redis is down) the answer is built from this exchange's own
 * counters and says so ("source":"local"). */
#ifndef RTB_CAMPAIGN_H
#define RTB_CAMPAIGN_H

#include <stddef.h>

#include "rtb/server.h"

struct event_base;
struct evbuffer;

/* How long an answer waits for Redis, in ms, before it is built from the
 * local counters (redis.timeout_ms's default: a Redis that answers in time
 * for anything answers in time for this). */
#define RTB_CAMPAIGN_WAIT_MS 1000

/* Where advertiser `id` (a NUL-terminated string) is among the server's
 * advertisers (active or not): its index, RTB_CAMPAIGN_UNKNOWN when it
 * follows the id rule but the server has never seen it, RTB_CAMPAIGN_BAD_ID
 * when it breaks the rule (1-128 characters of [A-Za-z0-9._:-], SPEC 2 and
 * 15). */
#define RTB_CAMPAIGN_UNKNOWN (-1)
#define RTB_CAMPAIGN_BAD_ID (-2)
long rtb_campaign_find(const rtb_server *srv, const char *id);

typedef struct rtb_campaign_query rtb_campaign_query;

/* The answer: the JSON document in `json` (valid only during the call), or
 * NULL when memory ran out. */
typedef void rtb_campaign_fn(void *arg, struct evbuffer *json);

/* Start building the answer for the advertiser at `index` (from
 * rtb_campaign_find), or for all of them when index is -1: one read of
 * their stats:advertiser:* hashes (store_hashes_get; at most the
 * advertisers the server knows now), then the JSON. fn(arg, json) runs
 * exactly once, later, from the loop on `base` -- never inside this call --
 * unless the query is cancelled first. `srv` and `base` are borrowed until
 * then. Returns NULL when memory ran out (fn never runs). */
rtb_campaign_query *rtb_campaign_ask(struct event_base *base, const rtb_server *srv, long index,
                                     rtb_campaign_fn *fn, void *arg);

/* fn will not run (the client went away, the listener closes). `q` is not
 * to be used again; a Redis reply still out frees it when it comes (at the
 * latest when the server frees its store). */
void rtb_campaign_cancel(rtb_campaign_query *q);

#endif

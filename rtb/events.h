/* events.h -- ad events after the auction (SPEC 10): impressions, clicks
 * and conversions that publishers send on rtb/events/{type}, counted in
 * Redis hashes stats:advertiser:{id} and stats:ad:{ad_id}. */
#ifndef RTB_EVENTS_H
#define RTB_EVENTS_H

#include <stddef.h>

#include "proto/proto.h"
#include "rtb/ledger.h"
#include "rtb/registry.h"
#include "rtb/stats.h"
#include "store/store.h"

typedef struct rtb_events rtb_events;

/* An event handler writing to `st` and counting into `stats` (event
 * fields: impressions, clicks, duplicate_clicks, conversions,
 * conversions_attributed, events_invalid, events_dropped) and into its
 * advertiser's rtb_bidder_stats (impressions, clicks, conversions: the
 * per-advertiser alert metrics of SPEC 16); an event whose
 * advertiser is not active in `reg` is invalid (SPEC 15); an impression
 * with a request_id is billed through `ledger` (SPEC 14; NULL: never). All
 * borrowed for its life. Payloads over cfg->limits.max_request_bytes are
 * refused. Returns NULL when memory ran out. Free it after the store (whose
 * freeing answers the events still waiting for Redis). */
rtb_events *rtb_events_new(store *st, rtb_ledger *ledger, const rtb_registry *reg,
                           const proto_config *cfg, rtb_stats *stats);
void rtb_events_free(rtb_events *e);

/* 1 when `topic` is an event topic (rtb/events/...). */
int rtb_events_topic(const char *topic);

/* Handle one event message (`payload` valid only during the call): decode,
 * then count it (HINCRBY), deduplicating clicks with SET click:{user}:{ad} 1
 * NX EX 3600 and attributing conversions to the user's last click on the
 * advertiser. Invalid events are counted (events_invalid) and logged at
 * debug level; events that cannot reach Redis are counted (events_dropped).
 * SPEC 10. */
void rtb_events_on_message(rtb_events *e, const char *topic, const char *payload, size_t len);

#endif

/* dashboard.h -- the live dashboard's content (SPEC 11): the JSON of
 * GET /api/stats (also each SSE event of /api/stream) and the page of GET /.
 * admin.c serves them. Shape of the JSON: docs/dashboard.md. */
#ifndef RTB_DASHBOARD_H
#define RTB_DASHBOARD_H

#include "rtb/server.h"

struct evbuffer;

/* Seconds of history /api/stats "history" carries. */
#define RTB_DASH_HISTORY_JSON_S 300

/* Append the JSON object of GET /api/stats to `out`: counters now, rates
 * and latency of the latest second, the last RTB_DASH_HISTORY_JSON_S
 * seconds, active alerts. Returns 0, or -1 when memory ran out (`out`
 * unchanged). */
int rtb_dash_stats_json(const rtb_server *srv, struct evbuffer *out);
/* Add the health figures of advertiser `b` at `now_us` (SPEC 13) to the
 * cJSON object `o` (the caller's): timeouts, errors, timeouts_excused,
 * throttled, skipped, skipped_by {reason: count}, breaker ("closed",
 * "open", "half_open"), share (0..1), p95_ms (ms, or null until known).
 * Shared by /api/stats and the campaign view (campaign.h). Returns 0, or -1
 * when memory ran out (a key may be missing; `o` stays valid JSON). */
int rtb_dash_bidder_health(cJSON *o, const rtb_bidder *b, int64_t now_us);
/* Append the self-contained HTML page of GET / to `out`. Returns 0 or -1. */
int rtb_dash_page(struct evbuffer *out);

#endif

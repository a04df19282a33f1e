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
/* Append the self-contained HTML page of GET / to `out`. Returns 0 or -1. */
int rtb_dash_page(struct evbuffer *out);

#endif

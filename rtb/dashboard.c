/* dashboard.c -- the live dashboard's content (SPEC 11): the JSON of
 * GET /api/stats (also each SSE event of GET /api/stream) and the page
 * GET / serves (admin.c routes them).
 *
 * It only reads the server: counters now, and the per-second samples
 * (sampler.h) for rates, the latency of the last second and the history
 * chart. The JSON (cJSON; not on the auction path) is built only for
 * /api/stats requests and once a second when streams are open. */
#include "rtb/dashboard.h"

#include "rtb/alerts.h"
#include "rtb/log.h"
#include "rtb/sampler.h"

#include <event2/buffer.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- GET /api/stats ------------------------------------------------------------------ */

static double round_to(double x, double unit) {
    return round(x / unit) * unit;
}

static double ratio(unsigned long long num, unsigned long long den) {
    return den ? round_to((double)num / (double)den, 1e-4) : 0;
}

static const char *breaker_str(rtb_breaker b) {
    switch (b) {
    case RTB_BREAKER_OPEN:
        return "open";
    case RTB_BREAKER_HALF_OPEN:
        return "half_open";
    case RTB_BREAKER_CLOSED:
        break;
    }
    return "closed";
}

/* A latency in ms rounded to µs, or null when no auction closed. */
static cJSON *latency_json(const rtb_latency_bounds *b,
                           const unsigned long long buckets[RTB_LATENCY_BUCKETS], double q) {
    double ms = rtb_latency_quantile_ms(b, buckets, q);
    return ms < 0 ? cJSON_CreateNull() : cJSON_CreateNumber(round_to(ms, 1e-3));
}

static void add_statuses(cJSON *o, const unsigned long long results[PROTO_STATUS_COUNT]) {
    for (int st = 0; st < PROTO_STATUS_COUNT; st++)
        cJSON_AddNumberToObject(o, proto_status_str((proto_status)st), (double)results[st]);
}

static unsigned long long sum_results(const unsigned long long results[PROTO_STATUS_COUNT]) {
    unsigned long long n = 0;
    for (int st = 0; st < PROTO_STATUS_COUNT; st++)
        n += results[st];
    return n;
}

static void add_rates(cJSON *root, const rtb_server *srv) {
    const rtb_latency_bounds *b = rtb_server_latency_bounds(srv);
    rtb_sample_counts sec;
    rtb_sampler_window(rtb_server_sampler(srv), 1, &sec);
    cJSON *rates = cJSON_AddObjectToObject(root, "rates");
    add_statuses(cJSON_AddObjectToObject(rates, "auctions_per_s"), sec.results);
    cJSON_AddNumberToObject(rates, "results_per_s", (double)sum_results(sec.results));
    cJSON_AddNumberToObject(rates, "requests_per_s", (double)sec.requests);
    cJSON *lat = cJSON_AddObjectToObject(root, "latency_ms");
    cJSON_AddItemToObject(lat, "p50", latency_json(b, sec.latency_buckets, 0.5));
    cJSON_AddItemToObject(lat, "p99", latency_json(b, sec.latency_buckets, 0.99));
}

static void add_totals(cJSON *root, const rtb_server *srv) {
    const rtb_stats *s = rtb_server_stats(srv);
    rtb_server_health h;
    rtb_server_health_get(srv, &h);
    cJSON *t = cJSON_AddObjectToObject(root, "totals");
    cJSON_AddNumberToObject(t, "requests", (double)s->requests);
    cJSON_AddNumberToObject(t, "auctions", (double)sum_results(s->results));
    add_statuses(t, s->results);
    cJSON_AddNumberToObject(t, "request_errors", (double)s->request_errors);
    cJSON_AddNumberToObject(t, "duplicates", (double)s->duplicates);
    cJSON_AddNumberToObject(t, "inflight", (double)h.inflight);
    cJSON_AddItemToObject(t, "latency_p99_ms",
                          latency_json(rtb_server_latency_bounds(srv), s->latency_buckets, 0.99));
}

typedef struct bidder_list {
    cJSON *list;
    const rtb_sampler *samples;
} bidder_list;

static void add_bidder(void *arg, size_t index, const rtb_bidder *b) {
    const bidder_list *bl = arg;
    const rtb_bidder_stats *s = &b->stats;
    rtb_sample_bidder_counts sec;
    rtb_sampler_bidder_window(bl->samples, index, 1, &sec);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", b->id);
    cJSON_AddBoolToObject(o, "active", b->active);
    cJSON_AddNumberToObject(o, "calls", (double)s->calls);
    cJSON_AddNumberToObject(o, "bids", (double)s->bids);
    cJSON_AddNumberToObject(o, "wins", (double)s->wins);
    cJSON_AddNumberToObject(o, "win_rate", ratio(s->wins, s->bids));
    cJSON_AddNumberToObject(o, "timeouts", (double)s->timeouts);
    cJSON_AddNumberToObject(o, "errors", (double)s->errors);
    cJSON_AddNumberToObject(o, "throttled", (double)s->throttled);
    cJSON_AddStringToObject(o, "breaker", breaker_str(b->breaker));
    cJSON_AddNumberToObject(o, "spend", (double)s->spend_micros / 1e6);
    cJSON_AddNumberToObject(o, "calls_per_s", (double)sec.calls);
    cJSON_AddNumberToObject(o, "inflight", (double)rtb_bidder_busy(b));
    cJSON_AddItemToArray(bl->list, o);
}

static void add_bidders(cJSON *root, const rtb_server *srv) {
    bidder_list bl = {cJSON_AddArrayToObject(root, "bidders"), rtb_server_sampler(srv)};
    rtb_server_each_bidder(srv, add_bidder, &bl);
}

static void add_events(cJSON *root, const rtb_stats *s) {
    cJSON *e = cJSON_AddObjectToObject(root, "events");
    cJSON_AddNumberToObject(e, "impressions", (double)s->impressions);
    cJSON_AddNumberToObject(e, "clicks", (double)s->clicks);
    cJSON_AddNumberToObject(e, "ctr", ratio(s->clicks, s->impressions));
    cJSON_AddNumberToObject(e, "conversions", (double)s->conversions);
    cJSON_AddNumberToObject(e, "duplicate_clicks", (double)s->duplicate_clicks);
}

/* The last RTB_DASH_HISTORY_JSON_S seconds, oldest first. */
static void add_history(cJSON *root, const rtb_server *srv) {
    const rtb_sampler *samples = rtb_server_sampler(srv);
    const rtb_latency_bounds *b = rtb_server_latency_bounds(srv);
    cJSON *h = cJSON_AddArrayToObject(root, "history");
    size_t n = rtb_sampler_count(samples);
    if (n > RTB_DASH_HISTORY_JSON_S) n = RTB_DASH_HISTORY_JSON_S;
    for (size_t k = n; k-- > 0;) {
        rtb_sample_counts c;
        int64_t wall_us;
        rtb_sampler_sample(samples, k, &c, &wall_us);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "t", floor((double)wall_us / 1e6)); /* second's end */
        cJSON_AddNumberToObject(o, "auctions", (double)sum_results(c.results));
        cJSON_AddNumberToObject(o, "success", (double)c.results[PROTO_STATUS_SUCCESS]);
        cJSON_AddNumberToObject(o, "timeout", (double)c.results[PROTO_STATUS_TIMEOUT]);
        cJSON_AddItemToObject(o, "p99", latency_json(b, c.latency_buckets, 0.99));
        cJSON_AddItemToArray(h, o);
    }
}

int rtb_dash_stats_json(const rtb_server *srv, struct evbuffer *out) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return -1;
    rtb_server_health h;
    rtb_server_health_get(srv, &h);
    cJSON_AddNumberToObject(root, "time", round_to((double)rtb_wall_us() / 1e6, 1e-3));
    cJSON_AddNumberToObject(root, "uptime_s", floor((double)h.uptime_us / 1e6));
    add_rates(root, srv);
    add_totals(root, srv);
    add_bidders(root, srv);
    add_events(root, rtb_server_stats(srv));
    add_history(root, srv);
    const rtb_alerts *al = rtb_server_alerts(srv);
    cJSON *alerts = cJSON_AddArrayToObject(root, "alerts");
    int rc = alerts ? rtb_alerts_json(al, alerts) : 0;
    cJSON_AddNumberToObject(root, "alert_rules", (double)rtb_alerts_rules(al));
    /* Out of memory, an Add* above may have left a key out; the JSON stays valid. */
    char *text = rc == 0 ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return -1;
    rc = evbuffer_add(out, text, strlen(text));
    cJSON_free(text);
    return rc;
}

/* ---- GET / --------------------------------------------------------------------------- */

/* The page, one line per string: self-contained (inline CSS and JS, no
 * font, script or image from elsewhere), it renders every /api/stats object
 * it gets from the SSE stream, and polls /api/stats once a second whenever
 * the stream has been silent for 2.5 s (no EventSource, stream refused,
 * proxy buffering). Elements holding numbers have ids (tests read them). */
/* clang-format off */
static const char *const page[] = {
    "<!doctype html>\n",
    "<html lang=\"en\">\n",
    "<head>\n",
    "<meta charset=\"utf-8\">\n",
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
    "<title>rtb-exchange · live</title>\n",
    "<link rel=\"icon\" href=\"data:,\">\n",
    "<style>\n",
    ":root {\n",
    "  --bg: #f3f5f9; --card: #fff; --ink: #1c2433; --muted: #667085; --line: #e4e8f0;\n",
    "  --success: #17a34a; --no_bid: #98a2b3; --timeout: #f59e0b; --invalid: #8b5cf6;\n",
    "  --overloaded: #e5484d; --accent: #2563eb;\n",
    "}\n",
    "* { box-sizing: border-box; }\n",
    "body {\n",
    "  margin: 0; background: var(--bg); color: var(--ink);\n",
    "  font: 14px/1.45 system-ui, -apple-system, \"Segoe UI\", Roboto, \"Helvetica Neue\",\n",
    "        Arial, sans-serif;\n",
    "}\n",
    ".num, td.n, .big { font-variant-numeric: tabular-nums; }\n",
    "header {\n",
    "  display: flex; align-items: center; gap: 16px; padding: 14px 24px;\n",
    "  background: #111827; color: #f9fafb;\n",
    "}\n",
    "header h1 { font-size: 17px; margin: 0; font-weight: 600; letter-spacing: .2px; }\n",
    "header h1 span { color: #9ca3af; font-weight: 400; }\n",
    "header .meta {\n",
    "  margin-left: auto; color: #9ca3af; font-size: 13px; display: flex; gap: 18px;\n",
    "}\n",
    ".pill {\n",
    "  display: inline-flex; align-items: center; gap: 6px; padding: 2px 10px;\n",
    "  border-radius: 999px; font-size: 12px; font-weight: 600; background: #374151;\n",
    "  color: #e5e7eb;\n",
    "}\n",
    ".pill::before {\n",
    "  content: \"\"; width: 8px; height: 8px; border-radius: 50%; background: #9ca3af;\n",
    "}\n",
    ".pill.live::before { background: #22c55e; box-shadow: 0 0 0 3px rgba(34, 197, 94, .25); }\n",
    ".pill.polling::before { background: #f59e0b; }\n",
    ".pill.offline::before { background: #ef4444; }\n",
    "main { padding: 20px 24px 28px; max-width: 1320px; margin: 0 auto; }\n",
    ".grid { display: grid; gap: 16px; }\n",
    ".kpis { grid-template-columns: 1.1fr 1.6fr 1fr 1fr; }\n",
    ".card {\n",
    "  background: var(--card); border: 1px solid var(--line); border-radius: 12px;\n",
    "  padding: 14px 16px; box-shadow: 0 1px 2px rgba(16, 24, 40, .04);\n",
    "}\n",
    ".card h2 {\n",
    "  margin: 0 0 8px; font-size: 12px; font-weight: 600; color: var(--muted);\n",
    "  text-transform: uppercase; letter-spacing: .6px;\n",
    "}\n",
    ".big { font-size: 34px; font-weight: 650; line-height: 1.1; }\n",
    ".big small { font-size: 14px; color: var(--muted); font-weight: 500; margin-left: 4px; }\n",
    ".sub { color: var(--muted); font-size: 13px; margin-top: 4px; }\n",
    ".bar {\n",
    "  display: flex; height: 10px; border-radius: 5px; overflow: hidden;\n",
    "  background: var(--line);\n",
    "  margin: 8px 0 10px;\n",
    "}\n",
    ".bar i { display: block; height: 100%; }\n",
    ".legend {\n",
    "  display: flex; justify-content: space-between; gap: 6px; font-size: 12px;\n",
    "  white-space: nowrap;\n",
    "}\n",
    ".legend div { color: var(--muted); }\n",
    ".legend b { display: block; color: var(--ink); font-size: 16px; font-weight: 600; }\n",
    ".dot {\n",
    "  display: inline-block; width: 8px; height: 8px; border-radius: 2px; margin-right: 5px;\n",
    "}\n",
    ".dot.gap { margin-left: 10px; }\n",
    ".pair { display: flex; gap: 22px; }\n",
    ".pair .big { font-size: 28px; }\n",
    ".charts { grid-template-columns: 2fr 1fr; margin-top: 16px; }\n",
    ".chart { position: relative; }\n",
    ".chart svg { width: 100%; height: 110px; display: block; }\n",
    ".chart .axis {\n",
    "  display: flex; justify-content: space-between; color: var(--muted); font-size: 11px;\n",
    "  margin-top: 2px;\n",
    "}\n",
    ".chart .max {\n",
    "  position: absolute; right: 16px; top: 12px; color: var(--muted); font-size: 12px;\n",
    "}\n",
    ".cols { grid-template-columns: 2.2fr 1fr; margin-top: 16px; align-items: start; }\n",
    "table { width: 100%; border-collapse: collapse; font-size: 13px; }\n",
    "th {\n",
    "  text-align: right; color: var(--muted); font-weight: 600; font-size: 11px;\n",
    "  text-transform: uppercase; letter-spacing: .4px; padding: 6px 8px;\n",
    "  border-bottom: 1px solid var(--line);\n",
    "}\n",
    "th:first-child, td:first-child { text-align: left; }\n",
    "td { padding: 7px 8px; border-bottom: 1px solid var(--line); text-align: right; }\n",
    "tr:last-child td { border-bottom: 0; }\n",
    "tr.inactive td { color: var(--muted); }\n",
    "td.bad { color: var(--overloaded); font-weight: 600; }\n",
    ".state {\n",
    "  display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 11px;\n",
    "  font-weight: 600; background: #dcfce7; color: #166534;\n",
    "}\n",
    ".state.open { background: #fee2e2; color: #991b1b; }\n",
    ".state.half_open { background: #fef3c7; color: #92400e; }\n",
    ".empty { color: var(--muted); padding: 8px 0; }\n",
    ".alert {\n",
    "  border-left: 4px solid var(--overloaded); background: #fff5f5; border-radius: 8px;\n",
    "  padding: 8px 10px; margin-bottom: 8px;\n",
    "}\n",
    ".alert b { display: block; }\n",
    ".alert span { color: var(--muted); font-size: 12px; }\n",
    ".ok { color: var(--success); font-weight: 600; }\n",
    ".steps { display: flex; align-items: flex-end; gap: 10px; }\n",
    ".steps > div { flex: 1; }\n",
    ".steps span { display: block; color: var(--muted); font-size: 12px; }\n",
    ".steps b { font-size: 22px; font-weight: 650; }\n",
    ".steps em { display: block; font-style: normal; color: var(--muted); font-size: 12px; }\n",
    ".steps em b { font-size: 12px; color: var(--ink); }\n",
    ".steps .arrow { flex: 0; color: var(--muted); font-size: 18px; padding-bottom: 20px; }\n",
    ".alert { padding: 6px 10px; }\n",
    "footer { color: var(--muted); font-size: 12px; margin-top: 14px; }\n",
    "@media (max-width: 980px) {\n",
    "  .kpis, .charts, .cols { grid-template-columns: 1fr; }\n",
    "}\n",
    "</style>\n",
    "</head>\n",
    "<body>\n",
    "<header>\n",
    "  <h1>rtb-exchange <span>live dashboard</span></h1>\n",
    "  <span id=\"mode\" class=\"pill\">connecting</span>\n",
    "  <div class=\"meta\">\n",
    "    <span>up <b id=\"uptime\" class=\"num\">&mdash;</b></span>\n",
    "    <span>updated <b id=\"updated\" class=\"num\">&mdash;</b></span>\n",
    "  </div>\n",
    "</header>\n",
    "<main>\n",
    "  <section class=\"grid kpis\">\n",
    "    <div class=\"card\">\n",
    "      <h2>Auctions / s</h2>\n",
    "      <div class=\"big\"><span id=\"auctions-per-s\">&mdash;</span></div>\n",
    "      <div class=\"sub\"><span id=\"requests-per-s\" class=\"num\">&mdash;</span>\n",
    "        requests/s &middot;\n",
    "        <span id=\"inflight\" class=\"num\">&mdash;</span> in flight</div>\n",
    "    </div>\n",
    "    <div class=\"card\">\n",
    "      <h2>By status, per second</h2>\n",
    "      <div class=\"bar\" id=\"status-bar\">\n",
    "        <i id=\"bar-success\" style=\"background:var(--success)\"></i>\n",
    "        <i id=\"bar-no_bid\" style=\"background:var(--no_bid)\"></i>\n",
    "        <i id=\"bar-timeout\" style=\"background:var(--timeout)\"></i>\n",
    "        <i id=\"bar-invalid\" style=\"background:var(--invalid)\"></i>\n",
    "        <i id=\"bar-overloaded\" style=\"background:var(--overloaded)\"></i>\n",
    "      </div>\n",
    "      <div class=\"legend\">\n",
    "        <div><span class=\"dot\" style=\"background:var(--success)\"></span>success\n",
    "          <b id=\"rate-success\" class=\"num\">&mdash;</b></div>\n",
    "        <div><span class=\"dot\" style=\"background:var(--no_bid)\"></span>no bid\n",
    "          <b id=\"rate-no_bid\" class=\"num\">&mdash;</b></div>\n",
    "        <div><span class=\"dot\" style=\"background:var(--timeout)\"></span>timeout\n",
    "          <b id=\"rate-timeout\" class=\"num\">&mdash;</b></div>\n",
    "        <div><span class=\"dot\" style=\"background:var(--invalid)\"></span>invalid\n",
    "          <b id=\"rate-invalid\" class=\"num\">&mdash;</b></div>\n",
    "        <div><span class=\"dot\" style=\"background:var(--overloaded)\"></span>overloaded\n",
    "          <b id=\"rate-overloaded\" class=\"num\">&mdash;</b></div>\n",
    "      </div>\n",
    "    </div>\n",
    "    <div class=\"card\">\n",
    "      <h2>Latency, last second</h2>\n",
    "      <div class=\"pair\">\n",
    "        <div><div class=\"big\"><span id=\"p50\">&mdash;</span><small>ms</small></div>\n",
    "          <div class=\"sub\">p50</div></div>\n",
    "        <div><div class=\"big\"><span id=\"p99\">&mdash;</span><small>ms</small></div>\n",
    "          <div class=\"sub\">p99</div></div>\n",
    "      </div>\n",
    "    </div>\n",
    "    <div class=\"card\">\n",
    "      <h2>Auctions, total</h2>\n",
    "      <div class=\"big\"><span id=\"total-auctions\">&mdash;</span></div>\n",
    "      <div class=\"sub\"><span id=\"total-success\" class=\"num\">&mdash;</span>\n",
    "        won &middot;\n",
    "        <span id=\"total-timeout\" class=\"num\">&mdash;</span> timed out</div>\n",
    "    </div>\n",
    "  </section>\n",
    "\n",
    "  <section class=\"grid charts\">\n",
    "    <div class=\"card chart\">\n",
    "      <h2>Auctions / s</h2>\n",
    "      <span class=\"max\">peak <b id=\"spark-max\" class=\"num\">&mdash;</b>/s</span>\n",
    "      <svg id=\"spark\" viewBox=\"0 0 300 100\" preserveAspectRatio=\"none\"\n",
    "        aria-label=\"auctions per second\">\n",
    "        <path id=\"spark-all\" fill=\"rgba(37,99,235,.14)\" stroke=\"none\" d=\"\"></path>\n",
    "        <polyline id=\"spark-line\" fill=\"none\" stroke=\"#2563eb\" stroke-width=\"1.6\"\n",
    "          vector-effect=\"non-scaling-stroke\" points=\"\"></polyline>\n",
    "        <polyline id=\"spark-success\" fill=\"none\" stroke=\"#17a34a\"\n",
    "          stroke-width=\"1.2\"\n",
    "          vector-effect=\"non-scaling-stroke\" points=\"\"></polyline>\n",
    "        <polyline id=\"spark-timeout\" fill=\"none\" stroke=\"#f59e0b\"\n",
    "          stroke-width=\"1.2\"\n",
    "          vector-effect=\"non-scaling-stroke\" points=\"\"></polyline>\n",
    "      </svg>\n",
    "      <div class=\"axis\"><span id=\"spark-from\">&minus;5 min</span>\n",
    "        <span><span class=\"dot\" style=\"background:#2563eb\"></span>all\n",
    "          <span class=\"dot gap\" style=\"background:var(--success)\"></span>success\n",
    "          <span class=\"dot gap\" style=\"background:var(--timeout)\"></span>timeout</span>\n",
    "        <span>now</span></div>\n",
    "    </div>\n",
    "    <div class=\"card chart\">\n",
    "      <h2>Latency p99</h2>\n",
    "      <span class=\"max\">peak <b id=\"lat-max\" class=\"num\">&mdash;</b> ms</span>\n",
    "      <svg id=\"lat\" viewBox=\"0 0 300 100\" preserveAspectRatio=\"none\"\n",
    "        aria-label=\"p99 latency\">\n",
    "        <polyline id=\"lat-line\" fill=\"none\" stroke=\"#8b5cf6\" stroke-width=\"1.6\"\n",
    "          vector-effect=\"non-scaling-stroke\" points=\"\"></polyline>\n",
    "      </svg>\n",
    "      <div class=\"axis\"><span id=\"lat-from\">&minus;5 min</span><span>now</span></div>\n",
    "    </div>\n",
    "  </section>\n",
    "\n",
    "  <section class=\"grid cols\">\n",
    "    <div class=\"card\">\n",
    "      <h2>Bidders</h2>\n",
    "      <table>\n",
    "        <thead><tr><th>Bidder</th><th>Calls/s</th><th>Calls</th><th>Bids</th><th>Wins</th>\n",
    "          <th>Win rate</th><th>Timeouts</th><th>Errors</th><th>Throttled</th>\n",
    "          <th>Breaker</th><th>Spend</th></tr></thead>\n",
    "        <tbody id=\"bidders\">\n",
    "          <tr><td colspan=\"11\" class=\"empty\">waiting for data&hellip;</td></tr>\n",
    "        </tbody>\n",
    "      </table>\n",
    "    </div>\n",
    "    <div class=\"grid\">\n",
    "      <div class=\"card\">\n",
    "        <h2>Alerts <span id=\"alert-count\" class=\"num\"></span></h2>\n",
    "        <div id=\"alerts\"><div class=\"empty\">waiting for data&hellip;</div></div>\n",
    "      </div>\n",
    "      <div class=\"card\">\n",
    "        <h2>Events</h2>\n",
    "        <div class=\"steps\">\n",
    "          <div><span>Impressions</span><b id=\"ev-impressions\" class=\"num\">&mdash;</b>\n",
    "            <em>&nbsp;</em></div>\n",
    "          <div class=\"arrow\">&rarr;</div>\n",
    "          <div><span>Clicks</span><b id=\"ev-clicks\" class=\"num\">&mdash;</b>\n",
    "            <em>CTR <b id=\"ev-ctr\" class=\"num\">&mdash;</b></em></div>\n",
    "          <div class=\"arrow\">&rarr;</div>\n",
    "          <div><span>Conversions</span><b id=\"ev-conversions\" class=\"num\">&mdash;</b>\n",
    "            <em>CVR <b id=\"ev-cvr\" class=\"num\">&mdash;</b></em></div>\n",
    "        </div>\n",
    "        <div class=\"sub\">duplicate clicks\n",
    "          <b id=\"ev-dup\" class=\"num\">&mdash;</b></div>\n",
    "      </div>\n",
    "    </div>\n",
    "  </section>\n",
    "  <footer>Live from <code>/api/stream</code> (Server-Sent Events), polling\n",
    "    <code>/api/stats</code> when the stream is silent. Rates are the last full second;\n",
    "    latency percentiles are interpolated within histogram buckets.</footer>\n",
    "</main>\n",
    "<script>\n",
    "(function () {\n",
    "  'use strict';\n",
    "  var STATUSES = ['success', 'no_bid', 'timeout', 'invalid', 'overloaded'];\n",
    "  var lastEvent = 0, mode = '';\n",
    "  function $(id) { return document.getElementById(id); }\n",
    "  function set(id, text) {\n",
    "    var e = $(id);\n",
    "    if (e && e.textContent !== text) e.textContent = text;\n",
    "  }\n",
    "  function int(n) {\n",
    "    return typeof n === 'number' ? Math.round(n).toLocaleString('en-US') : '\\u2014';\n",
    "  }\n",
    "  function ms(n) { return typeof n === 'number' ? n.toFixed(n < 10 ? 2 : 1) : '\\u2014'; }\n",
    "  function pct(x) {\n",
    "    return typeof x === 'number' ? (x * 100).toFixed(1) + '%' : '\\u2014';\n",
    "  }\n",
    "  function money(x) { return typeof x === 'number' ? x.toFixed(2) : '\\u2014'; }\n",
    "  function clock(t) { return new Date(t * 1000).toLocaleTimeString('en-GB'); }\n",
    "  function uptime(s) {\n",
    "    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);\n",
    "    var m = Math.floor(s % 3600 / 60);\n",
    "    if (d) return d + 'd ' + h + 'h';\n",
    "    if (h) return h + 'h ' + (m < 10 ? '0' : '') + m + 'm';\n",
    "    return m + 'm ' + (s % 60 < 10 ? '0' : '') + Math.floor(s % 60) + 's';\n",
    "  }\n",
    "  function setMode(m) {\n",
    "    if (m === mode) return;\n",
    "    mode = m;\n",
    "    var e = $('mode');\n",
    "    e.className = 'pill ' + m;\n",
    "    e.textContent = m;\n",
    "  }\n",
    "  function cell(tr, text, cls) {\n",
    "    var td = document.createElement('td');\n",
    "    td.textContent = text;\n",
    "    if (cls) td.className = cls;\n",
    "    tr.appendChild(td);\n",
    "    return td;\n",
    "  }\n",
    "  function renderBidders(list) {\n",
    "    var body = $('bidders'), rows = document.createDocumentFragment();\n",
    "    list.forEach(function (b) {\n",
    "      var tr = document.createElement('tr');\n",
    "      if (!b.active) tr.className = 'inactive';\n",
    "      cell(tr, b.id);\n",
    "      cell(tr, int(b.calls_per_s), 'n');\n",
    "      cell(tr, int(b.calls), 'n');\n",
    "      cell(tr, int(b.bids), 'n');\n",
    "      cell(tr, int(b.wins), 'n');\n",
    "      cell(tr, pct(b.win_rate), 'n');\n",
    "      cell(tr, int(b.timeouts), b.calls && b.timeouts / b.calls > 0.2 ? 'n bad' : 'n');\n",
    "      cell(tr, int(b.errors), b.calls && b.errors / b.calls > 0.2 ? 'n bad' : 'n');\n",
    "      cell(tr, int(b.throttled), 'n');\n",
    "      var td = cell(tr, '');\n",
    "      var s = document.createElement('span');\n",
    "      s.className = 'state ' + b.breaker;\n",
    "      s.textContent = b.breaker.replace('_', '-');\n",
    "      td.appendChild(s);\n",
    "      cell(tr, money(b.spend), 'n');\n",
    "      rows.appendChild(tr);\n",
    "    });\n",
    "    if (!list.length) {\n",
    "      var tr = document.createElement('tr');\n",
    "      cell(tr, 'no advertisers in the registry yet', 'empty').colSpan = 11;\n",
    "      rows.appendChild(tr);\n",
    "    }\n",
    "    body.replaceChildren(rows);\n",
    "  }\n",
    "  function renderAlerts(list, rules) {\n",
    "    var box = $('alerts'), items = document.createDocumentFragment();\n",
    "    set('alert-count', list.length ? '(' + list.length + ')' : '');\n",
    "    list.forEach(function (a) {\n",
    "      var d = document.createElement('div'), b = document.createElement('b');\n",
    "      var s = document.createElement('span');\n",
    "      d.className = 'alert';\n",
    "      var rate = a.metric.slice(-5) === '_rate';\n",
    "      b.textContent = a.name + ': ' + a.metric + (a.subject ? ' of ' + a.subject : '') +\n",
    "          ' ' + (rate ? pct(a.value) : ms(a.value) + ' ms') + ' > ' +\n",
    "          (rate ? pct(a.above) : a.above + ' ms');\n",
    "      s.textContent = 'firing since ' + clock(a.since) + ', over ' + a.window_s + ' s';\n",
    "      d.appendChild(b);\n",
    "      d.appendChild(s);\n",
    "      items.appendChild(d);\n",
    "    });\n",
    "    if (!list.length) {\n",
    "      var ok = document.createElement('div');\n",
    "      ok.className = 'ok';\n",
    "      ok.textContent = rules ? 'All clear (' + rules + (rules > 1 ? ' rules)' : ' rule)')\n",
    "                             : 'No alert rules configured';\n",
    "      items.appendChild(ok);\n",
    "    }\n",
    "    box.replaceChildren(items);\n",
    "  }\n",
    "  function points(h, key, max, n) {\n",
    "    var step = 300 / Math.max(n - 1, 1), off = n - h.length, out = [];\n",
    "    h.forEach(function (p, i) {\n",
    "      var v = p[key];\n",
    "      if (typeof v !== 'number') return;\n",
    "      out.push(((off + i) * step).toFixed(1) + ',' + (100 - 96 * v / max).toFixed(1));\n",
    "    });\n",
    "    return out.join(' ');\n",
    "  }\n",
    "  function renderCharts(h) {\n",
    "    var n = Math.max(h.length, 60), max = 1, lmax = 1;\n",
    "    h.forEach(function (p) {\n",
    "      if (p.auctions > max) max = p.auctions;\n",
    "      if (typeof p.p99 === 'number' && p.p99 > lmax) lmax = p.p99;\n",
    "    });\n",
    "    var line = points(h, 'auctions', max, n);\n",
    "    $('spark-line').setAttribute('points', line);\n",
    "    $('spark-success').setAttribute('points', points(h, 'success', max, n));\n",
    "    $('spark-timeout').setAttribute('points', points(h, 'timeout', max, n));\n",
    "    var first = line.split(' ')[0], last = line.split(' ').pop();\n",
    "    $('spark-all').setAttribute('d', line ? 'M' + first.split(',')[0] + ',100 L' +\n",
    "        line.replace(/ /g, ' L') + ' L' + last.split(',')[0] + ',100 Z' : '');\n",
    "    $('lat-line').setAttribute('points', points(h, 'p99', lmax * 1.1, n));\n",
    "    var span = n >= 120 ? Math.round(n / 60) + ' min' : n + ' s';\n",
    "    set('spark-from', '\\u2212' + span);\n",
    "    set('lat-from', '\\u2212' + span);\n",
    "    set('spark-max', int(max));\n",
    "    set('lat-max', ms(lmax));\n",
    "  }\n",
    "  function render(s) {\n",
    "    var r = s.rates.auctions_per_s, total = 0;\n",
    "    STATUSES.forEach(function (k) { total += r[k] || 0; });\n",
    "    set('auctions-per-s', int(total));\n",
    "    set('requests-per-s', int(s.rates.requests_per_s));\n",
    "    set('inflight', int(s.totals.inflight));\n",
    "    STATUSES.forEach(function (k) {\n",
    "      set('rate-' + k, int(r[k]));\n",
    "      $('bar-' + k).style.width = (total ? 100 * r[k] / total : 0) + '%';\n",
    "    });\n",
    "    set('p50', ms(s.latency_ms.p50));\n",
    "    set('p99', ms(s.latency_ms.p99));\n",
    "    set('total-auctions', int(s.totals.auctions));\n",
    "    set('total-success', int(s.totals.success));\n",
    "    set('total-timeout', int(s.totals.timeout));\n",
    "    set('uptime', uptime(s.uptime_s));\n",
    "    set('updated', clock(s.time));\n",
    "    var e = s.events;\n",
    "    set('ev-impressions', int(e.impressions));\n",
    "    set('ev-clicks', int(e.clicks));\n",
    "    set('ev-conversions', int(e.conversions));\n",
    "    set('ev-ctr', pct(e.ctr));\n",
    "    set('ev-cvr', pct(e.clicks ? e.conversions / e.clicks : 0));\n",
    "    set('ev-dup', int(e.duplicate_clicks));\n",
    "    renderBidders(s.bidders);\n",
    "    renderAlerts(s.alerts, s.alert_rules);\n",
    "    renderCharts(s.history);\n",
    "  }\n",
    "  /* The stream is silent: no event for 2.5 s (or none yet). */\n",
    "  function stale() { return Date.now() - lastEvent > 2500; }\n",
    "  function poll() {\n",
    "    fetch('/api/stats', {cache: 'no-store'}).then(function (res) {\n",
    "      if (!res.ok) throw new Error(res.status);\n",
    "      return res.json();\n",
    "    }).then(function (s) {\n",
    "      render(s);\n",
    "      if (stale()) setMode('polling');\n",
    "    }).catch(function () { setMode('offline'); });\n",
    "  }\n",
    "  function connect() {\n",
    "    if (!window.EventSource) return;\n",
    "    var es = new EventSource('/api/stream');\n",
    "    es.onmessage = function (ev) {\n",
    "      try {\n",
    "        render(JSON.parse(ev.data));\n",
    "        lastEvent = Date.now();\n",
    "        setMode('live');\n",
    "      } catch (x) { /* the next one, or polling */ }\n",
    "    };\n",
    "    es.onerror = function () {\n",
    "      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 5000);\n",
    "    };\n",
    "  }\n",
    "  /* Headless Chromium stops its virtual clock (--virtual-time-budget) while a\n",
    "     request is pending, and a stream never ends: headless browsers poll. */\n",
    "  var headless = /HeadlessChrome/.test(navigator.userAgent);\n",
    "  setInterval(function () {\n",
    "    if (stale()) poll();\n",
    "  }, 1000);\n",
    "  poll();\n",
    "  if (!headless) connect();\n",
    "})();\n",
    "</script>\n",
    "</body>\n",
    "</html>\n",
};
/* clang-format on */

int rtb_dash_page(struct evbuffer *out) {
    for (size_t i = 0; i < sizeof(page) / sizeof(page[0]); i++)
        if (evbuffer_add(out, page[i], strlen(page[i])) != 0) return -1;
    return 0;
}

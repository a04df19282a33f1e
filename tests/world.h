/* world.h -- the "exchange world" every integration test of rtb-exchange needs.
 *
 * A world is the shared fixture's env (tests/fixture.h: redis-server and
 * mosquitto on free ports, a temp dir) plus what a test needs to drive one
 * live rtb-exchange: a Redis subscriber on auction:results:*, one on
 * auction:errors, an MQTT publisher, and the exchange's PID. The helpers here
 * write the exchange's config, start it, wait until it answers, publish bid
 * requests (SPEC 2), wait for and check results (SPEC 4), register
 * advertisers (SPEC 6), read rtb-bidder's own account (GET /stats, /last),
 * and stop the exchange expecting a clean exit (SPEC 7).
 *
 * How a test uses it (checked fixtures, as fixture.h describes):
 *
 *     static wx_world *w;
 *     static void setup(void) { w = wx_start(); }
 *     static void teardown(void) { wx_stop(w); w = NULL; }
 *
 *     START_TEST(example) {
 *         const char *specs[] = {"id=adv-1,price=fixed:2"};
 *         int port[1];
 *         fx_spawn_bidder(w->env, specs, 1, port);
 *         wx_register_advertiser(w, "adv-1", port[0], "[\"tag\"]");
 *         wx_opts o = {.tmax_ms = 100};
 *         wx_start_exchange(w, "example", &o);     // returns once it answers
 *         wx_publish_tagged(w, "r-1", 1.0, "tag");
 *         cJSON *r = wx_wait_result(w, "r-1");
 *         wx_expect_result(r, "success", 1, 1, 0, 0);
 *         cJSON_Delete(r);
 *         wx_stop_exchange(w);                      // SIGTERM, exit 0, clean log
 *     }
 *     END_TEST
 *
 * Readiness: the exchange is ready when a probe request (request_id ready-N
 * from user ready-user, no user_context, one every 100 ms) gets a result;
 * the probes' results are then drained until the channel is quiet, so a test
 * starts with nothing in flight. Probes are auctions like any other: they
 * reach every advertiser whose interests are empty and count in the
 * exchange's metrics. Give advertisers an interest tag and send requests with
 * user_context.interests (wx_publish_tagged) to keep probes away from them.
 *
 * Failing: like fixture.h, every function that sets something up or checks
 * something fails the running Check test itself (ck_assert / ck_abort_msg,
 * printing exchange.log first where the exchange's account helps), so these
 * may only be called inside a Check test or checked fixture. All traffic goes
 * to 127.0.0.1. Not thread-safe; one test thread drives a world.
 *
 * Ownership: the world owns its env, subscribers, publisher and the
 * exchange process; wx_stop releases everything. JSON the helpers return is
 * the caller's to cJSON_Delete. */
#ifndef RTB_TESTS_WORLD_H
#define RTB_TESTS_WORLD_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tests/fixture.h"

/* The topic wx_publish_request publishes on (matches rtb/requests/+). */
#define WX_REQUEST_TOPIC "rtb/requests/itest"
/* How long wx_wait_result waits, in ms: a result is due within tmax + 5 ms
 * (SPEC 4); this is generous. */
#define WX_RESULT_WAIT_MS 3000
/* How long wx_wait_ready waits for a first probe result, in ms (start-up:
 * registry load, MQTT connect, subscribe). */
#define WX_READY_WAIT_MS 10000
/* SIGTERM to exit in wx_stop_exchange, in ms. */
#define WX_STOP_WAIT_MS 5000
/* The config's default limits.max_request_bytes (SPEC 2: 64 KiB). */
#define WX_MAX_REQUEST_BYTES 65536

/* One exchange world. Tests read the fields; only the wx_ functions change
 * them (a test that reaps the exchange itself sets exchange_pid to 0). */
typedef struct wx_world {
    fx_env *env;        /* the fixture's servers and temp dir */
    fx_sub *results;    /* PSUBSCRIBE auction:results:*; NULL before wx_start_exchange */
    fx_sub *errors;     /* PSUBSCRIBE auction:errors; NULL before wx_start_exchange */
    fx_mqtt *pub;       /* MQTT 3.1.1 publisher; NULL before wx_start_exchange */
    pid_t exchange_pid; /* the running rtb-exchange; 0 when none (or reaped) */
    int tmax_ms;        /* auction.tmax_ms of the exchange's config */
    int admin_port;     /* admin listener port on 127.0.0.1; 0 when admin.listen is null */
    int probe_seq;      /* readiness probes sent so far: ready-1, ready-2, ... */
} wx_world;

/* Add a test case `name` holding `test` to `s`, with the checked fixture
 * setup/teardown (which start and stop the world, see above) and a Check
 * timeout of timeout_s seconds (Check's default of 4 s is too short for a
 * world). */
void wx_add_case(Suite *s, const char *name, const TTest *test, int timeout_s, void (*setup)(void),
                 void (*teardown)(void));

/* ---- the world ----------------------------------------------------------- */

/* fx_start() and a world around it with no exchange yet. Aborts when the
 * servers cannot be started. Release with wx_stop. */
wx_world *wx_start(void);

/* fx_stop(w->env) (stops the exchange, subscribers, publisher, servers) and
 * frees w. NULL is a no-op. Never aborts. */
void wx_stop(wx_world *w);

/* Fails the test with the printf-style message after printing exchange.log
 * to stderr (when w has an env), for failures whose cause is in the
 * exchange's own account of what happened. */
void wx_fail_with_log(const wx_world *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* ---- small JSON and text helpers ------------------------------------------ */

/* o[key] (case-sensitive), or NULL when o is not an object or lacks key. */
const cJSON *wx_jget(const cJSON *o, const char *key);
/* o[key] when it is a string (the tree owns it), else NULL. */
const char *wx_jstr(const cJSON *o, const char *key);
/* o[key] when it is a number, else NAN. */
double wx_jnum(const cJSON *o, const char *key);
/* s, or "" when s is NULL. */
const char *wx_or_empty(const char *s);
/* 1 when a and b are the same money amount: prices are exact decimals of at
 * most 6 places (SPEC 2), so they must agree within 1e-9. */
int wx_money_eq(double a, double b);
/* 1 when s is not NULL and starts with prefix. */
int wx_starts_with(const char *s, const char *prefix);
/* Wall-clock time (CLOCK_REALTIME) in seconds, for `timestamp` fields. */
double wx_wall_s(void);

/* ---- advertisers and rtb-bidder ------------------------------------------- */

/* SET advertiser:targeting:{id} to {"interests":INTERESTS,"endpoint":
 * "http://127.0.0.1:PORT/bid","max_concurrent":100} (SPEC 6). interests is
 * raw JSON, e.g. "[\"tech\"]" or "[]" (matches every user, probes too). A
 * running exchange sees it at its next refresh or PUBLISH advertiser:updates. */
void wx_register_advertiser(wx_world *w, const char *id, int port, const char *interests);

/* One rtb-bidder process serving the one advertiser `spec` (rtb-bidder's
 * --advertiser form, "id=...,latency=...,price=..."; `id` must be its id),
 * registered in Redis with `interests` as wx_register_advertiser does.
 * Returns the advertiser's port. */
int wx_spawn_advertiser(wx_world *w, const char *spec, const char *id, const char *interests);

/* Appends one config `bidders` entry {"id","endpoint","interests",
 * "max_concurrent":100} to the NUL-terminated buf of len bytes, comma-
 * separated from what is there; the result goes to wx_opts.bidders.
 * interests is raw JSON as above. Truncates silently when buf is too small
 * (wx_start_exchange then aborts on the broken JSON). */
void wx_add_config_bidder(char *buf, size_t len, const char *id, int port, const char *interests);

/* GET path (e.g. "/stats", "/last") on rtb-bidder's advertiser port, parsed.
 * Aborts unless the answer is 200 with a JSON body. Caller cJSON_Delete()s. */
cJSON *wx_bidder_get(int port, const char *path);

/* The advertiser's count of bid requests received (GET /stats "requests").
 * Aborts when it cannot be read. */
long wx_bidder_requests(int port);

/* ---- publishing bid requests (SPEC 2) ------------------------------------- */

/* Publishes len bytes of payload on topic, QoS 1, and waits for the PUBACK
 * (aborts when it does not come). Returns fx_now_ms() taken just before. */
int64_t wx_publish_raw(wx_world *w, const char *topic, const void *payload, size_t len);

/* Formats a bid request {"request_id","user_id","ad_slot_id","floor_price",
 * ["user_context",] "timestamp": now} into buf of len bytes; floor is in
 * currency units (6 decimals), context is raw JSON for user_context or NULL.
 * Returns the length written (no NUL counted); aborts when it does not fit. */
size_t wx_format_request(char *buf, size_t len, const char *id, const char *user, const char *slot,
                         double floor, const char *context);

/* wx_format_request + wx_publish_raw on WX_REQUEST_TOPIC; returns the
 * publish time (fx_now_ms). */
int64_t wx_publish_request(wx_world *w, const char *id, const char *user, const char *slot,
                           double floor, const char *context);

/* A request from user u-1 for slot-1 whose user_context.interests is [tag]:
 * it reaches the advertisers tagged `tag` and those targeting everyone. */
int64_t wx_publish_tagged(wx_world *w, const char *id, double floor, const char *tag);

/* ---- results (SPEC 4) ----------------------------------------------------- */

/* 1 when m is the result of a readiness probe (channel auction:results:ready-*). */
int wx_is_probe(const fx_msg *m);

/* Checks what every result must have: request_id == id, a known status,
 * winner an object exactly on success (else null), bids/bidders/timeouts/
 * errors non-negative integers (0 for invalid and overloaded), latency_ms in
 * [0, 10 s), timestamp about now, `error` on invalid. text is the payload,
 * quoted in failure messages. Aborts on the first broken rule. */
void wx_check_result(const cJSON *r, const char *id, const char *text);

/* The result on auction:results:{id} within timeout_ms, checked with
 * wx_check_result; *received_ms (if not NULL) gets the subscriber's receipt
 * time (fx_now_ms clock). Fails the test when none arrives or it is not a
 * JSON object. Results on other channels read meanwhile stay buffered.
 * Caller cJSON_Delete()s. */
cJSON *wx_wait_result_ex(wx_world *w, const char *id, int timeout_ms, int64_t *received_ms);

/* wx_wait_result_ex(w, id, WX_RESULT_WAIT_MS, NULL). */
cJSON *wx_wait_result(wx_world *w, const char *id);

/* Asserts status and the counters of result r; a count of -1 is not checked. */
void wx_expect_result(const cJSON *r, const char *status, int bids, int bidders, int timeouts,
                      int errs);

/* Asserts r's winner: advertiser adv, bid_price bid and clearing_price
 * clearing (currency units), and the ad_id "ad_{adv}_{request_id}" and
 * creative_url "https://cdn.example/{adv}.jpg" that rtb-bidder puts in bids. */
void wx_expect_winner(const cJSON *r, const char *adv, double bid, double clearing);

/* Fails the test when a(nother) result arrives on auction:results:{id}
 * within ms (0: only checks what already arrived). */
void wx_expect_no_more_results(wx_world *w, const char *id, int ms);

/* ---- the admin listener's /metrics ----------------------------------------- */

/* GET /metrics on 127.0.0.1:port: the value of one series written as on the
 * wire (`name` or `name{label="value"}`). Returns 1 with *out set, 0 when
 * the series is absent, -1 when /metrics could not be read. Never aborts. */
int wx_metric_read(int port, const char *series, double *out);
/* wx_metric_read on the exchange's admin port; fails the test (printing
 * exchange.log) when the series is absent or /metrics cannot be read. */
double wx_metric(wx_world *w, const char *series);
/* Polls wx_metric every 20 ms until it equals want; fails after within_ms. */
void wx_await_metric(wx_world *w, const char *series, double want, int within_ms);

/* ---- the exchange --------------------------------------------------------- */

/* What a test sets in the exchange's config; zero fields take the defaults.
 * The generated config (see wx_write_config) is
 *   mqtt: host 127.0.0.1, the env's port, client_id "itest-{name}-{pid}",
 *         topic rtb/requests/+, qos 1;
 *   redis: host 127.0.0.1, the env's port;
 *   auction: tmax_ms, max_bidders, price_increment 0.01;
 *   registry: refresh_s 60 (so only advertiser:updates explains a change);
 *   bidders: [bidders];
 *   limits: max_request_bytes, max_response_bytes, max_inflight;
 *   admin: listen null or "127.0.0.1:{admin_port}";
 *   log: level debug;
 * then extra_json merged over it. */
typedef struct wx_opts {
    int tmax_ms;             /* 0: 100 */
    int max_bidders;         /* 0: 10 */
    long max_inflight;       /* 0: 10000 */
    long max_request_bytes;  /* 0: WX_MAX_REQUEST_BYTES */
    long max_response_bytes; /* 0: 65536 */
    const char *bidders;     /* config `bidders` entries, raw JSON, comma-separated
                              * (wx_add_config_bidder); NULL: none */
    int admin_port;          /* 0: admin.listen null; else "127.0.0.1:PORT" */
    /* Raw JSON merged over the generated config, for keys the fields above
     * do not cover: either object members, e.g.
     *   "\"limits\":{\"max_pending_results\":10},\"mqtt\":{\"username\":\"u\"}"
     * or one whole object "{...}". Objects merge recursively (other keys of
     * `limits` stay); any other value, null included, replaces the key. NULL:
     * nothing. Aborts when it is not valid JSON. */
    const char *extra_json;
} wx_opts;

/* Writes the config above as DIR/exchange.json and returns its path
 * (malloc'd; caller frees), without starting anything: for tests that spawn
 * rtb-exchange themselves (fx_spawn with -c PATH, log "exchange.log").
 * name goes into mqtt.client_id. Aborts on bad bidders / extra_json. */
char *wx_write_config(wx_world *w, const char *name, const wx_opts *o);

/* Writes the config, opens the world's subscribers and MQTT publisher (first
 * call only), spawns $RTB_EXCHANGE -c DIR/exchange.json (output appended to
 * DIR/exchange.log), sets w->exchange_pid, w->tmax_ms and w->admin_port (read
 * back from the merged config), and returns once wx_wait_ready does. A test
 * may start the exchange again after wx_stop_exchange / wx_expect_clean_exit. */
void wx_start_exchange(wx_world *w, const char *name, const wx_opts *o);

/* The smallest world with an admin listener: one rtb-bidder advertiser,
 * adv-1, bidding a fixed 2.00 for interest `tag`, as a config bidder; the
 * exchange `name` with tmax 100 ms, an admin port (w->admin_port) and
 * `extra_json` (may be NULL) as in wx_opts. */
void wx_start_adv1_world(wx_world *w, const char *name, const char *tag, const char *extra_json);

/* Publishes request `id` (floor 1.00) tagged `tag` into an adv1 world and
 * expects adv-1 to win it at 2.00, clearing at the floor (SPEC 3.6): the
 * exchange still runs auctions. */
void wx_expect_adv1_wins(wx_world *w, const char *id, const char *tag);

/* A TCP connection to the exchange's admin port (w->admin_port) on
 * 127.0.0.1, for tests that speak raw HTTP. Fails the test (with the
 * exchange's log) when it cannot connect. The caller closes the fd. */
int wx_admin_connect(wx_world *w);

/* Publishes a probe every 100 ms until one gets a result (at most
 * WX_READY_WAIT_MS), then drains probe results until auction:results:* has
 * been quiet for tmax + 200 ms. Fails on a non-probe result, on any
 * auction:errors message, or when the exchange exits. Also useful after a
 * broker or Redis restart, to know requests flow again. */
void wx_wait_ready(wx_world *w);

/* Fails when exchange.log holds an ASan, LeakSanitizer or UBSan report
 * (quoting its first line), or cannot be read. */
void wx_check_exchange_log(wx_world *w);

/* Waits up to timeout_ms (negative: 0) for the exchange, already signalled,
 * to exit; reaps it (w->exchange_pid becomes 0) and fails unless it exited
 * with status 0 and exchange.log is clean (wx_check_exchange_log). */
void wx_expect_clean_exit(wx_world *w, int timeout_ms);

/* The end of every test: nothing unexpected on auction:errors, the exchange
 * still running, then SIGTERM and wx_expect_clean_exit(w, WX_STOP_WAIT_MS). */
void wx_stop_exchange(wx_world *w);

#endif /* RTB_TESTS_WORLD_H */

/* world.c -- the exchange world of the integration tests (see world.h).
 *
 * Thin glue over the shared fixture: everything that talks to a server goes
 * through fx_*, and every check fails the running Check test. The one idea:
 * the exchange's config is built as a cJSON tree from wx_opts, and the test's
 * extra_json is merged over that tree, so a test can set any key SPEC 7 knows
 * (or a wrong one, on purpose) without this file learning about it. */
#include "tests/world.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the world ----------------------------------------------------------- */

wx_world *wx_start(void) {
    wx_world *w = calloc(1, sizeof(*w));
    ck_assert_ptr_nonnull(w);
    w->env = fx_start();
    w->tmax_ms = 100;
    return w;
}

void wx_stop(wx_world *w) {
    if (w == NULL) return;
    fx_stop(w->env);
    free(w);
}

void wx_fail_with_log(const wx_world *w, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w != NULL && w->env != NULL) fx_dump_log(w->env, "exchange.log");
    ck_abort_msg("%s", msg);
}

/* ---- small JSON and text helpers ------------------------------------------ */

const cJSON *wx_jget(const cJSON *o, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

const char *wx_jstr(const cJSON *o, const char *key) {
    const cJSON *v = wx_jget(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

double wx_jnum(const cJSON *o, const char *key) {
    const cJSON *v = wx_jget(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

const char *wx_or_empty(const char *s) {
    return s != NULL ? s : "";
}

int wx_money_eq(double a, double b) {
    double d = a - b;
    return d < 1e-9 && d > -1e-9;
}

int wx_starts_with(const char *s, const char *prefix) {
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

double wx_wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- advertisers and rtb-bidder ------------------------------------------- */

void wx_register_advertiser(wx_world *w, const char *id, int port, const char *interests) {
    char key[200], value[1024];
    snprintf(key, sizeof key, "advertiser:targeting:%s", id);
    snprintf(value, sizeof value,
             "{\"interests\":%s,\"endpoint\":\"http://127.0.0.1:%d/bid\",\"max_concurrent\":100}",
             interests, port);
    fx_redis_do(w->env, "SET %s %s", key, value);
}

int wx_spawn_advertiser(wx_world *w, const char *spec, const char *id, const char *interests) {
    const char *specs[] = {spec};
    int port[1];
    fx_spawn_bidder(w->env, specs, 1, port);
    wx_register_advertiser(w, id, port[0], interests);
    return port[0];
}

void wx_add_config_bidder(char *buf, size_t len, const char *id, int port, const char *interests) {
    size_t used = strlen(buf);
    snprintf(buf + used, len - used,
             "%s{\"id\":\"%s\",\"endpoint\":\"http://127.0.0.1:%d/bid\",\"interests\":%s,"
             "\"max_concurrent\":100}",
             used > 0 ? "," : "", id, port, interests);
}

void wx_start_adv1_world(wx_world *w, const char *name, const char *tag, const char *extra_json) {
    const char *specs[] = {"id=adv-1,price=fixed:2"};
    int port[1];
    fx_spawn_bidder(w->env, specs, 1, port);
    char bidders[512] = "", interests[160];
    snprintf(interests, sizeof interests, "[\"%s\"]", tag);
    wx_add_config_bidder(bidders, sizeof bidders, "adv-1", port[0], interests);
    wx_opts o = {
        .tmax_ms = 100, .bidders = bidders, .admin_port = fx_free_port(), .extra_json = extra_json};
    wx_start_exchange(w, name, &o);
}

void wx_expect_adv1_wins(wx_world *w, const char *id, const char *tag) {
    wx_publish_tagged(w, id, 1.0, tag);
    cJSON *r = wx_wait_result(w, id);
    wx_expect_result(r, "success", 1, 1, 0, 0);
    wx_expect_winner(r, "adv-1", 2.0, 1.0);
    cJSON_Delete(r);
}

int wx_admin_connect(wx_world *w) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)w->admin_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        wx_fail_with_log(w, "connect to the admin port: %s", strerror(errno));
    return fd;
}

cJSON *wx_bidder_get(int port, const char *path) {
    char *body = NULL;
    int code = fx_http(port, "GET", path, NULL, &body, 2000);
    if (code != 200) ck_abort_msg("GET %s on bidder port %d: status %d", path, port, code);
    cJSON *j = cJSON_Parse(body);
    if (j == NULL) ck_abort_msg("GET %s on bidder port %d: not JSON: %.200s", path, port, body);
    free(body);
    return j;
}

long wx_bidder_requests(int port) {
    cJSON *j = wx_bidder_get(port, "/stats");
    double n = wx_jnum(j, "requests");
    cJSON_Delete(j);
    ck_assert_msg(!isnan(n), "bidder /stats without requests");
    return (long)n;
}

/* ---- publishing bid requests ---------------------------------------------- */

int64_t wx_publish_raw(wx_world *w, const char *topic, const void *payload, size_t len) {
    int64_t t = fx_now_ms();
    fx_mqtt_publish(w->pub, topic, payload, len, 1);
    return t;
}

size_t wx_format_request(char *buf, size_t len, const char *id, const char *user, const char *slot,
                         double floor, const char *context) {
    int n = snprintf(buf, len,
                     "{\"request_id\":\"%s\",\"user_id\":\"%s\",\"ad_slot_id\":\"%s\","
                     "\"floor_price\":%.6f%s%s,\"timestamp\":%.3f}",
                     id, user, slot, floor, context != NULL ? ",\"user_context\":" : "",
                     context != NULL ? context : "", wx_wall_s());
    ck_assert_msg(n > 0 && (size_t)n < len, "request %s does not fit", id);
    return (size_t)n;
}

int64_t wx_publish_request(wx_world *w, const char *id, const char *user, const char *slot,
                           double floor, const char *context) {
    char buf[4096];
    size_t n = wx_format_request(buf, sizeof buf, id, user, slot, floor, context);
    return wx_publish_raw(w, WX_REQUEST_TOPIC, buf, n);
}

int64_t wx_publish_tagged(wx_world *w, const char *id, double floor, const char *tag) {
    char ctx[256];
    snprintf(ctx, sizeof ctx, "{\"interests\":[\"%s\"]}", tag);
    return wx_publish_request(w, id, "u-1", "slot-1", floor, ctx);
}

/* ---- results -------------------------------------------------------------- */

int wx_is_probe(const fx_msg *m) {
    return wx_starts_with(m->channel, "auction:results:ready-");
}

void wx_check_result(const cJSON *r, const char *id, const char *text) {
    static const char *const statuses[] = {"success", "no_bid", "timeout", "invalid", "overloaded"};
    ck_assert_msg(strcmp(wx_or_empty(wx_jstr(r, "request_id")), id) == 0,
                  "result for %s: request_id wrong: %s", id, text);
    const char *status = wx_or_empty(wx_jstr(r, "status"));
    int known = 0;
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        known |= strcmp(status, statuses[i]) == 0;
    ck_assert_msg(known, "result for %s: unknown status: %s", id, text);
    const cJSON *winner = wx_jget(r, "winner");
    ck_assert_msg(cJSON_IsObject(winner) == (strcmp(status, "success") == 0) &&
                      (cJSON_IsObject(winner) || cJSON_IsNull(winner)),
                  "result for %s: winner must be an object exactly on success: %s", id, text);
    static const char *const counters[] = {"bids", "bidders", "timeouts", "errors"};
    int zero = strcmp(status, "invalid") == 0 || strcmp(status, "overloaded") == 0;
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        double v = wx_jnum(r, counters[i]);
        ck_assert_msg(!isnan(v) && v >= 0 && v == (double)(long)v,
                      "result for %s: %s not a count: %s", id, counters[i], text);
        ck_assert_msg(!zero || v == 0, "result for %s: %s must be 0 when %s: %s", id, counters[i],
                      status, text);
    }
    double latency = wx_jnum(r, "latency_ms");
    ck_assert_msg(!isnan(latency) && latency >= 0 && latency < 10000,
                  "result for %s: latency_ms: %s", id, text);
    double ts = wx_jnum(r, "timestamp"), now = wx_wall_s();
    ck_assert_msg(!isnan(ts) && ts > now - 10 && ts < now + 2,
                  "result for %s: timestamp %.3f is not about now (%.3f): %s", id, ts, now, text);
    if (strcmp(status, "invalid") == 0)
        ck_assert_msg(wx_jstr(r, "error") != NULL && wx_jstr(r, "error")[0] != '\0',
                      "result for %s: invalid without error: %s", id, text);
}

cJSON *wx_wait_result_ex(wx_world *w, const char *id, int timeout_ms, int64_t *received_ms) {
    char channel[300];
    snprintf(channel, sizeof channel, "auction:results:%s", id);
    fx_msg *m = fx_sub_wait_for(w->results, channel, timeout_ms);
    if (m == NULL) {
        wx_fail_with_log(w, "no result for %s within %d ms (exchange %s)", id, timeout_ms,
                         fx_pid_alive(w->exchange_pid) ? "running" : "gone");
    }
    cJSON *r = fx_msg_json(m);
    if (r == NULL || !cJSON_IsObject(r))
        wx_fail_with_log(w, "result for %s is not a JSON object: %.300s", id, m->payload);
    wx_check_result(r, id, m->payload);
    if (received_ms != NULL) *received_ms = m->received_ms;
    fx_msg_free(m);
    return r;
}

cJSON *wx_wait_result(wx_world *w, const char *id) {
    return wx_wait_result_ex(w, id, WX_RESULT_WAIT_MS, NULL);
}

void wx_expect_result(const cJSON *r, const char *status, int bids, int bidders, int timeouts,
                      int errs) {
    char *text = cJSON_PrintUnformatted(r);
    ck_assert_msg(strcmp(wx_or_empty(wx_jstr(r, "status")), status) == 0, "want status %s: %s",
                  status, text);
    const char *names[] = {"bids", "bidders", "timeouts", "errors"};
    int want[] = {bids, bidders, timeouts, errs};
    for (int i = 0; i < 4; i++) {
        if (want[i] >= 0)
            ck_assert_msg(wx_jnum(r, names[i]) == want[i], "want %s = %d: %s", names[i], want[i],
                          text);
    }
    cJSON_free(text);
}

void wx_expect_winner(const cJSON *r, const char *adv, double bid, double clearing) {
    char *text = cJSON_PrintUnformatted(r);
    const cJSON *win = wx_jget(r, "winner");
    ck_assert_msg(cJSON_IsObject(win), "want a winner: %s", text);
    ck_assert_msg(strcmp(wx_or_empty(wx_jstr(win, "advertiser_id")), adv) == 0,
                  "want winner %s: %s", adv, text);
    ck_assert_msg(wx_money_eq(wx_jnum(win, "bid_price"), bid), "want bid_price %.6f: %s", bid,
                  text);
    ck_assert_msg(wx_money_eq(wx_jnum(win, "clearing_price"), clearing),
                  "want clearing_price %.6f: %s", clearing, text);
    char want[512];
    snprintf(want, sizeof want, "ad_%s_%s", adv, wx_or_empty(wx_jstr(r, "request_id")));
    ck_assert_msg(strcmp(wx_or_empty(wx_jstr(win, "ad_id")), want) == 0, "want ad_id %s: %s", want,
                  text);
    snprintf(want, sizeof want, "https://cdn.example/%s.jpg", adv);
    ck_assert_msg(strcmp(wx_or_empty(wx_jstr(win, "creative_url")), want) == 0,
                  "want creative_url %s: %s", want, text);
    cJSON_free(text);
}

void wx_expect_no_more_results(wx_world *w, const char *id, int ms) {
    char channel[300];
    snprintf(channel, sizeof channel, "auction:results:%s", id);
    fx_msg *m = fx_sub_wait_for(w->results, channel, ms);
    if (m != NULL) wx_fail_with_log(w, "a second result for %s: %.300s", id, m->payload);
}

/* ---- the exchange's config ------------------------------------------------ */

/* Adders that abort instead of leaving a hole in the config. */
static cJSON *add_obj(cJSON *o, const char *key) {
    cJSON *v = cJSON_AddObjectToObject(o, key);
    ck_assert_ptr_nonnull(v);
    return v;
}

static void add_num(cJSON *o, const char *key, double n) {
    ck_assert_ptr_nonnull(cJSON_AddNumberToObject(o, key, n));
}

static void add_str(cJSON *o, const char *key, const char *s) {
    ck_assert_ptr_nonnull(cJSON_AddStringToObject(o, key, s));
}

/* Parses text (len bytes) as JSON of the given kind: "[" text "]" for the
 * bidders list, or an object given whole or as bare members. Aborts naming
 * what when it does not parse. */
static cJSON *parse_wrapped(const char *text, char open, char close, const char *what) {
    size_t n = strlen(text), skip = strspn(text, " \t\r\n");
    int whole = open == '{' && text[skip] == '{';
    char *buf = malloc(n + 3);
    ck_assert_ptr_nonnull(buf);
    size_t len = 0;
    if (!whole) buf[len++] = open;
    memcpy(buf + len, text, n);
    len += n;
    if (!whole) buf[len++] = close;
    buf[len] = '\0';
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (j == NULL || (open == '{' ? !cJSON_IsObject(j) : !cJSON_IsArray(j)))
        ck_abort_msg("wx_opts.%s is not valid JSON: %.300s", what, text);
    return j;
}

/* Moves every member of src into dst: objects merge recursively, anything
 * else replaces dst's member of the same name. */
static void merge_over(cJSON *dst, cJSON *src) {
    cJSON *item = src->child;
    while (item != NULL) {
        cJSON *next = item->next;
        cJSON *old = cJSON_GetObjectItemCaseSensitive(dst, item->string);
        if (cJSON_IsObject(old) && cJSON_IsObject(item)) {
            merge_over(old, item);
        } else {
            cJSON *moved = cJSON_DetachItemViaPointer(src, item);
            if (old != NULL) cJSON_DeleteItemFromObjectCaseSensitive(dst, moved->string);
            /* cJSON copies the key before it frees the item's own copy. */
            ck_assert_msg(cJSON_AddItemToObject(dst, moved->string, moved), "out of memory");
        }
        item = next;
    }
}

/* The config tree of wx_write_config; the caller cJSON_Delete()s. */
static cJSON *config_tree(wx_world *w, const char *name, const wx_opts *o) {
    cJSON *c = cJSON_CreateObject();
    ck_assert_ptr_nonnull(c);
    char client_id[200];
    snprintf(client_id, sizeof client_id, "itest-%s-%d", name, (int)getpid());
    cJSON *mqtt = add_obj(c, "mqtt");
    add_str(mqtt, "host", "127.0.0.1");
    add_num(mqtt, "port", fx_mqtt_port(w->env));
    add_str(mqtt, "client_id", client_id);
    add_str(mqtt, "topic", "rtb/requests/+");
    add_num(mqtt, "qos", 1);
    cJSON *redis = add_obj(c, "redis");
    add_str(redis, "host", "127.0.0.1");
    add_num(redis, "port", fx_redis_port(w->env));
    cJSON *auction = add_obj(c, "auction");
    add_num(auction, "tmax_ms", o->tmax_ms > 0 ? o->tmax_ms : 100);
    add_num(auction, "max_bidders", o->max_bidders > 0 ? o->max_bidders : 10);
    add_num(auction, "price_increment", 0.01);
    add_num(add_obj(c, "registry"), "refresh_s", 60);
    cJSON *bidders = parse_wrapped(o->bidders != NULL ? o->bidders : "", '[', ']', "bidders");
    ck_assert_msg(cJSON_AddItemToObject(c, "bidders", bidders), "out of memory");
    cJSON *limits = add_obj(c, "limits");
    add_num(limits, "max_request_bytes",
            (double)(o->max_request_bytes > 0 ? o->max_request_bytes : WX_MAX_REQUEST_BYTES));
    add_num(limits, "max_response_bytes",
            (double)(o->max_response_bytes > 0 ? o->max_response_bytes : 65536));
    add_num(limits, "max_inflight", (double)(o->max_inflight > 0 ? o->max_inflight : 10000));
    cJSON *admin = add_obj(c, "admin");
    if (o->admin_port > 0) {
        char listen[64];
        snprintf(listen, sizeof listen, "127.0.0.1:%d", o->admin_port);
        add_str(admin, "listen", listen);
    } else {
        ck_assert_ptr_nonnull(cJSON_AddNullToObject(admin, "listen"));
    }
    add_str(add_obj(c, "log"), "level", "debug");
    if (o->extra_json != NULL) {
        cJSON *extra = parse_wrapped(o->extra_json, '{', '}', "extra_json");
        merge_over(c, extra);
        cJSON_Delete(extra);
    }
    return c;
}

static char *write_tree(wx_world *w, const cJSON *c) {
    char *text = cJSON_PrintUnformatted(c);
    ck_assert_ptr_nonnull(text);
    char *path = fx_write_file(w->env, "exchange.json", text);
    cJSON_free(text);
    return path;
}

char *wx_write_config(wx_world *w, const char *name, const wx_opts *o) {
    cJSON *c = config_tree(w, name, o);
    char *path = write_tree(w, c);
    cJSON_Delete(c);
    return path;
}

/* The port of an admin.listen "host:port", or 0 (null, or not that shape). */
static int admin_port_of(const cJSON *c) {
    const char *listen = wx_jstr(wx_jget(c, "admin"), "listen");
    const char *colon = listen != NULL ? strrchr(listen, ':') : NULL;
    return colon != NULL ? atoi(colon + 1) : 0;
}

/* ---- the exchange --------------------------------------------------------- */

void wx_start_exchange(wx_world *w, const char *name, const wx_opts *o) {
    cJSON *c = config_tree(w, name, o);
    double tmax = wx_jnum(wx_jget(c, "auction"), "tmax_ms");
    w->tmax_ms = !isnan(tmax) && tmax > 0 && tmax < 1e6 ? (int)tmax : 100;
    w->admin_port = admin_port_of(c);
    char *path = write_tree(w, c);
    cJSON_Delete(c);
    if (w->results == NULL) w->results = fx_sub_start(w->env, "auction:results:*");
    if (w->errors == NULL) w->errors = fx_sub_start(w->env, "auction:errors");
    if (w->pub == NULL) w->pub = fx_mqtt_connect(w->env);
    const char *argv[] = {fx_getenv("RTB_EXCHANGE"), "-c", path, NULL};
    w->exchange_pid = fx_spawn(w->env, argv, "exchange.log");
    free(path);
    wx_wait_ready(w);
}

void wx_wait_ready(wx_world *w) {
    int64_t start = fx_now_ms();
    int ready = 0;
    while (!ready) {
        if (!fx_pid_alive(w->exchange_pid))
            wx_fail_with_log(w, "rtb-exchange exited during start-up");
        if (fx_now_ms() - start > WX_READY_WAIT_MS)
            wx_fail_with_log(w, "rtb-exchange answered no probe within %d ms", WX_READY_WAIT_MS);
        char id[32];
        snprintf(id, sizeof id, "ready-%d", ++w->probe_seq);
        wx_publish_request(w, id, "ready-user", "ready-slot", 0.01, NULL);
        int64_t until = fx_now_ms() + 100;
        fx_msg *m;
        while (!ready && fx_now_ms() < until &&
               (m = fx_sub_next(w->results, (int)(until - fx_now_ms()))) != NULL) {
            if (!wx_is_probe(m))
                wx_fail_with_log(w, "unexpected result during start-up: %.300s", m->payload);
            ready = 1;
            fx_msg_free(m);
        }
    }
    fx_msg *m;
    while ((m = fx_sub_next(w->results, w->tmax_ms + 200)) != NULL) {
        if (!wx_is_probe(m))
            wx_fail_with_log(w, "unexpected result during start-up: %.300s", m->payload);
        fx_msg_free(m);
    }
    m = fx_sub_next(w->errors, 0);
    if (m != NULL)
        wx_fail_with_log(w, "unexpected auction:errors message during start-up: %.300s",
                         m->payload);
}

void wx_check_exchange_log(wx_world *w) {
    static const char *const reports[] = {"ERROR: AddressSanitizer", "LeakSanitizer",
                                          "runtime error:"};
    char *log = fx_read_file(w->env, "exchange.log", NULL);
    ck_assert_msg(log != NULL, "exchange.log cannot be read");
    for (size_t i = 0; i < sizeof reports / sizeof reports[0]; i++) {
        const char *hit = strstr(log, reports[i]);
        if (hit == NULL) continue;
        const char *line = hit;
        while (line > log && line[-1] != '\n')
            line--;
        char first[400];
        snprintf(first, sizeof first, "%.*s", (int)strcspn(line, "\n"), line);
        free(log);
        wx_fail_with_log(w, "exchange.log has a sanitizer report: %s", first);
    }
    free(log);
}

void wx_expect_clean_exit(wx_world *w, int timeout_ms) {
    int status = 0;
    if (fx_wait_exit(w->exchange_pid, timeout_ms < 0 ? 0 : timeout_ms, &status) != 0)
        wx_fail_with_log(w, "rtb-exchange did not exit within %d ms of SIGTERM", timeout_ms);
    w->exchange_pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        wx_fail_with_log(w, "rtb-exchange ended with %s %d, want exit status 0",
                         WIFEXITED(status) ? "exit status" : "signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    wx_check_exchange_log(w);
}

void wx_stop_exchange(wx_world *w) {
    fx_msg *m = fx_sub_next(w->errors, 0);
    if (m != NULL) wx_fail_with_log(w, "unexpected auction:errors message: %.300s", m->payload);
    if (!fx_pid_alive(w->exchange_pid))
        wx_fail_with_log(w, "rtb-exchange is gone before the end of the test");
    fx_kill(w->exchange_pid, SIGTERM);
    wx_expect_clean_exit(w, WX_STOP_WAIT_MS);
}

void wx_add_case(Suite *s, const char *name, const TTest *test, int timeout_s, void (*setup)(void),
                 void (*teardown)(void)) {
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, timeout_s);
    tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}

/* ---- the admin listener's /metrics ----------------------------------------- */

int wx_metric_read(int port, const char *series, double *out) {
    char *text = NULL;
    if (fx_http(port, "GET", "/metrics", NULL, &text, 2000) != 200) {
        free(text);
        return -1;
    }
    size_t n = strlen(series);
    int found = 0;
    for (const char *p = text; *p != '\0' && !found; p += strcspn(p, "\n"), p += *p == '\n') {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            *out = strtod(p + n + 1, NULL);
            found = 1;
        }
    }
    free(text);
    return found;
}

double wx_metric(wx_world *w, const char *series) {
    double v = 0;
    int rc = wx_metric_read(w->admin_port, series, &v);
    if (rc < 0) wx_fail_with_log(w, "GET /metrics on port %d failed", w->admin_port);
    if (rc == 0) wx_fail_with_log(w, "/metrics has no %s", series);
    return v;
}

void wx_await_metric(wx_world *w, const char *series, double want, int within_ms) {
    int64_t deadline = fx_now_ms() + within_ms;
    double v = wx_metric(w, series);
    while (v != want) {
        if (fx_now_ms() > deadline)
            wx_fail_with_log(w, "%s is %.0f after %d ms, want %.0f", series, v, within_ms, want);
        fx_sleep_ms(20);
        v = wx_metric(w, series);
    }
}

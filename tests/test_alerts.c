/* test_alerts.c -- alert rules at run time (SPEC 16) on real servers: a live
 * rtb-exchange, rtb-bidder, Redis and mosquitto.
 *
 * What must hold, as a user of the admin API sees it:
 *   - GET /api/alerts lists every rule with its source and state; POST adds
 *     one (201 and the rule as stored; 400 naming the key of a bad one; 409
 *     for a name taken); DELETE /api/alerts/{name} removes one (204; 404);
 *   - writes need Authorization: Bearer {admin.token}: 403 with no token
 *     configured, 401 without one or with a wrong one; RTB_ADMIN_TOKEN
 *     replaces the file's; the token is never in the log, /metrics, the
 *     JSON or the page;
 *   - rules live in Redis alerts:rules: the config's are written there at
 *     start, an API rule survives a restart, a config rule deleted by the
 *     API comes back with the next start;
 *   - a rule fires and resolves, with op above (no_bid_rate) and op below
 *     (win_rate of one advertiser), on auction:alerts with its severity and
 *     message, and in GET /api/alerts;
 *   - per-advertiser metrics from ad events and wins (ctr, cpc), for every
 *     advertiser or one subject, holding their state below 5 impressions;
 *   - writes still waiting for Redis when their client leaves or the
 *     exchange stops end cleanly (the ASan build checks it);
 *   - a rule written on one exchange is evaluated by a second one sharing
 *     the Redis within about a second (pub/sub on alerts:updates; the
 *     periodic reread is 60 s in these configs, so it cannot explain it). */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/world.h"

#define TOKEN "alerts-test-token-0123456789"
#define HTTP_WAIT_MS 5000
#define LOG_B "exchange-b.log"
/* A rule written on one exchange is read by the other within about a second
 * (SPEC 16); generous for the ASan build on a shared machine. */
#define PROPAGATION_MS 1500

static wx_world *w;

static void setup(void) {
    w = wx_start();
}

static void teardown(void) {
    unsetenv("RTB_ADMIN_TOKEN");
    wx_stop(w);
    w = NULL;
}

/* ---- HTTP with headers ------------------------------------------------------------ */

/* One answer of the admin listener. */
typedef struct answer {
    int status; /* -1 when none came */
    char *head; /* status line and headers */
    char *body; /* "" when none */
} answer;

static void answer_free(answer *a) {
    free(a->head);
    free(a->body);
    memset(a, 0, sizeof *a);
}

/* METHOD path HTTP/1.1 to 127.0.0.1:port with Host, Connection: close, the
 * header line `auth` ("Authorization: ..."; NULL: none) and `body` (NULL:
 * none); reads the answer until the listener closes. Never aborts: a
 * failure gives status -1. */
static void http(int port, const char *method, const char *path, const char *auth, const char *body,
                 answer *out) {
    memset(out, 0, sizeof *out);
    out->status = -1;
    size_t blen = body ? strlen(body) : 0;
    size_t cap = 512 + strlen(path) + (auth ? strlen(auth) : 0) + blen;
    char *req = malloc(cap);
    ck_assert_ptr_nonnull(req);
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s%s"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     method, path, port, auth ? auth : "", auth ? "\r\n" : "", blen);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        send(fd, req, (size_t)n, MSG_NOSIGNAL) != n ||
        (blen && send(fd, body, blen, MSG_NOSIGNAL) != (ssize_t)blen)) {
        if (fd >= 0) close(fd);
        free(req);
        return;
    }
    free(req);
    size_t len = 0, room = 4096;
    char *text = malloc(room);
    int64_t until = fx_now_ms() + HTTP_WAIT_MS;
    for (;;) {
        int left = (int)(until - fx_now_ms());
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0) break;
        if (len + 1 == room) text = realloc(text, room *= 2);
        ssize_t got = recv(fd, text + len, room - 1 - len, 0);
        if (got <= 0) break;
        len += (size_t)got;
    }
    close(fd);
    text[len] = '\0';
    char *split = strstr(text, "\r\n\r\n");
    if (split && sscanf(text, "HTTP/1.%*d %d", &out->status) == 1) {
        *split = '\0';
        out->head = strdup(text);
        out->body = strdup(split + 4);
    } else {
        out->status = -1;
    }
    free(text);
}

/* The value of header `name` in a->head (case-insensitive), copied into
 * buf; NULL when absent. */
static const char *header(const answer *a, const char *name, char *buf, size_t len) {
    size_t n = strlen(name);
    for (const char *line = a->head; line && (line = strstr(line, "\r\n")) != NULL;) {
        line += 2;
        if (strncasecmp(line, name, n) != 0 || line[n] != ':') continue;
        const char *v = line + n + 1 + strspn(line + n + 1, " ");
        snprintf(buf, len, "%.*s", (int)strcspn(v, "\r\n"), v);
        return buf;
    }
    return NULL;
}

#define BEARER "Authorization: Bearer " TOKEN

/* A request whose answer must be `status`; the answer is the caller's. */
static void expect_status(int port, const char *method, const char *path, const char *auth,
                          const char *body, int status, answer *out) {
    http(port, method, path, auth, body, out);
    if (out->status != status)
        wx_fail_with_log(w, "%s %s (%s): status %d, want %d: %s", method, path,
                         auth ? "with a token" : "no token", out->status, status,
                         wx_or_empty(out->body));
}

/* The body of an answer, parsed; fails unless it is a JSON object. */
static cJSON *answer_json(const answer *a) {
    cJSON *j = cJSON_Parse(wx_or_empty(a->body));
    if (!cJSON_IsObject(j)) wx_fail_with_log(w, "not a JSON object: %.300s", a->body);
    return j;
}

/* {"error": ...} of a refused write: starts with `want`. */
static void expect_error(const answer *a, const char *want) {
    cJSON *j = answer_json(a);
    const char *e = wx_jstr(j, "error");
    if (!wx_starts_with(e, want))
        wx_fail_with_log(w, "error \"%s\", want it to start with \"%s\"", wx_or_empty(e), want);
    cJSON_Delete(j);
}

/* GET /api/alerts on `port`, parsed and its shape checked. */
static cJSON *get_alerts(int port) {
    answer a;
    expect_status(port, "GET", "/api/alerts", NULL, NULL, 200, &a);
    cJSON *j = answer_json(&a);
    answer_free(&a);
    ck_assert_msg(cJSON_IsArray(wx_jget(j, "rules")), "no rules[]");
    ck_assert_msg(cJSON_IsNumber(wx_jget(j, "firing")), "no firing");
    const cJSON *r;
    int firing = 0;
    cJSON_ArrayForEach(r, wx_jget(j, "rules")) {
        const char *state = wx_jstr(r, "state");
        ck_assert_msg(state && (!strcmp(state, "ok") || !strcmp(state, "firing")), "state");
        ck_assert_msg(cJSON_IsArray(wx_jget(r, "subject_values")), "no subject_values");
        ck_assert_msg(!strcmp(state, "firing") ==
                          (cJSON_GetArraySize(wx_jget(r, "subject_values")) > 0),
                      "state and subject_values disagree");
        ck_assert_msg(!strcmp(state, "firing") ? cJSON_IsNumber(wx_jget(r, "since"))
                                               : cJSON_IsNull(wx_jget(r, "since")),
                      "since");
        firing += !strcmp(state, "firing");
    }
    ck_assert_int_eq((int)wx_jnum(j, "firing"), firing);
    return j;
}

/* The rule `name` in a GET /api/alerts answer, or NULL. */
static const cJSON *rule_in(const cJSON *alerts, const char *name) {
    const cJSON *r;
    cJSON_ArrayForEach(r, wx_jget(alerts, "rules")) {
        if (strcmp(wx_or_empty(wx_jstr(r, "name")), name) == 0) return r;
    }
    return NULL;
}

/* The value stored in alerts:rules for `name`, parsed; NULL when absent. */
static cJSON *stored_rule(const char *name) {
    redisReply *r = fx_redis_cmd(w->env, "HGET alerts:rules %s", name);
    cJSON *j = r->type == REDIS_REPLY_STRING ? cJSON_Parse(r->str) : NULL;
    freeReplyObject(r);
    return j;
}

/* Fails when `text` is in the log `name`. */
static void log_lacks(const char *name, const char *text) {
    char *log = fx_read_file(w->env, name, NULL);
    ck_assert_msg(log != NULL, "%s cannot be read", name);
    int found = strstr(log, text) != NULL;
    free(log);
    if (found) wx_fail_with_log(w, "%s shows \"%s\"", name, text);
}

/* Fails when GET `path` on `port` answers something that holds `text`. */
static void page_lacks(int port, const char *path, const char *text) {
    answer a;
    expect_status(port, "GET", path, NULL, NULL, 200, &a);
    int found = strstr(a.body, text) != NULL || strstr(a.head, text) != NULL;
    answer_free(&a);
    if (found) wx_fail_with_log(w, "GET %s shows \"%s\"", path, text);
}

/* The exchange with admin port, `token` (NULL: none) and `alerts` (raw JSON
 * of the config's alerts[]; NULL: the default). */
static void start_exchange(const char *name, const char *token, const char *alerts) {
    char extra[2048];
    size_t n = 0;
    extra[0] = '\0';
    if (token)
        n += (size_t)snprintf(extra + n, sizeof extra - n, "\"admin\":{\"token\":\"%s\"}", token);
    if (alerts) snprintf(extra + n, sizeof extra - n, "%s\"alerts\":%s", n ? "," : "", alerts);
    wx_opts o = {.admin_port = w->admin_port ? w->admin_port : fx_free_port(),
                 .extra_json = extra[0] ? extra : NULL};
    wx_start_exchange(w, name, &o);
}

/* ---- The API and its auth ------------------------------------------------------------- */

#define CONFIG_RULES                                                                               \
    "[{\"name\":\"cfg-nobid\",\"metric\":\"no_bid_rate\",\"above\":0.99,\"window_s\":30},"         \
    "{\"name\":\"cfg-slow\",\"metric\":\"p99_latency_ms\",\"op\":\"above\",\"threshold\":900,"     \
    "\"severity\":\"critical\",\"message\":\"p99 is high\"}]"

START_TEST(api_endpoints_and_auth) {
    start_exchange("alerts-api", TOKEN, CONFIG_RULES);
    int port = w->admin_port;

    /* The config's rules: listed, and written to Redis at start. */
    cJSON *all = get_alerts(port);
    ck_assert_int_eq(cJSON_GetArraySize(wx_jget(all, "rules")), 2);
    const cJSON *r = rule_in(all, "cfg-slow");
    ck_assert_msg(r != NULL, "cfg-slow not listed");
    ck_assert_str_eq(wx_jstr(r, "source"), "config");
    ck_assert_str_eq(wx_jstr(r, "state"), "ok");
    ck_assert_str_eq(wx_jstr(r, "metric"), "p99_latency_ms");
    ck_assert_str_eq(wx_jstr(r, "op"), "above");
    ck_assert(wx_jnum(r, "threshold") == 900 && wx_jnum(r, "window_s") == 10);
    ck_assert_str_eq(wx_jstr(r, "severity"), "critical");
    ck_assert_str_eq(wx_jstr(r, "message"), "p99 is high");
    ck_assert(cJSON_IsNull(wx_jget(r, "subject")));
    r = rule_in(all, "cfg-nobid"); /* the older shape, shown in the new one */
    ck_assert_msg(r && !strcmp(wx_jstr(r, "op"), "above") && wx_jnum(r, "threshold") == 0.99,
                  "cfg-nobid: above 0.99 is not op above, threshold 0.99");
    cJSON_Delete(all);
    cJSON *stored = stored_rule("cfg-nobid");
    ck_assert_msg(stored && !strcmp(wx_or_empty(wx_jstr(stored, "source")), "config") &&
                      wx_jnum(stored, "threshold") == 0.99,
                  "alerts:rules has no config rule cfg-nobid");
    cJSON_Delete(stored);

    const char *rule = "{\"name\":\"api-ctr\",\"metric\":\"ctr\",\"subject\":\"adv-9\",\"op\":"
                       "\"below\",\"threshold\":0.01,\"window_s\":60,\"message\":\"CTR low\"}";
    answer a;
    char buf[256];
    /* No token, a wrong one, another scheme: 401, nothing stored. */
    expect_status(port, "POST", "/api/alerts", NULL, rule, 401, &a);
    ck_assert_msg(header(&a, "WWW-Authenticate", buf, sizeof buf) && wx_starts_with(buf, "Bearer"),
                  "401 without WWW-Authenticate: Bearer");
    expect_error(&a, "Authorization: Bearer");
    answer_free(&a);
    expect_status(port, "POST", "/api/alerts", "Authorization: Bearer wrong-" TOKEN, rule, 401, &a);
    expect_error(&a, "wrong bearer token");
    answer_free(&a);
    expect_status(port, "POST", "/api/alerts", "Authorization: Basic " TOKEN, rule, 401, &a);
    answer_free(&a);
    /* A prefix of the token is not the token. */
    expect_status(port, "POST", "/api/alerts", "Authorization: Bearer alerts-test-token", rule, 401,
                  &a);
    answer_free(&a);
    cJSON *none = stored_rule("api-ctr");
    ck_assert_msg(none == NULL, "a refused POST stored its rule");

    /* A bad rule: 400, the message names the key. */
    static const struct {
        const char *body, *error;
    } bad[] = {
        {"{\"name\":\"x\",\"metric\":\"ctr\"}", "threshold: required"},
        {"{\"name\":\"x\",\"metric\":\"ctr\",\"op\":\"under\",\"threshold\":1}",
         "op: expected one of \"above\", \"below\""},
        {"{\"name\":\"x\",\"metric\":\"clicks\",\"threshold\":1}", "metric: expected one of"},
        {"{\"name\":\"x\",\"metric\":\"ctr\",\"threshold\":1,\"window_s\":601}",
         "window_s: expected an integer between 1 and 600"},
        {"{\"name\":\"x\",\"metric\":\"ctr\",\"threshold\":1,\"severity\":\"high\"}",
         "severity: expected one of"},
        {"{\"name\":\"x\",\"metric\":\"no_bid_rate\",\"threshold\":1,\"subject\":\"adv-1\"}",
         "subject: no_bid_rate is exchange-wide"},
        {"{\"name\":\"x\",\"metric\":\"ctr\",\"threshold\":1,\"source\":\"config\"}",
         "source: unknown key"},
        {"{\"metric\":\"ctr\",\"threshold\":1}", "name: required"},
        {"{\"name\":\"x\",", "rule: not valid JSON"},
        {"", "rule: not valid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_status(port, "POST", "/api/alerts", BEARER, bad[i].body, 400, &a);
        expect_error(&a, bad[i].error);
        answer_free(&a);
    }
    none = stored_rule("x");
    ck_assert_msg(none == NULL, "a bad rule was stored");

    /* The right token: 201 and the rule as stored, defaults filled in. */
    expect_status(port, "POST", "/api/alerts", BEARER, rule, 201, &a);
    cJSON *made = answer_json(&a);
    answer_free(&a);
    ck_assert_str_eq(wx_jstr(made, "name"), "api-ctr");
    ck_assert_str_eq(wx_jstr(made, "subject"), "adv-9");
    ck_assert_str_eq(wx_jstr(made, "op"), "below");
    ck_assert_str_eq(wx_jstr(made, "severity"), "warning");
    ck_assert_str_eq(wx_jstr(made, "source"), "api");
    ck_assert(wx_jnum(made, "threshold") == 0.01 && wx_jnum(made, "window_s") == 60);
    stored = stored_rule("api-ctr");
    char *x = cJSON_PrintUnformatted(made), *y = stored ? cJSON_PrintUnformatted(stored) : NULL;
    ck_assert_msg(y && !strcmp(x, y), "alerts:rules holds %s, the answer was %s", wx_or_empty(y),
                  x);
    cJSON_free(x);
    cJSON_free(y);
    cJSON_Delete(stored);
    cJSON_Delete(made);
    all = get_alerts(port);
    r = rule_in(all, "api-ctr");
    ck_assert_msg(r && !strcmp(wx_jstr(r, "source"), "api") && !strcmp(wx_jstr(r, "state"), "ok"),
                  "api-ctr not listed as an ok rule from the api");
    cJSON_Delete(all);

    /* A name taken (by the API or by the config): 409. */
    expect_status(port, "POST", "/api/alerts", BEARER, rule, 409, &a);
    expect_error(&a, "a rule of that name exists");
    answer_free(&a);
    expect_status(port, "POST", "/api/alerts", BEARER,
                  "{\"name\":\"cfg-slow\",\"metric\":\"p99_latency_ms\",\"threshold\":1}", 409, &a);
    answer_free(&a);

    /* A name with a slash and a space, deleted under its percent-encoding. */
    expect_status(port, "POST", "/api/alerts", BEARER,
                  "{\"name\":\"a/b c\",\"metric\":\"spend_rate\",\"op\":\"below\","
                  "\"threshold\":1}",
                  201, &a);
    answer_free(&a);

    /* DELETE: auth first, then 404 for an unknown name, 204. */
    expect_status(port, "DELETE", "/api/alerts/api-ctr", NULL, NULL, 401, &a);
    answer_free(&a);
    expect_status(port, "DELETE", "/api/alerts/api-ctr", "Authorization: Bearer nope", NULL, 401,
                  &a);
    answer_free(&a);
    expect_status(port, "DELETE", "/api/alerts/no-such-rule", BEARER, NULL, 404, &a);
    expect_error(&a, "no rule of that name");
    answer_free(&a);
    expect_status(port, "DELETE", "/api/alerts/api-ctr", BEARER, NULL, 204, &a);
    ck_assert_str_eq(a.body, "");
    answer_free(&a);
    expect_status(port, "DELETE", "/api/alerts/api-ctr", BEARER, NULL, 404, &a);
    answer_free(&a);
    expect_status(port, "DELETE", "/api/alerts/a%2Fb%20c", BEARER, NULL, 204, &a);
    answer_free(&a);
    none = stored_rule("a/b c");
    ck_assert_msg(none == NULL, "a/b c still stored");
    all = get_alerts(port);
    ck_assert_msg(!rule_in(all, "api-ctr") && !rule_in(all, "a/b c"), "a deleted rule listed");
    cJSON_Delete(all);

    /* Methods and bodies the routes do not take. */
    expect_status(port, "PUT", "/api/alerts", BEARER, rule, 405, &a);
    ck_assert_msg(header(&a, "Allow", buf, sizeof buf) && !strcmp(buf, "GET, HEAD, POST"),
                  "Allow: %s", buf);
    answer_free(&a);
    expect_status(port, "GET", "/api/alerts/cfg-slow", NULL, NULL, 405, &a);
    answer_free(&a);
    char *big = malloc(20000);
    memset(big, ' ', 19999);
    big[19999] = '\0';
    big[0] = '{';
    big[19998] = '}';
    expect_status(port, "POST", "/api/alerts", BEARER, big, 413, &a);
    answer_free(&a);
    free(big);

    /* Refused writes are counted; the token shows nowhere. */
    double refused = wx_metric(w, "rtb_admin_refused_total{reason=\"auth\"}");
    ck_assert_msg(refused == 6, "rtb_admin_refused_total{reason=\"auth\"} %.0f, want 6", refused);
    page_lacks(port, "/metrics", TOKEN);
    page_lacks(port, "/api/stats", TOKEN);
    page_lacks(port, "/api/alerts", TOKEN);
    page_lacks(port, "/", TOKEN);

    /* Deleting a config rule holds until an exchange starts with it again;
     * an API rule outlives the restart (it lives in Redis). */
    expect_status(port, "DELETE", "/api/alerts/cfg-nobid", BEARER, NULL, 204, &a);
    answer_free(&a);
    expect_status(port, "POST", "/api/alerts", BEARER,
                  "{\"name\":\"kept\",\"metric\":\"win_rate\",\"op\":\"below\",\"threshold\":0.1}",
                  201, &a);
    answer_free(&a);
    all = get_alerts(port);
    ck_assert_msg(!rule_in(all, "cfg-nobid") && rule_in(all, "kept"), "delete/add not listed");
    cJSON_Delete(all);
    wx_stop_exchange(w);
    start_exchange("alerts-api-2", TOKEN, CONFIG_RULES);
    all = get_alerts(port);
    r = rule_in(all, "cfg-nobid");
    ck_assert_msg(r && !strcmp(wx_jstr(r, "source"), "config"), "cfg-nobid not back after a start");
    r = rule_in(all, "kept");
    ck_assert_msg(r && !strcmp(wx_jstr(r, "source"), "api"),
                  "the API rule did not outlive a start");
    ck_assert_int_eq(cJSON_GetArraySize(wx_jget(all, "rules")), 3);
    cJSON_Delete(all);
    wx_stop_exchange(w);
    log_lacks("exchange.log", TOKEN);
}
END_TEST

/* No token configured: writes are off (403), reading works. */
START_TEST(no_token_no_writes) {
    start_exchange("alerts-notoken", NULL, NULL);
    int port = w->admin_port;
    answer a;
    const char *rule = "{\"name\":\"x\",\"metric\":\"ctr\",\"threshold\":1}";
    expect_status(port, "POST", "/api/alerts", NULL, rule, 403, &a);
    expect_error(&a, "writing alert rules is off");
    answer_free(&a);
    expect_status(port, "POST", "/api/alerts", BEARER, rule, 403, &a);
    answer_free(&a);
    expect_status(port, "DELETE", "/api/alerts/bidder-timeouts", BEARER, NULL, 403, &a);
    answer_free(&a);
    cJSON *all = get_alerts(port); /* the default config rule */
    ck_assert_msg(rule_in(all, "bidder-timeouts") != NULL, "the default rule is not listed");
    cJSON_Delete(all);
    cJSON *none = stored_rule("x");
    ck_assert_msg(none == NULL, "a refused rule was stored");
    wx_stop_exchange(w);
}
END_TEST

/* RTB_ADMIN_TOKEN replaces the file's token; neither is ever logged. */
#define FILE_TOKEN "file-token-0123456789"
#define ENV_TOKEN "env-token-abcdefghijk"
START_TEST(env_token_wins) {
    setenv("RTB_ADMIN_TOKEN", ENV_TOKEN, 1);
    start_exchange("alerts-env", FILE_TOKEN, NULL);
    int port = w->admin_port;
    answer a;
    const char *rule = "{\"name\":\"x\",\"metric\":\"ctr\",\"threshold\":1}";
    expect_status(port, "POST", "/api/alerts", "Authorization: Bearer " FILE_TOKEN, rule, 401, &a);
    answer_free(&a);
    expect_status(port, "POST", "/api/alerts", "Authorization: bearer  " ENV_TOKEN, rule, 201, &a);
    answer_free(&a);
    wx_stop_exchange(w);
    log_lacks("exchange.log", ENV_TOKEN);
    log_lacks("exchange.log", FILE_TOKEN);

    /* A token the row refuses is a config error (exit 2), named, not shown. */
    setenv("RTB_ADMIN_TOKEN", "short tok", 1);
    wx_opts o = {.admin_port = port};
    char *path = wx_write_config(w, "alerts-env-bad", &o);
    const char *argv[] = {fx_getenv("RTB_EXCHANGE"), "-c", path, NULL};
    pid_t pid = fx_spawn(w->env, argv, "exchange-bad.log");
    free(path);
    int status = 0;
    ck_assert_msg(fx_wait_exit(pid, 10000, &status) == 0, "runs with a bad RTB_ADMIN_TOKEN");
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 2, "exit status %d, want 2",
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    char *log = fx_read_file(w->env, "exchange-bad.log", NULL);
    ck_assert_msg(log && strstr(log, "RTB_ADMIN_TOKEN: admin.token: expected") &&
                      !strstr(log, "short tok"),
                  "exchange-bad.log: %s", wx_or_empty(log));
    free(log);
}
END_TEST

/* Writes waiting for Redis when their client leaves, and when the
 * exchange stops: each answered or dropped exactly once (the ASan build
 * finds a request used after it was freed, or leaked). */
START_TEST(writes_in_flight) {
    start_exchange("alerts-inflight", TOKEN, "[]");
    int port = w->admin_port;
    fx_kill(fx_redis_pid(w->env), SIGSTOP); /* Redis takes the commands, answers none */
    const char *rule = "{\"name\":\"late\",\"metric\":\"ctr\",\"threshold\":1}";
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /api/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n" BEARER
                     "\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(rule), rule);
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ck_assert_msg(fds[i] >= 0 && connect(fds[i], (struct sockaddr *)&a, sizeof a) == 0,
                      "connect: %s", strerror(errno));
        ck_assert_int_eq(send(fds[i], req, (size_t)n, MSG_NOSIGNAL), n);
    }
    fx_sleep_ms(300);
    close(fds[0]); /* gone while its write waits */
    fx_sleep_ms(300);
    /* Stop with two writes still waiting: the drain gives up on Redis. */
    fx_kill(w->exchange_pid, SIGTERM);
    wx_expect_clean_exit(w, 15000);
    fx_kill(fx_redis_pid(w->env), SIGCONT);
    close(fds[1]);
    close(fds[2]);
}
END_TEST

/* ---- Rules firing ------------------------------------------------------------------------- */

/* Reads auction:alerts while a request tagged `tag` goes out every 100 ms,
 * until a message with each (name, state) of `want` (n of them) came; the
 * messages are returned in got[] (caller deletes). Fails after ms. */
static void await_alerts(fx_sub *sub, const char *tag, int n, const char *const want[][2],
                         cJSON *got[], int ms) {
    static int seq;
    for (int i = 0; i < n; i++)
        got[i] = NULL;
    int missing = n;
    for (int64_t until = fx_now_ms() + ms; missing > 0;) {
        if (fx_now_ms() > until) {
            for (int i = 0; i < n; i++)
                if (!got[i])
                    wx_fail_with_log(w, "no %s message for %s on auction:alerts within %d ms",
                                     want[i][1], want[i][0], ms);
        }
        char id[48];
        snprintf(id, sizeof id, "al-%s-%d", tag, ++seq);
        wx_publish_tagged(w, id, 1.0, tag);
        for (fx_msg *m; (m = fx_sub_next(sub, 100)) != NULL;) {
            cJSON *j = fx_msg_json(m);
            if (!j) wx_fail_with_log(w, "auction:alerts: not JSON: %.300s", m->payload);
            fx_msg_free(m);
            int kept = 0;
            for (int i = 0; i < n && !kept; i++)
                if (!got[i] && !strcmp(wx_or_empty(wx_jstr(j, "name")), want[i][0]) &&
                    !strcmp(wx_or_empty(wx_jstr(j, "state")), want[i][1])) {
                    got[i] = j;
                    kept = 1;
                    missing--;
                }
            if (!kept) cJSON_Delete(j);
        }
    }
}

/* op above on an exchange-wide rate (no_bid_rate), op below on one
 * advertiser's win_rate: an advertiser that bids under every floor makes
 * every auction a no_bid and wins none of its bids; moved to an endpoint
 * that bids above the floor, both resolve. */
START_TEST(rules_fire_above_and_below) {
    const char *specs[] = {"id=cheap,price=fixed:0.5", "id=rich,price=fixed:3"};
    int port[2];
    fx_spawn_bidder(w->env, specs, 2, port);
    wx_register_advertiser(w, "cheap", port[0], "[\"buy\"]");
    start_exchange("alerts-fire", TOKEN, "[]");
    fx_sub *sub = fx_sub_start(w->env, "auction:alerts");
    answer a;
    expect_status(w->admin_port, "POST", "/api/alerts", BEARER,
                  "{\"name\":\"no-bids\",\"metric\":\"no_bid_rate\",\"threshold\":0.5,"
                  "\"window_s\":2,\"severity\":\"critical\",\"message\":\"nobody wins\"}",
                  201, &a);
    answer_free(&a);
    expect_status(w->admin_port, "POST", "/api/alerts", BEARER,
                  "{\"name\":\"cheap-loses\",\"metric\":\"win_rate\",\"subject\":\"cheap\","
                  "\"op\":\"below\",\"threshold\":0.5,\"window_s\":2,\"severity\":\"info\"}",
                  201, &a);
    answer_free(&a);

    static const char *const firing[][2] = {{"no-bids", "firing"}, {"cheap-loses", "firing"}};
    cJSON *got[2];
    await_alerts(sub, "buy", 2, firing, got, 15000);
    ck_assert_str_eq(wx_jstr(got[0], "metric"), "no_bid_rate");
    ck_assert(cJSON_IsNull(wx_jget(got[0], "subject")));
    ck_assert_str_eq(wx_jstr(got[0], "op"), "above");
    ck_assert_msg(wx_jnum(got[0], "value") > 0.5 && wx_jnum(got[0], "threshold") == 0.5,
                  "no-bids value %.4f", wx_jnum(got[0], "value"));
    ck_assert_msg(wx_jnum(got[0], "above") == 0.5, "an op-above message without above");
    ck_assert_str_eq(wx_jstr(got[0], "severity"), "critical");
    ck_assert_str_eq(wx_jstr(got[0], "message"), "nobody wins");
    ck_assert_msg(fabs(wx_jnum(got[0], "timestamp") - wx_wall_s()) < 10, "timestamp");
    ck_assert_str_eq(wx_jstr(got[1], "metric"), "win_rate");
    ck_assert_str_eq(wx_jstr(got[1], "subject"), "cheap");
    ck_assert_str_eq(wx_jstr(got[1], "op"), "below");
    ck_assert_msg(wx_jnum(got[1], "value") == 0, "cheap's win_rate %.4f", wx_jnum(got[1], "value"));
    ck_assert_msg(wx_jget(got[1], "above") == NULL, "an op-below message with above");
    ck_assert_str_eq(wx_jstr(got[1], "severity"), "info");
    cJSON_Delete(got[0]);
    cJSON_Delete(got[1]);

    cJSON *all = get_alerts(w->admin_port);
    ck_assert_int_eq((int)wx_jnum(all, "firing"), 2);
    const cJSON *r = rule_in(all, "cheap-loses");
    const cJSON *v = cJSON_GetArrayItem(wx_jget(r, "subject_values"), 0);
    ck_assert_msg(v && !strcmp(wx_or_empty(wx_jstr(v, "subject")), "cheap") &&
                      wx_jnum(v, "value") == 0 && fabs(wx_jnum(v, "since") - wx_wall_s()) < 20,
                  "cheap-loses: subject_values[0] is not cheap at 0");
    ck_assert_int_eq(cJSON_GetArraySize(wx_jget(r, "subject_values")), 1);
    v = cJSON_GetArrayItem(wx_jget(rule_in(all, "no-bids"), "subject_values"), 0);
    ck_assert_msg(v && cJSON_IsNull(wx_jget(v, "subject")), "no-bids: subject not null");
    cJSON_Delete(all);

    /* It bids above the floor from now on: both resolve. */
    wx_register_advertiser(w, "cheap", port[1], "[\"buy\"]");
    fx_redis_do(w->env, "PUBLISH advertiser:updates cheap");
    static const char *const resolved[][2] = {{"no-bids", "resolved"}, {"cheap-loses", "resolved"}};
    await_alerts(sub, "buy", 2, resolved, got, 15000);
    ck_assert_msg(wx_jnum(got[0], "value") <= 0.5, "resolved no-bids at %.4f",
                  wx_jnum(got[0], "value"));
    ck_assert_msg(wx_jnum(got[1], "value") >= 0.5, "resolved cheap-loses at %.4f",
                  wx_jnum(got[1], "value"));
    cJSON_Delete(got[0]);
    cJSON_Delete(got[1]);
    all = get_alerts(w->admin_port);
    ck_assert_int_eq((int)wx_jnum(all, "firing"), 0);
    cJSON_Delete(all);

    /* A rule deleted while firing resolves on auction:alerts at once. */
    wx_register_advertiser(w, "cheap", port[0], "[\"buy\"]");
    fx_redis_do(w->env, "PUBLISH advertiser:updates cheap");
    await_alerts(sub, "buy", 1, firing, got, 15000);
    cJSON_Delete(got[0]);
    expect_status(w->admin_port, "DELETE", "/api/alerts/no-bids", BEARER, NULL, 204, &a);
    answer_free(&a);
    static const char *const removed[][2] = {{"no-bids", "resolved"}};
    await_alerts(sub, "buy", 1, removed, got, 3000);
    cJSON_Delete(got[0]);
    fx_sleep_ms(200);
    wx_stop_exchange(w);
}
END_TEST

static void publish_event(const char *type, const char *adv, int i) {
    char topic[64], json[256];
    snprintf(topic, sizeof topic, "rtb/events/%s", type);
    snprintf(json, sizeof json,
             "{\"ad_id\":\"ad-%s-%d\",\"advertiser_id\":\"%s\",\"user_id\":\"u-%s-%d\"}", adv, i,
             adv, adv, i);
    wx_publish_raw(w, topic, json, strlen(json));
}

/* The rule `name` of GET /api/alerts once its state is `state`, waiting up
 * to ms; NULL (and the last answer freed) when it does not come. */
static cJSON *await_state(const char *name, const char *state, int ms) {
    for (int64_t until = fx_now_ms() + ms;; fx_sleep_ms(100)) {
        cJSON *all = get_alerts(w->admin_port);
        const cJSON *r = rule_in(all, name);
        if (r && !strcmp(wx_jstr(r, "state"), state)) return all;
        cJSON_Delete(all);
        if (fx_now_ms() > until) return NULL;
    }
}

/* Per-advertiser metrics from ad events and wins: ctr for every advertiser
 * (subject null) and for one, cpc in currency units; below 5 impressions a
 * ctr holds its state however high it is. */
START_TEST(per_advertiser_ctr_and_cpc) {
    const char *specs[] = {"id=ev1,price=fixed:2", "id=ev2,price=fixed:2"};
    int port[2];
    fx_spawn_bidder(w->env, specs, 2, port);
    wx_register_advertiser(w, "ev1", port[0], "[\"ev1\"]");
    wx_register_advertiser(w, "ev2", port[1], "[\"ev2\"]");
    start_exchange(
        "alerts-adv", TOKEN,
        "[{\"name\":\"ctr-high\",\"metric\":\"ctr\",\"threshold\":0.3,\"window_s\":60},"
        "{\"name\":\"ctr-low-ev2\",\"metric\":\"ctr\",\"subject\":\"ev2\",\"op\":\"below\","
        "\"threshold\":0.2,\"window_s\":60},"
        "{\"name\":\"cpc-ev1\",\"metric\":\"cpc\",\"subject\":\"ev1\",\"threshold\":0.0015,"
        "\"window_s\":60}]");

    /* ev1 wins 10 auctions (alone: each clears at the floor, 1.0 CPM). */
    for (int i = 0; i < 10; i++) {
        char id[32];
        snprintf(id, sizeof id, "win-%d", i);
        wx_publish_tagged(w, id, 1.0, "ev1");
        cJSON *res = wx_wait_result(w, id);
        wx_expect_result(res, "success", 1, 1, 0, 0);
        cJSON_Delete(res);
    }
    /* 4 impressions, 4 clicks: a CTR of 1, but too few impressions. */
    for (int i = 0; i < 4; i++) {
        publish_event("impression", "ev1", i);
        publish_event("click", "ev1", i);
    }
    fx_sleep_ms(2500); /* two evaluations at least */
    cJSON *all = get_alerts(w->admin_port);
    ck_assert_msg(!strcmp(wx_jstr(rule_in(all, "ctr-high"), "state"), "ok"),
                  "ctr-high fired on 4 impressions");
    ck_assert_msg(!strcmp(wx_jstr(rule_in(all, "cpc-ev1"), "state"), "ok"),
                  "cpc-ev1 fired on 4 clicks");
    cJSON_Delete(all);

    /* 10 impressions, 5 clicks: CTR 0.5; 10 impressions and 1 click for ev2. */
    for (int i = 4; i < 10; i++)
        publish_event("impression", "ev1", i);
    publish_event("click", "ev1", 4);
    for (int i = 0; i < 10; i++)
        publish_event("impression", "ev2", i);
    publish_event("click", "ev2", 0);

    all = await_state("ctr-high", "firing", 5000);
    if (!all) wx_fail_with_log(w, "ctr-high did not fire at a CTR of 0.5");
    const cJSON *vals = wx_jget(rule_in(all, "ctr-high"), "subject_values");
    ck_assert_int_eq(cJSON_GetArraySize(vals), 1); /* ev2's 0.1 does not break it */
    const cJSON *v = cJSON_GetArrayItem(vals, 0);
    ck_assert_str_eq(wx_jstr(v, "subject"), "ev1");
    ck_assert_msg(fabs(wx_jnum(v, "value") - 0.5) < 1e-9, "ev1's ctr %.6f", wx_jnum(v, "value"));
    cJSON_Delete(all);

    all = await_state("ctr-low-ev2", "firing", 5000);
    if (!all) wx_fail_with_log(w, "ctr-low-ev2 did not fire at a CTR of 0.1");
    v = cJSON_GetArrayItem(wx_jget(rule_in(all, "ctr-low-ev2"), "subject_values"), 0);
    ck_assert_msg(v && !strcmp(wx_jstr(v, "subject"), "ev2") &&
                      fabs(wx_jnum(v, "value") - 0.1) < 1e-9,
                  "ctr-low-ev2: not ev2 at 0.1");
    cJSON_Delete(all);

    /* cpc: ev1's spend (the sum of its clearing prices / 1000) over 5 clicks. */
    all = await_state("cpc-ev1", "firing", 5000);
    if (!all) wx_fail_with_log(w, "cpc-ev1 did not fire");
    v = cJSON_GetArrayItem(wx_jget(rule_in(all, "cpc-ev1"), "subject_values"), 0);
    ck_assert_msg(v && fabs(wx_jnum(v, "value") - 10 * 1.0 / 1000 / 5) < 1e-9,
                  "ev1's cpc %.6f, want 0.002", wx_jnum(v, "value"));
    cJSON_Delete(all);
    wx_stop_exchange(w);
}
END_TEST

/* ---- Two exchanges, one Redis ---------------------------------------------------------- */

/* 1 when GET /api/alerts on `port` lists `name`. */
static int lists(int port, const char *name) {
    cJSON *all = get_alerts(port);
    int found = rule_in(all, name) != NULL;
    cJSON_Delete(all);
    return found;
}

/* How long until lists(port, name) is `want`, in ms; -1 after ms. */
static int64_t time_until(int port, const char *name, int want, int ms) {
    int64_t start = fx_now_ms();
    while (lists(port, name) != want) {
        if (fx_now_ms() - start > ms) return -1;
        fx_sleep_ms(10);
    }
    return fx_now_ms() - start;
}

START_TEST(second_exchange_sees_changes) {
    /* B: its own client id, admin port and config rule; the same Redis. */
    int b_admin = fx_free_port();
    wx_opts ob = {.admin_port = b_admin,
                  .extra_json = "\"admin\":{\"token\":\"" TOKEN "\"},\"alerts\":[{\"name\":"
                                "\"b-config\",\"metric\":\"p99_latency_ms\",\"threshold\":500}]"};
    free(wx_write_config(w, "alerts-b", &ob));
    char *text = fx_read_file(w->env, "exchange.json", NULL);
    ck_assert_ptr_nonnull(text);
    char *b_conf = fx_write_file(w->env, "exchange-b.json", text);
    free(text);
    int a_admin = fx_free_port();
    while (a_admin == b_admin)
        a_admin = fx_free_port();
    w->admin_port = a_admin;
    start_exchange("alerts-a", TOKEN, NULL);

    const char *argv[] = {fx_getenv("RTB_EXCHANGE"), "-c", b_conf, NULL};
    pid_t b = fx_spawn(w->env, argv, LOG_B);
    free(b_conf);
    int64_t until = fx_now_ms() + WX_READY_WAIT_MS;
    for (;;) {
        char *body = NULL;
        int code = fx_http(b_admin, "GET", "/healthz", NULL, &body, 1000);
        free(body);
        if (code == 200) break;
        if (!fx_pid_alive(b) || fx_now_ms() > until) {
            fx_dump_log(w->env, LOG_B);
            wx_fail_with_log(w, "the second exchange is not healthy");
        }
        fx_sleep_ms(50);
    }

    /* B's config rule reached A (written at B's start, announced). */
    if (time_until(a_admin, "b-config", 1, 5000) < 0)
        wx_fail_with_log(w, "A does not list B's config rule b-config");
    ck_assert_msg(lists(b_admin, "bidder-timeouts"), "B does not list A's config rule");

    /* Written on A: B evaluates it within about a second, and back. */
    answer a;
    expect_status(a_admin, "POST", "/api/alerts", BEARER,
                  "{\"name\":\"shared\",\"metric\":\"cvr\",\"op\":\"below\",\"threshold\":0.02}",
                  201, &a);
    answer_free(&a);
    int64_t took = time_until(b_admin, "shared", 1, 5000);
    fprintf(stderr, "test_alerts: B lists a rule made on A after %lld ms\n", (long long)took);
    if (took < 0 || took > PROPAGATION_MS)
        wx_fail_with_log(w, "B listed the rule after %lld ms, want at most %d", (long long)took,
                         PROPAGATION_MS);
    cJSON *all = get_alerts(b_admin);
    const cJSON *r = rule_in(all, "shared");
    ck_assert_msg(!strcmp(wx_jstr(r, "source"), "api") && !strcmp(wx_jstr(r, "metric"), "cvr"),
                  "B lists it otherwise");
    cJSON_Delete(all);

    expect_status(b_admin, "DELETE", "/api/alerts/shared", BEARER, NULL, 204, &a);
    answer_free(&a);
    took = time_until(a_admin, "shared", 0, 5000);
    fprintf(stderr, "test_alerts: A drops a rule deleted on B after %lld ms\n", (long long)took);
    if (took < 0 || took > PROPAGATION_MS)
        wx_fail_with_log(w, "A dropped the rule after %lld ms, want at most %d", (long long)took,
                         PROPAGATION_MS);

    fx_kill(b, SIGTERM);
    int status = 0;
    ck_assert_msg(fx_wait_exit(b, WX_STOP_WAIT_MS, &status) == 0 && WIFEXITED(status) &&
                      WEXITSTATUS(status) == 0,
                  "B did not exit cleanly");
    char *log = fx_read_file(w->env, LOG_B, NULL);
    ck_assert_msg(log && !strstr(log, "Sanitizer") && !strstr(log, "runtime error:") &&
                      !strstr(log, TOKEN),
                  "%s: a sanitizer report or the token", LOG_B);
    free(log);
    wx_stop_exchange(w);
    log_lacks("exchange.log", TOKEN);
}
END_TEST

static Suite *alerts_suite(void) {
    Suite *s = suite_create("alerts");
    wx_add_case(s, "api", api_endpoints_and_auth, 120, setup, teardown);
    wx_add_case(s, "no_token", no_token_no_writes, 60, setup, teardown);
    wx_add_case(s, "env_token", env_token_wins, 60, setup, teardown);
    wx_add_case(s, "in_flight", writes_in_flight, 60, setup, teardown);
    wx_add_case(s, "fire", rules_fire_above_and_below, 120, setup, teardown);
    wx_add_case(s, "per_advertiser", per_advertiser_ctr_and_cpc, 90, setup, teardown);
    wx_add_case(s, "two_exchanges", second_exchange_sees_changes, 90, setup, teardown);
    return s;
}

int main(void) {
    return fx_run_suite(alerts_suite());
}

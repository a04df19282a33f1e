/* test_depth.c -- requests a real bidder can bid on (SPEC 17), on real
 * servers: several impressions in one request, each its own auction; site
 * and device passed on; private deals first; bids in another currency
 * converted with Redis currency:rates; notices and bills per winning bid;
 * and the hostile shapes the request decoder refuses.
 *
 * The one idea: rtb-bidder bids on every imp of a request (its `deal=`,
 * `cur=` and `imps=` keys shape the bids), so each test sets up bidders
 * whose prices decide a known outcome per imp, and reads the result's
 * `imps` array, the bidder's own record (GET /last, /stats) and Redis. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/world.h"

#define POLL_MS 3000

static wx_world *w;

static void setup(void) {
    w = wx_start();
}

static void teardown(void) {
    wx_stop(w);
    w = NULL;
}

/* Publish `json` (a whole request) on the request topic. */
static void publish(const char *json) {
    wx_publish_raw(w, WX_REQUEST_TOPIC, json, strlen(json));
}

/* The imp object of result r whose imp_id is `id` (fails when absent). */
static const cJSON *imp_of(const cJSON *r, const char *id) {
    const cJSON *imp;
    cJSON_ArrayForEach(imp, wx_jget(r, "imps")) {
        if (strcmp(wx_or_empty(wx_jstr(imp, "imp_id")), id) == 0) return imp;
    }
    char *text = cJSON_PrintUnformatted(r);
    wx_fail_with_log(w, "no imp %s in the result %s", id, text);
}

/* Imp `id` of r was won by `adv` at clearing price `clearing` (currency
 * units), with deal `deal` (NULL: the open auction). */
static void expect_imp(const cJSON *r, const char *id, const char *adv, double clearing,
                       const char *deal) {
    const cJSON *imp = imp_of(r, id), *win = wx_jget(imp, "winner");
    ck_assert_msg(cJSON_IsObject(win), "imp %s has no winner", id);
    ck_assert_str_eq(wx_or_empty(wx_jstr(imp, "status")), "success");
    ck_assert_str_eq(wx_or_empty(wx_jstr(win, "advertiser_id")), adv);
    ck_assert_msg(wx_money_eq(wx_jnum(win, "clearing_price"), clearing),
                  "imp %s: clearing_price %.6f, want %.6f", id, wx_jnum(win, "clearing_price"),
                  clearing);
    const cJSON *d = wx_jget(win, "deal_id");
    if (deal)
        ck_assert_str_eq(cJSON_IsString(d) ? d->valuestring : "(null)", deal);
    else
        ck_assert_msg(cJSON_IsNull(d), "imp %s: won by a deal, want the open auction", id);
}

static long bidder_stat(int port, const char *key) {
    cJSON *st = wx_bidder_get(port, "/stats");
    long v = (long)wx_jnum(st, key);
    cJSON_Delete(st);
    return v;
}

/* How many of the bidder's recorded notices equal `notice` (polled until
 * `want`, or POLL_MS). */
static int notices_seen(int port, const char *notice, int want) {
    int64_t until = fx_now_ms() + POLL_MS;
    for (;;) {
        cJSON *st = wx_bidder_get(port, "/stats");
        int n = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, wx_jget(st, "notices")) {
            n += cJSON_IsString(e) && strcmp(e->valuestring, notice) == 0;
        }
        cJSON_Delete(st);
        if (n == want || fx_now_ms() > until) return n;
        fx_sleep_ms(20);
    }
}

/* ---- several imps, site, device -------------------------------------------------- */

#define PAGE                                                                                       \
    "{\"request_id\":\"%s\",\"user_id\":\"u-1\","                                                  \
    "\"site\":{\"id\":\"s-1\",\"domain\":\"news.example\",\"page\":\"https://news.example/a\","    \
    "\"publisher\":{\"id\":\"p-1\",\"name\":\"News\"}},"                                           \
    "\"device\":{\"ua\":\"Mozilla/5.0\",\"ip\":\"192.0.2.7\",\"devicetype\":2,\"os\":\"Linux\","   \
    "\"language\":\"en\",\"geo\":{\"country\":\"FRA\",\"region\":\"IDF\"}},"                       \
    "\"user_context\":{\"interests\":[\"depth\"]},\"imps\":["                                      \
    "{\"id\":\"top\",\"ad_slot_id\":\"slot-top\",\"floor_price\":1,"                               \
    "\"banner\":{\"format\":[{\"w\":728,\"h\":90},{\"w\":970,\"h\":250}]}},"                       \
    "{\"id\":\"side\",\"ad_slot_id\":\"slot-side\",\"floor_price\":0.5,"                           \
    "\"banner\":{\"w\":300,\"h\":250}}]}"

START_TEST(each_imp_its_own_auction) {
    const char *specs[] = {"id=dp-a,price=fixed:3", "id=dp-b,price=fixed:2,imps=first"};
    int port[2];
    fx_spawn_bidder(w->env, specs, 2, port);
    wx_register_advertiser(w, "dp-a", port[0], "[\"depth\"]");
    wx_register_advertiser(w, "dp-b", port[1], "[\"depth\"]");
    wx_opts o = {.admin_port = fx_free_port()};
    wx_start_exchange(w, "depth-imps", &o);

    char req[2048];
    snprintf(req, sizeof req, PAGE, "pg-1");
    publish(req);
    cJSON *r = wx_wait_result(w, "pg-1");
    ck_assert_str_eq(wx_or_empty(wx_jstr(r, "status")), "success");
    ck_assert_int_eq(cJSON_GetArraySize(wx_jget(r, "imps")), 2);
    /* top: dp-a 3 against dp-b 2 -> 2.01; side: dp-a alone -> its floor */
    expect_imp(r, "top", "dp-a", 2.01, NULL);
    expect_imp(r, "side", "dp-a", 0.5, NULL);
    cJSON_Delete(r);

    /* What the bidder was sent: one imp per impression, the site, the
     * device, the currency (SPEC 5, 17). */
    cJSON *last = wx_bidder_get(port[0], "/last");
    const cJSON *body = wx_jget(last, "body");
    const cJSON *imps = wx_jget(body, "imp");
    ck_assert_int_eq(cJSON_GetArraySize(imps), 2);
    const cJSON *top = cJSON_GetArrayItem(imps, 0);
    ck_assert_str_eq(wx_or_empty(wx_jstr(top, "id")), "top");
    ck_assert_str_eq(wx_or_empty(wx_jstr(top, "tagid")), "slot-top");
    ck_assert_int_eq(cJSON_GetArraySize(wx_jget(wx_jget(top, "banner"), "format")), 2);
    ck_assert_str_eq(wx_or_empty(wx_jstr(top, "bidfloorcur")), "USD");
    ck_assert_str_eq(wx_or_empty(wx_jstr(wx_jget(body, "site"), "domain")), "news.example");
    ck_assert_str_eq(wx_or_empty(wx_jstr(wx_jget(body, "device"), "ua")), "Mozilla/5.0");
    ck_assert_str_eq(wx_or_empty(wx_jstr(wx_jget(wx_jget(body, "device"), "geo"), "country")),
                     "FRA");
    cJSON_Delete(last);

    /* A single-slot request keeps the SPEC 4 shape: no imps array. */
    wx_publish_tagged(w, "pg-2", 1.0, "depth");
    r = wx_wait_result(w, "pg-2");
    ck_assert_msg(wx_jget(r, "imps") == NULL, "a SPEC 2 request got an imps array");
    wx_expect_winner(r, "dp-a", 3.0, 2.01);
    cJSON_Delete(r);
    wx_await_metric(w, "rtb_imps_total{status=\"success\"}", 3, POLL_MS);
    wx_stop_exchange(w);
}
END_TEST

/* A request with imps shed at once (SPEC 13) still gets its imps array, each
 * imp `overloaded` with no winner (SPEC 17: a request with `imps` always
 * gets it). max_inflight 1: the slow auction holds the one slot. */
START_TEST(shed_request_keeps_its_imps) {
    wx_spawn_advertiser(w, "id=sh-slow,latency=400,price=fixed:2", "sh-slow", "[\"depth\"]");
    wx_opts o = {.tmax_ms = 100, .max_inflight = 1};
    wx_start_exchange(w, "depth-shed", &o);

    wx_publish_tagged(w, "sh-1", 1.0, "depth");
    char req[2048];
    snprintf(req, sizeof req, PAGE, "sh-2");
    publish(req);
    cJSON *r = wx_wait_result(w, "sh-2");
    ck_assert_str_eq(wx_or_empty(wx_jstr(r, "status")), "overloaded");
    const cJSON *imps = wx_jget(r, "imps");
    ck_assert_int_eq(cJSON_GetArraySize(imps), 2);
    const char *ids[] = {"top", "side"};
    for (int i = 0; i < 2; i++) {
        const cJSON *imp = cJSON_GetArrayItem(imps, i);
        ck_assert_str_eq(wx_or_empty(wx_jstr(imp, "imp_id")), ids[i]);
        ck_assert_str_eq(wx_or_empty(wx_jstr(imp, "status")), "overloaded");
        ck_assert_msg(cJSON_IsNull(wx_jget(imp, "winner")), "imp %s of a shed request has a winner",
                      ids[i]);
    }
    cJSON_Delete(r);
    r = wx_wait_result(w, "sh-1");
    ck_assert_str_eq(wx_or_empty(wx_jstr(r, "status")), "timeout");
    cJSON_Delete(r);
    wx_stop_exchange(w);
}
END_TEST

/* ---- deals ------------------------------------------------------------------------ */

#define DEAL_REQUEST                                                                               \
    "{\"request_id\":\"%s\",\"user_id\":\"u-1\",\"user_context\":{\"interests\":[\"deal\"]},"      \
    "\"imps\":[{\"id\":\"1\",\"ad_slot_id\":\"s\",\"floor_price\":1,"                              \
    "\"banner\":{\"w\":300,\"h\":250},\"pmp\":{\"private_auction\":%d,"                            \
    "\"deals\":[{\"id\":\"d-1\",\"bidfloor\":3,\"wseat\":[\"dl-a\"]}]}}]}"

START_TEST(private_deals_come_first) {
    /* dl-a holds d-1 and bids 3.5 on it; dl-b bids 5 in the open auction. */
    const char *specs[] = {"id=dl-a,price=fixed:2,deal=d-1,deal_price=3.5",
                           "id=dl-b,price=fixed:5"};
    int port[2];
    fx_spawn_bidder(w->env, specs, 2, port);
    wx_register_advertiser(w, "dl-a", port[0], "[\"deal\"]");
    wx_register_advertiser(w, "dl-b", port[1], "[\"deal\"]");
    wx_opts o = {.admin_port = fx_free_port()};
    wx_start_exchange(w, "depth-deals", &o);

    char req[1024];
    snprintf(req, sizeof req, DEAL_REQUEST, "dl-1", 0);
    publish(req);
    cJSON *r = wx_wait_result(w, "dl-1");
    /* the deal bid wins over a higher open bid, at its deal's floor */
    expect_imp(r, "1", "dl-a", 3.0, "d-1");
    cJSON_Delete(r);
    wx_await_metric(w, "rtb_deals_won_total", 1, POLL_MS);

    /* A private auction with only open bids has no winner: dl-a leaves. */
    fx_redis_do(w->env, "DEL advertiser:targeting:dl-a");
    fx_redis_do(w->env, "PUBLISH advertiser:updates x");
    fx_sleep_ms(300);
    snprintf(req, sizeof req, DEAL_REQUEST, "dl-2", 1);
    publish(req);
    r = wx_wait_result(w, "dl-2");
    ck_assert_str_eq(wx_or_empty(wx_jstr(r, "status")), "no_bid");
    const cJSON *imp = imp_of(r, "1");
    ck_assert_str_eq(wx_or_empty(wx_jstr(imp, "status")), "no_bid");
    ck_assert_msg(cJSON_IsNull(wx_jget(imp, "winner")), "a private auction won by an open bid");
    cJSON_Delete(r);
    wx_stop_exchange(w);
}
END_TEST

/* ---- currency ---------------------------------------------------------------------- */

#define EUR_REQUEST                                                                                \
    "{\"request_id\":\"%s\",\"user_id\":\"u-1\",\"cur\":\"EUR\","                                  \
    "\"user_context\":{\"interests\":[\"cur\"]},\"imps\":[{\"id\":\"1\",\"ad_slot_id\":\"s\","     \
    "\"floor_price\":1,\"banner\":{\"w\":300,\"h\":250}}]}"

START_TEST(bids_converted_with_currency_rates) {
    /* 1 USD = 0.9 EUR: cu-a's 2 USD are 1.80 EUR, under cu-b's 1.90 EUR;
     * cu-c bids in GBP, for which there is no rate. */
    fx_redis_do(w->env, "SET currency:rates {\"USD\":{\"EUR\":0.9}}");
    const char *specs[] = {"id=cu-a,price=fixed:2,notices=off", "id=cu-b,price=fixed:1.9,cur=EUR",
                           "id=cu-c,price=fixed:9,cur=GBP,notices=off"};
    int port[3];
    fx_spawn_bidder(w->env, specs, 3, port);
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof id, "cu-%c", 'a' + i);
        wx_register_advertiser(w, id, port[i], "[\"cur\"]");
    }
    wx_opts o = {.admin_port = fx_free_port()};
    wx_start_exchange(w, "depth-cur", &o);
    wx_await_metric(w, "rtb_currency_rates", 1, POLL_MS);

    char req[1024];
    snprintf(req, sizeof req, EUR_REQUEST, "cu-1");
    publish(req);
    cJSON *r = wx_wait_result(w, "cu-1");
    /* cu-b wins; cu-a's converted 1.80 sets the price: 1.81 EUR */
    expect_imp(r, "1", "cu-b", 1.81, NULL);
    cJSON_Delete(r);
    wx_await_metric(w, "rtb_bids_refused_total{reason=\"currency\"}", 1, POLL_MS);
    /* the winner is told the price in the currency the publisher is paid in */
    ck_assert_int_eq(notices_seen(port[1], "/win?id=cu-1&price=1.81", 1), 1);
    cJSON *last = wx_bidder_get(port[1], "/last");
    const cJSON *cur = wx_jget(wx_jget(last, "body"), "cur");
    ck_assert_str_eq(cJSON_IsArray(cur) ? wx_or_empty(cJSON_GetArrayItem(cur, 0)->valuestring) : "",
                     "EUR");
    cJSON_Delete(last);
    wx_stop_exchange(w);
}
END_TEST

/* ---- notices and bills per winning bid ---------------------------------------------- */

START_TEST(notices_and_bills_per_winning_bid) {
    const char *specs[] = {"id=nb-a,price=fixed:3,burl=on", "id=nb-b,price=fixed:2"};
    int port[2];
    fx_spawn_bidder(w->env, specs, 2, port);
    wx_register_advertiser(w, "nb-a", port[0], "[\"depth\"]");
    wx_register_advertiser(w, "nb-b", port[1], "[\"depth\"]");
    wx_opts o = {.admin_port = fx_free_port()};
    wx_start_exchange(w, "depth-notices", &o);
    char req[2048];
    snprintf(req, sizeof req, PAGE, "nb-1");
    publish(req);
    cJSON *r = wx_wait_result(w, "nb-1");
    expect_imp(r, "top", "nb-a", 2.01, NULL);
    expect_imp(r, "side", "nb-a", 2.01, NULL);
    cJSON_Delete(r);
    /* a win notice per won imp, a loss notice per losing bid */
    ck_assert_int_eq(notices_seen(port[0], "/win?id=nb-1&price=2.01", 2), 2);
    ck_assert_int_eq(notices_seen(port[1], "/loss?id=nb-1&reason=102&price=", 2), 2);

    /* one bill per winning bid, on the impression of its ad */
    const char *ads[] = {"ad_nb-a_nb-1_top", "ad_nb-a_nb-1_side"};
    for (int i = 0; i < 2; i++) {
        char ev[512];
        snprintf(ev, sizeof ev,
                 "{\"request_id\":\"nb-1\",\"ad_id\":\"%s\",\"advertiser_id\":\"nb-a\","
                 "\"user_id\":\"u-1\"}",
                 ads[i]);
        wx_publish_raw(w, "rtb/events/impression", ev, strlen(ev));
        wx_publish_raw(w, "rtb/events/impression", ev, strlen(ev)); /* twice: one bill */
        int64_t until = fx_now_ms() + POLL_MS;
        while (bidder_stat(port[0], "bills") < i + 1 && fx_now_ms() < until)
            fx_sleep_ms(20);
        ck_assert_int_eq(bidder_stat(port[0], "bills"), i + 1);
    }
    fx_sleep_ms(1200);
    ck_assert_int_eq(bidder_stat(port[0], "bills"), 2);
    wx_stop_exchange(w);
}
END_TEST

/* ---- hostile shapes ------------------------------------------------------------------ */

/* Each request breaks one SPEC 17 bound: its result is `invalid`, naming
 * the key, and the exchange goes on. */
START_TEST(hostile_shapes_are_invalid) {
    int port = wx_spawn_advertiser(w, "id=hs-a,price=fixed:2", "hs-a", "[\"hs\"]");
    wx_opts o = {0};
    wx_start_exchange(w, "depth-hostile", &o);

    char imps[4096] = "", deals[4096] = "", domain[301];
    size_t n = 0;
    for (int i = 0; i < 17; i++)
        n += (size_t)snprintf(imps + n, sizeof imps - n,
                              "%s{\"id\":\"i%d\",\"ad_slot_id\":\"s\",\"floor_price\":1,"
                              "\"banner\":{\"w\":1,\"h\":1}}",
                              i ? "," : "", i);
    n = 0;
    for (int i = 0; i < 17; i++)
        n += (size_t)snprintf(deals + n, sizeof deals - n, "%s{\"id\":\"d%d\"}", i ? "," : "", i);
    memset(domain, 'x', 300);
    domain[300] = '\0';
    char *reqs[4];
    const char *ids[4] = {"hs-1", "hs-2", "hs-3", "hs-4"};
    const char *want[4] = {"imps", "imps[0].pmp.deals", "site.domain", "site"};
    size_t cap = 12000;
    for (int i = 0; i < 4; i++)
        reqs[i] = malloc(cap);
    snprintf(reqs[0], cap, "{\"request_id\":\"hs-1\",\"user_id\":\"u\",\"imps\":[%s]}", imps);
    snprintf(reqs[1], cap,
             "{\"request_id\":\"hs-2\",\"user_id\":\"u\",\"imps\":[{\"id\":\"1\",\"ad_slot_id\":"
             "\"s\",\"floor_price\":1,\"banner\":{\"w\":1,\"h\":1},\"pmp\":{\"deals\":[%s]}}]}",
             deals);
    snprintf(reqs[2], cap,
             "{\"request_id\":\"hs-3\",\"user_id\":\"u\",\"ad_slot_id\":\"s\",\"floor_price\":1,"
             "\"site\":{\"domain\":\"%s\"}}",
             domain);
    snprintf(reqs[3], cap,
             "{\"request_id\":\"hs-4\",\"user_id\":\"u\",\"ad_slot_id\":\"s\",\"floor_price\":1,"
             "\"site\":{\"id\":\"s\"},\"app\":{\"id\":\"a\"}}");
    for (int i = 0; i < 4; i++) {
        publish(reqs[i]);
        cJSON *r = wx_wait_result(w, ids[i]);
        ck_assert_str_eq(wx_or_empty(wx_jstr(r, "status")), "invalid");
        const char *err = wx_or_empty(wx_jstr(r, "error"));
        ck_assert_msg(strncmp(err, want[i], strlen(want[i])) == 0, "%s: error \"%s\", want %s...",
                      ids[i], err, want[i]);
        cJSON_Delete(r);
        free(reqs[i]);
    }
    ck_assert_int_eq(wx_bidder_requests(port), 0);
    wx_publish_tagged(w, "hs-ok", 1.0, "hs");
    cJSON *r = wx_wait_result(w, "hs-ok");
    wx_expect_result(r, "success", 1, 1, 0, 0);
    cJSON_Delete(r);
    wx_stop_exchange(w);
}
END_TEST

static Suite *depth_suite(void) {
    Suite *s = suite_create("depth");
    wx_add_case(s, "imps", each_imp_its_own_auction, 60, setup, teardown);
    wx_add_case(s, "shed", shed_request_keeps_its_imps, 60, setup, teardown);
    wx_add_case(s, "deals", private_deals_come_first, 60, setup, teardown);
    wx_add_case(s, "currency", bids_converted_with_currency_rates, 60, setup, teardown);
    wx_add_case(s, "notices", notices_and_bills_per_winning_bid, 60, setup, teardown);
    wx_add_case(s, "hostile", hostile_shapes_are_invalid, 60, setup, teardown);
    return s;
}

int main(void) {
    return fx_run_suite(depth_suite());
}

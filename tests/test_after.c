/* test_after.c -- what happens after the auction, on real servers:
 * win and loss notices (SPEC 9), wins and spend per advertiser and ad, ad
 * events (SPEC 10), first-price auctions (SPEC 12), and money (SPEC 14):
 * exact spend, the result log, billing notices and their retries across
 * restarts, notices kept by a drain, what losers are told.
 *
 * The one idea: everything here is fire and forget on the exchange's side,
 * so the tests poll what the outside world sees — the bidder's record of
 * the notices it received (GET /stats), and the counters in Redis — until
 * the expected value appears or a generous deadline passes. */
#include <signal.h>
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

/* HGET key field as a number, polling until it equals `want` (or POLL_MS
 * passes); returns the last value read (-1 when the field is absent). */
static long long poll_hget(const char *key, const char *field, long long want) {
    int64_t until = fx_now_ms() + POLL_MS;
    long long v = -1;
    for (;;) {
        redisReply *r = fx_redis_cmd(w->env, "HGET %s %s", key, field);
        v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
        freeReplyObject(r);
        if (v == want || fx_now_ms() > until) return v;
        fx_sleep_ms(20);
    }
}

/* An integer reply of a Redis command with one string argument (-1 when not an integer). */
static long long redis_int(const char *fmt, const char *arg) {
    redisReply *r = fx_redis_cmd(w->env, fmt, arg);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

/* Does the bidder's /stats "notices" list hold `notice` (within POLL_MS)? */
static int bidder_got_notice(int port, const char *notice) {
    int64_t until = fx_now_ms() + POLL_MS;
    for (;;) {
        cJSON *st = wx_bidder_get(port, "/stats");
        const cJSON *n, *list = wx_jget(st, "notices");
        int found = 0;
        cJSON_ArrayForEach(n, list) {
            if (cJSON_IsString(n) && strcmp(n->valuestring, notice) == 0) found = 1;
        }
        cJSON_Delete(st);
        if (found) return 1;
        if (fx_now_ms() > until) return 0;
        fx_sleep_ms(20);
    }
}

static long bidder_stat(int port, const char *key) {
    cJSON *st = wx_bidder_get(port, "/stats");
    long v = (long)wx_jnum(st, key);
    cJSON_Delete(st);
    return v;
}

/* ---- notices, wins and spend ------------------------------------------------ */

START_TEST(win_and_loss_notices) {
    const char *specs[] = {"id=adv-a,price=fixed:2.52", "id=adv-b,price=fixed:2.10",
                           "id=adv-c,price=fixed:0.5"};
    int port[3];
    fx_spawn_bidder(w->env, specs, 3, port);
    wx_register_advertiser(w, "adv-a", port[0], "[\"n\"]");
    wx_register_advertiser(w, "adv-b", port[1], "[\"n\"]");
    wx_register_advertiser(w, "adv-c", port[2], "[\"n\"]");
    wx_opts o = {0};
    wx_start_exchange(w, "notices", &o);

    wx_publish_tagged(w, "nt-1", 1.0, "n");
    cJSON *r = wx_wait_result(w, "nt-1");
    wx_expect_result(r, "success", 3, 3, 0, 0);
    wx_expect_winner(r, "adv-a", 2.52, 2.11);
    cJSON_Delete(r);

    /* rtb-bidder's nurl/lurl carry ${AUCTION_ID}, ${AUCTION_PRICE} and
     * ${AUCTION_LOSS}: the exchange substituted them. */
    ck_assert_msg(bidder_got_notice(port[0], "/win?id=nt-1&price=2.11"),
                  "winner adv-a got no win notice with the clearing price");
    ck_assert_msg(bidder_got_notice(port[1], "/loss?id=nt-1&reason=102&price="),
                  "adv-b (outbid) got no loss notice with reason 102");
    ck_assert_msg(bidder_got_notice(port[2], "/loss?id=nt-1&reason=100&price="),
                  "adv-c (under the floor) got no loss notice with reason 100");
    ck_assert_int_eq(bidder_stat(port[0], "wins"), 1);
    ck_assert_int_eq(bidder_stat(port[0], "losses"), 0);
    ck_assert_int_eq(bidder_stat(port[1], "wins"), 0);

    /* wins and spend: 2.11 CPM is 2110 micros for the one impression */
    ck_assert_int_eq(poll_hget("stats:advertiser:adv-a", "wins", 1), 1);
    ck_assert_int_eq(poll_hget("stats:advertiser:adv-a", "spend_micros", 2110), 2110);
    ck_assert_int_eq(poll_hget("stats:advertiser:adv-a", "spend_cpm_micros", 2110000), 2110000);
    ck_assert_int_eq(poll_hget("stats:ad:ad_adv-a_nt-1", "wins", 1), 1);
    ck_assert_int_eq(poll_hget("stats:ad:ad_adv-a_nt-1", "spend_micros", 2110), 2110);
    ck_assert_int_eq(poll_hget("stats:advertiser:adv-b", "wins", 0), -1); /* never won */

    /* A no_bid auction sends no notice. */
    wx_publish_tagged(w, "nt-2", 5.0, "n");
    r = wx_wait_result(w, "nt-2");
    wx_expect_result(r, "no_bid", 3, 3, 0, 0);
    cJSON_Delete(r);
    fx_sleep_ms(300);
    ck_assert_int_eq(bidder_stat(port[1], "losses"), 1);
    ck_assert_int_eq(bidder_stat(port[0], "wins"), 1);
    wx_stop_exchange(w);
}
END_TEST

/* ---- first price (SPEC 12) -------------------------------------------------- */

START_TEST(first_price_auction) {
    const char *specs[] = {"id=fp-a,price=fixed:2.52", "id=fp-b,price=fixed:2.10"};
    int port[2];
    fx_spawn_bidder(w->env, specs, 2, port);
    wx_register_advertiser(w, "fp-a", port[0], "[\"fp\"]");
    wx_register_advertiser(w, "fp-b", port[1], "[\"fp\"]");
    wx_opts o = {.extra_json = "\"auction\":{\"type\":\"first_price\"}"};
    wx_start_exchange(w, "first-price", &o);

    wx_publish_tagged(w, "fp-1", 1.0, "fp");
    cJSON *r = wx_wait_result(w, "fp-1");
    wx_expect_result(r, "success", 2, 2, 0, 0);
    wx_expect_winner(r, "fp-a", 2.52, 2.52); /* clearing = the winning bid */
    cJSON_Delete(r);

    cJSON *last = wx_bidder_get(port[0], "/last");
    ck_assert_int_eq((int)wx_jnum(wx_jget(last, "body"), "at"), 1);
    cJSON_Delete(last);
    ck_assert_msg(bidder_got_notice(port[0], "/win?id=fp-1&price=2.52"),
                  "first-price win notice must carry the winning bid");
    wx_stop_exchange(w);
}
END_TEST

/* ---- ad events (SPEC 10) ------------------------------------------------------ */

static void publish_event(const char *type, const char *json) {
    char topic[64];
    snprintf(topic, sizeof topic, "rtb/events/%s", type);
    wx_publish_raw(w, topic, json, strlen(json));
}

START_TEST(events_counted_deduplicated_attributed) {
    wx_spawn_advertiser(w, "id=ev-a,price=fixed:1", "ev-a", "[\"ev\"]");
    wx_opts o = {0};
    wx_start_exchange(w, "events", &o);

    publish_event("impression",
                  "{\"event_id\":\"e-1\",\"request_id\":\"r-1\",\"ad_id\":\"ad-1\","
                  "\"advertiser_id\":\"ev-a\",\"user_id\":\"u-1\",\"timestamp\":1.5}");
    ck_assert_int_eq(poll_hget("stats:advertiser:ev-a", "impressions", 1), 1);
    ck_assert_int_eq(poll_hget("stats:ad:ad-1", "impressions", 1), 1);

    /* the same user clicking the same ad twice within the hour: once */
    const char *click = "{\"ad_id\":\"ad-1\",\"advertiser_id\":\"ev-a\",\"user_id\":\"u-1\"}";
    publish_event("click", click);
    publish_event("click", click);
    ck_assert_int_eq(poll_hget("stats:advertiser:ev-a", "clicks", 1), 1);
    ck_assert_int_eq(poll_hget("stats:advertiser:ev-a", "duplicate_clicks", 1), 1);
    ck_assert_int_eq(poll_hget("stats:ad:ad-1", "clicks", 1), 1);
    ck_assert_int_eq(poll_hget("stats:ad:ad-1", "duplicate_clicks", 1), 1);
    redisReply *ttl = fx_redis_cmd(w->env, "TTL click:u-1:ad-1");
    ck_assert_msg(ttl->type == REDIS_REPLY_INTEGER && ttl->integer > 3500 && ttl->integer <= 3600,
                  "click dedup key TTL %lld, want about 3600", (long long)ttl->integer);
    freeReplyObject(ttl);

    /* a conversion after the click goes to the clicked ad (last click) */
    publish_event("conversion", "{\"advertiser_id\":\"ev-a\",\"user_id\":\"u-1\"}");
    ck_assert_int_eq(poll_hget("stats:advertiser:ev-a", "conversions", 1), 1);
    ck_assert_int_eq(poll_hget("stats:ad:ad-1", "conversions", 1), 1);
    /* one without a click is unattributed */
    publish_event("conversion", "{\"advertiser_id\":\"ev-a\",\"user_id\":\"u-2\"}");
    ck_assert_int_eq(poll_hget("stats:advertiser:ev-a", "conversions", 2), 2);
    ck_assert_int_eq(poll_hget("stats:advertiser:ev-a", "conversions_unattributed", 1), 1);
    ck_assert_int_eq(poll_hget("stats:ad:ad-1", "conversions", 1), 1);

    /* a conversion right behind its click (no wait) still finds the click */
    publish_event("click", "{\"ad_id\":\"ad-3\",\"advertiser_id\":\"ev-a\",\"user_id\":\"u-3\"}");
    publish_event("conversion", "{\"advertiser_id\":\"ev-a\",\"user_id\":\"u-3\"}");
    ck_assert_int_eq(poll_hget("stats:ad:ad-3", "conversions", 1), 1);
    ck_assert_int_eq(poll_hget("stats:advertiser:ev-a", "conversions", 3), 3);
    ck_assert_int_eq(poll_hget("stats:advertiser:ev-a", "conversions_unattributed", 1), 1);

    /* invalid events change nothing and do not stop the exchange */
    publish_event("view", click);
    publish_event("click", "{\"advertiser_id\":\"ev-a\",\"user_id\":\"u-1\"}");
    publish_event("impression", "not json");
    /* an advertiser the exchange does not know: invalid, no key made */
    publish_event("impression",
                  "{\"ad_id\":\"ad-9\",\"advertiser_id\":\"nobody\",\"user_id\":\"u-1\"}");
    fx_sleep_ms(200);
    ck_assert_int_eq(redis_int("EXISTS %s", "stats:advertiser:nobody"), 0);
    ck_assert_int_eq(redis_int("EXISTS %s", "stats:ad:ad-9"), 0);
    ck_assert_int_eq(poll_hget("stats:advertiser:ev-a", "impressions", 1), 1);
    ck_assert_int_eq(poll_hget("stats:advertiser:ev-a", "clicks", 2), 2);

    /* ids may hold ':': user "a:b" clicking ad "c" is not user "a" clicking
     * ad "b:c" (SPEC 15: keys do not collide) */
    publish_event("click", "{\"ad_id\":\"c\",\"advertiser_id\":\"ev-a\",\"user_id\":\"a:b\"}");
    publish_event("click", "{\"ad_id\":\"b:c\",\"advertiser_id\":\"ev-a\",\"user_id\":\"a\"}");
    ck_assert_int_eq(poll_hget("stats:ad:c", "clicks", 1), 1);
    ck_assert_int_eq(poll_hget("stats:ad:b:c", "clicks", 1), 1);
    ck_assert_int_eq(poll_hget("stats:ad:b:c", "duplicate_clicks", 0), -1);
    ck_assert_int_eq(redis_int("EXISTS %s", "click:a%3Ab:c"), 1);
    ck_assert_int_eq(redis_int("EXISTS %s", "click:a:b%3Ac"), 1);

    /* auctions still run */
    wx_publish_tagged(w, "ev-r", 0.5, "ev");
    cJSON *r = wx_wait_result(w, "ev-r");
    wx_expect_result(r, "success", 1, 1, 0, 0);
    cJSON_Delete(r);
    wx_stop_exchange(w);
}
END_TEST

/* ---- money (SPEC 14) ------------------------------------------------------------ */

/* Polls the bidder's /stats `key` until it equals want (or POLL_MS passes). */
static long poll_bidder_stat(int port, const char *key, long want) {
    int64_t until = fx_now_ms() + POLL_MS;
    long v = bidder_stat(port, key);
    while (v != want && fx_now_ms() <= until) {
        fx_sleep_ms(20);
        v = bidder_stat(port, key);
    }
    return v;
}

/* How many of the bidder's recorded notices equal `notice`. */
static int bidder_notice_count(int port, const char *notice) {
    cJSON *st = wx_bidder_get(port, "/stats");
    const cJSON *n;
    int count = 0;
    cJSON_ArrayForEach(n, wx_jget(st, "notices")) {
        count += cJSON_IsString(n) && strcmp(n->valuestring, notice) == 0;
    }
    cJSON_Delete(st);
    return count;
}

/* The impression of rtb-bidder's ad in auction `id` won by `adv` (SPEC 10). */
static void publish_impression(const char *id, const char *adv, const char *ad) {
    char json[512];
    snprintf(json, sizeof json,
             "{\"request_id\":\"%s\",\"ad_id\":\"%s\",\"advertiser_id\":\"%s\","
             "\"user_id\":\"u-1\"}",
             id, ad, adv);
    publish_event("impression", json);
}

/* One success of a single tagged bidder, checked. */
static void one_success(const char *id, const char *tag, const char *adv) {
    wx_publish_tagged(w, id, 1.0, tag);
    cJSON *r = wx_wait_result(w, id);
    wx_expect_result(r, "success", 1, 1, 0, 0);
    ck_assert_str_eq(wx_or_empty(wx_jstr(wx_jget(r, "winner"), "advertiser_id")), adv);
    cJSON_Delete(r);
}

/* 200 wins at 2.523273 CPM: 2523.273 micros each. Floored per win the sum
 * would be 504,600; the exact sum is 504,654,600 CPM micros, reported as
 * 504,654 micros. */
START_TEST(spend_is_exact) {
    wx_spawn_advertiser(w, "id=sp,price=fixed:2.523273", "sp", "[\"sp\"]");
    wx_opts o = {.admin_port = fx_free_port(),
                 .extra_json = "\"auction\":{\"type\":\"first_price\"}"};
    wx_start_exchange(w, "spend", &o);
    /* In fives of 40: never more open at once than the advertiser's
     * max_concurrent (100), which would skip it. */
    char id[32];
    for (int batch = 0; batch < 200; batch += 40) {
        for (int i = batch; i < batch + 40; i++) {
            snprintf(id, sizeof id, "sp-%d", i);
            wx_publish_tagged(w, id, 1.0, "sp");
        }
        for (int i = batch; i < batch + 40; i++) {
            snprintf(id, sizeof id, "sp-%d", i);
            cJSON *r = wx_wait_result(w, id);
            wx_expect_result(r, "success", 1, 1, 0, 0);
            cJSON_Delete(r);
        }
    }
    ck_assert_int_eq(poll_hget("stats:advertiser:sp", "wins", 200), 200);
    ck_assert_int_eq(poll_hget("stats:advertiser:sp", "spend_cpm_micros", 504654600), 504654600);
    ck_assert_int_eq(poll_hget("stats:advertiser:sp", "spend_micros", 504654), 504654);
    wx_await_metric(w, "rtb_bidder_spend_cpm_micros_total{bidder=\"sp\"}", 504654600, POLL_MS);
    wx_stop_exchange(w);
}
END_TEST

/* One entry per result, whatever its status, and per auction:errors report
 * (SPEC 14); none with log.maxlen 0. */
START_TEST(result_log_has_every_result) {
    const char *specs[] = {"id=lg-ok,price=fixed:2", "id=lg-slow,latency=400,price=fixed:2"};
    int port[2];
    fx_spawn_bidder(w->env, specs, 2, port);
    wx_register_advertiser(w, "lg-ok", port[0], "[\"ok\"]");
    wx_register_advertiser(w, "lg-slow", port[1], "[\"slow\"]");
    wx_opts o = {.tmax_ms = 100, .max_inflight = 1};
    wx_start_exchange(w, "log", &o);

    const char *want[][2] = {{"lg-1", "success"},
                             {"lg-2", "no_bid"},
                             {"lg-3", "timeout"},
                             {"lg-4", "overloaded"},
                             {"lg-5", "invalid"}};
    wx_publish_tagged(w, "lg-1", 1.0, "ok");
    cJSON_Delete(wx_wait_result(w, "lg-1"));
    wx_publish_tagged(w, "lg-2", 5.0, "ok");
    cJSON_Delete(wx_wait_result(w, "lg-2"));
    wx_publish_tagged(w, "lg-3", 1.0, "slow");
    wx_publish_tagged(w, "lg-4", 1.0, "ok"); /* lg-3 holds the one slot */
    cJSON_Delete(wx_wait_result(w, "lg-4"));
    cJSON_Delete(wx_wait_result(w, "lg-3"));
    const char *invalid = "{\"request_id\":\"lg-5\",\"user_id\":\"u-1\"}";
    wx_publish_raw(w, WX_REQUEST_TOPIC, invalid, strlen(invalid));
    cJSON_Delete(wx_wait_result(w, "lg-5"));
    wx_publish_raw(w, WX_REQUEST_TOPIC, "not json", 8);
    fx_msg *m = fx_sub_wait_for(w->errors, "auction:errors", WX_RESULT_WAIT_MS);
    ck_assert_msg(m != NULL, "no report on auction:errors");
    fx_msg_free(m);

    /* Read the stream back as a late subscriber would. */
    size_t found = 0;
    int error_logged = 0;
    int64_t until = fx_now_ms() + POLL_MS;
    while ((found < 5 || !error_logged) && fx_now_ms() < until) {
        found = 0;
        error_logged = 0;
        redisReply *r = fx_redis_cmd(w->env, "XRANGE auction:log - +");
        ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *fields = r->element[i]->element[1];
            const char *rid = "", *status = "", *result = "", *topic = NULL;
            for (size_t f = 0; f + 1 < fields->elements; f += 2) {
                const char *k = fields->element[f]->str, *v = fields->element[f + 1]->str;
                if (strcmp(k, "request_id") == 0) rid = v;
                if (strcmp(k, "status") == 0) status = v;
                if (strcmp(k, "result") == 0) result = v;
                if (strcmp(k, "topic") == 0) topic = v;
            }
            if (topic && strcmp(topic, WX_REQUEST_TOPIC) == 0 && strcmp(status, "invalid") == 0)
                error_logged = 1;
            for (size_t k = 0; k < 5; k++) {
                if (strcmp(rid, want[k][0]) != 0) continue;
                ck_assert_msg(strcmp(status, want[k][1]) == 0, "%s logged as %s, want %s", rid,
                              status, want[k][1]);
                cJSON *j = cJSON_Parse(result);
                ck_assert_msg(j && strcmp(wx_or_empty(wx_jstr(j, "status")), want[k][1]) == 0,
                              "%s: the logged result is not its result: %s", rid, result);
                cJSON_Delete(j);
                found++;
            }
        }
        freeReplyObject(r);
        if (found < 5 || !error_logged) fx_sleep_ms(50);
    }
    ck_assert_msg(found == 5, "%zu of 5 results in auction:log (one each)", found);
    ck_assert_msg(error_logged, "the auction:errors report is not in auction:log with its topic");
    wx_stop_exchange(w);

    /* log.maxlen 0: no stream. */
    fx_redis_do(w->env, "DEL auction:log");
    wx_opts off = {.extra_json = "\"log\":{\"maxlen\":0}"};
    wx_start_exchange(w, "log-off", &off);
    wx_publish_tagged(w, "lg-6", 1.0, "ok");
    cJSON_Delete(wx_wait_result(w, "lg-6"));
    fx_sleep_ms(200);
    ck_assert_int_eq(redis_int("EXISTS %s", "auction:log"), 0);
    wx_stop_exchange(w);
}
END_TEST

/* burl: fired by the impression of the winning ad, once however often it
 * arrives; never without it (SPEC 14). */
START_TEST(burl_once_per_impression) {
    int port = wx_spawn_advertiser(w, "id=bl,price=fixed:2,burl=on", "bl", "[\"bl\"]");
    wx_opts o = {.admin_port = fx_free_port()};
    wx_start_exchange(w, "burl", &o);
    one_success("bl-1", "bl", "bl");
    one_success("bl-2", "bl", "bl");

    fx_sleep_ms(1500); /* no impression: no bill */
    ck_assert_int_eq(bidder_stat(port, "bills"), 0);
    publish_impression("bl-1", "bl", "ad_other"); /* not the winning ad */
    fx_sleep_ms(300);
    ck_assert_int_eq(bidder_stat(port, "bills"), 0);

    publish_impression("bl-1", "bl", "ad_bl_bl-1");
    publish_impression("bl-1", "bl", "ad_bl_bl-1");
    ck_assert_int_eq(poll_bidder_stat(port, "bills", 1), 1);
    ck_assert_msg(bidder_got_notice(port, "/bill?id=bl-1&price=1&cur=USD"),
                  "the bill lacks its macros");
    fx_sleep_ms(1500);
    ck_assert_int_eq(bidder_stat(port, "bills"), 1);
    ck_assert_int_eq(poll_hget("stats:advertiser:bl", "billed", 1), 1);
    ck_assert_int_eq(poll_hget("stats:ad:ad_bl_bl-1", "billed", 1), 1);
    wx_await_metric(w, "rtb_burl_sent_total", 1, POLL_MS);
    ck_assert_int_eq(redis_int("ZCARD %s", "notices:burl:pending"), 0);
    wx_stop_exchange(w);
}
END_TEST

/* A 503 then a 200: one retry a second later, then billed. */
START_TEST(burl_retried_after_failure) {
    int port = wx_spawn_advertiser(w, "id=br,price=fixed:2,notices=off,burl=on,notice_fail=1", "br",
                                   "[\"br\"]");
    wx_opts o = {.admin_port = fx_free_port()};
    wx_start_exchange(w, "burl-retry", &o);
    one_success("br-1", "br", "br");
    publish_impression("br-1", "br", "ad_br_br-1");
    ck_assert_int_eq(poll_bidder_stat(port, "notices_failed", 1), 1);
    ck_assert_int_eq(poll_bidder_stat(port, "bills", 1), 1);
    wx_await_metric(w, "rtb_burl_retried_total", 1, POLL_MS);
    wx_await_metric(w, "rtb_burl_sent_total", 1, POLL_MS);
    ck_assert_int_eq(bidder_notice_count(port, "/bill?id=br-1&price=1&cur=USD"), 2);
    ck_assert_int_eq(redis_int("ZCARD %s", "notices:burl:pending"), 0);
    wx_stop_exchange(w);
}
END_TEST

/* A retry pending when the exchange stops (SIGTERM) or dies (SIGKILL) is
 * sent by the next one. */
static void burl_retry_survives(int sig) {
    const char *specs[] = {"id=bs,price=fixed:2,notices=off,burl=on,notice_fail=1"};
    int port[1];
    fx_spawn_bidder(w->env, specs, 1, port);
    wx_register_advertiser(w, "bs", port[0], "[\"bs\"]");
    wx_opts o = {.admin_port = fx_free_port(), .extra_json = "\"notices\":{\"burl_retry_s\":600}"};
    wx_start_exchange(w, "burl-restart", &o);
    one_success("bs-1", "bs", "bs");
    publish_impression("bs-1", "bs", "ad_bs_bs-1");
    wx_await_metric(w, "rtb_burl_retried_total", 1, POLL_MS);
    ck_assert_int_eq(bidder_stat(port[0], "bills"), 0);

    fx_kill(w->exchange_pid, sig);
    int status = 0;
    ck_assert_msg(fx_wait_exit(w->exchange_pid, 5000, &status) == 0, "the exchange did not exit");
    w->exchange_pid = 0;
    ck_assert_int_eq(redis_int("ZCARD %s", "notices:burl:pending"), 1);
    ck_assert_int_eq(bidder_stat(port[0], "bills"), 0);

    wx_start_exchange(w, "burl-restart-2", &o);
    ck_assert_int_eq(poll_bidder_stat(port[0], "bills", 1), 1);
    ck_assert_int_eq(bidder_notice_count(port[0], "/bill?id=bs-1&price=1&cur=USD"), 2);
    int64_t until = fx_now_ms() + POLL_MS;
    while (redis_int("ZCARD %s", "notices:burl:pending") != 0 && fx_now_ms() < until)
        fx_sleep_ms(20);
    ck_assert_int_eq(redis_int("ZCARD %s", "notices:burl:pending"), 0);
    ck_assert_int_eq(poll_hget("stats:advertiser:bs", "billed", 1), 1);
    wx_stop_exchange(w);
}

START_TEST(burl_retry_survives_sigterm) {
    burl_retry_survives(SIGTERM);
}
END_TEST

START_TEST(burl_retry_survives_kill_9) {
    burl_retry_survives(SIGKILL);
}
END_TEST

/* SIGTERM right after a win whose notice is answered 700 ms late: the
 * drain waits for it (notices.drain_s 2). */
START_TEST(drain_waits_for_a_slow_win_notice) {
    int port = wx_spawn_advertiser(w, "id=dw,price=fixed:2,notice_delay=700", "dw", "[\"dw\"]");
    wx_opts o = {0};
    wx_start_exchange(w, "drain-wait", &o);
    one_success("dw-1", "dw", "dw");
    int64_t signalled = fx_now_ms();
    fx_kill(w->exchange_pid, SIGTERM);
    wx_expect_clean_exit(w, 5000);
    int64_t took = fx_now_ms() - signalled;
    ck_assert_msg(took >= 500, "exit %lld ms after SIGTERM: did not wait for the notice",
                  (long long)took);
    ck_assert_int_eq(bidder_stat(port, "wins"), 1);
    ck_assert_int_eq(redis_int("ZCARD %s", "notices:pending"), 0);
}
END_TEST

/* A win notice still out at notices.drain_s is kept in Redis and sent by
 * the next exchange. */
START_TEST(drain_keeps_what_it_cannot_send) {
    int port = wx_spawn_advertiser(w, "id=dk,price=fixed:2,notice_delay=4000", "dk", "[\"dk\"]");
    wx_opts o = {.extra_json = "\"notices\":{\"drain_s\":1}"};
    wx_start_exchange(w, "drain-keep", &o);
    one_success("dk-1", "dk", "dk");
    ck_assert_msg(bidder_got_notice(port, "/win?id=dk-1&price=1"), "no win notice");
    fx_kill(w->exchange_pid, SIGTERM);
    wx_expect_clean_exit(w, 5000);
    ck_assert_int_eq(redis_int("ZCARD %s", "notices:pending"), 1);

    wx_start_exchange(w, "drain-keep-2", &o);
    int64_t until = fx_now_ms() + POLL_MS;
    while (bidder_notice_count(port, "/win?id=dk-1&price=1") < 2 && fx_now_ms() < until)
        fx_sleep_ms(20);
    ck_assert_int_eq(bidder_notice_count(port, "/win?id=dk-1&price=1"), 2);
    /* Done when answered, 4 s on: then it leaves Redis. */
    until = fx_now_ms() + 4000 + POLL_MS;
    while (redis_int("ZCARD %s", "notices:pending") != 0 && fx_now_ms() < until)
        fx_sleep_ms(20);
    ck_assert_int_eq(redis_int("ZCARD %s", "notices:pending"), 0);
    ck_assert_int_eq(bidder_stat(port, "wins"), 1);
    wx_stop_exchange(w);
}
END_TEST

/* ${AUCTION_PRICE} in a loss notice: empty unless notices.loss_price. */
START_TEST(losers_are_not_told_the_price) {
    const char *specs[] = {"id=lp-a,price=fixed:2.52", "id=lp-b,price=fixed:2.10"};
    int port[2];
    fx_spawn_bidder(w->env, specs, 2, port);
    wx_register_advertiser(w, "lp-a", port[0], "[\"lp\"]");
    wx_register_advertiser(w, "lp-b", port[1], "[\"lp\"]");
    wx_opts o = {0};
    wx_start_exchange(w, "loss-price", &o);
    wx_publish_tagged(w, "lp-1", 1.0, "lp");
    cJSON_Delete(wx_wait_result(w, "lp-1"));
    ck_assert_msg(bidder_got_notice(port[1], "/loss?id=lp-1&reason=102&price="),
                  "the loser was told the price by default");
    ck_assert_msg(bidder_got_notice(port[0], "/win?id=lp-1&price=2.11"), "no win notice");
    wx_stop_exchange(w);

    wx_opts told = {.extra_json = "\"notices\":{\"loss_price\":true}"};
    wx_start_exchange(w, "loss-price-on", &told);
    wx_publish_tagged(w, "lp-2", 1.0, "lp");
    cJSON_Delete(wx_wait_result(w, "lp-2"));
    ck_assert_msg(bidder_got_notice(port[1], "/loss?id=lp-2&reason=102&price=2.11"),
                  "with loss_price the loser must get the clearing price");
    wx_stop_exchange(w);
}
END_TEST

static Suite *after_suite(void) {
    Suite *s = suite_create("after");
    TCase *tc = tcase_create("after");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, win_and_loss_notices);
    tcase_add_test(tc, first_price_auction);
    tcase_add_test(tc, events_counted_deduplicated_attributed);
    tcase_add_test(tc, spend_is_exact);
    tcase_add_test(tc, result_log_has_every_result);
    tcase_add_test(tc, burl_once_per_impression);
    tcase_add_test(tc, burl_retried_after_failure);
    tcase_add_test(tc, burl_retry_survives_sigterm);
    tcase_add_test(tc, burl_retry_survives_kill_9);
    tcase_add_test(tc, drain_waits_for_a_slow_win_notice);
    tcase_add_test(tc, drain_keeps_what_it_cannot_send);
    tcase_add_test(tc, losers_are_not_told_the_price);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return fx_run_suite(after_suite());
}

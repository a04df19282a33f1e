/* test_after.c -- what happens after the auction, on real servers:
 * win and loss notices (SPEC 9), wins and spend per advertiser and ad, ad
 * events (SPEC 10), and first-price auctions (SPEC 12).
 *
 * The one idea: everything here is fire and forget on the exchange's side,
 * so the tests poll what the outside world sees — the bidder's record of
 * the notices it received (GET /stats), and the counters in Redis — until
 * the expected value appears or a generous deadline passes. */
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
    ck_assert_msg(bidder_got_notice(port[1], "/loss?id=nt-1&reason=102"),
                  "adv-b (outbid) got no loss notice with reason 102");
    ck_assert_msg(bidder_got_notice(port[2], "/loss?id=nt-1&reason=100"),
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
    const char *specs[] = {"id=ev-a,price=fixed:1"};
    int port[1];
    fx_spawn_bidder(w->env, specs, 1, port);
    wx_register_advertiser(w, "ev-a", port[0], "[\"ev\"]");
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
    fx_sleep_ms(200);
    ck_assert_int_eq(poll_hget("stats:advertiser:ev-a", "impressions", 1), 1);
    ck_assert_int_eq(poll_hget("stats:advertiser:ev-a", "clicks", 2), 2);

    /* auctions still run */
    wx_publish_tagged(w, "ev-r", 0.5, "ev");
    cJSON *r = wx_wait_result(w, "ev-r");
    wx_expect_result(r, "success", 1, 1, 0, 0);
    cJSON_Delete(r);
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
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return fx_run_suite(after_suite());
}

/* test_pacing.c -- daily budgets and pacing on real servers (SPEC 16): a
 * small budget runs out and the advertiser stops winning (skipped with
 * reason budget, the Redis key holding the exact sum, kept two days);
 * `even` spends far less than `asap` over the first seconds of a run; spend
 * written into the day's key by someone else (another exchange) stops the
 * calls within about a second. The rule itself, to the micro and across
 * midnight UTC with injected time, is tests/test_budget.c.
 *
 * The one idea: every auction here has one bidder tagged for it, so a win
 * clears at the floor (SPEC 3.6) and costs exactly floor / 1000; the tests
 * publish one request at a time and wait for its result, so no auction is
 * in flight when a budget runs out and the counts are exact. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/world.h"

static wx_world *w;

static void setup(void) {
    w = wx_start();
}

static void teardown(void) {
    wx_stop(w);
    w = NULL;
}

/* Today's UTC date, yyyymmdd: the suffix of the budget key. */
static long utc_day(void) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    return (long)(tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

/* µs since 00:00 UTC today. */
static long long utc_elapsed_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)(ts.tv_sec % 86400) * 1000000 + ts.tv_nsec / 1000;
}

/* SET advertiser:targeting:{id} with a budget (raw JSON, e.g.
 * {"daily":0.005}). */
static void register_budgeted(const char *id, int port, const char *tag, const char *budget) {
    fx_redis_do(w->env,
                "SET advertiser:targeting:%s {\"interests\":[\"%s\"],"
                "\"endpoint\":\"http://127.0.0.1:%d/bid\",\"budget\":%s}",
                id, tag, port, budget);
}

/* GET key as an integer (-1 when it does not exist). */
static long long redis_get_int(const char *key) {
    redisReply *r = fx_redis_cmd(w->env, "GET %s", key);
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return v;
}

static long long redis_ttl(const char *key) {
    redisReply *r = fx_redis_cmd(w->env, "TTL %s", key);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -3;
    freeReplyObject(r);
    return v;
}

/* One tagged request, its result: the winner's id ("" for none), skipped. */
typedef struct outcome {
    char status[16];
    char winner[64];
    int bidders, skipped;
} outcome;

static outcome run_one(const char *id, double floor, const char *tag) {
    outcome out = {0};
    wx_publish_tagged(w, id, floor, tag);
    cJSON *r = wx_wait_result(w, id);
    snprintf(out.status, sizeof out.status, "%s", wx_or_empty(wx_jstr(r, "status")));
    snprintf(out.winner, sizeof out.winner, "%s",
             wx_or_empty(wx_jstr(wx_jget(r, "winner"), "advertiser_id")));
    out.bidders = (int)wx_jnum(r, "bidders");
    out.skipped = (int)wx_jnum(r, "skipped");
    cJSON_Delete(r);
    return out;
}

/* The skipped_by.budget of bidder `id` in /api/stats. */
static double api_skipped_for_budget(const char *id) {
    char *body = NULL;
    int code = fx_http(w->admin_port, "GET", "/api/stats", NULL, &body, 3000);
    if (code != 200) wx_fail_with_log(w, "GET /api/stats: status %d", code);
    cJSON *s = cJSON_Parse(body);
    free(body);
    double v = -1;
    const cJSON *b;
    cJSON_ArrayForEach(b, wx_jget(s, "bidders")) {
        if (strcmp(wx_or_empty(wx_jstr(b, "id")), id) == 0)
            v = wx_jnum(wx_jget(b, "skipped_by"), "budget");
    }
    cJSON_Delete(s);
    return v;
}

/* ---- exhaustion --------------------------------------------------------------------- */

/* A budget of 0.005 a day; adv-bud bids 2.523273 against adv-rival's
 * 1.000001, so each of its wins clears at 1.010001 CPM: 1010.001 micros.
 * The fifth win takes the day's spend to 5050.005 micros, past the
 * budget; from then on adv-bud is not called and adv-rival wins. */
START_TEST(budget_runs_out) {
    const char *specs[] = {"id=adv-bud,price=fixed:2.523273", "id=adv-rival,price=fixed:1.000001"};
    int port[2];
    fx_spawn_bidder(w->env, specs, 2, port);
    register_budgeted("adv-bud", port[0], "bud", "{\"daily\":0.005}");
    wx_register_advertiser(w, "adv-rival", port[1], "[\"bud\"]");
    wx_opts o = {.admin_port = fx_free_port()};
    long day = utc_day();
    wx_start_exchange(w, "budget-out", &o);
    ck_assert_int_eq(wx_metric(w, "rtb_bidder_budget_daily_micros{bidder=\"adv-bud\"}"), 5000);
    ck_assert_int_eq(wx_metric(w, "rtb_bidder_budget_spent_micros{bidder=\"adv-bud\"}"), 0);
    /* No budget, no line. */
    double v;
    ck_assert_int_eq(
        wx_metric_read(w->admin_port, "rtb_bidder_budget_daily_micros{bidder=\"adv-rival\"}", &v),
        0);

    int wins = 0, skipped_after = 0;
    for (int i = 1; i <= 12; i++) {
        char id[32];
        snprintf(id, sizeof id, "bo-%d", i);
        outcome r = run_one(id, 1.0, "bud");
        ck_assert_str_eq(r.status, "success");
        if (i <= 5) {
            ck_assert_msg(strcmp(r.winner, "adv-bud") == 0, "%s: winner %s, want adv-bud", id,
                          r.winner);
            ck_assert_int_eq(r.bidders, 2);
            ck_assert_int_eq(r.skipped, 0);
            wins++;
        } else {
            /* the budget is spent: not called, counted as skipped */
            ck_assert_msg(strcmp(r.winner, "adv-rival") == 0, "%s: winner %s after the budget", id,
                          r.winner);
            ck_assert_int_eq(r.bidders, 1);
            ck_assert_int_eq(r.skipped, 1);
            skipped_after++;
        }
    }
    ck_assert_int_eq(wins, 5);
    ck_assert_int_eq(wx_bidder_requests(port[0]), 5); /* never called again */
    ck_assert_int_eq(wx_metric(w, "rtb_bidder_skipped_total{bidder=\"adv-bud\",reason=\"budget\"}"),
                     skipped_after);
    ck_assert_int_eq(
        wx_metric(w, "rtb_bidder_skipped_total{bidder=\"adv-rival\",reason=\"budget\"}"), 0);
    ck_assert_int_eq(wx_metric(w, "rtb_bidder_budget_spent_micros{bidder=\"adv-bud\"}"), 5050);
    ck_assert_int_eq(api_skipped_for_budget("adv-bud"), skipped_after);

    /* The campaign view shows the budget spent (SPEC 16); none for the rival. */
    char *body = NULL;
    ck_assert_int_eq(fx_http(w->admin_port, "GET", "/api/advertisers/adv-bud", NULL, &body, 3000),
                     200);
    cJSON *adv = cJSON_Parse(body);
    free(body);
    const cJSON *budget = wx_jget(adv, "budget");
    ck_assert_msg(cJSON_IsObject(budget), "/api/advertisers/adv-bud has no budget object");
    ck_assert_msg(wx_money_eq(wx_jnum(budget, "daily"), 0.005), "daily %.6f",
                  wx_jnum(budget, "daily"));
    ck_assert_msg(wx_money_eq(wx_jnum(budget, "spent_today"), 0.00505), "spent_today %.6f",
                  wx_jnum(budget, "spent_today"));
    ck_assert_str_eq(wx_or_empty(wx_jstr(budget, "pacing")), "asap");
    ck_assert_msg(cJSON_IsTrue(wx_jget(budget, "exhausted")), "budget not exhausted");
    ck_assert_msg(cJSON_IsFalse(wx_jget(budget, "called")), "an exhausted budget is called");
    cJSON_Delete(adv);
    ck_assert_int_eq(fx_http(w->admin_port, "GET", "/api/advertisers/adv-rival", NULL, &body, 3000),
                     200);
    adv = cJSON_Parse(body);
    free(body);
    ck_assert_msg(cJSON_IsNull(wx_jget(adv, "budget")), "adv-rival has no budget: null");
    cJSON_Delete(adv);

    /* Redis: the exact sum of the clearing prices in CPM micros, shared, and
     * kept about two days. */
    ck_assert_msg(utc_day() == day, "the test ran across midnight UTC: run it again");
    char key[128];
    snprintf(key, sizeof key, "budget:adv-bud:%ld", day);
    int64_t until = fx_now_ms() + 3000;
    while (redis_get_int(key) != 5050005 && fx_now_ms() < until)
        fx_sleep_ms(20);
    ck_assert_int_eq(redis_get_int(key), 5050005);
    long long ttl = redis_ttl(key);
    ck_assert_msg(ttl > 172700 && ttl <= 172800, "TTL of %s: %lld, want about 172800", key, ttl);
    /* Only advertisers with a budget have a key. */
    snprintf(key, sizeof key, "budget:adv-rival:%ld", day);
    ck_assert_int_eq(redis_get_int(key), -1);
    wx_stop_exchange(w);
}
END_TEST

/* ---- even against asap ----------------------------------------------------------------- */

/* Two advertisers with the same budget of 0.02 a day, each alone in its
 * auctions (a win costs 0.001). The even one starts where even pacing has
 * brought it at this hour -- its key holds the day's elapsed share of its
 * budget, so the run does not depend on the time of day it runs at -- and
 * may spend only its 5 % (0.001) more; the asap one spends until its budget
 * is gone. */
START_TEST(even_spends_far_less_than_asap) {
    const char *specs[] = {"id=adv-asap,price=fixed:3", "id=adv-even,price=fixed:3"};
    int port[2];
    fx_spawn_bidder(w->env, specs, 2, port);
    register_budgeted("adv-asap", port[0], "pa", "{\"daily\":0.02,\"pacing\":\"asap\"}");
    register_budgeted("adv-even", port[1], "pe", "{\"daily\":0.02,\"pacing\":\"even\"}");
    long day = utc_day();
    long long share_micros = 20000 * (utc_elapsed_us() / 1000) / 86400000;
    char key[128];
    snprintf(key, sizeof key, "budget:adv-even:%ld", day);
    fx_redis_do(w->env, "SET %s %lld", key, share_micros * 1000);
    wx_opts o = {.admin_port = fx_free_port()};
    wx_start_exchange(w, "pacing", &o);

    int wins_asap = 0, wins_even = 0;
    for (int i = 1; i <= 30; i++) {
        char id[32];
        snprintf(id, sizeof id, "pa-%d", i);
        wins_asap += strcmp(run_one(id, 1.0, "pa").winner, "adv-asap") == 0;
        snprintf(id, sizeof id, "pe-%d", i);
        wins_even += strcmp(run_one(id, 1.0, "pe").winner, "adv-even") == 0;
    }
    /* asap: 20 wins of 0.001 spend its 0.02; even: about 0.001 more */
    ck_assert_int_eq(wins_asap, 20);
    ck_assert_msg(wins_even >= 1 && wins_even <= 3, "even won %d auctions, want 1-3", wins_even);
    ck_assert_int_ge(
        wx_metric(w, "rtb_bidder_skipped_total{bidder=\"adv-even\",reason=\"budget\"}"), 27);
    ck_assert_int_eq(
        wx_metric(w, "rtb_bidder_skipped_total{bidder=\"adv-asap\",reason=\"budget\"}"), 10);
    wx_stop_exchange(w);
}
END_TEST

/* ---- the budget is shared ---------------------------------------------------------------- */

/* A config `bidders` entry with a budget of 1.00 a day. Another exchange's
 * wins reach this one only through budget:{id}:{day}: here they are written
 * into the key directly, and within about a second (the refresh) the
 * advertiser is no longer called. */
START_TEST(spend_elsewhere_stops_calls) {
    const char *specs[] = {"id=adv-sh,price=fixed:2"};
    int port[1];
    fx_spawn_bidder(w->env, specs, 1, port);
    char bidders[512];
    snprintf(bidders, sizeof bidders,
             "{\"id\":\"adv-sh\",\"endpoint\":\"http://127.0.0.1:%d/bid\",\"interests\":[\"sh\"],"
             "\"budget\":{\"daily\":1.0}}",
             port[0]);
    wx_opts o = {.bidders = bidders, .admin_port = fx_free_port()};
    wx_start_exchange(w, "shared", &o);
    long day = utc_day();
    ck_assert_str_eq(run_one("sh-1", 1.0, "sh").winner, "adv-sh");
    ck_assert_str_eq(run_one("sh-2", 1.0, "sh").winner, "adv-sh");

    /* Another exchange spent 0.999 of it: with our 0.002, 1.001 */
    char key[128];
    snprintf(key, sizeof key, "budget:adv-sh:%ld", day);
    fx_redis_do(w->env, "INCRBY %s 999000000", key);
    int64_t written = fx_now_ms(), stopped = -1;
    for (int i = 3; i < 60 && stopped < 0; i++) {
        char id[32];
        snprintf(id, sizeof id, "sh-%d", i);
        outcome r = run_one(id, 0.5, "sh");
        if (r.skipped == 1 && r.bidders == 0 && strcmp(r.status, "no_bid") == 0)
            stopped = fx_now_ms();
        else
            ck_assert_str_eq(r.winner, "adv-sh");
        fx_sleep_ms(50);
    }
    ck_assert_msg(stopped >= 0, "the advertiser was still called 3 s after its key was spent");
    ck_assert_msg(stopped - written <= 2000, "calls stopped %lld ms after the key was spent",
                  (long long)(stopped - written));
    /* and stays stopped */
    long calls = wx_bidder_requests(port[0]);
    for (int i = 0; i < 5; i++) {
        char id[32];
        snprintf(id, sizeof id, "shx-%d", i);
        ck_assert_int_eq(run_one(id, 0.5, "sh").skipped, 1);
    }
    ck_assert_int_eq(wx_bidder_requests(port[0]), calls);
    ck_assert_int_ge(wx_metric(w, "rtb_bidder_budget_spent_micros{bidder=\"adv-sh\"}"), 1000000);

    /* The key emptied (a new day, or an operator's reset): called again. */
    fx_redis_do(w->env, "DEL %s", key);
    int64_t until = fx_now_ms() + 3000;
    int again = 0;
    for (int i = 0; !again && fx_now_ms() < until; i++) {
        char id[32];
        snprintf(id, sizeof id, "shy-%d", i);
        again = strcmp(run_one(id, 0.5, "sh").winner, "adv-sh") == 0;
        fx_sleep_ms(50);
    }
    ck_assert_msg(again, "not called again within 3 s of its key's reset");
    wx_stop_exchange(w);
}
END_TEST

static Suite *pacing_suite(void) {
    Suite *s = suite_create("pacing");
    TCase *tc = tcase_create("pacing");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, budget_runs_out);
    tcase_add_test(tc, even_spends_far_less_than_asap);
    tcase_add_test(tc, spend_elsewhere_stops_calls);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return fx_run_suite(pacing_suite());
}

/* test_txn.c -- the transaction state machine (rtb/txn.h) without servers.
 *
 * A fake transport records what the transactions ask for (profile lookups,
 * bidder calls, cancels, published results, outcomes, wake-ups) and the
 * tests answer in the order and at the exact microsecond they choose: the
 * profile found, missing, late or failing; bidders answering, timing out,
 * failing; the deadline first; shutdown mid-auction; Redis refusing the
 * result. Every case ends with the transactions all freed (live 0), which
 * ASan's leak check confirms in tools/check.
 *
 * Two more cases cover what the transactions stand on: "matching", the
 * choice of bidders by interests (rtb_registry_choose, SPEC 3.3), checked
 * against the rule itself (a nested loop over both lists) on random users
 * and advertisers; and "keyed hash", SipHash under a random key (rtb/hash.h,
 * SPEC 15) and the set the registry matches with. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtb/hash.h"
#include "rtb/registry.h"
#include "rtb/txn.h"

#define MAX_REC 16
#define T0 1000000000 /* µs: an arbitrary monotonic origin */
#define MS 1000

typedef struct fake {
    rtb_txn *profile_txn[MAX_REC];
    char profile_user[MAX_REC][64];
    int nprofiles;
    int profile_refuse; /* profile_get returns -1 (Redis down) */
    rtb_txn_call *calls[MAX_REC];
    char call_body[MAX_REC][4096];
    int ncalls;
    int call_refuse;
    rtb_txn_call *cancelled[MAX_REC];
    int ncancelled;
    char published[MAX_REC][2048];
    char published_id[MAX_REC][130];
    int npublished;
    int publish_refuse;
    /* outcomes, copied */
    int noutcomes;
    proto_status status[MAX_REC];
    int out_published[MAX_REC], profile_missed[MAX_REC], profile_failed[MAX_REC];
    int64_t latency_us[MAX_REC], clearing[MAX_REC];
    char winner[MAX_REC][64];
    size_t nnotices[MAX_REC];
    size_t nwins[MAX_REC];
    char win_imp[MAX_REC][4][64], win_deal[MAX_REC][4][64];
    char notice_imp[MAX_REC][4][64], notice_cur[MAX_REC][4][8];
    int64_t notice_price[MAX_REC][4];
    char notice_url[MAX_REC][4][256];
    int notice_loss[MAX_REC][4];
    int notice_no_price[MAX_REC][4];
    int64_t wakes[MAX_REC];
    int nwakes;
    int64_t wall_us; /* the wall clock the transactions read; 0: WALL0 */
} fake;

static fake F;
static proto_config cfg;
static rtb_registry *reg;
static rtb_txns *ts;

static int fk_profile_get(void *ctx, rtb_txn *t, const char *user_id) {
    fake *f = ctx;
    if (f->profile_refuse) return -1;
    f->profile_txn[f->nprofiles] = t;
    snprintf(f->profile_user[f->nprofiles], 64, "%s", user_id);
    f->nprofiles++;
    return 0;
}

static int fk_call_start(void *ctx, rtb_txn_call *c, const char *body, size_t len) {
    fake *f = ctx;
    if (f->call_refuse) return -1;
    f->calls[f->ncalls] = c;
    snprintf(f->call_body[f->ncalls], 4096, "%.*s", (int)len, body);
    f->ncalls++;
    return 0;
}

static void fk_call_cancel(void *ctx, rtb_txn_call *c) {
    fake *f = ctx;
    f->cancelled[f->ncancelled++] = c;
}

static int fk_publish(void *ctx, const char *request_id, proto_status status, const char *json,
                      size_t len) {
    (void)status;
    fake *f = ctx;
    snprintf(f->published[f->npublished], 2048, "%.*s", (int)len, json);
    snprintf(f->published_id[f->npublished], 130, "%s", request_id);
    f->npublished++;
    return f->publish_refuse ? -1 : 0;
}

static void fk_closed(void *ctx, const rtb_txn_outcome *o) {
    fake *f = ctx;
    int k = f->noutcomes++;
    f->status[k] = o->status;
    f->out_published[k] = o->published;
    f->profile_missed[k] = o->profile_missed;
    f->profile_failed[k] = o->profile_failed;
    f->latency_us[k] = o->latency_us;
    f->clearing[k] = o->clearing_price_micros;
    snprintf(f->winner[k], 64, "%s", o->winner ? o->winner->id : "");
    f->nnotices[k] = o->nnotices;
    f->nwins[k] = o->nwins;
    for (size_t i = 0; i < o->nwins && i < 4; i++) {
        snprintf(f->win_imp[k][i], 64, "%s", o->wins[i].imp_id);
        snprintf(f->win_deal[k][i], 64, "%s", o->wins[i].deal_id ? o->wins[i].deal_id : "");
    }
    for (size_t i = 0; i < o->nnotices && i < 4; i++) {
        snprintf(f->notice_imp[k][i], 64, "%s", o->notices[i].macros.imp_id);
        snprintf(f->notice_cur[k][i], 8, "%s", o->notices[i].macros.currency);
        f->notice_price[k][i] = o->notices[i].macros.price_micros;
        snprintf(f->notice_url[k][i], 256, "%s", o->notices[i].url);
        f->notice_loss[k][i] = o->notices[i].macros.loss;
        f->notice_no_price[k][i] = o->notices[i].macros.no_price;
    }
}

static void fk_wake_at(void *ctx, int64_t at_us) {
    fake *f = ctx;
    f->wakes[f->nwakes++] = at_us;
}

#define WALL0 INT64_C(1795000000000000) /* 2026-11-18 09:46:40 UTC */

static int64_t fk_wall_us(void *ctx) {
    fake *f = ctx;
    return f->wall_us ? f->wall_us : WALL0;
}

static const char *config_json =
    "{\"auction\":{\"tmax_ms\":100,\"max_bidders\":4},"
    "\"profiles\":{\"default\":{\"interests\":[\"default-tag\"],\"ltv_score\":0.5}},"
    "\"bidders\":["
    "{\"id\":\"adv-a\",\"endpoint\":\"http://127.0.0.1:9/bid\",\"interests\":[\"tech\"]},"
    "{\"id\":\"adv-b\",\"endpoint\":\"http://127.0.0.1:9/bid\",\"interests\":[\"tech\"]},"
    "{\"id\":\"adv-d\",\"endpoint\":\"http://127.0.0.1:9/bid\",\"interests\":[\"default-tag\"]}]}";

static void setup(void) {
    memset(&F, 0, sizeof(F));
    char err[256];
    ck_assert_int_eq(proto_config_defaults(&cfg), PROTO_OK);
    ck_assert_msg(proto_config_parse(&cfg, config_json, strlen(config_json), err, sizeof(err)) ==
                      PROTO_OK,
                  "%s", err);
    reg = rtb_registry_new(&cfg, NULL);
    ck_assert_ptr_nonnull(reg);
    rtb_registry_apply(reg, NULL, 0);
    ck_assert_uint_eq(rtb_registry_active(reg), 3);
    rtb_txn_transport tp = {
        .profile_get = fk_profile_get,
        .call_start = fk_call_start,
        .call_cancel = fk_call_cancel,
        .publish = fk_publish,
        .closed = fk_closed,
        .wake_at = fk_wake_at,
        .wall_us = fk_wall_us,
        .ctx = &F,
    };
    ts = rtb_txns_new(&cfg, reg, &tp);
    ck_assert_ptr_nonnull(ts);
}

static void teardown(void) {
    ck_assert_uint_eq(rtb_txns_live(ts), 0); /* every case frees its transactions */
    rtb_txns_free(ts);
    rtb_registry_free(reg);
    proto_config_free(&cfg);
}

/* Start request `id` (floor 1.00, user u-1, interests in user_context) at
 * `now`. */
static void start(const char *id, const char *context_interest, int64_t now) {
    char payload[512];
    if (context_interest)
        snprintf(payload, sizeof(payload),
                 "{\"request_id\":\"%s\",\"user_id\":\"u-1\",\"ad_slot_id\":\"s-1\","
                 "\"floor_price\":1.0,\"user_context\":{\"interests\":[\"%s\"]}}",
                 id, context_interest);
    else
        snprintf(payload, sizeof(payload),
                 "{\"request_id\":\"%s\",\"user_id\":\"u-1\",\"ad_slot_id\":\"s-1\","
                 "\"floor_price\":1.0}",
                 id);
    proto_bid_request req;
    char err[256];
    ck_assert_msg(proto_bid_request_decode(payload, strlen(payload), 65536, &req, err,
                                           sizeof(err)) == PROTO_OK,
                  "%s", err);
    ck_assert_int_eq(rtb_txns_start(ts, &req, now, now), 0);
}

static rtb_bidder *bidder(const char *id) {
    for (size_t i = 0; i < rtb_registry_count(reg); i++)
        if (strcmp(rtb_registry_at(reg, i)->id, id) == 0) return rtb_registry_at(reg, i);
    ck_abort_msg("no bidder %s", id);
    return NULL;
}

/* The call (by index of start) made to bidder `id`. */
static rtb_txn_call *call_to(const char *id) {
    for (int i = 0; i < F.ncalls; i++)
        if (strcmp(F.calls[i]->bidder->id, id) == 0) return F.calls[i];
    ck_abort_msg("no call to %s", id);
    return NULL;
}

static void answer(rtb_txn_call *c, int code, const char *body, int64_t now) {
    rtb_call_result r = {.status = RTB_CALL_OK, .code = code, .body = body, .len = strlen(body)};
    rtb_txn_on_answer(c, &r, now);
}

static void answer_bid(rtb_txn_call *c, const char *request_id, const char *price, int64_t now) {
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"id\":\"%s\",\"seatbid\":[{\"seat\":\"%s\",\"bid\":[{\"id\":\"b1\","
             "\"impid\":\"1\",\"price\":%s,\"adid\":\"ad-%s\",\"nurl\":\"http://n/%s\","
             "\"lurl\":\"http://l/%s\"}]}]}",
             request_id, c->bidder->id, price, c->bidder->id, c->bidder->id, c->bidder->id);
    answer(c, 200, body, now);
}

static void profile_hit(int k, const char *json, int64_t now) {
    rtb_txn_on_profile(F.profile_txn[k], RTB_PROFILE_HIT, json, strlen(json), now);
}

static cJSON *result(int k) {
    cJSON *r = cJSON_Parse(F.published[k]);
    ck_assert_msg(r != NULL, "result %d is not JSON: %s", k, F.published[k]);
    return r;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    ck_assert_msg(cJSON_IsNumber(v), "%s is not a number", key);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    ck_assert_msg(cJSON_IsString(v), "%s is not a string", key);
    return v->valuestring;
}

/* Start request `payload` (JSON text) at `now`. */
static void start_payload(const char *payload, int64_t now) {
    proto_bid_request req;
    char err[256];
    ck_assert_msg(proto_bid_request_decode(payload, strlen(payload), 65536, &req, err,
                                           sizeof(err)) == PROTO_OK,
                  "%s", err);
    ck_assert_int_eq(rtb_txns_start(ts, &req, now, now), 0);
}

/* Answer call c with the bids of `bids_json` (the "bid" array's members) in
 * a BidResponse for `request_id` with `cur` (NULL: none). */
static void answer_bids(rtb_txn_call *c, const char *request_id, const char *cur,
                        const char *bids_json, int64_t now) {
    char body[2048];
    snprintf(body, sizeof(body), "{\"id\":\"%s\",\"seatbid\":[{\"bid\":[%s]}]%s%s%s}", request_id,
             bids_json, cur ? ",\"cur\":\"" : "", cur ? cur : "", cur ? "\"" : "");
    answer(c, 200, body, now);
}

/* ---- Profile ------------------------------------------------------------------------ */

START_TEST(profile_hit_then_all_bidders_answer) {
    start("r-1", NULL, T0);
    ck_assert_int_eq(F.nprofiles, 1);
    ck_assert_str_eq(F.profile_user[0], "u-1");
    ck_assert_int_eq(F.nwakes, 1);
    ck_assert_int_eq(F.wakes[0], T0 + 100 * MS); /* the deadline, asked once */
    ck_assert_int_eq(F.ncalls, 0);               /* nobody called before the profile */
    ck_assert(rtb_txns_has(ts, "r-1"));

    profile_hit(0, "{\"interests\":[\"tech\"],\"ltv_score\":0.7}", T0 + 1 * MS);
    ck_assert_int_eq(F.ncalls, 2); /* adv-a and adv-b; adv-d wants default-tag */
    /* 99 ms left, minus the exchange's own 1 ms (no loop lag measured): 98 */
    ck_assert_ptr_nonnull(strstr(F.call_body[0], "\"tmax\":98"));
    ck_assert_ptr_nonnull(strstr(F.call_body[0], "\"keywords\":\"tech\""));

    answer_bid(call_to("adv-a"), "r-1", "2.5", T0 + 5 * MS);
    ck_assert_int_eq(F.npublished, 0); /* one still out */
    answer_bid(call_to("adv-b"), "r-1", "2.0", T0 + 7 * MS);
    ck_assert_int_eq(F.npublished, 1); /* closed at the last answer, not the deadline */
    ck_assert(!rtb_txns_has(ts, "r-1"));
    ck_assert_int_eq(F.ncancelled, 0);

    cJSON *r = result(0);
    ck_assert_str_eq(str(r, "status"), "success");
    ck_assert_int_eq((int)num(r, "bids"), 2);
    ck_assert_int_eq((int)num(r, "bidders"), 2);
    ck_assert_int_eq((int)num(r, "timeouts"), 0);
    ck_assert_double_eq_tol(num(r, "latency_ms"), 7.0, 1e-9);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(r, "winner");
    ck_assert_str_eq(str(w, "advertiser_id"), "adv-a");
    ck_assert_double_eq_tol(num(w, "clearing_price"), 2.01, 1e-9); /* 2.00 + 0.01 */
    cJSON_Delete(r);

    ck_assert_int_eq(F.noutcomes, 1);
    ck_assert_int_eq(F.status[0], PROTO_STATUS_SUCCESS);
    ck_assert_int_eq(F.out_published[0], 1);
    ck_assert_str_eq(F.winner[0], "adv-a");
    ck_assert_int_eq(F.clearing[0], 2010000);
    ck_assert_int_eq(F.latency_us[0], 7 * MS);
    ck_assert_uint_eq(F.nnotices[0], 2); /* the winner's nurl first, then the loser's lurl */
    ck_assert_str_eq(F.notice_url[0][0], "http://n/adv-a");
    ck_assert_str_eq(F.notice_url[0][1], "http://l/adv-b");
    ck_assert_int_eq(F.notice_loss[0][1], PROTO_LOSS_OUTBID);
    ck_assert_int_eq(F.notice_no_price[0][0], 0); /* the winner is told its price */
    ck_assert_int_eq(F.notice_no_price[0][1], 1); /* a loser is not, by default */
    ck_assert_int_eq(F.profile_missed[0], 0);
    ck_assert_uint_eq(bidder("adv-a")->stats.calls, 1);
    ck_assert_uint_eq(bidder("adv-a")->stats.bids, 1);
    ck_assert_uint_eq(bidder("adv-d")->stats.calls, 0);

    /* The wake-up at the old deadline finds nothing to do. */
    rtb_txns_expire(ts, T0 + 100 * MS);
    ck_assert_int_eq(F.npublished, 1);
}
END_TEST

START_TEST(profile_miss_uses_default_and_asks_to_cache) {
    start("r-2", NULL, T0);
    rtb_txn_on_profile(F.profile_txn[0], RTB_PROFILE_MISS, NULL, 0, T0 + 2 * MS);
    ck_assert_int_eq(F.ncalls, 1); /* the default profile's interest: adv-d only */
    ck_assert_str_eq(F.calls[0]->bidder->id, "adv-d");
    ck_assert_ptr_nonnull(strstr(F.call_body[0], "\"ltv_score\":0.5"));
    answer(F.calls[0], 204, "", T0 + 4 * MS);
    ck_assert_int_eq(F.noutcomes, 1);
    ck_assert_int_eq(F.status[0], PROTO_STATUS_NO_BID);
    ck_assert_int_eq(F.profile_missed[0], 1);
    ck_assert_int_eq(F.profile_failed[0], 0);
    ck_assert_uint_eq(bidder("adv-d")->stats.no_bids, 1);
}
END_TEST

START_TEST(profile_late_closes_at_deadline_and_frees_on_the_reply) {
    start("r-3", NULL, T0);
    rtb_txns_expire(ts, T0 + 99 * MS); /* early: nothing */
    ck_assert_int_eq(F.npublished, 0);
    rtb_txns_expire(ts, T0 + 100 * MS);
    ck_assert_int_eq(F.npublished, 1);
    cJSON *r = result(0);
    ck_assert_str_eq(str(r, "status"), "timeout");
    ck_assert_int_eq((int)num(r, "bidders"), 0);
    cJSON_Delete(r);
    ck_assert(!rtb_txns_has(ts, "r-3")); /* the id may be used again */
    ck_assert_uint_eq(rtb_txns_open(ts), 0);
    ck_assert_uint_eq(rtb_txns_live(ts), 1); /* the GET is still out: kept */

    profile_hit(0, "{\"interests\":[\"tech\"]}", T0 + 150 * MS);
    ck_assert_uint_eq(rtb_txns_live(ts), 0);
    ck_assert_int_eq(F.ncalls, 0);     /* too late to call anybody */
    ck_assert_int_eq(F.npublished, 1); /* and nothing published twice */
}
END_TEST

START_TEST(profile_lookup_refused_uses_default_at_once) {
    F.profile_refuse = 1;
    start("r-4", NULL, T0);
    ck_assert_int_eq(F.ncalls, 1); /* default profile: adv-d, called at once */
    answer_bid(F.calls[0], "r-4", "3", T0 + 3 * MS);
    ck_assert_int_eq(F.status[0], PROTO_STATUS_SUCCESS);
    ck_assert_int_eq(F.profile_failed[0], 1);
    ck_assert_int_eq(F.profile_missed[0], 0); /* Redis down: not cached */
    ck_assert_int_eq(F.clearing[0], 1000000); /* single bid: the floor */
}
END_TEST

START_TEST(unreadable_profile_is_the_default_not_a_failure) {
    start("r-5", NULL, T0);
    profile_hit(0, "[1,2]", T0 + 1 * MS);
    ck_assert_int_eq(F.ncalls, 1);
    ck_assert_str_eq(F.calls[0]->bidder->id, "adv-d");
    answer(F.calls[0], 204, "", T0 + 2 * MS);
    ck_assert_int_eq(F.profile_failed[0], 0);
    ck_assert_int_eq(F.profile_missed[0], 0);
}
END_TEST

/* ---- Bidding ---------------------------------------------------------------------------- */

START_TEST(deadline_first_cancels_and_counts_timeouts) {
    start("r-6", "tech", T0);
    profile_hit(0, "{}", T0 + 1 * MS);
    ck_assert_int_eq(F.ncalls, 2);
    rtb_txn_call *slow = call_to("adv-a"); /* freed with the transaction */
    answer_bid(call_to("adv-b"), "r-6", "1.5", T0 + 10 * MS);
    rtb_txns_expire(ts, T0 + 100 * MS);
    ck_assert_int_eq(F.ncancelled, 1);
    ck_assert_ptr_eq(F.cancelled[0], slow);
    cJSON *r = result(0);
    ck_assert_str_eq(str(r, "status"), "success");
    ck_assert_int_eq((int)num(r, "timeouts"), 1);
    ck_assert_int_eq((int)num(r, "bids"), 1);
    ck_assert_double_eq_tol(num(r, "latency_ms"), 100.0, 1e-9);
    cJSON_Delete(r);
    ck_assert_uint_eq(bidder("adv-a")->stats.timeouts, 1);
    ck_assert_str_eq(F.winner[0], "adv-b");
}
END_TEST

START_TEST(late_answer_after_close_changes_nothing) {
    start("r-7", "tech", T0);
    profile_hit(0, "{}", T0 + 1 * MS);
    rtb_txn_call *slow = call_to("adv-a");
    answer(call_to("adv-b"), 204, "", T0 + 2 * MS);
    rtb_txns_expire(ts, T0 + 100 * MS);
    /* The close cancelled the slow call: the transport (evhttp) then never
     * delivers its answer, so the transaction is already freed ... */
    ck_assert_int_eq(F.ncancelled, 1);
    ck_assert_ptr_eq(F.cancelled[0], slow);
    ck_assert_uint_eq(rtb_txns_live(ts), 0);
    /* ... and the result it published stays the only one: a timeout. */
    ck_assert_int_eq(F.npublished, 1);
    ck_assert_int_eq(F.status[0], PROTO_STATUS_TIMEOUT);
    /* A new auction with the same id is a new transaction, not the old one. */
    start("r-7", "tech", T0 + 120 * MS);
    ck_assert_int_eq(F.nprofiles, 2);
    rtb_txns_shutdown(ts, T0 + 121 * MS);
    ck_assert_int_eq(F.npublished, 2);
    ck_assert_str_eq(F.published_id[1], "r-7");
    rtb_txn_on_profile(F.profile_txn[1], RTB_PROFILE_ERROR, NULL, 0, T0 + 122 * MS);
}
END_TEST

START_TEST(errors_and_bids_below_floor) {
    start("r-8", "tech", T0);
    profile_hit(0, "{\"interests\":[\"default-tag\"]}", T0 + 1 * MS);
    ck_assert_int_eq(F.ncalls, 3);
    answer(call_to("adv-a"), 500, "oops", T0 + 2 * MS);
    answer(call_to("adv-b"), 200, "{\"id\":\"wrong\"}", T0 + 3 * MS);
    answer_bid(call_to("adv-d"), "r-8", "0.5", T0 + 4 * MS); /* under the 1.00 floor */
    cJSON *r = result(0);
    ck_assert_str_eq(str(r, "status"), "no_bid");
    ck_assert_int_eq((int)num(r, "errors"), 2);
    ck_assert_int_eq((int)num(r, "bids"), 1); /* a well-formed bid, never a winner */
    cJSON_Delete(r);
    ck_assert_uint_eq(bidder("adv-a")->stats.errors, 1);
    ck_assert_uint_eq(bidder("adv-b")->stats.errors, 1);
}
END_TEST

START_TEST(call_refused_at_start_is_a_bidder_error) {
    F.call_refuse = 1;
    start("r-9", "tech", T0);
    profile_hit(0, "{}", T0 + 1 * MS);
    /* Both calls failed at once: the auction closes without waiting. */
    ck_assert_int_eq(F.npublished, 1);
    cJSON *r = result(0);
    ck_assert_str_eq(str(r, "status"), "no_bid");
    ck_assert_int_eq((int)num(r, "bidders"), 2);
    ck_assert_int_eq((int)num(r, "errors"), 2);
    cJSON_Delete(r);
    ck_assert_uint_eq(bidder("adv-a")->stats.calls, 1);
    ck_assert_uint_eq(bidder("adv-a")->stats.errors, 1);
}
END_TEST

START_TEST(transport_failures_are_bidder_errors) {
    start("r-10", "tech", T0);
    profile_hit(0, "{}", T0 + 1 * MS);
    rtb_call_result big = {.status = RTB_CALL_BODY_TOO_LARGE, .body = ""};
    rtb_call_result gone = {.status = RTB_CALL_CONNECT, .body = ""};
    rtb_txn_on_answer(call_to("adv-a"), &big, T0 + 2 * MS);
    rtb_txn_on_answer(call_to("adv-b"), &gone, T0 + 3 * MS);
    ck_assert_int_eq(F.status[0], PROTO_STATUS_NO_BID);
    cJSON *r = result(0);
    ck_assert_int_eq((int)num(r, "errors"), 2);
    cJSON_Delete(r);
}
END_TEST

/* ---- Shutdown and publishing -------------------------------------------------------------- */

START_TEST(drain_mid_auction_publishes_and_cancels) {
    start("r-11", "tech", T0);
    profile_hit(0, "{}", T0 + 1 * MS);
    answer_bid(call_to("adv-a"), "r-11", "4", T0 + 3 * MS);
    rtb_txn_call *slow = call_to("adv-b"); /* freed with the transaction */
    start("r-12", NULL, T0 + 4 * MS);      /* still waiting for its profile */
    rtb_txns_shutdown(ts, T0 + 5 * MS);
    ck_assert_int_eq(F.npublished, 2);
    ck_assert_int_eq(F.status[0], PROTO_STATUS_SUCCESS); /* r-11: the bid that came wins */
    ck_assert_int_eq(F.ncancelled, 1);
    ck_assert_ptr_eq(F.cancelled[0], slow);
    ck_assert_int_eq(F.status[1], PROTO_STATUS_TIMEOUT); /* r-12: closed in PROFILE */
    ck_assert_uint_eq(rtb_txns_open(ts), 0);
    ck_assert_uint_eq(rtb_txns_live(ts), 1); /* r-12's GET is out */
    rtb_txn_on_profile(F.profile_txn[1], RTB_PROFILE_ERROR, NULL, 0, T0 + 6 * MS);
}
END_TEST

START_TEST(publish_refused_still_closes_and_frees) {
    F.publish_refuse = 1;
    start("r-13", "tech", T0);
    profile_hit(0, "{}", T0 + 1 * MS);
    answer_bid(call_to("adv-a"), "r-13", "2", T0 + 2 * MS);
    answer(call_to("adv-b"), 204, "", T0 + 3 * MS);
    ck_assert_int_eq(F.noutcomes, 1);
    ck_assert_int_eq(F.out_published[0], 0);
    ck_assert_int_eq(F.status[0], PROTO_STATUS_SUCCESS); /* counted, notices still due */
    ck_assert_uint_eq(F.nnotices[0], 1);
}
END_TEST

START_TEST(deadlines_expire_in_order_with_one_wake_up_each) {
    start("a", NULL, T0);
    start("b", NULL, T0 + 10 * MS);
    start("c", NULL, T0 + 20 * MS);
    ck_assert_int_eq(F.nwakes, 1); /* later deadlines need no new wake-up */
    rtb_txns_expire(ts, T0 + 100 * MS);
    ck_assert_int_eq(F.npublished, 1);
    ck_assert_str_eq(F.published_id[0], "a");
    ck_assert_int_eq(F.nwakes, 2);
    ck_assert_int_eq(F.wakes[1], T0 + 110 * MS);
    rtb_txns_expire(ts, T0 + 125 * MS); /* late wake-up: both due */
    ck_assert_int_eq(F.npublished, 3);
    ck_assert_str_eq(F.published_id[2], "c");
    for (int k = 0; k < 3; k++)
        rtb_txn_on_profile(F.profile_txn[k], RTB_PROFILE_MISS, NULL, 0, T0 + 130 * MS);
}
END_TEST

START_TEST(no_eligible_bidder_is_a_no_bid_at_once) {
    start("r-14", NULL, T0);
    profile_hit(0, "{\"interests\":[\"cooking\"]}", T0 + 1 * MS);
    ck_assert_int_eq(F.ncalls, 0);
    ck_assert_int_eq(F.npublished, 1);
    ck_assert_int_eq(F.status[0], PROTO_STATUS_NO_BID);
}
END_TEST

/* SPEC 14: spend is the exact sum of clearing prices / 1000, not the sum of
 * per-win floors (1000 wins at 2.523273 used to lose 273 micros). */
START_TEST(spend_is_exact_over_a_thousand_wins) {
    rtb_bidder *b = bidder("adv-a");
    for (int i = 0; i < 1000; i++)
        rtb_bidder_count_win(b, 2523273);
    ck_assert_uint_eq(b->stats.wins, 1000);
    ck_assert_uint_eq(b->stats.spend_cpm_micros, 2523273000ULL);
    ck_assert_uint_eq(rtb_bidder_spend_micros(&b->stats), 2523273ULL);
    ck_assert_uint_ne(rtb_bidder_spend_micros(&b->stats), 1000 * (2523273ULL / 1000));
}
END_TEST

/* Auctions r-k0 .. r-(k1-1), 10 ms apart, for a user with `profile` and
 * the context interest "tech"; each calls one bidder (`want`, unless NULL),
 * which answers no-bid: the auction closes, and its calls are gone. */
static void one_call_auctions(int k0, int k1, const char *profile, const char *want) {
    for (int k = k0; k < k1; k++) {
        char id[16];
        snprintf(id, sizeof id, "r-%d", k);
        start(id, "tech", T0 + k * 10 * MS);
        profile_hit(k, profile, T0 + (k * 10 + 1) * MS);
        ck_assert_int_eq(F.ncalls, k + 1);
        if (want) ck_assert_str_eq(F.calls[k]->bidder->id, want);
        answer(F.calls[k], 204, "", T0 + (k * 10 + 2) * MS);
    }
}

/* Spend all of the budget of `b` (2.00 a day) today, WALL0's UTC day. */
static void spend_all(rtb_bidder *b) {
    rtb_budget_set(&b->budget, 2000000, PROTO_PACING_ASAP);
    ck_assert_int_eq(rtb_budget_win(&b->budget, 2000000000, WALL0), rtb_budget_day(WALL0));
}

/* SPEC 16: an advertiser whose day's budget is spent is not called, and is
 * counted as skipped for its budget; the next UTC day (the wall clock the
 * transport gives) calls it again. */
START_TEST(budget_spent_is_skipped_until_the_next_day) {
    rtb_bidder *b = bidder("adv-b");
    spend_all(b);
    start("r-1", "tech", T0);
    profile_hit(0, "{\"interests\":[]}", T0 + 1 * MS);
    ck_assert_int_eq(F.ncalls, 1);
    ck_assert_str_eq(F.calls[0]->bidder->id, "adv-a");
    ck_assert_uint_eq(b->stats.skipped[RTB_SKIP_BUDGET], 1);
    ck_assert_uint_eq(b->stats.calls, 0);
    answer(call_to("adv-a"), 204, "", T0 + 2 * MS);
    cJSON *r = result(0);
    ck_assert_int_eq((int)num(r, "skipped"), 1);
    ck_assert_int_eq((int)num(r, "bidders"), 1);
    cJSON_Delete(r);
    ck_assert_str_eq(rtb_skip_reason_str(RTB_SKIP_BUDGET), "budget");

    /* The next UTC day: called again. */
    F.wall_us = (WALL0 / RTB_BUDGET_DAY_US + 1) * RTB_BUDGET_DAY_US;
    start("r-2", "tech", T0 + 10 * MS);
    profile_hit(1, "{\"interests\":[]}", T0 + 11 * MS);
    ck_assert_int_eq(F.ncalls, 3);
    ck_assert_uint_eq(b->stats.skipped[RTB_SKIP_BUDGET], 1);
    ck_assert_uint_eq(b->stats.calls, 1);
    answer(F.calls[1], 204, "", T0 + 12 * MS);
    answer(F.calls[2], 204, "", T0 + 12 * MS);
    ck_assert_int_eq(F.npublished, 2);
    r = result(1);
    ck_assert_int_eq((int)num(r, "skipped"), 0);
    ck_assert_int_eq((int)num(r, "bidders"), 2);
    cJSON_Delete(r);
}
END_TEST

/* SPEC 3.3 and 16: with room for one bidder (auction.max_bidders 1) and
 * two eligible, the choice rotates between them; when it falls on the one
 * whose budget is spent, that one is skipped and the other is called in its
 * place, so every auction has a bidder. */
START_TEST(budget_spent_leaves_its_place_to_the_next) {
    cfg.auction.max_bidders = 1;
    rtb_bidder *a = bidder("adv-a"), *b = bidder("adv-b");
    spend_all(b);
    one_call_auctions(0, 4, "{\"interests\":[]}", "adv-a");
    for (int k = 0; k < 4; k++) {
        cJSON *r = result(k);
        ck_assert_int_eq((int)num(r, "bidders"), 1);
        cJSON_Delete(r);
    }
    ck_assert_uint_eq(a->stats.calls, 4);
    ck_assert_uint_eq(b->stats.calls, 0);
    /* Round robin: each auction after the first starts at adv-b, where
     * the one before stopped, and passes over it. */
    ck_assert_uint_eq(b->stats.skipped[RTB_SKIP_BUDGET], 3);

    /* The next UTC day adv-b has its budget again and its share back. */
    F.wall_us = (WALL0 / RTB_BUDGET_DAY_US + 1) * RTB_BUDGET_DAY_US;
    one_call_auctions(4, 8, "{\"interests\":[]}", NULL);
    ck_assert_uint_eq(a->stats.calls, 6);
    ck_assert_uint_eq(b->stats.calls, 2);
}
END_TEST

/* SPEC 3.3 ("an equal share over time"): with three eligible, room for one,
 * and the middle one's budget spent, the two others take turns. Counting
 * places from a rotating start instead, the one after the spent one would
 * take its place every time: adv-d called in 4 of 6 auctions, adv-a in 2. */
START_TEST(spent_budget_place_goes_round_robin) {
    cfg.auction.max_bidders = 1;
    rtb_bidder *a = bidder("adv-a"), *b = bidder("adv-b"), *d = bidder("adv-d");
    spend_all(b);
    one_call_auctions(0, 6, "{\"interests\":[\"default-tag\"]}", NULL);
    ck_assert_uint_eq(b->stats.calls, 0);
    ck_assert_uint_eq(a->stats.calls, 3);
    ck_assert_uint_eq(d->stats.calls, 3);
}
END_TEST

/* ---- Matching (SPEC 3.3, 15) -------------------------------------------------------- */

#define MATCH_ADVS 40

static proto_config mcfg;
static rtb_registry *mreg;

static void match_setup(void) {
    char err[256];
    const char *json = "{\"profiles\":{\"default\":{\"interests\":[\"d\"]}}}";
    ck_assert_int_eq(proto_config_defaults(&mcfg), PROTO_OK);
    ck_assert_msg(proto_config_parse(&mcfg, json, strlen(json), err, sizeof(err)) == PROTO_OK, "%s",
                  err);
    mreg = rtb_registry_new(&mcfg, NULL);
    ck_assert_ptr_nonnull(mreg);
}

static void match_teardown(void) {
    rtb_registry_free(mreg);
    proto_config_free(&mcfg);
}

/* Make the registry's advertisers adv-0 .. adv-(n-1), advertiser i with the
 * interests interests[i] (raw JSON arrays). */
static void apply_advertisers(const char *const *interests, size_t n) {
    store_entry *e = calloc(n, sizeof(*e));
    char(*ids)[16] = calloc(n, sizeof(*ids));
    char **values = calloc(n, sizeof(*values));
    ck_assert(e && ids && values);
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof(ids[i]), "adv-%zu", i);
        size_t len = strlen(interests[i]) + 128;
        values[i] = malloc(len);
        ck_assert_ptr_nonnull(values[i]);
        snprintf(values[i], len, "{\"interests\":%s,\"endpoint\":\"http://127.0.0.1:9/bid\"}",
                 interests[i]);
        e[i] = (store_entry){.id = ids[i], .value = values[i], .len = strlen(values[i])};
    }
    rtb_registry_apply(mreg, e, n);
    ck_assert_uint_eq(rtb_registry_active(mreg), n);
    for (size_t i = 0; i < n; i++)
        free(values[i]);
    free(values);
    free(ids);
    free(e);
}

/* The ids chosen for a user with profile interests `user` and request
 * interests `context` (raw JSON arrays, or NULL), joined by spaces in
 * registry order; room for every advertiser, so no rotation. */
static void chosen_ids(const char *user, const char *context, char *out, size_t len) {
    cJSON *u = user ? cJSON_Parse(user) : NULL, *c = context ? cJSON_Parse(context) : NULL;
    ck_assert(!user || u);
    ck_assert(!context || c);
    rtb_bidder *chosen[MATCH_ADVS + 8];
    size_t n = rtb_registry_choose(mreg, u, c, chosen, MATCH_ADVS + 8, MATCH_ADVS + 8);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t at = strlen(out);
        snprintf(out + at, len - at, "%s%s", i ? " " : "", chosen[i]->id);
    }
    cJSON_Delete(u);
    cJSON_Delete(c);
}

START_TEST(match_rules) {
    const char *advs[] = {"[]", "[\"tech\"]", "[\"sports\",\"tech\"]", "[\"Tech\"]",
                          "[\"cooking\",\"travel\",\"cars\"]"};
    apply_advertisers(advs, 5);
    char ids[256];
    /* Empty interests match every user, also one with none at all. */
    chosen_ids(NULL, NULL, ids, sizeof(ids));
    ck_assert_str_eq(ids, "adv-0");
    chosen_ids("[]", "[]", ids, sizeof(ids));
    ck_assert_str_eq(ids, "adv-0");
    /* The profile's interests count, and so do user_context.interests. */
    chosen_ids("[\"tech\"]", NULL, ids, sizeof(ids));
    ck_assert_str_eq(ids, "adv-0 adv-1 adv-2");
    chosen_ids(NULL, "[\"tech\"]", ids, sizeof(ids));
    ck_assert_str_eq(ids, "adv-0 adv-1 adv-2");
    chosen_ids("[\"sports\"]", "[\"cars\"]", ids, sizeof(ids));
    ck_assert_str_eq(ids, "adv-0 adv-2 adv-4");
    /* Exact strings: case counts, a prefix is not a match. */
    chosen_ids("[\"TECH\",\"tec\",\"techs\"]", NULL, ids, sizeof(ids));
    ck_assert_str_eq(ids, "adv-0");
    chosen_ids(NULL, "[\"Tech\"]", ids, sizeof(ids));
    ck_assert_str_eq(ids, "adv-0 adv-3");
    /* Repeats and non-strings change nothing. */
    chosen_ids("[\"travel\",\"travel\",1,null,{\"travel\":1}]", "[\"travel\"]", ids, sizeof(ids));
    ck_assert_str_eq(ids, "adv-0 adv-4");
    /* One auction's interests do not stay for the next. */
    chosen_ids(NULL, "[\"sports\"]", ids, sizeof(ids));
    ck_assert_str_eq(ids, "adv-0 adv-2");
    chosen_ids("[\"nothing\"]", NULL, ids, sizeof(ids));
    ck_assert_str_eq(ids, "adv-0");
}
END_TEST

START_TEST(match_follows_registry_updates) {
    const char *before[] = {"[\"tech\"]", "[\"sports\"]"};
    apply_advertisers(before, 2);
    char ids[256];
    chosen_ids("[\"tech\"]", NULL, ids, sizeof(ids));
    ck_assert_str_eq(ids, "adv-0");
    const char *after[] = {"[\"cars\"]", "[\"tech\",\"sports\"]"};
    apply_advertisers(after, 2);
    chosen_ids("[\"tech\"]", NULL, ids, sizeof(ids));
    ck_assert_str_eq(ids, "adv-1");
    chosen_ids("[\"cars\"]", NULL, ids, sizeof(ids));
    ck_assert_str_eq(ids, "adv-0");
}
END_TEST

/* splitmix64, for reproducible random users and advertisers. */
static uint64_t rnd(uint64_t *s) {
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* A JSON array of `n` interests drawn from a pool of `pool` names. */
static void random_interests(uint64_t *seed, size_t n, size_t pool, char *out, size_t len) {
    size_t at = (size_t)snprintf(out, len, "[");
    for (size_t i = 0; i < n; i++)
        at += (size_t)snprintf(out + at, len - at, "%s\"i%llu\"", i ? "," : "",
                               (unsigned long long)(rnd(seed) % pool));
    snprintf(out + at, len - at, "]");
}

/* The rule itself (SPEC 3.3): some bidder interest equals some user
 * interest, profile or request; no interests match everyone. */
static int rule_matches(const rtb_bidder *b, const cJSON *user, const cJSON *context) {
    if (b->ninterests == 0) return 1;
    for (size_t i = 0; i < b->ninterests; i++) {
        const cJSON *lists[2] = {user, context}, *it;
        for (int l = 0; l < 2; l++)
            cJSON_ArrayForEach(it, lists[l]) {
                if (cJSON_IsString(it) && strcmp(it->valuestring, b->interests[i]) == 0) return 1;
            }
    }
    return 0;
}

START_TEST(match_agrees_with_the_rule_on_random_users) {
    uint64_t seed = 42;
    static char interests[MATCH_ADVS][4096];
    const char *advs[MATCH_ADVS];
    for (size_t i = 0; i < MATCH_ADVS; i++) {
        random_interests(&seed, i % 7 == 0 ? 0 : rnd(&seed) % 64 + 1, 400, interests[i], 4096);
        advs[i] = interests[i];
    }
    apply_advertisers(advs, MATCH_ADVS);
    int hits = 0;
    for (int round = 0; round < 500; round++) {
        char u[4096], c[4096];
        random_interests(&seed, rnd(&seed) % 65, 400, u, sizeof(u));
        random_interests(&seed, rnd(&seed) % 65, 400, c, sizeof(c));
        cJSON *uj = cJSON_Parse(u), *cj = cJSON_Parse(c);
        rtb_bidder *chosen[MATCH_ADVS];
        size_t n = rtb_registry_choose(mreg, round % 3 == 1 ? NULL : uj, round % 3 == 2 ? NULL : cj,
                                       chosen, MATCH_ADVS, MATCH_ADVS);
        size_t k = 0;
        for (size_t i = 0; i < rtb_registry_count(mreg); i++) {
            rtb_bidder *b = rtb_registry_at(mreg, i);
            if (!rule_matches(b, round % 3 == 1 ? NULL : uj, round % 3 == 2 ? NULL : cj)) continue;
            ck_assert_msg(k < n && chosen[k] == b, "round %d: %s should be chosen", round, b->id);
            k++;
            hits += b->ninterests > 0;
        }
        ck_assert_msg(k == n, "round %d: %zu chosen, the rule says %zu", round, n, k);
        cJSON_Delete(uj);
        cJSON_Delete(cj);
    }
    ck_assert_int_gt(hits, 500); /* the draw does exercise matches by interest */
}
END_TEST

/* A user with more interests than the registry made room for (a default
 * profile may have any number): the set grows and nothing is missed. */
START_TEST(match_with_many_user_interests) {
    const char *advs[] = {"[\"i2999\"]", "[\"i3000\"]"};
    apply_advertisers(advs, 2);
    char *many = malloc(3000 * 10 + 8);
    ck_assert_ptr_nonnull(many);
    size_t at = (size_t)sprintf(many, "[");
    for (int i = 0; i < 3000; i++)
        at += (size_t)sprintf(many + at, "%s\"i%d\"", i ? "," : "", i);
    sprintf(many + at, "]");
    char ids[256];
    chosen_ids(many, NULL, ids, sizeof(ids));
    ck_assert_str_eq(ids, "adv-0");
    chosen_ids(NULL, many, ids, sizeof(ids));
    ck_assert_str_eq(ids, "adv-0");
    chosen_ids("[\"i3000\"]", NULL, ids, sizeof(ids)); /* and small again */
    ck_assert_str_eq(ids, "adv-1");
    free(many);
}
END_TEST

/* ---- Keyed hash (SPEC 15) ------------------------------------------------------------ */

/* rtb_hash_str is SipHash-2-4: the reference vector of its paper (key
 * 00..0f, empty message; Aumasson and Bernstein, appendix A). */
START_TEST(hash_is_siphash_2_4) {
    rtb_hash_key k;
    for (int i = 0; i < 16; i++)
        k.bytes[i] = (unsigned char)i;
    uint64_t h = rtb_hash_str(&k, "");
    unsigned char out[8], want[8] = {0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72};
    memcpy(out, &h, sizeof(out));
    ck_assert_mem_eq(out, want, 8);
}
END_TEST

/* Every key is drawn afresh: two keys differ, and so do the hashes of one
 * string under them; one key always gives the same hash. */
START_TEST(hash_keys_are_random) {
    rtb_hash_key a, b;
    ck_assert_int_eq(rtb_hash_key_init(&a), 0);
    ck_assert_int_eq(rtb_hash_key_init(&b), 0);
    ck_assert(memcmp(a.bytes, b.bytes, sizeof(a.bytes)) != 0);
    ck_assert(rtb_hash_str(&a, "r-1") != rtb_hash_str(&b, "r-1"));
    ck_assert(rtb_hash_str(&a, "r-1") == rtb_hash_str(&a, "r-1"));
}
END_TEST

START_TEST(hash_set_reuse_and_growth) {
    rtb_hash_key k;
    ck_assert_int_eq(rtb_hash_key_init(&k), 0);
    rtb_hash_set s;
    rtb_hash_set_init(&s);
    ck_assert(!rtb_hash_set_has(&s, "a", rtb_hash_str(&k, "a"))); /* no room yet: empty */
    ck_assert_int_eq(rtb_hash_set_reset(&s, 2), 0);
    rtb_hash_set_add(&s, "a", rtb_hash_str(&k, "a"));
    rtb_hash_set_add(&s, "a", rtb_hash_str(&k, "a"));
    ck_assert_uint_eq(s.n, 1);
    ck_assert(rtb_hash_set_has(&s, "a", rtb_hash_str(&k, "a")));
    ck_assert(!rtb_hash_set_has(&s, "b", rtb_hash_str(&k, "b")));
    /* A string with another's hash is still another string. */
    ck_assert(!rtb_hash_set_has(&s, "b", rtb_hash_str(&k, "a")));
    size_t slots = s.mask + 1;
    /* Thousands of resets: each empties the set, none allocates. */
    for (int i = 0; i < 5000; i++) {
        ck_assert_int_eq(rtb_hash_set_reset(&s, 2), 0);
        ck_assert(!rtb_hash_set_has(&s, "a", rtb_hash_str(&k, "a")));
        rtb_hash_set_add(&s, i % 2 ? "a" : "b", rtb_hash_str(&k, i % 2 ? "a" : "b"));
    }
    ck_assert_uint_eq(s.mask + 1, slots);
    /* Room for more: it grows, and holds them all. */
    static char names[1000][8];
    ck_assert_int_eq(rtb_hash_set_reset(&s, 1000), 0);
    ck_assert_uint_ge(s.mask + 1, 2000);
    for (int i = 0; i < 1000; i++) {
        snprintf(names[i], sizeof(names[i]), "n%d", i);
        rtb_hash_set_add(&s, names[i], rtb_hash_str(&k, names[i]));
    }
    ck_assert_uint_eq(s.n, 1000);
    for (int i = 0; i < 1000; i++)
        ck_assert(rtb_hash_set_has(&s, names[i], rtb_hash_str(&k, names[i])));
    ck_assert(!rtb_hash_set_has(&s, "n1000", rtb_hash_str(&k, "n1000")));
    rtb_hash_set_free(&s);
}
END_TEST

/* ---- Several impressions, deals, currency (SPEC 17) ------------------------------- */

#define TWO_IMPS                                                                                   \
    "{\"request_id\":\"m-1\",\"user_id\":\"u-1\",\"imps\":["                                       \
    "{\"id\":\"a\",\"ad_slot_id\":\"s-a\",\"floor_price\":1,\"banner\":{\"w\":300,\"h\":250}},"    \
    "{\"id\":\"b\",\"ad_slot_id\":\"s-b\",\"floor_price\":1,\"banner\":{\"w\":728,\"h\":90}}]}"

START_TEST(each_imp_is_its_own_auction) {
    start_payload(TWO_IMPS, T0);
    profile_hit(0, "{\"interests\":[\"tech\"]}", T0 + 1 * MS);
    ck_assert_int_eq(F.ncalls, 2);
    ck_assert_ptr_nonnull(strstr(F.call_body[0], "\"imp\":[{\"id\":\"a\""));
    ck_assert_ptr_nonnull(strstr(F.call_body[0], "{\"id\":\"b\""));
    answer_bids(call_to("adv-a"), "m-1", NULL,
                "{\"id\":\"x1\",\"impid\":\"a\",\"price\":3,\"nurl\":\"http://n/a-a\"},"
                "{\"id\":\"x2\",\"impid\":\"b\",\"price\":1.5,\"lurl\":\"http://l/a-b\"}",
                T0 + 3 * MS);
    answer_bids(call_to("adv-b"), "m-1", NULL,
                "{\"id\":\"y1\",\"impid\":\"a\",\"price\":2,\"lurl\":\"http://l/b-a\"},"
                "{\"id\":\"y2\",\"impid\":\"b\",\"price\":2.5,\"nurl\":\"http://n/b-b\"}",
                T0 + 4 * MS);
    ck_assert_int_eq(F.npublished, 1);
    cJSON *r = result(0);
    ck_assert_str_eq(str(r, "status"), "success");
    ck_assert_int_eq((int)num(r, "bids"), 2); /* bidders with a well-formed bid */
    const cJSON *imps = cJSON_GetObjectItemCaseSensitive(r, "imps");
    ck_assert_int_eq(cJSON_GetArraySize(imps), 2);
    const cJSON *ia = cJSON_GetArrayItem(imps, 0), *ib = cJSON_GetArrayItem(imps, 1);
    ck_assert_str_eq(str(ia, "imp_id"), "a");
    ck_assert_str_eq(str(cJSON_GetObjectItemCaseSensitive(ia, "winner"), "advertiser_id"), "adv-a");
    ck_assert_double_eq_tol(num(cJSON_GetObjectItemCaseSensitive(ia, "winner"), "clearing_price"),
                            2.01, 1e-9);
    ck_assert_str_eq(str(ib, "imp_id"), "b");
    ck_assert_str_eq(str(cJSON_GetObjectItemCaseSensitive(ib, "winner"), "advertiser_id"), "adv-b");
    ck_assert_double_eq_tol(num(cJSON_GetObjectItemCaseSensitive(ib, "winner"), "clearing_price"),
                            1.51, 1e-9);
    /* the top-level winner is the first imp's */
    ck_assert_str_eq(str(cJSON_GetObjectItemCaseSensitive(r, "winner"), "advertiser_id"), "adv-a");
    cJSON_Delete(r);
    ck_assert_uint_eq(F.nwins[0], 2);
    ck_assert_str_eq(F.win_imp[0][0], "a");
    ck_assert_str_eq(F.win_imp[0][1], "b");
    /* one notice per bid: the winners' nurls, then the losers' lurls, each
     * with its own imp and that imp's price */
    ck_assert_uint_eq(F.nnotices[0], 4);
    ck_assert_str_eq(F.notice_url[0][0], "http://n/a-a");
    ck_assert_str_eq(F.notice_imp[0][0], "a");
    ck_assert_int_eq(F.notice_price[0][0], 2010000);
    ck_assert_str_eq(F.notice_url[0][1], "http://n/b-b");
    ck_assert_str_eq(F.notice_imp[0][1], "b");
    ck_assert_int_eq(F.notice_price[0][1], 1510000);
    ck_assert_str_eq(F.notice_url[0][2], "http://l/a-b");
    ck_assert_str_eq(F.notice_imp[0][2], "b");
    ck_assert_str_eq(F.notice_url[0][3], "http://l/b-a");
    ck_assert_str_eq(F.notice_imp[0][3], "a");
}
END_TEST

/* A deal bid beats a higher open bid and clears at its deal's floor when
 * it is the only deal bid; the result names the deal (SPEC 17). */
START_TEST(deal_bids_come_first) {
    start_payload("{\"request_id\":\"d-1\",\"user_id\":\"u-1\",\"imps\":[{\"id\":\"1\","
                  "\"ad_slot_id\":\"s\",\"floor_price\":1,\"banner\":{\"w\":300,\"h\":250},"
                  "\"pmp\":{\"private_auction\":0,\"deals\":[{\"id\":\"d1\",\"bidfloor\":3,"
                  "\"wseat\":[\"adv-a\"]}]}}]}",
                  T0);
    profile_hit(0, "{\"interests\":[\"tech\"]}", T0 + 1 * MS);
    answer_bids(call_to("adv-a"), "d-1", NULL,
                "{\"id\":\"x\",\"impid\":\"1\",\"price\":3.5,\"dealid\":\"d1\"}", T0 + 2 * MS);
    answer_bids(call_to("adv-b"), "d-1", NULL, "{\"id\":\"y\",\"impid\":\"1\",\"price\":5}",
                T0 + 3 * MS);
    cJSON *r = result(0);
    const cJSON *imp = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "imps"), 0);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(imp, "winner");
    ck_assert_str_eq(str(w, "advertiser_id"), "adv-a");
    ck_assert_str_eq(str(w, "deal_id"), "d1");
    ck_assert_double_eq_tol(num(w, "clearing_price"), 3.0, 1e-9);
    cJSON_Delete(r);
    ck_assert_str_eq(F.win_deal[0][0], "d1");
}
END_TEST

/* Bids in another currency than the request's are converted exactly with
 * currency:rates; without a rate such a bid is refused alone (SPEC 17). */
START_TEST(bids_are_converted_to_the_request_currency) {
    auction_rate rows[4];
    auction_rates rates;
    auction_rates_init(&rates, rows, 4);
    ck_assert_int_eq(auction_rates_set(&rates, "USD", "EUR", 900000000000), AUCTION_OK); /* 0.9 */
    rtb_txns_set_rates(ts, &rates);
    const char *eur = "{\"request_id\":\"c-1\",\"user_id\":\"u-1\",\"cur\":\"EUR\",\"imps\":["
                      "{\"id\":\"1\",\"ad_slot_id\":\"s\",\"floor_price\":1,"
                      "\"banner\":{\"w\":300,\"h\":250}}]}";
    start_payload(eur, T0);
    profile_hit(0, "{\"interests\":[\"tech\"]}", T0 + 1 * MS);
    ck_assert_ptr_nonnull(strstr(F.call_body[0], "\"cur\":[\"EUR\"]"));
    /* 2.00 USD = 1.80 EUR loses to 1.90 EUR, and sets its price: 1.81 */
    answer_bids(call_to("adv-a"), "c-1", NULL, "{\"id\":\"x\",\"impid\":\"1\",\"price\":2}",
                T0 + 2 * MS);
    answer_bids(call_to("adv-b"), "c-1", "EUR",
                "{\"id\":\"y\",\"impid\":\"1\",\"price\":1.9,\"nurl\":\"http://n/y\"}",
                T0 + 3 * MS);
    cJSON *r = result(0);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "imps"), 0), "winner");
    ck_assert_str_eq(str(w, "advertiser_id"), "adv-b");
    ck_assert_double_eq_tol(num(w, "clearing_price"), 1.81, 1e-9);
    cJSON_Delete(r);
    ck_assert_str_eq(F.notice_cur[0][0], "EUR");

    /* No rate from GBP: that bid is refused, the other wins alone. */
    unsigned long long refused = rtb_txns_counts(ts)->currency;
    start_payload("{\"request_id\":\"c-2\",\"user_id\":\"u-1\",\"cur\":\"EUR\",\"imps\":["
                  "{\"id\":\"1\",\"ad_slot_id\":\"s\",\"floor_price\":1,"
                  "\"banner\":{\"w\":300,\"h\":250}}]}",
                  T0 + 10 * MS);
    profile_hit(1, "{\"interests\":[\"tech\"]}", T0 + 11 * MS);
    answer_bids(F.calls[2]->bidder == bidder("adv-a") ? F.calls[2] : F.calls[3], "c-2", "GBP",
                "{\"id\":\"x\",\"impid\":\"1\",\"price\":9}", T0 + 12 * MS);
    answer_bids(F.calls[2]->bidder == bidder("adv-b") ? F.calls[2] : F.calls[3], "c-2", "EUR",
                "{\"id\":\"y\",\"impid\":\"1\",\"price\":1.5}", T0 + 13 * MS);
    ck_assert_uint_eq(rtb_txns_counts(ts)->currency, refused + 1);
    r = result(1);
    w = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "imps"), 0), "winner");
    ck_assert_str_eq(str(w, "advertiser_id"), "adv-b");
    ck_assert_double_eq_tol(num(w, "clearing_price"), 1.0, 1e-9); /* alone: the floor */
    cJSON_Delete(r);
    rtb_txns_set_rates(ts, NULL);
}
END_TEST

static Suite *txn_suite(void) {
    Suite *s = suite_create("txn");
    TCase *tc = tcase_create("state machine");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, profile_hit_then_all_bidders_answer);
    tcase_add_test(tc, profile_miss_uses_default_and_asks_to_cache);
    tcase_add_test(tc, profile_late_closes_at_deadline_and_frees_on_the_reply);
    tcase_add_test(tc, profile_lookup_refused_uses_default_at_once);
    tcase_add_test(tc, unreadable_profile_is_the_default_not_a_failure);
    tcase_add_test(tc, deadline_first_cancels_and_counts_timeouts);
    tcase_add_test(tc, late_answer_after_close_changes_nothing);
    tcase_add_test(tc, errors_and_bids_below_floor);
    tcase_add_test(tc, call_refused_at_start_is_a_bidder_error);
    tcase_add_test(tc, transport_failures_are_bidder_errors);
    tcase_add_test(tc, drain_mid_auction_publishes_and_cancels);
    tcase_add_test(tc, publish_refused_still_closes_and_frees);
    tcase_add_test(tc, deadlines_expire_in_order_with_one_wake_up_each);
    tcase_add_test(tc, no_eligible_bidder_is_a_no_bid_at_once);
    tcase_add_test(tc, spend_is_exact_over_a_thousand_wins);
    tcase_add_test(tc, budget_spent_is_skipped_until_the_next_day);
    tcase_add_test(tc, budget_spent_leaves_its_place_to_the_next);
    tcase_add_test(tc, spent_budget_place_goes_round_robin);
    tcase_add_test(tc, each_imp_is_its_own_auction);
    tcase_add_test(tc, deal_bids_come_first);
    tcase_add_test(tc, bids_are_converted_to_the_request_currency);
    suite_add_tcase(s, tc);

    tc = tcase_create("matching");
    tcase_add_checked_fixture(tc, match_setup, match_teardown);
    tcase_add_test(tc, match_rules);
    tcase_add_test(tc, match_follows_registry_updates);
    tcase_add_test(tc, match_agrees_with_the_rule_on_random_users);
    tcase_add_test(tc, match_with_many_user_interests);
    suite_add_tcase(s, tc);

    tc = tcase_create("keyed hash");
    tcase_add_test(tc, hash_is_siphash_2_4);
    tcase_add_test(tc, hash_keys_are_random);
    tcase_add_test(tc, hash_set_reuse_and_growth);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(txn_suite());
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

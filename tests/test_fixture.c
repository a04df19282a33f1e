/* test_fixture.c -- proves the shared integration fixture (tests/fixture.h).
 *
 * Each test in "servers" gets a fresh env from a checked fixture: Redis
 * commands, pub/sub delivery and buffering, an MQTT QoS 1 round trip through
 * the broker to a second client, server restarts on the same port, process
 * helpers, rtb-bidder answering a SPEC 5 bid request (and SPEC 17 ones: a
 * bid per imp, deal ids, a currency, imps=first), and its notices: the
 * burl its bids carry, /bill, and notices failed or delayed on purpose (the
 * faults the exchange's retries are tested against), and its hostile
 * answers (the SPEC 15 bounds tests/test_hostile.c plays against the
 * exchange): padded headers, a body trickled a byte at a time, a huge adid,
 * any iurl. The "lifecycle"
 * tests build their own envs to prove that nothing outlives them: neither
 * after fx_stop nor after the test process dies without cleaning up. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/fixture.h"

static fx_env *env;

static void setup(void) {
    env = fx_start();
}

static void teardown(void) {
    fx_stop(env);
    env = NULL;
}

/* ---- a small MQTT subscriber (the test's own second client) ------------ */

typedef struct mqtt_sub {
    struct mosquitto *mosq;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int subscribed;
    int count;
    char topic[256];
    char payload[1024];
    int qos;
} mqtt_sub;

static void sub_on_connect(struct mosquitto *mosq, void *obj, int rc) {
    (void)obj;
    if (rc == 0) mosquitto_subscribe(mosq, NULL, "rtb/requests/+", 1);
}

static void sub_on_subscribe(struct mosquitto *mosq, void *obj, int mid, int n, const int *qos) {
    (void)mosq;
    (void)mid;
    mqtt_sub *s = obj;
    pthread_mutex_lock(&s->mu);
    s->subscribed = n == 1 && qos[0] == 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void sub_on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m) {
    (void)mosq;
    mqtt_sub *s = obj;
    pthread_mutex_lock(&s->mu);
    s->count++;
    snprintf(s->topic, sizeof s->topic, "%s", m->topic);
    int len =
        m->payloadlen < (int)sizeof s->payload - 1 ? m->payloadlen : (int)sizeof s->payload - 1;
    memcpy(s->payload, m->payload, (size_t)len);
    s->payload[len] = '\0';
    s->qos = m->qos;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Waits (mutex held by the caller) until *flag >= want or 5 s passed. */
static int sub_wait(mqtt_sub *s, const int *flag, int want) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    while (*flag < want) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0) break;
    }
    return *flag >= want;
}

/* ---- servers ----------------------------------------------------------- */

START_TEST(redis_set_get) {
    fx_redis_do(env, "SET %s %s", "fx:key", "hello world");
    redisReply *r = fx_redis_cmd(env, "GET %s", "fx:key");
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(r->str, "hello world");
    freeReplyObject(r);

    r = fx_redis_cmd(env, "NOSUCHCOMMAND");
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR); /* returned, not fatal */
    freeReplyObject(r);

    /* The server is ours: empty at start, on the announced port. */
    r = fx_redis_cmd(env, "CONFIG GET port");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq((int)r->elements, 2);
    ck_assert_int_eq(atoi(r->element[1]->str), fx_redis_port(env));
    freeReplyObject(r);
}
END_TEST

START_TEST(subscriber_receives_publish) {
    fx_sub *sub = fx_sub_start(env, "auction:results:*");
    fx_sub *errs = fx_sub_start(env, "auction:errors");

    redisReply *r = fx_redis_cmd(env, "PUBLISH %s %s", "auction:results:r-1",
                                 "{\"request_id\":\"r-1\",\"status\":\"no_bid\"}");
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq((int)r->integer, 1); /* exactly our subscriber */
    freeReplyObject(r);

    fx_msg *m = fx_sub_wait_for(sub, "auction:results:r-1", 2000);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m->pattern, "auction:results:*");
    cJSON *j = fx_msg_json(m);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "request_id")->valuestring, "r-1");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "no_bid");
    cJSON_Delete(j);
    fx_msg_free(m);

    /* wait_for skips ahead and buffers; next returns what was skipped. */
    fx_redis_do(env, "PUBLISH auction:results:r-2 %s", "two");
    fx_redis_do(env, "PUBLISH auction:results:r-3 %s", "three");
    m = fx_sub_wait_for(sub, "auction:results:r-3", 2000);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m->payload, "three");
    fx_msg_free(m);
    ck_assert_int_eq(fx_sub_buffered(sub), 1);
    m = fx_sub_next(sub, 0);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m->channel, "auction:results:r-2");
    ck_assert_ptr_null(fx_msg_json(m)); /* "two" is not JSON */
    fx_msg_free(m);

    /* Binary-safe payloads. */
    fx_redis_do(env, "PUBLISH auction:errors %b", "a\0b", (size_t)3);
    m = fx_sub_next(errs, 2000);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(m->payload_len, 3);
    ck_assert_int_eq(memcmp(m->payload, "a\0b", 3), 0);
    fx_msg_free(m);

    /* Timeouts are honoured. */
    int64_t t0 = fx_now_ms();
    ck_assert_ptr_null(fx_sub_next(sub, 200));
    int64_t waited = fx_now_ms() - t0;
    ck_assert_int_ge(waited, 190);
    ck_assert_int_lt(waited, 1000);
    ck_assert_ptr_null(fx_sub_wait_for(errs, "auction:nothing", 100));
    fx_sub_stop(errs); /* sub is left to fx_stop */
}
END_TEST

START_TEST(mqtt_qos1_roundtrip) {
    mqtt_sub s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    s.mosq = mosquitto_new("fx-test-sub", true, &s);
    ck_assert_ptr_nonnull(s.mosq);
    mosquitto_int_option(s.mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_connect_callback_set(s.mosq, sub_on_connect);
    mosquitto_subscribe_callback_set(s.mosq, sub_on_subscribe);
    mosquitto_message_callback_set(s.mosq, sub_on_message);

    fx_mqtt *pub = fx_mqtt_connect(env); /* runs mosquitto_lib_init */
    ck_assert_int_eq(mosquitto_connect(s.mosq, "127.0.0.1", fx_mqtt_port(env), 30),
                     MOSQ_ERR_SUCCESS);
    ck_assert_int_eq(mosquitto_loop_start(s.mosq), MOSQ_ERR_SUCCESS);
    pthread_mutex_lock(&s.mu);
    ck_assert_msg(sub_wait(&s, &s.subscribed, 1), "no SUBACK for rtb/requests/+");
    pthread_mutex_unlock(&s.mu);

    const char *body = "{\"request_id\":\"r-1\",\"user_id\":\"u-7\",\"ad_slot_id\":\"slot-9\","
                       "\"floor_price\":1.5}";
    int mid = fx_mqtt_publish(pub, "rtb/requests/x", body, strlen(body), 1);
    ck_assert_int_gt(mid, 0);

    pthread_mutex_lock(&s.mu);
    ck_assert_msg(sub_wait(&s, &s.count, 1), "subscriber got nothing");
    ck_assert_str_eq(s.topic, "rtb/requests/x");
    ck_assert_str_eq(s.payload, body);
    ck_assert_int_eq(s.qos, 1);
    pthread_mutex_unlock(&s.mu);

    /* Not matched by rtb/requests/+: never delivered. */
    fx_mqtt_publish(pub, "rtb/events/click", "{}", 2, 1);
    ck_assert_int_ge(fx_mqtt_publish_nowait(pub, "rtb/requests/y", "y", 1, 0), 0);
    ck_assert_int_eq(fx_mqtt_flush(pub, 2000), 0);
    pthread_mutex_lock(&s.mu);
    ck_assert(sub_wait(&s, &s.count, 2));
    ck_assert_str_eq(s.topic, "rtb/requests/y");
    ck_assert_int_eq(s.count, 2);
    pthread_mutex_unlock(&s.mu);

    mosquitto_disconnect(s.mosq);
    mosquitto_loop_stop(s.mosq, false);
    mosquitto_destroy(s.mosq);
    fx_mqtt_close(pub);
}
END_TEST

START_TEST(redis_restart_same_port) {
    int port = fx_redis_port(env);
    pid_t old = fx_redis_pid(env);
    fx_sub *sub = fx_sub_start(env, "auction:results:*");
    fx_redis_do(env, "SET fx:gone 1");

    fx_redis_stop(env);
    ck_assert_int_eq(fx_redis_pid(env), 0);
    ck_assert(!fx_pid_alive(old));
    redisContext *c = redisConnect("127.0.0.1", port);
    ck_assert(c == NULL || c->err); /* nobody listens */
    redisFree(c);
    ck_assert_ptr_null(fx_sub_next(sub, 100)); /* down: waits, then NULL */

    fx_redis_start(env);
    ck_assert_int_eq(fx_redis_port(env), port);
    ck_assert_int_gt(fx_redis_pid(env), 0);
    ck_assert_int_ne(fx_redis_pid(env), old);
    redisReply *r = fx_redis_cmd(env, "GET fx:gone");
    ck_assert_int_eq(r->type, REDIS_REPLY_NIL); /* no persistence */
    freeReplyObject(r);

    /* The subscriber was re-subscribed before fx_redis_start returned. */
    fx_redis_do(env, "PUBLISH auction:results:after %s", "back");
    fx_msg *m = fx_sub_wait_for(sub, "auction:results:after", 2000);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m->payload, "back");
    fx_msg_free(m);
}
END_TEST

START_TEST(mqtt_restart_same_port) {
    int port = fx_mqtt_port(env);
    pid_t old = fx_mqtt_pid(env);
    fx_mqtt *pub = fx_mqtt_connect(env);

    fx_mqtt_stop(env);
    ck_assert_int_eq(fx_mqtt_pid(env), 0);
    ck_assert(!fx_pid_alive(old));
    int64_t deadline = fx_now_ms() + 2000; /* the client notices in its own thread */
    while (fx_mqtt_wait_connected(pub, 0) == 0 && fx_now_ms() < deadline)
        fx_sleep_ms(10);
    ck_assert_int_ne(fx_mqtt_wait_connected(pub, 0), 0);

    fx_mqtt_start(env);
    ck_assert_int_eq(fx_mqtt_port(env), port);
    ck_assert_int_ne(fx_mqtt_pid(env), old);
    ck_assert_int_eq(fx_mqtt_wait_connected(pub, 5000), 0); /* reconnects by itself */
    fx_mqtt_publish(pub, "rtb/requests/again", "{}", 2, 1);
    /* pub is left to fx_stop */
}
END_TEST

START_TEST(process_helpers) {
    const char *ok[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    int st = 0;
    pid_t p = fx_spawn(env, ok, "sh.log");
    ck_assert_int_eq(fx_wait_exit(p, 5000, &st), 0);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 3);
    char *log = fx_read_file(env, "sh.log", NULL);
    ck_assert_ptr_nonnull(log);
    ck_assert_str_eq(log, "out\nerr\n");
    free(log);

    const char *slow[] = {"sleep", "30", NULL};
    p = fx_spawn(env, slow, "sleep.log");
    int64_t t0 = fx_now_ms();
    ck_assert_int_eq(fx_wait_exit(p, 100, &st), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert_int_ge(fx_now_ms() - t0, 100);
    ck_assert(fx_pid_alive(p));
    ck_assert_int_eq(fx_kill(p, SIGTERM), 0);
    ck_assert_int_eq(fx_wait_exit(p, 2000, &st), 0);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    ck_assert(kill(p, 0) != 0);

    char *path = fx_write_file(env, "conf.json", "{\"a\":1}");
    ck_assert_str_eq(path + strlen(fx_dir(env)), "/conf.json");
    free(path);

    ck_assert_int_eq(fx_http(fx_free_port(), "GET", "/", NULL, NULL, 500), -1);
}
END_TEST

static const char bid_request[] =
    "{\"id\":\"r-1\",\"at\":2,\"tmax\":95,\"cur\":[\"USD\"],"
    "\"imp\":[{\"id\":\"1\",\"tagid\":\"slot-9\",\"bidfloor\":1.5,\"bidfloorcur\":\"USD\"}],"
    "\"user\":{\"id\":\"u-7\",\"keywords\":\"tech,sports\",\"ext\":{\"ltv_score\":0.7}},"
    "\"ext\":{\"user_context\":{}}}";

/* The price of the single bid in an OpenRTB BidResponse with id r-1. */
static double bid_price(const char *body) {
    cJSON *j = cJSON_Parse(body);
    ck_assert_msg(j != NULL, "bid response is not JSON: %s", body);
    cJSON *id = cJSON_GetObjectItem(j, "id");
    ck_assert(cJSON_IsString(id));
    ck_assert_str_eq(id->valuestring, "r-1");
    cJSON *seat = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "seatbid"), 0);
    cJSON *bid = cJSON_GetArrayItem(cJSON_GetObjectItem(seat, "bid"), 0);
    cJSON *price = cJSON_GetObjectItem(bid, "price");
    ck_assert_msg(cJSON_IsNumber(price), "no seatbid[0].bid[0].price in %s", body);
    double p = price->valuedouble;
    cJSON_Delete(j);
    return p;
}

START_TEST(bidder_answers) {
    const char *specs[] = {
        "id=adv-1,latency=0,jitter=0,nobid=0,error=0,price=fixed:2.5",
        "id=adv-2,latency=0,jitter=0,nobid=0,error=0,price=seed",
    };
    int ports[2] = {0, 0};
    pid_t pid = fx_spawn_bidder(env, specs, 2, ports);
    ck_assert_int_gt(pid, 0);
    ck_assert_int_gt(ports[0], 0);
    ck_assert_int_gt(ports[1], 0);
    ck_assert_int_ne(ports[0], ports[1]);

    char *body = NULL;
    ck_assert_int_eq(fx_http(ports[0], "POST", "/bid", bid_request, &body, 2000), 200);
    ck_assert_double_eq_tol(bid_price(body), 2.5, 1e-9);
    free(body);

    /* seed: floor x 1.2 x (1 + ltv_score) = 1.5 x 1.2 x 1.7 (SPEC 8) */
    ck_assert_int_eq(fx_http(ports[1], "POST", "/bid", bid_request, &body, 2000), 200);
    ck_assert_double_eq_tol(bid_price(body), 3.06, 0.005);
    free(body);
}
END_TEST

/* The first bid of the BidResponse in `body` (a copy, caller cJSON_Delete()s
 * it). */
static cJSON *first_bid(const char *body) {
    cJSON *j = cJSON_Parse(body);
    ck_assert_msg(j != NULL, "bid response is not JSON: %s", body);
    cJSON *seat = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "seatbid"), 0);
    cJSON *bid = cJSON_GetArrayItem(cJSON_GetObjectItem(seat, "bid"), 0);
    ck_assert_msg(cJSON_IsObject(bid), "no seatbid[0].bid[0] in %s", body);
    cJSON *copy = cJSON_Duplicate(bid, 1);
    cJSON_Delete(j);
    return copy;
}

/* POST the bid request to `port` and return its first bid. */
static cJSON *bid_from(int port) {
    char *body = NULL;
    ck_assert_int_eq(fx_http(port, "POST", "/bid", bid_request, &body, 2000), 200);
    cJSON *bid = first_bid(body);
    free(body);
    return bid;
}

/* The string member `key` of `obj`, or NULL when absent or not a string. */
static const char *str_of(const cJSON *obj, const char *key) {
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

/* GET /stats of an advertiser (caller cJSON_Delete()s). */
static cJSON *bidder_stats(int port) {
    char *body = NULL;
    ck_assert_int_eq(fx_http(port, "GET", "/stats", NULL, &body, 2000), 200);
    cJSON *j = cJSON_Parse(body);
    ck_assert_msg(cJSON_IsObject(j), "/stats is not a JSON object: %s", body);
    free(body);
    return j;
}

/* A counter in a /stats document; fails the test when it is missing. */
static int stat_of(const cJSON *stats, const char *key) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(stats, key);
    ck_assert_msg(cJSON_IsNumber(n), "/stats has no number '%s'", key);
    return (int)n->valuedouble;
}

/* /stats "notices" as one string "a|b|c", oldest first (caller frees). */
static char *notices_of(const cJSON *stats) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(stats, "notices"), *n;
    ck_assert(cJSON_IsArray(list));
    size_t cap = 1;
    cJSON_ArrayForEach(n, list) cap += strlen(n->valuestring) + 1;
    char *out = calloc(1, cap);
    ck_assert_ptr_nonnull(out);
    cJSON_ArrayForEach(n, list) {
        if (out[0] != '\0') strcat(out, "|");
        strcat(out, n->valuestring);
    }
    return out;
}

/* GET `path` and return its status, with the time it took in *ms. */
static int timed_get(int port, const char *path, int64_t *ms) {
    int64_t t0 = fx_now_ms();
    int status = fx_http(port, "GET", path, NULL, NULL, 5000);
    *ms = fx_now_ms() - t0;
    return status;
}

/* burl=on: the bid carries the billing notice URL on the base of nurl and
 * lurl, also with notices=off; by default it carries none. GET /bill is a
 * notice of its own, counted in bills and kept in the notices list. */
START_TEST(bidder_burl_and_bill) {
    const char *specs[] = {"id=b-on,burl=on", "id=b-off", "id=b-only,burl=on,notices=off"};
    int ports[3];
    fx_spawn_bidder(env, specs, 3, ports);

    char want[256];
    cJSON *bid = bid_from(ports[0]);
    snprintf(want, sizeof want,
             "http://127.0.0.1:%d/bill?id=${AUCTION_ID}&price=${AUCTION_PRICE}"
             "&cur=${AUCTION_CURRENCY}",
             ports[0]);
    ck_assert_pstr_eq(str_of(bid, "burl"), want);
    snprintf(want, sizeof want, "http://127.0.0.1:%d/win?id=${AUCTION_ID}&price=${AUCTION_PRICE}",
             ports[0]);
    ck_assert_pstr_eq(str_of(bid, "nurl"), want);
    cJSON_Delete(bid);

    bid = bid_from(ports[1]); /* the default: win and loss notices, no bill */
    ck_assert_ptr_null(cJSON_GetObjectItem(bid, "burl"));
    ck_assert_ptr_nonnull(str_of(bid, "nurl"));
    ck_assert_ptr_nonnull(str_of(bid, "lurl"));
    cJSON_Delete(bid);

    bid = bid_from(ports[2]); /* burl and notices are independent */
    ck_assert_ptr_nonnull(str_of(bid, "burl"));
    ck_assert_ptr_null(cJSON_GetObjectItem(bid, "nurl"));
    ck_assert_ptr_null(cJSON_GetObjectItem(bid, "lurl"));
    cJSON_Delete(bid);

    char *body = NULL;
    ck_assert_int_eq(fx_http(ports[0], "GET", "/bill?id=r-1&price=2.5&cur=USD", NULL, &body, 2000),
                     200);
    ck_assert_str_eq(body, "");
    free(body);
    ck_assert_int_eq(fx_http(ports[0], "GET", "/win?id=r-1&price=2.5", NULL, NULL, 2000), 200);
    cJSON *st = bidder_stats(ports[0]);
    ck_assert_int_eq(stat_of(st, "bills"), 1);
    ck_assert_int_eq(stat_of(st, "wins"), 1);
    ck_assert_int_eq(stat_of(st, "losses"), 0);
    ck_assert_int_eq(stat_of(st, "notices_failed"), 0);
    ck_assert_int_eq(stat_of(st, "bids"), 1); /* the fields that were there stay */
    ck_assert_int_eq(stat_of(st, "dropped"), 0);
    char *list = notices_of(st);
    ck_assert_str_eq(list, "/bill?id=r-1&price=2.5&cur=USD|/win?id=r-1&price=2.5");
    free(list);
    cJSON_Delete(st);

    st = bidder_stats(ports[1]); /* another advertiser's notices are not this one's */
    ck_assert_int_eq(stat_of(st, "bills"), 0);
    ck_assert_int_eq(stat_of(st, "wins"), 0);
    cJSON_Delete(st);
}
END_TEST

/* notice_fail=N: the first N notices of any kind get notice_status (503 by
 * default), counted in notices_failed and still recorded; then 200 again. */
START_TEST(bidder_notices_fail_on_purpose) {
    const char *specs[] = {"id=f-503,burl=on,notice_fail=2",
                           "id=f-500,notice_fail=1,notice_status=500"};
    int ports[2];
    fx_spawn_bidder(env, specs, 2, ports);

    ck_assert_int_eq(fx_http(ports[0], "GET", "/bill?id=r-1", NULL, NULL, 2000), 503);
    ck_assert_int_eq(fx_http(ports[0], "GET", "/win?id=r-1", NULL, NULL, 2000), 503);
    ck_assert_int_eq(fx_http(ports[0], "GET", "/bill?id=r-1", NULL, NULL, 2000), 200);
    ck_assert_int_eq(fx_http(ports[0], "GET", "/loss?id=r-2", NULL, NULL, 2000), 200);
    ck_assert_int_eq(fx_http(ports[0], "GET", "/bill?id=r-3", NULL, NULL, 2000), 200);
    cJSON *st = bidder_stats(ports[0]);
    ck_assert_int_eq(stat_of(st, "notices_failed"), 2);
    ck_assert_int_eq(stat_of(st, "bills"), 2);
    ck_assert_int_eq(stat_of(st, "wins"), 0); /* its only win notice failed */
    ck_assert_int_eq(stat_of(st, "losses"), 1);
    char *list = notices_of(st);
    ck_assert_str_eq(list, "/bill?id=r-1|/win?id=r-1|/bill?id=r-1|/loss?id=r-2|/bill?id=r-3");
    free(list);
    cJSON_Delete(st);

    ck_assert_int_eq(fx_http(ports[1], "GET", "/win?id=r-1", NULL, NULL, 2000), 500);
    ck_assert_int_eq(fx_http(ports[1], "GET", "/win?id=r-1", NULL, NULL, 2000), 200);
    st = bidder_stats(ports[1]);
    ck_assert_int_eq(stat_of(st, "notices_failed"), 1);
    ck_assert_int_eq(stat_of(st, "wins"), 1);
    cJSON_Delete(st);
}
END_TEST

/* notice_delay=MS: every notice, failed or not, is answered MS ms late (bids
 * are not); a client that leaves meanwhile is a dropped answer and the
 * bidder carries on. */
START_TEST(bidder_notices_delayed) {
    const char *specs[] = {"id=d,burl=on,notice_delay=300",
                           "id=d-fail,notice_fail=1,notice_delay=300"};
    int ports[2];
    pid_t pid = fx_spawn_bidder(env, specs, 2, ports);

    int64_t ms;
    ck_assert_int_eq(timed_get(ports[0], "/bill?id=r-1", &ms), 200);
    ck_assert_msg(ms >= 300 && ms < 3000, "a /bill with notice_delay=300 took %lld ms",
                  (long long)ms);
    ck_assert_int_eq(timed_get(ports[1], "/win?id=r-1", &ms), 503);
    ck_assert_msg(ms >= 300 && ms < 3000, "a failed /win with notice_delay=300 took %lld ms",
                  (long long)ms);
    ck_assert_int_eq(timed_get(ports[1], "/win?id=r-1", &ms), 200);
    ck_assert_int_ge(ms, 300);

    int64_t t0 = fx_now_ms();
    cJSON *bid = bid_from(ports[0]); /* latency=0: bids are not held back */
    ck_assert_int_lt(fx_now_ms() - t0, 300);
    cJSON_Delete(bid);

    /* A client that gives up before the answer. */
    ck_assert_int_eq(fx_http(ports[0], "GET", "/win?id=r-2", NULL, NULL, 150), -1);
    cJSON *st = bidder_stats(ports[0]);
    int dropped = stat_of(st, "dropped");
    cJSON_Delete(st);
    for (int64_t end = fx_now_ms() + 3000; dropped < 1 && fx_now_ms() < end;) {
        fx_sleep_ms(20);
        st = bidder_stats(ports[0]);
        dropped = stat_of(st, "dropped");
        cJSON_Delete(st);
    }
    fx_sleep_ms(400); /* past the timer the dropped answer would have had */
    ck_assert(fx_pid_alive(pid));
    st = bidder_stats(ports[0]);
    ck_assert_int_eq(stat_of(st, "dropped"), 1);
    ck_assert_int_eq(stat_of(st, "pending"), 0);
    ck_assert_int_eq(stat_of(st, "bills"), 1);
    ck_assert_int_eq(stat_of(st, "wins"), 0); /* its answer was never sent */
    char *list = notices_of(st);
    ck_assert_str_eq(list, "/bill?id=r-1|/win?id=r-2"); /* but it did arrive */
    free(list);
    cJSON_Delete(st);
    st = bidder_stats(ports[1]);
    ck_assert_int_eq(stat_of(st, "notices_failed"), 1);
    ck_assert_int_eq(stat_of(st, "wins"), 1);
    cJSON_Delete(st);
}
END_TEST

/* ---- multi-imp requests, deals, currency (SPEC 17) ---------------------- */

/* A page with three imps: "top" (floor 1.5, a deal the advertisers below
 * do not hold), "side" (floor 0.25, deal d-1 with its own floor 2.11 among
 * others) and "1" (floor 1, no pmp). */
static const char multi_request[] =
    "{\"id\":\"r-3\",\"at\":2,\"tmax\":95,\"cur\":[\"USD\"],"
    "\"imp\":[{\"id\":\"top\",\"tagid\":\"slot-top\",\"bidfloor\":1.5,\"bidfloorcur\":\"USD\","
    "\"banner\":{\"w\":728,\"h\":90},"
    "\"pmp\":{\"private_auction\":0,\"deals\":[{\"id\":\"d-9\",\"bidfloor\":4}]}},"
    "{\"id\":\"side\",\"tagid\":\"slot-side\",\"bidfloor\":0.25,\"bidfloorcur\":\"USD\","
    "\"banner\":{\"w\":300,\"h\":250},\"pmp\":{\"private_auction\":0,\"deals\":["
    "{\"id\":\"d-0\",\"bidfloor\":9},{\"id\":\"d-1\",\"bidfloor\":2.11,\"wseat\":[\"x\"]}]}},"
    "{\"id\":\"1\",\"tagid\":\"slot-9\",\"bidfloor\":1,\"bidfloorcur\":\"USD\","
    "\"banner\":{\"w\":300,\"h\":250}}],"
    "\"site\":{\"id\":\"site-1\",\"domain\":\"news.example\"},"
    "\"device\":{\"ua\":\"Mozilla/5.0\",\"ip\":\"192.0.2.7\",\"devicetype\":2},"
    "\"user\":{\"id\":\"u-7\",\"ext\":{\"ltv_score\":0.7}}}";

/* Two imps, "a" and "b", both offering deal d-1 (no deal floor on "b"). */
static const char two_deal_request[] =
    "{\"id\":\"r-4\",\"imp\":[{\"id\":\"a\",\"bidfloor\":1,\"banner\":{\"w\":300,\"h\":250},"
    "\"pmp\":{\"deals\":[{\"id\":\"d-1\",\"bidfloor\":3}]}},"
    "{\"id\":\"b\",\"bidfloor\":0.5,\"banner\":{\"w\":300,\"h\":250},"
    "\"pmp\":{\"deals\":[{\"id\":\"d-1\"}]}}],\"user\":{\"ext\":{\"ltv_score\":0}}}";

/* POSTs `body` to `port`, expects 200, returns the BidResponse (caller
 * cJSON_Delete()s) after checking its id. */
static cJSON *post_bid(int port, const char *body, const char *want_id) {
    char *text = NULL;
    ck_assert_int_eq(fx_http(port, "POST", "/bid", body, &text, 2000), 200);
    cJSON *j = cJSON_Parse(text);
    ck_assert_msg(cJSON_IsObject(j), "bid response is not a JSON object: %s", text);
    free(text);
    ck_assert_pstr_eq(str_of(j, "id"), want_id);
    return j;
}

/* The bids of a BidResponse's only seatbid (borrowed from `resp`). */
static cJSON *bids_of(const cJSON *resp) {
    const cJSON *seatbid = cJSON_GetObjectItemCaseSensitive(resp, "seatbid");
    ck_assert_int_eq(cJSON_GetArraySize(seatbid), 1);
    cJSON *bids = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(seatbid, 0), "bid");
    ck_assert(cJSON_IsArray(bids));
    return bids;
}

static double num_of(const cJSON *obj, const char *key) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, key);
    ck_assert_msg(cJSON_IsNumber(n), "no number '%s'", key);
    return n->valuedouble;
}

/* A bid per imp, in the request's order, each with its own impid, id and
 * adid (imp "1" keeps ad_{adv}_{request}), priced by the price rule on its
 * imp's floor; no dealid from an advertiser without deal=. The single-imp
 * answer is byte for byte what it always was. */
START_TEST(bidder_bids_on_every_imp) {
    const char *specs[] = {"id=s,price=seed", "id=f,price=fixed:2.5,notices=off"};
    int ports[2];
    fx_spawn_bidder(env, specs, 2, ports);

    char *body = NULL, want[1024];
    ck_assert_int_eq(fx_http(ports[0], "POST", "/bid", bid_request, &body, 2000), 200);
    snprintf(
        want, sizeof want,
        "{\"id\":\"r-1\",\"seatbid\":[{\"seat\":\"s\",\"bid\":[{\"id\":\"b-1\",\"impid\":\"1\","
        "\"price\":3.06,\"adid\":\"ad_s_r-1\",\"crid\":\"c-s\","
        "\"iurl\":\"https://cdn.example/s.jpg\","
        "\"nurl\":\"http://127.0.0.1:%d/win?id=${AUCTION_ID}&price=${AUCTION_PRICE}\","
        "\"lurl\":\"http://127.0.0.1:%d/loss?id=${AUCTION_ID}&reason=${AUCTION_LOSS}"
        "&price=${AUCTION_PRICE}\"}]}],\"cur\":\"USD\"}",
        ports[0], ports[0]);
    ck_assert_str_eq(body, want);
    free(body);

    static const char *const ids[] = {"top", "side", "1"};
    static const char *const adids[] = {"ad_s_r-3_top", "ad_s_r-3_side", "ad_s_r-3"};
    static const char *const bid_ids[] = {"b-2", "b-3", "b-4"};
    static const double seed[] = {3.06, 0.51, 2.04}; /* floor x 1.2 x 1.7 */
    cJSON *resp = post_bid(ports[0], multi_request, "r-3");
    cJSON *bids = bids_of(resp);
    ck_assert_int_eq(cJSON_GetArraySize(bids), 3);
    for (int k = 0; k < 3; k++) {
        cJSON *bid = cJSON_GetArrayItem(bids, k);
        ck_assert_pstr_eq(str_of(bid, "impid"), ids[k]);
        ck_assert_pstr_eq(str_of(bid, "id"), bid_ids[k]);
        ck_assert_pstr_eq(str_of(bid, "adid"), adids[k]);
        ck_assert_double_eq_tol(num_of(bid, "price"), seed[k], 1e-9);
        ck_assert_ptr_null(cJSON_GetObjectItem(bid, "dealid"));
    }
    ck_assert_pstr_eq(str_of(resp, "cur"), "USD");
    cJSON_Delete(resp);

    resp = post_bid(ports[1], multi_request, "r-3");
    bids = bids_of(resp);
    ck_assert_int_eq(cJSON_GetArraySize(bids), 3);
    for (int k = 0; k < 3; k++) {
        cJSON *bid = cJSON_GetArrayItem(bids, k);
        ck_assert_pstr_eq(str_of(bid, "impid"), ids[k]);
        ck_assert_double_eq_tol(num_of(bid, "price"), 2.5, 1e-9);
        ck_assert_ptr_null(cJSON_GetObjectItem(bid, "nurl")); /* keys still apply per bid */
    }
    cJSON_Delete(resp);

    /* One 200 per request, however many bids it carried. */
    cJSON *st = bidder_stats(ports[0]);
    ck_assert_int_eq(stat_of(st, "requests"), 2);
    ck_assert_int_eq(stat_of(st, "bids"), 2);
    cJSON_Delete(st);

    /* Every imp is read: one without an id is a bad request. */
    const char *bad = "{\"id\":\"r-5\",\"imp\":[{\"id\":\"1\"},{\"bidfloor\":1}]}";
    ck_assert_int_eq(fx_http(ports[0], "POST", "/bid", bad, &body, 2000), 400);
    ck_assert_ptr_nonnull(strstr(body, "imp[1].id: missing or not a string"));
    free(body);
    bad = "{\"id\":\"r-5\",\"imp\":[{\"id\":\"1\"},{\"id\":\"2\",\"bidfloor\":\"1\"}]}";
    ck_assert_int_eq(fx_http(ports[0], "POST", "/bid", bad, &body, 2000), 400);
    ck_assert_ptr_nonnull(strstr(body, "imp[1].bidfloor: not a number"));
    free(body);
}
END_TEST

/* deal=ID: the bids on imps whose pmp lists ID carry "dealid":"ID", the
 * others none; a seed price on a deal bid takes the deal's floor (the
 * imp's when the deal has none); deal_price=X prices every deal bid X and
 * leaves the open bids to the price rule. */
START_TEST(bidder_deals) {
    const char *specs[] = {"id=seed-d,price=seed,deal=d-1",
                           "id=priced-d,price=fixed:2,deal=d-1,deal_price=7.5",
                           "id=other-d,price=fixed:2,deal=d-7"};
    int ports[3];
    fx_spawn_bidder(env, specs, 3, ports);

    cJSON *resp = post_bid(ports[0], multi_request, "r-3");
    cJSON *bids = bids_of(resp);
    ck_assert_int_eq(cJSON_GetArraySize(bids), 3);
    ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetArrayItem(bids, 0), "dealid")); /* d-9 only */
    cJSON *deal_bid = cJSON_GetArrayItem(bids, 1);
    ck_assert_pstr_eq(str_of(deal_bid, "impid"), "side");
    ck_assert_pstr_eq(str_of(deal_bid, "dealid"), "d-1");
    ck_assert_double_eq_tol(num_of(deal_bid, "price"), 4.3044, 1e-9); /* 2.11 x 1.2 x 1.7 */
    ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetArrayItem(bids, 2), "dealid")); /* no pmp */
    ck_assert_double_eq_tol(num_of(cJSON_GetArrayItem(bids, 0), "price"), 3.06, 1e-9);
    cJSON_Delete(resp);

    resp = post_bid(ports[0], two_deal_request, "r-4");
    bids = bids_of(resp);
    ck_assert_int_eq(cJSON_GetArraySize(bids), 2);
    ck_assert_pstr_eq(str_of(cJSON_GetArrayItem(bids, 0), "dealid"), "d-1");
    ck_assert_double_eq_tol(num_of(cJSON_GetArrayItem(bids, 0), "price"), 3.6, 1e-9); /* 3 x 1.2 */
    ck_assert_pstr_eq(str_of(cJSON_GetArrayItem(bids, 1), "dealid"), "d-1");
    ck_assert_double_eq_tol(num_of(cJSON_GetArrayItem(bids, 1), "price"), 0.6,
                            1e-9); /* 0.5 x 1.2 */
    cJSON_Delete(resp);

    resp = post_bid(ports[1], multi_request, "r-3");
    bids = bids_of(resp);
    ck_assert_int_eq(cJSON_GetArraySize(bids), 3);
    static const double priced[] = {2, 7.5, 2};
    for (int k = 0; k < 3; k++) {
        cJSON *bid = cJSON_GetArrayItem(bids, k);
        ck_assert_double_eq_tol(num_of(bid, "price"), priced[k], 1e-9);
        if (k == 1)
            ck_assert_pstr_eq(str_of(bid, "dealid"), "d-1");
        else
            ck_assert_ptr_null(cJSON_GetObjectItem(bid, "dealid"));
    }
    cJSON_Delete(resp);

    /* A deal no imp offers: open bids only. */
    resp = post_bid(ports[2], multi_request, "r-3");
    bids = bids_of(resp);
    ck_assert_int_eq(cJSON_GetArraySize(bids), 3);
    cJSON *bid;
    cJSON_ArrayForEach(bid, bids) ck_assert_ptr_null(cJSON_GetObjectItem(bid, "dealid"));
    cJSON_Delete(resp);

    /* The SPEC 2 form has no pmp: no deal, the answer as without deal=. */
    bid = bid_from(ports[1]);
    ck_assert_ptr_null(cJSON_GetObjectItem(bid, "dealid"));
    ck_assert_double_eq_tol(num_of(bid, "price"), 2, 1e-9);
    cJSON_Delete(bid);

    /* The deal's floor is read when the deal is ours: a bad one is refused. */
    char *body = NULL;
    const char *bad = "{\"id\":\"r-6\",\"imp\":[{\"id\":\"1\","
                      "\"pmp\":{\"deals\":[{\"id\":\"d-1\",\"bidfloor\":\"x\"}]}}]}";
    ck_assert_int_eq(fx_http(ports[0], "POST", "/bid", bad, &body, 2000), 400);
    ck_assert_ptr_nonnull(strstr(body, "imp[0].pmp.deals[0].bidfloor: not a number"));
    free(body);
}
END_TEST

/* cur=XXX: the BidResponse's cur (prices are in it); imps=first: one bid,
 * on the first imp, however many the request has. */
START_TEST(bidder_currency_and_first_imp) {
    const char *specs[] = {"id=eur,price=fixed:3,cur=EUR", "id=one,price=fixed:2,imps=first",
                           "id=all,price=fixed:2,imps=all"};
    int ports[3];
    fx_spawn_bidder(env, specs, 3, ports);

    cJSON *resp = post_bid(ports[0], multi_request, "r-3");
    ck_assert_pstr_eq(str_of(resp, "cur"), "EUR");
    ck_assert_int_eq(cJSON_GetArraySize(bids_of(resp)), 3);
    ck_assert_double_eq_tol(num_of(cJSON_GetArrayItem(bids_of(resp), 0), "price"), 3, 1e-9);
    cJSON_Delete(resp);

    resp = post_bid(ports[1], multi_request, "r-3");
    cJSON *bids = bids_of(resp);
    ck_assert_int_eq(cJSON_GetArraySize(bids), 1);
    ck_assert_pstr_eq(str_of(cJSON_GetArrayItem(bids, 0), "impid"), "top");
    ck_assert_pstr_eq(str_of(cJSON_GetArrayItem(bids, 0), "adid"), "ad_one_r-3_top");
    ck_assert_pstr_eq(str_of(resp, "cur"), "USD");
    cJSON_Delete(resp);

    resp = post_bid(ports[2], two_deal_request, "r-4");
    ck_assert_int_eq(cJSON_GetArraySize(bids_of(resp)), 2);
    cJSON_Delete(resp);
}
END_TEST

/* Bad keys are a bad command line: exit 2, a message naming the key. */
START_TEST(bidder_refuses_bad_keys) {
    static const char *const bad[][2] = {
        {"id=x,notice_status=700", "'notice_status': '700'"},
        {"id=x,notice_status=199", "'notice_status': '199'"},
        {"id=x,notice_status=50x", "'notice_status': '50x'"},
        {"id=x,notice_fail=-1", "'notice_fail': '-1'"},
        {"id=x,notice_delay=soon", "'notice_delay': 'soon'"},
        {"id=x,burl=yes", "'burl': 'yes'"},
        {"id=x,header_pad=1048577", "'header_pad': '1048577'"},
        {"id=x,trickle=-5", "'trickle': '-5'"},
        {"id=x,adid_bytes=big", "'adid_bytes': 'big'"},
        {"id=x,imps=some", "'imps': 'some'"},
        {"id=x,deal=d-1,deal_price=cheap", "'deal_price': 'cheap'"},
        {"id=x,deal=d-1,deal_price=1.1234567", "'deal_price': '1.1234567'"},
        {"id=x,deal_price=2", "deal_price needs deal=ID"},
        {"id=x,cur=ABCDEFGHIJKLMNOPQ", "'cur': 'ABCDEFGHIJKLMNOPQ'"},
        {"id=x,deal=", "'deal=' is not key=value"},
        {"id=x,deal=a,deal=b", "key 'deal' given twice"},
    };
    const char *bin = fx_getenv("RTB_BIDDER");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char log[32];
        snprintf(log, sizeof log, "bad-%zu.log", i);
        const char *argv[] = {bin, "--advertiser", bad[i][0], NULL};
        pid_t p = fx_spawn(env, argv, log);
        int st = 0;
        ck_assert_int_eq(fx_wait_exit(p, 5000, &st), 0);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%s: exit status %d", bad[i][0],
                      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        char *text = fx_read_file(env, log, NULL);
        ck_assert_ptr_nonnull(text);
        ck_assert_msg(strstr(text, bad[i][1]) != NULL, "%s: message '%s' lacks %s", bad[i][0], text,
                      bad[i][1]);
        free(text);
    }
}
END_TEST

/* ---- hostile answers (SPEC 15) ---------------------------------------------- */

/* A raw answer: its head (status line and headers) and body, NUL-terminated
 * copies, and when its first and last bytes came (fx_now_ms). */
typedef struct raw_answer {
    char *head, *body;
    size_t head_len, body_len;
    int64_t first_ms, last_ms;
} raw_answer;

static void raw_answer_free(raw_answer *a) {
    free(a->head);
    free(a->body);
}

/* POSTs the bid request to `port` over HTTP/1.1 (Connection: close) and
 * reads until the bidder closes or timeout_ms pass; with give_up_ms > 0 the
 * client closes after that many ms instead. Returns the bytes read. */
static size_t raw_post(int port, int timeout_ms, int give_up_ms, raw_answer *a) {
    memset(a, 0, sizeof *a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "POST /bid HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     strlen(bid_request), bid_request);
    ck_assert_int_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    ck_assert_ptr_nonnull(buf);
    int64_t start = fx_now_ms(), until = start + (give_up_ms > 0 ? give_up_ms : timeout_ms);
    for (;;) {
        int left = (int)(until - fx_now_ms());
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0) break;
        if (len == cap) {
            buf = realloc(buf, 2 * cap + 1);
            ck_assert_ptr_nonnull(buf);
            cap *= 2;
        }
        ssize_t got = recv(fd, buf + len, cap - len, 0);
        if (got <= 0) break;
        if (len == 0) a->first_ms = fx_now_ms();
        a->last_ms = fx_now_ms();
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    a->head_len = end ? (size_t)(end - buf) + 4 : len;
    a->head = strndup(buf, a->head_len);
    a->body_len = len - a->head_len;
    a->body = strndup(buf + a->head_len, a->body_len);
    free(buf);
    return len;
}

/* header_pad=N: every bid answer carries about N bytes of X-Pad-K headers
 * (what the exchange's 8 KiB limit on bidder headers is tested with); the
 * bid itself is unchanged. Without it the head is small. */
START_TEST(bidder_pads_headers) {
    const char *specs[] = {"id=pad,price=fixed:2.5,header_pad=20480", "id=plain,price=fixed:2.5"};
    int ports[2];
    fx_spawn_bidder(env, specs, 2, ports);
    raw_answer a;
    raw_post(ports[0], 3000, 0, &a);
    ck_assert_msg(strncmp(a.head, "HTTP/1.1 200", 12) == 0, "head: %.100s", a.head);
    ck_assert_msg(a.head_len >= 20480 && a.head_len < 20480 + 400, "head of %zu bytes", a.head_len);
    ck_assert_ptr_nonnull(strstr(a.head, "\r\nX-Pad-001: xxx"));
    ck_assert_ptr_nonnull(strstr(a.head, "\r\nX-Pad-020: "));
    ck_assert_double_eq_tol(bid_price(a.body), 2.5, 1e-9);
    raw_answer_free(&a);

    raw_post(ports[1], 3000, 0, &a);
    ck_assert_msg(a.head_len < 512, "head of %zu bytes without header_pad", a.head_len);
    ck_assert_ptr_null(strstr(a.head, "X-Pad"));
    raw_answer_free(&a);
    /* Notices are not padded: only bid answers are. */
    char *body = NULL;
    ck_assert_int_eq(fx_http(ports[0], "GET", "/win?id=r-1", NULL, &body, 2000), 200);
    free(body);
}
END_TEST

/* trickle=MS: the bid's body goes out one byte every MS ms (after the
 * head, which says its Content-Length), so the whole answer takes about
 * MS x its length; a client that leaves meanwhile is a dropped answer. */
START_TEST(bidder_trickles_the_body) {
    const char *specs[] = {"id=slow,price=fixed:2.5,trickle=5"};
    int port;
    pid_t pid = fx_spawn_bidder(env, specs, 1, &port);
    raw_answer a;
    int64_t t0 = fx_now_ms();
    raw_post(port, 20000, 0, &a);
    int64_t took = a.last_ms - t0;
    ck_assert_msg(strncmp(a.head, "HTTP/1.1 200", 12) == 0, "head: %.100s", a.head);
    char want[64];
    snprintf(want, sizeof want, "Content-Length: %zu\r\n", a.body_len);
    ck_assert_msg(strstr(a.head, want) != NULL, "no %s in %s", want, a.head);
    ck_assert_ptr_null(strstr(a.head, "chunked"));
    ck_assert_double_eq_tol(bid_price(a.body), 2.5, 1e-9);
    ck_assert_msg(took >= (int64_t)(a.body_len - 1) * 5,
                  "%zu bytes at one per 5 ms came in %lld ms", a.body_len, (long long)took);
    raw_answer_free(&a);

    /* A client that gives up after 100 ms got the head and a few bytes. */
    raw_post(port, 0, 100, &a);
    ck_assert_msg(strncmp(a.head, "HTTP/1.1 200", 12) == 0, "head: %.100s", a.head);
    ck_assert_msg(a.body_len > 0 && a.body_len < 100, "%zu body bytes in 100 ms", a.body_len);
    raw_answer_free(&a);
    cJSON *st = NULL;
    for (int64_t end = fx_now_ms() + 3000; fx_now_ms() < end; fx_sleep_ms(20)) {
        cJSON_Delete(st);
        st = bidder_stats(port);
        if (stat_of(st, "dropped") == 1) break;
    }
    ck_assert_int_eq(stat_of(st, "dropped"), 1);
    ck_assert_int_eq(stat_of(st, "pending"), 0);
    ck_assert_int_eq(stat_of(st, "bids"), 1); /* the one sent whole */
    cJSON_Delete(st);
    ck_assert(fx_pid_alive(pid));
}
END_TEST

/* adid_bytes=N: the bid's adid is exactly N bytes, the natural one padded
 * with x (or cut); creative= sets the iurl to anything, a javascript: URL
 * too (the exchange must refuse both, SPEC 15). */
START_TEST(bidder_adid_and_iurl_on_demand) {
    const char *specs[] = {"id=big,adid_bytes=10240,creative=javascript:alert(1)",
                           "id=cut,adid_bytes=4"};
    int ports[2];
    fx_spawn_bidder(env, specs, 2, ports);
    cJSON *bid = bid_from(ports[0]);
    const char *adid = str_of(bid, "adid");
    ck_assert_ptr_nonnull(adid);
    ck_assert_uint_eq(strlen(adid), 10240);
    ck_assert(strncmp(adid, "ad_big_r-1xxx", 13) == 0);
    ck_assert_uint_eq(strspn(adid + 10, "x"), 10240 - 10);
    ck_assert_pstr_eq(str_of(bid, "iurl"), "javascript:alert(1)");
    cJSON_Delete(bid);
    bid = bid_from(ports[1]);
    ck_assert_pstr_eq(str_of(bid, "adid"), "ad_c");
    ck_assert_pstr_eq(str_of(bid, "iurl"), "https://cdn.example/cut.jpg");
    cJSON_Delete(bid);
}
END_TEST

/* ---- lifecycle ----------------------------------------------------------- */

START_TEST(stop_leaves_nothing) {
    fx_env *e = fx_start();
    const char *argv[] = {"sleep", "60", NULL};
    pid_t pids[3] = {fx_redis_pid(e), fx_mqtt_pid(e), fx_spawn(e, argv, "sleep.log")};
    char dir[64];
    snprintf(dir, sizeof dir, "%s", fx_dir(e));
    fx_sub *sub = fx_sub_start(e, "auction:results:*");
    fx_mqtt *m = fx_mqtt_connect(e);
    (void)sub;
    (void)m;
    for (int i = 0; i < 3; i++)
        ck_assert(pids[i] > 0 && kill(pids[i], 0) == 0);
    struct stat st;
    ck_assert_int_eq(stat(dir, &st), 0);

    fx_stop(e); /* also closes sub and m */
    for (int i = 0; i < 3; i++) {
        errno = 0;
        ck_assert_int_eq(kill(pids[i], 0), -1);
        ck_assert_int_eq(errno, ESRCH);
    }
    ck_assert_int_ne(stat(dir, &st), 0);
}
END_TEST

typedef struct victim_info {
    pid_t pids[3];
    char dir[64];
} victim_info;

/* A test process that dies the way a failed Check assertion ends it: _exit
 * with no teardown. The guardian must stop its servers and remove its dir. */
START_TEST(dead_test_process_cleaned_up) {
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        close(p[0]);
        fx_env *e = fx_start();
        const char *argv[] = {"sleep", "60", NULL};
        victim_info vi;
        memset(&vi, 0, sizeof vi);
        vi.pids[0] = fx_redis_pid(e);
        vi.pids[1] = fx_mqtt_pid(e);
        vi.pids[2] = fx_spawn(e, argv, "sleep.log");
        snprintf(vi.dir, sizeof vi.dir, "%s", fx_dir(e));
        ssize_t w = write(p[1], &vi, sizeof vi);
        _exit(w == (ssize_t)sizeof vi ? 0 : 1);
    }
    close(p[1]);
    victim_info vi;
    ck_assert_int_eq((int)read(p[0], &vi, sizeof vi), (int)sizeof vi);
    close(p[0]);
    int st;
    ck_assert_int_eq(waitpid(child, &st, 0), child);

    int64_t deadline = fx_now_ms() + 3 * FX_STOP_GRACE_MS;
    int alive;
    struct stat sb;
    do {
        fx_sleep_ms(20);
        alive = 0;
        for (int i = 0; i < 3; i++)
            alive += fx_pid_alive(vi.pids[i]);
        alive += stat(vi.dir, &sb) == 0;
    } while (alive > 0 && fx_now_ms() < deadline);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(!fx_pid_alive(vi.pids[i]), "pid %d outlived its test", (int)vi.pids[i]);
    ck_assert_msg(stat(vi.dir, &sb) != 0, "%s outlived its test", vi.dir);
}
END_TEST

static Suite *fixture_suite(void) {
    Suite *s = suite_create("fixture");
    TCase *tc = tcase_create("servers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, redis_set_get);
    tcase_add_test(tc, subscriber_receives_publish);
    tcase_add_test(tc, mqtt_qos1_roundtrip);
    tcase_add_test(tc, redis_restart_same_port);
    tcase_add_test(tc, mqtt_restart_same_port);
    tcase_add_test(tc, process_helpers);
    tcase_add_test(tc, bidder_answers);
    tcase_add_test(tc, bidder_burl_and_bill);
    tcase_add_test(tc, bidder_notices_fail_on_purpose);
    tcase_add_test(tc, bidder_notices_delayed);
    tcase_add_test(tc, bidder_bids_on_every_imp);
    tcase_add_test(tc, bidder_deals);
    tcase_add_test(tc, bidder_currency_and_first_imp);
    tcase_add_test(tc, bidder_refuses_bad_keys);
    tcase_add_test(tc, bidder_pads_headers);
    tcase_add_test(tc, bidder_trickles_the_body);
    tcase_add_test(tc, bidder_adid_and_iurl_on_demand);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, stop_leaves_nothing);
    tcase_add_test(tc, dead_test_process_cleaned_up);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return fx_run_suite(fixture_suite());
}

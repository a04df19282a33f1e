/* test_security.c -- integration suite for credentials and TLS (SPEC 7).
 *
 * Each test starts an exchange world (tests/world.h) whose servers are then
 * restarted with security settings: mosquitto gets, besides the fixture's
 * anonymous listener (the world's publisher keeps using it), a listener that
 * wants a password (password_file), one with TLS, one with TLS that requires
 * a client certificate, and one with TLS whose certificate names another
 * host; Redis gets --requirepass, or an ACL user, per test. Certificates are
 * made at test time in the env's temp dir with the openssl CLI: a CA, a
 * server certificate for IP 127.0.0.1, a client certificate, a second
 * self-signed CA and a server certificate for DNS broker.invalid.
 *
 * What is checked: with the right credentials an auction gets its result;
 * with wrong ones the exchange exits 1 within a few seconds and its log says
 * which server refused; a broker it cannot verify (wrong CA, wrong name, a
 * client certificate missing) gets no connection, the exchange keeps
 * retrying and /healthz answers 503 (it does not exit); an unusable TLS file
 * is a config error, exit 2, naming mqtt.tls. No password ever shows in the
 * exchange's log.
 *
 * The last test is about the SSL_pending trap (rtb/mqtt.c): a fake broker
 * built on OpenSSL sends many PUBLISH packets in one TLS record, so that
 * after the first packet the rest sit decrypted inside OpenSSL with nothing
 * on the socket; every request must still get its result. libmosquitto
 * 2.0.11's own loop_read also reads on while SSL_pending() (unless errno
 * happens to be EAGAIN after a callback), so this test guards the outcome
 * whichever layer drains the record; it cannot tell the two apart. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tests/world.h"

/* Distinctive, so a grep of the log cannot hit them by accident. */
#define REDIS_PASS "redis-Pw-6d1e8a"
#define REDIS_WRONG "redis-Wrong-93bc"
#define ACL_USER "rtb"
#define ACL_PASS "acl-Pw-0b9e77"
#define ACL_WRONG "acl-Wrong-c4d2"
#define MQTT_USER "rtb"
#define MQTT_PASS "mqtt-Pw-2f7c41"
#define MQTT_WRONG "mqtt-Wrong-58ad"

#define EXIT_WAIT_MS 5000   /* "exits within a few s" */
#define RETRY_WATCH_MS 2500 /* how long a no-connection case is watched */
#define HTTP_WAIT_MS 2000
#define TOOL_WAIT_MS 30000 /* one openssl / mosquitto_passwd run */
#define BURST 60           /* PUBLISH packets in one TLS record */

static wx_world *w;
/* The extra listeners of the world's mosquitto (see the top comment). */
static int port_password, port_tls, port_tls_client, port_tls_wrong_name;

/* ---- tools, certificates, servers ------------------------------------------ */

/* Runs argv to completion (output in tools.log); fails the test unless it
 * exits 0. */
static void run_tool(const char *const argv[]) {
    pid_t pid = fx_spawn(w->env, argv, "tools.log");
    int st = 0;
    if (fx_wait_exit(pid, TOOL_WAIT_MS, &st) != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fx_dump_log(w->env, "tools.log");
        ck_abort_msg("%s %s failed (tools.log above)", argv[0], argv[1]);
    }
}

/* DIR/name; the string lives until the next 8 calls. */
static const char *in_dir(const char *name) {
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    char *p = fx_path(w->env, name);
    snprintf(b, sizeof bufs[0], "%s", p);
    free(p);
    return b;
}

/* A self-signed CA: NAME.key, NAME.crt (P-256, fast to make). */
static void make_ca(const char *name, const char *cn) {
    char key[64], crt[64], subj[128];
    snprintf(key, sizeof key, "%s.key", name);
    snprintf(crt, sizeof crt, "%s.crt", name);
    snprintf(subj, sizeof subj, "/CN=%s", cn);
    const char *argv[] = {"openssl",
                          "req",
                          "-x509",
                          "-newkey",
                          "ec",
                          "-pkeyopt",
                          "ec_paramgen_curve:prime256v1",
                          "-nodes",
                          "-keyout",
                          in_dir(key),
                          "-out",
                          in_dir(crt),
                          "-days",
                          "2",
                          "-subj",
                          subj,
                          NULL};
    run_tool(argv);
}

/* NAME.key and NAME.crt signed by ca.crt, with the extension lines ext. */
static void make_leaf(const char *name, const char *cn, const char *ext, const char *serial) {
    char key[64], csr[64], crt[64], extf[64], subj[128];
    snprintf(key, sizeof key, "%s.key", name);
    snprintf(csr, sizeof csr, "%s.csr", name);
    snprintf(crt, sizeof crt, "%s.crt", name);
    snprintf(extf, sizeof extf, "%s.ext", name);
    snprintf(subj, sizeof subj, "/CN=%s", cn);
    free(fx_write_file(w->env, extf, ext));
    const char *req[] = {"openssl",
                         "req",
                         "-new",
                         "-newkey",
                         "ec",
                         "-pkeyopt",
                         "ec_paramgen_curve:prime256v1",
                         "-nodes",
                         "-keyout",
                         in_dir(key),
                         "-out",
                         in_dir(csr),
                         "-subj",
                         subj,
                         NULL};
    run_tool(req);
    const char *sign[] = {
        "openssl",   "x509",           "-req",        "-in",  in_dir(csr), "-CA", in_dir("ca.crt"),
        "-CAkey",    in_dir("ca.key"), "-set_serial", serial, "-days",     "2",   "-out",
        in_dir(crt), "-extfile",       in_dir(extf),  NULL};
    run_tool(sign);
}

static int other_port(void) {
    for (;;) {
        int p = fx_free_port();
        if (p != fx_mqtt_port(w->env) && p != fx_redis_port(w->env) && p != port_password &&
            p != port_tls && p != port_tls_client && p != port_tls_wrong_name)
            return p;
    }
}

static void tls_listener(char *buf, size_t len, int port, const char *cert, int require_cert) {
    size_t used = strlen(buf);
    snprintf(buf + used, len - used,
             "listener %d 127.0.0.1\n"
             "allow_anonymous true\n"
             "cafile %s\n"
             "certfile %s.crt\n"
             "keyfile %s.key\n"
             "require_certificate %s\n",
             port, in_dir("ca.crt"), in_dir(cert), in_dir(cert), require_cert ? "true" : "false");
}

static void setup(void) {
    w = wx_start();
    make_ca("ca", "rtb test CA");
    make_ca("other-ca", "another CA");
    make_leaf("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1\n", "1");
    make_leaf("client", "rtb-exchange", "extendedKeyUsage=clientAuth\n", "2");
    make_leaf("wrong-name", "broker.invalid", "subjectAltName=DNS:broker.invalid\n", "3");
    const char *passwd[] = {"mosquitto_passwd", "-b",      "-c", in_dir("mqtt.passwd"),
                            MQTT_USER,          MQTT_PASS, NULL};
    run_tool(passwd);

    port_password = port_tls = port_tls_client = port_tls_wrong_name = 0;
    port_password = other_port();
    port_tls = other_port();
    port_tls_client = other_port();
    port_tls_wrong_name = other_port();
    char tail[4096];
    snprintf(tail, sizeof tail,
             "listener %d 127.0.0.1\n"
             "allow_anonymous false\n"
             "password_file %s\n",
             port_password, in_dir("mqtt.passwd"));
    tls_listener(tail, sizeof tail, port_tls, "server", 0);
    tls_listener(tail, sizeof tail, port_tls_client, "server", 1);
    tls_listener(tail, sizeof tail, port_tls_wrong_name, "wrong-name", 0);
    /* As root mosquitto would drop to user "mosquitto", who cannot read the
     * env's dir (0700). */
    fx_mqtt_reconfigure(w->env,
                        geteuid() == 0 ? "per_listener_settings true\nuser root\n"
                                       : "per_listener_settings true\n",
                        tail);
    const int ports[] = {port_password, port_tls, port_tls_client, port_tls_wrong_name};
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) {
        if (fx_wait_port(ports[i], FX_START_TIMEOUT_MS) != 0) {
            fx_dump_log(w->env, "mosquitto.log");
            ck_abort_msg("mosquitto does not listen on %d", ports[i]);
        }
    }
}

static void teardown(void) {
    wx_stop(w);
    w = NULL;
}

/* ---- the exchange ---------------------------------------------------------------- */

/* extra_json for an exchange on one of the extra listeners: the mqtt object's
 * members (port included) and the redis object's members, either may be "". */
static const char *extra(char *buf, size_t len, const char *mqtt, const char *redis) {
    snprintf(buf, len, "\"mqtt\":{%s},\"redis\":{%s}", mqtt, redis);
    return buf;
}

/* A bidder advertiser "adv-sec" on interest "sec": an auction for that tag
 * must be won by it at 2.0 (floor 1.0, one bid: clearing = floor). */
static void run_auction(const char *id) {
    const char *specs[] = {"id=adv-sec,price=fixed:2"};
    int port[1];
    fx_spawn_bidder(w->env, specs, 1, port);
    wx_register_advertiser(w, "adv-sec", port[0], "[\"sec\"]");
    fx_redis_do(w->env, "PUBLISH advertiser:updates x");
    /* The update is asynchronous: retry until the advertiser takes part. */
    for (int attempt = 0;; attempt++) {
        char rid[64];
        snprintf(rid, sizeof rid, "%s-%d", id, attempt);
        wx_publish_tagged(w, rid, 1.0, "sec");
        cJSON *r = wx_wait_result(w, rid);
        const char *status = wx_jstr(r, "status");
        if (status != NULL && strcmp(status, "success") == 0) {
            wx_expect_result(r, "success", 1, 1, 0, 0);
            wx_expect_winner(r, "adv-sec", 2.0, 1.0);
            cJSON_Delete(r);
            return;
        }
        cJSON_Delete(r);
        if (attempt >= 20) wx_fail_with_log(w, "no auction for tag sec was won within 20 attempts");
        fx_sleep_ms(100);
    }
}

/* Fails when exchange.log holds any of the NULL-terminated secrets. */
static void expect_no_secrets(const char *const secrets[]) {
    char *log = fx_read_file(w->env, "exchange.log", NULL);
    ck_assert_msg(log != NULL, "exchange.log cannot be read");
    for (int i = 0; secrets[i] != NULL; i++) {
        if (strstr(log, secrets[i]) != NULL) {
            free(log);
            wx_fail_with_log(w, "exchange.log contains the password %s", secrets[i]);
        }
    }
    free(log);
}

static int log_has(const char *needle) {
    char *log = fx_read_file(w->env, "exchange.log", NULL);
    int has = log != NULL && strstr(log, needle) != NULL;
    free(log);
    return has;
}

/* Spawns the exchange with the world's config plus extra_json, as
 * wx_start_exchange would, but without waiting for it to answer. */
static pid_t spawn_exchange(const char *name, const wx_opts *o) {
    char *path = wx_write_config(w, name, o);
    const char *argv[] = {fx_getenv("RTB_EXCHANGE"), "-c", path, NULL};
    pid_t pid = fx_spawn(w->env, argv, "exchange.log");
    free(path);
    w->exchange_pid = pid;
    return pid;
}

/* The exchange must exit with `code` within EXIT_WAIT_MS, its log saying
 * `says`. */
static void expect_exit(const char *name, const wx_opts *o, int code, const char *says) {
    int64_t start = fx_now_ms();
    pid_t pid = spawn_exchange(name, o);
    int st = 0;
    if (fx_wait_exit(pid, EXIT_WAIT_MS, &st) != 0)
        wx_fail_with_log(w, "rtb-exchange still runs %d ms after start; want exit %d", EXIT_WAIT_MS,
                         code);
    w->exchange_pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != code)
        wx_fail_with_log(w, "rtb-exchange ended with %s %d, want exit status %d",
                         WIFEXITED(st) ? "exit status" : "signal",
                         WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), code);
    if (!log_has(says)) wx_fail_with_log(w, "exchange.log does not say \"%s\"", says);
    wx_check_exchange_log(w);
    fprintf(stderr, "%s: exit %d after %lld ms\n", name, code, (long long)(fx_now_ms() - start));
}

/* The exchange gets no MQTT connection: it keeps running, keeps retrying
 * (its log says `says`), /healthz answers 503 naming mqtt; SIGTERM still
 * ends it cleanly. */
static void expect_no_connection(const char *name, const char *mqtt_json, const char *says) {
    char ex[1024];
    wx_opts o = {.admin_port = fx_free_port(), .extra_json = extra(ex, sizeof ex, mqtt_json, "")};
    pid_t pid = spawn_exchange(name, &o);
    int64_t deadline = fx_now_ms() + RETRY_WATCH_MS;
    while (fx_now_ms() < deadline) {
        if (!fx_pid_alive(pid))
            wx_fail_with_log(w, "rtb-exchange exited; want it to keep retrying");
        fx_sleep_ms(50);
    }
    char *body = NULL;
    int code = fx_http(o.admin_port, "GET", "/healthz", NULL, &body, HTTP_WAIT_MS);
    if (code != 503 || body == NULL || strstr(body, "mqtt") == NULL)
        wx_fail_with_log(w, "/healthz: %d %s; want 503 naming mqtt", code, wx_or_empty(body));
    free(body);
    if (!log_has(says)) wx_fail_with_log(w, "exchange.log does not say \"%s\"", says);
    if (log_has("mqtt: connected to"))
        wx_fail_with_log(w, "the exchange connected; want no connection");
    fx_kill(pid, SIGTERM);
    wx_expect_clean_exit(w, WX_STOP_WAIT_MS);
}

/* ---- Redis ------------------------------------------------------------------------ */

START_TEST(redis_requirepass_right) {
    const char *args[] = {"--requirepass", REDIS_PASS, NULL};
    fx_redis_reconfigure(w->env, args, NULL, REDIS_PASS);
    char ex[512];
    wx_opts o = {.extra_json = extra(ex, sizeof ex, "", "\"password\":\"" REDIS_PASS "\"")};
    wx_start_exchange(w, "redis-pass", &o);
    run_auction("rp");
    wx_stop_exchange(w);
    const char *secrets[] = {REDIS_PASS, NULL};
    expect_no_secrets(secrets);
}
END_TEST

START_TEST(redis_requirepass_wrong) {
    const char *args[] = {"--requirepass", REDIS_PASS, NULL};
    fx_redis_reconfigure(w->env, args, NULL, REDIS_PASS);
    char ex[512];
    wx_opts o = {.extra_json = extra(ex, sizeof ex, "", "\"password\":\"" REDIS_WRONG "\"")};
    expect_exit("redis-wrong", &o, 1, "Redis refused the credentials");
    const char *secrets[] = {REDIS_PASS, REDIS_WRONG, NULL};
    expect_no_secrets(secrets);
}
END_TEST

/* A password where Redis has none configured is refused too (Redis 7). */
START_TEST(redis_password_not_configured) {
    char ex[512];
    wx_opts o = {.extra_json = extra(ex, sizeof ex, "", "\"password\":\"" REDIS_WRONG "\"")};
    expect_exit("redis-nopass", &o, 1, "Redis refused the credentials");
    const char *secrets[] = {REDIS_WRONG, NULL};
    expect_no_secrets(secrets);
}
END_TEST

static void add_acl_user(void) {
    fx_redis_do(w->env, "ACL SETUSER %s on >%s ~* &* +@all", ACL_USER, ACL_PASS);
}

START_TEST(redis_acl_user_right) {
    add_acl_user();
    char ex[512];
    wx_opts o = {.extra_json =
                     extra(ex, sizeof ex, "",
                           "\"username\":\"" ACL_USER "\",\"password\":\"" ACL_PASS "\"")};
    wx_start_exchange(w, "redis-acl", &o);
    run_auction("ra");
    wx_stop_exchange(w);
    /* The exchange really authenticated as that user. */
    redisReply *r = fx_redis_cmd(w->env, "ACL LOG");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_msg(r->elements == 0, "ACL LOG has %zu entries, want none", r->elements);
    freeReplyObject(r);
    const char *secrets[] = {ACL_PASS, NULL};
    expect_no_secrets(secrets);
}
END_TEST

START_TEST(redis_acl_user_wrong) {
    add_acl_user();
    char ex[512];
    wx_opts o = {.extra_json =
                     extra(ex, sizeof ex, "",
                           "\"username\":\"" ACL_USER "\",\"password\":\"" ACL_WRONG "\"")};
    expect_exit("redis-acl-wrong", &o, 1, "Redis refused the credentials");
    const char *secrets[] = {ACL_PASS, ACL_WRONG, NULL};
    expect_no_secrets(secrets);
}
END_TEST

/* ---- mosquitto password_file ---------------------------------------------------- */

START_TEST(mqtt_password_right) {
    char mqtt[256], ex[512];
    snprintf(mqtt, sizeof mqtt,
             "\"port\":%d,\"username\":\"" MQTT_USER "\",\"password\":\"" MQTT_PASS "\"",
             port_password);
    wx_opts o = {.extra_json = extra(ex, sizeof ex, mqtt, "")};
    wx_start_exchange(w, "mqtt-pass", &o);
    run_auction("mp");
    wx_stop_exchange(w);
    const char *secrets[] = {MQTT_PASS, NULL};
    expect_no_secrets(secrets);
}
END_TEST

START_TEST(mqtt_password_wrong) {
    char mqtt[256], ex[512], says[128];
    snprintf(mqtt, sizeof mqtt,
             "\"port\":%d,\"username\":\"" MQTT_USER "\",\"password\":\"" MQTT_WRONG "\"",
             port_password);
    snprintf(says, sizeof says, "broker 127.0.0.1:%d refused the connection", port_password);
    wx_opts o = {.extra_json = extra(ex, sizeof ex, mqtt, "")};
    expect_exit("mqtt-wrong", &o, 1, says);
    const char *secrets[] = {MQTT_PASS, MQTT_WRONG, NULL};
    expect_no_secrets(secrets);
}
END_TEST

/* No credentials at all where the listener wants them: refused the same way. */
START_TEST(mqtt_password_missing) {
    char mqtt[256], ex[512], says[128];
    snprintf(mqtt, sizeof mqtt, "\"port\":%d", port_password);
    snprintf(says, sizeof says, "broker 127.0.0.1:%d refused the connection", port_password);
    wx_opts o = {.extra_json = extra(ex, sizeof ex, mqtt, "")};
    expect_exit("mqtt-anon", &o, 1, says);
}
END_TEST

/* ---- MQTT over TLS -------------------------------------------------------------- */

START_TEST(tls_ca_only) {
    char mqtt[1024], ex[1536];
    snprintf(mqtt, sizeof mqtt, "\"port\":%d,\"tls\":{\"cafile\":\"%s\"}", port_tls,
             in_dir("ca.crt"));
    wx_opts o = {.extra_json = extra(ex, sizeof ex, mqtt, "")};
    wx_start_exchange(w, "tls", &o);
    run_auction("tls");
    wx_stop_exchange(w);
}
END_TEST

START_TEST(tls_client_certificate) {
    char mqtt[1024], ex[1536];
    snprintf(mqtt, sizeof mqtt,
             "\"port\":%d,\"tls\":{\"cafile\":\"%s\",\"certfile\":\"%s\",\"keyfile\":\"%s\"}",
             port_tls_client, in_dir("ca.crt"), in_dir("client.crt"), in_dir("client.key"));
    wx_opts o = {.extra_json = extra(ex, sizeof ex, mqtt, "")};
    wx_start_exchange(w, "tls-client", &o);
    run_auction("tlsc");
    wx_stop_exchange(w);
}
END_TEST

/* TLS and a password on the same connection: the password travels encrypted. */
START_TEST(tls_with_password) {
    char tail[2048];
    int port = other_port();
    snprintf(tail, sizeof tail,
             "listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\n"
             "cafile %s\ncertfile %s\nkeyfile %s\n",
             port, in_dir("mqtt.passwd"), in_dir("ca.crt"), in_dir("server.crt"),
             in_dir("server.key"));
    fx_mqtt_reconfigure(w->env,
                        geteuid() == 0 ? "per_listener_settings true\nuser root\n"
                                       : "per_listener_settings true\n",
                        tail);
    ck_assert_int_eq(fx_wait_port(port, FX_START_TIMEOUT_MS), 0);
    char mqtt[1024], ex[1536];
    snprintf(mqtt, sizeof mqtt,
             "\"port\":%d,\"username\":\"" MQTT_USER "\",\"password\":\"" MQTT_PASS
             "\",\"tls\":{\"cafile\":\"%s\"}",
             port, in_dir("ca.crt"));
    wx_opts o = {.extra_json = extra(ex, sizeof ex, mqtt, "")};
    wx_start_exchange(w, "tls-pass", &o);
    run_auction("tlsp");
    wx_stop_exchange(w);
    const char *secrets[] = {MQTT_PASS, NULL};
    expect_no_secrets(secrets);
}
END_TEST

START_TEST(tls_wrong_ca) {
    char mqtt[1024], says[128];
    snprintf(mqtt, sizeof mqtt, "\"port\":%d,\"tls\":{\"cafile\":\"%s\"}", port_tls,
             in_dir("other-ca.crt"));
    snprintf(says, sizeof says, "TLS connection to 127.0.0.1:%d failed: certificate verify failed",
             port_tls);
    expect_no_connection("tls-wrong-ca", mqtt, says);
}
END_TEST

/* The broker's certificate chains to our CA but names another host. */
START_TEST(tls_wrong_name) {
    char mqtt[1024], says[128];
    snprintf(mqtt, sizeof mqtt, "\"port\":%d,\"tls\":{\"cafile\":\"%s\"}", port_tls_wrong_name,
             in_dir("ca.crt"));
    snprintf(says, sizeof says, "TLS connection to 127.0.0.1:%d failed: certificate verify failed",
             port_tls_wrong_name);
    expect_no_connection("tls-wrong-name", mqtt, says);
}
END_TEST

START_TEST(tls_client_certificate_missing) {
    char mqtt[1024], says[128];
    snprintf(mqtt, sizeof mqtt, "\"port\":%d,\"tls\":{\"cafile\":\"%s\"}", port_tls_client,
             in_dir("ca.crt"));
    snprintf(says, sizeof says, "TLS connection to 127.0.0.1:%d failed", port_tls_client);
    expect_no_connection("tls-no-client-cert", mqtt, says);
}
END_TEST

/* Unusable TLS files are config errors: exit 2, naming mqtt.tls and the file. */
START_TEST(tls_bad_files) {
    free(fx_write_file(w->env, "not-a-cert.pem", "hello\n"));
    char missing[512], notcert[512], ca[512], cli[512], cli_key[512], srv_key[512];
    snprintf(missing, sizeof missing, "%s", in_dir("missing-ca.pem"));
    snprintf(notcert, sizeof notcert, "%s", in_dir("not-a-cert.pem"));
    snprintf(ca, sizeof ca, "%s", in_dir("ca.crt"));
    snprintf(cli, sizeof cli, "%s", in_dir("client.crt"));
    snprintf(cli_key, sizeof cli_key, "%s", in_dir("client.key"));
    snprintf(srv_key, sizeof srv_key, "%s", in_dir("server.key"));
    struct {
        const char *name, *cafile, *certfile, *keyfile, *says;
    } cases[] = {
        {"tls-missing-ca", missing, NULL, NULL, "mqtt.tls: cafile"},
        {"tls-not-a-ca", notcert, NULL, NULL, "mqtt.tls: cafile"},
        {"tls-missing-key", ca, cli, missing, "mqtt.tls: keyfile"},
        {"tls-not-a-cert", ca, notcert, cli_key, "mqtt.tls: certfile"},
        {"tls-key-mismatch", ca, cli, srv_key, "does not match certfile"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char tls[2048], mqtt[2560], ex[3072];
        if (cases[i].certfile != NULL)
            snprintf(tls, sizeof tls, "{\"cafile\":\"%s\",\"certfile\":\"%s\",\"keyfile\":\"%s\"}",
                     cases[i].cafile, cases[i].certfile, cases[i].keyfile);
        else
            snprintf(tls, sizeof tls, "{\"cafile\":\"%s\"}", cases[i].cafile);
        snprintf(mqtt, sizeof mqtt, "\"port\":%d,\"tls\":%s", port_tls, tls);
        wx_opts o = {.extra_json = extra(ex, sizeof ex, mqtt, "")};
        expect_exit(cases[i].name, &o, 2, cases[i].says);
    }
    /* The unreadable path is named. */
    ck_assert_msg(log_has(missing), "exchange.log does not name %s", missing);
    /* No key material is ever printed. */
    char *key = fx_read_file(w->env, "client.key", NULL);
    ck_assert_ptr_nonnull(key);
    const char *b64 = strstr(key, "\n");
    ck_assert_ptr_nonnull(b64);
    char line[40];
    snprintf(line, sizeof line, "%.32s", b64 + 1);
    const char *secrets[] = {line, NULL};
    expect_no_secrets(secrets);
    free(key);
}
END_TEST

/* ---- the SSL_pending trap: a fake broker -------------------------------------- */

/* Just enough of an MQTT 3.1.1 broker over TLS for one client: CONNACK,
 * SUBACK, then BURST requests as PUBLISH (QoS 0) in one SSL_write (one TLS
 * record), then PINGRESP / UNSUBACK until stopped. Runs in a thread; blocking
 * I/O. */
typedef struct fake_broker {
    int lfd, port;
    SSL_CTX *ctx;
    pthread_t thread;
    atomic_int stop;
    atomic_int sent; /* 1 once the burst went out */
    char err[256];
} fake_broker;

static int ssl_read_full(SSL *ssl, unsigned char *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        int r = SSL_read(ssl, buf + got, (int)(len - got));
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

/* One packet: its first byte, and its body (up to cap bytes kept). */
static int read_packet(SSL *ssl, unsigned char *type, unsigned char *body, size_t cap,
                       size_t *len) {
    if (ssl_read_full(ssl, type, 1) != 0) return -1;
    size_t remaining = 0, mult = 1;
    for (int i = 0; i < 4; i++) {
        unsigned char b;
        if (ssl_read_full(ssl, &b, 1) != 0) return -1;
        remaining += (b & 127u) * mult;
        mult *= 128;
        if (!(b & 128u)) break;
    }
    if (remaining > cap) return -1;
    *len = remaining;
    return ssl_read_full(ssl, body, remaining);
}

static size_t put_publish(unsigned char *out, const char *topic, const char *payload) {
    size_t tlen = strlen(topic), plen = strlen(payload), rem = 2 + tlen + plen, n = 0;
    out[n++] = 0x30;
    do {
        unsigned char b = rem % 128;
        rem /= 128;
        out[n++] = rem > 0 ? (unsigned char)(b | 128u) : b;
    } while (rem > 0);
    out[n++] = (unsigned char)(tlen >> 8);
    out[n++] = (unsigned char)(tlen & 255);
    memcpy(out + n, topic, tlen);
    n += tlen;
    memcpy(out + n, payload, plen);
    return n + plen;
}

static void *fake_broker_main(void *arg) {
    fake_broker *b = arg;
    struct pollfd pfd = {.fd = b->lfd, .events = POLLIN};
    if (poll(&pfd, 1, 10000) != 1) {
        snprintf(b->err, sizeof b->err, "no connection within 10 s");
        return NULL;
    }
    int fd = accept(b->lfd, NULL, NULL);
    SSL *ssl = fd >= 0 ? SSL_new(b->ctx) : NULL;
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_accept(ssl) != 1) {
        snprintf(b->err, sizeof b->err, "TLS accept failed");
        goto out;
    }
    unsigned char type, body[4096];
    size_t len;
    if (read_packet(ssl, &type, body, sizeof body, &len) != 0 || (type & 0xF0) != 0x10) {
        snprintf(b->err, sizeof b->err, "no CONNECT");
        goto out;
    }
    const unsigned char connack[] = {0x20, 0x02, 0x00, 0x00};
    SSL_write(ssl, connack, sizeof connack);
    do {
        if (read_packet(ssl, &type, body, sizeof body, &len) != 0) {
            snprintf(b->err, sizeof b->err, "no SUBSCRIBE");
            goto out;
        }
    } while ((type & 0xF0) != 0x80 || len < 2);
    const unsigned char suback[] = {0x90, 0x03, body[0], body[1], 0x00};
    SSL_write(ssl, suback, sizeof suback);

    static unsigned char burst[16000]; /* under 16 KiB: one TLS record */
    size_t n = 0;
    for (int i = 0; i < BURST; i++) {
        char payload[200];
        snprintf(payload, sizeof payload,
                 "{\"request_id\":\"burst-%d\",\"user_id\":\"u-b\",\"ad_slot_id\":\"s\","
                 "\"floor_price\":1}",
                 i);
        n += put_publish(burst + n, "rtb/requests/burst", payload);
    }
    if (SSL_write(ssl, burst, (int)n) != (int)n) {
        snprintf(b->err, sizeof b->err, "burst not written");
        goto out;
    }
    atomic_store(&b->sent, 1);
    while (!atomic_load(&b->stop)) {
        struct pollfd cfd = {.fd = fd, .events = POLLIN};
        if (SSL_pending(ssl) == 0 && poll(&cfd, 1, 100) != 1) continue;
        if (read_packet(ssl, &type, body, sizeof body, &len) != 0)
            break;                   /* the exchange went away */
        if ((type & 0xF0) == 0xC0) { /* PINGREQ */
            const unsigned char pingresp[] = {0xD0, 0x00};
            SSL_write(ssl, pingresp, sizeof pingresp);
        } else if ((type & 0xF0) == 0xA0 && len >= 2) { /* UNSUBSCRIBE */
            const unsigned char unsuback[] = {0xB0, 0x02, body[0], body[1]};
            SSL_write(ssl, unsuback, sizeof unsuback);
        } else if ((type & 0xF0) == 0xE0) { /* DISCONNECT */
            break;
        }
    }
out:
    if (ssl != NULL) SSL_free(ssl);
    if (fd >= 0) close(fd);
    return NULL;
}

static void fake_broker_start(fake_broker *b) {
    memset(b, 0, sizeof *b);
    b->ctx = SSL_CTX_new(TLS_server_method());
    ck_assert_ptr_nonnull(b->ctx);
    ck_assert_int_eq(SSL_CTX_use_certificate_chain_file(b->ctx, in_dir("server.crt")), 1);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(b->ctx, in_dir("server.key"), SSL_FILETYPE_PEM),
                     1);
    b->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(b->lfd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    ck_assert_int_eq(bind(b->lfd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(b->lfd, 4), 0);
    ck_assert_int_eq(getsockname(b->lfd, (struct sockaddr *)&a, &alen), 0);
    b->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&b->thread, NULL, fake_broker_main, b), 0);
}

static void fake_broker_stop(fake_broker *b) {
    atomic_store(&b->stop, 1);
    pthread_join(b->thread, NULL);
    close(b->lfd);
    SSL_CTX_free(b->ctx);
}

START_TEST(tls_records_with_many_packets) {
    fake_broker b;
    fake_broker_start(&b);
    w->results = fx_sub_start(w->env, "auction:results:*");
    char mqtt[1024], ex[1536];
    snprintf(mqtt, sizeof mqtt, "\"port\":%d,\"tls\":{\"cafile\":\"%s\"}", b.port,
             in_dir("ca.crt"));
    wx_opts o = {.extra_json = extra(ex, sizeof ex, mqtt, "")};
    spawn_exchange("tls-burst", &o);
    int64_t deadline = fx_now_ms() + 10000;
    while (!atomic_load(&b.sent) && b.err[0] == '\0' && fx_now_ms() < deadline)
        fx_sleep_ms(10);
    if (!atomic_load(&b.sent))
        wx_fail_with_log(w, "fake broker: %s", b.err[0] ? b.err : "burst not sent within 10 s");
    /* No socket event follows the burst: the keepalive ping is 30 s away. */
    for (int i = 0; i < BURST; i++) {
        char id[32];
        snprintf(id, sizeof id, "burst-%d", i);
        cJSON *r = wx_wait_result(w, id);
        wx_expect_result(r, "no_bid", 0, 0, 0, 0);
        cJSON_Delete(r);
    }
    fx_kill(w->exchange_pid, SIGTERM);
    wx_expect_clean_exit(w, WX_STOP_WAIT_MS);
    fake_broker_stop(&b);
}
END_TEST

/* ---- suite ---------------------------------------------------------------------- */

static void add(Suite *s, const char *name, const TTest *test, int timeout_s) {
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, timeout_s);
    tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}

static Suite *security_suite(void) {
    Suite *s = suite_create("security");
    add(s, "redis_requirepass_right", redis_requirepass_right, 60);
    add(s, "redis_requirepass_wrong", redis_requirepass_wrong, 60);
    add(s, "redis_password_not_configured", redis_password_not_configured, 60);
    add(s, "redis_acl_user_right", redis_acl_user_right, 60);
    add(s, "redis_acl_user_wrong", redis_acl_user_wrong, 60);
    add(s, "mqtt_password_right", mqtt_password_right, 60);
    add(s, "mqtt_password_wrong", mqtt_password_wrong, 60);
    add(s, "mqtt_password_missing", mqtt_password_missing, 60);
    add(s, "tls_ca_only", tls_ca_only, 60);
    add(s, "tls_client_certificate", tls_client_certificate, 60);
    add(s, "tls_with_password", tls_with_password, 60);
    add(s, "tls_wrong_ca", tls_wrong_ca, 60);
    add(s, "tls_wrong_name", tls_wrong_name, 60);
    add(s, "tls_client_certificate_missing", tls_client_certificate_missing, 60);
    add(s, "tls_bad_files", tls_bad_files, 90);
    add(s, "tls_records_with_many_packets", tls_records_with_many_packets, 60);
    return s;
}

int main(void) {
    return fx_run_suite(security_suite());
}

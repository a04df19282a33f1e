/* fixture.h -- the shared fixture of the integration tests.
 *
 * A test gets its own redis-server and mosquitto, started on free loopback
 * ports in a fresh temp dir and stopped by PID afterwards; never a server that
 * happens to be running. The fixture also spawns the project's binaries
 * (rtb-bidder, rtb-exchange, ...) with their output in log files of that dir,
 * and gives the test a Redis client, a pub/sub subscriber, an MQTT publisher
 * and a tiny HTTP client. All traffic goes to 127.0.0.1.
 *
 * Failing: functions that set something up (start a server, connect, spawn)
 * fail the running Check test themselves (ck_abort_msg, after printing the
 * relevant log to stderr), so a test never continues on a half-built world.
 * Functions that wait for something a test may legitimately expect NOT to
 * happen (a message, an exit, an HTTP answer) return NULL / -1 instead.
 * Aborting functions may only be called inside a Check test or checked
 * fixture.
 *
 * Cleanup pattern (every integration suite follows it):
 *
 *     static fx_env *env;
 *     static void setup(void) { env = fx_start(); }
 *     static void teardown(void) { fx_stop(env); env = NULL; }
 *     ...
 *     TCase *tc = tcase_create("x");
 *     tcase_add_checked_fixture(tc, setup, teardown);
 *     tcase_set_timeout(tc, 60);          // Check's default is 4 s
 *     ...
 *     int main(void) { return fx_run_suite(my_suite()); }
 *
 *   - On a passing test the checked teardown runs fx_stop: every process the
 *     env started gets SIGTERM (SIGKILL after 2 s) and is reaped, and the temp
 *     dir is removed.
 *   - On a failing assertion Check ends the test's forked child with _exit()
 *     (no teardown, no atexit handlers), and on a Check timeout with SIGKILL.
 *     For that case fx_start forks a small guardian process (in its own
 *     session, so Check's killpg spares it) that holds the read end of a pipe
 *     from the test process and knows the PID of every process the env
 *     started. When the test process dies, the pipe reaches EOF and the
 *     guardian kills those PIDs (SIGTERM, SIGKILL after 2 s; a PID whose
 *     start time no longer matches is left alone) and removes the temp dir.
 *   - fx_run_suite makes the test's main process a Linux child subreaper, so
 *     processes orphaned by a dead test child are re-parented to it, and reaps
 *     them (for up to 5 s) after the run: no zombies are left to init, which
 *     in some containers never reaps them.
 *   - Tests must not change the process group of spawned servers and must not
 *     call exit() from a test while an env is live without fx_stop (the
 *     guardian would still clean up, but only after the process is gone).
 *
 * Threads: not thread-safe except where noted; one test thread drives the
 * fixture. fx_start sets SIGPIPE to SIG_IGN in the test process (writes to a
 * closed socket return EPIPE); spawned programs get default signal handling.
 */
#ifndef RTB_TESTS_FIXTURE_H
#define RTB_TESTS_FIXTURE_H

#include <check.h>
#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How long the fixture waits for a server or program to come up, a PUBACK,
 * a SUBACK-like confirmation, or a connection, in ms. */
#define FX_START_TIMEOUT_MS 5000
/* Grace between SIGTERM and SIGKILL when stopping a process, in ms. */
#define FX_STOP_GRACE_MS 2000

typedef struct fx_env fx_env;   /* opaque; one test world */
typedef struct fx_sub fx_sub;   /* opaque; a Redis pattern subscriber */
typedef struct fx_mqtt fx_mqtt; /* opaque; an MQTT 3.1.1 publisher */

/* ---- time, ports, suite runner -------------------------------------- */

/* Monotonic clock (CLOCK_MONOTONIC) in ms; only differences are meaningful. */
int64_t fx_now_ms(void);

/* Sleeps ms milliseconds (restarts on EINTR). */
void fx_sleep_ms(int ms);

/* A TCP port that was free on 127.0.0.1 a moment ago: binds 127.0.0.1:0,
 * reads the port the kernel chose, closes. Aborts the test on socket errors.
 * Racy by nature; fx_start retries a server on another port if its port was
 * taken in between. */
int fx_free_port(void);

/* Runs a suite the way every integration test main() should: makes this
 * process a child subreaper (Linux), runs all tests with CK_VERBOSE (or with
 * CK_ENV when CK_VERBOSITY is set) so Check prints its summary, frees the
 * runner, and reaps orphans for up to 5 s. Takes ownership of s. Returns
 * the exit status for main: 0 when every test passed, 1 otherwise. */
int fx_run_suite(Suite *s);

/* ---- the environment ------------------------------------------------ */

/* Starts a test world: mkdtemp /tmp/rtb-fx-XXXXXX, the guardian (see top),
 *   redis-server --port P --bind 127.0.0.1 --save "" --appendonly no
 *                --dir DIR --daemonize no          (log: DIR/redis.log)
 *   mosquitto -c DIR/mosquitto.conf                (log: DIR/mosquitto.log)
 * where mosquitto.conf is: listener P 127.0.0.1, allow_anonymous true,
 * max_queued_messages 1000000, persistence false, set_tcp_nodelay true.
 * Waits until Redis answers PING and mosquitto accepts a TCP connection, each
 * within FX_START_TIMEOUT_MS. On failure prints the server's log to stderr and
 * aborts the test. Returns the env; release it with fx_stop. */
fx_env *fx_start(void);

/* Stops everything the env still owns, in this order: open subscribers and
 * MQTT clients (closed and freed, so do not use them afterwards), the cached
 * Redis connection, every spawned program, mosquitto, redis-server (each:
 * SIGTERM + SIGCONT, SIGKILL after FX_STOP_GRACE_MS, reaped), the guardian;
 * then removes the temp dir and frees env. NULL is a no-op. Never aborts. */
void fx_stop(fx_env *env);

/* Accessors. Ports are the ones the servers listen on for the env's whole
 * life (also across fx_*_stop / fx_*_start). PIDs are 0 while stopped. The
 * dir string belongs to env. */
const char *fx_dir(const fx_env *env);
int fx_redis_port(const fx_env *env);
int fx_mqtt_port(const fx_env *env);
pid_t fx_redis_pid(const fx_env *env);
pid_t fx_mqtt_pid(const fx_env *env);

/* Fault injection: stop (SIGTERM, SIGKILL after FX_STOP_GRACE_MS, reaped) and
 * start again on the same port, waiting until ready as fx_start does (aborts
 * on failure). Stopping a stopped server is a no-op; starting a running one
 * restarts it. Redis data is not kept (no persistence), nor are retained MQTT
 * messages or sessions.
 * fx_redis_stop drops the cached fx_redis connection and the connections of
 * the env's subscribers; fx_redis_start reconnects and re-PSUBSCRIBEs every
 * subscriber before it returns (messages published while a subscriber was
 * disconnected are lost). fx_mqtt clients reconnect by themselves, see
 * fx_mqtt_wait_connected. To freeze a server instead, send SIGSTOP/SIGCONT
 * with fx_kill(fx_redis_pid(env), SIGSTOP). */
void fx_redis_stop(fx_env *env);
void fx_redis_start(fx_env *env);
void fx_mqtt_stop(fx_env *env);
void fx_mqtt_start(fx_env *env);

/* Servers with security settings (tests/test_security.c). Both restart the
 * server on its port the way fx_redis_start / fx_mqtt_start do (and abort
 * like them); the settings stay for later restarts of that server. An env
 * that never calls them runs the servers fx_start describes.
 *
 * fx_redis_reconfigure: extra_args (NULL-terminated, NULL: none) are
 * appended to redis-server's command line, e.g. {"--requirepass", "pw",
 * NULL}. From then on the fixture's own connections (fx_redis, subscribers,
 * the readiness PING) send AUTH [username] password first when password is
 * not NULL. To add an ACL user instead, leave Redis as it is and run
 * fx_redis_do(env, "ACL SETUSER ...").
 *
 * fx_mqtt_reconfigure: head goes before the fixture's lines of
 * mosquitto.conf (options that must come first, e.g.
 * "per_listener_settings true\n"), tail after them (more listeners: TLS,
 * password_file, ...); NULL: nothing. The fixture's anonymous listener stays
 * first, on fx_mqtt_port, and fx_mqtt clients keep using it; with
 * per_listener_settings true its allow_anonymous applies to it alone. Files
 * the config names must be readable by the user mosquitto runs as: started
 * as root it drops to user "mosquitto" unless the config says "user root"
 * (the env's dir is mode 0700). Only the fixture's listener is waited for;
 * see fx_wait_port for the others. */
void fx_redis_reconfigure(fx_env *env, const char *const extra_args[], const char *username,
                          const char *password);
void fx_mqtt_reconfigure(fx_env *env, const char *head, const char *tail);

/* Waits up to timeout_ms until 127.0.0.1:port accepts a TCP connection.
 * Returns 0, or -1 on timeout. Never aborts. */
int fx_wait_port(int port, int timeout_ms);

/* ---- files in the temp dir ------------------------------------------ */

/* DIR/name, malloc'd; the caller frees. */
char *fx_path(const fx_env *env, const char *name);

/* Writes text to DIR/name (created or truncated) and returns its malloc'd
 * path (caller frees), e.g. an exchange config. Aborts on I/O errors. */
char *fx_write_file(const fx_env *env, const char *name, const char *text);

/* Reads DIR/name whole: malloc'd, NUL-terminated, caller frees; *len (if not
 * NULL) gets the byte count. NULL if the file cannot be read. */
char *fx_read_file(const fx_env *env, const char *name, size_t *len);

/* Prints DIR/name to stderr between marker lines (for failure diagnosis). */
void fx_dump_log(const fx_env *env, const char *name);

/* ---- processes ------------------------------------------------------ */

/* Starts argv[0] (searched in PATH, like execvp) with arguments argv (NULL-
 * terminated), stdin from /dev/null, stdout and stderr appended to DIR/log_name.
 * The program gets default signal dispositions, an empty signal mask and no
 * inherited descriptors beyond 0-2. It belongs to env: fx_stop (or the
 * guardian) stops it unless it was reaped by fx_wait_exit before. Reap it
 * only through fx_wait_exit (never waitpid directly): the fixture must forget
 * a PID before it can be reused. Aborts when the program cannot be executed.
 * Returns its PID. */
pid_t fx_spawn(fx_env *env, const char *const argv[], const char *log_name);

/* kill(pid, sig); returns kill's result (0, or -1 with errno). */
int fx_kill(pid_t pid, int sig);

/* Waits up to timeout_ms for child pid (one started by the fixture) to exit,
 * then reaps it and forgets it. *status (if not NULL) gets the waitpid status:
 * use WIFEXITED / WEXITSTATUS / WIFSIGNALED. Returns 0 when it exited, -1 on
 * timeout (errno ETIMEDOUT; the process keeps running) or error (errno from
 * waitid, e.g. ECHILD). */
int fx_wait_exit(pid_t pid, int timeout_ms, int *status);

/* 1 when pid exists and is not a zombie (reads /proc), else 0. Unlike
 * kill(pid, 0) it treats an exited but unreaped process as gone. */
int fx_pid_alive(pid_t pid);

/* Looks up a required environment variable (e.g. "RTB_BIDDER"); aborts the
 * test when it is unset or empty. The string belongs to the environment. */
const char *fx_getenv(const char *name);

/* Starts $RTB_BIDDER --host 127.0.0.1 [extra_args...] --advertiser SPEC ...
 * for the n specs adv_specs[0..n-1] (SPEC 8; e.g. "id=adv-1,latency=5,
 * price=fixed:2.5"). ",port=0" is appended to a spec without "port=", so the
 * bidder picks free ports. Every spec needs an "id=". extra_args is NULL or a
 * NULL-terminated list (e.g. {"--seed", "7", NULL}). Output goes to
 * DIR/bidder-K.log (K counts from 1 per env); the fixture reads the lines
 * "listening <id> 127.0.0.1:<port>" from it (the bidder must flush them) and
 * stores, within FX_START_TIMEOUT_MS, ports_out[i] = port of adv_specs[i]'s
 * id. Aborts (after printing the log) when RTB_BIDDER is unset or not an
 * executable, when the bidder exits, or on timeout. Returns its PID; it
 * belongs to env like any fx_spawn'ed program. */
pid_t fx_spawn_bidder(fx_env *env, const char *const adv_specs[], int n, int ports_out[]);
pid_t fx_spawn_bidder_ex(fx_env *env, const char *const extra_args[], const char *const adv_specs[],
                         int n, int ports_out[]);

/* ---- Redis (hiredis, synchronous) ----------------------------------- */

/* The env's cached connection to its redis-server (5 s command timeout),
 * reconnected when it broke. Owned by env: do not free. Aborts when Redis
 * cannot be reached. */
redisContext *fx_redis(fx_env *env);

/* Runs a command on fx_redis(env), format as redisCommand (%s, %b with a
 * size_t length, ...). Returns the reply (caller freeReplyObject()s); a Redis
 * error reply (REDIS_REPLY_ERROR) is returned, not treated as failure. Aborts
 * on a connection or protocol error. */
redisReply *fx_redis_cmd(fx_env *env, const char *fmt, ...);

/* Like fx_redis_cmd, for commands whose reply does not matter: frees the
 * reply and aborts when it is an error reply. */
void fx_redis_do(fx_env *env, const char *fmt, ...);

/* ---- Redis pub/sub subscriber --------------------------------------- */

/* One pub/sub message. Strings are NUL-terminated copies; payload may also
 * hold NUL bytes, payload_len is its length. Free with fx_msg_free. */
typedef struct fx_msg {
    char *channel;
    char *pattern; /* the pattern that matched */
    char *payload;
    size_t payload_len;
    int64_t received_ms; /* fx_now_ms() when the fixture read it off the socket */
    struct fx_msg *next; /* fixture-internal */
} fx_msg;

void fx_msg_free(fx_msg *msg);

/* Parses msg's payload as JSON: a cJSON tree the caller cJSON_Delete()s, or
 * NULL when it is not valid JSON. */
cJSON *fx_msg_json(const fx_msg *msg);

/* Opens a dedicated connection and PSUBSCRIBEs to pattern (a glob, e.g.
 * "auction:results:*"; a name without glob characters such as
 * "auction:errors" matches itself). Returns once Redis confirmed the
 * subscription, so everything published afterwards is seen. The subscriber
 * belongs to env (fx_stop closes it) until fx_sub_stop. Aborts when Redis
 * cannot be reached. */
fx_sub *fx_sub_start(fx_env *env, const char *pattern);

/* Closes the connection, frees buffered messages and sub. NULL is a no-op. */
void fx_sub_stop(fx_sub *sub);

/* The next message in arrival order (buffered ones first), waiting up to
 * timeout_ms (0: only what already arrived). Returns it (caller fx_msg_free()s)
 * or NULL on timeout. While Redis is down the subscriber keeps trying to
 * reconnect and re-subscribe until the timeout. */
fx_msg *fx_sub_next(fx_sub *sub, int timeout_ms);

/* The first message on exactly channel, waiting up to timeout_ms; messages on
 * other channels read meanwhile are buffered for later fx_sub_next /
 * fx_sub_wait_for calls. Returns it (caller frees) or NULL on timeout. */
fx_msg *fx_sub_wait_for(fx_sub *sub, const char *channel, int timeout_ms);

/* Number of messages buffered in sub (read but not yet returned). */
int fx_sub_buffered(const fx_sub *sub);

/* ---- MQTT publisher (libmosquitto, MQTT 3.1.1) ---------------------- */

/* Connects a clean-session MQTT 3.1.1 client (id "fx-pub-<pid>-<n>") to the
 * env's mosquitto with libmosquitto's own network thread (mosquitto_loop_start;
 * fine in tests, not in the exchange), and waits for CONNACK. The client
 * reconnects by itself after a broker restart. Belongs to env (fx_stop closes
 * it) until fx_mqtt_close. Aborts on failure. mosquitto_lib_init runs once per
 * process. */
fx_mqtt *fx_mqtt_connect(fx_env *env);

/* Publishes len bytes of payload on topic with qos (0, 1 or 2), not retained,
 * and for qos > 0 waits up to FX_START_TIMEOUT_MS for the broker's PUBACK /
 * PUBCOMP. Returns the message id. Aborts when libmosquitto refuses the
 * message or the acknowledgement does not come. */
int fx_mqtt_publish(fx_mqtt *m, const char *topic, const void *payload, size_t len, int qos);

/* Publishes without waiting for the acknowledgement. Returns the message id,
 * or -1 when libmosquitto refused it (e.g. not connected; nothing queued). */
int fx_mqtt_publish_nowait(fx_mqtt *m, const char *topic, const void *payload, size_t len, int qos);

/* Waits up to timeout_ms until every message published through m was sent
 * (qos 0) or acknowledged (qos > 0). Returns 0, or -1 on timeout. */
int fx_mqtt_flush(fx_mqtt *m, int timeout_ms);

/* Waits up to timeout_ms until m is connected (CONNACK accepted). Returns 0,
 * or -1 on timeout. */
int fx_mqtt_wait_connected(fx_mqtt *m, int timeout_ms);

/* Disconnects, stops the network thread and frees m. NULL is a no-op. */
void fx_mqtt_close(fx_mqtt *m);

/* ---- HTTP (raw socket, HTTP/1.0, Connection: close) ----------------- */

/* Sends "METHOD path HTTP/1.0" to 127.0.0.1:port; with a non-NULL body also
 * Content-Type: application/json, x-openrtb-version: 2.6 and Content-Length.
 * Reads the whole answer within timeout_ms. Returns the status code (e.g.
 * 200) and, when resp_body is not NULL, the body in *resp_body (malloc'd,
 * NUL-terminated, caller frees; "" when empty). Returns -1 (and *resp_body
 * NULL) on connection error, timeout or a malformed answer. Never aborts. */
int fx_http(int port, const char *method, const char *path, const char *body, char **resp_body,
            int timeout_ms);

#endif /* RTB_TESTS_FIXTURE_H */

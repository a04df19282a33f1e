/* mosq_ev.h -- libmosquitto driven by a libevent loop: the adapter, once.
 *
 * libmosquitto can leave the loop to its user (mosquitto_socket,
 * mosquitto_want_write, mosquitto_loop_read/write/misc). This adapter is
 * that user for rtb-exchange (rtb/mqtt.c) and rtb-loadgen: it watches the
 * client's socket for reading (persistent) and for writing while
 * libmosquitto has output queued, runs mosquitto_loop_misc every 200 ms for
 * keepalive, keeps reading while OpenSSL holds decrypted bytes, and when the
 * connection goes away reconnects with exponential backoff (glue/backoff.h)
 * until told to stop. Like hiredis's adapters/libevent.h it is small and
 * may be freed inside any callback it runs (see mosq_ev_free).
 *
 * The client stays the caller's: it sets libmosquitto's callbacks, options
 * and TLS, publishes and subscribes; the adapter only moves bytes and
 * reconnects. Rules implemented: MQTT 3.1.1 section 3.1.2.10 (keepalive). */
#ifndef GLUE_MOSQ_EV_H
#define GLUE_MOSQ_EV_H

#include <stdint.h>

struct event_base;
struct mosquitto;

typedef struct mosq_ev mosq_ev;

/* The connection went away (`was_connected` 1: it had a CONNACK), or an
 * attempt to make one failed (0). `rc` is libmosquitto's error code
 * (MOSQ_ERR_*; for MOSQ_ERR_ERRNO, errno is as the failing call left it).
 * Runs with the socket already unwatched and the next attempt already
 * scheduled (after the backoff); mosq_ev_detach inside cancels it, and
 * mosq_ev_free inside is safe. */
typedef void mosq_ev_down_fn(void *arg, int rc, int was_connected);

/* An adapter for `mosq` (borrowed: it must outlive the adapter) on `base`.
 * Reconnects wait `retry_min_us` after the first failure, doubling up to
 * `retry_max_us`. `on_down` (required) gets `arg`. Nothing is watched until
 * mosq_ev_connect. Returns NULL when out of memory. */
mosq_ev *mosq_ev_new(struct event_base *base, struct mosquitto *mosq, int64_t retry_min_us,
                     int64_t retry_max_us, mosq_ev_down_fn *on_down, void *arg);

/* Start connecting (mosquitto_connect_async to `host`:`port`, keepalive
 * `keepalive_s` seconds) and watch the socket. Returns MOSQ_ERR_SUCCESS, or
 * libmosquitto's error code (MOSQ_ERR_NOMEM when the events cannot be made);
 * either way the adapter keeps trying: after a failure a reconnect is
 * already scheduled, and on_down is not called for this one. */
int mosq_ev_connect(mosq_ev *e, const char *host, int port, int keepalive_s);

/* Call from the client's connect callback when the broker accepted the
 * connection (CONNACK return code 0): the backoff starts over and
 * mosq_ev_connected says 1 until the connection goes away. */
void mosq_ev_connack(mosq_ev *e);

/* 1 between an accepted CONNACK and the loss of that connection. */
int mosq_ev_connected(const mosq_ev *e);

/* Call after queueing output outside the adapter's own callbacks
 * (mosquitto_publish, _subscribe, _unsubscribe from a timer or another
 * socket's event): watches the socket for writing when libmosquitto wants
 * to write. Inside the adapter's callbacks it is done anyway. */
void mosq_ev_update_write(mosq_ev *e);

/* Stop: unwatch the socket, stop the keepalive timer, cancel a scheduled
 * reconnect; mosq_ev_connected says 0 from now on. The client is left as it
 * is (no DISCONNECT); mosq_ev_connect starts again. */
void mosq_ev_detach(mosq_ev *e);

/* Send DISCONNECT when connected (best effort, one write), detach and free
 * the adapter; NULL is a no-op. Safe inside any callback that one of the
 * adapter's events runs (libmosquitto's, on_down): the memory goes when that
 * event's handler returns. `mosq` is not destroyed. */
void mosq_ev_free(mosq_ev *e);

#endif

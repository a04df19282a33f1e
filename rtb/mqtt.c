/* mqtt.c -- the exchange's MQTT client: subscriptions, TLS, what to log.
 *
 * libmosquitto does not own a loop here (none of its own threads): the
 * adapter of glue/mosq_ev.h drives it on the server's libevent loop (socket
 * events, the keepalive timer, reading on while OpenSSL holds bytes) and
 * reconnects with backoff (100 ms doubling to 5 s). This file decides what
 * the client does with a connection: subscribing happens in the CONNACK
 * callback, so every reconnect resubscribes; a lost connection and a failed
 * attempt are reported to the server and logged.
 *
 * TLS (mqtt.tls): the files are checked with OpenSSL before libmosquitto
 * gets them, so a bad path or a key that does not fit its certificate is a
 * config error at start (exit 2), not a retry loop. The broker's certificate
 * must chain to mqtt.tls.cafile and name mqtt.host (SAN DNS or IP); a
 * failed handshake is logged and retried like a refused TCP connect. */
#include "rtb/mqtt.h"

#include "rtb/log.h"

#include "glue/mosq_ev.h"

#include <mosquitto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_TOPIC "rtb/events/+"
#define RETRY_MIN_US 100000
#define RETRY_MAX_US 5000000
#define KEEPALIVE_S 10 /* a hung exchange loses its shared-group share after 1.5x this */

struct rtb_mqtt {
    const proto_config *cfg;
    struct mosquitto *mosq;
    mosq_ev *ev;         /* drives mosq on the loop */
    char *topic;         /* subscription: topic, or $share/{group}/topic */
    char *events;        /* rtb/events/+, or $share/{group}/rtb/events/+ (SPEC 10) */
    int unsubscribed;    /* draining: do not resubscribe */
    char tls_error[256]; /* libmosquitto's last error line (TLS only), for the log */
    rtb_mqtt_message_fn *on_message;
    rtb_mqtt_state_fn *on_state;
    void *arg;
};

/* libmosquitto reports why a TLS handshake failed only through its log
 * (the OpenSSL error queue is drained by then); keep the last error line. Its
 * lines name packets and client ids, never credentials. */
static void on_mosq_log(struct mosquitto *mosq, void *obj, int level, const char *str) {
    (void)mosq;
    rtb_mqtt *m = obj;
    if (level != MOSQ_LOG_ERR && level != MOSQ_LOG_WARNING) return;
    if (level == MOSQ_LOG_ERR) snprintf(m->tls_error, sizeof(m->tls_error), "%s", str);
    rtb_log(PROTO_LOG_DEBUG, "mqtt: libmosquitto: %s", str);
}

/* The log callback costs a formatted line per packet, so it is on only while
 * a TLS connection is being made (until CONNACK). */
static void capture_errors(rtb_mqtt *m, int on) {
    if (m->cfg->mqtt.tls) mosquitto_log_callback_set(m->mosq, on ? on_mosq_log : NULL);
}

/* A connection attempt ended before CONNACK. Without TLS only the first
 * one is worth a warning (the broker is down: the retries say nothing new).
 * With TLS every one is: a wrong CA, a certificate for another name, a
 * client certificate the broker wants or refuses do not heal by themselves,
 * and the backoff keeps it to one line per 5 s. The adapter has scheduled
 * the next attempt already. */
static void attempt_failed(rtb_mqtt *m, int rc, int first) {
    const char *why = mosquitto_strerror(rc);
    if (m->tls_error[0]) { /* "OpenSSL Error[0]: error:0A000086:SSL routines::certificate ..." */
        const char *colons = strstr(m->tls_error, "::");
        why = colons ? colons + 2 : m->tls_error;
    }
    const char *what = m->cfg->mqtt.tls ? "TLS connection" : "connect";
    rtb_log(first || m->cfg->mqtt.tls ? PROTO_LOG_WARN : PROTO_LOG_DEBUG,
            "mqtt: %s to %s:%ld failed: %s; retrying", what, m->cfg->mqtt.host, m->cfg->mqtt.port,
            why);
    m->tls_error[0] = '\0';
}

/* The adapter's on_down: the connection went away, or an attempt failed. */
static void on_down(void *arg, int rc, int was_connected) {
    rtb_mqtt *m = arg;
    if (!was_connected) {
        attempt_failed(m, rc, 0);
        return;
    }
    char why[160];
    snprintf(why, sizeof(why), "connection to %s:%ld lost: %s", m->cfg->mqtt.host,
             m->cfg->mqtt.port, mosquitto_strerror(rc));
    capture_errors(m, 1);
    m->on_state(m->arg, 0, 0, why);
}

static void on_connack(struct mosquitto *mosq, void *obj, int rc) {
    rtb_mqtt *m = obj;
    if (rc != 0) {
        /* 4 bad user name or password, 5 not authorised (MQTT 3.1.1 3.2.2.3) */
        int refused = rc == 4 || rc == 5;
        char why[160];
        snprintf(why, sizeof(why), "broker %s:%ld refused the connection: %s", m->cfg->mqtt.host,
                 m->cfg->mqtt.port, mosquitto_connack_string(rc));
        m->on_state(m->arg, 0, refused, why);
        return;
    }
    mosq_ev_connack(m->ev);
    capture_errors(m, 0);
    if (!m->unsubscribed) {
        /* Requests and ad events in one SUBSCRIBE, so one SUBACK says both. */
        char *const topics[2] = {m->topic, m->events};
        int src =
            mosquitto_subscribe_multiple(mosq, NULL, 2, topics, (int)m->cfg->mqtt.qos, 0, NULL);
        if (src != MOSQ_ERR_SUCCESS)
            rtb_log(PROTO_LOG_ERROR, "mqtt: subscribe %s and %s failed: %s", m->topic, m->events,
                    mosquitto_strerror(src));
    }
    char why[160];
    snprintf(why, sizeof(why), "connected to %s:%ld, subscribing to %s", m->cfg->mqtt.host,
             m->cfg->mqtt.port, m->topic);
    m->on_state(m->arg, 1, 0, why);
}

/* SUBACK: only now does the broker route requests to us. */
static void on_suback(struct mosquitto *mosq, void *obj, int mid, int qos_count,
                      const int *granted_qos) {
    (void)mosq;
    (void)mid;
    rtb_mqtt *m = obj;
    if (qos_count < 1 || granted_qos[0] > 2) {
        rtb_log(PROTO_LOG_ERROR, "mqtt: the broker refused the subscription to %s", m->topic);
        return;
    }
    if (qos_count < 2 || granted_qos[1] > 2)
        rtb_log(PROTO_LOG_ERROR, "mqtt: the broker refused the subscription to %s", m->events);
    rtb_log(PROTO_LOG_INFO, "mqtt: subscribed to %s (QoS %d) and %s", m->topic, granted_qos[0],
            m->events);
}

static void on_msg(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg) {
    (void)mosq;
    rtb_mqtt *m = obj;
    m->on_message(m->arg, msg->topic, msg->payload ? msg->payload : "",
                  msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0);
}

/* An encrypted key would make OpenSSL ask on the terminal: refuse instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata) {
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)userdata;
    return -1;
}

/* OpenSSL's reason for the last failure, and an empty error queue. */
static const char *ssl_reason(char *buf, size_t len) {
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, len, "%s", r ? r : "unknown error");
    ERR_clear_error();
    return buf;
}

static int check_readable(const char *key, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "mqtt.tls: %s %s: cannot read it: %s", key, path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

static void key_error(const char *key, const char *cert, char *err, size_t errlen) {
    unsigned long e = ERR_peek_last_error();
    char why[128];
    if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
        ERR_clear_error();
        snprintf(err, errlen, "mqtt.tls: keyfile %s does not match certfile %s", key, cert);
        return;
    }
    snprintf(err, errlen,
             "mqtt.tls: keyfile %s: no usable PEM private key in it (%s; keys with a passphrase "
             "are not supported)",
             key, ssl_reason(why, sizeof(why)));
}

/* Load the files the way the handshake will, so that every problem with
 * them is reported at start, naming the key. Never prints a file's content. */
static int check_tls_files(const proto_config *cfg, char *err, size_t errlen) {
    const char *ca = cfg->mqtt.tls_cafile, *cert = cfg->mqtt.tls_certfile,
               *key = cfg->mqtt.tls_keyfile;
    if (check_readable("cafile", ca, err, errlen) != 0 ||
        (cert && check_readable("certfile", cert, err, errlen) != 0) ||
        (key && check_readable("keyfile", key, err, errlen) != 0))
        return -1;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "mqtt: cannot create a TLS context (out of memory)");
        return -1;
    }
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    char why[128];
    int rc = -1;
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
        snprintf(err, errlen, "mqtt.tls: cafile %s: no PEM CA certificate in it (%s)", ca,
                 ssl_reason(why, sizeof(why)));
    else if (cert && SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        snprintf(err, errlen, "mqtt.tls: certfile %s: no PEM certificate in it (%s)", cert,
                 ssl_reason(why, sizeof(why)));
    else if (key && SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        key_error(key, cert, err, errlen);
    else if (key && SSL_CTX_check_private_key(ctx) != 1)
        snprintf(err, errlen, "mqtt.tls: keyfile %s does not match certfile %s (%s)", key, cert,
                 ssl_reason(why, sizeof(why)));
    else
        rc = 0;
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

/* Certificate-based TLS; the broker is verified (SSL_VERIFY_PEER, and
 * libmosquitto checks that its certificate names mqtt.host). */
static int setup_tls(rtb_mqtt *m, char *err, size_t errlen) {
    const proto_config *cfg = m->cfg;
    if (check_tls_files(cfg, err, errlen) != 0) return -1;
    int rc = mosquitto_tls_set(m->mosq, cfg->mqtt.tls_cafile, NULL, cfg->mqtt.tls_certfile,
                               cfg->mqtt.tls_keyfile, no_passphrase);
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_tls_opts_set(m->mosq, SSL_VERIFY_PEER, NULL, NULL);
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_tls_insecure_set(m->mosq, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(err, errlen, "mqtt.tls: libmosquitto refused the TLS settings: %s",
                 mosquitto_strerror(rc));
        return -1;
    }
    capture_errors(m, 1);
    return 0;
}

rtb_mqtt *rtb_mqtt_new(struct event_base *base, const proto_config *cfg,
                       rtb_mqtt_message_fn *on_message, rtb_mqtt_state_fn *on_state, void *arg,
                       char *err, size_t errlen) {
    rtb_mqtt *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->cfg = cfg;
    m->on_message = on_message;
    m->on_state = on_state;
    m->arg = arg;
    const char *group = cfg->mqtt.shared_group;
    size_t tlen = strlen(cfg->mqtt.topic) + (group ? strlen(group) + 9 : 0) + 1;
    m->topic = malloc(tlen);
    if (m->topic) {
        if (group)
            snprintf(m->topic, tlen, "$share/%s/%s", group, cfg->mqtt.topic);
        else
            snprintf(m->topic, tlen, "%s", cfg->mqtt.topic);
    }
    size_t elen = strlen(EVENTS_TOPIC) + (group ? strlen(group) + 9 : 0) + 1;
    m->events = malloc(elen);
    if (m->events) {
        if (group)
            snprintf(m->events, elen, "$share/%s/%s", group, EVENTS_TOPIC);
        else
            snprintf(m->events, elen, "%s", EVENTS_TOPIC);
    }
    /* A persistent session (clean_session false) keeps QoS 1 requests queued
     * by the broker while we reconnect; a shared group keeps none (SPEC 12). */
    m->mosq = mosquitto_new(cfg->mqtt.client_id, group != NULL, m);
    if (m->mosq) m->ev = mosq_ev_new(base, m->mosq, RETRY_MIN_US, RETRY_MAX_US, on_down, m);
    if (!m->topic || !m->events || !m->mosq || !m->ev) {
        snprintf(err, errlen, "mqtt: cannot create the client (out of memory)");
        rtb_mqtt_free(m);
        return NULL;
    }
    if (group) mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    if (cfg->mqtt.username && mosquitto_username_pw_set(m->mosq, cfg->mqtt.username,
                                                        cfg->mqtt.password) != MOSQ_ERR_SUCCESS) {
        snprintf(err, errlen, "mqtt: cannot set the credentials");
        rtb_mqtt_free(m);
        return NULL;
    }
    if (cfg->mqtt.tls && setup_tls(m, err, errlen) != 0) {
        rtb_mqtt_free(m);
        return NULL;
    }
    mosquitto_connect_callback_set(m->mosq, on_connack);
    mosquitto_message_callback_set(m->mosq, on_msg);
    mosquitto_subscribe_callback_set(m->mosq, on_suback);
    return m;
}

void rtb_mqtt_start(rtb_mqtt *m) {
    int rc = mosq_ev_connect(m->ev, m->cfg->mqtt.host, (int)m->cfg->mqtt.port, KEEPALIVE_S);
    if (rc != MOSQ_ERR_SUCCESS) attempt_failed(m, rc, 1);
}

void rtb_mqtt_unsubscribe(rtb_mqtt *m) {
    m->unsubscribed = 1;
    if (!mosq_ev_connected(m->ev)) return;
    mosquitto_unsubscribe(m->mosq, NULL, m->topic);
    mosq_ev_update_write(m->ev);
}

int rtb_mqtt_connected(const rtb_mqtt *m) {
    return mosq_ev_connected(m->ev);
}

void rtb_mqtt_free(rtb_mqtt *m) {
    if (!m) return;
    mosq_ev_free(m->ev); /* sends DISCONNECT when connected */
    if (m->mosq) mosquitto_destroy(m->mosq);
    free(m->topic);
    free(m->events);
    free(m);
}

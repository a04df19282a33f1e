/* mqtt.c -- libmosquitto driven by the server's libevent loop.
 *
 * libmosquitto does not own a loop here (no mosquitto_loop_start threads):
 * its socket is registered for EV_READ (persistent) and for EV_WRITE while
 * mosquitto_want_write() says output is queued; a 200 ms timer runs
 * mosquitto_loop_misc() for keepalive. Any error from a loop call means the
 * connection is gone: the events are dropped and a timer reconnects with
 * backoff (100 ms doubling to 5 s). Subscribing happens in the CONNACK
 * callback, so every reconnect resubscribes. */
#include "rtb/rtb.h"

#include <event2/event.h>
#include <mosquitto.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define KEEPALIVE_S 30
#define MISC_INTERVAL_US 200000

struct rtb_mqtt {
    struct event_base *base;
    const proto_config *cfg;
    struct mosquitto *mosq;
    struct event *rev, *wev, *misc, *retry;
    char *topic;      /* subscription: topic, or $share/{group}/topic */
    int connected;
    int unsubscribed; /* draining: do not resubscribe */
    int backoff_ms;
    rtb_mqtt_message_fn *on_message;
    rtb_mqtt_state_fn *on_state;
    void *arg;
};

static void detach(rtb_mqtt *m) {
    if (m->rev) event_free(m->rev);
    if (m->wev) event_free(m->wev);
    m->rev = m->wev = NULL;
}

static void schedule_retry(rtb_mqtt *m) {
    struct timeval tv = {m->backoff_ms / 1000, (m->backoff_ms % 1000) * 1000};
    evtimer_add(m->retry, &tv);
    m->backoff_ms = m->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : m->backoff_ms * 2;
}

static void lost(rtb_mqtt *m, int rc) {
    detach(m);
    if (m->connected) {
        char why[160];
        snprintf(why, sizeof(why), "connection to %s:%ld lost: %s", m->cfg->mqtt.host,
                 m->cfg->mqtt.port, mosquitto_strerror(rc));
        m->connected = 0;
        m->on_state(m->arg, 0, 0, why);
    }
    schedule_retry(m);
}

static void update_write(rtb_mqtt *m) {
    if (m->wev && mosquitto_want_write(m->mosq)) event_add(m->wev, NULL);
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rtb_mqtt *m = arg;
    int rc = mosquitto_loop_read(m->mosq, 1);
    if (rc != MOSQ_ERR_SUCCESS) {
        lost(m, rc);
        return;
    }
    update_write(m);
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rtb_mqtt *m = arg;
    int rc = mosquitto_loop_write(m->mosq, 1);
    if (rc != MOSQ_ERR_SUCCESS) {
        lost(m, rc);
        return;
    }
    update_write(m);
}

static void on_misc(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rtb_mqtt *m = arg;
    if (!m->rev) return;
    int rc = mosquitto_loop_misc(m->mosq);
    if (rc != MOSQ_ERR_SUCCESS) {
        lost(m, rc);
        return;
    }
    update_write(m);
}

static void attach(rtb_mqtt *m) {
    int sock = mosquitto_socket(m->mosq);
    if (sock < 0) {
        schedule_retry(m);
        return;
    }
    m->rev = event_new(m->base, sock, EV_READ | EV_PERSIST, on_read, m);
    m->wev = event_new(m->base, sock, EV_WRITE, on_write, m);
    if (!m->rev || !m->wev) {
        detach(m);
        schedule_retry(m);
        return;
    }
    event_add(m->rev, NULL);
    update_write(m);
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    rtb_mqtt *m = arg;
    int rc = mosquitto_reconnect_async(m->mosq);
    if (rc != MOSQ_ERR_SUCCESS) {
        rtb_log(PROTO_LOG_DEBUG, "mqtt: reconnect to %s:%ld failed: %s", m->cfg->mqtt.host,
                m->cfg->mqtt.port, mosquitto_strerror(rc));
        schedule_retry(m);
        return;
    }
    attach(m);
}

static void on_connack(struct mosquitto *mosq, void *obj, int rc) {
    rtb_mqtt *m = obj;
    if (rc != 0) {
        /* 4 bad user name or password, 5 not authorised (MQTT 3.1.1 3.2.2.3) */
        int refused = rc == 4 || rc == 5;
        char why[160];
        snprintf(why, sizeof(why), "broker %s:%ld refused the connection: %s",
                 m->cfg->mqtt.host, m->cfg->mqtt.port, mosquitto_connack_string(rc));
        m->on_state(m->arg, 0, refused, why);
        return;
    }
    m->connected = 1;
    m->backoff_ms = BACKOFF_MIN_MS;
    if (!m->unsubscribed) {
        int src = mosquitto_subscribe(mosq, NULL, m->topic, (int)m->cfg->mqtt.qos);
        if (src != MOSQ_ERR_SUCCESS)
            rtb_log(PROTO_LOG_ERROR, "mqtt: subscribe %s failed: %s", m->topic,
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
    rtb_log(PROTO_LOG_INFO, "mqtt: subscribed to %s (QoS %d)", m->topic, granted_qos[0]);
}

static void on_msg(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg) {
    (void)mosq;
    rtb_mqtt *m = obj;
    m->on_message(m->arg, msg->topic, msg->payload ? msg->payload : "",
                  msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0);
}

rtb_mqtt *rtb_mqtt_new(struct event_base *base, const proto_config *cfg,
                       rtb_mqtt_message_fn *on_message, rtb_mqtt_state_fn *on_state, void *arg,
                       char *err, size_t errlen) {
    if (cfg->mqtt.tls) {
        snprintf(err, errlen, "mqtt.tls: TLS to the broker is not supported yet");
        return NULL;
    }
    rtb_mqtt *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->base = base;
    m->cfg = cfg;
    m->on_message = on_message;
    m->on_state = on_state;
    m->arg = arg;
    m->backoff_ms = BACKOFF_MIN_MS;
    const char *group = cfg->mqtt.shared_group;
    size_t tlen = strlen(cfg->mqtt.topic) + (group ? strlen(group) + 9 : 0) + 1;
    m->topic = malloc(tlen);
    if (m->topic) {
        if (group)
            snprintf(m->topic, tlen, "$share/%s/%s", group, cfg->mqtt.topic);
        else
            snprintf(m->topic, tlen, "%s", cfg->mqtt.topic);
    }
    /* A persistent session (clean_session false) keeps QoS 1 requests queued
     * by the broker while we reconnect; a shared group keeps none (SPEC 12). */
    m->mosq = mosquitto_new(cfg->mqtt.client_id, group != NULL, m);
    m->misc = event_new(base, -1, EV_PERSIST, on_misc, m);
    m->retry = evtimer_new(base, on_retry, m);
    if (!m->topic || !m->mosq || !m->misc || !m->retry) {
        snprintf(err, errlen, "mqtt: cannot create the client (out of memory)");
        rtb_mqtt_free(m);
        return NULL;
    }
    if (group) mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    if (cfg->mqtt.username &&
        mosquitto_username_pw_set(m->mosq, cfg->mqtt.username, cfg->mqtt.password) !=
            MOSQ_ERR_SUCCESS) {
        snprintf(err, errlen, "mqtt: cannot set the credentials");
        rtb_mqtt_free(m);
        return NULL;
    }
    mosquitto_connect_callback_set(m->mosq, on_connack);
    mosquitto_message_callback_set(m->mosq, on_msg);
    mosquitto_subscribe_callback_set(m->mosq, on_suback);
    return m;
}

void rtb_mqtt_start(rtb_mqtt *m) {
    struct timeval tv = {0, MISC_INTERVAL_US};
    event_add(m->misc, &tv);
    int rc = mosquitto_connect_async(m->mosq, m->cfg->mqtt.host, (int)m->cfg->mqtt.port,
                                     KEEPALIVE_S);
    if (rc != MOSQ_ERR_SUCCESS) {
        rtb_log(PROTO_LOG_WARN, "mqtt: connect to %s:%ld failed: %s; retrying",
                m->cfg->mqtt.host, m->cfg->mqtt.port, mosquitto_strerror(rc));
        schedule_retry(m);
        return;
    }
    attach(m);
}

void rtb_mqtt_unsubscribe(rtb_mqtt *m) {
    m->unsubscribed = 1;
    if (!m->connected) return;
    mosquitto_unsubscribe(m->mosq, NULL, m->topic);
    update_write(m);
}

int rtb_mqtt_connected(const rtb_mqtt *m) {
    return m->connected;
}

void rtb_mqtt_free(rtb_mqtt *m) {
    if (!m) return;
    if (m->mosq && m->connected) {
        mosquitto_disconnect(m->mosq);
        mosquitto_loop_write(m->mosq, 1);
    }
    detach(m);
    if (m->misc) event_free(m->misc);
    if (m->retry) event_free(m->retry);
    if (m->mosq) mosquitto_destroy(m->mosq);
    free(m->topic);
    free(m);
}

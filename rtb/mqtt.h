/* mqtt.h -- the exchange's MQTT client: libmosquitto driven by the
 * server's libevent loop (SPEC 1, 2, 10, 12): the request topic and the ad
 * event topic, QoS mqtt.qos, a shared group when mqtt.shared_group is set,
 * TLS when mqtt.tls is. */
#ifndef RTB_MQTT_H
#define RTB_MQTT_H

#include <stddef.h>

#include "proto/proto.h"

struct event_base;

typedef struct rtb_mqtt rtb_mqtt;
/* A message on the request or event topic; `payload` valid only during the
 * call. */
typedef void rtb_mqtt_message_fn(void *arg, const char *topic, const char *payload, size_t len);
/* Connection state: `auth_refused` when the broker refused the credentials. */
typedef void rtb_mqtt_state_fn(void *arg, int connected, int auth_refused, const char *why);

/* Create the client (not connected yet). `cfg` is borrowed for the client's
 * life. Returns NULL with a message in `err` (bad TLS files: the message
 * starts with "mqtt.tls", a config error; memory). */
rtb_mqtt *rtb_mqtt_new(struct event_base *base, const proto_config *cfg,
                       rtb_mqtt_message_fn *on_message, rtb_mqtt_state_fn *on_state, void *arg,
                       char *err, size_t errlen);
/* Start connecting; subscribes (QoS mqtt.qos) on every CONNACK, so a
 * reconnect resubscribes. Reconnects with backoff by itself. */
void rtb_mqtt_start(rtb_mqtt *m);
/* Stop taking requests: UNSUBSCRIBE the request topic (drain). */
void rtb_mqtt_unsubscribe(rtb_mqtt *m);
/* 1 when connected to the broker. */
int rtb_mqtt_connected(const rtb_mqtt *m);
/* Disconnect and free. NULL is a no-op. */
void rtb_mqtt_free(rtb_mqtt *m);

#endif

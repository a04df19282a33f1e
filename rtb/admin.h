/* admin.h -- the admin HTTP listener (SPEC 11): GET /healthz, /metrics
 * (Prometheus text format 0.0.4), the dashboard page /, /api/stats (JSON)
 * and /api/stream (Server-Sent Events). It only reads the server. */
#ifndef RTB_ADMIN_H
#define RTB_ADMIN_H

#include <stddef.h>

#include "rtb/server.h"

struct event_base;

typedef struct rtb_admin rtb_admin;

/* GET /api/stream clients at most; past it the answer is 503. */
#define RTB_ADMIN_MAX_STREAMS 32

/* Listen on `listen` ("host:port") with evhttp on `base`, serving `srv`
 * (borrowed for the listener's life): GET /healthz -> 200 "ok" when MQTT
 * and Redis are connected, else 503 with the reason. Returns NULL with a
 * message in `err` when the address is bad (the message starts with
 * "admin.listen": a config error) or taken. */
rtb_admin *rtb_admin_new(struct event_base *base, const rtb_server *srv, const char *listen,
                         char *err, size_t errlen);
void rtb_admin_free(rtb_admin *a);
/* Send the current /api/stats JSON as one Server-Sent Event ("data: ...")
 * to every /api/stream client. Called once a second, after each sample. A
 * client whose unsent output passed 1 MiB is dropped. */
void rtb_admin_broadcast(rtb_admin *a);

#endif

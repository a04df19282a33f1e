/* admin.h -- the admin HTTP listener (SPEC 11): GET /healthz, /metrics
 * (Prometheus text format 0.0.4), the dashboard page /, /api/stats (JSON),
 * /api/stream (Server-Sent Events) and the campaign view /api/advertisers
 * and /api/advertisers/{id} (SPEC 16, campaign.h), within the bounds of
 * SPEC 15; and the alert rules of SPEC 16: GET and POST /api/alerts, DELETE
 * /api/alerts/{name}, writes behind Authorization: Bearer {admin.token}. It
 * only reads the server (and, for the campaign view, Redis); it writes the
 * alert rules through their module. */
#ifndef RTB_ADMIN_H
#define RTB_ADMIN_H

#include <stddef.h>

#include "rtb/alerts.h"
#include "rtb/server.h"

struct event_base;

typedef struct rtb_admin rtb_admin;

/* GET /api/stream clients at most; past it the answer is 503. */
#define RTB_ADMIN_MAX_STREAMS 32
/* SPEC 15: the request line and headers of a request, in bytes at most
 * (evhttp answers 400 past it and closes). */
#define RTB_ADMIN_MAX_HEADER_BYTES 8192
/* SPEC 15: the largest request body any route takes, in bytes (evhttp
 * answers 413 to a longer one before reading it): POST /api/alerts. */
#define RTB_ADMIN_MAX_BODY_BYTES 16384
/* SPEC 15: a connection that sends nothing for this long, in seconds, is
 * closed; a stream is never closed for that. */
#define RTB_ADMIN_IDLE_TIMEOUT_S 30
/* SPEC 15: connections at most; past it the one idle the longest (never a
 * stream) is closed to make room. */
#define RTB_ADMIN_MAX_CONNECTIONS 256

/* Listen on `listen` ("host:port", admin.listen) with evhttp on `base`,
 * serving `srv` and changing the alert rules `alerts` (both borrowed for
 * the listener's life; free the listener first): GET /healthz -> 200
 * "ok" when MQTT and Redis are connected, else 503 with the reason. A
 * request is answered only when its Host names the listener: localhost,
 * 127.0.0.1, [::1], listen's host or a name of admin.allowed_hosts (read
 * from rtb_server_config(srv)), with any port (SPEC 15). Returns NULL with a
 * message in `err` when the address is bad (the message starts with
 * "admin.listen": a config error) or taken, or memory ran out. */
rtb_admin *rtb_admin_new(struct event_base *base, const rtb_server *srv, rtb_alerts *alerts,
                         const char *listen, char *err, size_t errlen);
void rtb_admin_free(rtb_admin *a);
/* Send the current /api/stats JSON as one Server-Sent Event ("data: ...")
 * to every /api/stream client. Called once a second, after each sample. A
 * client whose unsent output passed 1 MiB is dropped. */
void rtb_admin_broadcast(rtb_admin *a);

#endif

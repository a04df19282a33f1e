/* server.h -- the one server context: it owns the loop's parts (MQTT,
 * Redis, HTTP, the registry, the auctions in flight, notices, events, the
 * admin listener, the sampler and the alert rules) and wires them together.
 *
 * To everything else the server is opaque: observers (the admin listener,
 * the dashboard) read it through the functions below, which never change
 * it. */
#ifndef RTB_SERVER_H
#define RTB_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"
#include "rtb/admission.h"
#include "rtb/bidder.h"
#include "rtb/ledger.h"
#include "rtb/notice.h"
#include "rtb/stats.h"
#include "store/store.h"

struct event_base;

typedef struct rtb_server rtb_server;
typedef struct rtb_sampler rtb_sampler;
typedef struct rtb_alerts rtb_alerts;
typedef struct rtb_minutes rtb_minutes;

/* Build the server on `base` from `cfg` (both borrowed for the server's
 * life): connects Redis, loads the registry, then connects MQTT. Returns
 * NULL with a message in `err`; a message that starts with a config key
 * ("mqtt.tls...", "admin.listen...") is a config error (SPEC 7: exit 2). */
rtb_server *rtb_server_new(struct event_base *base, proto_config *cfg, char *err, size_t errlen);
/* Run the loop until shutdown; returns the process exit code (SPEC 7). */
int rtb_server_run(rtb_server *srv);
/* Close the auctions still open (their results are published if Redis
 * takes them), then free everything. NULL is a no-op. */
void rtb_server_free(rtb_server *srv);

/* ---- Reading the server (observers) ----------------------------------------------- */

const proto_config *rtb_server_config(const rtb_server *srv);
const rtb_stats *rtb_server_stats(const rtb_server *srv);
const rtb_latency_bounds *rtb_server_latency_bounds(const rtb_server *srv);
/* The per-second samples (dashboard rates, alert windows). */
const rtb_sampler *rtb_server_sampler(const rtb_server *srv);
/* The alert rules and their states. */
const rtb_alerts *rtb_server_alerts(const rtb_server *srv);
/* Per advertiser, this exchange's last 60 minutes (the campaign view). */
const rtb_minutes *rtb_server_minutes(const rtb_server *srv);
/* The Redis store, for observers that read from Redis (the campaign view's
 * group-wide totals, SPEC 16); they only read. Borrowed: it lives until
 * rtb_server_free, which answers what is still out with STORE_ERR. */
store *rtb_server_store(const rtb_server *srv);

/* Call fn(arg, index, bidder) for every advertiser the server knows, active
 * or not, in index order (indexes never change; the set only grows). */
typedef void rtb_server_bidder_fn(void *arg, size_t index, const rtb_bidder *b);
void rtb_server_each_bidder(const rtb_server *srv, rtb_server_bidder_fn *fn, void *arg);

typedef struct rtb_server_health {
    int mqtt_connected;  /* to the broker */
    int redis_connected; /* the command connection, authenticated */
    int draining;        /* a signal came: no new requests */
    size_t inflight;     /* auctions open */
    int64_t uptime_us;
} rtb_server_health;
void rtb_server_health_get(const rtb_server *srv, rtb_server_health *out);

/* Admission: the adaptive limit, the loop's lag and utilisation, what was
 * shed (SPEC 13). */
const rtb_admission *rtb_server_admission(const rtb_server *srv);

/* Bids refused one by one (SPEC 17), and the currency rates in use. */
const rtb_txn_counts *rtb_server_txn_counts(const rtb_server *srv);
size_t rtb_server_currency_rates(const rtb_server *srv);

/* Redis: its counters, the results waiting to be published (entries and
 * bytes) and the other commands waiting for an answer (SPEC 15). */
const store_stats *rtb_server_store_stats(const rtb_server *srv);
size_t rtb_server_results_queued(const rtb_server *srv);
size_t rtb_server_results_queued_bytes(const rtb_server *srv);
size_t rtb_server_redis_commands_pending(const rtb_server *srv);
/* Notices: counters and how many are out. */
const rtb_notice_stats *rtb_server_notice_stats(const rtb_server *srv);
size_t rtb_server_notices_pending(const rtb_server *srv);
/* Billing and kept notices (SPEC 14). */
const rtb_ledger_stats *rtb_server_ledger_stats(const rtb_server *srv);

#endif

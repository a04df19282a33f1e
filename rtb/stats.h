/* stats.h -- the exchange's counters and its auction latency histogram
 * (SPEC 11 /metrics, the dashboard, alert rules).
 *
 * Counters only grow; readers take differences (the sampler, rates). The
 * latency histogram's bucket bounds come from auction.tmax_ms, dense around
 * the deadline where the SPEC 4 timing promise (tmax + 5 ms) is decided:
 * tmax/100, /50, /20, /10, /5, /2, 3/4 of it, tmax, tmax + 2, + 5 and
 * + 10 ms, 1.5, 2, 5 and 10 tmax, then +Inf. Pure: no I/O, no clock. */
#ifndef RTB_STATS_H
#define RTB_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

#define RTB_LATENCY_BUCKETS 16

/* Upper bounds of the buckets, in µs, strictly increasing; the last bucket
 * (RTB_LATENCY_BUCKETS - 1) is +Inf. */
typedef struct rtb_latency_bounds {
    int64_t us[RTB_LATENCY_BUCKETS - 1];
} rtb_latency_bounds;

/* The bounds for a deadline of `tmax_ms` (>= 1), as the top of this file
 * says; bounds that would not increase are pushed up by 1 µs. */
void rtb_latency_bounds_init(rtb_latency_bounds *b, long tmax_ms);

/* The bucket `latency_us` falls in: the first whose bound is >= it. */
size_t rtb_latency_bucket(const rtb_latency_bounds *b, int64_t latency_us);

/* The latency under which a fraction `q` (0 < q <= 1) of the auctions
 * counted in `buckets` closed, in ms. An estimate: the bucket holding rank
 * q * count is found and the value interpolated linearly between its bounds
 * (as Prometheus' histogram_quantile does); a rank in the +Inf bucket gives
 * its lower bound. Returns -1 when every bucket is 0. */
double rtb_latency_quantile_ms(const rtb_latency_bounds *b,
                               const unsigned long long buckets[RTB_LATENCY_BUCKETS], double q);

typedef struct rtb_stats {
    unsigned long long requests; /* MQTT messages on the request topic */
    unsigned long long results[PROTO_STATUS_COUNT];
    unsigned long long request_errors; /* reported on auction:errors */
    unsigned long long duplicates;
    unsigned long long profile_misses, profile_errors;
    /* ad events (SPEC 10), counted as accepted by the exchange */
    unsigned long long impressions, clicks, duplicate_clicks, conversions;
    unsigned long long conversions_attributed, events_invalid;
    unsigned long long events_dropped; /* Redis down or out of memory */
    /* wins whose ad_id breaks the key rule (SPEC 15): no stats:ad: write */
    unsigned long long ad_stats_skipped;
    /* wins in a publisher's currency with no rate to auction.currency
     * (SPEC 17): counted as wins, their spend not */
    unsigned long long spend_unconverted;
    /* auction latency, receipt to close: counts per bucket, their sum and
     * count */
    unsigned long long latency_buckets[RTB_LATENCY_BUCKETS];
    unsigned long long latency_count;
    int64_t latency_sum_us;
} rtb_stats;

/* Count one auction's latency (receipt to close) in `s`. */
void rtb_stats_observe_latency(rtb_stats *s, const rtb_latency_bounds *b, int64_t latency_us);

#endif

/* sampler.h -- once a second, what the exchange did in that second: the
 * growth of every counter of rtb_stats and of every advertiser's counters,
 * kept in a ring of the last RTB_SAMPLER_HISTORY_S seconds (SPEC 11).
 *
 * Rates on the dashboard are one sample; an alert rule's window (SPEC 11,
 * 16) is the sum of its last samples; latency percentiles come from the
 * growth of the histogram's buckets. Pure: the caller passes the counters
 * and the time of each sample (a timer in server.c, exact values in the
 * unit tests); nothing here reads a clock or does I/O. */
#ifndef RTB_SAMPLER_H
#define RTB_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "rtb/registry.h"
#include "rtb/stats.h"

/* Samples kept: one a second for 10 minutes. Alert windows are at most as
 * long (the config's alerts[].window_s bound). */
#define RTB_SAMPLER_HISTORY_S 600

/* What the exchange did over some seconds: differences of rtb_stats. */
typedef struct rtb_sample_counts {
    unsigned long long requests;
    unsigned long long results[PROTO_STATUS_COUNT];          /* by proto_status */
    unsigned long long latency_buckets[RTB_LATENCY_BUCKETS]; /* auctions closed */
    unsigned long long impressions, clicks, duplicate_clicks, conversions;
} rtb_sample_counts;

/* What one advertiser did over some seconds: differences of
 * rtb_bidder_stats. */
typedef struct rtb_sample_bidder_counts {
    unsigned long long calls, bids, wins, timeouts, errors;
    unsigned long long skipped;                          /* eligible, not called: every reason */
    unsigned long long impressions, clicks, conversions; /* its ad events (SPEC 10) */
    unsigned long long spend_cpm_micros; /* the sum of its clearing prices, micros (CPM) */
} rtb_sample_bidder_counts;

typedef struct rtb_sampler rtb_sampler;

/* A sampler whose first sample counts from `stats` (copied) and from zero
 * for every advertiser. Returns NULL when memory ran out. */
rtb_sampler *rtb_sampler_new(const rtb_stats *stats);
void rtb_sampler_free(rtb_sampler *s);

/* Take the sample of the second that ended at `wall_us` (Unix µs): how much
 * each counter of `stats` and of each advertiser of `reg` (by index; an
 * advertiser new since the previous sample counts from 0) grew. Out of
 * memory, the sample keeps the advertisers it had room for. */
void rtb_sampler_take(rtb_sampler *s, int64_t wall_us, const rtb_stats *stats,
                      const rtb_registry *reg);

/* Samples held: at most RTB_SAMPLER_HISTORY_S. */
size_t rtb_sampler_count(const rtb_sampler *s);

/* Zero `out`, then add the latest `seconds` samples. Returns how many were
 * added: fewer while the sampler holds fewer. */
int rtb_sampler_window(const rtb_sampler *s, int seconds, rtb_sample_counts *out);
/* The same for the advertiser at registry index `bidder`; seconds before it
 * was seen add 0. */
int rtb_sampler_bidder_window(const rtb_sampler *s, size_t bidder, int seconds,
                              rtb_sample_bidder_counts *out);

/* The k-th latest sample (0: the latest; k < count) into `out`, and the
 * time its second ended into *wall_us. */
void rtb_sampler_sample(const rtb_sampler *s, size_t k, rtb_sample_counts *out, int64_t *wall_us);

#endif

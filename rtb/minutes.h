/* minutes.h -- per advertiser, what this exchange saw in each of the last 60
 * minutes: calls, bids, wins, spend, impressions, clicks, conversions (the
 * series of GET /api/advertisers/{id}, SPEC 16; docs/dashboard.md).
 *
 * Fed from the same once-a-second tick as the sampler (server.c): each take
 * adds how much every advertiser's counters grew since the previous take to
 * the minute the take falls in. It is this exchange's own view: the other
 * exchanges of a group keep theirs. Pure: the caller passes the time (Unix
 * µs) and the registry; nothing here reads a clock or does I/O. */
#ifndef RTB_MINUTES_H
#define RTB_MINUTES_H

#include <stddef.h>
#include <stdint.h>

#include "rtb/registry.h"

/* Minutes kept, the current one (still filling) included. */
#define RTB_MINUTES 60

/* What one advertiser did in one minute (or over some minutes). */
typedef struct rtb_minute_counts {
    unsigned long long calls, bids, wins;
    unsigned long long spend_cpm_micros; /* the sum of its clearing prices, micros (CPM) */
    unsigned long long impressions, clicks, conversions;
} rtb_minute_counts;

typedef struct rtb_minutes rtb_minutes;

/* An empty ring. Returns NULL when memory ran out. */
rtb_minutes *rtb_minutes_new(void);
void rtb_minutes_free(rtb_minutes *m);

/* Add how much the counters of each advertiser of `reg` (by index; one new
 * since the previous take counts from 0) grew since the previous take to the
 * minute of `wall_us` (Unix µs: minute floor(wall_us / 60 s)). A time before
 * the latest take's minute (the wall clock stepped back) counts in that
 * latest minute. Out of memory, advertisers new since the previous take are
 * left out of this take (they are counted, from their totals then, by the
 * next take that has room). */
void rtb_minutes_take(rtb_minutes *m, int64_t wall_us, const rtb_registry *reg);

/* The series of the advertiser at registry index `bidder`: out[0] the
 * oldest of the RTB_MINUTES minutes that end with the latest take's minute,
 * out[RTB_MINUTES - 1] that minute (still filling); minutes with no take,
 * or before the advertiser was seen, are zero. *first_minute_s (may be
 * NULL) gets the Unix time (s) at which out[0]'s minute starts. Before the
 * first take every entry is zero and *first_minute_s is 0. */
void rtb_minutes_series(const rtb_minutes *m, size_t bidder, rtb_minute_counts out[RTB_MINUTES],
                        int64_t *first_minute_s);

#endif

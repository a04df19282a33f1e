/* minutes.c -- the per-advertiser minute ring of the campaign view.
 *
 * The one idea: like the sampler, a take stores differences of counters
 * that only grow; here they add up into the slot of the take's minute. The
 * RTB_MINUTES slots are shared by every advertiser (slot = minute mod 60)
 * and each remembers which minute it holds, so the first take of a new
 * minute clears that slot for everyone, and a slot whose minute is not the
 * one asked for reads as zero (minutes with no take, after a pause or a
 * clock step). */
#include "rtb/minutes.h"

#include <stdlib.h>
#include <string.h>

#define MINUTE_US INT64_C(60000000)
#define NO_MINUTE INT64_MIN

/* One advertiser in one minute. */
typedef struct slot {
    uint32_t calls, bids, wins, impressions, clicks, conversions;
    uint64_t spend_cpm_micros;
} slot;

struct rtb_minutes {
    int64_t minute[RTB_MINUTES]; /* the Unix minute each slot holds, or NO_MINUTE */
    int64_t latest;              /* the latest take's minute, or NO_MINUTE */
    slot (*rows)[RTB_MINUTES];   /* per advertiser (registry index), n of them */
    rtb_bidder_stats *last;      /* per advertiser: counters at the previous take */
    size_t n;
};

rtb_minutes *rtb_minutes_new(void) {
    rtb_minutes *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    for (size_t i = 0; i < RTB_MINUTES; i++)
        m->minute[i] = NO_MINUTE;
    m->latest = NO_MINUTE;
    return m;
}

void rtb_minutes_free(rtb_minutes *m) {
    if (!m) return;
    free(m->rows);
    free(m->last);
    free(m);
}

static size_t slot_of(int64_t minute) {
    return (size_t)(((minute % RTB_MINUTES) + RTB_MINUTES) % RTB_MINUTES);
}

static uint32_t grew32(unsigned long long now, unsigned long long was) {
    unsigned long long d = now >= was ? now - was : 0;
    return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static uint32_t add32(uint32_t a, uint32_t b) {
    return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

/* Rows for `n` advertisers, the new ones zero. 0, or -1 (nothing changed). */
static int reserve(rtb_minutes *m, size_t n) {
    if (n <= m->n) return 0;
    slot(*rows)[RTB_MINUTES] = realloc(m->rows, n * sizeof(*rows));
    if (!rows) return -1;
    m->rows = rows;
    rtb_bidder_stats *last = realloc(m->last, n * sizeof(*last));
    if (!last) return -1; /* rows stays larger than n: harmless */
    m->last = last;
    memset(rows + m->n, 0, (n - m->n) * sizeof(*rows));
    memset(last + m->n, 0, (n - m->n) * sizeof(*last));
    m->n = n;
    return 0;
}

void rtb_minutes_take(rtb_minutes *m, int64_t wall_us, const rtb_registry *reg) {
    int64_t minute = wall_us >= 0 ? wall_us / MINUTE_US : (wall_us + 1) / MINUTE_US - 1;
    if (m->latest != NO_MINUTE && minute < m->latest) minute = m->latest;
    size_t s = slot_of(minute);
    if (m->minute[s] != minute) {
        for (size_t i = 0; i < m->n; i++)
            memset(&m->rows[i][s], 0, sizeof(slot));
        m->minute[s] = minute;
    }
    m->latest = minute;
    size_t n = reg ? rtb_registry_count(reg) : 0;
    if (reserve(m, n) != 0 && n > m->n) n = m->n;
    for (size_t i = 0; i < n; i++) {
        const rtb_bidder_stats *now = &rtb_registry_at(reg, i)->stats, *was = &m->last[i];
        slot *sl = &m->rows[i][s];
        sl->calls = add32(sl->calls, grew32(now->calls, was->calls));
        sl->bids = add32(sl->bids, grew32(now->bids, was->bids));
        sl->wins = add32(sl->wins, grew32(now->wins, was->wins));
        sl->impressions = add32(sl->impressions, grew32(now->impressions, was->impressions));
        sl->clicks = add32(sl->clicks, grew32(now->clicks, was->clicks));
        sl->conversions = add32(sl->conversions, grew32(now->conversions, was->conversions));
        if (now->spend_cpm_micros > was->spend_cpm_micros)
            sl->spend_cpm_micros += now->spend_cpm_micros - was->spend_cpm_micros;
        m->last[i] = *now;
    }
}

void rtb_minutes_series(const rtb_minutes *m, size_t bidder, rtb_minute_counts out[RTB_MINUTES],
                        int64_t *first_minute_s) {
    memset(out, 0, RTB_MINUTES * sizeof(*out));
    if (first_minute_s) *first_minute_s = 0;
    if (m->latest == NO_MINUTE) return;
    int64_t first = m->latest - (RTB_MINUTES - 1);
    if (first_minute_s) *first_minute_s = first * 60;
    if (bidder >= m->n) return;
    for (size_t k = 0; k < RTB_MINUTES; k++) {
        int64_t minute = first + (int64_t)k;
        size_t s = slot_of(minute);
        if (m->minute[s] != minute) continue;
        const slot *sl = &m->rows[bidder][s];
        out[k] = (rtb_minute_counts){
            .calls = sl->calls,
            .bids = sl->bids,
            .wins = sl->wins,
            .spend_cpm_micros = sl->spend_cpm_micros,
            .impressions = sl->impressions,
            .clicks = sl->clicks,
            .conversions = sl->conversions,
        };
    }
}

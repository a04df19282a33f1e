/* sampler.c -- the per-second ring of the dashboard and the alert rules.
 *
 * The one idea: every counter only grows, so a sample is the difference
 * between the counters now and at the previous sample, stored in 32 bits (a
 * second's growth fits with room). The ring holds the last
 * RTB_SAMPLER_HISTORY_S samples; a window is the sum of its latest ones. */
#include "rtb/sampler.h"

#include <stdlib.h>
#include <string.h>

/* One advertiser in one second. Spend has 64 bits: a second of wins at
 * CPM prices can pass 2^32 micros. */
typedef struct bidder_sec {
    uint32_t calls, bids, wins, timeouts, errors, skipped;
    uint32_t impressions, clicks, conversions;
    uint64_t spend_cpm_micros;
} bidder_sec;

/* One second of the exchange. */
typedef struct sample {
    int64_t wall_us; /* when the second ended */
    uint32_t requests;
    uint32_t results[PROTO_STATUS_COUNT];
    uint32_t latency[RTB_LATENCY_BUCKETS];
    uint32_t impressions, clicks, duplicate_clicks, conversions;
    bidder_sec *bidders; /* nbidders long: the registry's first nbidders */
    size_t nbidders, capbidders;
} sample;

struct rtb_sampler {
    sample ring[RTB_SAMPLER_HISTORY_S];
    size_t next;                    /* slot the next sample goes to */
    size_t count;                   /* samples held */
    rtb_stats last;                 /* counters at the previous sample */
    rtb_bidder_stats *last_bidders; /* per advertiser, nlast long */
    size_t nlast;
};

static uint32_t grew(unsigned long long now, unsigned long long was) {
    unsigned long long d = now >= was ? now - was : 0;
    return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static unsigned long long skipped(const rtb_bidder_stats *bs) {
    unsigned long long n = 0;
    for (int r = 0; r < RTB_SKIP_COUNT; r++)
        n += bs->skipped[r];
    return n;
}

static const sample *latest(const rtb_sampler *s, size_t k) {
    return &s->ring[(s->next + RTB_SAMPLER_HISTORY_S - 1 - k) % RTB_SAMPLER_HISTORY_S];
}

rtb_sampler *rtb_sampler_new(const rtb_stats *stats) {
    rtb_sampler *s = calloc(1, sizeof(*s));
    if (s) s->last = *stats;
    return s;
}

void rtb_sampler_free(rtb_sampler *s) {
    if (!s) return;
    for (size_t i = 0; i < RTB_SAMPLER_HISTORY_S; i++)
        free(s->ring[i].bidders);
    free(s->last_bidders);
    free(s);
}

/* Room for `n` advertisers in the previous-sample copy and in `smp`. */
static int reserve_bidders(rtb_sampler *s, sample *smp, size_t n) {
    if (n > s->nlast) {
        rtb_bidder_stats *v = realloc(s->last_bidders, n * sizeof(*v));
        if (!v) return -1;
        memset(v + s->nlast, 0, (n - s->nlast) * sizeof(*v)); /* new: counted from 0 */
        s->last_bidders = v;
        s->nlast = n;
    }
    if (n > smp->capbidders) {
        bidder_sec *v = realloc(smp->bidders, n * sizeof(*v));
        if (!v) return -1;
        smp->bidders = v;
        smp->capbidders = n;
    }
    return 0;
}

void rtb_sampler_take(rtb_sampler *s, int64_t wall_us, const rtb_stats *stats,
                      const rtb_registry *reg) {
    const rtb_stats *was = &s->last;
    sample *smp = &s->ring[s->next];
    smp->wall_us = wall_us;
    smp->requests = grew(stats->requests, was->requests);
    for (int st = 0; st < PROTO_STATUS_COUNT; st++)
        smp->results[st] = grew(stats->results[st], was->results[st]);
    for (int i = 0; i < RTB_LATENCY_BUCKETS; i++)
        smp->latency[i] = grew(stats->latency_buckets[i], was->latency_buckets[i]);
    smp->impressions = grew(stats->impressions, was->impressions);
    smp->clicks = grew(stats->clicks, was->clicks);
    smp->duplicate_clicks = grew(stats->duplicate_clicks, was->duplicate_clicks);
    smp->conversions = grew(stats->conversions, was->conversions);
    s->last = *stats;

    size_t n = reg ? rtb_registry_count(reg) : 0;
    if (reserve_bidders(s, smp, n) != 0)
        n = smp->capbidders < s->nlast ? smp->capbidders : s->nlast;
    for (size_t i = 0; i < n; i++) {
        const rtb_bidder_stats *bs = &rtb_registry_at(reg, i)->stats, *lb = &s->last_bidders[i];
        smp->bidders[i] = (bidder_sec){
            .calls = grew(bs->calls, lb->calls),
            .bids = grew(bs->bids, lb->bids),
            .wins = grew(bs->wins, lb->wins),
            .timeouts = grew(bs->timeouts, lb->timeouts),
            .errors = grew(bs->errors, lb->errors),
            .skipped = grew(skipped(bs), skipped(lb)),
            .impressions = grew(bs->impressions, lb->impressions),
            .clicks = grew(bs->clicks, lb->clicks),
            .conversions = grew(bs->conversions, lb->conversions),
            .spend_cpm_micros = bs->spend_cpm_micros >= lb->spend_cpm_micros
                                    ? bs->spend_cpm_micros - lb->spend_cpm_micros
                                    : 0,
        };
        s->last_bidders[i] = *bs;
    }
    smp->nbidders = n;
    s->next = (s->next + 1) % RTB_SAMPLER_HISTORY_S;
    if (s->count < RTB_SAMPLER_HISTORY_S) s->count++;
}

size_t rtb_sampler_count(const rtb_sampler *s) {
    return s->count;
}

static void add_sample(rtb_sample_counts *out, const sample *smp) {
    out->requests += smp->requests;
    for (int st = 0; st < PROTO_STATUS_COUNT; st++)
        out->results[st] += smp->results[st];
    for (int i = 0; i < RTB_LATENCY_BUCKETS; i++)
        out->latency_buckets[i] += smp->latency[i];
    out->impressions += smp->impressions;
    out->clicks += smp->clicks;
    out->duplicate_clicks += smp->duplicate_clicks;
    out->conversions += smp->conversions;
}

static size_t window_len(const rtb_sampler *s, int seconds) {
    size_t n = seconds > 0 ? (size_t)seconds : 0;
    return n > s->count ? s->count : n;
}

int rtb_sampler_window(const rtb_sampler *s, int seconds, rtb_sample_counts *out) {
    memset(out, 0, sizeof(*out));
    size_t n = window_len(s, seconds);
    for (size_t k = 0; k < n; k++)
        add_sample(out, latest(s, k));
    return (int)n;
}

int rtb_sampler_bidder_window(const rtb_sampler *s, size_t bidder, int seconds,
                              rtb_sample_bidder_counts *out) {
    memset(out, 0, sizeof(*out));
    size_t n = window_len(s, seconds);
    for (size_t k = 0; k < n; k++) {
        const sample *smp = latest(s, k);
        if (bidder >= smp->nbidders) continue;
        const bidder_sec *b = &smp->bidders[bidder];
        out->calls += b->calls;
        out->bids += b->bids;
        out->wins += b->wins;
        out->timeouts += b->timeouts;
        out->errors += b->errors;
        out->skipped += b->skipped;
        out->impressions += b->impressions;
        out->clicks += b->clicks;
        out->conversions += b->conversions;
        out->spend_cpm_micros += b->spend_cpm_micros;
    }
    return (int)n;
}

void rtb_sampler_sample(const rtb_sampler *s, size_t k, rtb_sample_counts *out, int64_t *wall_us) {
    memset(out, 0, sizeof(*out));
    const sample *smp = latest(s, k);
    add_sample(out, smp);
    *wall_us = smp->wall_us;
}

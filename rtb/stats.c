/* stats.c -- the latency histogram's bounds and arithmetic (stats.h). */
#include "rtb/stats.h"

void rtb_latency_bounds_init(rtb_latency_bounds *b, long tmax_ms) {
    int64_t t = (int64_t)(tmax_ms < 1 ? 1 : tmax_ms) * 1000;
    const int64_t us[RTB_LATENCY_BUCKETS - 1] = {
        t / 100,  t / 50,   t / 20,    t / 10,    t / 5, t / 2, t * 3 / 4, t,
        t + 2000, t + 5000, t + 10000, t * 3 / 2, t * 2, t * 5, t * 10,
    };
    int64_t last = 0;
    for (size_t i = 0; i < RTB_LATENCY_BUCKETS - 1; i++) {
        b->us[i] = us[i] > last ? us[i] : last + 1;
        last = b->us[i];
    }
}

size_t rtb_latency_bucket(const rtb_latency_bounds *b, int64_t latency_us) {
    size_t i = 0;
    while (i < RTB_LATENCY_BUCKETS - 1 && latency_us > b->us[i])
        i++;
    return i;
}

void rtb_stats_observe_latency(rtb_stats *s, const rtb_latency_bounds *b, int64_t latency_us) {
    s->latency_buckets[rtb_latency_bucket(b, latency_us)]++;
    s->latency_count++;
    s->latency_sum_us += latency_us;
}

double rtb_latency_quantile_ms(const rtb_latency_bounds *b,
                               const unsigned long long buckets[RTB_LATENCY_BUCKETS], double q) {
    unsigned long long total = 0;
    for (int i = 0; i < RTB_LATENCY_BUCKETS; i++)
        total += buckets[i];
    if (total == 0) return -1;
    double rank = q * (double)total, below = 0;
    for (int i = 0; i < RTB_LATENCY_BUCKETS; i++) {
        if (buckets[i] == 0 || below + (double)buckets[i] < rank) {
            below += (double)buckets[i];
            continue;
        }
        double lo = i > 0 ? (double)b->us[i - 1] : 0;
        if (i == RTB_LATENCY_BUCKETS - 1) return lo / 1000.0; /* +Inf: at least lo */
        double hi = (double)b->us[i];
        return (lo + (hi - lo) * (rank - below) / (double)buckets[i]) / 1000.0;
    }
    return (double)b->us[RTB_LATENCY_BUCKETS - 2] / 1000.0; /* rounding */
}

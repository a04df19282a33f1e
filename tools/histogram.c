/* histogram.c -- log-linear latency histogram (see histogram.h).
 *
 * The one idea: a value v >= 128 with highest set bit k is stored by its top 8
 * bits (1 plus 7 below it), so its bucket is (k - 6) * 128 + the 7 bits under
 * the top one, and the bucket is 2^(k-7) wide: 1/128 of 2^k at most. Values
 * below 128 map to themselves, and the two schemes meet seamlessly at 128. */
#include "tools/histogram.h"

#include <math.h>
#include <string.h>

#define SUB_COUNT (1 << HISTOGRAM_SUB_BITS)

static int top_bit(uint64_t v) {
    int k = 0;
    while (v >>= 1)
        k++;
    return k;
}

int histogram_bucket(uint64_t value_ns) {
    if (value_ns > HISTOGRAM_MAX_NS) value_ns = HISTOGRAM_MAX_NS;
    if (value_ns < SUB_COUNT) return (int)value_ns;
    int shift = top_bit(value_ns) - HISTOGRAM_SUB_BITS;
    return (shift + 1) * SUB_COUNT + (int)((value_ns >> shift) - SUB_COUNT);
}

void histogram_bucket_range(int bucket, uint64_t *lo_ns, uint64_t *hi_ns) {
    if (bucket < SUB_COUNT) {
        *lo_ns = *hi_ns = (uint64_t)bucket;
        return;
    }
    int shift = bucket / SUB_COUNT - 1;
    uint64_t sub = (uint64_t)(bucket % SUB_COUNT);
    *lo_ns = (SUB_COUNT + sub) << shift;
    *hi_ns = *lo_ns + (UINT64_C(1) << shift) - 1;
}

void histogram_init(histogram *h) {
    memset(h, 0, sizeof *h);
    h->min_ns = UINT64_MAX;
}

void histogram_record(histogram *h, uint64_t value_ns) {
    h->counts[histogram_bucket(value_ns)]++;
    h->total++;
    if (value_ns < h->min_ns) h->min_ns = value_ns;
    if (value_ns > h->max_ns) h->max_ns = value_ns;
}

uint64_t histogram_percentile(const histogram *h, double pct) {
    if (h->total == 0) return 0;
    if (pct <= 0) return h->min_ns;
    if (pct >= 100) return h->max_ns;
    /* ceil, forgiving the rounding of pct / 100 (0.99 * 1000 is 990.0000000000001) */
    double exact = pct / 100.0 * (double)h->total;
    uint64_t rank = (uint64_t)ceil(exact - exact * 1e-12);
    if (rank < 1) rank = 1;
    if (rank > h->total) rank = h->total;
    uint64_t seen = 0;
    for (int b = 0; b < HISTOGRAM_BUCKETS; b++) {
        seen += h->counts[b];
        if (seen < rank) continue;
        uint64_t lo, hi;
        histogram_bucket_range(b, &lo, &hi);
        uint64_t mid = lo + (hi - lo) / 2;
        if (mid < h->min_ns) return h->min_ns;
        return mid > h->max_ns ? h->max_ns : mid;
    }
    return h->max_ns;
}

/* histogram.h -- a latency histogram with bounded relative error (rtb-loadgen).
 *
 * Values are durations in nanoseconds (uint64_t). Buckets are log-linear, as
 * in HdrHistogram: values below 256 ns each have a bucket of their own; above,
 * every power of two [2^k, 2^(k+1)) is split into 128 equal sub-buckets, so a
 * bucket is at most 1/128 of its lower bound wide. A percentile is reported
 * as the middle of its bucket, hence within 1/256 (0.4 %) of the exact value
 * for every value from 0 to HISTOGRAM_MAX_NS (about 68.7 s; larger values are
 * counted in the top bucket). min and max are kept exactly.
 *
 * The struct is plain data (about 30 KiB, no allocation): zero it with
 * histogram_init, or copy it with assignment. Not thread-safe. */
#ifndef RTB_TOOLS_HISTOGRAM_H
#define RTB_TOOLS_HISTOGRAM_H

#include <stdint.h>

#define HISTOGRAM_SUB_BITS 7  /* 128 sub-buckets per power of two */
#define HISTOGRAM_TOP_BITS 36 /* values below 2^36 ns are resolved */
#define HISTOGRAM_MAX_NS ((UINT64_C(1) << HISTOGRAM_TOP_BITS) - 1)
#define HISTOGRAM_BUCKETS ((HISTOGRAM_TOP_BITS - HISTOGRAM_SUB_BITS + 1) << HISTOGRAM_SUB_BITS)

typedef struct histogram {
    uint64_t counts[HISTOGRAM_BUCKETS];
    uint64_t total;  /* values recorded */
    uint64_t min_ns; /* exact; UINT64_MAX while empty */
    uint64_t max_ns; /* exact (not clamped); 0 while empty */
} histogram;

/* Empties h. */
void histogram_init(histogram *h);

/* Records one value. Values above HISTOGRAM_MAX_NS count in the top bucket
 * (their percentiles read as at most HISTOGRAM_MAX_NS); max_ns keeps them. */
void histogram_record(histogram *h, uint64_t value_ns);

/* The pct-th percentile (0 < pct <= 100): the value v such that at least
 * pct % of the recorded values are <= v, i.e. the value of rank
 * ceil(pct / 100 * total), reported as the middle of its bucket and clamped to
 * [min_ns, max_ns]. 0 when h is empty. pct <= 0 gives min_ns, pct >= 100
 * max_ns. */
uint64_t histogram_percentile(const histogram *h, double pct);

/* The bucket index of a value and the range [lo, hi] of values that bucket
 * holds; exposed for the tests. */
int histogram_bucket(uint64_t value_ns);
void histogram_bucket_range(int bucket, uint64_t *lo_ns, uint64_t *hi_ns);

#endif /* RTB_TOOLS_HISTOGRAM_H */

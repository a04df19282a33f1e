/* backoff.h -- exponential backoff for reconnects, as a pure value.
 *
 * One rule for every reconnect in the project (MQTT in rtb/ and the load
 * generator, Redis in store/ and the load generator): the first failed
 * attempt waits min_us, each further one twice as long up to max_us, plus an
 * optional jitter of up to jitter_pct % of the delay; a success starts over.
 * No clock, no randomness of its own: the caller passes now_us and a random
 * number, so a test sees exact times. */
#ifndef GLUE_BACKOFF_H
#define GLUE_BACKOFF_H

#include <stdint.h>

/* Fields are private to backoff.c; embed it anywhere and call backoff_init. */
typedef struct backoff {
    int64_t min_us, max_us;
    int64_t delay_us; /* the delay the next failure waits, before jitter */
    unsigned jitter_pct;
} backoff;

/* Set up `b`: delays from `min_us` doubling up to `max_us`, with a jitter
 * of 0..jitter_pct % of the delay. Out-of-range settings are clamped: min_us
 * to at least 1, max_us to min_us..INT64_MAX / 4 (and min_us to max_us),
 * jitter_pct to at most 100. The first backoff_fail waits min_us. */
void backoff_init(backoff *b, int64_t min_us, int64_t max_us, unsigned jitter_pct);

/* An attempt failed at `now_us` (any monotonic clock in microseconds).
 * Returns the time of the next attempt on the same clock: now_us + delay +
 * jitter, where jitter = random % (delay * jitter_pct / 100 + 1) and `random`
 * is any uniformly distributed number (ignored without jitter). Then doubles
 * the delay, up to max_us. */
int64_t backoff_fail(backoff *b, int64_t now_us, uint64_t random);

/* An attempt succeeded: the next failure waits min_us again. */
void backoff_reset(backoff *b);

#endif

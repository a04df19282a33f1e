/* backoff.c -- exponential backoff for reconnects, as a pure value.
 *
 * The one idea: the state is just the delay the next failure waits; a
 * failure reads it and doubles it, a success puts it back to the minimum.
 * Time and randomness come from the caller (see backoff.h). */
#include "glue/backoff.h"

void backoff_init(backoff *b, int64_t min_us, int64_t max_us, unsigned jitter_pct) {
    b->min_us = min_us > 0 ? min_us : 1;
    b->max_us = max_us < b->min_us ? b->min_us : max_us > INT64_MAX / 4 ? INT64_MAX / 4 : max_us;
    if (b->min_us > b->max_us) b->min_us = b->max_us;
    b->jitter_pct = jitter_pct > 100 ? 100 : jitter_pct;
    b->delay_us = b->min_us;
}

int64_t backoff_fail(backoff *b, int64_t now_us, uint64_t random) {
    int64_t delay_us = b->delay_us;
    /* delay * pct / 100 without overflow: delay <= INT64_MAX / 4. */
    int64_t span_us = delay_us / 100 * b->jitter_pct + delay_us % 100 * b->jitter_pct / 100;
    int64_t jitter_us = span_us > 0 ? (int64_t)(random % (uint64_t)(span_us + 1)) : 0;
    b->delay_us = delay_us > b->max_us / 2 ? b->max_us : delay_us * 2;
    return now_us + delay_us + jitter_us;
}

void backoff_reset(backoff *b) {
    b->delay_us = b->min_us;
}

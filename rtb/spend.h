/* spend.h -- the day's spend of the advertisers with a budget, kept in step
 * with Redis (SPEC 16; the rule that reads it is budget.h).
 *
 * Every exchange adds its wins to budget:{advertiser_id}:{yyyymmdd} (in the
 * win's one EVAL, store_count_win) and to its own figure at once. This unit
 * brings the other exchanges' wins in: one MGET of the day's keys of every
 * active advertiser with a budget, asked by the server once a second and
 * after each registry load, never on the request path. */
#ifndef RTB_SPEND_H
#define RTB_SPEND_H

#include <stdint.h>

#include "rtb/registry.h"
#include "store/store.h"

typedef struct rtb_spend rtb_spend;

/* Refreshes reading through `st` into the budgets of `reg`'s advertisers
 * (both borrowed; the registry must outlive the store's last callback).
 * Free it after the store, whose freeing answers a read still out. Returns
 * NULL when memory ran out. */
rtb_spend *rtb_spend_new(store *st, rtb_registry *reg);
void rtb_spend_free(rtb_spend *sp);

/* Read the day (UTC, of `wall_us`) of every active advertiser with a budget
 * from Redis, in one MGET; each answer sets that advertiser's figure
 * (rtb_budget_refresh_end). At most one read is out: while one is, this
 * does nothing, and so it does when no advertiser has a budget or Redis is
 * not connected. Returns 1 when a read was sent, else 0. */
int rtb_spend_refresh(rtb_spend *sp, int64_t wall_us);

/* Reads answered and reads that failed (Redis error or gone). */
typedef struct rtb_spend_stats {
    unsigned long long refreshes, refresh_errors;
} rtb_spend_stats;

const rtb_spend_stats *rtb_spend_get_stats(const rtb_spend *sp);

#endif

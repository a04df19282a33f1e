/* spend.c -- refreshing the budgets' figures from Redis (spend.h).
 *
 * The one idea: a read names the advertisers it asked for by their
 * registry index (the registry only grows, so an index stays valid) and the
 * day it read, so its answer lands on the right figures even when the
 * registry changed or the day rolled over meanwhile (budget.h ignores an
 * answer for another day). */
#include "rtb/spend.h"

#include "rtb/log.h"

#include <stdlib.h>

struct rtb_spend {
    store *store;
    rtb_registry *reg;
    int out; /* a read is out */
    rtb_spend_stats stats;
};

/* One read out: the day, and the index of each advertiser asked for. */
typedef struct read_call {
    rtb_spend *sp;
    long day;
    size_t n;
    size_t index[];
} read_call;

rtb_spend *rtb_spend_new(store *st, rtb_registry *reg) {
    rtb_spend *sp = calloc(1, sizeof(*sp));
    if (!sp) return NULL;
    sp->store = st;
    sp->reg = reg;
    return sp;
}

void rtb_spend_free(rtb_spend *sp) {
    free(sp);
}

const rtb_spend_stats *rtb_spend_get_stats(const rtb_spend *sp) {
    return &sp->stats;
}

static void on_sums(void *arg, store_status st, const long long *sums, size_t n) {
    read_call *rc = arg;
    rtb_spend *sp = rc->sp;
    sp->out = 0;
    if (st != STORE_OK || n != rc->n) {
        sp->stats.refresh_errors++;
        rtb_log(PROTO_LOG_DEBUG, "budgets: the read of day %ld failed; keeping the figures",
                rc->day);
        free(rc);
        return;
    }
    sp->stats.refreshes++;
    for (size_t i = 0; i < n; i++) {
        rtb_bidder *b = rtb_registry_at(sp->reg, rc->index[i]);
        rtb_budget_refresh_end(&b->budget, rc->day, sums[i]);
    }
    free(rc);
}

int rtb_spend_refresh(rtb_spend *sp, int64_t wall_us) {
    if (sp->out || !store_connected(sp->store)) return 0;
    size_t count = rtb_registry_count(sp->reg), n = 0;
    for (size_t i = 0; i < count; i++) {
        const rtb_bidder *b = rtb_registry_at(sp->reg, i);
        n += b->active && b->budget.daily_micros > 0;
    }
    if (n == 0) return 0;
    read_call *rc = malloc(sizeof(*rc) + n * sizeof(rc->index[0]));
    const char **ids = malloc(n * sizeof(*ids));
    if (!rc || !ids) {
        free(rc);
        free(ids);
        return 0;
    }
    *rc = (read_call){.sp = sp, .day = rtb_budget_day(wall_us), .n = 0};
    for (size_t i = 0; i < count; i++) {
        rtb_bidder *b = rtb_registry_at(sp->reg, i);
        if (!b->active || b->budget.daily_micros == 0) continue;
        /* From here on, own wins are counted apart until the answer. */
        rtb_budget_refresh_begin(&b->budget, wall_us);
        ids[rc->n] = b->id;
        rc->index[rc->n++] = i;
    }
    int sent = store_budget_get(sp->store, ids, rc->n, rc->day, on_sums, rc) == 0;
    free(ids);
    if (!sent) {
        free(rc);
        return 0;
    }
    sp->out = 1;
    return 1;
}

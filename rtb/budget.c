/* budget.c -- daily budgets and pacing (budget.h, SPEC 16): the UTC day of
 * a wall time, the day's figure and the rule that reads it.
 *
 * The one idea: a figure is of one UTC day, and every function first makes
 * it the day of the time it is given (`roll`), so the roll-over needs no
 * timer: the first auction, win or refresh of a new day starts from 0. The
 * day's bounds are kept, so that this costs two comparisons per call. */
#include "rtb/budget.h"

#define MS_PER_DAY INT64_C(86400000)

/* Floor division, for times before 1970. */
static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The civil date of day `z` since 1970-01-01 (H. Hinnant, "chrono-Compatible
 * Low-Level Date Algorithms", civil_from_days), as yyyymmdd. */
static long civil_yyyymmdd(int64_t z) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                      /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
    int64_t d = doy - (153 * mp + 2) / 5 + 1;                            /* [1, 31] */
    int64_t m = mp < 10 ? mp + 3 : mp - 9;                               /* [1, 12] */
    int64_t y = yoe + era * 400 + (m <= 2);
    return (long)(y * 10000 + m * 100 + d);
}

long rtb_budget_day(int64_t wall_us) {
    return civil_yyyymmdd(floor_div(wall_us, RTB_BUDGET_DAY_US));
}

/* Make the figure that of the UTC day of `wall_us`: a new day starts at 0. */
static void roll(rtb_budget *b, int64_t wall_us) {
    if (b->day != 0 && wall_us >= b->day_start_us && wall_us - b->day_start_us < RTB_BUDGET_DAY_US)
        return;
    int64_t days = floor_div(wall_us, RTB_BUDGET_DAY_US);
    b->day = civil_yyyymmdd(days);
    b->day_start_us = days * RTB_BUDGET_DAY_US;
    b->spent_cpm_micros = 0;
    b->unsynced_cpm_micros = 0;
}

void rtb_budget_set(rtb_budget *b, int64_t daily_micros, proto_pacing pacing) {
    b->daily_micros = daily_micros > 0 ? daily_micros : 0;
    b->pacing = pacing;
}

/* daily x elapsed / day, exact at ms resolution without overflow: daily is
 * at most 10^12 micros and a day has 8.64 x 10^7 ms, so the product is
 * split at MS_PER_DAY. */
static int64_t elapsed_share(int64_t daily_micros, int64_t elapsed_us) {
    int64_t ms = elapsed_us / 1000;
    return daily_micros / MS_PER_DAY * ms + daily_micros % MS_PER_DAY * ms / MS_PER_DAY;
}

/* The even allowance of the current figure's day at `wall_us` (rolled). */
static int64_t even_allowance(const rtb_budget *b, int64_t wall_us) {
    int64_t a = elapsed_share(b->daily_micros, wall_us - b->day_start_us) +
                b->daily_micros * RTB_BUDGET_EVEN_SLACK_PCT / 100;
    return a < b->daily_micros ? a : b->daily_micros;
}

int rtb_budget_admit(rtb_budget *b, int64_t wall_us) {
    if (b->daily_micros == 0) return 1;
    roll(b, wall_us);
    int64_t spend = b->spent_cpm_micros / 1000;
    if (spend >= b->daily_micros) return 0;
    return b->pacing != PROTO_PACING_EVEN || spend <= even_allowance(b, wall_us);
}

long rtb_budget_win(rtb_budget *b, int64_t clearing_micros, int64_t wall_us) {
    if (b->daily_micros == 0) return 0;
    roll(b, wall_us);
    b->spent_cpm_micros += clearing_micros;
    b->unsynced_cpm_micros += clearing_micros;
    return b->day;
}

long rtb_budget_refresh_begin(rtb_budget *b, int64_t wall_us) {
    if (b->daily_micros == 0) return 0;
    roll(b, wall_us);
    b->unsynced_cpm_micros = 0;
    return b->day;
}

void rtb_budget_refresh_end(rtb_budget *b, long day, int64_t sum_cpm_micros) {
    if (b->daily_micros == 0 || day != b->day) return;
    b->spent_cpm_micros = sum_cpm_micros + b->unsynced_cpm_micros;
}

int64_t rtb_budget_spent_micros(const rtb_budget *b, int64_t wall_us) {
    if (b->day == 0 || wall_us < b->day_start_us || wall_us - b->day_start_us >= RTB_BUDGET_DAY_US)
        return 0;
    return b->spent_cpm_micros / 1000;
}

int64_t rtb_budget_allowance_micros(const rtb_budget *b, int64_t wall_us) {
    if (b->daily_micros == 0) return 0;
    if (b->pacing != PROTO_PACING_EVEN) return b->daily_micros;
    rtb_budget day = *b;
    roll(&day, wall_us);
    return even_allowance(&day, wall_us);
}

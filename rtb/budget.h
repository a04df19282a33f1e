/* budget.h -- an advertiser's daily budget and its pacing: call it in this
 * auction or not (SPEC 16). Pure: every function takes the wall-clock time
 * (Unix µs) from its caller, so tests run a whole day, and its roll-over, in
 * microseconds.
 *
 * The one idea: the exchange decides on a local figure of the day's spend,
 * never on a Redis round trip. The spend of a UTC day is the exact sum of
 * that day's clearing prices in micros (CPM; the spend itself is that sum /
 * 1000, taken only when compared), kept in Redis at
 * budget:{advertiser_id}:{yyyymmdd} and shared by every exchange. Here it is
 * `spent_cpm_micros`: the exchange's own wins are added at once
 * (rtb_budget_win), and at least once a second the figure becomes what Redis
 * holds plus the own wins added since that read was sent
 * (rtb_budget_refresh_begin, then rtb_budget_refresh_end with the answer), so
 * that other exchanges' wins show within about a second and the own ones are
 * never counted twice (a win's INCRBY and the read go down one connection, in
 * order). The figure belongs to one UTC day: the first use at a wall time in
 * another day starts it again from 0, as the new day's key does.
 *
 * Who is called (spend = spent_cpm_micros / 1000, daily = daily_micros):
 *
 *   asap   while spend < daily
 *   even   while spend < daily and spend <= daily x elapsed / 86400 s
 *          + 5 % of daily, `elapsed` the time since 00:00 UTC (at ms
 *          resolution), so the day's budget spreads over the day
 *
 * An advertiser without a budget (daily_micros 0) is always called and has
 * no key. */
#ifndef RTB_BUDGET_H
#define RTB_BUDGET_H

#include <stdint.h>

#include "proto/proto.h"

/* One UTC day, µs. */
#define RTB_BUDGET_DAY_US INT64_C(86400000000)
/* Pacing `even` allows this share of the daily budget ahead of the day's
 * elapsed share, in percent (SPEC 16). */
#define RTB_BUDGET_EVEN_SLACK_PCT 5

/* An advertiser's budget and the day's spend known here. Zero it (no
 * budget), then rtb_budget_set. Fields are read by the metrics; only the
 * functions below change them. */
typedef struct rtb_budget {
    int64_t daily_micros; /* the day's budget, micros; 0: no budget */
    proto_pacing pacing;
    long day;                    /* yyyymmdd (UTC) the figure is of; 0: not used yet */
    int64_t day_start_us;        /* Unix µs of that day's 00:00:00 UTC */
    int64_t spent_cpm_micros;    /* that day's sum of clearing prices, as known here */
    int64_t unsynced_cpm_micros; /* of it, own wins since the last refresh was asked */
} rtb_budget;

/* The UTC date of Unix time `wall_us` as yyyymmdd (19700101 for 0; times
 * before 1970 work too): the suffix of the day's Redis key. */
long rtb_budget_day(int64_t wall_us);

/* Give the advertiser a budget of `daily_micros` (> 0; 0 removes it) with
 * `pacing`, as its config or registry entry says (proto_bidder_conf
 * budget_daily_micros, budget_pacing). The day's figure is kept: a budget
 * changed during the day still counts what was spent. */
void rtb_budget_set(rtb_budget *b, int64_t daily_micros, proto_pacing pacing);

/* May the advertiser be called in an auction at `wall_us`? 1 yes (always
 * without a budget), 0 no: the day's spend reached the budget, or, pacing
 * `even`, it is above the elapsed share of the budget plus 5 %. A wall time
 * in another UTC day than the figure's starts the figure at 0 first. */
int rtb_budget_admit(rtb_budget *b, int64_t wall_us);

/* The advertiser won at `clearing_micros` (CPM) at `wall_us`: added to the
 * figure of that UTC day at once. Returns that day (yyyymmdd: the key
 * budget:{id}:{day} the win's INCRBY goes to), or 0 without a budget (no
 * key is written). */
long rtb_budget_win(rtb_budget *b, int64_t clearing_micros, int64_t wall_us);

/* A read of the day's spend from Redis is about to be sent at `wall_us`:
 * returns the day whose key to read (0 without a budget: none), and counts
 * own wins from here on apart, until the answer. */
long rtb_budget_refresh_begin(rtb_budget *b, int64_t wall_us);

/* Redis answered the read of day `day` with `sum_cpm_micros` (the key's
 * value; 0 when it does not exist): the figure becomes that plus the own wins
 * added since rtb_budget_refresh_begin. An answer for another day than the
 * figure's (the day rolled over meanwhile) is ignored. */
void rtb_budget_refresh_end(rtb_budget *b, long day, int64_t sum_cpm_micros);

/* The spend of the UTC day of `wall_us` as known here, micros (the sum /
 * 1000): 0 when the figure is of another day. */
int64_t rtb_budget_spent_micros(const rtb_budget *b, int64_t wall_us);

/* What the advertiser may have spent by `wall_us` and still be called,
 * micros: daily_micros with asap (called while below it), the elapsed share
 * plus 5 % (at most daily_micros) with even (called while at or below it).
 * 0 without a budget. */
int64_t rtb_budget_allowance_micros(const rtb_budget *b, int64_t wall_us);

#endif

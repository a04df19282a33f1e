/* alerts.h -- alert rules (config `alerts`, SPEC 11; docs/dashboard.md).
 *
 * Each second every rule is evaluated over its last window_s seconds of
 * samples; a rule whose value goes above `above` fires, and resolves when
 * the value is back at or below it. Both transitions are published on Redis
 * channel auction:alerts and logged. A window with fewer than
 * RTB_ALERT_MIN_COUNT calls (per-bidder metrics), results (rates) or closed
 * auctions (latency) keeps the rule's state as it is. */
#ifndef RTB_ALERTS_H
#define RTB_ALERTS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"
#include "rtb/registry.h"
#include "rtb/sampler.h"
#include "rtb/stats.h"
#include "store/store.h"

#define RTB_ALERT_MIN_COUNT 5
#define RTB_ALERTS_CHANNEL "auction:alerts"

typedef struct rtb_alerts rtb_alerts;

/* The rules of cfg->alerts (none: an empty set; the config's rows checked
 * them), evaluated on `samples` (per-bidder metrics name the advertisers of
 * `reg`), latency quantiles with `bounds`, transitions published through
 * `st`. Everything is borrowed for the set's life. Returns NULL with "out of
 * memory" in `err` when memory ran out. */
rtb_alerts *rtb_alerts_new(const proto_config *cfg, store *st, const rtb_registry *reg,
                           const rtb_sampler *samples, const rtb_latency_bounds *bounds, char *err,
                           size_t errlen);
void rtb_alerts_free(rtb_alerts *a);
/* Evaluate every rule on the samples; `wall_us` (Unix µs) stamps the
 * transitions. Called after each sample. */
void rtb_alerts_evaluate(rtb_alerts *a, int64_t wall_us);
/* Append one object per active alert to the cJSON array `array` (owned by
 * the caller): {"name","metric","subject","value","above","window_s",
 * "since"}. Returns 0, or -1 when memory ran out. */
int rtb_alerts_json(const rtb_alerts *a, cJSON *array);
/* Number of active alerts. */
size_t rtb_alerts_active(const rtb_alerts *a);
/* Number of rules. */
size_t rtb_alerts_rules(const rtb_alerts *a);

#endif

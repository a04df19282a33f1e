/* registry.h -- the advertisers the exchange knows (SPEC 6) and the choice
 * of bidders for one auction (SPEC 3.3).
 *
 * The set only grows: an advertiser that leaves the registry is marked
 * inactive and keeps its index (dashboards and counters refer to advertisers
 * by index). */
#ifndef RTB_REGISTRY_H
#define RTB_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"
#include "rtb/bidder.h"
#include "store/store.h"

typedef struct rtb_registry rtb_registry;

/* An empty registry whose bidders call through `http` (borrowed; NULL: they
 * are never called) with answer bodies of at most cfg->limits.
 * max_response_bytes, and that adds cfg->bidders on every apply. `cfg` is
 * borrowed for the registry's life. Interests are hashed under a random key
 * drawn here (SPEC 15). Returns NULL when memory ran out or libsodium could
 * not start. */
rtb_registry *rtb_registry_new(const proto_config *cfg, rtb_http *http);
/* Free the registry and its bidders (their calls must have ended). NULL is
 * a no-op. */
void rtb_registry_free(rtb_registry *r);

/* Make the advertisers of `entries` (advertiser:targeting:* values, as
 * store_registry_load gives them; n may be 0) and of the config's `bidders`
 * (added where Redis has no entry of that id) the active set; everyone else
 * becomes inactive. Entries that do not decode, or whose endpoint cannot be
 * used, are skipped with a warning naming the key. SPEC 6. */
void rtb_registry_apply(rtb_registry *r, const store_entry *entries, size_t n);

/* Advertisers known (active or not), and the one at `index` (< count). */
size_t rtb_registry_count(const rtb_registry *r);
rtb_bidder *rtb_registry_at(const rtb_registry *r, size_t index);
/* Active advertisers now. */
size_t rtb_registry_active(const rtb_registry *r);
/* The active advertiser `id`, or NULL (unknown or no longer active). */
rtb_bidder *rtb_registry_find(const rtb_registry *r, const char *id);

/* The active advertisers whose interests match the user (`user`: the
 * profile's interests, `context`: user_context.interests; cJSON arrays of
 * strings, either may be NULL; an advertiser with no interests matches
 * everyone), at most `room` of them, into `chosen`, in the order to call
 * them. At most `max` are to be called (SPEC 3.3); when more than `max` are
 * eligible, the order starts where the last auction's went no further
 * (rtb_registry_passed), round robin. The caller goes down the order and
 * passes over the ones it may not call now (budget, health: SPEC 13, 16)
 * until `max` are called, so such an advertiser does not take the place of
 * one that could bid, and the ones that can bid share the calls equally
 * (SPEC 3.3: "an equal share over time"). With `room` == `max` only the
 * first `max` of the order are given. Time linear in the user's interests
 * plus the active advertisers' (SPEC 15); nothing is allocated unless the
 * user has more interests than any user before (then 0 when memory ran
 * out, logged). Returns how many were put into `chosen`. */
size_t rtb_registry_choose(rtb_registry *r, const cJSON *user, const cJSON *context,
                           rtb_bidder **chosen, size_t max, size_t room);

/* The caller of rtb_registry_choose went through the first `places` of the
 * order it was given (called or passed over): the next order starts after
 * them. Without this call the next order starts at the same place. */
void rtb_registry_passed(rtb_registry *r, size_t places);

#endif

/* ledger.h -- the notices that carry money (SPEC 9, 14, 15): win and loss
 * notices when an auction closes, the billing notice when its impression
 * arrives, and what of them survives a drain, a restart or a crash.
 *
 * Win and loss notices go out once, at close. A winner's `burl` is kept in
 * Redis (burl:{request_id}, a day) until the impression of its ad arrives;
 * then one Redis script both decides that this is the first impression
 * anywhere (SET billed:{request_id} 1 NX EX 86400) and records the bill in
 * the sorted set notices:burl:pending, leased to this exchange for a while.
 * The bill leaves that set only when its target answered 2xx, or when
 * notices.burl_retry_s has passed since the first attempt; a failure moves
 * its score to the next attempt (1 s, then doubling). Every second each
 * exchange claims what is due in it, so retries survive a restart, and a
 * lease that ran out (the exchange died with the bill out) makes it due
 * again. A drain that cannot wait for notices still out puts them in Redis
 * (win and loss notices in notices:pending), due at once for the next
 * exchange. Notices are sent at least once: one the target received while
 * its answer was lost may come again. */
#ifndef RTB_LEDGER_H
#define RTB_LEDGER_H

#include <stddef.h>

#include "proto/proto.h"
#include "rtb/call.h"
#include "rtb/notice.h"
#include "rtb/registry.h"
#include "rtb/txn.h"
#include "store/store.h"

struct event_base;

typedef struct rtb_ledger rtb_ledger;

typedef struct rtb_ledger_stats {
    unsigned long long burl_kept;    /* winners' burls kept for their impression */
    unsigned long long burl_refused; /* winners' burls never kept: not http:// on an allowed host */
    unsigned long long burl_billed;  /* billing notices answered 2xx */
    unsigned long long burl_retried; /* attempts that failed and were rescheduled */
    unsigned long long burl_failed;  /* given up: notices.burl_retry_s spent, or refused */
    long long burl_pending;          /* in notices:burl:pending at the last claim (all exchanges) */
    unsigned long long kept;         /* notices a drain left in Redis for the next exchange */
    unsigned long long resumed;      /* notices taken from Redis (kept, or due again) */
    unsigned long long redis_errors; /* claims Redis did not answer: retried at the next poll */
} rtb_ledger_stats;

/* A ledger sending through `http`, keeping state in `st`, finding each
 * notice's bidder (its hosts and share, SPEC 15) in `reg`, with the
 * limits and notices.* of `cfg`; all borrowed, and `st` must be freed
 * before the ledger (its last answers reach it). It claims due notices
 * from Redis every second from the start. Returns NULL when memory ran
 * out. */
rtb_ledger *rtb_ledger_new(struct event_base *base, rtb_http *http, store *st, rtb_registry *reg,
                           const proto_config *cfg);
/* Cancel what is still out (bills stay pending in Redis) and free. NULL is
 * a no-op. */
void rtb_ledger_free(rtb_ledger *l);

/* A success closed (SPEC 9, 14): send its win and loss notices and keep the
 * winner's burl for its impression. `o` is borrowed for the call. */
void rtb_ledger_on_win(rtb_ledger *l, const rtb_txn_outcome *o);
/* The impression of `ad_id` in auction `request_id` (SPEC 10): bill it, if
 * its winner gave a burl and no impression billed it before. */
void rtb_ledger_on_impression(rtb_ledger *l, const char *request_id, const char *ad_id);

/* Stop claiming from Redis (a drain has begun). */
void rtb_ledger_stop(rtb_ledger *l);
/* Notices out now. */
size_t rtb_ledger_out(const rtb_ledger *l);
/* The drain will not wait longer: put every notice still out in Redis, due
 * at once, and cancel it here. The writes go through `st` (wait for
 * store_pending to reach 0). */
void rtb_ledger_keep(rtb_ledger *l);

const rtb_ledger_stats *rtb_ledger_get_stats(const rtb_ledger *l);
const rtb_notice_stats *rtb_ledger_notice_stats(const rtb_ledger *l);

#endif

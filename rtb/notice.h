/* notice.h -- win and loss notices (SPEC 9): fire-and-forget HTTP GETs.
 *
 * A notice never delays a result: the auction's result is published first,
 * then its notices are handed here. At most `max_pending` notices are out
 * at once; past that a notice is dropped and counted, so a dead notice
 * server cannot grow memory. */
#ifndef RTB_NOTICE_H
#define RTB_NOTICE_H

#include <stddef.h>

#include "proto/proto.h"
#include "rtb/call.h"

typedef struct rtb_notifier rtb_notifier;

typedef struct rtb_notice_stats {
    unsigned long long sent;    /* answered with 2xx */
    unsigned long long failed;  /* bad URL, other status, connection error, timeout */
    unsigned long long dropped; /* queue full (limits.max_pending_notices) */
} rtb_notice_stats;

/* A notifier whose GETs go through `http` (borrowed; must outlive it), with
 * at most `max_pending` notices out at once (0: 100000). Returns NULL when
 * memory ran out. */
rtb_notifier *rtb_notifier_new(rtb_http *http, size_t max_pending);
/* Cancel what is still out (not counted as failed) and free. NULL is a
 * no-op. */
void rtb_notifier_free(rtb_notifier *n);
/* Substitute the macros of `m` in `url_template` (OpenRTB 2.6 section 4.4)
 * and GET it, fire and forget: never blocks, never delays a result. A URL
 * that is not http:// with a host counts as failed; past max_pending it is
 * dropped. An empty or NULL template is nothing to send. */
void rtb_notify(rtb_notifier *n, const char *url_template, const proto_notice_macros *m);
const rtb_notice_stats *rtb_notifier_stats(const rtb_notifier *n);
/* Notices out now. */
size_t rtb_notifier_pending(const rtb_notifier *n);

#endif

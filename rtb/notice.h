/* notice.h -- win, loss and billing notices (SPEC 9, 14, 15): HTTP GETs
 * that never delay a result.
 *
 * A notice is handed over after its auction's result is published. It goes
 * out at once through a small pool of connections per target host; its
 * callback (if any) hears once whether the target answered 2xx. Bounds
 * (SPEC 15): at most `max_pending` notices out at once, and a caller may
 * give each notice an owner counter with a share of that (a bidder's own
 * share, so one slow host cannot take the whole budget); a notice URL must
 * be http:// with a host among the ones the caller allows (the bidder's
 * endpoint host and its notice_hosts); targets idle longest are evicted
 * when the table is full; answers are bounded in headers, body and time.
 * Notices still out can be listed (a drain stores them, SPEC 14). */
#ifndef RTB_NOTICE_H
#define RTB_NOTICE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"
#include "rtb/call.h"

typedef struct rtb_notifier rtb_notifier;

typedef enum rtb_notice_kind {
    RTB_NOTICE_WIN = 0, /* nurl */
    RTB_NOTICE_LOSS,    /* lurl */
    RTB_NOTICE_BILL,    /* burl */
    RTB_NOTICE_KINDS
} rtb_notice_kind;

/* "win", "loss", "bill". Never NULL. */
const char *rtb_notice_kind_str(rtb_notice_kind k);

typedef struct rtb_notice_stats {
    unsigned long long sent[RTB_NOTICE_KINDS];   /* answered with 2xx */
    unsigned long long failed[RTB_NOTICE_KINDS]; /* bad URL, other status, connection, timeout */
    unsigned long long dropped;      /* limits.max_pending_notices or the owner's share reached */
    unsigned long long refused_host; /* the URL's host is not one its bidder may use */
    unsigned long long targets_evicted; /* the target table was full: the one idle longest went */
} rtb_notice_stats;

/* How one notice ended: `ok` when it was answered with 2xx. `url` is the
 * notice's URL (valid during the call). Called once per notice that
 * rtb_notify took, never after rtb_notifier_free. */
typedef void rtb_notice_fn(void *arg, rtb_notice_kind kind, const char *url, int ok);

/* One notice to send. Everything is borrowed for the call (copied). */
typedef struct rtb_notice {
    rtb_notice_kind kind;
    const char *url;          /* expanded: no macros left */
    const char *const *hosts; /* the URL's host must be one of these (case-insensitive); */
    size_t nhosts;            /* with nhosts 0 any host will do */
    unsigned *owner_out;      /* notices out for its owner: below owner_cap, or dropped; */
    unsigned owner_cap;       /* kept up to date by the notifier. NULL: no share */
    rtb_notice_fn *done;      /* may be NULL */
    void *arg;
} rtb_notice;

/* A notifier whose GETs go through `http` (borrowed; must outlive it), with
 * at most `max_pending` notices out at once (0: 100000). Returns NULL when
 * memory ran out. */
rtb_notifier *rtb_notifier_new(rtb_http *http, size_t max_pending);
/* Cancel what is still out (no callback runs, nothing is counted) and free.
 * NULL is a no-op. */
void rtb_notifier_free(rtb_notifier *n);

/* What rtb_notify returns when a notice did not go out. */
#define RTB_NOTICE_DROPPED                                                                         \
    (-1) /* for now: past max_pending or the owner's share,                                        \
            or out of memory; it may be tried later */
#define RTB_NOTICE_REFUSED                                                                         \
    (-2) /* for good: not an http:// URL with a host, or a                                         \
            host its owner may not use */

/* Send one notice (a GET of its URL). Returns 0 when it went out: its
 * callback runs once, later. Returns RTB_NOTICE_DROPPED or
 * RTB_NOTICE_REFUSED at once (counted); the callback never runs. SPEC 9,
 * 14, 15. */
int rtb_notify(rtb_notifier *n, const rtb_notice *nt);

/* 1 when `url` is an http:// URL with a host among `hosts` (any host when
 * nhosts is 0): one that rtb_notify would not refuse. SPEC 15. */
int rtb_notice_url_ok(const char *url, const char *const *hosts, size_t nhosts);

const rtb_notice_stats *rtb_notifier_stats(const rtb_notifier *n);
/* Notices out now. */
size_t rtb_notifier_pending(const rtb_notifier *n);
/* Cancel every notice out, oldest first: instead of its callback,
 * fn(arg, kind, url, notice_arg) runs for each (`notice_arg` is the `arg`
 * it was sent with), so a drain can keep what is left (SPEC 14). */
void rtb_notifier_cancel_all(rtb_notifier *n,
                             void (*fn)(void *arg, rtb_notice_kind kind, const char *url,
                                        void *notice_arg),
                             void *arg);

#endif

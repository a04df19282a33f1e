/* redis_ev.h -- hiredis's async API on a libevent loop, writing what the
 * loop turn queued once, at its end.
 *
 * hiredis's own adapter (hiredis/adapters/libevent.h) asks for EV_WRITE on
 * every command and writes when the socket is reported writable: one loop
 * turn later, two epoll_ctl (add and remove the interest) per turn that
 * sent anything. This one, once the connection is up, makes a flush event
 * active instead: it runs after the callbacks already active in this turn
 * (so the commands of every auction handled in the turn go out in one
 * write), on a socket that is almost always writable. Only when the kernel
 * takes less than all of it does it wait for EV_WRITE. While connecting it
 * behaves as hiredis's adapter does (hiredis learns the connect's end from
 * writability). Its read event is persistent (hiredis asks for reading
 * again after every read; a one-shot event costs an epoll_ctl each time).
 * Like hiredis's adapter, it is freed by hiredis (cleanup),
 * also from inside one of its own handlers: the handler then frees it on
 * the way out. */
#ifndef GLUE_REDIS_EV_H
#define GLUE_REDIS_EV_H

struct event_base;
struct redisAsyncContext;

/* Attach `ac` (not attached yet) to `base` (borrowed; outlives it). hiredis
 * frees the adapter with the context. Returns 0, or -1 when `ac` is already
 * attached or memory ran out. */
int redis_ev_attach(struct redisAsyncContext *ac, struct event_base *base);

#endif

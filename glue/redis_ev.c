/* redis_ev.c -- hiredis on libevent, with one write per loop turn
 * (redis_ev.h). */
#include "glue/redis_ev.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <event2/event.h>

#include <stdlib.h>

typedef struct redis_ev {
    redisAsyncContext *ac;
    struct event *rev, *wev, *flush;
    int depth; /* our handlers on the stack */
    int freed; /* hiredis cleaned up inside one: free on the way out */
    int flushing;
} redis_ev;

static void enter(redis_ev *e) {
    e->depth++;
}

static void leave(redis_ev *e) {
    if (--e->depth == 0 && e->freed) free(e);
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    redis_ev *e = arg;
    enter(e);
    redisAsyncHandleRead(e->ac);
    leave(e);
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    redis_ev *e = arg;
    enter(e);
    e->flushing = 1;
    redisAsyncHandleWrite(e->ac);
    if (!e->freed) e->flushing = 0;
    leave(e);
}

static void add_read(void *p) {
    redis_ev *e = p;
    event_add(e->rev, NULL);
}

static void del_read(void *p) {
    redis_ev *e = p;
    event_del(e->rev);
}

static void add_write(void *p) {
    redis_ev *e = p;
    /* Connecting, or a flush that could not write everything: wait for the
     * socket. Otherwise write at the end of this loop turn. */
    if (e->flushing || !(e->ac->c.flags & REDIS_CONNECTED))
        event_add(e->wev, NULL);
    else if (!event_pending(e->flush, EV_WRITE, NULL))
        event_active(e->flush, EV_WRITE, 0);
}

static void del_write(void *p) {
    redis_ev *e = p;
    event_del(e->wev);
}

static void cleanup(void *p) {
    redis_ev *e = p;
    event_free(e->rev);
    event_free(e->wev);
    event_free(e->flush);
    e->ac->ev.data = NULL;
    if (e->depth > 0)
        e->freed = 1;
    else
        free(e);
}

int redis_ev_attach(redisAsyncContext *ac, struct event_base *base) {
    if (ac->ev.data != NULL) return -1;
    redis_ev *e = calloc(1, sizeof(*e));
    if (!e) return -1;
    e->ac = ac;
    /* Persistent, unlike hiredis's adapter: hiredis asks for reading again
     * after every read, and a one-shot event would be deleted and added
     * back in the same turn, which epoll pays for with an epoll_ctl. */
    e->rev = event_new(base, ac->c.fd, EV_READ | EV_PERSIST, on_read, e);
    e->wev = event_new(base, ac->c.fd, EV_WRITE, on_write, e);
    e->flush = event_new(base, -1, 0, on_write, e);
    if (!e->rev || !e->wev || !e->flush) {
        if (e->rev) event_free(e->rev);
        if (e->wev) event_free(e->wev);
        if (e->flush) event_free(e->flush);
        free(e);
        return -1;
    }
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = e;
    event_add(e->rev, NULL);
    event_add(e->wev, NULL); /* the connect's end */
    return 0;
}

/* rtb-loadgen.c -- the bid generator: open-loop load over MQTT, results from Redis (SPEC 8).
 *
 * One libevent loop, no threads. N MQTT connections, each libmosquitto client
 * driven by the adapter the exchange uses too (glue/mosq_ev.h: socket events,
 * keepalive timer, reconnects), publish bid requests (SPEC 2) round-robin on
 * {topic}/{connection index}. One hiredis async connection PSUBSCRIBEs
 * auction:results:* before the first request goes out and matches every
 * result to its request. See docs/rtb-loadgen.md.
 *
 * The one idea: the schedule is fixed in advance. Request i is due at
 * start + i / rate; a timer (set for the next request's time, and firing at
 * least every 1 ms) sends every request whose time has come, whatever became
 * of the earlier ones (open loop), and a request's latency runs from its
 * *scheduled* time to the arrival of its result. A stall anywhere -- exchange,
 * broker, Redis or this process -- therefore shows in the percentiles instead
 * of quietly lowering the send rate (no coordinated omission). Request ids
 * are {prefix}-{i}, so a result finds its request's state by index in one
 * array; deadlines (scheduled time + tmax + 1 s) come in schedule order, so one
 * cursor walking that array finds the lost requests.
 *
 * With --imps N the requests use the SPEC 17 form (N impressions, each
 * with a banner, and with --deal a private deal), and --site / --device add
 * inventory and device objects; results then carry an `imps` array, whose
 * outcomes are counted (imps won, won through a deal, results missing it).
 *
 * With --events, every `success` result also feeds an ad-event funnel
 * (SPEC 10): seeded draws decide an impression, a click (sometimes sent
 * twice) and a conversion, published at once on the request's connection.
 * A request's user is a hash of its index, so nothing per request is kept
 * for it. Before exiting the run waits (bounded) until the broker has every
 * event.
 *
 * All state lives in one `loadgen` context, created in main. */
#include <cJSON.h>
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <math.h>
#include <mosquitto.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auction/auction.h"
#include "glue/backoff.h"
#include "glue/mosq_ev.h"
#include "tools/histogram.h"

#ifndef RTB_VERSION
#define RTB_VERSION "dev"
#endif

#define RESULTS_PATTERN "auction:results:*"
#define RESULTS_PREFIX "auction:results:"
#define NS_PER_S INT64_C(1000000000)
#define NS_PER_MS INT64_C(1000000)
#define LOST_GRACE_MS 1000             /* a request is lost at scheduled time + tmax + this */
#define START_TIMEOUT_MS 5000          /* connect + CONNACK + PSUBSCRIBE confirmation */
#define TICK_MAX_US 1000               /* the send timer fires at least this often */
#define TICK_MIN_US 100                /* ... and at most this often: sends batch within 0.1 ms */
#define SEND_BUDGET_NS (2 * NS_PER_MS) /* then the loop reads the sockets before sending on */
#define KEEPALIVE_S 30
#define RETRY_MIN_US 100000
#define RETRY_MAX_US 1000000         /* a measuring tool reconnects eagerly */
#define MAX_COUNT INT64_C(100000000) /* one state byte per request */
#define MAX_PREFIX 64
#define MAX_HOST 256
#define PAYLOAD_MAX 8192 /* the largest request: 16 imps with deals, site, device, interests */
#define MAX_IMPS 16      /* SPEC 17: 1..16 imps per request */
#define SITES 10         /* --site: site-0 .. site-9 */
#define EVENTS_TOPIC "rtb/events/" /* + impression | click | conversion (SPEC 10) */
#define DRAIN_TIMEOUT_MS 2000      /* at the end: wait this long at most for the events' PUBACKs */

/* --interests: at most this many, each 1..MAX_INTEREST_CHARS characters of
 * [A-Za-z0-9._:-] (SPEC 2 allows 64 of 64 characters; the charset keeps
 * them free of JSON escapes). */
#define MAX_INTERESTS 64
#define MAX_INTEREST_CHARS 64

/* ---- State ------------------------------------------------------------------ */

/* What became of request i; one byte each. A request is decided once it is
 * RECEIVED or LOST; LATE is a LOST one whose result came after all. */
typedef enum req_state { REQ_UNSENT, REQ_SENT, REQ_RECEIVED, REQ_LOST, REQ_LATE } req_state;

typedef enum status {
    ST_SUCCESS,
    ST_NO_BID,
    ST_TIMEOUT,
    ST_INVALID,
    ST_OVERLOADED,
    ST_OTHER, /* no status, or one SPEC 4 does not list */
    NSTATUS
} status;

static const char *const status_names[NSTATUS] = {"success", "no_bid",     "timeout",
                                                  "invalid", "overloaded", "other"};

typedef struct addr {
    char host[MAX_HOST];
    int port;
} addr;

typedef struct options {
    double rate;       /* requests/s */
    double duration_s; /* used when count is 0 */
    int64_t count;     /* 0: rate x duration */
    int64_t qos;
    int64_t users;
    int64_t slots;
    int64_t floor_lo_micros, floor_hi_micros;
    double context_share; /* share of requests carrying user_context.interests */
    /* what they carry: 1 to 3 of these (--interests) */
    char interests[MAX_INTERESTS][MAX_INTEREST_CHARS + 1];
    size_t ninterests;
    int64_t connections;
    addr mqtt;
    addr redis;
    char topic[MAX_HOST];
    int64_t tmax_ms;
    char id_prefix[MAX_PREFIX + 1]; /* "": a random run id */
    int64_t imps;                   /* --imps: imps per request (SPEC 17); 0: the SPEC 2 form */
    int site;                       /* --site: requests carry site {...} */
    int device;                     /* --device: requests carry device {...} */
    char deal[MAX_PREFIX + 1];      /* --deal: every imp offers this deal; "": none */
    int json;
    int quiet;
    int events;                  /* --events: the ad-event funnel */
    double impression_rate;      /* share of success results with an impression */
    double click_rate;           /* share of impressions with a click */
    double conversion_rate;      /* share of clicks with a conversion */
    double duplicate_click_rate; /* share of clicks sent twice */
} options;

typedef struct counts {
    uint64_t sent;           /* requests whose time came and were handed to libmosquitto */
    uint64_t received;       /* first results in time */
    uint64_t lost;           /* no result by deadline (also: the publish failed) */
    uint64_t duplicated;     /* a second result for the same request */
    uint64_t late;           /* a result after its request was counted lost */
    uint64_t unexpected;     /* our prefix, but a request we never sent */
    uint64_t publish_errors; /* mosquitto_publish refused the request */
    uint64_t status[NSTATUS];
    /* SPEC 17 results (--imps): entries of their `imps` arrays */
    uint64_t imps_received;
    uint64_t imps_won;     /* ... with status success */
    uint64_t deals_won;    /* ... won through a deal (winner.deal_id set) */
    uint64_t imps_missing; /* results of imps-form requests, not invalid, without `imps` */
    /* ad events sent (--events); never part of sent/received/lost */
    uint64_t impressions;
    uint64_t clicks;           /* first sends of clicks */
    uint64_t duplicate_clicks; /* second sends of the same click */
    uint64_t conversions;
    uint64_t event_errors; /* event publishes libmosquitto refused */
} counts;

struct loadgen;

typedef struct mqtt_conn {
    struct loadgen *lg;
    int index;
    struct mosquitto *mosq;
    mosq_ev *ev; /* drives mosq on the loop, reconnects */
    char topic[MAX_HOST + 16];
} mqtt_conn;

typedef struct loadgen {
    options opt;
    uint64_t rng;
    uint64_t user_seed; /* user of request i: a hash of (user_seed, i) */
    uint64_t event_rng; /* the funnel's draws, apart from the requests' */
    struct event_base *base;
    mqtt_conn *conns;
    redisAsyncContext *ac; /* NULL while disconnected */
    struct event *tick, *progress, *start_timeout, *redis_retry, *sigint, *sigterm;
    backoff redis_backoff;
    int subscribed;  /* PSUBSCRIBE confirmed on the current connection */
    int started;     /* the schedule runs */
    int stopping;    /* a signal came: no more sends */
    int freeing;     /* callbacks from teardown do nothing */
    int exit_code;   /* set when the run cannot go on: 2 */
    uint64_t total;  /* requests in the schedule */
    uint64_t next;   /* next request to send */
    uint64_t cursor; /* requests below it are decided */
    uint8_t *state;  /* req_state per request */
    int64_t start_ns;
    double start_wall_s;
    int64_t last_send_ns, last_result_ns;
    int64_t max_send_lag_ns; /* how far behind its schedule a send went out, at worst */
    int64_t progress_ns;
    uint64_t progress_received;
    uint64_t publishes;     /* publishes libmosquitto took (requests and events) */
    uint64_t published;     /* ... of which written (QoS 0) or acknowledged (QoS 1) */
    int64_t drain_start_ns; /* when the schedule was done and the events' drain began */
    int warned_no_winner;   /* a success result without winner ids was reported */
    counts c;
    histogram latency; /* ns from scheduled send to result */
} loadgen;

/* ---- Small helpers ----------------------------------------------------------- */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static double wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12; /* xorshift64* */
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(0x2545F4914F6CDD1D);
}

/* Uniform in 0..n (inclusive). */
static uint64_t rng_upto(uint64_t *s, uint64_t n) {
    return n == UINT64_MAX ? rng_next(s) : rng_next(s) % (n + 1);
}

/* 1 with probability p (0 never, 1 always). */
static int rng_chance(uint64_t *s, double p) {
    return (double)(rng_next(s) >> 11) / 9007199254740992.0 < p; /* uniform in [0, 1) */
}

/* The user of request i, 0..users-1: splitmix64 of (seed, i), so the funnel
 * finds a request's user again without storing it. */
static uint64_t user_of(const loadgen *lg, uint64_t i) {
    uint64_t z = lg->user_seed + (i + 1) * UINT64_C(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    z ^= z >> 31;
    return z % (uint64_t)lg->opt.users;
}

static int64_t sched_ns(const loadgen *lg, uint64_t i) {
    return lg->start_ns + (int64_t)((double)i * 1e9 / lg->opt.rate);
}

static void warn(const loadgen *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(const loadgen *lg, const char *fmt, ...) {
    if (lg->opt.quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("rtb-loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* The run cannot start (broker or Redis unreachable, refused): exit 2. */
static void start_failed(loadgen *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void start_failed(loadgen *lg, const char *fmt, ...) {
    if (lg->exit_code != 0) return; /* report the first cause only */
    va_list ap;
    va_start(ap, fmt);
    fputs("rtb-loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    lg->exit_code = 2;
    event_base_loopbreak(lg->base);
}

/* ---- Command line: a table of options, walked by one loop --------------------- */

typedef enum opt_type {
    OPT_REAL,  /* double in [lo, hi] */
    OPT_INT,   /* integer in [lo, hi] */
    OPT_ADDR,  /* HOST:PORT */
    OPT_FLOOR, /* A-B or X, decimals with at most 6 decimals */
    OPT_TOPIC, /* MQTT topic prefix without wildcards */
    OPT_ID,    /* 1..MAX_PREFIX characters of [A-Za-z0-9._:-] */
    OPT_WORDS, /* comma-separated interests: [A-Za-z0-9._:-], see MAX_INTERESTS */
    OPT_FLAG,  /* no argument; sets an int to 1 */
} opt_type;

typedef struct opt_row {
    const char *name;
    opt_type type;
    double lo, hi;
    const char *def; /* parsed like a given value; NULL: none */
    size_t offset;
    const char *arg;
    const char *help;
} opt_row;

static const opt_row opt_rows[] = {
    {"rate", OPT_REAL, 0.001, 1e7, "100", offsetof(options, rate), "N", "requests per second"},
    {"duration", OPT_REAL, 0.001, 86400, "10", offsetof(options, duration_s), "S",
     "seconds of requests (unless --count)"},
    {"count", OPT_INT, 1, (double)MAX_COUNT, NULL, offsetof(options, count), "N",
     "number of requests (instead of --duration)"},
    {"qos", OPT_INT, 0, 1, "1", offsetof(options, qos), "0|1", "MQTT QoS of the requests"},
    {"users", OPT_INT, 1, 1e12, "1000", offsetof(options, users), "N", "user ids u-0..u-N-1"},
    {"slots", OPT_INT, 1, 1e12, "10", offsetof(options, slots), "N",
     "ad slot ids slot-0..slot-N-1"},
    {"floor", OPT_FLOOR, 0, 0, "0.5-2.0", offsetof(options, floor_lo_micros), "A-B",
     "floor price, uniform in [A, B] (at most 6 decimals)"},
    {"context-share", OPT_REAL, 0, 1, "0.2", offsetof(options, context_share), "F",
     "share of requests with user_context.interests (1 to 3 of --interests)"},
    {"interests", OPT_WORDS, 0, 0, "tech,sports,travel,finance,fashion,autos,food,gaming",
     offsetof(options, interests), "LIST",
     "the interests requests carry, comma-separated: target advertisers"},
    {"connections", OPT_INT, 1, 256, "1", offsetof(options, connections), "N",
     "MQTT connections, requests round-robin"},
    {"mqtt", OPT_ADDR, 0, 0, "127.0.0.1:1883", offsetof(options, mqtt), "HOST:PORT", "MQTT broker"},
    {"redis", OPT_ADDR, 0, 0, "127.0.0.1:6379", offsetof(options, redis), "HOST:PORT", "Redis"},
    {"topic", OPT_TOPIC, 0, 0, "rtb/requests", offsetof(options, topic), "PREFIX",
     "publish on PREFIX/<connection index>"},
    {"tmax-ms", OPT_INT, 1, 600000, "100", offsetof(options, tmax_ms), "N",
     "lost: no result by scheduled time + N ms + 1 s"},
    {"id-prefix", OPT_ID, 0, 0, NULL, offsetof(options, id_prefix), "STR",
     "request ids STR-<n> (default: a random run id)"},
    {"imps", OPT_INT, 1, MAX_IMPS, NULL, offsetof(options, imps), "N",
     "N imps per request, the SPEC 17 form (default: the SPEC 2 form)"},
    {"site", OPT_FLAG, 0, 0, NULL, offsetof(options, site), NULL,
     "requests carry site {id,domain,page,publisher}"},
    {"device", OPT_FLAG, 0, 0, NULL, offsetof(options, device), NULL,
     "requests carry device {ua,ip,devicetype,os,language,geo}"},
    {"deal", OPT_ID, 0, 0, NULL, offsetof(options, deal), "ID",
     "every imp offers private deal ID at its floor (needs --imps)"},
    {"json", OPT_FLAG, 0, 0, NULL, offsetof(options, json), NULL,
     "print the summary as one JSON object"},
    {"quiet", OPT_FLAG, 0, 0, NULL, offsetof(options, quiet), NULL,
     "no progress, no human summary, no warnings"},
    {"events", OPT_FLAG, 0, 0, NULL, offsetof(options, events), NULL,
     "publish ad events (rtb/events/...) for success results"},
    {"impression-rate", OPT_REAL, 0, 1, "0.9", offsetof(options, impression_rate), "F",
     "share of success results with an impression"},
    {"click-rate", OPT_REAL, 0, 1, "0.1", offsetof(options, click_rate), "F",
     "share of impressions with a click"},
    {"conversion-rate", OPT_REAL, 0, 1, "0.2", offsetof(options, conversion_rate), "F",
     "share of clicks with a conversion"},
    {"duplicate-click-rate", OPT_REAL, 0, 1, "0.05", offsetof(options, duplicate_click_rate), "F",
     "share of clicks sent twice"},
};
#define NOPTS (sizeof opt_rows / sizeof opt_rows[0])

static void usage(FILE *f) {
    fprintf(f, "usage: rtb-loadgen [OPTION]...\n\n"
               "Publishes bid requests over MQTT at a fixed rate (open loop), matches the\n"
               "results on Redis auction:results:* and reports counts and latency.\n\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const opt_row *r = &opt_rows[i];
        char left[40];
        snprintf(left, sizeof left, "--%s%s%s", r->name, r->arg ? " " : "", r->arg ? r->arg : "");
        fprintf(f, "  %-24s %s", left, r->help);
        if (r->def) fprintf(f, " (%s)", r->def);
        fputc('\n', f);
    }
    fprintf(f, "  %-24s %s\n  %-24s %s\n", "--help", "print this and exit", "--version",
            "print the version and exit");
    fprintf(f, "\nExit: 0 all results came, 1 something was lost or duplicated,\n"
               "2 bad options, or the broker or Redis cannot be reached at start.\n");
}

static int parse_int(const char *s, double lo, double hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || (double)v < lo || (double)v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

static int parse_addr(const char *s, addr *out) {
    const char *colon = strrchr(s, ':');
    if (colon == NULL) return -1;
    const char *host = s, *host_end = colon;
    if (*host == '[' && host_end > host && host_end[-1] == ']') {
        host++;
        host_end--;
    }
    size_t len = (size_t)(host_end - host);
    int64_t port;
    if (len == 0 || len >= sizeof out->host || parse_int(colon + 1, 1, 65535, &port) != 0)
        return -1;
    memcpy(out->host, host, len);
    out->host[len] = '\0';
    out->port = (int)port;
    return 0;
}

static int parse_floor(const char *s, int64_t *lo_hi) {
    const char *dash = strchr(s, '-'), *end = s + strlen(s);
    if (dash == NULL) dash = end;
    if (auction_micros_parse(s, (size_t)(dash - s), &lo_hi[0]) != 0) return -1;
    if (dash == end)
        lo_hi[1] = lo_hi[0];
    else if (auction_micros_parse(dash + 1, (size_t)(end - dash - 1), &lo_hi[1]) != 0)
        return -1;
    return lo_hi[0] <= lo_hi[1] ? 0 : -1;
}

static int id_char(char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == ':' || ch == '-';
}

static int copy_checked(char *dst, size_t cap, const char *s, int (*ok)(char)) {
    size_t len = strlen(s);
    if (len == 0 || len >= cap) return -1;
    for (size_t i = 0; i < len; i++)
        if (!ok(s[i])) return -1;
    memcpy(dst, s, len + 1);
    return 0;
}

/* "a,b,c" into o->interests: 1..MAX_INTERESTS words of 1..MAX_INTEREST_CHARS
 * characters of [A-Za-z0-9._:-]. */
static int parse_words(options *o, const char *s) {
    size_t n = 0;
    for (const char *p = s;; n++) {
        size_t len = strcspn(p, ",");
        if (n == MAX_INTERESTS || len == 0 || len > MAX_INTEREST_CHARS) return -1;
        for (size_t i = 0; i < len; i++)
            if (!id_char(p[i])) return -1;
        memcpy(o->interests[n], p, len);
        o->interests[n][len] = '\0';
        if (p[len] == '\0') break;
        p += len + 1;
    }
    o->ninterests = n + 1;
    return 0;
}

static int topic_char(char ch) {
    return ch != '+' && ch != '#' && ch != '\0';
}

static int opt_set(options *o, const opt_row *r, const char *v) {
    void *field = (char *)o + r->offset;
    switch (r->type) {
    case OPT_REAL:
        return parse_double(v, r->lo, r->hi, (double *)field);
    case OPT_INT:
        return parse_int(v, r->lo, r->hi, (int64_t *)field);
    case OPT_ADDR:
        return parse_addr(v, (addr *)field);
    case OPT_FLOOR:
        return parse_floor(v, (int64_t *)field);
    case OPT_TOPIC:
        return copy_checked((char *)field, MAX_HOST, v, topic_char);
    case OPT_ID:
        return copy_checked((char *)field, MAX_PREFIX + 1, v, id_char);
    case OPT_WORDS:
        return parse_words(o, v);
    case OPT_FLAG:
        *(int *)field = 1;
        return 0;
    }
    return -1;
}

/* Returns 0 to run, 1 to exit 0 (--help, --version), 2 on a bad command line. */
static int parse_args(options *o, int argc, char **argv) {
    struct option longopts[NOPTS + 3];
    for (size_t i = 0; i < NOPTS; i++) {
        longopts[i] = (struct option){
            opt_rows[i].name, opt_rows[i].type == OPT_FLAG ? no_argument : required_argument, NULL,
            (int)i};
        if (opt_rows[i].def && opt_set(o, &opt_rows[i], opt_rows[i].def) != 0)
            return 2; /* a bad default: a bug in the table */
    }
    longopts[NOPTS] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[NOPTS + 1] = (struct option){"version", no_argument, NULL, 'V'};
    longopts[NOPTS + 2] = (struct option){NULL, 0, NULL, 0};
    int given_duration = 0, c;
    const char *given_rate = NULL; /* a funnel rate, which needs --events */
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == 'V') {
            printf("rtb-loadgen %s\n", RTB_VERSION);
            return 1;
        }
        if (c < 0 || (size_t)c >= NOPTS) {
            fprintf(stderr, "rtb-loadgen: try --help\n");
            return 2;
        }
        const opt_row *r = &opt_rows[c];
        if (opt_set(o, r, optarg) != 0) {
            fprintf(stderr, "rtb-loadgen: --%s: bad value '%s' (want %s: %s)\n", r->name, optarg,
                    r->arg, r->help);
            return 2;
        }
        given_duration |= strcmp(r->name, "duration") == 0;
        if (strstr(r->name, "-rate") != NULL) given_rate = r->name; /* the funnel's */
    }
    if (optind < argc) {
        fprintf(stderr, "rtb-loadgen: unexpected argument '%s'; try --help\n", argv[optind]);
        return 2;
    }
    if (given_rate && !o->events) {
        fprintf(stderr, "rtb-loadgen: --%s needs --events\n", given_rate);
        return 2;
    }
    if (o->deal[0] != '\0' && o->imps == 0) {
        fprintf(stderr, "rtb-loadgen: --deal needs --imps (deals are offered per imp)\n");
        return 2;
    }
    if (given_duration && o->count > 0) {
        fprintf(stderr, "rtb-loadgen: give --duration or --count, not both\n");
        return 2;
    }
    if (o->count == 0 && o->rate * o->duration_s > (double)MAX_COUNT) {
        fprintf(stderr, "rtb-loadgen: rate x duration is over %" PRId64 " requests\n", MAX_COUNT);
        return 2;
    }
    return 0;
}

/* ---- Requests out (SPEC 2, 17) ------------------------------------------------------ */

/* A request's text, appended in place; `n` may pass `cap`, which
 * build_request checks once at the end (PAYLOAD_MAX holds the largest). */
typedef struct out_buf {
    char *buf;
    size_t cap, n;
} out_buf;

static void out_add(out_buf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_add(out_buf *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(o->buf + (o->n < o->cap ? o->n : o->cap), o->n < o->cap ? o->cap - o->n : 0,
                      fmt, ap);
    va_end(ap);
    if (k > 0) o->n += (size_t)k;
}

/* A floor drawn uniformly from --floor, printed. */
static void draw_floor(loadgen *lg, char floor[AUCTION_MICROS_STRLEN]) {
    const options *o = &lg->opt;
    int64_t micros =
        o->floor_lo_micros +
        (int64_t)rng_upto(&lg->rng, (uint64_t)(o->floor_hi_micros - o->floor_lo_micros));
    auction_micros_format(micros, floor);
}

/* --imps N: "imps":[{"id":"1","ad_slot_id","floor_price","banner", and with
 * --deal "pmp":{"deals":[{"id","bidfloor"}]}}, ... "N"] (SPEC 17); each
 * imp's slot and floor drawn as the SPEC 2 form's are, the deal's floor
 * the imp's. */
static void add_imps(loadgen *lg, out_buf *out) {
    const options *o = &lg->opt;
    out_add(out, "\"imps\":[");
    for (int64_t k = 1; k <= o->imps; k++) {
        uint64_t slot = rng_upto(&lg->rng, (uint64_t)o->slots - 1);
        char floor[AUCTION_MICROS_STRLEN];
        draw_floor(lg, floor);
        out_add(out,
                "%s{\"id\":\"%" PRId64 "\",\"ad_slot_id\":\"slot-%" PRIu64 "\",\"floor_price\":%s,"
                "\"banner\":{\"w\":300,\"h\":250}",
                k > 1 ? "," : "", k, slot, floor);
        if (o->deal[0] != '\0')
            out_add(out, ",\"pmp\":{\"deals\":[{\"id\":\"%s\",\"bidfloor\":%s}]}", o->deal, floor);
        out_add(out, "}");
    }
    out_add(out, "]");
}

/* --site: one of SITES sites, a page of its own per request. */
static void add_site(loadgen *lg, uint64_t i, out_buf *out) {
    uint64_t k = rng_upto(&lg->rng, SITES - 1);
    out_add(out,
            ",\"site\":{\"id\":\"site-%" PRIu64 "\",\"domain\":\"site-%" PRIu64 ".example\","
            "\"page\":\"https://site-%" PRIu64 ".example/%s-%" PRIu64 "\","
            "\"publisher\":{\"id\":\"pub-%" PRIu64 "\",\"name\":\"Publisher %" PRIu64 "\"}}",
            k, k, k, lg->opt.id_prefix, i, k, k);
}

/* --device: a desktop browser (AdCOM device type 2) whose documentation
 * address (192.0.2.0/24, RFC 5737) follows the user. */
static void add_device(uint64_t user, out_buf *out) {
    out_add(out,
            ",\"device\":{\"ua\":\"Mozilla/5.0 (X11; Linux x86_64) rtb-loadgen\","
            "\"ip\":\"192.0.2.%" PRIu64 "\",\"devicetype\":2,\"os\":\"Linux\",\"language\":\"en\","
            "\"geo\":{\"country\":\"USA\",\"region\":\"CA\"}}",
            1 + user % 254);
}

/* Request i into buf; returns its length, or -1 when it would not fit (a
 * bug: PAYLOAD_MAX holds the largest request the options allow). */
static int build_request(loadgen *lg, uint64_t i, char *buf, size_t cap) {
    const options *o = &lg->opt;
    out_buf out = {buf, cap, 0};
    uint64_t user = user_of(lg, i);
    double timestamp = lg->start_wall_s + (double)i / o->rate;
    out_add(&out, "{\"request_id\":\"%s-%" PRIu64 "\",\"user_id\":\"u-%" PRIu64 "\",", o->id_prefix,
            i, user);
    if (o->imps > 0) {
        add_imps(lg, &out);
    } else {
        uint64_t slot = rng_upto(&lg->rng, (uint64_t)o->slots - 1);
        char floor[AUCTION_MICROS_STRLEN];
        draw_floor(lg, floor);
        out_add(&out, "\"ad_slot_id\":\"slot-%" PRIu64 "\",\"floor_price\":%s", slot, floor);
    }
    out_add(&out, ",\"timestamp\":%.3f", timestamp);
    if ((double)rng_upto(&lg->rng, 999999) < o->context_share * 1e6) {
        size_t first = (size_t)rng_upto(&lg->rng, o->ninterests - 1);
        size_t k = 1 + (size_t)rng_upto(&lg->rng, 2);
        if (k > o->ninterests) k = o->ninterests; /* each at most once */
        out_add(&out, ",\"user_context\":{\"interests\":[");
        for (size_t j = 0; j < k; j++)
            out_add(&out, "%s\"%s\"", j ? "," : "", o->interests[(first + j) % o->ninterests]);
        out_add(&out, "]}");
    }
    if (o->site) add_site(lg, i, &out);
    if (o->device) add_device(user, &out);
    out_add(&out, "}");
    return out.n < cap ? (int)out.n : -1;
}

static void publish_one(loadgen *lg, uint64_t i) {
    char payload[PAYLOAD_MAX];
    int len = build_request(lg, i, payload, sizeof payload);
    mqtt_conn *c = &lg->conns[i % (uint64_t)lg->opt.connections];
    int rc =
        len < 0 ? MOSQ_ERR_PAYLOAD_SIZE
                : mosquitto_publish(c->mosq, NULL, c->topic, len, payload, (int)lg->opt.qos, false);
    lg->c.sent++;
    /* With QoS 1, NO_CONN still queues the message: libmosquitto sends it
     * after the reconnect, and its latency shows the wait. */
    if (rc == MOSQ_ERR_SUCCESS || (rc == MOSQ_ERR_NO_CONN && lg->opt.qos > 0)) {
        lg->publishes++;
        lg->state[i] = REQ_SENT;
        return;
    }
    /* No result can come for it: lost now. */
    lg->state[i] = REQ_LOST;
    lg->c.lost++;
    if (lg->c.publish_errors++ == 0)
        warn(lg, "publish on connection %d failed: %s (further failures are only counted)",
             c->index, mosquitto_strerror(rc));
}

/* Sends every request whose scheduled time has passed, for at most
 * SEND_BUDGET_NS; returns 1 when it stopped with requests still due. The
 * budget matters with QoS 1: libmosquitto walks its list of unacknowledged
 * messages on every publish and every PUBACK, so a burst sent without reading
 * the PUBACKs in between costs quadratic time and the loop stalls for seconds
 * (a burst after a stall being the usual cause). Requests sent late still
 * count their latency from their scheduled time. */
static int send_due(loadgen *lg, int64_t now) {
    uint64_t before = lg->next;
    int64_t stop_ns = now + SEND_BUDGET_NS;
    int behind = 0;
    while (lg->next < lg->total && sched_ns(lg, lg->next) <= now) {
        int64_t lag_ns = now - sched_ns(lg, lg->next);
        if (lag_ns > lg->max_send_lag_ns) lg->max_send_lag_ns = lag_ns;
        publish_one(lg, lg->next++);
        if ((lg->next - before) % 32 == 0 && now_ns() > stop_ns) {
            behind = 1;
            break;
        }
    }
    if (lg->next == before) return 0;
    lg->last_send_ns = now_ns();
    for (int64_t k = 0; k < lg->opt.connections; k++)
        mosq_ev_update_write(lg->conns[k].ev);
    return behind;
}

/* Advances the cursor over decided requests; a sent one past its deadline is lost. */
static void expire_due(loadgen *lg, int64_t now) {
    int64_t grace_ns = (lg->opt.tmax_ms + LOST_GRACE_MS) * NS_PER_MS;
    while (lg->cursor < lg->next) {
        uint8_t *st = &lg->state[lg->cursor];
        if (*st == REQ_SENT) {
            if (now < sched_ns(lg, lg->cursor) + grace_ns) return;
            *st = REQ_LOST;
            lg->c.lost++;
        }
        lg->cursor++;
    }
}

/* ---- Results in (SPEC 4) -------------------------------------------------------- */

static status parse_status(const cJSON *root) {
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "status");
    if (cJSON_IsString(st))
        for (int k = 0; k < ST_OTHER; k++)
            if (strcmp(st->valuestring, status_names[k]) == 0) return (status)k;
    return ST_OTHER;
}

/* SPEC 17: the outcomes in a result's `imps` array. A result of an
 * imps-form request (--imps) must carry it unless it is invalid; one that
 * does not is counted in imps_missing. */
static void count_imps(loadgen *lg, const cJSON *root, status s) {
    const cJSON *imps = cJSON_GetObjectItemCaseSensitive(root, "imps"), *imp;
    if (!cJSON_IsArray(imps)) {
        if (lg->opt.imps > 0 && s != ST_INVALID) lg->c.imps_missing++;
        return;
    }
    cJSON_ArrayForEach(imp, imps) {
        lg->c.imps_received++;
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(imp, "status");
        if (!cJSON_IsString(st) || strcmp(st->valuestring, "success") != 0) continue;
        lg->c.imps_won++;
        const cJSON *winner = cJSON_GetObjectItemCaseSensitive(imp, "winner");
        if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(winner, "deal_id"))) lg->c.deals_won++;
    }
}

/* ---- Ad events out (SPEC 10) ------------------------------------------------------ */

/* What the events of one success result share. */
typedef struct funnel {
    mqtt_conn *conn; /* the request's connection: its events stay in order */
    char request_id[MAX_PREFIX + 24];
    char user_id[32];
    const char *ad_id, *advertiser_id; /* from the result's winner */
} funnel;

/* Publishes one event on rtb/events/{type} with event id {request_id}:{tag};
 * returns 0 when libmosquitto took it. */
static int publish_event(loadgen *lg, const funnel *f, const char *type, const char *tag) {
    char topic[64], event_id[sizeof f->request_id + 16];
    snprintf(topic, sizeof topic, "%s%s", EVENTS_TOPIC, type);
    snprintf(event_id, sizeof event_id, "%s:%s", f->request_id, tag);
    cJSON *ev = cJSON_CreateObject();
    char *text = NULL;
    if (ev && cJSON_AddStringToObject(ev, "event_id", event_id) &&
        cJSON_AddStringToObject(ev, "request_id", f->request_id) &&
        cJSON_AddStringToObject(ev, "ad_id", f->ad_id) &&
        cJSON_AddStringToObject(ev, "advertiser_id", f->advertiser_id) &&
        cJSON_AddStringToObject(ev, "user_id", f->user_id) &&
        cJSON_AddNumberToObject(ev, "timestamp", round(wall_s() * 1e3) / 1e3))
        text = cJSON_PrintUnformatted(ev);
    cJSON_Delete(ev);
    int rc = MOSQ_ERR_NOMEM;
    if (text)
        rc = mosquitto_publish(f->conn->mosq, NULL, topic, (int)strlen(text), text,
                               (int)lg->opt.qos, false);
    cJSON_free(text);
    /* As for requests: with QoS 1 a publish while disconnected is queued. */
    if (rc == MOSQ_ERR_SUCCESS || (rc == MOSQ_ERR_NO_CONN && lg->opt.qos > 0)) {
        lg->publishes++;
        return 0;
    }
    if (lg->c.event_errors++ == 0)
        warn(lg, "event publish on connection %d failed: %s (further failures are only counted)",
             f->conn->index, text ? mosquitto_strerror(rc) : "out of memory");
    return -1;
}

/* The funnel of request i's success result: an impression, then maybe a
 * click (maybe twice), then maybe a conversion. A refused publish ends it. */
static void send_events(loadgen *lg, uint64_t i, const cJSON *result) {
    const options *o = &lg->opt;
    const cJSON *winner = cJSON_GetObjectItemCaseSensitive(result, "winner");
    const cJSON *adv = cJSON_GetObjectItemCaseSensitive(winner, "advertiser_id");
    const cJSON *ad = cJSON_GetObjectItemCaseSensitive(winner, "ad_id");
    if (!cJSON_IsString(adv) || !cJSON_IsString(ad)) {
        if (!lg->warned_no_winner++) warn(lg, "a success result without winner ids: no events");
        return;
    }
    funnel f = {.conn = &lg->conns[i % (uint64_t)o->connections],
                .ad_id = ad->valuestring,
                .advertiser_id = adv->valuestring};
    snprintf(f.request_id, sizeof f.request_id, "%s-%" PRIu64, o->id_prefix, i);
    snprintf(f.user_id, sizeof f.user_id, "u-%" PRIu64, user_of(lg, i));
    uint64_t *r = &lg->event_rng;
    if (!rng_chance(r, o->impression_rate) || publish_event(lg, &f, "impression", "imp") != 0)
        goto out;
    lg->c.impressions++;
    if (!rng_chance(r, o->click_rate) || publish_event(lg, &f, "click", "click") != 0) goto out;
    lg->c.clicks++;
    if (rng_chance(r, o->duplicate_click_rate) && publish_event(lg, &f, "click", "click") == 0)
        lg->c.duplicate_clicks++;
    if (rng_chance(r, o->conversion_rate) && publish_event(lg, &f, "conversion", "conv") == 0)
        lg->c.conversions++;
out:
    mosq_ev_update_write(f.conn->ev);
}

/* libmosquitto: a QoS 0 publish was written, or a QoS 1 publish acknowledged. */
static void on_publish(struct mosquitto *mosq, void *obj, int mid) {
    (void)mosq;
    (void)mid;
    mqtt_conn *c = obj;
    c->lg->published++;
}

/* At the end of the schedule: 1 once the broker has every publish (or after
 * DRAIN_TIMEOUT_MS, with a warning). Only with --events; results need no drain. */
static int events_drained(loadgen *lg, int64_t now) {
    if (!lg->opt.events) return 1;
    if (lg->drain_start_ns == 0) lg->drain_start_ns = now;
    int pending = lg->published < lg->publishes;
    for (int64_t k = 0; !pending && k < lg->opt.connections; k++)
        pending = lg->conns[k].mosq && mosquitto_want_write(lg->conns[k].mosq);
    if (!pending) return 1;
    if (now - lg->drain_start_ns < DRAIN_TIMEOUT_MS * NS_PER_MS) return 0;
    warn(lg, "%" PRIu64 " publish(es) not confirmed by the broker after %d ms; ending anyway",
         lg->publishes - lg->published, DRAIN_TIMEOUT_MS);
    return 1;
}

/* "{prefix}-{n}" -> n; -1 when the id is not one of ours. */
static int64_t request_index(const loadgen *lg, const char *id, size_t len) {
    size_t plen = strlen(lg->opt.id_prefix);
    if (len < plen + 2 || memcmp(id, lg->opt.id_prefix, plen) != 0 || id[plen] != '-') return -1;
    const char *d = id + plen + 1, *end = id + len;
    if (*d == '0' && d + 1 < end) return -1; /* no leading zeros: "x-07" is not request 7 */
    int64_t n = 0;
    for (; d < end; d++) {
        if (*d < '0' || *d > '9' || n > (INT64_MAX - 9) / 10) return -1;
        n = n * 10 + (*d - '0');
    }
    return n;
}

static void on_result(loadgen *lg, const char *channel, size_t clen, const char *payload,
                      size_t plen) {
    int64_t now = now_ns();
    size_t rlen = strlen(RESULTS_PREFIX);
    if (clen < rlen || memcmp(channel, RESULTS_PREFIX, rlen) != 0) return;
    int64_t n = request_index(lg, channel + rlen, clen - rlen);
    if (n < 0) return; /* another run's or another client's request */
    if ((uint64_t)n >= lg->total) {
        lg->c.unexpected++;
        return;
    }
    uint8_t *st = &lg->state[n];
    switch ((req_state)*st) {
    case REQ_UNSENT:
        lg->c.unexpected++;
        return;
    case REQ_SENT: {
        *st = REQ_RECEIVED;
        lg->c.received++;
        int64_t latency_ns = now - sched_ns(lg, (uint64_t)n);
        histogram_record(&lg->latency, latency_ns > 0 ? (uint64_t)latency_ns : 0);
        lg->last_result_ns = now;
        cJSON *root = cJSON_ParseWithLength(payload, plen);
        status s = parse_status(root);
        lg->c.status[s]++;
        count_imps(lg, root, s);
        if (s == ST_SUCCESS && lg->opt.events) send_events(lg, (uint64_t)n, root);
        cJSON_Delete(root);
        return;
    }
    case REQ_LOST:
        *st = REQ_LATE;
        lg->c.late++;
        return;
    case REQ_RECEIVED:
    case REQ_LATE:
        lg->c.duplicated++;
        return;
    }
}

/* ---- The schedule ------------------------------------------------------------------ */

static void finish(loadgen *lg) {
    event_base_loopbreak(lg->base);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    loadgen *lg = arg;
    int64_t now = now_ns();
    int behind = send_due(lg, now);
    expire_due(lg, now);
    if (lg->next == lg->total && lg->cursor == lg->total) {
        if (events_drained(lg, now)) {
            finish(lg);
            return;
        }
        behind = 0; /* draining: look again in TICK_MAX_US */
    }
    /* Wake at the next request's time (a 1 ms tick alone would add up to 1 ms
     * of our own delay to every latency), but at least every TICK_MAX_US for
     * the expiry cursor and at most every TICK_MIN_US at high rates. */
    int64_t wait_us = TICK_MAX_US;
    if (behind) {
        wait_us = 0; /* after the sockets had their turn */
    } else if (lg->next < lg->total) {
        int64_t due_us = (sched_ns(lg, lg->next) - now_ns() + 999) / 1000;
        wait_us = due_us < TICK_MIN_US ? TICK_MIN_US : due_us < wait_us ? due_us : wait_us;
    }
    struct timeval tv = {0, (suseconds_t)wait_us};
    evtimer_add(lg->tick, &tv);
}

static void print_progress(loadgen *lg, int64_t now) {
    double elapsed_s = (double)(now - lg->start_ns) / 1e9;
    double dt_s = (double)(now - lg->progress_ns) / 1e9;
    double rate = dt_s > 0 ? (double)(lg->c.received - lg->progress_received) / dt_s : 0;
    uint64_t inflight = lg->c.sent - lg->c.received - lg->c.lost;
    fprintf(stderr,
            "[%7.1fs] sent %" PRIu64 "  recv %" PRIu64 "  lost %" PRIu64 "  inflight %" PRIu64
            "  rate %.0f/s  p99 %.3f ms\n",
            elapsed_s, lg->c.sent, lg->c.received, lg->c.lost, inflight, rate,
            (double)histogram_percentile(&lg->latency, 99) / 1e6);
    lg->progress_ns = now;
    lg->progress_received = lg->c.received;
}

static void on_progress(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    print_progress(arg, now_ns());
}

/* Called whenever a connection becomes ready: runs the schedule once the
 * subscription is confirmed and every MQTT connection has its CONNACK. */
static void maybe_start(loadgen *lg) {
    if (lg->started || !lg->subscribed || lg->exit_code != 0) return;
    for (int64_t k = 0; k < lg->opt.connections; k++)
        if (!mosq_ev_connected(lg->conns[k].ev)) return;
    lg->started = 1;
    lg->start_ns = now_ns();
    lg->start_wall_s = wall_s();
    lg->progress_ns = lg->start_ns;
    evtimer_del(lg->start_timeout);
    if (lg->progress) {
        fprintf(stderr,
                "rtb-loadgen: run %s: %" PRIu64 " requests at %g/s on %" PRId64
                " connection(s), QoS %" PRId64 "\n",
                lg->opt.id_prefix, lg->total, lg->opt.rate, lg->opt.connections, lg->opt.qos);
        struct timeval second = {1, 0};
        event_add(lg->progress, &second);
    }
    on_tick(-1, 0, lg); /* request 0 is due now */
}

static void on_start_timeout(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    loadgen *lg = arg;
    const char *who = !lg->subscribed ? "Redis (no PSUBSCRIBE confirmation)" : "the MQTT broker";
    for (int64_t k = 0; lg->subscribed && k < lg->opt.connections; k++)
        if (!mosq_ev_connected(lg->conns[k].ev)) who = "the MQTT broker (no CONNACK)";
    start_failed(lg, "cannot start: %s did not answer within %d ms", who, START_TIMEOUT_MS);
}

/* First signal: send no more, wait for the results in flight. Second: stop now. */
static void on_signal(evutil_socket_t sig, short what, void *arg) {
    (void)what;
    loadgen *lg = arg;
    if (!lg->started) {
        start_failed(lg, "interrupted (signal %d) before the start", (int)sig);
        return;
    }
    if (!lg->stopping) {
        lg->stopping = 1;
        lg->total = lg->next;
        warn(lg, "stopping: no more requests; waiting for the %" PRIu64 " in flight",
             lg->c.sent - lg->c.received - lg->c.lost);
        return;
    }
    for (; lg->cursor < lg->next; lg->cursor++) {
        if (lg->state[lg->cursor] == REQ_SENT) {
            lg->state[lg->cursor] = REQ_LOST;
            lg->c.lost++;
        }
    }
    finish(lg);
}

/* ---- MQTT: libmosquitto on the libevent loop (glue/mosq_ev.h) ------------------------- */

static const char *mosq_error(int rc) {
    return rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
}

/* The adapter's on_down: before the start the run cannot go on; after it the
 * adapter reconnects and the requests meanwhile wait in libmosquitto (QoS 1)
 * or are lost. */
static void on_mqtt_down(void *arg, int rc, int was_connected) {
    mqtt_conn *c = arg;
    loadgen *lg = c->lg;
    if (!lg->started) {
        start_failed(lg, "cannot reach the MQTT broker %s:%d: %s", lg->opt.mqtt.host,
                     lg->opt.mqtt.port, mosq_error(rc));
        return;
    }
    if (was_connected)
        warn(lg, "MQTT connection %d lost: %s; reconnecting", c->index, mosq_error(rc));
}

static void on_connack(struct mosquitto *mosq, void *obj, int rc) {
    (void)mosq;
    mqtt_conn *c = obj;
    if (rc != 0) {
        if (!c->lg->started)
            start_failed(c->lg, "the MQTT broker %s:%d refused the connection: %s",
                         c->lg->opt.mqtt.host, c->lg->opt.mqtt.port, mosquitto_connack_string(rc));
        else
            warn(c->lg, "MQTT connection %d refused: %s", c->index, mosquitto_connack_string(rc));
        return;
    }
    mosq_ev_connack(c->ev);
    maybe_start(c->lg);
}

static int conn_open(loadgen *lg, mqtt_conn *c, int index) {
    char client_id[MAX_PREFIX + 32];
    c->lg = lg;
    c->index = index;
    snprintf(c->topic, sizeof c->topic, "%s/%d", lg->opt.topic, index);
    snprintf(client_id, sizeof client_id, "rtb-loadgen-%s-%d", lg->opt.id_prefix, index);
    c->mosq = mosquitto_new(client_id, true, c);
    if (c->mosq)
        c->ev = mosq_ev_new(lg->base, c->mosq, RETRY_MIN_US, RETRY_MAX_US, on_mqtt_down, c);
    if (!c->mosq || !c->ev) {
        start_failed(lg, "cannot create MQTT client %d (out of memory)", index);
        return -1;
    }
    /* Unlimited QoS 1 messages in flight: with a window libmosquitto would queue
     * requests locally and the schedule would slip unseen. */
    mosquitto_max_inflight_messages_set(c->mosq, 0);
    mosquitto_connect_callback_set(c->mosq, on_connack);
    mosquitto_publish_callback_set(c->mosq, on_publish);
    int rc = mosq_ev_connect(c->ev, lg->opt.mqtt.host, lg->opt.mqtt.port, KEEPALIVE_S);
    if (rc != MOSQ_ERR_SUCCESS) {
        start_failed(lg, "cannot reach the MQTT broker %s:%d: %s", lg->opt.mqtt.host,
                     lg->opt.mqtt.port, mosq_error(rc));
        return -1;
    }
    return 0;
}

static void conn_close(mqtt_conn *c) {
    mosq_ev_free(c->ev); /* sends DISCONNECT when connected */
    if (c->mosq) mosquitto_destroy(c->mosq);
}

/* ---- Redis: one async subscriber (hiredis on libevent) ----------------------------------- */

static void redis_connect(loadgen *lg);

static void redis_schedule_retry(loadgen *lg) {
    int64_t now_us = now_ns() / 1000;
    int64_t wait_us = backoff_fail(&lg->redis_backoff, now_us, 0) - now_us;
    struct timeval tv = {(time_t)(wait_us / 1000000), (suseconds_t)(wait_us % 1000000)};
    evtimer_add(lg->redis_retry, &tv);
}

static void on_redis_retry(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    redis_connect(arg);
}

static void redis_failed(loadgen *lg, const char *why) {
    if (!lg->started) {
        start_failed(lg, "cannot reach Redis %s:%d: %s", lg->opt.redis.host, lg->opt.redis.port,
                     why);
        return;
    }
    warn(lg, "Redis %s:%d: %s; resubscribing (results meanwhile count as lost)", lg->opt.redis.host,
         lg->opt.redis.port, why);
    redis_schedule_retry(lg);
}

static void on_redis_connect(const redisAsyncContext *ac, int status) {
    loadgen *lg = ac->data;
    if (status == REDIS_OK) return;
    lg->ac = NULL; /* hiredis frees the context after this callback */
    redis_failed(lg, ac->errstr[0] ? ac->errstr : "connect failed");
}

static void on_redis_disconnect(const redisAsyncContext *ac, int status) {
    loadgen *lg = ac->data;
    lg->ac = NULL;
    lg->subscribed = 0;
    if (lg->freeing) return;
    redis_failed(lg, status == REDIS_OK ? "connection closed" : ac->errstr);
}

/* Runs for the PSUBSCRIBE confirmation and for every pmessage; NULL on teardown. */
static void on_redis_message(redisAsyncContext *ac, void *r, void *privdata) {
    (void)ac;
    loadgen *lg = privdata;
    redisReply *reply = r;
    if (!reply || lg->freeing || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    redisReply *kind = reply->element[0];
    if (kind->type != REDIS_REPLY_STRING) return;
    if (strcmp(kind->str, "psubscribe") == 0) {
        lg->subscribed = 1;
        backoff_reset(&lg->redis_backoff);
        maybe_start(lg);
        return;
    }
    if (strcmp(kind->str, "pmessage") != 0 || reply->elements != 4) return;
    redisReply *channel = reply->element[2], *payload = reply->element[3];
    if (channel->type == REDIS_REPLY_STRING && payload->type == REDIS_REPLY_STRING)
        on_result(lg, channel->str, channel->len, payload->str, payload->len);
}

static void redis_connect(loadgen *lg) {
    redisAsyncContext *ac = redisAsyncConnect(lg->opt.redis.host, lg->opt.redis.port);
    if (!ac || ac->err) {
        char why[256];
        snprintf(why, sizeof why, "%s", ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        redis_failed(lg, why);
        return;
    }
    ac->data = lg;
    lg->ac = ac;
    redisLibeventAttach(ac, lg->base);
    redisAsyncSetConnectCallback(ac, on_redis_connect);
    redisAsyncSetDisconnectCallback(ac, on_redis_disconnect);
    if (redisAsyncCommand(ac, on_redis_message, lg, "PSUBSCRIBE %s", RESULTS_PATTERN) != REDIS_OK)
        redis_failed(lg, "cannot send PSUBSCRIBE");
}

/* ---- The report ---------------------------------------------------------------------------- */

static double duration_s(const loadgen *lg) {
    int64_t end = lg->last_result_ns > lg->last_send_ns ? lg->last_result_ns : lg->last_send_ns;
    return end > lg->start_ns ? (double)(end - lg->start_ns) / 1e9 : 0;
}

static double throughput(const loadgen *lg) {
    double d = duration_s(lg);
    return d > 0 ? (double)lg->c.received / d : 0;
}

static double ms_of(uint64_t ns) {
    return round((double)ns / 1e3) / 1e3; /* ms with microsecond precision */
}

static const double pcts[] = {50, 90, 99, 99.9};
static const char *const pct_keys[] = {"p50", "p90", "p99", "p99_9"};
static const char *const pct_labels[] = {"p50", "p90", "p99", "p99.9"};
#define NPCTS (sizeof pcts / sizeof pcts[0])

static void print_json(const loadgen *lg) {
    cJSON *root = cJSON_CreateObject(), *st = cJSON_CreateObject(), *lat = cJSON_CreateObject();
    cJSON *ev = cJSON_CreateObject();
    if (!root || !st || !lat || !ev) {
        cJSON_Delete(root);
        cJSON_Delete(st);
        cJSON_Delete(lat);
        cJSON_Delete(ev);
        fprintf(stderr, "rtb-loadgen: out of memory\n");
        return;
    }
    cJSON_AddStringToObject(root, "id_prefix", lg->opt.id_prefix);
    cJSON_AddNumberToObject(root, "sent", (double)lg->c.sent);
    cJSON_AddNumberToObject(root, "received", (double)lg->c.received);
    cJSON_AddNumberToObject(root, "lost", (double)lg->c.lost);
    cJSON_AddNumberToObject(root, "duplicated", (double)lg->c.duplicated);
    cJSON_AddNumberToObject(root, "late", (double)lg->c.late);
    cJSON_AddNumberToObject(root, "unexpected", (double)lg->c.unexpected);
    cJSON_AddNumberToObject(root, "publish_errors", (double)lg->c.publish_errors);
    for (int k = 0; k < NSTATUS; k++)
        cJSON_AddNumberToObject(st, status_names[k], (double)lg->c.status[k]);
    cJSON_AddItemToObject(root, "statuses", st);
    cJSON_AddNumberToObject(root, "imps_per_request", (double)lg->opt.imps);
    cJSON_AddNumberToObject(root, "imps_received", (double)lg->c.imps_received);
    cJSON_AddNumberToObject(root, "imps_won", (double)lg->c.imps_won);
    cJSON_AddNumberToObject(root, "deals_won", (double)lg->c.deals_won);
    cJSON_AddNumberToObject(root, "imps_missing", (double)lg->c.imps_missing);
    cJSON_AddNumberToObject(root, "duration_s", round(duration_s(lg) * 1e3) / 1e3);
    cJSON_AddNumberToObject(root, "offered_rate", lg->opt.rate);
    cJSON_AddNumberToObject(root, "send_lag_ms", ms_of((uint64_t)lg->max_send_lag_ns));
    cJSON_AddNumberToObject(root, "throughput", round(throughput(lg) * 10) / 10);
    for (size_t k = 0; k < NPCTS; k++) {
        if (lg->latency.total == 0)
            cJSON_AddNullToObject(lat, pct_keys[k]);
        else
            cJSON_AddNumberToObject(lat, pct_keys[k],
                                    ms_of(histogram_percentile(&lg->latency, pcts[k])));
    }
    if (lg->latency.total == 0)
        cJSON_AddNullToObject(lat, "max");
    else
        cJSON_AddNumberToObject(lat, "max", ms_of(lg->latency.max_ns));
    cJSON_AddItemToObject(root, "latency_ms", lat);
    cJSON_AddNumberToObject(ev, "impressions", (double)lg->c.impressions);
    cJSON_AddNumberToObject(ev, "clicks", (double)lg->c.clicks);
    cJSON_AddNumberToObject(ev, "duplicate_clicks", (double)lg->c.duplicate_clicks);
    cJSON_AddNumberToObject(ev, "conversions", (double)lg->c.conversions);
    cJSON_AddNumberToObject(ev, "publish_errors", (double)lg->c.event_errors);
    cJSON_AddItemToObject(root, "events", ev);
    char *text = cJSON_PrintUnformatted(root);
    if (text) printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(root);
}

static void print_human(const loadgen *lg) {
    const counts *c = &lg->c;
    printf("run %s: %" PRIu64 " requests at %g/s, %" PRId64 " connection(s), QoS %" PRId64 "\n",
           lg->opt.id_prefix, lg->total, lg->opt.rate, lg->opt.connections, lg->opt.qos);
    printf("  sent        %" PRIu64 "\n  received    %" PRIu64 "\n  lost        %" PRIu64
           "\n  duplicated  %" PRIu64 "\n",
           c->sent, c->received, c->lost, c->duplicated);
    if (c->late || c->unexpected || c->publish_errors)
        printf("  late %" PRIu64 ", unexpected %" PRIu64 ", publish errors %" PRIu64 "\n", c->late,
               c->unexpected, c->publish_errors);
    printf("  statuses   ");
    for (int k = 0; k < NSTATUS; k++)
        if (k < ST_OTHER || c->status[k])
            printf(" %s %" PRIu64 "%s", status_names[k], c->status[k], k + 1 < ST_OTHER ? "," : "");
    if (lg->opt.imps > 0) {
        printf("\n  imps        %" PRId64 " per request; in results %" PRIu64 ", won %" PRIu64
               " (%" PRIu64 " through a deal)",
               lg->opt.imps, c->imps_received, c->imps_won, c->deals_won);
        if (c->imps_missing)
            printf("; %" PRIu64 " results WITHOUT imps (SPEC 17 wants them)", c->imps_missing);
    }
    printf("\n  duration    %.3f s\n  throughput  %.1f results/s (offered %g/s)\n", duration_s(lg),
           throughput(lg), lg->opt.rate);
    printf("  send lag    %.3f ms at most behind the schedule\n",
           (double)lg->max_send_lag_ns / 1e6);
    printf("  latency ms ");
    for (size_t k = 0; k < NPCTS; k++)
        printf(" %s %.3f", pct_labels[k],
               (double)histogram_percentile(&lg->latency, pcts[k]) / 1e6);
    printf("  max %.3f\n", (double)lg->latency.max_ns / 1e6);
    if (lg->opt.events) {
        printf("  events      impressions %" PRIu64 ", clicks %" PRIu64 " (+%" PRIu64
               " duplicate), conversions %" PRIu64 "\n",
               c->impressions, c->clicks, c->duplicate_clicks, c->conversions);
        if (c->event_errors) printf("  event publish errors %" PRIu64 "\n", c->event_errors);
    }
}

/* ---- Life ------------------------------------------------------------------------------------ */

static int make_events(loadgen *lg) {
    struct event_config *cfg = event_config_new();
    if (cfg) event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER); /* the 1 ms tick */
    lg->base = cfg ? event_base_new_with_config(cfg) : NULL;
    if (cfg) event_config_free(cfg);
    if (!lg->base) return -1;
    lg->tick = evtimer_new(lg->base, on_tick, lg);
    lg->start_timeout = evtimer_new(lg->base, on_start_timeout, lg);
    lg->redis_retry = evtimer_new(lg->base, on_redis_retry, lg);
    lg->sigint = evsignal_new(lg->base, SIGINT, on_signal, lg);
    lg->sigterm = evsignal_new(lg->base, SIGTERM, on_signal, lg);
    if (!lg->opt.quiet && isatty(STDERR_FILENO))
        lg->progress = event_new(lg->base, -1, EV_PERSIST, on_progress, lg);
    if (!lg->tick || !lg->start_timeout || !lg->redis_retry || !lg->sigint || !lg->sigterm ||
        evsignal_add(lg->sigint, NULL) != 0 || evsignal_add(lg->sigterm, NULL) != 0)
        return -1;
    struct timeval start = {START_TIMEOUT_MS / 1000, (START_TIMEOUT_MS % 1000) * 1000};
    evtimer_add(lg->start_timeout, &start);
    return 0;
}

static void loadgen_free(loadgen *lg) {
    lg->freeing = 1;
    for (int64_t k = 0; lg->conns && k < lg->opt.connections; k++)
        conn_close(&lg->conns[k]);
    free(lg->conns);
    if (lg->ac) redisAsyncFree(lg->ac); /* runs on_redis_disconnect, which sets lg->ac NULL */
    struct event *evs[] = {lg->tick,        lg->progress, lg->start_timeout,
                           lg->redis_retry, lg->sigint,   lg->sigterm};
    for (size_t k = 0; k < sizeof evs / sizeof evs[0]; k++)
        if (evs[k]) event_free(evs[k]);
    if (lg->base) event_base_free(lg->base);
    free(lg->state);
}

/* Runs the whole load; returns the exit status. */
static int run(loadgen *lg) {
    const options *o = &lg->opt;
    lg->total = o->count > 0 ? (uint64_t)o->count : (uint64_t)llround(o->rate * o->duration_s);
    if (lg->total == 0) lg->total = 1;
    lg->state = calloc(lg->total, 1);
    lg->conns = calloc((size_t)o->connections, sizeof *lg->conns);
    if (!lg->state || !lg->conns || make_events(lg) != 0) {
        fprintf(stderr, "rtb-loadgen: out of memory\n");
        return 2;
    }
    histogram_init(&lg->latency);
    lg->user_seed = rng_next(&lg->rng);
    lg->event_rng = rng_next(&lg->rng) | 1; /* xorshift: never 0 */
    backoff_init(&lg->redis_backoff, RETRY_MIN_US, RETRY_MAX_US, 0);
    redis_connect(lg);
    for (int k = 0; k < o->connections && lg->exit_code == 0; k++)
        conn_open(lg, &lg->conns[k], k);
    if (lg->exit_code == 0) event_base_dispatch(lg->base);
    if (lg->exit_code != 0) return lg->exit_code;
    if (lg->progress) print_progress(lg, now_ns());
    if (o->json)
        print_json(lg);
    else if (!o->quiet)
        print_human(lg);
    fflush(stdout);
    return lg->c.lost > 0 || lg->c.duplicated > 0 ? 1 : 0;
}

static uint64_t seed_from_clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
    seed ^= (uint64_t)getpid() << 32;
    return seed ? seed : 1;
}

int main(int argc, char **argv) {
    loadgen lg = {.rng = seed_from_clock()};
    int rc = parse_args(&lg.opt, argc, argv);
    if (rc != 0) return rc == 1 ? 0 : rc;
    if (lg.opt.id_prefix[0] == '\0')
        snprintf(lg.opt.id_prefix, sizeof lg.opt.id_prefix, "lg-%08" PRIx32,
                 (uint32_t)(rng_next(&lg.rng) >> 32));
    signal(SIGPIPE, SIG_IGN); /* a broken socket is an error return */
    mosquitto_lib_init();
    rc = run(&lg);
    loadgen_free(&lg);
    mosquitto_lib_cleanup();
    return rc;
}

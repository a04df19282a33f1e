/* rtb-bidder.c -- a test bidder: OpenRTB 2.6 over HTTP, several advertisers per process.
 *
 * Each advertiser (--advertiser SPEC) gets an evhttp server on a port of its
 * own; all of them run on one libevent loop, no threads. POST (any path,
 * /bid by convention) takes a BidRequest (SPEC 5, 17) and answers a bid per
 * imp (with a deal id where the imp offers the advertiser's deal), a
 * no-bid, an error or one of the fault modes; GET /win, /loss and /bill take
 * notices (SPEC 9, 14), which can be made to fail or lag on purpose so that
 * the exchange's retries show; GET /last and /stats are there for tests. See
 * docs/rtb-bidder.md.
 *
 * The one idea: an answer is decided when the request arrives and parked as a
 * `pending` on its advertiser's list, to be sent by a libevent timer after
 * latency + jitter ms for a bid, notice_delay ms for a notice (hang mode:
 * never; a notice without delay is answered at once). With trickle=MS the
 * timer fires again every MS ms and each time one more byte of the body
 * goes out. A pending leaves the
 * list exactly once: its timer fires (answer sent), its client goes away
 * (answer dropped), or shutdown. evhttp does not read a connection while a reply on it is due,
 * so each pending watches its client's socket itself; and the connection's
 * close callback walks the list too. Either way the pending, its timer and
 * its watch go before the request does, so no timer fires on a freed request.
 *
 * All state lives in one `bidder` context; money is integer micros. */
#include <arpa/inet.h>
#include <cJSON.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auction/auction.h"

#ifndef RTB_VERSION
#define RTB_VERSION "dev"
#endif

#define MICROS_PER_UNIT INT64_C(1000000)
#define MS_MAX INT64_C(3600000)           /* one hour */
#define HUGE_BODY_BYTES ((size_t)1 << 20) /* mode=huge: 1 MiB */
#define MAX_BODY_BYTES ((size_t)1 << 20)  /* request bodies */
#define NOTICES_KEPT 100
#define COUNT_MAX INT64_C(1000000000)
#define BYTES_MAX INT64_C(1048576) /* header_pad, adid_bytes: 1 MiB */
#define PAD_LINE_BYTES 1000        /* header_pad: one "X-Pad-NNN: xxx\r\n" line */
#define PAD_LINE_FIXED 13          /* its name, ": " and CRLF */
#define IMPS_MAX 64                /* imps read from one BidRequest (the exchange sends 16) */
#define CUR_MAX 16                 /* cur=: bytes */

typedef enum price_rule { PRICE_SEED, PRICE_FIXED, PRICE_UNIFORM } price_rule;

typedef enum bid_mode {
    MODE_NORMAL,
    MODE_HTTP500,
    MODE_BAD_JSON,
    MODE_WRONG_ID,
    MODE_BAD_PRICE,
    MODE_HUGE,
    MODE_HANG,
    MODE_EMPTY200,
} bid_mode;

static const char *const mode_names[] = {"normal",    "http500", "bad_json", "wrong_id",
                                         "bad_price", "huge",    "hang",     "empty200"};

/* Which counter an answer bumps when it is actually sent. */
typedef enum outcome {
    OUT_BID,
    OUT_NOBID,
    OUT_ERROR,
    OUT_NONE,
    OUT_WIN,
    OUT_LOSS,
    OUT_BILL,
    OUT_NOTICE_FAILED,
} outcome;

typedef struct counters {
    uint64_t requests;       /* POSTs received */
    uint64_t bids;           /* 200 answers with a body sent */
    uint64_t nobids;         /* 204 (or empty 200) sent */
    uint64_t errors;         /* 500 sent */
    uint64_t bad_requests;   /* 400 sent */
    uint64_t dropped;        /* answers abandoned: client gone, or shutdown */
    uint64_t wins;           /* GET /win answered as a success */
    uint64_t losses;         /* GET /loss answered as a success */
    uint64_t bills;          /* GET /bill answered as a success */
    uint64_t notices_failed; /* notices answered notice_status on purpose */
} counters;

struct advertiser;

/* A decided answer waiting for its timer. Owned by adv->pending. */
typedef struct pending {
    struct advertiser *adv;
    struct evhttp_request *req;      /* libevent's; ours only once detached */
    struct evhttp_connection *evcon; /* the connection it came on */
    struct event *timer;             /* NULL in hang mode */
    struct event *watch;             /* reads the socket to see the client leave */
    int status;
    char *body; /* NULL: no body */
    size_t body_len;
    size_t sent; /* trickle: body bytes out so far */
    int started; /* trickle: status line and headers out */
    outcome out;
    struct pending *prev, *next;
} pending;

typedef struct advertiser {
    struct bidder *ctx;
    /* from the SPEC */
    char *id;
    int port; /* 0 until bound when asked for 0 */
    int64_t latency_ms;
    int64_t jitter_ms;
    double nobid_rate;
    double error_rate;
    price_rule price;
    int64_t price_a_micros; /* fixed:X, or uniform:A-B low end */
    int64_t price_b_micros; /* uniform:A-B high end */
    bid_mode mode;
    int notices;               /* bids carry nurl / lurl */
    int burl;                  /* bids carry burl */
    int64_t notice_fail;       /* the first this many notices fail */
    int notice_status;         /* the HTTP status they get */
    int64_t notice_delay_ms;   /* every notice is answered this late */
    int64_t header_pad;        /* bid answers carry this many bytes of X-Pad headers */
    int64_t trickle_ms;        /* bid answer bodies go out a byte every this many ms */
    int64_t adid_bytes;        /* the bid's adid is exactly this long; 0: natural */
    char *deal;                /* deal id this advertiser holds (SPEC 17); NULL: none */
    int64_t deal_price_micros; /* price of deal bids; -1: the price rule */
    char *cur;                 /* the BidResponse's cur; NULL: "USD" */
    int first_imp_only;        /* imps=first: bid on the first imp alone */
    char *creative;            /* URL; "{id}" stands for the advertiser id */
    char *nurl_base;           /* NULL: http://HOST:PORT */
    int seen;                  /* bit per spec_keys row: given already */
    /* set once bound */
    char *crid;
    char *nurl;     /* win notice URL, with OpenRTB macros */
    char *lurl;     /* loss notice URL */
    char *burl_url; /* billing notice URL */
    /* running state */
    struct evhttp *http;
    counters n;
    uint64_t bid_seq;
    cJSON *last; /* the /last document, or NULL */
    char *notice_uris[NOTICES_KEPT];
    size_t notice_next;
    uint64_t notices_seen; /* notices arrived so far, of any kind */
    pending *pending;
    size_t npending;
} advertiser;

typedef struct bidder {
    struct event_base *base;
    const char *host;
    uint64_t rng;
    advertiser *advs;
    size_t nadvs;
    struct event *sigint;
    struct event *sigterm;
} bidder;

/* One imp of a BidRequest as this bidder reads it. Strings are borrowed
 * from the parsed request. */
typedef struct bid_imp {
    const char *id;
    int64_t floor_micros;
    int has_deal;              /* its pmp.deals lists the advertiser's deal */
    int64_t deal_floor_micros; /* that deal's bidfloor (absent: the imp's floor) */
} bid_imp;

/* The fields of a BidRequest this bidder reads. Strings are borrowed from
 * the parsed request. */
typedef struct bid_request {
    const char *id;
    bid_imp imps[IMPS_MAX]; /* nimps >= 1: no `imp` at all reads as imp "1", floor 0 */
    size_t nimps;
    int64_t ltv_micros; /* 0..1e6 */
} bid_request;

/* ---- Random numbers: splitmix64, state in the context ------------------- */

static uint64_t rng_next(uint64_t *state) {
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_unit(uint64_t *state) {
    return (double)(rng_next(state) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n]. */
static uint64_t rng_upto(uint64_t *state, uint64_t n) {
    return n == UINT64_MAX ? rng_next(state) : rng_next(state) % (n + 1);
}

/* ---- Money: the price rules (decimal <-> micros: auction/auction.h) ----- */

/* The seed rule (SPEC 8): floor x 1.2 x (1 + ltv), rounded half up to a micro,
 * with one rounding. A floor of 0 bids 0.01 x (1 + ltv) instead. The product
 * floor*12*(1e6+ltv) can pass 2^63, so it is split around 1e7. */
static int64_t price_seed(int64_t floor_micros, int64_t ltv_micros) {
    int64_t g = MICROS_PER_UNIT + ltv_micros;
    if (floor_micros == 0) return (10000 * g + MICROS_PER_UNIT / 2) / MICROS_PER_UNIT;
    int64_t f = floor_micros * 12;
    int64_t fh = f / 10000000, fl = f % 10000000;
    int64_t price = fh * g + (fl * g + 5000000) / 10000000;
    return price > AUCTION_PRICE_MAX_MICROS ? AUCTION_PRICE_MAX_MICROS : price;
}

/* The price of a bid on `imp`: deal_price for a deal bid when set, else
 * the price rule, whose seed takes the floor the bid faces (the deal's on
 * a deal bid). */
static int64_t adv_price(advertiser *adv, const bid_request *br, const bid_imp *imp) {
    if (imp->has_deal && adv->deal_price_micros >= 0) return adv->deal_price_micros;
    switch (adv->price) {
    case PRICE_FIXED:
        return adv->price_a_micros;
    case PRICE_UNIFORM:
        return adv->price_a_micros +
               (int64_t)rng_upto(&adv->ctx->rng,
                                 (uint64_t)(adv->price_b_micros - adv->price_a_micros));
    case PRICE_SEED:
    default:
        return price_seed(imp->has_deal ? imp->deal_floor_micros : imp->floor_micros,
                          br->ltv_micros);
    }
}

/* ---- Command line: an advertiser SPEC is walked against a table of keys -- */

typedef enum key_type {
    KEY_STR,
    KEY_URL,
    KEY_PORT,
    KEY_MS,
    KEY_RATE,
    KEY_PRICE,
    KEY_MODE,
    KEY_ONOFF,
    KEY_COUNT,  /* int64_t, 0..COUNT_MAX */
    KEY_STATUS, /* int, an HTTP status 200..599 */
    KEY_BYTES,  /* int64_t, 0..BYTES_MAX */
    KEY_MONEY,  /* int64_t micros, a decimal as in fixed:X */
    KEY_CUR,    /* a string of 1..CUR_MAX bytes */
    KEY_IMPS    /* all | first */
} key_type;

typedef struct spec_key {
    const char *name;
    key_type type;
    size_t offset;
    const char *help;
} spec_key;

static const spec_key spec_keys[] = {
    {"id", KEY_STR, offsetof(advertiser, id), "advertiser id, also the seat (required)"},
    {"port", KEY_PORT, offsetof(advertiser, port), "TCP port; 0 picks a free one (default 0)"},
    {"latency", KEY_MS, offsetof(advertiser, latency_ms),
     "fixed delay of every bid answer, ms (0)"},
    {"jitter", KEY_MS, offsetof(advertiser, jitter_ms), "uniform 0..MS added to it, ms (0)"},
    {"nobid", KEY_RATE, offsetof(advertiser, nobid_rate), "share of 204 no-bids, 0..1 (0)"},
    {"error", KEY_RATE, offsetof(advertiser, error_rate), "share of HTTP 500s, 0..1 (0)"},
    {"price", KEY_PRICE, 0, "seed | fixed:X | uniform:A-B (seed)"},
    {"mode", KEY_MODE, offsetof(advertiser, mode),
     "normal|http500|bad_json|wrong_id|bad_price|huge|hang|empty200 (normal)"},
    {"creative", KEY_URL, offsetof(advertiser, creative),
     "iurl; {id} is the advertiser id (https://cdn.example/{id}.jpg)"},
    {"nurl", KEY_URL, offsetof(advertiser, nurl_base),
     "base URL of win/loss/bill notices, http:// (http://HOST:PORT)"},
    {"notices", KEY_ONOFF, offsetof(advertiser, notices),
     "on | off: bids carry nurl and lurl, so the exchange sends notices (on)"},
    {"burl", KEY_ONOFF, offsetof(advertiser, burl),
     "on | off: bids carry burl (billing); independent of notices= (off)"},
    {"notice_fail", KEY_COUNT, offsetof(advertiser, notice_fail),
     "the first N notices (win, loss, bill) fail with notice_status (0)"},
    {"notice_status", KEY_STATUS, offsetof(advertiser, notice_status),
     "HTTP status of a failed notice, 200..599 (503)"},
    {"notice_delay", KEY_MS, offsetof(advertiser, notice_delay_ms),
     "delay of every notice answer, ms (0)"},
    {"header_pad", KEY_BYTES, offsetof(advertiser, header_pad),
     "bid answers carry about N bytes of extra X-Pad-K headers (0)"},
    {"trickle", KEY_MS, offsetof(advertiser, trickle_ms),
     "bid answer bodies are sent one byte every MS ms (0: at once)"},
    {"adid_bytes", KEY_BYTES, offsetof(advertiser, adid_bytes),
     "the bid's adid is exactly N bytes, padded with x (0: ad_{id}_{request})"},
    {"deal", KEY_STR, offsetof(advertiser, deal),
     "deal id held: bids on imps whose pmp lists it carry dealid (none)"},
    {"deal_price", KEY_MONEY, offsetof(advertiser, deal_price_micros),
     "price of deal bids, a decimal (the price rule)"},
    {"cur", KEY_CUR, offsetof(advertiser, cur), "the BidResponse cur; prices are in it (USD)"},
    {"imps", KEY_IMPS, offsetof(advertiser, first_imp_only),
     "all | first: bid on every imp, or on the first alone (all)"},
};
#define NKEYS (sizeof spec_keys / sizeof spec_keys[0])

static void usage(FILE *f) {
    fprintf(f, "usage: rtb-bidder [--host ADDR] [--seed N] --advertiser SPEC "
               "[--advertiser SPEC ...]\n"
               "                  [--help] [--version]\n\n"
               "  --host ADDR        address to listen on (127.0.0.1)\n"
               "  --seed N           seed of the random numbers (default: from the clock)\n"
               "  --advertiser SPEC  one advertiser, comma-separated key=value:\n");
    for (size_t i = 0; i < NKEYS; i++)
        fprintf(f, "      %-13s %s\n", spec_keys[i].name, spec_keys[i].help);
    fprintf(f, "\nPOST /bid answers an OpenRTB 2.6 BidRequest; GET /win, /loss, /bill take\n"
               "notices; GET /last, /stats show what came in.\n"
               "Prints 'listening ID HOST:PORT' per advertiser once all are bound.\n"
               "Exit: 0 on SIGINT/SIGTERM, 1 runtime failure, 2 bad command line.\n");
}

static int parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_rate(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= 0 && v <= 1)) return -1;
    *out = v;
    return 0;
}

static int parse_price(advertiser *adv, const char *v) {
    if (strcmp(v, "seed") == 0) {
        adv->price = PRICE_SEED;
        return 0;
    }
    if (strncmp(v, "fixed:", 6) == 0) {
        adv->price = PRICE_FIXED;
        return auction_micros_parse(v + 6, strlen(v + 6), &adv->price_a_micros);
    }
    if (strncmp(v, "uniform:", 8) != 0) return -1;
    const char *lo = v + 8, *dash = strchr(lo, '-');
    if (dash == NULL) return -1;
    adv->price = PRICE_UNIFORM;
    if (auction_micros_parse(lo, (size_t)(dash - lo), &adv->price_a_micros) != 0 ||
        auction_micros_parse(dash + 1, strlen(dash + 1), &adv->price_b_micros) != 0)
        return -1;
    return adv->price_a_micros <= adv->price_b_micros ? 0 : -1;
}

static int parse_mode(const char *v, bid_mode *out) {
    for (size_t i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++) {
        if (strcmp(v, mode_names[i]) == 0) {
            *out = (bid_mode)i;
            return 0;
        }
    }
    return -1;
}

/* Store one key=value into `adv`. Returns 0, or -1 when the value is bad. */
static int set_key(advertiser *adv, const spec_key *k, const char *v) {
    void *field = (char *)adv + k->offset;
    int64_t n;
    switch (k->type) {
    case KEY_URL:
        if (strcmp(k->name, "nurl") == 0 && strncmp(v, "http://", 7) != 0) return -1;
        /* fall through */
    case KEY_STR:
        return (*(char **)field = strdup(v)) != NULL ? 0 : -1;
    case KEY_PORT:
        if (parse_int(v, 0, 65535, &n) != 0) return -1;
        *(int *)field = (int)n;
        return 0;
    case KEY_MS:
        return parse_int(v, 0, MS_MAX, (int64_t *)field);
    case KEY_RATE:
        return parse_rate(v, (double *)field);
    case KEY_PRICE:
        return parse_price(adv, v);
    case KEY_MODE:
        return parse_mode(v, (bid_mode *)field);
    case KEY_ONOFF:
        if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0) return -1;
        *(int *)field = strcmp(v, "on") == 0;
        return 0;
    case KEY_COUNT:
        return parse_int(v, 0, COUNT_MAX, (int64_t *)field);
    case KEY_STATUS:
        if (parse_int(v, 200, 599, &n) != 0) return -1;
        *(int *)field = (int)n;
        return 0;
    case KEY_BYTES:
        return parse_int(v, 0, BYTES_MAX, (int64_t *)field);
    case KEY_MONEY:
        return auction_micros_parse(v, strlen(v), (int64_t *)field);
    case KEY_CUR:
        if (strlen(v) > CUR_MAX) return -1;
        return (*(char **)field = strdup(v)) != NULL ? 0 : -1;
    case KEY_IMPS:
        if (strcmp(v, "all") != 0 && strcmp(v, "first") != 0) return -1;
        *(int *)field = strcmp(v, "first") == 0;
        return 0;
    }
    return -1;
}

static int spec_item(advertiser *adv, char *item, char *err, size_t errlen) {
    char *eq = strchr(item, '=');
    if (eq == NULL || eq == item || eq[1] == '\0') {
        snprintf(err, errlen, "'%s' is not key=value", item);
        return -1;
    }
    *eq = '\0';
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(item, spec_keys[i].name) != 0) continue;
        if (adv->seen & (1 << i)) {
            snprintf(err, errlen, "key '%s' given twice", item);
            return -1;
        }
        adv->seen |= 1 << i;
        if (set_key(adv, &spec_keys[i], eq + 1) == 0) return 0;
        snprintf(err, errlen, "bad value for '%s': '%s' (%s)", item, eq + 1, spec_keys[i].help);
        return -1;
    }
    snprintf(err, errlen, "unknown key '%s'", item);
    return -1;
}

/* Check one parsed advertiser against itself and the ones before it. */
static int spec_check(const bidder *ctx, const advertiser *adv, char *err, size_t errlen) {
    if (adv->id == NULL || adv->id[0] == '\0') {
        snprintf(err, errlen, "id=... is required");
        return -1;
    }
    if (adv->nobid_rate + adv->error_rate > 1.0) {
        snprintf(err, errlen, "nobid + error must not exceed 1");
        return -1;
    }
    if (adv->deal_price_micros >= 0 && adv->deal == NULL) {
        snprintf(err, errlen, "deal_price needs deal=ID");
        return -1;
    }
    for (const advertiser *o = ctx->advs; o < adv; o++) {
        if (strcmp(o->id, adv->id) == 0) {
            snprintf(err, errlen, "advertiser id '%s' given twice", adv->id);
            return -1;
        }
        if (adv->port != 0 && o->port == adv->port) {
            snprintf(err, errlen, "port %d given twice", adv->port);
            return -1;
        }
    }
    return 0;
}

static int parse_spec(bidder *ctx, const char *spec, char *err, size_t errlen) {
    advertiser *advs = realloc(ctx->advs, (ctx->nadvs + 1) * sizeof *advs);
    char *copy = strdup(spec);
    if (advs != NULL) ctx->advs = advs;
    if (advs == NULL || copy == NULL) {
        free(copy);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    advertiser *adv = &ctx->advs[ctx->nadvs++];
    memset(adv, 0, sizeof *adv);
    adv->ctx = ctx;
    adv->notices = 1; /* the defaults that are not 0 */
    adv->notice_status = 503;
    adv->deal_price_micros = -1;
    int rc = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item && rc == 0;
         item = strtok_r(NULL, ",", &save))
        rc = spec_item(adv, item, err, errlen);
    free(copy);
    return rc == 0 ? spec_check(ctx, adv, err, errlen) : -1;
}

/* Returns 0 to run, 1 to exit 0 (--help, --version), 2 on a bad command line. */
static int parse_args(bidder *ctx, int argc, char **argv) {
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},       {"seed", required_argument, NULL, 's'},
        {"advertiser", required_argument, NULL, 'a'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},          {NULL, 0, NULL, 0},
    };
    char err[256];
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'H':
            ctx->host = optarg;
            break;
        case 's':
            errno = 0;
            ctx->rng = strtoull(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-') {
                fprintf(stderr, "rtb-bidder: --seed: not an unsigned integer: '%s'\n", optarg);
                return 2;
            }
            break;
        case 'a':
            if (parse_spec(ctx, optarg, err, sizeof err) != 0) {
                fprintf(stderr, "rtb-bidder: --advertiser '%s': %s\n", optarg, err);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 1;
        case 'V':
            printf("rtb-bidder %s\n", RTB_VERSION);
            return 1;
        default:
            fprintf(stderr, "rtb-bidder: try --help\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rtb-bidder: unexpected argument '%s'; try --help\n", argv[optind]);
        return 2;
    }
    if (ctx->nadvs == 0) {
        fprintf(stderr, "rtb-bidder: at least one --advertiser SPEC is needed; try --help\n");
        return 2;
    }
    return 0;
}

/* ---- Small string helpers ----------------------------------------------- */

static char *str_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n < 0 ? NULL : malloc((size_t)n + 1);
    if (s == NULL) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* `tmpl` with every "{id}" replaced by `id`. */
static char *expand_id(const char *tmpl, const char *id) {
    size_t n = 0, idlen = strlen(id);
    for (const char *p = strstr(tmpl, "{id}"); p; p = strstr(p + 4, "{id}"))
        n++;
    char *out = malloc(strlen(tmpl) + n * idlen + 1), *o = out;
    if (out == NULL) return NULL;
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "{id}", 4) == 0) {
            memcpy(o, id, idlen);
            o += idlen;
            p += 4;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/* The host as it goes into a URL: a wildcard becomes loopback, IPv6 gets []. */
static char *url_host(const char *host) {
    if (strcmp(host, "0.0.0.0") == 0 || host[0] == '\0') return strdup("127.0.0.1");
    if (strcmp(host, "::") == 0) return strdup("[::1]");
    return strchr(host, ':') ? str_printf("[%s]", host) : strdup(host);
}

/* Append `item` to `array`; on failure (out of memory) free it. */
static void add_item(cJSON *array, cJSON *item) {
    if (!cJSON_AddItemToArray(array, item)) cJSON_Delete(item);
}

/* ---- Replies ------------------------------------------------------------ */

static void send_body(struct evhttp_request *req, int status, const char *body, size_t len) {
    struct evbuffer *buf = NULL;
    if (body != NULL) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        buf = evbuffer_new();
        if (buf != NULL) evbuffer_add(buf, body, len);
    }
    evhttp_send_reply(req, status, NULL, buf);
    if (buf != NULL) evbuffer_free(buf);
}

/* Send `doc` (consumed) as JSON. */
static void send_json(struct evhttp_request *req, int status, cJSON *doc) {
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (text == NULL) {
        send_body(req, 500, "{\"error\":\"out of memory\"}", 25);
        return;
    }
    send_body(req, status, text, strlen(text));
    free(text);
}

static void send_error(struct evhttp_request *req, int status, const char *msg) {
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "error", msg);
    send_json(req, status, doc);
}

/* ---- Reading a BidRequest (SPEC 5) --------------------------------------- */

static int fail(char *err, size_t errlen, const char *msg) {
    snprintf(err, errlen, "%s", msg);
    return -1;
}

/* The floor at `key` of `obj` into *micros (absent: left as it is).
 * Returns 0, or -1 when it is not a number in 0..1e6. */
static int floor_read(const cJSON *obj, const char *key, int64_t *micros) {
    const cJSON *floor = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (floor == NULL) return 0;
    if (!cJSON_IsNumber(floor)) return -1;
    return auction_micros_from_double(floor->valuedouble, micros);
}

/* Read imp `k` of the request into `imp`: its id, its bidfloor, and
 * whether its pmp.deals lists `deal` (NULL: no deal held), with that
 * deal's bidfloor. Returns 0, or -1 with a message naming the field. */
static int imp_read(const cJSON *obj, size_t k, const char *deal, bid_imp *imp, char *err,
                    size_t errlen) {
    imp->id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, "id"));
    if (imp->id == NULL) {
        snprintf(err, errlen, "imp[%zu].id: missing or not a string", k);
        return -1;
    }
    if (floor_read(obj, "bidfloor", &imp->floor_micros) != 0) {
        snprintf(err, errlen, "imp[%zu].bidfloor: not a number in 0..1e6", k);
        return -1;
    }
    const cJSON *deals =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "pmp"), "deals");
    const cJSON *d, *list = cJSON_IsArray(deals) ? deals : NULL;
    size_t j = 0;
    cJSON_ArrayForEach(d, list) {
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "id"));
        if (deal != NULL && id != NULL && strcmp(id, deal) == 0) {
            imp->has_deal = 1;
            imp->deal_floor_micros = imp->floor_micros;
            if (floor_read(d, "bidfloor", &imp->deal_floor_micros) != 0) {
                snprintf(err, errlen, "imp[%zu].pmp.deals[%zu].bidfloor: not a number in 0..1e6", k,
                         j);
                return -1;
            }
            break;
        }
        j++;
    }
    return 0;
}

/* Fill `br` from `json` (borrowed) for an advertiser holding `deal` (NULL:
 * none). Lenient where OpenRTB allows it: no imp (or an empty array) means
 * one imp "1" with floor 0; no user.ext.ltv_score means ltv 0; an ltv
 * outside 0..1 is clamped; deals other than `deal` are not looked at.
 * Returns 0, or -1 with a message in `err`. */
static int bid_request_read(cJSON *json, const char *deal, bid_request *br, char *err,
                            size_t errlen) {
    memset(br, 0, sizeof *br);
    br->imps[0].id = "1";
    br->nimps = 1;
    if (!cJSON_IsObject(json)) return fail(err, errlen, "body is not a JSON object");
    br->id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(json, "id"));
    if (br->id == NULL || br->id[0] == '\0')
        return fail(err, errlen, "id: missing or not a non-empty string");
    cJSON *imps = cJSON_GetObjectItemCaseSensitive(json, "imp");
    if (imps != NULL && !cJSON_IsArray(imps)) return fail(err, errlen, "imp: not an array");
    int n = cJSON_GetArraySize(imps);
    if (n > IMPS_MAX) return fail(err, errlen, "imp: more than 64 imps");
    if (n > 0) br->nimps = (size_t)n;
    size_t k = 0;
    cJSON *imp;
    cJSON_ArrayForEach(imp, imps) {
        if (imp_read(imp, k, deal, &br->imps[k], err, errlen) != 0) return -1;
        k++;
    }
    cJSON *user = cJSON_GetObjectItemCaseSensitive(json, "user");
    cJSON *ext = cJSON_GetObjectItemCaseSensitive(user, "ext");
    cJSON *ltv = cJSON_GetObjectItemCaseSensitive(ext, "ltv_score");
    if (cJSON_IsNumber(ltv) && isfinite(ltv->valuedouble)) {
        double v = ltv->valuedouble < 0 ? 0 : ltv->valuedouble > 1 ? 1 : ltv->valuedouble;
        br->ltv_micros = (int64_t)llround(v * (double)MICROS_PER_UNIT);
    }
    return 0;
}

/* ---- Writing a BidResponse ---------------------------------------------- */

/* Grow a printed response to exactly HUGE_BODY_BYTES with an "ext" padding
 * member: still valid JSON, just too big. Consumes `body`. */
static char *pad_huge(char *body, size_t *len) {
    static const char head[] = ",\"ext\":{\"pad\":\"", tail[] = "\"}}";
    size_t keep = *len - 1; /* all but the closing '}' */
    size_t fixed = keep + strlen(head) + strlen(tail);
    char *out = fixed < HUGE_BODY_BYTES ? malloc(HUGE_BODY_BYTES + 1) : NULL;
    if (out == NULL) return body;
    char *o = out;
    memcpy(o, body, keep);
    o += keep;
    memcpy(o, head, strlen(head));
    o += strlen(head);
    memset(o, 'x', HUGE_BODY_BYTES - fixed);
    o += HUGE_BODY_BYTES - fixed;
    memcpy(o, tail, strlen(tail) + 1);
    free(body);
    *len = HUGE_BODY_BYTES;
    return out;
}

/* The bid's adid: ad_{adv}_{request id} on imp "1" (the SPEC 2 form's
 * only imp), ad_{adv}_{request id}_{imp id} on any other, so that each bid
 * of a request names an ad of its own; then cut or padded to exactly
 * adid_bytes when set. NULL when out of memory. */
static char *bid_adid(const advertiser *adv, const bid_request *br, const bid_imp *imp) {
    char *adid = strcmp(imp->id, "1") == 0 ? str_printf("ad_%s_%s", adv->id, br->id)
                                           : str_printf("ad_%s_%s_%s", adv->id, br->id, imp->id);
    if (adid && adv->adid_bytes > 0) { /* cut or padded to exactly adid_bytes */
        size_t want = (size_t)adv->adid_bytes, have = strlen(adid);
        char *sized = malloc(want + 1);
        if (sized) {
            memcpy(sized, adid, have < want ? have : want);
            if (have < want) memset(sized + have, 'x', want - have);
            sized[want] = '\0';
        }
        free(adid);
        adid = sized;
    }
    return adid;
}

static cJSON *bid_object(advertiser *adv, const bid_request *br, const bid_imp *imp) {
    char price[AUCTION_MICROS_STRLEN], bid_id[32];
    if (adv->mode == MODE_BAD_PRICE)
        snprintf(price, sizeof price, "-1");
    else
        auction_micros_format(adv_price(adv, br, imp), price);
    snprintf(bid_id, sizeof bid_id, "b-%" PRIu64, ++adv->bid_seq);
    char *adid = bid_adid(adv, br, imp);
    cJSON *bid = cJSON_CreateObject();
    cJSON_AddStringToObject(bid, "id", bid_id);
    cJSON_AddStringToObject(bid, "impid", imp->id);
    cJSON_AddRawToObject(bid, "price", price);
    cJSON_AddStringToObject(bid, "adid", adid ? adid : "");
    cJSON_AddStringToObject(bid, "crid", adv->crid);
    cJSON_AddStringToObject(bid, "iurl", adv->creative);
    if (imp->has_deal) cJSON_AddStringToObject(bid, "dealid", adv->deal);
    if (adv->notices) {
        cJSON_AddStringToObject(bid, "nurl", adv->nurl);
        cJSON_AddStringToObject(bid, "lurl", adv->lurl);
    }
    if (adv->burl) cJSON_AddStringToObject(bid, "burl", adv->burl_url);
    free(adid);
    return bid;
}

/* The 200 body for a bid, shaped by the advertiser's mode: one seatbid
 * with a bid per imp (imps=first: on the first imp alone), in the
 * request's order. NULL when out of memory. */
static char *bid_body(advertiser *adv, const bid_request *br, size_t *len) {
    cJSON *root = cJSON_CreateObject();
    char *wrong = adv->mode == MODE_WRONG_ID ? str_printf("wrong-%s", br->id) : NULL;
    cJSON_AddStringToObject(root, "id", wrong ? wrong : br->id);
    free(wrong);
    cJSON *seat = cJSON_CreateObject();
    add_item(cJSON_AddArrayToObject(root, "seatbid"), seat);
    cJSON_AddStringToObject(seat, "seat", adv->id);
    cJSON *bids = cJSON_AddArrayToObject(seat, "bid");
    size_t n = adv->first_imp_only ? 1 : br->nimps;
    for (size_t k = 0; k < n; k++)
        add_item(bids, bid_object(adv, br, &br->imps[k]));
    cJSON_AddStringToObject(root, "cur", adv->cur ? adv->cur : "USD");
    char *body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (body == NULL) return NULL;
    *len = strlen(body);
    if (adv->mode == MODE_HUGE) body = pad_huge(body, len);
    if (adv->mode == MODE_BAD_JSON) {
        *len /= 2; /* cut in half: no longer parses */
        body[*len] = '\0';
    }
    return body;
}

/* ---- Pending answers ---------------------------------------------------- */

static void pending_unlink(pending *p) {
    advertiser *adv = p->adv;
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        adv->pending = p->next;
    if (p->next != NULL) p->next->prev = p->prev;
    adv->npending--;
}

static void pending_free(pending *p) {
    if (p->timer != NULL) event_free(p->timer);
    if (p->watch != NULL) event_free(p->watch);
    free(p->body);
    free(p);
}

/* Abandon an answer. A request that libevent detached from its (closed)
 * connection is ours to free; one still attached goes with its connection. */
static void pending_drop(pending *p) {
    pending_unlink(p);
    if (evhttp_request_get_connection(p->req) == NULL) evhttp_request_free(p->req);
    p->adv->n.dropped++;
    pending_free(p);
}

/* The counter an answer of this outcome bumps once sent; NULL: none. */
static uint64_t *sent_counter(advertiser *adv, outcome out) {
    switch (out) {
    case OUT_BID:
        return &adv->n.bids;
    case OUT_NOBID:
        return &adv->n.nobids;
    case OUT_ERROR:
        return &adv->n.errors;
    case OUT_WIN:
        return &adv->n.wins;
    case OUT_LOSS:
        return &adv->n.losses;
    case OUT_BILL:
        return &adv->n.bills;
    case OUT_NOTICE_FAILED:
        return &adv->n.notices_failed;
    case OUT_NONE:
    default:
        return NULL;
    }
}

/* 1 for the answer to a bid request (not a notice). */
static int is_bid_answer(outcome out) {
    return out == OUT_BID || out == OUT_NOBID || out == OUT_ERROR;
}

/* header_pad: X-Pad-001, X-Pad-002, ... whose lines ("X-Pad-001: xxx" and
 * CRLF) are PAD_LINE_BYTES long, the last one shorter: header_pad bytes in
 * all, give or take PAD_LINE_FIXED. */
static void add_pad_headers(advertiser *adv, struct evhttp_request *req) {
    char value[PAD_LINE_BYTES];
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    int64_t left = adv->header_pad;
    for (int k = 1; left > PAD_LINE_FIXED; k++) {
        int64_t line = left < PAD_LINE_BYTES ? left : PAD_LINE_BYTES;
        size_t vlen = (size_t)(line - PAD_LINE_FIXED);
        char name[16];
        snprintf(name, sizeof name, "X-Pad-%03d", k % 1000);
        memset(value, 'x', vlen);
        value[vlen] = '\0';
        evhttp_add_header(h, name, value);
        left -= line;
    }
}

/* Send an answer now and count it. */
static void answer(advertiser *adv, struct evhttp_request *req, int status, const char *body,
                   size_t len, outcome out) {
    uint64_t *counter = sent_counter(adv, out);
    if (is_bid_answer(out)) add_pad_headers(adv, req);
    send_body(req, status, body, len);
    if (counter != NULL) (*counter)++;
}

static void arm_ms(struct event *timer, int64_t ms) {
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(timer, &tv);
}

/* trickle: the status line and headers (with the body's Content-Length, so
 * no chunked encoding) first, then one byte of the body per call; the
 * timer comes back every trickle ms. Returns 1 when the answer is complete. */
static int trickle_step(pending *p) {
    advertiser *adv = p->adv;
    if (!p->started) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(p->req);
        char len[32];
        snprintf(len, sizeof len, "%zu", p->body_len);
        evhttp_add_header(h, "Content-Type", "application/json");
        evhttp_add_header(h, "Content-Length", len);
        add_pad_headers(adv, p->req);
        evhttp_send_reply_start(p->req, p->status, NULL);
        p->started = 1;
    }
    struct evbuffer *b = evbuffer_new();
    if (b != NULL) {
        evbuffer_add(b, p->body + p->sent, 1);
        evhttp_send_reply_chunk(p->req, b);
        evbuffer_free(b);
    }
    if (++p->sent < p->body_len) {
        arm_ms(p->timer, adv->trickle_ms);
        return 0;
    }
    evhttp_send_reply_end(p->req);
    uint64_t *counter = sent_counter(adv, p->out);
    if (counter != NULL) (*counter)++;
    return 1;
}

/* Timer: the delay is over, send the answer decided on arrival. */
static void pending_fire(evutil_socket_t fd, short what, void *arg) {
    pending *p = arg;
    (void)fd;
    (void)what;
    if (evhttp_request_get_connection(p->req) == NULL) {
        pending_drop(p); /* closed without our close callback: cannot happen */
        return;
    }
    if (p->adv->trickle_ms > 0 && p->body_len > 0 && is_bid_answer(p->out)) {
        if (!trickle_step(p)) return;
        pending_unlink(p);
        pending_free(p);
        return;
    }
    pending_unlink(p);
    answer(p->adv, p->req, p->status, p->body, p->body_len, p->out);
    pending_free(p);
}

/* The client's socket turned readable while its answer is pending. evhttp
 * does not read a connection while a request on it awaits its reply, so a
 * client that gives up (the exchange at its deadline) would go unnoticed
 * until the answer is written, or forever in hang mode. EOF or an error:
 * drop the answer and close the connection, which frees the request. Data:
 * a pipelined request, so the client is still there; stop looking. */
static void pending_watch(evutil_socket_t fd, short what, void *arg) {
    pending *p = arg;
    char c;
    (void)what;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK);
    if (n > 0) {
        event_del(p->watch);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    struct evhttp_connection *evcon = p->evcon;
    pending_drop(p);
    evhttp_connection_free(evcon); /* frees the request; our close callback finds nothing */
}

/* A client connection went away: drop whatever was still to be sent on it
 * (the exchange cancels calls at its deadline, SPEC 3.5). */
static void on_conn_close(struct evhttp_connection *evcon, void *arg) {
    advertiser *adv = arg;
    pending *next;
    for (pending *p = adv->pending; p != NULL; p = next) {
        next = p->next;
        if (p->evcon == evcon) pending_drop(p);
    }
}

static int pending_error(pending *p) {
    p->status = 500;
    p->out = OUT_ERROR;
    p->body = strdup("{\"error\":\"simulated bidder error\"}");
    p->body_len = p->body ? strlen(p->body) : 0;
    return p->body ? 0 : -1;
}

/* Decide the answer now (the random draws happen in arrival order, so a
 * --seed replays the same answers). One draw splits normal mode into
 * [0, nobid) no-bid, [nobid, nobid+error) error, the rest a bid.
 * Returns 0, or -1 when out of memory. */
static int pending_decide(pending *p, const bid_request *br) {
    advertiser *adv = p->adv;
    double u;
    p->status = 200;
    p->out = OUT_BID;
    switch (adv->mode) {
    case MODE_HANG:
        p->out = OUT_NONE;
        return 0;
    case MODE_EMPTY200:
        p->out = OUT_NOBID;
        return 0;
    case MODE_HTTP500:
        return pending_error(p);
    case MODE_NORMAL:
        u = rng_unit(&adv->ctx->rng);
        if (u < adv->nobid_rate) {
            p->status = 204;
            p->out = OUT_NOBID;
            return 0;
        }
        if (u < adv->nobid_rate + adv->error_rate) return pending_error(p);
        break;
    default:
        break;
    }
    p->body = bid_body(adv, br, &p->body_len);
    return p->body ? 0 : -1;
}

/* A pending for `req`, its answer still to be decided; NULL when out of
 * memory. */
static pending *pending_new(advertiser *adv, struct evhttp_request *req) {
    pending *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    p->adv = adv;
    p->req = req;
    p->evcon = evhttp_request_get_connection(req);
    return p;
}

/* Park `p`, its answer decided, on its advertiser's list, watch its client
 * and arm its timer for delay_ms (delay_ms < 0: no timer, hang mode).
 * Returns 0, or -1 when out of memory, having freed `p`. */
static int pending_park(pending *p, int64_t delay_ms) {
    advertiser *adv = p->adv;
    struct event_base *base = adv->ctx->base;
    evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(p->evcon));
    p->watch = event_new(base, fd, EV_READ | EV_PERSIST, pending_watch, p);
    if (p->watch == NULL ||
        (delay_ms >= 0 && (p->timer = evtimer_new(base, pending_fire, p)) == NULL)) {
        pending_free(p);
        return -1;
    }
    p->next = adv->pending;
    if (p->next != NULL) p->next->prev = p;
    adv->pending = p;
    adv->npending++;
    evhttp_connection_set_closecb(p->evcon, on_conn_close, adv);
    event_add(p->watch, NULL);
    if (p->timer != NULL) arm_ms(p->timer, delay_ms);
    return 0;
}

/* Decide a bid answer and park it for latency + jitter ms (hang mode: for
 * ever). Returns 0, or -1 when out of memory. */
static int pending_start(advertiser *adv, struct evhttp_request *req, const bid_request *br) {
    pending *p = pending_new(adv, req);
    if (p == NULL) return -1;
    if (pending_decide(p, br) != 0) {
        pending_free(p);
        return -1;
    }
    int64_t ms = -1;
    if (p->out != OUT_NONE)
        ms = adv->latency_ms + (int64_t)rng_upto(&adv->ctx->rng, (uint64_t)adv->jitter_ms);
    return pending_park(p, ms);
}

/* ---- Requests ----------------------------------------------------------- */

static const char *method_name(enum evhttp_cmd_type cmd) {
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    default:
        return "OTHER";
    }
}

/* Keep what /last shows: method, uri, headers and the body (the parsed JSON,
 * consumed, or the raw text when it did not parse). */
static void record_last(advertiser *adv, struct evhttp_request *req, cJSON *json, const char *raw,
                        size_t len) {
    cJSON *doc = cJSON_CreateObject(), *headers = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "method", method_name(evhttp_request_get_command(req)));
    cJSON_AddStringToObject(doc, "uri", evhttp_request_get_uri(req));
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    for (struct evkeyval *h = in->tqh_first; h != NULL; h = h->next.tqe_next) {
        cJSON_DeleteItemFromObjectCaseSensitive(headers, h->key); /* the last one wins */
        cJSON_AddStringToObject(headers, h->key, h->value);
    }
    if (!cJSON_AddItemToObject(doc, "headers", headers)) cJSON_Delete(headers);
    if (json == NULL) {
        char *text = malloc(len + 1);
        if (text != NULL) {
            memcpy(text, raw, len);
            text[len] = '\0';
        }
        json = cJSON_CreateString(text ? text : "");
        free(text);
    }
    if (!cJSON_AddItemToObject(doc, "body", json)) cJSON_Delete(json);
    cJSON_Delete(adv->last);
    adv->last = doc;
}

/* POST: a bid request. Bad ones are answered 400 at once; good ones get a
 * pending answer. */
static void handle_bid(advertiser *adv, struct evhttp_request *req) {
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *raw = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
    cJSON *json = raw != NULL ? cJSON_ParseWithLength(raw, len) : NULL;
    bid_request br;
    char err[128];
    adv->n.requests++;
    int ok = bid_request_read(json, adv->deal, &br, err, sizeof err) == 0;
    int started = ok && pending_start(adv, req, &br) == 0;
    record_last(adv, req, json, raw ? raw : "", raw ? len : 0); /* br is void from here */
    if (!ok) {
        adv->n.bad_requests++;
        send_error(req, 400, err);
    } else if (!started) {
        adv->n.errors++;
        send_error(req, 500, "out of memory");
    }
}

static void handle_last(advertiser *adv, struct evhttp_request *req) {
    if (adv->last == NULL) {
        send_json(req, 404, cJSON_CreateObject());
        return;
    }
    send_json(req, 200, cJSON_Duplicate(adv->last, 1));
}

static void handle_stats(advertiser *adv, struct evhttp_request *req) {
    const counters *n = &adv->n;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "id", adv->id);
    cJSON_AddNumberToObject(doc, "requests", (double)n->requests);
    cJSON_AddNumberToObject(doc, "bids", (double)n->bids);
    cJSON_AddNumberToObject(doc, "nobids", (double)n->nobids);
    cJSON_AddNumberToObject(doc, "errors", (double)n->errors);
    cJSON_AddNumberToObject(doc, "wins", (double)n->wins);
    cJSON_AddNumberToObject(doc, "losses", (double)n->losses);
    cJSON_AddNumberToObject(doc, "bills", (double)n->bills);
    cJSON_AddNumberToObject(doc, "notices_failed", (double)n->notices_failed);
    cJSON_AddNumberToObject(doc, "bad_requests", (double)n->bad_requests);
    cJSON_AddNumberToObject(doc, "dropped", (double)n->dropped);
    cJSON_AddNumberToObject(doc, "pending", (double)adv->npending);
    cJSON *list = cJSON_AddArrayToObject(doc, "notices");
    for (size_t k = 0; k < NOTICES_KEPT; k++) { /* oldest first */
        const char *uri = adv->notice_uris[(adv->notice_next + k) % NOTICES_KEPT];
        if (uri != NULL) add_item(list, cJSON_CreateString(uri));
    }
    send_json(req, 200, doc);
}

/* GET /win, /loss or /bill (SPEC 9, 14): keep the URI and decide now how
 * to answer: the first notice_fail notices of any kind get notice_status,
 * later ones 200. The answer goes out after notice_delay ms (a client that
 * leaves meanwhile is a dropped answer, as for bids); `ok` or
 * notices_failed is counted when it is sent. */
static void handle_notice(advertiser *adv, struct evhttp_request *req, outcome ok) {
    char **slot = &adv->notice_uris[adv->notice_next];
    free(*slot);
    *slot = strdup(evhttp_request_get_uri(req));
    adv->notice_next = (adv->notice_next + 1) % NOTICES_KEPT;
    int failed = adv->notices_seen++ < (uint64_t)adv->notice_fail;
    int status = failed ? adv->notice_status : 200;
    outcome out = failed ? OUT_NOTICE_FAILED : ok;
    if (adv->notice_delay_ms == 0) {
        answer(adv, req, status, NULL, 0, out);
        return;
    }
    pending *p = pending_new(adv, req);
    if (p != NULL) {
        p->status = status;
        p->out = out;
    }
    if (p == NULL || pending_park(p, adv->notice_delay_ms) != 0) {
        adv->n.errors++;
        send_error(req, 500, "out of memory");
    }
}

static void on_request(struct evhttp_request *req, void *arg) {
    advertiser *adv = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (evhttp_request_get_command(req) == EVHTTP_REQ_POST)
        handle_bid(adv, req);
    else if (path == NULL)
        send_error(req, 404, "not found");
    else if (strcmp(path, "/last") == 0)
        handle_last(adv, req);
    else if (strcmp(path, "/stats") == 0)
        handle_stats(adv, req);
    else if (strcmp(path, "/win") == 0)
        handle_notice(adv, req, OUT_WIN);
    else if (strcmp(path, "/loss") == 0)
        handle_notice(adv, req, OUT_LOSS);
    else if (strcmp(path, "/bill") == 0)
        handle_notice(adv, req, OUT_BILL);
    else
        send_error(req, 404, "not found");
}

/* ---- Setup and teardown ------------------------------------------------- */

/* The strings every bid of this advertiser carries; needs the bound port. */
static int adv_urls(bidder *ctx, advertiser *adv) {
    char *host = url_host(ctx->host);
    char *base =
        adv->nurl_base ? strdup(adv->nurl_base) : str_printf("http://%s:%d", host, adv->port);
    size_t blen = base ? strlen(base) : 0;
    if (blen > 0 && base[blen - 1] == '/') base[blen - 1] = '\0';
    char *creative =
        expand_id(adv->creative ? adv->creative : "https://cdn.example/{id}.jpg", adv->id);
    free(adv->creative);
    adv->creative = creative;
    adv->crid = str_printf("c-%s", adv->id);
    if (base != NULL) {
        adv->nurl = str_printf("%s/win?id=${AUCTION_ID}&price=${AUCTION_PRICE}", base);
        adv->lurl = str_printf(
            "%s/loss?id=${AUCTION_ID}&reason=${AUCTION_LOSS}&price=${AUCTION_PRICE}", base);
        adv->burl_url = str_printf(
            "%s/bill?id=${AUCTION_ID}&price=${AUCTION_PRICE}&cur=${AUCTION_CURRENCY}", base);
    }
    free(host);
    free(base);
    return adv->creative && adv->crid && adv->nurl && adv->lurl && adv->burl_url ? 0 : -1;
}

static int adv_listen(bidder *ctx, advertiser *adv) {
    adv->http = evhttp_new(ctx->base);
    if (adv->http == NULL) return -1;
    evhttp_set_gencb(adv->http, on_request, adv);
    evhttp_set_allowed_methods(adv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_max_body_size(adv->http, (ev_ssize_t)MAX_BODY_BYTES);
    evhttp_set_default_content_type(adv->http, "application/json");
    errno = 0;
    struct evhttp_bound_socket *bound =
        evhttp_bind_socket_with_handle(adv->http, ctx->host, (ev_uint16_t)adv->port);
    if (bound == NULL) {
        fprintf(stderr, "rtb-bidder: %s: cannot listen on %s port %d: %s\n", adv->id, ctx->host,
                adv->port, errno ? strerror(errno) : "address not found");
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sslen) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        adv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    else
        adv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (adv_urls(ctx, adv) == 0) return 0;
    fprintf(stderr, "rtb-bidder: out of memory\n");
    return -1;
}

static void adv_free(advertiser *adv) {
    while (adv->pending != NULL)
        pending_drop(adv->pending);
    if (adv->http != NULL) evhttp_free(adv->http); /* frees its connections and their requests */
    free(adv->id);
    free(adv->creative);
    free(adv->nurl_base);
    free(adv->deal);
    free(adv->cur);
    free(adv->crid);
    free(adv->nurl);
    free(adv->lurl);
    free(adv->burl_url);
    cJSON_Delete(adv->last);
    for (size_t i = 0; i < NOTICES_KEPT; i++)
        free(adv->notice_uris[i]);
}

static void bidder_free(bidder *ctx) {
    for (size_t i = 0; i < ctx->nadvs; i++)
        adv_free(&ctx->advs[i]);
    free(ctx->advs);
    if (ctx->sigint != NULL) event_free(ctx->sigint);
    if (ctx->sigterm != NULL) event_free(ctx->sigterm);
    if (ctx->base != NULL) event_base_free(ctx->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    bidder *ctx = arg;
    (void)sig;
    (void)what;
    event_base_loopbreak(ctx->base);
}

/* Bind every advertiser, announce them, serve until SIGINT/SIGTERM.
 * Returns the exit code: 0 clean, 1 failure. */
static int run(bidder *ctx) {
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-answer is an error return */
    ctx->base = event_base_new();
    if (ctx->base == NULL) return 1;
    ctx->sigint = evsignal_new(ctx->base, SIGINT, on_signal, ctx);
    ctx->sigterm = evsignal_new(ctx->base, SIGTERM, on_signal, ctx);
    if (ctx->sigint == NULL || ctx->sigterm == NULL || evsignal_add(ctx->sigint, NULL) != 0 ||
        evsignal_add(ctx->sigterm, NULL) != 0)
        return 1;
    for (size_t i = 0; i < ctx->nadvs; i++)
        if (adv_listen(ctx, &ctx->advs[i]) != 0) return 1;
    const char *open = strchr(ctx->host, ':') ? "[" : "", *close = *open ? "]" : "";
    for (size_t i = 0; i < ctx->nadvs; i++)
        printf("listening %s %s%s%s:%d\n", ctx->advs[i].id, open, ctx->host, close,
               ctx->advs[i].port);
    fflush(stdout);
    return event_base_dispatch(ctx->base) < 0 ? 1 : 0;
}

static uint64_t seed_from_clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
    return ns ^ ((uint64_t)getpid() << 32);
}

int main(int argc, char **argv) {
    bidder ctx = {.host = "127.0.0.1", .rng = seed_from_clock()};
    int rc = parse_args(&ctx, argc, argv);
    if (rc == 0)
        rc = run(&ctx);
    else if (rc == 1)
        rc = 0; /* --help, --version */
    bidder_free(&ctx);
    return rc;
}

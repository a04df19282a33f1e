/* config.c -- the configuration of SPEC 7: defaults, config documents, command line overrides.
 *
 * The one idea: the configuration is a table, and every rule about a key
 * lives in its row. Each row of `config_rows` gives a key path, its type and
 * bounds (or enum names, or string format), its default (as JSON text),
 * where it lives in proto_config (offsetof), flags (REQUIRED, NULLABLE,
 * UNIQUE across list elements, SENSITIVE: never printed or echoed) and,
 * for a rule the type cannot say, its own `validate` function, run once the
 * whole document is applied so that rules across keys do not depend on the
 * order of keys. One walk over a JSON object looks every key up in the table
 * and applies its row; the same rows give the defaults (their JSON text goes
 * through that same walk), the deep copy, the free and the --help listing.
 * Adding a key is adding a row; no caller checks a key again.
 *
 * Objects of the table ("mqtt", "auction", ...) are sections: a document
 * sets the keys it names and the others keep their values. The non-scalar
 * keys are values replaced whole: the lists `bidders` and `alerts` (each
 * element walked against its own small table, like a section), `mqtt.tls`
 * and `profiles.default` (small handlers).
 *
 * Every change is made on a deep copy that replaces the caller's config only
 * when the whole document was valid, so a failed parse changes nothing.
 * Advertiser registry entries (SPEC 6) are decoded with the bidder rows too.
 * No I/O: documents come in as bytes (rtb/conffile.c reads the file), and
 * --help goes out into a proto_buf. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/internal.h"
#include "proto/proto.h"

/* Key paths in messages are cut here (a hostile key can be 1 MiB long). */
#define PATH_BYTES 256
/* Most rows of a record table (bidder, alert, mqtt.tls). */
#define RECORD_MAX_ROWS 16
/* An enum value echoed in a message is cut after this many bytes. */
#define ECHO_BYTES 48

/* Enums are written through an int (GCC's underlying type is int-sized). */
_Static_assert(sizeof(auction_type) == sizeof(int), "auction_type is int-sized");
_Static_assert(sizeof(proto_log_level) == sizeof(int), "proto_log_level is int-sized");
_Static_assert(sizeof(proto_alert_metric) == sizeof(int), "proto_alert_metric is int-sized");
_Static_assert(sizeof(proto_pacing) == sizeof(int), "proto_pacing is int-sized");
_Static_assert(sizeof(proto_alert_op) == sizeof(int), "proto_alert_op is int-sized");
_Static_assert(sizeof(proto_alert_severity) == sizeof(int), "proto_alert_severity is int-sized");
_Static_assert(sizeof(proto_alert_source) == sizeof(int), "proto_alert_source is int-sized");

/* ---- The table ---------------------------------------------------------- */

typedef enum conf_type {
    CONF_INT,     /* long; an integral number in min..max */
    CONF_NUMBER,  /* double; any finite number (NULLABLE: null is NaN) */
    CONF_BOOL,    /* int 0 or 1; true or false */
    CONF_MONEY,   /* int64_t micros; a number in min..max micros, at most 6 decimals */
    CONF_STRING,  /* char * (owned); min..max characters, then `format` */
    CONF_ENUM,    /* an enum field; one of `names` */
    CONF_STRINGS, /* char ** + size_t at count_offset; strings of min..max characters */
    CONF_LIST,    /* an array of records, see conf_list */
    CONF_CUSTOM,  /* a value with its own handler, see conf_handler */
} conf_type;

typedef enum conf_format {
    FMT_ANY = 0,
    FMT_HOST,       /* no spaces, controls or any of /?#@[] (bare IPv6 is fine) */
    FMT_ID,         /* [A-Za-z0-9._:-] only (SPEC 2 ids) */
    FMT_URL,        /* http:// or https:// with a host */
    FMT_HOSTPORT,   /* "host:port", "[v6]:port" */
    FMT_CURRENCY,   /* three uppercase letters, ISO 4217 */
    FMT_SHARE_NAME, /* MQTT v5 share name: no '/', '+', '#' */
    FMT_TEXT,       /* no control characters (it goes into logs and pages) */
    FMT_TOKEN,      /* visible ASCII only (0x21..0x7e): a bearer token */
} conf_format;

enum {
    CONF_NULLABLE = 1,  /* null is a value (stored as NULL) */
    CONF_REQUIRED = 2,  /* in a record: the key must be present (rows without default) */
    CONF_UNIQUE = 4,    /* in a list's record (a string): differs across the elements */
    CONF_SENSITIVE = 8, /* a secret: --help shows no default, no message shows the value */
};

typedef struct conf_name {
    const char *name;
    int value;
} conf_name;

struct conf_list;
struct conf_handler;
struct conf_row;

/* A row's rule beyond its type and bounds, about its value or about other
 * keys of the same struct (`base`: the config, or a list element). Runs once
 * the document (or the record) is applied whole; `path` is the row's full
 * key path, which the message starts with. Returns PROTO_OK, or the error
 * with the message written. */
typedef proto_err (*conf_validate)(const struct conf_row *row, const void *base, const char *path,
                                   char *err, size_t errlen);

typedef struct conf_row {
    const char *path; /* dotted key path, relative to the table's object */
    conf_type type;
    size_t offset; /* of the field in the table's struct */
    long long min; /* INT: value; MONEY: micros; STRING(S): characters */
    long long max;
    const char *def; /* default as JSON text; NULL: none (required in records) */
    unsigned flags;
    conf_format format;
    const conf_name *names;             /* ENUM, NULL-terminated */
    size_t count_offset;                /* STRINGS: the size_t count */
    size_t max_items;                   /* STRINGS: most elements; 0: no bound */
    const struct conf_list *list;       /* LIST */
    const struct conf_handler *handler; /* CUSTOM */
    conf_validate validate;             /* NULL: the type and bounds say it all */
    const char *describe;               /* --help's text of what validate takes; NULL: the type's */
} conf_row;

/* A rule about a whole record (a list element) that its rows cannot say
 * alone, run once the record is applied and its rows' rules passed; it may
 * also fold one key into another (alerts: `above` into op and threshold).
 * `mprefix` ("alerts[0].") starts the message. */
typedef proto_err (*conf_finish)(void *elem, const char *mprefix, char *err, size_t errlen);

/* A list of records: an array at `offset` of the parent row, its length at
 * `count_offset`; each element is a struct of `elem_size` bytes walked
 * against `rows`, then `finish` (NULL: none). Rows flagged UNIQUE (the
 * record's name) differ across elements. */
typedef struct conf_list {
    const conf_row *rows;
    size_t nrows;
    size_t elem_size;
    size_t count_offset;
    const char *what; /* "bidder": for messages */
    conf_finish finish;
} conf_list;

/* A value that is not a scalar, a section or a list. `base` is the struct of
 * the row's table. apply replaces the value (on error the state may be
 * half-changed: it is always a copy); copy fills a zeroed `dst` from `src`
 * (0, or -1 when memory ran out, leaving `dst` safe to release); release
 * frees and zeroes. `rows` (may be NULL) are listed by --help. */
typedef struct conf_handler {
    proto_err (*apply)(void *base, const cJSON *item, const char *path, char *err, size_t errlen);
    int (*copy)(void *dst, const void *src);
    void (*release)(void *base);
    const char *expect; /* "expected ..." in messages */
    const char *about;  /* --help */
    const conf_row *rows;
    size_t nrows;
} conf_handler;

#define NROWS(a) (sizeof(a) / sizeof((a)[0]))
#define CFG(field) offsetof(proto_config, field)
#define BIDDER(field) offsetof(proto_bidder_conf, field)
#define ALERT(field) offsetof(proto_alert_conf, field)

/* One macro per row type, as Redis's config.c has: a function cannot build a
 * constant initializer. `def` is JSON text; NULL means "required". */
#define INT_ROW(p, off, lo, hi, def_)                                                              \
    { .path = (p), .type = CONF_INT, .offset = (off), .min = (lo), .max = (hi), .def = (def_) }
#define NUMBER_ROW(p, off, def_, flags_)                                                           \
    { .path = (p), .type = CONF_NUMBER, .offset = (off), .def = (def_), .flags = (flags_) }
/* A number or null (stored as NaN), null by default. */
#define OPTIONAL_NUMBER_ROW(p, off)                                                                \
    { .path = (p), .type = CONF_NUMBER, .offset = (off), .def = "null", .flags = CONF_NULLABLE }
/* A number with a rule of its own (bounds a long long cannot say). */
/* A number that `validate_` checks further; `describe_` says how, for --help. */
#define CHECKED_NUMBER_ROW(p, off, def_, validate_, describe_)                                     \
    {                                                                                              \
        .path = (p), .type = CONF_NUMBER, .offset = (off), .def = (def_), .validate = (validate_), \
        .describe = (describe_)                                                                    \
    }
#define BOOL_ROW(p, off, def_)                                                                     \
    { .path = (p), .type = CONF_BOOL, .offset = (off), .def = (def_) }
/* An integer in lo..hi, or null (stored as 0). */
#define OPTIONAL_INT_ROW(p, off, lo, hi)                                                           \
    {                                                                                              \
        .path = (p), .type = CONF_INT, .offset = (off), .min = (lo), .max = (hi), .def = "null",   \
        .flags = CONF_NULLABLE                                                                     \
    }
#define MONEY_ROW(p, off, lo, hi, def_)                                                            \
    { .path = (p), .type = CONF_MONEY, .offset = (off), .min = (lo), .max = (hi), .def = (def_) }
#define STRING_ROW(p, off, lo, hi, def_, flags_, fmt)                                              \
    {                                                                                              \
        .path = (p), .type = CONF_STRING, .offset = (off), .min = (lo), .max = (hi),               \
        .def = (def_), .flags = (flags_), .format = (fmt)                                          \
    }
#define ENUM_ROW(p, off, names_, def_, flags_)                                                     \
    {                                                                                              \
        .path = (p), .type = CONF_ENUM, .offset = (off), .names = (names_), .def = (def_),         \
        .flags = (flags_)                                                                          \
    }
/* A secret: a nullable string, null by default, never printed. */
#define SECRET_ROW(p, off, lo, hi, validate_)                                                      \
    {                                                                                              \
        .path = (p), .type = CONF_STRING, .offset = (off), .min = (lo), .max = (hi),               \
        .def = "null", .flags = CONF_NULLABLE | CONF_SENSITIVE, .validate = (validate_)            \
    }
#define STRINGS_ROW(p, off, count_off, lo, hi, def_)                                               \
    {                                                                                              \
        .path = (p), .type = CONF_STRINGS, .offset = (off), .count_offset = (count_off),           \
        .min = (lo), .max = (hi), .def = (def_)                                                    \
    }
/* At most `items` strings of lo..hi characters, each of format `fmt`. */
#define BOUNDED_STRINGS_ROW(p, off, count_off, lo, hi, items, fmt, def_)                           \
    {                                                                                              \
        .path = (p), .type = CONF_STRINGS, .offset = (off), .count_offset = (count_off),           \
        .min = (lo), .max = (hi), .max_items = (items), .format = (fmt), .def = (def_)             \
    }
#define LIST_ROW(p, off, list_, def_)                                                              \
    { .path = (p), .type = CONF_LIST, .offset = (off), .list = (list_), .def = (def_) }
#define CUSTOM_ROW(p, handler_, def_, validate_)                                                   \
    {                                                                                              \
        .path = (p), .type = CONF_CUSTOM, .handler = (handler_), .def = (def_),                    \
        .validate = (validate_)                                                                    \
    }
#define NULLABLE CONF_NULLABLE
#define REQUIRED CONF_REQUIRED
#define UNIQUE CONF_UNIQUE

static const conf_name auction_types[] = {
    {"second_price", AUCTION_SECOND_PRICE},
    {"first_price", AUCTION_FIRST_PRICE},
    {NULL, 0},
};

static const conf_name log_levels[] = {
    {"debug", PROTO_LOG_DEBUG},
    {"info", PROTO_LOG_INFO},
    {"warn", PROTO_LOG_WARN},
    {"error", PROTO_LOG_ERROR},
    {NULL, 0},
};

/* alerts[].metric: what rtb/alerts.c can compute (docs/dashboard.md). */
static const conf_name alert_metrics[] = {
    {"bidder_timeout_rate", PROTO_ALERT_BIDDER_TIMEOUT_RATE},
    {"bidder_error_rate", PROTO_ALERT_BIDDER_ERROR_RATE},
    {"auction_timeout_rate", PROTO_ALERT_AUCTION_TIMEOUT_RATE},
    {"no_bid_rate", PROTO_ALERT_NO_BID_RATE},
    {"p99_latency_ms", PROTO_ALERT_P99_LATENCY_MS},
    {"ctr", PROTO_ALERT_CTR},
    {"cvr", PROTO_ALERT_CVR},
    {"cpc", PROTO_ALERT_CPC},
    {"spend_rate", PROTO_ALERT_SPEND_RATE},
    {"win_rate", PROTO_ALERT_WIN_RATE},
    {NULL, 0},
};
_Static_assert(NROWS(alert_metrics) == PROTO_ALERT_METRIC_COUNT + 1, "a name for every metric");

/* bidders[].budget.pacing (SPEC 16). */
static const conf_name pacings[] = {
    {"asap", PROTO_PACING_ASAP},
    {"even", PROTO_PACING_EVEN},
    {NULL, 0},
};

static const conf_name alert_ops[] = {
    {"above", PROTO_ALERT_ABOVE},
    {"below", PROTO_ALERT_BELOW},
    {NULL, 0},
};

static const conf_name alert_severities[] = {
    {"info", PROTO_ALERT_INFO},
    {"warning", PROTO_ALERT_WARNING},
    {"critical", PROTO_ALERT_CRITICAL},
    {NULL, 0},
};

static const conf_name alert_sources[] = {
    {"config", PROTO_ALERT_FROM_CONFIG},
    {"api", PROTO_ALERT_FROM_API},
    {NULL, 0},
};

/* Rules of rows (conf_validate), defined below the table. */
static proto_err password_needs_username(const conf_row *row, const void *base, const char *path,
                                         char *err, size_t errlen);
static proto_err tls_pair(const conf_row *row, const void *base, const char *path, char *err,
                          size_t errlen);
static proto_err share_0_1(const conf_row *row, const void *base, const char *path, char *err,
                           size_t errlen);
static proto_err alert_rules_max(const conf_row *row, const void *base, const char *path, char *err,
                                 size_t errlen);
static proto_err alert_finish(void *elem, const char *mprefix, char *err, size_t errlen);

static proto_err budget_apply(void *base, const cJSON *item, const char *path, char *err,
                              size_t errlen);
static int budget_copy(void *dst, const void *src);
static void budget_release(void *base);

/* bidders[].budget, when an object (SPEC 16; the fields live in
 * proto_bidder_conf itself). The daily budget is an amount like a price:
 * exact to the micro, more than nothing. */
static const conf_row budget_rows[] = {
    {.path = "daily",
     .type = CONF_MONEY,
     .offset = BIDDER(budget_daily_micros),
     .min = 1,
     .max = AUCTION_PRICE_MAX_MICROS,
     .flags = CONF_REQUIRED},
    ENUM_ROW("pacing", BIDDER(budget_pacing), pacings, "\"asap\"", 0),
};

static const conf_handler budget_handler = {
    budget_apply,
    budget_copy,
    budget_release,
    "expected null or an object {\"daily\", \"pacing\"}",
    "null (no budget), or an object replaced whole",
    budget_rows,
    NROWS(budget_rows),
};

/* bidders[]: SPEC 6 and 7. */
static const conf_row bidder_rows[] = {
    STRING_ROW("id", BIDDER(id), 1, PROTO_ID_MAX_CHARS, NULL, REQUIRED | UNIQUE, FMT_ID),
    STRING_ROW("endpoint", BIDDER(endpoint), 1, 2048, NULL, REQUIRED, FMT_URL),
    STRINGS_ROW("interests", BIDDER(interests), BIDDER(ninterests), 1, 128, "[]"),
    INT_ROW("max_concurrent", BIDDER(max_concurrent), 1, 100000, "100"),
    OPTIONAL_INT_ROW("tmax_ms", BIDDER(tmax_ms), 1, 10000),
    /* Hosts its notice URLs may name besides its endpoint's (SPEC 15). */
    STRINGS_ROW("notice_hosts", BIDDER(notice_hosts), BIDDER(nnotice_hosts), 1, 253, "[]"),
    /* The day's budget and its pacing (SPEC 16). */
    CUSTOM_ROW("budget", &budget_handler, "null", NULL),
};

/* alerts[], and the rules of the admin API: SPEC 11, 16. A rule without a
 * threshold means nothing: alert_finish wants `threshold` or the older
 * `above` (exactly one). A window is at most what the dashboard keeps. The
 * last row, `source`, is only read from Redis (proto_alert_decode, stored):
 * a config file or a POST body cannot claim it. */
static const conf_row alert_rows[] = {
    STRING_ROW("name", ALERT(name), 1, 128, NULL, REQUIRED | UNIQUE, FMT_TEXT),
    ENUM_ROW("metric", ALERT(metric), alert_metrics, NULL, REQUIRED),
    STRING_ROW("subject", ALERT(subject), 1, PROTO_ID_MAX_CHARS, "null", NULLABLE, FMT_ID),
    ENUM_ROW("op", ALERT(op), alert_ops, "\"above\"", 0),
    OPTIONAL_NUMBER_ROW("threshold", ALERT(threshold)),
    OPTIONAL_NUMBER_ROW("above", ALERT(above)),
    INT_ROW("window_s", ALERT(window_s), 1, PROTO_ALERT_WINDOW_MAX_S, "10"),
    ENUM_ROW("severity", ALERT(severity), alert_severities, "\"warning\"", 0),
    STRING_ROW("message", ALERT(message), 0, 1024, "\"\"", 0, FMT_TEXT),
    ENUM_ROW("source", ALERT(source), alert_sources, "\"config\"", 0),
};
/* The rows a config file's rule and a POST body may use: all but `source`. */
#define ALERT_ROWS_GIVEN (NROWS(alert_rows) - 1)

/* mqtt.tls, when an object (the fields live in proto_config itself). */
static const conf_row tls_rows[] = {
    STRING_ROW("cafile", CFG(mqtt.tls_cafile), 1, 4096, NULL, REQUIRED, FMT_ANY),
    STRING_ROW("certfile", CFG(mqtt.tls_certfile), 1, 4096, "null", NULLABLE, FMT_ANY),
    STRING_ROW("keyfile", CFG(mqtt.tls_keyfile), 1, 4096, "null", NULLABLE, FMT_ANY),
};

/* auction.default_banner (SPEC 17): the banner of a SPEC 2 form request;
 * the fields live in proto_config itself. */
static const conf_row banner_rows[] = {
    {.path = "w",
     .type = CONF_INT,
     .offset = CFG(auction.default_banner.w),
     .min = 1,
     .max = PROTO_PIXELS_MAX,
     .flags = REQUIRED},
    {.path = "h",
     .type = CONF_INT,
     .offset = CFG(auction.default_banner.h),
     .min = 1,
     .max = PROTO_PIXELS_MAX,
     .flags = REQUIRED},
};

/* auction.default_site (SPEC 17): the site of a request that names neither
 * site nor app, with the bounds of a request's site. */
static const conf_row site_rows[] = {
    STRING_ROW("id", CFG(auction.default_site.id), 1, PROTO_TEXT_MAX_CHARS, "null", NULLABLE,
               FMT_ANY),
    STRING_ROW("domain", CFG(auction.default_site.domain), 1, PROTO_TEXT_MAX_CHARS, "null",
               NULLABLE, FMT_ANY),
    STRING_ROW("page", CFG(auction.default_site.page), 1, PROTO_TEXT_MAX_CHARS, "null", NULLABLE,
               FMT_ANY),
    STRING_ROW("publisher.id", CFG(auction.default_site.publisher_id), 1, PROTO_TEXT_MAX_CHARS,
               "null", NULLABLE, FMT_ANY),
    STRING_ROW("publisher.name", CFG(auction.default_site.publisher_name), 1, PROTO_TEXT_MAX_CHARS,
               "null", NULLABLE, FMT_ANY),
};

_Static_assert(NROWS(bidder_rows) <= RECORD_MAX_ROWS, "record table too long");
_Static_assert(NROWS(banner_rows) <= RECORD_MAX_ROWS, "record table too long");
_Static_assert(NROWS(site_rows) <= RECORD_MAX_ROWS, "record table too long");
_Static_assert(NROWS(alert_rows) <= RECORD_MAX_ROWS, "record table too long");
_Static_assert(NROWS(tls_rows) <= RECORD_MAX_ROWS, "record table too long");
_Static_assert(NROWS(budget_rows) <= RECORD_MAX_ROWS, "record table too long");

static const conf_list bidder_list = {
    bidder_rows, NROWS(bidder_rows), sizeof(proto_bidder_conf), CFG(nbidders), "bidder", NULL,
};

static const conf_list alert_list = {
    alert_rows, ALERT_ROWS_GIVEN, sizeof(proto_alert_conf), CFG(nalerts), "alert", alert_finish,
};

static proto_err tls_apply(void *base, const cJSON *item, const char *path, char *err,
                           size_t errlen);
static int tls_copy(void *dst, const void *src);
static void tls_release(void *base);
static proto_err profile_apply(void *base, const cJSON *item, const char *path, char *err,
                               size_t errlen);
static int profile_copy(void *dst, const void *src);
static void profile_release(void *base);

static proto_err banner_apply(void *base, const cJSON *item, const char *path, char *err,
                              size_t errlen);
static int banner_copy(void *dst, const void *src);
static void banner_release(void *base);
static proto_err site_apply(void *base, const cJSON *item, const char *path, char *err,
                            size_t errlen);
static int site_copy(void *dst, const void *src);
static void site_release(void *base);

static const conf_handler banner_handler = {
    banner_apply,
    banner_copy,
    banner_release,
    "expected an object {\"w\", \"h\"} of integers between 1 and 65535",
    "object replaced whole: w, h",
    banner_rows,
    NROWS(banner_rows),
};

static const conf_handler site_handler = {
    site_apply,
    site_copy,
    site_release,
    "expected an object {\"id\", \"domain\", \"page\", \"publisher\": {\"id\", \"name\"}}",
    "object replaced whole: id, domain, page, publisher.id, publisher.name",
    site_rows,
    NROWS(site_rows),
};

static const conf_handler tls_handler = {
    tls_apply,
    tls_copy,
    tls_release,
    "expected null or an object {\"cafile\", \"certfile\", \"keyfile\"}",
    "null, or an object replaced whole",
    tls_rows,
    NROWS(tls_rows),
};

static const conf_handler profile_handler = {
    profile_apply,
    profile_copy,
    profile_release,
    "expected an object with optional interests, ltv_score, demographics",
    "object replaced whole: interests, ltv_score 0..1, demographics",
    NULL,
    0,
};

/* Every key of SPEC 7, in its order. Bounds are the exchange's own where the
 * SPEC names none; keep docs and --help (generated from here) in step. */
static const conf_row config_rows[] = {
    STRING_ROW("mqtt.host", CFG(mqtt.host), 1, 255, "\"127.0.0.1\"", 0, FMT_HOST),
    INT_ROW("mqtt.port", CFG(mqtt.port), 1, 65535, "1883"),
    STRING_ROW("mqtt.client_id", CFG(mqtt.client_id), 1, 128, "\"rtb-exchange\"", 0, FMT_ANY),
    STRING_ROW("mqtt.topic", CFG(mqtt.topic), 1, 4096, "\"rtb/requests/+\"", 0, FMT_ANY),
    INT_ROW("mqtt.qos", CFG(mqtt.qos), 0, 1, "1"),
    STRING_ROW("mqtt.shared_group", CFG(mqtt.shared_group), 1, 128, "null", NULLABLE,
               FMT_SHARE_NAME),
    STRING_ROW("mqtt.username", CFG(mqtt.username), 1, 1024, "null", NULLABLE, FMT_ANY),
    SECRET_ROW("mqtt.password", CFG(mqtt.password), 0, 1024, password_needs_username),
    CUSTOM_ROW("mqtt.tls", &tls_handler, "null", tls_pair),
    STRING_ROW("redis.host", CFG(redis.host), 1, 255, "\"127.0.0.1\"", 0, FMT_HOST),
    INT_ROW("redis.port", CFG(redis.port), 1, 65535, "6379"),
    STRING_ROW("redis.username", CFG(redis.username), 1, 1024, "null", NULLABLE, FMT_ANY),
    SECRET_ROW("redis.password", CFG(redis.password), 0, 1024, NULL),
    /* SPEC 15: a command unanswered this long drops the connection. */
    INT_ROW("redis.timeout_ms", CFG(redis.timeout_ms), 10, 60000, "1000"),
    ENUM_ROW("auction.type", CFG(auction.type), auction_types, "\"second_price\"", 0),
    INT_ROW("auction.tmax_ms", CFG(auction.tmax_ms), 1, 10000, "100"),
    INT_ROW("auction.max_bidders", CFG(auction.max_bidders), 1, 100, "10"),
    MONEY_ROW("auction.price_increment", CFG(auction.price_increment_micros), 0,
              AUCTION_PRICE_MAX_MICROS, "0.01"),
    STRING_ROW("auction.currency", CFG(auction.currency), 3, 3, "\"USD\"", 0, FMT_CURRENCY),
    CUSTOM_ROW("auction.default_banner", &banner_handler, "{\"w\":300,\"h\":250}", NULL),
    CUSTOM_ROW("auction.default_site", &site_handler,
               "{\"id\":\"default\",\"domain\":\"example.com\"}", NULL),
    INT_ROW("profiles.ttl_s", CFG(profiles.ttl_s), 1, 31536000, "3600"),
    CUSTOM_ROW("profiles.default", &profile_handler, "{\"interests\":[],\"ltv_score\":0.5}", NULL),
    INT_ROW("registry.refresh_s", CFG(registry.refresh_s), 1, 86400, "5"),
    LIST_ROW("bidders", CFG(bidders), &bidder_list, "[]"),
    INT_ROW("limits.max_request_bytes", CFG(limits.max_request_bytes), 64, 16777216, "65536"),
    INT_ROW("limits.max_response_bytes", CFG(limits.max_response_bytes), 64, 16777216, "65536"),
    INT_ROW("limits.max_inflight", CFG(limits.max_inflight), 1, 1000000, "10000"),
    INT_ROW("limits.max_pending_results", CFG(limits.max_pending_results), 0, 10000000, "100000"),
    INT_ROW("limits.max_pending_notices", CFG(limits.max_pending_notices), 0, 10000000, "100000"),
    INT_ROW("limits.max_pending_redis", CFG(limits.max_pending_redis), 1, 10000000, "100000"),
    INT_ROW("limits.max_pending_result_bytes", CFG(limits.max_pending_result_bytes), 1024,
            68719476736LL, "268435456"),
    STRING_ROW("admin.listen", CFG(admin.listen), 3, 300, "\"127.0.0.1:8080\"", NULLABLE,
               FMT_HOSTPORT),
    /* SPEC 15: names a Host header may give besides loopback and the listen
     * address (rtb/admin.c), e.g. the name of a reverse proxy in front. */
    BOUNDED_STRINGS_ROW("admin.allowed_hosts", CFG(admin.allowed_hosts), CFG(admin.nallowed_hosts),
                        1, 255, PROTO_ADMIN_MAX_ALLOWED_HOSTS, FMT_HOST, "[]"),
    /* SPEC 16: the bearer token of the admin API's writes (rtb/admin.c);
     * the environment's RTB_ADMIN_TOKEN replaces it (rtb/main.c). */
    {.path = "admin.token",
     .type = CONF_STRING,
     .offset = CFG(admin.token),
     .min = 16,
     .max = 512,
     .def = "null",
     .flags = CONF_NULLABLE | CONF_SENSITIVE,
     .format = FMT_TOKEN},
    {.path = "alerts",
     .type = CONF_LIST,
     .offset = CFG(alerts),
     .list = &alert_list,
     .def = "[{\"name\":\"bidder-timeouts\",\"metric\":\"bidder_timeout_rate\","
            "\"above\":0.2,\"window_s\":10}]",
     .validate = alert_rules_max},
    INT_ROW("health.lag_ms", CFG(health.lag_ms), 1, 1000, "5"),
    INT_ROW("health.window_s", CFG(health.window_s), 1, PROTO_HEALTH_WINDOW_MAX_S, "10"),
    INT_ROW("health.min_calls", CFG(health.min_calls), 1, 1000000, "20"),
    CHECKED_NUMBER_ROW("health.min_share", CFG(health.min_share), "0.05", share_0_1,
                       "number, more than 0 and at most 1"),
    BOOL_ROW("health.dry_run", CFG(health.dry_run), "false"),
    ENUM_ROW("log.level", CFG(log.level), log_levels, "\"info\"", 0),
    INT_ROW("log.maxlen", CFG(log.maxlen), 0, 1000000000, "1000000"),
    INT_ROW("notices.drain_s", CFG(notices.drain_s), 0, 60, "2"),
    INT_ROW("notices.burl_retry_s", CFG(notices.burl_retry_s), 1, 604800, "3600"),
    BOOL_ROW("notices.loss_price", CFG(notices.loss_price), "false"),
    INT_ROW("stats.ad_ttl_s", CFG(stats.ad_ttl_s), 1, 31536000, "604800"),
};

/* ---- Small helpers ------------------------------------------------------ */

static void *at(void *base, size_t offset) {
    return (char *)base + offset;
}

/* Pointer fields of every type (char *, char **, proto_bidder_conf *) are
 * read and written through memcpy, so no field is accessed as a type it
 * does not have. */
static void *get_ptr(const void *base, size_t offset) {
    void *p;
    memcpy(&p, (const char *)base + offset, sizeof p);
    return p;
}

static void set_ptr(void *base, size_t offset, void *p) {
    memcpy((char *)base + offset, &p, sizeof p);
}

static size_t get_count(const void *base, size_t offset) {
    size_t n;
    memcpy(&n, (const char *)base + offset, sizeof n);
    return n;
}

static void set_count(void *base, size_t offset, size_t n) {
    memcpy((char *)base + offset, &n, sizeof n);
}

static size_t line_of(const char *json, size_t offset) {
    size_t line = 1;
    for (size_t i = 0; i < offset; i++)
        line += json[i] == '\n';
    return line;
}

/* Parse `len` bytes of JSON (any value) through the JSON gate into *out;
 * `who` starts messages, which name the byte (and the line of a syntax
 * error) so that a hand-edited file can be fixed. */
static proto_err parse_json(const char *json, size_t len, const char *who, cJSON **out, char *err,
                            size_t errlen) {
    if (json == NULL) json = "";
    *out = NULL;
    if (len > PROTO_CONFIG_MAX_BYTES)
        return proto_fail(err, errlen, PROTO_ERR_TOO_LARGE, "%s: larger than %d bytes", who,
                          PROTO_CONFIG_MAX_BYTES);
    proto_json_error je;
    *out = proto_json_parse(json, len, &je);
    switch (je.fault) {
    case PROTO_JSON_OK:
        return PROTO_OK;
    case PROTO_JSON_NUL:
        return proto_fail(err, errlen, PROTO_ERR_NOT_JSON, "%s: NUL byte at byte %zu", who,
                          je.offset);
    case PROTO_JSON_UTF8:
        return proto_fail(err, errlen, PROTO_ERR_NOT_JSON, "%s: invalid UTF-8 at byte %zu", who,
                          je.offset);
    case PROTO_JSON_NUL_ESCAPE:
        return proto_fail(err, errlen, PROTO_ERR_NOT_JSON, "%s: \\u0000 in a string at byte %zu",
                          who, je.offset);
    case PROTO_JSON_SYNTAX:
        break;
    }
    return proto_fail(err, errlen, PROTO_ERR_NOT_JSON,
                      "%s: not valid JSON near byte %zu (line %zu)", who, je.offset,
                      line_of(json, je.offset));
}

/* ---- String formats ----------------------------------------------------- */

static int format_ok(conf_format format, const char *s) {
    switch (format) {
    case FMT_ANY:
        return 1;
    case FMT_HOST:
        return proto_host_ok(s, strlen(s));
    case FMT_ID:
        return proto_id_charset_ok(s);
    case FMT_URL:
        return proto_url_ok(s);
    case FMT_HOSTPORT:
        return proto_authority_ok(s, strlen(s), 1);
    case FMT_CURRENCY:
        return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == strlen(s);
    case FMT_SHARE_NAME:
        return strpbrk(s, "/+#") == NULL;
    case FMT_TEXT:
        for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
            if (*p < ' ' || *p == 0x7F) return 0;
        return 1;
    case FMT_TOKEN:
        for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
            if (*p <= ' ' || *p >= 0x7F) return 0;
        return 1;
    }
    return 0;
}

/* ---- Row messages ------------------------------------------------------- */

/* The "expected ..." part of a message for a value that breaks the row. */
static void row_expect(const conf_row *row, char *buf, size_t len) {
    const char *or_null = (row->flags & CONF_NULLABLE) ? " or null" : "";
    char lo[AUCTION_MICROS_STRLEN], hi[AUCTION_MICROS_STRLEN];
    size_t used;
    switch (row->type) {
    case CONF_INT:
        snprintf(buf, len, "expected an integer between %lld and %lld%s", row->min, row->max,
                 or_null);
        return;
    case CONF_NUMBER:
        snprintf(buf, len, "expected a finite number%s", or_null);
        return;
    case CONF_BOOL:
        snprintf(buf, len, "expected true or false");
        return;
    case CONF_MONEY:
        auction_micros_format(row->min, lo);
        auction_micros_format(row->max, hi);
        snprintf(buf, len, "expected a number between %s and %s with at most 6 decimals", lo, hi);
        return;
    case CONF_STRING:
        switch (row->format) {
        case FMT_URL:
            snprintf(buf, len, "must be an http:// or https:// URL with a host");
            return;
        case FMT_HOSTPORT:
            snprintf(buf, len, "expected \"host:port\"%s", or_null);
            return;
        case FMT_CURRENCY:
            snprintf(buf, len, "expected 3 uppercase letters (an ISO 4217 code)");
            return;
        case FMT_ID:
            snprintf(buf, len, "expected %lld to %lld characters of [A-Za-z0-9._:-]", row->min,
                     row->max);
            return;
        case FMT_HOST:
            snprintf(buf, len, "expected a host name or address of %lld to %lld characters",
                     row->min, row->max);
            return;
        case FMT_SHARE_NAME:
            snprintf(buf, len,
                     "expected a string of %lld to %lld characters without '/', '+' "
                     "or '#'%s",
                     row->min, row->max, or_null);
            return;
        case FMT_TEXT:
            snprintf(buf, len,
                     "expected a string of %lld to %lld characters, no control characters",
                     row->min, row->max);
            return;
        case FMT_TOKEN:
            snprintf(buf, len, "expected %lld to %lld visible ASCII characters (no spaces)%s",
                     row->min, row->max, or_null);
            return;
        case FMT_ANY:
            break;
        }
        snprintf(buf, len, "expected a string of %lld to %lld characters%s", row->min, row->max,
                 or_null);
        return;
    case CONF_ENUM:
        used = (size_t)snprintf(buf, len, "expected one of");
        for (const conf_name *n = row->names; n->name != NULL && used < len; n++)
            used += (size_t)snprintf(buf + used, len - used, "%s \"%s\"",
                                     n == row->names ? "" : ",", n->name);
        return;
    case CONF_STRINGS:
        snprintf(buf, len, "expected an array of strings of %lld to %lld characters", row->min,
                 row->max);
        return;
    case CONF_LIST:
        snprintf(buf, len, "expected an array of %s objects", row->list->what);
        return;
    case CONF_CUSTOM:
        snprintf(buf, len, "%s", row->handler->expect);
        return;
    }
}

/* The short description printed by --help. */
static void row_describe(const conf_row *row, char *buf, size_t len) {
    static const char *const flagged[] = {"", "required; ", "unique; ", "required, unique; "};
    const char *req =
        flagged[((row->flags & CONF_REQUIRED) ? 1 : 0) | ((row->flags & CONF_UNIQUE) ? 2 : 0)];
    const char *or_null = (row->flags & CONF_NULLABLE) ? ", or null" : "";
    char lo[AUCTION_MICROS_STRLEN], hi[AUCTION_MICROS_STRLEN];
    size_t used;
    if (row->describe) {
        snprintf(buf, len, "%s%s%s", req, row->describe, or_null);
        return;
    }
    switch (row->type) {
    case CONF_INT:
        snprintf(buf, len, "%sinteger %lld..%lld%s", req, row->min, row->max, or_null);
        return;
    case CONF_NUMBER:
        snprintf(buf, len, "%sfinite number%s", req, or_null);
        return;
    case CONF_BOOL:
        snprintf(buf, len, "%strue | false", req);
        return;
    case CONF_MONEY:
        auction_micros_format(row->min, lo);
        auction_micros_format(row->max, hi);
        snprintf(buf, len, "%samount %s..%s, at most 6 decimals", req, lo, hi);
        return;
    case CONF_STRING:
        if (row->format == FMT_URL)
            snprintf(buf, len, "%shttp:// or https:// URL", req);
        else if (row->format == FMT_HOSTPORT)
            snprintf(buf, len, "%s\"host:port\"%s", req, or_null);
        else if (row->format == FMT_CURRENCY)
            snprintf(buf, len, "%s3 uppercase letters", req);
        else if (row->format == FMT_ID)
            snprintf(buf, len, "%s%lld..%lld characters of [A-Za-z0-9._:-]%s", req, row->min,
                     row->max, or_null);
        else if (row->format == FMT_HOST)
            snprintf(buf, len, "%shost name or address, %lld..%lld characters", req, row->min,
                     row->max);
        else if (row->format == FMT_SHARE_NAME)
            snprintf(buf, len, "%sstring, %lld..%lld characters without / + #%s", req, row->min,
                     row->max, or_null);
        else if (row->format == FMT_TEXT)
            snprintf(buf, len, "%sstring, %lld..%lld characters, no control characters", req,
                     row->min, row->max);
        else if (row->format == FMT_TOKEN)
            snprintf(buf, len, "%s%lld..%lld visible ASCII characters%s", req, row->min, row->max,
                     or_null);
        else
            snprintf(buf, len, "%sstring, %lld..%lld characters%s", req, row->min, row->max,
                     or_null);
        return;
    case CONF_ENUM:
        used = (size_t)snprintf(buf, len, "%s", req);
        for (const conf_name *n = row->names; n->name != NULL && used < len; n++)
            used += (size_t)snprintf(buf + used, len - used, "%s%s", n == row->names ? "" : " | ",
                                     n->name);
        return;
    case CONF_STRINGS:
        if (row->max_items > 0)
            snprintf(buf, len, "%sarray of at most %zu %s, %lld..%lld characters each", req,
                     row->max_items,
                     row->format == FMT_HOST ? "host names or addresses" : "strings", row->min,
                     row->max);
        else
            snprintf(buf, len, "%sarray of strings", req);
        return;
    case CONF_LIST:
        snprintf(buf, len, "%sarray of %s objects, replaced whole", req, row->list->what);
        return;
    case CONF_CUSTOM:
        snprintf(buf, len, "%s%s", req, row->handler->about);
        return;
    }
}

static proto_err bad_value(const conf_row *row, const char *path, char *err, size_t errlen) {
    char expect[256];
    row_expect(row, expect, sizeof expect);
    return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: %s", path, expect);
}

static proto_err no_memory(const char *path, char *err, size_t errlen) {
    return proto_fail(err, errlen, PROTO_ERR_NOMEM, "%s: out of memory", path);
}

/* ---- String arrays ------------------------------------------------------ */

static void strings_free(char **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int is_string_of(const cJSON *item, long long min, long long max) {
    const char *s = proto_json_string(item);
    if (s == NULL) return 0;
    size_t n = proto_utf8_chars(s, (size_t)max);
    return n >= (size_t)min && n <= (size_t)max;
}

/* Check that `item` is an array of strings of min..max characters. */
static proto_err strings_check(const cJSON *item, long long min, long long max, const char *path,
                               char *err, size_t errlen) {
    if (!cJSON_IsArray(item))
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "%s: expected an array of strings of %lld to %lld characters", path, min,
                          max);
    size_t i = 0;
    for (const cJSON *s = item->child; s != NULL; s = s->next, i++)
        if (!is_string_of(s, min, max))
            return proto_fail(err, errlen, PROTO_ERR_FIELD,
                              "%s[%zu]: expected a string of %lld to %lld characters", path, i, min,
                              max);
    return PROTO_OK;
}

/* ---- Applying rows ------------------------------------------------------ */

static proto_err walk_object(const conf_row *rows, size_t nrows, void *base, const cJSON *obj,
                             const char *tprefix, const char *mprefix, unsigned char *seen,
                             char *err, size_t errlen);
static void release_rows(const conf_row *rows, size_t nrows, void *base);
static int copy_rows(const conf_row *rows, size_t nrows, void *dst, const void *src);

static proto_err apply_int(const conf_row *row, void *base, const cJSON *item, const char *path,
                           char *err, size_t errlen) {
    if (cJSON_IsNull(item) && (row->flags & CONF_NULLABLE)) {
        *(long *)at(base, row->offset) = 0;
        return PROTO_OK;
    }
    if (!cJSON_IsNumber(item)) return bad_value(row, path, err, errlen);
    double v = item->valuedouble;
    /* Range first (NaN fails it), so that the cast below is defined. */
    if (!(v >= (double)row->min && v <= (double)row->max) || v != (double)(long long)v)
        return bad_value(row, path, err, errlen);
    *(long *)at(base, row->offset) = (long)v;
    return PROTO_OK;
}

static proto_err apply_money(const conf_row *row, void *base, const cJSON *item, const char *path,
                             char *err, size_t errlen) {
    int64_t micros;
    if (proto_json_micros(item, &micros) != 0 || micros < row->min || micros > row->max)
        return bad_value(row, path, err, errlen);
    /* Both sides are the double nearest the decimal exactly when it has at
     * most 6 decimals; more would be rounded away silently. */
    if ((double)micros / 1e6 != item->valuedouble) return bad_value(row, path, err, errlen);
    *(int64_t *)at(base, row->offset) = micros;
    return PROTO_OK;
}

static proto_err apply_string(const conf_row *row, void *base, const cJSON *item, const char *path,
                              char *err, size_t errlen) {
    char *copy = NULL;
    if (!(cJSON_IsNull(item) && (row->flags & CONF_NULLABLE))) {
        if (!is_string_of(item, row->min, row->max) || !format_ok(row->format, item->valuestring))
            return bad_value(row, path, err, errlen);
        copy = strdup(item->valuestring);
        if (copy == NULL) return no_memory(path, err, errlen);
    }
    free(get_ptr(base, row->offset));
    set_ptr(base, row->offset, copy);
    return PROTO_OK;
}

/* `s` as a JSON string literal (quotes, escapes) in `out`, cut after
 * ECHO_BYTES bytes (between characters) with "..." after the quote. */
static int quote_cut(const char *s, char *out, size_t outlen) {
    char head[ECHO_BYTES + 1];
    size_t n = strnlen(s, ECHO_BYTES + 1);
    int cut = n > ECHO_BYTES;
    if (cut) n = ECHO_BYTES;
    memcpy(head, s, n);
    head[n] = '\0';
    proto_utf8_cut(head);
    proto_buf q;
    proto_buf_init(&q);
    int rc = proto_buf_json_string(&q, head);
    if (rc == 0) snprintf(out, outlen, "%s%s", q.data, cut ? "..." : "");
    proto_buf_free(&q);
    return rc;
}

static proto_err apply_enum(const conf_row *row, void *base, const cJSON *item, const char *path,
                            char *err, size_t errlen) {
    const char *s = proto_json_string(item);
    for (const conf_name *n = row->names; s != NULL && n->name != NULL; n++)
        if (strcmp(n->name, s) == 0) {
            memcpy(at(base, row->offset), &n->value, sizeof n->value);
            return PROTO_OK;
        }
    /* A word that is none of the names: saying which shows the typo. */
    char expect[256], got[ECHO_BYTES * 6 + 8];
    if (s == NULL || (row->flags & CONF_SENSITIVE) || quote_cut(s, got, sizeof got) != 0)
        return bad_value(row, path, err, errlen);
    row_expect(row, expect, sizeof expect);
    return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: %s, not %s", path, expect, got);
}

static proto_err apply_strings(const conf_row *row, void *base, const cJSON *item, const char *path,
                               char *err, size_t errlen) {
    proto_err e = strings_check(item, row->min, row->max, path, err, errlen);
    if (e != PROTO_OK) return e;
    size_t n = 0;
    for (const cJSON *s = item->child; s != NULL; s = s->next, n++) {
        if (format_ok(row->format, s->valuestring)) continue;
        /* The element breaks the row's format: say so as for a string row. */
        conf_row elem = *row;
        elem.type = CONF_STRING;
        char epath[PATH_BYTES];
        snprintf(epath, sizeof epath, "%s[%zu]", path, n);
        return bad_value(&elem, epath, err, errlen);
    }
    if (row->max_items > 0 && n > row->max_items)
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: expected at most %zu entries", path,
                          row->max_items);
    char **v = n > 0 ? calloc(n, sizeof *v) : NULL;
    if (n > 0 && v == NULL) return no_memory(path, err, errlen);
    size_t i = 0;
    for (const cJSON *s = item->child; s != NULL; s = s->next, i++) {
        v[i] = strdup(s->valuestring);
        if (v[i] == NULL) {
            strings_free(v, i);
            return no_memory(path, err, errlen);
        }
    }
    strings_free(get_ptr(base, row->offset), get_count(base, row->count_offset));
    set_ptr(base, row->offset, v);
    set_count(base, row->count_offset, n);
    return PROTO_OK;
}

/* Apply the rows' defaults to `base` (zeroed or holding older values). */
static proto_err apply_defaults(const conf_row *rows, size_t nrows, void *base, char *err,
                                size_t errlen);

static proto_err apply_row(const conf_row *row, void *base, const cJSON *item, const char *path,
                           char *err, size_t errlen);

/* Run the `validate` rule of every row that has one, on `base` applied
 * whole. Messages name mprefix+path. */
static proto_err validate_rows(const conf_row *rows, size_t nrows, const void *base,
                               const char *mprefix, char *err, size_t errlen) {
    for (size_t i = 0; i < nrows; i++) {
        if (rows[i].validate == NULL) continue;
        char path[PATH_BYTES];
        if (snprintf(path, sizeof path, "%s%s", mprefix, rows[i].path) >= (int)sizeof path)
            proto_utf8_cut(path);
        proto_err e = rows[i].validate(&rows[i], base, path, err, errlen);
        if (e != PROTO_OK) return e;
    }
    return PROTO_OK;
}

/* One record (a list element, or mqtt.tls): defaults, then the object's
 * keys, then the required keys that were missing, then the rows' rules.
 * `mprefix` ends in '.'. */
static proto_err apply_record(const conf_row *rows, size_t nrows, void *base, const cJSON *obj,
                              const char *mprefix, char *err, size_t errlen) {
    unsigned char seen[RECORD_MAX_ROWS] = {0};
    proto_err e = apply_defaults(rows, nrows, base, err, errlen);
    if (e == PROTO_OK) e = walk_object(rows, nrows, base, obj, "", mprefix, seen, err, errlen);
    if (e != PROTO_OK) return e;
    for (size_t i = 0; i < nrows; i++)
        if ((rows[i].flags & CONF_REQUIRED) && !seen[i])
            return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s%s: required", mprefix,
                              rows[i].path);
    return validate_rows(rows, nrows, base, mprefix, err, errlen);
}

typedef struct unique_key {
    const char *key;
    size_t index;
} unique_key;

static int unique_key_cmp(const void *a, const void *b) {
    const unique_key *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c != 0) return c;
    return (x->index > y->index) - (x->index < y->index);
}

/* The UNIQUE string row `row` differs across the `n` elements. Sorted, so
 * that 20000 bidders take milliseconds. Reports the first element (in
 * document order) that repeats an earlier one. */
static proto_err list_check_unique(const conf_list *l, const conf_row *row, const char *elems,
                                   size_t n, const char *path, char *err, size_t errlen) {
    if (n < 2) return PROTO_OK;
    unique_key *keys = malloc(n * sizeof *keys);
    if (keys == NULL) return no_memory(path, err, errlen);
    for (size_t i = 0; i < n; i++) {
        keys[i].key = get_ptr(elems + i * l->elem_size, row->offset);
        keys[i].index = i;
    }
    qsort(keys, n, sizeof *keys, unique_key_cmp);
    size_t dup = n;
    const char *key = NULL;
    for (size_t i = 1; i < n; i++)
        if (strcmp(keys[i - 1].key, keys[i].key) == 0 && keys[i].index < dup) {
            dup = keys[i].index;
            key = keys[i].key;
        }
    proto_err e = PROTO_OK;
    if (dup < n && (row->flags & CONF_SENSITIVE))
        e = proto_fail(err, errlen, PROTO_ERR_FIELD, "%s[%zu].%s: duplicate %s %s", path, dup,
                       row->path, l->what, row->path);
    else if (dup < n)
        e = proto_fail(err, errlen, PROTO_ERR_FIELD, "%s[%zu].%s: duplicate %s %s \"%s\"", path,
                       dup, row->path, l->what, row->path, key);
    free(keys);
    return e;
}

static void list_release(const conf_list *l, void *base, size_t offset) {
    char *elems = get_ptr(base, offset);
    size_t n = get_count(base, l->count_offset);
    for (size_t i = 0; elems != NULL && i < n; i++)
        release_rows(l->rows, l->nrows, elems + i * l->elem_size);
    free(elems);
    set_ptr(base, offset, NULL);
    set_count(base, l->count_offset, 0);
}

static proto_err apply_list(const conf_row *row, void *base, const cJSON *item, const char *path,
                            char *err, size_t errlen) {
    const conf_list *l = row->list;
    if (!cJSON_IsArray(item)) return bad_value(row, path, err, errlen);
    size_t n = 0;
    for (const cJSON *el = item->child; el != NULL; el = el->next)
        n++;
    /* Built aside, replacing the old list only when every element is valid. */
    char *elems = n > 0 ? calloc(n, l->elem_size) : NULL;
    if (n > 0 && elems == NULL) return no_memory(path, err, errlen);
    proto_err e = PROTO_OK;
    size_t i = 0;
    for (const cJSON *el = item->child; el != NULL && e == PROTO_OK; el = el->next, i++) {
        char prefix[PATH_BYTES];
        snprintf(prefix, sizeof prefix, "%s[%zu].", path, i);
        if (!cJSON_IsObject(el))
            e = proto_fail(err, errlen, PROTO_ERR_FIELD, "%s[%zu]: expected an object", path, i);
        else
            e = apply_record(l->rows, l->nrows, elems + i * l->elem_size, el, prefix, err, errlen);
        if (e == PROTO_OK && l->finish != NULL)
            e = l->finish(elems + i * l->elem_size, prefix, err, errlen);
    }
    for (size_t r = 0; r < l->nrows && e == PROTO_OK; r++)
        if (l->rows[r].flags & CONF_UNIQUE)
            e = list_check_unique(l, &l->rows[r], elems, n, path, err, errlen);
    if (e != PROTO_OK) {
        for (size_t j = 0; j < n; j++)
            release_rows(l->rows, l->nrows, elems + j * l->elem_size);
        free(elems);
        return e;
    }
    list_release(l, base, row->offset);
    set_ptr(base, row->offset, elems);
    set_count(base, l->count_offset, n);
    return PROTO_OK;
}

static proto_err apply_row(const conf_row *row, void *base, const cJSON *item, const char *path,
                           char *err, size_t errlen) {
    switch (row->type) {
    case CONF_INT:
        return apply_int(row, base, item, path, err, errlen);
    case CONF_NUMBER:
        if (cJSON_IsNull(item) && (row->flags & CONF_NULLABLE)) {
            *(double *)at(base, row->offset) = NAN;
            return PROTO_OK;
        }
        if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
            return bad_value(row, path, err, errlen);
        *(double *)at(base, row->offset) = item->valuedouble;
        return PROTO_OK;
    case CONF_BOOL:
        if (!cJSON_IsBool(item)) return bad_value(row, path, err, errlen);
        *(int *)at(base, row->offset) = cJSON_IsTrue(item) ? 1 : 0;
        return PROTO_OK;
    case CONF_MONEY:
        return apply_money(row, base, item, path, err, errlen);
    case CONF_STRING:
        return apply_string(row, base, item, path, err, errlen);
    case CONF_ENUM:
        return apply_enum(row, base, item, path, err, errlen);
    case CONF_STRINGS:
        return apply_strings(row, base, item, path, err, errlen);
    case CONF_LIST:
        return apply_list(row, base, item, path, err, errlen);
    case CONF_CUSTOM:
        return row->handler->apply(base, item, path, err, errlen);
    }
    return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: bad table row", path);
}

static proto_err apply_defaults(const conf_row *rows, size_t nrows, void *base, char *err,
                                size_t errlen) {
    for (size_t i = 0; i < nrows; i++) {
        if (rows[i].def == NULL) continue;
        cJSON *item = cJSON_Parse(rows[i].def);
        if (item == NULL) return no_memory(rows[i].path, err, errlen);
        proto_err e = apply_row(&rows[i], base, item, rows[i].path, err, errlen);
        cJSON_Delete(item);
        if (e != PROTO_OK) return e;
    }
    return PROTO_OK;
}

/* Look `key` up under the table prefix `tprefix` ("" or "mqtt."): the row
 * whose path is exactly tprefix+key, or else whether tprefix+key is a
 * section (a prefix of some row's path). */
static const conf_row *find_row(const conf_row *rows, size_t nrows, const char *tprefix,
                                const char *key, int *section) {
    size_t tlen = strlen(tprefix), klen = strlen(key);
    *section = 0;
    if (klen == 0 || strchr(key, '.') != NULL) return NULL;
    for (size_t i = 0; i < nrows; i++) {
        const char *p = rows[i].path;
        if (strncmp(p, tprefix, tlen) != 0 || strncmp(p + tlen, key, klen) != 0) continue;
        if (p[tlen + klen] == '\0') return &rows[i];
        if (p[tlen + klen] == '.') *section = 1;
    }
    return NULL;
}

/* Whether a sibling before `item` has its key. Earlier siblings all matched
 * the table, so this looks at a handful of keys at most. */
static int key_seen_before(const cJSON *obj, const cJSON *item) {
    for (const cJSON *c = obj->child; c != item; c = c->next)
        if (strcmp(c->string, item->string) == 0) return 1;
    return 0;
}

/* Apply every key of `obj` (an object at table prefix `tprefix`) to `base`.
 * Messages name mprefix+tprefix+key. `seen` (may be NULL) marks the rows set. */
static proto_err walk_object(const conf_row *rows, size_t nrows, void *base, const cJSON *obj,
                             const char *tprefix, const char *mprefix, unsigned char *seen,
                             char *err, size_t errlen) {
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        char path[PATH_BYTES];
        int section;
        if (snprintf(path, sizeof path, "%s%s%s", mprefix, tprefix, c->string) >= (int)sizeof path)
            proto_utf8_cut(path);
        const conf_row *row = find_row(rows, nrows, tprefix, c->string, &section);
        if (row == NULL && !section)
            return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: unknown key", path);
        if (key_seen_before(obj, c))
            return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: duplicate key", path);
        proto_err e;
        if (row != NULL) {
            e = apply_row(row, base, c, path, err, errlen);
            if (seen != NULL) seen[row - rows] = 1;
        } else if (!cJSON_IsObject(c)) {
            e = proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: expected an object", path);
        } else {
            /* A section is a prefix of a row path, so this fits. */
            char sub[PATH_BYTES];
            snprintf(sub, sizeof sub, "%s%s.", tprefix, c->string);
            e = walk_object(rows, nrows, base, c, sub, mprefix, seen, err, errlen);
        }
        if (e != PROTO_OK) return e;
    }
    return PROTO_OK;
}

/* ---- Copy and release, row by row --------------------------------------- */

static int copy_string(void *dst, const void *src, size_t offset) {
    const char *from = get_ptr(src, offset);
    char *to = from != NULL ? strdup(from) : NULL;
    set_ptr(dst, offset, to);
    return from != NULL && to == NULL ? -1 : 0;
}

static int copy_list(const conf_row *row, void *dst, const void *src) {
    const conf_list *l = row->list;
    const char *from = get_ptr(src, row->offset);
    size_t n = get_count(src, l->count_offset);
    if (n == 0) return 0;
    char *to = calloc(n, l->elem_size);
    if (to == NULL) return -1;
    /* Zeroed elements release fine, so the count is set before copying. */
    set_ptr(dst, row->offset, to);
    set_count(dst, l->count_offset, n);
    for (size_t i = 0; i < n; i++)
        if (copy_rows(l->rows, l->nrows, to + i * l->elem_size, from + i * l->elem_size) != 0)
            return -1;
    return 0;
}

static int copy_strings(const conf_row *row, void *dst, const void *src) {
    char **from = get_ptr(src, row->offset);
    size_t n = get_count(src, row->count_offset);
    if (n == 0) return 0;
    char **to = calloc(n, sizeof *to);
    if (to == NULL) return -1;
    set_ptr(dst, row->offset, to);
    set_count(dst, row->count_offset, n);
    for (size_t i = 0; i < n; i++) {
        to[i] = strdup(from[i]);
        if (to[i] == NULL) return -1;
    }
    return 0;
}

/* Fill the rows' fields of a zeroed `dst` from `src`. On -1 (memory) `dst`
 * holds what was copied so far and is safe to release. */
static int copy_rows(const conf_row *rows, size_t nrows, void *dst, const void *src) {
    static const size_t scalar_size[] = {
        [CONF_INT] = sizeof(long),      [CONF_NUMBER] = sizeof(double), [CONF_BOOL] = sizeof(int),
        [CONF_MONEY] = sizeof(int64_t), [CONF_ENUM] = sizeof(int),
    };
    for (size_t i = 0; i < nrows; i++) {
        const conf_row *row = &rows[i];
        int rc = 0;
        switch (row->type) {
        case CONF_INT:
        case CONF_NUMBER:
        case CONF_BOOL:
        case CONF_MONEY:
        case CONF_ENUM:
            memcpy(at(dst, row->offset), (const char *)src + row->offset, scalar_size[row->type]);
            break;
        case CONF_STRING:
            rc = copy_string(dst, src, row->offset);
            break;
        case CONF_STRINGS:
            rc = copy_strings(row, dst, src);
            break;
        case CONF_LIST:
            rc = copy_list(row, dst, src);
            break;
        case CONF_CUSTOM:
            rc = row->handler->copy(dst, src);
            break;
        }
        if (rc != 0) return -1;
    }
    return 0;
}

/* Free the rows' owned fields and zero them. */
static void release_rows(const conf_row *rows, size_t nrows, void *base) {
    for (size_t i = 0; i < nrows; i++) {
        const conf_row *row = &rows[i];
        switch (row->type) {
        case CONF_STRING:
            free(get_ptr(base, row->offset));
            set_ptr(base, row->offset, NULL);
            break;
        case CONF_STRINGS:
            strings_free(get_ptr(base, row->offset), get_count(base, row->count_offset));
            set_ptr(base, row->offset, NULL);
            set_count(base, row->count_offset, 0);
            break;
        case CONF_LIST:
            list_release(row->list, base, row->offset);
            break;
        case CONF_CUSTOM:
            row->handler->release(base);
            break;
        case CONF_INT:
        case CONF_NUMBER:
        case CONF_BOOL:
        case CONF_MONEY:
        case CONF_ENUM:
            break;
        }
    }
}

/* ---- mqtt.tls ----------------------------------------------------------- */

static proto_err tls_apply(void *base, const cJSON *item, const char *path, char *err,
                           size_t errlen) {
    proto_config *c = base;
    char prefix[PATH_BYTES];
    tls_release(c);
    if (cJSON_IsNull(item)) return PROTO_OK;
    if (!cJSON_IsObject(item))
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: %s", path, tls_handler.expect);
    snprintf(prefix, sizeof prefix, "%s.", path);
    proto_err e = apply_record(tls_rows, NROWS(tls_rows), c, item, prefix, err, errlen);
    if (e != PROTO_OK) return e;
    c->mqtt.tls = 1;
    return PROTO_OK;
}

/* mqtt.tls: a client certificate is a pair, one without the other cannot work. */
static proto_err tls_pair(const conf_row *row, const void *base, const char *path, char *err,
                          size_t errlen) {
    const proto_config *c = base;
    (void)row;
    if ((c->mqtt.tls_certfile == NULL) != (c->mqtt.tls_keyfile == NULL))
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: certfile and keyfile go together",
                          path);
    return PROTO_OK;
}

/* mqtt.password: the exchange hands the broker a password only with a user
 * name (rtb/mqtt.c; MQTT 3.1.1 section 3.1.2.9 forbids one alone), so a
 * password without mqtt.username would be dropped without a word. */
static proto_err password_needs_username(const conf_row *row, const void *base, const char *path,
                                         char *err, size_t errlen) {
    const proto_config *c = base;
    (void)row;
    if (c->mqtt.password != NULL && c->mqtt.username == NULL)
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "%s: set mqtt.username too (no password is sent without a user name)",
                          path);
    return PROTO_OK;
}

/* health.min_share: a share of auctions, more than none (a throttled bidder
 * must keep being measured, SPEC 13) and at most all. */
static proto_err share_0_1(const conf_row *row, const void *base, const char *path, char *err,
                           size_t errlen) {
    double v = *(const double *)((const char *)base + row->offset);
    if (!(v > 0 && v <= 1))
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "%s: expected a share of auctions, more than 0 and at most 1", path);
    return PROTO_OK;
}

/* alerts: at most PROTO_ALERT_MAX_RULES, as Redis alerts:rules holds
 * (SPEC 16): a config could not be written there whole otherwise. */
static proto_err alert_rules_max(const conf_row *row, const void *base, const char *path, char *err,
                                 size_t errlen) {
    (void)row;
    if (((const proto_config *)base)->nalerts > PROTO_ALERT_MAX_RULES)
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: at most %d rules", path,
                          PROTO_ALERT_MAX_RULES);
    return PROTO_OK;
}

/* One rule, applied whole (SPEC 16): exactly one of `threshold` and the
 * older `above` (which means op above: folded into op and threshold here),
 * and a `subject` only on a metric that has one value per advertiser. */
static proto_err alert_finish(void *elem, const char *mprefix, char *err, size_t errlen) {
    proto_alert_conf *r = elem;
    int has_threshold = !isnan(r->threshold), has_above = !isnan(r->above);
    if (has_threshold && has_above)
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "%sabove: give threshold (with op) or above, not both", mprefix);
    if (!has_threshold && !has_above)
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%sthreshold: required", mprefix);
    if (has_above && r->op != PROTO_ALERT_ABOVE)
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "%sabove: means op \"above\"; with op \"below\" give threshold", mprefix);
    if (has_above) r->threshold = r->above;
    if (r->subject != NULL && !proto_alert_per_advertiser(r->metric))
        return proto_fail(err, errlen, PROTO_ERR_FIELD,
                          "%ssubject: %s is exchange-wide: only per-advertiser metrics take a "
                          "subject",
                          mprefix, proto_alert_metric_str(r->metric));
    return PROTO_OK;
}

static int tls_copy(void *dst, const void *src) {
    ((proto_config *)dst)->mqtt.tls = ((const proto_config *)src)->mqtt.tls;
    return copy_rows(tls_rows, NROWS(tls_rows), dst, src);
}

static void tls_release(void *base) {
    release_rows(tls_rows, NROWS(tls_rows), base);
    ((proto_config *)base)->mqtt.tls = 0;
}

/* ---- bidders[].budget ---------------------------------------------------- */

static proto_err budget_apply(void *base, const cJSON *item, const char *path, char *err,
                              size_t errlen) {
    char prefix[PATH_BYTES];
    budget_release(base);
    if (cJSON_IsNull(item)) return PROTO_OK;
    if (!cJSON_IsObject(item))
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: %s", path, budget_handler.expect);
    snprintf(prefix, sizeof prefix, "%s.", path);
    return apply_record(budget_rows, NROWS(budget_rows), base, item, prefix, err, errlen);
}

static int budget_copy(void *dst, const void *src) {
    return copy_rows(budget_rows, NROWS(budget_rows), dst, src);
}

static void budget_release(void *base) {
    proto_bidder_conf *b = base;
    b->budget_daily_micros = 0;
    b->budget_pacing = PROTO_PACING_ASAP;
}

/* ---- auction.default_banner, auction.default_site ----------------------- */

/* Records replaced whole, like mqtt.tls: a key the object leaves out takes
 * its row's default (none for the banner's w and h, which are required). */
static proto_err record_apply(const conf_row *rows, size_t nrows, const conf_handler *h, void *base,
                              const cJSON *item, const char *path, char *err, size_t errlen) {
    char prefix[PATH_BYTES];
    if (!cJSON_IsObject(item))
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: %s", path, h->expect);
    snprintf(prefix, sizeof prefix, "%s.", path);
    return apply_record(rows, nrows, base, item, prefix, err, errlen);
}

static proto_err banner_apply(void *base, const cJSON *item, const char *path, char *err,
                              size_t errlen) {
    return record_apply(banner_rows, NROWS(banner_rows), &banner_handler, base, item, path, err,
                        errlen);
}

static int banner_copy(void *dst, const void *src) {
    return copy_rows(banner_rows, NROWS(banner_rows), dst, src);
}

static void banner_release(void *base) {
    release_rows(banner_rows, NROWS(banner_rows), base);
}

static proto_err site_apply(void *base, const cJSON *item, const char *path, char *err,
                            size_t errlen) {
    return record_apply(site_rows, NROWS(site_rows), &site_handler, base, item, path, err, errlen);
}

static int site_copy(void *dst, const void *src) {
    return copy_rows(site_rows, NROWS(site_rows), dst, src);
}

static void site_release(void *base) {
    release_rows(site_rows, NROWS(site_rows), base);
}

/* ---- profiles.default --------------------------------------------------- */

/* The profile stored on a miss (SPEC 3.2): checked key by key like the
 * rest, kept as the object itself since it is written out as JSON. */
static proto_err profile_apply(void *base, const cJSON *item, const char *path, char *err,
                               size_t errlen) {
    proto_config *c = base;
    if (!cJSON_IsObject(item))
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: %s", path, profile_handler.expect);
    for (const cJSON *k = item->child; k != NULL; k = k->next) {
        char sub[PATH_BYTES];
        proto_err e = PROTO_OK;
        snprintf(sub, sizeof sub, "%s.%s", path, k->string);
        if (strcmp(k->string, "interests") == 0)
            e = strings_check(k, 1, 128, sub, err, errlen);
        else if (strcmp(k->string, "ltv_score") == 0) {
            if (!proto_ltv_score_ok(k))
                e = proto_fail(err, errlen, PROTO_ERR_FIELD,
                               "%s: expected a number between 0 and 1", sub);
        } else if (strcmp(k->string, "demographics") == 0) {
            if (!cJSON_IsObject(k))
                e = proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: expected an object", sub);
        } else {
            e = proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: unknown key", sub);
        }
        if (e == PROTO_OK && key_seen_before(item, k))
            e = proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: duplicate key", sub);
        if (e != PROTO_OK) return e;
    }
    cJSON *copy = cJSON_Duplicate(item, 1);
    if (copy == NULL) return no_memory(path, err, errlen);
    /* The copy carries its key ("default"); a root object has none. */
    if (copy->string != NULL && !(copy->type & cJSON_StringIsConst)) cJSON_free(copy->string);
    copy->string = NULL;
    cJSON_Delete(c->profiles.default_profile);
    c->profiles.default_profile = copy;
    return PROTO_OK;
}

static int profile_copy(void *dst, const void *src) {
    const cJSON *from = ((const proto_config *)src)->profiles.default_profile;
    if (from == NULL) return 0;
    ((proto_config *)dst)->profiles.default_profile = cJSON_Duplicate(from, 1);
    return ((proto_config *)dst)->profiles.default_profile == NULL ? -1 : 0;
}

static void profile_release(void *base) {
    proto_config *c = base;
    cJSON_Delete(c->profiles.default_profile);
    c->profiles.default_profile = NULL;
}

/* ---- Public API --------------------------------------------------------- */

/* Apply a parsed document to `c` through a copy: all of it, or nothing. */
static proto_err apply_document(proto_config *c, const cJSON *root, char *err, size_t errlen) {
    proto_config tmp;
    if (!cJSON_IsObject(root))
        return proto_fail(err, errlen, PROTO_ERR_NOT_OBJECT,
                          "config: expected a JSON object at the top level");
    memset(&tmp, 0, sizeof tmp);
    if (copy_rows(config_rows, NROWS(config_rows), &tmp, c) != 0) {
        proto_config_free(&tmp);
        return no_memory("config", err, errlen);
    }
    proto_err e =
        walk_object(config_rows, NROWS(config_rows), &tmp, root, "", "", NULL, err, errlen);
    /* Rules across keys see the document applied whole, in any key order. */
    if (e == PROTO_OK) e = validate_rows(config_rows, NROWS(config_rows), &tmp, "", err, errlen);
    if (e != PROTO_OK) {
        proto_config_free(&tmp);
        return e;
    }
    proto_config_free(c);
    *c = tmp;
    return PROTO_OK;
}

proto_err proto_config_defaults(proto_config *c) {
    char err[256];
    memset(c, 0, sizeof *c);
    proto_err e = apply_defaults(config_rows, NROWS(config_rows), c, err, sizeof err);
    if (e == PROTO_OK) e = validate_rows(config_rows, NROWS(config_rows), c, "", err, sizeof err);
    if (e != PROTO_OK) {
        proto_config_free(c);
        /* A default breaking its own row is a bug the tests catch; at run
         * time the only failure is memory. */
        return PROTO_ERR_NOMEM;
    }
    return PROTO_OK;
}

proto_err proto_config_parse(proto_config *c, const char *json, size_t len, char *err,
                             size_t errlen) {
    cJSON *root;
    proto_err e = parse_json(json, len, "config", &root, err, errlen);
    if (e != PROTO_OK) return e;
    e = apply_document(c, root, err, errlen);
    cJSON_Delete(root);
    return e;
}

/* Nest the value as {"a":{"b":value}} for path "a.b" and apply that
 * document, so a single key goes through exactly the checks of a file. */
proto_err proto_config_set(proto_config *c, const char *path, const char *json_value, char *err,
                           size_t errlen) {
    if (path == NULL || path[0] == '\0')
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "config: empty key");
    if (json_value == NULL) json_value = "";
    cJSON *value;
    proto_err e = parse_json(json_value, strlen(json_value), path, &value, err, errlen);
    if (e != PROTO_OK) return e;
    char *parts = strdup(path);
    cJSON *root = cJSON_CreateObject();
    if (parts == NULL || root == NULL) {
        e = no_memory(path, err, errlen);
        goto out;
    }
    cJSON *cur = root;
    for (char *part = parts;;) {
        char *dot = strchr(part, '.');
        if (dot != NULL) *dot = '\0';
        if (part[0] == '\0') {
            e = proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: unknown key", path);
            goto out;
        }
        cJSON *next = dot != NULL ? cJSON_CreateObject() : value;
        if (next == NULL || !cJSON_AddItemToObject(cur, part, next)) {
            if (next != value) cJSON_Delete(next);
            e = no_memory(path, err, errlen);
            goto out;
        }
        if (dot == NULL) {
            value = NULL; /* owned by root now */
            break;
        }
        cur = next;
        part = dot + 1;
    }
    e = apply_document(c, root, err, errlen);
out:
    cJSON_Delete(value);
    cJSON_Delete(root);
    free(parts);
    return e;
}

static int print_rows(proto_buf *out, const conf_row *rows, size_t nrows, const char *prefix) {
    for (size_t i = 0; i < nrows; i++) {
        const conf_row *row = &rows[i];
        char about[256], sub[64];
        int rc;
        row_describe(row, about, sizeof about);
        if (row->flags & CONF_SENSITIVE)
            rc = proto_buf_printf(out, "  %s%s = (not shown)  (sensitive; %s)\n", prefix, row->path,
                                  about);
        else if (row->def != NULL)
            rc = proto_buf_printf(out, "  %s%s = %s  (%s)\n", prefix, row->path, row->def, about);
        else
            rc = proto_buf_printf(out, "  %s%s  (%s)\n", prefix, row->path, about);
        if (rc != 0) return -1;
        if (row->type == CONF_LIST) {
            snprintf(sub, sizeof sub, "%s%s[].", prefix, row->path);
            rc = print_rows(out, row->list->rows, row->list->nrows, sub);
        } else if (row->type == CONF_CUSTOM && row->handler->rows != NULL) {
            snprintf(sub, sizeof sub, "%s%s.", prefix, row->path);
            rc = print_rows(out, row->handler->rows, row->handler->nrows, sub);
        }
        if (rc != 0) return -1;
    }
    return 0;
}

int proto_config_print_keys(proto_buf *out) {
    return print_rows(out, config_rows, NROWS(config_rows), "");
}

static const char *name_of(const conf_name *names, int value) {
    for (const conf_name *n = names; n->name != NULL; n++)
        if (n->value == value) return n->name;
    return "unknown";
}

const char *proto_alert_metric_str(proto_alert_metric m) {
    return name_of(alert_metrics, (int)m);
}

const char *proto_alert_op_str(proto_alert_op op) {
    return name_of(alert_ops, (int)op);
}

const char *proto_alert_severity_str(proto_alert_severity s) {
    return name_of(alert_severities, (int)s);
}

const char *proto_alert_source_str(proto_alert_source s) {
    return name_of(alert_sources, (int)s);
}

int proto_alert_per_advertiser(proto_alert_metric m) {
    switch (m) {
    case PROTO_ALERT_BIDDER_TIMEOUT_RATE:
    case PROTO_ALERT_BIDDER_ERROR_RATE:
    case PROTO_ALERT_CTR:
    case PROTO_ALERT_CVR:
    case PROTO_ALERT_CPC:
    case PROTO_ALERT_SPEND_RATE:
    case PROTO_ALERT_WIN_RATE:
        return 1;
    case PROTO_ALERT_AUCTION_TIMEOUT_RATE:
    case PROTO_ALERT_NO_BID_RATE:
    case PROTO_ALERT_P99_LATENCY_MS:
    case PROTO_ALERT_METRIC_COUNT:
        break;
    }
    return 0;
}

/* A rule of the admin API or of Redis: the record of a config's alerts[]
 * (the same rows and finish), keys named without the "alerts[i]." prefix. */
proto_err proto_alert_decode(const char *json, size_t len, int stored, proto_alert_conf *out,
                             char *err, size_t errlen) {
    cJSON *root = NULL;
    memset(out, 0, sizeof *out);
    if (len > PROTO_ALERT_MAX_BYTES)
        return proto_fail(err, errlen, PROTO_ERR_TOO_LARGE, "rule: larger than %d bytes",
                          PROTO_ALERT_MAX_BYTES);
    proto_err e = parse_json(json, len, "rule", &root, err, errlen);
    if (e == PROTO_OK && !cJSON_IsObject(root))
        e = proto_fail(err, errlen, PROTO_ERR_NOT_OBJECT, "rule: expected a JSON object");
    if (e == PROTO_OK)
        e = apply_record(alert_rows, stored ? NROWS(alert_rows) : ALERT_ROWS_GIVEN, out, root, "",
                         err, errlen);
    if (e == PROTO_OK) e = alert_finish(out, "", err, errlen);
    if (e == PROTO_OK && !stored) out->source = PROTO_ALERT_FROM_API;
    cJSON_Delete(root);
    if (e != PROTO_OK) proto_alert_conf_free(out);
    return e;
}

cJSON *proto_alert_to_json(const proto_alert_conf *r) {
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    int ok =
        cJSON_AddStringToObject(o, "name", r->name) != NULL &&
        cJSON_AddStringToObject(o, "metric", proto_alert_metric_str(r->metric)) != NULL &&
        (r->subject != NULL ? cJSON_AddStringToObject(o, "subject", r->subject) != NULL
                            : cJSON_AddNullToObject(o, "subject") != NULL) &&
        cJSON_AddStringToObject(o, "op", proto_alert_op_str(r->op)) != NULL &&
        cJSON_AddNumberToObject(o, "threshold", r->threshold) != NULL &&
        cJSON_AddNumberToObject(o, "window_s", (double)r->window_s) != NULL &&
        cJSON_AddStringToObject(o, "severity", proto_alert_severity_str(r->severity)) != NULL &&
        cJSON_AddStringToObject(o, "message", r->message != NULL ? r->message : "") != NULL &&
        cJSON_AddStringToObject(o, "source", proto_alert_source_str(r->source)) != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int proto_alert_conf_copy(proto_alert_conf *dst, const proto_alert_conf *src) {
    memset(dst, 0, sizeof *dst);
    if (copy_rows(alert_rows, NROWS(alert_rows), dst, src) != 0) {
        proto_alert_conf_free(dst);
        return -1;
    }
    return 0;
}

void proto_alert_conf_free(proto_alert_conf *r) {
    if (r == NULL) return;
    release_rows(alert_rows, NROWS(alert_rows), r);
    memset(r, 0, sizeof *r);
}

/* An advertiser:targeting:{id} value (SPEC 6) is a `bidders` entry without
 * its id, which is the key's suffix: the same rows, minus the first. */
proto_err proto_advertiser_decode(const char *id, const char *json, size_t len,
                                  proto_bidder_conf *out, char *err, size_t errlen) {
    cJSON *root = NULL;
    cJSON *id_item = cJSON_CreateString(id != NULL ? id : "");
    memset(out, 0, sizeof *out);
    if (id_item == NULL) return no_memory("id", err, errlen);
    proto_err e = apply_row(&bidder_rows[0], out, id_item, "id", err, errlen);
    cJSON_Delete(id_item);
    if (e == PROTO_OK) e = parse_json(json, len, "advertiser", &root, err, errlen);
    if (e == PROTO_OK && !cJSON_IsObject(root))
        e = proto_fail(err, errlen, PROTO_ERR_NOT_OBJECT, "advertiser: expected a JSON object");
    if (e == PROTO_OK)
        e = apply_record(bidder_rows + 1, NROWS(bidder_rows) - 1, out, root, "", err, errlen);
    cJSON_Delete(root);
    if (e != PROTO_OK) proto_bidder_conf_free(out);
    return e;
}

void proto_bidder_conf_free(proto_bidder_conf *b) {
    if (b == NULL) return;
    release_rows(bidder_rows, NROWS(bidder_rows), b);
    memset(b, 0, sizeof *b);
}

void proto_config_free(proto_config *c) {
    if (c == NULL) return;
    release_rows(config_rows, NROWS(config_rows), c);
    memset(c, 0, sizeof *c);
}

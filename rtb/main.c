/* main.c -- rtb-exchange's command line (SPEC 7): read the config, apply
 * flag overrides, run the server. Exit codes: 0 clean shutdown, 1 runtime
 * failure, 2 bad command line or config. Every config rule is checked while
 * the config is read (proto/config.c's rows); only the mqtt.tls files are
 * checked later, when the MQTT client loads them. */
#include "rtb/alloc.h"
#include "rtb/conffile.h"
#include "rtb/log.h"
#include "rtb/ptimer.h"
#include "rtb/server.h"

#include <event2/event.h>
#include <mosquitto.h>

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CONFIG "conf/exchange.json"

static int usage(FILE *f) {
    fprintf(f,
            "Usage: rtb-exchange [-c FILE] [--mqtt HOST:PORT] [--redis HOST:PORT] [--tmax-ms N]\n"
            "                    [-v] [--version] [--help]\n"
            "\n"
            "A real-time bidding exchange: takes bid requests from MQTT (topic mqtt.topic),\n"
            "calls the eligible bidders over HTTP (OpenRTB 2.6) under a tmax deadline, runs\n"
            "a second-price auction and publishes each result on Redis channel\n"
            "auction:results:{request_id}.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE     JSON config file (default " DEFAULT_CONFIG "; when that\n"
            "                        default is absent, the built-in defaults below)\n"
            "      --mqtt HOST:PORT  broker address (overrides mqtt.host and mqtt.port)\n"
            "      --redis HOST:PORT Redis address (overrides redis.host and redis.port)\n"
            "      --tmax-ms N       auction deadline in ms (overrides auction.tmax_ms)\n"
            "  -v, --verbose         log at debug level\n"
            "      --version         print the version and the allocator in use, and exit\n"
            "  -h, --help            print this help and exit\n"
            "\n"
            "Environment: RTB_ADMIN_TOKEN, when set and not empty, is admin.token (the\n"
            "bearer token the admin API's writes need), replacing the config file's.\n"
            "\n"
            "Exit status: 0 clean shutdown (SIGINT/SIGTERM drains open auctions first),\n"
            "1 runtime failure (e.g. Redis or the broker refused the credentials),\n"
            "2 bad command line or config.\n"
            "\n"
            "Config keys and their defaults (see docs/protocol.md):\n");
    proto_buf keys;
    proto_buf_init(&keys);
    int rc = proto_config_print_keys(&keys);
    if (rc == 0) fputs(keys.data, f);
    proto_buf_free(&keys);
    if (rc != 0) fprintf(stderr, "rtb-exchange: out of memory\n");
    return rc;
}

/* RTB_ADMIN_TOKEN, when set and not empty, replaces admin.token (SPEC 16),
 * checked by the same row; the message never carries the value. */
static int token_from_env(proto_config *c, char *err, size_t errlen) {
    const char *token = getenv("RTB_ADMIN_TOKEN");
    if (!token || !*token) return 0;
    cJSON *s = cJSON_CreateString(token);
    char *json = s ? cJSON_PrintUnformatted(s) : NULL;
    char why[256];
    proto_err e =
        json ? proto_config_set(c, "admin.token", json, why, sizeof(why)) : PROTO_ERR_NOMEM;
    cJSON_free(json);
    cJSON_Delete(s);
    if (e == PROTO_OK) return 0;
    snprintf(err, errlen, "RTB_ADMIN_TOKEN: %s", e == PROTO_ERR_NOMEM ? "out of memory" : why);
    return -1;
}

/* Apply "HOST:PORT" to `prefix`.host and `prefix`.port. */
static int set_address(proto_config *c, const char *prefix, const char *addr, char *err,
                       size_t errlen) {
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1]) {
        snprintf(err, errlen, "--%s: expected HOST:PORT, got '%s'", prefix, addr);
        return -1;
    }
    cJSON *host = cJSON_CreateString("");
    size_t hostlen = (size_t)(colon - addr);
    if (addr[0] == '[' && hostlen > 2 && addr[hostlen - 1] == ']') { /* [::1]:1883 */
        addr++;
        hostlen -= 2;
    }
    char *hostbuf = strndup(addr, hostlen);
    char key[32];
    int rc = -1;
    if (host && hostbuf) {
        cJSON_SetValuestring(host, hostbuf);
        char *json = cJSON_PrintUnformatted(host);
        snprintf(key, sizeof(key), "%s.host", prefix);
        if (json && proto_config_set(c, key, json, err, errlen) == PROTO_OK) {
            snprintf(key, sizeof(key), "%s.port", prefix);
            if (proto_config_set(c, key, colon + 1, err, errlen) == PROTO_OK) rc = 0;
        }
        cJSON_free(json);
    }
    cJSON_Delete(host);
    free(hostbuf);
    return rc;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"mqtt", required_argument, NULL, 'm'},
        {"redis", required_argument, NULL, 'r'},  {"tmax-ms", required_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},      {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *mqtt_addr = NULL, *redis_addr = NULL, *tmax = NULL;
    int verbose = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'm':
            mqtt_addr = optarg;
            break;
        case 'r':
            redis_addr = optarg;
            break;
        case 't':
            tmax = optarg;
            break;
        case 'v':
            verbose = 1;
            break;
        case 'V':
            printf("rtb-exchange %s (allocator: %s)\n", RTB_VERSION, rtb_allocator());
            return 0;
        case 'h':
            return usage(stdout) == 0 ? 0 : 1;
        default:
            fprintf(stderr, "Try 'rtb-exchange --help'.\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rtb-exchange: unexpected argument '%s'. Try 'rtb-exchange --help'.\n",
                argv[optind]);
        return 2;
    }

    proto_config cfg;
    char err[512];
    if (proto_config_defaults(&cfg) != PROTO_OK) {
        fprintf(stderr, "rtb-exchange: out of memory\n");
        return 1;
    }
    const char *path = config_path ? config_path : DEFAULT_CONFIG;
    int use_file = config_path != NULL || access(DEFAULT_CONFIG, R_OK) == 0;
    if (use_file && rtb_conffile_load(&cfg, path, err, sizeof(err)) != PROTO_OK) {
        fprintf(stderr, "rtb-exchange: %s\n", err); /* it starts with the path */
        proto_config_free(&cfg);
        return 2;
    }
    if ((mqtt_addr && set_address(&cfg, "mqtt", mqtt_addr, err, sizeof(err)) != 0) ||
        (redis_addr && set_address(&cfg, "redis", redis_addr, err, sizeof(err)) != 0) ||
        (tmax && proto_config_set(&cfg, "auction.tmax_ms", tmax, err, sizeof(err)) != PROTO_OK) ||
        token_from_env(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "rtb-exchange: %s\n", err);
        proto_config_free(&cfg);
        return 2;
    }
    rtb_log_set_level(verbose ? PROTO_LOG_DEBUG : cfg.log.level);
    if (!use_file) rtb_log(PROTO_LOG_INFO, "no %s: using built-in defaults", DEFAULT_CONFIG);

    signal(SIGPIPE, SIG_IGN);
    mosquitto_lib_init();
    struct event_config *ecfg = event_config_new();
    /* No EVENT_BASE_FLAG_PRECISE_TIMER: with it libevent reprograms a timerfd
     * before every epoll_wait. The two timers that need precision (the
     * auctions' deadline, the loop lag probe) have timerfds of their own
     * (rtb/ptimer.h); the others are fine on the coarse clock. */
    /* Coalesce the add/remove of interest that evhttp does on every request
     * into one epoll_ctl per fd and loop pass. */
    event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    /* The deadline before a backlog (rtb/ptimer.h). */
    event_config_set_max_dispatch_interval(ecfg, NULL, RTB_LOOP_DISPATCH_MAX, RTB_LOOP_URGENT + 1);
    struct event_base *base = event_base_new_with_config(ecfg);
    event_config_free(ecfg);
    if (base && event_base_priority_init(base, RTB_LOOP_PRIORITIES) != 0) {
        event_base_free(base);
        base = NULL;
    }
    int code = 1;
    rtb_server *srv = base ? rtb_server_new(base, &cfg, err, sizeof(err)) : NULL;
    if (srv) {
        code = rtb_server_run(srv);
    } else {
        fprintf(stderr, "rtb-exchange: %s\n", base ? err : "cannot create the event loop");
        /* The mqtt.tls files are the one part of the config checked only
         * when put to use (rtb/mqtt.c loads them); still a config error
         * (SPEC 7: exit 2). */
        code = base && strncmp(err, "mqtt.tls", 8) == 0 ? 2 : 1;
    }
    rtb_server_free(srv);
    if (base) event_base_free(base);
    mosquitto_lib_cleanup();
    proto_config_free(&cfg);
    return code;
}

/* log.c -- one line per event on stderr: UTC time to the millisecond, level,
 * message. The level filter is the only state; it is set once from the
 * config (or -v) before the loop starts. */
#include "rtb/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static proto_log_level min_level = PROTO_LOG_INFO;

void rtb_log_set_level(proto_log_level level) {
    min_level = level;
}

int rtb_log_enabled(proto_log_level level) {
    return level >= min_level;
}

int64_t rtb_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t rtb_wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void rtb_log(proto_log_level level, const char *fmt, ...) {
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if (level < min_level) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);

    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03ldZ %-5s %s\n", when, ts.tv_nsec / 1000000, names[level], msg);
}

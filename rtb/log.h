/* log.h -- leveled, timestamped logging to stderr, and the two clocks.
 *
 * One line per event: "2026-11-25T10:46:26.123Z LEVEL message". The level
 * filter is the only state; it is set once from the config (or -v) before
 * the loop starts. Pure code never reads a clock: the loop's callbacks read
 * rtb_now_us() once and pass it down. */
#ifndef RTB_LOG_H
#define RTB_LOG_H

#include <stdint.h>

#include "proto/proto.h"

/* Set the lowest level written (config log.level; -v makes it debug). */
void rtb_log_set_level(proto_log_level level);
/* 1 when a message at `level` would be written. */
int rtb_log_enabled(proto_log_level level);
/* Write "2026-11-25T10:46:26.123Z LEVEL message" to stderr; messages over
 * 1 KiB are cut. */
void rtb_log(proto_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Monotonic microseconds (CLOCK_MONOTONIC), for deadlines and latency. */
int64_t rtb_now_us(void);
/* Wall-clock microseconds since the Unix epoch, for result timestamps. */
int64_t rtb_wall_us(void);

#endif

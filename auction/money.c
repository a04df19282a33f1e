/* money.c -- decimal amounts <-> int64 micros, exactly.
 *
 * JSON carries prices as decimal numbers and cJSON hands them over as
 * doubles. A double is not the decimal the sender wrote, but for any decimal
 * of up to 15 significant digits the shortest decimal that converts back to
 * the same double *is* the one the sender wrote. So: when value * 1e6 lies
 * within a rounding error of an integer (every decimal of at most 6 places
 * below 1e6 does), that integer is the answer; otherwise the shortest
 * round-tripping decimal is recovered with printf and scaled to micros in
 * integer arithmetic, rounding half up. A price typed as text (a tool's
 * command line) never becomes a double: auction_micros_parse reads its
 * digits straight into micros. */
#include "auction/auction.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* |value * 1e6 - n| below this means value is n micros exactly: the error of
 * the double product is at most ~2.5e-4 for values up to 1e6. */
#define NEAR_INTEGER 1e-3

static const int64_t pow10_i64[] = {
    INT64_C(1),
    INT64_C(10),
    INT64_C(100),
    INT64_C(1000),
    INT64_C(10000),
    INT64_C(100000),
    INT64_C(1000000),
    INT64_C(10000000),
    INT64_C(100000000),
    INT64_C(1000000000),
    INT64_C(10000000000),
    INT64_C(100000000000),
    INT64_C(1000000000000),
    INT64_C(10000000000000),
    INT64_C(100000000000000),
    INT64_C(1000000000000000),
    INT64_C(10000000000000000),
    INT64_C(100000000000000000),
    INT64_C(1000000000000000000),
};

/* The slow path: digits and exponent of the shortest round-tripping decimal,
 * then micros = digits * 10^(exp - ndigits + 1 + 6), rounded half up. */
static int micros_from_shortest_decimal(double value, int64_t *out) {
    char buf[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, value);
        if (strtod(buf, NULL) == value) break;
    }
    if (prec > 17) prec = 17;

    /* buf is "d.ddddde[+-]XX" */
    int64_t digits = 0;
    const char *p = buf;
    for (; *p && *p != 'e'; p++) {
        if (*p >= '0' && *p <= '9') digits = digits * 10 + (*p - '0');
    }
    if (*p != 'e') return -1;
    int exp10 = atoi(p + 1);
    int shift = exp10 - (prec - 1) + 6;

    if (shift >= 0) {
        if (shift > 18) return -1;
        if (digits > INT64_MAX / pow10_i64[shift]) return -1;
        *out = digits * pow10_i64[shift];
        return 0;
    }
    if (-shift > 18) { /* digits < 10^17: less than half a micro */
        *out = 0;
        return 0;
    }
    int64_t div = pow10_i64[-shift];
    int64_t q = digits / div, rem = digits % div;
    if (rem >= div - rem) q++; /* half up */
    *out = q;
    return 0;
}

int auction_micros_from_double(double value, int64_t *out) {
    if (!isfinite(value) || value < 0) return -1;
    if (value > 1.5e6) return -1; /* far above the maximum: no need to convert */

    double scaled = value * 1e6;
    double nearest = round(scaled); /* scaled >= 0: half up */
    int64_t micros;
    if (fabs(scaled - nearest) < NEAR_INTEGER) {
        micros = (int64_t)nearest;
    } else if (micros_from_shortest_decimal(value, &micros) != 0) {
        return -1;
    }
    if (micros > AUCTION_PRICE_MAX_MICROS) return -1;
    *out = micros;
    return 0;
}

int auction_micros_parse(const char *s, size_t len, int64_t *out) {
    const char *end = s + len;
    int64_t units = 0, frac = 0;
    int ndigits = 0, nfrac = 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++, ndigits++) {
        units = units * 10 + (*s - '0');
        if (units > AUCTION_PRICE_MAX_MICROS / pow10_i64[6]) return -1;
    }
    if (s < end && *s == '.') {
        for (s++; s < end && *s >= '0' && *s <= '9'; s++, nfrac++) {
            if (nfrac == 6) return -1;
            frac = frac * 10 + (*s - '0');
        }
    }
    if (s != end || ndigits == 0) return -1;
    int64_t micros = units * pow10_i64[6] + frac * pow10_i64[6 - nfrac];
    if (micros > AUCTION_PRICE_MAX_MICROS) return -1;
    *out = micros;
    return 0;
}

size_t auction_decimal_format(int64_t value, unsigned decimals, char *buf) {
    /* Digits are written backwards into a scratch buffer, then copied: no
     * printf on the hot path (a result prints four such numbers). */
    char tmp[AUCTION_MICROS_STRLEN];
    size_t n = 0;
    uint64_t mag = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    int started = 0; /* a non-zero fraction digit was written */
    for (unsigned d = 0; d < decimals; d++, mag /= 10) {
        unsigned digit = (unsigned)(mag % 10);
        if (digit || started) {
            tmp[n++] = (char)('0' + digit);
            started = 1;
        }
    }
    if (started) tmp[n++] = '.';
    do {
        tmp[n++] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag);
    if (value < 0) tmp[n++] = '-';
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

size_t auction_micros_format(int64_t micros, char *buf) {
    return auction_decimal_format(micros, 6, buf);
}

double auction_micros_to_double(int64_t micros) {
    return (double)micros / 1e6;
}

/* currency.c -- converting amounts between currencies, exactly (SPEC 17).
 *
 * One idea: a rate never becomes a double. It is read from its decimal text
 * into an integer holding 12 decimals (rate * 1e12), and a conversion is one
 * multiplication or division of integers in 128 bits, rounded once, half
 * up, to the micro:
 *
 *   direct  (from->to listed):   out = round(amount * rate / 1e12)
 *   inverse (only to->from):     out = round(amount * 1e12 / rate)
 *
 * With amount < 2^63 and rate < 2^63 every intermediate is below 2^106. The
 * table is a short array (a Prebid currency file has a few dozen rows)
 * searched linearly; conversions happen once per bid in another currency. */
#include "auction/auction.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__extension__ typedef unsigned __int128 u128;

int auction_currency_valid(const char *code) {
    if (!code) return 0;
    for (int i = 0; i < 3; i++)
        if (code[i] < 'A' || code[i] > 'Z') return 0;
    return code[3] == '\0';
}

void auction_rates_init(auction_rates *t, auction_rate *storage, size_t cap) {
    t->rates = storage;
    t->n = 0;
    t->cap = storage ? cap : 0;
}

static auction_rate *find_row(const auction_rates *t, const char *from, const char *to) {
    if (!t) return NULL;
    for (size_t i = 0; i < t->n; i++) {
        auction_rate *r = &t->rates[i];
        if (memcmp(r->from, from, 3) == 0 && memcmp(r->to, to, 3) == 0) return r;
    }
    return NULL;
}

auction_err auction_rates_set(auction_rates *t, const char *from, const char *to, int64_t rate) {
    if (!auction_currency_valid(from) || !auction_currency_valid(to)) return AUCTION_ERR_CURRENCY;
    if (rate <= 0) return AUCTION_ERR_RATE;
    auction_rate *r = find_row(t, from, to);
    if (!r) {
        if (t->n == t->cap) return AUCTION_ERR_FULL;
        r = &t->rates[t->n++];
        memcpy(r->from, from, 4);
        memcpy(r->to, to, 4);
    }
    r->rate = rate;
    return AUCTION_OK;
}

const auction_rate *auction_rates_find(const auction_rates *t, const char *from, const char *to) {
    if (!auction_currency_valid(from) || !auction_currency_valid(to)) return NULL;
    return find_row(t, from, to);
}

/* Scan `[0-9]+` from *p (bounded by end); returns the number of digits. */
static size_t scan_digits(const char **p, const char *end) {
    const char *s = *p;
    while (*p < end && **p >= '0' && **p <= '9')
        (*p)++;
    return (size_t)(*p - s);
}

/* The exponent is bounded while it is read: past this, a rate is out of
 * range (positive) or zero (negative) whatever its digits. */
#define EXP_CLAMP 100000

auction_err auction_rate_parse(const char *text, size_t len, int64_t *rate) {
    /* JSON number without the sign: (0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
    const char *p = text, *end = text + len;
    const char *int_digits = p;
    size_t nint = scan_digits(&p, end);
    if (nint == 0 || (nint > 1 && int_digits[0] == '0')) return AUCTION_ERR_RATE;
    const char *frac_digits = p;
    size_t nfrac = 0;
    if (p < end && *p == '.') {
        p++;
        frac_digits = p;
        nfrac = scan_digits(&p, end);
        if (nfrac == 0) return AUCTION_ERR_RATE;
    }
    long exp10 = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int neg = 0;
        if (p < end && (*p == '+' || *p == '-')) neg = *p++ == '-';
        const char *e = p;
        if (scan_digits(&p, end) == 0) return AUCTION_ERR_RATE;
        for (; e < p; e++)
            if (exp10 < EXP_CLAMP) exp10 = exp10 * 10 + (*e - '0');
        if (neg) exp10 = -exp10;
    }
    if (p != end) return AUCTION_ERR_RATE;

    /* The digits d[0..n) (integer part then fraction) stand for
     * 0.d * 10^(nint + exp10); scaled by 1e12, the first `keep` of them are
     * the integer part, the next decides the rounding. */
    size_t n = nint + nfrac;
    long keep = (long)nint + exp10 + AUCTION_RATE_DECIMALS;
    u128 acc = 0;
    int round_up = 0;
    for (size_t i = 0; i < n; i++) {
        char d = i < nint ? int_digits[i] : frac_digits[i - nint];
        if ((long)i < keep) {
            acc = acc * 10 + (unsigned)(d - '0');
            if (acc > INT64_MAX) return AUCTION_ERR_RATE;
        } else {
            /* keep < 0: the rounding digit is a zero before them all. */
            round_up = (long)i == keep && d >= '5';
            break;
        }
    }
    /* Digits end before the units of the scaled value: pad with zeros. */
    for (long i = (long)n; i < keep && acc != 0; i++) {
        acc *= 10;
        if (acc > INT64_MAX) return AUCTION_ERR_RATE;
    }
    acc += (unsigned)round_up;
    if (acc == 0 || acc > INT64_MAX) return AUCTION_ERR_RATE;
    *rate = (int64_t)acc;
    return AUCTION_OK;
}

auction_err auction_rate_from_double(double value, int64_t *rate) {
    if (!isfinite(value) || value <= 0) return AUCTION_ERR_RATE;
    if (value > 1e7) return AUCTION_ERR_RATE; /* above INT64_MAX / 1e12 already */
    /* The shortest "%.*e" text that reads back as the same double. */
    char buf[40];
    int prec;
    for (prec = 1; prec < 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, value);
        if (strtod(buf, NULL) == value) break;
    }
    int len = snprintf(buf, sizeof(buf), "%.*e", prec - 1, value);
    if (len <= 0 || (size_t)len >= sizeof(buf)) return AUCTION_ERR_RATE;
    return auction_rate_parse(buf, (size_t)len, rate);
}

/* num / den rounded half up; den > 0. */
static u128 div_half_up(u128 num, u128 den) {
    u128 q = num / den, r = num % den;
    if (r >= den - r) q++;
    return q;
}

auction_err auction_convert(const auction_rates *t, int64_t amount_micros, const char *from,
                            const char *to, int64_t *out_micros) {
    if (!auction_currency_valid(from) || !auction_currency_valid(to)) return AUCTION_ERR_CURRENCY;
    if (amount_micros < 0) return AUCTION_ERR_PRICE;
    if (memcmp(from, to, 3) == 0) {
        *out_micros = amount_micros;
        return AUCTION_OK;
    }
    u128 out;
    const auction_rate *r = find_row(t, from, to);
    if (r) {
        out = div_half_up((u128)amount_micros * (u128)r->rate, (u128)AUCTION_RATE_SCALE);
    } else if ((r = find_row(t, to, from)) != NULL) {
        out = div_half_up((u128)amount_micros * (u128)AUCTION_RATE_SCALE, (u128)r->rate);
    } else {
        return AUCTION_ERR_CURRENCY;
    }
    if (out > INT64_MAX) return AUCTION_ERR_PRICE;
    *out_micros = (int64_t)out;
    return AUCTION_OK;
}

/* rates.c -- the currency rates the exchange converts bids with (SPEC 17):
 * Redis currency:rates, {"USD":{"EUR":0.92,...},...}, the shape of the
 * Prebid currency file (whose published form wraps it in "conversions").
 *
 * The one idea: a rate must reach the exact converter as the decimal the
 * JSON wrote, never through a double (0.1 has no double). cJSON keeps only
 * the double, so the number's text is read from the input itself: the
 * numbers of a JSON text appear in it in the order a depth-first walk of the
 * parsed tree meets them, so the walk takes the next number token of the
 * text at each number node (and checks that the token reads as the node's
 * value, so the two cannot drift apart). The token is then written as a
 * plain decimal, exponent applied by moving the point: 6.28e-05 becomes
 * "0.0000628" digit for digit. */
#include <stdlib.h>
#include <string.h>

#include "proto/internal.h"
#include "proto/proto.h"

/* ---- Number tokens of the text ------------------------------------------ */

/* A cursor over the text that yields its number tokens in order: outside
 * strings, a number starts with '-' or a digit (true, false and null have
 * none) and runs over the characters a JSON number may hold. */
typedef struct tokens {
    const char *s;
    size_t n, i;
    int in_string;
} tokens;

static int next_number(tokens *t, const char **tok, size_t *len) {
    while (t->i < t->n) {
        char c = t->s[t->i];
        if (t->in_string) {
            if (c == '\\')
                t->i += 2;
            else {
                if (c == '"') t->in_string = 0;
                t->i++;
            }
            continue;
        }
        if (c == '"') {
            t->in_string = 1;
            t->i++;
            continue;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            size_t start = t->i;
            while (t->i < t->n && t->s[t->i] != '\0' && strchr("+-.0123456789eE", t->s[t->i]))
                t->i++;
            *tok = t->s + start;
            *len = t->i - start;
            return 1;
        }
        t->i++;
    }
    return 0;
}

/* Take the token of the number node `v` (the next one), checked against
 * its value. -1 when the text has none left or it disagrees. */
static int token_of(tokens *t, const cJSON *v, const char **tok, size_t *len) {
    char tmp[64];
    if (!next_number(t, tok, len)) return -1;
    if (*len < sizeof tmp) {
        memcpy(tmp, *tok, *len);
        tmp[*len] = '\0';
        if (strtod(tmp, NULL) != v->valuedouble) return -1;
    }
    return 0;
}

/* Step over every number under `v` (a member the decoder does not read). */
static int skip_numbers(tokens *t, const cJSON *v) {
    const char *tok;
    size_t len;
    if (cJSON_IsNumber(v)) return token_of(t, v, &tok, &len);
    for (const cJSON *c = v->child; c != NULL; c = c->next)
        if (skip_numbers(t, c) != 0) return -1;
    return 0;
}

/* ---- Plain decimal text ------------------------------------------------- */

/* Write the JSON number `tok` (`len` bytes, valid JSON number syntax) as a
 * plain decimal into `out` (PROTO_RATE_TEXT_MAX + 1 bytes): no sign, no
 * exponent, no leading zeros before a non-zero integer part, no trailing
 * fraction zeros. -1 when it is negative or zero, or longer than
 * PROTO_RATE_TEXT_MAX characters. */
static int plain_decimal(const char *tok, size_t len, char *out) {
    char digits[PROTO_RATE_TEXT_MAX * 2 + 8];
    size_t nd = 0, i = 0;
    long point = 0; /* digits before the decimal point */
    if (len > 0 && tok[0] == '-') return -1;
    for (; i < len && tok[i] >= '0' && tok[i] <= '9'; i++, point++)
        if (nd < sizeof digits) digits[nd++] = tok[i];
    if (i < len && tok[i] == '.')
        for (i++; i < len && tok[i] >= '0' && tok[i] <= '9'; i++)
            if (nd < sizeof digits) digits[nd++] = tok[i];
    if (nd == sizeof digits) return -1; /* too many digits to fit anyway */
    if (i < len && (tok[i] == 'e' || tok[i] == 'E')) {
        int neg = 0;
        long exp = 0;
        i++;
        if (i < len && (tok[i] == '+' || tok[i] == '-')) neg = tok[i++] == '-';
        for (; i < len && tok[i] >= '0' && tok[i] <= '9'; i++)
            if (exp < 1000) exp = exp * 10 + (tok[i] - '0');
        point += neg ? -exp : exp;
    }
    /* Drop leading zeros (each moves the point) and trailing ones. */
    size_t lead = 0;
    while (lead < nd && digits[lead] == '0') {
        lead++;
        point--;
    }
    while (nd > lead && digits[nd - 1] == '0')
        nd--;
    if (lead == nd) return -1; /* zero */
    const char *d = digits + lead;
    size_t n = nd - lead;
    /* The text: digits before the point (or "0"), then '.' and the rest. */
    size_t before = point > 0 ? (size_t)point : 0;
    size_t zeros_after = point < 0 ? (size_t)(-point) : 0;
    size_t after = n > before ? n - before : 0;
    if (before > PROTO_RATE_TEXT_MAX || zeros_after > PROTO_RATE_TEXT_MAX) return -1;
    size_t total = (before > 0 ? before : 1) + (after > 0 ? 1 + zeros_after + after : 0);
    if (total > PROTO_RATE_TEXT_MAX) return -1;
    char *p = out;
    if (before == 0) {
        *p++ = '0';
    } else {
        for (size_t k = 0; k < before; k++)
            *p++ = k < n ? d[k] : '0';
    }
    if (after > 0) {
        *p++ = '.';
        for (size_t k = 0; k < zeros_after; k++)
            *p++ = '0';
        for (size_t k = before; k < n; k++)
            *p++ = d[k];
    }
    *p = '\0';
    return 0;
}

/* ---- The table ------------------------------------------------------------ */

/* 1 when an earlier sibling of `item` has its key. */
static int key_seen_before(const cJSON *obj, const cJSON *item) {
    for (const cJSON *c = obj->child; c != item; c = c->next)
        if (strcmp(c->string, item->string) == 0) return 1;
    return 0;
}

/* The "to" object of one "from" currency: each rate into out->rates. */
static proto_err read_to(tokens *t, const cJSON *from, proto_rates *out, char *err, size_t errlen) {
    size_t count = 0, k = 0;
    if (!cJSON_IsObject(from))
        return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: must be an object of rates",
                          from->string);
    for (const cJSON *to = from->child; to != NULL; to = to->next, k++) {
        if (!proto_currency_ok(to->string))
            return proto_fail(err, errlen, PROTO_ERR_FIELD,
                              "%s: key %zu is not a currency code (3 capital letters)",
                              from->string, k);
        if (key_seen_before(from, to))
            return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s.%s: duplicate", from->string,
                              to->string);
        if (++count > PROTO_RATES_CURRENCIES_MAX)
            return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: more than %d rates", from->string,
                              PROTO_RATES_CURRENCIES_MAX);
        const char *tok;
        size_t len;
        proto_rate *r = &out->rates[out->n];
        if (!cJSON_IsNumber(to) || to->valuedouble <= 0)
            return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s.%s: must be a number above 0",
                              from->string, to->string);
        if (token_of(t, to, &tok, &len) != 0)
            return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s.%s: number text not found",
                              from->string, to->string);
        if (plain_decimal(tok, len, r->text) != 0)
            return proto_fail(err, errlen, PROTO_ERR_FIELD,
                              "%s.%s: must be a number above 0 of at most %d characters as a "
                              "plain decimal",
                              from->string, to->string, PROTO_RATE_TEXT_MAX);
        memcpy(r->from, from->string, 4);
        memcpy(r->to, to->string, 4);
        out->n++;
    }
    return PROTO_OK;
}

/* The object of "from" currencies (the numbers of the text before it were
 * already stepped over). */
static proto_err read_table(tokens *t, const cJSON *table, proto_rates *out, char *err,
                            size_t errlen) {
    size_t count = 0, k = 0;
    for (const cJSON *from = table->child; from != NULL; from = from->next, k++) {
        if (!proto_currency_ok(from->string))
            return proto_fail(err, errlen, PROTO_ERR_FIELD,
                              "rates: key %zu is not a currency code (3 capital letters)", k);
        if (key_seen_before(table, from))
            return proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: duplicate", from->string);
        if (++count > PROTO_RATES_CURRENCIES_MAX)
            return proto_fail(err, errlen, PROTO_ERR_FIELD, "rates: more than %d currencies",
                              PROTO_RATES_CURRENCIES_MAX);
        proto_err e = read_to(t, from, out, err, errlen);
        if (e != PROTO_OK) return e;
    }
    return PROTO_OK;
}

proto_err proto_currency_rates_decode(const char *json, size_t len, proto_rates *out, char *err,
                                      size_t errlen) {
    memset(out, 0, sizeof *out);
    proto_clear_err(err, errlen);
    if (len > PROTO_RATES_MAX_BYTES)
        return proto_fail(err, errlen, PROTO_ERR_TOO_LARGE, "rates: over %d bytes",
                          PROTO_RATES_MAX_BYTES);
    proto_json_error je;
    cJSON *root = proto_json_parse(json, len, &je);
    if (root == NULL)
        return proto_fail(err, errlen, PROTO_ERR_NOT_JSON, "rates: %s",
                          proto_json_fault_str(je.fault));
    proto_err e = PROTO_OK;
    tokens t = {json, len, 0, 0};
    const cJSON *table = root;
    if (!cJSON_IsObject(root)) {
        e = proto_fail(err, errlen, PROTO_ERR_NOT_OBJECT, "rates: must be a JSON object");
        goto out;
    }
    const cJSON *conv = proto_json_get(root, "conversions");
    if (conv != NULL) {
        /* Prebid's file: step over the numbers of the members before it. */
        if (!cJSON_IsObject(conv)) {
            e = proto_fail(err, errlen, PROTO_ERR_FIELD, "conversions: must be an object");
            goto out;
        }
        for (const cJSON *c = root->child; c != conv && e == PROTO_OK; c = c->next)
            if (skip_numbers(&t, c) != 0)
                e = proto_fail(err, errlen, PROTO_ERR_FIELD, "%s: number text not found",
                               c->string);
        table = conv;
    }
    size_t most = (size_t)PROTO_RATES_CURRENCIES_MAX * PROTO_RATES_CURRENCIES_MAX;
    if (e == PROTO_OK && table->child != NULL) {
        out->rates = malloc(most * sizeof *out->rates);
        if (out->rates == NULL)
            e = proto_fail(err, errlen, PROTO_ERR_NOMEM, "rates: out of memory");
    }
    if (e == PROTO_OK && table->child != NULL) e = read_table(&t, table, out, err, errlen);
    if (e == PROTO_OK && out->n > 0) {
        proto_rate *fit = realloc(out->rates, out->n * sizeof *fit);
        if (fit != NULL) out->rates = fit;
    }
out:
    cJSON_Delete(root);
    if (e != PROTO_OK) proto_currency_rates_free(out);
    return e;
}

void proto_currency_rates_free(proto_rates *r) {
    if (r == NULL) return;
    free(r->rates);
    r->rates = NULL;
    r->n = 0;
}

/* fuzz_common.c -- the checks every fuzz target shares (fuzz_common.h).
 *
 * The one idea: an encoder's output is checked by a parser that is not
 * ours (cJSON, strict: one value, nothing after it) plus the checks cJSON
 * does not make (UTF-8, no raw control characters), so a bug cannot hide by
 * being symmetric. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/internal.h"
#include "tests/fuzz/fuzz_common.h"

void fuzz_check(int ok, const char *what) {
    if (ok) return;
    fprintf(stderr, "fuzz: broken invariant: %s\n", what);
    abort();
}

int fuzz_utf8_ok(const char *s, size_t n) {
    return proto_utf8_valid(s, n);
}

cJSON *fuzz_parse_output(const proto_buf *b, const char *who) {
    char what[128];
    snprintf(what, sizeof what, "%s: output is not one JSON object in UTF-8", who);
    fuzz_check(b->data != NULL && b->len > 0 && b->data[b->len] == '\0', what);
    fuzz_check(strlen(b->data) == b->len, what);
    fuzz_check(fuzz_utf8_ok(b->data, b->len), what);
    /* cJSON takes raw control characters inside strings; RFC 8259 does not.
     * Our encoders write compact JSON, so no byte below 0x20 belongs there. */
    for (size_t i = 0; i < b->len; i++)
        if ((unsigned char)b->data[i] < 0x20) {
            fprintf(stderr, "fuzz: %s wrote a raw control character at byte %zu\n", who, i);
            fuzz_check(0, what);
        }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(b->data, &end, 1);
    if (root == NULL || !cJSON_IsObject(root)) {
        fprintf(stderr, "fuzz: %s wrote: %s\n", who, b->data);
        fuzz_check(0, what);
    }
    return root;
}

const char *fuzz_get_string(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v)) {
        fprintf(stderr, "fuzz: \"%s\" is not a string\n", key);
        abort();
    }
    return v->valuestring;
}

double fuzz_get_number(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) {
        fprintf(stderr, "fuzz: \"%s\" is not a number\n", key);
        abort();
    }
    return v->valuedouble;
}

int fuzz_same_string(const char *a, const char *b) {
    if (a == NULL || b == NULL) return a == b;
    return strcmp(a, b) == 0;
}

size_t fuzz_utf8_chars(const char *s) {
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

int fuzz_key_id_ok(const char *s) {
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];
        if (!(isascii(c) && (isalnum(c) || c == '.' || c == '_' || c == ':' || c == '-'))) return 0;
    }
    return n >= 1 && n <= 128;
}

int fuzz_url_ok(const char *s) {
    char scheme[9] = {0};
    size_t i = 0;
    while (i < 8 && s[i] != '\0') {
        scheme[i] = (char)tolower((unsigned char)s[i]);
        i++;
    }
    const char *a;
    if (strncmp(scheme, "https://", 8) == 0)
        a = s + 8;
    else if (strncmp(scheme, "http://", 7) == 0)
        a = s + 7;
    else
        return 0;
    for (const char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7F) return 0;
    /* authority: up to the first '/', '?' or '#' */
    size_t n = 0;
    while (a[n] != '\0' && a[n] != '/' && a[n] != '?' && a[n] != '#')
        n++;
    size_t host_len;
    if (n > 0 && a[0] == '[') {
        size_t close = 1;
        while (close < n && a[close] != ']') {
            if (!isxdigit((unsigned char)a[close]) && a[close] != ':' && a[close] != '.') return 0;
            close++;
        }
        if (close == n || close == 1) return 0;
        host_len = close + 1;
    } else {
        host_len = 0;
        while (host_len < n && a[host_len] != ':') {
            if (a[host_len] == '@' || a[host_len] == '[' || a[host_len] == ']') return 0;
            host_len++;
        }
        if (host_len == 0) return 0;
    }
    if (host_len == n) return 1;
    if (a[host_len] != ':') return 0;
    const char *port = a + host_len + 1;
    size_t digits = n - host_len - 1;
    if (digits < 1 || digits > 5) return 0;
    long v = 0;
    for (size_t d = 0; d < digits; d++) {
        if (!isdigit((unsigned char)port[d])) return 0;
        v = v * 10 + (port[d] - '0');
    }
    return v >= 1 && v <= 65535;
}

const proto_config *fuzz_default_config(void) {
    static proto_config cfg;
    static int made;
    if (!made) {
        fuzz_check(proto_config_defaults(&cfg) == PROTO_OK, "config: defaults");
        made = 1;
    }
    return &cfg;
}

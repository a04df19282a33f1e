/* fuzz_common.c -- the checks every fuzz target shares (fuzz_common.h).
 *
 * The one idea: an encoder's output is checked by a parser that is not
 * ours (cJSON, strict: one value, nothing after it) plus the checks cJSON
 * does not make (UTF-8, no raw control characters), so a bug cannot hide by
 * being symmetric. */
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

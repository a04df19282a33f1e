/* buf.c -- bytes in and bytes out: the output buffer every encoder appends
 * to, JSON string escaping, and the checks every decoder runs before cJSON.
 *
 * The one idea: nothing reaches cJSON or a socket unchecked. Output goes
 * through proto_buf, which keeps `data` NUL-terminated and leaves the buffer
 * as it was when memory runs out; input goes through proto_json_parse, which
 * refuses NUL bytes, control characters, invalid UTF-8 and trailing garbage
 * that cJSON alone would let through or silently truncate. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

/* Module-private (declared again where used; proto.h is the public API). */
cJSON *proto_json_parse(const char *text, size_t len, const char **why);

/* ---- Output buffer ------------------------------------------------------ */

void proto_buf_init(proto_buf *b) {
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void proto_buf_reset(proto_buf *b) {
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void proto_buf_free(proto_buf *b) {
    free(b->data);
    proto_buf_init(b);
}

/* Make room for `extra` more bytes plus the terminating NUL. */
static int buf_reserve(proto_buf *b, size_t extra) {
    if (extra > SIZE_MAX - b->len - 1)
        return -1;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int proto_buf_append(proto_buf *b, const char *s, size_t n) {
    if (buf_reserve(b, n) != 0)
        return -1;
    if (n > 0)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int proto_buf_puts(proto_buf *b, const char *s) { return proto_buf_append(b, s, strlen(s)); }

int proto_buf_printf(proto_buf *b, const char *fmt, ...) {
    if (buf_reserve(b, 0) != 0)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    va_list again;
    va_copy(again, ap);
    size_t room = b->cap - b->len;
    int n = vsnprintf(b->data + b->len, room, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n >= room) {
        if (buf_reserve(b, (size_t)n) == 0)
            n = vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
        else
            n = -1;
    }
    va_end(again);
    if (n < 0) {
        b->data[b->len] = '\0';
        return -1;
    }
    b->len += (size_t)n;
    return 0;
}

int proto_buf_json_string(proto_buf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    static const char short_from[] = "\"\\\b\f\n\r\t", short_to[] = "\"\\bfnrt";
    size_t start = b->len;
    if (s == NULL)
        s = "";
    if (proto_buf_append(b, "\"", 1) != 0)
        return -1;
    const char *run = s; /* bytes that need no escape are copied in runs */
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (proto_buf_append(b, run, (size_t)(p - run)) != 0)
            goto fail;
        if (c == '\0')
            break;
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t n = 2;
        const char *named = strchr(short_from, c); /* c is not NUL here */
        if (named != NULL) {
            esc[1] = short_to[named - short_from];
        } else {
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            n = 6;
        }
        if (proto_buf_append(b, esc, n) != 0)
            goto fail;
        run = p + 1;
    }
    if (proto_buf_append(b, "\"", 1) != 0)
        goto fail;
    return 0;
fail:
    b->len = start;
    b->data[start] = '\0';
    return -1;
}

int proto_buf_micros(proto_buf *b, int64_t micros) {
    char tmp[AUCTION_MICROS_STRLEN];
    size_t n = auction_micros_format(micros, tmp);
    return proto_buf_append(b, tmp, n);
}

/* ---- Errors ------------------------------------------------------------- */

const char *proto_strerror(proto_err err) {
    switch (err) {
    case PROTO_OK:
        return "ok";
    case PROTO_ERR_TOO_LARGE:
        return "input too large";
    case PROTO_ERR_NOT_JSON:
        return "not valid JSON";
    case PROTO_ERR_NOT_OBJECT:
        return "not a JSON object";
    case PROTO_ERR_FIELD:
        return "a field breaks a rule";
    case PROTO_ERR_NOMEM:
        return "out of memory";
    case PROTO_ERR_IO:
        return "cannot read file";
    }
    return "unknown error";
}

/* ---- Input checks ------------------------------------------------------- */

/* 0 when `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF) with no control character other than
 * tab, newline and carriage return (JSON allows no other one, raw, anywhere);
 * 1 on a UTF-8 error, 2 on a control character. */
static int text_check(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
                return 2;
            i++;
            continue;
        }
        size_t more;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            more = 1, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            more = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 1; /* continuation byte, 0xc0/0xc1 or 0xf5.. */
        }
        if (n - i - 1 < more)
            return 1;
        for (size_t k = 1; k <= more; k++) {
            unsigned cc = s[i + k];
            if ((cc & 0xc0) != 0x80)
                return 1;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 1;
        i += more + 1;
    }
    return 0;
}

static int json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Parse `len` bytes (not necessarily NUL-terminated) as exactly one JSON
 * value. Returns the tree (the caller cJSON_Deletes it), or NULL with *why
 * set to "contains a NUL byte", "not valid UTF-8" or "not valid JSON" (bad
 * syntax, trailing non-whitespace, nesting over CJSON_NESTING_LIMIT, or
 * cJSON out of memory, which it does not tell apart). */
cJSON *proto_json_parse(const char *text, size_t len, const char **why) {
    if (text == NULL)
        len = 0;
    if (len > 0 && memchr(text, '\0', len) != NULL) {
        *why = "contains a NUL byte";
        return NULL;
    }
    int bad = text_check((const unsigned char *)text, len);
    if (bad != 0) {
        *why = bad == 1 ? "not valid UTF-8" : "not valid JSON";
        return NULL;
    }
    *why = "not valid JSON";
    if (len == 0)
        return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (root == NULL)
        return NULL;
    if (end == NULL)
        end = text + len;
    for (const char *p = end; p < text + len; p++) {
        if (!json_space(*p)) {
            cJSON_Delete(root);
            return NULL;
        }
    }
    return root;
}

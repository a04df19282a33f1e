/* buf.c -- bytes in and bytes out: the output buffer every encoder appends
 * to, JSON string escaping, the one gate every decoder parses through, and
 * the small helpers the decoders share (internal.h).
 *
 * The one idea: nothing reaches cJSON or a socket unchecked. Output goes
 * through proto_buf, which keeps `data` NUL-terminated and leaves the buffer
 * as it was when memory runs out; input goes through proto_json_parse, which
 * refuses NUL bytes, "\u0000" escapes, control characters, invalid UTF-8 and
 * trailing garbage that cJSON alone would let through or silently truncate,
 * and says which byte it refused. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/internal.h"
#include "proto/proto.h"

/* ---- Output buffer ------------------------------------------------------ */

void proto_buf_init(proto_buf *b) {
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void proto_buf_reset(proto_buf *b) {
    b->len = 0;
    if (b->data != NULL) b->data[0] = '\0';
}

void proto_buf_free(proto_buf *b) {
    free(b->data);
    proto_buf_init(b);
}

/* Make room for `extra` more bytes plus the terminating NUL. */
static int buf_reserve(proto_buf *b, size_t extra) {
    if (extra > SIZE_MAX - b->len - 1) return -1;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int proto_buf_append(proto_buf *b, const char *s, size_t n) {
    if (buf_reserve(b, n) != 0) return -1;
    if (n > 0) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int proto_buf_puts(proto_buf *b, const char *s) {
    return proto_buf_append(b, s, strlen(s));
}

int proto_buf_uint(proto_buf *b, uint64_t v) {
    char digits[AUCTION_MICROS_STRLEN];
    return proto_buf_append(b, digits, auction_decimal_format((int64_t)v, 0, digits));
}

int proto_buf_printf(proto_buf *b, const char *fmt, ...) {
    if (buf_reserve(b, 0) != 0) return -1;
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
    if (s == NULL) s = "";
    /* Nearly every string (ids, URLs, names) needs no escape: one copy. */
    const unsigned char *q = (const unsigned char *)s;
    while (*q >= 0x20 && *q != '"' && *q != '\\')
        q++;
    if (*q == '\0') {
        size_t n = (size_t)(q - (const unsigned char *)s);
        if (n > SIZE_MAX - 2 || buf_reserve(b, n + 2) != 0) return -1;
        char *d = b->data + b->len;
        d[0] = '"';
        memcpy(d + 1, s, n);
        d[n + 1] = '"';
        d[n + 2] = '\0';
        b->len += n + 2;
        return 0;
    }
    if (proto_buf_append(b, "\"", 1) != 0) return -1;
    const char *run = s; /* bytes that need no escape are copied in runs */
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (proto_buf_append(b, run, (size_t)(p - run)) != 0) goto fail;
        if (c == '\0') break;
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
        if (proto_buf_append(b, esc, n) != 0) goto fail;
        run = p + 1;
    }
    if (proto_buf_append(b, "\"", 1) != 0) goto fail;
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

static void vset_err(char *err, size_t errlen, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void vset_err(char *err, size_t errlen, const char *fmt, va_list ap) {
    if (err != NULL && errlen > 0 && vsnprintf(err, errlen, fmt, ap) >= (int)errlen)
        proto_utf8_cut(err); /* truncated: never end a message mid-character */
}

void proto_clear_err(char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
}

void proto_set_err(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset_err(err, errlen, fmt, ap);
    va_end(ap);
}

proto_err proto_fail(char *err, size_t errlen, proto_err code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset_err(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- Input checks ------------------------------------------------------- */

/* Length of the UTF-8 sequence at `s` (`n` >= 1 bytes there), or 0 when it
 * is not well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t more;
    uint32_t cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        more = 1, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        more = 2, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        more = 3, cp = c & 0x07, min = 0x10000;
    } else {
        return 0; /* continuation byte, 0xc0/0xc1 or 0xf5.. */
    }
    if (n - 1 < more) return 0;
    for (size_t k = 1; k <= more; k++) {
        unsigned cc = s[k];
        if ((cc & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return more + 1;
}

void proto_utf8_cut(char *s) {
    size_t n = strlen(s), lead = n;
    while (lead > 0 && n - lead < 4 && ((unsigned char)s[lead - 1] & 0xc0) == 0x80)
        lead--;
    if (lead > 0 && (unsigned char)s[lead - 1] >= 0xc0)
        lead--; /* the lead byte of the last sequence */
    else if (lead == n || lead == 0)
        return; /* ends in ASCII, or nothing to anchor on */
    if (utf8_seq((const unsigned char *)s + lead, n - lead) != n - lead) s[lead] = '\0';
}

int proto_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t step = utf8_seq(p + i, n - i);
        if (step == 0) return 0;
        i += step;
    }
    return 1;
}

/* 1 for printable ASCII other than '\\': bytes text_check skips. */
static const unsigned char plain_byte[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* 1 when one of the 8 bytes of `w` is not plain (plain_byte): a control
 * byte, a byte >= 0x80 or '\\'. The exact zero-byte tests of "Bit
 * Twiddling Hacks" (haszero, hasless), so no plain word is ever missed. */
static int word_has_special(uint64_t w) {
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t backslash = w ^ (ones * '\\');
    uint64_t special = ((w - ones * 0x20) & ~w) | ((backslash - ones) & ~backslash) | w;
    return (special & highs) != 0;
}

/* The first byte of `n` at `s` that cJSON must not see, in order: a NUL, a
 * byte that is not UTF-8, a control character other than tab, newline and
 * carriage return (JSON allows no other one, raw, anywhere; cJSON would skip
 * it as whitespace), or a "\u0000" escape. A backslash and the byte it
 * escapes are skipped together (a backslash outside a string is no JSON:
 * cJSON refuses it), so strings need not be tracked. PROTO_JSON_OK when
 * there is none; else the fault, its offset in *at. */
static proto_json_fault text_check(const unsigned char *s, size_t n, size_t *at) {
    size_t i = 0;
    *at = 0;
    while (i < n) {
        /* Fast path: printable ASCII other than '\\' needs no check; it is
         * nearly all of a bid request or response: 8 bytes at a time. */
        for (uint64_t w; n - i >= 8; i += 8) {
            memcpy(&w, s + i, 8);
            if (word_has_special(w)) break;
        }
        while (i < n && plain_byte[s[i]])
            i++;
        if (i == n) break;
        unsigned c = s[i];
        proto_json_fault fault = PROTO_JSON_OK;
        size_t step = 1;
        if (c == 0) {
            fault = PROTO_JSON_NUL;
        } else if (c >= 0x80) {
            step = utf8_seq(s + i, n - i);
            fault = step == 0 ? PROTO_JSON_UTF8 : PROTO_JSON_OK;
        } else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
            fault = PROTO_JSON_SYNTAX;
        } else if (c == '\\' && i + 1 < n && s[i + 1] >= 0x20 && s[i + 1] < 0x80) {
            /* An escape: skip the escaped byte, so that "\\u0000" is text.
             * Outside a string a backslash is not JSON at all (cJSON refuses
             * it), so strings need not be tracked. */
            if (s[i + 1] == 'u' && n - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0)
                fault = PROTO_JSON_NUL_ESCAPE;
            step = 2;
        }
        if (fault != PROTO_JSON_OK) {
            *at = i;
            return fault;
        }
        i += step;
    }
    return PROTO_JSON_OK;
}

static int json_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Offset of the first byte from `i` on that is not JSON whitespace, or `n`. */
static size_t skip_space(const char *s, size_t i, size_t n) {
    while (i < n && json_space(s[i]))
        i++;
    return i;
}

int proto_json_blank(const char *s, size_t n) {
    return skip_space(s, 0, n) == n;
}

/* ---- Scratch arena for short-lived trees -------------------------------- */

/* The one piece of process-wide state in proto/: cJSON's allocator hooks are
 * global, so the arena they draw on is too. Installed on first use; outside
 * a scratch scope the hooks are plain malloc and free. */
#define SCRATCH_BYTES (64 * 1024)
static struct {
    _Alignas(16) unsigned char buf[SCRATCH_BYTES];
    size_t used;
    int active;
    int installed;
} scratch;

static void *scratch_malloc(size_t n) {
    size_t need = (n + 15) & ~(size_t)15;
    if (scratch.active && need <= SCRATCH_BYTES - scratch.used) {
        void *p = scratch.buf + scratch.used;
        scratch.used += need;
        return p;
    }
    return malloc(n);
}

static void scratch_free(void *p) {
    unsigned char *c = p;
    if (c >= scratch.buf && c < scratch.buf + SCRATCH_BYTES)
        return; /* reclaimed all at once by proto_json_scratch_end */
    free(p);
}

static void scratch_install(void) {
    if (scratch.installed) return;
    cJSON_Hooks hooks = {scratch_malloc, scratch_free};
    cJSON_InitHooks(&hooks);
    scratch.installed = 1;
}

int proto_json_scratch_begin(void) {
    if (scratch.active) return 0;
    scratch_install();
    scratch.active = 1;
    scratch.used = 0;
    return 1;
}

void proto_json_scratch_end(void) {
    scratch.active = 0;
    scratch.used = 0;
}

size_t proto_json_values_max(const char *text, size_t n) {
    size_t values = 1;
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++; /* the escaped byte is text */
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == ',' || c == '[' || c == '{') {
            values++;
        }
    }
    return values;
}

cJSON *proto_json_parse(const char *text, size_t len, proto_json_error *e) {
    if (text == NULL) len = 0;
    e->fault = text_check((const unsigned char *)text, len, &e->offset);
    if (e->fault != PROTO_JSON_OK) return NULL;
    e->fault = PROTO_JSON_SYNTAX;
    if (len == 0) return NULL;
    /* cJSON sets `end` whenever the length is not 0: after the value on
     * success, where it gave up on failure. */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    size_t offset = end != NULL ? (size_t)(end - text) : 0;
    if (root != NULL) {
        offset = skip_space(text, offset, len);
        if (offset == len) {
            e->fault = PROTO_JSON_OK;
            return root;
        }
        cJSON_Delete(root);
    }
    e->offset = offset;
    return NULL;
}

const char *proto_json_fault_str(proto_json_fault fault) {
    switch (fault) {
    case PROTO_JSON_OK:
        return "ok";
    case PROTO_JSON_NUL:
        return "contains a NUL byte";
    case PROTO_JSON_UTF8:
        return "not valid UTF-8";
    case PROTO_JSON_NUL_ESCAPE:
        return "contains \\u0000";
    case PROTO_JSON_SYNTAX:
        break;
    }
    return "not valid JSON";
}

/* ---- Reading cJSON values ----------------------------------------------- */

/* cJSON's own lookup calls strcmp on every member it passes; an auction
 * makes some 60 lookups (a bid's ten strings, the request's optional
 * objects), most of them for keys that are absent, so a member whose first
 * byte differs is passed without a call. */
const cJSON *proto_json_get(const cJSON *obj, const char *key) {
    if (obj == NULL || key == NULL || !cJSON_IsObject(obj)) return NULL;
    for (const cJSON *m = obj->child; m != NULL; m = m->next)
        if (m->string != NULL && m->string[0] == key[0] && strcmp(m->string, key) == 0) return m;
    return NULL;
}

const char *proto_json_string(const cJSON *v) {
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int proto_json_micros(const cJSON *v, int64_t *micros) {
    if (!cJSON_IsNumber(v)) return -1;
    return auction_micros_from_double(v->valuedouble, micros);
}

int proto_ltv_score_ok(const cJSON *v) {
    return cJSON_IsNumber(v) && v->valuedouble >= 0.0 && v->valuedouble <= 1.0;
}

/* ---- Text rules --------------------------------------------------------- */

size_t proto_utf8_chars(const char *s, size_t limit) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && n <= limit; p++) {
        if ((*p & 0xc0) != 0x80) n++;
    }
    return n;
}

int proto_id_charset_ok(const char *s) {
    static const char id_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "abcdefghijklmnopqrstuvwxyz"
                                   "0123456789._:-";
    return s[strspn(s, id_chars)] == '\0';
}

int proto_currency_ok(const char *s) {
    if (s == NULL) return 0;
    for (int i = 0; i < 3; i++)
        if (s[i] < 'A' || s[i] > 'Z') return 0;
    return s[3] == '\0';
}

static int port_ok(const char *s, size_t n) {
    long port = 0;
    if (n == 0 || n > 5) return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        port = port * 10 + (s[i] - '0');
    }
    return port >= 1 && port <= 65535;
}

int proto_host_ok(const char *s, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7F || c == '/' || c == '?' || c == '#' || c == '@' || c == '[' ||
            c == ']')
            return 0;
    }
    return 1;
}

int proto_authority_ok(const char *s, size_t n, int need_port) {
    const char *host_end;
    if (n > 0 && s[0] == '[') {
        host_end = memchr(s, ']', n);
        if (host_end == NULL || host_end == s + 1) return 0;
        for (const char *p = s + 1; p < host_end; p++)
            if (strchr("0123456789abcdefABCDEF:.", *p) == NULL) return 0;
        host_end++;
    } else {
        host_end = memchr(s, ':', n);
        if (host_end == NULL) host_end = s + n;
        if (!proto_host_ok(s, (size_t)(host_end - s))) return 0;
    }
    size_t rest = n - (size_t)(host_end - s);
    if (rest == 0) return !need_port;
    return host_end[0] == ':' && port_ok(host_end + 1, rest - 1);
}

int proto_url_ok(const char *s) {
    size_t skip;
    if (strncasecmp(s, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        skip = 8;
    else
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        if (*p <= ' ' || *p == 0x7F) return 0;
    s += skip;
    return proto_authority_ok(s, strcspn(s, "/?#"), 0);
}

/* notice.c -- OpenRTB 2.6 substitution macros in win and loss notice URLs
 * (section 4.4; SPEC 9).
 *
 * The template is copied as it is except for the ${NAME} macros we know,
 * whose values are percent-encoded so that an ad id with a space or an '&'
 * cannot change the URL's structure. */
#include "proto/proto.h"

#include <string.h>

static int put_encoded(proto_buf *out, const char *v) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)(v ? v : ""); *p; p++) {
        unsigned c = *p;
        int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~';
        char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
        if (proto_buf_append(out, plain ? (const char *)p : esc, plain ? 1 : 3) != 0) return -1;
    }
    return 0;
}

/* The value of macro `name` (`len` bytes), written to `out`; 1 when the name
 * is one of ours, 0 when not (nothing written), -1 on memory. */
static int put_macro(proto_buf *out, const char *name, size_t len, const proto_notice_macros *m) {
    static const struct {
        const char *name;
        size_t offset;
    } strings[] = {
        {"AUCTION_ID", offsetof(proto_notice_macros, auction_id)},
        {"AUCTION_BID_ID", offsetof(proto_notice_macros, bid_id)},
        {"AUCTION_IMP_ID", offsetof(proto_notice_macros, imp_id)},
        {"AUCTION_SEAT_ID", offsetof(proto_notice_macros, seat_id)},
        {"AUCTION_AD_ID", offsetof(proto_notice_macros, ad_id)},
        {"AUCTION_CURRENCY", offsetof(proto_notice_macros, currency)},
    };
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        if (strlen(strings[i].name) == len && memcmp(strings[i].name, name, len) == 0) {
            const char *v = *(const char *const *)((const char *)m + strings[i].offset);
            return put_encoded(out, v) == 0 ? 1 : -1;
        }
    }
    if (len == 13 && memcmp(name, "AUCTION_PRICE", 13) == 0)
        return m->no_price || proto_buf_micros(out, m->price_micros) == 0 ? 1 : -1;
    if (len == 12 && memcmp(name, "AUCTION_LOSS", 12) == 0)
        return m->loss ? (proto_buf_uint(out, (uint64_t)m->loss) == 0 ? 1 : -1) : 1;
    return 0;
}

int proto_notice_url(const char *url_template, const proto_notice_macros *m, proto_buf *out) {
    const char *p = url_template;
    while (*p) {
        const char *open = strstr(p, "${");
        const char *close = open ? strchr(open + 2, '}') : NULL;
        if (!close) break;
        if (proto_buf_append(out, p, (size_t)(open - p)) != 0) return -1;
        int known = put_macro(out, open + 2, (size_t)(close - open - 2), m);
        if (known < 0) return -1;
        if (!known && proto_buf_append(out, open, (size_t)(close - open + 1)) != 0) return -1;
        p = close + 1;
    }
    return proto_buf_puts(out, p);
}

/* fuzz_request.c -- libFuzzer target: a bid request payload (SPEC 2, with
 * the interest bounds of SPEC 15 and the imps, site, app, device, regs,
 * consent and cur of SPEC 17), and the same bytes as a stored user profile
 * (SPEC 3.2) for the bidder call (fuzz_profile.c fuzzes profiles on their
 * own, fuzz_event.c the ad events).
 *
 * The one idea: follow the bytes as far as the exchange would. A request
 * that decodes is encoded into the OpenRTB BidRequest of a bidder call
 * (with the profile when the same bytes decode as one) and into an auction
 * result of every status; one that does not becomes the `invalid` result
 * or the auction:errors notice. Every output is parsed back and checked
 * field by field against what went in; any broken promise aborts. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz_common.h"

/* limits.max_request_bytes by default; tools/fuzz feeds up to 70000 bytes,
 * so the size gate is on the path too. */
#define REQUEST_MAX_BYTES 65536
#define TOPIC "rtb/requests/pub-1"

/* NULL, or a string of at most `max` characters. */
static int text_ok(const char *s, size_t max) {
    return s == NULL || (fuzz_utf8_ok(s, strlen(s)) && fuzz_utf8_chars(s) <= max);
}

static int size_ok(int v) {
    return v >= 1 && v <= PROTO_PIXELS_MAX;
}

/* The bounds of SPEC 17 on what was decoded, read from the structs. */
static void check_imp(const proto_imp *imp, int spec2_form) {
    fuzz_check(imp->id != NULL && imp->tagid != NULL, "imp: no id or tagid");
    size_t n = strlen(imp->id);
    fuzz_check(spec2_form
                   ? strcmp(imp->id, "1") == 0
                   : n >= 1 && n <= PROTO_IMP_ID_MAX_CHARS &&
                         strspn(imp->id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                         "0123456789._:-") == n,
               "imp: id");
    size_t tag = fuzz_utf8_chars(imp->tagid);
    fuzz_check(tag >= 1 && tag <= PROTO_ID_MAX_CHARS, "imp: tagid of 1-128 characters");
    fuzz_check(imp->floor_micros >= 0 && imp->floor_micros <= AUCTION_PRICE_MAX_MICROS,
               "imp: floor out of range");
    fuzz_check(spec2_form == imp->default_banner, "imp: default_banner is the SPEC 2 form's");
    fuzz_check(spec2_form ? imp->banner == NULL && imp->video == NULL && imp->pmp == NULL
                          : imp->banner != NULL || imp->video != NULL,
               "imp: banner or video");
    if (imp->banner != NULL) {
        const proto_banner *b = imp->banner;
        if (b->nformat == 0)
            fuzz_check(size_ok(b->w) && size_ok(b->h), "banner: w/h");
        else
            fuzz_check(b->nformat <= PROTO_LIST_MAX && b->w == PROTO_ABSENT && b->h == PROTO_ABSENT,
                       "banner: format");
        for (size_t i = 0; i < b->nformat; i++)
            fuzz_check(size_ok(b->format[i].w) && size_ok(b->format[i].h), "banner: format size");
    }
    if (imp->video != NULL) {
        const proto_video *v = imp->video;
        fuzz_check(v->nmimes >= 1 && v->nmimes <= PROTO_LIST_MAX, "video: mimes count");
        for (size_t i = 0; i < v->nmimes; i++)
            fuzz_check(v->mimes[i][0] != '\0' && text_ok(v->mimes[i], PROTO_TEXT_MAX_CHARS),
                       "video: a mime");
        fuzz_check(v->w == PROTO_ABSENT || size_ok(v->w), "video: w");
        fuzz_check(v->h == PROTO_ABSENT || size_ok(v->h), "video: h");
        fuzz_check(v->minduration >= PROTO_ABSENT && v->minduration <= PROTO_DURATION_MAX_S &&
                       v->maxduration >= PROTO_ABSENT && v->maxduration <= PROTO_DURATION_MAX_S,
                   "video: durations");
        fuzz_check(v->minduration == PROTO_ABSENT || v->maxduration == PROTO_ABSENT ||
                       v->minduration <= v->maxduration,
                   "video: minduration above maxduration");
    }
    if (imp->pmp != NULL) {
        const proto_pmp *p = imp->pmp;
        fuzz_check(p->private_auction == 0 || p->private_auction == 1, "pmp: private_auction");
        fuzz_check(p->ndeals <= PROTO_LIST_MAX, "pmp: more than 16 deals");
        for (size_t i = 0; i < p->ndeals; i++) {
            const proto_deal *d = &p->deals[i];
            fuzz_check(d->id != NULL && d->id[0] != '\0' && text_ok(d->id, PROTO_TEXT_MAX_CHARS),
                       "deal: id");
            for (size_t j = 0; j < i; j++)
                fuzz_check(strcmp(p->deals[j].id, d->id) != 0, "deal: an id twice in an imp");
            fuzz_check(d->bidfloor_micros >= 0 && d->bidfloor_micros <= AUCTION_PRICE_MAX_MICROS,
                       "deal: bidfloor");
            fuzz_check(d->nwseat <= PROTO_LIST_MAX, "deal: wseat count");
            for (size_t j = 0; j < d->nwseat; j++)
                fuzz_check(d->wseat[j][0] != '\0' && text_ok(d->wseat[j], PROTO_TEXT_MAX_CHARS),
                           "deal: a seat");
        }
    }
}

static void check_request17(const proto_bid_request *r) {
    fuzz_check(r->nimps >= 1 && r->nimps <= PROTO_IMPS_MAX && r->imps != NULL && r->block != NULL,
               "request: imps count");
    fuzz_check(r->has_imps || (r->nimps == 1 && r->ad_slot_id[0] != '\0'),
               "request: the SPEC 2 form is one imp");
    fuzz_check(!r->has_imps || (r->ad_slot_id[0] == '\0' && r->floor_micros == 0),
               "request: the imps form has no top-level slot");
    if (!r->has_imps)
        fuzz_check(strcmp(r->imps[0].tagid, r->ad_slot_id) == 0 &&
                       r->imps[0].floor_micros == r->floor_micros,
                   "request: the SPEC 2 imp is its slot");
    for (size_t i = 0; i < r->nimps; i++) {
        check_imp(&r->imps[i], !r->has_imps);
        for (size_t j = 0; j < i; j++)
            fuzz_check(strcmp(r->imps[i].id, r->imps[j].id) != 0, "request: an imp id twice");
    }
    fuzz_check(!(r->has_site && r->has_app), "request: site and app");
    const char *const texts[] = {r->site.id,
                                 r->site.domain,
                                 r->site.page,
                                 r->site.publisher.id,
                                 r->site.publisher.name,
                                 r->app.id,
                                 r->app.bundle,
                                 r->app.storeurl,
                                 r->app.publisher.id,
                                 r->app.publisher.name,
                                 r->device.ua,
                                 r->device.ip,
                                 r->device.os,
                                 r->device.language,
                                 r->device.geo_country,
                                 r->device.geo_region,
                                 r->regs.us_privacy};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        fuzz_check(text_ok(texts[i], PROTO_TEXT_MAX_CHARS),
                   "request: a string over 256 characters");
    fuzz_check(text_ok(r->user_consent, PROTO_CONSENT_MAX_CHARS), "request: user_consent");
    fuzz_check(r->device.devicetype == PROTO_ABSENT ||
                   (r->device.devicetype >= 1 && r->device.devicetype <= 8),
               "request: devicetype");
    fuzz_check(r->regs.gdpr >= PROTO_ABSENT && r->regs.gdpr <= 1 && r->regs.coppa >= PROTO_ABSENT &&
                   r->regs.coppa <= 1,
               "request: regs flags");
    size_t cur = strlen(r->cur);
    fuzz_check(cur == 0 || (cur == 3 && strspn(r->cur, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 3),
               "request: cur");
}

static void check_request(const proto_bid_request *r) {
    size_t n = strlen(r->request_id);
    fuzz_check(r->has_request_id, "request: decoded without has_request_id");
    fuzz_check(n >= 1 && n <= PROTO_ID_MAX_CHARS, "request: request_id length");
    fuzz_check(strspn(r->request_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789._:-") == n,
               "request: request_id alphabet");
    fuzz_check(r->user_id[0] != '\0' && (r->has_imps || r->ad_slot_id[0] != '\0'),
               "request: empty id");
    fuzz_check(fuzz_utf8_ok(r->user_id, strlen(r->user_id)), "request: user_id not UTF-8");
    fuzz_check(r->floor_micros >= 0 && r->floor_micros <= AUCTION_PRICE_MAX_MICROS,
               "request: floor out of range");
    fuzz_check(r->root != NULL, "request: no parse tree");
    fuzz_check(r->user_context == NULL || cJSON_IsObject(r->user_context),
               "request: user_context not an object");
    fuzz_check(r->context_interests == NULL || cJSON_IsArray(r->context_interests),
               "request: interests not an array");
    int n_interests = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, r->context_interests) {
        size_t chars = cJSON_IsString(item) ? fuzz_utf8_chars(item->valuestring) : 0;
        fuzz_check(chars >= 1 && chars <= PROTO_INTEREST_MAX_CHARS,
                   "request: an interest not of 1-64 characters");
        n_interests++;
    }
    fuzz_check(n_interests <= PROTO_INTERESTS_MAX, "request: more than 64 interests");
    fuzz_check(!r->has_timestamp || isfinite(r->timestamp), "request: timestamp not finite");
    check_request17(r);
}

static void check_profile(proto_err e, const proto_profile *p) {
    if (e != PROTO_OK) {
        fuzz_check(p->root == NULL && p->interests == NULL, "profile: tree kept on error");
        return;
    }
    fuzz_check(p->root != NULL, "profile: no parse tree");
    fuzz_check(p->ltv_score >= 0.0 && p->ltv_score <= 1.0, "profile: ltv_score out of 0..1");
    fuzz_check(p->interests == NULL || cJSON_IsArray(p->interests),
               "profile: interests not an array");
}

/* user.keywords against the interests it joins (SPEC 5: profile, then
 * user_context, each once). Both lists hold at most 64 interests (SPEC 15),
 * so the quadratic check below stays cheap. Checked when no interest holds
 * a comma (which would make the joined string ambiguous). */
static void check_keywords(const char *keywords, const cJSON *profile_interests,
                           const cJSON *context_interests) {
    const char *want[2 * PROTO_INTERESTS_MAX];
    size_t nwant = 0;
    const cJSON *lists[2] = {profile_interests, context_interests};
    for (int l = 0; l < 2; l++) {
        const cJSON *item;
        cJSON_ArrayForEach(item, lists[l]) {
            const char *s = item->valuestring;
            fuzz_check(nwant < 2 * PROTO_INTERESTS_MAX,
                       "openrtb: more interests than the bounds allow");
            if (strchr(s, ',') != NULL) return;
            int seen = s[0] == '\0';
            for (size_t i = 0; i < nwant && !seen; i++)
                seen = strcmp(want[i], s) == 0;
            if (!seen) want[nwant++] = s;
        }
    }
    /* keywords must be exactly want[0],want[1],... in this order. */
    const char *p = keywords;
    for (size_t i = 0; i < nwant; i++) {
        size_t n = strlen(want[i]);
        fuzz_check(strncmp(p, want[i], n) == 0, "openrtb: user.keywords is not the interests");
        p += n;
        if (i + 1 < nwant) {
            fuzz_check(*p == ',', "openrtb: user.keywords is not comma-separated");
            p++;
        }
    }
    fuzz_check(*p == '\0', "openrtb: user.keywords has more than the interests");
}

/* obj[key] as an integer, or abort naming `key`. */
static int get_int(const cJSON *obj, const char *key) {
    double v = fuzz_get_number(obj, key);
    fuzz_check(v == (double)(int)v, "openrtb: an integer field that is not an integer");
    return (int)v;
}

static void check_money(const cJSON *obj, const char *key, int64_t micros) {
    int64_t got = -1;
    fuzz_check(auction_micros_from_double(fuzz_get_number(obj, key), &got) == 0 && got == micros,
               "openrtb: money does not read back as the micros it came from");
}

/* obj[key] is absent when `value` is PROTO_ABSENT, else the integer. */
static void check_opt_int(const cJSON *obj, const char *key, int value) {
    if (value == PROTO_ABSENT)
        fuzz_check(cJSON_GetObjectItemCaseSensitive(obj, key) == NULL,
                   "openrtb: an absent int sent");
    else
        fuzz_check(get_int(obj, key) == value, "openrtb: an int does not read back");
}

/* obj[key] is absent when `value` is NULL, else the string. */
static void check_opt_text(const cJSON *obj, const char *key, const char *value) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    fuzz_check(value == NULL ? v == NULL : cJSON_IsString(v) && strcmp(v->valuestring, value) == 0,
               "openrtb: a string does not read back");
}

static void check_strings(const cJSON *a, const char *const *list, size_t n) {
    fuzz_check(cJSON_IsArray(a) && (size_t)cJSON_GetArraySize(a) == n, "openrtb: string array");
    for (size_t i = 0; i < n; i++)
        fuzz_check(strcmp(cJSON_GetArrayItem(a, (int)i)->valuestring, list[i]) == 0,
                   "openrtb: string array item");
}

/* One imp of the BidRequest against the decoded one (OpenRTB 2.6 3.2.4). */
static void check_imp_out(const cJSON *o, const proto_imp *imp, const char *cur,
                          const proto_config *cfg) {
    fuzz_check(cJSON_IsObject(o), "openrtb: imp not an object");
    fuzz_check(strcmp(fuzz_get_string(o, "id"), imp->id) == 0, "openrtb: imp.id");
    fuzz_check(strcmp(fuzz_get_string(o, "tagid"), imp->tagid) == 0, "openrtb: imp.tagid");
    check_money(o, "bidfloor", imp->floor_micros);
    fuzz_check(strcmp(fuzz_get_string(o, "bidfloorcur"), cur) == 0, "openrtb: imp.bidfloorcur");
    const cJSON *banner = cJSON_GetObjectItemCaseSensitive(o, "banner");
    if (imp->default_banner) {
        fuzz_check(get_int(banner, "w") == cfg->auction.default_banner.w &&
                       get_int(banner, "h") == cfg->auction.default_banner.h,
                   "openrtb: the default banner");
    } else if (imp->banner == NULL) {
        fuzz_check(banner == NULL, "openrtb: a banner out of nothing");
    } else if (imp->banner->nformat == 0) {
        fuzz_check(get_int(banner, "w") == imp->banner->w && get_int(banner, "h") == imp->banner->h,
                   "openrtb: banner.w/h");
    } else {
        const cJSON *format = cJSON_GetObjectItemCaseSensitive(banner, "format");
        fuzz_check((size_t)cJSON_GetArraySize(format) == imp->banner->nformat, "openrtb: format");
        for (size_t i = 0; i < imp->banner->nformat; i++) {
            const cJSON *f = cJSON_GetArrayItem(format, (int)i);
            fuzz_check(get_int(f, "w") == imp->banner->format[i].w &&
                           get_int(f, "h") == imp->banner->format[i].h,
                       "openrtb: format size");
        }
    }
    const cJSON *video = cJSON_GetObjectItemCaseSensitive(o, "video");
    fuzz_check((video != NULL) == (imp->video != NULL), "openrtb: video present");
    if (imp->video != NULL) {
        check_strings(cJSON_GetObjectItemCaseSensitive(video, "mimes"), imp->video->mimes,
                      imp->video->nmimes);
        check_opt_int(video, "w", imp->video->w);
        check_opt_int(video, "h", imp->video->h);
        check_opt_int(video, "minduration", imp->video->minduration);
        check_opt_int(video, "maxduration", imp->video->maxduration);
    }
    const cJSON *pmp = cJSON_GetObjectItemCaseSensitive(o, "pmp");
    fuzz_check((pmp != NULL) == (imp->pmp != NULL), "openrtb: pmp present");
    if (imp->pmp == NULL) return;
    fuzz_check(get_int(pmp, "private_auction") == imp->pmp->private_auction,
               "openrtb: private_auction");
    const cJSON *deals = cJSON_GetObjectItemCaseSensitive(pmp, "deals");
    fuzz_check((size_t)cJSON_GetArraySize(deals) == imp->pmp->ndeals, "openrtb: deals");
    for (size_t i = 0; i < imp->pmp->ndeals; i++) {
        const cJSON *d = cJSON_GetArrayItem(deals, (int)i);
        const proto_deal *want = &imp->pmp->deals[i];
        fuzz_check(strcmp(fuzz_get_string(d, "id"), want->id) == 0, "openrtb: deal.id");
        check_money(d, "bidfloor", want->bidfloor_micros);
        fuzz_check(strcmp(fuzz_get_string(d, "bidfloorcur"), cur) == 0, "openrtb: deal cur");
        const cJSON *wseat = cJSON_GetObjectItemCaseSensitive(d, "wseat");
        if (want->nwseat == 0)
            fuzz_check(wseat == NULL, "openrtb: an empty wseat sent");
        else
            check_strings(wseat, want->wseat, want->nwseat);
    }
}

/* site, app, device, regs and user.consent against the decoded request. */
static void check_context_out(const cJSON *root, const proto_bid_request *req,
                              const proto_config *cfg) {
    const cJSON *site = cJSON_GetObjectItemCaseSensitive(root, "site");
    const cJSON *app = cJSON_GetObjectItemCaseSensitive(root, "app");
    fuzz_check((app != NULL) == req->has_app && (site != NULL) == !req->has_app,
               "openrtb: site or app, never both, never neither");
    if (req->has_app) {
        check_opt_text(app, "id", req->app.id);
        check_opt_text(app, "bundle", req->app.bundle);
        check_opt_text(app, "storeurl", req->app.storeurl);
    } else if (req->has_site) {
        check_opt_text(site, "id", req->site.id);
        check_opt_text(site, "domain", req->site.domain);
        check_opt_text(site, "page", req->site.page);
        const cJSON *pub = cJSON_GetObjectItemCaseSensitive(site, "publisher");
        if (req->site.publisher.id == NULL && req->site.publisher.name == NULL)
            fuzz_check(pub == NULL, "openrtb: an empty publisher sent");
        else
            check_opt_text(pub, "name", req->site.publisher.name);
    } else {
        check_opt_text(site, "id", cfg->auction.default_site.id);
        check_opt_text(site, "domain", cfg->auction.default_site.domain);
    }
    const cJSON *device = cJSON_GetObjectItemCaseSensitive(root, "device");
    fuzz_check((device != NULL) == req->has_device, "openrtb: device present");
    if (device != NULL) {
        check_opt_text(device, "ua", req->device.ua);
        check_opt_text(device, req->device.ip_is_v6 ? "ipv6" : "ip", req->device.ip);
        check_opt_int(device, "devicetype", req->device.devicetype);
        const cJSON *geo = cJSON_GetObjectItemCaseSensitive(device, "geo");
        if (req->device.geo_country == NULL && req->device.geo_region == NULL)
            fuzz_check(geo == NULL, "openrtb: an empty geo sent");
        else
            check_opt_text(geo, "region", req->device.geo_region);
    }
    const cJSON *regs = cJSON_GetObjectItemCaseSensitive(root, "regs");
    fuzz_check((regs != NULL) == req->has_regs, "openrtb: regs present");
    if (regs != NULL) {
        check_opt_int(regs, "coppa", req->regs.coppa);
        check_opt_int(regs, "gdpr", req->regs.gdpr);
        check_opt_text(regs, "us_privacy", req->regs.us_privacy);
    }
    check_opt_text(cJSON_GetObjectItemCaseSensitive(root, "user"), "consent", req->user_consent);
}

/* The bidder call of SPEC 5 and 17, parsed back. */
static void check_bidder_call(const proto_bid_request *req, const proto_profile *profile,
                              size_t size) {
    const proto_config *defaults = fuzz_default_config();
    proto_config cfg = *defaults; /* a shallow copy: only scalars change */
    auction_type at = (size & 1) ? AUCTION_FIRST_PRICE : AUCTION_SECOND_PRICE;
    cfg.auction.type = at;
    int tmax_ms = (int)(size % 200) - 50; /* 0 and below are sent as 1 */
    proto_buf out;
    proto_buf_init(&out);
    fuzz_check(proto_openrtb_request_encode(req, profile, &cfg, tmax_ms, &out) == 0,
               "openrtb: encode failed");
    cJSON *root = fuzz_parse_output(&out, "proto_openrtb_request_encode");

    fuzz_check(strcmp(fuzz_get_string(root, "id"), req->request_id) == 0, "openrtb: id");
    fuzz_check(fuzz_get_number(root, "at") == (double)at, "openrtb: at");
    fuzz_check(fuzz_get_number(root, "tmax") == (tmax_ms < 1 ? 1 : tmax_ms), "openrtb: tmax");
    const char *cur = req->cur[0] != '\0' ? req->cur : cfg.auction.currency;
    const cJSON *curs = cJSON_GetObjectItemCaseSensitive(root, "cur");
    fuzz_check(cJSON_GetArraySize(curs) == 1 &&
                   strcmp(cJSON_GetArrayItem(curs, 0)->valuestring, cur) == 0,
               "openrtb: cur");
    const cJSON *imps = cJSON_GetObjectItemCaseSensitive(root, "imp");
    fuzz_check(cJSON_IsArray(imps) && (size_t)cJSON_GetArraySize(imps) == req->nimps,
               "openrtb: one imp per impression");
    for (size_t i = 0; i < req->nimps; i++)
        check_imp_out(cJSON_GetArrayItem(imps, (int)i), &req->imps[i], cur, &cfg);
    if (!req->has_imps) {
        const cJSON *imp = cJSON_GetArrayItem(imps, 0);
        fuzz_check(strcmp(fuzz_get_string(imp, "tagid"), req->ad_slot_id) == 0, "openrtb: tagid");
    }
    check_context_out(root, req, &cfg);
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(root, "user");
    fuzz_check(cJSON_IsObject(user), "openrtb: user");
    fuzz_check(strcmp(fuzz_get_string(user, "id"), req->user_id) == 0, "openrtb: user.id");
    check_keywords(fuzz_get_string(user, "keywords"), profile != NULL ? profile->interests : NULL,
                   req->context_interests);
    const cJSON *user_ext = cJSON_GetObjectItemCaseSensitive(user, "ext");
    double ltv = profile != NULL ? profile->ltv_score : 0.0;
    fuzz_check(fuzz_get_number(user_ext, "ltv_score") == ltv, "openrtb: ltv_score");
    const cJSON *ext = cJSON_GetObjectItemCaseSensitive(root, "ext");
    fuzz_check(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(ext, "user_context")),
               "openrtb: ext.user_context");

    cJSON_Delete(root);
    proto_buf_free(&out);
}

/* The result of SPEC 4 for `status`, parsed back. */
static void check_result(const proto_bid_request *req, proto_status status, const char *error,
                         size_t size) {
    proto_result r = {
        .request_id = req->request_id,
        .status = status,
        .advertiser_id = req->user_id,
        .bid_price_micros = req->floor_micros,
        .clearing_price_micros = req->floor_micros / 2,
        .ad_id = req->ad_slot_id,
        .creative_url = (size & 2) ? NULL : req->user_id,
        .bids = (unsigned)size,
        .bidders = (unsigned)size + 1,
        .timeouts = (unsigned)(size % 7),
        .errors = UINT32_MAX,
        .latency_us = (int64_t)size * 37 - 1000, /* negative prints as 0 */
        .timestamp_us = INT64_C(1795000000123456) + (int64_t)size,
        .error = error,
    };
    proto_buf out;
    proto_buf_init(&out);
    fuzz_check(proto_result_encode(&r, &out) == 0, "result: encode failed");
    cJSON *root = fuzz_parse_output(&out, "proto_result_encode");

    fuzz_check(strcmp(fuzz_get_string(root, "request_id"), req->request_id) == 0,
               "result: request_id");
    fuzz_check(strcmp(fuzz_get_string(root, "status"), proto_status_str(status)) == 0,
               "result: status");
    const cJSON *winner = cJSON_GetObjectItemCaseSensitive(root, "winner");
    if (status == PROTO_STATUS_SUCCESS) {
        fuzz_check(cJSON_IsObject(winner), "result: winner not an object");
        int64_t micros = -1;
        fuzz_check(auction_micros_from_double(fuzz_get_number(winner, "bid_price"), &micros) == 0 &&
                       micros == r.bid_price_micros,
                   "result: bid_price does not read back");
        fuzz_check(strcmp(fuzz_get_string(winner, "ad_id"), req->ad_slot_id) == 0, "result: ad_id");
        fuzz_check(strcmp(fuzz_get_string(winner, "creative_url"),
                          r.creative_url != NULL ? r.creative_url : "") == 0,
                   "result: creative_url");
    } else {
        fuzz_check(cJSON_IsNull(winner), "result: winner not null");
    }
    if (status == PROTO_STATUS_INVALID)
        fuzz_check(strcmp(fuzz_get_string(root, "error"), error) == 0, "result: error");
    if (status == PROTO_STATUS_INVALID || status == PROTO_STATUS_OVERLOADED)
        fuzz_check(fuzz_get_number(root, "bids") == 0 && fuzz_get_number(root, "errors") == 0,
                   "result: counters of an auction that never ran");
    else
        fuzz_check(fuzz_get_number(root, "errors") == (double)UINT32_MAX, "result: errors");
    fuzz_check(fuzz_get_number(root, "latency_ms") >= 0, "result: latency_ms negative");

    cJSON_Delete(root);
    proto_buf_free(&out);
}

/* The result of a request with imps (SPEC 17), parsed back: the imps
 * array in the request's order, success when any imp won, the top-level
 * winner the first winning imp's. */
static void check_result_imps(const proto_bid_request *req, size_t size) {
    static const proto_status kinds[] = {PROTO_STATUS_SUCCESS, PROTO_STATUS_NO_BID,
                                         PROTO_STATUS_TIMEOUT};
    proto_result_imp imps[PROTO_IMPS_MAX];
    const proto_result_imp *first_win = NULL;
    for (size_t i = 0; i < req->nimps; i++) {
        const proto_imp *imp = &req->imps[i];
        imps[i] = (proto_result_imp){
            .imp_id = imp->id,
            .status = kinds[(i + size) % 3],
            .advertiser_id = imp->tagid,
            .bid_price_micros = imp->floor_micros,
            .clearing_price_micros = imp->floor_micros,
            .ad_id = imp->id,
            .creative_url = NULL,
            .deal_id = imp->pmp != NULL && imp->pmp->ndeals > 0 ? imp->pmp->deals[0].id : NULL,
        };
        if (first_win == NULL && imps[i].status == PROTO_STATUS_SUCCESS) first_win = &imps[i];
    }
    proto_result r = {
        .request_id = req->request_id,
        .status = PROTO_STATUS_TIMEOUT,
        .imps = imps,
        .nimps = req->nimps,
        .latency_us = 1,
        .timestamp_us = 1,
    };
    proto_buf out;
    proto_buf_init(&out);
    fuzz_check(proto_result_encode(&r, &out) == 0, "result: encode failed");
    cJSON *root = fuzz_parse_output(&out, "proto_result_encode");
    fuzz_check(strcmp(fuzz_get_string(root, "status"), first_win ? "success" : "timeout") == 0,
               "result: top-level status of imps");
    const cJSON *winner = cJSON_GetObjectItemCaseSensitive(root, "winner");
    if (first_win != NULL)
        fuzz_check(strcmp(fuzz_get_string(winner, "advertiser_id"), first_win->advertiser_id) == 0,
                   "result: the top-level winner is the first winning imp's");
    else
        fuzz_check(cJSON_IsNull(winner), "result: a winner without a winning imp");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "imps");
    fuzz_check(cJSON_IsArray(list) && (size_t)cJSON_GetArraySize(list) == req->nimps,
               "result: imps array");
    for (size_t i = 0; i < req->nimps; i++) {
        const cJSON *m = cJSON_GetArrayItem(list, (int)i);
        fuzz_check(strcmp(fuzz_get_string(m, "imp_id"), imps[i].imp_id) == 0, "result: imp_id");
        fuzz_check(strcmp(fuzz_get_string(m, "status"), proto_status_str(imps[i].status)) == 0,
                   "result: imp status");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(m, "winner");
        if (imps[i].status != PROTO_STATUS_SUCCESS) {
            fuzz_check(cJSON_IsNull(w), "result: an imp winner without success");
            continue;
        }
        int64_t micros = -1;
        fuzz_check(auction_micros_from_double(fuzz_get_number(w, "clearing_price"), &micros) == 0 &&
                       micros == imps[i].clearing_price_micros,
                   "result: imp clearing_price");
        const cJSON *deal = cJSON_GetObjectItemCaseSensitive(w, "deal_id");
        fuzz_check(imps[i].deal_id == NULL
                       ? cJSON_IsNull(deal)
                       : cJSON_IsString(deal) && strcmp(deal->valuestring, imps[i].deal_id) == 0,
                   "result: deal_id");
    }
    cJSON_Delete(root);
    proto_buf_free(&out);
}

/* The auction:errors notice of SPEC 4, parsed back. */
static void check_error_notice(const char *error, const char *topic, const char *request_id) {
    proto_buf out;
    proto_buf_init(&out);
    fuzz_check(proto_error_encode(error, topic, request_id, &out) == 0, "notice: encode failed");
    cJSON *root = fuzz_parse_output(&out, "proto_error_encode");
    fuzz_check(strcmp(fuzz_get_string(root, "status"), "invalid") == 0, "notice: status");
    fuzz_check(strcmp(fuzz_get_string(root, "error"), error) == 0, "notice: error");
    fuzz_check(strcmp(fuzz_get_string(root, "topic"), topic) == 0, "notice: topic");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "request_id");
    fuzz_check(request_id != NULL ? cJSON_IsString(id) && strcmp(id->valuestring, request_id) == 0
                                  : id == NULL,
               "notice: request_id");
    cJSON_Delete(root);
    proto_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    char err[256]; /* the size rtb/server.c uses */
    proto_bid_request req;
    proto_err e = proto_bid_request_decode(text, size, REQUEST_MAX_BYTES, &req, err, sizeof err);

    char perr[256];
    proto_profile profile;
    proto_err pe = proto_profile_decode(text, size, &profile, perr, sizeof perr);
    check_profile(pe, &profile);
    fuzz_check(pe == PROTO_OK || perr[0] != '\0', "profile: error without a message");

    fuzz_check((size > REQUEST_MAX_BYTES) == (e == PROTO_ERR_TOO_LARGE), "request: size gate");
    if (e == PROTO_OK) {
        check_request(&req);
        check_bidder_call(&req, pe == PROTO_OK ? &profile : NULL, size);
        check_bidder_call(&req, NULL, size + 1);
        for (int s = 0; s < PROTO_STATUS_COUNT; s++)
            check_result(&req, (proto_status)s, "request_id: duplicate", size);
        if (req.has_imps) check_result_imps(&req, size);
        /* A duplicate goes to auction:errors; the topic is any UTF-8. */
        check_error_notice("request_id: duplicate of a request still in flight", req.user_id,
                           req.request_id);
    } else {
        fuzz_check(req.root == NULL && req.user_context == NULL && req.context_interests == NULL,
                   "request: tree kept on error");
        fuzz_check(req.block == NULL && req.imps == NULL && req.nimps == 0 && !req.has_imps,
                   "request: imps kept on error");
        fuzz_check(err[0] != '\0', "request: error without a message");
        if (req.has_request_id)
            check_result(&req, PROTO_STATUS_INVALID, err, size);
        else
            check_error_notice(err, TOPIC, NULL);
    }
    proto_bid_request_free(&req);
    proto_profile_free(&profile);
    return 0;
}

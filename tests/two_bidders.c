/* two_bidders.c -- see two_bidders.h. */
#include "tests/two_bidders.h"

#include <check.h>
#include <string.h>

rtb_registry *two_bidders_new(proto_config *cfg) {
    static const char *json = "{\"bidders\":[{\"id\":\"a\",\"endpoint\":\"http://127.0.0.1:9/\"},"
                              "{\"id\":\"b\",\"endpoint\":\"http://127.0.0.1:9/\"}]}";
    char err[256];
    ck_assert_int_eq(proto_config_defaults(cfg), PROTO_OK);
    ck_assert_msg(proto_config_parse(cfg, json, strlen(json), err, sizeof(err)) == PROTO_OK, "%s",
                  err);
    rtb_registry *reg = rtb_registry_new(cfg, NULL);
    ck_assert_ptr_nonnull(reg);
    rtb_registry_apply(reg, NULL, 0);
    ck_assert_uint_eq(rtb_registry_count(reg), 2);
    return reg;
}

void two_bidders_free(rtb_registry *reg, proto_config *cfg) {
    rtb_registry_free(reg);
    proto_config_free(cfg);
}

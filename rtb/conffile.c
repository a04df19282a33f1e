/* conffile.c -- read the config file and apply it (SPEC 7).
 *
 * The one idea: the file is read whole, one byte past the limit, so that a
 * file over PROTO_CONFIG_MAX_BYTES is told from one exactly at it without
 * trusting its size on disk (a FIFO or /proc file has none); then the bytes,
 * with their length, are proto_config_parse's. */
#include "rtb/conffile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

proto_err rtb_conffile_load(proto_config *c, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read it: %s", path, strerror(errno));
        return PROTO_ERR_IO;
    }
    char *buf = malloc(PROTO_CONFIG_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return PROTO_ERR_NOMEM;
    }
    size_t n = fread(buf, 1, PROTO_CONFIG_MAX_BYTES + 1, f);
    int read_errno = ferror(f) ? errno : 0;
    fclose(f);
    proto_err e = PROTO_OK;
    if (read_errno != 0) {
        snprintf(err, errlen, "%s: cannot read it: %s", path, strerror(read_errno));
        e = PROTO_ERR_IO;
    } else if (n > PROTO_CONFIG_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %d bytes", path, PROTO_CONFIG_MAX_BYTES);
        e = PROTO_ERR_TOO_LARGE;
    } else {
        /* proto's message names the key; the path goes in front of it. */
        char why[512];
        e = proto_config_parse(c, buf, n, why, sizeof(why));
        if (e != PROTO_OK) snprintf(err, errlen, "%s: %s", path, why);
    }
    free(buf);
    return e;
}

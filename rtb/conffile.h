/* conffile.h -- reading the config file (SPEC 7) for rtb-exchange.
 *
 * proto/ does no I/O: it takes a config document as bytes. This is the one
 * place that reads the file, bounded by PROTO_CONFIG_MAX_BYTES, and hands
 * the bytes to proto_config_parse. Needs nothing but proto/, so the config
 * unit suite tests it without a server. */
#ifndef RTB_CONFFILE_H
#define RTB_CONFFILE_H

#include <stddef.h>

#include "proto/proto.h"

/* Read the file at `path` (a JSON config document, SPEC 7) and apply it on
 * top of `c` with proto_config_parse. Every message in `err` starts with
 * the path:
 *   PROTO_ERR_IO         "PATH: cannot read it: No such file or directory"
 *   PROTO_ERR_TOO_LARGE  "PATH: larger than 1048576 bytes" (not parsed)
 *   any error of proto_config_parse, e.g. PROTO_ERR_FIELD
 *                        "PATH: auction.tmax_ms: expected an integer ..."
 *   PROTO_ERR_NOMEM      "PATH: out of memory".
 * The bytes go to proto_config_parse as they are (with their length: a NUL
 * byte in the file is refused there, naming its offset). On error `c` is
 * unchanged. */
proto_err rtb_conffile_load(proto_config *c, const char *path, char *err, size_t errlen);

#endif

/* two_bidders.h -- for unit suites that need a registry without Redis: a
 * config of two bidders, "a" and "b" (their endpoint the discard port:
 * never called), and the registry made from it. */
#ifndef RTB_TESTS_TWO_BIDDERS_H
#define RTB_TESTS_TWO_BIDDERS_H

#include "proto/proto.h"
#include "rtb/registry.h"

/* Fills *cfg (defaults, then the two bidders) and returns the registry of
 * its two bidders, in that order. Aborts the test on any failure. Undo
 * with two_bidders_free. */
rtb_registry *two_bidders_new(proto_config *cfg);

/* Frees what two_bidders_new made. */
void two_bidders_free(rtb_registry *reg, proto_config *cfg);

#endif

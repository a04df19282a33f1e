/* alloc.h -- which malloc the exchange runs on.
 *
 * rtb-exchange is linked with mimalloc unless built with -Dallocator=libc or
 * a sanitizer (meson_options.txt; the figures are in docs/benchmarks.md,
 * "Allocator"). Linking is all it takes, as long as libmimalloc comes
 * before libc among the libraries the loader searches; this unit checks
 * that it did, so that `--version` and the start-up log tell the truth. */
#ifndef RTB_ALLOC_H
#define RTB_ALLOC_H

/* The allocator in use, for humans: "mimalloc 2.0.9"; "system malloc" when
 * built without mimalloc (glibc's, or whatever LD_PRELOAD put first); or
 * "system malloc (mimalloc 2.0.9 linked but not in use)" when the loader
 * found another malloc first. A static string, valid for the process's
 * life; the first call allocates and frees one byte to find out, so call
 * it from the loop's thread. Never fails. */
const char *rtb_allocator(void);

#endif

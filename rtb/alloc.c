/* alloc.c -- which malloc the exchange runs on (alloc.h). */
#include "rtb/alloc.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef RTB_MIMALLOC
#include <mimalloc.h>
#endif

const char *rtb_allocator(void) {
#ifdef RTB_MIMALLOC
    static char text[96];
    if (text[0]) return text;
    /* mi_version() is major * 100 + minor * 10 + patch (mimalloc.h). */
    int v = mi_version();
    char version[32];
    snprintf(version, sizeof(version), "%d.%d.%d", v / 100, v / 10 % 10, v % 10);
    /* malloc() is mimalloc's only if the block it returns is in mimalloc's
     * heap; mi_malloc() itself would always be. */
    void *p = malloc(1);
    int ours = p && mi_is_in_heap_region(p);
    free(p);
    if (ours)
        snprintf(text, sizeof(text), "mimalloc %s", version);
    else
        snprintf(text, sizeof(text), "system malloc (mimalloc %s linked but not in use)", version);
    return text;
#else
    return "system malloc";
#endif
}

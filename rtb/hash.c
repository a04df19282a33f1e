/* hash.c -- SipHash-2-4 under a random key (libsodium), and a reusable set
 * of strings on it (SPEC 15).
 *
 * The one idea of the set: each slot carries the generation it was filled
 * in, and only slots of the current generation count. Emptying the set for
 * the next auction is one increment; the slots are cleared for real only
 * when the 32-bit generation wraps. */
#include "rtb/hash.h"

#include <sodium.h>

#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(((rtb_hash_key *)0)->bytes) == crypto_shorthash_KEYBYTES,
               "rtb_hash_key holds one crypto_shorthash key");

#define SET_MIN_SLOTS 16

int rtb_hash_key_init(rtb_hash_key *k) {
    if (sodium_init() < 0) return -1; /* 1: already done, which is fine */
    randombytes_buf(k->bytes, sizeof(k->bytes));
    return 0;
}

uint64_t rtb_hash_str(const rtb_hash_key *k, const char *s) {
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash(out, (const unsigned char *)s, strlen(s), k->bytes);
    uint64_t h;
    memcpy(&h, out, sizeof(h));
    return h;
}

void rtb_hash_set_init(rtb_hash_set *s) {
    memset(s, 0, sizeof(*s));
}

void rtb_hash_set_free(rtb_hash_set *s) {
    free(s->key);
    free(s->hash);
    free(s->gen);
    rtb_hash_set_init(s);
}

/* Forget every string: a new generation (the slots cleared only on wrap). */
static void set_empty(rtb_hash_set *s) {
    s->n = 0;
    if (s->gen && ++s->cur == 0) {
        memset(s->gen, 0, (s->mask + 1) * sizeof(*s->gen));
        s->cur = 1;
    }
}

int rtb_hash_set_reset(rtb_hash_set *s, size_t n) {
    size_t want = SET_MIN_SLOTS;
    while (want < 2 * n)
        want *= 2;
    set_empty(s);
    if (s->gen && want <= s->mask + 1) return 0;
    const char **key = malloc(want * sizeof(*key));
    uint64_t *hash = malloc(want * sizeof(*hash));
    uint32_t *gen = calloc(want, sizeof(*gen));
    if (!key || !hash || !gen) {
        free(key);
        free(hash);
        free(gen);
        return -1;
    }
    free(s->key);
    free(s->hash);
    free(s->gen);
    s->key = key;
    s->hash = hash;
    s->gen = gen;
    s->mask = want - 1;
    s->cur = 1;
    return 0;
}

void rtb_hash_set_add(rtb_hash_set *s, const char *str, uint64_t h) {
    if (!s->gen || 2 * (s->n + 1) > s->mask + 1) return; /* over the room reset made */
    for (size_t i = (size_t)h & s->mask;; i = (i + 1) & s->mask) {
        if (s->gen[i] != s->cur) {
            s->key[i] = str;
            s->hash[i] = h;
            s->gen[i] = s->cur;
            s->n++;
            return;
        }
        if (s->hash[i] == h && strcmp(s->key[i], str) == 0) return;
    }
}

int rtb_hash_set_has(const rtb_hash_set *s, const char *str, uint64_t h) {
    if (!s->gen) return 0;
    for (size_t i = (size_t)h & s->mask; s->gen[i] == s->cur; i = (i + 1) & s->mask)
        if (s->hash[i] == h && strcmp(s->key[i], str) == 0) return 1;
    return 0;
}

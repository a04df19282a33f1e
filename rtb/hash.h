/* hash.h -- keyed hashing of strings that come from outside (SPEC 15), and
 * a set of strings on it.
 *
 * Publishers choose request_ids and interests. A hash table keyed on them
 * with a public hash function (FNV-1a) lets a publisher pick strings that
 * all land in one bucket and turn every lookup into a walk of the whole
 * chain. Here every hash is libsodium's crypto_shorthash (SipHash-2-4)
 * under a secret key drawn from the system's random source when its owner
 * is made, so nobody outside can tell which strings collide. */
#ifndef RTB_HASH_H
#define RTB_HASH_H

#include <stddef.h>
#include <stdint.h>

/* A secret hash key (crypto_shorthash_KEYBYTES bytes). */
typedef struct rtb_hash_key {
    unsigned char bytes[16];
} rtb_hash_key;

/* Draw a fresh random key into `k` (sodium_init, then randombytes_buf).
 * Returns 0, or -1 when libsodium cannot start (no random source). */
int rtb_hash_key_init(rtb_hash_key *k);

/* SipHash-2-4 of the NUL-terminated string `s` under `k`. */
uint64_t rtb_hash_str(const rtb_hash_key *k, const char *s);

/* A set of borrowed NUL-terminated strings with their hashes (open
 * addressing, linear probing, at most half full). Emptying it costs
 * nothing (a generation count marks the slots in use), so one set can be
 * reused for every auction without clearing or allocating. */
typedef struct rtb_hash_set {
    const char **key; /* borrowed; valid while its slot's gen is the set's */
    uint64_t *hash;   /* rtb_hash_str of key */
    uint32_t *gen;    /* the generation a slot was filled in */
    size_t mask;      /* slots - 1 (a power of two), or 0 before any reset */
    uint32_t cur;     /* the current generation */
    size_t n;         /* strings in the set */
} rtb_hash_set;

/* An empty set with no room yet; rtb_hash_set_reset makes room. */
void rtb_hash_set_init(rtb_hash_set *s);
/* Free the set's slots (not the strings). */
void rtb_hash_set_free(rtb_hash_set *s);
/* Empty the set and make room for at least `n` strings: the slots grow
 * (and are kept) only when `n` is more than they held before. Returns 0, or
 * -1 when memory ran out (the set is then empty with its old room). */
int rtb_hash_set_reset(rtb_hash_set *s, size_t n);
/* Add `str` with its hash `h` (rtb_hash_str under the caller's key) unless
 * it is there already; `str` is borrowed until the next reset. At most the
 * `n` of the last reset may be added. */
void rtb_hash_set_add(rtb_hash_set *s, const char *str, uint64_t h);
/* 1 when `str` (hash `h`) is in the set, else 0. */
int rtb_hash_set_has(const rtb_hash_set *s, const char *str, uint64_t h);

#endif

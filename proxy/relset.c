/*
 * relset: hashed path set with ancestor/descendant look-ups (relset.h).
 */
#include "relset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RSET_UNDER 1u
#define RSET_EXACT 2u
#define RSET_STACK_DEPTH 64

static uint64_t fnv_step(uint64_t h, unsigned char c)
{
    return (h ^ c) * 0x100000001b3ull;
}

/* Prefix hashes of p into out (at most max); returns how many there are (may exceed max). */
static int chain_fill(const char *p, uint64_t *out, int max)
{
    uint64_t h = 0xcbf29ce484222325ull;
    int n = 0;
    uint64_t root = fnv_step(h, '/');
    if (n < max) out[n] = root;
    n++;
    size_t len = strlen(p);
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '/' && i > 0) {
            if (n < max) out[n] = h;
            n++;
        }
        h = fnv_step(h, (unsigned char)p[i]);
    }
    if (len > 1) {
        if (n < max) out[n] = h;
        n++;
    }
    return n;
}

int rset_chain_of(const char *p, rset_chain *c)
{
    int n = chain_fill(p, NULL, 0);
    c->h = malloc(sizeof *c->h * (size_t)n);
    if (!c->h) {
        c->n = 0;
        return -ENOMEM;
    }
    c->n = chain_fill(p, c->h, n);
    return 0;
}

void rset_chain_free(rset_chain *c)
{
    free(c->h);
    c->h = NULL;
    c->n = 0;
}

void rset_init(rset *s)
{
    memset(s, 0, sizeof *s);
}

void rset_free(rset *s)
{
    free(s->key);
    free(s->flag);
    memset(s, 0, sizeof *s);
}

void rset_clear(rset *s)
{
    if (s->n == 0) return;
    memset(s->key, 0, sizeof *s->key * (s->mask + 1));
    memset(s->flag, 0, s->mask + 1);
    s->n = 0;
}

static size_t slot_of(uint64_t k, size_t mask)
{
    k ^= k >> 29;
    k *= 0xbf58476d1ce4e5b9ull;
    k ^= k >> 32;
    return (size_t)k & mask;
}

static uint64_t norm_key(uint64_t h)
{
    return h ? h : 1;
}

static int grow(rset *s)
{
    size_t nm = s->key ? s->mask * 2 + 1 : 255;
    uint64_t *nk = calloc(nm + 1, sizeof *nk);
    uint8_t *nf = calloc(nm + 1, 1);
    if (!nk || !nf) {
        free(nk);
        free(nf);
        return -ENOMEM;
    }
    for (size_t i = 0; s->key && i <= s->mask; i++) {
        if (!s->key[i]) continue;
        size_t k = slot_of(s->key[i], nm);
        while (nk[k]) k = (k + 1) & nm;
        nk[k] = s->key[i];
        nf[k] = s->flag[i];
    }
    free(s->key);
    free(s->flag);
    s->key = nk;
    s->flag = nf;
    s->mask = nm;
    return 0;
}

static int mark(rset *s, uint64_t h, uint8_t f)
{
    if (!s->key || (s->n + 1) * 2 > s->mask + 1) {
        int rc = grow(s);
        if (rc < 0) return rc;
    }
    h = norm_key(h);
    size_t k = slot_of(h, s->mask);
    while (s->key[k] && s->key[k] != h) k = (k + 1) & s->mask;
    if (!s->key[k]) {
        s->key[k] = h;
        s->n++;
    }
    s->flag[k] |= f;
    return 0;
}

static uint8_t flags_of(const rset *s, uint64_t h)
{
    if (!s->key) return 0;
    h = norm_key(h);
    size_t k = slot_of(h, s->mask);
    while (s->key[k]) {
        if (s->key[k] == h) return s->flag[k];
        k = (k + 1) & s->mask;
    }
    return 0;
}

int rset_add(rset *s, const rset_chain *c)
{
    for (int i = 0; i < c->n; i++) {
        int rc = mark(s, c->h[i], i == c->n - 1 ? RSET_UNDER | RSET_EXACT : RSET_UNDER);
        if (rc < 0) return rc;
    }
    return 0;
}

bool rset_hits(const rset *s, const rset_chain *c)
{
    if (c->n == 0 || s->n == 0) return false;
    if (flags_of(s, c->h[c->n - 1]) & RSET_UNDER) return true;
    for (int i = 0; i < c->n - 1; i++)
        if (flags_of(s, c->h[i]) & RSET_EXACT) return true;
    return false;
}

bool rset_hits_path(const rset *s, const char *p)
{
    if (s->n == 0) return false;
    uint64_t h[RSET_STACK_DEPTH];
    int n = chain_fill(p, h, RSET_STACK_DEPTH);
    if (n > RSET_STACK_DEPTH) return true; /* deeper than the stack chain: conservative */
    rset_chain c = {h, n};
    return rset_hits(s, &c);
}

int rset_add_path(rset *s, const char *p)
{
    uint64_t h[RSET_STACK_DEPTH];
    int n = chain_fill(p, h, RSET_STACK_DEPTH);
    if (n <= RSET_STACK_DEPTH) {
        rset_chain c = {h, n};
        return rset_add(s, &c);
    }
    rset_chain c;
    int rc = rset_chain_of(p, &c);
    if (rc == 0) rc = rset_add(s, &c);
    rset_chain_free(&c);
    return rc;
}

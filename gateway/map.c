/*
 * map.c: see map.h. FNV-1a hashing, separate chaining, keys copied into
 * the entry. The bucket count is fixed at creation (sized for the
 * expected population), so there is no rehash pause on the loop.
 */
#include "map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    struct entry *next;
    void *value;
    size_t len;
    uint64_t hash;
    unsigned char key[];
};

struct gw_map {
    struct entry **buckets;
    size_t mask;
    size_t count;
};

static uint64_t fnv1a(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

struct gw_map *gw_map_new(size_t nbuckets)
{
    size_t n = 16;
    while (n < nbuckets) {
        n <<= 1;
    }
    struct gw_map *m = calloc(1, sizeof(*m));
    if (m != NULL) {
        m->buckets = calloc(n, sizeof(*m->buckets));
        if (m->buckets == NULL) {
            free(m);
            return NULL;
        }
        m->mask = n - 1;
    }
    return m;
}

void gw_map_free(struct gw_map *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i <= m->mask; i++) {
        struct entry *e = m->buckets[i];
        while (e != NULL) {
            struct entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
}

static struct entry **find(const struct gw_map *m, const void *key, size_t len, uint64_t h)
{
    struct entry **pp = &m->buckets[h & m->mask];
    while (*pp != NULL &&
           !((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->key, key, len) == 0)) {
        pp = &(*pp)->next;
    }
    return pp;
}

void *gw_map_get(const struct gw_map *m, const void *key, size_t len)
{
    struct entry *e = *find(m, key, len, fnv1a(key, len));
    return e != NULL ? e->value : NULL;
}

int gw_map_put(struct gw_map *m, const void *key, size_t len, void *value)
{
    uint64_t h = fnv1a(key, len);
    struct entry **pp = find(m, key, len, h);
    if (*pp != NULL) {
        (*pp)->value = value;
        return 0;
    }
    struct entry *e = malloc(sizeof(*e) + len);
    if (e == NULL) {
        return -ENOMEM;
    }
    e->next = NULL;
    e->value = value;
    e->len = len;
    e->hash = h;
    memcpy(e->key, key, len);
    *pp = e;
    m->count++;
    return 0;
}

void *gw_map_del(struct gw_map *m, const void *key, size_t len)
{
    struct entry **pp = find(m, key, len, fnv1a(key, len));
    struct entry *e = *pp;
    if (e == NULL) {
        return NULL;
    }
    void *v = e->value;
    *pp = e->next;
    free(e);
    m->count--;
    return v;
}

size_t gw_map_count(const struct gw_map *m)
{
    return m->count;
}

void gw_map_each(const struct gw_map *m, void (*fn)(void *value, void *arg), void *arg)
{
    for (size_t i = 0; i <= m->mask; i++) {
        for (struct entry *e = m->buckets[i]; e != NULL; e = e->next) {
            fn(e->value, arg);
        }
    }
}

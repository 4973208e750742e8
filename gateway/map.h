/*
 * map.h: a small chained hash map from byte-string keys to borrowed
 * pointers, used for the loop thread's indexes (connections by id, rooms by
 * room id, connection counts by user). Loop thread only; not thread-safe.
 */
#ifndef COACH_GW_MAP_H
#define COACH_GW_MAP_H

#include <stddef.h>
#include <stdint.h>

struct gw_map;

/* A map with nbuckets buckets (rounded up to a power of two), or NULL. */
struct gw_map *gw_map_new(size_t nbuckets);

/* Free the map and its keys (not the values). NULL-safe. */
void gw_map_free(struct gw_map *m);

/* The value for key, or NULL. */
void *gw_map_get(const struct gw_map *m, const void *key, size_t len);

/* Insert or replace. 0, or -ENOMEM (map unchanged). value must not be NULL. */
int gw_map_put(struct gw_map *m, const void *key, size_t len, void *value);

/* Remove key; returns its value or NULL when absent. */
void *gw_map_del(struct gw_map *m, const void *key, size_t len);

size_t gw_map_count(const struct gw_map *m);

/* Visit every entry (do not modify the map inside fn). */
void gw_map_each(const struct gw_map *m, void (*fn)(void *value, void *arg), void *arg);

#endif

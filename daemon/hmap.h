/* SPDX-License-Identifier: MIT */
/*
 * hmap.h - an intrusive hash map, and container_of.
 *
 * The daemon finds peers by id and by queue name, groups by pattern and
 * name, timers by id and per-uid accounts by uid.  Each of those objects
 * embeds a struct hmap_node; the map only chains nodes by a hash the
 * caller computes, and the caller compares keys while it walks the nodes
 * of one hash.  So one map serves every key type without callbacks, and
 * inserting or removing never allocates a node (the bucket array doubles
 * as the map fills, halving never).
 *
 *	struct peer *p;
 *	HMAP_FOR_EACH_HASH(node, &s->peers_by_id, id)
 *		if ((p = container_of(node, struct peer, id_node))->id == id)
 *			return p;
 */
#ifndef MQBUS_HMAP_H
#define MQBUS_HMAP_H

#include <stddef.h>
#include <stdint.h>

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct hmap_node {
	struct hmap_node *next;
	uint32_t hash;
};

struct hmap {
	struct hmap_node **buckets;
	size_t n_buckets; /* 0 or a power of two */
	size_t count;
	uint32_t seed; /* random: the basis of string hashes */
};

/* An empty map; it allocates on the first insert. */
void hmap_init(struct hmap *map);
/* Frees the bucket array; the nodes are the caller's. */
void hmap_deinit(struct hmap *map);

/*
 * Adds node under hash.  Returns 0, or -ENOMEM when the bucket array had
 * to grow and could not (the node is not added then).
 */
int hmap_insert(struct hmap *map, struct hmap_node *node, uint32_t hash);
/* Removes a node that is in the map. */
void hmap_remove(struct hmap *map, struct hmap_node *node);

/* The first node with this hash, and the next one after node; NULL at
 * the end.  Other hashes of the same bucket are skipped. */
struct hmap_node *hmap_first_hash(const struct hmap *map, uint32_t hash);
struct hmap_node *hmap_next_hash(const struct hmap_node *node);

#define HMAP_FOR_EACH_HASH(node, map, hash)                      \
	for ((node) = hmap_first_hash((map), (hash)); (node); \
	     (node) = hmap_next_hash(node))

/*
 * Hashes for keys.  Strings are chosen by clients, so their hash starts
 * from a basis that includes the map's random seed (pass map->seed, or a
 * hash of a first key part for a key of two strings).
 */
uint32_t hmap_hash_string(const char *s, uint32_t basis);
uint32_t hmap_hash_bytes(const void *p, size_t len, uint32_t basis);
uint32_t hmap_hash_int(uint32_t x);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * hmap.c - the intrusive hash map of hmap.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "daemon/hmap.h"

void hmap_init(struct hmap *map)
{
	map->buckets = NULL;
	map->n_buckets = 0;
	map->count = 0;
	/* without entropy the map still works, just predictably */
	if (getrandom(&map->seed, sizeof(map->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(map->seed))
		map->seed = (uint32_t)((uintptr_t)map >> 4);
}

void hmap_deinit(struct hmap *map)
{
	free(map->buckets);
	map->buckets = NULL;
	map->n_buckets = 0;
	map->count = 0;
}

static struct hmap_node **hmap_bucket(const struct hmap *map, uint32_t hash)
{
	return &map->buckets[hash & (map->n_buckets - 1)];
}

static int hmap_grow(struct hmap *map)
{
	size_t n = map->n_buckets ? map->n_buckets * 2 : 16;
	struct hmap_node **old = map->buckets;
	size_t old_n = map->n_buckets;

	map->buckets = calloc(n, sizeof(*map->buckets));
	if (!map->buckets) {
		map->buckets = old;
		return -ENOMEM;
	}
	map->n_buckets = n;
	for (size_t i = 0; i < old_n; i++) {
		while (old[i]) {
			struct hmap_node *node = old[i], **b;

			old[i] = node->next;
			b = hmap_bucket(map, node->hash);
			node->next = *b;
			*b = node;
		}
	}
	free(old);
	return 0;
}

int hmap_insert(struct hmap *map, struct hmap_node *node, uint32_t hash)
{
	struct hmap_node **b;

	if (map->count >= map->n_buckets && hmap_grow(map) < 0)
		return -ENOMEM;
	node->hash = hash;
	b = hmap_bucket(map, hash);
	node->next = *b;
	*b = node;
	map->count++;
	return 0;
}

void hmap_remove(struct hmap *map, struct hmap_node *node)
{
	struct hmap_node **b = hmap_bucket(map, node->hash);

	while (*b != node)
		b = &(*b)->next;
	*b = node->next;
	node->next = NULL;
	map->count--;
}

static struct hmap_node *hmap_skip(struct hmap_node *node, uint32_t hash)
{
	while (node && node->hash != hash)
		node = node->next;
	return node;
}

struct hmap_node *hmap_first_hash(const struct hmap *map, uint32_t hash)
{
	if (map->n_buckets == 0)
		return NULL;
	return hmap_skip(*hmap_bucket(map, hash), hash);
}

struct hmap_node *hmap_next_hash(const struct hmap_node *node)
{
	return hmap_skip(node->next, node->hash);
}

/* FNV-1a, then a finalizer: FNV leaves the low bits weak, and tables
 * index by them */
uint32_t hmap_hash_bytes(const void *p, size_t len, uint32_t basis)
{
	const unsigned char *b = p;
	uint32_t h = 2166136261u ^ basis;

	while (len--) {
		h ^= *b++;
		h *= 16777619u;
	}
	return hmap_hash_int(h);
}

uint32_t hmap_hash_string(const char *s, uint32_t basis)
{
	return hmap_hash_bytes(s, strlen(s), basis);
}

/* a finalizer that spreads every input bit over the low bits the
 * buckets are indexed by */
uint32_t hmap_hash_int(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x85ebca6bu;
	x ^= x >> 13;
	x *= 0xc2b2ae35u;
	x ^= x >> 16;
	return x;
}

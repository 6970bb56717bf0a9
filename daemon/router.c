/* SPDX-License-Identifier: MIT */
/*
 * router.c - topic subscriptions and matching.
 *
 * The subscriptions live in a trie with one node per pattern level.  A node
 * finds its literal children through a small open-addressing hash table
 * keyed by the level text, and keeps its '+' child apart so that matching
 * can follow both without searching.  Subscriptions that end at a node and
 * subscriptions to "<node>/#" are two subscriber lists of that node.
 * Matching a topic walks its levels from the root, following the literal
 * child and recursing into the '+' child, and reports the '#' list of every
 * node it passes and the exact list of the nodes it ends on.
 *
 * The daemon may hold hundreds of thousands of subscriptions, most of them
 * on long chains of single-child nodes, so the node is kept small: the
 * level text is stored inline, a lone child or a lone subscriber is held in
 * the pointer that would otherwise point to its array, and capacities are
 * kept as shifts.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "daemon/hmap.h"
#include "daemon/router.h"
#include "proto/proto.h"

/* A valid pattern has at most this many levels ("a/a/.../a"). */
#define ROUTER_MAX_LEVELS ((PROTO_TOPIC_MAX + 1) / 2)

/* the smallest child table; two children fit in it below the load limit */
#define NODE_TABLE_MIN_SHIFT 2

enum {
	SUBS_EXACT, /* patterns ending at this node */
	SUBS_MULTI, /* "<this node>/#" */
	SUBS_KINDS,
};

struct node {
	/*
	 * One child is held directly; from two on they live in a table of
	 * 1 << kids_shift slots, linear probing, no tombstones.
	 */
	union {
		struct node *one;
		struct node **tab;
	} kids;
	struct node *plus; /* the '+' child */
	/*
	 * subs[k] is the subscriber itself while n_subs[k] is 1, else an
	 * array of 1 << subs_shift[k] pointers.
	 */
	void *subs[SUBS_KINDS];
	uint32_t n_kids;
	uint32_t n_subs[SUBS_KINDS];
	uint8_t subs_shift[SUBS_KINDS];
	uint8_t kids_shift;
	uint8_t key_len; /* 0 for the root and for '+' children */
	char key[];      /* the level text, not NUL-terminated */
};

struct router {
	struct node *root;
	size_t count;
	/*
	 * Clients choose the level names; a random seed per router makes it
	 * hard to choose names that collide and turn each probe into a scan.
	 */
	uint32_t seed;
};

static struct node *node_new(const char *key, size_t len)
{
	struct node *n = calloc(1, sizeof(*n) + len);

	if (!n)
		return NULL;
	memcpy(n->key, key, len);
	n->key_len = (uint8_t)len;
	return n;
}

static bool node_is_empty(const struct node *n)
{
	return n->n_kids == 0 && !n->plus && n->n_subs[SUBS_EXACT] == 0 &&
	       n->n_subs[SUBS_MULTI] == 0;
}

static bool node_key_is(const struct node *n, const char *key, size_t len)
{
	return n->key_len == len && memcmp(n->key, key, len) == 0;
}

static size_t node_slot(const struct router *r, const struct node *parent,
			const char *key, size_t len)
{
	return hmap_hash_bytes(key, len, r->seed) &
	       (((size_t)1 << parent->kids_shift) - 1);
}

static struct node *node_find(const struct router *r,
			      const struct node *parent, const char *key,
			      size_t len)
{
	size_t mask, i;

	if (parent->n_kids == 0)
		return NULL;
	if (parent->n_kids == 1) {
		if (node_key_is(parent->kids.one, key, len))
			return parent->kids.one;
		return NULL;
	}

	mask = ((size_t)1 << parent->kids_shift) - 1;
	for (i = node_slot(r, parent, key, len);; i = (i + 1) & mask) {
		struct node *c = parent->kids.tab[i];

		if (!c)
			return NULL;
		if (node_key_is(c, key, len))
			return c;
	}
}

/* Puts child into a table known to have a free slot and not to hold it. */
static void node_table_put(const struct router *r, struct node *parent,
			   struct node *child)
{
	size_t mask = ((size_t)1 << parent->kids_shift) - 1;
	size_t i = node_slot(r, parent, child->key, child->key_len);

	while (parent->kids.tab[i])
		i = (i + 1) & mask;
	parent->kids.tab[i] = child;
}

/* Moves the children (two or more) into a new table of 1 << shift slots. */
static int node_table_resize(const struct router *r, struct node *parent,
			     unsigned shift)
{
	struct node **old = parent->kids.tab;
	size_t old_cap = (size_t)1 << parent->kids_shift, i;
	struct node **tab = calloc((size_t)1 << shift, sizeof(*tab));

	if (!tab)
		return -ENOMEM;
	parent->kids.tab = tab;
	parent->kids_shift = (uint8_t)shift;
	for (i = 0; i < old_cap; i++)
		if (old[i])
			node_table_put(r, parent, old[i]);
	free(old);
	return 0;
}

static int node_add_child(const struct router *r, struct node *parent,
			  struct node *child)
{
	size_t cap;

	if (parent->n_kids == 0) {
		parent->kids.one = child;
		parent->n_kids = 1;
		return 0;
	}

	if (parent->n_kids == 1) {
		struct node *first = parent->kids.one;
		struct node **tab;

		tab = calloc((size_t)1 << NODE_TABLE_MIN_SHIFT, sizeof(*tab));
		if (!tab)
			return -ENOMEM;
		parent->kids.tab = tab;
		parent->kids_shift = NODE_TABLE_MIN_SHIFT;
		node_table_put(r, parent, first);
		node_table_put(r, parent, child);
		parent->n_kids = 2;
		return 0;
	}

	if (parent->n_kids == UINT32_MAX)
		return -ENOMEM;
	/* keep the load at most 3/4 so that probe runs stay short */
	cap = (size_t)1 << parent->kids_shift;
	if ((size_t)(parent->n_kids + 1) * 4 > cap * 3) {
		int ret = node_table_resize(r, parent, parent->kids_shift + 1u);

		if (ret < 0)
			return ret;
	}
	node_table_put(r, parent, child);
	parent->n_kids++;
	return 0;
}

static void node_remove_child(const struct router *r, struct node *parent,
			      struct node *child)
{
	size_t cap, mask, i, j;

	if (parent->n_kids == 1) {
		parent->kids.one = NULL;
		parent->n_kids = 0;
		return;
	}

	cap = (size_t)1 << parent->kids_shift;
	mask = cap - 1;
	i = node_slot(r, parent, child->key, child->key_len);
	while (parent->kids.tab[i] != child)
		i = (i + 1) & mask;

	/*
	 * Without tombstones, every entry of the run after the hole that
	 * would no longer be reachable from its home slot moves into it.
	 */
	parent->kids.tab[i] = NULL;
	for (j = (i + 1) & mask; parent->kids.tab[j]; j = (j + 1) & mask) {
		struct node *c = parent->kids.tab[j];
		size_t home = node_slot(r, parent, c->key, c->key_len);

		/* is home cyclically within (i, j]?  Then c stays. */
		if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		parent->kids.tab[i] = c;
		parent->kids.tab[j] = NULL;
		i = j;
	}
	parent->n_kids--;

	if (parent->n_kids == 1) {
		struct node **tab = parent->kids.tab;

		for (i = 0; !tab[i]; i++)
			;
		parent->kids.one = tab[i];
		parent->kids_shift = 0;
		free(tab);
	} else if (parent->kids_shift > NODE_TABLE_MIN_SHIFT &&
		   (size_t)parent->n_kids * 8 <= cap) {
		/* Shrinking late keeps add/remove at a size boundary from
		 * rehashing each time; if it fails the big table serves. */
		node_table_resize(r, parent, parent->kids_shift - 1u);
	}
}

/* The subscribers of kind k, as an array of n_subs[k] pointers. */
static void *const *node_subs(const struct node *n, int k)
{
	return n->n_subs[k] > 1 ? (void *const *)n->subs[k] : &n->subs[k];
}

static bool node_has_sub(const struct node *n, int k, const void *sub,
			 uint32_t *ret_index)
{
	void *const *v = node_subs(n, k);
	uint32_t i;

	for (i = 0; i < n->n_subs[k]; i++) {
		if (v[i] == sub) {
			if (ret_index)
				*ret_index = i;
			return true;
		}
	}
	return false;
}

static int node_add_sub(struct node *n, int k, void *sub)
{
	uint32_t count = n->n_subs[k];
	void **v;

	if (count == 0) {
		n->subs[k] = sub;
	} else if (count == 1) {
		v = malloc(2 * sizeof(*v));
		if (!v)
			return -ENOMEM;
		v[0] = n->subs[k];
		v[1] = sub;
		n->subs[k] = v;
		n->subs_shift[k] = 1;
	} else {
		v = n->subs[k];
		if (count == (uint32_t)1 << n->subs_shift[k]) {
			if (n->subs_shift[k] >= 31)
				return -ENOMEM;
			v = realloc(v, ((size_t)count * 2) * sizeof(*v));
			if (!v)
				return -ENOMEM;
			n->subs[k] = v;
			n->subs_shift[k]++;
		}
		v[count] = sub;
	}
	n->n_subs[k] = count + 1;
	return 0;
}

static void node_remove_sub(struct node *n, int k, uint32_t index)
{
	uint32_t count = n->n_subs[k];
	unsigned shift;
	void **v;

	if (count == 1) {
		n->subs[k] = NULL;
		n->n_subs[k] = 0;
		return;
	}

	v = n->subs[k];
	if (count == 2) {
		n->subs[k] = v[1 - index];
		n->subs_shift[k] = 0;
		n->n_subs[k] = 1;
		free(v);
		return;
	}

	/* the order of subscribers carries no meaning */
	v[index] = v[count - 1];
	n->n_subs[k] = --count;

	/*
	 * Halve only at a quarter full, so that adding and removing around
	 * one size does not realloc each time.  A failure keeps the larger
	 * array.
	 */
	shift = n->subs_shift[k];
	if (shift > 2 && count <= (uint32_t)1 << (shift - 2)) {
		v = realloc(v, ((size_t)1 << (shift - 1)) * sizeof(*v));
		if (v) {
			n->subs[k] = v;
			n->subs_shift[k]--;
		}
	}
}

static void node_free(struct node *n)
{
	int k;

	if (!n)
		return;
	if (n->n_kids == 1) {
		node_free(n->kids.one);
	} else if (n->n_kids > 1) {
		size_t i, cap = (size_t)1 << n->kids_shift;

		for (i = 0; i < cap; i++)
			node_free(n->kids.tab[i]);
		free(n->kids.tab);
	}
	node_free(n->plus);
	for (k = 0; k < SUBS_KINDS; k++)
		if (n->n_subs[k] > 1)
			free(n->subs[k]);
	free(n);
}

/*
 * Frees the empty nodes at the bottom of path[1..depth] (path[0] is the
 * root, which stays).
 */
static void node_prune(const struct router *r, struct node **path,
		       size_t depth)
{
	for (; depth > 0; depth--) {
		struct node *n = path[depth], *parent = path[depth - 1];

		if (!node_is_empty(n))
			return;
		if (parent->plus == n)
			parent->plus = NULL;
		else
			node_remove_child(r, parent, n);
		free(n);
	}
}

static size_t node_call(const struct node *n, int k, router_match_fn fn,
			void *userdata)
{
	void *const *v = node_subs(n, k);
	uint32_t i, count = n->n_subs[k];

	if (fn)
		for (i = 0; i < count; i++)
			fn(v[i], userdata);
	return count;
}

/*
 * Reports everything below n that matches topic (the len bytes left after
 * the levels that led to n).  The literal path is followed in a loop; only
 * a '+' child costs a recursion, so the depth is bounded by the depth of
 * the trie.
 */
static size_t node_match(const struct router *r, const struct node *n,
			 const char *topic, size_t len, router_match_fn fn,
			 void *userdata)
{
	size_t calls = 0;

	for (;;) {
		const char *slash, *rest;
		size_t level, rest_len;

		/* "x/#" matches x itself as well as all below */
		calls += node_call(n, SUBS_MULTI, fn, userdata);
		if (len == 0)
			return calls + node_call(n, SUBS_EXACT, fn, userdata);

		slash = memchr(topic, '/', len);
		level = slash ? (size_t)(slash - topic) : len;
		rest = slash ? slash + 1 : topic + len;
		rest_len = slash ? len - level - 1 : 0;

		if (n->plus)
			calls += node_match(r, n->plus, rest, rest_len, fn,
					    userdata);
		n = node_find(r, n, topic, level);
		if (!n)
			return calls;
		topic = rest;
		len = rest_len;
	}
}

/*
 * Splits off the first level of the len bytes at *p: returns its length
 * and advances *p and *len past it and its '/'.
 */
static size_t pattern_next_level(const char **p, size_t *len)
{
	const char *slash = memchr(*p, '/', *len);
	size_t level = slash ? (size_t)(slash - *p) : *len;

	*p += slash ? level + 1 : level;
	*len -= slash ? level + 1 : level;
	return level;
}

static bool level_is(const char *level, size_t len, char c)
{
	return len == 1 && level[0] == c;
}

struct router *router_new(void)
{
	struct router *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->root = node_new("", 0);
	if (!r->root) {
		free(r);
		return NULL;
	}
	/* Without entropy the table still works, just predictably. */
	if (getrandom(&r->seed, sizeof(r->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(r->seed))
		r->seed = (uint32_t)((uintptr_t)r >> 4);
	return r;
}

struct router *router_free(struct router *r)
{
	if (r) {
		node_free(r->root);
		free(r);
	}
	return NULL;
}

int router_subscribe(struct router *r, const char *pattern, void *subscriber)
{
	struct node *path[ROUTER_MAX_LEVELS + 1];
	size_t depth = 0, len;
	int kind = SUBS_EXACT, ret;

	if (!r || !pattern)
		return -EINVAL;
	len = strlen(pattern);
	if (!proto_topic_valid(pattern, len, true))
		return -EINVAL;

	path[0] = r->root;
	while (len > 0) {
		struct node *parent = path[depth], *child;
		const char *level = pattern;
		size_t level_len = pattern_next_level(&pattern, &len);

		if (level_is(level, level_len, '#')) {
			kind = SUBS_MULTI;
			break;
		}
		/* the validator's limits are what make path[] big enough */
		if (depth == ROUTER_MAX_LEVELS || level_len > UINT8_MAX) {
			ret = -EINVAL;
			goto fail;
		}

		if (level_is(level, level_len, '+')) {
			child = parent->plus;
			if (!child) {
				child = node_new("", 0);
				if (!child) {
					ret = -ENOMEM;
					goto fail;
				}
				parent->plus = child;
			}
		} else {
			child = node_find(r, parent, level, level_len);
			if (!child) {
				child = node_new(level, level_len);
				if (!child) {
					ret = -ENOMEM;
					goto fail;
				}
				ret = node_add_child(r, parent, child);
				if (ret < 0) {
					free(child);
					goto fail;
				}
			}
		}
		path[++depth] = child;
	}

	if (node_has_sub(path[depth], kind, subscriber, NULL)) {
		ret = -EEXIST;
		goto fail;
	}
	ret = node_add_sub(path[depth], kind, subscriber);
	if (ret < 0)
		goto fail;
	r->count++;
	return 0;

fail:
	/* nodes made for this pattern are still empty: drop them again */
	node_prune(r, path, depth);
	return ret;
}

int router_unsubscribe(struct router *r, const char *pattern,
		       void *subscriber)
{
	struct node *path[ROUTER_MAX_LEVELS + 1];
	size_t depth = 0, len;
	int kind = SUBS_EXACT;
	uint32_t index;

	if (!r || !pattern)
		return -EINVAL;
	len = strlen(pattern);
	if (!proto_topic_valid(pattern, len, true))
		return -EINVAL;

	path[0] = r->root;
	while (len > 0) {
		struct node *child;
		const char *level = pattern;
		size_t level_len = pattern_next_level(&pattern, &len);

		if (level_is(level, level_len, '#')) {
			kind = SUBS_MULTI;
			break;
		}
		if (depth == ROUTER_MAX_LEVELS)
			return -ENOENT;
		if (level_is(level, level_len, '+'))
			child = path[depth]->plus;
		else
			child = node_find(r, path[depth], level, level_len);
		if (!child)
			return -ENOENT;
		path[++depth] = child;
	}

	if (!node_has_sub(path[depth], kind, subscriber, &index))
		return -ENOENT;
	node_remove_sub(path[depth], kind, index);
	r->count--;
	node_prune(r, path, depth);
	return 0;
}

/* A NULL fn only counts the matches. */
size_t router_match(const struct router *r, const char *topic,
		    router_match_fn fn, void *userdata)
{
	/* "" has no levels; without this check "#" would match it */
	if (!r || !topic || !*topic)
		return 0;
	return node_match(r, r->root, topic, strlen(topic), fn, userdata);
}

static void node_walk_all(const struct node *n, router_match_fn fn,
			  void *userdata)
{
	node_call(n, SUBS_EXACT, fn, userdata);
	if (n->n_kids == 1) {
		node_walk_all(n->kids.one, fn, userdata);
	} else if (n->n_kids > 1) {
		size_t cap = (size_t)1 << n->kids_shift;

		for (size_t i = 0; i < cap; i++)
			if (n->kids.tab[i])
				node_walk_all(n->kids.tab[i], fn, userdata);
	}
}

/*
 * Reports the exact subscribers of the literal nodes below n that pattern
 * (the len bytes left of it) covers.  '+' visits every literal child, '#'
 * the node and everything below it; the trie's own '+' children hold
 * wildcard patterns, which are no concrete topics, and are skipped.
 */
static void node_walk(const struct router *r, const struct node *n,
		      const char *pattern, size_t len, router_match_fn fn,
		      void *userdata)
{
	for (;;) {
		const char *level = pattern;
		size_t level_len;

		if (len == 0) {
			node_call(n, SUBS_EXACT, fn, userdata);
			return;
		}
		level_len = pattern_next_level(&pattern, &len);
		if (level_is(level, level_len, '#')) {
			node_walk_all(n, fn, userdata);
			return;
		}
		if (level_is(level, level_len, '+')) {
			if (n->n_kids == 1) {
				node_walk(r, n->kids.one, pattern, len, fn,
					  userdata);
			} else if (n->n_kids > 1) {
				size_t cap = (size_t)1 << n->kids_shift;

				for (size_t i = 0; i < cap; i++)
					if (n->kids.tab[i])
						node_walk(r, n->kids.tab[i],
							  pattern, len, fn,
							  userdata);
			}
			return;
		}
		n = node_find(r, n, level, level_len);
		if (!n)
			return;
	}
}

void router_walk(const struct router *r, const char *pattern,
		 router_match_fn fn, void *userdata)
{
	size_t len;

	if (!r || !pattern)
		return;
	len = strlen(pattern);
	if (len == 0 || !proto_topic_valid(pattern, len, true))
		return;
	node_walk(r, r->root, pattern, len, fn, userdata);
}

size_t router_count(const struct router *r)
{
	return r ? r->count : 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * router.h - topic subscriptions and matching.
 *
 * A trie with one node per topic level; each node keeps a hash table of its
 * literal children, a separate '+' child and the subscribers of '#' below
 * it.  Matching a topic walks its levels once, following the literal child
 * and the '+' child, so its cost depends on the topic and the wildcard
 * subscriptions along its path, never on the number of unrelated
 * subscriptions.  Matching does not allocate.
 *
 * A subscriber is an opaque pointer owned by the caller.  The router does
 * not deduplicate across patterns: a subscriber with "a/#" and "a/+" gets two
 * callbacks for "a/b"; the caller filters (the daemon stamps each client
 * with the sequence number of the message being routed).
 */
#ifndef MQBUS_ROUTER_H
#define MQBUS_ROUTER_H

#include <stddef.h>

struct router;

typedef void (*router_match_fn)(void *subscriber, void *userdata);

/* A new empty router, or NULL when out of memory. */
struct router *router_new(void);

/* Frees the router and all its nodes; subscribers are not touched.
 * Accepts NULL; returns NULL. */
struct router *router_free(struct router *r);

/*
 * Adds subscriber under pattern (validated with proto_topic_valid(...,
 * true)).  Returns 0, -EINVAL for a bad pattern, -EEXIST if this subscriber
 * already has this exact pattern, -ENOMEM.
 */
int router_subscribe(struct router *r, const char *pattern, void *subscriber);

/* Removes it.  Returns 0, -EINVAL for a bad pattern, -ENOENT if absent.
 * Empty nodes are freed. */
int router_unsubscribe(struct router *r, const char *pattern,
		       void *subscriber);

/*
 * Calls fn(subscriber, userdata) for every subscription whose pattern
 * matches topic (a concrete topic, assumed valid).  fn must not change the
 * router.  Returns the number of calls.
 */
size_t router_match(const struct router *r, const char *topic,
		    router_match_fn fn, void *userdata);

/*
 * The other way round, for a router whose entries are concrete topics
 * (the retained values): calls fn(subscriber, userdata) for every entry
 * subscribed under a concrete topic that pattern ('+', '#') matches.  It
 * visits only the part of the trie the pattern reaches, so its cost does
 * not grow with entries in other subtrees.  fn must not change the
 * router.
 */
void router_walk(const struct router *r, const char *pattern,
		 router_match_fn fn, void *userdata);

/* Number of subscriptions (pattern, subscriber pairs) held. */
size_t router_count(const struct router *r);

#endif

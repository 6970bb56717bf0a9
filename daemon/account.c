/* SPDX-License-Identifier: MIT */
/*
 * account.c - per-uid accounts.
 */
#include <errno.h>
#include <stdlib.h>

#include "daemon/account.h"

void account_table_init(struct account_table *t)
{
	hmap_init(&t->by_uid);
}

static struct account *account_find(const struct account_table *t, uid_t uid)
{
	struct hmap_node *node;

	HMAP_FOR_EACH_HASH(node, &t->by_uid, hmap_hash_int((uint32_t)uid)) {
		struct account *a = container_of(node, struct account, node);

		if (a->uid == uid)
			return a;
	}
	return NULL;
}

void account_table_deinit(struct account_table *t)
{
	for (size_t i = 0; i < t->by_uid.n_buckets; i++) {
		while (t->by_uid.buckets[i]) {
			struct account *a = container_of(t->by_uid.buckets[i],
							 struct account, node);

			hmap_remove(&t->by_uid, &a->node);
			free(a);
		}
	}
	hmap_deinit(&t->by_uid);
}

uint64_t account_held(const struct account_table *t, uid_t uid,
		      enum account_item item)
{
	const struct account *a = account_find(t, uid);

	return a ? a->held[item] : 0;
}

int account_charge_n(struct account_table *t, uid_t uid,
		     enum account_item item, uint64_t n)
{
	struct account *a = account_find(t, uid);

	if (!a) {
		a = calloc(1, sizeof(*a));
		if (!a)
			return -ENOMEM;
		a->uid = uid;
		if (hmap_insert(&t->by_uid, &a->node,
				hmap_hash_int((uint32_t)uid)) < 0) {
			free(a);
			return -ENOMEM;
		}
	}
	a->held[item] += n;
	return 0;
}

void account_credit_n(struct account_table *t, uid_t uid,
		      enum account_item item, uint64_t n)
{
	struct account *a = account_find(t, uid);

	if (!a)
		return;
	a->held[item] = a->held[item] > n ? a->held[item] - n : 0;
	for (int i = 0; i < ACCOUNT_ITEMS; i++)
		if (a->held[i])
			return;
	hmap_remove(&t->by_uid, &a->node);
	free(a);
}

void account_clear_all(struct account_table *t, enum account_item item)
{
	for (size_t i = 0; i < t->by_uid.n_buckets; i++) {
		struct hmap_node *node = t->by_uid.buckets[i], *next;

		for (; node; node = next) {
			struct account *a =
				container_of(node, struct account, node);

			next = node->next;
			if (a->held[item])
				account_credit_n(t, a->uid, item,
						 a->held[item]);
		}
	}
}

int account_charge(struct account_table *t, uid_t uid,
		   enum account_item item)
{
	return account_charge_n(t, uid, item, 1);
}

void account_credit(struct account_table *t, uid_t uid,
		    enum account_item item)
{
	account_credit_n(t, uid, item, 1);
}

/* SPDX-License-Identifier: MIT */
/*
 * account.h - what each uid holds on the bus, counted as it changes.
 *
 * Every peer and every timer is charged to its uid's account when it is
 * made and credited when it goes, so a per-uid limit is one look-up and
 * one comparison, never a scan.  An account exists while it holds
 * anything.
 */
#ifndef MQBUS_ACCOUNT_H
#define MQBUS_ACCOUNT_H

#include <stdint.h>
#include <sys/types.h>

#include "daemon/hmap.h"

enum account_item {
	ACCOUNT_PEERS,
	ACCOUNT_TIMERS,
	ACCOUNT_TIMER_RATE, /* firings per 1000 s of its periodic timers */
	ACCOUNT_RETAINED,
	ACCOUNT_RETAINED_BYTES,
	ACCOUNT_PENDING_MEM, /* memory held for its slow subscriptions */
	ACCOUNT_SUBS,	     /* subscriptions, group memberships, monitors */
	ACCOUNT_REQUESTS,    /* requests in flight */
	ACCOUNT_QUERY_COST,  /* items its QUERY parts walked this second */
	ACCOUNT_STAT_TOPICS, /* entries it made in this interval's topic
				stats table (stats.c) */
	ACCOUNT_ITEMS,
};

struct account {
	struct hmap_node node;
	uid_t uid;
	uint64_t held[ACCOUNT_ITEMS];
};

struct account_table {
	struct hmap by_uid;
};

void account_table_init(struct account_table *t);
/* Frees every account left (they should all be empty by then). */
void account_table_deinit(struct account_table *t);

/* What uid holds of item (0 for a uid without an account). */
uint64_t account_held(const struct account_table *t, uid_t uid,
		      enum account_item item);

/*
 * Charges n of item to uid, making its account if needed.  Returns 0 or
 * -ENOMEM.
 */
int account_charge_n(struct account_table *t, uid_t uid,
		     enum account_item item, uint64_t n);
/* Credits n charged before; an account that holds nothing goes. */
void account_credit_n(struct account_table *t, uid_t uid,
		      enum account_item item, uint64_t n);

/* One of item. */
int account_charge(struct account_table *t, uid_t uid,
		   enum account_item item);
/* Sets item to 0 in every account (a per-second share starts anew). */
void account_clear_all(struct account_table *t, enum account_item item);
void account_credit(struct account_table *t, uid_t uid,
		    enum account_item item);

#endif

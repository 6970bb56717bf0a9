/* SPDX-License-Identifier: MIT */
/*
 * check_retain.c - unit tests of the retained-value store: which values a
 * subscription's pattern reaches (the same matching rules as routing, on
 * the same trie), and keeping, replacing and clearing values.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/account.h"
#include "daemon/msgbuf.h"
#include "daemon/retain.h"
#include "proto/proto.h"

static struct msgbuf_pool pool;

/* A stamped DELIVER of topic with payload, as the daemon keeps it. */
static struct msgbuf *deliver(const char *topic, const char *payload)
{
	struct msgbuf *m = msgbuf_get(&pool, 512);
	struct proto_header h;
	int n;

	ck_assert_ptr_nonnull(m);
	proto_header_init(&h, PROTO_DELIVER);
	h.seq = 1;
	n = proto_encode(m->data, m->cap, &h, topic, payload,
			 strlen(payload));
	ck_assert_int_gt(n, 0);
	m->len = (size_t)n;
	return m;
}

static void keep(struct retain_store *st, const char *topic,
		 const char *payload, unsigned prio)
{
	struct msgbuf *m = deliver(topic, payload);

	ck_assert_int_eq(retain_set(st, &pool, 0, topic, m, strlen(payload),
				    prio),
			 0);
	msgbuf_unref(m);
}

/* The topics a walk visits, as " a b c" in the order seen. */
static void collect(const char *topic, struct msgbuf *m, unsigned prio,
		    void *arg)
{
	char *out = arg;

	strcat(out, " ");
	strcat(out, topic);
}

/* Whether the walk of pattern visited exactly topic (one of few). */
static bool walk_visits(const struct retain_store *st, const char *pattern,
			const char *topic)
{
	char seen[1024] = "", want[300];

	retain_walk(st, pattern, collect, seen);
	snprintf(want, sizeof(want), " %s", topic);
	for (char *p = seen; (p = strstr(p, want)); p += strlen(want))
		if (p[strlen(want)] == ' ' || p[strlen(want)] == '\0')
			return true;
	return false;
}

START_TEST(check_retain_match)
{
	static const struct {
		const char *pattern, *topic;
		bool match;
	} cases[] = {
		{ "a", "a", true },       { "a", "b", false },
		{ "a", "a/b", false },    { "a/b", "a", false },
		{ "+", "a", true },       { "+", "a/b", false },
		{ "a/+", "a/b", true },   { "a/+", "a", false },
		{ "+/b", "a/b", true },   { "+/+", "a/b", true },
		{ "#", "a", true },       { "#", "a/b/c", true },
		{ "a/#", "a", true },     { "a/#", "a/b/c", true },
		{ "a/#", "ab", false },   { "a/#", "b/a", false },
		{ "a/+/c", "a/b/c", true }, { "a/+/c", "a/b/d", false },
		{ "ab", "a", false },     { "a", "ab", false },
		{ "+/#", "a", true },     { "+/#", "a/b", true },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct retain_store st;

		ck_assert_int_eq(retain_init(&st), 0);
		keep(&st, cases[i].topic, "v", 0);
		/* neighbours the pattern must not reach */
		keep(&st, "zz/other", "v", 0);
		ck_assert_msg(walk_visits(&st, cases[i].pattern,
					  cases[i].topic) == cases[i].match,
			      "'%s' vs '%s' should be %s", cases[i].pattern,
			      cases[i].topic,
			      cases[i].match ? "a match" : "no match");
		retain_deinit(&st);
	}
	ck_assert_uint_eq(pool.live, 0);
}
END_TEST

/* A pattern in one subtree sees that subtree's values, all of them, and
 * nothing of the others. */
START_TEST(check_retain_subtree)
{
	struct retain_store st;
	char seen[4096] = "", topic[64];

	ck_assert_int_eq(retain_init(&st), 0);
	for (int i = 0; i < 50; i++) {
		snprintf(topic, sizeof(topic), "other/%d/x", i);
		keep(&st, topic, "o", 0);
		snprintf(topic, sizeof(topic), "mine/%d", i);
		keep(&st, topic, "m", 0);
	}
	retain_walk(&st, "mine/+", collect, seen);
	ck_assert_ptr_null(strstr(seen, "other"));
	for (int i = 0; i < 50; i++) {
		snprintf(topic, sizeof(topic), " mine/%d", i);
		ck_assert_msg(walk_visits(&st, "mine/+", topic + 1),
			      "%s missing", topic + 1);
	}
	seen[0] = '\0';
	retain_walk(&st, "#", collect, seen);
	ck_assert_uint_eq(strlen(seen) > 0, 1);
	ck_assert_uint_eq(st.count, 100);
	retain_deinit(&st);
}
END_TEST

START_TEST(check_retain_store)
{
	struct retain_store st;
	struct retained *v;
	struct msgbuf *m;
	struct proto_msg pm;

	ck_assert_int_eq(retain_init(&st), 0);
	keep(&st, "s/a", "one", 2);
	keep(&st, "s/a", "two", 4);
	keep(&st, "s/b", "bee", 0);
	ck_assert_uint_eq(st.count, 2);

	/* the newer value replaced the older, and is marked retained */
	v = TAILQ_FIRST(&st.values);
	ck_assert_str_eq(v->topic, "s/a");
	ck_assert_uint_eq(v->prio, 4);
	ck_assert_int_eq(proto_decode(v->m->data, v->m->len, &pm), 0);
	ck_assert_uint_eq(pm.h.payload_len, 3);
	ck_assert_int_eq(memcmp(pm.payload, "two", 3), 0);
	ck_assert(pm.h.flags & PROTO_F_RETAINED);
	/* kept in a buffer of its own size, not a pooled 8 KiB one */
	ck_assert_uint_eq(v->m->cap, v->m->len);

	/* an empty value clears; clearing what is not there is fine */
	m = deliver("s/a", "");
	ck_assert_int_eq(retain_set(&st, &pool, 0, "s/a", m, 0, 0), 0);
	ck_assert_int_eq(retain_set(&st, &pool, 0, "s/none", m, 0, 0), 0);
	msgbuf_unref(m);
	ck_assert_uint_eq(st.count, 1);
	ck_assert_str_eq(TAILQ_FIRST(&st.values)->topic, "s/b");

	/* the bound: a new topic is refused, a kept one still replaced */
	st.max = 1;
	m = deliver("s/c", "sea");
	ck_assert_int_eq(retain_set(&st, &pool, 0, "s/c", m, 3, 0), -ENOSPC);
	msgbuf_unref(m);
	keep(&st, "s/b", "bay", 0);

	retain_deinit(&st);
	ck_assert_uint_eq(pool.live, 0);
	msgbuf_pool_deinit(&pool);
}
END_TEST

/* A uid's share: a count and bytes, a replacement costs only the
 * difference, another uid is not affected, clearing gives it back. */
START_TEST(check_retain_share)
{
	struct account_table acct;
	struct retain_store st;
	struct msgbuf *m;

	account_table_init(&acct);
	ck_assert_int_eq(retain_init(&st), 0);
	st.accounts = &acct;
	st.max_per_uid = 2;
	st.max_bytes_per_uid = 100000;
	m = deliver("q/a", "one");
	ck_assert_int_eq(retain_set(&st, &pool, 1000, "q/a", m, 3, 0), 0);
	ck_assert_int_eq(retain_set(&st, &pool, 1000, "q/a", m, 3, 0), 0);
	msgbuf_unref(m);
	m = deliver("q/b", "two");
	ck_assert_int_eq(retain_set(&st, &pool, 1000, "q/b", m, 3, 0), 0);
	msgbuf_unref(m);
	ck_assert_uint_eq(account_held(&acct, 1000, ACCOUNT_RETAINED), 2);
	m = deliver("q/c", "three");
	ck_assert_int_eq(retain_set(&st, &pool, 1000, "q/c", m, 5, 0),
			 -EDQUOT);
	ck_assert_int_eq(retain_set(&st, &pool, 2000, "q/c", m, 5, 0), 0);
	msgbuf_unref(m);
	/* clearing gives the share back */
	m = deliver("q/a", "");
	ck_assert_int_eq(retain_set(&st, &pool, 1000, "q/a", m, 0, 0), 0);
	msgbuf_unref(m);
	ck_assert_uint_eq(account_held(&acct, 1000, ACCOUNT_RETAINED), 1);
	/* bytes: a value bigger than the share is refused */
	st.max_bytes_per_uid = account_held(&acct, 1000,
					    ACCOUNT_RETAINED_BYTES) + 10;
	m = deliver("q/d", "a payload longer than ten bytes");
	ck_assert_int_eq(retain_set(&st, &pool, 1000, "q/d", m, 31, 0),
			 -EDQUOT);
	msgbuf_unref(m);
	retain_deinit(&st);
	ck_assert_uint_eq(account_held(&acct, 1000, ACCOUNT_RETAINED_BYTES), 0);
	ck_assert_uint_eq(account_held(&acct, 2000, ACCOUNT_RETAINED), 0);
	account_table_deinit(&acct);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("retain");
	TCase *tc = tcase_create("retain");
	SRunner *sr;
	int failed;

	msgbuf_pool_init(&pool);
	tcase_add_test(tc, check_retain_match);
	tcase_add_test(tc, check_retain_subtree);
	tcase_add_test(tc, check_retain_store);
	tcase_add_test(tc, check_retain_share);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* SPDX-License-Identifier: MIT */
/*
 * check_retain.c - unit tests of the retained-value store: the single
 * pattern matcher it uses on subscribe, and keeping, replacing and
 * clearing values.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/msgbuf.h"
#include "daemon/retain.h"
#include "proto/proto.h"

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

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(retain_match(cases[i].pattern, cases[i].topic) ==
				      cases[i].match,
			      "'%s' vs '%s' should be %s", cases[i].pattern,
			      cases[i].topic,
			      cases[i].match ? "a match" : "no match");
}
END_TEST

/* A stamped DELIVER of topic with payload, as the daemon keeps it. */
static struct msgbuf *deliver(const char *topic, const char *payload)
{
	struct msgbuf *m = msgbuf_get(512);
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

START_TEST(check_retain_store)
{
	struct retain_store st;
	struct retained *v;
	struct msgbuf *m;
	struct proto_msg pm;

	ck_assert_int_eq(retain_init(&st), 0);
	m = deliver("s/a", "one");
	ck_assert_int_eq(retain_set(&st, "s/a", m, 3, 2), 0);
	msgbuf_unref(m);
	m = deliver("s/a", "two");
	ck_assert_int_eq(retain_set(&st, "s/a", m, 3, 4), 0);
	msgbuf_unref(m);
	m = deliver("s/b", "bee");
	ck_assert_int_eq(retain_set(&st, "s/b", m, 3, 0), 0);
	msgbuf_unref(m);
	ck_assert_uint_eq(st.count, 2);

	/* the newer value replaced the older, and is marked retained */
	v = TAILQ_FIRST(&st.values);
	ck_assert_str_eq(v->topic, "s/a");
	ck_assert_uint_eq(v->prio, 4);
	ck_assert_int_eq(proto_decode(v->m->data, v->m->len, &pm), 0);
	ck_assert_uint_eq(pm.h.payload_len, 3);
	ck_assert_int_eq(memcmp(pm.payload, "two", 3), 0);
	ck_assert(pm.h.flags & PROTO_F_RETAINED);

	/* an empty value clears; clearing what is not there is fine */
	m = deliver("s/a", "");
	ck_assert_int_eq(retain_set(&st, "s/a", m, 0, 0), 0);
	ck_assert_int_eq(retain_set(&st, "s/none", m, 0, 0), 0);
	msgbuf_unref(m);
	ck_assert_uint_eq(st.count, 1);
	ck_assert_str_eq(TAILQ_FIRST(&st.values)->topic, "s/b");

	retain_deinit(&st);
	ck_assert_uint_eq(msgbuf_live(), 0);
	msgbuf_pool_drain();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("retain");
	TCase *tc = tcase_create("retain");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, check_retain_match);
	tcase_add_test(tc, check_retain_store);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

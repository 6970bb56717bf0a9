/* SPDX-License-Identifier: MIT */
/*
 * check_router.c - unit tests of the subscription trie (daemon/router.c).
 *
 * Every case states exactly which subscribers a topic reaches and how many
 * times, so that a missed match and a spurious or repeated call fail alike.
 * The memory cases measure the heap around the router to show that
 * unsubscribing gives memory back and that a subscription stays small, and
 * a randomized case checks the trie against a naive one-pattern matcher.
 */
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "daemon/router.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

#ifdef TEST_ASAN
/* from <sanitizer/allocator_interface.h>, which not every gcc installs */
size_t __sanitizer_get_current_allocated_bytes(void);
#define HEAP_SLACK 256
#else
/*
 * glibc's per-thread cache keeps up to seven freed chunks of each size and
 * mallinfo2() still counts them as in use.  64 KiB covers that and is
 * less than a leak of 8 bytes for each of the pruning case's 10 000.
 */
#define HEAP_SLACK (64 * 1024)
#endif

/* Subscribers 'A'..'Z' of the small cases; only their addresses matter. */
static char letters[26];
#define SUB(c) ((void *)&letters[(c) - 'A'])

#define REC_LOG 64

/* What one router_match() call did. */
struct rec {
	size_t total;
	void *log[REC_LOG]; /* the first REC_LOG subscribers called */
};

static void rec_fn(void *subscriber, void *userdata)
{
	struct rec *rc = userdata;

	if (rc->total < REC_LOG)
		rc->log[rc->total] = subscriber;
	rc->total++;
}

static size_t rec_count(const struct rec *rc, const void *subscriber)
{
	size_t i, n = 0;

	for (i = 0; i < rc->total && i < REC_LOG; i++)
		if (rc->log[i] == subscriber)
			n++;
	return n;
}

static void rec_match(const struct router *r, const char *topic,
		      struct rec *rc)
{
	size_t ret;

	memset(rc, 0, sizeof(*rc));
	ret = router_match(r, topic, rec_fn, rc);
	ck_assert_uint_eq(ret, rc->total);
}

/*
 * Asserts that topic reaches exactly the subscribers in want, one letter
 * per expected call: "AAB" is two calls for A and one for B.
 */
static void expect_calls(const struct router *r, const char *topic,
			 const char *want)
{
	size_t n_want[26] = { 0 };
	struct rec rc;
	const char *p;
	int i;

	for (p = want; *p; p++)
		n_want[*p - 'A']++;
	rec_match(r, topic, &rc);
	ck_assert_msg(rc.total == strlen(want),
		      "topic '%s': %zu calls, want %zu ('%s')", topic,
		      rc.total, strlen(want), want);
	for (i = 0; i < 26; i++) {
		size_t got = rec_count(&rc, &letters[i]);

		ck_assert_msg(got == n_want[i],
			      "topic '%s': %c called %zu times, want %zu",
			      topic, 'A' + i, got, n_want[i]);
	}
}

static void sub_ok(struct router *r, const char *pattern, char who)
{
	int ret = router_subscribe(r, pattern, SUB(who));

	ck_assert_msg(ret == 0, "subscribe '%s' %c: %d", pattern, who, ret);
}

static void unsub_ok(struct router *r, const char *pattern, char who)
{
	int ret = router_unsubscribe(r, pattern, SUB(who));

	ck_assert_msg(ret == 0, "unsubscribe '%s' %c: %d", pattern, who, ret);
}

/*
 * Bytes the allocator has handed out and not got back, or 0 when that is
 * not known (valgrind's malloc answers mallinfo2() with zeros).
 */
static size_t heap_in_use(void)
{
#ifdef TEST_ASAN
	/* ASan's allocator replaces malloc; mallinfo2() would not see it. */
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();

	/* big blocks (a large child table) are mmapped: hblkhd */
	return mi.uordblks + mi.hblkhd;
#endif
}

START_TEST(test_new_free)
{
	struct router *r = router_new();

	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(router_count(r), 0);
	expect_calls(r, "a", "");
	ck_assert_ptr_null(router_free(r));
	ck_assert_ptr_null(router_free(NULL));
}
END_TEST

START_TEST(test_exact)
{
	struct router *r = router_new();

	sub_ok(r, "a/b/c", 'A');
	sub_ok(r, "x", 'B');
	ck_assert_uint_eq(router_count(r), 2);

	expect_calls(r, "a/b/c", "A");
	expect_calls(r, "x", "B");
	expect_calls(r, "a", "");
	expect_calls(r, "a/b", "");
	expect_calls(r, "a/b/c/d", "");
	expect_calls(r, "a/b/x", "");
	expect_calls(r, "a/x/c", "");
	expect_calls(r, "abc", "");
	expect_calls(r, "a/b/cc", "");
	expect_calls(r, "x/a", "");
	expect_calls(r, "xx", "");
	router_free(r);
}
END_TEST

START_TEST(test_plus_positions)
{
	struct router *r = router_new();

	sub_ok(r, "+/b/c", 'A');
	sub_ok(r, "a/+/c", 'B');
	sub_ok(r, "a/b/+", 'C');

	expect_calls(r, "a/b/c", "ABC");
	expect_calls(r, "x/b/c", "A");
	expect_calls(r, "a/x/c", "B");
	expect_calls(r, "a/b/x", "C");
	expect_calls(r, "x/x/c", "");
	expect_calls(r, "a/b", "");
	expect_calls(r, "b/c", "");
	expect_calls(r, "a/b/c/d", "");
	router_free(r);
}
END_TEST

START_TEST(test_plus_one_level)
{
	struct router *r = router_new();

	sub_ok(r, "+", 'A');
	sub_ok(r, "a/+", 'B');
	sub_ok(r, "+/+", 'C');

	expect_calls(r, "a", "A");
	expect_calls(r, "zzz", "A");
	/* '+' is exactly one level: neither two nor none */
	expect_calls(r, "a/b", "BC");
	expect_calls(r, "b/b", "C");
	expect_calls(r, "a/b/c", "");
	router_free(r);
}
END_TEST

START_TEST(test_hash_root)
{
	struct router *r = router_new();

	sub_ok(r, "#", 'A');

	expect_calls(r, "a", "A");
	expect_calls(r, "a/b", "A");
	expect_calls(r, "x/y/z/w", "A");
	/* "" is no topic: it has no level for '#' to match */
	expect_calls(r, "", "");
	router_free(r);
}
END_TEST

START_TEST(test_hash_below)
{
	struct router *r = router_new();

	sub_ok(r, "a/#", 'A');
	sub_ok(r, "a/b/#", 'B');

	/* the parent level itself matches too */
	expect_calls(r, "a", "A");
	expect_calls(r, "a/b", "AB");
	expect_calls(r, "a/b/c", "AB");
	expect_calls(r, "a/c/d", "A");
	expect_calls(r, "ab", "");
	expect_calls(r, "b", "");
	expect_calls(r, "b/a", "");
	expect_calls(r, "ab/b", "");
	router_free(r);
}
END_TEST

START_TEST(test_plus_hash)
{
	struct router *r = router_new();

	sub_ok(r, "+/#", 'A');
	sub_ok(r, "+/b/#", 'B');

	expect_calls(r, "a", "A");
	expect_calls(r, "a/b", "AB");
	expect_calls(r, "x/b/c/d", "AB");
	expect_calls(r, "a/c", "A");
	expect_calls(r, "b", "A");
	router_free(r);
}
END_TEST

START_TEST(test_several_subscribers)
{
	struct router *r = router_new();

	sub_ok(r, "x/y", 'A');
	sub_ok(r, "x/y", 'B');
	sub_ok(r, "x/y", 'C');
	sub_ok(r, "x/y", 'D');
	ck_assert_uint_eq(router_count(r), 4);
	expect_calls(r, "x/y", "ABCD");
	expect_calls(r, "x", "");

	unsub_ok(r, "x/y", 'B');
	expect_calls(r, "x/y", "ACD");
	unsub_ok(r, "x/y", 'A');
	unsub_ok(r, "x/y", 'D');
	expect_calls(r, "x/y", "C");
	unsub_ok(r, "x/y", 'C');
	expect_calls(r, "x/y", "");
	ck_assert_uint_eq(router_count(r), 0);
	router_free(r);
}
END_TEST

START_TEST(test_overlapping)
{
	static const char *const patterns[] = {
		"a/b", "a/+", "+/b", "+/+", "a/#", "#", "+/#", "a/b/#",
	};
	struct router *r = router_new();
	size_t i;

	for (i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
		sub_ok(r, patterns[i], 'S');
	sub_ok(r, "c/d", 'T');

	/* no deduplication: one call per matching pattern */
	expect_calls(r, "a/b", "SSSSSSSS");
	expect_calls(r, "a/c", "SSSSS");
	expect_calls(r, "c/b", "SSSS");
	expect_calls(r, "c/d", "SSST");
	expect_calls(r, "a", "SSS");
	expect_calls(r, "a/b/c", "SSSS");
	router_free(r);
}
END_TEST

START_TEST(test_duplicate)
{
	struct router *r = router_new();

	sub_ok(r, "a/+/c", 'A');
	ck_assert_int_eq(router_subscribe(r, "a/+/c", SUB('A')), -EEXIST);
	ck_assert_uint_eq(router_count(r), 1);
	/* another subscriber, or a different pattern, is no duplicate */
	sub_ok(r, "a/+/c", 'B');
	sub_ok(r, "a/+/#", 'A');
	sub_ok(r, "a/+", 'A');
	ck_assert_int_eq(router_subscribe(r, "a/+/#", SUB('A')), -EEXIST);
	ck_assert_int_eq(router_subscribe(r, "a/+/c", SUB('B')), -EEXIST);
	ck_assert_uint_eq(router_count(r), 4);
	expect_calls(r, "a/x/c", "AAB");
	router_free(r);
}
END_TEST

START_TEST(test_absent)
{
	struct router *r = router_new();

	ck_assert_int_eq(router_unsubscribe(r, "a/b", SUB('A')), -ENOENT);
	ck_assert_int_eq(router_unsubscribe(r, "#", SUB('A')), -ENOENT);
	sub_ok(r, "a/b", 'A');

	ck_assert_int_eq(router_unsubscribe(r, "a/b", SUB('B')), -ENOENT);
	ck_assert_int_eq(router_unsubscribe(r, "a", SUB('A')), -ENOENT);
	ck_assert_int_eq(router_unsubscribe(r, "a/b/c", SUB('A')), -ENOENT);
	ck_assert_int_eq(router_unsubscribe(r, "a/+", SUB('A')), -ENOENT);
	ck_assert_int_eq(router_unsubscribe(r, "a/#", SUB('A')), -ENOENT);
	ck_assert_int_eq(router_unsubscribe(r, "a/b/#", SUB('A')), -ENOENT);
	ck_assert_int_eq(router_unsubscribe(r, "#", SUB('A')), -ENOENT);
	ck_assert_uint_eq(router_count(r), 1);

	unsub_ok(r, "a/b", 'A');
	ck_assert_int_eq(router_unsubscribe(r, "a/b", SUB('A')), -ENOENT);
	ck_assert_uint_eq(router_count(r), 0);
	expect_calls(r, "a/b", "");
	router_free(r);
}
END_TEST

START_TEST(test_invalid)
{
	static const char *const bad[] = {
		"",     "a//b", "a/b#", "#/a", "/a",   "a/",  "/",
		"a+/b", "a/+b", "##",   "a b", "a/#/", "a/\x7f",
	};
	struct router *r = router_new();
	char longest[300];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(router_subscribe(r, bad[i], SUB('A')) == -EINVAL,
			      "subscribe '%s' accepted", bad[i]);
		ck_assert_msg(router_unsubscribe(r, bad[i], SUB('A')) ==
				      -EINVAL,
			      "unsubscribe '%s' accepted", bad[i]);
	}
	ck_assert_int_eq(router_subscribe(r, NULL, SUB('A')), -EINVAL);
	ck_assert_int_eq(router_unsubscribe(r, NULL, SUB('A')), -EINVAL);

	/* 255 bytes is the limit, 128 levels of "a/.../a" */
	memset(longest, 0, sizeof(longest));
	for (i = 0; i < 255; i++)
		longest[i] = i % 2 ? '/' : 'a';
	sub_ok(r, longest, 'A');
	expect_calls(r, longest, "A");
	longest[254] = '+';
	sub_ok(r, longest, 'B');
	longest[254] = 'a';
	expect_calls(r, longest, "AB");
	longest[255] = 'a';
	ck_assert_int_eq(router_subscribe(r, longest, SUB('A')), -EINVAL);
	ck_assert_uint_eq(router_count(r), 2);
	router_free(r);
}
END_TEST

/*
 * The i-th pattern of the pruning case: literal, '+' and '#' forms that
 * share their first levels, each pattern held by three subscribers.
 */
static void *prune_pair(char *buf, size_t size, unsigned i)
{
	unsigned k = i / 3;

	switch (k % 5) {
	case 0:
		snprintf(buf, size, "n/%u", k);
		break;
	case 1:
		snprintf(buf, size, "n/%u/+/x", k);
		break;
	case 2:
		snprintf(buf, size, "+/%u/#", k);
		break;
	case 3:
		snprintf(buf, size, "n/+/%u", k);
		break;
	default:
		snprintf(buf, size, "%u/deeper/levels/still/#", k);
		break;
	}
	return &letters[i % 3];
}

START_TEST(test_prune)
{
	enum { N = 10000 };
	struct router *r = router_new();
	size_t before, after;
	char pattern[64];
	unsigned i;

	before = heap_in_use();
	for (i = 0; i < N; i++) {
		void *who = prune_pair(pattern, sizeof(pattern), i);

		ck_assert_int_eq(router_subscribe(r, pattern, who), 0);
	}
	ck_assert_uint_eq(router_count(r), N);
	expect_calls(r, "n/5", "ABC");

	/* remove them in another order than they came (7919 is prime) */
	for (i = 0; i < N; i++) {
		unsigned j = (unsigned)(((unsigned long)i * 7919) % N);
		void *who = prune_pair(pattern, sizeof(pattern), j);

		ck_assert_int_eq(router_unsubscribe(r, pattern, who), 0);
	}
	ck_assert_uint_eq(router_count(r), 0);
	expect_calls(r, "n/5", "");
	expect_calls(r, "n/6/a/x", "");

	/* the empty nodes are gone, not just the subscriptions */
	after = heap_in_use();
	router_free(r);
	if (before > 0)
		ck_assert_msg(after <= before + HEAP_SLACK,
			      "heap %zu bytes before, %zu after removing all",
			      before, after);
}
END_TEST

START_TEST(test_compact)
{
	enum { N = 100000 };
	struct router *r = router_new();
	size_t before, used, i;
	char topic[32];

	before = heap_in_use();
	for (i = 0; i < N; i++) {
		snprintf(topic, sizeof(topic), "t/%zu/x", i);
		ck_assert_int_eq(router_subscribe(r, topic, &letters[i % 26]),
				 0);
	}
	used = heap_in_use() - before;
	router_free(r);
	if (before == 0) {
		fprintf(stderr, "check_router: heap use not measurable\n");
		return;
	}
	fprintf(stderr, "check_router: %zu bytes per subscription\n",
		used / N);
	/* the daemon's budget: 100 000 subscriptions well under 32 MiB */
	ck_assert_uint_lt(used / N, 200);
}
END_TEST

START_TEST(test_unrelated)
{
	enum { N = 100000 };
	static char others[N];
	struct router *r = router_new();
	char pattern[32];
	struct rec rc;
	size_t i;

	/* literal and wildcard neighbours of "t/500/x" that must not match */
	for (i = 0; i < N; i++) {
		switch (i % 4) {
		case 0:
			snprintf(pattern, sizeof(pattern), "t/%zu/x", i);
			break;
		case 1:
			snprintf(pattern, sizeof(pattern), "t/%zu/#", i);
			break;
		case 2:
			snprintf(pattern, sizeof(pattern), "+/%zu/+", i);
			break;
		default:
			snprintf(pattern, sizeof(pattern), "u/+/%zu", i);
			break;
		}
		ck_assert_int_eq(router_subscribe(r, pattern, &others[i]), 0);
	}
	sub_ok(r, "t/500/x", 'A');
	sub_ok(r, "t/+/x", 'B');
	sub_ok(r, "t/#", 'C');
	sub_ok(r, "#", 'D');
	sub_ok(r, "+/500/+", 'E');
	sub_ok(r, "t/500/x/#", 'F');
	ck_assert_uint_eq(router_count(r), N + 6);

	/* others[500] is "t/500/x" itself; 501 and 502 are not its kind */
	rec_match(r, "t/500/x", &rc);
	ck_assert_uint_eq(rc.total, 7);
	ck_assert_uint_eq(rec_count(&rc, &others[500]), 1);
	for (i = 0; i < 6; i++)
		ck_assert_uint_eq(rec_count(&rc, &letters[i]), 1);

	/* "+/502/+" and "t/501/#" */
	rec_match(r, "t/502/x", &rc);
	ck_assert_uint_eq(rc.total, 4);
	ck_assert_uint_eq(rec_count(&rc, &others[502]), 1);
	ck_assert_uint_eq(rec_count(&rc, SUB('B')), 1);
	ck_assert_uint_eq(rec_count(&rc, SUB('C')), 1);
	ck_assert_uint_eq(rec_count(&rc, SUB('D')), 1);
	rec_match(r, "t/501", &rc);
	ck_assert_uint_eq(rc.total, 3);
	ck_assert_uint_eq(rec_count(&rc, &others[501]), 1);
	ck_assert_uint_eq(rec_count(&rc, SUB('C')), 1);
	ck_assert_uint_eq(rec_count(&rc, SUB('D')), 1);

	expect_calls(r, "nothing/here", "D");
	router_free(r);
}
END_TEST

/*
 * The reference: does one pattern match one topic?  Level by level, with
 * none of the router's structure.
 */
static bool naive_match(const char *pattern, const char *topic)
{
	bool topic_done = false;

	for (;;) {
		size_t pl = strcspn(pattern, "/"), tl;

		if (pl == 1 && pattern[0] == '#')
			return true;
		if (topic_done)
			return false;
		tl = strcspn(topic, "/");
		if (!(pl == 1 && pattern[0] == '+') &&
		    (pl != tl || memcmp(pattern, topic, pl) != 0))
			return false;
		pattern += pl;
		topic += tl;
		topic_done = *topic == '\0';
		if (!topic_done)
			topic++;
		if (*pattern == '\0')
			return topic_done;
		pattern++;
	}
}

START_TEST(test_naive_match)
{
	/* the reference must be right before it can judge */
	ck_assert(naive_match("a/b", "a/b"));
	ck_assert(!naive_match("a/b", "a"));
	ck_assert(!naive_match("a", "a/b"));
	ck_assert(!naive_match("a/b", "a/bc"));
	ck_assert(naive_match("+", "a"));
	ck_assert(!naive_match("+", "a/b"));
	ck_assert(!naive_match("a/+", "a"));
	ck_assert(naive_match("#", "a/b"));
	ck_assert(naive_match("a/#", "a"));
	ck_assert(naive_match("a/#", "a/b/c"));
	ck_assert(!naive_match("a/#", "ab"));
	ck_assert(naive_match("+/#", "a"));
	ck_assert(naive_match("+/b/#", "a/b"));
	ck_assert(!naive_match("+/b/#", "a"));
}
END_TEST

#define RAND_SUBS 6
#define RAND_STEPS 4000

struct pair {
	char pattern[24];
	int who;
};

static uint64_t rand_state;

static uint32_t rand_next(void)
{
	/* xorshift64*: reproducible from the seed in the failure message */
	rand_state ^= rand_state >> 12;
	rand_state ^= rand_state << 25;
	rand_state ^= rand_state >> 27;
	return (uint32_t)((rand_state * 2685821657736338717ull) >> 32);
}

/*
 * Levels are "n0".."n<names - 1>" in patterns, or '+' a quarter of the
 * time; the last level may be '#'.  Topics may also use "n<names>", which
 * only wildcards match.
 */
static void rand_pattern(char *buf, size_t size, unsigned names)
{
	unsigned levels = 1 + rand_next() % 4, l;
	size_t len = 0;

	for (l = 0; l < levels; l++) {
		const char *sep = l ? "/" : "";

		if (l == levels - 1 && rand_next() % 5 == 0)
			len += (size_t)snprintf(buf + len, size - len, "%s#",
						sep);
		else if (rand_next() % 4 == 0)
			len += (size_t)snprintf(buf + len, size - len, "%s+",
						sep);
		else
			len += (size_t)snprintf(buf + len, size - len, "%sn%u",
						sep, rand_next() % names);
	}
}

/* Appends one level, a '/' first unless it is the first one. */
static void topic_append(char *buf, size_t size, size_t *len,
			 const char *level, int level_len)
{
	*len += (size_t)snprintf(buf + *len, size - *len, "%s%.*s",
				 *len ? "/" : "", level_len, level);
}

static void topic_append_random(char *buf, size_t size, size_t *len,
				unsigned names)
{
	char level[16];

	snprintf(level, sizeof(level), "n%u", rand_next() % (names + 1));
	topic_append(buf, size, len, level, (int)strlen(level));
}

/*
 * A random topic; half the time, when from is given, one that pattern
 * from matches, so that a sparse trie still sees hits.
 */
static void rand_topic(char *buf, size_t size, unsigned names,
		       const char *from)
{
	unsigned levels, l;
	size_t len = 0, n;

	buf[0] = '\0';
	if (from && rand_next() % 2) {
		for (; *from; from += n + (from[n] == '/')) {
			n = strcspn(from, "/");
			if (*from == '#') {
				/* none, one or two levels */
				for (l = rand_next() % 3; l > 0; l--)
					topic_append_random(buf, size, &len,
							    names);
			} else if (*from == '+') {
				topic_append_random(buf, size, &len, names);
			} else {
				topic_append(buf, size, &len, from, (int)n);
			}
		}
		/* "#" filled with no level is no topic: draw afresh */
		if (len > 0)
			return;
	}

	levels = 1 + rand_next() % 5;
	for (l = 0; l < levels; l++)
		topic_append_random(buf, size, &len, names);
}

static ssize_t pairs_find(const struct pair *pairs, size_t n,
			  const char *pattern, int who)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (pairs[i].who == who &&
		    strcmp(pairs[i].pattern, pattern) == 0)
			return (ssize_t)i;
	return -1;
}

static void rand_check_topic(const struct router *r, const struct pair *pairs,
			     size_t n, const char *topic, uint64_t seed)
{
	size_t want[RAND_SUBS] = { 0 }, total = 0, i;
	struct rec rc;
	int w;

	for (i = 0; i < n; i++) {
		if (naive_match(pairs[i].pattern, topic)) {
			want[pairs[i].who]++;
			total++;
		}
	}
	rec_match(r, topic, &rc);
	ck_assert_msg(rc.total == total,
		      "seed %llu topic '%s': %zu calls, want %zu",
		      (unsigned long long)seed, topic, rc.total, total);
	for (w = 0; w < RAND_SUBS; w++) {
		size_t got = rec_count(&rc, &letters[w]);

		ck_assert_msg(got == want[w],
			      "seed %llu topic '%s': %c called %zu times, "
			      "want %zu",
			      (unsigned long long)seed, topic, 'A' + w, got,
			      want[w]);
	}
}

/*
 * Loops 0..3 draw levels from 3 names, so patterns overlap a lot; loops 4
 * and 5 from 60, so that child tables grow, shrink and lose entries from
 * the middle of their probe runs.
 */
START_TEST(test_random)
{
	static struct pair pairs[RAND_STEPS];
	uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(_i + 1);
	unsigned names = _i < 4 ? 3 : 60;
	struct router *r = router_new();
	size_t n = 0, step, before, after;
	char pattern[24], topic[32];

	rand_state = seed;
	before = heap_in_use();
	for (step = 0; step < RAND_STEPS; step++) {
		unsigned op = rand_next() % 100;
		int who = (int)(rand_next() % RAND_SUBS), ret;
		ssize_t at;

		if (op < 55) {
			rand_pattern(pattern, sizeof(pattern), names);
			at = pairs_find(pairs, n, pattern, who);
			ret = router_subscribe(r, pattern, &letters[who]);
			ck_assert_msg(ret == (at < 0 ? 0 : -EEXIST),
				      "seed %llu: subscribe '%s' %c: %d",
				      (unsigned long long)seed, pattern,
				      'A' + who, ret);
			/* at most one pair per step: pairs[] is big enough */
			if (at < 0) {
				strcpy(pairs[n].pattern, pattern);
				pairs[n++].who = who;
			}
		} else if (op < 85) {
			/* mostly something held, sometimes a guess */
			if (n > 0 && op < 75) {
				at = (ssize_t)(rand_next() % n);
				strcpy(pattern, pairs[at].pattern);
				who = pairs[at].who;
			} else {
				rand_pattern(pattern, sizeof(pattern), names);
				at = pairs_find(pairs, n, pattern, who);
			}
			ret = router_unsubscribe(r, pattern, &letters[who]);
			ck_assert_msg(ret == (at < 0 ? -ENOENT : 0),
				      "seed %llu: unsubscribe '%s' %c: %d",
				      (unsigned long long)seed, pattern,
				      'A' + who, ret);
			if (at >= 0)
				pairs[at] = pairs[--n];
		} else {
			rand_topic(topic, sizeof(topic), names,
				   n ? pairs[rand_next() % n].pattern : NULL);
			rand_check_topic(r, pairs, n, topic, seed);
		}
		ck_assert_uint_eq(router_count(r), n);
	}

	for (step = 0; step < 1000; step++) {
		rand_topic(topic, sizeof(topic), names,
			   n ? pairs[rand_next() % n].pattern : NULL);
		rand_check_topic(r, pairs, n, topic, seed);
	}

	while (n > 0) {
		n--;
		ck_assert_int_eq(router_unsubscribe(r, pairs[n].pattern,
						    &letters[pairs[n].who]),
				 0);
	}
	ck_assert_uint_eq(router_count(r), 0);
	after = heap_in_use();
	router_free(r);
	if (before > 0)
		ck_assert_uint_le(after, before + HEAP_SLACK);
}
END_TEST

static Suite *router_suite(void)
{
	Suite *s = suite_create("router");
	TCase *tc;

	tc = tcase_create("match");
	tcase_add_test(tc, test_new_free);
	tcase_add_test(tc, test_exact);
	tcase_add_test(tc, test_plus_positions);
	tcase_add_test(tc, test_plus_one_level);
	tcase_add_test(tc, test_hash_root);
	tcase_add_test(tc, test_hash_below);
	tcase_add_test(tc, test_plus_hash);
	tcase_add_test(tc, test_several_subscribers);
	tcase_add_test(tc, test_overlapping);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_test(tc, test_duplicate);
	tcase_add_test(tc, test_absent);
	tcase_add_test(tc, test_invalid);
	suite_add_tcase(s, tc);

	/* big cases: generous limits for valgrind and sanitizer builds */
	tc = tcase_create("memory");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_prune);
	tcase_add_test(tc, test_compact);
	tcase_add_test(tc, test_unrelated);
	suite_add_tcase(s, tc);

	tc = tcase_create("random");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_naive_match);
	tcase_add_loop_test(tc, test_random, 0, 6);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(router_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

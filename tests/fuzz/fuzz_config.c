/* SPDX-License-Identifier: MIT */
/*
 * fuzz_config.c - libFuzzer target of the config parser: mqbusd.conf(5)
 * with its [bus], [topic "PATTERN"] and [policy] sections
 * (daemon/config_file.c, daemon/policy.c).
 *
 * config_load() reads a path, so the input is written to a memfd and
 * loaded through /proc/self/fd/N: no file on disk, one write per input.
 * Besides what ASan and UBSan catch, the target checks the parser's
 * contract (a refused file leaves the old config byte for byte as it was
 * and says why; an accepted one gives priorities within their bounds)
 * and, for an accepted [policy], that what policy_check_pattern() calls
 * exact is: a pattern it says is allowed (denied) has no topic that
 * policy_check() denies (allows), for two identities and every action.
 * A broken promise aborts, which libFuzzer reports like a crash.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/config_file.h"
#include "daemon/policy.h"
#include "proto/proto.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                    \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "fuzz_config: broken: %s (%s:%d)\n", \
				#cond, __FILE__, __LINE__);                 \
			abort();                                            \
		}                                                           \
	} while (0)

#define FUZZ_MAX_EXTRA 8 /* topic rules whose patterns are probed too */

static int fuzz_fd = -1;
static char fuzz_path[64];
static struct config fuzz_cfg; /* what a failed load must leave alone */
static struct policy_identity fuzz_ids[2];

/* Patterns and topics probed for every accepted file, besides the
 * patterns of its topic rules. */
static const char *const fuzz_patterns[] = {
	"#", "a/#", "+", "+/x", "users/+/x", "users/root/#", "users/%u/#",
	"public/#", "system/+", "secret/+/x", "service/#", "a/b",
};
static const char *const fuzz_topics[] = {
	"a", "a/b", "x", "a/x", "users/root/x", "users/alice/x",
	"users/0/x", "public/x/y", "system/x", "secret/k/x", "service/s",
	"alerts/fire", "sensors/k/temp", "logs/debug/x", "%u", "a/b/c",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const gid_t groups[] = { 27, 100 };

	(void)argc;
	(void)argv;
	fuzz_fd = memfd_create("fuzz-mqbusd.conf", MFD_CLOEXEC);
	if (fuzz_fd < 0) {
		perror("fuzz_config: memfd_create");
		exit(1);
	}
	snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d", fuzz_fd);
	if (config_init(&fuzz_cfg) < 0 ||
	    policy_identity_init(&fuzz_ids[0], 0, 0, "root", NULL, 0) < 0 ||
	    policy_identity_init(&fuzz_ids[1], 1000, 100, "alice", groups,
				 2) < 0) {
		fprintf(stderr, "fuzz_config: out of memory\n");
		exit(1);
	}
	return 0;
}

/* An MQTT-style match of a concrete topic against a pattern. */
static bool fuzz_match(const char *pattern, const char *topic)
{
	for (;;) {
		size_t pl = strcspn(pattern, "/"), tl = strcspn(topic, "/");

		if (pl == 1 && pattern[0] == '#')
			return true;
		if (!(pl == 1 && pattern[0] == '+') &&
		    (pl != tl || memcmp(pattern, topic, pl) != 0))
			return false;
		pattern += pl;
		topic += tl;
		if (!*pattern && !*topic)
			return true;
		/* "a/#" matches "a" as well */
		if (!*topic)
			return !strcmp(pattern, "/#");
		if (!*pattern)
			return false;
		pattern++;
		topic++;
	}
}

/* What policy_check_pattern() says exactly, policy_check() confirms. */
static void fuzz_policy_pattern(const struct config *cfg,
				struct policy_identity *id,
				const char *pattern, const char *const *topics,
				size_t n_topics)
{
	if (!proto_topic_valid(pattern, strlen(pattern), true))
		return;
	for (unsigned a = 0; a < POLICY_N_ACTIONS; a++) {
		const struct policy_rule *rule = NULL;
		enum policy_scope scope;

		scope = policy_check_pattern(cfg->policy, id, a, pattern,
					     &rule);
		if (scope == POLICY_MIXED)
			continue;
		for (size_t i = 0; i < n_topics; i++) {
			bool ok;

			if (!fuzz_match(pattern, topics[i]))
				continue;
			ok = policy_check(cfg->policy, id, a, topics[i], NULL);
			if (ok != (scope == POLICY_ALLOWED)) {
				fprintf(stderr,
					"fuzz_config: %s on pattern '%s' is "
					"%s for uid %u, but topic '%s' is %s\n",
					policy_action_name(a), pattern,
					scope == POLICY_ALLOWED ? "allowed"
								: "denied",
					(unsigned)id->uid, topics[i],
					ok ? "allowed" : "denied");
				abort();
			}
		}
	}
}

/* The topics and priorities of an accepted file. */
static void fuzz_accepted(const struct config *cfg)
{
	const char *topics[sizeof(fuzz_topics) / sizeof(fuzz_topics[0]) +
			   FUZZ_MAX_EXTRA];
	char extra[FUZZ_MAX_EXTRA][PROTO_TOPIC_MAX * 2 + 2];
	size_t n_topics = 0, n_extra = 0;
	char buf[512];

	for (size_t i = 0; i < sizeof(fuzz_topics) / sizeof(fuzz_topics[0]);
	     i++)
		topics[n_topics++] = fuzz_topics[i];
	/* a concrete topic of each rule's pattern: '+' and '#' become "x" */
	for (size_t r = 0; r < cfg->n_rules && n_extra < FUZZ_MAX_EXTRA;
	     r++) {
		const char *p = cfg->rules[r].pattern;
		char *t = extra[n_extra];

		for (; *p; p++)
			*t++ = (*p == '+' || *p == '#') ? 'x' : *p;
		*t = '\0';
		if (proto_topic_valid(extra[n_extra], strlen(extra[n_extra]),
				      false))
			topics[n_topics++] = extra[n_extra++];
	}

	FUZZ_CHECK(cfg->max_priority <= PROTO_PRIO_MAX);
	for (size_t i = 0; i < n_topics; i++) {
		const struct topic_rule *rule = config_rule(cfg, topics[i]);
		const struct delivery_policy *dp;
		unsigned prio;

		dp = config_rule_policy(cfg, rule);
		FUZZ_CHECK(dp && dp->overflow <= OVERFLOW_DISCONNECT);
		FUZZ_CHECK(config_overflow_name(dp->overflow) != NULL);
		for (int req = -1; req <= 40000; req += 20000) {
			prio = config_priority(cfg, topics[i], req);
			FUZZ_CHECK(prio <= PROTO_PRIO_MAX);
			FUZZ_CHECK(prio ==
				   config_rule_priority(cfg, rule, req));
			if (!rule)
				FUZZ_CHECK(prio <= cfg->max_priority);
			else if (req >= 0)
				FUZZ_CHECK(prio <= rule->ceiling);
		}
		if (rule)
			FUZZ_CHECK(fuzz_match(rule->pattern, topics[i]));
	}
	if (!cfg->policy)
		return;
	for (size_t k = 0; k < 2; k++) {
		for (size_t i = 0;
		     i < sizeof(fuzz_patterns) / sizeof(fuzz_patterns[0]); i++)
			fuzz_policy_pattern(cfg, &fuzz_ids[k], fuzz_patterns[i],
					    topics, n_topics);
		for (size_t r = 0; r < cfg->n_rules && r < FUZZ_MAX_EXTRA; r++)
			fuzz_policy_pattern(cfg, &fuzz_ids[k],
					    cfg->rules[r].pattern, topics,
					    n_topics);
		for (size_t i = 0; i < n_topics; i++) {
			const struct policy_rule *rule = NULL;

			policy_check(cfg->policy, &fuzz_ids[k],
				     POLICY_PUBLISH, topics[i], &rule);
			FUZZ_CHECK(rule != NULL);
			FUZZ_CHECK(policy_describe(cfg->policy, POLICY_PUBLISH,
						   topics[i], rule, buf,
						   sizeof(buf)) > 0);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config before;
	char *err = NULL;
	int r;

	if (ftruncate(fuzz_fd, 0) < 0 ||
	    pwrite(fuzz_fd, data, size, 0) != (ssize_t)size) {
		perror("fuzz_config: writing the memfd");
		abort();
	}
	memcpy(&before, &fuzz_cfg, sizeof(before));
	r = config_load(&fuzz_cfg, fuzz_path, &err);
	if (r < 0) {
		/* refused: said why, in a sentence naming the file, and
		 * left the old config exactly as it was */
		FUZZ_CHECK(r != -ENOENT && r != -EACCES);
		FUZZ_CHECK(err != NULL || r == -ENOMEM);
		if (err)
			FUZZ_CHECK(!strncmp(err, fuzz_path,
					    strlen(fuzz_path)));
		FUZZ_CHECK(memcmp(&before, &fuzz_cfg, sizeof(before)) == 0);
		free(err);
		return 0;
	}
	FUZZ_CHECK(err == NULL);
	fuzz_accepted(&fuzz_cfg);
	/* back to the defaults, so that inputs do not depend on each other */
	config_deinit(&fuzz_cfg);
	FUZZ_CHECK(config_init(&fuzz_cfg) == 0);
	return 0;
}

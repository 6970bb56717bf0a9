/* SPDX-License-Identifier: MIT */
/*
 * check_config.c - unit tests of daemon/config_file.c, the mqbusd.conf parser.
 *
 * Each case writes its file with mkstemp() in /tmp, loads it and removes it
 * straight away, before any assertion can end the (forked) test early.  The
 * error cases check the exact "PATH:LINE: message" and that a failed load
 * leaves the previous configuration exactly as it was, which is what lets
 * the daemon survive a reload with a broken file.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/bridge_conf.h"
#include "daemon/config_file.h"
#include "daemon/router.h"

/* A new file in /tmp holding len bytes of text; returns its malloc'ed
 * path. */
static char *conf_write_len(const char *text, size_t len)
{
	char *path = strdup("/tmp/check_config.XXXXXX");
	int fd;

	ck_assert_ptr_nonnull(path);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
	return path;
}

static char *conf_write(const char *text)
{
	return conf_write_len(text, strlen(text));
}

/* config_load() of text; the file is gone when this returns.  *ret_path
 * (malloc'ed) is the name it had, which error messages start with. */
static int conf_load_len(struct config *cfg, const char *text, size_t len,
			 char **ret_error, char **ret_path)
{
	char *path = conf_write_len(text, len);
	int r;

	r = config_load(cfg, path, ret_error);
	unlink(path);
	if (ret_path)
		*ret_path = path;
	else
		free(path);
	return r;
}

static int conf_load(struct config *cfg, const char *text, char **ret_error,
		     char **ret_path)
{
	return conf_load_len(cfg, text, strlen(text), ret_error, ret_path);
}

/* Loads text, which must be valid. */
static void conf_load_ok(struct config *cfg, const char *text)
{
	char *error = NULL;
	int r;

	r = conf_load(cfg, text, &error, NULL);
	ck_assert_msg(r == 0, "load failed: %d %s", r, error ? error : "");
	ck_assert_ptr_null(error);
}

static const struct topic_rule *rule_named(const struct config *cfg,
					   const char *pattern)
{
	size_t i;

	for (i = 0; i < cfg->n_rules; i++)
		if (!strcmp(cfg->rules[i].pattern, pattern))
			return &cfg->rules[i];
	ck_abort_msg("no rule '%s'", pattern);
	return NULL;
}

static void check_rule(const struct config *cfg, size_t i,
		       const char *pattern, unsigned priority, unsigned ceiling,
		       unsigned literals, unsigned wildcards)
{
	const struct topic_rule *rule = &cfg->rules[i];

	ck_assert_uint_lt(i, cfg->n_rules);
	ck_assert_str_eq(rule->pattern, pattern);
	ck_assert_uint_eq(rule->priority, priority);
	ck_assert_uint_eq(rule->ceiling, ceiling);
	ck_assert_uint_eq(rule->order, i);
	ck_assert_uint_eq(rule->literals, literals);
	ck_assert_uint_eq(rule->wildcards, wildcards);
}

/* The pattern of the rule config_rule() picks for topic, or "(none)". */
static const char *rule_for(const struct config *cfg, const char *topic)
{
	const struct topic_rule *rule = config_rule(cfg, topic);

	return rule ? rule->pattern : "(none)";
}

START_TEST(test_defaults)
{
	struct config cfg, zero;

	memset(&zero, 0, sizeof(zero));
	ck_assert_int_eq(config_init(&cfg), 0);
	ck_assert_uint_eq(cfg.max_priority, 15);
	ck_assert_uint_eq(cfg.pending_max, 256);
	ck_assert_uint_eq(cfg.max_clients, 1024);
	ck_assert_uint_eq(cfg.max_subscriptions, 1024);
	ck_assert_uint_eq(cfg.n_rules, 0);
	ck_assert_ptr_nonnull(cfg.rule_index);
	ck_assert_uint_eq(router_count(cfg.rule_index), 0);

	ck_assert_ptr_null(config_rule(&cfg, "a/b"));
	ck_assert_uint_eq(config_priority(&cfg, "a/b", -1), 0);
	ck_assert_uint_eq(config_priority(&cfg, "a/b", 3), 3);
	ck_assert_uint_eq(config_priority(&cfg, "a/b", 15), 15);
	ck_assert_uint_eq(config_priority(&cfg, "a/b", 16), 15);

	config_deinit(&cfg);
	ck_assert_int_eq(memcmp(&cfg, &zero, sizeof(cfg)), 0);
	/* A zeroed config is fine to deinit, and to query. */
	config_deinit(&cfg);
	ck_assert_ptr_null(config_rule(&cfg, "a"));
	ck_assert_uint_eq(config_priority(&cfg, "a", 5), 0);
}
END_TEST

START_TEST(test_empty_file)
{
	struct config cfg;

	ck_assert_int_eq(config_init(&cfg), 0);
	cfg.max_clients = 7; /* replaced by the file's (default) value */
	conf_load_ok(&cfg, "");
	ck_assert_uint_eq(cfg.max_priority, 15);
	ck_assert_uint_eq(cfg.pending_max, 256);
	ck_assert_uint_eq(cfg.max_clients, 1024);
	ck_assert_uint_eq(cfg.max_subscriptions, 1024);
	ck_assert_uint_eq(cfg.n_rules, 0);
	ck_assert_ptr_null(config_rule(&cfg, "a"));
	config_deinit(&cfg);
}
END_TEST

static const char full_conf[] =
	"; a complete mqbusd.conf\n"
	"[bus]\n"
	"max_priority = 20\n"
	"pending_max = 1000000\n"
	"max_clients = 65535\n"
	"max_subscriptions = 1\n"
	"\n"
	"[topic \"alerts/#\"]\n"
	"priority = 10\n"
	"ceiling = 30\n"
	"\n"
	"[topic \"metrics/+/cpu\"]\n"
	"priority = 2\n"
	"\n"
	"[topic \"logs/debug\"]\n"
	"ceiling = 1\n"
	"\n"
	"[topic \"x/y\"]\n"
	"priority = 25\n"
	"\n"
	"[topic \"+/+\"]\n"
	"[topic \"#\"]\n"
	"priority = 0\n"
	"ceiling = 0\n";

START_TEST(test_full)
{
	struct config cfg;

	ck_assert_int_eq(config_init(&cfg), 0);
	conf_load_ok(&cfg, full_conf);
	ck_assert_uint_eq(cfg.max_priority, 20);
	ck_assert_uint_eq(cfg.pending_max, 1000000);
	ck_assert_uint_eq(cfg.max_clients, 65535);
	ck_assert_uint_eq(cfg.max_subscriptions, 1);
	ck_assert_uint_eq(cfg.n_rules, 6);
	check_rule(&cfg, 0, "alerts/#", 10, 30, 1, 1);
	/* default ceiling: max(priority, max_priority) */
	check_rule(&cfg, 1, "metrics/+/cpu", 2, 20, 2, 1);
	check_rule(&cfg, 2, "logs/debug", 0, 1, 2, 0);
	check_rule(&cfg, 3, "x/y", 25, 25, 2, 0);
	/* a section without keys is a rule with the defaults */
	check_rule(&cfg, 4, "+/+", 0, 20, 0, 2);
	check_rule(&cfg, 5, "#", 0, 0, 0, 1);
	ck_assert_uint_eq(router_count(cfg.rule_index), 6);

	ck_assert_str_eq(rule_for(&cfg, "alerts/disk"), "alerts/#");
	ck_assert_str_eq(rule_for(&cfg, "metrics/h1/cpu"), "metrics/+/cpu");
	ck_assert_str_eq(rule_for(&cfg, "logs/debug"), "logs/debug");
	ck_assert_str_eq(rule_for(&cfg, "x/y"), "x/y");
	/* no literals in either: "#" has the fewer wildcards */
	ck_assert_str_eq(rule_for(&cfg, "p/q"), "#");
	ck_assert_str_eq(rule_for(&cfg, "p/q/r"), "#");
	config_deinit(&cfg);
}
END_TEST

/* A zeroed struct is a valid target too. */
START_TEST(test_load_into_zeroed)
{
	struct config cfg;

	memset(&cfg, 0, sizeof(cfg));
	conf_load_ok(&cfg, full_conf);
	ck_assert_uint_eq(cfg.n_rules, 6);
	config_deinit(&cfg);
}
END_TEST

/* A second load replaces the first (the sanitizers see any leak). */
START_TEST(test_reload)
{
	struct config cfg;

	ck_assert_int_eq(config_init(&cfg), 0);
	conf_load_ok(&cfg, full_conf);
	conf_load_ok(&cfg, "[bus]\nmax_clients = 3\n[topic \"b\"]\n");
	ck_assert_uint_eq(cfg.max_priority, 15);
	ck_assert_uint_eq(cfg.max_clients, 3);
	ck_assert_uint_eq(cfg.n_rules, 1);
	check_rule(&cfg, 0, "b", 0, 15, 1, 0);
	ck_assert_str_eq(rule_for(&cfg, "b"), "b");
	ck_assert_str_eq(rule_for(&cfg, "alerts/x"), "(none)");
	config_deinit(&cfg);
}
END_TEST

/* Default ceilings use the file's max_priority even when [bus] is last. */
START_TEST(test_bus_after_topics)
{
	struct config cfg;

	ck_assert_int_eq(config_init(&cfg), 0);
	conf_load_ok(&cfg, "[topic \"a\"]\n"
			   "priority = 3\n"
			   "[topic \"b\"]\n"
			   "priority = 40\n"
			   "[bus]\n"
			   "max_priority = 30\n");
	check_rule(&cfg, 0, "a", 3, 30, 1, 0);
	check_rule(&cfg, 1, "b", 40, 40, 1, 0);
	config_deinit(&cfg);
}
END_TEST

START_TEST(test_many_rules)
{
	/* More rules than the first allocation holds: every pointer in the
	 * index must still be right after the array has grown. */
	char text[64 * 40];
	size_t len = 0;
	struct config cfg;
	char topic[32];
	unsigned i;

	for (i = 0; i < 50; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
					"[topic \"t/%u\"]\npriority = %u\n", i,
					i);
	ck_assert_uint_lt(len, sizeof(text) - 1);
	ck_assert_int_eq(config_init(&cfg), 0);
	conf_load_ok(&cfg, text);
	ck_assert_uint_eq(cfg.n_rules, 50);
	for (i = 0; i < 50; i++) {
		snprintf(topic, sizeof(topic), "t/%u", i);
		ck_assert_ptr_eq(config_rule(&cfg, topic), &cfg.rules[i]);
		ck_assert_uint_eq(config_priority(&cfg, topic, -1), i);
	}
	config_deinit(&cfg);
}
END_TEST

START_TEST(test_comments_whitespace)
{
	static const char text[] =
		"\xef\xbb\xbf; a comment after a byte order mark\r\n"
		"# a hash comment\n"
		"\n"
		"   \t \n"
		"   [bus]   ; a comment after a header\n"
		"\tmax_priority=3\n"
		"  pending_max   =   7    ; an inline comment\n"
		"max_clients : 9\r\n"
		"  ; an indented comment\n"
		"  # another\n"
		"[ topic   \"a/#\" ]  # a hash comment after a header\n"
		"  priority = 1\n"
		"  ceiling = 2\n"
		"[topic \"q\"]\"] ; quotes and brackets in a pattern\n"
		"\n"
		"\tmax_subscriptions = 5"; /* in [topic "q"]"]: see below */
	struct config cfg;
	char *error = NULL, *path = NULL;
	char expect[PATH_MAX + 100];

	ck_assert_int_eq(config_init(&cfg), 0);
	/* The last line shows the indented keys are keys of their own,
	 * not a continuation of the line above as inih would have it. */
	ck_assert_int_eq(conf_load(&cfg, text, &error, &path), -EINVAL);
	snprintf(expect, sizeof(expect),
		 "%s:16: unknown key 'max_subscriptions' in [topic \"q\"]\"]",
		 path);
	ck_assert_str_eq(error, expect);
	free(error);
	free(path);

	/* The same without the last line. */
	conf_load_ok(&cfg, "\xef\xbb\xbf; a comment after a byte order mark\r\n"
			   "# a hash comment\n"
			   "\n"
			   "   \t \n"
			   "   [bus]   ; a comment after a header\n"
			   "\tmax_priority=3\n"
			   "  pending_max   =   7    ; an inline comment\n"
			   "max_clients : 9\r\n"
			   "  ; an indented comment\n"
			   "  # another\n"
			   "[ topic   \"a/#\" ]  # a hash comment after a header\n"
			   "  priority = 1\n"
			   "  ceiling = 2\n"
			   "[topic \"q\"]\"] ; quotes, brackets\r\n"
			   "\n"
			   "\tceiling = 4");
	ck_assert_uint_eq(cfg.max_priority, 3);
	ck_assert_uint_eq(cfg.pending_max, 7);
	ck_assert_uint_eq(cfg.max_clients, 9);
	ck_assert_uint_eq(cfg.max_subscriptions, 1024);
	ck_assert_uint_eq(cfg.n_rules, 2);
	check_rule(&cfg, 0, "a/#", 1, 2, 1, 1);
	check_rule(&cfg, 1, "q\"]", 0, 4, 1, 0);
	config_deinit(&cfg);
}
END_TEST

/* Headers may be longer than inih's line buffer: a pattern may be the
 * longest topic there is. */
START_TEST(test_long_pattern)
{
	char pattern[256], text[300];
	struct config cfg;

	memset(pattern, 'p', 255);
	pattern[255] = '\0';
	pattern[1] = '/';
	snprintf(text, sizeof(text), "[topic \"%s\"]\npriority = 9\n",
		 pattern);
	ck_assert_int_eq(config_init(&cfg), 0);
	conf_load_ok(&cfg, text);
	ck_assert_uint_eq(cfg.n_rules, 1);
	ck_assert_str_eq(cfg.rules[0].pattern, pattern);
	ck_assert_uint_eq(config_priority(&cfg, pattern, -1), 9);
	config_deinit(&cfg);

	/* One byte more is not a valid pattern. */
	snprintf(text, sizeof(text), "[topic \"%sp\"]\n", pattern);
	ck_assert_int_eq(config_init(&cfg), 0);
	ck_assert_int_eq(conf_load(&cfg, text, NULL, NULL), -EINVAL);
	config_deinit(&cfg);
}
END_TEST

struct bad_conf {
	const char *text;
	unsigned line;
	const char *msg;
};

static const struct bad_conf bad_confs[] = {
	/* overflow policies and backlogs */
	{ "[bus]\noverflow = drop\n", 2,
	  "overflow: 'drop' is not one of drop-new, drop-old, coalesce, "
	  "block, disconnect" },
	{ "[topic \"a\"]\noverflow = 1\n", 2,
	  "overflow: '1' is not one of drop-new, drop-old, coalesce, block, "
	  "disconnect" },
	{ "[topic \"a\"]\nbacklog = 0\n", 2,
	  "backlog: '0' is below 1 (allowed 1..1000000)" },
	{ "[bus]\npending_budget = x\n", 2,
	  "pending_budget: 'x' is not a number (allowed 1..2147483647)" },
	/* sections */
	{ "[bus]\nmax_clients = 5\n\n[queue]\nx = 1\n", 4,
	  "unknown section 'queue' (expected [bus], [topic \"PATTERN\"], [policy] or [bridge NAME])" },
	{ "[Bus]\n", 1,
	  "unknown section 'Bus' (expected [bus], [topic \"PATTERN\"], [policy] or [bridge NAME])" },
	{ "[bus\n", 1, "expected '[bus]'" },
	{ "[bus] junk\n", 1, "expected '[bus]'" },
	{ "[bus \"x\"]\n", 1, "expected '[bus]'" },
	{ "[queue\n", 1, "syntax error: section header without ']'" },
	{ "[topic]\n", 1, "expected '[topic \"PATTERN\"]'" },
	{ "[topic a/b]\n", 1, "expected '[topic \"PATTERN\"]'" },
	{ "[topic\"a/b\"]\n", 1, "expected '[topic \"PATTERN\"]'" },
	{ "[topic \"a/b\"\n", 1, "expected '[topic \"PATTERN\"]'" },
	{ "[topic \"a/b]\n", 1, "expected '[topic \"PATTERN\"]'" },
	{ "[topic \"a\"] x\n", 1, "expected '[topic \"PATTERN\"]'" },
	{ "[bus]\n[topic \"a\"]\n[bus]\n", 3,
	  "[bus] given twice (first at line 1)" },
	{ "max_clients = 3\n[bus]\n", 1,
	  "'max_clients' is outside any section (expected [bus], [topic \"PATTERN\"] or [policy] first)" },
	/* keys */
	{ "# c\n[bus]\nmax_prio = 3\n", 3, "unknown key 'max_prio' in [bus]" },
	{ "[bus]\npriority = 3\n", 2, "unknown key 'priority' in [bus]" },
	{ "[topic \"a\"]\npriority = 1\nceil = 3\n", 3,
	  "unknown key 'ceil' in [topic \"a\"]" },
	{ "[topic \"a\"]\nmax_clients = 1\n", 2,
	  "unknown key 'max_clients' in [topic \"a\"]" },
	{ "[bus]\nmax_clients = 3\nmax_clients = 4\n", 3,
	  "max_clients: given twice in this section (first at line 2)" },
	{ "[topic \"a\"]\n\nceiling = 3\nceiling = 3\n", 4,
	  "ceiling: given twice in this section (first at line 3)" },
	/* numbers */
	{ "[bus]\nmax_priority = 1x\n", 2,
	  "max_priority: '1x' is not a number (allowed 0..32767)" },
	{ "[bus]\nmax_priority = -1\n", 2,
	  "max_priority: '-1' is not a number (allowed 0..32767)" },
	{ "[bus]\nmax_priority = +1\n", 2,
	  "max_priority: '+1' is not a number (allowed 0..32767)" },
	{ "[bus]\nmax_priority = 0x10\n", 2,
	  "max_priority: '0x10' is not a number (allowed 0..32767)" },
	{ "[bus]\nmax_priority = 1.5\n", 2,
	  "max_priority: '1.5' is not a number (allowed 0..32767)" },
	{ "[bus]\nmax_priority = 1 2\n", 2,
	  "max_priority: '1 2' is not a number (allowed 0..32767)" },
	{ "[bus]\nmax_priority =\n", 2,
	  "max_priority: '' is not a number (allowed 0..32767)" },
	{ "[bus]\nmax_priority = 5 # not a comment\n", 2,
	  "max_priority: '5 # not a comment' is not a number (allowed 0..32767)" },
	{ "[bus]\nmax_priority = 32768\n", 2,
	  "max_priority: '32768' is above 32767 (allowed 0..32767)" },
	{ "[bus]\npending_max = 0\n", 2,
	  "pending_max: '0' is below 1 (allowed 1..1000000)" },
	{ "[bus]\npending_max = 1000001\n", 2,
	  "pending_max: '1000001' is above 1000000 (allowed 1..1000000)" },
	{ "[bus]\nmax_clients = 0\n", 2,
	  "max_clients: '0' is below 1 (allowed 1..65535)" },
	{ "[bus]\nmax_clients = 65536\n", 2,
	  "max_clients: '65536' is above 65535 (allowed 1..65535)" },
	{ "[bus]\nmax_subscriptions = 0\n", 2,
	  "max_subscriptions: '0' is below 1 (allowed 1..1000000)" },
	{ "[bus]\nmax_subscriptions = 1000001\n", 2,
	  "max_subscriptions: '1000001' is above 1000000 (allowed 1..1000000)" },
	{ "[topic \"a\"]\npriority = 32768\n", 2,
	  "priority: '32768' is above 32767 (allowed 0..32767)" },
	{ "[topic \"a\"]\nceiling = 99999 ; too high\n", 2,
	  "ceiling: '99999' is above 32767 (allowed 0..32767)" },
	{ "[topic \"a\"]\nceiling = 99999999999999999999999999\n", 2,
	  "ceiling: '99999999999999999999999999' is above 32767 (allowed 0..32767)" },
	{ "[topic \"a\"]\npriority = x\n", 2,
	  "priority: 'x' is not a number (allowed 0..32767)" },
	/* patterns */
	{ "[topic \"a//b\"]\n", 1, "'a//b' is not a valid topic pattern" },
	{ "[topic \"/a\"]\n", 1, "'/a' is not a valid topic pattern" },
	{ "[topic \"a/\"]\n", 1, "'a/' is not a valid topic pattern" },
	{ "[topic \"a/#/b\"]\n", 1, "'a/#/b' is not a valid topic pattern" },
	{ "[topic \"a+\"]\n", 1, "'a+' is not a valid topic pattern" },
	{ "[topic \"a b\"]\n", 1, "'a b' is not a valid topic pattern" },
	{ "[topic \"\"]\n", 1, "'' is not a valid topic pattern" },
	{ "[topic \"a/#\"]\npriority = 1\n[topic \"b\"]\n\n[topic \"a/#\"]\n", 5,
	  "[topic \"a/#\"] given twice (first at line 1)" },
	/* priority above ceiling, whichever comes second */
	{ "[topic \"a\"]\npriority = 6\nceiling = 5\n", 3,
	  "priority 6 is above ceiling 5" },
	{ "[topic \"a\"]\nceiling = 5\n; c\npriority = 6\n", 4,
	  "priority 6 is above ceiling 5" },
	/* what inih refuses itself */
	{ "[bus]\nmax_clients\n", 2, "syntax error: expected 'key = value'" },
	{ "[bus]\n\nbogus line\nfoo = 1\n", 3,
	  "syntax error: expected 'key = value'" },
	{ "[bus]\nbogus\n[queue]\n", 2, "syntax error: expected 'key = value'" },
	{ "[bus]\nmax_clients = 1\n[topic \"a\"]\nceiling = 7\nx\n", 5,
	  "syntax error: expected 'key = value'" },
	/* the first error is the one reported */
	{ "[bus]\nmax_clients = 0\nbogus\n[queue]\n", 2,
	  "max_clients: '0' is below 1 (allowed 1..65535)" },
#ifdef HAVE_MQTT
	/* bridges */
	{ "[bridge]\n", 1, "expected '[bridge NAME]'" },
	{ "[bridge a b]\n", 1, "expected '[bridge NAME]'" },
	{ "[bridge a/b]\n", 1,
	  "'a/b' is not a valid bridge name (1 to 32 of A-Z a-z 0-9 . _ -)" },
	{ "[bridge x]\nhost = h\nout = a\n[bridge x]\n", 4,
	  "[bridge x] given twice (first at line 1)" },
	{ "[bridge x]\nout = a\n", 1, "[bridge x]: no host" },
	{ "[bridge x]\nhost = h\n", 1, "[bridge x]: no out or in mapping" },
	{ "[bridge x]\nhost = h\nhost = i\n", 3,
	  "host: given twice in this section (first at line 2)" },
	{ "[bridge x]\nhost = h\nport = 0\n", 3,
	  "port: '0' is not a number in 1..65535" },
	{ "[bridge x]\nhost = h\nclean_session = maybe\n", 3,
	  "clean_session: 'maybe' is not yes or no" },
	{ "[bridge x]\nhost = h\nmqtt_version = 3\n", 3,
	  "mqtt_version: '3' is not 3.1.1 or 5" },
	{ "[bridge x]\nhost = h\nout = a/#/b\n", 3,
	  "'a/#/b' is not a valid topic pattern" },
	{ "[bridge x]\nhost = h\nout = a/# b/+\n", 3,
	  "'b/+' is not a valid topic prefix (no wildcards, no empty level)" },
	{ "[bridge x]\nhost = h\nout = a/# b c\n", 3,
	  "'c': one pattern and one prefix at most" },
	{ "[bridge x]\nhost = h\nout = a/# priority=3\n", 3,
	  "'priority=3': expected qos=0|1" },
	{ "[bridge x]\nhost = h\nin = a/# priority=40000\n", 3,
	  "'priority=40000': a priority is 0..32767" },
	{ "[bridge x]\nhost = h\nin = qos=1\n", 3,
	  "in: expected PATTERN [PREFIX] [qos=0|1] [priority=N]" },
	{ "[bridge x]\nhost = h\nin = a/#\nin = a/# p\n", 4,
	  "in = a/#: given twice (first at line 3)" },
	{ "[bridge x]\nhost = h\nout = a\ncertfile = c\n", 1,
	  "[bridge x]: certfile and keyfile go together" },
	{ "[bridge x]\nhost = h\nout = a\nreconnect_min_ms = 900\n"
	  "reconnect_max_ms = 800\n", 1,
	  "[bridge x]: reconnect_min_ms 900 is above reconnect_max_ms 800" },
	{ "[bridge x]\nhost = h\nmqtt_version = 3.1.1\nout = s/# p\n"
	  "in = q/#\nin = +/s/x\n", 6,
	  "[bridge x]: in = +/s/x takes back what out = s/# (line 4) sends as "
	  "p/s/#: MQTT 3.1.1 cannot tell the broker not to echo a client's "
	  "own messages; use mqtt_version = 5 or prefixes that keep them "
	  "apart" },
#endif
};

START_TEST(test_bad)
{
	const struct bad_conf *bad = &bad_confs[_i];
	struct config cfg, before;
	char *error = NULL, *path = NULL;
	char expect[PATH_MAX + 200];
	int r;

	/* Something to keep: not the defaults, and with rules. */
	ck_assert_int_eq(config_init(&cfg), 0);
	conf_load_ok(&cfg, "[bus]\nmax_priority = 7\n"
			   "[topic \"keep/#\"]\npriority = 2\n");
	before = cfg;

	r = conf_load(&cfg, bad->text, &error, &path);
	ck_assert_msg(r == -EINVAL, "case %d: returned %d", _i, r);
	snprintf(expect, sizeof(expect), "%s:%u: %s", path, bad->line,
		 bad->msg);
	ck_assert_ptr_nonnull(error);
	ck_assert_str_eq(error, expect);

	ck_assert_int_eq(memcmp(&cfg, &before, sizeof(cfg)), 0);
	ck_assert_uint_eq(cfg.n_rules, 1);
	check_rule(&cfg, 0, "keep/#", 2, 7, 1, 1);
	ck_assert_uint_eq(config_priority(&cfg, "keep/x", -1), 2);
	ck_assert_uint_eq(router_count(cfg.rule_index), 1);

	/* ret_error is optional. */
	ck_assert_int_eq(conf_load(&cfg, bad->text, NULL, NULL), -EINVAL);
	ck_assert_int_eq(memcmp(&cfg, &before, sizeof(cfg)), 0);

	free(error);
	free(path);
	config_deinit(&cfg);
}
END_TEST

START_TEST(test_long_line)
{
	char text[600], *error = NULL, *path = NULL;
	struct config cfg;
	int n;

	n = snprintf(text, sizeof(text), "[bus]\nmax_clients = %0500d\n", 1);
	ck_assert_int_lt(n, (int)sizeof(text));
	ck_assert_int_eq(config_init(&cfg), 0);
	ck_assert_int_eq(conf_load(&cfg, text, &error, &path), -EINVAL);
	/* The limit itself is inih's build-time INI_MAX_LINE. */
	ck_assert_ptr_nonnull(strstr(error, ":2: line too long (max "));
	ck_assert_int_eq(strncmp(error, path, strlen(path)), 0);
	free(error);
	free(path);
	config_deinit(&cfg);
}
END_TEST

START_TEST(test_nul_byte)
{
	static const char text[] = "[bus]\nmax_clients = 1\0 2\n";
	char *error = NULL, *path = NULL;
	char expect[PATH_MAX + 100];
	struct config cfg;

	ck_assert_int_eq(config_init(&cfg), 0);
	ck_assert_int_eq(conf_load_len(&cfg, text, sizeof(text) - 1, &error,
				       &path),
			 -EINVAL);
	snprintf(expect, sizeof(expect), "%s:2: NUL byte in line", path);
	ck_assert_str_eq(error, expect);
	free(error);
	free(path);
	config_deinit(&cfg);
}
END_TEST

START_TEST(test_missing_file)
{
	char *path = conf_write(""), *error = NULL;
	char expect[PATH_MAX + 100];
	struct config cfg, before;

	unlink(path);
	ck_assert_int_eq(config_init(&cfg), 0);
	before = cfg;
	ck_assert_int_eq(config_load(&cfg, path, &error), -ENOENT);
	snprintf(expect, sizeof(expect), "%s: %s", path, strerror(ENOENT));
	ck_assert_str_eq(error, expect);
	ck_assert_int_eq(memcmp(&cfg, &before, sizeof(cfg)), 0);
	ck_assert_int_eq(config_load(&cfg, path, NULL), -ENOENT);
	free(error);
	free(path);
	config_deinit(&cfg);
}
END_TEST

START_TEST(test_unreadable_file)
{
	char *path, *error = NULL;
	char expect[PATH_MAX + 100];
	struct config cfg;
	int r;

	/* root reads whatever the mode says. */
	if (geteuid() == 0) {
		fprintf(stderr, "test_unreadable_file: skipped as root\n");
		return;
	}
	path = conf_write("[bus]\n");
	ck_assert_int_eq(chmod(path, 0), 0);
	ck_assert_int_eq(config_init(&cfg), 0);
	r = config_load(&cfg, path, &error);
	unlink(path);
	ck_assert_int_eq(r, -EACCES);
	snprintf(expect, sizeof(expect), "%s: %s", path, strerror(EACCES));
	ck_assert_str_eq(error, expect);
	free(error);
	free(path);
	config_deinit(&cfg);
}
END_TEST

START_TEST(test_directory)
{
	char expect[PATH_MAX + 100];
	char *error = NULL;
	struct config cfg;

	ck_assert_int_eq(config_init(&cfg), 0);
	ck_assert_int_eq(config_load(&cfg, "/tmp", &error), -EISDIR);
	snprintf(expect, sizeof(expect), "/tmp: %s", strerror(EISDIR));
	ck_assert_str_eq(error, expect);
	free(error);
	config_deinit(&cfg);
}
END_TEST

START_TEST(test_priority)
{
	struct config cfg;

	ck_assert_int_eq(config_init(&cfg), 0);
	conf_load_ok(&cfg, "[bus]\n"
			   "max_priority = 10\n"
			   "[topic \"alerts/#\"]\n"
			   "priority = 5\n"
			   "ceiling = 20\n"
			   "[topic \"quiet/#\"]\n"
			   "priority = 1\n"
			   "ceiling = 2\n"
			   "[topic \"plain\"]\n");

	/* a rule: its priority when none is asked for ... */
	ck_assert_uint_eq(config_priority(&cfg, "alerts/disk", -1), 5);
	ck_assert_uint_eq(config_priority(&cfg, "alerts", -1), 5);
	/* ... else the request, up to the ceiling, which may be above
	 * max_priority */
	ck_assert_uint_eq(config_priority(&cfg, "alerts/disk", 0), 0);
	ck_assert_uint_eq(config_priority(&cfg, "alerts/disk", 7), 7);
	ck_assert_uint_eq(config_priority(&cfg, "alerts/disk", 15), 15);
	ck_assert_uint_eq(config_priority(&cfg, "alerts/disk", 20), 20);
	ck_assert_uint_eq(config_priority(&cfg, "alerts/disk", 21), 20);
	ck_assert_uint_eq(config_priority(&cfg, "alerts/disk", 32767), 20);
	ck_assert_uint_eq(config_priority(&cfg, "alerts/disk", INT_MAX), 20);
	/* a ceiling below max_priority */
	ck_assert_uint_eq(config_priority(&cfg, "quiet/x", -1), 1);
	ck_assert_uint_eq(config_priority(&cfg, "quiet/x", 2), 2);
	ck_assert_uint_eq(config_priority(&cfg, "quiet/x", 3), 2);
	/* a rule with the defaults: priority 0, ceiling max_priority */
	ck_assert_uint_eq(config_priority(&cfg, "plain", -1), 0);
	ck_assert_uint_eq(config_priority(&cfg, "plain", 5), 5);
	ck_assert_uint_eq(config_priority(&cfg, "plain", 11), 10);
	/* no rule: 0, or the request up to max_priority */
	ck_assert_ptr_null(config_rule(&cfg, "other/x"));
	ck_assert_uint_eq(config_priority(&cfg, "other/x", -1), 0);
	ck_assert_uint_eq(config_priority(&cfg, "other/x", 9), 9);
	ck_assert_uint_eq(config_priority(&cfg, "other/x", 10), 10);
	ck_assert_uint_eq(config_priority(&cfg, "other/x", 11), 10);
	ck_assert_uint_eq(config_priority(&cfg, "plain/x", 11), 10);
	/* any negative request is none */
	ck_assert_uint_eq(config_priority(&cfg, "other/x", -5), 0);
	ck_assert_uint_eq(config_priority(&cfg, "alerts/x", INT_MIN), 5);
	config_deinit(&cfg);
}
END_TEST

START_TEST(test_most_specific)
{
	struct config cfg;

	ck_assert_int_eq(config_init(&cfg), 0);
	/* Deliberately not in order of specificity. */
	conf_load_ok(&cfg, "[topic \"#\"]\n"
			   "[topic \"a/+/+\"]\n"
			   "[topic \"a/#\"]\n"
			   "[topic \"a/+/c\"]\n"
			   "[topic \"a/b/c\"]\n"
			   "[topic \"a/+/+/d\"]\n"
			   "[topic \"+/y\"]\n"
			   "[topic \"x/+\"]\n"
			   "[topic \"+/+/+/+\"]\n");
	ck_assert_str_eq(rule_for(&cfg, "a/b/c"), "a/b/c");
	ck_assert_str_eq(rule_for(&cfg, "a/x/c"), "a/+/c");
	ck_assert_str_eq(rule_for(&cfg, "a/q"), "a/#");
	ck_assert_str_eq(rule_for(&cfg, "a"), "a/#");
	ck_assert_str_eq(rule_for(&cfg, "z"), "#");
	/* fewer wildcards beats the earlier rule, even where the rule
	 * with more is the narrower one */
	ck_assert_str_eq(rule_for(&cfg, "z/y/x/w"), "#");
	ck_assert_str_eq(rule_for(&cfg, "a/x/y"), "a/#");
	/* more literals beats fewer wildcards */
	ck_assert_str_eq(rule_for(&cfg, "a/1/2/d"), "a/+/+/d");
	ck_assert_str_eq(rule_for(&cfg, "a/1/2/e"), "a/#");
	/* a tie: the earlier in the file */
	ck_assert_str_eq(rule_for(&cfg, "x/y"), "+/y");
	ck_assert_str_eq(rule_for(&cfg, "x/z"), "x/+");
	ck_assert_ptr_eq(config_rule(&cfg, "x/y"), rule_named(&cfg, "+/y"));
	config_deinit(&cfg);

	ck_assert_int_eq(config_init(&cfg), 0);
	conf_load_ok(&cfg, "[topic \"x/+\"]\n[topic \"+/y\"]\n");
	ck_assert_str_eq(rule_for(&cfg, "x/y"), "x/+");
	config_deinit(&cfg);
}
END_TEST

/* The example shipped next to the man page must load. */
START_TEST(test_example)
{
	const char *top = getenv("top_srcdir");
	char path[PATH_MAX], *error = NULL;
	const char *slash = strrchr(__FILE__, '/');
	struct config cfg;
	int r;

	if (top && *top) {
		snprintf(path, sizeof(path), "%s/daemon/mqbusd.conf.example",
			 top);
	} else {
		/* Run by hand: the source tree is the one this file was
		 * compiled from. */
		int dir_len = slash ? (int)(slash - __FILE__) : 1;

		snprintf(path, sizeof(path),
			 "%.*s/../daemon/mqbusd.conf.example", dir_len,
			 slash ? __FILE__ : ".");
		if (access(path, R_OK) < 0) {
			fprintf(stderr,
				"test_example: skipped, set top_srcdir\n");
			return;
		}
	}

	ck_assert_int_eq(config_init(&cfg), 0);
	r = config_load(&cfg, path, &error);
	ck_assert_msg(r == 0, "%s: %d %s", path, r, error ? error : "");
	ck_assert_uint_eq(cfg.max_priority, 15);
	ck_assert_uint_ge(cfg.n_rules, 3);
	ck_assert_str_eq(rule_for(&cfg, "alerts/disk/full"), "alerts/#");
	ck_assert_uint_eq(config_priority(&cfg, "alerts/disk/full", -1), 20);
	ck_assert_str_eq(rule_for(&cfg, "alerts/fire"), "alerts/fire");
	ck_assert_uint_eq(config_priority(&cfg, "alerts/fire", 32767), 32767);
	ck_assert_str_eq(rule_for(&cfg, "sensors/kitchen/temp"),
			 "sensors/+/temp");
	ck_assert_uint_eq(config_priority(&cfg, "logs/debug/x", 9), 0);
	config_deinit(&cfg);
}
END_TEST

/* Backlogs and overflow: a section's own, else the [bus] ones, whichever
 * order the file gives them in. */
START_TEST(test_policy)
{
	struct config cfg = { 0 };
	const struct delivery_policy *pol;

	conf_load_ok(&cfg, "[topic \"a/#\"]\n"
			   "overflow = block\n"
			   "backlog = 8\n"
			   "[topic \"b/#\"]\n"
			   "backlog_bytes = 4096\n"
			   "[bus]\n"
			   "pending_max = 40\n"
			   "pending_bytes = 100000\n"
			   "overflow = drop-old\n"
			   "pending_budget = 5000000\n");
	ck_assert_uint_eq(cfg.pending_budget, 5000000);
	pol = config_rule_policy(&cfg, config_rule(&cfg, "a/x"));
	ck_assert_uint_eq(pol->backlog, 8);
	ck_assert_uint_eq(pol->backlog_bytes, 100000);
	ck_assert_uint_eq(pol->overflow, OVERFLOW_BLOCK);
	pol = config_rule_policy(&cfg, config_rule(&cfg, "b/x"));
	ck_assert_uint_eq(pol->backlog, 40);
	ck_assert_uint_eq(pol->backlog_bytes, 4096);
	ck_assert_uint_eq(pol->overflow, OVERFLOW_DROP_OLD);
	pol = config_rule_policy(&cfg, config_rule(&cfg, "c"));
	ck_assert_uint_eq(pol->backlog, 40);
	ck_assert_uint_eq(pol->backlog_bytes, 100000);
	ck_assert_uint_eq(pol->overflow, OVERFLOW_DROP_OLD);
	config_deinit(&cfg);

	/* the defaults: drop the newest beyond 256 messages or 1 MiB */
	ck_assert_int_eq(config_init(&cfg), 0);
	pol = config_rule_policy(&cfg, NULL);
	ck_assert_uint_eq(pol->backlog, 256);
	ck_assert_uint_eq(pol->backlog_bytes, 1024 * 1024);
	ck_assert_uint_eq(pol->overflow, OVERFLOW_DROP_NEW);
	ck_assert_str_eq(config_overflow_name(OVERFLOW_COALESCE), "coalesce");
	ck_assert_str_eq(config_overflow_name(99), "unknown");
	config_deinit(&cfg);
}
END_TEST

#ifdef HAVE_MQTT
START_TEST(test_bridge)
{
	struct config cfg = { 0 };
	const struct bridge_conf *b;

	conf_load_ok(&cfg, "[bridge one]\n"
			   "host = 127.0.0.1\n"
			   "out = s/# site1/ qos=1\n"
			   "out = t\n"
			   "in = c/+/x loc priority=7\n"
			   "[bridge two]\n"
			   "host = b\n"
			   "port = 1884\n"
			   "clean_session = no\n"
			   "mqtt_version = 3.1.1\n"
			   "queue = 9\n"
			   "in = x/#\n");
	ck_assert_uint_eq(cfg.n_bridges, 2);
	b = &cfg.bridges[0];
	ck_assert_str_eq(b->name, "one");
	ck_assert_str_eq(b->host, "127.0.0.1");
	ck_assert_uint_eq(b->port, 1883);
	ck_assert(b->clean_session);
	ck_assert_uint_eq(b->mqtt_version, 5);
	ck_assert_uint_eq(b->queue, 1000);
	ck_assert_uint_eq(b->n_out, 2);
	ck_assert_str_eq(b->out[0].pattern, "s/#");
	ck_assert_str_eq(b->out[0].prefix, "site1");
	ck_assert_uint_eq(b->out[0].qos, 1);
	ck_assert_ptr_null(b->out[1].prefix);
	ck_assert_uint_eq(b->out[1].qos, 0);
	ck_assert_uint_eq(b->n_in, 1);
	ck_assert_str_eq(b->in[0].prefix, "loc");
	ck_assert_int_eq(b->in[0].priority, 7);
	b = &cfg.bridges[1];
	ck_assert_uint_eq(b->port, 1884);
	ck_assert(!b->clean_session);
	ck_assert_uint_eq(b->mqtt_version, 4);
	ck_assert_uint_eq(b->queue, 9);
	ck_assert_int_eq(b->in[0].priority, -1);
	config_deinit(&cfg);
}
END_TEST

START_TEST(test_bridge_overlap)
{
	ck_assert(bridge_patterns_overlap("a/b", "a/b"));
	ck_assert(!bridge_patterns_overlap("a/b", "a/c"));
	ck_assert(bridge_patterns_overlap("a/+", "a/c"));
	ck_assert(bridge_patterns_overlap("+/b", "a/+"));
	ck_assert(bridge_patterns_overlap("a/#", "a"));
	ck_assert(bridge_patterns_overlap("a", "a/#"));
	ck_assert(bridge_patterns_overlap("#", "x/y/z"));
	ck_assert(bridge_patterns_overlap("p/s/#", "+/s/x"));
	ck_assert(!bridge_patterns_overlap("p/s/#", "q/#"));
	ck_assert(!bridge_patterns_overlap("a/b", "a/b/c"));
	ck_assert(!bridge_patterns_overlap("a/+", "a"));
	ck_assert(!bridge_patterns_overlap("a/+/c", "a/b/d"));
}
END_TEST

START_TEST(test_bridge_copy_equal)
{
	struct config cfg = { 0 };
	struct bridge_conf copy;

	conf_load_ok(&cfg, "[bridge one]\nhost = h\nusername = u\n"
			   "out = s/# p qos=1\nin = c/#\n");
	ck_assert_int_eq(bridge_conf_copy(&copy, &cfg.bridges[0]), 0);
	ck_assert(bridge_conf_equal(&copy, &cfg.bridges[0]));
	ck_assert_ptr_ne(copy.host, cfg.bridges[0].host);
	copy.out[0].qos = 0;
	ck_assert(!bridge_conf_equal(&copy, &cfg.bridges[0]));
	copy.out[0].qos = 1;
	free(copy.username);
	copy.username = strdup("v");
	ck_assert(!bridge_conf_equal(&copy, &cfg.bridges[0]));
	bridge_conf_deinit(&copy);
	config_deinit(&cfg);
}
END_TEST
#else
/* Without libmosquitto a [bridge] section is refused, saying why. */
START_TEST(test_bridge_unsupported)
{
	struct config cfg = { 0 };
	char *error = NULL;

	ck_assert_int_eq(config_init(&cfg), 0);
	ck_assert_int_eq(conf_load(&cfg, "[bridge x]\nhost = h\n", &error,
				   NULL),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(error, "built without MQTT support"));
	free(error);
	config_deinit(&cfg);
}
END_TEST
#endif

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("load");
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_empty_file);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_load_into_zeroed);
	tcase_add_test(tc, test_reload);
	tcase_add_test(tc, test_bus_after_topics);
	tcase_add_test(tc, test_many_rules);
	tcase_add_test(tc, test_comments_whitespace);
	tcase_add_test(tc, test_long_pattern);
	tcase_add_test(tc, test_example);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_loop_test(tc, test_bad, 0,
			    (int)(sizeof(bad_confs) / sizeof(bad_confs[0])));
	tcase_add_test(tc, test_long_line);
	tcase_add_test(tc, test_nul_byte);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_unreadable_file);
	tcase_add_test(tc, test_directory);
	suite_add_tcase(s, tc);

	tc = tcase_create("priority");
	tcase_add_test(tc, test_priority);
	tcase_add_test(tc, test_most_specific);
	tcase_add_test(tc, test_policy);
	suite_add_tcase(s, tc);

	tc = tcase_create("bridge");
#ifdef HAVE_MQTT
	tcase_add_test(tc, test_bridge);
	tcase_add_test(tc, test_bridge_overlap);
	tcase_add_test(tc, test_bridge_copy_equal);
#else
	tcase_add_test(tc, test_bridge_unsupported);
#endif
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

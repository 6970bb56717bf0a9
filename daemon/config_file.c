/* SPDX-License-Identifier: MIT */
/*
 * config_file.c - reading mqbusd.conf(5) and answering "what priority does a
 * message on this topic get".
 *
 * inih splits the key = value lines; the section headers are read here,
 * in the line reader that feeds inih, because inih reports neither the
 * line of a header nor a section that holds no keys, and both matter: an
 * empty [topic "..."] is still a rule, and a bad or duplicate pattern must
 * be reported at its own line.  The whole file is parsed into a fresh
 * struct config, which replaces the caller's only when everything in it
 * is valid, so a reload with a broken file leaves the running daemon as
 * it was.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <ini.h>

#include "daemon/bridge_conf.h"
#include "daemon/config_file.h"
#include "daemon/policy.h"
#include "daemon/router.h"
#include "proto/proto.h"

/* A rule's ceiling while parsing when the file does not set it: the
 * default depends on [bus] max_priority, which may come later. */
#define CONFIG_CEILING_UNSET UINT_MAX

/* A policy value while parsing when the file does not set it: the
 * default is the [bus] one, which may come later. */
#define CONFIG_UNSET UINT_MAX

struct config_key {
	const char *name;
	unsigned min;
	unsigned max;
	size_t offset; /* of the unsigned it sets, in its struct */
	const char *const *names; /* a word key: its words, NULL-ended */
};

static const char *const config_overflow_names[] = {
	[OVERFLOW_DROP_NEW] = "drop-new",
	[OVERFLOW_DROP_OLD] = "drop-old",
	[OVERFLOW_COALESCE] = "coalesce",
	[OVERFLOW_BLOCK] = "block",
	[OVERFLOW_DISCONNECT] = "disconnect",
	NULL,
};

#define CONFIG_BUS_KEY(field, lo, hi)                                      \
	{ #field, lo, hi, offsetof(struct config, field), NULL }
#define CONFIG_TOPIC_KEY(field, lo, hi)                                    \
	{ #field, lo, hi, offsetof(struct topic_rule, field), NULL }
#define CONFIG_OVERFLOW_KEY(type, field)                                   \
	{ "overflow", 0, OVERFLOW_DISCONNECT, offsetof(type, field),        \
	  config_overflow_names }

static const struct config_key config_bus_keys[] = {
	CONFIG_BUS_KEY(max_priority, 0, PROTO_PRIO_MAX),
	CONFIG_BUS_KEY(pending_max, 1, 1000000),
	CONFIG_BUS_KEY(max_clients, 1, 65535),
	CONFIG_BUS_KEY(max_subscriptions, 1, 1000000),
	CONFIG_BUS_KEY(pending_bytes, 1, INT_MAX),
	CONFIG_BUS_KEY(pending_budget, 1, INT_MAX),
	CONFIG_BUS_KEY(max_retained, 0, 10000000),
	CONFIG_BUS_KEY(max_clients_per_uid, 1, 65535),
	CONFIG_BUS_KEY(block_timeout, 0, 86400),
	CONFIG_BUS_KEY(max_subscriptions_per_uid, 1, 100000000),
	CONFIG_BUS_KEY(max_requests_per_uid, 1, 10000000),
	CONFIG_BUS_KEY(pending_budget_per_uid, 1, INT_MAX),
	CONFIG_BUS_KEY(max_timers_per_uid, 0, 1000000),
	CONFIG_BUS_KEY(timer_min_period_ms, 1, 3600000),
	CONFIG_BUS_KEY(timer_rate_per_uid, 1, 1000000),
	CONFIG_BUS_KEY(query_budget_per_uid, 1, INT_MAX),
	CONFIG_BUS_KEY(max_retained_per_uid, 0, 10000000),
	CONFIG_BUS_KEY(max_retained_bytes_per_uid, 0, INT_MAX),
	CONFIG_BUS_KEY(restart_grace_ms, 0, 600000),
	CONFIG_BUS_KEY(stats_interval, 0, 86400),
	CONFIG_BUS_KEY(stats_topics, 0, 10000),
	CONFIG_BUS_KEY(max_message, 1024, 256 * 1024 * 1024),
	CONFIG_BUS_KEY(memory_files, 0, 1),
	CONFIG_OVERFLOW_KEY(struct config, overflow),
};
#define CONFIG_N_BUS_KEYS (sizeof(config_bus_keys) / sizeof(config_bus_keys[0]))

/* Named indexes: the priority > ceiling check looks at both keys. */
enum {
	CONFIG_KEY_PRIORITY,
	CONFIG_KEY_CEILING,
	CONFIG_KEY_BACKLOG,
	CONFIG_KEY_BACKLOG_BYTES,
	CONFIG_KEY_OVERFLOW,
	CONFIG_N_TOPIC_KEYS
};
static const struct config_key config_topic_keys[CONFIG_N_TOPIC_KEYS] = {
	[CONFIG_KEY_PRIORITY] = CONFIG_TOPIC_KEY(priority, 0, PROTO_PRIO_MAX),
	[CONFIG_KEY_CEILING] = CONFIG_TOPIC_KEY(ceiling, 0, PROTO_PRIO_MAX),
	[CONFIG_KEY_BACKLOG] = { "backlog", 1, 1000000,
				 offsetof(struct topic_rule, policy.backlog),
				 NULL },
	[CONFIG_KEY_BACKLOG_BYTES] = { "backlog_bytes", 1, INT_MAX,
				       offsetof(struct topic_rule,
						policy.backlog_bytes),
				       NULL },
	[CONFIG_KEY_OVERFLOW] = CONFIG_OVERFLOW_KEY(struct topic_rule,
						    policy.overflow),
};

enum config_section {
	CONFIG_SECTION_NONE, /* before the first header */
	CONFIG_SECTION_BUS,
	CONFIG_SECTION_TOPIC,
	CONFIG_SECTION_POLICY,
	CONFIG_SECTION_BRIDGE,
};

struct config_parser {
	struct config *cfg; /* being built */
	FILE *f;
	const char *path;
	unsigned lineno; /* of the line last handed to inih */
	char *line;      /* getline() buffer */
	size_t line_cap;

	enum config_section section;
	unsigned bus_line; /* of [bus], 0 before it */
	unsigned policy_line; /* of [policy] */
	unsigned bus_key_line[CONFIG_N_BUS_KEYS];
	size_t rule;         /* the current [topic], an index into cfg->rules */
	size_t rules_cap;
	unsigned *rule_line; /* of each rule's header, for duplicates */
	unsigned rule_key_line[CONFIG_N_TOPIC_KEYS];
	size_t bridge;       /* the current [bridge], into cfg->bridges */

	int err; /* the first error, -errno; parsing stops there */
	char *err_msg;
};

/* The [bus] backlog keys as the policy of topics no section matches. */
static void config_set_bus_policy(struct config *cfg)
{
	cfg->bus_policy.backlog = cfg->pending_max;
	cfg->bus_policy.backlog_bytes = cfg->pending_bytes;
	cfg->bus_policy.overflow = cfg->overflow;
}

int config_init(struct config *cfg)
{
	struct router *index;

	/* An empty index rather than NULL, so that whoever looks at
	 * rule_index (router_count() for statistics) need not check. */
	index = router_new();
	if (!index)
		return -ENOMEM;
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_priority = 15;
	cfg->pending_max = 256;
	cfg->pending_bytes = 1024 * 1024;
	cfg->overflow = OVERFLOW_DROP_NEW;
	cfg->pending_budget = 64 * 1024 * 1024;
	config_set_bus_policy(cfg);
	cfg->max_clients = 1024;
	cfg->max_subscriptions = 1024;
	cfg->max_retained = 65536;
	cfg->max_clients_per_uid = 256;
	cfg->block_timeout = 10;
	cfg->restart_grace_ms = 5000;
	cfg->max_subscriptions_per_uid = 65536;
	cfg->max_requests_per_uid = 4096;
	cfg->pending_budget_per_uid = 16 * 1024 * 1024;
	cfg->max_timers_per_uid = 1024;
	cfg->timer_min_period_ms = 10;
	cfg->timer_rate_per_uid = 1000;
	cfg->query_budget_per_uid = 1000000;
	cfg->max_retained_per_uid = 4096;
	cfg->max_retained_bytes_per_uid = 4 * 1024 * 1024;
	cfg->stats_interval = 60;
	cfg->stats_topics = 20;
	cfg->max_message = 1024 * 1024;
	cfg->memory_files = 1;
	cfg->rule_index = index;
	return 0;
}

void config_deinit(struct config *cfg)
{
	size_t i;

	router_free(cfg->rule_index);
	policy_free(cfg->policy);
	for (i = 0; i < cfg->n_bridges; i++)
		bridge_conf_deinit(&cfg->bridges[i]);
	free(cfg->bridges);
	for (i = 0; i < cfg->n_rules; i++)
		free(cfg->rules[i].pattern);
	free(cfg->rules);
	memset(cfg, 0, sizeof(*cfg));
}

/* A malloc'ed printf, or NULL when out of memory. */
static char *config_vformat(const char *fmt, va_list ap)
	__attribute__((format(printf, 1, 0)));
static char *config_vformat(const char *fmt, va_list ap)
{
	va_list ap2;
	char *s;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return NULL;
	s = malloc((size_t)n + 1);
	if (s)
		vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

static char *config_format(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static char *config_format(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = config_vformat(fmt, ap);
	va_end(ap);
	return s;
}

/*
 * Record an error at line (0: the file as a whole) unless one is recorded
 * already: the first error is the one to fix, the rest may be its echoes.
 * Returns 0, which is also what an inih handler returns for "error".
 */
static int config_fail(struct config_parser *p, int err, unsigned line,
		       const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int config_fail(struct config_parser *p, int err, unsigned line,
		       const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (p->err)
		return 0;
	p->err = err;
	va_start(ap, fmt);
	msg = config_vformat(fmt, ap);
	va_end(ap);
	/* Without memory for the message the error code still stands. */
	if (!msg)
		return 0;
	if (line)
		p->err_msg = config_format("%s:%u: %s", p->path, line, msg);
	else
		p->err_msg = config_format("%s: %s", p->path, msg);
	free(msg);
	return 0;
}

static bool config_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
	       c == '\f';
}

static const char *config_skip_space(const char *s)
{
	while (config_is_space(*s))
		s++;
	return s;
}

/* What may follow a section header's ']': nothing or a comment. */
static bool config_is_line_end(const char *s)
{
	s = config_skip_space(s);
	return *s == '\0' || *s == ';' || *s == '#';
}

/* Counts a pattern's levels, valid per proto_topic_valid(), by kind. */
static void config_count_levels(const char *pattern, unsigned *ret_literals,
				unsigned *ret_wildcards)
{
	unsigned literals = 0, wildcards = 0;
	const char *level = pattern, *end;

	for (;;) {
		end = strchr(level, '/');
		if (!end)
			end = level + strlen(level);
		if (end - level == 1 && (*level == '+' || *level == '#'))
			wildcards++;
		else
			literals++;
		if (!*end)
			break;
		level = end + 1;
	}
	*ret_literals = literals;
	*ret_wildcards = wildcards;
}

static void config_begin_bus(struct config_parser *p)
{
	if (p->bus_line) {
		config_fail(p, -EINVAL, p->lineno,
			    "[bus] given twice (first at line %u)",
			    p->bus_line);
		return;
	}
	p->bus_line = p->lineno;
	p->section = CONFIG_SECTION_BUS;
}

/* [policy]: its keys go to policy_add(), see policy.h. */
static void config_begin_policy(struct config_parser *p)
{
	if (p->cfg->policy) {
		config_fail(p, -EINVAL, p->lineno,
			    "[policy] given twice (first at line %u)",
			    p->policy_line);
		return;
	}
	p->cfg->policy = policy_new(p->path, p->lineno);
	if (!p->cfg->policy) {
		config_fail(p, -ENOMEM, 0, "%s", strerror(ENOMEM));
		return;
	}
	p->policy_line = p->lineno;
	p->section = CONFIG_SECTION_POLICY;
}

static void config_begin_topic(struct config_parser *p, const char *pattern,
			       size_t len)
{
	struct config *cfg = p->cfg;
	struct topic_rule *rule;
	size_t i;

	if (!proto_topic_valid(pattern, len, true)) {
		config_fail(p, -EINVAL, p->lineno,
			    "'%.*s' is not a valid topic pattern", (int)len,
			    pattern);
		return;
	}
	/* Linear, but once per section of a file a human writes. */
	for (i = 0; i < cfg->n_rules; i++) {
		if (strlen(cfg->rules[i].pattern) == len &&
		    !memcmp(cfg->rules[i].pattern, pattern, len)) {
			config_fail(p, -EINVAL, p->lineno,
				    "[topic \"%.*s\"] given twice (first at line %u)",
				    (int)len, pattern, p->rule_line[i]);
			return;
		}
	}

	if (cfg->n_rules == p->rules_cap) {
		size_t cap = p->rules_cap ? 2 * p->rules_cap : 8;
		struct topic_rule *rules;
		unsigned *lines;

		rules = realloc(cfg->rules, cap * sizeof(*rules));
		if (!rules)
			goto nomem;
		cfg->rules = rules;
		lines = realloc(p->rule_line, cap * sizeof(*lines));
		if (!lines)
			goto nomem;
		p->rule_line = lines;
		p->rules_cap = cap;
	}
	rule = &cfg->rules[cfg->n_rules];
	memset(rule, 0, sizeof(*rule));
	rule->pattern = strndup(pattern, len);
	if (!rule->pattern)
		goto nomem;
	rule->priority = 0;
	rule->ceiling = CONFIG_CEILING_UNSET;
	rule->policy.backlog = CONFIG_UNSET;
	rule->policy.backlog_bytes = CONFIG_UNSET;
	rule->policy.overflow = CONFIG_UNSET;
	rule->order = (unsigned)cfg->n_rules;
	config_count_levels(rule->pattern, &rule->literals, &rule->wildcards);
	p->rule_line[cfg->n_rules] = p->lineno;
	p->rule = cfg->n_rules++;
	memset(p->rule_key_line, 0, sizeof(p->rule_key_line));
	p->section = CONFIG_SECTION_TOPIC;
	return;

nomem:
	config_fail(p, -ENOMEM, 0, "%s", strerror(ENOMEM));
}

/* [bridge NAME]: its keys go to bridge_conf_add(), see bridge_conf.h. */
static void config_begin_bridge(struct config_parser *p, const char *name,
				size_t len)
{
	struct config *cfg = p->cfg;
	struct bridge_conf *grown;
	size_t i;

#ifndef HAVE_MQTT
	config_fail(p, -EINVAL, p->lineno,
		    "[bridge %.*s]: this mqbusd was built without MQTT "
		    "support (configure --with-mqtt, needs libmosquitto)",
		    (int)len, name);
	return;
#endif
	if (!bridge_conf_name_valid(name, len)) {
		config_fail(p, -EINVAL, p->lineno,
			    "'%.*s' is not a valid bridge name (1 to %d of "
			    "A-Z a-z 0-9 . _ -)",
			    (int)len, name, BRIDGE_NAME_MAX);
		return;
	}
	for (i = 0; i < cfg->n_bridges; i++) {
		if (strlen(cfg->bridges[i].name) == len &&
		    !memcmp(cfg->bridges[i].name, name, len)) {
			config_fail(p, -EINVAL, p->lineno,
				    "[bridge %.*s] given twice (first at line %u)",
				    (int)len, name, cfg->bridges[i].line);
			return;
		}
	}
	grown = realloc(cfg->bridges, (cfg->n_bridges + 1) * sizeof(*grown));
	if (!grown) {
		config_fail(p, -ENOMEM, 0, "%s", strerror(ENOMEM));
		return;
	}
	cfg->bridges = grown;
	if (bridge_conf_init(&grown[cfg->n_bridges], name, len, p->lineno) < 0) {
		config_fail(p, -ENOMEM, 0, "%s", strerror(ENOMEM));
		return;
	}
	p->bridge = cfg->n_bridges++;
	p->section = CONFIG_SECTION_BRIDGE;
}

/*
 * A line starting with '[': "[bus]" or "[topic "PATTERN"]", optionally
 * followed by a comment.  PATTERN ends at the first '"' that only blanks,
 * a ']' and the end of the line or a comment follow, so a topic holding
 * '"' or ']' (both valid in topics) can still be configured.
 */
static void config_section_line(struct config_parser *p, const char *s)
{
	const char *word, *q, *pattern;
	size_t word_len;

	word = config_skip_space(s + 1);
	word_len = strcspn(word, " \t\r\n\v\f]\"");

	if (word_len == 3 && !memcmp(word, "bus", 3)) {
		q = config_skip_space(word + word_len);
		if (*q != ']' || !config_is_line_end(q + 1)) {
			config_fail(p, -EINVAL, p->lineno,
				    "expected '[bus]'");
			return;
		}
		config_begin_bus(p);
		return;
	}

	if (word_len == 6 && !memcmp(word, "policy", 6)) {
		q = config_skip_space(word + word_len);
		if (*q != ']' || !config_is_line_end(q + 1)) {
			config_fail(p, -EINVAL, p->lineno,
				    "expected '[policy]'");
			return;
		}
		config_begin_policy(p);
		return;
	}

	if (word_len == 6 && !memcmp(word, "bridge", 6)) {
		const char *name = config_skip_space(word + word_len);
		size_t len = strcspn(name, " \t]");

		q = config_skip_space(name + len);
		if (name == word + word_len || *q != ']' ||
		    !config_is_line_end(q + 1)) {
			config_fail(p, -EINVAL, p->lineno,
				    "expected '[bridge NAME]'");
			return;
		}
		config_begin_bridge(p, name, len);
		return;
	}

	if (word_len == 5 && !memcmp(word, "topic", 5)) {
		q = config_skip_space(word + word_len);
		if (q == word + word_len || *q != '"')
			goto bad_topic;
		pattern = q + 1;
		for (q = strchr(pattern, '"'); q; q = strchr(q + 1, '"')) {
			const char *close = config_skip_space(q + 1);

			if (*close == ']' && config_is_line_end(close + 1)) {
				config_begin_topic(p, pattern,
						   (size_t)(q - pattern));
				return;
			}
		}
bad_topic:
		config_fail(p, -EINVAL, p->lineno,
			    "expected '[topic \"PATTERN\"]'");
		return;
	}

	if (!strchr(s, ']')) {
		config_fail(p, -EINVAL, p->lineno,
			    "syntax error: section header without ']'");
		return;
	}
	config_fail(p, -EINVAL, p->lineno,
		    "unknown section '%.*s' (expected [bus], [topic \"PATTERN\"], [policy] or [bridge NAME])",
		    (int)word_len, word);
}

/*
 * inih's line reader.  Hands inih exactly one line per call, so inih's
 * line numbers (in its return value) are ours.  Leading whitespace is
 * dropped: inih would take an indented line after a key for a
 * continuation of that key's value, but "  ceiling = 5" under
 * "  priority = 1" is two keys to anyone reading the file.  Section
 * headers are handled here and reach inih as blank lines.
 */
static char *config_read_line(char *str, int num, void *stream)
{
	struct config_parser *p = stream;
	const char *s;
	ssize_t n;
	size_t len;

	if (p->err)
		return NULL;
	errno = 0;
	n = getline(&p->line, &p->line_cap, p->f);
	if (n < 0) {
		/* Not the end of the file: a read error (EISDIR for a
		 * directory, EIO) or no memory for the line. */
		if (!feof(p->f)) {
			int e = errno ? errno : EIO;

			config_fail(p, -e, 0, "%s", strerror(e));
		}
		return NULL;
	}
	p->lineno++;

	s = p->line;
	if (strlen(s) != (size_t)n) {
		config_fail(p, -EINVAL, p->lineno, "NUL byte in line");
		return NULL;
	}
	/* A UTF-8 byte order mark, as some editors write. */
	if (p->lineno == 1 && n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3))
		s += 3;
	s = config_skip_space(s);

	if (*s == '[') {
		config_section_line(p, s);
		if (p->err)
			return NULL;
		str[0] = '\0';
		return str;
	}

	/* Keys and values are short: a line inih cannot hold whole is not
	 * one, and splitting it would shift the line numbers. */
	len = strlen(s);
	if (num < 2 || len > (size_t)num - 2) {
		config_fail(p, -EINVAL, p->lineno, "line too long (max %d)",
			    num - 2);
		return NULL;
	}
	memcpy(str, s, len + 1);
	return str;
}

/*
 * value as an unsigned in key's range, strictly: digits only, so no sign,
 * no blanks and no trailing junk that strtoul() would let pass.  Returns 0,
 * or -EINVAL after recording the error.
 */
static int config_parse_value(struct config_parser *p,
			      const struct config_key *key, const char *value,
			      unsigned *ret_value)
{
	unsigned long v;

	if (key->names) {
		for (unsigned i = 0; key->names[i]; i++) {
			if (value && strcmp(value, key->names[i]) == 0) {
				*ret_value = i;
				return 0;
			}
		}
		config_fail(p, -EINVAL, p->lineno,
			    "%s: '%s' is not one of drop-new, drop-old, "
			    "coalesce, block, disconnect",
			    key->name, value ? value : "");
		return -EINVAL;
	}
	if (!value || !*value ||
	    strspn(value, "0123456789") != strlen(value)) {
		config_fail(p, -EINVAL, p->lineno,
			    "%s: '%s' is not a number (allowed %u..%u)",
			    key->name, value ? value : "", key->min, key->max);
		return -EINVAL;
	}
	errno = 0;
	v = strtoul(value, NULL, 10);
	if (errno == ERANGE || v > key->max) {
		config_fail(p, -EINVAL, p->lineno,
			    "%s: '%s' is above %u (allowed %u..%u)", key->name,
			    value, key->max, key->min, key->max);
		return -EINVAL;
	}
	if (v < key->min) {
		config_fail(p, -EINVAL, p->lineno,
			    "%s: '%s' is below %u (allowed %u..%u)", key->name,
			    value, key->min, key->min, key->max);
		return -EINVAL;
	}
	*ret_value = (unsigned)v;
	return 0;
}

/*
 * Set name in the struct at base from the keys table; key_line keeps the
 * line each key was set at, so a key given twice is caught.  Returns the
 * index of the key set, or -1 after recording an error.
 */
static int config_set(struct config_parser *p, const struct config_key *keys,
		      size_t n_keys, unsigned *key_line, void *base,
		      const char *name, const char *value)
{
	unsigned v;
	size_t i;

	for (i = 0; i < n_keys; i++)
		if (!strcmp(name, keys[i].name))
			break;
	if (i == n_keys) {
		if (p->section == CONFIG_SECTION_BUS)
			config_fail(p, -EINVAL, p->lineno,
				    "unknown key '%s' in [bus]", name);
		else
			config_fail(p, -EINVAL, p->lineno,
				    "unknown key '%s' in [topic \"%s\"]", name,
				    p->cfg->rules[p->rule].pattern);
		return -1;
	}
	if (key_line[i]) {
		config_fail(p, -EINVAL, p->lineno,
			    "%s: given twice in this section (first at line %u)",
			    name, key_line[i]);
		return -1;
	}
	if (config_parse_value(p, &keys[i], value, &v) < 0)
		return -1;
	/* memcpy: the offset names an unsigned, but the compiler cannot
	 * see that a char pointer plus it is aligned for one. */
	memcpy((char *)base + keys[i].offset, &v, sizeof(v));
	key_line[i] = p->lineno;
	return (int)i;
}

/* inih's handler: one key = value line.  section is always "": headers
 * never reach inih (see config_read_line()), p->section says where we
 * are. */
static int config_handle(void *user, const char *section, const char *name,
			 const char *value)
{
	struct config_parser *p = user;
	struct topic_rule *rule;
	int k;

	(void)section;
	if (p->err)
		return 0;

	switch (p->section) {
	case CONFIG_SECTION_BUS:
		k = config_set(p, config_bus_keys, CONFIG_N_BUS_KEYS,
			       p->bus_key_line, p->cfg, name, value);
		return k >= 0;
	case CONFIG_SECTION_TOPIC:
		rule = &p->cfg->rules[p->rule];
		k = config_set(p, config_topic_keys, CONFIG_N_TOPIC_KEYS,
			       p->rule_key_line, rule, name, value);
		if (k < 0)
			return 0;
		/* Checked when the second of the two is set, whichever it
		 * is, so the error points at a line that takes part. */
		if (p->rule_key_line[CONFIG_KEY_PRIORITY] &&
		    p->rule_key_line[CONFIG_KEY_CEILING] &&
		    rule->priority > rule->ceiling)
			return config_fail(p, -EINVAL, p->lineno,
					   "priority %u is above ceiling %u",
					   rule->priority, rule->ceiling);
		return 1;
	case CONFIG_SECTION_POLICY: {
		char *msg = NULL;
		int r = policy_add(p->cfg->policy, name, value, p->lineno,
				   &msg);

		if (r < 0)
			config_fail(p, r, p->lineno, "%s",
				    msg ? msg : strerror(-r));
		free(msg);
		return r == 0;
	}
	case CONFIG_SECTION_BRIDGE: {
		char *msg = NULL;
		int r = bridge_conf_add(&p->cfg->bridges[p->bridge], name,
					value, p->lineno, &msg);

		if (r < 0)
			config_fail(p, r, p->lineno, "%s",
				    msg ? msg : strerror(-r));
		free(msg);
		return r == 0;
	}
	case CONFIG_SECTION_NONE:
	default:
		return config_fail(p, -EINVAL, p->lineno,
				   "'%s' is outside any section (expected [bus], [topic \"PATTERN\"] or [policy] first)",
				   name);
	}
}

/* After a clean parse: defaults that depend on [bus], then the index. */
static int config_finish(struct config_parser *p)
{
	struct config *cfg = p->cfg;
	size_t i;
	int r;

	config_set_bus_policy(cfg);
	if (cfg->policy) {
		char *msg = NULL;
		unsigned line = 0;

		r = policy_finish(cfg->policy, &line, &msg);
		if (r < 0)
			config_fail(p, r, line, "%s", msg ? msg : strerror(-r));
		free(msg);
		if (r < 0)
			return r;
	}
	for (i = 0; i < cfg->n_bridges; i++) {
		char *msg = NULL;
		unsigned line = 0;

		r = bridge_conf_check(&cfg->bridges[i], &line, &msg);
		if (r < 0)
			config_fail(p, r, line, "%s", msg ? msg : strerror(-r));
		free(msg);
		if (r < 0)
			return r;
	}
	for (i = 0; i < cfg->n_rules; i++) {
		struct topic_rule *rule = &cfg->rules[i];

		if (rule->ceiling == CONFIG_CEILING_UNSET)
			rule->ceiling = rule->priority > cfg->max_priority ?
						rule->priority :
						cfg->max_priority;
		if (rule->policy.backlog == CONFIG_UNSET)
			rule->policy.backlog = cfg->pending_max;
		if (rule->policy.backlog_bytes == CONFIG_UNSET)
			rule->policy.backlog_bytes = cfg->pending_bytes;
		if (rule->policy.overflow == CONFIG_UNSET)
			rule->policy.overflow = cfg->overflow;
	}
	/* Only now: rules is not reallocated any more, so the pointers the
	 * index holds stay valid. */
	for (i = 0; i < cfg->n_rules; i++) {
		r = router_subscribe(cfg->rule_index, cfg->rules[i].pattern,
				     &cfg->rules[i]);
		if (r < 0) {
			config_fail(p, r, 0, "%s", strerror(-r));
			return r;
		}
	}
	return 0;
}

int config_load(struct config *cfg, const char *path, char **ret_error)
{
	struct config_parser p;
	struct config fresh;
	int r;

	memset(&p, 0, sizeof(p));
	p.path = path;
	p.cfg = &fresh;

	r = config_init(&fresh);
	if (r < 0) {
		config_fail(&p, r, 0, "%s", strerror(-r));
		goto out;
	}

	p.f = fopen(path, "re");
	if (!p.f) {
		r = -errno;
		config_fail(&p, r, 0, "%s", strerror(-r));
		goto out_fresh;
	}

	r = ini_parse_stream(config_read_line, &p, config_handle, &p);
	if (r == -2) {
		config_fail(&p, -ENOMEM, 0, "%s", strerror(ENOMEM));
	} else if (r > 0 && (!p.err || (unsigned)r < p.lineno)) {
		/* A line inih refused without calling us (no '='), before
		 * any error of ours: inih parses on past its own errors, and
		 * our reader stops at the line of our first. */
		free(p.err_msg);
		p.err = 0;
		p.err_msg = NULL;
		config_fail(&p, -EINVAL, (unsigned)r,
			    "syntax error: expected 'key = value'");
	}
	if (!p.err)
		config_finish(&p);
	r = p.err;
	if (r < 0)
		goto out_fresh;

	config_deinit(cfg);
	*cfg = fresh;
	goto out;

out_fresh:
	config_deinit(&fresh);
out:
	if (p.f)
		fclose(p.f);
	free(p.line);
	free(p.rule_line);
	if (r < 0 && ret_error)
		*ret_error = p.err_msg;
	else
		free(p.err_msg);
	return r;
}

struct config_best {
	const struct topic_rule *rule;
};

/* More literal levels, then fewer wildcards, then earlier in the file. */
static bool config_more_specific(const struct topic_rule *a,
				 const struct topic_rule *b)
{
	if (a->literals != b->literals)
		return a->literals > b->literals;
	if (a->wildcards != b->wildcards)
		return a->wildcards < b->wildcards;
	return a->order < b->order;
}

static void config_pick(void *subscriber, void *userdata)
{
	const struct topic_rule *rule = subscriber;
	struct config_best *best = userdata;

	if (!best->rule || config_more_specific(rule, best->rule))
		best->rule = rule;
}

const struct topic_rule *config_rule(const struct config *cfg,
				     const char *topic)
{
	struct config_best best = { NULL };

	if (!cfg->rule_index || cfg->n_rules == 0)
		return NULL;
	router_match(cfg->rule_index, topic, config_pick, &best);
	return best.rule;
}

unsigned config_rule_priority(const struct config *cfg,
			      const struct topic_rule *rule, int requested)
{
	unsigned ceiling = rule ? rule->ceiling : cfg->max_priority;

	if (requested < 0)
		return rule ? rule->priority : 0;
	return (unsigned)requested < ceiling ? (unsigned)requested : ceiling;
}

unsigned config_priority(const struct config *cfg, const char *topic,
			 int requested)
{
	return config_rule_priority(cfg, config_rule(cfg, topic), requested);
}

const struct delivery_policy *config_rule_policy(const struct config *cfg,
						 const struct topic_rule *rule)
{
	return rule ? &rule->policy : &cfg->bus_policy;
}

const char *config_overflow_name(unsigned overflow)
{
	return overflow <= OVERFLOW_DISCONNECT ? config_overflow_names[overflow]
					       : "unknown";
}

/* SPDX-License-Identifier: MIT */
/*
 * bridge_conf.c - reading the [bridge NAME] sections of mqbusd.conf(5).
 *
 * Plain keys come from a table (a string, a number in a range, or yes/no);
 * "out" and "in" are mappings and may be given many times.  A mapping is
 * "PATTERN [PREFIX] [qos=0|1] [priority=N]": the pattern and prefix are
 * checked as mqbus topics (a prefix has no wildcard), so whatever crosses
 * in either direction is a valid topic on both sides.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/bridge_conf.h"
#include "proto/proto.h"

enum bridge_key_type { KEY_STRING, KEY_UNSIGNED, KEY_BOOL, KEY_VERSION };

struct bridge_key {
	const char *name;
	enum bridge_key_type type;
	size_t offset;
	unsigned min, max;
};

#define STR_KEY(f) { #f, KEY_STRING, offsetof(struct bridge_conf, f), 0, 0 }
#define NUM_KEY(f, lo, hi)                                                   \
	{ #f, KEY_UNSIGNED, offsetof(struct bridge_conf, f), lo, hi }

static const struct bridge_key bridge_keys[] = {
	STR_KEY(host),
	NUM_KEY(port, 1, 65535),
	STR_KEY(client_id),
	STR_KEY(cafile),
	STR_KEY(certfile),
	STR_KEY(keyfile),
	STR_KEY(username),
	STR_KEY(password_file),
	STR_KEY(user),
	NUM_KEY(keepalive, 5, 65535),
	{ "clean_session", KEY_BOOL, offsetof(struct bridge_conf, clean_session),
	  0, 1 },
	{ "mqtt_version", KEY_VERSION,
	  offsetof(struct bridge_conf, mqtt_version), 0, 0 },
	NUM_KEY(queue, 1, 1000000),
	NUM_KEY(reconnect_min_ms, 10, 3600000),
	NUM_KEY(reconnect_max_ms, 10, 3600000),
};
#define BRIDGE_N_KEYS (sizeof(bridge_keys) / sizeof(bridge_keys[0]))
_Static_assert(BRIDGE_N_KEYS <=
		       sizeof(((struct bridge_conf *)0)->key_line) /
			       sizeof(unsigned),
	       "key_line too small");

static int bridge_fail(char **ret_error, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int bridge_fail(char **ret_error, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (ret_error)
		*ret_error = s;
	else
		free(s);
	return -EINVAL;
}

bool bridge_conf_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > BRIDGE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

int bridge_conf_init(struct bridge_conf *bc, const char *name, size_t len,
		     unsigned line)
{
	memset(bc, 0, sizeof(*bc));
	bc->name = strndup(name, len);
	if (!bc->name)
		return -ENOMEM;
	bc->line = line;
	bc->port = 1883;
	bc->keepalive = 60;
	bc->clean_session = true;
	bc->mqtt_version = 5;
	bc->queue = 1000;
	bc->reconnect_min_ms = 500;
	bc->reconnect_max_ms = 30000;
	return 0;
}

static void bridge_maps_free(struct bridge_map *maps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(maps[i].pattern);
		free(maps[i].prefix);
	}
	free(maps);
}

void bridge_conf_deinit(struct bridge_conf *bc)
{
	for (size_t i = 0; i < BRIDGE_N_KEYS; i++) {
		char *v;

		if (bridge_keys[i].type != KEY_STRING)
			continue;
		memcpy(&v, (char *)bc + bridge_keys[i].offset, sizeof(v));
		free(v);
	}
	free(bc->name);
	bridge_maps_free(bc->out, bc->n_out);
	bridge_maps_free(bc->in, bc->n_in);
	memset(bc, 0, sizeof(*bc));
}

static int bridge_parse_unsigned(const char *value, unsigned min,
				 unsigned max, unsigned *ret)
{
	unsigned long v;

	if (!*value || strspn(value, "0123456789") != strlen(value))
		return -EINVAL;
	errno = 0;
	v = strtoul(value, NULL, 10);
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*ret = (unsigned)v;
	return 0;
}

static int bridge_set_key(struct bridge_conf *bc, const struct bridge_key *k,
			  const char *value, char **ret_error)
{
	char *base = (char *)bc + k->offset;
	unsigned u;
	bool b;
	char *s;

	switch (k->type) {
	case KEY_STRING:
		if (!*value)
			return bridge_fail(ret_error, "%s: empty value",
					   k->name);
		s = strdup(value);
		if (!s)
			return -ENOMEM;
		memcpy(base, &s, sizeof(s));
		return 0;
	case KEY_UNSIGNED:
		if (bridge_parse_unsigned(value, k->min, k->max, &u) < 0)
			return bridge_fail(ret_error,
					   "%s: '%s' is not a number in "
					   "%u..%u",
					   k->name, value, k->min, k->max);
		memcpy(base, &u, sizeof(u));
		if (!strcmp(k->name, "port"))
			bc->port_set = true;
		return 0;
	case KEY_BOOL:
		if (!strcmp(value, "yes") || !strcmp(value, "true") ||
		    !strcmp(value, "1"))
			b = true;
		else if (!strcmp(value, "no") || !strcmp(value, "false") ||
			 !strcmp(value, "0"))
			b = false;
		else
			return bridge_fail(ret_error,
					   "%s: '%s' is not yes or no",
					   k->name, value);
		memcpy(base, &b, sizeof(b));
		return 0;
	case KEY_VERSION:
		if (!strcmp(value, "5"))
			u = 5;
		else if (!strcmp(value, "3.1.1"))
			u = 4;
		else
			return bridge_fail(ret_error,
					   "%s: '%s' is not 3.1.1 or 5",
					   k->name, value);
		memcpy(base, &u, sizeof(u));
		return 0;
	}
	return -EINVAL;
}

/* A prefix: a topic without wildcards; a trailing '/' is dropped. */
static int bridge_parse_prefix(const char *word, size_t len, char **ret,
			       char **ret_error)
{
	if (len > 1 && word[len - 1] == '/')
		len--;
	if (!proto_topic_valid(word, len, false))
		return bridge_fail(ret_error,
				   "'%.*s' is not a valid topic prefix (no "
				   "wildcards, no empty level)",
				   (int)len, word);
	*ret = strndup(word, len);
	return *ret ? 0 : -ENOMEM;
}

static int bridge_parse_option(struct bridge_map *m, bool in,
			       const char *word, size_t len, char **ret_error)
{
	char buf[32];
	unsigned v;

	if (len >= sizeof(buf))
		goto bad;
	memcpy(buf, word, len);
	buf[len] = '\0';
	if (!strncmp(buf, "qos=", 4)) {
		if (bridge_parse_unsigned(buf + 4, 0, 1, &v) < 0)
			return bridge_fail(ret_error,
					   "'%s': the bridge sends and takes "
					   "QoS 0 or 1",
					   buf);
		m->qos = v;
		return 0;
	}
	if (in && !strncmp(buf, "priority=", 9)) {
		if (bridge_parse_unsigned(buf + 9, 0, PROTO_PRIO_MAX, &v) < 0)
			return bridge_fail(ret_error,
					   "'%s': a priority is 0..%u", buf,
					   (unsigned)PROTO_PRIO_MAX);
		m->priority = (int)v;
		return 0;
	}
bad:
	return bridge_fail(ret_error,
			   "'%.*s': expected %s",
			   (int)len, word,
			   in ? "qos=0|1 or priority=N" : "qos=0|1");
}

/* "PATTERN [PREFIX] [qos=N] [priority=N]" */
static int bridge_parse_map(struct bridge_map *m, bool in, const char *value,
			    char **ret_error)
{
	const char *p = value, *word;
	unsigned n = 0;
	size_t len;
	int r;

	m->priority = -1;
	for (;;) {
		p += strspn(p, " \t");
		if (!*p)
			break;
		word = p;
		len = strcspn(p, " \t");
		p += len;
		if (memchr(word, '=', len)) {
			r = bridge_parse_option(m, in, word, len, ret_error);
		} else if (n == 0) {
			if (!proto_topic_valid(word, len, true))
				return bridge_fail(ret_error,
						   "'%.*s' is not a valid "
						   "topic pattern",
						   (int)len, word);
			m->pattern = strndup(word, len);
			r = m->pattern ? 0 : -ENOMEM;
		} else if (n == 1) {
			r = bridge_parse_prefix(word, len, &m->prefix,
						ret_error);
		} else {
			r = bridge_fail(ret_error,
					"'%.*s': one pattern and one prefix "
					"at most",
					(int)len, word);
		}
		if (r < 0)
			return r;
		if (!memchr(word, '=', len))
			n++;
	}
	if (!m->pattern)
		return bridge_fail(ret_error,
				   "%s: expected PATTERN [PREFIX] [qos=0|1]%s",
				   in ? "in" : "out",
				   in ? " [priority=N]" : "");
	return 0;
}

static int bridge_add_map(struct bridge_map **maps, size_t *n, bool in,
			  const char *value, unsigned line, char **ret_error)
{
	struct bridge_map m = { 0 }, *grown;
	int r;

	r = bridge_parse_map(&m, in, value, ret_error);
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < *n; i++) {
		if (!strcmp((*maps)[i].pattern, m.pattern)) {
			r = bridge_fail(ret_error,
					"%s = %s: given twice (first at line "
					"%u)",
					in ? "in" : "out", m.pattern,
					(*maps)[i].line);
			goto fail;
		}
	}
	grown = realloc(*maps, (*n + 1) * sizeof(**maps));
	if (!grown) {
		r = -ENOMEM;
		goto fail;
	}
	m.line = line;
	grown[(*n)++] = m;
	*maps = grown;
	return 0;
fail:
	free(m.pattern);
	free(m.prefix);
	return r;
}

int bridge_conf_add(struct bridge_conf *bc, const char *key,
		    const char *value, unsigned line, char **ret_error)
{
	size_t i;
	int r;

	if (!value)
		value = "";
	if (!strcmp(key, "out"))
		return bridge_add_map(&bc->out, &bc->n_out, false, value, line,
				      ret_error);
	if (!strcmp(key, "in"))
		return bridge_add_map(&bc->in, &bc->n_in, true, value, line,
				      ret_error);
	for (i = 0; i < BRIDGE_N_KEYS; i++)
		if (!strcmp(key, bridge_keys[i].name))
			break;
	if (i == BRIDGE_N_KEYS)
		return bridge_fail(ret_error, "unknown key '%s' in [bridge %s]",
				   key, bc->name);
	if (bc->key_line[i])
		return bridge_fail(ret_error,
				   "%s: given twice in this section (first at "
				   "line %u)",
				   key, bc->key_line[i]);
	r = bridge_set_key(bc, &bridge_keys[i], value, ret_error);
	if (r == 0)
		bc->key_line[i] = line;
	return r;
}

/*
 * Some topic matches both: level by level, '#' takes the rest, '+' any
 * one level, literals must be equal.  ("a/#" matches "a" too.)
 */
bool bridge_patterns_overlap(const char *a, const char *b)
{
	for (;;) {
		size_t la = strcspn(a, "/"), lb = strcspn(b, "/");

		if ((la == 1 && *a == '#') || (lb == 1 && *b == '#'))
			return true;
		if (!((la == 1 && *a == '+') || (lb == 1 && *b == '+') ||
		      (la == lb && !memcmp(a, b, la))))
			return false;
		a += la;
		b += lb;
		if (!*a && !*b)
			return true;
		/* one ends: it still matches if the other goes on with "/#" */
		if (!*a)
			return !strcmp(b, "/#");
		if (!*b)
			return !strcmp(a, "/#");
		a++;
		b++;
	}
}

/* The remote side of an out mapping: prefix/pattern. */
static char *bridge_out_remote(const struct bridge_map *m)
{
	char *s;

	if (!m->prefix)
		return strdup(m->pattern);
	if (asprintf(&s, "%s/%s", m->prefix, m->pattern) < 0)
		return NULL;
	return s;
}

int bridge_conf_check(const struct bridge_conf *bc, unsigned *ret_line,
		      char **ret_error)
{
	*ret_line = bc->line;
	if (!bc->host)
		return bridge_fail(ret_error, "[bridge %s]: no host", bc->name);
	if (!!bc->certfile != !!bc->keyfile)
		return bridge_fail(ret_error,
				   "[bridge %s]: certfile and keyfile go "
				   "together",
				   bc->name);
	if ((bc->certfile || bc->keyfile) && !bc->cafile)
		return bridge_fail(ret_error,
				   "[bridge %s]: a client certificate needs "
				   "cafile (TLS)",
				   bc->name);
	if (bc->reconnect_min_ms > bc->reconnect_max_ms)
		return bridge_fail(ret_error,
				   "[bridge %s]: reconnect_min_ms %u is above "
				   "reconnect_max_ms %u",
				   bc->name, bc->reconnect_min_ms,
				   bc->reconnect_max_ms);
	if (bc->n_out + bc->n_in == 0)
		return bridge_fail(ret_error,
				   "[bridge %s]: no out or in mapping",
				   bc->name);
	if (bc->mqtt_version != 4)
		return 0;
	for (size_t i = 0; i < bc->n_out; i++) {
		char *remote = bridge_out_remote(&bc->out[i]);

		if (!remote)
			return -ENOMEM;
		for (size_t j = 0; j < bc->n_in; j++) {
			if (!bridge_patterns_overlap(remote,
						     bc->in[j].pattern))
				continue;
			*ret_line = bc->in[j].line;
			bridge_fail(ret_error,
				    "[bridge %s]: in = %s takes back what "
				    "out = %s (line %u) sends as %s: MQTT "
				    "3.1.1 cannot tell the broker not to "
				    "echo a client's own messages; use "
				    "mqtt_version = 5 or prefixes that keep "
				    "them apart",
				    bc->name, bc->in[j].pattern,
				    bc->out[i].pattern, bc->out[i].line,
				    remote);
			free(remote);
			return -EINVAL;
		}
		free(remote);
	}
	return 0;
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool maps_equal(const struct bridge_map *a, size_t na,
		       const struct bridge_map *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!str_eq(a[i].pattern, b[i].pattern) ||
		    !str_eq(a[i].prefix, b[i].prefix) || a[i].qos != b[i].qos ||
		    a[i].priority != b[i].priority)
			return false;
	return true;
}

bool bridge_conf_equal(const struct bridge_conf *a,
		       const struct bridge_conf *b)
{
	for (size_t i = 0; i < BRIDGE_N_KEYS; i++) {
		const char *pa = (const char *)a + bridge_keys[i].offset;
		const char *pb = (const char *)b + bridge_keys[i].offset;
		const char *sa, *sb;
		unsigned ua, ub;
		bool ba, bb;

		switch (bridge_keys[i].type) {
		case KEY_STRING:
			memcpy(&sa, pa, sizeof(sa));
			memcpy(&sb, pb, sizeof(sb));
			if (!str_eq(sa, sb))
				return false;
			break;
		case KEY_BOOL:
			memcpy(&ba, pa, sizeof(ba));
			memcpy(&bb, pb, sizeof(bb));
			if (ba != bb)
				return false;
			break;
		default:
			memcpy(&ua, pa, sizeof(ua));
			memcpy(&ub, pb, sizeof(ub));
			if (ua != ub)
				return false;
		}
	}
	return str_eq(a->name, b->name) &&
	       maps_equal(a->out, a->n_out, b->out, b->n_out) &&
	       maps_equal(a->in, a->n_in, b->in, b->n_in);
}

static int maps_copy(struct bridge_map **dst, size_t *ret_n,
		     const struct bridge_map *src, size_t n)
{
	*dst = n ? calloc(n, sizeof(**dst)) : NULL;
	if (n && !*dst)
		return -ENOMEM;
	*ret_n = n; /* zeroed entries free cleanly */
	for (size_t i = 0; i < n; i++) {
		(*dst)[i] = src[i];
		(*dst)[i].prefix = NULL;
		(*dst)[i].pattern = strdup(src[i].pattern);
		(*dst)[i].prefix = src[i].prefix ? strdup(src[i].prefix) : NULL;
		if (!(*dst)[i].pattern || (src[i].prefix && !(*dst)[i].prefix))
			return -ENOMEM;
	}
	return 0;
}

int bridge_conf_copy(struct bridge_conf *dst, const struct bridge_conf *src)
{
	*dst = *src;
	dst->name = NULL;
	dst->out = dst->in = NULL;
	dst->n_out = dst->n_in = 0;
	for (size_t i = 0; i < BRIDGE_N_KEYS; i++) {
		char *s;

		if (bridge_keys[i].type != KEY_STRING)
			continue;
		memcpy(&s, (const char *)src + bridge_keys[i].offset,
		       sizeof(s));
		s = s ? strdup(s) : NULL;
		memcpy((char *)dst + bridge_keys[i].offset, &s, sizeof(s));
	}
	dst->name = strdup(src->name);
	if (!dst->name || maps_copy(&dst->out, &dst->n_out, src->out, src->n_out) < 0 ||
	    maps_copy(&dst->in, &dst->n_in, src->in, src->n_in) < 0)
		goto nomem;
	for (size_t i = 0; i < BRIDGE_N_KEYS; i++) {
		const char *a, *b;

		if (bridge_keys[i].type != KEY_STRING)
			continue;
		memcpy(&a, (const char *)src + bridge_keys[i].offset,
		       sizeof(a));
		memcpy(&b, (const char *)dst + bridge_keys[i].offset,
		       sizeof(b));
		if (a && !b)
			goto nomem;
	}
	return 0;
nomem:
	bridge_conf_deinit(dst);
	return -ENOMEM;
}

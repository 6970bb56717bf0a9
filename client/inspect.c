/* SPDX-License-Identifier: MIT */
/*
 * inspect.c - "mqbusctl stats", "list", "topics" and "top".
 *
 * The daemon answers STATS with "key=value" lines and QUERY with one line
 * per item of "name=value" fields (mqbusd(8), INTROSPECTION); this file
 * turns them into tables, JSON, and a live view of rates.  The daemon
 * sends user ids: user names are looked up here, so that the daemon never
 * waits on NSS.  Every field a line holds is kept, so --json shows all of
 * them; the tables pick columns by name.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/inspect.h"
#include "mqbus.h"

#define EXIT_OK 0
#define EXIT_ERROR 1
#define EXIT_USAGE 2

/* rows of each table in a live frame of top */
#define TOP_ROWS 15

/* one line of an answer: its fields, pointing into the text */
struct item {
	size_t n;
	const char *name[32];
	const char *value[32];
};

/* a whole answer, parsed; owns the text */
struct items {
	char *text;
	struct item *v;
	size_t n;
};

static void items_free(struct items *it)
{
	free(it->text);
	free(it->v);
	memset(it, 0, sizeof(*it));
}

/*
 * Splits text (taken over) into items: lines, then fields at single
 * spaces, then each field at its first '='.  A field without '=' is
 * skipped.  Returns 0 or -ENOMEM.
 */
static int items_parse(char *text, struct items *ret)
{
	size_t lines = 0, n = 0;
	char *p, *save = NULL, *line;

	memset(ret, 0, sizeof(*ret));
	ret->text = text;
	for (p = text; *p; p++)
		if (*p == '\n')
			lines++;
	ret->v = calloc(lines + 1, sizeof(*ret->v));
	if (!ret->v)
		return -ENOMEM;
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct item *it = &ret->v[n];
		char *fsave = NULL, *f;

		for (f = strtok_r(line, " ", &fsave); f && it->n < 32;
		     f = strtok_r(NULL, " ", &fsave)) {
			char *eq = strchr(f, '=');

			if (!eq)
				continue;
			*eq = '\0';
			it->name[it->n] = f;
			it->value[it->n++] = eq + 1;
		}
		if (it->n > 0 && n < lines + 1)
			n++;
	}
	ret->n = n;
	return 0;
}

static const char *item_get(const struct item *it, const char *name)
{
	for (size_t i = 0; i < it->n; i++)
		if (strcmp(it->name[i], name) == 0)
			return it->value[i];
	return NULL;
}

/* A field as a number (0 if absent or not a number). */
static uint64_t item_num(const struct item *it, const char *name)
{
	const char *v = item_get(it, name);

	return v ? strtoull(v, NULL, 10) : 0;
}

/* Fields whose values are text, never numbers, even "123". */
static bool field_is_text(const char *name)
{
	static const char *const text[] = { "bus", "wake", "comm", "topic",
					    "pattern", "group", "key", "user" };

	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		if (strcmp(name, text[i]) == 0)
			return true;
	return false;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* comm comes %XX-escaped; this is the name as the process has it. */
static void unescape(const char *in, char *out, size_t cap)
{
	size_t o = 0;

	for (; *in && o + 1 < cap; in++) {
		unsigned x;

		if (in[0] == '%' && in[1] && in[2] &&
		    sscanf(in + 1, "%2x", &x) == 1) {
			out[o++] = (char)x;
			in += 2;
		} else {
			out[o++] = *in;
		}
	}
	out[o] = '\0';
}

static void put_json_string(FILE *f, const char *s)
{
	putc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			putc(c, f);
	}
	putc('"', f);
}

/* One field's value as JSON: "-" is null, digits a number, the rest a
 * string (comm unescaped). */
static void put_json_value(FILE *f, const char *name, const char *value)
{
	char buf[256];

	if (strcmp(value, "-") == 0)
		fputs("null", f);
	else if (!field_is_text(name) && all_digits(value))
		fputs(value, f);
	else if (strcmp(name, "comm") == 0) {
		unescape(value, buf, sizeof(buf));
		put_json_string(f, buf);
	} else {
		put_json_string(f, value);
	}
}

/* The user name of uid, or the number if it has none. */
static const char *user_name(const char *uid, char *buf, size_t cap)
{
	struct passwd *pw;

	if (!uid || !all_digits(uid))
		return "-";
	pw = getpwuid((uid_t)strtoul(uid, NULL, 10));
	snprintf(buf, cap, "%s", pw ? pw->pw_name : uid);
	return buf;
}

/* An item as a JSON object; with add_user, "user" after "uid". */
static void put_json_item(FILE *f, const struct item *it, bool add_user)
{
	char user[64];

	putc('{', f);
	for (size_t i = 0; i < it->n; i++) {
		if (i)
			putc(',', f);
		put_json_string(f, it->name[i]);
		putc(':', f);
		put_json_value(f, it->name[i], it->value[i]);
		if (add_user && strcmp(it->name[i], "uid") == 0) {
			fputs(",\"user\":", f);
			put_json_string(f, user_name(it->value[i], user,
						     sizeof(user)));
		}
	}
	putc('}', f);
}

static void put_json_items(FILE *f, const struct items *it, bool add_user)
{
	putc('[', f);
	for (size_t i = 0; i < it->n; i++) {
		if (i)
			putc(',', f);
		put_json_item(f, &it->v[i], add_user);
	}
	putc(']', f);
}

/* -------------------------------------------------------------------- */
/* talking to the daemon                                                 */

static int connect_bus(const char *bus, mqbus **ret)
{
	mqbus *b = NULL;
	int r = mqbus_new(&b);

	if (r == 0 && bus)
		r = mqbus_set_bus(b, bus);
	if (r == 0)
		r = mqbus_connect(b);
	if (r < 0) {
		const char *e = b ? mqbus_last_error(b) : "";

		if (r == -ENOENT && !*e)
			fprintf(stderr, "mqbusctl: no daemon serves bus '%s'\n",
				bus ? bus : "mqbus");
		else
			fprintf(stderr, "mqbusctl: %s\n",
				*e ? e : strerror(-r));
		mqbus_free(b);
		return r == -EINVAL ? EXIT_USAGE : EXIT_ERROR;
	}
	*ret = b;
	return EXIT_OK;
}

static void report(const mqbus *b, int r, const char *what)
{
	const char *e = mqbus_last_error(b);

	fprintf(stderr, "mqbusctl: %s: %s\n", what, *e ? e : strerror(-r));
}

/* The answer to a QUERY of what, parsed.  Returns 0 or -errno
 * (reported). */
static int query(mqbus *b, const char *what, struct items *ret)
{
	char *text = NULL;
	int r = mqbus_query(b, what, &text);

	if (r < 0) {
		report(b, r, what);
		return r;
	}
	r = items_parse(text, ret);
	if (r < 0) {
		items_free(ret);
		fprintf(stderr, "mqbusctl: out of memory\n");
	}
	return r;
}

/* The STATS answer, parsed as items of one field each. */
static int stats(mqbus *b, struct items *ret, char **ret_raw)
{
	char *text = NULL, *copy;
	int r = mqbus_stats(b, &text);

	if (r < 0) {
		report(b, r, "stats");
		return r;
	}
	/* the items cut their copy apart; the text stays whole */
	copy = strdup(text);
	if (!copy || items_parse(copy, ret) < 0) {
		if (copy)
			items_free(ret); /* frees copy too */
		free(text);
		fprintf(stderr, "mqbusctl: out of memory\n");
		return -ENOMEM;
	}
	if (ret_raw)
		*ret_raw = text;
	else
		free(text);
	return 0;
}

/* A STATS figure by key. */
static uint64_t stat_num(const struct items *st, const char *key)
{
	for (size_t i = 0; i < st->n; i++)
		if (st->v[i].n == 1 && strcmp(st->v[i].name[0], key) == 0)
			return strtoull(st->v[i].value[0], NULL, 10);
	return 0;
}

/* -------------------------------------------------------------------- */
/* tables                                                                */

static void clients_table(FILE *f, const struct items *c)
{
	fprintf(f, "%6s %6s %-12s %7s %-15s %4s %7s %7s %10s %10s %8s\n", "ID",
		"UID", "USER", "PID", "COMM", "SUBS", "QUEUE", "PENDING",
		"PUBLISHED", "DELIVERED", "DROPPED");
	for (size_t i = 0; i < c->n; i++) {
		const struct item *it = &c->v[i];
		char user[64], comm[64], queue[32];
		const char *v;

		v = item_get(it, "comm");
		unescape(v ? v : "-", comm, sizeof(comm));
		snprintf(queue, sizeof(queue), "%" PRIu64 "/%" PRIu64,
			 item_num(it, "rx_depth"), item_num(it, "rx_maxmsg"));
		v = item_get(it, "pid");
		fprintf(f,
			"%6" PRIu64 " %6" PRIu64 " %-12s %7s %-15s %4" PRIu64
			" %7s %7" PRIu64 " %10" PRIu64 " %10" PRIu64
			" %8" PRIu64 "\n",
			item_num(it, "id"), item_num(it, "uid"),
			user_name(item_get(it, "uid"), user, sizeof(user)),
			v ? v : "-", comm, item_num(it, "subs"), queue,
			item_num(it, "pending"), item_num(it, "published"),
			item_num(it, "delivered"), item_num(it, "dropped"));
	}
}

static void topic_counters_table(FILE *f, const struct items *t)
{
	fprintf(f, "%-32s %10s %10s %8s %9s %8s %8s %8s\n", "TOPIC",
		"PUBLISHED", "DELIVERED", "DROPPED", "COALESCED", "REQUESTS",
		"REPLIES", "NO_RESP");
	for (size_t i = 0; i < t->n; i++) {
		const struct item *it = &t->v[i];
		const char *topic = item_get(it, "topic");

		fprintf(f,
			"%-32s %10" PRIu64 " %10" PRIu64 " %8" PRIu64
			" %9" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
			"\n",
			topic ? topic : "-", item_num(it, "published"),
			item_num(it, "delivered"), item_num(it, "dropped"),
			item_num(it, "coalesced"), item_num(it, "requests"),
			item_num(it, "replies"), item_num(it, "no_responders"));
	}
}

/* -------------------------------------------------------------------- */
/* stats                                                                 */

struct opts {
	bool json, topics, clients, once;
	unsigned delay_ms;
};

static int cmd_stats(mqbus *b, const struct opts *o)
{
	struct items st = { 0 }, tp = { 0 }, cl = { 0 };
	char *raw = NULL;
	int r = EXIT_ERROR;

	if (stats(b, &st, &raw) < 0)
		return EXIT_ERROR;
	if ((o->topics && query(b, "topics", &tp) < 0) ||
	    (o->clients && query(b, "clients", &cl) < 0))
		goto out;
	if (o->json) {
		putchar('{');
		for (size_t i = 0; i < st.n; i++) {
			if (i)
				putchar(',');
			put_json_string(stdout, st.v[i].name[0]);
			putchar(':');
			put_json_value(stdout, st.v[i].name[0],
				       st.v[i].value[0]);
		}
		if (o->topics) {
			fputs(",\"topics\":", stdout);
			put_json_items(stdout, &tp, false);
		}
		if (o->clients) {
			fputs(",\"clients\":", stdout);
			put_json_items(stdout, &cl, true);
		}
		fputs("}\n", stdout);
	} else {
		fputs(raw, stdout);
		if (o->topics) {
			putchar('\n');
			topic_counters_table(stdout, &tp);
		}
		if (o->clients) {
			putchar('\n');
			clients_table(stdout, &cl);
		}
	}
	r = EXIT_OK;
out:
	free(raw);
	items_free(&st);
	items_free(&tp);
	items_free(&cl);
	return r;
}

static int cmd_list(mqbus *b, const struct opts *o)
{
	struct items cl;

	if (query(b, "clients", &cl) < 0)
		return EXIT_ERROR;
	if (o->json) {
		put_json_items(stdout, &cl, true);
		putchar('\n');
	} else {
		clients_table(stdout, &cl);
	}
	items_free(&cl);
	return EXIT_OK;
}

/* -------------------------------------------------------------------- */
/* topics: patterns with subscribers and groups, retained, timers        */

/* the subscriptions of one pattern, gathered from its lines */
struct pattern {
	const char *pattern;
	size_t first, n; /* its lines in the sorted array */
};

static int sub_order(const void *a, const void *b)
{
	const struct item *x = *(const struct item *const *)a;
	const struct item *y = *(const struct item *const *)b;
	const char *gx = item_get(x, "group"), *gy = item_get(y, "group");
	int c = strcmp(item_get(x, "pattern"), item_get(y, "pattern"));
	uint64_t ix = item_num(x, "client"), iy = item_num(y, "client");

	if (c)
		return c;
	c = strcmp(gx ? gx : "-", gy ? gy : "-");
	if (c)
		return c;
	return ix < iy ? -1 : ix > iy;
}

/*
 * Prints the ids of the lines from..to whose kind fits: plain (no group,
 * not a monitor), monitor, or members of group.  Returns how many.
 */
static size_t put_ids(FILE *f, struct item **v, size_t from, size_t to,
		      const char *kind, const char *group, bool json)
{
	size_t n = 0;

	for (size_t i = from; i < to; i++) {
		const char *g = item_get(v[i], "group");
		bool mon = item_num(v[i], "monitor") != 0;
		bool fits = strcmp(kind, "monitor") == 0 ? mon
			    : strcmp(kind, "group") == 0
				    ? !mon && g && strcmp(g, group) == 0
				    : !mon && g && strcmp(g, "-") == 0;

		if (!fits)
			continue;
		fprintf(f, "%s%" PRIu64, n ? "," : "",
			item_num(v[i], "client"));
		n++;
	}
	if (n == 0 && !json)
		putc('-', f);
	return n;
}

static void put_patterns(FILE *f, struct item **v, size_t n, bool json)
{
	size_t i = 0;

	if (!json)
		fprintf(f, "%-32s %-20s %-10s %s\n", "PATTERN", "SUBSCRIBERS",
			"MONITORS", "GROUPS");
	else
		putc('[', f);
	while (i < n) {
		const char *pat = item_get(v[i], "pattern");
		size_t end = i, groups = 0;

		while (end < n && strcmp(item_get(v[end], "pattern"), pat) == 0)
			end++;
		if (json) {
			fprintf(f, "%s{\"pattern\":", i ? "," : "");
			put_json_string(f, pat);
			fputs(",\"subscribers\":[", f);
			put_ids(f, v, i, end, "plain", NULL, true);
			fputs("],\"monitors\":[", f);
			put_ids(f, v, i, end, "monitor", NULL, true);
			fputs("],\"groups\":{", f);
		} else {
			/* columns of ids, padded: each made in a buffer */
			char *col = NULL;
			size_t len = 0;
			FILE *m;

			fprintf(f, "%-32s ", pat);
			m = open_memstream(&col, &len);
			if (m) {
				put_ids(m, v, i, end, "plain", NULL, false);
				fclose(m);
				fprintf(f, "%-20s ", col);
				free(col);
			}
			col = NULL;
			m = open_memstream(&col, &len);
			if (m) {
				put_ids(m, v, i, end, "monitor", NULL, false);
				fclose(m);
				fprintf(f, "%-10s ", col);
				free(col);
			}
		}
		/* the lines are sorted by group within the pattern */
		for (size_t k = i; k < end; k++) {
			const char *g = item_get(v[k], "group");

			if (!g || strcmp(g, "-") == 0 ||
			    item_num(v[k], "monitor"))
				continue;
			if (k > i) {
				const char *pg = item_get(v[k - 1], "group");

				if (pg && strcmp(pg, g) == 0 &&
				    !item_num(v[k - 1], "monitor"))
					continue;
			}
			if (json) {
				fprintf(f, "%s", groups ? "," : "");
				put_json_string(f, g);
				fputs(":[", f);
				put_ids(f, v, i, end, "group", g, true);
				putc(']', f);
			} else {
				fprintf(f, "%s%s:", groups ? " " : "", g);
				put_ids(f, v, i, end, "group", g, false);
			}
			groups++;
		}
		if (json)
			fputs("}}", f);
		else
			fprintf(f, "%s\n", groups ? "" : "-");
		i = end;
	}
	if (json)
		putc(']', f);
}

static int cmd_topics(mqbus *b, const struct opts *o)
{
	struct items su = { 0 }, re = { 0 }, ti = { 0 };
	struct item **v = NULL;
	int r = EXIT_ERROR;

	if (query(b, "subscriptions", &su) < 0 ||
	    query(b, "retained", &re) < 0 || query(b, "timers", &ti) < 0)
		goto out;
	v = calloc(su.n + 1, sizeof(*v));
	if (!v) {
		fprintf(stderr, "mqbusctl: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < su.n; i++)
		v[i] = &su.v[i];
	qsort(v, su.n, sizeof(*v), sub_order);
	if (o->json) {
		fputs("{\"subscriptions\":", stdout);
		put_patterns(stdout, v, su.n, true);
		fputs(",\"retained\":", stdout);
		put_json_items(stdout, &re, true);
		fputs(",\"timers\":", stdout);
		put_json_items(stdout, &ti, true);
		fputs("}\n", stdout);
	} else {
		put_patterns(stdout, v, su.n, false);
		printf("\n%-32s %8s %8s %6s %7s %6s\n", "RETAINED", "BYTES",
		       "PRIORITY", "UID", "PID", "CLIENT");
		for (size_t i = 0; i < re.n; i++) {
			const struct item *it = &re.v[i];
			const char *pid = item_get(it, "pid");

			printf("%-32s %8" PRIu64 " %8" PRIu64 " %6" PRIu64
			       " %7s %6" PRIu64 "\n",
			       item_get(it, "topic"), item_num(it, "bytes"),
			       item_num(it, "priority"), item_num(it, "uid"),
			       pid ? pid : "-", item_num(it, "client"));
		}
		printf("\n%6s %-32s %10s %10s %8s %8s %6s %7s\n", "TIMER",
		       "TOPIC", "NEXT_MS", "PERIOD_MS", "FIRED", "DETACHED",
		       "UID", "PID");
		for (size_t i = 0; i < ti.n; i++) {
			const struct item *it = &ti.v[i];
			const char *pid = item_get(it, "pid");

			printf("%6" PRIu64 " %-32s %10" PRIu64 " %10" PRIu64
			       " %8" PRIu64 " %8s %6" PRIu64 " %7s\n",
			       item_num(it, "id"), item_get(it, "topic"),
			       item_num(it, "next_ms"),
			       item_num(it, "period_ms"),
			       item_num(it, "fired"),
			       item_num(it, "detached") ? "yes" : "no",
			       item_num(it, "uid"), pid ? pid : "-");
		}
	}
	r = EXIT_OK;
out:
	free(v);
	items_free(&su);
	items_free(&re);
	items_free(&ti);
	return r;
}

/* -------------------------------------------------------------------- */
/* top                                                                   */

static volatile sig_atomic_t top_stop;

static void top_on_signal(int sig)
{
	top_stop = sig;
}

/* one sample of the bus */
struct sample {
	struct items st, tp, cl;
	uint64_t ns; /* CLOCK_MONOTONIC */
};

static void sample_free(struct sample *s)
{
	items_free(&s->st);
	items_free(&s->tp);
	items_free(&s->cl);
}

static int sample_take(mqbus *b, struct sample *s)
{
	struct timespec t;

	memset(s, 0, sizeof(*s));
	if (stats(b, &s->st, NULL) < 0 || query(b, "topics", &s->tp) < 0 ||
	    query(b, "clients", &s->cl) < 0) {
		sample_free(s);
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t);
	s->ns = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
	return 0;
}

/* The item of prev whose key field equals it's, or NULL. */
static const struct item *find_same(const struct items *prev,
				    const struct item *it, const char *key)
{
	const char *want = item_get(it, key);

	for (size_t i = 0; want && i < prev->n; i++) {
		const char *v = item_get(&prev->v[i], key);

		if (v && strcmp(v, want) == 0)
			return &prev->v[i];
	}
	return NULL;
}

/*
 * A counter's rate per second between two samples.  A topic's counters
 * start again with each stats interval: a counter that went down counts
 * from zero.
 */
static double rate(const struct item *now, const struct item *before,
		   const char *field, double secs)
{
	uint64_t a = item_num(now, field);
	uint64_t b = before ? item_num(before, field) : 0;

	return (double)(a >= b ? a - b : a) / secs;
}

struct row {
	const struct item *it;
	double pub, deliv, drop;
};

static int row_busier(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	double vx = x->pub + x->deliv + x->drop, vy = y->pub + y->deliv +
						     y->drop;

	if (vx != vy)
		return vx < vy ? 1 : -1;
	return 0;
}

static struct row *rows_of(const struct items *now, const struct items *prev,
			   const char *key, double secs)
{
	struct row *rows = calloc(now->n + 1, sizeof(*rows));

	if (!rows)
		return NULL;
	for (size_t i = 0; i < now->n; i++) {
		const struct item *before = find_same(prev, &now->v[i], key);

		rows[i].it = &now->v[i];
		rows[i].pub = rate(&now->v[i], before, "published", secs);
		rows[i].deliv = rate(&now->v[i], before, "delivered", secs);
		rows[i].drop = rate(&now->v[i], before, "dropped", secs);
	}
	qsort(rows, now->n, sizeof(*rows), row_busier);
	return rows;
}

static int top_frame(FILE *f, const char *bus, const struct sample *prev,
		     const struct sample *now, bool live)
{
	double secs = (double)(now->ns - prev->ns) / 1e9;
	struct row *tr = NULL, *cr = NULL;
	size_t tn = now->tp.n, cn = now->cl.n;
	uint64_t pub = stat_num(&now->st, "published");
	uint64_t del = stat_num(&now->st, "delivered");
	uint64_t drop = stat_num(&now->st, "dropped");

	if (secs <= 0)
		secs = 1e-9;
	tr = rows_of(&now->tp, &prev->tp, "topic", secs);
	cr = rows_of(&now->cl, &prev->cl, "id", secs);
	if (!tr || !cr) {
		free(tr);
		free(cr);
		fprintf(stderr, "mqbusctl: out of memory\n");
		return -1;
	}
	if (live) {
		fputs("\033[H\033[2J", f);
		if (tn > TOP_ROWS)
			tn = TOP_ROWS;
		if (cn > TOP_ROWS)
			cn = TOP_ROWS;
	}
	fprintf(f,
		"bus %s: %" PRIu64 " clients, %" PRIu64 " published "
		"(%.1f/s), %" PRIu64 " delivered (%.1f/s), %" PRIu64
		" dropped (%.1f/s)\n\n",
		bus ? bus : "mqbus", stat_num(&now->st, "clients"), pub,
		(double)(pub - stat_num(&prev->st, "published")) / secs, del,
		(double)(del - stat_num(&prev->st, "delivered")) / secs, drop,
		(double)(drop - stat_num(&prev->st, "dropped")) / secs);
	fprintf(f, "%-32s %9s %9s %9s %10s %10s %8s\n", "TOPIC", "PUB/S",
		"DELIV/S", "DROP/S", "PUBLISHED", "DELIVERED", "DROPPED");
	for (size_t i = 0; i < tn; i++)
		fprintf(f,
			"%-32s %9.1f %9.1f %9.1f %10" PRIu64 " %10" PRIu64
			" %8" PRIu64 "\n",
			item_get(tr[i].it, "topic"), tr[i].pub, tr[i].deliv,
			tr[i].drop, item_num(tr[i].it, "published"),
			item_num(tr[i].it, "delivered"),
			item_num(tr[i].it, "dropped"));
	fprintf(f, "\n%6s %-12s %-15s %9s %9s %9s %7s %7s\n", "ID", "USER",
		"COMM", "PUB/S", "DELIV/S", "DROP/S", "QUEUE", "PENDING");
	for (size_t i = 0; i < cn; i++) {
		const struct item *it = cr[i].it;
		char user[64], comm[64], queue[32];
		const char *c = item_get(it, "comm");

		unescape(c ? c : "-", comm, sizeof(comm));
		snprintf(queue, sizeof(queue), "%" PRIu64 "/%" PRIu64,
			 item_num(it, "rx_depth"), item_num(it, "rx_maxmsg"));
		fprintf(f,
			"%6" PRIu64 " %-12s %-15s %9.1f %9.1f %9.1f %7s %7" PRIu64
			"\n",
			item_num(it, "id"),
			user_name(item_get(it, "uid"), user, sizeof(user)),
			comm, cr[i].pub, cr[i].deliv, cr[i].drop, queue,
			item_num(it, "pending"));
	}
	free(tr);
	free(cr);
	return fflush(f) == EOF ? -1 : 0;
}

/* Sleeps ms, or less if a stop signal comes. */
static void top_sleep(unsigned ms)
{
	struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (!top_stop && nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

static int cmd_top(mqbus *b, const char *bus, const struct opts *o)
{
	struct sigaction sa = { .sa_handler = top_on_signal };
	struct sample prev, now;
	int r = EXIT_OK;

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (sample_take(b, &prev) < 0)
		return EXIT_ERROR;
	if (!o->once)
		fputs("\033[?25l", stdout); /* no cursor while it runs */
	while (!top_stop) {
		top_sleep(o->delay_ms);
		if (top_stop)
			break;
		if (sample_take(b, &now) < 0) {
			r = EXIT_ERROR;
			break;
		}
		if (top_frame(stdout, bus, &prev, &now, !o->once) < 0)
			r = EXIT_ERROR;
		sample_free(&prev);
		prev = now;
		if (o->once || r != EXIT_OK)
			break;
	}
	sample_free(&prev);
	if (!o->once) {
		fputs("\033[?25h", stdout);
		fflush(stdout);
	}
	return r;
}

/* -------------------------------------------------------------------- */
/* the commands' options                                                 */

enum { OPT_JSON = 0x100, OPT_TOPICS, OPT_CLIENTS, OPT_ONCE };

int inspect_main(const char *bus, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "topics", no_argument, NULL, OPT_TOPICS },
		{ "clients", no_argument, NULL, OPT_CLIENTS },
		{ "once", no_argument, NULL, OPT_ONCE },
		{ "delay", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *cmd = argv[0];
	bool is_stats = strcmp(cmd, "stats") == 0;
	bool is_top = strcmp(cmd, "top") == 0;
	struct opts o = { .delay_ms = 1000 };
	char name[64];
	mqbus *b;
	int c, r;

	snprintf(name, sizeof(name), "mqbusctl %s", cmd);
	argv[0] = name;
	optind = 0;
	while ((c = getopt_long(argc, argv, is_top ? "hd:" : "h", longopts,
				NULL)) != -1) {
		char *end;
		unsigned long v;

		switch (c) {
		case 'h':
			return INSPECT_HELP;
		case OPT_JSON:
			if (is_top)
				goto bad;
			o.json = true;
			break;
		case OPT_TOPICS:
		case OPT_CLIENTS:
			if (!is_stats)
				goto bad;
			if (c == OPT_TOPICS)
				o.topics = true;
			else
				o.clients = true;
			break;
		case OPT_ONCE:
			if (!is_top)
				goto bad;
			o.once = true;
			break;
		case 'd':
			if (!is_top)
				goto bad;
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (!all_digits(optarg) || errno || *end || v < 10 ||
			    v > 3600000) {
				fprintf(stderr,
					"mqbusctl: %s: invalid delay '%s': "
					"10 to 3600000 milliseconds\n",
					cmd, optarg);
				return EXIT_USAGE;
			}
			o.delay_ms = (unsigned)v;
			break;
		default:
			goto bad;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mqbusctl: %s: unexpected argument '%s'\n", cmd,
			argv[optind]);
		goto bad;
	}
	r = connect_bus(bus, &b);
	if (r != EXIT_OK)
		return r;
	if (is_stats)
		r = cmd_stats(b, &o);
	else if (is_top)
		r = cmd_top(b, bus, &o);
	else if (strcmp(cmd, "list") == 0)
		r = cmd_list(b, &o);
	else
		r = cmd_topics(b, &o);
	mqbus_free(b);
	if (r == EXIT_OK && (fflush(stdout) == EOF || ferror(stdout))) {
		fprintf(stderr, "mqbusctl: %s: stdout: %s\n", cmd,
			strerror(errno));
		return EXIT_ERROR;
	}
	return r;

bad:
	fprintf(stderr, "Try 'mqbusctl help %s'.\n", cmd);
	return EXIT_USAGE;
}

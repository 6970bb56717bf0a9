/* SPDX-License-Identifier: MIT */
/*
 * history.c - "mqbusctl history": a bus's delivery stats over time.
 *
 * mqbusd writes one delivery-stats entry for the bus, and one for each
 * busy topic, every stats interval (MESSAGE_IDs LOG_ID_STATS_BUS and
 * LOG_ID_STATS_TOPIC of daemon/log-ids.h).  This reads them back with
 * sd-journal, matched on MESSAGE_ID and MQBUS_BUS (and MQBUS_TOPIC), and
 * prints each interval's rates as a table, then one sparkline per counter
 * so that one sees at a glance when drops began; or all figures as JSON.
 * The field names come from the same X-macro the daemon writes them with.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "client/history.h"
#include "client/mqbus.h"
#include "daemon/log-ids.h"

#define EXIT_OK 0
#define EXIT_ERROR 1
#define EXIT_USAGE 2

/* The counters, in the order of LOG_COUNTERS, then MQBUS_DROPPED. */
enum {
#define X(field, member, label) HC_##field,
	LOG_COUNTERS(X)
#undef X
	    HC_DROPPED,
	HC_COUNT,
};

static const struct history_counter {
	const char *field; /* without "MQBUS_" */
	const char *name;  /* in JSON */
	const char *label; /* in the plot */
} history_counters[HC_COUNT] = {
#define X(field, member, label) [HC_##field] = {#field, #member, label},
    LOG_COUNTERS(X)
#undef X
	[HC_DROPPED] = {"DROPPED", "dropped", "dropped"},
};

/* The columns of the table, and the first lines of the plot. */
static const int history_main_counters[] = {
    HC_PUBLISHED, HC_DELIVERED, HC_DROPPED,	  HC_COALESCED,
    HC_REQUESTS,  HC_REPLIES,	HC_NO_RESPONDERS,
};
#define N_MAIN (sizeof(history_main_counters) / sizeof(int))

/* Gauges of the bus entries. */
enum {
	HG_CLIENTS,
	HG_SUBSCRIPTIONS,
	HG_PENDING_BYTES_MAX,
	HG_LATENCY_P50_NSEC,
	HG_LATENCY_P99_NSEC,
	HG_LATENCY_MAX_NSEC,
	HG_COUNT,
};

static const char *const history_gauges[HG_COUNT] = {
    [HG_CLIENTS] = "CLIENTS",
    [HG_SUBSCRIPTIONS] = "SUBSCRIPTIONS",
    [HG_PENDING_BYTES_MAX] = "PENDING_BYTES_MAX",
    [HG_LATENCY_P50_NSEC] = "LATENCY_P50_NSEC",
    [HG_LATENCY_P99_NSEC] = "LATENCY_P99_NSEC",
    [HG_LATENCY_MAX_NSEC] = "LATENCY_MAX_NSEC",
};

/* One stats entry. */
struct history_row {
	uint64_t realtime_usec;
	uint64_t seq;
	uint64_t interval_usec;
	uint64_t delta[HC_COUNT];
	uint64_t total[HC_COUNT];
	bool has_total[HC_COUNT];
	uint64_t gauge[HG_COUNT];
	bool has_gauge[HG_COUNT];
};

struct history {
	const char *bus;
	const char *topic; /* NULL: the bus entries */
	struct history_row *rows;
	size_t n, cap;
	size_t skipped; /* entries without a usable interval */
};

static int history_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int history_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("mqbusctl: history: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'mqbusctl help history'.\n", stderr);
	return EXIT_USAGE;
}

/* ------------------------------------------------------------ time */

/*
 * Parses a --since/--until value into microseconds since the epoch:
 * "now", "@SECONDS[.FRACTION]", "-N" with a unit (s, min, h, d; "m" is
 * minutes too) counted back from now, or a local "YYYY-MM-DD[ HH:MM[:SS]]"
 * (also with a "T").  Returns 0 or -EINVAL.
 */
static int history_parse_time(const char *s, uint64_t *ret)
{
	struct timespec now;
	uint64_t now_usec;
	char *end;

	clock_gettime(CLOCK_REALTIME, &now);
	now_usec =
	    (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000;
	if (strcmp(s, "now") == 0) {
		*ret = now_usec;
		return 0;
	}
	if (s[0] == '@') {
		double v;

		if (s[1] < '0' || s[1] > '9')
			return -EINVAL;
		errno = 0;
		v = strtod(s + 1, &end);
		if (errno || *end || v > 1e13)
			return -EINVAL;
		*ret = (uint64_t)(v * 1e6 + 0.5);
		return 0;
	}
	if (s[0] == '-') {
		static const struct {
			const char *unit;
			uint64_t usec;
		} units[] = {
		    {"s", 1000000ULL},	  {"sec", 1000000ULL},
		    {"m", 60000000ULL},	  {"min", 60000000ULL},
		    {"h", 3600000000ULL}, {"d", 86400000000ULL},
		};
		unsigned long long n;

		if (s[1] < '0' || s[1] > '9')
			return -EINVAL;
		errno = 0;
		n = strtoull(s + 1, &end, 10);
		if (errno || n > 100000000ULL)
			return -EINVAL;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (strcmp(end, units[i].unit) == 0) {
				uint64_t back = n * units[i].usec;

				*ret = back > now_usec ? 0 : now_usec - back;
				return 0;
			}
		return -EINVAL;
	}
	{
		static const char *const formats[] = {
		    "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M",
		    "%Y-%m-%dT%H:%M",	 "%Y-%m-%d",
		};

		for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]);
		     i++) {
			struct tm tm = {0};
			time_t t;

			end = strptime(s, formats[i], &tm);
			if (!end || *end)
				continue;
			tm.tm_isdst = -1;
			t = mktime(&tm);
			if (t == (time_t)-1 || t < 0)
				return -EINVAL;
			*ret = (uint64_t)t * 1000000;
			return 0;
		}
	}
	return -EINVAL;
}

static void history_format_time(uint64_t usec, char *buf, size_t size)
{
	time_t t = (time_t)(usec / 1000000);
	struct tm tm;

	if (!localtime_r(&t, &tm) ||
	    strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, size, "@%" PRIu64, usec / 1000000);
}

/* ------------------------------------------------------------ reading */

/* The number in field MQBUS_<name> of the current entry; false if the
 * entry has none or it is not a plain decimal. */
static bool history_field(sd_journal *j, const char *name, uint64_t *ret)
{
	char field[64], num[32];
	const void *data;
	size_t len, flen;
	char *end;

	flen = (size_t)snprintf(field, sizeof(field), "MQBUS_%s", name);
	if (sd_journal_get_data(j, field, &data, &len) < 0)
		return false;
	if (len <= flen + 1 || len - flen - 1 >= sizeof(num))
		return false;
	memcpy(num, (const char *)data + flen + 1, len - flen - 1);
	num[len - flen - 1] = '\0';
	if (num[0] < '0' || num[0] > '9')
		return false;
	errno = 0;
	*ret = strtoull(num, &end, 10);
	return errno == 0 && *end == '\0';
}

static int history_add_row(struct history *h, sd_journal *j)
{
	struct history_row r = {0};
	char name[64];

	if (sd_journal_get_realtime_usec(j, &r.realtime_usec) < 0 ||
	    !history_field(j, "INTERVAL_USEC", &r.interval_usec) ||
	    r.interval_usec == 0) {
		h->skipped++;
		return 0;
	}
	history_field(j, "STATS_SEQ", &r.seq);
	for (int i = 0; i < HC_COUNT; i++) {
		history_field(j, history_counters[i].field, &r.delta[i]);
		snprintf(name, sizeof(name), "%s_TOTAL",
			 history_counters[i].field);
		r.has_total[i] = history_field(j, name, &r.total[i]);
	}
	for (int i = 0; i < HG_COUNT; i++)
		r.has_gauge[i] =
		    history_field(j, history_gauges[i], &r.gauge[i]);
	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 64;
		struct history_row *rows =
		    realloc(h->rows, cap * sizeof(*rows));

		if (!rows)
			return -ENOMEM;
		h->rows = rows;
		h->cap = cap;
	}
	h->rows[h->n++] = r;
	return 0;
}

static int history_read(struct history *h, const char *dir, uint64_t since,
			uint64_t until)
{
	char match[512];
	sd_journal *j = NULL;
	int r;

	if (dir)
		r = sd_journal_open_directory(&j, dir, 0);
	else
		r = sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY);
	if (r < 0) {
		fprintf(stderr,
			"mqbusctl: history: cannot open the journal%s%s: "
			"%s\n",
			dir ? " in " : "", dir ? dir : "", strerror(-r));
		return EXIT_ERROR;
	}
	snprintf(match, sizeof(match), "MESSAGE_ID=%s",
		 h->topic ? LOG_ID_STATS_TOPIC : LOG_ID_STATS_BUS);
	r = sd_journal_add_match(j, match, 0);
	if (r >= 0) {
		snprintf(match, sizeof(match), "MQBUS_BUS=%s", h->bus);
		r = sd_journal_add_match(j, match, 0);
	}
	if (r >= 0 && h->topic) {
		snprintf(match, sizeof(match), "MQBUS_TOPIC=%s", h->topic);
		r = sd_journal_add_match(j, match, 0);
	}
	if (r >= 0)
		r = since ? sd_journal_seek_realtime_usec(j, since)
			  : sd_journal_seek_head(j);
	while (r >= 0) {
		uint64_t t;

		r = sd_journal_next(j);
		if (r <= 0)
			break;
		if (sd_journal_get_realtime_usec(j, &t) >= 0 &&
		    (t < since || t > until))
			continue;
		r = history_add_row(h, j);
	}
	sd_journal_close(j);
	if (r < 0) {
		fprintf(stderr, "mqbusctl: history: reading the journal: %s\n",
			strerror(-r));
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/* ------------------------------------------------------------ output */

static double history_rate(const struct history_row *r, int c)
{
	return (double)r->delta[c] * 1e6 / (double)r->interval_usec;
}

static void history_json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void history_print_json(const struct history *h)
{
	fputs("{\"bus\":", stdout);
	history_json_string(h->bus);
	fputs(",\"topic\":", stdout);
	if (h->topic)
		history_json_string(h->topic);
	else
		fputs("null", stdout);
	fputs(",\"entries\":[", stdout);
	for (size_t i = 0; i < h->n; i++) {
		const struct history_row *r = &h->rows[i];
		bool any_total = false;

		printf("%s\n{\"realtime_usec\":%" PRIu64 ",\"seq\":%" PRIu64
		       ",\"interval_usec\":%" PRIu64 ",\"delta\":{",
		       i ? "," : "", r->realtime_usec, r->seq,
		       r->interval_usec);
		for (int c = 0; c < HC_COUNT; c++)
			printf("%s\"%s\":%" PRIu64, c ? "," : "",
			       history_counters[c].name, r->delta[c]);
		fputs("},\"rate\":{", stdout);
		for (int c = 0; c < HC_COUNT; c++)
			printf("%s\"%s\":%.17g", c ? "," : "",
			       history_counters[c].name, history_rate(r, c));
		putchar('}');
		for (int c = 0; c < HC_COUNT; c++) {
			if (!r->has_total[c])
				continue;
			printf("%s\"%s\":%" PRIu64,
			       any_total ? "," : ",\"total\":{",
			       history_counters[c].name, r->total[c]);
			any_total = true;
		}
		if (any_total)
			putchar('}');
		for (int g = 0; g < HG_COUNT; g++) {
			char name[32];

			if (!r->has_gauge[g])
				continue;
			for (size_t k = 0; k <= strlen(history_gauges[g]); k++)
				name[k] =
				    (char)(history_gauges[g][k] >= 'A' &&
						   history_gauges[g][k] <= 'Z'
					       ? history_gauges[g][k] - 'A' +
						     'a'
					       : history_gauges[g][k]);
			printf(",\"%s\":%" PRIu64, name, r->gauge[g]);
		}
		putchar('}');
	}
	fputs("]}\n", stdout);
}

/* The width of the terminal on stdout, else $COLUMNS, else 80. */
static unsigned history_columns(void)
{
	struct winsize ws;
	const char *e = getenv("COLUMNS");

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
		return ws.ws_col;
	if (e && atoi(e) >= 40)
		return (unsigned)atoi(e);
	return 80;
}

/*
 * One line of the plot: label, the sparkline (one cell per entry, or the
 * largest of several entries when there are more than fit), the largest
 * rate.  A cell is blank for exactly 0 and at least the lowest block for
 * anything more, so that the first drop shows.
 */
static void history_sparkline(const struct history *h, int c, unsigned width)
{
	static const char *const blocks[] = {"\u2581", "\u2582", "\u2583",
					     "\u2584", "\u2585", "\u2586",
					     "\u2587", "\u2588"};
	unsigned cells = h->n < width ? (unsigned)h->n : width;
	double max = 0;

	for (size_t i = 0; i < h->n; i++)
		if (history_rate(&h->rows[i], c) > max)
			max = history_rate(&h->rows[i], c);
	printf("%-24s ", history_counters[c].label);
	for (unsigned cell = 0; cell < cells; cell++) {
		size_t from = cell * h->n / cells;
		size_t to = (cell + 1) * h->n / cells;
		double v = 0;
		int level;

		for (size_t i = from; i < to; i++)
			if (history_rate(&h->rows[i], c) > v)
				v = history_rate(&h->rows[i], c);
		if (v <= 0) {
			putchar(' ');
			continue;
		}
		level = (int)(v / max * 8.0 + 0.999) - 1;
		fputs(blocks[level < 0 ? 0 : level > 7 ? 7 : level], stdout);
	}
	printf(" max %.2f/s\n", max);
}

static void history_print_table(const struct history *h, unsigned columns)
{
	static const char *const heads[] = {
	    "PUBLISHED/s", "DELIVERED/s", "DROPPED/s", "COALESCED/s",
	    "REQUESTS/s",  "REPLIES/s",	  "NO-RESP/s",
	};
	unsigned width = columns > 40 ? columns - 40 : 40;
	char when[64];
	size_t first_drop = h->n;

	printf("%-19s %10s", "TIME", "INTERVAL");
	for (size_t k = 0; k < N_MAIN; k++)
		printf(" %12s", heads[k]);
	putchar('\n');
	for (size_t i = 0; i < h->n; i++) {
		const struct history_row *r = &h->rows[i];

		history_format_time(r->realtime_usec, when, sizeof(when));
		printf("%-19s %9.1fs", when, (double)r->interval_usec / 1e6);
		for (size_t k = 0; k < N_MAIN; k++)
			printf(" %12.2f",
			       history_rate(r, history_main_counters[k]));
		putchar('\n');
		if (r->delta[HC_DROPPED] && first_drop == h->n)
			first_drop = i;
	}
	history_format_time(h->rows[0].realtime_usec, when, sizeof(when));
	printf("\nRates over %zu interval%s, oldest left (%s to ", h->n,
	       h->n == 1 ? "" : "s", when);
	history_format_time(h->rows[h->n - 1].realtime_usec, when,
			    sizeof(when));
	printf("%s):\n", when);
	for (size_t k = 0; k < N_MAIN; k++)
		history_sparkline(h, history_main_counters[k], width);
	/* the reasons of the drops, when there were any */
	for (int c = HC_DROPPED_BACKLOG; c <= HC_DROPPED_ERROR; c++)
		for (size_t i = 0; i < h->n; i++)
			if (h->rows[i].delta[c]) {
				history_sparkline(h, c, width);
				break;
			}
	if (first_drop < h->n) {
		history_format_time(h->rows[first_drop].realtime_usec, when,
				    sizeof(when));
		printf("First drops in the interval ending %s.\n", when);
	}
}

int history_main(const char *bus, int argc, char **argv)
{
	enum { OPT_SINCE = 0x100, OPT_UNTIL, OPT_TOPIC, OPT_JSON };
	static const struct option longopts[] = {
	    {"since", required_argument, NULL, OPT_SINCE},
	    {"until", required_argument, NULL, OPT_UNTIL},
	    {"topic", required_argument, NULL, OPT_TOPIC},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"directory", required_argument, NULL, 'D'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static char argv0[] = "mqbusctl history";
	struct history h = {.bus = bus};
	uint64_t since = 0, until = UINT64_MAX;
	const char *dir = NULL;
	bool json = false;
	int c, r;

	if (!h.bus) {
		h.bus = getenv("MQBUS_BUS");
		if (!h.bus || !*h.bus)
			h.bus = "mqbus";
	}
	argv[0] = argv0;
	optind = 0;
	opterr = 1;
	while ((c = getopt_long(argc, argv, "D:h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_SINCE:
			if (history_parse_time(optarg, &since) < 0)
				return history_usage_error(
				    "cannot read the time '%s'", optarg);
			break;
		case OPT_UNTIL:
			if (history_parse_time(optarg, &until) < 0)
				return history_usage_error(
				    "cannot read the time '%s'", optarg);
			break;
		case OPT_TOPIC:
			if (mqbus_topic_match("#", optarg) < 0)
				return history_usage_error(
				    "invalid topic '%s': 1 to %d bytes of "
				    "printable ASCII in '/'-separated levels, "
				    "no '+' or '#'",
				    optarg, MQBUS_TOPIC_MAX);
			h.topic = optarg;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'D':
			dir = optarg;
			break;
		case 'h':
			return HISTORY_HELP;
		default:
			fputs("Try 'mqbusctl help history'.\n", stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return history_usage_error("unexpected argument '%s'",
					   argv[optind]);
	if (since > until)
		return history_usage_error("--since is later than --until");

	r = history_read(&h, dir, since, until);
	if (r != EXIT_OK) {
		free(h.rows);
		return r;
	}
	if (h.skipped)
		fprintf(stderr,
			"mqbusctl: history: %zu entries without "
			"MQBUS_INTERVAL_USEC skipped\n",
			h.skipped);
	if (json)
		history_print_json(&h);
	else if (h.n == 0)
		printf("No delivery stats of %s%s%s in the journal%s.\n",
		       h.topic ? "topic " : "bus ", h.topic ? h.topic : h.bus,
		       h.topic ? " of the bus" : "",
		       since || until != UINT64_MAX ? " in that time" : "");
	else
		history_print_table(&h, history_columns());
	free(h.rows);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "mqbusctl: history: stdout: %s\n",
			strerror(errno));
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

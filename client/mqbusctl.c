/* SPDX-License-Identifier: MIT */
/*
 * mqbusctl - the command-line client of mqbus.
 *
 * It publishes and subscribes from the shell, sends requests and answers
 * them, keeps retained values, sets and cancels timers, prints the daemon's
 * counters and explains the kernel's POSIX queue limits as they apply to
 * the calling user.  It uses nothing but the public API in mqbus.h, so it
 * is also a working example of that API.  Commands live in one table that
 * drives both dispatch and the help text: a new command is one function
 * and one row.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <mqueue.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/history.h"
#include "client/inspect.h"
#include "mqbus.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

/* f_type of the mqueue file system (linux/magic.h) */
#define MQUEUE_FS_MAGIC 0x19800202

#define MQUEUE_DIR "/dev/mqueue"
#define MQUEUE_PROC "/proc/sys/fs/mqueue/"

/* Exit statuses, as documented in mqbusctl(1). */
enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_TIMEOUT = 3,
	EXIT_NO_RESPONDERS = 4,
};

/* Options that have no short letter. */
enum {
	OPT_JSON = 0x100,
	OPT_VERSION,
	OPT_GROUP,
	OPT_ECHO,
	OPT_EXEC,
	OPT_RETAIN,
	OPT_DELAY,
	OPT_AT,
	OPT_EVERY,
	OPT_ORIGIN,
};

/* A queue group name: 1 to 64 of [A-Za-z0-9._-] (see PROTOCOL.md). */
#define GROUP_NAME_MAX 64

/*
 * Receive in slices this long, so that a stop signal that arrives just
 * before a blocking receive is still noticed soon.
 */
#define RECEIVE_SLICE_MS 200

/* stdin for pub is read whole; no queue message can be larger than this. */
#define STDIN_MAX (64u << 20)

/*
 * The largest --delay, --every and --at, in milliseconds: the most the
 * daemon can take in nanoseconds without overflow (INT64_MAX / 2000000,
 * some 146 years; as an --at, early in the year 2116).
 */
#define TIMER_MS_MAX 4611686018427ULL

/* What the global options decided, handed to every command. */
struct ctl {
	const char *bus; /* -b, or NULL for the library's default */
	bool origin;	 /* sub --origin: ask for remote origins */
};

struct command {
	const char *name;
	int (*run)(const struct ctl *ctl, int argc, char **argv);
	const char *args;    /* synopsis after the name */
	const char *summary; /* one line for the command list */
	const char *options; /* the command's own options, or NULL */
};

static const struct command *command_find(const char *name);
static void usage_command(FILE *f, const struct command *cmd);

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

/*
 * A long-running command must not die with its queues still linked: catch
 * the usual ways of being told to stop and let the main loop free the
 * handle.  No SA_RESTART, so a blocked receive returns at once.  SIGPIPE is
 * ignored so that a closed stdout shows up as a write error, which also
 * ends in a clean exit.
 */
static int install_stop_handlers(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa = { .sa_handler = on_stop_signal };
	struct sigaction ign = { .sa_handler = SIG_IGN };

	sigemptyset(&sa.sa_mask);
	sigemptyset(&ign.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], &sa, NULL) < 0)
			return -errno;
	if (sigaction(SIGPIPE, &ign, NULL) < 0)
		return -errno;
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Parses a decimal number in 0..max.  Strict on purpose: digits only, no
 * sign, no blanks, no suffix, so that "-p 1O" or "-n -1" is a usage error
 * rather than a surprise.
 */
static int parse_number(const char *s, unsigned long long max,
			unsigned long long *ret)
{
	unsigned long long v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		unsigned d;

		if (*s < '0' || *s > '9')
			return -EINVAL;
		d = (unsigned)(*s - '0');
		if (d > max || v > max / 10 || v * 10 > max - d)
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

/* Points at the help after a usage error, and gives its exit status. */
static int usage_error(const char *cmd)
{
	if (cmd)
		fprintf(stderr, "Try 'mqbusctl help %s'.\n", cmd);
	else
		fprintf(stderr, "Try 'mqbusctl help'.\n");
	return EXIT_USAGE;
}

/* The usage error of an option value that parse_number() refused. */
static int bad_number(const char *cmd, const char *what, const char *value,
		      unsigned long long max)
{
	fprintf(stderr,
		"mqbusctl: %s: %s must be a number from 0 to %llu, not '%s'\n",
		cmd, what, max, value);
	return usage_error(cmd);
}

/*
 * Checks a --group value here rather than leaving it to the library, so
 * that a misspelt name is a usage error (exit 2) like any bad option value,
 * and is reported before anything is connected.
 */
static int check_group(const char *cmd, const char *name)
{
	size_t len = strlen(name);
	bool ok = len >= 1 && len <= GROUP_NAME_MAX;

	/* ASCII ranges, not isalnum(): the locale must not widen them */
	for (size_t i = 0; ok && i < len; i++) {
		char c = name[i];

		ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		     (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		     c == '-';
	}
	if (ok)
		return 0;
	fprintf(stderr,
		"mqbusctl: %s: invalid group name '%s': 1 to %d of A-Z a-z "
		"0-9 . _ -\n",
		cmd, name, GROUP_NAME_MAX);
	return usage_error(cmd);
}

/*
 * Topics, patterns and keys given on the command line are checked here
 * too, before anything is connected, by the library's rules: a bad one is
 * a usage error (exit 2) in every command, like a bad group, priority or
 * bus name (mqbusctl(1), EXIT STATUS).
 */
static int check_topic(const char *cmd, const char *topic)
{
	/* every valid topic matches "#"; -EINVAL says it is none */
	if (mqbus_topic_match("#", topic) >= 0)
		return 0;
	fprintf(stderr,
		"mqbusctl: %s: invalid topic '%s': 1 to %d bytes of printable "
		"ASCII in '/'-separated levels, no '+' or '#'\n",
		cmd, topic, MQBUS_TOPIC_MAX);
	return usage_error(cmd);
}

static int check_patterns(const char *cmd, char **patterns, int n)
{
	for (int i = 0; i < n; i++) {
		if (mqbus_topic_match(patterns[i], "x") >= 0)
			continue;
		fprintf(stderr,
			"mqbusctl: %s: invalid pattern '%s': 1 to %d bytes in "
			"'/'-separated levels, '+' for one whole level, '#' "
			"as the whole last level\n",
			cmd, patterns[i], MQBUS_TOPIC_MAX);
		return usage_error(cmd);
	}
	return 0;
}

static int check_key(const char *cmd, const char *key)
{
	size_t len = strlen(key);
	bool ok = len >= 1 && len <= MQBUS_KEY_MAX;

	for (size_t i = 0; ok && i < len; i++)
		ok = key[i] > ' ' && key[i] < 0x7f;
	if (ok)
		return 0;
	fprintf(stderr,
		"mqbusctl: %s: invalid key '%s': 1 to %d bytes of printable "
		"ASCII, no space\n",
		cmd, key, MQBUS_KEY_MAX);
	return usage_error(cmd);
}

static const char *bus_name(const struct ctl *ctl)
{
	const char *env;

	if (ctl->bus)
		return ctl->bus;
	env = getenv("MQBUS_BUS");
	return env && *env ? env : "mqbus";
}

/*
 * The library's sentence is the better message when it has one (it names
 * the limit that was hit and how to raise it); strerror is the fallback.
 * Read it before any further call on b, which would replace it.
 */
static void print_error(const mqbus *b, int r, const char *what)
{
	const char *e = b ? mqbus_last_error(b) : NULL;

	if (e && *e)
		fprintf(stderr, "mqbusctl: %s\n", e);
	else
		fprintf(stderr, "mqbusctl: %s: %s\n", what, strerror(-r));
}

/*
 * A new handle on the chosen bus, not connected. Returns an exit status.
 * A value of MQBUS_BUS, MQBUS_QUEUE_MAXMSG, MQBUS_QUEUE_MSGSIZE or
 * MQBUS_RECONNECT that the library cannot use is a usage error, as a bad
 * -b is, in every command (the library names it after mqbus_new()); -b
 * wins over a bad MQBUS_BUS.
 */
static int ctl_new(const struct ctl *ctl, mqbus **ret)
{
	const char *env_error;
	mqbus *b = NULL;
	int r;

	r = mqbus_new(&b);
	if (r < 0) {
		fprintf(stderr, "mqbusctl: %s\n", strerror(-r));
		return EXIT_ERROR;
	}
	env_error = mqbus_last_error(b);
	if (*env_error && !(ctl->bus && strstr(env_error, "MQBUS_BUS="))) {
		fprintf(stderr, "mqbusctl: %s\n", env_error);
		mqbus_free(b);
		return EXIT_USAGE;
	}
	if (ctl->bus) {
		r = mqbus_set_bus(b, ctl->bus);
		if (r < 0) {
			print_error(b, r, "bus name");
			mqbus_free(b);
			return r == -EINVAL ? EXIT_USAGE : EXIT_ERROR;
		}
		/* -b replaced a bad MQBUS_BUS: the queue size may be bad
		 * as well */
		if (mqbus_get_queue_size(b, NULL, NULL) < 0) {
			fprintf(stderr,
				"mqbusctl: invalid MQBUS_QUEUE_MAXMSG='%s' or "
				"MQBUS_QUEUE_MSGSIZE='%s' in the environment: "
				"use a positive number\n",
				getenv("MQBUS_QUEUE_MAXMSG") ?: "",
				getenv("MQBUS_QUEUE_MSGSIZE") ?: "");
			mqbus_free(b);
			return EXIT_USAGE;
		}
	}
	if (ctl->origin)
		mqbus_set_origin(b, 1); /* not connected yet: cannot fail */
	*ret = b;
	return EXIT_OK;
}

/* What ctl_new() checks, for commands that make their own handle. */
static int ctl_check(const struct ctl *ctl)
{
	mqbus *b;
	int r = ctl_new(ctl, &b);

	if (r == EXIT_OK)
		mqbus_free(b);
	return r;
}

/* A handle connected to the chosen bus.  Returns an exit status. */
static int ctl_connect(const struct ctl *ctl, mqbus **ret)
{
	mqbus *b;
	int r;

	r = ctl_new(ctl, &b);
	if (r != EXIT_OK)
		return r;
	r = mqbus_connect(b);
	if (r < 0) {
		const char *e = mqbus_last_error(b);
		bool said = e && *e;

		/* Told to stop while connecting: the failure is no news. */
		if (!stop_signal && r == -ENOENT && !said)
			fprintf(stderr, "mqbusctl: no daemon serves bus '%s'\n",
				bus_name(ctl));
		else if (!stop_signal)
			print_error(b, r, "connect");
		mqbus_free(b);
		return EXIT_ERROR;
	}
	*ret = b;
	return EXIT_OK;
}

/*
 * Everything a command reads from its own options goes through this: a
 * fresh getopt_long pass over the command's arguments.  argv[0] is the
 * command's name, replaced by "mqbusctl CMD" so that getopt's own messages
 * say who complains.  Options may follow operands (GNU permutation).
 */
static void command_argv0(char **argv, char *buf, size_t size)
{
	snprintf(buf, size, "mqbusctl %s", argv[0]);
	argv[0] = buf;
	optind = 0; /* glibc: start over, re-reading the option string */
	opterr = 1;
}

/* Reads all of stdin into a malloc'ed buffer. */
static int read_stdin(char **ret, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0, size = 0;

	for (;;) {
		ssize_t n;

		if (len == size) {
			size_t nsize = size ? size * 2 : 4096;
			char *nbuf;

			if (size >= STDIN_MAX) {
				free(buf);
				return -EMSGSIZE;
			}
			nbuf = realloc(buf, nsize);
			if (!nbuf) {
				free(buf);
				return -ENOMEM;
			}
			buf = nbuf;
			size = nsize;
		}
		n = read(STDIN_FILENO, buf + len, size - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = -errno;
			free(buf);
			return (int)n;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* What pub was asked to do, from its options. */
struct pub_opts {
	int priority;
	const char *key; /* NULL: none */
	bool retain;
	bool lines; /* -l: one message per line of stdin */
	bool has_delay, has_at, has_every;
	unsigned long long delay, at, every; /* milliseconds */
};

/*
 * Parses the options of pub into o.  Returns -1 when they are all valid,
 * else the exit status (help printed, or a usage error reported).
 */
static int pub_parse(int argc, char **argv, struct pub_opts *o)
{
	static const struct option longopts[] = {
		{ "priority", required_argument, NULL, 'p' },
		{ "key", required_argument, NULL, 'k' },
		{ "retain", no_argument, NULL, OPT_RETAIN },
		{ "delay", required_argument, NULL, OPT_DELAY },
		{ "at", required_argument, NULL, OPT_AT },
		{ "every", required_argument, NULL, OPT_EVERY },
		{ "lines", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long long v;
	int c;

	while ((c = getopt_long(argc, argv, "p:k:lh", longopts, NULL)) !=
	       -1) {
		switch (c) {
		case 'p':
			if (parse_number(optarg, 32767, &v) < 0)
				return bad_number("pub", "the priority", optarg,
						  32767);
			o->priority = (int)v;
			break;
		case 'k':
			if (check_key("pub", optarg) != 0)
				return EXIT_USAGE;
			o->key = optarg;
			break;
		case OPT_RETAIN:
			o->retain = true;
			break;
		case 'l':
			o->lines = true;
			break;
		case OPT_DELAY:
			if (parse_number(optarg, TIMER_MS_MAX, &o->delay) < 0)
				return bad_number("pub", "the delay", optarg,
						  TIMER_MS_MAX);
			o->has_delay = true;
			break;
		case OPT_AT:
			if (parse_number(optarg, TIMER_MS_MAX, &o->at) < 0)
				return bad_number("pub", "the time", optarg,
						  TIMER_MS_MAX);
			o->has_at = true;
			break;
		case OPT_EVERY:
			/* 0 would be no period at all: say so, not once */
			if (parse_number(optarg, TIMER_MS_MAX, &o->every) < 0 ||
			    o->every == 0) {
				fprintf(stderr,
					"mqbusctl: pub: the period must be a "
					"number from 1 to %llu, not '%s'\n",
					TIMER_MS_MAX, optarg);
				return usage_error("pub");
			}
			o->has_every = true;
			break;
		case 'h':
			usage_command(stdout, command_find("pub"));
			return EXIT_OK;
		default:
			return usage_error("pub");
		}
	}
	if (o->has_delay && o->has_at) {
		fprintf(stderr,
			"mqbusctl: pub: give one of --delay and --at\n");
		return usage_error("pub");
	}
	if (o->has_every && !o->has_delay && !o->has_at) {
		fprintf(stderr,
			"mqbusctl: pub: --every needs --delay or --at\n");
		return usage_error("pub");
	}
	if (o->lines && (o->has_delay || o->has_at)) {
		fprintf(stderr,
			"mqbusctl: pub: -l does not go with --delay or --at: "
			"a timer sends one message\n");
		return usage_error("pub");
	}
	if (o->retain && (o->has_delay || o->has_at)) {
		fprintf(stderr,
			"mqbusctl: pub: --retain does not go with --delay or "
			"--at: a timer's messages are not retained\n");
		return usage_error("pub");
	}
	return -1;
}

/*
 * Hands the message to the daemon as a detached timer, so that it is sent
 * after mqbusctl has gone, and prints the timer's id.  Frees b.
 */
static int pub_timer(mqbus *b, const struct pub_opts *o, const char *topic,
		     const void *data, size_t len)
{
	struct mqbus_timer_add_opts t = MQBUS_TIMER_ADD_OPTS_INIT;
	uint64_t id = 0;
	int r;

	t.priority = o->priority;
	t.key = o->key;
	t.flags = MQBUS_TIMER_DETACHED;
	t.when = o->delay;
	if (o->has_at) {
		t.flags |= MQBUS_TIMER_ABSOLUTE;
		t.when = o->at;
	}
	t.period_ms = o->has_every ? o->every : 0;
	r = mqbus_timer_add_opts(b, topic, data, len, &t, &id);
	if (r < 0)
		print_error(b, r, "timer");
	/* Our queues go before the output, which may block on a pipe. */
	mqbus_free(b);
	if (r < 0)
		return EXIT_ERROR;
	printf("%" PRIu64 "\n", id);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		if (errno != EPIPE)
			fprintf(stderr, "mqbusctl: pub: stdout: %s\n",
				strerror(errno));
		return EXIT_ERROR;
	}
	return EXIT_OK;
}


/*
 * The TOPIC [DATA|-] operands of pub and call.  DATA "-" is read from
 * stdin here, before connecting: it may block for a long time, and a
 * process killed meanwhile then leaves no queues behind.  *ret_input is
 * what to free.  Returns EXIT_OK, or the exit status of a failure.
 */
static int topic_and_data(const char *cmd, int argc, char **argv,
			  const char **ret_topic, const char **ret_data,
			  char **ret_input, size_t *ret_len)
{
	const char *data = NULL;
	int r;

	if (optind >= argc) {
		fprintf(stderr, "mqbusctl: %s: no topic given\n", cmd);
		return usage_error(cmd);
	}
	*ret_topic = argv[optind++];
	if (check_topic(cmd, *ret_topic) != 0)
		return EXIT_USAGE;
	if (optind < argc)
		data = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "mqbusctl: %s: unexpected argument '%s'\n",
			cmd, argv[optind]);
		return usage_error(cmd);
	}
	if (data && strcmp(data, "-") == 0) {
		r = read_stdin(ret_input, ret_len);
		if (r < 0) {
			fprintf(stderr, "mqbusctl: %s: reading stdin: %s\n",
				cmd, strerror(-r));
			return EXIT_ERROR;
		}
		data = *ret_input;
	} else if (data) {
		*ret_len = strlen(data);
	}
	*ret_data = data;
	return EXIT_OK;
}

/*
 * pub -l: each line of stdin is one message on topic, published as soon
 * as it is read, so that a stream (tail -f) flows through; the newline is
 * not sent and empty lines are skipped, as mosquitto_pub -l does.  Runs
 * to the end of stdin or a stop signal; the first message that cannot be
 * published ends it with exit 1.  Frees b.
 */
static int pub_lines(mqbus *b, const struct mqbus_publish_opts *p,
		     const char *topic)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int r = 0;

	while (!stop_signal && (n = getline(&line, &cap, stdin)) >= 0) {
		if (n > 0 && line[n - 1] == '\n')
			n--;
		if (n == 0)
			continue;
		r = mqbus_publish_opts(b, topic, line, (size_t)n, p);
		if (r < 0) {
			print_error(b, r, "publish");
			break;
		}
	}
	if (r == 0 && !stop_signal && ferror(stdin)) {
		fprintf(stderr, "mqbusctl: pub: reading stdin: %s\n",
			strerror(errno));
		r = -EIO;
	}
	free(line);
	/* as for one message: did the daemon refuse one? */
	if (r == 0 && (r = mqbus_sync(b)) == -ETIMEDOUT)
		r = 0;
	if (r < 0 && r != -EIO)
		print_error(b, r, "publish");
	mqbus_free(b);
	return r < 0 ? EXIT_ERROR : EXIT_OK;
}

/* The TOPIC operand of pub -l, which reads its data from stdin. */
static int topic_only(const char *cmd, int argc, char **argv,
		      const char **ret_topic)
{
	if (optind >= argc) {
		fprintf(stderr, "mqbusctl: %s: no topic given\n", cmd);
		return usage_error(cmd);
	}
	*ret_topic = argv[optind++];
	if (check_topic(cmd, *ret_topic) != 0)
		return EXIT_USAGE;
	if (optind < argc) {
		fprintf(stderr,
			"mqbusctl: %s: unexpected argument '%s' (-l reads "
			"the messages from stdin)\n",
			cmd, argv[optind]);
		return usage_error(cmd);
	}
	return EXIT_OK;
}

static int cmd_pub(const struct ctl *ctl, int argc, char **argv)
{
	struct pub_opts o = { .priority = MQBUS_PRIORITY_DEFAULT };
	struct mqbus_publish_opts p = MQBUS_PUBLISH_OPTS_INIT;
	char name[64];
	const char *topic, *data = NULL;
	char *input = NULL;
	size_t len = 0;
	mqbus *b;
	int r;

	command_argv0(argv, name, sizeof(name));
	r = pub_parse(argc, argv, &o);
	if (r >= 0)
		return r;
	if (o.lines) {
		r = topic_only("pub", argc, argv, &topic);
		if (r != EXIT_OK)
			return r;
		r = install_stop_handlers();
		if (r < 0) {
			fprintf(stderr, "mqbusctl: pub: sigaction: %s\n",
				strerror(-r));
			return EXIT_ERROR;
		}
		r = ctl_connect(ctl, &b);
		if (r != EXIT_OK)
			return stop_signal ? EXIT_OK : r;
		p.priority = o.priority;
		p.key = o.key;
		p.flags = o.retain ? MQBUS_PUBLISH_RETAIN : 0;
		return pub_lines(b, &p, topic);
	}
	r = topic_and_data("pub", argc, argv, &topic, &data, &input, &len);
	if (r != EXIT_OK)
		return r;
	if (!data)
		data = "";

	r = ctl_connect(ctl, &b);
	if (r != EXIT_OK) {
		free(input);
		return r;
	}
	if (o.has_delay || o.has_at) {
		r = pub_timer(b, &o, topic, data, len);
		free(input);
		return r;
	}
	p.priority = o.priority;
	p.key = o.key;
	p.flags = o.retain ? MQBUS_PUBLISH_RETAIN : 0;
	r = mqbus_publish_opts(b, topic, data, len, &p);
	/* a publish waits for no answer: ask whether the daemon refused it
	 * (the access policy, a retained value's bounds).  A daemon that
	 * has not read it yet (overflow = block holds us up) has it all the
	 * same: that is no error. */
	if (r == 0 && (r = mqbus_sync(b)) == -ETIMEDOUT)
		r = 0;
	if (r < 0)
		print_error(b, r, "publish");
	mqbus_free(b);
	free(input);
	return r < 0 ? EXIT_ERROR : EXIT_OK;
}

/*
 * Plain output escapes what a terminal would act on, so that a payload can
 * never move the cursor or change colours: \n, \t, \\ and \xNN for every
 * other byte outside printable ASCII.  Topics also escape the space, which
 * separates the topic from the payload on the line.
 */
static void put_escaped(FILE *f, const unsigned char *p, size_t len,
			bool escape_space)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];

		if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c == '\\')
			fputs("\\\\", f);
		else if (c < 0x20 || c >= 0x7f || (escape_space && c == ' '))
			fprintf(f, "\\x%02x", c);
		else
			putc(c, f);
	}
}

/*
 * A JSON string of arbitrary bytes.  Payloads need not be UTF-8, so every
 * byte >= 0x80 becomes the code point of the same value (\u0080..\u00ff):
 * the output is plain ASCII, always valid JSON, and the bytes can be
 * recovered exactly by taking each code point as a byte.
 */
static void put_json_string(FILE *f, const unsigned char *p, size_t len)
{
	putc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];

		if (c == '"' || c == '\\') {
			putc('\\', f);
			putc(c, f);
		} else if (c < 0x20 || c >= 0x7f) {
			fprintf(f, "\\u%04x", c);
		} else {
			putc(c, f);
		}
	}
	putc('"', f);
}

/*
 * The exact forms of a message's timestamp in JSON.  The number in
 * "timestamp" (nanoseconds) is above 2^53, which JSON tools that read
 * numbers as doubles (jq, JavaScript) round: "timestamp_ns" is the same
 * value as a string, and "timestamp_us" the microseconds, a number that
 * such tools keep exact until the year 2255.
 */
static void put_json_time(FILE *f, const mqbus_msg *m)
{
	uint64_t ns = mqbus_msg_timestamp(m);

	fprintf(f, ",\"timestamp_ns\":\"%" PRIu64 "\",\"timestamp_us\":%" PRIu64,
		ns, ns / 1000u);
}

/* "request" (a request to answer), and its id where there is one. */
static void put_json_request(FILE *f, const mqbus_msg *m)
{
	fprintf(f, ",\"request\":%s",
		mqbus_msg_is_request(m) ? "true" : "false");
	if (mqbus_msg_is_request(m))
		fprintf(f, ",\"request_id\":%" PRIu32,
			mqbus_msg_request_id(m));
}

/*
 * sub --origin, as JSON: "origin" with what the remote side claims of a
 * bridged message's sender (null for a field it did not say), or null for
 * a message that did not come through a bridge.
 */
static void put_json_origin(FILE *f, const mqbus_msg *m)
{
	const struct mqbus_origin *o = mqbus_msg_origin(m);

	if (!o) {
		fputs(",\"origin\":null", f);
		return;
	}
	fputs(",\"origin\":{\"uid\":", f);
	if (o->uid == (uid_t)-1)
		fputs("null", f);
	else
		fprintf(f, "%lu", (unsigned long)o->uid);
	fputs(",\"pid\":", f);
	if (o->pid == 0)
		fputs("null", f);
	else
		fprintf(f, "%ld", (long)o->pid);
	/* printable ASCII without spaces: the library checked them */
	fputs(",\"user\":", f);
	if (*o->user)
		put_json_string(f, (const unsigned char *)o->user,
				strlen(o->user));
	else
		fputs("null", f);
	fputs(",\"host\":", f);
	if (*o->host)
		put_json_string(f, (const unsigned char *)o->host,
				strlen(o->host));
	else
		fputs("null", f);
	fputs(",\"bridge\":", f);
	put_json_string(f, (const unsigned char *)o->bridge,
			strlen(o->bridge));
	fputc('}', f);
}

/* sub --origin, as text: " (from USER@HOST uid=U pid=P via bridge B)",
 * "?" for what the remote side did not say; nothing for a local one. */
static void put_origin(FILE *f, const mqbus_msg *m)
{
	const struct mqbus_origin *o = mqbus_msg_origin(m);

	if (!o)
		return;
	fprintf(f, " (from %s@%s", *o->user ? o->user : "?",
		*o->host ? o->host : "?");
	if (o->uid != (uid_t)-1)
		fprintf(f, " uid=%lu", (unsigned long)o->uid);
	if (o->pid != 0)
		fprintf(f, " pid=%ld", (long)o->pid);
	fprintf(f, " via bridge %s)", o->bridge);
}

static void print_message(FILE *f, const mqbus_msg *m, bool json,
			  bool origin)
{
	const char *topic = mqbus_msg_topic(m);
	const char *key = mqbus_msg_key(m);
	const void *payload;
	size_t len = 0;

	payload = mqbus_msg_payload(m, &len);
	if (!topic)
		topic = "";
	if (!payload)
		len = 0;

	if (json) {
		fputs("{\"topic\":", f);
		put_json_string(f, (const unsigned char *)topic, strlen(topic));
		fputs(",\"key\":", f);
		if (key)
			put_json_string(f, (const unsigned char *)key,
					strlen(key));
		else
			fputs("null", f);
		fputs(",\"payload\":", f);
		put_json_string(f, payload, len);
		fprintf(f,
			",\"priority\":%u,\"sender_uid\":%lu"
			",\"sender_pid\":%ld,\"client_id\":%" PRIu32
			",\"seq\":%" PRIu64 ",\"timestamp\":%" PRIu64
			",\"dropped\":%" PRIu32 ",\"retained\":%s",
			mqbus_msg_priority(m),
			(unsigned long)mqbus_msg_sender_uid(m),
			(long)mqbus_msg_sender_pid(m), mqbus_msg_client_id(m),
			mqbus_msg_seq(m), mqbus_msg_timestamp(m),
			mqbus_msg_dropped(m),
			mqbus_msg_retained(m) ? "true" : "false");
		put_json_request(f, m);
		put_json_time(f, m);
		/* a message has an origin only if we asked: shown when
		 * there is one, so that one sent unasked shows too */
		if (origin || mqbus_msg_origin(m))
			put_json_origin(f, m);
		fputs("}\n", f);
		return;
	}
	put_escaped(f, (const unsigned char *)topic, strlen(topic), true);
	putc(' ', f);
	put_escaped(f, payload, len, false);
	if (key)
		fprintf(f, " (key %s)", key); /* printable, no spaces */
	if (mqbus_msg_dropped(m) > 0)
		fprintf(f, " (dropped %" PRIu32 ")", mqbus_msg_dropped(m));
	if (mqbus_msg_retained(m))
		fputs(" (retained)", f);
	put_origin(f, m); /* nothing unless it has one */
	putc('\n', f);
}

/*
 * A drop notice: messages lost with none after them to say so.  As JSON a
 * line of its own on stdout; as text a sentence on stderr, so that stdout
 * holds messages only.
 */
static void print_drop_notice(const mqbus_msg *m, bool json)
{
	const char *topic = mqbus_msg_topic(m);
	uint32_t n = mqbus_msg_dropped(m);

	if (json) {
		fputs("{\"drop_notice\":true,\"topic\":", stdout);
		put_json_string(stdout, (const unsigned char *)topic,
				strlen(topic));
		printf(",\"dropped\":%" PRIu32 "}\n", n);
		return;
	}
	fprintf(stderr, "mqbusctl: %" PRIu32 " message%s dropped on the way "
			"here (the last on ",
		n, n == 1 ? "" : "s");
	put_escaped(stderr, (const unsigned char *)topic, strlen(topic), true);
	fputs("): the subscriber fell behind\n", stderr);
}

struct sub_opts {
	unsigned long long count; /* messages to print, if has_count */
	bool has_count;
	int timeout_ms; /* total deadline, if >= 0 */
	bool json;
	bool origin; /* sub --origin */
	const char *cmd; /* for messages: "sub" (NULL) or "monitor" */
	/* prints one message: print_message (NULL) or print_monitored;
	 * false: it was not one to print or count */
	bool (*print)(FILE *f, const mqbus_msg *m, bool json);
};

/*
 * The long-running commands (sub, monitor, serve) keep running across a
 * daemon restart: libmqbus reconnects and subscribes again, and they say
 * one line on stderr when the connection goes and when it is back (the
 * library's sentence: which daemon, and why).  userdata is the command.
 */
static void ctl_connection(mqbus *b, int event, int error, void *userdata)
{
	const char *cmd = userdata;

	(void)error;
	if (event == MQBUS_DISCONNECTED || event == MQBUS_RECONNECTED)
		fprintf(stderr, "mqbusctl: %s: %s\n", cmd, mqbus_last_error(b));
}

/*
 * The receive loop of sub.  Returns an exit status; the caller frees b,
 * which unlinks the queues whatever happened here.
 */
static int sub_loop(mqbus *b, const struct sub_opts *o)
{
	const char *cmd = o->cmd ? o->cmd : "sub";
	uint64_t deadline = 0, synced = now_ns();
	unsigned long long seen = 0;

	mqbus_set_connection_cb(b, ctl_connection, (void *)cmd);
	if (o->timeout_ms >= 0)
		deadline = now_ns() + (uint64_t)o->timeout_ms * 1000000u;

	for (;;) {
		mqbus_msg *m = NULL;
		int slice = RECEIVE_SLICE_MS;
		int r;

		if (stop_signal)
			return EXIT_OK;
		if (o->has_count && seen >= o->count)
			return EXIT_OK;
		if (o->timeout_ms >= 0) {
			uint64_t now = now_ns();
			uint64_t left_ms = 0;

			/* Round up: a slice of 0 just before the deadline
			 * would spin. */
			if (now < deadline)
				left_ms = (deadline - now + 999999u) / 1000000u;
			if (left_ms < (uint64_t)slice)
				slice = (int)left_ms;
		}

		r = mqbus_receive(b, &m, slice);
		/* no daemon now: the library is reconnecting */
		if (r == -ENOTCONN && mqbus_reconnecting(b))
			r = -ETIMEDOUT;
		if (r == -ETIMEDOUT || r == -EINTR || r == -EAGAIN) {
			if (o->timeout_ms >= 0 && now_ns() >= deadline) {
				fprintf(stderr,
					"mqbusctl: %s: timed out after %d ms "
					"(%llu message%s)\n",
					cmd, o->timeout_ms, seen,
					seen == 1 ? "" : "s");
				return EXIT_TIMEOUT;
			}
			/* quiet for a second: did the daemon end one of our
			 * subscriptions (a reload took the right away)?  It
			 * says so with an error that answers no request */
			if (now_ns() - synced >= 1000000000u) {
				synced = now_ns();
				r = mqbus_sync(b);
				if (r < 0 && r != -ENOTCONN && r != -ETIMEDOUT &&
				    r != -ECONNRESET) {
					fprintf(stderr, "mqbusctl: %s: %s\n", cmd,
						mqbus_last_error(b));
					return EXIT_ERROR;
				}
			}
			continue;
		}
		if (r < 0) {
			print_error(b, r, "receive");
			return EXIT_ERROR;
		}
		if (!m)
			continue;

		if (!o->print && mqbus_msg_is_drop_notice(m)) {
			/* losses no message followed: not a message */
			print_drop_notice(m, o->json);
		} else if (!o->print) {
			print_message(stdout, m, o->json, o->origin);
			seen++;
		} else if (o->print(stdout, m, o->json)) {
			seen++;
		}
		mqbus_msg_free(m);
		/*
		 * Flush each line: a reader on a pipe must see a message when
		 * it arrives, not when a buffer fills.  A reader that went
		 * away (EPIPE) is an ordinary end, reported quietly.
		 */
		if (fflush(stdout) == EOF || ferror(stdout)) {
			if (errno != EPIPE)
				fprintf(stderr, "mqbusctl: %s: stdout: %s\n",
					cmd, strerror(errno));
			return EXIT_ERROR;
		}
	}
}

/*
 * Subscribes to each pattern, in the queue group if one is given.  Returns
 * an exit status; stops early, with EXIT_OK, when told to stop.
 */
static int subscribe_all(mqbus *b, char **patterns, int n, const char *group)
{
	for (int i = 0; i < n; i++) {
		int r;

		if (stop_signal)
			return EXIT_OK;
		if (group)
			r = mqbus_subscribe_group(b, patterns[i], group);
		else
			r = mqbus_subscribe(b, patterns[i]);
		/* A pattern given twice is no reason to fail. */
		if (r == -EEXIST)
			continue;
		if (r < 0) {
			print_error(b, r, "subscribe");
			return EXIT_ERROR;
		}
	}
	return EXIT_OK;
}

/*
 * The start of sub and serve: the stop handlers (before connecting, so
 * that no signal can leave the queues behind), the connection, and the
 * subscriptions to patterns.  Returns EXIT_OK with the handle in *ret, or
 * an exit status (EXIT_OK when told to stop) with *ret NULL.
 */
static int listen_start(const struct ctl *ctl, const char *cmd,
			char **patterns, int n, const char *group,
			mqbus **ret)
{
	mqbus *b = NULL;
	int r;

	*ret = NULL;
	r = install_stop_handlers();
	if (r < 0) {
		fprintf(stderr, "mqbusctl: %s: sigaction: %s\n", cmd,
			strerror(-r));
		return EXIT_ERROR;
	}
	r = ctl_connect(ctl, &b);
	if (r == EXIT_OK)
		r = subscribe_all(b, patterns, n, group);
	if (r != EXIT_OK || stop_signal) {
		mqbus_free(b);
		return stop_signal ? EXIT_OK : r;
	}
	*ret = b;
	return EXIT_OK;
}

static int cmd_sub(const struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "group", required_argument, NULL, OPT_GROUP },
		{ "origin", no_argument, NULL, OPT_ORIGIN },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct sub_opts o = { .timeout_ms = -1 };
	struct ctl sub_ctl = *ctl;
	const char *group = NULL;
	char name[64];
	unsigned long long v;
	mqbus *b;
	int c, r;

	command_argv0(argv, name, sizeof(name));
	while ((c = getopt_long(argc, argv, "n:t:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_number(optarg, ULLONG_MAX, &v) < 0)
				return bad_number("sub", "the count", optarg,
						  ULLONG_MAX);
			o.count = v;
			o.has_count = true;
			break;
		case 't':
			if (parse_number(optarg, INT_MAX, &v) < 0)
				return bad_number("sub", "the timeout", optarg,
						  INT_MAX);
			o.timeout_ms = (int)v;
			break;
		case OPT_JSON:
			o.json = true;
			break;
		case OPT_GROUP:
			if (check_group("sub", optarg) != 0)
				return EXIT_USAGE;
			group = optarg;
			break;
		case OPT_ORIGIN:
			o.origin = sub_ctl.origin = true;
			break;
		case 'h':
			usage_command(stdout, command_find("sub"));
			return EXIT_OK;
		default:
			return usage_error("sub");
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "mqbusctl: sub: no pattern given\n");
		return usage_error("sub");
	}
	if (check_patterns("sub", argv + optind, argc - optind) != 0)
		return EXIT_USAGE;

	r = listen_start(&sub_ctl, "sub", argv + optind, argc - optind, group,
			 &b);
	if (!b)
		return r;
	r = sub_loop(b, &o);
	mqbus_free(b);
	return r;
}

/* --- monitor ---------------------------------------------------------- */

/* What a monitor's copy is: "publish", "request" or "reply". */
static const char *monitored_kind(const mqbus_msg *m)
{
	if (mqbus_msg_is_reply(m))
		return "reply";
	if (mqbus_msg_request_id(m))
		return "request";
	return "publish";
}

/*
 * One line per copy a monitor gets.  Plain: a line saying how many copies
 * were lost when the monitor fell behind, then "KIND TOPIC uid=U pid=P
 * [id=N] [key=K] PAYLOAD" with KIND pub, req or rep and the payload
 * escaped as sub does.  JSON: sub's fields (but "retained" and
 * "request"), "kind" and, for a request or reply, "request_id".  Returns
 * false, having said so on stderr, for a message that is not a monitor's
 * copy, which is not counted.
 */
static bool print_monitored(FILE *f, const mqbus_msg *m, bool json)
{
	const char *kind = monitored_kind(m);
	const char *topic = mqbus_msg_topic(m);
	const char *key = mqbus_msg_key(m);
	uint32_t id = mqbus_msg_request_id(m);
	uint32_t dropped = mqbus_msg_dropped(m);
	const void *payload;
	size_t len = 0;

	payload = mqbus_msg_payload(m, &len);
	if (!topic)
		topic = "";
	if (!payload)
		len = 0;
	/* copies lost that no copy followed: the gap line on its own (as
	 * JSON, the drop notice's line); not a copy to count */
	if (mqbus_msg_is_drop_notice(m)) {
		if (json)
			print_drop_notice(m, true);
		else
			fprintf(f, "gap %" PRIu32 " message%s lost: the "
				   "monitor fell behind\n",
				dropped, dropped == 1 ? "" : "s");
		return false;
	}
	/* a monitor has no other subscription: this is the daemon's error */
	if (!mqbus_msg_is_monitored(m)) {
		fputs("mqbusctl: monitor: a message on ", stderr);
		put_escaped(stderr, (const unsigned char *)topic,
			    strlen(topic), true);
		fputs(" is not marked as a monitor's copy; not shown\n",
		      stderr);
		return false;
	}

	if (json) {
		fprintf(f, "{\"kind\":\"%s\",\"topic\":", kind);
		put_json_string(f, (const unsigned char *)topic, strlen(topic));
		fputs(",\"key\":", f);
		if (key)
			put_json_string(f, (const unsigned char *)key,
					strlen(key));
		else
			fputs("null", f);
		fputs(",\"payload\":", f);
		put_json_string(f, payload, len);
		fprintf(f,
			",\"priority\":%u,\"sender_uid\":%lu"
			",\"sender_pid\":%ld,\"client_id\":%" PRIu32
			",\"seq\":%" PRIu64 ",\"timestamp\":%" PRIu64
			",\"dropped\":%" PRIu32,
			mqbus_msg_priority(m),
			(unsigned long)mqbus_msg_sender_uid(m),
			(long)mqbus_msg_sender_pid(m), mqbus_msg_client_id(m),
			mqbus_msg_seq(m), mqbus_msg_timestamp(m), dropped);
		if (id)
			fprintf(f, ",\"request_id\":%" PRIu32, id);
		put_json_time(f, m);
		fputs("}\n", f);
		return true;
	}
	if (dropped > 0)
		fprintf(f, "gap %" PRIu32 " message%s lost: the monitor fell "
			   "behind\n",
			dropped, dropped == 1 ? "" : "s");
	fprintf(f, "%.3s ", kind);
	put_escaped(f, (const unsigned char *)topic, strlen(topic), true);
	fprintf(f, " uid=%lu pid=%ld", (unsigned long)mqbus_msg_sender_uid(m),
		(long)mqbus_msg_sender_pid(m));
	if (id)
		fprintf(f, " id=%" PRIu32, id);
	if (key)
		fprintf(f, " key=%s", key); /* printable, no spaces */
	if (len > 0) {
		putc(' ', f);
		put_escaped(f, payload, len, false);
	}
	putc('\n', f);
	return true;
}

static int cmd_monitor(const struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static char all[] = "#";
	struct sub_opts o = { .timeout_ms = -1,
			      .cmd = "monitor",
			      .print = print_monitored };
	char *dflt[] = { all };
	char **patterns = dflt;
	bool quiet = false;
	char name[64];
	unsigned long long v;
	mqbus *b = NULL;
	int c, n = 1, r;

	command_argv0(argv, name, sizeof(name));
	while ((c = getopt_long(argc, argv, "n:t:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_number(optarg, ULLONG_MAX, &v) < 0)
				return bad_number("monitor", "the count",
						  optarg, ULLONG_MAX);
			o.count = v;
			o.has_count = true;
			break;
		case 't':
			if (parse_number(optarg, INT_MAX, &v) < 0)
				return bad_number("monitor", "the timeout",
						  optarg, INT_MAX);
			o.timeout_ms = (int)v;
			break;
		case OPT_JSON:
			o.json = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			usage_command(stdout, command_find("monitor"));
			return EXIT_OK;
		default:
			return usage_error("monitor");
		}
	}
	if (optind < argc) {
		patterns = argv + optind;
		n = argc - optind;
	}
	if (check_patterns("monitor", patterns, n) != 0)
		return EXIT_USAGE;

	r = install_stop_handlers();
	if (r < 0) {
		fprintf(stderr, "mqbusctl: monitor: sigaction: %s\n",
			strerror(-r));
		return EXIT_ERROR;
	}
	r = ctl_connect(ctl, &b);
	for (int i = 0; r == EXIT_OK && i < n && !stop_signal; i++) {
		int m = mqbus_monitor(b, patterns[i]);

		/* A pattern given twice is no reason to fail. */
		if (m < 0 && m != -EEXIST) {
			print_error(b, m, "monitor");
			r = EXIT_ERROR;
		}
	}
	if (r != EXIT_OK || stop_signal) {
		mqbus_free(b);
		return stop_signal ? EXIT_OK : r;
	}
	/* like tcpdump's "listening on": the copies flow from here on */
	if (!quiet) {
		fprintf(stderr, "mqbusctl: monitoring bus %s:", bus_name(ctl));
		for (int i = 0; i < n; i++)
			fprintf(stderr, " %s", patterns[i]);
		fputc('\n', stderr);
	}
	r = sub_loop(b, &o);
	mqbus_free(b);
	return r;
}

/* --- call ------------------------------------------------------------- */

/*
 * Writes a reply's payload as it came, bytes and all: call is meant for
 * scripts that capture its output (x=$(mqbusctl call ...)), where escaping
 * would get in the way.  A newline is added only when the payload does not
 * end with one, so that the shell prompt or the next line starts afresh
 * and $(...) strips exactly what was added.
 */
static int put_reply(const mqbus_msg *m)
{
	const unsigned char *p;
	size_t len = 0;

	p = mqbus_msg_payload(m, &len);
	if (!p)
		len = 0;
	if (len > 0 && fwrite(p, 1, len, stdout) != len)
		return -EIO;
	if (len == 0 || p[len - 1] != '\n')
		putchar('\n');
	if (fflush(stdout) == EOF || ferror(stdout))
		return -EIO;
	return 0;
}

/*
 * call --json: one JSON object with the request's topic, the reply's
 * payload (as sub --json writes payloads) and who answered: the
 * responder's uid, user name (null when the uid has none), pid and client
 * id, as the daemon stamped them, and how long the answer took.
 */
static int put_reply_json(const char *topic, const mqbus_msg *m,
			  uint64_t took_ns)
{
	uid_t uid = mqbus_msg_sender_uid(m);
	struct passwd pw, *found = NULL;
	const unsigned char *p;
	char buf[1024];
	size_t len = 0;

	p = mqbus_msg_payload(m, &len);
	if (!p)
		len = 0;
	fputs("{\"topic\":", stdout);
	put_json_string(stdout, (const unsigned char *)topic, strlen(topic));
	fputs(",\"payload\":", stdout);
	put_json_string(stdout, p, len);
	fprintf(stdout, ",\"sender_uid\":%lu,\"sender_user\":",
		(unsigned long)uid);
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found)
		put_json_string(stdout, (const unsigned char *)pw.pw_name,
				strlen(pw.pw_name));
	else
		fputs("null", stdout);
	fprintf(stdout,
		",\"sender_pid\":%ld,\"client_id\":%" PRIu32
		",\"latency_us\":%" PRIu64 "}\n",
		(long)mqbus_msg_sender_pid(m), mqbus_msg_client_id(m),
		took_ns / 1000u);
	if (fflush(stdout) == EOF || ferror(stdout))
		return -EIO;
	return 0;
}

static int cmd_call(const struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "priority", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char name[64];
	unsigned long long v;
	/* by default the handle's timeout and the topic's priority */
	struct mqbus_request_opts ro = MQBUS_REQUEST_OPTS_INIT;
	const char *topic, *data = NULL;
	char *input = NULL;
	mqbus_msg *reply = NULL;
	bool json = false;
	uint64_t t0;
	size_t len = 0;
	mqbus *b;
	int c, r, status;

	command_argv0(argv, name, sizeof(name));
	while ((c = getopt_long(argc, argv, "t:p:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_number(optarg, 32767, &v) < 0)
				return bad_number("call", "the priority",
						  optarg, 32767);
			ro.priority = (int)v;
			break;
		case 't':
			/* 0 would expire before the daemon even saw it */
			if (parse_number(optarg, INT_MAX, &v) < 0 || v == 0) {
				fprintf(stderr,
					"mqbusctl: call: the timeout must be a "
					"number from 1 to %d, not '%s'\n",
					INT_MAX, optarg);
				return usage_error("call");
			}
			ro.timeout_ms = (int)v;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			usage_command(stdout, command_find("call"));
			return EXIT_OK;
		default:
			return usage_error("call");
		}
	}
	r = topic_and_data("call", argc, argv, &topic, &data, &input, &len);
	if (r != EXIT_OK)
		return r;

	r = ctl_connect(ctl, &b);
	if (r != EXIT_OK) {
		free(input);
		return r;
	}
	t0 = now_ns();
	r = mqbus_request_opts(b, topic, data ? data : "", len, &ro, &reply);
	t0 = now_ns() - t0;
	free(input);
	if (r < 0) {
		print_error(b, r, "call");
		mqbus_free(b);
		if (r == -ETIMEDOUT)
			return EXIT_TIMEOUT;
		if (r == -EHOSTUNREACH)
			return EXIT_NO_RESPONDERS;
		return EXIT_ERROR;
	}
	/* Our queues go before the output, which may block on a pipe. */
	mqbus_free(b);

	status = EXIT_OK;
	if ((json ? put_reply_json(topic, reply, t0) : put_reply(reply)) < 0) {
		if (errno != EPIPE)
			fprintf(stderr, "mqbusctl: call: stdout: %s\n",
				strerror(errno));
		status = EXIT_ERROR;
	}
	mqbus_msg_free(reply);
	return status;
}

/* --- serve ------------------------------------------------------------ */

struct serve_opts {
	const char *bus;   /* for the --exec command's MQBUS_BUS */
	const char *exec;  /* the command of --exec, NULL for --echo */
	const char *group; /* --group, or NULL */
	unsigned long long count;
	bool has_count;
};

/*
 * What the --exec command is told about the request it answers, in its
 * environment (mqbusctl(1), serve): the bus, the topic, the key (unset
 * without one) and the sender's uid, pid, user name (the uid when it has
 * none) and client id.  Numbers are kept as text, made before the fork.
 */
struct exec_env {
	const char *bus;
	const char *topic;
	const char *key;
	char uid[16], pid[16], client_id[16];
	char user[64];
};

static void exec_env_of(struct exec_env *e, const char *bus,
			const mqbus_msg *m)
{
	uid_t uid = mqbus_msg_sender_uid(m);
	struct passwd pw, *found = NULL;
	char buf[1024];

	e->bus = bus;
	e->topic = mqbus_msg_topic(m);
	e->key = mqbus_msg_key(m);
	snprintf(e->uid, sizeof(e->uid), "%lu", (unsigned long)uid);
	snprintf(e->pid, sizeof(e->pid), "%ld", (long)mqbus_msg_sender_pid(m));
	snprintf(e->client_id, sizeof(e->client_id), "%" PRIu32,
		 mqbus_msg_client_id(m));
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found)
		snprintf(e->user, sizeof(e->user), "%s", pw.pw_name);
	else
		snprintf(e->user, sizeof(e->user), "%lu", (unsigned long)uid);
}

/* In the child, before exec: false if the environment cannot be set. */
static bool exec_env_set(const struct exec_env *e)
{
	bool ok = setenv("MQBUS_BUS", e->bus, 1) == 0 &&
		  setenv("MQBUS_TOPIC", e->topic, 1) == 0 &&
		  setenv("MQBUS_SENDER_UID", e->uid, 1) == 0 &&
		  setenv("MQBUS_SENDER_PID", e->pid, 1) == 0 &&
		  setenv("MQBUS_SENDER_USER", e->user, 1) == 0 &&
		  setenv("MQBUS_SENDER_CLIENT_ID", e->client_id, 1) == 0;

	if (e->key)
		return ok && setenv("MQBUS_KEY", e->key, 1) == 0;
	return ok && unsetenv("MQBUS_KEY") == 0;
}

/* The output of one run of the --exec command, and how it ended. */
struct exec_result {
	unsigned char *out;
	size_t len;     /* bytes kept in out, at most the size given */
	bool truncated; /* it wrote more than that */
	int status;     /* as from waitpid() */
};

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/*
 * The child side of --exec: the request on stdin, stdout to the pipe,
 * stderr shared with serve so that the command's complaints are seen.
 * Nothing else of ours may leak into the command: the library's queue
 * descriptors in particular would keep the queues' memory charged after
 * serve is gone, for as long as the command ran.
 */
static __attribute__((noreturn)) void exec_child(const char *cmd,
						 const struct exec_env *env,
						 int in_fd, int out_fd)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	unsigned long max_fd;

	/* serve ignores SIGPIPE; the command should not inherit that */
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGPIPE, &dfl, NULL);
	/*
	 * Above 2 first: when serve was started with stdin or stdout
	 * closed, a pipe end may itself be 0 or 1, and one dup2() would
	 * clobber the other.  The copies lose O_CLOEXEC and are closed
	 * with the rest below.
	 */
	in_fd = fcntl(in_fd, F_DUPFD, 3);
	out_fd = fcntl(out_fd, F_DUPFD, 3);
	if (in_fd < 0 || out_fd < 0 || dup2(in_fd, STDIN_FILENO) < 0 ||
	    dup2(out_fd, STDOUT_FILENO) < 0)
		_exit(127);
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3u, ~0u, 0u) == 0)
		goto run;
#endif
	max_fd = (unsigned long)sysconf(_SC_OPEN_MAX);
	if (max_fd > 65536)
		max_fd = 65536;
	for (unsigned long fd = 3; fd < max_fd; fd++)
		close((int)fd);
#ifdef SYS_close_range
run:
#endif
	if (!exec_env_set(env)) {
		fprintf(stderr,
			"mqbusctl: serve: cannot set the environment of '%s': "
			"%s\n",
			cmd, strerror(errno));
		_exit(127);
	}
	execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
	fprintf(stderr, "mqbusctl: serve: cannot run /bin/sh: %s\n",
		strerror(errno));
	_exit(127);
}

/* Ends a command that serve no longer waits for, and reaps it. */
static void exec_abandon(pid_t pid)
{
	int status;

	kill(pid, SIGTERM);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

/*
 * Runs cmd with /bin/sh -c, in on its stdin, and collects up to max bytes
 * of its stdout in res.  Both pipes are served from one poll() loop, so a
 * command that writes a lot before it has read all of its input cannot
 * deadlock against us; what it writes beyond max is read and thrown away
 * so that it still runs to its end.  Returns 0, -EINTR when a stop signal
 * came first (the command is then ended), or -errno.
 */
static int exec_run(const char *cmd, const struct exec_env *env,
		    const void *in, size_t in_len, size_t max,
		    struct exec_result *res)
{
	int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 };
	const unsigned char *inp = in;
	size_t written = 0;
	pid_t pid;
	int r = 0;

	res->len = 0;
	res->truncated = false;
	res->status = 0;
	if (pipe2(in_pipe, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(out_pipe, O_CLOEXEC) < 0) {
		r = -errno;
		close(in_pipe[0]);
		close(in_pipe[1]);
		return r;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(in_pipe[0]);
		close(in_pipe[1]);
		close(out_pipe[0]);
		close(out_pipe[1]);
		return r;
	}
	if (pid == 0)
		exec_child(cmd, env, in_pipe[0], out_pipe[1]);
	close(in_pipe[0]);
	close(out_pipe[1]);
	if (set_nonblock(in_pipe[1]) < 0 || set_nonblock(out_pipe[0]) < 0) {
		r = -errno;
		goto out;
	}
	if (in_len == 0) {
		close(in_pipe[1]);
		in_pipe[1] = -1;
	}

	while (out_pipe[0] >= 0) {
		struct pollfd pfd[2] = {
			{ .fd = out_pipe[0], .events = POLLIN },
			{ .fd = in_pipe[1], .events = POLLOUT },
		};
		unsigned char scratch[4096];

		if (stop_signal) {
			r = -EINTR;
			goto out;
		}
		/* A slice, so that a stop signal is noticed soon. */
		if (poll(pfd, in_pipe[1] >= 0 ? 2 : 1, RECEIVE_SLICE_MS) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (in_pipe[1] >= 0 && pfd[1].revents) {
			ssize_t n = write(in_pipe[1], inp + written,
					  in_len - written);

			if (n > 0)
				written += (size_t)n;
			/* EPIPE: it does not want (the rest of) its input */
			if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
			    written == in_len) {
				close(in_pipe[1]);
				in_pipe[1] = -1;
			}
		}
		if (pfd[0].revents) {
			bool keep = res->len < max;
			ssize_t n;

			if (keep)
				n = read(out_pipe[0], res->out + res->len,
					 max - res->len);
			else
				n = read(out_pipe[0], scratch, sizeof(scratch));
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n < 0) {
				r = -errno;
				goto out;
			}
			if (n == 0) {
				close(out_pipe[0]);
				out_pipe[0] = -1;
			} else if (keep) {
				res->len += (size_t)n;
			} else {
				res->truncated = true;
			}
		}
	}
	/* Its stdout is closed; what is left of its stdin goes unread. */
	if (in_pipe[1] >= 0) {
		close(in_pipe[1]);
		in_pipe[1] = -1;
	}
	for (;;) {
		pid_t w = waitpid(pid, &res->status, WNOHANG);

		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		if (stop_signal) {
			r = -EINTR;
			break;
		}
		poll(NULL, 0, 10);
	}
out:
	if (in_pipe[1] >= 0)
		close(in_pipe[1]);
	if (out_pipe[0] >= 0)
		close(out_pipe[0]);
	exec_abandon(pid);
	return r;
}

/* Says on stderr what went wrong with a run that is answered anyway. */
static void exec_warn(const char *cmd, const struct exec_result *res,
		      size_t max)
{
	if (WIFEXITED(res->status) && WEXITSTATUS(res->status) != 0)
		fprintf(stderr,
			"mqbusctl: serve: warning: '%s' exited with status "
			"%d; replying with its output anyway\n",
			cmd, WEXITSTATUS(res->status));
	else if (WIFSIGNALED(res->status))
		fprintf(stderr,
			"mqbusctl: serve: warning: '%s' was killed by signal "
			"%d; replying with its output anyway\n",
			cmd, WTERMSIG(res->status));
	if (res->truncated)
		fprintf(stderr,
			"mqbusctl: serve: warning: the output of '%s' was cut "
			"to %zu bytes, the largest reply that fits the "
			"queues\n",
			cmd, max);
}

/*
 * Answers requests until the count is reached or a stop signal comes.
 * Returns an exit status; the caller frees b.
 */
static int serve_loop(mqbus *b, const struct serve_opts *o)
{
	/* A reply carries no topic: all of a message but the header. */
	size_t max = mqbus_max_message(b);
	struct exec_result res = { 0 };
	unsigned long long answered = 0;
	int status = EXIT_OK;

	mqbus_set_connection_cb(b, ctl_connection, (void *)"serve");
	if (o->exec) {
		/* max + 1, so that malloc(0) never happens */
		res.out = malloc(max + 1);
		if (!res.out) {
			fprintf(stderr, "mqbusctl: serve: out of memory\n");
			return EXIT_ERROR;
		}
	}
	for (;;) {
		const void *data;
		mqbus_msg *m = NULL;
		size_t len = 0;
		int r;

		if (stop_signal)
			break;
		if (o->has_count && answered >= o->count)
			break;
		r = mqbus_receive(b, &m, RECEIVE_SLICE_MS);
		if (r == -ETIMEDOUT || r == -EINTR || r == -EAGAIN)
			continue;
		/* no daemon now: the library is reconnecting */
		if (r == -ENOTCONN && mqbus_reconnecting(b))
			continue;
		if (r < 0) {
			print_error(b, r, "receive");
			status = EXIT_ERROR;
			break;
		}
		/* Plain messages on the pattern are no business of ours. */
		if (!m || !mqbus_msg_is_request(m)) {
			mqbus_msg_free(m);
			continue;
		}

		data = mqbus_msg_payload(m, &len);
		if (o->exec) {
			struct exec_env env;

			exec_env_of(&env, o->bus, m);
			r = exec_run(o->exec, &env, data, len, max, &res);
			if (r == -EINTR) {
				mqbus_msg_free(m);
				break;
			}
			if (r < 0) {
				/* Maybe passing (EAGAIN, ENOMEM): the
				 * requester times out, we go on. */
				fprintf(stderr,
					"mqbusctl: serve: cannot run '%s': %s; "
					"request not answered\n",
					o->exec, strerror(-r));
				mqbus_msg_free(m);
				continue;
			}
			exec_warn(o->exec, &res, max);
			data = res.out;
			len = res.len;
		}
		r = mqbus_reply(b, m, data, len);
		mqbus_msg_free(m);
		if (r == -ENOTCONN && !mqbus_reconnecting(b)) {
			print_error(b, r, "reply");
			status = EXIT_ERROR;
			break;
		}
		/*
		 * One request we cannot answer (an echo too big for our
		 * queues, a tx queue that stayed full) is no reason to stop
		 * serving the others; its requester times out.
		 */
		if (r < 0) {
			print_error(b, r, "reply");
			fprintf(stderr, "mqbusctl: serve: request not "
					"answered\n");
			continue;
		}
		answered++;
	}
	free(res.out);
	return status;
}

static int cmd_serve(const struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "echo", no_argument, NULL, OPT_ECHO },
		{ "exec", required_argument, NULL, OPT_EXEC },
		{ "count", required_argument, NULL, 'n' },
		{ "group", required_argument, NULL, OPT_GROUP },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct serve_opts o = { 0 };
	unsigned long long v;
	bool echo = false;
	char name[64];
	mqbus *b;
	int c, r;

	command_argv0(argv, name, sizeof(name));
	while ((c = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_ECHO:
			echo = true;
			break;
		case OPT_EXEC:
			o.exec = optarg;
			break;
		case 'n':
			if (parse_number(optarg, ULLONG_MAX, &v) < 0)
				return bad_number("serve", "the count", optarg,
						  ULLONG_MAX);
			o.count = v;
			o.has_count = true;
			break;
		case OPT_GROUP:
			if (check_group("serve", optarg) != 0)
				return EXIT_USAGE;
			o.group = optarg;
			break;
		case 'h':
			usage_command(stdout, command_find("serve"));
			return EXIT_OK;
		default:
			return usage_error("serve");
		}
	}
	if (echo == !!o.exec) {
		fprintf(stderr, "mqbusctl: serve: give one of --echo and "
				"--exec CMD\n");
		return usage_error("serve");
	}
	if (o.exec && !*o.exec) {
		fprintf(stderr, "mqbusctl: serve: --exec needs a command\n");
		return usage_error("serve");
	}
	if (optind >= argc) {
		fprintf(stderr, "mqbusctl: serve: no pattern given\n");
		return usage_error("serve");
	}
	if (check_patterns("serve", argv + optind, argc - optind) != 0)
		return EXIT_USAGE;

	/* waitpid() needs SIGCHLD not ignored, whatever our parent set. */
	if (o.exec) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };

		sigemptyset(&dfl.sa_mask);
		sigaction(SIGCHLD, &dfl, NULL);
	}
	o.bus = bus_name(ctl);
	r = listen_start(ctl, "serve", argv + optind, argc - optind, o.group,
			 &b);
	if (!b)
		return r;
	r = serve_loop(b, &o);
	mqbus_free(b);
	return stop_signal && r != EXIT_OK ? EXIT_OK : r;
}

/*
 * Writes a text the daemon sent, as it is, ending it with a newline if it
 * lacks one (an empty text stays empty).  Frees text.  Returns an exit
 * status.
 */
static int put_text(const char *cmd, char *text)
{
	size_t len = text ? strlen(text) : 0;

	fputs(text ? text : "", stdout);
	if (len > 0 && text[len - 1] != '\n')
		putchar('\n');
	free(text);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "mqbusctl: %s: stdout: %s\n", cmd,
			strerror(errno));
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/*
 * The options of a command that takes none but --help.  Returns -1 to go
 * on, else the exit status (help printed, or a usage error reported).
 */
static int help_only(int argc, char **argv, const char *cmd)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage_command(stdout, command_find(cmd));
			return EXIT_OK;
		}
		return usage_error(cmd);
	}
	return -1;
}

/* "stats", "list", "topics" and "top" live in client/inspect.c. */
static int cmd_inspect(const struct ctl *ctl, int argc, char **argv)
{
	const char *cmd = argv[0];
	int r = ctl_check(ctl);

	if (r != EXIT_OK)
		return r;
	r = inspect_main(bus_name(ctl), argc, argv);

	if (r == INSPECT_HELP) {
		usage_command(stdout, command_find(cmd));
		return EXIT_OK;
	}
	return r;
}

/* --- timer ------------------------------------------------------------ */

static int timer_list(const struct ctl *ctl)
{
	char *text = NULL;
	mqbus *b;
	int r;

	r = ctl_connect(ctl, &b);
	if (r != EXIT_OK)
		return r;
	r = mqbus_timer_list(b, &text);
	if (r < 0) {
		print_error(b, r, "timer list");
		mqbus_free(b);
		return EXIT_ERROR;
	}
	mqbus_free(b);
	return put_text("timer", text);
}

static int timer_cancel(const struct ctl *ctl, uint64_t id)
{
	mqbus *b;
	int r;

	r = ctl_connect(ctl, &b);
	if (r != EXIT_OK)
		return r;
	r = mqbus_timer_cancel(b, id);
	if (r < 0)
		print_error(b, r, "timer cancel");
	mqbus_free(b);
	return r < 0 ? EXIT_ERROR : EXIT_OK;
}

/* "timer list" and "timer cancel ID": one command, two actions. */
static int cmd_timer(const struct ctl *ctl, int argc, char **argv)
{
	unsigned long long id;
	const char *action;
	char name[64];
	int c;

	command_argv0(argv, name, sizeof(name));
	c = help_only(argc, argv, "timer");
	if (c >= 0)
		return c;
	if (optind >= argc) {
		fprintf(stderr,
			"mqbusctl: timer: give 'list' or 'cancel ID'\n");
		return usage_error("timer");
	}
	action = argv[optind++];
	if (strcmp(action, "list") == 0) {
		if (optind < argc) {
			fprintf(stderr,
				"mqbusctl: timer: unexpected argument '%s'\n",
				argv[optind]);
			return usage_error("timer");
		}
		return timer_list(ctl);
	}
	if (strcmp(action, "cancel") != 0) {
		fprintf(stderr, "mqbusctl: timer: unknown action '%s'\n",
			action);
		return usage_error("timer");
	}
	if (optind >= argc) {
		fprintf(stderr, "mqbusctl: timer: cancel: no timer id given\n");
		return usage_error("timer");
	}
	if (optind + 1 < argc) {
		fprintf(stderr, "mqbusctl: timer: unexpected argument '%s'\n",
			argv[optind + 1]);
		return usage_error("timer");
	}
	if (parse_number(argv[optind], UINT64_MAX, &id) < 0)
		return bad_number("timer", "the timer id", argv[optind],
				  UINT64_MAX);
	return timer_cancel(ctl, id);
}

/* --- limits ------------------------------------------------------------ */

/* One line of the limits report: its text and its JSON value. */
struct field {
	const char *key;
	char text[96];
	char json[32];
};

#define LIMITS_FIELDS_MAX 24

struct report {
	struct field f[LIMITS_FIELDS_MAX];
	size_t n;
};

static struct field *report_add(struct report *rep, const char *key)
{
	struct field *f;

	if (rep->n >= LIMITS_FIELDS_MAX)
		return NULL;
	f = &rep->f[rep->n++];
	f->key = key;
	f->text[0] = '\0';
	f->json[0] = '\0';
	return f;
}

static void report_num(struct report *rep, const char *key,
		       unsigned long long v)
{
	struct field *f = report_add(rep, key);

	if (!f)
		return;
	snprintf(f->text, sizeof(f->text), "%llu", v);
	snprintf(f->json, sizeof(f->json), "%llu", v);
}

/* A value that is not a number: text as given, JSON as given (raw). */
static void report_raw(struct report *rep, const char *key, const char *text,
		       const char *json)
{
	struct field *f = report_add(rep, key);

	if (!f)
		return;
	snprintf(f->text, sizeof(f->text), "%s", text);
	snprintf(f->json, sizeof(f->json), "%s", json);
}

static void report_print(const struct report *rep, bool json)
{
	size_t width = 0;

	if (json) {
		putchar('{');
		for (size_t i = 0; i < rep->n; i++)
			printf("%s\"%s\":%s", i ? "," : "", rep->f[i].key,
			       rep->f[i].json);
		puts("}");
		return;
	}
	for (size_t i = 0; i < rep->n; i++)
		if (strlen(rep->f[i].key) > width)
			width = strlen(rep->f[i].key);
	for (size_t i = 0; i < rep->n; i++)
		printf("%s:%*s %s\n", rep->f[i].key,
		       (int)(width - strlen(rep->f[i].key)), "",
		       rep->f[i].text);
}

/* Reads one number from /proc/sys/fs/mqueue/NAME. */
static int read_proc_number(const char *name, unsigned long long *ret)
{
	char path[128], buf[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), MQUEUE_PROC "%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	close(fd);
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return parse_number(buf, ULLONG_MAX, ret);
}

static void report_proc(struct report *rep, const char *name,
			unsigned long long *ret)
{
	if (read_proc_number(name, ret) == 0) {
		report_num(rep, name, *ret);
	} else {
		*ret = 0;
		report_raw(rep, name, "unknown", "null");
	}
}

static void report_rlimit(struct report *rep, const char *key, rlim_t v)
{
	if (v == RLIM_INFINITY)
		report_raw(rep, key, "unlimited", "\"unlimited\"");
	else
		report_num(rep, key, (unsigned long long)v);
}

/* What /dev/mqueue shows about the queues in use. */
struct mq_usage {
	bool visible;              /* /dev/mqueue is an mqueue mount */
	unsigned long long bytes;  /* RLIMIT_MSGQUEUE charge of ours */
	unsigned long queues;      /* all queues, every user */
	unsigned long mine;        /* queues owned by getuid() */
	unsigned long unreadable;  /* of ours, not opened: not counted */
};

/*
 * Sums what this uid's queues are charged.  The kernel shows neither the
 * total nor a queue's attributes in the file system, so each queue of ours
 * is opened read-only (which changes nothing about it) to ask mq_getattr.
 */
static void mq_usage_scan(struct mq_usage *u)
{
	struct statfs sfs;
	struct dirent *de;
	uid_t uid = getuid();
	DIR *d;

	*u = (struct mq_usage){ 0 };
	if (statfs(MQUEUE_DIR, &sfs) < 0 ||
	    (unsigned long)sfs.f_type != MQUEUE_FS_MAGIC)
		return;
	d = opendir(MQUEUE_DIR);
	if (!d)
		return;
	u->visible = true;
	while ((de = readdir(d))) {
		char qname[NAME_MAX + 2];
		struct mq_attr attr;
		struct stat st;
		mqd_t q;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		u->queues++;
		if (st.st_uid != uid)
			continue;
		u->mine++;
		snprintf(qname, sizeof(qname), "/%s", de->d_name);
		q = mq_open(qname, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (q == (mqd_t)-1) {
			u->unreadable++;
			continue;
		}
		if (mq_getattr(q, &attr) == 0)
			u->bytes += mqbus_queue_bytes(attr.mq_maxmsg,
						      attr.mq_msgsize);
		else
			u->unreadable++;
		mq_close(q);
	}
	closedir(d);
}

static int cmd_limits(const struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	unsigned long long msg_max, msgsize_max, queues_max, msg_def, size_def;
	unsigned long long client_bytes;
	struct report rep = { .n = 0 };
	struct mq_usage u;
	struct rlimit rl;
	bool json = false, have_rl;
	long maxmsg = 0, msgsize = 0, prio_max;
	size_t max_message = 0;
	bool have_max;
	char name[64], text[96], jv[32];
	mqbus *b;
	int c, r;

	command_argv0(argv, name, sizeof(name));
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			usage_command(stdout, command_find("limits"));
			return EXIT_OK;
		default:
			return usage_error("limits");
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mqbusctl: limits: unexpected argument '%s'\n",
			argv[optind]);
		return usage_error("limits");
	}

	/* The size a client will use, as the library decides it. */
	r = ctl_new(ctl, &b);
	if (r != EXIT_OK)
		return r;
	r = mqbus_get_queue_size(b, &maxmsg, &msgsize);
	if (r < 0) {
		print_error(b, r, "queue size");
		mqbus_free(b);
		return EXIT_ERROR;
	}
	/* the largest message of the bus, from its daemon if one runs */
	mqbus_set_timeout(b, 2000);
	mqbus_set_reconnect(b, 0);
	have_max = mqbus_connect(b) == 0;
	if (have_max)
		max_message = mqbus_max_message(b);
	mqbus_free(b);

	report_proc(&rep, "msg_max", &msg_max);
	report_proc(&rep, "msgsize_max", &msgsize_max);
	report_proc(&rep, "queues_max", &queues_max);
	report_proc(&rep, "msg_default", &msg_def);
	report_proc(&rep, "msgsize_default", &size_def);

	prio_max = sysconf(_SC_MQ_PRIO_MAX);
	if (prio_max > 0)
		report_num(&rep, "mq_prio_max", (unsigned long long)prio_max);
	else
		report_raw(&rep, "mq_prio_max", "unknown", "null");

	have_rl = getrlimit(RLIMIT_MSGQUEUE, &rl) == 0;
	if (have_rl) {
		report_rlimit(&rep, "rlimit_msgqueue_soft", rl.rlim_cur);
		report_rlimit(&rep, "rlimit_msgqueue_hard", rl.rlim_max);
	} else {
		report_raw(&rep, "rlimit_msgqueue_soft", "unknown", "null");
		report_raw(&rep, "rlimit_msgqueue_hard", "unknown", "null");
	}

	mq_usage_scan(&u);
	if (!u.visible) {
		report_raw(&rep, "rlimit_msgqueue_used",
			   "unknown (mount -t mqueue none " MQUEUE_DIR
			   " to see it)",
			   "null");
		report_raw(&rep, "queues_in_use", "unknown", "null");
	} else {
		if (u.unreadable)
			snprintf(text, sizeof(text),
				 "%llu (and %lu queue%s not readable)", u.bytes,
				 u.unreadable, u.unreadable == 1 ? "" : "s");
		else
			snprintf(text, sizeof(text), "%llu", u.bytes);
		snprintf(jv, sizeof(jv), "%llu", u.bytes);
		report_raw(&rep, "rlimit_msgqueue_used", text, jv);
		report_num(&rep, "queues_owned", u.mine);
		if (queues_max)
			snprintf(text, sizeof(text), "%lu of %llu", u.queues,
				 queues_max);
		else
			snprintf(text, sizeof(text), "%lu", u.queues);
		snprintf(jv, sizeof(jv), "%lu", u.queues);
		report_raw(&rep, "queues_in_use", text, jv);
	}

	report_num(&rep, "client_queue_maxmsg", (unsigned long long)maxmsg);
	report_num(&rep, "client_queue_msgsize", (unsigned long long)msgsize);
	client_bytes = 2 * (unsigned long long)mqbus_queue_bytes(maxmsg,
								 msgsize);
	report_num(&rep, "client_bytes", client_bytes);

	if (!have_rl || client_bytes == 0) {
		report_raw(&rep, "clients_fit_remaining", "unknown", "null");
		report_raw(&rep, "clients_fit_total", "unknown", "null");
	} else if (rl.rlim_cur == RLIM_INFINITY) {
		report_raw(&rep, "clients_fit_remaining", "unlimited",
			   "\"unlimited\"");
		report_raw(&rep, "clients_fit_total", "unlimited",
			   "\"unlimited\"");
	} else {
		unsigned long long soft = rl.rlim_cur;

		if (u.visible)
			report_num(&rep, "clients_fit_remaining",
				   u.bytes >= soft ?
					   0 : (soft - u.bytes) / client_bytes);
		else
			report_raw(&rep, "clients_fit_remaining", "unknown",
				   "null");
		report_num(&rep, "clients_fit_total", soft / client_bytes);
	}
	if (have_max)
		report_num(&rep, "max_message",
			   (unsigned long long)max_message);
	else
		report_raw(&rep, "max_message",
			   "unknown (no daemon serves the bus)", "null");

	report_print(&rep, json);

	/*
	 * Point at the likely failure before it happens: an unprivileged
	 * mq_open beyond these system limits fails with EINVAL.  On stderr,
	 * so that stdout stays "name: value" lines.
	 */
	if ((msg_max && (unsigned long long)maxmsg > msg_max) ||
	    (msgsize_max && (unsigned long long)msgsize > msgsize_max))
		fprintf(stderr,
			"mqbusctl: warning: the client queue size (%ld x %ld) "
			"is above fs.mqueue.msg_max x fs.mqueue.msgsize_max "
			"(%llu x %llu): clients without CAP_SYS_RESOURCE "
			"will fail to connect; raise the limits with sysctl "
			"or lower "
			"MQBUS_QUEUE_MAXMSG / MQBUS_QUEUE_MSGSIZE\n",
			maxmsg, msgsize, msg_max, msgsize_max);

	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "mqbusctl: limits: stdout: %s\n",
			strerror(errno));
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/* "history" lives in client/history.c. */
static int cmd_history(const struct ctl *ctl, int argc, char **argv)
{
	int r = ctl_check(ctl);

	if (r != EXIT_OK)
		return r;
	r = history_main(bus_name(ctl), argc, argv);

	if (r == HISTORY_HELP) {
		usage_command(stdout, command_find("history"));
		return EXIT_OK;
	}
	return r;
}

static void usage(FILE *f);

static int cmd_help(const struct ctl *ctl, int argc, char **argv)
{
	const struct command *cmd;

	(void)ctl;
	if (argc < 2) {
		usage(stdout);
		return EXIT_OK;
	}
	if (argc > 2) {
		fprintf(stderr, "mqbusctl: help: unexpected argument '%s'\n",
			argv[2]);
		return usage_error("help");
	}
	cmd = command_find(argv[1]);
	if (!cmd) {
		fprintf(stderr, "mqbusctl: unknown command '%s'\n", argv[1]);
		return usage_error(NULL);
	}
	usage_command(stdout, cmd);
	return EXIT_OK;
}

/*
 * The commands.  Later ones (monitor) go here too; the help text is made
 * from this table, so it cannot forget one.
 */
static const struct command commands[] = {
	{
		.name = "pub",
		.run = cmd_pub,
		.args = "TOPIC [DATA|-|-l] [-p PRIO] [-k KEY] [--retain] "
			"[(--delay|--at) MS [--every MS]]",
		.summary = "Publish DATA ('-': stdin; none: empty) on TOPIC, "
			   "now or by a timer.",
		.options = "  -p, --priority=PRIO   ask for priority PRIO "
			   "(0..32767); the daemon clamps it\n"
			   "                        to the topic's ceiling "
			   "(default: the topic's default)\n"
			   "  -k, --key=KEY         the object the message is "
			   "about: on a coalescing\n"
			   "                        topic it replaces a "
			   "waiting message of the same KEY\n"
			   "      --retain          keep it as TOPIC's value "
			   "for later subscribers (an\n"
			   "                        empty DATA clears the "
			   "value)\n"
			   "      --delay=MS        have the daemon publish it "
			   "MS milliseconds from now;\n"
			   "                        print the timer's id\n"
			   "      --at=EPOCH_MS     have the daemon publish it "
			   "at this wall-clock time\n"
			   "                        (milliseconds since the "
			   "epoch); print the timer's id\n"
			   "      --every=MS        then again every MS "
			   "milliseconds, until cancelled\n"
			   "  -l, --lines           publish each line of stdin "
			   "as a message, as it\n"
			   "                        comes (no DATA; empty lines "
			   "are skipped)\n",
	},
	{
		.name = "sub",
		.run = cmd_sub,
		.args = "PATTERN... [-n COUNT] [-t MS] [--json] [--group NAME] "
			"[--origin]",
		.summary = "Print the messages on topics matching a PATTERN "
			   "('+', '#' wildcards).",
		.options = "  -n, --count=COUNT     exit 0 after COUNT "
			   "messages\n"
			   "  -t, --timeout=MS      exit 3 if MS milliseconds "
			   "pass first (counted from\n"
			   "                        when the subscriptions are "
			   "in place)\n"
			   "      --json            one JSON object per line "
			   "instead of 'TOPIC PAYLOAD'\n"
			   "      --group=NAME      subscribe in queue group "
			   "NAME: each message goes to\n"
			   "                        one subscriber of the "
			   "group, in turn\n"
			   "      --origin          show what the remote host "
			   "claims of the sender of a\n"
			   "                        message that came through "
			   "an MQTT bridge\n",
	},
	{
		.name = "call",
		.run = cmd_call,
		.args = "TOPIC [DATA|-] [-t MS] [-p PRIO] [--json]",
		.summary = "Send DATA as a request on TOPIC and print the "
			   "reply.",
		.options = "  -t, --timeout=MS      wait at most MS "
			   "milliseconds for the reply (default\n"
			   "                        5000); exit 3 if none "
			   "came, 4 if nobody takes\n"
			   "                        requests on TOPIC\n"
			   "  -p, --priority=PRIO   ask for priority PRIO "
			   "(0..32767), as pub does\n"
			   "      --json            print the reply and who "
			   "answered (uid, user, pid,\n"
			   "                        client id) as one JSON "
			   "object\n",
	},
	{
		.name = "serve",
		.run = cmd_serve,
		.args = "PATTERN... (--echo | --exec CMD) [-n COUNT] "
			"[--group NAME]",
		.summary = "Answer the requests on topics matching a "
			   "PATTERN.",
		.options = "      --echo            reply with the request's "
			   "payload\n"
			   "      --exec=CMD        run CMD with /bin/sh -c, "
			   "the request on its stdin and\n"
			   "                        MQBUS_TOPIC, MQBUS_KEY, "
			   "MQBUS_SENDER_UID, _PID, _USER\n"
			   "                        in its environment; reply "
			   "with its stdout\n"
			   "  -n, --count=COUNT     exit 0 after answering "
			   "COUNT requests\n"
			   "      --group=NAME      share the requests with "
			   "the other servers of queue\n"
			   "                        group NAME: each goes to "
			   "one of them\n",
	},
	{
		.name = "monitor",
		.run = cmd_monitor,
		.args = "[PATTERN...] [-n COUNT] [-t MS] [--json] [-q]",
		.summary = "Watch publishes, requests and replies on topics "
			   "matching a PATTERN.",
		.options = "  -n, --count=COUNT     exit 0 after COUNT "
			   "messages\n"
			   "  -t, --timeout=MS      exit 3 if MS milliseconds "
			   "pass first\n"
			   "      --json            one JSON object per line "
			   "with \"kind\" publish,\n"
			   "                        request or reply\n"
			   "  -q, --quiet           do not say on stderr when "
			   "the monitor is in place\n",
	},
	{
		.name = "timer",
		.run = cmd_timer,
		.args = "list | cancel ID",
		.summary = "List the timers of your uid, or cancel timer ID.",
		.options = NULL,
	},
	{
		.name = "stats",
		.run = cmd_inspect,
		.args = INSPECT_STATS_ARGS,
		.summary = INSPECT_STATS_SUMMARY,
		.options = INSPECT_STATS_OPTIONS,
	},
	{
		.name = "list",
		.run = cmd_inspect,
		.args = INSPECT_LIST_ARGS,
		.summary = INSPECT_LIST_SUMMARY,
		.options = INSPECT_LIST_OPTIONS,
	},
	{
		.name = "topics",
		.run = cmd_inspect,
		.args = INSPECT_TOPICS_ARGS,
		.summary = INSPECT_TOPICS_SUMMARY,
		.options = INSPECT_TOPICS_OPTIONS,
	},
	{
		.name = "top",
		.run = cmd_inspect,
		.args = INSPECT_TOP_ARGS,
		.summary = INSPECT_TOP_SUMMARY,
		.options = INSPECT_TOP_OPTIONS,
	},
	{
		.name = "limits",
		.run = cmd_limits,
		.args = "[--json]",
		.summary = "Print the kernel's queue limits and what a client "
			   "costs.",
		.options = "      --json            one JSON object instead of "
			   "'name: value' lines\n",
	},
	{
		.name = "history",
		.run = cmd_history,
		.args = HISTORY_ARGS,
		.summary = HISTORY_SUMMARY,
		.options = HISTORY_OPTIONS,
	},
	{
		.name = "help",
		.run = cmd_help,
		.args = "[COMMAND]",
		.summary = "Print this text, or the options of COMMAND.",
		.options = NULL,
	},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *command_find(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void usage_command(FILE *f, const struct command *cmd)
{
	if (!cmd)
		return;
	fprintf(f, "Usage: mqbusctl [-b BUS] %s%s%s\n\n%s\n", cmd->name,
		*cmd->args ? " " : "", cmd->args, cmd->summary);
	if (cmd->options && strcmp(cmd->name, "help") != 0)
		fprintf(f, "\nOptions:\n%s", cmd->options);
	if (strcmp(cmd->name, "help") != 0)
		fprintf(f, "%s  -h, --help            print this text\n",
			cmd->options ? "" : "\nOptions:\n");
}

static void usage(FILE *f)
{
	fputs("Usage: mqbusctl [-b BUS] COMMAND [ARG...]\n"
	      "\n"
	      "Publish and subscribe, send and answer requests on an mqbus "
	      "message bus,\nand show its state.\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %s%s%s\n        %s\n", commands[i].name,
			*commands[i].args ? " " : "", commands[i].args,
			commands[i].summary);
	fputs("\n"
	      "Options:\n"
	      "  -b, --bus=BUS   the bus to use (default: $MQBUS_BUS, else "
	      "\"mqbus\")\n"
	      "  -h, --help      print this text\n"
	      "      --version   print the version\n"
	      "\n"
	      "'mqbusctl help COMMAND' shows the options of COMMAND.\n"
	      "Exit status: 0 success, 1 error, 2 usage error, 3 timeout,\n"
	      "4 no responders (call).\n",
	      f);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bus", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ 0 },
	};
	static char progname[] = "mqbusctl";
	struct ctl ctl = { .bus = NULL };
	const struct command *cmd;
	int c;

	/* getopt's messages name argv[0]; say "mqbusctl" whatever the path. */
	if (argc < 1)
		return EXIT_USAGE;
	argv[0] = progname;

	/* '+': stop at the command; what follows belongs to it. */
	while ((c = getopt_long(argc, argv, "+b:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			ctl.bus = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case OPT_VERSION:
			printf("mqbusctl (mqbus) %s\n", PACKAGE_VERSION);
			return EXIT_OK;
		default:
			return usage_error(NULL);
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "mqbusctl: no command given\n");
		return usage_error(NULL);
	}
	cmd = command_find(argv[optind]);
	if (!cmd) {
		fprintf(stderr, "mqbusctl: unknown command '%s'\n",
			argv[optind]);
		return usage_error(NULL);
	}
	return cmd->run(&ctl, argc - optind, argv + optind);
}

/* SPDX-License-Identifier: MIT */
/*
 * main.c - mqbusd's command line.
 *
 * mqbusd [-b BUS] [-c FILE] [-s DIR] [--wake=notify|thread|poll]
 *        [--log=auto|journal|stderr] [-v]
 *
 * Runs in the foreground (systemd Type=notify).  Start-up failures are the
 * only fatal errors: one line on stderr and exit 1.  Usage errors, a bad
 * bus name among them, exit 2.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/server.h"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: mqbusd [OPTION]...\n"
		"Serve an mqbus message bus on POSIX message queues.\n\n"
		"  -b, --bus=BUS        bus name (default: $MQBUS_BUS or "
		"mqbus)\n"
		"  -c, --config=FILE    configuration file (mqbusd.conf(5))\n"
		"  -s, --state-dir=DIR  keep retained values and timers in "
		"DIR/BUS.state\n"
		"                       across restarts ($STATE_DIRECTORY, "
		"when set, wins)\n"
		"  -w, --wake=METHOD    wake-ups: notify (default), thread, "
		"poll\n"
		"      --log=TARGET     where to log: journal, stderr or auto "
		"(default:\n"
		"                       the journal if stderr is connected to "
		"it)\n"
		"  -v, --verbose        log every connection and refusal\n"
		"  -h, --help           show this help\n"
		"      --version        show the version\n");
}

/*
 * The bus name server_init() takes (1 to 200 of A-Z a-z 0-9 . _ -),
 * checked here so that a bad -b or MQBUS_BUS is a usage error (exit 2),
 * as it is for mqbusctl (mqbusd(8), EXIT STATUS).
 */
static bool bus_name_ok(const char *bus)
{
	size_t len = strlen(bus);

	return len >= 1 && len <= 200 &&
	       strspn(bus, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			   "abcdefghijklmnopqrstuvwxyz0123456789._-") == len;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bus", required_argument, NULL, 'b' },
		{ "config", required_argument, NULL, 'c' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "wake", required_argument, NULL, 'w' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "log", required_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	struct server_options opt = { .wake = WAKE_NOTIFY };
	struct server s;
	enum log_target log_target = LOG_TARGET_AUTO;
	char *error = NULL, *state_env = NULL;
	bool verbose = false, bus_from_env;
	int c, r;

	opt.bus = getenv("MQBUS_BUS");
	if (!opt.bus || !*opt.bus)
		opt.bus = "mqbus";
	bus_from_env = opt.bus != NULL && strcmp(opt.bus, "mqbus") != 0;
	while ((c = getopt_long(argc, argv, "b:c:s:w:vh", longopts, NULL)) !=
	       -1) {
		switch (c) {
		case 'b':
			opt.bus = optarg;
			bus_from_env = false;
			break;
		case 'c':
			opt.config_path = optarg;
			break;
		case 's':
			if (!*optarg) {
				fprintf(stderr,
					"mqbusd: -s needs a directory\n");
				return 2;
			}
			opt.state_dir = optarg;
			break;
		case 'w':
			if (wake_method_parse(optarg, &opt.wake) < 0) {
				fprintf(stderr,
					"mqbusd: unknown wake method '%s' "
					"(notify, thread or poll)\n",
					optarg);
				return 2;
			}
			break;
		case 'L':
			if (log_target_parse(optarg, &log_target) < 0) {
				fprintf(stderr,
					"mqbusd: unknown log target '%s' "
					"(journal, stderr or auto)\n",
					optarg);
				return 2;
			}
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("mqbusd %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mqbusd: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	if (!bus_name_ok(opt.bus)) {
		fprintf(stderr,
			"mqbusd: invalid bus name '%s'%s: use 1 to 200 of A-Z "
			"a-z 0-9 . _ -\n",
			opt.bus, bus_from_env ? " in MQBUS_BUS" : "");
		return 2;
	}

	/*
	 * systemd's StateDirectory= sets $STATE_DIRECTORY (a list split by
	 * ':' when it names more than one: the first is ours).
	 */
	if (getenv("STATE_DIRECTORY") && *getenv("STATE_DIRECTORY")) {
		state_env = strndup(getenv("STATE_DIRECTORY"),
				    strcspn(getenv("STATE_DIRECTORY"), ":"));
		if (!state_env) {
			fprintf(stderr, "mqbusd: out of memory\n");
			return 1;
		}
		opt.state_dir = state_env;
	}

	log_setup(log_target, opt.bus, verbose);
	r = server_init(&s, &opt, &error);
	if (r < 0) {
		log_errx("%s", error ? error : "start-up failed");
		free(error);
		server_deinit(&s);
		free(state_env);
		return 1;
	}
	r = server_run(&s);
	server_deinit(&s);
	free(state_env);
	return r;
}

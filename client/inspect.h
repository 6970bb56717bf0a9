/* SPDX-License-Identifier: MIT */
/*
 * inspect.h - "mqbusctl stats", "list", "topics" and "top": the bus's
 * counters, clients, subscriptions, retained values and timers, from the
 * daemon's STATS and QUERY answers.
 */
#ifndef MQBUS_INSPECT_H
#define MQBUS_INSPECT_H

/* What inspect_main() returns for --help: print the command's help. */
#define INSPECT_HELP (-1)

/*
 * Runs "mqbusctl stats|list|topics|top [OPTION]..." (argv[0] names which)
 * on bus (NULL: the library's default).  Prints to stdout, errors to
 * stderr; returns the exit status (0, 1 error, 2 usage error) or
 * INSPECT_HELP.
 */
int inspect_main(const char *bus, int argc, char **argv);

#define INSPECT_STATS_ARGS "[--json] [--topics] [--clients]"
#define INSPECT_STATS_SUMMARY "Print the daemon's counters."
#define INSPECT_STATS_OPTIONS                                                  \
	"      --json            one JSON object instead of 'key=value' "     \
	"lines\n"                                                              \
	"      --topics          also each topic's counters of this stats "   \
	"interval\n"                                                           \
	"      --clients         also each client's counters (as 'list')\n"

#define INSPECT_LIST_ARGS "[--json]"
#define INSPECT_LIST_SUMMARY "List the connected clients as a table."
#define INSPECT_LIST_OPTIONS                                                   \
	"      --json            a JSON array of objects instead of the "     \
	"table\n"

#define INSPECT_TOPICS_ARGS "[--json]"
#define INSPECT_TOPICS_SUMMARY                                                 \
	"List patterns with subscribers and groups, retained values, timers."
#define INSPECT_TOPICS_OPTIONS INSPECT_LIST_OPTIONS

#define INSPECT_TOP_ARGS "[--once] [-d MS]"
#define INSPECT_TOP_SUMMARY                                                    \
	"Show per-topic and per-client rates, refreshed every second."
#define INSPECT_TOP_OPTIONS                                                    \
	"      --once            print one frame, without terminal escapes, "  \
	"and exit\n"                                                           \
	"  -d, --delay=MS        sample every MS milliseconds (default "      \
	"1000)\n"

#endif

/* SPDX-License-Identifier: MIT */
/*
 * history.h - "mqbusctl history": the delivery stats of a bus over time,
 * read back from the journal.
 */
#ifndef MQBUS_HISTORY_H
#define MQBUS_HISTORY_H

/* What history_main() returns for --help: print the command's help. */
#define HISTORY_HELP (-1)

/*
 * Runs "mqbusctl history [OPTION]..." with argv[0] "history", for the bus
 * named bus (NULL: $MQBUS_BUS, else "mqbus").  Prints to stdout, errors to
 * stderr; returns the exit status (0, 1 error, 2 usage error) or
 * HISTORY_HELP.
 */
int history_main(const char *bus, int argc, char **argv);

/* The command's options, for "mqbusctl help history". */
#define HISTORY_ARGS "[--since T] [--until T] [--topic TOPIC] [--json] [-D DIR]"
#define HISTORY_SUMMARY                                                        \
	"Print the bus's delivery stats over time from the journal."
#define HISTORY_OPTIONS                                                        \
	"      --since=T         entries from time T on: 'YYYY-MM-DD "         \
	"[HH:MM[:SS]]',\n"                                                     \
	"                        '@EPOCH_SECONDS', 'now', or '-N' with s, "    \
	"min, h, d\n"                                                          \
	"      --until=T         entries up to time T\n"                       \
	"      --topic=TOPIC     the stats of TOPIC instead of the whole "     \
	"bus\n"                                                                \
	"      --json            one JSON object instead of the table and "    \
	"plot\n"                                                               \
	"  -D, --directory=DIR   read the journal files in DIR instead of "    \
	"the system's\n"
#endif

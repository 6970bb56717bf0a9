/* SPDX-License-Identifier: MIT */
/*
 * log.c - stderr logging with journald priority prefixes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "daemon/log.h"

static bool log_is_verbose;
static bool log_to_journal;

void log_init(bool verbose)
{
	log_is_verbose = verbose;
	log_to_journal = getenv("JOURNAL_STREAM") != NULL;
}

bool log_verbose(void)
{
	return log_is_verbose;
}

static void log_vline(int level, const char *fmt, va_list ap, int errnum)
{
	char line[1024];
	int n;

	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	if (errnum)
		snprintf(line + strlen(line), sizeof(line) - strlen(line),
			 ": %s", strerror(errnum));
	if (log_to_journal)
		fprintf(stderr, "<%d>%s\n", level, line);
	else
		fprintf(stderr, "mqbusd: %s\n", line);
}

#define LOG_FN(name, level, with_errno, cond)                                 \
	void name(const char *fmt, ...)                                       \
	{                                                                     \
		int saved = errno;                                            \
		va_list ap;                                                   \
		if (!(cond))                                                  \
			return;                                               \
		va_start(ap, fmt);                                            \
		log_vline(level, fmt, ap, with_errno ? saved : 0);            \
		va_end(ap);                                                   \
		errno = saved;                                                \
	}

LOG_FN(log_debug, LOG_DEBUG, 0, log_is_verbose)
LOG_FN(log_info, LOG_INFO, 0, 1)
LOG_FN(log_warnx, LOG_WARNING, 0, 1)
LOG_FN(log_warn, LOG_WARNING, 1, 1)
LOG_FN(log_errx, LOG_ERR, 0, 1)

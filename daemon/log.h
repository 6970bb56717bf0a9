/* SPDX-License-Identifier: MIT */
/*
 * log.h - the daemon's log.
 *
 * Lines go to stderr.  Under systemd (JOURNAL_STREAM set) each line carries
 * a "<N>" syslog-level prefix that journald turns into the entry's
 * priority; otherwise lines start with "mqbusd: ".  log_warn() appends the
 * errno text, log_warnx() does not, as in OpenBSD's daemons.
 */
#ifndef MQBUS_LOG_H
#define MQBUS_LOG_H

#include <stdbool.h>

void log_init(bool verbose);
bool log_verbose(void);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* like log_warnx, then ": " and strerror(errno) */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

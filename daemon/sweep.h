/* SPDX-License-Identifier: MIT */
/*
 * sweep.h - removing queues that dead clients of a bus left behind.
 *
 * POSIX queues outlive their processes.  A client that died while no
 * daemon ran leaves /BUS.<pid>.<n>.tx and .rx behind, charged to its uid's
 * RLIMIT_MSGQUEUE.  At start-up the daemon removes those whose pid is
 * gone.  This needs the mqueue filesystem mounted at /dev/mqueue.
 */
#ifndef MQBUS_SWEEP_H
#define MQBUS_SWEEP_H

#include <stdbool.h>
#include <sys/types.h>

#define SWEEP_MQUEUE_DIR "/dev/mqueue"

/*
 * If name (without the leading '/') is "BUS.<pid>.<n>.tx" or ".rx" for
 * this bus, stores pid and returns true.
 */
bool sweep_parse_name(const char *bus, const char *name, pid_t *ret_pid);

/*
 * Unlinks the client queues of bus under dir whose process is gone.
 * Returns the number removed, -ENOTSUP if dir is not an mqueue mount, or
 * another -errno.
 */
int sweep_stale(const char *dir, const char *bus);

typedef int (*sweep_live_fn)(const char *tx_name, pid_t pid, void *arg);

/*
 * Calls fn with the name ("/BUS.<pid>.<n>.tx") and pid of each tx queue
 * of the bus in dir whose process is alive: the clients of a previous
 * daemon.  Stops at fn's first negative return and returns it; else 0,
 * or -ENOTSUP/-errno as sweep_stale().
 */
int sweep_live(const char *dir, const char *bus, sweep_live_fn fn, void *arg);

#endif

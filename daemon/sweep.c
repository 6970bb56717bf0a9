/* SPDX-License-Identifier: MIT */
/*
 * sweep.c - start-up removal of queues left by dead clients.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <mqueue.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>

#include "daemon/log.h"
#include "daemon/sweep.h"

#define MQUEUE_FS_MAGIC 0x19800202

static bool parse_uint(const char **p, unsigned long *ret)
{
	const char *s = *p;
	unsigned long v = 0;

	if (!isdigit((unsigned char)*s))
		return false;
	while (isdigit((unsigned char)*s)) {
		if (v > (ULONG_MAX - 9) / 10)
			return false;
		v = v * 10 + (unsigned long)(*s++ - '0');
	}
	*p = s;
	*ret = v;
	return true;
}

bool sweep_parse_name(const char *bus, const char *name, pid_t *ret_pid)
{
	size_t blen = strlen(bus);
	unsigned long pid, n;
	const char *p;

	if (strncmp(name, bus, blen) != 0 || name[blen] != '.')
		return false;
	p = name + blen + 1;
	if (!parse_uint(&p, &pid) || *p++ != '.' || !parse_uint(&p, &n))
		return false;
	if (strcmp(p, ".tx") != 0 && strcmp(p, ".rx") != 0)
		return false;
	if (pid == 0 || pid > INT_MAX)
		return false;
	*ret_pid = (pid_t)pid;
	return true;
}

/* Calls fn with each queue name of the bus in dir (with its '/'). */
static int sweep_each(const char *dir, const char *bus,
		      int (*fn)(const char *name, pid_t pid, void *arg),
		      void *arg)
{
	struct statfs sfs;
	struct dirent *de;
	int r = 0;
	DIR *d;

	if (statfs(dir, &sfs) < 0)
		return -errno;
	if (sfs.f_type != MQUEUE_FS_MAGIC)
		return -ENOTSUP;
	d = opendir(dir);
	if (!d)
		return -errno;
	while (r >= 0 && (de = readdir(d))) {
		char path[NAME_MAX + 2];
		pid_t pid;

		if (!sweep_parse_name(bus, de->d_name, &pid))
			continue;
		snprintf(path, sizeof(path), "/%s", de->d_name);
		r = fn(path, pid, arg);
	}
	closedir(d);
	return r < 0 ? r : 0;
}

static int sweep_dead(const char *path, pid_t pid, void *arg)
{
	int *removed = arg;

	if (kill(pid, 0) == 0 || errno != ESRCH)
		return 0;
	if (mq_unlink(path) == 0) {
		log_info("removed stale queue %s of dead pid %d", path,
			 (int)pid);
		(*removed)++;
	} else if (errno != ENOENT) {
		log_warn("cannot remove stale queue %s", path);
	}
	return 0;
}

int sweep_stale(const char *dir, const char *bus)
{
	int removed = 0;
	int r = sweep_each(dir, bus, sweep_dead, &removed);

	return r < 0 ? r : removed;
}

struct sweep_live_ctx {
	sweep_live_fn fn;
	void *arg;
};

static int sweep_live_one(const char *path, pid_t pid, void *arg)
{
	struct sweep_live_ctx *ctx = arg;
	size_t len = strlen(path);

	if (len < 3 || strcmp(path + len - 3, ".tx") != 0)
		return 0;
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 0;
	return ctx->fn(path, pid, ctx->arg);
}

int sweep_live(const char *dir, const char *bus, sweep_live_fn fn, void *arg)
{
	struct sweep_live_ctx ctx = { fn, arg };

	return sweep_each(dir, bus, sweep_live_one, &ctx);
}

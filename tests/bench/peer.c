/* SPDX-License-Identifier: MIT */
/*
 * peer.c - what the two peers of mqbus-bench --peers share: their
 * directories, finding their programs, and the workers' entry.
 */
#include <errno.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/bench/peer.h"

const struct peer_ops *peer_ops_of(enum bench_peer peer)
{
	return peer == BENCH_PEER_DBUS ? &peer_dbus_ops : &peer_mqtt_ops;
}

int peer_dir_make(struct peer_broker *b, const char *what, char *why,
		  size_t len)
{
	snprintf(b->dir, sizeof(b->dir), "/tmp/mqbus-bench-%s.XXXXXX", what);
	if (!mkdtemp(b->dir)) {
		snprintf(why, len, "cannot make a directory for %s: %s", what,
			 strerror(errno));
		b->dir[0] = '\0';
		return -1;
	}
	/* the clients run as other uids and must reach the socket */
	if (chmod(b->dir, 0755) < 0) {
		snprintf(why, len, "chmod %s: %s", b->dir, strerror(errno));
		peer_dir_remove(b);
		return -1;
	}
	snprintf(b->log, sizeof(b->log), "%s/%s.log", b->dir, what);
	return 0;
}

void peer_dir_remove(struct peer_broker *b)
{
	char path[340];
	struct dirent *d;
	DIR *dir;

	if (!b->dir[0])
		return;
	dir = opendir(b->dir);
	while (dir && (d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", b->dir, d->d_name);
		unlink(path);
	}
	if (dir)
		closedir(dir);
	rmdir(b->dir);
	b->dir[0] = '\0';
}

void peer_version(enum bench_peer peer, char *buf, size_t len)
{
	char cmd[128];
	FILE *f;

	snprintf(buf, len, "?");
	snprintf(cmd, sizeof(cmd), "PATH=\"$PATH:/usr/sbin:/sbin\" %s 2>&1",
		 peer_ops_of(peer)->version);
	f = popen(cmd, "re");
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	pclose(f);
}

bool peer_find_program(const char *name, char *path, size_t len)
{
	const char *env = getenv("PATH");
	char dirs[4096], *save = NULL, *tok;

	snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin:/usr/bin",
		 env && *env ? env : "/usr/local/bin:/usr/bin:/bin");
	for (tok = strtok_r(dirs, ":", &save); tok;
	     tok = strtok_r(NULL, ":", &save)) {
		snprintf(path, len, "%s/%s", tok, name);
		if (access(path, X_OK) == 0)
			return true;
	}
	return false;
}

bool peer_drop(enum bench_peer peer, const void *buf)
{
	static int parsed; /* 0: not yet, 1: no drop, 2: drop */
	static unsigned long long seq;
	struct bench_payload p;

	if (!parsed) {
		const char *env = getenv("MQBUS_BENCH_PEER_DROP");
		const char *name = peer_ops_of(peer)->name;
		size_t n = strlen(name);

		parsed = 1;
		if (env && strncmp(env, name, n) == 0 && env[n] == ':' &&
		    sscanf(env + n + 1, "%llu", &seq) == 1)
			parsed = 2;
	}
	if (parsed == 1)
		return false;
	memcpy(&p, buf, sizeof(p));
	return p.seq == seq;
}

void peer_work(const struct bench_job *job)
{
	if (job->which_peer == BENCH_PEER_DBUS)
		peer_dbus_work(job);
	peer_mqtt_work(job);
}

/* SPDX-License-Identifier: MIT */
/*
 * peer-dbus.c - dbus-broker as a peer of mqbus-bench --peers.
 *
 * The broker: a private bus of its own, started by dbus-broker-launch
 * (which parses a dbus-daemon config file and runs dbus-broker as its
 * child) on a listening unix socket we make in a directory of our own and
 * hand over by socket activation (LISTEN_FDS), with a minimal config that
 * lets every uid connect, own names and send and receive everything.
 * Without systemd two things need care: the launcher connects to the bus
 * it launches as a client, which it finds through
 * DBUS_SESSION_BUS_ADDRESS (--scope user), and it insists on logging to
 * the journal's socket, /run/systemd/journal/socket.  When no journald
 * listens there and we are root, the launcher runs in a private mount
 * namespace in which a tmpfs covers /run/systemd (or /run) and a datagram
 * socket of ours, which nobody reads, is bound at that path; its log is
 * then lost, its errors still go to stderr (our log file).  The CPU time
 * measured is dbus-broker's, the launcher's child; the launcher only idles.
 *
 * The clients (sd-bus, from libsystemd):
 *   publisher   emits the signal org.mqbus.Bench.Data on /org/mqbus/bench,
 *               no destination (a broadcast), the payload as "ay";
 *   subscriber  installs the match rule of that signal (AddMatch, before
 *               the go) and takes each one in the match's callback,
 *               driving the connection with sd_bus_process()/sd_bus_wait();
 *   responder   owns org.mqbus.BenchEcho and answers the method call Ping
 *               ("ay") on /org/mqbus/bench with the payload it got;
 *   requester   sd_bus_call() of Ping, one at a time.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "tests/bench/peer.h"

#define DBUS_PATH "/org/mqbus/bench"
#define DBUS_IFACE "org.mqbus.Bench"
#define DBUS_ECHO_NAME "org.mqbus.BenchEcho"
#define JOURNAL_DIR "/run/systemd/journal"
#define JOURNAL_SOCKET JOURNAL_DIR "/socket"

/* ---------------------------------------------------------------- broker */

static const char dbus_config[] =
    "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus "
    "Configuration 1.0//EN\"\n"
    " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
    "<!-- mqbus-bench: a private bus for the peer rows -->\n"
    "<busconfig>\n"
    "  <type>session</type>\n"
    "  <auth>EXTERNAL</auth>\n"
    "  <policy context=\"default\">\n"
    "    <allow user=\"*\"/>\n"
    "    <allow own=\"*\"/>\n"
    "    <allow send_type=\"method_call\"/>\n"
    "    <allow send_type=\"signal\"/>\n"
    "    <allow send_requested_reply=\"true\" "
    "send_type=\"method_return\"/>\n"
    "    <allow send_requested_reply=\"true\" send_type=\"error\"/>\n"
    "    <allow receive_type=\"method_call\"/>\n"
    "    <allow receive_type=\"method_return\"/>\n"
    "    <allow receive_type=\"error\"/>\n"
    "    <allow receive_type=\"signal\"/>\n"
    "  </policy>\n"
    "</busconfig>\n";

static char launcher_path[256];

/* Whether a journald takes datagrams on its socket here. */
static bool journal_listens(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", JOURNAL_SOCKET);
	ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -1;
	if (fputs(text, f) < 0) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

static int dbus_prepare(struct peer_broker *b, char *why, size_t len)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char path[128], dummy[256];

	b->listen_fd = -1;
	if (!peer_find_program("dbus-broker-launch", launcher_path,
			       sizeof(launcher_path)) ||
	    !peer_find_program("dbus-broker", dummy, sizeof(dummy))) {
		snprintf(why, len,
			 "skipped: dbus-broker not installed (apt-get install "
			 "dbus-broker)");
		return -1;
	}
	b->fake_journal = !journal_listens();
	if (b->fake_journal && geteuid() != 0) {
		snprintf(why, len,
			 "skipped: dbus-broker-launch logs to the journal only,"
			 " no journald listens on %s, and only root can give "
			 "it one (a private mount namespace)",
			 JOURNAL_SOCKET);
		return -1;
	}
	if (peer_dir_make(b, "dbus", why, len) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/bus.conf", b->dir);
	if (write_file(path, dbus_config) < 0) {
		snprintf(why, len, "cannot write %s: %s", path,
			 strerror(errno));
		return -1;
	}
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/bus", b->dir);
	snprintf(b->addr, sizeof(b->addr), "unix:path=%s", a.sun_path);
	b->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (b->listen_fd < 0 ||
	    bind(b->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    chmod(a.sun_path, 0666) < 0 || listen(b->listen_fd, 256) < 0) {
		snprintf(why, len, "cannot listen on %s: %s", a.sun_path,
			 strerror(errno));
		return -1;
	}
	return 0;
}

static void die_exec(const char *what) __attribute__((noreturn));

static void die_exec(const char *what)
{
	fprintf(stderr, "mqbus-bench: dbus-broker: %s: %s\n", what,
		strerror(errno));
	_exit(127);
}

/*
 * A journal for the launcher where there is none: a private mount
 * namespace, a tmpfs over /run/systemd (or /run if there is no such
 * directory) and a datagram socket bound at the journal's path, kept open
 * (not close-on-exec) so that the launcher and the broker can connect to
 * it.
 */
static void journal_fake(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct stat st;
	const char *over =
	    stat("/run/systemd", &st) == 0 && S_ISDIR(st.st_mode)
		? "/run/systemd"
		: "/run";
	int fd;

	if (unshare(CLONE_NEWNS) < 0)
		die_exec("unshare(CLONE_NEWNS)");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die_exec("making / private");
	if (mount("tmpfs", over, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") <
	    0)
		die_exec("mounting a tmpfs on /run/systemd");
	if ((mkdir("/run/systemd", 0755) < 0 && errno != EEXIST) ||
	    mkdir(JOURNAL_DIR, 0755) < 0)
		die_exec("mkdir " JOURNAL_DIR);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", JOURNAL_SOCKET);
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die_exec("binding " JOURNAL_SOCKET);
	/* out of the way of fd 3, the listening socket */
	if (fcntl(fd, F_DUPFD, 10) < 0)
		die_exec("F_DUPFD");
	close(fd);
}

static void dbus_exec(struct peer_broker *b) __attribute__((noreturn));

static void dbus_exec(struct peer_broker *b)
{
	char conf[128], pid[32];

	snprintf(conf, sizeof(conf), "%s/bus.conf", b->dir);
	if (b->fake_journal)
		journal_fake();
	/* socket activation: the listening socket as fd 3 */
	if (b->listen_fd != 3 && dup2(b->listen_fd, 3) < 0)
		die_exec("dup2");
	if (fcntl(3, F_SETFD, 0) < 0)
		die_exec("F_SETFD");
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_FDS", "1", 1);
	setenv("LISTEN_PID", pid, 1);
	unsetenv("LISTEN_FDNAMES");
	/* the launcher is a client of the bus it launches */
	setenv("DBUS_SESSION_BUS_ADDRESS", b->addr, 1);
	execl(launcher_path, "dbus-broker-launch", "--scope", "user",
	      "--config-file", conf, (char *)NULL);
	die_exec(launcher_path);
}

/* The dbus-broker child of the launcher, or 0. */
static pid_t broker_child(pid_t launcher)
{
	char path[64], line[256], name[64] = "";
	pid_t found = 0;
	struct dirent *d;
	DIR *dir = opendir("/proc");

	while (dir && !found && (d = readdir(dir))) {
		pid_t pid = (pid_t)atoi(d->d_name);
		long ppid = -1;
		FILE *f;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			if (strncmp(line, "Name:", 5) == 0)
				sscanf(line + 5, "%63s", name);
			else if (strncmp(line, "PPid:", 5) == 0)
				ppid = strtol(line + 5, NULL, 10);
		}
		fclose(f);
		if (ppid == launcher && strcmp(name, "dbus-broker") == 0)
			found = pid;
	}
	if (dir)
		closedir(dir);
	return found;
}

/* Connects as a client and asks the bus for its id. */
static int bus_answers(const char *addr, char *why, size_t len)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	sd_bus *bus = NULL;
	int r;

	r = sd_bus_new(&bus);
	if (r >= 0)
		r = sd_bus_set_address(bus, addr);
	if (r >= 0)
		r = sd_bus_set_bus_client(bus, 1);
	if (r >= 0)
		r = sd_bus_set_method_call_timeout(bus, 10000000);
	if (r >= 0)
		r = sd_bus_start(bus);
	if (r >= 0)
		r = sd_bus_call_method(bus, "org.freedesktop.DBus",
				       "/org/freedesktop/DBus",
				       "org.freedesktop.DBus", "GetId", &err,
				       &reply, "");
	if (r < 0)
		snprintf(why, len, "the bus on %s does not answer: %s", addr,
			 err.message ? err.message : strerror(-r));
	sd_bus_error_free(&err);
	sd_bus_message_unref(reply);
	sd_bus_flush_close_unref(bus);
	return r < 0 ? -1 : 0;
}

static int dbus_ready(struct peer_broker *b, char *why, size_t len)
{
	/* the launcher has its copy */
	if (b->listen_fd >= 0) {
		close(b->listen_fd);
		b->listen_fd = -1;
	}
	b->cpu_pid = broker_child(b->pid);
	if (!b->cpu_pid)
		return 1;
	return bus_answers(b->addr, why, len);
}

static void dbus_cleanup(struct peer_broker *b)
{
	if (b->listen_fd >= 0)
		close(b->listen_fd);
	b->listen_fd = -1;
	peer_dir_remove(b);
}

const struct peer_ops peer_dbus_ops = {
	.name = "dbus-broker",
	.column = "dbus_broker",
	.version = "dbus-broker-launch --version",
	.prepare = dbus_prepare,
	.exec = dbus_exec,
	.ready = dbus_ready,
	.cleanup = dbus_cleanup,
};

/* ---------------------------------------------------------------- clients */

static sd_bus *dbus_connect(const struct bench_job *job)
{
	const char *unique;
	sd_bus *bus;
	int r;

	r = sd_bus_new(&bus);
	if (r >= 0)
		r = sd_bus_set_address(bus, job->peer_addr);
	if (r >= 0)
		r = sd_bus_set_bus_client(bus, 1);
	if (r >= 0)
		r = sd_bus_start(bus);
	/* waits for the answer to Hello */
	if (r >= 0)
		r = sd_bus_get_unique_name(bus, &unique);
	if (r < 0)
		work_fail("dbus: cannot connect to %s: %s", job->peer_addr,
			  strerror(-r));
	return bus;
}

/* Writes out what sd-bus still holds, so nothing waits behind a window. */
static void dbus_flush(sd_bus *bus)
{
	uint64_t queued = 0;
	int r = sd_bus_get_n_queued_write(bus, &queued);

	if (r >= 0 && queued > 0)
		r = sd_bus_flush(bus);
	if (r < 0)
		work_fail("dbus: cannot write: %s", strerror(-r));
}

/* Reads the "ay" payload of m. */
static const void *dbus_payload(sd_bus_message *m, size_t *len)
{
	const void *p = NULL;
	int r = sd_bus_message_read_array(m, 'y', &p, len);

	if (r < 0)
		work_fail("dbus: message without a byte array: %s",
			  strerror(-r));
	return p;
}

/* Processes what has come, or waits for more. */
static void dbus_turn(sd_bus *bus)
{
	int r = sd_bus_process(bus, NULL);

	if (r == 0)
		r = sd_bus_wait(bus, UINT64_MAX);
	if (r < 0 && r != -EINTR)
		work_fail("dbus: %s", strerror(-r));
}

static void dbus_send(void *ctx, const void *buf, size_t len)
{
	sd_bus *bus = ctx;
	sd_bus_message *m = NULL;
	int r;

	if (peer_drop(BENCH_PEER_DBUS, buf))
		return;
	r = sd_bus_message_new_signal(bus, &m, DBUS_PATH, DBUS_IFACE, "Data");
	if (r >= 0)
		r = sd_bus_message_append_array(m, 'y', buf, len);
	if (r >= 0)
		r = sd_bus_send(bus, m, NULL);
	sd_bus_message_unref(m);
	if (r < 0)
		work_fail("dbus: cannot emit a signal: %s", strerror(-r));
	dbus_flush(bus);
}

static void dbus_source(const struct bench_job *job)
{
	sd_bus *bus = dbus_connect(job);

	work_ready();
	work_source(dbus_send, bus);
	dbus_flush(bus);
	work_end();
	sd_bus_flush_close_unref(bus);
}

static bool sink_finished;

static int on_data(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	size_t len;
	const void *p = dbus_payload(m, &len);

	if (sink_finished)
		work_fail("dbus: subscriber: a signal after the last one");
	sink_finished = work_sink_take(p, len);
	return 1;
}

static void dbus_sink(const struct bench_job *job)
{
	sd_bus *bus = dbus_connect(job);
	int r;

	/* synchronous: the broker has the rule before we say we are set */
	r = sd_bus_match_signal(bus, NULL, NULL, DBUS_PATH, DBUS_IFACE, "Data",
				on_data, NULL);
	if (r < 0)
		work_fail("dbus: AddMatch: %s", strerror(-r));
	work_ready();
	while (!sink_finished)
		dbus_turn(bus);
	work_end();
	sd_bus_flush_close_unref(bus);
}

static bool echo_last;

static int on_ping(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
	sd_bus *bus = userdata;
	sd_bus_message *reply = NULL;
	const void *p;
	size_t len;
	int r;

	if (!sd_bus_message_is_method_call(m, DBUS_IFACE, "Ping"))
		return 0;
	p = dbus_payload(m, &len);
	echo_last = work_echo_take(p, len);
	r = sd_bus_message_new_method_return(m, &reply);
	if (r >= 0)
		r = sd_bus_message_append_array(reply, 'y', p, len);
	if (r >= 0)
		r = sd_bus_send(bus, reply, NULL);
	sd_bus_message_unref(reply);
	if (r < 0)
		work_fail("dbus: responder cannot answer: %s", strerror(-r));
	dbus_flush(bus);
	return 1;
}

static void dbus_echo(const struct bench_job *job)
{
	sd_bus *bus = dbus_connect(job);
	int r;

	r = sd_bus_request_name(bus, DBUS_ECHO_NAME, 0);
	if (r >= 0)
		r = sd_bus_add_object(bus, NULL, DBUS_PATH, on_ping, bus);
	if (r < 0)
		work_fail("dbus: responder: %s", strerror(-r));
	work_ready();
	while (!echo_last)
		dbus_turn(bus);
	work_end();
	sd_bus_flush_close_unref(bus);
}

struct dbus_pinger {
	sd_bus *bus;
	sd_bus_message *reply; /* the last one, until the next call */
};

static const void *dbus_exchange(void *ctx, const void *buf, size_t len,
				 size_t *ret_len)
{
	struct dbus_pinger *dp = ctx;
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL;
	int r;

	dp->reply = sd_bus_message_unref(dp->reply);
	r = sd_bus_message_new_method_call(dp->bus, &m, DBUS_ECHO_NAME,
					   DBUS_PATH, DBUS_IFACE, "Ping");
	if (r >= 0)
		r = sd_bus_message_append_array(m, 'y', buf, len);
	if (r >= 0)
		r = sd_bus_call(dp->bus, m, 0, &err, &dp->reply);
	sd_bus_message_unref(m);
	if (r < 0)
		work_fail("dbus: requester: Ping: %s",
			  err.message ? err.message : strerror(-r));
	sd_bus_error_free(&err);
	return dbus_payload(dp->reply, ret_len);
}

static void dbus_pinger(const struct bench_job *job)
{
	struct dbus_pinger dp = {.bus = dbus_connect(job)};

	work_ready();
	work_pinger(dbus_exchange, &dp);
	sd_bus_message_unref(dp.reply);
	work_end();
	sd_bus_flush_close_unref(dp.bus);
}

void peer_dbus_work(const struct bench_job *job)
{
	static const char *const names[] = {
		[JOB_PEER_SOURCE] = "mqb-dbus-pub",
		[JOB_PEER_SINK] = "mqb-dbus-sub",
		[JOB_PEER_ECHO] = "mqb-dbus-echo",
		[JOB_PEER_PINGER] = "mqb-dbus-req",
	};

	prctl(PR_SET_NAME, names[job->kind]);
	switch (job->kind) {
	case JOB_PEER_SOURCE:
		dbus_source(job);
		break;
	case JOB_PEER_SINK:
		dbus_sink(job);
		break;
	case JOB_PEER_ECHO:
		dbus_echo(job);
		break;
	default:
		dbus_pinger(job);
		break;
	}
	_exit(0);
}

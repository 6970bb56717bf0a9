/* SPDX-License-Identifier: MIT */
/*
 * mqbus-bench - what mqbusd costs, compared with what the kernel's queues
 * cost without it.
 *
 * One run measures, for payloads of 64, 1024 and 4000 bytes:
 *
 *   direct    producer -> queue -> consumer: the limit;
 *   relay     producer -> queue -> relay -> queue -> consumer, where the
 *             relay is the leanest possible daemon hop, for each wake-up
 *             method mqbusd has (notify, thread, poll); the consumer
 *             blocks in mq_receive() (relay) or waits in poll() as
 *             mqbus_receive() does (relay-poll), and pubsub is judged
 *             against the faster of the two;
 *   pubsub    publisher -> mqbusd -> subscriber through libmqbus, for each
 *             wake-up method;
 *   rtt-*     round trips: raw queues, through a relay (both ways through
 *             one relay), and through mqbusd (mqbus_request on
 *             "bench/ping", a responder answers with mqbus_reply);
 *   fanout    one publisher to 1, 4 and 16 subscribers;
 *   topics    pubsub with 10, 10000 and 100000 unrelated subscriptions;
 *   clients   1, 8 and 32 publishers to one subscriber;
 *   memory    mqbusd's resident memory with 32 publishers and 100000
 *             subscriptions;
 *   policy    pubsub and rtt on a daemon without a policy and on one with
 *             200 rules, in turns (pol0-*, pol200-*);
 *   scale     2000 clients with 5 subscriptions and a retained value
 *             each, in a private IPC namespace, as users mqbench1-8: the
 *             handshake rate, a late subscriber of '#', mqbusd's memory,
 *             the pubsub round trip between two of them against a daemon
 *             with only those two, and SUBSCRIBE beside 100000 retained
 *             values in other subtrees;
 *   peers     (--peers) pubsub at 64 and 1024 bytes, fanout to 16 and
 *             rtt at 64 bytes, each next to the same row through
 *             dbus-broker and through mosquitto, in turns (peer.h);
 *
 * and prints msgs/s, latency percentiles, the CPU time the daemon (or the
 * relay) spent per message, and each row's ratio to direct and to the
 * relay of the same wake-up method, with the project's targets marked
 * PASS or MISS.  Every message is checked (bench-work.c); the exit status
 * is 1 only when messages were lost, reordered or damaged or the run could
 * not be done, never for a missed target.
 *
 * This file is the orchestrator: options, processes, the rows, and the
 * report.  README.md next to it says how to read the figures.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <math.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/mqbus.h"
#include "tests/bench/bench.h"
#include "tests/bench/peer.h"

#define DEFAULT_DURATION_MS 1000
#define DEFAULT_UID_BASE 1990000000u
#define SETUP_TIMEOUT_MS 120000 /* 100000 subscriptions take a while */
#define STALL_MS 10000
#define MAX_JOBS 40
#define MAX_ROWS 128
#define MAX_TARGETS 64
#define MAX_CHILDREN 64
#define MAX_QUEUES 8
#define REPEAT_MAX 9
#define DEFAULT_REPEAT 3
#define QUICK_DURATION_MS 400
#define POLICY_RULES 200 /* of the pol200-* rows */

enum mode {
	MODE_DIRECT,
	MODE_RELAY,
	MODE_RELAY_POLL,
	MODE_PUBSUB,
	MODE_RTT_DIRECT,
	MODE_RTT_RELAY,
	MODE_RTT,
	MODE_FANOUT,
	MODE_TOPICS,
	MODE_CLIENTS,
	MODE_MEMORY,
	MODE_SCALE_RTT,
	MODE_SCALE_REQ,
	MODE_POL0_PUB,	 /* pubsub, no policy: the reference of ... */
	MODE_POL200_PUB, /* ... pubsub with a 200-rule policy */
	MODE_POL0_RTT,	 /* the same for rtt */
	MODE_POL200_RTT,
	MODE_DBUS_PUBSUB, /* the peers: pubsub, fanout and rtt rows ... */
	MODE_MQTT_PUBSUB,
	MODE_DBUS_FANOUT,
	MODE_MQTT_FANOUT,
	MODE_DBUS_RTT,
	MODE_MQTT_RTT, /* ... through dbus-broker and mosquitto */
	MODE_BR0_PUB,	 /* pubsub, no bridge: the reference of ... */
	MODE_BR1_PUB,	 /* ... pubsub with one idle MQTT bridge */
	MODE_BRIDGE_MQTT, /* mqbus publisher -> mqbusd -> bridge ->
			     mosquitto -> libmosquitto subscriber */
	MODE_COUNT,
};

static const char *const mode_names[] = {
	[MODE_DIRECT] = "direct",
	[MODE_RELAY] = "relay",
	[MODE_RELAY_POLL] = "relay-poll",
	[MODE_PUBSUB] = "pubsub",
	[MODE_RTT_DIRECT] = "rtt-direct",
	[MODE_RTT_RELAY] = "rtt-relay",
	[MODE_RTT] = "rtt",
	[MODE_FANOUT] = "fanout",
	[MODE_TOPICS] = "topics",
	[MODE_CLIENTS] = "clients",
	[MODE_MEMORY] = "memory",
	[MODE_SCALE_RTT] = "scale-rtt",
	[MODE_SCALE_REQ] = "scale-req",
	[MODE_POL0_PUB] = "pol0-pub",
	[MODE_POL200_PUB] = "pol200-pub",
	[MODE_POL0_RTT] = "pol0-rtt",
	[MODE_POL200_RTT] = "pol200-rtt",
	[MODE_DBUS_PUBSUB] = "dbus-pubsub",
	[MODE_MQTT_PUBSUB] = "mqtt-pubsub",
	[MODE_DBUS_FANOUT] = "dbus-fanout",
	[MODE_MQTT_FANOUT] = "mqtt-fanout",
	[MODE_DBUS_RTT] = "dbus-rtt",
	[MODE_MQTT_RTT] = "mqtt-rtt",
	[MODE_BR0_PUB] = "br0-pub",
	[MODE_BR1_PUB] = "br1-pub",
	[MODE_BRIDGE_MQTT] = "bridge-mqtt",
};

/* --only names a group: "rtt" selects the three round-trip modes */
static const char *const group_names[] = {
	"direct", "relay", "pubsub", "rtt", "fanout", "topics", "clients",
	"memory", "scale", "policy", "peers", "bridge",
};
#define GROUP_PEERS 10 /* only with --peers or --only peers */
#define GROUP_BRIDGE 11 /* only with --bridge or --only bridge */

#define N_GROUPS (sizeof(group_names) / sizeof(group_names[0]))

static struct {
	bool quick;
	bool json;
	int pin;
	uint64_t duration_ms;
	uint64_t count;
	unsigned repeat;
	const char *daemon;
	enum bench_wake wakes[BENCH_WAKE_COUNT];
	unsigned n_wakes;
	unsigned only; /* bit per group; 0: all */
	bool use_uids;
	uid_t uid_base;
	bool raw_poll; /* --raw-wait=poll */
	uint64_t scale_clients, scale_retained; /* 0: by --quick */
	bool peers; /* --peers */
	bool bridge; /* --bridge */
} opt = { .pin = -1, .repeat = DEFAULT_REPEAT };

/* One line of the report. */
struct row {
	enum mode mode;
	int wake; /* -1: none */
	size_t size;
	unsigned publishers;
	unsigned subscribers;
	long subscriptions; /* unrelated ones held; -1: no daemon */
	uint64_t messages;  /* published (round trips for rtt rows) */
	uint64_t deliveries; /* received, summed over the subscribers */
	double seconds;
	double msgs_per_s;
	double deliveries_per_s;
	double p50_us, p99_us; /* one-way, or the round trip */
	double cpu_us_per_msg, cpu_us_per_delivery;
	long rss_kib, hwm_kib;
	double ratio_direct, ratio_relay;
	/* pol200-*: the median over the repetitions of this row's speed
	 * relative to its pol0-* row's in the same repetition; NAN else */
	double pair_ratio;
	/* a row measured next to the peers (vs_peers): the median over
	 * the repetitions of its speed relative to each peer's row, and of
	 * its CPU per delivery relative to the peer broker's; NAN else */
	bool vs_peers;
	double ratio_peer[BENCH_PEER_COUNT];
	double cpu_ratio_peer[BENCH_PEER_COUNT];
	unsigned repeats;
	char targets[160];
};

struct target {
	bool pass;
	char text[200];
};

static struct row rows[MAX_ROWS];
static unsigned n_rows;
static struct target targets[MAX_TARGETS];
static unsigned n_targets;

static struct bench_ctl *ctl_row, *ctl_hold, *ctl_scale;
static pid_t self_pid;
static char tmp_dir[64];
static char cfg_path[128];
/* of every queue and bus this run makes: "mqbench<pid>-" */
static char prefix[32];
static unsigned n_made;
static FILE *out;  /* the table or the JSON rows */
static FILE *info; /* everything else */
static volatile sig_atomic_t interrupted;
/* the peers' brokers of this run (their directories, for cleanup()) */
static struct peer_broker peer_brokers[BENCH_PEER_COUNT];

/* ---------------------------------------------------------------- children */

struct child {
	pid_t pid;
	bool is_daemon;
};

static struct child children[MAX_CHILDREN];
static unsigned n_children;
static char queues[MAX_QUEUES][64];
static unsigned n_queues;

static void child_track(pid_t pid, bool is_daemon)
{
	if (n_children < MAX_CHILDREN)
		children[n_children++] = (struct child){ pid, is_daemon };
}

static void child_forget(pid_t pid)
{
	for (unsigned i = 0; i < n_children; i++) {
		if (children[i].pid == pid) {
			children[i] = children[--n_children];
			return;
		}
	}
}

/*
 * Waits up to ms for child pid; returns its wait status, or -1 if it is
 * still running.  A reaped child is forgotten.
 */
static int child_wait(pid_t pid, int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid || (r < 0 && errno == ECHILD)) {
			child_forget(pid);
			return r == pid ? st : 0;
		}
		if (now_ns() >= end)
			return -1;
		usleep(2000);
	}
}

/* Ends a child of ours by its pid: a daemon politely first. */
static void child_end(pid_t pid, bool polite)
{
	if (polite) {
		kill(pid, SIGTERM);
		if (child_wait(pid, 10000) != -1)
			return;
	}
	kill(pid, SIGKILL);
	child_wait(pid, 10000);
}

/* Removes every queue whose name starts with what, if /dev/mqueue shows
 * them; the names we know are removed in any case. */
static void queues_sweep(const char *what)
{
	size_t len = strlen(what);
	struct dirent *d;
	char name[300];
	DIR *dir;

	dir = opendir("/dev/mqueue");
	if (!dir)
		return;
	while ((d = readdir(dir))) {
		if (strncmp(d->d_name, what, len) != 0)
			continue;
		snprintf(name, sizeof(name), "/%s", d->d_name);
		mq_unlink(name);
	}
	closedir(dir);
}

static void mq_unlink_name(const char *bus)
{
	char name[80];

	snprintf(name, sizeof(name), "/%s", bus);
	mq_unlink(name);
}

static void cleanup(void)
{
	char path[340];

	if (getpid() != self_pid)
		return;
	/* workers first, so that daemons see them go */
	for (unsigned i = n_children; i-- > 0;)
		if (!children[i].is_daemon)
			child_end(children[i].pid, false);
	while (n_children > 0)
		child_end(children[0].pid, children[0].is_daemon);
	for (unsigned i = 0; i < BENCH_PEER_COUNT; i++)
		peer_dir_remove(&peer_brokers[i]);
	for (unsigned i = 0; i < n_queues; i++)
		mq_unlink(queues[i]);
	n_queues = 0;
	if (prefix[0])
		queues_sweep(prefix);
	if (tmp_dir[0]) {
		DIR *dir = opendir(tmp_dir);
		struct dirent *d;

		while (dir && (d = readdir(dir))) {
			if (d->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", tmp_dir,
				 d->d_name);
			unlink(path);
		}
		if (dir)
			closedir(dir);
		rmdir(tmp_dir);
		tmp_dir[0] = '\0';
	}
}

static void fatal(const char *fmt, ...) __attribute__((noreturn))
__attribute__((format(printf, 1, 2)));

static void fatal(const char *fmt, ...)
{
	va_list ap;

	fflush(out);
	fprintf(stderr, "mqbus-bench: FAILED: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void on_signal(int sig)
{
	interrupted = sig;
}

static void check_interrupted(void)
{
	if (interrupted) {
		fprintf(stderr, "mqbus-bench: interrupted by signal %d\n",
			(int)interrupted);
		exit(130);
	}
}

/*
 * What every forked process does first: default signals, its own uid
 * when we run as root (each process's queues are then charged to its
 * own RLIMIT_MSGQUEUE budget, and none to root's, which the machine's
 * other tests share), and death with the orchestrator.
 */
static void child_setup(struct bench_ctl *ctl, uid_t uid, bool switch_uid)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t none;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (switch_uid && opt.use_uids) {
		if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
		    setresuid(uid, uid, uid) < 0) {
			bench_fail(ctl, "cannot switch to uid %u: %s",
				   (unsigned)uid, strerror(errno));
			_exit(1);
		}
	}
	/* after the uid change, which clears it */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != self_pid)
		_exit(1);
}

static pid_t spawn_job(const struct bench_job *job, uid_t uid)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		child_setup(job->ctl, uid, true);
		bench_work(job);
	}
	child_track(pid, false);
	return pid;
}

/* ---------------------------------------------------------------- /proc */

/* utime + stime of pid, in clock ticks, all threads, dead ones too */
static long long proc_cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	/* after the name: state and 10 more fields, then utime, stime */
	if (!p || sscanf(p + 2,
			 "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
			 "%llu",
			 &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

/* A "Vm...:   N kB" line of /proc/pid/status, in KiB; -1 if absent. */
static long proc_status_kib(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

static long read_long_file(const char *path, long dflt)
{
	FILE *f = fopen(path, "re");
	long v;

	if (!f)
		return dflt;
	if (fscanf(f, "%ld", &v) != 1)
		v = dflt;
	fclose(f);
	return v;
}

/* ---------------------------------------------------------------- queues */

static uid_t raw_uid(void)
{
	return opt.uid_base;
}

/*
 * Creates the raw queues of a row.  They are made by a child running as
 * the row's uid, so they are charged to it and the workers of that uid
 * may open them (mode 0600).
 */
static void raw_queues_make(char names[][64], unsigned n)
{
	pid_t pid;
	int st;

	n_queues = 0;
	for (unsigned i = 0; i < n; i++) {
		snprintf(names[i], 64, "/%sr%u-%u", prefix, ++n_made, i);
		snprintf(queues[n_queues++], sizeof(queues[0]), "%s", names[i]);
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		struct mq_attr a = {
			.mq_maxmsg = BENCH_MAXMSG,
			.mq_msgsize = BENCH_MSGSIZE,
		};

		child_setup(ctl_row, raw_uid(), true);
		for (unsigned i = 0; i < n; i++) {
			mqd_t q = mq_open(names[i],
					  O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
					  0600, &a);

			if (q == (mqd_t)-1)
				_exit(errno);
			mq_close(q);
		}
		_exit(0);
	}
	child_track(pid, false);
	st = child_wait(pid, 10000);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		int err = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : 0;

		fatal("cannot create queues of %d x %d bytes: %s%s",
		      BENCH_MAXMSG, BENCH_MSGSIZE,
		      err ? strerror(err) : "helper failed",
		      err == EMFILE ? " (RLIMIT_MSGQUEUE of this uid used up: "
				      "other processes of the uid hold queues;"
				      " run as root, or raise ulimit -q)"
				    : "");
	}
}

static void raw_queues_remove(void)
{
	for (unsigned i = 0; i < n_queues; i++)
		mq_unlink(queues[i]);
	n_queues = 0;
}

/*
 * Whether a row of n_queues queues fits RLIMIT_MSGQUEUE.  Running as root,
 * every worker has its own uid and budget; otherwise everything shares
 * ours.
 */
static bool row_fits(unsigned n_queues_needed, char *why, size_t len)
{
	struct rlimit rl;
	size_t need;

	if (opt.use_uids)
		return true;
	if (getrlimit(RLIMIT_MSGQUEUE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return true;
	need =
	    n_queues_needed * mqbus_queue_bytes(BENCH_MAXMSG, BENCH_MSGSIZE) +
	    mqbus_queue_bytes(10, 512);
	if (need <= rl.rlim_cur)
		return true;
	snprintf(why, len,
		 "skipped: needs %zu KiB of queues, RLIMIT_MSGQUEUE is %llu "
		 "KiB (run as root, which gives each process its own uid, or "
		 "raise ulimit -q)",
		 need / 1024, (unsigned long long)rl.rlim_cur / 1024);
	return false;
}

/* ---------------------------------------------------------------- daemon */

struct daemon {
	pid_t pid;
	char bus[48];
	enum bench_wake wake;
	char log[128];
};

static void daemon_print_log(const struct daemon *d)
{
	char line[512];
	FILE *f = fopen(d->log, "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		fprintf(stderr, "  mqbusd: %s", line);
	fclose(f);
}

/*
 * Starts mqbusd with the config file cfg on a bus of its own and waits
 * until it serves it.
 */
static void daemon_start_cfg(struct daemon *d, enum bench_wake wake,
			     const char *cfg)
{
	struct rlimit rl;
	char name[64], wake_arg[32];
	uint64_t end;
	pid_t pid;

	snprintf(d->bus, sizeof(d->bus), "%sd%u", prefix, ++n_made);
	snprintf(d->log, sizeof(d->log), "%s/mqbusd.%u.log", tmp_dir, n_made);
	snprintf(wake_arg, sizeof(wake_arg), "--wake=%s",
		 bench_wake_name(wake));
	d->wake = wake;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int nul = open("/dev/null", O_RDWR);

		child_setup(ctl_row, 0, false);
		/* two queues and a pidfd per client */
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		    rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		if (fd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 ||
		    dup2(fd, 2) < 0)
			_exit(126);
		/* nothing of a service manager around us applies to it */
		unsetenv("NOTIFY_SOCKET");
		unsetenv("JOURNAL_STREAM");
		unsetenv("WATCHDOG_USEC");
		execl(opt.daemon, "mqbusd", "-b", d->bus, wake_arg, "-c", cfg,
		      (char *)NULL);
		fprintf(stderr, "cannot run %s: %s\n", opt.daemon,
			strerror(errno));
		_exit(127);
	}
	child_track(pid, true);
	d->pid = pid;

	/* it serves the bus once the announce queue exists */
	snprintf(name, sizeof(name), "/%s", d->bus);
	end = now_ns() + 10000000000ull;
	for (;;) {
		mqd_t q = mq_open(name, O_WRONLY | O_CLOEXEC);
		int st;

		if (q != (mqd_t)-1) {
			mq_close(q);
			return;
		}
		st = child_wait(pid, 0);
		if (st != -1) {
			daemon_print_log(d);
			fatal("mqbusd (%s) exited at start with status %d",
			      opt.daemon, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		}
		if (now_ns() > end) {
			daemon_print_log(d);
			fatal("mqbusd did not create %s within 10 s", name);
		}
		check_interrupted();
		usleep(5000);
	}
}

static void daemon_start(struct daemon *d, enum bench_wake wake)
{
	daemon_start_cfg(d, wake, cfg_path);
}

static void daemon_stop(struct daemon *d)
{
	char what[64];

	child_end(d->pid, true);
	/* what a client or the daemon left behind: "BUS" and "BUS.*" */
	mq_unlink_name(d->bus);
	snprintf(what, sizeof(what), "%s.", d->bus);
	queues_sweep(what);
	d->pid = 0;
}

/* ---------------------------------------------------------------- a row */

/* What one row measures. */
struct spec {
	enum mode mode;
	int wake;
	size_t size;
	unsigned pubs, subs;
	long held;
	const struct daemon *d; /* bus rows */
	unsigned clients;	/* scale-rtt: the round trip's two are
				   clients - 2 and clients - 1 */
	const struct peer_broker *peer; /* peer rows */
	bool vs_peers; /* a bus row measured next to peer rows */
	/* bridge-mqtt: the broker the daemon's bridge forwards to, whose
	 * client the subscriber is */
	const struct peer_broker *remote;
};

struct plan {
	struct bench_job jobs[MAX_JOBS];
	uid_t uids[MAX_JOBS];
	bool finite[MAX_JOBS];
	unsigned n;
	unsigned n_streams, n_sinks;
	int relay;    /* index of the relay job, or -1 */
	pid_t daemon; /* mqbusd (or a peer's broker), or 0 */
	pid_t cpu_pid; /* whose CPU is measured, if not the daemon's */
	char what[96]; /* the row, for messages */
};

struct meas {
	uint64_t messages;
	uint64_t deliveries;
	double seconds;
	struct hist h;
	double cpu_s; /* of the middle process; NAN if none */
	long rss_kib, hwm_kib;
};

static void plan_init(struct plan *p, const struct spec *sp)
{
	memset(p, 0, sizeof(*p));
	p->relay = -1;
	snprintf(p->what, sizeof(p->what), "%s %s %zu B, %u to %u",
		 mode_names[sp->mode],
		 sp->wake >= 0 ? bench_wake_name(sp->wake) : "-", sp->size,
		 sp->pubs, sp->subs);
}

static uint64_t row_duration_ns(void)
{
	return opt.duration_ms * 1000000ull;
}

/* Adds a process to the row, to run as uid (when we are root). */
static struct bench_job *plan_add(struct plan *p, enum job_kind kind, uid_t uid)
{
	struct bench_job *j = &p->jobs[p->n];

	if (p->n == MAX_JOBS)
		fatal("too many processes in one row");
	memset(j, 0, sizeof(*j));
	j->kind = kind;
	j->ctl = ctl_row;
	j->duration_ns = row_duration_ns();
	p->uids[p->n] = uid;
	p->finite[p->n] = kind != JOB_RELAY;
	if (kind == JOB_RELAY)
		p->relay = (int)p->n;
	p->n++;
	return j;
}

static uint64_t row_progress(const struct plan *p)
{
	uint64_t sum = 0;

	for (unsigned s = 0; s < p->n_streams; s++)
		sum += atomic_load(&ctl_row->stream[s].sent);
	for (unsigned k = 0; k < p->n_sinks; k++)
		for (unsigned s = 0; s < p->n_streams; s++)
			sum += atomic_load(&ctl_row->sink[k].acked[s]);
	return sum;
}

static void row_failed(const struct plan *p, const char *why)
{
	if (atomic_load(&ctl_row->failed) == 2)
		fatal("%s: %s", p->what, ctl_row->error);
	fatal("%s: %s", p->what, why);
}

/*
 * Looks at everything that can go wrong while a row waits: a worker's
 * failure, a process that died, no progress, a signal.
 */
static void row_watch(const struct plan *p, const pid_t *pids, bool *gone)
{
	char why[200];

	check_interrupted();
	if (atomic_load(&ctl_row->failed) == 2)
		row_failed(p, "");
	for (unsigned i = 0; i < p->n; i++) {
		int st;

		if (gone[i])
			continue;
		st = child_wait(pids[i], 0);
		if (st == -1)
			continue;
		gone[i] = true;
		usleep(10000); /* its last words may be on their way */
		if (atomic_load(&ctl_row->failed) == 2)
			row_failed(p, "");
		if (WIFSIGNALED(st))
			snprintf(why, sizeof(why), "a worker died of signal %d",
				 WTERMSIG(st));
		else
			snprintf(why, sizeof(why),
				 "a worker exited early with status %d",
				 WEXITSTATUS(st));
		row_failed(p, why);
	}
	if (p->daemon && child_wait(p->daemon, 0) != -1)
		row_failed(p, p->cpu_pid ? "the peer's broker died"
					 : "mqbusd died");
}

/*
 * Runs a row: forks its processes, waits until they are set up, reads the
 * middle process's CPU time, lets them go, waits until every message has
 * arrived, reads the CPU time again, and lets them tear down.
 */
static void plan_run(struct plan *p, struct meas *m)
{
	pid_t pids[MAX_JOBS];
	bool gone[MAX_JOBS] = {false};
	unsigned n_finite = 0;
	uint64_t start, last_change, progress = 0, t_first = UINT64_MAX,
				     t_last = 0;
	pid_t middle = 0;
	long long cpu0 = -1, cpu1 = -1;

	memset(ctl_row, 0, sizeof(*ctl_row));
	memset(m, 0, sizeof(*m));
	for (unsigned i = 0; i < p->n; i++) {
		p->jobs[i].ctl = ctl_row;
		pids[i] = spawn_job(&p->jobs[i], p->uids[i]);
		if (p->finite[i])
			n_finite++;
	}
	middle = p->relay >= 0 ? pids[p->relay]
	       : p->cpu_pid   ? p->cpu_pid
			      : p->daemon;

	start = now_ns();
	while (atomic_load(&ctl_row->ready) < p->n) {
		uint32_t v = atomic_load(&ctl_row->ready);

		row_watch(p, pids, gone);
		if (now_ns() - start > SETUP_TIMEOUT_MS * 1000000ull)
			row_failed(p, "workers not set up in time");
		if (v < p->n)
			futex_wait(&ctl_row->ready, v, 100);
	}

	if (middle)
		cpu0 = proc_cpu_ticks(middle);
	atomic_store(&ctl_row->go, 1);
	futex_wake(&ctl_row->go);

	last_change = now_ns();
	while (atomic_load(&ctl_row->done) < n_finite) {
		uint32_t v = atomic_load(&ctl_row->done);
		uint64_t now = now_ns(), pr;

		row_watch(p, pids, gone);
		pr = row_progress(p);
		if (pr != progress) {
			progress = pr;
			last_change = now;
		} else if (now - last_change > STALL_MS * 1000000ull) {
			char why[300];
			int len;

			len = snprintf(why, sizeof(why),
				       "no message moved for %d s (lost?):",
				       STALL_MS / 1000);
			for (unsigned s = 0; s < p->n_streams && s < 4; s++)
				len += snprintf(
				    why + len, sizeof(why) - len,
				    " stream %u sent %llu, sink 0 has %llu;", s,
				    (unsigned long long)ctl_row->stream[s].sent,
				    (unsigned long long)ctl_row->sink[0]
					.acked[s]);
			row_failed(p, why);
		}
		if (v < n_finite)
			futex_wait(&ctl_row->done, v, 100);
	}
	if (middle) {
		cpu1 = proc_cpu_ticks(middle);
		m->rss_kib = proc_status_kib(middle, "VmRSS");
		m->hwm_kib = proc_status_kib(middle, "VmHWM");
	}
	if (atomic_load(&ctl_row->failed))
		row_failed(p, "");

	atomic_store(&ctl_row->quit, 1);
	futex_wake(&ctl_row->quit);
	for (unsigned i = 0; i < p->n; i++) {
		int st;

		if (gone[i])
			continue;
		if (!p->finite[i]) {
			child_end(pids[i], false);
			continue;
		}
		st = child_wait(pids[i], 10000);
		if (st == -1) {
			child_end(pids[i], false);
			row_failed(p, "a worker did not exit");
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			row_failed(p, "a worker failed while closing");
	}

	for (unsigned s = 0; s < p->n_streams; s++) {
		m->messages += ctl_row->stream[s].count;
		if (ctl_row->stream[s].t_first < t_first)
			t_first = ctl_row->stream[s].t_first;
	}
	for (unsigned k = 0; k < p->n_sinks; k++) {
		m->deliveries += ctl_row->sink[k].received;
		if (ctl_row->sink[k].t_last > t_last)
			t_last = ctl_row->sink[k].t_last;
		hist_merge(&m->h, &ctl_row->hist[k]);
	}
	m->seconds = t_last > t_first ? (double)(t_last - t_first) / 1e9 : 0;
	m->cpu_s = NAN;
	if (middle && cpu0 >= 0 && cpu1 >= cpu0)
		m->cpu_s = (double)(cpu1 - cpu0) / (double)sysconf(_SC_CLK_TCK);
	if (m->seconds <= 0 || m->messages == 0)
		row_failed(p, "nothing was measured");
}

/* The unrelated subscriptions, held by one more client of the daemon. */
static pid_t holder_start(const struct daemon *d, unsigned n, uint64_t *ns)
{
	struct bench_job j = {
	    .kind = JOB_BUS_HOLDER, .ctl = ctl_hold, .n_patterns = n};
	uint64_t start = now_ns();
	pid_t pid;

	memset(ctl_hold, 0, sizeof(*ctl_hold));
	snprintf(j.bus, sizeof(j.bus), "%s", d->bus);
	pid = spawn_job(&j, opt.uid_base + MAX_JOBS);
	while (atomic_load(&ctl_hold->ready) == 0) {
		check_interrupted();
		if (atomic_load(&ctl_hold->failed) == 2)
			fatal("subscriptions holder: %s", ctl_hold->error);
		if (child_wait(pid, 0) != -1)
			fatal("subscriptions holder died");
		if (child_wait(d->pid, 0) != -1)
			fatal("mqbusd died while the holder subscribed");
		if (now_ns() - start > SETUP_TIMEOUT_MS * 1000000ull)
			fatal("%u subscriptions not made in %d s", n,
			      SETUP_TIMEOUT_MS / 1000);
		futex_wait(&ctl_hold->ready, 0, 100);
	}
	*ns = ctl_hold->setup_ns;
	return pid;
}

static void holder_stop(pid_t pid)
{
	atomic_store(&ctl_hold->quit, 1);
	futex_wake(&ctl_hold->quit);
	if (child_wait(pid, 30000) == -1)
		child_end(pid, false);
}

/* ---------------------------------------------------------------- report */

static bool group_on(enum mode m)
{
	/* the bit of each mode in opt.only: its place in group_names */
	static const unsigned group_of[] = {
		[MODE_DIRECT] = 0,
		[MODE_RELAY] = 1,
		[MODE_RELAY_POLL] = 1,
		[MODE_PUBSUB] = 2,
		[MODE_RTT_DIRECT] = 3,
		[MODE_RTT_RELAY] = 3,
		[MODE_RTT] = 3,
		[MODE_FANOUT] = 4,
		[MODE_TOPICS] = 5,
		[MODE_CLIENTS] = 6,
		[MODE_MEMORY] = 7,
		[MODE_SCALE_RTT] = 8,
		[MODE_SCALE_REQ] = 8,
		[MODE_POL0_PUB] = 9,
		[MODE_POL200_PUB] = 9,
		[MODE_POL0_RTT] = 9,
		[MODE_POL200_RTT] = 9,
		[MODE_DBUS_PUBSUB] = GROUP_PEERS,
		[MODE_MQTT_PUBSUB] = GROUP_PEERS,
		[MODE_DBUS_FANOUT] = GROUP_PEERS,
		[MODE_MQTT_FANOUT] = GROUP_PEERS,
		[MODE_DBUS_RTT] = GROUP_PEERS,
		[MODE_MQTT_RTT] = GROUP_PEERS,
		[MODE_BR0_PUB] = GROUP_BRIDGE,
		[MODE_BR1_PUB] = GROUP_BRIDGE,
		[MODE_BRIDGE_MQTT] = GROUP_BRIDGE,
	};

	if (group_of[m] == GROUP_PEERS)
		return opt.peers || (opt.only & 1u << GROUP_PEERS);
	if (group_of[m] == GROUP_BRIDGE)
		return opt.bridge || (opt.only & 1u << GROUP_BRIDGE);
	return opt.only == 0 || (opt.only & 1u << group_of[m]);
}

static const struct row *row_find(enum mode mode, int wake, size_t size,
				  unsigned subscribers, long subscriptions)
{
	for (unsigned i = 0; i < n_rows; i++) {
		const struct row *r = &rows[i];

		if (r->mode == mode && r->wake == wake && r->size == size &&
		    r->subscribers == subscribers &&
		    r->subscriptions == subscriptions)
			return r;
	}
	return NULL;
}

static bool row_is_rtt(const struct row *r)
{
	return r->mode == MODE_RTT_DIRECT || r->mode == MODE_RTT_RELAY ||
	       r->mode == MODE_RTT || r->mode == MODE_SCALE_RTT ||
	       r->mode == MODE_SCALE_REQ || r->mode == MODE_POL0_RTT ||
	       r->mode == MODE_POL200_RTT || r->mode == MODE_DBUS_RTT ||
	       r->mode == MODE_MQTT_RTT;
}

/* Speed relative to a reference row: throughput, or for round trips the
 * reference's p50 over ours (so that 1.0 is "as fast" either way). */
static double row_speed_ratio(const struct row *r, const struct row *ref)
{
	if (!ref)
		return NAN;
	if (row_is_rtt(r))
		return r->p50_us > 0 ? ref->p50_us / r->p50_us : NAN;
	return ref->msgs_per_s > 0 ? r->msgs_per_s / ref->msgs_per_s : NAN;
}

static void target_add(struct row *r, const char *tag, bool pass,
		       const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void target_add(struct row *r, const char *tag, bool pass,
		       const char *fmt, ...)
{
	size_t len = strlen(r->targets);
	struct target *t;
	va_list ap;
	int n;

	snprintf(r->targets + len, sizeof(r->targets) - len, "%s%s %s",
		 len ? ", " : "", tag, pass ? "PASS" : "MISS");
	if (n_targets == MAX_TARGETS)
		return;
	t = &targets[n_targets++];
	t->pass = pass;
	n = snprintf(t->text, sizeof(t->text), "%s", mode_names[r->mode]);
	if (r->wake >= 0)
		n += snprintf(t->text + n, sizeof(t->text) - n, " %s",
			      bench_wake_name(r->wake));
	n += snprintf(t->text + n, sizeof(t->text) - n, " %zu B: ", r->size);
	va_start(ap, fmt);
	vsnprintf(t->text + n, sizeof(t->text) - n, fmt, ap);
	va_end(ap);
}

/*
 * The throughput reference of a wake-up method and size: the faster of the
 * two relay rows (its consumer blocking in mq_receive(), or waiting in
 * poll() as libmqbus does), so that no way of waiting makes the relay
 * look dearer than it must be.
 */
static const struct row *relay_ref(int wake, size_t size)
{
	const struct row *block = row_find(MODE_RELAY, wake, size, 1, -1);
	const struct row *poll = row_find(MODE_RELAY_POLL, wake, size, 1, -1);

	if (!block || !poll)
		return block ? block : poll;
	return poll->msgs_per_s > block->msgs_per_s ? poll : block;
}

/*
 * The targets of a row measured next to the peers: against dbus-broker
 * (issue 12), on the medians of the paired ratios.  mosquitto's ratios
 * are reported, with no target.
 */
static void row_judge_peers(struct row *r)
{
	double x = r->ratio_peer[BENCH_PEER_DBUS];
	double c = r->cpu_ratio_peer[BENCH_PEER_DBUS];
	const struct row *d;

	if (isnan(x))
		return;
	switch (r->mode) {
	case MODE_PUBSUB:
		d = row_find(MODE_DBUS_PUBSUB, -1, r->size, 1, 0);
		target_add(r, "xdbus", x >= 3,
			   "throughput %.2fx dbus-broker's (median of %u "
			   "paired runs; medians %.0f and %.0f msgs/s); "
			   "target >= 3x",
			   x, r->repeats, r->msgs_per_s,
			   d ? d->msgs_per_s : NAN);
		break;
	case MODE_FANOUT:
		d = row_find(MODE_DBUS_FANOUT, -1, r->size, r->subscribers, 0);
		target_add(r, "xdbus", x >= 2,
			   "%u subscribers: deliveries/s %.2fx dbus-broker's "
			   "(median of %u paired runs; medians %.0f and %.0f);"
			   " target >= 2x",
			   r->subscribers, x, r->repeats, r->deliveries_per_s,
			   d ? d->deliveries_per_s : NAN);
		/* below the clock tick (tiny counts) it says nothing */
		if (!isfinite(c) || c == 0)
			break;
		target_add(r, "cpu-dbus", c <= 0.5,
			   "%u subscribers: daemon CPU per delivery %.2fx "
			   "dbus-broker's (median of %u paired runs; medians "
			   "%.2f and %.2f us); target <= 0.5x",
			   r->subscribers, c, r->repeats,
			   r->cpu_us_per_delivery,
			   d ? d->cpu_us_per_delivery : NAN);
		break;
	case MODE_RTT:
		d = row_find(MODE_DBUS_RTT, -1, r->size, 1, 0);
		/* the ratio is a speed: dbus-broker's p50 over ours */
		target_add(r, "p50-dbus", 1 / x <= 0.6,
			   "round trip p50 %.2fx dbus-broker's (median of %u "
			   "paired runs; medians %.1f and %.1f us); target "
			   "<= 0.6x",
			   1 / x, r->repeats, r->p50_us,
			   d ? d->p50_us : NAN);
		break;
	default:
		break;
	}
}

/* The ratios and targets of a row, from the rows measured before it. */
static void row_judge(struct row *r)
{
	enum bench_wake scale = opt.wakes[0];
	const struct row *direct, *relay, *ref;
	int wake = r->wake >= 0 ? r->wake : (int)scale;

	if (row_is_rtt(r)) {
		direct = row_find(MODE_RTT_DIRECT, -1, r->size, 1, -1);
		relay = row_find(MODE_RTT_RELAY, wake, r->size, 1, -1);
	} else {
		direct = row_find(MODE_DIRECT, -1, r->size, 1, -1);
		/* the relay rows compare with the one whose consumer blocks */
		relay = r->mode == MODE_RELAY || r->mode == MODE_RELAY_POLL
			    ? row_find(MODE_RELAY, wake, r->size, 1, -1)
			    : relay_ref(wake, r->size);
	}
	r->ratio_direct = row_speed_ratio(r, direct);
	r->ratio_relay = r->mode == MODE_DIRECT || r->mode == MODE_RTT_DIRECT
			     ? NAN
			     : row_speed_ratio(r, relay);
	if (r->mode == MODE_SCALE_RTT || r->mode == MODE_SCALE_REQ) {
		/* a pubsub round trip with small queues: no raw counterpart */
		r->ratio_direct = r->ratio_relay = NAN;
	}
	if ((r->mode >= MODE_DBUS_PUBSUB && r->mode <= MODE_MQTT_RTT) ||
	    r->mode == MODE_BRIDGE_MQTT) {
		/* a peer row: compared with the mqbus row of its set only;
		 * bridge-mqtt with mosquitto's own row (xmqtt), no target */
		r->ratio_direct = r->ratio_relay = NAN;
		return;
	}
	if (r->vs_peers) {
		/* its own targets are judged on the standard rows */
		row_judge_peers(r);
		return;
	}

	switch (r->mode) {
	case MODE_PUBSUB:
		if (relay) {
			double cpu = r->cpu_us_per_msg / relay->cpu_us_per_msg;

			target_add(r, "tput", r->ratio_relay >= 0.85,
				   "throughput %.0f msgs/s = %.2fx %s "
				   "(%.0f, the faster relay); target >= 0.85x",
				   r->msgs_per_s, r->ratio_relay,
				   mode_names[relay->mode], relay->msgs_per_s);
			target_add(r, "cpu", cpu <= 1.25,
				   "daemon CPU %.2f us/msg = %.2fx %s's "
				   "(%.2f); target <= 1.25x",
				   r->cpu_us_per_msg, cpu,
				   mode_names[relay->mode],
				   relay->cpu_us_per_msg);
		}
		break;
	case MODE_RTT:
		if (relay) {
			double x = r->p50_us / relay->p50_us;

			target_add(r, "p50", x <= 1.2,
				   "round trip p50 %.1f us = %.2fx relay's "
				   "(%.1f us); target <= 1.2x",
				   r->p50_us, x, relay->p50_us);
		}
		break;
	case MODE_FANOUT:
		ref = row_find(MODE_FANOUT, r->wake, r->size, 1, 0);
		if (r->subscribers == 16 && ref) {
			double x = r->cpu_us_per_delivery / ref->cpu_us_per_msg;

			target_add(r, "cpu", x <= 0.6,
				   "16 subscribers: daemon CPU %.2f us per "
				   "delivery = %.2fx its %.2f us/msg with 1; "
				   "target <= 0.6x",
				   r->cpu_us_per_delivery, x,
				   ref->cpu_us_per_msg);
		}
		break;
	case MODE_TOPICS:
		ref = row_find(MODE_TOPICS, r->wake, r->size, 1, 10);
		if (r->subscriptions == 100000 && ref) {
			double x = r->msgs_per_s / ref->msgs_per_s;

			target_add(r, "tput", x >= 0.9,
				   "100000 subscriptions: %.0f msgs/s = %.2fx "
				   "the %.0f with 10; target >= 0.9x",
				   r->msgs_per_s, x, ref->msgs_per_s);
		}
		break;
	case MODE_SCALE_RTT:
	case MODE_SCALE_REQ:
		/* the row of the 2-client daemon: the fewest subscriptions */
		ref = row_find(r->mode, r->wake, r->size, 1,
			       r->mode == MODE_SCALE_RTT ? BENCH_SCALE_SUBS * 2
							 : 1);
		if (ref && ref != r) {
			double x = r->p50_us / ref->p50_us;
			double c = r->cpu_us_per_msg / ref->cpu_us_per_msg;

			target_add(r, "p50", x <= 1.05,
				   "%ld subscriptions: %s round trip p50 "
				   "%.1f us = %.2fx the %.1f us with 2 clients;"
				   " target <= 1.05x",
				   r->subscriptions,
				   r->mode == MODE_SCALE_RTT ? "pubsub"
							     : "request/reply",
				   r->p50_us, x, ref->p50_us);
			target_add(r, "cpu", c <= 1.05,
				   "%ld subscriptions: daemon CPU %.2f us/msg = "
				   "%.2fx the %.2f with 2 clients; target <= "
				   "1.05x",
				   r->subscriptions, r->cpu_us_per_msg, c,
				   ref->cpu_us_per_msg);
		}
		break;
	case MODE_POL200_PUB:
		ref = row_find(MODE_POL0_PUB, r->wake, r->size, 1, 0);
		if (ref) {
			double x = r->pair_ratio;

			target_add(r, "tput", x >= 0.95,
				   "%u policy rules: throughput %.2fx without "
				   "(median of %u paired runs; medians %.0f "
				   "and %.0f msgs/s; daemon CPU %.2f and %.2f "
				   "us/msg); target >= 0.95x",
				   POLICY_RULES, x, r->repeats,
				   r->msgs_per_s, ref->msgs_per_s,
				   r->cpu_us_per_msg, ref->cpu_us_per_msg);
		}
		break;
	case MODE_POL200_RTT:
		ref = row_find(MODE_POL0_RTT, r->wake, r->size, 1, 0);
		if (ref) {
			/* pair_ratio is a speed: the reference's p50 over ours */
			double x = 1 / r->pair_ratio;

			target_add(r, "p50", x <= 1.05,
				   "%u policy rules: round trip p50 %.2fx "
				   "without (median of %u paired runs; medians "
				   "%.1f and %.1f us; daemon CPU %.2f and %.2f "
				   "us/msg); target <= 1.05x",
				   POLICY_RULES, x, r->repeats, r->p50_us,
				   ref->p50_us, r->cpu_us_per_msg,
				   ref->cpu_us_per_msg);
		}
		break;
	case MODE_BR1_PUB:
		ref = row_find(MODE_BR0_PUB, r->wake, r->size, 1, 0);
		if (ref) {
			double x = r->pair_ratio;

			target_add(r, "tput", x >= 0.97,
				   "one idle MQTT bridge: throughput %.3fx "
				   "without (median of %u paired runs; medians "
				   "%.0f and %.0f msgs/s; daemon CPU %.2f and "
				   "%.2f us/msg); target >= 0.97x",
				   x, r->repeats, r->msgs_per_s,
				   ref->msgs_per_s, r->cpu_us_per_msg,
				   ref->cpu_us_per_msg);
		}
		break;
	case MODE_MEMORY:
		target_add(r, "rss", r->rss_kib >= 0 && r->rss_kib <= 32768,
			   "%u clients, %ld subscriptions: daemon VmRSS %.1f "
			   "MiB (peak %.1f); target <= 32 MiB",
			   r->publishers + r->subscribers + 1, r->subscriptions,
			   r->rss_kib / 1024.0, r->hwm_kib / 1024.0);
		break;
	default:
		break;
	}
}

static void json_num(const char *key, double v, int decimals)
{
	fprintf(out, ",\"%s\":", key);
	if (isnan(v) || isinf(v))
		fputs("null", out);
	else
		fprintf(out, "%.*f", decimals, v);
}

static void row_print_json(const struct row *r)
{
	bool scale = r->mode == MODE_SCALE_RTT || r->mode == MODE_SCALE_REQ;

	fprintf(out, "{\"mode\":\"%s\",\"wake\":", mode_names[r->mode]);
	if (r->wake >= 0)
		fprintf(out, "\"%s\"", bench_wake_name(r->wake));
	else
		fputs("null", out);
	fprintf(out, ",\"size\":%zu,\"publishers\":%u,\"subscribers\":%u",
		r->size, r->publishers, r->subscribers);
	fputs(",\"subscriptions\":", out);
	if (r->subscriptions >= 0)
		fprintf(out, "%ld", r->subscriptions);
	else
		fputs("null", out);
	fprintf(out, ",\"messages\":%llu,\"deliveries\":%llu",
		(unsigned long long)r->messages,
		(unsigned long long)r->deliveries);
	json_num("seconds", r->seconds, 4);
	json_num("msgs_per_s", r->msgs_per_s, 1);
	json_num("deliveries_per_s", r->deliveries_per_s, 1);
	json_num("lat_p50_us", row_is_rtt(r) ? NAN : r->p50_us, 2);
	json_num("lat_p99_us", row_is_rtt(r) ? NAN : r->p99_us, 2);
	json_num("rtt_p50_us", row_is_rtt(r) ? r->p50_us : NAN, 2);
	json_num("rtt_p99_us", row_is_rtt(r) ? r->p99_us : NAN, 2);
	json_num("daemon_cpu_us_per_msg", r->cpu_us_per_msg, 3);
	json_num("daemon_cpu_us_per_delivery", r->cpu_us_per_delivery, 3);
	json_num("daemon_rss_kib", r->rss_kib >= 0 ? r->rss_kib : NAN, 0);
	json_num("daemon_hwm_kib", r->hwm_kib >= 0 ? r->hwm_kib : NAN, 0);
	json_num("ratio_direct", r->ratio_direct, 3);
	json_num("ratio_relay", r->ratio_relay, 3);
	json_num("paired_ratio", r->pair_ratio, 3);
	for (unsigned i = 0; i < BENCH_PEER_COUNT; i++) {
		char key[64];

		snprintf(key, sizeof(key), "ratio_%s",
			 peer_ops_of((enum bench_peer)i)->column);
		json_num(key, r->ratio_peer[i], 3);
		snprintf(key, sizeof(key), "cpu_ratio_%s",
			 peer_ops_of((enum bench_peer)i)->column);
		json_num(key, r->cpu_ratio_peer[i], 3);
	}
	fprintf(out, ",\"repeats\":%u,\"queue_maxmsg\":%d,\"queue_msgsize\":%d",
		r->repeats,
		scale ? BENCH_SCALE_MAXMSG : BENCH_MAXMSG,
		scale ? BENCH_SCALE_MSGSIZE : BENCH_MSGSIZE);
	fprintf(out, ",\"targets\":\"%s\"}\n", r->targets);
	fflush(out);
}

static void cell(char *buf, size_t len, double v, int decimals)
{
	if (isnan(v) || isinf(v))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.*f", decimals, v);
}

#define TABLE_FMT                                                              \
	"%-11s %-6s %4s %3s %3s %6s %9s %8s %8s %7s %7s %7s %7s %6s %6s %6s  %s\n"

static void table_header(void)
{
	fprintf(out, TABLE_FMT, "mode", "wake", "size", "pub", "sub", "held",
		"msgs/s", "p50 us", "p99 us", "us/msg", "us/dlv", "RSS MiB",
		"xdirect", "xrelay", "xdbus", "xmqtt", "targets");
	fflush(out);
}

static void row_print_table(const struct row *r)
{
	char size[24], pub[16], sub[16], held[24], rate[24], p50[16], p99[16],
	    cpu[16], dlv[16], rss[16], xd[16], xr[16], xp[2][16];

	snprintf(size, sizeof(size), "%zu", r->size);
	snprintf(pub, sizeof(pub), "%u", r->publishers);
	snprintf(sub, sizeof(sub), "%u", r->subscribers);
	if (r->subscriptions >= 0)
		snprintf(held, sizeof(held), "%ld", r->subscriptions);
	else
		snprintf(held, sizeof(held), "-");
	cell(rate, sizeof(rate), r->msgs_per_s, 0);
	cell(p50, sizeof(p50), r->p50_us, 1);
	cell(p99, sizeof(p99), r->p99_us, 1);
	cell(cpu, sizeof(cpu), r->cpu_us_per_msg, 2);
	cell(dlv, sizeof(dlv), r->cpu_us_per_delivery, 2);
	cell(rss, sizeof(rss), r->rss_kib >= 0 ? r->rss_kib / 1024.0 : NAN, 1);
	cell(xd, sizeof(xd), r->ratio_direct, 2);
	cell(xr, sizeof(xr), r->ratio_relay, 2);
	cell(xp[0], sizeof(xp[0]), r->ratio_peer[BENCH_PEER_DBUS], 2);
	cell(xp[1], sizeof(xp[1]), r->ratio_peer[BENCH_PEER_MQTT], 2);
	fprintf(out, TABLE_FMT, mode_names[r->mode],
		r->wake >= 0 ? bench_wake_name(r->wake) : "-", size, pub, sub,
		held, rate, p50, p99, cpu, dlv, rss, xd, xr, xp[0], xp[1],
		r->targets);
	fflush(out);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
	FILE *f = opt.json ? info : out;
	va_list ap;

	fputs("# ", f);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fflush(f);
}

/* A measurement as a row (not yet judged). */
static void row_fill(struct row *r, enum mode mode, int wake, size_t size,
		     unsigned pubs, unsigned subs, long subscriptions,
		     const struct meas *m)
{
	double msgs;

	memset(r, 0, sizeof(*r));
	r->mode = mode;
	r->wake = wake;
	r->size = size;
	r->publishers = pubs;
	r->subscribers = subs;
	r->subscriptions = subscriptions;
	r->messages = m->messages;
	r->deliveries = m->deliveries;
	r->seconds = m->seconds;
	r->msgs_per_s = (double)m->messages / m->seconds;
	r->deliveries_per_s = (double)m->deliveries / m->seconds;
	r->p50_us = hist_quantile(&m->h, 0.50) / 1000;
	r->p99_us = hist_quantile(&m->h, 0.99) / 1000;
	/* a round trip is two messages through the middle */
	msgs = (double)m->messages * (row_is_rtt(r) ? 2 : 1);
	r->cpu_us_per_msg = m->cpu_s * 1e6 / msgs;
	r->cpu_us_per_delivery = row_is_rtt(r)
				     ? r->cpu_us_per_msg
				     : m->cpu_s * 1e6 / (double)m->deliveries;
	r->rss_kib = isnan(m->cpu_s) ? -1 : m->rss_kib;
	r->hwm_kib = isnan(m->cpu_s) ? -1 : m->hwm_kib;
	r->ratio_direct = r->ratio_relay = r->pair_ratio = NAN;
	for (unsigned i = 0; i < BENCH_PEER_COUNT; i++)
		r->ratio_peer[i] = r->cpu_ratio_peer[i] = NAN;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	/* NAN last */
	if (isnan(x) || isnan(y))
		return isnan(x) - isnan(y);
	return x < y ? -1 : x > y;
}

/* The median of one field over n samples. */
static double median_of(const struct row *s, unsigned n, size_t off)
{
	double v[REPEAT_MAX];
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++) {
		double x = *(const double *)((const char *)&s[i] + off);

		if (!isnan(x))
			v[k++] = x;
	}
	if (k == 0)
		return NAN;
	qsort(v, k, sizeof(v[0]), cmp_double);
	return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

/*
 * The median over n repetitions of row s's speed relative to row ref's
 * in the same repetition (row_speed_ratio()).  The two ran next to each
 * other, so a slower spell of the machine that spans both cancels out,
 * where the ratio of the two medians would keep it.
 */
static double paired_ratio(const struct row *s, const struct row *ref,
			   unsigned n)
{
	struct row x[REPEAT_MAX];

	for (unsigned i = 0; i < n; i++)
		x[i].pair_ratio = row_speed_ratio(&s[i], &ref[i]);
	return median_of(x, n, offsetof(struct row, pair_ratio));
}

/* The same for the daemon's CPU time per delivery (below 1: cheaper). */
static double paired_cpu_ratio(const struct row *s, const struct row *ref,
			       unsigned n)
{
	struct row x[REPEAT_MAX];

	for (unsigned i = 0; i < n; i++)
		x[i].pair_ratio =
		    s[i].cpu_us_per_delivery / ref[i].cpu_us_per_delivery;
	return median_of(x, n, offsetof(struct row, pair_ratio));
}

/*
 * Each figure of a row is the median of its repetitions, so one disturbed
 * run (the machine is shared) does not make the row.
 */
static void row_commit(const struct row *s, unsigned n)
{
	static const size_t fields[] = {
	    offsetof(struct row, seconds),
	    offsetof(struct row, msgs_per_s),
	    offsetof(struct row, deliveries_per_s),
	    offsetof(struct row, p50_us),
	    offsetof(struct row, p99_us),
	    offsetof(struct row, cpu_us_per_msg),
	    offsetof(struct row, cpu_us_per_delivery),
	};
	struct row *r;
	uint64_t msgs = 0, dlv = 0;
	long rss = -1, hwm = -1;

	if (n_rows == MAX_ROWS)
		fatal("too many rows");
	r = &rows[n_rows++];
	*r = s[0];
	for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
		*(double *)((char *)r + fields[f]) = median_of(s, n, fields[f]);
	for (unsigned i = 0; i < n; i++) {
		msgs += s[i].messages;
		dlv += s[i].deliveries;
		if (s[i].rss_kib > rss)
			rss = s[i].rss_kib;
		if (s[i].hwm_kib > hwm)
			hwm = s[i].hwm_kib;
	}
	r->messages = msgs;
	r->deliveries = dlv;
	/* memory only grows: the largest seen is the figure */
	r->rss_kib = rss;
	r->hwm_kib = hwm;
	r->repeats = n;
	row_judge(r);
	if (opt.json)
		row_print_json(r);
	else
		row_print_table(r);
}

/* ---------------------------------------------------------------- rows */

static uint64_t row_count(unsigned parts)
{
	if (!opt.count)
		return 0;
	return opt.count / parts > 0 ? opt.count / parts : 1;
}

static void run_direct(const struct spec *sp, struct row *r)
{
	char q[1][64];
	struct plan p;
	struct meas m;
	struct bench_job *j;

	plan_init(&p, sp);
	raw_queues_make(q, 1);
	j = plan_add(&p, JOB_RAW_SINK, raw_uid());
	snprintf(j->q[0], sizeof(j->q[0]), "%s", q[0]);
	j->size = sp->size;
	j->n_streams = 1;
	j = plan_add(&p, JOB_RAW_SOURCE, raw_uid());
	snprintf(j->q[0], sizeof(j->q[0]), "%s", q[0]);
	j->size = sp->size;
	j->n_sinks = 1;
	j->window = BENCH_WINDOW;
	j->count = row_count(1);
	p.n_streams = p.n_sinks = 1;
	plan_run(&p, &m);
	raw_queues_remove();
	row_fill(r, MODE_DIRECT, -1, sp->size, 1, 1, -1, &m);
}

/*
 * producer -> q0 -> relay -> q1 -> consumer; the consumer blocks in
 * mq_receive() (relay) or waits as mqbus_receive() does (relay-poll).
 */
static void run_relay(const struct spec *sp, struct row *r)
{
	char q[2][64];
	struct plan p;
	struct meas m;
	struct bench_job *j;

	plan_init(&p, sp);
	raw_queues_make(q, 2);
	j = plan_add(&p, JOB_RELAY, raw_uid());
	j->wake = (enum bench_wake)sp->wake;
	j->n_relay = 1;
	memcpy(j->q, q, sizeof(q));
	j = plan_add(&p, JOB_RAW_SINK, raw_uid());
	snprintf(j->q[0], sizeof(j->q[0]), "%s", q[1]);
	j->size = sp->size;
	j->n_streams = 1;
	j->raw_poll = sp->mode == MODE_RELAY_POLL;
	j = plan_add(&p, JOB_RAW_SOURCE, raw_uid());
	snprintf(j->q[0], sizeof(j->q[0]), "%s", q[0]);
	j->size = sp->size;
	j->n_sinks = 1;
	j->window = BENCH_WINDOW;
	j->count = row_count(1);
	p.n_streams = p.n_sinks = 1;
	plan_run(&p, &m);
	raw_queues_remove();
	row_fill(r, sp->mode, sp->wake, sp->size, 1, 1, -1, &m);
}

/* pinger -> q0 -> echo -> q1 -> pinger */
static void run_rtt_direct(const struct spec *sp, struct row *r)
{
	char q[2][64];
	struct plan p;
	struct meas m;
	struct bench_job *j;

	plan_init(&p, sp);
	raw_queues_make(q, 2);
	j = plan_add(&p, JOB_RAW_ECHO, raw_uid());
	memcpy(j->q, q, sizeof(q));
	j->size = sp->size;
	j->raw_poll = opt.raw_poll;
	j = plan_add(&p, JOB_RAW_PINGER, raw_uid());
	memcpy(j->q, q, sizeof(q));
	j->size = sp->size;
	j->raw_poll = opt.raw_poll;
	j->count = row_count(1);
	p.n_streams = p.n_sinks = 1;
	plan_run(&p, &m);
	raw_queues_remove();
	row_fill(r, MODE_RTT_DIRECT, -1, sp->size, 1, 1, -1, &m);
}

/*
 * pinger -> q0 -> relay -> q1 -> echo -> q2 -> relay -> q3 -> pinger: one
 * relay forwarding both ways, as mqbusd forwards the request and the
 * reply.
 */
static void run_rtt_relay(const struct spec *sp, struct row *r)
{
	char q[4][64];
	struct plan p;
	struct meas m;
	struct bench_job *j;

	plan_init(&p, sp);
	raw_queues_make(q, 4);
	j = plan_add(&p, JOB_RELAY, raw_uid());
	j->wake = (enum bench_wake)sp->wake;
	j->n_relay = 2;
	memcpy(j->q, q, sizeof(q));
	j = plan_add(&p, JOB_RAW_ECHO, raw_uid());
	snprintf(j->q[0], sizeof(j->q[0]), "%s", q[1]);
	snprintf(j->q[1], sizeof(j->q[1]), "%s", q[2]);
	j->size = sp->size;
	j->raw_poll = opt.raw_poll;
	j = plan_add(&p, JOB_RAW_PINGER, raw_uid());
	snprintf(j->q[0], sizeof(j->q[0]), "%s", q[0]);
	snprintf(j->q[1], sizeof(j->q[1]), "%s", q[3]);
	j->size = sp->size;
	j->raw_poll = opt.raw_poll;
	j->count = row_count(1);
	p.n_streams = p.n_sinks = 1;
	plan_run(&p, &m);
	raw_queues_remove();
	row_fill(r, MODE_RTT_RELAY, sp->wake, sp->size, 1, 1, -1, &m);
}

/*
 * pubs publishers to subs subscribers through the daemon.  Each client
 * process has a uid of its own (when we are root).
 */
static void run_bus(const struct spec *sp, struct row *r)
{
	unsigned window = BENCH_WINDOW;
	struct bench_job *j;
	struct plan p;
	struct meas m;

	if (sp->pubs * window > BENCH_WINDOW_TOTAL)
		window = BENCH_WINDOW_TOTAL / sp->pubs;
	plan_init(&p, sp);
	p.daemon = sp->d->pid;
	for (unsigned k = 0; k < sp->subs; k++) {
		j = plan_add(&p, JOB_BUS_SINK, opt.uid_base + p.n);
		snprintf(j->bus, sizeof(j->bus), "%s", sp->d->bus);
		j->index = k;
		j->size = sp->size;
		j->n_streams = sp->pubs;
	}
	for (unsigned s = 0; s < sp->pubs; s++) {
		j = plan_add(&p, JOB_BUS_SOURCE, opt.uid_base + p.n);
		snprintf(j->bus, sizeof(j->bus), "%s", sp->d->bus);
		j->index = s;
		j->size = sp->size;
		j->n_sinks = sp->subs;
		j->window = window;
		j->count = row_count(sp->pubs);
	}
	p.n_streams = sp->pubs;
	p.n_sinks = sp->subs;
	plan_run(&p, &m);
	row_fill(r, sp->mode, (int)sp->d->wake, sp->size, sp->pubs, sp->subs,
		 sp->held, &m);
}

/*
 * pinger -> mqbusd -> echo -> mqbusd -> pinger: mqbus_request() on
 * "bench/ping", answered by a responder with mqbus_reply().
 */
static void run_bus_rtt(const struct spec *sp, struct row *r)
{
	struct bench_job *j;
	struct plan p;
	struct meas m;

	plan_init(&p, sp);
	p.daemon = sp->d->pid;
	j = plan_add(&p, JOB_BUS_ECHO, opt.uid_base + p.n);
	snprintf(j->bus, sizeof(j->bus), "%s", sp->d->bus);
	j->size = sp->size;
	j = plan_add(&p, JOB_BUS_PINGER, opt.uid_base + p.n);
	snprintf(j->bus, sizeof(j->bus), "%s", sp->d->bus);
	j->size = sp->size;
	j->count = row_count(1);
	p.n_streams = p.n_sinks = 1;
	plan_run(&p, &m);
	row_fill(r, sp->mode, (int)sp->d->wake, sp->size, 1, 1, 0, &m);
}

/* The users the scale rows' clients run as (mqbench1 ...). */
static uid_t scale_uids[BENCH_SCALE_USERS];

/*
 * A pubsub round trip between scale clients clients - 2 (ping) and
 * clients - 1 (pong), each with its subscriptions and retained value,
 * whatever else the daemon holds.
 */
static void run_scale_rtt(const struct spec *sp, struct row *r)
{
	struct bench_job *j;
	struct plan p;
	struct meas m;

	plan_init(&p, sp);
	snprintf(p.what, sizeof(p.what), "scale-rtt, %u clients",
		 sp->clients);
	p.daemon = sp->d->pid;
	j = plan_add(&p, JOB_SCALE_PONG, scale_uids[1]);
	j->first = sp->clients - 1;
	j->peer = sp->clients - 2;
	j = plan_add(&p, JOB_SCALE_PING, scale_uids[0]);
	j->first = sp->clients - 2;
	j->peer = sp->clients - 1;
	j->count = row_count(1);
	for (unsigned i = 0; i < p.n; i++) {
		snprintf(p.jobs[i].bus, sizeof(p.jobs[i].bus), "%s",
			 sp->d->bus);
		p.jobs[i].size = sp->size;
		p.jobs[i].maxmsg = BENCH_SCALE_MAXMSG;
		p.jobs[i].msgsize = BENCH_SCALE_MSGSIZE;
	}
	p.n_streams = p.n_sinks = 1;
	plan_run(&p, &m);
	row_fill(r, MODE_SCALE_RTT, (int)sp->d->wake, sp->size, 1, 1, sp->held,
		 &m);
}

/*
 * Request/reply round trips (as in the rtt rows) between two more clients
 * with the scale rows' small queues, whatever else the daemon holds: a
 * reply is routed to its requester by client id.
 */
static void run_scale_req(const struct spec *sp, struct row *r)
{
	struct bench_job *j;
	struct plan p;
	struct meas m;

	plan_init(&p, sp);
	snprintf(p.what, sizeof(p.what), "scale-req, %u clients", sp->clients);
	p.daemon = sp->d->pid;
	plan_add(&p, JOB_BUS_ECHO, scale_uids[1]);
	j = plan_add(&p, JOB_BUS_PINGER, scale_uids[0]);
	j->count = row_count(1);
	for (unsigned i = 0; i < p.n; i++) {
		snprintf(p.jobs[i].bus, sizeof(p.jobs[i].bus), "%s",
			 sp->d->bus);
		p.jobs[i].size = sp->size;
		p.jobs[i].maxmsg = BENCH_SCALE_MAXMSG;
		p.jobs[i].msgsize = BENCH_SCALE_MSGSIZE;
	}
	p.n_streams = p.n_sinks = 1;
	plan_run(&p, &m);
	row_fill(r, MODE_SCALE_REQ, (int)sp->d->wake, sp->size, 1, 1, sp->held,
		 &m);
}

static struct bench_job *peer_job(struct plan *p, enum job_kind kind,
				  const struct spec *sp)
{
	struct bench_job *j = plan_add(p, kind, opt.uid_base + p->n);

	j->which_peer = sp->peer->peer;
	snprintf(j->peer_addr, sizeof(j->peer_addr), "%s", sp->peer->addr);
	j->peer_port = sp->peer->port;
	j->size = sp->size;
	return j;
}

/*
 * A peer row: the same publisher and subscribers (or requester and
 * responder), the same window, counts and checks as the bus rows, as
 * clients of the peer's broker (peer-dbus.c, peer-mqtt.c).  The CPU time
 * is the broker's.
 */
static void run_peer(const struct spec *sp, struct row *r)
{
	struct bench_job *j;
	struct plan p;
	struct meas m;

	plan_init(&p, sp);
	p.daemon = sp->peer->pid;
	p.cpu_pid = sp->peer->cpu_pid;
	p.n_streams = 1;
	p.n_sinks = sp->subs;
	if (sp->mode == MODE_DBUS_RTT || sp->mode == MODE_MQTT_RTT) {
		peer_job(&p, JOB_PEER_ECHO, sp);
		j = peer_job(&p, JOB_PEER_PINGER, sp);
		j->count = row_count(1);
	} else {
		for (unsigned k = 0; k < sp->subs; k++) {
			j = peer_job(&p, JOB_PEER_SINK, sp);
			j->index = k;
			j->n_streams = 1;
		}
		j = peer_job(&p, JOB_PEER_SOURCE, sp);
		j->n_sinks = sp->subs;
		j->window = BENCH_WINDOW;
		j->count = row_count(1);
	}
	plan_run(&p, &m);
	row_fill(r, sp->mode, -1, sp->size, 1, sp->subs, 0, &m);
}

static void run_bridge_mqtt(const struct spec *sp, struct row *r);

static void spec_run(const struct spec *sp, struct row *r)
{
	if (sp->peer) {
		run_peer(sp, r);
		return;
	}
	if (sp->mode == MODE_BRIDGE_MQTT) {
		run_bridge_mqtt(sp, r);
		r->vs_peers = sp->vs_peers;
		return;
	}
	switch (sp->mode) {
	case MODE_DIRECT:
		run_direct(sp, r);
		break;
	case MODE_RELAY:
	case MODE_RELAY_POLL:
		run_relay(sp, r);
		break;
	case MODE_RTT_DIRECT:
		run_rtt_direct(sp, r);
		break;
	case MODE_RTT_RELAY:
		run_rtt_relay(sp, r);
		break;
	case MODE_RTT:
	case MODE_POL0_RTT:
	case MODE_POL200_RTT:
		run_bus_rtt(sp, r);
		break;
	case MODE_SCALE_RTT:
		run_scale_rtt(sp, r);
		break;
	case MODE_SCALE_REQ:
		run_scale_req(sp, r);
		break;
	default:
		run_bus(sp, r);
		break;
	}
	r->vs_peers = sp->vs_peers;
}

/* Queues a row needs: two per client, the holder's, the raw ones. */
static unsigned spec_queues(const struct spec *sp)
{
	if (sp->peer)
		return 0;
	switch (sp->mode) {
	case MODE_DIRECT:
		return 1;
	case MODE_RELAY:
	case MODE_RELAY_POLL:
	case MODE_RTT_DIRECT:
	case MODE_RTT:
		return sp->mode == MODE_RTT ? 4 : 2;
	case MODE_POL0_RTT:
	case MODE_POL200_RTT:
		return 4;
	case MODE_RTT_RELAY:
	case MODE_SCALE_RTT: /* of other uids, checked by run_scale() */
	case MODE_SCALE_REQ:
		return 4;
	default:
		return 2 * (sp->pubs + sp->subs) + (sp->held > 0 ? 2 : 0);
	}
}

/*
 * Measures rows together: repetition k of every row before repetition
 * k + 1 of any, so that rows compared with each other (a relay and the
 * pubsub row of the same wake-up method) see the same machine.
 */
static void measure(const struct spec *specs, unsigned n)
{
	static struct row samples[8][REPEAT_MAX];
	const struct spec *run[8];
	unsigned n_run = 0;
	char why[300];

	for (unsigned i = 0; i < n && n_run < 8; i++) {
		if (!row_fits(spec_queues(&specs[i]), why, sizeof(why))) {
			note("%s %s %zu B: %s", mode_names[specs[i].mode],
			     specs[i].wake >= 0 ? bench_wake_name(specs[i].wake)
						: "-",
			     specs[i].size, why);
			continue;
		}
		run[n_run++] = &specs[i];
	}
	/* every other repetition in reverse order, so that no row of the
	 * set always runs first, or right after a given other */
	for (unsigned k = 0; k < opt.repeat; k++)
		for (unsigned i = 0; i < n_run; i++) {
			unsigned j = k % 2 ? n_run - 1 - i : i;

			spec_run(run[j], &samples[j][k]);
		}
	for (unsigned i = 0; i < n_run; i++) {
		if (i > 0 && (run[i]->mode == MODE_POL200_PUB ||
			      run[i]->mode == MODE_POL200_RTT ||
			      run[i]->mode == MODE_BR1_PUB))
			samples[i][0].pair_ratio =
			    paired_ratio(samples[i], samples[i - 1], opt.repeat);
		/* a bus row against every peer row of the set */
		for (unsigned j = 0; j < n_run && run[i]->vs_peers; j++) {
			if (!run[j]->peer)
				continue;
			samples[i][0].ratio_peer[run[j]->peer->peer] =
			    paired_ratio(samples[i], samples[j], opt.repeat);
			samples[i][0].cpu_ratio_peer[run[j]->peer->peer] =
			    paired_cpu_ratio(samples[i], samples[j],
					     opt.repeat);
		}
	}
	for (unsigned i = 0; i < n_run; i++)
		row_commit(samples[i], opt.repeat);
}

static void measure1(struct spec sp)
{
	measure(&sp, 1);
}

/* ---------------------------------------------------------------- the run */

static const size_t sizes[] = { 64, 1024, 4000 };

static struct spec spec_of(enum mode mode, int wake, size_t size,
			   unsigned pubs, unsigned subs, long held,
			   const struct daemon *d)
{
	struct spec sp = {
		.mode = mode,
		.wake = wake,
		.size = size,
		.pubs = pubs,
		.subs = subs,
		.held = held,
		.d = d,
	};

	return sp;
}

static size_t n_sizes(void)
{
	return opt.quick ? 2 : 3;
}

/* the round trips of --quick are at 64 bytes only */
static size_t n_rtt_sizes(void)
{
	return opt.quick ? 1 : 3;
}

static void run_raw(void)
{
	for (size_t i = 0; i < n_sizes() && group_on(MODE_DIRECT); i++)
		measure1(spec_of(MODE_DIRECT, -1, sizes[i], 1, 1, -1, NULL));
	for (size_t i = 0; i < n_rtt_sizes() && group_on(MODE_RTT); i++)
		measure1(spec_of(MODE_RTT_DIRECT, -1, sizes[i], 1, 1, -1,
				 NULL));
}

/*
 * Both relay rows next to the mqbusd row of the same wake-up method,
 * measured in turns.
 */
static void run_wake(enum bench_wake wake)
{
	bool bus = group_on(MODE_PUBSUB) || group_on(MODE_RTT);
	struct spec pair[3];
	struct daemon d;
	unsigned n;

	if (bus)
		daemon_start(&d, wake);
	for (size_t i = 0; i < n_sizes(); i++) {
		n = 0;
		if (group_on(MODE_RELAY)) {
			pair[n++] = spec_of(MODE_RELAY, (int)wake, sizes[i], 1,
					    1, -1, NULL);
			pair[n++] = spec_of(MODE_RELAY_POLL, (int)wake,
					    sizes[i], 1, 1, -1, NULL);
		}
		if (group_on(MODE_PUBSUB))
			pair[n++] = spec_of(MODE_PUBSUB, (int)wake, sizes[i], 1,
					    1, 0, &d);
		measure(pair, n);
	}
	for (size_t i = 0; i < n_rtt_sizes() && group_on(MODE_RTT); i++) {
		pair[0] = spec_of(MODE_RTT_RELAY, (int)wake, sizes[i], 1, 1,
				  -1, NULL);
		pair[1] = spec_of(MODE_RTT, (int)wake, sizes[i], 1, 1, 0, &d);
		measure(pair, 2);
	}
	if (bus)
		daemon_stop(&d);
}

static void run_fanout_clients(enum bench_wake wake)
{
	static const unsigned fanout[] = { 1, 4, 16 };
	static const unsigned clients[] = { 1, 8, 32 };
	bool do_fanout = group_on(MODE_FANOUT);
	bool do_clients = group_on(MODE_CLIENTS) && !opt.quick;
	struct daemon d;

	if (!do_fanout && !do_clients)
		return;
	daemon_start(&d, wake);
	/* --quick: fanout 1 and 16 at 64 bytes */
	for (size_t i = 0; i < (opt.quick ? 1 : n_sizes()) && do_fanout; i++)
		for (size_t k = 0; k < 3; k++)
			if (!opt.quick || fanout[k] != 4)
				measure1(spec_of(MODE_FANOUT, (int)wake,
						 sizes[i], 1, fanout[k], 0,
						 &d));
	for (size_t i = 0; i < n_sizes() && do_clients; i++)
		for (size_t k = 0; k < 3; k++)
			measure1(spec_of(MODE_CLIENTS, (int)wake, sizes[i],
					 clients[k], 1, 0, &d));
	daemon_stop(&d);
}

/*
 * One daemon for the growing sets of unrelated subscriptions; the memory
 * row runs while the largest is in place.
 */
static void run_topics(enum bench_wake wake)
{
	static const unsigned held[] = { 10, 10000, 100000 };
	bool do_topics = group_on(MODE_TOPICS);
	struct daemon d;

	if (opt.quick || (!do_topics && !group_on(MODE_MEMORY)))
		return;
	daemon_start(&d, wake);
	for (size_t k = 0; k < 3; k++) {
		bool mem = held[k] == 100000 && group_on(MODE_MEMORY);
		uint64_t ns;
		pid_t holder;

		if (!do_topics && !mem)
			continue;
		holder = holder_start(&d, held[k], &ns);
		note("%u unrelated subscriptions made in %.2f s (%.1f us each)",
		     held[k], ns / 1e9, ns / 1e3 / held[k]);
		for (size_t i = 0; i < n_sizes() && do_topics; i++)
			measure1(spec_of(MODE_TOPICS, (int)wake, sizes[i], 1, 1,
					 held[k], &d));
		if (mem)
			measure1(spec_of(MODE_MEMORY, (int)wake, 4000, 32, 1,
					 held[k], &d));
		holder_stop(holder);
	}
	daemon_stop(&d);
}

/* ---------------------------------------------------------------- policy */

/*
 * Writes the config of the pol200-* rows to path: the one every daemon of
 * the run has, and a [policy] section of POLICY_RULES rules such as a
 * system bus would have.  Users' own trees with %u and %U, a few group
 * rules, per-uid rules for the applications of a machine, denies inside
 * allowed trees; and the rules the bench's own clients need, some of
 * them more specific than bench/# so that the rule that decides is not
 * the first one found.  The bench's clients have uids without a passwd
 * entry (--uid-base), so %u never applies to them, as for a system
 * service's dynamic user; %U does.
 */
static void policy_write(const char *path)
{
	FILE *f = fopen(path, "we");
	unsigned n = 0, base = (unsigned)opt.uid_base;

	if (!f)
		fatal("cannot write %s: %s", path, strerror(errno));
#define RULE(...) (fprintf(f, __VA_ARGS__), fputc('\n', f), n++)
	fprintf(f, "[bus]\nmax_subscriptions = 200000\n[policy]\n"
		   "default = deny\n");
	RULE("allow = all user=root topic=#");
	RULE("allow = publish,subscribe,request,serve,retain,timer,group "
	     "user=* topic=users/%%u/#");
	RULE("allow = publish,subscribe,retain user=* topic=uid/%%U/#");
	RULE("allow = subscribe * topic=system/#");
	RULE("allow = publish,subscribe,retain,group * topic=public/#");
	RULE("deny = publish,subscribe * topic=public/secret/#");
	RULE("allow = request * topic=service/#");
	RULE("allow = publish,subscribe,request,serve * topic=bench/#");
	RULE("deny = publish * topic=" BENCH_PING);
	RULE("deny = all * topic=bench/data/private/#");
	RULE("allow = subscribe group=%u topic=bench/+", base);
	for (unsigned k = 0; k < 4; k++) {
		RULE("allow = publish,subscribe user=%u topic=" BENCH_TOPIC,
		     base + k);
		RULE("allow = request,serve,subscribe user=%u topic=" BENCH_PING,
		     base + k);
	}
	for (unsigned i = 0; i < 24; i++)
		RULE("allow = subscribe group=%u topic=sensors/room%u/+/temp",
		     base + 100000 + i % 6, i);
	for (unsigned i = 0; n < POLICY_RULES; i++) {
		switch (i % 4) {
		case 0:
			RULE("allow = publish,subscribe,serve user=%u "
			     "topic=apps/app%u/#",
			     base + 200000 + i, i);
			break;
		case 1:
			RULE("allow = publish user=* topic=apps/app%u/%%u/status",
			     i);
			break;
		case 2:
			RULE("deny = publish * topic=apps/app%u/admin/#", i);
			break;
		default:
			RULE("allow = request * topic=apps/app%u/+/rpc", i);
			break;
		}
	}
#undef RULE
	if (fclose(f) != 0)
		fatal("cannot write %s", path);
}

/*
 * Whether daemon d applies the policy of policy_write(): a subscription
 * to bench/data/private/x is refused there (-EACCES) and accepted by a
 * daemon without one, so the two kinds of rows cannot be mixed up.
 */
static void policy_probe(const struct daemon *d, bool want_refused)
{
	mqbus *b = NULL;
	int r = mqbus_new(&b);

	if (r < 0 || mqbus_set_bus(b, d->bus) < 0 ||
	    mqbus_set_queue_size(b, BENCH_MAXMSG, BENCH_MSGSIZE) < 0 ||
	    mqbus_connect(b) < 0)
		fatal("policy probe: cannot connect to %s: %s", d->bus,
		      b ? mqbus_last_error(b) : strerror(-r));
	r = mqbus_subscribe(b, "bench/data/private/x");
	if ((r == -EACCES) != want_refused)
		fatal("policy probe: a subscription to bench/data/private/x on "
		      "%s %s (%s)",
		      d->bus, want_refused ? "was not refused" : "failed",
		      r < 0 ? mqbus_last_error(b) : "accepted");
	mqbus_free(b);
}

/*
 * pubsub and rtt on two daemons, one without a policy and one with
 * POLICY_RULES rules, each pair measured in turns so that both see the
 * same machine.
 */
static void run_policy(enum bench_wake wake)
{
	struct daemon plain, pol;
	struct spec pair[2];
	char cfg[192];

	if (!group_on(MODE_POL0_PUB))
		return;
	snprintf(cfg, sizeof(cfg), "%s/mqbusd-policy.conf", tmp_dir);
	policy_write(cfg);
	note("policy: the pol200-* daemon has %u rules (%s); the pol0-* one "
	     "none", POLICY_RULES, cfg);
	daemon_start(&plain, wake);
	daemon_start_cfg(&pol, wake, cfg);
	policy_probe(&plain, false);
	policy_probe(&pol, true);
	for (size_t i = 0; i < n_sizes(); i++) {
		pair[0] = spec_of(MODE_POL0_PUB, (int)wake, sizes[i], 1, 1, 0,
				  &plain);
		pair[1] = spec_of(MODE_POL200_PUB, (int)wake, sizes[i], 1, 1,
				  0, &pol);
		measure(pair, 2);
	}
	for (size_t i = 0; i < n_rtt_sizes(); i++) {
		pair[0] = spec_of(MODE_POL0_RTT, (int)wake, sizes[i], 1, 1, 0,
				  &plain);
		pair[1] = spec_of(MODE_POL200_RTT, (int)wake, sizes[i], 1, 1,
				  0, &pol);
		measure(pair, 2);
	}
	daemon_stop(&pol);
	daemon_stop(&plain);
}

/* ---------------------------------------------------------------- scale */

#define SCALE_CLIENTS 2000
#define SCALE_RETAINED 100000
#define SCALE_QUICK_CLIENTS 500
#define SCALE_QUICK_RETAINED 20000

/*
 * One figure of the scale rows: with n clients (or n retained values
 * elsewhere), and its reference, with 2 clients (or no values elsewhere).
 */
struct scale_fig {
	const char *name;
	unsigned long n;
	double value;
	double small; /* the reference; NAN if none */
	const char *unit;
	char target[48];
};

static struct scale_fig scale_figs[16];
static unsigned n_scale_figs;

static struct scale_fig *scale_fig_add(const char *name, unsigned long n,
				       double value, double small,
				       const char *unit)
{
	struct scale_fig *f = &scale_figs[n_scale_figs];

	if (n_scale_figs == sizeof(scale_figs) / sizeof(scale_figs[0]))
		fatal("too many scale figures");
	n_scale_figs++;
	*f = (struct scale_fig){ name, n, value, small, unit, "" };
	return f;
}

/* A target of a scale figure, into the summary. */
static void scale_target(struct scale_fig *f, bool pass, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void scale_target(struct scale_fig *f, bool pass, const char *fmt, ...)
{
	struct target *t;
	va_list ap;
	int n;

	snprintf(f->target, sizeof(f->target), "%s", pass ? "PASS" : "MISS");
	if (n_targets == MAX_TARGETS)
		return;
	t = &targets[n_targets++];
	t->pass = pass;
	n = snprintf(t->text, sizeof(t->text), "scale: ");
	va_start(ap, fmt);
	vsnprintf(t->text + n, sizeof(t->text) - n, fmt, ap);
	va_end(ap);
}

static void scale_print(void)
{
	char v[32], sm[32], x[32];

	if (!opt.json)
		fprintf(out, "\n%-14s %7s %10s %10s %6s  %-42s %s\n", "scale",
			"n", "value", "ref", "x ref", "unit", "target");
	for (unsigned i = 0; i < n_scale_figs; i++) {
		const struct scale_fig *f = &scale_figs[i];

		if (opt.json) {
			fprintf(out,
				"{\"mode\":\"scale\",\"figure\":\"%s\","
				"\"n\":%lu,\"unit\":\"%s\"",
				f->name, f->n, f->unit);
			json_num("value", f->value, 3);
			json_num("reference", f->small, 3);
			fprintf(out, ",\"targets\":\"%s\"}\n", f->target);
			continue;
		}
		cell(v, sizeof(v), f->value, f->value >= 100 ? 0 : 3);
		cell(sm, sizeof(sm), f->small, f->small >= 100 ? 0 : 3);
		cell(x, sizeof(x), f->value / f->small, 2);
		fprintf(out, "%-14s %7lu %10s %10s %6s  %-42s %s\n", f->name,
			f->n, v, sm, x, f->unit, f->target);
	}
	fflush(out);
}

/*
 * The users mqbench1 .. mqbench8: RLIMIT_MSGQUEUE is per uid and cannot be
 * raised, so thousands of clients need several.  Missing ones are made
 * with useradd (system users without a home or a login shell).
 */
static void scale_users(void)
{
	for (unsigned k = 0; k < BENCH_SCALE_USERS; k++) {
		char name[32];
		struct passwd *pw;

		snprintf(name, sizeof(name), "mqbench%u", k + 1);
		pw = getpwnam(name);
		if (!pw) {
			pid_t pid;
			int st;

			fflush(NULL);
			pid = fork();
			if (pid < 0)
				fatal("fork: %s", strerror(errno));
			if (pid == 0) {
				execlp("useradd", "useradd", "--system",
				       "--no-create-home", "--shell",
				       "/usr/sbin/nologin", "--comment",
				       "mqbus-bench scale rows", name,
				       (char *)NULL);
				_exit(127);
			}
			child_track(pid, false);
			st = child_wait(pid, 60000);
			pw = getpwnam(name);
			if (st == -1 || !WIFEXITED(st) ||
			    WEXITSTATUS(st) != 0 || !pw)
				fatal("cannot create user %s with useradd "
				      "(status %d): the scale rows need "
				      "users mqbench1 to mqbench%d",
				      name,
				      st != -1 && WIFEXITED(st)
					  ? WEXITSTATUS(st)
					  : -1,
				      BENCH_SCALE_USERS);
			note("created user %s (uid %u) with useradd", name,
			     (unsigned)pw->pw_uid);
		}
		if (pw->pw_uid == 0)
			fatal("user %s is root", name);
		scale_uids[k] = pw->pw_uid;
	}
}

static void write_long_file(const char *path, long v)
{
	FILE *f = fopen(path, "we");

	if (!f || fprintf(f, "%ld\n", v) < 0 || fclose(f) != 0)
		fatal("cannot write %s: %s", path, strerror(errno));
}

/*
 * From here on this process and everything it starts live in a private
 * IPC namespace with a fresh mqueue file system, where the number of
 * queues may be raised without touching the machine's limit.
 */
static void scale_namespace(unsigned clients)
{
	long n_queues_max = 2 * (long)clients + 256;

	if (unshare(CLONE_NEWIPC | CLONE_NEWNS) < 0)
		fatal("scale: unshare(CLONE_NEWIPC | CLONE_NEWNS): %s",
		      strerror(errno));
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fatal("scale: cannot make the mounts private: %s",
		      strerror(errno));
	if (mount("mqueue-bench", "/dev/mqueue", "mqueue",
		  MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		fatal("scale: cannot mount an mqueue file system on "
		      "/dev/mqueue: %s",
		      strerror(errno));
	if (read_long_file("/proc/sys/fs/mqueue/queues_max", 0) < n_queues_max)
		write_long_file("/proc/sys/fs/mqueue/queues_max",
				n_queues_max);
	note("scale: private IPC namespace, fs.mqueue.queues_max %ld there",
	     read_long_file("/proc/sys/fs/mqueue/queues_max", -1));
}

/* Checks that each user's share of clients fits its queue budget. */
static void scale_check_budget(unsigned clients)
{
	size_t client = 2 * mqbus_queue_bytes(BENCH_SCALE_MAXMSG,
					      BENCH_SCALE_MSGSIZE);
	unsigned per_user = (clients + BENCH_SCALE_USERS - 1) /
			    BENCH_SCALE_USERS;
	/* a user holds its share, one more client (ping, pong, the late
	 * subscriber), and the probe's larger queues */
	size_t need = (per_user + 1) * client +
		      2 * mqbus_queue_bytes(BENCH_MAXMSG, BENCH_SCALE_MSGSIZE);
	struct rlimit rl;

	if (getrlimit(RLIMIT_MSGQUEUE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur)
		fatal("scale: %u clients per user need %zu bytes of queues, "
		      "RLIMIT_MSGQUEUE is %llu",
		      per_user + 1, need, (unsigned long long)rl.rlim_cur);
	note("scale: %u clients over users mqbench1-%d (uid %u-%u), "
	     "queues %d x %d bytes, %zu of %llu bytes of queues per user",
	     clients, BENCH_SCALE_USERS, (unsigned)scale_uids[0],
	     (unsigned)scale_uids[BENCH_SCALE_USERS - 1], BENCH_SCALE_MAXMSG,
	     BENCH_SCALE_MSGSIZE, need, (unsigned long long)rl.rlim_cur);
}

/* Waits until ctl->field of a worker group reaches want. */
static void scale_wait(struct bench_ctl *ctl, _Atomic uint32_t *field,
		       uint32_t want, const pid_t *pids, unsigned n_pids,
		       const struct daemon *d, const char *what)
{
	uint64_t start = now_ns();

	for (;;) {
		uint32_t v = atomic_load(field);

		if (v >= want)
			return;
		check_interrupted();
		if (atomic_load(&ctl->failed) == 2)
			fatal("%s: %s", what, ctl->error);
		for (unsigned i = 0; i < n_pids; i++)
			if (child_wait(pids[i], 0) != -1) {
				usleep(10000);
				if (atomic_load(&ctl->failed) == 2)
					fatal("%s: %s", what, ctl->error);
				fatal("%s: a worker died", what);
			}
		if (child_wait(d->pid, 0) != -1) {
			daemon_print_log(d);
			fatal("%s: mqbusd died", what);
		}
		if (now_ns() - start > SETUP_TIMEOUT_MS * 1000000ull)
			fatal("%s: not done within %d s", what,
			      SETUP_TIMEOUT_MS / 1000);
		futex_wait(field, v, 100);
	}
}

/* Ends a group of workers through ctl's quit. */
static void scale_quit(struct bench_ctl *ctl, const pid_t *pids, unsigned n,
		       const char *what)
{
	atomic_store(&ctl->quit, 1);
	futex_wake(&ctl->quit);
	for (unsigned i = 0; i < n; i++) {
		int st = child_wait(pids[i], 60000);

		if (st == -1) {
			child_end(pids[i], false);
			fatal("%s: a worker did not exit", what);
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			if (atomic_load(&ctl->failed) == 2)
				fatal("%s: %s", what, ctl->error);
			fatal("%s: a worker failed while closing", what);
		}
	}
}

/* Runs one worker alone (the late subscriber, the probe) to its end. */
static void scale_solo(struct bench_job *j, uid_t uid, const struct daemon *d,
		       const char *what)
{
	pid_t pid;

	memset(ctl_hold, 0, sizeof(*ctl_hold));
	j->ctl = ctl_hold;
	snprintf(j->bus, sizeof(j->bus), "%s", d->bus);
	pid = spawn_job(j, uid);
	scale_wait(ctl_hold, &ctl_hold->ready, 1, &pid, 1, d, what);
	atomic_store(&ctl_hold->go, 1);
	futex_wake(&ctl_hold->go);
	scale_wait(ctl_hold, &ctl_hold->done, 1, &pid, 1, d, what);
	scale_quit(ctl_hold, &pid, 1, what);
}

/* A late subscriber of '#' on d: ms to the ACK and to every value. */
static void scale_late(const struct daemon *d, unsigned first, unsigned n,
		       double *ack_ms, double *all_ms)
{
	struct bench_job j = {
		.kind = JOB_SCALE_LATE,
		.first = first,
		.n_clients = n,
		.maxmsg = BENCH_SCALE_MAXMSG,
		.msgsize = BENCH_SCALE_MSGSIZE,
	};

	scale_solo(&j, scale_uids[2], d, "scale");
	*ack_ms = ctl_hold->ack_ns / 1e6;
	*all_ms = ctl_hold->setup_ns / 1e6;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The subscribe row: a daemon of its own, SUBSCRIBE to ACK timed with
 * only the pattern's own subtree kept, then with n_retained values in
 * other subtrees.
 */
static void scale_subscribe_row(enum bench_wake wake, unsigned n_retained)
{
	struct bench_job j = {
		.kind = JOB_SCALE_PROBE,
		.n_retained = n_retained,
		.maxmsg = BENCH_MAXMSG,
		.msgsize = BENCH_SCALE_MSGSIZE,
	};
	double p50[2][2], max[2][2]; /* [ack, done][none, loaded] */
	uint64_t v[BENCH_SCALE_PROBES], t0 = now_ns(), held;
	struct scale_fig *f;
	struct daemon d;
	char cfg[PATH_MAX];
	FILE *fc;

	/* room for every value (mqbusd keeps 65536 by default) */
	snprintf(cfg, sizeof(cfg), "%s/mqbusd-retained.conf", tmp_dir);
	fc = fopen(cfg, "we");
	if (!fc ||
	    fprintf(fc, "[bus]\nmax_retained = %u\n",
		    n_retained + 4 * BENCH_SCALE_PROBES + 64) < 0 ||
	    fclose(fc) != 0)
		fatal("cannot write %s", cfg);
	daemon_start_cfg(&d, wake, cfg);
	scale_solo(&j, scale_uids[3], &d, "scale");
	daemon_stop(&d);
	/* the values elsewhere: what mqbusd keeps but the probe's own */
	held = ctl_hold->retained_held - 2 * BENCH_SCALE_PROBES;
	for (unsigned w = 0; w < 2; w++) {
		for (unsigned k = 0; k < 2; k++) {
			memcpy(v,
			       w ? ctl_hold->probe_done_ns[k]
				 : ctl_hold->probe_ns[k],
			       sizeof(v));
			qsort(v, BENCH_SCALE_PROBES, sizeof(v[0]), cmp_u64);
			p50[w][k] = v[BENCH_SCALE_PROBES / 2] / 1e6;
			max[w][k] = v[BENCH_SCALE_PROBES - 1] / 1e6;
		}
	}
	note("scale: %u retained values published in other subtrees, mqbusd "
	     "kept %llu of them (%.1f s for the probe)",
	     n_retained, (unsigned long long)held, (now_ns() - t0) / 1e9);
	scale_fig_add("sub-ack-p50", held, p50[0][1], p50[0][0],
		      "ms SUBSCRIBE to its ACK");
	f = scale_fig_add("sub-done-p50", held, p50[1][1], p50[1][0],
			  "ms SUBSCRIBE to ACK of next request");
	scale_target(f, p50[1][1] < 1.0,
		     "SUBSCRIBE beside %llu retained values in other "
		     "subtrees: p50 %.3f ms to the ACK of the next request "
		     "(%.3f ms with none, max %.3f; its own ACK %.3f ms); "
		     "target < 1 ms",
		     (unsigned long long)held, p50[1][1], p50[1][0],
		     max[1][1], p50[0][1]);
	scale_fig_add("sub-done-max", held, max[1][1], max[1][0],
		      "ms SUBSCRIBE to ACK of next request");
}

/*
 * The scale rows: clients connected by BENCH_SCALE_USERS holders, each
 * client with its subscriptions and retained value; the handshake rate,
 * the time a late subscriber of '#' takes to get every value, mqbusd's
 * VmRSS, and the pubsub round trip between two clients with the others
 * connected or not (a second daemon that has only the two); then the
 * subscribe row.
 */
static void run_scale(enum bench_wake wake)
{
	unsigned clients = opt.scale_clients	 ? (unsigned)opt.scale_clients
			   : opt.quick ? SCALE_QUICK_CLIENTS
				       : SCALE_CLIENTS;
	unsigned n_retained = opt.scale_retained ? (unsigned)opt.scale_retained
			      : opt.quick	 ? SCALE_QUICK_RETAINED
						 : SCALE_RETAINED;
	unsigned held = clients - 2, n_hold = BENCH_SCALE_USERS;
	pid_t holders[BENCH_SCALE_USERS];
	char cfg[160];
	struct daemon big, small;
	struct spec pair[2];
	double ack[2], all[2], hs, setup;
	uint64_t t0, t_end = 0;
	long rss[2];
	FILE *fc;

	if (!group_on(MODE_SCALE_RTT))
		return;
	if (!opt.use_uids) {
		note("scale rows skipped: they run their clients as users "
		     "mqbench1-%d and need root (and not --no-uids)",
		     BENCH_SCALE_USERS);
		return;
	}
	scale_users();
	scale_check_budget(clients);
	scale_namespace(clients);
	snprintf(cfg, sizeof(cfg), "%s/mqbusd-scale.conf", tmp_dir);
	fc = fopen(cfg, "we");
	/* room for every client, and a backlog that holds every retained
	 * value for the late subscriber's small queue */
	if (!fc ||
	    fprintf(fc,
		    "[bus]\nmax_clients = %u\nmax_clients_per_uid = %u\n"
		    "pending_max = %u\n"
		    "pending_bytes = 67108864\nmax_subscriptions = 1024\n"
		    "max_retained = %u\n",
		    clients + 16, clients + 16, clients + 256,
		    n_retained + clients + 64) <
		    0 ||
	    fclose(fc) != 0)
		fatal("cannot write %s", cfg);
	daemon_start_cfg(&small, wake, cfg);
	daemon_start_cfg(&big, wake, cfg);

	/* the holders connect their clients at the go, all at once */
	memset(ctl_scale, 0, sizeof(*ctl_scale));
	for (unsigned k = 0; k < n_hold; k++) {
		struct bench_job j = {
			.kind = JOB_SCALE_HOLDER,
			.ctl = ctl_scale,
			.index = k,
			.first = k * held / n_hold,
			.n_clients = (k + 1) * held / n_hold - k * held / n_hold,
			.maxmsg = BENCH_SCALE_MAXMSG,
			.msgsize = BENCH_SCALE_MSGSIZE,
		};

		snprintf(j.bus, sizeof(j.bus), "%s", big.bus);
		holders[k] = spawn_job(&j, scale_uids[k]);
	}
	scale_wait(ctl_scale, &ctl_scale->ready, n_hold, holders, n_hold, &big,
		   "scale: holders");
	t0 = now_ns();
	atomic_store(&ctl_scale->go, 1);
	futex_wake(&ctl_scale->go);
	scale_wait(ctl_scale, &ctl_scale->stepped, n_hold, holders, n_hold,
		   &big, "scale: handshakes");
	for (unsigned k = 0; k < n_hold; k++)
		if (ctl_scale->t_step[k] > t_end)
			t_end = ctl_scale->t_step[k];
	hs = held / ((t_end - t0) / 1e9);
	t0 = now_ns();
	atomic_store(&ctl_scale->step, 1);
	futex_wake(&ctl_scale->step);
	scale_wait(ctl_scale, &ctl_scale->stepped, 2 * n_hold, holders, n_hold,
		   &big, "scale: subscriptions");
	setup = (now_ns() - t0) / 1e9;
	note("scale: %u clients connected in %.2f s, then %u subscriptions "
	     "and %u retained values in %.2f s",
	     held, held / hs, held * BENCH_SCALE_SUBS, held, setup);

	/* the round trips, with 2 clients and with all, in turns */
	pair[0] = spec_of(MODE_SCALE_RTT, (int)wake, 64, 1, 1,
			  2 * BENCH_SCALE_SUBS, &small);
	pair[0].clients = clients;
	pair[1] = spec_of(MODE_SCALE_RTT, (int)wake, 64, 1, 1,
			  (long)clients * BENCH_SCALE_SUBS, &big);
	pair[1].clients = clients;
	measure(pair, 2);
	/* the same with requests; the responder's "bench/ping" is the one
	 * subscription the pair adds */
	pair[0] = spec_of(MODE_SCALE_REQ, (int)wake, 64, 1, 1, 1, &small);
	pair[0].clients = clients;
	pair[1] = spec_of(MODE_SCALE_REQ, (int)wake, 64, 1, 1,
			  (long)(clients - 2) * BENCH_SCALE_SUBS + 1, &big);
	pair[1].clients = clients;
	measure(pair, 2);

	rss[0] = proc_status_kib(small.pid, "VmRSS");
	rss[1] = proc_status_kib(big.pid, "VmRSS");
	/* every client's value is kept now: the pair's outlive them */
	scale_late(&small, clients - 2, 2, &ack[0], &all[0]);
	scale_late(&big, 0, clients, &ack[1], &all[1]);

	scale_quit(ctl_scale, holders, n_hold, "scale: holders");
	daemon_stop(&big);
	daemon_stop(&small);

	scale_fig_add("handshakes", clients - 2, hs, NAN,
		      "clients/s, n connecting at once");
	scale_fig_add("late-#-ack", clients, ack[1], ack[0],
		      "ms SUBSCRIBE # to ACK");
	scale_fig_add("late-#-all", clients, all[1], all[0],
		      "ms SUBSCRIBE # to every value");
	scale_fig_add("daemon-rss", clients, rss[1] / 1024.0, rss[0] / 1024.0,
		      "MiB VmRSS");
	scale_subscribe_row(wake, n_retained);
	scale_print();
}

/* ---------------------------------------------------------------- peers */

static void peer_print_log(const struct peer_broker *b)
{
	char line[512];
	FILE *f = fopen(b->log, "re");

	while (f && fgets(line, sizeof(line), f))
		fprintf(stderr, "  %s: %s", peer_ops_of(b->peer)->name, line);
	if (f)
		fclose(f);
}

/*
 * Starts the private broker of a peer and waits until it serves.  Returns
 * false, having said why, when the peer cannot be measured here (not
 * installed); a broker that is there but does not start fails the run.
 */
static bool peer_start(struct peer_broker *b, enum bench_peer peer)
{
	const struct peer_ops *ops = peer_ops_of(peer);
	uint64_t end;
	char why[300];
	pid_t pid;

	memset(b, 0, sizeof(*b));
	b->peer = peer;
	if (ops->prepare(b, why, sizeof(why)) < 0) {
		ops->cleanup(b);
		note("%s: %s", ops->name, why);
		return false;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(b->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int nul = open("/dev/null", O_RDWR);

		child_setup(ctl_row, 0, false);
		if (fd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 ||
		    dup2(fd, 2) < 0)
			_exit(126);
		unsetenv("NOTIFY_SOCKET");
		unsetenv("JOURNAL_STREAM");
		unsetenv("WATCHDOG_USEC");
		ops->exec(b);
	}
	child_track(pid, true);
	b->pid = pid;
	end = now_ns() + 10000000000ull;
	for (;;) {
		int r = ops->ready(b, why, sizeof(why)), st;

		if (r == 0) {
			char port[24] = "";

			if (b->port)
				snprintf(port, sizeof(port), " port %u",
					 b->port);
			peer_version(peer, why, sizeof(why));
			note("%s: %s, pid %d, on %s%s", ops->name, why,
			     (int)b->cpu_pid, b->addr, port);
			return true;
		}
		st = child_wait(pid, 0);
		if (r < 0 || st != -1 || now_ns() > end) {
			peer_print_log(b);
			if (r < 0)
				fatal("%s: %s", ops->name, why);
			if (st != -1)
				fatal("%s exited at start with status %d",
				      ops->name,
				      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
			fatal("%s did not serve within 10 s", ops->name);
		}
		check_interrupted();
		usleep(5000);
	}
}

static void peer_stop(struct peer_broker *b)
{
	child_end(b->pid, true);
	peer_ops_of(b->peer)->cleanup(b);
}

/*
 * The peer rows: pubsub at 64 and 1024 bytes, fanout to 16 and rtt at
 * 64 bytes, each a set of the mqbus row and the same row through each
 * peer that is installed, measured in turns like the relay and pubsub
 * rows, so that every mqbus row gets the median of its paired ratios to
 * each peer.  The first wake-up method.
 */
static void run_peers(enum bench_wake wake)
{
	static const struct {
		enum mode mode, peer_mode[BENCH_PEER_COUNT];
		size_t size;
		unsigned subs;
	} sets[] = {
		{MODE_PUBSUB, {MODE_DBUS_PUBSUB, MODE_MQTT_PUBSUB}, 64, 1},
		{MODE_PUBSUB, {MODE_DBUS_PUBSUB, MODE_MQTT_PUBSUB}, 1024, 1},
		{MODE_FANOUT, {MODE_DBUS_FANOUT, MODE_MQTT_FANOUT}, 64, 16},
		{MODE_RTT, {MODE_DBUS_RTT, MODE_MQTT_RTT}, 64, 1},
	};
	bool up[BENCH_PEER_COUNT];
	struct spec set[BENCH_PEER_COUNT + 1];
	struct daemon d;

	if (!group_on(MODE_DBUS_PUBSUB))
		return;
	for (unsigned i = 0; i < BENCH_PEER_COUNT; i++)
		up[i] = peer_start(&peer_brokers[i], (enum bench_peer)i);
	daemon_start(&d, wake);
	for (size_t k = 0; k < sizeof(sets) / sizeof(sets[0]); k++) {
		unsigned n = 0;

		/* the peers first: their rows are committed, and so found,
		 * before the mqbus row that is judged against them */
		for (unsigned i = 0; i < BENCH_PEER_COUNT; i++) {
			if (!up[i])
				continue;
			set[n] = spec_of(sets[k].peer_mode[i], -1, sets[k].size,
					 1, sets[k].subs, 0, NULL);
			set[n++].peer = &peer_brokers[i];
		}
		set[n] = spec_of(sets[k].mode, (int)wake, sets[k].size, 1,
				 sets[k].subs, 0, &d);
		set[n++].vs_peers = true;
		measure(set, n);
	}
	daemon_stop(&d);
	for (unsigned i = 0; i < BENCH_PEER_COUNT; i++)
		if (up[i])
			peer_stop(&peer_brokers[i]);
}

/* ---------------------------------------------------------------- bridge */

#define BRIDGE_NAME "bench"

/*
 * A config with one [bridge] to the broker b: out maps the local pattern
 * out (no prefix, QoS 0), in takes in_pattern; the bridge's queue holds
 * more than a publisher's window.
 */
static void bridge_write(const char *path, const struct peer_broker *b,
			 const char *out_pattern, const char *in_pattern)
{
	FILE *f = fopen(path, "we");

	if (!f || fprintf(f,
			  "[bus]\nmax_subscriptions = 200000\n\n"
			  "[bridge " BRIDGE_NAME "]\n"
			  "host = %s\nport = %u\nclient_id = mqbench-%d-%u\n"
			  "keepalive = 600\nqueue = 1000\n"
			  "out = %s qos=0\nin = %s qos=0\n",
			  b->addr, b->port, (int)self_pid, n_made + 1,
			  out_pattern, in_pattern) < 0 ||
	    fclose(f) != 0)
		fatal("cannot write %s", path);
}

/* Waits until daemon d's bridge is connected: its stats say so, within
 * 10 s. */
static void bridge_wait(const struct daemon *d)
{
	uint64_t end = now_ns() + 10000000000ull;
	mqbus *b = NULL;
	char *text = NULL;
	int r = mqbus_new(&b);

	if (r < 0 || mqbus_set_bus(b, d->bus) < 0 ||
	    mqbus_set_queue_size(b, BENCH_MAXMSG, BENCH_MSGSIZE) < 0 ||
	    mqbus_connect(b) < 0)
		fatal("bridge: cannot connect to %s: %s", d->bus,
		      b ? mqbus_last_error(b) : strerror(-r));
	for (;;) {
		free(text);
		text = NULL;
		if (mqbus_stats(b, &text) < 0)
			fatal("bridge: no stats from %s: %s", d->bus,
			      mqbus_last_error(b));
		if (strstr(text, "bridge." BRIDGE_NAME ".connected=1\n"))
			break;
		if (now_ns() > end) {
			daemon_print_log(d);
			fatal("bridge: mqbusd's bridge did not connect within "
			      "10 s");
		}
		check_interrupted();
		usleep(20000);
	}
	free(text);
	mqbus_free(b);
}

/*
 * bridge-mqtt: the bench's mqbus publisher on bench/data, to mqbusd,
 * whose bridge forwards it (QoS 0) to mosquitto, to a libmosquitto
 * subscriber of bench/data (peer-mqtt.c), which checks every message and
 * acknowledges it to the publisher's window as every subscriber does.
 * The CPU time is mqbusd's.
 */
static void run_bridge_mqtt(const struct spec *sp, struct row *r)
{
	struct bench_job *j;
	struct plan p;
	struct meas m;

	plan_init(&p, sp);
	p.daemon = sp->d->pid;
	j = plan_add(&p, JOB_PEER_SINK, opt.uid_base + p.n);
	j->which_peer = BENCH_PEER_MQTT;
	snprintf(j->peer_addr, sizeof(j->peer_addr), "%s", sp->remote->addr);
	j->peer_port = sp->remote->port;
	j->size = sp->size;
	j->index = 0;
	j->n_streams = 1;
	j = plan_add(&p, JOB_BUS_SOURCE, opt.uid_base + p.n);
	snprintf(j->bus, sizeof(j->bus), "%s", sp->d->bus);
	j->size = sp->size;
	j->n_sinks = 1;
	j->window = BENCH_WINDOW;
	j->count = row_count(1);
	p.n_streams = p.n_sinks = 1;
	plan_run(&p, &m);
	row_fill(r, MODE_BRIDGE_MQTT, (int)sp->d->wake, sp->size, 1, 1, 0,
		 &m);
}

/*
 * The bridge rows, beside a private mosquitto (peer-mqtt.c):
 *   br0-pub, br1-pub  pubsub 64 B on a daemon without a bridge and on one
 *                     whose bridge is connected and idle (its out and in
 *                     patterns share bench/ with what is published but
 *                     match none of it), measured in turns; br1-pub's
 *                     target is on the median of the paired ratios;
 *   bridge-mqtt       throughput through the bridge to a remote
 *                     subscriber, next to mqtt-pubsub (mosquitto's own
 *                     client to client), 64 and 1024 B: xmqtt.
 */
static void run_bridge(enum bench_wake wake)
{
	static const size_t bridge_sizes[] = { 64, 1024 };
	struct peer_broker *mq = &peer_brokers[BENCH_PEER_MQTT];
	struct daemon plain, idle, fwd;
	struct spec set[2];
	char cfg[2][192];

	if (!group_on(MODE_BR0_PUB))
		return;
#ifndef HAVE_MQTT
	note("bridge rows: skipped: mqbusd was built without the MQTT bridge "
	     "(libmosquitto-dev was not installed when configure ran)");
	return;
#endif
	if (!peer_start(mq, BENCH_PEER_MQTT)) {
		note("bridge rows: skipped: they need mosquitto");
		return;
	}
	snprintf(cfg[0], sizeof(cfg[0]), "%s/mqbusd-bridge-idle.conf",
		 tmp_dir);
	snprintf(cfg[1], sizeof(cfg[1]), "%s/mqbusd-bridge-out.conf", tmp_dir);
	bridge_write(cfg[0], mq, "bench/idle/#", "bench/remote/#");
	note("bridge: br1-pub's daemon has one bridge to mosquitto port %u, "
	     "connected, out = bench/idle/#, in = bench/remote/# (%s); "
	     "br0-pub's none",
	     mq->port, cfg[0]);
	daemon_start(&plain, wake);
	daemon_start_cfg(&idle, wake, cfg[0]);
	bridge_wait(&idle);
	set[0] = spec_of(MODE_BR0_PUB, (int)wake, 64, 1, 1, 0, &plain);
	set[1] = spec_of(MODE_BR1_PUB, (int)wake, 64, 1, 1, 0, &idle);
	measure(set, 2);
	daemon_stop(&idle);
	daemon_stop(&plain);

	bridge_write(cfg[1], mq, BENCH_TOPIC, "bench/remote/#");
	note("bridge: bridge-mqtt's daemon forwards " BENCH_TOPIC " (QoS 0, "
	     "MQTT 5 with its 7 user properties) to mosquitto (%s); us/msg "
	     "is mqbusd's CPU; xmqtt: over mqtt-pubsub, paired",
	     cfg[1]);
	daemon_start_cfg(&fwd, wake, cfg[1]);
	bridge_wait(&fwd);
	for (size_t i = 0; i < sizeof(bridge_sizes) / sizeof(bridge_sizes[0]);
	     i++) {
		set[0] = spec_of(MODE_MQTT_PUBSUB, -1, bridge_sizes[i], 1, 1,
				 0, NULL);
		set[0].peer = mq;
		set[1] = spec_of(MODE_BRIDGE_MQTT, (int)wake, bridge_sizes[i],
				 1, 1, 0, &fwd);
		set[1].remote = mq;
		set[1].vs_peers = true;
		measure(set, 2);
	}
	daemon_stop(&fwd);
	peer_stop(mq);
}

static void run_all(void)
{
	run_raw();
	for (unsigned w = 0; w < opt.n_wakes; w++)
		run_wake(opt.wakes[w]);
	run_fanout_clients(opt.wakes[0]);
	run_topics(opt.wakes[0]);
	run_policy(opt.wakes[0]);
	run_scale(opt.wakes[0]);
	run_peers(opt.wakes[0]);
	run_bridge(opt.wakes[0]);
}

/* ---------------------------------------------------------------- start */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: mqbus-bench [OPTION]...\n"
		"Measure mqbusd against raw POSIX queues and a bare relay.\n\n"
		"  -q, --quick            the headline rows only, and the scale "
		"rows with\n"
		"                         500 clients (under a minute)\n"
		"  -j, --json             one JSON object per row on stdout\n"
		"  -p, --pin=CPU          run every process on CPU\n"
		"  -d, --duration-ms=MS   measure each row for MS ms "
		"(default %d,\n"
		"                         %d with --quick)\n"
		"  -n, --count=N          send N messages (round trips) per "
		"row instead\n"
		"  -r, --repeat=N         measure each row N times, report "
		"medians\n"
		"                         (default %d)\n"
		"      --daemon=PATH      mqbusd to run (default "
		"$MQBUS_BENCH_DAEMON,\n"
		"                         else ../../daemon/mqbusd from this "
		"program)\n"
		"      --wake=LIST        wake-up methods, comma-separated "
		"(default\n"
		"                         notify,thread,poll; the first one "
		"serves the\n"
		"                         fanout, clients, topics and memory "
		"rows)\n"
		"      --only=LIST        rows: direct,relay,pubsub,rtt,fanout,"
		"topics,\n"
		"                         clients,memory,policy,scale,peers,"
		"bridge\n"
		"                         (default all but peers and bridge; "
		"scale\n"
		"                         needs root and makes users mqbench1-8"
		" with\n"
		"                         useradd if missing)\n"
		"      --peers            also the peer rows: pubsub, fanout "
		"and rtt\n"
		"                         next to dbus-broker and mosquitto, "
		"where\n"
		"                         installed (--only peers: those "
		"alone)\n"
		"      --bridge           also the bridge rows, beside a "
		"private\n"
		"                         mosquitto: pubsub 64 B with one idle "
		"MQTT\n"
		"                         bridge against none (br1-pub, br0-pub,"
		" paired),\n"
		"                         and publisher -> mqbusd -> bridge -> "
		"mosquitto\n"
		"                         -> subscriber (bridge-mqtt) beside "
		"mosquitto's\n"
		"                         own mqtt-pubsub (--only bridge: "
		"those alone)\n"
		"      --uid-base=UID     as root, run the processes of a row "
		"as UID,\n"
		"                         UID+1, ... (default %u)\n"
		"      --no-uids          as root, run everything as root\n"
		"      --raw-wait=HOW     how the raw round-trip clients wait:"
		" block\n"
		"                         (blocking mq_receive, the default) "
		"or poll\n"
		"                         (poll, then mq_receive, as libmqbus "
		"does)\n"
		"      --scale-clients=N  clients of the scale rows (default "
		"%d, %d with\n"
		"                         --quick)\n"
		"      --scale-retained=N retained values beside the scale rows'"
		" SUBSCRIBE\n"
		"                         (default %d, %d with --quick)\n"
		"  -h, --help             show this help\n\n"
		"Exit status: 0 when every message arrived intact and in "
		"order (missed\ntargets do not count), 1 when not or when the "
		"run failed, 2 for usage\nerrors.\n",
		DEFAULT_DURATION_MS, QUICK_DURATION_MS, DEFAULT_REPEAT,
		DEFAULT_UID_BASE, SCALE_CLIENTS, SCALE_QUICK_CLIENTS,
		SCALE_RETAINED, SCALE_QUICK_RETAINED);
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		return false;
	*ret = v;
	return true;
}

/* Parses a comma-separated list of names; returns a bit per name. */
static bool parse_list(const char *arg, const char *const *names, size_t n,
		       unsigned *ret_mask, unsigned *order, unsigned *n_order)
{
	char buf[256], *save = NULL, *tok;
	unsigned mask = 0;

	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < n; i++)
			if (strcmp(tok, names[i]) == 0)
				break;
		if (i == n)
			return false;
		if (!(mask & 1u << i) && order)
			order[(*n_order)++] = (unsigned)i;
		mask |= 1u << i;
	}
	*ret_mask = mask;
	return mask != 0;
}

/* ../../daemon/mqbusd from the directory of this program. */
static const char *default_daemon(void)
{
	static char path[PATH_MAX + 32];
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return "../../daemon/mqbusd";
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	/* a libtool-built program may run from .libs/ */
	if (strlen(exe) >= 6 && strcmp(exe + strlen(exe) - 6, "/.libs") == 0)
		exe[strlen(exe) - 6] = '\0';
	snprintf(path, sizeof(path), "%s/../../daemon/mqbusd", exe);
	return path;
}

static void parse_options(int argc, char **argv)
{
	enum {
		OPT_DAEMON = 0x100,
		OPT_WAKE,
		OPT_ONLY,
		OPT_UID_BASE,
		OPT_NO_UIDS,
		OPT_RAW_WAIT,
		OPT_SCALE_CLIENTS,
		OPT_SCALE_RETAINED,
		OPT_PEERS,
		OPT_BRIDGE,
	};
	static const struct option longopts[] = {
	    {"quick", no_argument, NULL, 'q'},
	    {"json", no_argument, NULL, 'j'},
	    {"pin", required_argument, NULL, 'p'},
	    {"duration-ms", required_argument, NULL, 'd'},
	    {"count", required_argument, NULL, 'n'},
	    {"repeat", required_argument, NULL, 'r'},
	    {"daemon", required_argument, NULL, OPT_DAEMON},
	    {"wake", required_argument, NULL, OPT_WAKE},
	    {"only", required_argument, NULL, OPT_ONLY},
	    {"uid-base", required_argument, NULL, OPT_UID_BASE},
	    {"no-uids", no_argument, NULL, OPT_NO_UIDS},
	    {"raw-wait", required_argument, NULL, OPT_RAW_WAIT},
	    {"scale-clients", required_argument, NULL, OPT_SCALE_CLIENTS},
	    {"scale-retained", required_argument, NULL, OPT_SCALE_RETAINED},
	    {"peers", no_argument, NULL, OPT_PEERS},
	    {"bridge", no_argument, NULL, OPT_BRIDGE},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const char *const wake_names[] = {"notify", "thread", "poll"};
	bool no_uids = false;
	unsigned order[BENCH_WAKE_COUNT], n_order = 0, mask;
	uint64_t v;
	int c;

	opt.daemon = getenv("MQBUS_BENCH_DAEMON");
	opt.uid_base = DEFAULT_UID_BASE;
	while ((c = getopt_long(argc, argv, "qjp:d:n:r:h", longopts, NULL)) !=
	       -1) {
		switch (c) {
		case 'q':
			opt.quick = true;
			break;
		case 'j':
			opt.json = true;
			break;
		case 'p':
			if (!parse_u64(optarg, 0, CPU_SETSIZE - 1, &v))
				goto bad;
			opt.pin = (int)v;
			break;
		case 'd':
			if (!parse_u64(optarg, 10, 3600000, &opt.duration_ms))
				goto bad;
			break;
		case 'n':
			if (!parse_u64(optarg, 1, 1000000000, &opt.count))
				goto bad;
			break;
		case 'r':
			if (!parse_u64(optarg, 1, REPEAT_MAX, &v))
				goto bad;
			opt.repeat = (unsigned)v;
			break;
		case OPT_DAEMON:
			opt.daemon = optarg;
			break;
		case OPT_WAKE:
			n_order = 0;
			if (!parse_list(optarg, wake_names, 3, &mask, order,
					&n_order))
				goto bad;
			break;
		case OPT_ONLY:
			if (!parse_list(optarg, group_names, N_GROUPS, &opt.only,
					NULL,
					NULL))
				goto bad;
			break;
		case OPT_UID_BASE:
			if (!parse_u64(optarg, 1, 4000000000u, &v))
				goto bad;
			opt.uid_base = (uid_t)v;
			break;
		case OPT_NO_UIDS:
			no_uids = true;
			break;
		case OPT_RAW_WAIT:
			if (strcmp(optarg, "poll") == 0)
				opt.raw_poll = true;
			else if (strcmp(optarg, "block") == 0)
				opt.raw_poll = false;
			else
				goto bad;
			break;
		case OPT_SCALE_CLIENTS:
			/* up to what max_clients allows */
			if (!parse_u64(optarg, 10, 60000, &opt.scale_clients))
				goto bad;
			break;
		case OPT_SCALE_RETAINED:
			if (!parse_u64(optarg, 1, 10000000,
				       &opt.scale_retained))
				goto bad;
			break;
		case OPT_PEERS:
			opt.peers = true;
			break;
		case OPT_BRIDGE:
			opt.bridge = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mqbus-bench: unexpected argument '%s'\n",
			argv[optind]);
		exit(2);
	}
	if (n_order == 0)
		for (unsigned i = 0; i < BENCH_WAKE_COUNT; i++)
			order[n_order++] = i;
	for (unsigned i = 0; i < n_order; i++)
		opt.wakes[i] = (enum bench_wake)order[i];
	opt.n_wakes = n_order;
	if (!opt.daemon || !*opt.daemon)
		opt.daemon = default_daemon();
	if (!opt.duration_ms)
		opt.duration_ms =
		    opt.quick ? QUICK_DURATION_MS : DEFAULT_DURATION_MS;
	opt.use_uids = geteuid() == 0 && !no_uids;
	if (!opt.use_uids)
		opt.uid_base = getuid();
	return;

bad:
	fprintf(stderr, "mqbus-bench: invalid argument '%s'\n", optarg);
	usage(stderr);
	exit(2);
}

static void setup(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	long msgsize_max =
	    read_long_file("/proc/sys/fs/mqueue/msgsize_max", -1);
	long msg_max = read_long_file("/proc/sys/fs/mqueue/msg_max", -1);
	struct rlimit rl;
	FILE *f;

	self_pid = getpid();
	out = stdout;
	info = opt.json ? stderr : stdout;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (access(opt.daemon, X_OK) < 0) {
		fprintf(
		    stderr,
		    "mqbus-bench: cannot run mqbusd at %s: %s (build it, or "
		    "use --daemon / $MQBUS_BENCH_DAEMON)\n",
		    opt.daemon, strerror(errno));
		exit(1);
	}
	if ((msgsize_max > 0 && msgsize_max < BENCH_MSGSIZE) ||
	    (msg_max > 0 && msg_max < BENCH_MAXMSG)) {
		fprintf(stderr,
			"mqbus-bench: queues of %d x %d bytes exceed "
			"fs.mqueue.msg_max (%ld) or msgsize_max (%ld); raise "
			"them with sysctl\n",
			BENCH_MAXMSG, BENCH_MSGSIZE, msg_max, msgsize_max);
		exit(1);
	}
	/* a hard limit above the soft one is ours to use */
	if (getrlimit(RLIMIT_MSGQUEUE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_MSGQUEUE, &rl);
	}
	if (opt.pin >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(opt.pin, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0) {
			fprintf(stderr,
				"mqbus-bench: cannot pin to CPU %d: %s\n",
				opt.pin, strerror(errno));
			exit(2);
		}
	}

	ctl_row =
	    mmap(NULL, 3 * sizeof(struct bench_ctl), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl_row == MAP_FAILED) {
		fprintf(stderr, "mqbus-bench: mmap: %s\n", strerror(errno));
		exit(1);
	}
	ctl_hold = ctl_row + 1;
	ctl_scale = ctl_row + 2;

	snprintf(prefix, sizeof(prefix), "mqbench%d-", (int)self_pid);
	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/mqbus-bench.XXXXXX");
	if (!mkdtemp(tmp_dir)) {
		fprintf(stderr, "mqbus-bench: mkdtemp: %s\n", strerror(errno));
		tmp_dir[0] = '\0';
		exit(1);
	}
	atexit(cleanup);
	snprintf(cfg_path, sizeof(cfg_path), "%s/mqbusd.conf", tmp_dir);
	f = fopen(cfg_path, "we");
	if (!f || fprintf(f, "[bus]\nmax_subscriptions = 200000\n") < 0 ||
	    fclose(f) != 0)
		fatal("cannot write %s", cfg_path);
}

static void print_header(void)
{
	char date[64], host[128] = "?", model[128] = "?", line[256];
	long msgsize_max =
	    read_long_file("/proc/sys/fs/mqueue/msgsize_max", -1);
	time_t t = time(NULL);
	struct utsname u;
	FILE *f;

	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S %Z", localtime(&t));
	gethostname(host, sizeof(host) - 1);
	if (uname(&u) < 0)
		snprintf(u.release, sizeof(u.release), "?");
	f = fopen("/proc/cpuinfo", "re");
	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) == 0 && colon) {
			snprintf(model, sizeof(model), "%s", colon + 2);
			model[strcspn(model, "\n")] = '\0';
			break;
		}
	}
	if (f)
		fclose(f);

	note("mqbus-bench %s, %s, Linux %s, %s, %ld CPUs online%s", date, host,
	     u.release, model, sysconf(_SC_NPROCESSORS_ONLN),
	     opt.quick ? ", quick" : "");
	if (opt.pin >= 0)
		note("every process pinned to CPU %d", opt.pin);
	else
		note("processes not pinned");
	note("queues: maxmsg %d, msgsize %d (fs.mqueue.msgsize_max %ld) for "
	     "every queue of every row but the scale rows'",
	     BENCH_MAXMSG, BENCH_MSGSIZE, msgsize_max);
	if (opt.count)
		note("%llu messages (round trips) per run; each row is the "
		     "median of %u runs; window %d messages per publisher",
		     (unsigned long long)opt.count, opt.repeat, BENCH_WINDOW);
	else
		note("%llu ms per run; each row is the median of %u runs; "
		     "window %d messages per publisher",
		     (unsigned long long)opt.duration_ms, opt.repeat,
		     BENCH_WINDOW);
	if (opt.use_uids)
		note(
		    "each process of a row runs as its own uid from %u; mqbusd "
		    "as root",
		    (unsigned)opt.uid_base);
	else
		note("every process runs as uid %u", (unsigned)getuid());
	note("mqbusd: %s", opt.daemon);
	{
		const char *pb = getenv("MQBUS_BENCH_PUBLISH_BATCH");

		if (pb && strcmp(pb, "0") == 0)
			note("mqbus publishers wait for room in a full tx "
			     "(MQBUS_BENCH_PUBLISH_BATCH=0)");
		else if (pb && strcmp(pb, "1") == 0)
			note("mqbus publishers hold what a full tx cannot "
			     "take in a batch frame "
			     "(MQBUS_PUBLISH_BATCH_FULL; "
			     "MQBUS_BENCH_PUBLISH_BATCH=1)");
		else
			note("mqbus publishers fill batch frames and flush "
			     "before they wait for their window "
			     "(MQBUS_PUBLISH_BATCH_FILL; "
			     "MQBUS_BENCH_PUBLISH_BATCH=1: only into a full "
			     "tx, 0: message by message)");
	}
	if (opt.raw_poll)
		note("raw round-trip clients wait as libmqbus does: poll, then "
		     "mq_receive (--raw-wait=poll)");
	note("msgs/s: published messages (round trips for rtt rows); p50/p99: "
	     "one-way latency under load, the round trip for rtt rows;");
	note("us/msg, us/dlv: CPU time of mqbusd or the relay per message and "
	     "per delivery; xdirect, xrelay: speed relative to the reference "
	     "row (>1 faster)");
	if (group_on(MODE_BR0_PUB))
		note("bridge rows: br1-pub (one idle MQTT bridge) against "
		     "br0-pub (none), paired; bridge-mqtt: an mqbus publisher "
		     "through mqbusd and its bridge to a libmosquitto "
		     "subscriber at mosquitto, QoS 0, xmqtt over mqtt-pubsub");
	if (group_on(MODE_DBUS_PUBSUB))
		note("peer rows: dbus-* through dbus-broker (sd-bus clients), "
		     "mqtt-* through mosquitto (libmosquitto, QoS 0); us/msg is "
		     "the broker's CPU; xdbus, xmqtt of an mqbus row: median of "
		     "its speed over the peer row's, paired by repetition");
	if (!opt.json)
		table_header();
}

static int print_summary(void)
{
	unsigned pass = 0;
	FILE *f = opt.json ? info : out;

	fprintf(f, "\nTargets (the exit status reflects only correctness):\n");
	for (unsigned i = 0; i < n_targets; i++) {
		fprintf(f, "  %s  %s\n", targets[i].pass ? "PASS" : "MISS",
			targets[i].text);
		pass += targets[i].pass;
	}
	fprintf(f,
		"%u of %u targets met; every message arrived intact and in "
		"order.\n",
		pass, n_targets);
	fflush(f);
	return 0;
}

int main(int argc, char **argv)
{
	parse_options(argc, argv);
	setup();
	payload_init_pattern();
	print_header();
	run_all();
	return print_summary();
}

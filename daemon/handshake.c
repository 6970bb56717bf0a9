/* SPDX-License-Identifier: MIT */
/*
 * handshake.c - reading ANNOUNCEs and admitting clients.
 *
 * Every check of a handshake names what failed; a refused client whose rx
 * queue could be opened is told why on it, the others find out by their
 * connect timing out (their queues may not be what they claim).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "daemon/account.h"
#include "daemon/deliver.h"
#include "daemon/handshake.h"
#include "daemon/log.h"
#include "daemon/msgbuf.h"
#include "daemon/peer.h"
#include "daemon/server.h"
#include "daemon/stats.h"
#include "daemon/sweep.h"
#include "proto/proto.h"

static int handshake_read(struct wake_src *src, unsigned budget);
struct candidate;
static void refuse_out_of_fds(struct handshake *hs, struct candidate *c);

static long read_proc_long(const char *path, long dflt)
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

/* Takes (or gives back) the descriptors kept in reserve. */
static void handshake_spares(struct handshake *hs, bool take)
{
	for (int i = 0; i < HANDSHAKE_SPARE_FDS; i++) {
		if (take && hs->spare[i] < 0)
			hs->spare[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		else if (!take && hs->spare[i] >= 0) {
			close(hs->spare[i]);
			hs->spare[i] = -1;
		}
	}
}

/*
 * The announce queue systemd passed (socket activation: a .socket unit
 * with ListenMessageQueue=/BUS), or (mqd_t)-1.  systemd made it, with the
 * unit's mode and sizes, and keeps it across our restarts: what clients
 * announced while no daemon ran waits in it.
 */
static mqd_t announce_inherited(struct handshake *hs)
{
	int n = sd_listen_fds(0);

	for (int fd = SD_LISTEN_FDS_START; n > 0 && fd < SD_LISTEN_FDS_START + n;
	     fd++) {
		struct mq_attr attr;

		if (sd_is_mq(fd, hs->name) <= 0)
			continue;
		if (mq_getattr(fd, &attr) < 0)
			continue;
		if (attr.mq_msgsize > HANDSHAKE_ANNOUNCE_MSGSIZE) {
			log_warnx("the announce queue %s passed by the service "
				  "manager has messages of %ld bytes, more than "
				  "the %d mqbusd reads: not used (set "
				  "MessageQueueMessageSize=%d)",
				  hs->name, attr.mq_msgsize,
				  HANDSHAKE_ANNOUNCE_MSGSIZE,
				  HANDSHAKE_ANNOUNCE_MSGSIZE);
			return (mqd_t)-1;
		}
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
		    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
			return (mqd_t)-1;
		log_info("announce queue %s passed by the service manager",
			 hs->name);
		return (mqd_t)fd;
	}
	return (mqd_t)-1;
}

/*
 * The announce queue a previous daemon of the bus left (it was killed, or
 * stopped while clients lived): reused if it is ours, as we would make it
 * (owner, mode, sizes), so the ANNOUNCEs written while no daemon ran are
 * read now.  Anything else is not trusted: (mqd_t)-1.
 */
static mqd_t announce_reuse(struct handshake *hs, const struct mq_attr *want)
{
	struct mq_attr attr;
	struct stat st;
	mqd_t q;

	q = mq_open(hs->name, O_RDONLY | O_NONBLOCK);
	if (q == (mqd_t)-1)
		return q;
	if (fstat(q, &st) < 0 || st.st_uid != geteuid() ||
	    (st.st_mode & 07777) != 0622 || mq_getattr(q, &attr) < 0 ||
	    attr.mq_msgsize != want->mq_msgsize ||
	    attr.mq_maxmsg != want->mq_maxmsg) {
		mq_close(q);
		return (mqd_t)-1;
	}
	log_info("kept the announce queue %s of the previous daemon, %ld "
		 "announcements waiting",
		 hs->name, attr.mq_curmsgs);
	return q;
}

int handshake_open(struct handshake *hs, struct server *s, char **ret_error)
{
	struct mq_attr attr = { 0 };
	int err;

	hs->server = s;
	hs->announce = (mqd_t)-1;
	for (int i = 0; i < HANDSHAKE_SPARE_FDS; i++)
		hs->spare[i] = -1;
	handshake_spares(hs, true);
	if (asprintf(&hs->name, "/%s", s->bus) < 0) {
		hs->name = NULL;
		*ret_error = strdup("out of memory");
		return -ENOMEM;
	}
	attr.mq_maxmsg = read_proc_long("/proc/sys/fs/mqueue/msg_max", 10);
	if (attr.mq_maxmsg > 64)
		attr.mq_maxmsg = 64;
	attr.mq_msgsize = HANDSHAKE_ANNOUNCE_MSGSIZE;
	/* we hold the bus lock: a queue by this name is a dead daemon's,
	 * kept for what clients announced meanwhile if it is as we make
	 * it, or somebody else's, removed */
	hs->announce = announce_inherited(hs);
	if (hs->announce != (mqd_t)-1) {
		hs->inherited = true;
		goto watch;
	}
	hs->announce = announce_reuse(hs, &attr);
	if (hs->announce != (mqd_t)-1)
		goto watch;
	if (mq_unlink(hs->name) == 0)
		log_info("removed stale announce queue %s", hs->name);
	hs->announce = mq_open(hs->name,
			       O_RDONLY | O_CREAT | O_EXCL | O_NONBLOCK, 0622,
			       &attr);
	if (hs->announce == (mqd_t)-1) {
		err = -errno;
		if (err == -EMFILE || err == -ENOSPC)
			log_kernel_limit(err == -EMFILE ? "RLIMIT_MSGQUEUE"
							: "fs.mqueue.queues_max",
					 0, "mq_open of the announce queue",
					 -err, getuid(),
					 err == -EMFILE
						 ? "LimitMSGQUEUE= in the unit"
						 : "sysctl fs.mqueue.queues_max");
		if (asprintf(ret_error, "cannot create announce queue %s: %s%s",
			     hs->name, strerror(-err),
			     err == -EMFILE ? " (RLIMIT_MSGQUEUE of this user "
					      "exhausted)"
			     : err == -ENOSPC ? " (fs.mqueue.queues_max "
						"reached)"
					      : "") < 0)
			*ret_error = NULL;
		return err;
	}
	/* anyone may announce, only we read: undo the umask */
	if (fchmod(hs->announce, 0622) < 0)
		log_warn("cannot set mode 0622 on %s", hs->name);
watch:
	hs->src.mqd = hs->announce;
	hs->src.read = handshake_read;
	err = wake_add(s->wake, &hs->src);
	if (err < 0 && asprintf(ret_error, "cannot watch %s: %s", hs->name,
				strerror(-err)) < 0)
		*ret_error = NULL;
	return err;
}

void handshake_unlink(struct handshake *hs)
{
	/* a passed queue is systemd's: it stays for the next start */
	if (hs->name && !hs->inherited)
		mq_unlink(hs->name);
}

void handshake_close(struct handshake *hs)
{
	wake_del(&hs->src);
	if (hs->server)
		handshake_spares(hs, false);
	if (hs->announce != (mqd_t)-1) {
		mq_close(hs->announce);
		handshake_unlink(hs);
	}
	hs->announce = (mqd_t)-1;
	free(hs->name);
	hs->name = NULL;
}

/* What a handshake in progress holds; closed by handshake_done(). */
struct candidate {
	const char *tx_name;
	char rx_name[PROTO_QNAME_MAX + 1];
	size_t stem; /* length of the name before ".tx" */
	pid_t pid;   /* from the name, and the HELLO must agree */
	uid_t uid;   /* the tx queue's owner, (uid_t)-1 until known */
	mqd_t tx;
	mqd_t rx;
	int pidfd;
	bool resume;	 /* PROTO_F_RESUME: no HELLO to read */
	bool batch;	 /* PROTO_F_BATCH: it reads BATCH frames */
	bool origin;	 /* PROTO_F_ORIGIN: it takes remote origins */
	bool shm;	 /* PROTO_F_SHM: it can attach for memory files */
	bool out_of_fds; /* the daemon ran out of descriptors on the way */
};

static void handshake_done(struct candidate *c)
{
	if (c->tx != (mqd_t)-1)
		mq_close(c->tx);
	if (c->rx != (mqd_t)-1)
		mq_close(c->rx);
	if (c->pidfd >= 0)
		close(c->pidfd);
}

static int pidfd_open_compat(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* The fs uid of pid, the uid its queues are created with. */
static int proc_fsuid(pid_t pid, uid_t *ret)
{
	char path[64], line[256];
	unsigned long r, e, sv, fs;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Uid: %lu %lu %lu %lu", &r, &e, &sv, &fs) ==
		    4) {
			found = true;
			break;
		}
	}
	fclose(f);
	if (!found)
		return -EIO;
	*ret = (uid_t)fs;
	return 0;
}

static bool pidfd_alive(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, 0) == 0;
}

/* "/BUS.<pid>.<n>.tx": the pid, and the stem length before ".tx". */
static const char *check_name(struct handshake *hs, struct candidate *c)
{
	size_t len = strlen(c->tx_name);

	if (len < 4 || strcmp(c->tx_name + len - 3, ".tx") != 0 ||
	    !sweep_parse_name(hs->server->bus, c->tx_name + 1, &c->pid))
		return "not a tx queue name of this bus";
	c->stem = len - 3;
	return NULL;
}

#define OUT_OF_FDS "the bus's daemon has no file descriptor left"

/* The daemon ran out of file descriptors at what (on queue, if any). */
static const char *out_of_fds(struct candidate *c, const char *what,
			      const char *queue)
{
	char op[PROTO_QNAME_MAX + 32];
	struct rlimit rl = { 0 };

	getrlimit(RLIMIT_NOFILE, &rl);
	snprintf(op, sizeof(op), "%s%s%s", what, *queue ? " " : "", queue);
	log_kernel_limit("RLIMIT_NOFILE", (uint64_t)rl.rlim_cur, op, errno,
			 (uid_t)-1, "LimitNOFILE= in the unit, or ulimit -n");
	c->out_of_fds = true;
	return OUT_OF_FDS;
}

/* Opens tx: a queue nobody but its owner may write, big enough. */
static const char *check_tx(struct candidate *c)
{
	struct mq_attr attr;
	struct stat st;

	c->tx = mq_open(c->tx_name, O_RDONLY | O_NONBLOCK);
	if (c->tx == (mqd_t)-1)
		return errno == EMFILE || errno == ENFILE
			       ? out_of_fds(c, "mq_open", c->tx_name)
			       : strerror(errno);
	if (fstat(c->tx, &st) < 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))
		return "tx queue writable by others";
	/* the library's own minimum: a HELLO with the longest name */
	if (mq_getattr(c->tx, &attr) < 0 ||
	    attr.mq_msgsize < (long)proto_size(PROTO_QNAME_MAX, 0))
		return "tx queue too small";
	c->uid = st.st_uid;
	return NULL;
}

/* Reads the HELLO, written before the ANNOUNCE, with a big buffer. */
static const char *check_hello(struct handshake *hs, struct candidate *c)
{
	struct proto_msg hello;
	struct mq_attr attr;
	struct msgbuf *m;
	const char *why = NULL;
	ssize_t n;
	int r;

	if (mq_getattr(c->tx, &attr) < 0)
		return strerror(errno);
	m = msgbuf_get(&hs->server->pool, (size_t)attr.mq_msgsize);
	if (!m)
		return "out of memory";
	n = mq_receive(c->tx, (char *)m->data, m->cap, NULL);
	r = n < 0 ? -errno : proto_decode(m->data, (size_t)n, &hello);
	if (r < 0)
		why = proto_strerror(r);
	else if (hello.h.type != PROTO_HELLO)
		why = "first message not HELLO";
	else if ((pid_t)hello.h.sender_pid != c->pid)
		why = "HELLO pid does not match name";
	else
		memcpy(c->rx_name, hello.topic, hello.h.topic_len + 1u);
	msgbuf_unref(m);
	if (why)
		return why;
	if (strlen(c->rx_name) != c->stem + 3 ||
	    strncmp(c->rx_name, c->tx_name, c->stem) != 0 ||
	    strcmp(c->rx_name + c->stem, ".rx") != 0)
		return "rx queue name does not match";
	return NULL;
}

/* A resumed client wrote no HELLO: its rx is named after its tx. */
static const char *resume_rx_name(struct candidate *c)
{
	memcpy(c->rx_name, c->tx_name, c->stem);
	memcpy(c->rx_name + c->stem, ".rx", 4);
	return NULL;
}

/* The rx name: from the HELLO, or for a resumed client from tx's. */
static const char *check_rx_name(struct handshake *hs, struct candidate *c)
{
	return c->resume ? resume_rx_name(c) : check_hello(hs, c);
}

/* The process: alive, and running as the owner of the queues. */
static const char *check_process(struct candidate *c)
{
	uid_t fsuid = (uid_t)-1;
	int r;

	c->pidfd = pidfd_open_compat(c->pid);
	if (c->pidfd < 0 && (errno == EMFILE || errno == ENFILE))
		return out_of_fds(c, "pidfd_open", "");
	/* no pidfds (before Linux 5.3, or under valgrind): the peer's
	 * process is then looked for every PEER_PID_POLL_MS */
	if (c->pidfd < 0 && errno == ENOSYS) {
		if (kill(c->pid, 0) < 0)
			return "process gone or of another uid";
	} else if (c->pidfd < 0 || !pidfd_alive(c->pidfd)) {
		return "process gone or of another uid";
	}
	r = proc_fsuid(c->pid, &fsuid);
	if (r == -EMFILE || r == -ENFILE)
		return out_of_fds(c, "open /proc/PID/status", "");
	if (r < 0 || fsuid != c->uid)
		return "process gone or of another uid";
	return NULL;
}

/* rx: the same owner as tx, and nobody else may read it. */
static const char *check_rx(struct candidate *c)
{
	struct stat st;

	c->rx = mq_open(c->rx_name, O_WRONLY | O_NONBLOCK);
	if (c->rx == (mqd_t)-1)
		return errno == EMFILE || errno == ENFILE
			       ? out_of_fds(c, "mq_open", c->rx_name)
			       : "cannot open rx queue";
	if (fstat(c->rx, &st) < 0 || st.st_uid != c->uid ||
	    (st.st_mode & (S_IRGRP | S_IROTH)))
		return "rx queue of another owner or readable by others";
	return NULL;
}

/* Tells a client we will not serve it, on its rx queue. */
static void tell_refused(mqd_t rx, int err, const char *text)
{
	unsigned char buf[PROTO_HEADER_SIZE + 1 + 256];
	struct proto_header h;
	int n;

	proto_header_init(&h, PROTO_ERROR);
	h.status = (uint32_t)err;
	n = proto_encode(buf, sizeof(buf), &h, NULL, text, strlen(text));
	if (n > 0)
		mq_send(rx, (const char *)buf, (size_t)n, PROTO_PRIO_MAX);
}

/* Counts a refusal and journals it, at most once per reason and
 * interval: forged ANNOUNCEs cost a line, not a flood of them. */
static void refuse(struct handshake *hs, const struct candidate *c,
		   const char *why)
{
	struct bus_stats *st = &hs->server->stats;
	struct timespec now;

	st->handshakes_failed++;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (log_ratelimit_hit(&st->rl_refused, log_ratelimit_key(0, why),
			      (uint64_t)now.tv_sec * 1000000u +
				      (uint64_t)now.tv_nsec / 1000u,
			      1) > 0)
		log_handshake_refused(c->tx_name, c->uid, c->pid, why);
}

static void welcome(struct server *s, struct peer *p)
{
	unsigned char buf[PROTO_HEADER_SIZE + SHM_ADDR_MAX + 1 +
			  sizeof(struct proto_welcome)];
	struct proto_welcome w = { 0 };
	struct proto_header h;
	const char *shm_addr = NULL;
	struct mq_attr a;
	int n;

	w.daemon_pid = (uint32_t)s->pid;
	w.max_priority = s->cfg.max_priority;
	w.max_subscriptions = s->cfg.max_subscriptions;
	w.pending_max = s->cfg.pending_max;
	if (mq_getattr(p->rx, &a) == 0) {
		w.rx_maxmsg = a.mq_maxmsg;
		w.rx_msgsize = a.mq_msgsize;
	}
	if (mq_getattr(p->tx, &a) == 0) {
		w.tx_maxmsg = a.mq_maxmsg;
		w.tx_msgsize = a.mq_msgsize;
	}
	proto_header_init(&h, PROTO_WELCOME);
	h.flags = PROTO_F_BATCH; /* we read frames of PUBLISHes */
	h.client_id = p->id;
	/* the largest payload the bus carries (PROTOCOL.md, Large
	 * messages); 0 from a daemon without them */
	h.seq = p->server->cfg.max_message;
	/* where to attach for memory files, and the nonce to say (shm.c) */
	if (shm_offer(p, &shm_addr, &h.timestamp))
		h.flags |= PROTO_F_SHM;
	n = proto_encode(buf, sizeof(buf), &h, shm_addr, &w, sizeof(w));
	if (n > 0)
		deliver_control(p, buf, (size_t)n);
}

/* The checked client becomes a peer, within the bus's limits. */
static void admit(struct handshake *hs, struct candidate *c)
{
	struct server *s = hs->server;
	struct policy_identity ident;
	struct peer *p;
	char text[128];
	int r;

	if (s->peers.count >= s->cfg.max_clients) {
		snprintf(text, sizeof(text),
			 "the bus has reached max_clients (%u)",
			 s->cfg.max_clients);
		tell_refused(c->rx, EUSERS, text);
		refuse(hs, c, text);
		return;
	}
	if (account_held(&s->accounts, c->uid, ACCOUNT_PEERS) >=
	    s->cfg.max_clients_per_uid) {
		snprintf(text, sizeof(text),
			 "uid %u has reached max_clients_per_uid (%u)",
			 (unsigned)c->uid, s->cfg.max_clients_per_uid);
		tell_refused(c->rx, EUSERS, text);
		refuse(hs, c, text);
		return;
	}
	/* who it is for the access policy: read now, while the process
	 * is known to be the queues' owner */
	r = policy_identity_from_pid(&ident, c->pid, c->pidfd, c->uid);
	if (r == -EMFILE || r == -ENFILE) {
		c->out_of_fds = true;
		refuse(hs, c, OUT_OF_FDS);
		refuse_out_of_fds(hs, c);
		return;
	}
	if (r < 0) {
		refuse(hs, c, "process gone or of another uid");
		return;
	}
	if (account_charge(&s->accounts, c->uid, ACCOUNT_PEERS) < 0) {
		policy_identity_deinit(&ident);
		tell_refused(c->rx, ENOMEM, "out of memory");
		refuse(hs, c, "out of memory");
		return;
	}
	r = peer_new(&s->peers, s, c->uid, c->pid, c->tx_name, c->rx_name,
		     c->tx, c->rx, c->pidfd, &p);
	/* peer_new took the queues and the pidfd, also on failure */
	c->tx = c->rx = (mqd_t)-1;
	c->pidfd = -1;
	if (r < 0) {
		policy_identity_deinit(&ident);
		account_credit(&s->accounts, c->uid, ACCOUNT_PEERS);
		refuse(hs, c, strerror(-r));
		return;
	}
	p->ident = ident; /* the peer owns it now */
	p->batch = c->batch;
	p->origin = c->origin;
	p->shm.wants = c->shm;
	p->table->n_origin += p->origin;
	p->sub.deliver = deliver_subscriber;
	p->mon.deliver = deliver_monitor;
	s->stats.handshakes++;
	{
		struct log_client who = stats_who(p);

		log_client_connected(&who);
	}
	welcome(s, p);
	/* a client of the previous daemon: held until the others are back */
	restart_adopt(&s->restart, p);
	/* anything already queued behind HELLO */
	wake_src_ready(&p->src);
}

/*
 * The daemon has no descriptor left for this client: with the ones kept
 * in reserve it opens what it still needs of the client's queues, checked
 * as always, tells the client so on its rx queue (rather than letting it
 * time out), closes them and takes its reserve again.
 */
static void refuse_out_of_fds(struct handshake *hs, struct candidate *c)
{
	struct server *s = hs->server;
	char text[160];
	struct rlimit rl = { 0 };

	handshake_spares(hs, false);
	if (c->pidfd >= 0) {
		close(c->pidfd);
		c->pidfd = -1;
	}
	/* rx, opened and checked now if it was not already */
	if ((c->tx != (mqd_t)-1 || (!check_tx(c) && !check_rx_name(hs, c))) &&
	    c->rx_name[0] && (c->rx != (mqd_t)-1 || !check_rx(c))) {
		getrlimit(RLIMIT_NOFILE, &rl);
		snprintf(text, sizeof(text),
			 "%s (RLIMIT_NOFILE %llu, %u clients): try again "
			 "later",
			 OUT_OF_FDS, (unsigned long long)rl.rlim_cur,
			 s->peers.count);
		tell_refused(c->rx, EMFILE, text);
	}
	handshake_done(c);
	c->tx = c->rx = (mqd_t)-1;
	handshake_spares(hs, true);
}

static void handshake_run(struct handshake *hs, const char *tx_name,
			  unsigned flags)
{
	struct candidate c = {
		.tx_name = tx_name,
		.uid = (uid_t)-1,
		.tx = (mqd_t)-1,
		.rx = (mqd_t)-1,
		.pidfd = -1,
		.resume = (flags & PROTO_F_RESUME) != 0,
		.batch = (flags & PROTO_F_BATCH) != 0,
		.origin = (flags & PROTO_F_ORIGIN) != 0,
		.shm = (flags & PROTO_F_SHM) != 0,
	};
	const char *why;

	/* a client announcing itself twice (a resumed one retries) */
	if (peer_find_tx(&hs->server->peers, tx_name)) {
		log_debug("%s: already connected", tx_name);
		return;
	}
	if ((why = check_name(hs, &c)) || (why = check_tx(&c)) ||
	    (why = check_rx_name(hs, &c)) ||
	    (why = check_process(&c)) ||
	    (why = check_rx(&c))) {
		refuse(hs, &c, why);
		if (c.out_of_fds)
			refuse_out_of_fds(hs, &c);
	} else {
		admit(hs, &c);
	}
	handshake_done(&c);
}

/* The wake source's read of the announce queue. */
static int handshake_read(struct wake_src *src, unsigned budget)
{
	struct handshake *hs = container_of(src, struct handshake, src);

	for (unsigned i = 0; i < budget; i++) {
		struct proto_msg pm;
		ssize_t n;
		int r;

		n = mq_receive(hs->announce, (char *)hs->buf, sizeof(hs->buf),
			       NULL);
		if (n < 0) {
			if (errno == EAGAIN)
				return 0;
			log_warn("reading %s", hs->name);
			return 1;
		}
		r = proto_decode(hs->buf, (size_t)n, &pm);
		if (r < 0 || pm.h.type != PROTO_ANNOUNCE) {
			hs->server->stats.bad_messages++;
			log_debug("bad message on %s: %s", hs->name,
				  r < 0 ? proto_strerror(r)
					: proto_type_name(pm.h.type));
			continue;
		}
		handshake_run(hs, pm.topic, pm.h.flags);
	}
	return 1;
}

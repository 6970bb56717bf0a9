/* SPDX-License-Identifier: MIT */
/*
 * client.c - libmqbus: the handshake, publishing, subscriptions and
 * receiving, blocking or from the caller's own loop.
 *
 * The library keeps a small FIFO of messages that arrived while it waited
 * for the answer to a request (subscribe, stats), so nothing delivered is
 * lost to a request in flight.
 *
 * rx is open twice: non-blocking for mqbus_get_fd() and mqbus_process(),
 * and blocking for waits that are about latency: a reply, or the next
 * request of a client that answers requests.  Those are one
 * mq_timedreceive() each, where poll() and then a read would cost a system
 * call and a wake-up more per round trip.  A subscriber that last got a
 * plain message waits in poll() instead: a receiver blocked in the queue
 * takes each message straight from the daemon's send and wakes at once,
 * so on a busy CPU the two take turns message by message (measured with
 * one CPU: a third less throughput, a quarter more daemon CPU per
 * message), where one in poll() lets a burst collect.  Waits go in slices
 * of at most a second; between slices the daemon's pidfd is checked, so a
 * client notices a daemon that died without a goodbye.
 *
 * For the caller's own loop, mqbus_get_fd() is an epoll fd holding rx and
 * the daemon's pidfd: one fd to watch, readable for a message or for the
 * daemon's death, while the library's own waits keep reading rx directly.
 * The pidfd is looked at only when mqbus_process() finds rx empty, so a
 * message costs no system call more than before.
 *
 * Reconnecting (see mqbus.h and PROTOCOL.md, Restart): a disconnection is
 * a daemon that died (its pidfd), stopped (a BYE with ESHUTDOWN) or
 * dropped us (another BYE, or rx removed under a live daemon; final).
 * After the first two the library writes what it replays (the
 * subscriptions it knows) into tx at the highest priority, then announces
 * tx with PROTO_F_RESUME so that the next daemon adopts it without a
 * HELLO, and announces again after each back-off until a WELCOME comes.
 * Queues that are gone (the next daemon removes those not resumed within
 * its grace time; an older daemon removed them when it stopped) are made
 * anew, with a HELLO first in tx and a plain ANNOUNCE.  A client that
 * only publishes reads no rx: its publishes look at the pidfd at most
 * every LIVENESS_MS, so that it, too, notices and resumes in time.
 * Callbacks run only at the top of mqbus_process() and mqbus_receive(),
 * never while a read is half done.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mqueue.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "client/mqbus.h"
#include "client/reassemble.h"
#include "client/shmio.h"
#include "proto/frag.h"
#include "proto/proto.h"

#define MQBUS_EXPORT __attribute__((visibility("default")))

_Static_assert(MQBUS_KEY_MAX == PROTO_KEY_MAX, "mqbus.h and proto.h agree");
_Static_assert(MQBUS_TOPIC_MAX == PROTO_TOPIC_MAX,
	       "mqbus.h and proto.h agree");

#define DEFAULT_BUS "mqbus"
#define DEFAULT_MAXMSG 10
#define DEFAULT_MSGSIZE 2048
#define DEFAULT_TIMEOUT_MS 5000
/* payloads from here up go in memory files: below, a file's own cost
 * (creating, sealing, passing, its pages) is more than the pieces' */
#define DEFAULT_SHM_MIN 65536
#define BUS_NAME_MAX 200
/* kernel bookkeeping per queued message on 64-bit Linux: struct msg_msg
 * (48 bytes) and struct posix_msg_tree_node (48 bytes) */
#define KERNEL_MSG_OVERHEAD 48
#define KERNEL_PRIO_NODE 48
/* reconnecting: the first wait and the cap of the doubling back-off */
#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 1000
/* while replayed subscriptions wait for room in a full tx */
#define REPLAY_RETRY_MS 10
/* how often publishing looks whether the daemon is still there */
#define LIVENESS_MS 100

/*
 * Received messages come from a pool of slots of the rx message size, so
 * that receiving does not touch the heap once the pool has what the
 * program keeps at a time.  The pool outlives its handle while messages
 * of it are still held (mqbus_msg_free() may come after mqbus_free()).
 */
struct msg_pool {
	unsigned refs;	     /* the handle, and each message out */
	size_t slot;	     /* data bytes of a pooled message */
	struct mqbus_msg *free;
	unsigned n_free;
};

/* spare messages a pool keeps */
#define MSG_POOL_KEEP 64

struct mqbus_msg {
	struct mqbus_msg *next;
	struct msg_pool *pool; /* NULL: malloc'ed alone */
	unsigned refs;	       /* holders: mqbus_msg_ref(), 1 at first */
	struct proto_header h;
	const char *topic;
	const char *key; /* NULL: none */
	const unsigned char *payload;
	/* a bridged message's remote origin, when the handle asked for it
	 * (mqbus_set_origin()): in data[] after the payload's NUL */
	const struct mqbus_origin *origin;
	unsigned char data[]; /* topic, NUL, key, NUL, payload, NUL
				 [, struct mqbus_origin, the block] */
};

/* an asynchronous request waiting for its reply */
struct async_req {
	struct async_req *next;
	char *topic; /* for the error sentence */
	uint32_t token;
	int64_t deadline; /* CLOCK_MONOTONIC ms */
	mqbus_reply_handler fn;
	void *userdata;
	bool reset; /* the daemon went away: fails with -ECONNRESET */
};

/* what the library makes again on a reconnection */
enum replay_state {
	REPLAY_DONE,    /* the daemon has it */
	REPLAY_TO_SEND, /* not yet written into the current tx */
	REPLAY_SENT,    /* written, its answer awaited (token) */
};

/* a subscription, queue-group join or monitor the program made */
struct replay {
	struct replay *next;
	enum replay_state state;
	uint32_t token;
	bool monitor;
	char *group; /* NULL: none */
	/* mqbus_subscribe_cb(): the subscription's handler (else NULL), and
	 * the number of the last message offered to it (handlers_offer()) */
	mqbus_handler fn;
	void *fn_userdata;
	unsigned offered;
	char pattern[];
};

/*
 * The environment variables mqbus_new() reads, in the order a sentence
 * names the ones it could not use, each with what it should be.
 */
enum {
	ENV_BUS,
	ENV_MAXMSG,
	ENV_MSGSIZE,
	ENV_RECONNECT,
	ENV_BATCH,
	ENV_PUBLISH_BATCH,
	ENV_MAX_MESSAGE,
	ENV_SHM,
	ENV_SHM_MIN,
	ENV_SHM_AREA,
	ENV_SHM_SLOTS,
	ENV_SHM_SLOT_SIZE,
	ENV_N
};
static const struct {
	const char *name, *rule;
} env_vars[ENV_N] = {
	[ENV_BUS] = { "MQBUS_BUS", "a bus name, 1 to 200 of A-Z a-z 0-9 . _ -" },
	[ENV_MAXMSG] = { "MQBUS_QUEUE_MAXMSG", "a positive number" },
	[ENV_MSGSIZE] = { "MQBUS_QUEUE_MSGSIZE", "a positive number" },
	[ENV_RECONNECT] = { "MQBUS_RECONNECT", "0 or 1" },
	[ENV_BATCH] = { "MQBUS_BATCH", "0 or 1" },
	[ENV_PUBLISH_BATCH] = { "MQBUS_PUBLISH_BATCH", "0 or 1" },
	[ENV_MAX_MESSAGE] = { "MQBUS_MAX_MESSAGE",
			      "a number of bytes up to 268435456" },
	[ENV_SHM] = { "MQBUS_SHM", "0 or 1" },
	[ENV_SHM_MIN] = { "MQBUS_SHM_MIN",
			  "a number of bytes from 4096 up to 268435456" },
	[ENV_SHM_AREA] = { "MQBUS_SHM_AREA", "0 or 1" },
	[ENV_SHM_SLOTS] = { "MQBUS_SHM_SLOTS", "a number from 2 to 8" },
	[ENV_SHM_SLOT_SIZE] = { "MQBUS_SHM_SLOT_SIZE",
				"a number of bytes from 4096 up to "
				"268435456" },
};
#define ENV_BIT(i) (1u << (i))
#define ENV_QUEUE (ENV_BIT(ENV_MAXMSG) | ENV_BIT(ENV_MSGSIZE))

struct mqbus {
	char bus[BUS_NAME_MAX + 1];
	long maxmsg;
	long msgsize;
	int timeout_ms;
	bool connected;
	bool bye; /* disconnected: the daemon said goodbye, died or dropped us */
	bool reconnect; /* reconnect after the daemon died or stopped */
	bool reconnecting; /* bye, and the steps of a reconnection run */
	bool fresh; /* the queues are gone: make new ones, HELLO */
	bool hello; /* tx holds a HELLO not yet welcomed */
	bool restoring; /* welcomed again, replay answers awaited */
	bool lost_due, restored_due; /* connection callbacks to run */
	int lost_err, restored_err;
	char lost_why[256], restored_why[512];
	int backoff_ms;
	int64_t attempt_at; /* CLOCK_MONOTONIC ms of the next announce */
	int64_t restore_deadline;
	int64_t liveness_at; /* publishing: the next look at the pidfd */
	int epfd;  /* mqbus_get_fd(): rx and pidfd */
	int pidfd; /* of the daemon, -1 while disconnected */
	struct replay *replay;
	unsigned replay_removed; /* counts removals, for handlers_offer() */
	unsigned offer_seq;      /* numbers the messages handlers_offer() */
	mqbus_connection_handler conn_fn;
	void *conn_userdata;
	bool serving; /* mqbus_receive() last returned a request */
	unsigned bad_env; /* ENV_* bits: variables set but not valid */
	char bad_env_value[ENV_N][64]; /* their values then, cut */
	mqd_t tx;
	mqd_t rx;      /* O_NONBLOCK */
	mqd_t rx_wait; /* the same queue, blocking */
	mqd_t tx_nb;   /* tx, O_NONBLOCK: the held frame's tries (opened
			  when first needed) */
	char tx_name[PROTO_QNAME_MAX + 1];
	char rx_name[PROTO_QNAME_MAX + 1];
	uint32_t client_id;
	uint32_t next_token;
	struct proto_welcome welcome;
	unsigned char *buf; /* msgsize bytes */
	unsigned char *obuf; /* msgsize bytes: what reconnecting writes */
	struct msg_pool *pool; /* received messages (msg_from()) */
	bool batch;	 /* frames both ways, unless MQBUS_BATCH=0 */
	bool daemon_batch; /* the daemon reads frames (its WELCOME) */
	bool origin;	   /* remote origins asked for (mqbus_set_origin) */
	int publish_batch; /* MQBUS_PUBLISH_BATCH_*: hold publishes into
			      a full tx, or fill frames; asked for with
			      mqbus_set_publish_batch() or
			      MQBUS_PUBLISH_BATCH=1|2 */
	/* publishing into a full tx: messages held in one BATCH frame
	 * until tx has room (held_send()) */
	unsigned char *held;
	size_t held_len;
	unsigned held_n;
	unsigned held_prio;
	bool held_watch; /* tx is in the epoll set, for room */
	struct mqbus_msg *head, *tail;
	/* answers to asynchronous requests, for mqbus_process() */
	struct mqbus_msg *replies_head, *replies_tail;
	struct async_req *async;
	mqbus_handler handler;
	void *userdata;
	char error[512];
	/* the first ERROR the daemon sent unasked (to a publish it
	 * refused), for mqbus_sync(): its errno, 0 for none, and text */
	int unasked_err;
	char unasked[512];
	/* large messages (reassemble.c): the largest payload we take (0:
	 * the bus's), the bus's max_message from its WELCOME (0: a daemon
	 * without large messages), what comes in pieces */
	size_t max_message;
	size_t bus_max;
	struct reasm reasm;
	/* the last large message sent, kept for the next one: its pages
	 * are in place already */
	unsigned char *sbuf;
	size_t sbuf_cap;
	/* large payloads in memory files, unless MQBUS_SHM=0 */
	bool shm_wanted;
	size_t shm_min; /* the smallest payload that goes so */
	struct shmio shm;
	unsigned char *shm_buf; /* a reply's payload from a memory file */
	size_t shm_cap;
};

static unsigned queue_counter;

static int set_error(mqbus *b, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int set_error(mqbus *b, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b->error, sizeof(b->error), fmt, ap);
	va_end(ap);
	return err;
}

static long proc_long(const char *name, long dflt)
{
	char path[128];
	FILE *f;
	long v;

	snprintf(path, sizeof(path), "/proc/sys/fs/mqueue/%s", name);
	f = fopen(path, "re");
	if (!f)
		return dflt;
	if (fscanf(f, "%ld", &v) != 1)
		v = dflt;
	fclose(f);
	return v;
}

/* false only for a value that is set but not a positive number */
static bool parse_env_long(const char *name, long *ret)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return true;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || n <= 0)
		return false;
	*ret = n;
	return true;
}

/*
 * The sentence for an environment variable of mqbus_new() whose value is
 * not valid, saying what it should be; mqbus_connect() fails with it.
 */
static void bad_env_error(mqbus *b)
{
	int i = 0;

	while (i < ENV_N - 1 && !(b->bad_env & ENV_BIT(i)))
		i++;
	set_error(b, -EINVAL, "invalid %s='%s' in the environment: use %s",
		  env_vars[i].name, b->bad_env_value[i], env_vars[i].rule);
}

/* Notes that variable i of env_vars is set but not valid. */
static void bad_env_note(mqbus *b, int i)
{
	b->bad_env |= ENV_BIT(i);
	snprintf(b->bad_env_value[i], sizeof(b->bad_env_value[i]), "%s",
		 getenv(env_vars[i].name));
}

/* A variable of "0 or 1", on unless it is 0 (noted if it is neither). */
static bool env_switch(mqbus *b, int i)
{
	const char *v = getenv(env_vars[i].name);

	if (!v || !*v || strcmp(v, "1") == 0)
		return true;
	if (strcmp(v, "0") != 0)
		bad_env_note(b, i);
	return strcmp(v, "0") != 0;
}

static bool bus_valid(const char *bus)
{
	char name[BUS_NAME_MAX + 2];
	size_t len = strlen(bus);

	if (len == 0 || len > BUS_NAME_MAX)
		return false;
	snprintf(name, sizeof(name), "/%s", bus);
	return proto_qname_valid(name, len + 1);
}

MQBUS_EXPORT size_t mqbus_queue_bytes(long maxmsg, long msgsize)
{
	if (maxmsg <= 0 || msgsize <= 0)
		return 0;
	/* the kernel keeps one tree node per priority in use, at most
	 * min(maxmsg, MQ_PRIO_MAX) */
	return (size_t)maxmsg * ((size_t)msgsize + KERNEL_MSG_OVERHEAD) +
	       (size_t)(maxmsg < 32768 ? maxmsg : 32768) * KERNEL_PRIO_NODE;
}

MQBUS_EXPORT int mqbus_new(mqbus **ret)
{
	const char *bus = getenv("MQBUS_BUS");
	const char *pbatch = getenv("MQBUS_PUBLISH_BATCH");
	mqbus *b;

	if (!ret)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->tx = b->rx = b->rx_wait = b->tx_nb = (mqd_t)-1;
	b->epfd = b->pidfd = -1;
	b->maxmsg = DEFAULT_MAXMSG;
	b->msgsize = DEFAULT_MSGSIZE;
	b->timeout_ms = DEFAULT_TIMEOUT_MS;
	if (!parse_env_long("MQBUS_QUEUE_MAXMSG", &b->maxmsg))
		bad_env_note(b, ENV_MAXMSG);
	if (!parse_env_long("MQBUS_QUEUE_MSGSIZE", &b->msgsize))
		bad_env_note(b, ENV_MSGSIZE);
	{
		long max = 0;

		if (!parse_env_long("MQBUS_MAX_MESSAGE", &max) ||
		    (unsigned long)max > FRAG_TOTAL_MAX)
			bad_env_note(b, ENV_MAX_MESSAGE);
		else
			b->max_message = (size_t)max;
	}
	if (bus && *bus && !bus_valid(bus))
		bad_env_note(b, ENV_BUS);
	b->reconnect = env_switch(b, ENV_RECONNECT);
	b->batch = env_switch(b, ENV_BATCH);
	b->shm_wanted = env_switch(b, ENV_SHM);
	{
		long min = DEFAULT_SHM_MIN;

		if (!parse_env_long("MQBUS_SHM_MIN", &min) ||
		    min < PROTO_SHM_MIN || (unsigned long)min > FRAG_TOTAL_MAX)
			bad_env_note(b, ENV_SHM_MIN);
		else
			b->shm_min = (size_t)min;
	}
	shmio_init(&b->shm);
	/* reused areas for large messages (shmio.h) */
	b->shm.area_wanted = env_switch(b, ENV_SHM_AREA);
	{
		long slots = SHMIO_AREA_SLOTS, size = SHMIO_AREA_SLOT_SIZE;

		if (!parse_env_long("MQBUS_SHM_SLOTS", &slots) || slots < 2 ||
		    slots > SHM_AREA_SLOTS_MAX) {
			bad_env_note(b, ENV_SHM_SLOTS);
			slots = SHMIO_AREA_SLOTS;
		}
		if (!parse_env_long("MQBUS_SHM_SLOT_SIZE", &size) ||
		    size < PROTO_SHM_MIN || (unsigned long)size > FRAG_TOTAL_MAX) {
			bad_env_note(b, ENV_SHM_SLOT_SIZE);
			size = SHMIO_AREA_SLOT_SIZE;
		}
		b->shm.area_slots = (uint32_t)slots;
		b->shm.area_slot_size = (size_t)size;
	}
	if (pbatch && *pbatch) {
		if (strcmp(pbatch, "1") == 0)
			b->publish_batch = MQBUS_PUBLISH_BATCH_FULL;
		else if (strcmp(pbatch, "2") == 0)
			b->publish_batch = MQBUS_PUBLISH_BATCH_FILL;
		else if (strcmp(pbatch, "0") != 0)
			bad_env_note(b, ENV_PUBLISH_BATCH);
	}
	snprintf(b->bus, sizeof(b->bus), "%s",
		 bus && bus_valid(bus) ? bus : DEFAULT_BUS);
	/* said now too, for a program that asks before connecting */
	if (b->bad_env)
		bad_env_error(b);
	*ret = b;
	return 0;
}

MQBUS_EXPORT int mqbus_set_bus(mqbus *b, const char *bus)
{
	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	if (!bus)
		return set_error(b, -EINVAL, "no bus name");
	if (b->connected)
		return set_error(b, -EISCONN,
				 "cannot change the bus of a connected handle");
	if (!bus_valid(bus))
		return set_error(b, -EINVAL,
				 "invalid bus name '%s': use 1 to %d of "
				 "A-Z a-z 0-9 . _ -",
				 bus, BUS_NAME_MAX);
	snprintf(b->bus, sizeof(b->bus), "%s", bus);
	b->bad_env &= ~ENV_BIT(ENV_BUS);
	return 0;
}

MQBUS_EXPORT int mqbus_set_queue_size(mqbus *b, long maxmsg, long msgsize)
{
	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	if (b->connected)
		return set_error(b, -EISCONN,
				 "cannot change the queue size of a connected "
				 "handle");
	if (maxmsg <= 0 || msgsize <= 0)
		return set_error(b, -EINVAL,
				 "invalid queue size %ld x %ld: both must be "
				 "positive",
				 maxmsg, msgsize);
	b->maxmsg = maxmsg;
	b->msgsize = msgsize;
	b->bad_env &= ~ENV_QUEUE;
	return 0;
}

MQBUS_EXPORT int mqbus_get_queue_size(const mqbus *b, long *ret_maxmsg,
				      long *ret_msgsize)
{
	if (!b)
		return -EINVAL;
	/* the size would be the default, which connecting refuses */
	if (b->bad_env & ENV_QUEUE)
		return -EINVAL;
	if (ret_maxmsg)
		*ret_maxmsg = b->maxmsg;
	if (ret_msgsize)
		*ret_msgsize = b->msgsize;
	return 0;
}

/* At any time: it applies to the blocking calls made after it. */
MQBUS_EXPORT int mqbus_set_timeout(mqbus *b, int timeout_ms)
{
	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	if (timeout_ms < -1)
		return set_error(b, -EINVAL,
				 "invalid timeout %d ms: -1 (for ever) or "
				 "more",
				 timeout_ms);
	b->timeout_ms = timeout_ms;
	return 0;
}

MQBUS_EXPORT const char *mqbus_last_error(const mqbus *b)
{
	return b ? b->error : "";
}

MQBUS_EXPORT uint32_t mqbus_client_id(const mqbus *b)
{
	return b && b->connected ? b->client_id : 0;
}

MQBUS_EXPORT size_t mqbus_max_payload(const mqbus *b, const char *topic)
{
	size_t over;

	if (!b)
		return 0;
	over = proto_size(topic ? strlen(topic) : 0, 0);
	return (size_t)b->msgsize > over ? (size_t)b->msgsize - over : 0;
}

MQBUS_EXPORT size_t mqbus_max_message(const mqbus *b)
{
	if (!b)
		return 0;
	/* connected to a daemon that carries messages in pieces */
	if (b->connected && b->bus_max)
		return b->bus_max;
	return mqbus_max_payload(b, "");
}

MQBUS_EXPORT int mqbus_set_max_message(mqbus *b, size_t max)
{
	if (!b || max > FRAG_TOTAL_MAX)
		return -EINVAL;
	b->max_message = max;
	return 0;
}

/* The largest payload we take: our own limit, within the bus's. */
static size_t recv_limit(const mqbus *b)
{
	if (b->max_message && (!b->bus_max || b->max_message < b->bus_max))
		return b->max_message;
	return b->bus_max ? b->bus_max : FRAG_TOTAL_MAX;
}

/* -------------------------------------------------------------------- */
/* time                                                                  */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

/* The CLOCK_REALTIME time ms from now: mq_timedsend() and
 * mq_timedreceive() take no other clock. */
static struct timespec realtime_in(int ms)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	return t;
}

/* ms left until deadline (-1: none), never more than a second */
static int slice_until(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return 1000;
	left = deadline - now_ms();
	if (left < 0)
		return 0;
	return left > 1000 ? 1000 : (int)left;
}

/* Whether the daemon of this session has exited. */
static bool daemon_dead(const mqbus *b)
{
	if (b->pidfd >= 0) {
		struct pollfd p = { .fd = b->pidfd, .events = POLLIN };

		return poll(&p, 1, 0) > 0;
	}
	if (b->welcome.daemon_pid == 0)
		return false;
	return kill((pid_t)b->welcome.daemon_pid, 0) < 0 && errno == ESRCH;
}

/* Whether a queue of ours still has its name (a daemon removes them). */
static bool queue_exists(const char *name)
{
	mqd_t q = mq_open(name, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (q == (mqd_t)-1)
		return errno != ENOENT;
	mq_close(q);
	return true;
}

static void lose(mqbus *b, bool daemon_left, bool queues_gone, int err,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Whether the daemon died (or we are disconnected anyway); marks the
 * handle disconnected if so, and we may reconnect. */
static bool daemon_died(mqbus *b)
{
	if (b->bye)
		return true;
	if (!daemon_dead(b))
		return false;
	lose(b, true, false, -ECONNRESET, "the daemon of bus %s (pid %u) died",
	     b->bus, (unsigned)b->welcome.daemon_pid);
	return true;
}

/*
 * Whether the session is over without a goodbye we could read: the daemon
 * died (we may reconnect), or it dropped us (a slow subscriber under
 * overflow = disconnect, whose full rx had no room for BYE) and unlinked
 * our queues (final).  Marks the handle disconnected if so.
 */
static bool daemon_gone(mqbus *b)
{
	if (daemon_died(b))
		return true;
	if (b->welcome.daemon_pid && !queue_exists(b->rx_name)) {
		lose(b, false, true, -ECONNABORTED,
		     "the daemon of bus %s closed the connection", b->bus);
		return true;
	}
	return false;
}

/* -------------------------------------------------------------------- */
/* queues                                                                */

/* The sentence for a failed mq_open of one of our queues. */
static int queue_error(mqbus *b, int err, const char *name)
{
	struct rlimit rl = { 0 };
	long msg_max = proc_long("msg_max", -1);
	long msgsize_max = proc_long("msgsize_max", -1);

	switch (err) {
	case EMFILE:
		getrlimit(RLIMIT_MSGQUEUE, &rl);
		return set_error(
			b, -EMFILE,
			"cannot create queue %s: RLIMIT_MSGQUEUE is used up: "
			"this user's queues may take %llu bytes and a client "
			"of %ld x %ld bytes needs %zu; close other clients, "
			"use smaller queues (MQBUS_QUEUE_MAXMSG, "
			"MQBUS_QUEUE_MSGSIZE) or raise the limit (ulimit -q, "
			"LimitMSGQUEUE=); or the process is out of file "
			"descriptors (RLIMIT_NOFILE)",
			name, (unsigned long long)rl.rlim_cur, b->maxmsg,
			b->msgsize, 2 * mqbus_queue_bytes(b->maxmsg, b->msgsize));
	case ENOSPC:
		return set_error(b, -ENOSPC,
				 "cannot create queue %s: the system-wide "
				 "number of queues reached fs.mqueue.queues_max "
				 "(%ld); remove unused queues or raise it "
				 "(sysctl fs.mqueue.queues_max=N)",
				 name, proc_long("queues_max", -1));
	case EINVAL:
		if (msg_max > 0 && b->maxmsg > msg_max)
			return set_error(b, -EINVAL,
					 "cannot create queue %s: %ld "
					 "messages is above fs.mqueue.msg_max "
					 "(%ld); set MQBUS_QUEUE_MAXMSG to at "
					 "most %ld or raise the limit (sysctl "
					 "fs.mqueue.msg_max=N)",
					 name, b->maxmsg, msg_max, msg_max);
		if (msgsize_max > 0 && b->msgsize > msgsize_max)
			return set_error(b, -EINVAL,
					 "cannot create queue %s: a message "
					 "size of %ld is above "
					 "fs.mqueue.msgsize_max (%ld); set "
					 "MQBUS_QUEUE_MSGSIZE to at most %ld or "
					 "raise the limit (sysctl "
					 "fs.mqueue.msgsize_max=N)",
					 name, b->msgsize, msgsize_max,
					 msgsize_max);
		return set_error(b, -EINVAL,
				 "cannot create queue %s: invalid queue "
				 "attributes %ld x %ld",
				 name, b->maxmsg, b->msgsize);
	default:
		return set_error(b, -err, "cannot create queue %s: %s", name,
				 strerror(err));
	}
}

static void close_queues(mqbus *b)
{
	if (b->tx != (mqd_t)-1) {
		mq_close(b->tx);
		mq_unlink(b->tx_name);
	}
	if (b->rx_wait != (mqd_t)-1)
		mq_close(b->rx_wait);
	if (b->tx_nb != (mqd_t)-1)
		mq_close(b->tx_nb);
	if (b->rx != (mqd_t)-1) {
		mq_close(b->rx);
		mq_unlink(b->rx_name);
	}
	b->tx = b->rx = b->rx_wait = b->tx_nb = (mqd_t)-1;
	b->held_watch = false; /* closing tx took it out of the set */
}

static int create_queues(mqbus *b)
{
	struct mq_attr attr = { 0 };

	attr.mq_maxmsg = b->maxmsg;
	attr.mq_msgsize = b->msgsize;
	for (int tries = 0; tries < 100; tries++) {
		unsigned n = __atomic_add_fetch(&queue_counter, 1,
						__ATOMIC_RELAXED);

		snprintf(b->tx_name, sizeof(b->tx_name), "/%s.%d.%u.tx",
			 b->bus, (int)getpid(), n);
		snprintf(b->rx_name, sizeof(b->rx_name), "/%s.%d.%u.rx",
			 b->bus, (int)getpid(), n);
		/* tx blocks, so a full tx pushes back on the publisher */
		b->tx = mq_open(b->tx_name, O_WRONLY | O_CREAT | O_EXCL, 0600,
				&attr);
		if (b->tx == (mqd_t)-1) {
			if (errno == EEXIST)
				continue;
			return queue_error(b, errno, b->tx_name);
		}
		b->rx = mq_open(b->rx_name,
				O_RDONLY | O_CREAT | O_EXCL | O_NONBLOCK, 0600,
				&attr);
		if (b->rx == (mqd_t)-1) {
			int err = errno;

			close_queues(b);
			if (err == EEXIST)
				continue;
			return queue_error(b, err, b->rx_name);
		}
		b->rx_wait = mq_open(b->rx_name, O_RDONLY);
		if (b->rx_wait == (mqd_t)-1) {
			int err = errno;

			close_queues(b);
			return queue_error(b, err, b->rx_name);
		}
		if (b->epfd >= 0) {
			struct epoll_event ev = { .events = EPOLLIN };

			/* closing the old rx took it out of the set */
			if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, (int)b->rx,
				      &ev) < 0) {
				int err = errno;

				close_queues(b);
				return set_error(b, -err, "epoll_ctl: %s",
						 strerror(err));
			}
		}
		return 0;
	}
	return set_error(b, -EEXIST, "cannot find a free queue name");
}

/* -------------------------------------------------------------------- */
/* sending                                                               */

static void reconnect_step(mqbus *b);
static int reconnect_slice(const mqbus *b, int slice);
static void resumed(mqbus *b, const struct proto_msg *pm);
static bool replay_answer(mqbus *b, const struct proto_msg *pm);
static bool announce_queue_exists(const mqbus *b);
static int wait_reconnected(mqbus *b);
static uint32_t new_token(mqbus *b);
struct replay;
static void replay_remove(mqbus *b, struct replay *e);

/*
 * Writes into tx, waiting up to the handle's timeout while it is full.
 * While reconnecting the message goes into tx all the same (the next
 * daemon reads it), and the steps of the reconnection run between
 * slices; tx may be replaced by a fresh one meanwhile.
 */
static int tx_write(mqbus *b, const void *buf, size_t len, unsigned prio)
{
	int64_t deadline = deadline_of(b->timeout_ms);

	for (;;) {
		int slice = slice_until(deadline);
		struct timespec ts;

		if (b->reconnecting) {
			reconnect_step(b);
			slice = reconnect_slice(b, slice);
		}
		ts = realtime_in(slice);
		if (b->tx == (mqd_t)-1) {
			/* queues lost, new ones not made yet */
			nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
			errno = ETIMEDOUT;
		} else if (mq_timedsend(b->tx, buf, len, prio, &ts) == 0) {
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno != ETIMEDOUT)
			return set_error(b, -errno, "cannot write %s: %s",
					 b->tx_name, strerror(errno));
		if (daemon_gone(b) && !b->reconnecting)
			return set_error(b, -ENOTCONN, "%s", b->lost_why);
		if (deadline >= 0 && now_ms() >= deadline)
			return set_error(b, -ETIMEDOUT,
					 "the daemon of bus %s is not reading "
					 "(tx queue %s full)%s",
					 b->bus, b->tx_name,
					 b->bye ? " while reconnecting" : "");
	}
}

/* -------------------------------------------------------------------- */
/* the held frame: publishing into a full tx                             */

static int send_now(mqbus *b, const void *buf, size_t len, unsigned prio);

/*
 * Writes into tx at once or not at all (-EAGAIN), on a descriptor of tx
 * opened O_NONBLOCK: a full queue answers at once, where a timed send
 * that has already timed out still goes through the kernel's sleep and
 * its task switch, once per publish while a frame is held.
 */
static int send_nonblock(mqbus *b, const void *buf, size_t len,
			 unsigned prio)
{
	if (b->tx_nb == (mqd_t)-1) {
		b->tx_nb = mq_open(b->tx_name, O_WRONLY | O_NONBLOCK);
		if (b->tx_nb == (mqd_t)-1)
			return send_now(b, buf, len, prio);
	}
	if (mq_send(b->tx_nb, buf, len, prio) == 0)
		return 0;
	return -errno;
}

/*
 * While a frame is held, tx is in the epoll set of mqbus_get_fd(): a
 * program's own loop wakes when tx has room, and mqbus_process() sends
 * the frame.  It leaves the set only in mqbus_process() with nothing
 * held, not each time a frame goes (two system calls per frame, for a
 * publisher that holds one frame after another): a loop wakes once
 * more after a burst.
 */
static void held_watch(mqbus *b, bool on)
{
	struct epoll_event ev = { .events = EPOLLOUT };

	if (on == b->held_watch || b->epfd < 0 || b->tx == (mqd_t)-1)
		return;
	if (epoll_ctl(b->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, (int)b->tx,
		      &ev) == 0 ||
	    !on)
		b->held_watch = on;
}

/*
 * Adds the encoded PUBLISH at buf to the held frame: of one priority, up
 * to the tx message size.  false: it does not join it (another priority,
 * no room, no memory).
 */
static bool held_add(mqbus *b, const void *buf, size_t len, unsigned prio)
{
	size_t cap = (size_t)b->msgsize;

	if (b->held_n && prio != b->held_prio)
		return false;
	if (!b->held && !(b->held = malloc(cap)))
		return false;
	if (b->held_n == 0) {
		if (proto_batch_begin(b->held, cap, prio) < 0)
			return false;
		b->held_len = PROTO_BATCH_HEAD;
	}
	if (proto_batch_add(b->held, cap, &b->held_len, buf, len) < 0)
		return false;
	b->held_n++;
	b->held_prio = prio;
	held_watch(b, true);
	return true;
}

/*
 * Writes the held frame into tx: at once (wait false: -EAGAIN while tx
 * is full) or waiting as any message does.  A frame of one message goes
 * as that message.  Returns 0 (also when nothing is held) or -errno.
 */
static int held_send(mqbus *b, bool wait)
{
	const size_t one = PROTO_BATCH_HEAD + PROTO_BATCH_PART_HEAD;
	const unsigned char *buf = b->held;
	size_t len = b->held_len;
	int r;

	if (b->held_n == 0)
		return 0;
	if (b->held_n == 1) {
		buf += one;
		len -= one;
	}
	if (wait)
		r = tx_write(b, buf, len, b->held_prio);
	else if (b->tx == (mqd_t)-1 || b->bye)
		r = -EAGAIN;
	else
		r = send_nonblock(b, buf, len, b->held_prio);
	if (r == 0) {
		b->held_n = 0;
		b->held_len = 0;
	}
	return r;
}

/* Writes into tx, after the held frame: nothing overtakes a publish. */
static int send_tx(mqbus *b, const void *buf, size_t len, unsigned prio)
{
	int r = held_send(b, true);

	return r < 0 ? r : tx_write(b, buf, len, prio);
}

/*
 * A PUBLISH: into tx at once if it has room; if tx is full and the
 * daemon reads frames, held in one frame with the next ones (publish()
 * returns at once) until tx has room again, the frame is full, or
 * anything else is written; otherwise it waits as any message does.
 */
static int publish_out(mqbus *b, const void *buf, size_t len, unsigned prio)
{
	int r;

	if (!b->publish_batch || !b->daemon_batch || b->bye ||
	    b->tx == (mqd_t)-1)
		return send_tx(b, buf, len, prio);
	if (b->publish_batch == MQBUS_PUBLISH_BATCH_FILL) {
		/* into the frame while it takes it; a full one goes first,
		 * waiting for room as a publish does */
		if (held_add(b, buf, len, prio))
			return 0;
		r = held_send(b, true);
		if (r == 0 && held_add(b, buf, len, prio))
			return 0;
		return r < 0 ? r : send_tx(b, buf, len, prio);
	}
	r = held_send(b, false);
	if (r == 0)
		r = send_nonblock(b, buf, len, prio);
	if (r == 0 || (r == -EAGAIN && held_add(b, buf, len, prio)))
		return 0;
	if (r != -EAGAIN)
		return set_error(b, r, "cannot write %s: %s", b->tx_name,
				 strerror(-r));
	return send_tx(b, buf, len, prio);
}

/* The bytes a message takes on the queue. */
static size_t msg_size(const char *topic, const char *key, size_t len)
{
	return proto_size_key(topic ? strlen(topic) : 0, key ? strlen(key) : 0,
			      len);
}

static int send_large(mqbus *b, const struct proto_header *h,
		      const char *topic, const char *key, const void *payload,
		      size_t len, unsigned prio);
static bool shm_fits(mqbus *b, const char *topic, const char *key,
		     size_t len);
static int send_shm(mqbus *b, const struct proto_header *h,
		    const char *topic, const char *key, const void *payload,
		    size_t len, unsigned prio);

static int send_msg_key(mqbus *b, const struct proto_header *h,
			const char *topic, const char *key,
			const void *payload, size_t len, unsigned prio)
{
	int n = proto_encode_key(b->buf, (size_t)b->msgsize, h, topic, key,
				 payload, len);

	/* too large for one queue message: in a memory file or in
	 * pieces, if the daemon takes them and the message is one that
	 * may go so */
	if (n == -PROTO_E_NOSPACE && b->bus_max && frag_type_ok(h->type)) {
		if (shm_fits(b, topic, key, len))
			return send_shm(b, h, topic, key, payload, len, prio);
		return send_large(b, h, topic, key, payload, len, prio);
	}
	if (n < 0)
		return set_error(b, -EMSGSIZE,
				 "message of %zu bytes does not fit the "
				 "queue's message size %ld (64-byte header, "
				 "topic, key and payload): at most %zu bytes "
				 "of payload here; raise MQBUS_QUEUE_MSGSIZE "
				 "up to fs.mqueue.msgsize_max (%ld)",
				 msg_size(topic, key, len), b->msgsize,
				 (size_t)b->msgsize > msg_size(topic, key, 0)
					 ? (size_t)b->msgsize -
						   msg_size(topic, key, 0)
					 : 0,
				 proc_long("msgsize_max", -1));
	if (h->type == PROTO_PUBLISH)
		return publish_out(b, b->buf, (size_t)n, prio);
	return send_tx(b, b->buf, (size_t)n, prio);
}

static int send_msg(mqbus *b, const struct proto_header *h, const char *topic,
		    const void *payload, size_t len, unsigned prio)
{
	return send_msg_key(b, h, topic, NULL, payload, len, prio);
}

/* -------------------------------------------------------------------- */
/* large messages: sending in pieces (reassemble.c)                     */

static int wait_reply(mqbus *b, uint32_t token, int timeout_ms,
		      struct proto_msg *ret);

static int send_piece(void *ctx, const void *buf, size_t len, unsigned prio)
{
	return send_tx(ctx, buf, len, prio);
}

/* The daemon's answer to a large PUBLISH of token: whether it got
 * through the bus's limits and whether any subscriber could take it. */
/* What the daemon answered: 0, or its error. */
static int answer_status(mqbus *b, const struct proto_msg *reply)
{
	if (reply->h.type == PROTO_ERROR)
		return set_error(b, -(int)reply->h.status, "%.*s",
				 (int)reply->h.payload_len,
				 (const char *)reply->payload);
	return 0;
}

static int publish_answer(mqbus *b, uint32_t token)
{
	struct proto_msg reply;
	int r = wait_reply(b, token, b->timeout_ms, &reply);

	if (r < 0)
		return r;
	return answer_status(b, &reply);
}

/*
 * Sends a message larger than a queue message as fragments.  A PUBLISH
 * is given a token and waits for the daemon's answer: whether the
 * message got through the bus's limits and whether any subscriber could
 * take it.
 */
static int send_large(mqbus *b, const struct proto_header *h,
		      const char *topic, const char *key, const void *payload,
		      size_t len, unsigned prio)
{
	size_t total = msg_size(topic, key, len);
	struct proto_header copy = *h;
	unsigned char *msg;
	int r;

	if (len > b->bus_max)
		return set_error(b, -EMSGSIZE,
				 "message of %zu bytes is larger than the "
				 "bus's max_message (%zu bytes)",
				 len, b->bus_max);
	if (copy.type == PROTO_PUBLISH)
		copy.token = new_token(b);
	if (b->sbuf_cap < total) {
		free(b->sbuf);
		b->sbuf_cap = 0;
		/* room in front for the first piece's header */
		b->sbuf = malloc(FRAG_OVERHEAD + total);
		if (!b->sbuf)
			return set_error(b, -ENOMEM,
					 "out of memory for a message of %zu "
					 "bytes",
					 len);
		b->sbuf_cap = total;
	}
	msg = b->sbuf + FRAG_OVERHEAD;
	r = proto_encode_key(msg, total, &copy, topic, key, payload, len);
	if (r >= 0)
		r = reasm_send(msg, total, new_token(b), b->msgsize, prio,
			       send_piece, b);
	if (r < 0)
		return b->error[0] ? r
				   : set_error(b, r, "cannot send in pieces: "
						     "%s",
					       proto_strerror(r));
	return copy.type == PROTO_PUBLISH ? publish_answer(b, copy.token)
					   : 0;
}

/* Whether a payload of len bytes goes in a memory file: from shm_min
 * (MQBUS_SHM_MIN, at least the daemon's PROTO_SHM_MIN) up to the bus's
 * max_message, with a head that fits a queue message, once our
 * connection is attached. */
static bool shm_fits(mqbus *b, const char *topic, const char *key,
		     size_t len)
{
	int wait = b->timeout_ms >= 0 && b->timeout_ms < SHMIO_ANSWER_MS
			   ? b->timeout_ms
			   : SHMIO_ANSWER_MS;

	return b->shm_wanted && len >= b->shm_min && len <= b->bus_max &&
	       msg_size(topic, key, 0) <= (size_t)b->msgsize &&
	       shmio_ready(&b->shm, wait);
}

/*
 * Sends a message whose payload goes in a memory file: the file first,
 * then the head through tx, which the daemon reads after it.  A PUBLISH
 * waits for the daemon's answer, as one in pieces does.
 */
static int send_shm(mqbus *b, const struct proto_header *h,
		    const char *topic, const char *key, const void *payload,
		    size_t len, unsigned prio)
{
	struct proto_header copy = *h;
	int64_t tag;
	int n, r;

	struct proto_msg reply;

	if (copy.type == PROTO_PUBLISH)
		copy.token = new_token(b);
	/* a PUBLISH, which waits for its answer, goes through the one
	 * slot of our tx area; anything else in a new file */
	tag = copy.type == PROTO_PUBLISH
		      ? shmio_send_area(&b->shm, payload, len, b->timeout_ms)
		      : -ENOTSUP;
	if (tag >= 0)
		copy.flags |= PROTO_F_AREA;
	else if (b->shm.state == SHMIO_ON)
		tag = shmio_send(&b->shm, payload, len, b->timeout_ms);
	/* the connection broke: the pieces still go */
	if (tag < 0 && b->shm.state == SHMIO_OFF)
		return send_large(b, h, topic, key, payload, len, prio);
	if (tag < 0)
		return set_error(b, (int)tag,
				 "cannot pass a memory file of %zu bytes to "
				 "the daemon: %s",
				 len, strerror((int)-tag));
	copy.flags |= PROTO_F_SHM;
	copy.shm_tag = (uint32_t)tag;
	n = proto_encode_head(b->buf, (size_t)b->msgsize, &copy, topic, key,
			      len);
	if (n < 0)
		return set_error(b, -EMSGSIZE, "cannot encode a message: %s",
				 proto_strerror(n));
	r = send_tx(b, b->buf, (size_t)n, prio);
	if (r >= 0 && copy.type == PROTO_PUBLISH)
		r = wait_reply(b, copy.token, b->timeout_ms, &reply);
	/* unanswered, the slot may not have been read yet: it is never
	 * written again (files from now on) */
	if (r < 0 && (copy.flags & PROTO_F_AREA))
		shmio_area_tx_lost(&b->shm);
	if (r < 0)
		return r;
	/* the daemon knows no tx area of ours (it dropped our connection,
	 * say): nothing was published; again, without it */
	if ((copy.flags & PROTO_F_AREA) && reply.h.type == PROTO_ERROR &&
	    reply.h.status == EPROTO) {
		shmio_area_tx_lost(&b->shm);
		shmio_check(&b->shm);
		if (shm_fits(b, topic, key, len))
			return send_shm(b, h, topic, key, payload, len, prio);
		return send_large(b, h, topic, key, payload, len, prio);
	}
	return copy.type == PROTO_PUBLISH ? answer_status(b, &reply) : 0;
}

/* -------------------------------------------------------------------- */
/* receiving                                                             */

static void fifo_push(struct mqbus_msg **head, struct mqbus_msg **tail,
		      struct mqbus_msg *m)
{
	m->next = NULL;
	if (*tail)
		(*tail)->next = m;
	else
		*head = m;
	*tail = m;
}

static struct mqbus_msg *fifo_pop(struct mqbus_msg **head,
				  struct mqbus_msg **tail)
{
	struct mqbus_msg *m = *head;

	if (m) {
		*head = m->next;
		if (!*head)
			*tail = NULL;
		m->next = NULL;
	}
	return m;
}

static void queue_push(mqbus *b, struct mqbus_msg *m)
{
	fifo_push(&b->head, &b->tail, m);
}

static struct mqbus_msg *queue_pop(mqbus *b)
{
	return fifo_pop(&b->head, &b->tail);
}

static struct async_req *async_find(mqbus *b, uint32_t token)
{
	struct async_req *a;

	for (a = b->async; a; a = a->next)
		if (a->token == token)
			return a;
	return NULL;
}

static void async_remove(mqbus *b, struct async_req *a)
{
	struct async_req **p = &b->async;

	while (*p != a)
		p = &(*p)->next;
	*p = a->next;
	free(a->topic);
	free(a);
}

/* A message of data bytes: a pooled slot when it fits one. */
static struct mqbus_msg *msg_get(mqbus *b, size_t bytes)
{
	struct msg_pool *pool = b->pool;
	struct mqbus_msg *m;

	if (pool && bytes <= pool->slot) {
		m = pool->free;
		if (m) {
			pool->free = m->next;
			pool->n_free--;
		} else {
			m = malloc(sizeof(*m) + pool->slot);
			if (!m)
				return NULL;
		}
		m->pool = pool;
		m->refs = 1;
		pool->refs++;
		return m;
	}
	m = malloc(sizeof(*m) + bytes);
	if (m) {
		m->pool = NULL;
		m->refs = 1;
	}
	return m;
}

static void msg_pool_unref(struct msg_pool *pool)
{
	if (--pool->refs > 0)
		return;
	while (pool->free) {
		struct mqbus_msg *m = pool->free;

		pool->free = m->next;
		free(m);
	}
	free(pool);
}

/* Drops a holder of m; the last returns it to its pool, or frees it. */
static void msg_put(struct mqbus_msg *m)
{
	struct msg_pool *pool = m ? m->pool : NULL;

	if (m && --m->refs > 0)
		return;
	if (!pool) {
		free(m);
		return;
	}
	/* the handle's reference keeps a live pool above 1 */
	if (pool->refs > 1 && pool->n_free < MSG_POOL_KEEP) {
		m->next = pool->free;
		pool->free = m;
		pool->n_free++;
	} else {
		free(m);
	}
	msg_pool_unref(pool);
}

/* where the struct mqbus_origin of a message goes in data[], past
 * used bytes */
static size_t msg_origin_at(size_t used)
{
	size_t a = _Alignof(struct mqbus_origin);

	return (used + a - 1) / a * a;
}

/*
 * The remote origin of pm (proto_decode() has checked the block) copied
 * into m's data[] at off, and decoded there.
 */
static void msg_set_origin(struct mqbus_msg *m, const struct proto_msg *pm,
			   size_t off)
{
	struct mqbus_origin *o = (struct mqbus_origin *)(m->data + off);
	unsigned char *block = m->data + off + sizeof(*o);
	struct proto_origin po;

	memcpy(block, pm->origin, pm->h.origin_len);
	if (proto_origin_decode(block, pm->h.origin_len, &po) < 0) {
		m->origin = NULL;
		return;
	}
	memset(o, 0, sizeof(*o));
	o->uid = po.uid == PROTO_ORIGIN_UID_NONE ? (uid_t)-1 : (uid_t)po.uid;
	o->pid = (pid_t)po.pid;
	o->user = po.user;
	o->host = po.host;
	o->bridge = po.bridge;
	m->origin = o;
}

/* m takes pm's header, topic and key (into data[]); returns where its
 * payload goes, right after them. */
static unsigned char *msg_strings(struct mqbus_msg *m,
				  const struct proto_msg *pm)
{
	size_t tlen = pm->h.topic_len, klen = pm->h.key_len;
	unsigned char *p = m->data;

	m->origin = NULL;
	m->next = NULL;
	m->h = pm->h;
	m->topic = (const char *)p;
	memcpy(p, pm->topic, tlen + 1);
	p += tlen + 1;
	m->key = klen ? (const char *)p : NULL;
	memcpy(p, pm->key, klen + 1);
	p += klen + 1;
	m->payload = p;
	return p;
}

static struct mqbus_msg *msg_from(mqbus *b, const struct proto_msg *pm)
{
	size_t tlen = pm->h.topic_len, klen = pm->h.key_len;
	size_t plen = pm->h.payload_len;
	size_t used = tlen + 1 + klen + 1 + plen + 1, origin_at = 0;
	struct mqbus_msg *m;
	unsigned char *p;

	if (pm->origin) {
		origin_at = msg_origin_at(used);
		used = origin_at + sizeof(struct mqbus_origin) +
		       pm->h.origin_len;
	}
	m = msg_get(b, used);
	if (!m)
		return NULL;
	p = msg_strings(m, pm);
	memcpy(p, pm->payload, plen);
	p[plen] = '\0'; /* text payloads print as-is */
	if (pm->origin)
		msg_set_origin(m, pm, origin_at);
	return m;
}

static struct mqbus_msg *msg_whole(mqbus *b, const struct proto_msg *pm);

/*
 * A DELIVER whose payload is in a memory file: read straight into the
 * message made for it.  NULL with *lost set when the file is missing or
 * bad (counted as dropped), or without it when out of memory.
 */
static struct mqbus_msg *msg_shm(mqbus *b, const struct proto_msg *pm,
				 bool *lost)
{
	size_t tlen = pm->h.topic_len, klen = pm->h.key_len;
	size_t plen = pm->h.payload_len;
	struct mqbus_msg *m = msg_get(b, tlen + 1 + klen + 1 + plen + 1);
	unsigned char *p;

	*lost = false;
	if (!m)
		return NULL;
	p = msg_strings(m, pm);
	m->h.flags &= (uint16_t)~(PROTO_F_SHM | PROTO_F_AREA);
	m->h.shm_tag = 0;
	if (shmio_read(&b->shm, pm, p) < 0) {
		msg_put(m);
		*lost = true;
		return NULL;
	}
	p[plen] = '\0'; /* text payloads print as-is */
	return m;
}

/* A DELIVER read, alone, from a frame or put together from pieces:
 * queued for the program. */
static int take_deliver(mqbus *b, struct proto_msg *pm)
{
	struct mqbus_msg *m;

	/* messages refused here for their size count as dropped */
	pm->h.status += b->reasm.refused;
	b->reasm.refused = 0;
	m = msg_whole(b, pm);
	if (!m && pm->h.shm_tag) {
		bool lost;

		m = msg_shm(b, pm, &lost);
		if (lost) {
			b->reasm.refused++; /* in the next one's count */
			return 0;
		}
	} else if (!m) {
		m = msg_from(b, pm);
	}
	if (!m)
		return set_error(b, -ENOMEM, "out of memory");
	queue_push(b, m);
	return 0;
}

/* A BATCH frame: its messages in order, as if each had come alone.  The
 * daemon writes only DELIVERs in frames; anything else is skipped. */
static int take_batch(mqbus *b, const struct proto_msg *f)
{
	struct proto_msg part;
	size_t off = 0;
	int r;

	while ((r = proto_batch_next(f, &off, &part)) != 0)
		if (r > 0 && part.h.type == PROTO_DELIVER &&
		    !part.h.shm_tag &&
		    (r = take_deliver(b, &part)) < 0)
			return r;
	return 0;
}

/*
 * A DELIVER put together from pieces becomes the message itself, without
 * a copy: its buffer has room for the struct in front and a byte after
 * the payload for the NUL.  NULL for one read in one piece.
 */
static struct mqbus_msg *msg_whole(mqbus *b, const struct proto_msg *pm)
{
	struct mqbus_msg *m;
	unsigned char *end;

	/* an origin block lies where the NUL would go: msg_from() */
	if (!b->reasm.done || pm->origin ||
	    (const unsigned char *)pm->topic !=
		    b->reasm.done + offsetof(struct mqbus_msg, data) +
			    PROTO_HEADER_SIZE)
		return NULL;
	m = reasm_steal(&b->reasm);
	m->next = NULL;
	m->pool = NULL; /* its own buffer: freed alone */
	m->refs = 1;
	m->h = pm->h;
	m->origin = NULL;
	m->topic = pm->topic;
	m->key = pm->h.key_len ? pm->key : NULL;
	m->payload = pm->payload;
	end = (unsigned char *)m->payload + pm->h.payload_len;
	*end = '\0'; /* text payloads print as-is */
	return m;
}

/*
 * The payload of a message other than a DELIVER (a reply) that is in a
 * memory file, read into b->shm_buf, valid until the next one: 0, 1
 * when it is lost (the message is skipped), -ENOMEM.
 */
static int shm_payload(mqbus *b, struct proto_msg *pm)
{
	size_t len = pm->h.payload_len;

	if (b->shm_cap < len + 1) {
		unsigned char *buf = realloc(b->shm_buf, len + 1);

		if (!buf)
			return set_error(b, -ENOMEM, "out of memory");
		b->shm_buf = buf;
		b->shm_cap = len + 1;
	}
	if (shmio_read(&b->shm, pm, b->shm_buf) < 0)
		return 1;
	b->shm_buf[len] = '\0';
	pm->payload = b->shm_buf;
	pm->h.flags &= (uint16_t)~(PROTO_F_SHM | PROTO_F_AREA);
	pm->h.shm_tag = 0;
	return 0;
}

/*
 * Reads one message from rx, waiting up to wait_ms for one (0: not at
 * all).  A DELIVER is queued; a reply is copied into *reply if reply is
 * not NULL and its token matches.  Returns 1 if something was read, 0 if
 * nothing came, -errno.
 */
static int read_one(mqbus *b, int wait_ms, uint32_t token,
		    struct proto_msg *reply, bool *ret_replied)
{
	struct proto_msg pm;
	const unsigned char *whole = NULL;
	unsigned char *into;
	size_t len = 0;
	ssize_t n;
	int r;

	/* between losing queues and making new ones */
	if (b->rx == (mqd_t)-1)
		return 0;
	/* the next piece of a large message: read into its place */
	into = reasm_slot(&b->reasm, b->msgsize);
	if (!into)
		into = b->buf;
	if (wait_ms > 0) {
		struct timespec until = realtime_in(wait_ms);

		n = mq_timedreceive(b->rx_wait, (char *)into,
				    (size_t)b->msgsize, NULL, &until);
	} else {
		n = mq_receive(b->rx, (char *)into, (size_t)b->msgsize, NULL);
	}
	if (into != b->buf) {
		int e = errno;

		r = reasm_landed(&b->reasm, into, n, b->buf, &whole, &len);
		errno = e;
		if (r == 0)
			return 1;
		/* r > 0: the last piece landed, whole is the message;
		 * r < 0: not a piece, moved to b->buf */
	}
	if (!whole) {
		if (n < 0) {
			if (errno == EAGAIN || errno == ETIMEDOUT)
				return 0;
			if (errno == EINTR)
				return 1;
			return set_error(b, -errno, "cannot read %s: %s",
					 b->rx_name, strerror(errno));
		}
		r = proto_decode(b->buf, (size_t)n, &pm);
		if (r < 0)
			return 1; /* not from our daemon: skip it */
		/* a payload in a memory file: a DELIVER's is read into
		 * its message; another's (a reply) into shm_buf */
		if (pm.h.shm_tag && pm.h.type != PROTO_DELIVER &&
		    (r = shm_payload(b, &pm)) != 0)
			return r;
		if (pm.h.type == PROTO_FRAGMENT) {
			/* a piece of a large message */
			r = reasm_add(&b->reasm, &pm, recv_limit(b),
				      offsetof(struct mqbus_msg, data),
				      b->msgsize, &whole, &len);
			if (r == -ENOMEM)
				return set_error(b, -ENOMEM, "out of memory");
			if (r <= 0)
				return 1;
		}
	}
	/* a whole large message goes on as any message */
	if (whole && (proto_decode(whole, len, &pm) < 0 ||
		      (!frag_type_ok(pm.h.type) && pm.h.type != PROTO_STATS) ||
		      pm.h.shm_tag))
		return 1;
	/* the next large ones may come in slots of an rx area */
	if (whole && b->shm_wanted && pm.h.type == PROTO_DELIVER)
		shmio_large_seen(&b->shm);
	switch (pm.h.type) {
	case PROTO_DELIVER:
		r = take_deliver(b, &pm);
		if (r < 0)
			return r;
		break;
	case PROTO_BATCH:
		r = take_batch(b, &pm);
		if (r < 0)
			return r;
		break;
	case PROTO_BYE:
		/* a stopping daemon says so (ESHUTDOWN) and leaves us our
		 * queues; an older one removed the announce queue first */
		if (pm.h.status == ESHUTDOWN || !announce_queue_exists(b))
			lose(b, true, false, -ESHUTDOWN,
			     "the daemon of bus %s stopped", b->bus);
		else
			lose(b, false, true, -ECONNABORTED,
			     "the daemon of bus %s closed the connection",
			     b->bus);
		break;
	case PROTO_WELCOME:
		if (b->reconnecting) {
			resumed(b, &pm);
			break;
		}
		/* fall through */
	case PROTO_ACK:
	case PROTO_ERROR:
	case PROTO_STATS:
	case PROTO_REPLY:
	case PROTO_TIMER_LIST:
	case PROTO_QUERY:
		if ((pm.h.type == PROTO_ACK || pm.h.type == PROTO_ERROR) &&
		    pm.h.token && replay_answer(b, &pm))
			break;
		if (pm.h.type == PROTO_ERROR && pm.h.token == 0 &&
		    b->reconnecting && b->hello) {
			/* our fresh handshake refused: try anew later */
			b->fresh = true;
			snprintf(b->lost_why, sizeof(b->lost_why),
				 "the daemon of bus %s refused the "
				 "connection: %.*s",
				 b->bus, (int)pm.h.payload_len,
				 (const char *)pm.payload);
			break;
		}
		if (reply && ret_replied && pm.h.token == token) {
			*reply = pm; /* points into b->buf */
			*ret_replied = true;
		} else if ((pm.h.type == PROTO_REPLY ||
			    pm.h.type == PROTO_ERROR) &&
			   pm.h.token && async_find(b, pm.h.token)) {
			/* for mqbus_process() to hand to its callback */
			struct mqbus_msg *m = msg_from(b, &pm);

			if (!m)
				return set_error(b, -ENOMEM, "out of memory");
			fifo_push(&b->replies_head, &b->replies_tail, m);
		} else if (pm.h.type == PROTO_ERROR && pm.h.token == 0 &&
			   !b->unasked_err && pm.h.status) {
			/* an answer to a message that waits for none (a
			 * refused publish): kept for mqbus_sync() */
			b->unasked_err = -(int)pm.h.status;
			snprintf(b->unasked, sizeof(b->unasked), "%.*s",
				 (int)pm.h.payload_len,
				 (const char *)pm.payload);
		}
		break;
	default:
		break;
	}
	return 1;
}

/*
 * Waits for the reply with this token (token 0 with WELCOME).  The reply
 * points into b->buf, valid until the next read.
 */
static int wait_reply(mqbus *b, uint32_t token, int timeout_ms,
		      struct proto_msg *ret)
{
	int64_t deadline = deadline_of(timeout_ms);
	bool replied = false;

	for (;;) {
		int r = read_one(b, slice_until(deadline), token, ret,
				 &replied);

		if (r < 0)
			return r;
		if (replied)
			return 0;
		/* what we asked went with the daemon: reconnecting does
		 * not bring the answer back */
		if (b->bye && b->reconnecting)
			return set_error(b, -ECONNRESET,
					 "%s before it answered",
					 b->lost_why);
		if (b->bye)
			return set_error(b, -ENOTCONN, "%s", b->lost_why);
		if (deadline >= 0 && now_ms() >= deadline)
			return set_error(b, -ETIMEDOUT,
					 "the daemon of bus %s did not answer "
					 "within %d ms",
					 b->bus, timeout_ms);
		/* a quiet slice: is the daemon still there? */
		if (r == 0)
			daemon_gone(b);
	}
}

/* -------------------------------------------------------------------- */
/* connect and close                                                     */

static int announce(mqbus *b, int64_t deadline)
{
	char name[BUS_NAME_MAX + 2];
	unsigned char buf[PROTO_HEADER_SIZE + PROTO_QNAME_MAX + 1];
	struct proto_header h;
	mqd_t a;
	int n, r = 0;

	snprintf(name, sizeof(name), "/%s", b->bus);
	a = mq_open(name, O_WRONLY | O_NONBLOCK);
	if (a == (mqd_t)-1) {
		if (errno == ENOENT)
			return set_error(b, -ENOENT,
					 "no mqbus daemon serves bus '%s' "
					 "(queue %s does not exist); start "
					 "mqbusd -b %s",
					 b->bus, name, b->bus);
		return set_error(b, -errno, "cannot open %s: %s", name,
				 strerror(errno));
	}
	proto_header_init(&h, PROTO_ANNOUNCE);
	if (b->batch)
		h.flags = PROTO_F_BATCH;
	if (b->origin)
		h.flags |= PROTO_F_ORIGIN;
	if (b->shm_wanted)
		h.flags |= PROTO_F_SHM;
	n = proto_encode(buf, sizeof(buf), &h, b->tx_name, NULL, 0);
	while (mq_send(a, (const char *)buf, (size_t)n, 0) < 0) {
		struct pollfd p = { .fd = a, .events = POLLOUT };

		if (errno != EAGAIN && errno != EINTR) {
			r = set_error(b, -errno, "cannot write %s: %s", name,
				      strerror(errno));
			break;
		}
		if (deadline >= 0 && now_ms() >= deadline) {
			r = set_error(b, -ETIMEDOUT,
				      "the announce queue %s stayed full", name);
			break;
		}
		poll(&p, 1, slice_until(deadline));
	}
	mq_close(a);
	return r;
}

/*
 * Tells the daemon the largest payload we take when it is below the
 * bus's, so that it refuses larger ones to us (counted as dropped, too
 * large) instead of sending them.  Best effort, without waiting: the
 * library refuses them itself as well.
 */
static void declare_limit(mqbus *b)
{
	unsigned char buf[FRAG_OVERHEAD];
	struct timespec now;
	int n;

	if (!b->max_message || !b->bus_max || b->max_message >= b->bus_max)
		return;
	n = frag_encode_limit(buf, sizeof(buf), b->max_message);
	clock_gettime(CLOCK_REALTIME, &now);
	if (n > 0)
		mq_timedsend(b->tx, (const char *)buf, (size_t)n,
			     PROTO_PRIO_MAX, &now);
}

/*
 * What a WELCOME starts, the first or after a reconnection: our id, the
 * daemon's grants and a pidfd of it in the epoll set.  Without a pidfd
 * (a kernel before 5.3) liveness falls back to kill(pid, 0).
 */
static void session_begin(mqbus *b, const struct proto_msg *welcome)
{
	struct epoll_event ev = { .events = EPOLLIN };

	memcpy(&b->welcome, welcome->payload, sizeof(b->welcome));
	b->client_id = welcome->h.client_id;
	b->daemon_batch = b->batch && (welcome->h.flags & PROTO_F_BATCH);
	b->bus_max = welcome->h.seq > FRAG_TOTAL_MAX ? FRAG_TOTAL_MAX
						      : (size_t)welcome->h.seq;
	reasm_reset(&b->reasm);
	declare_limit(b);
	b->shm.max_message = b->bus_max;
	if (b->shm_wanted)
		shmio_begin(&b->shm, welcome, b->client_id,
			    (pid_t)b->welcome.daemon_pid);
	if (b->pidfd >= 0)
		close(b->pidfd);
	b->pidfd = (int)syscall(SYS_pidfd_open, (pid_t)b->welcome.daemon_pid,
				0);
	if (b->pidfd >= 0 &&
	    epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->pidfd, &ev) < 0) {
		close(b->pidfd);
		b->pidfd = -1;
	}
}

MQBUS_EXPORT int mqbus_connect(mqbus *b)
{
	struct epoll_event ev = { 0 };
	struct proto_header h;
	struct proto_msg reply;
	int64_t deadline;
	int r;

	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	if (b->connected)
		return set_error(b, -EISCONN, "already connected to bus %s",
				 b->bus);
	if (b->bad_env) {
		bad_env_error(b);
		return -EINVAL;
	}
	deadline = deadline_of(b->timeout_ms);
	free(b->buf);
	b->buf = malloc((size_t)b->msgsize);
	if (!b->buf)
		return set_error(b, -ENOMEM, "out of memory");
	if (!b->pool) {
		b->pool = calloc(1, sizeof(*b->pool));
		if (!b->pool)
			return set_error(b, -ENOMEM, "out of memory");
		b->pool->refs = 1;
		b->pool->slot = (size_t)b->msgsize;
	}
	if ((size_t)b->msgsize < proto_size(PROTO_QNAME_MAX, 0))
		return set_error(b, -EINVAL,
				 "queue message size %ld is too small; mqbus "
				 "needs at least %zu",
				 b->msgsize, proto_size(PROTO_QNAME_MAX, 0));
	r = create_queues(b);
	if (r < 0)
		return r;

	proto_header_init(&h, PROTO_HELLO);
	h.sender_pid = (uint32_t)getpid();
	r = send_msg(b, &h, b->rx_name, NULL, 0, 0);
	if (r < 0)
		goto fail;
	r = announce(b, deadline);
	if (r < 0)
		goto fail;
	r = wait_reply(b, 0, b->timeout_ms, &reply);
	if (r < 0)
		goto fail;
	if (reply.h.type == PROTO_ERROR) {
		r = set_error(b, -(int)reply.h.status,
			      "the daemon refused the connection: %.*s",
			      (int)reply.h.payload_len,
			      (const char *)reply.payload);
		goto fail;
	}
	if (reply.h.type != PROTO_WELCOME) {
		r = set_error(b, -EPROTO, "unexpected answer from the daemon");
		goto fail;
	}
	b->obuf = malloc((size_t)b->msgsize);
	if (!b->obuf) {
		r = set_error(b, -ENOMEM, "out of memory");
		goto fail;
	}
	b->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (b->epfd < 0) {
		r = set_error(b, -errno, "epoll_create1: %s", strerror(errno));
		goto fail;
	}
	ev.events = EPOLLIN;
	if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, (int)b->rx, &ev) < 0) {
		r = set_error(b, -errno, "epoll_ctl: %s", strerror(errno));
		goto fail;
	}
	session_begin(b, &reply);
	b->connected = true;
	b->bye = false;
	return 0;

fail:
	if (b->epfd >= 0)
		close(b->epfd);
	b->epfd = -1;
	free(b->obuf);
	b->obuf = NULL;
	close_queues(b);
	return r;
}

MQBUS_EXPORT int mqbus_open(mqbus **ret, const char *bus)
{
	mqbus *b;
	int r;

	if (!ret)
		return -EINVAL;
	r = mqbus_new(&b);
	if (r < 0)
		return r;
	if (bus)
		r = mqbus_set_bus(b, bus);
	if (r == 0)
		r = mqbus_connect(b);
	if (r < 0) {
		mqbus_free(b);
		return r;
	}
	*ret = b;
	return 0;
}

MQBUS_EXPORT mqbus *mqbus_free(mqbus *b)
{
	struct mqbus_msg *m;

	if (!b)
		return NULL;
	/* what publish() took is sent, waiting as publish() would have */
	if (b->connected && !b->bye)
		held_send(b, true);
	if (b->connected && !b->bye) {
		unsigned char buf[PROTO_HEADER_SIZE + 1];
		struct proto_header h;
		struct timespec now;
		int n;

		/* best effort: if tx is full the pidfd tells the daemon */
		proto_header_init(&h, PROTO_BYE);
		n = proto_encode(buf, sizeof(buf), &h, NULL, NULL, 0);
		clock_gettime(CLOCK_REALTIME, &now);
		if (n > 0)
			mq_timedsend(b->tx, (const char *)buf, (size_t)n, 0,
				     &now);
	}
	close_queues(b);
	while ((m = queue_pop(b)))
		msg_put(m);
	while ((m = fifo_pop(&b->replies_head, &b->replies_tail)))
		msg_put(m);
	while (b->async)
		async_remove(b, b->async);
	while (b->replay)
		replay_remove(b, b->replay);
	if (b->pidfd >= 0)
		close(b->pidfd);
	if (b->epfd >= 0)
		close(b->epfd);
	reasm_reset(&b->reasm);
	shmio_reset(&b->shm);
	free(b->shm_buf);
	free(b->sbuf);
	free(b->buf);
	free(b->obuf);
	free(b->held);
	if (b->pool) {
		/* messages the program still holds keep the rest */
		while (b->pool->free) {
			m = b->pool->free;
			b->pool->free = m->next;
			b->pool->n_free--;
			free(m);
		}
		msg_pool_unref(b->pool);
	}
	free(b);
	return NULL;
}

/* -------------------------------------------------------------------- */
/* reconnecting                                                          */

static bool announce_queue_exists(const mqbus *b)
{
	char name[BUS_NAME_MAX + 2];
	mqd_t a;

	snprintf(name, sizeof(name), "/%s", b->bus);
	a = mq_open(name, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (a == (mqd_t)-1)
		return errno != ENOENT;
	mq_close(a);
	return true;
}

static struct replay *replay_find(mqbus *b, const char *pattern,
				  const char *group, bool monitor)
{
	struct replay *e;

	for (e = b->replay; e; e = e->next)
		if (e->monitor == monitor && strcmp(e->pattern, pattern) == 0 &&
		    (e->group ? group && strcmp(e->group, group) == 0
			      : !group))
			return e;
	return NULL;
}

static void replay_remove(mqbus *b, struct replay *e)
{
	struct replay **p = &b->replay;

	while (*p != e)
		p = &(*p)->next;
	*p = e->next;
	free(e->group);
	free(e);
	b->replay_removed++;
}

/*
 * Remembers (on) or forgets a subscription the program made or ended, to
 * make it again on a reconnection.  Out of memory it is not remembered:
 * the call that made it has succeeded, and fails nothing now.
 */
static void replay_note(mqbus *b, const char *pattern, const char *group,
			bool monitor, bool on)
{
	struct replay *e = replay_find(b, pattern, group, monitor), **p;

	if (!on) {
		if (e)
			replay_remove(b, e);
		return;
	}
	if (e)
		return;
	e = calloc(1, sizeof(*e) + strlen(pattern) + 1);
	if (!e)
		return;
	strcpy(e->pattern, pattern);
	e->monitor = monitor;
	if (group && !(e->group = strdup(group))) {
		free(e);
		return;
	}
	/* in the program's order: a later subscription's retained values
	 * come after an earlier one's, as they did the first time */
	for (p = &b->replay; *p; p = &(*p)->next)
		;
	*p = e;
}

/* Writes into tx at once or not at all (tx full: -EAGAIN). */
static int send_now(mqbus *b, const void *buf, size_t len, unsigned prio)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	if (mq_timedsend(b->tx, buf, len, prio, &now) == 0)
		return 0;
	return errno == ETIMEDOUT ? -EAGAIN : -errno;
}

/*
 * Writes the subscriptions not yet in tx, at the highest priority so that
 * the daemon reads them before anything the program queued; stops where
 * tx is full (the rest follows later).  Returns whether all are written.
 */
static bool replay_write(mqbus *b)
{
	struct replay *e;

	for (e = b->replay; e; e = e->next) {
		struct proto_header h;
		int n;

		if (e->state != REPLAY_TO_SEND)
			continue;
		proto_header_init(&h, PROTO_SUBSCRIBE);
		if (e->monitor)
			h.flags = PROTO_F_MONITOR;
		h.token = new_token(b);
		n = proto_encode(b->obuf, (size_t)b->msgsize, &h, e->pattern,
				 e->group, e->group ? strlen(e->group) : 0);
		if (n < 0 || send_now(b, b->obuf, (size_t)n,
				      PROTO_PRIO_MAX) < 0)
			return false;
		e->token = h.token;
		e->state = REPLAY_SENT;
	}
	return true;
}

/*
 * An answer to a subscription made again, if pm is one.  A refusal (the
 * access policy changed, say) forgets the subscription and is kept for
 * the RECONNECTED callback; EEXIST means the daemon has it already.
 */
static bool replay_answer(mqbus *b, const struct proto_msg *pm)
{
	struct replay *e;

	for (e = b->replay; e; e = e->next)
		if (e->state == REPLAY_SENT && e->token == pm->h.token)
			break;
	if (!e)
		return false;
	e->state = REPLAY_DONE;
	if (pm->h.type == PROTO_ERROR && pm->h.status &&
	    pm->h.status != EEXIST) {
		if (!b->restored_err) {
			b->restored_err = -(int)pm->h.status;
			snprintf(b->restored_why, sizeof(b->restored_why),
				 "cannot %s %s%s%s again after reconnecting: "
				 "%.*s",
				 e->monitor ? "monitor" : "subscribe to",
				 e->pattern, e->group ? " in group " : "",
				 e->group ? e->group : "",
				 (int)pm->h.payload_len,
				 (const char *)pm->payload);
		}
		replay_remove(b, e);
	}
	return true;
}

/*
 * The connection is lost.  daemon_left: the daemon died or stopped, so a
 * next one may take us back (if reconnecting is on); queues_gone: it
 * removes our queues.  Requests in flight fail (their callbacks run in
 * mqbus_process()); the subscriptions are to be made again.
 */
static void lose(mqbus *b, bool daemon_left, bool queues_gone, int err,
		 const char *fmt, ...)
{
	struct async_req *a;
	struct replay *e;
	va_list ap;

	if (b->bye)
		return;
	va_start(ap, fmt);
	vsnprintf(b->lost_why, sizeof(b->lost_why), fmt, ap);
	va_end(ap);
	b->bye = true;
	b->reconnecting = daemon_left && b->reconnect;
	b->lost_err = err;
	b->lost_due = true;
	b->restored_due = false;
	b->restoring = false;
	if (b->pidfd >= 0)
		close(b->pidfd); /* leaves the epoll set with it */
	b->pidfd = -1;
	shmio_reset(&b->shm);
	for (a = b->async; a; a = a->next)
		a->reset = true;
	for (e = b->replay; e; e = e->next)
		e->state = REPLAY_TO_SEND;
	b->fresh = queues_gone;
	b->backoff_ms = BACKOFF_FIRST_MS;
	b->attempt_at = now_ms();
}

/* Puts ANNOUNCE (with flags) of tx into the announce queue, if it can
 * now: a full or missing announce queue waits for the next attempt. */
static void announce_now(mqbus *b, unsigned flags)
{
	char name[BUS_NAME_MAX + 2];
	unsigned char buf[PROTO_HEADER_SIZE + PROTO_QNAME_MAX + 1];
	struct proto_header h;
	mqd_t a;
	int n;

	snprintf(name, sizeof(name), "/%s", b->bus);
	a = mq_open(name, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (a == (mqd_t)-1)
		return;
	proto_header_init(&h, PROTO_ANNOUNCE);
	h.flags = (uint16_t)(flags | (b->batch ? PROTO_F_BATCH : 0) |
			     (b->origin ? PROTO_F_ORIGIN : 0) |
			     (b->shm_wanted ? PROTO_F_SHM : 0));
	n = proto_encode(buf, sizeof(buf), &h, b->tx_name, NULL, 0);
	if (n > 0)
		mq_send(a, (const char *)buf, (size_t)n, 0);
	mq_close(a);
}

/*
 * Our queues are gone: new ones, with a HELLO first in tx so that the
 * next daemon takes them as a new client.  The old names are removed in
 * case only one of them went.
 */
static int fresh_queues(mqbus *b)
{
	struct proto_header h;
	struct replay *e;
	int n, r;

	close_queues(b);
	r = create_queues(b);
	if (r < 0)
		return r;
	proto_header_init(&h, PROTO_HELLO);
	h.sender_pid = (uint32_t)getpid();
	n = proto_encode(b->obuf, (size_t)b->msgsize, &h, b->rx_name, NULL, 0);
	if (n < 0 || send_now(b, b->obuf, (size_t)n, PROTO_PRIO_MAX) < 0)
		return set_error(b, -EIO, "cannot write the HELLO into %s",
				 b->tx_name);
	for (e = b->replay; e; e = e->next)
		e->state = REPLAY_TO_SEND;
	b->fresh = false;
	b->hello = true;
	return 0;
}

/*
 * One step of a reconnection, when its time has come: fresh queues if
 * ours are gone, what we replay into tx, then an announce; the next
 * attempt after the back-off.  Once reconnected, the rest of the replay
 * that did not fit.  Never blocks.
 */
static void reconnect_step(mqbus *b)
{
	int64_t now;

	if (!b->bye) {
		if (b->restoring)
			replay_write(b);
		return;
	}
	if (!b->reconnecting)
		return;
	now = now_ms();
	if (now < b->attempt_at)
		return;
	b->attempt_at = now + b->backoff_ms;
	b->backoff_ms = b->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							   : b->backoff_ms * 2;
	if (!b->fresh &&
	    (!queue_exists(b->tx_name) || !queue_exists(b->rx_name)))
		b->fresh = true;
	if (b->fresh) {
		char why[sizeof(b->error)];

		/* keep the caller's error: this is no call of theirs */
		memcpy(why, b->error, sizeof(why));
		if (fresh_queues(b) < 0) {
			memcpy(b->error, why, sizeof(why));
			return;
		}
	}
	replay_write(b);
	announce_now(b, b->hello ? 0 : PROTO_F_RESUME);
}

/* How long a wait may last while reconnecting: until the next step. */
static int reconnect_slice(const mqbus *b, int slice)
{
	int64_t left;

	if (!b->reconnecting)
		return slice;
	left = b->attempt_at - now_ms();
	if (left < 1)
		left = 1;
	return left < slice ? (int)left : slice;
}

/* Whether the RECONNECTED callback is due: every subscription answered,
 * or the handle's timeout passed waiting for that. */
static void restore_check(mqbus *b)
{
	struct replay *e;

	if (!b->restoring)
		return;
	for (e = b->replay; e; e = e->next)
		if (e->state != REPLAY_DONE)
			break;
	if (e && (b->restore_deadline < 0 || now_ms() < b->restore_deadline))
		return;
	if (e && !b->restored_err) {
		b->restored_err = -ETIMEDOUT;
		snprintf(b->restored_why, sizeof(b->restored_why),
			 "the daemon of bus %s did not answer the "
			 "subscriptions made again within %d ms",
			 b->bus, b->timeout_ms);
	}
	b->restoring = false;
	b->restored_due = true;
}

/* A WELCOME while reconnecting: a daemon took us back. */
static void resumed(mqbus *b, const struct proto_msg *pm)
{
	session_begin(b, pm);
	b->bye = false;
	b->reconnecting = false;
	b->hello = false;
	b->restoring = true;
	b->restored_err = 0;
	b->restored_why[0] = '\0';
	b->restore_deadline = deadline_of(b->timeout_ms);
	snprintf(b->restored_why, sizeof(b->restored_why),
		 "reconnected to bus %s (daemon pid %u)", b->bus,
		 (unsigned)b->welcome.daemon_pid);
}

/* Runs the connection callbacks that are due. */
static void conn_dispatch(mqbus *b)
{
	restore_check(b);
	if (b->lost_due) {
		b->lost_due = false;
		set_error(b, b->lost_err, "%s%s", b->lost_why,
			  b->reconnecting ? "; reconnecting" : "");
		if (b->conn_fn)
			b->conn_fn(b, MQBUS_DISCONNECTED, b->lost_err,
				   b->conn_userdata);
	}
	if (b->restored_due && !b->bye) {
		b->restored_due = false;
		set_error(b, b->restored_err, "%s", b->restored_why);
		if (b->conn_fn)
			b->conn_fn(b, MQBUS_RECONNECTED, b->restored_err,
				   b->conn_userdata);
	}
}

/*
 * For a call that needs the daemon (a control request, a request): while
 * reconnecting, waits up to the handle's timeout for the reconnection,
 * keeping what arrives for mqbus_receive()/mqbus_process().
 */
static int wait_reconnected(mqbus *b)
{
	int64_t deadline = deadline_of(b->timeout_ms);

	while (b->bye && b->reconnecting) {
		int slice;
		int r;

		reconnect_step(b);
		r = read_one(b, 0, 0, NULL, NULL);
		if (r < 0)
			return r;
		if (r > 0)
			continue;
		if (deadline >= 0 && now_ms() >= deadline)
			break;
		slice = reconnect_slice(b, slice_until(deadline));
		if (slice > 0) {
			struct pollfd p = { .fd = b->rx, .events = POLLIN };

			poll(&p, 1, slice);
		}
	}
	if (b->bye)
		return set_error(b, -ENOTCONN, "%s%s", b->lost_why,
				 b->reconnecting ? "; not reconnected yet"
						 : "");
	return 0;
}

MQBUS_EXPORT int mqbus_set_reconnect(mqbus *b, int on)
{
	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	if (on != 0 && on != 1)
		return set_error(b, -EINVAL,
				 "invalid reconnect setting %d: 0 or 1", on);
	b->reconnect = on;
	b->bad_env &= ~ENV_BIT(ENV_RECONNECT);
	if (!on)
		b->reconnecting = false;
	return 0;
}

MQBUS_EXPORT void mqbus_set_connection_cb(mqbus *b,
					  mqbus_connection_handler fn,
					  void *userdata)
{
	if (!b)
		return;
	b->conn_fn = fn;
	b->conn_userdata = userdata;
}

MQBUS_EXPORT int mqbus_reconnecting(const mqbus *b)
{
	return b && b->connected && b->bye && b->reconnecting;
}

/* -------------------------------------------------------------------- */
/* checks of what is sent                                                */

/* Whether topic is a concrete topic; if not, says why in b's error. */
static bool topic_ok(mqbus *b, const char *topic)
{
	if (topic && proto_topic_valid(topic, strlen(topic), false))
		return true;
	set_error(b, -EINVAL,
		  "invalid topic '%.*s%s': 1 to %d bytes of printable ASCII "
		  "in '/'-separated levels, no '+' or '#'",
		  PROTO_TOPIC_MAX, topic ? topic : "(null)",
		  topic && strlen(topic) > PROTO_TOPIC_MAX ? "..." : "",
		  PROTO_TOPIC_MAX);
	return false;
}

/* What a call does while the connection is lost and being made again. */
enum conn_need {
	CONN_WAIT,  /* wait for the reconnection (it needs an answer) */
	CONN_QUEUE, /* go on: tx keeps the message for the next daemon */
	CONN_NOW,   /* fail: it makes sense only to the lost daemon */
};

static int check_connected(mqbus *b, enum conn_need need)
{
	if (!b->connected)
		return set_error(b, -ENOTCONN, "not connected");
	/* a publisher may never read rx: look at the pidfd now and then
	 * (CLOCK_MONOTONIC is read without a system call) */
	if (!b->bye && need == CONN_QUEUE) {
		int64_t now = now_ms();

		if (now >= b->liveness_at) {
			b->liveness_at = now + LIVENESS_MS;
			daemon_died(b);
		}
	}
	if (!b->bye)
		return 0;
	if (b->reconnecting && need == CONN_WAIT)
		return wait_reconnected(b);
	if (b->reconnecting && need == CONN_QUEUE) {
		/* the WELCOME, for a client that reads rx no other way */
		for (int i = 0; i < 2 * b->maxmsg && b->bye; i++)
			if (read_one(b, 0, 0, NULL, NULL) <= 0)
				break;
		reconnect_step(b);
		return 0;
	}
	return set_error(b, -ENOTCONN, "%s", b->lost_why);
}

/*
 * What publish, request and timer_add check alike: the connection, the
 * topic, the key (NULL: none), the priority and the data; says what is
 * wrong in b's error.
 */
static int message_ok(mqbus *b, enum conn_need need, const char *topic,
		      const char *key, int priority, const void *data,
		      size_t len)
{
	int r = check_connected(b, need);

	if (r < 0)
		return r;
	if (!topic_ok(b, topic))
		return -EINVAL;
	if (key && !proto_key_valid(key, strnlen(key, PROTO_KEY_MAX + 1)))
		return set_error(b, -EINVAL,
				 "invalid key '%.*s': 1 to %d bytes of "
				 "printable ASCII, no space",
				 PROTO_KEY_MAX, key, PROTO_KEY_MAX);
	if (priority != MQBUS_PRIORITY_DEFAULT &&
	    (priority < 0 || priority > PROTO_PRIO_MAX))
		return set_error(b, -EINVAL, "invalid priority %d: 0 to %d",
				 priority, PROTO_PRIO_MAX);
	if (len && !data)
		return set_error(b, -EINVAL, "no data");
	return 0;
}

/* Sets the priority asked for in h; returns the mq priority to send at. */
static unsigned set_priority(struct proto_header *h, int priority)
{
	if (priority == MQBUS_PRIORITY_DEFAULT)
		return 0;
	h->flags |= PROTO_F_PRIORITY;
	h->priority = (uint32_t)priority;
	return (unsigned)priority;
}

/* -------------------------------------------------------------------- */
/* options structs                                                       */

/*
 * The rules are in mqbus.h.  For them to hold, an options struct never
 * has padding (a caller's padding bytes are not known to be 0, and a
 * later field there would read them), and a field added later must mean
 * "as before" when 0.  The assertions below keep the first rule on every
 * ABI; the lists of where fields end are the sizes a caller may give.
 */
#define FIELD_END(type, field) \
	(offsetof(type, field) + sizeof(((type *)0)->field))

_Static_assert(FIELD_END(struct mqbus_publish_opts, size) ==
			       offsetof(struct mqbus_publish_opts, priority) &&
		       FIELD_END(struct mqbus_publish_opts, flags) ==
			       offsetof(struct mqbus_publish_opts, key) &&
		       FIELD_END(struct mqbus_publish_opts, key) ==
			       sizeof(struct mqbus_publish_opts),
	       "struct mqbus_publish_opts has no padding");
_Static_assert(FIELD_END(struct mqbus_request_opts, size) ==
			       offsetof(struct mqbus_request_opts, priority) &&
		       FIELD_END(struct mqbus_request_opts, timeout_ms) ==
			       sizeof(struct mqbus_request_opts),
	       "struct mqbus_request_opts has no padding");
_Static_assert(FIELD_END(struct mqbus_timer_add_opts, size) ==
			       offsetof(struct mqbus_timer_add_opts, priority) &&
		       FIELD_END(struct mqbus_timer_add_opts, flags) ==
			       offsetof(struct mqbus_timer_add_opts, key) &&
		       FIELD_END(struct mqbus_timer_add_opts, key) ==
			       offsetof(struct mqbus_timer_add_opts, when) &&
		       FIELD_END(struct mqbus_timer_add_opts, period_ms) ==
			       sizeof(struct mqbus_timer_add_opts),
	       "struct mqbus_timer_add_opts has no padding");

static const size_t publish_opts_ends[] = {
	FIELD_END(struct mqbus_publish_opts, size),
	FIELD_END(struct mqbus_publish_opts, priority),
	FIELD_END(struct mqbus_publish_opts, flags),
	FIELD_END(struct mqbus_publish_opts, key),
};

static const size_t request_opts_ends[] = {
	FIELD_END(struct mqbus_request_opts, size),
	FIELD_END(struct mqbus_request_opts, priority),
	FIELD_END(struct mqbus_request_opts, timeout_ms),
};

static const size_t timer_add_opts_ends[] = {
	FIELD_END(struct mqbus_timer_add_opts, size),
	FIELD_END(struct mqbus_timer_add_opts, priority),
	FIELD_END(struct mqbus_timer_add_opts, flags),
	FIELD_END(struct mqbus_timer_add_opts, key),
	FIELD_END(struct mqbus_timer_add_opts, when),
	FIELD_END(struct mqbus_timer_add_opts, period_ms),
};

#define OPTS_READ(b, name, dst, src, ends)                                  \
	opts_read(b, name, dst, sizeof(*(dst)), src, ends,                  \
		  sizeof(ends) / sizeof((ends)[0]))

/*
 * Reads the caller's options struct src (NULL: none) into dst, which
 * holds the defaults and is dst_size bytes long (the struct this library
 * knows), its fields ending at ends[]: copies the fields src's size
 * covers, after checking that the size is one a caller may give and that
 * nothing beyond dst_size is set.  dst->size keeps its value.  Returns 0
 * or -EINVAL with a sentence naming the struct.
 */
static int opts_read(mqbus *b, const char *name, void *dst, size_t dst_size,
		     const void *src, const size_t *ends, size_t n_ends)
{
	const unsigned char *p = src;
	size_t size, i;

	if (!src)
		return 0;
	memcpy(&size, src, sizeof(size));
	if (size < sizeof(size_t) || size > MQBUS_OPTS_SIZE_MAX)
		return set_error(b, -EINVAL,
				 "struct %s has an invalid size %zu: set it "
				 "to sizeof(struct %s) (start from its _INIT "
				 "macro)",
				 name, size, name);
	if (size > dst_size) {
		for (i = dst_size; i < size; i++)
			if (p[i])
				return set_error(
					b, -EINVAL,
					"struct %s of %zu bytes sets byte %zu, "
					"an option this libmqbus (which knows "
					"%zu bytes) does not have; run the "
					"program with a newer libmqbus",
					name, size, i, dst_size);
		size = dst_size;
	} else if (size < dst_size) {
		for (i = 0; i < n_ends && ends[i] != size; i++)
			;
		if (i == n_ends)
			return set_error(b, -EINVAL,
					 "struct %s has an invalid size %zu: "
					 "it ends inside a field; set it to "
					 "sizeof(struct %s)",
					 name, size, name);
	}
	memcpy((unsigned char *)dst + sizeof(size_t), p + sizeof(size_t),
	       size - sizeof(size_t));
	return 0;
}

/* -------------------------------------------------------------------- */
/* publish                                                               */

MQBUS_EXPORT int mqbus_publish_opts(mqbus *b, const char *topic,
				    const void *data, size_t len,
				    const struct mqbus_publish_opts *opts)
{
	struct mqbus_publish_opts o = MQBUS_PUBLISH_OPTS_INIT;
	struct proto_header h;
	unsigned prio;
	int r;

	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	r = OPTS_READ(b, "mqbus_publish_opts", &o, opts, publish_opts_ends);
	if (r < 0)
		return r;
	r = message_ok(b, CONN_QUEUE, topic, o.key, o.priority, data, len);
	if (r < 0)
		return r;
	if (o.flags & ~MQBUS_PUBLISH_RETAIN)
		return set_error(b, -EINVAL, "unknown publish flags 0x%x",
				 o.flags);
	proto_header_init(&h, PROTO_PUBLISH);
	if (o.flags & MQBUS_PUBLISH_RETAIN)
		h.flags |= PROTO_F_RETAIN;
	prio = set_priority(&h, o.priority);
	return send_msg_key(b, &h, topic, o.key, data, len, prio);
}

MQBUS_EXPORT int mqbus_set_origin(mqbus *b, int on)
{
	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	if (b->connected)
		return set_error(b, -EISCONN,
				 "ask for remote origins before connecting");
	b->origin = on != 0;
	return 0;
}

MQBUS_EXPORT void mqbus_set_publish_batch(mqbus *b, int on)
{
	if (!b)
		return;
	b->publish_batch = on == MQBUS_PUBLISH_BATCH_FILL ? on : on != 0;
	/* the program's word replaces a bad MQBUS_PUBLISH_BATCH */
	b->bad_env &= ~ENV_BIT(ENV_PUBLISH_BATCH);
}

MQBUS_EXPORT int mqbus_flush(mqbus *b)
{
	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	if (!b->connected)
		return set_error(b, -ENOTCONN, "not connected");
	return held_send(b, true);
}

MQBUS_EXPORT int mqbus_publish(mqbus *b, const char *topic, const void *data,
			       size_t len, int priority)
{
	struct mqbus_publish_opts o = MQBUS_PUBLISH_OPTS_INIT;

	o.priority = priority;
	return mqbus_publish_opts(b, topic, data, len, &o);
}

MQBUS_EXPORT int mqbus_publish_flags(mqbus *b, const char *topic,
				     const void *data, size_t len,
				     int priority, unsigned flags)
{
	struct mqbus_publish_opts o = MQBUS_PUBLISH_OPTS_INIT;

	o.priority = priority;
	o.flags = flags;
	return mqbus_publish_opts(b, topic, data, len, &o);
}

MQBUS_EXPORT int mqbus_publish_key(mqbus *b, const char *topic,
				   const char *key, const void *data,
				   size_t len, int priority, unsigned flags)
{
	struct mqbus_publish_opts o = MQBUS_PUBLISH_OPTS_INIT;

	o.priority = priority;
	o.flags = flags;
	o.key = key;
	return mqbus_publish_opts(b, topic, data, len, &o);
}

/* -------------------------------------------------------------------- */
/* control requests, subscribe, stats                                    */

static uint32_t new_token(mqbus *b)
{
	if (++b->next_token == 0)
		b->next_token = 1;
	return b->next_token;
}

/*
 * Sends the control message h (its token is set here) and waits for the
 * daemon's answer in *ret.  An ERROR gives its errno, and the daemon's
 * sentence, after what and a colon if what is not NULL, in b's error.
 */
static int control_at(mqbus *b, struct proto_header *h, const char *topic,
		      const char *key, const void *payload, size_t len,
		      const char *what, unsigned prio, struct proto_msg *ret)
{
	int r;

	h->token = new_token(b);
	r = send_msg_key(b, h, topic, key, payload, len, prio);
	if (r < 0)
		return r;
	r = wait_reply(b, h->token, b->timeout_ms, ret);
	if (r < 0)
		return r;
	if (ret->h.type == PROTO_ERROR)
		return set_error(b, -(int)ret->h.status, "%s%s%.*s",
				 what ? what : "", what ? ": " : "",
				 (int)ret->h.payload_len,
				 (const char *)ret->payload);
	return 0;
}

static int control(mqbus *b, struct proto_header *h, const char *topic,
		   const char *key, const void *payload, size_t len,
		   const char *what, struct proto_msg *ret)
{
	/* requests overtake queued publishes, as replies do on rx */
	return control_at(b, h, topic, key, payload, len, what,
			  PROTO_PRIO_MAX, ret);
}

/* A control request of type with topic and a text payload. */
static int request(mqbus *b, enum proto_type type, const char *topic,
		   const char *payload, struct proto_msg *ret)
{
	struct proto_header h;
	int r;

	r = check_connected(b, CONN_WAIT);
	if (r < 0)
		return r;
	proto_header_init(&h, type);
	return control(b, &h, topic, NULL, payload,
		       payload ? strlen(payload) : 0, NULL, ret);
}

/* A request whose answer is a text (STATS, TIMER_LIST), malloc'ed. */
static int request_text(mqbus *b, enum proto_type type, char **ret)
{
	struct proto_msg reply;
	char *text;
	int r;

	if (!b || !ret)
		return -EINVAL;
	b->error[0] = '\0';
	r = request(b, type, NULL, NULL, &reply);
	if (r < 0)
		return r;
	text = strndup(reply.payload, reply.h.payload_len);
	if (!text)
		return set_error(b, -ENOMEM, "out of memory");
	*ret = text;
	return 0;
}

/* A subscription pattern, or -EINVAL with the sentence that says why. */
static int check_pattern(mqbus *b, const char *pattern)
{
	if (!pattern || !proto_topic_valid(pattern, strlen(pattern), true))
		return set_error(b, -EINVAL,
				 "invalid pattern '%.*s%s': 1 to %d bytes "
				 "in '/'-separated levels, '+' for one whole "
				 "level, '#' as the whole last level",
				 PROTO_TOPIC_MAX,
				 pattern ? pattern : "(null)",
				 pattern && strlen(pattern) > PROTO_TOPIC_MAX
					 ? "..."
					 : "",
				 PROTO_TOPIC_MAX);
	return 0;
}

/*
 * Keeps the list of what a reconnection makes again after a SUBSCRIBE or
 * UNSUBSCRIBE that gave r.  -ECONNRESET (the daemon went before it
 * answered) counts as done: a subscription may have been made, and is
 * made again; EEXIST and ENOENT say how things already are.
 */
static void subscription_note(mqbus *b, enum proto_type type,
			      const char *pattern, const char *group,
			      bool monitor, int r)
{
	bool on = type == PROTO_SUBSCRIBE;

	if (r == 0 || r == -ECONNRESET || (on && r == -EEXIST) ||
	    (!on && r == -ENOENT))
		replay_note(b, pattern, group, monitor, on);
}

static int subscription(mqbus *b, enum proto_type type, const char *pattern,
			const char *group)
{
	struct proto_msg reply;
	int r;

	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	r = check_pattern(b, pattern);
	if (r < 0)
		return r;
	if (group && !proto_group_valid(group, strlen(group)))
		return set_error(b, -EINVAL,
				 "invalid group name '%s': 1 to %d of "
				 "A-Z a-z 0-9 . _ -",
				 group, PROTO_GROUP_MAX);
	r = request(b, type, pattern, group, &reply);
	subscription_note(b, type, pattern, group, false, r);
	return r;
}

MQBUS_EXPORT int mqbus_subscribe(mqbus *b, const char *pattern)
{
	return subscription(b, PROTO_SUBSCRIBE, pattern, NULL);
}

MQBUS_EXPORT int mqbus_unsubscribe(mqbus *b, const char *pattern)
{
	return subscription(b, PROTO_UNSUBSCRIBE, pattern, NULL);
}

MQBUS_EXPORT int mqbus_subscribe_group(mqbus *b, const char *pattern,
				       const char *group)
{
	if (!group)
		return -EINVAL;
	return subscription(b, PROTO_SUBSCRIBE, pattern, group);
}

MQBUS_EXPORT int mqbus_unsubscribe_group(mqbus *b, const char *pattern,
					 const char *group)
{
	if (!group)
		return -EINVAL;
	return subscription(b, PROTO_UNSUBSCRIBE, pattern, group);
}

MQBUS_EXPORT int mqbus_topic_match(const char *pattern, const char *topic)
{
	if (!pattern || !topic ||
	    !proto_topic_valid(pattern, strlen(pattern), true) ||
	    !proto_topic_valid(topic, strlen(topic), false))
		return -EINVAL;
	return proto_topic_match(pattern, topic);
}

/*
 * A subscription with its own handler: the entry the reconnection keeps
 * of it carries the handler, so the two live and die together (an
 * unsubscription, a refusal after reconnecting).  -ECONNRESET leaves it
 * in place like any subscription, to be made again.
 */
MQBUS_EXPORT int mqbus_subscribe_cb(mqbus *b, const char *pattern,
				    mqbus_handler fn, void *userdata)
{
	struct replay *e;
	int r;

	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	if (!fn)
		return set_error(b, -EINVAL,
				 "mqbus_subscribe_cb: no handler for %s",
				 pattern ? pattern : "(null)");
	r = subscription(b, PROTO_SUBSCRIBE, pattern, NULL);
	if (r < 0 && r != -ECONNRESET)
		return r;
	e = replay_find(b, pattern, NULL, false);
	if (!e) {
		/* replay_note() ran out of memory: no handler, so none */
		mqbus_unsubscribe(b, pattern);
		return set_error(b, -ENOMEM, "out of memory");
	}
	e->fn = fn;
	e->fn_userdata = userdata;
	/* not offered the message being handled now, if any */
	e->offered = b->offer_seq;
	return r;
}

/* -------------------------------------------------------------------- */
/* monitors                                                              */

/*
 * A SUBSCRIBE or UNSUBSCRIBE of pattern with PROTO_F_MONITOR: no group,
 * answered like a subscription.  The daemon's sentence of a refusal
 * (EPERM: not root or the bus owner) follows what we tried.
 */
static int monitor_control(mqbus *b, enum proto_type type,
			   const char *pattern)
{
	struct proto_header h;
	struct proto_msg reply;
	char what[PROTO_TOPIC_MAX + 32];
	int r;

	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	r = check_pattern(b, pattern);
	if (r < 0)
		return r;
	r = check_connected(b, CONN_WAIT);
	if (r < 0)
		return r;
	proto_header_init(&h, type);
	h.flags = PROTO_F_MONITOR;
	snprintf(what, sizeof(what), "cannot %s %s",
		 type == PROTO_SUBSCRIBE ? "monitor" : "stop monitoring",
		 pattern);
	r = control(b, &h, pattern, NULL, NULL, 0, what, &reply);
	subscription_note(b, type, pattern, NULL, true, r);
	return r;
}

MQBUS_EXPORT int mqbus_monitor(mqbus *b, const char *pattern)
{
	return monitor_control(b, PROTO_SUBSCRIBE, pattern);
}

MQBUS_EXPORT int mqbus_unmonitor(mqbus *b, const char *pattern)
{
	return monitor_control(b, PROTO_UNSUBSCRIBE, pattern);
}

/* -------------------------------------------------------------------- */
/* timers                                                                */

MQBUS_EXPORT int mqbus_timer_add_opts(mqbus *b, const char *topic,
				      const void *data, size_t len,
				      const struct mqbus_timer_add_opts *opts,
				      uint64_t *ret_id)
{
	struct mqbus_timer_add_opts o = MQBUS_TIMER_ADD_OPTS_INIT;
	struct proto_header h;
	struct proto_msg reply;
	int r;

	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	r = OPTS_READ(b, "mqbus_timer_add_opts", &o, opts,
		      timer_add_opts_ends);
	if (r < 0)
		return r;
	r = message_ok(b, CONN_WAIT, topic, o.key, o.priority, data, len);
	if (r < 0)
		return r;
	if (o.flags & ~(MQBUS_TIMER_DETACHED | MQBUS_TIMER_ABSOLUTE))
		return set_error(b, -EINVAL, "unknown timer flags 0x%x",
				 o.flags);
	proto_header_init(&h, PROTO_TIMER_ADD);
	h.seq = o.when;
	h.timestamp = o.period_ms;
	if (o.flags & MQBUS_TIMER_DETACHED)
		h.flags |= PROTO_F_DETACHED;
	if (o.flags & MQBUS_TIMER_ABSOLUTE)
		h.flags |= PROTO_F_ABSOLUTE;
	set_priority(&h, o.priority);
	r = control(b, &h, topic, o.key, data, len, "timer refused", &reply);
	if (r < 0)
		return r;
	if (ret_id)
		*ret_id = reply.h.seq;
	return 0;
}

MQBUS_EXPORT int mqbus_timer_add(mqbus *b, const char *topic,
				 const void *data, size_t len, int priority,
				 uint64_t when, uint64_t period_ms,
				 unsigned flags, uint64_t *ret_id)
{
	return mqbus_timer_add_key(b, topic, NULL, data, len, priority, when,
				   period_ms, flags, ret_id);
}

MQBUS_EXPORT int mqbus_timer_add_key(mqbus *b, const char *topic,
				     const char *key, const void *data,
				     size_t len, int priority, uint64_t when,
				     uint64_t period_ms, unsigned flags,
				     uint64_t *ret_id)
{
	struct mqbus_timer_add_opts o = MQBUS_TIMER_ADD_OPTS_INIT;

	o.priority = priority;
	o.flags = flags;
	o.key = key;
	o.when = when;
	o.period_ms = period_ms;
	return mqbus_timer_add_opts(b, topic, data, len, &o, ret_id);
}

MQBUS_EXPORT int mqbus_timer_cancel(mqbus *b, uint64_t id)
{
	struct proto_header h;
	struct proto_msg reply;
	char what[48];
	int r;

	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	if (id == 0)
		return set_error(b, -ENOENT, "no such timer");
	r = check_connected(b, CONN_WAIT);
	if (r < 0)
		return r;
	proto_header_init(&h, PROTO_TIMER_CANCEL);
	h.seq = id;
	snprintf(what, sizeof(what), "cannot cancel timer %llu",
		 (unsigned long long)id);
	return control(b, &h, NULL, NULL, NULL, 0, what, &reply);
}

MQBUS_EXPORT int mqbus_timer_list(mqbus *b, char **ret)
{
	return request_text(b, PROTO_TIMER_LIST, ret);
}

/* -------------------------------------------------------------------- */
/* request/reply                                                         */

/* The sentence and code for an ERROR answering a request on topic. */
/* The daemon's own sentence (text, len bytes) wins where it gave one:
 * it names the rule that refused a request, say. */
static int request_error(mqbus *b, const char *topic, uint32_t status,
			 const void *text, size_t len)
{
	if (status == EHOSTUNREACH)
		return set_error(b, -EHOSTUNREACH,
				 "no responders on topic %s", topic);
	if (status == ETIMEDOUT)
		return set_error(b, -ETIMEDOUT,
				 "no reply on topic %s before the timeout",
				 topic);
	if (text && len)
		return set_error(b, -(int)status, "%.*s", (int)len,
				 (const char *)text);
	return set_error(b, -(int)status, "request on topic %s failed: %s",
			 topic, strerror((int)status));
}

/* Checks the arguments and sends a REQUEST with token. */
static int send_request(mqbus *b, enum conn_need need, const char *topic,
			const void *data, size_t len, int priority,
			int timeout_ms, uint32_t token)
{
	struct proto_header h;
	unsigned prio;
	int r;

	r = message_ok(b, need, topic, NULL, priority, data, len);
	if (r < 0)
		return r;
	if (timeout_ms < -1)
		return set_error(b, -EINVAL, "invalid timeout %d ms",
				 timeout_ms);
	proto_header_init(&h, PROTO_REQUEST);
	h.token = token;
	h.status = (uint32_t)(timeout_ms < 0 ? b->timeout_ms : timeout_ms);
	if (timeout_ms < 0 && b->timeout_ms < 0)
		h.status = 0; /* the daemon's default */
	else if (h.status == 0)
		h.status = 1; /* "don't wait": not the daemon's default */
	prio = set_priority(&h, priority);
	return send_msg(b, &h, topic, data, len, prio);
}

MQBUS_EXPORT int mqbus_request_opts(mqbus *b, const char *topic,
				    const void *data, size_t len,
				    const struct mqbus_request_opts *opts,
				    mqbus_msg **ret_reply)
{
	struct mqbus_request_opts o = MQBUS_REQUEST_OPTS_INIT;
	struct proto_msg reply;
	uint32_t token;
	int r, wait_ms;

	if (!b || !ret_reply)
		return -EINVAL;
	b->error[0] = '\0';
	r = OPTS_READ(b, "mqbus_request_opts", &o, opts, request_opts_ends);
	if (r < 0)
		return r;
	token = new_token(b);
	r = send_request(b, CONN_WAIT, topic, data, len, o.priority,
			 o.timeout_ms, token);
	if (r < 0)
		return r;
	wait_ms = o.timeout_ms < 0 ? b->timeout_ms : o.timeout_ms;
	r = wait_reply(b, token, wait_ms, &reply);
	if (r == -ETIMEDOUT)
		return set_error(b, r, "no reply on topic %s within %d ms",
				 topic, wait_ms);
	if (r < 0)
		return r;
	if (reply.h.type == PROTO_ERROR)
		return request_error(b, topic, reply.h.status, reply.payload,
				     reply.h.payload_len);
	if (reply.h.type != PROTO_REPLY)
		return set_error(b, -EPROTO, "unexpected answer to a request");
	*ret_reply = msg_from(b, &reply);
	if (!*ret_reply)
		return set_error(b, -ENOMEM, "out of memory");
	return 0;
}

MQBUS_EXPORT int mqbus_request(mqbus *b, const char *topic, const void *data,
			       size_t len, int timeout_ms,
			       mqbus_msg **ret_reply)
{
	return mqbus_request_prio(b, topic, data, len, MQBUS_PRIORITY_DEFAULT,
				  timeout_ms, ret_reply);
}

MQBUS_EXPORT int mqbus_request_prio(mqbus *b, const char *topic,
				    const void *data, size_t len,
				    int priority, int timeout_ms,
				    mqbus_msg **ret_reply)
{
	struct mqbus_request_opts o = MQBUS_REQUEST_OPTS_INIT;

	o.priority = priority;
	o.timeout_ms = timeout_ms;
	return mqbus_request_opts(b, topic, data, len, &o, ret_reply);
}

MQBUS_EXPORT int
mqbus_request_async_opts(mqbus *b, const char *topic, const void *data,
			 size_t len, const struct mqbus_request_opts *opts,
			 mqbus_reply_handler fn, void *userdata)
{
	struct mqbus_request_opts o = MQBUS_REQUEST_OPTS_INIT;
	struct async_req *a;
	int r;

	if (!b || !fn)
		return -EINVAL;
	b->error[0] = '\0';
	r = OPTS_READ(b, "mqbus_request_opts", &o, opts, request_opts_ends);
	if (r < 0)
		return r;
	a = calloc(1, sizeof(*a));
	if (!a)
		return set_error(b, -ENOMEM, "out of memory");
	a->topic = strdup(topic ? topic : "");
	if (!a->topic) {
		free(a);
		return set_error(b, -ENOMEM, "out of memory");
	}
	a->token = new_token(b);
	a->fn = fn;
	a->userdata = userdata;
	a->deadline = deadline_of(o.timeout_ms < 0 ? b->timeout_ms
						   : o.timeout_ms);
	/* while reconnecting it waits in tx, as a publish does */
	r = send_request(b, CONN_QUEUE, topic, data, len, o.priority,
			 o.timeout_ms, a->token);
	if (r < 0) {
		free(a->topic);
		free(a);
		return r;
	}
	a->next = b->async;
	b->async = a;
	return 0;
}

MQBUS_EXPORT int mqbus_request_async(mqbus *b, const char *topic,
				     const void *data, size_t len,
				     int timeout_ms, mqbus_reply_handler fn,
				     void *userdata)
{
	return mqbus_request_async_prio(b, topic, data, len,
					MQBUS_PRIORITY_DEFAULT, timeout_ms, fn,
					userdata);
}

MQBUS_EXPORT int mqbus_request_async_prio(mqbus *b, const char *topic,
					  const void *data, size_t len,
					  int priority, int timeout_ms,
					  mqbus_reply_handler fn,
					  void *userdata)
{
	struct mqbus_request_opts o = MQBUS_REQUEST_OPTS_INIT;

	o.priority = priority;
	o.timeout_ms = timeout_ms;
	return mqbus_request_async_opts(b, topic, data, len, &o, fn,
					userdata);
}

MQBUS_EXPORT int mqbus_get_timeout(const mqbus *b)
{
	int64_t first = -1, now;
	const struct async_req *a;

	if (!b)
		return -1;
	if (b->replies_head || b->lost_due || b->restored_due)
		return 0;
	if (b->bye && b->reconnecting)
		first = b->attempt_at;
	if (b->restoring) {
		struct replay *e;

		for (e = b->replay; e; e = e->next)
			if (e->state == REPLAY_TO_SEND)
				first = now_ms() + REPLAY_RETRY_MS;
		if (b->restore_deadline >= 0 &&
		    (first < 0 || b->restore_deadline < first))
			first = b->restore_deadline;
	}
	/* without a pidfd in the fd, liveness is looked at every second */
	if (b->connected && !b->bye && b->pidfd < 0)
		first = first < 0 || first > now_ms() + 1000 ? now_ms() + 1000
							     : first;
	for (a = b->async; a; a = a->next) {
		if (a->reset)
			return 0;
		if (a->deadline >= 0 && (first < 0 || a->deadline < first))
			first = a->deadline;
	}
	if (first < 0)
		return -1;
	now = now_ms();
	return first <= now ? 0 : (int)(first - now > INT_MAX ? INT_MAX
							      : first - now);
}

MQBUS_EXPORT int mqbus_reply(mqbus *b, const mqbus_msg *request,
			     const void *data, size_t len)
{
	struct proto_header h;
	int r;

	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	if (mqbus_msg_is_monitored(request))
		return set_error(b, -EINVAL,
				 "cannot reply to a monitor's copy: this "
				 "client watched the %s but did not receive "
				 "it, and the daemon would refuse the reply "
				 "as forged",
				 mqbus_msg_is_reply(request) ? "reply"
							     : "request");
	if (!mqbus_msg_is_request(request))
		return set_error(b, -EINVAL, "not a request");
	if (len && !data)
		return set_error(b, -EINVAL, "no data");
	r = check_connected(b, CONN_NOW);
	if (r < 0)
		return r;
	proto_header_init(&h, PROTO_REPLY);
	h.token = request->h.token;
	/* answers overtake our own queued publishes */
	return send_msg(b, &h, NULL, data, len, PROTO_PRIO_MAX);
}

/* Runs the callbacks of answered and timed-out asynchronous requests. */
static int dispatch_async(mqbus *b)
{
	struct mqbus_msg *m;
	struct async_req *a, *next;
	int handled = 0;

	while ((m = fifo_pop(&b->replies_head, &b->replies_tail))) {
		a = async_find(b, m->h.token);
		if (a) {
			mqbus_reply_handler fn = a->fn;
			void *userdata = a->userdata;
			int err = 0;

			if (m->h.type != PROTO_REPLY)
				err = request_error(b, a->topic, m->h.status,
						    m->payload,
						    m->h.payload_len);
			async_remove(b, a);
			fn(b, err, err ? NULL : m, userdata);
			handled++;
		}
		msg_put(m);
	}
	for (a = b->async; a; a = next) {
		next = a->next;
		if (a->reset) {
			mqbus_reply_handler fn = a->fn;
			void *userdata = a->userdata;

			set_error(b, -ECONNRESET,
				  "request on topic %s: %s before it answered",
				  a->topic, b->lost_why);
			async_remove(b, a);
			fn(b, -ECONNRESET, NULL, userdata);
			handled++;
			continue;
		}
		if (a->deadline >= 0 && now_ms() >= a->deadline) {
			mqbus_reply_handler fn = a->fn;
			void *userdata = a->userdata;

			request_error(b, a->topic, ETIMEDOUT, NULL, 0);
			async_remove(b, a);
			fn(b, -ETIMEDOUT, NULL, userdata);
			handled++;
		}
	}
	return handled;
}

MQBUS_EXPORT int mqbus_stats(mqbus *b, char **ret)
{
	return request_text(b, PROTO_STATS, ret);
}

/*
 * The daemon reads a client's tx queue highest priority first, FIFO
 * within a priority, and answers in order: once the answer to a request
 * sent now at priority 0 is here, every earlier message was handled, and
 * a refusal of one came before it.
 */
MQBUS_EXPORT int mqbus_sync(mqbus *b)
{
	struct proto_header h;
	struct proto_msg reply;
	int r;

	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	r = check_connected(b, CONN_WAIT);
	if (r < 0)
		return r;
	/* at the lowest priority, sent last: the daemon reads it after
	 * everything queued before it in tx */
	proto_header_init(&h, PROTO_STATS);
	r = control_at(b, &h, NULL, NULL, NULL, 0, NULL, 0, &reply);
	if (r < 0)
		return r;
	if (b->unasked_err) {
		r = b->unasked_err;
		b->unasked_err = 0;
		return set_error(b, r, "%s", b->unasked);
	}
	return 0;
}

/* -------------------------------------------------------------------- */
/* introspection                                                         */

/*
 * Asks for the first part, then again from the cursor each part gives
 * (its topic and seq) until one comes without PROTO_F_MORE.  Each part
 * waits up to the handle's timeout.  The text is gathered in a buffer
 * that doubles, bounded by MQBUS_QUERY_TEXT_MAX.
 */
MQBUS_EXPORT int mqbus_query(mqbus *b, const char *what, char **ret_text)
{
	char topic[PROTO_TOPIC_MAX + 1] = "", label[64];
	unsigned code = proto_query_of(what);
	int64_t busy_until = -1;
	size_t len = 0, cap = 0;
	uint64_t seq = 0;
	char *text = NULL;
	int r;

	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	if (!ret_text)
		return set_error(b, -EINVAL, "invalid arguments");
	if (!code)
		return set_error(b, -EINVAL,
				 "cannot query '%s': ask for clients, topics, "
				 "subscriptions, retained or timers",
				 what ? what : "(null)");
	r = check_connected(b, CONN_WAIT);
	if (r < 0)
		return r;
	snprintf(label, sizeof(label), "query %s", what);
	for (;;) {
		struct proto_header h;
		struct proto_msg part;

		proto_header_init(&h, PROTO_QUERY);
		h.status = code;
		h.seq = seq;
		r = control(b, &h, topic, NULL, NULL, 0, label, &part);
		/* over the uid's listing budget for this second: the same
		 * part again a little later, within the handle's timeout */
		if (r == -EBUSY) {
			if (busy_until < 0)
				busy_until = deadline_of(b->timeout_ms);
			if (b->timeout_ms < 0 || now_ms() < busy_until) {
				nanosleep(&(struct timespec){ 0, 200000000 },
					  NULL);
				continue;
			}
		}
		if (r < 0)
			goto fail;
		busy_until = -1;
		if (part.h.type != PROTO_QUERY || part.h.status != code) {
			r = set_error(b, -EPROTO,
				      "%s: the daemon answered a %s", label,
				      proto_type_name(part.h.type));
			goto fail;
		}
		if (len + part.h.payload_len > MQBUS_QUERY_TEXT_MAX) {
			r = set_error(b, -EMSGSIZE,
				      "%s: the answer is longer than %u bytes",
				      label, MQBUS_QUERY_TEXT_MAX);
			goto fail;
		}
		if (len + part.h.payload_len + 1 > cap) {
			size_t want = cap ? cap : 4096;
			char *t;

			while (want < len + part.h.payload_len + 1)
				want *= 2;
			t = realloc(text, want);
			if (!t) {
				r = set_error(b, -ENOMEM, "out of memory");
				goto fail;
			}
			text = t;
			cap = want;
		}
		memcpy(text + len, part.payload, part.h.payload_len);
		len += part.h.payload_len;
		text[len] = '\0';
		if (!(part.h.flags & PROTO_F_MORE))
			break;
		/* a part that says "more" but holds nothing would never end */
		if (part.h.payload_len == 0) {
			r = set_error(b, -EPROTO,
				      "%s: the daemon sent an empty part", label);
			goto fail;
		}
		seq = part.h.seq;
		memcpy(topic, part.topic, part.h.topic_len + 1);
	}
	if (!text) {
		text = strdup("");
		if (!text)
			return set_error(b, -ENOMEM, "out of memory");
	}
	*ret_text = text;
	return 0;

fail:
	free(text);
	return r;
}

/* -------------------------------------------------------------------- */
/* receive and the caller's loop                                         */

/*
 * Offers m to the handlers of mqbus_subscribe_cb() whose pattern matches
 * its topic, in the order the subscriptions were made, each once; returns
 * whether one took it.  A monitor's copy is for the program's other
 * handler.  A handler may subscribe and unsubscribe: after a call that
 * removed an entry the walk starts again from the head, skipping the
 * entries already offered this message, and an entry made during the
 * walk counts as offered (mqbus_subscribe_cb()).
 */
static bool handlers_offer(mqbus *b, const struct mqbus_msg *m)
{
	struct replay *e = b->replay;
	bool taken = false;
	unsigned seq;

	if (mqbus_msg_is_monitored(m))
		return false;
	if (++b->offer_seq == 0)
		b->offer_seq = 1;
	seq = b->offer_seq;
	while (e) {
		unsigned removed = b->replay_removed;

		if (!e->fn || e->offered == seq ||
		    !proto_topic_match(e->pattern, m->topic)) {
			e = e->next;
			continue;
		}
		e->offered = seq;
		taken = true;
		e->fn(b, m, e->fn_userdata);
		e = removed == b->replay_removed ? e->next : b->replay;
	}
	return taken;
}

/*
 * Hands the waiting messages to the program, for mqbus_process(): each to
 * the matching handlers of mqbus_subscribe_cb(), else to the handler of
 * mqbus_set_handler(), else onto the keep list, which the caller
 * puts back (queue_unkeep()) for mqbus_receive().  Returns the number
 * handled.
 */
static int hand_over(mqbus *b, struct mqbus_msg **keep_head,
		     struct mqbus_msg **keep_tail)
{
	struct mqbus_msg *m;
	int handled = 0;

	while ((m = queue_pop(b))) {
		if (!handlers_offer(b, m)) {
			if (!b->handler) {
				fifo_push(keep_head, keep_tail, m);
				continue;
			}
			b->handler(b, m, b->userdata);
		}
		msg_put(m);
		handled++;
	}
	return handled;
}

/* Puts messages hand_over() kept back at the head of the queue. */
static void queue_unkeep(mqbus *b, struct mqbus_msg *head,
			 struct mqbus_msg *tail)
{
	if (!head)
		return;
	tail->next = b->head;
	if (!b->head)
		b->tail = tail;
	b->head = head;
}

MQBUS_EXPORT int mqbus_receive(mqbus *b, mqbus_msg **ret, int timeout_ms)
{
	int64_t deadline = deadline_of(timeout_ms);

	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	if (!ret || timeout_ms < -1)
		return set_error(b, -EINVAL, "invalid arguments");
	if (!b->connected)
		return set_error(b, -ENOTCONN, "not connected");
	for (;;) {
		int r;

		conn_dispatch(b);
		if (b->head) {
			struct mqbus_msg *m = queue_pop(b);

			if (handlers_offer(b, m)) {
				msg_put(m);
				/* handlers taking a flood do not make the
				 * call outlive its timeout */
				if (!b->head && deadline >= 0 &&
				    now_ms() >= deadline)
					return set_error(b, -ETIMEDOUT,
							 "no message within "
							 "%d ms",
							 timeout_ms);
				continue;
			}
			*ret = m;
			b->serving = mqbus_msg_is_request(*ret);
			b->error[0] = '\0';
			return 0;
		}
		if (b->bye && !b->reconnecting)
			return set_error(b, -ENOTCONN, "%s", b->lost_why);
		reconnect_step(b);
		/* see the top of the file for the two ways of waiting */
		r = read_one(b, b->serving && !b->bye ? slice_until(deadline)
						      : 0,
			     0, NULL, NULL);
		if (r < 0)
			return r;
		if (r > 0)
			continue;
		if (deadline >= 0 && now_ms() >= deadline) {
			/* a pending callback first, then the news */
			conn_dispatch(b);
			if (b->head)
				continue;
			if (b->bye)
				return set_error(b, -ENOTCONN, "%s%s",
						 b->lost_why,
						 b->reconnecting
							 ? "; not reconnected "
							   "yet"
							 : "");
			return set_error(b, -ETIMEDOUT,
					 "no message within %d ms", timeout_ms);
		}
		if (!b->serving || b->bye) {
			/* the held frame goes when tx has room */
			struct pollfd p[3] = {
				{ .fd = b->rx, .events = POLLIN },
				{ .fd = b->held_n ? b->tx : -1,
				  .events = POLLOUT },
				{ .fd = b->pidfd, .events = POLLIN },
			};

			r = poll(p, b->pidfd >= 0 ? 3 : 2,
				 reconnect_slice(b, slice_until(deadline)));
			if (r < 0 && errno != EINTR)
				return set_error(b, -errno, "poll: %s",
						 strerror(errno));
			if (p[1].revents & POLLOUT)
				held_send(b, false);
			else if (r > 0 && !(p[0].revents & POLLIN))
				daemon_gone(b);
			if (r != 0)
				continue;
		}
		/* a quiet slice: is the daemon still there? */
		if (!b->bye)
			daemon_gone(b);
	}
}

MQBUS_EXPORT int mqbus_get_fd(const mqbus *b)
{
	if (!b || !b->connected)
		return -ENOTCONN;
	return b->epfd;
}

MQBUS_EXPORT void mqbus_set_handler(mqbus *b, mqbus_handler fn,
				    void *userdata)
{
	if (!b)
		return;
	b->handler = fn;
	b->userdata = userdata;
}

MQBUS_EXPORT int mqbus_process(mqbus *b)
{
	struct mqbus_msg *keep_head = NULL, *keep_tail = NULL;
	bool got = false;
	int handled = 0;

	if (!b)
		return -EINVAL;
	b->error[0] = '\0';
	if (!b->connected)
		return set_error(b, -ENOTCONN, "not connected");
	if (held_send(b, false) == 0)
		held_watch(b, false);
	conn_dispatch(b);
	for (;;) {
		int r;

		handled += hand_over(b, &keep_head, &keep_tail);
		r = read_one(b, 0, 0, NULL, NULL);
		if (r < 0) {
			queue_unkeep(b, keep_head, keep_tail);
			return r;
		}
		if (r > 0) {
			got = true;
			continue;
		}
		/* rx is empty: was it the pidfd that woke the caller? */
		if (!got && !b->bye)
			daemon_died(b);
		if (!b->bye || !b->reconnecting)
			break;
		/* one step; a WELCOME it brings is read in the next round */
		if (now_ms() < b->attempt_at)
			break;
		reconnect_step(b);
	}
	queue_unkeep(b, keep_head, keep_tail);
	reconnect_step(b);
	handled += dispatch_async(b);
	conn_dispatch(b);
	if (b->bye)
		return set_error(b, -ENOTCONN, "%s%s", b->lost_why,
				 b->reconnecting ? "; reconnecting" : "");
	b->error[0] = '\0';
	return handled;
}

/* -------------------------------------------------------------------- */
/* messages                                                              */

MQBUS_EXPORT mqbus_msg *mqbus_msg_ref(const mqbus_msg *m)
{
	/* the count is the library's: a const message may gain a holder */
	mqbus_msg *held = (mqbus_msg *)m;

	if (held)
		held->refs++;
	return held;
}

MQBUS_EXPORT mqbus_msg *mqbus_msg_free(mqbus_msg *m)
{
	msg_put(m);
	return NULL;
}

MQBUS_EXPORT const char *mqbus_msg_topic(const mqbus_msg *m)
{
	return m ? m->topic : NULL;
}

MQBUS_EXPORT const void *mqbus_msg_payload(const mqbus_msg *m,
					   size_t *ret_len)
{
	if (!m)
		return NULL;
	if (ret_len)
		*ret_len = m->h.payload_len;
	return m->payload;
}

MQBUS_EXPORT unsigned mqbus_msg_priority(const mqbus_msg *m)
{
	return m ? m->h.priority : 0;
}

MQBUS_EXPORT uid_t mqbus_msg_sender_uid(const mqbus_msg *m)
{
	return m ? (uid_t)m->h.sender_uid : (uid_t)-1;
}

MQBUS_EXPORT pid_t mqbus_msg_sender_pid(const mqbus_msg *m)
{
	return m ? (pid_t)m->h.sender_pid : 0;
}

MQBUS_EXPORT uint32_t mqbus_msg_client_id(const mqbus_msg *m)
{
	return m ? m->h.client_id : 0;
}

MQBUS_EXPORT uint64_t mqbus_msg_seq(const mqbus_msg *m)
{
	return m ? m->h.seq : 0;
}

MQBUS_EXPORT uint64_t mqbus_msg_timestamp(const mqbus_msg *m)
{
	return m ? m->h.timestamp : 0;
}

MQBUS_EXPORT uint32_t mqbus_msg_dropped(const mqbus_msg *m)
{
	return m && m->h.type == PROTO_DELIVER ? m->h.status : 0;
}

MQBUS_EXPORT const char *mqbus_msg_key(const mqbus_msg *m)
{
	return m ? m->key : NULL;
}

MQBUS_EXPORT int mqbus_msg_retained(const mqbus_msg *m)
{
	return m && m->h.type == PROTO_DELIVER &&
	       (m->h.flags & PROTO_F_RETAINED) != 0;
}

MQBUS_EXPORT const struct mqbus_origin *mqbus_msg_origin(const mqbus_msg *m)
{
	if (m && m->origin)
		return m->origin;
	errno = ENOENT;
	return NULL;
}

MQBUS_EXPORT int mqbus_msg_is_request(const mqbus_msg *m)
{
	/* a monitor's copy did not make this client a recipient: the
	 * daemon would refuse its answer as forged */
	return m && m->h.type == PROTO_DELIVER &&
	       (m->h.flags & PROTO_F_REQUEST) &&
	       !(m->h.flags & PROTO_F_MONITOR) && m->h.token != 0;
}

MQBUS_EXPORT int mqbus_msg_is_drop_notice(const mqbus_msg *m)
{
	return m && m->h.type == PROTO_DELIVER &&
	       (m->h.flags & PROTO_F_DROPS) != 0;
}

MQBUS_EXPORT int mqbus_msg_is_monitored(const mqbus_msg *m)
{
	return m && m->h.type == PROTO_DELIVER &&
	       (m->h.flags & PROTO_F_MONITOR) != 0;
}

MQBUS_EXPORT int mqbus_msg_is_reply(const mqbus_msg *m)
{
	return mqbus_msg_is_monitored(m) && (m->h.flags & PROTO_F_REPLY) != 0;
}

MQBUS_EXPORT uint32_t mqbus_msg_request_id(const mqbus_msg *m)
{
	if (!m || m->h.type != PROTO_DELIVER)
		return 0;
	if (m->h.flags & PROTO_F_REQUEST)
		return m->h.token;
	if ((m->h.flags & PROTO_F_MONITOR) && (m->h.flags & PROTO_F_REPLY))
		return m->h.token;
	return 0;
}

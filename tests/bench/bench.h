/* SPDX-License-Identifier: MIT */
/*
 * bench.h - what the parts of mqbus-bench share: the control block in
 * shared memory that the orchestrator and its forked workers meet in, the
 * job a worker is forked with, the payload every message carries, the
 * latency histogram and a few small helpers.
 *
 * The orchestrator (mqbus-bench.c) forks one worker per role of a row
 * (bench-work.c): producers, consumers, relays, echo processes, the
 * client that holds the unrelated subscriptions, and the scale rows'
 * holders of many clients and their probes.  They never talk through
 * pipes or sockets, only through the control block, so that nothing but
 * the queues under test carries traffic while a row is measured.
 */
#ifndef MQBUS_BENCH_H
#define MQBUS_BENCH_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One attribute set for every queue of every row: 4000-byte payloads
 * plus the 64-byte header and the topic fit, and it is below the usual
 * fs.mqueue.msgsize_max (8192) and msg_max (10). */
#define BENCH_MAXMSG 10
#define BENCH_MSGSIZE 4200

#define BENCH_TOPIC "bench/data"
#define BENCH_PING "bench/ping" /* the round trips' requests */

/*
 * The scale rows: every client of them has small queues (so that 2000 of
 * them fit the RLIMIT_MSGQUEUE of a few users), 5 subscriptions and one
 * retained value (bench-work.c, scale_client_setup()).
 */
#define BENCH_SCALE_MAXMSG 2
#define BENCH_SCALE_MSGSIZE 512
#define BENCH_SCALE_SUBS 5
#define BENCH_SCALE_USERS 8 /* mqbench1 .. mqbench8 */
#define BENCH_SCALE_PROBES 32 /* subscribes timed per phase of the probe */

/* Limits of one row. */
#define BENCH_MAX_STREAMS 32 /* publishers */
#define BENCH_MAX_SINKS 16   /* subscribers */
#define BENCH_MAX_RELAY 2    /* queues one relay forwards */

/*
 * Messages a publisher may have in flight towards its slowest subscriber.
 * mqbusd keeps pending_max (256) messages per subscriber whose queue is
 * full and drops the rest, while a publisher is only held back by its own
 * tx queue: without a window a fast publisher makes the daemon drop by
 * design, and the bench would measure drops, not delivery.  The window is
 * larger than the queues on the path (10 + 10), so it limits nothing as
 * long as the subscriber keeps up; and it is the same for every row.  With
 * many publishers the per-publisher window shrinks so that the total stays
 * at BENCH_WINDOW_TOTAL, below pending_max.
 */
#define BENCH_WINDOW 32
#define BENCH_WINDOW_TOTAL 256

enum bench_wake {
	BENCH_WAKE_NOTIFY,
	BENCH_WAKE_THREAD,
	BENCH_WAKE_POLL,
	BENCH_WAKE_COUNT,
};

/* ---------------------------------------------------------------- latency */

/*
 * A log-linear histogram of nanoseconds: exact below 64, then 64 buckets
 * per power of two (about 1.5 % wide), up to 2^42 ns.  Fixed size, so it
 * lives in shared memory and merging is adding.
 */
#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (HIST_SUB + (42 - HIST_SUB_BITS) * HIST_SUB)

struct hist {
	uint64_t n;
	uint64_t b[HIST_BUCKETS];
};

void hist_add(struct hist *h, uint64_t ns);
void hist_merge(struct hist *into, const struct hist *from);
/* The value (ns) below which a fraction q of the samples lie; -1 if
 * empty. */
double hist_quantile(const struct hist *h, double q);

/* ---------------------------------------------------------------- control */

/*
 * One per publisher.  sent is written by the publisher only; waiting and
 * wake are its futex hand-shake with the subscribers (see
 * bench_window_wait()).  Each stream has its own cache lines.
 */
struct bench_stream {
	_Alignas(64) _Atomic uint64_t sent;
	_Atomic uint32_t waiting;
	_Atomic uint32_t wake;
	uint64_t t_first; /* ns, before the first send */
	uint64_t count;	  /* messages sent, once done */
};

/* One per subscriber (or round-trip client). */
struct bench_sink {
	_Alignas(64) _Atomic uint64_t acked[BENCH_MAX_STREAMS];
	uint64_t t_last;   /* ns, when the last message arrived */
	uint64_t received; /* messages, once done */
};

struct bench_ctl {
	_Atomic uint32_t ready; /* workers set up and waiting for go */
	_Atomic uint32_t go;	/* 1: start */
	_Atomic uint32_t done;	/* workers that finished their part */
	_Atomic uint32_t quit;	/* 1: tear down and exit */
	_Atomic uint32_t failed;
	char error[768];
	uint64_t setup_ns; /* the holder: time to subscribe */
	/* the scale rows (see bench_work()'s JOB_SCALE_* jobs) */
	_Atomic uint32_t step;	  /* the phase workers may start */
	_Atomic uint32_t stepped; /* phases finished, summed over workers */
	uint64_t t_step[BENCH_MAX_STREAMS]; /* when worker i finished one */
	uint64_t probe_ns[2][BENCH_SCALE_PROBES]; /* SUBSCRIBE to ACK */
	/* SUBSCRIBE to the ACK of the UNSUBSCRIBE after it: all the work */
	uint64_t probe_done_ns[2][BENCH_SCALE_PROBES];
	uint64_t ack_ns;	 /* the late subscriber: SUBSCRIBE to ACK */
	uint64_t retained_held; /* as mqbusd's stats count them */
	struct bench_stream stream[BENCH_MAX_STREAMS];
	struct bench_sink sink[BENCH_MAX_SINKS];
	struct hist hist[BENCH_MAX_SINKS];
};

/* ---------------------------------------------------------------- jobs */

enum job_kind {
	JOB_RAW_SOURCE, /* sends on q[0] */
	JOB_RAW_SINK,	/* receives from q[0] */
	JOB_RAW_ECHO,	/* q[0] -> q[1], checking the sequence */
	JOB_RAW_PINGER, /* sends on q[0], waits for the echo on q[1] */
	JOB_RELAY,	/* q[2i] -> q[2i+1] for i < n_relay */
	JOB_BUS_SOURCE, /* publishes on BENCH_TOPIC */
	JOB_BUS_SINK,	/* subscribes to BENCH_TOPIC */
	JOB_BUS_ECHO,	/* answers requests on BENCH_PING (mqbus_reply) */
	JOB_BUS_PINGER, /* mqbus_request on BENCH_PING, one at a time */
	JOB_BUS_HOLDER, /* holds n_patterns unrelated subscriptions */
	JOB_SCALE_HOLDER, /* holds n_clients scale clients from first */
	JOB_SCALE_PING,	  /* scale client first, pings client peer */
	JOB_SCALE_PONG,	  /* scale client first, answers client peer */
	JOB_SCALE_LATE,	  /* subscribes to '#', expects n_clients values */
	JOB_SCALE_PROBE,  /* times SUBSCRIBE beside n_retained values */
	JOB_PEER_SOURCE,  /* a peer's client (job->peer): publishes */
	JOB_PEER_SINK,	  /* a peer's client: subscribes */
	JOB_PEER_ECHO,	  /* a peer's client: answers requests */
	JOB_PEER_PINGER,  /* a peer's client: requests, one at a time */
};

/* The other brokers mqbus-bench --peers measures (peer.h). */
enum bench_peer {
	BENCH_PEER_DBUS, /* dbus-broker, sd-bus clients */
	BENCH_PEER_MQTT, /* mosquitto, libmosquitto clients */
	BENCH_PEER_COUNT,
};

struct bench_job {
	enum job_kind kind;
	struct bench_ctl *ctl;
	unsigned index;     /* stream (sources) or sink (sinks) number */
	unsigned n_streams; /* sinks: streams to expect */
	unsigned n_sinks;   /* sources: sinks whose acks open the window */
	unsigned window;
	size_t size;	/* payload bytes */
	uint64_t count; /* messages or round trips; 0: use duration */
	uint64_t duration_ns;
	bool raw_poll; /* raw sink, pinger, echo: wait as libmqbus does */
	enum bench_wake wake; /* relay */
	unsigned n_relay;
	char q[2 * BENCH_MAX_RELAY][64]; /* raw queue names */
	char bus[64];
	unsigned n_patterns; /* holder */
	long maxmsg, msgsize; /* of the mqbus clients' queues; 0: BENCH_ */
	unsigned first;	      /* scale: the first client's number */
	unsigned n_clients;   /* scale: clients held, or values expected */
	unsigned peer;	      /* scale: the other client of the round trip */
	unsigned n_retained;  /* scale probe: values to load */
	enum bench_peer which_peer; /* JOB_PEER_*: whose client */
	char peer_addr[160];  /* dbus: the bus address; mqtt: the host */
	unsigned peer_port;   /* mqtt: the broker's port */
};

/* Runs job in this (forked) process and never returns. */
void bench_work(const struct bench_job *job) __attribute__((noreturn));

/* ---------------------------------------------------------------- payload */

/*
 * Every payload starts with this header; the rest is filler taken from a
 * fixed pattern at an offset that depends on seq, so that a payload from
 * another message, a shifted or a damaged one is noticed.  A raw message
 * (direct, relay) is the payload behind BENCH_RAW_PAD bytes, so that the
 * kernel copies as many bytes as for an mqbus message of the same payload
 * (header and topic).
 */
struct bench_payload {
	uint32_t magic;
	uint16_t stream;
	uint16_t flags;
	uint64_t seq;
	uint64_t sent_ns;
	uint32_t size;
	uint32_t check;
};

#define BENCH_MAGIC 0x4843424du /* "MBCH" */
#define BENCH_F_LAST 0x0001u
#define BENCH_MIN_SIZE ((size_t)sizeof(struct bench_payload))

/* Bytes in front of a raw payload: the mqbus header, the topic and its
 * NUL. */
size_t bench_raw_pad(void);

void payload_init_pattern(void);
/* Writes the payload of (stream, seq) into buf (size bytes). */
void payload_fill(void *buf, size_t size, unsigned stream, uint64_t seq,
		  uint64_t sent_ns, bool last);
/*
 * Checks a received payload against the size expected.  Returns 0 and the
 * header in *ret, or -1 with a sentence in err.
 */
int payload_check(const void *buf, size_t len, size_t size,
		  struct bench_payload *ret, char *err, size_t errlen);

/* ---------------------------------------------------------------- helpers */

uint64_t now_ns(void);
int futex_wait(_Atomic uint32_t *addr, uint32_t val, int timeout_ms);
void futex_wake(_Atomic uint32_t *addr);

/*
 * Records the first failure of the row in ctl (later ones are dropped) and
 * returns; the caller exits.
 */
void bench_fail(struct bench_ctl *ctl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void bench_vfail(struct bench_ctl *ctl, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/*
 * What the workers of bench-work.c do for every row, for the peers'
 * clients (peer-dbus.c, peer-mqtt.c), which run in the same processes
 * and the same phases.  They act on the job bench_work() was given.
 */
typedef void (*work_send_fn)(void *ctx, const void *buf, size_t len);
typedef const void *(*work_exchange_fn)(void *ctx, const void *buf,
					 size_t len, size_t *ret_len);

const struct bench_job *work_job(void);
/* Fails the row with a sentence and exits. */
void work_fail(const char *fmt, ...) __attribute__((noreturn))
__attribute__((format(printf, 1, 2)));
/* Set up: says so and waits for the go. */
void work_ready(void);
/* Finished: says so and waits for the quit. */
void work_end(void);
/* Publishes the job's messages through send, within the window. */
void work_source(work_send_fn send, void *ctx);
/* Checks one received payload (sequence, size, every byte) and
 * acknowledges it; true when the last of every stream has come. */
bool work_sink_take(const void *buf, size_t len);
/* Checks a request's header and sequence; true for the last one. */
bool work_echo_take(const void *buf, size_t len);
/* The round trips: exchange sends a payload and returns the answer. */
void work_pinger(work_exchange_fn exchange, void *ctx);

/* The wake method's name, as mqbusd --wake spells it. */
const char *bench_wake_name(enum bench_wake w);

#endif

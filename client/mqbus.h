/* SPDX-License-Identifier: MIT */
/*
 * mqbus.h - the mqbus client library.
 *
 * A client owns two POSIX message queues: tx, which it writes and the
 * daemon reads, and rx, which the daemon writes and it reads.  Calls are
 * either blocking with a timeout, or non-blocking for use in the caller's
 * own event loop: poll mqbus_get_fd() for readability, then call
 * mqbus_process(), which runs the message handler for each message.
 *
 * Errors are negative errno values.  After a failed call,
 * mqbus_last_error() gives a sentence saying what went wrong, naming the
 * kernel limit and how to raise it where one was hit.  The library installs
 * no signal handlers, starts no threads and does not log.  A handle is not
 * thread-safe: use one per thread.
 */
#ifndef MQBUS_H
#define MQBUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mqbus mqbus;
typedef struct mqbus_msg mqbus_msg;

/* No priority asked for: the topic's configured default applies. */
#define MQBUS_PRIORITY_DEFAULT (-1)

/*
 * A new, unconnected handle with the defaults: bus from $MQBUS_BUS or
 * "mqbus", queue sizes from $MQBUS_QUEUE_MAXMSG / $MQBUS_QUEUE_MSGSIZE or
 * 10 x 2048 bytes, timeout 5000 ms.  Returns 0 or -ENOMEM.
 */
int mqbus_new(mqbus **ret);

/* Settings, before mqbus_connect() only (-EISCONN after). */
int mqbus_set_bus(mqbus *b, const char *bus);
int mqbus_set_queue_size(mqbus *b, long maxmsg, long msgsize);
/* The queue size this handle uses (or will use, before connect). */
int mqbus_get_queue_size(const mqbus *b, long *ret_maxmsg, long *ret_msgsize);
/*
 * Bytes of RLIMIT_MSGQUEUE one queue of these attributes is charged (the
 * kernel's own formula: messages, their headers and the priority tree).
 */
size_t mqbus_queue_bytes(long maxmsg, long msgsize);
/* Timeout of blocking calls (connect, subscribe, publish into a full tx
 * queue) in milliseconds; -1 waits forever. */
int mqbus_set_timeout(mqbus *b, int timeout_ms);

/*
 * Creates this client's queues, performs the handshake and waits for the
 * daemon's welcome.  -ENOENT: no daemon serves the bus; -ETIMEDOUT: the
 * daemon did not answer; -EMFILE / -ENOSPC / -EINVAL: a queue limit (see
 * mqbus_last_error()).
 */
int mqbus_connect(mqbus *b);

/* mqbus_new() + mqbus_set_bus() (if bus != NULL) + mqbus_connect(). */
int mqbus_open(mqbus **ret, const char *bus);

/* Says goodbye, unlinks the queues and frees.  Accepts NULL; returns
 * NULL. */
mqbus *mqbus_free(mqbus *b);

/* The last error's sentence ("" if none).  Valid until the next call. */
const char *mqbus_last_error(const mqbus *b);

/* This client's id on the bus (0 before connect). */
uint32_t mqbus_client_id(const mqbus *b);

/* The largest payload that fits this client's queues with this topic. */
size_t mqbus_max_payload(const mqbus *b, const char *topic);

/*
 * Publishes len bytes of data on topic.  priority is 0..32767 or
 * MQBUS_PRIORITY_DEFAULT; the daemon clamps it to the topic's ceiling.
 * -EINVAL: bad topic or priority; -EMSGSIZE: too big for the queues;
 * -ETIMEDOUT: the tx queue stayed full; -ENOTCONN: not connected or the
 * daemon said goodbye.
 */
int mqbus_publish(mqbus *b, const char *topic, const void *data, size_t len,
		  int priority);

/*
 * mqbus_publish with flags: MQBUS_PUBLISH_RETAIN keeps the message as the
 * topic's value, delivered at once to every later subscriber of a
 * matching pattern (mqbus_msg_retained() is 1 there); an empty retained
 * message clears the value.
 */
#define MQBUS_PUBLISH_RETAIN 0x1u
int mqbus_publish_flags(mqbus *b, const char *topic, const void *data,
			size_t len, int priority, unsigned flags);

/*
 * mqbus_publish_flags with a key (NULL: none): 1 to 255 bytes of
 * printable ASCII without spaces, naming the object the message is about.
 * On a topic whose overflow policy is coalesce, a newer message of the
 * same topic and key replaces one still waiting for a slow subscriber, so
 * it gets the latest state of each object rather than a backlog of stale
 * ones.  Subscribers see the key with mqbus_msg_key().
 */
#define MQBUS_KEY_MAX 255
int mqbus_publish_key(mqbus *b, const char *topic, const char *key,
		      const void *data, size_t len, int priority,
		      unsigned flags);

/*
 * Subscribes to pattern ('+' one level, '#' the rest, as in MQTT) and waits
 * for the daemon to confirm.  -EINVAL: bad pattern; -EEXIST: already;
 * -EDQUOT: too many subscriptions.  Messages that arrive meanwhile are kept
 * for mqbus_receive()/mqbus_process().
 */
int mqbus_subscribe(mqbus *b, const char *pattern);
int mqbus_unsubscribe(mqbus *b, const char *pattern);

/*
 * Queue groups: the subscribers of pattern under one group name share its
 * messages, each message going to one member, spread evenly.
 */
int mqbus_subscribe_group(mqbus *b, const char *pattern, const char *group);
int mqbus_unsubscribe_group(mqbus *b, const char *pattern,
			    const char *group);

/*
 * Request/reply.  mqbus_request() sends data on topic as a request and
 * waits up to timeout_ms (-1: the handle's timeout) for the first reply,
 * returned in *ret_reply (free it with mqbus_msg_free()).
 * -EHOSTUNREACH: no subscriber takes requests on that topic ("no
 * responders", known at once); -ETIMEDOUT: no reply in time.  Messages
 * that arrive meanwhile are kept for mqbus_receive()/mqbus_process().
 */
int mqbus_request(mqbus *b, const char *topic, const void *data, size_t len,
		  int timeout_ms, mqbus_msg **ret_reply);
/* mqbus_request at a priority (0..32767 or MQBUS_PRIORITY_DEFAULT), which
 * orders the request among the messages waiting for its responders, as
 * for mqbus_publish(). */
int mqbus_request_prio(mqbus *b, const char *topic, const void *data,
		       size_t len, int priority, int timeout_ms,
		       mqbus_msg **ret_reply);

/*
 * The asynchronous form: returns at once (0, or -errno if it could not be
 * sent); fn is called later from inside mqbus_process() with error 0 and
 * the reply (valid during the call only), or with -EHOSTUNREACH or
 * -ETIMEDOUT and NULL.  Any number may be in flight; call mqbus_process()
 * when the fd is readable or mqbus_get_timeout() has passed.
 */
typedef void (*mqbus_reply_handler)(mqbus *b, int error,
				    const mqbus_msg *reply, void *userdata);
int mqbus_request_async(mqbus *b, const char *topic, const void *data,
			size_t len, int timeout_ms, mqbus_reply_handler fn,
			void *userdata);
int mqbus_request_async_prio(mqbus *b, const char *topic, const void *data,
			     size_t len, int priority, int timeout_ms,
			     mqbus_reply_handler fn, void *userdata);

/* Milliseconds until mqbus_process() must run to time out an
 * asynchronous request, or -1 if none is in flight. */
int mqbus_get_timeout(const mqbus *b);

/* Answers a received request (mqbus_msg_is_request()).  The daemon
 * refuses replies to requests this client did not receive, and all but
 * the first reply to one request. */
int mqbus_reply(mqbus *b, const mqbus_msg *request, const void *data,
		size_t len);

/*
 * Timers: the daemon publishes data on topic after a delay, or at a time,
 * once or every period_ms, as if this client had published it.  when is a
 * delay in ms, or with MQBUS_TIMER_ABSOLUTE a CLOCK_REALTIME time in ms
 * since the epoch.  A timer ends with its client unless
 * MQBUS_TIMER_DETACHED: then it lives until a client of the same uid
 * cancels it.  The timer's id is returned in *ret_id.
 */
#define MQBUS_TIMER_DETACHED 0x1u
#define MQBUS_TIMER_ABSOLUTE 0x2u
int mqbus_timer_add(mqbus *b, const char *topic, const void *data,
		    size_t len, int priority, uint64_t when,
		    uint64_t period_ms, unsigned flags, uint64_t *ret_id);
/* mqbus_timer_add whose message carries key (see mqbus_publish_key). */
int mqbus_timer_add_key(mqbus *b, const char *topic, const char *key,
			const void *data, size_t len, int priority,
			uint64_t when, uint64_t period_ms, unsigned flags,
			uint64_t *ret_id);
/* -ENOENT: no such timer; -EPERM: not this client's (or uid's). */
int mqbus_timer_cancel(mqbus *b, uint64_t id);
/* The timers this client may see, one "key=value ..." line each, in a
 * malloc'ed text freed by the caller. */
int mqbus_timer_list(mqbus *b, char **ret);

/*
 * Waits up to timeout_ms (-1: forever, 0: don't wait) for the next message
 * and returns it in *ret, which the caller frees with mqbus_msg_free().
 * -ETIMEDOUT when none came; -ENOTCONN when the daemon said goodbye.
 */
int mqbus_receive(mqbus *b, mqbus_msg **ret, int timeout_ms);

/*
 * Asks the daemon for its counters.  On success *ret is a malloc'ed text
 * of "key=value" lines, freed by the caller.
 */
int mqbus_stats(mqbus *b, char **ret);

/* Event-loop use. */
typedef void (*mqbus_handler)(mqbus *b, const mqbus_msg *msg,
			      void *userdata);
/* The fd to poll for readability (the rx queue), or -ENOTCONN. */
int mqbus_get_fd(const mqbus *b);
/* The handler mqbus_process() calls for each message. */
void mqbus_set_handler(mqbus *b, mqbus_handler fn, void *userdata);
/*
 * Reads every message waiting, without blocking, and passes each to the
 * handler (messages are freed after it returns).  Returns the number
 * handled, -ENOTCONN after the daemon said goodbye.
 */
int mqbus_process(mqbus *b);

/* A received message. */
mqbus_msg *mqbus_msg_free(mqbus_msg *m);
const char *mqbus_msg_topic(const mqbus_msg *m);
const void *mqbus_msg_payload(const mqbus_msg *m, size_t *ret_len);
unsigned mqbus_msg_priority(const mqbus_msg *m);
uid_t mqbus_msg_sender_uid(const mqbus_msg *m);
pid_t mqbus_msg_sender_pid(const mqbus_msg *m);
uint32_t mqbus_msg_client_id(const mqbus_msg *m);
uint64_t mqbus_msg_seq(const mqbus_msg *m);
/* CLOCK_REALTIME nanoseconds at which the daemon received it. */
uint64_t mqbus_msg_timestamp(const mqbus_msg *m);
/* Messages dropped for this subscriber just before this one. */
uint32_t mqbus_msg_dropped(const mqbus_msg *m);
/* The message's key, or NULL if it was published without one. */
const char *mqbus_msg_key(const mqbus_msg *m);
/* 1 if the message is a retained value sent because of a subscription. */
int mqbus_msg_retained(const mqbus_msg *m);
/* 1 if the message is a request to answer with mqbus_reply(), else 0. */
int mqbus_msg_is_request(const mqbus_msg *m);

#ifdef __cplusplus
}
#endif

#endif

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
 * Errors are negative errno values.  Every call that takes a (non-const)
 * handle and returns an error code sets mqbus_last_error(): to a sentence
 * saying what went wrong when it fails (naming the kernel limit and how
 * to raise it where one was hit), to "" when it succeeds.  The library installs
 * no signal handlers, starts no threads and does not log.  A handle is not
 * thread-safe: use one per thread.
 */
#ifndef MQBUS_H
#define MQBUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* MQBUS_VERSION_MAJOR, _MINOR, _MICRO, _STRING and
 * MQBUS_VERSION_AT_LEAST(major, minor, micro): the version of this
 * header (libmqbus(3), VERSIONS) */
#include "mqbus-version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mqbus mqbus;
typedef struct mqbus_msg mqbus_msg;

/* No priority asked for: the topic's configured default applies. */
#define MQBUS_PRIORITY_DEFAULT (-1)

/*
 * The longest topic or pattern, in bytes (without the NUL).  A topic is
 * 1 to MQBUS_TOPIC_MAX bytes of printable ASCII (no space), levels
 * separated by '/', none of them empty; a longer one is -EINVAL wherever
 * a topic or pattern is taken.
 */
#define MQBUS_TOPIC_MAX 255

/*
 * A new, unconnected handle with the defaults: bus from $MQBUS_BUS or
 * "mqbus", queue sizes from $MQBUS_QUEUE_MAXMSG / $MQBUS_QUEUE_MSGSIZE or
 * 10 x 2048 bytes, timeout 5000 ms.  Returns 0 or -ENOMEM.  A variable
 * that is set but not valid is refused, not ignored: mqbus_last_error()
 * names it at once and mqbus_connect() fails with -EINVAL, unless a
 * setter replaced the value first.
 */
int mqbus_new(mqbus **ret);

/* What the connection is made of: before mqbus_connect() only (-EISCONN
 * after, changing nothing). */
int mqbus_set_bus(mqbus *b, const char *bus);
int mqbus_set_queue_size(mqbus *b, long maxmsg, long msgsize);
/* The queue size this handle uses (or will use, before connect); -EINVAL
 * while it would come from an invalid $MQBUS_QUEUE_* value. */
int mqbus_get_queue_size(const mqbus *b, long *ret_maxmsg, long *ret_msgsize);
/*
 * Bytes of RLIMIT_MSGQUEUE one queue of these attributes is charged (the
 * kernel's own formula: messages, their headers and the priority tree).
 */
size_t mqbus_queue_bytes(long maxmsg, long msgsize);
/* Timeout of blocking calls (connect, subscribe, publish into a full tx
 * queue) in milliseconds; -1 waits forever.  At any time, also while
 * connected: it applies to the blocking calls made after it. */
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

/* The sentence of the last call's failure, "" after a success (see the
 * top of this file).  Valid until the next call. */
const char *mqbus_last_error(const mqbus *b);

/* This client's id on the bus (0 before connect). */
uint32_t mqbus_client_id(const mqbus *b);

/* The largest payload that fits this client's queues with this topic
 * (in one queue message). */
size_t mqbus_max_payload(const mqbus *b, const char *topic);

/*
 * The largest payload this client can send: connected to a daemon that
 * carries large messages, the bus's max_message (what does not fit a
 * queue message goes in pieces); otherwise mqbus_max_payload(b, "").
 */
size_t mqbus_max_message(const mqbus *b);

/*
 * The largest payload this client takes (0, the default: the bus's
 * max_message; also MQBUS_MAX_MESSAGE).  A larger message is refused to
 * it: counted as dropped (mqbus_msg_dropped() of the next message), and
 * the daemon answers its publisher EMSGSIZE when nobody could take it.
 * Set before mqbus_connect(); -EINVAL above 256 MiB.
 */
int mqbus_set_max_message(mqbus *b, size_t max);

/*
 * Options structs.  Calls that take more than their essential arguments
 * take them in one struct, so that later versions can add options
 * without adding calls: mqbus_X_opts() takes a const struct
 * mqbus_X_opts * (the asynchronous request shares struct
 * mqbus_request_opts), and these rules hold for all of them:
 *
 *  - The first field, size, is the size of the struct the caller was
 *    built with: start from the struct's _INIT macro, which sets it to
 *    sizeof and every other field to its default, then set what you need
 *    (a zeroed struct is not the defaults: priority 0 is a priority).
 *  - NULL instead of a struct means every default.
 *  - A size smaller than this header's struct (a program built against
 *    an older header) is accepted when it ends at the end of a field: the
 *    library reads only the fields it covers, the others keep their
 *    defaults.
 *  - A size larger than this library's struct (a program built against a
 *    newer header) is accepted as long as every byte beyond the struct
 *    this library knows is 0; otherwise the call fails with -EINVAL
 *    before anything is sent, since an option it cannot honour would be
 *    silently ignored.  Fields added later therefore default to 0.
 *  - A size below sizeof(size_t), above MQBUS_OPTS_SIZE_MAX or ending
 *    inside a field is -EINVAL, with a sentence in mqbus_last_error().
 *
 * The older calls with suffixes (mqbus_publish_flags, mqbus_request_prio,
 * mqbus_timer_add_key, ...) remain, as wrappers of the _opts calls that
 * behave as they always did.
 */
#define MQBUS_OPTS_SIZE_MAX 4096

/*
 * The options of mqbus_publish_opts():
 * priority  0..32767 or MQBUS_PRIORITY_DEFAULT (the default): the topic's
 *           configured default applies; the daemon clamps it to the
 *           topic's ceiling.
 * flags     MQBUS_PUBLISH_RETAIN keeps the message as the topic's value,
 *           delivered at once to every later subscriber of a matching
 *           pattern (mqbus_msg_retained() is 1 there); an empty retained
 *           message clears the value.  Default 0.
 * key       NULL (the default): none; else 1 to MQBUS_KEY_MAX bytes of
 *           printable ASCII without spaces, naming the object the message
 *           is about.  On a topic whose overflow policy is coalesce, a
 *           newer message of the same topic and key replaces one still
 *           waiting for a slow subscriber, so it gets the latest state of
 *           each object rather than a backlog of stale ones.  Subscribers
 *           see the key with mqbus_msg_key().
 */
#define MQBUS_PUBLISH_RETAIN 0x1u
#define MQBUS_KEY_MAX 255
struct mqbus_publish_opts {
	size_t size;
	int priority;
	unsigned flags;
	const char *key;
};
#define MQBUS_PUBLISH_OPTS_INIT                                              \
	{ sizeof(struct mqbus_publish_opts), MQBUS_PRIORITY_DEFAULT, 0, NULL }

/*
 * Publishes len bytes of data on topic with opts (NULL: the defaults).
 * Returns once the message is in the tx queue.  -EINVAL: bad topic, key,
 * priority, flags or options struct; -EMSGSIZE: too big for the queues;
 * -ETIMEDOUT: the tx queue stayed full; -ENOTCONN: not connected, or the
 * connection is lost and not being made again.  While reconnecting the
 * message waits in tx for the next daemon and 0 is returned.
 */
int mqbus_publish_opts(mqbus *b, const char *topic, const void *data,
		       size_t len, const struct mqbus_publish_opts *opts);

/* Wrappers of mqbus_publish_opts() with those options as arguments. */
int mqbus_publish(mqbus *b, const char *topic, const void *data, size_t len,
		  int priority);
int mqbus_publish_flags(mqbus *b, const char *topic, const void *data,
			size_t len, int priority, unsigned flags);
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
 * The options of requests, mqbus_request_opts() and
 * mqbus_request_async_opts():
 * priority    0..32767 or MQBUS_PRIORITY_DEFAULT (the default), as for
 *             a publish: it orders the request among the messages waiting
 *             for its responders.
 * timeout_ms  how long to wait for the reply; -1 (the default): the
 *             handle's timeout (mqbus_set_timeout()).
 */
struct mqbus_request_opts {
	size_t size;
	int priority;
	int timeout_ms;
};
#define MQBUS_REQUEST_OPTS_INIT                                              \
	{ sizeof(struct mqbus_request_opts), MQBUS_PRIORITY_DEFAULT, -1 }

/*
 * Request/reply.  mqbus_request_opts() sends data on topic as a request
 * and waits up to the timeout for the first reply, returned in *ret_reply
 * (free it with mqbus_msg_free()).  -EHOSTUNREACH: no subscriber takes
 * requests on that topic ("no responders", known at once); -ETIMEDOUT: no
 * reply in time.  Messages that arrive meanwhile are kept for
 * mqbus_receive()/mqbus_process().
 */
int mqbus_request_opts(mqbus *b, const char *topic, const void *data,
		       size_t len, const struct mqbus_request_opts *opts,
		       mqbus_msg **ret_reply);

/*
 * The asynchronous form: returns at once (0, or -errno if it could not be
 * sent); fn is called later from inside mqbus_process() with error 0 and
 * the reply (valid during the call only), or with -EHOSTUNREACH,
 * -ETIMEDOUT or -ECONNRESET (the daemon went away first) and NULL.  Any number may be in flight; call mqbus_process()
 * when the fd is readable or mqbus_get_timeout() has passed.
 */
typedef void (*mqbus_reply_handler)(mqbus *b, int error,
				    const mqbus_msg *reply, void *userdata);
int mqbus_request_async_opts(mqbus *b, const char *topic, const void *data,
			     size_t len,
			     const struct mqbus_request_opts *opts,
			     mqbus_reply_handler fn, void *userdata);

/* Wrappers of the two with those options as arguments. */
int mqbus_request(mqbus *b, const char *topic, const void *data, size_t len,
		  int timeout_ms, mqbus_msg **ret_reply);
int mqbus_request_prio(mqbus *b, const char *topic, const void *data,
		       size_t len, int priority, int timeout_ms,
		       mqbus_msg **ret_reply);
int mqbus_request_async(mqbus *b, const char *topic, const void *data,
			size_t len, int timeout_ms, mqbus_reply_handler fn,
			void *userdata);
int mqbus_request_async_prio(mqbus *b, const char *topic, const void *data,
			     size_t len, int priority, int timeout_ms,
			     mqbus_reply_handler fn, void *userdata);

/* Milliseconds until mqbus_process() must run: to time out an
 * asynchronous request, or while disconnected for the next step of a
 * reconnection; -1 if nothing is due. */
int mqbus_get_timeout(const mqbus *b);

/* Answers a received request (mqbus_msg_is_request()).  The daemon
 * refuses replies to requests this client did not receive, and all but
 * the first reply to one request. */
int mqbus_reply(mqbus *b, const mqbus_msg *request, const void *data,
		size_t len);

/*
 * The options of mqbus_timer_add_opts():
 * priority   0..32767 or MQBUS_PRIORITY_DEFAULT (the default), as for a
 *            publish, clamped to the topic's ceiling when it fires.
 * flags      MQBUS_TIMER_DETACHED: the timer does not end with its client
 *            but lives until a client of the same uid cancels it;
 *            MQBUS_TIMER_ABSOLUTE: when is a time, not a delay.  Default 0.
 * key        the key the message carries (see struct mqbus_publish_opts);
 *            NULL (the default): none.
 * when       a delay in ms (default 0: at once), or with
 *            MQBUS_TIMER_ABSOLUTE a CLOCK_REALTIME time in ms since the
 *            epoch.
 * period_ms  fire again every period_ms; 0 (the default): once.
 */
#define MQBUS_TIMER_DETACHED 0x1u
#define MQBUS_TIMER_ABSOLUTE 0x2u
struct mqbus_timer_add_opts {
	size_t size;
	int priority;
	unsigned flags;
	const char *key;
	uint64_t when;
	uint64_t period_ms;
};
#define MQBUS_TIMER_ADD_OPTS_INIT                                            \
	{ sizeof(struct mqbus_timer_add_opts), MQBUS_PRIORITY_DEFAULT, 0, NULL, \
	  0, 0 }

/*
 * Timers: the daemon publishes data on topic as opts say (NULL: at once,
 * one time), as if this client had published it, and waits for the
 * daemon's answer.  The timer's id is returned in *ret_id (may be NULL).
 */
int mqbus_timer_add_opts(mqbus *b, const char *topic, const void *data,
			 size_t len, const struct mqbus_timer_add_opts *opts,
			 uint64_t *ret_id);
/* Wrappers of mqbus_timer_add_opts() with those options as arguments. */
int mqbus_timer_add(mqbus *b, const char *topic, const void *data,
		    size_t len, int priority, uint64_t when,
		    uint64_t period_ms, unsigned flags, uint64_t *ret_id);
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
 * -ETIMEDOUT when none came; -ENOTCONN when the connection is lost (while
 * reconnecting: it waits, and returns -ENOTCONN if not back in time).
 */
int mqbus_receive(mqbus *b, mqbus_msg **ret, int timeout_ms);

/*
 * Asks the daemon for its counters.  On success *ret is a malloc'ed text
 * of "key=value" lines, freed by the caller.
 */
int mqbus_stats(mqbus *b, char **ret);

/*
 * Introspection (LIBMQBUS_1.3): asks the daemon for a list, what =
 * "clients", "topics" (this stats interval's counters per topic),
 * "subscriptions", "retained" or "timers", and returns it in *ret_text,
 * a malloc'ed text of one line per item, "name=value" fields separated by
 * single spaces (mqbusd(8), INTROSPECTION), freed by the caller.  The
 * daemon answers in parts, each within the handle's timeout; the text is
 * whole or the call fails.  -EINVAL: unknown what; -EMSGSIZE: longer
 * than MQBUS_QUERY_TEXT_MAX, or rx messages too small for one line;
 * -EBUSY: the daemon kept refusing a part for the handle's timeout (the
 * uid's query_budget_per_uid; refused parts are asked again every
 * 200 ms); -ETIMEDOUT, -ENOTCONN as for other requests.  Messages that arrive
 * meanwhile are kept for mqbus_receive()/mqbus_process().
 */
#define MQBUS_QUERY_TEXT_MAX (64u << 20)
int mqbus_query(mqbus *b, const char *what, char **ret_text);

/*
 * Waits (up to the handle's timeout) until the daemon has handled every
 * message this client sent before, and says whether it refused one that
 * waits for no answer: a publish that the access policy denied, or whose
 * retained value was not kept.  Returns 0, or the first such refusal
 * since the last mqbus_sync() as -errno (-EACCES, -EDQUOT, -ENOSPC ...)
 * with the daemon's sentence in mqbus_last_error().
 */
int mqbus_sync(mqbus *b);

/*
 * Batch frames (LIBMQBUS_1.5).  The daemon packs several messages for
 * this client into one queue message when it has more than one for it
 * in a turn of its loop; the library hands them out one by one,
 * unchanged, and it is nothing the program sees.
 *
 * The publishing side is asked for: with mqbus_set_publish_batch(b, 1)
 * (or MQBUS_PUBLISH_BATCH=1 in the environment), a publish that finds tx
 * full does not wait: the message is held with the ones after it in one
 * frame of up to the queue's message size and one priority, and the
 * publish returns 0.  The frame goes into tx as soon as the library is
 * called and tx has room: the next publish, any other message sent,
 * mqbus_process() and mqbus_receive() (the fd of mqbus_get_fd() is
 * readable while a frame waits), mqbus_free(), or mqbus_flush().  A
 * publish waits as before when the frame is full or of another priority.
 * A program that publishes in bursts and then does not call the library
 * for a while calls mqbus_flush() after the burst: a held frame waits
 * for the library, not for a timer.
 *
 * MQBUS_PUBLISH_BATCH_FILL (2, or MQBUS_PUBLISH_BATCH=2) holds every
 * publish, also while tx has room: the frame goes when it is full, when
 * the priority changes or anything else is sent, and in mqbus_process(),
 * mqbus_receive(), mqbus_free() and mqbus_flush().  A library older than
 * these three names takes 2 as MQBUS_PUBLISH_BATCH_FULL.
 *
 * mqbus_flush() writes the held frame, waiting up to the handle's
 * timeout for room.  Returns 0 (also when nothing was held) or -errno as
 * a publish does.  MQBUS_BATCH=0 in the environment turns frames off
 * both ways.
 */
#define MQBUS_PUBLISH_BATCH_OFF 0
#define MQBUS_PUBLISH_BATCH_FULL 1 /* hold into a full tx */
#define MQBUS_PUBLISH_BATCH_FILL 2 /* fill each frame before it goes */
void mqbus_set_publish_batch(mqbus *b, int on);

/*
 * Drop notices (LIBMQBUS_1.5).  A subscriber learns how many messages
 * were lost just before a message from mqbus_msg_dropped().  When no
 * message follows the losses, the daemon sends a drop notice as soon as
 * the rx queue has room: a message with no payload and no sender, whose
 * topic is that of the last message lost and whose mqbus_msg_dropped()
 * is the count.  mqbus_msg_is_drop_notice() tells it (1) from a message
 * (0).
 */
int mqbus_msg_is_drop_notice(const mqbus_msg *m);
int mqbus_flush(mqbus *b);

/* Event-loop use. */
typedef void (*mqbus_handler)(mqbus *b, const mqbus_msg *msg,
			      void *userdata);
/*
 * The fd to poll for readability, or -ENOTCONN before mqbus_connect():
 * an epoll fd (epoll(7)) holding the rx queue and a pidfd of the daemon,
 * so that it becomes readable when a message arrives and when the daemon
 * dies.  Use it with poll(), select(), epoll or libevent as any fd that
 * polls readable; do not add to it or read it with epoll_wait().  It
 * stays the same fd for the handle's life, across reconnections.
 */
int mqbus_get_fd(const mqbus *b);
/* The handler mqbus_process() calls for each message that no handler of
 * mqbus_subscribe_cb() takes. */
void mqbus_set_handler(mqbus *b, mqbus_handler fn, void *userdata);

/*
 * Per-subscription handlers (since LIBMQBUS_1.6).  mqbus_subscribe_cb()
 * subscribes to pattern as mqbus_subscribe() does and gives the
 * subscription its own handler fn (not NULL), called with userdata.
 * Each message is handed to the program once, where mqbus_process() or
 * mqbus_receive() reads it: every handler of mqbus_subscribe_cb() whose
 * pattern matches its topic is called with it, once each, in the order
 * the subscriptions were made; a message that matches none goes to the
 * handler of mqbus_set_handler() (mqbus_process()) or is returned
 * (mqbus_receive()), as before; mqbus_process() without such a handler
 * keeps it for mqbus_receive().  Matching is by topic, whichever
 * subscription brought the message; a monitor's copy goes to no
 * subscription's handler.  The message is valid during the call only.
 * A handler may subscribe, unsubscribe and publish; one made during a
 * call is not offered the message of that call.  mqbus_unsubscribe() of
 * the pattern removes the handler with the subscription; a reconnection
 * keeps both (a subscription refused then loses its handler).
 * -EEXIST: the pattern is already subscribed (its handler, if any, is
 * kept); -EINVAL: bad pattern or no handler; other errors as for
 * mqbus_subscribe().
 */
int mqbus_subscribe_cb(mqbus *b, const char *pattern, mqbus_handler fn,
		       void *userdata);

/*
 * 1 if the concrete topic matches pattern by the daemon's rules ('+' one
 * level, '#' as the last level the rest, none included: "a/#" matches
 * "a"), 0 if not, -EINVAL if either is not valid (since LIBMQBUS_1.6).
 */
int mqbus_topic_match(const char *pattern, const char *topic);
/*
 * Reads every message waiting, without blocking, and passes each to the
 * handler (messages are freed after it returns); runs the callbacks of
 * asynchronous requests and of the connection (mqbus_set_connection_cb())
 * that are due, and the steps of a reconnection.  Returns the number
 * handled, or -ENOTCONN while disconnected (the daemon died, stopped or
 * dropped this client; mqbus_last_error() says which).
 */
int mqbus_process(mqbus *b);

/*
 * Surviving a daemon restart (since LIBMQBUS_1.4).
 *
 * The library notices the daemon's death at once in mqbus_process()
 * (the fd of mqbus_get_fd() becomes readable) and within a second in
 * blocking calls.  When the daemon died or stopped, and reconnecting is
 * on (the default), it keeps the handle's queues and asks the next
 * daemon of the bus to adopt them, trying after 50 ms, then doubling the
 * wait up to 1 s; if its queues are gone it makes new ones and connects
 * afresh.  It makes again every subscription, queue-group join and
 * monitor the program had.  While disconnected: mqbus_process() returns
 * -ENOTCONN and mqbus_get_timeout() the time until the next attempt (so
 * an event loop keeps calling mqbus_process()); a publish that fits into
 * the tx queue is kept there and returns 0, to be routed once a daemon
 * adopts the queue (a new connection's fresh queues keep what was
 * published after they were made); other blocking calls wait up to their
 * timeout for the reconnection, then return -ENOTCONN.  Asynchronous
 * requests in flight fail at once with -ECONNRESET, a blocking one too;
 * answers to them are lost with the daemon.  A client that the daemon
 * dropped (a slow consumer, say) is not reconnected.
 *
 * mqbus_set_reconnect(b, 0), or MQBUS_RECONNECT=0 in the environment of
 * mqbus_new(), turns reconnecting off: the first disconnection is then
 * final and every call returns -ENOTCONN.  The call wins over the
 * environment and may be made at any time.  -EINVAL: on not 0 or 1.
 */
int mqbus_set_reconnect(mqbus *b, int on);

/*
 * The connection callback, called from inside mqbus_process() and
 * mqbus_receive(): once with MQBUS_DISCONNECTED when the connection is
 * lost, error -ECONNRESET (the daemon died), -ESHUTDOWN (it stopped) or
 * -ECONNABORTED (it dropped this client: final); once with
 * MQBUS_RECONNECTED when a daemon took the client back and answered
 * every subscription made again, error 0, or the first refusal of one
 * (-EACCES from a changed access policy, say; the subscription is
 * forgotten) or -ETIMEDOUT when answers did not come within the
 * handle's timeout.  mqbus_last_error() gives the sentence during the
 * call.  fn NULL removes it.
 */
#define MQBUS_DISCONNECTED 1
#define MQBUS_RECONNECTED 2
typedef void (*mqbus_connection_handler)(mqbus *b, int event, int error,
					 void *userdata);
void mqbus_set_connection_cb(mqbus *b, mqbus_connection_handler fn,
			     void *userdata);

/* 1 while disconnected and reconnecting, else 0 (connected, or the
 * disconnection is final). */
int mqbus_reconnecting(const mqbus *b);

/* A received message. */
mqbus_msg *mqbus_msg_free(mqbus_msg *m);
/*
 * Another holder of m (LIBMQBUS_1.6): a handler that keeps the message it
 * was given takes a reference, and each holder calls mqbus_msg_free()
 * once; the last one frees it.  Returns m.  Not thread-safe: the holders
 * are of one thread, as the handle is.
 */
mqbus_msg *mqbus_msg_ref(const mqbus_msg *m);
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
/* 1 if the message is a request to answer with mqbus_reply(), else 0
 * (also 0 for a monitor's copy of a request, which it may not answer). */
int mqbus_msg_is_request(const mqbus_msg *m);

/*
 * Monitors (since LIBMQBUS_1.2).  mqbus_monitor() makes this client a
 * passive monitor of pattern and waits for the daemon to confirm: it
 * receives a copy of every publish, request and reply on a matching
 * topic, from every client, but counts as no subscriber (it changes no
 * "no responders" answer and takes no turn in a queue group).  Its
 * copies never slow the bus: beyond the bus's pending_max they are
 * dropped, and mqbus_msg_dropped() of the next copy says how many.
 * -EPERM: not allowed (without an access policy the daemon allows
 * monitors to root and to its own uid only; its sentence is in
 * mqbus_last_error()); -EINVAL: bad pattern; -EEXIST:
 * already monitoring it; -EDQUOT: too many subscriptions (monitors count
 * among them).  mqbus_unmonitor() ends one (-ENOENT: there is none).
 */
int mqbus_monitor(mqbus *b, const char *pattern);
int mqbus_unmonitor(mqbus *b, const char *pattern);
/* 1 if the message is a monitor's copy (of a publish, request or reply). */
int mqbus_msg_is_monitored(const mqbus_msg *m);
/* 1 if the message is a monitor's copy of a reply: its topic is the
 * request's, its sender the client that answered, its payload the
 * reply's.  A monitor's copy of a request has mqbus_msg_request_id() != 0
 * and is neither a reply nor a request to answer. */
int mqbus_msg_is_reply(const mqbus_msg *m);
/* The bus's id of the request a message is (a request received, or a
 * monitor's copy of one) or answers (a monitor's copy of a reply), so
 * that a monitor can pair them; 0 for other messages. */
uint32_t mqbus_msg_request_id(const mqbus_msg *m);

/*
 * Remote origins (since LIBMQBUS_1.7).  A message that came from another
 * host through an MQTT bridge of the daemon (mqbusd.conf(5), BRIDGES) is
 * published on this bus by the bridge: its sender uid, pid and client id
 * are the bridge's, whatever the remote side says.  A program that wants
 * to know what the remote side says of its sender calls
 * mqbus_set_origin(b, 1) before mqbus_connect() (0, or -EISCONN once
 * connected); the daemon then adds the remote origin to every bridged
 * message it delivers to this handle, and mqbus_msg_origin() returns it
 * (a struct that lives as long as the message).  It returns NULL with
 * errno ENOENT for any other message: one published on this host, or on
 * a handle that did not ask.
 *
 * The fields are claims of the remote host (the MQTT 5 user properties
 * the remote mqbusd wrote, see mqbusd.conf(5)), as trustworthy as the
 * remote mqbusd, its broker and the network between them: nothing on
 * this host checks them.  Only bridge is this host's word.  A field the
 * remote side did not give, or gave in a form that is not valid here
 * (too long, not printable ASCII, not a number), is "not said".
 */
struct mqbus_origin {
	uid_t uid;	    /* the remote sender's uid; (uid_t)-1: not said */
	pid_t pid;	    /* its pid; 0: not said */
	const char *user;   /* its user name (at most 32 bytes); "": not said */
	const char *host;   /* its host name (at most 64 bytes); "": not said */
	const char *bridge; /* the [bridge NAME] of this daemon it came
			       through */
};
int mqbus_set_origin(mqbus *b, int on);
const struct mqbus_origin *mqbus_msg_origin(const mqbus_msg *m);

#ifdef __cplusplus
}
#endif

#endif

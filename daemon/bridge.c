/* SPDX-License-Identifier: MIT */
/*
 * bridge.c - the MQTT bridges of mqbusd, see bridge.h.
 *
 * Out: the router hands a bridge every message matching one of its out
 * patterns (bridge_deliver()).  Connected, the message goes straight to
 * libmosquitto, which writes what the socket takes and keeps the rest;
 * away, it waits in the bridge's own FIFO.  Both together hold at most
 * "queue" messages: past that a new message is dropped, counted and
 * journalled, and the local bus goes on as if nothing happened.  A QoS 1
 * message stays counted until the broker acknowledges it (libmosquitto
 * sends it again after a reconnection); a QoS 0 message until it is
 * written.
 *
 * In: on_message takes the first in mapping matching the topic, puts the
 * local prefix before it, checks the access policy for the bridge's
 * identity and routes the message as a publish of that identity.  While
 * it routes, set->injecting tells every bridge's deliver function to let
 * the message be: nothing that came from a broker goes back to one.
 * Between two hosts, MQTT 5 adds the no-local subscription option (the
 * broker does not echo a bridge's own messages back) and an "mqbus-origin"
 * user property naming the client id that sent it, checked on the way in;
 * MQTT 3.1.1 has neither, so bridge_conf.c refuses a 3.1.1 bridge whose in
 * mappings overlap what its out mappings send.
 *
 * Connection: connect and reconnect are asynchronous; a failure or a lost
 * connection schedules the next try after a back-off that doubles from
 * reconnect_min_ms up to reconnect_max_ms and starts again at the minimum
 * once connected.
 */
#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/bridge.h"
#include "daemon/bridge_conf.h"
#include "daemon/hmap.h"
#include "daemon/log.h"
#include "daemon/msgbuf.h"
#include "daemon/policy.h"
#include "daemon/route.h"
#include "daemon/router.h"
#include "daemon/server.h"
#include "daemon/subscriber.h"
#include "proto/proto.h"

#ifdef HAVE_MQTT
#include <mosquitto.h>
#include <mqtt_protocol.h>

/* the largest payload taken from the broker; local queues take less */
#define BRIDGE_PAYLOAD_MAX (1024 * 1024)
/* at most one "dropped" entry per bridge in this time */
#define BRIDGE_DROP_LOG_USEC (10 * 1000000ull)

/* one message waiting for the broker */
struct bridge_item {
	struct bridge_item *next;
	struct msgbuf *m; /* the DELIVER, shared with the local subscribers */
};

struct bridge {
	struct bridge_set *set;
	struct bridge_conf conf; /* a copy: a reload frees the config */
	unsigned index;		 /* among the [bridge] sections */
	struct subscriber sub;	 /* in s->router under each out pattern */
	struct mosquitto *mosq;
	char *client_id;
	char *password;
	struct policy_identity ident;

	struct event *read_ev;	/* on the socket, while there is one */
	struct event *write_ev; /* while libmosquitto has output */
	int fd;
	struct event *misc_ev;	/* each second: keepalive */
	struct event *retry_ev; /* the next connection attempt */
	bool connected;		/* CONNACK received, not lost since */
	bool ever_connected;
	unsigned failures; /* attempts failed since the last connection */
	unsigned retry_ms;
	char refusal[128]; /* the broker's CONNACK reason, until used */
	char tls_error[160]; /* OpenSSL's reason of this attempt, if any */
	char error[160];     /* why the last attempt failed; "" connected */

	struct bridge_item *head, *tail;
	unsigned n_queued;
	unsigned inflight0; /* QoS 0 handed over, not yet written */
	unsigned inflight1; /* QoS 1 handed over, not yet acknowledged */
	uint8_t qos1_mid[65536 / 8]; /* which mids are QoS 1 */

	uint64_t connects, sent, received, dropped, refused, looped;
	uint64_t drop_logged_usec; /* when the last "dropped" entry went */
	uint64_t drop_unlogged;	   /* drops since */
};

struct bridge_set {
	struct server *s;
	struct bridge **b;
	size_t n;
	bool injecting; /* routing what came from a broker */
	char host[256]; /* gethostname(), for mqbus-host */
	uid_t name_uid;	/* the last uid bridge_user_name() looked up */
	bool name_valid;
	char name[64];
};

static bool bridge_lib_ready;

static uint64_t bridge_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static unsigned bridge_held(const struct bridge *b)
{
	return b->n_queued + b->inflight0 + b->inflight1;
}

/* Counts n dropped messages and writes an entry, at most one per
 * BRIDGE_DROP_LOG_USEC (the next one reports those held back). */
static void bridge_drop(struct bridge *b, const char *why, uint64_t n)
{
	uint64_t now = bridge_now_usec();

	b->dropped += n;
	b->drop_unlogged += n;
	if (b->drop_logged_usec &&
	    now - b->drop_logged_usec < BRIDGE_DROP_LOG_USEC)
		return;
	log_bridge_dropped(b->conf.name, why, b->conf.queue, b->drop_unlogged);
	b->drop_logged_usec = now;
	b->drop_unlogged = 0;
}

/* -------------------------------------------------------------------- */
/* socket and events                                                     */

static void bridge_lost(struct bridge *b, const char *why);
static void bridge_tls_hint(struct bridge *b, int rc, int err,
			    const char *why);

/* Write interest only while libmosquitto has output. */
static void bridge_want_write(struct bridge *b)
{
	if (!b->write_ev)
		return;
	if (mosquitto_want_write(b->mosq))
		event_add(b->write_ev, NULL);
	else
		event_del(b->write_ev);
}

/* After any call into libmosquitto: a socket it closed is a lost
 * connection; otherwise, is there output? */
static void bridge_after_io(struct bridge *b, int rc)
{
	int err = errno;
	const char *why = rc == MOSQ_ERR_ERRNO ? strerror(err) :
			  rc		       ? mosquitto_strerror(rc) :
						 "connection closed";

	if (b->fd >= 0 && mosquitto_socket(b->mosq) != b->fd) {
		bridge_tls_hint(b, rc, err, why);
		bridge_lost(b, b->refusal[0] ? b->refusal : why);
		b->refusal[0] = '\0';
		return;
	}
	if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
		bridge_tls_hint(b, rc, err, why);
		bridge_lost(b, why);
		return;
	}
	bridge_want_write(b);
}

static void bridge_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct bridge *b = arg;

	bridge_after_io(b, mosquitto_loop_read(b->mosq, 1));
}

static void bridge_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct bridge *b = arg;

	bridge_after_io(b, mosquitto_loop_write(b->mosq, 1));
}

static void bridge_on_misc(evutil_socket_t fd, short what, void *arg)
{
	struct bridge *b = arg;

	if (b->fd < 0)
		return;
	bridge_after_io(b, mosquitto_loop_misc(b->mosq));
}

static void bridge_close_events(struct bridge *b)
{
	if (b->read_ev)
		event_free(b->read_ev);
	if (b->write_ev)
		event_free(b->write_ev);
	b->read_ev = b->write_ev = NULL;
	b->fd = -1;
}

static unsigned bridge_backoff(struct bridge *b)
{
	unsigned ms = b->conf.reconnect_min_ms;

	for (unsigned i = 1; i < b->failures && ms < b->conf.reconnect_max_ms;
	     i++)
		ms *= 2;
	return ms < b->conf.reconnect_max_ms ? ms : b->conf.reconnect_max_ms;
}

static void bridge_schedule(struct bridge *b, const char *why)
{
	struct timeval tv;
	bool first = b->failures == 0;

	/* a TLS failure: libmosquitto says "TLS error" or "protocol error",
	 * OpenSSL said what it was (bridge_on_log()) */
	snprintf(b->error, sizeof(b->error), "%s",
		 b->tls_error[0] ? b->tls_error : why);
	b->tls_error[0] = '\0';
	why = b->error;
	b->failures++;
	b->retry_ms = bridge_backoff(b);
	/* the journal hears of the first failure, the rest only in the
	 * debug log: a broker down for a day is one entry, not thousands */
	if (first)
		log_bridge_disconnected(b->conf.name, b->conf.host,
					b->conf.port, why, b->retry_ms);
	else
		log_debug("bridge %s: %s; next try in %u ms", b->conf.name,
			  why, b->retry_ms);
	tv.tv_sec = b->retry_ms / 1000;
	tv.tv_usec = (b->retry_ms % 1000) * 1000;
	event_add(b->retry_ev, &tv);
}

/*
 * A TLS connection the broker closed before its CONNACK, without a reason
 * from OpenSSL: under TLS 1.3 a broker that refuses the client certificate
 * says so after the handshake, and its alert is often lost with the
 * connection's reset.  Say what it most likely was.
 */
static void bridge_tls_hint(struct bridge *b, int rc, int err,
			    const char *why)
{
	if (!b->conf.cafile || b->connected || b->tls_error[0] ||
	    b->refusal[0] ||
	    !(rc == MOSQ_ERR_SUCCESS || rc == MOSQ_ERR_PROTOCOL ||
	      rc == MOSQ_ERR_CONN_LOST ||
	      (rc == MOSQ_ERR_ERRNO && (err == EPROTO || err == ECONNRESET ||
					err == EPIPE))))
		return;
	snprintf(b->tls_error, sizeof(b->tls_error),
		 "%s: the broker closed the TLS connection before CONNACK; "
		 "%s",
		 why,
		 b->conf.certfile ? "does it accept the client certificate?" :
				    "does it require a client certificate?");
}

static void bridge_lost(struct bridge *b, const char *why)
{
	bridge_close_events(b);
	b->connected = false;
	/* QoS 0 messages libmosquitto had not written yet go with the
	 * connection; QoS 1 ones it sends again */
	if (b->inflight0) {
		bridge_drop(b, "lost with the connection", b->inflight0);
		b->inflight0 = 0;
	}
	bridge_schedule(b, why);
}

static void bridge_connect(struct bridge *b)
{
	int rc, fd;

	rc = mosquitto_connect_bind_async(b->mosq, b->conf.host,
					  (int)b->conf.port,
					  (int)b->conf.keepalive, NULL);
	fd = mosquitto_socket(b->mosq);
	if (rc != MOSQ_ERR_SUCCESS || fd < 0) {
		int err = errno;
		const char *why = rc == MOSQ_ERR_ERRNO ? strerror(err) :
							 mosquitto_strerror(rc);

		/* on loopback the handshake may be over before we return */
		bridge_tls_hint(b, rc, err, why);
		bridge_schedule(b, why);
		return;
	}
	b->fd = fd;
	b->read_ev = event_new(b->set->s->base, fd, EV_READ | EV_PERSIST,
			       bridge_on_read, b);
	b->write_ev = event_new(b->set->s->base, fd, EV_WRITE | EV_PERSIST,
				bridge_on_write, b);
	if (!b->read_ev || !b->write_ev || event_add(b->read_ev, NULL) < 0) {
		bridge_close_events(b);
		bridge_schedule(b, "out of memory");
		return;
	}
	bridge_want_write(b);
}

static void bridge_on_retry(evutil_socket_t fd, short what, void *arg)
{
	bridge_connect(arg);
}

/* -------------------------------------------------------------------- */
/* out: local messages to the broker                                     */

static const struct bridge_map *bridge_find_map(const struct bridge_map *maps,
						size_t n, const char *topic)
{
	bool match;

	for (size_t i = 0; i < n; i++)
		if (mosquitto_topic_matches_sub(maps[i].pattern, topic,
						&match) == MOSQ_ERR_SUCCESS &&
		    match)
			return &maps[i];
	return NULL;
}

static int bridge_prop(mosquitto_property **props, const char *name,
		       const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bridge_prop(mosquitto_property **props, const char *name,
		       const char *fmt, ...)
{
	char value[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	return mosquitto_property_add_string_pair(props, MQTT_PROP_USER_PROPERTY,
						  name, value);
}

/* The user name of uid ("" if none), remembered for the last uid asked:
 * a bus's messages mostly come from few users, and a passwd look-up per
 * message would cost more than the rest of the bridge. */
static const char *bridge_user_name(struct bridge_set *set, uid_t uid)
{
	struct passwd *pw;

	if (!set->name_valid || uid != set->name_uid) {
		pw = getpwuid(uid);
		snprintf(set->name, sizeof(set->name), "%s",
			 pw ? pw->pw_name : "");
		set->name_uid = uid;
		set->name_valid = true;
	}
	return set->name;
}

/* Hands one message to libmosquitto.  Returns 0 or -EIO. */
static int bridge_send(struct bridge *b, struct msgbuf *m)
{
	const struct bridge_map *map;
	mosquitto_property *props = NULL;
	struct proto_msg pm;
	char remote[PROTO_TOPIC_MAX * 2 + 2];
	const char *user;
	int mid = 0, rc;

	if (proto_decode(m->data, m->len, &pm) < 0)
		return -EIO;
	map = bridge_find_map(b->conf.out, b->conf.n_out, pm.topic);
	if (!map)
		return 0; /* a reload changed the mappings since */
	snprintf(remote, sizeof(remote), "%s%s%s",
		 map->prefix ? map->prefix : "", map->prefix ? "/" : "",
		 pm.topic);
	if (b->conf.mqtt_version == 5) {
		user = bridge_user_name(b->set, pm.h.sender_uid);
		rc = bridge_prop(&props, "mqbus-priority", "%u",
				 (unsigned)pm.h.priority);
		if (!rc && pm.h.key_len)
			rc = bridge_prop(&props, "mqbus-key", "%s", pm.key);
		if (!rc)
			rc = bridge_prop(&props, "mqbus-uid", "%u",
					 (unsigned)pm.h.sender_uid);
		if (!rc)
			rc = bridge_prop(&props, "mqbus-pid", "%u",
					 (unsigned)pm.h.sender_pid);
		if (!rc && *user)
			rc = bridge_prop(&props, "mqbus-user", "%s", user);
		if (!rc)
			rc = bridge_prop(&props, "mqbus-host", "%s",
					 b->set->host);
		if (!rc)
			rc = bridge_prop(&props, "mqbus-origin", "%s",
					 b->client_id);
		if (rc) {
			mosquitto_property_free_all(&props);
			return -ENOMEM;
		}
	}
	/* counted before: libmosquitto writes a QoS 0 message at once if
	 * it can, and says so (on_publish) before it returns */
	if (!map->qos)
		b->inflight0++;
	rc = mosquitto_publish_v5(b->mosq, &mid, remote,
				  (int)pm.h.payload_len, pm.payload,
				  (int)map->qos, false, props);
	mosquitto_property_free_all(&props);
	if (rc != MOSQ_ERR_SUCCESS) {
		if (!map->qos && b->inflight0)
			b->inflight0--;
		log_debug("bridge %s: publish on %s: %s", b->conf.name, remote,
			  mosquitto_strerror(rc));
		return -EIO;
	}
	b->sent++;
	if (map->qos) {
		/* its PUBACK comes from a later read, never before this */
		b->qos1_mid[mid / 8] |= (uint8_t)(1u << (mid % 8));
		b->inflight1++;
	}
	return 0;
}

/* The broker took (QoS 1) or libmosquitto wrote (QoS 0) message mid. */
static void bridge_on_publish(struct mosquitto *mosq, void *arg, int mid,
			      int reason, const mosquitto_property *props)
{
	struct bridge *b = arg;
	uint8_t bit = (uint8_t)(1u << (mid % 8));

	if (mid >= 0 && mid < 65536 && (b->qos1_mid[mid / 8] & bit)) {
		b->qos1_mid[mid / 8] &= (uint8_t)~bit;
		if (b->inflight1)
			b->inflight1--;
	} else if (b->inflight0) {
		b->inflight0--;
	}
}

/* What waited while the broker was away, oldest first. */
static void bridge_flush(struct bridge *b)
{
	struct bridge_item *it;

	while (b->connected && (it = b->head)) {
		b->head = it->next;
		if (!b->head)
			b->tail = NULL;
		b->n_queued--;
		if (bridge_send(b, it->m) < 0)
			bridge_drop(b, "the broker connection refused it", 1);
		msgbuf_unref(it->m);
		free(it);
	}
}

static void bridge_enqueue(struct bridge *b, struct msgbuf *m)
{
	struct bridge_item *it = malloc(sizeof(*it));

	if (!it) {
		bridge_drop(b, "out of memory", 1);
		return;
	}
	it->next = NULL;
	it->m = msgbuf_ref(m);
	if (b->tail)
		b->tail->next = it;
	else
		b->head = it;
	b->tail = it;
	b->n_queued++;
}

static bool bridge_allowed(struct bridge *b, enum policy_action action,
			   const char *topic)
{
	struct server *s = b->set->s;
	const struct policy_rule *rule = NULL;

	if (!s->cfg.policy ||
	    policy_check(s->cfg.policy, &b->ident, action, topic, &rule))
		return true;
	b->refused++;
	s->stats.policy_refused++;
	log_policy_refused(&s->stats.rl_policy, bridge_now_usec(),
			   &(struct log_client){ .id = BRIDGE_CLIENT_ID_BASE +
							 b->index,
						 .uid = b->ident.uid,
						 .pid = s->pid,
						 .comm = "bridge" },
			   policy_action_name(action), topic,
			   policy_path(s->cfg.policy), rule ? rule->line : 0,
			   !rule || policy_rule_is_default(s->cfg.policy, rule),
			   1);
	return false;
}

/*
 * The router's deliver function of a bridge.  Never counts as taking the
 * message (a request is not the broker's to answer), never waits.
 */
static struct peer *bridge_deliver(struct subscriber *sub,
				   const struct delivery *d)
{
	struct bridge *b = container_of(sub, struct bridge, sub);

	if (d->request || b->set->injecting)
		return NULL;
	if (!bridge_allowed(b, POLICY_SUBSCRIBE, d->topic))
		return NULL;
	if (bridge_held(b) >= b->conf.queue) {
		bridge_drop(b, b->connected ? "the broker is slow, queue full" :
					      "the broker is away, queue full",
			    1);
		return NULL;
	}
	if (!b->connected) {
		bridge_enqueue(b, d->m);
		return NULL;
	}
	if (bridge_send(b, d->m) < 0)
		bridge_drop(b, "the broker connection refused it", 1);
	bridge_want_write(b);
	return NULL;
}

/* -------------------------------------------------------------------- */
/* in: broker messages to the bus                                        */

_Static_assert(BRIDGE_NAME_MAX <= PROTO_ORIGIN_BRIDGE_MAX,
	       "a bridge name fits an origin block");

/* the user properties of an incoming message this side reads */
enum bridge_prop_name {
	PROP_ORIGIN, /* the client id of the bridge that sent it */
	PROP_KEY,
	PROP_PRIORITY,
	PROP_UID,
	PROP_PID,
	PROP_USER,
	PROP_HOST,
	PROP_N
};

static const char *const bridge_prop_names[PROP_N] = {
	[PROP_ORIGIN] = "mqbus-origin", [PROP_KEY] = "mqbus-key",
	[PROP_PRIORITY] = "mqbus-priority", [PROP_UID] = "mqbus-uid",
	[PROP_PID] = "mqbus-pid", [PROP_USER] = "mqbus-user",
	[PROP_HOST] = "mqbus-host",
};

/* user properties looked at, at most: what a remote publisher adds
 * beyond them is not read (ours come first, seven of them) */
#define BRIDGE_PROPS_READ 64

/*
 * One pass over the user properties: the first value of each name above
 * (malloc'ed by libmosquitto, NULL when absent; bridge_props_free()).
 */
static void bridge_props_read(const mosquitto_property *props,
			      char *v[PROP_N])
{
	const mosquitto_property *p;
	char *n = NULL, *val = NULL;
	unsigned seen = 0;
	int i;

	memset(v, 0, PROP_N * sizeof(*v));
	p = mosquitto_property_read_string_pair(props, MQTT_PROP_USER_PROPERTY,
						&n, &val, false);
	while (p && seen++ < BRIDGE_PROPS_READ) {
		for (i = 0; n && i < PROP_N; i++)
			if (!v[i] && !strcmp(n, bridge_prop_names[i]))
				break;
		if (n && i < PROP_N) {
			v[i] = val;
			val = NULL;
		}
		free(n);
		free(val);
		n = val = NULL;
		p = mosquitto_property_read_string_pair(
		    p, MQTT_PROP_USER_PROPERTY, &n, &val, true);
	}
	free(n);
	free(val);
}

static void bridge_props_free(char *v[PROP_N])
{
	for (int i = 0; i < PROP_N; i++)
		free(v[i]);
}

/* A decimal number of 1..10 digits no larger than max, or fallback. */
static uint32_t bridge_prop_number(const char *v, uint32_t max,
				   uint32_t fallback)
{
	unsigned long long n;
	size_t len = v ? strlen(v) : 0;

	if (len == 0 || len > 10 || strspn(v, "0123456789") != len)
		return fallback;
	n = strtoull(v, NULL, 10);
	return n <= max ? (uint32_t)n : fallback;
}

/* The priority asked for: the mapping's, else the sender's (MQTT 5), else
 * none (-1: the topic's default). */
static int bridge_in_priority(const struct bridge_map *map, const char *v)
{
	uint32_t prio;

	if (map->priority >= 0)
		return map->priority;
	prio = bridge_prop_number(v, UINT32_MAX - 1, UINT32_MAX);
	if (prio == UINT32_MAX)
		return -1;
	return prio > PROTO_PRIO_MAX ? PROTO_PRIO_MAX : (int)prio;
}

/* A claimed name: kept if it is one an origin block may hold, else not
 * said (a remote publisher's garbage goes no further). */
static const char *bridge_prop_name(const char *v, size_t max)
{
	return v && proto_origin_string_valid(v, strlen(v), max) ? v : "";
}

/*
 * The origin block of an incoming message into buf: what the remote side
 * claims of its sender, each field checked and dropped when it is not
 * valid, and this bridge's name.  Returns its length (> 0).
 */
static size_t bridge_origin(const struct bridge *b, char *const v[PROP_N],
			    unsigned char buf[PROTO_ORIGIN_MAX])
{
	struct proto_origin o = {
		.uid = bridge_prop_number(v[PROP_UID], PROTO_ORIGIN_UID_NONE - 1,
					  PROTO_ORIGIN_UID_NONE),
		.pid = bridge_prop_number(v[PROP_PID], INT32_MAX, 0),
		.user = bridge_prop_name(v[PROP_USER], PROTO_ORIGIN_USER_MAX),
		.host = bridge_prop_name(v[PROP_HOST], PROTO_ORIGIN_HOST_MAX),
		.bridge = b->conf.name,
	};
	int n = proto_origin_encode(buf, PROTO_ORIGIN_MAX, &o);

	/* bridge names are checked by the config: it cannot fail */
	return n > 0 ? (size_t)n : 0;
}

static void bridge_inject(struct bridge *b, const char *topic,
			  const char *key, const void *payload, size_t len,
			  int prio, const void *origin, size_t origin_len)
{
	struct server *s = b->set->s;
	size_t tlen = strlen(topic), klen = key ? strlen(key) : 0;
	struct proto_header h;
	struct msgbuf *m;
	int n;

	m = msgbuf_get(&s->pool, proto_size_key(tlen, klen, len));
	if (!m) {
		log_warnx("bridge %s: out of memory for a message on %s",
			  b->conf.name, topic);
		return;
	}
	proto_header_init(&h, PROTO_PUBLISH);
	n = proto_encode_key(m->data, m->cap, &h, topic, key, payload, len);
	if (n > 0) {
		m->len = (size_t)n;
		b->set->injecting = true;
		route_bridged(s, b->ident.uid, BRIDGE_CLIENT_ID_BASE + b->index,
			      m, topic, prio, origin_len ? origin : NULL,
			      origin_len);
		b->set->injecting = false;
	}
	msgbuf_unref(m);
}

static void bridge_on_message(struct mosquitto *mosq, void *arg,
			      const struct mosquitto_message *msg,
			      const mosquitto_property *props)
{
	struct bridge *b = arg;
	const struct bridge_map *map;
	char topic[PROTO_TOPIC_MAX + 1];
	unsigned char origin[PROTO_ORIGIN_MAX];
	char *v[PROP_N];
	const char *key;
	int n;

	b->received++;
	bridge_props_read(props, v);
	if (v[PROP_ORIGIN] && !strcmp(v[PROP_ORIGIN], b->client_id)) {
		/* our own, echoed: a broker without no-local */
		b->looped++;
		goto out;
	}
	map = bridge_find_map(b->conf.in, b->conf.n_in, msg->topic);
	if (!map)
		goto out;
	n = snprintf(topic, sizeof(topic), "%s%s%s",
		     map->prefix ? map->prefix : "", map->prefix ? "/" : "",
		     msg->topic);
	if (n < 0 || (size_t)n >= sizeof(topic) ||
	    !proto_topic_valid(topic, (size_t)n, false)) {
		log_debug("bridge %s: remote topic %s is no mqbus topic",
			  b->conf.name, msg->topic);
		b->refused++;
		goto out;
	}
	if (msg->payloadlen < 0 || msg->payloadlen > BRIDGE_PAYLOAD_MAX) {
		b->refused++;
		goto out;
	}
	if (!bridge_allowed(b, POLICY_PUBLISH, topic))
		goto out;
	key = v[PROP_KEY];
	if (key && !proto_key_valid(key, strlen(key)))
		key = NULL;
	bridge_inject(b, topic, key, msg->payload, (size_t)msg->payloadlen,
		      bridge_in_priority(map, v[PROP_PRIORITY]), origin,
		      bridge_origin(b, v, origin));
out:
	bridge_props_free(v);
}

/* -------------------------------------------------------------------- */
/* connection                                                            */

static void bridge_subscribe_in(struct bridge *b)
{
	/* MQTT 5: the broker sends nothing we published back to us */
	int opts = b->conf.mqtt_version == 5 ? MQTT_SUB_OPT_NO_LOCAL : 0;
	int rc;

	for (size_t i = 0; i < b->conf.n_in; i++) {
		rc = mosquitto_subscribe_v5(b->mosq, NULL, b->conf.in[i].pattern,
					    (int)b->conf.in[i].qos, opts, NULL);
		if (rc != MOSQ_ERR_SUCCESS)
			log_warnx("bridge %s: cannot subscribe to %s: %s",
				  b->conf.name, b->conf.in[i].pattern,
				  mosquitto_strerror(rc));
	}
}

static void bridge_on_connect(struct mosquitto *mosq, void *arg, int rc,
			      int flags, const mosquitto_property *props)
{
	struct bridge *b = arg;

	if (rc != 0) {
		/* libmosquitto closes the socket; bridge_after_io() sees
		 * that and says why */
		snprintf(b->refusal, sizeof(b->refusal),
			 "the broker refused the connection: %s",
			 b->conf.mqtt_version == 5 ? mosquitto_reason_string(rc) :
						     mosquitto_connack_string(rc));
		return;
	}
	if (b->ever_connected)
		b->connects++;
	log_bridge_connected(b->conf.name, b->conf.host, b->conf.port,
			     b->conf.mqtt_version, b->connects);
	b->ever_connected = true;
	b->connected = true;
	b->error[0] = b->tls_error[0] = '\0';
	b->failures = 0;
	b->retry_ms = 0;
	bridge_subscribe_in(b);
	bridge_flush(b);
}

/* libmosquitto's own log: only OpenSSL's reasons are kept (the first of
 * an attempt), for the entry that says why it failed */
static void bridge_on_log(struct mosquitto *mosq, void *arg, int level,
			  const char *str)
{
	static const char tag[] = "OpenSSL Error";
	struct bridge *b = arg;
	const char *why;

	log_debug("bridge %s: libmosquitto %d: %s", b->conf.name, level, str);
	if (!(level & MOSQ_LOG_ERR) || b->tls_error[0] ||
	    strncmp(str, tag, sizeof(tag) - 1))
		return;
	/* "OpenSSL Error[0]: error:0A000086:SSL routines::certificate
	 * verify failed" */
	why = strstr(str, "]: ");
	snprintf(b->tls_error, sizeof(b->tls_error), "TLS: %s",
		 why ? why + 3 : str);
}

static void bridge_on_disconnect(struct mosquitto *mosq, void *arg, int rc,
				 const mosquitto_property *props)
{
	struct bridge *b = arg;

	b->connected = false;
}

/* -------------------------------------------------------------------- */
/* set-up                                                                */

/* The first line of path, without its newline. */
static int bridge_read_password(const char *path, char **ret)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!f)
		return -errno;
	n = getline(&line, &cap, f);
	fclose(f);
	if (n < 0) {
		free(line);
		return -EINVAL;
	}
	line[strcspn(line, "\r\n")] = '\0';
	*ret = line;
	return 0;
}

static int bridge_identity(struct bridge *b, struct server *s,
			   char **ret_error)
{
	gid_t groups[256];
	int n = 256;
	struct passwd *pw;
	uid_t uid = s->uid;
	gid_t gid = getgid();

	pw = b->conf.user ? getpwnam(b->conf.user) : getpwuid(uid);
	if (b->conf.user && !pw)
		return log_error_text(ret_error, -ENOENT,
				      "[bridge %s]: user %s: no such user",
				      b->conf.name, b->conf.user);
	if (pw) {
		uid = pw->pw_uid;
		gid = pw->pw_gid;
		if (getgrouplist(pw->pw_name, gid, groups, &n) < 0)
			n = 0;
	} else {
		n = 0;
	}
	if (policy_identity_init(&b->ident, uid, gid, pw ? pw->pw_name : NULL,
				 groups, (size_t)n) < 0)
		return log_error_text(ret_error, -ENOMEM, "out of memory");
	return 0;
}

static int bridge_client_id(struct bridge *b, const char *host,
			    const char *bus)
{
	if (b->conf.client_id) {
		b->client_id = strdup(b->conf.client_id);
		return b->client_id ? 0 : -ENOMEM;
	}
	if (asprintf(&b->client_id, "mqbus-%s-%s-%s", host, bus,
		     b->conf.name) < 0) {
		b->client_id = NULL;
		return -ENOMEM;
	}
	/* MQTT 3.1.1 brokers need only take 23 bytes; most take more */
	return 0;
}

static int bridge_mosquitto(struct bridge *b, char **ret_error)
{
	struct bridge_conf *c = &b->conf;
	int rc;

	b->mosq = mosquitto_new(b->client_id, c->clean_session, b);
	if (!b->mosq)
		return log_error_text(ret_error, -ENOMEM,
				      "[bridge %s]: cannot make an MQTT client",
				      c->name);
	mosquitto_int_option(b->mosq, MOSQ_OPT_PROTOCOL_VERSION,
			     c->mqtt_version == 5 ? MQTT_PROTOCOL_V5 :
						    MQTT_PROTOCOL_V311);
	/* each message goes out when it is routed: Nagle's algorithm
	 * against the broker's delayed ACKs held the bridge up to 40 ms a
	 * message (mqbus-bench --bridge, bridge-mqtt 1024 B) */
	mosquitto_int_option(b->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_connect_v5_callback_set(b->mosq, bridge_on_connect);
	mosquitto_disconnect_v5_callback_set(b->mosq, bridge_on_disconnect);
	mosquitto_message_v5_callback_set(b->mosq, bridge_on_message);
	mosquitto_publish_v5_callback_set(b->mosq, bridge_on_publish);
	mosquitto_log_callback_set(b->mosq, bridge_on_log);
	if (c->username &&
	    mosquitto_username_pw_set(b->mosq, c->username, b->password) !=
		MOSQ_ERR_SUCCESS)
		return log_error_text(ret_error, -ENOMEM, "out of memory");
	if (c->cafile) {
		rc = mosquitto_tls_set(b->mosq, c->cafile, NULL, c->certfile,
				       c->keyfile, NULL);
		if (rc != MOSQ_ERR_SUCCESS)
			return log_error_text(ret_error, -EINVAL,
					      "[bridge %s]: TLS files %s%s%s: "
					      "%s",
					      c->name, c->cafile,
					      c->certfile ? ", " : "",
					      c->certfile ? c->certfile : "",
					      mosquitto_strerror(rc));
	}
	return 0;
}

static struct bridge *bridge_free(struct bridge *b)
{
	struct server *s;
	struct bridge_item *it;

	if (!b)
		return NULL;
	s = b->set->s;
	for (size_t i = 0; i < b->conf.n_out; i++)
		router_unsubscribe(s->router, b->conf.out[i].pattern, &b->sub);
	if (b->mosq) {
		if (b->connected) {
			/* a clean goodbye, if the socket takes it now */
			mosquitto_disconnect(b->mosq);
			mosquitto_loop_write(b->mosq, 1);
		}
		mosquitto_destroy(b->mosq);
	}
	bridge_close_events(b);
	if (b->misc_ev)
		event_free(b->misc_ev);
	if (b->retry_ev)
		event_free(b->retry_ev);
	while ((it = b->head)) {
		b->head = it->next;
		msgbuf_unref(it->m);
		free(it);
	}
	policy_identity_deinit(&b->ident);
	free(b->client_id);
	if (b->password)
		explicit_bzero(b->password, strlen(b->password));
	free(b->password);
	bridge_conf_deinit(&b->conf);
	free(b);
	return NULL;
}

static int bridge_new(struct bridge_set *set, const struct bridge_conf *conf,
		      unsigned index, struct bridge **ret, char **ret_error)
{
	struct server *s = set->s;
	struct timeval one_second = { 1, 0 };
	struct bridge *b;
	int r;

	b = calloc(1, sizeof(*b));
	if (!b)
		return log_error_text(ret_error, -ENOMEM, "out of memory");
	b->set = set;
	b->fd = -1;
	b->index = index;
	b->sub.deliver = bridge_deliver;
	if (bridge_conf_copy(&b->conf, conf) < 0) {
		free(b);
		return log_error_text(ret_error, -ENOMEM, "out of memory");
	}
	if (!b->conf.port_set && b->conf.cafile)
		b->conf.port = 8883;
	r = bridge_identity(b, s, ret_error);
	if (r < 0)
		goto fail;
	if (b->conf.password_file) {
		r = bridge_read_password(b->conf.password_file, &b->password);
		if (r < 0) {
			r = log_error_text(ret_error, r,
					   "[bridge %s]: password_file %s: %s",
					   b->conf.name, b->conf.password_file,
					   strerror(-r));
			goto fail;
		}
	}
	r = bridge_client_id(b, set->host, s->bus);
	if (r < 0)
		goto fail_nomem;
	r = bridge_mosquitto(b, ret_error);
	if (r < 0)
		goto fail;
	b->misc_ev = event_new(s->base, -1, EV_PERSIST, bridge_on_misc, b);
	b->retry_ev = event_new(s->base, -1, 0, bridge_on_retry, b);
	if (!b->misc_ev || !b->retry_ev ||
	    event_add(b->misc_ev, &one_second) < 0)
		goto fail_nomem;
	for (size_t i = 0; i < b->conf.n_out; i++) {
		r = router_subscribe(s->router, b->conf.out[i].pattern, &b->sub);
		if (r < 0 && r != -EEXIST)
			goto fail_nomem;
	}
	*ret = b;
	return 0;
fail_nomem:
	r = log_error_text(ret_error, -ENOMEM, "out of memory");
fail:
	bridge_free(b);
	return r;
}

static struct bridge_set *bridge_set_new(struct server *s)
{
	struct bridge_set *set = calloc(1, sizeof(*set));

	if (!set)
		return NULL;
	set->s = s;
	if (gethostname(set->host, sizeof(set->host) - 1) < 0)
		snprintf(set->host, sizeof(set->host), "localhost");
	return set;
}

int bridge_start(struct server *s, char **ret_error)
{
	struct bridge_set *set;
	int r;

	if (s->cfg.n_bridges == 0)
		return 0;
	if (!bridge_lib_ready) {
		mosquitto_lib_init();
		bridge_lib_ready = true;
	}
	set = s->bridges ? s->bridges : bridge_set_new(s);
	if (!set)
		return log_error_text(ret_error, -ENOMEM, "out of memory");
	s->bridges = set;
	set->b = calloc(s->cfg.n_bridges, sizeof(*set->b));
	if (!set->b)
		return log_error_text(ret_error, -ENOMEM, "out of memory");
	for (size_t i = 0; i < s->cfg.n_bridges; i++) {
		r = bridge_new(set, &s->cfg.bridges[i], (unsigned)i, &set->b[i],
			       ret_error);
		if (r < 0)
			return r;
		set->n++;
		bridge_connect(set->b[i]);
	}
	return 0;
}

void bridge_stop(struct server *s)
{
	struct bridge_set *set = s->bridges;

	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		set->b[i] = bridge_free(set->b[i]);
	free(set->b);
	free(set);
	s->bridges = NULL;
}

void bridge_reload(struct server *s)
{
	struct bridge_set *set = s->bridges;
	struct bridge **fresh = NULL, **old = set ? set->b : NULL;
	size_t n_old = set ? set->n : 0;
	char *err = NULL;

	if (s->cfg.n_bridges == 0) {
		bridge_stop(s);
		return;
	}
	if (!set) {
		if (bridge_start(s, &err) < 0)
			log_warnx("reload: %s", err ? err : "bridges not started");
		free(err);
		return;
	}
	fresh = calloc(s->cfg.n_bridges, sizeof(*fresh));
	if (!fresh) {
		log_warnx("reload: out of memory: the bridges stay as they were");
		return;
	}
	/* unchanged sections keep their bridge, connection and queue */
	for (size_t i = 0; i < s->cfg.n_bridges; i++) {
		for (size_t j = 0; j < n_old; j++) {
			if (old[j] &&
			    bridge_conf_equal(&old[j]->conf, &s->cfg.bridges[i])) {
				fresh[i] = old[j];
				fresh[i]->index = (unsigned)i;
				old[j] = NULL;
				break;
			}
		}
	}
	for (size_t j = 0; j < n_old; j++)
		bridge_free(old[j]);
	free(old);
	set->b = fresh;
	set->n = s->cfg.n_bridges;
	for (size_t i = 0; i < set->n; i++) {
		if (fresh[i])
			continue;
		if (bridge_new(set, &s->cfg.bridges[i], (unsigned)i, &fresh[i],
			       &err) < 0) {
			log_warnx("reload: %s", err ? err : "bridge not started");
			free(err);
			err = NULL;
			continue;
		}
		bridge_connect(fresh[i]);
	}
}

void bridge_stats_text(struct server *s, char *buf, size_t cap, size_t *len)
{
	struct bridge_set *set = s->bridges;
	int n;

	for (size_t i = 0; set && i < set->n; i++) {
		const struct bridge *b = set->b[i];

		if (!b || *len >= cap)
			continue;
		n = snprintf(buf + *len, cap - *len,
			     "bridge.%s.connected=%d\n"
			     "bridge.%s.reconnects=%llu\n"
			     "bridge.%s.sent=%llu\n"
			     "bridge.%s.received=%llu\n"
			     "bridge.%s.queued=%u\n"
			     "bridge.%s.dropped=%llu\n"
			     "bridge.%s.refused=%llu\n"
			     "bridge.%s.retry_ms=%u\n"
			     "bridge.%s.error=%s\n",
			     b->conf.name, b->connected, b->conf.name,
			     (unsigned long long)b->connects, b->conf.name,
			     (unsigned long long)b->sent, b->conf.name,
			     (unsigned long long)b->received, b->conf.name,
			     bridge_held(b), b->conf.name,
			     (unsigned long long)b->dropped, b->conf.name,
			     (unsigned long long)b->refused, b->conf.name,
			     b->connected ? 0 : b->retry_ms, b->conf.name,
			     b->connected ? "" : b->error);
		if (n < 0)
			return;
		*len = *len + (size_t)n >= cap ? cap - 1 : *len + (size_t)n;
	}
}

#else /* !HAVE_MQTT: config_file.c refuses [bridge] sections */

int bridge_start(struct server *s, char **ret_error)
{
	return 0;
}

void bridge_reload(struct server *s)
{
}

void bridge_stop(struct server *s)
{
}

void bridge_stats_text(struct server *s, char *buf, size_t cap, size_t *len)
{
}

#endif

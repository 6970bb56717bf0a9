/* SPDX-License-Identifier: MIT */
/*
 * peer-mqtt.c - mosquitto as a peer of mqbus-bench --peers.
 *
 * The broker: a private mosquitto with a config file of ours, one
 * listener on 127.0.0.1 at a port that was free a moment before (the
 * kernel's choice for a socket bound to port 0), no persistence,
 * anonymous clients, and TCP_NODELAY on its sockets (set_tcp_nodelay),
 * as the clients set it too (MOSQ_OPT_TCP_NODELAY): without it Nagle's
 * algorithm and delayed ACKs, not the broker, would make the round trips.
 *
 * The clients (libmosquitto, MQTT 3.1.1, QoS 0, clean sessions), each
 * driving its connection with mosquitto_loop():
 *   publisher   publishes on bench/data; a message that libmosquitto
 *               could not write at once is written out before the
 *               publisher waits for its window (bench.h);
 *   subscriber  subscribes to bench/data (SUBACK before the go) and takes
 *               each message in the message callback;
 *   responder   subscribes to bench/ping and publishes each request's
 *               payload on bench/pong;
 *   requester   subscribes to bench/pong, publishes on bench/ping and
 *               loops until the answer has come, one at a time.
 * QoS 0 promises nothing, but on loopback with the window nothing is
 * lost; the subscribers check every sequence number, so a loss would
 * fail the row, not flatter it.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/bench/peer.h"

#ifdef HAVE_LIBMOSQUITTO
#include <mosquitto.h>
#endif

#define MQTT_HOST "127.0.0.1"
#define MQTT_PONG "bench/pong"
#define MQTT_KEEPALIVE 600 /* s: longer than any run */

/* ---------------------------------------------------------------- broker */

static char broker_path[256];

/* A port of 127.0.0.1 that nobody listens on now, or 0. */
static unsigned free_port(void)
{
	struct sockaddr_in a = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unsigned port = 0;

	if (fd < 0)
		return 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int mqtt_prepare(struct peer_broker *b, char *why, size_t len)
{
	char conf[128];
	FILE *f;

	b->listen_fd = -1;
#ifndef HAVE_LIBMOSQUITTO
	snprintf(why, len,
		 "skipped: mosquitto's clients not built in (libmosquitto-dev "
		 "was not installed when configure ran)");
	return -1;
#endif
	if (!peer_find_program("mosquitto", broker_path,
			       sizeof(broker_path))) {
		snprintf(why, len,
			 "skipped: mosquitto not installed (apt-get install "
			 "mosquitto)");
		return -1;
	}
	b->port = free_port();
	if (!b->port) {
		snprintf(why, len, "no free port on %s: %s", MQTT_HOST,
			 strerror(errno));
		return -1;
	}
	snprintf(b->addr, sizeof(b->addr), "%s", MQTT_HOST);
	if (peer_dir_make(b, "mqtt", why, len) < 0)
		return -1;
	snprintf(conf, sizeof(conf), "%s/mosquitto.conf", b->dir);
	f = fopen(conf, "we");
	if (!f || fprintf(f,
			  "# mqbus-bench: a private broker for the peer rows\n"
			  "listener %u %s\n"
			  "allow_anonymous true\n"
			  "persistence false\n"
			  "set_tcp_nodelay true\n"
			  "log_dest stderr\n"
			  "log_type error\n"
			  "log_type warning\n",
			  b->port, MQTT_HOST) < 0 ||
	    fclose(f) != 0) {
		snprintf(why, len, "cannot write %s", conf);
		return -1;
	}
	return 0;
}

static void mqtt_exec(struct peer_broker *b) __attribute__((noreturn));

static void mqtt_exec(struct peer_broker *b)
{
	char conf[128];

	snprintf(conf, sizeof(conf), "%s/mosquitto.conf", b->dir);
	execl(broker_path, "mosquitto", "-c", conf, (char *)NULL);
	fprintf(stderr, "mqbus-bench: cannot run %s: %s\n", broker_path,
		strerror(errno));
	_exit(127);
}

/* Ready once its port takes connections. */
static int mqtt_ready(struct peer_broker *b, char *why, size_t len)
{
	struct sockaddr_in a = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)b->port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r;

	if (fd < 0) {
		snprintf(why, len, "socket: %s", strerror(errno));
		return -1;
	}
	r = connect(fd, (struct sockaddr *)&a, sizeof(a));
	close(fd);
	b->cpu_pid = b->pid;
	return r == 0 ? 0 : 1;
}

static void mqtt_cleanup(struct peer_broker *b)
{
	peer_dir_remove(b);
}

const struct peer_ops peer_mqtt_ops = {
	.name = "mosquitto",
	.column = "mosquitto",
	.version = "mosquitto -h",
	.prepare = mqtt_prepare,
	.exec = mqtt_exec,
	.ready = mqtt_ready,
	.cleanup = mqtt_cleanup,
};

/* ---------------------------------------------------------------- clients */

#ifdef HAVE_LIBMOSQUITTO

/* What the callbacks of a client tell its loop. */
struct mqtt_client {
	struct mosquitto *m;
	bool connected, subscribed, finished;
	bool got;			  /* an answer or request is here */
	size_t len;			  /* ... of len bytes in buf */
	unsigned char buf[BENCH_MSGSIZE];
};

static void on_connect(struct mosquitto *m, void *ctx, int rc)
{
	struct mqtt_client *c = ctx;

	if (rc != 0)
		work_fail("mqtt: the broker refused the connection: %s",
			  mosquitto_connack_string(rc));
	c->connected = true;
}

static void on_subscribe(struct mosquitto *m, void *ctx, int mid, int n,
			 const int *granted)
{
	struct mqtt_client *c = ctx;

	if (n != 1 || granted[0] != 0)
		work_fail("mqtt: subscription not granted at QoS 0");
	c->subscribed = true;
}

/* The subscriber: every message checked where it arrives. */
static void on_data(struct mosquitto *m, void *ctx,
		    const struct mosquitto_message *msg)
{
	struct mqtt_client *c = ctx;

	if (strcmp(msg->topic, BENCH_TOPIC) != 0)
		work_fail("mqtt: subscriber: message on %s", msg->topic);
	if (c->finished)
		work_fail("mqtt: subscriber: a message after the last one");
	c->finished = work_sink_take(msg->payload, (size_t)msg->payloadlen);
}

/* The responder and the requester: kept for the loop, which answers. */
static void on_copy(struct mosquitto *m, void *ctx,
		    const struct mosquitto_message *msg)
{
	struct mqtt_client *c = ctx;

	if (c->got)
		work_fail("mqtt: a second message on %s before the first "
			  "was answered",
			  msg->topic);
	if (msg->payloadlen < 0 || (size_t)msg->payloadlen > sizeof(c->buf))
		work_fail("mqtt: message of %d bytes", msg->payloadlen);
	memcpy(c->buf, msg->payload, (size_t)msg->payloadlen);
	c->len = (size_t)msg->payloadlen;
	c->got = true;
}

/* One turn of the client's loop: reads, writes, keeps alive. */
static void mqtt_turn(struct mqtt_client *c, int timeout_ms)
{
	int rc = mosquitto_loop(c->m, timeout_ms, 1);

	if (rc != MOSQ_ERR_SUCCESS)
		work_fail("mqtt: %s", mosquitto_strerror(rc));
}

/* Waits (up to 30 s) until *flag is set by a callback. */
static void mqtt_await(struct mqtt_client *c, const bool *flag,
		       const char *what)
{
	uint64_t end = now_ns() + 30000000000ull;

	while (!*flag) {
		if (now_ns() > end)
			work_fail("mqtt: no %s within 30 s", what);
		mqtt_turn(c, 100);
	}
}

static void mqtt_connect(struct mqtt_client *c, const struct bench_job *job,
			 const char *topic)
{
	char id[48];
	int rc;

	mosquitto_lib_init();
	snprintf(id, sizeof(id), "mqb-%d", (int)getpid());
	c->m = mosquitto_new(id, true, c);
	if (!c->m)
		work_fail("mqtt: mosquitto_new: %s", strerror(errno));
	mosquitto_int_option(c->m, MOSQ_OPT_PROTOCOL_VERSION,
			     MQTT_PROTOCOL_V311);
	mosquitto_int_option(c->m, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_connect_callback_set(c->m, on_connect);
	mosquitto_subscribe_callback_set(c->m, on_subscribe);
	rc = mosquitto_connect(c->m, job->peer_addr, (int)job->peer_port,
			       MQTT_KEEPALIVE);
	if (rc != MOSQ_ERR_SUCCESS)
		work_fail("mqtt: cannot connect to %s:%u: %s", job->peer_addr,
			  job->peer_port, mosquitto_strerror(rc));
	mqtt_await(c, &c->connected, "CONNACK");
	if (!topic)
		return;
	rc = mosquitto_subscribe(c->m, NULL, topic, 0);
	if (rc != MOSQ_ERR_SUCCESS)
		work_fail("mqtt: cannot subscribe to %s: %s", topic,
			  mosquitto_strerror(rc));
	mqtt_await(c, &c->subscribed, "SUBACK");
}

/* Publishes at QoS 0 and writes it out before returning. */
static void mqtt_publish(struct mqtt_client *c, const char *topic,
			 const void *buf, size_t len)
{
	int rc = mosquitto_publish(c->m, NULL, topic, (int)len, buf, 0, false);

	if (rc != MOSQ_ERR_SUCCESS)
		work_fail("mqtt: cannot publish: %s", mosquitto_strerror(rc));
	while (mosquitto_want_write(c->m))
		mqtt_turn(c, 100);
}

static void mqtt_end(struct mqtt_client *c)
{
	work_end();
	mosquitto_disconnect(c->m);
	mosquitto_destroy(c->m);
	mosquitto_lib_cleanup();
}

static void mqtt_send(void *ctx, const void *buf, size_t len)
{
	if (peer_drop(BENCH_PEER_MQTT, buf))
		return;
	mqtt_publish(ctx, BENCH_TOPIC, buf, len);
}

static void mqtt_source(const struct bench_job *job)
{
	static struct mqtt_client c;

	mqtt_connect(&c, job, NULL);
	work_ready();
	work_source(mqtt_send, &c);
	mqtt_end(&c);
}

static void mqtt_sink(const struct bench_job *job)
{
	static struct mqtt_client c;

	mqtt_connect(&c, job, BENCH_TOPIC);
	mosquitto_message_callback_set(c.m, on_data);
	work_ready();
	while (!c.finished)
		mqtt_turn(&c, 1000);
	mqtt_end(&c);
}

static void mqtt_echo(const struct bench_job *job)
{
	static struct mqtt_client c;
	bool last = false;

	mqtt_connect(&c, job, BENCH_PING);
	mosquitto_message_callback_set(c.m, on_copy);
	work_ready();
	while (!last) {
		while (!c.got)
			mqtt_turn(&c, 1000);
		last = work_echo_take(c.buf, c.len);
		c.got = false;
		mqtt_publish(&c, MQTT_PONG, c.buf, c.len);
	}
	mqtt_end(&c);
}

static const void *mqtt_exchange(void *ctx, const void *buf, size_t len,
				 size_t *ret_len)
{
	struct mqtt_client *c = ctx;

	c->got = false;
	mqtt_publish(c, BENCH_PING, buf, len);
	while (!c->got)
		mqtt_turn(c, 1000);
	*ret_len = c->len;
	return c->buf;
}

static void mqtt_pinger(const struct bench_job *job)
{
	static struct mqtt_client c;

	mqtt_connect(&c, job, MQTT_PONG);
	mosquitto_message_callback_set(c.m, on_copy);
	work_ready();
	work_pinger(mqtt_exchange, &c);
	mqtt_end(&c);
}

void peer_mqtt_work(const struct bench_job *job)
{
	static const char *const names[] = {
		[JOB_PEER_SOURCE] = "mqb-mqtt-pub",
		[JOB_PEER_SINK] = "mqb-mqtt-sub",
		[JOB_PEER_ECHO] = "mqb-mqtt-echo",
		[JOB_PEER_PINGER] = "mqb-mqtt-req",
	};

	prctl(PR_SET_NAME, names[job->kind]);
	switch (job->kind) {
	case JOB_PEER_SOURCE:
		mqtt_source(job);
		break;
	case JOB_PEER_SINK:
		mqtt_sink(job);
		break;
	case JOB_PEER_ECHO:
		mqtt_echo(job);
		break;
	default:
		mqtt_pinger(job);
		break;
	}
	_exit(0);
}

#else /* !HAVE_LIBMOSQUITTO */

void peer_mqtt_work(const struct bench_job *job)
{
	/* never forked: mqtt_prepare() says why */
	work_fail("mqtt: libmosquitto was not built in");
}

#endif

/* SPDX-License-Identifier: MIT */
/*
 * route.c - routing publishes, requests and replies.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon/access.h"
#include "daemon/account.h"
#include "daemon/config_file.h"
#include "daemon/deliver.h"
#include "daemon/large.h"
#include "daemon/log.h"
#include "daemon/msgbuf.h"
#include "daemon/peer.h"
#include "daemon/request.h"
#include "daemon/retain.h"
#include "daemon/route.h"
#include "daemon/router.h"
#include "daemon/server.h"
#include "daemon/stats.h"
#include "proto/proto.h"

struct route_ctx {
	struct delivery d;
	struct request *req; /* routing a request: who received it */
	unsigned accepted;   /* subscribers that took it */
};

static void route_one(void *subscriber, void *userdata)
{
	struct subscriber *sub = subscriber;
	struct route_ctx *ctx = userdata;
	struct peer *p;

	/* several matching patterns, one copy */
	if (sub->route_seq == ctx->d.seq)
		return;
	sub->route_seq = ctx->d.seq;
	p = sub->deliver(sub, &ctx->d);
	if (!p)
		return;
	ctx->accepted++;
	if (ctx->req && request_add_recipient(ctx->req, p->id) < 0)
		log_warnx("out of memory: client %u will not be allowed to "
			  "answer request %u",
			  p->id, ctx->req->id);
}

/*
 * Rewrites the message in m in place as what the daemon sends on: its
 * type, flags and token, the priority, and what the daemon knows of the
 * sender.  Returns the bus sequence number given to it.
 */
static uint64_t route_stamp(struct server *s, uid_t uid, pid_t pid,
			    uint32_t id, struct msgbuf *m,
			    enum proto_type type, uint16_t flags,
			    uint32_t token, unsigned prio)
{
	struct proto_header h;
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	memcpy(&h, m->data, sizeof(h));
	h.type = (uint8_t)type;
	h.flags = flags;
	h.priority = prio;
	h.token = token;
	h.status = 0;
	h.sender_uid = (uint32_t)uid;
	h.sender_pid = (uint32_t)pid;
	h.client_id = id;
	h.seq = ++s->seq;
	h.timestamp = (uint64_t)now.tv_sec * 1000000000u +
		      (uint64_t)now.tv_nsec;
	memcpy(m->data, &h, sizeof(h));
	return h.seq;
}

/*
 * The mq priority and the delivery policy of a message on topic that
 * asked for requested_prio (-1: none), from the config; and the topic's
 * delivery-stats entry, which the message carries from now on.
 */
static struct log_counters *route_policy(struct server *s,
					 struct route_ctx *ctx,
					 const char *topic,
					 int requested_prio)
{
	const struct topic_rule *rule = config_rule(&s->cfg, topic);
	struct msgbuf *m = ctx->d.m;

	ctx->d.prio = config_rule_priority(&s->cfg, rule, requested_prio);
	ctx->d.pol = config_rule_policy(&s->cfg, rule);
	m->stat = stats_topic(s, topic,
			      ctx->d.from ? &ctx->d.from->last_topic : NULL,
			      ctx->d.from ? ctx->d.from->uid : s->uid);
	m->measured = false;
	if (!m->stat)
		s->stats.n_untracked++;
	return stats_of(s, m);
}

static int requested_priority(const struct proto_msg *pm)
{
	return pm->h.flags & PROTO_F_PRIORITY ? (int)pm->h.priority : -1;
}

/* Copies for the monitors of topic: never recipients, never in the way. */
static void route_monitors(struct server *s, struct route_ctx *ctx,
			   const char *topic)
{
	if (router_count(s->monitors) > 0)
		router_match(s->monitors, topic, route_one, ctx);
}

/*
 * The stamped DELIVER in m again with the origin block (len bytes at
 * block) after its payload and PROTO_F_ORIGIN, for the peers that asked
 * for it; NULL when out of memory (they get m).
 */
static struct msgbuf *route_with_origin(struct server *s,
					const struct msgbuf *m,
					const void *block, size_t len)
{
	struct msgbuf *o = msgbuf_get(&s->pool, m->len + len);
	struct proto_header h;

	if (!o)
		return NULL;
	memcpy(o->data, m->data, m->len);
	memcpy(o->data + m->len, block, len);
	o->len = m->len + len;
	o->stat = m->stat;
	o->measured = m->measured;
	memcpy(&h, o->data, sizeof(h));
	h.flags |= PROTO_F_ORIGIN;
	h.origin_len = (uint32_t)len;
	memcpy(o->data, &h, sizeof(h));
	return o;
}

static void route_message_origin(struct server *s, struct peer *from,
				 uid_t uid, pid_t pid, uint32_t id,
				 struct msgbuf *m, const char *topic,
				 int requested_prio, const void *origin,
				 size_t origin_len)
{
	struct route_ctx ctx = { .d = { .m = m, .from = from,
					.topic = topic } };
	struct log_counters *topic_counts;

	topic_counts = route_policy(s, &ctx, topic, requested_prio);
	ctx.d.seq = route_stamp(s, uid, pid, id, m, PROTO_DELIVER, 0, 0,
				ctx.d.prio);
	/* a copy with the origin only if some peer asked for origins */
	if (origin && s->peers.n_origin)
		ctx.d.origin_m = route_with_origin(s, m, origin, origin_len);
	s->stats.c.published++;
	topic_counts->published++;
	router_match(s->router, topic, route_one, &ctx);
	route_monitors(s, &ctx, topic);
	large_routed(s, ctx.accepted);
	if (ctx.d.origin_m)
		msgbuf_unref(ctx.d.origin_m);
}

void route_message(struct server *s, struct peer *from, uid_t uid, pid_t pid,
		   uint32_t id, struct msgbuf *m, const char *topic,
		   int requested_prio)
{
	route_message_origin(s, from, uid, pid, id, m, topic, requested_prio,
			     NULL, 0);
}

void route_bridged(struct server *s, uid_t uid, uint32_t id,
		   struct msgbuf *m, const char *topic, int requested_prio,
		   const void *origin, size_t origin_len)
{
	route_message_origin(s, NULL, uid, s->pid, id, m, topic,
			     requested_prio, origin, origin_len);
}

void route_publish(struct peer *p, struct msgbuf *m,
		   const struct proto_msg *pm)
{
	struct server *s = p->server;
	size_t payload_len = pm->h.payload_len;
	const char *topic = pm->topic;
	char why[ACCESS_WHY_MAX];
	struct proto_header h;
	int r;

	/* refused before routing; the sender hears why (token 0: it did
	 * not wait, and learns of it with its next answer) */
	if (!access_check(p, POLICY_PUBLISH, topic, why, sizeof(why)) ||
	    ((pm->h.flags & PROTO_F_RETAIN) &&
	     !access_check(p, POLICY_RETAIN, topic, why, sizeof(why)))) {
		deliver_reply(p, pm->h.token, EACCES, why);
		return;
	}
	p->counts.published++;
	route_message(s, p, p->uid, p->pid, p->id, m, topic,
		      requested_priority(pm));
	/* pm still points into m: the stamp changed only the header */
	if (!(pm->h.flags & PROTO_F_RETAIN))
		return;
	memcpy(&h, m->data, sizeof(h));
	r = retain_set(&s->retained, &s->pool, p->uid, topic, m, payload_len,
		       h.priority);
	if (r < 0) {
		/* published, but not kept: the publisher hears why */
		if (r == -ENOSPC)
			snprintf(why, sizeof(why),
				 "value of %s not retained: the bus keeps "
				 "max_retained (%u) values",
				 topic, s->cfg.max_retained);
		else if (r == -EDQUOT)
			snprintf(why, sizeof(why),
				 "value of %s not retained: uid %u would "
				 "hold more than max_retained_per_uid (%u) "
				 "values or max_retained_bytes_per_uid (%u) "
				 "bytes",
				 topic, (unsigned)p->uid,
				 s->cfg.max_retained_per_uid,
				 s->cfg.max_retained_bytes_per_uid);
		else
			snprintf(why, sizeof(why),
				 "value of %s not retained: %s", topic,
				 strerror(-r));
		s->stats.retain_refused++;
		if (r == -EDQUOT)
			access_quota_refused(p, "max_retained_per_uid", topic,
					     why);
		else if (r == -ENOSPC)
			access_quota_refused(p, "max_retained", topic, why);
		deliver_reply(p, pm->h.token, -r, why);
	}
}

/*
 * A REQUEST goes out like a PUBLISH, marked as a request with a fresh
 * request id; with nobody to take it the requester hears so at once.
 */
void route_request(struct peer *p, struct msgbuf *m,
		   const struct proto_msg *pm)
{
	struct server *s = p->server;
	struct route_ctx ctx = { .d = { .m = m, .from = p, .topic = pm->topic,
					.request = true } };
	char text[ACCESS_WHY_MAX];
	uint32_t token = pm->h.token;
	const char *topic = pm->topic;
	struct log_counters *topic_counts;

	if (!access_check(p, POLICY_REQUEST, topic, text, sizeof(text))) {
		deliver_reply(p, token, EACCES, text);
		return;
	}
	p->counts.requests++;
	if (account_held(&s->accounts, p->uid, ACCOUNT_REQUESTS) >=
	    s->cfg.max_requests_per_uid) {
		snprintf(text, sizeof(text),
			 "uid %u has reached max_requests_per_uid (%u) in "
			 "flight",
			 (unsigned)p->uid, s->cfg.max_requests_per_uid);
		access_quota_refused(p, "max_requests_per_uid", topic, text);
		deliver_reply(p, token, EBUSY, text);
		return;
	}
	if (p->n_requests >= REQUEST_MAX_PER_CLIENT) {
		snprintf(text, sizeof(text),
			 "too many requests in flight: at most %d",
			 REQUEST_MAX_PER_CLIENT);
		access_quota_refused(p, "requests in flight per client", topic,
				     text);
		deliver_reply(p, token, EBUSY, text);
		return;
	}
	ctx.req = request_new(&s->requests, p, token, pm->h.status);
	if (!ctx.req) {
		deliver_reply(p, token, ENOMEM, "out of memory");
		return;
	}
	topic_counts = route_policy(s, &ctx, topic, requested_priority(pm));
	/* the topic stays where it is; stamping touches the header only */
	ctx.d.seq = route_stamp(s, p->uid, p->pid, p->id, m, PROTO_DELIVER,
				PROTO_F_REQUEST, ctx.req->id, ctx.d.prio);
	s->stats.c.requests++;
	topic_counts->requests++;
	snprintf(ctx.req->topic, sizeof(ctx.req->topic), "%s", topic);
	ctx.req->prio = ctx.d.prio;
	router_match(s->router, topic, route_one, &ctx);
	route_monitors(s, &ctx, topic);
	if (ctx.accepted == 0) {
		request_free(ctx.req);
		s->stats.c.no_responders++;
		topic_counts->no_responders++;
		snprintf(text, sizeof(text), "no responders on topic %s",
			 topic);
		deliver_reply(p, token, EHOSTUNREACH, text);
	}
}

/*
 * The monitors of a request's topic see its reply too: a DELIVER on the
 * request's topic, marked as a reply with the request id, as sent by the
 * peer that answered.  Made only when a monitor matches.  It goes at the
 * request's priority: higher, it would overtake the request's copy still
 * in the monitor's queue, and the monitor would see the answer first.
 */
static void route_reply_monitors(struct server *s, struct peer *p,
				 const struct request *req,
				 const struct proto_msg *pm)
{
	struct route_ctx ctx = { .d = { .prio = PROTO_PRIO_MAX,
					.topic = req->topic } };
	size_t tlen = strlen(req->topic);
	struct proto_header h;
	struct msgbuf *m;
	int n;

	if (router_count(s->monitors) == 0 ||
	    router_match(s->monitors, req->topic, NULL, NULL) == 0)
		return;
	m = msgbuf_get(&s->pool, proto_size(tlen, pm->h.payload_len));
	if (!m)
		return;
	proto_header_init(&h, PROTO_DELIVER);
	n = proto_encode(m->data, m->cap, &h, req->topic, pm->payload,
			 pm->h.payload_len);
	if (n > 0) {
		m->len = (size_t)n;
		ctx.d.m = m;
		ctx.d.prio = req->prio;
		ctx.d.seq = route_stamp(s, p->uid, p->pid, p->id, m,
					PROTO_DELIVER,
					PROTO_F_MONITOR | PROTO_F_REPLY,
					req->id, req->prio);
		router_match(s->monitors, req->topic, route_one, &ctx);
	}
	msgbuf_unref(m);
}

/*
 * A REPLY counts only from a peer that received the request, and only
 * once; it goes to the requester alone, with the requester's own token.
 */
void route_reply(struct peer *p, struct msgbuf *m, const struct proto_msg *pm)
{
	struct server *s = p->server;
	struct request *req = request_find(&s->requests, pm->h.token);
	char why[ACCESS_WHY_MAX];
	struct peer *to;

	/* it received the request, but a reload may have taken away its
	 * right to serve the topic since */
	if (req && request_has_recipient(req, p->id) &&
	    !access_check(p, POLICY_SERVE, req->topic, why, sizeof(why))) {
		s->stats.replies_refused++;
		deliver_reply(p, pm->h.token, EACCES, why);
		return;
	}
	if (!req || !request_has_recipient(req, p->id)) {
		s->stats.replies_refused++;
		if (req) {
			/* a request it never saw: a forgery */
			deliver_bad(p, pm->h.token, -EPERM,
				    "reply to a request you did not receive");
		} else {
			log_debug("client %u: reply to unknown request %u "
				  "(answered or expired)",
				  p->id, pm->h.token);
		}
		return;
	}
	to = req->requester;
	route_reply_monitors(s, p, req, pm);
	route_stamp(s, p->uid, p->pid, p->id, m, PROTO_REPLY, 0, req->token,
		    0);
	request_free(req);
	s->stats.c.replies++;
	p->counts.replies++;
	deliver_buf(to, m, PROTO_PRIO_MAX);
}

void route_request_expired(struct request *r, void *arg)
{
	struct server *s = arg;
	struct peer *to = r->requester;
	uint32_t token = r->token;

	request_free(r);
	s->stats.requests_expired++;
	deliver_reply(to, token, ETIMEDOUT, "no reply before the timeout");
}

/* SPDX-License-Identifier: MIT */
/*
 * config_file.h - mqbusd's configuration file.
 *
 * An INI file (parsed with inih).  The [bus] section holds bus-wide
 * settings; each [topic "PATTERN"] section holds the settings of the topics
 * PATTERN matches.  See mqbusd.conf(5).
 *
 *   [bus]
 *   max_priority = 15        ; ceiling for topics no section matches
 *   pending_max = 256        ; messages held per subscriber when its queue
 *                            ; is full
 *   max_clients = 1024
 *   max_subscriptions = 1024 ; per client
 *   pending_bytes = 1048576  ; bytes held per subscriber
 *   overflow = drop-new      ; drop-new, drop-old, coalesce, block or
 *                            ; disconnect
 *   pending_budget = 67108864 ; bytes held for all subscribers together
 *   max_retained = 65536     ; retained values the bus keeps
 *   stats_interval = 60      ; s between delivery-stats entries, 0: none
 *   stats_topics = 20        ; the busiest topics given an entry each
 *
 *   [topic "alerts/#"]
 *   priority = 10            ; default priority of these topics
 *   ceiling = 20             ; highest priority a publisher may ask for
 *   backlog = 64             ; messages held per subscriber (default:
 *                            ; pending_max), backlog_bytes likewise
 *   overflow = drop-old      ; default: the [bus] overflow
 *
 * When several sections match a topic the most specific wins: the one with
 * more literal levels, then fewer wildcards, then the earlier in the file.
 */
#ifndef MQBUS_CONFIG_H
#define MQBUS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct bridge_conf;
struct policy;
struct router;

/* What happens to a message for a subscriber whose backlog is full. */
enum overflow {
	OVERFLOW_DROP_NEW,   /* the new message is dropped (the default) */
	OVERFLOW_DROP_OLD,   /* the oldest waiting one of the lowest
				priority is dropped to make room */
	OVERFLOW_COALESCE,   /* a waiting message of the same topic and
				key is replaced; else as drop-old */
	OVERFLOW_BLOCK,      /* the publisher's queue is not read until
				the subscriber has room: the kernel pushes
				back on the publisher, nothing is lost */
	OVERFLOW_DISCONNECT, /* the slow subscriber is disconnected */
};

/* The backlog bound and overflow policy of a topic. */
struct delivery_policy {
	unsigned backlog;       /* messages waiting per subscriber */
	unsigned backlog_bytes; /* their bytes */
	unsigned overflow;      /* enum overflow */
};

struct topic_rule {
	char *pattern;
	unsigned priority; /* default priority */
	unsigned ceiling;  /* highest priority a publisher may ask for */
	struct delivery_policy policy;
	unsigned order;    /* position in the file */
	unsigned literals; /* literal levels in pattern */
	unsigned wildcards;
};

struct config {
	unsigned max_priority;      /* default 15, at most 32767 */
	unsigned pending_max;       /* default 256: the default backlog */
	unsigned pending_bytes;     /* default 1 MiB: the default backlog
				       in bytes */
	unsigned overflow;          /* default drop-new */
	unsigned pending_budget;    /* default 64 MiB: all backlogs of all
				       subscribers together */
	struct delivery_policy bus_policy; /* the three above, for topics
					      no section matches */
	unsigned max_clients;       /* default 1024 */
	unsigned max_subscriptions; /* per client, default 1024 */
	unsigned max_retained;      /* retained values, default 65536 */
	/* per uid, what one user may make the daemon hold (quotas) */
	unsigned max_clients_per_uid;        /* default 256 */
	unsigned max_subscriptions_per_uid;  /* default 65536 */
	unsigned max_requests_per_uid;       /* in flight, default 4096 */
	unsigned pending_budget_per_uid;     /* memory held for one uid's
						slow subscribers, 16 MiB */
	unsigned block_timeout;              /* s a subscriber may hold
						publishers up, default 10;
						0: for ever */
	unsigned restart_grace_ms;           /* after a restart, how long the
						queues of live clients of the
						previous daemon wait to be
						re-announced, default 5000 */
	unsigned max_timers_per_uid;         /* default 1024 */
	unsigned timer_min_period_ms;        /* default 10 */
	unsigned timer_rate_per_uid;         /* periodic firings/s, 1000 */
	unsigned query_budget_per_uid;       /* items QUERY walks per s */
	unsigned max_retained_per_uid;       /* default 4096 */
	unsigned max_retained_bytes_per_uid; /* default 4 MiB */
	unsigned stats_interval;    /* s between delivery-stats entries,
				       default 60, 0: none */
	unsigned stats_topics;      /* topics per round, default 20 */
	unsigned max_message;       /* largest payload, default 1 MiB; what
				       does not fit a queue message goes in
				       pieces (large.c) */
	unsigned memory_files;      /* 1 (default): large payloads may come
				       and go in sealed memory files
				       (shm.c); 0: in pieces only.  Read
				       at start */
	struct topic_rule *rules;
	size_t n_rules;
	struct router *rule_index; /* pattern -> struct topic_rule * */
	struct policy *policy;     /* [policy]; NULL without one: all
				      allowed (see policy.h) */
	struct bridge_conf *bridges; /* [bridge NAME] sections, in file
					order (bridge_conf.h) */
	size_t n_bridges;
};

/* Fill cfg with the defaults and no topic rules.  Returns 0 or -ENOMEM. */
int config_init(struct config *cfg);

/* Free what cfg holds and reset it to zero.  Accepts a zeroed cfg. */
void config_deinit(struct config *cfg);

/*
 * Parse the file at path into a fresh config.  On success returns 0 and
 * moves the result into *cfg (deinit the old one first).  On failure
 * returns -errno (-ENOENT, -EACCES, -EINVAL for a bad file, ...), leaves
 * *cfg untouched and, if ret_error is not NULL, sets *ret_error to a
 * malloc'ed sentence naming file, line and problem ("/etc/mqbus.conf:7:
 * ceiling: '99999' is above 32767").
 */
int config_load(struct config *cfg, const char *path, char **ret_error);

/*
 * The rule governing topic, or NULL when no section matches.
 */
const struct topic_rule *config_rule(const struct config *cfg,
				     const char *topic);

/* The priority (as config_priority) under rule, NULL for none. */
unsigned config_rule_priority(const struct config *cfg,
			      const struct topic_rule *rule, int requested);

/* The backlog and overflow policy under rule, NULL for none. */
const struct delivery_policy *config_rule_policy(const struct config *cfg,
						 const struct topic_rule *rule);

/* The name of an enum overflow ("drop-new"). */
const char *config_overflow_name(unsigned overflow);

/*
 * The delivery priority of a message on topic.  requested is the priority
 * the publisher asked for, or -1 for none.  With a matching rule: the
 * rule's priority if none was asked for, else requested clamped to the
 * ceiling.  Without: requested (0 if none) clamped to max_priority.
 */
unsigned config_priority(const struct config *cfg, const char *topic,
			 int requested);

#endif

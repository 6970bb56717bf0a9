/* SPDX-License-Identifier: MIT */
/*
 * log.c - free-text lines and named events, to the journal or to stderr.
 *
 * An entry is built once as a list of "NAME=value" fields in a buffer on
 * the stack (struct log_entry), then either handed to sd_journal_sendv()
 * as it is or printed as one stderr line from the same fields, so that the
 * two targets cannot say different things.  The event table below gives
 * each event its MESSAGE_ID and priority; the event functions give its
 * fields, so the list of fields of an event lives in one place.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "daemon/log.h"

/* Fields of one entry, and room for their text. */
#define LOG_MAX_FIELDS 48
#define LOG_TEXT_MAX 8192
#define LOG_MESSAGE_MAX 1024
#define LOG_BUS_MAX 256
/* where sd_journal_sendv() sends to */
#define LOG_JOURNAL_SOCKET "/run/systemd/journal/socket"

enum log_event {
	LOG_EV_NONE, /* a free-text line */
	LOG_EV_STARTED,
	LOG_EV_STOPPING,
	LOG_EV_RELOADED,
	LOG_EV_RELOAD_REFUSED,
	LOG_EV_CLIENT_CONNECTED,
	LOG_EV_CLIENT_LEFT,
	LOG_EV_HANDSHAKE_REFUSED,
	LOG_EV_SLOW_CONSUMER,
	LOG_EV_TOO_LARGE,
	LOG_EV_BAD_MESSAGES,
	LOG_EV_KERNEL_LIMIT,
	LOG_EV_STATS_BUS,
	LOG_EV_STATS_TOPIC,
	LOG_EV_POLICY_REFUSED,
	LOG_EV_QUOTA_REFUSED,
	LOG_EV_BRIDGE_CONNECTED,
	LOG_EV_BRIDGE_DISCONNECTED,
	LOG_EV_BRIDGE_DROPPED,
};

static const struct log_event_kind {
	const char *id;
	int priority;
	bool chatty; /* to stderr only when verbose */
} log_events[] = {
    [LOG_EV_NONE] = {NULL, LOG_INFO, false},
    [LOG_EV_STARTED] = {LOG_ID_STARTED, LOG_INFO, false},
    [LOG_EV_STOPPING] = {LOG_ID_STOPPING, LOG_INFO, false},
    [LOG_EV_RELOADED] = {LOG_ID_RELOADED, LOG_INFO, false},
    [LOG_EV_RELOAD_REFUSED] = {LOG_ID_RELOAD_REFUSED, LOG_WARNING, false},
    [LOG_EV_CLIENT_CONNECTED] = {LOG_ID_CLIENT_CONNECTED, LOG_INFO, true},
    [LOG_EV_CLIENT_LEFT] = {LOG_ID_CLIENT_LEFT, LOG_INFO, true},
    [LOG_EV_HANDSHAKE_REFUSED] = {LOG_ID_HANDSHAKE_REFUSED, LOG_NOTICE, true},
    [LOG_EV_SLOW_CONSUMER] = {LOG_ID_SLOW_CONSUMER, LOG_WARNING, false},
    [LOG_EV_TOO_LARGE] = {LOG_ID_TOO_LARGE, LOG_WARNING, false},
    [LOG_EV_BAD_MESSAGES] = {LOG_ID_BAD_MESSAGES, LOG_WARNING, false},
    [LOG_EV_KERNEL_LIMIT] = {LOG_ID_KERNEL_LIMIT, LOG_ERR, false},
    [LOG_EV_STATS_BUS] = {LOG_ID_STATS_BUS, LOG_INFO, true},
    [LOG_EV_STATS_TOPIC] = {LOG_ID_STATS_TOPIC, LOG_INFO, true},
    [LOG_EV_POLICY_REFUSED] = {LOG_ID_POLICY_REFUSED, LOG_NOTICE, false},
    [LOG_EV_QUOTA_REFUSED] = {LOG_ID_QUOTA_REFUSED, LOG_NOTICE, false},
    [LOG_EV_BRIDGE_CONNECTED] = {LOG_ID_BRIDGE_CONNECTED, LOG_INFO, false},
    [LOG_EV_BRIDGE_DISCONNECTED] = {LOG_ID_BRIDGE_DISCONNECTED, LOG_WARNING,
				    false},
    [LOG_EV_BRIDGE_DROPPED] = {LOG_ID_BRIDGE_DROPPED, LOG_WARNING, false},
};

static bool log_is_verbose;
static bool log_journal;
static char log_bus[LOG_BUS_MAX];

struct log_entry {
	struct iovec iov[LOG_MAX_FIELDS];
	unsigned n;
	size_t used;
	int priority;
	char text[LOG_TEXT_MAX];
};

int log_target_parse(const char *s, enum log_target *ret)
{
	static const char *const names[] = {
	    [LOG_TARGET_AUTO] = "auto",
	    [LOG_TARGET_STDERR] = "stderr",
	    [LOG_TARGET_JOURNAL] = "journal",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (s && strcmp(s, names[i]) == 0) {
			*ret = (enum log_target)i;
			return 0;
		}
	return -EINVAL;
}

/* True when $JOURNAL_STREAM ("DEV:INO") is the file stderr is open on. */
static bool log_stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char *end;

	if (!e || !*e)
		return false;
	errno = 0;
	dev = strtoull(e, &end, 10);
	if (errno || end == e || *end != ':')
		return false;
	e = end + 1;
	ino = strtoull(e, &end, 10);
	if (errno || end == e || *end)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

static bool log_journal_socket_exists(void)
{
	struct stat st;

	return stat(LOG_JOURNAL_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode);
}

void log_setup(enum log_target target, const char *bus, bool verbose)
{
	log_is_verbose = verbose;
	snprintf(log_bus, sizeof(log_bus), "%s", bus ? bus : "");
	switch (target) {
	case LOG_TARGET_JOURNAL:
		/* sd_journal_sendv() drops entries silently when there is no
		 * socket: say so once and keep them on stderr instead */
		log_journal = log_journal_socket_exists();
		if (!log_journal)
			log_warnx("no journal at %s, logging to stderr",
				  LOG_JOURNAL_SOCKET);
		break;
	case LOG_TARGET_STDERR:
		log_journal = false;
		break;
	default:
		log_journal = log_stderr_is_journal();
		break;
	}
}

void log_init(bool verbose)
{
	log_setup(LOG_TARGET_AUTO, NULL, verbose);
}

bool log_verbose(void)
{
	return log_is_verbose;
}

bool log_is_journal(void)
{
	return log_journal;
}

/* ------------------------------------------------------------ entries */

static void entry_vadd(struct log_entry *e, const char *name, const char *fmt,
		       va_list ap) __attribute__((format(printf, 3, 0)));

/* Appends the field NAME=value; cut short if the buffer is full, left
 * out if there is no room even for the name. */
static void entry_vadd(struct log_entry *e, const char *name, const char *fmt,
		       va_list ap)
{
	size_t room = sizeof(e->text) - e->used;
	char *p = e->text + e->used;
	int a, b;

	if (e->n >= LOG_MAX_FIELDS)
		return;
	a = snprintf(p, room, "%s=", name);
	if (a < 0 || (size_t)a >= room)
		return;
	b = vsnprintf(p + a, room - a, fmt, ap);
	if (b < 0)
		return;
	if ((size_t)b >= room - a)
		b = (int)(room - a - 1);
	e->iov[e->n].iov_base = p;
	e->iov[e->n].iov_len = (size_t)a + (size_t)b;
	e->n++;
	e->used += (size_t)a + (size_t)b + 1;
}

static void entry_add(struct log_entry *e, const char *name, const char *fmt,
		      ...) __attribute__((format(printf, 3, 4)));

static void entry_add(struct log_entry *e, const char *name, const char *fmt,
		      ...)
{
	va_list ap;

	va_start(ap, fmt);
	entry_vadd(e, name, fmt, ap);
	va_end(ap);
}

static void entry_u64(struct log_entry *e, const char *name, uint64_t v)
{
	entry_add(e, name, "%" PRIu64, v);
}

/* A string field; left out when s is NULL. */
static void entry_str(struct log_entry *e, const char *name, const char *s)
{
	if (s)
		entry_add(e, name, "%s", s);
}

/*
 * Starts an entry of event ev.  Returns false when it is not to be written
 * at all, so that the caller can skip formatting it: a debug line unless
 * verbose (whatever the target: some are written per message), a chatty
 * event to stderr unless verbose.
 */
static bool entry_begin(struct log_entry *e, enum log_event ev, int priority)
{
	const struct log_event_kind *k = &log_events[ev];

	if (!log_is_verbose &&
	    (priority == LOG_DEBUG || (k->chatty && !log_journal)))
		return false;
	e->n = 1; /* iov[0]: MESSAGE, written last */
	e->used = 0;
	e->priority = priority;
	entry_add(e, "PRIORITY", "%d", priority);
	entry_add(e, "SYSLOG_IDENTIFIER", "mqbusd");
	if (k->id)
		entry_add(e, "MESSAGE_ID", "%s", k->id);
	if (log_bus[0])
		entry_add(e, "MQBUS_BUS", "%s", log_bus);
	return true;
}

static bool entry_needs_quotes(const char *v, size_t len)
{
	if (len == 0)
		return true;
	for (size_t i = 0; i < len; i++)
		if (v[i] == ' ' || v[i] == '"' || v[i] == '\\' ||
		    (unsigned char)v[i] < 0x20)
			return true;
	return false;
}

/* "mqbusd: MESSAGE (key=value ...)": the MQBUS_* fields but the bus. */
static void entry_print(const struct log_entry *e)
{
	char line[LOG_TEXT_MAX + LOG_MESSAGE_MAX];
	FILE *f;
	size_t size = 0;
	bool open = false;

	f = fmemopen(line, sizeof(line), "w");
	if (!f)
		return;
	fprintf(f, "mqbusd: %.*s", (int)e->iov[0].iov_len - 8,
		(const char *)e->iov[0].iov_base + 8);
	for (unsigned i = 1; i < e->n; i++) {
		const char *field = e->iov[i].iov_base;
		const char *eq = memchr(field, '=', e->iov[i].iov_len);
		const char *v;
		size_t vlen;

		if (!eq || strncmp(field, "MQBUS_", 6) != 0 ||
		    strncmp(field, "MQBUS_BUS=", 10) == 0)
			continue;
		fputs(open ? " " : " (", f);
		open = true;
		for (const char *p = field + 6; p < eq; p++)
			fputc(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p, f);
		fputc('=', f);
		v = eq + 1;
		vlen = e->iov[i].iov_len - (size_t)(v - field);
		if (!entry_needs_quotes(v, vlen)) {
			fwrite(v, 1, vlen, f);
			continue;
		}
		fputc('"', f);
		for (size_t j = 0; j < vlen; j++) {
			if (v[j] == '"' || v[j] == '\\')
				fputc('\\', f);
			fputc((unsigned char)v[j] < 0x20 ? '?' : v[j], f);
		}
		fputc('"', f);
	}
	if (open)
		fputc(')', f);
	fputc('\n', f);
	fflush(f);
	size = (size_t)ftell(f);
	fclose(f);
	if (size >= sizeof(line)) {
		size = sizeof(line) - 1;
		line[size - 1] = '\n';
	}
	/* one write, so that lines of several processes do not mix */
	if (write(STDERR_FILENO, line, size) < 0)
		return;
}

static void entry_send(struct log_entry *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sets MESSAGE from fmt and writes the entry to the target. */
static void entry_send(struct log_entry *e, const char *fmt, ...)
{
	char msg[LOG_MESSAGE_MAX];
	va_list ap;
	unsigned n = e->n;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r < 0)
		msg[0] = '\0';
	/* MESSAGE goes where the stack of fields left room for it */
	e->n = 0;
	entry_add(e, "MESSAGE", "%s", msg);
	if (e->n == 0) { /* no room: drop the last field instead */
		e->used = (size_t)((char *)e->iov[n - 1].iov_base - e->text);
		n--;
		entry_add(e, "MESSAGE", "%s", msg);
	}
	/* entry_add() wrote the MESSAGE field at index 0 */
	e->n = n;
	if (log_journal && sd_journal_sendv(e->iov, (int)e->n) >= 0)
		return;
	entry_print(e);
}

static void log_vline(enum log_event ev, int priority, const char *fmt,
		      va_list ap, int errnum)
    __attribute__((format(printf, 3, 0)));

static void log_vline(enum log_event ev, int priority, const char *fmt,
		      va_list ap, int errnum)
{
	struct log_entry e;
	char line[LOG_MESSAGE_MAX];
	int n;

	if (!entry_begin(&e, ev, priority))
		return;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	if (errnum) {
		entry_add(&e, "ERRNO", "%d", errnum);
		snprintf(line + strlen(line), sizeof(line) - strlen(line),
			 ": %s", strerror(errnum));
	}
	entry_send(&e, "%s", line);
}

#define LOG_FN(name, level, with_errno)                                        \
	void name(const char *fmt, ...)                                        \
	{                                                                      \
		int saved = errno;                                             \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		log_vline(LOG_EV_NONE, level, fmt, ap,                         \
			  with_errno ? saved : 0);                             \
		va_end(ap);                                                    \
		errno = saved;                                                 \
	}

LOG_FN(log_debug, LOG_DEBUG, 0)
LOG_FN(log_info, LOG_INFO, 0)
LOG_FN(log_warnx, LOG_WARNING, 0)
LOG_FN(log_warn, LOG_WARNING, 1)
LOG_FN(log_errx, LOG_ERR, 0)

/* ------------------------------------------------------------ events */

int log_read_comm(pid_t pid, char *buf, size_t size)
{
	char path[64];
	ssize_t n;
	int fd, r = 0;

	if (size == 0)
		return -EINVAL;
	buf[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0) {
		r = -errno;
		n = 0;
	}
	close(fd);
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return r;
}

uint64_t log_counters_dropped(const struct log_counters *c)
{
	return c->dropped_backlog + c->dropped_oldest + c->dropped_too_large +
	       c->dropped_disconnect + c->dropped_error;
}

/* MQBUS_<FIELD><suffix> for every counter, and MQBUS_DROPPED<suffix>. */
static void entry_counters(struct log_entry *e, const struct log_counters *c,
			   const char *suffix)
{
	char name[64];

#define LOG_X_FIELD(field, member, label)                                      \
	snprintf(name, sizeof(name), "MQBUS_" #field "%s", suffix);            \
	entry_u64(e, name, c->member);
	LOG_COUNTERS(LOG_X_FIELD)
#undef LOG_X_FIELD
	snprintf(name, sizeof(name), "MQBUS_DROPPED%s", suffix);
	entry_u64(e, name, log_counters_dropped(c));
}

static const char *log_comm(const struct log_client *c)
{
	return c->comm && *c->comm ? c->comm : "?";
}

static void entry_client(struct log_entry *e, const struct log_client *c)
{
	entry_u64(e, "MQBUS_CLIENT_ID", c->id);
	entry_u64(e, "MQBUS_CLIENT_UID", (uint64_t)c->uid);
	entry_u64(e, "MQBUS_CLIENT_PID", (uint64_t)c->pid);
	if (c->comm && *c->comm)
		entry_str(e, "MQBUS_CLIENT_COMM", c->comm);
}

void log_started(const char *version, const char *wake, const char *config_file)
{
	struct log_entry e;

	if (!entry_begin(&e, LOG_EV_STARTED, LOG_INFO))
		return;
	entry_str(&e, "MQBUS_VERSION", version);
	entry_str(&e, "MQBUS_WAKE", wake);
	entry_str(&e, "MQBUS_CONFIG_FILE", config_file);
	entry_send(&e, "serving bus %s (mqbus %s, wake-ups: %s, config: %s)",
		   log_bus, version, wake, config_file ? config_file : "none");
}

void log_stopping(const char *why, unsigned clients, uint64_t uptime_usec)
{
	struct log_entry e;

	if (!entry_begin(&e, LOG_EV_STOPPING, LOG_INFO))
		return;
	entry_str(&e, "MQBUS_REASON", why);
	entry_u64(&e, "MQBUS_CLIENTS", clients);
	entry_u64(&e, "MQBUS_UPTIME_USEC", uptime_usec);
	entry_send(&e, "stopping (%s) after %" PRIu64 " s; %u clients told",
		   why, uptime_usec / 1000000, clients);
}

void log_reloaded(const char *config_file, unsigned topic_rules)
{
	struct log_entry e;

	if (!entry_begin(&e, LOG_EV_RELOADED, LOG_INFO))
		return;
	entry_str(&e, "MQBUS_CONFIG_FILE", config_file);
	entry_u64(&e, "MQBUS_TOPIC_RULES", topic_rules);
	entry_send(&e, "reloaded %s (%u topic rules)", config_file,
		   topic_rules);
}

void log_reload_refused(const char *config_file, unsigned line,
			const char *reason)
{
	struct log_entry e;

	if (!entry_begin(&e, LOG_EV_RELOAD_REFUSED, LOG_WARNING))
		return;
	entry_str(&e, "MQBUS_CONFIG_FILE", config_file);
	if (line)
		entry_u64(&e, "MQBUS_CONFIG_LINE", line);
	entry_str(&e, "MQBUS_REASON", reason);
	if (line)
		entry_send(&e,
			   "reload refused, keeping the old settings: "
			   "%s:%u: %s",
			   config_file, line, reason);
	else
		entry_send(&e,
			   "reload refused, keeping the old settings: "
			   "%s: %s",
			   config_file, reason);
}

void log_client_connected(const struct log_client *c)
{
	struct log_entry e;

	if (!entry_begin(&e, LOG_EV_CLIENT_CONNECTED, LOG_INFO))
		return;
	entry_client(&e, c);
	entry_send(&e, "client %" PRIu32 " connected: %s, pid %d, uid %u",
		   c->id, log_comm(c), (int)c->pid, (unsigned)c->uid);
}

void log_client_left(const struct log_client *c, const char *reason,
		     uint64_t lifetime_usec, const struct log_counters *totals)
{
	struct log_entry e;

	if (!entry_begin(&e, LOG_EV_CLIENT_LEFT, LOG_INFO))
		return;
	entry_client(&e, c);
	entry_str(&e, "MQBUS_REASON", reason);
	entry_u64(&e, "MQBUS_LIFETIME_USEC", lifetime_usec);
	entry_counters(&e, totals, "");
	entry_send(&e,
		   "client %" PRIu32 " (%s, pid %d, uid %u) left (%s) after "
		   "%" PRIu64 ".%03" PRIu64 " s: published %" PRIu64
		   ", delivered %" PRIu64 ", dropped %" PRIu64,
		   c->id, log_comm(c), (int)c->pid, (unsigned)c->uid, reason,
		   lifetime_usec / 1000000, lifetime_usec / 1000 % 1000,
		   totals->published, totals->delivered,
		   log_counters_dropped(totals));
}

void log_handshake_refused(const char *queue, uid_t uid, pid_t pid,
			   const char *reason)
{
	struct log_entry e;

	if (!entry_begin(&e, LOG_EV_HANDSHAKE_REFUSED, LOG_NOTICE))
		return;
	entry_str(&e, "MQBUS_QUEUE", queue);
	if (uid != (uid_t)-1)
		entry_u64(&e, "MQBUS_CLIENT_UID", (uint64_t)uid);
	if (pid > 0)
		entry_u64(&e, "MQBUS_CLIENT_PID", (uint64_t)pid);
	entry_str(&e, "MQBUS_REASON", reason);
	entry_send(&e, "handshake of %s refused: %s", queue, reason);
}

uint64_t log_ratelimit_key(uint32_t client_id, const char *topic)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

	for (const char *p = topic ? topic : ""; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 0x100000001b3ULL;
	}
	for (int i = 0; i < 4; i++) {
		h ^= (client_id >> (8 * i)) & 0xff;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* The slot of key: its own, else a free one, else the least recently
 * written of the few it may take. */
static struct log_ratelimit_slot *log_ratelimit_slot(struct log_ratelimit *rl,
						     uint64_t key)
{
	struct log_ratelimit_slot *free_slot = NULL, *oldest = NULL;

	for (unsigned i = 0; i < 8; i++) {
		struct log_ratelimit_slot *s =
		    &rl->slot[(key + i) % LOG_RL_SLOTS];

		if (s->used && s->key == key)
			return s;
		if (!s->used && !free_slot)
			free_slot = s;
		if (s->used && (!oldest || s->last_usec < oldest->last_usec))
			oldest = s;
	}
	return free_slot ? free_slot : oldest;
}

uint64_t log_ratelimit_hit(struct log_ratelimit *rl, uint64_t key,
			   uint64_t now_usec, uint64_t n)
{
	struct log_ratelimit_slot *s = log_ratelimit_slot(rl, key);
	uint64_t r;

	if (!s->used || s->key != key) {
		/* every slot it may take was written this interval: taking
		 * one would let a client that sprays topics write an entry
		 * per message.  Held back, not journalled (the counters of
		 * the stats still have it). */
		if (s->used && now_usec - s->last_usec < rl->interval_usec) {
			rl->crowded += n;
			return 0;
		}
		*s = (struct log_ratelimit_slot){
		    .key = key, .last_usec = now_usec, .used = true};
		return n;
	}
	if (now_usec - s->last_usec < rl->interval_usec) {
		s->pending += n;
		return 0;
	}
	r = s->pending + n;
	s->pending = 0;
	s->last_usec = now_usec;
	return r;
}

/*
 * The start of a warning about subscriber sub and topic, rate limited by
 * rl (may be NULL) per subscriber and topic: false when no entry may be
 * written now; else *n is what the entry reports (held-back ones too).
 */
static bool entry_begin_limited(struct log_entry *e, enum log_event ev,
				struct log_ratelimit *rl, uint64_t now_usec,
				const struct log_client *sub,
				const char *topic, uint64_t *n)
{
	if (rl) {
		*n = log_ratelimit_hit(rl, log_ratelimit_key(sub->id, topic),
				       now_usec, *n);
		if (*n == 0)
			return false;
	}
	if (!entry_begin(e, ev, LOG_WARNING))
		return false;
	entry_str(e, "MQBUS_TOPIC", topic);
	entry_client(e, sub);
	return true;
}

void log_slow_consumer(struct log_ratelimit *rl, uint64_t now_usec,
		       const struct log_client *sub, const char *topic,
		       const char *policy, uint64_t n)
{
	struct log_entry e;

	if (!entry_begin_limited(&e, LOG_EV_SLOW_CONSUMER, rl, now_usec, sub,
				 topic, &n))
		return;
	entry_str(&e, "MQBUS_POLICY", policy);
	entry_u64(&e, "MQBUS_COUNT", n);
	entry_send(&e,
		   "slow consumer: client %" PRIu32 " (%s, pid %d, uid %u) "
		   "fell behind on %s, %s acted %" PRIu64 " times",
		   sub->id, log_comm(sub), (int)sub->pid, (unsigned)sub->uid,
		   topic, policy, n);
}

void log_too_large(struct log_ratelimit *rl, uint64_t now_usec,
		   const struct log_client *sub, const char *topic, size_t size,
		   size_t msgsize, uint64_t n)
{
	struct log_entry e;

	if (!entry_begin_limited(&e, LOG_EV_TOO_LARGE, rl, now_usec, sub,
				 topic, &n))
		return;
	entry_u64(&e, "MQBUS_SIZE", size);
	entry_u64(&e, "MQBUS_QUEUE_MSGSIZE", msgsize);
	entry_u64(&e, "MQBUS_COUNT", n);
	entry_send(&e,
		   "message of %zu bytes on %s dropped for client %" PRIu32
		   " (%s, pid %d, uid %u): its queue takes %zu bytes a "
		   "message (%" PRIu64 " times)",
		   size, topic, sub->id, log_comm(sub), (int)sub->pid,
		   (unsigned)sub->uid, msgsize, n);
}

void log_policy_refused(struct log_ratelimit *rl, uint64_t now_usec,
			const struct log_client *c, const char *action,
			const char *topic, const char *config_file,
			unsigned line, bool is_default, uint64_t n)
{
	struct log_entry e;
	char rule[512], more[96] = "";

	if (rl) {
		n = log_ratelimit_hit(
		    rl, log_ratelimit_key((uint32_t)c->uid, action), now_usec,
		    n);
		if (n == 0)
			return;
	}
	if (!entry_begin(&e, LOG_EV_POLICY_REFUSED, LOG_NOTICE))
		return;
	if (is_default)
		snprintf(rule, sizeof(rule), "default");
	else
		snprintf(rule, sizeof(rule), "%s:%u", config_file, line);
	entry_client(&e, c);
	entry_str(&e, "MQBUS_ACTION", action);
	entry_str(&e, "MQBUS_TOPIC", topic);
	entry_str(&e, "MQBUS_RULE", rule);
	entry_str(&e, "MQBUS_CONFIG_FILE", config_file);
	entry_u64(&e, "MQBUS_CONFIG_LINE", line);
	entry_u64(&e, "MQBUS_COUNT", n);
	if (n > 1)
		snprintf(more, sizeof(more),
			 "; %" PRIu64 " %s refusals of uid %u since the last "
			 "entry",
			 n, action, (unsigned)c->uid);
	entry_send(&e,
		   "client %" PRIu32 " (%s, pid %d, uid %u): %s to %s denied "
		   "by %s%s:%u%s%s",
		   c->id, log_comm(c), (int)c->pid, (unsigned)c->uid, action,
		   topic, is_default ? "default (" : "", config_file, line,
		   is_default ? ")" : "", more);
}

void log_quota_refused(struct log_ratelimit *rl, uint64_t now_usec,
		       const struct log_client *c, const char *quota,
		       const char *topic, const char *reason, uint64_t n)
{
	struct log_entry e;
	char more[96] = "";

	if (rl) {
		n = log_ratelimit_hit(
		    rl, log_ratelimit_key((uint32_t)c->uid, quota), now_usec,
		    n);
		if (n == 0)
			return;
	}
	if (!entry_begin(&e, LOG_EV_QUOTA_REFUSED, LOG_NOTICE))
		return;
	entry_client(&e, c);
	entry_str(&e, "MQBUS_QUOTA", quota);
	entry_str(&e, "MQBUS_TOPIC", topic);
	entry_str(&e, "MQBUS_REASON", reason);
	entry_u64(&e, "MQBUS_COUNT", n);
	if (n > 1)
		snprintf(more, sizeof(more),
			 "; %" PRIu64 " refusals of uid %u for %s since the "
			 "last entry",
			 n, (unsigned)c->uid, quota);
	entry_send(&e, "client %" PRIu32 " (%s, pid %d, uid %u) refused: %s%s",
		   c->id, log_comm(c), (int)c->pid, (unsigned)c->uid, reason,
		   more);
}

void log_bad_messages(const struct log_client *c, uint64_t count,
		      const char *reason, bool disconnected)
{
	struct log_entry e;

	if (!entry_begin(&e, LOG_EV_BAD_MESSAGES, LOG_WARNING))
		return;
	entry_client(&e, c);
	entry_u64(&e, "MQBUS_COUNT", count);
	entry_str(&e, "MQBUS_REASON", reason);
	entry_u64(&e, "MQBUS_DISCONNECTED", disconnected);
	entry_send(&e,
		   "client %" PRIu32 " (%s, pid %d, uid %u) sent %" PRIu64
		   " bad messages, the last: %s%s",
		   c->id, log_comm(c), (int)c->pid, (unsigned)c->uid, count,
		   reason, disconnected ? "; disconnected" : "");
}

void log_kernel_limit(const char *limit, uint64_t value, const char *operation,
		      int errnum, uid_t uid, const char *hint)
{
	struct log_entry e;

	if (!entry_begin(&e, LOG_EV_KERNEL_LIMIT, LOG_ERR))
		return;
	entry_str(&e, "MQBUS_LIMIT", limit);
	if (value)
		entry_u64(&e, "MQBUS_LIMIT_VALUE", value);
	entry_str(&e, "MQBUS_OPERATION", operation);
	entry_add(&e, "ERRNO", "%d", errnum);
	if (uid != (uid_t)-1)
		entry_u64(&e, "MQBUS_CLIENT_UID", (uint64_t)uid);
	entry_str(&e, "MQBUS_HINT", hint);
	entry_send(&e, "%s: %s: kernel limit %s reached%s%s", operation,
		   strerror(errnum), limit, hint ? "; " : "", hint ? hint : "");
}

void log_stats_bus(const struct log_bus_stats *st)
{
	struct log_entry e;
	uint64_t secs = st->interval_usec / 1000000;

	if (!entry_begin(&e, LOG_EV_STATS_BUS, LOG_INFO))
		return;
	entry_u64(&e, "MQBUS_STATS_SEQ", st->seq);
	entry_u64(&e, "MQBUS_INTERVAL_USEC", st->interval_usec);
	entry_counters(&e, &st->delta, "");
	entry_counters(&e, &st->total, "_TOTAL");
	entry_u64(&e, "MQBUS_PENDING_BYTES_MAX", st->pending_bytes_max);
	entry_u64(&e, "MQBUS_CLIENTS", st->clients);
	entry_u64(&e, "MQBUS_SUBSCRIPTIONS", st->subscriptions);
	entry_u64(&e, "MQBUS_LATENCY_P50_NSEC", st->latency_p50_nsec);
	entry_u64(&e, "MQBUS_LATENCY_P99_NSEC", st->latency_p99_nsec);
	entry_u64(&e, "MQBUS_LATENCY_MAX_NSEC", st->latency_max_nsec);
	entry_send(&e,
		   "delivery stats, last %" PRIu64 " s: published %" PRIu64
		   ", delivered %" PRIu64 ", dropped %" PRIu64 "; %" PRIu64
		   " clients",
		   secs, st->delta.published, st->delta.delivered,
		   log_counters_dropped(&st->delta), st->clients);
}

void log_stats_topic(const struct log_topic_stats *st)
{
	struct log_entry e;
	uint64_t secs = st->interval_usec / 1000000;

	if (!entry_begin(&e, LOG_EV_STATS_TOPIC, LOG_INFO))
		return;
	entry_u64(&e, "MQBUS_STATS_SEQ", st->seq);
	entry_u64(&e, "MQBUS_INTERVAL_USEC", st->interval_usec);
	if (st->topic)
		entry_str(&e, "MQBUS_TOPIC", st->topic);
	else
		entry_u64(&e, "MQBUS_OTHER_TOPICS", st->other_topics);
	entry_counters(&e, &st->delta, "");
	if (st->topic)
		entry_send(&e,
			   "delivery stats of %s, last %" PRIu64
			   " s: published %" PRIu64 ", delivered %" PRIu64
			   ", dropped %" PRIu64,
			   st->topic, secs, st->delta.published,
			   st->delta.delivered,
			   log_counters_dropped(&st->delta));
	else
		entry_send(&e,
			   "delivery stats of %" PRIu64 " other topics, last "
			   "%" PRIu64 " s: published %" PRIu64
			   ", delivered %" PRIu64 ", dropped %" PRIu64,
			   st->other_topics, secs, st->delta.published,
			   st->delta.delivered,
			   log_counters_dropped(&st->delta));
}

int log_error_text(char **ret_error, int err, const char *fmt, ...)
{
	va_list ap;

	if (ret_error) {
		va_start(ap, fmt);
		if (vasprintf(ret_error, fmt, ap) < 0)
			*ret_error = NULL;
		va_end(ap);
	}
	return err;
}

void log_bridge_connected(const char *bridge, const char *host, unsigned port,
			 unsigned version, uint64_t reconnects)
{
	struct log_entry e;

	if (!entry_begin(&e, LOG_EV_BRIDGE_CONNECTED, LOG_INFO))
		return;
	entry_str(&e, "MQBUS_BRIDGE", bridge);
	entry_str(&e, "MQBUS_BROKER", host);
	entry_u64(&e, "MQBUS_PORT", port);
	entry_str(&e, "MQBUS_MQTT_VERSION", version == 5 ? "5" : "3.1.1");
	entry_u64(&e, "MQBUS_RECONNECTS", reconnects);
	entry_send(&e, "bridge %s connected to %s:%u (MQTT %s)", bridge, host,
		   port, version == 5 ? "5" : "3.1.1");
}

void log_bridge_disconnected(const char *bridge, const char *host,
			     unsigned port, const char *reason,
			     unsigned retry_ms)
{
	struct log_entry e;

	if (!entry_begin(&e, LOG_EV_BRIDGE_DISCONNECTED, LOG_WARNING))
		return;
	entry_str(&e, "MQBUS_BRIDGE", bridge);
	entry_str(&e, "MQBUS_BROKER", host);
	entry_u64(&e, "MQBUS_PORT", port);
	entry_str(&e, "MQBUS_REASON", reason);
	entry_u64(&e, "MQBUS_RETRY_MS", retry_ms);
	entry_send(&e,
		   "bridge %s: no connection to %s:%u (%s); trying again "
		   "in %u ms, holding what goes out meanwhile",
		   bridge, host, port, reason, retry_ms);
}

void log_bridge_dropped(const char *bridge, const char *reason,
			unsigned queue, uint64_t n)
{
	struct log_entry e;

	if (!entry_begin(&e, LOG_EV_BRIDGE_DROPPED, LOG_WARNING))
		return;
	entry_str(&e, "MQBUS_BRIDGE", bridge);
	entry_str(&e, "MQBUS_REASON", reason);
	entry_u64(&e, "MQBUS_QUEUE", queue);
	entry_u64(&e, "MQBUS_COUNT", n);
	entry_send(&e, "bridge %s dropped %" PRIu64 " messages: %s (queue = %u)",
		   bridge, n, reason, queue);
}

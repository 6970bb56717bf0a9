#!/bin/bash
# SPDX-License-Identifier: MIT
#
# journal.sh - mqbusd's journal entries, read back from a real journald.
#
# The test enters a mount namespace of its own (unshare -m) and starts
# /lib/systemd/systemd-journald there, on a tmpfs at /run/systemd (its
# sockets and a journald.conf.d drop-in: volatile storage, no kmsg, no rate
# limit) and a tmpfs at /run/log (the journal files), in a network
# namespace of its own so that it reads no audit messages of the host.
# systemd is not PID 1 here and is never started; journald runs without it.
#
# Then:
#   - tests/helpers/log-emit writes every event with known figures, through
#     daemon/log.c; journalctl -D -o json must show each MESSAGE_ID with
#     exactly its fields and figures.  The MESSAGE_IDs are written out
#     here, as the record of what was published: daemon/log-ids.h, the
#     catalog and mqbusd(8) must all agree with it.
#   - the rate limiter, the stderr form of the same events, and --log=auto
#     with and without a JOURNAL_STREAM that names stderr;
#   - the real mqbusd with --log=journal (and --log=stderr), among them
#     access policy refusals: one entry per refusal, a burst rate limited
#     per uid and action;
#   - daemon/mqbus.catalog: journalctl --update-catalog into a temporary
#     root, --dump-catalog of every id, and journalctl -x with that
#     database showing an entry's explanation with its fields filled in;
#   - mqbusctl history on synthetic delivery-stats entries with known
#     figures: the table's rates, the sparkline, --since/--until, --topic,
#     --json (valid and exact), and its errors.
#
# Skipped (77) only when systemd-journald is not installed or the test does
# not run as root (mounts need it); with CI=true both fail instead.

. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

LOG_EMIT=${LOG_EMIT:-$top_builddir/tests/helpers/log-emit}

mqb_cannot() {
	if [ "${CI:-}" = true ]; then
		echo "not ok 1 - $1"
		echo "1..1"
		echo "# passed 0 failed 1"
		exit 1
	fi
	echo "# SKIP: $1"
	exit 77
}

JOURNALD=
for p in /lib/systemd/systemd-journald /usr/lib/systemd/systemd-journald; do
	if [ -x "$p" ]; then
		JOURNALD=$p
		break
	fi
done
[ -n "$JOURNALD" ] ||
	mqb_cannot "systemd-journald is not installed (Debian: apt-get install systemd)"
command -v journalctl >/dev/null 2>&1 ||
	mqb_cannot "journalctl is not installed (Debian: apt-get install systemd)"
[ "$(id -u)" = 0 ] ||
	mqb_cannot "journal.sh needs root, to mount the journal's tmpfs in a namespace"

# A mount namespace of our own: the mounts below are seen by nothing else.
if [ "${MQBUS_JOURNAL_NS:-}" != 1 ]; then
	MQBUS_JOURNAL_NS=1 exec unshare --mount --propagation private \
		bash "$0" "$@"
fi

mqb_init
if [ ! -x "$LOG_EMIT" ]; then
	mqb_bail "log-emit is built" "missing: $LOG_EMIT (make check builds it)"
fi
export TZ=UTC

# ------------------------------------------------------------ journald

JDIR=/run/log/journal
mkdir -p /run/systemd /run/log
if ! mount -t tmpfs -o mode=0755 mqbus-test-journal /run/systemd ||
	! mount -t tmpfs -o mode=0755 mqbus-test-journal /run/log; then
	mqb_bail "tmpfs on /run/systemd and /run/log"
fi
mkdir -p /run/systemd/journal /run/systemd/journald.conf.d "$JDIR"
cat >/run/systemd/journald.conf.d/zz-mqbus-test.conf <<'EOF'
[Journal]
Storage=volatile
ReadKMsg=no
RateLimitBurst=0
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
EOF
# journald names its directory after the machine id
if [ ! -s /etc/machine-id ]; then
	systemd-id128 new >"$MQB_TMP/machine-id"
	touch /etc/machine-id 2>/dev/null
	mount --bind "$MQB_TMP/machine-id" /etc/machine-id ||
		mqb_bail "a machine id for journald"
fi

# its own log to stderr, not to the host's kernel log
SYSTEMD_LOG_TARGET=console unshare --net "$JOURNALD" \
	2>"$MQB_TMP/journald.log" &
JPID=$!
mqb_track "$JPID"
if mqb_wait_for 10000 test -S /run/systemd/journal/socket; then
	mqb_ok "systemd-journald runs in the namespace (pid $JPID)"
else
	mqb_diag_file "journald" "$MQB_TMP/journald.log"
	mqb_bail "systemd-journald runs in the namespace"
fi

# Waits until journald has written what it was sent, then prints the
# entries of bus $1 as JSON lines.
entries() {
	journalctl --sync >/dev/null 2>&1
	journalctl -D "$JDIR" -o json --no-pager "MQBUS_BUS=$1"
}

# count_entries BUS MIN: true once bus BUS has at least MIN entries
count_at_least() {
	[ "$(entries "$1" | grep -c .)" -ge "$2" ]
}

# Runs python3 CHECK-SCRIPT ARGS...; each output line "PASS name" or
# "FAIL name: detail" becomes one test result.
py_checks() {
	local line out
	out=$(python3 "$@" 2>&1)
	if [ -z "$out" ]; then
		mqb_notok "python check $1 ran" "no output"
		return
	fi
	while IFS= read -r line; do
		case $line in
		"PASS "*) mqb_ok "${line#PASS }" ;;
		"FAIL "*) mqb_notok "${line#FAIL }" ;;
		*) mqb_notok "python check output" "$line" ;;
		esac
	done <<<"$out"
}

# ------------------------------------------------------------ every event

EBUS=$(mqb_new_bus ev)
out=$("$LOG_EMIT" --log=journal -b "$EBUS" all 2>"$MQB_TMP/emit.err")
mqb_is "log-emit --log=journal chose the journal" "$out" journal
mqb_is "log-emit --log=journal wrote nothing on stderr" \
	"$(cat "$MQB_TMP/emit.err")" ""
mqb_wait_for 5000 count_at_least "$EBUS" 19
entries "$EBUS" >"$MQB_TMP/events.json"

cat >"$MQB_TMP/check_events.py" <<'EOF'
import json, re, sys

events_file, bus, ids_h, catalog, man = sys.argv[1:6]

# The published record: event -> MESSAGE_ID.  Never change these.
IDS = {
    "STARTED": "01669a6502fa4b74b41a0051c4f51f73",
    "STOPPING": "f233fabb4a6e42ae8d86f048288f045c",
    "RELOADED": "24b8ed51f92d49b99327782a367a5fa7",
    "RELOAD_REFUSED": "a2cb6b19279247aaad76c3340331abdb",
    "CLIENT_CONNECTED": "7ebfee848c024a309c56ee6c9cde254f",
    "CLIENT_LEFT": "2eb04e480a01413793a681e59d22bb66",
    "HANDSHAKE_REFUSED": "c54a8469fedc456a911bfdc01aa794b5",
    "SLOW_CONSUMER": "9c803ae837d9457987cb8213520a018a",
    "TOO_LARGE": "bd474e1a4e6745619d0292394a62cfcc",
    "BAD_MESSAGES": "4ce7e236ddac434ebc289d8af0c8490c",
    "KERNEL_LIMIT": "ca446fe34e3441a18732bf5db27c7489",
    "STATS_BUS": "5099115783a4474cafa17e89f6eb24b7",
    "STATS_TOPIC": "990a879b1b944b9688ff00aa31a8b2c2",
    "POLICY_REFUSED": "8881371cad3a41039b0ee8f7ab482d91",
    "QUOTA_REFUSED": "46127e903089437097702c2648c27b7b",
    "BRIDGE_CONNECTED": "18f290728d764b9fa694fb66af563bb8",
    "BRIDGE_DISCONNECTED": "7a08f3fcc5924201ab786c45926f82a0",
    "BRIDGE_DROPPED": "cf15973270c2411bb42a3d3edbd63fc9",
}

alice = {"MQBUS_CLIENT_ID": "7", "MQBUS_CLIENT_UID": "1001",
         "MQBUS_CLIENT_PID": "4242", "MQBUS_CLIENT_COMM": "sensor-feed"}
bob = {"MQBUS_CLIENT_ID": "9", "MQBUS_CLIENT_UID": "1002",
       "MQBUS_CLIENT_PID": "5151", "MQBUS_CLIENT_COMM": "slow reader"}
counters = ["PUBLISHED", "DELIVERED", "DROPPED_BACKLOG", "DROPPED_OLDEST",
            "DROPPED_TOO_LARGE", "DROPPED_DISCONNECT", "DROPPED_ERROR",
            "COALESCED", "REQUESTS", "REPLIES", "NO_RESPONDERS", "DROPPED"]
totals = dict(zip(["MQBUS_" + c for c in counters],
                  ["120", "340", "5", "4", "3", "2", "1", "6", "11", "10",
                   "1", "15"]))

def topic_counters(**kw):
    d = {"MQBUS_" + c: "0" for c in counters}
    for k, v in kw.items():
        d["MQBUS_" + k] = str(v)
    return d

bus_total = {k + "_TOTAL": v for k, v in totals.items()}
bus_total["MQBUS_PUBLISHED_TOTAL"] = "1000"
bus_total["MQBUS_DELIVERED_TOTAL"] = "3000"

# (event, PRIORITY, fields, words the MESSAGE must contain)
EXPECT = [
    ("STARTED", "6", {"MQBUS_VERSION": "0.1.0", "MQBUS_WAKE": "notify",
                      "MQBUS_CONFIG_FILE": "/etc/mqbusd.conf"},
     ["serving bus " + bus]),
    ("STOPPING", "6", {"MQBUS_REASON": "SIGTERM", "MQBUS_CLIENTS": "3",
                       "MQBUS_UPTIME_USEC": "3600000000"}, ["SIGTERM"]),
    ("RELOADED", "6", {"MQBUS_CONFIG_FILE": "/etc/mqbusd.conf",
                       "MQBUS_TOPIC_RULES": "4"}, ["reloaded"]),
    ("RELOAD_REFUSED", "4", {"MQBUS_CONFIG_FILE": "/etc/mqbusd.conf",
                             "MQBUS_CONFIG_LINE": "17",
                             "MQBUS_REASON": "unknown key 'prio'"},
     ["/etc/mqbusd.conf:17"]),
    ("CLIENT_CONNECTED", "6", dict(alice), ["client 7 connected"]),
    ("CLIENT_LEFT", "6", dict(alice, MQBUS_REASON="exited",
                              MQBUS_LIFETIME_USEC="12345678", **totals),
     ["published 120, delivered 340, dropped 15"]),
    ("HANDSHAKE_REFUSED", "5", {"MQBUS_QUEUE": "/bus.77.0.tx",
                                "MQBUS_CLIENT_UID": "1003",
                                "MQBUS_CLIENT_PID": "77",
                                "MQBUS_REASON":
                                "rx queue is readable by others"},
     ["/bus.77.0.tx"]),
    ("SLOW_CONSUMER", "4", dict(bob, MQBUS_TOPIC="sensors/disk/temp",
                                MQBUS_POLICY="drop-old", MQBUS_COUNT="25"),
     ["sensors/disk/temp", "25"]),
    ("TOO_LARGE", "4", dict(bob, MQBUS_TOPIC="blobs/big", MQBUS_SIZE="9000",
                            MQBUS_QUEUE_MSGSIZE="8192", MQBUS_COUNT="1"),
     ["9000 bytes", "8192"]),
    ("BAD_MESSAGES", "4", dict(alice, MQBUS_COUNT="64",
                               MQBUS_REASON="bad magic",
                               MQBUS_DISCONNECTED="1"), ["64 bad messages"]),
    ("KERNEL_LIMIT", "3", {"MQBUS_LIMIT": "fs.mqueue.queues_max",
                           "MQBUS_LIMIT_VALUE": "256",
                           "MQBUS_OPERATION": "mq_open /bus.12.0.rx",
                           "MQBUS_CLIENT_UID": "1001",
                           "MQBUS_HINT":
                           "raise it with sysctl fs.mqueue.queues_max=1024",
                           "ERRNO": "28"}, ["fs.mqueue.queues_max"]),
    ("STATS_BUS", "6", dict(totals, MQBUS_STATS_SEQ="3",
                            MQBUS_INTERVAL_USEC="60000000",
                            MQBUS_PENDING_BYTES_MAX="65536",
                            MQBUS_CLIENTS="4", MQBUS_SUBSCRIPTIONS="12",
                            MQBUS_LATENCY_P50_NSEC="1500",
                            MQBUS_LATENCY_P99_NSEC="42000",
                            MQBUS_LATENCY_MAX_NSEC="900000", **bus_total),
     ["published 120"]),
    ("STATS_TOPIC", "6", dict(topic_counters(PUBLISHED=60, DELIVERED=180,
                                             DROPPED_BACKLOG=2, DROPPED=2),
                              MQBUS_STATS_SEQ="3",
                              MQBUS_INTERVAL_USEC="60000000",
                              MQBUS_TOPIC="sensors/disk/temp"),
     ["sensors/disk/temp"]),
    ("STATS_TOPIC", "6", dict(topic_counters(PUBLISHED=9, DELIVERED=9),
                              MQBUS_STATS_SEQ="3",
                              MQBUS_INTERVAL_USEC="60000000",
                              MQBUS_OTHER_TOPICS="8"), ["8 other topics"]),
    ("POLICY_REFUSED", "5", dict(alice, MQBUS_ACTION="publish",
                                 MQBUS_TOPIC="secret/plans",
                                 MQBUS_RULE="/etc/mqbus/mqbusd.conf:12",
                                 MQBUS_CONFIG_FILE="/etc/mqbus/mqbusd.conf",
                                 MQBUS_CONFIG_LINE="12", MQBUS_COUNT="1"),
     ["client 7 (sensor-feed, pid 4242, uid 1001): publish to secret/plans "
      "denied by /etc/mqbus/mqbusd.conf:12"]),
    ("POLICY_REFUSED", "5", dict(bob, MQBUS_ACTION="subscribe",
                                 MQBUS_TOPIC="secret/#", MQBUS_RULE="default",
                                 MQBUS_CONFIG_FILE="/etc/mqbus/mqbusd.conf",
                                 MQBUS_CONFIG_LINE="3", MQBUS_COUNT="4"),
     ["subscribe to secret/# denied by default (/etc/mqbus/mqbusd.conf:3)",
      "4 subscribe refusals of uid 1002"]),
    ("QUOTA_REFUSED", "5", dict(bob, MQBUS_QUOTA="max_subscriptions_per_uid",
                                MQBUS_TOPIC="sensors/#",
                                MQBUS_REASON="uid 1002 has reached "
                                "max_subscriptions_per_uid (64)",
                                MQBUS_COUNT="2"),
     ["client 9 (slow reader, pid 5151, uid 1002) refused: uid 1002 has "
      "reached max_subscriptions_per_uid (64); 2 refusals of uid 1002 for "
      "max_subscriptions_per_uid"]),
]

def result(ok, name, detail=""):
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail))

entries = [json.loads(l) for l in open(events_file) if l.strip()]
plain = [e for e in entries if "MESSAGE_ID" not in e]
entries = [e for e in entries if "MESSAGE_ID" in e]
result(len(entries) == len(EXPECT), "%d events in the journal" % len(EXPECT),
       "got %d" % len(entries))

# The free-text lines: info and warn, not debug (no -v).
got = [(e.get("PRIORITY"), e.get("MESSAGE"), e.get("ERRNO"), e.get("MQBUS_BUS"),
        e.get("SYSLOG_IDENTIFIER")) for e in plain]
want = [("6", "an info line here", None, bus, "mqbusd"),
        ("4", "opening /nonexistent: No such file or directory", "2", bus,
         "mqbusd")]
result(got == want, "free-text lines: info, and warn with ERRNO; "
       "no debug line without -v", repr(got))
seen_fields = set()
for ev, prio, fields, words in EXPECT:
    mid = IDS[ev]
    cands = [e for e in entries if e.get("MESSAGE_ID") == mid and
             all(e.get(k) == fields[k] for k in ("MQBUS_TOPIC",
                                                  "MQBUS_OTHER_TOPICS")
                 if k in fields)]
    name = "%s (%s)" % (ev, fields.get("MQBUS_TOPIC", mid))
    if len(cands) != 1:
        result(False, name + ": one entry with its MESSAGE_ID",
               "%d found" % len(cands))
        continue
    e = cands[0]
    want = dict(fields, MQBUS_BUS=bus, PRIORITY=prio,
                SYSLOG_IDENTIFIER="mqbusd")
    got = {k: v for k, v in e.items()
           if k.startswith("MQBUS_") or k in ("PRIORITY", "ERRNO",
                                              "SYSLOG_IDENTIFIER")}
    seen_fields |= {k for k in got if k.startswith("MQBUS_")}
    bad = ["%s=%r (want %r)" % (k, got.get(k), v)
           for k, v in sorted(want.items()) if got.get(k) != v]
    extra = sorted(set(got) - set(want))
    result(not bad and not extra, name + ": exactly its fields and figures",
           "; ".join(bad + ["unexpected " + x for x in extra]))
    msg = e.get("MESSAGE", "")
    miss = [w for w in words if w not in msg]
    result(not miss, name + ": MESSAGE says it", "%r lacks %r" % (msg, miss))

# The same ids everywhere.
hdr = dict(re.findall(r'#define LOG_ID_(\w+) "([0-9a-f]{32})"',
                      open(ids_h).read()))
result(hdr == IDS, "daemon/log-ids.h has exactly the published ids",
       "differs: %r" % sorted(set(hdr.items()) ^ set(IDS.items())))
cat = re.findall(r'^-- ([0-9a-f]{32})\s*$', open(catalog).read(), re.M)
result(sorted(cat) == sorted(IDS.values()),
       "mqbus.catalog has one entry per id, no other",
       "catalog ids: %r" % cat)
text = open(man).read()
m = re.search(r'^\.SH "?JOURNAL FIELDS"?$(.*?)^\.SH ', text, re.M | re.S)
sect = m.group(1).replace("\\", "") if m else ""
result(bool(sect), "mqbusd.8 has a JOURNAL FIELDS section")
miss = [i for i in IDS.values() if i not in sect]
result(not miss, "mqbusd.8 JOURNAL FIELDS lists every MESSAGE_ID",
       "missing %r" % miss)
miss = sorted(f for f in seen_fields
              if f not in sect and not (f.endswith("_TOTAL") and
                                        f[:-6] in sect and "_TOTAL" in sect))
result(not miss, "mqbusd.8 JOURNAL FIELDS documents every MQBUS_ field",
       "missing %r" % miss)
EOF
py_checks "$MQB_TMP/check_events.py" "$MQB_TMP/events.json" "$EBUS" \
	"$top_srcdir/daemon/log-ids.h" "$top_srcdir/daemon/mqbus.catalog" \
	"$top_srcdir/daemon/mqbusd.8"

# ------------------------------------------------------------ rate limit

RBUS=$(mqb_new_bus rl)
"$LOG_EMIT" --log=journal -b "$RBUS" ratelimit >/dev/null
mqb_wait_for 5000 count_at_least "$RBUS" 2
mqb_is "rate limiter: one entry, then one with the 4 held back plus 1" \
	"$(entries "$RBUS" | python3 -c '
import json, sys
print(" ".join(json.loads(l)["MQBUS_COUNT"] for l in sys.stdin if l.strip()))')" \
	"1 5"

# ------------------------------------------------------------ stderr, auto

SBUS=$(mqb_new_bus se)
out=$("$LOG_EMIT" --log=stderr -b "$SBUS" all 2>"$MQB_TMP/stderr.txt")
mqb_is "--log=stderr chose stderr" "$out" stderr
mqb_like "stderr: 'mqbusd: MESSAGE (key=value ...)'" \
	"$(grep 'slow consumer' "$MQB_TMP/stderr.txt")" \
	'^mqbusd: slow consumer: client 9 .* \(topic=sensors/disk/temp client_id=9 client_uid=1002 client_pid=5151 client_comm="slow reader" policy=drop-old count=25\)$'
mqb_like "stderr: a reload refused names file:line" \
	"$(grep 'reload refused' "$MQB_TMP/stderr.txt")" \
	'/etc/mqbusd.conf:17: unknown key .* config_line=17 reason="unknown key '\''prio'\''"\)$'
mqb_is "stderr without -v: no client and stats lines" \
	"$(grep -cE ' connected:| left \(|delivery stats|handshake' "$MQB_TMP/stderr.txt")" 0
"$LOG_EMIT" --log=stderr -v -b "$SBUS" all 2>"$MQB_TMP/stderr-v.txt" >/dev/null
mqb_is "stderr with -v: all 17 events and 3 lines, one line each" \
	"$(grep -c '^mqbusd: ' "$MQB_TMP/stderr-v.txt")" 20
mqb_is "stderr without -v: no debug line, the info and warn lines" \
	"$(grep -c 'a debug line' "$MQB_TMP/stderr.txt") $(grep -c '^mqbusd: an info line here$' "$MQB_TMP/stderr.txt") $(grep -c '^mqbusd: opening /nonexistent: No such file or directory$' "$MQB_TMP/stderr.txt")" \
	"0 1 1"
mqb_like "stderr with -v: client left with its totals" \
	"$(grep ' left ' "$MQB_TMP/stderr-v.txt")" \
	'^mqbusd: client 7 \(sensor-feed, pid 4242, uid 1001\) left \(exited\) .* dropped_backlog=5 .* dropped=15\)$'

ABUS=$(mqb_new_bus au)
: >"$MQB_TMP/auto.err"
stream=$(stat -c '%d:%i' "$MQB_TMP/auto.err")
out=$(JOURNAL_STREAM=$stream "$LOG_EMIT" -b "$ABUS" ratelimit \
	2>>"$MQB_TMP/auto.err")
mqb_is "--log=auto: JOURNAL_STREAM naming stderr means the journal" \
	"$out" journal
mqb_true "... and the entries are there" \
	"$(mqb_wait_for 5000 count_at_least "$ABUS" 2; echo $?)"
out=$(JOURNAL_STREAM=1:2 "$LOG_EMIT" -b "$ABUS" ratelimit 2>/dev/null)
mqb_is "--log=auto: a JOURNAL_STREAM of another file means stderr" \
	"$out" stderr
out=$(env -u JOURNAL_STREAM "$LOG_EMIT" -b "$ABUS" ratelimit 2>/dev/null)
mqb_is "--log=auto: no JOURNAL_STREAM means stderr" "$out" stderr
mqb_is "stderr runs wrote nothing to the journal" \
	"$(entries "$SBUS" | grep -c .) $(entries "$ABUS" | grep -c .)" "0 2"

# --log=journal with no journald to take the entries: they go to stderr
NBUS=$(mqb_new_bus nj)
unshare --mount --propagation private sh -c \
	'mount -t tmpfs none /run/systemd/journal && exec "$@"' sh \
	"$LOG_EMIT" --log=journal -b "$NBUS" ratelimit \
	>/dev/null 2>"$MQB_TMP/nojournal.err"
mqb_is "no journald: the entries go to stderr instead" \
	"$(grep -c '^mqbusd: slow consumer: .* count=[15])$' "$MQB_TMP/nojournal.err")" 2
mqb_like "... after saying why" "$(head -n 1 "$MQB_TMP/nojournal.err")" \
	'^mqbusd: no journal at /run/systemd/journal/socket, logging to stderr$'

# ------------------------------------------------------------ mqbusd

mqb_check_status "mqbusd --log=bogus is a usage error" 2 \
	"$MQBUSD" -b "$BUS" --log=bogus
mqb_like "... that names the choices" "$MQB_ERR" 'journal, stderr or auto'

if mqb_daemon_start notify --log=journal; then
	mqb_ok "mqbusd --log=journal starts"
	mqb_check "a publish works" "$MQBUSCTL" pub journal/test hello
	mqb_daemon_stop
	mqb_is "mqbusd --log=journal stops with status 0" "$MQB_DSTATUS" 0
	mqb_is "mqbusd --log=journal wrote nothing on stderr" \
		"$(cat "$MQB_DERR")" ""
	entries "$BUS" >"$MQB_TMP/daemon.json"
	mqb_true "its lines are journal entries of bus $BUS from mqbusd" \
		"$(python3 -c '
import json, sys
es = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ok = len(es) >= 2 and all(e.get("SYSLOG_IDENTIFIER") == "mqbusd" and
                          e.get("_COMM") == "mqbusd" for e in es) and \
    any("serving bus" in e.get("MESSAGE", "") for e in es)
sys.exit(0 if ok else 1)' "$MQB_TMP/daemon.json"; echo $?)" \
		"entries: $(head -c 1500 "$MQB_TMP/daemon.json")"
else
	mqb_notok "mqbusd --log=journal starts"
fi

# The real daemon, the events a person would look for: a slow consumer,
# a message too large for a subscriber, a killed client with its totals, a
# reload with a bad file, delivery stats (SIGUSR1), stopping.
DBUS=$(mqb_new_bus dj)
DCONF=$MQB_TMP/dj.conf
printf '[bus]\nstats_interval = 0\n[topic "slow/#"]\nbacklog = 2\noverflow = drop-new\n' \
	>"$DCONF"
BUS_SAVED=$BUS
BUS=$DBUS
export MQBUS_BUS=$DBUS
if mqb_daemon_start notify --log=journal -c "$DCONF"; then
	mqb_ok "mqbusd --log=journal -c FILE starts"
	DJPID=$MQB_DPID
	mqb_sub_start "$MQB_TMP/slow.out" 'slow/#'
	SLOWPID=$MQB_SPID
	mqb_sub_start "$MQB_TMP/big.out" 'big/#'
	BIGPID=$MQB_SPID
	kill -STOP "$SLOWPID"
	for i in $(seq 1 20); do
		"$MQBUSCTL" pub slow/x "m$i" >/dev/null 2>&1
	done
	head -c 5000 /dev/zero | tr '\0' x |
		MQBUS_QUEUE_MSGSIZE=8192 "$MQBUSCTL" pub big/one - >/dev/null 2>&1
	kill -CONT "$SLOWPID"
	mqb_wait_for 5000 eval "[ \$(grep -c . '$MQB_TMP/slow.out') -ge 12 ]"
	sleep 0.3
	SLOW_GOT=$(grep -c . "$MQB_TMP/slow.out")
	mqb_is "the stopped subscriber got rx (10) plus the backlog (2)" \
		"$SLOW_GOT" 12
	kill -KILL "$SLOWPID"
	kill -TERM "$BIGPID"
	mqb_wait_for 5000 eval "[ \"\$(mqb_stat clients)\" = 0 ]"
	printf '[bus]\nstats_interval = 0\nbogus_key = 1\n' >"$DCONF"
	kill -HUP "$DJPID"
	sleep 0.3
	kill -USR1 "$DJPID"
	sleep 0.3
	mqb_daemon_stop
	mqb_is "mqbusd stops with status 0" "$MQB_DSTATUS" 0
	entries "$DBUS" >"$MQB_TMP/dj.json"
	py_checks - "$MQB_TMP/dj.json" "$SLOW_GOT" "$DCONF" <<'PYEOF'
import json, sys
es = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
got, conf = int(sys.argv[2]), sys.argv[3]
def of(mid, **want):
    return [e for e in es if e.get("MESSAGE_ID") == mid and
            all(e.get(k) == v for k, v in want.items())]
def result(ok, name, detail=""):
    print(("PASS %s" % name) if ok else ("FAIL %s: %s" % (name, detail)))
STARTED = "01669a6502fa4b74b41a0051c4f51f73"
STOPPING = "f233fabb4a6e42ae8d86f048288f045c"
REFUSED = "a2cb6b19279247aaad76c3340331abdb"
CONNECTED = "7ebfee848c024a309c56ee6c9cde254f"
LEFT = "2eb04e480a01413793a681e59d22bb66"
SLOW = "9c803ae837d9457987cb8213520a018a"
LARGE = "bd474e1a4e6745619d0292394a62cfcc"
SBUS = "5099115783a4474cafa17e89f6eb24b7"
STOPIC = "990a879b1b944b9688ff00aa31a8b2c2"
result(len(of(STARTED, MQBUS_CONFIG_FILE=conf)) == 1,
       "daemon: one 'started' entry naming the config file")
c = of(CONNECTED)
result(len(c) >= 23 and all(e.get("MQBUS_CLIENT_COMM") == "mqbusctl"
                            for e in c),
       "daemon: 'client connected' for every client, with its comm",
       "%d entries" % len(c))
s = of(SLOW, MQBUS_TOPIC="slow/x", MQBUS_POLICY="drop-new")
result(len(s) == 1 and int(s[0].get("MQBUS_COUNT", 0)) == 1,
       "daemon: one (rate-limited) 'slow consumer' entry for slow/x",
       str(s))
l = of(LARGE, MQBUS_TOPIC="big/one")
result(len(l) == 1 and l[0].get("MQBUS_QUEUE_MSGSIZE") == "2048" and
       int(l[0].get("MQBUS_SIZE", 0)) > 5000,
       "daemon: 'message too large' for big/one, with its size", str(l))
left = [e for e in of(LEFT) if e.get("MQBUS_DELIVERED") not in (None, "0")]
slow = [e for e in left if e.get("MQBUS_DROPPED_BACKLOG") == "8"]
result(len(slow) == 1 and int(slow[0]["MQBUS_DELIVERED"]) == got and
       slow[0].get("MQBUS_REASON") == "process exited",
       "daemon: the killed subscriber's 'left' entry: delivered = what it "
       "printed (%d), dropped_backlog 8" % got, str(left))
big = [e for e in of(LEFT) if e.get("MQBUS_DROPPED_TOO_LARGE") == "1"]
result(len(big) == 1, "daemon: the other subscriber left with 1 too large")
r = of(REFUSED, MQBUS_CONFIG_FILE=conf, MQBUS_CONFIG_LINE="3")
result(len(r) == 1, "daemon: 'reload refused' names file and line 3", str(of(REFUSED)))
b = of(SBUS)
result(len(b) == 1 and b[0].get("MQBUS_PUBLISHED") == "21" and
       b[0].get("MQBUS_DELIVERED") == str(got) and
       b[0].get("MQBUS_DROPPED_BACKLOG") == "8" and
       b[0].get("MQBUS_DROPPED_TOO_LARGE") == "1" and
       int(b[0].get("MQBUS_LATENCY_MAX_NSEC", 0)) > 0,
       "daemon: SIGUSR1 wrote one bus entry with the interval's figures",
       str(b))
t = {e.get("MQBUS_TOPIC"): e for e in of(STOPIC)}
result(t.get("slow/x", {}).get("MQBUS_PUBLISHED") == "20" and
       t.get("slow/x", {}).get("MQBUS_DROPPED_BACKLOG") == "8" and
       t.get("big/one", {}).get("MQBUS_DROPPED_TOO_LARGE") == "1",
       "daemon: topic entries for slow/x and big/one", str(list(t)))
result(len(of(STOPPING, MQBUS_REASON="SIGTERM")) == 1,
       "daemon: one 'stopping' entry, why SIGTERM", str(of(STOPPING)))
PYEOF
	"$MQBUSCTL" -b "$DBUS" history -D "$JDIR" --json >"$MQB_TMP/djh.json" \
		2>"$MQB_TMP/djh.err"
	mqb_is "history reads the daemon's own entries" "$?" 0
	mqb_like "... with the interval's 21 published" \
		"$(tr -d ' \n' <"$MQB_TMP/djh.json")" '"published":21'
else
	mqb_notok "mqbusd --log=journal -c FILE starts"
fi
BUS=$BUS_SAVED
unset MQBUS_BUS

# Access policy and quota refusals: one entry each, naming the rule or
# the bound; a burst of
# 1000 from 1000 clients of one uid writes at most one entry per 10 s
# interval (the limiter's key is uid and action), and the entry after the
# interval reports those held back, so the counts add up.
PBUS=$(mqb_new_bus pj)
PCONF=$MQB_TMP/pj.conf
printf '[bus]\nstats_interval = 0\nmax_subscriptions = 1\n[policy]\ndefault = allow\ndeny = publish,subscribe * topic=secret/#\n' \
	>"$PCONF"
BUS_SAVED=$BUS
BUS=$PBUS
export MQBUS_BUS=$PBUS
if mqb_daemon_start notify --log=journal -c "$PCONF"; then
	mqb_ok "mqbusd --log=journal with a [policy] starts"
	mqb_check_status "a refused publish fails (exit 1)" 1 \
		"$MQBUSCTL" pub secret/one x
	mqb_check_status "a refused subscription fails (exit 1)" 1 \
		"$MQBUSCTL" sub 'secret/#' -n 1 -t 2000
	mqb_check "an allowed publish works" "$MQBUSCTL" pub open/one x
	mqb_check_status "a 2nd subscription of a client is refused (exit 1)" \
		1 "$MQBUSCTL" sub open/a open/b -n 1 -t 2000
	mqb_like "... naming the bound" "$MQB_ERR" \
		'too many subscriptions: at most 1 per client'
	mqb_is "... counted (quota_refused)" "$(mqb_stat quota_refused)" 1
	entries "$PBUS" >"$MQB_TMP/pj1.json"
	t0=$(mqb_now_ms)
	seq 1 1000 | xargs -P 4 -I '{}' \
		"$MQBUSCTL" pub 'secret/burst/{}' x >/dev/null 2>&1
	t1=$(mqb_now_ms)
	mqb_is "the burst: 1000 more refusals counted (policy_refused)" \
		"$(mqb_stat policy_refused)" 1002
	entries "$PBUS" >"$MQB_TMP/pj2.json"
	# past the limiter's interval, one more: its entry carries the rest
	sleep 10.5
	"$MQBUSCTL" pub secret/last x >/dev/null 2>&1
	mqb_daemon_stop
	mqb_is "mqbusd stops with status 0" "$MQB_DSTATUS" 0
	entries "$PBUS" >"$MQB_TMP/pj3.json"
	py_checks - "$MQB_TMP/pj1.json" "$MQB_TMP/pj2.json" \
		"$MQB_TMP/pj3.json" "$PCONF" $(((t1 - t0) / 1000)) <<'PYEOF'
import json, sys
f1, f2, f3, conf, secs = sys.argv[1:6]
POLICY = "8881371cad3a41039b0ee8f7ab482d91"
def load(f):
    return [e for e in (json.loads(l) for l in open(f) if l.strip())
            if e.get("MESSAGE_ID") == POLICY]
def result(ok, name, detail=""):
    print(("PASS %s" % name) if ok else ("FAIL %s: %s" % (name, detail)))
def act(es, a):
    return [e for e in es if e.get("MQBUS_ACTION") == a]
es = load(f1)
want = {"MQBUS_TOPIC": "secret/one", "MQBUS_RULE": conf + ":6",
        "MQBUS_CONFIG_FILE": conf, "MQBUS_CONFIG_LINE": "6",
        "MQBUS_COUNT": "1", "MQBUS_CLIENT_UID": "0",
        "MQBUS_CLIENT_COMM": "mqbusctl", "PRIORITY": "5"}
p = act(es, "publish")
result(len(p) == 1 and all(p[0].get(k) == v for k, v in want.items()) and
       "MQBUS_CLIENT_ID" in p[0] and "MQBUS_CLIENT_PID" in p[0] and
       p[0].get("MESSAGE", "").endswith(
           "publish to secret/one denied by %s:6" % conf),
       "policy: a refused publish wrote exactly one entry, with the rule",
       repr(p))
s = act(es, "subscribe")
result(len(s) == 1 and s[0].get("MQBUS_TOPIC") == "secret/#" and
       s[0].get("MQBUS_RULE") == conf + ":6" and
       s[0].get("MQBUS_COUNT") == "1",
       "policy: a refused subscription wrote exactly one entry", repr(s))
result(len(es) == 2, "policy: the allowed publish wrote none",
       "%d entries" % len(es))
QUOTA = "46127e903089437097702c2648c27b7b"
q = [e for e in (json.loads(l) for l in open(f1) if l.strip())
     if e.get("MESSAGE_ID") == QUOTA]
result(len(q) == 1 and q[0].get("MQBUS_QUOTA") == "max_subscriptions" and
       q[0].get("MQBUS_TOPIC") == "open/b" and
       q[0].get("MQBUS_REASON") ==
       "too many subscriptions: at most 1 per client" and
       q[0].get("MQBUS_COUNT") == "1" and
       q[0].get("MQBUS_CLIENT_COMM") == "mqbusctl",
       "quota: the refused subscription wrote exactly one entry, naming "
       "the bound", repr([(e.get("MQBUS_QUOTA"), e.get("MQBUS_TOPIC"))
                          for e in q]))
burst = act(load(f2), "publish")
bound = 1 + int(secs) // 10 + 1
result(len(burst) <= bound,
       "policy: 1000 refusals in %s s wrote %d publish entries (at most "
       "%d)" % (secs, len(burst), bound),
       repr([(e.get("MQBUS_TOPIC"), e.get("MQBUS_CLIENT_ID"))
             for e in burst[:5]]))
last = act(load(f3), "publish")
total = sum(int(e.get("MQBUS_COUNT", 0)) for e in last)
result(total == 1002 and last[-1].get("MQBUS_TOPIC") == "secret/last",
       "policy: the entry after the interval reports the held-back ones "
       "(counts add up to 1002)",
       "%d; %r" % (total, [(e.get("MQBUS_TOPIC"), e.get("MQBUS_COUNT"))
                           for e in last]))
PYEOF
else
	mqb_notok "mqbusd --log=journal with a [policy] starts"
fi
BUS=$BUS_SAVED
unset MQBUS_BUS

if mqb_daemon_start notify --log=stderr; then
	mqb_daemon_stop
	mqb_like "mqbusd --log=stderr writes plain lines" \
		"$(head -n 1 "$MQB_DERR")" '^mqbusd: serving bus'
else
	mqb_notok "mqbusd --log=stderr starts"
fi

# ------------------------------------------------------------ catalog

ROOT=$MQB_TMP/root
mkdir -p "$ROOT/usr/lib/systemd/catalog"
cp "$top_srcdir/daemon/mqbus.catalog" "$ROOT/usr/lib/systemd/catalog/"
journalctl --root "$ROOT" --update-catalog >"$MQB_TMP/cat.out" 2>&1
mqb_is "journalctl --update-catalog takes mqbus.catalog" "$?" 0
mqb_is "... without a complaint" "$(cat "$MQB_TMP/cat.out")" ""
n=0
for id in $(sed -n 's/^#define LOG_ID_[A-Z_]* "\([0-9a-f]*\)"$/\1/p' \
	"$top_srcdir/daemon/log-ids.h"); do
	if journalctl --root "$ROOT" --dump-catalog "$id" 2>/dev/null |
		grep -q '^Subject: .*mqbus'; then
		n=$((n + 1))
	else
		mqb_diag "no catalog text for $id"
	fi
done
mqb_is "the database explains all 18 ids" "$n" 18
mqb_is "--list-catalog shows 18 entries defined by mqbus" \
	"$(journalctl --root "$ROOT" --list-catalog 2>/dev/null |
		grep -c ' mqbus: ')" 18

# journalctl -x reads the database at its fixed place: put ours there,
# in this namespace only.
mkdir -p /var/lib/systemd/catalog 2>/dev/null
if mount --bind "$ROOT/var/lib/systemd/catalog" /var/lib/systemd/catalog; then
	journalctl -D "$JDIR" -x --no-pager -o short \
		MESSAGE_ID=2eb04e480a01413793a681e59d22bb66 "MQBUS_BUS=$EBUS" \
		>"$MQB_TMP/x.out" 2>&1
	mqb_like "journalctl -x: the subject, with the bus filled in" \
		"$(cat "$MQB_TMP/x.out")" "Subject: A client left mqbus bus $EBUS"
	mqb_like "journalctl -x: the explanation, with the figures filled in" \
		"$(sed 's/^\(-- \|░░ \)//' "$MQB_TMP/x.out" | tr '\n' ' ' |
			tr -s ' ')" \
		'In its life it published 120 messages, sent 11 requests and 10 replies; 340 messages were delivered'
	umount /var/lib/systemd/catalog
else
	mqb_notok "bind-mount the catalog database for journalctl -x"
fi

# ------------------------------------------------------------ history

HBUS=$(mqb_new_bus hi)
emit() { "$LOG_EMIT" --log=journal -b "$HBUS" "$@" >/dev/null; }
emit stats-bus 1 10000000 published=100 delivered=300 total.published=100
emit stats-bus 2 10000000 published=200 delivered=600 dropped_backlog=5 \
	requests=20 replies=20 total.published=300
emit stats-topic 2 10000000 a/b published=30 delivered=90
emit stats-bus 3 5000000 published=50 delivered=100 dropped_backlog=20 \
	dropped_too_large=5 requests=10 replies=5 no_responders=5 \
	total.published=350 clients=3 p99=1234
emit stats-topic 3 5000000 a/b published=10
emit stats-topic 3 5000000 c/d published=7
emit stats-topic 3 5000000 - other=4 published=8
# another bus's figures must not show
"$LOG_EMIT" --log=journal -b "$EBUS" stats-bus 9 1000000 published=999999 \
	>/dev/null
mqb_wait_for 5000 count_at_least "$HBUS" 7
sleep 1.2
SPLIT=$(date +%s.%N)
sleep 0.2
emit stats-bus 4 20000000 published=40 delivered=40 total.published=390
mqb_wait_for 5000 count_at_least "$HBUS" 8

hist() {
	COLUMNS=100 "$MQBUSCTL" -b "$HBUS" history -D "$JDIR" "$@"
}
# the rates of the table's rows: "INTERVAL PUB DEL DROP COAL REQ REP NORESP"
rows() {
	awk '/^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] /{
		$1 = ""; $2 = ""; sub(/^ +/, "");
		print }'
}
mqb_check_status "history prints a table" 0 hist
mqb_is "history: the rates of each interval" "$(rows <<<"$MQB_OUT")" \
"10.0s 10.00 30.00 0.00 0.00 0.00 0.00 0.00
10.0s 20.00 60.00 0.50 0.00 2.00 2.00 0.00
5.0s 10.00 20.00 5.00 0.00 2.00 1.00 1.00
20.0s 2.00 2.00 0.00 0.00 0.00 0.00 0.00"
mqb_is "history: the sparkline shows when drops began" \
	"$(grep '^dropped  ' <<<"$MQB_OUT")" \
	"dropped                   ▁█  max 5.00/s"
mqb_is "history: published, scaled to its largest rate" \
	"$(grep '^published ' <<<"$MQB_OUT")" \
	"published                ▄█▄▁ max 20.00/s"
mqb_like "history: a line per reason of the drops" \
	"$(grep '^dropped: ' <<<"$MQB_OUT" | cut -c1-24 | tr '\n' '|')" \
	'^dropped: backlog full *\|dropped: too large *\|$'
mqb_like "history: names the first interval with drops" "$MQB_OUT" \
	'First drops in the interval ending [0-9-]+ [0-9:]+\.'

mqb_check_status "history --until splits" 0 hist --until "@$SPLIT"
mqb_is "... the first three" "$(rows <<<"$MQB_OUT" | cut -d' ' -f2 | tr '\n' ' ')" \
	"10.00 20.00 10.00 "
mqb_check_status "history --since splits" 0 hist --since "@$SPLIT"
mqb_is "... the last one" "$(rows <<<"$MQB_OUT" | cut -d' ' -f2 | tr '\n' ' ')" \
	"2.00 "
mqb_check_status "history --topic a/b" 0 hist --topic a/b
mqb_is "... its own rates" "$(rows <<<"$MQB_OUT" | cut -d' ' -f1-3 | tr '\n' ' ')" \
	"10.0s 3.00 9.00 5.0s 2.00 0.00 "
mqb_check_status "history --since in the future" 0 hist --since '@4000000000'
mqb_like "... says there is nothing" "$MQB_OUT" '^No delivery stats of bus .* in that time\.$'

mqb_check_status "history --json" 0 hist --json
printf '%s\n' "$MQB_OUT" >"$MQB_TMP/history.json"
cat >"$MQB_TMP/check_history.py" <<'EOF'
import json, sys

def result(ok, name, detail=""):
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail))

try:
    doc = json.load(open(sys.argv[1]))
except ValueError as e:
    result(False, "history --json is valid JSON", str(e))
    sys.exit(0)
result(True, "history --json is valid JSON")
result(doc.get("bus") == sys.argv[2] and doc.get("topic") is None,
       "history --json: bus and topic", repr(doc)[:200])
es = doc.get("entries", [])
result([e["seq"] for e in es] == [1, 2, 3, 4], "history --json: 4 entries",
       repr([e.get("seq") for e in es]))
want = [
    (10000000, dict(published=100, delivered=300), 100),
    (10000000, dict(published=200, delivered=600, dropped_backlog=5,
                    dropped=5, requests=20, replies=20), 300),
    (5000000, dict(published=50, delivered=100, dropped_backlog=20,
                   dropped_too_large=5, dropped=25, requests=10, replies=5,
                   no_responders=5), 350),
    (20000000, dict(published=40, delivered=40), 390),
]
names = ["published", "delivered", "dropped_backlog", "dropped_oldest",
         "dropped_too_large", "dropped_disconnect", "dropped_error",
         "coalesced", "requests", "replies", "no_responders", "dropped"]
for i, (usec, delta, total) in enumerate(want):
    if i >= len(es):
        break
    e = es[i]
    full = {n: delta.get(n, 0) for n in names}
    ok = (e["interval_usec"] == usec and e["delta"] == full and
          e["total"]["published"] == total and
          all(isinstance(e["delta"][n], int) for n in names) and
          all(e["rate"][n] == full[n] * 1e6 / usec for n in names) and
          isinstance(e["realtime_usec"], int) and
          e["realtime_usec"] > 1500000000000000)
    result(ok, "history --json: entry %d exact" % (i + 1), json.dumps(e))
result(es[2].get("clients") == 3 and es[2].get("latency_p99_nsec") == 1234,
       "history --json: the gauges", json.dumps(es[2]) if len(es) > 2 else "")
EOF
py_checks "$MQB_TMP/check_history.py" "$MQB_TMP/history.json" "$HBUS"

mqb_check_status "history --json --topic - has no topic named '-'" 0 \
	hist --json --topic -
mqb_like "... and so no entries" "$MQB_OUT" '"entries":\[\]\}$'
mqb_check_status "history: a bad time is a usage error" 2 hist --since yesterday-ish
mqb_like "... that quotes it" "$MQB_ERR" "cannot read the time 'yesterday-ish'"
mqb_check_status "history: --since after --until is a usage error" 2 \
	hist --since @2000 --until @1000
mqb_check_status "history: a journal directory that is not there" 1 \
	"$MQBUSCTL" history -D "$MQB_TMP/nonexistent"
mqb_like "... is named" "$MQB_ERR" 'cannot open the journal in .*nonexistent'

mqb_done

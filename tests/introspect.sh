#!/bin/bash
# SPDX-License-Identifier: MIT
#
# introspect.sh - mqbusctl stats --topics/--clients/--json, list, topics
# and top against the real mqbusd, and the QUERY answers behind them:
# clients of a known comm with their subscriptions, a stopped subscriber's
# queue depth and pending messages, each topic's published, delivered and
# dropped, patterns with their groups, retained values and timers, rates
# in top --once, 300 clients in an answer of many parts, rx queues too
# small for a line, and what another (non-root) user sees.

. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

mqb_init
# its clients end with the daemon at the end (tests/restart.sh: reconnect)
MQBUS_RECONNECT=0
export MQBUS_RECONNECT
ME=$(id -u)
CTL_TEST=$top_builddir/tests/helpers/mqbusctl-test

command -v python3 >/dev/null 2>&1 || mqb_bail "python3 is installed" \
	"the JSON checks need python3"

# The clients run as "isub", a copy of mqbusctl (a real binary), so that
# their comm is known; the copy is readable by another user too.
RUN=$MQB_TMP/run
mkdir -p "$RUN"
chmod 755 "$MQB_TMP" "$RUN"
cp "$CTL_TEST" "$RUN/isub" && cp -P "$top_builddir"/client/.libs/libmqbus.so* \
	"$RUN/" && chmod -R a+rX "$RUN"
mqb_true "mqbusctl copied as isub" $?
ISUB=(env LD_LIBRARY_PATH="$RUN" "$RUN/isub")

# No stats rounds: the topic counters of the interval stay as published.
# drop/# has a backlog of 1, so a stopped subscriber's copies are dropped.
CONF=$MQB_TMP/mqbusd.conf
cat >"$CONF" <<'EOF'
[bus]
max_clients_per_uid = 1000
# (300 clients of root below: above the default per-uid bound)
stats_interval = 0

[topic "drop/#"]
backlog = 1
overflow = drop-new
EOF
ulimit -n 4096 2>/dev/null
if ! mqb_daemon_start notify --config="$CONF"; then
	mqb_bail "mqbusd starts with the test config"
fi
mqb_ok "mqbusd starts with the test config"

# subscribed_to N: the bus counts at least N subscriptions
subscribed_to() {
	mqb_stat_ge subscriptions "$1"
}

# start_isub OUTVAR MAXMSG ARGS...: starts isub sub ARGS in the
# background, its queues MAXMSG messages deep
start_isub() {
	local var=$1 maxmsg=$2
	shift 2
	MQBUS_QUEUE_MAXMSG=$maxmsg "${ISUB[@]}" sub "$@" -t 600000 \
		>/dev/null 2>"$MQB_TMP/isub.$var.err" &
	mqb_track $!
	printf -v "$var" '%s' "$!"
}

start_isub S1 10 'intro/#' other/x
start_isub S2 10 'intro/+' --group workers
start_isub S3 10 'intro/+' --group workers
# the slow one: 4 messages fill its rx queue
start_isub S4 4 slow/x drop/x
mqb_wait_for 10000 subscribed_to 5
mqb_true "four isub subscribers subscribed" $? \
	"subscriptions: $(mqb_stat subscriptions)"
kill -STOP "$S4"

for i in 1 2 3; do "$MQBUSCTL" pub intro/a "a$i"; done
for i in 1 2; do "$MQBUSCTL" pub other/x "x$i"; done
for i in $(seq 10); do "$MQBUSCTL" pub slow/x "s$i"; done
for i in $(seq 5); do "$MQBUSCTL" pub drop/x "d$i"; done
"$MQBUSCTL" pub --retain intro/r/1 abc
"$MQBUSCTL" pub --retain intro/r/2 hello
"$MQBUSCTL" pub --delay 600000 --every 600000 intro/tick t >/dev/null
mqb_wait_for 5000 mqb_settled "$BUS"

# ------------------------------------------------------------ list

mqb_check_status "list --json exits 0" 0 "$MQBUSCTL" list --json
LIST_JSON=$MQB_OUT
CHECK=$(python3 -c '
import json, sys
rows = json.loads(sys.argv[1])
s1, s2, s3, s4 = (int(x) for x in sys.argv[2:6])
me = int(sys.argv[6])
by = {r["pid"]: r for r in rows}
want = {s1: 2, s2: 1, s3: 1, s4: 2}
for pid, subs in want.items():
    r = by.get(pid)
    assert r, "pid %d missing from %s" % (pid, sorted(by))
    assert r["comm"] == "isub", r
    assert r["uid"] == me and r["user"] == "root", r
    assert r["subs"] == subs, (pid, r["subs"], subs)
    for k in ("id", "rx_depth", "rx_maxmsg", "pending", "published",
              "delivered", "dropped", "tx_depth", "pending_bytes"):
        assert isinstance(r[k], int), (k, r)
slow = by[s4]
assert slow["rx_maxmsg"] == 4 and slow["rx_depth"] == 4, slow
assert slow["pending"] == 6, slow
assert slow["delivered"] == 4 and slow["dropped"] == 5, slow
assert slow["pending_bytes"] > 6 * 65, slow
assert by[s1]["delivered"] == 7 and by[s1]["dropped"] == 0, by[s1]
assert by[s2]["delivered"] + by[s3]["delivered"] == 3, (by[s2], by[s3])
assert abs(by[s2]["delivered"] - by[s3]["delivered"]) == 1
print("ok")
' "$LIST_JSON" "$S1" "$S2" "$S3" "$S4" "$ME" 2>&1)
mqb_is "list --json: comm, uid, user, subs, queue depth, pending, delivered, dropped" \
	"$CHECK" ok

mqb_check_status "list exits 0" 0 "$MQBUSCTL" list
LIST=$MQB_OUT
mqb_like "list has the header of every column" "$(head -n 1 <<<"$LIST")" \
	'^ +ID +UID +USER +PID +COMM +SUBS +QUEUE +PENDING +PUBLISHED +DELIVERED +DROPPED$'
ROW=$(awk -v pid="$S4" '$4 == pid' <<<"$LIST" | tr -s ' ' | sed 's/^ //')
mqb_like "list: the stopped subscriber's row (queue 4/4, 6 pending, 4 delivered, 5 dropped)" \
	"$ROW" "^[0-9]+ $ME root $S4 isub 2 4/4 6 0 4 5\$"
ROW=$(awk -v pid="$S1" '$4 == pid' <<<"$LIST" | tr -s ' ' | sed 's/^ //')
mqb_like "list: the first subscriber's row" "$ROW" \
	"^[0-9]+ $ME root $S1 isub 2 0/10 0 0 7 0\$"

# ------------------------------------------------------------ stats

mqb_check_status "stats --topics exits 0" 0 "$MQBUSCTL" stats --topics
STATS=$MQB_OUT
topic_row() {
	awk -v t="$1" '$1 == t' <<<"$STATS" | tr -s ' '
}
mqb_is "stats --topics: intro/a published 3, delivered 6, dropped 0" \
	"$(topic_row intro/a)" "intro/a 3 6 0 0 0 0 0"
mqb_is "stats --topics: other/x published 2, delivered 2" \
	"$(topic_row other/x)" "other/x 2 2 0 0 0 0 0"
mqb_is "stats --topics: slow/x published 10, delivered 4 (6 waiting)" \
	"$(topic_row slow/x)" "slow/x 10 4 0 0 0 0 0"
mqb_is "stats --topics: drop/x published 5, all 5 dropped" \
	"$(topic_row drop/x)" "drop/x 5 0 5 0 0 0 0"
mqb_like "stats --topics keeps the plain key=value lines first" \
	"$(head -n 1 <<<"$STATS")" "^bus=$BUS\$"

mqb_check_status "stats --json --topics --clients exits 0" 0 \
	"$MQBUSCTL" stats --json --topics --clients
CHECK=$(python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["bus"] == sys.argv[2], d["bus"]
assert d["published"] >= 20 and d["dropped"] == 5, d
t = {x["topic"]: x for x in d["topics"]}
assert t["drop/x"]["dropped_backlog"] == 5 and t["drop/x"]["published"] == 5
assert t["slow/x"]["waiting"] == 6, t["slow/x"]
assert t["intro/a"]["delivered"] == 6, t["intro/a"]
pids = {c["pid"] for c in d["clients"]}
assert int(sys.argv[3]) in pids, pids
assert all(c["user"] for c in d["clients"])
print("ok")
' "$MQB_OUT" "$BUS" "$S4" 2>&1)
mqb_is "stats --json: bus counters, topics and clients as JSON" "$CHECK" ok
mqb_is "plain stats is unchanged: key=value lines only" \
	"$("$MQBUSCTL" stats | grep -vc '^[a-z_]*=')" 0

# ------------------------------------------------------------ topics

ID() {
	python3 -c '
import json, sys
print([r["id"] for r in json.loads(sys.argv[1]) if r["pid"] == int(sys.argv[2])][0])
' "$LIST_JSON" "$1"
}
I1=$(ID "$S1")
I2=$(ID "$S2")
I3=$(ID "$S3")
I4=$(ID "$S4")
mqb_check_status "topics exits 0" 0 "$MQBUSCTL" topics
TOPICS=$MQB_OUT
pat_row() {
	awk -v p="$1" '$1 == p' <<<"$TOPICS" | tr -s ' '
}
# the members by id, whichever of the two connected first
GM=$(printf '%s\n' "$I2" "$I3" | sort -n | paste -sd,)
mqb_is "topics: intro/+ has group workers of two members" \
	"$(pat_row 'intro/+')" "intro/+ - - workers:$GM"
mqb_is "topics: intro/# has its plain subscriber" \
	"$(pat_row 'intro/#')" "intro/# $I1 - -"
mqb_is "topics: drop/x has the stopped subscriber" \
	"$(pat_row 'drop/x')" "drop/x $I4 - -"
mqb_is "topics: retained intro/r/1, 3 bytes" \
	"$(pat_row intro/r/1 | cut -d' ' -f1-4)" "intro/r/1 3 0 $ME"
mqb_is "topics: retained intro/r/2, 5 bytes" \
	"$(pat_row intro/r/2 | cut -d' ' -f1-4)" "intro/r/2 5 0 $ME"
TROW=$(awk '$2 == "intro/tick"' <<<"$TOPICS" | tr -s ' ' | sed 's/^ //')
mqb_like "topics: the timer intro/tick, every 600000 ms, detached" \
	"$TROW" "^[0-9]+ intro/tick [0-9]+ 600000 0 yes $ME [0-9]+\$"

mqb_check_status "topics --json exits 0" 0 "$MQBUSCTL" topics --json
CHECK=$(python3 -c '
import json, sys
d = json.loads(sys.argv[1])
i1, i2, i3 = (int(x) for x in sys.argv[2:5])
p = {x["pattern"]: x for x in d["subscriptions"]}
assert p["intro/+"]["groups"] == {"workers": sorted([i2, i3])}, p["intro/+"]
assert p["intro/+"]["subscribers"] == [], p["intro/+"]
assert p["intro/#"]["subscribers"] == [i1] and p["intro/#"]["groups"] == {}
r = {x["topic"]: x for x in d["retained"]}
assert r["intro/r/1"]["bytes"] == 3 and r["intro/r/2"]["bytes"] == 5, r
t = [x for x in d["timers"] if x["topic"] == "intro/tick"]
assert len(t) == 1 and t[0]["period_ms"] == 600000 and t[0]["detached"] == 1
assert t[0]["key"] is None, t
print("ok")
' "$MQB_OUT" "$I1" "$I2" "$I3" 2>&1)
mqb_is "topics --json: groups, subscribers, retained and timers" "$CHECK" ok

# ------------------------------------------------------------ top

# 20 publishes of rate/x, 50 ms apart, while top samples for 2 s
(for i in $(seq 20); do "$MQBUSCTL" pub rate/x "r$i"; sleep 0.05; done) &
PUBLOOP=$!
mqb_track "$PUBLOOP"
sleep 0.2
mqb_check_status "top --once -d 2000 exits 0" 0 "$MQBUSCTL" top --once -d 2000
TOP=$MQB_OUT
mqb_wait_pid "$PUBLOOP" 20000
printf '%s' "$TOP" | grep -q $'\033'
mqb_true "top --once writes no terminal escapes" $((! $?))
mqb_like "top --once: the totals line" "$(head -n 1 <<<"$TOP")" \
	"^bus $BUS: [0-9]+ clients, [0-9]+ published"
mqb_like "top --once: intro/a with its totals and no rate" \
	"$(awk '$1 == "intro/a"' <<<"$TOP" | tr -s ' ')" \
	'^intro/a 0.0 0.0 0.0 3 6 0$'
RATE=$(awk '$1 == "rate/x" { print $2 }' <<<"$TOP")
python3 -c 'import sys; r = float(sys.argv[1]); sys.exit(not 2 <= r <= 25)' \
	"${RATE:-x}" 2>/dev/null
mqb_true "top --once: rate/x publishes at 2..25 per second (got '$RATE')" $? \
	"$TOP"
mqb_like "top --once: the stopped subscriber's row" \
	"$(awk -v i="$I4" '$1 == i' <<<"$TOP" | tr -s ' ' | sed 's/^ //')" \
	"^$I4 root isub 0.0 0.0 0.0 4/4 6\$"
timeout 3 "$MQBUSCTL" top -d 200 >"$MQB_TMP/top.live" 2>&1
grep -q $'\033\[H\033\[2J' "$MQB_TMP/top.live"
mqb_true "top (live) clears the screen with ANSI escapes each frame" $?
[ "$(grep -c 'PUB/S' "$MQB_TMP/top.live")" -ge 4 ]
mqb_true "top (live) refreshes: several frames in 3 s at -d 200" $?

mqb_check_status "top -d 5 is a usage error" 2 "$MQBUSCTL" top -d 5
mqb_check_status "list --topics is a usage error" 2 "$MQBUSCTL" list --topics

# ------------------------------------------------------------ small rx

mqb_check_status "list with 512-byte rx messages fails" 1 \
	env MQBUS_QUEUE_MSGSIZE=512 "$MQBUSCTL" list
mqb_like "... saying the rx messages cannot hold one line" "$MQB_ERR" \
	'cannot hold one line.*use at least'

# ------------------------------------------------------------ 300 clients

if [ "${MQBUS_TEST_PRIVATE_IPC:-}" = 1 ] &&
	echo 1024 >/proc/sys/fs/mqueue/queues_max 2>/dev/null; then
	MASS=()
	for i in $(seq 300); do
		MQBUS_QUEUE_MAXMSG=1 MQBUS_QUEUE_MSGSIZE=400 \
			"${ISUB[@]}" sub mass/x -t 600000 >/dev/null 2>&1 &
		mqb_track $!
		MASS+=("$!")
	done
	mqb_wait_for 60000 subscribed_to 305
	mqb_true "300 more clients subscribed" $? \
		"subscriptions: $(mqb_stat subscriptions)"
	printf '%s\n' "${MASS[@]}" >"$MQB_TMP/mass.pids"
	mqb_check_status "list --json with 300 more clients exits 0" 0 \
		"$MQBUSCTL" list --json
	CHECK=$(python3 -c '
import json, sys
rows = json.loads(sys.argv[1])
mass = {int(x) for x in open(sys.argv[2]).read().split()}
ids = [r["id"] for r in rows]
assert len(ids) == len(set(ids)), "an id listed twice"
assert ids == sorted(ids), "not in id order"
got = {r["pid"] for r in rows if r["pid"] in mass}
assert got == mass, "missing %d" % len(mass - got)
assert all(r["comm"] == "isub" and r["subs"] == 1 for r in rows
           if r["pid"] in mass)
print("ok %d" % len(rows))
' "$MQB_OUT" "$MQB_TMP/mass.pids" 2>&1)
	mqb_like "list --json: all 300 clients, once each, in id order" \
		"$CHECK" '^ok 30[0-9]$'
	[ "${#MQB_OUT}" -gt 20000 ]
	mqb_true "the answer (${#MQB_OUT} bytes) took many 2048-byte parts" $?
	mqb_check_status "topics with 300 subscribers of one pattern" 0 \
		"$MQBUSCTL" topics --json
	N=$(python3 -c '
import json, sys
d = json.loads(sys.argv[1])
print([len(x["subscribers"]) for x in d["subscriptions"]
       if x["pattern"] == "mass/x"][0])' "$MQB_OUT" 2>&1)
	mqb_is "topics: mass/x has 300 subscribers" "$N" 300
	for pid in "${MASS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${MASS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	mqb_wait_for 20000 mqb_settled "$BUS"
else
	mqb_skip "300 clients" "needs a private IPC namespace (queues_max)"
fi

# ------------------------------------------------------------ another user

TUSER=${MQBUS_TEST_USER:-mqbus-test}
if [ "$ME" = 0 ] && command -v setpriv >/dev/null 2>&1 &&
	{ id -u "$TUSER" >/dev/null 2>&1 ||
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin --user-group "$TUSER" \
			>/dev/null 2>&1; }; then
	TUID=$(id -u "$TUSER")
	TGID=$(id -g "$TUSER")
	AS_USER=(setpriv --reuid="$TUID" --regid="$TGID" --clear-groups --
		env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH="$RUN"
		MQBUS_BUS="$BUS")
	"${AS_USER[@]}" "$RUN/isub" sub user/x -t 600000 >/dev/null 2>&1 &
	UPID=$!
	mqb_track "$UPID"
	mqb_wait_for 10000 subscribed_to 6
	OUTU=$("${AS_USER[@]}" "$RUN/isub" list --json 2>&1)
	CHECK=$(python3 -c '
import json, sys
rows = json.loads(sys.argv[1])
tuid, upid, s4 = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
mine = [r for r in rows if r["uid"] == tuid]
other = [r for r in rows if r["uid"] != tuid]
assert any(r["pid"] == upid and r["comm"] == "isub" for r in mine), mine
assert all(r["pid"] is not None and r["comm"] for r in mine), mine
assert other and all(r["pid"] is None and r["comm"] is None for r in other)
assert any(r["pending"] == 6 for r in other), "counters stay visible"
print("ok")
' "$OUTU" "$TUID" "$UPID" "$S4" 2>&1)
	mqb_is "user $TUSER sees its own clients whole, others' without pid and comm" \
		"$CHECK" ok
	OUTU=$("${AS_USER[@]}" "$RUN/isub" topics 2>&1)
	mqb_like "user $TUSER: others' timer pid shown as -" \
		"$(awk '$2 == "intro/tick"' <<<"$OUTU" | tr -s ' ')" \
		" yes $ME -\$"
	kill "$UPID" 2>/dev/null
else
	mqb_skip "another user's view" "needs root, setpriv and useradd"
fi

kill -CONT "$S4"
mqb_daemon_stop
mqb_is "mqbusd exits 0" "$MQB_DSTATUS" 0
mqb_wait_for 5000 mqb_no_queues "$BUS"
mqb_true "no queue of the bus is left" $? "$(mqb_queues "$BUS")"

mqb_done

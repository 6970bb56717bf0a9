#!/bin/bash
# SPDX-License-Identifier: MIT
#
# monitor.sh - mqbusctl monitor against the real mqbusd, and the marks of
# sub --json.
#
# A monitor sees publishes, requests and replies, each marked as which
# (plain and JSON), a reply after its request; it changes no "no
# responders" answer and takes no turn in a queue group; when it falls
# behind (SIGSTOPped) its copies beyond the bus's pending_max are dropped
# and it is told how many, while an ordinary subscriber of the same topic
# loses nothing and no publisher is held up, although the bus's overflow
# policy is "block"; and it is refused to a user who is neither root nor
# the bus owner (MQBUS_TEST_USER, default mqbus-test, made with useradd as
# tests/multiuser.sh does; that part is skipped when not root).  Last,
# sub --json marks requests and writes timestamps that JSON tools keep
# exact.

. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

mqb_init
ME=$(id -u)

command -v python3 >/dev/null 2>&1 || mqb_bail "python3 is installed" \
	"the JSON checks need python3"

# A small backlog, and "block": a monitor that counted as a subscriber
# would hold up the publishers of the gap test below.
PENDING_MAX=4
CONF=$MQB_TMP/mqbusd.conf
printf '[bus]\npending_max = %d\noverflow = block\n' "$PENDING_MAX" >"$CONF"

if ! mqb_daemon_start notify -c "$CONF"; then
	mqb_bail "mqbusd starts with pending_max = $PENDING_MAX, overflow = block"
fi
mqb_ok "mqbusd starts with pending_max = $PENDING_MAX, overflow = block"

# mon_start OUT [MONITOR-ARGS...]: starts `mqbusctl monitor` in the
# background, stdout to OUT, stderr to OUT.err, sets MON_PID, and waits
# until it says that it is in place (or has exited).
mon_start() {
	local out=$1
	shift
	"$MQBUSCTL" monitor "$@" >"$out" 2>"$out.err" &
	MON_PID=$!
	mqb_track "$MON_PID"
	mqb_wait_for 10000 mon_ready_or_gone "$out.err" "$MON_PID"
}

mon_ready_or_gone() {
	grep -q '^mqbusctl: monitoring bus ' "$1" || mqb_dead "$2"
}

# finish NAME PID WANT [FILE...]: waits for PID and checks its exit status.
finish() {
	local name=$1 pid=$2 want=$3 st f
	shift 3
	mqb_wait_pid "$pid" 10000
	st=$?
	if [ "$st" = "$want" ]; then
		mqb_ok "$name"
		return 0
	fi
	mqb_notok "$name" "exit status $st, wanted $want" \
		"timed out: $MQB_TIMED_OUT"
	for f in "$@"; do
		mqb_diag_file "$f" "$f"
	done
	return 1
}

# serve_start OUT [SERVE-ARGS...]: a server of one pattern, in place.
serve_start() {
	local out=$1 before
	shift
	mqb_wait_for 5000 mqb_settled "$BUS"
	before=$(mqb_stat subscriptions)
	"$MQBUSCTL" serve "$@" >"$out" 2>"$out.err" &
	SRV_PID=$!
	mqb_track "$SRV_PID"
	mqb_wait_for 10000 srv_subscribed_or_gone "$((${before:-0} + 1))"
}

srv_subscribed_or_gone() {
	mqb_stat_ge subscriptions "$1" || mqb_dead "$SRV_PID"
}

# ------------------------------------------------------------ three kinds

MON=$MQB_TMP/mon.out
MONJ=$MQB_TMP/monj.out
SRV=$MQB_TMP/serve.out

serve_start "$SRV" kind/echo --echo -n 1 ||
	mqb_notok "an echo server is in place" "$(cat "$SRV.err")"
SRVPID=$SRV_PID
mon_start "$MON" -n 3 -t 10000 ||
	mqb_notok "a plain monitor of '#' is in place" "$(cat "$MON.err")"
MPID=$MON_PID
mqb_like "monitor says on stderr that it watches '#' by default" \
	"$(cat "$MON.err")" "^mqbusctl: monitoring bus $BUS: #\$"
mon_start "$MONJ" 'kind/#' -n 3 -t 10000 --json ||
	mqb_notok "a JSON monitor of 'kind/#' is in place" "$(cat "$MONJ.err")"
MJPID=$MON_PID

"$MQBUSCTL" pub kind/pub 'hello world' -k obj1 &
PUBPID=$!
mqb_wait_pid "$PUBPID" 10000
mqb_is "pub exits 0" "$?" 0
"$MQBUSCTL" call kind/echo ping -t 5000 >"$MQB_TMP/call.out" 2>&1 &
CALLPID=$!
mqb_wait_pid "$CALLPID" 10000
mqb_is "call answered by serve --echo exits 0" "$?" 0
mqb_is "... with the echo" "$(cat "$MQB_TMP/call.out")" ping
finish "serve exits 0 after its one request" "$SRVPID" 0 "$SRV.err"
finish "plain monitor exits 0 after 3 messages (-n 3)" "$MPID" 0 \
	"$MON" "$MON.err"
finish "JSON monitor exits 0 after 3 messages" "$MJPID" 0 "$MONJ" "$MONJ.err"

REQ_ID=$(sed -n 's/^req kind\/echo .* id=\([0-9]*\) .*/\1/p' "$MON")
mqb_like "the request has an id" "$REQ_ID" '^[1-9][0-9]*$'
mqb_is "plain: pub, req and rep lines, marked, with sender, key and id" \
	"$(cat "$MON")" \
	"$(printf '%s\n' \
		"pub kind/pub uid=$ME pid=$PUBPID key=obj1 hello world" \
		"req kind/echo uid=$ME pid=$CALLPID id=$REQ_ID ping" \
		"rep kind/echo uid=$ME pid=$SRVPID id=$REQ_ID ping")"

JSON_CHECK=$(python3 -c '
import json, sys
me, pub, call, srv = map(int, sys.argv[1:5])
lines = open(sys.argv[5]).read().splitlines()
assert len(lines) == 3, "want 3 lines, got %d" % len(lines)
p, q, r = map(json.loads, lines)
assert p["kind"] == "publish" and q["kind"] == "request" and \
    r["kind"] == "reply", [p["kind"], q["kind"], r["kind"]]
assert (p["topic"], p["key"], p["payload"]) == \
    ("kind/pub", "obj1", "hello world"), p
assert "request_id" not in p, p
assert q["topic"] == r["topic"] == "kind/echo", (q, r)
assert q["payload"] == r["payload"] == "ping", (q, r)
assert q["request_id"] == r["request_id"] > 0, (q, r)
assert (p["sender_pid"], q["sender_pid"], r["sender_pid"]) == \
    (pub, call, srv), (p, q, r)
for m in p, q, r:
    assert m["sender_uid"] == me and m["dropped"] == 0, m
    assert m["timestamp_ns"] == str(m["timestamp"]), m
    assert m["timestamp_us"] == m["timestamp"] // 1000, m
assert p["seq"] < q["seq"] < r["seq"], (p["seq"], q["seq"], r["seq"])
print("ok")
' "$ME" "$PUBPID" "$CALLPID" "$SRVPID" "$MONJ" 2>&1)
mqb_is "JSON: kind publish/request/reply, request_id, senders, timestamps" \
	"$JSON_CHECK" ok

# A reply's copy must not overtake its request's copy still waiting in
# the monitor's queue: stop the monitor while the call runs.
serve_start "$SRV" ord/echo --echo -n 1 ||
	mqb_notok "an echo server of ord/echo is in place"
mon_start "$MON" 'ord/#' -n 2 -t 10000 ||
	mqb_notok "a monitor of 'ord/#' is in place"
MPID=$MON_PID
kill -STOP "$MPID"
mqb_check "call while the monitor is stopped" \
	"$MQBUSCTL" call ord/echo x -t 5000
kill -CONT "$MPID"
finish "monitor exits 0 after request and reply" "$MPID" 0 "$MON.err"
mqb_is "the request comes first, then its reply" \
	"$(cut -d' ' -f1,2 "$MON" | tr '\n' ' ')" "req ord/echo rep ord/echo "
mqb_wait_pid "$SRV_PID" 10000

# ------------------------------------------------------------ no responders

mon_start "$MON" 'nr/#' -n 1 -t 10000 ||
	mqb_notok "a monitor of 'nr/#' is in place"
MPID=$MON_PID
T0=$(mqb_now_ms)
mqb_check_status "call to a topic only a monitor watches: exit 4" 4 \
	"$MQBUSCTL" call nr/x hello -t 5000
T1=$(mqb_now_ms)
mqb_like "... 'no responders'" "$MQB_ERR" 'no responders on topic nr/x'
[ $((T1 - T0)) -lt 2500 ]
mqb_true "... at once, not after the 5 s timeout" $? "took $((T1 - T0)) ms"
finish "the monitor saw the request" "$MPID" 0 "$MON.err"
mqb_like "... marked req" "$(cat "$MON")" '^req nr/x uid=[0-9]+ pid=[0-9]+ id=[0-9]+ hello$'

# ------------------------------------------------------------ groups

G1=$MQB_TMP/group1.out
G2=$MQB_TMP/group2.out
mon_start "$MON" 'grp/#' ||
	mqb_notok "a monitor of 'grp/#' is in place"
MPID=$MON_PID
mqb_sub_start "$G1" 'grp/#' --group=g ||
	mqb_notok "first group member subscribed" "$(cat "$G1.err")"
GPID1=$MQB_SPID
"$MQBUSCTL" sub 'grp/#' --group g >"$G2" 2>"$G2.err" &
GPID2=$!
mqb_track "$GPID2"
# a group counts once in the stats: probe until both members got one
probe_group() {
	"$MQBUSCTL" pub grp/probe p || return 1
	grep -q '^grp/probe ' "$G1" && grep -q '^grp/probe ' "$G2"
}
mqb_wait_for 10000 probe_group
mqb_true "both group members receive" $? "$(cat "$G1.err" "$G2.err")"
for i in $(seq 10); do
	"$MQBUSCTL" pub grp/x "$i" || mqb_notok "pub grp/x $i"
done
group_count() {
	[ "$(cat "$G1" "$G2" | grep -c '^grp/x ')" -ge 10 ] &&
		[ "$(grep -c '^pub grp/x ' "$MON")" -ge 10 ]
}
mqb_wait_for 10000 group_count
kill -TERM "$GPID1" "$GPID2" "$MPID"
finish "group member 1 exits 0 on SIGTERM" "$GPID1" 0
finish "group member 2 exits 0 on SIGTERM" "$GPID2" 0
finish "monitor exits 0 on SIGTERM" "$MPID" 0 "$MON.err"
L1=$(sed -n 's/^grp\/x //p' "$G1" | tr '\n' ' ')
L2=$(sed -n 's/^grp\/x //p' "$G2" | tr '\n' ' ')
case "$L1|$L2" in
"1 3 5 7 9 |2 4 6 8 10 " | "2 4 6 8 10 |1 3 5 7 9 ") st=0 ;;
*) st=1 ;;
esac
mqb_true "with a monitor, two members take turns: odd/even of 10" $st \
	"member 1: $L1" "member 2: $L2"
mqb_is "the monitor saw all 10, in order" \
	"$(sed -n 's/^pub grp\/x uid=[0-9]* pid=[0-9]* //p' "$MON" | tr '\n' ' ')" \
	"$(seq 10 | tr '\n' ' ')"

# ------------------------------------------------------------ falling behind

# The monitor's rx holds RX copies, the daemon PENDING_MAX more; of N
# published while it is stopped, the rest is dropped and counted.
RX=2
N=12
LOST=$((N - RX - PENDING_MAX))
SUBO=$MQB_TMP/gap-sub.out
MQBUS_QUEUE_MAXMSG=$RX mon_start "$MON" 'gap/#' -n $((RX + PENDING_MAX + 1)) \
	-t 30000 || mqb_notok "a monitor with an rx of $RX is in place"
MPID=$MON_PID
mqb_sub_start "$SUBO" 'gap/#' -n $((N + 1)) -t 30000 ||
	mqb_notok "an ordinary subscriber of 'gap/#' is in place"
BLOCKED0=$(mqb_stat publishers_blocked)
kill -STOP "$MPID"
T0=$(mqb_now_ms)
for i in $(seq $N); do
	"$MQBUSCTL" pub gap/x "$i" || mqb_notok "pub gap/x $i"
done
T1=$(mqb_now_ms)
all_routed() { [ "$(grep -c . "$SUBO")" -ge "$N" ]; }
mqb_wait_for 10000 all_routed
mqb_true "the subscriber got all $N while the monitor is stopped" $? \
	"got $(grep -c . "$SUBO")"
mqb_is "no publisher was held up (publishers_blocked)" \
	"$(mqb_stat publishers_blocked)" "$BLOCKED0"
[ $((T1 - T0)) -lt 10000 ]
mqb_true "... $N publishes took $((T1 - T0)) ms" $?
kill -CONT "$MPID"
got_backlog() {
	[ "$(grep -c '^pub gap/x' "$MON")" -ge $((RX + PENDING_MAX)) ]
}
mqb_wait_for 10000 got_backlog
"$MQBUSCTL" pub gap/x after
finish "the monitor exits 0 after $((RX + PENDING_MAX + 1)) copies" \
	"$MPID" 0 "$MON" "$MON.err"
mqb_is "it got the first $((RX + PENDING_MAX)), a gap line of $LOST, then the next" \
	"$(sed 's/ uid=[0-9]* pid=[0-9]*//' "$MON" | tr '\n' '|')" \
	"$(for i in $(seq $((RX + PENDING_MAX))); do printf 'pub gap/x %s|' "$i"; done
	printf 'gap %s messages lost: the monitor fell behind|' "$LOST"
	printf 'pub gap/x after|')"
finish "the subscriber exits 0 after $((N + 1))" "$MQB_SPID" 0 "$SUBO.err"
mqb_is "the subscriber lost nothing" \
	"$(tr '\n' ' ' <"$SUBO")" \
	"$(for i in $(seq $N); do printf 'gap/x %s ' "$i"; done)gap/x after "

MQBUS_QUEUE_MAXMSG=$RX mon_start "$MONJ" 'gap/#' --json -n $((RX + PENDING_MAX + 1)) \
	-t 30000 || mqb_notok "a JSON monitor with an rx of $RX is in place"
MPID=$MON_PID
PUBLISHED0=$(mqb_stat published)
kill -STOP "$MPID"
for i in $(seq $N); do
	"$MQBUSCTL" pub gap/y "$i" || mqb_notok "pub gap/y $i"
done
mqb_wait_for 10000 mqb_stat_ge published $((PUBLISHED0 + N))
mqb_true "the daemon routed the $N" $? "published: $(mqb_stat published)"
kill -CONT "$MPID"
mqb_wait_for 10000 eval "[ \$(grep -c . '$MONJ') -ge $((RX + PENDING_MAX)) ]"
"$MQBUSCTL" pub gap/y after
finish "the JSON monitor exits 0" "$MPID" 0 "$MONJ" "$MONJ.err"
mqb_is "JSON: the copies in order, $LOST lost in all (on the copy after the gap or in a drop notice)" \
	"$(python3 -c '
import json, sys
msgs = list(map(json.loads, open(sys.argv[1])))
print(" ".join(m["payload"] for m in msgs if "payload" in m),
      "lost=%d" % sum(m["dropped"] for m in msgs))' "$MONJ" 2>&1)" \
	"$(for i in $(seq $((RX + PENDING_MAX))); do printf '%s ' "$i"; done)after lost=$LOST"

# ------------------------------------------------------------ another user

if [ "$ME" = 0 ] && command -v setpriv >/dev/null 2>&1 &&
	command -v useradd >/dev/null 2>&1; then
	TUSER=${MQBUS_TEST_USER:-mqbus-test}
	if ! id -u "$TUSER" >/dev/null 2>&1; then
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin --user-group "$TUSER" \
			>"$MQB_TMP/useradd.out" 2>&1
		mqb_diag "created user $TUSER: $(cat "$MQB_TMP/useradd.out")"
	fi
	TUID=$(id -u "$TUSER" 2>/dev/null)
	TGID=$(id -g "$TUSER" 2>/dev/null)
	RUN=$MQB_TMP/run
	mkdir -p "$RUN"
	chmod 755 "$MQB_TMP" "$RUN"
	cp "$top_builddir/tests/helpers/mqbusctl-test" "$RUN/mqbusctl" &&
		cp -P "$top_builddir"/client/.libs/libmqbus.so* "$RUN/" &&
		chmod -R a+rX "$RUN"
	mqb_true "mqbusctl-test copied for $TUSER (uid $TUID)" $?
	as_user() {
		setpriv --reuid="$TUID" --regid="$TGID" --clear-groups -- \
			env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH="$RUN" \
			MQBUS_BUS="$BUS" ${ASAN_OPTIONS:+ASAN_OPTIONS="$ASAN_OPTIONS"} \
			${UBSAN_OPTIONS:+UBSAN_OPTIONS="$UBSAN_OPTIONS"} \
			${LSAN_OPTIONS:+LSAN_OPTIONS="$LSAN_OPTIONS"} "$@"
	}
	mqb_check_status "$TUSER: monitor is refused, exit 1" 1 \
		as_user "$RUN/mqbusctl" monitor 'x/#' -t 3000
	mqb_is "... with the daemon's EPERM sentence" "$MQB_ERR" \
		"mqbusctl: cannot monitor x/#: monitor is allowed to root and to the bus owner (uid $(stat -c %u "/dev/mqueue/$BUS")) only"
	mqb_is "... and nothing on stdout" "$MQB_OUT" ""
	mqb_check_status "$TUSER: sub of the same pattern is allowed" 3 \
		as_user "$RUN/mqbusctl" sub 'x/#' -t 300
	mqb_wait_for 5000 mqb_settled "$BUS"
	mqb_is "$TUSER's clients left no queues" \
		"$(for q in $(mqb_queues "$BUS"); do stat -c %u "/dev/mqueue/$q"; done | grep -cx "$TUID")" 0
else
	mqb_skip "monitor refused to another user" "needs root, setpriv, useradd"
fi

# ------------------------------------------------------------ sub --json

OUT=$MQB_TMP/sub.json
mqb_sub_start "$OUT" 'sj/#' -n 2 -t 10000 --json ||
	mqb_notok "JSON subscriber subscribed"
"$MQBUSCTL" pub sj/p plain
mqb_check_status "a call to the subscriber times out (it does not answer)" 3 \
	"$MQBUSCTL" call sj/r question -t 300
finish "JSON subscriber exits 0 after 2" "$MQB_SPID" 0 "$OUT.err"
SJ_CHECK=$(python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 2, lines
p, r = map(json.loads, lines)
assert p["payload"] == "plain" and p["request"] is False, p
assert "request_id" not in p, p
assert r["payload"] == "question" and r["request"] is True, r
assert r["request_id"] > 0, r
for m in p, r:
    # the old field stays; the new ones are exact also for a reader of
    # numbers as doubles (jq, JavaScript)
    d = json.loads(json.dumps(m), parse_int=float)
    assert m["timestamp_ns"] == str(m["timestamp"]), m
    assert int(d["timestamp_us"]) == m["timestamp"] // 1000, (d, m)
    assert m["retained"] is False and m["dropped"] == 0, m
print("ok")
' "$OUT" 2>&1)
mqb_is "sub --json: \"request\" marks, request_id, exact timestamp_ns/_us" \
	"$SJ_CHECK" ok

# ------------------------------------------------------------ usage

mqb_check_status "monitor with a bad pattern: exit 2" 2 \
	"$MQBUSCTL" monitor 'a/#/b' -t 1000
mqb_like "... saying why" "$MQB_ERR" "invalid pattern 'a/#/b'"
mqb_check_status "monitor -n x: exit 2" 2 "$MQBUSCTL" monitor -n x
mqb_check_status "monitor --help: exit 0" 0 "$MQBUSCTL" monitor --help
mqb_like "... naming --json" "$MQB_OUT" '--json'
mqb_check_status "monitor -q -t 200: exit 3 (timeout)" 3 \
	"$MQBUSCTL" monitor -q -t 200 'quiet/#'
mqb_is "... with -q, only the timeout on stderr" "$MQB_ERR" \
	"mqbusctl: monitor: timed out after 200 ms (0 messages)"

mqb_daemon_stop TERM 10000
mqb_is "SIGTERM: mqbusd exits 0" "$MQB_DSTATUS" 0
mqb_is "no queue of the bus is left" "$(mqb_queues "$BUS" | tr '\n' ' ')" ""

mqb_done

#!/bin/bash
# SPDX-License-Identifier: MIT
#
# cli.sh - integration tests of mqbusctl against the real mqbusd: pub/sub
# round trips (plain and JSON), wildcards, -n, -t, stdin, priorities,
# one daemon per bus, shutdown, dead clients, the start-up sweep, garbage
# in the announce queue, call and serve (echo, exec, no responders,
# timeouts), queue groups, retained values, timers (pub --delay/--at/--every,
# timer list/cancel), `limits` and usage errors.
#
# MQBUS_CLI_WAKE=notify|thread|poll picks the daemon's wake-up back-end
# (default notify).

. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

mqb_init
WAKE=${MQBUS_CLI_WAKE:-notify}
ME=$(id -u)

command -v python3 >/dev/null 2>&1 || mqb_bail "python3 is installed" \
	"the JSON checks need python3"

if ! mqb_daemon_start "$WAKE"; then
	mqb_bail "mqbusd --wake=$WAKE starts and sends READY=1"
fi
mqb_ok "mqbusd --wake=$WAKE starts and sends READY=1"
DPID=$MQB_DPID

[ -e "/dev/mqueue/$BUS" ]
mqb_true "the announce queue /$BUS exists" $? \
	"queues: $(mqb_queues "$BUS" | tr '\n' ' ')"

# ------------------------------------------------------------ round trips

# sub_run NAME: waits for the subscriber started by mqb_sub_start to exit
# and checks that it exited 0.  Its output stays in $OUT.
sub_finish() {
	local name=$1 st
	mqb_wait_pid "$MQB_SPID" 10000
	st=$?
	if [ "$st" = 0 ]; then
		mqb_ok "$name: subscriber exits 0"
	else
		mqb_notok "$name: subscriber exits 0" "exit status $st" \
			"timed out: $MQB_TIMED_OUT" \
			"stdout: $(cat "$OUT")" "stderr: $(cat "$OUT.err")"
	fi
}

OUT=$MQB_TMP/sub.out

mqb_sub_start "$OUT" cli/plain -n 1 -t 10000 ||
	mqb_notok "plain subscriber subscribed" "$(cat "$OUT.err")"
mqb_check_status "pub plain message" 0 "$MQBUSCTL" pub cli/plain 'hello world'
sub_finish "plain round trip"
mqb_is "plain line is 'TOPIC PAYLOAD'" "$(cat "$OUT")" "cli/plain hello world"

# JSON, and the sender pid/uid that the daemon vouches for
mqb_sub_start "$OUT" cli/json -n 1 -t 10000 --json ||
	mqb_notok "JSON subscriber subscribed" "$(cat "$OUT.err")"
"$MQBUSCTL" pub cli/json 'quote " and \ back' -p 3 &
PUBPID=$!
mqb_wait_pid "$PUBPID" 10000
mqb_is "pub for JSON exits 0" "$?" 0
sub_finish "JSON round trip"
JSON_CHECK=$(python3 -c '
import json, sys
want_pid, want_uid = int(sys.argv[1]), int(sys.argv[2])
lines = open(sys.argv[3]).read().splitlines()
assert len(lines) == 1, "want 1 line, got %d" % len(lines)
m = json.loads(lines[0])
keys = ["topic", "payload", "priority", "sender_uid", "sender_pid",
        "client_id", "seq", "timestamp", "dropped", "retained"]
missing = [k for k in keys if k not in m]
assert not missing, "missing keys %s" % missing
assert m["topic"] == "cli/json", m["topic"]
assert m["payload"] == "quote \" and \\ back", m["payload"]
assert m["priority"] == 3, m["priority"]
assert m["sender_pid"] == want_pid, (m["sender_pid"], want_pid)
assert m["sender_uid"] == want_uid, (m["sender_uid"], want_uid)
assert m["client_id"] > 0 and m["seq"] > 0 and m["dropped"] == 0
assert m["retained"] is False, m["retained"]
import time
assert abs(m["timestamp"] / 1e9 - time.time()) < 600, m["timestamp"]
print("ok")
' "$PUBPID" "$ME" "$OUT" 2>&1)
mqb_is "JSON line is valid with every field, right sender pid and uid" \
	"$JSON_CHECK" ok

# ------------------------------------------------------------ wildcards

mqb_sub_start "$OUT" 'wc/+/temp' -n 2 -t 10000 ||
	mqb_notok "'+' subscriber subscribed"
for t in wc/temp wc/a/b/temp wc/a/temp2 other/a/temp wc/a/temp wc/b/temp; do
	"$MQBUSCTL" pub "$t" "$t" || mqb_notok "pub $t"
done
sub_finish "'+' wildcard"
mqb_is "'+' matches exactly one level" "$(cat "$OUT")" \
	"$(printf 'wc/a/temp wc/a/temp\nwc/b/temp wc/b/temp')"

mqb_sub_start "$OUT" 'hash/a/#' -n 3 -t 10000 ||
	mqb_notok "'#' subscriber subscribed"
for t in hash/b hash/ab/c other/hash/a hash/a/x hash/a/x/y/z hash/a/q; do
	"$MQBUSCTL" pub "$t" "$t" || mqb_notok "pub $t"
done
sub_finish "'#' wildcard"
mqb_is "'#' matches every level below" "$(cut -d' ' -f1 "$OUT")" \
	"$(printf 'hash/a/x\nhash/a/x/y/z\nhash/a/q')"

# two patterns matching the same message: delivered once
mqb_sub_start "$OUT" 'dup/#' 'dup/+' -n 2 -t 10000 ||
	mqb_notok "two-pattern subscriber subscribed"
"$MQBUSCTL" pub dup/x one && "$MQBUSCTL" pub dup/y two
sub_finish "overlapping patterns"
mqb_is "a message matching two patterns arrives once" "$(cat "$OUT")" \
	"$(printf 'dup/x one\ndup/y two')"

# one-shot publishers: each connects, publishes, says goodbye and exits at
# once; the daemon must deliver what they sent before they died
mqb_sub_start "$OUT" burst/x -n 20 -t 10000 || mqb_notok "burst subscriber"
for i in $(seq 20); do
	"$MQBUSCTL" pub burst/x "m$i" || mqb_notok "pub m$i"
done
sub_finish "20 one-shot publishers"
mqb_is "every message of 20 one-shot publishers arrives, in order" \
	"$(cut -d' ' -f2 "$OUT" | tr '\n' ' ')" "$(seq -f 'm%g' 20 | tr '\n' ' ')"

# ------------------------------------------------------------ -n and -t

mqb_sub_start "$OUT" cnt/x -n 2 -t 10000 || mqb_notok "-n subscriber"
for i in 1 2 3; do
	"$MQBUSCTL" pub cnt/x "m$i"
done
sub_finish "-n 2"
mqb_is "-n 2 prints exactly the first 2 messages" "$(cat "$OUT")" \
	"$(printf 'cnt/x m1\ncnt/x m2')"

T0=$(mqb_now_ms)
mqb_check_status "-t 300 with no message exits 3" 3 \
	"$MQBUSCTL" sub nothing/here -t 300
T1=$(mqb_now_ms)
[ $((T1 - T0)) -ge 300 ]
mqb_true "-t 300 waits at least 300 ms" $? "waited $((T1 - T0)) ms"
mqb_is "-t timeout prints no message" "$MQB_OUT" ""

# ------------------------------------------------------------ stdin

mqb_sub_start "$OUT" stdin/x -n 1 -t 10000 --json ||
	mqb_notok "stdin subscriber"
printf 'line one\n\tline two\n' | "$MQBUSCTL" pub stdin/x -
mqb_is "pub - exits 0" "$?" 0
sub_finish "pub from stdin"
mqb_is "pub - sends all of stdin, byte for byte" \
	"$(python3 -c 'import json,sys; print(repr(json.loads(open(sys.argv[1]).read())["payload"]))' "$OUT" 2>&1)" \
	"'line one\\n\\tline two\\n'"

# ------------------------------------------------------------ priority

# A subscriber with 2-message queues is stopped; 4 low messages then 1
# high one are published.  2 lows fill its rx queue, the rest wait in the
# daemon.  After SIGCONT the high one must overtake the lows still waiting.
before=$(mqb_stat published)
MQBUS_QUEUE_MAXMSG=2 mqb_sub_start "$OUT" prio/x -n 5 -t 15000 --json ||
	mqb_notok "priority subscriber"
kill -STOP "$MQB_SPID"
for i in 1 2 3 4; do
	"$MQBUSCTL" pub prio/x "low$i" -p 1 || mqb_notok "pub low$i"
done
"$MQBUSCTL" pub prio/x high -p 9 || mqb_notok "pub high"
mqb_wait_for 10000 mqb_stat_ge published $((before + 5))
mqb_true "the daemon took all 5 messages while the subscriber slept" $? \
	"published=$(mqb_stat published), before=$before"
kill -CONT "$MQB_SPID"
sub_finish "priority"
ORDER=$(python3 -c '
import json, sys
print(" ".join("%s:%d" % (m["payload"], m["priority"]) for m in
      map(json.loads, open(sys.argv[1]).read().splitlines())))
' "$OUT" 2>&1)
mqb_is "all 5 arrive once, with the priority asked for" \
	"$(printf '%s\n' $ORDER | sort | tr '\n' ' ')" \
	"high:9 low1:1 low2:1 low3:1 low4:1 "
python3 -c '
import sys
order = [w.split(":")[0] for w in sys.argv[1].split()]
assert order.index("high") < order.index("low3"), order
lows = [w for w in order if w != "high"]
assert lows == ["low1", "low2", "low3", "low4"], lows
' "$ORDER" 2>/dev/null
mqb_true "high priority overtakes the waiting lows, lows keep their order" \
	$? "order: $ORDER"

# ------------------------------------------------------------ one daemon

timeout 10 "$MQBUSD" -b "$BUS" --wake="$WAKE" >"$MQB_TMP/second.out" \
	2>"$MQB_TMP/second.err"
st=$?
[ "$st" != 0 ] && [ "$st" != 124 ]
mqb_true "a second mqbusd on the same bus exits non-zero at once" $? \
	"exit status $st"
mqb_is "... with exactly one line on stderr" \
	"$(wc -l <"$MQB_TMP/second.err")" 1
mqb_diag "second daemon said: $(cat "$MQB_TMP/second.err")"
[ -e "/dev/mqueue/$BUS" ] && mqb_alive "$DPID"
mqb_true "... and the first one still runs with its announce queue" $?

# ------------------------------------------------------------ garbage

before=$(mqb_stat bad_messages)
GARBAGE=$MQB_TMP/garbage
"$MQTOOL" send "/$BUS" "garbage" >/dev/null
g1=$?
head -c 300 /dev/urandom >"$GARBAGE"
"$MQTOOL" sendfile "/$BUS" "$GARBAGE" >/dev/null
g2=$?
# a header with the right magic and version but lengths that lie
printf 'MQB1\001\001\000\000\377\377\000\000\377\377\377\377' >"$GARBAGE"
head -c 48 /dev/zero >>"$GARBAGE"
"$MQTOOL" sendfile "/$BUS" "$GARBAGE" >/dev/null
g3=$?
# an empty message
: >"$GARBAGE.empty"
"$MQTOOL" sendfile "/$BUS" "$GARBAGE.empty" >/dev/null
g4=$?
[ "$g1$g2$g3$g4" = 0000 ]
mqb_true "garbage can be written into /$BUS" $? "mqtool: $g1 $g2 $g3 $g4"
mqb_wait_for 5000 mqb_stat_ge bad_messages $((${before:-0} + 1))
mqb_true "the daemon counts the garbage as bad messages" $? \
	"bad_messages=$(mqb_stat bad_messages), before=$before"
mqb_sub_start "$OUT" after/garbage -n 1 -t 10000 ||
	mqb_notok "subscriber after garbage"
"$MQBUSCTL" pub after/garbage still-here
sub_finish "after garbage"
mqb_is "the daemon still routes after garbage" "$(cat "$OUT")" \
	"after/garbage still-here"

# ------------------------------------------------------------ dead client

"$MQBUSCTL" sub dead/x >"$MQB_TMP/dead.out" 2>&1 &
SPID=$!
mqb_track "$SPID"
mqb_wait_for 10000 mqb_has_client_queues "$BUS" "$SPID"
mqb_true "a subscriber's queues appear as $BUS.$SPID.N.tx/rx" $? \
	"queues: $(mqb_queues "$BUS" | tr '\n' ' ')"
gone_before=$(mqb_stat clients_gone)
{ kill -KILL "$SPID"; wait "$SPID"; } 2>/dev/null
T0=$(mqb_now_ms)
mqb_wait_for 5000 mqb_no_client_queues "$BUS" "$SPID"
mqb_true "a SIGKILLed subscriber's queues are gone at once" $? \
	"left: $(mqb_client_queues "$BUS" "$SPID" | tr '\n' ' ')"
mqb_diag "queues were removed $(($(mqb_now_ms) - T0)) ms after the kill"
mqb_wait_for 5000 mqb_stat_ge clients_gone $((${gone_before:-0} + 1))
mqb_true "the daemon counts the dead client" $?
mqb_sub_start "$OUT" after/kill -n 1 -t 10000 ||
	mqb_notok "subscriber after kill"
"$MQBUSCTL" pub after/kill alive
sub_finish "after a dead client"
mqb_is "the daemon keeps serving after a client died" "$(cat "$OUT")" \
	"after/kill alive"

# ------------------------------------------------------------ call and serve

# serve_start OUT [SERVE-ARGS...]: starts `mqbusctl serve SERVE-ARGS` in the
# background, stdout to OUT and stderr to OUT.err, sets SRV_PID, and waits
# until the daemon counts its subscription (or it has exited).  Not for the
# second member of a queue group, which the daemon does not count.
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

# srv_finish NAME PID WANT: waits for a server or member to exit and checks
# its exit status.
srv_finish() {
	local name=$1 pid=$2 want=$3 st
	mqb_wait_pid "$pid" 10000
	st=$?
	if [ "$st" = "$want" ]; then
		mqb_ok "$name"
	else
		mqb_notok "$name" "exit status $st, wanted $want" \
			"timed out: $MQB_TIMED_OUT"
	fi
}

SRV=$MQB_TMP/serve.out

# --echo, and a plain message on the topic is no request: it is ignored,
# and does not count towards -n
serve_start "$SRV" rr/echo --echo -n 3 ||
	mqb_notok "serve --echo subscribed" "$(cat "$SRV.err")"
ECHO_PID=$SRV_PID
"$MQBUSCTL" pub rr/echo 'not a request' || mqb_notok "pub to a server"
mqb_check_status "call to serve --echo exits 0" 0 \
	"$MQBUSCTL" call rr/echo 'hello there'
mqb_is "call prints the echoed payload" "$MQB_OUT" "hello there"
printf 'two\nlines\n' >"$MQB_TMP/payload"
"$MQBUSCTL" call rr/echo - <"$MQB_TMP/payload" >"$MQB_TMP/reply"
mqb_is "call - sends stdin and exits 0" "$?" 0
cmp -s "$MQB_TMP/payload" "$MQB_TMP/reply"
mqb_true "a reply ending in a newline is printed as it is, byte for byte" \
	$? "got: $(od -c "$MQB_TMP/reply" | head -3)"
"$MQBUSCTL" call rr/echo x >"$MQB_TMP/reply"
mqb_is "a reply without a final newline gets one" \
	"$(od -An -c "$MQB_TMP/reply" | tr -s ' ')" " x \\n"
srv_finish "serve -n 3 exits 0 after 3 requests (the plain message ignored)" \
	"$ECHO_PID" 0
mqb_is "serve prints nothing on stdout" "$(cat "$SRV")" ""

# no responders: at once, exit 4
before=$(mqb_stat no_responders)
T0=$(mqb_now_ms)
mqb_check_status "call with nobody serving the topic exits 4" 4 \
	"$MQBUSCTL" call rr/nobody hello
T1=$(mqb_now_ms)
[ $((T1 - T0)) -lt 2000 ]
mqb_true "... at once, not after the 5 s timeout" $? "took $((T1 - T0)) ms"
mqb_like "... saying there are no responders" "$MQB_ERR" 'no responders'
mqb_is "... printing no reply" "$MQB_OUT" ""
mqb_is "the daemon counts it in no_responders" "$(mqb_stat no_responders)" \
	"$((${before:-0} + 1))"

# a subscriber receives the request but never answers: exit 3
mqb_sub_start "$OUT" rr/ignored -n 1 -t 10000 ||
	mqb_notok "ignoring subscriber subscribed" "$(cat "$OUT.err")"
T0=$(mqb_now_ms)
mqb_check_status "call -t 300 that nobody answers exits 3" 3 \
	"$MQBUSCTL" call rr/ignored data -t 300
T1=$(mqb_now_ms)
[ $((T1 - T0)) -ge 300 ] && [ $((T1 - T0)) -lt 5000 ]
mqb_true "... after 300 ms, not the default 5 s" $? "took $((T1 - T0)) ms"
mqb_like "... saying no reply came" "$MQB_ERR" 'no reply'
sub_finish "subscriber of an unanswered request"
mqb_is "the subscriber saw the request as a message" "$(cat "$OUT")" \
	"rr/ignored data"

# --exec: the request on stdin, the reply from stdout
serve_start "$SRV" 'rr/exec/#' --exec 'tr a-z A-Z' ||
	mqb_notok "serve --exec subscribed" "$(cat "$SRV.err")"
EXEC_PID=$SRV_PID
mqb_check_status "call to serve --exec 'tr a-z A-Z' exits 0" 0 \
	"$MQBUSCTL" call rr/exec/up 'Hello, World'
mqb_is "serve --exec upper-cases" "$MQB_OUT" "HELLO, WORLD"
kill -TERM "$EXEC_PID"
srv_finish "serve without -n exits 0 on SIGTERM" "$EXEC_PID" 0
mqb_wait_for 5000 mqb_no_client_queues "$BUS" "$EXEC_PID"
mqb_true "... and its queues are gone" $? \
	"left: $(mqb_client_queues "$BUS" "$EXEC_PID" | tr '\n' ' ')"

# a command that writes far more than a reply holds, before it reads its
# input, and fails: no deadlock, the reply is cut to what fits, and both
# are warned about
head -c 1900 /dev/zero | tr '\0' i >"$MQB_TMP/input"
serve_start "$SRV" rr/big -n 1 \
	--exec 'head -c 1200000 /dev/zero | tr "\0" x; cat >/dev/null; exit 3' ||
	mqb_notok "serve --exec (big) subscribed" "$(cat "$SRV.err")"
BIG_PID=$SRV_PID
mqb_check_status "call to a command that writes 1200000 bytes exits 0" 0 \
	"$MQBUSCTL" call rr/big - -t 10000 <"$MQB_TMP/input"
# a reply goes in pieces up to the bus's max_message (tests/large-cli.sh)
MAXREPLY=$("$MQBUSCTL" limits | sed -n 's/^max_message: *//p')
mqb_is "the reply is cut to the largest that fits ($MAXREPLY bytes)" \
	"${#MQB_OUT} $(printf '%s' "$MQB_OUT" | tr -d x | wc -c)" "$MAXREPLY 0"
srv_finish "serve --exec -n 1 exits 0" "$BIG_PID" 0
mqb_like "serve warns that the command failed" "$(cat "$SRV.err")" \
	'exited with status 3'
mqb_like "serve warns that the output was cut" "$(cat "$SRV.err")" \
	"cut to $MAXREPLY bytes"

# sub --group: two members split the messages of a pattern, in turn
G1=$MQB_TMP/group1.out
G2=$MQB_TMP/group2.out
mqb_sub_start "$G1" 'grp/#' --group=g ||
	mqb_notok "first group member subscribed" "$(cat "$G1.err")"
GPID1=$MQB_SPID
"$MQBUSCTL" sub 'grp/#' --group g >"$G2" 2>"$G2.err" &
GPID2=$!
mqb_track "$GPID2"
# a group counts once in the stats: probe until the second member gets
# messages too (the turns alternate, so it gets every other one)
probe_group() {
	"$MQBUSCTL" pub grp/probe p || return 1
	grep -q '^grp/probe ' "$G1" && grep -q '^grp/probe ' "$G2"
}
mqb_wait_for 10000 probe_group
mqb_true "both group members receive" $? \
	"member 1: $(grep -c . "$G1"), member 2: $(grep -c . "$G2")" \
	"$(cat "$G1.err" "$G2.err")"
for i in $(seq 10); do
	"$MQBUSCTL" pub grp/x "m$i" || mqb_notok "pub grp/x m$i"
done
group_count() {
	[ "$(cat "$G1" "$G2" | grep -c '^grp/x ')" -ge 10 ]
}
mqb_wait_for 10000 group_count
kill -TERM "$GPID1" "$GPID2"
srv_finish "group member 1 exits 0 on SIGTERM" "$GPID1" 0
srv_finish "group member 2 exits 0 on SIGTERM" "$GPID2" 0
mqb_is "two group members split 10 messages 5/5" \
	"$(grep -c '^grp/x ' "$G1")/$(grep -c '^grp/x ' "$G2")" "5/5"
mqb_is "... each message reaching exactly one of them" \
	"$(cat "$G1" "$G2" | sed -n 's/^grp\/x m//p' | sort -n | tr '\n' ' ')" \
	"$(seq 10 | tr '\n' ' ')"

# serve --group: a pool of two servers shares the requests
P1=$MQB_TMP/pool1.out
P2=$MQB_TMP/pool2.out
serve_start "$P1" rr/pool --group=pool --exec 'echo one' ||
	mqb_notok "first pool server subscribed" "$(cat "$P1.err")"
PPID1=$SRV_PID
"$MQBUSCTL" serve rr/pool --group=pool --exec 'echo two' >"$P2" \
	2>"$P2.err" &
PPID2=$!
mqb_track "$PPID2"
POOL_SEEN=
probe_pool() {
	POOL_SEEN="$POOL_SEEN $("$MQBUSCTL" call rr/pool -t 5000)"
	case $POOL_SEEN in *one*two* | *two*one*) return 0 ;; esac
	return 1
}
mqb_wait_for 10000 probe_pool
mqb_true "both servers of a pool answer" $? "answers:$POOL_SEEN" \
	"$(cat "$P1.err" "$P2.err")"
ANSWERS=()
for i in 1 2 3 4; do
	ANSWERS+=("$("$MQBUSCTL" call rr/pool -t 5000)")
done
mqb_is "a pool of two answers 4 calls 2/2, one reply each" \
	"$(printf '%s\n' "${ANSWERS[@]}" | sort | uniq -c | tr -s ' \n' ' ')" \
	" 2 one 2 two "
kill -TERM "$PPID1" "$PPID2"
srv_finish "pool server 1 exits 0 on SIGTERM" "$PPID1" 0
srv_finish "pool server 2 exits 0 on SIGTERM" "$PPID2" 0

# ------------------------------------------------------------ retained values

# json_field FILE KEY...: the values of KEYs in the one JSON line of FILE,
# space-separated (Python's repr, so True/False and quoted strings), or a
# one-line complaint.
json_field() {
	python3 -c '
import json, sys
try:
    lines = open(sys.argv[1]).read().splitlines()
    assert len(lines) == 1, "want 1 line, got %d" % len(lines)
    m = json.loads(lines[0])
    print(" ".join(repr(m[k]) for k in sys.argv[2:]))
except Exception as e:
    print("bad output: %r" % e)
' "$@" 2>&1
}

# json_time FILE: the timestamp of the one JSON line of FILE, or 0.
json_time() {
	local t
	t=$(json_field "$1" timestamp)
	case $t in
	'' | *[!0-9]*) echo 0 ;;
	*) echo "$t" ;;
	esac
}

retained_is() {
	[ "$(mqb_stat retained)" = "$1" ]
}

# a subscriber already there gets a retained publish as a plain message
mqb_sub_start "$OUT" ret/live -n 1 -t 10000 --json ||
	mqb_notok "live subscriber of a retained topic" "$(cat "$OUT.err")"
mqb_check_status "pub --retain exits 0" 0 \
	"$MQBUSCTL" pub ret/live 'live value' --retain
sub_finish "retained publish to a live subscriber"
mqb_is "a live subscriber gets it marked \"retained\":false" \
	"$(json_field "$OUT" topic payload retained)" \
	"'ret/live' 'live value' False"

mqb_check_status "pub --retain with -p exits 0" 0 \
	"$MQBUSCTL" pub ret/x 'kept value' --retain -p 2
mqb_wait_for 5000 retained_is 2
mqb_true "the daemon keeps both values" $? "retained=$(mqb_stat retained)"
mqb_check_status "a later sub -n 1 --json gets the value at once" 0 \
	"$MQBUSCTL" sub ret/x -n 1 -t 5000 --json
printf '%s\n' "$MQB_OUT" >"$MQB_TMP/retained.json"
mqb_is "... marked \"retained\":true, from the publisher, at its priority" \
	"$(json_field "$MQB_TMP/retained.json" topic payload retained \
		priority sender_uid dropped)" \
	"'ret/x' 'kept value' True 2 $ME 0"
mqb_check_status "a later plain sub gets every value of its pattern" 0 \
	"$MQBUSCTL" sub 'ret/#' -n 2 -t 5000
mqb_is "... each line ending in ' (retained)'" \
	"$(printf '%s\n' "$MQB_OUT" | sort)" \
	"$(printf '%s\n' 'ret/live live value (retained)' \
		'ret/x kept value (retained)')"

# an empty retained publish clears the value, with DATA absent or empty
mqb_check_status "pub --retain without DATA exits 0" 0 \
	"$MQBUSCTL" pub ret/x --retain
mqb_check_status "pub --retain '' exits 0" 0 \
	"$MQBUSCTL" pub ret/live '' --retain
mqb_wait_for 5000 retained_is 0
mqb_true "empty retained publishes clear the values" $? \
	"retained=$(mqb_stat retained)"
mqb_check_status "after clearing, sub -t 300 gets nothing and exits 3" 3 \
	"$MQBUSCTL" sub 'ret/#' -t 300
mqb_is "... printing nothing" "$MQB_OUT" ""

# ------------------------------------------------------------ keys

mqb_sub_start "$OUT" key/x -n 1 -t 10000 ||
	mqb_notok "subscriber of a keyed message" "$(cat "$OUT.err")"
mqb_check_status "pub -k KEY exits 0" 0 \
	"$MQBUSCTL" pub key/x 'state 1' -k 'lamp:7'
sub_finish "keyed round trip"
mqb_is "sub prints the key after the payload" "$(cat "$OUT")" \
	"key/x state 1 (key lamp:7)"

mqb_sub_start "$OUT" key/x -n 2 -t 10000 --json ||
	mqb_notok "JSON subscriber of keyed messages" "$(cat "$OUT.err")"
"$MQBUSCTL" pub key/x one --key=k1 || mqb_notok "pub --key=k1"
"$MQBUSCTL" pub key/x two || mqb_notok "pub without a key"
sub_finish "keyed and unkeyed JSON round trip"
mqb_is "JSON has \"key\": the key, or null without one" "$(python3 -c '
import json, sys
print(" ".join("%s=%r" % (m["payload"], m["key"])
               for m in map(json.loads, open(sys.argv[1]))))
' "$OUT" 2>&1)" "one='k1' two=None"

mqb_check_status "pub -k with a space in the key is a usage error (2)" 2 \
	"$MQBUSCTL" pub key/x v -k 'a b'
mqb_like "... saying the key is invalid" "$MQB_ERR" 'invalid key'
mqb_check_status "pub -k '' is a usage error (2)" 2 "$MQBUSCTL" pub key/x v -k ''
mqb_check_status "pub without an argument to -k is a usage error (2)" 2 \
	"$MQBUSCTL" pub key/x v -k

# call -p: the request reaches the subscriber at that priority
mqb_sub_start "$OUT" rr/prio -n 1 -t 10000 --json ||
	mqb_notok "subscriber of a request with a priority" "$(cat "$OUT.err")"
mqb_check_status "call -p 7 that nobody answers exits 3" 3 \
	"$MQBUSCTL" call rr/prio urgent -p 7 -t 300
sub_finish "request with a priority"
mqb_is "the request arrived at priority 7" \
	"$(json_field "$OUT" payload priority)" "'urgent' 7"
mqb_check_status "call -p 40000 is a usage error (2)" 2 \
	"$MQBUSCTL" call rr/prio x -p 40000
mqb_like "... naming the priority" "$MQB_ERR" 'priority'

# ------------------------------------------------------------ timers

# pub --delay: a detached timer, so the message comes after pub has gone
mqb_sub_start "$OUT" tmr/once -n 1 -t 10000 --json ||
	mqb_notok "subscriber of a delayed message" "$(cat "$OUT.err")"
T0=$(date +%s%N)
"$MQBUSCTL" pub tmr/once later --delay 200 >"$MQB_TMP/tid" \
	2>"$MQB_TMP/tid.err" &
PUBPID=$!
mqb_track "$PUBPID"
mqb_wait_pid "$PUBPID" 10000
st=$?
[ "$st" = 0 ]
mqb_true "pub --delay 200 exits 0" $? "exit status $st" \
	"stderr: $(cat "$MQB_TMP/tid.err")"
TID=$(cat "$MQB_TMP/tid")
mqb_like "... and prints the timer's id, a number, alone on its line" \
	"$(od -An -c "$MQB_TMP/tid" | tr -s ' ')" '^ [1-9]( [0-9])* \\n$'
sub_finish "delayed message"
T1=$(date +%s%N)
mqb_is "the delayed message arrives, as from the pub that set it" \
	"$(json_field "$OUT" topic payload sender_pid retained)" \
	"'tmr/once' 'later' $PUBPID False"
# the daemon stamps the message when the timer fires
FIRED=$(json_time "$OUT")
[ "$FIRED" -ge $((T0 + 180000000)) ] && [ "$FIRED" -le "$T1" ]
mqb_true "... no earlier than 200 ms after pub started" $? \
	"fired $(((FIRED - T0) / 1000000)) ms after pub started," \
	"sub exited after $(((T1 - T0) / 1000000)) ms"
mqb_check_status "timer list exits 0 after the timer fired" 0 \
	"$MQBUSCTL" timer list
mqb_is "... and prints nothing: a one-shot timer is gone" "$MQB_OUT" ""

# pub --at: a wall-clock time
mqb_sub_start "$OUT" tmr/at -n 1 -t 10000 --json ||
	mqb_notok "subscriber of a message --at a time" "$(cat "$OUT.err")"
AT=$(($(date +%s%3N) + 300))
mqb_check_status "pub --at (now + 300 ms) exits 0" 0 \
	"$MQBUSCTL" pub tmr/at on-time --at "$AT"
mqb_like "... printing the timer's id" "$MQB_OUT" '^[1-9][0-9]*$'
sub_finish "message --at a time"
FIRED=$(json_time "$OUT")
[ "$FIRED" -ge $(((AT - 20) * 1000000)) ]
mqb_true "... fired no earlier than that time" $? \
	"fired $((FIRED / 1000000 - AT)) ms after it"

# pub --delay --every: periodic until cancelled
mqb_sub_start "$OUT" tmr/tick -n 3 -t 10000 ||
	mqb_notok "subscriber of a periodic timer" "$(cat "$OUT.err")"
mqb_check_status "pub --delay 100 --every 100 exits 0" 0 \
	"$MQBUSCTL" pub tmr/tick tock --delay 100 --every 100
TID=$MQB_OUT
mqb_like "... printing the timer's id" "$TID" '^[1-9][0-9]*$'
sub_finish "periodic timer"
mqb_is "a periodic timer's subscriber gets 3 messages" "$(cat "$OUT")" \
	"$(printf 'tmr/tick tock\ntmr/tick tock\ntmr/tick tock')"
mqb_check_status "timer list exits 0" 0 "$MQBUSCTL" timer list
TLINE="^id=$TID topic=tmr/tick next_ms=[0-9]+ period_ms=100"
TLINE="$TLINE fired=([3-9]|[1-9][0-9]+) detached=1 uid=$ME pid=[0-9]+\$"
mqb_like "timer list shows the periodic timer, detached, of our uid" \
	"$MQB_OUT" "$TLINE"
mqb_is "... on its only line" "$(printf '%s\n' "$MQB_OUT" | grep -c .)" 1
mqb_check_status "timer cancel ID exits 0" 0 "$MQBUSCTL" timer cancel "$TID"
mqb_is "... printing nothing" "$MQB_OUT" ""
mqb_check_status "timer list is empty after the cancel" 0 \
	"$MQBUSCTL" timer list
mqb_is "... printing nothing" "$MQB_OUT" ""
mqb_check_status "a cancelled timer sends no more: sub -t 400 exits 3" 3 \
	"$MQBUSCTL" sub tmr/tick -t 400
mqb_check_status "cancelling it again exits 1" 1 \
	"$MQBUSCTL" timer cancel "$TID"
mqb_like "... saying there is no such timer" "$MQB_ERR" \
	"timer $TID: no such timer"
mqb_check_status "timer cancel 999999 exits 1" 1 \
	"$MQBUSCTL" timer cancel 999999
mqb_like "... saying there is no such timer" "$MQB_ERR" 'no such timer'

# a timer's message with a key: it fires with the key, and list shows it
mqb_sub_start "$OUT" tmr/keyed -n 1 -t 10000 ||
	mqb_notok "subscriber of a keyed timer" "$(cat "$OUT.err")"
mqb_check_status "pub -k with --delay --every exits 0" 0 \
	"$MQBUSCTL" pub tmr/keyed on -k lamp:9 --delay 50 --every 60000
TID=$MQB_OUT
sub_finish "keyed timer"
mqb_is "its firing carries the key" "$(cat "$OUT")" "tmr/keyed on (key lamp:9)"
"$MQBUSCTL" timer list >"$MQB_TMP/tlist"
mqb_like "timer list ends the keyed timer's line with key=lamp:9" \
	"$(cat "$MQB_TMP/tlist")" "^id=$TID topic=tmr/keyed .* key=lamp:9\$"
mqb_check_status "and cancels it" 0 "$MQBUSCTL" timer cancel "$TID"

# ------------------------------------------------------------ limits

LIM=$("$MQBUSCTL" limits 2>"$MQB_TMP/limits.err")
mqb_is "mqbusctl limits exits 0" "$?" 0
missing=
for k in msg_max msgsize_max queues_max msg_default msgsize_default \
	mq_prio_max rlimit_msgqueue_soft rlimit_msgqueue_hard \
	rlimit_msgqueue_used queues_owned queues_in_use client_queue_maxmsg \
	client_queue_msgsize client_bytes clients_fit_remaining \
	clients_fit_total; do
	printf '%s\n' "$LIM" | grep -Eq "^$k: +[^ ]" || missing="$missing $k"
done
mqb_is "limits prints every field" "${missing# }" ""
lim() { printf '%s\n' "$LIM" | sed -n "s/^$1: *//p"; }
mqb_is "limits: msg_max is the kernel's" "$(lim msg_max)" \
	"$(cat /proc/sys/fs/mqueue/msg_max)"
mqb_is "limits: msgsize_max is the kernel's" "$(lim msgsize_max)" \
	"$(cat /proc/sys/fs/mqueue/msgsize_max)"
mqb_is "limits: rlimit_msgqueue_soft is ulimit -q" \
	"$(lim rlimit_msgqueue_soft)" "$(ulimit -q)"
mqb_like "limits: queues_in_use counts the daemon's queue" \
	"$(lim queues_in_use)" '^[1-9][0-9]*( of [0-9]+)?$'
LIMQ=$(MQBUS_QUEUE_MAXMSG=3 MQBUS_QUEUE_MSGSIZE=1024 "$MQBUSCTL" limits)
mqb_is "limits follows MQBUS_QUEUE_MAXMSG" \
	"$(printf '%s\n' "$LIMQ" | sed -n 's/^client_queue_maxmsg: *//p')" 3
mqb_is "limits follows MQBUS_QUEUE_MSGSIZE" \
	"$(printf '%s\n' "$LIMQ" | sed -n 's/^client_queue_msgsize: *//p')" 1024
mqb_is "limits --json is valid JSON with the same msg_max" \
	"$("$MQBUSCTL" limits --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["msg_max"])' 2>&1)" \
	"$(lim msg_max)"
if [ "${MQBUS_TEST_PRIVATE_IPC:-}" = 1 ]; then
	# our own IPC namespace: its sysctl values are ours to change
	old=$(cat /proc/sys/fs/mqueue/msg_max)
	echo 7 >/proc/sys/fs/mqueue/msg_max
	mqb_is "limits shows a changed fs.mqueue.msg_max" \
		"$("$MQBUSCTL" limits | sed -n 's/^msg_max: *//p')" 7
	echo "$old" >/proc/sys/fs/mqueue/msg_max
else
	mqb_skip "limits shows a changed fs.mqueue.msg_max" \
		"needs a private IPC namespace"
fi

# ------------------------------------------------------------ stats

STATS=$("$MQBUSCTL" stats)
mqb_is "mqbusctl stats exits 0" "$?" 0
mqb_is "stats prints only key=value lines" \
	"$(printf '%s\n' "$STATS" | grep -Evc '^[a-z_]+=')" 0
mqb_is "stats names the bus" "$(printf '%s\n' "$STATS" | sed -n 's/^bus=//p')" \
	"$BUS"
mqb_is "stats names the wake-up back-end" \
	"$(printf '%s\n' "$STATS" | sed -n 's/^wake=//p')" "$WAKE"
mqb_is "stats gives the daemon's pid" \
	"$(printf '%s\n' "$STATS" | sed -n 's/^pid=//p')" "$DPID"

# ------------------------------------------------------------ pub -l

# one message per line of stdin; empty lines skipped, the last line
# without a newline still sent
mqb_sub_start "$OUT" lines/x -n 3 -t 10000 ||
	mqb_notok "subscriber of lines/x" "$(cat "$OUT.err")"
mqb_check_status "pub -l exits 0" 0 sh -c \
	'printf "one\n\ntwo words\nthree" | "$1" pub -l lines/x' sh "$MQBUSCTL"
sub_finish "pub -l"
mqb_is "pub -l: one message per line, empty lines skipped" "$(cat "$OUT")" \
	"lines/x one
lines/x two words
lines/x three"

# each line is sent as it is read: the subscriber has the first while
# pub -l still waits for the second
FIFO=$MQB_TMP/lines.fifo
mkfifo "$FIFO"
mqb_sub_start "$OUT" lines/s -n 2 -t 10000 --json ||
	mqb_notok "subscriber of lines/s" "$(cat "$OUT.err")"
"$MQBUSCTL" pub -l lines/s -k k7 <"$FIFO" 2>"$MQB_TMP/lines.err" &
LPID=$!
mqb_track "$LPID"
exec 7>"$FIFO"
echo first >&7
mqb_wait_line 10000 "$OUT" '"payload":"first"'
mqb_true "pub -l sends a line before stdin ends" $? "$(cat "$OUT")"
mqb_alive "$LPID"
mqb_true "... and is still reading" $?
echo second >&7
exec 7>&-
mqb_wait_pid "$LPID" 10000
mqb_is "pub -l exits 0 at the end of stdin" $? 0
sub_finish "pub -l, streamed"
mqb_is "pub -l -k: every line carries the key" "$(python3 -c '
import json, sys
print(" ".join("%s=%s" % (m["payload"], m["key"])
               for m in map(json.loads, open(sys.argv[1]))))' "$OUT")" \
	"first=k7 second=k7"
mqb_check_status "pub -l with DATA: exit 2" 2 "$MQBUSCTL" pub -l lines/x data
mqb_check_status "pub -l --delay: exit 2" 2 \
	"$MQBUSCTL" pub -l lines/x --delay 100 </dev/null
mqb_check_status "pub -l on a bus nobody serves: exit 1" 1 \
	env MQBUS_BUS="$(mqb_new_bus nolines)" "$MQBUSCTL" pub -l a/b </dev/null
# a line longer than a queue message goes in pieces; one longer than the
# bus's max_message (1 MiB by default) is refused
mqb_check_status "pub -l: a line longer than a queue message: exit 0" 0 sh -c \
	'{ echo ok; head -c 3000 /dev/zero | tr "\\0" x; echo; } |
	 MQBUS_QUEUE_MSGSIZE=1024 "$1" pub -l lines/x' sh "$MQBUSCTL"
mqb_check_status "pub -l: a line longer than max_message: exit 1" 1 sh -c \
	'{ echo ok; head -c 1100000 /dev/zero | tr "\\0" x; echo; } |
	 "$1" pub -l lines/x' sh "$MQBUSCTL"

# ------------------------------------------------------------ serve --exec
# environment, call --json

# what the command is told about the request it answers; a stale
# MQBUS_KEY of serve's own environment does not leak into it
MQBUS_KEY=stale "$MQBUSCTL" serve env/x --exec \
	'printf "%s|%s|%s|%s|%s|%s|%s" "$MQBUS_TOPIC" "${MQBUS_KEY-unset}" \
	"$MQBUS_SENDER_UID" "$MQBUS_SENDER_PID" "$MQBUS_SENDER_USER" \
	"$MQBUS_SENDER_CLIENT_ID" "$MQBUS_BUS"' -n 2 \
	>"$MQB_TMP/env.out" 2>"$MQB_TMP/env.err" &
EPID=$!
mqb_track "$EPID"
MQB_SPID=$EPID
mqb_wait_subscribed "$(mqb_stat subscriptions)" 1
"$MQBUSCTL" call env/x q >"$MQB_TMP/call.out" 2>&1 &
CPID=$!
wait "$CPID"
mqb_is "call to serve --exec exits 0" $? 0
ME_USER=$(id -un)
mqb_like "serve --exec: MQBUS_TOPIC, no MQBUS_KEY, the caller's uid, pid, user" \
	"$(cat "$MQB_TMP/call.out")" \
	"^env/x\\|unset\\|$ME\\|$CPID\\|$ME_USER\\|[1-9][0-9]*\\|$BUS\$"

# call --json: the reply and who answered (serve's pid, its client id)
mqb_check_status "call --json exits 0" 0 "$MQBUSCTL" call env/x q --json
printf '%s\n' "$MQB_OUT" >"$MQB_TMP/call.json"
mqb_is "call --json: topic, the reply, the responder's uid, user and pid" \
	"$(json_field "$MQB_TMP/call.json" topic sender_uid sender_user \
		sender_pid)" "'env/x' $ME '$ME_USER' $EPID"
mqb_like "... its client id and the time the answer took" \
	"$(json_field "$MQB_TMP/call.json" client_id latency_us)" \
	'^[1-9][0-9]* [0-9]+$'
mqb_like "... and the payload the command wrote" \
	"$(json_field "$MQB_TMP/call.json" payload)" "^'env/x\\|unset\\|$ME\\|"
mqb_wait_pid "$EPID" 10000
mqb_is "serve --exec -n 2 exits 0 after two requests" $? 0
mqb_check_status "call --json with nobody serving: exit 4, no JSON" 4 \
	"$MQBUSCTL" call env/none q --json
mqb_is "... nothing on stdout" "$MQB_OUT" ""

# ------------------------------------------------------------ usage errors

mqb_check_status "no command: exit 2" 2 "$MQBUSCTL"
mqb_check_status "unknown command: exit 2" 2 "$MQBUSCTL" frobnicate
mqb_check_status "pub without topic: exit 2" 2 "$MQBUSCTL" pub
mqb_check_status "pub with a bad priority: exit 2" 2 \
	"$MQBUSCTL" pub a/b x -p high
mqb_check_status "pub with a priority above 32767: exit 2" 2 \
	"$MQBUSCTL" pub a/b x -p 40000
mqb_check_status "pub with an extra argument: exit 2" 2 \
	"$MQBUSCTL" pub a/b x y
mqb_check_status "sub without pattern: exit 2" 2 "$MQBUSCTL" sub
mqb_check_status "sub with a negative count: exit 2" 2 \
	"$MQBUSCTL" sub a/b -n -1
mqb_check_status "sub with a bad timeout: exit 2" 2 \
	"$MQBUSCTL" sub a/b -t soon
mqb_check_status "sub with an unknown option: exit 2" 2 \
	"$MQBUSCTL" sub a/b --frob
mqb_check_status "stats with an argument: exit 2" 2 "$MQBUSCTL" stats x
mqb_check_status "limits with an argument: exit 2" 2 "$MQBUSCTL" limits x
mqb_check_status "pub on a wildcard topic: exit 2" 2 \
	"$MQBUSCTL" pub 'a/+/b' x
mqb_check_status "sub to a bad pattern: exit 2" 2 \
	"$MQBUSCTL" sub 'a/#/b' -t 1000
mqb_check_status "call without topic: exit 2" 2 "$MQBUSCTL" call
mqb_check_status "call with an extra argument: exit 2" 2 \
	"$MQBUSCTL" call a/b x y
mqb_check_status "call with a zero timeout: exit 2" 2 \
	"$MQBUSCTL" call a/b x -t 0
mqb_check_status "serve with neither --echo nor --exec: exit 2" 2 \
	"$MQBUSCTL" serve a/b
mqb_check_status "serve with both --echo and --exec: exit 2" 2 \
	"$MQBUSCTL" serve a/b --echo --exec cat
mqb_check_status "serve without pattern: exit 2" 2 "$MQBUSCTL" serve --echo
mqb_check_status "sub with a bad group name: exit 2" 2 \
	"$MQBUSCTL" sub a/b --group 'two words'
mqb_check_status "serve with an empty group name: exit 2" 2 \
	"$MQBUSCTL" serve a/b --echo --group ''
mqb_check_status "call on a wildcard topic: exit 2" 2 \
	"$MQBUSCTL" call 'a/#' x
mqb_check_status "pub --every without --delay or --at: exit 2" 2 \
	"$MQBUSCTL" pub a/b x --every 100
mqb_check_status "pub --retain --delay: exit 2" 2 \
	"$MQBUSCTL" pub a/b x --retain --delay 100
mqb_check_status "pub --retain --at: exit 2" 2 \
	"$MQBUSCTL" pub a/b x --retain --at 100
mqb_check_status "pub with both --delay and --at: exit 2" 2 \
	"$MQBUSCTL" pub a/b x --delay 100 --at 100
mqb_check_status "pub with a bad delay: exit 2" 2 \
	"$MQBUSCTL" pub a/b x --delay 1s
mqb_check_status "pub with a negative delay: exit 2" 2 \
	"$MQBUSCTL" pub a/b x --delay -5
mqb_check_status "pub with an empty delay: exit 2" 2 \
	"$MQBUSCTL" pub a/b x --delay ''
mqb_check_status "pub with a delay that overflows: exit 2" 2 \
	"$MQBUSCTL" pub a/b x --delay 99999999999999999999999
mqb_check_status "pub with a period of 0: exit 2" 2 \
	"$MQBUSCTL" pub a/b x --delay 100 --every 0
mqb_check_status "pub with a bad period: exit 2" 2 \
	"$MQBUSCTL" pub a/b x --delay 100 --every 1e3
mqb_check_status "pub with a time too far ahead: exit 2" 2 \
	"$MQBUSCTL" pub a/b x --at 99999999999999999
mqb_check_status "timer without an action: exit 2" 2 "$MQBUSCTL" timer
mqb_check_status "timer with an unknown action: exit 2" 2 \
	"$MQBUSCTL" timer stop 1
mqb_check_status "timer list with an argument: exit 2" 2 \
	"$MQBUSCTL" timer list x
mqb_check_status "timer cancel without an id: exit 2" 2 \
	"$MQBUSCTL" timer cancel
mqb_check_status "timer cancel with a bad id: exit 2" 2 \
	"$MQBUSCTL" timer cancel 12x
mqb_check_status "timer cancel with two ids: exit 2" 2 \
	"$MQBUSCTL" timer cancel 1 2
mqb_check_status "after the usage errors, timer list exits 0" 0 \
	"$MQBUSCTL" timer list
mqb_is "... and shows that none of them set a timer" "$MQB_OUT" ""
# ------------------------------------------------------------ one rule for
# exit statuses (mqbusctl(1) and mqbusd(8), EXIT STATUS): a value that is
# not valid is a usage error, 2, in every command and in the daemon,
# whether on the command line or in the environment, and it is refused
# before anything is connected

LONG_TOPIC=$(printf 'x%.0s' $(seq 256))
NOBUS=$(mqb_new_bus nobus)
# NAME|STATUS|COMMAND...: one line each, "|"-separated
while IFS='|' read -r what want args; do
	[ -n "$what" ] || continue
	eval "set -- $args"
	mqb_check_status "exit rule: $what: exit $want" "$want" "$@"
	[ "$want" = 2 ] || continue
	mqb_like "exit rule: $what: says what is wrong" "$MQB_ERR" \
		'invalid|must be|use '
done <<EOF_RULES
pub, bad topic|2|"$MQBUSCTL" pub 'a/+' x
pub, topic of 256 bytes|2|"$MQBUSCTL" pub "$LONG_TOPIC" x
pub, bad key|2|"$MQBUSCTL" pub a/b x -k 'a b'
pub, bad priority|2|"$MQBUSCTL" pub a/b x -p 32768
pub --delay, bad topic|2|"$MQBUSCTL" pub 'a/#' x --delay 100
pub --delay, bad key|2|"$MQBUSCTL" pub a/b x --delay 100 -k ''
pub, bad -b|2|"$MQBUSCTL" -b 'a/b' pub a/b x
pub, bad MQBUS_BUS|2|env MQBUS_BUS=a/b "$MQBUSCTL" pub a/b x
pub, MQBUS_QUEUE_MAXMSG=-3|2|env MQBUS_QUEUE_MAXMSG=-3 "$MQBUSCTL" pub a/b x
pub, MQBUS_QUEUE_MSGSIZE=x|2|env MQBUS_QUEUE_MSGSIZE=x "$MQBUSCTL" pub a/b x
pub, MQBUS_RECONNECT=2|2|env MQBUS_RECONNECT=2 "$MQBUSCTL" pub a/b x
pub, MQBUS_BATCH=yes|2|env MQBUS_BATCH=yes "$MQBUSCTL" pub a/b x
sub, bad pattern|2|"$MQBUSCTL" sub 'a/#/b' -t 100
sub, bad second pattern|2|"$MQBUSCTL" sub a/b 'a+' -t 100
sub, bad group|2|"$MQBUSCTL" sub a/b --group 'a b' -t 100
sub, bad -b|2|"$MQBUSCTL" -b 'x y' sub a -t 100
call, bad topic|2|"$MQBUSCTL" call 'a/+' x
call, bad priority|2|"$MQBUSCTL" call a/b x -p 99999
serve, bad pattern|2|"$MQBUSCTL" serve 'a/#/b' --echo -n 1
serve, bad group|2|"$MQBUSCTL" serve a/b --echo --group '!'
monitor, bad pattern|2|"$MQBUSCTL" monitor '#/a' -t 100
stats, bad MQBUS_BUS|2|env MQBUS_BUS=a/b "$MQBUSCTL" stats
history, bad topic|2|"$MQBUSCTL" history --topic 'a/+'
limits, bad -b|2|"$MQBUSCTL" -b 'a/b' limits
limits, bad MQBUS_BUS|2|env MQBUS_BUS=a/b "$MQBUSCTL" limits
limits, MQBUS_QUEUE_MAXMSG=-3|2|env MQBUS_QUEUE_MAXMSG=-3 "$MQBUSCTL" limits
limits, MQBUS_QUEUE_MSGSIZE=0|2|env MQBUS_QUEUE_MSGSIZE=0 "$MQBUSCTL" limits
mqbusd, bad -b|2|"$MQBUSD" -b 'a/b'
mqbusd, empty -b|2|"$MQBUSD" -b ''
mqbusd, bad MQBUS_BUS|2|env MQBUS_BUS='a b' "$MQBUSD"
-b wins over a bad MQBUS_BUS|0|env MQBUS_BUS=a/b "$MQBUSCTL" -b "$BUS" pub a/b x
-b and a bad MQBUS_BUS and queue size|2|env MQBUS_BUS=a/b MQBUS_QUEUE_MAXMSG=0 "$MQBUSCTL" -b "$BUS" pub a/b x
a valid operation that fails is 1|1|env MQBUS_BUS="$NOBUS" "$MQBUSCTL" pub a/b x
EOF_RULES
# limits and pub refuse an invalid queue size with the same sentence
mqb_check_status "limits refuses MQBUS_QUEUE_MAXMSG=-3" 2 \
	env MQBUS_QUEUE_MAXMSG=-3 "$MQBUSCTL" limits
LIMITS_ERR=$MQB_ERR
mqb_is "... printing nothing on stdout" "$MQB_OUT" ""
mqb_check_status "pub refuses MQBUS_QUEUE_MAXMSG=-3" 2 \
	env MQBUS_QUEUE_MAXMSG=-3 "$MQBUSCTL" pub a/b x
mqb_is "... with the sentence limits gives" "$MQB_ERR" "$LIMITS_ERR"
mqb_like "... naming the variable and its value" "$LIMITS_ERR" \
	"invalid MQBUS_QUEUE_MAXMSG='-3' in the environment"
mqb_check_status "pub to a bus nobody serves: exit 1" 1 \
	env MQBUS_BUS="$(mqb_new_bus nobody)" "$MQBUSCTL" pub a/b x
mqb_like "... saying that no daemon serves it" "$MQB_ERR" 'no (mqbus )?daemon serves'

# ------------------------------------------------------------ shutdown

# a subscriber that does not reconnect (tests/restart.sh: one that does)
MQBUS_RECONNECT=0 "$MQBUSCTL" sub shut/x >"$MQB_TMP/shut.out" 2>&1 &
SPID=$!
mqb_track "$SPID"
mqb_wait_for 10000 mqb_has_client_queues "$BUS" "$SPID"
mqb_true "a subscriber is connected before shutdown" $?
mqb_daemon_stop TERM 10000
mqb_is "SIGTERM: mqbusd exits 0" "$MQB_DSTATUS" 0
grep -qx 'STOPPING=1' "$MQB_DNOTIFY"
mqb_true "SIGTERM: mqbusd sends STOPPING=1" $? "$(cat "$MQB_DNOTIFY")"
mqb_wait_pid "$SPID" 10000
st=$?
[ "$MQB_TIMED_OUT" = 0 ] && [ "$st" != 0 ]
mqb_true "the subscriber is told (BYE) and exits with an error" $? \
	"exit status $st, timed out $MQB_TIMED_OUT: $(cat "$MQB_TMP/shut.out")"
# the daemon leaves a live client its queues; the client removes them
mqb_is "SIGTERM: no queue of the bus is left" \
	"$(mqb_queues "$BUS" | tr '\n' ' ')" ""

# ------------------------------------------------------------ sweep

# Queues of a dead client, planted while no daemon runs, are removed when
# the daemon starts; those of a live process and of another bus are not.
DEAD=$(mqb_dead_pid)
LIVE=$$
OTHER=$(mqb_new_bus other)
planted=0
for q in "$BUS.$DEAD.1.tx" "$BUS.$DEAD.1.rx" "$BUS.$LIVE.9.tx" \
	"$BUS.$LIVE.9.rx" "$OTHER.$DEAD.1.tx"; do
	"$MQTOOL" create "/$q" -m 2 -s 128 >/dev/null && planted=$((planted + 1))
done
mqb_is "stale queues planted" "$planted" 5
if mqb_daemon_start "$WAKE"; then
	mqb_ok "mqbusd starts again on the bus"
else
	mqb_notok "mqbusd starts again on the bus"
fi
left=$(mqb_queues "$BUS" | tr '\n' ' ')
mqb_is "start-up sweep removed the dead pid's queues" \
	"$(mqb_client_queues "$BUS" "$DEAD" | tr '\n' ' ')" ""
mqb_is "start-up sweep kept a live pid's queues" \
	"$(mqb_client_queues "$BUS" "$LIVE" | tr '\n' ' ')" \
	"$BUS.$LIVE.9.rx $BUS.$LIVE.9.tx "
[ -e "/dev/mqueue/$OTHER.$DEAD.1.tx" ]
mqb_true "start-up sweep kept another bus's queue" $? "left: $left"
rm -f "/dev/mqueue/$BUS.$LIVE.9.tx" "/dev/mqueue/$BUS.$LIVE.9.rx" \
	"/dev/mqueue/$OTHER.$DEAD.1.tx"

mqb_daemon_stop INT 10000
mqb_is "SIGINT: mqbusd exits 0" "$MQB_DSTATUS" 0
mqb_is "SIGINT: no queue of the bus is left" \
	"$(mqb_queues "$BUS" | tr '\n' ' ')" ""

mqb_done

#!/bin/bash
# SPDX-License-Identifier: MIT
#
# examples.sh - the programs of libmqbus(3), EXAMPLES (examples/*.c), run
# against the real mqbusd, each checked for what it prints; and the man
# page checked to show each program's text exactly (from its first
# #include to its end), so that neither can change without the other.

. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

mqb_init
EX=$top_builddir/examples
# small queues: RLIMIT_MSGQUEUE is per uid and shared with what else runs
MQBUS_QUEUE_MAXMSG=4
MQBUS_QUEUE_MSGSIZE=1024
export MQBUS_QUEUE_MAXMSG MQBUS_QUEUE_MSGSIZE
PAGE=$top_srcdir/client/libmqbus.3
EXAMPLES="publish blocking event-loop handlers async retained responder
requester"

command -v python3 >/dev/null 2>&1 || mqb_bail "python3 is installed" \
	"the man page check needs python3"
for e in $EXAMPLES; do
	[ -x "$EX/$e" ] || mqb_bail "examples/$e is built" \
		"run make check (it builds examples/)"
done

# ------------------------------------------------------------ the page

# The code blocks (.EX ... .EE) of the page, with roff's escapes undone,
# must hold each program's text from its first #include on.
for e in $EXAMPLES; do
	WHY=$(python3 - "$PAGE" "$top_srcdir/examples/$e.c" <<'EOF'
import re, sys
page, src = open(sys.argv[1]).read(), open(sys.argv[2]).read()
blocks = re.findall(r'^\.EX\n(.*?)^\.EE$', page, re.S | re.M)
plain = [b.replace('\\-', '-').replace('\\(aq', "'").replace('\\e', '\\')
         for b in blocks]
body = src[src.index('#include'):]
if body in plain:
    print('ok')
else:
    best = max(plain, key=lambda b: len(set(b.splitlines()) &
                                        set(body.splitlines())))
    for a, b in zip(body.splitlines(), best.splitlines()):
        if a != b:
            print('first difference: program %r, page %r' % (a, b))
            break
    else:
        print('the page has %d lines, the program %d' %
              (len(best.splitlines()), len(body.splitlines())))
EOF
)
	mqb_is "libmqbus(3) shows examples/$e.c as it is" "$WHY" ok
done

if ! mqb_daemon_start notify; then
	mqb_bail "mqbusd starts and sends READY=1"
fi
mqb_ok "mqbusd starts and sends READY=1"
OUT=$MQB_TMP/out

# ------------------------------------------------------------ publish

mqb_sub_start "$OUT" 'sensors/#' -n 2 -t 10000 ||
	mqb_notok "a subscriber of sensors/#" "$(cat "$OUT.err")"
mqb_check_status "publish exits 0" 0 "$EX/publish"
mqb_check_status "publish TOPIC VALUE exits 0" 0 "$EX/publish" \
	sensors/cpu/load 0.5
mqb_wait_pid "$MQB_SPID" 10000
mqb_is "the subscriber got both" "$(cat "$OUT")" \
	"sensors/disk/temp 41
sensors/cpu/load 0.5"
mqb_check_status "publish on a bus nobody serves exits 1" 1 \
	env MQBUS_BUS="$(mqb_new_bus nobody)" "$EX/publish"
mqb_like "... saying why" "$MQB_ERR" 'daemon|bus'
mqb_check_status "publish on a bad topic exits 1" 1 "$EX/publish" 'a/#' x
mqb_like "... with the library's sentence" "$MQB_ERR" "invalid topic 'a/#'"

# ------------------------------------------------------------ blocking

mqb_check_status "blocking exits 0 after a quiet second" 0 "$EX/blocking"
mqb_is "blocking printed its own message with its uid" "$MQB_OUT" \
	"disk/sda/temp from uid $(id -u): 41"

# ------------------------------------------------------------ event loop

# starts an example in the background with stdout to $OUT.NAME and waits
# for its line "ready" or for the daemon to count its subscriptions
bg_start() {
	local name=$1 want=$2 before
	shift 2
	mqb_wait_for 5000 mqb_settled "$BUS"
	before=$(mqb_stat subscriptions)
	"$EX/$name" "$@" >"$OUT.$name" 2>"$OUT.$name.err" &
	BG=$!
	mqb_track "$BG"
	MQB_SPID=$BG
	mqb_wait_subscribed "${before:-0}" "$want"
}

bg_start event-loop 1
for a in fire flood smoke; do
	mqb_check "pub alerts/$a" "$MQBUSCTL" pub "alerts/$a" "in room $a"
done
mqb_wait_pid "$BG" 10000
mqb_is "event-loop exits 0 after three messages" $? 0
mqb_is "event-loop printed them in order" "$(cat "$OUT.event-loop")" \
	"alerts/fire: in room fire
alerts/flood: in room flood
alerts/smoke: in room smoke"

# ------------------------------------------------------------ handlers

bg_start handlers 3
mqb_wait_line 5000 "$OUT.handlers" '^ready$'
"$MQBUSCTL" pub sensors/disk/temp 41 || mqb_notok "pub sensors/disk/temp"
"$MQBUSCTL" pub sensors/disk/load 3 || mqb_notok "pub sensors/disk/load"
"$MQBUSCTL" pub alerts/fire yes || mqb_notok "pub alerts/fire"
"$MQBUSCTL" pub sensors/cpu/temp 60 || mqb_notok "pub sensors/cpu/temp"
mqb_wait_pid "$BG" 10000
mqb_is "handlers exits 0 after four messages" $? 0
mqb_is "each message to its handlers, in subscription order" \
	"$(cat "$OUT.handlers")" \
	"sensors/+/temp matches sensors/disk/temp
ready
temp sensors/disk/temp: 41 degrees
any sensors/disk/temp
any sensors/disk/load
other alerts/fire
temp sensors/cpu/temp: 60 degrees
any sensors/cpu/temp"

# ------------------------------------------------------------ async

# one of the two topics has a responder, the other none
before=$(mqb_stat subscriptions)
"$MQBUSCTL" serve disk/sda/smart --echo -n 1 >/dev/null 2>&1 &
SPID=$!
mqb_track "$SPID"
MQB_SPID=$SPID
mqb_wait_subscribed "${before:-0}" 1
mqb_check_status "async exits 0 once both requests are answered" 0 \
	"$EX/async"
mqb_is "one reply, one 'no responders', each under its topic" \
	"$(printf '%s\n' "$MQB_OUT" | sort)" \
	"disk/sda/smart: status?
disk/sdb/smart: no responders on topic disk/sdb/smart"
mqb_wait_pid "$SPID" 5000

# ------------------------------------------------------------ retained

mqb_check_status "retained exits 0" 0 "$EX/retained"
mqb_like "retained set a timer and said its id" "$MQB_OUT" \
	'^timer [0-9]+; cancel it'
mqb_like "... and saw the value it kept as a later subscriber" \
	"$MQB_OUT" 'config/mode was already maintenance'
TID=$(printf '%s\n' "$MQB_OUT" | sed -n 's/^timer \([0-9]*\);.*/\1/p')
mqb_check_status "the detached timer outlives the program" 0 \
	"$MQBUSCTL" sub host/alive -n 1 -t 5000
mqb_is "... and publishes its heartbeat" "$MQB_OUT" "host/alive yes"
mqb_check_status "... until cancelled" 0 "$MQBUSCTL" timer cancel "$TID"
mqb_check_status "a later subscriber still gets the value" 0 \
	"$MQBUSCTL" sub 'config/#' -n 1 -t 5000
mqb_is "... marked retained" "$MQB_OUT" "config/mode maintenance (retained)"

# ------------------------------------------------------------ request

mqb_check_status "requester with nobody serving exits 1" 1 "$EX/requester"
mqb_is "... saying so" "$MQB_ERR" "nobody serves text/upper"
bg_start responder 1 2
mqb_check_status "requester exits 0" 0 "$EX/requester"
mqb_is "the answer, from the responder's pid" "$MQB_OUT" \
	"HELLO from pid $BG"
mqb_check_status "requester TEXT exits 0" 0 "$EX/requester" 'mixed Case'
mqb_is "... upper-cased" "$MQB_OUT" "MIXED CASE from pid $BG"
mqb_wait_pid "$BG" 10000
mqb_is "the responder exits 0 after its two answers" $? 0

mqb_daemon_stop TERM 10000
mqb_is "mqbusd exits 0" "$MQB_DSTATUS" 0
mqb_is "no queue of the bus is left" "$(mqb_queues "$BUS" | tr '\n' ' ')" ""

mqb_done

#!/bin/bash
# SPDX-License-Identifier: MIT
#
# restart.sh - mqbusctl sub and serve across a restart of mqbusd.
#
# The daemon is SIGKILLed and started again, then stopped with SIGTERM
# and started again: each time `mqbusctl sub` and `mqbusctl serve` keep
# running, say one line on stderr when the connection goes and one when
# it is back, and work afterwards (a publish reaches sub, a call is
# answered by serve, also from a queue group).  With MQBUS_RECONNECT=0 a
# sub exits with an error when the daemon dies, as before.

. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

mqb_init
WAKE=${MQBUS_TEST_WAKE:-notify}

if ! mqb_daemon_start "$WAKE"; then
	mqb_bail "mqbusd --wake=$WAKE starts"
fi
mqb_ok "mqbusd --wake=$WAKE starts"

SUB_OUT=$MQB_TMP/sub.out
SRV_OUT=$MQB_TMP/serve.out
OFF_OUT=$MQB_TMP/off.out
"$MQBUSCTL" sub 'rs/#' >"$SUB_OUT" 2>"$SUB_OUT.err" &
SUB=$!
mqb_track "$SUB"
"$MQBUSCTL" serve --echo --group g rs/call >"$SRV_OUT" 2>"$SRV_OUT.err" &
SRV=$!
mqb_track "$SRV"
MQBUS_RECONNECT=0 "$MQBUSCTL" sub 'rs/#' >"$OFF_OUT" 2>"$OFF_OUT.err" &
OFF=$!
mqb_track "$OFF"
mqb_wait_for 10000 mqb_stat_ge subscriptions 3
mqb_true "sub, serve and a sub with MQBUS_RECONNECT=0 are subscribed" $?

# ge_lines FILE REGEX N: whether at least N lines of FILE match.
ge_lines() {
	[ "$(grep -Ec -- "$2" "$1")" -ge "$3" ]
}

both_back() {
	ge_lines "$SUB_OUT.err" '^mqbusctl: sub: reconnected to bus ' "$1" &&
		ge_lines "$SRV_OUT.err" '^mqbusctl: serve: reconnected to bus ' "$1"
}

# round KIND SIGNAL N: stops the daemon with SIGNAL ("died" or "stopped"
# is what the clients say), starts it again and checks sub and serve; N
# is the number of this restart.
round() {
	local kind=$1 sig=$2 n=$3 reply
	mqb_daemon_stop "$sig" 10000 2>/dev/null
	mqb_wait_for 5000 ge_lines "$SUB_OUT.err" \
		"^mqbusctl: sub: the daemon of bus .* $kind; reconnecting\$" 1
	mqb_true "$kind: sub says on stderr that the daemon $kind" $? \
		"$(cat "$SUB_OUT.err")"
	# several of their receive slices with no daemon at all
	sleep 1
	mqb_alive "$SUB" && mqb_alive "$SRV"
	mqb_true "$kind: sub and serve wait while no daemon runs" $? \
		"sub: $(cat "$SUB_OUT.err")" "serve: $(cat "$SRV_OUT.err")"
	if ! mqb_daemon_start "$WAKE"; then
		mqb_bail "mqbusd starts again after it $kind"
	fi
	mqb_wait_for 10000 both_back "$n"
	mqb_true "$kind: sub and serve say they reconnected" $? \
		"sub: $(cat "$SUB_OUT.err")" "serve: $(cat "$SRV_OUT.err")"
	mqb_alive "$SUB" && mqb_alive "$SRV"
	mqb_true "$kind: sub and serve still run" $?
	"$MQBUSCTL" pub rs/x "after-$kind" >/dev/null
	mqb_wait_line 5000 "$SUB_OUT" "after-$kind"
	mqb_true "$kind: sub gets a publish after the restart" $? \
		"$(cat "$SUB_OUT")"
	reply=$("$MQBUSCTL" call -t 5000 rs/call "ping-$kind" 2>&1)
	mqb_is "$kind: serve (in a queue group) answers a call" "$reply" \
		"ping-$kind"
}

round died KILL 1
mqb_wait_pid "$OFF" 5000
st=$?
mqb_is "MQBUS_RECONNECT=0: sub exits 1 when the daemon dies" "$st" 1
grep -q "died" "$OFF_OUT.err"
mqb_true "MQBUS_RECONNECT=0: sub says why" $? "$(cat "$OFF_OUT.err")"
round stopped TERM 2

lines=$(grep -c . "$SUB_OUT.err")
mqb_is "sub wrote one line per disconnection and per reconnection" \
	"$lines" 4
lines=$(grep -c . "$SRV_OUT.err")
mqb_is "serve wrote one line per disconnection and per reconnection" \
	"$lines" 4

kill -TERM "$SUB" "$SRV"
mqb_wait_pid "$SUB" 5000
mqb_is "sub exits 0 on SIGTERM" $? 0
mqb_wait_pid "$SRV" 5000
mqb_is "serve exits 0 on SIGTERM" $? 0
mqb_daemon_stop TERM 10000
mqb_true "mqbusd stops" $?
mqb_no_queues "$BUS"
mqb_true "no queue of the bus is left" $? "$(mqb_queues "$BUS")"
mqb_done

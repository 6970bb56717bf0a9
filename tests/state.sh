#!/bin/bash
# SPDX-License-Identifier: MIT
#
# state.sh - retained values and timers survive a restart of mqbusd with
# a state directory (-s DIR, mqbusd(8) STATE):
#
#   - after SIGKILL (once the state was written) and a start with the same
#     -s DIR: the retained values (payload, key, sender) and a periodic
#     detached timer are back, the timer fires again, new timers go on
#     from the old next id
#   - a clean stop writes what changed at once
#   - a truncated file, a file with a flipped byte and an empty file each
#     give one log line saying why, are set aside as BUS.state.bad, and
#     the daemon starts empty and serves
#   - a file written under bigger per-uid bounds is cut to the new ones,
#     and the log line counts what was dropped
#   - a state directory that goes away makes writes fail: logged, not fatal
#   - without -s no file is written; a -s DIR that does not exist is a
#     start-up error

. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

mqb_init
WAKE=${MQBUS_STATE_WAKE:-notify}
SDIR=$MQB_TMP/state
mkdir -p "$SDIR"
STATE=$SDIR/$BUS.state

start() {
	mqb_daemon_start "$WAKE" -s "$SDIR" "$@"
}

# has_state TEXT: the state file holds TEXT (a topic or payload)
has_state() {
	[ -f "$STATE" ] && grep -aq -- "$1" "$STATE"
}

# retained_lines: the RETAINED table of `mqbusctl topics`, sorted
retained_lines() {
	"$MQBUSCTL" topics 2>&1 |
		sed -n '/^RETAINED/,/^$/p' | sed '1d;/^$/d' | sort
}

# serves: a round trip through the daemon works
serves() {
	local out=$MQB_TMP/serves.out
	mqb_sub_start "$out" st/ping -n 1 -t 5000 || return 1
	"$MQBUSCTL" pub st/ping pong >/dev/null 2>&1 || return 1
	mqb_wait_pid "$MQB_SPID" 5000 || return 1
	[ "$(cat "$out")" = "st/ping pong" ]
}

# ------------------------------------------------------- SIGKILL, restart

start || mqb_bail "mqbusd -s DIR starts"
mqb_ok "mqbusd -s DIR starts"
mqb_like "it says there is no state file yet" "$(cat "$MQB_DERR")" \
	"state: no .*$BUS.state yet"

mqb_check "pub --retain st/a" "$MQBUSCTL" pub st/a alpha-value --retain
mqb_check "pub --retain st/b with a key" "$MQBUSCTL" pub st/b beta-value \
	-k kb --retain
TID=$("$MQBUSCTL" pub st/tick tock --delay 100 --every 300 2>&1)
mqb_is "a periodic detached timer is made" "$TID" 1
mqb_wait_for 5000 has_state st/tick
mqb_true "the state is written within the bounded delay" $? \
	"$(ls -la "$SDIR")"
has_state alpha-value && has_state beta-value
mqb_true "the state file holds both values" $?
[ "$(stat -c %a "$STATE")" = 600 ]
mqb_true "the state file is mode 0600" $? "$(stat -c %a "$STATE")"
BEFORE=$(retained_lines)
mqb_like "two retained values before the kill" "$(echo "$BEFORE" |
	grep -c .)" '^2$'

mqb_daemon_stop KILL
mqb_is "mqbusd SIGKILLed" "$MQB_DSTATUS" 137

start || mqb_bail "mqbusd starts again with the same -s DIR"
mqb_ok "mqbusd starts again with the same -s DIR"
mqb_like "the load is logged" "$(cat "$MQB_DERR")" \
	"state: loaded 2 retained values and 1 timer"
mqb_is "the retained values are back, sender and all" "$(retained_lines)" \
	"$BEFORE"
OUT=$MQB_TMP/sub.out
"$MQBUSCTL" sub 'st/#' -n 2 -t 3000 >"$OUT" 2>&1
mqb_is "a subscriber gets both values, the key kept" "$(sort "$OUT")" \
	"st/a alpha-value (retained)
st/b beta-value (key kb) (retained)"
LIST=$("$MQBUSCTL" timer list 2>&1)
mqb_like "the timer is listed with its id and period" "$LIST" \
	"^id=1 topic=st/tick next_ms=[0-9]+ period_ms=300 fired=[0-9]+ detached=1"
"$MQBUSCTL" sub st/tick -n 2 -t 3000 >"$OUT" 2>&1
mqb_is "the timer fires again" "$(cat "$OUT")" "st/tick tock
st/tick tock"
TID=$("$MQBUSCTL" pub st/later x --delay 600000 2>&1)
mqb_is "a new timer goes on from the old next id" "$TID" 2
mqb_check "timer 2 cancelled" "$MQBUSCTL" timer cancel 2

# ------------------------------------------------------- a clean stop

mqb_check "pub --retain st/c" "$MQBUSCTL" pub st/c gamma-value --retain
mqb_check "pub --retain st/a '' (forgets st/a)" "$MQBUSCTL" pub st/a '' \
	--retain
mqb_daemon_stop TERM
mqb_is "mqbusd stops on SIGTERM" "$MQB_DSTATUS" 0
has_state gamma-value && ! has_state alpha-value
mqb_true "a clean stop writes the last changes at once" $?
start || mqb_bail "mqbusd starts after a clean stop"
mqb_like "after a clean stop: st/b and st/c" "$(retained_lines |
	awk '{print $1}' | tr '\n' ' ')" '^st/b st/c $'
mqb_daemon_stop TERM

GOOD=$MQB_TMP/good.state
cp "$STATE" "$GOOD"
SIZE=$(stat -c %s "$GOOD")

# ------------------------------------------------------- unusable files

# bad_file NAME WHY-REGEX: starts on the file in place, checks the log
# line, the file set aside, an empty bus that serves
bad_file() {
	local name=$1 why=$2 line
	rm -f "$STATE.bad"
	if ! start; then
		mqb_notok "$name: mqbusd starts"
		return
	fi
	mqb_ok "$name: mqbusd starts"
	line=$(grep 'state: ignoring' "$MQB_DERR")
	mqb_like "$name: one log line says why" "$line" \
		"state: ignoring .*$BUS.state: $why[^;]*; starting with no retained"
	mqb_is "$name: just one such line" "$(echo "$line" | grep -c .)" 1
	[ -f "$STATE.bad" ] && [ ! -f "$STATE" ]
	mqb_true "$name: the file is set aside as .bad" $? "$(ls -la "$SDIR")"
	mqb_is "$name: no retained value" "$(retained_lines)" ""
	mqb_like "$name: no timer" "$("$MQBUSCTL" timer list 2>&1)" '^$'
	serves
	mqb_true "$name: the bus serves" $?
	mqb_daemon_stop TERM
	mqb_is "$name: mqbusd stops cleanly" "$MQB_DSTATUS" 0
}

head -c $((SIZE - 9)) "$GOOD" >"$STATE"
bad_file "truncated" "checksum mismatch"

cp "$GOOD" "$STATE"
OFF=$(grep -abo gamma-value "$STATE" | head -n 1 | cut -d: -f1)
printf 'G' | dd of="$STATE" bs=1 seek="$OFF" conv=notrunc 2>/dev/null
cmp -s "$STATE" "$GOOD"
[ $? = 1 ]
mqb_true "one byte of a payload flipped" $?
bad_file "flipped byte" "checksum mismatch"

: >"$STATE"
bad_file "empty" "the file is empty"

printf 'NOTSTATE%056d' 0 >"$STATE"
bad_file "not a state file" "not an mqbusd state file"

# ------------------------------------------------------- smaller bounds

rm -f "$STATE" "$STATE.bad"
CONF=$MQB_TMP/big.conf
printf '[bus]\nmax_retained_per_uid = 10\nmax_timers_per_uid = 5\n' >"$CONF"
start -c "$CONF" || mqb_bail "mqbusd starts with bigger per-uid bounds"
for i in 0 1 2 3 4 5 6 7 8 9; do
	"$MQBUSCTL" pub "q/$i" "v$i" --retain >/dev/null 2>&1
done
for i in 0 1 2; do
	"$MQBUSCTL" pub "qt/$i" x --delay 600000 >/dev/null 2>&1
done
mqb_wait_for 5000 has_state qt/2
mqb_true "10 values and 3 timers written" $?
mqb_daemon_stop KILL
printf '[bus]\nmax_retained_per_uid = 3\nmax_timers_per_uid = 1\n' >"$CONF"
start -c "$CONF" || mqb_bail "mqbusd starts with smaller per-uid bounds"
mqb_like "the log line counts what was dropped" "$(cat "$MQB_DERR")" \
	"loaded 3 retained values and 1 timer .*dropped 0 values over max_retained, 7 over the per-uid shares, 2 timers over the per-uid bounds"
mqb_is "the first 3 values are kept" "$(retained_lines |
	awk '{print $1}' | tr '\n' ' ')" "q/0 q/1 q/2 "
mqb_is "one timer is kept, the first" "$("$MQBUSCTL" timer list 2>&1 |
	awk '{print $2}')" "topic=qt/0"
# the quota holds: one more value of this uid is refused
OUT2=$("$MQBUSCTL" pub q/x more --retain 2>&1)
mqb_like "the loaded values count against the uid's share" "$OUT2" \
	"max_retained_per_uid"
mqb_daemon_stop TERM
has_state q/2 && ! has_state q/3
mqb_true "the file is cut to the bounds too" $?

# ------------------------------------------------------- write errors

rm -rf "$SDIR"
mkdir -p "$SDIR"
start || mqb_bail "mqbusd starts on an empty state directory"
rmdir "$SDIR"
mqb_check "pub --retain with the state directory gone" "$MQBUSCTL" pub \
	st/gone v --retain
mqb_wait_line 5000 "$MQB_DERR" "state: cannot write .*$BUS.state"
mqb_true "a failed write is logged" $? "$(cat "$MQB_DERR")"
mqb_alive "$MQB_DPID"
mqb_true "mqbusd keeps running" $?
serves
mqb_true "and serving" $?
mqb_daemon_stop TERM
mqb_is "and stops cleanly" "$MQB_DSTATUS" 0

# ------------------------------------------------------- no state

mkdir -p "$SDIR"
mqb_daemon_start "$WAKE" || mqb_bail "mqbusd starts without -s"
"$MQBUSCTL" pub st/none v --retain >/dev/null 2>&1
mqb_daemon_stop TERM
[ -z "$(ls -A "$SDIR")" ]
mqb_true "without -s nothing is written" $? "$(ls -la "$SDIR")"

mqb_check_status "-s with a missing directory is a start-up error" 1 \
	"$MQBUSD" -b "$BUS" -s "$MQB_TMP/missing" --log=stderr
mqb_like "it says why" "$MQB_ERR" \
	"cannot use state directory .*missing: No such file or directory"

mqb_done

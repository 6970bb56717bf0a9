#!/bin/bash
# SPDX-License-Identifier: MIT
#
# quota.sh - one user's share of the bus: what a second, unprivileged
# user (MQBUS_TEST_USER, default mqbus-test) can make the daemon hold is
# bounded and refused with a sentence naming the bound, while a third
# user (mqbus-test2) keeps publishing and subscribing as before.
#
#   - clients per uid (max_clients_per_uid)
#   - timers per uid, their shortest period and their firing rate
#     (max_timers_per_uid, timer_min_period_ms, timer_rate_per_uid)
#   - retained values per uid (max_retained_per_uid)
#   - the daemon's own descriptors (RLIMIT_NOFILE): a client that comes
#     when none are left is told so at once, not left to time out

. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

if [ "$(id -u)" != 0 ]; then
	echo "# SKIP: needs root (to add users and switch to them)"
	exit 77
fi
mqb_init
if ! mqb_test_user; then
	[ "${CI:-}" = true ] && mqb_bail "a second user exists" "$MQB_USER_WHY"
	echo "# SKIP: $MQB_USER_WHY"
	exit 77
fi
U1ID=$TUID U1GID=$TGID
MQBUS_TEST_USER=mqbus-test2 mqb_test_user ||
	mqb_bail "a third user exists" "$MQB_USER_WHY"
U2ID=$TUID U2GID=$TGID

RUN=$MQB_TMP/run
mqb_copy_ctl "$RUN"
mqb_true "mqbusctl copied where the users can run it" $?

# u1 / u2 ARGS: mqbusctl ARGS as the second / third user, small queues;
# u1_bg OUT ARGS: the same in the background, output to OUT, BGPID
# mqbusctl's own pid
as() {
	mqb_as_argv "$1" "$2" "" "$RUN" MQBUS_QUEUE_MAXMSG=4 \
		MQBUS_QUEUE_MSGSIZE=512
}
u1() { as "$U1ID" "$U1GID"; "${MQB_AS[@]}" "$RUN/mqbusctl" "$@"; }
u2() { as "$U2ID" "$U2GID"; "${MQB_AS[@]}" "$RUN/mqbusctl" "$@"; }
u1_bg() {
	local out=$1
	shift
	as "$U1ID" "$U1GID"
	"${MQB_AS[@]}" "$RUN/mqbusctl" "$@" >"$out" 2>&1 &
	BGPID=$!
	mqb_track "$BGPID"
}

# the other user's round trip, which must keep working
roundtrip() {
	u2 sub quota/u2 -n 1 -t 5000 >"$MQB_TMP/rt.out" 2>&1 &
	local spid=$!
	mqb_wait_for 5000 mqb_stat_ge subscriptions $(($1 + 1))
	u2 pub quota/u2 still-here >/dev/null 2>&1
	mqb_wait_pid "$spid" 6000
	[ "$(cat "$MQB_TMP/rt.out")" = "quota/u2 still-here" ]
}

CONF=$MQB_TMP/mqbusd.conf
cat >"$CONF" <<'CONF'
[bus]
max_clients_per_uid = 3
max_timers_per_uid = 4
timer_min_period_ms = 50
timer_rate_per_uid = 30
max_retained_per_uid = 3
max_subscriptions_per_uid = 3
max_requests_per_uid = 1
CONF
mqb_daemon_start notify -c "$CONF" || mqb_bail "mqbusd starts"

# ------------------------------------------------------------ clients

pids=()
for i in 1 2 3; do
	u1_bg /dev/null sub "quota/u1/$i" -t 30000
	pids+=("$BGPID")
done
mqb_wait_for 10000 mqb_stat_ge subscriptions 3
mqb_true "the second user holds 3 clients" $?
t0=$(mqb_now_ms)
out=$(u1 stats 2>&1)
st=$?
t1=$(mqb_now_ms)
mqb_is "a 4th client of that uid is refused (exit 1)" "$st" 1
mqb_like "... with the bound named" "$out" \
	"uid $U1ID has reached max_clients_per_uid \\(3\\)"
[ $((t1 - t0)) -lt 3000 ]
mqb_true "... at once, not after a timeout ($((t1 - t0)) ms)" $?
roundtrip 3
mqb_true "meanwhile another user's round trip works" $?
kill "${pids[@]}" 2>/dev/null
wait "${pids[@]}" 2>/dev/null
mqb_wait_for 5000 eval "[ \"\$(mqb_stat clients)\" = 1 ]"

# ------------------------------------------------------------ subscriptions, requests

u1_bg /dev/null sub quota/s/1 quota/s/2 quota/s/3 -t 30000
SP=$BGPID
mqb_wait_for 10000 mqb_stat_ge subscriptions 3
out=$(u1 sub quota/s/4 -n 1 -t 1000 2>&1)
mqb_like "a 4th subscription of that uid (in another client) is refused" \
	"$out" "uid $U1ID has reached max_subscriptions_per_uid \(3\)"
kill "$SP" 2>/dev/null
wait "$SP" 2>/dev/null
mqb_wait_for 5000 eval "[ \"\$(mqb_stat subscriptions)\" = 0 ]"
"$MQBUSCTL" serve quota/q --echo >/dev/null 2>&1 &
SV=$!
mqb_track "$SV"
mqb_wait_for 10000 mqb_stat_ge subscriptions 1
kill -STOP "$SV"
u1_bg /dev/null call quota/q one -t 20000
CP=$BGPID
mqb_wait_for 5000 mqb_stat_ge requests_in_flight 1
out=$(u1 call quota/q two -t 2000 2>&1)
mqb_like "a 2nd request in flight of that uid is refused" "$out" \
	"uid $U1ID has reached max_requests_per_uid \(1\) in flight"
kill -CONT "$SV"
mqb_wait_pid "$CP" 10000
mqb_is "... while the first is answered" "$?" 0
kill "$SV" 2>/dev/null
wait "$SV" 2>/dev/null
mqb_wait_for 5000 eval "[ \"\$(mqb_stat clients)\" = 0 ]"

# ------------------------------------------------------------ timers

out=$(u1 pub quota/t x --delay 1000 --every 10 2>&1)
mqb_like "a period below timer_min_period_ms is refused" "$out" \
	"below timer_min_period_ms \\(50\\)"
out=$(u1 pub quota/t x --delay 60000 --every 50 2>&1)
mqb_is "a 50 ms timer (20 firings a second) is taken" "$?" 0
out=$(u1 pub quota/t x --delay 60000 --every 50 2>&1)
mqb_like "a second one would pass timer_rate_per_uid (30/s): refused" \
	"$out" "more often than timer_rate_per_uid \\(30 a second\\)"
n=1
for i in 1 2 3 4; do
	u1 pub quota/t x --delay 600000 >/dev/null 2>&1 && n=$((n + 1))
done
mqb_is "one-shot timers up to max_timers_per_uid (4)" "$n" 4
out=$(u1 pub quota/t x --delay 600000 2>&1)
mqb_like "... the next is refused" "$out" \
	"uid $U1ID has reached max_timers_per_uid \\(4\\)"
out=$(u2 pub quota/t2 x --delay 600000 2>&1)
mqb_is "another user still makes timers" "$?" 0

# ------------------------------------------------------------ retained

before=$(mqb_stat retain_refused)
for i in 1 2 3; do
	u1 pub "quota/r/$i" v --retain >/dev/null 2>&1
done
out=$(u1 pub quota/r/4 v --retain 2>&1)
mqb_is "a 4th retained value of that uid: the publish says so (exit 1)" \
	"$?" 1
mqb_like "... naming the bound" "$out" \
	"value of quota/r/4 not retained: uid $U1ID would hold more than max_retained_per_uid \(3\)"
u1 pub quota/r/5 v --retain >/dev/null 2>&1
mqb_wait_for 3000 mqb_stat_ge retain_refused $((before + 2))
mqb_true "retained values past max_retained_per_uid (3) are refused" $?
mqb_is "... the bus keeps 3 of that uid" "$(mqb_stat retained)" 3
u2 pub quota/r/u2 mine --retain
mqb_is "another user's value is kept" \
	"$(u2 sub 'quota/r/u2' -n 1 -t 3000 2>&1)" "quota/r/u2 mine (retained)"
u1 pub quota/r/1 '' --retain
mqb_wait_for 3000 eval "[ \"\$(mqb_stat retained)\" = 3 ]"
u1 pub quota/r/6 again --retain
mqb_wait_for 3000 eval "[ \"\$(mqb_stat retained)\" = 4 ]"
mqb_true "clearing one gives its share back" $? "retained: $(mqb_stat retained)"

RSS=$(awk '/^VmRSS/ {print $2}' "/proc/$MQB_DPID/status")
[ "$RSS" -lt 65536 ]
mqb_true "daemon RSS stays small ($RSS KiB < 64 MiB)" $?
mqb_daemon_stop
mqb_is "mqbusd stops with status 0" "$MQB_DSTATUS" 0

# ------------------------------------------------------------ pending share

# One user's subscribers that never read hold at most its share of the
# pending memory; another user's subscriber, briefly behind, loses none
# of a burst.
printf '[bus]\npending_budget = 200000\npending_budget_per_uid = 100000\npending_max = 1000\npending_bytes = 10000000\n' \
	>"$CONF"
mqb_daemon_start notify -c "$CONF" || mqb_bail "mqbusd starts (share)"
u1_bg /dev/null sub 'flood/#'
F1=$BGPID
u1_bg /dev/null sub 'flood/#'
F2=$BGPID
as_u2_json=$MQB_TMP/u2-flood.json
as "$U2ID" "$U2GID"
"${MQB_AS[@]}" "$RUN/mqbusctl" sub 'flood/#' -n 62 -t 30000 --json \
	>"$as_u2_json" 2>&1 &
F3=$!
mqb_track "$F3"
mqb_wait_for 10000 mqb_stat_ge subscriptions 3
kill -STOP "$F1" "$F2"
for i in $(seq 1 50); do "$MQBUSCTL" pub flood/x "a$i"; done
kill -STOP "$F3"
for i in $(seq 1 12); do "$MQBUSCTL" pub flood/x "b$i"; done
mem=$(mqb_stat pending_mem)
kill -CONT "$F3"
mqb_wait_pid "$F3" 20000
got=$(python3 -c '
import json, sys
ms = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print(len(ms), sum(m.get("dropped", 0) for m in ms))' "$as_u2_json" 2>&1)
mqb_is "another user's briefly stopped subscriber lost nothing (62 got, 0 dropped)" \
	"$got" "62 0"
[ "$mem" -le 200000 ]
mqb_true "the pending memory stayed within pending_budget ($mem)" $?
mqb_true "... the stopped user's subscribers lost messages instead" \
	"$([ "$(mqb_stat dropped_backlog)" -gt 0 ]; echo $?)"
kill -CONT "$F1" "$F2"
kill "$F1" "$F2" 2>/dev/null
wait "$F1" "$F2" 2>/dev/null
mqb_daemon_stop
mqb_is "mqbusd stops with status 0" "$MQB_DSTATUS" 0

# ------------------------------------------------------------ block_timeout

# overflow = block: a subscriber that stops reading holds its publishers
# up, but only for block_timeout seconds; then it is disconnected and the
# publishers go on.
printf '[bus]\nblock_timeout = 1\n[topic "blk/#"]\nbacklog = 2\noverflow = block\n' \
	>"$CONF"
mqb_daemon_start notify -c "$CONF" || mqb_bail "mqbusd starts (block)"
u1_bg "$MQB_TMP/blk.out" sub 'blk/#'
BPID=$BGPID
mqb_wait_for 10000 mqb_stat_ge subscriptions 1
kill -STOP "$BPID"
for i in $(seq 1 8); do
	u2 pub blk/x "m$i" >/dev/null 2>&1
done
mqb_wait_for 5000 mqb_stat_ge publishers_blocked 1
mqb_true "a stopped subscriber holds its publishers up" $?
mqb_wait_for 5000 mqb_stat_ge slow_disconnects 1
mqb_true "... until block_timeout (1 s): it is disconnected" $? \
	"slow_disconnects: $(mqb_stat slow_disconnects)"
kill -CONT "$BPID"
mqb_wait_pid "$BPID" 5000
[ $? != 0 ]
mqb_true "... and its mqbusctl sub ends with an error" $? \
	"$(cat "$MQB_TMP/blk.out")"
mqb_wait_for 5000 eval "[ \"\$(mqb_stat published)\" -ge 8 ]"
mqb_true "the held-up publishers' messages were all routed" $? \
	"published: $(mqb_stat published)"
mqb_daemon_stop
mqb_is "mqbusd stops with status 0" "$MQB_DSTATUS" 0

# ------------------------------------------------------------ descriptors

# A daemon with few descriptors: the client that comes when none are left
# is told at once.
printf '[bus]\nmax_clients_per_uid = 100\n' >"$CONF"
MQBUSD_REAL=$MQBUSD
MQBUSD=$MQB_TMP/mqbusd-40fds
printf '#!/bin/sh\nexec prlimit --nofile=40:40 -- %s "$@"\n' \
	"$MQBUSD_REAL" >"$MQBUSD"
chmod +x "$MQBUSD"
mqb_daemon_start notify -c "$CONF" || mqb_bail "mqbusd starts with 40 fds"
MQBUSD=$MQBUSD_REAL
pids=()
refused=
for i in $(seq 1 20); do
	u1_bg "$MQB_TMP/fd.$i" sub "quota/fd/$i" -t 30000
	pids+=("$BGPID")
	mqb_wait_for 8000 eval "[ \"\$(mqb_stat clients)\" -ge $i ] || ! kill -0 $BGPID 2>/dev/null"
	if ! kill -0 "${pids[-1]}" 2>/dev/null; then
		refused=$i
		break
	fi
done
[ -n "$refused" ]
mqb_true "with RLIMIT_NOFILE 40 a client is refused (the ${refused}th)" $?
mqb_like "... told that the daemon has no descriptor left" \
	"$(cat "$MQB_TMP/fd.$refused" 2>/dev/null)" \
	"no file descriptor left \\(RLIMIT_NOFILE 40"
kill "${pids[0]}" 2>/dev/null
mqb_wait_for 5000 eval "[ \"\$(mqb_stat clients)\" -lt $((refused - 1)) ]"
out=$(u1 stats 2>&1)
mqb_is "once a client left, the next one is served" "$?" 0
kill "${pids[@]}" 2>/dev/null
wait "${pids[@]}" 2>/dev/null
mqb_daemon_stop
mqb_is "mqbusd stops with status 0" "$MQB_DSTATUS" 0
mqb_done

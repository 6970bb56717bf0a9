#!/bin/bash
# SPDX-License-Identifier: MIT
#
# policy.sh - the access policy of mqbusd.conf(5) against the real daemon,
# with real users: root, a second user (MQBUS_TEST_USER, default
# mqbus-test) and a third (mqbus-test2) who is also in a supplementary
# group (mqbus-ops).  Users and group are made with useradd/groupadd if
# missing and left in place.
#
# Each allowed action works and each denied one is refused with a
# sentence naming the action, the topic and the rule (file:line); the
# protected side sees nothing of it.  A wildcard subscription half denied
# gets the allowed half only (a queue group on it is refused); a user who
# may not serve gets no requests, and one whose right to serve a reload
# took away has its reply refused; a reload that takes a right away ends
# the subscription that used it.
# Last, daemon/mqbusd.conf.example, the installed configuration of the
# system unit: it parses, denies by default and opens what it documents.

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
U1=$TUSER U1ID=$TUID U1GID=$TGID
MQBUS_TEST_USER=mqbus-test2 mqb_test_user ||
	mqb_bail "a third user exists" "$MQB_USER_WHY"
U2=$TUSER U2ID=$TUID U2GID=$TGID
getent group mqbus-ops >/dev/null 2>&1 || groupadd --system mqbus-ops ||
	mqb_bail "group mqbus-ops exists"
OPSGID=$(getent group mqbus-ops | cut -d: -f3)
mqb_ok "users $U1 ($U1ID), $U2 ($U2ID) and group mqbus-ops ($OPSGID)"

RUN=$MQB_TMP/run
mqb_copy_ctl "$RUN"
mqb_true "mqbusctl copied where the users can run it" $?

# u1 / u2 ARGS: mqbusctl ARGS as the second / third user (the third with
# its supplementary group, u2_nogroup without); u1_bg / u2_bg OUT ARGS:
# the same in the background, output to OUT, BGPID mqbusctl's own pid
u1() { mqb_as_argv "$U1ID" "$U1GID" "" "$RUN"; "${MQB_AS[@]}" "$RUN/mqbusctl" "$@"; }
u2() { mqb_as_argv "$U2ID" "$U2GID" "$OPSGID" "$RUN"; "${MQB_AS[@]}" "$RUN/mqbusctl" "$@"; }
u2_nogroup() { mqb_as_argv "$U2ID" "$U2GID" "" "$RUN"; "${MQB_AS[@]}" "$RUN/mqbusctl" "$@"; }
bg() {
	local out=$1
	shift
	"${MQB_AS[@]}" "$RUN/mqbusctl" "$@" >"$out" 2>&1 &
	BGPID=$!
	mqb_track "$BGPID"
}
u1_bg() { mqb_as_argv "$U1ID" "$U1GID" "" "$RUN"; bg "$@"; }
u2_bg() { mqb_as_argv "$U2ID" "$U2GID" "$OPSGID" "$RUN"; bg "$@"; }

CONF=$MQB_TMP/mqbusd.conf
write_conf() {
	cat >"$CONF" <<CONF
[policy]
default = deny
allow = all user=root topic=#
allow = publish,subscribe user=* topic=users/%u/#
allow = subscribe group=mqbus-ops topic=ops/#
allow = subscribe user=* topic=public/#
deny = subscribe user=* topic=public/secret/#
allow = request,subscribe user=* topic=svc/#
allow = serve user=$U2 topic=svc/#
allow = group user=* topic=public/#
deny = group user=* topic=public/secret/#
$1
CONF
}
write_conf ""
# the lines above, for the sentences: default 2, users/%u 4, public/# 6
mqb_daemon_start notify -c "$CONF" || mqb_bail "mqbusd starts with a policy"
DPID=$MQB_DPID
mqb_ok "mqbusd starts with a policy"

# ------------------------------------------------------------ subscribe

out=$(u1 sub 'secret/#' -n 1 -t 2000 2>&1)
st=$?
mqb_is "a denied subscription fails (exit 1)" "$st" 1
mqb_like "... naming action, pattern and rule" "$out" \
	"subscribe to secret/# denied by default \\($CONF:2\\)"
out=$(u1 sub "users/root/#" -n 1 -t 2000 2>&1)
mqb_like "%u: $U1 may not subscribe to root's tree" "$out" \
	"subscribe to users/root/# denied"

# %u: a tree of one's own; others do not see into it
mqb_sub_start "$MQB_TMP/root-u.out" "users/#" -n 1 -t 10000
u1_bg "$MQB_TMP/u1-own.out" sub "users/$U1/#" -n 1 -t 10000
S1=$BGPID
mqb_wait_for 10000 mqb_stat_ge subscriptions 2
u1 pub "users/$U1/hello" mine
mqb_wait_pid "$S1" 10000
mqb_is "%u: $U1 publishes and subscribes in users/$U1/" \
	"$(cat "$MQB_TMP/u1-own.out")" "users/$U1/hello mine"
mqb_wait_pid "$MQB_SPID" 10000
mqb_is "... and root sees it" "$(cat "$MQB_TMP/root-u.out")" \
	"users/$U1/hello mine"

# publish refused: nothing reaches a subscriber, the refusal is counted
before=$(mqb_stat policy_refused)
mqb_sub_start "$MQB_TMP/root-other.out" "users/root/#" -t 1500
out=$(u1 pub users/root/x forged 2>&1)
st=$?
mqb_is "a denied publish fails (exit 1)" "$st" 1
mqb_like "... naming action, topic and rule" "$out" \
	"publish to users/root/x denied by default \($CONF:2\)"
mqb_wait_pid "$MQB_SPID" 5000
mqb_is "a denied publish reaches nobody" "$(cat "$MQB_TMP/root-other.out")" ""
mqb_wait_for 3000 mqb_stat_ge policy_refused $((before + 1))
mqb_true "... and is counted (policy_refused)" $?

# retain is an action of its own: publishing is not enough
out=$(u1 pub "users/$U1/state" kept --retain 2>&1)
st=$?
mqb_is "a denied retain fails (exit 1)" "$st" 1
mqb_like "... naming action, topic and rule" "$out" \
	"retain to users/$U1/state denied by default \($CONF:2\)"
mqb_is "... and nothing is kept" "$(mqb_stat retained)" 0

# a wildcard subscription half denied: the allowed half only
u1_bg "$MQB_TMP/u1-public.out" sub 'public/#' -n 2 -t 10000
S1=$BGPID
mqb_wait_for 10000 mqb_stat_ge subscriptions 1
"$MQBUSCTL" pub public/secret/plan hidden
"$MQBUSCTL" pub public/news one
"$MQBUSCTL" pub public/secret/plan hidden2
"$MQBUSCTL" pub public/news two
mqb_wait_pid "$S1" 10000
mqb_is "public/# gets public/news, never public/secret/" \
	"$(cat "$MQB_TMP/u1-public.out" | tr '\n' ' ')" \
	"public/news one public/news two "

# a queue group's members take turns: it needs all of its pattern
before=$(mqb_stat policy_refused)
out=$(u1 sub 'public/#' --group readers -n 1 -t 2000 2>&1)
st=$?
mqb_is "a queue group on a partly allowed pattern is refused (exit 1)" \
	"$st" 1
mqb_like "... naming the part denied and its rule" "$out" \
	"group on public/#: the policy allows only part of it \\(group to public/# denied by $CONF:11\\)"
mqb_wait_for 3000 mqb_stat_ge policy_refused $((before + 1))
mqb_true "... and is counted (policy_refused)" $?
u1_bg "$MQB_TMP/u1-group.out" sub 'public/news' --group readers -n 1 -t 10000
S1=$BGPID
mqb_wait_for 10000 mqb_stat_ge subscriptions 1
"$MQBUSCTL" pub public/news grouped
mqb_wait_pid "$S1" 10000
mqb_is "... while one on an allowed pattern works" \
	"$(cat "$MQB_TMP/u1-group.out")" "public/news grouped"

# a supplementary group counts
u2_bg "$MQB_TMP/u2-ops.out" sub 'ops/#' -n 1 -t 10000
S2=$BGPID
mqb_wait_for 10000 mqb_stat_ge subscriptions 1
"$MQBUSCTL" pub ops/alert fire
mqb_wait_pid "$S2" 10000
mqb_is "group=mqbus-ops: a member subscribes to ops/#" \
	"$(cat "$MQB_TMP/u2-ops.out")" "ops/alert fire"
out=$(u2_nogroup sub 'ops/#' -n 1 -t 2000 2>&1)
mqb_like "... the same user without the group may not" "$out" \
	"subscribe to ops/# denied"

# ------------------------------------------------------------ request, serve

out=$(u1 call other/x hi -t 2000 2>&1)
st=$?
mqb_is "a denied call fails (exit 1)" "$st" 1
mqb_like "... naming the rule" "$out" "request to other/x denied by default"
u1_bg /dev/null serve svc/echo --echo
SV1=$BGPID
mqb_wait_for 10000 mqb_stat_ge subscriptions 1
out=$("$MQBUSCTL" call svc/echo ping -t 3000 2>&1)
st=$?
mqb_is "a user who may not serve gets no request: no responders (4)" \
	"$st" 4
u2_bg /dev/null serve svc/echo --echo
SV2=$BGPID
mqb_wait_for 10000 mqb_stat_ge subscriptions 2
mqb_is "one who may serve answers" \
	"$(u1 call svc/echo ping -t 3000 2>&1)" ping
kill "$SV1" "$SV2" 2>/dev/null
wait "$SV1" "$SV2" 2>/dev/null

# a forbidden reply: the server's right to serve is revoked by a reload
# while it works on a request; its reply is refused, the caller gets none
mqb_wait_for 5000 mqb_settled "$BUS"
nsubs=$(mqb_stat subscriptions)
u2_bg "$MQB_TMP/u2-slow.out" serve svc/slow --exec 'sleep 2; cat' -n 1
SV2=$BGPID
mqb_wait_for 10000 mqb_stat_ge subscriptions $((nsubs + 1))
rbefore=$(mqb_stat replies_refused)
pbefore=$(mqb_stat policy_refused)
u1_bg "$MQB_TMP/u1-slow.out" call svc/slow ping -t 5000
C1=$BGPID
mqb_wait_for 5000 mqb_stat_ge requests_in_flight 1
mqb_true "the request reached the server" $?
write_conf "deny = serve user=$U2 topic=svc/slow"
kill -HUP "$DPID"
mqb_wait_pid "$C1" 10000
wait "$C1"
mqb_is "a reply from one who may no longer serve never arrives (exit 3)" \
	"$?" 3
mqb_is "... nothing of it reached the caller" \
	"$(grep -c ping "$MQB_TMP/u1-slow.out")" 0
mqb_true "... the reply was refused (replies_refused)" \
	"$(mqb_stat_ge replies_refused $((rbefore + 1)); echo $?)"
mqb_true "... as a policy refusal (policy_refused)" \
	"$(mqb_stat_ge policy_refused $((pbefore + 1)); echo $?)"
kill "$SV2" 2>/dev/null
wait "$SV2" 2>/dev/null
write_conf ""
kill -HUP "$DPID"

# ------------------------------------------------------------ timer, monitor

out=$(u1 pub secret/later x --delay 100 2>&1)
mqb_like "a denied timer is refused" "$out" "timer to secret/later denied"
out=$(u1 monitor '#' -n 1 -t 1000 2>&1)
[ $? != 0 ]
mqb_true "monitoring is denied to $U1 by the default" $? "$out"

# ------------------------------------------------------------ reload

mqb_wait_for 5000 mqb_settled "$BUS"
nsubs=$(mqb_stat subscriptions)
u1_bg "$MQB_TMP/u1-reload.out" sub 'public/#' -t 20000
S1=$BGPID
mqb_wait_for 10000 mqb_stat_ge subscriptions $((nsubs + 1))
"$MQBUSCTL" pub public/news before
mqb_wait_for 5000 grep -q before "$MQB_TMP/u1-reload.out"
mqb_true "before the reload the subscriber gets public/news" $?
write_conf "deny = subscribe user=$U1 topic=public/#"
kill -HUP "$DPID"
mqb_wait_for 5000 eval "[ \"\$(mqb_stat subscriptions)\" = $nsubs ]"
mqb_true "a reload that takes the right away ends the subscription" $? \
	"subscriptions: $(mqb_stat subscriptions), $nsubs before it"
"$MQBUSCTL" pub public/news after
sleep 0.5
mqb_is "... and nothing more reaches it" \
	"$(grep -c after "$MQB_TMP/u1-reload.out")" 0
# mqbusctl sub is told, says why and ends with status 1
mqb_wait_for 5000 eval "! kill -0 $S1 2>/dev/null"
wait "$S1" 2>/dev/null
mqb_is "... mqbusctl sub is told and exits 1" "$?" 1
mqb_like "... saying why" "$(cat "$MQB_TMP/u1-reload.out")" \
	"subscription to public/# ended by a reload"
kill "$S1" 2>/dev/null
wait "$S1" 2>/dev/null

mqb_daemon_stop
mqb_is "mqbusd stops with status 0" "$MQB_DSTATUS" 0

# ------------------------------------------------------------ the example

# daemon/mqbusd.conf.example is what make install puts at
# $(sysconfdir)/mqbus/mqbusd.conf for the system unit: it must parse,
# deny by default and open the set it documents.
EX=$top_srcdir/daemon/mqbusd.conf.example
EXDEF=$(grep -n '^default = deny$' "$EX" | cut -d: -f1)
[ -n "$EXDEF" ]
mqb_true "the example's policy denies by default (line $EXDEF)" $?
BUS=$(mqb_new_bus ex)
export MQBUS_BUS=$BUS
mqb_daemon_start notify -c "$EX" ||
	mqb_bail "mqbusd starts with daemon/mqbusd.conf.example"
mqb_ok "mqbusd starts with daemon/mqbusd.conf.example"
mqb_check "root may publish anywhere" "$MQBUSCTL" pub system/boot done
out=$(u1 pub elsewhere/x hi 2>&1)
mqb_is "$U1: a topic the example does not open is refused" "$?" 1
mqb_like "... by its default" "$out" \
	"publish to elsewhere/x denied by default \\($EX:$EXDEF\\)"
out=$(u1 pub system/boot forged 2>&1)
mqb_like "$U1 may not publish on system/" "$out" \
	"publish to system/boot denied by default"
out=$(u1 monitor 'public/#' -n 1 -t 1000 2>&1)
mqb_like "$U1 may not monitor public/" "$out" "monitor to public/# denied"
out=$(u1 serve 'service/#' --echo -n 1 2>&1)
mqb_like "$U1 may not serve service/ (not even subscribe to it)" "$out" \
	"subscribe to service/# denied by default"
u1_bg "$MQB_TMP/ex-sys.out" sub 'system/#' -n 1 -t 10000
S1=$BGPID
u1_bg "$MQB_TMP/ex-users.out" sub 'users/#' -n 1 -t 10000
S2=$BGPID
mqb_wait_for 10000 mqb_stat_ge subscriptions 2
"$MQBUSCTL" pub users/root/x not-for-you
"$MQBUSCTL" pub system/boot again
u1 pub "users/$U1/x" own
mqb_check "$U1 may retain in public/" \
	"${MQB_AS[@]}" "$RUN/mqbusctl" pub public/motd hello --retain
mqb_wait_pid "$S1" 10000
mqb_wait_pid "$S2" 10000
mqb_is "$U1 may subscribe to system/#" "$(cat "$MQB_TMP/ex-sys.out")" \
	"system/boot again"
mqb_is "users/# gives $U1 its own tree only" \
	"$(cat "$MQB_TMP/ex-users.out")" "users/$U1/x own"
out=$(u2 call service/time now -t 1000 2>&1)
mqb_is "$U2 may call service/ (no responder here: exit 4)" "$?" 4
mqb_daemon_stop
mqb_is "mqbusd stops with status 0" "$MQB_DSTATUS" 0
mqb_done

#!/bin/bash
# SPDX-License-Identifier: MIT
#
# multiuser.sh - a bus shared by two users: the daemon runs as root, a
# client runs as a second, unprivileged user (MQBUS_TEST_USER, default
# mqbus-test, created with useradd if missing and left in place).
#
# Checks that the sender uid and pid the daemon stamps on a message are the
# publisher's real ones, that one user cannot open another's queues, that
# the daemon serves and cleans up the other user's client, and that a
# kernel queue limit hit by an unprivileged client is explained in a
# sentence naming the limit.
#
# The build tree may not be readable by that user (and libtool wrappers
# want to write into it), so the programs it runs are copied with
# libmqbus.so* into a directory it can read: tests/helpers/mqbusctl-test
# is mqbusctl built with -no-install, a real binary.

. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

if [ "$(id -u)" != 0 ]; then
	echo "# SKIP: needs root (to add a user and switch to it)"
	exit 77
fi
if ! command -v setpriv >/dev/null 2>&1; then
	echo "# SKIP: setpriv is missing (util-linux)"
	exit 77
fi

mqb_init
CTL_TEST=$top_builddir/tests/helpers/mqbusctl-test

# ------------------------------------------------------------ the user

if ! mqb_test_user; then
	# under CI a missing second user is a failure, not a skip
	if [ "${CI:-}" = true ]; then
		mqb_bail "a second, unprivileged user exists" "$MQB_USER_WHY"
	fi
	echo "# SKIP: $MQB_USER_WHY"
	exit 77
fi
mqb_ok "a second, unprivileged user $TUSER exists (uid $TUID)"

# ------------------------------------------------------------ its programs

RUN=$MQB_TMP/run
mkdir -p "$RUN"
chmod 755 "$MQB_TMP" "$RUN"
copied=yes
cp "$CTL_TEST" "$RUN/mqbusctl" || copied=no
cp "$MQTOOL" "$RUN/mqtool" || copied=no
cp -P "$top_builddir"/client/.libs/libmqbus.so* "$RUN/" || copied=no
chmod -R a+rX "$RUN"
[ $copied = yes ]
mqb_true "mqbusctl-test, mqtool and libmqbus copied for $TUSER" $?

# "${AS_USER[@]}" CMD [ARGS...] runs CMD as the test user; setpriv and
# env exec, so $! of "${AS_USER[@]}" CMD & is CMD's pid.  as_user is the
# same for the foreground.  (as_set_env again after changing MQBUS_QUEUE_*.)
as_set_env() {
	AS_USER=(setpriv --reuid="$TUID" --regid="$TGID" --clear-groups --
		env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH="$RUN"
		MQBUS_BUS="$BUS")
	local v
	for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS MQBUS_QUEUE_MAXMSG \
		MQBUS_QUEUE_MSGSIZE; do
		if [ -n "${!v:-}" ]; then
			AS_USER+=("$v=${!v}")
		fi
	done
}
as_user() {
	as_set_env
	"${AS_USER[@]}" "$@"
}
as_set_env

mqb_check "$TUSER can run the copied mqbusctl" as_user "$RUN/mqbusctl" --version

# The bus lock is no name another user can take first: $TUSER binds the
# abstract socket name that older daemons locked with, and waits.
"${AS_USER[@]}" python3 -c '
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind("\0mqbusd/%s/%s" % (os.readlink("/proc/self/ns/ipc"), sys.argv[1]))
print("bound", flush=True)
time.sleep(60)' "$BUS" >"$MQB_TMP/squat.out" 2>&1 &
SQUAT=$!
mqb_track "$SQUAT"
mqb_wait_for 5000 grep -q bound "$MQB_TMP/squat.out"
mqb_true "$TUSER holds the abstract socket name of bus $BUS" $?

if ! mqb_daemon_start notify; then
	mqb_bail "mqbusd starts as root (though $TUSER squats the old lock)"
fi
mqb_ok "mqbusd starts as root (though $TUSER squats the old lock)"
kill "$SQUAT" 2>/dev/null

mqb_is "$TUSER may write the announce queue /$BUS" \
	"$(as_user "$RUN/mqtool" open "/$BUS" w 2>/dev/null)" ok
mqb_is "$TUSER may not read the announce queue /$BUS" \
	"$(as_user "$RUN/mqtool" open "/$BUS" r 2>/dev/null)" EACCES

# ------------------------------------------------------------ identity

OUT=$MQB_TMP/sub.out
mqb_sub_start "$OUT" mu/x -n 1 -t 10000 --json ||
	mqb_notok "root subscriber subscribed"
"${AS_USER[@]}" "$RUN/mqbusctl" pub mu/x from-the-other-user &
UPID=$!
mqb_wait_pid "$UPID" 10000
mqb_is "$TUSER publishes (exit 0)" "$?" 0
mqb_wait_pid "$MQB_SPID" 10000
mqb_is "root subscriber gets it (exit 0)" "$?" 0
FIELDS=$(python3 -c '
import json, sys
m = json.loads(open(sys.argv[1]).read())
print(m["topic"], m["payload"], m["sender_uid"], m["sender_pid"])
' "$OUT" 2>&1)
mqb_is "sender_uid and sender_pid are $TUSER's and the publisher's" \
	"$FIELDS" "mu/x from-the-other-user $TUID $UPID"

# ------------------------------------------------------------ isolation

"$MQBUSCTL" sub mu/root >"$MQB_TMP/root.out" 2>&1 &
RPID=$!
mqb_track "$RPID"
mqb_wait_for 10000 mqb_has_client_queues "$BUS" "$RPID"
mqb_true "a root subscriber is connected" $?
RRX=$(mqb_client_queues "$BUS" "$RPID" | grep '\.rx$' | head -n 1)
RTX=${RRX%.rx}.tx
mqb_is "$TUSER cannot read root's rx queue /$RRX" \
	"$(as_user "$RUN/mqtool" open "/$RRX" r 2>/dev/null)" EACCES
mqb_is "$TUSER cannot write root's rx queue" \
	"$(as_user "$RUN/mqtool" open "/$RRX" w 2>/dev/null)" EACCES
mqb_is "$TUSER cannot write root's tx queue (no forged messages)" \
	"$(as_user "$RUN/mqtool" open "/$RTX" w 2>/dev/null)" EACCES
mqb_is "$TUSER cannot unlink root's queue" \
	"$(as_user "$RUN/mqtool" unlink "/$RRX" 2>/dev/null)" EACCES
kill -TERM "$RPID"
mqb_wait_pid "$RPID" 10000
mqb_is "root subscriber exits 0 on SIGTERM" "$?" 0

# The other user's subscriber: its queues are its own, mode 0600, the
# root daemon delivers to it and removes its queues when it is killed.
"${AS_USER[@]}" "$RUN/mqbusctl" sub mu/user >"$MQB_TMP/user.out" 2>&1 &
USPID=$!
mqb_track "$USPID"
mqb_wait_for 10000 mqb_has_client_queues "$BUS" "$USPID"
mqb_true "$TUSER's subscriber is connected" $?
OWN=$(for q in $(mqb_client_queues "$BUS" "$USPID"); do
	stat -c '%u:%a' "/dev/mqueue/$q"
done | sort -u | tr '\n' ' ')
mqb_is "$TUSER's queues are its own, mode 0600" "$OWN" "$TUID:600 "
mqb_wait_for 5000 mqb_stat_ge subscriptions 1
"$MQBUSCTL" pub mu/user to-the-user
mqb_wait_line 10000 "$MQB_TMP/user.out" '^mu/user to-the-user$'
mqb_true "the daemon delivers root's message to $TUSER's subscriber" $? \
	"got: $(cat "$MQB_TMP/user.out")"
{ kill -KILL "$USPID"; wait "$USPID"; } 2>/dev/null
mqb_wait_for 5000 mqb_no_client_queues "$BUS" "$USPID"
mqb_true "a killed $TUSER client's queues are removed by the daemon" $? \
	"left: $(mqb_client_queues "$BUS" "$USPID" | tr '\n' ' ')"

# ------------------------------------------------------------ limits

# An unprivileged client that hits a kernel limit gets a sentence naming
# it.  Needs our own IPC namespace to lower the limits safely.
if [ "${MQBUS_TEST_PRIVATE_IPC:-}" = 1 ]; then
	MQ=/proc/sys/fs/mqueue
	old=$(cat $MQ/msg_max)
	echo 4 >$MQ/msg_max
	MQBUS_QUEUE_MAXMSG=8 mqb_check_status \
		"queue size above fs.mqueue.msg_max: exit 1" 1 \
		as_user "$RUN/mqbusctl" pub mu/x big
	mqb_like "... naming fs.mqueue.msg_max" "$MQB_ERR" 'msg_max'
	echo "$old" >$MQ/msg_max

	old=$(cat $MQ/queues_max)
	ls /dev/mqueue | wc -l >$MQ/queues_max
	mqb_check_status "no queue left (fs.mqueue.queues_max): exit 1" 1 \
		as_user "$RUN/mqbusctl" pub mu/x more
	mqb_like "... naming fs.mqueue.queues_max" "$MQB_ERR" 'queues_max'
	echo "$old" >$MQ/queues_max
else
	mqb_skip "queue size above fs.mqueue.msg_max" "no private IPC namespace"
	mqb_skip "fs.mqueue.queues_max reached" "no private IPC namespace"
fi
if command -v prlimit >/dev/null 2>&1; then
	mqb_check_status "RLIMIT_MSGQUEUE exhausted: exit 1" 1 \
		prlimit --msgqueue=4096 -- \
		setpriv --reuid="$TUID" --regid="$TGID" --clear-groups -- \
		env -i LD_LIBRARY_PATH="$RUN" MQBUS_BUS="$BUS" \
		"$RUN/mqbusctl" pub mu/x over
	mqb_like "... naming RLIMIT_MSGQUEUE" "$MQB_ERR" 'RLIMIT_MSGQUEUE'
else
	mqb_skip "RLIMIT_MSGQUEUE exhausted" "no prlimit"
fi

mqb_daemon_stop TERM 10000
mqb_is "SIGTERM: mqbusd exits 0" "$MQB_DSTATUS" 0
mqb_is "no queue of the bus is left, of either user" \
	"$(mqb_queues "$BUS" | tr '\n' ' ')" ""

# ------------------------------------------------------------ system bus

# The other way round, as mqbusd.service runs it: the daemon as an
# unprivileged uid with CAP_DAC_OVERRIDE (to open the clients' 0600
# queues) and CAP_FOWNER (to unlink them from the sticky /dev/mqueue),
# serving root's clients.
SBUS=$(mqb_new_bus sys)
cp "$MQBUSD" "$RUN/mqbusd" && chmod 755 "$RUN/mqbusd"
SNLOG=$MQB_TMP/sys-notify.log
: >"$SNLOG"
# an abstract socket: no file permissions for the daemon's uid to pass
"$NOTIFY_LISTEN" "@$SBUS.notify" "$SNLOG" -- \
	setpriv --reuid="$TUID" --regid="$TGID" --clear-groups \
	--inh-caps=+dac_override,+fowner --ambient-caps=+dac_override,+fowner \
	-- "$RUN/mqbusd" -b "$SBUS" 2>"$MQB_TMP/sys.err" &
SDPID=$!
mqb_track "$SDPID"
mqb_wait_for 10000 eval "grep -qx READY=1 '$SNLOG' || mqb_dead $SDPID"
grep -qx READY=1 "$SNLOG"
mqb_true "mqbusd runs as $TUSER with CAP_DAC_OVERRIDE and CAP_FOWNER" $? \
	"$(cat "$MQB_TMP/sys.err")"
mqb_is "its announce queue belongs to $TUSER" \
	"$(stat -c %u "/dev/mqueue/$SBUS" 2>&1)" "$TUID"

MQBUS_BUS=$SBUS mqb_sub_start "$OUT" sys/x -n 1 -t 10000 --json ||
	mqb_notok "root subscriber on the system bus"
MQBUS_BUS=$SBUS "$MQBUSCTL" pub sys/x from-root
mqb_is "root publishes on the system bus" "$?" 0
mqb_wait_pid "$MQB_SPID" 10000
mqb_is "root's subscriber gets it" "$?" 0
mqb_is "... stamped with root's uid" \
	"$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["payload"], m["sender_uid"])' "$OUT" 2>&1)" \
	"from-root 0"

MQBUS_BUS=$SBUS "$MQBUSCTL" sub sys/y >/dev/null 2>&1 &
KPID=$!
mqb_track "$KPID"
mqb_wait_for 10000 mqb_has_client_queues "$SBUS" "$KPID"
mqb_true "a root client is connected to the system bus" $?
{ kill -KILL "$KPID"; wait "$KPID"; } 2>/dev/null
mqb_wait_for 5000 mqb_no_client_queues "$SBUS" "$KPID"
mqb_true "the unprivileged daemon removes a dead root client's queues" $? \
	"left: $(mqb_client_queues "$SBUS" "$KPID" | tr '\n' ' ')"

kill -TERM "$SDPID"
mqb_wait_pid "$SDPID" 10000
mqb_is "SIGTERM: the unprivileged mqbusd exits 0" "$?" 0
mqb_is "no queue of the system bus is left" \
	"$(mqb_queues "$SBUS" | tr '\n' ' ')" ""

mqb_done

#!/bin/bash
# SPDX-License-Identifier: MIT
#
# systemd.sh - the unit and the sd_notify protocol.
#
# systemd is not PID 1 here and must not be started: the unit is checked
# offline with systemd-analyze, and sd_notify by running mqbusd with
# NOTIFY_SOCKET pointing at a datagram socket this test listens on.

. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

mqb_init
UNIT=$top_builddir/systemd/mqbusd.service

# ------------------------------------------------------------ the unit

if [ -f "$UNIT" ]; then
	mqb_ok "make generated systemd/mqbusd.service"
else
	mqb_bail "make generated systemd/mqbusd.service" "missing: $UNIT"
fi
mqb_is "no @placeholder@ is left in the unit" \
	"$(grep -c '@[a-zA-Z_]*@' "$UNIT")" 0
mqb_like "ExecStart= is an absolute path to mqbusd" \
	"$(sed -n 's/^ExecStart=//p' "$UNIT")" '^/[^ ]*/mqbusd( |$)'

# unit_value KEY: the values of KEY= in the unit, one line each
unit_value() {
	sed -n "s/^$1=//p" "$UNIT"
}
mqb_is "Type=notify" "$(unit_value Type)" notify
mqb_is "NotifyAccess=main" "$(unit_value NotifyAccess)" main
mqb_is "WatchdogSec= is set" "$(unit_value WatchdogSec)" 20s
mqb_is "ExecReload sends SIGHUP" "$(unit_value ExecReload)" \
	'/bin/kill -HUP $MAINPID'
mqb_is "Restart=on-failure" "$(unit_value Restart)" on-failure
mqb_like "LimitMSGQUEUE= is set" "$(unit_value LimitMSGQUEUE)" '^[0-9]+[KMG]?$'
mqb_like "CAP_DAC_OVERRIDE is an ambient capability" \
	"$(unit_value AmbientCapabilities)" 'CAP_DAC_OVERRIDE'
mqb_like "... and in the bounding set" \
	"$(unit_value CapabilityBoundingSet)" 'CAP_DAC_OVERRIDE'
mqb_is "no PrivateIPC= (it would hide the clients' queues)" \
	"$(unit_value PrivateIPC)" ""
mqb_like "MQBUS_BUS has a default" "$(unit_value Environment)" \
	'^MQBUS_BUS=[a-z]'
mqb_is "hardening: NoNewPrivileges" "$(unit_value NoNewPrivileges)" yes
mqb_is "hardening: ProtectSystem=strict" "$(unit_value ProtectSystem)" strict

if command -v systemd-analyze >/dev/null 2>&1; then
	# A copy whose ExecStart is the mqbusd just built, so that verify
	# can check the executable too.
	VDIR=$MQB_TMP/units
	mkdir -p "$VDIR"
	sed "s|^ExecStart=[^ ]*|ExecStart=$(cd "$(dirname "$MQBUSD")" && pwd)/mqbusd|" \
		"$UNIT" >"$VDIR/mqbusd.service"
	systemd-analyze verify --man=no "$VDIR/mqbusd.service" \
		>"$MQB_TMP/verify.out" 2>&1
	st=$?
	mqb_is "systemd-analyze verify passes" "$st" 0
	mqb_is "systemd-analyze verify says nothing about our unit" \
		"$(grep -i mqbusd "$MQB_TMP/verify.out")" ""
	mqb_diag_file "systemd-analyze verify" "$MQB_TMP/verify.out"
	cp "$top_srcdir/systemd/mqbusd.socket" "$VDIR/"
	systemd-analyze verify --man=no "$VDIR/mqbusd.socket" \
		>"$MQB_TMP/verify-socket.out" 2>&1
	mqb_is "systemd-analyze verify passes for mqbusd.socket" "$?" 0
	mqb_diag_file "systemd-analyze verify (socket)" \
		"$MQB_TMP/verify-socket.out"

	# Exposure as systemd-analyze security rates it: 0 (locked down)
	# to 10 (wide open).  Keep the unit well below "MEDIUM".
	if systemd-analyze security --help 2>/dev/null | grep -q -- --offline; then
		systemd-analyze security --offline=yes --no-pager \
			"$VDIR/mqbusd.service" >"$MQB_TMP/security.out" 2>&1
		EXPO=$(sed -n 's/.*Overall exposure level for mqbusd.service: \([0-9.]*\).*/\1/p' \
			"$MQB_TMP/security.out")
		awk -v e="$EXPO" 'BEGIN { exit !(e != "" && e + 0 < 4.0) }'
		mqb_true "systemd-analyze security: exposure below 4.0" $? \
			"exposure: '$EXPO'" \
			"$(tail -n 3 "$MQB_TMP/security.out")"
		mqb_diag "exposure level: $EXPO"
	else
		mqb_skip "systemd-analyze security: exposure below 4.0" \
			"this systemd-analyze has no --offline"
	fi
else
	mqb_notok "systemd-analyze is installed" \
		"install the systemd package (scripts/deps.sh does)"
fi

# ------------------------------------------------------------ sd_notify

CONF=$MQB_TMP/mqbusd.conf
printf '[bus]\nmax_priority = 15\n' >"$CONF"

if mqb_daemon_start notify -c "$CONF"; then
	mqb_ok "mqbusd sends READY=1 to NOTIFY_SOCKET"
else
	mqb_bail "mqbusd sends READY=1 to NOTIFY_SOCKET"
fi
DPID=$MQB_DPID
NLOG=$MQB_DNOTIFY

# sender_of LINE: the pid that sent the datagram holding LINE (first one)
sender_of() {
	awk -v want="$1" '/^# pid=/ { pid = substr($0, 7) }
		$0 == want { print pid; exit }' "$NLOG"
}
mqb_is "READY=1 comes from the main pid (NotifyAccess=main)" \
	"$(sender_of READY=1)" "$DPID"
mqb_wait_line 5000 "$NLOG" '^STATUS=.+'
mqb_true "a STATUS= line arrives" $? "$(cat "$NLOG")"
mqb_like "STATUS= names the bus" "$(grep -m1 '^STATUS=' "$NLOG")" "$BUS"

# STATUS follows the number of clients
"$MQBUSCTL" sub status/x >"$MQB_TMP/sub.out" 2>&1 &
SPID=$!
mqb_track "$SPID"
mqb_wait_line 5000 "$NLOG" '^STATUS=.*[^0-9]1 client'
mqb_true "STATUS= is updated when a client connects" $? \
	"$(grep '^STATUS=' "$NLOG" | tail -n 3)"
kill -TERM "$SPID"
mqb_wait_pid "$SPID" 10000
mqb_is "the subscriber exits 0 on SIGTERM" "$?" 0

# SIGHUP: reload (RELOADING=1 then READY=1 again), keep running
ready_before=$(grep -cx 'READY=1' "$NLOG")
kill -HUP "$DPID"
mqb_wait_for 5000 eval \
	"[ \$(grep -cx 'READY=1' '$NLOG') -gt $ready_before ]"
mqb_true "SIGHUP: READY=1 again after the reload" $? "$(cat "$NLOG")"
grep -qx 'RELOADING=1' "$NLOG"
mqb_true "SIGHUP: RELOADING=1 before it" $?
mqb_alive "$DPID"
mqb_true "SIGHUP: the daemon keeps running" $?

# a broken config on reload keeps the old one and the daemon
echo 'this is not ini' >"$CONF"
ready_before=$(grep -cx 'READY=1' "$NLOG")
kill -HUP "$DPID"
mqb_wait_for 5000 eval \
	"[ \$(grep -cx 'READY=1' '$NLOG') -gt $ready_before ]"
mqb_true "SIGHUP with a broken config: READY=1 again" $?
mqb_check "SIGHUP with a broken config: still serving" "$MQBUSCTL" stats

# no WATCHDOG_USEC: no watchdog pings
mqb_is "no WATCHDOG_USEC: no WATCHDOG=1" "$(grep -cx 'WATCHDOG=1' "$NLOG")" 0

# SIGTERM: STOPPING=1, exit 0
mqb_daemon_stop TERM 10000
mqb_is "SIGTERM: exit status 0" "$MQB_DSTATUS" 0
grep -qx 'STOPPING=1' "$NLOG"
mqb_true "SIGTERM: STOPPING=1 arrives" $? "$(cat "$NLOG")"
mqb_is "SIGTERM: STOPPING=1 comes from the main pid" \
	"$(sender_of STOPPING=1)" "$DPID"
mqb_is "SIGTERM: no queue of the bus is left" \
	"$(mqb_queues "$BUS" | tr '\n' ' ')" ""

# the watchdog: with WATCHDOG_USEC (what systemd sets for WatchdogSec=)
# the loop pings at half the interval, and a stopped loop does not
pings() { grep -cx 'WATCHDOG=1' "$NLOG"; }
export WATCHDOG_USEC=400000
mqb_daemon_start notify
st=$?
unset WATCHDOG_USEC
mqb_is "WATCHDOG_USEC=400000: the daemon starts" "$st" 0
DPID=$MQB_DPID
NLOG=$MQB_DNOTIFY
sleep 2
n1=$(pings)
# every 200 ms for 2 s is 10; a loaded machine may lose a few
[ "$n1" -ge 6 ] && [ "$n1" -le 14 ]
mqb_true "WATCHDOG=1 about every 200 ms (2 s: $n1 pings)" $?
mqb_is "WATCHDOG=1 comes from the main pid" "$(sender_of WATCHDOG=1)" \
	"$DPID"
kill -STOP "$DPID"
sleep 0.3 # one that was on its way
n2=$(pings)
sleep 1.2
n3=$(pings)
kill -CONT "$DPID"
mqb_is "SIGSTOPped: no WATCHDOG=1 for 1.2 s" "$n3" "$n2"
mqb_wait_for 3000 eval "[ \$(pings) -gt $n3 ]"
mqb_true "SIGCONT: the pings resume" $? "$(pings) after $n3"
mqb_daemon_stop TERM 10000
mqb_is "watchdog daemon: exit status 0" "$MQB_DSTATUS" 0

# a start-up failure: exit 1, one line, and no READY=1
mqb_daemon_start notify -c "$MQB_TMP/does-not-exist.conf"
st=$?
mqb_wait_pid "$MQB_DPID" 10000
dst=$?
[ "$st" != 0 ] && [ "$dst" = 1 ]
mqb_true "a missing config file: exit 1 without READY=1" $? \
	"start: $st, exit status: $dst"
mqb_is "... with one line on stderr" "$(wc -l <"$MQB_DERR")" 1

# socket activation: the announce queue exists first (systemd makes it
# for ListenMessageQueue=), a client announces itself before any daemon
# runs and waits in the kernel; the daemon gets the queue as fd 3 with
# LISTEN_FDS/LISTEN_PID, serves the waiting client, and leaves the queue
# (systemd's) when it stops
mqb_is "the socket unit's queue size is what mqbusd reads" \
	"$(sed -n 's/^MessageQueueMessageSize=//p' "$top_srcdir/systemd/mqbusd.socket")" 512
"$MQTOOL" create "/$BUS" -m 10 -s 512 -M 0622 >/dev/null
MQBUS_BUS=$BUS "$MQBUSCTL" pub sa/x early >"$MQB_TMP/sa-pub.out" 2>&1 &
SAPUB=$!
mqb_track "$SAPUB"
mqb_wait_for 3000 eval "[ \"\$(\"$MQTOOL\" attr /$BUS | sed -n 's/^curmsgs=//p')\" = 1 ]"
mqb_true "a client announced itself with no daemon running" $?
"$NOTIFY_LISTEN" "$MQB_TMP/sa.sock" "$MQB_TMP/sa-notify.log" -- \
	"$MQTOOL" activate "/$BUS" "$MQBUSD" -b "$BUS" 2>"$MQB_TMP/sa.err" &
SADPID=$!
mqb_track "$SADPID"
mqb_wait_pid "$SAPUB" 10000
mqb_is "the waiting client is served once the daemon starts" "$?" 0
mqb_like "... which took the queue from the service manager" \
	"$(cat "$MQB_TMP/sa.err")" 'passed by the service manager'
kill -TERM "$SADPID"
mqb_wait_pid "$SADPID" 10000
mqb_is "socket-activated daemon: exit status 0" "$?" 0
mqb_is "the passed announce queue stays for the next start" \
	"$("$MQTOOL" open "/$BUS" w)" ok
"$MQTOOL" unlink "/$BUS" >/dev/null


# ------------------------------------------------------------ named buses
# mqbusd@.service / mqbusd@.socket (bus NAME from the instance) and the
# user units (the per-user bus user-UID)

TPL=$top_builddir/systemd/mqbusd@.service
TSOCK=$top_srcdir/systemd/mqbusd@.socket
USVC=$top_builddir/systemd/user/mqbusd.service
USOCK=$top_srcdir/systemd/user/mqbusd.socket
for u in "$TPL" "$USVC"; do
	[ -f "$u" ]
	mqb_true "make generated ${u#"$top_builddir"/}" $? "missing: $u"
	mqb_is "no @placeholder@ is left in ${u#"$top_builddir"/}" \
		"$(grep -c '@[a-zA-Z_]*@' "$u")" 0
done

# value FILE KEY: the values of KEY= in FILE, one line each
value() {
	sed -n "s/^$2=//p" "$1"
}
mqb_like "mqbusd@.service: ExecStart serves the bus %i" \
	"$(value "$TPL" ExecStart)" '^/[^ ]*/mqbusd -b %i( |$)'
mqb_is "mqbusd@.socket: ListenMessageQueue=/%i" \
	"$(value "$TSOCK" ListenMessageQueue)" '/%i'
mqb_is "mqbusd@.socket: messages of 512 bytes" \
	"$(value "$TSOCK" MessageQueueMessageSize)" 512
# one lock directory and one uid for every bus of the system
mqb_is "mqbusd@.service: RuntimeDirectory= is mqbusd.service's" \
	"$(value "$TPL" RuntimeDirectory)" "$(value "$UNIT" RuntimeDirectory)"
mqb_is "mqbusd@.service: StateDirectory= is mqbusd.service's" \
	"$(value "$TPL" StateDirectory)" "$(value "$UNIT" StateDirectory)"
mqb_is "mqbusd@.service: the dynamic user of mqbusd.service" \
	"$(value "$TPL" DynamicUser) $(value "$TPL" User)" "yes mqbusd"
mqb_is "mqbusd@.service: no MQBUS_BUS (the instance names the bus)" \
	"$(value "$TPL" Environment | grep -c MQBUS_BUS=)" 0
for k in Type NotifyAccess ExecReload Restart WatchdogSec LimitMSGQUEUE \
	AmbientCapabilities CapabilityBoundingSet; do
	mqb_is "mqbusd@.service: $k= as mqbusd.service" \
		"$(value "$TPL" "$k")" "$(value "$UNIT" "$k")"
done
mqb_is "mqbusd@.service: the hardening of mqbusd.service, line for line" \
	"$(sed -n '/^# Hardening/,/^\[Install\]/p' "$TPL")" \
	"$(sed -n '/^# Hardening/,/^\[Install\]/p' "$UNIT")"
mqb_like "user mqbusd.service: ExecStart serves the bus user-%U" \
	"$(value "$USVC" ExecStart)" '^/[^ ]*/mqbusd -b user-%U( |$)'
mqb_is "user mqbusd.socket: ListenMessageQueue=/user-%U" \
	"$(value "$USOCK" ListenMessageQueue)" '/user-%U'
mqb_is "user mqbusd.socket: only the user may announce (0600)" \
	"$(value "$USOCK" SocketMode)" 0600
mqb_is "user mqbusd.service: no DynamicUser, no capability" \
	"$(value "$USVC" DynamicUser)$(value "$USVC" AmbientCapabilities)" ""

if command -v systemd-analyze >/dev/null 2>&1; then
	mkdir -p "$VDIR/user" "$MQB_TMP/xdg"
	chmod 700 "$MQB_TMP/xdg"
	BUILT_MQBUSD=$(cd "$(dirname "$MQBUSD")" && pwd)/mqbusd
	sed "s|^ExecStart=[^ ]*|ExecStart=$BUILT_MQBUSD|" "$TPL" \
		>"$VDIR/mqbusd@.service"
	cp "$TSOCK" "$VDIR/"
	systemd-analyze verify --man=no "$VDIR/mqbusd@verify.service" \
		"$VDIR/mqbusd@verify.socket" >"$MQB_TMP/verify-tpl.out" 2>&1
	st=$?
	mqb_is "systemd-analyze verify mqbusd@verify.service and .socket" "$st" 0
	mqb_is "... says nothing about them" \
		"$(grep -i mqbusd "$MQB_TMP/verify-tpl.out")" ""
	mqb_diag_file "systemd-analyze verify (template)" \
		"$MQB_TMP/verify-tpl.out"
	if systemd-analyze security --help 2>/dev/null | grep -q -- --offline; then
		systemd-analyze security --offline=yes --no-pager \
			"$VDIR/mqbusd@verify.service" >"$MQB_TMP/security-tpl.out" 2>&1
		EXPO=$(sed -n 's/.*Overall exposure level for mqbusd@verify.service: \([0-9.]*\).*/\1/p' \
			"$MQB_TMP/security-tpl.out")
		awk -v e="$EXPO" 'BEGIN { exit !(e != "" && e + 0 < 4.0) }'
		mqb_true "systemd-analyze security mqbusd@verify: below 4.0" $? \
			"exposure: '$EXPO'" "$(tail -n 3 "$MQB_TMP/security-tpl.out")"
	fi
	# the user units, as the user's service manager reads them (it
	# needs an XDG_RUNTIME_DIR; nothing is started)
	sed "s|^ExecStart=[^ ]*|ExecStart=$BUILT_MQBUSD|" "$USVC" \
		>"$VDIR/user/mqbusd.service"
	cp "$USOCK" "$VDIR/user/"
	XDG_RUNTIME_DIR=$MQB_TMP/xdg systemd-analyze --user verify --man=no \
		"$VDIR/user/mqbusd.service" "$VDIR/user/mqbusd.socket" \
		>"$MQB_TMP/verify-user.out" 2>&1
	st=$?
	mqb_is "systemd-analyze --user verify the user units" "$st" 0
	mqb_is "... says nothing about them" \
		"$(grep -i mqbusd "$MQB_TMP/verify-user.out")" ""
	mqb_diag_file "systemd-analyze --user verify" "$MQB_TMP/verify-user.out"
fi

# unit_argv UNIT INSTANCE: the unit's ExecStart= as systemd would run it,
# one word a line: %i is INSTANCE, %U our uid, $MQBUSD_OPTS the unit's
# Environment= value with the installed config being the example it is
# installed from, and the built mqbusd.
unit_argv() {
	local opts
	opts=$(sed -n 's/^Environment="*MQBUSD_OPTS=\([^"]*\)"*$/\1/p' "$1" |
		sed "s|[^ ]*/mqbus/mqbusd\.conf|$top_srcdir/daemon/mqbusd.conf.example|")
	value "$1" ExecStart | sed -e "s|%i|$2|g" -e "s|%U|$(id -u)|g" \
		-e "s|\\\$MQBUSD_OPTS|$opts|" -e "s|^[^ ]*|$MQBUSD|" |
		tr ' ' '\n' | grep .
}

# run_unit NAME UNIT SOCKET INSTANCE: the daemon of UNIT started as
# systemd would with SOCKET's queue (ListenMessageQueue=, made with its
# SocketMode= and sizes) passed as fd 3, RUNTIME_DIRECTORY and
# STATE_DIRECTORY of its own, no MQBUS_BUS; a retained publish made before
# it runs waits in the queue and is served; a subscriber gets the retained
# value; the bus lock is in RUNTIME_DIRECTORY; a second daemon of the same
# bus with the same RUNTIME_DIRECTORY (another unit of the same bus) is
# refused; SIGTERM stops it with the state kept in STATE_DIRECTORY.
run_unit() {
	local name=$1 unit=$2 sock=$3 inst=$4 q mode bus rt st dpid argv
	q=$(value "$sock" ListenMessageQueue |
		sed -e "s|%i|$inst|g" -e "s|%U|$(id -u)|g")
	bus=${q#/}
	mode=$(value "$sock" SocketMode)
	rt=$MQB_TMP/$name.run
	st=$MQB_TMP/$name.state
	mkdir -p "$rt" "$st"
	chmod 755 "$rt"
	chmod 700 "$st"
	mapfile -t argv < <(unit_argv "$unit" "$inst")
	mqb_diag "$name: ${argv[*]}"
	mqb_like "$name: ExecStart names the bus $bus" "${argv[*]}" " -b $bus( |\$)"
	"$MQTOOL" create "$q" -m "$(value "$sock" MessageQueueMaxMessages)" \
		-s "$(value "$sock" MessageQueueMessageSize)" -M "$mode" >/dev/null
	mqb_is "$name: the socket unit's queue $q is made" "$?" 0
	env -u MQBUS_BUS "$MQBUSCTL" -b "$bus" pub --retain "$name/x" early \
		>"$MQB_TMP/$name.pub" 2>&1 &
	local pub=$!
	mqb_track "$pub"
	mqb_wait_for 3000 eval "[ \"\$(\"$MQTOOL\" attr $q | sed -n 's/^curmsgs=//p')\" = 1 ]"
	mqb_true "$name: a client announced itself before the daemon runs" $?
	: >"$MQB_TMP/$name.notify"
	env -u MQBUS_BUS RUNTIME_DIRECTORY="$rt" STATE_DIRECTORY="$st" \
		"$NOTIFY_LISTEN" "$MQB_TMP/$name.sock" "$MQB_TMP/$name.notify" -- \
		"$MQTOOL" activate "$q" "${argv[@]}" 2>"$MQB_TMP/$name.err" &
	dpid=$!
	mqb_track "$dpid"
	mqb_wait_for 10000 mqb_daemon_ready_or_dead "$dpid" "$MQB_TMP/$name.notify"
	grep -qx 'READY=1' "$MQB_TMP/$name.notify"
	mqb_true "$name: the daemon gets ready" $? \
		"$(tail -n 5 "$MQB_TMP/$name.err")"
	mqb_wait_pid "$pub" 10000
	mqb_is "$name: the waiting publisher is served" "$?" 0
	mqb_like "$name: the daemon took the queue passed to it" \
		"$(cat "$MQB_TMP/$name.err")" 'passed by the service manager'
	mqb_is "$name: the subscriber gets the retained value" \
		"$(env -u MQBUS_BUS timeout 10 "$MQBUSCTL" -b "$bus" sub "$name/#" \
			-n 1 -t 5000 2>&1)" "$name/x early (retained)"
	mqb_like "$name: the bus lock is in RUNTIME_DIRECTORY" \
		"$(cd "$rt" && ls)" "^$bus\\..*\\.lock\$"
	env -u MQBUS_BUS RUNTIME_DIRECTORY="$rt" STATE_DIRECTORY="$st" \
		timeout 10 "$MQBUSD" -b "$bus" >/dev/null 2>"$MQB_TMP/$name.2.err"
	mqb_is "$name: a second daemon of the bus exits 1" "$?" 1
	mqb_diag_file "$name: the second daemon" "$MQB_TMP/$name.2.err"
	kill -TERM "$dpid"
	mqb_wait_pid "$dpid" 10000
	mqb_is "$name: SIGTERM: exit status 0" "$?" 0
	mqb_like "$name: the state is kept in STATE_DIRECTORY/$bus.state" \
		"$(cd "$st" && ls)" "^$bus\\.state\$"
	"$MQTOOL" unlink "$q" >/dev/null
}

run_unit template "$TPL" "$TSOCK" "$(mqb_new_bus tpl)"
# the per-user bus has a fixed name, user-UID; outside a private IPC
# namespace the test gives it a suffix of its own (in copies of the
# units), not to meet a real user bus
MQB_BUSES+=("user-$(id -u)")
if [ "${MQBUS_TEST_PRIVATE_IPC:-}" = 1 ]; then
	run_unit user "$USVC" "$USOCK" ""
else
	MQB_BUSES+=("user-$(id -u)-$$")
	sed "s|user-%U|user-%U-$$|" "$USVC" >"$MQB_TMP/user-mqbusd.service"
	sed "s|user-%U|user-%U-$$|" "$USOCK" >"$MQB_TMP/user-mqbusd.socket"
	run_unit user "$MQB_TMP/user-mqbusd.service" \
		"$MQB_TMP/user-mqbusd.socket" ""
fi

mqb_done

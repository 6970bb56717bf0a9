#!/bin/bash
# SPDX-License-Identifier: MIT
#
# soak.sh - hours of abuse, not a CI test.
#
#   tests/soak.sh MINUTES        (from the build tree, as root)
#
# In private IPC, mount and PID namespaces (its own /dev/mqueue, so it
# disturbs no other bus and every process it started dies with it) it
# runs one daemon and a crowd of clients for MINUTES: subscribers, queue
# group members, servers, publishers and callers join and leave, get
# SIGKILLed and SIGSTOPped (and SIGCONTed) at random, and the daemon is
# SIGKILLed and started again every minute.  Each minute, before the kill,
# it prints the daemon's RSS, open descriptors, the queues in /dev/mqueue
# and the delivery counters; at the end it says whether anything grew
# without bound (RSS, descriptors, queues past what the live clients
# hold) and exits 1 if so.
set -u

MINUTES=${1:-5}
: "${top_builddir:=$(pwd)}"
MQBUSD=$top_builddir/daemon/mqbusd
MQBUSCTL=$top_builddir/client/mqbusctl
for f in "$MQBUSD" "$MQBUSCTL"; do
	if [ ! -x "$f" ]; then
		echo "soak.sh: $f not found; run it from the build tree" >&2
		exit 2
	fi
done

if [ -z "${MQBUS_SOAK_INSIDE:-}" ]; then
	export MQBUS_SOAK_INSIDE=1 top_builddir
	exec unshare -i -m -p -f --mount-proc bash -c \
		'mount -t mqueue none /dev/mqueue && exec bash "$0" "$@"' \
		"$0" "$@"
fi

BUS=soak
export MQBUS_BUS=$BUS MQBUS_QUEUE_MAXMSG=8 MQBUS_QUEUE_MSGSIZE=1024
TMP=$(mktemp -d /tmp/mqbus-soak.XXXXXX)
CONF=$TMP/mqbusd.conf
cat >"$CONF" <<EOF
[bus]
restart_grace_ms = 2000
stats_interval = 0
[topic "soak/slow/#"]
overflow = drop-old
backlog = 16
EOF

DPID=
start_daemon() {
	"$MQBUSD" -b "$BUS" -c "$CONF" 2>>"$TMP/mqbusd.err" &
	DPID=$!
	for _ in $(seq 100); do
		[ -e "/dev/mqueue/$BUS" ] && return 0
		sleep 0.05
	done
	echo "soak.sh: the daemon did not start" >&2
	return 1
}

# the clients: pid -> kind
declare -A KIND
spawn() {
	local kind=$1 n=$((RANDOM % 1000))
	case $kind in
	sub) "$MQBUSCTL" sub 'soak/#' >/dev/null 2>&1 & ;;
	slow) "$MQBUSCTL" sub 'soak/slow/#' >/dev/null 2>&1 & ;;
	group) "$MQBUSCTL" sub 'soak/g/#' --group g >/dev/null 2>&1 & ;;
	serve) "$MQBUSCTL" serve 'soak/rpc/#' --echo >/dev/null 2>&1 & ;;
	pub)
		(while :; do
			"$MQBUSCTL" pub "soak/t$((n % 7))" "m$n" >/dev/null 2>&1
			"$MQBUSCTL" pub "soak/g/x" "g$n" >/dev/null 2>&1
			"$MQBUSCTL" pub "soak/slow/x" "s$n" >/dev/null 2>&1
			sleep 0.0$((RANDOM % 9 + 1))
		done) & ;;
	call)
		(while :; do
			"$MQBUSCTL" call soak/rpc/x "c$n" -t 500 >/dev/null 2>&1
			sleep 0.1
		done) & ;;
	esac
	KIND[$!]=$kind
}

kinds=(sub sub slow group group serve pub pub call)
for k in "${kinds[@]}"; do
	spawn "$k"
done

declare -a STOPPED=()
abuse() {
	local pids=("${!KIND[@]}") victim kind
	[ ${#pids[@]} -gt 0 ] || return
	victim=${pids[$((RANDOM % ${#pids[@]}))]}
	kind=${KIND[$victim]}
	case $((RANDOM % 5)) in
	0 | 1) # killed, or leaves; someone of its kind comes
		# (a stopped process takes SIGTERM only once it goes on)
		kill -CONT "$victim" 2>/dev/null
		kill -"$([ $((RANDOM % 2)) = 0 ] && echo KILL || echo TERM)" \
			"$victim" 2>/dev/null
		pkill -KILL -P "$victim" 2>/dev/null
		wait "$victim" 2>/dev/null
		unset "KIND[$victim]"
		spawn "$kind" ;;
	2) # stopped for a while
		kill -STOP "$victim" 2>/dev/null && STOPPED+=("$victim") ;;
	*) # the stopped ones go on
		for p in "${STOPPED[@]}"; do
			kill -CONT "$p" 2>/dev/null
		done
		STOPPED=() ;;
	esac
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
queues() { ls /dev/mqueue | wc -l; }
counter() {
	"$MQBUSCTL" stats 2>/dev/null | awk -F= -v k="$1" '$1 == k {print $2}'
}

start_daemon || exit 1
printf '%-6s %-8s %-5s %-7s %-8s %-10s %-10s %-9s\n' min rss_kb fds queues \
	clients published delivered dropped
declare -a RSS FDS QS
end=$(($(date +%s) + MINUTES * 60))
minute=0
while [ "$(date +%s)" -lt "$end" ]; do
	stop=$(($(date +%s) + 60))
	while [ "$(date +%s)" -lt "$stop" ] && [ "$(date +%s)" -lt "$end" ]; do
		abuse
		sleep 0.$((RANDOM % 9 + 1))
	done
	for p in "${STOPPED[@]}"; do kill -CONT "$p" 2>/dev/null; done
	STOPPED=()
	sleep 3 # let the grace period of the last restart settle
	minute=$((minute + 1))
	RSS[$minute]=$(rss_kb "$DPID")
	FDS[$minute]=$(fds "$DPID")
	QS[$minute]=$(queues)
	printf '%-6s %-8s %-5s %-7s %-8s %-10s %-10s %-9s\n' "$minute" \
		"${RSS[$minute]}" "${FDS[$minute]}" "${QS[$minute]}" \
		"$(counter clients)" "$(counter published)" \
		"$(counter delivered)" "$(counter dropped)"
	# the daemon dies every minute
	kill -KILL "$DPID"
	wait "$DPID" 2>/dev/null
	sleep 0.2
	start_daemon || exit 1
done

# the end: everyone leaves, and nothing may stay behind
for p in "${!KIND[@]}"; do
	kill -CONT "$p" 2>/dev/null
	pkill -KILL -P "$p" 2>/dev/null
	kill -TERM "$p" 2>/dev/null
done
wait_gone=$(($(date +%s) + 10))
while [ "$(queues)" -gt 1 ] && [ "$(date +%s)" -lt "$wait_gone" ]; do
	sleep 0.2
done
left=$(queues)
kill -TERM "$DPID"
wait "$DPID"
status=$?

bad=0
verdict() {
	echo "$1"
	[ "$2" = ok ] || bad=1
}
clients=${#kinds[@]}
verdict "queues at the end with only the daemon left: $left (expected 1)" \
	"$([ "$left" -le 1 ] && echo ok)"
verdict "daemon exit status after SIGTERM: $status" \
	"$([ "$status" = 0 ] && echo ok)"
maxq=0 maxfd=0 maxrss=0
for m in $(seq 1 "$minute"); do
	[ "${QS[$m]:-0}" -gt "$maxq" ] && maxq=${QS[$m]}
	[ "${FDS[$m]:-0}" -gt "$maxfd" ] && maxfd=${FDS[$m]}
	[ "${RSS[$m]:-0}" -gt "$maxrss" ] && maxrss=${RSS[$m]}
done
# each client has 2 queues (a caller or publisher loop at most one
# mqbusctl at a time), plus the announce queue
verdict "most queues in a minute: $maxq (bound $((clients * 2 + 1)))" \
	"$([ "$maxq" -le $((clients * 2 + 1)) ] && echo ok)"
verdict "most daemon descriptors: $maxfd (bound $((clients * 3 + 32)))" \
	"$([ "$maxfd" -le $((clients * 3 + 32)) ] && echo ok)"
verdict "most daemon RSS: $maxrss kB (bound 65536)" \
	"$([ "${maxrss:-0}" -le 65536 ] && echo ok)"
echo "daemon stderr: $TMP/mqbusd.err ($(wc -l <"$TMP/mqbusd.err") lines)"
exit $bad
